/* Streamed response bodies (see body_stream.h): one byte queue with a read
 * position, two owners, and a wake-up for a consumer that found it empty. */
#include "http/body_stream.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

struct reel_body_stream {
  char *data;
  size_t start, end, cap; /* waiting bytes are data[start, end) */
  size_t max_buffered;
  int producer;  /* the producer still owns it */
  int consumer;  /* attached and not released */
  int ended;     /* the producer said there is no more */
  int aborted;
  int armed;     /* the consumer found nothing waiting: wake it on news */
  void (*closed)(void *data);
  void *closed_data;      /* the producer's data, for closed and drain */
  void (*drain)(void *data);
  int drain_wanted;       /* wants_more said 0: call drain at the low-water mark */
  void (*wake)(void *ctx);
  void *wake_ctx;
};

reel_body_stream *reel_body_stream_new(size_t max_buffered, void (*closed)(void *data), void *data) {
  reel_body_stream *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  b->max_buffered = max_buffered;
  b->producer = 1;
  b->consumer = 1; /* the response that carries it, then its transport */
  b->closed = closed;
  b->closed_data = data;
  return b;
}

static void maybe_free(reel_body_stream *b) {
  if (b->producer || b->consumer) return;
  free(b->data);
  free(b);
}

/* Wakes the consumer when it waits for news (or always: an abort must end a
 * stream that flow control has stalled). */
static void wake(reel_body_stream *b, int always) {
  if (!b->consumer || !b->wake || !(b->armed || always)) return;
  b->armed = 0;
  b->wake(b->wake_ctx);
}

int reel_body_stream_write(reel_body_stream *b, const void *p, size_t n) {
  if (!b->producer || b->ended || b->aborted) return REEL_ECLOSED;
  size_t waiting = b->end - b->start;
  /* a producer that heeds wants_more may always write one piece, whatever
   * its size (one event may be larger than half the cap); one that writes
   * on past it is cut off at the cap */
  if (waiting + n > b->max_buffered && waiting >= b->max_buffered / 2) {
    b->aborted = 1;
    b->producer = 0;
    wake(b, 1);
    maybe_free(b);
    return REEL_ETOOBIG;
  }
  if (n == 0) return 0;
  if (b->end + n > b->cap) {
    if (b->start > 0) { /* slide the waiting bytes to the front first */
      memmove(b->data, b->data + b->start, waiting);
      b->start = 0;
      b->end = waiting;
    }
    if (b->end + n > b->cap) {
      size_t cap = b->cap ? b->cap : 1024;
      while (cap < b->end + n) cap *= 2;
      char *grown = realloc(b->data, cap);
      if (!grown) {
        b->aborted = 1;
        b->producer = 0;
        wake(b, 1);
        maybe_free(b);
        return REEL_ENOMEM;
      }
      b->data = grown;
      b->cap = cap;
    }
  }
  memcpy(b->data + b->end, p, n);
  b->end += n;
  wake(b, 0);
  return 0;
}

void reel_body_stream_end(reel_body_stream *b) {
  if (!b->producer) return;
  b->producer = 0;
  b->ended = 1;
  wake(b, 0);
  maybe_free(b);
}

void reel_body_stream_abort(reel_body_stream *b) {
  if (!b->producer) return;
  b->producer = 0;
  b->aborted = 1;
  wake(b, 1);
  maybe_free(b);
}

size_t reel_body_stream_buffered(const reel_body_stream *b) { return b->end - b->start; }

int reel_body_stream_wants_more(reel_body_stream *b) {
  if (b->end - b->start < b->max_buffered / 2) return 1;
  b->drain_wanted = 1;
  return 0;
}

void reel_body_stream_set_drain(reel_body_stream *b, void (*drain)(void *data)) { b->drain = drain; }

void reel_body_stream_attach(reel_body_stream *b, void (*wake_cb)(void *ctx), void *ctx) {
  b->wake = wake_cb;
  b->wake_ctx = ctx;
}

const void *reel_body_stream_peek(reel_body_stream *b, size_t *len) {
  *len = b->aborted ? 0 : b->end - b->start;
  if (*len == 0 && !b->ended && !b->aborted) b->armed = 1;
  return b->data ? b->data + b->start : "";
}

void reel_body_stream_consume(reel_body_stream *b, size_t n) {
  size_t waiting = b->end - b->start;
  if (n > waiting) n = waiting;
  b->start += n;
  if (b->start == b->end) b->start = b->end = 0;
  if (b->drain_wanted && b->producer && b->end - b->start <= b->max_buffered / 4) {
    b->drain_wanted = 0;
    if (b->drain) b->drain(b->closed_data);
  }
  /* a long-lived stream that once held a burst gives the memory back */
  if (b->start == 0 && b->end == 0 && b->cap > 65536) {
    free(b->data);
    b->data = NULL;
    b->cap = 0;
  }
}

size_t reel_body_stream_take(reel_body_stream *b, void *buf, size_t max) {
  size_t n;
  const void *p = reel_body_stream_peek(b, &n);
  if (n > max) n = max;
  if (n > 0) memcpy(buf, p, n);
  reel_body_stream_consume(b, n);
  if (n == 0 || b->end == b->start) {
    size_t left;
    reel_body_stream_peek(b, &left); /* arms the wake-up when it is empty now */
  }
  return n;
}

reel_body_stream_state reel_body_stream_state_of(const reel_body_stream *b) {
  if (b->aborted) return REEL_BODY_STREAM_ABORTED;
  if (b->ended && b->end == b->start) return REEL_BODY_STREAM_ENDED;
  return REEL_BODY_STREAM_OPEN;
}

void reel_body_stream_release(reel_body_stream *b) {
  if (!b->consumer) return;
  b->consumer = 0;
  b->wake = NULL;
  if (b->producer) {
    b->producer = 0;
    if (b->closed) b->closed(b->closed_data);
  }
  maybe_free(b);
}
