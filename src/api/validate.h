/* Input rules of the jobs API, as pure functions (tested and fuzzed without a server). */
#ifndef REEL_VALIDATE_H
#define REEL_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* True when a Content-Type value is application/json (any case, parameters such as charset allowed). */
int reel_validate_is_json_content_type(reel_slice content_type);
/* The most JSON values and nesting a request body may hold: bodies past them
 * are refused before parsing, so a big body cannot stall the event loop. */
#define REEL_VALIDATE_MAX_JSON_VALUES 10000
#define REEL_VALIDATE_MAX_JSON_DEPTH 64

/* Checks a POST /v1/jobs body (first its size in JSON values and depth, see
 * above): a JSON object whose only key is "prompt", a
 * string of valid UTF-8 with no NUL, non-empty after trimming whitespace, at
 * most max_chars characters (code points). On success returns 0 and the
 * trimmed prompt in *prompt (heap). Otherwise REEL_EPARSE and a one-sentence
 * reason in detail. */
int reel_validate_job_request(const char *body, size_t len, int max_chars, char **prompt, char *detail,
                              size_t detail_len);
/* Parses a decimal integer in [min, max] with nothing else around it. 0 or REEL_EINVAL. */
int reel_validate_int(const char *s, long long min, long long max, long long *out);
/* Parses "true"/"false"/"1"/"0" (any case). 0 or REEL_EINVAL. */
int reel_validate_bool(const char *s, int *out);

#endif
