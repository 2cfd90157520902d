/* AWS Signature Version 4, written from AWS's specification: reel signs its
 * S3 uploads (Authorization header) and hands out presigned GET/PUT URLs and
 * POST policies with it, against AWS S3 and S3-compatible servers. The
 * canonical forms are checked by the AWS SigV4 test suite (reel-vectors aws)
 * and, for presigned URLs, against boto3 (tests/blackbox/test_sigv4_boto3.py).
 * SHA-256 and HMAC come from GnuTLS; nothing here logs. */
#include "storage/sigv4.h"

#include <gnutls/crypto.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/encode.h"
#include "common/error.h"

/* The most any text built here (canonical request, URL, policy) may hold. */
#define TEXT_MAX (1024 * 1024)
/* Latest signing time: 9999-12-31T23:59:59Z (four-digit years only). */
#define TIME_MAX 253402300799LL

static const char HEX_UPPER[] = "0123456789ABCDEF";

/* ---- memory ------------------------------------------------------------ */

static void wipe(void *p, size_t n) {
  if (p && n) explicit_bzero(p, n);
}

void reel_sigv4_free(char *s) {
  if (!s) return;
  wipe(s, strlen(s));
  free(s);
}

static void buf_wipe_free(reel_buf *b) {
  if (b->data) wipe(b->data, b->cap);
  reel_buf_free(b);
}

/* Hands the buffer's string to *out (an empty string for an empty buffer). */
static int buf_take(reel_buf *b, char **out) {
  if (!b->data && reel_buf_append(b, "", 0) != 0) return REEL_ENOMEM;
  *out = reel_buf_steal(b);
  return *out ? 0 : REEL_ENOMEM;
}

const char *reel_sigv4_fields_get(const reel_sigv4_fields *fields, const char *name) {
  if (!fields || !name) return NULL;
  for (size_t i = 0; i < fields->count; i++)
    if (strcasecmp(fields->items[i].name, name) == 0) return fields->items[i].value;
  return NULL;
}

void reel_sigv4_fields_free(reel_sigv4_fields *fields) {
  if (!fields) return;
  for (size_t i = 0; i < fields->count && i < REEL_SIGV4_MAX_FIELDS; i++) reel_sigv4_free(fields->items[i].value);
  memset(fields, 0, sizeof *fields);
}

static int fields_add(reel_sigv4_fields *fields, const char *name, const char *value) {
  if (fields->count >= REEL_SIGV4_MAX_FIELDS) return REEL_ETOOBIG;
  char *copy = strdup(value);
  if (!copy) return REEL_ENOMEM;
  fields->items[fields->count].name = name;
  fields->items[fields->count].value = copy;
  fields->count++;
  return 0;
}

void reel_sigv4_result_free(reel_sigv4_result *result) {
  if (!result) return;
  reel_sigv4_free(result->canonical_request);
  reel_sigv4_free(result->string_to_sign);
  reel_sigv4_free(result->credential_scope);
  reel_sigv4_free(result->signed_headers);
  reel_sigv4_free(result->query);
  reel_sigv4_fields_free(&result->added);
  wipe(result, sizeof *result);
}

/* ---- characters and validation ---------------------------------------- */

static int is_alnum(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
static int is_unreserved(unsigned char c) { return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~'; }
/* RFC 9110 token characters (method and header names). */
static int is_tchar(unsigned char c) { return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL); }
static int is_access_key_char(unsigned char c) { return c > 0x20 && c < 0x7f && c != '/' && c != ','; }
static int is_secret_char(unsigned char c) { return c >= 0x20 && c < 0x7f; }
static int is_token_char(unsigned char c) { return c > 0x20 && c < 0x7f; }
static int is_scope_char(unsigned char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; }
/* Sent paths may hold raw spaces and UTF-8 (the suite has both), never
 * control characters or the delimiters of query and fragment. */
static int is_path_char(unsigned char c) { return c >= 0x20 && c != 0x7f && c != '?' && c != '#'; }
static int is_query_char(unsigned char c) { return c >= 0x20 && c != 0x7f && c != '#'; }
static int is_text_char(unsigned char c) { return c >= 0x20 && c != 0x7f; }
static int is_printable_ascii(unsigned char c) { return c >= 0x20 && c < 0x7f; }
/* Host header values: names, IPv4, bracketed IPv6, an optional port. */
static int is_host_char(unsigned char c) { return is_alnum(c) || (c && strchr("-._:[]", c) != NULL); }
static unsigned char to_lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; }

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* 0 when s holds 1..max bytes (0..max with allow_empty), each accepted by ok. */
static int check_string(const char *s, size_t max, int allow_empty, int (*ok)(unsigned char)) {
  if (!s) return allow_empty ? 0 : REEL_EINVAL;
  size_t n = strnlen(s, max + 1);
  if (n > max) return REEL_ETOOBIG;
  if (n == 0 && !allow_empty) return REEL_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!ok((unsigned char)s[i])) return REEL_EINVAL;
  return 0;
}

static int check_credentials(const reel_sigv4_credentials *c) {
  int rc = check_string(c->access_key_id, REEL_SIGV4_MAX_ACCESS_KEY, 0, is_access_key_char);
  if (!rc) rc = check_string(c->secret_access_key, REEL_SIGV4_MAX_SECRET, 0, is_secret_char);
  if (!rc) rc = check_string(c->session_token, REEL_SIGV4_MAX_SESSION_TOKEN, 1, is_token_char);
  return rc;
}

static int check_signer(const reel_sigv4_signer *s) {
  int rc = check_credentials(&s->credentials);
  if (!rc) rc = check_string(s->region, REEL_SIGV4_MAX_SCOPE_PART, 0, is_scope_char);
  if (!rc) rc = check_string(s->service, REEL_SIGV4_MAX_SCOPE_PART, 0, is_scope_char);
  return rc;
}

/* A payload hash is 64 lowercase hex digits or a constant such as UNSIGNED-PAYLOAD. */
static int check_payload_hash(const char *h) {
  if (!h) return REEL_EINVAL;
  size_t n = strnlen(h, 65);
  if (n == 64) {
    int hex = 1;
    for (size_t i = 0; i < n; i++)
      if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) hex = 0;
    if (hex) return 0;
  }
  if (n == 0 || n > 64) return REEL_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!((h[i] >= 'A' && h[i] <= 'Z') || (h[i] >= '0' && h[i] <= '9') || h[i] == '-')) return REEL_EINVAL;
  return 0;
}

static int has_session_token(const reel_sigv4_credentials *c) { return c->session_token && c->session_token[0]; }

/* ---- hashing ----------------------------------------------------------- */


static int sha256_hex(const void *data, size_t len, char hex[65]) {
  unsigned char digest[32];
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, len ? data : "", len, digest) != 0) return REEL_EIO;
  reel_hex_encode(digest, 32, hex);
  return 0;
}

static int hmac_sha256(const void *key, size_t key_len, const void *data, size_t len, unsigned char out[32]) {
  return gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, key_len, len ? data : "", len, out) == 0 ? 0 : REEL_EIO;
}

int reel_sigv4_payload_hash(const void *data, size_t len, char hex[65]) {
  if (!hex || (!data && len)) return REEL_EINVAL;
  return sha256_hex(data, len, hex);
}

