/* The job store conformance suite: one set of checks that every backend of
 * store.h must pass, run on whichever backend the environment names:
 *
 *   (no REEL_TEST_PG_URL)          SQLite, a file in a new temporary directory
 *   REEL_TEST_PG_URL=postgresql://  PostgreSQL: a THROWAWAY database, whose reel
 *                                   tables are dropped first (the black-box
 *                                   wrapper test_store_conformance_pg.py makes
 *                                   a fresh server and database for it)
 *
 * It checks every store function through the reel_store_* wrappers (direct
 * calls inside transactions, as the executor makes them), the group-commit
 * executor's transaction rules (savepoint isolation, a failed commit), and
 * the job rules of jobs.h on top (fencing, leases and their rescue, claim
 * order, transitions published only after a commit), and that two
 * connections claiming from one queue at once get distinct jobs.
 *
 * Two failures are made for real, not mocked. A COMMIT that fails: a trigger
 * the suite adds inserts, for a job whose prompt is "poison-at-commit", a row
 * breaking a DEFERRED foreign key, which the database checks only at COMMIT
 * (SQLite: SQLITE_CONSTRAINT_FOREIGNKEY from COMMIT; PostgreSQL: 23503 from
 * COMMIT). A statement that fails inside a call: a trigger refuses the update
 * that would give a job whose prompt is "explodes-on-claim" to node
 * "poison-node". On PostgreSQL the store's server process is also
 * terminated (pg_terminate_backend) in the middle of a batch. */
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "jobs/jobs.h"
#include "store/executor.h"
#include "store/pq_api.h"
#include "store/store.h"

#define SECTION(name) printf("-- %s\n", name)

static const char *pg_url;      /* NULL: SQLite */
static char tmp_dir[64] = "";
static char db_path[128];
static uv_loop_t *loop;
static pthread_t main_thread;

/* ---------------------------------------------------------------- admin --
 * A connection of the suite's own, beside the store's, to look at and
 * arrange the database behind the store's back. */

static sqlite3 *adm_sqlite;
static const reel_pq_api *pq;
static PGconn *adm_pg;

static int admin_exec(const char *sql) {
  if (adm_pg) {
    PGresult *r = pq->exec(adm_pg, sql);
    ExecStatusType st = r ? pq->resultStatus(r) : PGRES_FATAL_ERROR;
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) fprintf(stderr, "admin SQL failed: %s: %s\n", sql, r ? pq->resultErrorMessage(r) : "no result");
    pq->clear(r);
    return ok ? 0 : -1;
  }
  char *msg = NULL;
  if (sqlite3_exec(adm_sqlite, sql, NULL, NULL, &msg) != SQLITE_OK) {
    fprintf(stderr, "admin SQL failed: %s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    return -1;
  }
  return 0;
}

