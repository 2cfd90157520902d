/* Runs jobs. Claims go through reel_jobs (so the store decides who runs what),
 * each claimed job becomes a reel_run that owns a workspace, a supervised
 * process group and a timeout timer, and every outcome — success, transient
 * failure, permanent failure, timeout, cancel, shutdown — ends in exactly one
 * store operation that moves the job on. */
#define _XOPEN_SOURCE 700
#include "worker/scheduler.h"

#include <errno.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/random.h"
#include "common/redact.h"
#include "metrics/metrics.h"
#include "render/tools.h"
#include "worker/child.h"
#include "worker/run_record.h"

#define MAX_PENDING_LOG_LINES 2000
#define ERROR_TAIL_LINES 5
#define EXIT_TEMPFAIL 75
#define EXIT_UNAVAILABLE 69 /* reel-render: a required program or font is missing */
#define POLL_INTERVAL_MS 500
#define POLL_FALLBACK_MS 2000
/* A run's end that the store did not take is retried after this backoff
 * (exponential, jittered), until it lands. */
#define FINAL_RETRY_BASE_MS 250
#define FINAL_RETRY_MAX_MS 10000

/* Why a run stops early. STOP_LOST: the job is no longer ours (its lease
 * lapsed or passed to another node), so nothing more is written for it. */
typedef enum { STOP_NONE, STOP_CANCEL, STOP_TIMEOUT, STOP_SHUTDOWN, STOP_LOST } stop_reason;

struct reel_run {
  reel_run *prev, *next;
  reel_scheduler *sched;
  char id[32];
  int attempts;
  reel_fence fence;   /* node and attempt: carried by every write for this run */
  int64_t created_ms;
  char workspace[4096];
  reel_child child;
  uv_timer_t timeout_timer;
  stop_reason stop;
  /* output waiting to be stored, one line per '\n' */
  reel_buf pending_log;
  int pending_lines, dropped_lines;
  reel_job_op log_op;
  int log_in_flight;
  reel_job_op progress_op;
  int progress_in_flight, progress_dirty, next_progress;
  json_t *cost;       /* {unit: {total, stages: {stage: amount}}}, across attempts */
  int cost_dirty;
  char next_stage[64];
  /* stages passed while a progress write was in flight, sent with the next
   * one so each becomes its own event (a full list keeps the newest) */
  struct {
    int progress;
    char stage[64];
  } passed[REEL_JOB_MAX_EARLIER_STAGES];
  int n_passed;
  reel_job_op final_op;
  /* the last stderr lines, for the error message of a failed run */
  char stderr_tail[ERROR_TAIL_LINES][300];
  int tail_next, tail_count;
  int child_done;
  int64_t exit_status;
  int term_signal;
  int finalized;
  int final_failures;  /* failed tries to record the end */
  int final_waiting;   /* timeout_timer is counting down to the next try */
  int cancel_pending;  /* a cancel arrived while the end was waiting to be recorded */
  int recorded;        /* a record of the process group is in procs_dir */
  const char *preset_reason; /* set when the run failed before a process could run */
  char preset_error[640];
};

static void try_claim(reel_scheduler *s);
static void run_lost(reel_run *r, const char *why);
static uint64_t lease_margin_ms(const reel_scheduler *s);
static void arm_lease_deadline(reel_scheduler *s, uint64_t sent_at);

/* ---- helpers exposed for tests ---- */

static int append_replaced(reel_buf *b, const char *arg, const char *config_path, const char *prompt,
                           const char *workspace) {
  static const struct { const char *token; int which; } tokens[] = {{"{config}", 0}, {"{prompt}", 1}, {"{workspace}", 2}};
  const char *values[3] = {config_path, prompt, workspace};
  while (*arg) {
    int matched = 0;
    for (size_t t = 0; t < 3; t++) {
      size_t n = strlen(tokens[t].token);
      if (strncmp(arg, tokens[t].token, n) == 0) {
        if (reel_buf_append_str(b, values[tokens[t].which] ? values[tokens[t].which] : "")) return REEL_ENOMEM;
        arg += n;
        matched = 1;
        break;
      }
    }
    if (!matched) {
      if (reel_buf_append(b, arg, 1)) return REEL_ENOMEM;
      arg++;
    }
  }
  return 0;
}

char **reel_scheduler_build_argv(char *const template_argv[], const char *config_path, const char *prompt,
                                 const char *workspace) {
  int n = 0;
  while (template_argv[n]) n++;
  char **argv = calloc((size_t)n + 1, sizeof *argv);
  if (!argv) return NULL;
  for (int i = 0; i < n; i++) {
    reel_buf b;
    reel_buf_init(&b, 1 << 20);
    if (append_replaced(&b, template_argv[i], config_path, prompt, workspace) != 0) {
      reel_buf_free(&b);
      reel_scheduler_free_argv(argv);
      return NULL;
    }
    argv[i] = reel_buf_steal(&b);
  }
  return argv;
}

void reel_scheduler_free_argv(char **argv) {
  if (!argv) return;
  for (int i = 0; argv[i]; i++) free(argv[i]);
  free(argv);
}

int reel_scheduler_parse_progress(const char *line, size_t len, int *progress, char *stage, size_t stage_len) {
  static const char prefix[] = "REEL_PROGRESS ";
  size_t plen = sizeof prefix - 1;
  if (len <= plen || memcmp(line, prefix, plen) != 0) return 0;
  size_t i = plen;
  int value = 0, digits = 0;
  while (i < len && line[i] >= '0' && line[i] <= '9' && digits < 4) value = value * 10 + (line[i++] - '0'), digits++;
  if (digits == 0 || value > 100) return 0;
  if (i < len && line[i] != ' ') return 0;
  while (i < len && line[i] == ' ') i++;
  size_t end = len;
  while (end > i && line[end - 1] == ' ') end--;
  size_t n = end - i;
  if (n >= stage_len) n = stage_len - 1;
  for (size_t k = 0; k < n; k++) {
    unsigned char ch = (unsigned char)line[i + k];
    stage[k] = (ch < 0x20 || ch == 0x7f) ? '_' : (char)ch;
  }
  stage[n] = '\0';
  *progress = value;
  return 1;
}

