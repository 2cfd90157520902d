/* The HTTP/2 session without a socket: an nghttp2 client session makes the
 * bytes, the server session answers, and the two are pumped into each other.
 * Covers request fields, the body limit, detaching on RST_STREAM and on
 * session free, and graceful shutdown. */
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "http/h2_session.h"

typedef struct {
  int status;
  char body[256];
  size_t body_len;
  int closed;
  int goaway;
} client_state;

static reel_http_request *held;  /* a request the handler answers later */
static int defer_answer;
static char seen_path[64], seen_query[64], seen_host[64], seen_body[64];

static void handler(reel_http_request *req, void *app) {
  (void)app;
  snprintf(seen_path, sizeof seen_path, "%.*s", (int)req->path.len, req->path.ptr);
  snprintf(seen_query, sizeof seen_query, "%.*s", (int)req->query.len, req->query.ptr);
  reel_slice host = reel_http_request_header(req, "Host");
  snprintf(seen_host, sizeof seen_host, "%.*s", (int)host.len, host.ptr ? host.ptr : "");
  snprintf(seen_body, sizeof seen_body, "%.*s", (int)req->body.len, req->body.ptr);
  CHECK_INT(req->protocol, REEL_HTTP_2);
  if (defer_answer) {
    held = req;
    return;
  }
  req->route = "test";
  reel_http_send_json(req, 200, "{\"ok\":true}");
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
  (void)ng, (void)frame, (void)flags;
  client_state *cs = user_data;
  if (namelen == 7 && memcmp(name, ":status", 7) == 0) cs->status = atoi((const char *)value);
  (void)valuelen;
  return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                   void *user_data) {
  (void)ng, (void)flags, (void)stream_id;
  client_state *cs = user_data;
  if (cs->body_len + len < sizeof cs->body) {
    memcpy(cs->body + cs->body_len, data, len);
    cs->body_len += len;
  }
  return 0;
}

static int on_close(nghttp2_session *ng, int32_t stream_id, uint32_t error_code, void *user_data) {
  (void)ng, (void)stream_id, (void)error_code;
  ((client_state *)user_data)->closed = 1;
  return 0;
}

static int on_frame(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data) {
  (void)ng;
  if (frame->hd.type == NGHTTP2_GOAWAY) ((client_state *)user_data)->goaway = 1;
  return 0;
}

static nghttp2_session *client_new(client_state *cs) {
  nghttp2_session_callbacks *cb;
  nghttp2_session *ng;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
  nghttp2_session_client_new(&ng, cb, cs);
  nghttp2_session_callbacks_del(cb);
  nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, NULL, 0);
  return ng;
}

/* Moves bytes both ways until neither side has anything to say. */
static void pump(nghttp2_session *client, reel_h2_session *server) {
  for (int round = 0; round < 50; round++) {
    int moved = 0;
    const uint8_t *data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(client, &data)) > 0) {
      CHECK_INT(reel_h2_session_recv(server, data, (size_t)n), 0);
      moved = 1;
    }
    reel_buf out;
    reel_buf_init(&out, 1 << 20);
    CHECK_INT(reel_h2_session_send(server, &out, 65536), 0);
    if (out.len > 0) {
      nghttp2_session_mem_recv(client, (const uint8_t *)out.data, out.len);
      moved = 1;
    }
    reel_buf_free(&out);
    if (!moved) return;
  }
}

static reel_h2_session *server_new(void) {
  reel_h2_config cfg = {.max_header_bytes = 4096, .max_body_bytes = 32, .handler = handler, .remote = "test:1"};
  reel_h2_session *s = reel_h2_session_new(&cfg);
  CHECK(s != NULL); /* the client session sends the preface itself */
  return s;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE}

static const nghttp2_nv get_nva[] = {NV(":method", "GET"), NV(":scheme", "http"), NV(":authority", "reel.test"),
                                     NV(":path", "/healthz?x=1")};

