/* The scene planner of the built-in text-to-video renderer. Everything about a
 * video that follows from the prompt alone (where scenes break, how long each
 * lasts, its colours and camera move) is decided here, in one pure function:
 * the renderer only draws what the plan says, the plan's hash is the render
 * cache key, and the rules are unit-tested and fuzzed without ffmpeg.
 *
 * Decisions the header leaves open:
 *  - Text is walked in "clusters": a code point plus the combining marks,
 *    variation selectors, emoji modifiers and zero-width-joined code points
 *    after it (and regional-indicator pairs), so no cut falls inside a UTF-8
 *    sequence or between an emoji and its modifiers; a mark after whitespace
 *    stands alone, so trimming never drops it. Invalid UTF-8 is REEL_EINVAL.
 *  - Whitespace is the set the jobs API trims (src/api/validate.c), so every
 *    prompt the API accepts has a plan.
 *  - Speech is counted in units of a third of a word: a whitespace-separated
 *    token with a letter or digit is 3 units; a Han or kana character (scripts
 *    written without spaces) is 2, i.e. characters / (words_per_second * 1.5).
 *  - Abbreviations are not special ("Dr. Smith" breaks after "Dr."), but ASCII
 *    . ! ? and … end a sentence only before whitespace or the end, so "3.14"
 *    and "example.com" stay whole; 。！？ always end one. Likewise , ; : end a
 *    clause only before whitespace; — – 、，；： always.
 *  - A piece without letters or digits ("...") joins the scene before it (the
 *    first scene if it leads), so no scene is only punctuation.
 *  - Every pass is linear in the prompt; merging down to max_scenes uses a heap
 *    (O(g log g) for g groups).
 *  - Themes: a word matches a theme when it equals one of the theme's words,
 *    compared in lowercase (ASCII and Latin-1 letters), also without a final
 *    "s"; the digest then only jitters the theme's hue and lightness.
 *  - Palette: HSL gradient from the scene digest; white or near-black text,
 *    whichever contrasts more, and the background is darkened (or lightened)
 *    until the WCAG contrast ratio is at least 4.5 against both colours. */
#include "render/plan.h"

#include <gnutls/crypto.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/utf8.h"
#include "render/lang.h"

#define PLAN_FORMAT_VERSION "reel-plan-v2" /* in the hash: change it whenever a plan for the same inputs would change */
#define UNITS_PER_WORD 3u     /* speech is counted in thirds of a word */
#define UNITS_PER_CJK_CHAR 2u /* a Han/kana character is 2/3 of a word */
#define MAX_SEGMENT_SECONDS 86400.0
#define MIN_FPS 1.0
#define MAX_FPS 1000.0
#define MIN_WORDS_PER_SECOND 0.1
#define MAX_WORDS_PER_SECOND 1000.0
#define SPEECH_PADDING_SECONDS 0.5
#define MIN_CONTRAST 4.5
#define TEXT_WHITE 0xFFFFFFu
#define TEXT_DARK 0x121212u

void reel_plan_options_default(reel_plan_options *o) {
  o->prompt = NULL;
  o->segment_duration_seconds = 5.0;
  o->max_scenes = 12;
  o->base_seed = 0;
  o->fps = 24.0;
  o->words_per_second = 2.6;
  o->min_scene_seconds = 2.0;
}

static const char *const camera_names[] = {
#define REEL_CAMERA_NAME_(name, text) text,
    REEL_CAMERA_MAP(REEL_CAMERA_NAME_)
#undef REEL_CAMERA_NAME_
};

const char *reel_camera_name(reel_camera_move m) {
  return (unsigned)m < REEL_CAMERA_COUNT ? camera_names[m] : "unknown";
}

/* ---- UTF-8 and character classes ---- */


static bool utf8_valid(const unsigned char *s, size_t len) {
  uint32_t cp;
  for (size_t i = 0, n; i < len; i += n)
    if ((n = reel_utf8_decode(s, len, i, &cp)) == 0) return false;
  return true;
}

/* The whitespace the jobs API trims from prompts. */
static bool is_space(uint32_t c) {
  return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000 || c == 0xFEFF;
}

/* Code points that belong to the character before them. */
static bool is_extend(uint32_t c) {
  return (c >= 0x0300 && c <= 0x036F) || (c >= 0x0483 && c <= 0x0489) || (c >= 0x0591 && c <= 0x05BD) ||
         (c >= 0x0610 && c <= 0x061A) || (c >= 0x064B && c <= 0x065F) || (c >= 0x0900 && c <= 0x0903) ||
         (c >= 0x093A && c <= 0x094F) || c == 0x0E31 || (c >= 0x0E34 && c <= 0x0E3A) ||
         (c >= 0x0E47 && c <= 0x0E4E) || (c >= 0x1AB0 && c <= 0x1AFF) || (c >= 0x1DC0 && c <= 0x1DFF) ||
         c == 0x200C || c == 0x200D || (c >= 0x20D0 && c <= 0x20FF) || (c >= 0x302A && c <= 0x302F) ||
         c == 0x3099 || c == 0x309A || (c >= 0xFE00 && c <= 0xFE0F) || (c >= 0xFE20 && c <= 0xFE2F) ||
         (c >= 0x1F3FB && c <= 0x1F3FF) || (c >= 0xE0020 && c <= 0xE007F) || (c >= 0xE0100 && c <= 0xE01EF);
}

static bool is_regional_indicator(uint32_t c) { return c >= 0x1F1E6 && c <= 0x1F1FF; }

/* Han, kana and other characters of scripts written without spaces. */
static bool is_cjk(uint32_t c) {
  return (c >= 0x2E80 && c <= 0x2FDF) || (c >= 0x3005 && c <= 0x3007) || (c >= 0x3021 && c <= 0x3029) ||
         (c >= 0x3040 && c <= 0x30FF && c != 0x30A0 && c != 0x30FB) || (c >= 0x31F0 && c <= 0x31FF) ||
         (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) ||
         (c >= 0xFF66 && c <= 0xFF9F) || (c >= 0x20000 && c <= 0x3FFFF);
}

