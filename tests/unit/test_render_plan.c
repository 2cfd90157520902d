/* The scene planner: splitting (sentences, clauses, words, CJK), grouping and
 * merging, timing in whole frames, palette contrast, determinism, plan.json. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "render/plan.h"

static reel_plan_options opts(const char *prompt, double segment, int max_scenes) {
  reel_plan_options o;
  reel_plan_options_default(&o);
  o.prompt = prompt;
  if (segment > 0) o.segment_duration_seconds = segment;
  if (max_scenes > 0) o.max_scenes = max_scenes;
  return o;
}

/* Heap copy of s with runs of ASCII whitespace made one space, and trimmed. */
static char *normalise(const char *s) {
  char *out = malloc(strlen(s) + 1), *w = out;
  for (int pending = 0; *s; s++) {
    if (strchr(" \t\n\r\v\f", *s)) {
      pending = w != out;
    } else {
      if (pending) *w++ = ' ';
      pending = 0;
      *w++ = *s;
    }
  }
  *w = '\0';
  return out;
}

/* Scene texts joined with sep (heap). */
static char *joined(const reel_plan *p, const char *sep) {
  size_t n = 1;
  for (int i = 0; i < p->n_scenes; i++) n += strlen(p->scenes[i].text) + strlen(sep);
  char *out = calloc(1, n);
  for (int i = 0; i < p->n_scenes; i++) {
    if (i) strcat(out, sep);
    strcat(out, p->scenes[i].text);
  }
  return out;
}

/* Every plan: 1..max_scenes non-empty trimmed texts, whole-frame durations no
 * shorter than the options allow, starts and total the running sums. */
static void check_plan(const reel_plan *p, const reel_plan_options *o) {
  CHECK(p->n_scenes >= 1 && p->n_scenes <= o->max_scenes);
  CHECK(strlen(p->hash) == 64);
  double t = 0;
  for (int i = 0; i < p->n_scenes; i++) {
    const reel_scene *s = &p->scenes[i];
    size_t n = strlen(s->text);
    CHECK(n > 0 && !strchr(" \t\n\r", s->text[0]) && !strchr(" \t\n\r", s->text[n - 1]));
    double frames = s->duration * p->fps;
    CHECK(fabs(frames - round(frames)) < 1e-9 * fmax(1, frames));
    CHECK(s->duration >= o->segment_duration_seconds - 1e-9 && s->duration >= o->min_scene_seconds - 1e-9);
    CHECK(fabs(s->start - t) < 1e-9);
    t += s->duration;
  }
  CHECK(fabs(p->total_duration - t) < 1e-9);
}

/* Builds, checks the invariants and compares the scene texts with the expected list (NULL-terminated). */
static void check_split(const char *prompt, double segment, int max_scenes, const char *const *expected) {
  reel_plan_options o = opts(prompt, segment, max_scenes);
  reel_plan p;
  CHECK_INT(reel_plan_build(&o, &p), 0);
  check_plan(&p, &o);
  int n = 0;
  while (expected[n]) n++;
  CHECK_INT(p.n_scenes, n);
  for (int i = 0; i < n && i < p.n_scenes; i++) CHECK_STR(p.scenes[i].text, expected[i]);
  reel_plan_free(&p);
}
#define SPLIT(prompt, segment, max_scenes, ...) \
  check_split(prompt, segment, max_scenes, (const char *const[]){__VA_ARGS__, NULL})

static void test_sentences(void) {
  /* segment 1.5 s at 2.6 words/s fits three words */
  SPLIT("The sun rises. Birds sing! Are you awake? Yes\u2026 The end.", 1.5, 0, "The sun rises.", "Birds sing!",
        "Are you awake?", "Yes\u2026 The end.");
  /* runs of marks and closing quotes stay with the sentence */
  SPLIT("She said \"Stop!\" Then left?! (Really.) Ok", 1.5, 0, "She said \"Stop!\"", "Then left?! (Really.)", "Ok");
  /* abbreviations are not special; a period inside a token is not a sentence end */
  SPLIT("Dr. Smith arrived. He waved.", 1.0, 0, "Dr.", "Smith arrived.", "He waved.");
  SPLIT("Pi is 3.14 today, see example.com now.", 1.0, 0, "Pi is", "3.14 today,", "see example.com", "now.");
  /* a sentence without letters joins the scene before it (or after it, leading) */
  SPLIT("Hello there. ... Goodbye now.", 1.0, 0, "Hello there. ...", "Goodbye now.");
  SPLIT("... and then. Silence.", 1.0, 0, "... and then.", "Silence.");
  SPLIT("All of this fits in one scene. Easily.", 0, 0, "All of this fits in one scene. Easily.");
}

