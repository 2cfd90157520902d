/* Group commit for the job store. One thread owns the store connection; it
 * drains every waiting call into a single transaction, commits once, and hands
 * the results back to the loop thread through a uv_async_t. */
#include "store/executor.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

#define MAX_BATCH REEL_STORE_MAX_BATCH
/* While the store keeps failing, one log line per this many ms (with a count). */
#define FAULT_LOG_INTERVAL_MS 10000

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

static const char *fault_name(reel_store_fault f) {
  switch (f) {
  case REEL_STORE_FAULT_NONE: return "none";
  case REEL_STORE_FAULT_FULL: return "disk full";
  case REEL_STORE_FAULT_IO: return "I/O error";
  case REEL_STORE_FAULT_GONE: return "database gone";
  case REEL_STORE_FAULT_DOWN: return "database unreachable";
  case REEL_STORE_FAULT_OTHER: break;
  }
  return "store error";
}

/* Store thread: a batch failed with fault (described by msg). Health turns
 * bad; the log names the cause, once per episode and then every
 * FAULT_LOG_INTERVAL_MS with the number of failures. */
static void note_fault(reel_store_executor *ex, reel_store_fault fault, const char *msg) {
  int64_t now = reel_now_ms();
  pthread_mutex_lock(&ex->lock);
  int first = ex->fault == REEL_STORE_FAULT_NONE;
  ex->fault = fault == REEL_STORE_FAULT_NONE ? REEL_STORE_FAULT_OTHER : fault;
  snprintf(ex->fault_msg, sizeof ex->fault_msg, "%s", msg);
  unsigned long long n = ++ex->failures_in_episode;
  pthread_mutex_unlock(&ex->lock);
  if (first || now - ex->fault_logged_ms >= FAULT_LOG_INTERVAL_MS) {
    ex->fault_logged_ms = now;
    reel_log(REEL_LOG_ERROR, first ? "job store cannot commit" : "job store still cannot commit",
             "{s:s, s:s, s:s, s:I}", "store", reel_store_name(ex->store), "cause", fault_name(fault), "error", msg,
             "failures", (json_int_t)n);
  }
}

/* Store thread: a writing batch committed; health is good again. */
static void note_good_write(reel_store_executor *ex) {
  pthread_mutex_lock(&ex->lock);
  int was_bad = ex->fault != REEL_STORE_FAULT_NONE && !ex->gone;
  unsigned long long n = ex->failures_in_episode;
  if (was_bad) {
    ex->fault = REEL_STORE_FAULT_NONE;
    ex->fault_msg[0] = '\0';
    ex->failures_in_episode = 0;
  }
  pthread_mutex_unlock(&ex->lock);
  if (was_bad)
    reel_log(REEL_LOG_INFO, "job store commits again", "{s:s, s:I}", "store", reel_store_name(ex->store), "failures",
             (json_int_t)n);
}

static void fail_batch(reel_store_call *batch) {
  for (reel_store_call *c = batch; c; c = c->next) c->result = REEL_ESTORE;
}

static void run_batch(reel_store_executor *ex, reel_store_call *batch) {
  reel_store *s = ex->store;
  char msg[320];
  pthread_mutex_lock(&ex->lock);
  int gone = ex->gone;
  pthread_mutex_unlock(&ex->lock);
  if (gone) {
    fail_batch(batch);
    return;
  }
  if (reel_store_verify(s, msg, sizeof msg) != 0) {
    reel_store_executor_set_gone(ex, msg);
    fail_batch(batch);
    return;
  }
  reel_store_fault fault = REEL_STORE_FAULT_NONE, call_fault = REEL_STORE_FAULT_NONE;
  char call_msg[320] = "";
  int wrote = 0;
  ex->batch_number++;
  int rc = reel_store_begin(s);
  if (rc == 0) {
    for (reel_store_call *c = batch; c; c = c->next) c->grouped = 0;
    for (reel_store_call *c = batch; c; c = c->next) {
      if (c->grouped) continue;
      if (reel_store_savepoint(s) != 0) {
        c->result = REEL_ESTORE;
        continue;
      }
      int failed;
      if (c->run_many) {
        int n = 0;
        for (reel_store_call *g = c; g; g = g->next)
          if (g->run_many == c->run_many) ex->group[n++] = g, g->grouped = 1;
        int rc_group = c->run_many(s, ex->group, n);
        if (rc_group < 0)
          for (int i = 0; i < n; i++) ex->group[i]->result = rc_group;
        failed = rc_group < 0;
        if (!failed)
          for (int i = 0; i < n; i++)
            if (ex->group[i]->result == 0 && ex->group[i]->writes) wrote = 1;
      } else {
        c->result = c->run(s, c);
        failed = c->result < 0;
        if (!failed && c->writes) wrote = 1;
      }
      if (c->result == REEL_ESTORE && call_fault == REEL_STORE_FAULT_NONE) {
        reel_store_fault f = reel_store_last_fault(s, call_msg, sizeof call_msg);
        if (f == REEL_STORE_FAULT_FULL || f == REEL_STORE_FAULT_IO || f == REEL_STORE_FAULT_GONE ||
            f == REEL_STORE_FAULT_DOWN)
          call_fault = f;
      }
      if (failed) reel_store_rollback_savepoint(s);
      reel_store_release_savepoint(s);
    }
    rc = reel_store_commit(s);
    if (rc != 0) {
      fault = reel_store_last_fault(s, msg, sizeof msg);
      reel_store_rollback(s);
    }
  } else {
    fault = reel_store_last_fault(s, msg, sizeof msg);
  }
  if (rc != 0) {
    ex->commit_failures++;
    fail_batch(batch);
    note_fault(ex, fault, msg);
  } else if (call_fault != REEL_STORE_FAULT_NONE) {
    note_fault(ex, call_fault, call_msg); /* a write failed inside a batch that committed the rest */
  } else if (wrote) {
    note_good_write(ex);
  }
}

int reel_store_executor_health(reel_store_executor *ex, char *msg, size_t msglen) {
  pthread_mutex_lock(&ex->lock);
  int bad = ex->gone || ex->fault != REEL_STORE_FAULT_NONE;
  if (bad) snprintf(msg, msglen, "the job store cannot commit: %s", ex->fault_msg);
  pthread_mutex_unlock(&ex->lock);
  return bad ? REEL_ESTORE : 0;
}

void reel_store_executor_set_gone(reel_store_executor *ex, const char *msg) {
  pthread_mutex_lock(&ex->lock);
  int first = !ex->gone;
  ex->gone = 1;
  ex->fault = REEL_STORE_FAULT_GONE;
  if (first) snprintf(ex->fault_msg, sizeof ex->fault_msg, "%s; refusing all work: restart reeld", msg);
  pthread_mutex_unlock(&ex->lock);
  if (first)
    reel_log(REEL_LOG_ERROR, "job store gone: refusing all work until reeld is restarted", "{s:s, s:s}", "cause",
             "database gone", "error", msg);
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
  ex->fault = REEL_STORE_FAULT_NONE;
  ex->fault_msg[0] = '\0';
  ex->gone = 0;
  ex->failures_in_episode = 0;
  ex->fault_logged_ms = 0;
  ex->batch_number = 0;
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
