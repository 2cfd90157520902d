/* A supervised child process: started in its own session and process group,
 * its stdout and stderr delivered line by line, stoppable as a whole group
 * (grandchildren included) with SIGTERM then SIGKILL after a grace period.
 * When the leader exits, whatever it left running in its group is killed, so
 * nothing a job started outlives it; a process that left the group (setsid)
 * and kept the output pipes open is no longer read after a short drain.
 * With a supervisor set (reel_child_set_supervisor; reeld does), the group is
 * led by a per-run supervisor (worker/supervise.h) that kills it when reeld
 * dies, so no job outlives its reeld either. */
#ifndef REEL_CHILD_H
#define REEL_CHILD_H

#include <stdint.h>
#include <uv.h>

#include "common/buf.h"

typedef struct reel_child reel_child;

typedef struct {
  /* One line of output (without the newline, NUL-terminated, at most max_line
   * bytes; longer lines are cut and marked). is_stderr tells the stream. */
  void (*line)(reel_child *child, const char *line, size_t len, int is_stderr);
  /* Runs once, after the process exited and both streams are drained and
   * every handle is closed. exit_status is the exit code or -1; term_signal
   * the killing signal or 0. After this the child may be freed. */
  void (*done)(reel_child *child, int64_t exit_status, int term_signal);
} reel_child_callbacks;

struct reel_child {
  uv_process_t process;
  uv_pipe_t out, err;
  uv_pipe_t ctl;        /* supervised: the supervisor's stdin; EOF when reeld dies */
  int supervised;
  uv_timer_t kill_timer;
  reel_child_callbacks cb;
  void *data;
  size_t max_line;
  reel_buf partial[2];
  int pid;
  int exited;
  int64_t exit_status;
  int term_signal;
  int open_handles;
  int open_pipes;
  int stopping;
};

/* Makes every later spawn run through the supervisor: `exe __supervise
 * argv...` (exe is reeld itself, e.g. "/proc/self/exe"); NULL spawns argv
 * directly. Call once before spawning. */
void reel_child_set_supervisor(const char *exe);

/* Starts argv[0] (searched in PATH) with cwd, stdin from /dev/null. On failure
 * returns a reel error and writes why into err; done still runs once (with
 * exit_status -1) after libuv has closed the handles, so the owner frees the
 * child in one place either way. */
int reel_child_spawn(reel_child *child, uv_loop_t *loop, char *const argv[], const char *cwd, size_t max_line,
                     const reel_child_callbacks *cb, void *data, char *err, size_t errlen);
/* Sends SIGTERM to the whole process group now and SIGKILL after grace_ms.
 * Safe to call more than once and after exit. */
void reel_child_stop(reel_child *child, uint64_t grace_ms);

#endif
