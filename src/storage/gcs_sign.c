/* Google Cloud Storage V4 signing with a service-account key (GnuTLS for
 * SHA-256 and RSA PKCS#1 v1.5, jansson for the key file). Exists so reel can
 * hand out download URLs and upload to GCS through the XML API without an
 * OAuth2 token; `reel-vectors gcs` checks it against Google's conformance
 * cases. The canonical request is built exactly as Google's V4 signing
 * process describes; see gcs_sign.h for what each option means. */
#include "storage/gcs_sign.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/error.h"

#define OUTPUT_MAX (64 * 1024) /* cap of every string this module builds */
#define ALGORITHM "GOOG4-RSA-SHA256"
#define SCOPE_SUFFIX "/auto/storage/goog4_request"

struct reel_gcs_key {
  char *client_email;
  gnutls_privkey_t privkey;
};

/* ------------------------------------------------------------- helpers -- */

static int fail(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* Message for a reel_buf failure while building "what". */
static int fail_buf(char *err, size_t errlen, int rc, const char *what) {
  if (rc == REEL_ETOOBIG) return fail(err, errlen, rc, "%s would exceed %d bytes", what, OUTPUT_MAX);
  return fail(err, errlen, rc, "%s: %s", what, reel_strerror(rc));
}

static void wipe(void *p, size_t n) {
  volatile unsigned char *q = p;
  while (n--) *q++ = 0;
}

static int is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

/* Valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (len - i <= n) return 0;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return 0;
    i += n + 1;
  }
  return 1;
}

/* Decodes one code point of valid UTF-8 at s, advancing *i. */
static unsigned utf8_next(const unsigned char *s, size_t *i) {
  unsigned char c = s[*i];
  if (c < 0x80) {
    (*i)++;
    return c;
  }
  size_t n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
  unsigned cp = c & (n == 3 ? 0x07 : n == 2 ? 0x0F : 0x1F);
  for (size_t k = 1; k <= n; k++) cp = (cp << 6) | (s[*i + k] & 0x3F);
  *i += n + 1;
  return cp;
}

static int hex_encode(const unsigned char *data, size_t len, reel_buf *out) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    char pair[2] = {hex[data[i] >> 4], hex[data[i] & 15]};
    int rc = reel_buf_append(out, pair, 2);
    if (rc) return rc;
  }
  return 0;
}

static int base64_encode(const unsigned char *data, size_t len, reel_buf *out) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < len; i += 3) {
    unsigned v = (unsigned)data[i] << 16;
    if (i + 1 < len) v |= (unsigned)data[i + 1] << 8;
    if (i + 2 < len) v |= data[i + 2];
    char quad[4] = {alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63], i + 1 < len ? alphabet[(v >> 6) & 63] : '=',
                    i + 2 < len ? alphabet[v & 63] : '='};
    int rc = reel_buf_append(out, quad, 4);
    if (rc) return rc;
  }
  return 0;
}

int reel_gcs_percent_encode(const char *s, size_t len, int keep_slash, reel_buf *out) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    int rc;
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      rc = reel_buf_append(out, &s[i], 1);
    } else {
      char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
      rc = reel_buf_append(out, esc, 3);
    }
    if (rc) return rc;
  }
  return 0;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

int reel_gcs_canonical_header_value(const char *value, reel_buf *out) {
  for (const char *p = value; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if ((c < 0x20 && c != '\t') || c == 0x7F) return REEL_EINVAL;
  }
  const char *p = value;
  while (is_blank(*p)) p++;
  int pending_space = 0;
  for (; *p; p++) {
    if (is_blank(*p)) {
      pending_space = 1;
      continue;
    }
    int rc = 0;
    if (pending_space) rc = reel_buf_append(out, " ", 1);
    if (!rc) rc = reel_buf_append(out, p, 1);
    if (rc) return rc;
    pending_space = 0;
  }
  return 0;
}

/* Breaks unix seconds into UTC fields; 0 or REEL_EINVAL. */
static int utc_fields(int64_t t, struct tm *tm) {
  if (t < 0 || t > REEL_GCS_TIME_MAX) return REEL_EINVAL;
  time_t tt = (time_t)t;
  if (!gmtime_r(&tt, tm)) return REEL_EINVAL;
  return 0;
}

/* Writes v as exactly width decimal digits (v is in range by construction). */
static char *put_digits(char *p, int v, int width) {
  for (int i = width - 1; i >= 0; i--) {
    p[i] = (char)('0' + v % 10);
    v /= 10;
  }
  return p + width;
}

/* Formats t as YYYY<d>MM<d>DDTHH<t>MM<t>SSZ, where the delimiters may be empty. */
static int format_utc(int64_t t, int with_delimiters, char *out) {
  struct tm tm;
  if (utc_fields(t, &tm)) return REEL_EINVAL;
  char *p = put_digits(out, tm.tm_year + 1900, 4);
  if (with_delimiters) *p++ = '-';
  p = put_digits(p, tm.tm_mon + 1, 2);
  if (with_delimiters) *p++ = '-';
  p = put_digits(p, tm.tm_mday, 2);
  *p++ = 'T';
  p = put_digits(p, tm.tm_hour, 2);
  if (with_delimiters) *p++ = ':';
  p = put_digits(p, tm.tm_min, 2);
  if (with_delimiters) *p++ = ':';
  p = put_digits(p, tm.tm_sec, 2);
  *p++ = 'Z';
  *p = '\0';
  return 0;
}

int reel_gcs_format_timestamp(int64_t t, char out[17]) { return format_utc(t, 0, out); }

/* "YYYY-MM-DDTHH:MM:SSZ", the POST policy's expiration. */
static int format_iso8601(int64_t t, char out[21]) { return format_utc(t, 1, out); }

/* --------------------------------------------------------------- keys -- */