int reel_scheduler_parse_cost(const char *line, size_t len, char *stage, size_t stage_len, double *amount, char *unit,
                              size_t unit_len) {
  static const char prefix[] = "REEL_COST ";
  size_t plen = sizeof prefix - 1;
  if (len <= plen || len > 512 || memcmp(line, prefix, plen) != 0) return 0;
  char copy[513], name[128] = "", unit_text[64] = "cpu_seconds", extra[2];
  memcpy(copy, line, len);
  copy[len] = '\0';
  double value;
  int n = sscanf(copy + plen, "%127s %lf %63s %1s", name, &value, unit_text, extra);
  if (n < 2 || n > 3 || !(value >= 0) || value > 1e12) return 0;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
      return 0;
  for (const char *p = unit_text; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_')) return 0;
  snprintf(stage, stage_len, "%s", name);
  snprintf(unit, unit_len, "%s", unit_text);
  *amount = value;
  return 1;
}

void reel_scheduler_add_cost(json_t *cost, const char *stage, double amount, const char *unit) {
  json_t *per_unit = json_object_get(cost, unit);
  if (!per_unit) {
    per_unit = json_pack("{s:f, s:{}}", "total", 0.0, "stages");
    if (!per_unit || json_object_set_new(cost, unit, per_unit) != 0) return;
  }
  json_t *stages = json_object_get(per_unit, "stages");
  double before = json_number_value(json_object_get(stages, stage));
  json_object_set_new(stages, stage, json_real(before + amount));
  json_object_set_new(per_unit, "total", json_real(json_number_value(json_object_get(per_unit, "total")) + amount));
}

/* reel-render lives next to reeld (both are built into the same directory). */
static int render_path(char *out, size_t n) {
  char exe[4096];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) return REEL_EIO;
  exe[len] = '\0';
  char *slash = strrchr(exe, '/');
  if (!slash) return REEL_EIO;
  *slash = '\0';
  snprintf(out, n, "%s/reel-render", exe);
  return 0;
}

char **reel_scheduler_backend_argv(const reel_config *cfg, const char *config_path, const char *prompt,
                                   const char *workspace, char *err, size_t errlen) {
  if (strcmp(cfg->default_backend, "command") == 0)
    return reel_scheduler_build_argv(cfg->command_argv, config_path, prompt, workspace);
  char render[4200], cache[4200];
  char *data_dir = realpath(cfg->data_dir, NULL);
  if (render_path(render, sizeof render) != 0 || !data_dir) {
    free(data_dir);
    snprintf(err, errlen, "cannot locate reel-render or data_dir");
    return NULL;
  }
  snprintf(cache, sizeof cache, "%s/cache", data_dir);
  free(data_dir);
  char *template_argv[] = {render, "--config", "{config}", "--cache-dir", cache, NULL};
  return reel_scheduler_build_argv(template_argv, config_path, prompt, workspace);
}

int reel_scheduler_check_backend(const reel_config *cfg, char *err, size_t errlen) {
  if (strcmp(cfg->default_backend, "local") != 0) return 0;
  char render[4200];
  if (render_path(render, sizeof render) != 0 || access(render, X_OK) != 0) {
    snprintf(err, errlen, "the built-in renderer reel-render is missing next to reeld: build it with make");
    return REEL_ENOTFOUND;
  }
  return reel_render_check_tools(err, errlen);
}

int reel_scheduler_write_config(const char *workspace, const json_t *effective, char *config_path,
                                size_t config_path_len, char *err, size_t errlen) {
  snprintf(config_path, config_path_len, "%s/" REEL_WORKSPACE_CONFIG, workspace);
  char *yaml = reel_config_to_yaml(effective);
  if (!yaml) {
    snprintf(err, errlen, "cannot write the job's effective config");
    return REEL_ENOMEM;
  }
  FILE *f = fopen(config_path, "w");
  int ok = f && fputs(yaml, f) >= 0;
  if (f && fclose(f) != 0) ok = 0;
  free(yaml);
  if (!ok) {
    snprintf(err, errlen, "cannot write %s", REEL_WORKSPACE_CONFIG);
    return REEL_EIO;
  }
  return 0;
}

int reel_scheduler_prepare_workspace(const char *workspace, const json_t *effective, char *config_path,
                                     size_t config_path_len, char *err, size_t errlen) {
  reel_fs_remove_tree(workspace);
  int rc = reel_workspace_make(workspace, err, errlen);
  return rc != 0 ? rc : reel_scheduler_write_config(workspace, effective, config_path, config_path_len, err, errlen);
}

/* ---- run bookkeeping ---- */

static void run_unlink(reel_scheduler *s, reel_run *r) {
  if (r->prev) r->prev->next = r->next;
  else s->runs = r->next;
  if (r->next) r->next->prev = r->prev;
  s->n_running--;
  reel_metrics_set_running(s->n_running);
}

static void maybe_stopped(reel_scheduler *s) {
  if (s->stopping && s->n_running == 0 && !s->claim_in_flight && !s->renew_in_flight && s->on_stopped) {
    void (*cb)(void *) = s->on_stopped;
    s->on_stopped = NULL;
    cb(s->on_stopped_data);
  }
}

static void on_run_timer_closed(uv_handle_t *h) {
  reel_run *r = h->data;
  reel_scheduler *s = r->sched;
  reel_buf_free(&r->pending_log);
  reel_job_op_cleanup(&r->log_op);
  reel_job_op_cleanup(&r->progress_op);
  reel_job_op_cleanup(&r->final_op);
  json_decref(r->cost);
  free(r);
  try_claim(s);
  maybe_stopped(s);
}

static void on_final_done(reel_job_op *op, int result);

/* The run's itemized cost as JSON text (heap), or NULL when nothing was reported. */
static char *cost_text(reel_run *r) {
  return json_object_size(r->cost) ? json_dumps(r->cost, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(6)) : NULL;
}


