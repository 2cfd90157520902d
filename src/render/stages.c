/* The renderer's stages: ffmpeg and espeak-ng do the media work; this file
 * decides what they are asked. Text never enters a filter graph or a command
 * line as syntax: captions and spoken text go through files (drawtext
 * textfile= with expansion=none, espeak-ng -f), so no prompt can inject
 * filter options, format strings or shell syntax. */
#include "render/stages.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fs.h"
#include "render/layout.h"
#include "render/tools.h"

#define SPEECH_LEAD_SECONDS 0.25
#define SPEECH_TAIL_SECONDS 0.35
#define CANVAS_MARGIN 1.15 /* the keyframe canvas is this much larger than the frame, for camera moves */
#define FADE_SECONDS 0.4
#define MAX_ARGS 512

/* ---- small helpers ---- */

static int even_up(double v) {
  int i = (int)ceil(v);
  return i + (i & 1);
}

static int write_file(const char *path, const char *data, size_t len) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return REEL_EIO;
  int ok = fwrite(data, 1, len, f) == len;
  if (fclose(f) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return REEL_EIO;
  }
  return 0;
}

static int write_json(const char *path, json_t *value) {
  char *text = json_dumps(value, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (!text) return REEL_ENOMEM;
  int rc = write_file(path, text, strlen(text));
  free(text);
  return rc;
}

static int fail(reel_render_job *job, int rc, const char *fmt, const char *detail) {
  snprintf(job->err, sizeof job->err, fmt, detail);
  return rc ? rc : REEL_EIO;
}

/* An argv under construction: strings are copied into one arena. */
typedef struct {
  char *argv[MAX_ARGS + 1];
  int argc;
  reel_buf arena[MAX_ARGS];
} args;

static void args_init(args *a) {
  memset(a, 0, sizeof *a);
}

static void arg(args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(args *a, const char *fmt, ...) {
  if (a->argc >= MAX_ARGS) return;
  reel_buf *b = &a->arena[a->argc];
  reel_buf_init(b, 1 << 20);
  va_list ap;
  va_start(ap, fmt);
  reel_buf_vprintf(b, fmt, ap);
  va_end(ap);
  a->argv[a->argc++] = b->data ? b->data : "";
  a->argv[a->argc] = NULL;
}

static void args_free(args *a) {
  for (int i = 0; i < a->argc; i++) reel_buf_free(&a->arena[i]);
  a->argc = 0;
}

static void ffmpeg_prefix(args *a) {
  arg(a, "ffmpeg");
  arg(a, "-nostdin");
  arg(a, "-hide_banner");
  arg(a, "-loglevel");
  arg(a, "error");
  arg(a, "-y");
}

/* One program run per scene, built in a loop and then run together. */
typedef struct {
  int n;
  args *a;
  reel_tool_run *runs;
  char (*logs)[64];
} batch;

static int batch_init(batch *b, int n) {
  b->n = n;
  b->a = calloc((size_t)n, sizeof *b->a);
  b->runs = calloc((size_t)n, sizeof *b->runs);
  b->logs = calloc((size_t)n, sizeof *b->logs);
  return b->a && b->runs && b->logs ? 0 : REEL_ENOMEM;
}

/* Starts scene i's argv (its output going to logs/<name>_NNN.log) and returns it. */
static args *batch_args(batch *b, int i, const char *name) {
  args_init(&b->a[i]);
  snprintf(b->logs[i], sizeof b->logs[i], "logs/%s_%03d.log", name, i + 1);
  b->runs[i] = (reel_tool_run){.argv = b->a[i].argv, .log_path = b->logs[i]};
  return &b->a[i];
}

static int batch_run(batch *b, reel_render_job *job, reel_tools_progress progress, void *data) {
  return reel_tools_run(b->runs, b->n, job->opt.parallel_segments, progress, data, job->err, sizeof job->err);
}

static void batch_free(batch *b) {
  for (int i = 0; b->a && i < b->n; i++) args_free(&b->a[i]);
  free(b->a);
  free(b->runs);
  free(b->logs);
}

static void progress_line(int percent, const char *stage) {
  printf("REEL_PROGRESS %d %s\n", percent, stage);
  fflush(stdout);
}

/* Replaces control characters (newlines included) with spaces: one line of plain text. */
static char *plain_text(const char *s) {
  char *out = strdup(s);
  if (!out) return NULL;
  for (char *p = out; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
  return out;
}

/* ---- captions ---- */

static void vtt_time(double s, char *out, size_t n) {
  long long ms = llround(s * 1000);
  snprintf(out, n, "%02lld:%02lld:%02lld.%03lld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, ms % 1000);
}

int reel_render_vtt(const reel_plan *plan, reel_buf *out) {
  int rc = reel_buf_append_str(out, "WEBVTT\n");
  for (int i = 0; rc == 0 && i < plan->n_scenes; i++) {
    const reel_scene *s = &plan->scenes[i];
    char a[32], b[32];
    vtt_time(s->start, a, sizeof a);
    vtt_time(s->start + s->duration, b, sizeof b);
    rc = reel_buf_printf(out, "\n%d\n%s --> %s\n", i + 1, a, b);
    for (const char *p = s->text; rc == 0 && *p; p++) {
      if (*p == '&') rc = reel_buf_append_str(out, "&amp;");
      else if (*p == '<') rc = reel_buf_append_str(out, "&lt;");
      else if (*p == '>') rc = reel_buf_append_str(out, "&gt;");
      else if ((unsigned char)*p < 0x20) rc = reel_buf_append(out, " ", 1);
      else rc = reel_buf_append(out, p, 1);
    }
    if (rc == 0) rc = reel_buf_append(out, "\n", 1);
  }
  return rc;
}

double reel_render_wav_seconds(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  unsigned char h[12];
  double seconds = -1;
  if (fread(h, 1, 12, f) != 12 || memcmp(h, "RIFF", 4) != 0 || memcmp(h + 8, "WAVE", 4) != 0) goto out;
  unsigned byte_rate = 0;
  for (;;) {
    unsigned char c[8];
    if (fread(c, 1, 8, f) != 8) break;
    unsigned size = c[4] | c[5] << 8 | c[6] << 16 | (unsigned)c[7] << 24;
    if (memcmp(c, "fmt ", 4) == 0) {
      unsigned char fmt[16];
      if (size < 16 || fread(fmt, 1, 16, f) != 16) break;
      byte_rate = fmt[8] | fmt[9] << 8 | fmt[10] << 16 | (unsigned)fmt[11] << 24;
      if (fseek(f, (long)size - 16 + (size & 1), SEEK_CUR) != 0) break;
    } else if (memcmp(c, "data", 4) == 0) {
      long here = ftell(f);
      fseek(f, 0, SEEK_END);
      long avail = ftell(f) - here;
      if ((long)size > avail || size == 0xFFFFFFFFu) size = (unsigned)(avail > 0 ? avail : 0);
      if (byte_rate) seconds = (double)size / byte_rate;
      break;
    } else if (fseek(f, (long)size + (size & 1), SEEK_CUR) != 0) {
      break;
    }
  }
out:
  fclose(f);
  return seconds;
}

/* ---- stages ---- */

static int make_dirs(reel_render_job *job, const char *const dirs[]) {
  for (int i = 0; dirs[i]; i++)
    if (reel_fs_make_dirs(dirs[i], 0755) != 0) return fail(job, REEL_EIO, "cannot create %s in the workspace", dirs[i]);
  return 0;
}

static int save_plan(reel_render_job *job) {
  json_t *j = reel_plan_to_json(&job->plan);
  int rc = j ? write_json("plan.json", j) : REEL_ENOMEM;
  json_decref(j);
  return rc ? fail(job, rc, "cannot write %s", "plan.json") : 0;
}

int reel_render_stage_plan(reel_render_job *job) {
  reel_plan_options o;
  reel_plan_options_default(&o);
  o.prompt = job->opt.prompt;
  o.segment_duration_seconds = job->opt.segment_duration;
  o.max_scenes = job->opt.max_scenes;
  o.base_seed = job->opt.base_seed;
  o.fps = job->opt.fps;
  int rc = reel_plan_build(&o, &job->plan);
  if (rc) return fail(job, rc, "cannot plan scenes: %s", reel_strerror(rc));
  if (job->cache_dir) {
    char dir[4096], path[4300];
    snprintf(dir, sizeof dir, "%s/plans", job->cache_dir);
    snprintf(path, sizeof path, "%s/%s.json", dir, job->plan.hash);
    json_error_t jerr;
    json_t *cached = json_load_file(path, 0, &jerr);
    reel_plan from_cache;
    if (cached && reel_plan_from_json(cached, &from_cache) == 0 && strcmp(from_cache.hash, job->plan.hash) == 0) {
      reel_plan_free(&job->plan);
      job->plan = from_cache;
      job->plan_from_cache = 1;
    } else {
      if (cached && reel_plan_from_json(cached, &from_cache) == 0) reel_plan_free(&from_cache);
      json_t *j = reel_plan_to_json(&job->plan);
      if (j && reel_fs_make_dirs(dir, 0755) == 0) write_json(path, j); /* a cache: failure is not an error */
      json_decref(j);
    }
    json_decref(cached);
  }
  if (job->opt.voice) snprintf(job->plan.voice, sizeof job->plan.voice, "%s", job->opt.voice);
  printf("voice %s (%s; language detected: %s)\n", job->plan.voice, job->opt.voice ? "pipeline.voice" : "detected",
         job->plan.language);
  fflush(stdout);
  return save_plan(job);
}

static void colour(char *out, size_t n, uint32_t rgb) { snprintf(out, n, "0x%06X", rgb & 0xFFFFFF); }

void reel_render_job_close(reel_render_job *job) {
  if (job->fonts_open) reel_fontset_close(&job->fonts);
  job->fonts_open = 0;
}

/* Opens the fonts once per job; says once which optional fonts are missing. */
static int open_fonts(reel_render_job *job) {
  if (job->fonts_open) return 0;
  char missing[512], err[768];
  if (reel_fontset_open(&job->fonts, missing, sizeof missing, err, sizeof err) != 0)
    return fail(job, REEL_ENOTFOUND, "%s", err);
  job->fonts_open = 1;
  if (missing[0]) printf("fonts not installed, their characters are left out of the picture: %s\n", missing);
  return 0;
}

reel_camera_path reel_render_camera_path(int w, int h, reel_camera_move move) {
  reel_camera_path c;
  c.cw = even_up(w * CANVAS_MARGIN);
  c.ch = even_up(h * CANVAS_MARGIN);
  int dx = c.cw - w, dy = c.ch - h;
  c.x0 = c.x1 = dx / 2;
  c.y0 = c.y1 = dy / 2;
  switch (move) {
  case REEL_CAMERA_PAN_LEFT: c.x0 = dx, c.x1 = 0; break;
  case REEL_CAMERA_PAN_RIGHT: c.x0 = 0, c.x1 = dx; break;
  case REEL_CAMERA_PAN_UP: c.y0 = dy, c.y1 = 0; break;
  case REEL_CAMERA_PAN_DOWN: c.y0 = 0, c.y1 = dy; break;
  default: c.x0 = 0, c.x1 = dx, c.y0 = 0, c.y1 = dy; break;
  }
  return c;
}

void reel_render_safe_area(int iw, int ih, int w, int h, reel_camera_move move, double rect[4]) {
  reel_camera_path c = reel_render_camera_path(w, h, move);
  /* scale=cw:ch:force_original_aspect_ratio=increase, then a centred crop to cw x ch */
  double s = fmax((double)c.cw / iw, (double)c.ch / ih);
  double ox = (iw * s - c.cw) / 2, oy = (ih * s - c.ch) / 2;
  double left = (c.x0 > c.x1 ? c.x0 : c.x1) + ox, right = (c.x0 < c.x1 ? c.x0 : c.x1) + w + ox;
  double top = (c.y0 > c.y1 ? c.y0 : c.y1) + oy, bottom = (c.y0 < c.y1 ? c.y0 : c.y1) + h + oy;
  left /= s, right /= s, top /= s, bottom /= s;
  double margin = fmax(4, 0.04 * fmin(right - left, bottom - top));
  rect[0] = ceil(left + margin);
  rect[1] = ceil(top + margin);
  rect[2] = floor(right - margin) - rect[0];
  rect[3] = floor(bottom - margin) - rect[1];
}

/* Appends one drawtext per run of the layout (each run's text in its own file
 * scenes/<stem>_RR.txt) to graph, and writes scenes/<stem>.json describing the
 * layout. extra is appended to every drawtext's options. */
static int draw_layout(reel_render_job *job, const reel_text_layout *l, const char *stem, const char *fg,
                       const char *extra, const double area[4], reel_buf *graph) {
  json_t *runs = json_array();
  int rc = runs ? 0 : REEL_ENOMEM;
  for (int r = 0; r < l->n_runs && rc == 0; r++) {
    const reel_text_run *run = &l->runs[r];
    char path[96];
    snprintf(path, sizeof path, "scenes/%s_%02d.txt", stem, r + 1);
    rc = write_file(path, run->text, strlen(run->text));
    if (rc) break;
    /* drawtext puts the tallest glyph's top at y: y = baseline - ascent puts every run on its baseline */
    reel_buf_printf(graph,
                    "%sdrawtext=fontfile=%s:textfile=%s:expansion=none:fontsize=%d:fontcolor=%s:x=%.0f:y=%.0f-ascent%s",
                    graph->len ? "," : "", job->fonts.path[run->font], path, l->font_size, fg, run->x, run->baseline,
                    extra);
    json_array_append_new(runs, json_pack("{s:s, s:s, s:f, s:f}", "font", job->fonts.path[run->font], "text",
                                          run->text, "x", run->x, "baseline", run->baseline));
  }
  if (rc == 0) {
    json_t *j = json_pack("{s:i, s:i, s:i, s:b, s:[f,f,f,f], s:[f,f,f,f], s:O}", "font_size", l->font_size, "lines",
                          l->lines, "dropped", l->dropped, "truncated", l->truncated, "area", area[0], area[1],
                          area[2], area[3], "extent", l->left, l->top, l->right - l->left, l->bottom - l->top, "runs",
                          runs);
    char path[96];
    snprintf(path, sizeof path, "scenes/%s.json", stem);
    rc = j ? write_json(path, j) : REEL_ENOMEM;
    json_decref(j);
  }
  json_decref(runs);
  if (rc == 0 && l->dropped)
    printf("scene %s: %d characters no installed font has are left out of the picture\n", stem, l->dropped);
  return rc ? fail(job, rc, "cannot write the layout of scene %s", stem) : 0;
}

int reel_render_stage_keyframes(reel_render_job *job) {
  static const char *const dirs[] = {"scenes", "keyframes", "logs", NULL};
  int rc = make_dirs(job, dirs);
  if (rc || (rc = open_fonts(job))) return rc;
  int n = job->plan.n_scenes, w = job->opt.image_width, h = job->opt.image_height;
  batch b;
  if (batch_init(&b, n) != 0) {
    batch_free(&b);
    return fail(job, REEL_ENOMEM, "%s", "out of memory");
  }
  for (int i = 0; i < n && rc == 0; i++) {
    const reel_scene *s = &job->plan.scenes[i];
    double area[4];
    reel_render_safe_area(w, h, job->opt.width, job->opt.height, s->camera, area);
    int max_size = (int)fmin(area[3] / 3, area[2] / 8);
    reel_text_layout l;
    if ((rc = reel_layout_text(s->text, &job->fonts, area[0], area[1], area[2] - 2, area[3] - 2, max_size, &l))) {
      fail(job, rc, "%s", "out of memory laying out text");
      break;
    }
    char stem[16], c0[16], c1[16], fg[16], extra[96];
    snprintf(stem, sizeof stem, "%03d", i + 1);
    colour(c0, sizeof c0, s->background[0]);
    colour(c1, sizeof c1, s->background[1]);
    colour(fg, sizeof fg, s->text_color);
    snprintf(extra, sizeof extra, ":shadowx=2:shadowy=2:shadowcolor=0x000000@0.35");
    reel_buf graph;
    reel_buf_init(&graph, 1 << 20);
    rc = draw_layout(job, &l, stem, fg, extra, area, &graph);
    reel_text_layout_free(&l);
    args *cmd = batch_args(&b, i, "keyframe");
    ffmpeg_prefix(cmd);
    arg(cmd, "-f");
    arg(cmd, "lavfi");
    arg(cmd, "-i");
    /* corner to corner, inside the frame: ffmpeg picks random points (and a random
     * seed) for coordinates outside it, and the keyframe must be deterministic */
    arg(cmd, "gradients=s=%dx%d:c0=%s:c1=%s:x0=0:y0=0:x1=%d:y1=%d:n=2:seed=%u", w, h, c0, c1, w - 1, h - 1,
        (unsigned)(s->background[0] ^ s->background[1]));
    arg(cmd, "-frames:v");
    arg(cmd, "1");
    arg(cmd, "-vf");
    arg(cmd, "%s", graph.len ? graph.data : "null");
    reel_buf_free(&graph);
    arg(cmd, "-compression_level");
    arg(cmd, "1");
    arg(cmd, "keyframes/%03d.png", i + 1);
  }
  if (rc == 0) rc = batch_run(&b, job, NULL, NULL);
  batch_free(&b);
  return rc;
}

int reel_render_stage_voiceover(reel_render_job *job) {
  static const char *const dirs[] = {"voice", "logs", NULL};
  int rc = make_dirs(job, dirs);
  if (rc) return rc;
  int n = job->plan.n_scenes;
  batch b;
  if (batch_init(&b, n) != 0) {
    batch_free(&b);
    return fail(job, REEL_ENOMEM, "%s", "out of memory");
  }
  for (int i = 0; i < n && rc == 0; i++) {
    char path[64];
    snprintf(path, sizeof path, "voice/%03d.txt", i + 1);
    char *text = plain_text(job->plan.scenes[i].text);
    rc = text ? write_file(path, text, strlen(text)) : REEL_ENOMEM;
    free(text);
    args *cmd = batch_args(&b, i, "voice");
    arg(cmd, "espeak-ng");
    arg(cmd, "-v");
    arg(cmd, "%s", job->plan.voice);
    arg(cmd, "-s");
    arg(cmd, "165");
    arg(cmd, "-w");
    arg(cmd, "voice/%03d.wav", i + 1);
    arg(cmd, "-f");
    arg(cmd, "%s", path);
  }
  if (rc == 0) rc = batch_run(&b, job, NULL, NULL);
  else fail(job, rc, "cannot write %s", "voice/*.txt");
  batch_free(&b);
  if (rc) return rc;
  /* a scene lasts at least as long as its speech */
  for (int i = 0; i < n; i++) {
    char path[64];
    snprintf(path, sizeof path, "voice/%03d.wav", i + 1);
    double seconds = reel_render_wav_seconds(path);
    if (seconds < 0) return fail(job, REEL_EIO, "espeak-ng wrote no readable %s", path);
    reel_plan_stretch_scene(&job->plan, i, SPEECH_LEAD_SECONDS + seconds + SPEECH_TAIL_SECONDS);
  }
  return save_plan(job);
}

typedef struct {
  int first, last;
} progress_span;

static void clip_progress(int finished, int total, void *data) {
  const progress_span *span = data;
  progress_line(span->first + (span->last - span->first) * finished / total, "generation");
}

int reel_render_stage_generation(reel_render_job *job) {
  static const char *const dirs[] = {"clips", "logs", NULL};
  int rc = make_dirs(job, dirs);
  if (rc) return rc;
  int n = job->plan.n_scenes, w = job->opt.width, h = job->opt.height;
  double fps = job->opt.fps;
  if (job->opt.burn_captions && (rc = open_fonts(job))) return rc;
  batch b;
  if (batch_init(&b, n) != 0) {
    batch_free(&b);
    return fail(job, REEL_ENOMEM, "%s", "out of memory");
  }
  for (int i = 0; i < n && rc == 0; i++) {
    const reel_scene *s = &job->plan.scenes[i];
    long frames = lround(s->duration * fps);
    if (frames < 2) frames = 2;
    int fade = (int)lround(FADE_SECONDS * fps);
    if (fade > frames / 3) fade = (int)(frames / 3);
    reel_camera_path cam = reel_render_camera_path(w, h, s->camera);
    int cw = cam.cw, ch = cam.ch, x0 = cam.x0, x1 = cam.x1, y0 = cam.y0, y1 = cam.y1;
    char fades[96] = ""; /* none when a fade would be shorter than one frame (very low fps) */
    if (fade >= 1) snprintf(fades, sizeof fades, ",fade=t=in:s=0:n=%d,fade=t=out:s=%ld:n=%d", fade, frames - fade, fade);
    reel_buf burn;
    reel_buf_init(&burn, 1 << 20);
    if (job->opt.burn_captions) {
      /* a band at the bottom of the frame, drawn after the camera move: on a dark box */
      double area[4] = {0.05 * w, h - h / 14.0 - h / 4.0, 0.9 * w, h / 4.0};
      reel_text_layout l;
      rc = reel_layout_text(s->text, &job->fonts, area[0], area[1], area[2], area[3], h / 16, &l);
      if (rc) {
        fail(job, rc, "%s", "out of memory laying out captions");
        reel_buf_free(&burn);
        break;
      }
      int pad = h / 60 + 4;
      if (l.n_runs)
        reel_buf_printf(&burn, ",drawbox=x=%.0f:y=%.0f:w=%.0f:h=%.0f:color=0x000000@0.55:t=fill", l.left - pad,
                        l.top - pad, l.right - l.left + 2 * pad, l.bottom - l.top + 2 * pad);
      reel_buf runs;
      reel_buf_init(&runs, 1 << 20);
      char stem[16];
      snprintf(stem, sizeof stem, "%03d_burn", i + 1);
      rc = draw_layout(job, &l, stem, "white", "", area, &runs);
      reel_text_layout_free(&l);
      if (runs.len) reel_buf_printf(&burn, ",%s", runs.data);
      reel_buf_free(&runs);
      if (rc) {
        reel_buf_free(&burn);
        break;
      }
    }
    args *cmd = batch_args(&b, i, "clip");
    ffmpeg_prefix(cmd);
    arg(cmd, "-i");
    arg(cmd, "keyframes/%03d.png", i + 1);
    arg(cmd, "-filter_complex");
    arg(cmd,
        "[0:v]scale=%d:%d:force_original_aspect_ratio=increase,crop=%d:%d,format=yuv420p,loop=loop=%ld:size=1:start=0,"
        "setpts=N/(%g*TB),crop=%d:%d:x='%d+(%d)*n/%ld':y='%d+(%d)*n/%ld'%s%s[v]",
        cw, ch, cw, ch, frames - 1, fps, w, h, x0, x1 - x0, frames - 1, y0, y1 - y0, frames - 1, fades,
        burn.data ? burn.data : "");
    reel_buf_free(&burn);
    arg(cmd, "-map");
    arg(cmd, "[v]");
    arg(cmd, "-frames:v");
    arg(cmd, "%ld", frames);
    arg(cmd, "-r");
    arg(cmd, "%g", fps);
    arg(cmd, "-c:v");
    arg(cmd, "libx264");
    arg(cmd, "-preset");
    arg(cmd, "superfast");
    arg(cmd, "-crf");
    arg(cmd, "23");
    arg(cmd, "-pix_fmt");
    arg(cmd, "yuv420p");
    arg(cmd, "-an");
    arg(cmd, "clips/%03d.mp4", i + 1);
  }
  progress_span span = {35, 80};
  if (rc == 0) rc = batch_run(&b, job, clip_progress, &span);
  batch_free(&b);
  return rc;
}

int reel_render_stage_captions(reel_render_job *job) {
  static const char *const dirs[] = {"output", NULL};
  int rc = make_dirs(job, dirs);
  if (rc) return rc;
  reel_buf vtt;
  reel_buf_init(&vtt, 16 << 20);
  rc = reel_render_vtt(&job->plan, &vtt);
  if (rc == 0) rc = write_file("output/captions.vtt", vtt.data, vtt.len);
  reel_buf_free(&vtt);
  return rc ? fail(job, rc, "cannot write %s", "output/captions.vtt") : 0;
}

/* ffprobe's view of the result must match the plan before we call it done. */
static int verify(reel_render_job *job) {
  args a;
  args_init(&a);
  arg(&a, "ffprobe");
  arg(&a, "-v");
  arg(&a, "error");
  arg(&a, "-print_format");
  arg(&a, "json");
  arg(&a, "-show_entries");
  arg(&a, "format=duration:stream=codec_type,codec_name,width,height,pix_fmt");
  arg(&a, "output/final_video.mp4");
  int rc = reel_tool_run_one(a.argv, "logs/ffprobe.json", job->err, sizeof job->err);
  args_free(&a);
  if (rc) return rc;
  json_error_t jerr;
  json_t *probe = json_load_file("logs/ffprobe.json", 0, &jerr);
  const char *problem = NULL;
  char detail[256];
  int video = 0, audio = 0;
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(probe, "streams"), i, s) {
    const char *type = json_string_value(json_object_get(s, "codec_type"));
    const char *codec = json_string_value(json_object_get(s, "codec_name"));
    if (type && strcmp(type, "video") == 0) {
      const char *pix = json_string_value(json_object_get(s, "pix_fmt"));
      video = codec && strcmp(codec, "h264") == 0 && pix && strcmp(pix, "yuv420p") == 0 &&
              json_integer_value(json_object_get(s, "width")) == job->opt.width &&
              json_integer_value(json_object_get(s, "height")) == job->opt.height;
    } else if (type && strcmp(type, "audio") == 0) {
      audio = codec && strcmp(codec, "aac") == 0;
    }
  }
  const char *duration_text = json_string_value(json_object_get(json_object_get(probe, "format"), "duration"));
  double duration = duration_text ? atof(duration_text) : -1;
  if (!probe) problem = "ffprobe's output is not JSON";
  else if (!video) problem = "no H.264 yuv420p video stream of the configured size";
  else if (!audio) problem = "no AAC audio stream";
  else if (fabs(duration - job->plan.total_duration) > 0.1) {
    snprintf(detail, sizeof detail, "its duration is %.3f s but the plan says %.3f s", duration,
             job->plan.total_duration);
    problem = detail;
  }
  json_decref(probe);
  return problem ? fail(job, REEL_EIO, "the rendered video failed its check: %s", problem) : 0;
}

int reel_render_stage_stitch(reel_render_job *job) {
  static const char *const dirs[] = {"output", "logs", NULL};
  int rc = make_dirs(job, dirs);
  if (rc) return rc;
  int n = job->plan.n_scenes;
  reel_buf list, graph;
  reel_buf_init(&list, 1 << 20);
  reel_buf_init(&graph, 1 << 20);
  for (int i = 0; i < n; i++) {
    /* the exact duration stops container rounding from adding up over many joins */
    long frames = lround(job->plan.scenes[i].duration * job->opt.fps);
    reel_buf_printf(&list, "file 'clips/%03d.mp4'\nduration %.6f\n", i + 1, (double)(frames < 2 ? 2 : frames) / job->opt.fps);
    reel_buf_printf(&graph,
                    "[%d:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=mono,adelay=%d,"
                    "apad=whole_dur=%.6f,atrim=end=%.6f,asetpts=N/SR/TB[a%d];\n",
                    i + 1, (int)(SPEECH_LEAD_SECONDS * 1000), job->plan.scenes[i].duration,
                    job->plan.scenes[i].duration, i);
  }
  for (int i = 0; i < n; i++) reel_buf_printf(&graph, "[a%d]", i);
  reel_buf_printf(&graph, "concat=n=%d:v=0:a=1[aout]\n", n); /* mono: the voiceover is one voice */
  rc = write_file("clips.txt", list.data, list.len);
  if (rc == 0) rc = write_file("audio.filter", graph.data, graph.len);
  reel_buf_free(&list);
  reel_buf_free(&graph);
  if (rc) return fail(job, rc, "cannot write %s", "clips.txt");
  args a;
  args_init(&a);
  ffmpeg_prefix(&a);
  arg(&a, "-f");
  arg(&a, "concat");
  arg(&a, "-safe");
  arg(&a, "0");
  arg(&a, "-i");
  arg(&a, "clips.txt");
  for (int i = 0; i < n && a.argc < MAX_ARGS - 20; i++) {
    arg(&a, "-i");
    arg(&a, "voice/%03d.wav", i + 1);
  }
  arg(&a, "-filter_complex_script");
  arg(&a, "audio.filter");
  arg(&a, "-map");
  arg(&a, "0:v");
  arg(&a, "-map");
  arg(&a, "[aout]");
  arg(&a, "-c:v");
  arg(&a, "copy");
  arg(&a, "-c:a");
  arg(&a, "aac");
  arg(&a, "-aac_coder");
  arg(&a, "fast");
  arg(&a, "-b:a");
  arg(&a, "96k");
  arg(&a, "-movflags");
  arg(&a, "+faststart");
  arg(&a, "output/final_video.mp4");
  if (a.argc >= MAX_ARGS) {
    args_free(&a);
    return fail(job, REEL_EINVAL, "%s", "too many scenes for one ffmpeg command line");
  }
  rc = reel_tool_run_one(a.argv, "logs/stitch.log", job->err, sizeof job->err);
  args_free(&a);
  if (rc) return rc;
  progress_line(95, "stitch");
  return verify(job);
}
