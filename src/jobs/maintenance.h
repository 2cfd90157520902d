/* Periodic store upkeep that every node runs, whatever its role: the rescue
 * of jobs whose run was lost (an expired lease: the worker died, hung or was
 * cut off from the store) and the retention of terminal jobs. Row locks in
 * the store make each rescue happen on exactly one node, however many run
 * it at once. */
#ifndef REEL_MAINTENANCE_H
#define REEL_MAINTENANCE_H

#include <uv.h>

#include "jobs/jobs.h"

typedef struct {
  reel_jobs *jobs;
  uv_loop_t *loop;
  int max_attempts;
  int retention_days;        /* 0: keep terminal jobs forever */
  uint64_t rescue_every_ms;
  uv_timer_t rescue_timer, prune_timer;
  reel_job_op rescue_op, prune_op;
  int rescue_in_flight, prune_in_flight, started;
  void (*rescue_cb)(reel_job_op *op, int result); /* of the rescue in flight, or NULL */
} reel_maintenance;

/* Starts both timers: a rescue every lease_seconds/3 (1 to 10 s), a
 * retention pass every minute that deletes terminal jobs older than
 * retention_days in batches, each its own short transaction. */
void reel_maintenance_start(reel_maintenance *m, uv_loop_t *loop, reel_jobs *jobs, int max_attempts,
                            int lease_seconds, int retention_days);
/* Runs one rescue now: with all, every running job is orphaned (an exclusive
 * store at start-up, before this process started anything). cb gets the op
 * (rescued, requeued, failed) and the result; op is m's own. */
void reel_maintenance_rescue(reel_maintenance *m, int all, void (*cb)(reel_job_op *op, int result));
/* Stops the timers (two-phase: the loop closes them). Operations in flight
 * finish on their own. */
void reel_maintenance_stop(reel_maintenance *m);

#endif
