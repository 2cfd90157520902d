/* HTTP/1.1 connections on libuv. Each complete request is copied out of the
 * connection buffer into an exchange the request owns, so a handler may answer
 * long after the connection is gone. Requests on one connection are handled
 * one at a time; pipelined bytes wait in the (capped) input buffer. A
 * connection whose first bytes are the HTTP/2 preface (h2c with prior
 * knowledge) is handed to an h2_session instead; this file still does its I/O. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "common/random.h"
#include "http/address.h"
#include "http/body_stream.h"
#include "http/fd_limit.h"
#include "http/h2_session.h"
#include "http/response_file.h"
#include "http/server.h"
#include "http/tls.h"
#include "metrics/metrics.h"

#define FILE_CHUNK (256 * 1024)
#define STREAM_CHUNK (16 * 1024) /* a streamed body's writes: many idle streams stay small */
/* Lingering close after an error response (see conn_linger): input is read and
 * dropped for at most LINGER_MS in all, LINGER_IDLE_MS without a byte, and
 * LINGER_MAX_BYTES, then the socket is closed. */
#define LINGER_MS 5000
#define LINGER_IDLE_MS 2000
#define LINGER_MAX_BYTES ((uint64_t)64 << 20)

typedef enum { CONN_READING, CONN_HANDLING, CONN_WRITING } conn_state;

typedef struct exchange exchange;

struct reel_http_connection {
  uv_tcp_t tcp;
  uv_timer_t timer;
  reel_http_server *srv;
  reel_http_connection *prev, *next;
  reel_http_connection *output_next, *output_prev; /* in srv's output queue when output_queued */
  int output_queued;
  reel_buf in;
  reel_h1_request parse;
  int parse_started;
  conn_state state;
  exchange *current;
  int keep_alive;
  int sent_continue;
  int reading;
  int closing;
  int handles_open;
  uint64_t request_started_ms; /* loop time when the first byte of the current request arrived */
  int peer_eof;                /* the client closed its sending side */
  int lingering;               /* write side shut after an error response; input is dropped */
  uint64_t linger_until_ms;
  uint64_t linger_bytes;
  uv_shutdown_t shutdown_req;
  char remote[64];
  /* HTTP/2 (prior knowledge): chosen when the first bytes are the preface */
  int protocol_chosen;   /* the first bytes have been looked at */
  reel_h2_session *h2;   /* non-NULL: every byte goes to the session, not the HTTP/1.1 parser */
  reel_buf h2_out;
  uv_write_t h2_write;
  int h2_writing;
  int h2_close_after_write;
  /* TLS (https:// listeners): ciphertext flows through tls_in/tls_out, c->in holds plaintext */
  gnutls_session_t tls;
  reel_tls_credentials *tls_creds;
  int tls_handshaken;
  int tls_eof;          /* the peer sent close_notify */
  reel_buf tls_in;      /* received ciphertext not yet read by GnuTLS (from tls_in_pos) */
  size_t tls_in_pos;
  reel_buf tls_out;     /* ciphertext GnuTLS produced, not yet written */
};

/* One write of ciphertext; completes the caller's write request, if any. */
typedef struct {
  uv_write_t write;
  reel_buf data;
  uv_write_t *user;
  uv_write_cb user_cb;
} tls_write;

struct exchange {
  reel_http_request req; /* first: the transport casts back */
  reel_http_connection *conn;
  reel_http_header headers[REEL_H1_MAX_HEADERS];
  char *raw;        /* copy of the request head */
  reel_buf body;    /* decoded body (moved from the parser) */
  int head_method;
  int keep_alive;
  int status;       /* of the response being written */
  reel_buf out;     /* serialized head + in-memory body */
  uv_write_t write_req;
  int file_fd;
  int64_t file_pos, file_remaining;
  char *chunk;
  /* a streamed body (http/body_stream.h): sent as chunks (HTTP/1.1) or up to
   * the close (HTTP/1.0) as it arrives */
  reel_body_stream *stream;
  int stream_chunked;
  int writing;      /* a write of this exchange is in flight */
  int stream_last;  /* the write in flight ends the body */
};

static void conn_close(reel_http_connection *c);
static void conn_try_parse(reel_http_connection *c);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void h2_pump(reel_http_connection *c);
static void output_unlink(reel_http_connection *c);
static int h2_choose(reel_http_connection *c);
static void h2_received(reel_http_connection *c);
static void conn_received(reel_http_connection *c, size_t before);
static int conn_write(reel_http_connection *c, uv_write_t *req, const uv_buf_t *bufs, unsigned n, uv_write_cb cb);
static void tls_received(reel_http_connection *c);
static int tls_start(reel_http_connection *c);
static int tls_has_input(reel_http_connection *c);

static void exchange_free(exchange *ex) {
  if (ex->stream) reel_body_stream_release(ex->stream);
  free(ex->raw);
  reel_buf_free(&ex->body);
  reel_buf_free(&ex->out);
  if (ex->file_fd >= 0) close(ex->file_fd);
  free(ex->chunk);
  free(ex);
}

static void transport_free(reel_http_request *req) { exchange_free((exchange *)req); }
static void transport_send(reel_http_request *req, reel_http_response *resp);
static const reel_http_transport h1_transport = {.send = transport_send, .free = transport_free};

/* ---- timers ---- */

static void arm_timer(reel_http_connection *c);

static void on_timeout(uv_timer_t *t) {
  reel_http_connection *c = t->data;
  if (c->lingering) {
    conn_close(c);
    return;
  }
  if (c->h2) {
    /* the session's deadline: idleness, or responses that make no progress
     * (inbound PING, SETTINGS or WINDOW_UPDATE frames do not move it) */
    const char *why = NULL;
    uint64_t deadline = reel_h2_session_deadline_ms(c->h2, &why);
    if (deadline > reel_mono_ns() / 1000000) {
      arm_timer(c);
      return;
    }
    if (why) reel_log(REEL_LOG_INFO, why, "{s:s}", "remote", c->remote);
    conn_close(c);
    return;
  }
  if (c->tls && !c->tls_handshaken) {
    reel_log(REEL_LOG_INFO, "TLS handshake timeout", "{s:s}", "remote", c->remote);
    conn_close(c);
  } else if (c->state == CONN_READING) {
    if (c->in.len > 0)
      reel_log(REEL_LOG_INFO, "request timeout", "{s:s}", "remote", c->remote);
    conn_close(c);
  } else if (c->state == CONN_WRITING) {
    reel_log(REEL_LOG_INFO, "write stalled", "{s:s}", "remote", c->remote);
    conn_close(c);
  }
}

