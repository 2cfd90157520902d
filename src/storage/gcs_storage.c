/* Google Cloud Storage artifact storage through the XML API. Every request
 * reel makes is a V4-signed URL from the service-account key (gcs_sign.h),
 * so no OAuth token is ever fetched: one signed PUT for small files; at or
 * above the threshold a resumable upload, where a signed POST opens a session
 * whose URI then takes the file in chunks, resumed from what GCS reports it
 * holds after a failure. Transient failures (no response, 408, 429, 5xx) are
 * retried with backoff; other answers fail at once with GCS's error code.
 * Download URLs are signed (or public) and made on demand. Uploads and the
 * readiness check run on worker threads only. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "storage/gcs_sign.h"
#include "storage/http_client.h"
#include "storage/storage.h"

#define GCS_DEFAULT_ENDPOINT "https://storage.googleapis.com"
#define GCS_CHUNK_UNIT (256 * 1024)     /* resumable chunks are multiples of this (but the last) */
#define GCS_SIGNED_REQUEST_SECONDS 900  /* lifetime of the URLs reel signs for its own requests */
#define GCS_CHECK_TIMEOUT_SECONDS 10

typedef struct {
  reel_storage base;
  reel_gcs_key *key;
  char *bucket;
  char *endpoint;    /* as configured, for the signer; NULL: Google */
  char *public_base; /* "https://storage.googleapis.com" or the endpoint, no trailing "/" */
  int64_t threshold, chunk;
  int attempts;
} gcs_storage;

/* ---- one request ---- */

typedef struct {
  const char *method;        /* PUT (object or chunk), POST (resumable start), GET (bucket listing) */
  const char *object;        /* NULL for the bucket */
  const char *session;       /* a resumable session URI; NULL: sign a fresh URL for this request */
  const char *content_type;  /* signed, and sent */
  const char *content_range; /* chunks: "bytes A-B/SIZE"; status queries: "bytes *" "/SIZE" */
  const char *file_path;     /* body from file_path[offset, +length), else an empty body */
  int64_t offset, length;
  long timeout_seconds;
} gcs_call;

/* "GCS answered 403 AccessDenied to PUT gs://bucket/key" (no URL, no signature). */
static void describe_answer(const gcs_storage *st, const gcs_call *c, const reel_http_client_response *resp,
                            char *err, size_t errlen) {
  char code[96];
  reel_http_client_error_code(resp, code, sizeof code);
  snprintf(err, errlen, "GCS answered %ld%s%s to %s gs://%s/%s%s", resp->status, code[0] ? " " : "", code,
           c->method, st->bucket, c->object ? c->object : "", c->session ? " (resumable session)" : "");
}

/* Signs the URL a call goes to (now, for GCS_SIGNED_REQUEST_SECONDS). */
static int sign_call(const gcs_storage *st, const gcs_call *c, char **url, char *err, size_t errlen) {
  int64_t now = (int64_t)time(NULL);
  char why[256] = "";
  int rc;
  if (strcmp(c->method, "POST") == 0) {
    rc = reel_gcs_resumable_upload_url(st->key, st->bucket, c->object, c->content_type, now, GCS_SIGNED_REQUEST_SECONDS,
                                       st->endpoint, url, why, sizeof why);
  } else if (strcmp(c->method, "PUT") == 0) {
    rc = reel_gcs_upload_url(st->key, st->bucket, c->object, c->content_type, now, GCS_SIGNED_REQUEST_SECONDS,
                             st->endpoint, url, why, sizeof why);
  } else {
    /* the bucket itself: list at most one object */
    reel_gcs_param query[1] = {{"max-keys", "1"}};
    reel_gcs_url_request req = {.method = c->method, .bucket = st->bucket, .object = c->object, .timestamp = now,
                                .expires_in = GCS_SIGNED_REQUEST_SECONDS, .query = query, .query_count = 1,
                                .location = {.endpoint = st->endpoint}};
    reel_gcs_signed_url signed_url;
    rc = reel_gcs_sign_url(st->key, &req, &signed_url, why, sizeof why);
    if (rc == 0) {
      *url = signed_url.url;
      signed_url.url = NULL;
      reel_gcs_signed_url_free(&signed_url);
    }
  }
  if (rc) snprintf(err, errlen, "cannot sign the GCS request for gs://%s/%s: %s", st->bucket, c->object ? c->object : "",
                   why);
  return rc;
}

