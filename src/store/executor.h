/* Runs store calls on one dedicated thread, in batches: every call waiting
 * when the thread wakes joins one transaction and one commit (group commit),
 * so durable job creation costs one fsync per batch, not per request. Results
 * come back on the libuv loop thread. */
#ifndef REEL_STORE_EXECUTOR_H
#define REEL_STORE_EXECUTOR_H

#include <pthread.h>
#include <uv.h>

#include "store/store.h"

typedef struct reel_store_call reel_store_call;

/* The most calls one batch (one transaction) takes. */
#define REEL_STORE_MAX_BATCH 4096

struct reel_store_call {
  /* Runs on the store thread inside the batch transaction; returns 0 or a
   * reel error (a negative result rolls back only this call). */
  int (*run)(reel_store *store, reel_store_call *call);
  /* Runs on the loop thread after the batch committed (or failed, in which
   * case result is REEL_ESTORE). */
  void (*done)(reel_store_call *call, int result);
  /* Optional: runs every call of the batch that has this same run_many as
   * one step (at the place of the first, in batch order, under one
   * savepoint), e.g. many inserts as one statement. Sets each call's result;
   * a negative return fails and rolls back them all. run is not called for
   * them. */
  int (*run_many)(reel_store *store, reel_store_call **calls, int n);
  int result;
  /* Set (before submitting, or by run) when the call changes the store: a
   * batch that commits such a call proves the store can commit again. */
  int writes;
  reel_store_call *next; /* internal */
  int grouped;           /* internal: ran as part of a run_many group */
};

typedef struct {
  reel_store *store;
  uv_loop_t *loop;
  uv_async_t wakeup;       /* store thread -> loop: completions ready */
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  reel_store_call *pending_head, *pending_tail;
  reel_store_call *done_head, *done_tail;
  int stopping;
  int started;
  reel_store_call *group[REEL_STORE_MAX_BATCH]; /* store thread: the calls of one run_many */
  /* statistics, read on the loop thread */
  unsigned long long batches, calls, commit_failures;
  /* health, under lock: whether the store can commit (readiness) */
  reel_store_fault fault;       /* REEL_STORE_FAULT_NONE while writes commit */
  char fault_msg[320];
  int gone;                     /* sticky: the store was removed or replaced; every batch fails */
  unsigned long long failures_in_episode; /* failed batches since the last good write */
  int64_t fault_logged_ms;      /* store thread: when the episode was last logged */
  /* store thread: the number of the batch now running (1, 2, ...), so that
   * calls can share what they read within one transaction */
  unsigned long long batch_number;
} reel_store_executor;

/* Starts the store thread. Its async handle keeps the loop alive until stopped. */
int reel_store_executor_start(reel_store_executor *ex, uv_loop_t *loop, reel_store *store);
/* Queues a call (caller allocates it and keeps it alive until done runs).
 * Thread-safe; done always runs exactly once, on the loop thread. */
void reel_store_executor_submit(reel_store_executor *ex, reel_store_call *call);
/* Whether the store can commit: 0, or REEL_ESTORE with why in msg (the cause
 * named: "disk full ...", "the database file ... was deleted ..."). A failed
 * commit or write makes it fail until a writing call commits again (the
 * periodic probe of jobs.h is one). Thread-safe. */
int reel_store_executor_health(reel_store_executor *ex, char *msg, size_t msglen);
/* Marks the store as gone for good (its data_dir was removed or replaced):
 * from now on every batch fails with REEL_ESTORE without touching the store,
 * and health says msg. Logs msg once. Thread-safe. */
void reel_store_executor_set_gone(reel_store_executor *ex, const char *msg);
/* Runs every queued call, stops the thread and closes the async handle
 * (two-phase: the loop must run once more to finish closing). */
void reel_store_executor_stop(reel_store_executor *ex);

#endif
