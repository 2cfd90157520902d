/* Encodings shared by the signers, ids and URL signatures. */
#include "common/encode.h"

#include <gnutls/gnutls.h>

#include "common/error.h"

void reel_hex_encode(const unsigned char *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

int reel_base64_encode(const unsigned char *in, size_t n, reel_buf *out) {
  gnutls_datum_t data = {(unsigned char *)in, (unsigned)n}, result;
  if (gnutls_base64_encode2(&data, &result) != 0) return REEL_ENOMEM;
  int rc = reel_buf_append(out, result.data, result.size);
  gnutls_free(result.data);
  return rc;
}
