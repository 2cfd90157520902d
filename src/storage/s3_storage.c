/* S3-compatible artifact storage (AWS S3, Wasabi, MinIO, R2): uploads signed
 * with SigV4 in the Authorization header, a single PUT for small files and a
 * multipart upload with several parts in flight above the threshold, each
 * body checked by the server against Content-MD5 and a signed SHA-256.
 * Transient failures (no response, 408, 429, 5xx) are retried with backoff;
 * others fail at once with the service's error code. Downloads are presigned
 * URLs, made on demand. Runs on worker threads only. */
#include <gnutls/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/encode.h"
#include "common/error.h"
#include "common/log.h"
#include "storage/http_client.h"
#include "storage/sigv4.h"
#include "storage/storage.h"

typedef struct {
  reel_storage base;
  reel_sigv4_s3_config s3;
  char *endpoint, *region, *bucket, *access_key, *secret_key, *session_token;
  int64_t multipart_threshold, part_size;
  int parallel, attempts;
} s3_storage;

/* ---- one signed request, retried ---- */

typedef struct {
  const char *method;
  const char *key;          /* NULL for the bucket */
  const char *query;        /* canonical-ready query, e.g. "uploads=" or "partNumber=1&uploadId=..." */
  const char *file_path;    /* body from file range, or: */
  int64_t offset, length;
  const char *body;         /* body from memory */
  size_t body_len;
  const char *content_type;
} s3_call;

/* SHA-256 (hex) and MD5 (base64) of a body: the payload hash S3 signs and the
 * Content-MD5 it verifies. */
static int digests(const s3_call *c, char sha_hex[65], char md5_b64[32]) {
  gnutls_hash_hd_t sha, md5;
  if (gnutls_hash_init(&sha, GNUTLS_DIG_SHA256) != 0) return REEL_EIO;
  if (gnutls_hash_init(&md5, GNUTLS_DIG_MD5) != 0) {
    gnutls_hash_deinit(sha, NULL);
    return REEL_EIO;
  }
  int rc = 0;
  if (c->file_path) {
    FILE *f = fopen(c->file_path, "rb");
    if (!f || fseeko(f, c->offset, SEEK_SET) != 0) rc = REEL_EIO;
    char buf[65536];
    int64_t left = c->length;
    while (rc == 0 && left > 0) {
      size_t want = left < (int64_t)sizeof buf ? (size_t)left : sizeof buf;
      size_t got = fread(buf, 1, want, f);
      if (got == 0) rc = REEL_EIO;
      gnutls_hash(sha, buf, got);
      gnutls_hash(md5, buf, got);
      left -= (int64_t)got;
    }
    if (f) fclose(f);
  } else if (c->body_len) {
    gnutls_hash(sha, c->body, c->body_len);
    gnutls_hash(md5, c->body, c->body_len);
  }
  unsigned char s[32], m[16];
  gnutls_hash_deinit(sha, s);
  gnutls_hash_deinit(md5, m);
  if (rc) return rc;
  reel_hex_encode(s, 32, sha_hex);
  reel_buf b64;
  reel_buf_init(&b64, 31);
  rc = reel_base64_encode(m, 16, &b64);
  if (rc == 0) snprintf(md5_b64, 32, "%s", b64.data);
  reel_buf_free(&b64);
  return rc;
}