static double linear(uint32_t v) {
  double c = (v & 0xFF) / 255.0;
  return c <= 0.03928 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
}
static double ratio(uint32_t a, uint32_t b) {
  double la = 0.2126 * linear(a >> 16) + 0.7152 * linear(a >> 8) + 0.0722 * linear(a);
  double lb = 0.2126 * linear(b >> 16) + 0.7152 * linear(b >> 8) + 0.0722 * linear(b);
  return (fmax(la, lb) + 0.05) / (fmin(la, lb) + 0.05);
}

static double luminance_of(uint32_t a) { return 0.2126 * linear(a >> 16) + 0.7152 * linear(a >> 8) + 0.0722 * linear(a); }

static void check_covers_prompt(const reel_plan *p, const char *prompt);

/* Scene boundaries fall at sentence ends first; a cut sentence starts its own
 * scene; closing marks set off by a space stay with their sentence. */
static void test_sentence_boundaries(void) {
  /* the case: the long second sentence must not lend "Later," to the first scene */
  SPLIT("The river shines silver. Later, a storm rolls in over the hills and the boats hurry home to the harbour.",
        5.0, 0, "The river shines silver.", "Later, a storm rolls in over the hills and", "the boats hurry home to the harbour.");
  /* ... nor its tail to the next sentence */
  SPLIT("Waves hit the rocks below, and gulls cry out over the grey water. Night falls.", 2.0, 0, "Waves hit the rocks below,",
        "and gulls cry out", "over the grey water.", "Night falls.");
  /* French spacing: the closing guillemet stays with its sentence, never starts a scene */
  SPLIT("\u00ab La ville dort. \u00bb Puis la pluie tombe. \u00ab Viens ! \u00bb dit-elle.", 2.0, 0,
        "\u00ab La ville dort. \u00bb", "Puis la pluie tombe. \u00ab Viens ! \u00bb", "dit-elle.");
  /* a cut between words puts an opening mark with the words after it */
  SPLIT("Il dit \u00ab oui, \u00bb puis il part vers la mer du nord", 1.0, 0, "Il dit", "\u00ab oui, \u00bb", "puis il",
        "part vers", "la mer", "du nord");
  /* an opening mark after a space is not a closer */
  SPLIT("Stop. \u00abGo\u00bb now.", 1.0, 0, "Stop.", "\u00abGo\u00bb now.");
  /* no scene of a long mixed prompt starts with a closing mark or ends without its sentence's end mark */
  const char *prompt = "\u00ab Le soleil se l\u00e8ve sur la mer. \u00bb Les bateaux sortent du port, lentement, "
                       "un par un, pendant que les mouettes crient au-dessus des vagues grises ! \u00ab Regarde ! \u00bb "
                       "Le vent tourne. \u201cA storm?\u201d Maybe\u2026 Then silence.";
  for (double seg = 0.5; seg <= 6.0; seg += 0.5) {
    reel_plan_options o = opts(prompt, seg, 0);
    reel_plan p;
    CHECK_INT(reel_plan_build(&o, &p), 0);
    for (int i = 0; i < p.n_scenes; i++) {
      const unsigned char *t = (const unsigned char *)p.scenes[i].text;
      CHECK(!(t[0] == 0xC2 && t[1] == 0xBB)); /* » */
      CHECK(!(t[0] == 0xE2 && t[1] == 0x80 && t[2] == 0x9D)); /* ” */
    }
    check_covers_prompt(&p, prompt);
    reel_plan_free(&p);
  }
}

