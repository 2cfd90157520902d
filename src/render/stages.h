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
#include "render/options.h"
#include "render/plan.h"

typedef struct {
  reel_render_options opt;
  reel_plan plan;
  const char *cache_dir; /* NULL: no plan cache */
  int plan_from_cache;
  char err[2048];        /* why the last stage failed */
} reel_render_job;

int reel_render_stage_plan(reel_render_job *job);
int reel_render_stage_keyframes(reel_render_job *job);
int reel_render_stage_voiceover(reel_render_job *job);
int reel_render_stage_generation(reel_render_job *job);
int reel_render_stage_captions(reel_render_job *job);
int reel_render_stage_stitch(reel_render_job *job);

/* Wraps text for a width x height frame: picks a font size (pixels) at which
 * the wrapped lines fit inside the frame's safe area, and appends the lines,
 * separated by '\n', to out. Long words are broken; CJK text wraps anywhere.
 * Never splits a UTF-8 character. Returns the font size. */
int reel_render_wrap_caption(const char *text, int width, int height, reel_buf *out);
/* Appends a WebVTT document with one cue per scene (times from the plan). */
int reel_render_vtt(const reel_plan *plan, reel_buf *out);
/* Duration of a PCM WAV file in seconds, or a negative value if unreadable. */
double reel_render_wav_seconds(const char *path);

#endif
