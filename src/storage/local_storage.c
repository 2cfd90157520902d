/* Local-disk artifact storage: objects are files under the configured root,
 * named by key, published by rename so a reader never sees a partial file.
 * Clients download them from reeld itself through signed URLs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/fs.h"
#include "storage/storage.h"
#include "storage/url_signer.h"

typedef struct {
  reel_storage base;
  char *root;
  unsigned char key[64];
  size_t key_len;
} local_storage;

/* Keys come from reel itself, but refuse anything that could leave the root. */
static int key_is_safe(const char *key) {
  if (!*key || key[0] == '/' || strstr(key, "..") || strchr(key, '\\')) return 0;
  return 1;
}

static int copy_file(const char *from, const char *to) {
  int in = open(from, O_RDONLY | O_CLOEXEC);
  if (in < 0) return REEL_EIO;
  int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    close(in);
    return REEL_EIO;
  }
  char buf[65536];
  ssize_t n;
  int rc = 0;
  while ((n = read(in, buf, sizeof buf)) > 0)
    if (write(out, buf, (size_t)n) != n) {
      rc = REEL_EIO;
      break;
    }
  if (n < 0 || fsync(out) != 0) rc = REEL_EIO;
  close(in);
  if (close(out) != 0) rc = REEL_EIO;
  return rc;
}

static int local_put_file(reel_storage *base, const char *key, const char *local_path, char **uri, char **gcs_uri,
                          char *err, size_t errlen) {
  local_storage *st = (local_storage *)base;
  snprintf(err, errlen, "cannot write the artifact under service.storage.path");
  if (!key_is_safe(key)) return REEL_EINVAL;
  char dest[4096], tmp[4200];
  snprintf(dest, sizeof dest, "%s/%s", st->root, key);
  char *slash = strrchr(dest, '/');
  *slash = '\0';
  int rc = reel_fs_make_dirs(dest, 0755);
  *slash = '/';
  if (rc) return rc;
  snprintf(tmp, sizeof tmp, "%s.partial", dest);
  if (rename(local_path, dest) != 0) {
    if (errno != EXDEV) return REEL_EIO;
    if ((rc = copy_file(local_path, tmp)) != 0 || rename(tmp, dest) != 0) {
      unlink(tmp);
      return rc ? rc : REEL_EIO;
    }
  }
  size_t n = strlen(key) + 16;
  *uri = malloc(n);
  if (!*uri) return REEL_ENOMEM;
  snprintf(*uri, n, "reel-local:%s", key); /* the object's key, not a path on any machine */
  *gcs_uri = NULL;
  return 0;
}

static int local_download_url(reel_storage *base, const char *key, const char *job_id, const char *name,
                              int64_t expires_at, char **url) {
  (void)key;
  local_storage *st = (local_storage *)base;
  char sig[REEL_SIGNATURE_HEX_LEN + 1];
  int rc = reel_url_sign(st->key, st->key_len, job_id, name, expires_at, sig);
  if (rc) return rc;
  size_t n = strlen(job_id) + strlen(name) + 160;
  *url = malloc(n);
  if (!*url) return REEL_ENOMEM;
  snprintf(*url, n, "/v1/files/%s/%s?expires=%lld&signature=%s", job_id, name,
           (long long)expires_at, sig);
  return 0;
}

static int local_open_read(reel_storage *base, const char *key, int *fd) {
  local_storage *st = (local_storage *)base;
  if (!key_is_safe(key)) return REEL_EINVAL;
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", st->root, key);
  *fd = open(path, O_RDONLY | O_CLOEXEC);
  if (*fd < 0) return errno == ENOENT ? REEL_ENOTFOUND : REEL_EIO;
  return 0;
}

static int local_check(reel_storage *base, char *err, size_t errlen) {
  local_storage *st = (local_storage *)base;
  if (access(st->root, W_OK | X_OK) != 0) {
    snprintf(err, errlen, "artifact directory (service.storage.path) is not writable: %s", strerror(errno));
    return REEL_EIO;
  }
  return 0;
}

static void local_close(reel_storage *base) {
  local_storage *st = (local_storage *)base;
  free(st->root);
  free(st);
}

static const reel_storage_ops local_ops = {
    .name = "local",
    .put_file = local_put_file,
    .download_url = local_download_url,
    .open_read = local_open_read,
    .check = local_check,
    .close = local_close,
};

int reel_storage_open_local(const char *root, const unsigned char *signing_key,
                            size_t key_len, reel_storage **out, char *err, size_t errlen) {
  if (reel_fs_make_dirs(root, 0755) != 0) {
    snprintf(err, errlen, "cannot create artifact directory %s: %s", root, strerror(errno));
    return REEL_EIO;
  }
  local_storage *st = calloc(1, sizeof *st);
  if (!st) return REEL_ENOMEM;
  st->base.ops = &local_ops;
  st->root = strdup(root);
  st->key_len = key_len > sizeof st->key ? sizeof st->key : key_len;
  memcpy(st->key, signing_key, st->key_len);
  if (!st->root) {
    local_close(&st->base);
    return REEL_ENOMEM;
  }
  *out = &st->base;
  return 0;
}

char *reel_storage_key(const char *prefix, int64_t created_ms, const char *job_id, const char *name) {
  char month[16];
  reel_year_month(created_ms, month, sizeof month);
  size_t n = strlen(prefix) + strlen(job_id) + strlen(name) + 32;
  char *key = malloc(n);
  if (!key) return NULL;
  if (*prefix) snprintf(key, n, "%s/%s/%s/%s", prefix, month, job_id, name);
  else snprintf(key, n, "%s/%s/%s", month, job_id, name);
  return key;
}
