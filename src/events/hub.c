/* Server-sent job events (see hub.h): subscribers replay from the store, then
 * follow the hub, which reads every committed event once and fans it out. */
#include "events/hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "http/body_stream.h"

#define HUB_READ_LIMIT 256   /* events per read of the hub */
#define REPLAY_READ_LIMIT 64 /* events per read of a replaying subscriber (one page waits for its client) */

static const char *const type_names[] = {
#define REEL_EVENT_NAME_(name, text) text,
    REEL_EVENT_TYPE_MAP(REEL_EVENT_NAME_)
#undef REEL_EVENT_NAME_
};

unsigned reel_event_type_bit(const char *type) {
  for (int i = 0; i < REEL_EVENT_TYPE_COUNT; i++)
    if (strcmp(type, type_names[i]) == 0) return 1u << i;
  return 0;
}

unsigned reel_event_types_parse(const char *list, const char **bad, size_t *bad_len) {
  unsigned mask = 0;
  const char *p = list;
  for (;;) {
    size_t n = strcspn(p, ",");
    const char *name = p;
    while (n > 0 && *name == ' ') name++, n--;
    while (n > 0 && name[n - 1] == ' ') n--;
    unsigned bit = 0;
    for (int i = 0; i < REEL_EVENT_TYPE_COUNT && n > 0; i++)
      if (strlen(type_names[i]) == n && memcmp(type_names[i], name, n) == 0) bit = 1u << i;
    if (!bit) {
      *bad = name;
      *bad_len = n;
      return 0;
    }
    mask |= bit;
    p += strcspn(p, ",");
    if (!*p) return mask;
    p++;
  }
}

int reel_event_type_terminal(const char *type) {
  return strcmp(type, "job.finished") == 0 || strcmp(type, "job.failed") == 0 || strcmp(type, "job.canceled") == 0;
}

struct reel_event_sub {
  reel_job_op op;           /* first: op callbacks cast back (the replay's reads, a job's lookup) */
  reel_event_hub *hub;
  reel_event_sub *prev, *next;
  reel_http_request *req;   /* until the response went to the transport */
  reel_body_stream *stream; /* NULL once it ended or its consumer went away */
  char job_id[32];          /* "" for every job */
  unsigned types;
  char client[64];
  int64_t cursor;           /* events up to this id were sent or passed over */
  int live;                 /* caught up: the hub feeds it */
  int paused;               /* its client is behind: waits for the stream to drain, then replays */
  int resume;               /* drained: replay at the hub's next resume tick */
  int page_held;            /* op holds a replay page it paused in: resume offers the rest */
  int page_next;            /* the index in that page of the next event to offer */
  uint64_t paused_ms;       /* when it paused */
  int job_ended;            /* the job was terminal when the stream began: nothing follows the replay */
  int op_in_flight;
  int sending;              /* inside reel_http_send: a close then only marks it */
};

/* ---- subscribers ---- */

static int count_client(const reel_event_hub *hub, const char *client) {
  int n = 0;
  for (const reel_event_sub *s = hub->subs; s; s = s->next)
    if (strcmp(s->client, client) == 0) n++;
  return n;
}

static void sub_unlink(reel_event_sub *sub) {
  reel_event_hub *hub = sub->hub;
  if (sub->prev) sub->prev->next = sub->next;
  else if (hub->subs == sub) hub->subs = sub->next;
  if (sub->next) sub->next->prev = sub->prev;
  sub->prev = sub->next = NULL;
  hub->n_subs--;
}

/* Frees sub once nothing refers to it (no store op in flight). */
static void sub_maybe_free(reel_event_sub *sub) {
  if (sub->stream || sub->op_in_flight || sub->sending) return;
  sub_unlink(sub);
  reel_job_op_cleanup(&sub->op);
  free(sub);
}

/* The stream's consumer went away (the client left, the connection closed). */
static void on_stream_closed(void *data) {
  reel_event_sub *sub = data;
  sub->stream = NULL;
  sub_maybe_free(sub);
}

/* Ends the subscriber's stream: normally (the job ended, the hub closes) or
 * not (a store failure: the client reconnects and resumes). */
