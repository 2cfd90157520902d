/* The shared job store: PostgreSQL through libpq (loaded at run time,
 * pq_api.h). Several reeld nodes use one database: claims and rescues lock
 * the rows they take and skip rows others hold (FOR UPDATE SKIP LOCKED), a
 * job read for a change is locked until the batch commits, and every write
 * is a compare-and-set on the row's version. Wake-ups for other nodes are
 * NOTIFYs queued during the batch and sent just before its COMMIT (so they
 * are delivered exactly when the change is visible, and a rolled-back call
 * sends none). Each batch is one transaction with synchronous_commit on: a
 * commit that returned is durable. The connection is re-established by
 * itself at the next batch after it drops. Migrations run under an advisory
 * lock, so many nodes starting at once migrate once. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/log.h"
#include "store/pq_api.h"
#include "store/store.h"

/* Numbered schema migrations; reel_schema_version holds one row per applied one. */
static const char *const migrations[] = {
    /* 1: jobs, their logs, the readiness probe's row */
    "CREATE TABLE jobs ("
    "  seq BIGSERIAL PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  version BIGINT NOT NULL DEFAULT 1,"
    "  status SMALLINT NOT NULL,"
    "  priority INTEGER NOT NULL DEFAULT 0,"
    "  progress INTEGER NOT NULL DEFAULT 0,"
    "  stage TEXT NOT NULL DEFAULT '',"
    "  prompt TEXT NOT NULL,"
    "  created_ms BIGINT NOT NULL,"
    "  started_ms BIGINT NOT NULL DEFAULT 0,"
    "  finished_ms BIGINT NOT NULL DEFAULT 0,"
    "  updated_ms BIGINT NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  run_after_ms BIGINT NOT NULL DEFAULT 0,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
    "  artifact_key TEXT, artifact_uri TEXT, gcs_uri TEXT, error TEXT, failure_reason TEXT,"
    "  node TEXT NOT NULL DEFAULT '',"
    "  lease_expires_ms BIGINT NOT NULL DEFAULT 0,"
    "  cost TEXT);"
    "CREATE INDEX jobs_by_status ON jobs(status, seq);"
    "CREATE INDEX jobs_runnable ON jobs(priority DESC, run_after_ms, seq) WHERE status = 0;"
    "CREATE INDEX jobs_leases ON jobs(lease_expires_ms) WHERE status IN (1, 2);"
    "CREATE INDEX jobs_finished ON jobs(finished_ms) WHERE status >= 3;"
    "CREATE TABLE job_logs ("
    "  job_id TEXT NOT NULL,"
    "  line_no BIGINT NOT NULL,"
    "  line TEXT NOT NULL,"
    "  PRIMARY KEY (job_id, line_no));"
    "CREATE TABLE store_probe (id INTEGER PRIMARY KEY, at_ms BIGINT NOT NULL);",
    /* 2: job events. Ids come from one counter row that each committing
     * transaction with events locks last (just before COMMIT) and holds
     * until its commit is visible, so ids follow commit order across nodes
     * and a reader that saw id N never later finds a smaller one. */
    "CREATE TABLE events ("
    "  id BIGINT PRIMARY KEY,"
    "  job_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  created_ms BIGINT NOT NULL,"
    "  data TEXT NOT NULL);"
    "CREATE INDEX events_by_job ON events(job_id, id);"
    "CREATE TABLE reel_event_counter (one INTEGER PRIMARY KEY CHECK (one = 1), last_id BIGINT NOT NULL);"
    "INSERT INTO reel_event_counter VALUES (1, 0);",
    /* 3: Idempotency-Key records */
    "CREATE TABLE idempotency_keys ("
    "  client TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  body_sha256 TEXT NOT NULL,"
    "  job_id TEXT NOT NULL,"
    "  created_ms BIGINT NOT NULL,"
    "  expires_ms BIGINT NOT NULL,"
    "  PRIMARY KEY (client, key));"
    "CREATE INDEX idempotency_expiry ON idempotency_keys(expires_ms);",
    /* 4: the webhook outbox and endpoints that answered 410 */
    "CREATE TABLE webhook_deliveries ("
    "  seq BIGSERIAL PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  endpoint TEXT NOT NULL,"
    "  event_type TEXT NOT NULL,"
    "  job_id TEXT NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  status SMALLINT NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_ms BIGINT NOT NULL,"
    "  created_ms BIGINT NOT NULL,"
    "  updated_ms BIGINT NOT NULL,"
    "  last_status INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT NOT NULL DEFAULT '',"
    "  lease_node TEXT NOT NULL DEFAULT '',"
    "  lease_expires_ms BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX webhook_due ON webhook_deliveries(next_attempt_ms) WHERE status = 0;"
    "CREATE INDEX webhook_by_job ON webhook_deliveries(job_id);"
    "CREATE TABLE webhook_endpoints (url TEXT PRIMARY KEY, disabled_ms BIGINT NOT NULL, reason TEXT NOT NULL);",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof *migrations))
/* pg_advisory_lock key of the migrations: "reel" */
#define MIGRATION_LOCK_KEY "1919247724"

#define JOB_COLUMNS                                                                           \
  "seq, id, status, progress, stage, prompt, created_ms, started_ms, finished_ms, updated_ms, " \
  "attempts, run_after_ms, cancel_requested, artifact_key, artifact_uri, gcs_uri, error, "      \
  "failure_reason, node, lease_expires_ms, cost, version, priority"

#define DELIVERY_COLUMNS                                                                              \
  "seq, id, endpoint, event_type, job_id, status, attempts, next_attempt_ms, created_ms, updated_ms, " \
  "last_status, last_error, lease_node, lease_expires_ms"

enum {
  STMT_INSERT, STMT_INSERT_MANY, STMT_GET, STMT_READ, STMT_WRITE, STMT_EXISTS, STMT_LIST_ANY, STMT_LIST_STATUS, STMT_COUNT, STMT_COUNT_QUEUED,
  STMT_NEXT_RUNNABLE, STMT_RENEW, STMT_EXPIRED, STMT_DELETE_FINISHED, STMT_LOG_INSERT, STMT_LOG_TRIM,
  STMT_LOG_TAIL, STMT_PING, STMT_PROBE, STMT_CLOCK, STMT_EVENTS_INSERT, STMT_EVENTS_ALL, STMT_EVENTS_JOB,
  STMT_EVENT_LAST, STMT_IDEM_GET, STMT_IDEM_PUT, STMT_IDEM_EXPIRED, STMT_DLV_INSERT, STMT_DLV_CLAIM, STMT_DLV_PAYLOAD,
  STMT_DLV_FINISH, STMT_DLV_LIST, STMT_EP_DISABLE, STMT_EP_DISABLED, STMT_DLV_RELEASE, STMT_COUNT_
};

