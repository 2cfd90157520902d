/* The HTTP/3 session without QUIC: an nghttp3 client connection makes the
 * stream bytes, the server session answers, and the two are pumped into each
 * other with every byte acknowledged at once. Covers request fields, a memory
 * body, a request body, a file range larger than the read-ahead window (and
 * one the file cannot fill), HEAD, the 431 and 413 limits, late answers,
 * GOAWAY, and detaching on a stream reset and on session free; and the
 * bounds on what a client that reads nothing can make a connection hold:
 * response files opened only when a slot is free, the cap on unsent memory
 * bodies, shared static bodies sent by reference, the send-progress deadline
 * and the stream-reset flood limit. */
#include <fcntl.h>
#include <nghttp3/nghttp3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "http/h3_session.h"

#define MAX_STREAM_ID 64

typedef struct {
  int status;
  char content_length[24];
  char alt_svc[64];
  char request_id[32];
  reel_buf body;
  int ended;
} client_state;

/* What the pump knows about each stream id. */
typedef struct {
  int client_fin, server_fin, closed;
} wire_state;

static wire_state wire[MAX_STREAM_ID];
static reel_http_request *held; /* a request the handler answers later */
static int defer_answer;
static char seen_method[16], seen_path[64], seen_query[64], seen_host[64], seen_body[64];
static size_t seen_body_len;
static const char *file_path; /* set: answer with a range of this file */
static int64_t file_offset, file_length;
static size_t consumed_total;
/* answer modes for the resource-bound tests */
static enum { ANSWER_NORMAL, ANSWER_DEFERRED_FILE, ANSWER_BIG_MEMORY, ANSWER_STATIC } answer_mode;
static int files_opened;
static const char static_text[] = "shared static body, sent by reference";
static int shutdown_reads, shutdown_writes;

/* A deferred response file that counts how often it is opened. */
static int open_counted(void *ctx, int *fd) {
  *fd = open(ctx, O_RDONLY | O_CLOEXEC);
  if (*fd < 0) return -1;
  files_opened++;
  return 0;
}

static void handler(reel_http_request *req, void *app) {
  (void)app;
  CHECK_INT(req->protocol, REEL_HTTP_3);
  snprintf(seen_method, sizeof seen_method, "%.*s", (int)req->method.len, req->method.ptr);
  snprintf(seen_path, sizeof seen_path, "%.*s", (int)req->path.len, req->path.ptr);
  snprintf(seen_query, sizeof seen_query, "%.*s", (int)req->query.len, req->query.ptr);
  reel_slice host = reel_http_request_header(req, "Host");
  snprintf(seen_host, sizeof seen_host, "%.*s", (int)host.len, host.ptr ? host.ptr : "");
  snprintf(seen_body, sizeof seen_body, "%.*s", (int)req->body.len, req->body.ptr);
  seen_body_len = req->body.len;
  CHECK(req->request_id[0] != '\0');
  CHECK_STR(req->remote_addr, "test:1");
  if (defer_answer) {
    held = req;
    return;
  }
  req->route = "test";
  if (answer_mode == ANSWER_DEFERRED_FILE) {
    reel_http_response resp;
    reel_http_response_init(&resp, 200);
    resp.file_open = open_counted;
    resp.file_ctx = (void *)file_path;
    resp.file_length = file_length;
    reel_http_send(req, &resp);
    return;
  }
  if (answer_mode == ANSWER_BIG_MEMORY) {
    reel_http_response resp;
    reel_http_response_init(&resp, 200);
    while (resp.body.len < 600 * 1024) reel_buf_append(&resp.body, "0123456789abcdef", 16);
    reel_http_send(req, &resp);
    return;
  }
  if (answer_mode == ANSWER_STATIC) {
    reel_http_response resp;
    reel_http_response_init(&resp, 200);
    resp.static_body = static_text;
    resp.static_len = sizeof static_text - 1;
    reel_http_send(req, &resp);
    return;
  }
  if (file_path) {
    reel_http_response resp;
    reel_http_response_init(&resp, 206);
    resp.file_fd = open(file_path, O_RDONLY);
    resp.file_offset = file_offset;
    resp.file_length = file_length;
    reel_http_send(req, &resp);
    return;
  }
  reel_http_send_json(req, 200, "{\"ok\":true}");
}

