/* Signed artifact downloads: GET/HEAD /v1/files/{id}/{name}?expires=&signature=.
 * No bearer token: the HMAC signature is the credential. Supports single byte
 * ranges (206/416), ETag and If-None-Match (304). The file is looked at
 * (size, mtime) here but opened by the transport only when it can send it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/app.h"
#include "api/validate.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/random.h"
#include "http/fd_limit.h"
#include "storage/url_signer.h"

typedef struct {
  reel_job_op op; /* first */
  reel_app *app;
  reel_http_request *req;
  char name[64];
} file_call;

/* The artifacts a job may have, and their media types. */
static const struct {
  const char *name;
  const char *type;
} artifact_names[] = {
    {"final_video.mp4", "video/mp4"},
    {"captions.vtt", "text/vtt; charset=utf-8"},
};

const char *reel_api_artifact_type(const char *name) {
  for (size_t i = 0; i < sizeof artifact_names / sizeof *artifact_names; i++)
    if (strcmp(name, artifact_names[i].name) == 0) return artifact_names[i].type;
  return "application/octet-stream";
}

char *reel_api_artifact_key(const reel_job *job, const char *name) {
  int known = 0;
  for (size_t i = 0; i < sizeof artifact_names / sizeof *artifact_names; i++) known |= strcmp(name, artifact_names[i].name) == 0;
  if (!known || !job->artifact_key) return NULL;
  const char *slash = strrchr(job->artifact_key, '/');
  size_t dir = slash ? (size_t)(slash - job->artifact_key) + 1 : 0;
  size_t n = dir + strlen(name) + 1;
  char *key = malloc(n);
  if (key) snprintf(key, n, "%.*s%s", (int)dir, job->artifact_key, name);
  return key;
}

/* Parses a single "bytes=" range against size. Returns 1 with [*start, *end]
 * (inclusive) set, 0 when the header should be ignored (absent, multiple
 * ranges, other units), -1 when unsatisfiable. */
static int parse_range(reel_slice h, int64_t size, int64_t *start, int64_t *end) {
  if (!h.ptr || h.len < 7 || strncmp(h.ptr, "bytes=", 6) != 0 || memchr(h.ptr, ',', h.len)) return 0;
  char spec[64];
  size_t n = h.len - 6 < sizeof spec - 1 ? h.len - 6 : sizeof spec - 1;
  memcpy(spec, h.ptr + 6, n);
  spec[n] = '\0';
  char *dash = strchr(spec, '-');
  if (!dash) return 0;
  *dash = '\0';
  long long a = -1, b = -1;
  if (spec[0] && reel_validate_int(spec, 0, INT64_MAX, &a) != 0) return 0;
  if (dash[1] && reel_validate_int(dash + 1, 0, INT64_MAX, &b) != 0) return 0;
  if (a < 0 && b < 0) return 0;
  if (a < 0) { /* suffix: last b bytes */
    if (b == 0 || size == 0) return -1;
    *start = b >= size ? 0 : size - b;
    *end = size - 1;
    return 1;
  }
  if (a >= size) return -1;
  if (b >= 0 && b < a) return 0;
  *start = a;
  *end = b < 0 || b >= size ? size - 1 : b;
  return 1;
}

/* RFC 9110 §13.1: true when a list of entity tags (or "*") names etag.
 * weak: compare ignoring W/ prefixes (If-None-Match); strong otherwise (If-Match). */
static int etag_listed(reel_slice list, const char *etag, int weak) {
  if (reel_slice_eq(list, "*")) return 1;
  size_t n = strlen(etag);
  const char *p = list.ptr, *end = list.ptr + list.len;
  while (p < end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
    const char *start = p;
    int is_weak = 0;
    if (end - p >= 2 && p[0] == 'W' && p[1] == '/') is_weak = 1, p += 2;
    const char *tag = p;
    if (p < end && *p == '"') {
      p++;
      while (p < end && *p != '"') p++;
      if (p < end) p++;
    } else {
      while (p < end && *p != ',') p++;
    }
    if ((size_t)(p - tag) == n && memcmp(tag, etag, n) == 0 && (weak || !is_weak)) return 1;
    if (p == start) p++;
  }
  return 0;
}

/* What a download response needs to open its file when the transport can
 * send it: the storage key and the identity (size, mtime) the handler's
 * ETag and Content-Length describe. */
typedef struct {
  reel_storage *storage;
  char *key;
  int64_t size;
  struct timespec mtime;
} file_source;

static void file_source_free(void *ctx) {
  file_source *src = ctx;
  if (!src) return;
  free(src->key);
  free(src);
}

/* Opens the artifact again; REEL_ENOTFOUND when it is gone or is no longer
 * the file the response's head describes. */
static int file_source_open(void *ctx, int *fd) {
  file_source *src = ctx;
  int rc = src->storage->ops->open_read(src->storage, src->key, fd);
  if (rc != 0) return rc;
  struct stat st;
  if (fstat(*fd, &st) != 0 || st.st_size != src->size || st.st_mtim.tv_sec != src->mtime.tv_sec ||
      st.st_mtim.tv_nsec != src->mtime.tv_nsec) {
    close(*fd);
    *fd = -1;
    return REEL_ENOTFOUND;
  }
  return 0;
}