/* Sends one request; 0 when an answer arrived (any status). */
static int perform(gcs_storage *st, const gcs_call *c, reel_http_client_response *resp, char *err, size_t errlen) {
  memset(resp, 0, sizeof *resp); /* the caller frees it whatever happens */
  reel_buf_init(&resp->body, 0);
  char *signed_url = NULL;
  if (!c->session) {
    int rc = sign_call(st, c, &signed_url, err, errlen);
    if (rc) return rc;
  }
  char lines[3][256];
  reel_http_client_request req = {.method = c->method, .url = c->session ? c->session : signed_url,
                                  .timeout_seconds = c->timeout_seconds ? c->timeout_seconds : 600};
  if (c->content_type) {
    snprintf(lines[req.n_headers], sizeof lines[0], "Content-Type: %s", c->content_type);
    req.headers[req.n_headers] = lines[req.n_headers], req.n_headers++;
  }
  if (!c->session && strcmp(c->method, "POST") == 0) {
    snprintf(lines[req.n_headers], sizeof lines[0], "x-goog-resumable: start");
    req.headers[req.n_headers] = lines[req.n_headers], req.n_headers++;
  }
  if (c->content_range) {
    snprintf(lines[req.n_headers], sizeof lines[0], "Content-Range: %s", c->content_range);
    req.headers[req.n_headers] = lines[req.n_headers], req.n_headers++;
  }
  if (c->file_path) {
    req.file_path = c->file_path;
    req.file_offset = c->offset;
    req.file_length = c->length;
  } else if (strcmp(c->method, "GET") != 0) {
    req.body = "";
    req.body_len = 0;
  }
  int rc = reel_http_client_perform(&req, resp, err, errlen);
  free(signed_url);
  return rc;
}

/* Runs a call until it gets a 2xx, fails permanently, or attempts run out. */
static int call(gcs_storage *st, const gcs_call *c, reel_http_client_response *resp, char *err, size_t errlen) {
  for (int attempt = 1;; attempt++) {
    int rc = perform(st, c, resp, err, errlen);
    if (rc == 0 && resp->status >= 200 && resp->status < 300) return 0;
    int retry = rc == REEL_ETIMEOUT || rc == REEL_EIO ? 1 : rc == 0 && reel_http_client_retryable(resp);
    if (rc == 0) describe_answer(st, c, resp, err, errlen);
    if (!retry || attempt >= st->attempts) {
      if (retry) snprintf(err + strlen(err), errlen - strlen(err), " (after %d attempts)", attempt);
      return rc ? rc : REEL_EIO;
    }
    reel_log(REEL_LOG_WARN, "storage request failed; retrying", "{s:s, s:i}", "error", err, "attempt", attempt);
    reel_http_client_response_free(resp);
    reel_http_client_back_off(attempt);
  }
}

/* ---- resumable upload ---- */

/* The first byte GCS does not hold yet, from a 308's "Range: bytes=0-N"
 * (no Range: nothing yet). -1 when the header makes no sense. */
static int64_t persisted_end(const reel_http_client_response *resp, int64_t size) {
  if (!resp->range[0]) return 0;
  const char *dash = strncmp(resp->range, "bytes=0-", 8) == 0 ? resp->range + 7 : NULL;
  if (!dash) return -1;
  char *end;
  long long last = strtoll(dash + 1, &end, 10);
  if (end == dash + 1 || *end != '\0' || last < 0 || last >= size) return -1;
  return (int64_t)last + 1;
}