int reel_sigv4_signing_key(const char *secret_access_key, const char *date, const char *region, const char *service,
                           unsigned char key[32]) {
  int rc = check_string(secret_access_key, REEL_SIGV4_MAX_SECRET, 0, is_secret_char);
  if (!rc) rc = check_string(region, REEL_SIGV4_MAX_SCOPE_PART, 0, is_scope_char);
  if (!rc) rc = check_string(service, REEL_SIGV4_MAX_SCOPE_PART, 0, is_scope_char);
  if (rc) return rc;
  if (!date || strlen(date) != 8 || strspn(date, "0123456789") != 8 || !key) return REEL_EINVAL;
  char secret[4 + REEL_SIGV4_MAX_SECRET + 1];
  size_t secret_len = strlen(secret_access_key);
  memcpy(secret, "AWS4", 4);
  memcpy(secret + 4, secret_access_key, secret_len);
  unsigned char k_date[32], k_region[32], k_service[32];
  rc = hmac_sha256(secret, 4 + secret_len, date, 8, k_date);
  if (!rc) rc = hmac_sha256(k_date, 32, region, strlen(region), k_region);
  if (!rc) rc = hmac_sha256(k_region, 32, service, strlen(service), k_service);
  if (!rc) rc = hmac_sha256(k_service, 32, "aws4_request", 12, key);
  wipe(secret, sizeof secret);
  wipe(k_date, 32);
  wipe(k_region, 32);
  wipe(k_service, 32);
  if (rc) wipe(key, 32);
  return rc;
}

/* Writes YYYYMMDD and YYYYMMDDTHHMMSSZ for unix time t. */
static int format_time(int64_t t, char date[9], char stamp[17]) {
  if (t < 0 || t > TIME_MAX) return REEL_EINVAL;
  time_t tt = (time_t)t;
  struct tm tm;
  if (!gmtime_r(&tt, &tm) || strftime(stamp, 17, "%Y%m%dT%H%M%SZ", &tm) != 16) return REEL_EINVAL;
  memcpy(date, stamp, 8);
  date[8] = '\0';
  return 0;
}

/* ---- encoding ---------------------------------------------------------- */

/* Appends s[0..len) URI-encoded: unreserved bytes as they are, '/' too when
 * keep_slash, valid %XX escapes too when keep_escapes, every other byte %XX. */
static int append_encoded(reel_buf *b, const char *s, size_t len, int keep_slash, int keep_escapes) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    int rc;
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      rc = reel_buf_append(b, &s[i], 1);
    } else if (keep_escapes && c == '%' && i + 2 < len && hex_value((unsigned char)s[i + 1]) >= 0 &&
               hex_value((unsigned char)s[i + 2]) >= 0) {
      rc = reel_buf_append(b, &s[i], 3);
      i += 2;
    } else {
      char esc[3] = {'%', HEX_UPPER[c >> 4], HEX_UPPER[c & 15]};
      rc = reel_buf_append(b, esc, 3);
    }
    if (rc) return rc;
  }
  return 0;
}

/* Appends s[0..len) percent-decoded; a '%' not followed by two hex digits stays literal. */
static int append_decoded(reel_buf *b, const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '%' && i + 2 < len && hex_value((unsigned char)s[i + 1]) >= 0 &&
        hex_value((unsigned char)s[i + 2]) >= 0) {
      c = (char)(hex_value((unsigned char)s[i + 1]) * 16 + hex_value((unsigned char)s[i + 2]));
      i += 2;
    }
    int rc = reel_buf_append(b, &c, 1);
    if (rc) return rc;
  }
  return 0;
}

int reel_sigv4_uri_encode(const char *s, size_t len, int keep_slash, char **out) {
  if (!out) return REEL_EINVAL;
  *out = NULL;
  if (!s && len) return REEL_EINVAL;
  reel_buf b;
  reel_buf_init(&b, TEXT_MAX);
  int rc = append_encoded(&b, s, len, keep_slash, 0);
  if (!rc) rc = buf_take(&b, out);
  buf_wipe_free(&b);
  return rc;
}

/* ---- canonical URI ----------------------------------------------------- */

/* Appends the normalized form of path: empty and "." segments dropped, ".."
 * removing the segment before it, a single leading '/', and a trailing '/'
 * kept when the path had one and a segment remains. */
static int append_normalized_path(reel_buf *b, const char *path, size_t len) {
  size_t max_segments = 1;
  for (size_t i = 0; i < len; i++)
    if (path[i] == '/') max_segments++;
  size_t *starts = calloc(max_segments, sizeof *starts), *lens = calloc(max_segments, sizeof *lens);
  if (!starts || !lens) {
    free(starts);
    free(lens);
    return REEL_ENOMEM;
  }
  size_t count = 0, i = 0;
  while (i <= len) {
    size_t j = i;
    while (j < len && path[j] != '/') j++;
    size_t seg = j - i;
    if (seg == 0 || (seg == 1 && path[i] == '.')) {
      /* nothing */
    } else if (seg == 2 && path[i] == '.' && path[i + 1] == '.') {
      if (count) count--;
    } else {
      starts[count] = i;
      lens[count] = seg;
      count++;
    }
    i = j + 1;
  }
  int rc = reel_buf_append(b, "/", 1);
  for (size_t k = 0; !rc && k < count; k++) {
    rc = reel_buf_append(b, path + starts[k], lens[k]);
    if (!rc && (k + 1 < count || path[len - 1] == '/')) rc = reel_buf_append(b, "/", 1);
  }
  free(starts);
  free(lens);
  return rc;
}

static int append_canonical_uri(reel_buf *out, const char *path, int normalize, int double_encode) {
  size_t len = strlen(path);
  if (len == 0) return reel_buf_append(out, "/", 1);
  reel_buf normalized;
  reel_buf_init(&normalized, REEL_SIGV4_MAX_PATH);
  const char *p = path;
  if (normalize) {
    int rc = append_normalized_path(&normalized, path, len);
    if (rc) {
      buf_wipe_free(&normalized);
      return rc;
    }
    p = normalized.data;
    len = normalized.len;
  }
  /* Non-S3 services sign the path URI-encoded once more than it was sent
   * ('%' becomes %25); S3 signs it as sent. */
  int rc = append_encoded(out, p, len, 1, !double_encode);
  buf_wipe_free(&normalized);
  return rc;
}

int reel_sigv4_canonical_uri(const char *path, int normalize, int double_encode, char **out) {
  if (!out) return REEL_EINVAL;
  *out = NULL;
  int rc = check_string(path, REEL_SIGV4_MAX_PATH, 1, is_path_char);
  if (rc) return rc;
  if (path[0] && path[0] != '/') return REEL_EINVAL;
  reel_buf b;
  reel_buf_init(&b, TEXT_MAX);
  rc = append_canonical_uri(&b, path, normalize, double_encode);
  if (!rc) rc = buf_take(&b, out);
  buf_wipe_free(&b);
  return rc;
}

/* ---- canonical query --------------------------------------------------- */

typedef struct {
  char *name;  /* URI-encoded */
  char *value; /* URI-encoded */
} query_param;