static const char *const statement_sql[STMT_COUNT_] = {
    [STMT_INSERT] = "INSERT INTO jobs (id, status, progress, stage, prompt, created_ms, updated_ms, run_after_ms, "
                    "priority) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
    [STMT_INSERT_MANY] = "INSERT INTO jobs (id, status, progress, stage, prompt, created_ms, updated_ms, "
                         "run_after_ms, priority) SELECT * FROM unnest($1::text[], $2::int2[], $3::int4[], "
                         "$4::text[], $5::text[], $6::int8[], $7::int8[], $8::int8[], $9::int4[]) RETURNING id, seq",
    [STMT_GET] = "SELECT " JOB_COLUMNS " FROM jobs WHERE id = $1 FOR UPDATE",
    [STMT_READ] = "SELECT " JOB_COLUMNS " FROM jobs WHERE id = $1",
    [STMT_WRITE] = "UPDATE jobs SET status = $2, progress = $3, stage = $4, started_ms = $5, finished_ms = $6, "
                   "updated_ms = $7, attempts = $8, run_after_ms = $9, cancel_requested = $10, artifact_key = $11, "
                   "artifact_uri = $12, gcs_uri = $13, error = $14, failure_reason = $15, node = $16, "
                   "lease_expires_ms = $17, cost = $18, priority = $20, version = version + 1 "
                   "WHERE id = $1 AND version = $19",
    [STMT_EXISTS] = "SELECT 1 FROM jobs WHERE id = $1",
    [STMT_LIST_ANY] = "SELECT " JOB_COLUMNS " FROM jobs WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
    [STMT_LIST_STATUS] = "SELECT " JOB_COLUMNS " FROM jobs WHERE status = $3 AND seq < $1 ORDER BY seq DESC LIMIT $2",
    [STMT_COUNT] = "SELECT status, COUNT(*) FROM jobs GROUP BY status",
    [STMT_COUNT_QUEUED] = "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE status = 0 LIMIT $1) AS q",
    [STMT_NEXT_RUNNABLE] = "SELECT " JOB_COLUMNS " FROM jobs WHERE status = 0 AND run_after_ms <= $1 "
                           "ORDER BY priority DESC, run_after_ms, seq LIMIT 1 FOR UPDATE SKIP LOCKED",
    [STMT_RENEW] = "UPDATE jobs SET lease_expires_ms = $4 WHERE id = $1 AND node = $2 AND attempts = $3 "
                   "AND status IN (1, 2) RETURNING cancel_requested",
    [STMT_EXPIRED] = "SELECT " JOB_COLUMNS " FROM jobs WHERE status IN (1, 2) AND lease_expires_ms < $1 "
                     "ORDER BY lease_expires_ms, seq LIMIT $2 FOR UPDATE SKIP LOCKED",
    [STMT_DELETE_FINISHED] = "WITH doomed AS (SELECT id FROM jobs WHERE status >= 3 AND finished_ms < $1 "
                             "ORDER BY finished_ms LIMIT $2 FOR UPDATE SKIP LOCKED), "
                             "logs AS (DELETE FROM job_logs WHERE job_id IN (SELECT id FROM doomed)), "
                             "evs AS (DELETE FROM events WHERE job_id IN (SELECT id FROM doomed)), "
                             "dlv AS (DELETE FROM webhook_deliveries WHERE job_id IN (SELECT id FROM doomed)) "
                             "DELETE FROM jobs WHERE id IN (SELECT id FROM doomed)",
    [STMT_LOG_INSERT] = "INSERT INTO job_logs (job_id, line_no, line) SELECT $1, COALESCE(MAX(line_no), 0) + 1, $2 "
                        "FROM job_logs WHERE job_id = $1 RETURNING line_no",
    [STMT_LOG_TRIM] = "DELETE FROM job_logs WHERE job_id = $1 AND line_no <= $2",
    [STMT_LOG_TAIL] = "SELECT line FROM (SELECT line_no, line FROM job_logs WHERE job_id = $1 "
                      "ORDER BY line_no DESC LIMIT $2) AS t ORDER BY line_no",
    [STMT_PING] = "SELECT 1",
    [STMT_PROBE] = "INSERT INTO store_probe (id, at_ms) VALUES (1, $1) "
                   "ON CONFLICT (id) DO UPDATE SET at_ms = EXCLUDED.at_ms",
    [STMT_CLOCK] = "SELECT (EXTRACT(EPOCH FROM now()) * 1000)::int8",
    [STMT_EVENTS_INSERT] = "WITH c AS (UPDATE reel_event_counter SET last_id = last_id + $5::int8 RETURNING last_id) "
                           "INSERT INTO events (id, job_id, type, created_ms, data) "
                           "SELECT c.last_id - $5::int8 + u.o, u.j, u.t, u.c, u.d FROM c, "
                           "unnest($1::text[], $2::text[], $3::int8[], $4::text[]) WITH ORDINALITY AS u(j, t, c, d, o)",
    [STMT_EVENTS_ALL] = "SELECT id, job_id, type, created_ms, data FROM events WHERE id > $1 ORDER BY id LIMIT $2",
    [STMT_EVENTS_JOB] = "SELECT id, job_id, type, created_ms, data FROM events WHERE job_id = $3 AND id > $1 "
                        "ORDER BY id LIMIT $2",
    [STMT_EVENT_LAST] = "SELECT last_id FROM reel_event_counter",
    [STMT_IDEM_GET] = "SELECT body_sha256, job_id, created_ms, expires_ms FROM idempotency_keys "
                      "WHERE client = $1 AND key = $2 AND expires_ms > $3",
    [STMT_IDEM_PUT] = "INSERT INTO idempotency_keys AS k (client, key, body_sha256, job_id, created_ms, expires_ms) "
                      "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (client, key) DO UPDATE SET "
                      "body_sha256 = EXCLUDED.body_sha256, job_id = EXCLUDED.job_id, "
                      "created_ms = EXCLUDED.created_ms, expires_ms = EXCLUDED.expires_ms "
                      "WHERE k.expires_ms <= $7",
    [STMT_IDEM_EXPIRED] = "DELETE FROM idempotency_keys WHERE (client, key) IN (SELECT client, key FROM "
                          "idempotency_keys WHERE expires_ms <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
    [STMT_DLV_INSERT] = "INSERT INTO webhook_deliveries (id, endpoint, event_type, job_id, payload, "
                        "next_attempt_ms, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) "
                        "RETURNING seq",
    [STMT_DLV_CLAIM] = "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_node = $2, lease_expires_ms = $3, "
                       "updated_ms = $1 WHERE seq IN (SELECT seq FROM webhook_deliveries WHERE status = 0 AND "
                       "next_attempt_ms <= $1 AND lease_expires_ms <= $1 ORDER BY next_attempt_ms, seq LIMIT $4 "
                       "FOR UPDATE SKIP LOCKED) RETURNING " DELIVERY_COLUMNS,
    [STMT_DLV_PAYLOAD] = "SELECT payload FROM webhook_deliveries WHERE id = $1",
    [STMT_DLV_FINISH] = "UPDATE webhook_deliveries SET status = $4, next_attempt_ms = $5, last_status = $6, "
                        "last_error = $7, lease_node = '', lease_expires_ms = 0, updated_ms = $8 "
                        "WHERE id = $1 AND lease_node = $2 AND attempts = $3 AND status = 0",
    [STMT_DLV_LIST] = "SELECT " DELIVERY_COLUMNS " FROM webhook_deliveries WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
    [STMT_EP_DISABLE] = "INSERT INTO webhook_endpoints (url, disabled_ms, reason) VALUES ($1, $2, $3) "
                        "ON CONFLICT (url) DO NOTHING",
    [STMT_DLV_RELEASE] = "UPDATE webhook_deliveries SET lease_node = '', lease_expires_ms = 0 "
                         "WHERE status = 0 AND lease_expires_ms > 0",
    [STMT_EP_DISABLED] = "SELECT disabled_ms FROM webhook_endpoints WHERE url = $1",
};

#define MAX_NOTIFY 64

typedef struct {
  char channel[24];
  char payload[40];
} pending_notify;

#define MAX_CONTROLS 8
#define SESSION_IDLE_MS "5000"
#define SESSION_LOCK_WAIT_MS "5000"

/* An event appended in the open transaction, inserted at its commit. */
typedef struct {
  char job_id[32];
  char type[24];
  int64_t created_ms;
  char *data;
} pending_event;

typedef struct {
  reel_store base;
  const reel_pq_api *pq;
  PGconn *conn;
  int prepared;          /* the statements exist on this session */
  int pipeline;          /* the session is in pipeline mode (after ensure_session) */
  /* statements without results to wait for (BEGIN, SAVEPOINT, RELEASE,
   * NOTIFY), sent together with the next statement that has one: a call
   * costs one round trip, not three */
  char controls[MAX_CONTROLS][96];
  int n_controls;
  int begin_sent;        /* the transaction was opened on the server */
  int savepoint_state;   /* 0 none, 1 queued (not yet sent), 2 sent */
  int64_t tx_clock_ms;   /* the store clock of the open transaction, 0 until read */
  pending_notify notify[MAX_NOTIFY];
  int n_notify, notify_mark, notify_overflow;
  pending_event *events; /* appended in this transaction, inserted just before COMMIT */
  int n_events, cap_events, events_mark;
  reel_store_fault fault; /* of the latest failure */
  char fault_msg[320];
} pg_store;

