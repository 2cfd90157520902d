/* reeld: the reel job service. Parses the command line, loads reel.yaml,
 * wires the store, storage, scheduler and HTTP front end onto one libuv loop,
 * and shuts them down in order on SIGTERM/SIGINT. `reeld run` runs the
 * configured pipeline once in the foreground, like ttv-pipeline's pipeline.py. */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/app.h"
#include "events/webhooks.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/random.h"
#include "common/redact.h"
#include "http/fd_limit.h"
#include "jobs/maintenance.h"
#include "store/pg_listen.h"
#include "metrics/metrics.h"
#include "storage/http_client.h"
#include "store/data_dir.h"
#include "worker/child.h"
#include "worker/supervise.h"

#define REEL_VERSION "0.1.0"

static const char usage[] =
    "usage: reeld [--config FILE] [--prompt TEXT]   serve the jobs API and run jobs\n"
    "       reeld --check-config [--config FILE]    validate the config file and exit\n"
    "       reeld migrate [--config FILE]           bring the job store's schema up to date and exit\n"
    "       reeld run [--config FILE] [--prompt TEXT]\n"
    "                                               run the configured pipeline once, in the foreground\n"
    "       reeld --routes                          print every HTTP route\n"
    "       reeld --version\n"
    "FILE defaults to reel.yaml in the current directory.\n";

typedef struct {
  const char *config_path;
  const char *prompt;
  int check_config;
  int routes;
  int run_once;
  int migrate;
} options;

static int parse_args(int argc, char **argv, options *o) {
  o->config_path = "reel.yaml";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "run") == 0 && i == 1) o->run_once = 1;
    else if (strcmp(a, "migrate") == 0 && i == 1) o->migrate = 1;
    else if (strcmp(a, "--config") == 0 && i + 1 < argc) o->config_path = argv[++i];
    else if (strncmp(a, "--config=", 9) == 0) o->config_path = a + 9;
    else if (strcmp(a, "--prompt") == 0 && i + 1 < argc) o->prompt = argv[++i];
    else if (strncmp(a, "--prompt=", 9) == 0) o->prompt = a + 9;
    else if (strcmp(a, "--check-config") == 0) o->check_config = 1;
    else if (strcmp(a, "--routes") == 0) o->routes = 1;
    else if (strcmp(a, "--version") == 0) {
      printf("reeld %s\n", REEL_VERSION);
      exit(0);
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      exit(0);
    } else {
      fprintf(stderr, "reeld: unknown argument \"%s\"\n%s", a, usage);
      return 2;
    }
  }
  return 0;
}

/* The download-URL key: derived from service.signing_key, or 32 random bytes
 * kept in data_dir/signing.key (0600) so URLs survive restarts. */
static int load_signing_key(const reel_config *cfg, unsigned char key[32], char *err, size_t errlen) {
  if (cfg->signing_key) {
    return gnutls_hash_fast(GNUTLS_DIG_SHA256, cfg->signing_key, strlen(cfg->signing_key), key) == 0 ? 0 : REEL_EIO;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/signing.key", cfg->data_dir);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, key, 32);
    close(fd);
    if (n == 32) return 0;
    snprintf(err, errlen, "%s is damaged (expected 32 bytes): delete it to make a new one", path);
    return REEL_EIO;
  }
  if (gnutls_rnd(GNUTLS_RND_KEY, key, 32) != 0) return REEL_EIO;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, key, 32) != 32 || fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return REEL_EIO;
  }
  return 0;
}

static char *default_docs_dir(void) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return strdup("share/docs");
  exe[n] = '\0';
  char *dir = dirname(exe);
  size_t len = strlen(dir) + 16;
  char *out = malloc(len);
  if (out) snprintf(out, len, "%s/share/docs", dir);
  return out;
}

/* ---- reeld run ---- */

typedef struct {
  reel_child child;
  uv_signal_t sigint, sigterm;
  uv_timer_t timeout;
  int64_t exit_status;
  int term_signal;
  double grace;
  size_t max_line; /* service.max_log_line_bytes: lines are redacted, then cut to this */
} run_once_state;