static void sub_end(reel_event_sub *sub, int abort) {
  if (!sub->stream) return;
  reel_body_stream *stream = sub->stream;
  sub->stream = NULL;
  if (abort) reel_body_stream_abort(stream);
  else reel_body_stream_end(stream);
}

/* Writes bytes to sub; a subscriber over its cap is cut off (its stream is
 * aborted; the client resumes with Last-Event-ID). 0 while it goes on. */
static int sub_write(reel_event_sub *sub, const char *data, size_t len) {
  if (!sub->stream) return REEL_ECLOSED;
  int rc = reel_body_stream_write(sub->stream, data, len);
  if (rc == 0) return 0;
  sub->stream = NULL; /* the write gave it up */
  sub->hub->cut_off++;
  reel_log(REEL_LOG_INFO, "event stream cut off: the client reads too slowly", "{s:s, s:s?}", "client", sub->client,
           "job_id", sub->job_id[0] ? sub->job_id : NULL);
  return rc;
}

/* The text/event-stream form of one event (its data line carries the whole
 * event object). */
static int format_event(reel_buf *out, const reel_event *e) {
  char at[40];
  reel_rfc3339(e->created_ms, at, sizeof at);
  reel_buf_reset(out);
  return reel_buf_printf(out,
                         "id: %lld\nevent: %s\ndata: {\"id\":%lld,\"type\":\"%s\",\"job_id\":\"%s\","
                         "\"created_at\":\"%s\",\"data\":%s}\n\n",
                         (long long)e->id, e->type, (long long)e->id, e->type, e->job_id, at, e->data);
}

/* The client is behind (half its buffer waits): sub stops taking events
 * where its cursor is and catches up from the store once the stream
 * drains (on_stream_drained). */
static void sub_pause(reel_event_sub *sub) {
  sub->live = 0;
  sub->paused = 1;
  sub->paused_ms = (reel_mono_ns() / 1000000);
}

/* Offers one event to sub: sent when it matches, and the job's terminal
 * event ends a per-job stream. 1 when sub paused instead of taking it (its
 * cursor stays before the event); 0 otherwise. */
static int sub_offer(reel_event_sub *sub, const reel_event *e, const reel_buf *text) {
  if (!sub->stream || e->id <= sub->cursor) return 0;
  int wanted = (!sub->job_id[0] || strcmp(sub->job_id, e->job_id) == 0) && (sub->types & reel_event_type_bit(e->type));
  if (wanted && !reel_body_stream_wants_more(sub->stream)) {
    sub_pause(sub);
    return 1;
  }
  sub->cursor = e->id;
  if (wanted && sub_write(sub, text->data, text->len) == 0) sub->hub->delivered++;
  if (sub->job_id[0] && strcmp(sub->job_id, e->job_id) == 0 && reel_event_type_terminal(e->type)) sub_end(sub, 0);
  return 0;
}

static void replay_read(reel_event_sub *sub);
static void replay_continue(reel_event_sub *sub);

/* Drained subscribers (and live ones the hub's first read found behind)
 * catch up: on the page they paused in, then from the store. */
static void on_resume_tick(uv_timer_t *t) {
  reel_event_hub *hub = t->data;
  if (hub->closing) return;
  for (reel_event_sub *sub = hub->subs, *next; sub; sub = next) {
    next = sub->next;
    if (!sub->resume) continue;
    sub->resume = 0;
    if (!sub->stream || sub->op_in_flight || sub->req) continue;
    if (sub->page_held) replay_continue(sub); /* may end and free sub */
    else replay_read(sub);
  }
}

static void on_replay_read(reel_job_op *op, int result) {
  reel_event_sub *sub = (reel_event_sub *)op;
  sub->op_in_flight = 0;
  if (result != 0 || sub->hub->closing) {
    if (result != 0)
      reel_log(REEL_LOG_WARN, "event stream replay failed; the client will resume", "{s:s}", "error",
               reel_strerror(result));
    sub_end(sub, result != 0);
    sub_maybe_free(sub);
    return;
  }
  sub->page_next = op->after_id >= 0 ? 0 : op->n_read; /* a stream from now has nothing to replay */
  replay_continue(sub);
}