/* The integer in the first column of the first row of a query, or -1. */
static long long admin_int(const char *fmt, ...) {
  char sql[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  long long v = -1;
  if (adm_pg) {
    PGresult *r = pq->exec(adm_pg, sql);
    if (r && pq->resultStatus(r) == PGRES_TUPLES_OK && pq->ntuples(r) > 0) v = strtoll(pq->getvalue(r, 0, 0), NULL, 10);
    else fprintf(stderr, "admin query failed: %s: %s\n", sql, r ? pq->resultErrorMessage(r) : "no result");
    pq->clear(r);
    return v;
  }
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(adm_sqlite, sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "admin query failed: %s: %s\n", sql, sqlite3_errmsg(adm_sqlite));
    return -1;
  }
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static long long job_rows(const char *id) { return admin_int("SELECT COUNT(*) FROM jobs WHERE id = '%s'", id); }
static long long log_rows(const char *id) { return admin_int("SELECT COUNT(*) FROM job_logs WHERE job_id = '%s'", id); }

static long long event_rows(const char *id) { return admin_int("SELECT COUNT(*) FROM events WHERE job_id = '%s'", id); }

/* Every job, log line and event gone: each section starts from an empty store. */
static void clear_all(void) { CHECK_INT(admin_exec("DELETE FROM job_logs; DELETE FROM events; DELETE FROM webhook_deliveries; "
                                          "DELETE FROM webhook_endpoints; DELETE FROM idempotency_keys; DELETE FROM jobs;"), 0); }

static int admin_open(void) {
  char err[256];
  if (pg_url) {
    pq = reel_pq_load(err, sizeof err);
    if (!pq) {
      fprintf(stderr, "cannot load libpq: %s\n", err);
      return -1;
    }
    adm_pg = reel_pq_connect(pq, pg_url, NULL, "conformance-admin");
    if (!adm_pg || pq->status(adm_pg) != CONNECTION_OK) {
      fprintf(stderr, "cannot connect to %s: %s\n", pg_url, adm_pg ? pq->errorMessage(adm_pg) : "out of memory");
      return -1;
    }
    /* a throwaway database: reel's tables (and the suite's) start empty */
    return admin_exec("DROP TABLE IF EXISTS jobs, job_logs, events, reel_event_counter, idempotency_keys, webhook_deliveries, "
                      "webhook_endpoints, store_probe, reel_schema_version, "
                      "conf_guard, conf_parent "
                      "CASCADE; DROP FUNCTION IF EXISTS conf_poison() CASCADE;");
  }
  if (sqlite3_open_v2(db_path, &adm_sqlite, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
    fprintf(stderr, "cannot open %s\n", db_path);
    return -1;
  }
  sqlite3_busy_timeout(adm_sqlite, 10000);
  return 0;
}

/* The triggers that make the failures described at the top. */
static int install_poison(void) {
  if (adm_pg)
    return admin_exec(
        "CREATE TABLE conf_parent (id TEXT PRIMARY KEY);"
        "CREATE TABLE conf_guard (ref TEXT REFERENCES conf_parent (id) DEFERRABLE INITIALLY DEFERRED);"
        "CREATE FUNCTION conf_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        "  IF TG_OP = 'INSERT' AND NEW.prompt = 'poison-at-commit' THEN"
        "    INSERT INTO conf_guard (ref) VALUES ('no such parent'); END IF;"
        "  IF TG_OP = 'UPDATE' AND NEW.node = 'poison-node' AND NEW.prompt = 'explodes-on-claim' THEN"
        "    RAISE EXCEPTION 'conformance: this claim is refused'; END IF;"
        "  RETURN NEW; END $$;"
        "CREATE TRIGGER conf_poison AFTER INSERT OR UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION conf_poison();");
  return admin_exec(
      "CREATE TABLE conf_parent (id TEXT PRIMARY KEY);"
      "CREATE TABLE conf_guard (ref TEXT REFERENCES conf_parent (id) DEFERRABLE INITIALLY DEFERRED);"
      "CREATE TRIGGER conf_poison_insert AFTER INSERT ON jobs WHEN NEW.prompt = 'poison-at-commit'"
      "  BEGIN INSERT INTO conf_guard (ref) VALUES ('no such parent'); END;"
      "CREATE TRIGGER conf_poison_update BEFORE UPDATE ON jobs"
      "  WHEN NEW.node = 'poison-node' AND NEW.prompt = 'explodes-on-claim'"
      "  BEGIN SELECT RAISE(ABORT, 'conformance: this claim is refused'); END;");
}

/* ---------------------------------------------------------------- stores -- */

static reel_store *open_store(const char *who) {
  reel_store *s = NULL;
  char err[512] = "";
  int rc;
  if (pg_url) {
    reel_store_pg_settings settings = {.url = pg_url, .password = NULL, .application_name = who, .migrate = 1};
    rc = reel_store_open_postgres(&settings, &s, err, sizeof err);
  } else {
    rc = reel_store_open_sqlite(db_path, &s, err, sizeof err);
  }
  if (rc != 0) fprintf(stderr, "cannot open the %s store (%s): %s\n", pg_url ? "postgres" : "sqlite", who, err);
  CHECK_INT(rc, 0);
  return rc == 0 ? s : NULL;
}

/* Direct calls: a transaction with one savepoint, as the executor opens. */
static void tx_begin(reel_store *s) {
  CHECK_INT(reel_store_begin(s), 0);
  CHECK_INT(reel_store_savepoint(s), 0);
}
/* After a call that failed: back to the savepoint (as the executor does), and a new one. */
static void tx_reset(reel_store *s) {
  CHECK_INT(reel_store_rollback_savepoint(s), 0);
  CHECK_INT(reel_store_release_savepoint(s), 0);
  CHECK_INT(reel_store_savepoint(s), 0);
}
static void tx_commit(reel_store *s) {
  CHECK_INT(reel_store_release_savepoint(s), 0);
  CHECK_INT(reel_store_commit(s), 0);
}
static void tx_rollback(reel_store *s) {
  reel_store_rollback_savepoint(s);
  reel_store_release_savepoint(s);
  CHECK_INT(reel_store_rollback(s), 0);
}

static int64_t store_now(reel_store *s) {
  tx_begin(s);
  int64_t t = reel_store_clock_ms(s);
  tx_commit(s);
  return t;
}

static void make_job(reel_job *j, const char *id, const char *prompt, int priority, int64_t run_after_ms) {
  memset(j, 0, sizeof *j);
  snprintf(j->id, sizeof j->id, "%s", id);
  j->status = REEL_JOB_QUEUED;
  j->priority = priority;
  j->prompt = strdup(prompt);
  j->created_ms = j->updated_ms = reel_now_ms();
  j->run_after_ms = run_after_ms;
}

/* Inside a transaction: inserts a queued job. */
static void put_job(reel_store *s, const char *id, const char *prompt, int priority, int64_t run_after_ms) {
  reel_job j = {0};
  make_job(&j, id, prompt, priority, run_after_ms);
  CHECK_INT(reel_store_insert_job(s, &j), 0);
  reel_job_clear(&j);
}

/* Inside a transaction: rewrites a job's run state. */
static void put_state(reel_store *s, const char *id, reel_job_status status, const char *node, int attempts,
                      int64_t lease_expires_ms, int64_t finished_ms, int cancel_requested) {
  reel_job j = {0};
  int rc = reel_store_get_job(s, id, &j);
  CHECK_INT(rc, 0);
  if (rc) return;
  j.status = status;
  snprintf(j.node, sizeof j.node, "%s", node);
  j.attempts = attempts;
  j.lease_expires_ms = lease_expires_ms;
  j.finished_ms = finished_ms;
  j.cancel_requested = cancel_requested;
  CHECK_INT(reel_store_write_job(s, &j), 0);
  reel_job_clear(&j);
}

/* ------------------------------------------------- calls on an executor --
 * Store calls of the suite's own, and a gate: a call that holds the store
 * thread until released, so that the calls submitted meanwhile are all
 * waiting when it returns and make up the next batch together. */

typedef struct tcall tcall;
struct tcall {
  reel_store_call call;
  reel_store_executor *ex;
  int (*fn)(reel_store *s, tcall *c);
  char id[32];
  const char *prompt;
  int ret;                   /* what an insert returns after it wrote (negative: fail after writing) */
  unsigned long long batch;  /* the batch it ran in */
  int ran, ndone, result, on_loop;
};

static int tcall_run(reel_store *s, reel_store_call *call) {
  tcall *c = (tcall *)call;
  c->ran++;
  c->batch = c->ex->batch_number;
  return c->fn(s, c);
}

static void tcall_done(reel_store_call *call, int result) {
  tcall *c = (tcall *)call;
  c->ndone++;
  c->result = result;
  c->on_loop = pthread_equal(pthread_self(), main_thread);
}

static void tsubmit(reel_store_executor *ex, tcall *c, int (*fn)(reel_store *, tcall *), int writes) {
  c->call.run = tcall_run;
  c->call.done = tcall_done;
  c->call.run_many = NULL;
  c->call.writes = writes;
  c->ex = ex;
  c->fn = fn;
  c->ran = c->ndone = 0;
  reel_store_executor_submit(ex, &c->call);
}

static void twait(tcall *c) {
  while (!c->ndone) uv_run(loop, UV_RUN_ONCE);
}

static int fn_insert(reel_store *s, tcall *c) {
  reel_job j = {0};
  make_job(&j, c->id, c->prompt ? c->prompt : "a prompt", 0, 0);
  int rc = reel_store_insert_job(s, &j);
  reel_job_clear(&j);
  return rc ? rc : c->ret;
}

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

/* Submits the gate and returns once the store thread is inside it. */
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

/* ------------------------------------------------------------ job ops -- */

static reel_jobs J; /* the jobs of the suite, on the store connection "conformance-jobs" */

static struct {
  int submitted, transitioned, cancels;
  int cancel_answer; /* what cancel_requested answers: 0 (a run stops it) or REEL_ENOTFOUND */
  reel_job_transition last;
  int events;
} L;

static void on_events(void *d) {
  (void)d;
  L.events++;
}

static void on_submitted(void *d) {
  (void)d;
  L.submitted++;
}
static int on_cancel_requested(void *d, const char *id) {
  (void)d, (void)id;
  L.cancels++;
  return L.cancel_answer;
}
static void on_transitioned(void *d, const reel_job_transition *t) {
  (void)d;
  L.transitioned++;
  L.last = *t;
  L.last.error = NULL;
}

typedef struct {
  reel_job_op op;
  int done, result, calls, on_loop;
} sync_op;

static void sync_cb(reel_job_op *op, int result) {
  sync_op *s = (sync_op *)op;
  s->done = 1;
  s->calls++;
  s->result = result;
  s->on_loop = pthread_equal(pthread_self(), main_thread);
}

static void op_start(reel_jobs *jobs, sync_op *s) {
  s->done = 0;
  s->calls = 0;
  s->op.cb = sync_cb;
  reel_jobs_run(jobs, &s->op);
}
static int op_wait(sync_op *s) {
  while (!s->done) uv_run(loop, UV_RUN_ONCE);
  return s->result;
}
static int jrun_on(reel_jobs *jobs, sync_op *s) {
  op_start(jobs, s);
  return op_wait(s);
}
static int jrun(sync_op *s) { return jrun_on(&J, s); }

static void op_new(sync_op *s, reel_job_op_kind kind, const char *id) {
  reel_job_op_cleanup(&s->op);
  reel_job_op_init(&s->op, kind);
  if (id) snprintf(s->op.id, sizeof s->op.id, "%s", id);
}

static int submit_on(reel_jobs *jobs, const char *prompt, int priority, char id[32]) {
  sync_op s;
  memset(&s, 0, sizeof s);
  op_new(&s, REEL_JOB_OP_SUBMIT, NULL);
  s.op.prompt = strdup(prompt);
  s.op.priority = priority;
  int rc = jrun_on(jobs, &s);
  if (rc == 0 && id) memcpy(id, s.op.job.id, 32);
  reel_job_op_cleanup(&s.op);
  return rc;
}
static int submit(const char *prompt, int priority, char id[32]) { return submit_on(&J, prompt, priority, id); }

/* Claims one job for node; its id and fence into id and fence. */
static int claim(const char *node, int64_t lease_ms, char id[32], reel_fence *fence) {
  sync_op s;
  memset(&s, 0, sizeof s);
  op_new(&s, REEL_JOB_OP_CLAIM, NULL);
  snprintf(s.op.fence.node, sizeof s.op.fence.node, "%s", node);
  s.op.lease_ms = lease_ms;
  int rc = jrun(&s);
  if (rc == 0) {
    if (id) memcpy(id, s.op.job.id, 32);
    if (fence) *fence = s.op.fence;
  }
  reel_job_op_cleanup(&s.op);
  return rc;
}

/* A run's write (kind) for job id under fence, with minimal inputs. */
static int fenced(sync_op *s, reel_job_op_kind kind, const char *id, const reel_fence *fence) {
  op_new(s, kind, id);
  s->op.fence = *fence;
  switch (kind) {
  case REEL_JOB_OP_PROGRESS: s->op.progress = 50; snprintf(s->op.stage, sizeof s->op.stage, "render"); break;
  case REEL_JOB_OP_LOG: s->op.text = strdup("a line from the run"); break;
  case REEL_JOB_OP_FINISH:
    s->op.artifact_key = strdup("reel/x/final_video.mp4");
    s->op.artifact_uri = strdup("reel-local:reel/x/final_video.mp4");
    break;
  case REEL_JOB_OP_FAIL: s->op.text = strdup("it broke"); s->op.reason = "exit_status"; break;
  case REEL_JOB_OP_RETRY: s->op.text = strdup("try again"); s->op.delay_ms = 0; break;
  default: break;
  }
  return jrun(s);
}

static int get_on(reel_jobs *jobs, const char *id, sync_op *s) {
  op_new(s, REEL_JOB_OP_GET, id);
  return jrun_on(jobs, s);
}
static int get(const char *id, sync_op *s) { return get_on(&J, id, s); }

static int health_of(reel_jobs *jobs, char *msg, size_t len) {
  msg[0] = '\0';
  return reel_jobs_health(jobs, msg, len);
}

static void open_jobs(void) {
  reel_store *s = open_store("conformance-jobs");
  if (!s) exit(check_report() ? 1 : 1);
  CHECK_INT(reel_jobs_init(&J, loop, s, 1000, 5), 0);
  J.listener = (reel_jobs_listener){.submitted = on_submitted, .cancel_requested = on_cancel_requested,
                                    .transitioned = on_transitioned, .events = on_events, .data = NULL};
}

static void close_jobs(reel_jobs *jobs) {
  reel_jobs_close(jobs);
  uv_run(loop, UV_RUN_NOWAIT);
}

/* ================================================= the store functions == */

static void test_basics(reel_store *s) {
  SECTION("clock, ping, probe, notify, transactions");
  tx_begin(s);
  int64_t t = reel_store_clock_ms(s);
  CHECK(t > 1600000000000LL); /* ms since the epoch: after 2020 */
  CHECK_INT(reel_store_ping(s), 0);
  CHECK_INT(reel_store_probe(s, 1234), 0);
  CHECK_INT(reel_store_probe(s, t), 0); /* the one row, rewritten */
  CHECK_INT(reel_store_notify(s, REEL_STORE_CHANNEL_JOBS, ""), 0);
  CHECK_INT(reel_store_notify(s, REEL_STORE_CHANNEL_CANCEL, "job_x"), 0);
  tx_commit(s);
  CHECK_INT(admin_int("SELECT COUNT(*) FROM store_probe"), 1);
  CHECK_INT(admin_int("SELECT at_ms FROM store_probe"), t);
  CHECK(reel_store_name(s) && strcmp(reel_store_name(s), pg_url ? "postgres" : "sqlite") == 0);
  CHECK_INT(reel_store_exclusive(s), pg_url ? 0 : 1);

  /* a rolled-back transaction leaves nothing */
  tx_begin(s);
  put_job(s, "job_conf_rolled_back", "p", 0, 0);
  tx_rollback(s);
  CHECK_INT(job_rows("job_conf_rolled_back"), 0);
  /* a rolled-back savepoint drops only its own part of the transaction */
  tx_begin(s);
  put_job(s, "job_conf_sp_kept", "p", 0, 0);
  CHECK_INT(reel_store_release_savepoint(s), 0);
  CHECK_INT(reel_store_savepoint(s), 0);
  put_job(s, "job_conf_sp_dropped", "p", 0, 0);
  CHECK_INT(reel_store_rollback_savepoint(s), 0);
  tx_commit(s);
  CHECK_INT(job_rows("job_conf_sp_kept"), 1);
  CHECK_INT(job_rows("job_conf_sp_dropped"), 0);
  clear_all();
}

static void test_insert_get_write(reel_store *s) {
  SECTION("insert_job, get_job, write_job (version compare-and-set)");
  tx_begin(s);
  reel_job a = {0};
  make_job(&a, "job_conf_a", "a prompt", 3, 0);
  CHECK_INT(reel_store_insert_job(s, &a), 0);
  CHECK(a.seq > 0);
  CHECK_INT(a.version, 1);
  reel_job dup = {0};
  make_job(&dup, "job_conf_a", "another", 0, 0);
  CHECK_INT(reel_store_insert_job(s, &dup), REEL_ECONFLICT);
  reel_job_clear(&dup);
  tx_reset(s); /* the failed statement's savepoint: on PostgreSQL the transaction needs it */
  /* the reset savepoint dropped a too: insert it again */
  reel_job_clear(&a);
  make_job(&a, "job_conf_a", "a prompt", 3, 0);
  a.created_ms = 1700000000123LL;
  CHECK_INT(reel_store_insert_job(s, &a), 0);

  reel_job g = {0};
  CHECK_INT(reel_store_get_job(s, "job_conf_a", &g), 0);
  CHECK_STR(g.id, "job_conf_a");
  CHECK_STR(g.prompt, "a prompt");
  CHECK_INT(g.seq, a.seq);
  CHECK_INT(g.version, 1);
  CHECK_INT(g.status, REEL_JOB_QUEUED);
  CHECK_INT(g.priority, 3);
  CHECK_INT(g.created_ms, 1700000000123LL);
  CHECK_INT(g.attempts, 0);
  CHECK_INT(g.lease_expires_ms, 0);
  CHECK_STR(g.node, "");
  CHECK_STR(g.stage, "");
  CHECK(g.error == NULL && g.cost == NULL && g.artifact_key == NULL && g.failure_reason == NULL);
  reel_job_clear(&g);
  CHECK_INT(reel_store_get_job(s, "job_conf_nope", &g), REEL_ENOTFOUND);

  /* every mutable field is written and read back */
  reel_job w = {0};
  CHECK_INT(reel_store_get_job(s, "job_conf_a", &w), 0);
  reel_job stale = {0};
  CHECK_INT(reel_job_copy(&stale, &w), 0);
  w.status = REEL_JOB_PROGRESS;
  w.progress = 42;
  snprintf(w.stage, sizeof w.stage, "keyframes");
  w.started_ms = 111;
  w.finished_ms = 222;
  w.updated_ms = 333;
  w.attempts = 2;
  w.run_after_ms = 444;
  w.cancel_requested = 1;
  reel_job_set_string(&w.artifact_key, "reel/k/final_video.mp4");
  reel_job_set_string(&w.artifact_uri, "reel-local:reel/k/final_video.mp4");
  reel_job_set_string(&w.gcs_uri, "gs://bucket/k");
  reel_job_set_string(&w.error, "boom \"quoted\" \\ ünï");
  reel_job_set_string(&w.failure_reason, "timeout");
  reel_job_set_string(&w.cost, "{\"total_usd\":1.5}");
  snprintf(w.node, sizeof w.node, "node-1");
  w.lease_expires_ms = 555;
  w.priority = 7;
  CHECK_INT(reel_store_write_job(s, &w), 0);
  CHECK_INT(w.version, 2);
  CHECK_INT(reel_store_get_job(s, "job_conf_a", &g), 0);
  CHECK_INT(g.version, 2);
  CHECK_INT(g.status, REEL_JOB_PROGRESS);
  CHECK_INT(g.progress, 42);
  CHECK_STR(g.stage, "keyframes");
  CHECK_INT(g.started_ms, 111);
  CHECK_INT(g.finished_ms, 222);
  CHECK_INT(g.updated_ms, 333);
  CHECK_INT(g.attempts, 2);
  CHECK_INT(g.run_after_ms, 444);
  CHECK_INT(g.cancel_requested, 1);
  CHECK_STR(g.artifact_key, "reel/k/final_video.mp4");
  CHECK_STR(g.artifact_uri, "reel-local:reel/k/final_video.mp4");
  CHECK_STR(g.gcs_uri, "gs://bucket/k");
  CHECK_STR(g.error, "boom \"quoted\" \\ ünï");
  CHECK_STR(g.failure_reason, "timeout");
  CHECK_STR(g.cost, "{\"total_usd\":1.5}");
  CHECK_STR(g.node, "node-1");
  CHECK_INT(g.lease_expires_ms, 555);
  CHECK_INT(g.priority, 7);
  CHECK_STR(g.prompt, "a prompt");
  CHECK_INT(g.seq, a.seq);
  reel_job_clear(&g);

  /* a write from a copy read before that write: refused, nothing changes */
  stale.progress = 99;
  CHECK_INT(reel_store_write_job(s, &stale), REEL_ESTALE);
  CHECK_INT(stale.version, 1);
  CHECK_INT(reel_store_get_job(s, "job_conf_a", &g), 0);
  CHECK_INT(g.progress, 42);
  CHECK_INT(g.version, 2);
  reel_job_clear(&g);
  reel_job_clear(&stale);

  /* NULLs are written as NULLs */
  reel_job_set_string(&w.artifact_key, NULL);
  reel_job_set_string(&w.error, NULL);
  reel_job_set_string(&w.cost, NULL);
  CHECK_INT(reel_store_write_job(s, &w), 0);
  CHECK_INT(w.version, 3);
  CHECK_INT(reel_store_get_job(s, "job_conf_a", &g), 0);
  CHECK(g.artifact_key == NULL && g.error == NULL && g.cost == NULL);
  CHECK_STR(g.gcs_uri, "gs://bucket/k");
  reel_job_clear(&g);
  reel_job_clear(&w);

  /* a write of an unknown id */
  reel_job u = {0};
  make_job(&u, "job_conf_unknown", "u", 0, 0);
  u.version = 1;
  CHECK_INT(reel_store_write_job(s, &u), REEL_ENOTFOUND);
  reel_job_clear(&u);
  tx_commit(s);
  CHECK_INT(job_rows("job_conf_a"), 1);
  CHECK_INT(admin_int("SELECT version FROM jobs WHERE id = 'job_conf_a'"), 3);
  reel_job_clear(&a);
  clear_all();
}

static void test_insert_jobs(reel_store *s) {
  SECTION("insert_jobs: many at once, all or none");
  static const char *const prompts[3] = {"he said \"hi\", {x} \\ back\\slash", "NULL",
                                         "ünïcode 🎬\nsecond line\ttab, 'quotes'"};
  reel_job j[3];
  reel_job *p[3];
  for (int i = 0; i < 3; i++) {
    char id[32];
    snprintf(id, sizeof id, "job_conf_many_%d", i);
    make_job(&j[i], id, prompts[i], i, 0);
    snprintf(j[i].stage, sizeof j[i].stage, "%s", i == 1 ? "" : "s");
    p[i] = &j[i];
  }
  tx_begin(s);
  CHECK_INT(reel_store_insert_jobs(s, p, 3), 0);
  CHECK(j[0].seq > 0 && j[1].seq > 0 && j[2].seq > 0);
  CHECK(j[0].seq != j[1].seq && j[1].seq != j[2].seq && j[0].seq != j[2].seq);
  for (int i = 0; i < 3; i++) {
    CHECK_INT(j[i].version, 1);
    reel_job g = {0};
    CHECK_INT(reel_store_get_job(s, j[i].id, &g), 0);
    CHECK_STR(g.prompt, prompts[i]);
    CHECK_INT(g.seq, j[i].seq);
    CHECK_INT(g.priority, i);
    reel_job_clear(&g);
  }
  tx_commit(s);
  /* one id already taken: REEL_ECONFLICT, and (with the savepoint rolled back) none of them */
  reel_job k[3];
  reel_job *q[3];
  make_job(&k[0], "job_conf_many_new1", "n1", 0, 0);
  make_job(&k[1], "job_conf_many_1", "dup", 0, 0);
  make_job(&k[2], "job_conf_many_new2", "n2", 0, 0);
  for (int i = 0; i < 3; i++) q[i] = &k[i];
  tx_begin(s);
  CHECK_INT(reel_store_insert_jobs(s, q, 3), REEL_ECONFLICT);
  tx_reset(s);
  tx_commit(s);
  CHECK_INT(job_rows("job_conf_many_new1"), 0);
  CHECK_INT(job_rows("job_conf_many_new2"), 0);
  CHECK_INT(admin_int("SELECT COUNT(*) FROM jobs WHERE id LIKE 'job_conf_many_%%'"), 3);
  for (int i = 0; i < 3; i++) reel_job_clear(&j[i]), reel_job_clear(&k[i]);
  clear_all();
}

static void test_list_count(reel_store *s) {
  SECTION("list_jobs paging, count_by_status, count_queued");
  int64_t seq[6];
  tx_begin(s);
  for (int i = 1; i <= 5; i++) {
    reel_job j = {0};
    char id[32];
    snprintf(id, sizeof id, "job_conf_list_%d", i);
    make_job(&j, id, "p", 0, 0);
    CHECK_INT(reel_store_insert_job(s, &j), 0);
    seq[i] = j.seq;
    reel_job_clear(&j);
  }
  put_state(s, "job_conf_list_2", REEL_JOB_FINISHED, "n", 1, 0, reel_now_ms(), 0);
  put_state(s, "job_conf_list_4", REEL_JOB_STARTED, "n", 1, reel_now_ms() + 60000, 0, 0);
  tx_commit(s);
  CHECK(seq[1] < seq[2] && seq[2] < seq[3] && seq[3] < seq[4] && seq[4] < seq[5]);

  tx_begin(s);
  reel_job out[10];
  int n = -1;
  CHECK_INT(reel_store_list_jobs(s, -1, 0, 2, out, &n), 0);
  CHECK_INT(n, 2);
  if (n == 2) {
    CHECK_STR(out[0].id, "job_conf_list_5");
    CHECK_STR(out[1].id, "job_conf_list_4");
    CHECK_INT(out[1].status, REEL_JOB_STARTED);
  }
  for (int i = 0; i < n; i++) reel_job_clear(&out[i]);
  CHECK_INT(reel_store_list_jobs(s, -1, seq[4], 2, out, &n), 0);
  CHECK_INT(n, 2);
  if (n == 2) {
    CHECK_STR(out[0].id, "job_conf_list_3");
    CHECK_STR(out[1].id, "job_conf_list_2");
  }
  for (int i = 0; i < n; i++) reel_job_clear(&out[i]);
  CHECK_INT(reel_store_list_jobs(s, -1, seq[2], 2, out, &n), 0);
  CHECK_INT(n, 1);
  if (n == 1) CHECK_STR(out[0].id, "job_conf_list_1");
  for (int i = 0; i < n; i++) reel_job_clear(&out[i]);
  CHECK_INT(reel_store_list_jobs(s, -1, seq[1], 10, out, &n), 0);
  CHECK_INT(n, 0);
  CHECK_INT(reel_store_list_jobs(s, REEL_JOB_QUEUED, 0, 10, out, &n), 0);
  CHECK_INT(n, 3);
  if (n == 3) {
    CHECK_STR(out[0].id, "job_conf_list_5");
    CHECK_STR(out[1].id, "job_conf_list_3");
    CHECK_STR(out[2].id, "job_conf_list_1");
  }
  for (int i = 0; i < n; i++) reel_job_clear(&out[i]);
  CHECK_INT(reel_store_list_jobs(s, REEL_JOB_QUEUED, seq[3], 10, out, &n), 0);
  CHECK_INT(n, 1);
  for (int i = 0; i < n; i++) reel_job_clear(&out[i]);
  CHECK_INT(reel_store_list_jobs(s, REEL_JOB_FINISHED, 0, 10, out, &n), 0);
  CHECK_INT(n, 1);
  if (n == 1) CHECK_STR(out[0].id, "job_conf_list_2");
  for (int i = 0; i < n; i++) reel_job_clear(&out[i]);
  CHECK_INT(reel_store_list_jobs(s, REEL_JOB_CANCELED, 0, 10, out, &n), 0);
  CHECK_INT(n, 0);

  int64_t counts[REEL_JOB_STATUS_COUNT];
  CHECK_INT(reel_store_count_by_status(s, counts), 0);
  CHECK_INT(counts[REEL_JOB_QUEUED], 3);
  CHECK_INT(counts[REEL_JOB_STARTED], 1);
  CHECK_INT(counts[REEL_JOB_PROGRESS], 0);
  CHECK_INT(counts[REEL_JOB_FINISHED], 1);
  CHECK_INT(counts[REEL_JOB_FAILED], 0);
  CHECK_INT(counts[REEL_JOB_CANCELED], 0);
  int64_t q = -1;
  CHECK_INT(reel_store_count_queued(s, 2, &q), 0);
  CHECK_INT(q, 2); /* stops at its limit */
  CHECK_INT(reel_store_count_queued(s, 3, &q), 0);
  CHECK_INT(q, 3);
  CHECK_INT(reel_store_count_queued(s, 100, &q), 0);
  CHECK_INT(q, 3);
  tx_commit(s);
  clear_all();
}

/* The claim-order fixture: due jobs P9, R1, R2, Q1, Q2, N in that order, and
 * F, the highest priority but not due before now + 600 s. */
static void insert_order_set(reel_store *s, int64_t now) {
  tx_begin(s);
  put_job(s, "job_ord_Q1", "q1", 1, 0);         /* oldest of equal priority and run_after */
  put_job(s, "job_ord_R2", "r2", 5, now - 10000); /* older than R1 but due later */
  put_job(s, "job_ord_N", "n", -1, 0);           /* below the default priority */
  put_job(s, "job_ord_Q2", "q2", 1, 0);
  put_job(s, "job_ord_R1", "r1", 5, now - 20000);
  put_job(s, "job_ord_F", "f", 100, now + 600000); /* not due yet */
  put_job(s, "job_ord_P9", "p9", 9, now - 5000);  /* newest, but the highest priority due */
  tx_commit(s);
}
static const char *const claim_order[] = {"job_ord_P9", "job_ord_R1", "job_ord_R2", "job_ord_Q1", "job_ord_Q2",
                                          "job_ord_N"};

static void test_next_runnable(reel_store *s) {
  SECTION("next_runnable: priority, then run_after, then age; not before run_after");
  int64_t now = store_now(s);
  insert_order_set(s, now);
  tx_begin(s);
  reel_job j = {0};
  CHECK_INT(reel_store_next_runnable(s, now, &j), 0);
  CHECK_STR(j.id, "job_ord_P9");
  CHECK_INT(j.status, REEL_JOB_QUEUED);
  reel_job_clear(&j);
  CHECK_INT(reel_store_next_runnable(s, now + 600000, &j), 0); /* F is due by then */
  CHECK_STR(j.id, "job_ord_F");
  reel_job_clear(&j);
  CHECK_INT(reel_store_next_runnable(s, 0, &j), 0); /* only the jobs due at time 0 */
  CHECK_STR(j.id, "job_ord_Q1");
  reel_job_clear(&j);
  /* running jobs are not runnable */
  put_state(s, "job_ord_Q1", REEL_JOB_STARTED, "n", 1, now + 60000, 0, 0);
  put_state(s, "job_ord_Q2", REEL_JOB_FINISHED, "n", 1, 0, now, 0);
  CHECK_INT(reel_store_next_runnable(s, 0, &j), 0);
  CHECK_STR(j.id, "job_ord_N");
  reel_job_clear(&j);
  put_state(s, "job_ord_N", REEL_JOB_CANCELED, "", 0, 0, now, 0);
  CHECK_INT(reel_store_next_runnable(s, 0, &j), REEL_ENOTFOUND);
  tx_commit(s);
  clear_all();
}

static void test_renew_lease(reel_store *s) {
  SECTION("renew_lease: only the node and attempt holding a running job");
  int64_t now = store_now(s);
  tx_begin(s);
  put_job(s, "job_conf_lease", "p", 0, 0);
  put_state(s, "job_conf_lease", REEL_JOB_STARTED, "n1", 1, now + 1000, 0, 0);
  reel_fence right = {"n1", 1}, other_node = {"n2", 1}, other_attempt = {"n1", 2};
  int held = -1, cancel = -1;
  CHECK_INT(reel_store_renew_lease(s, "job_conf_lease", &right, now + 5000, &held, &cancel), 0);
  CHECK_INT(held, 1);
  CHECK_INT(cancel, 0);
  reel_job g = {0};
  CHECK_INT(reel_store_get_job(s, "job_conf_lease", &g), 0);
  CHECK_INT(g.lease_expires_ms, now + 5000);
  reel_job_clear(&g);
  CHECK_INT(reel_store_renew_lease(s, "job_conf_lease", &other_node, now + 9000, &held, &cancel), 0);
  CHECK_INT(held, 0);
  CHECK_INT(reel_store_renew_lease(s, "job_conf_lease", &other_attempt, now + 9000, &held, &cancel), 0);
  CHECK_INT(held, 0);
  CHECK_INT(reel_store_renew_lease(s, "job_conf_nope", &right, now + 9000, &held, &cancel), 0);
  CHECK_INT(held, 0);
  CHECK_INT(reel_store_get_job(s, "job_conf_lease", &g), 0);
  CHECK_INT(g.lease_expires_ms, now + 5000); /* the refused renewals changed nothing */
  reel_job_clear(&g);
  /* a cancel asked for is reported with the renewal; progress is running too */
  put_state(s, "job_conf_lease", REEL_JOB_PROGRESS, "n1", 1, now + 5000, 0, 1);
  CHECK_INT(reel_store_renew_lease(s, "job_conf_lease", &right, now + 6000, &held, &cancel), 0);
  CHECK_INT(held, 1);
  CHECK_INT(cancel, 1);
  /* not running any more: not held */
  put_state(s, "job_conf_lease", REEL_JOB_FINISHED, "n1", 1, 0, now, 0);
  CHECK_INT(reel_store_renew_lease(s, "job_conf_lease", &right, now + 7000, &held, &cancel), 0);
  CHECK_INT(held, 0);
  put_state(s, "job_conf_lease", REEL_JOB_QUEUED, "n1", 1, 0, 0, 0);
  CHECK_INT(reel_store_renew_lease(s, "job_conf_lease", &right, now + 7000, &held, &cancel), 0);
  CHECK_INT(held, 0);
  CHECK_INT(reel_store_get_job(s, "job_conf_lease", &g), 0);
  CHECK_INT(g.lease_expires_ms, 0);
  reel_job_clear(&g);
  tx_commit(s);
  clear_all();
}

static void test_expired_leases(reel_store *s) {
  SECTION("expired_leases: running jobs whose lease passed, oldest first");
  int64_t now = store_now(s);
  tx_begin(s);
  put_job(s, "job_exp_1", "p", 0, 0);
  put_job(s, "job_exp_2", "p", 0, 0);
  put_job(s, "job_exp_live", "p", 0, 0);
  put_job(s, "job_exp_done", "p", 0, 0);
  put_job(s, "job_exp_queued", "p", 0, 0);
  put_state(s, "job_exp_1", REEL_JOB_STARTED, "n1", 1, now - 100, 0, 0);
  put_state(s, "job_exp_2", REEL_JOB_PROGRESS, "n2", 1, now - 200, 0, 0);
  put_state(s, "job_exp_live", REEL_JOB_STARTED, "n1", 1, now + 100000, 0, 0);
  put_state(s, "job_exp_done", REEL_JOB_FINISHED, "n1", 1, now - 300, now, 0);
  put_state(s, "job_exp_queued", REEL_JOB_QUEUED, "", 0, now - 400, 0, 0);
  tx_commit(s);
  tx_begin(s);
  reel_job out[10];
  int n = -1;
  CHECK_INT(reel_store_expired_leases(s, now, 10, out, &n), 0);
  CHECK_INT(n, 2);
  if (n == 2) {
    CHECK_STR(out[0].id, "job_exp_2");
    CHECK_STR(out[1].id, "job_exp_1");
    CHECK_STR(out[1].node, "n1");
  }
  for (int i = 0; i < n; i++) reel_job_clear(&out[i]);
  CHECK_INT(reel_store_expired_leases(s, now, 1, out, &n), 0);
  CHECK_INT(n, 1);
  if (n == 1) CHECK_STR(out[0].id, "job_exp_2");
  for (int i = 0; i < n; i++) reel_job_clear(&out[i]);
  CHECK_INT(reel_store_expired_leases(s, INT64_MAX, 10, out, &n), 0); /* every running job */
  CHECK_INT(n, 3);
  if (n == 3) {
    CHECK_STR(out[0].id, "job_exp_2");
    CHECK_STR(out[1].id, "job_exp_1");
    CHECK_STR(out[2].id, "job_exp_live");
  }
  for (int i = 0; i < n; i++) reel_job_clear(&out[i]);
  CHECK_INT(reel_store_expired_leases(s, now - 1000, 10, out, &n), 0);
  CHECK_INT(n, 0);
  tx_commit(s);
  clear_all();
}

static void test_delete_finished(reel_store *s) {
  SECTION("delete_finished: only terminal jobs, only older, with their logs, bounded");
  int64_t t = reel_now_ms();
  tx_begin(s);
  const char *ids[] = {"job_del_1", "job_del_2", "job_del_3", "job_del_new", "job_del_running", "job_del_queued"};
  for (int i = 0; i < 6; i++) put_job(s, ids[i], "p", 0, 0);
  put_state(s, "job_del_1", REEL_JOB_FINISHED, "n", 1, 0, t - 3000, 0);
  put_state(s, "job_del_2", REEL_JOB_FAILED, "n", 1, 0, t - 2000, 0);
  put_state(s, "job_del_3", REEL_JOB_CANCELED, "n", 1, 0, t - 1000, 0);
  put_state(s, "job_del_new", REEL_JOB_FINISHED, "n", 1, 0, t + 60000, 0);
  put_state(s, "job_del_running", REEL_JOB_STARTED, "n", 1, t + 60000, 0, 0);
  CHECK_INT(reel_store_append_log(s, "job_del_1", "one", 10), 0);
  CHECK_INT(reel_store_append_log(s, "job_del_1", "two", 10), 0);
  CHECK_INT(reel_store_append_log(s, "job_del_running", "kept", 10), 0);
  CHECK_INT(reel_store_append_event(s, "job_del_1", "job.finished", t, "{}"), 0);
  CHECK_INT(reel_store_append_event(s, "job_del_running", "job.started", t, "{}"), 0);
  tx_commit(s);
  tx_begin(s);
  int deleted = -1;
  CHECK_INT(reel_store_delete_finished(s, t, 0, &deleted), 0);
  CHECK_INT(deleted, 0);
  CHECK_INT(reel_store_delete_finished(s, t, 2, &deleted), 0);
  CHECK_INT(deleted, 2);
  tx_commit(s);
  CHECK_INT(job_rows("job_del_1"), 0); /* the two that finished first */
  CHECK_INT(job_rows("job_del_2"), 0);
  CHECK_INT(job_rows("job_del_3"), 1);
  CHECK_INT(log_rows("job_del_1"), 0);
  CHECK_INT(event_rows("job_del_1"), 0);
  tx_begin(s);
  CHECK_INT(reel_store_delete_finished(s, t, 10, &deleted), 0);
  CHECK_INT(deleted, 1);
  CHECK_INT(reel_store_delete_finished(s, t, 10, &deleted), 0);
  CHECK_INT(deleted, 0);
  tx_commit(s);
  CHECK_INT(job_rows("job_del_3"), 0);
  CHECK_INT(job_rows("job_del_new"), 1);
  CHECK_INT(job_rows("job_del_running"), 1);
  CHECK_INT(job_rows("job_del_queued"), 1);
  CHECK_INT(log_rows("job_del_running"), 1);
  CHECK_INT(event_rows("job_del_running"), 1);
  clear_all();
}

static void test_logs(reel_store *s) {
  SECTION("append_log, tail_logs, max_lines");
  tx_begin(s);
  put_job(s, "job_log_a", "p", 0, 0);
  put_job(s, "job_log_b", "p", 0, 0);
  for (int i = 0; i < 7; i++) {
    char line[32];
    snprintf(line, sizeof line, "line %d", i);
    CHECK_INT(reel_store_append_log(s, "job_log_a", line, 5), 0);
  }
  CHECK_INT(reel_store_append_log(s, "job_log_b", "ünï \"q\" \\ {a,b}", 5), 0);
  CHECK_INT(reel_store_append_log(s, "job_log_b", "second", 5), 0);
  tx_commit(s);
  CHECK_INT(log_rows("job_log_a"), 5); /* the oldest beyond max_lines were dropped */
  tx_begin(s);
  json_t *lines = json_array();
  CHECK_INT(reel_store_tail_logs(s, "job_log_a", 3, lines), 0);
  CHECK_INT((int)json_array_size(lines), 3);
  CHECK_STR(json_string_value(json_array_get(lines, 0)), "line 4");
  CHECK_STR(json_string_value(json_array_get(lines, 2)), "line 6");
  json_array_clear(lines);
  CHECK_INT(reel_store_tail_logs(s, "job_log_a", 100, lines), 0);
  CHECK_INT((int)json_array_size(lines), 5);
  CHECK_STR(json_string_value(json_array_get(lines, 0)), "line 2");
  json_array_clear(lines);
  CHECK_INT(reel_store_tail_logs(s, "job_log_b", 10, lines), 0);
  CHECK_INT((int)json_array_size(lines), 2);
  CHECK_STR(json_string_value(json_array_get(lines, 0)), "ünï \"q\" \\ {a,b}");
  json_array_clear(lines);
  CHECK_INT(reel_store_tail_logs(s, "job_log_none", 10, lines), 0);
  CHECK_INT((int)json_array_size(lines), 0);
  json_decref(lines);
  tx_commit(s);
  clear_all();
}

static void test_events(reel_store *s) {
  SECTION("append_event, read_events, last_event_id: committed only, in order, per job or all");
  int64_t base = -1;
  tx_begin(s);
  CHECK_INT(reel_store_last_event_id(s, &base), 0);
  CHECK(base >= 0);
  const char *odd = "{\"line\":\"\u00fcn\u00ef \\\"q\\\" \\\\ {a,b}, \u2603\"}"; /* quotes, backslash, braces, comma */
  CHECK_INT(reel_store_append_event(s, "job_ev_a", "job.created", 1000, "{\"n\":1}"), 0);
  CHECK_INT(reel_store_append_event(s, "job_ev_b", "job.created", 1001, "{\"n\":2}"), 0);
  CHECK_INT(reel_store_append_event(s, "job_ev_a", "job.log", 1002, odd), 0);
  CHECK_INT(reel_store_release_savepoint(s), 0);
  CHECK_INT(reel_store_savepoint(s), 0);
  CHECK_INT(reel_store_append_event(s, "job_ev_a", "job.dropped", 1003, "{}"), 0);
  CHECK_INT(reel_store_rollback_savepoint(s), 0); /* a rolled-back call's event goes with it */
  CHECK_INT(admin_int("SELECT COUNT(*) FROM events"), 0); /* nothing visible before the commit */
  tx_commit(s);
  CHECK_INT(event_rows("job_ev_a"), 2);
  CHECK_INT(event_rows("job_ev_b"), 1);
  reel_event ev[8];
  int n = -1;
  tx_begin(s);
  int64_t last = -1;
  CHECK_INT(reel_store_last_event_id(s, &last), 0);
  CHECK_INT(last, base + 3);
  CHECK_INT(reel_store_read_events(s, base, NULL, 8, ev, &n), 0);
  CHECK_INT(n, 3);
  if (n == 3) {
    CHECK_INT(ev[0].id, base + 1);
    CHECK(ev[0].id < ev[1].id && ev[1].id < ev[2].id);
    CHECK_STR(ev[0].job_id, "job_ev_a");
    CHECK_STR(ev[0].type, "job.created");
    CHECK_INT(ev[0].created_ms, 1000);
    CHECK_STR(ev[0].data, "{\"n\":1}");
    CHECK_STR(ev[1].job_id, "job_ev_b");
    CHECK_STR(ev[2].type, "job.log");
    CHECK_STR(ev[2].data, odd);
  }
  for (int i = 0; i < n; i++) reel_event_clear(&ev[i]);
  CHECK_INT(reel_store_read_events(s, base, "job_ev_a", 8, ev, &n), 0); /* one job's */
  CHECK_INT(n, 2);
  if (n == 2) CHECK_STR(ev[1].type, "job.log");
  for (int i = 0; i < n; i++) reel_event_clear(&ev[i]);
  CHECK_INT(reel_store_read_events(s, base + 1, NULL, 1, ev, &n), 0); /* after an id, bounded */
  CHECK_INT(n, 1);
  if (n == 1) CHECK_INT(ev[0].id, base + 2);
  for (int i = 0; i < n; i++) reel_event_clear(&ev[i]);
  CHECK_INT(reel_store_read_events(s, base + 3, NULL, 8, ev, &n), 0);
  CHECK_INT(n, 0);
  tx_commit(s);
  /* a transaction rolled back leaves no event and uses no id that shows */
  tx_begin(s);
  CHECK_INT(reel_store_append_event(s, "job_ev_c", "job.created", 1004, "{}"), 0);
  put_job(s, "job_ev_c", "p", 0, 0);
  tx_rollback(s);
  tx_begin(s);
  CHECK_INT(reel_store_append_event(s, "job_ev_d", "job.created", 1005, "{}"), 0);
  tx_commit(s);
  CHECK_INT(event_rows("job_ev_c"), 0);
  tx_begin(s);
  CHECK_INT(reel_store_read_events(s, base + 3, NULL, 8, ev, &n), 0);
  CHECK_INT(n, 1);
  if (n == 1) {
    CHECK_STR(ev[0].job_id, "job_ev_d");
    CHECK(ev[0].id > base + 3);
  }
  for (int i = 0; i < n; i++) reel_event_clear(&ev[i]);
  tx_commit(s);
  clear_all();
}

static void put_delivery(reel_store *s, const char *id, const char *job, int64_t due, const char *payload) {
  reel_delivery d;
  memset(&d, 0, sizeof d);
  snprintf(d.id, sizeof d.id, "%s", id);
  snprintf(d.endpoint, sizeof d.endpoint, "http://127.0.0.1:9/hook");
  snprintf(d.event_type, sizeof d.event_type, "job.finished");
  snprintf(d.job_id, sizeof d.job_id, "%s", job);
  d.payload = (char *)payload;
  d.created_ms = due;
  d.next_attempt_ms = due;
  CHECK_INT(reel_store_insert_delivery(s, &d), 0);
  CHECK(d.seq > 0);
}

static void test_deliveries(reel_store *s) {
  SECTION("webhook deliveries: insert, claim (due, leased, counted), fenced finish, list, disabled endpoints");
  int64_t now = store_now(s);
  tx_begin(s);
  put_delivery(s, "msg_a", "job_dl_1", now - 2000, "{\"a\":\"\u00fc \\\" ,{}\"}");
  put_delivery(s, "msg_b", "job_dl_1", now - 1000, "{}");
  put_delivery(s, "msg_later", "job_dl_2", now + 60000, "{}");
  tx_commit(s);
  reel_delivery got[4];
  int n = -1;
  tx_begin(s);
  CHECK_INT(reel_store_claim_deliveries(s, "node-a", now, now + 30000, 1, got, &n), 0);
  CHECK_INT(n, 1);
  if (n == 1) {
    CHECK_STR(got[0].id, "msg_a"); /* the oldest due first */
    CHECK_INT(got[0].attempts, 1);
    CHECK_STR(got[0].lease_node, "node-a");
    CHECK_STR(got[0].job_id, "job_dl_1");
    CHECK_STR(got[0].endpoint, "http://127.0.0.1:9/hook");
  }
  char *payload = NULL;
  CHECK_INT(reel_store_read_delivery_payload(s, "msg_a", &payload), 0);
  CHECK_STR(payload ? payload : "", "{\"a\":\"\u00fc \\\" ,{}\"}");
  free(payload);
  CHECK_INT(reel_store_read_delivery_payload(s, "msg_none", &payload), REEL_ENOTFOUND);
  tx_commit(s);
  reel_delivery a = got[0];
  tx_begin(s);
  CHECK_INT(reel_store_claim_deliveries(s, "node-b", now, now + 30000, 4, got, &n), 0);
  CHECK_INT(n, 1); /* msg_a is leased, msg_later not due */
  if (n == 1) CHECK_STR(got[0].id, "msg_b");
  tx_commit(s);
  /* a finish by a node that does not hold it changes nothing */
  reel_delivery out = a;
  out.status = REEL_DELIVERY_DELIVERED;
  out.last_status = 200;
  int held = -1;
  tx_begin(s);
  CHECK_INT(reel_store_finish_delivery(s, &out, "node-b", now, &held), 0);
  CHECK_INT(held, 0);
  out.attempts = 2;
  CHECK_INT(reel_store_finish_delivery(s, &out, "node-a", now, &held), 0);
  CHECK_INT(held, 0); /* another attempt's fence */
  out.attempts = 1;
  out.status = REEL_DELIVERY_PENDING; /* a retry, due again at once, its lease ended */
  out.next_attempt_ms = now - 1;
  out.last_status = 500;
  snprintf(out.last_error, sizeof out.last_error, "HTTP 500");
  CHECK_INT(reel_store_finish_delivery(s, &out, "node-a", now, &held), 0);
  CHECK_INT(held, 1);
  tx_commit(s);
  tx_begin(s);
  CHECK_INT(reel_store_claim_deliveries(s, "node-c", now, now + 30000, 4, got, &n), 0);
  CHECK_INT(n, 1);
  if (n == 1) {
    CHECK_STR(got[0].id, "msg_a");
    CHECK_INT(got[0].attempts, 2);
    CHECK_INT(got[0].last_status, 500);
    CHECK_STR(got[0].last_error, "HTTP 500");
  }
  out = got[0];
  out.status = REEL_DELIVERY_DELIVERED;
  out.last_status = 204;
  out.last_error[0] = '\0';
  CHECK_INT(reel_store_finish_delivery(s, &out, "node-c", now, &held), 0);
  CHECK_INT(held, 1);
  CHECK_INT(reel_store_finish_delivery(s, &out, "node-c", now, &held), 0);
  CHECK_INT(held, 0); /* once delivered it is over */
  tx_commit(s);
  tx_begin(s);
  CHECK_INT(reel_store_list_deliveries(s, 0, 2, got, &n), 0);
  CHECK_INT(n, 2);
  if (n == 2) {
    CHECK_STR(got[0].id, "msg_later"); /* newest first */
    CHECK_STR(got[1].id, "msg_b");
    CHECK_INT(reel_store_list_deliveries(s, got[1].seq, 4, got, &n), 0);
    CHECK_INT(n, 1);
    if (n == 1) {
      CHECK_STR(got[0].id, "msg_a");
      CHECK_INT(got[0].status, REEL_DELIVERY_DELIVERED);
      CHECK_INT(got[0].attempts, 2);
    }
  }
  int64_t disabled = -1;
  CHECK_INT(reel_store_endpoint_disabled(s, "http://127.0.0.1:9/hook", &disabled), 0);
  CHECK_INT(disabled, 0);
  CHECK_INT(reel_store_disable_endpoint(s, "http://127.0.0.1:9/hook", now, "answered 410 Gone"), 0);
  CHECK_INT(reel_store_disable_endpoint(s, "http://127.0.0.1:9/hook", now + 5, "again"), 0);
  CHECK_INT(reel_store_endpoint_disabled(s, "http://127.0.0.1:9/hook", &disabled), 0);
  CHECK_INT(disabled, now);
  tx_commit(s);
  /* a start-up of an exclusive store: msg_b, leased to node-b, is due again */
  tx_begin(s);
  int released = -1;
  CHECK_INT(reel_store_claim_deliveries(s, "node-d", now, now + 30000, 4, got, &n), 0);
  CHECK_INT(n, 0);
  CHECK_INT(reel_store_release_delivery_leases(s, &released), 0);
  CHECK_INT(released, 1);
  CHECK_INT(reel_store_claim_deliveries(s, "node-d", now, now + 30000, 4, got, &n), 0);
  CHECK_INT(n, 1);
  if (n == 1) {
    CHECK_STR(got[0].id, "msg_b");
    CHECK_INT(got[0].attempts, 2);
  }
  tx_commit(s);
  clear_all();
}

static void test_idempotency_records(reel_store *s) {
  SECTION("idempotency records: get unexpired, put only when free or expired, delete expired");
  int64_t now = store_now(s);
  reel_idempotency rec = {0}, got;
  snprintf(rec.client, sizeof rec.client, "token:1");
  snprintf(rec.key, sizeof rec.key, "k \"1\"");
  snprintf(rec.body_sha256, sizeof rec.body_sha256, "%064d", 1);
  snprintf(rec.job_id, sizeof rec.job_id, "job_idem_1");
  rec.created_ms = now;
  rec.expires_ms = now + 1000;
  int stored = -1;
  tx_begin(s);
  CHECK_INT(reel_store_get_idempotency(s, "token:1", "k \"1\"", now, &got), REEL_ENOTFOUND);
  CHECK_INT(reel_store_put_idempotency(s, &rec, now, &stored), 0);
  CHECK_INT(stored, 1);
  reel_idempotency other = rec;
  snprintf(other.job_id, sizeof other.job_id, "job_idem_2");
  CHECK_INT(reel_store_put_idempotency(s, &other, now, &stored), 0);
  CHECK_INT(stored, 0); /* taken and unexpired */
  CHECK_INT(reel_store_get_idempotency(s, "token:1", "k \"1\"", now, &got), 0);
  CHECK_STR(got.job_id, "job_idem_1");
  CHECK_STR(got.body_sha256, rec.body_sha256);
  CHECK_INT(got.created_ms, now);
  CHECK_INT(reel_store_get_idempotency(s, "token:2", "k \"1\"", now, &got), REEL_ENOTFOUND); /* per client */
  CHECK_INT(reel_store_get_idempotency(s, "token:1", "k \"1\"", now + 1000, &got), REEL_ENOTFOUND); /* expired */
  other.expires_ms = now + 5000;
  CHECK_INT(reel_store_put_idempotency(s, &other, now + 1000, &stored), 0);
  CHECK_INT(stored, 1); /* an expired record is replaced */
  CHECK_INT(reel_store_get_idempotency(s, "token:1", "k \"1\"", now + 1000, &got), 0);
  CHECK_STR(got.job_id, "job_idem_2");
  int deleted = -1;
  CHECK_INT(reel_store_delete_expired_idempotency(s, now + 4000, 10, &deleted), 0);
  CHECK_INT(deleted, 0);
  CHECK_INT(reel_store_delete_expired_idempotency(s, now + 5000, 10, &deleted), 0);
  CHECK_INT(deleted, 1);
  tx_commit(s);
  clear_all();
}

/* PostgreSQL: a NOTIFY reaches a listening session when its transaction
 * commits, and never when it (or its savepoint) rolls back. */
static int pg_notifications(char seen[][48], int max, int *n, const char *until, int timeout_ms) {
  int64_t deadline = reel_now_ms() + timeout_ms;
  for (;;) {
    pq->consumeInput(adm_pg);
    PGnotify *note;
    int found = 0;
    while ((note = pq->notifies(adm_pg)) != NULL) {
      if (*n < max) snprintf(seen[(*n)++], 48, "%s:%s", note->relname, note->extra);
      if (until && strcmp(note->extra, until) == 0) found = 1;
      pq->freemem(note);
    }
    if (found) return 1;
    int64_t left = deadline - reel_now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {.fd = pq->socket(adm_pg), .events = POLLIN};
    poll(&p, 1, (int)(left > 100 ? 100 : left));
  }
}

static void test_pg_notify(reel_store *s) {
  SECTION("notify (PostgreSQL): delivered at commit, never after a rollback");
  CHECK_INT(admin_exec("LISTEN " REEL_STORE_CHANNEL_CANCEL), 0);
  char seen[16][48];
  int n = 0;
  tx_begin(s);
  CHECK_INT(reel_store_notify(s, REEL_STORE_CHANNEL_CANCEL, "job_rolled_back"), 0);
  put_job(s, "job_notify_x", "p", 0, 0); /* so that the transaction reached the server */
  tx_rollback(s);
  tx_begin(s);
  CHECK_INT(reel_store_notify(s, REEL_STORE_CHANNEL_CANCEL, "job_savepoint_dropped"), 0);
  CHECK_INT(reel_store_rollback_savepoint(s), 0);
  CHECK_INT(reel_store_release_savepoint(s), 0);
  CHECK_INT(reel_store_savepoint(s), 0);
  CHECK_INT(reel_store_notify(s, REEL_STORE_CHANNEL_CANCEL, "job_committed"), 0);
  put_job(s, "job_notify_y", "p", 0, 0);
  CHECK_INT(pg_notifications(seen, 16, &n, "job_committed", 300), 0); /* not before the commit */
  tx_commit(s);
  CHECK_INT(pg_notifications(seen, 16, &n, "job_committed", 10000), 1);
  int rolled = 0;
  for (int i = 0; i < n; i++)
    if (strstr(seen[i], "job_rolled_back") || strstr(seen[i], "job_savepoint_dropped")) rolled++;
  CHECK_INT(rolled, 0); /* a session's notifications arrive in commit order: none can follow */
  CHECK_INT(admin_exec("UNLISTEN *"), 0);
  clear_all();
}

/* PostgreSQL: rows one transaction holds are skipped by another's claim and
 * rescue (FOR UPDATE SKIP LOCKED), deterministically with two connections. */
static void test_pg_skip_locked(reel_store *s) {
  SECTION("next_runnable, expired_leases, get_job (PostgreSQL): rows another transaction holds are skipped");
  int64_t now = store_now(s);
  tx_begin(s);
  put_job(s, "job_lock_x", "p", 2, 0);
  put_job(s, "job_lock_y", "p", 1, 0);
  put_job(s, "job_lock_e1", "p", 0, 0);
  put_job(s, "job_lock_e2", "p", 0, 0);
  put_job(s, "job_lock_z", "p", 3, 0);
  put_state(s, "job_lock_e1", REEL_JOB_STARTED, "n", 1, now - 200, 0, 0);
  put_state(s, "job_lock_e2", REEL_JOB_STARTED, "n", 1, now - 100, 0, 0);
  tx_commit(s);
  /* a backend that waits for the lock instead of skipping fails in 3 s, not hangs */
  CHECK_INT(admin_exec("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET lock_timeout = %L', current_database(), "
                       "'3s'); END $$"),
            0);
  reel_store *a = open_store("conformance-a"), *b = open_store("conformance-b");
  CHECK_INT(admin_exec("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET lock_timeout', current_database()); "
                       "END $$"),
            0);
  if (!a || !b) return;
  reel_job ja = {0}, jb = {0}, out[10];
  int n = 0;
  tx_begin(a);
  tx_begin(b);
  CHECK_INT(reel_store_get_job(a, "job_lock_z", &ja), 0); /* a holds z (read for update) */
  reel_job_clear(&ja);
  CHECK_INT(reel_store_next_runnable(a, now, &ja), 0);
  CHECK_STR(ja.id, "job_lock_z"); /* its own lock does not hide it from a */
  reel_job_clear(&ja);
  CHECK_INT(reel_store_next_runnable(b, now, &jb), 0);
  CHECK_STR(jb.id, "job_lock_x"); /* b skips z */
  reel_job_clear(&jb);
  CHECK_INT(reel_store_next_runnable(a, now, &ja), 0);
  CHECK_STR(ja.id, "job_lock_z");
  reel_job_clear(&ja);
  CHECK_INT(reel_store_expired_leases(a, now, 1, out, &n), 0);
  CHECK_INT(n, 1);
  if (n == 1) CHECK_STR(out[0].id, "job_lock_e1");
  for (int i = 0; i < n; i++) reel_job_clear(&out[i]);
  CHECK_INT(reel_store_expired_leases(b, now, 10, out, &n), 0);
  CHECK_INT(n, 1); /* e1 is a's */
  if (n == 1) CHECK_STR(out[0].id, "job_lock_e2");
  for (int i = 0; i < n; i++) reel_job_clear(&out[i]);
  tx_rollback(a);
  tx_rollback(b);
  reel_store_close(a);
  reel_store_close(b);
  clear_all();
}

static void test_failed_commit_direct(reel_store *s) {
  SECTION("commit: a commit that fails gives REEL_ESTORE and leaves nothing");
  tx_begin(s);
  put_job(s, "job_fc_direct_ok", "fine", 0, 0);
  CHECK_INT(reel_store_append_event(s, "job_fc_direct_ok", "job.created", 1, "{}"), 0);
  put_job(s, "job_fc_direct_poison", "poison-at-commit", 0, 0); /* accepted: the key is checked at COMMIT */
  CHECK_INT(reel_store_release_savepoint(s), 0);
  CHECK_INT(reel_store_commit(s), REEL_ESTORE);
  char msg[320] = "";
  reel_store_fault f = reel_store_last_fault(s, msg, sizeof msg);
  CHECK(f != REEL_STORE_FAULT_NONE);
  CHECK(strcasestr(msg, "foreign key") != NULL);
  if (!strcasestr(msg, "foreign key")) fprintf(stderr, "last_fault: %s\n", msg);
  CHECK_INT(reel_store_rollback(s), 0);
  CHECK_INT(job_rows("job_fc_direct_ok"), 0);
  CHECK_INT(job_rows("job_fc_direct_poison"), 0);
  CHECK_INT(event_rows("job_fc_direct_ok"), 0);
  CHECK_INT(admin_int("SELECT COUNT(*) FROM conf_guard"), 0);
  /* and the connection works on */
  tx_begin(s);
  put_job(s, "job_fc_direct_after", "fine", 0, 0);
  tx_commit(s);
  CHECK_INT(job_rows("job_fc_direct_after"), 1);
  clear_all();
}

/* ============================================== the executor's batches == */

static void test_savepoint_isolation(void) {
  SECTION("executor: one failing call of a batch rolls back only itself");
  tcall gate, a, b, dup, e;
  memset(&a, 0, sizeof a), memset(&b, 0, sizeof b), memset(&dup, 0, sizeof dup), memset(&e, 0, sizeof e);
  snprintf(a.id, sizeof a.id, "job_sp_a");
  a.ret = REEL_EINVAL; /* inserts, then fails */
  snprintf(b.id, sizeof b.id, "job_sp_b");
  snprintf(dup.id, sizeof dup.id, "job_sp_b"); /* fails in the database (on PostgreSQL that aborts the transaction) */
  snprintf(e.id, sizeof e.id, "job_sp_e");
  gate_hold(&J.executor, &gate);
  tsubmit(&J.executor, &a, fn_insert, 1);
  tsubmit(&J.executor, &b, fn_insert, 1);
  tsubmit(&J.executor, &dup, fn_insert, 1);
  tsubmit(&J.executor, &e, fn_insert, 1);
  gate_release(&gate);
  twait(&a), twait(&b), twait(&dup), twait(&e);
  CHECK(a.batch == gate.batch + 1 && b.batch == a.batch && dup.batch == a.batch && e.batch == a.batch);
  CHECK_INT(a.result, REEL_EINVAL);
  CHECK_INT(b.result, 0);
  CHECK_INT(dup.result, REEL_ECONFLICT);
  CHECK_INT(e.result, 0);
  CHECK(a.on_loop && b.on_loop && dup.on_loop && e.on_loop);
  CHECK_INT(a.ndone + b.ndone + dup.ndone + e.ndone, 4);
  CHECK_INT(job_rows("job_sp_a"), 0);
  CHECK_INT(job_rows("job_sp_b"), 1);
  CHECK_INT(job_rows("job_sp_e"), 1);
  char msg[400];
  CHECK_INT(health_of(&J, msg, sizeof msg), 0);
  clear_all();
}

static void test_failed_commit_batch(void) {
  SECTION("executor + jobs: a failed commit fails every call of the batch, publishes nothing, and health says so");
  char target[32];
  CHECK_INT(submit("fc target", 0, target), 0);
  sync_op cl, sub, g;
  memset(&cl, 0, sizeof cl), memset(&sub, 0, sizeof sub), memset(&g, 0, sizeof g);
  op_new(&cl, REEL_JOB_OP_CLAIM, NULL);
  snprintf(cl.op.fence.node, sizeof cl.op.fence.node, "n1");
  cl.op.lease_ms = 60000;
  op_new(&sub, REEL_JOB_OP_SUBMIT, NULL);
  sub.op.prompt = strdup("poison-at-commit");
  tcall gate, ins;
  memset(&ins, 0, sizeof ins);
  snprintf(ins.id, sizeof ins.id, "job_fc_batch");
  int transitioned = L.transitioned, submitted = L.submitted;
  unsigned long long failures = J.executor.commit_failures, batches = J.executor.batches;
  gate_hold(&J.executor, &gate);
  op_start(&J, &cl);
  tsubmit(&J.executor, &ins, fn_insert, 1);
  op_start(&J, &sub);
  gate_release(&gate);
  CHECK_INT(op_wait(&cl), REEL_ESTORE);
  CHECK_INT(op_wait(&sub), REEL_ESTORE);
  twait(&ins);
  CHECK_INT(ins.result, REEL_ESTORE);
  CHECK_INT(ins.batch, gate.batch + 1);
  CHECK_INT(J.executor.batches - batches, 2); /* the gate's, and one with all three */
  CHECK_INT(J.executor.commit_failures - failures, 1);
  CHECK(cl.calls == 1 && sub.calls == 1 && ins.ndone == 1);
  /* the claim ran and noted its transition, but it was never committed */
  CHECK_INT(cl.op.n_transitions, 0);
  CHECK_INT(L.transitioned, transitioned);
  CHECK_INT(L.submitted, submitted);
  CHECK_INT(job_rows("job_fc_batch"), 0);
  CHECK_INT(admin_int("SELECT COUNT(*) FROM jobs WHERE prompt = 'poison-at-commit'"), 0);
  CHECK_INT(get(target, &g), 0);
  CHECK_INT(g.op.job.status, REEL_JOB_QUEUED);
  CHECK_INT(g.op.job.attempts, 0);
  CHECK_STR(g.op.job.node, "");
  CHECK_INT(g.op.job.version, 1);
  char msg[400];
  CHECK_INT(health_of(&J, msg, sizeof msg), REEL_ESTORE);
  CHECK(strstr(msg, "cannot commit") && strcasestr(msg, "foreign key"));
  printf("   health after the failed commit: %s\n", msg);
  /* a read that commits proves nothing; a write that commits does */
  CHECK_INT(get(target, &g), 0);
  CHECK_INT(health_of(&J, msg, sizeof msg), REEL_ESTORE);
  op_new(&g, REEL_JOB_OP_PING, NULL);
  g.op.probe = 1;
  CHECK_INT(jrun(&g), 0);
  CHECK_INT(health_of(&J, msg, sizeof msg), 0);
  /* the claim goes through now */
  char id[32];
  CHECK_INT(claim("n1", 60000, id, NULL), 0);
  CHECK_STR(id, target);
  reel_job_op_cleanup(&cl.op), reel_job_op_cleanup(&sub.op), reel_job_op_cleanup(&g.op);
  clear_all();
}

static void test_rolled_back_op(reel_store *s) {
  SECTION("jobs: an op whose call is rolled back publishes nothing; the rest of its batch commits");
  tx_begin(s);
  put_job(s, "job_rb_first", "fine", 5, 0);
  put_job(s, "job_rb_second", "explodes-on-claim", 4, 0);
  tx_commit(s);
  sync_op cl, g;
  memset(&cl, 0, sizeof cl), memset(&g, 0, sizeof g);
  op_new(&cl, REEL_JOB_OP_CLAIM, NULL);
  snprintf(cl.op.fence.node, sizeof cl.op.fence.node, "poison-node");
  cl.op.lease_ms = 60000;
  cl.op.limit = 2; /* claims job_rb_first, then fails writing job_rb_second */
  tcall gate, ins;
  memset(&ins, 0, sizeof ins);
  snprintf(ins.id, sizeof ins.id, "job_rb_neighbour");
  int transitioned = L.transitioned;
  gate_hold(&J.executor, &gate);
  op_start(&J, &cl);
  tsubmit(&J.executor, &ins, fn_insert, 1);
  gate_release(&gate);
  CHECK_INT(op_wait(&cl), REEL_ESTORE);
  twait(&ins);
  CHECK_INT(ins.result, 0);
  CHECK_INT(ins.batch, gate.batch + 1);
  CHECK_INT(cl.op.n_transitions, 0);
  CHECK_INT(L.transitioned, transitioned);
  CHECK_INT(job_rows("job_rb_neighbour"), 1);
  CHECK_INT(get("job_rb_first", &g), 0);
  CHECK_INT(g.op.job.status, REEL_JOB_QUEUED);
  CHECK_INT(g.op.job.attempts, 0);
  CHECK_STR(g.op.job.node, "");
  CHECK_INT(g.op.job.version, 1);
  reel_job_op_cleanup(&cl.op), reel_job_op_cleanup(&g.op);
  clear_all();
}

/* PostgreSQL: the server ends the store's session in the middle of a batch. */
static char victim_name[64];
static int fn_terminate(reel_store *s, tcall *c) {
  (void)s, (void)c;
  long long n = admin_int("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '%s'",
                          victim_name);
  if (n != 1) fprintf(stderr, "pg_terminate_backend matched %lld sessions\n", n);
  for (int i = 0; i < 500 && admin_int("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = '%s'",
                                       victim_name) > 0; i++)
    usleep(10000);
  return 0;
}

static void test_pg_terminated(void) {
  SECTION("executor (PostgreSQL): the session is terminated before the commit; the next batch reconnects");
  snprintf(victim_name, sizeof victim_name, "conformance-victim-%d", (int)getpid());
  reel_store *v = open_store(victim_name);
  if (!v) return;
  reel_store_executor ex;
  memset(&ex, 0, sizeof ex);
  CHECK_INT(reel_store_executor_start(&ex, loop, v), 0);
  tcall gate, a, kill, after;
  memset(&a, 0, sizeof a), memset(&kill, 0, sizeof kill), memset(&after, 0, sizeof after);
  snprintf(a.id, sizeof a.id, "job_term_a");
  snprintf(after.id, sizeof after.id, "job_term_after");
  gate_hold(&ex, &gate);
  tsubmit(&ex, &a, fn_insert, 1);
  tsubmit(&ex, &kill, fn_terminate, 0);
  gate_release(&gate);
  twait(&a), twait(&kill);
  CHECK_INT(a.result, REEL_ESTORE);
  CHECK_INT(kill.result, REEL_ESTORE);
  CHECK_INT(ex.commit_failures, 1);
  char msg[400] = "";
  CHECK_INT(reel_store_executor_health(&ex, msg, sizeof msg), REEL_ESTORE);
  CHECK(strstr(msg, "unreachable") != NULL);
  printf("   health after the session was terminated: %s\n", msg);
  CHECK_INT(job_rows("job_term_a"), 0);
  tsubmit(&ex, &after, fn_insert, 1);
  twait(&after);
  CHECK_INT(after.result, 0);
  CHECK_INT(job_rows("job_term_after"), 1);
  CHECK_INT(reel_store_executor_health(&ex, msg, sizeof msg), 0);
  reel_store_executor_stop(&ex);
  uv_run(loop, UV_RUN_NOWAIT);
  reel_store_close(v);
  clear_all();
}

/* ========================================================== job rules == */

static void test_lifecycle(void) {
  SECTION("jobs: submit, get, list, claim, progress, log, logs, finish, cancel, counts, ping");
  sync_op s;
  memset(&s, 0, sizeof s);
  char a[32], b[32], c[32];
  int submitted = L.submitted;
  CHECK_INT(submit("first", 0, a), 0);
  CHECK_INT(submit("second", 0, b), 0);
  CHECK_INT(submit("third", 0, c), 0);
  CHECK_INT(L.submitted - submitted, 3);
  CHECK(strncmp(a, "job_", 4) == 0 && strlen(a) == 30 && strcmp(a, b) != 0);
  CHECK_INT(get(a, &s), 0);
  CHECK_STR(s.op.job.prompt, "first");
  CHECK_INT(s.op.job.status, REEL_JOB_QUEUED);
  CHECK(s.on_loop);
  CHECK_INT(get("job_00000000000000000000000000", &s), REEL_ENOTFOUND);

  /* listing: newest first, paged */
  op_new(&s, REEL_JOB_OP_LIST, NULL);
  s.op.limit = 2;
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(s.op.n_list, 2);
  if (s.op.n_list == 2) {
    CHECK_STR(s.op.list[0].id, c);
    CHECK_STR(s.op.list[1].id, b);
  }
  int64_t next = s.op.next_seq;
  CHECK(next > 0);
  op_new(&s, REEL_JOB_OP_LIST, NULL);
  s.op.limit = 2;
  s.op.before_seq = next;
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(s.op.n_list, 1);
  if (s.op.n_list == 1) CHECK_STR(s.op.list[0].id, a);
  CHECK_INT(s.op.next_seq, 0);

  /* claim takes the oldest, and reports the transition after the commit */
  int transitioned = L.transitioned;
  op_new(&s, REEL_JOB_OP_CLAIM, NULL);
  snprintf(s.op.fence.node, sizeof s.op.fence.node, "n1");
  s.op.lease_ms = 60000;
  CHECK_INT(jrun(&s), 0);
  CHECK_STR(s.op.job.id, a);
  CHECK_INT(s.op.job.status, REEL_JOB_STARTED);
  CHECK_INT(s.op.job.attempts, 1);
  CHECK_STR(s.op.job.node, "n1");
  CHECK(s.op.job.started_ms > 0);
  CHECK(s.op.job.lease_expires_ms > s.op.job.started_ms);
  CHECK_INT(s.op.fence.attempt, 1);
  CHECK_INT(s.op.n_transitions, 1);
  if (s.op.n_transitions == 1) {
    CHECK_STR(s.op.transitions[0].id, a);
    CHECK_INT(s.op.transitions[0].from, REEL_JOB_QUEUED);
    CHECK_INT(s.op.transitions[0].to, REEL_JOB_STARTED);
    CHECK_INT(s.op.transitions[0].attempts, 1);
    CHECK_STR(s.op.transitions[0].node, "n1");
  }
  CHECK_INT(L.transitioned - transitioned, 1);
  CHECK_INT(L.last.to, REEL_JOB_STARTED);
  reel_fence fence = s.op.fence;
  CHECK_INT(admin_int("SELECT attempts FROM jobs WHERE id = '%s'", a), 1);

  fenced(&s, REEL_JOB_OP_PROGRESS, a, &fence);
  CHECK_INT(s.result, 0);
  CHECK_INT(s.op.job.status, REEL_JOB_PROGRESS);
  CHECK_INT(s.op.job.progress, 50);
  CHECK_STR(s.op.job.stage, "render");
  CHECK_INT(s.op.n_transitions, 1);
  op_new(&s, REEL_JOB_OP_PROGRESS, a);
  s.op.fence = fence;
  s.op.progress = 140; /* capped */
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(s.op.job.progress, 100);
  CHECK_INT(s.op.n_transitions, 0); /* progress -> progress is no transition */

  /* a log capped at 5 lines keeps the newest; one op may carry several lines */
  op_new(&s, REEL_JOB_OP_LOG, a);
  s.op.fence = fence;
  s.op.text = strdup("line 0\nline 1\nline 2");
  CHECK_INT(jrun(&s), 0);
  for (int i = 3; i < 7; i++) {
    op_new(&s, REEL_JOB_OP_LOG, a);
    s.op.fence = fence;
    char line[32];
    snprintf(line, sizeof line, "line %d", i);
    s.op.text = strdup(line);
    CHECK_INT(jrun(&s), 0);
  }
  op_new(&s, REEL_JOB_OP_LOGS, a);
  s.op.tail = 3;
  CHECK_INT(jrun(&s), 0);
  CHECK_INT((int)json_array_size(s.op.lines), 3);
  CHECK_STR(json_string_value(json_array_get(s.op.lines, 0)), "line 4");
  CHECK_STR(json_string_value(json_array_get(s.op.lines, 2)), "line 6");
  CHECK_STR(s.op.job.id, a);
  op_new(&s, REEL_JOB_OP_LOGS, a);
  s.op.tail = 100;
  CHECK_INT(jrun(&s), 0);
  CHECK_INT((int)json_array_size(s.op.lines), 5);
  op_new(&s, REEL_JOB_OP_LOGS, "job_00000000000000000000000000");
  s.op.tail = 10;
  CHECK_INT(jrun(&s), REEL_ENOTFOUND);

  op_new(&s, REEL_JOB_OP_FINISH, a);
  s.op.fence = fence;
  s.op.artifact_key = strdup("reel/2026-11/x/final_video.mp4");
  s.op.artifact_uri = strdup("reel-local:reel/2026-11/x/final_video.mp4");
  s.op.cost = strdup("{\"total_usd\":0.25}");
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(s.op.job.status, REEL_JOB_FINISHED);
  CHECK_INT(s.op.job.progress, 100);
  CHECK(s.op.job.finished_ms >= s.op.job.started_ms);
  CHECK_INT(s.op.job.lease_expires_ms, 0);
  CHECK_INT(s.op.n_transitions, 1);
  if (s.op.n_transitions == 1) {
    CHECK_INT(s.op.transitions[0].from, REEL_JOB_PROGRESS);
    CHECK_INT(s.op.transitions[0].to, REEL_JOB_FINISHED);
    CHECK(s.op.transitions[0].run_seconds >= 0);
  }
  CHECK_INT(get(a, &s), 0);
  CHECK_STR(s.op.job.artifact_key, "reel/2026-11/x/final_video.mp4");
  CHECK_STR(s.op.job.cost, "{\"total_usd\":0.25}");
  /* terminal is final */
  op_new(&s, REEL_JOB_OP_CANCEL, a);
  CHECK_INT(jrun(&s), REEL_ECONFLICT);
  CHECK_INT(s.op.job.status, REEL_JOB_FINISHED);
  op_new(&s, REEL_JOB_OP_CANCEL, "job_00000000000000000000000000");
  CHECK_INT(jrun(&s), REEL_ENOTFOUND);

  /* cancel of a queued job ends it at once */
  op_new(&s, REEL_JOB_OP_CANCEL, c);
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(s.op.was_running, 0);
  CHECK_INT(s.op.n_transitions, 1);
  if (s.op.n_transitions == 1) CHECK_INT(s.op.transitions[0].to, REEL_JOB_CANCELED);
  CHECK_INT(get(c, &s), 0);
  CHECK_INT(s.op.job.status, REEL_JOB_CANCELED);
  CHECK_INT(s.op.job.cancel_requested, 1);

  op_new(&s, REEL_JOB_OP_COUNTS, NULL);
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(s.op.counts[REEL_JOB_QUEUED], 1);
  CHECK_INT(s.op.counts[REEL_JOB_FINISHED], 1);
  CHECK_INT(s.op.counts[REEL_JOB_CANCELED], 1);
  CHECK_INT(s.op.counts[REEL_JOB_STARTED] + s.op.counts[REEL_JOB_PROGRESS] + s.op.counts[REEL_JOB_FAILED], 0);
  op_new(&s, REEL_JOB_OP_PING, NULL);
  CHECK_INT(jrun(&s), 0);
  op_new(&s, REEL_JOB_OP_PING, NULL);
  s.op.probe = 1;
  CHECK_INT(jrun(&s), 0);

  /* everything survives closing and reopening the store */
  close_jobs(&J);
  open_jobs();
  CHECK_INT(get(b, &s), 0);
  CHECK_STR(s.op.job.prompt, "second");
  CHECK_INT(s.op.job.status, REEL_JOB_QUEUED);
  CHECK_INT(get(a, &s), 0);
  CHECK_INT(s.op.job.status, REEL_JOB_FINISHED);
  reel_job_op_cleanup(&s.op);
  clear_all();
}

static void test_queue_limit(void) {
  SECTION("jobs: the queue depth limit, counted in the store");
  reel_store *st = open_store("conformance-small");
  if (!st) return;
  reel_jobs small;
  CHECK_INT(reel_jobs_init(&small, loop, st, 3, 5), 0);
  sync_op s[5];
  memset(s, 0, sizeof s);
  tcall gate;
  gate_hold(&small.executor, &gate);
  for (int i = 0; i < 5; i++) {
    op_new(&s[i], REEL_JOB_OP_SUBMIT, NULL);
    s[i].op.prompt = strdup("limited");
    op_start(&small, &s[i]);
  }
  gate_release(&gate);
  int ok = 0, busy = 0;
  for (int i = 0; i < 5; i++) {
    int rc = op_wait(&s[i]);
    ok += rc == 0;
    busy += rc == REEL_EBUSY;
  }
  CHECK_INT(ok, 3);
  CHECK_INT(busy, 2);
  CHECK_INT(s[0].result, 0);
  CHECK_INT(s[4].result, REEL_EBUSY);
  CHECK_INT(admin_int("SELECT COUNT(*) FROM jobs WHERE status = 0"), 3);
  char id[32];
  CHECK_INT(submit_on(&small, "one more", 0, id), REEL_EBUSY);
  /* the queue is what the store holds, whoever queued it: one canceled elsewhere frees a place */
  op_new(&s[0], REEL_JOB_OP_CANCEL, s[1].op.job.id);
  CHECK_INT(jrun(&s[0]), 0);
  CHECK_INT(submit_on(&small, "one more", 0, id), 0);
  CHECK_INT(submit_on(&small, "and another", 0, id), REEL_EBUSY);
  for (int i = 0; i < 5; i++) reel_job_op_cleanup(&s[i].op);
  close_jobs(&small);
  clear_all();
}

static void test_fencing(void) {
  SECTION("jobs: every write of a run is fenced by node and attempt");
  char f[32];
  reel_fence fence;
  CHECK_INT(submit("fenced", 0, f), 0);
  CHECK_INT(claim("n1", 60000, NULL, &fence), 0);
  sync_op s, g;
  memset(&s, 0, sizeof s), memset(&g, 0, sizeof g);
  CHECK_INT(get(f, &g), 0);
  int64_t version = g.op.job.version;
  static const reel_job_op_kind kinds[] = {REEL_JOB_OP_PROGRESS, REEL_JOB_OP_LOG,   REEL_JOB_OP_FINISH,
                                           REEL_JOB_OP_FAIL,     REEL_JOB_OP_RETRY, REEL_JOB_OP_CANCELED};
  reel_fence wrong_node = fence, wrong_attempt = fence;
  snprintf(wrong_node.node, sizeof wrong_node.node, "n2");
  wrong_attempt.attempt = fence.attempt + 1;
  int transitioned = L.transitioned;
  for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
    CHECK_INT(fenced(&s, kinds[k], f, &wrong_node), REEL_ESTALE);
    CHECK_INT(s.op.n_transitions, 0);
    CHECK_INT(fenced(&s, kinds[k], f, &wrong_attempt), REEL_ESTALE);
    CHECK_INT(s.op.n_transitions, 0);
    if (s.result != REEL_ESTALE) fprintf(stderr, "  (op %s)\n", reel_job_op_name(kinds[k]));
  }
  CHECK_INT(L.transitioned, transitioned);
  CHECK_INT(get(f, &g), 0);
  CHECK_INT(g.op.job.version, version); /* nothing was written */
  CHECK_INT(g.op.job.status, REEL_JOB_STARTED);
  CHECK_INT(log_rows(f), 0);
  /* the right fence writes */
  CHECK_INT(fenced(&s, REEL_JOB_OP_LOG, f, &fence), 0);
  CHECK_INT(log_rows(f), 1);
  CHECK_INT(fenced(&s, REEL_JOB_OP_FAIL, f, &fence), 0);
  CHECK_INT(s.op.job.status, REEL_JOB_FAILED);
  CHECK_STR(s.op.job.failure_reason, "exit_status");
  /* and after the run ended, not even its own fence */
  CHECK_INT(fenced(&s, REEL_JOB_OP_PROGRESS, f, &fence), REEL_ESTALE);
  CHECK_INT(fenced(&s, REEL_JOB_OP_LOG, f, &fence), REEL_ESTALE);
  CHECK_INT(log_rows(f), 1);
  reel_job_op_cleanup(&s.op), reel_job_op_cleanup(&g.op);
  clear_all();
}

static void test_claim_order(reel_store *st) {
  SECTION("jobs: CLAIM order (priority, run_after, age), several at once, and not before run_after");
  insert_order_set(st, store_now(st));
  sync_op s;
  memset(&s, 0, sizeof s);
  op_new(&s, REEL_JOB_OP_CLAIM, NULL);
  snprintf(s.op.fence.node, sizeof s.op.fence.node, "n1");
  s.op.lease_ms = 60000;
  s.op.limit = 3;
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(s.op.n_list, 3);
  for (int i = 0; i < s.op.n_list && i < 3; i++) {
    CHECK_STR(s.op.list[i].id, claim_order[i]);
    CHECK_INT(s.op.list[i].status, REEL_JOB_STARTED);
    CHECK_INT(s.op.list[i].attempts, 1);
  }
  CHECK_INT(s.op.n_transitions, 3);
  for (int i = 3; i < 6; i++) {
    char id[32] = "";
    CHECK_INT(claim("n1", 60000, id, NULL), 0);
    CHECK_STR(id, claim_order[i]);
  }
  CHECK_INT(claim("n1", 60000, NULL, NULL), REEL_ENOTFOUND); /* job_ord_F is not due */
  op_new(&s, REEL_JOB_OP_CLAIM, NULL);
  s.op.limit = 4;
  s.op.lease_ms = 60000;
  CHECK_INT(jrun(&s), REEL_ENOTFOUND);
  CHECK_INT(s.op.n_list, 0);
  CHECK_INT(admin_int("SELECT status FROM jobs WHERE id = 'job_ord_F'"), REEL_JOB_QUEUED);
  reel_job_op_cleanup(&s.op);
  clear_all();
}

static void test_renew_op(void) {
  SECTION("jobs: RENEW extends the leases still held, and reports cancels");
  char r[32], other[32];
  reel_fence fence, fence2;
  CHECK_INT(submit("renewed", 0, r), 0);
  CHECK_INT(claim("n1", 1000, NULL, &fence), 0);
  CHECK_INT(submit("other's", 0, other), 0);
  CHECK_INT(claim("n2", 1000, NULL, &fence2), 0);
  sync_op s, g;
  memset(&s, 0, sizeof s), memset(&g, 0, sizeof g);
  CHECK_INT(get(r, &g), 0);
  int64_t before = g.op.job.lease_expires_ms;
  reel_job_lease leases[3];
  memset(leases, 0, sizeof leases);
  snprintf(leases[0].id, sizeof leases[0].id, "%s", r);
  leases[0].attempt = 1;
  snprintf(leases[1].id, sizeof leases[1].id, "%s", other); /* n2's */
  leases[1].attempt = 1;
  snprintf(leases[2].id, sizeof leases[2].id, "job_00000000000000000000000000");
  leases[2].attempt = 1;
  op_new(&s, REEL_JOB_OP_RENEW, NULL);
  snprintf(s.op.fence.node, sizeof s.op.fence.node, "n1");
  s.op.lease_ms = 600000;
  s.op.leases = leases;
  s.op.n_leases = 3;
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(leases[0].held, 1);
  CHECK_INT(leases[0].cancel_requested, 0);
  CHECK_INT(leases[1].held, 0);
  CHECK_INT(leases[2].held, 0);
  CHECK_INT(get(r, &g), 0);
  CHECK(g.op.job.lease_expires_ms >= before + 599000);
  CHECK_INT(get(other, &g), 0);
  CHECK_STR(g.op.job.node, "n2");
  /* a cancel of a running job: asked for, reported to the holder at renewal */
  int cancels = L.cancels;
  op_new(&s, REEL_JOB_OP_CANCEL, r);
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(s.op.was_running, 1);
  CHECK_INT(L.cancels - cancels, 1);
  CHECK_INT(get(r, &g), 0);
  CHECK_INT(g.op.job.status, REEL_JOB_STARTED);
  CHECK_INT(g.op.job.cancel_requested, 1);
  op_new(&s, REEL_JOB_OP_RENEW, NULL);
  snprintf(s.op.fence.node, sizeof s.op.fence.node, "n1");
  s.op.lease_ms = 600000;
  s.op.leases = leases;
  s.op.n_leases = 1;
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(leases[0].held, 1);
  CHECK_INT(leases[0].cancel_requested, 1);
  /* the run stops for it */
  CHECK_INT(fenced(&s, REEL_JOB_OP_CANCELED, r, &fence), 0);
  CHECK_INT(s.op.job.status, REEL_JOB_CANCELED);
  CHECK_STR(s.op.job.failure_reason, "canceled");
  s.op.leases = NULL;
  op_new(&s, REEL_JOB_OP_RENEW, NULL);
  snprintf(s.op.fence.node, sizeof s.op.fence.node, "n1");
  s.op.lease_ms = 600000;
  s.op.leases = leases;
  s.op.n_leases = 1;
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(leases[0].held, 0);
  s.op.leases = NULL;
  reel_job_op_cleanup(&s.op), reel_job_op_cleanup(&g.op);
  clear_all();
}

static int rescue(int max_attempts, int all, sync_op *s) {
  op_new(s, REEL_JOB_OP_RESCUE, NULL);
  s->op.max_attempts = max_attempts;
  s->op.all = all;
  return jrun(s);
}

static void test_rescue(void) {
  SECTION("jobs: expired leases are rescued (requeue, fail after max_attempts, cancel); live ones only with all");
  sync_op s, g;
  memset(&s, 0, sizeof s), memset(&g, 0, sizeof g);
  char e[32], c[32], live[32];
  reel_fence f1, f2;
  CHECK_INT(submit("expires", 0, e), 0);
  CHECK_INT(claim("n1", 1, NULL, &f1), 0); /* a lease of 1 ms */
  usleep(20000);                           /* ... has expired by the store's clock */
  int submitted = L.submitted;
  CHECK_INT(rescue(2, 0, &s), 0);
  CHECK_INT(s.op.rescued, 1);
  CHECK_INT(s.op.requeued, 1);
  CHECK_INT(s.op.failed, 0);
  CHECK_INT(s.op.n_transitions, 1);
  if (s.op.n_transitions == 1) {
    CHECK_INT(s.op.transitions[0].from, REEL_JOB_STARTED);
    CHECK_INT(s.op.transitions[0].to, REEL_JOB_QUEUED);
  }
  CHECK_INT(L.submitted - submitted, 1); /* claimable again: the wake-up */
  CHECK_INT(get(e, &g), 0);
  CHECK_INT(g.op.job.status, REEL_JOB_QUEUED);
  CHECK_INT(g.op.job.attempts, 1); /* the lost run counts */
  CHECK_INT(g.op.job.lease_expires_ms, 0);
  CHECK(g.op.job.error && strstr(g.op.job.error, "requeued") && strstr(g.op.job.error, "n1"));
  /* the second run (same node, next attempt); the first run's fence is dead */
  CHECK_INT(claim("n1", 1, NULL, &f2), 0);
  CHECK_INT(f2.attempt, 2);
  CHECK_INT(fenced(&s, REEL_JOB_OP_PROGRESS, e, &f1), REEL_ESTALE);
  /* one lost run with a cancel asked, one live run */
  CHECK_INT(submit("canceled while lost", 0, c), 0);
  CHECK_INT(claim("n2", 1, NULL, NULL), 0);
  op_new(&s, REEL_JOB_OP_CANCEL, c);
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(s.op.was_running, 1);
  CHECK_INT(submit("alive", 0, live), 0);
  CHECK_INT(claim("n3", 600000, NULL, NULL), 0);
  usleep(20000);
  CHECK_INT(rescue(2, 0, &s), 0);
  CHECK_INT(s.op.rescued, 2);
  CHECK_INT(s.op.failed, 1);
  CHECK_INT(s.op.requeued, 0);
  CHECK_INT(s.op.n_transitions, 2);
  CHECK_INT(get(e, &g), 0);
  CHECK_INT(g.op.job.status, REEL_JOB_FAILED);
  CHECK_STR(g.op.job.failure_reason, "worker_lost");
  CHECK(g.op.job.error && strstr(g.op.job.error, "stopped or lost its lease") && strstr(g.op.job.error, "all 2 attempts"));
  CHECK_INT(get(c, &g), 0);
  CHECK_INT(g.op.job.status, REEL_JOB_CANCELED);
  CHECK_STR(g.op.job.failure_reason, "canceled");
  CHECK_INT(get(live, &g), 0);
  CHECK_INT(g.op.job.status, REEL_JOB_STARTED); /* its lease is live */
  CHECK_INT(rescue(2, 0, &s), 0);
  CHECK_INT(s.op.rescued, 0);
  /* all: every running job is orphaned (an exclusive store at start-up) */
  CHECK_INT(rescue(2, 1, &s), 0);
  CHECK_INT(s.op.rescued, 1);
  CHECK_INT(s.op.requeued, 1);
  CHECK_INT(get(live, &g), 0);
  CHECK_INT(g.op.job.status, REEL_JOB_QUEUED);
  CHECK_INT(g.op.job.attempts, 1);
  reel_job_op_cleanup(&s.op), reel_job_op_cleanup(&g.op);
  clear_all();
}

static void test_retry_cancel(void) {
  SECTION("jobs: RETRY with backoff, an uncounted retry, a cancel that ends a run no process has");
  sync_op s, g;
  memset(&s, 0, sizeof s), memset(&g, 0, sizeof g);
  char r[32], u[32], c[32], o[32];
  reel_fence fence;
  CHECK_INT(submit("retried", 0, r), 0);
  CHECK_INT(claim("n1", 60000, NULL, &fence), 0);
  op_new(&s, REEL_JOB_OP_RETRY, r);
  s.op.fence = fence;
  s.op.delay_ms = 600000;
  s.op.text = strdup("transient");
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(s.op.job.status, REEL_JOB_QUEUED);
  CHECK_STR(s.op.job.error, "transient");
  CHECK_INT(s.op.job.attempts, 1);
  CHECK(s.op.job.run_after_ms > reel_now_ms() + 500000);
  CHECK_INT(claim("n1", 60000, NULL, NULL), REEL_ENOTFOUND); /* not before run_after */
  CHECK_INT(fenced(&s, REEL_JOB_OP_PROGRESS, r, &fence), REEL_ESTALE);

  CHECK_INT(submit("interrupted", 0, u), 0);
  CHECK_INT(claim("n1", 60000, NULL, &fence), 0);
  op_new(&s, REEL_JOB_OP_RETRY, u);
  s.op.fence = fence;
  s.op.uncount_attempt = 1;
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(s.op.job.attempts, 0);
  char id[32];
  CHECK_INT(claim("n1", 60000, id, &fence), 0);
  CHECK_STR(id, u);
  CHECK_INT(fence.attempt, 1);

  /* a run told to cancel cannot retry */
  CHECK_INT(submit("to cancel", 0, c), 0);
  CHECK_INT(claim("n1", 60000, NULL, &fence), 0);
  op_new(&s, REEL_JOB_OP_CANCEL, c);
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(fenced(&s, REEL_JOB_OP_RETRY, c, &fence), REEL_ECONFLICT);
  CHECK_INT(fenced(&s, REEL_JOB_OP_CANCELED, c, &fence), 0);
  CHECK_INT(s.op.job.status, REEL_JOB_CANCELED);

  /* no process can run it (the listener says so): the CANCEL ends it itself */
  CHECK_INT(submit("orphan", 0, o), 0);
  CHECK_INT(claim("n1", 60000, NULL, NULL), 0);
  L.cancel_answer = REEL_ENOTFOUND;
  op_new(&s, REEL_JOB_OP_CANCEL, o);
  CHECK_INT(jrun(&s), 0);
  L.cancel_answer = 0;
  CHECK_INT(s.calls, 1);
  CHECK_INT(s.op.kind, REEL_JOB_OP_CANCEL);
  CHECK_INT(get(o, &g), 0);
  CHECK_INT(g.op.job.status, REEL_JOB_CANCELED);
  reel_job_op_cleanup(&s.op), reel_job_op_cleanup(&g.op);
  clear_all();
}

/* The event types of job id (or of every job when id is NULL) after after_id, joined by spaces. */
static void event_types(const char *id, int64_t after_id, char *out, size_t n, int64_t *last_id) {
  sync_op s;
  memset(&s, 0, sizeof s);
  op_new(&s, REEL_JOB_OP_EVENTS, id);
  s.op.after_id = after_id;
  s.op.limit = 100;
  CHECK_INT(jrun(&s), 0);
  out[0] = '\0';
  for (int i = 0; i < s.op.n_read; i++) {
    size_t len = strlen(out);
    snprintf(out + len, n - len, "%s%s", len ? " " : "", s.op.events[i].type);
    if (i > 0) CHECK(s.op.events[i].id > s.op.events[i - 1].id);
    if (id) CHECK_STR(s.op.events[i].job_id, id);
  }
  if (last_id) *last_id = s.op.last_event_id;
  reel_job_op_cleanup(&s.op);
}

static void test_job_events(void) {
  SECTION("jobs: every change is an event, in order, committed with it; EVENTS reads them");
  sync_op s;
  memset(&s, 0, sizeof s);
  char a[32], b[32], types[512];
  reel_fence fence;
  int64_t start = 0;
  event_types(NULL, -1, types, sizeof types, &start); /* after_id -1: only the newest id */
  CHECK_INT((long long)strlen(types), 0);
  int events_before = L.events;
  CHECK_INT(submit("events a", 0, a), 0);
  CHECK(L.events > events_before); /* published after the commit */
  CHECK_INT(claim("n1", 60000, NULL, &fence), 0);
  CHECK_INT(fenced(&s, REEL_JOB_OP_PROGRESS, a, &fence), 0);
  op_new(&s, REEL_JOB_OP_LOG, a);
  s.op.fence = fence;
  s.op.text = strdup("first line\nsecond line");
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(fenced(&s, REEL_JOB_OP_RETRY, a, &fence), 0);
  CHECK_INT(claim("n2", 60000, NULL, &fence), 0);
  CHECK_INT(fenced(&s, REEL_JOB_OP_FINISH, a, &fence), 0);
  reel_fence stale = fence;
  stale.attempt = 1;
  CHECK_INT(fenced(&s, REEL_JOB_OP_LOG, a, &stale), REEL_ESTALE); /* a write that lost: no event */
  event_types(a, start, types, sizeof types, NULL);
  CHECK_STR(types, "job.created job.started job.progress job.log job.log job.retrying job.started job.finished");
  /* the data of each kind */
  op_new(&s, REEL_JOB_OP_EVENTS, a);
  s.op.after_id = start;
  s.op.limit = 100;
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(s.op.n_read, 8);
  if (s.op.n_read == 8) {
    json_t *created = json_loads(s.op.events[0].data, 0, NULL), *progress = json_loads(s.op.events[2].data, 0, NULL);
    json_t *log = json_loads(s.op.events[3].data, 0, NULL), *done = json_loads(s.op.events[7].data, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(created, "status")), "queued");
    CHECK_STR(json_string_value(json_object_get(created, "id")), a);
    CHECK_INT(json_integer_value(json_object_get(progress, "progress")), 50);
    CHECK_STR(json_string_value(json_object_get(progress, "stage")), "render");
    CHECK_STR(json_string_value(json_object_get(log, "line")), "first line");
    CHECK_STR(json_string_value(json_object_get(done, "status")), "finished");
    CHECK_INT(json_integer_value(json_object_get(done, "attempts")), 2);
    json_decref(created), json_decref(progress), json_decref(log), json_decref(done);
  }
  /* a queued job cancelled; a failed one */
  CHECK_INT(submit("events b", 0, b), 0);
  op_new(&s, REEL_JOB_OP_CANCEL, b);
  CHECK_INT(jrun(&s), 0);
  event_types(b, start, types, sizeof types, NULL);
  CHECK_STR(types, "job.created job.canceled");
  event_types(NULL, start, types, sizeof types, NULL); /* every job's, in commit order */
  CHECK_STR(types, "job.created job.started job.progress job.log job.log job.retrying job.started job.finished "
                   "job.created job.canceled");
  /* pruned with their jobs */
  op_new(&s, REEL_JOB_OP_PRUNE, NULL);
  s.op.before_ms = reel_now_ms() + 1000;
  s.op.limit = 100;
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(event_rows(a) + event_rows(b), 0);
  reel_job_op_cleanup(&s.op);
  clear_all();
}

