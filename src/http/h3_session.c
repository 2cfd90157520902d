/* HTTP/3 request streams as reel_http_requests, on nghttp3 without I/O. Like
 * h2_session, each stream owns copies of its header bytes and body, so a
 * handler may answer after the stream or the connection is gone (the request
 * is then detached and freed by its late send). nghttp3 sends response bytes
 * by reference until QUIC reports them acknowledged, so a memory body stays
 * with its stream and a file range is read in chunks that are freed as the
 * peer acknowledges them (at most H3_FILE_WINDOW bytes read ahead). Shared
 * static bodies are handed over by reference. What a connection holds for
 * responses its client does not read is bounded (see h3_session.h). */
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
#include "http/response_file.h"
#include "http/stream_head.h"

#define H3_FILE_CHUNK (16 * 1024)
#define H3_FILE_WINDOW (16 * H3_FILE_CHUNK) /* file bytes read but not yet acknowledged */
#define H3_DEFAULT_TIMEOUT_MS 60000
#define H3_RESET_BURST 1000.0 /* streams the client may reset at once, */
#define H3_RESET_RATE 100.0   /* then per second */

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
  /* bounded resources for responses (see h3_session.h) */
  int open_files;                          /* streams holding a response file slot */
  h3_stream *file_queue, *file_queue_tail; /* file responses waiting for a slot, unopened */
  int pump_queue;                          /* a slot was freed: pump before the next write */
  size_t buffered;                         /* in-memory response bytes of live streams */
  int sending;                             /* streams with a response not finished (or queued) */
  uint64_t last_activity_ms, progress_ms;
  size_t progress_bytes;                   /* acknowledged since progress_ms */
  double reset_tokens;                     /* flood bucket for client resets */
  uint64_t reset_ns;
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
  const uint8_t *static_body; /* shared bytes after out, by reference */
  size_t static_len, static_pos;
  int file_slot;   /* counts in the session's open_files */
  int sending;     /* counts in the session's sending */
  size_t buffered; /* counts in the session's buffered */
  int queued;      /* a file response waiting for a slot, moved here unopened */
  int queued_send_body;
  reel_http_response queued_resp;
  h3_stream *queue_next;
};

static void transport_send(reel_http_request *req, reel_http_response *resp);
static void transport_free(reel_http_request *req);
static const reel_http_transport h3_transport = {.send = transport_send, .free = transport_free};

/* ---- streams ---- */

static uint64_t now_ms(void) { return reel_mono_ns() / 1000000; }

/* The stream has a response pending (or queued). */
static void stream_sending(reel_h3_session *s, h3_stream *st) {
  if (st->sending) return;
  st->sending = 1;
  if (s->sending++ == 0) {
    s->progress_ms = now_ms();
    s->progress_bytes = 0;
  }
}

/* Gives back the stream's file slot and closes its file. */
static void stream_release_file(reel_h3_session *s, h3_stream *st) {
  if (st->file_fd >= 0) close(st->file_fd);
  st->file_fd = -1;
  if (!st->file_slot) return;
  st->file_slot = 0;
  s->open_files--;
  s->pump_queue = 1;
}

/* Undoes everything the stream counts for in its session: its response
 * is over (finished, reset, or never to be sent). */
