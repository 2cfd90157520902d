#include "client/progress_line.h"

#include <stdio.h>
#include <string.h>

#include "common/utf8.h"

void reel_progress_elapsed(double seconds, char *out, size_t outlen) {
  if (!(seconds >= 0)) seconds = 0; /* NaN too */
  if (seconds > 359999) seconds = 359999;
  long s = (long)seconds;
  if (s >= 3600) snprintf(out, outlen, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else snprintf(out, outlen, "%ld:%02ld", s / 60, s % 60);
}

static int clamp_percent(int p) { return p < 0 ? 0 : p > 100 ? 100 : p; }

static const char *label_of(const reel_progress *p) {
  if (p->stage && p->stage[0]) return p->stage;
  return p->state ? p->state : "";
}

/* Walks s for at most cols terminal columns (one column a code point:
 * stage names are short words), never splitting a character. Returns the
 * bytes taken; *used (when set) gets the columns they fill. */
static size_t fit_columns(const char *s, size_t cols, size_t *used) {
  size_t len = strlen(s), i = 0, n_cols = 0;
  while (i < len && n_cols < cols) {
    uint32_t cp;
    size_t n = reel_utf8_decode_or_replace((const unsigned char *)s, len, i, &cp);
    if (n == 0) break;
    i += n;
    n_cols++;
  }
  if (used) *used = n_cols;
  return i;
}

size_t reel_progress_line(char *out, size_t outlen, int width, const reel_progress *p) {
  if (outlen == 0) return 0;
  if (width < 20) width = 20;
  int pct = clamp_percent(p->percent);
  char elapsed[16];
  reel_progress_elapsed(p->elapsed_s, elapsed, sizeof elapsed);
  const char *label = label_of(p);
  /* "[bar]" + "  NNN%" + "  label" + "  elapsed"; one column stays free so
   * the terminal never wraps at the last one */
  int fixed = 2 + 6 + 2 + 2 + (int)strlen(elapsed) + 1;
  size_t all_cols;
  fit_columns(label, (size_t)-1, &all_cols);
  int label_cols = (int)all_cols;
  int bar = width - fixed - label_cols;
  if (bar > 40) bar = 40;
  if (bar < 10) { /* the bar keeps 10 cells; the label is cut instead */
    bar = 10;
    label_cols = width - fixed - bar;
    if (label_cols < 0) label_cols = 0;
  }
  size_t label_bytes = fit_columns(label, (size_t)label_cols, NULL);
  char cells[41];
  int filled = pct * bar / 100;
  for (int i = 0; i < bar; i++) cells[i] = i < filled ? '#' : '-';
  cells[bar] = '\0';
  int n = snprintf(out, outlen, "[%s] %4d%%  %.*s  %s", cells, pct, (int)label_bytes, label, elapsed);
  if (n < 0) {
    out[0] = '\0';
    return 0;
  }
  return (size_t)n < outlen ? (size_t)n : outlen - 1;
}

size_t reel_progress_plain(char *out, size_t outlen, const reel_progress *p) {
  if (outlen == 0) return 0;
  char elapsed[16];
  reel_progress_elapsed(p->elapsed_s, elapsed, sizeof elapsed);
  int n = snprintf(out, outlen, "%3d%%  %s  %s", clamp_percent(p->percent), label_of(p), elapsed);
  if (n < 0) {
    out[0] = '\0';
    return 0;
  }
  return (size_t)n < outlen ? (size_t)n : outlen - 1;
}
