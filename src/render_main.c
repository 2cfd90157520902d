/* reel-render: the built-in text-to-video pipeline, run by reeld as a job's
 * child process (pipeline.default_backend: local). It follows the command
 * backend's contract: read the effective config, work in the current
 * directory (the job's workspace), report REEL_PROGRESS and REEL_COST lines,
 * write output/final_video.mp4, exit 0 on success. Exit 69 (EX_UNAVAILABLE)
 * means a required program or font is missing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/error.h"
#include "config/config.h"
#include "render/options.h"
#include "render/stages.h"
#include "render/tools.h"

#define EXIT_UNAVAILABLE 69

typedef struct {
  const char *name;
  int (*run)(reel_render_job *job);
  int progress_before; /* REEL_PROGRESS when the stage starts */
} stage;

/* The seed's milestones in order; voiceover precedes generation because a
 * scene lasts at least as long as its speech. */
static const stage stages[] = {
    {"plan", reel_render_stage_plan, 2},
    {"keyframes", reel_render_stage_keyframes, 10},
    {"voiceover", reel_render_stage_voiceover, 22},
    {"generation", reel_render_stage_generation, 35},
    {"captions", reel_render_stage_captions, 82},
    {"stitch", reel_render_stage_stitch, 85},
};

static double cpu_seconds(void) {
  struct rusage self, children;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  return (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + children.ru_utime.tv_sec + children.ru_stime.tv_sec) +
         (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + children.ru_utime.tv_usec + children.ru_stime.tv_usec) /
             1e6;
}

int main(int argc, char **argv) {
  const char *config_path = NULL, *cache_dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) config_path = argv[++i];
    else if (strcmp(argv[i], "--cache-dir") == 0 && i + 1 < argc) cache_dir = argv[++i];
    else if (strcmp(argv[i], "--check") == 0) config_path = "";
    else {
      fprintf(stderr, "usage: reel-render --config pipeline_config.yaml [--cache-dir DIR] | --check\n");
      return 2;
    }
  }
  if (!config_path) {
    fprintf(stderr, "usage: reel-render --config pipeline_config.yaml [--cache-dir DIR] | --check\n");
    return 2;
  }
  char err[1024];
  if (reel_render_check_tools(err, sizeof err) != 0) {
    fprintf(stderr, "reel-render: %s\n", err);
    return EXIT_UNAVAILABLE;
  }
  if (!*config_path) return 0; /* --check */
  json_t *pipeline = NULL;
  if (reel_config_load_pipeline(config_path, &pipeline, err, sizeof err) != 0) {
    fprintf(stderr, "reel-render: %s\n", err);
    return 2;
  }
  reel_render_job job;
  memset(&job, 0, sizeof job);
  job.cache_dir = cache_dir;
  int rc = reel_render_options_from_json(pipeline, &job.opt, err, sizeof err);
  json_decref(pipeline);
  if (rc != 0) {
    fprintf(stderr, "reel-render: %s\n", err);
    return 2;
  }
  for (size_t i = 0; i < sizeof stages / sizeof *stages; i++) {
    printf("REEL_PROGRESS %d %s\n", stages[i].progress_before, stages[i].name);
    fflush(stdout);
    double before = cpu_seconds();
    rc = stages[i].run(&job);
    printf("REEL_COST %s %.3f cpu_seconds\n", stages[i].name, cpu_seconds() - before);
    fflush(stdout);
    if (rc != 0) {
      fprintf(stderr, "reel-render: %s stage failed: %s\n", stages[i].name, job.err);
      reel_render_job_close(&job);
      reel_plan_free(&job.plan);
      reel_render_options_free(&job.opt);
      return 1;
    }
    if (i == 0)
      printf("planned %d scenes, %.2f s%s\n", job.plan.n_scenes, job.plan.total_duration,
             job.plan_from_cache ? " (plan from cache)" : "");
  }
  printf("REEL_PROGRESS 99 stitch\nrendered %d scenes, %.2f s of %dx%d video at %g fps\n", job.plan.n_scenes,
         job.plan.total_duration, job.opt.width, job.opt.height, job.opt.fps);
  reel_render_job_close(&job);
  reel_plan_free(&job.plan);
  reel_render_options_free(&job.opt);
  return 0;
}
