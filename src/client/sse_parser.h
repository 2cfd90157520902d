/* An incremental text/event-stream parser (the WHATWG HTML "server-sent
 * events" interpretation rules): bytes go in as they arrive, in pieces of
 * any size, and each complete event comes out through a callback. Lines end
 * with CRLF, LF or CR (a CR at the end of one piece waits for the next); a
 * leading BOM is skipped; "event", "data", "id" and "retry" fields are
 * understood, comments and other fields are passed over (comments are
 * counted). Bounded: a line longer than max_line or an event whose data
 * grows past max_event makes feed fail with REEL_ETOOBIG, and the parser
 * stays failed. */
#ifndef REEL_CLIENT_SSE_PARSER_H
#define REEL_CLIENT_SSE_PARSER_H

#include <stddef.h>

#include "common/buf.h"

/* One dispatched event. Pointers are valid during the callback only. */
typedef struct {
  const char *id;   /* the last event id so far ("" when none was set) */
  const char *type; /* "message" unless an event field said otherwise */
  const char *data; /* the data lines joined with LF, without the last LF */
  size_t data_len;
} reel_sse_event;

/* Returns 0 to go on; any other value stops feed, which returns it. */
typedef int (*reel_sse_event_cb)(void *ctx, const reel_sse_event *ev);

typedef struct {
  reel_sse_event_cb on_event;
  void *ctx;
  reel_buf line, data, type, id;
  long retry_ms;           /* the last valid retry field, or -1 */
  unsigned long comments;  /* comment lines seen (": keep-alive") */
  int saw_cr;              /* the last byte fed was a CR ending a line */
  int started;             /* past the first bytes (where a BOM may be) */
  int failed;              /* a bound was exceeded: the stream is unusable */
} reel_sse_parser;

/* Prepares a parser. max_line bounds one line, max_event one event's data. */
void reel_sse_parser_init(reel_sse_parser *p, size_t max_line, size_t max_event, reel_sse_event_cb cb, void *ctx);
/* Feeds the next bytes of the stream. 0, REEL_ETOOBIG past a bound, or what
 * a callback returned to stop (the rest of these bytes is then not parsed). */
int reel_sse_parser_feed(reel_sse_parser *p, const char *bytes, size_t len);
/* Forgets a partly received event and line (a new connection begins); the
 * last event id and retry are kept, as a reconnecting client needs them. */
void reel_sse_parser_reset_stream(reel_sse_parser *p);
/* The last event id seen ("" when none). */
const char *reel_sse_parser_last_id(const reel_sse_parser *p);
/* Sets the last event id (a client resuming where an earlier run stopped). */
int reel_sse_parser_set_last_id(reel_sse_parser *p, const char *id);
/* Releases the parser's memory. */
void reel_sse_parser_free(reel_sse_parser *p);

#endif