static void arm_timer(reel_http_connection *c) {
  if (c->closing) return;
  uint64_t timeout = c->srv->idle_timeout_ms;
  if (c->lingering) {
    uint64_t now = uv_now(c->srv->loop);
    timeout = now >= c->linger_until_ms ? 1 : c->linger_until_ms - now;
    if (timeout > LINGER_IDLE_MS) timeout = LINGER_IDLE_MS;
    uv_timer_start(&c->timer, on_timeout, timeout, 0);
    return;
  }
  if (c->h2) {
    uint64_t deadline = reel_h2_session_deadline_ms(c->h2, NULL), now = reel_mono_ns() / 1000000;
    if (deadline != UINT64_MAX) timeout = deadline > now ? deadline - now : 0;
    uv_timer_start(&c->timer, on_timeout, timeout, 0);
    return;
  }
  if (c->tls && !c->tls_handshaken) {
    timeout = c->srv->header_timeout_ms; /* a handshake must finish like a request head */
  } else if (c->state == CONN_READING && c->in.len > 0 && !c->parse.head_complete) {
    uint64_t elapsed = uv_now(c->srv->loop) - c->request_started_ms;
    timeout = elapsed >= c->srv->header_timeout_ms ? 1 : c->srv->header_timeout_ms - elapsed;
  } else if (c->state == CONN_HANDLING || (c->state == CONN_WRITING && c->current && c->current->stream &&
                                            !c->current->writing)) {
    uv_timer_stop(&c->timer); /* a handler at work, or a streamed body waiting for its next bytes */
    return;
  }
  uv_timer_start(&c->timer, on_timeout, timeout, 0);
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  reel_http_connection *c = h->data;
  if (c->lingering) { /* input is dropped unread: any scratch space will do */
    static char discard[65536]; /* loop thread only */
    buf->base = discard;
    buf->len = sizeof discard;
    return;
  }
  if (c->tls) {
    /* ciphertext: read at most one buffer ahead of what GnuTLS has taken */
    size_t want = 65536;
    if (c->tls_in.len + want > c->tls_in.max || reel_buf_append(&c->tls_in, "", 0) != 0) {
      buf->base = NULL;
      buf->len = 0;
      return;
    }
    if (c->tls_in.cap < c->tls_in.len + want + 1) {
      char *p = realloc(c->tls_in.data, c->tls_in.len + want + 1);
      if (!p) {
        buf->base = NULL;
        buf->len = 0;
        return;
      }
      c->tls_in.data = p;
      c->tls_in.cap = c->tls_in.len + want + 1;
    }
    buf->base = c->tls_in.data + c->tls_in.len;
    buf->len = want;
    return;
  }
  size_t room = c->in.max - c->in.len;
  if (room > 65536) room = 65536;
  if (room == 0 || reel_buf_append(&c->in, "", 0) != 0) {
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  /* grow the buffer so the read lands directly in it */
  size_t need = c->in.len + room + 1;
  if (c->in.cap < need) {
    char *p = realloc(c->in.data, need);
    if (!p) {
      buf->base = NULL;
      buf->len = 0;
      return;
    }
    c->in.data = p;
    c->in.cap = need;
  }
  buf->base = c->in.data + c->in.len;
  buf->len = room;
}

static void start_reading(reel_http_connection *c) {
  if (c->reading || c->closing || c->tls_eof) return;
  if (c->in.len >= c->in.max) return;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
}

static void stop_reading(reel_http_connection *c) {
  if (!c->reading) return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  reel_http_connection *c = stream->data;
  if (nread == UV_ENOBUFS) { /* input buffers full: wait until they drain */
    stop_reading(c);
    return;
  }
  if (c->lingering) {
    c->linger_bytes += nread > 0 ? (uint64_t)nread : 0;
    if (nread < 0 || c->linger_bytes > LINGER_MAX_BYTES) conn_close(c);
    else arm_timer(c);
    return;
  }
  if (nread < 0) {
    /* EOF or error: finish any response in flight, then close */
    c->peer_eof = 1;
    stop_reading(c);
    if (c->h2) {
      conn_close(c); /* streams still with the handler are detached */
      return;
    }
    if (c->state == CONN_READING || (c->current && c->current->stream)) conn_close(c); /* nobody reads the stream */
    else c->keep_alive = 0;
    return;
  }
  if (nread == 0) return;
  if (c->tls) {
    c->tls_in.len += (size_t)nread;
    tls_received(c);
    return;
  }
  size_t before = c->in.len;
  c->in.len += (size_t)nread;
  conn_received(c, before);
}

/* Plaintext bytes were appended to c->in (it held `before` bytes): hand them
 * to the HTTP/2 session or the HTTP/1.1 parser. */
static void conn_received(reel_http_connection *c, size_t before) {
  if (c->closing || c->in.len == before) return;
  if (c->state == CONN_READING && before == 0) c->request_started_ms = uv_now(c->srv->loop);
  c->in.data[c->in.len] = '\0';
  if (c->in.len >= c->in.max) stop_reading(c);
  if (!c->protocol_chosen && h2_choose(c) != 0) return;
  if (c->h2) {
    h2_received(c);
    return;
  }
  if (c->state == CONN_READING) conn_try_parse(c);
}

/* ---- writing ---- */

static void finish_exchange(reel_http_connection *c, exchange *ex);

static void write_more(exchange *ex);

static void stream_pump(exchange *ex);
static void on_write(uv_write_t *w, int status);

/* Starts the exchange's one write in flight (b's bytes stay put until
 * on_write); nonzero when the transport refused it. */
static int exchange_write(exchange *ex, const uv_buf_t *b) {
  reel_http_connection *c = ex->conn;
  ex->write_req.data = ex;
  ex->writing = 1;
  arm_timer(c);
  if (conn_write(c, &ex->write_req, b, 1, on_write) == 0) return 0;
  ex->writing = 0;
  return -1;
}

static void on_write(uv_write_t *w, int status) {
  exchange *ex = w->data;
  reel_http_connection *c = ex->conn;
  ex->writing = 0;
  if (!c || status < 0) {
    if (c) {
      c->current = NULL;
      conn_close(c);
    }
    exchange_free(ex);
    return;
  }
  if (ex->file_fd >= 0 && ex->file_remaining > 0) {
    write_more(ex);
    return;
  }
  if (ex->stream && !ex->stream_last) {
    reel_buf_free(&ex->out); /* the head is sent: a long-lived stream keeps only what it needs */
    stream_pump(ex);
    return;
  }
  finish_exchange(c, ex);
}

/* Sends what the exchange's streamed body has waiting: a chunk, the last
 * chunk once the body ended, or a close when it was aborted (the client sees
 * the body cut short and resumes). On plain TCP each piece is first tried
 * with one write(2), so that a client that keeps up costs no write request,
 * completion callback or poll change; what the socket does not take at once
 * goes out as a write request whose completion pumps again. With nothing
 * waiting it returns; the stream's wake-up brings it back. */
static void stream_pump(exchange *ex) {
  reel_http_connection *c = ex->conn;
  if (!c || c->closing || ex->writing) return;
  for (;;) {
    reel_body_stream_state state = reel_body_stream_state_of(ex->stream);
    if (state == REEL_BODY_STREAM_ABORTED) {
      reel_log(REEL_LOG_INFO, "streamed response cut off", "{s:s, s:s}", "request_id", ex->req.request_id,
               "remote", c->remote);
      goto fail;
    }
    enum { FRAME = 16 }; /* "%zx\r\n" before, "\r\n" after */
    if (!ex->chunk && !(ex->chunk = malloc(STREAM_CHUNK))) goto fail;
    size_t room = STREAM_CHUNK - FRAME - 8, len = 0;
    char *data = ex->chunk + FRAME;
    size_t n = reel_body_stream_take(ex->stream, data, room);
    if (n > 0 && ex->stream_chunked) {
      char head[FRAME];
      int h = snprintf(head, sizeof head, "%zx\r\n", n);
      memcpy(data - h, head, (size_t)h);
      data -= h;
      memcpy(data + h + n, "\r\n", 2);
      len = (size_t)h + n + 2;
    } else {
      len = n;
    }
    if (reel_body_stream_state_of(ex->stream) == REEL_BODY_STREAM_ENDED) {
      ex->stream_last = 1;
      if (ex->stream_chunked) {
        if (n == 0) data = ex->chunk + FRAME;
        memcpy(data + len, "0\r\n\r\n", 5);
        len += 5;
      }
    }
    if (len == 0) {
      if (ex->stream_last) finish_exchange(c, ex);
      else arm_timer(c); /* waiting for bytes: no write deadline */
      return;
    }
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    if (!c->tls) {
      int sent = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
      if (sent < 0 && sent != UV_EAGAIN) goto fail;
      if (sent == (int)len) {
        if (ex->stream_last) {
          finish_exchange(c, ex);
          return;
        }
        continue; /* more may be waiting */
      }
      if (sent > 0) b = uv_buf_init(data + sent, (unsigned)(len - (size_t)sent));
    }
    if (exchange_write(ex, &b) != 0) goto fail;
    return;
  }
fail:
  c->current = NULL;
  conn_close(c);
  exchange_free(ex);
}

static void conn_wake_output(reel_http_connection *c);

/* The streamed body has news: pump it on a later loop turn (never inside
 * the producer's call, which a close would re-enter). */
static void stream_wake(void *ctx) {
  exchange *ex = ctx;
  reel_http_connection *c = ex->conn;
  if (c) conn_wake_output(c);
}

static void write_more(exchange *ex) {
  reel_http_connection *c = ex->conn;
  size_t n = ex->file_remaining > FILE_CHUNK ? FILE_CHUNK : (size_t)ex->file_remaining;
  if (!ex->chunk && !(ex->chunk = malloc(FILE_CHUNK))) goto fail;
  ssize_t got = pread(ex->file_fd, ex->chunk, n, ex->file_pos);
  if (got <= 0) goto fail;
  ex->file_pos += got;
  ex->file_remaining -= got;
  uv_buf_t b = uv_buf_init(ex->chunk, (unsigned)got);
  if (exchange_write(ex, &b) != 0) goto fail;
  return;
fail:
  /* the head promised more bytes than we can send: the only honest end is a close */
  reel_log(REEL_LOG_ERROR, "file read failed mid-response", "{s:s}", "request_id", ex->req.request_id);
  c->current = NULL;
  conn_close(c);
  exchange_free(ex);
}

static void conn_linger(reel_http_connection *c);

static void finish_exchange(reel_http_connection *c, exchange *ex) {
  int keep = ex->keep_alive && c->keep_alive && !c->srv->shutting_down;
  int error = ex->status >= 400;
  c->current = NULL;
  exchange_free(ex);
  if (!keep) {
    if (error && !c->srv->shutting_down) conn_linger(c);
    else conn_close(c);
    return;
  }
  c->state = CONN_READING;
  c->sent_continue = 0;
  if (c->in.len > 0) c->request_started_ms = uv_now(c->srv->loop);
  start_reading(c);
  arm_timer(c);
  if (c->tls && tls_has_input(c)) {
    tls_received(c); /* ciphertext that waited for room in c->in */
    return;
  }
  conn_try_parse(c);
}

static void transport_send(reel_http_request *req, reel_http_response *resp) {
  exchange *ex = (exchange *)req;
  reel_http_connection *c = ex->conn;
  if (!ex->head_method && !resp->head_only) reel_http_response_open_file(resp, req); /* 503 when no fd is left */
  reel_http_request_finished(req, resp->status);
  reel_buf_init(&ex->out, (size_t)65 << 20);
  int64_t length = resp->file_fd >= 0 || resp->file_open ? resp->file_length
                                                         : (int64_t)(resp->body.len + resp->static_len);
  int streamed = resp->stream != NULL && !ex->head_method && !resp->head_only && resp->status >= 200 &&
                 resp->status != 204 && resp->status != 304;
  const void *static_body = resp->static_body; /* shared and immutable: written by reference */
  size_t static_len = resp->static_len;
  int keep = ex->keep_alive && c->keep_alive && !c->srv->shutting_down;
  const char *conn_header = reel_http_response_get_header(resp, "Connection");
  if (conn_header && strcasecmp(conn_header, "close") == 0) keep = 0;
  if (streamed && req->protocol == REEL_HTTP_1_0) keep = 0; /* the body ends with the connection */
  ex->keep_alive = keep;
  ex->status = resp->status;
  int rc = reel_buf_printf(&ex->out, "HTTP/1.1 %d %s\r\n", resp->status, reel_http_reason(resp->status));
  for (int i = 0; rc == 0 && i < resp->n_headers; i++) {
    if (strcasecmp(resp->headers[i].name, "Connection") == 0) continue;
    rc = reel_buf_printf(&ex->out, "%s: %s\r\n", resp->headers[i].name, resp->headers[i].value);
  }
  if (rc == 0 && c->srv->extra_header_name)
    rc = reel_buf_printf(&ex->out, "%s: %s\r\n", c->srv->extra_header_name, c->srv->extra_header_value);
  if (rc == 0 && streamed && req->protocol != REEL_HTTP_1_0) {
    rc = reel_buf_printf(&ex->out, "Transfer-Encoding: chunked\r\n");
    ex->stream_chunked = 1;
  } else if (rc == 0 && !streamed && resp->status != 304 && resp->status >= 200) {
    rc = reel_buf_printf(&ex->out, "Content-Length: %lld\r\n", (long long)length);
  }
  if (rc == 0) rc = reel_buf_printf(&ex->out, "Connection: %s\r\n\r\n", keep ? "keep-alive" : "close");
  int send_body = !ex->head_method && !resp->head_only && resp->status != 304;
  if (rc == 0 && send_body && resp->file_fd < 0) rc = reel_buf_append(&ex->out, resp->body.data, resp->body.len);
  if (!send_body || resp->file_fd >= 0) static_len = 0;
  if (send_body && resp->file_fd >= 0) {
    ex->file_fd = resp->file_fd;
    resp->file_fd = -1;
    ex->file_pos = resp->file_offset;
    ex->file_remaining = resp->file_length;
  }
  if (streamed) {
    if (c->in.len == 0) reel_buf_free(&c->in); /* nothing pipelined: no input buffer while it streams */
    ex->stream = resp->stream; /* the exchange is its consumer now */
    resp->stream = NULL;
    reel_body_stream_attach(ex->stream, stream_wake, ex);
  }
  reel_http_response_free(resp);
  if (rc != 0) {
    c->current = NULL;
    conn_close(c);
    exchange_free(ex);
    return;
  }
  c->state = CONN_WRITING;
  uv_buf_t b[2] = {uv_buf_init(ex->out.data, (unsigned)ex->out.len),
                   uv_buf_init((char *)static_body, (unsigned)static_len)};
  ex->write_req.data = ex;
  ex->writing = 1;
  arm_timer(c);
  if (conn_write(c, &ex->write_req, b, static_len ? 2 : 1, on_write) != 0) {
    ex->writing = 0;
    c->current = NULL;
    conn_close(c);
    exchange_free(ex);
  }
}

/* ---- parsing and dispatch ---- */

static void send_parse_error(reel_http_connection *c, int rc) {
  int status = 400;
  const char *slug = "malformed-request", *title = "Malformed request";
  if (rc == REEL_EHEADERS_TOO_LARGE) status = 431, slug = "headers-too-large", title = "Request header fields too large";
  else if (rc == REEL_ETOOBIG) status = 413, slug = "body-too-large", title = "Request body too large";
  else if (rc == REEL_EUNSUPPORTED && c->parse.minor_version == -1)
    status = 505, slug = "version-not-supported", title = "HTTP version not supported";
  else if (rc == REEL_EUNSUPPORTED) status = 501, slug = "transfer-coding-not-supported", title = "Transfer coding not supported";
  exchange *ex = calloc(1, sizeof *ex);
  if (!ex) {
    conn_close(c);
    return;
  }
  ex->file_fd = -1;
  ex->conn = c;
  ex->keep_alive = 0;
  reel_buf_init(&ex->body, 0);
  reel_http_request *r = &ex->req;
  r->protocol = REEL_HTTP_1_1;
  r->method = REEL_SLICE_LIT("-");
  r->path = REEL_SLICE_LIT("-");
  if (c->parse.head_complete) {
    /* e.g. 413: the head was fine, so the response and the log can name the request */
    size_t m = c->parse.method.len, p = c->parse.path.len;
    ex->raw = malloc(m + p + 2);
    if (ex->raw) {
      memcpy(ex->raw, c->parse.method.ptr, m);
      memcpy(ex->raw + m + 1, c->parse.path.ptr, p);
      r->method = (reel_slice){ex->raw, m};
      r->path = (reel_slice){ex->raw + m + 1, p};
    }
  }
  r->route = "malformed";
  r->start_ns = reel_mono_ns();
  reel_request_id_new(r->request_id);
  snprintf(r->remote_addr, sizeof r->remote_addr, "%s", c->remote);
  r->scheme = c->tls ? "https" : "http";
  r->transport = &h1_transport;
  c->keep_alive = 0;
  c->current = ex;
  c->state = CONN_HANDLING;
  stop_reading(c);
  reel_buf_reset(&c->in);
  const char *detail = status == 413 ? "the request body is larger than service.max_body_bytes allows"
                       : status == 431 ? "the request head is larger than service.max_header_bytes allows"
                                       : NULL;
  reel_http_send_problem_with_headers(r, status, slug, title, detail, "Connection", "close", NULL);
}

static void rebase(reel_slice *s, const char *from, const char *to) {
  if (s->ptr) s->ptr = to + (s->ptr - from);
}

static void conn_try_parse(reel_http_connection *c) {
  if (c->state != CONN_READING || c->closing || c->in.len == 0) return;
  /* skip to the first request byte; the parser tolerates leading CRLFs itself */
  if (!c->parse_started) {
    reel_h1_request_init(&c->parse, &c->srv->limits);
    c->parse_started = 1;
  }
  int rc = reel_h1_parse_request(c->in.data, c->in.len, &c->parse);
  if (rc == REEL_EAGAIN && c->in.len >= c->in.max) rc = REEL_ETOOBIG; /* framing overhead filled the buffer */
  if (rc == REEL_EAGAIN) {
    if (c->parse.head_complete && c->parse.expect_continue && !c->sent_continue) {
      static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      c->sent_continue = 1;
      uv_buf_t b = uv_buf_init(cont, sizeof cont - 1);
      if (c->tls) conn_write(c, NULL, &b, 1, NULL);
      else uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    start_reading(c);
    arm_timer(c);
    return;
  }
  if (rc < 0) {
    send_parse_error(c, rc);
    reel_h1_request_free(&c->parse);
    c->parse_started = 0;
    return;
  }
  /* a complete request of rc bytes: move it into an exchange */
  size_t used = (size_t)rc;
  exchange *ex = calloc(1, sizeof *ex);
  char *raw = ex ? malloc(used + 1) : NULL;
  if (!raw) {
    free(ex);
    conn_close(c);
    return;
  }
  memcpy(raw, c->in.data, used);
  raw[used] = '\0';
  ex->raw = raw;
  ex->file_fd = -1;
  ex->conn = c;
  ex->body = c->parse.body; /* moved */
  reel_buf_init(&c->parse.body, 0);
  reel_http_request *r = &ex->req;
  const char *base = c->in.data;
  r->protocol = c->parse.minor_version == 0 ? REEL_HTTP_1_0 : REEL_HTTP_1_1;
  r->method = c->parse.method;
  r->path = c->parse.path;
  r->query = c->parse.query;
  rebase(&r->method, base, raw);
  rebase(&r->path, base, raw);
  rebase(&r->query, base, raw);
  for (int i = 0; i < c->parse.n_headers; i++) {
    ex->headers[i] = c->parse.headers[i];
    rebase(&ex->headers[i].name, base, raw);
    rebase(&ex->headers[i].value, base, raw);
  }
  r->headers = ex->headers;
  r->n_headers = c->parse.n_headers;
  r->body = (reel_slice){ex->body.data ? ex->body.data : "", ex->body.len};
  ex->keep_alive = c->parse.keep_alive;
  ex->head_method = reel_slice_eq(r->method, "HEAD");
  r->start_ns = reel_mono_ns();
  reel_request_id_new(r->request_id);
  snprintf(r->remote_addr, sizeof r->remote_addr, "%s", c->remote);
  r->scheme = c->tls ? "https" : "http";
  r->transport = &h1_transport;
  reel_h1_request_free(&c->parse);
  c->parse_started = 0;
  reel_buf_consume(&c->in, used);
  c->current = ex;
  c->state = CONN_HANDLING;
  arm_timer(c);
  if (c->in.len < c->in.max) start_reading(c);
  c->srv->handler(r, c->srv->app);
}

/* ---- connection lifecycle ---- */

static void check_drained(reel_http_server *srv) {
  if (srv->shutting_down && srv->n_connections == 0 && srv->output_idle_open) {
    srv->output_idle_open = 0; /* nothing can be queued any more */
    uv_close((uv_handle_t *)&srv->output_idle, NULL);
  }
  if (srv->shutting_down && srv->n_connections == 0 && srv->on_drained) {
    void (*cb)(void *) = srv->on_drained;
    srv->on_drained = NULL;
    cb(srv->on_drained_data);
  }
}

static void on_conn_handle_closed(uv_handle_t *h) {
  reel_http_connection *c = h->data;
  if (--c->handles_open > 0) return;
  reel_http_server *srv = c->srv;
  if (c->prev) c->prev->next = c->next;
  else srv->connections = c->next;
  if (c->next) c->next->prev = c->prev;
  srv->n_connections--;
  if (c->parse_started) reel_h1_request_free(&c->parse);
  reel_buf_free(&c->in);
  reel_buf_free(&c->h2_out);
  if (c->tls) gnutls_deinit(c->tls);
  reel_tls_credentials_release(c->tls_creds);
  reel_buf_free(&c->tls_in);
  reel_buf_free(&c->tls_out);
  free(c);
  check_drained(srv);
}

/* Ends the connection after an error response without resetting a client that
 * is still sending (which would make it see ECONNRESET instead of the status):
 * the write side is shut once the response is out, then input is read and
 * dropped until the client closes or a bound (LINGER_*) is reached, as nginx's
 * lingering_close does. */
static void conn_linger(reel_http_connection *c) {
  if (c->closing || c->lingering) return;
  if (c->peer_eof || c->tls_eof) {
    conn_close(c);
    return;
  }
  c->lingering = 1;
  c->linger_until_ms = uv_now(c->srv->loop) + LINGER_MS;
  reel_buf_reset(&c->in);
  if (c->tls && c->tls_handshaken) {
    gnutls_bye(c->tls, GNUTLS_SHUT_WR); /* close_notify before the FIN */
    if (c->tls_out.len > 0) {
      uv_buf_t b = uv_buf_init(c->tls_out.data, (unsigned)c->tls_out.len);
      uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
      reel_buf_reset(&c->tls_out);
    }
    c->tls_handshaken = 0;
  }
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, NULL) != 0) {
    conn_close(c);
    return;
  }
  stop_reading(c);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
  arm_timer(c);
}

