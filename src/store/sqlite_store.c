/* The embedded job store: one SQLite file in WAL mode with synchronous=FULL,
 * so a commit that returned is on disk. Used by exactly one reeld process
 * (main.c holds a lock on data_dir); schema changes are numbered migrations.
 * The file it opened is watched (verify): a database deleted or replaced under
 * reeld is noticed instead of being written into. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "store/store.h"

/* Numbered schema migrations; schema_version holds how many have run. */
static const char *const migrations[] = {
    /* 1: jobs and their logs */
    "CREATE TABLE jobs ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  status INTEGER NOT NULL,"
    "  progress INTEGER NOT NULL DEFAULT 0,"
    "  stage TEXT NOT NULL DEFAULT '',"
    "  prompt TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  started_ms INTEGER NOT NULL DEFAULT 0,"
    "  finished_ms INTEGER NOT NULL DEFAULT 0,"
    "  updated_ms INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  run_after_ms INTEGER NOT NULL DEFAULT 0,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
    "  artifact_key TEXT, artifact_uri TEXT, gcs_uri TEXT, error TEXT, failure_reason TEXT,"
    "  worker_id TEXT NOT NULL DEFAULT '',"
    "  lease_expires_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_by_status ON jobs(status, seq);"
    "CREATE TABLE job_logs ("
    "  job_id TEXT NOT NULL,"
    "  line_no INTEGER NOT NULL,"
    "  line TEXT NOT NULL,"
    "  PRIMARY KEY (job_id, line_no)) WITHOUT ROWID;",
    /* 2: itemized cost per job (JSON text) */
    "ALTER TABLE jobs ADD COLUMN cost TEXT;",
    /* 3: one row the readiness probe rewrites, proving the store can commit */
    "CREATE TABLE store_probe (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL);",
    /* 4: fenced writes (a row version), the node that ran a job, priorities,
     * and indexes for the claim order, lease expiry and retention */
    "ALTER TABLE jobs RENAME COLUMN worker_id TO node;"
    "ALTER TABLE jobs ADD COLUMN version INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX jobs_runnable ON jobs(priority DESC, run_after_ms, seq) WHERE status = 0;"
    "CREATE INDEX jobs_leases ON jobs(lease_expires_ms) WHERE status IN (1, 2);"
    "CREATE INDEX jobs_finished ON jobs(finished_ms) WHERE status >= 3;",
    /* 5: job events (AUTOINCREMENT: an id is never given twice, even after
     * retention deleted the newest) */
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  data TEXT NOT NULL);"
    "CREATE INDEX events_by_job ON events(job_id, id);",
    /* 6: Idempotency-Key records */
    "CREATE TABLE idempotency_keys ("
    "  client TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  body_sha256 TEXT NOT NULL,"
    "  job_id TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (client, key)) WITHOUT ROWID;"
    "CREATE INDEX idempotency_expiry ON idempotency_keys(expires_ms);",
    /* 7: the webhook outbox and endpoints that answered 410 */
    "CREATE TABLE webhook_deliveries ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  endpoint TEXT NOT NULL,"
    "  event_type TEXT NOT NULL,"
    "  job_id TEXT NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  status INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_ms INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  last_status INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT NOT NULL DEFAULT '',"
    "  lease_node TEXT NOT NULL DEFAULT '',"
    "  lease_expires_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX webhook_due ON webhook_deliveries(next_attempt_ms) WHERE status = 0;"
    "CREATE TABLE webhook_endpoints (url TEXT PRIMARY KEY, disabled_ms INTEGER NOT NULL, reason TEXT NOT NULL);",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof *migrations))

#define JOB_COLUMNS                                                                           \
  "seq, id, status, progress, stage, prompt, created_ms, started_ms, finished_ms, updated_ms, " \
  "attempts, run_after_ms, cancel_requested, artifact_key, artifact_uri, gcs_uri, error, "      \
  "failure_reason, node, lease_expires_ms, cost, version, priority"

#define DELIVERY_COLUMNS                                                                              \
  "seq, id, endpoint, event_type, job_id, status, attempts, next_attempt_ms, created_ms, updated_ms, " \
  "last_status, last_error, lease_node, lease_expires_ms"

enum {
  STMT_BEGIN, STMT_COMMIT, STMT_ROLLBACK, STMT_SAVEPOINT, STMT_RELEASE, STMT_ROLLBACK_TO,
  STMT_INSERT, STMT_GET, STMT_WRITE, STMT_LIST_ANY, STMT_LIST_STATUS, STMT_COUNT, STMT_COUNT_QUEUED,
  STMT_NEXT_RUNNABLE, STMT_RENEW, STMT_RENEWED, STMT_EXPIRED, STMT_FINISHED_BEFORE, STMT_DELETE_LOGS,
  STMT_DELETE_JOB, STMT_LOG_MAX, STMT_LOG_INSERT, STMT_LOG_TRIM, STMT_LOG_TAIL, STMT_PING, STMT_PROBE,
  STMT_EVENT_INSERT, STMT_EVENTS_ALL, STMT_EVENTS_JOB, STMT_EVENT_LAST, STMT_DELETE_EVENTS, STMT_DELETE_DELIVERIES, STMT_IDEM_GET,
  STMT_IDEM_PUT, STMT_IDEM_EXPIRED, STMT_DLV_INSERT, STMT_DLV_DUE, STMT_DLV_TAKE, STMT_DLV_PAYLOAD, STMT_DLV_FINISH,
  STMT_DLV_LIST, STMT_EP_DISABLE, STMT_EP_DISABLED, STMT_DLV_RELEASE, STMT_COUNT_
};