static int load_json_key(const char *json, size_t len, const char *where, reel_gcs_key **out, char *err,
                         size_t errlen) {
  *out = NULL;
  if (len > REEL_GCS_KEY_FILE_MAX)
    return fail(err, errlen, REEL_ETOOBIG, "%s: larger than %d bytes; is it a service-account key file?", where,
                REEL_GCS_KEY_FILE_MAX);
  if (memchr(json, '\0', len))
    return fail(err, errlen, REEL_EPARSE, "%s: contains a NUL byte; expected a service-account JSON key file", where);
  json_error_t jerr;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    /* jansson's own text may quote the input near the error (it could be key
     * material), so only the position is reported. */
    return fail(err, errlen, REEL_EPARSE,
                "%s: not valid JSON (line %d, column %d); expected a service-account key file from Google Cloud", where,
                jerr.line, jerr.column);
  }
  int rc = 0;
  reel_gcs_key *key = NULL;
  json_t *pem_value = json_object_get(root, "private_key");
  if (!json_is_object(root)) {
    rc = fail(err, errlen, REEL_EPARSE, "%s: not a JSON object; expected a service-account key file", where);
    goto done;
  }
  json_t *type = json_object_get(root, "type");
  if (type && (!json_is_string(type) || strcmp(json_string_value(type), "service_account") != 0)) {
    rc = fail(err, errlen, REEL_EPARSE, "%s: \"type\" is not \"service_account\"; create a service-account key", where);
    goto done;
  }
  json_t *email = json_object_get(root, "client_email");
  const char *email_text = json_is_string(email) ? json_string_value(email) : NULL;
  size_t email_len = email_text ? strlen(email_text) : 0;
  int email_ok = email_len > 0 && email_len <= 254 && strchr(email_text, '@') != NULL;
  for (size_t i = 0; email_ok && i < email_len; i++) {
    unsigned char c = (unsigned char)email_text[i];
    if (c <= 0x20 || c >= 0x7F || c == '/') email_ok = 0;
  }
  if (!email_ok) {
    rc = fail(err, errlen, REEL_EPARSE, "%s: \"client_email\" is missing or not an e-mail address", where);
    goto done;
  }
  if (!json_is_string(pem_value) || json_string_length(pem_value) == 0) {
    rc = fail(err, errlen, REEL_EPARSE, "%s: \"private_key\" is missing or not a string", where);
    goto done;
  }
  key = calloc(1, sizeof *key);
  if (!key || !(key->client_email = strdup(email_text))) {
    rc = fail(err, errlen, REEL_ENOMEM, "%s: out of memory", where);
    goto done;
  }
  int grc = gnutls_privkey_init(&key->privkey);
  if (grc < 0) {
    key->privkey = NULL;
    rc = fail(err, errlen, REEL_EIO, "%s: cannot initialise a private key (GnuTLS: %s)", where, gnutls_strerror(grc));
    goto done;
  }
  gnutls_datum_t pem = {(unsigned char *)json_string_value(pem_value), (unsigned)json_string_length(pem_value)};
  grc = gnutls_privkey_import_x509_raw(key->privkey, &pem, GNUTLS_X509_FMT_PEM, NULL, 0);
  if (grc < 0) {
    rc = fail(err, errlen, REEL_EPARSE,
              "%s: \"private_key\" is not a PEM private key (GnuTLS: %s); download a new JSON key", where,
              gnutls_strerror(grc));
    goto done;
  }
  if (gnutls_privkey_get_pk_algorithm(key->privkey, NULL) != GNUTLS_PK_RSA) {
    rc = fail(err, errlen, REEL_EUNSUPPORTED, "%s: \"private_key\" is not an RSA key; GOOG4-RSA-SHA256 needs RSA",
              where);
    goto done;
  }
done:
  /* The PEM text lives in jansson's string; wipe it before jansson frees it. */
  if (json_is_string(pem_value)) wipe((char *)json_string_value(pem_value), json_string_length(pem_value));
  json_decref(root);
  if (rc) {
    reel_gcs_key_free(key);
    return rc;
  }
  *out = key;
  return 0;
}

int reel_gcs_key_load_json(const char *json, size_t len, reel_gcs_key **out, char *err, size_t errlen) {
  if (!out) return fail(err, errlen, REEL_EINVAL, "no place for the key");
  *out = NULL;
  if (!json) return fail(err, errlen, REEL_EINVAL, "service-account key: no JSON given");
  return load_json_key(json, len, "service-account key", out, err, errlen);
}

int reel_gcs_key_load_file(const char *path, reel_gcs_key **out, char *err, size_t errlen) {
  if (!out) return fail(err, errlen, REEL_EINVAL, "no place for the key");
  *out = NULL;
  if (!path || !*path) return fail(err, errlen, REEL_EINVAL, "service-account key file: no path given");
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    return fail(err, errlen, e == ENOENT ? REEL_ENOTFOUND : REEL_EIO,
                "service-account key file %s: %s; set the path of the JSON key downloaded from Google Cloud", path,
                strerror(e));
  }
  size_t cap = REEL_GCS_KEY_FILE_MAX + 1, len = 0;
  char *data = malloc(cap);
  if (!data) {
    fclose(f);
    return fail(err, errlen, REEL_ENOMEM, "service-account key file %s: out of memory", path);
  }
  size_t n;
  while (len < cap && (n = fread(data + len, 1, cap - len, f)) > 0) len += n;
  int read_error = ferror(f);
  fclose(f);
  int rc;
  if (read_error) {
    rc = fail(err, errlen, REEL_EIO, "service-account key file %s: read error", path);
  } else {
    char where[512];
    snprintf(where, sizeof where, "service-account key file %s", path);
    rc = load_json_key(data, len, where, out, err, errlen);
  }
  wipe(data, len);
  free(data);
  return rc;
}

const char *reel_gcs_key_client_email(const reel_gcs_key *key) { return key ? key->client_email : NULL; }

void reel_gcs_key_free(reel_gcs_key *key) {
  if (!key) return;
  if (key->privkey) gnutls_privkey_deinit(key->privkey);
  free(key->client_email);
  free(key);
}

/* Appends the lowercase hex RSA-SHA256 (PKCS#1 v1.5) signature of data. */
static int sign_hex(const reel_gcs_key *key, const char *data, size_t len, reel_buf *out, char *err, size_t errlen) {
  gnutls_datum_t in = {(unsigned char *)data, (unsigned)len};
  gnutls_datum_t sig = {NULL, 0};
  int grc = gnutls_privkey_sign_data(key->privkey, GNUTLS_DIG_SHA256, 0, &in, &sig);
  if (grc < 0) return fail(err, errlen, REEL_EIO, "RSA-SHA256 signing failed (GnuTLS: %s)", gnutls_strerror(grc));
  int rc = hex_encode(sig.data, sig.size, out);
  gnutls_free(sig.data);
  if (rc) return fail_buf(err, errlen, rc, "signature");
  return 0;
}

/* ----------------------------------------------------- input validation -- */