static int perform(s3_storage *st, const s3_call *c, reel_http_client_response *resp, char *err, size_t errlen) {
  memset(resp, 0, sizeof *resp); /* the caller frees it whatever happens */
  reel_buf_init(&resp->body, 0);
  reel_sigv4_s3_location loc;
  int rc = reel_sigv4_s3_locate(&st->s3, st->bucket, c->key, &loc);
  if (rc) {
    snprintf(err, errlen, "the object key or bucket name is not valid for S3");
    return rc;
  }
  char sha[65], md5[32];
  rc = digests(c, sha, md5);
  reel_sigv4_header signed_headers[2];
  size_t n_signed = 0;
  char content_md5[64], content_type[160];
  int has_body = c->file_path || c->body;
  if (has_body) {
    snprintf(content_md5, sizeof content_md5, "%s", md5);
    signed_headers[n_signed++] = (reel_sigv4_header){"Content-MD5", content_md5};
  }
  if (c->content_type) {
    snprintf(content_type, sizeof content_type, "%s", c->content_type);
    signed_headers[n_signed++] = (reel_sigv4_header){"Content-Type", content_type};
  }
  reel_sigv4_signer signer = {.credentials = st->s3.credentials, .region = st->region, .service = "s3"};
  reel_sigv4_request sreq = {.method = c->method, .host = loc.host, .path = loc.path, .query = c->query,
                             .headers = signed_headers, .header_count = n_signed, .payload_hash = sha};
  reel_sigv4_fields added = {0};
  if (rc == 0) rc = reel_sigv4_sign_headers(&signer, &sreq, (int64_t)time(NULL), &added);
  if (rc) {
    reel_sigv4_s3_location_free(&loc);
    snprintf(err, errlen, "cannot sign the S3 request");
    return rc;
  }
  char url[4096];
  snprintf(url, sizeof url, "%s%s%s%s", loc.origin, loc.path, c->query && *c->query ? "?" : "", c->query ? c->query : "");
  char lines[REEL_HTTP_CLIENT_MAX_HEADERS][2048];
  reel_http_client_request hreq = {.method = c->method, .url = url, .timeout_seconds = 600};
  for (size_t i = 0; i < n_signed && hreq.n_headers < REEL_HTTP_CLIENT_MAX_HEADERS; i++) {
    snprintf(lines[hreq.n_headers], sizeof lines[0], "%s: %s", signed_headers[i].name, signed_headers[i].value);
    hreq.headers[hreq.n_headers] = lines[hreq.n_headers];
    hreq.n_headers++;
  }
  for (size_t i = 0; i < added.count && hreq.n_headers < REEL_HTTP_CLIENT_MAX_HEADERS; i++) {
    snprintf(lines[hreq.n_headers], sizeof lines[0], "%s: %s", added.items[i].name, added.items[i].value);
    hreq.headers[hreq.n_headers] = lines[hreq.n_headers];
    hreq.n_headers++;
  }
  hreq.file_path = c->file_path;
  hreq.file_offset = c->offset;
  hreq.file_length = c->length;
  hreq.body = c->body;
  hreq.body_len = c->body_len;
  rc = reel_http_client_perform(&hreq, resp, err, errlen);
  memset(lines, 0, sizeof lines); /* signed headers: do not leave them around */
  reel_sigv4_fields_free(&added);
  reel_sigv4_s3_location_free(&loc);
  return rc;
}

/* Runs a call until it succeeds (2xx), fails permanently, or attempts run out. */
static int call(s3_storage *st, const s3_call *c, reel_http_client_response *resp, char *err, size_t errlen) {
  for (int attempt = 1;; attempt++) {
    int rc = perform(st, c, resp, err, errlen);
    if (rc == 0 && resp->status >= 200 && resp->status < 300) return 0;
    int retry = rc == REEL_ETIMEOUT || rc == REEL_EIO ? 1 : rc == 0 && reel_http_client_retryable(resp);
    if (rc == 0) {
      char code[96];
      reel_http_client_error_code(resp, code, sizeof code);
      snprintf(err, errlen, "S3 answered %ld%s%s to %s s3://%s/%s", resp->status, code[0] ? " " : "", code, c->method,
               st->bucket, c->key ? c->key : "");
    }
    if (!retry || attempt >= st->attempts) {
      if (retry) snprintf(err + strlen(err), errlen - strlen(err), " (after %d attempts)", attempt);
      return rc ? rc : REEL_EIO;
    }
    reel_log(REEL_LOG_WARN, "storage request failed; retrying", "{s:s, s:i}", "error", err, "attempt", attempt);
    reel_http_client_response_free(resp);
    reel_http_client_back_off(attempt);
  }
}

/* ---- multipart ---- */

typedef struct {
  s3_storage *st;
  const char *key, *path, *upload_id;
  int64_t size;
  int n_parts, next_part, failed;
  char (*etags)[160];
  char err[512];
  pthread_mutex_t lock;
} multipart;

static void *upload_parts(void *arg) {
  multipart *m = arg;
  for (;;) {
    pthread_mutex_lock(&m->lock);
    int part = m->failed ? m->n_parts : m->next_part++;
    pthread_mutex_unlock(&m->lock);
    if (part >= m->n_parts) return NULL;
    char query[512];
    snprintf(query, sizeof query, "partNumber=%d&uploadId=%s", part + 1, m->upload_id);
    int64_t offset = (int64_t)part * m->st->part_size;
    s3_call c = {.method = "PUT", .key = m->key, .query = query, .file_path = m->path, .offset = offset,
                 .length = offset + m->st->part_size > m->size ? m->size - offset : m->st->part_size};
    reel_http_client_response resp;
    char err[512];
    int rc = call(m->st, &c, &resp, err, sizeof err);
    pthread_mutex_lock(&m->lock);
    if (rc == 0 && resp.etag[0]) {
      snprintf(m->etags[part], sizeof m->etags[0], "%s", resp.etag);
    } else if (!m->failed) {
      m->failed = 1;
      snprintf(m->err, sizeof m->err, "%s", rc ? err : "S3 returned no ETag for a part");
    }
    pthread_mutex_unlock(&m->lock);
    reel_http_client_response_free(&resp);
  }
}

