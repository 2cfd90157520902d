/* HTTP/2 streams as reel_http_requests, on nghttp2 without I/O. Each stream
 * owns copies of its header bytes and body, so a handler may answer after the
 * stream or the connection is gone (the request is then detached and freed by
 * its late send). Responses are submitted with a data provider that reads
 * from the in-memory body, the shared static body or the file range; what a
 * connection may hold for responses its client does not read is bounded (see
 * h2_session.h). */
#include "http/h2_session.h"

#include <malloc.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "http/body_stream.h"
#include "http/send_budget.h"
#include "http/stream_head.h"
#include "metrics/metrics.h"

#define H2_MAX_CONCURRENT_STREAMS 100
#define H2_TRIM_AFTER_STREAMS 64 /* a session that had this many streams trims the heap when freed */
/* control frames (PING, SETTINGS, PRIORITY, RST_STREAM, empty DATA): a burst,
 * then a sustained rate per second, beyond which the client is flooding */
#define H2_CONTROL_BURST 1000.0
#define H2_CONTROL_RATE 100.0

typedef struct h2_stream h2_stream;

/* Sessions alive that have had many streams (loop thread only). */
static int busy_sessions;

struct reel_h2_session {
  nghttp2_session *ng;
  reel_h2_config cfg;
  h2_stream *streams; /* doubly linked: every stream object not yet freed or detached */
  int handling;
  int in_callback; /* inside mem_recv or mem_send: no on_output, no reentry */
  int freeing;
  int terminated; /* GOAWAY for an error submitted: the first code stands */
  int streams_seen;
  /* bounded resources for responses (see h2_session.h): buffered counts the
   * in-memory bytes not yet handed to nghttp2, progress is DATA written; a
   * freed slot is pumped once nghttp2 returns */
  reel_send_budget budget;
  double control_tokens; /* flood bucket */
  uint64_t control_ns;
};

struct h2_stream {
  reel_http_request req; /* first: the transport casts back */
  reel_h2_session *session; /* NULL once detached */
  h2_stream *prev, *next;
  int32_t id;
  reel_stream_head head; /* fields and body as they arrive */
  int dispatched; /* handed to the handler (or answered with an error) */
  int handling;   /* handler has not answered yet */
  int responded;  /* response submitted */
  int closed;     /* nghttp2 closed the stream */
  reel_send_stream send; /* the response body and what it counts for in the session's budget */
};

static void transport_send(reel_http_request *req, reel_http_response *resp);
static void transport_free(reel_http_request *req);
static const reel_http_transport h2_transport = {.send = transport_send, .free = transport_free};

/* ---- streams ---- */

static void stream_unlink(h2_stream *st) {
  reel_h2_session *s = st->session;
  if (!s) return;
  if (st->prev) st->prev->next = st->next;
  else s->streams = st->next;
  if (st->next) st->next->prev = st->prev;
  st->prev = st->next = NULL;
}

static void stream_free(h2_stream *st) {
  reel_stream_head_free(&st->head);
  reel_send_stream_free(&st->send);
  free(st);
}

static void transport_free(reel_http_request *req) { stream_free((h2_stream *)req); }

/* The stream has gone away on the wire: free it, or detach it while its
 * request is with the handler. */
static void stream_release(h2_stream *st) {
  if (st->session) reel_send_budget_forget(&st->session->budget, &st->send, 0);
  stream_unlink(st);
  st->session = NULL;
  if (st->handling) reel_http_request_detach(&st->req);
  else stream_free(st);
}

static h2_stream *stream_new(reel_h2_session *s, int32_t id) {
  h2_stream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->session = s;
  st->id = id;
  reel_stream_head_init(&st->head, s->cfg.max_header_bytes, s->cfg.max_body_bytes);
  reel_send_stream_init(&st->send, &st->req);
  st->next = s->streams;
  if (st->next) st->next->prev = st;
  s->streams = st;
  st->req.protocol = REEL_HTTP_2;
  st->req.start_ns = reel_mono_ns();
  st->req.transport = &h2_transport;
  return st;
}

