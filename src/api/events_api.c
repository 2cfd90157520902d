/* GET /v1/jobs/{id}/events and GET /v1/events (SPEC section 8): the query
 * and Last-Event-ID checked here, the streams served by events/hub.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "common/error.h"
#include "common/random.h"

/* Parses a non-negative event id (at most 18 digits). 0 or REEL_EPARSE. */
static int parse_event_id(const char *p, size_t n, int64_t *out) {
  if (n == 0 || n > 18) return REEL_EPARSE;
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return REEL_EPARSE;
    v = v * 10 + (p[i] - '0');
  }
  *out = v;
  return 0;
}

/* Where the stream starts: Last-Event-ID (a reconnecting client), else
 * ?after=N, else -1. 0, or a 400 already sent. */
static int start_after(reel_http_request *req, int64_t *after) {
  *after = -1;
  reel_slice last = reel_http_request_header(req, "Last-Event-ID");
  if (last.ptr) {
    while (last.len > 0 && last.ptr[0] == ' ') last.ptr++, last.len--;
    while (last.len > 0 && last.ptr[last.len - 1] == ' ') last.len--;
    if (parse_event_id(last.ptr, last.len, after) == 0) return 0;
    reel_http_send_problem(req, 400, "invalid-last-event-id", "Invalid Last-Event-ID",
                           "Last-Event-ID must be the id of an event this server sent (a non-negative integer)");
    return REEL_EPARSE;
  }
  char *text = NULL;
  int rc = reel_http_query_param(req, "after", &text);
  if (rc == 1 && parse_event_id(text, strlen(text), after) == 0) rc = 0;
  else if (rc == 0) rc = 0;
  else rc = REEL_EPARSE;
  free(text);
  if (rc)
    reel_http_send_problem(req, 400, "invalid-after", "Invalid after",
                           "after must be an event id (a non-negative integer), given once");
  return rc;
}

/* The types= filter (all types when absent). 0, or a 400 already sent. */
static int type_filter(reel_http_request *req, unsigned *types) {
  *types = REEL_EVENT_TYPES_ALL;
  char *text = NULL;
  int rc = reel_http_query_param(req, "types", &text);
  if (rc == 0) return 0;
  if (rc == 1) {
    const char *bad = "";
    size_t bad_len = 0;
    *types = reel_event_types_parse(text, &bad, &bad_len);
    if (*types) {
      free(text);
      return 0;
    }
    char detail[200];
    snprintf(detail, sizeof detail,
             "unknown event type \"%.*s\"; types is a comma-separated list of job.created, job.started, "
             "job.progress, job.log, job.retrying, job.finished, job.failed, job.canceled",
             (int)(bad_len > 40 ? 40 : bad_len), bad);
    free(text);
    reel_http_send_problem(req, 400, "invalid-types", "Invalid types", detail);
    return REEL_EPARSE;
  }
  free(text);
  reel_http_send_problem(req, 400, "invalid-types", "Invalid types", "types must be given once, percent-encoded");
  return REEL_EPARSE;
}

/* Who the per-client limit counts: the token that authenticated the
 * request, else the client's address. */
static void client_key(const reel_http_request *req, char *out, size_t n) {
  if (req->auth_token > 0) snprintf(out, n, "token:%d", req->auth_token);
  else snprintf(out, n, "addr:%s", req->remote_addr);
}

void reel_api_job_events(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  if (!reel_job_id_valid(p->id.ptr, p->id.len)) {
    reel_http_send_problem(req, 404, "job-not-found", "Job not found", "no job has this id");
    return;
  }
  int64_t after;
  unsigned types;
  if (start_after(req, &after) != 0 || type_filter(req, &types) != 0) return;
  char id[32], client[80];
  snprintf(id, sizeof id, "%.*s", (int)p->id.len, p->id.ptr);
  client_key(req, client, sizeof client);
  reel_event_hub_serve(&app->events, req, id, after, types, client);
}

void reel_api_events(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  (void)p;
  int64_t after;
  unsigned types;
  if (start_after(req, &after) != 0 || type_filter(req, &types) != 0) return;
  char client[80];
  client_key(req, client, sizeof client);
  reel_event_hub_serve(&app->events, req, NULL, after, types, client);
}
