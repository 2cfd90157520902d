/* A reader for just enough of an OpenType/TrueType font: the table directory
 * (of a single font or the first face of a collection), "head" (units per em),
 * "hhea" (ascent, descent, number of advance widths), "maxp" (glyph count),
 * "hmtx" (advance widths) and "cmap" (a format 12 or format 4 Unicode
 * subtable). Every offset read from the file is checked against the table's
 * length, so a damaged font is REEL_EPARSE, never an overread. */
#include "render/fonts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#define MAX_TABLE_BYTES (16u << 20)

struct reel_font {
  unsigned char *cmap; /* the chosen subtable */
  size_t cmap_len;
  int cmap_format;     /* 4 or 12 */
  uint16_t *advances;  /* font units, n_advances of them */
  uint32_t n_advances;
  uint32_t n_glyphs;
  double units_per_em, ascent, descent;
};

static uint16_t u16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t u32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Reads len bytes at off into a new buffer; NULL on a short read or a bad size. */
static unsigned char *read_at(FILE *f, uint32_t off, uint32_t len) {
  if (len == 0 || len > MAX_TABLE_BYTES || fseek(f, (long)off, SEEK_SET) != 0) return NULL;
  unsigned char *b = malloc(len);
  if (b && fread(b, 1, len, f) != len) {
    free(b);
    b = NULL;
  }
  return b;
}

typedef struct {
  uint32_t off, len;
} table_ref;

/* Finds the tables of the face whose directory starts at dir_off. */
static int find_tables(FILE *f, uint32_t dir_off, const char *const tags[], table_ref refs[], int n) {
  unsigned char head[12];
  if (fseek(f, (long)dir_off, SEEK_SET) != 0 || fread(head, 1, 12, f) != 12) return REEL_EPARSE;
  uint16_t count = u16(head + 4);
  if (count == 0 || count > 512) return REEL_EPARSE;
  unsigned char *dir = read_at(f, dir_off + 12, (uint32_t)count * 16);
  if (!dir) return REEL_EPARSE;
  for (int k = 0; k < n; k++) refs[k].len = 0;
  for (uint16_t i = 0; i < count; i++)
    for (int k = 0; k < n; k++)
      if (memcmp(dir + 16 * i, tags[k], 4) == 0) refs[k] = (table_ref){u32(dir + 16 * i + 8), u32(dir + 16 * i + 12)};
  free(dir);
  return 0;
}

/* Picks the best Unicode subtable of a cmap table and copies it into f. */
static int choose_cmap(reel_font *f, const unsigned char *t, uint32_t len) {
  if (len < 4) return REEL_EPARSE;
  uint16_t n = u16(t + 2);
  if (4 + (uint32_t)n * 8 > len) return REEL_EPARSE;
  uint32_t best_off = 0;
  int best_rank = 0;
  for (uint16_t i = 0; i < n; i++) {
    const unsigned char *rec = t + 4 + 8 * i;
    uint16_t platform = u16(rec), encoding = u16(rec + 2);
    uint32_t off = u32(rec + 4);
    if (off > len - 4) continue;
    uint16_t format = u16(t + off);
    int unicode = platform == 0 || (platform == 3 && (encoding == 1 || encoding == 10));
    int rank = !unicode ? 0 : format == 12 ? 2 : format == 4 ? 1 : 0;
    if (rank > best_rank) best_rank = rank, best_off = off;
  }
  if (!best_rank) return REEL_EPARSE;
  const unsigned char *sub = t + best_off;
  uint32_t avail = len - best_off, sub_len;
  if (u16(sub) == 12) {
    if (avail < 16) return REEL_EPARSE;
    uint32_t groups = u32(sub + 12);
    if (groups > (avail - 16) / 12) return REEL_EPARSE;
    sub_len = 16 + groups * 12;
  } else {
    if (avail < 14) return REEL_EPARSE;
    uint32_t seg2 = u16(sub + 6);
    if (seg2 < 2 || seg2 % 2 || 16 + 4 * seg2 > avail) return REEL_EPARSE;
    sub_len = avail; /* glyphIdArray runs to the subtable's end; bounded by the table */
  }
  if (!(f->cmap = malloc(sub_len))) return REEL_ENOMEM;
  memcpy(f->cmap, sub, sub_len);
  f->cmap_len = sub_len;
  f->cmap_format = u16(sub);
  return 0;
}

static uint32_t glyph_of(const reel_font *f, uint32_t cp) {
  const unsigned char *s = f->cmap;
  if (f->cmap_format == 12) {
    uint32_t lo = 0, hi = u32(s + 12);
    while (lo < hi) {
      uint32_t mid = lo + (hi - lo) / 2;
      const unsigned char *g = s + 16 + 12 * mid;
      if (cp < u32(g)) hi = mid;
      else if (cp > u32(g + 4)) lo = mid + 1;
      else return u32(g + 8) + (cp - u32(g));
    }
    return 0;
  }
  if (cp > 0xFFFF) return 0;
  uint32_t seg2 = u16(s + 6), lo = 0, hi = seg2 / 2;
  while (lo < hi) { /* endCode is sorted: the first segment whose end >= cp */
    uint32_t mid = lo + (hi - lo) / 2;
    if (u16(s + 14 + 2 * mid) < cp) lo = mid + 1;
    else hi = mid;
  }
  if (lo >= seg2 / 2) return 0;
  uint32_t start = u16(s + 16 + seg2 + 2 * lo), delta = u16(s + 16 + 2 * seg2 + 2 * lo);
  size_t ro_at = 16 + 3 * (size_t)seg2 + 2 * lo;
  uint32_t range = u16(s + ro_at);
  if (cp < start) return 0;
  if (range == 0) return (cp + delta) & 0xFFFF;
  size_t at = ro_at + range + 2 * (size_t)(cp - start);
  if (at + 2 > f->cmap_len) return 0;
  uint32_t g = u16(s + at);
  return g ? (g + delta) & 0xFFFF : 0;
}

