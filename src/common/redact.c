/* Redaction is pattern-based and conservative: it would rather blank a harmless
 * word than let a credential through. Used by the process logger and the job log. */
#include "common/redact.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"

#define MAX_SECRETS 64
static char *secrets[MAX_SECRETS];
static size_t secret_lens[MAX_SECRETS];
static int n_secrets;

void reel_redact_add_secret(const char *secret) {
  if (!secret || strlen(secret) < 4 || n_secrets >= MAX_SECRETS) return;
  for (int i = 0; i < n_secrets; i++)
    if (strcmp(secrets[i], secret) == 0) return;
  secrets[n_secrets] = strdup(secret);
  if (!secrets[n_secrets]) return;
  secret_lens[n_secrets] = strlen(secret);
  n_secrets++;
}

void reel_redact_clear_secrets(void) {
  for (int i = 0; i < n_secrets; i++) free(secrets[i]);
  n_secrets = 0;
}

/* Names whose values are credentials, in key=value, key: value or ?key=value form. */
static const char *const secret_keys[] = {
    "token",        "access_token", "refresh_token", "id_token",   "api_key",   "apikey",
    "password",     "passwd",       "secret",        "secret_key", "client_secret",
    "private_key",  "signature",    "sig",           "x-amz-signature", "x-amz-credential",
    "x-amz-security-token", "x-goog-signature", "x-goog-credential", "x-reel-signature",
    "authorization", "aws_secret_access_key", "key",
};

static int is_key_char(int c) { return isalnum(c) || c == '_' || c == '-' || c == '.'; }

static int is_secret_key(const char *k, size_t n) {
  for (size_t i = 0; i < sizeof secret_keys / sizeof *secret_keys; i++) {
    size_t m = strlen(secret_keys[i]);
    /* whole key, or a key ending in _token/_secret/_key etc. */
    if (n == m && strncasecmp(k, secret_keys[i], n) == 0) return 1;
    if (n > m && m >= 5 && (k[n - m - 1] == '_' || k[n - m - 1] == '-') &&
        strncasecmp(k + n - m, secret_keys[i], m) == 0)
      return 1;
  }
  return 0;
}

static size_t value_end(const char *t, size_t i, size_t len, int quoted) {
  if (quoted) {
    while (i < len && t[i] != '"') i++;
    return i;
  }
  while (i < len && !isspace((unsigned char)t[i]) && t[i] != '&' && t[i] != ',' && t[i] != ';' &&
         t[i] != '"' && t[i] != '\'')
    i++;
  return i;
}

int reel_redact(const char *t, size_t len, reel_buf *out) {
  size_t i = 0, copied = 0;
  int rc = 0;
#define FLUSH_TO(pos) \
  do { rc = reel_buf_append(out, t + copied, (pos) - copied); if (rc) return rc; } while (0)
  while (i < len) {
    /* registered literal secrets */
    int hit = 0;
    for (int s = 0; s < n_secrets; s++) {
      if (secret_lens[s] <= len - i && memcmp(t + i, secrets[s], secret_lens[s]) == 0) {
        FLUSH_TO(i);
        if ((rc = reel_buf_append_str(out, REEL_REDACTED))) return rc;
        i += secret_lens[s];
        copied = i;
        hit = 1;
        break;
      }
    }
    if (hit) continue;
    /* "Bearer <token>" / "Basic <creds>" */
    if ((i == 0 || !isalnum((unsigned char)t[i - 1])) &&
        ((len - i > 7 && strncasecmp(t + i, "bearer ", 7) == 0) ||
         (len - i > 6 && strncasecmp(t + i, "basic ", 6) == 0))) {
      size_t start = i + (tolower((unsigned char)t[i]) == 'b' && tolower((unsigned char)t[i + 1]) == 'e' ? 7 : 6);
      while (start < len && t[start] == ' ') start++;
      size_t end = value_end(t, start, len, 0);
      if (end > start) {
        FLUSH_TO(start);
        if ((rc = reel_buf_append_str(out, REEL_REDACTED))) return rc;
        i = copied = end;
        continue;
      }
    }
    /* key=value, key: value, "key": "value" */
    if (is_key_char((unsigned char)t[i]) && (i == 0 || !is_key_char((unsigned char)t[i - 1]))) {
      size_t k = i;
      while (k < len && is_key_char((unsigned char)t[k])) k++;
      size_t klen = k - i;
      size_t j = k;
      if (j < len && t[j] == '"') j++; /* closing quote of a JSON key */
      while (j < len && t[j] == ' ') j++;
      if (is_secret_key(t + i, klen) && j < len && (t[j] == '=' || t[j] == ':')) {
        j++;
        while (j < len && t[j] == ' ') j++;
        int quoted = 0;
        if (j < len && t[j] == '"') { quoted = 1; j++; }
        /* "Authorization: Bearer <credential>": the credential follows the scheme */
        if (len - j > 7 && strncasecmp(t + j, "bearer ", 7) == 0) j += 7;
        else if (len - j > 6 && strncasecmp(t + j, "basic ", 6) == 0) j += 6;
        while (j < len && t[j] == ' ') j++;
        size_t end = value_end(t, j, len, quoted);
        if (end > j) {
          FLUSH_TO(j);
          if ((rc = reel_buf_append_str(out, REEL_REDACTED))) return rc;
          i = copied = end;
          continue;
        }
      }
      i = k;
      continue;
    }
    i++;
  }
  FLUSH_TO(len);
#undef FLUSH_TO
  if (!out->data) rc = reel_buf_append(out, "", 0);
  return rc;
}

char *reel_redact_dup(const char *text) {
  reel_buf b;
  reel_buf_init(&b, (size_t)1 << 30);
  if (reel_redact(text, strlen(text), &b) != 0) {
    reel_buf_free(&b);
    return NULL;
  }
  return reel_buf_steal(&b);
}

int reel_redact_url(const char *url, reel_buf *out) {
  size_t n = strcspn(url, "?#");
  int rc = reel_buf_append(out, url, n);
  if (!rc && url[n]) rc = reel_buf_append_str(out, "?" REEL_REDACTED);
  return rc;
}