/* Palette and motion from the scene's words; language and voice from the prompt. */
static void test_themes(void) {
  reel_plan_options o = opts("Night over the harbour. Dawn over the hills. The forest at noon. Fire in the hearth. "
                             "Snow on the roofs. A quiet room.", 2.0, 0);
  reel_plan p;
  CHECK_INT(reel_plan_build(&o, &p), 0);
  CHECK_INT(p.n_scenes, 6);
  if (p.n_scenes == 6) {
    CHECK_STR(p.scenes[0].theme, "night");
    CHECK_STR(p.scenes[1].theme, "dawn");
    CHECK_STR(p.scenes[2].theme, "forest");
    CHECK_STR(p.scenes[3].theme, "fire");
    CHECK_STR(p.scenes[4].theme, "snow");
    CHECK(p.scenes[5].theme == NULL);
    /* night is darker than dawn and snow; night's text is white, dawn's dark */
    double night = luminance_of(p.scenes[0].background[0]), dawn = luminance_of(p.scenes[1].background[0]);
    CHECK(night < 0.05 && dawn > 0.4 && night < luminance_of(p.scenes[4].background[0]));
    CHECK(p.scenes[0].text_color == 0xFFFFFF && p.scenes[1].text_color != 0xFFFFFF);
    /* night is blue (blue the largest channel), fire red, forest green */
    uint32_t n = p.scenes[0].background[0], f = p.scenes[3].background[0], g = p.scenes[2].background[0];
    CHECK((n & 0xFF) > (n >> 16 & 0xFF) && (n & 0xFF) > (n >> 8 & 0xFF));
    CHECK((f >> 16 & 0xFF) > (f >> 8 & 0xFF) && (f >> 16 & 0xFF) > (f & 0xFF));
    CHECK((g >> 8 & 0xFF) > (g >> 16 & 0xFF) && (g >> 8 & 0xFF) > (g & 0xFF));
    CHECK_INT(p.scenes[1].camera, REEL_CAMERA_PAN_UP);
    CHECK_INT(p.scenes[4].camera, REEL_CAMERA_PAN_DOWN);
    for (int i = 0; i < 6; i++)
      CHECK(ratio(p.scenes[i].text_color, p.scenes[i].background[0]) >= 4.5 &&
            ratio(p.scenes[i].text_color, p.scenes[i].background[1]) >= 4.5);
  }
  CHECK_STR(p.language, "en");
  CHECK_STR(p.voice, "en-us");
  json_t *j = reel_plan_to_json(&p);
  CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(j, "scenes"), 0), "theme")), "night");
  CHECK(json_object_get(json_array_get(json_object_get(j, "scenes"), 5), "theme") == NULL);
  CHECK_STR(json_string_value(json_object_get(j, "voice")), "en-us");
  reel_plan back;
  CHECK_INT(reel_plan_from_json(j, &back), 0);
  CHECK(back.n_scenes == 6 && back.scenes[0].theme && strcmp(back.scenes[0].theme, "night") == 0);
  CHECK(back.n_scenes == 6 && back.scenes[5].theme == NULL);
  reel_plan_free(&back);
  json_object_set_new(json_array_get(json_object_get(j, "scenes"), 0), "theme", json_string("bogus"));
  CHECK_INT(reel_plan_from_json(j, &back), REEL_EPARSE);
  json_object_set_new(json_array_get(json_object_get(j, "scenes"), 0), "theme", json_string("night"));
  json_object_set_new(j, "voice", json_string("fr; rm -rf"));
  CHECK_INT(reel_plan_from_json(j, &back), REEL_EPARSE);
  json_decref(j);
  reel_plan_free(&p);
  /* other languages' words and plurals; case does not matter */
  const char *words[][2] = {{"La NUIT tombe.", "night"}, {"Die Wellen rauschen.", "sea"}, {"Bosque verde.", "forest"},
                            {"Neige et glace.", "snow"}, {"The Dunes.", "desert"}, {"Thunderstorms!", "storm"}};
  for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
    o = opts(words[i][0], 0, 0);
    CHECK_INT(reel_plan_build(&o, &p), 0);
    CHECK(p.scenes[0].theme && strcmp(p.scenes[0].theme, words[i][1]) == 0);
    reel_plan_free(&p);
  }
  o = opts("La ville s'endort sous les \u00e9toiles, et le vent se l\u00e8ve sur la mer.", 0, 0);
  CHECK_INT(reel_plan_build(&o, &p), 0);
  CHECK_STR(p.language, "fr");
  CHECK_STR(p.voice, "fr-fr");
  reel_plan_free(&p);
}

static void test_long_sentences(void) {
  SPLIT("Waves hit rocks, gulls cry loudly; wind howls on", 1.5, 0, "Waves hit rocks,", "gulls cry loudly;",
        "wind howls on");
  SPLIT("one two three four five six seven", 1.5, 0, "one two three", "four five six", "seven");
  SPLIT("first part\u2014second part", 1.0, 0, "first part\u2014", "second part");
  /* 3,000 and 10:30 are not clause ends */
  SPLIT("At 10:30 we sold 3,000 units, then rested", 1.0, 0, "At 10:30", "we sold", "3,000 units,", "then rested");
}

