/* A job: one prompt and everything reel knows about running it, and the one
 * transition table every status change goes through. */
#ifndef REEL_JOB_H
#define REEL_JOB_H

#include <jansson.h>
#include <stdint.h>

/* Seed 000's status names. started/progress are "running"; the last three are terminal. */
#define REEL_JOB_STATUS_MAP(XX) \
  XX(QUEUED, "queued")          \
  XX(STARTED, "started")        \
  XX(PROGRESS, "progress")      \
  XX(FINISHED, "finished")      \
  XX(FAILED, "failed")          \
  XX(CANCELED, "canceled")

typedef enum {
#define REEL_JOB_ENUM_(name, text) REEL_JOB_##name,
  REEL_JOB_STATUS_MAP(REEL_JOB_ENUM_)
#undef REEL_JOB_ENUM_
  REEL_JOB_STATUS_COUNT
} reel_job_status;

typedef struct {
  int64_t seq;                /* store order; newer jobs have larger seq */
  int64_t version;            /* the row's version when read: advances with every write (store.h) */
  char id[32];                /* "job_" + 26 base32 chars */
  reel_job_status status;
  int progress;               /* 0..100 */
  int priority;               /* higher runs first; 0 by default (the submitting client's priority) */
  char client[64];            /* the client that submitted it (service.auth.clients name); "" for none */
  char queue[64];             /* the queue it waits in (SPEC section 9); "default" unless a pipeline names one */
  char stage[64];             /* "" when none */
  char *prompt;
  int64_t created_ms, started_ms, finished_ms, updated_ms; /* 0 = unset */
  int attempts;               /* runs started so far */
  int64_t run_after_ms;       /* a queued job is not claimed before this (retry backoff) */
  int cancel_requested;
  char *artifact_key;         /* storage key, e.g. "reel/2026-11/job_.../final_video.mp4" */
  char *artifact_uri;         /* reel-local:KEY, s3:// or gs:// URI shown to clients */
  char *gcs_uri;
  char *error;                /* human message when failed */
  char *failure_reason;       /* short label for metrics: "exit_status", "timeout", ... */
  char *cost;                 /* JSON object text: itemized cost of all runs so far, or NULL */
  char node[64];              /* the node that runs (while running) or ran the latest attempt; "" if none */
  int64_t lease_expires_ms;   /* while running: the claim lapses at this time by the store's clock */
} reel_job;

/* Name of a status as the API shows it. */
const char *reel_job_status_name(reel_job_status s);
/* Parses a status name; returns the status or -1. */
int reel_job_status_parse(const char *s);
/* True for finished, failed and canceled. */
int reel_job_status_terminal(reel_job_status s);
/* True for started and progress. */
int reel_job_status_running(reel_job_status s);
/* True when the transition table allows from -> to. */
int reel_job_transition_allowed(reel_job_status from, reel_job_status to);

/* Frees the strings a job owns and zeroes it. */
void reel_job_clear(reel_job *job);
/* Deep-copies src into dst (dst must be cleared/uninitialised). 0 or REEL_ENOMEM. */
int reel_job_copy(reel_job *dst, const reel_job *src);
/* Replaces a job's heap string field with a copy of value (NULL clears). */
int reel_job_set_string(char **field, const char *value);
/* The API representation (GET /v1/jobs/{id}): a new JSON object. Costs are
 * rounded to three decimals (print them with JSON_REAL_PRECISION(15) or more). */
json_t *reel_job_to_json(const reel_job *job);
/* The job's artifact_uri as clients see it: a JSON string, or null before the
 * job has an artifact (NULL on OOM). Local storage's objects are shown as
 * "reel-local:KEY", also for rows stored with the older "file:///KEY". */
json_t *reel_job_artifact_uri_json(const reel_job *job);
/* How local storage names an object in artifact_uri: "reel-local:" + its key. */
#define REEL_LOCAL_URI_SCHEME "reel-local:"

#endif
