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

#include "config/config.h"
#include "jobs/job.h"
#include "store/executor.h"
#include "store/store.h"

#define REEL_JOB_OP_MAP(XX)                                                        \
  XX(SUBMIT, "submit")     /* in: prompt, priority      out: job                 */ \
  XX(GET, "get")           /* in: id                    out: job                 */ \
  XX(LIST, "list")         /* in: status, before_seq, limit  out: list, next_seq  */ \
  XX(LOGS, "logs")         /* in: id, tail              out: lines               */ \
  XX(CANCEL, "cancel")     /* in: id                    out: job, was_running    */ \
  XX(CLAIM, "claim")       /* in: fence.node, lease_ms, limit  out: job, fence (limit <= 1) or list */ \
  XX(RENEW, "renew")       /* in: leases, fence.node, lease_ms  out: leases[].held */ \
  XX(PROGRESS, "progress") /* in: id, fence, progress, stage (and earlier stages)  out: job */ \
  XX(LOG, "log")           /* in: id, fence, text (lines separated by '\n')      */ \
  XX(FINISH, "finish")     /* in: id, fence, artifact_key, artifact_uri, gcs_uri  */ \
  XX(FAIL, "fail")         /* in: id, fence, text (error), reason                 */ \
  XX(RETRY, "retry")       /* in: id, fence, text (error), delay_ms -> queued     */ \
  XX(CANCELED, "canceled") /* in: id, fence: the run stopped for a cancel         */ \
  XX(RESCUE, "rescue")     /* in: max_attempts, all  out: rescued, requeued, failed */ \
  XX(PRUNE, "prune")       /* in: before_ms (0: no jobs), limit  out: deleted, deleted_keys */ \
  XX(COUNTS, "counts")     /* out: counts                                        */ \
  XX(EVENTS, "events")     /* in: id ("" for every job), after_id, limit  out: events, last_event_id */ \
  XX(PING, "ping")         /* in: probe: readiness round trip (a write if probe)  */ \
  XX(DELIVERIES_CLAIM, "deliveries_claim")   /* in: fence.node, lease_ms, limit  out: deliveries (with payloads) */ \
  XX(DELIVERY_RESULT, "delivery_result")     /* in: delivery, fence.node, disable_endpoint  out: held */ \
  XX(DELIVERIES_LIST, "deliveries_list")     /* in: before_seq, limit  out: deliveries, next_seq */

typedef enum {
#define REEL_JOB_OP_ENUM_(name, text) REEL_JOB_OP_##name,
  REEL_JOB_OP_MAP(REEL_JOB_OP_ENUM_)
#undef REEL_JOB_OP_ENUM_
} reel_job_op_kind;

/* Name of an operation kind ("claim"). */
const char *reel_job_op_name(reel_job_op_kind kind);

#define REEL_JOB_MAX_EARLIER_STAGES 16

typedef struct reel_jobs reel_jobs;
typedef struct reel_job_op reel_job_op;

/* One status change an operation made, reported after its commit. */
typedef struct {
  char id[32];
  reel_job_status from, to;
  int attempts;
  char node[64];
  char *error;                /* the job's error after the change (heap, or NULL) */
  char failure_reason[32];
  double run_seconds;         /* terminal: how long the last run took, or -1 if it never ran */
} reel_job_transition;

/* One held job in a RENEW. */
typedef struct {
  char id[32];
  int attempt;
  int held;                   /* out: the lease was extended (the job is still ours) */
  int cancel_requested;       /* out: a cancel was asked */
} reel_job_lease;