/* Letters and digits, approximately: ASCII alphanumerics and every code point
 * outside the punctuation, symbol, emoji and mark blocks. */
static bool is_wordlike(uint32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
  if (c <= 0xBF) return c == 0xAA || c == 0xB2 || c == 0xB3 || c == 0xB5 || c == 0xB9 || c == 0xBA;
  if (c == 0xD7 || c == 0xF7 || is_space(c) || is_extend(c)) return false;
  if (c >= 0x2000 && c <= 0x2BFF) return false; /* general punctuation ... misc symbols and arrows */
  if (c >= 0x2E00 && c <= 0x2E7F) return false;
  if (c >= 0x3000 && c <= 0x303F) return is_cjk(c);
  if (c == 0x30A0 || c == 0x30FB) return false;
  if ((c >= 0xFE10 && c <= 0xFE6F) || (c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
      (c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65) || (c >= 0xFFF0 && c <= 0xFFFF))
    return false;
  if ((c >= 0x1F000 && c <= 0x1FAFF) || (c >= 0xE0000 && c <= 0xE0FFF)) return false;
  return true;
}

static bool is_cjk_terminator(uint32_t c) { return c == 0x3002 || c == 0xFF01 || c == 0xFF1F || c == 0xFF61; }

static bool is_terminator(uint32_t c) {
  return c == '.' || c == '!' || c == '?' || c == 0x2026 || c == 0x203C || (c >= 0x2047 && c <= 0x2049) ||
         is_cjk_terminator(c);
}

static bool is_closer(uint32_t c) {
  switch (c) {
  case '"': case '\'': case ')': case ']': case '}': case 0xBB: case 0x2019: case 0x201D: case 0x203A:
  case 0x3009: case 0x300B: case 0x300D: case 0x300F: case 0x3011: case 0x3015: case 0x3017: case 0x3019:
  case 0x301B: case 0xFF02: case 0xFF07: case 0xFF09: case 0xFF3D: case 0xFF5D: case 0xFF63:
    return true;
  default:
    return false;
  }
}

static bool is_opener(uint32_t c) {
  switch (c) {
  case '(': case '[': case '{': case 0xAB: case 0xA1: case 0xBF: case 0x2018: case 0x201A: case 0x201C: case 0x201E:
  case 0x2039: case 0x3008: case 0x300A: case 0x300C: case 0x300E: case 0x3010: case 0xFF08:
    return true;
  default:
    return false;
  }
}

/* 0: not a clause mark; 1: ends a clause only before whitespace (, ; :); 2: always. */
static int clause_mark(uint32_t c) {
  if (c == ',' || c == ';' || c == ':') return 1;
  if (c == 0x2013 || c == 0x2014 || c == 0x3001 || c == 0xFF0C || c == 0xFF1A || c == 0xFF1B || c == 0xFF64)
    return 2;
  return 0;
}

/* ---- clusters, atoms and the planner ---- */

typedef struct {
  uint32_t cp;  /* the first code point */
  size_t end;   /* offset just past the cluster */
} cluster;

typedef struct {
  size_t start, end; /* byte range in the prompt, at cluster boundaries */
  uint32_t units;    /* estimated speech in thirds of a word */
} span;

typedef struct {
  uint32_t start, end, units;
  int32_t prev, next, heap_pos; /* used while merging down to max_scenes */
} group;

typedef struct {
  const unsigned char *s;
  size_t len;
  uint32_t cap; /* speech units that fit segment_duration_seconds */
  group *groups;
  size_t n_groups, cap_groups;
  size_t pending_start; /* start of leading text without letters, or SIZE_MAX */
  bool new_group;       /* the next piece with words starts a group (a long sentence's first piece) */
  bool oom;
} planner;

/* The cluster starting at i < len (the text is valid UTF-8). */
static cluster cluster_at(const planner *p, size_t i) {
  cluster c;
  uint32_t next;
  size_t j = i + reel_utf8_decode(p->s, p->len, i, &c.cp);
  bool joined = false, pair = is_regional_indicator(c.cp);
  while (j < p->len && !is_space(c.cp)) { /* whitespace is always trimmable: a mark after it stands alone */
    size_t n = reel_utf8_decode(p->s, p->len, j, &next);
    if (!is_extend(next) && !(joined && !is_space(next)) && !(pair && is_regional_indicator(next))) break;
    pair = false;
    joined = next == 0x200D;
    j += n;
  }
  c.end = j;
  return c;
}

static bool is_blank(cluster c) { return is_space(c.cp); }

/* The next atom in [*pos, end): a whitespace-separated token (3 units if it has
 * a letter or digit, else 0), or one Han/kana character with the punctuation
 * written against it (2 units). Returns false when only whitespace is left. */
static bool next_atom(const planner *p, size_t *pos, size_t end, span *a) {
  size_t i = *pos;
  cluster c = {0, 0};
  while (i < end && is_blank(c = cluster_at(p, i))) i = c.end;
  if (i >= end) {
    *pos = end;
    return false;
  }
  a->start = i;
  bool word = false;
  for (; i < end; i = c.end) {
    c = cluster_at(p, i);
    if (is_blank(c) || is_cjk(c.cp)) break;
    word = word || is_wordlike(c.cp);
  }
  if (word) {
    a->units = UNITS_PER_WORD;
  } else if (i < end && is_cjk(c.cp)) {
    a->units = UNITS_PER_CJK_CHAR;
    for (i = c.end; i < end; i = c.end) {
      c = cluster_at(p, i);
      if (is_blank(c) || is_cjk(c.cp) || is_wordlike(c.cp)) break;
    }
  } else {
    a->units = 0;
  }
  a->end = *pos = i;
  return true;
}

static uint32_t count_units(const planner *p, size_t start, size_t end) {
  uint32_t units = 0;
  span a;
  while (next_atom(p, &start, end, &a)) units += a.units;
  return units;
}

/* [start, end) without leading and trailing whitespace (empty: start == end). */
static span trim(const planner *p, size_t start, size_t end) {
  cluster c;
  while (start < end && is_blank(c = cluster_at(p, start))) start = c.end;
  size_t last = start;
  for (size_t i = start; i < end; i = c.end) {
    c = cluster_at(p, i);
    if (!is_blank(c)) last = c.end;
  }
  return (span){start, last, 0};
}

static bool group_push(planner *p, size_t start, size_t end, uint32_t units) {
  if (p->n_groups == p->cap_groups) {
    size_t cap = p->cap_groups ? p->cap_groups * 2 : 16;
    group *g = realloc(p->groups, cap * sizeof *g);
    if (!g) return p->oom = true, false;
    p->groups = g;
    p->cap_groups = cap;
  }
  p->groups[p->n_groups++] = (group){(uint32_t)start, (uint32_t)end, units, -1, -1, -1};
  return true;
}

/* Adds a piece: to the open group while the speech fits, else as a new group. */
static void emit_piece(planner *p, size_t start, size_t end, uint32_t units) {
  span t = trim(p, start, end);
  if (t.start == t.end || p->oom) return;
  group *last = p->n_groups ? &p->groups[p->n_groups - 1] : NULL;
  if (units > 0 && p->new_group) {
    p->new_group = false;
    last = NULL; /* a sentence cut into pieces never shares a scene with the sentence before it */
  }
  if (last && (units == 0 || (uint64_t)last->units + units <= p->cap)) {
    last->end = (uint32_t)t.end;
    last->units += units;
  } else if (units == 0) {
    if (p->pending_start == SIZE_MAX) p->pending_start = t.start;
  } else {
    if (group_push(p, p->pending_start != SIZE_MAX ? p->pending_start : t.start, t.end, units))
      p->pending_start = SIZE_MAX;
  }
}

/* Cuts a clause that is still too long at atom boundaries, greedily. */
static void split_words(planner *p, size_t start, size_t end) {
  uint32_t units = count_units(p, start, end);
  if (units <= p->cap) {
    emit_piece(p, start, end, units);
    return;
  }
  span a;
  size_t pos = start, chunk_start = start, chunk_end = start;
  uint32_t acc = 0, biggest = 1;
  bool open = false;
  /* as many chunks as the cap needs, of about equal speech: a whole number of
   * the clause's largest atoms each, so no chunk is a lone leftover */
  while (next_atom(p, &pos, end, &a)) biggest = a.units > biggest ? a.units : biggest;
  uint32_t chunks = p->cap ? (units + p->cap - 1) / p->cap : units, limit;
  if (chunks == 0) chunks = 1;
  limit = (units + chunks - 1) / chunks;
  limit = (limit + biggest - 1) / biggest * biggest;
  if (limit > p->cap) limit = p->cap;
  pos = start;
  size_t held = SIZE_MAX, end_before_held = start; /* opening marks go with the next word (« “ ( ¿) */
  while (next_atom(p, &pos, end, &a)) {
    if (a.units == 0 && open && is_opener(cluster_at(p, a.start).cp)) {
      if (held == SIZE_MAX) held = a.start, end_before_held = chunk_end;
      chunk_end = a.end;
      continue;
    }
    if (open && a.units > 0 && acc > 0 && (uint64_t)acc + a.units > limit) {
      bool hold = held != SIZE_MAX;
      emit_piece(p, chunk_start, hold ? end_before_held : chunk_end, acc);
      open = hold;
      if (hold) chunk_start = held, acc = 0;
    }
    if (a.units > 0) held = SIZE_MAX;
    if (!open) chunk_start = a.start, acc = 0, open = true;
    acc += a.units;
    chunk_end = a.end;
  }
  if (open) emit_piece(p, chunk_start, chunk_end, acc);
}

/* A sentence or clause that ends at j keeps closing marks set off by a space
 * ("… nuit. »", "Viens ! »"): when whitespace and then only closing quotes,
 * brackets or terminators follow up to whitespace or end, returns the offset
 * after them; else j. So no piece starts with a closing mark. */
static size_t absorb_closers(const planner *p, size_t j, size_t end) {
  size_t k = j;
  cluster c;
  while (k < end && is_blank(c = cluster_at(p, k))) k = c.end;
  if (k == j || k >= end) return j;
  size_t m = k;
  bool closer = false;
  while (m < end) {
    c = cluster_at(p, m);
    if (is_closer(c.cp)) closer = true;
    else if (!is_terminator(c.cp)) break;
    m = c.end;
  }
  return closer && (m == end || is_blank(cluster_at(p, m))) ? m : j;
}

/* Cuts a sentence that is too long after clause marks; its first piece starts a scene. */
static void split_clauses(planner *p, size_t start, size_t end) {
  uint32_t units = count_units(p, start, end);
  if (units <= p->cap) {
    emit_piece(p, start, end, units);
    return;
  }
  p->new_group = true;
  size_t pos = start;
  while (pos < end) {
    size_t i = pos, clause_end = end;
    while (i < end) {
      cluster c = cluster_at(p, i);
      int kind = clause_mark(c.cp);
      if (!kind) {
        i = c.end;
        continue;
      }
      size_t j = c.end;
      for (cluster d; j < end && (clause_mark((d = cluster_at(p, j)).cp) || is_closer(d.cp));) j = d.end;
      if (kind == 2 || j == end || is_blank(cluster_at(p, j))) {
        clause_end = absorb_closers(p, j, end);
        break;
      }
      i = j;
    }
    split_words(p, pos, clause_end);
    pos = clause_end;
  }
}

static void split_sentences(planner *p) {
  size_t pos = 0;
  while (pos < p->len && !p->oom) {
    size_t i = pos, sentence_end = p->len;
    while (i < p->len) {
      cluster c = cluster_at(p, i);
      if (!is_terminator(c.cp)) {
        i = c.end;
        continue;
      }
      bool always = is_cjk_terminator(c.cp);
      size_t j = c.end;
      while (j < p->len) {
        cluster d = cluster_at(p, j);
        if (is_terminator(d.cp))
          always = always || is_cjk_terminator(d.cp);
        else if (!is_closer(d.cp))
          break;
        j = d.end;
      }
      if (always || j == p->len || is_blank(cluster_at(p, j))) {
        sentence_end = absorb_closers(p, j, p->len);
        break;
      }
      i = j;
    }
    bool cut = count_units(p, pos, sentence_end) > p->cap;
    split_clauses(p, pos, sentence_end);
    if (cut) p->new_group = true; /* nor with the sentence after it */
    pos = sentence_end;
  }
}

/* ---- merging neighbours down to max_scenes: a min-heap of left groups keyed
 * by the pair's speech, ties to the leftmost pair ---- */

typedef struct {
  group *g;
  int32_t *heap;
  int32_t n;
} pair_heap;

static bool pair_less(const group *g, int32_t a, int32_t b) {
  uint64_t ka = (uint64_t)g[a].units + g[g[a].next].units, kb = (uint64_t)g[b].units + g[g[b].next].units;
  return ka != kb ? ka < kb : a < b;
}

static void heap_set(pair_heap *h, int32_t at, int32_t node) {
  h->heap[at] = node;
  h->g[node].heap_pos = at;
}

static void heap_sift(pair_heap *h, int32_t at) {
  int32_t node = h->heap[at];
  while (at > 0 && pair_less(h->g, node, h->heap[(at - 1) / 2])) {
    heap_set(h, at, h->heap[(at - 1) / 2]);
    at = (at - 1) / 2;
  }
  for (;;) {
    int32_t child = 2 * at + 1;
    if (child >= h->n) break;
    if (child + 1 < h->n && pair_less(h->g, h->heap[child + 1], h->heap[child])) child++;
    if (!pair_less(h->g, h->heap[child], node)) break;
    heap_set(h, at, h->heap[child]);
    at = child;
  }
  heap_set(h, at, node);
}

static void heap_remove(pair_heap *h, int32_t node) {
  int32_t at = h->g[node].heap_pos;
  h->g[node].heap_pos = -1;
  if (--h->n == at) return;
  heap_set(h, at, h->heap[h->n]);
  heap_sift(h, at);
}

static void heap_push(pair_heap *h, int32_t node) {
  heap_set(h, h->n++, node);
  heap_sift(h, h->n - 1);
}

static bool merge_down(planner *p, size_t target) {
  group *g = p->groups;
  int32_t n = (int32_t)p->n_groups;
  pair_heap h = {g, malloc((size_t)n * sizeof(int32_t)), 0};
  if (!h.heap) return false;
  for (int32_t i = 0; i < n; i++) g[i].prev = i - 1, g[i].next = i + 1 < n ? i + 1 : -1, g[i].heap_pos = -1;
  for (int32_t i = 0; i + 1 < n; i++) heap_push(&h, i);
  for (size_t remaining = (size_t)n; remaining > target; remaining--) {
    int32_t left = h.heap[0], right = g[left].next;
    heap_remove(&h, left);
    if (g[right].heap_pos >= 0) heap_remove(&h, right);
    g[left].end = g[right].end;
    g[left].units += g[right].units;
    g[left].next = g[right].next;
    if (g[left].next >= 0) {
      g[g[left].next].prev = left;
      heap_push(&h, left);
    }
    if (g[left].prev >= 0) heap_sift(&h, g[g[left].prev].heap_pos);
  }
  free(h.heap);
  size_t k = 0; /* group 0 is never absorbed: it is always a left */
  for (int32_t i = 0; i >= 0; i = g[i].next) g[k++] = g[i];
  p->n_groups = k;
  return true;
}

/* ---- timing, palette, hash ---- */

/* A duration rounded up to whole frames; a product within rounding error of a
 * whole frame stays on it, so a duration that already is whole frames is kept. */
static double whole_frames(double seconds, double fps) {
  double x = seconds * fps;
  double frames = ceil(x - (1e-7 + x * 1e-14));
  return frames < 1 ? 1 : frames;
}

static void recompute_starts(reel_plan *p) {
  double t = 0;
  for (int i = 0; i < p->n_scenes; i++) {
    p->scenes[i].start = t;
    t += p->scenes[i].duration;
  }
  p->total_duration = t;
}

static double channel_linear(uint32_t v) {
  double c = v / 255.0;
  return c <= 0.03928 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
}

static double luminance(uint32_t rgb) {
  return 0.2126 * channel_linear(rgb >> 16 & 0xFF) + 0.7152 * channel_linear(rgb >> 8 & 0xFF) +
         0.0722 * channel_linear(rgb & 0xFF);
}

/* WCAG 2 contrast ratio, 1 to 21. */
static double contrast(uint32_t a, uint32_t b) {
  double la = luminance(a), lb = luminance(b);
  return la > lb ? (la + 0.05) / (lb + 0.05) : (lb + 0.05) / (la + 0.05);
}

static uint32_t hsl_to_rgb(double h, double s, double l) {
  double c = (1 - fabs(2 * l - 1)) * s, hp = h / 60.0, x = c * (1 - fabs(fmod(hp, 2.0) - 1)), m = l - c / 2;
  double rgb[3][6] = {{c, x, 0, 0, x, c}, {x, c, c, x, 0, 0}, {0, 0, x, c, c, x}};
  int sector = (int)hp % 6;
  uint32_t out = 0;
  for (int k = 0; k < 3; k++) {
    long v = lround((rgb[k][sector] + m) * 255);
    out = out << 8 | (uint32_t)(v < 0 ? 0 : v > 255 ? 255 : v);
  }
  return out;
}

/* ---- themes: words of a scene that choose its palette and motion ---- */

typedef struct {
  const char *name;
  const char *words;      /* lowercase, each between spaces */
  double hue, hue_range;  /* degrees: the first colour's hue is hue + [0, hue_range) */
  double hue_shift;       /* the second colour's hue, relative to the first */
  double saturation;      /* 0..1 */
  double lightness;       /* 0..1, the first colour; < 0.5 means white text */
  reel_camera_move camera;
} theme;

static const theme themes[] = {
    {"dawn", " dawn sunrise daybreak morning aube aurore matin amanecer alba madrugada amanhecer sonnenaufgang"
             " morgen morgengrauen ", 18, 22, 28, 0.75, 0.80, REEL_CAMERA_PAN_UP},
    {"sunset", " sunset dusk evening twilight sundown crépuscule soir coucher atardecer ocaso tramonto"
               " crepuscolo entardecer abend sonnenuntergang dämmerung ", 345, 30, 35, 0.70, 0.34, REEL_CAMERA_PAN_DOWN},
    {"night", " night midnight nighttime star stars moon moonlight dark darkness nuit minuit étoile étoiles lune"
              " noche medianoche estrella estrellas luna notte stelle noite estrela estrelas lua nacht mond sterne ",
     218, 22, 18, 0.55, 0.09, REEL_CAMERA_DRIFT},
    {"sea", " sea ocean oceans wave waves beach shore coast tide harbor harbour surf mer océan vague vagues plage"
            " côte mar océano ola olas playa costa mare onda onde spiaggia oceano praia meer ozean welle wellen"
            " strand küste ", 188, 18, -22, 0.70, 0.30, REEL_CAMERA_PAN_RIGHT},
    {"forest", " forest forests wood woods tree trees jungle leaf leaves moss forêt bois arbre arbres bosque selva"
               " árbol árboles foresta bosco albero alberi floresta árvore árvores wald bäume baum ", 105, 35, 25,
     0.55, 0.22, REEL_CAMERA_PAN_LEFT},
    {"fire", " fire fires flame flames blaze burning ember embers lava volcano feu flamme flammes incendie fuego"
             " llama llamas fuoco fiamma fiamme fogo chama chamas feuer flamme flammen ", 4, 26, 30, 0.88, 0.30,
     REEL_CAMERA_PAN_UP},
    {"city", " city cities street streets skyline downtown neon traffic skyscraper ville rue rues ciudad calle"
             " calles città strada cidade rua stadt straße ", 262, 34, 50, 0.60, 0.18, REEL_CAMERA_PAN_LEFT},
    {"snow", " snow snowy snowfall winter ice icy frost frozen blizzard neige hiver glace gel nieve invierno"
             " hielo neve inverno ghiaccio gelo schnee eis frost ", 196, 16, 18, 0.35, 0.86, REEL_CAMERA_PAN_DOWN},
    {"desert", " desert deserts dune dunes sand sahara désert dune sable desierto duna dunas arena deserto sabbia"
               " areia wüste düne sand ", 32, 14, 14, 0.65, 0.72, REEL_CAMERA_PAN_RIGHT},
    {"storm", " storm storms thunder thunderstorm lightning rain rainy tempest hurricane orage tempête pluie"
              " tormenta tempestad lluvia tempesta pioggia temporale tempestade chuva sturm gewitter regen ", 208, 20,
     16, 0.22, 0.20, REEL_CAMERA_DRIFT},
    {"mountain", " mountain mountains peak peaks summit cliff cliffs alps montagne sommet montaña montañas cumbre"
                 " montagna montagne vetta montanha berg berge gipfel ", 150, 40, 40, 0.30, 0.30, REEL_CAMERA_PAN_UP},
    {"space", " space galaxy galaxies planet planets rocket rockets cosmos universe orbit astronaut espace galaxie"
              " planète fusée espacio galaxia planeta cohete spazio galassia pianeta razzo espaço foguete weltall"
              " weltraum rakete ", 248, 30, 40, 0.55, 0.07, REEL_CAMERA_DRIFT},
};
#define THEME_COUNT (sizeof themes / sizeof themes[0])

const char *const reel_plan_theme_names[] = {
    "dawn", "sunset", "night", "sea", "forest", "fire", "city", "snow", "desert", "storm", "mountain", "space", NULL,
};


/* The theme a word (lowercase UTF-8, " word " form in key) belongs to, or -1. */
static int theme_of_word(char *key, size_t n) {
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) { /* plural: "waves" -> "wave" */
      if (n < 4 || key[n] != 's') return -1;
      key[n] = ' ', key[n + 1] = '\0', n--;
    }
    for (size_t t = 0; t < THEME_COUNT; t++)
      if (strstr(themes[t].words, key)) return (int)t;
  }
  return -1;
}