/* ---- errors ---- */

/* Records why the latest statement failed. */
static void note_failure(pg_store *s, PGresult *res) {
  const char *state = res ? s->pq->resultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *message = res ? s->pq->resultErrorMessage(res) : NULL;
  if (!message || !*message) message = s->pq->errorMessage(s->conn);
  reel_store_fault fault = REEL_STORE_FAULT_OTHER;
  const char *kind = "store error";
  if (s->pq->status(s->conn) != CONNECTION_OK || (state && (strncmp(state, "08", 2) == 0 ||
                                                          strncmp(state, "57P", 3) == 0))) {
    fault = REEL_STORE_FAULT_DOWN;
    kind = "database unreachable";
  } else if (state && strcmp(state, "53100") == 0) {
    fault = REEL_STORE_FAULT_FULL;
    kind = "disk full";
  } else if (state && strncmp(state, "58", 2) == 0) {
    fault = REEL_STORE_FAULT_IO;
    kind = "I/O error";
  }
  s->fault = fault;
  snprintf(s->fault_msg, sizeof s->fault_msg, "%s (PostgreSQL%s%s): %.*s", kind, state ? " " : "", state ? state : "",
           (int)strcspn(message ? message : "", "\n"), message ? message : "");
}

static int is_state(pg_store *s, PGresult *res, const char *state) {
  const char *got = res ? s->pq->resultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  return got && strcmp(got, state) == 0;
}

/* ---- statements ---- */

static int prepare_all(pg_store *s) {
  for (int i = 0; i < STMT_COUNT_; i++) {
    char name[16];
    snprintf(name, sizeof name, "reel%d", i);
    PGresult *res = s->pq->prepare(s->conn, name, statement_sql[i], 0, NULL);
    int ok = res && s->pq->resultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) note_failure(s, res);
    s->pq->clear(res);
    if (!ok) return REEL_ESTORE;
  }
  s->prepared = 1;
  return 0;
}

/* Drains results up to the pipeline's sync point (after an error, or to end
 * a transaction). */
static void drain_to_sync(pg_store *s) {
  for (int nulls = 0; nulls < 1000;) {
    PGresult *r = s->pq->getResult(s->conn);
    if (!r) {
      if (s->pq->status(s->conn) != CONNECTION_OK) return;
      nulls++;
      continue;
    }
    ExecStatusType st = s->pq->resultStatus(r);
    s->pq->clear(r);
    if (st == PGRES_PIPELINE_SYNC) return;
  }
}

static void mark_sent(pg_store *s) {
  for (int i = 0; i < s->n_controls; i++) {
    if (strcmp(s->controls[i], "BEGIN") == 0) s->begin_sent = 1;
    if (strcmp(s->controls[i], "SAVEPOINT call") == 0) s->savepoint_state = 2;
  }
}

/* Sends the queued control statements and then one statement (prepared
 * statement `which` with values, or the text sql when which < 0; none when
 * both are absent), and reads every answer. With sync, the exchange ends at
 * a pipeline sync point (a COMMIT, a ROLLBACK). Returns the statement's
 * result for the caller to check and clear; a failed control statement's
 * result stands in for it. NULL when the connection failed (noted), or when
 * there was no statement and every control succeeded. */
static PGresult *exchange(pg_store *s, int which, int n, const char *const *values, const char *sql, int sync) {
  const reel_pq_api *pq = s->pq;
  int items = s->n_controls, sent_ok = 1;
  for (int i = 0; i < s->n_controls && sent_ok; i++)
    sent_ok = pq->sendQueryParams(s->conn, s->controls[i], 0, NULL, NULL, NULL, NULL, 0);
  mark_sent(s);
  s->n_controls = 0;
  int has_statement = which >= 0 || sql;
  if (sent_ok && which >= 0) {
    char name[16];
    snprintf(name, sizeof name, "reel%d", which);
    sent_ok = pq->sendQueryPrepared(s->conn, name, n, values, NULL, NULL, 0);
  } else if (sent_ok && sql) {
    sent_ok = pq->sendQueryParams(s->conn, sql, 0, NULL, NULL, NULL, NULL, 0);
  }
  if (has_statement) items++;
  if (sent_ok) sent_ok = sync ? pq->pipelineSync(s->conn) : pq->sendFlushRequest(s->conn);
  if (sent_ok) sent_ok = pq->flush(s->conn) == 0;
  if (!sent_ok) {
    note_failure(s, NULL);
    return NULL;
  }
  PGresult *answer = NULL, *failed = NULL;
  int error = 0;
  for (int i = 0; i < items; i++) {
    PGresult *r = pq->getResult(s->conn);
    if (!r) { /* the connection broke */
      note_failure(s, NULL);
      pq->clear(failed);
      pq->clear(answer);
      return NULL;
    }
    ExecStatusType st = pq->resultStatus(r);
    int is_statement = has_statement && i == items - 1;
    int bad = st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED || st == PGRES_BAD_RESPONSE;
    if (bad && !error && st != PGRES_PIPELINE_ABORTED) {
      error = 1;
      failed = r;
    } else if (is_statement && !error) {
      answer = r;
    } else {
      pq->clear(r);
    }
    while ((r = pq->getResult(s->conn)) != NULL) pq->clear(r); /* each query's results end with NULL */
  }
  /* after an error the server skips everything up to a sync point: without
   * one already sent, send it, or the ROLLBACK TO that follows is skipped too */
  if (error && !sync && pq->pipelineSync(s->conn)) pq->flush(s->conn);
  if (sync || error) drain_to_sync(s);
  if (failed) {
    pq->clear(answer);
    return failed;
  }
  return answer;
}

/* Runs a prepared statement; returns its result (check it) or NULL. */
static PGresult *run(pg_store *s, int which, int n, const char *const *values) {
  return exchange(s, which, n, values, NULL, 0);
}

/* Runs a statement that returns no rows (or whose rows are not needed). */
static int run_command(pg_store *s, int which, int n, const char *const *values) {
  PGresult *res = run(s, which, n, values);
  ExecStatusType st = res ? s->pq->resultStatus(res) : PGRES_FATAL_ERROR;
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok) note_failure(s, res);
  s->pq->clear(res);
  return ok ? 0 : REEL_ESTORE;
}

/* A statement outside pipeline mode (session set-up, migrations). */
static int simple(pg_store *s, const char *sql) {
  PGresult *res = s->pq->exec(s->conn, sql);
  int ok = res && s->pq->resultStatus(res) == PGRES_COMMAND_OK;
  if (!ok) note_failure(s, res);
  s->pq->clear(res);
  return ok ? 0 : REEL_ESTORE;
}

/* Queues a statement with no result to wait for; sent with the next one. */
static int queue_control(pg_store *s, const char *sql) {
  if (s->n_controls == MAX_CONTROLS) { /* send what is queued first */
    PGresult *res = exchange(s, -1, 0, NULL, NULL, 0);
    int ok = res == NULL && s->pq->status(s->conn) == CONNECTION_OK;
    if (res) note_failure(s, res); /* a result here is a failed control */
    s->pq->clear(res);
    if (!ok) return REEL_ESTORE;
  }
  snprintf(s->controls[s->n_controls++], sizeof s->controls[0], "%s", sql);
  return 0;
}

/* A statement that ends an exchange at a sync point (COMMIT, ROLLBACK, ROLLBACK TO). */
static int finish_command(pg_store *s, const char *sql, const char *expected_status) {
  PGresult *res = exchange(s, -1, 0, NULL, sql, 1);
  int ok = res && s->pq->resultStatus(res) == PGRES_COMMAND_OK &&
           (!expected_status || strcmp(s->pq->cmdStatus(res), expected_status) == 0);
  if (!ok) note_failure(s, res);
  s->pq->clear(res);
  return ok ? 0 : REEL_ESTORE;
}

/* Text forms of integer parameters. */
typedef struct {
  char text[16][24];
  int used;
} numbers;

