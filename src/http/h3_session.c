/* HTTP/3 request streams as reel_http_requests, on nghttp3 without I/O. Like
 * h2_session, each stream owns copies of its header bytes and body, so a
 * handler may answer after the stream or the connection is gone (the request
 * is then detached and freed by its late send). nghttp3 sends response bytes
 * by reference until QUIC reports them acknowledged, so a memory body stays
 * with its stream and a file range is read in chunks that are freed as the
 * peer acknowledges them (at most H3_FILE_WINDOW bytes read ahead). */
#include "http/h3_session.h"

#include <nghttp3/nghttp3.h>
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

#define H3_FILE_CHUNK (16 * 1024)
#define H3_FILE_WINDOW (16 * H3_FILE_CHUNK) /* file bytes read but not yet acknowledged */

typedef struct h3_stream h3_stream;

typedef struct file_chunk {
  struct file_chunk *next;
  size_t len;
  size_t acked;
  uint8_t data[];
} file_chunk;

struct reel_h3_session {
  nghttp3_conn *ng;
  reel_h3_session_config cfg;
  h3_stream *streams; /* doubly linked: every request stream not yet freed or detached */
  int n_streams;
  int handling;
  int in_call; /* inside a session function: no on_output */
  int freeing;
  int bound;
  int resume_pending; /* some stream waits for nghttp3_conn_resume_stream */
  uint64_t error_code;
};

struct h3_stream {
  reel_http_request req; /* first: the transport casts back */
  reel_h3_session *session; /* NULL once detached */
  h3_stream *prev, *next;
  int64_t id;
  reel_stream_head head; /* fields and body as they arrive */
  int head_done;    /* the header section ended (a later one holds trailers: ignored) */
  int read_done;    /* the request ended (FIN) */
  int dispatched; /* handed to the handler (or answered with an error) */
  int handling;   /* the handler has not answered yet */
  /* response data */
  reel_buf out;
  size_t out_pos;
  int file_fd;
  int64_t file_pos, file_remaining;
  file_chunk *chunks, *chunks_tail; /* handed to nghttp3, not yet acknowledged */
  size_t in_flight;
  int want_resume; /* read_data said WOULDBLOCK: resume when acknowledgements free room */
  int resume;
  int read_failed; /* the file could not be read: the stream is being reset */
};

static void transport_send(reel_http_request *req, reel_http_response *resp);
static void transport_free(reel_http_request *req);
static const reel_http_transport h3_transport = {.send = transport_send, .free = transport_free};

/* ---- streams ---- */

static void stream_unlink(h3_stream *st) {
  reel_h3_session *s = st->session;
  if (!s) return;
  if (st->prev) st->prev->next = st->next;
  else s->streams = st->next;
  if (st->next) st->next->prev = st->prev;
  st->prev = st->next = NULL;
  s->n_streams--;
}

static void stream_free(h3_stream *st) {
  reel_stream_head_free(&st->head);
  reel_buf_free(&st->out);
  if (st->file_fd >= 0) close(st->file_fd);
  while (st->chunks) {
    file_chunk *c = st->chunks;
    st->chunks = c->next;
    free(c);
  }
  free(st);
}

static void transport_free(reel_http_request *req) { stream_free((h3_stream *)req); }

/* The stream is gone on the wire (closed, reset, or the session is freed):
 * free it, or detach it while its request is with the handler. */
static void stream_release(h3_stream *st) {
  reel_h3_session *s = st->session;
  if (s && st->handling) s->handling--;
  if (s && !s->freeing) nghttp3_conn_set_stream_user_data(s->ng, st->id, NULL);
  stream_unlink(st);
  st->session = NULL;
  if (st->handling) reel_http_request_detach(&st->req);
  else stream_free(st);
}

static h3_stream *stream_find(reel_h3_session *s, int64_t id) {
  for (h3_stream *st = s->streams; st; st = st->next)
    if (st->id == id) return st;
  return NULL;
}

