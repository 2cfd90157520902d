/* Spare and discarded job workspaces (see workspaces.h). */
#define _XOPEN_SOURCE 700
#include "worker/workspaces.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"

#define SPARE_PREFIX ".spare-"
#define DISCARDED_PREFIX ".discarded-"
#define REFILL_AFTER_MS 20

typedef struct {
  uv_work_t req;
  reel_workspaces *w;
  char path[4200];
  uint64_t number;
  int ok;
  int is_spare; /* else a discarded tree to remove */
} background_job;

int reel_workspace_make(const char *path, char *err, size_t errlen) {
  char sub[4300];
  int ok = mkdir(path, 0700) == 0;
  if (ok) {
    snprintf(sub, sizeof sub, "%s/output", path);
    ok = mkdir(sub, 0700) == 0;
  }
  if (ok) {
    snprintf(sub, sizeof sub, "%s/%s", path, REEL_WORKSPACE_CONFIG);
    int fd = open(sub, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ok = fd >= 0 && close(fd) == 0;
  }
  if (!ok) {
    if (err) snprintf(err, errlen, "cannot create the job workspace: %s", strerror(errno));
    return REEL_EIO;
  }
  return 0;
}

static void spare_path(const reel_workspaces *w, uint64_t number, char *out, size_t n) {
  snprintf(out, n, "%s/" SPARE_PREFIX "%llu", w->dir, (unsigned long long)number);
}

static void in_thread(uv_work_t *req) {
  background_job *b = req->data;
  if (b->is_spare) {
    reel_fs_remove_tree(b->path); /* a name an earlier process left */
    b->ok = reel_workspace_make(b->path, NULL, 0) == 0;
  } else {
    b->ok = reel_fs_remove_tree(b->path) == 0;
  }
}


static void after_thread(uv_work_t *req, int status) {
  background_job *b = req->data;
  reel_workspaces *w = b->w;
  w->background--;
  if (b->is_spare) {
    w->making--;
    if (status == 0 && b->ok && !w->closed && w->n_ready < REEL_WORKSPACES_MAX_SPARES)
      w->ready[w->n_ready++] = b->number;
    else if (status == 0 && b->ok)
      reel_fs_remove_tree(b->path);
    /* a spare that could not be made is not retried here: the next take
     * makes its workspace on the spot and asks again */
  }
  free(b);
}

static int queue(reel_workspaces *w, background_job *b) {
  b->w = w;
  b->req.data = b;
  if (uv_queue_work(w->loop, &b->req, in_thread, after_thread) != 0) return -1;
  w->background++;
  return 0;
}

static void make_spares(reel_workspaces *w) {
  while (!w->closed && w->n_ready + w->making < w->wanted) {
    background_job *b = calloc(1, sizeof *b);
    if (!b) return;
    b->is_spare = 1;
    b->number = w->next++;
    spare_path(w, b->number, b->path, sizeof b->path);
    if (queue(w, b) != 0) {
      free(b);
      return;
    }
    w->making++;
  }
}

static void on_refill(uv_timer_t *t) { make_spares(t->data); }

void reel_workspaces_init(reel_workspaces *w, uv_loop_t *loop, const char *dir, int spares) {
  memset(w, 0, sizeof *w);
  w->loop = loop;
  snprintf(w->dir, sizeof w->dir, "%s", dir);
  w->wanted = spares < 0 ? 0 : spares > REEL_WORKSPACES_MAX_SPARES ? REEL_WORKSPACES_MAX_SPARES : spares;
  uv_timer_init(loop, &w->refill);
  w->refill.data = w;
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (strncmp(e->d_name, SPARE_PREFIX, strlen(SPARE_PREFIX)) != 0 &&
          strncmp(e->d_name, DISCARDED_PREFIX, strlen(DISCARDED_PREFIX)) != 0)
        continue;
      char path[4400];
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      reel_fs_remove_tree(path);
    }
    closedir(d);
  }
  make_spares(w);
}

int reel_workspaces_take(reel_workspaces *w, const char *path, char *err, size_t errlen) {
  reel_fs_remove_tree(path); /* what an earlier attempt of this job left (keep_failed_workspaces) */
  int rc = -1;
  while (rc != 0 && w->n_ready > 0) {
    char spare[4200];
    spare_path(w, w->ready[--w->n_ready], spare, sizeof spare);
    rc = rename(spare, path);
    if (rc != 0) reel_fs_remove_tree(spare); /* gone or unusable: try the next */
  }
  if (!w->closed && !uv_is_active((uv_handle_t *)&w->refill)) uv_timer_start(&w->refill, on_refill, REFILL_AFTER_MS, 0);
  return rc == 0 ? 0 : reel_workspace_make(path, err, errlen);
}

void reel_workspaces_discard(reel_workspaces *w, const char *path) {
  background_job *b = w->closed ? NULL : calloc(1, sizeof *b);
  if (b) {
    b->number = w->next++;
    snprintf(b->path, sizeof b->path, "%s/" DISCARDED_PREFIX "%llu", w->dir, (unsigned long long)b->number);
    if (rename(path, b->path) == 0) {
      if (queue(w, b) == 0) return;
      reel_fs_remove_tree(b->path);
      free(b);
      return;
    }
    free(b);
  }
  reel_fs_remove_tree(path);
}

void reel_workspaces_close(reel_workspaces *w) {
  if (w->closed) return;
  w->closed = 1;
  uv_close((uv_handle_t *)&w->refill, NULL);
}
