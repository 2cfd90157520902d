/* Following an event stream the way EventSource does: connect, hand every
 * event to a callback, and when the connection drops (or the server ends a
 * stream that should go on) reconnect after the stream's `retry:` delay
 * with Last-Event-ID, so nothing is missed and nothing comes twice. 429 and
 * 503 answers are waited out (Retry-After); other refusals end it. */
#ifndef REEL_CLIENT_FOLLOW_H
#define REEL_CLIENT_FOLLOW_H

#include "client/client_http.h"
#include "client/sse_parser.h"

typedef enum {
  REEL_FOLLOW_DONE,        /* the callback stopped it */
  REEL_FOLLOW_REFUSED,     /* the server refused the stream: message in err */
  REEL_FOLLOW_LOST,        /* no connection for max_tries attempts in a row: message in err */
  REEL_FOLLOW_INTERRUPTED  /* the client's tick asked to stop */
} reel_follow_result;

typedef struct {
  reel_client *client;
  const char *path;       /* the stream's path and query */
  const char *start_after; /* an event id to start after, or NULL */
  reel_sse_event_cb on_event; /* >0 stops */
  void (*on_notice)(void *ctx, const char *message); /* "connection lost …; reconnecting" */
  int (*tick)(void *ctx);  /* between attempts too; non-zero interrupts */
  void *ctx;
  int max_tries;           /* attempts in a row that bring nothing (0: 30) */
  long idle_timeout_s;     /* silence that counts as a dead connection (0: 45 s) */
} reel_follow;

/* Follows f->path until the callback stops it or it cannot go on. */
reel_follow_result reel_follow_run(const reel_follow *f, char *err, size_t errlen);

#endif
