/* HTTP/2 streams as reel_http_requests, on nghttp2 without I/O. Each stream
 * owns copies of its header bytes and body, so a handler may answer after the
 * stream or the connection is gone (the request is then detached and freed by
 * its late send). Responses are submitted with a data provider that reads
 * from the in-memory body or the file range. */
#include "http/h2_session.h"

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
#include "http/stream_head.h"
#include "metrics/metrics.h"

#define H2_MAX_CONCURRENT_STREAMS 100

typedef struct h2_stream h2_stream;

struct reel_h2_session {
  nghttp2_session *ng;
  reel_h2_config cfg;
  h2_stream *streams; /* doubly linked: every stream object not yet freed or detached */
  int handling;
  int in_callback; /* inside mem_recv or mem_send: no on_output, no reentry */
  int freeing;
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
  /* response data */
  reel_buf out;
  size_t out_pos;
  int file_fd;
  int64_t file_pos, file_remaining;
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
  reel_buf_free(&st->out);
  if (st->file_fd >= 0) close(st->file_fd);
  free(st);
}

static void transport_free(reel_http_request *req) { stream_free((h2_stream *)req); }

/* The stream has gone away on the wire: free it, or detach it while its
 * request is with the handler. */
static void stream_release(h2_stream *st) {
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
  if (st->file_fd >= 0) {
    size_t n = st->file_remaining < (int64_t)length ? (size_t)st->file_remaining : length;
    ssize_t got = n > 0 ? pread(st->file_fd, buf, n, st->file_pos) : 0;
    if (n > 0 && got <= 0) {
      reel_log(REEL_LOG_ERROR, "file read failed mid-response", "{s:s}", "request_id", st->req.request_id);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    }
    st->file_pos += got;
    st->file_remaining -= got;
    if (st->file_remaining <= 0) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return got;
  }
  size_t left = st->out.len - st->out_pos;
  size_t n = left < length ? left : length;
  if (n > 0) memcpy(buf, st->out.data + st->out_pos, n);
  st->out_pos += n;
  if (st->out_pos >= st->out.len) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
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

static void transport_send(reel_http_request *req, reel_http_response *resp) {
  h2_stream *st = (h2_stream *)req;
  reel_h2_session *s = st->session;
  st->handling = 0;
  if (s) s->handling--;
  reel_http_request_finished(req, resp->status);
  if (!s || st->closed) {
    /* the stream ended while the handler ran (it was not detached: same tick) */
    reel_http_response_free(resp);
    if (!s) stream_free(st);
    else stream_release(st);
    return;
  }
  int64_t length = resp->file_fd >= 0 ? resp->file_length : (int64_t)resp->body.len;
  int head = reel_slice_eq(req->method, "HEAD");
  int send_body = !head && !resp->head_only && resp->status != 304 && resp->status != 204;
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
  }
  nghttp2_data_provider provider = {.source = {.ptr = st}, .read_callback = read_body};
  int rc = nghttp2_submit_response(s->ng, st->id, nva, n, send_body && length > 0 ? &provider : NULL);
  reel_http_response_free(resp); /* nghttp2 copied the header fields */
  st->responded = 1;
  if (rc != 0) {
    nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
  }
  if (!s->in_callback && s->cfg.on_output) s->cfg.on_output(s->cfg.io);
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data) {
  reel_h2_session *s = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  h2_stream *st = stream_new(s, frame->hd.stream_id);
  if (!st) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
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
  h2_stream *st = nghttp2_session_get_stream_user_data(ng, stream_id);
  if (!st || st->dispatched) return 0; /* e.g. after an early 413: discarded */
  if (reel_stream_head_add_body(&st->head, data, len) != 0) {
    stream_dispatch(s, st);
  }
  return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data) {
  reel_h2_session *s = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
  if (!st || st->dispatched) return 0;
  if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) || st->head.error_status) stream_dispatch(s, st);
  return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data) {
  (void)user_data;
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

reel_h2_session *reel_h2_session_new(const reel_h2_config *cfg) {
  reel_h2_session *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->cfg = *cfg;
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
  int rc = nghttp2_session_server_new(&s->ng, cb, s);
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
  free(s);
}

int reel_h2_session_recv(reel_h2_session *s, const void *data, size_t len) {
  s->in_callback++;
  ssize_t rc = nghttp2_session_mem_recv(s->ng, data, len);
  s->in_callback--;
  if (rc < 0) {
    reel_log(REEL_LOG_INFO, "HTTP/2 session error", "{s:s,s:s}", "remote", s->cfg.remote ? s->cfg.remote : "",
             "error", nghttp2_strerror((int)rc));
    return rc == NGHTTP2_ERR_NOMEM ? REEL_ENOMEM : REEL_EPARSE;
  }
  return 0;
}

int reel_h2_session_send(reel_h2_session *s, reel_buf *out, size_t max) {
  while (out->len < max) {
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
  nghttp2_session_terminate_session(s->ng, internal_error ? NGHTTP2_INTERNAL_ERROR : NGHTTP2_NO_ERROR);
}
