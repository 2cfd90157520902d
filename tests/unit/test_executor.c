/* The group-commit executor (store/executor.h) alone, over the real SQLite
 * store in a temporary directory: calls waiting together become one batch,
 * every done callback runs exactly once on the loop thread, a failing call
 * rolls back only itself, run_many groups, health after a failed commit and
 * its recovery, set_gone, a database file deleted underneath, and stop()
 * running what is queued.
 *
 * A gate (a call that holds the store thread until released) makes batches
 * deterministic: whatever is submitted while it holds forms the next batch.
 * A failed commit is real: a trigger breaks a DEFERRED foreign key for a job
 * whose prompt is "poison-at-commit", which SQLite checks only at COMMIT. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "store/executor.h"
#include "store/store.h"

static uv_loop_t *loop;
static pthread_t main_thread;
static char dir[] = "/tmp/reel-test-executor-XXXXXX";
static char db_path[128];
static sqlite3 *adm; /* the suite's own connection, to look behind the store's back */

static long long count_sql(const char *sql) {
  sqlite3_stmt *st;
  long long v = -1;
  if (sqlite3_prepare_v2(adm, sql, -1, &st, NULL) != SQLITE_OK) return -1;
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static long long rows_like(const char *pattern) {
  char sql[160];
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM jobs WHERE id LIKE '%s'", pattern);
  return count_sql(sql);
}

/* ---- calls ---- */

typedef struct tcall tcall;
struct tcall {
  reel_store_call call;
  reel_store_executor *ex;
  int (*fn)(reel_store *s, tcall *c);
  char id[32];
  const char *prompt;
  int ret;                  /* what an insert returns after writing (negative: fail after writing) */
  unsigned long long batch; /* the batch it ran in */
  int ran, ndone, result, on_loop;
};

static int total_done; /* every done callback of the test */

static int tcall_run(reel_store *s, reel_store_call *call) {
  tcall *c = (tcall *)call;
  c->ran++;
  c->batch = c->ex->batch_number;
  return c->fn(s, c);
}

static void tcall_done(reel_store_call *call, int result) {
  tcall *c = (tcall *)call;
  c->ndone++;
  total_done++;
  c->result = result;
  c->on_loop = pthread_equal(pthread_self(), main_thread);
}

static void tprepare(reel_store_executor *ex, tcall *c, int (*fn)(reel_store *, tcall *), int writes) {
  c->call.run = tcall_run;
  c->call.done = tcall_done;
  c->call.run_many = NULL;
  c->call.writes = writes;
  c->ex = ex;
  c->fn = fn;
  c->ran = c->ndone = 0;
  c->batch = 0;
}

static void tsubmit(reel_store_executor *ex, tcall *c, int (*fn)(reel_store *, tcall *), int writes) {
  tprepare(ex, c, fn, writes);
  reel_store_executor_submit(ex, &c->call);
}

static void twait(tcall *c) {
  while (!c->ndone) uv_run(loop, UV_RUN_ONCE);
}

static int insert_id(reel_store *s, const char *id, const char *prompt) {
  reel_job j;
  memset(&j, 0, sizeof j);
  snprintf(j.id, sizeof j.id, "%s", id);
  j.status = REEL_JOB_QUEUED;
  j.prompt = strdup(prompt ? prompt : "p");
  j.created_ms = j.updated_ms = reel_now_ms();
  int rc = reel_store_insert_job(s, &j);
  reel_job_clear(&j);
  return rc;
}

static int fn_insert(reel_store *s, tcall *c) {
  int rc = insert_id(s, c->id, c->prompt);
  return rc ? rc : c->ret;
}

static int fn_read(reel_store *s, tcall *c) {
  (void)c;
  return reel_store_ping(s);
}

/* ---- the gate ---- */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_entered, gate_open;

static int fn_gate(reel_store *s, tcall *c) {
  (void)s, (void)c;
  pthread_mutex_lock(&gate_lock);
  gate_entered = 1;
  pthread_cond_broadcast(&gate_cond);
  while (!gate_open) pthread_cond_wait(&gate_cond, &gate_lock);
  pthread_mutex_unlock(&gate_lock);
  return 0;
}

static void gate_hold(reel_store_executor *ex, tcall *gate) {
  gate_entered = gate_open = 0;
  memset(gate, 0, sizeof *gate);
  tsubmit(ex, gate, fn_gate, 0);
  pthread_mutex_lock(&gate_lock);
  while (!gate_entered) pthread_cond_wait(&gate_cond, &gate_lock);
  pthread_mutex_unlock(&gate_lock);
}

static void gate_release(tcall *gate) {
  pthread_mutex_lock(&gate_lock);
  gate_open = 1;
  pthread_cond_broadcast(&gate_cond);
  pthread_mutex_unlock(&gate_lock);
  twait(gate);
}

/* ---- checks ---- */

#define MANY 100
#define FROM_THREAD 20

typedef struct {
  reel_store_executor *ex;
  tcall *calls;
  int n;
} submitter;

static void *submit_main(void *arg) {
  submitter *sub = arg;
  for (int i = 0; i < sub->n; i++) tsubmit(sub->ex, &sub->calls[i], fn_insert, 1);
  return NULL;
}

static void test_group_commit(reel_store_executor *ex) {
  printf("-- calls waiting together run as one batch; done runs once each, on the loop thread\n");
  static tcall calls[MANY + FROM_THREAD];
  memset(calls, 0, sizeof calls);
  for (int i = 0; i < MANY + FROM_THREAD; i++) snprintf(calls[i].id, sizeof calls[i].id, "job_many_%03d", i);
  unsigned long long batches = ex->batches, ncalls = ex->calls;
  tcall gate;
  gate_hold(ex, &gate);
  for (int i = 0; i < MANY; i++) tsubmit(ex, &calls[i], fn_insert, 1);
  submitter sub = {ex, calls + MANY, FROM_THREAD}; /* submit is thread-safe */
  pthread_t t;
  CHECK_INT(pthread_create(&t, NULL, submit_main, &sub), 0);
  pthread_join(t, NULL);
  gate_release(&gate);
  for (int i = 0; i < MANY + FROM_THREAD; i++) twait(&calls[i]);
  int same_batch = 0, once = 0, on_loop = 0, ok = 0;
  for (int i = 0; i < MANY + FROM_THREAD; i++) {
    same_batch += calls[i].batch == gate.batch + 1;
    once += calls[i].ndone == 1 && calls[i].ran == 1;
    on_loop += calls[i].on_loop;
    ok += calls[i].result == 0;
  }
  CHECK_INT(same_batch, MANY + FROM_THREAD);
  CHECK_INT(once, MANY + FROM_THREAD);
  CHECK_INT(on_loop, MANY + FROM_THREAD);
  CHECK_INT(ok, MANY + FROM_THREAD);
  CHECK_INT(ex->batches - batches, 2); /* the gate's, and one for all the rest */
  CHECK_INT(ex->calls - ncalls, MANY + FROM_THREAD + 1);
  CHECK(ex->batches < ex->calls);
  CHECK_INT(rows_like("job_many_%"), MANY + FROM_THREAD);
  /* a few more cycles: nothing is delivered twice */
  uv_run(loop, UV_RUN_NOWAIT);
  once = 0;
  for (int i = 0; i < MANY + FROM_THREAD; i++) once += calls[i].ndone == 1;
  CHECK_INT(once, MANY + FROM_THREAD);
}

static void test_failing_call(reel_store_executor *ex) {
  printf("-- a failing call rolls back only itself\n");
  tcall gate, a, fail, dup, b;
  memset(&a, 0, sizeof a), memset(&fail, 0, sizeof fail), memset(&dup, 0, sizeof dup), memset(&b, 0, sizeof b);
  snprintf(a.id, sizeof a.id, "job_iso_a");
  snprintf(fail.id, sizeof fail.id, "job_iso_fail");
  fail.ret = REEL_EINVAL; /* wrote, then failed */
  snprintf(dup.id, sizeof dup.id, "job_iso_a"); /* fails in SQLite itself */
  snprintf(b.id, sizeof b.id, "job_iso_b");
  gate_hold(ex, &gate);
  tsubmit(ex, &a, fn_insert, 1);
  tsubmit(ex, &fail, fn_insert, 1);
  tsubmit(ex, &dup, fn_insert, 1);
  tsubmit(ex, &b, fn_insert, 1);
  gate_release(&gate);
  twait(&a), twait(&fail), twait(&dup), twait(&b);
  CHECK(a.batch == fail.batch && fail.batch == dup.batch && dup.batch == b.batch);
  CHECK_INT(a.result, 0);
  CHECK_INT(fail.result, REEL_EINVAL);
  CHECK_INT(dup.result, REEL_ECONFLICT);
  CHECK_INT(b.result, 0);
  CHECK_INT(rows_like("job_iso_a"), 1);
  CHECK_INT(rows_like("job_iso_fail"), 0);
  CHECK_INT(rows_like("job_iso_b"), 1);
  char msg[400];
  CHECK_INT(reel_store_executor_health(ex, msg, sizeof msg), 0); /* a call's own error is no store fault */
}

/* run_many: the grouped calls in batch order, as one step */
static tcall *group_seen[8];
static int group_runs, group_n, group_fail;

static int group_insert(reel_store *s, reel_store_call **calls, int n) {
  group_runs++;
  group_n = n;
  for (int i = 0; i < n && i < 8; i++) group_seen[i] = (tcall *)calls[i];
  for (int i = 0; i < n; i++) {
    tcall *c = (tcall *)calls[i];
    int rc = insert_id(s, c->id, NULL);
    if (rc) return rc;
    c->call.result = 0;
  }
  return group_fail ? REEL_EINVAL : 0;
}

static void test_run_many(reel_store_executor *ex) {
  printf("-- run_many: the calls sharing it run as one step, in order; failing, they roll back together\n");
  for (int round = 0; round < 2; round++) {
    tcall gate, g[3], n[2];
    memset(g, 0, sizeof g), memset(n, 0, sizeof n);
    for (int i = 0; i < 3; i++) snprintf(g[i].id, sizeof g[i].id, "job_grp%d_%d", round, i);
    for (int i = 0; i < 2; i++) snprintf(n[i].id, sizeof n[i].id, "job_solo%d_%d", round, i);
    group_runs = group_n = 0;
    group_fail = round == 1;
    gate_hold(ex, &gate);
    tcall *order[5] = {&g[0], &n[0], &g[1], &g[2], &n[1]};
    for (int i = 0; i < 5; i++) {
      int grouped = order[i] == &g[0] || order[i] == &g[1] || order[i] == &g[2];
      tprepare(ex, order[i], fn_insert, 1);
      if (grouped) order[i]->call.run_many = group_insert;
      reel_store_executor_submit(ex, &order[i]->call);
    }
    gate_release(&gate);
    for (int i = 0; i < 5; i++) twait(order[i]);
    CHECK_INT(group_runs, 1);
    CHECK_INT(group_n, 3);
    CHECK(group_seen[0] == &g[0] && group_seen[1] == &g[1] && group_seen[2] == &g[2]);
    for (int i = 0; i < 3; i++) {
      CHECK_INT(g[i].ran, 0); /* run is not called for grouped calls */
      CHECK_INT(g[i].ndone, 1);
      CHECK_INT(g[i].result, round == 0 ? 0 : REEL_EINVAL);
    }
    CHECK(n[0].result == 0 && n[1].result == 0 && n[0].ran == 1 && n[1].ran == 1);
    char pattern[32];
    snprintf(pattern, sizeof pattern, "job_grp%d_%%", round);
    CHECK_INT(rows_like(pattern), round == 0 ? 3 : 0);
    snprintf(pattern, sizeof pattern, "job_solo%d_%%", round);
    CHECK_INT(rows_like(pattern), 2);
  }
  group_fail = 0;
}

static void test_health(reel_store_executor *ex) {
  printf("-- health: a failed commit is reported until a write commits again\n");
  tcall poison, neighbour, read, write;
  memset(&poison, 0, sizeof poison), memset(&neighbour, 0, sizeof neighbour);
  memset(&read, 0, sizeof read), memset(&write, 0, sizeof write);
  snprintf(poison.id, sizeof poison.id, "job_poison");
  poison.prompt = "poison-at-commit";
  snprintf(neighbour.id, sizeof neighbour.id, "job_poison_neighbour");
  snprintf(write.id, sizeof write.id, "job_after_poison");
  char msg[400];
  CHECK_INT(reel_store_executor_health(ex, msg, sizeof msg), 0);
  unsigned long long failures = ex->commit_failures;
  tcall gate;
  gate_hold(ex, &gate);
  tsubmit(ex, &neighbour, fn_insert, 1);
  tsubmit(ex, &poison, fn_insert, 1);
  gate_release(&gate);
  twait(&neighbour), twait(&poison);
  CHECK_INT(poison.result, REEL_ESTORE);
  CHECK_INT(neighbour.result, REEL_ESTORE); /* the whole batch failed with its commit */
  CHECK(poison.ran == 1 && neighbour.ran == 1);
  CHECK_INT(ex->commit_failures - failures, 1);
  CHECK_INT(rows_like("job_poison%"), 0);
  msg[0] = '\0';
  CHECK_INT(reel_store_executor_health(ex, msg, sizeof msg), REEL_ESTORE);
  CHECK(strstr(msg, "cannot commit") && strstr(msg, "FOREIGN KEY"));
  printf("   %s\n", msg);
  /* a read that commits proves nothing about writes */
  tsubmit(ex, &read, fn_read, 0);
  twait(&read);
  CHECK_INT(read.result, 0);
  CHECK_INT(reel_store_executor_health(ex, msg, sizeof msg), REEL_ESTORE);
  /* a write that commits does */
  tsubmit(ex, &write, fn_insert, 1);
  twait(&write);
  CHECK_INT(write.result, 0);
  CHECK_INT(reel_store_executor_health(ex, msg, sizeof msg), 0);
}

/* Holds the store thread until stop() was called. */
static int fn_until_stopping(reel_store *s, tcall *c) {
  (void)s;
  pthread_mutex_lock(&c->ex->lock);
  while (!c->ex->stopping) {
    pthread_mutex_unlock(&c->ex->lock);
    usleep(1000);
    pthread_mutex_lock(&c->ex->lock);
  }
  pthread_mutex_unlock(&c->ex->lock);
  return 0;
}

static void test_stop_drains(reel_store_executor *ex) {
  printf("-- stop() runs the queued calls first and delivers their results\n");
  tcall hold, q[10];
  memset(&hold, 0, sizeof hold), memset(q, 0, sizeof q);
  tsubmit(ex, &hold, fn_until_stopping, 0);
  for (int i = 0; i < 10; i++) {
    snprintf(q[i].id, sizeof q[i].id, "job_stop_%d", i);
    tsubmit(ex, &q[i], fn_insert, 1);
  }
  reel_store_executor_stop(ex); /* the calls are still queued behind `hold` now */
  int once = 0, ok = 0;
  for (int i = 0; i < 10; i++) {
    once += q[i].ndone == 1 && q[i].ran == 1 && q[i].on_loop;
    ok += q[i].result == 0;
  }
  CHECK_INT(hold.ndone, 1);
  CHECK_INT(once, 10);
  CHECK_INT(ok, 10);
  CHECK_INT(rows_like("job_stop_%"), 10);
  uv_run(loop, UV_RUN_NOWAIT); /* the async handle finishes closing */
}

static void test_gone(reel_store_executor *ex) {
  printf("-- set_gone: every later batch fails without touching the store\n");
  reel_store_executor_set_gone(ex, "the data_dir was replaced (test)");
  char msg[400];
  CHECK_INT(reel_store_executor_health(ex, msg, sizeof msg), REEL_ESTORE);
  CHECK(strstr(msg, "the data_dir was replaced (test)") != NULL);
  tcall c[3];
  memset(c, 0, sizeof c);
  for (int round = 0; round < 3; round++) {
    snprintf(c[round].id, sizeof c[round].id, "job_gone_%d", round);
    tsubmit(ex, &c[round], fn_insert, 1);
    twait(&c[round]);
    CHECK_INT(c[round].result, REEL_ESTORE);
    CHECK_INT(c[round].ran, 0);
    CHECK_INT(c[round].ndone, 1);
  }
  CHECK_INT(rows_like("job_gone_%"), 0);
  CHECK_INT(reel_store_executor_health(ex, msg, sizeof msg), REEL_ESTORE); /* writes do not undo it */
}

static void test_deleted_file(void) {
  printf("-- a database file deleted underneath: the batch fails and the store counts as gone\n");
  char path[160];
  snprintf(path, sizeof path, "%s/other.db", dir);
  reel_store *s;
  char err[256];
  CHECK_INT(reel_store_open_sqlite(path, &s, err, sizeof err), 0);
  reel_store_executor ex;
  memset(&ex, 0, sizeof ex);
  CHECK_INT(reel_store_executor_start(&ex, loop, s), 0);
  tcall before, after;
  memset(&before, 0, sizeof before), memset(&after, 0, sizeof after);
  snprintf(before.id, sizeof before.id, "job_before_unlink");
  snprintf(after.id, sizeof after.id, "job_after_unlink");
  tsubmit(&ex, &before, fn_insert, 1);
  twait(&before);
  CHECK_INT(before.result, 0);
  CHECK_INT(unlink(path), 0);
  tsubmit(&ex, &after, fn_insert, 1);
  twait(&after);
  CHECK_INT(after.result, REEL_ESTORE);
  CHECK_INT(after.ran, 0); /* nothing is written into a deleted file */
  char msg[400];
  CHECK_INT(reel_store_executor_health(&ex, msg, sizeof msg), REEL_ESTORE);
  CHECK(strstr(msg, "deleted") != NULL);
  reel_store_executor_stop(&ex);
  uv_run(loop, UV_RUN_NOWAIT);
  reel_store_close(s);
}

int main(void) {
  alarm(120); /* a hang fails the test */
  setvbuf(stdout, NULL, _IOLBF, 0);
  main_thread = pthread_self();
  reel_log_set_level(REEL_LOG_ERROR);
  CHECK(mkdtemp(dir) != NULL);
  snprintf(db_path, sizeof db_path, "%s/reel.db", dir);
  loop = uv_default_loop();
  reel_store *store;
  char err[256];
  int rc = reel_store_open_sqlite(db_path, &store, err, sizeof err);
  if (rc) fprintf(stderr, "open: %s\n", err);
  CHECK_INT(rc, 0);
  if (rc) return check_report();
  CHECK_INT(sqlite3_open_v2(db_path, &adm, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  sqlite3_busy_timeout(adm, 10000);
  CHECK_INT(sqlite3_exec(adm,
                         "CREATE TABLE conf_parent (id TEXT PRIMARY KEY);"
                         "CREATE TABLE conf_guard (ref TEXT REFERENCES conf_parent (id) DEFERRABLE INITIALLY DEFERRED);"
                         "CREATE TRIGGER conf_poison AFTER INSERT ON jobs WHEN NEW.prompt = 'poison-at-commit'"
                         "  BEGIN INSERT INTO conf_guard (ref) VALUES ('no such parent'); END;",
                         NULL, NULL, NULL),
            SQLITE_OK);

  reel_store_executor ex;
  memset(&ex, 0, sizeof ex);
  CHECK_INT(reel_store_executor_start(&ex, loop, store), 0);
  test_group_commit(&ex);
  test_failing_call(&ex);
  test_run_many(&ex);
  test_health(&ex);
  test_stop_drains(&ex);
  CHECK_INT(reel_store_executor_start(&ex, loop, store), 0); /* a stopped executor starts again */
  test_gone(&ex);
  reel_store_executor_stop(&ex);
  uv_run(loop, UV_RUN_NOWAIT);
  test_deleted_file();
  printf("   %d done callbacks in all\n", total_done);

  reel_store_close(store);
  sqlite3_close(adm);
  uv_loop_close(loop);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK_INT(system(cmd), 0);
  return check_report();
}
