/* The job store: reel's system of record and its queue. A table of function
 * pointers (like SQLite's VFS or redis's connection types) that each backend
 * fills: SQLite (sqlite_store.c), the embedded default for one process, and
 * PostgreSQL (pg_store.c), shared by the API and worker nodes of a cluster.
 * Callers go through the reel_store_* wrappers below, never through ops.
 *
 * Every function here is synchronous and runs on the store's own thread
 * (store/executor.h), inside a transaction the executor opens, so backends
 * need no locking of their own. Job-level rules (the transition table, queue
 * depth, retries, fencing) live above this in jobs/, not in the backends.
 *
 * No write is blind: write_job only lands on the row as it was read
 * (version), and lease renewal only on a job still held by that node and
 * attempt, so a node that lost a job cannot overwrite what another did. */
#ifndef REEL_STORE_H
#define REEL_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/job.h"

typedef struct reel_store reel_store;

/* The kind of the most recent failure a backend met (readiness and the log
 * name it; "disk full" is the one operators most need to see). */
typedef enum {
  REEL_STORE_FAULT_NONE,
  REEL_STORE_FAULT_FULL,  /* no space left: SQLITE_FULL, ENOSPC, EDQUOT */
  REEL_STORE_FAULT_IO,    /* an I/O error reading, writing or syncing */
  REEL_STORE_FAULT_GONE,  /* the database was deleted or replaced while open */
  REEL_STORE_FAULT_DOWN,  /* the database server cannot be reached (PostgreSQL) */
  REEL_STORE_FAULT_OTHER,
} reel_store_fault;

/* Who holds a running job: the node that claimed it and the attempt number
 * its claim started. Every write for a run carries it. */
typedef struct {
  char node[64];
  int attempt;
} reel_fence;

/* Wake-up channels (PostgreSQL NOTIFY; no-ops where one process is alone). */
#define REEL_STORE_CHANNEL_JOBS "reel_jobs"     /* a job became claimable: payload "" */
#define REEL_STORE_CHANNEL_CANCEL "reel_cancel" /* a running job must stop: payload its id */
#define REEL_STORE_CHANNEL_EVENTS "reel_events" /* events were committed: payload "" */

/* One event of a job (SPEC section 8): what changed, in the order the store
 * committed it. Ids increase across the whole store in commit order, so a
 * reader that has seen id N has seen every event below it. */
typedef struct {
  int64_t id;
  char job_id[32];
  char client[64];    /* the job's client: who may see the event besides admins */
  char type[24];      /* "job.created", "job.progress", ... */
  int64_t created_ms;
  char *data;         /* JSON text (heap) */
} reel_event;

/* An Idempotency-Key a client sent with a creating POST (SPEC section 8):
 * which request body it came with and the job that request created. */
typedef struct {
  char client[80];      /* who sent it: keys are per client */
  char key[256];        /* 1-255 printable ASCII */
  char body_sha256[65]; /* hex SHA-256 of the request body */
  char job_id[32];
  int64_t created_ms;   /* the job's creation time (its 202 is rebuilt from id and this) */
  int64_t expires_ms;
} reel_idempotency;

/* One webhook delivery: an event for one endpoint (SPEC section 8), from
 * the outbox row committed with the event to its last attempt. */
enum { REEL_DELIVERY_PENDING = 0, REEL_DELIVERY_DELIVERED = 1, REEL_DELIVERY_FAILED = 2 };
typedef struct {
  char id[40];              /* "msg_..." : the webhook-id, the same on every attempt */
  int64_t seq;              /* store order */
  char endpoint[512];       /* the endpoint's url */
  char event_type[24];
  char job_id[32];
  char *payload;            /* the request body (heap; NULL when not read) */
  int status;               /* REEL_DELIVERY_* */
  int attempts;             /* attempts started (claims) */
  int64_t next_attempt_ms;  /* pending: not before this */
  int64_t created_ms, updated_ms;
  int last_status;          /* HTTP status of the latest attempt, 0 when none answered */
  char last_error[256];
  char lease_node[64];      /* the node sending it now, while lease_expires_ms is ahead */
  int64_t lease_expires_ms;
  int64_t endpoint_disabled_ms; /* claims: when its endpoint was disabled (410), 0 if it is not */
} reel_delivery;