static void run_line(reel_child *child, const char *line, size_t len, int is_stderr) {
  run_once_state *st = child->data;
  int progress;
  char stage[64], unit[64];
  double amount;
  if (!is_stderr && reel_scheduler_parse_progress(line, len, &progress, stage, sizeof stage)) {
    printf("[%3d%%] %s\n", progress, stage);
    fflush(stdout);
    return;
  }
  if (!is_stderr && reel_scheduler_parse_cost(line, len, stage, sizeof stage, &amount, unit, sizeof unit)) {
    printf("       %s: %.3f %s\n", stage, amount, unit);
    fflush(stdout);
    return;
  }
  char *clean = NULL;
  reel_buf b;
  reel_buf_init(&b, st->max_line + 1);
  if (reel_redact_line(line, len, len >= child->max_line, st->max_line, &b) == 0) clean = b.data;
  fprintf(is_stderr ? stderr : stdout, "%s\n", clean ? clean : "");
  fflush(is_stderr ? stderr : stdout);
  reel_buf_free(&b);
}

static void run_done(reel_child *child, int64_t exit_status, int term_signal) {
  run_once_state *st = child->data;
  st->exit_status = exit_status;
  st->term_signal = term_signal;
  uv_close((uv_handle_t *)&st->sigint, NULL);
  uv_close((uv_handle_t *)&st->sigterm, NULL);
  uv_close((uv_handle_t *)&st->timeout, NULL);
}

static void run_signal(uv_signal_t *h, int signum) {
  run_once_state *st = h->data;
  fprintf(stderr, "reeld run: signal %d: stopping the pipeline\n", signum);
  reel_child_stop(&st->child, (uint64_t)(st->grace * 1000));
}

static void run_timeout(uv_timer_t *t) {
  run_once_state *st = t->data;
  fprintf(stderr, "reeld run: service.job_timeout_seconds reached: stopping the pipeline\n");
  reel_child_stop(&st->child, (uint64_t)(st->grace * 1000));
}

