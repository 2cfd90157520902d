/* Job rules on top of the store: the transition table enforced on every write,
 * queue depth, retries, cancellation and crash recovery. Functions named run_*
 * execute on the store thread inside a group-committed transaction. */
#include "jobs/jobs.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "common/random.h"
#include "metrics/metrics.h"

static const char *const op_names[] = {
#define REEL_JOB_OP_NAME_(name, text) text,
    REEL_JOB_OP_MAP(REEL_JOB_OP_NAME_)
#undef REEL_JOB_OP_NAME_
};

static int ensure_counts(reel_jobs *jobs, reel_store *s) {
  if (jobs->counts_valid) return 0;
  int rc = s->ops->count_by_status(s, jobs->counts);
  if (rc == 0) jobs->counts_valid = 1;
  return rc;
}

/* Moves job to status `to` and writes it (with op's cost, if it carries one);
 * the only place a job's status changes. */
static int transition(reel_jobs *jobs, reel_store *s, const reel_job_op *op, reel_job *job, reel_job_status to) {
  reel_job_status from = job->status;
  if (op->cost && reel_job_set_string(&job->cost, op->cost)) return REEL_ENOMEM;
  if (!reel_job_transition_allowed(from, to)) return REEL_ECONFLICT;
  int64_t now = reel_now_ms();
  job->status = to;
  job->updated_ms = now;
  if (to == REEL_JOB_STARTED) job->started_ms = now;
  if (reel_job_status_terminal(to)) {
    job->finished_ms = now;
    job->worker_id[0] = '\0';
    job->lease_expires_ms = 0;
  }
  int rc = s->ops->update_job(s, job);
  if (rc != 0) return rc;
  if (jobs->counts_valid) {
    jobs->counts[from]--;
    jobs->counts[to]++;
  }
  if (from != to) {
    reel_log(REEL_LOG_INFO, "job transition", "{s:s, s:s, s:s, s:i, s:s?}", "job_id", job->id, "from",
             reel_job_status_name(from), "to", reel_job_status_name(to), "attempts", job->attempts,
             "error", to == REEL_JOB_FAILED || to == REEL_JOB_QUEUED ? job->error : NULL);
    if (reel_job_status_terminal(to)) {
      reel_metrics_job_ended(to, job->failure_reason,
                             job->started_ms ? (double)(now - job->started_ms) / 1000.0 : -1.0);
    }
  }
  return 0;
}

static int run_submit(reel_jobs *jobs, reel_store *s, reel_job_op *op) {
  int rc = ensure_counts(jobs, s);
  if (rc) return rc;
  memcpy(op->counts, jobs->counts, sizeof op->counts);
  if (jobs->counts[REEL_JOB_QUEUED] >= jobs->max_queue_depth) return REEL_EBUSY;
  reel_job *j = &op->job;
  memset(j, 0, sizeof *j);
  j->created_ms = j->updated_ms = reel_now_ms();
  reel_job_id_new(j->created_ms, j->id);
  j->status = REEL_JOB_QUEUED;
  j->prompt = op->prompt;
  op->prompt = NULL;
  rc = s->ops->insert_job(s, j);
  if (rc) return rc;
  jobs->counts[REEL_JOB_QUEUED]++;
  memcpy(op->id, j->id, sizeof op->id);
  return 0;
}

static int run_list(reel_store *s, reel_job_op *op) {
  if (op->limit < 1) op->limit = 1;
  op->list = calloc((size_t)op->limit + 1, sizeof *op->list);
  if (!op->list) return REEL_ENOMEM;
  int n = 0;
  int rc = s->ops->list_jobs(s, op->status_filter, op->before_seq, op->limit + 1, op->list, &n);
  if (rc) return rc;
  op->next_seq = 0;
  if (n > op->limit) {
    op->next_seq = op->list[op->limit - 1].seq;
    reel_job_clear(&op->list[op->limit]);
    n = op->limit;
  }
  op->n_list = n;
  return 0;
}

static int run_logs(reel_store *s, reel_job_op *op) {
  int rc = s->ops->get_job(s, op->id, &op->job);
  if (rc) return rc;
  op->lines = json_array();
  if (!op->lines) return REEL_ENOMEM;
  return op->tail > 0 ? s->ops->tail_logs(s, op->id, op->tail, op->lines) : 0;
}

