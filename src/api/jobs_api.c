/* The /v1/jobs handlers (seed 000's contract). Each turns a request into one
 * job operation and its result into a response; status codes for every
 * failure are decided here and nowhere else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api_call.h"
#include "api/app.h"
#include "api/origin.h"
#include "api/validate.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/random.h"

#include <gnutls/crypto.h>


static int valid_job_id(reel_http_request *req, const reel_route_params *p) {
  if (reel_job_id_valid(p->id.ptr, p->id.len)) return 1;
  reel_http_send_problem(req, 404, "job-not-found", "Job not found", "no job has this id");
  return 0;
}

/* ---- POST /v1/jobs ---- */

static void create_done(reel_job_op *op, int result) {
  reel_api_call *c = op->data;
  if (result == REEL_ECONFLICT && op->key_reused) {
    reel_http_send_problem(c->req, 422, "idempotency-key-reused", "Idempotency-Key reused",
                           "this Idempotency-Key was sent before with a different request body; use a new key "
                           "for a different request");
  } else if (result == REEL_EBUSY) {
    char detail[160];
    snprintf(detail, sizeof detail, "the queue holds %lld jobs, the most service.max_queue_depth allows; retry later",
             (long long)op->counts[REEL_JOB_QUEUED]);
    reel_http_send_problem_with_headers(c->req, 429, "queue-full", "Queue full", detail, "Retry-After", "5", NULL);
  } else if (!reel_api_send_op_error(c->req, result)) {
    char created[40], location[64];
    reel_rfc3339(op->job.created_ms, created, sizeof created);
    snprintf(location, sizeof location, "/v1/jobs/%s", op->job.id);
    json_t *body = json_pack("{s:s, s:s, s:s}", "id", op->job.id, "status", "queued", "created_at", created);
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    reel_http_response resp;
    reel_http_response_init(&resp, 202);
    reel_http_response_add_header(&resp, "Content-Type", "application/json");
    reel_http_response_add_header(&resp, "Location", location);
    if (op->replayed) reel_http_response_add_header(&resp, "Idempotent-Replayed", "true");
    if (text) reel_buf_append_str(&resp.body, text);
    free(text);
    reel_http_send(c->req, &resp);
  }
  reel_api_call_free(c);
}

/* The Idempotency-Key of req into key ("" when absent). 0, or a 400 already sent. */
static int idempotency_key(reel_http_request *req, char key[256]) {
  key[0] = '\0';
  int count = reel_http_request_header_count(req, "Idempotency-Key");
  if (count == 0) return 0;
  reel_slice k = reel_http_request_header(req, "Idempotency-Key");
  int ok = count == 1 && k.len >= 1 && k.len <= 255;
  for (size_t i = 0; ok && i < k.len; i++) ok = (unsigned char)k.ptr[i] >= 0x20 && (unsigned char)k.ptr[i] < 0x7f;
  if (!ok) {
    reel_http_send_problem(req, 400, "invalid-idempotency-key", "Invalid Idempotency-Key",
                           "send one Idempotency-Key header of 1 to 255 printable ASCII characters");
    return REEL_EPARSE;
  }
  memcpy(key, k.ptr, k.len);
  key[k.len] = '\0';
  return 0;
}

void reel_api_create_job(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  (void)p;
  char key[256];
  if (idempotency_key(req, key) != 0) return;
  reel_slice ct = reel_http_request_header(req, "Content-Type");
  if (!ct.ptr || !reel_validate_is_json_content_type(ct)) {
    reel_http_send_problem(req, 415, "unsupported-media-type", "Unsupported media type",
                           "send the body as Content-Type: application/json");
    return;
  }
  char detail[256], *prompt = NULL;
  int rc = reel_validate_job_request(req->body.ptr, req->body.len, app->cfg->max_prompt_chars, &prompt, detail,
                                     sizeof detail);
  if (rc != 0) {
    reel_http_send_problem(req, 400, "invalid-request", "Invalid request", rc == REEL_EPARSE ? detail : "out of memory");
    return;
  }
  reel_api_call *c = reel_api_call_new(app, req, REEL_JOB_OP_SUBMIT, create_done);
  if (!c) {
    free(prompt);
    return;
  }
  c->op.prompt = prompt;
  if (key[0]) {
    unsigned char digest[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, req->body.ptr, req->body.len, digest) != 0) {
      reel_http_send_problem(req, 500, "internal", "Internal error", "cannot hash the request body");
      reel_api_call_free(c);
      return;
    }
    for (int i = 0; i < 32; i++) snprintf(c->op.body_sha256 + 2 * i, 3, "%02x", digest[i]);
    memcpy(c->op.idem_key, key, sizeof c->op.idem_key);
    if (req->auth_token > 0) snprintf(c->op.idem_client, sizeof c->op.idem_client, "token:%d", req->auth_token);
    else snprintf(c->op.idem_client, sizeof c->op.idem_client, "anonymous");
    c->op.idem_ttl_ms = (int64_t)app->cfg->idempotency_ttl_seconds * 1000;
  }
  reel_jobs_run(&app->jobs, &c->op);
}