static void conn_close(reel_http_connection *c) {
  if (c->closing) return;
  c->closing = 1;
  output_unlink(c);
  if (c->current) {
    exchange *ex = c->current;
    c->current = NULL;
    if (c->state == CONN_HANDLING) reel_http_request_detach(&ex->req);
    ex->conn = NULL; /* WRITING: on_write frees it */
    if (c->state == CONN_WRITING && !ex->writing) exchange_free(ex); /* a streamed body between writes */
  }
  if (c->h2) {
    reel_h2_session_free(c->h2); /* detaches streams still with the handler */
    c->h2 = NULL;
  }
  if (c->tls && c->tls_handshaken) {
    /* best effort close_notify, so clients can tell a close from a truncation */
    gnutls_bye(c->tls, GNUTLS_SHUT_WR);
    if (c->tls_out.len > 0) {
      uv_buf_t b = uv_buf_init(c->tls_out.data, (unsigned)c->tls_out.len);
      uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
  }
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

static void on_connection(uv_stream_t *listener, int status) {
  reel_http_server *srv = listener->data;
  if (status < 0) return;
  reel_http_connection *c = calloc(1, sizeof *c);
  if (!c) return;
  c->srv = srv;
  uv_tcp_init(srv->loop, &c->tcp);
  c->tcp.data = c;
  c->handles_open = 1;
  int index = (int)((uv_tcp_t *)listener - srv->listeners);
  uv_os_fd_t fd = -1;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || srv->shutting_down ||
      srv->n_connections >= srv->max_connections) {
    uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
    return;
  }
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 && !reel_fd_limit_allows(fd)) {
    /* only the reserve is left (http/fd_limit.h): refuse, with a 503 where it can be read */
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";
    uv_buf_t b = uv_buf_init((char *)busy, sizeof busy - 1);
    if (!srv->listener_tls[index]) uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    reel_fd_limit_report("connection refused", "accepting it would use the descriptor reserve");
    uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
    return;
  }
  uv_timer_init(srv->loop, &c->timer);
  c->timer.data = c;
  c->handles_open = 2;
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage peer;
  int len = sizeof peer;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) == 0)
    reel_address_format((struct sockaddr *)&peer, c->remote, sizeof c->remote);
  /* the buffer holds at most one full request plus framing slack */
  reel_buf_init(&c->in, srv->limits.max_header_bytes + srv->limits.max_body_bytes * 2 + 8192);
  c->keep_alive = 1;
  c->state = CONN_READING;
  c->next = srv->connections;
  if (c->next) c->next->prev = c;
  srv->connections = c;
  srv->n_connections++;
  if (srv->listener_tls[index] && tls_start(c) != 0) {
    reel_log(REEL_LOG_ERROR, "cannot start a TLS session", "{s:s}", "remote", c->remote);
    conn_close(c);
    return;
  }
  start_reading(c);
  arm_timer(c);
}