/* ---- dispatch ---- */

/* Builds the request's slices (the raw buffer no longer grows) and hands it to
 * the handler, or answers the error found while receiving. */
static void stream_dispatch(reel_h2_session *s, h2_stream *st) {
  if (st->dispatched) return;
  st->dispatched = 1;
  st->handling = 1;
  s->handling++;
  reel_stream_head_dispatch(&st->head, &st->req, "HTTP/2", s->cfg.remote, s->cfg.secure ? "https" : "http",
                            s->cfg.handler, s->cfg.app);
}

/* ---- response ---- */

static ssize_t read_body(nghttp2_session *ng, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
  (void)ng, (void)stream_id, (void)user_data;
  h2_stream *st = source->ptr;
  reel_h2_session *s = st->session;
  reel_send_stream *bs = &st->send;
  if (bs->stream) { /* a streamed body: what has arrived, deferred while nothing has */
    if (reel_body_stream_state_of(bs->stream) == REEL_BODY_STREAM_ABORTED)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream: the client sees it cut short */
    size_t n = reel_body_stream_take(bs->stream, buf, length);
    if (reel_body_stream_state_of(bs->stream) == REEL_BODY_STREAM_ENDED) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      reel_send_stream_end_stream(s ? &s->budget : NULL, bs);
    } else if (n == 0) {
      return NGHTTP2_ERR_DEFERRED; /* stream_wake resumes it */
    }
    return (ssize_t)n;
  }
  if (bs->file_fd >= 0) {
    size_t n = bs->file_remaining < (int64_t)length ? (size_t)bs->file_remaining : length;
    ssize_t got = n > 0 ? pread(bs->file_fd, buf, n, bs->file_pos) : 0;
    if (n > 0 && got <= 0) {
      reel_log(REEL_LOG_ERROR, "file read failed mid-response", "{s:s}", "request_id", st->req.request_id);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    }
    bs->file_pos += got;
    bs->file_remaining -= got;
    if (bs->file_remaining <= 0) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      if (s) { /* every byte is read: the slot goes to the next file response */
        reel_send_budget_release_file(&s->budget, bs);
        reel_send_budget_done(&s->budget, bs, 0);
      }
    }
    return got;
  }
  size_t n = 0;
  size_t left = bs->out.len - bs->out_pos;
  if (left > 0) {
    n = left < length ? left : length;
    memcpy(buf, bs->out.data + bs->out_pos, n);
    bs->out_pos += n;
    if (s) reel_send_budget_unbuffer(&s->budget, bs, n);
  }
  if (n < length && bs->static_pos < bs->static_len) {
    size_t m = bs->static_len - bs->static_pos < length - n ? bs->static_len - bs->static_pos : length - n;
    memcpy(buf + n, bs->static_body + bs->static_pos, m);
    bs->static_pos += m;
    n += m;
  }
  if (bs->out_pos >= bs->out.len && bs->static_pos >= bs->static_len) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s) reel_send_budget_done(&s->budget, bs, 0);
  }
  return (ssize_t)n;
}

/* A streamed body has news: resume the deferred DATA (or reset the stream
 * when the body was aborted, which flow control may keep read_body from
 * seeing) and have the owner write on its next turn. */
static void stream_wake(void *ctx) {
  h2_stream *st = ctx;
  reel_h2_session *s = st->session;
  if (!s || st->closed) return;
  if (reel_body_stream_state_of(st->send.stream) == REEL_BODY_STREAM_ABORTED)
    nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
  else
    nghttp2_session_resume_data(s->ng, st->id);
  if (!s->in_callback && s->cfg.on_output) s->cfg.on_output(s->cfg.io);
}

/* Submits resp (its final form) on st and moves its body into the stream;
 * the request's own bytes are freed (nothing reads them any more). */
