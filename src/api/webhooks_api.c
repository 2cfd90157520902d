/* GET /v1/webhooks/deliveries (SPEC section 8): the webhook outbox, newest
 * first, with each delivery's attempts, last answer and next attempt. The
 * endpoint is shown without its query string, which may carry credentials. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_call.h"
#include "api/validate.h"
#include "common/clock.h"

static json_t *time_or_null(int64_t ms) {
  if (ms <= 0) return json_null();
  char text[40];
  reel_rfc3339(ms, text, sizeof text);
  return json_string(text);
}

static const char *delivery_status(int status) {
  return status == REEL_DELIVERY_DELIVERED ? "delivered" : status == REEL_DELIVERY_FAILED ? "failed" : "pending";
}

static json_t *delivery_json(const reel_delivery *d) {
  char endpoint[sizeof d->endpoint];
  snprintf(endpoint, sizeof endpoint, "%.*s", (int)strcspn(d->endpoint, "?#"), d->endpoint);
  json_t *o = json_object();
  json_object_set_new(o, "id", json_string(d->id));
  json_object_set_new(o, "endpoint", json_string(endpoint));
  json_object_set_new(o, "event_type", json_string(d->event_type));
  json_object_set_new(o, "job_id", json_string(d->job_id));
  json_object_set_new(o, "status", json_string(delivery_status(d->status)));
  json_object_set_new(o, "attempts", json_integer(d->attempts));
  json_object_set_new(o, "last_status", d->last_status ? json_integer(d->last_status) : json_null());
  json_object_set_new(o, "last_error", d->last_error[0] ? json_string(d->last_error) : json_null());
  json_object_set_new(o, "next_attempt_at",
                      d->status == REEL_DELIVERY_PENDING ? time_or_null(d->next_attempt_ms) : json_null());
  json_object_set_new(o, "created_at", time_or_null(d->created_ms));
  json_object_set_new(o, "updated_at", time_or_null(d->updated_ms));
  return o;
}

static void list_done(reel_job_op *op, int result) {
  reel_api_call *c = op->data;
  if (!reel_api_send_op_error(c->req, result)) {
    json_t *list = json_array();
    for (int i = 0; i < op->n_deliveries; i++) json_array_append_new(list, delivery_json(&op->deliveries[i]));
    json_t *body = json_object();
    json_object_set_new(body, "deliveries", list);
    if (op->next_seq > 0) {
      char cursor[32];
      snprintf(cursor, sizeof cursor, "s%lld", (long long)op->next_seq);
      json_object_set_new(body, "next_cursor", json_string(cursor));
    } else {
      json_object_set_new(body, "next_cursor", json_null());
    }
    reel_api_send_json_value(c->req, 200, body);
  }
  reel_api_call_free(c);
}

void reel_api_list_deliveries(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  (void)p;
  char *limit = NULL, *cursor = NULL;
  long long limit_value = 50, before = 0;
  const char *problem = NULL;
  if (reel_http_query_param(req, "limit", &limit) < 0 ||
      (limit && reel_validate_int(limit, 1, 500, &limit_value) != 0))
    problem = "limit must be an integer from 1 to 500";
  else if (reel_http_query_param(req, "cursor", &cursor) < 0 ||
           (cursor && (cursor[0] != 's' || reel_validate_int(cursor + 1, 1, INT64_MAX, &before) != 0)))
    problem = "cursor is not one this server issued; use next_cursor from a previous page";
  free(limit);
  free(cursor);
  if (problem) {
    reel_http_send_problem(req, 400, "invalid-query", "Invalid query parameter", problem);
    return;
  }
  reel_api_call *c = reel_api_call_new(app, req, REEL_JOB_OP_DELIVERIES_LIST, list_done);
  if (!c) return;
  c->op.limit = (int)limit_value;
  c->op.before_seq = before;
  reel_jobs_run(&app->jobs, &c->op);
}
