/* The built-in renderer's settings, read from a job's effective pipeline
 * config with ttv-pipeline's key names. */
#ifndef REEL_RENDER_OPTIONS_H
#define REEL_RENDER_OPTIONS_H

#include <jansson.h>
#include <stdint.h>

typedef struct {
  char *prompt;              /* pipeline.prompt (required) */
  int width, height;         /* pipeline.size, "1280*720" or "1280x720" [1280*720] */
  int image_width, image_height; /* pipeline.image_size, keyframe size [= size] */
  double fps;                /* pipeline.fps [24] */
  double segment_duration;   /* pipeline.segment_duration_seconds [5] */
  int max_scenes;            /* pipeline.max_scenes [12] */
  uint64_t base_seed;        /* pipeline.base_seed [0] */
  int parallel_segments;     /* pipeline.parallel_segments [2] */
  int burn_captions;         /* pipeline.burn_captions [false] */
  char *voice;               /* pipeline.voice: an espeak-ng voice [NULL: chosen from the prompt's language] */
} reel_render_options;

/* Reads options from a pipeline config object. 0, or REEL_EINVAL with a
 * message naming the key in err. */
int reel_render_options_from_json(const json_t *pipeline, reel_render_options *o, char *err, size_t errlen);
void reel_render_options_free(reel_render_options *o);
/* Parses "W*H" or "WxH" (even sizes from 16 to 7680). 0 or REEL_EINVAL. */
int reel_render_parse_size(const char *s, int *w, int *h);

#endif
