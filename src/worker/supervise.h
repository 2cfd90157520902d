/* The per-run supervisor: a small process between reeld and a job's pipeline
 * (reeld itself, re-executed as `reeld __supervise PROGRAM ARGS...`). It leads
 * the job's session and process group, holds the read end of a socket whose
 * only writer is reeld (its stdin), and is a child subreaper (so processes the
 * pipeline orphans, even ones that left the group with setsid, become its
 * children). It ends everything the pipeline started:
 *  - when reeld dies (kill -9 included): stdin reads EOF, and it kills the
 *    group and every descendant, then exits;
 *  - when the pipeline exits: it kills what the pipeline left behind, then
 *    exits with the pipeline's status (or dies of the same signal), so reeld
 *    sees what it would have seen without it.
 * PR_SET_PDEATHSIG is not used: it fires when the *thread* that forked exits,
 * and a pipe EOF is exact whatever thread of reeld spawned the run. */
#ifndef REEL_SUPERVISE_H
#define REEL_SUPERVISE_H

/* The argument that selects supervisor mode in reeld's argv[1]. */
#define REEL_SUPERVISE_ARG "__supervise"

/* Runs the supervisor for argv (argv[0] searched in PATH, NULL-terminated)
 * and does not return: exits with the pipeline's status. An exec failure is
 * written to stderr ("cannot start PROGRAM: ...") and exits 127. */
int reel_supervise_main(char **argv);

#endif
