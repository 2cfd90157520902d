/* Prometheus metrics for reel, each declared once. Counters are C11 atomics,
 * so the loop thread and the store thread can both record. */
#ifndef REEL_METRICS_H
#define REEL_METRICS_H

#include <stdint.h>

#include "common/buf.h"
#include "jobs/job.h"

#define REEL_METRICS_MAX_ROUTES 32

/* Labels for reel_job_failures_total{reason}; anything else counts as "other". */
#define REEL_FAILURE_REASON_MAP(XX) \
  XX(exit_status)                   \
  XX(timeout)                       \
  XX(spawn)                         \
  XX(artifact_missing)              \
  XX(storage)                       \
  XX(worker_lost)                   \
  XX(backend_unavailable)           \
  XX(other)

/* Resets every metric and records the process start time. */
void reel_metrics_init(void);
/* Registers a route label (e.g. "GET /v1/jobs/{id}") and returns its index,
 * or the index of "other" when the table is full. */
int reel_metrics_route(const char *label);
/* Records one finished HTTP request. */
void reel_metrics_http_observe(int route, int status, double seconds);
/* Records a job reaching a terminal status; run_seconds < 0 when it never ran. */
void reel_metrics_job_ended(reel_job_status status, const char *failure_reason, double run_seconds);
/* Sets gauges the scheduler owns. */
void reel_metrics_set_running(int running);
/* Counters of this node's runs and leases (the scale-out view of a worker). */
void reel_metrics_run_started(void);
void reel_metrics_lease_renewed(void);
void reel_metrics_lease_lost(void);
/* Records one webhook delivery attempt's outcome: "delivered", "retry",
 * "failed" or "disabled". */
void reel_metrics_delivery(const char *outcome);
/* Sets the event stream figures the hub keeps (open streams, events sent, streams cut off). */
void reel_metrics_set_sse(int streams, unsigned long long delivered, unsigned long long cut_off);
/* Records jobs this node rescued from lost runs (requeued, failed or canceled). */
void reel_metrics_rescued(int jobs);
/* Records store executor totals (group commit effectiveness). */
void reel_metrics_set_store(unsigned long long batches, unsigned long long calls);
/* Appends the exposition text (format 0.0.4). counts: jobs by status from the store. */
int reel_metrics_render(reel_buf *out, const int64_t counts[REEL_JOB_STATUS_COUNT]);

#endif