static int check_bucket(const char *bucket, char *err, size_t errlen) {
  size_t len = bucket ? strlen(bucket) : 0;
  if (len < 3 || len > REEL_GCS_BUCKET_MAX)
    return fail(err, errlen, REEL_EINVAL, "bucket name must be 3 to %d characters", REEL_GCS_BUCKET_MAX);
  for (size_t i = 0; i < len; i++) {
    char c = bucket[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return fail(err, errlen, REEL_EINVAL, "bucket name may hold only a-z, 0-9, '-', '_' and '.' (byte %zu)", i);
  }
  char first = bucket[0], last = bucket[len - 1];
  if (first == '-' || first == '_' || first == '.' || last == '-' || last == '_' || last == '.')
    return fail(err, errlen, REEL_EINVAL, "bucket name must start and end with a letter or digit");
  return 0;
}

static int check_object(const char *object, int required, char *err, size_t errlen) {
  size_t len = object ? strlen(object) : 0;
  if (len == 0) return required ? fail(err, errlen, REEL_EINVAL, "object name is empty") : 0;
  if (len > REEL_GCS_OBJECT_MAX)
    return fail(err, errlen, REEL_EINVAL, "object name is longer than %d bytes", REEL_GCS_OBJECT_MAX);
  if (!valid_utf8((const unsigned char *)object, len))
    return fail(err, errlen, REEL_EINVAL, "object name is not valid UTF-8");
  if (strpbrk(object, "\r\n")) return fail(err, errlen, REEL_EINVAL, "object name contains CR or LF");
  return 0;
}

static int check_times(int64_t timestamp, int64_t expires_in, char *err, size_t errlen) {
  if (timestamp < 0 || timestamp > REEL_GCS_TIME_MAX)
    return fail(err, errlen, REEL_EINVAL, "timestamp %lld is out of range (0 to %lld)", (long long)timestamp,
                (long long)REEL_GCS_TIME_MAX);
  if (expires_in < 1 || expires_in > REEL_GCS_EXPIRES_MAX)
    return fail(err, errlen, REEL_EINVAL, "expiration %lld s is out of range (1 to %d s, 7 days)",
                (long long)expires_in, REEL_GCS_EXPIRES_MAX);
  if (timestamp + expires_in > REEL_GCS_TIME_MAX)
    return fail(err, errlen, REEL_EINVAL, "timestamp + expiration is past year 9999");
  return 0;
}

/* Checks host[:port] (or [v6]:port) as it may appear in a URL. */
static int host_ok(const char *s, size_t len) {
  if (len == 0 || len > REEL_GCS_HOST_MAX) return 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
          c == '_' || c == ':' || c == '[' || c == ']'))
      return 0;
  }
  return s[0] != ':' && s[0] != '.';
}

/* Splits "host[:port]" or "http(s)://host[:port][/]" into scheme (when
 * written) and authority (lowercased). */
static int split_endpoint(const char *value, const char *what, const char **scheme, char authority[REEL_GCS_HOST_MAX + 1],
                          char *err, size_t errlen) {
  const char *rest = value;
  *scheme = NULL;
  const char *sep = strstr(value, "://");
  if (sep) {
    size_t slen = (size_t)(sep - value);
    if (slen == 4 && strncasecmp(value, "http", 4) == 0) {
      *scheme = "http";
    } else if (slen == 5 && strncasecmp(value, "https", 5) == 0) {
      *scheme = "https";
    } else {
      return fail(err, errlen, REEL_EINVAL, "%s: only http:// and https:// are supported", what);
    }
    rest = sep + 3;
  }
  size_t len = strlen(rest);
  if (len > 0 && rest[len - 1] == '/') len--;
  if (!host_ok(rest, len))
    return fail(err, errlen, REEL_EINVAL, "%s: expected host[:port] or http(s)://host[:port] without a path", what);
  for (size_t i = 0; i < len; i++) authority[i] = (char)((rest[i] >= 'A' && rest[i] <= 'Z') ? rest[i] + 32 : rest[i]);
  authority[len] = '\0';
  return 0;
}

/* A resolved location: URL scheme, authority (host[:port]) and whether the
 * bucket goes into the path. */
typedef struct {
  const char *scheme;
  char authority[2 * REEL_GCS_HOST_MAX + 2];
  int bucket_in_path;
} resolved_location;

static int resolve_location(const reel_gcs_location *loc, const char *bucket, resolved_location *out, char *err,
                            size_t errlen) {
  const char *explicit_scheme = NULL;
  if (loc->scheme) {
    if (strcasecmp(loc->scheme, "https") == 0) {
      explicit_scheme = "https";
    } else if (strcasecmp(loc->scheme, "http") == 0) {
      explicit_scheme = "http";
    } else {
      return fail(err, errlen, REEL_EINVAL, "scheme must be \"https\" or \"http\"");
    }
  }
  char host[REEL_GCS_HOST_MAX + 1];
  const char *written_scheme = NULL;
  int rc;
  switch (loc->style) {
  case REEL_GCS_BUCKET_BOUND_HOSTNAME:
    if (!loc->bucket_bound_hostname || !*loc->bucket_bound_hostname)
      return fail(err, errlen, REEL_EINVAL, "the bucket-bound-hostname style needs bucket_bound_hostname");
    rc = split_endpoint(loc->bucket_bound_hostname, "bucket_bound_hostname", &written_scheme, host, err, errlen);
    if (rc) return rc;
    out->scheme = written_scheme ? written_scheme : explicit_scheme ? explicit_scheme : "https";
    memcpy(out->authority, host, strlen(host) + 1);
    out->bucket_in_path = 0;
    return 0;
  case REEL_GCS_PATH_STYLE:
  case REEL_GCS_VIRTUAL_HOSTED_STYLE:
    break;
  default:
    return fail(err, errlen, REEL_EINVAL, "unknown URL style %d", (int)loc->style);
  }
  const char *fallback_scheme = explicit_scheme ? explicit_scheme : "https";
  if (loc->hostname && *loc->hostname) {
    rc = split_endpoint(loc->hostname, "hostname", &written_scheme, host, err, errlen);
  } else if (loc->endpoint && *loc->endpoint) {
    rc = split_endpoint(loc->endpoint, "endpoint", &written_scheme, host, err, errlen);
  } else if (loc->emulator_host && *loc->emulator_host) {
    rc = split_endpoint(loc->emulator_host, "emulator host", &written_scheme, host, err, errlen);
    if (!explicit_scheme) fallback_scheme = "http";
  } else {
    const char *universe = loc->universe_domain && *loc->universe_domain ? loc->universe_domain : "googleapis.com";
    size_t ulen = strlen(universe);
    if (ulen > REEL_GCS_HOST_MAX - 8 || !host_ok(universe, ulen) || strpbrk(universe, ":[]"))
      return fail(err, errlen, REEL_EINVAL, "universe domain must be a DNS name such as googleapis.com");
    memcpy(host, "storage.", 8);
    for (size_t i = 0; i <= ulen; i++)
      host[8 + i] = (char)((universe[i] >= 'A' && universe[i] <= 'Z') ? universe[i] + 32 : universe[i]);
    rc = 0;
  }
  if (rc) return rc;
  out->scheme = written_scheme ? written_scheme : fallback_scheme;
  if (loc->style == REEL_GCS_VIRTUAL_HOSTED_STYLE) {
    snprintf(out->authority, sizeof out->authority, "%s.%s", bucket, host);
    out->bucket_in_path = 0;
  } else {
    memcpy(out->authority, host, strlen(host) + 1);
    out->bucket_in_path = 1;
  }
  return 0;
}

