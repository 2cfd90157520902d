/* The programs and font the built-in renderer needs, the Debian package that
 * provides each, and a way to run them: each in a child process (in the
 * renderer's own process group, so a job's cancel reaches it), output to a
 * log file, and on failure an error made of the log's last lines. */
#ifndef REEL_RENDER_TOOLS_H
#define REEL_RENDER_TOOLS_H

#include <stddef.h>
#include <sys/types.h>

#define REEL_RENDER_TOOL_MAP(XX)    \
  XX(FFMPEG, "ffmpeg", "ffmpeg")    \
  XX(FFPROBE, "ffprobe", "ffmpeg")  \
  XX(ESPEAK, "espeak-ng", "espeak-ng")

#define REEL_RENDER_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
#define REEL_RENDER_FONT_PACKAGE "fonts-dejavu-core"

/* Checks every program is on PATH and the font exists. 0, or REEL_ENOTFOUND
 * with "ffmpeg is not installed: install the Debian package ffmpeg" in err. */
int reel_render_check_tools(char *err, size_t errlen);

typedef struct {
  char *const *argv;
  const char *log_path; /* stdout and stderr go here (created/truncated) */
  pid_t pid;
  int done;
  int status;           /* wait status */
} reel_tool_run;

/* Called after each run that exits 0, with how many have so far. */
typedef void (*reel_tools_progress)(int finished, int total, void *data);

/* Runs runs[0..n) with at most parallel at once. Returns 0 when all exit 0.
 * On the first failure the others are stopped (SIGTERM) and reaped, and err
 * gets "<program> failed (exit N): <last lines of its log>". progress may be NULL. */
int reel_tools_run(reel_tool_run *runs, int n, int parallel, reel_tools_progress progress, void *data, char *err,
                   size_t errlen);
/* Runs one program (see reel_tools_run). */
int reel_tool_run_one(char *const argv[], const char *log_path, char *err, size_t errlen);

#endif
