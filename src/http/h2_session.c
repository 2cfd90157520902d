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
#include <strings.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "common/random.h"
#include "http/response_file.h"
#include "http/stream_head.h"
#include "metrics/metrics.h"

#define H2_MAX_CONCURRENT_STREAMS 100
#define H2_DEFAULT_TIMEOUT_MS 60000
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
  /* bounded resources for responses (see h2_session.h) */
  int open_files;                  /* streams holding a response file slot */
  h2_stream *file_queue, *file_queue_tail; /* file responses waiting for a slot, unopened */
  int pump_queue;                  /* a slot freed inside a callback: pump once nghttp2 returns */
  size_t buffered;                 /* in-memory response bytes not yet handed to nghttp2 */
  int sending;                     /* streams with response data pending (or queued) */
  uint64_t last_activity_ms;       /* last request bytes received or response finished */
  uint64_t progress_ms;            /* last progress of pending responses */
  size_t progress_bytes;           /* DATA written since progress_ms */
  double control_tokens;           /* flood bucket */
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
  /* response data: out (own bytes) then static_body (shared), or the file */
  reel_buf out;
  size_t out_pos;
  const uint8_t *static_body;
  size_t static_len, static_pos;
  int file_fd;
  int64_t file_pos, file_remaining;
  int file_slot;      /* counts in the session's open_files */
  int sending;        /* counts in the session's sending */
  size_t buffered;    /* counts in the session's buffered */
  /* a file response waiting for a slot (moved here, not opened yet) */
  int queued;
  int queued_send_body;
  reel_http_response queued_resp;
  h2_stream *queue_next;
};

static void transport_send(reel_http_request *req, reel_http_response *resp);
static void transport_free(reel_http_request *req);
static const reel_http_transport h2_transport = {.send = transport_send, .free = transport_free};

/* ---- streams ---- */

static uint64_t now_ms(void) { return reel_mono_ns() / 1000000; }

/* The stream has response data pending (or a queued response). */
static void stream_sending(reel_h2_session *s, h2_stream *st) {
  if (st->sending) return;
  st->sending = 1;
  if (s->sending++ == 0) {
    s->progress_ms = now_ms();
    s->progress_bytes = 0;
  }
}

/* The stream's response data is all handed over (or will never be). */
static void stream_done_sending(reel_h2_session *s, h2_stream *st) {
  if (!st->sending) return;
  st->sending = 0;
  s->sending--;
  s->buffered -= st->buffered;
  st->buffered = 0;
  s->last_activity_ms = now_ms();
}

/* Gives back the stream's file slot and closes its file. */
static void stream_release_file(reel_h2_session *s, h2_stream *st) {
  if (st->file_fd >= 0) close(st->file_fd);
  st->file_fd = -1;
  if (!st->file_slot) return;
  st->file_slot = 0;
  s->open_files--;
  s->pump_queue = 1;
}

/* Takes the stream out of the file queue (its response is dropped). */
static void stream_dequeue(reel_h2_session *s, h2_stream *st) {
  if (!st->queued) return;
  h2_stream **pp = &s->file_queue, *prev = NULL;
  while (*pp && *pp != st) prev = *pp, pp = &(*pp)->queue_next;
  if (*pp) *pp = st->queue_next;
  if (s->file_queue_tail == st) s->file_queue_tail = prev;
  st->queue_next = NULL;
  st->queued = 0;
  reel_http_response_free(&st->queued_resp);
}

/* Undoes everything the stream counts for in its session. */
static void stream_forget(reel_h2_session *s, h2_stream *st) {
  stream_dequeue(s, st);
  stream_done_sending(s, st);
  stream_release_file(s, st);
}

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
  reel_buf_free(&st->out);
  if (st->file_fd >= 0) close(st->file_fd);
  if (st->queued) reel_http_response_free(&st->queued_resp);
  free(st);
}

static void transport_free(reel_http_request *req) { stream_free((h2_stream *)req); }

/* The stream has gone away on the wire: free it, or detach it while its
 * request is with the handler. */
static void stream_release(h2_stream *st) {
  if (st->session) stream_forget(st->session, st);
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
  st->file_fd = -1;
  reel_stream_head_init(&st->head, s->cfg.max_header_bytes, s->cfg.max_body_bytes);
  reel_buf_init(&st->out, 0);
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
  reel_http_request *r = &st->req;
  reel_request_id_new(r->request_id);
  snprintf(r->remote_addr, sizeof r->remote_addr, "%s", s->cfg.remote ? s->cfg.remote : "");
  r->scheme = s->cfg.secure ? "https" : "http";
  st->handling = 1;
  s->handling++;
  reel_stream_head_dispatch(&st->head, r, "HTTP/2", s->cfg.handler, s->cfg.app);
}

