#include "client/follow.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_LINE_BYTES (4u << 20)
#define MAX_EVENT_BYTES (16u << 20)
#define DEFAULT_RETRY_MS 2000L
#define MAX_RETRY_MS 30000L

/* Waits ms, calling tick every 100 ms. Non-zero when tick asked to stop. */
static int wait_ms(const reel_follow *f, long ms) {
  while (ms > 0) {
    long step = ms < 100 ? ms : 100;
    struct timespec ts = {step / 1000, (step % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    ms -= step;
    if (f->tick && f->tick(f->ctx)) return 1;
  }
  return 0;
}

reel_follow_result reel_follow_run(const reel_follow *f, char *err, size_t errlen) {
  reel_sse_parser parser;
  reel_sse_parser_init(&parser, MAX_LINE_BYTES, MAX_EVENT_BYTES, f->on_event, f->ctx);
  if (f->start_after) reel_sse_parser_set_last_id(&parser, f->start_after);
  int max_tries = f->max_tries > 0 ? f->max_tries : 30;
  long idle = f->idle_timeout_s > 0 ? f->idle_timeout_s : 45;
  int tries = 0;
  reel_follow_result result;
  for (;;) {
    reel_client_response resp;
    int got = 0;
    char why[512] = "";
    reel_stream_result r =
        reel_client_stream(f->client, f->path, reel_sse_parser_last_id(&parser), idle, &parser, &resp, &got, why, sizeof why);
    if (r == REEL_STREAM_STOPPED) {
      reel_client_response_free(&resp);
      result = REEL_FOLLOW_DONE;
      break;
    }
    if (r == REEL_STREAM_ABORTED) {
      reel_client_response_free(&resp);
      result = REEL_FOLLOW_INTERRUPTED;
      break;
    }
    long delay = parser.retry_ms >= 0 ? parser.retry_ms : DEFAULT_RETRY_MS;
    if (delay > MAX_RETRY_MS) delay = MAX_RETRY_MS;
    if (r == REEL_STREAM_REFUSED) {
      if (resp.status != 429 && resp.status != 503) {
        reel_client_problem_text(&resp, err, errlen);
        reel_client_response_free(&resp);
        result = REEL_FOLLOW_REFUSED;
        break;
      }
      if (resp.retry_after_s >= 0) delay = resp.retry_after_s * 1000;
      reel_client_problem_text(&resp, why, sizeof why);
    } else if (r == REEL_STREAM_ENDED) {
      snprintf(why, sizeof why, "the server ended the stream");
    }
    reel_client_response_free(&resp);
    tries = got ? 1 : tries + 1;
    if (tries > max_tries) {
      snprintf(err, errlen, "%s (gave up after %d attempts)", why, max_tries);
      result = REEL_FOLLOW_LOST;
      break;
    }
    if (f->on_notice) {
      char msg[768];
      snprintf(msg, sizeof msg, "%s; reconnecting in %.1f s", why, delay / 1000.0);
      f->on_notice(f->ctx, msg);
    }
    if (wait_ms(f, delay)) {
      result = REEL_FOLLOW_INTERRUPTED;
      break;
    }
  }
  reel_sse_parser_free(&parser);
  return result;
}
