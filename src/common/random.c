/* Random ids and jitter, from GnuTLS's CSPRNG (nonce level for ids, which need
 * uniqueness, not secrecy; key level for the signing secret elsewhere). */
#include "common/random.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "common/encode.h"
#include "common/error.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int reel_random_bytes(void *buf, size_t len) {
  return gnutls_rnd(GNUTLS_RND_NONCE, buf, len) == 0 ? 0 : REEL_EIO;
}

void reel_job_id_new(int64_t now_ms, char out[32]) {
  unsigned char raw[16];
  uint64_t t = (uint64_t)now_ms;
  for (int i = 0; i < 6; i++) raw[i] = (unsigned char)(t >> (40 - 8 * i));
  if (reel_random_bytes(raw + 6, 10) != 0) memset(raw + 6, 0, 10);
  /* 128 bits -> 26 base32 chars (first char carries 3 bits). */
  memcpy(out, "job_", 4);
  int bit = -2; /* 26*5 = 130 bits: two leading zero bits */
  for (int i = 0; i < 26; i++, bit += 5) {
    unsigned v = 0;
    for (int b = 0; b < 5; b++) {
      int pos = bit + b;
      unsigned one = 0;
      if (pos >= 0) one = (raw[pos / 8] >> (7 - pos % 8)) & 1u;
      v = (v << 1) | one;
    }
    out[4 + i] = crockford[v];
  }
  out[30] = '\0';
}

void reel_request_id_new(char out[17]) {
  unsigned char raw[8];
  if (reel_random_bytes(raw, sizeof raw) != 0) memset(raw, 0, sizeof raw);
  reel_hex_encode(raw, sizeof raw, out);
}

int reel_job_id_valid(const char *s, size_t len) {
  if (len != 30 || memcmp(s, "job_", 4) != 0) return 0;
  for (size_t i = 4; i < len; i++)
    if (!strchr(crockford, s[i]) || s[i] == '\0') return 0;
  return 1;
}

double reel_random_unit(void) {
  uint64_t r;
  if (reel_random_bytes(&r, sizeof r) != 0) return 0.5;
  return (double)(r >> 11) / 9007199254740992.0; /* 2^53 */
}