/* ---- hooks ---- */

static void on_consumed(void *io, int64_t stream_id, size_t n) {
  (void)io, (void)stream_id;
  consumed_total += n;
}
static void on_shutdown_read(void *io, int64_t stream_id, uint64_t code) {
  (void)io, (void)stream_id, (void)code;
  shutdown_reads++;
}
static void on_shutdown_write(void *io, int64_t stream_id, uint64_t code) {
  (void)io, (void)stream_id, (void)code;
  shutdown_writes++;
}

/* ---- the client ---- */

static int c_recv_header(nghttp3_conn *conn, int64_t stream_id, int32_t token, nghttp3_rcbuf *name,
                         nghttp3_rcbuf *value, uint8_t flags, void *user_data, void *stream_user_data) {
  (void)conn, (void)stream_id, (void)token, (void)flags, (void)user_data;
  client_state *cs = stream_user_data;
  nghttp3_vec n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);
  char text[256];
  snprintf(text, sizeof text, "%.*s", (int)v.len, (const char *)v.base);
  if (n.len == 7 && memcmp(n.base, ":status", 7) == 0) cs->status = atoi(text);
  else if (n.len == 14 && memcmp(n.base, "content-length", 14) == 0)
    snprintf(cs->content_length, sizeof cs->content_length, "%s", text);
  else if (n.len == 7 && memcmp(n.base, "alt-svc", 7) == 0) snprintf(cs->alt_svc, sizeof cs->alt_svc, "%s", text);
  else if (n.len == 12 && memcmp(n.base, "x-request-id", 12) == 0)
    snprintf(cs->request_id, sizeof cs->request_id, "%s", text);
  return 0;
}

static int c_recv_data(nghttp3_conn *conn, int64_t stream_id, const uint8_t *data, size_t len, void *user_data,
                       void *stream_user_data) {
  (void)conn, (void)stream_id, (void)user_data;
  client_state *cs = stream_user_data;
  CHECK_INT(reel_buf_append(&cs->body, data, len), 0);
  return 0;
}

static int c_end_stream(nghttp3_conn *conn, int64_t stream_id, void *user_data, void *stream_user_data) {
  (void)conn, (void)stream_id, (void)user_data;
  ((client_state *)stream_user_data)->ended = 1;
  return 0;
}

static nghttp3_conn *client_new(void) {
  nghttp3_callbacks cb = {.recv_header = c_recv_header, .recv_data = c_recv_data, .end_stream = c_end_stream};
  nghttp3_settings settings;
  nghttp3_settings_default(&settings);
  nghttp3_conn *client = NULL;
  CHECK_INT(nghttp3_conn_client_new(&client, &cb, &settings, NULL, NULL), 0);
  CHECK_INT(nghttp3_conn_bind_control_stream(client, 2), 0);
  CHECK_INT(nghttp3_conn_bind_qpack_streams(client, 6, 10), 0);
  return client;
}

static reel_h3_session *server_new(size_t max_header_bytes, size_t max_body_bytes) {
  reel_h3_session_config cfg = {
      .max_header_bytes = max_header_bytes,
      .max_body_bytes = max_body_bytes,
      .max_streams_bidi = 100,
      .handler = handler,
      .extra_header_name = "Alt-Svc",
      .extra_header_value = "h3=\":443\"",
      .remote = "test:1",
      .consumed = on_consumed,
      .shutdown_read = on_shutdown_read,
      .shutdown_write = on_shutdown_write,
  };
  reel_h3_session *s = reel_h3_session_new(&cfg);
  CHECK(s != NULL);
  CHECK_INT(reel_h3_session_bind_streams(s, 3, 7, 11), 0);
  memset(wire, 0, sizeof wire);
  consumed_total = 0;
  shutdown_reads = shutdown_writes = 0;
  return s;
}