static void test_prune(void) {
  SECTION("jobs: PRUNE deletes old terminal jobs, bounded");
  sync_op s;
  memset(&s, 0, sizeof s);
  char a[32], b[32], q[32];
  reel_fence fence;
  CHECK_INT(submit("done 1", 0, a), 0);
  CHECK_INT(claim("n1", 60000, NULL, &fence), 0);
  CHECK_INT(fenced(&s, REEL_JOB_OP_LOG, a, &fence), 0);
  CHECK_INT(fenced(&s, REEL_JOB_OP_FINISH, a, &fence), 0);
  CHECK_INT(submit("done 2", 0, b), 0);
  op_new(&s, REEL_JOB_OP_CANCEL, b);
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(submit("still queued", 0, q), 0);
  int64_t cutoff = reel_now_ms() + 1000;
  for (int expect = 1; expect >= 0; expect--) {
    op_new(&s, REEL_JOB_OP_PRUNE, NULL);
    s.op.before_ms = cutoff;
    s.op.limit = 1;
    CHECK_INT(jrun(&s), 0);
    CHECK_INT(s.op.deleted, 1);
  }
  op_new(&s, REEL_JOB_OP_PRUNE, NULL);
  s.op.before_ms = cutoff;
  s.op.limit = 100;
  CHECK_INT(jrun(&s), 0);
  CHECK_INT(s.op.deleted, 0);
  CHECK_INT(job_rows(a) + job_rows(b), 0);
  CHECK_INT(log_rows(a), 0);
  CHECK_INT(job_rows(q), 1);
  reel_job_op_cleanup(&s.op);
  clear_all();
}

