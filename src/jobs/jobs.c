/* Job rules on top of the store: the transition table enforced on every write,
 * fencing of every write a run makes, leases, queue depth, retries,
 * cancellation and the rescue of lost runs. Functions named run_* execute on
 * the store thread inside a group-committed transaction and only record what
 * they changed; publish() makes it visible on the loop thread after the
 * commit. */
#include "jobs/jobs.h"

#include "events/hub.h"

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

const char *reel_job_op_name(reel_job_op_kind kind) {
  return (unsigned)kind < sizeof op_names / sizeof *op_names ? op_names[kind] : "?";
}

/* Notes a status change in op, to be published once the batch committed. */
static int note_transition(reel_job_op *op, const reel_job *job, reel_job_status from, double run_seconds) {
  if (op->n_transitions == op->cap_transitions) {
    int cap = op->cap_transitions ? op->cap_transitions * 2 : 2;
    reel_job_transition *grown = realloc(op->transitions, (size_t)cap * sizeof *grown);
    if (!grown) return REEL_ENOMEM;
    op->transitions = grown;
    op->cap_transitions = cap;
  }
  reel_job_transition *t = &op->transitions[op->n_transitions];
  memset(t, 0, sizeof *t);
  memcpy(t->id, job->id, sizeof t->id);
  t->from = from;
  t->to = job->status;
  t->attempts = job->attempts;
  memcpy(t->node, job->node, sizeof t->node);
  snprintf(t->failure_reason, sizeof t->failure_reason, "%s", job->failure_reason ? job->failure_reason : "");
  t->run_seconds = run_seconds;
  if (job->error && !(t->error = strdup(job->error))) return REEL_ENOMEM;
  op->n_transitions++;
  return 0;
}

static void clear_transitions(reel_job_op *op) {
  for (int i = 0; i < op->n_transitions; i++) free(op->transitions[i].error);
  free(op->transitions);
  op->transitions = NULL;
  op->n_transitions = op->cap_transitions = 0;
}

/* The webhook outbox (SPEC section 8): one delivery per endpoint that wants
 * the event's type, committed with the event. Its body is {"type",
 * "timestamp", "data"}; its id (the webhook-id) is fixed here, so every
 * attempt carries the same one. */
static int queue_deliveries(reel_store *s, reel_job_op *op, const reel_job *job, const char *type, int64_t now,
                            json_t *data) {
  reel_jobs *jobs = op->jobs;
  unsigned bit = reel_event_type_bit(type);
  char *payload = NULL;
  int rc = 0;
  for (int i = 0; i < jobs->n_webhooks && rc == 0; i++) {
    const reel_webhook_endpoint *w = &jobs->webhooks[i];
    if (!(w->events & bit)) continue;
    if (!payload) {
      char at[40];
      reel_rfc3339(now, at, sizeof at);
      json_t *body = json_pack("{s:s, s:s, s:O}", "type", type, "timestamp", at, "data", data);
      payload = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
      json_decref(body);
      if (!payload) return REEL_ENOMEM;
    }
    reel_delivery d;
    memset(&d, 0, sizeof d);
    char id[32];
    reel_job_id_new(now, id);
    snprintf(d.id, sizeof d.id, "msg_%s", id + 4);
    snprintf(d.endpoint, sizeof d.endpoint, "%s", w->url);
    snprintf(d.event_type, sizeof d.event_type, "%s", type);
    memcpy(d.job_id, job->id, sizeof d.job_id);
    d.payload = payload;
    d.created_ms = now;
    d.next_attempt_ms = now + (int64_t)(w->n_retry > 0 ? w->retry_schedule[0] * 1000 : 0);
    rc = reel_store_insert_delivery(s, &d);
    if (rc == 0) op->n_deliveries_queued++;
  }
  free(payload);
  return rc;
}

/* Records one event of job in the open transaction (type as in SPEC section
 * 8); data is the job's API form unless given. Counted in op, so its
 * publication wakes the event readers after the commit. */
static int emit_event(reel_store *s, reel_job_op *op, const reel_job *job, const char *type, json_t *data) {
  if (!data) data = reel_job_to_json(job);
  char *text = data ? json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
  if (!text) {
    json_decref(data);
    return REEL_ENOMEM;
  }
  int64_t now = reel_now_ms();
  int rc = reel_store_append_event(s, job->id, type, now, text);
  free(text);
  if (rc == 0) op->n_events++;
  if (rc == 0) rc = queue_deliveries(s, op, job, type, now, data);
  json_decref(data);
  return rc;
}