static const char *num(numbers *n, int64_t v) {
  char *out = n->text[n->used++ & 15]; /* no statement has more than 16 numbers */
  snprintf(out, sizeof n->text[0], "%" PRId64, v);
  return out;
}

static int64_t get_int(pg_store *s, PGresult *res, int row, int column) {
  const char *v = s->pq->getvalue(res, row, column);
  return v ? strtoll(v, NULL, 10) : 0;
}

static char *get_dup(pg_store *s, PGresult *res, int row, int column) {
  if (s->pq->getisnull(res, row, column)) return NULL;
  return strdup(s->pq->getvalue(res, row, column));
}

static void get_copy(pg_store *s, PGresult *res, int row, int column, char *dst, size_t n) {
  const char *v = s->pq->getisnull(res, row, column) ? "" : s->pq->getvalue(res, row, column);
  snprintf(dst, n, "%s", v);
}

static void read_job(pg_store *s, PGresult *res, int row, reel_job *j) {
  memset(j, 0, sizeof *j);
  j->seq = get_int(s, res, row, 0);
  get_copy(s, res, row, 1, j->id, sizeof j->id);
  j->status = (reel_job_status)get_int(s, res, row, 2);
  j->progress = (int)get_int(s, res, row, 3);
  get_copy(s, res, row, 4, j->stage, sizeof j->stage);
  j->prompt = get_dup(s, res, row, 5);
  j->created_ms = get_int(s, res, row, 6);
  j->started_ms = get_int(s, res, row, 7);
  j->finished_ms = get_int(s, res, row, 8);
  j->updated_ms = get_int(s, res, row, 9);
  j->attempts = (int)get_int(s, res, row, 10);
  j->run_after_ms = get_int(s, res, row, 11);
  j->cancel_requested = (int)get_int(s, res, row, 12);
  j->artifact_key = get_dup(s, res, row, 13);
  j->artifact_uri = get_dup(s, res, row, 14);
  j->gcs_uri = get_dup(s, res, row, 15);
  j->error = get_dup(s, res, row, 16);
  j->failure_reason = get_dup(s, res, row, 17);
  get_copy(s, res, row, 18, j->node, sizeof j->node);
  j->lease_expires_ms = get_int(s, res, row, 19);
  j->cost = get_dup(s, res, row, 20);
  j->version = get_int(s, res, row, 21);
  j->priority = (int)get_int(s, res, row, 22);
}