static const char *const statement_sql[STMT_COUNT_] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_SAVEPOINT] = "SAVEPOINT call",
    [STMT_RELEASE] = "RELEASE call",
    [STMT_ROLLBACK_TO] = "ROLLBACK TO call",
    [STMT_INSERT] = "INSERT INTO jobs (id, status, progress, stage, prompt, created_ms, updated_ms, "
                    "run_after_ms, priority, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1)",
    [STMT_GET] = "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1",
    [STMT_WRITE] = "UPDATE jobs SET status = ?2, progress = ?3, stage = ?4, started_ms = ?5, "
                   "finished_ms = ?6, updated_ms = ?7, attempts = ?8, run_after_ms = ?9, "
                   "cancel_requested = ?10, artifact_key = ?11, artifact_uri = ?12, gcs_uri = ?13, "
                   "error = ?14, failure_reason = ?15, node = ?16, lease_expires_ms = ?17, cost = ?18, "
                   "priority = ?20, version = version + 1 WHERE id = ?1 AND version = ?19",
    [STMT_LIST_ANY] = "SELECT " JOB_COLUMNS " FROM jobs WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
    [STMT_LIST_STATUS] = "SELECT " JOB_COLUMNS " FROM jobs WHERE status = ?3 AND seq < ?1 "
                         "ORDER BY seq DESC LIMIT ?2",
    [STMT_COUNT] = "SELECT status, COUNT(*) FROM jobs GROUP BY status",
    [STMT_COUNT_QUEUED] = "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE status = 0 LIMIT ?1)",
    [STMT_NEXT_RUNNABLE] = "SELECT " JOB_COLUMNS " FROM jobs WHERE status = 0 AND run_after_ms <= ?1 "
                           "ORDER BY priority DESC, run_after_ms, seq LIMIT 1",
    [STMT_RENEW] = "UPDATE jobs SET lease_expires_ms = ?4 WHERE id = ?1 AND node = ?2 AND attempts = ?3 "
                   "AND status IN (1, 2)",
    [STMT_RENEWED] = "SELECT cancel_requested FROM jobs WHERE id = ?1",
    [STMT_EXPIRED] = "SELECT " JOB_COLUMNS " FROM jobs WHERE status IN (1, 2) AND lease_expires_ms < ?1 "
                     "ORDER BY lease_expires_ms, seq LIMIT ?2",
    [STMT_FINISHED_BEFORE] = "SELECT id FROM jobs WHERE status >= 3 AND finished_ms < ?1 ORDER BY finished_ms "
                             "LIMIT ?2",
    [STMT_DELETE_LOGS] = "DELETE FROM job_logs WHERE job_id = ?1",
    [STMT_DELETE_JOB] = "DELETE FROM jobs WHERE id = ?1",
    [STMT_LOG_MAX] = "SELECT COALESCE(MAX(line_no), 0) FROM job_logs WHERE job_id = ?1",
    [STMT_LOG_INSERT] = "INSERT INTO job_logs (job_id, line_no, line) VALUES (?1, ?2, ?3)",
    [STMT_LOG_TRIM] = "DELETE FROM job_logs WHERE job_id = ?1 AND line_no <= ?2",
    [STMT_LOG_TAIL] = "SELECT line FROM (SELECT line_no, line FROM job_logs WHERE job_id = ?1 "
                      "ORDER BY line_no DESC LIMIT ?2) ORDER BY line_no",
    [STMT_PING] = "SELECT 1",
    [STMT_PROBE] = "INSERT OR REPLACE INTO store_probe (id, at_ms) VALUES (1, ?1)",
    [STMT_EVENT_INSERT] = "INSERT INTO events (job_id, type, created_ms, data) VALUES (?1, ?2, ?3, ?4)",
    [STMT_EVENTS_ALL] = "SELECT id, job_id, type, created_ms, data FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
    [STMT_EVENTS_JOB] = "SELECT id, job_id, type, created_ms, data FROM events WHERE job_id = ?3 AND id > ?1 "
                        "ORDER BY id LIMIT ?2",
    [STMT_EVENT_LAST] = "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
    [STMT_DELETE_EVENTS] = "DELETE FROM events WHERE job_id = ?1",
    [STMT_DELETE_DELIVERIES] = "DELETE FROM webhook_deliveries WHERE job_id = ?1",
    [STMT_IDEM_GET] = "SELECT body_sha256, job_id, created_ms, expires_ms FROM idempotency_keys "
                      "WHERE client = ?1 AND key = ?2 AND expires_ms > ?3",
    [STMT_IDEM_PUT] = "INSERT INTO idempotency_keys (client, key, body_sha256, job_id, created_ms, expires_ms) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (client, key) DO UPDATE SET "
                      "body_sha256 = excluded.body_sha256, job_id = excluded.job_id, "
                      "created_ms = excluded.created_ms, expires_ms = excluded.expires_ms "
                      "WHERE idempotency_keys.expires_ms <= ?7",
    [STMT_IDEM_EXPIRED] = "DELETE FROM idempotency_keys WHERE (client, key) IN (SELECT client, key FROM idempotency_keys "
                          "WHERE expires_ms <= ?1 LIMIT ?2)",
    [STMT_DLV_INSERT] = "INSERT INTO webhook_deliveries (id, endpoint, event_type, job_id, payload, "
                        "next_attempt_ms, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    [STMT_DLV_DUE] = "SELECT " DELIVERY_COLUMNS " FROM webhook_deliveries WHERE status = 0 AND next_attempt_ms <= ?1 "
                     "AND lease_expires_ms <= ?1 ORDER BY next_attempt_ms, seq LIMIT ?2",
    [STMT_DLV_TAKE] = "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_node = ?2, lease_expires_ms = ?3, "
                      "updated_ms = ?4 WHERE id = ?1",
    [STMT_DLV_PAYLOAD] = "SELECT payload FROM webhook_deliveries WHERE id = ?1",
    [STMT_DLV_FINISH] = "UPDATE webhook_deliveries SET status = ?4, next_attempt_ms = ?5, last_status = ?6, "
                        "last_error = ?7, lease_node = '', lease_expires_ms = 0, updated_ms = ?8 "
                        "WHERE id = ?1 AND lease_node = ?2 AND attempts = ?3 AND status = 0",
    [STMT_DLV_LIST] = "SELECT " DELIVERY_COLUMNS " FROM webhook_deliveries WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
    [STMT_EP_DISABLE] = "INSERT INTO webhook_endpoints (url, disabled_ms, reason) VALUES (?1, ?2, ?3) "
                        "ON CONFLICT (url) DO NOTHING",
    [STMT_DLV_RELEASE] = "UPDATE webhook_deliveries SET lease_node = '', lease_expires_ms = 0 "
                         "WHERE status = 0 AND lease_expires_ms > 0",
    [STMT_EP_DISABLED] = "SELECT disabled_ms FROM webhook_endpoints WHERE url = ?1",
};

