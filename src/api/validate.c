/* Request validation for the jobs API. Separate from the handlers so every
 * rule is unit-tested and the JSON path is fuzzed (fuzz/fuzz_job_request.c). */
#include "api/validate.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"

int reel_validate_is_json_content_type(reel_slice ct) {
  size_t n = 0;
  while (n < ct.len && ct.ptr[n] != ';' && ct.ptr[n] != ' ' && ct.ptr[n] != '\t') n++;
  return n == 16 && strncasecmp(ct.ptr, "application/json", 16) == 0;
}

/* Length of the Unicode whitespace character at s (ASCII and White_Space code
 * points such as NO-BREAK SPACE and IDEOGRAPHIC SPACE), or 0 if none. */
static size_t space_len(const unsigned char *s, size_t n) {
  if (n >= 1 && (s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r'))) return 1;
  if (n >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2;
  if (n >= 3 && s[0] == 0xE1 && s[1] == 0x9A && s[2] == 0x80) return 3;  /* U+1680 */
  if (n >= 3 && s[0] == 0xE2 && s[1] == 0x80 && (s[2] <= 0x8A || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
    return 3;                                                             /* U+2000-200A, 2028, 2029, 202F */
  if (n >= 3 && s[0] == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) return 3;  /* U+205F */
  if (n >= 3 && s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80) return 3;  /* U+3000 */
  if (n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF) return 3;  /* U+FEFF */
  return 0;
}

/* Length of the whitespace character ending at s[n-1], or 0. */
static size_t trailing_space_len(const unsigned char *s, size_t n) {
  for (size_t k = 1; k <= 3 && k <= n; k++)
    if (space_len(s + n - k, k) == k) return k;
  return 0;
}

/* Counts UTF-8 code points (jansson has already validated the encoding). */
static size_t utf8_chars(const char *s, size_t n) {
  size_t count = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) count++;
  return count;
}

/* Bounds the work a JSON body can cost before it reaches the parser, which
 * would otherwise hash a million keys on the event loop: one linear pass that
 * counts values (commas and colons outside strings) and nesting depth. Returns
 * 0, or REEL_ETOOBIG with a detail. */
static int check_json_size(const char *body, size_t len, char *detail, size_t detail_len) {
  size_t values = 0, depth = 0;
  int in_string = 0;
  for (size_t i = 0; i < len; i++) {
    char c = body[i];
    if (in_string) {
      if (c == '\\') i++;
      else if (c == '"') in_string = 0;
      continue;
    }
    if (c == '"') in_string = 1;
    else if (c == ',' || c == ':') values++;
    else if (c == '{' || c == '[') depth++;
    else if ((c == '}' || c == ']') && depth > 0) depth--;
    if (values > REEL_VALIDATE_MAX_JSON_VALUES || depth > REEL_VALIDATE_MAX_JSON_DEPTH) {
      snprintf(detail, detail_len, "the body has more than %d JSON values or is nested deeper than %d",
               REEL_VALIDATE_MAX_JSON_VALUES, REEL_VALIDATE_MAX_JSON_DEPTH);
      return REEL_ETOOBIG;
    }
  }
  return 0;
}

int reel_validate_job_request(const char *body, size_t len, int max_chars, char **prompt, char *detail,
                              size_t detail_len) {
  *prompt = NULL;
  if (check_json_size(body, len, detail, detail_len) != 0) return REEL_EPARSE;
  json_error_t jerr;
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  if (!root) {
    if (strstr(jerr.text, "UTF-8") || strstr(jerr.text, "decode byte"))
      snprintf(detail, detail_len, "the body is not valid UTF-8");
    else if (strstr(jerr.text, "duplicate"))
      snprintf(detail, detail_len, "the body has a duplicate key");
    else
      snprintf(detail, detail_len, "the body is not valid JSON (line %d, column %d: %s)", jerr.line, jerr.column,
               jerr.text);
    return REEL_EPARSE;
  }
  int rc = REEL_EPARSE;
  if (!json_is_object(root)) {
    snprintf(detail, detail_len, "the body must be a JSON object like {\"prompt\": \"...\"}");
    goto out;
  }
  const char *key;
  json_t *value;
  json_object_foreach(root, key, value) {
    if (strcmp(key, "prompt") != 0) {
      char shown[64];
      snprintf(shown, sizeof shown, "%s", key);
      snprintf(detail, detail_len,
               "unknown field \"%s\": only \"prompt\" is accepted; everything else comes from the server's configuration",
               shown);
      goto out;
    }
  }
  value = json_object_get(root, "prompt");
  if (!value) {
    snprintf(detail, detail_len, "the field \"prompt\" is required");
    goto out;
  }
  if (!json_is_string(value)) {
    snprintf(detail, detail_len, "\"prompt\" must be a string");
    goto out;
  }
  const char *s = json_string_value(value);
  size_t n = json_string_length(value);
  if (strlen(s) != n) {
    snprintf(detail, detail_len, "\"prompt\" must not contain NUL characters");
    goto out;
  }
  size_t k;
  while (n && (k = space_len((const unsigned char *)s, n)) > 0) s += k, n -= k;
  while (n && (k = trailing_space_len((const unsigned char *)s, n)) > 0) n -= k;
  if (n == 0) {
    snprintf(detail, detail_len, "\"prompt\" must not be empty or only whitespace");
    goto out;
  }
  size_t chars = utf8_chars(s, n);
  if (chars > (size_t)max_chars) {
    snprintf(detail, detail_len, "\"prompt\" has %zu characters; the limit is %d (service.max_prompt_chars)", chars,
             max_chars);
    goto out;
  }
  *prompt = malloc(n + 1);
  if (!*prompt) {
    rc = REEL_ENOMEM;
    goto out;
  }
  memcpy(*prompt, s, n);
  (*prompt)[n] = '\0';
  rc = 0;
out:
  json_decref(root);
  return rc;
}

int reel_validate_int(const char *s, long long min, long long max, long long *out) {
  if (!s || !*s || strlen(s) > 20) return REEL_EINVAL;
  for (const char *p = s; *p; p++)
    if (!isdigit((unsigned char)*p) && !(p == s && *p == '-')) return REEL_EINVAL;
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || end == s || v < min || v > max) return REEL_EINVAL;
  *out = v;
  return 0;
}

int reel_validate_bool(const char *s, int *out) {
  if (!s) return REEL_EINVAL;
  if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0) return *out = 1, 0;
  if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0) return *out = 0, 0;
  return REEL_EINVAL;
}