/* Groups [15, 3, 15, 6, 15] units; merging takes the shortest pair, ties to the left. */
static void test_merging(void) {
  const char *prompt = "A b c d e. F. G h i j k. L m. N o p q r.";
  SPLIT(prompt, 2.0, 0, "A b c d e.", "F.", "G h i j k.", "L m.", "N o p q r.");
  SPLIT(prompt, 2.0, 4, "A b c d e. F.", "G h i j k.", "L m.", "N o p q r.");
  SPLIT(prompt, 2.0, 3, "A b c d e. F.", "G h i j k. L m.", "N o p q r.");
  SPLIT(prompt, 2.0, 1, prompt);
}

static void test_edge_prompts(void) {
  SPLIT("Lighthouse", 0, 0, "Lighthouse");
  SPLIT("  \n Lighthouse \t", 0, 0, "Lighthouse");
  SPLIT("!!! ??? ...", 0, 0, "!!! ??? ...");
  SPLIT("  --- *** \n", 0, 0, "--- ***");
  SPLIT(" \u0301 word ", 0, 0, "\u0301 word"); /* a mark after a space is kept, the space trimmed */
  SPLIT("\U0001F389\U0001F389\U0001F389", 0, 0, "\U0001F389\U0001F389\U0001F389");
  const char *quoted = "Say \"hi\": C:\\path\\to %{pts} and 100% 'done' {x} [y] \\n";
  SPLIT(quoted, 0, 0, quoted);
  reel_plan p;
  const char *blank[] = {"", "   ", " \t\n\r ", "\u3000\u00a0\u2003"};
  for (size_t i = 0; i < sizeof blank / sizeof *blank; i++) {
    reel_plan_options o = opts(blank[i], 0, 0);
    CHECK_INT(reel_plan_build(&o, &p), REEL_EINVAL);
    CHECK(p.scenes == NULL && p.n_scenes == 0);
  }
  const char *bad_utf8[] = {"ok \xff", "\xc0\xaf", "a\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80"};
  for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
    reel_plan_options o = opts(bad_utf8[i], 0, 0);
    CHECK_INT(reel_plan_build(&o, &p), REEL_EINVAL);
  }
  reel_plan_options o = opts(NULL, 0, 0);
  CHECK_INT(reel_plan_build(&o, &p), REEL_EINVAL);
  double bad[][4] = {{0, 24, 2.6, 2}, {-1, 24, 2.6, 2}, {NAN, 24, 2.6, 2}, {5, 0, 2.6, 2},
                     {5, INFINITY, 2.6, 2}, {5, 24, 0, 2}, {5, 24, 2.6, -1}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    o = opts("fine", 0, 0);
    o.segment_duration_seconds = bad[i][0], o.fps = bad[i][1], o.words_per_second = bad[i][2];
    o.min_scene_seconds = bad[i][3];
    CHECK_INT(reel_plan_build(&o, &p), REEL_EINVAL);
  }
  o = opts("fine", 0, 0);
  o.max_scenes = 0;
  CHECK_INT(reel_plan_build(&o, &p), REEL_EINVAL);
}

static void test_unicode(void) {
  /* CJK: sentences at 。！, then in equal pieces of at most 7 characters (2.0 s at 2.6 * 1.5 characters/s) */
  SPLIT("今天天气很好。我们去公园散步吧！", 2.0, 0, "今天天气很好。", "我们去公", "园散步吧！");
  SPLIT("今天天气很好。我们去公园散步吧！", 0, 0, "今天天气很好。我们去公园散步吧！");
  /* opening quotes stay with the next character, closing marks and emoji modifiers with the one before */
  SPLIT("「你好」", 0.1, 100, "「你", "好」");
  SPLIT("好\U0001F44D\U0001F3FD好", 0.1, 100, "好\U0001F44D\U0001F3FD", "好");
  /* emoji, ZWJ sequences, flags and 4-byte letters are never cut */
  SPLIT("\U0001F3AC Action! \U0001F468\u200D\U0001F469\u200D\U0001F467 family time. \U0001D4B3 marks "
        "\U0001F1EB\U0001F1F7\U0001F1E9\U0001F1EA spot.",
        0.1, 100, "\U0001F3AC Action!", "\U0001F468\u200D\U0001F469\u200D\U0001F467 family", "time.", "\U0001D4B3",
        "marks \U0001F1EB\U0001F1F7\U0001F1E9\U0001F1EA", "spot.");
  /* speech of CJK is characters / (words_per_second * 1.5); of Latin text words / words_per_second */
  reel_plan p;
  reel_plan_options o = opts("天天天天天天天天天天天天天", 1.0, 1);
  o.min_scene_seconds = 0;
  CHECK_INT(reel_plan_build(&o, &p), 0);
  CHECK(fabs(p.scenes[0].duration - ceil((13 / (2.6 * 1.5) + 0.5) * 24 - 1e-6) / 24) < 1e-9);
  reel_plan_free(&p);
  o.prompt = "a b c d e f g h i j k l m n o p q r s t u v w x y z";
  CHECK_INT(reel_plan_build(&o, &p), 0);
  CHECK(fabs(p.scenes[0].duration - 10.5) < 1e-9);
  reel_plan_free(&p);
}

