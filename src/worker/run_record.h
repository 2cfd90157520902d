/* A record of each running job's process group, written when it is spawned
 * (data_dir/procs/<job_id>: boot id, process group id, the leader's start
 * time from /proc/PID/stat), so a reeld that starts after a crash finds what
 * the dead one left running by that record — not by guessing from working
 * directories, which a pipeline may change — and kills exactly that. */
#ifndef REEL_RUN_RECORD_H
#define REEL_RUN_RECORD_H

#include <sys/types.h>

/* Writes dir/<job_id> for the group whose leader is pid (atomically: a
 * temporary file renamed). 0, or a reel error (the run goes on: the
 * supervisor still kills the group if reeld dies). */
int reel_run_record_write(const char *dir, const char *job_id, pid_t pid);
/* Removes dir/<job_id> (the run ended). */
void reel_run_record_remove(const char *dir, const char *job_id);
/* For every record in dir: kills (SIGKILL) the processes still in that
 * group that started no earlier than its leader did in this boot, then removes
 * the record. A record whose pid now names another process (a different
 * start time) or another boot kills nothing. Returns how many processes were
 * killed. */
int reel_run_record_reap(const char *dir);
/* The start time (clock ticks since boot, field 22 of /proc/PID/stat), the
 * process group and the state letter of pid. 0, or REEL_ENOTFOUND. */
int reel_run_record_proc_stat(pid_t pid, unsigned long long *start, pid_t *pgrp, pid_t *ppid, char *state);

#endif