/* The signed host header: the authority without its port. */
static void host_without_port(const char *authority, char *out, size_t outlen) {
  size_t len = strlen(authority);
  if (authority[0] == '[') {
    const char *close = strchr(authority, ']');
    if (close) len = (size_t)(close - authority) + 1;
  } else {
    const char *colon = strrchr(authority, ':');
    if (colon) {
      const char *p = colon + 1;
      while (*p >= '0' && *p <= '9') p++;
      if (*p == '\0') len = (size_t)(colon - authority);
    }
  }
  if (len >= outlen) len = outlen - 1;
  memcpy(out, authority, len);
  out[len] = '\0';
}

/* Appends the resource path: /bucket[/object] or /[object]. */
static int append_path(reel_buf *b, const resolved_location *loc, const char *bucket, const char *object) {
  int rc = reel_buf_append(b, "/", 1);
  if (!rc && loc->bucket_in_path) {
    rc = reel_buf_append_str(b, bucket);
    if (!rc && object && *object) rc = reel_buf_append(b, "/", 1);
  }
  if (!rc && object && *object) rc = reel_gcs_percent_encode(object, strlen(object), 1, b);
  return rc;
}

/* ----------------------------------------------------------- signed URLs -- */

typedef struct {
  char *name;   /* lowercase */
  char *value;  /* canonical */
  size_t order; /* position in the request, so repeated names join in order */
} header_entry;

typedef struct {
  char *name;  /* encoded */
  char *value; /* encoded */
} query_entry;

static int cmp_headers(const void *a, const void *b) {
  const header_entry *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : (x->order < y->order ? -1 : x->order > y->order);
}

static int cmp_query(const void *a, const void *b) {
  const query_entry *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->value, y->value);
}

static const char *const methods[] = {"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"};

static const char *const reserved_query[] = {"X-Goog-Algorithm", "X-Goog-Credential",    "X-Goog-Date",
                                             "X-Goog-Expires",   "X-Goog-SignedHeaders", "X-Goog-Signature"};

static int header_name_ok(const char *s, size_t len) {
  if (len == 0 || len > REEL_GCS_NAME_MAX) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7F || c == ':' || c == ';' || c == ',') return 0;
  }
  return 1;
}

typedef struct {
  header_entry *headers;
  size_t header_count;
  query_entry *query;
  size_t query_count;
} sign_state;

static void sign_state_free(sign_state *st) {
  for (size_t i = 0; i < st->header_count; i++) {
    free(st->headers[i].name);
    free(st->headers[i].value);
  }
  for (size_t i = 0; i < st->query_count; i++) {
    free(st->query[i].name);
    free(st->query[i].value);
  }
  free(st->headers);
  free(st->query);
}

/* Lowercases and trims the names, canonicalises the values, adds host, sorts
 * by name and joins the values of a repeated name with "," in request order. */
static int collect_headers(const reel_gcs_url_request *req, const char *host, sign_state *st, char *err,
                           size_t errlen) {
  if (req->header_count > REEL_GCS_PARAMS_MAX)
    return fail(err, errlen, REEL_EINVAL, "more than %d headers", REEL_GCS_PARAMS_MAX);
  if (req->header_count && !req->headers) return fail(err, errlen, REEL_EINVAL, "header_count without headers");
  st->headers = calloc(req->header_count + 1, sizeof *st->headers);
  if (!st->headers) return fail(err, errlen, REEL_ENOMEM, "out of memory");
  for (size_t i = 0; i < req->header_count; i++) {
    const char *name = req->headers[i].name, *value = req->headers[i].value;
    if (!name || !value) return fail(err, errlen, REEL_EINVAL, "header %zu has no name or value", i);
    while (is_blank(*name)) name++;
    size_t nlen = strlen(name);
    while (nlen && is_blank(name[nlen - 1])) nlen--;
    if (!header_name_ok(name, nlen))
      return fail(err, errlen, REEL_EINVAL,
                  "header %zu: name must be 1 to %d visible ASCII characters without ':', ';' or ','", i,
                  REEL_GCS_NAME_MAX);
    if (strlen(value) > REEL_GCS_VALUE_MAX)
      return fail(err, errlen, REEL_EINVAL, "header %zu: value is longer than %d bytes", i, REEL_GCS_VALUE_MAX);
    header_entry *h = &st->headers[st->header_count];
    h->order = i;
    h->name = malloc(nlen + 1);
    if (!h->name) return fail(err, errlen, REEL_ENOMEM, "out of memory");
    for (size_t k = 0; k < nlen; k++) h->name[k] = (char)((name[k] >= 'A' && name[k] <= 'Z') ? name[k] + 32 : name[k]);
    h->name[nlen] = '\0';
    st->header_count++;
    if (strcmp(h->name, "host") == 0)
      return fail(err, errlen, REEL_EINVAL, "header %zu: \"host\" is always signed from the URL; do not pass it", i);
    reel_buf v;
    reel_buf_init(&v, REEL_GCS_VALUE_MAX);
    int rc = reel_gcs_canonical_header_value(value, &v);
    if (rc) {
      reel_buf_free(&v);
      return rc == REEL_EINVAL ? fail(err, errlen, rc, "header %s: value contains a control character", h->name)
                               : fail_buf(err, errlen, rc, "header value");
    }
    h->value = reel_buf_steal(&v);
    if (!h->value) return fail(err, errlen, REEL_ENOMEM, "out of memory");
  }
  header_entry *h = &st->headers[st->header_count];
  h->order = req->header_count;
  h->name = strdup("host");
  h->value = strdup(host);
  st->header_count++;
  if (!h->name || !h->value) return fail(err, errlen, REEL_ENOMEM, "out of memory");
  qsort(st->headers, st->header_count, sizeof *st->headers, cmp_headers);
  size_t w = 0;
  for (size_t r = 0; r < st->header_count; r++) {
    header_entry *cur = &st->headers[r];
    if (w > 0 && strcmp(st->headers[w - 1].name, cur->name) == 0) {
      header_entry *prev = &st->headers[w - 1];
      size_t plen = strlen(prev->value), clen = strlen(cur->value);
      char *joined = plen + 1 + clen <= OUTPUT_MAX ? realloc(prev->value, plen + clen + 2) : NULL;
      if (joined) {
        joined[plen] = ',';
        memcpy(joined + plen + 1, cur->value, clen + 1);
        prev->value = joined;
      }
      free(cur->name);
      free(cur->value);
      cur->name = cur->value = NULL;
      if (!joined) {
        /* keep the array consistent for sign_state_free: compact what is left */
        for (size_t k = r + 1; k < st->header_count; k++) st->headers[w++] = st->headers[k];
        st->header_count = w;
        return fail(err, errlen, REEL_ENOMEM, "header %s: joined values too large", prev->name);
      }
      continue;
    }
    st->headers[w++] = *cur;
  }
  st->header_count = w;
  return 0;
}