void reel_http_server_init(reel_http_server *srv, uv_loop_t *loop, reel_http_handler handler, void *app) {
  memset(srv, 0, sizeof *srv);
  srv->loop = loop;
  srv->handler = handler;
  srv->app = app;
  srv->limits.max_header_bytes = 16384;
  srv->limits.max_body_bytes = 65536;
  srv->header_timeout_ms = 10000;
  srv->idle_timeout_ms = 60000;
  srv->max_connections = 10000;
  uv_idle_init(loop, &srv->output_idle);
  srv->output_idle.data = srv;
  srv->output_idle_open = 1;
}

int reel_http_server_listen(reel_http_server *srv, const char *address, int *port, char *err, size_t errlen) {
  if (srv->n_listeners >= REEL_HTTP_MAX_LISTENERS) {
    snprintf(err, errlen, "too many listeners");
    return REEL_EINVAL;
  }
  const char *a = address;
  int tls = 0;
  if (strncmp(a, "http://", 7) == 0) a += 7;
  else if (strncmp(a, "https://", 8) == 0) a += 8, tls = 1;
  if (tls && !srv->tls) {
    snprintf(err, errlen, "%s needs TLS credentials (service.tls)", address);
    return REEL_EINVAL;
  }
  struct addrinfo *res;
  int rc = reel_address_resolve_listen(address, SOCK_STREAM, &res, err, errlen);
  if (rc != 0) return rc;
  uv_tcp_t *l = &srv->listeners[srv->n_listeners];
  uv_tcp_init(srv->loop, l);
  l->data = srv;
  rc = uv_tcp_bind(l, res->ai_addr, 0);
  freeaddrinfo(res);
  if (rc == 0) rc = uv_listen((uv_stream_t *)l, 1024, on_connection);
  if (rc != 0) {
    snprintf(err, errlen, "cannot listen on %s: %s", address, uv_strerror(rc));
    uv_close((uv_handle_t *)l, NULL);
    return REEL_EIO;
  }
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  uv_tcp_getsockname(l, (struct sockaddr *)&bound, &blen);
  *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                            : ((struct sockaddr_in *)&bound)->sin_port);
  srv->listener_tls[srv->n_listeners] = tls;
  srv->n_listeners++;
  return 0;
}