typedef struct {
  reel_store base;
  sqlite3 *db;
  sqlite3_stmt *stmt[STMT_COUNT_];
  char *path;       /* the database file as opened */
  int watch_fd;     /* our own descriptor of that file (closed after sqlite3_close), -1 if none */
  dev_t dev;        /* identity of the file opened */
  ino_t ino;
} sqlite_store;

static sqlite3_stmt *prepared(sqlite_store *s, int which) {
  sqlite3_stmt *st = s->stmt[which];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

static int step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : REEL_ESTORE;
}

static int exec_stmt(reel_store *base, int which) {
  return step_done(prepared((sqlite_store *)base, which));
}

static int s_begin(reel_store *s) { return exec_stmt(s, STMT_BEGIN); }
static int s_commit(reel_store *s) { return exec_stmt(s, STMT_COMMIT); }
static int s_rollback(reel_store *s) { return exec_stmt(s, STMT_ROLLBACK); }
static int s_savepoint(reel_store *s) { return exec_stmt(s, STMT_SAVEPOINT); }
static int s_release(reel_store *s) { return exec_stmt(s, STMT_RELEASE); }
static int s_rollback_to(reel_store *s) { return exec_stmt(s, STMT_ROLLBACK_TO); }

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *v) {
  if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
  else sqlite3_bind_null(st, i);
}

static char *column_dup(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? strdup((const char *)t) : NULL;
}

static void copy_column(sqlite3_stmt *st, int i, char *dst, size_t n) {
  const unsigned char *t = sqlite3_column_text(st, i);
  snprintf(dst, n, "%s", t ? (const char *)t : "");
}

static void read_job(sqlite3_stmt *st, reel_job *j) {
  memset(j, 0, sizeof *j);
  j->seq = sqlite3_column_int64(st, 0);
  copy_column(st, 1, j->id, sizeof j->id);
  j->status = (reel_job_status)sqlite3_column_int(st, 2);
  j->progress = sqlite3_column_int(st, 3);
  copy_column(st, 4, j->stage, sizeof j->stage);
  j->prompt = column_dup(st, 5);
  j->created_ms = sqlite3_column_int64(st, 6);
  j->started_ms = sqlite3_column_int64(st, 7);
  j->finished_ms = sqlite3_column_int64(st, 8);
  j->updated_ms = sqlite3_column_int64(st, 9);
  j->attempts = sqlite3_column_int(st, 10);
  j->run_after_ms = sqlite3_column_int64(st, 11);
  j->cancel_requested = sqlite3_column_int(st, 12);
  j->artifact_key = column_dup(st, 13);
  j->artifact_uri = column_dup(st, 14);
  j->gcs_uri = column_dup(st, 15);
  j->error = column_dup(st, 16);
  j->failure_reason = column_dup(st, 17);
  copy_column(st, 18, j->node, sizeof j->node);
  j->lease_expires_ms = sqlite3_column_int64(st, 19);
  j->cost = column_dup(st, 20);
  j->version = sqlite3_column_int64(st, 21);
  j->priority = sqlite3_column_int(st, 22);
}