static void submit_final(reel_run *r, reel_job_op_kind kind) {
  reel_job_op *op = &r->final_op;
  reel_job_op_cleanup(op);
  reel_job_op_init(op, kind);
  memcpy(op->id, r->id, sizeof op->id);
  op->fence = r->fence;
  op->cost = cost_text(r);
  op->cb = on_final_done;
  op->data = r;
}

static void final_fail(reel_run *r, const char *reason, const char *message) {
  submit_final(r, REEL_JOB_OP_FAIL);
  r->final_op.reason = reason;
  r->final_op.text = reel_redact_dup(message);
  reel_jobs_run(r->sched->jobs, &r->final_op);
}

static void error_tail(reel_run *r, char *out, size_t n) {
  out[0] = '\0';
  size_t used = 0;
  int first = (r->tail_next - r->tail_count + ERROR_TAIL_LINES) % ERROR_TAIL_LINES;
  for (int i = 0; i < r->tail_count; i++) {
    const char *line = r->stderr_tail[(first + i) % ERROR_TAIL_LINES];
    int w = snprintf(out + used, n - used, "%s%s", used ? " | " : "", line);
    if (w < 0 || (size_t)w >= n - used) break;
    used += (size_t)w;
  }
}

/* Storing artifacts may take seconds (object storage, retries), so it runs on
 * libuv's thread pool; the loop goes on serving while it does. */
typedef struct {
  uv_work_t work;
  reel_run *run;
  char artifact[4200], captions[4200];
  char *key, *captions_key;
  char *uri, *gcs_uri;
  int rc;
  char err[512];
} upload_work;

static void upload_in_thread(uv_work_t *w) {
  upload_work *u = w->data;
  reel_storage *st = u->run->sched->storage;
  u->rc = u->key ? st->ops->put_file(st, u->key, u->artifact, &u->uri, &u->gcs_uri, u->err, sizeof u->err) : REEL_ENOMEM;
  /* a pipeline may also leave captions beside the video: a second artifact, best effort */
  struct stat info;
  if (u->rc == 0 && u->captions_key && stat(u->captions, &info) == 0 && S_ISREG(info.st_mode)) {
    char *uri = NULL, *gcs_uri = NULL, err[256];
    if (st->ops->put_file(st, u->captions_key, u->captions, &uri, &gcs_uri, err, sizeof err) != 0)
      reel_log(REEL_LOG_WARN, "storing captions failed", "{s:s}", "job_id", u->run->id);
    free(uri);
    free(gcs_uri);
  }
}

static void upload_done(uv_work_t *w, int status) {
  upload_work *u = w->data;
  reel_run *r = u->run;
  reel_scheduler *s = r->sched;
  if (status != 0 || u->rc != 0) {
    /* keep the video for inspection (the workspace is removed), named in config terms */
    char kept_dir[4400], kept[4500], msg[1100];
    snprintf(kept_dir, sizeof kept_dir, "%s/../failed-uploads/%s", s->work_dir, r->id);
    snprintf(kept, sizeof kept, "%s/final_video.mp4", kept_dir);
    int kept_ok = reel_fs_make_dirs(kept_dir, 0700) == 0 && rename(u->artifact, kept) == 0;
    snprintf(msg, sizeof msg, "storing the artifact in the %s storage backend (service.storage) failed: %s%s%s%s",
             s->storage->ops->name, status != 0 || !u->err[0] ? reel_strerror(status != 0 ? REEL_EIO : u->rc) : u->err,
             kept_ok ? "; the video is kept under service.data_dir in failed-uploads/" : "", kept_ok ? r->id : "",
             kept_ok ? "/final_video.mp4" : "");
    free(u->uri);
    free(u->gcs_uri);
    free(u->key);
    final_fail(r, "storage", msg);
  } else {
    submit_final(r, REEL_JOB_OP_FINISH);
    r->final_op.artifact_key = u->key;
    r->final_op.artifact_uri = u->uri;
    r->final_op.gcs_uri = u->gcs_uri;
    reel_jobs_run(s->jobs, &r->final_op);
  }
  free(u->captions_key);
  free(u);
}

