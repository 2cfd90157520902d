/* Secret redaction for every line reel writes: process logs, the access log,
 * job logs, errors.
 *
 * What it promises, for a line given in full:
 *  - every occurrence of every registered secret (auth tokens, storage keys,
 *    the URL signing secret) is replaced, wherever it stands in the line
 *    (inside a word, glued to other text, overlapping another occurrence),
 *    and also when it is percent-encoded (any mix of upper and lower case
 *    hex, up to three times over, '+' read as a space);
 *  - values that look like credentials are replaced even when nobody
 *    registered them: "Bearer X" / "Basic X", key=value and key: value with a
 *    credential-like key (token, password, signature, sig, X-Amz-Signature,
 *    X-Goog-Signature, authorization, ...), also when percent-encoded
 *    ("signature%3D...", "Authorization%3A%20Bearer%20...");
 *  - each replaced stretch becomes REEL_REDACTED; nothing about a secret (not
 *    its length) can be read from the result;
 *  - the work is linear in the line's length (times the number of secrets).
 * reel_redact_line adds the promise for lines that are cut: see there. */
#ifndef REEL_REDACT_H
#define REEL_REDACT_H

#include <stddef.h>

#include "common/buf.h"

#define REEL_REDACTED "[REDACTED]"

/* Replaces the registered secrets with list[0..n) (copied), at start-up or on
 * a config reload. Secrets shorter than 4 bytes are skipped (they would blank
 * ordinary text), as are duplicates; at most 256 are kept. Thread-safe: lines
 * being redacted meanwhile use the old set or the new one. Returns 0 or
 * REEL_ENOMEM (then the old set is kept). */
int reel_redact_set_secrets(const char *const *list, size_t n);
/* Adds one secret to the set (same rules as above). Returns 0 or REEL_ENOMEM. */
int reel_redact_add_secret(const char *secret);
/* Forgets every registered secret (tests, shutdown). */
void reel_redact_clear_secrets(void);
/* How many bytes past a cut a reader should keep so that a secret crossing the
 * cut is still seen whole (in its longest encoded form); at most 64 KiB. */
size_t reel_redact_lookahead(void);

/* Appends a redacted copy of text[0..len) to out. Returns 0 or a reel_buf
 * error (REEL_ENOMEM, REEL_ETOOBIG), and then out may hold part of the line. */
int reel_redact(const char *text, size_t len, reel_buf *out);
/* Appends a redacted copy of text[0..len), at most max bytes, to out: the
 * line is redacted first and then cut (never inside a UTF-8 sequence), so a
 * secret that straddles the cut is replaced as a whole. truncated says that
 * text is itself only the head of a longer line; then, and whenever the line
 * is cut, an ending that could be the start of a secret (or of an escape) is
 * replaced too. Returns 0 or a reel_buf error. */
int reel_redact_line(const char *text, size_t len, int truncated, size_t max, reel_buf *out);
/* Returns a heap-allocated redacted copy of a NUL-terminated string (NULL on OOM). */
char *reel_redact_dup(const char *text);
/* Appends url to out with its query string and fragment removed ("?[REDACTED]"
 * marks that one existed), for logging URLs that may be signed. */
int reel_redact_url(const char *url, reel_buf *out);

#endif