static int s_insert_job(reel_store *base, reel_job *job) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3_stmt *st = prepared(s, STMT_INSERT);
  sqlite3_bind_text(st, 1, job->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, job->status);
  sqlite3_bind_int(st, 3, job->progress);
  sqlite3_bind_text(st, 4, job->stage, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, job->prompt ? job->prompt : "", -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, job->created_ms);
  sqlite3_bind_int64(st, 7, job->updated_ms);
  sqlite3_bind_int64(st, 8, job->run_after_ms);
  sqlite3_bind_int(st, 9, job->priority);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_CONSTRAINT) return REEL_ECONFLICT;
  if (rc != SQLITE_DONE) return REEL_ESTORE;
  job->seq = sqlite3_last_insert_rowid(s->db);
  job->version = 1;
  return 0;
}

static int s_get_job(reel_store *base, const char *id, reel_job *out) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_GET);
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) read_job(st, out);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? REEL_ENOTFOUND : REEL_ESTORE;
}

static int s_write_job(reel_store *base, reel_job *j) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3_stmt *st = prepared(s, STMT_WRITE);
  sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, j->status);
  sqlite3_bind_int(st, 3, j->progress);
  sqlite3_bind_text(st, 4, j->stage, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, j->started_ms);
  sqlite3_bind_int64(st, 6, j->finished_ms);
  sqlite3_bind_int64(st, 7, j->updated_ms);
  sqlite3_bind_int(st, 8, j->attempts);
  sqlite3_bind_int64(st, 9, j->run_after_ms);
  sqlite3_bind_int(st, 10, j->cancel_requested);
  bind_text_or_null(st, 11, j->artifact_key);
  bind_text_or_null(st, 12, j->artifact_uri);
  bind_text_or_null(st, 13, j->gcs_uri);
  bind_text_or_null(st, 14, j->error);
  bind_text_or_null(st, 15, j->failure_reason);
  sqlite3_bind_text(st, 16, j->node, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 17, j->lease_expires_ms);
  bind_text_or_null(st, 18, j->cost);
  sqlite3_bind_int64(st, 19, j->version);
  sqlite3_bind_int(st, 20, j->priority);
  if (step_done(st) != 0) return REEL_ESTORE;
  if (sqlite3_changes(s->db) == 1) {
    j->version++;
    return 0;
  }
  /* nothing matched: the row is gone, or it moved on since it was read */
  st = prepared(s, STMT_RENEWED);
  sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? REEL_ESTALE : rc == SQLITE_DONE ? REEL_ENOTFOUND : REEL_ESTORE;
}

static int s_list_jobs(reel_store *base, int status, int64_t before_seq, int limit, reel_job *out,
                       int *count) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, status < 0 ? STMT_LIST_ANY : STMT_LIST_STATUS);
  sqlite3_bind_int64(st, 1, before_seq > 0 ? before_seq : INT64_MAX);
  sqlite3_bind_int(st, 2, limit);
  if (status >= 0) sqlite3_bind_int(st, 3, status);
  int n = 0, rc;
  while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) read_job(st, &out[n++]);
  sqlite3_reset(st);
  *count = n;
  return 0;
}

static int s_count_by_status(reel_store *base, int64_t counts[REEL_JOB_STATUS_COUNT]) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_COUNT);
  for (int i = 0; i < REEL_JOB_STATUS_COUNT; i++) counts[i] = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int status = sqlite3_column_int(st, 0);
    if (status >= 0 && status < REEL_JOB_STATUS_COUNT) counts[status] = sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : REEL_ESTORE;
}

static int s_next_runnable(reel_store *base, int64_t now_ms, reel_job *out) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_NEXT_RUNNABLE);
  sqlite3_bind_int64(st, 1, now_ms);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) read_job(st, out);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? REEL_ENOTFOUND : REEL_ESTORE;
}

static int s_count_queued(reel_store *base, int64_t limit, int64_t *count) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_COUNT_QUEUED);
  sqlite3_bind_int64(st, 1, limit);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *count = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : REEL_ESTORE;
}

static int s_renew_lease(reel_store *base, const char *job_id, const reel_fence *fence, int64_t lease_expires_ms,
                         int *held, int *cancel_requested) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3_stmt *st = prepared(s, STMT_RENEW);
  sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, fence->node, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, fence->attempt);
  sqlite3_bind_int64(st, 4, lease_expires_ms);
  if (step_done(st) != 0) return REEL_ESTORE;
  *held = sqlite3_changes(s->db) == 1;
  *cancel_requested = 0;
  if (!*held) return 0;
  st = prepared(s, STMT_RENEWED);
  sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *cancel_requested = sqlite3_column_int(st, 0);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : REEL_ESTORE;
}

