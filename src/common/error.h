/* Error codes: negative integers from one table, each with a name and a message
 * (in the manner of libuv's UV_ERRNO_MAP). Zero is success. */
#ifndef REEL_ERROR_H
#define REEL_ERROR_H

#define REEL_ERRNO_MAP(XX)                                        \
  XX(NOMEM, "out of memory")                                      \
  XX(INVAL, "invalid argument")                                   \
  XX(NOTFOUND, "not found")                                       \
  XX(CONFLICT, "conflicts with the current state")                \
  XX(IO, "input/output error")                                    \
  XX(STORE, "job store error")                                    \
  XX(TOOBIG, "too large")                                         \
  XX(PARSE, "malformed input")                                    \
  XX(AGAIN, "more input needed")                                  \
  XX(BUSY, "busy, try again later")                               \
  XX(TIMEOUT, "timed out")                                        \
  XX(CONFIG, "configuration error")                               \
  XX(UNSUPPORTED, "not supported")                                \
  XX(HEADERS_TOO_LARGE, "request header fields too large")        \
  XX(CLOSED, "closed")                                            \
  XX(STALE, "this run no longer holds the job (its lease passed to another)")

typedef enum {
  REEL_OK = 0,
  REEL_ERRNO_FIRST_ = -1000,
#define REEL_ERR_ENUM_(name, msg) REEL_E##name,
  REEL_ERRNO_MAP(REEL_ERR_ENUM_)
#undef REEL_ERR_ENUM_
  REEL_ERRNO_LAST_
} reel_err;

/* Returns a short human message for an error code ("unknown error" if not one). */
const char *reel_strerror(int err);
/* Returns the symbolic name of an error code, e.g. "REEL_ENOTFOUND". */
const char *reel_err_name(int err);

#endif
