/* Redaction marks, then replaces: every rule marks the bytes of the original
 * line that must go (in a mask as long as the line), and the output copies
 * the unmarked bytes and writes one REEL_REDACTED per marked stretch. Rules run
 * on the line as it is and on its percent-decoded forms ("views"), whose
 * bytes each remember the stretch of the original they came from, so a match
 * in a decoded view marks the encoded bytes. Registered secrets are found by
 * Knuth-Morris-Pratt (every occurrence, overlapping ones too, in one pass per
 * secret); the credential patterns are found in one left-to-right pass. It
 * would rather blank a harmless word than let a credential through. */
#include "common/redact.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"

#define MAX_SECRETS 256
#define MIN_SECRET_BYTES 4
#define MAX_SECRET_BYTES 16384
#define MAX_DECODE_DEPTH 3   /* "%252563" is 'c' encoded three times */
#define ENCODED_BYTES 7      /* the most input bytes one secret byte takes at that depth */
#define MAX_LOOKAHEAD (64 * 1024)
#define MAX_LINE ((size_t)1 << 31) /* views keep 32-bit offsets */
#define MARKER_LEN (sizeof REEL_REDACTED - 1)

/* ------------------------------------------------------------ the secrets -- */

typedef struct {
  unsigned char *text;
  size_t len;
  size_t *next; /* KMP: next[q] = longest proper prefix of text[0..q] that is also its suffix */
} secret;

typedef struct {
  secret *items;
  size_t n;
  size_t longest;
} secret_set;

static secret_set current;
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;

static void set_free(secret_set *s) {
  for (size_t i = 0; i < s->n; i++) {
    free(s->items[i].text);
    free(s->items[i].next);
  }
  free(s->items);
  *s = (secret_set){0};
}

/* Adds a copy of text to s unless it is too short, too long, a duplicate or
 * the set is full (those return 0 too). */
static int set_add(secret_set *s, const char *text) {
  size_t len = text ? strlen(text) : 0;
  if (len < MIN_SECRET_BYTES || len > MAX_SECRET_BYTES || s->n >= MAX_SECRETS) return 0;
  for (size_t i = 0; i < s->n; i++)
    if (s->items[i].len == len && memcmp(s->items[i].text, text, len) == 0) return 0;
  secret *grown = realloc(s->items, (s->n + 1) * sizeof *grown);
  if (!grown) return REEL_ENOMEM;
  s->items = grown;
  secret *e = &s->items[s->n];
  e->text = malloc(len);
  e->next = malloc(len * sizeof *e->next);
  if (!e->text || !e->next) {
    free(e->text);
    free(e->next);
    return REEL_ENOMEM;
  }
  memcpy(e->text, text, len);
  e->len = len;
  e->next[0] = 0;
  for (size_t q = 1, k = 0; q < len; q++) {
    while (k > 0 && e->text[q] != e->text[k]) k = e->next[k - 1];
    if (e->text[q] == e->text[k]) k++;
    e->next[q] = k;
  }
  if (len > s->longest) s->longest = len;
  s->n++;
  return 0;
}

int reel_redact_set_secrets(const char *const *list, size_t n) {
  secret_set fresh = {0};
  for (size_t i = 0; i < n; i++) {
    if (set_add(&fresh, list[i]) != 0) {
      set_free(&fresh);
      return REEL_ENOMEM;
    }
  }
  pthread_rwlock_wrlock(&lock);
  secret_set old = current;
  current = fresh;
  pthread_rwlock_unlock(&lock);
  set_free(&old);
  return 0;
}

int reel_redact_add_secret(const char *text) {
  pthread_rwlock_wrlock(&lock);
  int rc = set_add(&current, text);
  pthread_rwlock_unlock(&lock);
  return rc;
}

void reel_redact_clear_secrets(void) { reel_redact_set_secrets(NULL, 0); }

size_t reel_redact_lookahead(void) {
  pthread_rwlock_rdlock(&lock);
  size_t longest = current.longest;
  pthread_rwlock_unlock(&lock);
  size_t n = longest * ENCODED_BYTES + 16;
  return n < MAX_LOOKAHEAD ? n : MAX_LOOKAHEAD;
}

/* -------------------------------------------------------------- the views -- */

/* A form of the line. Byte i came from the original bytes [from[i], to[i]);
 * from == NULL means the line itself (byte i is original byte i). */
typedef struct {
  const unsigned char *b;
  const uint32_t *from, *to;
  size_t n;
} view;