static int s_expired_leases(reel_store *base, int64_t now_ms, int limit, reel_job *out, int *count) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_EXPIRED);
  sqlite3_bind_int64(st, 1, now_ms);
  sqlite3_bind_int(st, 2, limit);
  int n = 0, rc = SQLITE_DONE;
  while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) read_job(st, &out[n++]);
  sqlite3_reset(st);
  *count = n;
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : REEL_ESTORE;
}

static int s_delete_finished(reel_store *base, int64_t before_ms, int limit, int *deleted) {
  sqlite_store *s = (sqlite_store *)base;
  *deleted = 0;
  if (limit <= 0) return 0;
  char (*ids)[32] = calloc((size_t)limit, sizeof *ids);
  if (!ids) return REEL_ENOMEM;
  sqlite3_stmt *st = prepared(s, STMT_FINISHED_BEFORE);
  sqlite3_bind_int64(st, 1, before_ms);
  sqlite3_bind_int(st, 2, limit);
  int n = 0, rc;
  while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) copy_column(st, 0, ids[n++], sizeof ids[0]);
  sqlite3_reset(st);
  int result = 0;
  for (int i = 0; i < n && result == 0; i++) {
    st = prepared(s, STMT_DELETE_LOGS);
    sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
    result = step_done(st);
    if (result) break;
    st = prepared(s, STMT_DELETE_EVENTS);
    sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
    result = step_done(st);
    if (result) break;
    st = prepared(s, STMT_DELETE_DELIVERIES);
    sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
    result = step_done(st);
    if (result) break;
    st = prepared(s, STMT_DELETE_JOB);
    sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
    result = step_done(st);
    if (result == 0) (*deleted)++;
  }
  free(ids);
  return result;
}

static int64_t s_clock_ms(reel_store *base) {
  (void)base;
  return reel_now_ms();
}

static int s_append_log(reel_store *base, const char *job_id, const char *line, size_t max_lines) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3_stmt *st = prepared(s, STMT_LOG_MAX);
  sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_ROW) {
    sqlite3_reset(st);
    return REEL_ESTORE;
  }
  int64_t last = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  st = prepared(s, STMT_LOG_INSERT);
  sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, last + 1);
  sqlite3_bind_text(st, 3, line, -1, SQLITE_STATIC);
  if (step_done(st) != 0) return REEL_ESTORE;
  if ((int64_t)max_lines > 0 && last + 1 > (int64_t)max_lines) {
    st = prepared(s, STMT_LOG_TRIM);
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, last + 1 - (int64_t)max_lines);
    if (step_done(st) != 0) return REEL_ESTORE;
  }
  return 0;
}

static int s_append_event(reel_store *base, const char *job_id, const char *type, int64_t created_ms,
                          const char *data) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_EVENT_INSERT);
  sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, created_ms);
  sqlite3_bind_text(st, 4, data, -1, SQLITE_STATIC);
  return step_done(st);
}

static int s_read_events(reel_store *base, int64_t after_id, const char *job_id, int limit, reel_event *out,
                         int *count) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, job_id ? STMT_EVENTS_JOB : STMT_EVENTS_ALL);
  sqlite3_bind_int64(st, 1, after_id);
  sqlite3_bind_int(st, 2, limit);
  if (job_id) sqlite3_bind_text(st, 3, job_id, -1, SQLITE_STATIC);
  int n = 0, rc = SQLITE_DONE, result = 0;
  while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    reel_event *e = &out[n];
    memset(e, 0, sizeof *e);
    e->id = sqlite3_column_int64(st, 0);
    copy_column(st, 1, e->job_id, sizeof e->job_id);
    copy_column(st, 2, e->type, sizeof e->type);
    e->created_ms = sqlite3_column_int64(st, 3);
    const char *data = (const char *)sqlite3_column_text(st, 4);
    if (!(e->data = strdup(data ? data : "null"))) {
      result = REEL_ENOMEM;
      break;
    }
    n++;
  }
  if (result == 0 && n < limit && rc != SQLITE_DONE) result = REEL_ESTORE;
  sqlite3_reset(st);
  if (result) {
    for (int i = 0; i < n; i++) reel_event_clear(&out[i]);
    n = 0;
  }
  *count = n;
  return result;
}

static int s_last_event_id(reel_store *base, int64_t *id) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_EVENT_LAST);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *id = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : REEL_ESTORE;
}

static int s_get_idempotency(reel_store *base, const char *client, const char *key, int64_t now_ms,
                             reel_idempotency *out) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_IDEM_GET);
  sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, now_ms);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    memset(out, 0, sizeof *out);
    snprintf(out->client, sizeof out->client, "%s", client);
    snprintf(out->key, sizeof out->key, "%s", key);
    copy_column(st, 0, out->body_sha256, sizeof out->body_sha256);
    copy_column(st, 1, out->job_id, sizeof out->job_id);
    out->created_ms = sqlite3_column_int64(st, 2);
    out->expires_ms = sqlite3_column_int64(st, 3);
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? REEL_ENOTFOUND : REEL_ESTORE;
}

