/* Byte slices and capped growable buffers (in the manner of curl's dynbuf):
 * every buffer has a maximum size, so no input can grow the process without bound. */
#ifndef REEL_BUF_H
#define REEL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

/* A borrowed pointer + length; not NUL-terminated. */
typedef struct {
  const char *ptr;
  size_t len;
} reel_slice;

#define REEL_SLICE_LIT(s) ((reel_slice){(s), sizeof(s) - 1})
static inline reel_slice reel_slice_of(const char *s) { return (reel_slice){s, s ? strlen(s) : 0}; }
/* True when the slice equals the C string exactly. */
int reel_slice_eq(reel_slice a, const char *s);
/* True when the slice equals the C string ignoring ASCII case. */
int reel_slice_caseeq(reel_slice a, const char *s);
/* Returns a NUL-terminated heap copy of the slice, or NULL on allocation failure. */
char *reel_slice_dup(reel_slice s);

typedef struct {
  char *data; /* always NUL-terminated when non-NULL */
  size_t len;
  size_t cap;
  size_t max; /* the most this buffer may ever hold */
} reel_buf;

/* Initialises an empty buffer that may grow up to max bytes. */
void reel_buf_init(reel_buf *b, size_t max);
/* Appends bytes; REEL_ETOOBIG past max (buffer unchanged), REEL_ENOMEM on allocation failure. */
int reel_buf_append(reel_buf *b, const void *data, size_t len);
int reel_buf_append_str(reel_buf *b, const char *s);
/* Appends printf-formatted text with the same limits. */
int reel_buf_printf(reel_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int reel_buf_vprintf(reel_buf *b, const char *fmt, va_list ap);
/* Removes the first n bytes. */
void reel_buf_consume(reel_buf *b, size_t n);
/* Empties the buffer, keeping its memory. */
void reel_buf_reset(reel_buf *b);
/* Releases memory; the buffer is empty and reusable after. */
void reel_buf_free(reel_buf *b);
/* Hands the heap string to the caller (who frees it); the buffer becomes empty. */
char *reel_buf_steal(reel_buf *b);

#endif
