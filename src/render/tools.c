/* Child processes for the renderer: posix_spawn with output redirected to a
 * per-step log, a small parallel pool, and errors that quote the log's tail. */
#include "render/tools.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"

extern char **environ;

static int on_path(const char *program) {
  const char *path = getenv("PATH");
  if (!path) path = "/usr/bin:/bin";
  char dir[4096];
  while (*path) {
    size_t n = strcspn(path, ":");
    snprintf(dir, sizeof dir, "%.*s/%s", (int)n, path, program);
    if (access(dir, X_OK) == 0) return 1;
    path += n;
    if (*path == ':') path++;
  }
  return 0;
}

int reel_render_check_tools(char *err, size_t errlen) {
  static const struct { const char *program, *package; } tools[] = {
#define REEL_TOOL_ENTRY_(name, program, package) {program, package},
      REEL_RENDER_TOOL_MAP(REEL_TOOL_ENTRY_)
#undef REEL_TOOL_ENTRY_
  };
  for (size_t i = 0; i < sizeof tools / sizeof *tools; i++) {
    if (!on_path(tools[i].program)) {
      snprintf(err, errlen, "%s is not installed: install the Debian package %s", tools[i].program, tools[i].package);
      return REEL_ENOTFOUND;
    }
  }
  if (access(REEL_RENDER_FONT, R_OK) != 0) {
    snprintf(err, errlen, "the font %s is missing: install the Debian package %s", REEL_RENDER_FONT,
             REEL_RENDER_FONT_PACKAGE);
    return REEL_ENOTFOUND;
  }
  return 0;
}

static int start(reel_tool_run *r) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, r->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  int rc = posix_spawnp(&r->pid, r->argv[0], &fa, NULL, r->argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  r->done = 0;
  if (rc != 0) {
    r->pid = 0;
    errno = rc;
    return REEL_EIO;
  }
  return 0;
}

/* The last few lines of a log, joined with " | ". */
static void log_tail(const char *path, char *out, size_t n) {
  out[0] = '\0';
  FILE *f = fopen(path, "r");
  if (!f) return;
  char lines[5][400];
  int count = 0;
  char line[400];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (!line[0]) continue;
    snprintf(lines[count % 5], sizeof lines[0], "%s", line);
    count++;
  }
  fclose(f);
  size_t used = 0;
  for (int i = count > 5 ? count - 5 : 0; i < count; i++) {
    int w = snprintf(out + used, n - used, "%s%s", used ? " | " : "", lines[i % 5]);
    if (w < 0 || (size_t)w >= n - used) break;
    used += (size_t)w;
  }
}

static void describe_failure(const reel_tool_run *r, char *err, size_t errlen) {
  char tail[1200];
  log_tail(r->log_path, tail, sizeof tail);
  if (WIFSIGNALED(r->status))
    snprintf(err, errlen, "%s was killed by signal %d%s%s", r->argv[0], WTERMSIG(r->status), tail[0] ? ": " : "", tail);
  else
    snprintf(err, errlen, "%s failed (exit %d)%s%s", r->argv[0], WEXITSTATUS(r->status), tail[0] ? ": " : "", tail);
}

int reel_tools_run(reel_tool_run *runs, int n, int parallel, reel_tools_progress progress, void *data, char *err,
                   size_t errlen) {
  if (parallel < 1) parallel = 1;
  int next = 0, running = 0, failed = -1, finished = 0;
  while ((next < n && failed < 0) || running > 0) {
    while (failed < 0 && next < n && running < parallel) {
      if (start(&runs[next]) != 0) {
        snprintf(err, errlen, "cannot start %s: %s", runs[next].argv[0], strerror(errno));
        failed = next;
        runs[next].done = 1;
        next++;
        break;
      }
      running++;
      next++;
    }
    if (running == 0) break;
    int status;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < next; i++) {
      if (runs[i].pid != pid || runs[i].done) continue;
      runs[i].done = 1;
      runs[i].status = status;
      running--;
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        finished++;
        if (progress && failed < 0) progress(finished, n, data);
      } else if (failed < 0) {
        failed = i;
        describe_failure(&runs[i], err, errlen);
        for (int k = 0; k < next; k++)
          if (!runs[k].done && runs[k].pid > 0) kill(runs[k].pid, SIGTERM);
      }
    }
  }
  return failed < 0 ? 0 : REEL_EIO;
}

int reel_tool_run_one(char *const argv[], const char *log_path, char *err, size_t errlen) {
  reel_tool_run r = {.argv = argv, .log_path = log_path};
  return reel_tools_run(&r, 1, 1, NULL, NULL, err, errlen);
}
