/* The renderer's text pieces on the real installed fonts: the language
 * guesser, the font reader and per-character font choice, the layout staying
 * inside its rectangle, and the camera's safe area. Needs fonts-dejavu-core,
 * fonts-noto-cjk and fonts-symbola (scripts/install-deps.sh). */
#include <math.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "render/fonts.h"
#include "render/lang.h"
#include "render/layout.h"
#include "render/stages.h"

static void test_lang(void) {
  const char *cases[][2] = {
      {"The rocket launches at night over the sea.", "en"},
      {"La ville s'endort sous les étoiles, et le vent se lève.", "fr"},
      {"« Bonjour », dit-elle.", "fr"},
      {"Der Hund läuft über die Straße und bellt.", "de"},
      {"El perro corre por la playa con los niños.", "es"},
      {"Il cane corre sulla spiaggia con i bambini e non si ferma.", "it"},
      {"O cão corre na praia com as crianças e não para.", "pt"},
      {"De hond loopt op het strand en is niet moe.", "nl"},
      {"Собака бежит по пляжу.", "ru"},
      {"Собака біжить і їсть.", "uk"},
      {"Ο σκύλος τρέχει στην παραλία.", "el"},
      {"الكلب يركض على الشاطئ", "ar"},
      {"今天天气很好。", "zh"},
      {"東京の夜は明るい。", "ja"},
      {"서울의 밤은 밝다.", "ko"},
      {"", "en"},
      {"12345 !!!", "en"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) CHECK_STR(reel_lang_detect(cases[i][0]), cases[i][1]);
  CHECK_STR(reel_lang_voice("fr"), "fr-fr");
  CHECK_STR(reel_lang_voice("zh"), "cmn");
  CHECK_STR(reel_lang_voice("xx"), "en-us");
  CHECK(reel_lang_voice_name_ok("en-us+f3") && reel_lang_voice_name_ok("roa/fr"));
  CHECK(!reel_lang_voice_name_ok("") && !reel_lang_voice_name_ok("fr; rm") && !reel_lang_voice_name_ok("a b"));
  CHECK_STR(reel_lang_detect("ok \xff\xfe bad utf8 the and of"), "en"); /* invalid bytes are skipped */
}

static void test_fonts(reel_fontset *fs) {
  char missing[256], err[512];
  CHECK_INT(reel_fontset_open(fs, missing, sizeof missing, err, sizeof err), 0);
  if (missing[0]) fprintf(stderr, "missing fonts: %s\n", missing);
  CHECK(missing[0] == '\0');
  CHECK(reel_font_has(fs->font[REEL_FONT_LATIN], 'A') && !reel_font_has(fs->font[REEL_FONT_LATIN], 0x6771));
  CHECK(reel_font_has(fs->font[REEL_FONT_CJK], 0x6771) && reel_font_has(fs->font[REEL_FONT_CJK], 0x3042));
  CHECK(reel_font_has(fs->font[REEL_FONT_SYMBOLS], 0x1F525));
  CHECK(!reel_font_has(fs->font[REEL_FONT_LATIN], 0xE000) && reel_fontset_pick(fs, 0xE000, -1) == -1);
  CHECK_INT(reel_fontset_pick(fs, 'a', -1), REEL_FONT_LATIN);
  CHECK_INT(reel_fontset_pick(fs, 0x6771, REEL_FONT_LATIN), REEL_FONT_CJK);
  CHECK_INT(reel_fontset_pick(fs, 'a', REEL_FONT_CJK), REEL_FONT_CJK); /* Latin inside CJK text stays in one font */
  CHECK_INT(reel_fontset_pick(fs, 'a', REEL_FONT_SYMBOLS), REEL_FONT_LATIN);
  double w = reel_font_advance(fs->font[REEL_FONT_LATIN], 'W'), i = reel_font_advance(fs->font[REEL_FONT_LATIN], 'i');
  CHECK(w > 0.9 && w < 1.2 && i > 0.2 && i < 0.45);
  CHECK(fabs(reel_font_advance(fs->font[REEL_FONT_CJK], 0x6771) - 1.0) < 0.01);
  reel_font *f;
  CHECK_INT(reel_font_open("/nonexistent.ttf", &f, err, sizeof err), REEL_ENOTFOUND);
  CHECK_INT(reel_font_open("/etc/hostname", &f, err, sizeof err), REEL_EPARSE);
}

static void test_layout(const reel_fontset *fs) {
  const char *texts[] = {"OUR ROCKET MOWS WIDE MEADOWS AT NIGHT.", "Our rocket launches at night",
                         "東京の夜は明るい。「こんにちは」と言った。", "Fire 🔥 and dawn 🌅 light.",
                         "WWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW", "x \x01\ttab \xee\x80\x80 end"};
  for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
    reel_text_layout l;
    double x = 27, y = 30, w = 266, h = 120;
    CHECK_INT(reel_layout_text(texts[k], fs, x, y, w, h, 40, &l), 0);
    CHECK(l.n_runs > 0 && l.font_size >= REEL_LAYOUT_MIN_SIZE && l.font_size <= 40);
    CHECK(l.left >= x - 1e-9 && l.right <= x + w + 1e-9 && l.top >= y - 1e-9 && l.bottom <= y + h + 1e-9);
    for (int r = 0; r < l.n_runs; r++) {
      CHECK(l.runs[r].x >= x - 1e-9 && l.runs[r].baseline <= y + h);
      CHECK(strchr(l.runs[r].text, '\x01') == NULL && strchr(l.runs[r].text, '\n') == NULL);
      CHECK(strstr(l.runs[r].text, "\xee\x80\x80") == NULL); /* no font has U+E000: left out, not a box */
      if (strstr(l.runs[r].text, "東")) CHECK_INT(l.runs[r].font, REEL_FONT_CJK);
      if (strstr(l.runs[r].text, "🔥")) CHECK_INT(l.runs[r].font, REEL_FONT_SYMBOLS);
      if (l.runs[r].text[0] == '\xe3' && (unsigned char)l.runs[r].text[1] == 0x80 &&
          (unsigned char)l.runs[r].text[2] == 0x82)
        CHECK(r == 0 || l.runs[r].baseline != l.runs[r - 1].baseline); /* 。 never starts a line after text */
    }
    if (k == 5) CHECK_INT(l.dropped, 1);
    reel_text_layout_free(&l);
  }
}