/* Moves bytes both ways until neither side has anything to say; a stream both
 * sides have finished is closed on both, as QUIC would. */
static void pump(nghttp3_conn *client, reel_h3_session *server) {
  for (int round = 0; round < 10000; round++) {
    int moved = 0;
    for (;;) {
      int64_t sid = -1;
      int fin = 0;
      nghttp3_vec vec[16];
      nghttp3_ssize n = nghttp3_conn_writev_stream(client, &sid, &fin, vec, 16);
      CHECK(n >= 0);
      if (n < 0 || sid < 0) break;
      size_t total = 0;
      for (nghttp3_ssize i = 0; i < n; i++) {
        CHECK_INT(reel_h3_session_recv(server, sid, vec[i].base, vec[i].len, 0), 0);
        total += vec[i].len;
      }
      if (fin) CHECK_INT(reel_h3_session_recv(server, sid, NULL, 0, 1), 0);
      CHECK_INT(nghttp3_conn_add_write_offset(client, sid, total), 0);
      CHECK_INT(nghttp3_conn_add_ack_offset(client, sid, total), 0);
      if (fin && sid < MAX_STREAM_ID) wire[sid].client_fin = 1;
      moved = 1;
    }
    for (;;) {
      int64_t sid = -1;
      int fin = 0;
      reel_h3_vec vec[16];
      int n = reel_h3_session_writev(server, &sid, &fin, vec, 16);
      CHECK(n >= 0);
      if (n < 0 || sid < 0) break;
      size_t total = 0;
      for (int i = 0; i < n; i++) {
        CHECK(nghttp3_conn_read_stream(client, sid, vec[i].base, vec[i].len, 0) >= 0);
        total += vec[i].len;
      }
      if (fin) CHECK(nghttp3_conn_read_stream(client, sid, NULL, 0, 1) >= 0);
      CHECK_INT(reel_h3_session_add_write_offset(server, sid, total), 0);
      CHECK_INT(reel_h3_session_add_ack_offset(server, sid, total), 0);
      if (fin && sid < MAX_STREAM_ID) wire[sid].server_fin = 1;
      moved = 1;
    }
    for (int sid = 0; sid < MAX_STREAM_ID; sid += 4) {
      if (wire[sid].client_fin && wire[sid].server_fin && !wire[sid].closed) {
        wire[sid].closed = 1;
        CHECK_INT(reel_h3_session_stream_close(server, sid, REEL_H3_NO_ERROR), 0);
        nghttp3_conn_close_stream(client, sid, REEL_H3_NO_ERROR);
        moved = 1;
      }
    }
    if (!moved) return;
  }
  CHECK(!"pump did not settle");
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP3_NV_FLAG_NONE}

static const nghttp3_nv get_nva[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":authority", "reel.test"),
                                     NV(":path", "/healthz?x=1")};

static void client_state_init(client_state *cs) {
  memset(cs, 0, sizeof *cs);
  reel_buf_init(&cs->body, 1 << 20);
}

static void test_get(void) {
  nghttp3_conn *client = client_new();
  reel_h3_session *server = server_new(4096, 32);
  client_state cs;
  client_state_init(&cs);
  defer_answer = 0;
  file_path = NULL;
  CHECK_INT(nghttp3_conn_submit_request(client, 0, get_nva, 4, NULL, &cs), 0);
  pump(client, server);
  CHECK_INT(cs.status, 200);
  CHECK_INT(cs.ended, 1);
  CHECK_STR(cs.body.data, "{\"ok\":true}");
  CHECK_STR(cs.content_length, "11");
  CHECK_STR(cs.alt_svc, "h3=\":443\"");
  CHECK_INT(strlen(cs.request_id), 16); /* X-Request-Id, lower-cased */
  CHECK_STR(seen_method, "GET");
  CHECK_STR(seen_path, "/healthz");
  CHECK_STR(seen_query, "x=1");
  CHECK_STR(seen_host, "reel.test");
  CHECK_INT(reel_h3_session_handling(server), 0);
  CHECK_INT(reel_h3_session_request_streams(server), 0); /* closed and freed */
  CHECK(consumed_total > 0);                             /* flow-control credit was handed back */
  reel_h3_session_free(server);
  nghttp3_conn_del(client);
  reel_buf_free(&cs.body);
}