static int s_put_idempotency(reel_store *base, const reel_idempotency *rec, int64_t now_ms, int *stored) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3_stmt *st = prepared(s, STMT_IDEM_PUT);
  sqlite3_bind_text(st, 1, rec->client, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, rec->key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, rec->body_sha256, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, rec->job_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, rec->created_ms);
  sqlite3_bind_int64(st, 6, rec->expires_ms);
  sqlite3_bind_int64(st, 7, now_ms);
  if (step_done(st) != 0) return REEL_ESTORE;
  *stored = sqlite3_changes(s->db) > 0;
  return 0;
}

static int s_delete_expired_idempotency(reel_store *base, int64_t now_ms, int limit, int *deleted) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3_stmt *st = prepared(s, STMT_IDEM_EXPIRED);
  sqlite3_bind_int64(st, 1, now_ms);
  sqlite3_bind_int(st, 2, limit);
  if (step_done(st) != 0) return REEL_ESTORE;
  *deleted = sqlite3_changes(s->db);
  return 0;
}

static void row_to_delivery(sqlite3_stmt *st, reel_delivery *d) {
  memset(d, 0, sizeof *d);
  d->seq = sqlite3_column_int64(st, 0);
  copy_column(st, 1, d->id, sizeof d->id);
  copy_column(st, 2, d->endpoint, sizeof d->endpoint);
  copy_column(st, 3, d->event_type, sizeof d->event_type);
  copy_column(st, 4, d->job_id, sizeof d->job_id);
  d->status = sqlite3_column_int(st, 5);
  d->attempts = sqlite3_column_int(st, 6);
  d->next_attempt_ms = sqlite3_column_int64(st, 7);
  d->created_ms = sqlite3_column_int64(st, 8);
  d->updated_ms = sqlite3_column_int64(st, 9);
  d->last_status = sqlite3_column_int(st, 10);
  copy_column(st, 11, d->last_error, sizeof d->last_error);
  copy_column(st, 12, d->lease_node, sizeof d->lease_node);
  d->lease_expires_ms = sqlite3_column_int64(st, 13);
}

static int s_insert_delivery(reel_store *base, reel_delivery *d) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3_stmt *st = prepared(s, STMT_DLV_INSERT);
  sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, d->endpoint, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, d->event_type, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, d->job_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, d->payload ? d->payload : "", -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, d->next_attempt_ms);
  sqlite3_bind_int64(st, 7, d->created_ms);
  if (step_done(st) != 0) return REEL_ESTORE;
  d->seq = sqlite3_last_insert_rowid(s->db);
  return 0;
}

static int s_claim_deliveries(reel_store *base, const char *node, int64_t now_ms, int64_t lease_until_ms, int limit,
                              reel_delivery *out, int *count) {
  sqlite_store *s = (sqlite_store *)base;
  *count = 0;
  sqlite3_stmt *st = prepared(s, STMT_DLV_DUE);
  sqlite3_bind_int64(st, 1, now_ms);
  sqlite3_bind_int(st, 2, limit);
  int n = 0, rc = SQLITE_DONE;
  while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) row_to_delivery(st, &out[n++]);
  sqlite3_reset(st);
  if (n < limit && rc != SQLITE_DONE) return REEL_ESTORE;
  for (int i = 0; i < n; i++) {
    st = prepared(s, STMT_DLV_TAKE);
    sqlite3_bind_text(st, 1, out[i].id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, node, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, lease_until_ms);
    sqlite3_bind_int64(st, 4, now_ms);
    if (step_done(st) != 0) return REEL_ESTORE;
    out[i].attempts++;
    snprintf(out[i].lease_node, sizeof out[i].lease_node, "%s", node);
    out[i].lease_expires_ms = lease_until_ms;
  }
  *count = n;
  return 0;
}

static int s_read_delivery_payload(reel_store *base, const char *id, char **payload) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_DLV_PAYLOAD);
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  *payload = NULL;
  if (rc == SQLITE_ROW) {
    const char *text = (const char *)sqlite3_column_text(st, 0);
    *payload = strdup(text ? text : "");
  }
  sqlite3_reset(st);
  if (rc == SQLITE_DONE) return REEL_ENOTFOUND;
  if (rc != SQLITE_ROW) return REEL_ESTORE;
  return *payload ? 0 : REEL_ENOMEM;
}

static int s_finish_delivery(reel_store *base, const reel_delivery *d, const char *node, int64_t now_ms, int *held) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3_stmt *st = prepared(s, STMT_DLV_FINISH);
  sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, node, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, d->attempts);
  sqlite3_bind_int(st, 4, d->status);
  sqlite3_bind_int64(st, 5, d->next_attempt_ms);
  sqlite3_bind_int(st, 6, d->last_status);
  sqlite3_bind_text(st, 7, d->last_error, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 8, now_ms);
  if (step_done(st) != 0) return REEL_ESTORE;
  *held = sqlite3_changes(s->db) > 0;
  return 0;
}