int reel_font_open(const char *path, reel_font **out, char *err, size_t errlen) {
  *out = NULL;
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    snprintf(err, errlen, "cannot open the font %s", path);
    return REEL_ENOTFOUND;
  }
  static const char *const tags[] = {"head", "hhea", "maxp", "hmtx", "cmap"};
  table_ref refs[5];
  unsigned char *t[5] = {0};
  reel_font *f = calloc(1, sizeof *f);
  int rc = f ? 0 : REEL_ENOMEM;
  unsigned char head[16];
  uint32_t dir = 0;
  if (!rc && (fread(head, 1, 16, fp) != 16)) rc = REEL_EPARSE;
  if (!rc && memcmp(head, "ttcf", 4) == 0) dir = u32(head + 12); /* the first face of a collection */
  if (!rc) rc = find_tables(fp, dir, tags, refs, 5);
  for (int k = 0; !rc && k < 5; k++)
    if (!(t[k] = read_at(fp, refs[k].off, refs[k].len))) rc = REEL_EPARSE;
  if (!rc && (refs[0].len < 54 || refs[1].len < 36 || refs[2].len < 6)) rc = REEL_EPARSE;
  if (!rc) {
    f->units_per_em = u16(t[0] + 18);
    f->ascent = (int16_t)u16(t[1] + 4);
    f->descent = -(double)(int16_t)u16(t[1] + 6);
    f->n_advances = u16(t[1] + 34);
    f->n_glyphs = u16(t[2] + 4);
    if (f->units_per_em < 16 || f->n_advances == 0 || (uint64_t)f->n_advances * 4 > refs[3].len) rc = REEL_EPARSE;
  }
  if (!rc && !(f->advances = malloc(f->n_advances * sizeof *f->advances))) rc = REEL_ENOMEM;
  for (uint32_t g = 0; !rc && g < f->n_advances; g++) f->advances[g] = u16(t[3] + 4 * g);
  if (!rc) rc = choose_cmap(f, t[4], refs[4].len);
  for (int k = 0; k < 5; k++) free(t[k]);
  fclose(fp);
  if (rc) {
    if (rc == REEL_EPARSE) snprintf(err, errlen, "%s is not a font reel can read (no usable cmap/hmtx)", path);
    else snprintf(err, errlen, "out of memory reading the font %s", path);
    reel_font_close(f);
    return rc;
  }
  *out = f;
  return 0;
}

void reel_font_close(reel_font *f) {
  if (!f) return;
  free(f->cmap);
  free(f->advances);
  free(f);
}

int reel_font_has(const reel_font *f, uint32_t cp) {
  uint32_t g = f ? glyph_of(f, cp) : 0;
  return g != 0 && g < f->n_glyphs;
}

double reel_font_advance(const reel_font *f, uint32_t cp) {
  uint32_t g = glyph_of(f, cp);
  if (g >= f->n_glyphs) g = 0;
  uint16_t a = f->advances[g < f->n_advances ? g : f->n_advances - 1];
  return a / f->units_per_em;
}

double reel_font_ascent(const reel_font *f) { return f->ascent > 0 ? f->ascent / f->units_per_em : 0.8; }
double reel_font_descent(const reel_font *f) { return f->descent > 0 ? f->descent / f->units_per_em : 0.2; }

int reel_fontset_open(reel_fontset *fs, char *missing, size_t missing_len, char *err, size_t errlen) {
  static const struct { const char *path, *package, *covers; } fonts[] = {
#define REEL_FONT_ENTRY_(name, path, package, covers) {path, package, covers},
      REEL_FONT_MAP(REEL_FONT_ENTRY_)
#undef REEL_FONT_ENTRY_
  };
  memset(fs, 0, sizeof *fs);
  if (missing_len) missing[0] = '\0';
  size_t used = 0;
  for (int i = 0; i < REEL_FONT_COUNT; i++) {
    char why[512];
    fs->path[i] = fonts[i].path;
    int rc = reel_font_open(fonts[i].path, &fs->font[i], why, sizeof why);
    if (rc == 0) continue;
    if (i == 0) {
      snprintf(err, errlen, "the font %s is missing: install the Debian package %s (%s)", fonts[i].path,
               fonts[i].package, why);
      reel_fontset_close(fs);
      return REEL_ENOTFOUND;
    }
    if (used < missing_len) {
      int w = snprintf(missing + used, missing_len - used, "%s%s (%s)", used ? ", " : "", fonts[i].package,
                       fonts[i].covers);
      if (w > 0) used += (size_t)w;
    }
  }
  return 0;
}

void reel_fontset_close(reel_fontset *fs) {
  for (int i = 0; i < REEL_FONT_COUNT; i++) {
    reel_font_close(fs->font[i]);
    fs->font[i] = NULL;
  }
}

int reel_fontset_pick(const reel_fontset *fs, uint32_t cp, int current) {
  if (current >= 0 && current < REEL_FONT_COUNT && current != REEL_FONT_SYMBOLS && reel_font_has(fs->font[current], cp))
    return current;
  for (int i = 0; i < REEL_FONT_COUNT; i++)
    if (reel_font_has(fs->font[i], cp)) return i;
  return -1;
}
