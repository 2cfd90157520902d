/* Signed download URLs that point back at reeld: HMAC-SHA256 over the method
 * class, the object path and the expiry, so a URL works without a bearer
 * token until it expires and cannot be altered to reach another object. */
#ifndef REEL_URL_SIGNER_H
#define REEL_URL_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#define REEL_SIGNATURE_HEX_LEN 64

/* Writes the hex signature (65 bytes with NUL) for GET/HEAD of "/v1/files/{job_id}/{name}" until expires_at. */
int reel_url_sign(const unsigned char *key, size_t key_len, const char *job_id, const char *name, int64_t expires_at,
                  char out[REEL_SIGNATURE_HEX_LEN + 1]);
/* Checks a presented signature in constant time. Returns 0 when valid and not
 * expired at now (unix seconds), REEL_EINVAL when wrong, REEL_TIMEOUT when expired. */
int reel_url_verify(const unsigned char *key, size_t key_len, const char *job_id, const char *name,
                    int64_t expires_at, const char *signature, int64_t now);
/* Constant-time comparison of two byte strings of equal length. */
int reel_constant_time_equal(const void *a, const void *b, size_t len);

#endif
