/* Live job events for clients (SPEC section 8): GET /v1/jobs/{id}/events and
 * GET /v1/events as server-sent events. The hub reads committed events from
 * the store (jobs.h's EVENTS) whenever it is woken — by this process's own
 * commits (reel_jobs_listener.events) and, with PostgreSQL, by the
 * reel_events NOTIFY of any node — and writes each to the subscribers it
 * matches. A subscriber first replays from the store after its
 * Last-Event-ID (a job's stream: from its first event), then follows live
 * with no gap and no duplicate: every event goes out at most once per
 * subscriber, in id order. A per-job stream ends after the job's terminal
 * event; /v1/events does not end.
 *
 * Bounds: at most max_streams subscribers in all (503 beyond) and
 * max_streams_per_client per client (429 beyond); each subscriber's unsent
 * bytes are capped (http/body_stream.h). A client that reads slowly is
 * paced, not dropped: once half its buffer waits it leaves the live
 * fan-out, keeps its cursor, and when the buffer drains it catches up from
 * the store a page at a time, then rejoins. A client that stops reading is
 * cut off once it has not drained for 4 keep-alive periods (at least 4 s),
 * and resumes with Last-Event-ID, losing nothing. A ": keep-alive" comment
 * goes to every subscriber that is not behind every keepalive_ms. Loop
 * thread only. */
#ifndef REEL_EVENTS_HUB_H
#define REEL_EVENTS_HUB_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/request.h"
#include "jobs/jobs.h"

/* The event types (SPEC section 8), as bits for a types= filter. */
#define REEL_EVENT_TYPE_MAP(XX)       \
  XX(CREATED, "job.created")         \
  XX(STARTED, "job.started")         \
  XX(PROGRESS, "job.progress")       \
  XX(LOG, "job.log")                 \
  XX(RETRYING, "job.retrying")       \
  XX(FINISHED, "job.finished")       \
  XX(FAILED, "job.failed")           \
  XX(CANCELED, "job.canceled")

enum {
#define REEL_EVENT_BIT_(name, text) REEL_EVENT_BIT_##name,
  REEL_EVENT_TYPE_MAP(REEL_EVENT_BIT_)
#undef REEL_EVENT_BIT_
  REEL_EVENT_TYPE_COUNT
};
#define REEL_EVENT_TYPES_ALL ((1u << REEL_EVENT_TYPE_COUNT) - 1)

/* The bit of an event type name, or 0 when unknown. */
unsigned reel_event_type_bit(const char *type);
/* Parses a types= value ("job.finished,job.failed"). Returns the mask, or 0
 * when a name is unknown (then *bad points at it, its length in *bad_len). */
unsigned reel_event_types_parse(const char *list, const char **bad, size_t *bad_len);
/* Whether an event type ends its job (finished, failed, canceled). */
int reel_event_type_terminal(const char *type);

typedef struct reel_event_sub reel_event_sub;

typedef struct {
  int max_streams;            /* subscribers at once, in all */
  int max_streams_per_client;
  size_t max_buffered_bytes;  /* unsent bytes per subscriber before it is cut off */
  uint64_t keepalive_ms;      /* ": keep-alive" comments this often */
  uint64_t retry_ms;          /* the "retry:" field clients reconnect after */
} reel_event_hub_config;

typedef struct {
  uv_loop_t *loop;
  reel_jobs *jobs;
  reel_event_hub_config cfg;
  reel_event_sub *subs;       /* doubly linked */
  int n_subs;
  int64_t last_id;            /* every event up to this has been handed to the live subscribers */
  int started;                /* last_id is known */
  int reading, read_again, closing;
  reel_job_op read_op;
  uv_timer_t keepalive;
  uv_timer_t resume_timer;    /* drained subscribers replay on its tick */
  /* counters for /metrics */
  unsigned long long delivered, cut_off;
} reel_event_hub;

/* Prepares the hub and learns the newest event id from the store. */
int reel_event_hub_init(reel_event_hub *hub, uv_loop_t *loop, reel_jobs *jobs, const reel_event_hub_config *cfg);
/* New events may have been committed (by this process or, with PostgreSQL,
 * any node): read and deliver them. Cheap to call often. */
void reel_event_hub_wake(reel_event_hub *hub);
/* Answers req with an event stream: job_id's events (NULL: every job's),
 * those with an id above after (-1: a job's from its first, every job's
 * from now), of the types in mask. client names who asks, for the per-client
 * limit. Answers 404 for an unknown job, 429/503 over the limits. */
void reel_event_hub_serve(reel_event_hub *hub, reel_http_request *req, const char *job_id, int64_t after,
                          unsigned types, const char *client);
/* Ends every stream (normally: clients reconnect elsewhere) and stops the
 * hub; shutdown waits for nothing of it after this. */
void reel_event_hub_close(reel_event_hub *hub);
/* Subscribers now. */
int reel_event_hub_subscribers(const reel_event_hub *hub);

#endif