/* Runs a query of job rows into out[0..*count). */
static int query_jobs(pg_store *s, int which, int n, const char *const *values, int limit, reel_job *out, int *count) {
  *count = 0;
  PGresult *res = run(s, which, n, values);
  if (!res || s->pq->resultStatus(res) != PGRES_TUPLES_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  int rows = s->pq->ntuples(res);
  for (int i = 0; i < rows && i < limit; i++) read_job(s, res, i, &out[(*count)++]);
  s->pq->clear(res);
  return 0;
}

/* ---- the session ---- */

/* Makes the connection usable: re-established if it dropped, with the
 * session settings and prepared statements it needs. */
static int ensure_session(pg_store *s) {
  if (s->pq->status(s->conn) != CONNECTION_OK) {
    s->prepared = 0;
    s->pq->reset(s->conn);
    if (s->pq->status(s->conn) != CONNECTION_OK) {
      note_failure(s, NULL);
      return REEL_ESTORE;
    }
    reel_log(REEL_LOG_INFO, "reconnected to PostgreSQL", NULL);
  }
  if (s->prepared) return 0;
  s->pipeline = 0;
  /* A node that stops mid-batch (paused, hung, cut off) must not hold its
   * row locks for long: the server ends its session after SESSION_IDLE_MS
   * idle inside a transaction (a batch never pauses that long between
   * statements), and a statement that waits SESSION_LOCK_WAIT_MS for a lock
   * fails (that call answers 503) instead of stalling every later batch. */
  if (simple(s, "SET synchronous_commit = on") != 0 ||
      simple(s, "SET idle_in_transaction_session_timeout = " SESSION_IDLE_MS) != 0 ||
      simple(s, "SET lock_timeout = " SESSION_LOCK_WAIT_MS) != 0 || prepare_all(s) != 0)
    return REEL_ESTORE;
  if (!s->pq->enterPipelineMode(s->conn)) {
    note_failure(s, NULL);
    s->prepared = 0;
    return REEL_ESTORE;
  }
  s->pipeline = 1;
  return 0;
}

/* Forgets the pending events from index keep on. */
static void drop_events(pg_store *s, int keep) {
  for (int i = keep; i < s->n_events; i++) free(s->events[i].data);
  if (keep < s->n_events) s->n_events = keep;
}

static int array_add(reel_buf *b, const char *text, int quoted);
static int p_notify(reel_store *base, const char *channel, const char *payload);

/* Inserts the transaction's events under the counter row's lock (taken
 * last, so no deadlock: whoever holds it only commits) and queues their
 * wake-up. */
static int flush_events(pg_store *s) {
  if (s->n_events == 0) return 0;
  enum { COLUMNS = 4 };
  reel_buf arrays[COLUMNS];
  int rc = 0;
  for (int c = 0; c < COLUMNS; c++) {
    reel_buf_init(&arrays[c], (size_t)1 << 30);
    if (reel_buf_append(&arrays[c], "{", 1)) rc = REEL_ENOMEM;
  }
  for (int i = 0; i < s->n_events && rc == 0; i++) {
    const pending_event *e = &s->events[i];
    numbers n = {0};
    const char *cell[COLUMNS] = {e->job_id, e->type, num(&n, e->created_ms), e->data};
    for (int c = 0; c < COLUMNS && rc == 0; c++) rc = array_add(&arrays[c], cell[c], c != 2);
  }
  for (int c = 0; c < COLUMNS && rc == 0; c++) rc = reel_buf_append(&arrays[c], "}", 2); /* with its NUL */
  if (rc == 0) {
    numbers n = {0};
    const char *v[5] = {arrays[0].data, arrays[1].data, arrays[2].data, arrays[3].data, num(&n, s->n_events)};
    rc = run_command(s, STMT_EVENTS_INSERT, 5, v);
  }
  for (int c = 0; c < COLUMNS; c++) reel_buf_free(&arrays[c]);
  drop_events(s, 0);
  if (rc == REEL_ENOMEM) snprintf(s->fault_msg, sizeof s->fault_msg, "store error: out of memory for events");
  return rc ? REEL_ESTORE : p_notify(&s->base, REEL_STORE_CHANNEL_EVENTS, "");
}

static int p_begin(reel_store *base) {
  pg_store *s = (pg_store *)base;
  s->tx_clock_ms = 0;
  s->n_notify = s->notify_mark = s->notify_overflow = 0;
  drop_events(s, 0);
  s->events_mark = 0;
  s->n_controls = 0;
  s->begin_sent = 0;
  s->savepoint_state = 0;
  if (ensure_session(s) != 0) return REEL_ESTORE;
  return queue_control(s, "BEGIN");
}

/* Payloads go into NOTIFY's text: job ids and "" only. */
static int plain_payload(const char *p) {
  for (; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
      return 0;
  return 1;
}

static int queue_notifications(pg_store *s) {
  char sql[96];
  for (int i = 0; i < s->n_notify; i++) {
    if (!plain_payload(s->notify[i].payload)) {
      s->notify_overflow = 1;
      continue;
    }
    snprintf(sql, sizeof sql, "NOTIFY %s, '%s'", s->notify[i].channel, s->notify[i].payload);
    if (queue_control(s, sql) != 0) return REEL_ESTORE;
  }
  /* too many distinct ones to carry: a general wake-up instead */
  if (s->notify_overflow && queue_control(s, "NOTIFY " REEL_STORE_CHANNEL_JOBS) != 0) return REEL_ESTORE;
  return 0;
}

static int p_commit(reel_store *base) {
  pg_store *s = (pg_store *)base;
  if (s->pq->transactionStatus(s->conn) == PQTRANS_INERROR || s->pq->status(s->conn) != CONNECTION_OK) {
    snprintf(s->fault_msg, sizeof s->fault_msg, "store error: the transaction failed before its commit");
    s->fault = s->pq->status(s->conn) == CONNECTION_OK ? REEL_STORE_FAULT_OTHER : REEL_STORE_FAULT_DOWN;
    return REEL_ESTORE;
  }
  if (!s->begin_sent && s->n_notify == 0 && !s->notify_overflow && s->n_events == 0) { /* nothing reached the server */
    s->n_controls = 0;
    return 0;
  }
  int rc = flush_events(s);
  if (rc == 0) rc = queue_notifications(s);
  s->n_notify = 0;
  /* a COMMIT of a failed transaction "succeeds" as ROLLBACK */
  return rc ? rc : finish_command(s, "COMMIT", "COMMIT");
}

static int p_rollback(reel_store *base) {
  pg_store *s = (pg_store *)base;
  s->n_notify = 0;
  drop_events(s, 0);
  s->n_controls = 0;
  if (!s->begin_sent || s->pq->status(s->conn) != CONNECTION_OK) return 0; /* nothing open on the server */
  finish_command(s, "ROLLBACK", NULL);
  return 0;
}

/* Drops the queued SAVEPOINT of a call that sent nothing. */
static void unqueue_savepoint(pg_store *s) {
  if (s->n_controls > 0 && strcmp(s->controls[s->n_controls - 1], "SAVEPOINT call") == 0) s->n_controls--;
}

static int p_savepoint(reel_store *base) {
  pg_store *s = (pg_store *)base;
  s->notify_mark = s->n_notify;
  s->events_mark = s->n_events;
  s->savepoint_state = 1;
  return queue_control(s, "SAVEPOINT call");
}

static int p_release(reel_store *base) {
  pg_store *s = (pg_store *)base;
  int state = s->savepoint_state;
  s->savepoint_state = 0;
  if (state == 1) {
    unqueue_savepoint(s);
    return 0;
  }
  return state == 2 ? queue_control(s, "RELEASE SAVEPOINT call") : 0;
}

static int p_rollback_to(reel_store *base) {
  pg_store *s = (pg_store *)base;
  s->n_notify = s->notify_mark; /* the rolled-back call's notifications and events go too */
  drop_events(s, s->events_mark);
  if (s->savepoint_state == 1) { /* the call never reached the server */
    unqueue_savepoint(s);
    s->savepoint_state = 0;
    return 0;
  }
  return finish_command(s, "ROLLBACK TO SAVEPOINT call", NULL);
}

static int64_t p_clock_ms(reel_store *base) {
  pg_store *s = (pg_store *)base;
  if (s->tx_clock_ms) return s->tx_clock_ms;
  PGresult *res = run(s, STMT_CLOCK, 0, NULL);
  if (res && s->pq->resultStatus(res) == PGRES_TUPLES_OK && s->pq->ntuples(res) == 1) s->tx_clock_ms = get_int(s, res, 0, 0);
  else note_failure(s, res);
  s->pq->clear(res);
  return s->tx_clock_ms;
}

/* ---- jobs ---- */

static int p_insert_job(reel_store *base, reel_job *job) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[9] = {job->id, num(&n, job->status), num(&n, job->progress), job->stage,
                      job->prompt ? job->prompt : "", num(&n, job->created_ms), num(&n, job->updated_ms),
                      num(&n, job->run_after_ms), num(&n, job->priority)};
  PGresult *res = run(s, STMT_INSERT, 9, v);
  if (res && s->pq->resultStatus(res) == PGRES_TUPLES_OK && s->pq->ntuples(res) == 1) {
    job->seq = get_int(s, res, 0, 0);
    job->version = 1;
    s->pq->clear(res);
    return 0;
  }
  int conflict = is_state(s, res, "23505");
  note_failure(s, res);
  s->pq->clear(res);
  return conflict ? REEL_ECONFLICT : REEL_ESTORE;
}

/* Appends one element to a PostgreSQL array literal: quoted, with " and \ escaped. */
static int array_add(reel_buf *b, const char *text, int quoted) {
  if (b->len > 1 && reel_buf_append(b, ",", 1)) return REEL_ENOMEM;
  if (!quoted) return reel_buf_append_str(b, text);
  if (reel_buf_append(b, "\"", 1)) return REEL_ENOMEM;
  for (const char *p = text; *p; p++) {
    if ((*p == '"' || *p == '\\') && reel_buf_append(b, "\\", 1)) return REEL_ENOMEM;
    if (reel_buf_append(b, p, 1)) return REEL_ENOMEM;
  }
  return reel_buf_append(b, "\"", 1);
}

static int p_insert_jobs(reel_store *base, reel_job *const *jobs, int n) {
  pg_store *s = (pg_store *)base;
  if (n == 1) return p_insert_job(base, jobs[0]);
  enum { COLUMNS = 9 };
  reel_buf arrays[COLUMNS];
  int rc = 0;
  for (int c = 0; c < COLUMNS; c++) {
    reel_buf_init(&arrays[c], (size_t)1 << 30);
    if (reel_buf_append(&arrays[c], "{", 1)) rc = REEL_ENOMEM;
  }
  for (int i = 0; i < n && rc == 0; i++) {
    const reel_job *j = jobs[i];
    numbers num_text = {0};
    const char *cell[COLUMNS] = {j->id, num(&num_text, j->status), num(&num_text, j->progress), j->stage,
                                 j->prompt ? j->prompt : "", num(&num_text, j->created_ms),
                                 num(&num_text, j->updated_ms), num(&num_text, j->run_after_ms),
                                 num(&num_text, j->priority)};
    for (int c = 0; c < COLUMNS && rc == 0; c++) {
      int quoted = c == 0 || c == 3 || c == 4;
      rc = array_add(&arrays[c], cell[c], quoted);
    }
  }
  for (int c = 0; c < COLUMNS && rc == 0; c++) rc = reel_buf_append(&arrays[c], "}", 2); /* with its NUL */
  if (rc == 0) {
    const char *v[COLUMNS];
    for (int c = 0; c < COLUMNS; c++) v[c] = arrays[c].data;
    PGresult *res = run(s, STMT_INSERT_MANY, COLUMNS, v);
    if (res && s->pq->resultStatus(res) == PGRES_TUPLES_OK && s->pq->ntuples(res) == n) {
      /* RETURNING's order is not promised: match the rows by id */
      for (int r = 0; r < n; r++) {
        const char *id = s->pq->getvalue(res, r, 0);
        for (int i = 0; i < n; i++)
          if (strcmp(jobs[i]->id, id) == 0) {
            jobs[i]->seq = get_int(s, res, r, 1);
            jobs[i]->version = 1;
          }
      }
    } else {
      rc = is_state(s, res, "23505") ? REEL_ECONFLICT : REEL_ESTORE;
      note_failure(s, res);
    }
    s->pq->clear(res);
  }
  for (int c = 0; c < COLUMNS; c++) reel_buf_free(&arrays[c]);
  return rc;
}

static int p_get_job(reel_store *base, const char *id, reel_job *out) {
  pg_store *s = (pg_store *)base;
  const char *v[1] = {id};
  int count = 0;
  int rc = query_jobs(s, STMT_GET, 1, v, 1, out, &count);
  if (rc) return rc;
  return count == 1 ? 0 : REEL_ENOTFOUND;
}

static int p_read_job(reel_store *base, const char *id, reel_job *out) {
  pg_store *s = (pg_store *)base;
  const char *v[1] = {id};
  int count = 0;
  int rc = query_jobs(s, STMT_READ, 1, v, 1, out, &count);
  if (rc) return rc;
  return count == 1 ? 0 : REEL_ENOTFOUND;
}

static int p_write_job(reel_store *base, reel_job *j) {
  pg_store *s = (pg_store *)base;
  numbers n = {0}, more = {0};
  const char *v[20] = {j->id,
                       num(&n, j->status),
                       num(&n, j->progress),
                       j->stage,
                       num(&n, j->started_ms),
                       num(&n, j->finished_ms),
                       num(&n, j->updated_ms),
                       num(&n, j->attempts),
                       num(&n, j->run_after_ms),
                       num(&more, j->cancel_requested),
                       j->artifact_key,
                       j->artifact_uri,
                       j->gcs_uri,
                       j->error,
                       j->failure_reason,
                       j->node,
                       num(&more, j->lease_expires_ms),
                       j->cost,
                       num(&more, j->version),
                       num(&more, j->priority)};
  PGresult *res = run(s, STMT_WRITE, 20, v);
  if (!res || s->pq->resultStatus(res) != PGRES_COMMAND_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  int changed = strcmp(s->pq->cmdTuples(res), "1") == 0;
  s->pq->clear(res);
  if (changed) {
    j->version++;
    return 0;
  }
  /* nothing matched: the row is gone, or it moved on since it was read */
  const char *id[1] = {j->id};
  res = run(s, STMT_EXISTS, 1, id);
  if (!res || s->pq->resultStatus(res) != PGRES_TUPLES_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  int exists = s->pq->ntuples(res) == 1;
  s->pq->clear(res);
  return exists ? REEL_ESTALE : REEL_ENOTFOUND;
}

static int p_list_jobs(reel_store *base, int status, int64_t before_seq, int limit, reel_job *out, int *count) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[3] = {num(&n, before_seq > 0 ? before_seq : INT64_MAX), num(&n, limit), num(&n, status)};
  return query_jobs(s, status < 0 ? STMT_LIST_ANY : STMT_LIST_STATUS, status < 0 ? 2 : 3, v, limit, out, count);
}

static int p_count_by_status(reel_store *base, int64_t counts[REEL_JOB_STATUS_COUNT]) {
  pg_store *s = (pg_store *)base;
  for (int i = 0; i < REEL_JOB_STATUS_COUNT; i++) counts[i] = 0;
  PGresult *res = run(s, STMT_COUNT, 0, NULL);
  if (!res || s->pq->resultStatus(res) != PGRES_TUPLES_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  for (int i = 0; i < s->pq->ntuples(res); i++) {
    int64_t status = get_int(s, res, i, 0);
    if (status >= 0 && status < REEL_JOB_STATUS_COUNT) counts[status] = get_int(s, res, i, 1);
  }
  s->pq->clear(res);
  return 0;
}

static int p_count_queued(reel_store *base, int64_t limit, int64_t *count) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[1] = {num(&n, limit)};
  PGresult *res = run(s, STMT_COUNT_QUEUED, 1, v);
  int ok = res && s->pq->resultStatus(res) == PGRES_TUPLES_OK && s->pq->ntuples(res) == 1;
  if (ok) *count = get_int(s, res, 0, 0);
  else note_failure(s, res);
  s->pq->clear(res);
  return ok ? 0 : REEL_ESTORE;
}

static int p_next_runnable(reel_store *base, int64_t now_ms, reel_job *out) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[1] = {num(&n, now_ms)};
  int count = 0;
  int rc = query_jobs(s, STMT_NEXT_RUNNABLE, 1, v, 1, out, &count);
  if (rc) return rc;
  return count == 1 ? 0 : REEL_ENOTFOUND;
}

static int p_renew_lease(reel_store *base, const char *job_id, const reel_fence *fence, int64_t lease_expires_ms,
                         int *held, int *cancel_requested) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[4] = {job_id, fence->node, num(&n, fence->attempt), num(&n, lease_expires_ms)};
  PGresult *res = run(s, STMT_RENEW, 4, v);
  if (!res || s->pq->resultStatus(res) != PGRES_TUPLES_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  *held = s->pq->ntuples(res) == 1;
  *cancel_requested = *held ? (int)get_int(s, res, 0, 0) : 0;
  s->pq->clear(res);
  return 0;
}

static int p_expired_leases(reel_store *base, int64_t now_ms, int limit, reel_job *out, int *count) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[2] = {num(&n, now_ms), num(&n, limit)};
  return query_jobs(s, STMT_EXPIRED, 2, v, limit, out, count);
}

