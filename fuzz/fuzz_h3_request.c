/* libFuzzer target for the HTTP/3 front end without QUIC: the input is a
 * series of stream chunks a client sends, each
 *   [selector] [length: 2 bytes, big endian] [bytes]
 * where the selector's low 3 bits pick the stream (0: control stream 2,
 * 1: QPACK encoder 6, 2: QPACK decoder 10, 3-7: request streams 0, 4, 8, 12,
 * 16), 0x08 ends the stream (FIN), 0x10 then resets it, 0x20 then closes it
 * as QUIC would, 0x40 answers the held requests, and 0x80 leaves the
 * server's output unacknowledged for now. The length's top bit blocks the
 * stream (QUIC flow control) while the output is drained, the next one
 * raises the client's stream limit. After every chunk the server's output is
 * drained. The handler answers at once (JSON, 204, a small file
 * range or one larger than the read-ahead window) or holds the request, as
 * the path's last byte says; held requests are answered later or outlive
 * the session (detached). Small limits so the fuzzer reaches them. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "http/h3_session.h"

#define MAX_HELD 8
#define MAX_STREAM_ID 64

static reel_http_request *held[MAX_HELD];
static int n_held;

static void require(int condition) {
  if (!condition) __builtin_trap();
}

/* The path's last byte picks the answer, so the fuzzer steers it. */
static void handler(reel_http_request *req, void *app) {
  (void)app;
  require(req->protocol == REEL_HTTP_3);
  require(req->path.len > 0 && req->path.ptr[0] == '/');
  require(req->body.len <= 256);
  req->route = "fuzz";
  switch ((unsigned char)req->path.ptr[req->path.len - 1] % 6) {
  case 0:
    reel_http_send_json(req, 200, "{\"ok\":true}");
    return;
  case 1: {
    reel_http_response resp;
    reel_http_response_init(&resp, 204);
    reel_http_send(req, &resp);
    return;
  }
  case 2:
  case 3: {
    reel_http_response resp;
    reel_http_response_init(&resp, 206);
    resp.file_fd = open("/dev/zero", O_RDONLY);
    resp.file_offset = 0;
    /* '3': more than the read-ahead window, so unacknowledged data blocks it */
    resp.file_length = req->path.ptr[req->path.len - 1] % 6 == 3 ? 300 * 1024 : 1000;
    reel_http_response_add_header(&resp, "Content-Type", "application/octet-stream");
    reel_http_send(req, &resp);
    return;
  }
  default:
    if (n_held < MAX_HELD) {
      held[n_held++] = req;
      return;
    }
    reel_http_send_problem(req, 503, "busy", "Busy", NULL);
  }
}

static void answer_held(void) {
  while (n_held > 0) reel_http_send_json(held[--n_held], 200, "{\"late\":true}");
}

typedef struct {
  int client_fin[MAX_STREAM_ID], server_fin[MAX_STREAM_ID], closed[MAX_STREAM_ID];
  uint64_t unacked[MAX_STREAM_ID];
} wire_state;

static void close_stream(reel_h3_session *s, wire_state *w, int64_t id) {
  if (id < MAX_STREAM_ID && !w->closed[id]) {
    w->closed[id] = 1;
    reel_h3_session_stream_close(s, id, REEL_H3_NO_ERROR);
  }
}

/* Takes the server's output; acknowledges it unless hold_acks. Returns 0, or
 * -1 when the session failed (the connection would close). */
