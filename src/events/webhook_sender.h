/* Sends webhook requests off the event loop: a pool of its own threads
 * (not libuv's, which uploads and readiness checks use), at most
 * `concurrency` requests in flight, each a POST with connect and total
 * timeouts, so a slow or dead receiver holds one slot for at most its
 * timeout and delays no other. Results come back on the loop thread.
 * libcurl is loaded at start (storage/http_client.h). */
#ifndef REEL_EVENTS_WEBHOOK_SENDER_H
#define REEL_EVENTS_WEBHOOK_SENDER_H

#include <stddef.h>
#include <uv.h>

#define REEL_WEBHOOK_MAX_HEADERS 8

typedef struct reel_webhook_sender reel_webhook_sender;

typedef struct {
  const char *url;
  const char *headers[REEL_WEBHOOK_MAX_HEADERS]; /* "Name: value" */
  int n_headers;
  const char *body;
  size_t body_len;
  long connect_timeout_ms, timeout_ms;
} reel_webhook_request;

typedef struct {
  long status;              /* HTTP status, 0 when no response arrived */
  long retry_after_seconds; /* from Retry-After (seconds or an HTTP date), 0 when absent */
  char error[256];          /* why no response arrived: never holds the URL's query string */
  int stopped;              /* the sender stopped before it finished */
} reel_webhook_result;

/* Starts concurrency threads. 0, or a reel error with a message in err. */
int reel_webhook_sender_start(reel_webhook_sender **out, uv_loop_t *loop, int concurrency, char *err, size_t errlen);
/* Queues req (copied) and returns at once; done(data, result) runs on the
 * loop thread exactly once, after it was answered, failed or the sender
 * stopped. REEL_ECLOSED when stopping (done is not called). */
int reel_webhook_sender_submit(reel_webhook_sender *s, const reel_webhook_request *req,
                               void (*done)(void *data, const reel_webhook_result *r), void *data);
/* Aborts what is in flight (within about a second), reports every queued
 * and running request as stopped, joins the threads and frees s. NULL is fine. */
void reel_webhook_sender_stop(reel_webhook_sender *s);
/* Parses a Retry-After value: delta seconds, or an HTTP date (seconds from
 * now_s, at least 0). -1 when it is neither. */
long reel_webhook_parse_retry_after(const char *value, long long now_s);

#endif
