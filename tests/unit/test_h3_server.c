/* The HTTP/3 server on a real UDP socket in this process, with ngtcp2's
 * gtlsclient as the client (a child process, so the loop keeps serving):
 * a GET, a 100 KiB POST, 20 requests on one connection (more than the
 * stream limit, so closed streams must be replaced), a GET through Retry,
 * garbage datagrams and a stalled handshake next to a normal request, and a
 * graceful shutdown that lets a late answer finish before on_drained. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "check.h"
#include "common/log.h"
#include "http/h3_server.h"

static uv_loop_t *loop;
static char dir[256];
static int port, retry_port;
static reel_h3_server *server, *retry_server;
static int drained, retry_drained;
static reel_http_request *slow_request;
static int slow_held;
static uv_timer_t slow_timer;

/* ---- the application ---- */

static void answer(reel_http_request *req) {
  char text[160];
  snprintf(text, sizeof text, "%.*s %.*s%s%.*s %zu\n", (int)req->method.len, req->method.ptr, (int)req->path.len,
           req->path.ptr, req->query.len ? "?" : "", (int)req->query.len, req->query.ptr, req->body.len);
  reel_http_response resp;
  reel_http_response_init(&resp, 200);
  reel_http_response_add_header(&resp, "Content-Type", "text/plain");
  reel_buf_append_str(&resp.body, text);
  reel_http_send(req, &resp);
}

static void on_slow_timer(uv_timer_t *t) {
  (void)t;
  if (slow_request) answer(slow_request); /* a late answer: the server must write on its own */
  slow_request = NULL;
}

static void handler(reel_http_request *req, void *app) {
  (void)app;
  CHECK_INT(req->protocol, REEL_HTTP_3);
  req->route = "test";
  if (reel_slice_eq(req->path, "/slow")) {
    slow_request = req;
    slow_held = 1;
    uv_timer_start(&slow_timer, on_slow_timer, 400, 0);
    return;
  }
  answer(req);
}

static void on_drained(void *data) { *(int *)data = 1; }

/* ---- running gtlsclient ---- */

typedef struct {
  uv_process_t process;
  int exited;
  int64_t status;
  int signal;
  char log[300];
} client;

static void on_client_exit(uv_process_t *p, int64_t status, int signal) {
  client *c = p->data;
  c->exited = 1;
  c->status = status;
  c->signal = signal;
  uv_close((uv_handle_t *)p, NULL);
}

/* Starts gtlsclient with args (NULL-terminated, after the program name);
 * its output goes to dir/NAME.log. */
static int client_start(client *c, const char *name, char **args) {
  char *argv[64];
  int n = 0;
  argv[n++] = "gtlsclient";
  for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
  argv[n] = NULL;
  memset(c, 0, sizeof *c);
  snprintf(c->log, sizeof c->log, "%s/%s.log", dir, name);
  int fd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                    {.flags = UV_INHERIT_FD, .data.fd = fd},
                                    {.flags = UV_INHERIT_FD, .data.fd = fd}};
  uv_process_options_t options = {.file = "gtlsclient", .args = argv, .exit_cb = on_client_exit,
                                  .stdio = stdio, .stdio_count = 3};
  c->process.data = c;
  int rc = uv_spawn(loop, &c->process, &options);
  close(fd);
  if (rc != 0) {
    fprintf(stderr, "cannot start gtlsclient: %s\n", uv_strerror(rc));
    c->exited = 1;
    c->status = -1;
  }
  return rc;
}

static int deadline_passed;
static void on_deadline(uv_timer_t *t) {
  (void)t;
  deadline_passed = 1;
}

/* Runs the loop (the server serves meanwhile) until c exits or ms pass. */
static void client_wait(client *c, uint64_t ms) {
  uv_timer_t deadline;
  uv_timer_init(loop, &deadline);
  deadline_passed = 0;
  uv_timer_start(&deadline, on_deadline, ms, 0);
  while (!c->exited && !deadline_passed) uv_run(loop, UV_RUN_ONCE);
  if (!c->exited) {
    fprintf(stderr, "gtlsclient (%s) did not finish in %llu ms: killing it\n", c->log, (unsigned long long)ms);
    uv_process_kill(&c->process, SIGKILL);
    while (!c->exited) uv_run(loop, UV_RUN_ONCE);
  }
  uv_close((uv_handle_t *)&deadline, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

/* Runs the loop until *flag is set or ms pass. */
static void run_until(const int *flag, uint64_t ms) {
  uv_timer_t t;
  uv_timer_init(loop, &t);
  deadline_passed = 0;
  uv_timer_start(&t, on_deadline, ms, 0);
  while (!(flag && *flag) && !deadline_passed) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT); /* the timer is closed before its memory goes */
}

static void run_for(uint64_t ms) { run_until(NULL, ms); }

static void show_log(const client *c) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "tail -n 20 %s >&2", c->log);
  if (system(cmd) != 0) fprintf(stderr, "(no log at %s)\n", c->log);
}

