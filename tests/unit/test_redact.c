/* Secrets never survive redaction: configured secrets anywhere in a line, in
 * every encoding, across a cut; bearer headers and signed URL parameters.
 * The cases are one table: input and the exact output expected. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/redact.h"

/* the configured secrets (as main.c registers them from reel.yaml) */
#define TOK "Zq7-t0ken-XYZ"                      /* service.auth.tokens[0] */
#define TOK2 "second.token_0099"                 /* service.auth.tokens[1] */
#define S3KEY "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"   /* service.storage.secret_access_key */
#define S3ID "AKIAIOSFODNN7EXAMPLE"              /* service.storage.access_key_id */
#define SIGNKEY "url-signing-key-000"            /* service.signing_key */
#define OVERLAP "ZZyZZyZZ"                       /* overlaps itself */
#define R REEL_REDACTED

/* TOK percent-encoded, lower/upper/mixed hex, partly, twice and three times */
#define TOK_PCT_LOWER "%5a%71%37%2d%74%30%6b%65%6e%2d%58%59%5a"
#define TOK_PCT_UPPER "%5A%71%37%2D%74%30%6B%65%6E%2D%58%59%5A"
#define TOK_PCT_MIXED "%5a%71%37%2D%74%30%6b%65%6E%2d%58%59%5A"
#define TOK_PCT_PART "Zq7%2Dt0k%65n-XYZ"
#define TOK_PCT_TWICE "%255A%2571%2537%252D%2574%2530%256B%2565%256E%252D%2558%2559%255A"
#define TOK_PCT_THRICE "Zq7%25252Dt0ken-XYZ"

typedef struct {
  const char *in;
  const char *want;
} row;

static const row rows[] = {
    /* the forms that escaped before: glued to word characters or encoded */
    {"X-" TOK, "X-" R},
    {"abc" TOK, "abc" R},
    {"1" TOK, "1" R},
    {"sig." TOK, "sig." R},
    {"url=https://h/p?auth=Bearer%20" TOK, "url=https://h/p?auth=Bearer%20" R},
    {"Authorization%3A%20Bearer%20" TOK, "Authorization%3A%20Bearer%20" R},
    {"header:Bearer_" TOK, "header:Bearer_" R},
    {"GET /v1/jobs/Bearer%20" TOK, "GET /v1/jobs/Bearer%20" R},
    {"/v1/jobs/" TOK_PCT_UPPER, "/v1/jobs/" R},
    /* anywhere in the line, any number of times */
    {TOK, R},
    {TOK " at the start", R " at the start"},
    {"at the end " TOK, "at the end " R},
    {"in" TOK "side", "in" R "side"},
    {TOK " and " TOK, R " and " R},
    {TOK TOK, R},
    {TOK "," TOK2 ";" SIGNKEY, R "," R ";" R},
    {OVERLAP "yZZ", R},
    {"yZ" OVERLAP, "yZ" R},
    /* percent-encoded, '+' as a space */
    {"t=" TOK_PCT_LOWER, "t=" R},
    {"t=" TOK_PCT_UPPER "&x=1", "t=" R "&x=1"},
    {"t=" TOK_PCT_MIXED, "t=" R},
    {"t=" TOK_PCT_PART, "t=" R},
    {"t=" TOK_PCT_TWICE, "t=" R},
    {"t=" TOK_PCT_THRICE, "t=" R},
    {"x" TOK_PCT_LOWER "y", "x" R "y"},
    {"Bearer+" TOK, "Bearer+" R},
    {"auth=Bearer+opaque-credential", "auth=Bearer+" R},
    {"Authorization%3A+Bearer+opaque", "Authorization%3A" R},
    /* the other configured secrets */
    {"aws " S3KEY " !", "aws " R " !"},
    {"k=wJalrXUtnFEMI%2FK7MDENG%2BbPxRfiCY", "k=" R},
    {"k=wJalrXUtnFEMI%2fK7MDENG+bPxRfiCY", "k=" R},
    {"id " S3ID "/20250101/us-east-1", "id " R "/20250101/us-east-1"},
    {"key=" SIGNKEY, "key=" R},
    /* signed-URL parameters, plain and encoded */
    {"GET /x?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA/2025", "GET /x?X-Amz-Signature=" R "&X-Amz-Credential=" R},
    {"https://h/v1/files/j/f.mp4?expires=1&signature=abcdef0123", "https://h/v1/files/j/f.mp4?expires=1&signature=" R},
    {"X-Goog-Signature=0a1b2c", "X-Goog-Signature=" R},
    {"next=%2Fdl%3Fsignature%3Dabcdef0123%26expires%3D1", "next=%2Fdl%3Fsignature%3D" R "%26expires%3D1"},
    {"u=X-Amz-Signature%3ddeadbeef", "u=X-Amz-Signature%3d" R},
    {"u=X-Goog-Signature%253Dfeed01", "u=X-Goog-Signature%253D" R},
    {"u=sig%3D0a1b2c3d", "u=sig%3D" R},
    /* credential patterns without a registered secret */
    {"Authorization: Bearer abc.def.ghi", "Authorization: Bearer " R},
    {"curl -H 'authorization: bearer XyZ123'", "curl -H 'authorization: bearer " R "'"},
    {"token=s3cr3tvalue next", "token=" R " next"},
    {"{\"access_token\": \"ya29.a0AfH6\"}", "{\"access_token\": \"" R "\"}"},
    {"aws_secret_access_key = wJalrXUtnFEMI", "aws_secret_access_key = " R},
    {"password: hunter2", "password: " R},
    {"client_secret=abc123xyz", "client_secret=" R},
    /* ordinary text is left alone */
    {"A lighthouse on a cliff at dawn, waves rolling in.", "A lighthouse on a cliff at dawn, waves rolling in."},
    {"rendering keyframe 3 of 5 (monkey=1)", "rendering keyframe 3 of 5 (monkey=1)"},
    {"100% done, a+b=c, 50%2, %zz, %", "100% done, a+b=c, 50%2, %zz, %"},
    {"Zq7-t0ken-XY is not the token", "Zq7-t0ken-XY is not the token"},
    {"", ""},
};