/* The theme with most words in text (ties to the one named first), or -1. */
static int scene_theme(const char *text) {
  const unsigned char *s = (const unsigned char *)text;
  size_t len = strlen(text);
  int hits[THEME_COUNT] = {0}, best = -1;
  size_t first[THEME_COUNT];
  char key[40];
  size_t n = 0; /* bytes of the current word after key[0] == ' ' */
  bool too_long = false;
  for (size_t i = 0; i <= len;) {
    uint32_t c = 0;
    size_t k = i < len ? reel_utf8_decode(s, len, i, &c) : 1;
    if (k == 0) k = 1, c = ' ';
    bool letter = i < len && is_wordlike(c) && !is_cjk(c) && !(c >= '0' && c <= '9');
    if (letter) {
      char buf[4];
      size_t m = reel_utf8_encode(reel_utf8_lower_latin1(c), buf);
      if (1 + n + m + 2 < sizeof key) memcpy(key + 1 + n, buf, m), n += m;
      else too_long = true;
    } else if (n > 0) {
      if (!too_long) {
        key[0] = ' ', key[n + 1] = ' ', key[n + 2] = '\0';
        int t = theme_of_word(key, n);
        if (t >= 0 && hits[t]++ == 0) first[t] = i; /* where the word ends: order is all that matters */
      }
      n = 0, too_long = false;
    }
    i += k;
  }
  for (size_t t = 0; t < THEME_COUNT; t++)
    if (hits[t] && (best < 0 || hits[t] > hits[best] || (hits[t] == hits[best] && first[t] < first[best])))
      best = (int)t;
  return best;
}