static nghttp3_ssize read_text(nghttp3_conn *conn, int64_t stream_id, nghttp3_vec *vec, size_t veccnt,
                               uint32_t *pflags, void *user_data, void *stream_user_data) {
  (void)conn, (void)stream_id, (void)veccnt, (void)user_data, (void)stream_user_data;
  static const char text[] = "{\"prompt\":\"a\"}";
  vec[0].base = (uint8_t *)text;
  vec[0].len = sizeof text - 1;
  *pflags |= NGHTTP3_DATA_FLAG_EOF;
  return 1;
}

static nghttp3_ssize read_big(nghttp3_conn *conn, int64_t stream_id, nghttp3_vec *vec, size_t veccnt,
                              uint32_t *pflags, void *user_data, void *stream_user_data) {
  (void)conn, (void)stream_id, (void)veccnt, (void)user_data, (void)stream_user_data;
  static const char text[] = "0123456789012345678901234567890123456789";
  vec[0].base = (uint8_t *)text;
  vec[0].len = sizeof text - 1;
  *pflags |= NGHTTP3_DATA_FLAG_EOF;
  return 1;
}

static const nghttp3_nv post_nva[] = {NV(":method", "POST"), NV(":scheme", "https"),
                                      NV(":authority", "reel.test"), NV(":path", "/v1/jobs")};

static void test_post_body(void) {
  nghttp3_conn *client = client_new();
  reel_h3_session *server = server_new(4096, 32);
  client_state cs;
  client_state_init(&cs);
  defer_answer = 0;
  file_path = NULL;
  nghttp3_data_reader dr = {.read_data = read_text};
  CHECK_INT(nghttp3_conn_submit_request(client, 0, post_nva, 4, &dr, &cs), 0);
  pump(client, server);
  CHECK_INT(cs.status, 200);
  CHECK_STR(seen_method, "POST");
  CHECK_STR(seen_body, "{\"prompt\":\"a\"}");
  CHECK_INT(reel_h3_session_request_streams(server), 0);
  reel_h3_session_free(server);
  nghttp3_conn_del(client);
  reel_buf_free(&cs.body);
}

static void test_body_too_large(void) {
  nghttp3_conn *client = client_new();
  reel_h3_session *server = server_new(4096, 32);
  client_state cs;
  client_state_init(&cs);
  defer_answer = 0;
  file_path = NULL;
  seen_path[0] = '\0';
  nghttp3_data_reader dr = {.read_data = read_big};
  CHECK_INT(nghttp3_conn_submit_request(client, 0, post_nva, 4, &dr, &cs), 0);
  pump(client, server);
  CHECK_INT(cs.status, 413);
  CHECK(strstr(cs.body.data ? cs.body.data : "", "body-too-large") != NULL);
  CHECK_STR(seen_path, ""); /* the handler never saw it */
  CHECK_INT(reel_h3_session_handling(server), 0);
  reel_h3_session_free(server);
  nghttp3_conn_del(client);
  reel_buf_free(&cs.body);

  /* announced with content-length: refused as soon as the head arrives */
  static const nghttp3_nv announced[] = {NV(":method", "POST"), NV(":scheme", "https"),
                                         NV(":authority", "reel.test"), NV(":path", "/v1/jobs"),
                                         NV("content-length", "40")};
  client = client_new();
  server = server_new(4096, 32);
  client_state_init(&cs);
  CHECK_INT(nghttp3_conn_submit_request(client, 0, announced, 5, &dr, &cs), 0);
  pump(client, server);
  CHECK_INT(cs.status, 413);
  CHECK(shutdown_reads >= 1); /* the upload was stopped */
  CHECK_STR(seen_path, "");
  reel_h3_session_free(server);
  nghttp3_conn_del(client);
  reel_buf_free(&cs.body);
}

