/* The job store: reel's system of record and its queue. A table of function
 * pointers (like SQLite's VFS or redis's connection types) that each backend
 * fills: SQLite today (sqlite_store.c), PostgreSQL with leased claims next.
 *
 * Every function here is synchronous and runs on the store's own thread
 * (store/executor.h), inside a transaction the executor opens, so backends
 * need no locking of their own. Job-level rules (the transition table, queue
 * depth, retries) live above this in jobs/, not in the backends. */
#ifndef REEL_STORE_H
#define REEL_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "jobs/job.h"

typedef struct reel_store reel_store;

/* The kind of the most recent failure a backend met (readiness and the log
 * name it; "disk full" is the one operators most need to see). */
typedef enum {
  REEL_STORE_FAULT_NONE,
  REEL_STORE_FAULT_FULL,  /* no space left: SQLITE_FULL, ENOSPC, EDQUOT */
  REEL_STORE_FAULT_IO,    /* an I/O error reading, writing or syncing */
  REEL_STORE_FAULT_GONE,  /* the database was deleted or replaced while open */
  REEL_STORE_FAULT_OTHER,
} reel_store_fault;

typedef struct {
  const char *name;
  /* Transactions: the executor wraps each batch in begin/commit and each call
   * of a batch in a savepoint, so one failing call rolls back only itself. */
  int (*begin)(reel_store *s);
  int (*commit)(reel_store *s);
  int (*rollback)(reel_store *s);
  int (*savepoint)(reel_store *s);
  int (*release_savepoint)(reel_store *s);
  int (*rollback_savepoint)(reel_store *s);

  /* Inserts a new job (id, prompt, status, created_ms set by the caller);
   * sets job->seq. REEL_ECONFLICT if the id exists. */
  int (*insert_job)(reel_store *s, reel_job *job);
  /* Reads the job with this id into *out (locked for update where the backend
   * supports it). REEL_ENOTFOUND if none. */
  int (*get_job)(reel_store *s, const char *id, reel_job *out);
  /* Writes every mutable field of job (matched by id). REEL_ENOTFOUND if none. */
  int (*update_job)(reel_store *s, const reel_job *job);
  /* Lists up to limit jobs newest first with seq < before_seq (0: from the
   * newest), only of status (or any if status < 0). Fills out[0..*count). */
  int (*list_jobs)(reel_store *s, int status, int64_t before_seq, int limit, reel_job *out, int *count);
  /* Counts jobs in each status. */
  int (*count_by_status)(reel_store *s, int64_t counts[REEL_JOB_STATUS_COUNT]);
  /* Reads the oldest queued job with run_after_ms <= now_ms (skipping rows
   * other workers hold, where the backend has several). REEL_ENOTFOUND if none. */
  int (*next_runnable)(reel_store *s, int64_t now_ms, reel_job *out);
  /* Appends one line to a job's log, dropping the oldest beyond max_lines. */
  int (*append_log)(reel_store *s, const char *job_id, const char *line, size_t max_lines);
  /* Appends the last n lines of a job's log (oldest first) to the JSON array. */
  int (*tail_logs)(reel_store *s, const char *job_id, int n, json_t *lines);
  /* Cheap round trip proving the store answers (readiness). */
  int (*ping)(reel_store *s);
  /* A small write (one row rewritten with now_ms) whose commit proves the
   * store can still commit: the periodic readiness probe. */
  int (*probe)(reel_store *s, int64_t now_ms);
  /* Checks that the store is still the one that was opened: for SQLite, the
   * database file was not deleted (no links left) or replaced (its path names
   * another file) since. 0, or REEL_ESTORE with the reason in msg. Cheap (a
   * stat and an fstat): the executor runs it before every batch, so nothing
   * is ever committed into a deleted file. Backends without local files
   * return 0. */
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

/* Opens the SQLite store at path (created with its directory's permissions if
 * missing), in WAL mode, migrated to the current schema. On failure returns a
 * reel error and writes a message into err. */
int reel_store_open_sqlite(const char *path, reel_store **out, char *err, size_t errlen);

#endif