static int add_query(sign_state *st, const char *name, const char *value) {
  reel_buf n, v;
  reel_buf_init(&n, OUTPUT_MAX);
  reel_buf_init(&v, OUTPUT_MAX);
  int rc = reel_gcs_percent_encode(name, strlen(name), 0, &n);
  if (!rc) rc = reel_gcs_percent_encode(value, strlen(value), 0, &v);
  if (rc) {
    reel_buf_free(&n);
    reel_buf_free(&v);
    return rc;
  }
  query_entry *q = &st->query[st->query_count++];
  q->name = reel_buf_steal(&n);
  q->value = reel_buf_steal(&v);
  return q->name && q->value ? 0 : REEL_ENOMEM;
}

void reel_gcs_signed_url_free(reel_gcs_signed_url *s) {
  if (!s) return;
  free(s->url);
  free(s->canonical_request);
  free(s->string_to_sign);
  s->url = s->canonical_request = s->string_to_sign = NULL;
}

int reel_gcs_sign_url(const reel_gcs_key *key, const reel_gcs_url_request *req, reel_gcs_signed_url *out, char *err,
                      size_t errlen) {
  if (!out) return fail(err, errlen, REEL_EINVAL, "no place for the signed URL");
  memset(out, 0, sizeof *out);
  if (!key || !req) return fail(err, errlen, REEL_EINVAL, "no key or request");
  int method_ok = 0;
  for (size_t i = 0; req->method && i < sizeof methods / sizeof methods[0]; i++)
    if (strcmp(req->method, methods[i]) == 0) method_ok = 1;
  if (!method_ok)
    return fail(err, errlen, REEL_EINVAL, "method must be one of GET, HEAD, PUT, POST, DELETE, PATCH, OPTIONS");
  int rc = check_bucket(req->bucket, err, errlen);
  if (!rc) rc = check_object(req->object, 0, err, errlen);
  if (!rc) rc = check_times(req->timestamp, req->expires_in, err, errlen);
  if (rc) return rc;
  if (req->query_count > REEL_GCS_PARAMS_MAX)
    return fail(err, errlen, REEL_EINVAL, "more than %d query parameters", REEL_GCS_PARAMS_MAX);
  if (req->query_count && !req->query) return fail(err, errlen, REEL_EINVAL, "query_count without parameters");
  for (size_t i = 0; i < req->query_count; i++) {
    const char *n = req->query[i].name, *v = req->query[i].value;
    if (!n || !*n || !v) return fail(err, errlen, REEL_EINVAL, "query parameter %zu has no name or value", i);
    if (strlen(n) > REEL_GCS_NAME_MAX || strlen(v) > REEL_GCS_VALUE_MAX)
      return fail(err, errlen, REEL_EINVAL, "query parameter %zu is too long (name %d, value %d bytes at most)", i,
                  REEL_GCS_NAME_MAX, REEL_GCS_VALUE_MAX);
    for (size_t k = 0; k < sizeof reserved_query / sizeof reserved_query[0]; k++)
      if (strcasecmp(n, reserved_query[k]) == 0)
        return fail(err, errlen, REEL_EINVAL, "query parameter %s is set by the signer", reserved_query[k]);
  }

  resolved_location loc;
  rc = resolve_location(&req->location, req->bucket, &loc, err, errlen);
  if (rc) return rc;
  char host[sizeof loc.authority];
  host_without_port(loc.authority, host, sizeof host);

  char date_time[17];
  reel_gcs_format_timestamp(req->timestamp, date_time);
  char scope[64];
  snprintf(scope, sizeof scope, "%.8s%s", date_time, SCOPE_SUFFIX);

  sign_state st = {0};
  reel_buf path, signed_headers, credential, canonical, to_sign, url;
  reel_buf_init(&path, OUTPUT_MAX);
  reel_buf_init(&signed_headers, OUTPUT_MAX);
  reel_buf_init(&credential, OUTPUT_MAX);
  reel_buf_init(&canonical, OUTPUT_MAX);
  reel_buf_init(&to_sign, OUTPUT_MAX);
  reel_buf_init(&url, OUTPUT_MAX);

  rc = collect_headers(req, host, &st, err, errlen);
  if (rc) goto done;
  const char *payload = "UNSIGNED-PAYLOAD";
  for (size_t i = 0; i < st.header_count; i++) {
    rc = reel_buf_printf(&signed_headers, "%s%s", i ? ";" : "", st.headers[i].name);
    if (rc) {
      rc = fail_buf(err, errlen, rc, "signed headers");
      goto done;
    }
    if (strcmp(st.headers[i].name, "x-goog-content-sha256") == 0) {
      const char *v = st.headers[i].value;
      size_t vlen = strlen(v);
      int hex_ok = vlen > 0 && vlen <= 64;
      for (size_t k = 0; hex_ok && k < vlen; k++)
        hex_ok = (v[k] >= '0' && v[k] <= '9') || (v[k] >= 'a' && v[k] <= 'f') || (v[k] >= 'A' && v[k] <= 'F');
      if (!hex_ok) {
        rc = fail(err, errlen, REEL_EINVAL, "header x-goog-content-sha256 must be a hex SHA-256 digest");
        goto done;
      }
      payload = v;
    }
  }

  st.query = calloc(req->query_count + 5, sizeof *st.query);
  if (!st.query) {
    rc = fail(err, errlen, REEL_ENOMEM, "out of memory");
    goto done;
  }
  char expires[24];
  snprintf(expires, sizeof expires, "%lld", (long long)req->expires_in);
  rc = reel_buf_printf(&credential, "%s/%s", key->client_email, scope);
  if (!rc) rc = add_query(&st, "X-Goog-Algorithm", ALGORITHM);
  if (!rc) rc = add_query(&st, "X-Goog-Credential", credential.data);
  if (!rc) rc = add_query(&st, "X-Goog-Date", date_time);
  if (!rc) rc = add_query(&st, "X-Goog-Expires", expires);
  if (!rc) rc = add_query(&st, "X-Goog-SignedHeaders", signed_headers.data);
  for (size_t i = 0; !rc && i < req->query_count; i++) rc = add_query(&st, req->query[i].name, req->query[i].value);
  if (rc) {
    rc = fail_buf(err, errlen, rc, "query string");
    goto done;
  }
  qsort(st.query, st.query_count, sizeof *st.query, cmp_query);

  rc = append_path(&path, &loc, req->bucket, req->object);
  if (rc) {
    rc = fail_buf(err, errlen, rc, "URL path");
    goto done;
  }

  /* Canonical request: method, path, query, headers, signed headers, payload. */
  rc = reel_buf_printf(&canonical, "%s\n%s\n", req->method, path.data);
  for (size_t i = 0; !rc && i < st.query_count; i++)
    rc = reel_buf_printf(&canonical, "%s%s=%s", i ? "&" : "", st.query[i].name, st.query[i].value);
  if (!rc) rc = reel_buf_append(&canonical, "\n", 1);
  for (size_t i = 0; !rc && i < st.header_count; i++)
    rc = reel_buf_printf(&canonical, "%s:%s\n", st.headers[i].name, st.headers[i].value);
  if (!rc) rc = reel_buf_printf(&canonical, "\n%s\n%s", signed_headers.data, payload);
  if (rc) {
    rc = fail_buf(err, errlen, rc, "canonical request");
    goto done;
  }

  unsigned char digest[32];
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, canonical.data, canonical.len, digest) < 0) {
    rc = fail(err, errlen, REEL_EIO, "SHA-256 failed");
    goto done;
  }
  rc = reel_buf_printf(&to_sign, "%s\n%s\n%s\n", ALGORITHM, date_time, scope);
  if (!rc) rc = hex_encode(digest, sizeof digest, &to_sign);
  if (rc) {
    rc = fail_buf(err, errlen, rc, "string to sign");
    goto done;
  }

  rc = reel_buf_printf(&url, "%s://%s%s?", loc.scheme, loc.authority, path.data);
  for (size_t i = 0; !rc && i < st.query_count; i++)
    rc = reel_buf_printf(&url, "%s%s=%s", i ? "&" : "", st.query[i].name, st.query[i].value);
  if (!rc) rc = reel_buf_append_str(&url, "&X-Goog-Signature=");
  if (rc) {
    rc = fail_buf(err, errlen, rc, "signed URL");
    goto done;
  }
  rc = sign_hex(key, to_sign.data, to_sign.len, &url, err, errlen);
  if (rc) goto done;

  out->url = reel_buf_steal(&url);
  out->canonical_request = reel_buf_steal(&canonical);
  out->string_to_sign = reel_buf_steal(&to_sign);
  if (!out->url || !out->canonical_request || !out->string_to_sign) {
    reel_gcs_signed_url_free(out);
    rc = fail(err, errlen, REEL_ENOMEM, "out of memory");
  }