/* The event a status change makes, or NULL (progress has its own). */
static const char *transition_event(reel_job_status from, reel_job_status to) {
  switch (to) {
  case REEL_JOB_STARTED: return "job.started";
  case REEL_JOB_QUEUED: return reel_job_status_running(from) ? "job.retrying" : NULL;
  case REEL_JOB_FINISHED: return "job.finished";
  case REEL_JOB_FAILED: return "job.failed";
  case REEL_JOB_CANCELED: return "job.canceled";
  default: return NULL;
  }
}

/* Moves job to status `to` and writes it (with op's cost, if it carries one);
 * the only place a job's status changes. The write lands only on the row as
 * it was read (REEL_ESTALE otherwise). */
static int transition(reel_store *s, reel_job_op *op, reel_job *job, reel_job_status to) {
  reel_job_status from = job->status;
  if (op->cost && reel_job_set_string(&job->cost, op->cost)) return REEL_ENOMEM;
  if (!reel_job_transition_allowed(from, to)) return REEL_ECONFLICT;
  int64_t now = reel_now_ms();
  job->status = to;
  job->updated_ms = now;
  if (to == REEL_JOB_STARTED) job->started_ms = now;
  if (reel_job_status_terminal(to)) {
    job->finished_ms = now;
    job->lease_expires_ms = 0;
  }
  if (to == REEL_JOB_QUEUED) job->lease_expires_ms = 0;
  int rc = reel_store_write_job(s, job);
  if (rc != 0 || from == to) return rc;
  const char *event = transition_event(from, to);
  if (event && (rc = emit_event(s, op, job, event, NULL)) != 0) return rc;
  double run_seconds = reel_job_status_terminal(to) && job->started_ms ? (double)(now - job->started_ms) / 1000.0 : -1.0;
  return note_transition(op, job, from, run_seconds);
}

/* A worker's write for a run: the job must still be running, held by the
 * node and attempt that claimed it. */
static int check_fence(const reel_job *job, const reel_fence *fence) {
  if (!reel_job_status_running(job->status) || strcmp(job->node, fence->node) != 0 || job->attempts != fence->attempt)
    return REEL_ESTALE;
  return 0;
}

/* Reads op->id into op->job for a write by the run op->fence names. */
static int get_fenced(reel_store *s, reel_job_op *op) {
  int rc = reel_store_get_job(s, op->id, &op->job);
  return rc ? rc : check_fence(&op->job, &op->fence);
}

#define QUEUE_RECOUNT_MS 1000

/* A SUBMIT whose key is on record: the earlier job again (same body), or a
 * conflict (another body). */
static void apply_key_record(reel_job_op *op, const reel_idempotency *rec) {
  if (strcmp(rec->body_sha256, op->body_sha256) != 0) {
    op->key_reused = 1;
    op->call.result = REEL_ECONFLICT;
    return;
  }
  op->replayed = 1;
  memset(&op->job, 0, sizeof op->job);
  memcpy(op->job.id, rec->job_id, sizeof op->job.id);
  memcpy(op->id, rec->job_id, sizeof op->id);
  op->job.created_ms = rec->created_ms;
  op->job.status = REEL_JOB_QUEUED;
  op->call.result = 0;
}

/* Looks up op's Idempotency-Key. 1 when it is on record (op is answered),
 * 0 when it is free, or a store error. */
static int key_on_record(reel_store *s, reel_job_op *op, int64_t now) {
  reel_idempotency rec;
  int rc = reel_store_get_idempotency(s, op->idem_client, op->idem_key, now, &rec);
  if (rc == REEL_ENOTFOUND) return 0;
  if (rc) return rc;
  apply_key_record(op, &rec);
  return 1;
}

/* Records op's key for its new job j. 1 when another request took the key
 * first (op is answered from its record), 0 when stored, or a store error. */