typedef struct {
  query_param *items;
  size_t count, cap;
} query_list;

static void query_list_free(query_list *q) {
  for (size_t i = 0; i < q->count; i++) {
    reel_sigv4_free(q->items[i].name);
    reel_sigv4_free(q->items[i].value);
  }
  free(q->items);
  memset(q, 0, sizeof *q);
}

/* Adds a parameter from raw (decoded) name and value bytes. */
static int query_list_add(query_list *q, const char *name, size_t name_len, const char *value, size_t value_len) {
  if (q->count == q->cap) return REEL_ETOOBIG;
  char *n = NULL, *v = NULL;
  int rc = reel_sigv4_uri_encode(name, name_len, 0, &n);
  if (!rc) rc = reel_sigv4_uri_encode(value, value_len, 0, &v);
  if (rc) {
    reel_sigv4_free(n);
    reel_sigv4_free(v);
    return rc;
  }
  q->items[q->count].name = n;
  q->items[q->count].value = v;
  q->count++;
  return 0;
}

static const char *const FORBIDDEN_PARAMS[] = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
                                               "X-Amz-Expires",   "X-Amz-SignedHeaders", "X-Amz-Signature"};

/* Parses a sent query into q (room for extra more parameters). With
 * forbid_auth, parameters the signer adds are rejected (and
 * X-Amz-Security-Token too when forbid_token). */
static int query_list_parse(query_list *q, const char *query, size_t extra, int forbid_auth, int forbid_token) {
  memset(q, 0, sizeof *q);
  size_t len = query ? strlen(query) : 0, pieces = 1;
  for (size_t i = 0; i < len; i++)
    if (query[i] == '&') pieces++;
  q->cap = pieces + extra;
  q->items = calloc(q->cap, sizeof *q->items);
  if (!q->items) return REEL_ENOMEM;
  reel_buf name, value;
  reel_buf_init(&name, REEL_SIGV4_MAX_QUERY);
  reel_buf_init(&value, REEL_SIGV4_MAX_QUERY);
  int rc = 0;
  size_t i = 0;
  while (!rc && i < len) {
    size_t end = i;
    while (end < len && query[end] != '&') end++;
    if (end > i) {
      size_t eq = i;
      while (eq < end && query[eq] != '=') eq++;
      reel_buf_reset(&name);
      reel_buf_reset(&value);
      rc = append_decoded(&name, query + i, eq - i);
      if (!rc && eq < end) rc = append_decoded(&value, query + eq + 1, end - eq - 1);
      if (!rc && !name.data) rc = reel_buf_append(&name, "", 0);
      if (!rc && forbid_auth) {
        for (size_t k = 0; k < sizeof FORBIDDEN_PARAMS / sizeof *FORBIDDEN_PARAMS; k++)
          if (strcasecmp(name.data, FORBIDDEN_PARAMS[k]) == 0) rc = REEL_EINVAL;
        if (forbid_token && strcasecmp(name.data, "X-Amz-Security-Token") == 0) rc = REEL_EINVAL;
      }
      if (!rc) rc = query_list_add(q, name.data ? name.data : "", name.len, value.data ? value.data : "", value.len);
    }
    i = end + 1;
  }
  buf_wipe_free(&name);
  buf_wipe_free(&value);
  if (rc) query_list_free(q);
  return rc;
}

static int compare_params(const void *a, const void *b) {
  const query_param *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->value, y->value);
}

static int append_sorted_query(reel_buf *out, query_list *q) {
  if (q->count > 1) qsort(q->items, q->count, sizeof *q->items, compare_params);
  int rc = 0;
  for (size_t i = 0; !rc && i < q->count; i++) {
    if (i) rc = reel_buf_append(out, "&", 1);
    if (!rc) rc = reel_buf_append_str(out, q->items[i].name);
    if (!rc) rc = reel_buf_append(out, "=", 1);
    if (!rc) rc = reel_buf_append_str(out, q->items[i].value);
  }
  return rc;
}

int reel_sigv4_canonical_query(const char *query, char **out) {
  if (!out) return REEL_EINVAL;
  *out = NULL;
  int rc = check_string(query, REEL_SIGV4_MAX_QUERY, 1, is_query_char);
  if (rc) return rc;
  query_list q;
  rc = query_list_parse(&q, query, 0, 0, 0);
  if (rc) return rc;
  reel_buf b;
  reel_buf_init(&b, TEXT_MAX);
  rc = append_sorted_query(&b, &q);
  if (!rc) rc = buf_take(&b, out);
  buf_wipe_free(&b);
  query_list_free(&q);
  return rc;
}

/* ---- canonical headers ------------------------------------------------- */

/* Appends the canonical form of a header value: a folded line break
 * (CRLF or LF followed by SP/HT) counts as space, leading and trailing space
 * goes, inner runs of spaces and tabs become one space. */
static int append_canonical_value(reel_buf *b, const char *v) {
  size_t n = strnlen(v, REEL_SIGV4_MAX_HEADER_VALUE + 1);
  if (n > REEL_SIGV4_MAX_HEADER_VALUE) return REEL_ETOOBIG;
  int pending_space = 0, emitted = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r') {
        if (i + 1 >= n || v[i + 1] != '\n') return REEL_EINVAL;
        i++;
      }
      if (i + 1 >= n || (v[i + 1] != ' ' && v[i + 1] != '\t')) return REEL_EINVAL;
      pending_space = 1;
      continue;
    }
    if (c == ' ' || c == '\t') {
      pending_space = 1;
      continue;
    }
    if (c < 0x20 || c == 0x7f) return REEL_EINVAL;
    int rc = 0;
    if (pending_space && emitted) rc = reel_buf_append(b, " ", 1);
    if (!rc) rc = reel_buf_append(b, &v[i], 1);
    if (rc) return rc;
    pending_space = 0;
    emitted = 1;
  }
  return 0;
}

int reel_sigv4_canonical_header_value(const char *value, char **out) {
  if (!out) return REEL_EINVAL;
  *out = NULL;
  if (!value) return REEL_EINVAL;
  reel_buf b;
  reel_buf_init(&b, TEXT_MAX);
  int rc = append_canonical_value(&b, value);
  if (!rc) rc = buf_take(&b, out);
  buf_wipe_free(&b);
  return rc;
}

typedef struct {
  char name[REEL_SIGV4_MAX_HEADER_NAME + 1]; /* lowercase */
  const char *value;                          /* as sent */
  size_t index;                               /* input order, for a stable sort */
} sign_header;

/* Headers that proxies may change or drop on the way: never signed
 * (the AWS SDKs leave these out too). */
static const char *const UNSIGNED_HEADERS[] = {"connection", "expect",  "keep-alive",        "proxy-authorization",
                                               "te",         "trailer", "transfer-encoding", "upgrade",
                                               "user-agent", "x-amzn-trace-id"};

static int is_unsigned_header(const char *lower_name) {
  for (size_t i = 0; i < sizeof UNSIGNED_HEADERS / sizeof *UNSIGNED_HEADERS; i++)
    if (strcmp(lower_name, UNSIGNED_HEADERS[i]) == 0) return 1;
  return 0;
}