/* ============================================== concurrent claimers == */

#define CLAIM_JOBS 200

typedef struct {
  char node[16];
  reel_store *store;
  char ids[CLAIM_JOBS][32];
  int n, stale, errors, rounds;
  pthread_t thread;
} claimer;

static pthread_mutex_t cl_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cl_cond = PTHREAD_COND_INITIALIZER;
static int cl_ready, cl_first;

typedef struct {
  int done, result;
} claim_wait;

static void claimer_cb(reel_job_op *op, int result) {
  claim_wait *w = op->data;
  w->done = 1;
  w->result = result;
}

/* Waits (at most 10 s) until `*counter` reaches 2, i.e. both claimers got there. */
static void both_at(int *counter) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10;
  pthread_mutex_lock(&cl_lock);
  (*counter)++;
  pthread_cond_broadcast(&cl_cond);
  while (*counter < 2 && pthread_cond_timedwait(&cl_cond, &cl_lock, &until) == 0) {}
  pthread_mutex_unlock(&cl_lock);
}

/* One node: its own store connection, jobs and loop, claiming two at a time
 * until the queue is empty. */
static void *claimer_main(void *arg) {
  claimer *c = arg;
  uv_loop_t lp;
  uv_loop_init(&lp);
  reel_jobs jobs;
  if (reel_jobs_init(&jobs, &lp, c->store, 100000, 10) != 0) {
    c->errors++;
    return NULL;
  }
  both_at(&cl_ready);
  for (;;) {
    reel_job_op op;
    claim_wait w = {0, 0};
    reel_job_op_init(&op, REEL_JOB_OP_CLAIM);
    snprintf(op.fence.node, sizeof op.fence.node, "%s", c->node);
    op.lease_ms = 600000;
    op.limit = 2;
    op.cb = claimer_cb;
    op.data = &w;
    reel_jobs_run(&jobs, &op);
    while (!w.done) uv_run(&lp, UV_RUN_ONCE);
    if (w.result == 0)
      for (int i = 0; i < op.n_list && c->n < CLAIM_JOBS; i++) memcpy(c->ids[c->n++], op.list[i].id, 32);
    reel_job_op_cleanup(&op);
    if (c->rounds++ == 0) both_at(&cl_first); /* neither runs ahead before the other claimed once */
    if (w.result == REEL_ESTALE) {
      c->stale++;
      continue;
    }
    if (w.result == REEL_ENOTFOUND) break;
    if (w.result != 0) {
      c->errors++;
      break;
    }
  }
  reel_jobs_close(&jobs);
  uv_run(&lp, UV_RUN_DEFAULT);
  uv_loop_close(&lp);
  return NULL;
}

