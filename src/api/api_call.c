/* The request-to-operation plumbing the /v1 handlers share (see api_call.h). */
#include "api/api_call.h"

#include <stdlib.h>

#include "common/error.h"

reel_api_call *reel_api_call_new(reel_app *app, reel_http_request *req, reel_job_op_kind kind,
                                 void (*cb)(reel_job_op *, int)) {
  reel_api_call *c = calloc(1, sizeof *c);
  if (!c) {
    reel_http_send_problem(req, 500, "internal", "Internal error", "out of memory");
    return NULL;
  }
  reel_job_op_init(&c->op, kind);
  c->op.cb = cb;
  c->op.data = c;
  c->app = app;
  c->req = req;
  return c;
}

void reel_api_call_free(reel_api_call *c) {
  reel_job_op_cleanup(&c->op);
  free(c);
}

/* Reals (costs, rounded to milliseconds) are printed with 15 significant
 * digits, so a rounded 1.636 reads 1.636 and not 1.6359999999999999. */
void reel_api_send_json_value(reel_http_request *req, int status, json_t *value) {
  char *text = value ? json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
  if (text) reel_http_send_json(req, status, text);
  else reel_http_send_problem(req, 500, "internal", "Internal error", "out of memory");
  free(text);
  json_decref(value);
}

int reel_api_send_op_error(reel_http_request *req, int result) {
  if (result == 0) return 0;
  if (result == REEL_ENOTFOUND)
    reel_http_send_problem(req, 404, "job-not-found", "Job not found", "no job has this id");
  else
    reel_http_send_problem_with_headers(req, 503, "store-unavailable", "Job store unavailable",
                                        "the job store could not complete the operation; try again", "Retry-After",
                                        "5", NULL);
  return 1;
}
