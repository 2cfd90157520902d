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
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "http/body_stream.h"
#include "http/send_budget.h"
#include "http/stream_head.h"

#define H3_FILE_CHUNK (16 * 1024)
#define H3_FILE_WINDOW (16 * H3_FILE_CHUNK) /* file bytes read but not yet acknowledged */
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
  /* bounded resources for responses (see h3_session.h): buffered counts the
   * in-memory bytes of live streams, sending lasts until the stream closes,
   * progress is bytes acknowledged; a freed slot is pumped before the next
   * write */
  reel_send_budget budget;
  double reset_tokens; /* flood bucket for client resets */
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
  reel_send_stream send; /* the response body and what it counts for in the session's budget */
  file_chunk *chunks, *chunks_tail; /* file bytes handed to nghttp3, not yet acknowledged */
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
  reel_send_stream_free(&st->send);
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
  /* its response is over (finished, reset, or never to be sent): a finished response is progress */
  if (s) reel_send_budget_forget(&s->budget, &st->send, 1);
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
  reel_stream_head_init(&st->head, s->cfg.max_header_bytes, s->cfg.max_body_bytes);
  reel_send_stream_init(&st->send, &st->req);
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
  st->handling = 1;
  s->handling++;
  reel_stream_head_dispatch(&st->head, &st->req, "HTTP/3", s->cfg.remote, "https" /* QUIC is always TLS */,
                            s->cfg.handler, s->cfg.app);
}

/* ---- response ---- */

/* Resets the stream (the client sees the body cut short); no more is read. */
static void reset_stream(h3_stream *st) {
  st->read_failed = 1;
  reel_h3_session *s = st->session;
  if (s && s->cfg.shutdown_write) s->cfg.shutdown_write(s->cfg.io, st->id, REEL_H3_INTERNAL_ERROR);
}

/* A streamed body: what has arrived, copied into a chunk that lives until
 * acknowledged (within the same window as files); WOULDBLOCK while nothing
 * has (stream_wake resumes it). */
static nghttp3_ssize read_streamed(h3_stream *st, nghttp3_vec *vec, uint32_t *pflags) {
  reel_send_stream *bs = &st->send;
  reel_body_stream_state state = reel_body_stream_state_of(bs->stream);
  if (state == REEL_BODY_STREAM_ABORTED) {
    reset_stream(st);
    return NGHTTP3_ERR_WOULDBLOCK; /* never resumed: the reset ends the stream */
  }
  if (state == REEL_BODY_STREAM_ENDED) {
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
    reel_send_stream_end_stream(st->session ? &st->session->budget : NULL, bs);
    return 0;
  }
  if (st->in_flight >= H3_FILE_WINDOW) {
    st->want_resume = 1;
    return NGHTTP3_ERR_WOULDBLOCK;
  }
  size_t avail;
  reel_body_stream_peek(bs->stream, &avail);
  if (avail == 0) return NGHTTP3_ERR_WOULDBLOCK; /* armed: stream_wake resumes it */
  size_t n = avail < H3_FILE_CHUNK ? avail : H3_FILE_CHUNK;
  file_chunk *c = malloc(sizeof *c + n);
  if (!c) {
    reel_send_stream_end_stream(st->session ? &st->session->budget : NULL, bs);
    reset_stream(st);
    return NGHTTP3_ERR_WOULDBLOCK;
  }
  c->next = NULL;
  c->len = reel_body_stream_take(bs->stream, c->data, n);
  c->acked = 0;
  if (st->chunks_tail) st->chunks_tail->next = c;
  else st->chunks = c;
  st->chunks_tail = c;
  st->in_flight += c->len;
  if (reel_body_stream_state_of(bs->stream) == REEL_BODY_STREAM_ENDED) {
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
    reel_send_stream_end_stream(st->session ? &st->session->budget : NULL, bs);
  }
  vec[0].base = c->data;
  vec[0].len = c->len;
  return 1;
}

/* A streamed body has news: resume the stream on the next write (or reset
 * it when the body was aborted) and have the owner write soon. */
static void stream_wake(void *ctx) {
  h3_stream *st = ctx;
  reel_h3_session *s = st->session;
  if (!s) return;
  if (reel_body_stream_state_of(st->send.stream) == REEL_BODY_STREAM_ABORTED) {
    reset_stream(st);
  } else {
    st->resume = 1;
    s->resume_pending = 1;
  }
  if (!s->in_call && s->cfg.on_output) s->cfg.on_output(s->cfg.io);
}