static char *r(const char *s) { return reel_redact_dup(s); }

/* The percent-decoded form of s ('+' kept), decoded until nothing changes. */
static void decode_fully(const char *s, char *out, size_t size) {
  snprintf(out, size, "%s", s);
  for (int round = 0; round < 4; round++) {
    size_t j = 0;
    for (size_t i = 0; out[i]; i++, j++) {
      unsigned int c;
      if (out[i] == '%' && out[i + 1] && out[i + 2] && sscanf(out + i + 1, "%2x", &c) == 1 &&
          strchr("0123456789abcdefABCDEF", out[i + 2]) && strchr("0123456789abcdefABCDEF", out[i + 1])) {
        out[j] = (char)c;
        i += 2;
      } else {
        out[j] = out[i];
      }
    }
    out[j] = 0;
  }
}

/* True when s (decoded) ends with a non-empty prefix of secret. */
static int ends_with_part_of(const char *s, const char *secret) {
  char d[8192];
  decode_fully(s, d, sizeof d);
  size_t n = strlen(d), m = strlen(secret);
  for (size_t k = 1; k <= m && k <= n; k++)
    if (memcmp(d + n - k, secret, k) == 0) return 1;
  return 0;
}

static int holds(const char *s, const char *secret) {
  char d[8192];
  decode_fully(s, d, sizeof d);
  return strstr(s, secret) != NULL || strstr(d, secret) != NULL;
}

/* A line with secret (as written: plain or encoded) in it, cut (or handed over
 * as the head of a longer line) at every offset through the secret. */
static void check_cuts(const char *written, const char *secret) {
  char line[512];
  const char *filler = "........ stage 3: request ";
  snprintf(line, sizeof line, "%s%s and more text after it", filler, written);
  size_t base = strlen(filler);
  for (size_t k = 0; k <= strlen(written) + 1; k++) {
    /* cut by reel_redact_line: the whole line is seen, the output is at most max bytes */
    reel_buf b;
    reel_buf_init(&b, 4096);
    size_t max = base + k;
    CHECK_INT(reel_redact_line(line, strlen(line), 0, max, &b), 0);
    CHECK(b.data && b.len <= max);
    CHECK(b.data && !holds(b.data, secret));
    CHECK(b.data && !ends_with_part_of(b.data, secret));
    if (b.data && (holds(b.data, secret) || ends_with_part_of(b.data, secret)))
      fprintf(stderr, "  cut at %zu leaked: %s\n", max, b.data);
    reel_buf_free(&b);
    /* cut before it came in (the reader's cap): only the head is seen */
    reel_buf_init(&b, 4096);
    CHECK_INT(reel_redact_line(line, base + k, 1, 4096, &b), 0);
    CHECK(b.data && !holds(b.data, secret));
    CHECK(b.data && !ends_with_part_of(b.data, secret));
    if (b.data && (holds(b.data, secret) || ends_with_part_of(b.data, secret)))
      fprintf(stderr, "  head of %zu bytes leaked: %s\n", base + k, b.data);
    /* what precedes the secret is kept */
    CHECK(b.data && strncmp(b.data, filler, base) == 0);
    reel_buf_free(&b);
  }
}

