/* Download URL signatures: stable, bound to job, name and expiry; expiry enforced. */
#include <gnutls/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "storage/storage.h"
#include "storage/url_signer.h"

int main(void) {
  const unsigned char key[32] = "0123456789abcdef0123456789abcdef";
  const char *id = "job_01ABCDEFGHJKMNPQRSTVWXYZ0";
  char sig[65], other[65];
  CHECK_INT(reel_url_sign(key, 32, id, "final_video.mp4", 2000000000, sig), 0);
  CHECK_INT((int)strlen(sig), 64);
  /* independent computation of the documented scheme with GnuTLS */
  const char msg[] = "reel-download-v1\nGET\n/v1/files/job_01ABCDEFGHJKMNPQRSTVWXYZ0/final_video.mp4\n2000000000";
  unsigned char mac[32];
  gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, 32, msg, sizeof msg - 1, mac);
  char hex[65];
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", mac[i]);
  CHECK_STR(sig, hex);
  CHECK_INT(reel_url_verify(key, 32, id, "final_video.mp4", 2000000000, sig, 1999999999), 0);
  CHECK_INT(reel_url_verify(key, 32, id, "final_video.mp4", 2000000000, sig, 2000000001), REEL_ETIMEOUT);
  CHECK_INT(reel_url_verify(key, 32, id, "final_video.mp4", 2000000001, sig, 0), REEL_EINVAL);
  CHECK_INT(reel_url_verify(key, 32, id, "captions.vtt", 2000000000, sig, 0), REEL_EINVAL);
  CHECK_INT(reel_url_verify(key, 32, "job_01ABCDEFGHJKMNPQRSTVWXYZ1", "final_video.mp4", 2000000000, sig, 0),
            REEL_EINVAL);
  strcpy(other, sig);
  other[10] = other[10] == 'a' ? 'b' : 'a';
  CHECK_INT(reel_url_verify(key, 32, id, "final_video.mp4", 2000000000, other, 0), REEL_EINVAL);
  CHECK_INT(reel_url_verify(key, 32, id, "final_video.mp4", 2000000000, "abc", 0), REEL_EINVAL);
  CHECK_INT(reel_url_verify(key, 32, id, "final_video.mp4", 2000000000, NULL, 0), REEL_EINVAL);
  const unsigned char key2[32] = "fedcba9876543210fedcba9876543210";
  CHECK_INT(reel_url_verify(key2, 32, id, "final_video.mp4", 2000000000, sig, 0), REEL_EINVAL);
  CHECK(reel_constant_time_equal("abc", "abc", 3));
  CHECK(!reel_constant_time_equal("abc", "abd", 3));
  /* the artifact key layout of seed 000 */
  char *k = reel_storage_key("reel", 1756643696000, id, "final_video.mp4");
  CHECK_STR(k, "reel/2025-08/job_01ABCDEFGHJKMNPQRSTVWXYZ0/final_video.mp4");
  free(k);
  k = reel_storage_key("", 1756643696000, id, "final_video.mp4");
  CHECK_STR(k, "2025-08/job_01ABCDEFGHJKMNPQRSTVWXYZ0/final_video.mp4");
  free(k);
  return check_report();
}