static int p_delete_finished(reel_store *base, int64_t before_ms, int limit, int *deleted) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[2] = {num(&n, before_ms), num(&n, limit)};
  *deleted = 0;
  PGresult *res = run(s, STMT_DELETE_FINISHED, 2, v);
  if (!res || s->pq->resultStatus(res) != PGRES_COMMAND_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  *deleted = atoi(s->pq->cmdTuples(res));
  s->pq->clear(res);
  return 0;
}

/* ---- logs ---- */

static int p_append_log(reel_store *base, const char *job_id, const char *line, size_t max_lines) {
  pg_store *s = (pg_store *)base;
  const char *v[2] = {job_id, line};
  PGresult *res = run(s, STMT_LOG_INSERT, 2, v);
  if (!res || s->pq->resultStatus(res) != PGRES_TUPLES_OK || s->pq->ntuples(res) != 1) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  int64_t line_no = get_int(s, res, 0, 0);
  s->pq->clear(res);
  if ((int64_t)max_lines > 0 && line_no > (int64_t)max_lines) {
    numbers n = {0};
    const char *t[2] = {job_id, num(&n, line_no - (int64_t)max_lines)};
    return run_command(s, STMT_LOG_TRIM, 2, t);
  }
  return 0;
}

static int p_tail_logs(reel_store *base, const char *job_id, int count, json_t *lines) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[2] = {job_id, num(&n, count)};
  PGresult *res = run(s, STMT_LOG_TAIL, 2, v);
  if (!res || s->pq->resultStatus(res) != PGRES_TUPLES_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  for (int i = 0; i < s->pq->ntuples(res); i++) json_array_append_new(lines, json_string(s->pq->getvalue(res, i, 0)));
  s->pq->clear(res);
  return 0;
}

/* ---- events ---- */

static int p_append_event(reel_store *base, const char *job_id, const char *type, int64_t created_ms,
                          const char *data) {
  pg_store *s = (pg_store *)base;
  if (s->n_events == s->cap_events) {
    int cap = s->cap_events ? s->cap_events * 2 : 16;
    pending_event *grown = realloc(s->events, (size_t)cap * sizeof *grown);
    if (!grown) return REEL_ENOMEM;
    s->events = grown;
    s->cap_events = cap;
  }
  pending_event *e = &s->events[s->n_events];
  memset(e, 0, sizeof *e);
  snprintf(e->job_id, sizeof e->job_id, "%s", job_id);
  snprintf(e->type, sizeof e->type, "%s", type);
  e->created_ms = created_ms;
  if (!(e->data = strdup(data))) return REEL_ENOMEM;
  s->n_events++;
  return 0;
}

static int p_read_events(reel_store *base, int64_t after_id, const char *job_id, int limit, reel_event *out,
                         int *count) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[3] = {num(&n, after_id), num(&n, limit), job_id};
  *count = 0;
  PGresult *res = run(s, job_id ? STMT_EVENTS_JOB : STMT_EVENTS_ALL, job_id ? 3 : 2, v);
  if (!res || s->pq->resultStatus(res) != PGRES_TUPLES_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  int rows = s->pq->ntuples(res), rc = 0;
  for (int i = 0; i < rows && i < limit; i++) {
    reel_event *e = &out[i];
    memset(e, 0, sizeof *e);
    e->id = get_int(s, res, i, 0);
    get_copy(s, res, i, 1, e->job_id, sizeof e->job_id);
    get_copy(s, res, i, 2, e->type, sizeof e->type);
    e->created_ms = get_int(s, res, i, 3);
    if (!(e->data = strdup(s->pq->getvalue(res, i, 4)))) {
      rc = REEL_ENOMEM;
      break;
    }
    (*count)++;
  }
  s->pq->clear(res);
  if (rc) {
    for (int i = 0; i < *count; i++) reel_event_clear(&out[i]);
    *count = 0;
  }
  return rc;
}

