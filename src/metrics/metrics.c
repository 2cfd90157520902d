/* The metrics registry: fixed tables of atomics rendered in the Prometheus
 * text format. No allocation on the hot path. */
#include "metrics/metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"

/* HTTP status codes with their own series; others fall into the nearest class (e.g. "5xx"). */
static const int status_codes[] = {200, 202, 206, 302, 304, 400, 401, 403, 404, 405, 408, 409,
                                   413, 415, 416, 429, 431, 500, 501, 503, 505};
#define N_STATUS ((int)(sizeof status_codes / sizeof *status_codes))
#define N_STATUS_SLOTS (N_STATUS + 5) /* + 1xx..5xx classes */

static const double http_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
#define N_HTTP_BUCKETS ((int)(sizeof http_buckets / sizeof *http_buckets))
static const double job_buckets[] = {0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
#define N_JOB_BUCKETS ((int)(sizeof job_buckets / sizeof *job_buckets))

static const char *const failure_reasons[] = {
#define REEL_REASON_NAME_(name) #name,
    REEL_FAILURE_REASON_MAP(REEL_REASON_NAME_)
#undef REEL_REASON_NAME_
};
#define N_REASONS ((int)(sizeof failure_reasons / sizeof *failure_reasons))

static char route_labels[REEL_METRICS_MAX_ROUTES][64];
static int n_routes;
static _Atomic unsigned long long http_requests[REEL_METRICS_MAX_ROUTES][N_STATUS_SLOTS];
static _Atomic unsigned long long http_latency_buckets[REEL_METRICS_MAX_ROUTES][N_HTTP_BUCKETS];
static _Atomic unsigned long long http_latency_count[REEL_METRICS_MAX_ROUTES];
static _Atomic unsigned long long http_latency_sum_us[REEL_METRICS_MAX_ROUTES];
static _Atomic unsigned long long job_duration_buckets[REEL_JOB_STATUS_COUNT][N_JOB_BUCKETS];
static _Atomic unsigned long long job_duration_count[REEL_JOB_STATUS_COUNT];
static _Atomic unsigned long long job_duration_sum_ms[REEL_JOB_STATUS_COUNT];
static _Atomic unsigned long long job_failures[N_REASONS];
static _Atomic int running_jobs;
static _Atomic unsigned long long runs_started, leases_renewed, leases_lost, jobs_rescued;
static const char *const delivery_outcomes[] = {"delivered", "retry", "failed", "disabled"};
#define N_DELIVERY_OUTCOMES ((int)(sizeof delivery_outcomes / sizeof *delivery_outcomes))
static _Atomic unsigned long long deliveries[N_DELIVERY_OUTCOMES];
static _Atomic unsigned long long sse_delivered, sse_cut_off;
static _Atomic int sse_streams;
static _Atomic unsigned long long store_batches, store_calls;
static int64_t start_ms;

void reel_metrics_init(void) {
  n_routes = 0;
  memset(route_labels, 0, sizeof route_labels);
  reel_metrics_route("other");
  for (int r = 0; r < REEL_METRICS_MAX_ROUTES; r++) {
    for (int s = 0; s < N_STATUS_SLOTS; s++) atomic_store(&http_requests[r][s], 0);
    for (int b = 0; b < N_HTTP_BUCKETS; b++) atomic_store(&http_latency_buckets[r][b], 0);
    atomic_store(&http_latency_count[r], 0);
    atomic_store(&http_latency_sum_us[r], 0);
  }
  for (int s = 0; s < REEL_JOB_STATUS_COUNT; s++) {
    for (int b = 0; b < N_JOB_BUCKETS; b++) atomic_store(&job_duration_buckets[s][b], 0);
    atomic_store(&job_duration_count[s], 0);
    atomic_store(&job_duration_sum_ms[s], 0);
  }
  for (int i = 0; i < N_REASONS; i++) atomic_store(&job_failures[i], 0);
  atomic_store(&runs_started, 0);
  atomic_store(&leases_renewed, 0);
  atomic_store(&leases_lost, 0);
  atomic_store(&jobs_rescued, 0);
  for (int i = 0; i < N_DELIVERY_OUTCOMES; i++) atomic_store(&deliveries[i], 0);
  atomic_store(&sse_delivered, 0);
  atomic_store(&sse_cut_off, 0);
  atomic_store(&sse_streams, 0);
  start_ms = reel_now_ms();
}

int reel_metrics_route(const char *label) {
  for (int i = 0; i < n_routes; i++)
    if (strcmp(route_labels[i], label) == 0) return i;
  if (n_routes >= REEL_METRICS_MAX_ROUTES) return 0;
  snprintf(route_labels[n_routes], sizeof route_labels[n_routes], "%s", label);
  return n_routes++;
}

static int status_slot(int status) {
  for (int i = 0; i < N_STATUS; i++)
    if (status_codes[i] == status) return i;
  int cls = status / 100;
  if (cls < 1 || cls > 5) cls = 5;
  return N_STATUS + cls - 1;
}

void reel_metrics_http_observe(int route, int status, double seconds) {
  if (route < 0 || route >= REEL_METRICS_MAX_ROUTES) route = 0;
  atomic_fetch_add(&http_requests[route][status_slot(status)], 1);
  for (int b = 0; b < N_HTTP_BUCKETS; b++)
    if (seconds <= http_buckets[b]) atomic_fetch_add(&http_latency_buckets[route][b], 1);
  atomic_fetch_add(&http_latency_count[route], 1);
  atomic_fetch_add(&http_latency_sum_us[route], (unsigned long long)(seconds * 1e6));
}

void reel_metrics_job_ended(reel_job_status status, const char *failure_reason, double run_seconds) {
  if ((unsigned)status >= REEL_JOB_STATUS_COUNT) return;
  if (run_seconds >= 0) {
    for (int b = 0; b < N_JOB_BUCKETS; b++)
      if (run_seconds <= job_buckets[b]) atomic_fetch_add(&job_duration_buckets[status][b], 1);
    atomic_fetch_add(&job_duration_count[status], 1);
    atomic_fetch_add(&job_duration_sum_ms[status], (unsigned long long)(run_seconds * 1000));
  }
  if (status == REEL_JOB_FAILED) {
    int idx = N_REASONS - 1;
    for (int i = 0; failure_reason && i < N_REASONS; i++)
      if (strcmp(failure_reason, failure_reasons[i]) == 0) idx = i;
    atomic_fetch_add(&job_failures[idx], 1);
  }
}

void reel_metrics_set_running(int running) { atomic_store(&running_jobs, running); }

void reel_metrics_run_started(void) { atomic_fetch_add(&runs_started, 1); }
void reel_metrics_lease_renewed(void) { atomic_fetch_add(&leases_renewed, 1); }
void reel_metrics_lease_lost(void) { atomic_fetch_add(&leases_lost, 1); }
void reel_metrics_delivery(const char *outcome) {
  for (int i = 0; i < N_DELIVERY_OUTCOMES; i++)
    if (strcmp(outcome, delivery_outcomes[i]) == 0) atomic_fetch_add(&deliveries[i], 1);
}
void reel_metrics_set_sse(int streams, unsigned long long delivered, unsigned long long cut_off) {
  atomic_store(&sse_streams, streams);
  atomic_store(&sse_delivered, delivered);
  atomic_store(&sse_cut_off, cut_off);
}
void reel_metrics_rescued(int jobs) {
  if (jobs > 0) atomic_fetch_add(&jobs_rescued, (unsigned long long)jobs);
}

void reel_metrics_set_store(unsigned long long batches, unsigned long long calls) {
  atomic_store(&store_batches, batches);
  atomic_store(&store_calls, calls);
}

static long resident_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long pages_total = 0, pages_resident = 0;
  if (fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = 0;
  fclose(f);
  return pages_resident * sysconf(_SC_PAGESIZE);
}

static void status_label(int slot, char *out, size_t n) {
  if (slot < N_STATUS) snprintf(out, n, "%d", status_codes[slot]);
  else snprintf(out, n, "%dxx", slot - N_STATUS + 1);
}

int reel_metrics_render(reel_buf *o, const int64_t counts[REEL_JOB_STATUS_COUNT]) {
  int rc = 0;
#define P(...) do { if ((rc = reel_buf_printf(o, __VA_ARGS__))) return rc; } while (0)
  P("# HELP reel_http_requests_total HTTP requests answered, by route and status.\n");
  P("# TYPE reel_http_requests_total counter\n");
  for (int r = 0; r < n_routes; r++)
    for (int s = 0; s < N_STATUS_SLOTS; s++) {
      unsigned long long v = atomic_load(&http_requests[r][s]);
      if (!v) continue;
      char code[8];
      status_label(s, code, sizeof code);
      P("reel_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n", route_labels[r], code, v);
    }
  P("# HELP reel_http_request_duration_seconds Time from request parsed to response queued, by route.\n");
  P("# TYPE reel_http_request_duration_seconds histogram\n");
  for (int r = 0; r < n_routes; r++) {
    unsigned long long count = atomic_load(&http_latency_count[r]);
    if (!count) continue;
    for (int b = 0; b < N_HTTP_BUCKETS; b++)
      P("reel_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", route_labels[r],
        http_buckets[b], atomic_load(&http_latency_buckets[r][b]));
    P("reel_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", route_labels[r], count);
    P("reel_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route_labels[r],
      (double)atomic_load(&http_latency_sum_us[r]) / 1e6);
    P("reel_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route_labels[r], count);
  }
  P("# HELP reel_jobs Jobs in the store, by status.\n# TYPE reel_jobs gauge\n");
  for (int s = 0; s < REEL_JOB_STATUS_COUNT; s++)
    P("reel_jobs{status=\"%s\"} %lld\n", reel_job_status_name((reel_job_status)s), (long long)counts[s]);
  P("# HELP reel_queue_depth Jobs waiting to run.\n# TYPE reel_queue_depth gauge\n");
  P("reel_queue_depth %lld\n", (long long)counts[REEL_JOB_QUEUED]);
  P("# HELP reel_jobs_running Jobs this process is running now.\n# TYPE reel_jobs_running gauge\n");
  P("reel_jobs_running %d\n", atomic_load(&running_jobs));
  P("# HELP reel_runs_started_total Runs this process started (claims that became processes).\n");
  P("# TYPE reel_runs_started_total counter\nreel_runs_started_total %llu\n", atomic_load(&runs_started));
  P("# HELP reel_leases_renewed_total Leases of running jobs this process renewed.\n");
  P("# TYPE reel_leases_renewed_total counter\nreel_leases_renewed_total %llu\n", atomic_load(&leases_renewed));
  P("# HELP reel_leases_lost_total Runs this process stopped because their job's lease lapsed or passed to another node.\n");
  P("# TYPE reel_leases_lost_total counter\nreel_leases_lost_total %llu\n", atomic_load(&leases_lost));
  P("# HELP reel_rescues_total Jobs of lost runs (expired leases) this process requeued, failed or canceled.\n");
  P("# TYPE reel_rescues_total counter\nreel_rescues_total %llu\n", atomic_load(&jobs_rescued));
  P("# HELP reel_webhook_deliveries_total Webhook delivery attempts this process made, by outcome "
    "(retry: it will be tried again; disabled: the endpoint answered 410).\n");
  P("# TYPE reel_webhook_deliveries_total counter\n");
  for (int i = 0; i < N_DELIVERY_OUTCOMES; i++)
    P("reel_webhook_deliveries_total{outcome=\"%s\"} %llu\n", delivery_outcomes[i], atomic_load(&deliveries[i]));
  P("# HELP reel_event_streams Server-sent event streams open on this process.\n# TYPE reel_event_streams gauge\n");
  P("reel_event_streams %d\n", atomic_load(&sse_streams));
  P("# HELP reel_events_sent_total Events written to event streams.\n# TYPE reel_events_sent_total counter\n");
  P("reel_events_sent_total %llu\n", atomic_load(&sse_delivered));
  P("# HELP reel_event_streams_cut_off_total Event streams cut off because the client stopped reading.\n");
  P("# TYPE reel_event_streams_cut_off_total counter\nreel_event_streams_cut_off_total %llu\n", atomic_load(&sse_cut_off));
  P("# HELP reel_job_duration_seconds Run time of the last attempt of jobs that ended, by final status.\n");
  P("# TYPE reel_job_duration_seconds histogram\n");
  for (int s = REEL_JOB_FINISHED; s < REEL_JOB_STATUS_COUNT; s++) {
    const char *name = reel_job_status_name((reel_job_status)s);
    for (int b = 0; b < N_JOB_BUCKETS; b++)
      P("reel_job_duration_seconds_bucket{status=\"%s\",le=\"%g\"} %llu\n", name, job_buckets[b],
        atomic_load(&job_duration_buckets[s][b]));
    P("reel_job_duration_seconds_bucket{status=\"%s\",le=\"+Inf\"} %llu\n", name, atomic_load(&job_duration_count[s]));
    P("reel_job_duration_seconds_sum{status=\"%s\"} %.3f\n", name, (double)atomic_load(&job_duration_sum_ms[s]) / 1000.0);
    P("reel_job_duration_seconds_count{status=\"%s\"} %llu\n", name, atomic_load(&job_duration_count[s]));
  }
  P("# HELP reel_job_failures_total Jobs that failed, by reason.\n# TYPE reel_job_failures_total counter\n");
  for (int i = 0; i < N_REASONS; i++)
    P("reel_job_failures_total{reason=\"%s\"} %llu\n", failure_reasons[i], atomic_load(&job_failures[i]));
  P("# HELP reel_store_batches_total Store transactions committed (group commit batches).\n");
  P("# TYPE reel_store_batches_total counter\nreel_store_batches_total %llu\n", atomic_load(&store_batches));
  P("# HELP reel_store_calls_total Store operations run inside those batches.\n");
  P("# TYPE reel_store_calls_total counter\nreel_store_calls_total %llu\n", atomic_load(&store_calls));
  P("# HELP process_resident_memory_bytes Resident memory size in bytes.\n");
  P("# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n", resident_bytes());
  P("# HELP process_start_time_seconds Start time of the process since the Unix epoch in seconds.\n");
  P("# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n", (double)start_ms / 1000.0);
  P("# HELP reel_uptime_seconds Seconds since this process started.\n");
  P("# TYPE reel_uptime_seconds gauge\nreel_uptime_seconds %.3f\n", (double)(reel_now_ms() - start_ms) / 1000.0);
#undef P
  return 0;
}
