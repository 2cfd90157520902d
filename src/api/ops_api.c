/* Operational endpoints: liveness, readiness, metrics, and the API's own
 * description (OpenAPI document and a Swagger UI page served from local files). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/app.h"
#include "common/error.h"
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
  json_t *checks = json_pack("{s:s, s:s, s:s}", "database", result == 0 ? "ok" : "the job store does not answer",
                             "storage", storage_rc ? storage_err : "ok", "workers",
                             workers_rc ? workers_err : (app->runs_workers ? "ok" : "not run by this process"));
  json_t *body = json_pack("{s:s, s:o}", "status", ok ? "ready" : "not_ready", "checks", checks);
  char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(body);
  reel_http_send_json(c->req, ok ? 200 : 503, text ? text : "{}");
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

void reel_api_openapi(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  (void)app;
  (void)p;
  reel_http_response resp;
  reel_http_response_init(&resp, 200);
  reel_http_response_add_header(&resp, "Content-Type", "application/yaml");
  reel_buf_append(&resp.body, reel_openapi_yaml, reel_openapi_yaml_len);
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
  reel_buf_append(&resp.body, docs_page, sizeof docs_page - 1);
  reel_http_send(req, &resp);
}

/* Only these files are served from docs_dir: no path from the request reaches the file system. */
static const struct {
  const char *name;
  const char *type;
} docs_assets[] = {
    {"swagger-ui.css", "text/css"},
    {"swagger-ui-bundle.js", "text/javascript"},
    {"swagger-ui-standalone-preset.js", "text/javascript"},
    {"favicon-32x32.png", "image/png"},
};

void reel_api_docs_asset(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  for (size_t i = 0; i < sizeof docs_assets / sizeof *docs_assets; i++) {
    if (!reel_slice_eq(p->id, docs_assets[i].name)) continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", app->docs_dir, docs_assets[i].name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
      if (fd >= 0) close(fd);
      reel_http_send_problem(req, 404, "docs-assets-missing", "Documentation assets missing",
                             "Swagger UI files are not installed next to reeld; run scripts/install-deps.sh and rebuild");
      return;
    }
    reel_http_response resp;
    reel_http_response_init(&resp, 200);
    reel_http_response_add_header(&resp, "Content-Type", docs_assets[i].type);
    reel_http_response_add_header(&resp, "Cache-Control", "public, max-age=3600");
    resp.file_fd = fd;
    resp.file_offset = 0;
    resp.file_length = st.st_size;
    reel_http_send(req, &resp);
    return;
  }
  reel_http_send_problem(req, 404, "not-found", "Not found", "no such documentation asset");
}
