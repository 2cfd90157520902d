/* The command-backend contract pieces: argv templating, REEL_PROGRESS lines, backoff. */
#include <stdlib.h>

#include "check.h"
#include "jobs/jobs.h"
#include "worker/scheduler.h"

int main(void) {
  char *tmpl[] = {"pipeline.py", "--config", "{config}", "--prompt={prompt}", "{workspace}/out", "{unknown}", NULL};
  char **argv = reel_scheduler_build_argv(tmpl, "/w/pipeline_config.yaml", "a \"quoted\" {prompt} $(rm -rf /)", "/w");
  CHECK_STR(argv[0], "pipeline.py");
  CHECK_STR(argv[2], "/w/pipeline_config.yaml");
  /* substitution is one pass: a prompt containing "{prompt}" is not expanded again */
  CHECK_STR(argv[3], "--prompt=a \"quoted\" {prompt} $(rm -rf /)");
  CHECK_STR(argv[4], "/w/out");
  CHECK_STR(argv[5], "{unknown}");
  CHECK(argv[6] == NULL);
  reel_scheduler_free_argv(argv);

  int p = -1;
  char stage[64];
  CHECK(reel_scheduler_parse_progress("REEL_PROGRESS 40 keyframes", 26, &p, stage, sizeof stage));
  CHECK_INT(p, 40);
  CHECK_STR(stage, "keyframes");
  CHECK(reel_scheduler_parse_progress("REEL_PROGRESS 100", 17, &p, stage, sizeof stage));
  CHECK_INT(p, 100);
  CHECK_STR(stage, "");
  CHECK(reel_scheduler_parse_progress("REEL_PROGRESS 0 plan  ", 22, &p, stage, sizeof stage));
  CHECK_STR(stage, "plan");
  CHECK(!reel_scheduler_parse_progress("REEL_PROGRESS 101 x", 19, &p, stage, sizeof stage));
  CHECK(!reel_scheduler_parse_progress("REEL_PROGRESS -1", 16, &p, stage, sizeof stage));
  CHECK(!reel_scheduler_parse_progress("REEL_PROGRESS x", 15, &p, stage, sizeof stage));
  CHECK(!reel_scheduler_parse_progress("REEL_PROGRESS 5x", 16, &p, stage, sizeof stage));
  CHECK(!reel_scheduler_parse_progress("progress 50", 11, &p, stage, sizeof stage));
  CHECK(!reel_scheduler_parse_progress("REEL_PROGRESS ", 14, &p, stage, sizeof stage));
  char long_stage[200];
  memset(long_stage, 'a', sizeof long_stage);
  memcpy(long_stage, "REEL_PROGRESS 7 ", 16);
  CHECK(reel_scheduler_parse_progress(long_stage, sizeof long_stage, &p, stage, sizeof stage));
  CHECK_INT((int)strlen(stage), 63);

  /* backoff: doubles from base, capped, half fixed + half jitter */
  CHECK_INT(reel_jobs_backoff_ms(1, 1000, 60000, 0.0), 500);
  CHECK_INT(reel_jobs_backoff_ms(1, 1000, 60000, 0.999999), 999);
  CHECK_INT(reel_jobs_backoff_ms(2, 1000, 60000, 0.0), 1000);
  CHECK_INT(reel_jobs_backoff_ms(3, 1000, 60000, 0.0), 2000);
  CHECK_INT(reel_jobs_backoff_ms(10, 1000, 60000, 0.0), 30000);
  CHECK_INT(reel_jobs_backoff_ms(1000, 1000, 60000, 0.5), 45000);
  CHECK_INT(reel_jobs_backoff_ms(0, 1000, 60000, 0.0), 500);
  return check_report();
}