static int drain(reel_h3_session *s, wire_state *w, int hold_acks) {
  for (int round = 0; round < 512; round++) {
    int64_t sid = -1;
    int fin = 0;
    reel_h3_vec vec[16];
    int n = reel_h3_session_writev(s, &sid, &fin, vec, 16);
    if (n < 0) return -1;
    if (sid < 0) break;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
      require(vec[i].len == 0 || vec[i].base != NULL);
      total += vec[i].len;
    }
    if (reel_h3_session_add_write_offset(s, sid, total) != 0) return -1;
    if (sid < MAX_STREAM_ID) {
      w->unacked[sid] += total;
      if (fin) w->server_fin[sid] = 1;
    }
  }
  if (hold_acks) return 0;
  for (int64_t id = 0; id < MAX_STREAM_ID; id++) {
    if (w->unacked[id] > 0) {
      uint64_t n = w->unacked[id];
      w->unacked[id] = 0;
      if (reel_h3_session_add_ack_offset(s, id, n) != 0) return -1;
    }
    /* a request stream both sides have finished is closed, as QUIC would */
    if ((id & 3) == 0 && w->client_fin[id] && w->server_fin[id]) close_stream(s, w, id);
  }
  return 0;
}

static void ignore_consumed(void *io, int64_t stream_id, size_t n) { (void)io, (void)stream_id, (void)n; }
static void ignore_shutdown(void *io, int64_t stream_id, uint64_t code) { (void)io, (void)stream_id, (void)code; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int quiet;
  if (!quiet) {
    reel_log_set_level(REEL_LOG_ERROR);
    quiet = 1;
  }
  static const int64_t streams[8] = {2, 6, 10, 0, 4, 8, 12, 16};
  reel_h3_session_config cfg = {.max_header_bytes = 1024,
                                .max_body_bytes = 256,
                                .max_streams_bidi = 100,
                                .handler = handler,
                                .remote = "fuzz",
                                .consumed = ignore_consumed,
                                .shutdown_read = ignore_shutdown,
                                .shutdown_write = ignore_shutdown};
  reel_h3_session *s = reel_h3_session_new(&cfg);
  if (!s) return 0;
  static wire_state w;
  memset(&w, 0, sizeof w);
  int ok = reel_h3_session_bind_streams(s, 3, 7, 11) == 0 && drain(s, &w, 0) == 0;
  size_t off = 0;
  while (ok && off + 3 <= size) {
    uint8_t sel = data[off];
    int block = (data[off + 1] & 0x80) != 0, more_streams = (data[off + 1] & 0x40) != 0;
    size_t len = ((size_t)(data[off + 1] & 0x3f) << 8) | data[off + 2];
    off += 3;
    if (len > size - off) len = size - off;
    int64_t id = streams[sel & 7];
    int fin = (sel & 0x08) != 0;
    if (id < MAX_STREAM_ID && w.closed[id]) {
      off += len;
      continue; /* QUIC would not deliver data on a closed stream */
    }
    ok = reel_h3_session_recv(s, id, data + off, len, fin) == 0;
    off += len;
    if (!ok) {
      require(reel_h3_session_error_code(s) >= 0x100); /* an HTTP/3 error code to close with */
      break;
    }
    if (more_streams) reel_h3_session_set_max_client_streams(s, 100 + off);
    if (fin && id < MAX_STREAM_ID) w.client_fin[id] = 1;
    if (sel & 0x10) reel_h3_session_stream_reset(s, id);
    if (sel & 0x20 && (id & 3) == 0) close_stream(s, &w, id);
    if (sel & 0x40) answer_held();
    if (block) reel_h3_session_block_stream(s, id);
    ok = drain(s, &w, (sel & 0x80) != 0) == 0;
    if (block) {
      reel_h3_session_unblock_stream(s, id);
      if (ok && (sel & 0x08)) reel_h3_session_shutdown_stream_write(s, id); /* as after a reset */
      ok = ok && drain(s, &w, 0) == 0;
    }
  }
  if (ok && size > 0 && (data[size - 1] & 1)) {
    /* a graceful shutdown on top */
    reel_h3_session_shutdown(s);
    drain(s, &w, 0);
  }
  require(reel_h3_session_handling(s) <= n_held);
  reel_h3_session_free(s);
  answer_held(); /* detached by the free: the late sends free them */
  return 0;
}