static void test_headers_too_large(void) {
  nghttp3_conn *client = client_new();
  reel_h3_session *server = server_new(4096, 32);
  client_state cs;
  client_state_init(&cs);
  defer_answer = 0;
  file_path = NULL;
  seen_path[0] = '\0';
  static char big[8000];
  memset(big, 'a', sizeof big - 1);
  nghttp3_nv nva[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":authority", "reel.test"),
                      NV(":path", "/big"),
                      {(uint8_t *)"x-big", (uint8_t *)big, 5, sizeof big - 1, NGHTTP3_NV_FLAG_NONE}};
  CHECK_INT(nghttp3_conn_submit_request(client, 0, nva, 5, NULL, &cs), 0);
  pump(client, server);
  CHECK_INT(cs.status, 431);
  CHECK(strstr(cs.body.data ? cs.body.data : "", "headers-too-large") != NULL);
  CHECK_STR(seen_path, "");
  CHECK_INT(reel_h3_session_handling(server), 0);
  reel_h3_session_free(server);
  nghttp3_conn_del(client);
  reel_buf_free(&cs.body);
}

static void test_file_range(void) {
  char path[] = "/tmp/reel-h3-test-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  size_t size = 400 * 1024;
  char *content = malloc(size);
  for (size_t i = 0; i < size; i++) content[i] = (char)('a' + (i * 7 + i / 1000) % 26);
  CHECK_INT(write(fd, content, size), (long long)size);
  close(fd);

  nghttp3_conn *client = client_new();
  reel_h3_session *server = server_new(4096, 32);
  client_state cs;
  client_state_init(&cs);
  defer_answer = 0;
  file_path = path;
  file_offset = 1000;
  file_length = 350 * 1024; /* more than the read-ahead window: needs acknowledgements to finish */
  static const nghttp3_nv nva[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":authority", "reel.test"),
                                   NV(":path", "/v1/files/x")};
  CHECK_INT(nghttp3_conn_submit_request(client, 0, nva, 4, NULL, &cs), 0);
  pump(client, server);
  CHECK_INT(cs.status, 206);
  CHECK_INT(cs.ended, 1);
  CHECK_INT(cs.body.len, file_length);
  CHECK(cs.body.len == (size_t)file_length && memcmp(cs.body.data, content + file_offset, cs.body.len) == 0);
  char expected_length[24];
  snprintf(expected_length, sizeof expected_length, "%lld", (long long)file_length);
  CHECK_STR(cs.content_length, expected_length);

  /* HEAD: the real length, no body */
  client_state head_cs;
  client_state_init(&head_cs);
  static const nghttp3_nv head_nva[] = {NV(":method", "HEAD"), NV(":scheme", "https"),
                                        NV(":authority", "reel.test"), NV(":path", "/v1/files/x")};
  CHECK_INT(nghttp3_conn_submit_request(client, 4, head_nva, 4, NULL, &head_cs), 0);
  pump(client, server);
  CHECK_INT(head_cs.status, 206);
  CHECK_STR(head_cs.content_length, expected_length);
  CHECK_INT(head_cs.body.len, 0);
  CHECK_INT(reel_h3_session_request_streams(server), 0);

  /* a file shorter than the range promised: the stream is reset, not ended short */
  client_state short_cs;
  client_state_init(&short_cs);
  file_offset = (int64_t)size - 10;
  file_length = 1000;
  CHECK_INT(nghttp3_conn_submit_request(client, 8, nva, 4, NULL, &short_cs), 0);
  pump(client, server);
  CHECK_INT(short_cs.status, 206);
  CHECK_INT(short_cs.ended, 0);
  CHECK(short_cs.body.len < 1000);
  CHECK_INT(shutdown_writes, 1); /* RESET_STREAM asked of QUIC */

  file_path = NULL;
  reel_h3_session_free(server);
  nghttp3_conn_del(client);
  reel_buf_free(&cs.body);
  reel_buf_free(&head_cs.body);
  reel_buf_free(&short_cs.body);
  free(content);
  unlink(path);
}