static void test_safe_area(void) {
  int sizes[][4] = {{320, 180, 320, 180}, {1280, 720, 1280, 720}, {512, 512, 640, 360}, {640, 360, 512, 512}};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    int iw = sizes[k][0], ih = sizes[k][1], w = sizes[k][2], h = sizes[k][3];
    for (int m = 0; m < REEL_CAMERA_COUNT; m++) {
      double r[4];
      reel_render_safe_area(iw, ih, w, h, (reel_camera_move)m, r);
      reel_camera_path c = reel_render_camera_path(w, h, (reel_camera_move)m);
      double s = fmax((double)c.cw / iw, (double)c.ch / ih), ox = (iw * s - c.cw) / 2, oy = (ih * s - c.ch) / 2;
      CHECK(r[2] > 0 && r[3] > 0);
      if (iw == w && ih == h) CHECK(r[2] > 0.6 * iw && r[3] > 0.6 * ih); /* most of the picture is usable */
      /* every frame's crop window, mapped back to the keyframe, contains the area */
      for (int f = 0; f <= 10; f++) {
        double cx = c.x0 + (c.x1 - c.x0) * f / 10.0, cy = c.y0 + (c.y1 - c.y0) * f / 10.0;
        double left = (cx + ox) / s, top = (cy + oy) / s, right = (cx + w + ox) / s, bottom = (cy + h + oy) / s;
        CHECK(r[0] >= left + 3 && r[1] >= top + 3 && r[0] + r[2] <= right - 3 && r[1] + r[3] <= bottom - 3);
      }
    }
  }
}

int main(void) {
  test_lang();
  reel_fontset fs;
  test_fonts(&fs);
  test_layout(&fs);
  reel_fontset_close(&fs);
  test_safe_area();
  return check_report();
}
