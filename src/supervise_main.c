/* reel-supervise: the per-run supervisor (worker/supervise.h) as a program
 * of its own, linked with nothing but libc, so starting one per job costs an
 * exec of a small binary instead of reeld's (and its libraries' loading).
 * reeld uses it when it sits next to reeld, and re-executes itself
 * otherwise; the command line is the same: `reel-supervise __supervise
 * PROGRAM ARGS...`. */
#include <stdio.h>
#include <string.h>

#include "worker/supervise.h"

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], REEL_SUPERVISE_ARG) == 0) return reel_supervise_main(argv + 2);
  fprintf(stderr, "usage: reel-supervise %s PROGRAM [ARGS...]  (started by reeld for each job)\n", REEL_SUPERVISE_ARG);
  return 2;
}