static void test_detach_on_reset(void) {
  nghttp3_conn *client = client_new();
  reel_h3_session *server = server_new(4096, 32);
  client_state cs;
  client_state_init(&cs);
  defer_answer = 1;
  held = NULL;
  file_path = NULL;
  CHECK_INT(nghttp3_conn_submit_request(client, 0, get_nva, 4, NULL, &cs), 0);
  pump(client, server);
  CHECK(held != NULL);
  CHECK_INT(reel_h3_session_handling(server), 1);
  CHECK_INT(reel_h3_session_request_streams(server), 1);
  /* the client resets the stream (QUIC reports RESET_STREAM, then the close) */
  reel_h3_session_stream_reset(server, 0);
  CHECK(held && held->detached);
  CHECK_INT(reel_h3_session_handling(server), 0);
  CHECK(shutdown_writes >= 1); /* our side of the stream is aborted too */
  CHECK_INT(reel_h3_session_stream_close(server, 0, REEL_H3_REQUEST_CANCELLED), 0);
  CHECK_INT(reel_h3_session_request_streams(server), 0);
  if (held) reel_http_send_json(held, 200, "{}"); /* frees it (ASan watches) */
  held = NULL;
  pump(client, server);
  CHECK_INT(cs.status, 0);
  reel_h3_session_free(server);
  nghttp3_conn_del(client);
  reel_buf_free(&cs.body);
}

static void test_detach_on_free_and_late_answer(void) {
  nghttp3_conn *client = client_new();
  reel_h3_session *server = server_new(4096, 32);
  client_state cs;
  client_state_init(&cs);
  defer_answer = 1;
  held = NULL;
  file_path = NULL;
  CHECK_INT(nghttp3_conn_submit_request(client, 0, get_nva, 4, NULL, &cs), 0);
  pump(client, server);
  CHECK(held != NULL);
  /* a late answer on a live stream goes out on the next pump */
  defer_answer = 0;
  reel_http_send_json(held, 200, "{\"late\":1}");
  held = NULL;
  pump(client, server);
  CHECK_INT(cs.status, 200);
  CHECK_STR(cs.body.data, "{\"late\":1}");

  /* a request still held when the session goes away is detached */
  client_state cs2;
  client_state_init(&cs2);
  defer_answer = 1;
  CHECK_INT(nghttp3_conn_submit_request(client, 4, get_nva, 4, NULL, &cs2), 0);
  pump(client, server);
  CHECK(held != NULL);
  reel_h3_session_free(server);
  CHECK(held && held->detached);
  if (held) reel_http_send_json(held, 200, "{}");
  held = NULL;
  nghttp3_conn_del(client);
  reel_buf_free(&cs.body);
  reel_buf_free(&cs2.body);
}

static void test_shutdown(void) {
  nghttp3_conn *client = client_new();
  reel_h3_session *server = server_new(4096, 32);
  client_state cs;
  client_state_init(&cs);
  defer_answer = 1;
  held = NULL;
  file_path = NULL;
  CHECK_INT(nghttp3_conn_submit_request(client, 0, get_nva, 4, NULL, &cs), 0);
  pump(client, server);
  CHECK_INT(reel_h3_session_shutdown(server), 0);
  pump(client, server);
  CHECK_INT(reel_h3_session_request_streams(server), 1); /* the accepted stream goes on */
  defer_answer = 0;
  if (held) reel_http_send_json(held, 200, "{\"late\":1}");
  held = NULL;
  pump(client, server);
  CHECK_INT(cs.status, 200);
  CHECK_INT(reel_h3_session_request_streams(server), 0);
  reel_h3_session_free(server);
  nghttp3_conn_del(client);
  reel_buf_free(&cs.body);
}