/* Background gradient, text colour and camera: from the theme (th >= 0) jittered
 * by the scene's digest, or from the digest alone. */
static void style_scene(const unsigned char d[32], int th, reel_scene *sc) {
  double h1 = ((d[0] << 8) | d[1]) % 360;
  double h2 = fmod(h1 + (d[2] & 1 ? 1 : -1) * (24 + d[3] % 48) + 360, 360);
  double s1 = 0.45 + 0.35 * d[4] / 255.0, s2 = 0.45 + 0.35 * d[5] / 255.0;
  bool dark = d[6] < 170; /* two scenes in three are dark with white text */
  double spread = 0.04 + 0.10 * d[8] / 255.0;
  double l1 = dark ? 0.12 + 0.16 * d[7] / 255.0 : 0.74 + 0.12 * d[7] / 255.0;
  double l2 = dark ? l1 + spread : l1 - spread;
  reel_camera_move camera = (reel_camera_move)(d[9] % REEL_CAMERA_COUNT);
  sc->theme = NULL;
  if (th >= 0) {
    const theme *t = &themes[th];
    h1 = fmod(t->hue + t->hue_range * d[1] / 256.0, 360);
    h2 = fmod(h1 + t->hue_shift + 360, 360);
    s1 = fmin(1, t->saturation * (0.9 + 0.2 * d[4] / 255.0));
    s2 = fmin(1, t->saturation * (0.9 + 0.2 * d[5] / 255.0));
    dark = t->lightness < 0.5;
    l1 = fmin(1, fmax(0, t->lightness + 0.06 * (d[7] / 255.0 - 0.5)));
    l2 = dark ? l1 + 0.05 + 0.07 * d[8] / 255.0 : l1 - 0.05 - 0.07 * d[8] / 255.0;
    camera = t->camera;
    sc->theme = t->name;
  }
  for (int step = 0; step < 64; step++) {
    uint32_t bg0 = hsl_to_rgb(h1, s1, l1), bg1 = hsl_to_rgb(h2, s2, l2);
    double white = fmin(contrast(TEXT_WHITE, bg0), contrast(TEXT_WHITE, bg1));
    double black = fmin(contrast(TEXT_DARK, bg0), contrast(TEXT_DARK, bg1));
    if (white >= MIN_CONTRAST || black >= MIN_CONTRAST) {
      sc->background[0] = bg0;
      sc->background[1] = bg1;
      sc->text_color = white >= black ? TEXT_WHITE : TEXT_DARK;
      sc->camera = camera;
      return;
    }
    /* move both colours away from the text colour the scheme wants */
    l1 = dark ? fmax(0, l1 - 0.03) : fmin(1, l1 + 0.03);
    l2 = dark ? fmax(0, l2 - 0.03) : fmin(1, l2 + 0.03);
  }
  sc->background[0] = sc->background[1] = 0; /* not reached: black and white contrast 21:1 */
  sc->text_color = TEXT_WHITE;
  sc->camera = camera;
}

