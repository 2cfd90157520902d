/* Standard Webhooks signatures (https://www.standardwebhooks.com, SPEC
 * section 8): a secret is "whsec_" + base64 of the key; a signature is
 * "v1," + base64(HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")). */
#ifndef REEL_EVENTS_WEBHOOK_SIGN_H
#define REEL_EVENTS_WEBHOOK_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define REEL_WEBHOOK_MAX_KEY 64        /* key bytes a secret may hold */
#define REEL_WEBHOOK_MAX_SIGNATURE 64  /* "v1," + 44 base64 characters + NUL fits */

/* Decodes a "whsec_..." secret into key (at most cap bytes), its length in
 * *len. 0, or REEL_EPARSE with why in err (never the secret itself). */
int reel_webhook_secret_decode(const char *secret, unsigned char *key, size_t cap, size_t *len, char *err,
                               size_t errlen);
/* Writes "v1,<base64 HMAC-SHA256>" of "{msg_id}.{timestamp}.{body}" into out.
 * 0, or a reel error (out too small). */
int reel_webhook_sign(const unsigned char *key, size_t key_len, const char *msg_id, int64_t timestamp,
                      const void *body, size_t body_len, char *out, size_t outlen);
/* 1 when the header value `signatures` (space-separated "v1,..." entries)
 * holds the signature of the message under key, compared in constant time. */
int reel_webhook_verify(const unsigned char *key, size_t key_len, const char *msg_id, int64_t timestamp,
                        const void *body, size_t body_len, const char *signatures);

#endif
