/* libcurl easy handles, one per request: simple, thread-safe, and fast
 * enough for a few uploads at a time. */
#include "storage/http_client.h"

#define CURL_DISABLE_TYPECHECK /* calls go through the pointers below */
#include <curl/curl.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/error.h"
#include "common/random.h"
#include "common/redact.h"
#include "jobs/jobs.h"

/* libcurl (and the OpenSSL, Kerberos, LDAP and SSH libraries it pulls in) is
 * loaded only by a reeld whose storage needs it, so a reeld on local disk does
 * not carry ~4.5 MB of their pages. Set once by reel_http_client_global_init. */
static struct {
  void *handle;
  CURLcode (*global_init)(long flags);
  CURL *(*easy_init)(void);
  CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...);
  CURLcode (*easy_perform)(CURL *curl);
  CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...);
  void (*easy_cleanup)(CURL *curl);
  const char *(*easy_strerror)(CURLcode code);
  struct curl_slist *(*slist_append)(struct curl_slist *list, const char *text);
  void (*slist_free_all)(struct curl_slist *list);
} libcurl;

int reel_http_client_global_init(char *err, size_t errlen) {
  if (libcurl.handle) return 0;
  void *handle = dlopen(REEL_HTTP_CLIENT_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    snprintf(err, errlen, "cannot load %s, which S3 and GCS storage need (Debian package libcurl3-gnutls): %s",
             REEL_HTTP_CLIENT_LIBRARY, dlerror());
    return REEL_EIO;
  }
  struct {
    const char *name;
    void **slot;
  } symbols[] = {
      {"curl_global_init", (void **)&libcurl.global_init},   {"curl_easy_init", (void **)&libcurl.easy_init},
      {"curl_easy_setopt", (void **)&libcurl.easy_setopt},   {"curl_easy_perform", (void **)&libcurl.easy_perform},
      {"curl_easy_getinfo", (void **)&libcurl.easy_getinfo}, {"curl_easy_cleanup", (void **)&libcurl.easy_cleanup},
      {"curl_easy_strerror", (void **)&libcurl.easy_strerror}, {"curl_slist_append", (void **)&libcurl.slist_append},
      {"curl_slist_free_all", (void **)&libcurl.slist_free_all},
  };
  for (size_t i = 0; i < sizeof symbols / sizeof *symbols; i++) {
    *symbols[i].slot = dlsym(handle, symbols[i].name);
    if (!*symbols[i].slot) {
      snprintf(err, errlen, "%s has no %s", REEL_HTTP_CLIENT_LIBRARY, symbols[i].name);
      dlclose(handle);
      return REEL_EIO;
    }
  }
  if (libcurl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    snprintf(err, errlen, "cannot initialise libcurl");
    dlclose(handle);
    return REEL_EIO;
  }
  libcurl.handle = handle;
  return 0;
}

typedef struct {
  FILE *file;
  int64_t remaining;
  const char *data;
  size_t len, pos;
} upload_source;

static size_t read_body(char *dst, size_t size, size_t n, void *userdata) {
  upload_source *src = userdata;
  size_t want = size * n;
  if (src->file) {
    if ((int64_t)want > src->remaining) want = (size_t)src->remaining;
    size_t got = want ? fread(dst, 1, want, src->file) : 0;
    src->remaining -= (int64_t)got;
    return got < want && ferror(src->file) ? CURL_READFUNC_ABORT : got;
  }
  if (want > src->len - src->pos) want = src->len - src->pos;
  memcpy(dst, src->data + src->pos, want);
  src->pos += want;
  return want;
}

static size_t write_body(char *data, size_t size, size_t n, void *userdata) {
  reel_http_client_response *resp = userdata;
  size_t len = size * n;
  size_t room = resp->body.max - resp->body.len;
  reel_buf_append(&resp->body, data, len < room ? len : room); /* keep the first MiB, drop the rest */
  return len;
}

/* Copies the value of header line data[0..len) into out when its name is
 * name (case-insensitive), trimmed; returns 1 when the name matched. A value
 * that does not fit leaves out empty when drop_long, else truncated. */
static int capture_header(const char *data, size_t len, const char *name, char *out, size_t outlen, int drop_long) {
  size_t n = strlen(name);
  if (len <= n || strncasecmp(data, name, n) != 0 || data[n] != ':') return 0;
  size_t start = n + 1, end = len;
  while (start < end && (data[start] == ' ' || data[start] == '\t')) start++;
  while (end > start && (data[end - 1] == '\r' || data[end - 1] == '\n' || data[end - 1] == ' ')) end--;
  if (drop_long && end - start >= outlen) out[0] = '\0';
  else snprintf(out, outlen, "%.*s", (int)(end - start), data + start);
  return 1;
}

static size_t read_header(char *data, size_t size, size_t n, void *userdata) {
  reel_http_client_response *resp = userdata;
  size_t len = size * n;
  if (!capture_header(data, len, "etag", resp->etag, sizeof resp->etag, 0) &&
      !capture_header(data, len, "location", resp->location, sizeof resp->location, 1) &&
      !capture_header(data, len, "range", resp->range, sizeof resp->range, 1))
    capture_header(data, len, "retry-after", resp->retry_after, sizeof resp->retry_after, 1);
  return len;
}