static void hex_digest(const unsigned char d[32], char out[65]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) out[2 * i] = hex[d[i] >> 4], out[2 * i + 1] = hex[d[i] & 15];
  out[64] = '\0';
}

/* SHA-256 of the format version and every input; the prompt goes last, after its length. */
static int plan_hash(const reel_plan_options *o, size_t prompt_len, char out[65]) {
  char head[512];
  int n = snprintf(head, sizeof head,
                   PLAN_FORMAT_VERSION "\nsegment_duration_seconds=%.17g\nmax_scenes=%d\nbase_seed=%llu\nfps=%.17g\n"
                                       "words_per_second=%.17g\nmin_scene_seconds=%.17g\nprompt_bytes=%zu\n",
                   o->segment_duration_seconds, o->max_scenes, (unsigned long long)o->base_seed, o->fps,
                   o->words_per_second, o->min_scene_seconds, prompt_len);
  if (n < 0 || (size_t)n >= sizeof head) return REEL_EINVAL;
  unsigned char *buf = malloc((size_t)n + prompt_len);
  if (!buf) return REEL_ENOMEM;
  memcpy(buf, head, (size_t)n);
  memcpy(buf + n, o->prompt, prompt_len);
  unsigned char d[32];
  int rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, (size_t)n + prompt_len, d);
  free(buf);
  if (rc != 0) return REEL_ENOMEM; /* hashing in memory only fails to allocate */
  hex_digest(d, out);
  return 0;
}