static int p_last_event_id(reel_store *base, int64_t *id) {
  pg_store *s = (pg_store *)base;
  PGresult *res = run(s, STMT_EVENT_LAST, 0, NULL);
  int ok = res && s->pq->resultStatus(res) == PGRES_TUPLES_OK && s->pq->ntuples(res) == 1;
  if (ok) *id = get_int(s, res, 0, 0);
  else note_failure(s, res);
  s->pq->clear(res);
  return ok ? 0 : REEL_ESTORE;
}

/* ---- webhook deliveries ---- */

static void row_to_delivery(pg_store *s, PGresult *res, int row, reel_delivery *d) {
  memset(d, 0, sizeof *d);
  d->seq = get_int(s, res, row, 0);
  get_copy(s, res, row, 1, d->id, sizeof d->id);
  get_copy(s, res, row, 2, d->endpoint, sizeof d->endpoint);
  get_copy(s, res, row, 3, d->event_type, sizeof d->event_type);
  get_copy(s, res, row, 4, d->job_id, sizeof d->job_id);
  d->status = (int)get_int(s, res, row, 5);
  d->attempts = (int)get_int(s, res, row, 6);
  d->next_attempt_ms = get_int(s, res, row, 7);
  d->created_ms = get_int(s, res, row, 8);
  d->updated_ms = get_int(s, res, row, 9);
  d->last_status = (int)get_int(s, res, row, 10);
  get_copy(s, res, row, 11, d->last_error, sizeof d->last_error);
  get_copy(s, res, row, 12, d->lease_node, sizeof d->lease_node);
  d->lease_expires_ms = get_int(s, res, row, 13);
}

/* Runs a statement returning deliveries into out[0..*count). */
static int query_deliveries(pg_store *s, int which, int n, const char *const *v, int limit, reel_delivery *out,
                            int *count) {
  *count = 0;
  PGresult *res = run(s, which, n, v);
  if (!res || s->pq->resultStatus(res) != PGRES_TUPLES_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  int rows = s->pq->ntuples(res);
  for (int i = 0; i < rows && i < limit; i++) row_to_delivery(s, res, i, &out[(*count)++]);
  s->pq->clear(res);
  return 0;
}

static int p_insert_delivery(reel_store *base, reel_delivery *d) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[7] = {d->id, d->endpoint, d->event_type, d->job_id, d->payload ? d->payload : "",
                      num(&n, d->next_attempt_ms), num(&n, d->created_ms)};
  PGresult *res = run(s, STMT_DLV_INSERT, 7, v);
  int ok = res && s->pq->resultStatus(res) == PGRES_TUPLES_OK && s->pq->ntuples(res) == 1;
  if (ok) d->seq = get_int(s, res, 0, 0);
  else note_failure(s, res);
  s->pq->clear(res);
  return ok ? 0 : REEL_ESTORE;
}

static int p_claim_deliveries(reel_store *base, const char *node, int64_t now_ms, int64_t lease_until_ms, int limit,
                              reel_delivery *out, int *count) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[4] = {num(&n, now_ms), node, num(&n, lease_until_ms), num(&n, limit)};
  return query_deliveries(s, STMT_DLV_CLAIM, 4, v, limit, out, count);
}

static int p_read_delivery_payload(reel_store *base, const char *id, char **payload) {
  pg_store *s = (pg_store *)base;
  const char *v[1] = {id};
  *payload = NULL;
  PGresult *res = run(s, STMT_DLV_PAYLOAD, 1, v);
  if (!res || s->pq->resultStatus(res) != PGRES_TUPLES_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  int found = s->pq->ntuples(res) == 1;
  if (found) *payload = strdup(s->pq->getvalue(res, 0, 0));
  s->pq->clear(res);
  if (!found) return REEL_ENOTFOUND;
  return *payload ? 0 : REEL_ENOMEM;
}

static int p_finish_delivery(reel_store *base, const reel_delivery *d, const char *node, int64_t now_ms, int *held) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[8] = {d->id, node, num(&n, d->attempts), num(&n, d->status), num(&n, d->next_attempt_ms),
                      num(&n, d->last_status), d->last_error, num(&n, now_ms)};
  PGresult *res = run(s, STMT_DLV_FINISH, 8, v);
  if (!res || s->pq->resultStatus(res) != PGRES_COMMAND_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  *held = atoi(s->pq->cmdTuples(res)) > 0;
  s->pq->clear(res);
  return 0;
}

static int p_list_deliveries(reel_store *base, int64_t before_seq, int limit, reel_delivery *out, int *count) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[2] = {num(&n, before_seq > 0 ? before_seq : INT64_MAX), num(&n, limit)};
  return query_deliveries(s, STMT_DLV_LIST, 2, v, limit, out, count);
}

static int p_release_delivery_leases(reel_store *base, int *released) {
  pg_store *s = (pg_store *)base;
  PGresult *res = run(s, STMT_DLV_RELEASE, 0, NULL);
  if (!res || s->pq->resultStatus(res) != PGRES_COMMAND_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  *released = atoi(s->pq->cmdTuples(res));
  s->pq->clear(res);
  return 0;
}

static int p_disable_endpoint(reel_store *base, const char *url, int64_t now_ms, const char *reason) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[3] = {url, num(&n, now_ms), reason};
  return run_command(s, STMT_EP_DISABLE, 3, v);
}

