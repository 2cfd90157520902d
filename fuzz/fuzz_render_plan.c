/* libFuzzer target: the scene planner on arbitrary prompts (default options,
 * max_scenes from the first byte % 20 + 1), its plan invariants, and the
 * plan.json round trip. */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "render/plan.h"

/* Strict UTF-8 check, written independently of the planner's. */
static bool valid_utf8(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (len == 0 || n - i < len) return false;
    uint32_t cp = len == 1 ? c : (uint32_t)(c & (0x7F >> len));
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (s[i + k] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

static bool same_plan(const reel_plan *a, const reel_plan *b) {
  if (a->n_scenes != b->n_scenes || strcmp(a->hash, b->hash) != 0 || a->fps != b->fps ||
      a->total_duration != b->total_duration)
    return false;
  for (int i = 0; i < a->n_scenes; i++) {
    const reel_scene *x = &a->scenes[i], *y = &b->scenes[i];
    if (strcmp(x->text, y->text) != 0 || x->duration != y->duration || x->start != y->start ||
        x->background[0] != y->background[0] || x->background[1] != y->background[1] ||
        x->text_color != y->text_color || x->camera != y->camera)
      return false;
  }
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *prompt = malloc(size + 1);
  if (!prompt) return 0;
  memcpy(prompt, data, size);
  prompt[size] = '\0';
  reel_plan_options o;
  reel_plan_options_default(&o);
  o.prompt = prompt;
  o.max_scenes = size ? data[0] % 20 + 1 : 1;
  reel_plan p;
  int rc = reel_plan_build(&o, &p);
  /* printable ASCII with a letter always has a plan */
  bool printable = true, letter = false;
  for (const char *c = prompt; *c; c++) {
    printable = printable && *c >= ' ' && *c <= '~';
    letter = letter || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z');
  }
  if (printable && letter && rc != 0) __builtin_trap();
  if (rc != 0) {
    if ((rc != REEL_EINVAL && rc != REEL_ENOMEM) || p.scenes || p.n_scenes) __builtin_trap();
    free(prompt);
    return 0;
  }
  if (p.n_scenes < 1 || p.n_scenes > o.max_scenes || strlen(p.hash) != 64 || p.fps != o.fps) __builtin_trap();
  double t = 0;
  const char *cursor = prompt;
  for (int i = 0; i < p.n_scenes; i++) {
    const reel_scene *s = &p.scenes[i];
    size_t n = strlen(s->text);
    if (n == 0 || !valid_utf8((const unsigned char *)s->text, n)) __builtin_trap();
    if (strchr(" \t\n\r\v\f", s->text[0]) || strchr(" \t\n\r\v\f", s->text[n - 1])) __builtin_trap();
    /* scene texts are pieces of the prompt, in order, without overlap */
    const char *at = strstr(cursor, s->text);
    if (!at) __builtin_trap();
    cursor = at + n;
    double frames = s->duration * p.fps;
    if (!(s->duration > 0) || fabs(frames - round(frames)) > 1e-6 * fmax(1, frames)) __builtin_trap();
    if (s->duration < o.segment_duration_seconds - 1e-9 || s->duration < o.min_scene_seconds - 1e-9) __builtin_trap();
    if (s->start != t || (unsigned)s->camera >= REEL_CAMERA_COUNT) __builtin_trap();
    if (s->background[0] > 0xFFFFFF || s->background[1] > 0xFFFFFF || s->text_color > 0xFFFFFF) __builtin_trap();
    t += s->duration;
  }
  if (p.total_duration != t) __builtin_trap();

  /* plan.json round trip, through text as it would be stored */
  json_t *j = reel_plan_to_json(&p);
  char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_t *back = text ? json_loads(text, 0, NULL) : NULL;
  reel_plan q;
  if (!j || !text || !back || reel_plan_from_json(back, &q) != 0) __builtin_trap();
  if (!same_plan(&p, &q)) __builtin_trap();
  reel_plan_stretch_scene(&q, data[0] % q.n_scenes, 1.0 + data[size - 1]);
  if (q.scenes[data[0] % q.n_scenes].duration < 1.0 + data[size - 1] - 1e-9) __builtin_trap();
  reel_plan_free(&q);
  json_decref(back);
  free(text);
  json_decref(j);
  reel_plan_free(&p);
  free(prompt);
  return 0;
}
