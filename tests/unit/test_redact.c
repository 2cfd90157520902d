/* Secrets never survive redaction: tokens, bearer headers, signed URL parameters. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/redact.h"

static char *r(const char *s) { return reel_redact_dup(s); }

#define CHECK_REDACTS(in, secret)                                  \
  do {                                                             \
    char *out_ = r(in);                                            \
    CHECK(out_ && strstr(out_, secret) == NULL);                   \
    CHECK(out_ && strstr(out_, REEL_REDACTED) != NULL);            \
    if (out_ && strstr(out_, secret)) fprintf(stderr, "  leaked: %s\n", out_); \
    free(out_);                                                    \
  } while (0)

int main(void) {
  reel_redact_add_secret("change-me-please");
  CHECK_REDACTS("Authorization: Bearer abc.def.ghi", "abc.def.ghi");
  CHECK_REDACTS("curl -H 'authorization: bearer XyZ123'", "XyZ123");
  CHECK_REDACTS("token=s3cr3tvalue next", "s3cr3tvalue");
  CHECK_REDACTS("{\"access_token\": \"ya29.a0AfH6\"}", "ya29.a0AfH6");
  CHECK_REDACTS("GET /x?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA/2025", "deadbeef");
  CHECK_REDACTS("GET /x?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIAEXAMPLE", "AKIAEXAMPLE");
  CHECK_REDACTS("https://h/v1/files/j/f.mp4?expires=1&signature=abcdef0123", "abcdef0123");
  CHECK_REDACTS("X-Goog-Signature=0a1b2c", "0a1b2c");
  CHECK_REDACTS("aws_secret_access_key = wJalrXUtnFEMI", "wJalrXUtnFEMI");
  CHECK_REDACTS("password: hunter2", "hunter2");
  CHECK_REDACTS("the token is change-me-please ok", "change-me-please");
  CHECK_REDACTS("client_secret=abc123xyz", "abc123xyz");
  /* ordinary text is left alone */
  char *out = r("A lighthouse on a cliff at dawn, waves rolling in.");
  CHECK_STR(out, "A lighthouse on a cliff at dawn, waves rolling in.");
  free(out);
  out = r("rendering keyframe 3 of 5 (monkey=1)");
  CHECK_STR(out, "rendering keyframe 3 of 5 (monkey=1)");
  free(out);
  out = r("");
  CHECK_STR(out, "");
  free(out);
  reel_buf b;
  reel_buf_init(&b, 1024);
  reel_redact_url("https://storage.googleapis.com/b/o?X-Goog-Signature=abc#frag", &b);
  CHECK_STR(b.data, "https://storage.googleapis.com/b/o?" REEL_REDACTED);
  reel_buf_free(&b);
  reel_redact_clear_secrets();
  return check_report();
}
