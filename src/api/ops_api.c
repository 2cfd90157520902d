/* Operational endpoints: liveness, readiness, metrics, and the API's own
 * description (OpenAPI document and a Swagger UI page served from local files,
 * each held once in memory and shared by every response). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/app.h"
#include "common/error.h"
#include "http/fd_limit.h"
#include "metrics/metrics.h"

extern const unsigned char reel_openapi_yaml[];
extern const size_t reel_openapi_yaml_len;

typedef struct {
  reel_job_op op; /* first */
  reel_app *app;
  reel_http_request *req;
} ops_call;

void reel_api_healthz(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  (void)app;
  (void)p;
  reel_http_send_json(req, 200, "{\"status\":\"ok\"}");
}

/* Readiness: the store answers (a PING operation), then storage is checked on
 * the thread pool (object storage is a network round trip), then workers. */
typedef struct {
  uv_work_t work;
  ops_call *call;
  int store_result, storage_rc;
  char storage_err[256];
} ready_check;

static void check_storage(uv_work_t *w) {
  ready_check *r = w->data;
  reel_storage *st = r->call->app->storage;
  r->storage_rc = st->ops->check(st, r->storage_err, sizeof r->storage_err);
}

static void ready_answer(uv_work_t *w, int status) {
  ready_check *r = w->data;
  ops_call *c = r->call;
  reel_app *app = c->app;
  int result = r->store_result;
  char storage_err[256], workers_err[256] = "";
  snprintf(storage_err, sizeof storage_err, "%s", status != 0 ? "storage check did not run" : r->storage_err);
  int storage_rc = status != 0 ? REEL_EIO : r->storage_rc;
  free(r);
  int ok = result == 0;
  int workers_rc = app->runs_workers ? reel_scheduler_check(&app->scheduler, workers_err, sizeof workers_err) : 0;
  if (storage_rc || workers_rc) ok = 0;
  /* answering is not enough: the store must be able to commit (a full disk,
   * a deleted database; see reel_jobs_health) */
  char store_err[400] = "the job store does not answer";
  int store_rc = reel_jobs_health(&app->jobs, store_err, sizeof store_err);
  if (result != 0 && store_rc == 0) {
    snprintf(store_err, sizeof store_err, "the job store does not answer");
    store_rc = REEL_ESTORE;
  }
  if (store_rc) ok = 0;
  json_t *checks = json_pack("{s:s, s:s, s:s}", "database", store_rc ? store_err : "ok",
                             "storage", storage_rc ? storage_err : "ok", "workers",
                             workers_rc ? workers_err : (app->runs_workers ? "ok" : "not run by this process"));
  json_t *body = json_pack("{s:s, s:o}", "status", ok ? "ready" : "not_ready", "checks", checks);
  char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(body);
  reel_http_response resp;
  reel_http_response_init(&resp, ok ? 200 : 503);
  reel_http_response_add_header(&resp, "Content-Type", "application/json");
  if (!ok) reel_http_response_add_header(&resp, "Retry-After", "5");
  reel_buf_append_str(&resp.body, text ? text : "{}");
  reel_http_send(c->req, &resp);
  free(text);
  reel_job_op_cleanup(&c->op);
  free(c);
}

static void ready_done(reel_job_op *op, int result) {
  ops_call *c = op->data;
  ready_check *r = calloc(1, sizeof *r);
  if (!r) {
    reel_http_send_problem(c->req, 500, "internal", "Internal error", "out of memory");
    reel_job_op_cleanup(op);
    free(c);
    return;
  }
  r->call = c;
  r->store_result = result;
  r->work.data = r;
  if (uv_queue_work(c->app->loop, &r->work, check_storage, ready_answer) != 0) ready_answer(&r->work, -1);
}