/* Offers sub the rest of the replay page in its op; then it reads the next
 * page, goes live, or ends. A pause keeps the page for the resume. */
static void replay_continue(reel_event_sub *sub) {
  reel_event_hub *hub = sub->hub;
  reel_job_op *op = &sub->op;
  sub->page_held = 0;
  reel_buf text;
  reel_buf_init(&text, (size_t)16 << 20);
  for (; sub->page_next < op->n_read && sub->stream; sub->page_next++) {
    const reel_event *e = &op->events[sub->page_next];
    if (e->id <= sub->cursor || format_event(&text, e) != 0) continue;
    if (sub_offer(sub, e, &text)) break; /* paused before e */
  }
  reel_buf_free(&text);
  if (!sub->stream) { /* ended */
    sub_maybe_free(sub);
    return;
  }
  if (sub->paused) { /* waits for its client to drain */
    sub->page_held = 1;
    return;
  }
  if (op->n_read == op->limit) {
    replay_read(sub); /* more to catch up on */
    return;
  }
  /* A short page: every event up to the newest id read with it has been
   * offered (every job's stream with no start: it starts there). */
  if (op->last_event_id > sub->cursor) sub->cursor = op->last_event_id;
  if (hub->started && hub->last_id > sub->cursor) {
    replay_read(sub); /* the hub fanned out newer events meanwhile */
    return;
  }
  sub->live = 1;
  /* a job that had ended before the stream began: its terminal event was
   * replayed now or had been seen by the client before it reconnected */
  if (sub->job_ended) sub_end(sub, 0);
  sub_maybe_free(sub);
}

/* Reads the next page of sub's past events (after its cursor). */
static void replay_read(reel_event_sub *sub) {
  int64_t after = sub->cursor;
  reel_job_op_cleanup(&sub->op);
  reel_job_op_init(&sub->op, REEL_JOB_OP_EVENTS);
  snprintf(sub->op.id, sizeof sub->op.id, "%s", sub->job_id);
  sub->op.after_id = after;
  sub->op.limit = REPLAY_READ_LIMIT;
  sub->op.cb = on_replay_read;
  sub->op_in_flight = 1;
  reel_jobs_run(sub->hub->jobs, &sub->op);
}

/* The stream drained (loop thread, inside the transport's take): the
 * subscriber replays from its cursor at the next resume tick. */
static void on_stream_drained(void *data) {
  reel_event_sub *sub = data;
  if (!sub->paused) return;
  sub->paused = 0;
  sub->resume = 1;
  uv_timer_start(&sub->hub->resume_timer, on_resume_tick, 0, 0);
}

/* Sends the 200 with the stream, then starts the replay. */
static void sub_start(reel_event_sub *sub) {
  reel_event_hub *hub = sub->hub;
  reel_http_request *req = sub->req;
  sub->req = NULL;
  reel_http_response resp;
  reel_http_response_init(&resp, 200);
  reel_http_response_add_header(&resp, "Content-Type", "text/event-stream");
  reel_http_response_add_header(&resp, "Cache-Control", "no-cache");
  reel_http_response_add_header(&resp, "X-Accel-Buffering", "no"); /* proxies pass it on as it comes */
  sub->stream = reel_body_stream_new(hub->cfg.max_buffered_bytes, on_stream_closed, sub);
  if (sub->stream) reel_body_stream_set_drain(sub->stream, on_stream_drained);
  if (!sub->stream) {
    reel_http_response_free(&resp);
    reel_http_send_problem(req, 503, "overloaded", "Service overloaded", "out of memory for an event stream");
    sub_maybe_free(sub);
    return;
  }
  char retry[48];
  int n = snprintf(retry, sizeof retry, "retry: %llu\n\n", (unsigned long long)hub->cfg.retry_ms);
  sub_write(sub, retry, (size_t)n);
  resp.stream = sub->stream;
  sub->sending = 1;
  reel_http_send(req, &resp); /* a client already gone: the stream is released, on_stream_closed marks it */
  sub->sending = 0;
  if (!sub->stream) {
    sub_maybe_free(sub);
    return;
  }
  replay_read(sub);
}