static int run_cancel(reel_jobs *jobs, reel_store *s, reel_job_op *op) {
  reel_job *j = &op->job;
  int rc = s->ops->get_job(s, op->id, j);
  if (rc) return rc;
  if (reel_job_status_terminal(j->status)) return REEL_ECONFLICT;
  if (j->status == REEL_JOB_QUEUED) {
    j->cancel_requested = 1;
    return transition(jobs, s, op, j, REEL_JOB_CANCELED);
  }
  op->was_running = 1;
  if (j->cancel_requested) return 0;
  j->cancel_requested = 1;
  j->updated_ms = reel_now_ms();
  return s->ops->update_job(s, j);
}

static int run_claim(reel_jobs *jobs, reel_store *s, reel_job_op *op) {
  reel_job *j = &op->job;
  int64_t now = reel_now_ms();
  int rc = s->ops->next_runnable(s, now, j);
  if (rc) return rc;
  j->attempts++;
  j->progress = 0;
  j->stage[0] = '\0';
  snprintf(j->worker_id, sizeof j->worker_id, "%s", op->worker_id);
  j->lease_expires_ms = now + op->lease_ms;
  rc = transition(jobs, s, op, j, REEL_JOB_STARTED);
  return rc;
}

static int run_progress(reel_jobs *jobs, reel_store *s, reel_job_op *op) {
  reel_job *j = &op->job;
  int rc = s->ops->get_job(s, op->id, j);
  if (rc) return rc;
  if (!reel_job_status_running(j->status)) return REEL_ECONFLICT;
  if (op->progress >= 0) j->progress = op->progress > 100 ? 100 : op->progress;
  if (op->stage[0]) memcpy(j->stage, op->stage, sizeof j->stage);
  return transition(jobs, s, op, j, REEL_JOB_PROGRESS);
}

static int run_finish(reel_jobs *jobs, reel_store *s, reel_job_op *op) {
  reel_job *j = &op->job;
  int rc = s->ops->get_job(s, op->id, j);
  if (rc) return rc;
  if (reel_job_set_string(&j->artifact_key, op->artifact_key) ||
      reel_job_set_string(&j->artifact_uri, op->artifact_uri) || reel_job_set_string(&j->gcs_uri, op->gcs_uri))
    return REEL_ENOMEM;
  j->progress = 100;
  snprintf(j->stage, sizeof j->stage, "upload"); /* seed 000's last milestone: the artifact is stored */
  reel_job_set_string(&j->error, NULL);
  return transition(jobs, s, op, j, REEL_JOB_FINISHED);
}

static int run_fail(reel_jobs *jobs, reel_store *s, reel_job_op *op) {
  reel_job *j = &op->job;
  int rc = s->ops->get_job(s, op->id, j);
  if (rc) return rc;
  if (reel_job_set_string(&j->error, op->text) || reel_job_set_string(&j->failure_reason, op->reason))
    return REEL_ENOMEM;
  return transition(jobs, s, op, j, REEL_JOB_FAILED);
}

static int run_retry(reel_jobs *jobs, reel_store *s, reel_job_op *op) {
  reel_job *j = &op->job;
  int rc = s->ops->get_job(s, op->id, j);
  if (rc) return rc;
  if (j->cancel_requested) return REEL_ECONFLICT;
  if (reel_job_set_string(&j->error, op->text)) return REEL_ENOMEM;
  if (op->uncount_attempt && j->attempts > 0) j->attempts--;
  j->run_after_ms = reel_now_ms() + op->delay_ms;
  j->worker_id[0] = '\0';
  j->lease_expires_ms = 0;
  return transition(jobs, s, op, j, REEL_JOB_QUEUED);
}

static int run_canceled(reel_jobs *jobs, reel_store *s, reel_job_op *op) {
  reel_job *j = &op->job;
  int rc = s->ops->get_job(s, op->id, j);
  if (rc) return rc;
  reel_job_set_string(&j->failure_reason, "canceled");
  return transition(jobs, s, op, j, REEL_JOB_CANCELED);
}

/* A job found running at start-up lost its process: cancel it if that was
 * asked, otherwise requeue it while attempts remain, else fail it. */
