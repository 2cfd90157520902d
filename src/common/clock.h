/* Wall-clock and monotonic time, and RFC 3339 formatting. */
#ifndef REEL_CLOCK_H
#define REEL_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch (UTC wall clock). */
int64_t reel_now_ms(void);
/* Monotonic nanoseconds, for measuring durations. */
uint64_t reel_mono_ns(void);
/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) into out (at least 32 bytes). */
void reel_rfc3339(int64_t ms, char *out, size_t outlen);
/* Writes "YYYY-MM" (UTC month) of ms into out (at least 8 bytes). */
void reel_year_month(int64_t ms, char *out, size_t outlen);

#endif