typedef struct {
  unsigned char *b;
  uint32_t *from, *to;
} view_store;

static size_t view_from(const view *v, size_t i) { return v->from ? v->from[i] : i; }
static size_t view_to(const view *v, size_t i) { return v->to ? v->to[i] : i + 1; }

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes %XX escapes (and '+' as a space when plus) of src into dst, which
 * has room for src->n bytes. Returns 1 when anything was decoded. */
static int decode_view(const view *src, int plus, view_store *st, view *dst) {
  size_t j = 0;
  int changed = 0;
  for (size_t i = 0; i < src->n; j++) {
    unsigned char c = src->b[i];
    size_t first = i, last = i;
    if (c == '%' && i + 2 < src->n && hex_value(src->b[i + 1]) >= 0 && hex_value(src->b[i + 2]) >= 0) {
      c = (unsigned char)(hex_value(src->b[i + 1]) << 4 | hex_value(src->b[i + 2]));
      last = i + 2;
      changed = 1;
    } else if (plus && c == '+') {
      c = ' ';
      changed = 1;
    }
    st->b[j] = c;
    st->from[j] = (uint32_t)view_from(src, first);
    st->to[j] = (uint32_t)view_to(src, last);
    i = last + 1;
  }
  *dst = (view){st->b, st->from, st->to, j};
  return changed;
}

/* Marks the original bytes under view bytes [a, b). Calls within one pass go
 * left to right; *done (the marked high-water mark) keeps the pass linear. */
static void mark(const view *v, unsigned char *mask, size_t *done, size_t a, size_t b) {
  if (a >= b) return;
  size_t from = view_from(v, a), to = view_to(v, b - 1);
  if (from < *done) from = *done;
  if (from < to) memset(mask + from, 1, to - from);
  if (to > *done) *done = to;
}

/* -------------------------------------------------------------- the rules -- */

static int is_alnum(unsigned char c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }
static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int is_key_char(unsigned char c) { return is_alnum(c) || c == '_' || c == '-' || c == '.'; }

/* Names whose values are credentials, in key=value, key: value or ?key=value form. */
#define KEY(s) {s, sizeof s - 1}
static const struct {
  const char *name;
  size_t len;
} secret_keys[] = {
    KEY("token"),           KEY("access_token"),     KEY("refresh_token"),        KEY("id_token"),
    KEY("api_key"),         KEY("apikey"),           KEY("password"),             KEY("passwd"),
    KEY("secret"),          KEY("secret_key"),       KEY("client_secret"),        KEY("private_key"),
    KEY("signature"),       KEY("sig"),              KEY("x-amz-signature"),      KEY("x-amz-credential"),
    KEY("x-amz-security-token"), KEY("x-goog-signature"), KEY("x-goog-credential"), KEY("x-reel-signature"),
    KEY("authorization"),   KEY("aws_secret_access_key"), KEY("key"),
};
#undef KEY

static int is_secret_key(const unsigned char *k, size_t n) {
  for (size_t i = 0; i < sizeof secret_keys / sizeof *secret_keys; i++) {
    size_t m = secret_keys[i].len;
    /* whole key, or a key ending in _token/_secret/-signature etc. */
    if (n == m && strncasecmp((const char *)k, secret_keys[i].name, n) == 0) return 1;
    if (n > m && m >= 5 && (k[n - m - 1] == '_' || k[n - m - 1] == '-') &&
        strncasecmp((const char *)k + n - m, secret_keys[i].name, m) == 0)
      return 1;
  }
  return 0;
}

/* Length of "Bearer " / "Basic " at t (with something after it), else 0. */
static size_t auth_scheme(const unsigned char *t, size_t n) {
  if (n < 7 || (t[0] | 0x20) != 'b') return 0;
  if (n > 7 && strncasecmp((const char *)t, "bearer ", 7) == 0) return 7;
  if (n > 6 && strncasecmp((const char *)t, "basic ", 6) == 0) return 6;
  return 0;
}

static size_t value_end(const unsigned char *t, size_t i, size_t n, int quoted) {
  if (quoted) {
    while (i < n && t[i] != '"') i++;
    return i;
  }
  while (i < n && !is_space(t[i]) && t[i] != '&' && t[i] != ',' && t[i] != ';' && t[i] != '"' && t[i] != '\'')
    i++;
  return i;
}

/* Every occurrence of s in v; with truncated, also an ending of v that is the
 * start of s (the rest may have been cut off). */