static void stream_submit(reel_h2_session *s, h2_stream *st, reel_http_response *resp, int send_body) {
  reel_send_fields f;
  reel_send_fields_build(&f, resp, s->cfg.extra_header_name, s->cfg.extra_header_value);
  nghttp2_nv nva[REEL_SEND_MAX_FIELDS];
  for (size_t i = 0; i < f.n; i++)
    nva[i] = (nghttp2_nv){(uint8_t *)f.field[i].name, (uint8_t *)f.field[i].value, strlen(f.field[i].name),
                          strlen(f.field[i].value), NGHTTP2_NV_FLAG_NONE};
  reel_send_stream_take_body(&s->budget, &st->send, resp, send_body);
  int streamed = st->send.stream != NULL;
  int with_body = send_body && (f.body_length > 0 || streamed);
  if (with_body && !streamed) reel_send_budget_start(&s->budget, &st->send);
  if (streamed) reel_body_stream_attach(st->send.stream, stream_wake, st);
  nghttp2_data_provider provider = {.source = {.ptr = st}, .read_callback = read_body};
  int rc = nghttp2_submit_response(s->ng, st->id, nva, f.n, with_body ? &provider : NULL);
  reel_http_response_free(resp); /* nghttp2 copied the header fields */
  st->responded = 1;
  if (!with_body) reel_send_budget_release_file(&s->budget, &st->send); /* e.g. a file response that became empty */
  /* the request's bytes (head and body) are not needed any more */
  st->req.method = st->req.path = st->req.query = st->req.body = REEL_SLICE_LIT("-");
  st->req.headers = NULL;
  st->req.n_headers = 0;
  reel_stream_head_free(&st->head);
  if (rc != 0) {
    reel_send_budget_forget(&s->budget, &st->send, 0);
    nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
  }
}

/* Submits queued file responses while slots are free (never from inside an
 * nghttp2 call). */
static void pump_file_queue(reel_h2_session *s) {
  reel_http_response resp;
  int send_body;
  reel_http_request *req;
  while ((req = reel_send_budget_next_queued(&s->budget, &resp, &send_body))) {
    h2_stream *st = (h2_stream *)req;
    reel_send_budget_done(&s->budget, &st->send, 0); /* counted again by stream_submit if a body follows */
    stream_submit(s, st, &resp, send_body);
  }
}

static void transport_send(reel_http_request *req, reel_http_response *resp) {
  h2_stream *st = (h2_stream *)req;
  reel_h2_session *s = st->session;
  st->handling = 0;
  if (s) s->handling--;
  if (!s || st->closed) {
    /* the stream ended while the handler ran (it was not detached: same tick) */
    reel_http_request_finished(req, resp->status);
    reel_http_response_free(resp);
    if (!s) stream_free(st);
    else stream_release(st);
    return;
  }
  reel_send_budget_activity(&s->budget);
  int send_body = reel_send_wants_body(req, resp);
  if (reel_send_budget_admit(&s->budget, &st->send, resp, send_body)) return; /* waits, unopened, for a file slot */
  stream_submit(s, st, resp, send_body);
  if (!s->in_callback && s->cfg.on_output) s->cfg.on_output(s->cfg.io);
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data) {
  reel_h2_session *s = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  reel_send_budget_activity(&s->budget);
  h2_stream *st = stream_new(s, frame->hd.stream_id);
  if (!st) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (++s->streams_seen == H2_TRIM_AFTER_STREAMS) busy_sessions++;
  nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, st);
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
  (void)flags, (void)user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0; /* trailers: ignored */
  h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
  if (!st || st->head.error_status) return 0;
  reel_stream_head_add_field(&st->head, name, namelen, value, valuelen, 4);
  return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
  (void)flags;
  reel_h2_session *s = user_data;
  if (len > 0) reel_send_budget_activity(&s->budget);
  h2_stream *st = nghttp2_session_get_stream_user_data(ng, stream_id);
  if (!st || st->dispatched) return 0; /* e.g. after an early 413: discarded */
  if (reel_stream_head_add_body(&st->head, data, len) != 0) {
    stream_dispatch(s, st);
  }
  return 0;
}