static int claim_key(reel_store *s, reel_job_op *op, const reel_job *j, int64_t now) {
  reel_idempotency rec = {0};
  snprintf(rec.client, sizeof rec.client, "%s", op->idem_client);
  snprintf(rec.key, sizeof rec.key, "%s", op->idem_key);
  memcpy(rec.body_sha256, op->body_sha256, sizeof rec.body_sha256);
  memcpy(rec.job_id, j->id, sizeof rec.job_id);
  rec.created_ms = j->created_ms;
  rec.expires_ms = now + op->idem_ttl_ms;
  int stored = 0;
  int rc = reel_store_put_idempotency(s, &rec, now, &stored);
  if (rc || stored) return rc;
  rc = key_on_record(s, op, now); /* a request on another node committed it meanwhile */
  return rc == 0 ? REEL_ESTORE : rc;
}

/* Every SUBMIT of a batch, as one insert (store/executor.h's run_many). The
 * queue depth comes from the store (a count bounded by the limit, so its
 * cost is too); those over the limit get REEL_EBUSY. */
static int run_submits(reel_store *s, reel_store_call **calls, int n) {
  reel_job_op *first = (reel_job_op *)calls[0];
  reel_jobs *jobs = first->jobs;
  int64_t now = reel_now_ms();
  /* counted again at most every QUEUE_RECOUNT_MS, and in every batch once
   * the queue is near its limit: far from it the estimate (the last count
   * plus what this process queued since) decides nothing */
  int near_limit = jobs->queued + n >= jobs->max_queue_depth - jobs->max_queue_depth / 10;
  if (!jobs->queued_counted_ms || now - jobs->queued_counted_ms >= QUEUE_RECOUNT_MS ||
      (near_limit && jobs->queued_batch != jobs->executor.batch_number)) {
    int rc = reel_store_count_queued(s, jobs->max_queue_depth, &jobs->queued);
    if (rc) return rc;
    jobs->queued_batch = jobs->executor.batch_number;
    jobs->queued_counted_ms = now;
  }
  reel_job **batch = malloc((size_t)n * sizeof *batch);
  if (!batch) return REEL_ENOMEM;
  int64_t store_now = 0;
  int accepted = 0, rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    reel_job_op *op = (reel_job_op *)calls[i];
    clear_transitions(op);
    op->replayed = op->key_reused = 0;
    if (op->idem_key[0]) { /* a repeated request is answered even when the queue is full */
      if (!store_now && (store_now = reel_store_clock_ms(s)) <= 0) rc = REEL_ESTORE;
      int seen = rc ? rc : key_on_record(s, op, store_now);
      if (seen == 1) continue;
      if (seen != 0) rc = seen;
      if (rc) break;
    }
    op->counts[REEL_JOB_QUEUED] = jobs->queued + accepted;
    if (jobs->queued + accepted >= jobs->max_queue_depth) {
      op->call.result = REEL_EBUSY;
      continue;
    }
    reel_job *j = &op->job;
    memset(j, 0, sizeof *j);
    j->created_ms = j->updated_ms = now;
    reel_job_id_new(j->created_ms, j->id);
    j->status = REEL_JOB_QUEUED;
    j->priority = op->priority;
    j->prompt = op->prompt; /* the job owns it now; op->prompt stays for a store failure's log */
    memcpy(op->id, j->id, sizeof op->id);
    op->call.result = 0;
    if (op->idem_key[0]) {
      int taken = claim_key(s, op, j, store_now);
      if (taken) {
        j->prompt = NULL;
        if (taken == 1) continue; /* answered from the other request's record */
        rc = taken;
        break;
      }
    }
    batch[accepted++] = j;
  }
  if (rc == 0 && accepted) rc = reel_store_insert_jobs(s, batch, accepted);
  for (int i = 0; i < n && rc == 0; i++) {
    reel_job_op *op = (reel_job_op *)calls[i];
    op->n_events = 0;
    if (op->call.result == 0 && !op->replayed) rc = emit_event(s, op, &op->job, "job.created", NULL);
  }
  if (rc == 0 && accepted) rc = reel_store_notify(s, REEL_STORE_CHANNEL_JOBS, "");
  for (int i = 0; i < n; i++) { /* the prompt belongs to exactly one of op and job */
    reel_job_op *op = (reel_job_op *)calls[i];
    if (op->call.result == 0 && op->job.prompt == op->prompt) op->prompt = NULL;
  }
  free(batch);
  if (rc) return rc;
  jobs->queued += accepted;
  return 0;
}

