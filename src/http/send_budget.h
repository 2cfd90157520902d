/* Responses on HTTP/2 and HTTP/3 streams: the part the h2 and h3 sessions
 * share (the response-side twin of stream_head.h), without nghttp2 or nghttp3
 * types. Each session keeps only its library calls.
 *
 * Per connection, a reel_send_budget bounds what responses its client does
 * not read may hold (docs/operations.md, "Resource bounds"): at most
 * max_open_files response files are open (a later file response waits,
 * unopened, in a FIFO for a slot); in-memory bodies not yet sent are capped
 * at max_buffered_bytes (a response beyond it while another is still unsent
 * becomes a 503 "overloaded"); and it keeps the two deadlines: with response
 * bytes pending, send_timeout_ms after the last progress (progress_bytes
 * sent or acknowledged, or a response finished), otherwise idle_timeout_ms
 * after the last request activity.
 *
 * Per stream, a reel_send_stream (embedded in the session's stream object)
 * holds the response body being sent and what the stream counts for in the
 * budget; the file queue is intrusive, through the embedded structs.
 * Loop thread only; nothing here calls back into a session. */
#ifndef REEL_HTTP_SEND_BUDGET_H
#define REEL_HTTP_SEND_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "http/request.h"

typedef struct reel_send_stream reel_send_stream;

struct reel_send_stream {
  reel_http_request *req; /* the stream's request (sessions cast it back to their stream) */
  /* the response body, moved in by reel_send_stream_take_body: out (own
   * bytes) then static_body (shared, by reference), or the file range */
  reel_buf out;
  size_t out_pos;
  const uint8_t *static_body;
  size_t static_len, static_pos;
  int file_fd; /* -1: none */
  int64_t file_pos, file_remaining;
  struct reel_body_stream *stream; /* or a streamed body (http/body_stream.h): this stream is its consumer */
  /* what the stream counts for in its budget */
  int file_slot;   /* holds one of open_files */
  int sending;     /* counts in sending */
  size_t buffered; /* counts in buffered */
  int queued;      /* waiting for a file slot: queued_resp moved here, unopened */
  int queued_send_body;
  reel_http_response queued_resp;
  reel_send_stream *queue_next;
};

typedef struct {
  const char *protocol; /* "HTTP/2", "HTTP/3": names the log lines */
  const char *remote;   /* peer address for logs, or NULL */
  int max_open_files;
  size_t max_buffered_bytes;
  size_t progress_bytes; /* bytes that count as progress for the send deadline */
  uint64_t idle_timeout_ms, send_timeout_ms; /* 0: 60 s */
} reel_send_limits;

typedef struct {
  reel_send_limits lim;
  int streaming;                                 /* streamed bodies open: they hold the connection while idle */
  int open_files;                                /* streams holding a file slot */
  reel_send_stream *file_queue, *file_queue_tail; /* file responses waiting for a slot, unopened */
  int pump_queue;                                /* a slot was freed: reel_send_budget_next_queued has work */
  size_t buffered;                               /* in-memory response bytes not yet sent */
  int sending;                                   /* streams with a response pending (or queued) */
  uint64_t last_activity_ms, progress_ms;        /* monotonic milliseconds */
  size_t progress_bytes;                         /* sent or acknowledged since progress_ms */
} reel_send_budget;

/* Starts an empty budget under lim (copied; its strings must outlive it);
 * both deadlines start now. */
void reel_send_budget_init(reel_send_budget *b, const reel_send_limits *lim);
/* Request activity (bytes received, a request answered): the idle deadline
 * starts over. */
void reel_send_budget_activity(reel_send_budget *b);
/* n response bytes went out (HTTP/2: DATA written) or were acknowledged
 * (HTTP/3); finished: a response ended with them. Enough bytes, or a
 * finished response, is progress: the send deadline starts over. */
void reel_send_budget_progress(reel_send_budget *b, size_t n, int finished);
/* Monotonic milliseconds at which the connection should close: with a
 * response pending, send_timeout_ms after the last progress (*stalled set
 * when stalled is not NULL); else UINT64_MAX while handling > 0 requests
 * are with the handler or a streamed body is open; else idle_timeout_ms
 * after the last activity. */
uint64_t reel_send_budget_deadline_ms(const reel_send_budget *b, int handling, int *stalled);

/* Prepares bs (no body, no file) for the stream whose request is req. */
void reel_send_stream_init(reel_send_stream *bs, reel_http_request *req);
/* Frees bs's body, closes its file and drops a queued response, without
 * touching any budget (its session has already forgotten it, or is gone). */