static nghttp3_ssize read_body(nghttp3_conn *ng, int64_t stream_id, nghttp3_vec *vec, size_t veccnt,
                               uint32_t *pflags, void *conn_user_data, void *stream_user_data) {
  (void)ng, (void)stream_id, (void)conn_user_data;
  h3_stream *st = stream_user_data;
  if (!st || veccnt == 0 || st->read_failed) return NGHTTP3_ERR_WOULDBLOCK;
  reel_send_stream *bs = &st->send;
  if (bs->stream) return read_streamed(st, vec, pflags);
  if (bs->file_fd < 0) {
    size_t n = 0, left = bs->out.len - bs->out_pos;
    if (left > 0) {
      vec[n].base = (uint8_t *)bs->out.data + bs->out_pos;
      vec[n++].len = left;
      bs->out_pos = bs->out.len;
    }
    if (bs->static_pos < bs->static_len && n < veccnt) {
      vec[n].base = (uint8_t *)bs->static_body + bs->static_pos; /* shared, immutable: by reference */
      vec[n++].len = bs->static_len - bs->static_pos;
      bs->static_pos = bs->static_len;
    }
    if (bs->static_pos >= bs->static_len) *pflags |= NGHTTP3_DATA_FLAG_EOF;
    return (nghttp3_ssize)n;
  }
  if (bs->file_remaining <= 0) {
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
    return 0;
  }
  if (st->in_flight >= H3_FILE_WINDOW) {
    st->want_resume = 1;
    return NGHTTP3_ERR_WOULDBLOCK;
  }
  size_t n = bs->file_remaining < H3_FILE_CHUNK ? (size_t)bs->file_remaining : H3_FILE_CHUNK;
  file_chunk *c = malloc(sizeof *c + n);
  ssize_t got = c ? pread(bs->file_fd, c->data, n, bs->file_pos) : -1;
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
  bs->file_pos += got;
  bs->file_remaining -= got;
  if (bs->file_remaining <= 0) {
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
    /* every byte is read; the chunks live until acknowledged, the slot goes to the next file */
    reel_send_budget_release_file(st->session ? &st->session->budget : NULL, bs);
    bs->file_remaining = 0;
    bs->out_pos = bs->out.len; /* a closed file reads as an exhausted memory body */
  }
  vec[0].base = c->data;
  vec[0].len = c->len;
  return 1;
}

/* Submits resp (its final form) on st and moves its body into the stream. */
static void stream_submit(reel_h3_session *s, h3_stream *st, reel_http_response *resp, int send_body) {
  reel_send_fields f;
  reel_send_fields_build(&f, resp, s->cfg.extra_header_name, s->cfg.extra_header_value);
  nghttp3_nv nva[REEL_SEND_MAX_FIELDS];
  for (size_t i = 0; i < f.n; i++)
    nva[i] = (nghttp3_nv){(uint8_t *)f.field[i].name, (uint8_t *)f.field[i].value, strlen(f.field[i].name),
                          strlen(f.field[i].value), NGHTTP3_NV_FLAG_NONE};
  reel_send_stream_take_body(&s->budget, &st->send, resp, send_body);
  int streamed = st->send.stream != NULL;
  int with_body = send_body && (f.body_length > 0 || streamed);
  if (!with_body) reel_send_budget_release_file(&s->budget, &st->send);
  if (streamed) reel_body_stream_attach(st->send.stream, stream_wake, st); /* holds the connection while idle */
  else reel_send_budget_start(&s->budget, &st->send); /* until the stream closes: headers and body acknowledged */
  nghttp3_data_reader reader = {.read_data = read_body};
  s->in_call++;
  int rc = nghttp3_conn_submit_response(s->ng, st->id, nva, f.n, with_body ? &reader : NULL);
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

/* Submits queued file responses while slots are free (outside nghttp3 calls). */
static void pump_file_queue(reel_h3_session *s) {
  reel_http_response resp;
  int send_body;
  reel_http_request *req;
  while ((req = reel_send_budget_next_queued(&s->budget, &resp, &send_body)))
    stream_submit(s, (h3_stream *)req, &resp, send_body); /* still counted as sending */
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
  reel_send_budget_activity(&s->budget);
  int send_body = reel_send_wants_body(req, resp);
  if (reel_send_budget_admit(&s->budget, &st->send, resp, send_body)) return; /* waits, unopened, for a file slot */
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
  reel_send_budget_progress(&s->budget, (size_t)datalen, 0);
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
  if (datalen > 0) reel_send_budget_activity(&s->budget);
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
  reel_send_budget_activity(&s->budget);
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
  reel_send_budget_init(&s->budget, &(reel_send_limits){.protocol = "HTTP/3",
                                                        .remote = cfg->remote,
                                                        .max_open_files = REEL_H3_MAX_OPEN_FILES,
                                                        .max_buffered_bytes = REEL_H3_MAX_BUFFERED_BYTES,
                                                        .progress_bytes = REEL_H3_PROGRESS_BYTES,
                                                        .idle_timeout_ms = cfg->idle_timeout_ms,
                                                        .send_timeout_ms = cfg->send_timeout_ms});
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
  if (reel_send_budget_take_pump(&s->budget)) pump_file_queue(s);
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
  return reel_send_budget_deadline_ms(&s->budget, s->handling, stalled);
}

uint64_t reel_h3_session_error_code(const reel_h3_session *s) { return s->error_code; }