done:
  sign_state_free(&st);
  reel_buf_free(&path);
  reel_buf_free(&signed_headers);
  reel_buf_free(&credential);
  reel_buf_free(&canonical);
  reel_buf_free(&to_sign);
  reel_buf_free(&url);
  return rc;
}

/* ------------------------------------------------ reel's upload/delivery -- */

static int simple_url(const reel_gcs_key *key, const char *method, const char *bucket, const char *object,
                      const reel_gcs_param *headers, size_t header_count, int64_t now, int64_t expires_in,
                      const char *endpoint, char **url, char *err, size_t errlen) {
  if (!url) return fail(err, errlen, REEL_EINVAL, "no place for the URL");
  *url = NULL;
  int rc = check_object(object, 1, err, errlen);
  if (rc) return rc;
  reel_gcs_url_request req = {.method = method,
                              .bucket = bucket,
                              .object = object,
                              .timestamp = now,
                              .expires_in = expires_in,
                              .headers = headers,
                              .header_count = header_count,
                              .location = {.endpoint = endpoint}};
  reel_gcs_signed_url signed_url;
  rc = reel_gcs_sign_url(key, &req, &signed_url, err, errlen);
  if (rc) return rc;
  *url = signed_url.url;
  signed_url.url = NULL;
  reel_gcs_signed_url_free(&signed_url);
  return 0;
}

int reel_gcs_download_url(const reel_gcs_key *key, const char *bucket, const char *object, int64_t now,
                          int64_t expires_in, const char *endpoint, char **url, char *err, size_t errlen) {
  return simple_url(key, "GET", bucket, object, NULL, 0, now, expires_in, endpoint, url, err, errlen);
}

int reel_gcs_upload_url(const reel_gcs_key *key, const char *bucket, const char *object, const char *content_type,
                        int64_t now, int64_t expires_in, const char *endpoint, char **url, char *err, size_t errlen) {
  reel_gcs_param headers[1] = {{"content-type", content_type}};
  return simple_url(key, "PUT", bucket, object, headers, content_type ? 1 : 0, now, expires_in, endpoint, url, err,
                    errlen);
}

int reel_gcs_resumable_upload_url(const reel_gcs_key *key, const char *bucket, const char *object,
                                  const char *content_type, int64_t now, int64_t expires_in, const char *endpoint,
                                  char **url, char *err, size_t errlen) {
  reel_gcs_param headers[2] = {{"x-goog-resumable", "start"}, {"content-type", content_type}};
  return simple_url(key, "POST", bucket, object, headers, content_type ? 2 : 1, now, expires_in, endpoint, url, err,
                    errlen);
}

/* ---------------------------------------------------------- POST policy -- */

/* Appends s as a JSON string with every non-ASCII character escaped as
 * lowercase \uXXXX (UTF-16 surrogate pairs above U+FFFF), as Google's client
 * libraries serialise the policy. REEL_EINVAL for invalid UTF-8. */