/* Moves only the client's bytes to the server: a client that never reads
 * (nothing the server writes is taken, let alone acknowledged). */
static void pump_requests_only(nghttp3_conn *client, reel_h3_session *server) {
  for (;;) {
    int64_t sid = -1;
    int fin = 0;
    nghttp3_vec vec[16];
    nghttp3_ssize n = nghttp3_conn_writev_stream(client, &sid, &fin, vec, 16);
    CHECK(n >= 0);
    if (n < 0 || sid < 0) return;
    size_t total = 0;
    for (nghttp3_ssize i = 0; i < n; i++) {
      CHECK_INT(reel_h3_session_recv(server, sid, vec[i].base, vec[i].len, 0), 0);
      total += vec[i].len;
    }
    if (fin) CHECK_INT(reel_h3_session_recv(server, sid, NULL, 0, 1), 0);
    CHECK_INT(nghttp3_conn_add_write_offset(client, sid, total), 0);
    CHECK_INT(nghttp3_conn_add_ack_offset(client, sid, total), 0);
    if (fin && sid < MAX_STREAM_ID) wire[sid].client_fin = 1;
  }
}

#define N_STALLED 12 /* stream ids 0, 4, ... 44: more than REEL_H3_MAX_OPEN_FILES */

/* 12 file responses on a connection whose client reads nothing: only
 * REEL_H3_MAX_OPEN_FILES files are ever opened, the rest wait unopened, and
 * the send-progress deadline is running; once the client reads, every
 * response completes in full. */
static void test_file_slots(void) {
  char path[] = "/tmp/reel-h3-slots-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  char data[40000];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (char)('a' + i % 26);
  CHECK_INT((int)write(fd, data, sizeof data), (int)sizeof data);
  close(fd);
  nghttp3_conn *client = client_new();
  reel_h3_session *server = server_new(4096, 32);
  client_state cs[N_STALLED];
  defer_answer = 0;
  answer_mode = ANSWER_DEFERRED_FILE;
  file_path = path;
  file_length = sizeof data;
  files_opened = 0;
  for (int i = 0; i < N_STALLED; i++) {
    client_state_init(&cs[i]);
    CHECK_INT(nghttp3_conn_submit_request(client, 4 * i, get_nva, 4, NULL, &cs[i]), 0);
  }
  pump_requests_only(client, server);
  CHECK_INT(files_opened, REEL_H3_MAX_OPEN_FILES); /* the others are not opened yet */
  int stalled = 0;
  uint64_t deadline = reel_h3_session_deadline_ms(server, &stalled);
  CHECK(deadline != UINT64_MAX);
  CHECK_INT(stalled, 1); /* responses pending: the send-progress deadline runs */
  pump(client, server);  /* now the client reads */
  CHECK_INT(files_opened, N_STALLED);
  for (int i = 0; i < N_STALLED; i++) {
    CHECK_INT(cs[i].status, 200);
    CHECK_INT((int)cs[i].body.len, (int)sizeof data);
    CHECK(cs[i].body.len == sizeof data && memcmp(cs[i].body.data, data, sizeof data) == 0);
    reel_buf_free(&cs[i].body);
  }
  reel_h3_session_deadline_ms(server, &stalled);
  CHECK_INT(stalled, 0); /* nothing pending: only the idle deadline */
  reel_h3_session_free(server);
  nghttp3_conn_del(client);
  unlink(path);
  answer_mode = ANSWER_NORMAL;
  file_path = NULL;
}

/* Three 600 KiB memory responses to a client that reads nothing: the first
 * is kept, the others (beyond REEL_H3_MAX_BUFFERED_BYTES) become 503s. */