static int put_resumable(gcs_storage *st, const char *key, const char *path, int64_t size, const char *type,
                         char *err, size_t errlen) {
  reel_http_client_response resp;
  gcs_call start = {.method = "POST", .object = key, .content_type = type};
  int rc = call(st, &start, &resp, err, errlen);
  char *session = rc == 0 && resp.location[0] ? strdup(resp.location) : NULL;
  reel_http_client_response_free(&resp);
  if (rc) return rc;
  if (!session) {
    snprintf(err, errlen, "GCS opened no resumable session for gs://%s/%s (no usable Location header)", st->bucket, key);
    return REEL_EIO;
  }
  int64_t offset = 0;
  int failures = 0, ask_status = 0;
  char range[96];
  for (;;) {
    gcs_call c = {.method = "PUT", .object = key, .session = session, .content_range = range};
    if (ask_status || size == 0) {
      snprintf(range, sizeof range, "bytes */%" PRId64, size);
    } else {
      c.file_path = path;
      c.offset = offset;
      c.length = size - offset < st->chunk ? size - offset : st->chunk;
      snprintf(range, sizeof range, "bytes %" PRId64 "-%" PRId64 "/%" PRId64, offset, offset + c.length - 1, size);
    }
    rc = perform(st, &c, &resp, err, errlen);
    int retry;
    if (rc == 0 && (resp.status == 200 || resp.status == 201)) break; /* the object exists */
    if (rc == 0 && resp.status == 308) {
      int64_t next = persisted_end(&resp, size);
      if (next >= 0 && (ask_status || next > offset)) {
        if (next > offset) failures = 0; /* progress */
        offset = next;
        ask_status = 0;
        reel_http_client_response_free(&resp);
        continue;
      }
      snprintf(err, errlen, "GCS kept %s of the resumable upload of gs://%s/%s after the chunk at byte %" PRId64,
               next < 0 ? "an unreadable range" : "no more", st->bucket, key, offset);
      retry = 1;
    } else {
      retry = rc == REEL_ETIMEOUT || rc == REEL_EIO ? 1 : rc == 0 && reel_http_client_retryable(&resp);
      if (rc == 0) describe_answer(st, &c, &resp, err, errlen);
      if (rc == 0 && (resp.status == 404 || resp.status == 410))
        snprintf(err + strlen(err), errlen - strlen(err), "; the upload session is gone");
    }
    reel_http_client_response_free(&resp);
    if (!retry || ++failures >= st->attempts) {
      if (retry) snprintf(err + strlen(err), errlen - strlen(err), " (after %d attempts)", failures);
      free(session);
      return rc ? rc : REEL_EIO;
    }
    reel_log(REEL_LOG_WARN, "storage request failed; asking GCS what it holds and resuming", "{s:s, s:i}", "error", err,
             "attempt", failures);
    reel_http_client_back_off(failures);
    ask_status = 1;
  }
  reel_http_client_response_free(&resp);
  free(session);
  return 0;
}

/* ---- storage ops ---- */

static int gcs_put_file(reel_storage *base, const char *key, const char *local_path, char **uri, char **gcs_uri,
                        char *err, size_t errlen) {
  gcs_storage *st = (gcs_storage *)base;
  struct stat info;
  if (stat(local_path, &info) != 0) {
    snprintf(err, errlen, "cannot read the file to upload to gs://%s/%s", st->bucket, key);
    return REEL_EIO;
  }
  const char *type = strstr(key, ".vtt") ? "text/vtt" : "video/mp4";
  int rc;
  if (info.st_size >= st->threshold) {
    rc = put_resumable(st, key, local_path, info.st_size, type, err, errlen);
  } else {
    gcs_call c = {.method = "PUT", .object = key, .content_type = type, .file_path = local_path, .offset = 0,
                  .length = info.st_size};
    reel_http_client_response resp;
    rc = call(st, &c, &resp, err, errlen);
    reel_http_client_response_free(&resp);
  }
  if (rc) {
    reel_log(REEL_LOG_ERROR, "upload to GCS failed", "{s:s}", "error", err);
    return rc;
  }
  size_t n = strlen(st->bucket) + strlen(key) + 8;
  *uri = malloc(n);
  *gcs_uri = malloc(n);
  if (!*uri || !*gcs_uri) {
    free(*uri);
    free(*gcs_uri);
    *uri = *gcs_uri = NULL;
    return REEL_ENOMEM;
  }
  snprintf(*uri, n, "gs://%s/%s", st->bucket, key);
  memcpy(*gcs_uri, *uri, n);
  return 0;
}

static int gcs_download_url(reel_storage *base, const char *key, const char *job_id, const char *name,
                            int64_t expires_at, char **url) {
  (void)job_id;
  (void)name;
  gcs_storage *st = (gcs_storage *)base;
  *url = NULL;
  if (st->base.public_urls) {
    reel_buf b;
    reel_buf_init(&b, 8192);
    int rc = reel_buf_printf(&b, "%s/%s/", st->public_base, st->bucket);
    if (!rc) rc = reel_gcs_percent_encode(key, strlen(key), 1, &b);
    if (!rc) *url = reel_buf_steal(&b);
    reel_buf_free(&b);
    return rc ? rc : *url ? 0 : REEL_ENOMEM;
  }
  int64_t now = (int64_t)time(NULL);
  int64_t expires = expires_at - now;
  if (expires < 1) expires = 1;
  if (expires > REEL_GCS_EXPIRES_MAX) expires = REEL_GCS_EXPIRES_MAX;
  char err[256];
  int rc = reel_gcs_download_url(st->key, st->bucket, key, now, expires, st->endpoint, url, err, sizeof err);
  if (rc) reel_log(REEL_LOG_ERROR, "cannot sign a GCS download URL", "{s:s}", "error", err);
  return rc;
}

