/* HMAC-SHA256 URL signatures (GnuTLS) for reeld's own download URLs. */
#include "storage/url_signer.h"

#include <gnutls/crypto.h>
#include <stdio.h>
#include <string.h>

#include "common/encode.h"
#include "common/error.h"

int reel_constant_time_equal(const void *a, const void *b, size_t len) {
  const unsigned char *x = a, *y = b;
  unsigned char diff = 0;
  for (size_t i = 0; i < len; i++) diff |= (unsigned char)(x[i] ^ y[i]);
  return diff == 0;
}

int reel_url_sign(const unsigned char *key, size_t key_len, const char *job_id, const char *name, int64_t expires_at,
                  char out[REEL_SIGNATURE_HEX_LEN + 1]) {
  char message[512];
  int n = snprintf(message, sizeof message, "reel-download-v1\nGET\n/v1/files/%s/%s\n%lld", job_id, name,
                   (long long)expires_at);
  if (n < 0 || (size_t)n >= sizeof message) return REEL_EINVAL;
  unsigned char mac[32];
  if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, key_len, message, (size_t)n, mac) != 0) return REEL_EIO;
  reel_hex_encode(mac, 32, out);
  return 0;
}

int reel_url_verify(const unsigned char *key, size_t key_len, const char *job_id, const char *name,
                    int64_t expires_at, const char *signature, int64_t now) {
  char expected[REEL_SIGNATURE_HEX_LEN + 1];
  if (!signature || strlen(signature) != REEL_SIGNATURE_HEX_LEN) return REEL_EINVAL;
  if (reel_url_sign(key, key_len, job_id, name, expires_at, expected) != 0) return REEL_EINVAL;
  if (!reel_constant_time_equal(expected, signature, REEL_SIGNATURE_HEX_LEN)) return REEL_EINVAL;
  if (now > expires_at) return REEL_ETIMEOUT;
  return 0;
}
