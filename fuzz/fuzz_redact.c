/* libFuzzer target: the redactor's promises on any line. With a fixed set of
 * secrets, the output of reel_redact_line (cut at a max taken from the input,
 * with or without the truncated flag) is at most max bytes and holds no
 * secret, neither as written nor after one to three rounds of percent-decoding
 * (nor with '+' read as a space); the head of a longer line, when not cut,
 * never ends with the start of one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/redact.h"

static const char *const secrets[] = {"Zq7-t0ken-XYZ", "wJal/K7+bPx", "aaab"};
#define N_SECRETS (sizeof secrets / sizeof *secrets)

static int hex(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
}

/* One round of percent-decoding of s[0..n) into out; returns the new length. */
static size_t decode(const unsigned char *s, size_t n, int plus, unsigned char *out) {
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out[j++] = (unsigned char)(hex(s[i + 1]) << 4 | hex(s[i + 2]));
      i += 2;
    } else {
      out[j++] = plus && s[i] == '+' ? ' ' : s[i];
    }
  }
  return j;
}

static void check_no_secret(const unsigned char *s, size_t n, int cut) {
  for (size_t k = 0; k < N_SECRETS; k++) {
    size_t m = strlen(secrets[k]);
    if (memmem(s, n, secrets[k], m)) __builtin_trap();
    if (cut)
      for (size_t j = 1; j <= m && j <= n; j++)
        if (memcmp(s + n - j, secrets[k], j) == 0) __builtin_trap();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    if (reel_redact_set_secrets(secrets, N_SECRETS) != 0) __builtin_trap();
    ready = 1;
  }
  if (size < 2) return 0;
  size_t max = (size_t)data[0] * 4 + 11; /* sometimes shorter than the line, sometimes not */
  int truncated = data[1] & 1;
  const char *line = (const char *)data + 2;
  size_t len = size - 2;
  reel_buf out;
  reel_buf_init(&out, 1 << 20);
  if (reel_redact_line(line, len, truncated, max, &out) != 0 || !out.data) __builtin_trap();
  if (out.len > max) __builtin_trap();
  /* uncut, the head of a longer line never ends with the start of a secret */
  reel_buf whole;
  reel_buf_init(&whole, 1 << 20);
  if (reel_redact_line(line, len, truncated, SIZE_MAX, &whole) != 0 || !whole.data) __builtin_trap();
  if (whole.len <= max && (whole.len != out.len || memcmp(whole.data, out.data, out.len) != 0)) __builtin_trap();
  if (whole.len <= max && truncated) check_no_secret((const unsigned char *)out.data, out.len, 1);
  reel_buf_free(&whole);
  unsigned char *a = malloc(out.len + 1), *b = malloc(out.len + 1);
  if (!a || !b) __builtin_trap();
  memcpy(a, out.data, out.len);
  size_t n = out.len;
  check_no_secret(a, n, 0);
  size_t pn = decode(a, n, 1, b);
  check_no_secret(b, pn, 0);
  for (int round = 0; round < 3; round++) {
    n = decode(a, n, 0, b);
    check_no_secret(b, n, 0);
    memcpy(a, b, n);
  }
  free(a);
  free(b);
  reel_buf_free(&out);
  return 0;
}