/* ---- response ---- */

static ssize_t read_body(nghttp2_session *ng, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
  (void)ng, (void)stream_id, (void)user_data;
  h2_stream *st = source->ptr;
  reel_h2_session *s = st->session;
  if (st->file_fd >= 0) {
    size_t n = st->file_remaining < (int64_t)length ? (size_t)st->file_remaining : length;
    ssize_t got = n > 0 ? pread(st->file_fd, buf, n, st->file_pos) : 0;
    if (n > 0 && got <= 0) {
      reel_log(REEL_LOG_ERROR, "file read failed mid-response", "{s:s}", "request_id", st->req.request_id);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    }
    st->file_pos += got;
    st->file_remaining -= got;
    if (st->file_remaining <= 0) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      if (s) { /* every byte is read: the slot goes to the next file response */
        stream_release_file(s, st);
        stream_done_sending(s, st);
      }
    }
    return got;
  }
  size_t n = 0;
  size_t left = st->out.len - st->out_pos;
  if (left > 0) {
    n = left < length ? left : length;
    memcpy(buf, st->out.data + st->out_pos, n);
    st->out_pos += n;
    if (s && st->buffered >= n) {
      st->buffered -= n;
      s->buffered -= n;
    }
  }
  if (n < length && st->static_pos < st->static_len) {
    size_t m = st->static_len - st->static_pos < length - n ? st->static_len - st->static_pos : length - n;
    memcpy(buf + n, st->static_body + st->static_pos, m);
    st->static_pos += m;
    n += m;
  }
  if (st->out_pos >= st->out.len && st->static_pos >= st->static_len) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s) stream_done_sending(s, st);
  }
  return (ssize_t)n;
}

/* Header fields HTTP/2 forbids (connection-specific, RFC 9113 section 8.2.2). */
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

/* Submits resp (its final form) on st and moves its body into the stream;
 * the request's own bytes are freed (nothing reads them any more). */
static void stream_submit(reel_h2_session *s, h2_stream *st, reel_http_response *resp, int send_body) {
  int64_t length = resp->file_fd >= 0 || resp->file_open ? resp->file_length
                                                         : (int64_t)(resp->body.len + resp->static_len);
  /* ":status", the response headers, the extra header and content-length */
  nghttp2_nv nva[REEL_HTTP_MAX_RESPONSE_HEADERS + 3];
  char status_text[8], length_text[24];
  size_t n = 0;
  snprintf(status_text, sizeof status_text, "%d", resp->status);
  nva[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status_text, 7, strlen(status_text), NGHTTP2_NV_FLAG_NONE};
  for (int i = 0; i < resp->n_headers; i++) {
    if (connection_specific(resp->headers[i].name)) continue;
    lowercase(resp->headers[i].name); /* HTTP/2 field names are lowercase */
    nva[n++] = (nghttp2_nv){(uint8_t *)resp->headers[i].name, (uint8_t *)resp->headers[i].value,
                            strlen(resp->headers[i].name), strlen(resp->headers[i].value), NGHTTP2_NV_FLAG_NONE};
  }
  char extra_name[64];
  if (s->cfg.extra_header_name) {
    snprintf(extra_name, sizeof extra_name, "%s", s->cfg.extra_header_name);
    lowercase(extra_name);
    nva[n++] = (nghttp2_nv){(uint8_t *)extra_name, (uint8_t *)s->cfg.extra_header_value, strlen(extra_name),
                            strlen(s->cfg.extra_header_value), NGHTTP2_NV_FLAG_NONE};
  }
  if (resp->status != 304 && resp->status != 204 && resp->status >= 200) {
    snprintf(length_text, sizeof length_text, "%lld", (long long)length);
    nva[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)length_text, 14, strlen(length_text),
                            NGHTTP2_NV_FLAG_NONE};
  }
  if (send_body && resp->file_fd >= 0) {
    st->file_fd = resp->file_fd;
    resp->file_fd = -1;
    st->file_pos = resp->file_offset;
    st->file_remaining = resp->file_length;
  } else if (send_body) {
    st->out = resp->body; /* moved */
    reel_buf_init(&resp->body, 0);
    st->out_pos = 0;
    st->static_body = resp->static_body;
    st->static_len = resp->static_len;
    st->buffered = st->out.len;
    s->buffered += st->buffered;
  }
  int with_body = send_body && length > 0;
  if (with_body) stream_sending(s, st);
  nghttp2_data_provider provider = {.source = {.ptr = st}, .read_callback = read_body};
  int rc = nghttp2_submit_response(s->ng, st->id, nva, n, with_body ? &provider : NULL);
  reel_http_response_free(resp); /* nghttp2 copied the header fields */
  st->responded = 1;
  if (!with_body) stream_release_file(s, st); /* e.g. a file response that became empty */
  /* the request's bytes (head and body) are not needed any more */
  st->req.method = st->req.path = st->req.query = st->req.body = REEL_SLICE_LIT("-");
  st->req.headers = NULL;
  st->req.n_headers = 0;
  reel_stream_head_free(&st->head);
  if (rc != 0) {
    stream_forget(s, st);
    nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
  }
}

