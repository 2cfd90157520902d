/* Cryptographically strong random bytes and identifiers. */
#ifndef REEL_RANDOM_H
#define REEL_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* Fills buf with random bytes from the system CSPRNG; 0 or REEL_EIO. */
int reel_random_bytes(void *buf, size_t len);
/* Writes a new job id "job_" + 26 Crockford base32 chars (48-bit ms time +
 * 80 random bits, so ids sort by creation time) into out (>= 32 bytes). */
void reel_job_id_new(int64_t now_ms, char out[32]);
/* Writes a new request id (16 lowercase hex chars) into out (>= 17 bytes). */
void reel_request_id_new(char out[17]);
/* True when s has the exact shape of a job id. */
int reel_job_id_valid(const char *s, size_t len);
/* Uniform random double in [0, 1). */
double reel_random_unit(void);

#endif
