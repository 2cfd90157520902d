/* The transition table: every allowed and forbidden move, and status names. */
#include "check.h"
#include "jobs/job.h"

int main(void) {
  const reel_job_status Q = REEL_JOB_QUEUED, S = REEL_JOB_STARTED, P = REEL_JOB_PROGRESS, F = REEL_JOB_FINISHED,
                        X = REEL_JOB_FAILED, C = REEL_JOB_CANCELED;
  /* the seed's happy path */
  CHECK(reel_job_transition_allowed(Q, S));
  CHECK(reel_job_transition_allowed(S, P));
  CHECK(reel_job_transition_allowed(P, P));
  CHECK(reel_job_transition_allowed(P, F));
  CHECK(reel_job_transition_allowed(S, F));
  /* failure, cancel, retry */
  CHECK(reel_job_transition_allowed(S, X));
  CHECK(reel_job_transition_allowed(P, X));
  CHECK(reel_job_transition_allowed(Q, C));
  CHECK(reel_job_transition_allowed(S, C));
  CHECK(reel_job_transition_allowed(P, C));
  CHECK(reel_job_transition_allowed(P, Q));
  CHECK(reel_job_transition_allowed(S, Q));
  /* forbidden */
  CHECK(!reel_job_transition_allowed(Q, P));
  CHECK(!reel_job_transition_allowed(Q, F));
  CHECK(!reel_job_transition_allowed(S, S));
  CHECK(!reel_job_transition_allowed(P, S));
  for (int t = 0; t < REEL_JOB_STATUS_COUNT; t++) {
    CHECK(!reel_job_transition_allowed(F, (reel_job_status)t));
    CHECK(!reel_job_transition_allowed(X, (reel_job_status)t));
    CHECK(!reel_job_transition_allowed(C, (reel_job_status)t));
  }
  CHECK(!reel_job_transition_allowed((reel_job_status)99, Q));
  /* names round-trip */
  const char *names[] = {"queued", "started", "progress", "finished", "failed", "canceled"};
  for (int i = 0; i < REEL_JOB_STATUS_COUNT; i++) {
    CHECK_STR(reel_job_status_name((reel_job_status)i), names[i]);
    CHECK_INT(reel_job_status_parse(names[i]), i);
  }
  CHECK_INT(reel_job_status_parse("running"), -1);
  CHECK(reel_job_status_terminal(F) && reel_job_status_terminal(X) && reel_job_status_terminal(C));
  CHECK(!reel_job_status_terminal(Q) && !reel_job_status_terminal(S) && !reel_job_status_terminal(P));
  /* JSON shape: nulls where unset */
  reel_job j = {0};
  snprintf(j.id, sizeof j.id, "job_01ABCDEFGHJKMNPQRSTVWXYZ0");
  j.status = Q;
  j.created_ms = 1756643696000; /* 2025-08-31T12:34:56Z */
  json_t *o = reel_job_to_json(&j);
  CHECK_STR(json_string_value(json_object_get(o, "created_at")), "2025-08-31T12:34:56.000Z");
  CHECK(json_is_null(json_object_get(o, "started_at")));
  CHECK(json_is_null(json_object_get(o, "finished_at")));
  CHECK(json_is_null(json_object_get(o, "gcs_uri")));
  CHECK(json_is_null(json_object_get(o, "artifact_uri")));
  CHECK(json_is_null(json_object_get(o, "error")));
  CHECK(json_is_null(json_object_get(o, "stage")));
  CHECK_INT(json_integer_value(json_object_get(o, "progress")), 0);
  CHECK_STR(json_string_value(json_object_get(o, "status")), "queued");
  json_decref(o);
  return check_report();
}