/* Opens the file of resp for st in a slot just taken; without one the
 * response was rewritten (503/404) and the slot is given back. */
static void stream_open_file(reel_h2_session *s, h2_stream *st, reel_http_response *resp) {
  st->file_slot = 1;
  s->open_files++;
  if (reel_http_response_open_file(resp, &st->req) != 0) {
    st->file_slot = 0;
    s->open_files--;
  }
}

/* Submits queued file responses while slots are free (never from inside an
 * nghttp2 call). */
static void pump_file_queue(reel_h2_session *s) {
  s->pump_queue = 0;
  while (s->file_queue && s->open_files < REEL_H2_MAX_OPEN_FILES) {
    h2_stream *st = s->file_queue;
    s->file_queue = st->queue_next;
    if (!s->file_queue) s->file_queue_tail = NULL;
    st->queue_next = NULL;
    st->queued = 0;
    reel_http_response resp = st->queued_resp;
    reel_http_response_init(&st->queued_resp, 0);
    stream_open_file(s, st, &resp);
    reel_http_request_finished(&st->req, resp.status);
    stream_done_sending(s, st); /* counted again by stream_submit if a body follows */
    stream_submit(s, st, &resp, st->queued_send_body);
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
  s->last_activity_ms = now_ms();
  int head = reel_slice_eq(req->method, "HEAD");
  int send_body = !head && !resp->head_only && resp->status != 304 && resp->status != 204;
  if (send_body && reel_http_response_wants_file(resp)) {
    if (s->open_files >= REEL_H2_MAX_OPEN_FILES || s->file_queue) {
      /* every slot is taken by responses the client has not read: wait, unopened */
      st->queued_resp = *resp;
      reel_http_response_init(resp, 0);
      st->queued = 1;
      st->queued_send_body = send_body;
      if (s->file_queue_tail) s->file_queue_tail->queue_next = st;
      else s->file_queue = st;
      s->file_queue_tail = st;
      stream_sending(s, st);
      return;
    }
    stream_open_file(s, st, resp);
  } else if (send_body && resp->file_fd < 0 && s->buffered > 0 &&
             s->buffered + resp->body.len > REEL_H2_MAX_BUFFERED_BYTES) {
    reel_log(REEL_LOG_INFO, "HTTP/2 response refused: too many unread bytes", "{s:s, s:s, s:i}", "remote",
             s->cfg.remote ? s->cfg.remote : "", "request_id", req->request_id, "buffered", (int)s->buffered);
    reel_http_response_replace_problem(resp, req, 503, "overloaded", "Service unavailable",
                                       "this connection holds too many responses its client has not read");
  }
  reel_http_request_finished(req, resp->status);
  stream_submit(s, st, resp, send_body);
  if (!s->in_callback && s->cfg.on_output) s->cfg.on_output(s->cfg.io);
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data) {
  reel_h2_session *s = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  s->last_activity_ms = now_ms();
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
  if (len > 0) s->last_activity_ms = now_ms();
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
  if (frame->hd.type == NGHTTP2_DATA) {
    /* progress for the send deadline: enough bytes, or a response finished */
    s->progress_bytes += frame->hd.length;
    if (s->progress_bytes >= REEL_H2_PROGRESS_BYTES || (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      s->progress_ms = s->last_activity_ms = now_ms();
      s->progress_bytes = 0;
    }
  }
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
  if (!s->cfg.idle_timeout_ms) s->cfg.idle_timeout_ms = H2_DEFAULT_TIMEOUT_MS;
  if (!s->cfg.send_timeout_ms) s->cfg.send_timeout_ms = H2_DEFAULT_TIMEOUT_MS;
  s->last_activity_ms = s->progress_ms = now_ms();
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
  if (s->pump_queue) pump_file_queue(s);
  return 0;
}

int reel_h2_session_send(reel_h2_session *s, reel_buf *out, size_t max) {
  while (out->len < max) {
    if (s->pump_queue) pump_file_queue(s);
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
  if (why) *why = NULL;
  if (s->sending > 0) {
    if (why) *why = "HTTP/2 responses made no progress: connection closed";
    return s->progress_ms + s->cfg.send_timeout_ms;
  }
  if (s->handling > 0) return UINT64_MAX;
  return s->last_activity_ms + s->cfg.idle_timeout_ms;
}