/* ---- building ---- */

static bool options_valid(const reel_plan_options *o) {
  return o->prompt && o->segment_duration_seconds > 0 && o->segment_duration_seconds <= MAX_SEGMENT_SECONDS &&
         o->max_scenes >= 1 && o->fps >= MIN_FPS && o->fps <= MAX_FPS && o->words_per_second >= MIN_WORDS_PER_SECOND &&
         o->words_per_second <= MAX_WORDS_PER_SECOND && o->min_scene_seconds >= 0 &&
         o->min_scene_seconds <= MAX_SEGMENT_SECONDS;
}

/* Fills out's scenes from the planner's groups: text, timing, palette, camera. */
static int make_scenes(const planner *p, const reel_plan_options *o, reel_plan *out) {
  out->scenes = calloc(p->n_groups, sizeof *out->scenes);
  size_t longest = 0;
  for (size_t i = 0; i < p->n_groups; i++)
    if (p->groups[i].end - p->groups[i].start > longest) longest = p->groups[i].end - p->groups[i].start;
  unsigned char *seeded = malloc(12 + longest); /* base_seed (8 bytes) + index (4) + text, big-endian */
  if (!out->scenes || !seeded) {
    free(seeded);
    return REEL_ENOMEM;
  }
  out->fps = o->fps;
  for (size_t i = 0; i < p->n_groups; i++) {
    const group *g = &p->groups[i];
    size_t n = g->end - g->start;
    reel_scene *sc = &out->scenes[i];
    if (!(sc->text = malloc(n + 1))) {
      free(seeded);
      return REEL_ENOMEM;
    }
    out->n_scenes = (int)i + 1;
    memcpy(sc->text, p->s + g->start, n);
    sc->text[n] = '\0';
    double speech = g->units / (UNITS_PER_WORD * o->words_per_second) + SPEECH_PADDING_SECONDS;
    double seconds = fmax(o->segment_duration_seconds, fmax(speech, o->min_scene_seconds));
    sc->duration = whole_frames(seconds, o->fps) / o->fps;
    for (int k = 0; k < 8; k++) seeded[k] = (unsigned char)(o->base_seed >> (56 - 8 * k));
    for (int k = 0; k < 4; k++) seeded[8 + k] = (unsigned char)((uint32_t)i >> (24 - 8 * k));
    memcpy(seeded + 12, sc->text, n);
    unsigned char d[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, seeded, 12 + n, d) != 0) {
      free(seeded);
      return REEL_ENOMEM;
    }
    style_scene(d, scene_theme(sc->text), sc);
  }
  free(seeded);
  const char *lang = reel_lang_detect(o->prompt);
  snprintf(out->language, sizeof out->language, "%s", lang);
  snprintf(out->voice, sizeof out->voice, "%s", reel_lang_voice(lang));
  recompute_starts(out);
  return 0;
}