static void stream_forget(reel_h3_session *s, h3_stream *st) {
  if (st->queued) {
    h3_stream **pp = &s->file_queue, *prev = NULL;
    while (*pp && *pp != st) prev = *pp, pp = &(*pp)->queue_next;
    if (*pp) *pp = st->queue_next;
    if (s->file_queue_tail == st) s->file_queue_tail = prev;
    st->queue_next = NULL;
    st->queued = 0;
    reel_http_response_free(&st->queued_resp);
  }
  if (st->sending) {
    st->sending = 0;
    s->sending--;
    s->progress_ms = s->last_activity_ms = now_ms(); /* a finished response is progress */
    s->progress_bytes = 0;
  }
  s->buffered -= st->buffered;
  st->buffered = 0;
  stream_release_file(s, st);
}

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
  if (st->queued) reel_http_response_free(&st->queued_resp);
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
  if (s) stream_forget(s, st);
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
    size_t n = 0, left = st->out.len - st->out_pos;
    if (left > 0) {
      vec[n].base = (uint8_t *)st->out.data + st->out_pos;
      vec[n++].len = left;
      st->out_pos = st->out.len;
    }
    if (st->static_pos < st->static_len && n < veccnt) {
      vec[n].base = (uint8_t *)st->static_body + st->static_pos; /* shared, immutable: by reference */
      vec[n++].len = st->static_len - st->static_pos;
      st->static_pos = st->static_len;
    }
    if (st->static_pos >= st->static_len) *pflags |= NGHTTP3_DATA_FLAG_EOF;
    return (nghttp3_ssize)n;
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
    /* every byte is read; the chunks live until acknowledged, the slot goes to the next file */
    if (st->session) stream_release_file(st->session, st);
    else close(st->file_fd);
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

/* Submits resp (its final form) on st and moves its body into the stream. */
static void stream_submit(reel_h3_session *s, h3_stream *st, reel_http_response *resp, int send_body) {
  int64_t length = resp->file_fd >= 0 || resp->file_open ? resp->file_length
                                                         : (int64_t)(resp->body.len + resp->static_len);
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
    st->static_body = resp->static_body;
    st->static_len = resp->static_len;
    st->buffered = st->out.len;
    s->buffered += st->buffered;
  }
  int with_body = send_body && length > 0;
  if (!with_body) stream_release_file(s, st);
  stream_sending(s, st); /* until the stream closes: headers and body acknowledged */
  nghttp3_data_reader reader = {.read_data = read_body};
  s->in_call++;
  int rc = nghttp3_conn_submit_response(s->ng, st->id, nva, n, with_body ? &reader : NULL);
  s->in_call--;
  reel_http_response_free(resp); /* nghttp3 copied the header fields */
  if (rc != 0) {
    reel_log(REEL_LOG_INFO, "HTTP/3 response not submitted", "{s:s,s:s}", "request_id", st->req.request_id,
             "error", nghttp3_strerror(rc));
    if (s->cfg.shutdown_write) s->cfg.shutdown_write(s->cfg.io, st->id, REEL_H3_INTERNAL_ERROR);
  }
  /* answered before the request ended (413, 431): stop the upload */
  if (!st->read_done && s->cfg.shutdown_read) s->cfg.shutdown_read(s->cfg.io, st->id, REEL_H3_NO_ERROR);
}

/* Opens the file of resp for st in a slot just taken; without one the
 * response was rewritten (503/404) and the slot is given back. */
static void stream_open_file(reel_h3_session *s, h3_stream *st, reel_http_response *resp) {
  st->file_slot = 1;
  s->open_files++;
  if (reel_http_response_open_file(resp, &st->req) != 0) {
    st->file_slot = 0;
    s->open_files--;
  }
}

/* Submits queued file responses while slots are free (outside nghttp3 calls). */
static void pump_file_queue(reel_h3_session *s) {
  s->pump_queue = 0;
  while (s->file_queue && s->open_files < REEL_H3_MAX_OPEN_FILES) {
    h3_stream *st = s->file_queue;
    s->file_queue = st->queue_next;
    if (!s->file_queue) s->file_queue_tail = NULL;
    st->queue_next = NULL;
    st->queued = 0;
    reel_http_response resp = st->queued_resp;
    reel_http_response_init(&st->queued_resp, 0);
    stream_open_file(s, st, &resp);
    reel_http_request_finished(&st->req, resp.status);
    stream_submit(s, st, &resp, st->queued_send_body);
  }
}