static int s_list_deliveries(reel_store *base, int64_t before_seq, int limit, reel_delivery *out, int *count) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_DLV_LIST);
  sqlite3_bind_int64(st, 1, before_seq > 0 ? before_seq : INT64_MAX);
  sqlite3_bind_int(st, 2, limit);
  int n = 0, rc = SQLITE_DONE;
  while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) row_to_delivery(st, &out[n++]);
  sqlite3_reset(st);
  *count = n;
  return n < limit && rc != SQLITE_DONE ? REEL_ESTORE : 0;
}

static int s_release_delivery_leases(reel_store *base, int *released) {
  sqlite_store *s = (sqlite_store *)base;
  if (step_done(prepared(s, STMT_DLV_RELEASE)) != 0) return REEL_ESTORE;
  *released = sqlite3_changes(s->db);
  return 0;
}

static int s_disable_endpoint(reel_store *base, const char *url, int64_t now_ms, const char *reason) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_EP_DISABLE);
  sqlite3_bind_text(st, 1, url, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, now_ms);
  sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
  return step_done(st);
}

static int s_endpoint_disabled(reel_store *base, const char *url, int64_t *disabled_ms) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_EP_DISABLED);
  sqlite3_bind_text(st, 1, url, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  *disabled_ms = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : REEL_ESTORE;
}

static int s_tail_logs(reel_store *base, const char *job_id, int n, json_t *lines) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_LOG_TAIL);
  sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, n);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    json_array_append_new(lines, json_string((const char *)sqlite3_column_text(st, 0)));
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : REEL_ESTORE;
}

static int s_ping(reel_store *base) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_PING);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : REEL_ESTORE;
}

static int s_probe(reel_store *base, int64_t now_ms) {
  sqlite3_stmt *st = prepared((sqlite_store *)base, STMT_PROBE);
  sqlite3_bind_int64(st, 1, now_ms);
  return step_done(st);
}

static int s_verify(reel_store *base, char *msg, size_t msglen) {
  sqlite_store *s = (sqlite_store *)base;
  if (s->watch_fd < 0) return 0;
  struct stat open_st, path_st;
  if (fstat(s->watch_fd, &open_st) == 0 && open_st.st_nlink == 0) {
    snprintf(msg, msglen, "the database file %s was deleted while reeld had it open", s->path);
    return REEL_ESTORE;
  }
  if (stat(s->path, &path_st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      snprintf(msg, msglen, "the database file %s is gone (deleted or its directory removed)", s->path);
      return REEL_ESTORE;
    }
    return 0; /* cannot tell (EACCES, EIO...): the next write will say */
  }
  if (path_st.st_dev != s->dev || path_st.st_ino != s->ino) {
    snprintf(msg, msglen, "the database file %s was replaced by another file while reeld had it open", s->path);
    return REEL_ESTORE;
  }
  return 0;
}

static reel_store_fault s_last_fault(reel_store *base, char *msg, size_t msglen) {
  sqlite_store *s = (sqlite_store *)base;
  int code = sqlite3_extended_errcode(s->db);
  int sys = sqlite3_system_errno(s->db);
  int primary = code & 0xff;
  reel_store_fault fault = REEL_STORE_FAULT_OTHER;
  const char *kind = "store error";
  if (primary == SQLITE_FULL || ((primary == SQLITE_IOERR) && (sys == ENOSPC || sys == EDQUOT))) {
    fault = REEL_STORE_FAULT_FULL;
    kind = "disk full";
  } else if (primary == SQLITE_IOERR) {
    fault = REEL_STORE_FAULT_IO;
    kind = "I/O error";
  } else if (code == SQLITE_READONLY_DBMOVED) {
    fault = REEL_STORE_FAULT_GONE;
    kind = "database file moved or deleted";
  }
  const char *name = primary == SQLITE_FULL     ? "SQLITE_FULL"
                     : primary == SQLITE_IOERR  ? "SQLITE_IOERR"
                     : primary == SQLITE_READONLY ? "SQLITE_READONLY"
                                                : "SQLite error";
  char errno_text[96] = "";
  if (sys) snprintf(errno_text, sizeof errno_text, ", errno %d: %s", sys, strerror(sys));
  snprintf(msg, msglen, "%s (%s %d%s): %s", kind, name, code, errno_text, sqlite3_errmsg(s->db));
  return fault;
}

static void s_close(reel_store *base) {
  sqlite_store *s = (sqlite_store *)base;
  for (int i = 0; i < STMT_COUNT_; i++) sqlite3_finalize(s->stmt[i]);
  sqlite3_close(s->db);
  /* only now: closing any descriptor of the file would drop SQLite's POSIX locks */
  if (s->watch_fd >= 0) close(s->watch_fd);
  free(s->path);
  free(s);
}