static void file_done(reel_job_op *op, int result) {
  file_call *c = op->data;
  reel_http_request *req = c->req;
  reel_app *app = c->app;
  int fd = -1;
  char *key = result == 0 && op->job.status == REEL_JOB_FINISHED ? reel_api_artifact_key(&op->job, c->name) : NULL;
  errno = 0;
  int open_rc = key ? app->storage->ops->open_read(app->storage, key, &fd) : REEL_ENOTFOUND;
  if (open_rc != 0 && reel_fd_limit_is_exhaustion(errno)) {
    free(key);
    reel_fd_limit_report("download answered 503", req->request_id);
    reel_http_send_problem_with_headers(req, 503, "overloaded", "Service unavailable",
                                        "the server has no file descriptor left; retry shortly", "Retry-After", "1",
                                        NULL);
    goto out;
  }
  struct stat st;
  if (open_rc != 0 || fstat(fd, &st) != 0) {
    if (fd >= 0) close(fd);
    free(key);
    reel_http_send_problem(req, 404, "file-not-found", "File not found", "the artifact no longer exists");
    goto out;
  }
  /* the descriptor was only for the metadata: the transport opens the file
   * again when it can send it (http/response_file.h) */
  close(fd);
  file_source *src = calloc(1, sizeof *src);
  if (!src) {
    free(key);
    reel_http_send_problem(req, 500, "internal", "Internal error", "out of memory");
    goto out;
  }
  src->storage = app->storage;
  src->key = key;
  src->size = st.st_size;
  src->mtime = st.st_mtim;
  char etag[64];
  snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
           (unsigned long long)st.st_mtim.tv_sec * 1000000000ull + (unsigned long long)st.st_mtim.tv_nsec);
  reel_http_response resp;
  reel_slice if_match = reel_http_request_header(req, "If-Match");
  if (if_match.ptr && !etag_listed(if_match, etag, 0)) {
    file_source_free(src);
    reel_http_send_problem(req, 412, "precondition-failed", "Precondition failed",
                           "the file does not match If-Match");
    goto out;
  }
  reel_slice inm = reel_http_request_header(req, "If-None-Match");
  if (inm.ptr && etag_listed(inm, etag, 1)) {
    file_source_free(src);
    reel_http_response_init(&resp, 304);
    reel_http_response_add_header(&resp, "ETag", etag);
    reel_http_send(req, &resp);
    goto out;
  }
  int64_t size = st.st_size, start = 0, end = size - 1;
  int range = parse_range(reel_http_request_header(req, "Range"), size, &start, &end);
  reel_slice if_range = reel_http_request_header(req, "If-Range");
  if (range != 0 && if_range.ptr && !reel_slice_eq(if_range, etag)) { /* changed: send it whole */
    range = 0;
    start = 0;
    end = size - 1;
  }
  char value[96];
  if (range < 0) {
    file_source_free(src);
    snprintf(value, sizeof value, "bytes */%lld", (long long)size);
    reel_http_send_problem_with_headers(req, 416, "range-not-satisfiable", "Range not satisfiable",
                                        "the requested range is outside the file", "Content-Range", value, NULL);
    goto out;
  }
  reel_http_response_init(&resp, range ? 206 : 200);
  reel_http_response_add_header(&resp, "Content-Type", reel_api_artifact_type(c->name));
  reel_http_response_add_header(&resp, "Accept-Ranges", "bytes");
  reel_http_response_add_header(&resp, "ETag", etag);
  reel_http_response_add_header(&resp, "Cache-Control", "private, max-age=0");
  if (range) {
    snprintf(value, sizeof value, "bytes %lld-%lld/%lld", (long long)start, (long long)end, (long long)size);
    reel_http_response_add_header(&resp, "Content-Range", value);
  }
  resp.file_open = file_source_open;
  resp.file_ctx = src;
  resp.file_ctx_free = file_source_free;
  resp.file_offset = start;
  resp.file_length = size ? end - start + 1 : 0;
  resp.head_only = reel_slice_eq(req->method, "HEAD");
  reel_http_send(req, &resp);
out:
  reel_job_op_cleanup(op);
  free(c);
}

void reel_api_download_file(reel_app *app, reel_http_request *req, const reel_route_params *p) {
  char *expires = NULL, *signature = NULL;
  long long expires_at = 0;
  char id[32], name[64];
  int ok = reel_job_id_valid(p->id.ptr, p->id.len) && p->name.len < sizeof name;
  if (ok) {
    memcpy(id, p->id.ptr, p->id.len);
    id[p->id.len] = '\0';
    memcpy(name, p->name.ptr, p->name.len);
    name[p->name.len] = '\0';
  }
  int verdict = REEL_EINVAL;
  if (ok && reel_http_query_param(req, "expires", &expires) == 1 &&
      reel_http_query_param(req, "signature", &signature) == 1 &&
      reel_validate_int(expires, 0, INT64_MAX, &expires_at) == 0)
    verdict = reel_url_verify(app->signing_key, sizeof app->signing_key, id, name, expires_at, signature,
                              reel_now_ms() / 1000);
  free(expires);
  free(signature);
  if (verdict != 0) {
    reel_http_send_problem(req, 403, verdict == REEL_ETIMEOUT ? "url-expired" : "bad-signature",
                           verdict == REEL_ETIMEOUT ? "URL expired" : "Invalid signature",
                           verdict == REEL_ETIMEOUT ? "this download URL has expired; ask /v1/jobs/{id}/artifact for a new one"
                                                    : "the URL's signature does not match; ask /v1/jobs/{id}/artifact for a URL");
    return;
  }
  file_call *c = calloc(1, sizeof *c);
  if (!c) {
    reel_http_send_problem(req, 500, "internal", "Internal error", "out of memory");
    return;
  }
  reel_job_op_init(&c->op, REEL_JOB_OP_GET);
  memcpy(c->op.id, id, sizeof c->op.id);
  c->op.cb = file_done;
  c->op.data = c;
  c->app = app;
  c->req = req;
  memcpy(c->name, name, sizeof c->name);
  reel_jobs_run(&app->jobs, &c->op);
}