static void mark_secret(const view *v, const secret *s, int truncated, unsigned char *mask) {
  size_t q = 0, done = 0;
  for (size_t i = 0; i < v->n; i++) {
    if (q == 0) { /* nothing matched yet: skip to the next possible start */
      const unsigned char *start = memchr(v->b + i, s->text[0], v->n - i);
      if (!start) break;
      i = (size_t)(start - v->b);
    }
    while (q > 0 && v->b[i] != s->text[q]) q = s->next[q - 1];
    if (v->b[i] == s->text[q]) q++;
    if (q == s->len) {
      mark(v, mask, &done, i + 1 - s->len, i + 1);
      q = s->next[q - 1];
    }
  }
  if (truncated && q > 0) mark(v, mask, &done, v->n - q, v->n);
}

/* "Bearer X", "Basic X", key=value, key: value, "key": "value". */
static void mark_patterns(const view *v, unsigned char *mask) {
  const unsigned char *t = v->b;
  size_t n = v->n, i = 0, done = 0;
  while (i < n) {
    size_t scheme = (i == 0 || !is_alnum(t[i - 1])) ? auth_scheme(t + i, n - i) : 0;
    if (scheme) {
      size_t start = i + scheme;
      while (start < n && t[start] == ' ') start++;
      size_t end = value_end(t, start, n, 0);
      if (end > start) {
        mark(v, mask, &done, start, end);
        i = end;
        continue;
      }
    }
    if (is_key_char(t[i]) && (i == 0 || !is_key_char(t[i - 1]))) {
      size_t k = i;
      while (k < n && is_key_char(t[k])) k++;
      size_t j = k;
      if (j < n && t[j] == '"') j++; /* closing quote of a JSON key */
      while (j < n && t[j] == ' ') j++;
      if (j < n && (t[j] == '=' || t[j] == ':') && is_secret_key(t + i, k - i)) {
        j++;
        while (j < n && t[j] == ' ') j++;
        int quoted = 0;
        if (j < n && t[j] == '"') {
          quoted = 1;
          j++;
        }
        /* "Authorization: Bearer <credential>": the credential follows the scheme */
        j += auth_scheme(t + j, n - j);
        while (j < n && t[j] == ' ') j++;
        size_t end = value_end(t, j, n, quoted);
        if (end > j) {
          mark(v, mask, &done, j, end);
          i = end;
          continue;
        }
      }
      i = k;
      continue;
    }
    i++;
  }
}

/* Runs every rule on one view (only the secrets with secrets_only). With
 * truncated, an unfinished escape at the end ("%", "%6") is marked and
 * dropped from the view first. */
static void scan_view(view *v, const secret_set *set, int truncated, int secrets_only, unsigned char *mask) {
  if (truncated) {
    size_t drop = 0;
    if (v->n >= 1 && v->b[v->n - 1] == '%') drop = 1;
    else if (v->n >= 2 && v->b[v->n - 2] == '%' && hex_value(v->b[v->n - 1]) >= 0) drop = 2;
    size_t done = 0;
    mark(v, mask, &done, v->n - drop, v->n);
    v->n -= drop;
  }
  for (size_t s = 0; s < set->n; s++) mark_secret(v, &set->items[s], truncated, mask);
  if (!secrets_only) mark_patterns(v, mask);
}

/* Fills mask[0..len) with 1 where text must be replaced (by the secrets alone
 * with secrets_only). Returns 0 or REEL_ENOMEM. */
static int compute_mask(const unsigned char *t, size_t len, int truncated, int secrets_only, unsigned char *mask) {
  memset(mask, 0, len);
  int has_pct = memchr(t, '%', len) != NULL, has_plus = memchr(t, '+', len) != NULL;
  unsigned char *arena = NULL;
  view_store st[3];
  if (has_pct || has_plus) {
    /* the offset arrays first (aligned as malloc returns them), then the bytes */
    arena = malloc(3 * len * (2 * sizeof(uint32_t) + 1) + 1);
    if (!arena) return REEL_ENOMEM;
    uint32_t *offsets = (uint32_t *)arena;
    unsigned char *bytes = arena + 3 * len * 2 * sizeof(uint32_t);
    for (int k = 0; k < 3; k++) {
      st[k].from = offsets + (size_t)k * 2 * len;
      st[k].to = st[k].from + len;
      st[k].b = bytes + (size_t)k * len;
    }
  }
  pthread_rwlock_rdlock(&lock);
  view raw = {t, NULL, NULL, len};
  scan_view(&raw, &current, truncated, secrets_only, mask);
  if (has_pct) {
    /* decode again while escapes remain (double encoding), alternating st[0]/st[1] */
    view src = raw, dst;
    for (int depth = 0; depth < MAX_DECODE_DEPTH; depth++) {
      if (!decode_view(&src, 0, &st[depth & 1], &dst)) break;
      scan_view(&dst, &current, truncated, secrets_only, mask);
      if (!memchr(dst.b, '%', dst.n)) break;
      src = dst;
    }
  }
  if (has_plus) {
    view plus;
    decode_view(&raw, 1, &st[2], &plus);
    scan_view(&plus, &current, truncated, secrets_only, mask);
  }
  pthread_rwlock_unlock(&lock);
  free(arena);
  return 0;
}