static int run_recover(reel_jobs *jobs, reel_store *s, reel_job_op *op) {
  enum { PAGE = 256 };
  reel_job *page = calloc(PAGE, sizeof *page);
  if (!page) return REEL_ENOMEM;
  int rc = 0;
  for (int status = REEL_JOB_STARTED; status <= REEL_JOB_PROGRESS && rc == 0; status++) {
    for (;;) {
      int n = 0;
      rc = s->ops->list_jobs(s, status, 0, PAGE, page, &n);
      for (int i = 0; i < n && rc == 0; i++) {
        reel_job *j = &page[i];
        if (j->cancel_requested) {
          reel_job_set_string(&j->failure_reason, "canceled");
          rc = transition(jobs, s, op, j, REEL_JOB_CANCELED);
        } else if (j->attempts >= op->max_attempts) {
          char msg[160];
          snprintf(msg, sizeof msg, "the worker running this job stopped unexpectedly and all %d attempts are used",
                   op->max_attempts);
          reel_job_set_string(&j->error, msg);
          reel_job_set_string(&j->failure_reason, "worker_lost");
          rc = transition(jobs, s, op, j, REEL_JOB_FAILED);
          op->failed++;
        } else {
          reel_job_set_string(&j->error, "the worker running this job stopped unexpectedly; requeued");
          j->run_after_ms = 0;
          rc = transition(jobs, s, op, j, REEL_JOB_QUEUED);
          op->requeued++;
        }
      }
      for (int i = 0; i < n; i++) reel_job_clear(&page[i]);
      if (n < PAGE || rc) break;
    }
  }
  free(page);
  return rc;
}

static int run_log(reel_jobs *jobs, reel_store *s, reel_job_op *op) {
  char *line = op->text;
  while (line && *line) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    int rc = s->ops->append_log(s, op->id, line, jobs->max_log_lines);
    if (nl) *nl = '\n';
    if (rc) return rc;
    line = nl ? nl + 1 : NULL;
  }
  return 0;
}

static int run_op(reel_store *s, reel_store_call *call) {
  reel_job_op *op = (reel_job_op *)call; /* call is the first member */
  reel_jobs *jobs = op->jobs;
  switch (op->kind) {
  case REEL_JOB_OP_SUBMIT: return run_submit(jobs, s, op);
  case REEL_JOB_OP_GET: return s->ops->get_job(s, op->id, &op->job);
  case REEL_JOB_OP_LIST: return run_list(s, op);
  case REEL_JOB_OP_LOGS: return run_logs(s, op);
  case REEL_JOB_OP_CANCEL: return run_cancel(jobs, s, op);
  case REEL_JOB_OP_CLAIM: return run_claim(jobs, s, op);
  case REEL_JOB_OP_PROGRESS: return run_progress(jobs, s, op);
  case REEL_JOB_OP_LOG: return run_log(jobs, s, op);
  case REEL_JOB_OP_FINISH: return run_finish(jobs, s, op);
  case REEL_JOB_OP_FAIL: return run_fail(jobs, s, op);
  case REEL_JOB_OP_RETRY: return run_retry(jobs, s, op);
  case REEL_JOB_OP_CANCELED: return run_canceled(jobs, s, op);
  case REEL_JOB_OP_RECOVER: return run_recover(jobs, s, op);
  case REEL_JOB_OP_COUNTS: {
    int rc = ensure_counts(jobs, s);
    if (rc == 0) memcpy(op->counts, jobs->counts, sizeof op->counts);
    return rc;
  }
  case REEL_JOB_OP_PING:
    if (!op->probe) return s->ops->ping(s);
    op->call.writes = 1;
    return s->ops->probe(s, reel_now_ms());
  }
  return REEL_EINVAL;
}

static void op_done(reel_store_call *call, int result) {
  reel_job_op *op = (reel_job_op *)call;
  reel_jobs *jobs = op->jobs;
  if (op->cancel_orphan) { /* the second half of a CANCEL: the job was ended here */
    op->cancel_orphan = 0;
    op->kind = REEL_JOB_OP_CANCEL;
    if (result == 0)
      reel_log(REEL_LOG_WARN, "canceled a job no process was running", "{s:s}", "job_id", op->id);
  } else if (result == 0 && op->kind == REEL_JOB_OP_CANCEL && op->was_running && jobs->listener.cancel_requested &&
             jobs->listener.cancel_requested(jobs->listener.data, op->id) == REEL_ENOTFOUND) {
    /* nothing of ours runs it, so nothing else would ever end it: end it now */
    reel_job_clear(&op->job);
    op->kind = REEL_JOB_OP_CANCELED;
    op->cancel_orphan = 1;
    reel_jobs_run(jobs, op);
    return;
  }
  if (result == REEL_ESTORE && op->kind != REEL_JOB_OP_PING) /* the executor logs the cause of store failures */
    reel_log(REEL_LOG_ERROR, "job operation failed", "{s:s, s:s}", "op", op_names[op->kind], "job_id", op->id);
  if (result == 0 && op->kind == REEL_JOB_OP_SUBMIT && jobs->listener.submitted)
    jobs->listener.submitted(jobs->listener.data);
  if (result == 0 && op->kind == REEL_JOB_OP_RETRY && jobs->listener.submitted)
    jobs->listener.submitted(jobs->listener.data);
  op->cb(op, result);
}