static int run_list(reel_store *s, reel_job_op *op) {
  if (op->limit < 1) op->limit = 1;
  op->list = calloc((size_t)op->limit + 1, sizeof *op->list);
  if (!op->list) return REEL_ENOMEM;
  int n = 0;
  int rc = reel_store_list_jobs(s, op->status_filter, op->before_seq, op->limit + 1, op->list, &n);
  op->n_list = n;
  if (rc) return rc;
  op->next_seq = 0;
  if (n > op->limit) {
    op->next_seq = op->list[op->limit - 1].seq;
    reel_job_clear(&op->list[op->limit]);
    op->n_list = op->limit;
  }
  return 0;
}

static int run_logs(reel_store *s, reel_job_op *op) {
  int rc = reel_store_read_job(s, op->id, &op->job);
  if (rc) return rc;
  op->lines = json_array();
  if (!op->lines) return REEL_ENOMEM;
  return op->tail > 0 ? reel_store_tail_logs(s, op->id, op->tail, op->lines) : 0;
}

static void clear_deliveries(reel_job_op *op) {
  for (int i = 0; i < op->n_deliveries; i++) free(op->deliveries[i].payload);
  free(op->deliveries);
  op->deliveries = NULL;
  op->n_deliveries = 0;
}

static void clear_read_events(reel_job_op *op) {
  for (int i = 0; i < op->n_read; i++) reel_event_clear(&op->events[i]);
  free(op->events);
  op->events = NULL;
  op->n_read = 0;
}

static int run_events(reel_store *s, reel_job_op *op) {
  int rc = reel_store_last_event_id(s, &op->last_event_id);
  if (rc || op->after_id < 0) return rc;
  if (op->limit < 1) op->limit = 1;
  op->events = calloc((size_t)op->limit, sizeof *op->events);
  if (!op->events) return REEL_ENOMEM;
  return reel_store_read_events(s, op->after_id, op->id[0] ? op->id : NULL, op->limit, op->events, &op->n_read);
}

/* Retention: old terminal jobs (with their logs and events), and expired
 * Idempotency-Key records, each bounded by limit. */
static int run_prune(reel_store *s, reel_job_op *op) {
  int rc = op->before_ms > 0 ? reel_store_delete_finished(s, op->before_ms, op->limit, &op->deleted) : 0;
  if (rc) return rc;
  int64_t now = reel_store_clock_ms(s);
  if (now <= 0) return REEL_ESTORE;
  return reel_store_delete_expired_idempotency(s, now, op->limit, &op->deleted_keys);
}

/* Takes due deliveries for this node, each with its payload. */
static int run_deliveries_claim(reel_store *s, reel_job_op *op) {
  int64_t now = reel_store_clock_ms(s);
  if (now <= 0) return REEL_ESTORE;
  if (op->limit < 1) op->limit = 1;
  op->deliveries = calloc((size_t)op->limit, sizeof *op->deliveries);
  if (!op->deliveries) return REEL_ENOMEM;
  int rc = reel_store_claim_deliveries(s, op->fence.node, now, now + op->lease_ms, op->limit, op->deliveries,
                                       &op->n_deliveries);
  for (int i = 0; i < op->n_deliveries && rc == 0; i++) {
    rc = reel_store_read_delivery_payload(s, op->deliveries[i].id, &op->deliveries[i].payload);
    if (rc == 0) rc = reel_store_endpoint_disabled(s, op->deliveries[i].endpoint, &op->deliveries[i].endpoint_disabled_ms);
  }
  return rc;
}

static int run_delivery_result(reel_store *s, reel_job_op *op) {
  int64_t now = reel_store_clock_ms(s);
  if (now <= 0) return REEL_ESTORE;
  int rc = reel_store_finish_delivery(s, &op->delivery, op->fence.node, now, &op->held);
  if (rc == 0 && op->held && op->disable_endpoint)
    rc = reel_store_disable_endpoint(s, op->delivery.endpoint, now, "answered 410 Gone");
  return rc;
}