static h3_stream *stream_new(reel_h3_session *s, int64_t id) {
  h3_stream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->session = s;
  st->id = id;
  st->file_fd = -1;
  reel_stream_head_init(&st->head, s->cfg.max_header_bytes, s->cfg.max_body_bytes);
  reel_buf_init(&st->out, 0);
  st->next = s->streams;
  if (st->next) st->next->prev = st;
  s->streams = st;
  s->n_streams++;
  st->req.protocol = REEL_HTTP_3;
  st->req.start_ns = reel_mono_ns();
  st->req.transport = &h3_transport;
  return st;
}

/* ---- dispatch ---- */

/* Builds the request's slices (the raw buffer no longer grows) and hands it to
 * the handler, or answers the error found while receiving. */
static void stream_dispatch(reel_h3_session *s, h3_stream *st) {
  if (st->dispatched) return;
  st->dispatched = 1;
  reel_http_request *r = &st->req;
  reel_request_id_new(r->request_id);
  snprintf(r->remote_addr, sizeof r->remote_addr, "%s", s->cfg.remote ? s->cfg.remote : "");
  r->scheme = "https"; /* QUIC is always TLS */
  st->handling = 1;
  s->handling++;
  reel_stream_head_dispatch(&st->head, r, "HTTP/3", s->cfg.handler, s->cfg.app);
}

/* ---- response ---- */

static nghttp3_ssize read_body(nghttp3_conn *ng, int64_t stream_id, nghttp3_vec *vec, size_t veccnt,
                               uint32_t *pflags, void *conn_user_data, void *stream_user_data) {
  (void)ng, (void)stream_id, (void)conn_user_data;
  h3_stream *st = stream_user_data;
  if (!st || veccnt == 0 || st->read_failed) return NGHTTP3_ERR_WOULDBLOCK;
  if (st->file_fd < 0) {
    size_t left = st->out.len - st->out_pos;
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
    if (left == 0) return 0;
    vec[0].base = (uint8_t *)st->out.data + st->out_pos;
    vec[0].len = left;
    st->out_pos = st->out.len;
    return 1;
  }
  if (st->file_remaining <= 0) {
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
    return 0;
  }
  if (st->in_flight >= H3_FILE_WINDOW) {
    st->want_resume = 1;
    return NGHTTP3_ERR_WOULDBLOCK;
  }
  size_t n = st->file_remaining < H3_FILE_CHUNK ? (size_t)st->file_remaining : H3_FILE_CHUNK;
  file_chunk *c = malloc(sizeof *c + n);
  ssize_t got = c ? pread(st->file_fd, c->data, n, st->file_pos) : -1;
  if (got <= 0) {
    /* the head promised more bytes than we can send: only a reset is honest */
    free(c);
    reel_log(REEL_LOG_ERROR, "file read failed mid-response", "{s:s}", "request_id", st->req.request_id);
    st->read_failed = 1;
    reel_h3_session *s = st->session;
    if (s && s->cfg.shutdown_write) s->cfg.shutdown_write(s->cfg.io, st->id, REEL_H3_INTERNAL_ERROR);
    return NGHTTP3_ERR_WOULDBLOCK; /* never resumed: the reset ends the stream */
  }
  c->next = NULL;
  c->len = (size_t)got;
  c->acked = 0;
  if (st->chunks_tail) st->chunks_tail->next = c;
  else st->chunks = c;
  st->chunks_tail = c;
  st->in_flight += c->len;
  st->file_pos += got;
  st->file_remaining -= got;
  if (st->file_remaining <= 0) {
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
    close(st->file_fd); /* every byte is read; the chunks live until acknowledged */
    st->file_fd = -1;
    st->file_remaining = 0;
    st->out_pos = st->out.len; /* a closed file reads as an exhausted memory body */
  }
  vec[0].base = c->data;
  vec[0].len = c->len;
  return 1;
}

