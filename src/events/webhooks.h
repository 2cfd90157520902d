/* Webhook deliveries (SPEC section 8): the sending half of the outbox that
 * jobs.c fills in each event's transaction. Every node with webhooks
 * configured runs one: it claims due deliveries under a lease (one node at
 * a time holds each), signs each attempt per Standard Webhooks with the
 * endpoint's whsec_ secret (the same webhook-id on every attempt, a fresh
 * timestamp), sends it off the event loop with bounded concurrency and
 * timeouts (events/webhook_sender.h), and records the outcome: 2xx
 * delivered; 410 Gone disables the endpoint and fails the delivery;
 * anything else is retried after the endpoint's retry_schedule_seconds
 * (with jitter, and no sooner than a Retry-After) until the schedule is
 * used up, then failed. A delivery whose node dies mid-attempt is claimed
 * again when its lease passes, so deliveries survive kill -9 and restarts
 * (at least once). Loop thread only. */
#ifndef REEL_EVENTS_WEBHOOKS_H
#define REEL_EVENTS_WEBHOOKS_H

#include <uv.h>

#include "config/config.h"
#include "jobs/jobs.h"

typedef struct reel_webhooks reel_webhooks;

/* Starts delivering for cfg->webhooks (nothing to do, and 0, without any).
 * node names this process in leases. 0, or a reel error with a message in
 * err (libcurl missing, a bad secret). */
int reel_webhooks_start(reel_webhooks **out, uv_loop_t *loop, reel_jobs *jobs, const reel_config *cfg,
                        const char *node, char *err, size_t errlen);
/* New deliveries may be due (committed here or, with PostgreSQL, elsewhere). */
void reel_webhooks_poke(reel_webhooks *w);
/* Stops claiming, abandons attempts in flight (their leases lapse, so they
 * are tried again, by this node after a restart or by another), and frees
 * w. NULL is fine. */
void reel_webhooks_stop(reel_webhooks *w);

#endif
