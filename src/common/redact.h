/* Secret redaction for every line reel writes: process logs, job logs, errors.
 * Removes bearer tokens, registered secrets (auth tokens, signing keys),
 * signature-like query parameters and key=value credentials. */
#ifndef REEL_REDACT_H
#define REEL_REDACT_H

#include <stddef.h>

#include "common/buf.h"

#define REEL_REDACTED "[REDACTED]"

/* Registers a literal secret (copied) that must never appear in output.
 * Secrets shorter than 4 bytes are ignored (they would redact ordinary text).
 * Call at start-up, before other threads run. */
void reel_redact_add_secret(const char *secret);
/* Forgets every registered secret (tests, config reload). */
void reel_redact_clear_secrets(void);
/* Appends a redacted copy of text[0..len) to out. Returns 0 or a reel_buf error. */
int reel_redact(const char *text, size_t len, reel_buf *out);
/* Returns a heap-allocated redacted copy of a NUL-terminated string (NULL on OOM). */
char *reel_redact_dup(const char *text);
/* Appends url to out with its query string and fragment removed ("?[REDACTED]"
 * marks that one existed), for logging URLs that may be signed. */
int reel_redact_url(const char *url, reel_buf *out);

#endif