static const reel_store_ops sqlite_ops = {
    .name = "sqlite",
    .exclusive = 1,
    .clock_ms = s_clock_ms,
    .begin = s_begin,
    .commit = s_commit,
    .rollback = s_rollback,
    .savepoint = s_savepoint,
    .release_savepoint = s_release,
    .rollback_savepoint = s_rollback_to,
    .insert_job = s_insert_job,
    .get_job = s_get_job,
    .write_job = s_write_job,
    .count_queued = s_count_queued,
    .renew_lease = s_renew_lease,
    .expired_leases = s_expired_leases,
    .delete_finished = s_delete_finished,
    .list_jobs = s_list_jobs,
    .count_by_status = s_count_by_status,
    .next_runnable = s_next_runnable,
    .insert_delivery = s_insert_delivery,
    .claim_deliveries = s_claim_deliveries,
    .read_delivery_payload = s_read_delivery_payload,
    .finish_delivery = s_finish_delivery,
    .list_deliveries = s_list_deliveries,
    .release_delivery_leases = s_release_delivery_leases,
    .disable_endpoint = s_disable_endpoint,
    .endpoint_disabled = s_endpoint_disabled,
    .get_idempotency = s_get_idempotency,
    .put_idempotency = s_put_idempotency,
    .delete_expired_idempotency = s_delete_expired_idempotency,
    .append_event = s_append_event,
    .read_events = s_read_events,
    .last_event_id = s_last_event_id,
    .append_log = s_append_log,
    .tail_logs = s_tail_logs,
    .ping = s_ping,
    .probe = s_probe,
    .verify = s_verify,
    .last_fault = s_last_fault,
    .close = s_close,
};

static int migrate(sqlite3 *db, char *err, size_t errlen) {
  char *msg = NULL;
  if (sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);", NULL,
                   NULL, &msg) != SQLITE_OK)
    goto fail;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(version), 0) FROM schema_version", -1, &st, NULL) !=
      SQLITE_OK)
    goto fail;
  int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
  sqlite3_finalize(st);
  if (version < 0) goto fail;
  if (version > N_MIGRATIONS) {
    snprintf(err, errlen, "database schema version %d is newer than this reeld (%d): upgrade reeld",
             version, N_MIGRATIONS);
    return REEL_ESTORE;
  }
  for (int v = version; v < N_MIGRATIONS; v++) {
    char sql[64];
    snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES (%d);", v + 1);
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) goto fail;
    if (sqlite3_exec(db, migrations[v], NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
      sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
      goto fail;
    }
  }
  return 0;
fail:
  snprintf(err, errlen, "database migration failed: %s", msg ? msg : sqlite3_errmsg(db));
  sqlite3_free(msg);
  return REEL_ESTORE;
}

int reel_store_open_sqlite(const char *path, reel_store **out, char *err, size_t errlen) {
  /* No up-front bulk page-cache allocation (20 pages, ~86 KB, which SQLite
   * touches whole): pages are allocated as they are used. Only possible before
   * SQLite initialises; later calls return SQLITE_MISUSE and change nothing. */
  static int configured;
  if (!configured) {
    configured = 1;
    sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
  }
  sqlite_store *s = calloc(1, sizeof *s);
  if (!s) return REEL_ENOMEM;
  s->base.ops = &sqlite_ops;
  s->watch_fd = -1;
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    snprintf(err, errlen, "cannot open database %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
    goto fail;
  }
  sqlite3_busy_timeout(s->db, 5000);
  /* a 32 KB lookaside instead of the default 120 KB, which SQLite touches
   * whole at open: ~80 KB of an idle reeld (bench/footprint.sh) */
  sqlite3_db_config(s->db, SQLITE_DBCONFIG_LOOKASIDE, NULL, 512, 64);
  char *msg = NULL;
  if (sqlite3_exec(s->db,
                   "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                   "PRAGMA wal_autocheckpoint=4000;",
                   NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(err, errlen, "cannot configure database %s: %s", path, msg ? msg : "?");
    sqlite3_free(msg);
    goto fail;
  }
  if (migrate(s->db, err, errlen) != 0) goto fail;
  for (int i = 0; i < STMT_COUNT_; i++) {
    if (sqlite3_prepare_v3(s->db, statement_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL) !=
        SQLITE_OK) {
      snprintf(err, errlen, "cannot prepare statement %d: %s", i, sqlite3_errmsg(s->db));
      goto fail;
    }
  }
  /* remember which file this is, to notice it being deleted or replaced */
  s->path = strdup(path);
  s->watch_fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (!s->path || s->watch_fd < 0 || fstat(s->watch_fd, &st) != 0) {
    snprintf(err, errlen, "cannot watch database %s: %s", path, s->path ? strerror(errno) : "out of memory");
    goto fail;
  }
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  *out = &s->base;
  return 0;
fail:
  for (int i = 0; i < STMT_COUNT_; i++) sqlite3_finalize(s->stmt[i]);
  sqlite3_close(s->db);
  if (s->watch_fd >= 0) close(s->watch_fd);
  free(s->path);
  free(s);
  return REEL_ESTORE;
}