int reel_plan_build(const reel_plan_options *o, reel_plan *out) {
  if (!out) return REEL_EINVAL;
  memset(out, 0, sizeof *out);
  if (!o || !options_valid(o)) return REEL_EINVAL;
  size_t len = strlen(o->prompt);
  if (len > REEL_PLAN_MAX_PROMPT_BYTES || !utf8_valid((const unsigned char *)o->prompt, len)) return REEL_EINVAL;
  planner p = {(const unsigned char *)o->prompt, len, 0, NULL, 0, 0, SIZE_MAX, false, false};
  double cap = floor(UNITS_PER_WORD * o->words_per_second * o->segment_duration_seconds + 1e-9);
  p.cap = (uint32_t)cap; /* at most 3 * 1000 * 86400 */

  bool any_text = false, any_word = false;
  for (size_t i = 0; i < len && !any_word;) {
    cluster c = cluster_at(&p, i);
    any_text = any_text || !is_blank(c);
    any_word = any_word || is_wordlike(c.cp);
    i = c.end;
  }
  if (!any_text) return REEL_EINVAL;
  if (any_word) {
    split_sentences(&p);
  } else { /* only symbols: one scene, the text as is */
    span t = trim(&p, 0, len);
    group_push(&p, t.start, t.end, 0);
  }
  int rc = p.oom ? REEL_ENOMEM : p.n_groups == 0 ? REEL_EINVAL : 0; /* no groups: not reached, there is a word */
  if (rc) goto done;
  if (p.n_groups > (size_t)o->max_scenes && !merge_down(&p, (size_t)o->max_scenes)) {
    rc = REEL_ENOMEM;
    goto done;
  }
  if ((rc = make_scenes(&p, o, out)) == 0) rc = plan_hash(o, len, out->hash);
done:
  free(p.groups);
  if (rc) reel_plan_free(out);
  return rc;
}

void reel_plan_stretch_scene(reel_plan *p, int i, double seconds) {
  if (!p || i < 0 || i >= p->n_scenes || !(seconds > 0) || !(p->fps > 0)) return;
  if (seconds > REEL_PLAN_MAX_SCENE_SECONDS) seconds = REEL_PLAN_MAX_SCENE_SECONDS;
  double frames = whole_frames(seconds, p->fps);
  if (frames > round(p->scenes[i].duration * p->fps)) p->scenes[i].duration = frames / p->fps;
  recompute_starts(p);
}

void reel_plan_free(reel_plan *p) {
  if (!p) return;
  for (int i = 0; i < p->n_scenes; i++) free(p->scenes[i].text);
  free(p->scenes);
  memset(p, 0, sizeof *p);
}

/* ---- plan.json ---- */

static json_t *color_json(uint32_t rgb) {
  char s[8];
  snprintf(s, sizeof s, "#%06x", (unsigned)(rgb & 0xFFFFFF));
  return json_string(s);
}