struct reel_job_op {
  reel_store_call call; /* internal */
  reel_jobs *jobs;      /* internal */
  reel_job_op_kind kind;
  /* inputs */
  char id[32];
  reel_fence fence;     /* worker writes: who runs the job; CLAIM/RENEW: fence.node is this node */
  char *prompt;         /* SUBMIT (heap; the job takes it) */
  char idem_key[256];   /* SUBMIT: the Idempotency-Key ("" for none), of idem_client, for this body */
  char idem_client[80];
  char body_sha256[65];
  int64_t idem_ttl_ms;
  int priority;         /* SUBMIT */
  char *text;           /* LOG line, FAIL/RETRY error */
  const char *reason;   /* FAIL: static label for metrics */
  char *artifact_key, *artifact_uri, *gcs_uri; /* FINISH */
  char *cost;           /* PROGRESS, FINISH, FAIL, RETRY, CANCELED: replaces the job's cost (JSON text) if set */
  int status_filter;    /* LIST: -1 for any */
  int64_t before_seq;   /* LIST: 0 from the newest */
  int limit;            /* LIST, PRUNE; CLAIM: how many jobs at most (<= 1: one, into job) */
  int tail;             /* LOGS */
  int progress;         /* PROGRESS: the latest progress (-1: unchanged) and stage ("": unchanged) */
  /* PROGRESS: stages the run went through before the latest, oldest first,
   * each recorded as its own job.progress event before it */
  struct {
    int progress;
    char stage[64];
  } earlier[REEL_JOB_MAX_EARLIER_STAGES];
  int n_earlier;
  char stage[64];       /* PROGRESS */
  int64_t delay_ms;     /* RETRY */
  int uncount_attempt;  /* RETRY: the run was interrupted by a shutdown, not a failure */
  int64_t lease_ms;     /* CLAIM, RENEW: lease length */
  reel_job_lease *leases; /* RENEW (caller-owned) */
  int n_leases;
  int max_attempts;     /* RESCUE */
  int all;              /* RESCUE: every running job is orphaned (the store is exclusive and this
                           process has started nothing yet), not only those whose lease expired */
  int64_t before_ms;    /* PRUNE: terminal jobs that finished before this */
  int probe;            /* PING: write the probe row (proves the store can commit) */
  int64_t after_id;     /* EVENTS: events with a larger id (-1: none, only last_event_id) */
  reel_delivery delivery; /* DELIVERY_RESULT: the attempt's outcome (id, attempts, status, next_attempt_ms,
                             last_status, last_error) */
  int disable_endpoint; /* DELIVERY_RESULT: the endpoint answered 410: disable it */
  int cancel_orphan;    /* internal: CANCEL found no process running the job and ends it here */
  /* outputs */
  reel_job job;
  reel_job *list;
  int n_list;
  int64_t next_seq;     /* LIST: seq to continue from, 0 when no more */
  json_t *lines;        /* LOGS */
  int was_running;      /* CANCEL: the job was running; its worker must stop it */
  int replayed;         /* SUBMIT: the key was seen with this body: job holds the earlier job's id and
                           created_ms, nothing was created */
  int key_reused;       /* SUBMIT: the key was seen with another body (result REEL_ECONFLICT) */
  int rescued, requeued, failed; /* RESCUE: jobs whose run was lost; of them requeued, failed */
  int deleted;          /* PRUNE: jobs */
  int deleted_keys;     /* PRUNE: expired Idempotency-Key records */
  int64_t counts[REEL_JOB_STATUS_COUNT]; /* COUNTS */
  reel_event *events;   /* EVENTS: n_read of them, oldest first */
  int n_read;
  int64_t last_event_id; /* EVENTS: the newest committed event id when the read ran */
  reel_delivery *deliveries; /* DELIVERIES_CLAIM, DELIVERIES_LIST: n_deliveries of them */
  int n_deliveries;
  int held;             /* DELIVERY_RESULT: the lease was still ours, the outcome was written */
  int n_events;         /* events this operation recorded (SPEC section 8) */
  int n_deliveries_queued; /* webhook deliveries it queued with them */
  reel_job_transition *transitions; /* the status changes made, published after the commit */
  int n_transitions, cap_transitions;
  /* completion, on the loop thread; result is 0 or a reel error:
   * REEL_ENOTFOUND unknown id, REEL_ECONFLICT transition not allowed,
   * REEL_ESTALE the run no longer holds the job (stop it, write nothing more),
   * REEL_EBUSY queue full (SUBMIT), REEL_ESTORE store failure. */
  void (*cb)(reel_job_op *op, int result);
  void *data;
};

/* Events reel_jobs reports on the loop thread after an operation commits. */
typedef struct {
  void (*submitted)(void *data); /* a job became claimable here (new, or requeued) */
  /* A running job must stop. Returns 0 when a run of this process is stopping
   * it (or another node may run it), REEL_ENOTFOUND when no process can run
   * it (the store is exclusive and no run of ours has it): the CANCEL then
   * ends the job as canceled itself before answering, so a cancel that says
   * ok has taken effect. */
  int (*cancel_requested)(void *data, const char *job_id);
  /* A job changed status (after the commit). Optional. */
  void (*transitioned)(void *data, const reel_job_transition *t);
  /* An operation committed events: readers may find new ones. Optional. */
  void (*events)(void *data);
  /* An operation committed webhook deliveries that may be due. Optional. */
  void (*deliveries)(void *data);
  void *data;
} reel_jobs_listener;

struct reel_jobs {
  reel_store_executor executor;
  reel_store *store;
  /* service.webhooks: every event of a type an endpoint wants also queues a
   * delivery to it, in the event's transaction (set before the first op) */
  const reel_webhook_endpoint *webhooks;
  int n_webhooks;
  int max_queue_depth;
  size_t max_log_lines;
  reel_jobs_listener listener;
  /* store-thread only: queued jobs as last counted in the store, plus those
   * queued here since (recounted every second, and in each batch near the
   * limit) */
  int64_t queued;
  int64_t queued_counted_ms;
  unsigned long long queued_batch;
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