/* ---- GET /v1/jobs ---- */

static void list_done(reel_job_op *op, int result) {
  reel_api_call *c = op->data;
  if (!reel_api_send_op_error(c->req, result)) {
    json_t *jobs = json_array();
    for (int i = 0; i < op->n_list; i++) json_array_append_new(jobs, reel_job_to_json(&op->list[i]));
    json_t *body = json_object();
    json_object_set_new(body, "jobs", jobs);
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

void reel_api_list_jobs(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  (void)p;
  char *status = NULL, *limit = NULL, *cursor = NULL;
  int status_filter = -1;
  long long limit_value = 20, before = 0;
  const char *problem = NULL;
  if (reel_http_query_param(req, "status", &status) < 0 ||
      (status && (status_filter = reel_job_status_parse(status)) < 0))
    problem = "status must be one of queued, started, progress, finished, failed, canceled";
  else if (reel_http_query_param(req, "limit", &limit) < 0 ||
           (limit && reel_validate_int(limit, 1, 100, &limit_value) != 0))
    problem = "limit must be an integer from 1 to 100";
  else if (reel_http_query_param(req, "cursor", &cursor) < 0 ||
           (cursor && (cursor[0] != 's' || reel_validate_int(cursor + 1, 1, INT64_MAX, &before) != 0)))
    problem = "cursor is not one this server issued; use next_cursor from a previous page";
  free(status);
  free(limit);
  free(cursor);
  if (problem) {
    reel_http_send_problem(req, 400, "invalid-query", "Invalid query parameter", problem);
    return;
  }
  reel_api_call *c = reel_api_call_new(app, req, REEL_JOB_OP_LIST, list_done);
  if (!c) return;
  c->op.status_filter = status_filter;
  c->op.limit = (int)limit_value;
  c->op.before_seq = before;
  reel_jobs_run(&app->jobs, &c->op);
}

/* ---- GET /v1/jobs/{id} ---- */

static void get_done(reel_job_op *op, int result) {
  reel_api_call *c = op->data;
  if (!reel_api_send_op_error(c->req, result)) reel_api_send_json_value(c->req, 200, reel_job_to_json(&op->job));
  reel_api_call_free(c);
}

static reel_api_call *call_for_job(reel_app *app, reel_http_request *req, const reel_route_params *p,
                              reel_job_op_kind kind, void (*cb)(reel_job_op *, int)) {
  if (!valid_job_id(req, p)) return NULL;
  reel_api_call *c = reel_api_call_new(app, req, kind, cb);
  if (c) {
    memcpy(c->op.id, p->id.ptr, p->id.len);
    c->op.id[p->id.len] = '\0';
  }
  return c;
}

void reel_api_get_job(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  reel_api_call *c = call_for_job(app, req, p, REEL_JOB_OP_GET, get_done);
  if (c) reel_jobs_run(&app->jobs, &c->op);
}

/* ---- GET /v1/jobs/{id}/artifact ---- */

static void artifact_done(reel_job_op *op, int result) {
  reel_api_call *c = op->data;
  reel_app *app = c->app;
  if (reel_api_send_op_error(c->req, result)) goto out;
  if (op->job.status != REEL_JOB_FINISHED || !op->job.artifact_key) {
    reel_http_send_problem(c->req, 404, "artifact-not-ready", "Artifact not ready",
                           "the job has no artifact yet; it appears when the job is finished");
    goto out;
  }
  char *url = NULL;
  int64_t expires_at = reel_now_ms() / 1000 + c->expires_in;
  if (app->storage->ops->download_url(app->storage, op->job.artifact_key, op->job.id, "final_video.mp4", expires_at,
                                      &url) != 0) {
    reel_http_send_problem(c->req, 503, "storage-unavailable", "Storage unavailable", "could not make a download URL");
    goto out;
  }
  char *absolute = reel_api_absolute_url(app, c->req, url);
  free(url);
  url = absolute;
  if (!url) {
    reel_http_send_problem(c->req, 503, "out-of-memory", "Out of memory", "could not make a download URL");
    goto out;
  }
  json_t *body = json_object();
  json_t *artifact_uri = reel_job_artifact_uri_json(&op->job);
  json_object_set_new(body, "artifact_uri", json_is_string(artifact_uri) ? artifact_uri : json_string(""));
  if (!json_is_string(artifact_uri)) json_decref(artifact_uri);
  json_object_set_new(body, "gcs_uri", op->job.gcs_uri ? json_string(op->job.gcs_uri) : json_null());
  json_object_set_new(body, "url", json_string(url));
  /* a public URL (GCS with signed_urls: false) never expires: seed 000 says expires_in 0 */
  json_object_set_new(body, "expires_in", json_integer(app->storage->public_urls ? 0 : c->expires_in));
  /* captions beside the video, when the pipeline made them */
  char *captions_key = reel_api_artifact_key(&op->job, "captions.vtt");
  int fd = -1;
  if (captions_key && app->storage->ops->open_read(app->storage, captions_key, &fd) == 0) {
    close(fd);
    char *captions_url = NULL;
    if (app->storage->ops->download_url(app->storage, captions_key, op->job.id, "captions.vtt", expires_at,
                                        &captions_url) == 0) {
      char *absolute_captions = reel_api_absolute_url(app, c->req, captions_url);
      if (absolute_captions) json_object_set_new(body, "captions_url", json_string(absolute_captions));
      free(absolute_captions);
    }
    free(captions_url);
  }
  free(captions_key);
  if (c->redirect) {
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    reel_http_response resp;
    reel_http_response_init(&resp, 302);
    reel_http_response_add_header(&resp, "Location", url);
    reel_http_response_add_header(&resp, "Content-Type", "application/json");
    reel_http_response_add_header(&resp, "Cache-Control", "no-store");
    if (text) reel_buf_append_str(&resp.body, text);
    free(text);
    reel_http_send(c->req, &resp);
  } else {
    reel_api_send_json_value(c->req, 200, body);
  }
  free(url);
out:
  reel_api_call_free(c);
}

void reel_api_get_artifact(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  char *expires = NULL, *redirect = NULL;
  long long expires_in = app->cfg->artifact_url_ttl_seconds;
  int redirect_value = 0;
  const char *problem = NULL;
  if (reel_http_query_param(req, "expires_in", &expires) < 0 ||
      (expires && reel_validate_int(expires, 60, 604800, &expires_in) != 0))
    problem = "expires_in must be an integer number of seconds from 60 to 604800 (7 days)";
  else if (reel_http_query_param(req, "redirect", &redirect) < 0 ||
           (redirect && reel_validate_bool(redirect, &redirect_value) != 0))
    problem = "redirect must be true or false";
  free(expires);
  free(redirect);
  if (problem) {
    reel_http_send_problem(req, 400, "invalid-query", "Invalid query parameter", problem);
    return;
  }
  reel_api_call *c = call_for_job(app, req, p, REEL_JOB_OP_GET, artifact_done);
  if (!c) return;
  c->expires_in = expires_in;
  c->redirect = redirect_value;
  reel_jobs_run(&app->jobs, &c->op);
}

/* ---- GET /v1/jobs/{id}/logs ---- */

static void logs_done(reel_job_op *op, int result) {
  reel_api_call *c = op->data;
  if (!reel_api_send_op_error(c->req, result)) {
    json_t *body = json_object();
    json_object_set(body, "lines", op->lines ? op->lines : json_array());
    reel_api_send_json_value(c->req, 200, body);
  }
  reel_api_call_free(c);
}

void reel_api_get_logs(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  char *tail = NULL;
  long long tail_value = 100;
  if (reel_http_query_param(req, "tail", &tail) < 0 || (tail && reel_validate_int(tail, 0, 10000, &tail_value) != 0)) {
    free(tail);
    reel_http_send_problem(req, 400, "invalid-query", "Invalid query parameter",
                           "tail must be an integer number of lines from 0 to 10000");
    return;
  }
  free(tail);
  reel_api_call *c = call_for_job(app, req, p, REEL_JOB_OP_LOGS, logs_done);
  if (!c) return;
  c->op.tail = (int)tail_value;
  reel_jobs_run(&app->jobs, &c->op);
}

/* ---- POST /v1/jobs/{id}/cancel ---- */

static void cancel_done(reel_job_op *op, int result) {
  reel_api_call *c = op->data;
  if (result == REEL_ECONFLICT) {
    char detail[128];
    snprintf(detail, sizeof detail, "the job is already %s", reel_job_status_name(op->job.status));
    reel_http_send_problem(c->req, 409, "job-already-ended", "Job already ended", detail);
  } else if (result == REEL_ESTORE) { /* never "ok" for a cancel that was not recorded */
    reel_http_send_problem_with_headers(c->req, 503, "store-unavailable", "Job store unavailable",
                                        "the cancel could not be recorded, so the job was not canceled; retry",
                                        "Retry-After", "5", NULL);
  } else if (!reel_api_send_op_error(c->req, result)) {
    reel_http_send_json(c->req, 200, "{\"ok\":true}");
  }
  reel_api_call_free(c);
}

void reel_api_cancel_job(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  reel_api_call *c = call_for_job(app, req, p, REEL_JOB_OP_CANCEL, cancel_done);
  if (c) reel_jobs_run(&app->jobs, &c->op);
}