static void on_job_looked_up(reel_job_op *op, int result) {
  reel_event_sub *sub = (reel_event_sub *)op;
  sub->op_in_flight = 0;
  reel_http_request *req = sub->req;
  if (result == REEL_ENOTFOUND || result != 0 || sub->hub->closing) {
    sub->req = NULL;
    if (result == REEL_ENOTFOUND) reel_http_send_problem(req, 404, "job-not-found", "Job not found", "no job has this id");
    else reel_http_send_problem_with_headers(req, 503, "unavailable", "Service unavailable",
                                             result ? "the job store cannot be read right now" : "shutting down",
                                             "Retry-After", "1", NULL);
    sub_maybe_free(sub);
    return;
  }
  sub->job_ended = reel_job_status_terminal(op->job.status);
  sub_start(sub);
}

void reel_event_hub_serve(reel_event_hub *hub, reel_http_request *req, const char *job_id, int64_t after,
                          unsigned types, const char *client) {
  if (hub->closing) {
    reel_http_send_problem_with_headers(req, 503, "unavailable", "Service unavailable", "shutting down",
                                        "Retry-After", "1", NULL);
    return;
  }
  if (hub->n_subs >= hub->cfg.max_streams) {
    reel_http_send_problem_with_headers(req, 503, "too-many-streams", "Too many event streams",
                                        "this server serves service.sse_max_streams event streams at most",
                                        "Retry-After", "5", NULL);
    return;
  }
  if (count_client(hub, client) >= hub->cfg.max_streams_per_client) {
    reel_http_send_problem_with_headers(req, 429, "too-many-streams", "Too many event streams",
                                        "this client has service.sse_max_streams_per_client event streams open",
                                        "Retry-After", "5", NULL);
    return;
  }
  reel_event_sub *sub = calloc(1, sizeof *sub);
  if (!sub) {
    reel_http_send_problem(req, 503, "overloaded", "Service overloaded", "out of memory for an event stream");
    return;
  }
  sub->hub = hub;
  sub->req = req;
  sub->types = types ? types : REEL_EVENT_TYPES_ALL;
  snprintf(sub->client, sizeof sub->client, "%s", client);
  if (job_id) snprintf(sub->job_id, sizeof sub->job_id, "%s", job_id);
  /* a job's stream starts at its first event; every job's, from now */
  sub->cursor = after >= 0 ? after : job_id ? 0 : -1;
  sub->next = hub->subs;
  if (sub->next) sub->next->prev = sub;
  hub->subs = sub;
  hub->n_subs++;
  if (!job_id) {
    sub_start(sub);
    return;
  }
  reel_job_op_init(&sub->op, REEL_JOB_OP_GET);
  snprintf(sub->op.id, sizeof sub->op.id, "%s", job_id);
  sub->op.cb = on_job_looked_up;
  sub->op_in_flight = 1;
  reel_jobs_run(hub->jobs, &sub->op);
}

/* ---- the hub's own reads ---- */

static void hub_read(reel_event_hub *hub);

static void on_hub_read(reel_job_op *op, int result) {
  reel_event_hub *hub = op->data;
  hub->reading = 0;
  if (hub->closing) return;
  if (result != 0) {
    reel_log(REEL_LOG_WARN, "reading new events failed; retrying at the next wake-up", "{s:s}", "error",
             reel_strerror(result));
    return;
  }
  int full = 0;
  if (!hub->started) {
    hub->last_id = op->last_event_id;
    hub->started = 1;
    /* subscribers that went live before the hub knew where it starts catch
     * up on what lies between */
    int behind = 0;
    for (reel_event_sub *sub = hub->subs; sub; sub = sub->next)
      if (sub->live && sub->cursor < hub->last_id) sub->live = 0, sub->resume = behind = 1;
    if (behind) uv_timer_start(&hub->resume_timer, on_resume_tick, 0, 0);
  } else {
    reel_buf text;
    reel_buf_init(&text, (size_t)16 << 20);
    for (int i = 0; i < op->n_read; i++) {
      const reel_event *e = &op->events[i];
      if (e->id <= hub->last_id) continue;
      hub->last_id = e->id;
      if (format_event(&text, e) != 0) continue;
      for (reel_event_sub *sub = hub->subs, *next; sub; sub = next) {
        next = sub->next;
        if (!sub->live) continue;
        sub_offer(sub, e, &text);
        sub_maybe_free(sub);
      }
    }
    reel_buf_free(&text);
    full = op->n_read == op->limit;
  }
  if (full || hub->read_again) hub_read(hub);
}

