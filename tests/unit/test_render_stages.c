/* The renderer's pure pieces: WebVTT, WAV timing, options,
 * and the REEL_COST line the scheduler reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "render/options.h"
#include "render/stages.h"
#include "worker/scheduler.h"

int main(void) {
  reel_buf b;
  reel_buf_init(&b, 1 << 20);
  /* WebVTT: one cue per scene, escaped, times from the plan */
  reel_scene scenes[2] = {
      {.text = "First <b>scene</b> & more", .start = 0, .duration = 5},
      {.text = "Second --> scene", .start = 5, .duration = 61.5},
  };
  reel_plan plan = {.scenes = scenes, .n_scenes = 2, .total_duration = 66.5, .fps = 24};
  reel_buf_reset(&b);
  CHECK_INT(reel_render_vtt(&plan, &b), 0);
  CHECK(strncmp(b.data, "WEBVTT\n", 7) == 0);
  CHECK(strstr(b.data, "00:00:00.000 --> 00:00:05.000\nFirst &lt;b&gt;scene&lt;/b&gt; &amp; more\n") != NULL);
  CHECK(strstr(b.data, "00:00:05.000 --> 00:01:06.500\nSecond --&gt; scene\n") != NULL);
  int arrows = 0;
  for (const char *p = b.data; (p = strstr(p, "-->")) != NULL; p++) arrows++;
  CHECK_INT(arrows, 2);
  reel_buf_free(&b);

  /* WAV timing: 16 kHz mono 16-bit, 8000 samples = 0.5 s */
  const char *wav = "/tmp/reel-test-voice.wav";
  FILE *f = fopen(wav, "wb");
  unsigned char header[44] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'A', 'V', 'E', 'f', 'm', 't', ' ', 16, 0, 0, 0, 1, 0, 1, 0,
                              0x80, 0x3E, 0, 0, 0x00, 0x7D, 0, 0, 2, 0, 16, 0, 'd', 'a', 't', 'a', 0x80, 0x3E, 0, 0};
  fwrite(header, 1, 44, f);
  static unsigned char samples[16000];
  fwrite(samples, 1, sizeof samples, f);
  fclose(f);
  double seconds = reel_render_wav_seconds(wav);
  CHECK(seconds > 0.4999 && seconds < 0.5001);
  remove(wav);
  CHECK(reel_render_wav_seconds("/nonexistent.wav") < 0);

  /* options from a pipeline config */
  reel_render_options o;
  char err[256];
  json_t *p = json_pack("{s:s, s:s, s:s, s:i, s:b}", "prompt", "hi", "size", "640*360", "image_size", "512x512",
                        "parallel_segments", 3, "burn_captions", 1);
  CHECK_INT(reel_render_options_from_json(p, &o, err, sizeof err), 0);
  CHECK(o.width == 640 && o.height == 360 && o.image_width == 512 && o.image_height == 512);
  CHECK(o.parallel_segments == 3 && o.burn_captions == 1 && o.fps == 24 && o.segment_duration == 5);
  reel_render_options_free(&o);
  json_object_set_new(p, "size", json_string("1280 by 720"));
  CHECK_INT(reel_render_options_from_json(p, &o, err, sizeof err), REEL_EINVAL);
  CHECK(strstr(err, "pipeline.size") != NULL);
  json_object_set_new(p, "size", json_string("1280*720"));
  json_object_del(p, "prompt");
  CHECK_INT(reel_render_options_from_json(p, &o, err, sizeof err), REEL_EINVAL);
  CHECK(strstr(err, "pipeline.prompt") != NULL);
  json_decref(p);
  int w, h;
  CHECK(reel_render_parse_size("1280*720", &w, &h) == 0 && w == 1280 && h == 720);
  CHECK(reel_render_parse_size("1281*720", &w, &h) != 0);
  CHECK(reel_render_parse_size("0x0", &w, &h) != 0);

  /* REEL_COST lines and the cost object */
  char stage[64], unit[64];
  double amount;
  CHECK(reel_scheduler_parse_cost("REEL_COST generation 1.250", 27, stage, sizeof stage, &amount, unit, sizeof unit));
  CHECK_STR(stage, "generation");
  CHECK_STR(unit, "cpu_seconds");
  CHECK(amount == 1.25);
  CHECK(reel_scheduler_parse_cost("REEL_COST veo 0.75 usd", 22, stage, sizeof stage, &amount, unit, sizeof unit));
  CHECK_STR(unit, "usd");
  CHECK(!reel_scheduler_parse_cost("REEL_COST x -1", 14, stage, sizeof stage, &amount, unit, sizeof unit));
  CHECK(!reel_scheduler_parse_cost("REEL_COST x nan", 15, stage, sizeof stage, &amount, unit, sizeof unit));
  CHECK(!reel_scheduler_parse_cost("REEL_COST a\"b 1", 15, stage, sizeof stage, &amount, unit, sizeof unit));
  CHECK(!reel_scheduler_parse_cost("REEL_COST x 1 usd extra", 23, stage, sizeof stage, &amount, unit, sizeof unit));
  json_t *cost = json_object();
  reel_scheduler_add_cost(cost, "plan", 0.5, "cpu_seconds");
  reel_scheduler_add_cost(cost, "plan", 0.25, "cpu_seconds");
  reel_scheduler_add_cost(cost, "stitch", 1.0, "cpu_seconds");
  json_t *cpu = json_object_get(cost, "cpu_seconds");
  CHECK(json_real_value(json_object_get(cpu, "total")) == 1.75);
  CHECK(json_real_value(json_object_get(json_object_get(cpu, "stages"), "plan")) == 0.75);
  json_decref(cost);
  return check_report();
}
