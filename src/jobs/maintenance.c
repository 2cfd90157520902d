/* Rescue and retention timers (see maintenance.h). Both run as ordinary job
 * operations, so they are group-committed with everything else and publish
 * their transitions only after the commit. */
#include "jobs/maintenance.h"

#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "metrics/metrics.h"

#define PRUNE_EVERY_MS 60000
#define PRUNE_FIRST_MS 10000
#define PRUNE_BATCH 500

static void rescue_done(reel_job_op *op, int result) {
  reel_maintenance *m = op->data;
  m->rescue_in_flight = 0;
  if (result == 0 && op->rescued) {
    reel_metrics_rescued(op->rescued);
    reel_log(REEL_LOG_INFO, "rescued jobs of lost runs", "{s:i, s:i, s:i}", "jobs", op->rescued, "requeued",
             op->requeued, "failed", op->failed);
  }
  void (*cb)(reel_job_op *, int) = m->rescue_cb;
  m->rescue_cb = NULL;
  if (cb) cb(op, result);
  reel_job_op_cleanup(op);
}

void reel_maintenance_rescue(reel_maintenance *m, int all, void (*cb)(reel_job_op *op, int result)) {
  if (m->rescue_in_flight) return;
  reel_job_op_init(&m->rescue_op, REEL_JOB_OP_RESCUE);
  m->rescue_op.max_attempts = m->max_attempts;
  m->rescue_op.all = all;
  m->rescue_op.cb = rescue_done;
  m->rescue_op.data = m;
  m->rescue_cb = cb;
  m->rescue_in_flight = 1;
  reel_jobs_run(m->jobs, &m->rescue_op);
}

static void on_rescue_tick(uv_timer_t *t) { reel_maintenance_rescue(t->data, 0, NULL); }

static void prune_next(reel_maintenance *m);

static void prune_done(reel_job_op *op, int result) {
  reel_maintenance *m = op->data;
  m->prune_in_flight = 0;
  int deleted = op->deleted, keys = op->deleted_keys;
  reel_job_op_cleanup(op);
  if (result != 0) return; /* the next pass tries again */
  if (deleted > 0) reel_log(REEL_LOG_INFO, "retention: deleted old terminal jobs", "{s:i}", "jobs", deleted);
  /* more are due: the next batch, its own transaction */
  if ((deleted == PRUNE_BATCH || keys == PRUNE_BATCH) && m->started) prune_next(m);
}

static void prune_next(reel_maintenance *m) {
  if (m->prune_in_flight) return;
  reel_job_op_init(&m->prune_op, REEL_JOB_OP_PRUNE);
  /* retention_days 0 keeps every job; expired Idempotency-Keys go anyway */
  m->prune_op.before_ms = m->retention_days > 0 ? reel_now_ms() - (int64_t)m->retention_days * 86400000 : 0;
  m->prune_op.limit = PRUNE_BATCH;
  m->prune_op.cb = prune_done;
  m->prune_op.data = m;
  m->prune_in_flight = 1;
  reel_jobs_run(m->jobs, &m->prune_op);
}

static void on_prune_tick(uv_timer_t *t) { prune_next(t->data); }

void reel_maintenance_start(reel_maintenance *m, uv_loop_t *loop, reel_jobs *jobs, int max_attempts,
                            int lease_seconds, int retention_days) {
  memset(m, 0, sizeof *m);
  m->jobs = jobs;
  m->loop = loop;
  m->max_attempts = max_attempts;
  m->retention_days = retention_days;
  uint64_t every = (uint64_t)lease_seconds * 1000 / 3;
  if (every < 1000) every = 1000;
  if (every > 10000) every = 10000;
  m->rescue_every_ms = every;
  uv_timer_init(loop, &m->rescue_timer);
  m->rescue_timer.data = m;
  uv_timer_start(&m->rescue_timer, on_rescue_tick, every, every);
  uv_unref((uv_handle_t *)&m->rescue_timer);
  uv_timer_init(loop, &m->prune_timer);
  m->prune_timer.data = m;
  uv_timer_start(&m->prune_timer, on_prune_tick, PRUNE_FIRST_MS, PRUNE_EVERY_MS);
  uv_unref((uv_handle_t *)&m->prune_timer);
  m->started = 1;
}

void reel_maintenance_stop(reel_maintenance *m) {
  if (!m->started) return;
  m->started = 0;
  uv_close((uv_handle_t *)&m->rescue_timer, NULL);
  uv_close((uv_handle_t *)&m->prune_timer, NULL);
}