static void test_concurrent_claims(reel_store *st) {
  SECTION("two connections claiming from one queue at once: every job claimed exactly once");
  tx_begin(st);
  for (int i = 0; i < CLAIM_JOBS; i++) {
    char id[32];
    snprintf(id, sizeof id, "job_cc_%03d", i);
    put_job(st, id, "p", i % 3, 0);
  }
  tx_commit(st);
  static claimer cl[2];
  memset(cl, 0, sizeof cl);
  cl_ready = cl_first = 0;
  for (int i = 0; i < 2; i++) {
    snprintf(cl[i].node, sizeof cl[i].node, "claimer-%d", i);
    cl[i].store = open_store(cl[i].node);
    if (!cl[i].store) return;
  }
  for (int i = 0; i < 2; i++) CHECK_INT(pthread_create(&cl[i].thread, NULL, claimer_main, &cl[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(cl[i].thread, NULL);
  printf("   claimed %d and %d jobs in %d and %d claims (%d and %d stale)\n", cl[0].n, cl[1].n, cl[0].rounds,
         cl[1].rounds, cl[0].stale, cl[1].stale);
  CHECK_INT(cl[0].errors + cl[1].errors, 0);
  CHECK_INT(cl[0].n + cl[1].n, CLAIM_JOBS);
  CHECK(cl[0].n > 0 && cl[1].n > 0);
  static int times[CLAIM_JOBS];
  memset(times, 0, sizeof times);
  int bad = 0;
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < cl[k].n; i++) {
      int idx = -1;
      if (sscanf(cl[k].ids[i], "job_cc_%d", &idx) == 1 && idx >= 0 && idx < CLAIM_JOBS) times[idx]++;
      else bad++;
    }
  int once = 0;
  for (int i = 0; i < CLAIM_JOBS; i++) once += times[i] == 1;
  CHECK_INT(bad, 0);
  CHECK_INT(once, CLAIM_JOBS);
  CHECK_INT(admin_int("SELECT COUNT(*) FROM jobs WHERE status = 1 AND attempts = 1"), CLAIM_JOBS);
  CHECK_INT(admin_int("SELECT COUNT(*) FROM jobs WHERE node = 'claimer-0'"), cl[0].n);
  CHECK_INT(admin_int("SELECT COUNT(*) FROM jobs WHERE node = 'claimer-1'"), cl[1].n);
  clear_all();
}

int main(void) {
  alarm(300); /* a hang fails the test instead of stalling the run */
  setvbuf(stdout, NULL, _IOLBF, 0);
  main_thread = pthread_self();
  reel_log_set_level(REEL_LOG_ERROR);
  pg_url = getenv("REEL_TEST_PG_URL");
  if (pg_url && !*pg_url) pg_url = NULL;
  if (!pg_url) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/reel-conformance-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
      perror("mkdtemp");
      return 1;
    }
    snprintf(db_path, sizeof db_path, "%s/reel.db", tmp_dir);
  }
  printf("job store conformance on %s\n", pg_url ? "postgres (REEL_TEST_PG_URL)" : "sqlite");
  loop = uv_default_loop();
  if (admin_open() != 0) {
    CHECK(!"the database for the suite can be opened");
    return check_report();
  }
  reel_store *s = open_store("conformance-direct");
  if (!s) return check_report();
  CHECK_INT(install_poison(), 0);
  open_jobs();

  test_basics(s);
  test_insert_get_write(s);
  test_insert_jobs(s);
  test_list_count(s);
  test_next_runnable(s);
  test_renew_lease(s);
  test_expired_leases(s);
  test_delete_finished(s);
  test_logs(s);
  test_events(s);
  test_deliveries(s);
  test_idempotency_records(s);
  if (pg_url) test_pg_notify(s);
  if (pg_url) test_pg_skip_locked(s);
  test_failed_commit_direct(s);
  test_savepoint_isolation();
  test_failed_commit_batch();
  test_rolled_back_op(s);
  if (pg_url) test_pg_terminated();
  test_lifecycle();
  test_queue_limit();
  test_fencing();
  test_claim_order(s);
  test_renew_op();
  test_rescue();
  test_retry_cancel();
  test_prune();
  test_job_events();
  test_concurrent_claims(s);

  close_jobs(&J);
  reel_store_close(s);
  uv_loop_close(loop);
  if (adm_pg) pq->finish(adm_pg);
  if (adm_sqlite) sqlite3_close(adm_sqlite);
  if (tmp_dir[0]) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
    CHECK_INT(system(cmd), 0);
  }
  return check_report();
}