static int check_client_ok(const client *c) {
  int ok = c->exited && c->status == 0 && c->signal == 0;
  CHECK(ok);
  if (!ok) {
    fprintf(stderr, "gtlsclient exited with status %lld signal %d; its log:\n", (long long)c->status, c->signal);
    show_log(c);
  }
  return ok;
}

/* The downloaded file DIR/SUB/NAME, or "" (static buffer). */
static const char *downloaded(const char *sub, const char *name) {
  static char text[256];
  char path[512];
  snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
  text[0] = '\0';
  FILE *f = fopen(path, "r");
  if (!f) return text;
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  fclose(f);
  return text;
}

static void make_subdir(const char *sub, char *out, size_t outlen) {
  snprintf(out, outlen, "%s/%s", dir, sub);
  mkdir(out, 0755);
}

/* ---- the cases ---- */

static char port_text[16], retry_port_text[16];

static void url(char *out, size_t outlen, int p, const char *path) {
  snprintf(out, outlen, "https://127.0.0.1:%d%s", p, path);
}

static void test_get(void) {
  char download[300], u[128];
  make_subdir("get", download, sizeof download);
  url(u, sizeof u, port, "/hello?x=1");
  char *args[] = {"-q", "--exit-on-all-streams-close", "--download", download, "127.0.0.1", port_text, u, NULL};
  client c;
  client_start(&c, "get", args);
  client_wait(&c, 20000);
  if (check_client_ok(&c)) CHECK_STR(downloaded("get", "hello?x=1"), "GET /hello?x=1 0\n");
}

static void test_post(void) {
  char body_path[300], download[300], u[128];
  snprintf(body_path, sizeof body_path, "%s/body.bin", dir);
  FILE *f = fopen(body_path, "w");
  for (int i = 0; i < 100 * 1024; i++) fputc('a' + i % 26, f);
  fclose(f);
  make_subdir("post", download, sizeof download);
  url(u, sizeof u, port, "/upload");
  char *args[] = {"-q", "--exit-on-all-streams-close", "-m", "POST", "-d", body_path, "--download", download,
                  "127.0.0.1", port_text, u, NULL};
  client c;
  client_start(&c, "post", args);
  client_wait(&c, 20000);
  if (check_client_ok(&c)) CHECK_STR(downloaded("post", "upload"), "POST /upload 102400\n");
}

static void test_many_on_one_connection(void) {
  char download[300];
  make_subdir("many", download, sizeof download);
  static char urls[20][128];
  char *args[40];
  int n = 0;
  args[n++] = "-q";
  args[n++] = "--exit-on-all-streams-close";
  args[n++] = "--download";
  args[n++] = download;
  args[n++] = "127.0.0.1";
  args[n++] = port_text;
  for (int i = 0; i < 20; i++) {
    char path[32];
    snprintf(path, sizeof path, "/r%d", i);
    url(urls[i], sizeof urls[i], port, path);
    args[n++] = urls[i];
  }
  args[n] = NULL;
  client c;
  client_start(&c, "many", args);
  client_wait(&c, 30000);
  if (!check_client_ok(&c)) return;
  int good = 0;
  for (int i = 0; i < 20; i++) {
    char name[16], expected[32];
    snprintf(name, sizeof name, "r%d", i);
    snprintf(expected, sizeof expected, "GET /r%d 0\n", i);
    if (strcmp(downloaded("many", name), expected) == 0) good++;
  }
  CHECK_INT(good, 20);
}

static void test_retry(void) {
  char download[300], u[128];
  make_subdir("retry", download, sizeof download);
  url(u, sizeof u, retry_port, "/validated");
  char *args[] = {"-q", "--exit-on-all-streams-close", "--download", download, "127.0.0.1", retry_port_text, u,
                  NULL};
  client c;
  client_start(&c, "retry", args);
  client_wait(&c, 20000);
  if (check_client_ok(&c)) CHECK_STR(downloaded("retry", "validated"), "GET /validated 0\n");
}

/* ---- garbage next to real traffic ---- */

static int version_negotiations, other_replies;

static void raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h, (void)suggested;
  static char storage[65536];
  *buf = uv_buf_init(storage, sizeof storage);
}

static void raw_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                     unsigned flags) {
  (void)udp, (void)from, (void)flags;
  if (nread <= 0) return;
  const unsigned char *p = (const unsigned char *)buf->base;
  /* Version Negotiation: long header with version 0 */
  if (nread >= 5 && (p[0] & 0x80) && p[1] == 0 && p[2] == 0 && p[3] == 0 && p[4] == 0) version_negotiations++;
  else other_replies++;
}

