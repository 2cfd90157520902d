/* The per-run supervisor (see supervise.h). Linux-only: signalfd, prctl and /proc. */
#include "worker/supervise.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "worker/run_record.h"

/* Kill rounds after the pipeline ended: each kills what is found; stop when a
 * round finds nothing (bounded: a fork bomb cannot keep the supervisor here). */
#define MAX_KILL_ROUNDS 200

static void reap_children(pid_t pipeline, int *pipeline_status, int *pipeline_done) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid == pipeline) {
      *pipeline_status = status;
      *pipeline_done = 1;
    }
  }
}

/* Kills (SIGKILL) every process in our group and every child of ours (what
 * reparented to us as subreaper), except ourselves. Returns how many. */
static int kill_round(void) {
  pid_t self = getpid(), group = getpgrp();
  DIR *proc = opendir("/proc");
  if (!proc) {
    kill(-group, SIGKILL); /* no /proc: the group at least, ourselves included */
    return 0;
  }
  int found = 0;
  struct dirent *e;
  while ((e = readdir(proc)) != NULL) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 1 || pid == (long)self) continue;
    pid_t pgrp, ppid;
    char state;
    if (reel_run_record_proc_stat((pid_t)pid, NULL, &pgrp, &ppid, &state) != 0) continue;
    if (pgrp != group && ppid != self) continue;
    if (state == 'Z') continue; /* dead, waiting to be reaped */
    kill((pid_t)pid, SIGKILL);
    found++;
  }
  closedir(proc);
  return found;
}

/* True when the supervisor has no child left, so no descendant either: a
 * subreaper inherits every orphan, and a live descendant has a live ancestor
 * among its children. Nothing else can be in its process group, since reeld
 * starts it as the leader of a session of its own. (The common case, and the
 * cheap one: no /proc scan for a pipeline that left nothing behind.) */
static int no_children_left(void) {
  int status;
  return waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD;
}

/* Ends every process the pipeline left behind and reaps them. */
static void kill_leftovers(pid_t pipeline, int *pipeline_status, int *pipeline_done) {
  struct timespec pause = {0, 2 * 1000 * 1000};
  for (int round = 0; round < MAX_KILL_ROUNDS; round++) {
    if (*pipeline_done && no_children_left()) break;
    int found = kill_round();
    reap_children(pipeline, pipeline_status, pipeline_done);
    if (found == 0) break;
    nanosleep(&pause, NULL);
    reap_children(pipeline, pipeline_status, pipeline_done);
  }
}

static void exit_like(int status) {
  if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
    raise(sig);
    _exit(128 + sig);
  }
  _exit(1);
}

int reel_supervise_main(char **argv) {
  if (!argv || !argv[0]) {
    fprintf(stderr, "reeld %s: no program given\n", REEL_SUPERVISE_ARG);
    _exit(2);
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  sigset_t handled, none;
  sigemptyset(&none);
  sigemptyset(&handled);
  sigaddset(&handled, SIGCHLD);
  /* sent to the whole group by reeld (stop, cancel, timeout): the pipeline got
   * it too; the supervisor waits for it to end */
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGHUP);
  sigaddset(&handled, SIGQUIT);
  sigprocmask(SIG_BLOCK, &handled, NULL);
  int sfd = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  int report[2];
  if (sfd < 0 || pipe2(report, O_CLOEXEC) != 0) {
    fprintf(stderr, "reeld %s: %s\n", REEL_SUPERVISE_ARG, strerror(errno));
    _exit(127);
  }
  pid_t pipeline = fork();
  if (pipeline < 0) {
    fprintf(stderr, "cannot start %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  if (pipeline == 0) {
    sigprocmask(SIG_SETMASK, &none, NULL);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) dup2(devnull, 0); /* the pipeline's stdin, not reeld's socket */
    execvp(argv[0], argv);
    int e = errno;
    ssize_t w = write(report[1], &e, sizeof e);
    (void)w;
    _exit(127);
  }
  close(report[1]);
  int exec_errno = 0;
  ssize_t got;
  do got = read(report[0], &exec_errno, sizeof exec_errno);
  while (got < 0 && errno == EINTR);
  close(report[0]);
  if (got == (ssize_t)sizeof exec_errno) fprintf(stderr, "cannot start %s: %s\n", argv[0], strerror(exec_errno));

  int status = 0, done = 0, reeld_gone = 0;
  while (!done && !reeld_gone) {
    struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) {
      char buf[64];
      ssize_t n = read(0, buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) reeld_gone = 1;
      if (fds[0].revents & (POLLHUP | POLLERR | POLLNVAL) && n <= 0) reeld_gone = 1;
    }
    if (fds[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
      }
      reap_children(pipeline, &status, &done);
    }
  }
  /* the pipeline ended, or reeld is gone: nothing it started may stay */
  if (!done) kill(pipeline, SIGKILL);
  kill_leftovers(pipeline, &status, &done);
  if (reeld_gone || !done) _exit(1);
  exit_like(status);
  return 1;
}
