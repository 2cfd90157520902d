/* Webhook deliveries (see webhooks.h): claim, sign, send, record. */
#include "events/webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "common/random.h"
#include "events/webhook_sender.h"
#include "events/webhook_sign.h"
#include "metrics/metrics.h"

#define POLL_MS 1000             /* due deliveries are looked for at least this often */
#define LEASE_MARGIN_MS 5000     /* a claim outlives the attempt's timeout by this */
#define MAX_RETRY_AFTER_S 86400  /* a Retry-After further out than this is capped */

typedef struct attempt attempt;

struct reel_webhooks {
  uv_loop_t *loop;
  reel_jobs *jobs;
  const reel_config *cfg;
  char node[64];
  unsigned char keys[REEL_MAX_WEBHOOKS][REEL_WEBHOOK_MAX_KEY]; /* each endpoint's signing key */
  size_t key_len[REEL_MAX_WEBHOOKS];
  reel_webhook_sender *sender;
  uv_timer_t timer;
  reel_job_op claim_op;
  int claiming, claim_again, stopping, timer_closed;
  int in_flight;                /* attempts sent and not yet recorded */
  int64_t timeout_ms;
};

/* One attempt: the claimed delivery, then its result op. */
struct attempt {
  reel_job_op op; /* first: the result op's callback casts back */
  reel_webhooks *w;
  reel_delivery d;
  const reel_webhook_endpoint *endpoint;
  int endpoint_index;
};

/* Frees w once it has stopped and nothing refers to it any more. */
static void maybe_free(reel_webhooks *w) {
  if (w->stopping && w->timer_closed && w->in_flight == 0 && !w->claiming) free(w);
}

static int find_endpoint(const reel_webhooks *w, const char *url) {
  for (int i = 0; i < w->cfg->n_webhooks; i++)
    if (strcmp(w->cfg->webhooks[i].url, url) == 0) return i;
  return -1;
}

/* The endpoint for logs: without a query string or fragment (they may hold credentials). */
static void shown_url(const char *url, char *out, size_t n) {
  snprintf(out, n, "%.*s", (int)strcspn(url, "?#"), url);
}

static void claim(reel_webhooks *w);
static void on_tick(uv_timer_t *t);

static void on_recorded(reel_job_op *op, int result) {
  attempt *a = (attempt *)op;
  reel_webhooks *w = a->w;
  if (result != 0)
    reel_log(REEL_LOG_WARN, "webhook delivery outcome not recorded; it is tried again when its lease passes",
             "{s:s, s:s}", "delivery", a->d.id, "error", reel_strerror(result));
  else if (!op->held)
    reel_log(REEL_LOG_INFO, "webhook delivery outcome dropped: another node holds it now", "{s:s}", "delivery",
             a->d.id);
  free(a->d.payload);
  reel_job_op_cleanup(&a->op);
  free(a);
  w->in_flight--;
  if (!w->stopping) claim(w);
  else maybe_free(w);
}

/* Writes the attempt's outcome (fenced by this node's lease and attempt). */
static void record(attempt *a, int status, int64_t next_ms, int http_status, const char *error, int disable,
                   const char *outcome) {
  reel_webhooks *w = a->w;
  reel_metrics_delivery(outcome);
  reel_delivery *d = &a->d;
  d->status = status;
  d->next_attempt_ms = next_ms;
  d->last_status = http_status;
  snprintf(d->last_error, sizeof d->last_error, "%s", error ? error : "");
  reel_job_op_init(&a->op, REEL_JOB_OP_DELIVERY_RESULT);
  a->op.delivery = *d;
  a->op.delivery.payload = NULL;
  snprintf(a->op.fence.node, sizeof a->op.fence.node, "%s", w->node);
  a->op.disable_endpoint = disable;
  a->op.cb = on_recorded;
  a->op.data = a;
  reel_jobs_run(w->jobs, &a->op);
}

/* When the next attempt is due after a failed attempt number `attempts`,
 * or 0 when the schedule is used up. */
static int64_t next_attempt(const reel_webhook_endpoint *e, int attempts, long retry_after_s) {
  if (attempts >= e->n_retry) return 0;
  double delay = e->retry_schedule[attempts];
  delay *= 0.9 + 0.2 * reel_random_unit(); /* jitter: receivers that came back are not hit all at once */
  if (retry_after_s > MAX_RETRY_AFTER_S) retry_after_s = MAX_RETRY_AFTER_S;
  if (retry_after_s > 0 && delay < (double)retry_after_s) delay = (double)retry_after_s;
  return reel_now_ms() + (int64_t)(delay * 1000);
}

