/* Spawn records of running process groups and the restart-time reaper. */
#include "worker/run_record.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"

#define BOOT_ID_LEN 64

static void boot_id(char out[BOOT_ID_LEN]) {
  out[0] = '\0';
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
  if (!f) return;
  if (fgets(out, BOOT_ID_LEN, f)) out[strcspn(out, "\n")] = '\0';
  fclose(f);
}

int reel_run_record_proc_stat(pid_t pid, unsigned long long *start, pid_t *pgrp, pid_t *ppid, char *state) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return REEL_ENOTFOUND;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return REEL_ENOTFOUND;
  buf[n] = '\0';
  /* the command name is in parentheses and may hold anything: fields follow the last ')' */
  char *p = strrchr(buf, ')');
  if (!p) return REEL_ENOTFOUND;
  char st = 0;
  int parent = 0, group = 0;
  unsigned long long starttime = 0;
  /* fields 3.. : state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime
   * cstime priority nice num_threads itrealvalue starttime */
  if (sscanf(p + 1, " %c %d %d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &st, &parent,
             &group, &starttime) != 4)
    return REEL_ENOTFOUND;
  if (start) *start = starttime;
  if (pgrp) *pgrp = group;
  if (ppid) *ppid = parent;
  if (state) *state = st;
  return 0;
}

int reel_run_record_write(const char *dir, const char *job_id, pid_t pid) {
  unsigned long long start;
  if (reel_run_record_proc_stat(pid, &start, NULL, NULL, NULL) != 0) return REEL_ENOTFOUND;
  char boot[BOOT_ID_LEN], path[4200], tmp[4300];
  boot_id(boot);
  snprintf(path, sizeof path, "%s/%s", dir, job_id);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "we");
  if (!f) return REEL_EIO;
  int ok = fprintf(f, "boot %s\npgid %d\nstart %llu\n", boot[0] ? boot : "-", (int)pid, start) > 0;
  if (fclose(f) != 0) ok = 0;
  /* no fsync: a crash of the machine ends every process anyway */
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return REEL_EIO;
  }
  return 0;
}

void reel_run_record_remove(const char *dir, const char *job_id) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, job_id);
  unlink(path);
}

/* Kills every process in group pgid that started at or after start. */
static int kill_group_members(pid_t pgid, unsigned long long start) {
  DIR *proc = opendir("/proc");
  if (!proc) return 0;
  int killed = 0;
  struct dirent *e;
  while ((e = readdir(proc)) != NULL) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 1 || pid == (long)getpid()) continue;
    unsigned long long st;
    pid_t group;
    char state;
    if (reel_run_record_proc_stat((pid_t)pid, &st, &group, NULL, &state) != 0) continue;
    if (group != pgid || st < start || state == 'Z') continue;
    if (kill((pid_t)pid, SIGKILL) == 0) killed++;
  }
  closedir(proc);
  return killed;
}

static int reap_one(const char *path) {
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  char boot[BOOT_ID_LEN] = "", now_boot[BOOT_ID_LEN];
  int pgid = 0;
  unsigned long long start = 0;
  int fields = fscanf(f, "boot %63s pgid %d start %llu", boot, &pgid, &start);
  fclose(f);
  if (fields != 3 || pgid <= 1 || pgid == (int)getpgrp()) return 0;
  boot_id(now_boot);
  if (strcmp(boot, now_boot[0] ? now_boot : "-") != 0) return 0; /* another boot: nothing of it runs */
  unsigned long long leader_start;
  if (reel_run_record_proc_stat(pgid, &leader_start, NULL, NULL, NULL) == 0 && leader_start != start)
    return 0; /* the pid names another process now, so the old group is empty (Linux keeps a pgid in use) */
  return kill_group_members(pgid, start);
}

int reel_run_record_reap(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int killed = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    size_t n = strlen(e->d_name);
    if (!(n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0)) killed += reap_one(path);
    unlink(path);
  }
  closedir(d);
  return killed;
}