void reel_http_server_shutdown(reel_http_server *srv) {
  if (srv->shutting_down) return;
  srv->shutting_down = 1;
  for (int i = 0; i < srv->n_listeners; i++) uv_close((uv_handle_t *)&srv->listeners[i], NULL);
  reel_http_connection *c = srv->connections;
  while (c) {
    reel_http_connection *next = c->next;
    if (c->h2) {
      reel_h2_session_shutdown(c->h2); /* GOAWAY; accepted streams finish */
      h2_pump(c);
    } else if (c->lingering || (c->state == CONN_READING && c->in.len == 0)) conn_close(c);
    else c->keep_alive = 0;
    c = next;
  }
  check_drained(srv);
}

/* ---- HTTP/2 with prior knowledge ---- */

static void h2_on_write(uv_write_t *w, int status) {
  reel_http_connection *c = w->data;
  c->h2_writing = 0;
  if (c->closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  arm_timer(c);
  h2_pump(c);
}

/* Writes what the session has to send (one write in flight at a time); closes
 * the connection once the session wants no more I/O. */
static void h2_pump(reel_http_connection *c) {
  if (c->closing || !c->h2 || c->h2_writing) return;
  reel_buf_reset(&c->h2_out);
  if (reel_h2_session_send(c->h2, &c->h2_out, 65536) != 0) {
    conn_close(c);
    return;
  }
  if (c->h2_out.len > 0) {
    uv_buf_t b = uv_buf_init(c->h2_out.data, (unsigned)c->h2_out.len);
    c->h2_write.data = c;
    c->h2_writing = 1;
    arm_timer(c);
    if (conn_write(c, &c->h2_write, &b, 1, h2_on_write) != 0) {
      c->h2_writing = 0;
      conn_close(c);
    }
    return;
  }
  if (c->h2_close_after_write || !reel_h2_session_want_io(c->h2)) conn_close(c);
}

/* ---- the output queue ---- */

/* At most this many queued connections write per loop turn; the rest wait
 * for the next, after the loop has polled (new requests, acks) once. */
#define OUTPUT_SLICE 256

static void output_unlink(reel_http_connection *c) {
  reel_http_server *srv = c->srv;
  if (!c->output_queued) return;
  if (c->output_prev) c->output_prev->output_next = c->output_next;
  else srv->output_first = c->output_next;
  if (c->output_next) c->output_next->output_prev = c->output_prev;
  else srv->output_last = c->output_prev;
  c->output_next = c->output_prev = NULL;
  c->output_queued = 0;
}

/* Writes what the first OUTPUT_SLICE queued connections have waiting. */
static void on_output_idle(uv_idle_t *idle) {
  reel_http_server *srv = idle->data;
  for (int i = 0; i < OUTPUT_SLICE && srv->output_first; i++) {
    reel_http_connection *c = srv->output_first; /* taken afresh: a pump may close others */
    output_unlink(c);
    if (c->closing) continue;
    if (c->h2) h2_pump(c);
    else if (c->current && c->current->stream) stream_pump(c->current);
    if (!c->closing) arm_timer(c); /* a late response may start the session's send deadline */
  }
  if (!srv->output_first) uv_idle_stop(idle);
}

/* Queues c to write its news on a later loop turn (once, however often it
 * is woken before then). */
static void conn_wake_output(reel_http_connection *c) {
  reel_http_server *srv = c->srv;
  if (c->closing || c->output_queued || !srv->output_idle_open) return;
  c->output_queued = 1;
  c->output_prev = srv->output_last;
  if (srv->output_last) srv->output_last->output_next = c;
  else srv->output_first = c;
  srv->output_last = c;
  if (!uv_is_active((uv_handle_t *)&srv->output_idle)) uv_idle_start(&srv->output_idle, on_output_idle);
}

static void h2_on_output(void *io) { conn_wake_output(io); }

/* Looks at the first bytes of a connection: the HTTP/2 preface switches it to
 * an HTTP/2 session, anything else stays HTTP/1.1. Returns nonzero while a
 * prefix of the preface is all there is (wait for more). */
static int h2_choose(reel_http_connection *c) {
  size_t n = c->in.len < REEL_H2_PREFACE_LEN ? c->in.len : REEL_H2_PREFACE_LEN;
  if (memcmp(c->in.data, REEL_H2_PREFACE, n) != 0) {
    c->protocol_chosen = 1;
    return 0;
  }
  if (n < REEL_H2_PREFACE_LEN) {
    arm_timer(c);
    return 1;
  }
  c->protocol_chosen = 1;
  reel_http_server *srv = c->srv;
  reel_h2_config cfg = {
      .max_header_bytes = srv->limits.max_header_bytes,
      .max_body_bytes = srv->limits.max_body_bytes,
      .handler = srv->handler,
      .app = srv->app,
      .extra_header_name = srv->extra_header_name,
      .extra_header_value = srv->extra_header_value,
      .remote = c->remote,
      .secure = c->tls != NULL,
      .idle_timeout_ms = srv->idle_timeout_ms,
      .send_timeout_ms = srv->idle_timeout_ms,
      .on_output = h2_on_output,
      .io = c,
  };
  c->h2 = reel_h2_session_new(&cfg);
  if (!c->h2) {
    conn_close(c);
    return 1;
  }
  reel_buf_init(&c->h2_out, (size_t)1 << 20);
  if (srv->shutting_down) reel_h2_session_shutdown(c->h2);
  return 0;
}

/* Feeds everything read so far to the session, then sends its answer. */
static void h2_received(reel_http_connection *c) {
  int rc = reel_h2_session_recv(c->h2, c->in.data, c->in.len);
  reel_buf_reset(&c->in);
  if (c->closing) return;
  if (rc != 0) {
    reel_h2_session_terminate(c->h2, rc == REEL_ENOMEM);
    c->h2_close_after_write = 1;
    stop_reading(c);
  } else {
    start_reading(c);
  }
  arm_timer(c);
  h2_pump(c);
}

/* ---- TLS (https:// listeners) ----
 * GnuTLS runs over memory: the pull function hands it ciphertext read by
 * libuv (tls_in), the push function collects what it produces (tls_out),
 * and tls_flush hands that to uv_write in order. */

/* 1 if ciphertext or decrypted bytes wait inside the TLS layer. */
static int tls_has_input(reel_http_connection *c) {
  return c->tls_in.len > c->tls_in_pos || gnutls_record_check_pending(c->tls) > 0;
}

static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len) {
  reel_http_connection *c = ptr;
  size_t have = c->tls_in.len - c->tls_in_pos;
  if (have == 0) {
    gnutls_transport_set_errno(c->tls, EAGAIN);
    return -1;
  }
  if (len > have) len = have;
  memcpy(data, c->tls_in.data + c->tls_in_pos, len);
  c->tls_in_pos += len;
  return (ssize_t)len;
}

