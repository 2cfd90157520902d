/* The job record and its transition table. Every status change in reel, by the
 * API, a worker or recovery, is checked against `allowed` below. */
#include "jobs/job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"

static const char *const status_names[] = {
#define REEL_JOB_NAME_(name, text) text,
    REEL_JOB_STATUS_MAP(REEL_JOB_NAME_)
#undef REEL_JOB_NAME_
};

/* allowed[from][to]:
 *   queued   -> started (claimed), canceled (cancel before start), failed (cannot run)
 *   started  -> progress, finished, failed, canceled, queued (retry / worker lost)
 *   progress -> progress, finished, failed, canceled, queued (retry / worker lost)
 *   terminal -> nothing */
static const unsigned char allowed[REEL_JOB_STATUS_COUNT][REEL_JOB_STATUS_COUNT] = {
    /*              queued started progress finished failed canceled */
    /* queued   */ {0, 1, 0, 0, 1, 1},
    /* started  */ {1, 0, 1, 1, 1, 1},
    /* progress */ {1, 0, 1, 1, 1, 1},
    /* finished */ {0, 0, 0, 0, 0, 0},
    /* failed   */ {0, 0, 0, 0, 0, 0},
    /* canceled */ {0, 0, 0, 0, 0, 0},
};

const char *reel_job_status_name(reel_job_status s) {
  return (unsigned)s < REEL_JOB_STATUS_COUNT ? status_names[s] : "unknown";
}

int reel_job_status_parse(const char *s) {
  for (int i = 0; i < REEL_JOB_STATUS_COUNT; i++)
    if (strcmp(s, status_names[i]) == 0) return i;
  return -1;
}

int reel_job_status_terminal(reel_job_status s) {
  return s == REEL_JOB_FINISHED || s == REEL_JOB_FAILED || s == REEL_JOB_CANCELED;
}

int reel_job_status_running(reel_job_status s) { return s == REEL_JOB_STARTED || s == REEL_JOB_PROGRESS; }

int reel_job_transition_allowed(reel_job_status from, reel_job_status to) {
  if ((unsigned)from >= REEL_JOB_STATUS_COUNT || (unsigned)to >= REEL_JOB_STATUS_COUNT) return 0;
  return allowed[from][to];
}

void reel_job_clear(reel_job *job) {
  free(job->prompt);
  free(job->artifact_key);
  free(job->artifact_uri);
  free(job->gcs_uri);
  free(job->error);
  free(job->failure_reason);
  free(job->cost);
  memset(job, 0, sizeof *job);
}

int reel_job_set_string(char **field, const char *value) {
  char *copy = NULL;
  if (value && !(copy = strdup(value))) return REEL_ENOMEM;
  free(*field);
  *field = copy;
  return 0;
}

int reel_job_copy(reel_job *dst, const reel_job *src) {
  *dst = *src;
  dst->prompt = dst->artifact_key = dst->artifact_uri = dst->gcs_uri = dst->error = dst->failure_reason = dst->cost = NULL;
  if (reel_job_set_string(&dst->prompt, src->prompt) || reel_job_set_string(&dst->artifact_key, src->artifact_key) ||
      reel_job_set_string(&dst->artifact_uri, src->artifact_uri) || reel_job_set_string(&dst->gcs_uri, src->gcs_uri) ||
      reel_job_set_string(&dst->error, src->error) ||
      reel_job_set_string(&dst->failure_reason, src->failure_reason) || reel_job_set_string(&dst->cost, src->cost)) {
    reel_job_clear(dst);
    return REEL_ENOMEM;
  }
  return 0;
}

static json_t *time_or_null(int64_t ms) {
  if (!ms) return json_null();
  char text[40];
  reel_rfc3339(ms, text, sizeof text);
  return json_string(text);
}

static json_t *string_or_null(const char *s) { return s && *s ? json_string(s) : json_null(); }

/* Rounds every real in a cost tree to milliseconds (three decimals): costs
 * are sums of reported amounts, and 1.636 should not read 1.6359999999999999. */
static void round_costs(json_t *value) {
  const char *key;
  json_t *child;
  if (json_is_real(value)) {
    json_real_set(value, round(json_real_value(value) * 1000.0) / 1000.0);
  } else if (json_is_object(value)) {
    json_object_foreach(value, key, child) round_costs(child);
  }
}

json_t *reel_job_artifact_uri_json(const reel_job *job) {
  const char *uri = job->artifact_uri;
  if (!uri || !*uri) return json_null();
  /* rows written before local storage said reel-local: kept "file:///KEY",
   * which names a file that exists nowhere */
  if (job->artifact_key && strncmp(uri, "file:///", 8) == 0 && strcmp(uri + 8, job->artifact_key) == 0) {
    char *shown = NULL;
    if (asprintf(&shown, "%s%s", REEL_LOCAL_URI_SCHEME, job->artifact_key) < 0) return NULL;
    json_t *text = json_string(shown);
    free(shown);
    return text;
  }
  return json_string(uri);
}

json_t *reel_job_to_json(const reel_job *job) {
  json_t *o = json_object();
  if (!o) return NULL;
  json_object_set_new(o, "id", json_string(job->id));
  json_object_set_new(o, "status", json_string(reel_job_status_name(job->status)));
  json_object_set_new(o, "prompt", job->prompt ? json_string(job->prompt) : json_null());
  json_object_set_new(o, "progress", json_integer(job->progress));
  json_object_set_new(o, "stage", string_or_null(job->stage));
  json_object_set_new(o, "created_at", time_or_null(job->created_ms));
  json_object_set_new(o, "started_at", time_or_null(job->started_ms));
  json_object_set_new(o, "finished_at", time_or_null(job->finished_ms));
  json_object_set_new(o, "gcs_uri", string_or_null(job->gcs_uri));
  json_object_set_new(o, "artifact_uri", reel_job_artifact_uri_json(job));
  json_object_set_new(o, "error", string_or_null(job->error));
  json_object_set_new(o, "attempts", json_integer(job->attempts));
  json_object_set_new(o, "node", string_or_null(job->node));
  json_t *cost = job->cost ? json_loads(job->cost, 0, NULL) : NULL;
  round_costs(cost);
  json_object_set_new(o, "cost", cost ? cost : json_null());
  return o;
}
