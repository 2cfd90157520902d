/* data_dir ownership: flock on a verified lock file plus an abstract socket
 * named after the path (see data_dir.h). */
#include "store/data_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"

/* The abstract socket address for data_dir: "\0reeld-data_dir-" + 40 hex digits
 * of SHA-256(path) (a path can be longer than sun_path). Returns its length. */
static socklen_t name_address(const char *path, struct sockaddr_un *a) {
  unsigned char digest[32];
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, path, strlen(path), digest) != 0) memset(digest, 0, sizeof digest);
  char *p = a->sun_path + 1; /* sun_path[0] = '\0': the abstract namespace */
  p += sprintf(p, "reeld-data_dir-");
  for (int i = 0; i < 20; i++) p += sprintf(p, "%02x", digest[i]);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)(p - a->sun_path));
}

/* The pid of the process listening on the name, or 0 when unknown. */
static int name_holder(const struct sockaddr_un *a, socklen_t len) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return 0;
  int pid = 0;
  if (connect(fd, (const struct sockaddr *)a, len) == 0) {
    struct ucred cred;
    socklen_t n = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &n) == 0) pid = (int)cred.pid;
  }
  close(fd);
  return pid;
}

/* The pid written in the lock file, or 0. */
static int lock_file_pid(int fd) {
  char buf[32] = "";
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = '\0';
  return atoi(buf);
}

static int take_name(reel_data_dir *d, char *err, size_t errlen) {
  struct sockaddr_un a;
  socklen_t len = name_address(d->path, &a);
  d->name_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (d->name_fd < 0) {
    snprintf(err, errlen, "cannot create the data_dir lock socket: %s", strerror(errno));
    return REEL_EIO;
  }
  if (bind(d->name_fd, (struct sockaddr *)&a, len) != 0 || listen(d->name_fd, 4) != 0) {
    int e = errno;
    close(d->name_fd);
    d->name_fd = -1;
    if (e == EADDRINUSE) {
      int pid = name_holder(&a, len);
      char who[48] = "another reeld";
      if (pid > 0) snprintf(who, sizeof who, "another reeld (pid %d)", pid);
      snprintf(err, errlen,
               "%s is using data_dir %s (even if the directory was removed and made again since it started); "
               "stop it or choose another data_dir",
               who, d->path);
      return REEL_EBUSY;
    }
    snprintf(err, errlen, "cannot take the data_dir lock socket: %s", strerror(e));
    return REEL_EIO;
  }
  return 0;
}

static int take_lock_file(reel_data_dir *d, char *err, size_t errlen) {
  for (int attempt = 0; attempt < 5; attempt++) {
    int fd = open(d->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      snprintf(err, errlen, "cannot open %s: %s", d->lock_path, strerror(errno));
      return REEL_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int pid = errno == EWOULDBLOCK ? lock_file_pid(fd) : 0;
      int e = errno;
      close(fd);
      if (e != EWOULDBLOCK) {
        snprintf(err, errlen, "cannot lock %s: %s", d->lock_path, strerror(e));
        return REEL_EIO;
      }
      char who[48] = "another reeld";
      if (pid > 0) snprintf(who, sizeof who, "another reeld (pid %d)", pid);
      snprintf(err, errlen, "%s is using data_dir %s (lock %s held); stop it or choose another data_dir", who,
               d->path, d->lock_path);
      return REEL_EBUSY;
    }
    /* the lock counts only if the path still names the file locked */
    struct stat locked, named;
    if (fstat(fd, &locked) == 0 && stat(d->lock_path, &named) == 0 && locked.st_dev == named.st_dev &&
        locked.st_ino == named.st_ino) {
      char pid[32];
      int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
      if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        /* the pid is only for messages */
      }
      d->lock_fd = fd;
      d->lock_dev = locked.st_dev;
      d->lock_ino = locked.st_ino;
      return 0;
    }
    close(fd); /* removed or replaced between open and flock: again */
  }
  snprintf(err, errlen, "%s keeps being replaced; is another process removing it?", d->lock_path);
  return REEL_EIO;
}

int reel_data_dir_lock(reel_data_dir *d, const char *data_dir, char *err, size_t errlen) {
  memset(d, 0, sizeof *d);
  d->lock_fd = d->name_fd = -1;
  if (reel_fs_make_dirs(data_dir, 0755) != 0) {
    snprintf(err, errlen, "cannot create data_dir %s: %s", data_dir, strerror(errno));
    return REEL_EIO;
  }
  char *abs = realpath(data_dir, NULL);
  if (!abs) {
    snprintf(err, errlen, "cannot resolve data_dir %s: %s", data_dir, strerror(errno));
    return REEL_EIO;
  }
  snprintf(d->path, sizeof d->path, "%s", abs);
  free(abs);
  snprintf(d->lock_path, sizeof d->lock_path, "%s/reeld.lock", d->path);
  int rc = take_name(d, err, errlen);
  if (rc == 0) rc = take_lock_file(d, err, errlen);
  struct stat st;
  if (rc == 0 && stat(d->path, &st) != 0) {
    snprintf(err, errlen, "cannot stat data_dir %s: %s", d->path, strerror(errno));
    rc = REEL_EIO;
  }
  if (rc != 0) {
    reel_data_dir_unlock(d);
    return rc;
  }
  d->dev = st.st_dev;
  d->ino = st.st_ino;
  return 0;
}

int reel_data_dir_check(const reel_data_dir *d, char *err, size_t errlen) {
  struct stat st;
  if (stat(d->path, &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) return 0; /* cannot tell */
    snprintf(err, errlen, "data_dir %s was removed while reeld was running", d->path);
    return REEL_ESTORE;
  }
  if (st.st_dev != d->dev || st.st_ino != d->ino) {
    snprintf(err, errlen, "data_dir %s was replaced by another directory while reeld was running", d->path);
    return REEL_ESTORE;
  }
  if (d->lock_fd >= 0) {
    struct stat locked, named;
    if (fstat(d->lock_fd, &locked) == 0 && locked.st_nlink == 0) {
      snprintf(err, errlen, "the lock file %s was deleted while reeld was running", d->lock_path);
      return REEL_ESTORE;
    }
    if (stat(d->lock_path, &named) != 0 || named.st_dev != d->lock_dev || named.st_ino != d->lock_ino) {
      snprintf(err, errlen, "the lock file %s was removed or replaced while reeld was running", d->lock_path);
      return REEL_ESTORE;
    }
  }
  return 0;
}

void reel_data_dir_unlock(reel_data_dir *d) {
  if (d->lock_fd >= 0) close(d->lock_fd);
  if (d->name_fd >= 0) close(d->name_fd);
  d->lock_fd = d->name_fd = -1;
}
