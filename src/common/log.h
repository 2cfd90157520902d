/* Structured JSON logs on stderr, one object per line, every string value redacted. */
#ifndef REEL_LOG_H
#define REEL_LOG_H

#include <stddef.h>

typedef enum { REEL_LOG_DEBUG, REEL_LOG_INFO, REEL_LOG_WARN, REEL_LOG_ERROR } reel_log_level;

/* Lines below this level are dropped (default INFO). */
void reel_log_set_level(reel_log_level level);
/* Parses "debug|info|warn|error"; returns -1 if unknown. */
int reel_log_level_parse(const char *s);
/* Writes {"ts":..., "level":..., "msg": msg, <fields>} to stderr. fields_fmt is a
 * jansson json_pack format for an object ("{s:s, s:i}") or NULL for none.
 * Thread-safe: each line is written with a single write(2). */
void reel_log(reel_log_level level, const char *msg, const char *fields_fmt, ...);

/* A field of a hot-path log line. */
typedef struct {
  const char *key;
  /* STR: str is NUL-terminated (NULL: ""); STRN: str[0..len), not NUL-terminated;
   * MS: a duration in ms, 3 decimals */
  enum { REEL_LOG_STR, REEL_LOG_INT, REEL_LOG_MS, REEL_LOG_STRN } type;
  const char *str;
  long long num;
  double ms;
  size_t len; /* STRN: the length of str */
  size_t max; /* STR, STRN: keep at most this many bytes (0: no cap), cut after redaction */
} reel_log_field;

/* Same line format and redaction as reel_log, without building a JSON tree:
 * for lines written on every request. String values are redacted in full,
 * then cut to their max (so a secret crossing the cut never survives in
 * part), then escaped. */
void reel_log_fields(reel_log_level level, const char *msg, const reel_log_field *fields, int n);

#endif