static int json_ascii_string(reel_buf *b, const char *s) {
  size_t len = strlen(s);
  const unsigned char *u = (const unsigned char *)s;
  if (!valid_utf8(u, len)) return REEL_EINVAL;
  int rc = reel_buf_append(b, "\"", 1);
  size_t i = 0;
  while (!rc && i < len) {
    unsigned cp = utf8_next(u, &i);
    switch (cp) {
    case '"': rc = reel_buf_append(b, "\\\"", 2); break;
    case '\\': rc = reel_buf_append(b, "\\\\", 2); break;
    case '\b': rc = reel_buf_append(b, "\\b", 2); break;
    case '\f': rc = reel_buf_append(b, "\\f", 2); break;
    case '\n': rc = reel_buf_append(b, "\\n", 2); break;
    case '\r': rc = reel_buf_append(b, "\\r", 2); break;
    case '\t': rc = reel_buf_append(b, "\\t", 2); break;
    default:
      if (cp < 0x20 || (cp >= 0x80 && cp <= 0xFFFF)) {
        rc = reel_buf_printf(b, "\\u%04x", cp);
      } else if (cp > 0xFFFF) {
        unsigned v = cp - 0x10000;
        rc = reel_buf_printf(b, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        char c = (char)cp;
        rc = reel_buf_append(b, &c, 1);
      }
    }
  }
  if (!rc) rc = reel_buf_append(b, "\"", 1);
  return rc;
}

static int json_pair_object(reel_buf *b, const char *name, const char *value) {
  int rc = reel_buf_append(b, "{", 1);
  if (!rc) rc = json_ascii_string(b, name);
  if (!rc) rc = reel_buf_append(b, ":", 1);
  if (!rc) rc = json_ascii_string(b, value);
  if (!rc) rc = reel_buf_append(b, "}", 1);
  return rc;
}

static const char *const reserved_fields[] = {"bucket",           "key",               "policy",      "file",
                                              "x-goog-algorithm", "x-goog-credential", "x-goog-date", "x-goog-signature"};

static int cmp_param_names(const void *a, const void *b) {
  return strcmp(((const reel_gcs_param *)a)->name, ((const reel_gcs_param *)b)->name);
}

static int add_field(reel_gcs_post_policy *p, const char *name, const char *value) {
  reel_gcs_field *f = &p->fields[p->field_count];
  f->name = strdup(name);
  f->value = strdup(value);
  if (!f->name || !f->value) {
    free(f->name);
    free(f->value);
    f->name = f->value = NULL;
    return REEL_ENOMEM;
  }
  p->field_count++;
  return 0;
}

void reel_gcs_post_policy_free(reel_gcs_post_policy *p) {
  if (!p) return;
  for (size_t i = 0; i < p->field_count; i++) {
    free(p->fields[i].name);
    free(p->fields[i].value);
  }
  free(p->fields);
  free(p->url);
  free(p->policy_json);
  memset(p, 0, sizeof *p);
}

const char *reel_gcs_post_policy_field(const reel_gcs_post_policy *p, const char *name) {
  if (!p || !name) return NULL;
  for (size_t i = 0; i < p->field_count; i++)
    if (strcmp(p->fields[i].name, name) == 0) return p->fields[i].value;
  return NULL;
}

static int check_field_name(const char *name, size_t index, char *err, size_t errlen) {
  size_t len = name ? strlen(name) : 0;
  if (len == 0 || len > REEL_GCS_NAME_MAX)
    return fail(err, errlen, REEL_EINVAL, "field %zu: name must be 1 to %d characters", index, REEL_GCS_NAME_MAX);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c <= 0x20 || c >= 0x7F || c == '"' || c == '\\')
      return fail(err, errlen, REEL_EINVAL, "field %zu: name must be visible ASCII without quotes", index);
  }
  return 0;
}

static int append_conditions(reel_buf *b, const reel_gcs_policy_request *req, char *err, size_t errlen) {
  if (req->condition_count > REEL_GCS_CONDITIONS_MAX)
    return fail(err, errlen, REEL_EINVAL, "more than %d conditions", REEL_GCS_CONDITIONS_MAX);
  if (req->condition_count && !req->conditions)
    return fail(err, errlen, REEL_EINVAL, "condition_count without conditions");
  int rc = 0;
  for (size_t i = 0; i < req->condition_count && !rc; i++) {
    const reel_gcs_policy_condition *c = &req->conditions[i];
    if (c->kind == REEL_GCS_CONDITION_CONTENT_LENGTH_RANGE) {
      if (c->min < 0 || c->max < c->min)
        return fail(err, errlen, REEL_EINVAL, "condition %zu: content-length-range needs 0 <= min <= max", i);
      rc = reel_buf_printf(b, "[\"content-length-range\",%lld,%lld],", (long long)c->min, (long long)c->max);
      continue;
    }
    if (c->kind != REEL_GCS_CONDITION_EQ && c->kind != REEL_GCS_CONDITION_STARTS_WITH)
      return fail(err, errlen, REEL_EINVAL, "condition %zu: unknown kind %d", i, (int)c->kind);
    const char *field = c->field ? (c->field[0] == '$' ? c->field + 1 : c->field) : NULL;
    if (!field || check_field_name(field, i, NULL, 0) != 0)
      return fail(err, errlen, REEL_EINVAL, "condition %zu: field must be a form field name such as \"$acl\"", i);
    if (!c->value || strlen(c->value) > REEL_GCS_VALUE_MAX)
      return fail(err, errlen, REEL_EINVAL, "condition %zu: value is missing or longer than %d bytes", i,
                  REEL_GCS_VALUE_MAX);
    char dollar_field[REEL_GCS_NAME_MAX + 2];
    snprintf(dollar_field, sizeof dollar_field, "$%s", field);
    rc = reel_buf_printf(b, "[\"%s\",", c->kind == REEL_GCS_CONDITION_EQ ? "eq" : "starts-with");
    if (!rc) rc = json_ascii_string(b, dollar_field);
    if (!rc) rc = reel_buf_append(b, ",", 1);
    if (!rc) rc = json_ascii_string(b, c->value);
    if (rc == REEL_EINVAL) return fail(err, errlen, rc, "condition %zu: value is not valid UTF-8", i);
    if (!rc) rc = reel_buf_append(b, "],", 2);
  }
  return rc ? fail_buf(err, errlen, rc, "policy document") : 0;
}

