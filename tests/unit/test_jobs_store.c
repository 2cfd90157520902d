/* Job rules over the real SQLite store (a file in a temporary directory),
 * driven through the group-commit executor on a libuv loop exactly as reeld does. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/error.h"
#include "jobs/jobs.h"
#include "store/store.h"

static uv_loop_t *loop;
static reel_jobs jobs;

typedef struct {
  reel_job_op op;
  int done, result;
} sync_op;

static void done_cb(reel_job_op *op, int result) {
  sync_op *s = (sync_op *)op;
  s->done = 1;
  s->result = result;
}

static int run(sync_op *s) {
  s->done = 0;
  s->op.cb = done_cb;
  reel_jobs_run(&jobs, &s->op);
  while (!s->done) uv_run(loop, UV_RUN_ONCE);
  return s->result;
}

static int simple(reel_job_op_kind kind, const char *id, sync_op *s) {
  reel_job_op_cleanup(&s->op);
  reel_job_op_init(&s->op, kind);
  if (id) snprintf(s->op.id, sizeof s->op.id, "%s", id);
  return run(s);
}

static int submit(const char *prompt, char id[32]) {
  sync_op s;
  reel_job_op_init(&s.op, REEL_JOB_OP_SUBMIT);
  s.op.prompt = strdup(prompt);
  int rc = run(&s);
  if (rc == 0) memcpy(id, s.op.job.id, 32);
  reel_job_op_cleanup(&s.op);
  return rc;
}

static void open_store(const char *path, int depth) {
  reel_store *store;
  char err[256];
  int rc = reel_store_open_sqlite(path, &store, err, sizeof err);
  if (rc) fprintf(stderr, "open: %s\n", err);
  CHECK_INT(rc, 0);
  CHECK_INT(reel_jobs_init(&jobs, loop, store, depth, 5), 0);
}

static void close_store(void) {
  reel_jobs_close(&jobs);
  uv_run(loop, UV_RUN_NOWAIT);
}

int main(void) {
  char dir[] = "/tmp/reel-test-store-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[256];
  snprintf(path, sizeof path, "%s/reel.db", dir);
  loop = uv_default_loop();
  open_store(path, 3);

  /* submit, and the queue depth limit */
  char a[32], b[32], c[32], d[32];
  CHECK_INT(submit("first", a), 0);
  CHECK_INT(submit("second", b), 0);
  CHECK_INT(submit("third", c), 0);
  CHECK_INT(submit("fourth", d), REEL_EBUSY);
  CHECK(strncmp(a, "job_", 4) == 0 && strcmp(a, b) != 0);

  sync_op s;
  reel_job_op_init(&s.op, REEL_JOB_OP_GET);
  CHECK_INT(simple(REEL_JOB_OP_GET, a, &s), 0);
  CHECK_STR(s.op.job.prompt, "first");
  CHECK_INT(s.op.job.status, REEL_JOB_QUEUED);
  CHECK_INT(simple(REEL_JOB_OP_GET, "job_00000000000000000000000000", &s), REEL_ENOTFOUND);

  /* listing: newest first, paged */
  reel_job_op_cleanup(&s.op);
  reel_job_op_init(&s.op, REEL_JOB_OP_LIST);
  s.op.limit = 2;
  CHECK_INT(run(&s), 0);
  CHECK_INT(s.op.n_list, 2);
  CHECK_STR(s.op.list[0].id, c);
  CHECK_STR(s.op.list[1].id, b);
  CHECK(s.op.next_seq > 0);
  int64_t next = s.op.next_seq;
  reel_job_op_cleanup(&s.op);
  reel_job_op_init(&s.op, REEL_JOB_OP_LIST);
  s.op.limit = 2;
  s.op.before_seq = next;
  CHECK_INT(run(&s), 0);
  CHECK_INT(s.op.n_list, 1);
  CHECK_STR(s.op.list[0].id, a);
  CHECK_INT(s.op.next_seq, 0);

  /* claim takes the oldest; progress; finish; terminal is final */
  reel_job_op_cleanup(&s.op);
  reel_job_op_init(&s.op, REEL_JOB_OP_CLAIM);
  snprintf(s.op.fence.node, sizeof s.op.fence.node, "test");
  s.op.lease_ms = 1000;
  CHECK_INT(run(&s), 0);
  CHECK_STR(s.op.job.id, a);
  CHECK_INT(s.op.job.status, REEL_JOB_STARTED);
  CHECK_INT(s.op.job.attempts, 1);
  CHECK(s.op.job.started_ms > 0);
  reel_fence fence = s.op.fence;
  CHECK_INT(fence.attempt, 1);
  reel_job_op_cleanup(&s.op);
  reel_job_op_init(&s.op, REEL_JOB_OP_PROGRESS);
  snprintf(s.op.id, sizeof s.op.id, "%s", a);
  s.op.fence = fence;
  s.op.progress = 40;
  snprintf(s.op.stage, sizeof s.op.stage, "keyframes");
  CHECK_INT(run(&s), 0);
  CHECK_INT(s.op.job.status, REEL_JOB_PROGRESS);
  CHECK_INT(s.op.job.progress, 40);
  /* a log capped at 5 lines keeps the newest */
  for (int i = 0; i < 7; i++) {
    reel_job_op_cleanup(&s.op);
    reel_job_op_init(&s.op, REEL_JOB_OP_LOG);
    snprintf(s.op.id, sizeof s.op.id, "%s", a);
    s.op.fence = fence;
    char line[32];
    snprintf(line, sizeof line, "line %d", i);
    s.op.text = strdup(line);
    CHECK_INT(run(&s), 0);
  }
  reel_job_op_cleanup(&s.op);
  reel_job_op_init(&s.op, REEL_JOB_OP_LOGS);
  snprintf(s.op.id, sizeof s.op.id, "%s", a);
  s.op.tail = 3;
  CHECK_INT(run(&s), 0);
  CHECK_INT((int)json_array_size(s.op.lines), 3);
  CHECK_STR(json_string_value(json_array_get(s.op.lines, 0)), "line 4");
  CHECK_STR(json_string_value(json_array_get(s.op.lines, 2)), "line 6");
  s.op.tail = 100;
  reel_job_op_cleanup(&s.op);
  reel_job_op_init(&s.op, REEL_JOB_OP_LOGS);
  snprintf(s.op.id, sizeof s.op.id, "%s", a);
  s.op.tail = 100;
  CHECK_INT(run(&s), 0);
  CHECK_INT((int)json_array_size(s.op.lines), 5);

  reel_job_op_cleanup(&s.op);
  reel_job_op_init(&s.op, REEL_JOB_OP_FINISH);
  snprintf(s.op.id, sizeof s.op.id, "%s", a);
  s.op.fence = fence;
  s.op.artifact_key = strdup("reel/2026-11/x/final_video.mp4");
  s.op.artifact_uri = strdup("file:///reel/2026-11/x/final_video.mp4");
  CHECK_INT(run(&s), 0);
  CHECK_INT(s.op.job.status, REEL_JOB_FINISHED);
  CHECK(s.op.job.finished_ms >= s.op.job.started_ms);
  CHECK_INT(simple(REEL_JOB_OP_CANCEL, a, &s), REEL_ECONFLICT);
  CHECK_INT(s.op.job.status, REEL_JOB_FINISHED);
  CHECK_INT(simple(REEL_JOB_OP_CANCEL, "job_00000000000000000000000000", &s), REEL_ENOTFOUND);

  /* cancel of a queued job ends it at once */
  CHECK_INT(simple(REEL_JOB_OP_CANCEL, c, &s), 0);
  CHECK_INT(s.op.was_running, 0);
  CHECK_INT(simple(REEL_JOB_OP_GET, c, &s), 0);
  CHECK_INT(s.op.job.status, REEL_JOB_CANCELED);

  /* b runs, then the process "dies": recovery requeues while attempts remain */
  reel_job_op_cleanup(&s.op);
  reel_job_op_init(&s.op, REEL_JOB_OP_CLAIM);
  s.op.lease_ms = 1000;
  CHECK_INT(run(&s), 0);
  CHECK_STR(s.op.job.id, b);
  CHECK_INT(simple(REEL_JOB_OP_CLAIM, NULL, &s), REEL_ENOTFOUND); /* nothing else queued */
  close_store();

  open_store(path, 3); /* persistence across reopen */
  reel_job_op_cleanup(&s.op);
  reel_job_op_init(&s.op, REEL_JOB_OP_RESCUE);
  s.op.all = 1;
  s.op.max_attempts = 2;
  CHECK_INT(run(&s), 0);
  CHECK_INT(s.op.requeued, 1);
  CHECK_INT(s.op.failed, 0);
  CHECK_INT(simple(REEL_JOB_OP_GET, b, &s), 0);
  CHECK_INT(s.op.job.status, REEL_JOB_QUEUED);
  CHECK_INT(s.op.job.attempts, 1);
  /* second run dies too: attempts exhausted -> failed */
  reel_job_op_cleanup(&s.op);
  reel_job_op_init(&s.op, REEL_JOB_OP_CLAIM);
  s.op.lease_ms = 1000;
  CHECK_INT(run(&s), 0);
  CHECK_INT(s.op.job.attempts, 2);
  reel_job_op_cleanup(&s.op);
  reel_job_op_init(&s.op, REEL_JOB_OP_RESCUE);
  s.op.all = 1;
  s.op.max_attempts = 2;
  CHECK_INT(run(&s), 0);
  CHECK_INT(s.op.failed, 1);
  CHECK_INT(simple(REEL_JOB_OP_GET, b, &s), 0);
  CHECK_INT(s.op.job.status, REEL_JOB_FAILED);
  CHECK(s.op.job.error && strstr(s.op.job.error, "stopped or lost its lease"));

  /* retry with backoff: queued again but not claimable before run_after */
  char e[32];
  CHECK_INT(submit("fifth", e), 0);
  reel_job_op_cleanup(&s.op);
  reel_job_op_init(&s.op, REEL_JOB_OP_CLAIM);
  s.op.lease_ms = 1000;
  snprintf(s.op.fence.node, sizeof s.op.fence.node, "test");
  CHECK_INT(run(&s), 0);
  fence = s.op.fence;
  reel_job_op_cleanup(&s.op);
  reel_job_op_init(&s.op, REEL_JOB_OP_RETRY);
  snprintf(s.op.id, sizeof s.op.id, "%s", e);
  s.op.fence = fence;
  s.op.delay_ms = 60000;
  s.op.text = strdup("transient");
  CHECK_INT(run(&s), 0);
  CHECK_INT(s.op.job.status, REEL_JOB_QUEUED);
  CHECK_INT(simple(REEL_JOB_OP_CLAIM, NULL, &s), REEL_ENOTFOUND);

  /* counts agree with what happened */
  CHECK_INT(simple(REEL_JOB_OP_COUNTS, NULL, &s), 0);
  CHECK_INT(s.op.counts[REEL_JOB_QUEUED], 1);
  CHECK_INT(s.op.counts[REEL_JOB_FINISHED], 1);
  CHECK_INT(s.op.counts[REEL_JOB_FAILED], 1);
  CHECK_INT(s.op.counts[REEL_JOB_CANCELED], 1);
  CHECK_INT(simple(REEL_JOB_OP_PING, NULL, &s), 0);
  reel_job_op_cleanup(&s.op);
  close_store();
  uv_loop_close(loop);

  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK_INT(system(cmd), 0);
  return check_report();
}
