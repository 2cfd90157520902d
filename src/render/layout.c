/* Greedy line breaking over "items" (one code point each, with its font and
 * advance), then runs of equal font per line. Decisions the header leaves open:
 *  - a run of whitespace is one break opportunity drawn as one space;
 *  - a character's width at size S is ceil(advance * S) + 1 pixels, an upper
 *    bound of what drawtext's hinted, whole-pixel advances add up to;
 *  - line pitch is 1.12 * (ascent + descent) of the fonts used, so lines of
 *    different fonts never overlap;
 *  - zero-width characters no font has (joiners, variation selectors) are left
 *    out silently; other characters no font has count as dropped. */
#include "render/layout.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/utf8.h"

typedef struct {
  uint32_t cp;
  size_t start, len; /* bytes in the text */
  int font;
  double advance;    /* ems */
  bool space, breakable_before, breakable_after;
} item;


static bool is_space(uint32_t c) {
  return c == ' ' || c < 0x20 || c == 0x7F || c == 0xA0 || c == 0x3000 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x202F || c == 0x205F;
}

/* Wide characters of scripts without spaces, and emoji: lines may break around them. */
static bool is_wide(uint32_t c) {
  return (c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0xA4CF) || (c >= 0xAC00 && c <= 0xD7A3) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF00 && c <= 0xFF60) ||
         (c >= 0x1F300 && c <= 0x1FAFF) || (c >= 0x2600 && c <= 0x27BF) || c >= 0x20000;
}

/* Characters a line must not start with (closing punctuation, small kana marks). */
static bool no_break_before(uint32_t c) {
  switch (c) {
  case 0x3001: case 0x3002: case 0xFF0C: case 0xFF0E: case 0xFF01: case 0xFF1F: case 0xFF1A: case 0xFF1B:
  case 0x300D: case 0x300F: case 0x3011: case 0x3009: case 0x300B: case 0xFF09: case 0xFF3D: case 0x30FC:
  case 0x2026: case '.': case ',': case '!': case '?': case ')': case ']': case 0xBB: case 0x201D: case 0x2019:
  case 0x200D: case 0xFE0F:
    return true;
  default:
    return (c >= 0x1F3FB && c <= 0x1F3FF) || (c >= 0x0300 && c <= 0x036F);
  }
}

/* Characters a line must not end with (opening brackets and quotes). */
static bool no_break_after(uint32_t c) {
  return c == 0x300C || c == 0x300E || c == 0x3010 || c == 0x3008 || c == 0x300A || c == 0xFF08 || c == 0xAB ||
         c == 0x201C || c == 0x200D || c == '(' || c == '[';
}

static bool is_zero_width(uint32_t c) {
  return c == 0x200B || c == 0x200C || c == 0x200D || c == 0x2060 || c == 0xFEFF || (c >= 0xFE00 && c <= 0xFE0F) ||
         (c >= 0xE0000 && c <= 0xE0FFF) || (c >= 0x1F3FB && c <= 0x1F3FF);
}

typedef struct {
  size_t first, end; /* items [first, end) of a line, spaces trimmed */
  double width;      /* pixels */
} line;

static double px(const item *it, int size) { return ceil(it->advance * size) + 1; }

/* Breaks items into lines no wider than max_w at size; returns the count,
 * filling lines when not NULL (room for n_items lines). */
static size_t wrap(const item *it, size_t n, int size, double max_w, line *lines) {
  size_t count = 0, i = 0;
  while (i < n) {
    while (i < n && it[i].space) i++;
    if (i >= n) break;
    size_t start = i, last_break = 0; /* last_break: an end offset where the line may end, 0 = none */
    double w = 0, w_at_break = 0;
    for (; i < n; i++) {
      double cw = px(&it[i], size);
      bool can_break_here = i > start && (it[i].space || ((it[i].breakable_before || it[i - 1].breakable_after) &&
                                                          !no_break_before(it[i].cp) && !no_break_after(it[i - 1].cp)));
      if (can_break_here) {
        size_t e = i;
        double we = w;
        while (e > start && it[e - 1].space) we -= px(&it[--e], size);
        last_break = e, w_at_break = we;
      }
      if (w + cw > max_w && i > start && !it[i].space) {
        if (last_break > start) {
          i = last_break;
          w = w_at_break;
        } else {
          /* no break opportunity: cut between characters, not before a mark that belongs to the one before */
          while (i > start + 1 && no_break_before(it[i].cp) && it[i].advance == 0) w -= px(&it[--i], size);
        }
        break;
      }
      w += cw;
    }
    size_t end = i;
    while (end > start && it[end - 1].space) w -= px(&it[--end], size);
    if (lines) lines[count] = (line){start, end, w};
    count++;
  }
  return count;
}