static int run_deliveries_list(reel_store *s, reel_job_op *op) {
  if (op->limit < 1) op->limit = 1;
  op->deliveries = calloc((size_t)op->limit + 1, sizeof *op->deliveries);
  if (!op->deliveries) return REEL_ENOMEM;
  int rc = reel_store_list_deliveries(s, op->before_seq, op->limit + 1, op->deliveries, &op->n_deliveries);
  op->next_seq = 0;
  if (rc == 0 && op->n_deliveries > op->limit) {
    op->n_deliveries = op->limit;
    op->next_seq = op->deliveries[op->limit - 1].seq;
  }
  return rc;
}

static int run_cancel(reel_store *s, reel_job_op *op) {
  reel_job *j = &op->job;
  int rc = reel_store_get_job(s, op->id, j);
  if (rc) return rc;
  if (reel_job_status_terminal(j->status)) return REEL_ECONFLICT;
  if (j->status == REEL_JOB_QUEUED) {
    j->cancel_requested = 1;
    return transition(s, op, j, REEL_JOB_CANCELED);
  }
  op->was_running = 1;
  if (j->cancel_requested) return reel_store_notify(s, REEL_STORE_CHANNEL_CANCEL, j->id);
  j->cancel_requested = 1;
  j->updated_ms = reel_now_ms();
  rc = reel_store_write_job(s, j);
  return rc ? rc : reel_store_notify(s, REEL_STORE_CHANNEL_CANCEL, j->id);
}

/* Claims one job into j for op->fence.node under a lease from now. */
static int claim_one(reel_store *s, reel_job_op *op, int64_t now, reel_job *j) {
  int rc = reel_store_next_runnable(s, now, j);
  if (rc) return rc;
  j->attempts++;
  j->progress = 0;
  j->stage[0] = '\0';
  snprintf(j->node, sizeof j->node, "%s", op->fence.node);
  j->lease_expires_ms = now + op->lease_ms;
  return transition(s, op, j, REEL_JOB_STARTED);
}

/* One job into op->job (limit <= 1), or up to limit into op->list. */
static int run_claim(reel_store *s, reel_job_op *op) {
  int64_t now = reel_store_clock_ms(s);
  if (now <= 0) return REEL_ESTORE;
  if (op->limit <= 1) {
    int rc = claim_one(s, op, now, &op->job);
    op->fence.attempt = op->job.attempts;
    return rc;
  }
  op->list = calloc((size_t)op->limit, sizeof *op->list);
  if (!op->list) return REEL_ENOMEM;
  int rc = 0;
  while (op->n_list < op->limit && (rc = claim_one(s, op, now, &op->list[op->n_list])) == 0) op->n_list++;
  if (rc == REEL_ENOTFOUND && op->n_list > 0) rc = 0;
  if (rc != 0 && op->n_list < op->limit) reel_job_clear(&op->list[op->n_list]);
  return rc;
}

static int run_renew(reel_store *s, reel_job_op *op) {
  int64_t now = reel_store_clock_ms(s);
  if (now <= 0) return REEL_ESTORE;
  for (int i = 0; i < op->n_leases; i++) {
    reel_job_lease *l = &op->leases[i];
    reel_fence fence = op->fence;
    fence.attempt = l->attempt;
    int rc = reel_store_renew_lease(s, l->id, &fence, now + op->lease_ms, &l->held, &l->cancel_requested);
    if (rc) return rc;
  }
  return 0;
}

/* One job.progress event: progress and stage as given. */
static int emit_progress(reel_store *s, reel_job_op *op, const reel_job *j, int progress, const char *stage) {
  json_t *data = json_pack("{s:i, s:s?}", "progress", progress, "stage", stage[0] ? stage : NULL);
  return data ? emit_event(s, op, j, "job.progress", data) : REEL_ENOMEM;
}

/* Progress of a run: the stages it passed since its last write, each an
 * event in order, then the latest, which the job keeps. */