static int put_multipart(s3_storage *st, const char *key, const char *path, int64_t size, char *err, size_t errlen) {
  reel_http_client_response resp;
  s3_call start = {.method = "POST", .key = key, .query = "uploads=", .body = "", .body_len = 0,
                   .content_type = "video/mp4"};
  int rc = call(st, &start, &resp, err, errlen);
  char upload_id[512] = "", encoded[1024];
  const char *b = rc == 0 ? resp.body.data : NULL;
  const char *s = b ? strstr(b, "<UploadId>") : NULL;
  const char *e = s ? strstr(s, "</UploadId>") : NULL;
  if (s && e && e - s - 10 < (long)sizeof upload_id) snprintf(upload_id, sizeof upload_id, "%.*s", (int)(e - s - 10), s + 10);
  reel_http_client_response_free(&resp);
  if (rc) return rc;
  if (!upload_id[0]) {
    snprintf(err, errlen, "S3 started a multipart upload without an UploadId");
    return REEL_EIO;
  }
  char *uri_encoded = NULL;
  if (reel_sigv4_uri_encode(upload_id, strlen(upload_id), 0, &uri_encoded) != 0 ||
      strlen(uri_encoded) >= sizeof encoded) {
    reel_sigv4_free(uri_encoded);
    snprintf(err, errlen, "S3 returned an UploadId that cannot be used");
    return REEL_EIO;
  }
  snprintf(encoded, sizeof encoded, "%s", uri_encoded);
  reel_sigv4_free(uri_encoded);
  multipart m = {.st = st, .key = key, .path = path, .upload_id = encoded, .size = size};
  m.n_parts = (int)((size + st->part_size - 1) / st->part_size);
  m.etags = calloc((size_t)m.n_parts, sizeof *m.etags);
  pthread_mutex_init(&m.lock, NULL);
  int threads = st->parallel < m.n_parts ? st->parallel : m.n_parts;
  pthread_t tid[16];
  int started = 0;
  if (m.etags)
    for (; started < threads; started++)
      if (pthread_create(&tid[started], NULL, upload_parts, &m) != 0) break;
  if (started == 0) upload_parts(&m); /* no threads: do it here */
  for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
  pthread_mutex_destroy(&m.lock);
  char query[1100];
  snprintf(query, sizeof query, "uploadId=%s", encoded);
  if (!m.etags || m.failed) {
    snprintf(err, errlen, "%s", m.etags ? m.err : "out of memory");
    s3_call abort_call = {.method = "DELETE", .key = key, .query = query};
    char abort_err[256];
    if (call(st, &abort_call, &resp, abort_err, sizeof abort_err) != 0)
      reel_log(REEL_LOG_WARN, "aborting a multipart upload failed", "{s:s}", "error", abort_err);
    reel_http_client_response_free(&resp);
    free(m.etags);
    return REEL_EIO;
  }
  reel_buf xml;
  reel_buf_init(&xml, (size_t)m.n_parts * 256 + 128);
  reel_buf_append_str(&xml, "<CompleteMultipartUpload>");
  for (int i = 0; i < m.n_parts; i++)
    reel_buf_printf(&xml, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1, m.etags[i]);
  reel_buf_append_str(&xml, "</CompleteMultipartUpload>");
  free(m.etags);
  s3_call complete = {.method = "POST", .key = key, .query = query, .body = xml.data, .body_len = xml.len,
                      .content_type = "application/xml"};
  rc = call(st, &complete, &resp, err, errlen);
  /* S3 may answer 200 with an <Error> body to CompleteMultipartUpload */
  if (rc == 0 && resp.body.data && strstr(resp.body.data, "<Error>")) {
    char code[96];
    reel_http_client_error_code(&resp, code, sizeof code);
    snprintf(err, errlen, "S3 refused to complete the multipart upload: %s", code);
    rc = REEL_EIO;
  }
  reel_http_client_response_free(&resp);
  reel_buf_free(&xml);
  return rc;
}

/* ---- storage ops ---- */

