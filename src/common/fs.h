/* File-system helpers shared by storage, the scheduler and main. */
#ifndef REEL_FS_H
#define REEL_FS_H

#include <sys/types.h>

/* Creates path and its missing parents with mode (like mkdir -p). 0 or REEL_EIO (errno kept). */
int reel_fs_make_dirs(const char *path, mode_t mode);
/* Removes a directory tree without following symlinks; 0 when gone. */
int reel_fs_remove_tree(const char *path);

#endif
