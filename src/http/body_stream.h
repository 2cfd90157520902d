/* A response body produced while it is sent (server-sent events): the
 * handler that made the response (the producer) writes chunks as they come,
 * and the transport carrying it (the consumer: HTTP/1.1 chunked, an HTTP/2 or
 * HTTP/3 stream) takes them when its connection can send. What waits between
 * the two is capped: a write that would pass the cap aborts the stream, the
 * transport then ends it abnormally (connection close, RST_STREAM, stream
 * reset) so the client can tell and resume, and the producer learns it from
 * the write's result. Nothing is ever dropped silently.
 *
 * Ownership: the stream has two owners. The producer owns it from
 * reel_body_stream_new until it calls reel_body_stream_end, until a write
 * returns an error, or until its closed callback runs (the consumer went
 * away first); after any of these it must not touch the stream. The
 * consumer side is owned by the response the stream is put in
 * (reel_http_response.stream), then by the transport that sends it, until
 * reel_body_stream_release (reel_http_response_free releases a stream no
 * transport took). The stream is freed when both sides are done.
 * Loop thread only. */
#ifndef REEL_HTTP_BODY_STREAM_H
#define REEL_HTTP_BODY_STREAM_H

#include <stddef.h>

typedef struct reel_body_stream reel_body_stream;

typedef enum {
  REEL_BODY_STREAM_OPEN,    /* more may come */
  REEL_BODY_STREAM_ENDED,   /* the producer ended it and every byte has been taken */
  REEL_BODY_STREAM_ABORTED, /* it must end abnormally (over the cap, or the producer gave up) */
} reel_body_stream_state;

/* A new stream whose unsent bytes may not pass max_buffered. closed(data)
 * runs once if the consumer releases the stream while the producer still
 * owns it (the client went away, the connection closed); it may not call
 * back into the stream. NULL when out of memory. */
reel_body_stream *reel_body_stream_new(size_t max_buffered, void (*closed)(void *data), void *data);

/* Producer: appends n bytes. Returns 0; REEL_ETOOBIG when they would pass
 * the cap while half the cap's bytes or more already wait (the stream is
 * aborted and the producer no longer owns it). A write made while
 * reel_body_stream_wants_more says 1 is never refused, whatever its size. */
int reel_body_stream_write(reel_body_stream *b, const void *p, size_t n);
/* Producer: no more bytes; the consumer sends what is left, then ends the
 * body normally. The producer no longer owns the stream. */
void reel_body_stream_end(reel_body_stream *b);
/* Producer: gives up; the body ends abnormally. The producer no longer owns it. */
void reel_body_stream_abort(reel_body_stream *b);
/* Bytes written and not yet taken by the consumer. */
size_t reel_body_stream_buffered(const reel_body_stream *b);
/* Backpressure for the producer: 1 while fewer than half the cap's bytes
 * wait. When it says 0, the drain callback (reel_body_stream_set_drain) runs once the consumer has taken the waiting
 * bytes down to a quarter of the cap; the producer writes more then. */
int reel_body_stream_wants_more(reel_body_stream *b);
/* The producer's drain callback (see reel_body_stream_wants_more). It runs
 * from inside the consumer's take: it may schedule work, not write. */
void reel_body_stream_set_drain(reel_body_stream *b, void (*drain)(void *data));

/* Consumer: asks to be woken (wake(ctx)) whenever bytes,
 * the end or an abort arrive after a take found nothing. wake runs from
 * inside the producer's call: it should only note the work and schedule it. */
void reel_body_stream_attach(reel_body_stream *b, void (*wake)(void *ctx), void *ctx);
/* Consumer: the bytes waiting (*len of them, possibly 0) without taking them. */
const void *reel_body_stream_peek(reel_body_stream *b, size_t *len);
/* Consumer: n of the peeked bytes were handed on (copied or written). */
void reel_body_stream_consume(reel_body_stream *b, size_t n);
/* Consumer: copies up to max waiting bytes into buf and consumes them. */
size_t reel_body_stream_take(reel_body_stream *b, void *buf, size_t max);
/* The state as the consumer sees it (ENDED only once everything was taken). */
reel_body_stream_state reel_body_stream_state_of(const reel_body_stream *b);
/* Consumer: done with the stream (sent to the end, or the connection is
 * gone). The producer's closed callback runs if it still owns the stream. */
void reel_body_stream_release(reel_body_stream *b);

#endif