/* Header fields HTTP/3 forbids (connection-specific, RFC 9114 section 4.2);
 * content-length is added by us. */
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

static nghttp3_nv make_nv(const char *name, const char *value) {
  return (nghttp3_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value), NGHTTP3_NV_FLAG_NONE};
}

static void transport_send(reel_http_request *req, reel_http_response *resp) {
  h3_stream *st = (h3_stream *)req;
  reel_h3_session *s = st->session;
  st->handling = 0;
  if (s) s->handling--;
  reel_http_request_finished(req, resp->status);
  if (!s) {
    /* the stream went away while the handler ran (it was not detached: same tick) */
    reel_http_response_free(resp);
    stream_free(st);
    return;
  }
  int64_t length = resp->file_fd >= 0 ? resp->file_length : (int64_t)resp->body.len;
  int head = reel_slice_eq(req->method, "HEAD");
  int send_body = !head && !resp->head_only && resp->status != 304 && resp->status != 204;
  /* ":status", the response headers, the extra header and content-length */
  nghttp3_nv nva[REEL_HTTP_MAX_RESPONSE_HEADERS + 3];
  char status_text[8], length_text[24], extra_name[64];
  size_t n = 0;
  snprintf(status_text, sizeof status_text, "%d", resp->status);
  nva[n++] = make_nv(":status", status_text);
  for (int i = 0; i < resp->n_headers; i++) {
    if (connection_specific(resp->headers[i].name)) continue;
    lowercase(resp->headers[i].name); /* HTTP/3 field names are lowercase */
    nva[n++] = make_nv(resp->headers[i].name, resp->headers[i].value);
  }
  if (s->cfg.extra_header_name) {
    snprintf(extra_name, sizeof extra_name, "%s", s->cfg.extra_header_name);
    lowercase(extra_name);
    nva[n++] = make_nv(extra_name, s->cfg.extra_header_value ? s->cfg.extra_header_value : "");
  }
  if (resp->status != 304 && resp->status != 204 && resp->status >= 200) {
    snprintf(length_text, sizeof length_text, "%lld", (long long)length);
    nva[n++] = make_nv("content-length", length_text);
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
  nghttp3_data_reader reader = {.read_data = read_body};
  s->in_call++;
  int rc = nghttp3_conn_submit_response(s->ng, st->id, nva, n, send_body && length > 0 ? &reader : NULL);
  s->in_call--;
  reel_http_response_free(resp); /* nghttp3 copied the header fields */
  if (rc != 0) {
    reel_log(REEL_LOG_INFO, "HTTP/3 response not submitted", "{s:s,s:s}", "request_id", req->request_id,
             "error", nghttp3_strerror(rc));
    if (s->cfg.shutdown_write) s->cfg.shutdown_write(s->cfg.io, st->id, REEL_H3_INTERNAL_ERROR);
  }
  /* answered before the request ended (413, 431): stop the upload */
  if (!st->read_done && s->cfg.shutdown_read) s->cfg.shutdown_read(s->cfg.io, st->id, REEL_H3_NO_ERROR);
  if (!s->in_call && s->cfg.on_output) s->cfg.on_output(s->cfg.io);
}

/* ---- nghttp3 callbacks ---- */

static int on_acked(nghttp3_conn *ng, int64_t stream_id, uint64_t datalen, void *conn_user_data,
                    void *stream_user_data) {
  (void)ng, (void)stream_id;
  reel_h3_session *s = conn_user_data;
  h3_stream *st = stream_user_data;
  if (!st) return 0;
  while (st->chunks && datalen > 0) {
    file_chunk *c = st->chunks;
    size_t take = c->len - c->acked < datalen ? c->len - c->acked : (size_t)datalen;
    c->acked += take;
    datalen -= take;
    if (c->acked < c->len) break;
    st->chunks = c->next;
    if (!st->chunks) st->chunks_tail = NULL;
    st->in_flight -= c->len;
    free(c);
  }
  if (st->want_resume && st->in_flight < H3_FILE_WINDOW) {
    st->want_resume = 0;
    st->resume = 1;
    s->resume_pending = 1; /* resumed once nghttp3 returns */
  }
  return 0;
}

static int on_stream_close(nghttp3_conn *ng, int64_t stream_id, uint64_t app_error_code, void *conn_user_data,
                           void *stream_user_data) {
  (void)ng, (void)stream_id, (void)app_error_code;
  reel_h3_session *s = conn_user_data;
  h3_stream *st = stream_user_data;
  if (!st || s->freeing) return 0;
  stream_release(st);
  return 0;
}

static void consumed(reel_h3_session *s, int64_t stream_id, size_t n) {
  if (n > 0 && s->cfg.consumed) s->cfg.consumed(s->cfg.io, stream_id, n);
}

static int on_data(nghttp3_conn *ng, int64_t stream_id, const uint8_t *data, size_t datalen, void *conn_user_data,
                   void *stream_user_data) {
  (void)ng;
  reel_h3_session *s = conn_user_data;
  h3_stream *st = stream_user_data;
  consumed(s, stream_id, datalen); /* the body is ours now (capped below) */
  if (!st || st->dispatched) return 0; /* e.g. after an early 413: discarded */
  if (reel_stream_head_add_body(&st->head, data, datalen) != 0) {
    stream_dispatch(s, st);
  }
  return 0;
}

static int on_deferred_consume(nghttp3_conn *ng, int64_t stream_id, size_t n, void *conn_user_data,
                               void *stream_user_data) {
  (void)ng, (void)stream_user_data;
  consumed(conn_user_data, stream_id, n);
  return 0;
}

static int on_begin_headers(nghttp3_conn *ng, int64_t stream_id, void *conn_user_data, void *stream_user_data) {
  reel_h3_session *s = conn_user_data;
  if (stream_user_data) return 0;
  h3_stream *st = stream_new(s, stream_id);
  if (!st) return NGHTTP3_ERR_CALLBACK_FAILURE;
  nghttp3_conn_set_stream_user_data(ng, stream_id, st);
  return 0;
}

static int on_header(nghttp3_conn *ng, int64_t stream_id, int32_t token, nghttp3_rcbuf *name_buf,
                     nghttp3_rcbuf *value_buf, uint8_t flags, void *conn_user_data, void *stream_user_data) {
  (void)ng, (void)stream_id, (void)token, (void)flags, (void)conn_user_data;
  h3_stream *st = stream_user_data;
  if (!st || st->head.error_status || st->head_done) return 0;
  nghttp3_vec nv = nghttp3_rcbuf_get_buf(name_buf), vv = nghttp3_rcbuf_get_buf(value_buf);
  reel_stream_head_add_field(&st->head, nv.base, nv.len, vv.base, vv.len, 32); /* RFC 9114 section 4.2.2 */
  return 0;
}

static int on_end_headers(nghttp3_conn *ng, int64_t stream_id, int fin, void *conn_user_data,
                          void *stream_user_data) {
  (void)ng, (void)stream_id;
  h3_stream *st = stream_user_data;
  if (!st || st->head_done) return 0;
  st->head_done = 1;
  if (fin) st->read_done = 1; /* end_stream follows */
  if (st->head.error_status) stream_dispatch(conn_user_data, st); /* 431 or 413 without waiting for the body */
  return 0;
}

static int on_end_stream(nghttp3_conn *ng, int64_t stream_id, void *conn_user_data, void *stream_user_data) {
  (void)ng, (void)stream_id;
  h3_stream *st = stream_user_data;
  if (!st) return 0;
  st->read_done = 1;
  stream_dispatch(conn_user_data, st);
  return 0;
}

static int on_stop_sending(nghttp3_conn *ng, int64_t stream_id, uint64_t app_error_code, void *conn_user_data,
                           void *stream_user_data) {
  (void)ng, (void)stream_user_data;
  reel_h3_session *s = conn_user_data;
  if (s->cfg.shutdown_read) s->cfg.shutdown_read(s->cfg.io, stream_id, app_error_code);
  return 0;
}

static int on_reset_stream(nghttp3_conn *ng, int64_t stream_id, uint64_t app_error_code, void *conn_user_data,
                           void *stream_user_data) {
  (void)ng, (void)stream_user_data;
  reel_h3_session *s = conn_user_data;
  if (s->cfg.shutdown_write) s->cfg.shutdown_write(s->cfg.io, stream_id, app_error_code);
  return 0;
}

/* ---- session ---- */

reel_h3_session *reel_h3_session_new(const reel_h3_session_config *cfg) {
  reel_h3_session *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->cfg = *cfg;
  s->error_code = NGHTTP3_H3_NO_ERROR;
  nghttp3_callbacks cb = {
      .acked_stream_data = on_acked,
      .stream_close = on_stream_close,
      .recv_data = on_data,
      .deferred_consume = on_deferred_consume,
      .begin_headers = on_begin_headers,
      .recv_header = on_header,
      .end_headers = on_end_headers,
      .stop_sending = on_stop_sending,
      .end_stream = on_end_stream,
      .reset_stream = on_reset_stream,
  };
  nghttp3_settings settings;
  nghttp3_settings_default(&settings);
  settings.max_field_section_size = cfg->max_header_bytes;
  settings.qpack_max_dtable_capacity = 4096;
  settings.qpack_blocked_streams = 100;
  if (nghttp3_conn_server_new(&s->ng, &cb, &settings, NULL, s) != 0) {
    free(s);
    return NULL;
  }
  nghttp3_conn_set_max_client_streams_bidi(s->ng, cfg->max_streams_bidi);
  return s;
}

void reel_h3_session_free(reel_h3_session *s) {
  if (!s) return;
  s->freeing = 1;
  nghttp3_conn_del(s->ng);
  while (s->streams) stream_release(s->streams);
  free(s);
}

int reel_h3_session_bind_streams(reel_h3_session *s, int64_t control_id, int64_t qpack_encoder_id,
                                 int64_t qpack_decoder_id) {
  if (s->bound) return REEL_EINVAL;
  if (nghttp3_conn_bind_control_stream(s->ng, control_id) != 0 ||
      nghttp3_conn_bind_qpack_streams(s->ng, qpack_encoder_id, qpack_decoder_id) != 0)
    return REEL_EINVAL;
  s->bound = 1;
  return 0;
}

/* Turns an nghttp3 error into a reel error, remembering the code to close with. */
static int session_error(reel_h3_session *s, int rv, const char *what) {
  s->error_code = nghttp3_err_infer_quic_app_error_code(rv);
  reel_log(REEL_LOG_INFO, "HTTP/3 session error", "{s:s,s:s,s:s}", "remote", s->cfg.remote ? s->cfg.remote : "",
           "during", what, "error", nghttp3_strerror(rv));
  return rv == NGHTTP3_ERR_NOMEM ? REEL_ENOMEM : REEL_EPARSE;
}

/* Resumes the streams whose acknowledged data freed room to read ahead. */
static void resume_streams(reel_h3_session *s) {
  if (!s->resume_pending) return;
  s->resume_pending = 0;
  for (h3_stream *st = s->streams; st; st = st->next) {
    if (!st->resume) continue;
    st->resume = 0;
    nghttp3_conn_resume_stream(s->ng, st->id);
  }
}

int reel_h3_session_recv(reel_h3_session *s, int64_t stream_id, const uint8_t *data, size_t len, int fin) {
  s->in_call++;
  nghttp3_ssize n = nghttp3_conn_read_stream(s->ng, stream_id, data, len, fin);
  s->in_call--;
  if (n < 0) return session_error(s, (int)n, "read");
  consumed(s, stream_id, (size_t)n);
  return 0;
}

int reel_h3_session_writev(reel_h3_session *s, int64_t *stream_id, int *fin, reel_h3_vec *vec, size_t veccnt) {
  nghttp3_vec v[16];
  if (veccnt > 16) veccnt = 16;
  s->in_call++;
  resume_streams(s);
  nghttp3_ssize n = nghttp3_conn_writev_stream(s->ng, stream_id, fin, v, veccnt);
  s->in_call--;
  if (n < 0) return session_error(s, (int)n, "write");
  for (nghttp3_ssize i = 0; i < n; i++) {
    vec[i].base = v[i].base;
    vec[i].len = v[i].len;
  }
  return (int)n;
}

int reel_h3_session_add_write_offset(reel_h3_session *s, int64_t stream_id, size_t n) {
  s->in_call++;
  int rv = nghttp3_conn_add_write_offset(s->ng, stream_id, n);
  s->in_call--;
  return rv != 0 ? session_error(s, rv, "write offset") : 0;
}

int reel_h3_session_add_ack_offset(reel_h3_session *s, int64_t stream_id, uint64_t n) {
  s->in_call++;
  int rv = nghttp3_conn_add_ack_offset(s->ng, stream_id, n);
  s->in_call--;
  return rv != 0 ? session_error(s, rv, "ack offset") : 0;
}

void reel_h3_session_block_stream(reel_h3_session *s, int64_t stream_id) {
  nghttp3_conn_block_stream(s->ng, stream_id);
}

void reel_h3_session_unblock_stream(reel_h3_session *s, int64_t stream_id) {
  s->in_call++;
  nghttp3_conn_unblock_stream(s->ng, stream_id);
  s->in_call--;
}

void reel_h3_session_shutdown_stream_write(reel_h3_session *s, int64_t stream_id) {
  nghttp3_conn_shutdown_stream_write(s->ng, stream_id);
}

void reel_h3_session_stream_reset(reel_h3_session *s, int64_t stream_id) {
  s->in_call++;
  nghttp3_conn_shutdown_stream_read(s->ng, stream_id);
  h3_stream *st = stream_find(s, stream_id);
  if (st && (!st->dispatched || st->handling)) {
    /* nobody will read the answer: abandon the request and end the stream both ways */
    if (s->cfg.shutdown_read) s->cfg.shutdown_read(s->cfg.io, stream_id, REEL_H3_REQUEST_CANCELLED);
    if (s->cfg.shutdown_write) s->cfg.shutdown_write(s->cfg.io, stream_id, REEL_H3_REQUEST_CANCELLED);
    stream_release(st);
  }
  s->in_call--;
}

int reel_h3_session_stream_close(reel_h3_session *s, int64_t stream_id, uint64_t app_error_code) {
  s->in_call++;
  int rv = nghttp3_conn_close_stream(s->ng, stream_id, app_error_code);
  s->in_call--;
  if (rv == 0 || rv == NGHTTP3_ERR_STREAM_NOT_FOUND) return 0;
  return session_error(s, rv, "stream close");
}

void reel_h3_session_set_max_client_streams(reel_h3_session *s, uint64_t max_streams) {
  nghttp3_conn_set_max_client_streams_bidi(s->ng, max_streams);
}

int reel_h3_session_shutdown(reel_h3_session *s) {
  if (!s->bound) return REEL_EINVAL;
  s->in_call++;
  int rv = nghttp3_conn_shutdown(s->ng);
  s->in_call--;
  return rv != 0 ? REEL_EINVAL : 0;
}

int reel_h3_session_request_streams(const reel_h3_session *s) { return s->n_streams; }

int reel_h3_session_handling(const reel_h3_session *s) { return s->handling; }

uint64_t reel_h3_session_error_code(const reel_h3_session *s) { return s->error_code; }