static int compare_headers(const void *a, const void *b) {
  const sign_header *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  if (c) return c;
  return x->index < y->index ? -1 : (x->index > y->index ? 1 : 0);
}

static int header_list_add(sign_header *list, size_t *count, size_t cap, const char *name, const char *value) {
  if (*count >= cap) return REEL_ETOOBIG;
  int rc = check_string(name, REEL_SIGV4_MAX_HEADER_NAME, 0, is_tchar);
  if (rc) return rc;
  if (!value) return REEL_EINVAL;
  sign_header *h = &list[*count];
  size_t n = strlen(name);
  for (size_t i = 0; i < n; i++) h->name[i] = (char)to_lower((unsigned char)name[i]);
  h->name[n] = '\0';
  h->value = value;
  h->index = *count;
  (*count)++;
  return 0;
}

/* Appends "name:value\n" for every signed header (duplicates joined with
 * ',' in the order given) to canonical, and "name;name" to signed_names. */
static int append_canonical_headers(sign_header *list, size_t count, reel_buf *canonical, reel_buf *signed_names) {
  qsort(list, count, sizeof *list, compare_headers);
  int rc = 0;
  for (size_t i = 0; !rc && i < count; i++) {
    if (i == 0 || strcmp(list[i].name, list[i - 1].name) != 0) {
      if (i) rc = reel_buf_append(canonical, "\n", 1);
      if (!rc && i) rc = reel_buf_append(signed_names, ";", 1);
      if (!rc) rc = reel_buf_append_str(signed_names, list[i].name);
      if (!rc) rc = reel_buf_append_str(canonical, list[i].name);
      if (!rc) rc = reel_buf_append(canonical, ":", 1);
    } else {
      rc = reel_buf_append(canonical, ",", 1);
    }
    if (!rc) rc = append_canonical_value(canonical, list[i].value);
  }
  if (!rc) rc = reel_buf_append(canonical, "\n", 1);
  return rc;
}

/* ---- signing ----------------------------------------------------------- */

static int check_request(const reel_sigv4_request *req) {
  if (!req) return REEL_EINVAL;
  int rc = check_string(req->method, 32, 0, is_tchar);
  if (!rc) rc = check_string(req->path, REEL_SIGV4_MAX_PATH, 0, is_path_char);
  if (!rc && req->path[0] != '/') rc = REEL_EINVAL;
  if (!rc) rc = check_string(req->query, REEL_SIGV4_MAX_QUERY, 1, is_query_char);
  if (!rc && req->host) rc = check_string(req->host, 255, 0, is_host_char);
  if (!rc && req->header_count > REEL_SIGV4_MAX_HEADERS) rc = REEL_ETOOBIG;
  if (!rc && req->header_count && !req->headers) rc = REEL_EINVAL;
  if (!rc) rc = check_payload_hash(req->payload_hash);
  return rc;
}

static int check_options(const reel_sigv4_options *opt) {
  if (opt->form != REEL_SIGV4_FORM_HEADERS && opt->form != REEL_SIGV4_FORM_QUERY) return REEL_EINVAL;
  if (opt->time < 0 || opt->time > TIME_MAX) return REEL_EINVAL;
  if (opt->form == REEL_SIGV4_FORM_QUERY && (opt->expires < 1 || opt->expires > REEL_SIGV4_MAX_EXPIRES))
    return REEL_EINVAL;
  return 0;
}

/* Everything one signature needs, built step by step. */
typedef struct {
  char date[9], stamp[17];
  reel_buf scope;      /* date/region/service/aws4_request */
  reel_buf credential; /* access key id/scope */
  reel_buf canonical_headers, signed_headers;
  reel_buf canonical_query;
  reel_buf canonical_request;
  reel_buf string_to_sign;
  char signature[65];
} sign_state;

static void sign_state_free(sign_state *s) {
  buf_wipe_free(&s->scope);
  buf_wipe_free(&s->credential);
  buf_wipe_free(&s->canonical_headers);
  buf_wipe_free(&s->signed_headers);
  buf_wipe_free(&s->canonical_query);
  buf_wipe_free(&s->canonical_request);
  buf_wipe_free(&s->string_to_sign);
  wipe(s->signature, sizeof s->signature);
}

/* Collects, validates and canonicalizes the headers to sign. */
static int build_headers(sign_state *s, const reel_sigv4_signer *signer, const reel_sigv4_options *opt,
                         const reel_sigv4_request *req) {
  const size_t cap = REEL_SIGV4_MAX_HEADERS + 4;
  sign_header *list = calloc(cap, sizeof *list);
  if (!list) return REEL_ENOMEM;
  size_t count = 0, hosts = 0;
  int token = has_session_token(&signer->credentials), header_form = opt->form == REEL_SIGV4_FORM_HEADERS;
  int rc = 0;
  if (req->host) {
    rc = header_list_add(list, &count, cap, "Host", req->host);
    hosts++;
  }
  for (size_t i = 0; !rc && i < req->header_count; i++) {
    rc = header_list_add(list, &count, cap, req->headers[i].name, req->headers[i].value);
    if (rc) break;
    const char *name = list[count - 1].name;
    /* What the signer adds must not come from the caller too. */
    if (strcmp(name, "authorization") == 0 || strcmp(name, "x-amz-date") == 0 ||
        (token && strcmp(name, "x-amz-security-token") == 0) ||
        (header_form && opt->content_sha256_header && strcmp(name, "x-amz-content-sha256") == 0)) {
      rc = REEL_EINVAL;
    } else if (strcmp(name, "host") == 0) {
      hosts++;
    } else if (is_unsigned_header(name)) {
      count--;
    }
  }
  if (!rc && hosts != 1) rc = REEL_EINVAL;
  if (!rc && header_form && token && !opt->omit_session_token)
    rc = header_list_add(list, &count, cap, "X-Amz-Security-Token", signer->credentials.session_token);
  if (!rc && header_form) rc = header_list_add(list, &count, cap, "X-Amz-Date", s->stamp);
  if (!rc && header_form && opt->content_sha256_header)
    rc = header_list_add(list, &count, cap, "x-amz-content-sha256", req->payload_hash);
  if (!rc) rc = append_canonical_headers(list, count, &s->canonical_headers, &s->signed_headers);
  wipe(list, cap * sizeof *list);
  free(list);
  return rc;
}

static int build_query(sign_state *s, const reel_sigv4_signer *signer, const reel_sigv4_options *opt,
                       const reel_sigv4_request *req) {
  int token = has_session_token(&signer->credentials), query_form = opt->form == REEL_SIGV4_FORM_QUERY;
  query_list q;
  int rc = query_list_parse(&q, req->query, query_form ? 6 : 0, 1, token);
  if (rc) return rc;
  if (query_form) {
    char expires[24];
    snprintf(expires, sizeof expires, "%lld", (long long)opt->expires);
    rc = query_list_add(&q, "X-Amz-Algorithm", 15, REEL_SIGV4_ALGORITHM, strlen(REEL_SIGV4_ALGORITHM));
    if (!rc) rc = query_list_add(&q, "X-Amz-Credential", 16, s->credential.data, s->credential.len);
    if (!rc) rc = query_list_add(&q, "X-Amz-Date", 10, s->stamp, 16);
    if (!rc) rc = query_list_add(&q, "X-Amz-Expires", 13, expires, strlen(expires));
    if (!rc) rc = query_list_add(&q, "X-Amz-SignedHeaders", 19, s->signed_headers.data, s->signed_headers.len);
    if (!rc && token && !opt->omit_session_token)
      rc = query_list_add(&q, "X-Amz-Security-Token", 20, signer->credentials.session_token,
                          strlen(signer->credentials.session_token));
  }
  if (!rc) rc = append_sorted_query(&s->canonical_query, &q);
  if (!rc && !s->canonical_query.data) rc = reel_buf_append(&s->canonical_query, "", 0);
  query_list_free(&q);
  return rc;
}

