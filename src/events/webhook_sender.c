/* The webhook sender (see webhook_sender.h): a queue, worker threads doing
 * one blocking request each, and a uv_async that hands results back. */
#include "events/webhook_sender.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "storage/http_client.h"

typedef struct job job;
struct job {
  job *next;
  char *url, *body;
  size_t body_len;
  char *headers[REEL_WEBHOOK_MAX_HEADERS];
  int n_headers;
  long connect_timeout_ms, timeout_ms;
  void (*done)(void *data, const reel_webhook_result *r);
  void *data;
  reel_webhook_result result;
};

struct reel_webhook_sender {
  uv_loop_t *loop;
  uv_async_t async;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  job *queue, *queue_tail; /* waiting for a thread */
  job *finished;           /* results for the loop thread */
  _Atomic int stopping;
  int n_threads;
  pthread_t *threads;
};

static void job_free(job *j) {
  free(j->url);
  free(j->body);
  for (int i = 0; i < j->n_headers; i++) free(j->headers[i]);
  free(j);
}

long reel_webhook_parse_retry_after(const char *value, long long now_s) {
  while (*value == ' ') value++;
  if (*value >= '0' && *value <= '9') {
    char *end;
    long long v = strtoll(value, &end, 10);
    while (*end == ' ') end++;
    if (*end) return -1;
    return v > 31536000 ? 31536000 : (long)v;
  }
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end) return -1;
  long long at = (long long)timegm(&tm);
  return at > now_s ? (long)(at - now_s > 31536000 ? 31536000 : at - now_s) : 0;
}

static void perform(reel_webhook_sender *s, job *j) {
  reel_http_client_request req = {.method = "POST", .url = j->url, .body = j->body, .body_len = j->body_len,
                                  .timeout_ms = j->timeout_ms, .connect_timeout_ms = j->connect_timeout_ms,
                                  .abort = &s->stopping};
  for (int i = 0; i < j->n_headers && i < REEL_HTTP_CLIENT_MAX_HEADERS; i++) req.headers[req.n_headers++] = j->headers[i];
  reel_http_client_response resp;
  char err[256] = "";
  int rc = reel_http_client_perform(&req, &resp, err, sizeof err);
  if (rc == 0) {
    j->result.status = resp.status;
    if (resp.retry_after[0]) {
      long v = reel_webhook_parse_retry_after(resp.retry_after, (long long)time(NULL));
      j->result.retry_after_seconds = v > 0 ? v : 0;
    }
  } else {
    snprintf(j->result.error, sizeof j->result.error, "%s", err[0] ? err : reel_strerror(rc));
  }
  if (atomic_load(&s->stopping)) j->result.stopped = 1;
  reel_http_client_response_free(&resp);
}

static void *worker(void *arg) {
  reel_webhook_sender *s = arg;
  pthread_mutex_lock(&s->lock);
  for (;;) {
    while (!s->queue && !atomic_load(&s->stopping)) pthread_cond_wait(&s->wake, &s->lock);
    if (!s->queue) break; /* stopping and nothing queued */
    job *j = s->queue;
    s->queue = j->next;
    if (!s->queue) s->queue_tail = NULL;
    pthread_mutex_unlock(&s->lock);
    if (atomic_load(&s->stopping)) j->result.stopped = 1;
    else perform(s, j);
    pthread_mutex_lock(&s->lock);
    j->next = s->finished;
    s->finished = j;
    uv_async_send(&s->async);
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

/* Loop thread: the results in the order they finished. */
static void deliver_results(reel_webhook_sender *s) {
  pthread_mutex_lock(&s->lock);
  job *list = s->finished;
  s->finished = NULL;
  pthread_mutex_unlock(&s->lock);
  job *ordered = NULL; /* reverse: oldest first */
  while (list) {
    job *next = list->next;
    list->next = ordered;
    ordered = list;
    list = next;
  }
  while (ordered) {
    job *j = ordered;
    ordered = j->next;
    j->done(j->data, &j->result);
    job_free(j);
  }
}

static void on_async(uv_async_t *a) { deliver_results(a->data); }

int reel_webhook_sender_start(reel_webhook_sender **out, uv_loop_t *loop, int concurrency, char *err, size_t errlen) {
  *out = NULL;
  int rc = reel_http_client_global_init(err, errlen);
  if (rc) return rc;
  reel_webhook_sender *s = calloc(1, sizeof *s);
  if (!s || !(s->threads = calloc((size_t)concurrency, sizeof *s->threads))) {
    free(s);
    snprintf(err, errlen, "out of memory");
    return REEL_ENOMEM;
  }
  s->loop = loop;
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->wake, NULL);
  uv_async_init(loop, &s->async, on_async);
  s->async.data = s;
  for (int i = 0; i < concurrency; i++) {
    if (pthread_create(&s->threads[i], NULL, worker, s) != 0) break;
    s->n_threads++;
  }
  if (s->n_threads == 0) {
    snprintf(err, errlen, "cannot start webhook sender threads");
    reel_webhook_sender_stop(s);
    return REEL_EIO;
  }
  *out = s;
  return 0;
}

int reel_webhook_sender_submit(reel_webhook_sender *s, const reel_webhook_request *req,
                               void (*done)(void *data, const reel_webhook_result *r), void *data) {
  if (atomic_load(&s->stopping)) return REEL_ECLOSED;
  job *j = calloc(1, sizeof *j);
  if (!j) return REEL_ENOMEM;
  j->url = strdup(req->url);
  j->body = malloc(req->body_len + 1);
  int ok = j->url && j->body;
  if (j->body) {
    memcpy(j->body, req->body, req->body_len);
    j->body[req->body_len] = '\0';
  }
  j->body_len = req->body_len;
  for (int i = 0; ok && i < req->n_headers && i < REEL_WEBHOOK_MAX_HEADERS; i++) {
    if (!(j->headers[i] = strdup(req->headers[i]))) ok = 0;
    else j->n_headers++;
  }
  if (!ok) {
    job_free(j);
    return REEL_ENOMEM;
  }
  j->connect_timeout_ms = req->connect_timeout_ms;
  j->timeout_ms = req->timeout_ms;
  j->done = done;
  j->data = data;
  pthread_mutex_lock(&s->lock);
  if (s->queue_tail) s->queue_tail->next = j;
  else s->queue = j;
  s->queue_tail = j;
  pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->lock);
  return 0;
}

static void on_async_closed(uv_handle_t *h) { free(h->data); }

void reel_webhook_sender_stop(reel_webhook_sender *s) {
  if (!s) return;
  pthread_mutex_lock(&s->lock);
  atomic_store(&s->stopping, 1);
  pthread_cond_broadcast(&s->wake);
  pthread_mutex_unlock(&s->lock);
  for (int i = 0; i < s->n_threads; i++) pthread_join(s->threads[i], NULL);
  deliver_results(s); /* every request reports once, as stopped */
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->wake);
  free(s->threads);
  uv_close((uv_handle_t *)&s->async, on_async_closed);
}