static int run_progress(reel_store *s, reel_job_op *op) {
  int rc = get_fenced(s, op);
  if (rc) return rc;
  reel_job *j = &op->job;
  int progress = j->progress;
  char stage[64];
  memcpy(stage, j->stage, sizeof stage);
  for (int i = 0; i < op->n_earlier && i < REEL_JOB_MAX_EARLIER_STAGES && rc == 0; i++) {
    if (op->earlier[i].progress >= 0) progress = op->earlier[i].progress > 100 ? 100 : op->earlier[i].progress;
    if (op->earlier[i].stage[0]) memcpy(stage, op->earlier[i].stage, sizeof stage);
    rc = emit_progress(s, op, j, progress, stage);
  }
  if (rc) return rc;
  if (op->progress >= 0) j->progress = op->progress > 100 ? 100 : op->progress;
  if (op->stage[0]) memcpy(j->stage, op->stage, sizeof j->stage);
  rc = transition(s, op, j, REEL_JOB_PROGRESS);
  return rc ? rc : emit_progress(s, op, j, j->progress, j->stage);
}

static int run_finish(reel_store *s, reel_job_op *op) {
  int rc = get_fenced(s, op);
  if (rc) return rc;
  reel_job *j = &op->job;
  if (reel_job_set_string(&j->artifact_key, op->artifact_key) ||
      reel_job_set_string(&j->artifact_uri, op->artifact_uri) || reel_job_set_string(&j->gcs_uri, op->gcs_uri))
    return REEL_ENOMEM;
  j->progress = 100;
  snprintf(j->stage, sizeof j->stage, "upload"); /* seed 000's last milestone: the artifact is stored */
  reel_job_set_string(&j->error, NULL);
  return transition(s, op, j, REEL_JOB_FINISHED);
}

static int run_fail(reel_store *s, reel_job_op *op) {
  int rc = get_fenced(s, op);
  if (rc) return rc;
  reel_job *j = &op->job;
  if (reel_job_set_string(&j->error, op->text) || reel_job_set_string(&j->failure_reason, op->reason))
    return REEL_ENOMEM;
  return transition(s, op, j, REEL_JOB_FAILED);
}

/* Puts a job held by a lost or stopped run back in the queue, claimable
 * after delay_ms by the store's clock. */
static int requeue(reel_store *s, reel_job_op *op, reel_job *j, int64_t delay_ms) {
  int64_t now = reel_store_clock_ms(s);
  if (now <= 0) return REEL_ESTORE;
  j->run_after_ms = now + delay_ms;
  int rc = transition(s, op, j, REEL_JOB_QUEUED);
  return rc ? rc : reel_store_notify(s, REEL_STORE_CHANNEL_JOBS, "");
}

static int run_retry(reel_store *s, reel_job_op *op) {
  int rc = get_fenced(s, op);
  if (rc) return rc;
  reel_job *j = &op->job;
  if (j->cancel_requested) return REEL_ECONFLICT;
  if (reel_job_set_string(&j->error, op->text)) return REEL_ENOMEM;
  if (op->uncount_attempt && j->attempts > 0) j->attempts--;
  return requeue(s, op, j, op->delay_ms);
}

static int run_canceled(reel_store *s, reel_job_op *op) {
  int rc = get_fenced(s, op);
  if (rc) return rc;
  if (reel_job_set_string(&op->job.failure_reason, "canceled")) return REEL_ENOMEM;
  return transition(s, op, &op->job, REEL_JOB_CANCELED);
}

/* Jobs whose run was lost (its lease expired: the worker died, hung or was
 * cut off; or, with `all`, every running job of an exclusive store at
 * start-up): cancel those a cancel was asked for, requeue the rest while
 * attempts remain, else fail them. The rows are locked as they are read, so
 * when several nodes rescue at once each job is rescued by exactly one. */
