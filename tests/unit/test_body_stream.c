/* http/body_stream: the cap, backpressure (wants_more / drain), one piece of
 * any size for a producer that heeds it, end and abort as the consumer sees them. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "http/body_stream.h"

static int closed_calls, drain_calls, wakes;
static void on_closed(void *data) {
  (void)data;
  closed_calls++;
}
static void on_drain(void *data) {
  (void)data;
  drain_calls++;
}
static void on_wake(void *ctx) {
  (void)ctx;
  wakes++;
}

int main(void) {
  char big[10000], out[20000];
  memset(big, 'x', sizeof big);

  /* a producer that heeds wants_more: below half the cap, any one piece goes in */
  reel_body_stream *b = reel_body_stream_new(4096, on_closed, NULL);
  reel_body_stream_set_drain(b, on_drain);
  reel_body_stream_attach(b, on_wake, NULL);
  CHECK_INT(reel_body_stream_wants_more(b), 1);
  CHECK_INT(reel_body_stream_write(b, big, 1000), 0);
  CHECK_INT(reel_body_stream_wants_more(b), 1);
  CHECK_INT(reel_body_stream_write(b, big, 5000), 0); /* 1000 waiting < 2048: one large event fits */
  CHECK_INT(reel_body_stream_buffered(b), 6000);
  CHECK_INT(reel_body_stream_wants_more(b), 0); /* asks for the drain */
  CHECK_INT(drain_calls, 0);
  CHECK_INT(reel_body_stream_take(b, out, 4000), 4000); /* 2000 left: above a quarter */
  CHECK_INT(drain_calls, 0);
  CHECK_INT(reel_body_stream_take(b, out, 1000), 1000); /* 1000 left: at most a quarter */
  CHECK_INT(drain_calls, 1);
  CHECK_INT(reel_body_stream_take(b, out, sizeof out), 1000);
  CHECK_INT(drain_calls, 1); /* once per wants_more that said 0 */
  /* the taker found it empty: the next write wakes it */
  wakes = 0;
  CHECK_INT(reel_body_stream_write(b, "ab", 2), 0);
  CHECK_INT(wakes, 1);
  CHECK_INT(reel_body_stream_take(b, out, sizeof out), 2);
  CHECK(memcmp(out, "ab", 2) == 0);
  reel_body_stream_end(b);
  CHECK_INT(reel_body_stream_state_of(b), REEL_BODY_STREAM_ENDED);
  reel_body_stream_release(b);
  CHECK_INT(closed_calls, 0); /* the producer had ended it */

  /* a producer that writes on past half the cap is cut off at the cap */
  b = reel_body_stream_new(4096, on_closed, NULL);
  CHECK_INT(reel_body_stream_write(b, big, 3000), 0);
  CHECK_INT(reel_body_stream_write(b, big, 1000), 0); /* 3000 waiting, 4000 <= 4096 */
  CHECK_INT(reel_body_stream_write(b, big, 200), REEL_ETOOBIG);
  CHECK_INT(reel_body_stream_state_of(b), REEL_BODY_STREAM_ABORTED);
  size_t len = 1;
  reel_body_stream_peek(b, &len);
  CHECK_INT(len, 0); /* an aborted stream offers nothing more to send */
  reel_body_stream_release(b);
  CHECK_INT(closed_calls, 0); /* the write gave the producer's ownership up */

  /* the consumer leaves first: the producer hears it once */
  b = reel_body_stream_new(4096, on_closed, NULL);
  CHECK_INT(reel_body_stream_write(b, "hi", 2), 0);
  reel_body_stream_release(b);
  CHECK_INT(closed_calls, 1);
  return check_report();
}