static ssize_t read_body(nghttp2_session *ng, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
  (void)ng, (void)stream_id, (void)user_data;
  const char *text = source->ptr;
  size_t n = strlen(text) < length ? strlen(text) : length;
  memcpy(buf, text, n);
  *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static void test_get(void) {
  client_state cs = {0};
  nghttp2_session *client = client_new(&cs);
  reel_h2_session *server = server_new();
  defer_answer = 0;
  nghttp2_submit_request(client, NULL, get_nva, 4, NULL, NULL);
  pump(client, server);
  CHECK_INT(cs.status, 200);
  CHECK_INT(cs.closed, 1);
  CHECK_STR(cs.body, "{\"ok\":true}");
  CHECK_STR(seen_path, "/healthz");
  CHECK_STR(seen_query, "x=1");
  CHECK_STR(seen_host, "reel.test");
  CHECK_INT(reel_h2_session_handling(server), 0);
  reel_h2_session_free(server);
  nghttp2_session_del(client);
}

static void test_post_body_and_limit(void) {
  static const nghttp2_nv post_nva[] = {NV(":method", "POST"), NV(":scheme", "http"),
                                        NV(":authority", "reel.test"), NV(":path", "/v1/jobs")};
  client_state cs = {0};
  nghttp2_session *client = client_new(&cs);
  reel_h2_session *server = server_new();
  defer_answer = 0;
  nghttp2_data_provider small = {.source = {.ptr = (void *)"{\"prompt\":\"a\"}"}, .read_callback = read_body};
  nghttp2_submit_request(client, NULL, post_nva, 4, &small, NULL);
  pump(client, server);
  CHECK_INT(cs.status, 200);
  CHECK_STR(seen_body, "{\"prompt\":\"a\"}");

  client_state big_cs = {0};
  nghttp2_session *client2 = client_new(&big_cs);
  reel_h2_session *server2 = server_new();
  seen_path[0] = '\0';
  nghttp2_data_provider big = {.source = {.ptr = (void *)"0123456789012345678901234567890123456789"},
                               .read_callback = read_body};
  nghttp2_submit_request(client2, NULL, post_nva, 4, &big, NULL);
  pump(client2, server2);
  CHECK_INT(big_cs.status, 413);
  CHECK_STR(seen_path, ""); /* the handler never saw it */
  reel_h2_session_free(server2);
  nghttp2_session_del(client2);
  reel_h2_session_free(server);
  nghttp2_session_del(client);
}

static void test_detach_on_reset(void) {
  client_state cs = {0};
  nghttp2_session *client = client_new(&cs);
  reel_h2_session *server = server_new();
  defer_answer = 1;
  held = NULL;
  int32_t id = nghttp2_submit_request(client, NULL, get_nva, 4, NULL, NULL);
  pump(client, server);
  CHECK(held != NULL);
  CHECK_INT(reel_h2_session_handling(server), 1);
  nghttp2_submit_rst_stream(client, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
  pump(client, server);
  CHECK(held && held->detached);
  CHECK_INT(reel_h2_session_handling(server), 0);
  if (held) reel_http_send_json(held, 200, "{}"); /* frees it (ASan watches) */
  reel_h2_session_free(server);
  nghttp2_session_del(client);
}

static void test_detach_on_free(void) {
  client_state cs = {0};
  nghttp2_session *client = client_new(&cs);
  reel_h2_session *server = server_new();
  defer_answer = 1;
  held = NULL;
  nghttp2_submit_request(client, NULL, get_nva, 4, NULL, NULL);
  pump(client, server);
  CHECK(held != NULL);
  reel_h2_session_free(server);
  CHECK(held && held->detached);
  if (held) reel_http_send_json(held, 200, "{}");
  nghttp2_session_del(client);
}

static void test_shutdown_finishes_streams(void) {
  client_state cs = {0};
  nghttp2_session *client = client_new(&cs);
  reel_h2_session *server = server_new();
  defer_answer = 1;
  held = NULL;
  nghttp2_submit_request(client, NULL, get_nva, 4, NULL, NULL);
  pump(client, server);
  reel_h2_session_shutdown(server);
  pump(client, server);
  CHECK_INT(cs.goaway, 1);
  CHECK_INT(reel_h2_session_want_io(server), 1); /* the accepted stream is still open */
  defer_answer = 0;
  if (held) reel_http_send_json(held, 200, "{\"late\":1}");
  pump(client, server);
  CHECK_INT(cs.status, 200);
  CHECK_INT(reel_h2_session_want_io(server), 0);
  reel_h2_session_free(server);
  nghttp2_session_del(client);
}

int main(void) {
  test_get();
  test_post_body_and_limit();
  test_detach_on_reset();
  test_detach_on_free();
  test_shutdown_finishes_streams();
  return check_report();
}