static void test_buffered_cap(void) {
  nghttp3_conn *client = client_new();
  reel_h3_session *server = server_new(4096, 32);
  client_state cs[3];
  defer_answer = 0;
  answer_mode = ANSWER_BIG_MEMORY;
  for (int i = 0; i < 3; i++) {
    client_state_init(&cs[i]);
    cs[i].body.max = 1 << 21;
    CHECK_INT(nghttp3_conn_submit_request(client, 4 * i, get_nva, 4, NULL, &cs[i]), 0);
  }
  pump_requests_only(client, server);
  pump(client, server);
  int ok = 0, refused = 0;
  for (int i = 0; i < 3; i++) {
    if (cs[i].status == 200 && cs[i].body.len == 600 * 1024) ok++;
    if (cs[i].status == 503 && strstr(cs[i].body.data ? cs[i].body.data : "", "not read")) refused++;
    reel_buf_free(&cs[i].body);
  }
  CHECK_INT(ok, 1);
  CHECK_INT(refused, 2);
  reel_h3_session_free(server);
  nghttp3_conn_del(client);
  answer_mode = ANSWER_NORMAL;
}

/* A static body is handed to the transport by reference, never copied. */
static void test_static_by_reference(void) {
  nghttp3_conn *client = client_new();
  reel_h3_session *server = server_new(4096, 32);
  client_state cs;
  client_state_init(&cs);
  defer_answer = 0;
  answer_mode = ANSWER_STATIC;
  CHECK_INT(nghttp3_conn_submit_request(client, 0, get_nva, 4, NULL, &cs), 0);
  pump_requests_only(client, server);
  int by_reference = 0;
  for (int round = 0; round < 16; round++) {
    int64_t sid = -1;
    int fin = 0;
    reel_h3_vec vec[16];
    int n = reel_h3_session_writev(server, &sid, &fin, vec, 16);
    if (n < 0 || sid < 0) break;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
      if (vec[i].base == (const uint8_t *)static_text) by_reference = 1;
      CHECK(nghttp3_conn_read_stream(client, sid, vec[i].base, vec[i].len, 0) >= 0);
      total += vec[i].len;
    }
    if (fin) CHECK(nghttp3_conn_read_stream(client, sid, NULL, 0, 1) >= 0);
    CHECK_INT(reel_h3_session_add_write_offset(server, sid, total), 0);
    CHECK_INT(reel_h3_session_add_ack_offset(server, sid, total), 0);
    if (fin && sid < MAX_STREAM_ID) wire[sid].server_fin = 1;
  }
  CHECK_INT(by_reference, 1);
  pump(client, server);
  CHECK_INT(cs.status, 200);
  CHECK_STR(cs.body.data, static_text);
  reel_buf_free(&cs.body);
  reel_h3_session_free(server);
  nghttp3_conn_del(client);
  answer_mode = ANSWER_NORMAL;
}

/* Stream resets beyond the burst end the connection with H3_EXCESSIVE_LOAD. */
static void test_reset_flood(void) {
  reel_h3_session *server = server_new(4096, 32);
  int failed_at = -1;
  for (int i = 0; i < 5000 && failed_at < 0; i++)
    if (reel_h3_session_stream_reset(server, 4 * (i % 16)) != 0) failed_at = i;
  CHECK(failed_at > 100); /* a client may cancel streams */
  CHECK(failed_at >= 0 && failed_at < 5000);
  CHECK(reel_h3_session_error_code(server) == REEL_H3_EXCESSIVE_LOAD);
  reel_h3_session_free(server);
}

int main(void) {
  test_get();
  test_post_body();
  test_body_too_large();
  test_headers_too_large();
  test_file_range();
  test_detach_on_reset();
  test_detach_on_free_and_late_answer();
  test_shutdown();
  test_file_slots();
  test_buffered_cap();
  test_static_by_reference();
  test_reset_flood();
  return check_report();
}