/* Ends the session with GOAWAY ENHANCE_YOUR_CALM (once). */
static void session_calm(reel_h2_session *s, const char *what) {
  if (s->terminated) return;
  s->terminated = 1;
  reel_log(REEL_LOG_WARN, "HTTP/2 flood: connection closed", "{s:s, s:s}", "remote",
           s->cfg.remote ? s->cfg.remote : "", "flood", what);
  nghttp2_session_terminate_session(s->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* Counts one control frame against the flood bucket; 1 when over the rate. */
static int control_flood(reel_h2_session *s) {
  uint64_t now = reel_mono_ns();
  s->control_tokens += (double)(now - s->control_ns) / 1e9 * H2_CONTROL_RATE;
  if (s->control_tokens > H2_CONTROL_BURST) s->control_tokens = H2_CONTROL_BURST;
  s->control_ns = now;
  s->control_tokens -= 1.0;
  return s->control_tokens < 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data) {
  reel_h2_session *s = user_data;
  int control = frame->hd.type == NGHTTP2_PING || frame->hd.type == NGHTTP2_PRIORITY ||
                frame->hd.type == NGHTTP2_RST_STREAM ||
                (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) ||
                (frame->hd.type == NGHTTP2_DATA && frame->hd.length == 0 &&
                 !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM));
  if (control && control_flood(s)) {
    session_calm(s, frame->hd.type == NGHTTP2_PING       ? "PING"
                    : frame->hd.type == NGHTTP2_SETTINGS ? "SETTINGS"
                    : frame->hd.type == NGHTTP2_RST_STREAM ? "RST_STREAM"
                    : frame->hd.type == NGHTTP2_PRIORITY ? "PRIORITY"
                                                         : "empty DATA");
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
  if (!st || st->dispatched) return 0;
  if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) || st->head.error_status) stream_dispatch(s, st);
  return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data) {
  reel_h2_session *s = user_data;
  if (frame->hd.type == NGHTTP2_DATA) /* progress for the send deadline: enough bytes, or a response finished */
    reel_send_budget_progress(&s->budget, frame->hd.length, (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
  if ((frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) ||
      !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  /* answered before the request ended (413, 431): stop the upload */
  if (nghttp2_session_get_stream_remote_close(ng, frame->hd.stream_id) == 0)
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t stream_id, uint32_t error_code, void *user_data) {
  (void)error_code;
  reel_h2_session *s = user_data;
  if (s->freeing) return 0;
  h2_stream *st = nghttp2_session_get_stream_user_data(ng, stream_id);
  if (!st) return 0;
  nghttp2_session_set_stream_user_data(ng, stream_id, NULL);
  st->closed = 1;
  if (st->handling) s->handling--;
  stream_release(st);
  return 0;
}

/* ---- session ---- */

/* A busy session ends: when it was the last one, freed heap pages go back to
 * the system, so the memory many small stream objects held is not kept after
 * a burst (once per burst: malloc_trim walks the heap). */
static void busy_session_ended(void) {
  if (--busy_sessions == 0) malloc_trim(0);
}

reel_h2_session *reel_h2_session_new(const reel_h2_config *cfg) {
  reel_h2_session *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->cfg = *cfg;
  reel_send_budget_init(&s->budget, &(reel_send_limits){.protocol = "HTTP/2",
                                                        .remote = cfg->remote,
                                                        .max_open_files = REEL_H2_MAX_OPEN_FILES,
                                                        .max_buffered_bytes = REEL_H2_MAX_BUFFERED_BYTES,
                                                        .progress_bytes = REEL_H2_PROGRESS_BYTES,
                                                        .idle_timeout_ms = cfg->idle_timeout_ms,
                                                        .send_timeout_ms = cfg->send_timeout_ms});
  s->control_tokens = H2_CONTROL_BURST;
  s->control_ns = reel_mono_ns();
  nghttp2_session_callbacks *cb;
  if (nghttp2_session_callbacks_new(&cb) != 0) {
    free(s);
    return NULL;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  /* nghttp2's own stream-reset limit stays as a backstop, looser than ours
   * (which answers ENHANCE_YOUR_CALM rather than INTERNAL_ERROR) */
  nghttp2_option *opt = NULL;
  int rc = nghttp2_option_new(&opt);
  if (rc == 0) {
    nghttp2_option_set_stream_reset_rate_limit(opt, (uint64_t)(H2_CONTROL_BURST * 4), (uint64_t)(H2_CONTROL_RATE * 4));
    rc = nghttp2_session_server_new2(&s->ng, cb, s, opt);
    nghttp2_option_del(opt);
  }
  nghttp2_session_callbacks_del(cb);
  if (rc != 0) {
    free(s);
    return NULL;
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_CONCURRENT_STREAMS},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->max_header_bytes},
  };
  if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof *iv) != 0) {
    nghttp2_session_del(s->ng);
    free(s);
    return NULL;
  }
  return s;
}

