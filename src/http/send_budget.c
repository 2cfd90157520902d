/* Response bookkeeping shared by the HTTP/2 and HTTP/3 sessions (see
 * send_budget.h). */
#include "http/send_budget.h"

#include "http/body_stream.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "http/response_file.h"

#define DEFAULT_TIMEOUT_MS 60000

static uint64_t now_ms(void) { return reel_mono_ns() / 1000000; }

/* ---- deadlines ---- */

void reel_send_budget_init(reel_send_budget *b, const reel_send_limits *lim) {
  memset(b, 0, sizeof *b);
  b->lim = *lim;
  if (!b->lim.idle_timeout_ms) b->lim.idle_timeout_ms = DEFAULT_TIMEOUT_MS;
  if (!b->lim.send_timeout_ms) b->lim.send_timeout_ms = DEFAULT_TIMEOUT_MS;
  b->last_activity_ms = b->progress_ms = now_ms();
}

void reel_send_budget_activity(reel_send_budget *b) { b->last_activity_ms = now_ms(); }

void reel_send_budget_progress(reel_send_budget *b, size_t n, int finished) {
  b->progress_bytes += n;
  if (b->progress_bytes >= b->lim.progress_bytes || finished) {
    b->progress_ms = b->last_activity_ms = now_ms();
    b->progress_bytes = 0;
  }
}

uint64_t reel_send_budget_deadline_ms(const reel_send_budget *b, int handling, int *stalled) {
  if (stalled) *stalled = 0;
  if (b->sending > 0) {
    if (stalled) *stalled = 1;
    return b->progress_ms + b->lim.send_timeout_ms;
  }
  if (handling > 0 || b->streaming > 0) return UINT64_MAX;
  return b->last_activity_ms + b->lim.idle_timeout_ms;
}

/* ---- streams ---- */

void reel_send_stream_init(reel_send_stream *bs, reel_http_request *req) {
  memset(bs, 0, sizeof *bs);
  bs->req = req;
  bs->file_fd = -1;
  reel_buf_init(&bs->out, 0);
}

void reel_send_stream_free(reel_send_stream *bs) {
  if (bs->stream) reel_body_stream_release(bs->stream);
  bs->stream = NULL;
  reel_buf_free(&bs->out);
  if (bs->file_fd >= 0) close(bs->file_fd);
  bs->file_fd = -1;
  if (bs->queued) reel_http_response_free(&bs->queued_resp);
  bs->queued = 0;
}

void reel_send_budget_start(reel_send_budget *b, reel_send_stream *bs) {
  if (bs->sending) return;
  bs->sending = 1;
  if (b->sending++ == 0) {
    b->progress_ms = now_ms();
    b->progress_bytes = 0;
  }
}

void reel_send_budget_unbuffer(reel_send_budget *b, reel_send_stream *bs, size_t n) {
  if (bs->buffered < n) return;
  bs->buffered -= n;
  b->buffered -= n;
}

void reel_send_budget_done(reel_send_budget *b, reel_send_stream *bs, int finished) {
  if (!bs->sending) return;
  bs->sending = 0;
  b->sending--;
  b->buffered -= bs->buffered; /* only a sending stream holds buffered bytes */
  bs->buffered = 0;
  b->last_activity_ms = now_ms();
  if (finished) reel_send_budget_progress(b, 0, 1);
}

void reel_send_budget_release_file(reel_send_budget *b, reel_send_stream *bs) {
  if (bs->file_fd >= 0) close(bs->file_fd);
  bs->file_fd = -1;
  if (!b || !bs->file_slot) return;
  bs->file_slot = 0;
  b->open_files--;
  b->pump_queue = 1;
}

/* Takes bs out of the file queue (its response is dropped). */
static void dequeue(reel_send_budget *b, reel_send_stream *bs) {
  if (!bs->queued) return;
  reel_send_stream **pp = &b->file_queue, *prev = NULL;
  while (*pp && *pp != bs) prev = *pp, pp = &(*pp)->queue_next;
  if (*pp) *pp = bs->queue_next;
  if (b->file_queue_tail == bs) b->file_queue_tail = prev;
  bs->queue_next = NULL;
  bs->queued = 0;
  reel_http_response_free(&bs->queued_resp);
}

void reel_send_budget_forget(reel_send_budget *b, reel_send_stream *bs, int finished) {
  dequeue(b, bs);
  reel_send_budget_done(b, bs, finished);
  reel_send_budget_release_file(b, bs);
  reel_send_stream_end_stream(b, bs);
}

void reel_send_stream_take_body(reel_send_budget *b, reel_send_stream *bs, reel_http_response *resp,
                                int send_body) {
  if (send_body && resp->file_fd >= 0) {
    bs->file_fd = resp->file_fd;
    resp->file_fd = -1;
    bs->file_pos = resp->file_offset;
    bs->file_remaining = resp->file_length;
  } else if (send_body && resp->stream) {
    bs->stream = resp->stream; /* moved */
    resp->stream = NULL;
    b->streaming++;
  } else if (send_body) {
    bs->out = resp->body; /* moved */
    reel_buf_init(&resp->body, 0);
    bs->out_pos = 0;
    bs->static_body = resp->static_body;
    bs->static_len = resp->static_len;
    bs->buffered = bs->out.len;
    b->buffered += bs->buffered;
  }
}