static ssize_t tls_push(gnutls_transport_ptr_t ptr, const void *data, size_t len) {
  reel_http_connection *c = ptr;
  if (reel_buf_append(&c->tls_out, data, len) != 0) {
    gnutls_transport_set_errno(c->tls, ENOMEM);
    return -1;
  }
  return (ssize_t)len;
}

static void tls_on_write(uv_write_t *w, int status) {
  tls_write *tw = w->data;
  if (tw->user_cb) tw->user_cb(tw->user, status);
  reel_buf_free(&tw->data);
  free(tw);
}

/* Writes the ciphertext collected so far; user (may be NULL) completes when
 * it is written. Returns 0 or a libuv error (then user_cb is not called). */
static int tls_flush(reel_http_connection *c, uv_write_t *user, uv_write_cb user_cb) {
  if (c->tls_out.len == 0 && !user) return 0;
  tls_write *tw = calloc(1, sizeof *tw);
  if (!tw) return UV_ENOMEM;
  tw->data = c->tls_out; /* moved */
  reel_buf_init(&c->tls_out, c->tls_out.max);
  tw->user = user;
  tw->user_cb = user_cb;
  tw->write.data = tw;
  uv_buf_t b = uv_buf_init(tw->data.data ? tw->data.data : "", (unsigned)tw->data.len);
  int rc = uv_write(&tw->write, (uv_stream_t *)&c->tcp, &b, 1, tls_on_write);
  if (rc != 0) {
    reel_buf_free(&tw->data);
    free(tw);
  }
  return rc;
}

