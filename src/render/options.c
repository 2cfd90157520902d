/* Pipeline config -> renderer options, with defaults and bounds. */
#include "render/options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "render/lang.h"

int reel_render_parse_size(const char *s, int *w, int *h) {
  char *end;
  long a = strtol(s, &end, 10);
  if (end == s || (*end != '*' && *end != 'x' && *end != 'X')) return REEL_EINVAL;
  const char *second = end + 1;
  long b = strtol(second, &end, 10);
  if (end == second || *end) return REEL_EINVAL;
  if (a < 16 || b < 16 || a > 7680 || b > 7680 || a % 2 || b % 2) return REEL_EINVAL;
  *w = (int)a;
  *h = (int)b;
  return 0;
}

static int number(const json_t *pipeline, const char *key, double def, double min, double max, double *out,
                  char *err, size_t errlen) {
  const json_t *v = json_object_get(pipeline, key);
  if (!v || json_is_null(v)) {
    *out = def;
    return 0;
  }
  if (!json_is_number(v) || json_number_value(v) < min || json_number_value(v) > max) {
    snprintf(err, errlen, "pipeline.%s must be a number from %g to %g", key, min, max);
    return REEL_EINVAL;
  }
  *out = json_number_value(v);
  return 0;
}

static int size_of(const json_t *pipeline, const char *key, int dw, int dh, int *w, int *h, char *err,
                   size_t errlen) {
  const json_t *v = json_object_get(pipeline, key);
  *w = dw;
  *h = dh;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v) || reel_render_parse_size(json_string_value(v), w, h) != 0) {
    snprintf(err, errlen, "pipeline.%s must look like \"1280*720\" (even sizes from 16 to 7680)", key);
    return REEL_EINVAL;
  }
  return 0;
}

int reel_render_options_from_json(const json_t *pipeline, reel_render_options *o, char *err, size_t errlen) {
  memset(o, 0, sizeof *o);
  const json_t *prompt = json_object_get(pipeline, "prompt");
  if (!json_is_string(prompt) || json_string_length(prompt) == 0) {
    snprintf(err, errlen, "pipeline.prompt is missing: pass a prompt (the job's prompt, or reeld run --prompt)");
    return REEL_EINVAL;
  }
  double fps, seconds, max_scenes, seed, parallel;
  int rc = size_of(pipeline, "size", 1280, 720, &o->width, &o->height, err, errlen);
  if (!rc) rc = size_of(pipeline, "image_size", o->width, o->height, &o->image_width, &o->image_height, err, errlen);
  if (!rc) rc = number(pipeline, "fps", 24, 1, 120, &fps, err, errlen);
  if (!rc) rc = number(pipeline, "segment_duration_seconds", 5, 0.5, 600, &seconds, err, errlen);
  if (!rc) rc = number(pipeline, "max_scenes", 12, 1, 200, &max_scenes, err, errlen);
  if (!rc) rc = number(pipeline, "base_seed", 0, 0, 9007199254740991.0, &seed, err, errlen);
  if (!rc) rc = number(pipeline, "parallel_segments", 2, 1, 64, &parallel, err, errlen);
  if (rc) return rc;
  const json_t *burn = json_object_get(pipeline, "burn_captions");
  if (burn && !json_is_null(burn) && !json_is_boolean(burn)) {
    snprintf(err, errlen, "pipeline.burn_captions must be true or false");
    return REEL_EINVAL;
  }
  o->burn_captions = json_is_true(burn);
  const json_t *voice = json_object_get(pipeline, "voice");
  if (voice && !json_is_null(voice)) {
    if (!json_is_string(voice) || !reel_lang_voice_name_ok(json_string_value(voice))) {
      snprintf(err, errlen,
               "pipeline.voice must be an espeak-ng voice name such as \"fr-fr\" or \"de\" (letters, digits, - _ + /; "
               "espeak-ng --voices lists them)");
      return REEL_EINVAL;
    }
    if (!(o->voice = strdup(json_string_value(voice)))) return REEL_ENOMEM;
  }
  o->fps = fps;
  o->segment_duration = seconds;
  o->max_scenes = (int)max_scenes;
  o->base_seed = (uint64_t)seed;
  o->parallel_segments = (int)parallel;
  o->prompt = strdup(json_string_value(prompt));
  if (!o->prompt) {
    reel_render_options_free(o);
    return REEL_ENOMEM;
  }
  return 0;
}

void reel_render_options_free(reel_render_options *o) {
  free(o->prompt);
  free(o->voice);
  o->prompt = NULL;
  o->voice = NULL;
}