void reel_send_stream_free(reel_send_stream *bs);

/* 1 when resp to req carries a body (not HEAD, head_only, 204 or 304). */
int reel_send_wants_body(const reel_http_request *req, const reel_http_response *resp);
/* Decides how resp (its body wanted when send_body) goes out on bs. Returns
 * 1 when it is a file response and no slot is free (or others wait before
 * it): resp has been moved into bs, unopened, at the end of the file queue
 * (bs counts as sending) and there is nothing to submit now. Otherwise
 * returns 0 with resp ready to submit and reel_http_request_finished
 * called: a file was opened in a slot just taken (or resp was rewritten into
 * 503/404 and the slot given back), or a memory body that would pass the
 * cap while another is unsent was replaced by a 503 "overloaded" (logged
 * "<protocol> response refused: too many unread bytes"). */
int reel_send_budget_admit(reel_send_budget *b, reel_send_stream *bs, reel_http_response *resp, int send_body);
/* 1 once (then 0) when a slot was freed since the last call: the session
 * should call reel_send_budget_next_queued outside its library's calls. */
int reel_send_budget_take_pump(reel_send_budget *b);
/* While a slot is free and a file response waits: takes the first one out
 * of the queue, opens its file in a slot as reel_send_budget_admit does,
 * moves the response into *resp and its send_body into *send_body, and
 * returns its stream's request (still counting as sending). NULL: nothing
 * to submit. */
reel_http_request *reel_send_budget_next_queued(reel_send_budget *b, reel_http_response *resp, int *send_body);

/* The stream has a response pending (or queued): counts in sending (the
 * first one starts the send deadline). Idempotent. */
void reel_send_budget_start(reel_send_budget *b, reel_send_stream *bs);
/* n of bs's in-memory bytes were handed to the protocol library (which
 * copied them): they stop counting in buffered. */
void reel_send_budget_unbuffer(reel_send_budget *b, reel_send_stream *bs, size_t n);
/* bs's response is all handed over or never will be: it stops counting in
 * sending and buffered, which is request activity; finished: it is over on
 * the wire, which is also progress. Nothing when bs was not sending. */
void reel_send_budget_done(reel_send_budget *b, reel_send_stream *bs, int finished);
/* Closes bs's file and gives back its slot (then take_pump says 1). b may
 * be NULL when the stream's session is gone (the file is just closed). */
void reel_send_budget_release_file(reel_send_budget *b, reel_send_stream *bs);
/* Undoes everything bs counts for in b: out of the file queue (its queued
 * response dropped), done (finished as in reel_send_budget_done), file
 * released. For a stream whose response is over or abandoned. */
void reel_send_budget_forget(reel_send_budget *b, reel_send_stream *bs, int finished);
/* Moves resp's body into bs when send_body: the file range (resp->file_fd
 * open), the streamed body (counted in b's streaming until
 * reel_send_stream_end_stream), or the memory body (counted in b's buffered
 * bytes) followed by the shared static body. */
void reel_send_stream_take_body(reel_send_budget *b, reel_send_stream *bs, reel_http_response *resp,
                                int send_body);

/* bs's streamed body is over (sent, aborted, or the stream went away): it
 * is released and stops holding the connection. Nothing when it has none. */
void reel_send_stream_end_stream(reel_send_budget *b, reel_send_stream *bs);

/* A response's header section for HTTP/2 and HTTP/3: ":status", resp's
 * headers but the connection-specific ones (RFC 9113 section 8.2.2, RFC 9114
 * section 4.2), names lowercased in place, the extra header (name
 * lowercased) and content-length (not for 1xx, 204, 304). The strings point
 * into resp, the fields and the extra header's value. A streamed body has
 * no content-length. */
#define REEL_SEND_MAX_FIELDS (REEL_HTTP_MAX_RESPONSE_HEADERS + 3)
typedef struct {
  struct {
    const char *name, *value;
  } field[REEL_SEND_MAX_FIELDS];
  size_t n;
  int64_t body_length; /* what content-length says: the file range, or memory plus static bytes */
  char status_text[8], length_text[24], extra_name[64];
} reel_send_fields;

/* Fills f from resp (before reel_send_stream_take_body moves its body);
 * extra_name NULL: no extra header (a NULL extra_value is ""). */
void reel_send_fields_build(reel_send_fields *f, reel_http_response *resp, const char *extra_name,
                            const char *extra_value);

#endif