/* Fills out->added (and out->query) once the signature is known. */
static int build_outputs(sign_state *s, const reel_sigv4_signer *signer, const reel_sigv4_options *opt,
                         const reel_sigv4_request *req, reel_sigv4_result *out) {
  const char *token = signer->credentials.session_token;
  int has_token = has_session_token(&signer->credentials);
  int rc = 0;
  if (opt->form == REEL_SIGV4_FORM_HEADERS) {
    reel_buf auth;
    reel_buf_init(&auth, TEXT_MAX);
    rc = reel_buf_printf(&auth, REEL_SIGV4_ALGORITHM " Credential=%s, SignedHeaders=%s, Signature=%s",
                         s->credential.data, s->signed_headers.data, s->signature);
    if (!rc && has_token) rc = fields_add(&out->added, "X-Amz-Security-Token", token);
    if (!rc) rc = fields_add(&out->added, "X-Amz-Date", s->stamp);
    if (!rc && opt->content_sha256_header) rc = fields_add(&out->added, "x-amz-content-sha256", req->payload_hash);
    if (!rc) rc = fields_add(&out->added, "Authorization", auth.data);
    buf_wipe_free(&auth);
    return rc;
  }
  reel_buf value, query;
  reel_buf_init(&value, TEXT_MAX);
  reel_buf_init(&query, TEXT_MAX);
  char expires[24];
  snprintf(expires, sizeof expires, "%lld", (long long)opt->expires);
  const struct {
    const char *name;
    const char *raw;
  } params[] = {
      {"X-Amz-Algorithm", REEL_SIGV4_ALGORITHM},
      {"X-Amz-Credential", s->credential.data},
      {"X-Amz-Date", s->stamp},
      {"X-Amz-SignedHeaders", s->signed_headers.data},
      {"X-Amz-Expires", expires},
      {"X-Amz-Security-Token", has_token ? token : NULL},
      {"X-Amz-Signature", s->signature},
  };
  for (size_t i = 0; !rc && i < sizeof params / sizeof *params; i++) {
    if (!params[i].raw) continue;
    reel_buf_reset(&value);
    rc = append_encoded(&value, params[i].raw, strlen(params[i].raw), 0, 0);
    if (!rc) rc = fields_add(&out->added, params[i].name, value.data);
    if (!rc && query.len) rc = reel_buf_append(&query, "&", 1);
    if (!rc) rc = reel_buf_printf(&query, "%s=%s", params[i].name, value.data);
  }
  if (!rc) rc = buf_take(&query, &out->query);
  buf_wipe_free(&value);
  buf_wipe_free(&query);
  return rc;
}

int reel_sigv4_sign(const reel_sigv4_signer *signer, const reel_sigv4_options *opt, const reel_sigv4_request *req,
                    reel_sigv4_result *out) {
  if (!out) return REEL_EINVAL;
  memset(out, 0, sizeof *out);
  if (!signer || !opt) return REEL_EINVAL;
  int rc = check_signer(signer);
  if (!rc) rc = check_options(opt);
  if (!rc) rc = check_request(req);
  if (rc) return rc;

  sign_state s;
  memset(&s, 0, sizeof s);
  reel_buf_init(&s.scope, 512);
  reel_buf_init(&s.credential, 1024);
  reel_buf_init(&s.canonical_headers, TEXT_MAX);
  reel_buf_init(&s.signed_headers, TEXT_MAX);
  reel_buf_init(&s.canonical_query, TEXT_MAX);
  reel_buf_init(&s.canonical_request, TEXT_MAX);
  reel_buf_init(&s.string_to_sign, TEXT_MAX);

  rc = format_time(opt->time, s.date, s.stamp);
  if (!rc) rc = reel_buf_printf(&s.scope, "%s/%s/%s/aws4_request", s.date, signer->region, signer->service);
  if (!rc) rc = reel_buf_printf(&s.credential, "%s/%s", signer->credentials.access_key_id, s.scope.data);
  if (!rc) rc = build_headers(&s, signer, opt, req);
  if (!rc) rc = build_query(&s, signer, opt, req);

  /* CanonicalRequest = Method \n URI \n Query \n Headers \n SignedHeaders \n PayloadHash */
  if (!rc) rc = reel_buf_printf(&s.canonical_request, "%s\n", req->method);
  if (!rc) rc = append_canonical_uri(&s.canonical_request, req->path, opt->normalize_path, opt->double_encode_path);
  if (!rc)
    rc = reel_buf_printf(&s.canonical_request, "\n%s\n%s\n%s\n%s", s.canonical_query.data,
                         s.canonical_headers.data, s.signed_headers.data, req->payload_hash);

  /* StringToSign = Algorithm \n Timestamp \n Scope \n hex(SHA256(CanonicalRequest)) */
  char request_hash[65];
  if (!rc) rc = sha256_hex(s.canonical_request.data, s.canonical_request.len, request_hash);
  if (!rc)
    rc = reel_buf_printf(&s.string_to_sign, REEL_SIGV4_ALGORITHM "\n%s\n%s\n%s", s.stamp, s.scope.data,
                         request_hash);

  if (!rc) {
    unsigned char key[32], mac[32];
    rc = reel_sigv4_signing_key(signer->credentials.secret_access_key, s.date, signer->region, signer->service, key);
    if (!rc) rc = hmac_sha256(key, 32, s.string_to_sign.data, s.string_to_sign.len, mac);
    if (!rc) reel_hex_encode(mac, 32, s.signature);
    wipe(key, 32);
    wipe(mac, 32);
  }

  if (!rc) {
    out->form = opt->form;
    memcpy(out->signature, s.signature, sizeof out->signature);
    rc = build_outputs(&s, signer, opt, req, out);
  }
  if (!rc) rc = buf_take(&s.canonical_request, &out->canonical_request);
  if (!rc) rc = buf_take(&s.string_to_sign, &out->string_to_sign);
  if (!rc) rc = buf_take(&s.scope, &out->credential_scope);
  if (!rc) rc = buf_take(&s.signed_headers, &out->signed_headers);
  sign_state_free(&s);
  if (rc) reel_sigv4_result_free(out);
  return rc;
}