static int run_rescue(reel_store *s, reel_job_op *op) {
  enum { PAGE = 256, MAX_PAGES = 64 };
  if (op->all) { /* the store is ours alone: deliveries a dead predecessor was sending are due again */
    int released = 0;
    int rc = reel_store_release_delivery_leases(s, &released);
    if (rc) return rc;
  }
  int64_t now = op->all ? INT64_MAX : reel_store_clock_ms(s);
  if (now <= 0) return REEL_ESTORE;
  reel_job *page = calloc(PAGE, sizeof *page);
  if (!page) return REEL_ENOMEM;
  int rc = 0;
  for (int pages = 0; pages < MAX_PAGES && rc == 0; pages++) {
    int n = 0;
    rc = reel_store_expired_leases(s, now, PAGE, page, &n);
    for (int i = 0; i < n && rc == 0; i++) {
      reel_job *j = &page[i];
      char msg[200];
      if (j->cancel_requested) {
        rc = reel_job_set_string(&j->failure_reason, "canceled");
        if (rc == 0) rc = transition(s, op, j, REEL_JOB_CANCELED);
      } else if (j->attempts >= op->max_attempts) {
        snprintf(msg, sizeof msg, "the worker running this job (%s) stopped or lost its lease, and all %d attempts are used",
                 j->node[0] ? j->node : "unknown", op->max_attempts);
        rc = reel_job_set_string(&j->error, msg) || reel_job_set_string(&j->failure_reason, "worker_lost") ? REEL_ENOMEM : 0;
        if (rc == 0) rc = transition(s, op, j, REEL_JOB_FAILED);
        if (rc == 0) op->failed++;
      } else {
        snprintf(msg, sizeof msg, "the worker running this job (%s) stopped or lost its lease; requeued",
                 j->node[0] ? j->node : "unknown");
        rc = reel_job_set_string(&j->error, msg) ? REEL_ENOMEM : requeue(s, op, j, 0);
        if (rc == 0) op->requeued++;
      }
      if (rc == REEL_ESTALE) rc = 0; /* another node acted on it first */
      else if (rc == 0) op->rescued++;
    }
    for (int i = 0; i < n; i++) reel_job_clear(&page[i]);
    if (n < PAGE) break;
  }
  free(page);
  return rc;
}

static int run_log(reel_jobs *jobs, reel_store *s, reel_job_op *op) {
  int rc = get_fenced(s, op);
  if (rc) return rc;
  char *line = op->text;
  while (line && *line) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    rc = reel_store_append_log(s, op->id, line, jobs->max_log_lines);
    if (rc == 0) {
      json_t *data = json_pack("{s:s}", "line", line);
      rc = data ? emit_event(s, op, &op->job, "job.log", data) : REEL_ENOMEM;
    }
    if (nl) *nl = '\n';
    if (rc) return rc;
    line = nl ? nl + 1 : NULL;
  }
  return 0;
}

static int run_op(reel_store *s, reel_store_call *call) {
  reel_job_op *op = (reel_job_op *)call; /* call is the first member */
  reel_jobs *jobs = op->jobs;
  /* a call rolled back keeps no outputs from its try */
  clear_transitions(op);
  op->n_events = 0;
  if (op->kind == REEL_JOB_OP_EVENTS) clear_read_events(op);
  clear_deliveries(op);
  op->n_deliveries_queued = 0;
  switch (op->kind) {
  case REEL_JOB_OP_SUBMIT: { /* normally run grouped (run_many); alone it is a group of one */
    int rc = run_submits(s, &call, 1);
    return rc ? rc : call->result;
  }
  case REEL_JOB_OP_GET: return reel_store_read_job(s, op->id, &op->job);
  case REEL_JOB_OP_LIST: return run_list(s, op);
  case REEL_JOB_OP_LOGS: return run_logs(s, op);
  case REEL_JOB_OP_CANCEL: return run_cancel(s, op);
  case REEL_JOB_OP_CLAIM: return run_claim(s, op);
  case REEL_JOB_OP_RENEW: return run_renew(s, op);
  case REEL_JOB_OP_PROGRESS: return run_progress(s, op);
  case REEL_JOB_OP_LOG: return run_log(jobs, s, op);
  case REEL_JOB_OP_FINISH: return run_finish(s, op);
  case REEL_JOB_OP_FAIL: return run_fail(s, op);
  case REEL_JOB_OP_RETRY: return run_retry(s, op);
  case REEL_JOB_OP_CANCELED: return run_canceled(s, op);
  case REEL_JOB_OP_RESCUE: return run_rescue(s, op);
  case REEL_JOB_OP_PRUNE: return run_prune(s, op);
  case REEL_JOB_OP_COUNTS: return reel_store_count_by_status(s, op->counts);
  case REEL_JOB_OP_EVENTS: return run_events(s, op);
  case REEL_JOB_OP_DELIVERIES_CLAIM: return run_deliveries_claim(s, op);
  case REEL_JOB_OP_DELIVERY_RESULT: op->call.writes = 1; return run_delivery_result(s, op);
  case REEL_JOB_OP_DELIVERIES_LIST: return run_deliveries_list(s, op);
  case REEL_JOB_OP_PING:
    if (!op->probe) return reel_store_ping(s);
    op->call.writes = 1;
    return reel_store_probe(s, reel_now_ms());
  }
  return REEL_EINVAL;
}