static int add_run(reel_text_layout *l, const char *text, const item *it, size_t a, size_t b, double x,
                   double baseline) {
  if (l->n_runs >= REEL_LAYOUT_MAX_RUNS) {
    l->truncated = 1;
    return 0;
  }
  size_t bytes = 0;
  for (size_t k = a; k < b; k++) bytes += it[k].space ? 1 : it[k].len;
  char *s = malloc(bytes + 1);
  if (!s) return REEL_ENOMEM;
  size_t o = 0;
  for (size_t k = a; k < b; k++) {
    if (it[k].space) s[o++] = ' ';
    else memcpy(s + o, text + it[k].start, it[k].len), o += it[k].len;
  }
  s[o] = '\0';
  l->runs[l->n_runs++] = (reel_text_run){it[a].font, s, x, baseline};
  return 0;
}

int reel_layout_text(const char *text, const reel_fontset *fs, double x, double y, double w, double h, int max_size,
                     reel_text_layout *out) {
  memset(out, 0, sizeof *out);
  size_t len = strlen(text), n = 0;
  item *it = malloc((len + 1) * sizeof *it);
  line *lines = malloc((len + 1) * sizeof *lines);
  out->runs = calloc(REEL_LAYOUT_MAX_RUNS, sizeof *out->runs);
  if (!it || !lines || !out->runs) {
    free(it);
    free(lines);
    free(out->runs);
    out->runs = NULL;
    return REEL_ENOMEM;
  }
  int current = -1;
  double ascent = 0, descent = 0;
  for (size_t i = 0, k; i < len; i += k) {
    uint32_t cp;
    k = reel_utf8_decode_or_replace((const unsigned char *)text, len, i, &cp);
    bool space = is_space(cp);
    if (space && n > 0 && it[n - 1].space) continue; /* a run of whitespace is one space */
    int font = reel_fontset_pick(fs, space ? ' ' : cp, current);
    if (font < 0) {
      if (!is_zero_width(cp) && !space) out->dropped++;
      continue;
    }
    current = font;
    const reel_font *f = fs->font[font];
    if (reel_font_ascent(f) > ascent) ascent = reel_font_ascent(f);
    if (reel_font_descent(f) > descent) descent = reel_font_descent(f);
    it[n++] = (item){cp, i, k, font, reel_font_advance(f, space ? ' ' : cp), space, is_wide(cp), is_wide(cp)};
  }
  if (ascent == 0) ascent = 0.9, descent = 0.25;
  double pitch_em = 1.12 * (ascent + descent);
  int size = max_size < REEL_LAYOUT_MIN_SIZE ? REEL_LAYOUT_MIN_SIZE : max_size;
  size_t count;
  for (;;) {
    count = wrap(it, n, size, w, NULL);
    double block = count ? ((count - 1) * pitch_em + ascent + descent) * size : 0;
    if (block <= h || size <= REEL_LAYOUT_MIN_SIZE) break;
    int next = (int)(size * 0.94);
    size = next < REEL_LAYOUT_MIN_SIZE ? REEL_LAYOUT_MIN_SIZE : next;
  }
  count = wrap(it, n, size, w, lines);
  size_t fit = count;
  while (fit > 1 && ((fit - 1) * pitch_em + ascent + descent) * size > h) fit--;
  if (fit < count) out->truncated = 1;
  double block = fit ? ((fit - 1) * pitch_em + ascent + descent) * size : 0;
  double top = y + (h - block) / 2;
  out->font_size = size;
  out->lines = (int)fit;
  out->left = x + w / 2, out->right = x + w / 2, out->top = top, out->bottom = top + block;
  int rc = 0;
  for (size_t li = 0; li < fit && rc == 0; li++) {
    const line *ln = &lines[li];
    double lx = floor(x + (w - ln->width) / 2), baseline = round(top + (li * pitch_em + ascent) * size);
    if (lx < out->left) out->left = lx;
    if (lx + ln->width > out->right) out->right = lx + ln->width;
    double pen = lx;
    for (size_t a = ln->first; a < ln->end && rc == 0;) {
      size_t b = a;
      double run_w = 0;
      while (b < ln->end && (it[b].font == it[a].font || it[b].space)) run_w += px(&it[b++], size);
      while (b > a + 1 && it[b - 1].space) run_w -= px(&it[--b], size); /* a space before a font change starts the next run */
      rc = add_run(out, text, it, a, b, pen, baseline);
      pen += run_w;
      a = b;
    }
  }
  free(it);
  free(lines);
  if (rc) reel_text_layout_free(out);
  return rc;
}

void reel_text_layout_free(reel_text_layout *l) {
  for (int i = 0; l->runs && i < l->n_runs; i++) free(l->runs[i].text);
  free(l->runs);
  memset(l, 0, sizeof *l);
}