int reel_sigv4_format_signed_request(const reel_sigv4_request *req, const reel_sigv4_result *result,
                                     const void *body, size_t body_len, char **out, size_t *out_len) {
  if (!out) return REEL_EINVAL;
  *out = NULL;
  if (out_len) *out_len = 0;
  if (!req || !result || !req->method || !req->path || (!body && body_len)) return REEL_EINVAL;
  if (req->header_count && !req->headers) return REEL_EINVAL;
  if (body_len > (size_t)64 * TEXT_MAX) return REEL_ETOOBIG;
  reel_buf b;
  reel_buf_init(&b, TEXT_MAX + body_len);
  int has_query = req->query && req->query[0];
  int rc = reel_buf_printf(&b, "%s %s", req->method, req->path);
  if (!rc && has_query) rc = reel_buf_printf(&b, "?%s", req->query);
  if (!rc && result->form == REEL_SIGV4_FORM_QUERY && result->query)
    rc = reel_buf_printf(&b, "%c%s", has_query ? '&' : '?', result->query);
  if (!rc) rc = reel_buf_append_str(&b, " HTTP/1.1\n");
  if (!rc && req->host) rc = reel_buf_printf(&b, "Host:%s\n", req->host);
  for (size_t i = 0; !rc && i < req->header_count; i++)
    rc = reel_buf_printf(&b, "%s:%s\n", req->headers[i].name, req->headers[i].value);
  for (size_t i = 0; !rc && result->form == REEL_SIGV4_FORM_HEADERS && i < result->added.count; i++)
    rc = reel_buf_printf(&b, "%s:%s\n", result->added.items[i].name, result->added.items[i].value);
  if (!rc) rc = reel_buf_append(&b, "\n", 1);
  if (!rc) rc = reel_buf_append(&b, body, body_len);
  size_t len = b.len;
  if (!rc) rc = buf_take(&b, out);
  if (!rc && out_len) *out_len = len;
  buf_wipe_free(&b);
  return rc;
}

/* ---- Authorization header for the S3 client ----------------------------- */

int reel_sigv4_sign_headers(const reel_sigv4_signer *signer, const reel_sigv4_request *req, int64_t now,
                            reel_sigv4_fields *out) {
  if (!out) return REEL_EINVAL;
  memset(out, 0, sizeof *out);
  if (!signer || !signer->service) return REEL_EINVAL;
  int s3 = strcmp(signer->service, "s3") == 0;
  reel_sigv4_options opt = {
      .form = REEL_SIGV4_FORM_HEADERS,
      .time = now,
      .normalize_path = !s3,
      .double_encode_path = !s3,
      .content_sha256_header = s3,
  };
  reel_sigv4_result result;
  int rc = reel_sigv4_sign(signer, &opt, req, &result);
  if (rc) return rc;
  *out = result.added;
  memset(&result.added, 0, sizeof result.added);
  reel_sigv4_result_free(&result);
  return 0;
}

/* ---- S3 addressing ----------------------------------------------------- */

typedef struct {
  const char *scheme;    /* "http" or "https" */
  char authority[REEL_SIGV4_MAX_ENDPOINT + 1]; /* as configured */
  char host[REEL_SIGV4_MAX_ENDPOINT + 1];      /* Host header: lowercase, no default port */
  int is_ip;
} endpoint;

static int is_ipv4(const char *s, size_t len) {
  int dots = 0, digits = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '.') {
      if (!digits) return 0;
      dots++;
      digits = 0;
    } else if (s[i] >= '0' && s[i] <= '9') {
      if (++digits > 3) return 0;
    } else {
      return 0;
    }
  }
  return dots == 3 && digits > 0;
}

static int parse_endpoint(const char *url, endpoint *ep) {
  memset(ep, 0, sizeof *ep);
  int rc = check_string(url, REEL_SIGV4_MAX_ENDPOINT, 0, is_printable_ascii);
  if (rc) return rc;
  const char *rest;
  if (strncasecmp(url, "https://", 8) == 0) {
    ep->scheme = "https";
    rest = url + 8;
  } else if (strncasecmp(url, "http://", 7) == 0) {
    ep->scheme = "http";
    rest = url + 7;
  } else {
    return REEL_EINVAL;
  }
  size_t len = strlen(rest);
  if (len && rest[len - 1] == '/') len--;
  if (len == 0) return REEL_EINVAL;
  for (size_t i = 0; i < len; i++)
    if (strchr("/?#@ \\", rest[i])) return REEL_EINVAL; /* no path, query, fragment or userinfo */
  memcpy(ep->authority, rest, len);
  ep->authority[len] = '\0';

  const char *host = rest, *port = NULL;
  size_t host_len;
  if (rest[0] == '[') { /* IPv6 literal */
    const char *close = memchr(rest, ']', len);
    if (!close || close == rest + 1) return REEL_EINVAL;
    for (const char *p = rest + 1; p < close; p++)
      if (hex_value((unsigned char)*p) < 0 && *p != ':' && *p != '.') return REEL_EINVAL;
    host_len = (size_t)(close - rest) + 1;
    if (host_len < len) {
      if (rest[host_len] != ':') return REEL_EINVAL;
      port = rest + host_len + 1;
    }
    ep->is_ip = 1;
  } else {
    const char *colon = memchr(rest, ':', len);
    host_len = colon ? (size_t)(colon - rest) : len;
    if (colon) port = colon + 1;
    if (host_len == 0) return REEL_EINVAL;
    for (size_t i = 0; i < host_len; i++)
      if (!is_alnum((unsigned char)host[i]) && host[i] != '-' && host[i] != '.') return REEL_EINVAL;
    ep->is_ip = is_ipv4(host, host_len);
  }
  long port_number = 0;
  size_t port_len = port ? (size_t)(rest + len - port) : 0;
  if (port) {
    if (port_len == 0 || port_len > 5) return REEL_EINVAL;
    for (size_t i = 0; i < port_len; i++) {
      if (port[i] < '0' || port[i] > '9') return REEL_EINVAL;
      port_number = port_number * 10 + (port[i] - '0');
    }
    if (port_number < 1 || port_number > 65535) return REEL_EINVAL;
  }
  for (size_t i = 0; i < host_len; i++) ep->host[i] = (char)to_lower((unsigned char)host[i]);
  ep->host[host_len] = '\0';
  int default_port = (strcmp(ep->scheme, "https") == 0 && port_number == 443) ||
                     (strcmp(ep->scheme, "http") == 0 && port_number == 80);
  if (port && !default_port) snprintf(ep->host + host_len, sizeof ep->host - host_len, ":%ld", port_number);
  return 0;
}

/* DNS-compatible bucket names (virtual-hosted addressing). */
static int check_dns_bucket(const char *b) {
  int rc = check_string(b, 63, 0, is_printable_ascii);
  if (rc) return rc;
  size_t n = strlen(b);
  if (n < 3 || !is_alnum((unsigned char)b[0]) || !is_alnum((unsigned char)b[n - 1])) return REEL_EINVAL;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)b[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) return REEL_EINVAL;
    if (c == '.' && b[i + 1] == '.') return REEL_EINVAL;
  }
  return is_ipv4(b, n) ? REEL_EINVAL : 0;
}

static int is_bucket_char(unsigned char c) { return is_alnum(c) || c == '.' || c == '-' || c == '_'; }

static int check_path_bucket(const char *b) {
  int rc = check_string(b, 255, 0, is_bucket_char);
  if (!rc && strlen(b) < 3) rc = REEL_EINVAL;
  return rc;
}

