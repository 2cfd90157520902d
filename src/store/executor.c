/* Group commit for the job store. One thread owns the store connection; it
 * drains every waiting call into a single transaction, commits once, and hands
 * the results back to the loop thread through a uv_async_t. */
#include "store/executor.h"

#include <stdlib.h>

#include "common/error.h"
#include "common/log.h"

#define MAX_BATCH 4096

static void deliver(uv_async_t *handle) {
  reel_store_executor *ex = handle->data;
  pthread_mutex_lock(&ex->lock);
  reel_store_call *call = ex->done_head;
  ex->done_head = ex->done_tail = NULL;
  pthread_mutex_unlock(&ex->lock);
  while (call) {
    reel_store_call *next = call->next;
    call->next = NULL;
    call->done(call, call->result);
    call = next;
  }
}

static void run_batch(reel_store_executor *ex, reel_store_call *batch) {
  reel_store *s = ex->store;
  int rc = s->ops->begin(s);
  if (rc == 0) {
    for (reel_store_call *c = batch; c; c = c->next) {
      if (s->ops->savepoint(s) != 0) {
        c->result = REEL_ESTORE;
        continue;
      }
      c->result = c->run(s, c);
      if (c->result < 0) s->ops->rollback_savepoint(s);
      s->ops->release_savepoint(s);
    }
    rc = s->ops->commit(s);
    if (rc != 0) s->ops->rollback(s);
  }
  if (rc != 0) {
    ex->commit_failures++;
    reel_log(REEL_LOG_ERROR, "store commit failed", "{s:s, s:s}", "store", s->ops->name, "error",
             reel_strerror(rc));
    for (reel_store_call *c = batch; c; c = c->next) c->result = REEL_ESTORE;
    if (ex->on_commit_failure) ex->on_commit_failure(ex->on_commit_failure_data);
  }
}

static void *thread_main(void *arg) {
  reel_store_executor *ex = arg;
  pthread_mutex_lock(&ex->lock);
  for (;;) {
    while (!ex->pending_head && !ex->stopping) pthread_cond_wait(&ex->cond, &ex->lock);
    if (!ex->pending_head && ex->stopping) break;
    /* take up to MAX_BATCH calls */
    reel_store_call *batch = ex->pending_head, *last = batch;
    int n = 1;
    while (last->next && n < MAX_BATCH) {
      last = last->next;
      n++;
    }
    ex->pending_head = last->next;
    if (!ex->pending_head) ex->pending_tail = NULL;
    last->next = NULL;
    pthread_mutex_unlock(&ex->lock);

    run_batch(ex, batch);

    pthread_mutex_lock(&ex->lock);
    ex->batches++;
    ex->calls += (unsigned long long)n;
    if (ex->done_tail) ex->done_tail->next = batch;
    else ex->done_head = batch;
    ex->done_tail = last;
    uv_async_send(&ex->wakeup);
  }
  pthread_mutex_unlock(&ex->lock);
  return NULL;
}

int reel_store_executor_start(reel_store_executor *ex, uv_loop_t *loop, reel_store *store) {
  ex->store = store;
  ex->loop = loop;
  ex->pending_head = ex->pending_tail = ex->done_head = ex->done_tail = NULL;
  ex->stopping = 0;
  ex->batches = ex->calls = ex->commit_failures = 0;
  if (pthread_mutex_init(&ex->lock, NULL) != 0) return REEL_ENOMEM;
  if (pthread_cond_init(&ex->cond, NULL) != 0) return REEL_ENOMEM;
  if (uv_async_init(loop, &ex->wakeup, deliver) != 0) return REEL_EIO;
  ex->wakeup.data = ex;
  if (pthread_create(&ex->thread, NULL, thread_main, ex) != 0) {
    uv_close((uv_handle_t *)&ex->wakeup, NULL);
    return REEL_EIO;
  }
  ex->started = 1;
  return 0;
}

void reel_store_executor_submit(reel_store_executor *ex, reel_store_call *call) {
  call->next = NULL;
  call->result = 0;
  pthread_mutex_lock(&ex->lock);
  if (ex->pending_tail) ex->pending_tail->next = call;
  else ex->pending_head = call;
  ex->pending_tail = call;
  pthread_cond_signal(&ex->cond);
  pthread_mutex_unlock(&ex->lock);
}

void reel_store_executor_stop(reel_store_executor *ex) {
  if (!ex->started) return;
  pthread_mutex_lock(&ex->lock);
  ex->stopping = 1;
  pthread_cond_signal(&ex->cond);
  pthread_mutex_unlock(&ex->lock);
  pthread_join(ex->thread, NULL);
  deliver(&ex->wakeup);
  uv_close((uv_handle_t *)&ex->wakeup, NULL);
  ex->started = 0;
}