static void finish_success(reel_run *r) {
  reel_scheduler *s = r->sched;
  upload_work *u = calloc(1, sizeof *u);
  if (!u) {
    final_fail(r, "storage", "out of memory storing the artifact");
    return;
  }
  snprintf(u->artifact, sizeof u->artifact, "%s/output/final_video.mp4", r->workspace);
  snprintf(u->captions, sizeof u->captions, "%s/output/captions.vtt", r->workspace);
  struct stat st;
  if (stat(u->artifact, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
    free(u);
    final_fail(r, "artifact_missing",
               "the pipeline exited with status 0 but did not write output/final_video.mp4 in its workspace");
    return;
  }
  u->run = r;
  u->key = reel_storage_key(s->cfg->storage_prefix, r->created_ms, r->id, "final_video.mp4");
  u->captions_key = reel_storage_key(s->cfg->storage_prefix, r->created_ms, r->id, "captions.vtt");
  u->work.data = u;
  if (uv_queue_work(s->loop, &u->work, upload_in_thread, upload_done) != 0) {
    free(u->key);
    free(u->captions_key);
    free(u);
    final_fail(r, "storage", "cannot start storing the artifact");
  }
}

static void finalize(reel_run *r) {
  reel_scheduler *s = r->sched;
  r->finalized = 1;
  uv_timer_stop(&r->timeout_timer);
  char tail[1024], msg[1400];
  error_tail(r, tail, sizeof tail);
  if (r->stop == STOP_LOST) { /* the job is another node's now: write nothing */
    reel_job_op_cleanup(&r->final_op);
    reel_job_op_init(&r->final_op, REEL_JOB_OP_CANCELED);
    r->final_op.data = r;
    on_final_done(&r->final_op, REEL_ESTALE);
    return;
  }
  if (r->stop == STOP_CANCEL) {
    submit_final(r, REEL_JOB_OP_CANCELED);
    reel_jobs_run(s->jobs, &r->final_op);
  } else if (r->stop == STOP_TIMEOUT) {
    snprintf(msg, sizeof msg, "the job ran longer than service.job_timeout_seconds (%g s) and was stopped",
             s->cfg->job_timeout_seconds);
    final_fail(r, "timeout", msg);
  } else if (r->stop == STOP_SHUTDOWN) {
    submit_final(r, REEL_JOB_OP_RETRY);
    r->final_op.text = strdup("interrupted by a reeld shutdown; requeued");
    r->final_op.uncount_attempt = 1;
    reel_jobs_run(s->jobs, &r->final_op);
  } else if (r->preset_reason) {
    final_fail(r, r->preset_reason, r->preset_error);
  } else if (r->exit_status == 0 && r->term_signal == 0) {
    finish_success(r);
  } else if (r->exit_status == EXIT_UNAVAILABLE && r->term_signal == 0) {
    snprintf(msg, sizeof msg, "the pipeline backend cannot run on this machine%s%s", tail[0] ? ": " : "", tail);
    final_fail(r, "backend_unavailable", msg);
  } else if (r->exit_status == EXIT_TEMPFAIL && r->attempts < s->cfg->max_attempts) {
    int64_t delay = reel_jobs_backoff_ms(r->attempts, (int64_t)(s->cfg->retry_base_seconds * 1000),
                                         (int64_t)(s->cfg->retry_max_seconds * 1000), reel_random_unit());
    snprintf(msg, sizeof msg, "transient failure (exit status 75) on attempt %d of %d; retrying in %.1f s%s%s",
             r->attempts, s->cfg->max_attempts, (double)delay / 1000.0, tail[0] ? ": " : "", tail);
    submit_final(r, REEL_JOB_OP_RETRY);
    r->final_op.text = reel_redact_dup(msg);
    r->final_op.delay_ms = delay;
    reel_jobs_run(s->jobs, &r->final_op);
  } else {
    if (r->term_signal)
      snprintf(msg, sizeof msg, "the pipeline was killed by signal %d%s%s", r->term_signal, tail[0] ? ": " : "", tail);
    else if (r->exit_status == EXIT_TEMPFAIL)
      snprintf(msg, sizeof msg, "transient failure (exit status 75) on every one of %d attempts (service.max_attempts)%s%s",
               s->cfg->max_attempts, tail[0] ? ": " : "", tail);
    else
      snprintf(msg, sizeof msg, "the pipeline exited with status %lld%s%s", (long long)r->exit_status,
               tail[0] ? ": " : "", tail);
    final_fail(r, "exit_status", msg);
  }
}

static void maybe_finalize(reel_run *r) {
  if (r->child_done && !r->finalized && !r->log_in_flight && r->pending_lines == 0 && !r->progress_in_flight)
    finalize(r);
}

static void on_final_retry(uv_timer_t *t) {
  reel_run *r = t->data;
  r->final_waiting = 0;
  if (r->cancel_pending && r->final_op.kind != REEL_JOB_OP_CANCELED) {
    submit_final(r, REEL_JOB_OP_CANCELED); /* what was asked while the end waited */
  } else {
    reel_job_clear(&r->final_op.job); /* outputs of the failed try; the inputs stay */
  }
  reel_jobs_run(r->sched->jobs, &r->final_op);
}

static void on_final_done(reel_job_op *op, int result) {
  reel_run *r = op->data;
  reel_scheduler *s = r->sched;
  if (result == REEL_ESTORE || result == REEL_ENOMEM) {
    /* the store did not take the end: the job would stay started with
     * nothing running, so try again until it lands (a shutdown stops
     * trying: recovery at the next start requeues the job) */
    r->final_failures++;
    if (!s->stopping) {
      int64_t delay = reel_jobs_backoff_ms(r->final_failures, FINAL_RETRY_BASE_MS, FINAL_RETRY_MAX_MS,
                                           reel_random_unit());
      if (r->final_failures == 1 || r->final_failures % 20 == 0)
        reel_log(REEL_LOG_WARN, "recording the end of a job failed; retrying", "{s:s, s:s, s:s, s:i, s:I}", "job_id",
                 r->id, "end", reel_job_status_name(op->kind == REEL_JOB_OP_FINISH   ? REEL_JOB_FINISHED
                                                    : op->kind == REEL_JOB_OP_RETRY  ? REEL_JOB_QUEUED
                                                    : op->kind == REEL_JOB_OP_FAIL   ? REEL_JOB_FAILED
                                                                                     : REEL_JOB_CANCELED),
                 "error", reel_strerror(result), "tries", r->final_failures, "retry_in_ms", (json_int_t)delay);
      r->final_waiting = 1;
      uv_timer_start(&r->timeout_timer, on_final_retry, (uint64_t)delay, 0);
      return;
    }
    reel_log(REEL_LOG_ERROR, "recording the end of a job failed; reeld is stopping, the job is requeued at the next start",
             "{s:s, s:s, s:i}", "job_id", r->id, "error", reel_strerror(result), "tries", r->final_failures);
  } else if (r->final_failures) {
    reel_log(REEL_LOG_INFO, "recorded the end of a job after the store recovered", "{s:s, s:i}", "job_id", r->id,
             "tries", r->final_failures + 1);
  }
  if (result == REEL_ESTALE) {
    if (r->stop != STOP_LOST)
      reel_log(REEL_LOG_WARN, "the job passed to another node: this run's end is not recorded", "{s:s, s:i}", "job_id",
               r->id, "attempt", r->attempts);
  } else if (result == REEL_ECONFLICT && (op->kind == REEL_JOB_OP_RETRY || op->kind == REEL_JOB_OP_FINISH ||
                                   op->kind == REEL_JOB_OP_FAIL)) {
    /* the job was cancelled while it ended: record the cancel */
    if (op->kind == REEL_JOB_OP_RETRY) {
      submit_final(r, REEL_JOB_OP_CANCELED);
      reel_jobs_run(s->jobs, &r->final_op);
      return;
    }
  } else if (result != 0 && result != REEL_ESTORE && result != REEL_ENOMEM) {
    reel_log(REEL_LOG_ERROR, "recording the end of a job failed", "{s:s, s:s}", "job_id", r->id, "error",
             reel_strerror(result));
  }
  int keep = op->kind == REEL_JOB_OP_FAIL && s->cfg->keep_failed_workspaces;
  if (!keep) reel_workspaces_discard(&s->workspaces, r->workspace);
  run_unlink(s, r);
  uv_close((uv_handle_t *)&r->timeout_timer, on_run_timer_closed);
}

/* ---- output and progress ---- */

static void on_log_done(reel_job_op *op, int result);

static void flush_log(reel_run *r) {
  if (r->log_in_flight || r->pending_lines == 0) return;
  reel_job_op_cleanup(&r->log_op);
  reel_job_op_init(&r->log_op, REEL_JOB_OP_LOG);
  memcpy(r->log_op.id, r->id, sizeof r->log_op.id);
  r->log_op.fence = r->fence;
  if (r->dropped_lines) {
    reel_buf_printf(&r->pending_log, "[reel] %d output lines were dropped because the job wrote faster than they could be stored\n",
                    r->dropped_lines);
    r->dropped_lines = 0;
  }
  r->log_op.text = reel_buf_steal(&r->pending_log);
  r->pending_lines = 0;
  r->log_op.cb = on_log_done;
  r->log_op.data = r;
  r->log_in_flight = 1;
  reel_jobs_run(r->sched->jobs, &r->log_op);
}

static void on_log_done(reel_job_op *op, int result) {
  reel_run *r = op->data;
  r->log_in_flight = 0;
  if (result == REEL_ESTALE) run_lost(r, "a log write was refused: the job is no longer this run's");
  flush_log(r);
  maybe_finalize(r);
}

static void on_progress_done(reel_job_op *op, int result);

static void flush_progress(reel_run *r) {
  if (r->progress_in_flight || !r->progress_dirty || r->finalized) return;
  reel_job_op_cleanup(&r->progress_op);
  reel_job_op_init(&r->progress_op, REEL_JOB_OP_PROGRESS);
  memcpy(r->progress_op.id, r->id, sizeof r->progress_op.id);
  r->progress_op.fence = r->fence;
  r->progress_op.progress = r->next_progress;
  memcpy(r->progress_op.stage, r->next_stage, sizeof r->progress_op.stage);
  for (int i = 0; i < r->n_passed; i++) {
    r->progress_op.earlier[i].progress = r->passed[i].progress;
    memcpy(r->progress_op.earlier[i].stage, r->passed[i].stage, sizeof r->passed[i].stage);
  }
  r->progress_op.n_earlier = r->n_passed;
  r->n_passed = 0;
  if (r->cost_dirty) r->progress_op.cost = cost_text(r);
  r->cost_dirty = 0;
  r->progress_op.cb = on_progress_done;
  r->progress_op.data = r;
  r->progress_dirty = 0;
  r->progress_in_flight = 1;
  reel_jobs_run(r->sched->jobs, &r->progress_op);
}

static void on_progress_done(reel_job_op *op, int result) {
  reel_run *r = op->data;
  r->progress_in_flight = 0;
  if (result == REEL_ESTALE) run_lost(r, "a progress write was refused: the job is no longer this run's");
  flush_progress(r);
  maybe_finalize(r);
}

static void on_child_line(reel_child *child, const char *line, size_t len, int is_stderr) {
  reel_run *r = child->data;
  int progress;
  char stage[64], unit[64];
  double amount;
  if (!is_stderr && reel_scheduler_parse_cost(line, len, stage, sizeof stage, &amount, unit, sizeof unit)) {
    reel_scheduler_add_cost(r->cost, stage, amount, unit);
    r->cost_dirty = 1;
    r->progress_dirty = 1;
    flush_progress(r);
    return;
  }
  if (!is_stderr && reel_scheduler_parse_progress(line, len, &progress, stage, sizeof stage)) {
    if (r->progress_dirty && stage[0] && strcmp(stage, r->next_stage) != 0) {
      /* a new stage before the last one was written: keep the last as passed */
      if (r->n_passed == REEL_JOB_MAX_EARLIER_STAGES) {
        memmove(&r->passed[0], &r->passed[1], sizeof r->passed[0] * (REEL_JOB_MAX_EARLIER_STAGES - 1));
        r->n_passed--;
      }
      r->passed[r->n_passed].progress = r->next_progress;
      memcpy(r->passed[r->n_passed].stage, r->next_stage, sizeof r->next_stage);
      r->n_passed++;
    }
    r->next_progress = progress;
    if (stage[0]) memcpy(r->next_stage, stage, sizeof stage);
    r->progress_dirty = 1;
    flush_progress(r);
    return;
  }
  reel_buf clean;
  reel_buf_init(&clean, r->sched->cfg->max_log_line_bytes + 64);
  /* redacted before it is cut to max_log_line_bytes (the child keeps a lookahead past it) */
  if (reel_redact_line(line, len, len >= r->child.max_line, r->sched->cfg->max_log_line_bytes, &clean) != 0 ||
      !clean.data) {
    reel_buf_free(&clean);
    return;
  }
  /* control characters would corrupt the one-line-per-entry log */
  for (size_t i = 0; i < clean.len; i++)
    if ((unsigned char)clean.data[i] < 0x20 && clean.data[i] != '\t') clean.data[i] = ' ';
  if (is_stderr) {
    snprintf(r->stderr_tail[r->tail_next], sizeof r->stderr_tail[0], "%s", clean.data);
    r->tail_next = (r->tail_next + 1) % ERROR_TAIL_LINES;
    if (r->tail_count < ERROR_TAIL_LINES) r->tail_count++;
  }
  if (r->pending_lines >= MAX_PENDING_LOG_LINES) {
    r->dropped_lines++;
  } else if (reel_buf_append(&r->pending_log, clean.data, clean.len) == 0 &&
             reel_buf_append(&r->pending_log, "\n", 1) == 0) {
    r->pending_lines++;
  }
  reel_buf_free(&clean);
  flush_log(r);
}

static void on_child_done(reel_child *child, int64_t exit_status, int term_signal) {
  reel_run *r = child->data;
  r->child_done = 1;
  if (r->recorded) reel_run_record_remove(r->sched->procs_dir, r->id);
  r->recorded = 0;
  r->exit_status = exit_status;
  r->term_signal = term_signal;
  reel_log(REEL_LOG_INFO, "job process ended", "{s:s, s:I, s:i}", "job_id", r->id, "exit_status",
           (json_int_t)exit_status, "signal", term_signal);
  maybe_finalize(r);
}

/* The job is no longer this run's (its lease lapsed or another node holds
 * it): stop the process group and write nothing more for it. */
static void run_lost(reel_run *r, const char *why) {
  if (r->stop == STOP_LOST) return;
  r->stop = STOP_LOST;
  reel_metrics_lease_lost();
  reel_log(REEL_LOG_WARN, "stopping a run that lost its job", "{s:s, s:i, s:s}", "job_id", r->id, "attempt",
           r->attempts, "reason", why);
  /* the job may start elsewhere as soon as its lease lapses, which is at most
   * lease_margin_ms away: the grace must end before that */
  uint64_t grace = (uint64_t)(r->sched->cfg->cancel_grace_seconds * 1000), margin = lease_margin_ms(r->sched);
  if (!r->child_done) reel_child_stop(&r->child, grace < margin ? grace : margin);
}

static void on_timeout(uv_timer_t *t) {
  reel_run *r = t->data;
  if (r->stop != STOP_NONE || r->child_done) return;
  r->stop = STOP_TIMEOUT;
  reel_child_stop(&r->child, (uint64_t)(r->sched->cfg->cancel_grace_seconds * 1000));
}

/* ---- starting runs ---- */

static void start_run(reel_scheduler *s, const reel_job *job) {
  reel_run *r = calloc(1, sizeof *r);
  if (!r) return; /* the job stays started; recovery requeues it at the next start */
  r->sched = s;
  memcpy(r->id, job->id, sizeof r->id);
  r->attempts = job->attempts;
  snprintf(r->fence.node, sizeof r->fence.node, "%s", job->node);
  r->fence.attempt = job->attempts;
  reel_metrics_run_started();
  r->created_ms = job->created_ms;
  json_error_t jerr;
  r->cost = job->cost ? json_loads(job->cost, 0, &jerr) : NULL;
  if (!json_is_object(r->cost)) {
    json_decref(r->cost);
    r->cost = json_object();
  }
  reel_buf_init(&r->pending_log, (size_t)MAX_PENDING_LOG_LINES * (s->cfg->max_log_line_bytes + 64));
  snprintf(r->workspace, sizeof r->workspace, "%s/%s", s->work_dir, job->id);
  r->next = s->runs;
  if (r->next) r->next->prev = r;
  s->runs = r;
  s->n_running++;
  reel_metrics_set_running(s->n_running);
  uv_timer_init(s->loop, &r->timeout_timer);
  r->timeout_timer.data = r;

  json_t *effective = reel_config_effective(s->cfg->pipeline, s->cli_prompt, job->prompt);
  char config_path[4300], err[512];
  int rc = effective ? reel_workspaces_take(&s->workspaces, r->workspace, err, sizeof err) : REEL_ENOMEM;
  if (rc == 0) rc = reel_scheduler_write_config(r->workspace, effective, config_path, sizeof config_path, err, sizeof err);
  json_decref(effective);
  if (rc != 0) {
    r->preset_reason = "spawn";
    snprintf(r->preset_error, sizeof r->preset_error, "%s", err);
    r->child_done = 1;
    maybe_finalize(r);
    return;
  }
  char **argv = reel_scheduler_backend_argv(s->cfg, config_path, job->prompt, r->workspace, err, sizeof err);
  if (!argv) {
    r->preset_reason = "spawn";
    snprintf(r->preset_error, sizeof r->preset_error, "cannot build the pipeline's command line: %s", err);
    r->child_done = 1;
    maybe_finalize(r);
    return;
  }
  static const reel_child_callbacks callbacks = {.line = on_child_line, .done = on_child_done};
  rc = reel_child_spawn(&r->child, s->loop, argv, r->workspace, s->cfg->max_log_line_bytes + reel_redact_lookahead(),
                        &callbacks, r, err, sizeof err);
  reel_scheduler_free_argv(argv);
  if (rc != 0) {
    r->preset_reason = "spawn";
    snprintf(r->preset_error, sizeof r->preset_error, "pipeline.command: %s", err);
    return; /* on_child_done follows once libuv has closed the handles */
  }
  r->recorded = reel_run_record_write(s->procs_dir, r->id, r->child.pid) == 0;
  if (!r->recorded)
    reel_log(REEL_LOG_WARN, "cannot record the job's process group", "{s:s, s:s}", "job_id", r->id, "dir",
             s->procs_dir);
  reel_log(REEL_LOG_INFO, "job process started", "{s:s, s:i, s:i}", "job_id", r->id, "pid", r->child.pid,
           "attempt", r->attempts);
  uv_timer_start(&r->timeout_timer, on_timeout, (uint64_t)(s->cfg->job_timeout_seconds * 1000), 0);
}

static void on_requeue_done(reel_job_op *op, int result) {
  (void)result;
  reel_scheduler *s = op->data;
  s->claim_in_flight--;
  reel_job_op_cleanup(op);
  free(op);
  maybe_stopped(s);
}

/* A job claimed just as the scheduler began stopping goes straight back to the queue. */
static void requeue_unstarted(reel_scheduler *s, const reel_job *job) {
  reel_job_op *back = calloc(1, sizeof *back);
  if (!back) return; /* its lease lapses and it is rescued */
  reel_job_op_init(back, REEL_JOB_OP_RETRY);
  memcpy(back->id, job->id, sizeof back->id);
  snprintf(back->fence.node, sizeof back->fence.node, "%s", job->node);
  back->fence.attempt = job->attempts;
  back->text = strdup("interrupted by a reeld shutdown; requeued");
  back->uncount_attempt = 1;
  back->cb = on_requeue_done;
  back->data = s;
  s->claim_in_flight++;
  reel_jobs_run(s->jobs, back);
}

static void on_claim_done(reel_job_op *op, int result) {
  reel_scheduler *s = op->data;
  s->claim_in_flight--;
  reel_job *claimed = op->limit > 1 ? op->list : &op->job;
  int n = result != 0 ? 0 : op->limit > 1 ? op->n_list : 1;
  /* with no run before these, a deadline still armed belongs to leases that
   * ended (renewals stop when nothing runs): these runs' lease starts now */
  if (n && !s->stopping && (s->n_running == 0 || !uv_is_active((uv_handle_t *)&s->lease_deadline_timer)))
    arm_lease_deadline(s, s->claim_sent_at);
  for (int i = 0; i < n; i++) {
    if (!s->stopping) start_run(s, &claimed[i]);
    else requeue_unstarted(s, &claimed[i]);
  }
  if (result != 0 && result != REEL_ENOTFOUND)
    reel_log(REEL_LOG_ERROR, "claiming a job failed", "{s:s}", "error", reel_strerror(result));
  int full = n > 0 && n == (op->limit > 1 ? op->limit : 1);
  reel_job_op_cleanup(op);
  free(op);
  if (full || s->claim_again) try_claim(s); /* there may be more waiting */
  maybe_stopped(s);
}

static void try_claim(reel_scheduler *s) {
  if (s->claim_in_flight) s->claim_again = 1; /* its answer may predate what woke us */
  if (s->stopping || s->claim_in_flight || s->n_running >= s->cfg->workers) return;
  s->claim_again = 0;
  reel_job_op *op = calloc(1, sizeof *op);
  if (!op) return;
  reel_job_op_init(op, REEL_JOB_OP_CLAIM);
  op->limit = s->cfg->workers - s->n_running; /* every free slot in one transaction */
  snprintf(op->fence.node, sizeof op->fence.node, "%s", s->node);
  op->lease_ms = (int64_t)s->cfg->lease_seconds * 1000;
  op->cb = on_claim_done;
  op->data = s;
  s->claim_in_flight++;
  s->claim_sent_at = s->last_claim_at = uv_now(s->loop);
  reel_jobs_run(s->jobs, op);
}

/* With wake-ups arriving by themselves, the poll only catches what no
 * notification announces (a retry's backoff ending) and what a lost one
 * would have: every POLL_FALLBACK_MS instead of every POLL_INTERVAL_MS. */
static void on_poll(uv_timer_t *t) {
  reel_scheduler *s = t->data;
  if (s->wakeups_live && s->wakeups_live(s->wakeups_data) && uv_now(s->loop) - s->last_claim_at < POLL_FALLBACK_MS)
    return;
  try_claim(s);
}

/* ---- leases ---- */

static uint64_t lease_ms(const reel_scheduler *s) { return (uint64_t)s->cfg->lease_seconds * 1000; }

/* How long before its lease lapses a run stops when no renewal got through:
 * a tenth of the lease, at most 2 s (the run must be gone before a rescue). */
static uint64_t lease_margin_ms(const reel_scheduler *s) {
  uint64_t m = lease_ms(s) / 10;
  return m > 2000 ? 2000 : m;
}

static void on_lease_deadline(uv_timer_t *t) {
  reel_scheduler *s = t->data;
  for (reel_run *r = s->runs; r; r = r->next)
    run_lost(r, "no lease renewal reached the job store for service.lease_seconds");
}

/* Arms the deadline by which every run stops unless a renewal lands: a lease
 * from sent_at (uv_now when the claim or renewal that set it was sent). */
static void arm_lease_deadline(reel_scheduler *s, uint64_t sent_at) {
  uint64_t now = uv_now(s->loop), until = sent_at + lease_ms(s) - lease_margin_ms(s);
  uv_timer_start(&s->lease_deadline_timer, on_lease_deadline, until > now ? until - now : 0, 0);
}

static reel_run *find_run(reel_scheduler *s, const char *job_id) {
  for (reel_run *r = s->runs; r; r = r->next)
    if (strcmp(r->id, job_id) == 0) return r;
  return NULL;
}

static void on_renew_tick(uv_timer_t *t);

static void on_renew_done(reel_job_op *op, int result) {
  reel_scheduler *s = op->data;
  s->renew_in_flight = 0;
  if (result == 0) {
    for (int i = 0; i < op->n_leases; i++) {
      reel_job_lease *l = &op->leases[i];
      reel_run *r = find_run(s, l->id);
      if (!r || r->fence.attempt != l->attempt) continue; /* ended meanwhile */
      if (!l->held) {
        run_lost(r, "its lease passed to another node");
        continue;
      }
      reel_metrics_lease_renewed();
      if (l->cancel_requested && r->stop != STOP_CANCEL) reel_scheduler_cancel(s, r->id); /* a missed wake-up */
    }
    if (!s->stopping) arm_lease_deadline(s, s->renew_sent_at);
  } else {
    reel_log(REEL_LOG_WARN, "renewing job leases failed", "{s:s, s:i}", "error", reel_strerror(result), "runs",
             op->n_leases);
  }
  free(s->renewing);
  s->renewing = NULL;
  op->leases = NULL;
  op->n_leases = 0;
  reel_job_op_cleanup(op);
  /* a slow store made us skip a tick: the next renewal goes now, not a whole
   * period later, so one slow answer does not leave the lease short */
  if (s->renew_again && !s->stopping) {
    s->renew_again = 0;
    on_renew_tick(&s->renew_timer);
  }
  maybe_stopped(s);
}

static void on_renew_tick(uv_timer_t *t) {
  reel_scheduler *s = t->data;
  if (s->renew_in_flight) s->renew_again = s->n_running > 0;
  if (s->renew_in_flight || s->n_running == 0) return;
  s->renew_again = 0;
  s->renewing = calloc((size_t)s->n_running, sizeof *s->renewing);
  if (!s->renewing) return;
  int n = 0;
  for (reel_run *r = s->runs; r && n < s->n_running; r = r->next) {
    if (r->stop == STOP_LOST) continue;
    memcpy(s->renewing[n].id, r->id, sizeof s->renewing[n].id);
    s->renewing[n].attempt = r->fence.attempt;
    n++;
  }
  reel_job_op_init(&s->renew_op, REEL_JOB_OP_RENEW);
  snprintf(s->renew_op.fence.node, sizeof s->renew_op.fence.node, "%s", s->node);
  s->renew_op.lease_ms = (int64_t)lease_ms(s);
  s->renew_op.leases = s->renewing;
  s->renew_op.n_leases = n;
  s->renew_op.cb = on_renew_done;
  s->renew_op.data = s;
  s->renew_in_flight = 1;
  s->renew_sent_at = uv_now(s->loop);
  reel_jobs_run(s->jobs, &s->renew_op);
}

/* Removes what earlier runs left in work_dir (their jobs are requeued or ended). */
static void clear_work_dir(const char *work_dir) {
  DIR *dir = opendir(work_dir);
  if (!dir) return;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", work_dir, e->d_name);
    reel_fs_remove_tree(path);
  }
  closedir(dir);
}

