/* Job workspaces under data_dir/work. A workspace is a directory with an
 * empty output/ and an empty pipeline_config.yaml. Spares are made ahead of
 * time in libuv's thread pool, one per job slot, so the workspace of a job
 * just claimed is one rename away: on a file system where creating an inode
 * is slow (ext4 without a journal scans for recently deleted inodes), making
 * the three entries on the spot costs milliseconds of submit-to-start time.
 * Finished workspaces are renamed out of the way at once and their trees
 * removed in the thread pool, off the event loop. */
#ifndef REEL_WORKSPACES_H
#define REEL_WORKSPACES_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define REEL_WORKSPACES_MAX_SPARES 64
#define REEL_WORKSPACE_CONFIG "pipeline_config.yaml"

typedef struct {
  uv_loop_t *loop;
  char dir[4096];       /* data_dir/work, absolute */
  int wanted;           /* spares to keep ready */
  uint64_t ready[REEL_WORKSPACES_MAX_SPARES]; /* numbers of the spares made and not taken */
  int n_ready;
  int making;           /* spares being made now */
  int background;       /* thread-pool requests not yet called back */
  uint64_t next;        /* number of the next spare or discarded tree */
  uv_timer_t refill;    /* makes spares a moment after the last take, so that
                           making them does not compete with starting the job */
  int closed;
} reel_workspaces;

/* Makes path a fresh workspace on the spot (mkdir, output/, the empty config
 * file). 0, or REEL_EIO with a message in err. */
int reel_workspace_make(const char *path, char *err, size_t errlen);

/* Starts keeping `spares` (capped at REEL_WORKSPACES_MAX_SPARES) spares in
 * dir, which must exist; removes spares and discarded trees an earlier
 * process left there. */
void reel_workspaces_init(reel_workspaces *w, uv_loop_t *loop, const char *dir, int spares);
/* Makes path (inside dir, not existing) a fresh workspace: a spare renamed
 * into place when one is ready (more are made a moment later), else made now.
 * 0, or REEL_EIO with a message in err. */
int reel_workspaces_take(reel_workspaces *w, const char *path, char *err, size_t errlen);
/* Removes the workspace at path: renamed away now, so the path is free at
 * once, and its tree removed in the thread pool (on the spot when it cannot
 * be renamed or the thread pool is not at hand). */
void reel_workspaces_discard(reel_workspaces *w, const char *path);
/* Makes no more spares and closes the timer. Requests in flight finish by
 * themselves (they keep the loop alive until then, and touch w only to count
 * themselves done); the spares left are removed at the next start. */
void reel_workspaces_close(reel_workspaces *w);

#endif