static void hub_read(reel_event_hub *hub) {
  if (hub->closing) return;
  if (hub->reading) {
    hub->read_again = 1;
    return;
  }
  hub->read_again = 0;
  hub->reading = 1;
  reel_job_op_cleanup(&hub->read_op);
  reel_job_op_init(&hub->read_op, REEL_JOB_OP_EVENTS);
  hub->read_op.after_id = hub->started ? hub->last_id : -1;
  hub->read_op.limit = HUB_READ_LIMIT;
  hub->read_op.cb = on_hub_read;
  hub->read_op.data = hub;
  reel_jobs_run(hub->jobs, &hub->read_op);
}

void reel_event_hub_wake(reel_event_hub *hub) {
  if (!hub->jobs) return;
  hub_read(hub);
}

/* How long a subscriber may wait for its client to drain before it is cut
 * off: a client that stopped reading holds its buffer no longer. */
static uint64_t stall_limit_ms(const reel_event_hub *hub) {
  uint64_t ms = hub->cfg.keepalive_ms * 4;
  return ms < 4000 ? 4000 : ms;
}

/* A keep-alive comment to every subscriber that is not behind (one found
 * behind pauses); subscribers stalled past stall_limit_ms are cut off (the client resumes with
 * Last-Event-ID when it reads again). */
static void on_keepalive(uv_timer_t *t) {
  reel_event_hub *hub = t->data;
  static const char comment[] = ": keep-alive\n\n";
  uint64_t now = (reel_mono_ns() / 1000000);
  for (reel_event_sub *sub = hub->subs, *next; sub; sub = next) {
    next = sub->next;
    if (sub->paused && sub->stream && now - sub->paused_ms >= stall_limit_ms(hub)) {
      hub->cut_off++;
      reel_log(REEL_LOG_INFO, "event stream cut off: the client stopped reading", "{s:s, s:s?, s:I}", "client",
               sub->client, "job_id", sub->job_id[0] ? sub->job_id : NULL, "stalled_ms",
               (json_int_t)(now - sub->paused_ms));
      sub_end(sub, 1);
    } else if (!sub->req && sub->stream && !sub->paused) {
      /* a client still holding half its buffer needs no keep-alive: it is
       * behind, and waits (paused) like one an event found behind */
      if (reel_body_stream_wants_more(sub->stream)) sub_write(sub, comment, sizeof comment - 1);
      else sub_pause(sub);
    }
    sub_maybe_free(sub);
  }
}

int reel_event_hub_init(reel_event_hub *hub, uv_loop_t *loop, reel_jobs *jobs, const reel_event_hub_config *cfg) {
  memset(hub, 0, sizeof *hub);
  hub->loop = loop;
  hub->jobs = jobs;
  hub->cfg = *cfg;
  if (hub->cfg.keepalive_ms == 0) hub->cfg.keepalive_ms = 15000;
  if (hub->cfg.retry_ms == 0) hub->cfg.retry_ms = 2000;
  uv_timer_init(loop, &hub->keepalive);
  hub->keepalive.data = hub;
  uv_timer_start(&hub->keepalive, on_keepalive, hub->cfg.keepalive_ms, hub->cfg.keepalive_ms);
  uv_timer_init(loop, &hub->resume_timer);
  hub->resume_timer.data = hub;
  hub_read(hub); /* learns the newest id */
  return 0;
}

void reel_event_hub_close(reel_event_hub *hub) {
  if (!hub->jobs || hub->closing) return;
  hub->closing = 1;
  uv_close((uv_handle_t *)&hub->keepalive, NULL);
  uv_close((uv_handle_t *)&hub->resume_timer, NULL);
  for (reel_event_sub *sub = hub->subs, *next; sub; sub = next) {
    next = sub->next;
    sub_end(sub, 0);
    sub_maybe_free(sub);
  }
}

int reel_event_hub_subscribers(const reel_event_hub *hub) { return hub->n_subs; }
