/* RLIMIT_NOFILE at start, the ceiling for client-driven descriptors, and a
 * rate-limited report when it is reached. */
#include "http/fd_limit.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "common/clock.h"
#include "common/log.h"

static atomic_long ceiling;

long reel_fd_limit_init(int reserve, char *msg, size_t msglen) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    snprintf(msg, msglen, "getrlimit(RLIMIT_NOFILE) failed: %s", strerror(errno));
    return -1;
  }
  rlim_t old = rl.rlim_cur;
  msg[0] = '\0';
  if (rl.rlim_cur != rl.rlim_max) {
    rlim_t want = rl.rlim_max;
    if (want == RLIM_INFINITY || want > (rlim_t)1 << 20) want = (rlim_t)1 << 20; /* a sane table size */
    if (want > rl.rlim_cur) {
      struct rlimit raised = {.rlim_cur = want, .rlim_max = rl.rlim_max};
      if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl.rlim_cur = want;
      else snprintf(msg, msglen, "cannot raise the open-file limit from %llu to %llu: %s", (unsigned long long)old,
                    (unsigned long long)want, strerror(errno));
    }
  }
  long limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)1 << 20 ? 1L << 20 : (long)rl.rlim_cur;
  long keep = reserve;
  if (keep > limit / 4) keep = limit / 4;
  atomic_store(&ceiling, limit - keep);
  if (!msg[0])
    snprintf(msg, msglen, "open-file limit %ld (was %llu), %ld kept for listeners and the store", limit,
             (unsigned long long)old, keep);
  return limit;
}

long reel_fd_limit_ceiling(void) { return atomic_load(&ceiling); }

int reel_fd_limit_allows(int fd) {
  long c = atomic_load(&ceiling);
  return c <= 0 || fd < c;
}

int reel_fd_limit_is_exhaustion(int err) { return err == EMFILE || err == ENFILE; }

void reel_fd_limit_report(const char *what, const char *detail) {
  static uint64_t last_ns;
  static long suppressed;
  uint64_t now = reel_mono_ns();
  if (last_ns && now - last_ns < 1000000000ull) {
    suppressed++;
    return;
  }
  last_ns = now;
  reel_log(REEL_LOG_WARN, "out of file descriptors", "{s:s, s:s, s:i, s:i}", "what", what, "detail",
           detail ? detail : "", "ceiling", (int)atomic_load(&ceiling), "suppressed", (int)suppressed);
  suppressed = 0;
}
