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
#include "render/tools.h"

#define SPEECH_LEAD_SECONDS 0.25
#define SPEECH_TAIL_SECONDS 0.35
#define CANVAS_MARGIN 1.15 /* the keyframe canvas is this much larger than the frame, for camera moves */
#define FADE_SECONDS 0.4
#define MAX_ARGS 512

/* ---- small helpers ---- */

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

/* ---- text layout ---- */

static unsigned decode_utf8(const unsigned char *s, size_t n, size_t *len) {
  unsigned c = s[0];
  if (c < 0x80 || n < 2) return *len = 1, c;
  if ((c & 0xE0) == 0xC0) return *len = 2, ((c & 0x1F) << 6) | (s[1] & 0x3F);
  if ((c & 0xF0) == 0xE0 && n >= 3) return *len = 3, ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
  if ((c & 0xF8) == 0xF0 && n >= 4)
    return *len = 4, ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
  return *len = 1, c;
}

/* East Asian wide characters and emoji take about two columns and may wrap anywhere. */
static int is_wide(unsigned cp) {
  return (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
         (cp >= 0x1F300 && cp <= 0x1FAFF) || cp >= 0x20000;
}

typedef struct {
  size_t start, len; /* bytes */
  double columns;
  int space_before;
} token;

/* Splits into words and single wide characters. */
static int tokenize(const char *text, token **out) {
  size_t n = strlen(text), count = 0, cap = 16;
  token *t = malloc(cap * sizeof *t);
  if (!t) return -1;
  size_t i = 0;
  int space = 0;
  while (i < n) {
    size_t len;
    unsigned cp = decode_utf8((const unsigned char *)text + i, n - i, &len);
    if (cp == ' ' || cp == '\t' || cp == '\n') {
      space = 1;
      i += len;
      continue;
    }
    if (count == cap) {
      token *grown = realloc(t, (cap *= 2) * sizeof *t);
      if (!grown) return free(t), -1;
      t = grown;
    }
    token *k = &t[count++];
    k->start = i;
    k->space_before = space;
    space = 0;
    if (is_wide(cp)) {
      k->len = len;
      k->columns = 2;
      i += len;
      continue;
    }
    k->len = 0;
    k->columns = 0;
    while (i < n) {
      cp = decode_utf8((const unsigned char *)text + i, n - i, &len);
      if (cp == ' ' || cp == '\t' || cp == '\n' || is_wide(cp)) break;
      k->len += len;
      k->columns += 1;
      i += len;
    }
  }
  *out = t;
  return (int)count;
}

/* Lays tokens out in lines of at most max_columns; returns the line count and
 * appends the text to out when out is not NULL. */
static int layout(const char *text, const token *t, int n, double max_columns, reel_buf *out) {
  int lines = n > 0 ? 1 : 0;
  double used = 0;
  for (int i = 0; i < n; i++) {
    double need = t[i].columns + (used > 0 && t[i].space_before ? 1 : 0);
    if (used > 0 && used + need > max_columns) {
      if (out) reel_buf_append(out, "\n", 1);
      lines++;
      used = 0;
      need = t[i].columns;
    } else if (used > 0 && t[i].space_before && out) {
      reel_buf_append(out, " ", 1);
    }
    if (t[i].columns <= max_columns || used > 0) {
      if (out) reel_buf_append(out, text + t[i].start, t[i].len);
      used += need;
      continue;
    }
    /* a word longer than a line: break it at character boundaries */
    size_t pos = t[i].start, end = t[i].start + t[i].len;
    double col = 0;
    while (pos < end) {
      size_t len;
      decode_utf8((const unsigned char *)text + pos, end - pos, &len);
      if (col + 1 > max_columns) {
        if (out) reel_buf_append(out, "\n", 1);
        lines++;
        col = 0;
      }
      if (out) reel_buf_append(out, text + pos, len);
      col += 1;
      pos += len;
    }
    used = col;
  }
  return lines;
}

int reel_render_wrap_caption(const char *text, int width, int height, reel_buf *out) {
  char *clean = plain_text(text);
  token *t = NULL;
  int n = clean ? tokenize(clean, &t) : -1;
  int size = height / 7 < width / 12 ? height / 7 : width / 12;
  if (size < 12) size = 12;
  if (n < 0) {
    free(clean);
    return size;
  }
  const double char_width = 0.62, line_height = 1.3; /* DejaVu Sans Bold, in font sizes */
  while (size > 12) {
    double max_columns = 0.86 * width / (char_width * size);
    int lines = layout(clean, t, n, max_columns, NULL);
    if (lines * line_height * size <= 0.78 * height) break;
    size = size * 9 / 10 < 12 ? 12 : size * 9 / 10;
  }
  layout(clean, t, n, 0.86 * width / (char_width * size), out);
  free(t);
  free(clean);
  return size;
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
  return save_plan(job);
}

static void colour(char *out, size_t n, uint32_t rgb) { snprintf(out, n, "0x%06X", rgb & 0xFFFFFF); }

int reel_render_stage_keyframes(reel_render_job *job) {
  static const char *const dirs[] = {"scenes", "keyframes", "logs", NULL};
  int rc = make_dirs(job, dirs);
  if (rc) return rc;
  int n = job->plan.n_scenes, w = job->opt.image_width, h = job->opt.image_height;
  batch b;
  if (batch_init(&b, n) != 0) {
    batch_free(&b);
    return fail(job, REEL_ENOMEM, "%s", "out of memory");
  }
  for (int i = 0; i < n && rc == 0; i++) {
    const reel_scene *s = &job->plan.scenes[i];
    reel_buf text;
    reel_buf_init(&text, 1 << 20);
    int size = reel_render_wrap_caption(s->text, w, h, &text);
    char path[64], c0[16], c1[16], fg[16];
    snprintf(path, sizeof path, "scenes/%03d.txt", i + 1);
    rc = write_file(path, text.data ? text.data : " ", text.data ? text.len : 1);
    reel_buf_free(&text);
    if (rc) break;
    colour(c0, sizeof c0, s->background[0]);
    colour(c1, sizeof c1, s->background[1]);
    colour(fg, sizeof fg, s->text_color);
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
    arg(cmd,
        "drawtext=fontfile=%s:textfile=scenes/%03d.txt:expansion=none:fontsize=%d:fontcolor=%s:line_spacing=%d:"
        "x=(w-text_w)/2:y=(h-text_h)/2:shadowx=2:shadowy=2:shadowcolor=0x000000@0.35",
        REEL_RENDER_FONT, i + 1, size, fg, size * 3 / 10);
    arg(cmd, "-compression_level");
    arg(cmd, "1");
    arg(cmd, "keyframes/%03d.png", i + 1);
  }
  if (rc == 0) rc = batch_run(&b, job, NULL, NULL);
  else fail(job, rc, "cannot write %s", "scenes/*.txt");
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
    arg(cmd, "en-us");
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

static int even_up(double v) {
  int i = (int)ceil(v);
  return i + (i & 1);
}

int reel_render_stage_generation(reel_render_job *job) {
  static const char *const dirs[] = {"clips", "logs", NULL};
  int rc = make_dirs(job, dirs);
  if (rc) return rc;
  int n = job->plan.n_scenes, w = job->opt.width, h = job->opt.height;
  int cw = even_up(w * CANVAS_MARGIN), ch = even_up(h * CANVAS_MARGIN);
  double fps = job->opt.fps;
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
    int dx = cw - w, dy = ch - h, x0 = dx / 2, x1 = dx / 2, y0 = dy / 2, y1 = dy / 2;
    switch (s->camera) {
    case REEL_CAMERA_PAN_LEFT: x0 = dx, x1 = 0; break;
    case REEL_CAMERA_PAN_RIGHT: x0 = 0, x1 = dx; break;
    case REEL_CAMERA_PAN_UP: y0 = dy, y1 = 0; break;
    case REEL_CAMERA_PAN_DOWN: y0 = 0, y1 = dy; break;
    default: x0 = 0, x1 = dx, y0 = 0, y1 = dy; break;
    }
    char fades[96] = ""; /* none when a fade would be shorter than one frame (very low fps) */
    if (fade >= 1) snprintf(fades, sizeof fades, ",fade=t=in:s=0:n=%d,fade=t=out:s=%ld:n=%d", fade, frames - fade, fade);
    reel_buf burn;
    reel_buf_init(&burn, 1 << 20);
    if (job->opt.burn_captions) {
      char path[64];
      snprintf(path, sizeof path, "scenes/%03d_burn.txt", i + 1);
      int size = reel_render_wrap_caption(s->text, w, h / 4, &burn);
      if (write_file(path, burn.data ? burn.data : " ", burn.data ? burn.len : 1) != 0) rc = REEL_EIO;
      reel_buf_reset(&burn);
      reel_buf_printf(&burn,
                      ",drawtext=fontfile=%s:textfile=%s:expansion=none:fontsize=%d:fontcolor=white:"
                      "line_spacing=%d:x=(w-text_w)/2:y=h-text_h-%d:box=1:boxcolor=0x000000@0.55:boxborderw=%d",
                      REEL_RENDER_FONT, path, size > h / 16 ? h / 16 : size, size / 4, h / 14, h / 60 + 4);
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
  else fail(job, rc, "cannot write %s", "scenes/*_burn.txt");
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
