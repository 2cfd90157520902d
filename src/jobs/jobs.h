/* Job operations: every read and every status change of a job, as one tagged
 * operation that runs on the store thread (so it sees and changes the job
 * atomically, in a group-committed transaction) and reports back on the loop
 * thread. The API and the scheduler both go through here; nothing else
 * touches the store. */
#ifndef REEL_JOBS_H
#define REEL_JOBS_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "jobs/job.h"
#include "store/executor.h"

#define REEL_JOB_OP_MAP(XX)                                                       \
  XX(SUBMIT, "submit")     /* in: prompt               out: job                */ \
  XX(GET, "get")           /* in: id                   out: job                */ \
  XX(LIST, "list")         /* in: status, before_seq, limit  out: list, next_seq */ \
  XX(LOGS, "logs")         /* in: id, tail             out: lines              */ \
  XX(CANCEL, "cancel")     /* in: id                   out: job, was_running   */ \
  XX(CLAIM, "claim")       /* in: worker_id, lease_ms  out: job (started)      */ \
  XX(PROGRESS, "progress") /* in: id, progress, stage  out: job                */ \
  XX(LOG, "log")           /* in: id, text (lines separated by '\n')          */ \
  XX(FINISH, "finish")     /* in: id, artifact_key, artifact_uri, gcs_uri      */ \
  XX(FAIL, "fail")         /* in: id, text (error), reason                     */ \
  XX(RETRY, "retry")       /* in: id, text (error), delay_ms -> queued         */ \
  XX(CANCELED, "canceled") /* in: id: the worker stopped a cancelled job        */ \
  XX(RECOVER, "recover")   /* in: max_attempts: requeue or fail orphaned runs  */ \
  XX(COUNTS, "counts")     /* out: counts                                      */ \
  XX(PING, "ping")         /* in: probe: readiness round trip (a write if probe) */

typedef enum {
#define REEL_JOB_OP_ENUM_(name, text) REEL_JOB_OP_##name,
  REEL_JOB_OP_MAP(REEL_JOB_OP_ENUM_)
#undef REEL_JOB_OP_ENUM_
} reel_job_op_kind;

typedef struct reel_jobs reel_jobs;
typedef struct reel_job_op reel_job_op;

struct reel_job_op {
  reel_store_call call; /* internal */
  reel_jobs *jobs;      /* internal */
  reel_job_op_kind kind;
  /* inputs */
  char id[32];
  char *prompt;         /* SUBMIT (copied by reel_job_op_set_text) */
  char *text;           /* LOG line, FAIL/RETRY error */
  const char *reason;   /* FAIL: static label for metrics */
  char *artifact_key, *artifact_uri, *gcs_uri; /* FINISH */
  char *cost;           /* PROGRESS, FINISH, FAIL, RETRY, CANCELED: replaces the job's cost (JSON text) if set */
  int status_filter;    /* LIST: -1 for any */
  int64_t before_seq;   /* LIST: 0 from the newest */
  int limit;            /* LIST */
  int tail;             /* LOGS */
  int progress;         /* PROGRESS */
  char stage[64];       /* PROGRESS */
  int64_t delay_ms;     /* RETRY */
  int uncount_attempt;  /* RETRY: the run was interrupted by a shutdown, not a failure */
  char worker_id[64];   /* CLAIM */
  int64_t lease_ms;     /* CLAIM */
  int max_attempts;     /* RECOVER */
  int probe;            /* PING: write the probe row (proves the store can commit) */
  int cancel_orphan;    /* internal: CANCEL found no process running the job and ends it here */
  /* outputs */
  reel_job job;
  reel_job *list;
  int n_list;
  int64_t next_seq;     /* LIST: seq to continue from, 0 when no more */
  json_t *lines;        /* LOGS */
  int was_running;      /* CANCEL: the job was running; its worker must stop it */
  int requeued, failed; /* RECOVER */
  int64_t counts[REEL_JOB_STATUS_COUNT]; /* COUNTS, and SUBMIT (queue depth check) */
  /* completion, on the loop thread; result is 0 or a reel error:
   * REEL_ENOTFOUND unknown id, REEL_ECONFLICT transition not allowed,
   * REEL_EBUSY queue full (SUBMIT), REEL_ESTORE store failure. */
  void (*cb)(reel_job_op *op, int result);
  void *data;
};

/* Events reel_jobs reports on the loop thread after an operation commits. */
typedef struct {
  void (*submitted)(void *data); /* a job was queued */
  /* A running job must stop. Returns 0 when a run of this process is stopping
   * it, REEL_ENOTFOUND when no process of this reeld runs it (its run was
   * lost): the CANCEL then ends the job as canceled itself before answering,
   * so a cancel that says ok has taken effect. */
  int (*cancel_requested)(void *data, const char *job_id);
  void *data;
} reel_jobs_listener;

struct reel_jobs {
  reel_store_executor executor;
  reel_store *store;
  int max_queue_depth;
  size_t max_log_lines;
  reel_jobs_listener listener;
  /* store-thread only: cached counts by status (valid while this process is the only writer) */
  int64_t counts[REEL_JOB_STATUS_COUNT];
  int counts_valid;
  /* loop thread: the periodic store probe (reel_jobs_watch) */
  uv_timer_t probe_timer;
  int watching, probe_in_flight;
  int64_t last_probe_ms;
  reel_job_op probe_op;
};

/* Starts the store thread for store on loop. The store is owned by jobs from now on. */
int reel_jobs_init(reel_jobs *jobs, uv_loop_t *loop, reel_store *store, int max_queue_depth,
                   size_t max_log_lines);
/* Starts probing the store with a small write every few seconds (every
 * second while it is failing), so readiness notices a full disk or a deleted
 * database while no request writes, and notices recovery. */
void reel_jobs_watch(reel_jobs *jobs, uv_loop_t *loop);
/* Whether the store can commit: 0, or REEL_ESTORE with why (see
 * reel_store_executor_health). */
int reel_jobs_health(reel_jobs *jobs, char *msg, size_t msglen);
/* Finishes queued operations, stops the thread and closes the store. */
void reel_jobs_close(reel_jobs *jobs);

/* Prepares op for kind (zeroes inputs and outputs). */
void reel_job_op_init(reel_job_op *op, reel_job_op_kind kind);
/* Runs op; op->cb runs exactly once on the loop thread. op must stay alive until then. */
void reel_jobs_run(reel_jobs *jobs, reel_job_op *op);
/* Frees op's heap inputs and outputs (not op itself). */
void reel_job_op_cleanup(reel_job_op *op);

/* Retry delay before attempt number `attempt` (1 = first retry): exponential
 * from base_ms, capped at max_ms, with "equal jitter": half fixed, half
 * random by unit (0 <= unit < 1). */
int64_t reel_jobs_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, double unit);

#endif