static void on_sent(void *data, const reel_webhook_result *r) {
  attempt *a = data;
  reel_webhooks *w = a->w;
  char url[512], error[256];
  shown_url(a->d.endpoint, url, sizeof url);
  if (w->stopping) { /* its lease lapses: tried again later, by this node after a restart or another */
    free(a->d.payload);
    free(a);
    w->in_flight--;
    maybe_free(w);
    return;
  }
  if (r->status >= 200 && r->status < 300) {
    record(a, REEL_DELIVERY_DELIVERED, 0, (int)r->status, NULL, 0, "delivered");
    return;
  }
  if (r->status == 410) {
    reel_log(REEL_LOG_WARN, "webhook endpoint answered 410 Gone: disabled, no more deliveries to it", "{s:s}",
             "endpoint", url);
    record(a, REEL_DELIVERY_FAILED, 0, 410, "the endpoint answered 410 Gone and is disabled", 1, "disabled");
    return;
  }
  if (r->status > 0) snprintf(error, sizeof error, "HTTP %ld", r->status);
  else snprintf(error, sizeof error, "%s", r->error[0] ? r->error : "no response");
  int64_t next = next_attempt(a->endpoint, a->d.attempts, r->retry_after_seconds);
  reel_log(REEL_LOG_INFO, next ? "webhook delivery failed; retrying" : "webhook delivery failed; giving up",
           "{s:s, s:s, s:i, s:s}", "delivery", a->d.id, "endpoint", url, "attempt", a->d.attempts, "error", error);
  if (next) {
    int64_t wait = next - reel_now_ms();
    if (wait < POLL_MS) /* due before the next poll: look for it then */
      uv_timer_start(&w->timer, on_tick, wait > 0 ? (uint64_t)wait + 5 : 5, POLL_MS);
    record(a, REEL_DELIVERY_PENDING, next, (int)r->status, error, 0, "retry");
  } else {
    record(a, REEL_DELIVERY_FAILED, 0, (int)r->status, error, 0, "failed");
  }
}

/* Signs and sends one claimed delivery. */
static void send_attempt(reel_webhooks *w, attempt *a) {
  char url[512];
  shown_url(a->d.endpoint, url, sizeof url);
  int64_t now_s = reel_now_ms() / 1000;
  char signature[REEL_WEBHOOK_MAX_SIGNATURE], h_id[64 + sizeof a->d.id], h_ts[64], h_sig[32 + sizeof signature];
  size_t body_len = strlen(a->d.payload);
  if (reel_webhook_sign(w->keys[a->endpoint_index], w->key_len[a->endpoint_index], a->d.id, now_s, a->d.payload,
                        body_len, signature, sizeof signature) != 0) {
    record(a, REEL_DELIVERY_FAILED, 0, 0, "cannot sign the delivery", 0, "failed");
    return;
  }
  snprintf(h_id, sizeof h_id, "webhook-id: %s", a->d.id);
  snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %lld", (long long)now_s);
  snprintf(h_sig, sizeof h_sig, "webhook-signature: %s", signature);
  reel_webhook_request req = {
      .url = a->d.endpoint,
      .headers = {"Content-Type: application/json", "User-Agent: reel-webhooks", h_id, h_ts, h_sig},
      .n_headers = 5,
      .body = a->d.payload,
      .body_len = body_len,
      .connect_timeout_ms = w->timeout_ms / 3 > 1000 ? w->timeout_ms / 3 : 1000,
      .timeout_ms = w->timeout_ms,
  };
  if (reel_webhook_sender_submit(w->sender, &req, on_sent, a) != 0) {
    /* not sent: its lease lapses and it is claimed again */
    reel_log(REEL_LOG_WARN, "webhook delivery not sent (sender busy or stopping)", "{s:s, s:s}", "delivery", a->d.id,
             "endpoint", url);
    free(a->d.payload);
    free(a);
    w->in_flight--;
  }
}