static void metrics_done(reel_job_op *op, int result) {
  ops_call *c = op->data;
  reel_app *app = c->app;
  int64_t zero[REEL_JOB_STATUS_COUNT] = {0};
  reel_metrics_set_store(app->jobs.executor.batches, app->jobs.executor.calls);
  reel_metrics_set_sse(app->events.jobs ? app->events.n_subs : 0, app->events.delivered, app->events.cut_off);
  reel_http_response resp;
  reel_http_response_init(&resp, 200);
  reel_http_response_add_header(&resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  reel_metrics_render(&resp.body, result == 0 ? op->counts : zero);
  reel_http_send(c->req, &resp);
  reel_job_op_cleanup(op);
  free(c);
}

static void run_ops_call(reel_app *app, reel_http_request *req, reel_job_op_kind kind, void (*cb)(reel_job_op *, int)) {
  ops_call *c = calloc(1, sizeof *c);
  if (!c) {
    reel_http_send_problem(req, 500, "internal", "Internal error", "out of memory");
    return;
  }
  reel_job_op_init(&c->op, kind);
  c->op.cb = cb;
  c->op.data = c;
  c->app = app;
  c->req = req;
  reel_jobs_run(&app->jobs, &c->op);
}

void reel_api_readyz(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  (void)p;
  run_ops_call(app, req, REEL_JOB_OP_PING, ready_done);
}

void reel_api_metrics(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  (void)p;
  run_ops_call(app, req, REEL_JOB_OP_COUNTS, metrics_done);
}

/* The OpenAPI document as served. The compiled-in one names "/" as its
 * server, which clients resolve against the URL they fetched it from, so it
 * is right on every listener and behind any proxy. With
 * service.public_base_url configured, a copy naming that URL is made at the
 * first request and kept for the process's life (loop thread only). Every
 * response refers to the same bytes. */
static const unsigned char *served_openapi(const reel_app *app, size_t *len) {
  static unsigned char *with_base;
  static size_t with_base_len;
  static const char marker[] = "servers:\n  - url: /\n";
  const char *base = app->cfg ? app->cfg->public_base_url : NULL;
  if (!base || !*base) {
    *len = reel_openapi_yaml_len;
    return reel_openapi_yaml;
  }
  if (!with_base) {
    const char *doc = (const char *)reel_openapi_yaml;
    const char *at = memmem(doc, reel_openapi_yaml_len, marker, sizeof marker - 1);
    size_t n = reel_openapi_yaml_len + strlen(base) + 8;
    unsigned char *copy = at ? malloc(n) : NULL;
    if (!copy) {
      *len = reel_openapi_yaml_len;
      return reel_openapi_yaml;
    }
    size_t head = (size_t)(at - doc) + sizeof marker - 3; /* up to "url: " */
    size_t tail = reel_openapi_yaml_len - head - 2;        /* after "/\n" */
    int wrote = snprintf((char *)copy, n, "%.*s%s\n", (int)head, doc, base);
    memcpy(copy + wrote, doc + head + 2, tail);
    with_base = copy;
    with_base_len = (size_t)wrote + tail;
  }
  *len = with_base_len;
  return with_base;
}

void reel_api_openapi(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  (void)p;
  reel_http_response resp;
  reel_http_response_init(&resp, 200);
  reel_http_response_add_header(&resp, "Content-Type", "application/yaml");
  resp.static_body = served_openapi(app, &resp.static_len);
  reel_http_send(req, &resp);
}

static const char docs_page[] =
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>reel API</title>\n"
    "<link rel=\"stylesheet\" href=\"/docs/swagger-ui.css\">\n"
    "<link rel=\"icon\" type=\"image/png\" href=\"/docs/favicon-32x32.png\">\n</head>\n<body>\n"
    "<div id=\"swagger-ui\"></div>\n<script src=\"/docs/swagger-ui-bundle.js\"></script>\n"
    "<script src=\"/docs/swagger-ui-standalone-preset.js\"></script>\n"
    "<script>\nwindow.onload = function () {\n  window.ui = SwaggerUIBundle({url: '/openapi.yaml', dom_id: '#swagger-ui',\n"
    "    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout'});\n};\n"
    "</script>\n</body>\n</html>\n";

void reel_api_docs(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  (void)app;
  (void)p;
  reel_http_response resp;
  reel_http_response_init(&resp, 200);
  reel_http_response_add_header(&resp, "Content-Type", "text/html; charset=utf-8");
  resp.static_body = docs_page;
  resp.static_len = sizeof docs_page - 1;
  reel_http_send(req, &resp);
}

/* Only these files are served from docs_dir: no path from the request reaches
 * the file system. Each is read once, at its first request, and kept for the
 * life of the process: every response refers to that one copy, so concurrent
 * or stalled requests hold neither a descriptor nor a buffer of their own. */
static struct {
  const char *name;
  const char *type;
  char *data; /* NULL until loaded; then immutable */
  size_t len;
} docs_assets[] = {
    {"swagger-ui.css", "text/css", NULL, 0},
    {"swagger-ui-bundle.js", "text/javascript", NULL, 0},
    {"swagger-ui-standalone-preset.js", "text/javascript", NULL, 0},
    {"favicon-32x32.png", "image/png", NULL, 0},
};

#define DOCS_ASSET_MAX ((size_t)32 << 20)

/* Reads docs_dir/name into a heap buffer. Returns 0, REEL_EBUSY when no file
 * descriptor is left (errno EMFILE/ENFILE), REEL_ENOTFOUND otherwise. */
static int load_asset(const char *docs_dir, const char *name, char **data, size_t *len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", docs_dir, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return reel_fd_limit_is_exhaustion(errno) ? REEL_EBUSY : REEL_ENOTFOUND;
  struct stat st;
  char *buf = NULL;
  size_t got = 0;
  if (fstat(fd, &st) == 0 && st.st_size >= 0 && (size_t)st.st_size <= DOCS_ASSET_MAX &&
      (buf = malloc((size_t)st.st_size + 1)) != NULL) {
    while (got < (size_t)st.st_size) {
      ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
      if (n <= 0) break;
      got += (size_t)n;
    }
  }
  close(fd);
  if (!buf || got != (size_t)st.st_size) {
    free(buf);
    return REEL_ENOTFOUND;
  }
  *data = buf;
  *len = got;
  return 0;
}

void reel_api_docs_asset(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  for (size_t i = 0; i < sizeof docs_assets / sizeof *docs_assets; i++) {
    if (!reel_slice_eq(p->id, docs_assets[i].name)) continue;
    if (!docs_assets[i].data) {
      int rc = load_asset(app->docs_dir, docs_assets[i].name, &docs_assets[i].data, &docs_assets[i].len);
      if (rc == REEL_EBUSY) {
        reel_fd_limit_report("documentation asset answered 503", req->request_id);
        reel_http_send_problem_with_headers(req, 503, "overloaded", "Service unavailable",
                                            "the server has no file descriptor left; retry shortly", "Retry-After",
                                            "1", NULL);
        return;
      }
      if (rc != 0) {
        reel_http_send_problem(req, 404, "docs-assets-missing", "Documentation assets missing",
                               "Swagger UI files are not installed next to reeld; run scripts/install-deps.sh and rebuild");
        return;
      }
    }
    reel_http_response resp;
    reel_http_response_init(&resp, 200);
    reel_http_response_add_header(&resp, "Content-Type", docs_assets[i].type);
    reel_http_response_add_header(&resp, "Cache-Control", "public, max-age=3600");
    resp.static_body = docs_assets[i].data;
    resp.static_len = docs_assets[i].len;
    reel_http_send(req, &resp);
    return;
  }
  reel_http_send_problem(req, 404, "not-found", "Not found", "no such documentation asset");
}