void reel_send_stream_end_stream(reel_send_budget *b, reel_send_stream *bs) {
  if (!bs->stream) return;
  reel_body_stream *stream = bs->stream;
  bs->stream = NULL;
  if (b && b->streaming > 0) b->streaming--;
  reel_body_stream_release(stream);
}

/* ---- admission ---- */

int reel_send_wants_body(const reel_http_request *req, const reel_http_response *resp) {
  int head = reel_slice_eq(req->method, "HEAD");
  return !head && !resp->head_only && resp->status != 304 && resp->status != 204;
}

/* Opens the file of resp for bs in a slot just taken; without one the
 * response was rewritten (503/404) and the slot is given back. */
static void open_file(reel_send_budget *b, reel_send_stream *bs, reel_http_response *resp) {
  bs->file_slot = 1;
  b->open_files++;
  if (reel_http_response_open_file(resp, bs->req) != 0) {
    bs->file_slot = 0;
    b->open_files--;
  }
}

int reel_send_budget_admit(reel_send_budget *b, reel_send_stream *bs, reel_http_response *resp, int send_body) {
  reel_http_request *req = bs->req;
  if (send_body && reel_http_response_wants_file(resp)) {
    if (b->open_files >= b->lim.max_open_files || b->file_queue) {
      /* every slot is taken by responses the client has not read: wait, unopened */
      bs->queued_resp = *resp;
      reel_http_response_init(resp, 0);
      bs->queued = 1;
      bs->queued_send_body = send_body;
      if (b->file_queue_tail) b->file_queue_tail->queue_next = bs;
      else b->file_queue = bs;
      b->file_queue_tail = bs;
      reel_send_budget_start(b, bs);
      return 1;
    }
    open_file(b, bs, resp);
  } else if (send_body && resp->file_fd < 0 && b->buffered > 0 &&
             b->buffered + resp->body.len > b->lim.max_buffered_bytes) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s response refused: too many unread bytes", b->lim.protocol);
    reel_log(REEL_LOG_INFO, msg, "{s:s, s:s, s:i}", "remote", b->lim.remote ? b->lim.remote : "", "request_id",
             req->request_id, "buffered", (int)b->buffered);
    reel_http_response_replace_problem(resp, req, 503, "overloaded", "Service unavailable",
                                       "this connection holds too many responses its client has not read");
  }
  reel_http_request_finished(req, resp->status);
  return 0;
}

int reel_send_budget_take_pump(reel_send_budget *b) {
  int pump = b->pump_queue;
  b->pump_queue = 0;
  return pump;
}

reel_http_request *reel_send_budget_next_queued(reel_send_budget *b, reel_http_response *resp, int *send_body) {
  if (!b->file_queue || b->open_files >= b->lim.max_open_files) return NULL;
  reel_send_stream *bs = b->file_queue;
  b->file_queue = bs->queue_next;
  if (!b->file_queue) b->file_queue_tail = NULL;
  bs->queue_next = NULL;
  bs->queued = 0;
  *resp = bs->queued_resp;
  reel_http_response_init(&bs->queued_resp, 0);
  *send_body = bs->queued_send_body;
  open_file(b, bs, resp);
  reel_http_request_finished(bs->req, resp->status);
  return bs->req;
}

/* ---- header section ---- */

/* Header fields HTTP/2 and HTTP/3 forbid (connection-specific); content-length is added here. */
static int connection_specific(const char *name) {
  static const char *const names[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                                      "upgrade", "content-length"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (strcasecmp(name, names[i]) == 0) return 1;
  return 0;
}

static void lowercase(char *s) {
  for (; *s; s++)
    if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

static void add(reel_send_fields *f, const char *name, const char *value) {
  f->field[f->n].name = name;
  f->field[f->n].value = value;
  f->n++;
}

void reel_send_fields_build(reel_send_fields *f, reel_http_response *resp, const char *extra_name,
                            const char *extra_value) {
  f->n = 0;
  f->body_length = resp->file_fd >= 0 || resp->file_open ? resp->file_length
                                                         : (int64_t)(resp->body.len + resp->static_len);
  snprintf(f->status_text, sizeof f->status_text, "%d", resp->status);
  add(f, ":status", f->status_text);
  for (int i = 0; i < resp->n_headers; i++) {
    if (connection_specific(resp->headers[i].name)) continue;
    lowercase(resp->headers[i].name); /* HTTP/2 and HTTP/3 field names are lowercase */
    add(f, resp->headers[i].name, resp->headers[i].value);
  }
  if (extra_name) {
    snprintf(f->extra_name, sizeof f->extra_name, "%s", extra_name);
    lowercase(f->extra_name);
    add(f, f->extra_name, extra_value ? extra_value : "");
  }
  if (resp->status != 304 && resp->status != 204 && resp->status >= 200 && !resp->stream) {
    snprintf(f->length_text, sizeof f->length_text, "%lld", (long long)f->body_length);
    add(f, "content-length", f->length_text);
  }
}
