/* Standard Webhooks signing (see webhook_sign.h) on GnuTLS's HMAC and base64. */
#include "events/webhook_sign.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/encode.h"
#include "common/error.h"
#include "storage/url_signer.h"

int reel_webhook_secret_decode(const char *secret, unsigned char *key, size_t cap, size_t *len, char *err,
                               size_t errlen) {
  *len = 0;
  if (strncmp(secret, "whsec_", 6) != 0) {
    snprintf(err, errlen, "a Standard Webhooks secret starts with whsec_");
    return REEL_EPARSE;
  }
  const char *b64 = secret + 6;
  size_t n = strlen(b64);
  gnutls_datum_t in = {(unsigned char *)b64, (unsigned)n}, out = {NULL, 0};
  if (n == 0 || n > 4 * ((cap + 2) / 3) || gnutls_base64_decode2(&in, &out) != 0) {
    snprintf(err, errlen, "the part after whsec_ must be base64 of 1 to %zu bytes", cap);
    return REEL_EPARSE;
  }
  if (out.size == 0 || out.size > cap) {
    gnutls_free(out.data);
    snprintf(err, errlen, "the key must be 1 to %zu bytes", cap);
    return REEL_EPARSE;
  }
  memcpy(key, out.data, out.size);
  *len = out.size;
  gnutls_memset(out.data, 0, out.size);
  gnutls_free(out.data);
  return 0;
}

/* The raw HMAC-SHA256 of "{msg_id}.{timestamp}.{body}". */
static int mac(const unsigned char *key, size_t key_len, const char *msg_id, int64_t timestamp, const void *body,
               size_t body_len, unsigned char digest[32]) {
  gnutls_hmac_hd_t h;
  if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, key, key_len) != 0) return REEL_EIO;
  char ts[32];
  int tn = snprintf(ts, sizeof ts, ".%lld.", (long long)timestamp);
  int rc = gnutls_hmac(h, msg_id, strlen(msg_id)) | gnutls_hmac(h, ts, (size_t)tn) | gnutls_hmac(h, body, body_len);
  gnutls_hmac_deinit(h, digest);
  return rc == 0 ? 0 : REEL_EIO;
}

int reel_webhook_sign(const unsigned char *key, size_t key_len, const char *msg_id, int64_t timestamp,
                      const void *body, size_t body_len, char *out, size_t outlen) {
  unsigned char digest[32];
  int rc = mac(key, key_len, msg_id, timestamp, body, body_len, digest);
  if (rc) return rc;
  reel_buf b;
  reel_buf_init(&b, 128);
  rc = reel_buf_append_str(&b, "v1,");
  if (rc == 0) rc = reel_base64_encode(digest, sizeof digest, &b);
  if (rc == 0 && b.len + 1 > outlen) rc = REEL_ETOOBIG;
  if (rc == 0) memcpy(out, b.data, b.len + 1);
  reel_buf_free(&b);
  return rc;
}

int reel_webhook_verify(const unsigned char *key, size_t key_len, const char *msg_id, int64_t timestamp,
                        const void *body, size_t body_len, const char *signatures) {
  char expected[REEL_WEBHOOK_MAX_SIGNATURE];
  if (reel_webhook_sign(key, key_len, msg_id, timestamp, body, body_len, expected, sizeof expected) != 0) return 0;
  size_t want = strlen(expected);
  int found = 0;
  for (const char *p = signatures; *p;) {
    while (*p == ' ') p++;
    size_t n = strcspn(p, " ");
    if (n == want) found |= reel_constant_time_equal(p, expected, want);
    p += n;
  }
  return found;
}