static int s3_put_file(reel_storage *base, const char *key, const char *local_path, char **uri, char **gcs_uri,
                       char *err, size_t errlen) {
  s3_storage *st = (s3_storage *)base;
  struct stat info;
  if (stat(local_path, &info) != 0) return REEL_EIO;
  int rc;
  if (info.st_size >= st->multipart_threshold) {
    rc = put_multipart(st, key, local_path, info.st_size, err, errlen);
  } else {
    const char *type = strstr(key, ".vtt") ? "text/vtt" : "video/mp4";
    s3_call c = {.method = "PUT", .key = key, .file_path = local_path, .offset = 0, .length = info.st_size,
                 .content_type = type};
    reel_http_client_response resp;
    rc = call(st, &c, &resp, err, errlen);
    reel_http_client_response_free(&resp);
  }
  if (rc) {
    reel_log(REEL_LOG_ERROR, "upload to S3 failed", "{s:s}", "error", err);
    return rc;
  }
  size_t n = strlen(st->bucket) + strlen(key) + 8;
  *uri = malloc(n);
  if (!*uri) return REEL_ENOMEM;
  snprintf(*uri, n, "s3://%s/%s", st->bucket, key);
  *gcs_uri = NULL;
  return 0;
}

static int s3_download_url(reel_storage *base, const char *key, const char *job_id, const char *name,
                           int64_t expires_at, char **url) {
  (void)job_id;
  (void)name;
  s3_storage *st = (s3_storage *)base;
  int64_t now = (int64_t)time(NULL);
  reel_sigv4_s3_presign_request req = {.method = "GET", .bucket = st->bucket, .key = key, .now = now,
                                       .expires = expires_at - now > 0 ? expires_at - now : 1};
  char *signed_url = NULL;
  int rc = reel_sigv4_s3_presign_url(&st->s3, &req, &signed_url);
  if (rc) return rc;
  *url = strdup(signed_url);
  reel_sigv4_free(signed_url);
  return *url ? 0 : REEL_ENOMEM;
}

static int s3_open_read(reel_storage *base, const char *key, int *fd) {
  (void)base;
  (void)key;
  (void)fd;
  return REEL_EUNSUPPORTED; /* clients download from S3 itself */
}

static int s3_check(reel_storage *base, char *err, size_t errlen) {
  s3_storage *st = (s3_storage *)base;
  s3_call c = {.method = "HEAD"};
  reel_http_client_response resp;
  int rc = perform(st, &c, &resp, err, errlen);
  if (rc == 0 && (resp.status < 200 || resp.status >= 300)) {
    snprintf(err, errlen, "bucket %s (service.storage.bucket) answered HTTP %ld", st->bucket, resp.status);
    rc = REEL_EIO;
  }
  reel_http_client_response_free(&resp);
  return rc;
}

static void s3_close(reel_storage *base) {
  s3_storage *st = (s3_storage *)base;
  free(st->endpoint);
  free(st->region);
  free(st->bucket);
  free(st->access_key);
  if (st->secret_key) memset(st->secret_key, 0, strlen(st->secret_key));
  free(st->secret_key);
  free(st->session_token);
  free(st);
}

static const reel_storage_ops s3_ops = {
    .name = "s3",
    .put_file = s3_put_file,
    .download_url = s3_download_url,
    .open_read = s3_open_read,
    .check = s3_check,
    .close = s3_close,
};

int reel_storage_open_s3(const reel_storage_s3_settings *set, reel_storage **out, char *err, size_t errlen) {
  if (!set->bucket || !set->access_key_id || !set->secret_access_key) {
    snprintf(err, errlen, "service.storage: the s3 backend needs bucket, access_key_id and secret_access_key");
    return REEL_ECONFIG;
  }
  s3_storage *st = calloc(1, sizeof *st);
  if (!st) return REEL_ENOMEM;
  st->base.ops = &s3_ops;
  char endpoint[512];
  if (set->endpoint) snprintf(endpoint, sizeof endpoint, "%s", set->endpoint);
  else snprintf(endpoint, sizeof endpoint, "https://s3.%s.amazonaws.com", set->region ? set->region : "us-east-1");
  st->endpoint = strdup(endpoint);
  st->region = strdup(set->region ? set->region : "us-east-1");
  st->bucket = strdup(set->bucket);
  st->access_key = strdup(set->access_key_id);
  st->secret_key = strdup(set->secret_access_key);
  st->session_token = set->session_token ? strdup(set->session_token) : NULL;
  st->multipart_threshold = (int64_t)set->multipart_threshold;
  st->part_size = (int64_t)set->multipart_part;
  st->parallel = set->multipart_parallel > 16 ? 16 : set->multipart_parallel;
  st->attempts = set->upload_attempts;
  if (!st->endpoint || !st->region || !st->bucket || !st->access_key || !st->secret_key) {
    s3_close(&st->base);
    return REEL_ENOMEM;
  }
  st->s3 = (reel_sigv4_s3_config){.endpoint = st->endpoint, .region = st->region, .virtual_hosted = !set->path_style,
                                  .credentials = {st->access_key, st->secret_key, st->session_token}};
  *out = &st->base;
  return 0;
}
