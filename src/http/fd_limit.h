/* The process's file-descriptor budget. At start RLIMIT_NOFILE's soft limit
 * is raised to the hard limit and a reserve at the top is set aside for what
 * must keep working under load: listeners, the job store (SQLite and its
 * WAL), logs, child pipes, libcurl sockets. Descriptors a client can make
 * reeld hold (accepted connections, files being sent) are kept only when
 * their number is below the ceiling (limit - reserve). Since open(2) and
 * accept(2) always return the lowest free number, descriptors at or above the
 * ceiling are then only ever held by the reserved users: however many
 * clients come, `reserve` descriptors stay free for them.
 * Everything here runs on the loop thread except reel_fd_limit_allows. */
#ifndef REEL_HTTP_FD_LIMIT_H
#define REEL_HTTP_FD_LIMIT_H

#include <stddef.h>

/* Descriptors kept back for listeners, the store and the rest (at most a
 * quarter of the limit). */
#define REEL_FD_RESERVE 128

/* Raises the soft RLIMIT_NOFILE to the hard limit and sets the ceiling to
 * (new soft limit - reserve), the reserve capped at a quarter of the limit.
 * Returns the soft limit now in effect; msg says what was done (or why the
 * raise failed: the old limit then stays). */
long reel_fd_limit_init(int reserve, char *msg, size_t msglen);
/* The ceiling (0 before init: everything is allowed). */
long reel_fd_limit_ceiling(void);
/* 1 when a client-driven descriptor numbered fd may be kept (below the
 * ceiling), 0 when it must be closed at once because only the reserve is
 * left. */
int reel_fd_limit_allows(int fd);
/* 1 for the errno values that mean "no descriptor left" (EMFILE, ENFILE). */
int reel_fd_limit_is_exhaustion(int err);
/* Logs (at most once a second, with the count of lines suppressed since)
 * that what could not get a descriptor, e.g. "connection refused" or
 * "download answered 503". */
void reel_fd_limit_report(const char *what, const char *detail);

#endif