static void on_claimed(reel_job_op *op, int result) {
  reel_webhooks *w = op->data;
  w->claiming = 0;
  if (w->stopping) {
    reel_job_op_cleanup(op);
    maybe_free(w);
    return;
  }
  if (result != 0) {
    reel_log(REEL_LOG_WARN, "claiming webhook deliveries failed; retrying", "{s:s}", "error", reel_strerror(result));
    reel_job_op_cleanup(op);
    return;
  }
  int got = op->n_deliveries;
  for (int i = 0; i < op->n_deliveries; i++) {
    reel_delivery *d = &op->deliveries[i];
    attempt *a = calloc(1, sizeof *a);
    if (!a) break; /* its lease lapses: claimed again */
    a->w = w;
    a->d = *d;
    d->payload = NULL; /* moved */
    w->in_flight++;
    a->endpoint_index = find_endpoint(w, a->d.endpoint);
    if (a->endpoint_index < 0) {
      record(a, REEL_DELIVERY_FAILED, 0, 0, "the endpoint is no longer in service.webhooks", 0, "failed");
      continue;
    }
    a->endpoint = &w->cfg->webhooks[a->endpoint_index];
    if (d->endpoint_disabled_ms > 0) {
      record(a, REEL_DELIVERY_FAILED, 0, 0, "the endpoint answered 410 Gone earlier and is disabled", 0, "failed");
      continue;
    }
    send_attempt(w, a);
  }
  reel_job_op_cleanup(op);
  /* a full page: more may be due at once */
  if ((got > 0 && w->in_flight < w->cfg->webhook_concurrency) || w->claim_again) claim(w);
}

/* Claims as many due deliveries as there is room for in flight. */
static void claim(reel_webhooks *w) {
  if (w->stopping) return;
  int room = w->cfg->webhook_concurrency - w->in_flight;
  if (room <= 0) return;
  if (w->claiming) {
    w->claim_again = 1;
    return;
  }
  w->claim_again = 0;
  w->claiming = 1;
  reel_job_op_init(&w->claim_op, REEL_JOB_OP_DELIVERIES_CLAIM);
  snprintf(w->claim_op.fence.node, sizeof w->claim_op.fence.node, "%s", w->node);
  w->claim_op.lease_ms = w->timeout_ms + LEASE_MARGIN_MS;
  w->claim_op.limit = room;
  w->claim_op.cb = on_claimed;
  w->claim_op.data = w;
  reel_jobs_run(w->jobs, &w->claim_op);
}

static void on_tick(uv_timer_t *t) { claim(t->data); }

int reel_webhooks_start(reel_webhooks **out, uv_loop_t *loop, reel_jobs *jobs, const reel_config *cfg,
                        const char *node, char *err, size_t errlen) {
  *out = NULL;
  if (cfg->n_webhooks == 0) return 0;
  reel_webhooks *w = calloc(1, sizeof *w);
  if (!w) {
    snprintf(err, errlen, "out of memory");
    return REEL_ENOMEM;
  }
  w->loop = loop;
  w->jobs = jobs;
  w->cfg = cfg;
  snprintf(w->node, sizeof w->node, "%s", node);
  w->timeout_ms = (int64_t)(cfg->webhook_timeout_seconds * 1000);
  for (int i = 0; i < cfg->n_webhooks; i++) {
    char why[160];
    if (reel_webhook_secret_decode(cfg->webhooks[i].secret, w->keys[i], sizeof w->keys[i], &w->key_len[i], why,
                                   sizeof why) != 0) {
      char url[512];
      shown_url(cfg->webhooks[i].url, url, sizeof url);
      snprintf(err, errlen, "service.webhooks[%d] (%s): the secret is not usable: %s", i, url, why);
      free(w);
      return REEL_ECONFIG;
    }
  }
  int rc = reel_webhook_sender_start(&w->sender, loop, cfg->webhook_concurrency, err, errlen);
  if (rc) {
    free(w);
    return rc;
  }
  uv_timer_init(loop, &w->timer);
  w->timer.data = w;
  uv_timer_start(&w->timer, on_tick, 0, POLL_MS);
  *out = w;
  return 0;
}

void reel_webhooks_poke(reel_webhooks *w) {
  if (w) claim(w);
}

static void on_timer_closed(uv_handle_t *h) {
  reel_webhooks *w = h->data;
  w->timer_closed = 1;
  maybe_free(w);
}

void reel_webhooks_stop(reel_webhooks *w) {
  if (!w || w->stopping) return;
  w->stopping = 1;
  uv_close((uv_handle_t *)&w->timer, on_timer_closed);
  reel_webhook_sender_stop(w->sender); /* attempts in flight report once more, while stopping */
  w->sender = NULL;
}