int reel_gcs_sign_post_policy(const reel_gcs_key *key, const reel_gcs_policy_request *req, reel_gcs_post_policy *out,
                              char *err, size_t errlen) {
  if (!out) return fail(err, errlen, REEL_EINVAL, "no place for the policy");
  memset(out, 0, sizeof *out);
  if (!key || !req) return fail(err, errlen, REEL_EINVAL, "no key or request");
  int rc = check_bucket(req->bucket, err, errlen);
  if (!rc) rc = check_object(req->object, 1, err, errlen);
  if (!rc) rc = check_times(req->timestamp, req->expires_in, err, errlen);
  if (rc) return rc;
  if (req->field_count > REEL_GCS_PARAMS_MAX)
    return fail(err, errlen, REEL_EINVAL, "more than %d fields", REEL_GCS_PARAMS_MAX);
  if (req->field_count && !req->fields) return fail(err, errlen, REEL_EINVAL, "field_count without fields");
  for (size_t i = 0; i < req->field_count; i++) {
    rc = check_field_name(req->fields[i].name, i, err, errlen);
    if (rc) return rc;
    const char *v = req->fields[i].value;
    if (!v || strlen(v) > REEL_GCS_VALUE_MAX || !valid_utf8((const unsigned char *)v, strlen(v)))
      return fail(err, errlen, REEL_EINVAL, "field %s: value is missing, longer than %d bytes or not UTF-8",
                  req->fields[i].name, REEL_GCS_VALUE_MAX);
    for (size_t k = 0; k < sizeof reserved_fields / sizeof reserved_fields[0]; k++)
      if (strcasecmp(req->fields[i].name, reserved_fields[k]) == 0)
        return fail(err, errlen, REEL_EINVAL, "field %s is set by the signer", reserved_fields[k]);
    for (size_t k = 0; k < i; k++)
      if (strcmp(req->fields[i].name, req->fields[k].name) == 0)
        return fail(err, errlen, REEL_EINVAL, "field %s is given twice", req->fields[i].name);
  }
  resolved_location loc;
  rc = resolve_location(&req->location, req->bucket, &loc, err, errlen);
  if (rc) return rc;

  char date_time[17], expiration[21];
  reel_gcs_format_timestamp(req->timestamp, date_time);
  format_iso8601(req->timestamp + req->expires_in, expiration);

  reel_gcs_param *sorted = NULL;
  reel_buf credential, policy, encoded, signature, url;
  reel_buf_init(&credential, OUTPUT_MAX);
  reel_buf_init(&policy, OUTPUT_MAX);
  reel_buf_init(&encoded, OUTPUT_MAX);
  reel_buf_init(&signature, OUTPUT_MAX);
  reel_buf_init(&url, OUTPUT_MAX);
  if (req->field_count) {
    sorted = malloc(req->field_count * sizeof *sorted);
    if (!sorted) {
      rc = fail(err, errlen, REEL_ENOMEM, "out of memory");
      goto done;
    }
    memcpy(sorted, req->fields, req->field_count * sizeof *sorted);
    qsort(sorted, req->field_count, sizeof *sorted, cmp_param_names);
  }

  rc = reel_buf_printf(&credential, "%s/%.8s%s", key->client_email, date_time, SCOPE_SUFFIX);
  if (!rc) rc = reel_buf_append_str(&policy, "{\"conditions\":[");
  if (rc) {
    rc = fail_buf(err, errlen, rc, "policy document");
    goto done;
  }
  rc = append_conditions(&policy, req, err, errlen);
  if (rc) goto done;
  for (size_t i = 0; !rc && i < req->field_count; i++) {
    if (strncasecmp(sorted[i].name, "x-ignore-", 9) == 0) continue;
    rc = json_pair_object(&policy, sorted[i].name, sorted[i].value);
    if (!rc) rc = reel_buf_append(&policy, ",", 1);
  }
  if (!rc) rc = json_pair_object(&policy, "bucket", req->bucket);
  if (!rc) rc = reel_buf_append(&policy, ",", 1);
  if (!rc) rc = json_pair_object(&policy, "key", req->object);
  if (!rc) rc = reel_buf_append(&policy, ",", 1);
  if (!rc) rc = json_pair_object(&policy, "x-goog-date", date_time);
  if (!rc) rc = reel_buf_append(&policy, ",", 1);
  if (!rc) rc = json_pair_object(&policy, "x-goog-credential", credential.data);
  if (!rc) rc = reel_buf_append(&policy, ",", 1);
  if (!rc) rc = json_pair_object(&policy, "x-goog-algorithm", ALGORITHM);
  if (!rc) rc = reel_buf_printf(&policy, "],\"expiration\":\"%s\"}", expiration);
  if (!rc) rc = base64_encode((const unsigned char *)policy.data, policy.len, &encoded);
  if (rc) {
    rc = fail_buf(err, errlen, rc, "policy document");
    goto done;
  }
  rc = sign_hex(key, encoded.data, encoded.len, &signature, err, errlen);
  if (rc) goto done;

  rc = reel_buf_printf(&url, "%s://%s/", loc.scheme, loc.authority);
  if (!rc && loc.bucket_in_path) rc = reel_buf_printf(&url, "%s/", req->bucket);
  if (rc) {
    rc = fail_buf(err, errlen, rc, "policy URL");
    goto done;
  }

  out->fields = calloc(req->field_count + 7, sizeof *out->fields);
  if (!out->fields) {
    rc = fail(err, errlen, REEL_ENOMEM, "out of memory");
    goto done;
  }
  rc = add_field(out, "key", req->object);
  for (size_t i = 0; !rc && i < req->field_count; i++) rc = add_field(out, sorted[i].name, sorted[i].value);
  if (!rc) rc = add_field(out, "x-goog-algorithm", ALGORITHM);
  if (!rc) rc = add_field(out, "x-goog-credential", credential.data);
  if (!rc) rc = add_field(out, "x-goog-date", date_time);
  if (!rc) rc = add_field(out, "x-goog-signature", signature.data);
  if (!rc) rc = add_field(out, "policy", encoded.data);
  if (!rc) {
    out->url = reel_buf_steal(&url);
    out->policy_json = reel_buf_steal(&policy);
    if (!out->url || !out->policy_json) rc = REEL_ENOMEM;
  }
  if (rc) rc = fail(err, errlen, rc, "out of memory");
done:
  if (rc) reel_gcs_post_policy_free(out);
  free(sorted);
  reel_buf_free(&credential);
  reel_buf_free(&policy);
  reel_buf_free(&encoded);
  reel_buf_free(&signature);
  reel_buf_free(&url);
  return rc;
}