/* ------------------------------------------------------------- the output -- */

static int emit(const unsigned char *t, size_t len, const unsigned char *mask, reel_buf *out) {
  size_t i = 0, run = 0;
  int rc = 0;
  while (i < len && rc == 0) {
    if (!mask[i]) {
      i++;
      continue;
    }
    rc = reel_buf_append(out, t + run, i - run);
    if (rc == 0) rc = reel_buf_append(out, REEL_REDACTED, MARKER_LEN);
    while (i < len && mask[i]) i++;
    run = i;
  }
  if (rc == 0) rc = reel_buf_append(out, t + run, len - run);
  return rc;
}

/* What byte i adds to the output: itself, a marker (the first of a marked stretch) or nothing. */
static size_t output_cost(const unsigned char *mask, size_t i) {
  return !mask[i] ? 1 : (i == 0 || !mask[i - 1]) ? MARKER_LEN : 0;
}

/* A mask on the stack for short strings (every access-log field), else on the heap. */
#define STACK_MASK 1024

static int redact_line(const unsigned char *t, size_t len, int truncated, size_t max, reel_buf *out) {
  if (len > MAX_LINE) return REEL_ETOOBIG;
  unsigned char small[STACK_MASK];
  unsigned char *mask = len <= STACK_MASK ? small : malloc(len);
  if (!mask) return REEL_ENOMEM;
  int rc = compute_mask(t, len, truncated, 0, mask);
  if (rc) goto done;
  /* p: the longest prefix whose output fits in max */
  size_t out_len = 0, p = 0;
  while (p < len) {
    size_t cost = output_cost(mask, p);
    if (out_len + cost > max) break;
    out_len += cost;
    p++;
  }
  if (p == len) {
    rc = emit(t, len, mask, out);
    goto done;
  }
  /* Cut at p (not inside a UTF-8 sequence). The secrets are looked for again
   * in t[0..p) as a line that was cut, on top of the whole line's mask (which
   * has every pattern and every whole occurrence): that adds at most one
   * stretch at its end (a possible start of a secret, an unfinished escape).
   * If the marker for it does not fit, the stretch is left out instead;
   * nothing before it can be part of a secret that crosses the cut. */
  for (int k = 0; k < 3 && p > 0 && (t[p] & 0xC0) == 0x80; k++) p--;
  unsigned char small_cut[STACK_MASK];
  unsigned char *cut = p <= STACK_MASK ? small_cut : malloc(p);
  if (!cut) {
    rc = REEL_ENOMEM;
    goto done;
  }
  rc = compute_mask(t, p, 1, 1, cut);
  if (rc == 0) {
    size_t cut_len = 0;
    for (size_t i = 0; i < p; i++) {
      cut[i] |= mask[i];
      cut_len += output_cost(cut, i);
    }
    if (cut_len <= max) {
      rc = emit(t, p, cut, out);
    } else {
      size_t x = p;
      while (x > 0 && cut[x - 1]) x--;
      rc = emit(t, x, cut, out);
    }
  }
  if (cut != small_cut) free(cut);
done:
  if (mask != small) free(mask);
  if (rc == 0 && !out->data) rc = reel_buf_append(out, "", 0);
  return rc;
}

int reel_redact(const char *text, size_t len, reel_buf *out) {
  return redact_line((const unsigned char *)text, len, 0, SIZE_MAX, out);
}

int reel_redact_line(const char *text, size_t len, int truncated, size_t max, reel_buf *out) {
  return redact_line((const unsigned char *)text, len, truncated, max, out);
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
