/* libFuzzer target for the HTTP/2 front end: the input is what a client sends
 * after the connection preface. A dummy handler answers every request at once
 * (every third one from a file-less empty body, the rest with JSON), output
 * is drained after every piece, and the session is freed at the end, so
 * stream lifetimes, the limits and the data provider all run. The input is
 * fed in pieces whose sizes come from its first byte. Small limits so the
 * fuzzer reaches them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "http/h2_session.h"

static int answered;

static void require(int condition) {
  if (!condition) __builtin_trap();
}

static void handler(reel_http_request *req, void *app) {
  (void)app;
  require(req->protocol == REEL_HTTP_2);
  require(req->path.len > 0 && req->path.ptr[0] == '/');
  require(req->body.len <= 256);
  req->route = "fuzz";
  if (answered++ % 3 == 0) {
    reel_http_response resp;
    reel_http_response_init(&resp, 204);
    reel_http_send(req, &resp);
  } else {
    reel_http_send_json(req, 200, "{\"ok\":true}");
  }
}

static void drain(reel_h2_session *s) {
  reel_buf out;
  reel_buf_init(&out, 1 << 20);
  for (int i = 0; i < 64; i++) {
    reel_buf_reset(&out);
    if (reel_h2_session_send(s, &out, 65536) != 0 || out.len == 0) break;
  }
  reel_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int quiet;
  if (!quiet) {
    reel_log_set_level(REEL_LOG_ERROR);
    quiet = 1;
  }
  reel_h2_config cfg = {.max_header_bytes = 1024, .max_body_bytes = 256, .handler = handler, .remote = "fuzz"};
  reel_h2_session *s = reel_h2_session_new(&cfg);
  if (!s) return 0;
  size_t piece = size > 0 ? (size_t)data[0] + 1 : 1;
  int ok = reel_h2_session_recv(s, REEL_H2_PREFACE, REEL_H2_PREFACE_LEN) == 0;
  for (size_t off = 0; ok && off < size; off += piece) {
    size_t n = size - off < piece ? size - off : piece;
    ok = reel_h2_session_recv(s, data + off, n) == 0;
    drain(s);
    if (!reel_h2_session_want_io(s)) break;
  }
  require(reel_h2_session_handling(s) == 0); /* every request was answered at once */
  reel_h2_session_free(s);
  return 0;
}