/* Writes bufs on the connection, encrypted when it is TLS; cb(req) runs when
 * they are written. With TLS, req may be NULL (no completion wanted). */
static int conn_write(reel_http_connection *c, uv_write_t *req, const uv_buf_t *bufs, unsigned n, uv_write_cb cb) {
  if (!c->tls) return uv_write(req, (uv_stream_t *)&c->tcp, bufs, n, cb);
  for (unsigned i = 0; i < n; i++) {
    size_t done = 0;
    while (done < bufs[i].len) {
      ssize_t rc = gnutls_record_send(c->tls, bufs[i].base + done, bufs[i].len - done);
      if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) continue; /* push never blocks */
      if (rc < 0) return UV_EPROTO;
      done += (size_t)rc;
    }
  }
  return tls_flush(c, req, cb);
}

static int tls_start(reel_http_connection *c) {
  reel_http_server *srv = c->srv;
  reel_buf_init(&c->tls_in, 256 * 1024);
  reel_buf_init(&c->tls_out, (size_t)64 << 20);
  if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) != GNUTLS_E_SUCCESS) {
    c->tls = NULL;
    return REEL_ENOMEM;
  }
  c->tls_creds = reel_tls_credentials_acquire(srv->tls);
  static const gnutls_datum_t protocols[] = {{(unsigned char *)"h2", 2}, {(unsigned char *)"http/1.1", 8}};
  if (gnutls_priority_set(c->tls, srv->tls->priority_tcp) != GNUTLS_E_SUCCESS ||
      gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, reel_tls_credentials_get(c->tls_creds)) !=
          GNUTLS_E_SUCCESS ||
      gnutls_alpn_set_protocols(c->tls, protocols, 2, GNUTLS_ALPN_SERVER_PRECEDENCE) != GNUTLS_E_SUCCESS)
    return REEL_EIO;
  gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_IGNORE);
  gnutls_transport_set_ptr(c->tls, c);
  gnutls_transport_set_pull_function(c->tls, tls_pull);
  gnutls_transport_set_push_function(c->tls, tls_push);
  return 0;
}