static char *long_prompt(size_t min_len) {
  static const char *const words[] = {"lighthouse", "waves", "crash", "against", "the", "old", "stone", "pier",
                                      "gulls", "circle", "above", "while", "fog", "rolls", "in", "slowly"};
  char *s = malloc(min_len + 64);
  size_t n = 0;
  for (unsigned i = 0; n < min_len; i++) {
    n += (size_t)sprintf(s + n, "%s%s", words[(i * 7 + i / 16) % 16], i % 11 == 10 ? ". " : i % 5 == 4 ? ", " : " ");
  }
  return s;
}

static void check_covers_prompt(const reel_plan *p, const char *prompt) {
  char *all = joined(p, " "), *a = normalise(all), *b = normalise(prompt);
  CHECK(strcmp(a, b) == 0);
  free(all), free(a), free(b);
}

static void test_long_prompts(void) {
  char *prompt = long_prompt(2000);
  reel_plan_options o = opts(prompt, 0, 0);
  reel_plan p;
  CHECK_INT(reel_plan_build(&o, &p), 0);
  check_plan(&p, &o);
  CHECK_INT(p.n_scenes, 12);
  check_covers_prompt(&p, prompt);
  reel_plan_free(&p);
  free(prompt);
  /* 1 MB, and 1 MB of one-word sentences split into a scene per word, still bounded */
  prompt = long_prompt(1000000);
  o = opts(prompt, 0, 0);
  CHECK_INT(reel_plan_build(&o, &p), 0);
  check_plan(&p, &o);
  check_covers_prompt(&p, prompt);
  reel_plan_free(&p);
  for (size_t i = 0; i < 1000000; i += 3) memcpy(prompt + i, "a. ", 3);
  prompt[999999] = '\0';
  o = opts(prompt, 0.1, 7);
  CHECK_INT(reel_plan_build(&o, &p), 0);
  check_plan(&p, &o);
  CHECK_INT(p.n_scenes, 7);
  check_covers_prompt(&p, prompt);
  reel_plan_free(&p);
  free(prompt);
}

static char *plan_json(const reel_plan *p) {
  json_t *j = reel_plan_to_json(p);
  char *s = j ? json_dumps(j, JSON_SORT_KEYS) : NULL;
  json_decref(j);
  return s;
}

static void test_determinism(void) {
  const char *prompt = "A lighthouse at dawn. Waves roll in, gulls cry. The fog lifts slowly over the bay.";
  reel_plan_options o = opts(prompt, 2.0, 0);
  reel_plan a, b;
  CHECK_INT(reel_plan_build(&o, &a), 0);
  CHECK_INT(reel_plan_build(&o, &b), 0);
  char *ja = plan_json(&a), *jb = plan_json(&b);
  CHECK(ja && jb && strcmp(ja, jb) == 0);
  free(jb);
  reel_plan_free(&b);
  o.base_seed = 42;
  CHECK_INT(reel_plan_build(&o, &b), 0);
  CHECK(a.n_scenes == b.n_scenes && a.n_scenes > 1 && strcmp(a.hash, b.hash) != 0);
  int differs = 0;
  for (int i = 0; i < a.n_scenes && i < b.n_scenes; i++) {
    CHECK_STR(a.scenes[i].text, b.scenes[i].text);
    CHECK(a.scenes[i].duration == b.scenes[i].duration);
    differs += a.scenes[i].background[0] != b.scenes[i].background[0] || a.scenes[i].camera != b.scenes[i].camera;
  }
  CHECK(differs > 0);
  reel_plan_free(&b);
  /* every input is in the hash */
  reel_plan_options variants[6];
  for (int i = 0; i < 6; i++) variants[i] = opts(prompt, 2.0, 0);
  variants[0].prompt = "A lighthouse at dawn.";
  variants[1].segment_duration_seconds = 2.5;
  variants[2].max_scenes = 3;
  variants[3].fps = 25;
  variants[4].words_per_second = 3;
  variants[5].min_scene_seconds = 1;
  for (int i = 0; i < 6; i++) {
    CHECK_INT(reel_plan_build(&variants[i], &b), 0);
    CHECK(strcmp(a.hash, b.hash) != 0);
    reel_plan_free(&b);
  }
  free(ja);
  reel_plan_free(&a);
}

