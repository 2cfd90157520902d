/* Process supervision on libuv. UV_PROCESS_DETACHED makes the child call
 * setsid(), so its pid is also its process group id and one kill(-pid, sig)
 * reaches every process the job started. */
#include "worker/child.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "worker/supervise.h"

static const char *supervisor_exe;

void reel_child_set_supervisor(const char *exe) { supervisor_exe = exe; }

static void maybe_done(reel_child *c) {
  if (c->open_handles > 0) return;
  reel_buf_free(&c->partial[0]);
  reel_buf_free(&c->partial[1]);
  c->cb.done(c, c->exit_status, c->term_signal);
}

static void on_handle_closed(uv_handle_t *h) {
  reel_child *c = h->data;
  c->open_handles--;
  maybe_done(c);
}

/* After the leader exits, output still arriving is read for this long; a
 * process that left the group (setsid) and kept the pipes open cannot hold the
 * job past it. */
#define DRAIN_AFTER_EXIT_MS 1000

static void close_timer_when_done(reel_child *c) {
  if (c->exited && c->open_pipes == 0 && !uv_is_closing((uv_handle_t *)&c->kill_timer)) {
    uv_timer_stop(&c->kill_timer);
    uv_close((uv_handle_t *)&c->kill_timer, on_handle_closed);
  }
}

static void on_pipe_closed(uv_handle_t *h) {
  reel_child *c = h->data;
  c->open_pipes--;
  close_timer_when_done(c);
  on_handle_closed(h);
}

static void kill_group(reel_child *c, int sig) {
  if (c->pid > 0) kill(-c->pid, sig);
}

static void emit_line(reel_child *c, int idx, const char *p, size_t n) {
  if (n > 0 && p[n - 1] == '\r') n--;
  c->cb.line(c, p, n, idx);
}