/* Stops a transfer whose caller set its abort flag. */
static int check_abort(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
  (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
  const _Atomic int *abort = data;
  return *abort ? 1 : 0;
}

int reel_http_client_perform(const reel_http_client_request *req, reel_http_client_response *resp, char *err,
                             size_t errlen) {
  memset(resp, 0, sizeof *resp);
  reel_buf_init(&resp->body, 1 << 20);
  CURL *curl = libcurl.easy_init();
  if (!curl) return REEL_ENOMEM;
  char curl_err[CURL_ERROR_SIZE] = "";
  struct curl_slist *headers = NULL;
  for (int i = 0; i < req->n_headers; i++) headers = libcurl.slist_append(headers, req->headers[i]);
  headers = libcurl.slist_append(headers, "Expect:"); /* no 100-continue round trip */
  upload_source src = {0};
  libcurl.easy_setopt(curl, CURLOPT_URL, req->url);
  libcurl.easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  libcurl.easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
  libcurl.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  libcurl.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 15000L);
  if (req->timeout_ms > 0) libcurl.easy_setopt(curl, CURLOPT_TIMEOUT_MS, req->timeout_ms);
  else libcurl.easy_setopt(curl, CURLOPT_TIMEOUT, req->timeout_seconds > 0 ? req->timeout_seconds : 300L);
  if (req->abort) {
    libcurl.easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, check_abort);
    libcurl.easy_setopt(curl, CURLOPT_XFERINFODATA, (void *)req->abort);
    libcurl.easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  }
  libcurl.easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
  libcurl.easy_setopt(curl, CURLOPT_WRITEDATA, resp);
  libcurl.easy_setopt(curl, CURLOPT_HEADERFUNCTION, read_header);
  libcurl.easy_setopt(curl, CURLOPT_HEADERDATA, resp);
  libcurl.easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  if (req->file_path) {
    src.file = fopen(req->file_path, "rb");
    if (!src.file || fseeko(src.file, req->file_offset, SEEK_SET) != 0) {
      snprintf(err, errlen, "cannot read the file to upload");
      if (src.file) fclose(src.file);
      libcurl.slist_free_all(headers);
      libcurl.easy_cleanup(curl);
      return REEL_EIO;
    }
    src.remaining = req->file_length;
  } else if (req->body) {
    src.data = req->body;
    src.len = req->body_len;
  }
  if (strcmp(req->method, "PUT") == 0) {
    libcurl.easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    libcurl.easy_setopt(curl, CURLOPT_READFUNCTION, read_body);
    libcurl.easy_setopt(curl, CURLOPT_READDATA, &src);
    libcurl.easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                     (curl_off_t)(req->file_path ? req->file_length : (int64_t)req->body_len));
  } else if (strcmp(req->method, "POST") == 0) {
    libcurl.easy_setopt(curl, CURLOPT_POST, 1L);
    libcurl.easy_setopt(curl, CURLOPT_READFUNCTION, read_body);
    libcurl.easy_setopt(curl, CURLOPT_READDATA, &src);
    libcurl.easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)(req->file_path ? req->file_length : (int64_t)req->body_len));
  } else if (strcmp(req->method, "HEAD") == 0) {
    libcurl.easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (strcmp(req->method, "GET") != 0) {
    libcurl.easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
  }
  CURLcode rc = libcurl.easy_perform(curl);
  if (rc == CURLE_OK) libcurl.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
  if (src.file) fclose(src.file);
  libcurl.slist_free_all(headers);
  libcurl.easy_cleanup(curl);
  if (rc != CURLE_OK) {
    resp->transport_error = 1;
    reel_buf where;
    reel_buf_init(&where, 4096);
    reel_redact_url(req->url, &where);
    snprintf(err, errlen, "%s %s: %s", req->method, where.data ? where.data : "", curl_err[0] ? curl_err : libcurl.easy_strerror(rc));
    reel_buf_free(&where);
    return rc == CURLE_OPERATION_TIMEDOUT ? REEL_ETIMEOUT : REEL_EIO;
  }
  return 0;
}

void reel_http_client_response_free(reel_http_client_response *resp) { reel_buf_free(&resp->body); }

void reel_http_client_error_code(const reel_http_client_response *resp, char *out, size_t n) {
  out[0] = '\0';
  const char *b = resp->body.data;
  const char *start = b ? strstr(b, "<Code>") : NULL;
  const char *end = start ? strstr(start, "</Code>") : NULL;
  if (start && end && end - start - 6 < 80) snprintf(out, n, "%.*s", (int)(end - start - 6), start + 6);
}

void reel_http_client_back_off(int attempt) {
  int64_t delay = reel_jobs_backoff_ms(attempt, 200, 10000, reel_random_unit());
  struct timespec ts = {(time_t)(delay / 1000), (long)(delay % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int reel_http_client_retryable(const reel_http_client_response *resp) {
  if (resp->transport_error || resp->status == 0) return 1;
  return resp->status == 408 || resp->status == 429 || resp->status >= 500;
}