static int run_once(reel_config *cfg, const char *cli_prompt) {
  char err[512] = "cannot create the workspace";
  if (reel_scheduler_check_backend(cfg, err, sizeof err) != 0) {
    fprintf(stderr, "reeld run: %s\n", err);
    return 69;
  }
  json_t *effective = reel_config_effective(cfg->pipeline, cli_prompt, NULL);
  if (!effective) {
    fprintf(stderr, "reeld run: --prompt must be valid UTF-8 text\n");
    return 2;
  }
  char workspace[4200], config_path[4300], work_root[4096];
  snprintf(work_root, sizeof work_root, "%s/runs", cfg->data_dir); /* not work/: reeld clears that at start */
  char *absolute = reel_fs_make_dirs(work_root, 0755) == 0 ? realpath(work_root, NULL) : NULL;
  snprintf(workspace, sizeof workspace, "%s/run-%lld", absolute ? absolute : work_root, (long long)reel_now_ms());
  int have_root = absolute != NULL;
  free(absolute);
  if (!have_root ||
      reel_scheduler_prepare_workspace(workspace, effective, config_path, sizeof config_path, err, sizeof err) != 0) {
    fprintf(stderr, "reeld run: %s\n", err);
    json_decref(effective);
    return 1;
  }
  json_t *p = json_object_get(effective, "prompt");
  char **argv = reel_scheduler_backend_argv(cfg, config_path, json_is_string(p) ? json_string_value(p) : "",
                                            workspace, err, sizeof err);
  json_decref(effective);
  uv_loop_t *loop = uv_default_loop();
  run_once_state st = {.grace = cfg->cancel_grace_seconds, .max_line = cfg->max_log_line_bytes};
  static const reel_child_callbacks cb = {.line = run_line, .done = run_done};
  uv_signal_init(loop, &st.sigint);
  uv_signal_init(loop, &st.sigterm);
  uv_timer_init(loop, &st.timeout);
  st.sigint.data = st.sigterm.data = st.timeout.data = &st;
  int rc = argv ? reel_child_spawn(&st.child, loop, argv, workspace,
                                     cfg->max_log_line_bytes + reel_redact_lookahead(), &cb, &st, err, sizeof err)
                : REEL_EINVAL;
  reel_scheduler_free_argv(argv);
  if (rc == 0) {
    uv_signal_start(&st.sigint, run_signal, SIGINT);
    uv_signal_start(&st.sigterm, run_signal, SIGTERM);
    uv_timer_start(&st.timeout, run_timeout, (uint64_t)(cfg->job_timeout_seconds * 1000), 0);
  } else {
    fprintf(stderr, "reeld run: pipeline.command: %s\n", err);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  if (rc != 0) return 1;
  if (st.term_signal) {
    fprintf(stderr, "reeld run: the pipeline was killed by signal %d\n", st.term_signal);
    return 1;
  }
  if (st.exit_status != 0) {
    fprintf(stderr, "reeld run: the pipeline exited with status %lld\n", (long long)st.exit_status);
    return (int)st.exit_status;
  }
  char artifact[4400];
  snprintf(artifact, sizeof artifact, "%s/output/final_video.mp4", workspace);
  if (access(artifact, R_OK) != 0) {
    fprintf(stderr, "reeld run: the pipeline exited with status 0 but wrote no output/final_video.mp4\n");
    return 1;
  }
  printf("%s\n", artifact);
  return 0;
}

/* ---- serving ---- */

/* ---- the job store ---- */

/* The PostgreSQL password: service.database.password_file's first line, or
 * NULL (then the URL, PGPASSWORD or ~/.pgpass). Heap. */
static char *read_password_file(const reel_config *cfg, char *err, size_t errlen) {
  if (!cfg->database_password_file) return NULL;
  FILE *f = fopen(cfg->database_password_file, "r");
  char line[1024];
  if (!f || !fgets(line, sizeof line, f)) {
    snprintf(err, errlen, "cannot read service.database.password_file %s: %s", cfg->database_password_file,
             f ? "it is empty" : strerror(errno));
    if (f) fclose(f);
    return NULL;
  }
  fclose(f);
  line[strcspn(line, "\r\n")] = '\0';
  return strdup(line);
}

/* Opens the configured store, migrated (PostgreSQL: under an advisory lock,
 * so nodes starting together migrate once). */
static int open_store(const reel_config *cfg, const char *node, reel_store **store, char *err, size_t errlen) {
  if (strcmp(cfg->database_backend, "postgres") != 0)
    return reel_store_open_sqlite(cfg->database_path, store, err, errlen);
  err[0] = '\0';
  char *password = read_password_file(cfg, err, errlen);
  if (err[0]) return REEL_ECONFIG;
  reel_store_pg_settings pg = {.url = cfg->database_url, .password = password, .application_name = node, .migrate = 1};
  int rc = reel_store_open_postgres(&pg, store, err, errlen);
  if (password) {
    memset(password, 0, strlen(password));
    free(password);
  }
  return rc;
}

static int migrate_only(const reel_config *cfg) {
  char err[512], node[64];
  snprintf(node, sizeof node, "reeld-migrate");
  reel_store *store = NULL;
  if (open_store(cfg, node, &store, err, sizeof err) != 0) {
    fprintf(stderr, "reeld migrate: %s\n", err);
    return 1;
  }
  printf("%s: the job store (%s) is at the current schema\n", cfg->path, reel_store_name(store));
  reel_store_close(store);
  return 0;
}

static reel_data_dir data_dir_lock; /* held while serving */
static reel_maintenance maintenance; /* rescue and retention, on every node */
static reel_pg_listener *listener;   /* PostgreSQL wake-ups, or NULL */
static reel_webhooks *webhooks;      /* webhook deliveries, or NULL when none are configured */
static uv_timer_t data_dir_timer;   /* checks it (on_data_dir_check) */

typedef struct {
  reel_app *app;
  uv_signal_t sigterm, sigint, sighup;
  int http_done, h3_done, workers_done, shutting_down;
} server_state;

/* SIGHUP: load the TLS certificate and key again. New connections use them;
 * connections already open finish on the old ones. */
static void on_reload_signal(uv_signal_t *h, int signum) {
  (void)signum;
  server_state *s = h->data;
  if (!s->app->has_tls) {
    reel_log(REEL_LOG_INFO, "SIGHUP: nothing to reload (no TLS listener)", NULL);
    return;
  }
  char err[1024];
  if (reel_tls_context_reload(&s->app->tls, err, sizeof err) != 0)
    reel_log(REEL_LOG_ERROR, "TLS reload failed; the previous certificate stays in use", "{s:s}", "error", err);
  else
    reel_log(REEL_LOG_INFO, "TLS certificate reloaded", "{s:s, s:i}", "cert_file", s->app->tls.cert_path, "reloads",
             s->app->tls.reloads);
}

static void maybe_exit(server_state *s) {
  if (!s->http_done || !s->h3_done || !s->workers_done) return;
  reel_log(REEL_LOG_INFO, "stopped", NULL);
  reel_maintenance_stop(&maintenance);
  reel_pg_listener_stop(listener);
  listener = NULL;
  if (!uv_is_closing((uv_handle_t *)&data_dir_timer)) uv_close((uv_handle_t *)&data_dir_timer, NULL);
  reel_jobs_close(&s->app->jobs);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  uv_close((uv_handle_t *)&s->sigint, NULL);
  uv_close((uv_handle_t *)&s->sighup, NULL);
}

static void http_drained(void *data) {
  server_state *s = data;
  s->http_done = 1;
  maybe_exit(s);
}

static void h3_drained(void *data) {
  server_state *s = data;
  s->h3_done = 1;
  maybe_exit(s);
}

static void workers_stopped(void *data) {
  server_state *s = data;
  s->workers_done = 1;
  maybe_exit(s);
}

static void on_stop_signal(uv_signal_t *h, int signum) {
  server_state *s = h->data;
  if (s->shutting_down) {
    reel_log(REEL_LOG_WARN, "second signal: exiting now", "{s:i}", "signal", signum);
    _exit(1);
  }
  s->shutting_down = 1;
  reel_log(REEL_LOG_INFO, "shutting down", "{s:i}", "signal", signum);
  reel_app *app = s->app;
  reel_event_hub_close(&app->events); /* event streams end: clients reconnect to another node */
  reel_webhooks_stop(webhooks);       /* attempts in flight are tried again when their leases pass */
  webhooks = NULL;
  app->http.on_drained = http_drained;
  app->http.on_drained_data = s;
  reel_http_server_shutdown(&app->http);
  if (app->h3) reel_h3_server_shutdown(app->h3);
  else h3_drained(s);
  if (app->runs_workers) reel_scheduler_stop(&app->scheduler, workers_stopped, s);
  else workers_stopped(s);
}

/* Whether this process's scheduler runs (it starts after the start-up rescue). */
static int scheduler_running(const reel_app *app) { return app->runs_workers && app->scheduler.loop; }

static void on_submitted(void *data) {
  reel_app *app = data;
  if (scheduler_running(app)) reel_scheduler_poke(&app->scheduler);
}

static int on_cancel_requested(void *data, const char *job_id) {
  reel_app *app = data;
  int rc = scheduler_running(app) ? reel_scheduler_cancel(&app->scheduler, job_id) : REEL_ENOTFOUND;
  /* in a shared store another node may run it: its worker hears the cancel
   * (NOTIFY, or its next lease renewal), or a rescue ends it */
  if (rc == REEL_ENOTFOUND && !reel_store_exclusive(app->jobs.store)) return 0;
  return rc;
}

static void on_events(void *data) {
  reel_app *app = data;
  if (app->serves_api) reel_event_hub_wake(&app->events);
}

static void on_deliveries(void *data) {
  (void)data;
  reel_webhooks_poke(webhooks);
}

static int listener_live(void *data) {
  (void)data;
  return reel_pg_listener_connected(listener);
}

/* A PostgreSQL notification (or, with channel NULL, a reconnect after which
 * some may have been missed). */
static void on_notification(void *data, const char *channel, const char *payload) {
  reel_app *app = data;
  if (!channel || strcmp(channel, REEL_STORE_CHANNEL_EVENTS) == 0) {
    if (app->serves_api) reel_event_hub_wake(&app->events);
    reel_webhooks_poke(webhooks); /* deliveries are committed with their events */
  }
  if (!scheduler_running(app)) return;
  if (!channel || strcmp(channel, REEL_STORE_CHANNEL_JOBS) == 0) reel_scheduler_poke(&app->scheduler);
  else if (strcmp(channel, REEL_STORE_CHANNEL_CANCEL) == 0 && payload) reel_scheduler_cancel(&app->scheduler, payload);
}

/* data_dir and its lock are checked this often; the database file is checked
 * by the store before every batch and by its periodic probe (jobs.h). */
#define DATA_DIR_CHECK_MS 1000

/* A data_dir removed or replaced under reeld: nothing written from now on
 * would survive a restart, so the store refuses all work (503, not ready). */
static void on_data_dir_check(uv_timer_t *t) {
  reel_app *app = t->data;
  char msg[512];
  if (reel_data_dir_check(&data_dir_lock, msg, sizeof msg) == 0) return;
  reel_store_executor_set_gone(&app->jobs.executor, msg);
  uv_timer_stop(t);
}

static void h3_drained(void *data);

/* The start-up rescue (maintenance.h): 1 while it runs, then its result. */
static int startup_rescue_result;

static void startup_rescue_done(reel_job_op *op, int result) {
  (void)op;
  startup_rescue_result = result;
}

static int serve(reel_config *cfg, const char *cli_prompt) {
  static reel_app app;
  static server_state state;
  char err[512] = "";
  memset(&app, 0, sizeof app);
  app.cfg = cfg;
  app.loop = uv_default_loop();
  app.runs_workers = strcmp(cfg->mode, "api") != 0;
  app.serves_api = strcmp(cfg->mode, "worker") != 0;
  if (cfg->node_id) {
    snprintf(app.node_id, sizeof app.node_id, "%s", cfg->node_id);
  } else {
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(app.node_id, sizeof app.node_id, "%.40s:%d", host, (int)getpid());
  }
  signal(SIGPIPE, SIG_IGN);
  /* as many descriptors as allowed, with a reserve clients cannot take (http/fd_limit.h) */
  char fd_msg[256];
  long nofile = reel_fd_limit_init(REEL_FD_RESERVE, fd_msg, sizeof fd_msg);
  reel_log(nofile > 0 && !strstr(fd_msg, "cannot") ? REEL_LOG_INFO : REEL_LOG_WARN, "file descriptors", "{s:s}",
           "detail", fd_msg);
  if (nofile > 0 && cfg->max_connections > reel_fd_limit_ceiling())
    reel_log(REEL_LOG_WARN, "service.max_connections is above what the open-file limit allows", "{s:i, s:i}",
             "max_connections", cfg->max_connections, "usable_descriptors", (int)reel_fd_limit_ceiling());

  if (reel_data_dir_lock(&data_dir_lock, cfg->data_dir, err, sizeof err) != 0) {
    fprintf(stderr, "reeld: %s\n", err);
    return 1;
  }
  if (load_signing_key(cfg, app.signing_key, err, sizeof err) != 0) {
    fprintf(stderr, "reeld: %s\n", err);
    return 1;
  }
  reel_store *store = NULL;
  if (open_store(cfg, app.node_id, &store, err, sizeof err) != 0) {
    fprintf(stderr, "reeld: %s (service.database in %s)\n", err, cfg->path);
    return 1;
  }
  int exclusive = reel_store_exclusive(store);
  if (reel_jobs_init(&app.jobs, app.loop, store, cfg->max_queue_depth, cfg->max_log_lines) != 0) {
    fprintf(stderr, "reeld: cannot start the store thread\n");
    return 1;
  }
  app.jobs.listener = (reel_jobs_listener){
      .submitted = on_submitted, .cancel_requested = on_cancel_requested, .events = on_events,
      .deliveries = on_deliveries, .data = &app};
  app.jobs.webhooks = cfg->webhooks;
  app.jobs.n_webhooks = cfg->n_webhooks;
  reel_jobs_watch(&app.jobs, app.loop);
  uv_timer_init(app.loop, &data_dir_timer);
  data_dir_timer.data = &app;
  uv_timer_start(&data_dir_timer, on_data_dir_check, DATA_DIR_CHECK_MS, DATA_DIR_CHECK_MS);
  reel_metrics_init();
  if (reel_api_init(&app) != 0) return 1;
  app.docs_dir = cfg->docs_dir ? strdup(cfg->docs_dir) : default_docs_dir();

  /* jobs whose run was lost: the rescue every node runs periodically, once
   * now; in an exclusive store every running job was this data_dir's dead
   * predecessor's, in a shared one only those whose lease expired (live
   * workers hold the others) */
  reel_maintenance_start(&maintenance, app.loop, &app.jobs, cfg->max_attempts, cfg->lease_seconds,
                         cfg->retention_days);
  startup_rescue_result = 1; /* pending */
  reel_maintenance_rescue(&maintenance, exclusive, startup_rescue_done);
  while (startup_rescue_result == 1) uv_run(app.loop, UV_RUN_ONCE);
  if (startup_rescue_result != 0) {
    fprintf(stderr, "reeld: rescuing interrupted jobs failed: %s\n", reel_strerror(startup_rescue_result));
    return 1;
  }

  if (reel_proxy_list_parse(&app.proxies, cfg->trusted_proxies, cfg->n_trusted_proxies, err, sizeof err) != 0) {
    fprintf(stderr, "reeld: service.trusted_proxies: %s (in %s)\n", err, cfg->path);
    return 1;
  }
  reel_http_server_init(&app.http, app.loop, reel_api_handle, &app);
  app.http.limits.max_header_bytes = cfg->max_header_bytes;
  app.http.limits.max_body_bytes = cfg->max_body_bytes;
  app.http.header_timeout_ms = (uint64_t)(cfg->header_timeout_seconds * 1000);
  app.http.idle_timeout_ms = (uint64_t)(cfg->idle_timeout_seconds * 1000);
  app.http.max_connections = cfg->max_connections;
  for (int i = 0; i < cfg->n_listen; i++) {
    if (cfg->listen_scheme[i] == REEL_LISTEN_HTTP || app.has_tls) continue;
    if (reel_tls_context_init(&app.tls, cfg->tls_cert_file, cfg->tls_key_file, err, sizeof err) != 0) {
      fprintf(stderr, "reeld: %s (in %s)\n", err, cfg->path);
      return 1;
    }
    app.has_tls = 1;
    app.http.tls = &app.tls;
  }
  /* QUIC first: TCP responses advertise it (Alt-Svc) */
  static char alt_svc[64];
  for (int i = 0; i < cfg->n_listen; i++) {
    if (cfg->listen_scheme[i] != REEL_LISTEN_H3) continue;
    if (!app.h3) {
      reel_h3_config h3 = {
          .loop = app.loop,
          .tls = &app.tls,
          .max_header_bytes = cfg->max_header_bytes,
          .max_body_bytes = cfg->max_body_bytes,
          .idle_timeout_ms = (uint64_t)(cfg->idle_timeout_seconds * 1000),
          .handshake_timeout_ms = (uint64_t)(cfg->quic_handshake_timeout_seconds * 1000),
          .max_connections = cfg->max_connections,
          .max_streams_bidi = cfg->quic_max_streams,
          .require_retry = cfg->quic_retry,
          .handler = reel_api_handle,
          .app = &app,
          .on_drained = h3_drained,
          .on_drained_data = &state,
      };
      if (!(app.h3 = reel_h3_server_new(&h3))) {
        fprintf(stderr, "reeld: cannot start the HTTP/3 server (out of memory or no randomness)\n");
        return 1;
      }
    }
    int port = 0;
    if (reel_h3_server_listen(app.h3, cfg->listen[i], &port, err, sizeof err) != 0) {
      fprintf(stderr, "reeld: %s (service.listen in %s)\n", err, cfg->path);
      return 1;
    }
    reel_log(REEL_LOG_INFO, "listening", "{s:s, s:i, s:s}", "address", cfg->listen[i], "port", port, "protocol",
             "HTTP/3 over QUIC");
    if (!alt_svc[0]) snprintf(alt_svc, sizeof alt_svc, "h3=\":%d\"; ma=86400", port);
  }
  if (alt_svc[0]) {
    app.http.extra_header_name = "Alt-Svc";
    app.http.extra_header_value = alt_svc;
  }
  for (int i = 0; i < cfg->n_listen; i++) {
    if (cfg->listen_scheme[i] == REEL_LISTEN_H3) continue; /* QUIC: below */
    int port = 0;
    if (reel_http_server_listen(&app.http, cfg->listen[i], &port, err, sizeof err) != 0) {
      fprintf(stderr, "reeld: %s (service.listen in %s)\n", err, cfg->path);
      return 1;
    }
    int https = cfg->listen_scheme[i] == REEL_LISTEN_HTTPS;
    reel_log(REEL_LOG_INFO, "listening", "{s:s, s:i, s:s}", "address", cfg->listen[i], "port", port, "protocol",
             https ? "HTTP/1.1+HTTP/2 over TLS" : "HTTP/1.1+h2c");
    if (!app.listener_base_url[0]) { /* the base for requests that name no Host (api/origin.h) */
      const char *a = strstr(cfg->listen[i], "://") ? strstr(cfg->listen[i], "://") + 3 : cfg->listen[i];
      const char *colon = strrchr(a, ':');
      snprintf(app.listener_base_url, sizeof app.listener_base_url, "%s://%.*s:%d", https ? "https" : "http",
               (int)(colon - a), a, port);
    }
  }
  int storage_rc;
  if (strcmp(cfg->storage_backend, "s3") == 0) {
    reel_storage_s3_settings s3 = {
        .endpoint = cfg->storage_endpoint, .region = cfg->storage_region, .bucket = cfg->storage_bucket,
        .path_style = cfg->storage_path_style, .access_key_id = cfg->storage_access_key_id,
        .secret_access_key = cfg->storage_secret_access_key, .session_token = cfg->storage_session_token,
        .multipart_threshold = cfg->storage_multipart_threshold, .multipart_part = cfg->storage_multipart_part,
        .multipart_parallel = cfg->storage_multipart_parallel, .upload_attempts = cfg->storage_upload_attempts};
    storage_rc = reel_storage_open_s3(&s3, &app.storage, err, sizeof err);
  } else if (strcmp(cfg->storage_backend, "gcs") == 0) {
    reel_storage_gcs_settings gcs = {
        .bucket = cfg->storage_bucket, .endpoint = cfg->storage_endpoint,
        .credentials_file = cfg->storage_credentials_file, .signed_urls = cfg->storage_signed_urls,
        .resumable_threshold = cfg->storage_multipart_threshold, .resumable_chunk = cfg->storage_multipart_part,
        .upload_attempts = cfg->storage_upload_attempts};
    storage_rc = reel_storage_open_gcs(&gcs, &app.storage, err, sizeof err);
  } else {
    storage_rc = reel_storage_open_local(cfg->storage_path, app.signing_key, sizeof app.signing_key,
                                         &app.storage, err, sizeof err);
  }
  if (storage_rc != 0) {
    fprintf(stderr, "reeld: %s (service.storage in %s)\n", err, cfg->path);
    return 1;
  }
  if (strcmp(cfg->mode, "both") != 0 && strcmp(cfg->storage_backend, "local") == 0)
    reel_log(REEL_LOG_WARN,
             "local artifact storage with split roles: every API and worker node must share service.storage.path "
             "(one file system), or use S3 or GCS storage",
             "{s:s, s:s}", "mode", cfg->mode, "storage_path", cfg->storage_path);
  if (app.runs_workers && reel_scheduler_start(&app.scheduler, app.loop, &app.jobs, cfg, app.node_id, cli_prompt,
                                               app.storage, err, sizeof err) != 0) {
    fprintf(stderr, "reeld: %s\n", err);
    return 1;
  }
  if (app.serves_api) {
    reel_event_hub_config ec = {.max_streams = cfg->sse_max_streams,
                                .max_streams_per_client = cfg->sse_max_streams_per_client,
                                .max_buffered_bytes = cfg->sse_max_buffered_bytes,
                                .keepalive_ms = (uint64_t)(cfg->sse_keepalive_seconds * 1000)};
    reel_event_hub_init(&app.events, app.loop, &app.jobs, &ec);
  }
  if (reel_webhooks_start(&webhooks, app.loop, &app.jobs, cfg, app.node_id, err, sizeof err) != 0) {
    fprintf(stderr, "reeld: %s (service.webhooks in %s)\n", err, cfg->path);
    return 1;
  }
  if (!exclusive) {
    char *password = read_password_file(cfg, err, sizeof err);
    reel_store_pg_settings pg = {.url = cfg->database_url, .password = password, .application_name = app.node_id};
    int lrc = reel_pg_listener_start(&listener, app.loop, &pg, on_notification, &app, err, sizeof err);
    if (password) {
      memset(password, 0, strlen(password));
      free(password);
    }
    if (lrc != 0) {
      fprintf(stderr, "reeld: %s\n", err);
      return 1;
    }
    if (app.runs_workers) app.scheduler.wakeups_live = listener_live;
  }
  state.app = &app;
  uv_signal_init(app.loop, &state.sigterm);
  uv_signal_init(app.loop, &state.sigint);
  state.sigterm.data = state.sigint.data = &state;
  uv_signal_start(&state.sigterm, on_stop_signal, SIGTERM);
  uv_signal_start(&state.sigint, on_stop_signal, SIGINT);
  uv_signal_init(app.loop, &state.sighup);
  state.sighup.data = &state;
  uv_signal_start(&state.sighup, on_reload_signal, SIGHUP);
  reel_log(REEL_LOG_INFO, "started", "{s:s, s:s, s:s, s:s, s:i, s:s}", "version", REEL_VERSION, "mode", cfg->mode,
           "node", app.node_id, "store", reel_store_name(store), "workers", cfg->workers, "backend",
           cfg->default_backend);
  malloc_trim(0); /* start-up (config, TLS, store) freed more than it kept: give the pages back */

  uv_run(app.loop, UV_RUN_DEFAULT);
  app.storage->ops->close(app.storage);
  free(app.scheduler.work_dir);
  free(app.docs_dir);
  reel_h3_server_free(app.h3);
  if (app.has_tls) reel_tls_context_free(&app.tls);
  uv_loop_close(app.loop);
  reel_data_dir_unlock(&data_dir_lock);
  return 0;
}

int main(int argc, char **argv) {
  /* a job's supervisor (worker/supervise.h): reeld re-executed by reel_child_spawn */
  if (argc >= 3 && strcmp(argv[1], REEL_SUPERVISE_ARG) == 0) return reel_supervise_main(argv + 2);
  options o = {0};
  if (parse_args(argc, argv, &o) != 0) return 2;
  if (o.routes) {
    reel_api_print_routes();
    return 0;
  }
  reel_config cfg;
  char err[1024];
  if (reel_config_load(o.config_path, &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  if (o.check_config) {
    printf("%s: OK\n", o.config_path);
    reel_config_free(&cfg);
    return 0;
  }
  int level = reel_log_level_parse(cfg.log_level ? cfg.log_level : "info");
  reel_log_set_level(level < 0 ? REEL_LOG_INFO : (reel_log_level)level);
  /* every configured secret, for the redactor (absent ones are NULL and skipped) */
  const char *secrets[REEL_MAX_TOKENS + 8];
  size_t n_secrets = 0;
  for (int i = 0; i < cfg.n_tokens; i++) secrets[n_secrets++] = cfg.tokens[i];
  secrets[n_secrets++] = cfg.signing_key;
  secrets[n_secrets++] = cfg.storage_access_key_id;
  secrets[n_secrets++] = cfg.storage_secret_access_key;
  secrets[n_secrets++] = cfg.storage_session_token;
  secrets[n_secrets++] = cfg.database_url;
  char *db_password = reel_store_pg_url_password(cfg.database_url); /* the password inside the URL, if any */
  secrets[n_secrets++] = db_password;
  char pw_err[8];
  char *file_password = read_password_file(&cfg, pw_err, sizeof pw_err);
  secrets[n_secrets++] = file_password;
  int redact_rc = reel_redact_set_secrets(secrets, n_secrets);
  free(db_password);
  if (file_password) memset(file_password, 0, strlen(file_password));
  free(file_password);
  if (redact_rc != 0) {
    fprintf(stderr, "reeld: out of memory\n");
    reel_config_free(&cfg);
    return 1;
  }
  if (strcmp(cfg.storage_backend, "local") != 0) { /* S3 and GCS speak HTTP through libcurl */
    char curl_err[512];
    if (reel_http_client_global_init(curl_err, sizeof curl_err) != 0) {
      fprintf(stderr, "reeld: %s (service.storage.backend in %s)\n", curl_err, cfg.path);
      reel_config_free(&cfg);
      return 1;
    }
  }
  /* every job's process group is led by a supervisor that ends it if reeld
   * dies: reel-supervise beside reeld (small, quick to start), else reeld itself */
  static char supervisor[4200];
  char exe[4096];
  ssize_t exe_len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (exe_len > 0) {
    exe[exe_len] = '\0';
    snprintf(supervisor, sizeof supervisor, "%s/reel-supervise", dirname(exe));
  }
  reel_child_set_supervisor(exe_len > 0 && access(supervisor, X_OK) == 0 ? supervisor : "/proc/self/exe");
  int rc = o.migrate ? migrate_only(&cfg) : o.run_once ? run_once(&cfg, o.prompt) : serve(&cfg, o.prompt);
  reel_config_free(&cfg);
  reel_redact_clear_secrets();
  return rc;
}
