/* Laying out a scene's words in a rectangle: the font for each character
 * (reel_fontset_pick), line breaks, the largest font size at which the lines
 * fit, and the pixel position of each run of characters drawn with one font.
 * Widths come from the fonts' own advance widths, rounded up per character,
 * so the drawn text stays inside the rectangle. */
#ifndef REEL_RENDER_LAYOUT_H
#define REEL_RENDER_LAYOUT_H

#include "render/fonts.h"

#define REEL_LAYOUT_MIN_SIZE 10
#define REEL_LAYOUT_MAX_RUNS 256

typedef struct {
  int font;          /* REEL_FONT_* */
  char *text;        /* UTF-8, one line's worth, no newline */
  double x, baseline;/* pixels: where the run's pen starts, and its baseline */
} reel_text_run;

typedef struct {
  reel_text_run *runs;
  int n_runs;
  int font_size;     /* pixels per em */
  int lines;
  int dropped;       /* characters no installed font has: left out of the picture */
  int truncated;     /* 1 when lines (or runs past REEL_LAYOUT_MAX_RUNS) did not fit and were left out */
  double left, top, right, bottom; /* extent of the laid-out lines, pixels */
} reel_text_layout;

/* Lays text out centred in the rectangle (x, y, w, h) at the largest size
 * from max_size down to REEL_LAYOUT_MIN_SIZE at which every line fits; at the
 * smallest size, lines that still do not fit are left out (truncated = 1).
 * Words break at spaces; CJK and emoji may break between characters, but not
 * before closing punctuation; a word wider than a line is broken between
 * characters. Control characters become spaces. 0 or REEL_ENOMEM. */
int reel_layout_text(const char *text, const reel_fontset *fs, double x, double y, double w, double h, int max_size,
                     reel_text_layout *out);
void reel_text_layout_free(reel_text_layout *l);

#endif