static void transport_send(reel_http_request *req, reel_http_response *resp) {
  h3_stream *st = (h3_stream *)req;
  reel_h3_session *s = st->session;
  st->handling = 0;
  if (s) s->handling--;
  if (!s) {
    /* the stream went away while the handler ran (it was not detached: same tick) */
    reel_http_request_finished(req, resp->status);
    reel_http_response_free(resp);
    stream_free(st);
    return;
  }
  s->last_activity_ms = now_ms();
  int head = reel_slice_eq(req->method, "HEAD");
  int send_body = !head && !resp->head_only && resp->status != 304 && resp->status != 204;
  if (send_body && reel_http_response_wants_file(resp)) {
    if (s->open_files >= REEL_H3_MAX_OPEN_FILES || s->file_queue) {
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
             s->buffered + resp->body.len > REEL_H3_MAX_BUFFERED_BYTES) {
    reel_log(REEL_LOG_INFO, "HTTP/3 response refused: too many unread bytes", "{s:s, s:s, s:i}", "remote",
             s->cfg.remote ? s->cfg.remote : "", "request_id", req->request_id, "buffered", (int)s->buffered);
    reel_http_response_replace_problem(resp, req, 503, "overloaded", "Service unavailable",
                                       "this connection holds too many responses its client has not read");
  }
  reel_http_request_finished(req, resp->status);
  stream_submit(s, st, resp, send_body);
  if (!s->in_call && s->cfg.on_output) s->cfg.on_output(s->cfg.io);
}

/* ---- nghttp3 callbacks ---- */

static int on_acked(nghttp3_conn *ng, int64_t stream_id, uint64_t datalen, void *conn_user_data,
                    void *stream_user_data) {
  (void)ng, (void)stream_id;
  reel_h3_session *s = conn_user_data;
  h3_stream *st = stream_user_data;
  if (!st) return 0;
  s->progress_bytes += datalen;
  if (s->progress_bytes >= REEL_H3_PROGRESS_BYTES) {
    s->progress_ms = now_ms();
    s->progress_bytes = 0;
  }
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
  if (datalen > 0) s->last_activity_ms = now_ms();
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
  s->last_activity_ms = now_ms();
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
  if (!s->cfg.idle_timeout_ms) s->cfg.idle_timeout_ms = H3_DEFAULT_TIMEOUT_MS;
  if (!s->cfg.send_timeout_ms) s->cfg.send_timeout_ms = H3_DEFAULT_TIMEOUT_MS;
  s->last_activity_ms = s->progress_ms = now_ms();
  s->reset_tokens = H3_RESET_BURST;
  s->reset_ns = reel_mono_ns();
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
  if (s->pump_queue) pump_file_queue(s);
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

int reel_h3_session_stream_reset(reel_h3_session *s, int64_t stream_id) {
  uint64_t now = reel_mono_ns();
  s->reset_tokens += (double)(now - s->reset_ns) / 1e9 * H3_RESET_RATE;
  if (s->reset_tokens > H3_RESET_BURST) s->reset_tokens = H3_RESET_BURST;
  s->reset_ns = now;
  if ((s->reset_tokens -= 1.0) < 0) {
    if (s->error_code != REEL_H3_EXCESSIVE_LOAD)
      reel_log(REEL_LOG_WARN, "HTTP/3 flood: connection closed", "{s:s, s:s}", "remote",
               s->cfg.remote ? s->cfg.remote : "", "flood", "stream resets");
    s->error_code = REEL_H3_EXCESSIVE_LOAD;
    return REEL_EPARSE;
  }
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
  return 0;
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

uint64_t reel_h3_session_deadline_ms(const reel_h3_session *s, int *stalled) {
  if (stalled) *stalled = 0;
  if (s->sending > 0) {
    if (stalled) *stalled = 1;
    return s->progress_ms + s->cfg.send_timeout_ms;
  }
  if (s->handling > 0) return UINT64_MAX;
  return s->last_activity_ms + s->cfg.idle_timeout_ms;
}

uint64_t reel_h3_session_error_code(const reel_h3_session *s) { return s->error_code; }
