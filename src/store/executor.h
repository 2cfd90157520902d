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

struct reel_store_call {
  /* Runs on the store thread inside the batch transaction; returns 0 or a
   * reel error (a negative result rolls back only this call). */
  int (*run)(reel_store *store, reel_store_call *call);
  /* Runs on the loop thread after the batch committed (or failed, in which
   * case result is REEL_ESTORE). */
  void (*done)(reel_store_call *call, int result);
  int result;
  reel_store_call *next; /* internal */
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
  /* statistics, read on the loop thread */
  unsigned long long batches, calls, commit_failures;
  /* Called on the store thread after a failed commit (so caches above can be rebuilt). */
  void (*on_commit_failure)(void *data);
  void *on_commit_failure_data;
} reel_store_executor;

/* Starts the store thread. Its async handle keeps the loop alive until stopped. */
int reel_store_executor_start(reel_store_executor *ex, uv_loop_t *loop, reel_store *store);
/* Queues a call (caller allocates it and keeps it alive until done runs).
 * Thread-safe; done always runs exactly once, on the loop thread. */
void reel_store_executor_submit(reel_store_executor *ex, reel_store_call *call);
/* Runs every queued call, stops the thread and closes the async handle
 * (two-phase: the loop must run once more to finish closing). */
void reel_store_executor_stop(reel_store_executor *ex);

#endif
