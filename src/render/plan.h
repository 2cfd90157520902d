/* The scene plan: how the built-in renderer turns a prompt into scenes.
 * Pure and deterministic (the same prompt and options always give the same
 * plan), so it is unit-tested without ffmpeg. */
#ifndef REEL_RENDER_PLAN_H
#define REEL_RENDER_PLAN_H

#include <jansson.h>
#include <stdint.h>

/* Camera moves over a scene's keyframe: cheap crops of a slightly larger canvas. */
#define REEL_CAMERA_MAP(XX) \
  XX(PAN_LEFT, "pan_left")  \
  XX(PAN_RIGHT, "pan_right") \
  XX(PAN_UP, "pan_up")      \
  XX(PAN_DOWN, "pan_down")  \
  XX(DRIFT, "drift")        /* diagonal, top-left to bottom-right */

typedef enum {
#define REEL_CAMERA_ENUM_(name, text) REEL_CAMERA_##name,
  REEL_CAMERA_MAP(REEL_CAMERA_ENUM_)
#undef REEL_CAMERA_ENUM_
  REEL_CAMERA_COUNT
} reel_camera_move;

typedef struct {
  char *text;            /* the scene's words, as in the prompt (trimmed), UTF-8; spoken and captioned */
  double duration;       /* seconds, a whole number of frames at fps; >= min_scene_seconds */
  double start;          /* seconds from the start of the video (sum of earlier durations) */
  uint32_t background[2];/* 0xRRGGBB gradient from/to */
  uint32_t text_color;   /* 0xRRGGBB, readable on the background (contrast ratio >= 4.5) */
  reel_camera_move camera;
  const char *theme;     /* the scene's theme word class ("night", "sea", ...; reel_plan_theme_names), or NULL */
} reel_scene;

typedef struct {
  /* inputs (from the job's effective config; defaults in brackets) */
  const char *prompt;               /* required, non-empty */
  double segment_duration_seconds;  /* target scene length [5.0], > 0 */
  int max_scenes;                   /* cap on scene count [12], >= 1 */
  uint64_t base_seed;               /* [0] */
  double fps;                       /* [24] */
  double words_per_second;          /* speech-rate estimate for timing [2.6] */
  double min_scene_seconds;         /* [2.0] */
} reel_plan_options;

/* Accepted option ranges (anything else is REEL_EINVAL from reel_plan_build):
 * segment_duration_seconds in (0, 86400], max_scenes >= 1, fps in [1, 1000],
 * words_per_second in [0.1, 1000], min_scene_seconds in [0, 86400]; the prompt
 * must be valid UTF-8 of at most REEL_PLAN_MAX_PROMPT_BYTES bytes. */
#define REEL_PLAN_MAX_PROMPT_BYTES (8u * 1024u * 1024u)
/* No scene lasts longer: reel_plan_stretch_scene clamps to it, from_json rejects more. */
#define REEL_PLAN_MAX_SCENE_SECONDS 1e9

typedef struct {
  reel_scene *scenes;
  int n_scenes;
  double total_duration; /* sum of scene durations */
  double fps;
  char hash[65];         /* hex SHA-256 of everything the plan depends on: the cache key */
  char language[8];      /* the prompt's language (reel_lang_detect): "en", "fr", ... */
  char voice[65];        /* espeak-ng voice: reel_lang_voice(language) unless pipeline.voice set one */
} reel_plan;

/* Fills options with the defaults above (prompt NULL). */
void reel_plan_options_default(reel_plan_options *o);

/* Splits the prompt into scenes:
 *  - sentences end at . ! ? … 。！？ (runs of them, and closing quotes/brackets after them stay with the sentence);
 *  - a sentence whose estimated speech (words / words_per_second) is longer than
 *    segment_duration_seconds is split at clause marks (, ; : — – 、，；：),
 *    and a clause still too long at word boundaries (or, for text without
 *    spaces such as CJK, every N characters);
 *  - consecutive pieces are grouped into one scene while the group's estimated
 *    speech fits segment_duration_seconds;
 *  - when there are more than max_scenes groups, neighbours are merged
 *    (shortest adjacent pair first) until max_scenes remain;
 *  - a prompt without letters or digits (only symbols) still gives one scene
 *    with its text as is.
 *  - a sentence that had to be cut starts a new scene (its pieces never share
 *    a scene with the sentence before it), and closing marks set off by a
 *    space (French "… nuit. »") stay with their sentence or clause, so a
 *    scene never starts with a closing quote;
 * Each scene's duration is max(segment_duration_seconds, estimated speech + 0.5 s,
 * min_scene_seconds) rounded up to a whole frame. A scene whose words name a
 * theme (dawn, sunset, night, sea, forest, fire, city, snow, desert, storm,
 * mountain, space, in English and a few words of fr/de/es/it/pt; the theme
 * with most such words wins, ties to the earliest) gets that theme's palette
 * (hue range and lightness: night is dark blue, dawn light gold, ...) and
 * camera move (dawn pans up, snow down, sea sideways, ...), varied a little by
 * SHA-256(base_seed, scene index, scene text); other scenes take palette and
 * camera from that digest alone. The plan's language is reel_lang_detect(prompt)
 * and its voice reel_lang_voice(language). Returns 0, REEL_EINVAL (empty prompt
 * or bad option) or REEL_ENOMEM. */
int reel_plan_build(const reel_plan_options *o, reel_plan *out);

/* Sets scene i's duration to at least `seconds` (rounded up to a frame) and
 * recomputes starts and the total. Used once the real speech length is known. */
void reel_plan_stretch_scene(reel_plan *p, int i, double seconds);

/* plan.json: {"hash", "fps", "total_duration", "scenes": [{"index", "text",
 * "start", "duration", "background": ["#rrggbb", "#rrggbb"], "text_color",
 * "camera", "theme" (omitted when none)}], "language", "voice"}. to_json returns a new object; from_json fills out (0 or REEL_EPARSE). */
json_t *reel_plan_to_json(const reel_plan *p);
int reel_plan_from_json(const json_t *j, reel_plan *out);
void reel_plan_free(reel_plan *p);

/* The theme names, NULL-terminated. */
extern const char *const reel_plan_theme_names[];

/* Name of a camera move ("pan_left", ...). */
const char *reel_camera_name(reel_camera_move m);

#endif
