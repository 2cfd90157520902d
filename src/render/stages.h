/* The built-in renderer's stages. Each reads and writes files in the job's
 * workspace (the current directory) so a failure can be inspected:
 *   plan        plan.json (cached by the plan's hash when a cache dir is given)
 *   keyframes   scenes/NNN.txt (wrapped caption), keyframes/NNN.png
 *   voiceover   voice/NNN.txt, voice/NNN.wav; scenes stretched to fit the speech
 *   generation  clips/NNN.mp4 (camera move + fades, H.264), up to parallel_segments at once
 *   captions    output/captions.vtt (and burned in during generation if configured)
 *   stitch      output/final_video.mp4 (H.264 yuv420p + AAC, +faststart), checked with ffprobe
 * Every ffmpeg/espeak-ng run logs to logs/. */
#ifndef REEL_RENDER_STAGES_H
#define REEL_RENDER_STAGES_H

#include <stddef.h>

#include "common/buf.h"
#include "render/fonts.h"
#include "render/options.h"
#include "render/plan.h"

typedef struct {
  reel_render_options opt;
  reel_plan plan;
  const char *cache_dir; /* NULL: no plan cache */
  int plan_from_cache;
  reel_fontset fonts;    /* opened by the first stage that draws text */
  int fonts_open;
  char err[2048];        /* why the last stage failed */
} reel_render_job;

/* Releases what the stages opened (the fonts); the plan and options are the caller's. */
void reel_render_job_close(reel_render_job *job);

/* A camera move over a frame of w x h: the canvas (cw x ch, 15 % larger, even)
 * the keyframe is scaled to, and the crop window's top-left corner at the
 * first (x0, y0) and last (x1, y1) frame; it moves linearly in between. */
typedef struct {
  int cw, ch, x0, y0, x1, y1;
} reel_camera_path;
reel_camera_path reel_render_camera_path(int w, int h, reel_camera_move move);

/* The rectangle of an iw x ih keyframe that every frame of the move shows
 * (in keyframe pixels, rect = x, y, width, height), less a margin of 4 % of
 * its smaller side (at least 4 px) for the text's shadow and rounding. Text
 * laid out inside it is never cut off by the camera. */
void reel_render_safe_area(int iw, int ih, int w, int h, reel_camera_move move, double rect[4]);

int reel_render_stage_plan(reel_render_job *job);
int reel_render_stage_keyframes(reel_render_job *job);
int reel_render_stage_voiceover(reel_render_job *job);
int reel_render_stage_generation(reel_render_job *job);
int reel_render_stage_captions(reel_render_job *job);
int reel_render_stage_stitch(reel_render_job *job);

/* Appends a WebVTT document with one cue per scene (times from the plan). */
int reel_render_vtt(const reel_plan *plan, reel_buf *out);
/* Duration of a PCM WAV file in seconds, or a negative value if unreadable. */
double reel_render_wav_seconds(const char *path);

#endif