static int gcs_open_read(reel_storage *base, const char *key, int *fd) {
  (void)base;
  (void)key;
  (void)fd;
  return REEL_EUNSUPPORTED; /* clients download from GCS itself */
}

static int gcs_check(reel_storage *base, char *err, size_t errlen) {
  gcs_storage *st = (gcs_storage *)base;
  gcs_call c = {.method = "GET", .timeout_seconds = GCS_CHECK_TIMEOUT_SECONDS};
  reel_http_client_response resp;
  char why[256] = "";
  int rc = perform(st, &c, &resp, why, sizeof why);
  if (rc) {
    snprintf(err, errlen, "bucket %s (service.storage.bucket) is unreachable: %s", st->bucket, why);
  } else if (resp.status < 200 || resp.status >= 300) {
    char code[96];
    reel_http_client_error_code(&resp, code, sizeof code);
    snprintf(err, errlen, "bucket %s (service.storage.bucket) answered HTTP %ld%s%s", st->bucket, resp.status,
             code[0] ? " " : "", code);
    rc = REEL_EIO;
  }
  reel_http_client_response_free(&resp);
  return rc;
}

static void gcs_close(reel_storage *base) {
  gcs_storage *st = (gcs_storage *)base;
  reel_gcs_key_free(st->key);
  free(st->bucket);
  free(st->endpoint);
  free(st->public_base);
  free(st);
}

static const reel_storage_ops gcs_ops = {
    .name = "gcs",
    .put_file = gcs_put_file,
    .download_url = gcs_download_url,
    .open_read = gcs_open_read,
    .check = gcs_check,
    .close = gcs_close,
};

/* "https://storage.googleapis.com", or the endpoint with a scheme and no trailing "/". */
static char *public_base_of(const char *endpoint) {
  if (!endpoint) return strdup(GCS_DEFAULT_ENDPOINT);
  size_t len = strlen(endpoint);
  if (len && endpoint[len - 1] == '/') len--;
  int has_scheme = strstr(endpoint, "://") != NULL;
  char *out = malloc(len + 9);
  if (out) snprintf(out, len + 9, "%s%.*s", has_scheme ? "" : "https://", (int)len, endpoint);
  return out;
}

int reel_storage_open_gcs(const reel_storage_gcs_settings *set, reel_storage **out, char *err, size_t errlen) {
  if (!set->bucket || !set->credentials_file) {
    snprintf(err, errlen, "service.storage: the gcs backend needs bucket and credentials_file");
    return REEL_ECONFIG;
  }
  gcs_storage *st = calloc(1, sizeof *st);
  if (!st) return REEL_ENOMEM;
  st->base.ops = &gcs_ops;
  st->base.public_urls = !set->signed_urls;
  st->bucket = strdup(set->bucket);
  st->endpoint = set->endpoint ? strdup(set->endpoint) : NULL;
  st->public_base = public_base_of(set->endpoint);
  st->threshold = (int64_t)set->resumable_threshold;
  st->chunk = (int64_t)(set->resumable_chunk / GCS_CHUNK_UNIT) * GCS_CHUNK_UNIT;
  if (st->chunk < GCS_CHUNK_UNIT) st->chunk = GCS_CHUNK_UNIT;
  st->attempts = set->upload_attempts > 0 ? set->upload_attempts : 1;
  if (!st->bucket || (set->endpoint && !st->endpoint) || !st->public_base) {
    gcs_close(&st->base);
    return REEL_ENOMEM;
  }
  char why[512];
  int rc = reel_gcs_key_load_file(set->credentials_file, &st->key, why, sizeof why);
  if (rc) {
    snprintf(err, errlen, "service.storage.credentials_file: %s", why);
    gcs_close(&st->base);
    return rc == REEL_ENOMEM ? rc : REEL_ECONFIG;
  }
  /* sign once now, so a bucket name or endpoint GCS cannot take fails at start-up */
  char *probe = NULL;
  rc = reel_gcs_download_url(st->key, st->bucket, "reel-startup-check", (int64_t)time(NULL), 60, st->endpoint, &probe,
                             why, sizeof why);
  free(probe);
  if (rc) {
    snprintf(err, errlen, "service.storage.bucket or service.storage.endpoint: %s", why);
    gcs_close(&st->base);
    return rc == REEL_ENOMEM ? rc : REEL_ECONFIG;
  }
  *out = &st->base;
  return 0;
}