typedef struct {
  const char *name;
  /* Whether this store is used by this process alone (SQLite: data_dir is
   * locked), so that every running job in it belongs to a run of this
   * process or of a dead predecessor. */
  int exclusive;
  /* Transactions: the executor wraps each batch in begin/commit and each call
   * of a batch in a savepoint, so one failing call rolls back only itself. */
  int (*begin)(reel_store *s);
  int (*commit)(reel_store *s);
  int (*rollback)(reel_store *s);
  int (*savepoint)(reel_store *s);
  int (*release_savepoint)(reel_store *s);
  int (*rollback_savepoint)(reel_store *s);
  /* The clock leases are measured by, in ms since the epoch: the database
   * server's for PostgreSQL (so nodes' clocks need not agree), this
   * machine's for SQLite. 0 on failure. */
  int64_t (*clock_ms)(reel_store *s);

  /* Inserts a new job (id, prompt, status, priority, created_ms set by the
   * caller); sets job->seq and job->version. REEL_ECONFLICT if the id exists. */
  int (*insert_job)(reel_store *s, reel_job *job);
  /* Inserts n new jobs as insert_job does, as one statement where the
   * backend can; all or none. Optional (then insert_job n times). */
  int (*insert_jobs)(reel_store *s, reel_job *const *jobs, int n);
  /* Reads the job with this id into *out (locked for update where the backend
   * supports it). REEL_ENOTFOUND if none. */
  int (*get_job)(reel_store *s, const char *id, reel_job *out);
  /* Reads the job with this id into *out without locking it (a read that
   * never waits for another node's transaction). REEL_ENOTFOUND if none.
   * Optional (then get_job). */
  int (*read_job)(reel_store *s, const char *id, reel_job *out);
  /* Writes every mutable field of job, only if the stored row is still at
   * job->version (the version it was read at), and advances job->version.
   * REEL_ESTALE if the row changed since it was read, REEL_ENOTFOUND if it
   * is gone. */
  int (*write_job)(reel_store *s, reel_job *job);
  /* Lists up to limit jobs newest first with seq < before_seq (0: from the
   * newest), only of status (or any if status < 0). Fills out[0..*count). */
  int (*list_jobs)(reel_store *s, int status, int64_t before_seq, int limit, reel_job *out, int *count);
  /* Counts jobs in each status. */
  int (*count_by_status)(reel_store *s, int64_t counts[REEL_JOB_STATUS_COUNT]);
  /* Counts queued jobs, stopping at limit (so the cost is bounded). */
  int (*count_queued)(reel_store *s, int64_t limit, int64_t *count);
  /* Reads the queued job to run next with run_after_ms <= now_ms: highest
   * priority first, then earliest run_after_ms, then oldest; skipping rows
   * another transaction holds, where the backend has several, and locking the
   * one returned. REEL_ENOTFOUND if none. */
  int (*next_runnable)(reel_store *s, int64_t now_ms, reel_job *out);
  /* Extends the lease of job_id to lease_expires_ms if the job is still
   * running and held by fence. *held is 1 then (and *cancel_requested tells
   * whether a cancel was asked), else 0 and nothing changed. */
  int (*renew_lease)(reel_store *s, const char *job_id, const reel_fence *fence, int64_t lease_expires_ms,
                     int *held, int *cancel_requested);
  /* Reads up to limit running jobs whose lease expired before now_ms
   * (all running jobs if now_ms is INT64_MAX), oldest lease first, skipping
   * and locking like next_runnable. Fills out[0..*count). */
  int (*expired_leases)(reel_store *s, int64_t now_ms, int limit, reel_job *out, int *count);
  /* Deletes up to limit terminal jobs that finished before before_ms, with
   * their logs and events; *deleted says how many. */
  int (*delete_finished)(reel_store *s, int64_t before_ms, int limit, int *deleted);
  /* Records an event in the open transaction (ids are given at commit time
   * where the backend has several writers, so they follow commit order); it
   * is visible to readers once the transaction commits, and gone if the
   * call's savepoint rolls back. */
  int (*append_event)(reel_store *s, const char *job_id, const char *type, int64_t created_ms, const char *data);
  /* Reads up to limit committed events with id > after_id, oldest first: of
   * job_id, or of every job when job_id is NULL. Fills out[0..*count). */
  int (*read_events)(reel_store *s, int64_t after_id, const char *job_id, int limit, reel_event *out, int *count);
  /* The largest event id committed so far (0 before the first), whether or
   * not retention has deleted that event since. */
  int (*last_event_id)(reel_store *s, int64_t *id);
  /* Reads the unexpired (expires_ms > now_ms) key of client into *out.
   * REEL_ENOTFOUND if there is none. */
  int (*get_idempotency)(reel_store *s, const char *client, const char *key, int64_t now_ms, reel_idempotency *out);
  /* Stores rec unless an unexpired record of the same client and key
   * exists (waiting for another node's uncommitted one): *stored says
   * whether it was. An expired record is replaced. */
  int (*put_idempotency)(reel_store *s, const reel_idempotency *rec, int64_t now_ms, int *stored);
  /* Deletes up to limit records that expired by now_ms; *deleted says how many. */
  int (*delete_expired_idempotency)(reel_store *s, int64_t now_ms, int limit, int *deleted);
  /* Adds a pending delivery (d's id, endpoint, event, payload,
   * next_attempt_ms, created_ms); sets d->seq. */
  int (*insert_delivery)(reel_store *s, reel_delivery *d);
  /* Takes up to limit pending deliveries due by now_ms whose lease (if any)
   * has passed, oldest due first, for node until lease_until_ms, counting an
   * attempt each; skips rows another transaction holds. Fills out[0..*count)
   * (without payload: see read_delivery_payload). */
  int (*claim_deliveries)(reel_store *s, const char *node, int64_t now_ms, int64_t lease_until_ms, int limit,
                          reel_delivery *out, int *count);
  /* Reads a delivery's payload into *payload (heap). REEL_ENOTFOUND if gone. */
  int (*read_delivery_payload)(reel_store *s, const char *id, char **payload);
  /* Records the outcome of d's attempt (status, next_attempt_ms,
   * last_status, last_error) and ends the lease, only while node still holds
   * it for that attempt: *held says whether it did. */
  int (*finish_delivery)(reel_store *s, const reel_delivery *d, const char *node, int64_t now_ms, int *held);
  /* Lists up to limit deliveries newest first with seq < before_seq (0: from
   * the newest), without payloads. */
  int (*list_deliveries)(reel_store *s, int64_t before_seq, int limit, reel_delivery *out, int *count);
  /* Ends every delivery lease (the start of a process whose store is its
   * own: whoever held them is gone); *released says how many. */
  int (*release_delivery_leases)(reel_store *s, int *released);
  /* Marks an endpoint disabled (it answered 410 Gone) from now_ms on. */
  int (*disable_endpoint)(reel_store *s, const char *url, int64_t now_ms, const char *reason);
  /* *disabled_ms: when the endpoint was disabled, 0 when it is not. */
  int (*endpoint_disabled)(reel_store *s, const char *url, int64_t *disabled_ms);
  /* Appends one line to a job's log, dropping the oldest beyond max_lines. */
  int (*append_log)(reel_store *s, const char *job_id, const char *line, size_t max_lines);
  /* Appends the last n lines of a job's log (oldest first) to the JSON array. */
  int (*tail_logs)(reel_store *s, const char *job_id, int n, json_t *lines);
  /* Queues a notification on channel, sent to every listening node when the
   * transaction commits (and not at all if it rolls back). Optional. */
  int (*notify)(reel_store *s, const char *channel, const char *payload);
  /* Cheap round trip proving the store answers (readiness). */
  int (*ping)(reel_store *s);
  /* A small write (one row rewritten with now_ms) whose commit proves the
   * store can still commit: the periodic readiness probe. */
  int (*probe)(reel_store *s, int64_t now_ms);
  /* Checks that the store is still the one that was opened: for SQLite, the
   * database file was not deleted (no links left) or replaced (its path names
   * another file) since. 0, or REEL_ESTORE with the reason in msg. Cheap (a
   * stat and an fstat): the executor runs it before every batch, so nothing
   * is ever committed into a deleted file. Optional. */
  int (*verify)(reel_store *s, char *msg, size_t msglen);
  /* Classifies the most recent failure on this connection and writes a one-line
   * description into msg (for SQLite: "disk full (SQLITE_FULL, errno 28 No
   * space left on device): database or disk is full"). Call it right after
   * the failing call, before anything else runs on the connection. */
  reel_store_fault (*last_fault)(reel_store *s, char *msg, size_t msglen);
  /* Closes the backend and frees s. */
  void (*close)(reel_store *s);
} reel_store_ops;

