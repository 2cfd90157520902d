/* The one live line `reel submit --wait` shows on a terminal, and the plain
 * lines it prints otherwise. Pure formatting: no I/O. */
#ifndef REEL_CLIENT_PROGRESS_LINE_H
#define REEL_CLIENT_PROGRESS_LINE_H

#include <stddef.h>

/* What the line shows. */
typedef struct {
  int percent;       /* 0-100 (clamped) */
  const char *stage; /* "" or NULL when none yet */
  const char *state; /* "queued", "running", "retrying" … shown when there is no stage */
  double elapsed_s;  /* since the submit */
} reel_progress;

/* Writes "[#########-----------]  45%  keyframes  0:12" into out, fitting
 * width columns (at least 20 are used; the bar shrinks first, then the
 * stage is cut). Returns the length written (out is always terminated). */
size_t reel_progress_line(char *out, size_t outlen, int width, const reel_progress *p);
/* Writes the plain form for logs and pipes: " 45%  keyframes  0:12". */
size_t reel_progress_plain(char *out, size_t outlen, const reel_progress *p);
/* Formats seconds as M:SS, or H:MM:SS from an hour on. */
void reel_progress_elapsed(double seconds, char *out, size_t outlen);

#endif