int main(void) {
  const char *configured[] = {TOK, TOK2, S3KEY, S3ID, SIGNKEY, OVERLAP, NULL, "abc" /* too short: skipped */};
  CHECK_INT(reel_redact_set_secrets(configured, sizeof configured / sizeof *configured), 0);

  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    char *out = r(rows[i].in);
    CHECK_STR(out, rows[i].want);
    free(out);
  }

  /* every row cut at every length: never longer than the cut, never a secret */
  const char *all[] = {TOK, TOK2, S3KEY, S3ID, SIGNKEY, OVERLAP};
  int bad_cuts = 0;
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    size_t n = strlen(rows[i].in);
    for (size_t max = 0; max <= n + 12; max++) {
      for (int truncated = 0; truncated < 2; truncated++) {
        reel_buf b;
        reel_buf_init(&b, 4096);
        int ok = reel_redact_line(rows[i].in, n, truncated, max, &b) == 0 && b.data && b.len <= max;
        for (size_t s = 0; ok && s < sizeof all / sizeof *all; s++) ok = !holds(b.data, all[s]);
        if (!ok) {
          bad_cuts++;
          fprintf(stderr, "  row %zu cut at %zu (truncated %d): %s\n", i, max, truncated, b.data ? b.data : "(null)");
        }
        reel_buf_free(&b);
      }
    }
  }
  CHECK_INT(bad_cuts, 0);

  /* a cut never leaves part of a secret, plain or encoded */
  check_cuts(TOK, TOK);
  check_cuts(TOK_PCT_LOWER, TOK);
  check_cuts(TOK_PCT_UPPER, TOK);
  check_cuts(TOK_PCT_TWICE, TOK);
  check_cuts(S3KEY, S3KEY);
  /* a short cut: never longer than max, never half a UTF-8 character */
  reel_buf b;
  reel_buf_init(&b, 64);
  CHECK_INT(reel_redact_line("h\xc3\xa9h\xc3\xa9", 6, 0, 5, &b), 0);
  CHECK_STR(b.data, "h\xc3\xa9h");
  reel_buf_free(&b);
  reel_buf_init(&b, 64);
  CHECK_INT(reel_redact_line(TOK, strlen(TOK), 0, 4, &b), 0);
  CHECK_STR(b.data, "");
  reel_buf_free(&b);

  /* the marker says nothing of the secret's length */
  char *a = r("[" TOK "]"), *c = r("[" S3KEY "]");
  CHECK_STR(a, "[" R "]");
  CHECK_STR(c, "[" R "]");
  free(a);
  free(c);

  /* long lines: linear work (these would take minutes if it were quadratic) */
  size_t big = (size_t)1 << 20;
  char *line = malloc(big + 1);
  for (size_t i = 0; i < big; i++) line[i] = "ZZy"[i % 3];
  line[big] = 0;
  reel_buf_init(&b, 4 * big);
  CHECK_INT(reel_redact(line, big, &b), 0);
  CHECK(b.data && strstr(b.data, OVERLAP) == NULL);
  reel_buf_free(&b);
  for (size_t i = 0; i < big; i++) line[i] = "%25"[i % 3];
  reel_buf_init(&b, 4 * big);
  CHECK_INT(reel_redact(line, big, &b), 0);
  CHECK_INT(b.len, big);
  reel_buf_free(&b);
  free(line);

  /* a new set replaces the old one (config reload) */
  const char *reloaded[] = {"the-new-token-1"};
  CHECK_INT(reel_redact_set_secrets(reloaded, 1), 0);
  char *out = r("old " TOK " new the-new-token-1");
  CHECK_STR(out, "old " TOK " new " R);
  free(out);
  CHECK_INT(reel_redact_add_secret(TOK), 0);
  out = r("old " TOK " new the-new-token-1");
  CHECK_STR(out, "old " R " new " R);
  free(out);

  reel_buf_init(&b, 1024);
  reel_redact_url("https://storage.googleapis.com/b/o?X-Goog-Signature=abc#frag", &b);
  CHECK_STR(b.data, "https://storage.googleapis.com/b/o?" REEL_REDACTED);
  reel_buf_free(&b);
  reel_redact_clear_secrets();
  out = r("after clear " TOK);
  CHECK_STR(out, "after clear " TOK);
  free(out);
  return check_report();
}
