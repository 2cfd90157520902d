/* The fonts the renderer draws with, and what each can draw. ffmpeg's
 * drawtext takes one font file per text and draws the font's missing-glyph box
 * for characters the font lacks, so the renderer reads each font's character
 * map and advance widths itself (an OpenType/TrueType "cmap" and "hmtx"
 * reader), picks a font per run of characters, and measures lines exactly
 * enough to keep them inside the frame. */
#ifndef REEL_RENDER_FONTS_H
#define REEL_RENDER_FONTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct reel_font reel_font;

/* Opens the first face of a .ttf/.otf/.ttc file and reads its character map,
 * advance widths and vertical metrics (tables bounded to 16 MiB each). 0, or
 * REEL_ENOTFOUND (no file), REEL_EPARSE (not a font with an outline or bitmap
 * character map we read) or REEL_ENOMEM; err says which. */
int reel_font_open(const char *path, reel_font **out, char *err, size_t errlen);
void reel_font_close(reel_font *f);
/* Whether the font maps code point cp to a glyph other than the missing glyph. */
int reel_font_has(const reel_font *f, uint32_t cp);
/* Advance width of cp's glyph in ems (the missing glyph's when absent). */
double reel_font_advance(const reel_font *f, uint32_t cp);
/* Ascent and descent (both >= 0) in ems, from the font's hhea table. */
double reel_font_ascent(const reel_font *f);
double reel_font_descent(const reel_font *f);

/* The fonts tried for each character, in order. The first is required (the
 * renderer refuses to start without it); the others are used when installed. */
#define REEL_FONT_MAP(XX)                                                                              \
  XX(LATIN, "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "fonts-dejavu-core", "Latin, Greek, Cyrillic, Arabic, Hebrew") \
  XX(CJK, "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", "fonts-noto-cjk", "Chinese, Japanese and Korean") \
  XX(SYMBOLS, "/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf", "fonts-symbola", "emoji and symbols")

enum {
#define REEL_FONT_ENUM_(name, path, package, covers) REEL_FONT_##name,
  REEL_FONT_MAP(REEL_FONT_ENUM_)
#undef REEL_FONT_ENUM_
  REEL_FONT_COUNT
};

typedef struct {
  reel_font *font[REEL_FONT_COUNT]; /* NULL when not installed */
  const char *path[REEL_FONT_COUNT];
} reel_fontset;

/* Opens every font of REEL_FONT_MAP that is installed. Returns 0 when the first font opened; else
 * REEL_ENOTFOUND with the font and its Debian package in err. Fonts after the
 * first that are missing are listed in missing ("fonts-noto-cjk (Chinese,
 * Japanese and Korean)"; empty if none). */
int reel_fontset_open(reel_fontset *fs, char *missing, size_t missing_len, char *err, size_t errlen);
void reel_fontset_close(reel_fontset *fs);
/* The font to draw cp with: current when it has cp (so runs stay long, and
 * Latin letters in CJK text keep the CJK font), except that the symbols font
 * is only used for what the others lack; else the first font of the set that
 * has it; -1 when none has it. */
int reel_fontset_pick(const reel_fontset *fs, uint32_t cp, int current);

#endif