/* Ciphertext arrived (or room opened in c->in): go on with the handshake,
 * decrypt as much as c->in can take, and pass the plaintext on. */
static void tls_received(reel_http_connection *c) {
  if (c->closing) return;
  if (!c->tls_handshaken) {
    int rc = gnutls_handshake(c->tls);
    if (rc < 0 && rc != GNUTLS_E_AGAIN && rc != GNUTLS_E_INTERRUPTED) {
      /* tell the client why (e.g. protocol_version), written now since the close follows at once */
      reel_log(REEL_LOG_INFO, "TLS handshake failed", "{s:s, s:s}", "remote", c->remote, "error",
               gnutls_strerror(rc));
      gnutls_alert_send_appropriate(c->tls, rc);
      if (c->tls_out.len > 0) {
        uv_buf_t b = uv_buf_init(c->tls_out.data, (unsigned)c->tls_out.len);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
      }
      c->tls_handshaken = 0;
      conn_close(c);
      return;
    }
    if (tls_flush(c, NULL, NULL) != 0) {
      conn_close(c);
      return;
    }
    if (rc < 0) { /* GNUTLS_E_AGAIN: wait for more of the client's flight */
      reel_buf_consume(&c->tls_in, c->tls_in_pos);
      c->tls_in_pos = 0;
      return;
    }
    c->tls_handshaken = 1;
    gnutls_datum_t alpn;
    if (gnutls_alpn_get_selected_protocol(c->tls, &alpn) == GNUTLS_E_SUCCESS &&
        !(alpn.size == 2 && memcmp(alpn.data, "h2", 2) == 0))
      c->protocol_chosen = 1; /* http/1.1 negotiated: no HTTP/2 on this connection */
    arm_timer(c);
  }
  int eof = 0;
  for (;;) {
    size_t before = c->in.len;
    while (c->in.len < c->in.max) {
      size_t room = c->in.max - c->in.len;
      if (room > 65536) room = 65536;
      if (c->in.cap < c->in.len + room + 1) {
        char *p = realloc(c->in.data, c->in.len + room + 1);
        if (!p) break;
        c->in.data = p;
        c->in.cap = c->in.len + room + 1;
      }
      ssize_t n = gnutls_record_recv(c->tls, c->in.data + c->in.len, room);
      if (n > 0) {
        c->in.len += (size_t)n;
        continue;
      }
      if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) break;
      if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) {
        eof = 1;
        break;
      }
      if (gnutls_error_is_fatal((int)n)) {
        reel_log(REEL_LOG_INFO, "TLS error", "{s:s, s:s}", "remote", c->remote, "error", gnutls_strerror((int)n));
        tls_flush(c, NULL, NULL);
        conn_close(c);
        return;
      }
    }
    reel_buf_consume(&c->tls_in, c->tls_in_pos);
    c->tls_in_pos = 0;
    if (tls_flush(c, NULL, NULL) != 0) { /* key updates, alerts */
      conn_close(c);
      return;
    }
    if (c->in.len >= c->in.max) stop_reading(c); /* resumed when the parser or session frees room */
    if (c->in.len > before) conn_received(c, before);
    /* an HTTP/2 session empties c->in each time: go on while input is buffered */
    if (eof || c->closing || !c->h2 || c->in.len >= c->in.max || !tls_has_input(c)) break;
  }
  if (eof && !c->closing) {
    c->tls_eof = 1;
    stop_reading(c);
    if (c->h2 || c->state == CONN_READING) conn_close(c);
    else c->keep_alive = 0;
  }
}