json_t *reel_plan_to_json(const reel_plan *p) {
  if (!p || p->n_scenes < 0 || (p->n_scenes > 0 && !p->scenes)) return NULL;
  json_t *root = json_object(), *scenes = json_array();
  int bad = !root || !scenes || json_object_set_new(root, "hash", json_string(p->hash)) ||
            json_object_set_new(root, "fps", json_real(p->fps)) ||
            json_object_set_new(root, "total_duration", json_real(p->total_duration));
  for (int i = 0; i < p->n_scenes && !bad; i++) {
    const reel_scene *sc = &p->scenes[i];
    json_t *s = json_object(), *bg = json_array();
    bad = !s || !bg || json_array_append_new(bg, color_json(sc->background[0])) ||
          json_array_append_new(bg, color_json(sc->background[1])) ||
          json_object_set_new(s, "index", json_integer(i)) || json_object_set_new(s, "text", json_string(sc->text)) ||
          json_object_set_new(s, "start", json_real(sc->start)) ||
          json_object_set_new(s, "duration", json_real(sc->duration)) || json_object_set(s, "background", bg) ||
          json_object_set_new(s, "text_color", color_json(sc->text_color)) ||
          json_object_set_new(s, "camera", json_string(reel_camera_name(sc->camera))) ||
          (sc->theme && json_object_set_new(s, "theme", json_string(sc->theme))) || json_array_append(scenes, s);
    json_decref(bg);
    json_decref(s);
  }
  if (!bad)
    bad = json_object_set(root, "scenes", scenes) || json_object_set_new(root, "language", json_string(p->language)) ||
          json_object_set_new(root, "voice", json_string(p->voice));
  json_decref(scenes);
  if (bad) {
    json_decref(root);
    return NULL;
  }
  return root;
}

/* "#rrggbb" (either case) to 0xRRGGBB; false if malformed. */
static bool parse_color(const json_t *j, uint32_t *out) {
  const char *s = json_string_value(j);
  if (!s || json_string_length(j) != 7 || s[0] != '#') return false;
  uint32_t v = 0;
  for (int i = 1; i < 7; i++) {
    char c = s[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return false;
    v = v << 4 | (uint32_t)d;
  }
  *out = v;
  return true;
}

static bool parse_scene(const json_t *j, int index, double fps, reel_scene *sc) {
  const json_t *text = json_object_get(j, "text"), *start = json_object_get(j, "start"),
               *duration = json_object_get(j, "duration"), *bg = json_object_get(j, "background"),
               *idx = json_object_get(j, "index");
  const char *camera = json_string_value(json_object_get(j, "camera"));
  if (!json_is_object(j) || !json_is_integer(idx) || json_integer_value(idx) != index || !json_is_string(text) ||
      !json_is_number(start) || !json_is_number(duration) || !json_is_array(bg) || json_array_size(bg) != 2 || !camera)
    return false;
  size_t n = json_string_length(text);
  const char *s = json_string_value(text);
  double d = json_number_value(duration);
  if (n == 0 || strlen(s) != n || !utf8_valid((const unsigned char *)s, n) || !(d > 0) ||
      d > REEL_PLAN_MAX_SCENE_SECONDS || !parse_color(json_array_get(bg, 0), &sc->background[0]) ||
      !parse_color(json_array_get(bg, 1), &sc->background[1]) ||
      !parse_color(json_object_get(j, "text_color"), &sc->text_color))
    return false;
  int cam = 0;
  while (cam < REEL_CAMERA_COUNT && strcmp(camera_names[cam], camera) != 0) cam++;
  if (cam == REEL_CAMERA_COUNT) return false;
  sc->camera = (reel_camera_move)cam;
  const json_t *th = json_object_get(j, "theme");
  sc->theme = NULL;
  if (th && !json_is_null(th)) {
    const char *name = json_string_value(th);
    for (size_t t = 0; name && t < THEME_COUNT && !sc->theme; t++)
      if (strcmp(themes[t].name, name) == 0) sc->theme = themes[t].name;
    if (!sc->theme) return false;
  }
  sc->duration = whole_frames(d, fps) / fps;
  return (sc->text = strdup(s)) != NULL;
}

int reel_plan_from_json(const json_t *j, reel_plan *out) {
  if (!out) return REEL_EPARSE;
  memset(out, 0, sizeof *out);
  const json_t *hash = json_object_get(j, "hash"), *fps = json_object_get(j, "fps"),
               *total = json_object_get(j, "total_duration"), *scenes = json_object_get(j, "scenes");
  if (!json_is_object(j) || !json_is_string(hash) || json_string_length(hash) != 64 || !json_is_number(fps) ||
      !json_is_number(total) || !json_is_array(scenes) || json_array_size(scenes) == 0 ||
      json_array_size(scenes) > (size_t)INT_MAX)
    return REEL_EPARSE;
  const char *h = json_string_value(hash);
  for (int i = 0; i < 64; i++)
    if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) return REEL_EPARSE;
  out->fps = json_number_value(fps);
  if (!(out->fps >= MIN_FPS && out->fps <= MAX_FPS)) return REEL_EPARSE;
  const json_t *lang_j = json_object_get(j, "language"), *voice_j = json_object_get(j, "voice");
  const char *lang = lang_j ? json_string_value(lang_j) : "en"; /* both optional, as in hand-written plans */
  const char *voice = voice_j ? json_string_value(voice_j) : reel_lang_voice(lang);
  if (!lang || !voice || strlen(lang) >= sizeof out->language || !reel_lang_voice_name_ok(lang) ||
      !reel_lang_voice_name_ok(voice)) {
    memset(out, 0, sizeof *out);
    return REEL_EPARSE;
  }
  snprintf(out->language, sizeof out->language, "%s", lang);
  snprintf(out->voice, sizeof out->voice, "%s", voice);
  memcpy(out->hash, h, 65);
  size_t n = json_array_size(scenes);
  if (!(out->scenes = calloc(n, sizeof *out->scenes))) { /* the header promises 0 or REEL_EPARSE only */
    memset(out, 0, sizeof *out);
    return REEL_EPARSE;
  }
  for (size_t i = 0; i < n; i++) {
    out->n_scenes = (int)i + 1; /* so reel_plan_free releases what was parsed */
    if (!parse_scene(json_array_get(scenes, i), (int)i, out->fps, &out->scenes[i])) {
      reel_plan_free(out);
      return REEL_EPARSE;
    }
  }
  recompute_starts(out);
  return 0;
}