static void send_raw(uv_udp_t *udp, const struct sockaddr *to, const unsigned char *data, size_t len) {
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  CHECK(uv_udp_try_send(udp, &b, 1, to) == (int)len);
}

static void test_garbage_and_stalled_handshake(void) {
  struct sockaddr_in to;
  uv_ip4_addr("127.0.0.1", port, &to);
  uv_udp_t raw;
  uv_udp_init(loop, &raw);
  struct sockaddr_in any;
  uv_ip4_addr("127.0.0.1", 0, &any);
  CHECK_INT(uv_udp_bind(&raw, (const struct sockaddr *)&any, 0), 0);
  uv_udp_recv_start(&raw, raw_alloc, raw_recv);

  static unsigned char datagram[1300];
  /* random bytes, short and long */
  for (size_t i = 0; i < sizeof datagram; i++) datagram[i] = (unsigned char)(rand() & 0xff);
  datagram[0] &= 0x7f; /* a short header: no Version Negotiation for these */
  send_raw(&raw, (const struct sockaddr *)&to, datagram, 40);
  send_raw(&raw, (const struct sockaddr *)&to, datagram, sizeof datagram);
  memset(datagram, 0xff, 8);
  send_raw(&raw, (const struct sockaddr *)&to, datagram, 8);
  /* a long header of an unknown version, as long as an Initial: Version Negotiation */
  unsigned char vn[1200] = {0xc0, 0xab, 0xcd, 0xef, 0x01, 8, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9};
  send_raw(&raw, (const struct sockaddr *)&to, vn, sizeof vn);
  /* the same, too short to deserve an answer */
  send_raw(&raw, (const struct sockaddr *)&to, vn, 100);
  /* a version 1 Initial whose protection is garbage: a handshake that never starts */
  unsigned char initial[1200] = {0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0x44, 0x90};
  for (size_t i = 26; i < sizeof initial; i++) initial[i] = (unsigned char)(rand() & 0xff);
  send_raw(&raw, (const struct sockaddr *)&to, initial, sizeof initial);

  /* a client that never hears the server (its handshake stalls), killed after a second */
  char stalled_download[300], u[128];
  make_subdir("stalled", stalled_download, sizeof stalled_download);
  url(u, sizeof u, port, "/never");
  char *stalled_args[] = {"-q", "--rx-loss=1.0", "--download", stalled_download, "127.0.0.1", port_text, u, NULL};
  client stalled;
  client_start(&stalled, "stalled", stalled_args);

  /* meanwhile a normal request */
  char download[300], u2[128];
  make_subdir("beside", download, sizeof download);
  url(u2, sizeof u2, port, "/beside");
  char *args[] = {"-q", "--exit-on-all-streams-close", "--download", download, "127.0.0.1", port_text, u2, NULL};
  client normal;
  client_start(&normal, "beside", args);
  client_wait(&normal, 20000);
  if (check_client_ok(&normal)) CHECK_STR(downloaded("beside", "beside"), "GET /beside 0\n");

  run_for(1000);
  uv_process_kill(&stalled.process, SIGKILL);
  client_wait(&stalled, 5000);
  CHECK(stalled.signal == SIGKILL);
  CHECK_STR(downloaded("stalled", "never"), "");
  /* the stalled handshakes (the killed client's, the garbage Initial's) are
   * dropped at the handshake timeout (3 s), long before the idle timeout */
  CHECK(reel_h3_server_connections(server) > 0);
  for (int i = 0; i < 50 && reel_h3_server_connections(server) > 0; i++) run_for(100);
  CHECK_INT(reel_h3_server_connections(server), 0);

  CHECK_INT(version_negotiations, 1);
  uv_close((uv_handle_t *)&raw, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

/* ---- graceful shutdown ---- */

static void test_shutdown_lets_streams_finish(void) {
  char download[300], u[128];
  make_subdir("slow", download, sizeof download);
  url(u, sizeof u, port, "/slow");
  char *args[] = {"-q", "--exit-on-all-streams-close", "--download", download, "127.0.0.1", port_text, u, NULL};
  client c;
  client_start(&c, "slow", args);
  /* wait until the handler holds the request, then shut down */
  run_until(&slow_held, 20000);
  CHECK(slow_request != NULL);
  reel_h3_server_shutdown(server);
  reel_h3_server_shutdown(retry_server);
  CHECK_INT(drained, 0); /* the held request keeps its connection */
  client_wait(&c, 20000);
  if (check_client_ok(&c)) CHECK_STR(downloaded("slow", "slow"), "GET /slow 0\n");
  run_until(&drained, 10000);
  run_until(&retry_drained, 10000);
  CHECK_INT(drained, 1);
  CHECK_INT(retry_drained, 1);
}

static int have_gtlsclient(void) {
  const char *path = getenv("PATH");
  char copy[4096], candidate[4200];
  snprintf(copy, sizeof copy, "%s", path ? path : "/usr/bin:/bin");
  for (char *d = strtok(copy, ":"); d; d = strtok(NULL, ":")) {
    snprintf(candidate, sizeof candidate, "%s/gtlsclient", d);
    if (access(candidate, X_OK) == 0) return 1;
  }
  return 0;
}

int main(void) {
  if (!have_gtlsclient()) {
    fprintf(stderr, "test_h3_server: gtlsclient (ngtcp2's HTTP/3 client) is not installed; it is needed to test "
                    "the HTTP/3 server. Install it (Debian: apt-get install ngtcp2-client) and run again.\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  reel_log_set_level(getenv("REEL_TEST_VERBOSE") ? REEL_LOG_DEBUG : REEL_LOG_WARN);
  snprintf(dir, sizeof dir, "/tmp/reel-h3-server-XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  char cmd[512];
  snprintf(cmd, sizeof cmd, "bash scripts/dev-cert.sh %s >/dev/null", dir);
  if (system(cmd) != 0) {
    fprintf(stderr, "test_h3_server: scripts/dev-cert.sh failed (run from the source directory)\n");
    return 1;
  }
  char cert[300], key[300], err[512];
  snprintf(cert, sizeof cert, "%s/server.pem", dir);
  snprintf(key, sizeof key, "%s/server-key.pem", dir);
  reel_tls_context tls;
  if (reel_tls_context_init(&tls, cert, key, err, sizeof err) != 0) {
    fprintf(stderr, "test_h3_server: %s\n", err);
    return 1;
  }

  loop = uv_default_loop();
  uv_timer_init(loop, &slow_timer);
  reel_h3_config cfg = {
      .loop = loop,
      .tls = &tls,
      .max_header_bytes = 16384,
      .max_body_bytes = 1 << 20,
      .idle_timeout_ms = 10000,
      .handshake_timeout_ms = 3000,
      .max_connections = 100,
      .max_streams_bidi = 8, /* fewer than the 20 requests on one connection */
      .handler = handler,
      .extra_header_name = "Alt-Svc",
      .extra_header_value = "h3=\":443\"",
      .on_drained = on_drained,
      .on_drained_data = &drained,
  };
  server = reel_h3_server_new(&cfg);
  CHECK(server != NULL);
  CHECK_INT(reel_h3_server_listen(server, "h3://127.0.0.1:0", &port, err, sizeof err), 0);
  CHECK(port > 0);
  snprintf(port_text, sizeof port_text, "%d", port);
  CHECK(reel_h3_server_listen(server, "nonsense", &retry_port, err, sizeof err) != 0);
  CHECK(strstr(err, "HOST:PORT") != NULL);

  reel_h3_config retry_cfg = cfg;
  retry_cfg.require_retry = 1;
  retry_cfg.on_drained_data = &retry_drained;
  retry_server = reel_h3_server_new(&retry_cfg);
  CHECK(retry_server != NULL);
  CHECK_INT(reel_h3_server_listen(retry_server, "127.0.0.1:0", &retry_port, err, sizeof err), 0);
  snprintf(retry_port_text, sizeof retry_port_text, "%d", retry_port);

  /* servers that never serve: freed at once, or once a failed socket is closed */
  reel_h3_server *idle = reel_h3_server_new(&cfg);
  reel_h3_server_free(idle);
  reel_h3_server *failed = reel_h3_server_new(&cfg);
  int failed_port = 0;
  CHECK(reel_h3_server_listen(failed, "192.0.2.1:0", &failed_port, err, sizeof err) != 0); /* not our address */
  CHECK(strstr(err, "192.0.2.1") != NULL);
  reel_h3_server_free(failed);
  uv_run(loop, UV_RUN_NOWAIT);
  reel_h3_config no_handler = cfg;
  no_handler.handler = NULL;
  CHECK(reel_h3_server_new(&no_handler) == NULL);

  test_get();
  test_post();
  test_many_on_one_connection();
  test_retry();
  test_garbage_and_stalled_handshake();
  test_shutdown_lets_streams_finish();

  reel_h3_server_free(server);
  reel_h3_server_free(retry_server);
  uv_close((uv_handle_t *)&slow_timer, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(loop), 0);
  reel_tls_context_free(&tls);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (check_failed_ == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  if (check_failed_) fprintf(stderr, "test_h3_server: client logs kept in %s\n", dir);
  return check_report();
}