static void test_timing(void) {
  /* groups of 3, 3, 5 and 1 words at 2.3 s (5 words fit); max_scenes 3 merges the first two */
  reel_plan_options o = opts("One two three. Four five six. Seven eight nine ten eleven. Twelve.", 2.3, 3);
  o.fps = 29.97;
  o.min_scene_seconds = 1.0;
  reel_plan p;
  CHECK_INT(reel_plan_build(&o, &p), 0);
  check_plan(&p, &o);
  CHECK_INT(p.n_scenes, 3);
  if (p.n_scenes == 3) {
    /* words / words_per_second + 0.5 s, or the segment length, rounded up to a frame */
    CHECK(fabs(p.scenes[0].duration - ceil((6 / 2.6 + 0.5) * 29.97) / 29.97) < 1e-9);
    CHECK(fabs(p.scenes[1].duration - ceil((5 / 2.6 + 0.5) * 29.97) / 29.97) < 1e-9);
    CHECK(fabs(p.scenes[2].duration - ceil(2.3 * 29.97) / 29.97) < 1e-9);
    double before0 = p.scenes[0].duration, before1 = p.scenes[1].duration, start2 = p.scenes[2].start;
    reel_plan_stretch_scene(&p, 1, 7.01);
    double expected = ceil(7.01 * 29.97) / 29.97;
    CHECK(fabs(p.scenes[1].duration - expected) < 1e-9 && p.scenes[1].duration >= 7.01);
    CHECK(p.scenes[0].duration == before0 && p.scenes[1].start == before0);
    CHECK(fabs(p.scenes[2].start - (start2 + expected - before1)) < 1e-9);
    check_plan(&p, &o);
    double total = p.total_duration;
    reel_plan_stretch_scene(&p, 1, 1.0); /* shorter: unchanged */
    reel_plan_stretch_scene(&p, 1, NAN);
    reel_plan_stretch_scene(&p, 3, 100);
    reel_plan_stretch_scene(&p, -1, 100);
    CHECK(p.total_duration == total && fabs(p.scenes[1].duration - expected) < 1e-9);
    reel_plan_stretch_scene(&p, 0, 1e300); /* clamped */
    CHECK(p.scenes[0].duration <= REEL_PLAN_MAX_SCENE_SECONDS + 1 && isfinite(p.total_duration));
  }
  reel_plan_free(&p);
  /* min_scene_seconds wins over a shorter segment */
  o.min_scene_seconds = 3.1;
  CHECK_INT(reel_plan_build(&o, &p), 0);
  check_plan(&p, &o);
  CHECK(p.n_scenes == 3 && fabs(p.scenes[2].duration - ceil(3.1 * 29.97) / 29.97) < 1e-9);
  reel_plan_free(&p);
}

static void test_palette(void) {
  uint64_t x = 0x9E3779B97F4A7C15u;
  int bad = 0, scenes = 0, cameras[REEL_CAMERA_COUNT] = {0};
  for (int i = 0; i < 1000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    reel_plan_options o = opts("A lighthouse. Waves crash on rocks. Gulls cry out loud.", 1.0, 0);
    o.base_seed = x;
    reel_plan p;
    if (reel_plan_build(&o, &p) != 0) {
      bad++;
      continue;
    }
    for (int k = 0; k < p.n_scenes; k++, scenes++) {
      const reel_scene *s = &p.scenes[k];
      bad += ratio(s->text_color, s->background[0]) < 4.5 || ratio(s->text_color, s->background[1]) < 4.5;
      bad += s->background[0] > 0xFFFFFF || s->background[1] > 0xFFFFFF || s->text_color > 0xFFFFFF;
      cameras[s->camera]++;
    }
    reel_plan_free(&p);
  }
  CHECK_INT(bad, 0);
  CHECK(scenes >= 3000);
  for (int c = 0; c < REEL_CAMERA_COUNT; c++) CHECK(cameras[c] > 0);
  CHECK_STR(reel_camera_name(REEL_CAMERA_PAN_LEFT), "pan_left");
  CHECK_STR(reel_camera_name(REEL_CAMERA_DRIFT), "drift");
}