static void invalidate_counts(void *data) { ((reel_jobs *)data)->counts_valid = 0; }

int reel_jobs_init(reel_jobs *jobs, uv_loop_t *loop, reel_store *store, int max_queue_depth,
                   size_t max_log_lines) {
  memset(jobs, 0, sizeof *jobs);
  jobs->store = store;
  jobs->max_queue_depth = max_queue_depth;
  jobs->max_log_lines = max_log_lines;
  jobs->executor.on_commit_failure = invalidate_counts;
  jobs->executor.on_commit_failure_data = jobs;
  return reel_store_executor_start(&jobs->executor, loop, store);
}

/* ---- the periodic probe ---- */

#define PROBE_HEALTHY_MS 5000 /* between probes while the store commits */
#define PROBE_TICK_MS 1000    /* the timer; also the interval while it fails */

static void probe_done(reel_job_op *op, int result) {
  (void)result;
  reel_jobs *jobs = op->data;
  jobs->probe_in_flight = 0;
}

static void on_probe_tick(uv_timer_t *t) {
  reel_jobs *jobs = t->data;
  if (jobs->probe_in_flight) return;
  char msg[8];
  int64_t now = reel_now_ms();
  int healthy = reel_store_executor_health(&jobs->executor, msg, sizeof msg) == 0;
  if (healthy && now - jobs->last_probe_ms < PROBE_HEALTHY_MS) return;
  jobs->last_probe_ms = now;
  reel_job_op_init(&jobs->probe_op, REEL_JOB_OP_PING);
  jobs->probe_op.probe = 1;
  jobs->probe_op.cb = probe_done;
  jobs->probe_op.data = jobs;
  jobs->probe_in_flight = 1;
  reel_jobs_run(jobs, &jobs->probe_op);
}

void reel_jobs_watch(reel_jobs *jobs, uv_loop_t *loop) {
  if (jobs->watching) return;
  uv_timer_init(loop, &jobs->probe_timer);
  jobs->probe_timer.data = jobs;
  uv_timer_start(&jobs->probe_timer, on_probe_tick, PROBE_TICK_MS, PROBE_TICK_MS);
  uv_unref((uv_handle_t *)&jobs->probe_timer); /* never what keeps the loop running */
  jobs->watching = 1;
  jobs->last_probe_ms = reel_now_ms();
}

int reel_jobs_health(reel_jobs *jobs, char *msg, size_t msglen) {
  return reel_store_executor_health(&jobs->executor, msg, msglen);
}

void reel_jobs_close(reel_jobs *jobs) {
  if (jobs->watching) {
    uv_timer_stop(&jobs->probe_timer);
    uv_close((uv_handle_t *)&jobs->probe_timer, NULL);
    jobs->watching = 0;
  }
  reel_store_executor_stop(&jobs->executor);
  if (jobs->store) jobs->store->ops->close(jobs->store);
  jobs->store = NULL;
}

void reel_job_op_init(reel_job_op *op, reel_job_op_kind kind) {
  memset(op, 0, sizeof *op);
  op->kind = kind;
  op->status_filter = -1;
  op->progress = -1;
}

void reel_jobs_run(reel_jobs *jobs, reel_job_op *op) {
  op->jobs = jobs;
  op->call.writes = op->kind != REEL_JOB_OP_GET && op->kind != REEL_JOB_OP_LIST && op->kind != REEL_JOB_OP_LOGS &&
                    op->kind != REEL_JOB_OP_COUNTS && op->kind != REEL_JOB_OP_PING;
  op->call.run = run_op;
  op->call.done = op_done;
  reel_store_executor_submit(&jobs->executor, &op->call);
}

void reel_job_op_cleanup(reel_job_op *op) {
  free(op->prompt);
  free(op->text);
  free(op->artifact_key);
  free(op->artifact_uri);
  free(op->gcs_uri);
  free(op->cost);
  reel_job_clear(&op->job);
  for (int i = 0; i < op->n_list; i++) reel_job_clear(&op->list[i]);
  free(op->list);
  json_decref(op->lines);
  op->prompt = op->text = op->artifact_key = op->artifact_uri = op->gcs_uri = op->cost = NULL;
  op->list = NULL;
  op->n_list = 0;
  op->lines = NULL;
}

int64_t reel_jobs_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, double unit) {
  if (attempt < 1) attempt = 1;
  int64_t delay = base_ms;
  for (int i = 1; i < attempt && delay < max_ms; i++) delay *= 2;
  if (delay > max_ms) delay = max_ms;
  int64_t half = delay / 2;
  return half + (int64_t)((double)(delay - half) * unit);
}