int reel_scheduler_start(reel_scheduler *s, uv_loop_t *loop, reel_jobs *jobs, const reel_config *cfg,
                         const char *node, const char *cli_prompt, reel_storage *storage, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->loop = loop;
  s->jobs = jobs;
  s->cfg = cfg;
  s->cli_prompt = cli_prompt;
  s->storage = storage;
  snprintf(s->node, sizeof s->node, "%s", node);
  /* absolute, because each job's process runs with its workspace as cwd */
  char *data_dir = realpath(cfg->data_dir, NULL);
  if (!data_dir) {
    snprintf(err, errlen, "cannot resolve data_dir %s: %s", cfg->data_dir, strerror(errno));
    return REEL_EIO;
  }
  size_t n = strlen(data_dir) + 8;
  s->work_dir = malloc(n);
  if (s->work_dir) snprintf(s->work_dir, n, "%s/work", data_dir);
  free(data_dir);
  if (!s->work_dir) return REEL_ENOMEM;
  if (mkdir(s->work_dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot create %s: %s", s->work_dir, strerror(errno));
    return REEL_EIO;
  }
  /* processes a dead reeld left running, found by the record made when each
   * was spawned (this process holds the data_dir lock and has started
   * nothing yet); their jobs are requeued by recovery, so the old runs must
   * not go on beside the new ones */
  snprintf(s->procs_dir, sizeof s->procs_dir, "%.*s/procs", (int)(strlen(s->work_dir) - strlen("/work")), s->work_dir);
  if (mkdir(s->procs_dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot create %s: %s", s->procs_dir, strerror(errno));
    return REEL_EIO;
  }
  int reaped = reel_run_record_reap(s->procs_dir);
  if (reaped) reel_log(REEL_LOG_WARN, "killed processes left by an earlier reeld", "{s:i}", "processes", reaped);
  if (!cfg->keep_failed_workspaces) clear_work_dir(s->work_dir);
  reel_workspaces_init(&s->workspaces, loop, s->work_dir, cfg->workers);
  uv_timer_init(loop, &s->poll_timer);
  s->poll_timer.data = s;
  uv_timer_start(&s->poll_timer, on_poll, POLL_INTERVAL_MS, POLL_INTERVAL_MS);
  uv_timer_init(loop, &s->renew_timer);
  s->renew_timer.data = s;
  uint64_t every = lease_ms(s) / 3;
  uv_timer_start(&s->renew_timer, on_renew_tick, every, every);
  uv_timer_init(loop, &s->lease_deadline_timer);
  s->lease_deadline_timer.data = s;
  try_claim(s);
  return 0;
}

void reel_scheduler_poke(reel_scheduler *s) { try_claim(s); }

int reel_scheduler_cancel(reel_scheduler *s, const char *job_id) {
  for (reel_run *r = s->runs; r; r = r->next) {
    if (strcmp(r->id, job_id) != 0) continue;
    if (r->stop == STOP_NONE || r->stop == STOP_SHUTDOWN) r->stop = STOP_CANCEL;
    if (!r->child_done) reel_child_stop(&r->child, (uint64_t)(s->cfg->cancel_grace_seconds * 1000));
    if (r->finalized) r->cancel_pending = 1; /* its end is being recorded: a retry records the cancel */
    return 0;
  }
  return REEL_ENOTFOUND;
}

void reel_scheduler_stop(reel_scheduler *s, void (*on_stopped)(void *data), void *data) {
  s->stopping = 1;
  reel_workspaces_close(&s->workspaces);
  s->on_stopped = on_stopped;
  s->on_stopped_data = data;
  uv_timer_stop(&s->poll_timer);
  uv_close((uv_handle_t *)&s->poll_timer, NULL);
  uv_close((uv_handle_t *)&s->renew_timer, NULL);
  uv_close((uv_handle_t *)&s->lease_deadline_timer, NULL);
  for (reel_run *r = s->runs; r; r = r->next) {
    if (r->stop == STOP_NONE) r->stop = STOP_SHUTDOWN;
    if (!r->child_done) reel_child_stop(&r->child, (uint64_t)(s->cfg->cancel_grace_seconds * 1000));
    if (r->final_waiting) { /* one more try now, not after the backoff */
      uv_timer_stop(&r->timeout_timer);
      on_final_retry(&r->timeout_timer);
    }
  }
  maybe_stopped(s);
}

int reel_scheduler_check(const reel_scheduler *s, char *err, size_t errlen) {
  if (s->stopping) {
    snprintf(err, errlen, "workers are shutting down");
    return REEL_EBUSY;
  }
  if (s->cfg->workers <= 0) {
    snprintf(err, errlen, "service.workers is 0: this process runs no jobs");
    return REEL_EINVAL;
  }
  return reel_scheduler_check_backend(s->cfg, err, errlen);
}