/* Keys: 1..1024 bytes without control characters or "."/".." segments. */
static int check_key(const char *key) {
  int rc = check_string(key, REEL_SIGV4_MAX_KEY, 0, is_text_char);
  if (rc) return rc;
  const char *seg = key;
  for (;;) {
    const char *end = strchr(seg, '/');
    size_t n = end ? (size_t)(end - seg) : strlen(seg);
    if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) return REEL_EINVAL;
    if (!end) break;
    seg = end + 1;
  }
  return 0;
}

void reel_sigv4_s3_location_free(reel_sigv4_s3_location *loc) {
  if (!loc) return;
  reel_sigv4_free(loc->origin);
  reel_sigv4_free(loc->host);
  reel_sigv4_free(loc->path);
  memset(loc, 0, sizeof *loc);
}

int reel_sigv4_s3_locate(const reel_sigv4_s3_config *cfg, const char *bucket, const char *key,
                         reel_sigv4_s3_location *out) {
  if (!out) return REEL_EINVAL;
  memset(out, 0, sizeof *out);
  if (!cfg) return REEL_EINVAL;
  endpoint ep;
  int rc = parse_endpoint(cfg->endpoint, &ep);
  if (rc) return rc;
  /* An IP address cannot carry a bucket label: the SDKs fall back to path-style. */
  int virtual_hosted = cfg->virtual_hosted && !ep.is_ip;
  rc = virtual_hosted ? check_dns_bucket(bucket) : check_path_bucket(bucket);
  int has_key = key && key[0];
  if (!rc && has_key) rc = check_key(key);
  if (rc) return rc;

  reel_buf origin, host, path;
  reel_buf_init(&origin, TEXT_MAX);
  reel_buf_init(&host, TEXT_MAX);
  reel_buf_init(&path, TEXT_MAX);
  if (virtual_hosted) {
    rc = reel_buf_printf(&origin, "%s://%s.%s", ep.scheme, bucket, ep.authority);
    if (!rc) rc = reel_buf_printf(&host, "%s.%s", bucket, ep.host);
    if (!rc) rc = reel_buf_append(&path, "/", 1);
  } else {
    rc = reel_buf_printf(&origin, "%s://%s", ep.scheme, ep.authority);
    if (!rc) rc = reel_buf_append_str(&host, ep.host);
    if (!rc) rc = reel_buf_printf(&path, "/%s%s", bucket, has_key ? "/" : "");
  }
  if (!rc && has_key) rc = append_encoded(&path, key, strlen(key), 1, 0);
  if (!rc) rc = buf_take(&origin, &out->origin);
  if (!rc) rc = buf_take(&host, &out->host);
  if (!rc) rc = buf_take(&path, &out->path);
  buf_wipe_free(&origin);
  buf_wipe_free(&host);
  buf_wipe_free(&path);
  if (rc) reel_sigv4_s3_location_free(out);
  return rc;
}

/* ---- presigned URLs ---------------------------------------------------- */

int reel_sigv4_s3_presign_url(const reel_sigv4_s3_config *cfg, const reel_sigv4_s3_presign_request *req,
                              char **url) {
  if (!url) return REEL_EINVAL;
  *url = NULL;
  if (!cfg || !req || !req->method || !req->key || !req->key[0]) return REEL_EINVAL;
  if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0 && strcmp(req->method, "PUT") != 0)
    return REEL_EINVAL;
  if (req->expires < 1 || req->expires > REEL_SIGV4_MAX_EXPIRES) return REEL_EINVAL;
  reel_sigv4_s3_location loc;
  int rc = reel_sigv4_s3_locate(cfg, req->bucket, req->key, &loc);
  if (rc) return rc;
  reel_sigv4_signer signer = {.credentials = cfg->credentials, .region = cfg->region, .service = "s3"};
  reel_sigv4_options opt = {.form = REEL_SIGV4_FORM_QUERY, .time = req->now, .expires = req->expires};
  reel_sigv4_request request = {
      .method = req->method,
      .host = loc.host,
      .path = loc.path,
      .headers = req->headers,
      .header_count = req->header_count,
      .payload_hash = REEL_SIGV4_UNSIGNED_PAYLOAD,
  };
  reel_sigv4_result result;
  rc = reel_sigv4_sign(&signer, &opt, &request, &result);
  if (!rc) {
    /* The parameter order of the AWS SDKs' presigned URLs. */
    static const char *const order[] = {"X-Amz-Algorithm",     "X-Amz-Credential",     "X-Amz-Date",
                                        "X-Amz-Expires",       "X-Amz-SignedHeaders", "X-Amz-Security-Token",
                                        "X-Amz-Signature"};
    reel_buf b;
    reel_buf_init(&b, TEXT_MAX);
    rc = reel_buf_printf(&b, "%s%s", loc.origin, loc.path);
    char sep = '?';
    for (size_t i = 0; !rc && i < sizeof order / sizeof *order; i++) {
      const char *value = reel_sigv4_fields_get(&result.added, order[i]);
      if (!value) continue;
      rc = reel_buf_printf(&b, "%c%s=%s", sep, order[i], value);
      sep = '&';
    }
    if (!rc) rc = buf_take(&b, url);
    buf_wipe_free(&b);
  }
  reel_sigv4_result_free(&result);
  reel_sigv4_s3_location_free(&loc);
  return rc;
}

/* ---- POST policies ----------------------------------------------------- */

static int append_base64(reel_buf *b, const unsigned char *in, size_t len) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  int rc = 0;
  for (size_t i = 0; !rc && i < len; i += 3) {
    unsigned v = (unsigned)in[i] << 16;
    if (i + 1 < len) v |= (unsigned)in[i + 1] << 8;
    if (i + 2 < len) v |= in[i + 2];
    char quad[4] = {alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63], i + 1 < len ? alphabet[(v >> 6) & 63] : '=',
                    i + 2 < len ? alphabet[v & 63] : '='};
    rc = reel_buf_append(b, quad, 4);
  }
  return rc;
}

void reel_sigv4_s3_post_form_free(reel_sigv4_s3_post_form *form) {
  if (!form) return;
  reel_sigv4_free(form->url);
  reel_sigv4_free(form->policy_json);
  reel_sigv4_fields_free(&form->fields);
  memset(form, 0, sizeof *form);
}