struct reel_store {
  const reel_store_ops *ops;
};

static inline int reel_store_begin(reel_store *s) { return s->ops->begin(s); }
static inline int reel_store_commit(reel_store *s) { return s->ops->commit(s); }
static inline int reel_store_rollback(reel_store *s) { return s->ops->rollback(s); }
static inline int reel_store_savepoint(reel_store *s) { return s->ops->savepoint(s); }
static inline int reel_store_release_savepoint(reel_store *s) { return s->ops->release_savepoint(s); }
static inline int reel_store_rollback_savepoint(reel_store *s) { return s->ops->rollback_savepoint(s); }
static inline int64_t reel_store_clock_ms(reel_store *s) { return s->ops->clock_ms(s); }
static inline int reel_store_exclusive(const reel_store *s) { return s->ops->exclusive; }
static inline const char *reel_store_name(const reel_store *s) { return s->ops->name; }
static inline int reel_store_insert_job(reel_store *s, reel_job *job) { return s->ops->insert_job(s, job); }
static inline int reel_store_insert_jobs(reel_store *s, reel_job *const *jobs, int n) {
  if (s->ops->insert_jobs) return s->ops->insert_jobs(s, jobs, n);
  for (int i = 0; i < n; i++) {
    int rc = s->ops->insert_job(s, jobs[i]);
    if (rc) return rc;
  }
  return 0;
}
static inline int reel_store_get_job(reel_store *s, const char *id, reel_job *out) {
  return s->ops->get_job(s, id, out);
}
static inline int reel_store_read_job(reel_store *s, const char *id, reel_job *out) {
  return s->ops->read_job ? s->ops->read_job(s, id, out) : s->ops->get_job(s, id, out);
}
static inline int reel_store_write_job(reel_store *s, reel_job *job) { return s->ops->write_job(s, job); }
static inline int reel_store_list_jobs(reel_store *s, int status, int64_t before_seq, int limit, reel_job *out,
                                       int *count) {
  return s->ops->list_jobs(s, status, before_seq, limit, out, count);
}
static inline int reel_store_count_by_status(reel_store *s, int64_t counts[REEL_JOB_STATUS_COUNT]) {
  return s->ops->count_by_status(s, counts);
}
static inline int reel_store_count_queued(reel_store *s, int64_t limit, int64_t *count) {
  return s->ops->count_queued(s, limit, count);
}
static inline int reel_store_next_runnable(reel_store *s, int64_t now_ms, reel_job *out) {
  return s->ops->next_runnable(s, now_ms, out);
}
static inline int reel_store_append_event(reel_store *s, const char *job_id, const char *type, int64_t created_ms,
                                          const char *data) {
  return s->ops->append_event(s, job_id, type, created_ms, data);
}
static inline int reel_store_read_events(reel_store *s, int64_t after_id, const char *job_id, int limit,
                                         reel_event *out, int *count) {
  return s->ops->read_events(s, after_id, job_id, limit, out, count);
}
static inline int reel_store_get_idempotency(reel_store *s, const char *client, const char *key, int64_t now_ms,
                                             reel_idempotency *out) {
  return s->ops->get_idempotency(s, client, key, now_ms, out);
}
static inline int reel_store_put_idempotency(reel_store *s, const reel_idempotency *rec, int64_t now_ms,
                                             int *stored) {
  return s->ops->put_idempotency(s, rec, now_ms, stored);
}
static inline int reel_store_delete_expired_idempotency(reel_store *s, int64_t now_ms, int limit, int *deleted) {
  return s->ops->delete_expired_idempotency(s, now_ms, limit, deleted);
}
static inline int reel_store_insert_delivery(reel_store *s, reel_delivery *d) { return s->ops->insert_delivery(s, d); }
static inline int reel_store_claim_deliveries(reel_store *s, const char *node, int64_t now_ms, int64_t lease_until_ms,
                                              int limit, reel_delivery *out, int *count) {
  return s->ops->claim_deliveries(s, node, now_ms, lease_until_ms, limit, out, count);
}
static inline int reel_store_read_delivery_payload(reel_store *s, const char *id, char **payload) {
  return s->ops->read_delivery_payload(s, id, payload);
}
static inline int reel_store_finish_delivery(reel_store *s, const reel_delivery *d, const char *node, int64_t now_ms,
                                             int *held) {
  return s->ops->finish_delivery(s, d, node, now_ms, held);
}
static inline int reel_store_list_deliveries(reel_store *s, int64_t before_seq, int limit, reel_delivery *out,
                                             int *count) {
  return s->ops->list_deliveries(s, before_seq, limit, out, count);
}
static inline int reel_store_release_delivery_leases(reel_store *s, int *released) {
  return s->ops->release_delivery_leases(s, released);
}
static inline int reel_store_disable_endpoint(reel_store *s, const char *url, int64_t now_ms, const char *reason) {
  return s->ops->disable_endpoint(s, url, now_ms, reason);
}
static inline int reel_store_endpoint_disabled(reel_store *s, const char *url, int64_t *disabled_ms) {
  return s->ops->endpoint_disabled(s, url, disabled_ms);
}
static inline int reel_store_last_event_id(reel_store *s, int64_t *id) { return s->ops->last_event_id(s, id); }
/* Frees an event's data and zeroes it. */
static inline void reel_event_clear(reel_event *e) {
  free(e->data);
  memset(e, 0, sizeof *e);
}
static inline int reel_store_renew_lease(reel_store *s, const char *job_id, const reel_fence *fence,
                                         int64_t lease_expires_ms, int *held, int *cancel_requested) {
  return s->ops->renew_lease(s, job_id, fence, lease_expires_ms, held, cancel_requested);
}
static inline int reel_store_expired_leases(reel_store *s, int64_t now_ms, int limit, reel_job *out, int *count) {
  return s->ops->expired_leases(s, now_ms, limit, out, count);
}
static inline int reel_store_delete_finished(reel_store *s, int64_t before_ms, int limit, int *deleted) {
  return s->ops->delete_finished(s, before_ms, limit, deleted);
}
static inline int reel_store_append_log(reel_store *s, const char *job_id, const char *line, size_t max_lines) {
  return s->ops->append_log(s, job_id, line, max_lines);
}
static inline int reel_store_tail_logs(reel_store *s, const char *job_id, int n, json_t *lines) {
  return s->ops->tail_logs(s, job_id, n, lines);
}
static inline int reel_store_notify(reel_store *s, const char *channel, const char *payload) {
  return s->ops->notify ? s->ops->notify(s, channel, payload) : 0;
}
static inline int reel_store_ping(reel_store *s) { return s->ops->ping(s); }
static inline int reel_store_probe(reel_store *s, int64_t now_ms) { return s->ops->probe(s, now_ms); }
static inline int reel_store_verify(reel_store *s, char *msg, size_t msglen) {
  return s->ops->verify ? s->ops->verify(s, msg, msglen) : 0;
}
static inline reel_store_fault reel_store_last_fault(reel_store *s, char *msg, size_t msglen) {
  return s->ops->last_fault(s, msg, msglen);
}
static inline void reel_store_close(reel_store *s) { s->ops->close(s); }

/* Opens the SQLite store at path (created with its directory's permissions if
 * missing), in WAL mode, migrated to the current schema. On failure returns a
 * reel error and writes a message into err. */
int reel_store_open_sqlite(const char *path, reel_store **out, char *err, size_t errlen);

/* How to reach PostgreSQL. */
typedef struct {
  const char *url;          /* a libpq connection URI or key=value string */
  const char *password;     /* or NULL: from the URL, PGPASSWORD or ~/.pgpass */
  const char *application_name; /* shown in pg_stat_activity: the node id */
  int migrate;              /* 1: apply missing migrations (under an advisory lock); 0: only check */
} reel_store_pg_settings;

/* Opens the PostgreSQL store (loading libpq on first use), migrated to the
 * current schema when settings->migrate, and checks that the schema is not
 * newer than this reeld knows. The connection is re-established by itself
 * after it drops. On failure returns a reel error and writes a message into
 * err (never the password). */
int reel_store_open_postgres(const reel_store_pg_settings *settings, reel_store **out, char *err, size_t errlen);
/* The password inside a PostgreSQL connection URL or string, or NULL when it
 * has none (or url is NULL). Heap; the caller frees it. For redaction. */
char *reel_store_pg_url_password(const char *url);

#endif
