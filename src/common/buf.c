/* Slices and capped buffers shared by every parser and writer in reel. */
#include "common/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "common/error.h"

int reel_slice_eq(reel_slice a, const char *s) {
  size_t n = strlen(s);
  return a.len == n && (n == 0 || memcmp(a.ptr, s, n) == 0);
}

int reel_slice_caseeq(reel_slice a, const char *s) {
  size_t n = strlen(s);
  return a.len == n && (n == 0 || strncasecmp(a.ptr, s, n) == 0);
}

char *reel_slice_dup(reel_slice s) {
  char *p = malloc(s.len + 1);
  if (!p) return NULL;
  if (s.len) memcpy(p, s.ptr, s.len);
  p[s.len] = '\0';
  return p;
}

void reel_buf_init(reel_buf *b, size_t max) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

static int reserve(reel_buf *b, size_t extra) {
  if (extra > b->max || b->len > b->max - extra) return REEL_ETOOBIG;
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  if (cap > b->max + 1) cap = b->max + 1;
  char *p = realloc(b->data, cap);
  if (!p) return REEL_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int reel_buf_append(reel_buf *b, const void *data, size_t len) {
  int rc = reserve(b, len);
  if (rc) return rc;
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

int reel_buf_append_str(reel_buf *b, const char *s) { return reel_buf_append(b, s, strlen(s)); }

int reel_buf_vprintf(reel_buf *b, const char *fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  if (n < 0) return REEL_EINVAL;
  int rc = reserve(b, (size_t)n);
  if (rc) return rc;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int reel_buf_printf(reel_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = reel_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

void reel_buf_consume(reel_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
  } else {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
  }
  if (b->data) b->data[b->len] = '\0';
}

void reel_buf_reset(reel_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

void reel_buf_free(reel_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

char *reel_buf_steal(reel_buf *b) {
  char *p = b->data;
  if (!p) p = calloc(1, 1);
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}
