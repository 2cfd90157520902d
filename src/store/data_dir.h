/* Ownership of data_dir by one reeld: an exclusive lock taken at start, and a
 * check that what was locked is still there. Two locks are held:
 *  - flock on data_dir/reeld.lock (verified after locking to be the file the
 *    path names, so a lock file removed and recreated meanwhile is not
 *    trusted);
 *  - an abstract Unix socket named after data_dir's absolute path, which
 *    outlives `rm -rf data_dir`: a second reeld on a recreated data_dir of
 *    the same path still finds this one (Linux; per network namespace).
 * reel_data_dir_check notices data_dir or the lock file being deleted or
 * replaced while reeld runs. */
#ifndef REEL_DATA_DIR_H
#define REEL_DATA_DIR_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
  char path[4096];      /* absolute data_dir */
  char lock_path[4200]; /* data_dir/reeld.lock */
  int lock_fd;          /* flock'ed; -1 when not held */
  int name_fd;          /* the bound abstract socket; -1 when not held */
  dev_t dev, lock_dev;  /* identities when locked */
  ino_t ino, lock_ino;
} reel_data_dir;

/* Creates data_dir if missing and takes both locks. On failure (another
 * reeld has it, or an I/O error) returns a reel error (REEL_EBUSY when in
 * use) with a message in err naming the other reeld's pid when known. */
int reel_data_dir_lock(reel_data_dir *d, const char *data_dir, char *err, size_t errlen);
/* 0 while data_dir and its lock file are the ones locked; else REEL_ESTORE
 * with what changed in err. Cheap (three stats); call it periodically. */
int reel_data_dir_check(const reel_data_dir *d, char *err, size_t errlen);
/* Releases both locks. */
void reel_data_dir_unlock(reel_data_dir *d);

#endif