void reel_h2_session_free(reel_h2_session *s) {
  if (!s) return;
  s->freeing = 1;
  nghttp2_session_del(s->ng);
  while (s->streams) {
    h2_stream *st = s->streams;
    if (st->handling) s->handling--;
    stream_release(st);
  }
  int busy = s->streams_seen >= H2_TRIM_AFTER_STREAMS;
  free(s);
  if (busy) busy_session_ended();
}

int reel_h2_session_recv(reel_h2_session *s, const void *data, size_t len) {
  s->in_callback++;
  ssize_t rc = nghttp2_session_mem_recv(s->ng, data, len);
  s->in_callback--;
  if (rc == NGHTTP2_ERR_FLOODED) { /* nghttp2's own detection: the client does not read what it asks for */
    session_calm(s, "unread control frame answers");
    return REEL_EPARSE;
  }
  if (rc < 0) {
    reel_log(REEL_LOG_INFO, "HTTP/2 session error", "{s:s,s:s}", "remote", s->cfg.remote ? s->cfg.remote : "",
             "error", nghttp2_strerror((int)rc));
    return rc == NGHTTP2_ERR_NOMEM ? REEL_ENOMEM : REEL_EPARSE;
  }
  if (reel_send_budget_take_pump(&s->budget)) pump_file_queue(s);
  return 0;
}

int reel_h2_session_send(reel_h2_session *s, reel_buf *out, size_t max) {
  while (out->len < max) {
    if (reel_send_budget_take_pump(&s->budget)) pump_file_queue(s);
    const uint8_t *data;
    s->in_callback++;
    ssize_t n = nghttp2_session_mem_send(s->ng, &data);
    s->in_callback--;
    if (n < 0) return n == NGHTTP2_ERR_NOMEM ? REEL_ENOMEM : REEL_EIO;
    if (n == 0) break;
    if (reel_buf_append(out, data, (size_t)n) != 0) return REEL_ENOMEM;
  }
  return 0;
}

int reel_h2_session_want_io(const reel_h2_session *s) {
  return nghttp2_session_want_read(s->ng) || nghttp2_session_want_write(s->ng);
}

int reel_h2_session_handling(const reel_h2_session *s) { return s->handling; }

void reel_h2_session_shutdown(reel_h2_session *s) {
  nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng),
                        NGHTTP2_NO_ERROR, NULL, 0);
}

void reel_h2_session_terminate(reel_h2_session *s, int internal_error) {
  if (s->terminated) return;
  s->terminated = 1;
  nghttp2_session_terminate_session(s->ng, internal_error ? NGHTTP2_INTERNAL_ERROR : NGHTTP2_NO_ERROR);
}

uint64_t reel_h2_session_deadline_ms(const reel_h2_session *s, const char **why) {
  int stalled;
  uint64_t at = reel_send_budget_deadline_ms(&s->budget, s->handling, &stalled);
  if (why) *why = stalled ? "HTTP/2 responses made no progress: connection closed" : NULL;
  return at;
}
