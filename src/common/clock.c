/* Time helpers: one place that decides how reel reads and prints time. */
#include "common/clock.h"

#include <stdio.h>
#include <time.h>

int64_t reel_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t reel_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void utc(int64_t ms, struct tm *tm) {
  time_t secs = (time_t)(ms / 1000);
  gmtime_r(&secs, tm);
}

void reel_rfc3339(int64_t ms, char *out, size_t outlen) {
  struct tm tm;
  utc(ms, &tm);
  snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

void reel_year_month(int64_t ms, char *out, size_t outlen) {
  struct tm tm;
  utc(ms, &tm);
  snprintf(out, outlen, "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
}