/* Loop thread, after the commit: what the operation changed becomes visible
 * (log lines, metrics, the listener), never for a change that rolled back. */
static void publish(reel_jobs *jobs, reel_job_op *op) {
  int requeued = 0;
  for (int i = 0; i < op->n_transitions; i++) {
    const reel_job_transition *t = &op->transitions[i];
    reel_log(REEL_LOG_INFO, "job transition", "{s:s, s:s, s:s, s:i, s:s?, s:s?}", "job_id", t->id, "from",
             reel_job_status_name(t->from), "to", reel_job_status_name(t->to), "attempts", t->attempts, "node",
             t->node[0] ? t->node : NULL, "error", t->to == REEL_JOB_FAILED || t->to == REEL_JOB_QUEUED ? t->error : NULL);
    if (reel_job_status_terminal(t->to))
      reel_metrics_job_ended(t->to, t->failure_reason[0] ? t->failure_reason : NULL, t->run_seconds);
    if (t->to == REEL_JOB_QUEUED) requeued = 1;
    if (jobs->listener.transitioned) jobs->listener.transitioned(jobs->listener.data, t);
  }
  if ((op->kind == REEL_JOB_OP_SUBMIT || requeued) && jobs->listener.submitted)
    jobs->listener.submitted(jobs->listener.data);
  if (op->n_events > 0 && jobs->listener.events) jobs->listener.events(jobs->listener.data);
  if (op->n_deliveries_queued > 0 && jobs->listener.deliveries) jobs->listener.deliveries(jobs->listener.data);
}

static void op_done(reel_store_call *call, int result) {
  reel_job_op *op = (reel_job_op *)call;
  reel_jobs *jobs = op->jobs;
  if (result != 0) clear_transitions(op);
  else publish(jobs, op);
  if (op->cancel_orphan) { /* the second half of a CANCEL: the job was ended here */
    op->cancel_orphan = 0;
    op->kind = REEL_JOB_OP_CANCEL;
    if (result == 0)
      reel_log(REEL_LOG_WARN, "canceled a job no process was running", "{s:s}", "job_id", op->id);
  } else if (result == 0 && op->kind == REEL_JOB_OP_CANCEL && op->was_running && jobs->listener.cancel_requested &&
             jobs->listener.cancel_requested(jobs->listener.data, op->id) == REEL_ENOTFOUND) {
    /* nothing can be running it, so nothing else would ever end it: end it
     * now, fenced by the run the store names */
    snprintf(op->fence.node, sizeof op->fence.node, "%s", op->job.node);
    op->fence.attempt = op->job.attempts;
    reel_job_clear(&op->job);
    op->kind = REEL_JOB_OP_CANCELED;
    op->cancel_orphan = 1;
    reel_jobs_run(jobs, op);
    return;
  }
  if (result == REEL_ESTORE && op->kind != REEL_JOB_OP_PING) /* the executor logs the cause of store failures */
    reel_log(REEL_LOG_ERROR, "job operation failed", "{s:s, s:s}", "op", op_names[op->kind], "job_id", op->id);
  op->cb(op, result);
}

int reel_jobs_init(reel_jobs *jobs, uv_loop_t *loop, reel_store *store, int max_queue_depth,
                   size_t max_log_lines) {
  memset(jobs, 0, sizeof *jobs);
  jobs->store = store;
  jobs->max_queue_depth = max_queue_depth;
  jobs->max_log_lines = max_log_lines;
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
  if (jobs->store) reel_store_close(jobs->store);
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
                    op->kind != REEL_JOB_OP_COUNTS && op->kind != REEL_JOB_OP_PING &&
                    op->kind != REEL_JOB_OP_EVENTS && op->kind != REEL_JOB_OP_DELIVERIES_LIST;
  clear_transitions(op);
  op->call.run = run_op;
  op->call.run_many = op->kind == REEL_JOB_OP_SUBMIT ? run_submits : NULL;
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
  clear_transitions(op);
  clear_read_events(op);
  clear_deliveries(op);
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
