/* The scheduler claims queued jobs and runs up to service.workers at once.
 * Each running job owns a scope: its workspace directory, its process group
 * and its timers. Cancelling or timing out a job stops the whole group
 * (SIGTERM, then SIGKILL after cancel_grace_seconds), removes the workspace
 * and records the end state; nothing the job started outlives it. */
#ifndef REEL_SCHEDULER_H
#define REEL_SCHEDULER_H

#include <uv.h>

#include "config/config.h"
#include "jobs/jobs.h"
#include "storage/storage.h"
#include "worker/workspaces.h"

typedef struct reel_run reel_run;

typedef struct {
  uv_loop_t *loop;
  reel_jobs *jobs;
  const reel_config *cfg;
  const char *cli_prompt;    /* reeld --prompt, or NULL */
  reel_storage *storage;
  char node[64];             /* service.node_id: who claims, in the store */
  char *work_dir;            /* data_dir/work */
  reel_workspaces workspaces; /* spare and discarded workspaces in work_dir */
  char procs_dir[4200];      /* data_dir/procs: one record per running process group (run_record.h) */
  reel_run *runs;            /* running jobs */
  int n_running;
  int claim_in_flight;
  int claim_again;           /* a wake-up came while a claim was in flight: claim again after it */
  uv_timer_t poll_timer;     /* wakes up for retries whose backoff ended (and in case a wake-up was missed) */
  /* Optional: whether wake-ups arrive by themselves (a listening connection
   * is up); then the poll is only a slow fallback */
  int (*wakeups_live)(void *data);
  void *wakeups_data;
  uint64_t last_claim_at;    /* uv_now of the latest claim attempt */
  /* leases: every run's claim is renewed every lease_seconds/3; when no
   * renewal succeeded for a whole lease, every run stops (another node may
   * have the jobs by now) */
  uv_timer_t renew_timer, lease_deadline_timer;
  reel_job_op renew_op;
  reel_job_lease *renewing;  /* the runs renew_op carries */
  int renew_in_flight;
  int renew_again;           /* a renewal tick came while one was in flight: renew as soon as it ends */
  uint64_t renew_sent_at;    /* uv_now when the renewal in flight was sent */
  uint64_t claim_sent_at;    /* uv_now when the claim in flight was sent */
  int stopping;
  void (*on_stopped)(void *data);
  void *on_stopped_data;
} reel_scheduler;

/* Starts claiming jobs. work_dir is created if missing. cli_prompt is reeld's
 * --prompt (or NULL), the middle layer of each job's effective config. */
int reel_scheduler_start(reel_scheduler *s, uv_loop_t *loop, reel_jobs *jobs, const reel_config *cfg,
                         const char *node, const char *cli_prompt, reel_storage *storage, char *err, size_t errlen);
/* Tells the scheduler a job may be waiting (after a submit). */
void reel_scheduler_poke(reel_scheduler *s);
/* Stops the run of job_id if this scheduler has it; it ends as canceled (also
 * when its process had already ended and its end is waiting to be recorded).
 * Returns 0, or REEL_ENOTFOUND when this scheduler has no run of job_id. */
int reel_scheduler_cancel(reel_scheduler *s, const char *job_id);
/* Stops claiming, stops every running job (they go back to the queue without
 * using up an attempt) and calls on_stopped once all are recorded (or, for a
 * run whose end the store cannot take, after one more try: recovery at the
 * next start requeues it). */
void reel_scheduler_stop(reel_scheduler *s, void (*on_stopped)(void *data), void *data);
/* Readiness of the workers: 0 or an error with a message. */
int reel_scheduler_check(const reel_scheduler *s, char *err, size_t errlen);

/* Builds a job's argv from pipeline.command: "{config}", "{prompt}" and
 * "{workspace}" inside any argument are replaced. Returns a NULL-terminated
 * heap argv (free with reel_scheduler_free_argv) or NULL on OOM. */
char **reel_scheduler_build_argv(char *const template_argv[], const char *config_path, const char *prompt,
                                 const char *workspace);
void reel_scheduler_free_argv(char **argv);
/* Parses "REEL_PROGRESS <0-100> [<stage>]". Returns 1 and fills progress and
 * stage (stage_len bytes, "" if none) when line is such a line, else 0. */
int reel_scheduler_parse_progress(const char *line, size_t len, int *progress, char *stage, size_t stage_len);
/* Parses "REEL_COST <stage> <amount> [<unit>]" (unit defaults to
 * "cpu_seconds"). Returns 1 and fills the outputs when line is such a line. */
int reel_scheduler_parse_cost(const char *line, size_t len, char *stage, size_t stage_len, double *amount, char *unit,
                              size_t unit_len);
/* Adds amount to cost[unit].stages[stage] and cost[unit].total (cost is a JSON object). */
void reel_scheduler_add_cost(json_t *cost, const char *stage, double amount, const char *unit);
/* The argv a job runs for the configured backend: pipeline.command with its
 * placeholders replaced for "command"; reel-render (next to reeld) for
 * "local". A NULL-terminated heap argv, or NULL with a message in err. */
char **reel_scheduler_backend_argv(const reel_config *cfg, const char *config_path, const char *prompt,
                                   const char *workspace, char *err, size_t errlen);
/* Readiness of the configured backend on this machine: 0, or an error naming
 * what is missing and the Debian package that provides it. */
int reel_scheduler_check_backend(const reel_config *cfg, char *err, size_t errlen);
/* Writes the job's workspace: pipeline_config.yaml (effective config) and output/. */
/* Writes the job's effective config into workspace/pipeline_config.yaml
 * (whose path goes to config_path). 0, or an error with a message. */
int reel_scheduler_write_config(const char *workspace, const json_t *effective, char *config_path,
                                size_t config_path_len, char *err, size_t errlen);
int reel_scheduler_prepare_workspace(const char *workspace, const json_t *effective, char *config_path,
                                     size_t config_path_len, char *err, size_t errlen);

#endif