/* True when s is well-formed UTF-8 (JSON strings must be). */
static int is_utf8(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    size_t n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : 4;
    if (n == 4 || (n == 1 && *p < 0xc2) || (n == 3 && *p > 0xf4)) return 0;
    unsigned cp = n == 0 ? *p : *p & (0x3f >> n);
    for (size_t i = 1; i <= n; i++) {
      if ((p[i] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
      return 0;
    p += n + 1;
  }
  return 1;
}

static int check_post_request(const reel_sigv4_s3_post_request *req) {
  if ((req->key != NULL) == (req->key_prefix != NULL)) return REEL_EINVAL; /* exactly one */
  int rc = req->key ? check_key(req->key) : check_string(req->key_prefix, REEL_SIGV4_MAX_KEY, 0, is_text_char);
  if (rc) return rc;
  if (!is_utf8(req->key ? req->key : req->key_prefix)) return REEL_EINVAL;
  if (req->expires < 1 || req->expires > REEL_SIGV4_MAX_EXPIRES) return REEL_EINVAL;
  if (req->now < 0 || req->now > TIME_MAX - req->expires) return REEL_EINVAL;
  if (req->content_length_min < 0 || req->content_length_max < 1 ||
      req->content_length_min > req->content_length_max || req->content_length_max > REEL_SIGV4_MAX_POST_SIZE)
    return REEL_EINVAL;
  if (req->content_type && req->content_type_prefix) return REEL_EINVAL;
  if (req->content_type) rc = check_string(req->content_type, 256, 0, is_printable_ascii);
  if (!rc && req->content_type_prefix) rc = check_string(req->content_type_prefix, 256, 0, is_printable_ascii);
  return rc;
}

static json_t *condition_eq(const char *name, const char *value) {
  json_t *o = json_object();
  if (o && json_object_set_new(o, name, json_string(value)) != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

static json_t *condition_starts_with(const char *field, const char *prefix) {
  return json_pack("[s, s, s]", "starts-with", field, prefix);
}

/* The policy document: expiration and one condition per form field. */
static char *build_policy_json(const reel_sigv4_s3_post_request *req, const char *bucket, const char *expiration,
                               const char *credential, const char *stamp, const char *token) {
  json_t *conditions = json_array();
  json_t *policy = json_object();
  int bad = !conditions || !policy;
  bad = bad || json_array_append_new(conditions, condition_eq("bucket", bucket)) != 0;
  bad = bad || json_array_append_new(conditions, req->key ? condition_eq("key", req->key)
                                                          : condition_starts_with("$key", req->key_prefix)) != 0;
  bad = bad || json_array_append_new(conditions, json_pack("[s, I, I]", "content-length-range",
                                                           (json_int_t)req->content_length_min,
                                                           (json_int_t)req->content_length_max)) != 0;
  if (req->content_type)
    bad = bad || json_array_append_new(conditions, condition_eq("Content-Type", req->content_type)) != 0;
  if (req->content_type_prefix)
    bad = bad ||
          json_array_append_new(conditions, condition_starts_with("$Content-Type", req->content_type_prefix)) != 0;
  bad = bad || json_array_append_new(conditions, condition_eq("x-amz-algorithm", REEL_SIGV4_ALGORITHM)) != 0;
  bad = bad || json_array_append_new(conditions, condition_eq("x-amz-credential", credential)) != 0;
  bad = bad || json_array_append_new(conditions, condition_eq("x-amz-date", stamp)) != 0;
  if (token) bad = bad || json_array_append_new(conditions, condition_eq("x-amz-security-token", token)) != 0;
  bad = bad || json_object_set_new(policy, "expiration", json_string(expiration)) != 0;
  if (!bad) {
    bad = json_object_set_new(policy, "conditions", conditions) != 0;
    conditions = NULL;
  }
  char *text = bad ? NULL : json_dumps(policy, JSON_COMPACT);
  json_decref(conditions);
  json_decref(policy);
  return text;
}

int reel_sigv4_s3_post_policy(const reel_sigv4_s3_config *cfg, const reel_sigv4_s3_post_request *req,
                              reel_sigv4_s3_post_form *out) {
  if (!out) return REEL_EINVAL;
  memset(out, 0, sizeof *out);
  if (!cfg || !req) return REEL_EINVAL;
  reel_sigv4_signer signer = {.credentials = cfg->credentials, .region = cfg->region, .service = "s3"};
  int rc = check_signer(&signer);
  if (!rc) rc = check_post_request(req);
  if (rc) return rc;
  reel_sigv4_s3_location loc;
  rc = reel_sigv4_s3_locate(cfg, req->bucket, NULL, &loc);
  if (rc) return rc;

  char date[9], stamp[17], expiration[32];
  time_t expires_at = (time_t)(req->now + req->expires);
  struct tm tm;
  rc = format_time(req->now, date, stamp);
  if (!rc && (!gmtime_r(&expires_at, &tm) || strftime(expiration, sizeof expiration, "%Y-%m-%dT%H:%M:%S.000Z", &tm) == 0))
    rc = REEL_EINVAL;
  const char *token = has_session_token(&cfg->credentials) ? cfg->credentials.session_token : NULL;
  reel_buf credential, policy64, key_field, url;
  reel_buf_init(&credential, 1024);
  reel_buf_init(&policy64, TEXT_MAX);
  reel_buf_init(&key_field, TEXT_MAX);
  reel_buf_init(&url, TEXT_MAX);
  if (!rc)
    rc = reel_buf_printf(&credential, "%s/%s/%s/s3/aws4_request", cfg->credentials.access_key_id, date, cfg->region);
  char *policy = NULL;
  if (!rc) {
    policy = build_policy_json(req, req->bucket, expiration, credential.data, stamp, token);
    if (!policy) rc = REEL_ENOMEM;
  }
  if (!rc) rc = append_base64(&policy64, (const unsigned char *)policy, strlen(policy));

  /* The string to sign of a POST policy is the base64 policy itself. */
  char signature[65];
  if (!rc) {
    unsigned char key[32], mac[32];
    rc = reel_sigv4_signing_key(cfg->credentials.secret_access_key, date, cfg->region, "s3", key);
    if (!rc) rc = hmac_sha256(key, 32, policy64.data, policy64.len, mac);
    if (!rc) reel_hex_encode(mac, 32, signature);
    wipe(key, 32);
    wipe(mac, 32);
  }

  if (!rc) rc = reel_buf_printf(&key_field, "%s%s", req->key ? req->key : req->key_prefix, req->key ? "" : "${filename}");
  if (!rc) rc = fields_add(&out->fields, "key", key_field.data);
  if (!rc && req->content_type) rc = fields_add(&out->fields, "Content-Type", req->content_type);
  if (!rc) rc = fields_add(&out->fields, "x-amz-algorithm", REEL_SIGV4_ALGORITHM);
  if (!rc) rc = fields_add(&out->fields, "x-amz-credential", credential.data);
  if (!rc) rc = fields_add(&out->fields, "x-amz-date", stamp);
  if (!rc && token) rc = fields_add(&out->fields, "x-amz-security-token", token);
  if (!rc) rc = fields_add(&out->fields, "policy", policy64.data);
  if (!rc) rc = fields_add(&out->fields, "x-amz-signature", signature);
  if (!rc) rc = reel_buf_printf(&url, "%s%s", loc.origin, loc.path);
  if (!rc) rc = buf_take(&url, &out->url);
  if (!rc) {
    out->policy_json = strdup(policy);
    if (!out->policy_json) rc = REEL_ENOMEM;
  }
  if (policy) {
    wipe(policy, strlen(policy));
    free(policy);
  }
  wipe(signature, sizeof signature);
  buf_wipe_free(&credential);
  buf_wipe_free(&policy64);
  buf_wipe_free(&key_field);
  buf_wipe_free(&url);
  reel_sigv4_s3_location_free(&loc);
  if (rc) reel_sigv4_s3_post_form_free(out);
  return rc;
}