/* Parses text as JSON and returns reel_plan_from_json's result (the plan freed). */
static int from_text(const char *text) {
  json_t *j = json_loads(text, 0, NULL);
  CHECK(j != NULL);
  reel_plan p;
  int rc = reel_plan_from_json(j, &p);
  if (rc != 0) CHECK(p.scenes == NULL && p.n_scenes == 0);
  reel_plan_free(&p);
  json_decref(j);
  return rc;
}

static void test_json(void) {
  const char *prompt = "Say \"hi\": C:\\dir %{pts}. \u4eca\u5929\U0001F389 fine. Third one here, ok.";
  reel_plan_options o = opts(prompt, 1.0, 0);
  o.fps = 29.97;
  reel_plan a, b;
  CHECK_INT(reel_plan_build(&o, &a), 0);
  json_t *j = reel_plan_to_json(&a);
  CHECK(j != NULL);
  CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(j, "scenes"), 0), "text")),
            a.scenes[0].text);
  CHECK_INT(reel_plan_from_json(j, &b), 0);
  CHECK(b.n_scenes == a.n_scenes && strcmp(a.hash, b.hash) == 0 && a.fps == b.fps &&
        a.total_duration == b.total_duration);
  for (int i = 0; i < a.n_scenes && i < b.n_scenes; i++) {
    CHECK_STR(b.scenes[i].text, a.scenes[i].text);
    CHECK(b.scenes[i].duration == a.scenes[i].duration && b.scenes[i].start == a.scenes[i].start);
    CHECK(b.scenes[i].background[0] == a.scenes[i].background[0] &&
          b.scenes[i].background[1] == a.scenes[i].background[1] && b.scenes[i].text_color == a.scenes[i].text_color &&
          b.scenes[i].camera == a.scenes[i].camera);
  }
  char *ja = plan_json(&a), *jb = plan_json(&b);
  CHECK(ja && jb && strcmp(ja, jb) == 0);
  free(ja), free(jb);
  json_decref(j);
  reel_plan_free(&a);
  reel_plan_free(&b);