/* Splits data into lines; keeps the unfinished tail (capped at max_line). */
static void feed(reel_child *c, int idx, const char *data, size_t len) {
  reel_buf *part = &c->partial[idx];
  while (len > 0) {
    const char *nl = memchr(data, '\n', len);
    size_t take = nl ? (size_t)(nl - data) : len;
    size_t room = c->max_line > part->len ? c->max_line - part->len : 0;
    reel_buf_append(part, data, take < room ? take : room);
    if (nl) {
      emit_line(c, idx, part->data ? part->data : "", part->len);
      reel_buf_reset(part);
      data += take + 1;
      len -= take + 1;
    } else {
      break;
    }
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  static char shared[65536]; /* loop thread only; consumed before the next read */
  buf->base = shared;
  buf->len = sizeof shared;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  reel_child *c = s->data;
  int idx = (uv_pipe_t *)s == &c->err;
  if (nread > 0) {
    feed(c, idx, buf->base, (size_t)nread);
    return;
  }
  if (nread < 0) {
    if (c->partial[idx].len > 0) {
      emit_line(c, idx, c->partial[idx].data, c->partial[idx].len);
      reel_buf_reset(&c->partial[idx]);
    }
    uv_close((uv_handle_t *)s, on_pipe_closed);
  }
}

static void on_drain_deadline(uv_timer_t *t) {
  reel_child *c = t->data;
  static const char note[] = "[reel] a process outside the job's process group kept its output open; stopped reading it";
  c->cb.line(c, note, sizeof note - 1, 1);
  uv_pipe_t *pipes[2] = {&c->out, &c->err};
  for (int i = 0; i < 2; i++) {
    if (uv_is_closing((uv_handle_t *)pipes[i])) continue;
    if (c->partial[i].len > 0) {
      emit_line(c, i, c->partial[i].data, c->partial[i].len);
      reel_buf_reset(&c->partial[i]);
    }
    uv_read_stop((uv_stream_t *)pipes[i]);
    uv_close((uv_handle_t *)pipes[i], on_pipe_closed);
  }
}

static void on_process_exit(uv_process_t *p, int64_t exit_status, int term_signal) {
  reel_child *c = p->data;
  c->exited = 1;
  c->exit_status = term_signal ? -1 : exit_status;
  c->term_signal = term_signal;
  /* tear down anything the leader left behind in its group */
  kill_group(c, SIGKILL);
  c->pid = 0;
  uv_timer_stop(&c->kill_timer);
  uv_close((uv_handle_t *)p, on_handle_closed);
  if (c->supervised) uv_close((uv_handle_t *)&c->ctl, on_handle_closed);
  if (c->open_pipes > 0) uv_timer_start(&c->kill_timer, on_drain_deadline, DRAIN_AFTER_EXIT_MS, 0);
  else close_timer_when_done(c);
}

static void on_kill_timer(uv_timer_t *t) {
  reel_child *c = t->data;
  kill_group(c, SIGKILL);
}

/* Whether program (as execvp would find it from cwd) can be executed; on
 * failure writes why into err. The supervisor execs it, so a missing program
 * is reported here, at spawn, as it would be without one. */
static int check_program(const char *program, const char *cwd, char *err, size_t errlen) {
  char path[4400];
  int e = ENOENT;
  if (strchr(program, '/')) {
    if (program[0] == '/' || !cwd) snprintf(path, sizeof path, "%s", program);
    else snprintf(path, sizeof path, "%s/%s", cwd, program);
    if (access(path, X_OK) == 0) return 0;
    e = errno;
  } else {
    const char *dirs = getenv("PATH");
    if (!dirs) dirs = "/usr/local/bin:/usr/bin:/bin";
    while (*dirs) {
      size_t n = strcspn(dirs, ":");
      snprintf(path, sizeof path, "%.*s/%s", (int)n, n ? dirs : ".", program);
      if (access(path, X_OK) == 0) return 0;
      if (errno == EACCES) e = EACCES;
      dirs += n;
      if (*dirs == ':') dirs++;
    }
  }
  snprintf(err, errlen, "cannot start %s: %s", program, strerror(e));
  return REEL_EIO;
}

int reel_child_spawn(reel_child *c, uv_loop_t *loop, char *const argv[], const char *cwd, size_t max_line,
                     const reel_child_callbacks *cb, void *data, char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  c->cb = *cb;
  c->data = data;
  c->max_line = max_line;
  c->supervised = supervisor_exe != NULL;
  reel_buf_init(&c->partial[0], max_line + 1);
  reel_buf_init(&c->partial[1], max_line + 1);
  uv_pipe_init(loop, &c->out, 0);
  uv_pipe_init(loop, &c->err, 0);
  uv_timer_init(loop, &c->kill_timer);
  c->out.data = c->err.data = c->kill_timer.data = c->process.data = c;
  if (c->supervised) {
    uv_pipe_init(loop, &c->ctl, 0);
    c->ctl.data = c;
  }
  int handles = c->supervised ? 5 : 4;
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->out},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->err},
  };
  char **spawn_argv = (char **)argv;
  char **wrapped = NULL;
  int rc = check_program(argv[0], cwd, err, errlen);
  if (rc == 0 && c->supervised) {
    /* the supervisor's stdin: a socket only reeld writes to (its end is close-on-exec) */
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&c->ctl;
    int n = 0;
    while (argv[n]) n++;
    wrapped = calloc((size_t)n + 3, sizeof *wrapped);
    if (!wrapped) {
      snprintf(err, errlen, "cannot start %s: out of memory", argv[0]);
      rc = REEL_ENOMEM;
    } else {
      wrapped[0] = (char *)"reeld";
      wrapped[1] = (char *)REEL_SUPERVISE_ARG;
      for (int i = 0; i < n; i++) wrapped[i + 2] = argv[i];
      spawn_argv = wrapped;
    }
  }
  int spawned = 0; /* uv_spawn ran: the process handle is initialised, even when it failed */
  if (rc == 0) {
    spawned = 1;
    uv_process_options_t opt = {
        .exit_cb = on_process_exit,
        .file = c->supervised ? supervisor_exe : argv[0],
        .args = spawn_argv,
        .cwd = cwd,
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 3,
        .stdio = stdio,
    };
    int uvrc = uv_spawn(loop, &c->process, &opt);
    if (uvrc != 0) {
      snprintf(err, errlen, "cannot start %s: %s", argv[0], uv_strerror(uvrc));
      rc = REEL_EIO;
    }
  }
  free(wrapped);
  if (rc != 0) {
    /* every handle is initialised: close them; done runs once they are closed */
    c->exited = 1;
    c->exit_status = -1;
    c->open_handles = spawned ? handles : handles - 1;
    c->open_pipes = 2;
    uv_close((uv_handle_t *)&c->out, on_pipe_closed);
    uv_close((uv_handle_t *)&c->err, on_pipe_closed);
    uv_close((uv_handle_t *)&c->kill_timer, on_handle_closed);
    if (spawned) uv_close((uv_handle_t *)&c->process, on_handle_closed);
    if (c->supervised) uv_close((uv_handle_t *)&c->ctl, on_handle_closed);
    return rc;
  }
  c->pid = c->process.pid;
  c->open_handles = handles;
  c->open_pipes = 2;
  uv_read_start((uv_stream_t *)&c->out, on_alloc, on_read);
  uv_read_start((uv_stream_t *)&c->err, on_alloc, on_read);
  return 0;
}

void reel_child_stop(reel_child *c, uint64_t grace_ms) {
  if (c->exited || c->stopping) return;
  c->stopping = 1;
  kill_group(c, SIGTERM);
  uv_timer_start(&c->kill_timer, on_kill_timer, grace_ms, 0);
}
