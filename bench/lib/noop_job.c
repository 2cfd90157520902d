/* The no-op pipeline of bench/scaleout.sh, the same binary for reel and for
 * graphile-worker: it does no work, only what a pipeline must do for its job to
 * finish — leave a small non-empty output/final_video.mp4 in its working
 * directory — and, when given a file name, first writes the wall clock at
 * which it started there ("seconds.nanoseconds\n"), for the submit-to-start
 * latency. Written in C so that the figure is the job system's, not a shell's
 * start-up (sh + date costs about 3 ms here).
 *   noop_job [STAMP_FILE]     exit 0 on success, 1 on any failure (with a message) */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Writes all of text to path (created or truncated); returns 0 or -1. */
static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  size_t len = strlen(text), done = 0;
  while (done < len) {
    ssize_t n = write(fd, text + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { close(fd); return -1; }
    done += (size_t)n;
  }
  return close(fd);
}

int main(int argc, char **argv) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  if (argc > 1) {
    char stamp[64];
    snprintf(stamp, sizeof stamp, "%lld.%09ld\n", (long long)now.tv_sec, now.tv_nsec);
    if (write_file(argv[1], stamp) != 0) {
      fprintf(stderr, "noop_job: cannot write %s: %s\n", argv[1], strerror(errno));
      return 1;
    }
  }
  if (mkdir("output", 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "noop_job: cannot make output/: %s\n", strerror(errno));
    return 1;
  }
  if (write_file("output/final_video.mp4", "no-op artifact\n") != 0) {
    fprintf(stderr, "noop_job: cannot write output/final_video.mp4: %s\n", strerror(errno));
    return 1;
  }
  return 0;
}