#define HASH "\"hash\": \"" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\""
#define SCENE(fields) "{\"index\": 0, \"text\": \"Hi\", \"start\": 0" fields "}"
#define GOOD_FIELDS ", \"duration\": 5, \"background\": [\"#102030\", \"#405060\"], \"text_color\": \"#ffffff\", \"camera\": \"drift\""
#define PLAN(top, scenes) "{" HASH ", \"fps\": 24, \"total_duration\": 5" top ", \"scenes\": [" scenes "]}"
  /* starts and the total are recomputed; durations snap up to frames */
  json_t *ok = json_loads("{" HASH ", \"fps\": 24, \"total_duration\": 99, \"scenes\": [" SCENE(GOOD_FIELDS) ", "
                          "{\"index\": 1, \"text\": \"Yo\", \"start\": 42, \"duration\": 2.01, \"background\": "
                          "[\"#000000\", \"#ABCDEF\"], \"text_color\": \"#121212\", \"camera\": \"pan_up\"}]}",
                          0, NULL);
  CHECK_INT(reel_plan_from_json(ok, &b), 0);
  CHECK(b.n_scenes == 2 && b.scenes[1].start == 5.0 && fabs(b.scenes[1].duration - 49 / 24.0) < 1e-12 &&
        fabs(b.total_duration - (5 + 49 / 24.0)) < 1e-12 && b.scenes[1].background[1] == 0xABCDEF &&
        b.scenes[1].camera == REEL_CAMERA_PAN_UP);
  reel_plan_free(&b);
  json_decref(ok);
  CHECK_INT(from_text(PLAN("", SCENE(GOOD_FIELDS))), 0);
  CHECK_INT(reel_plan_from_json(NULL, &b), REEL_EPARSE);
  const char *bad[] = {
      "[]", "{}", "{" HASH ", \"fps\": 24, \"total_duration\": 5}",  /* no scenes */
      "{\"fps\": 24, \"total_duration\": 5, \"scenes\": [" SCENE(GOOD_FIELDS) "]}",
      "{" HASH ", \"total_duration\": 5, \"scenes\": [" SCENE(GOOD_FIELDS) "]}",
      "{" HASH ", \"fps\": 24, \"scenes\": [" SCENE(GOOD_FIELDS) "]}",
      "{\"hash\": \"abc\", \"fps\": 24, \"total_duration\": 5, \"scenes\": [" SCENE(GOOD_FIELDS) "]}",
      "{" HASH ", \"fps\": \"24\", \"total_duration\": 5, \"scenes\": [" SCENE(GOOD_FIELDS) "]}",
      "{" HASH ", \"fps\": -24, \"total_duration\": 5, \"scenes\": [" SCENE(GOOD_FIELDS) "]}",
      "{" HASH ", \"fps\": 24, \"total_duration\": 5, \"scenes\": {}}",
      PLAN("", ""),
      PLAN("", "7"),
      PLAN("", SCENE(", \"background\": [\"#102030\", \"#405060\"], \"text_color\": \"#ffffff\", \"camera\": \"drift\"")),
      PLAN("", SCENE(", \"duration\": -5, \"background\": [\"#102030\", \"#405060\"], \"text_color\": \"#ffffff\", \"camera\": \"drift\"")),
      PLAN("", SCENE(", \"duration\": 0, \"background\": [\"#102030\", \"#405060\"], \"text_color\": \"#ffffff\", \"camera\": \"drift\"")),
      PLAN("", SCENE(", \"duration\": 1e300, \"background\": [\"#102030\", \"#405060\"], \"text_color\": \"#ffffff\", \"camera\": \"drift\"")),
      PLAN("", SCENE(", \"duration\": \"5\", \"background\": [\"#102030\", \"#405060\"], \"text_color\": \"#ffffff\", \"camera\": \"drift\"")),
      PLAN("", SCENE(", \"duration\": 5, \"background\": [\"#102030\"], \"text_color\": \"#ffffff\", \"camera\": \"drift\"")),
      PLAN("", SCENE(", \"duration\": 5, \"background\": [\"#102030\", \"#40506g\"], \"text_color\": \"#ffffff\", \"camera\": \"drift\"")),
      PLAN("", SCENE(", \"duration\": 5, \"background\": [\"#102030\", \"#405060\"], \"text_color\": 16777215, \"camera\": \"drift\"")),
      PLAN("", SCENE(", \"duration\": 5, \"background\": [\"#102030\", \"#405060\"], \"text_color\": \"#ffffff\", \"camera\": \"zoom\"")),
      PLAN("", SCENE(", \"duration\": 5, \"background\": [\"#102030\", \"#405060\"], \"text_color\": \"#ffffff\"")),
      PLAN("", "{\"index\": 3, \"text\": \"Hi\", \"start\": 0" GOOD_FIELDS "}"),
      PLAN("", "{\"index\": 0, \"text\": \"\", \"start\": 0" GOOD_FIELDS "}"),
      PLAN("", "{\"index\": 0, \"text\": 5, \"start\": 0" GOOD_FIELDS "}"),
      PLAN("", "{\"index\": 0, \"start\": 0" GOOD_FIELDS "}"),
      PLAN("", "{\"index\": 0, \"text\": \"Hi\"" GOOD_FIELDS "}"),
      PLAN("", SCENE(GOOD_FIELDS) ", 5"),
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = from_text(bad[i]);
    CHECK_INT(rc, REEL_EPARSE);
    if (rc != REEL_EPARSE) fprintf(stderr, "  accepted: %s\n", bad[i]);
  }
  /* a NUL inside the text */
  json_t *nul = json_loads(PLAN("", SCENE(GOOD_FIELDS)), 0, NULL);
  json_object_set_new(json_array_get(json_object_get(nul, "scenes"), 0), "text", json_stringn("a\0b", 3));
  CHECK_INT(reel_plan_from_json(nul, &b), REEL_EPARSE);
  json_decref(nul);
}

int main(void) {
  test_sentences();
  test_long_sentences();
  test_sentence_boundaries();
  test_themes();
  test_merging();
  test_edge_prompts();
  test_unicode();
  test_long_prompts();
  test_determinism();
  test_timing();
  test_palette();
  test_json();
  return check_report();
}