static int p_endpoint_disabled(reel_store *base, const char *url, int64_t *disabled_ms) {
  pg_store *s = (pg_store *)base;
  const char *v[1] = {url};
  PGresult *res = run(s, STMT_EP_DISABLED, 1, v);
  if (!res || s->pq->resultStatus(res) != PGRES_TUPLES_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  *disabled_ms = s->pq->ntuples(res) == 1 ? get_int(s, res, 0, 0) : 0;
  s->pq->clear(res);
  return 0;
}

/* ---- idempotency keys ---- */

static int p_get_idempotency(reel_store *base, const char *client, const char *key, int64_t now_ms,
                             reel_idempotency *out) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[3] = {client, key, num(&n, now_ms)};
  PGresult *res = run(s, STMT_IDEM_GET, 3, v);
  if (!res || s->pq->resultStatus(res) != PGRES_TUPLES_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  int found = s->pq->ntuples(res) == 1;
  if (found) {
    memset(out, 0, sizeof *out);
    snprintf(out->client, sizeof out->client, "%s", client);
    snprintf(out->key, sizeof out->key, "%s", key);
    get_copy(s, res, 0, 0, out->body_sha256, sizeof out->body_sha256);
    get_copy(s, res, 0, 1, out->job_id, sizeof out->job_id);
    out->created_ms = get_int(s, res, 0, 2);
    out->expires_ms = get_int(s, res, 0, 3);
  }
  s->pq->clear(res);
  return found ? 0 : REEL_ENOTFOUND;
}

static int p_put_idempotency(reel_store *base, const reel_idempotency *rec, int64_t now_ms, int *stored) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[7] = {rec->client, rec->key, rec->body_sha256, rec->job_id, num(&n, rec->created_ms),
                      num(&n, rec->expires_ms), num(&n, now_ms)};
  PGresult *res = run(s, STMT_IDEM_PUT, 7, v);
  if (!res || s->pq->resultStatus(res) != PGRES_COMMAND_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  *stored = atoi(s->pq->cmdTuples(res)) > 0;
  s->pq->clear(res);
  return 0;
}

static int p_delete_expired_idempotency(reel_store *base, int64_t now_ms, int limit, int *deleted) {
  pg_store *s = (pg_store *)base;
  numbers n = {0};
  const char *v[2] = {num(&n, now_ms), num(&n, limit)};
  PGresult *res = run(s, STMT_IDEM_EXPIRED, 2, v);
  if (!res || s->pq->resultStatus(res) != PGRES_COMMAND_OK) {
    note_failure(s, res);
    s->pq->clear(res);
    return REEL_ESTORE;
  }
  *deleted = atoi(s->pq->cmdTuples(res));
  s->pq->clear(res);
  return 0;
}

/* ---- wake-ups, health ---- */

static int p_notify(reel_store *base, const char *channel, const char *payload) {
  pg_store *s = (pg_store *)base;
  for (int i = 0; i < s->n_notify; i++) /* PostgreSQL folds duplicates anyway: send each once */
    if (strcmp(s->notify[i].channel, channel) == 0 && strcmp(s->notify[i].payload, payload) == 0) return 0;
  if (s->n_notify == MAX_NOTIFY || strlen(channel) >= sizeof s->notify[0].channel ||
      strlen(payload) >= sizeof s->notify[0].payload) {
    s->notify_overflow = 1;
    return 0;
  }
  snprintf(s->notify[s->n_notify].channel, sizeof s->notify[0].channel, "%s", channel);
  snprintf(s->notify[s->n_notify].payload, sizeof s->notify[0].payload, "%s", payload);
  s->n_notify++;
  return 0;
}

static int p_ping(reel_store *base) { return run_command((pg_store *)base, STMT_PING, 0, NULL); }

static int p_probe(reel_store *base, int64_t now_ms) {
  numbers n = {0};
  const char *v[1] = {num(&n, now_ms)};
  return run_command((pg_store *)base, STMT_PROBE, 1, v);
}

static reel_store_fault p_last_fault(reel_store *base, char *msg, size_t msglen) {
  pg_store *s = (pg_store *)base;
  snprintf(msg, msglen, "%s", s->fault_msg[0] ? s->fault_msg : "store error");
  return s->fault;
}

static void p_close(reel_store *base) {
  pg_store *s = (pg_store *)base;
  drop_events(s, 0);
  free(s->events);
  if (s->conn) s->pq->finish(s->conn);
  free(s);
}

static const reel_store_ops pg_ops = {
    .name = "postgres",
    .exclusive = 0,
    .begin = p_begin,
    .commit = p_commit,
    .rollback = p_rollback,
    .savepoint = p_savepoint,
    .release_savepoint = p_release,
    .rollback_savepoint = p_rollback_to,
    .clock_ms = p_clock_ms,
    .insert_job = p_insert_job,
    .insert_jobs = p_insert_jobs,
    .get_job = p_get_job,
    .read_job = p_read_job,
    .write_job = p_write_job,
    .list_jobs = p_list_jobs,
    .count_by_status = p_count_by_status,
    .count_queued = p_count_queued,
    .next_runnable = p_next_runnable,
    .renew_lease = p_renew_lease,
    .expired_leases = p_expired_leases,
    .delete_finished = p_delete_finished,
    .insert_delivery = p_insert_delivery,
    .claim_deliveries = p_claim_deliveries,
    .read_delivery_payload = p_read_delivery_payload,
    .finish_delivery = p_finish_delivery,
    .list_deliveries = p_list_deliveries,
    .release_delivery_leases = p_release_delivery_leases,
    .disable_endpoint = p_disable_endpoint,
    .endpoint_disabled = p_endpoint_disabled,
    .get_idempotency = p_get_idempotency,
    .put_idempotency = p_put_idempotency,
    .delete_expired_idempotency = p_delete_expired_idempotency,
    .append_event = p_append_event,
    .read_events = p_read_events,
    .last_event_id = p_last_event_id,
    .append_log = p_append_log,
    .tail_logs = p_tail_logs,
    .notify = p_notify,
    .ping = p_ping,
    .probe = p_probe,
    .verify = NULL,
    .last_fault = p_last_fault,
    .close = p_close,
};

/* ---- migrations ---- */

static int schema_version(pg_store *s, int *version) {
  PGresult *res = s->pq->exec(s->conn, "SELECT COALESCE(MAX(version), 0) FROM reel_schema_version");
  int ok = res && s->pq->resultStatus(res) == PGRES_TUPLES_OK && s->pq->ntuples(res) == 1;
  if (ok) *version = (int)get_int(s, res, 0, 0);
  else note_failure(s, res);
  s->pq->clear(res);
  return ok ? 0 : REEL_ESTORE;
}

/* Brings the schema up to date (when allowed) under the migration lock. */
static int migrate(pg_store *s, int apply, const char *node, char *err, size_t errlen) {
  PGresult *res = s->pq->exec(s->conn, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")");
  int locked = res && s->pq->resultStatus(res) == PGRES_TUPLES_OK;
  if (!locked) note_failure(s, res);
  s->pq->clear(res);
  if (!locked) goto fail;
  if (simple(s, "CREATE TABLE IF NOT EXISTS reel_schema_version (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_by TEXT NOT NULL DEFAULT '')") != 0) {
    res = s->pq->exec(s->conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")");
    s->pq->clear(res);
    goto fail;
  }
  int version = 0, rc = schema_version(s, &version);
  if (rc == 0 && version > N_MIGRATIONS) {
    snprintf(err, errlen, "the database schema is at version %d, newer than this reeld knows (%d): upgrade reeld",
             version, N_MIGRATIONS);
    rc = REEL_ECONFIG;
  } else if (rc == 0 && version < N_MIGRATIONS && !apply) {
    snprintf(err, errlen, "the database schema is at version %d, older than this reeld needs (%d): run reeld migrate",
             version, N_MIGRATIONS);
    rc = REEL_ECONFIG;
  }
  for (int v = version; rc == 0 && v < N_MIGRATIONS; v++) {
    char record[160];
    snprintf(record, sizeof record, "INSERT INTO reel_schema_version (version, applied_by) VALUES (%d, $$%.60s$$)", v + 1,
             strstr(node, "$$") ? "?" : node);
    if (simple(s, "BEGIN") != 0 || simple(s, migrations[v]) != 0 || simple(s, record) != 0 || simple(s, "COMMIT") != 0) {
      snprintf(err, errlen, "database migration %d failed: %s", v + 1, s->fault_msg);
      p_rollback(&s->base);
      rc = REEL_ESTORE;
      break;
    }
    reel_log(REEL_LOG_INFO, "applied database migration", "{s:i, s:i}", "version", v + 1, "of", N_MIGRATIONS);
  }
  res = s->pq->exec(s->conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")");
  s->pq->clear(res);
  return rc;
fail:
  snprintf(err, errlen, "cannot check the database schema: %s", s->fault_msg);
  return REEL_ESTORE;
}

int reel_store_open_postgres(const reel_store_pg_settings *settings, reel_store **out, char *err, size_t errlen) {
  const reel_pq_api *pq = reel_pq_load(err, errlen);
  if (!pq) return REEL_EUNSUPPORTED;
  pg_store *s = calloc(1, sizeof *s);
  if (!s) return REEL_ENOMEM;
  s->base.ops = &pg_ops;
  s->pq = pq;
  s->conn = reel_pq_connect(pq, settings->url, settings->password, settings->application_name);
  if (!s->conn || pq->status(s->conn) != CONNECTION_OK) {
    const char *why = s->conn ? pq->errorMessage(s->conn) : "out of memory";
    snprintf(err, errlen, "cannot connect to PostgreSQL (service.database.url): %.*s", (int)strcspn(why, "\n"), why);
    p_close(&s->base);
    return REEL_ESTORE;
  }
  int rc = migrate(s, settings->migrate, settings->application_name ? settings->application_name : "", err, errlen);
  if (rc != 0) {
    p_close(&s->base);
    return rc;
  }
  if (ensure_session(s) != 0) { /* the statements name the tables: prepared once they exist */
    snprintf(err, errlen, "cannot prepare the job store's statements: %s", s->fault_msg);
    p_close(&s->base);
    return REEL_ESTORE;
  }
  *out = &s->base;
  return 0;
}

char *reel_store_pg_url_password(const char *url) {
  if (!url) return NULL;
  char err[8];
  const reel_pq_api *pq = reel_pq_load(err, sizeof err);
  if (!pq) return NULL;
  char *parse_error = NULL;
  PQconninfoOption *options = pq->conninfoParse(url, &parse_error);
  if (parse_error) pq->freemem(parse_error);
  char *password = NULL;
  for (PQconninfoOption *o = options; o && o->keyword; o++)
    if (strcmp(o->keyword, "password") == 0 && o->val && *o->val) password = strdup(o->val);
  if (options) pq->conninfoFree(options);
  return password;
}
