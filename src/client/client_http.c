#include "client/client_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/buf.h"

#define MAX_ANSWER_BYTES (8u << 20) /* a JSON answer (a page of jobs, 10,000 log lines) */
#define CONNECT_TIMEOUT_S 10L
#define CALL_TIMEOUT_S 60L

struct reel_client {
  const reel_client_config *cfg;
  CURL *api;                 /* reused: keeps the connection */
  char curl_error[CURL_ERROR_SIZE];
  reel_client_tick tick;
  void *tick_ctx;
  int aborted;               /* the tick asked to stop the transfer */
};

/* What a transfer gathers. */
typedef struct {
  reel_client *c;
  reel_buf body;
  reel_client_response *resp;
  reel_sse_parser *parser;  /* set: the body goes to the parser (when the status is 200) */
  int stopped;              /* the parser's callback stopped */
  int too_big;
  int got;
  FILE *file;               /* set: the body goes to the file */
} transfer;

reel_client *reel_client_new(const reel_client_config *cfg) {
  static int global_done;
  if (!global_done) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
    global_done = 1;
  }
  reel_client *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->cfg = cfg;
  c->api = curl_easy_init();
  if (!c->api) {
    free(c);
    return NULL;
  }
  return c;
}

void reel_client_free(reel_client *c) {
  if (!c) return;
  curl_easy_cleanup(c->api);
  free(c);
}

void reel_client_set_tick(reel_client *c, reel_client_tick tick, void *ctx) {
  c->tick = tick;
  c->tick_ctx = ctx;
}

void reel_client_redact_url(const char *url, char *out, size_t outlen) {
  /* user:password@ in the authority goes too */
  const char *scheme_end = strstr(url, "://");
  const char *host = scheme_end ? scheme_end + 3 : url;
  const char *path = host + strcspn(host, "/?#");
  const char *at = memchr(host, '@', (size_t)(path - host));
  int scheme_len = (int)(host - url);
  const char *rest = at ? at + 1 : host;
  const char *q = strchr(rest, '?');
  int rest_len = q ? (int)(q - rest) : (int)strlen(rest);
  snprintf(out, outlen, "%.*s%.*s%s", scheme_len, url, rest_len, rest, q ? "?…" : "");
}

void reel_client_response_free(reel_client_response *resp) {
  if (resp->json) json_decref(resp->json);
  memset(resp, 0, sizeof *resp);
  resp->retry_after_s = -1;
}

void reel_client_problem_text(const reel_client_response *resp, char *out, size_t outlen) {
  const char *detail = NULL;
  if (resp->json && json_is_object(resp->json)) {
    detail = json_string_value(json_object_get(resp->json, "detail"));
    if (!detail || !detail[0]) detail = json_string_value(json_object_get(resp->json, "title"));
  }
  if (detail && detail[0]) snprintf(out, outlen, "%s (HTTP %ld)", detail, resp->status);
  else snprintf(out, outlen, "the server answered HTTP %ld", resp->status);
}

static size_t on_header(char *line, size_t size, size_t n, void *data) {
  transfer *t = data;
  size_t len = size * n;
  if (len >= 12 && strncasecmp(line, "HTTP/", 5) == 0) { /* a new answer (after a 100 or a redirect) */
    t->resp->retry_after_s = -1;
    t->resp->content_type[0] = '\0';
  } else if (len > 12 && strncasecmp(line, "retry-after:", 12) == 0) {
    char *end;
    long v = strtol(line + 12, &end, 10);
    if (end != line + 12 && v >= 0) t->resp->retry_after_s = v > 3600 ? 3600 : v;
  } else if (len > 13 && strncasecmp(line, "content-type:", 13) == 0) {
    const char *v = line + 13;
    while (*v == ' ' || *v == '\t') v++;
    size_t k = 0;
    while (k + 1 < sizeof t->resp->content_type && v + k < line + len && v[k] != '\r' && v[k] != '\n' && v[k] != ';') {
      t->resp->content_type[k] = v[k];
      k++;
    }
    t->resp->content_type[k] = '\0';
  }
  return len;
}

static size_t on_body(char *bytes, size_t size, size_t n, void *data) {
  transfer *t = data;
  size_t len = size * n;
  if (len) t->got = 1;
  if (t->file) return fwrite(bytes, 1, len, t->file);
  long status = 0;
  curl_easy_getinfo(t->c->api, CURLINFO_RESPONSE_CODE, &status);
  if (t->parser && status == 200) {
    int rc = reel_sse_parser_feed(t->parser, bytes, len);
    if (rc > 0) {
      t->stopped = 1;
      return 0; /* stops the transfer */
    }
    if (rc < 0) {
      t->too_big = 1;
      return 0;
    }
    return len;
  }
  if (reel_buf_append(&t->body, bytes, len) != 0) {
    t->too_big = 1;
    return 0;
  }
  return len;
}

static int on_progress(void *data, curl_off_t a, curl_off_t b, curl_off_t c_, curl_off_t d) {
  (void)a, (void)b, (void)c_, (void)d;
  transfer *t = data;
  if (t->c->tick && t->c->tick(t->c->tick_ctx)) {
    t->c->aborted = 1;
    return 1;
  }
  return 0;
}

/* Options every transfer to the server shares. */
static void common_options(reel_client *c, CURL *h, transfer *t) {
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_error);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_USERAGENT, "reel-client/1");
  if (c->cfg->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, c->cfg->ca_file);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, t);
}

/* The server's URL for path, and the token header. */
static int api_request(reel_client *c, transfer *t, const char *method, const char *path, const char *body,
                       const char *const *extra, struct curl_slist **headers) {
  CURL *h = c->api;
  curl_easy_reset(h);
  common_options(c, h, t);
  reel_buf url;
  reel_buf_init(&url, 16384);
  if (reel_buf_printf(&url, "%s%s", c->cfg->url, path) != 0) {
    reel_buf_free(&url);
    return -1;
  }
  curl_easy_setopt(h, CURLOPT_URL, url.data);
  reel_buf_free(&url);
  struct curl_slist *hd = NULL;
  if (c->cfg->token) {
    reel_buf auth;
    reel_buf_init(&auth, 8192);
    if (reel_buf_printf(&auth, "Authorization: Bearer %s", c->cfg->token) == 0) hd = curl_slist_append(hd, auth.data);
    if (auth.data) memset(auth.data, 0, auth.len); /* the token is not left in freed memory */
    reel_buf_free(&auth);
  }
  if (body) hd = curl_slist_append(hd, "Content-Type: application/json");
  for (const char *const *e = extra; e && *e; e++) hd = curl_slist_append(hd, *e);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
  *headers = hd;
  if (strcmp(method, "GET") != 0) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  } else if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
  }
  return 0;
}

/* The message for a failed transfer, with the server named but no query. */
static void transport_error(reel_client *c, CURLcode rc, char *err, size_t errlen) {
  char where[512];
  reel_client_redact_url(c->cfg->url, where, sizeof where);
  const char *why = c->curl_error[0] ? c->curl_error : curl_easy_strerror(rc);
  snprintf(err, errlen, "cannot reach %s: %s", where, why);
}

static void finish_answer(reel_client *c, transfer *t) {
  curl_easy_getinfo(c->api, CURLINFO_RESPONSE_CODE, &t->resp->status);
  if (t->body.len && strstr(t->resp->content_type, "json")) t->resp->json = json_loadb(t->body.data, t->body.len, 0, NULL);
}

int reel_client_call(reel_client *c, const char *method, const char *path, const char *json_body,
                     const char *const *extra_headers, reel_client_response *resp, char *err, size_t errlen) {
  memset(resp, 0, sizeof *resp);
  resp->retry_after_s = -1;
  transfer t = {.c = c, .resp = resp};
  reel_buf_init(&t.body, MAX_ANSWER_BYTES);
  struct curl_slist *hd = NULL;
  c->curl_error[0] = '\0';
  c->aborted = 0;
  if (api_request(c, &t, method, path, json_body, extra_headers, &hd) != 0) {
    snprintf(err, errlen, "out of memory");
    reel_buf_free(&t.body);
    return -1;
  }
  curl_easy_setopt(c->api, CURLOPT_TIMEOUT, CALL_TIMEOUT_S);
  CURLcode rc = curl_easy_perform(c->api);
  curl_slist_free_all(hd);
  int result = 0;
  if (t.too_big) {
    snprintf(err, errlen, "the server's answer is larger than %u MiB", MAX_ANSWER_BYTES >> 20);
    result = -1;
  } else if (c->aborted) {
    snprintf(err, errlen, "interrupted");
    result = -1;
  } else if (rc != CURLE_OK) {
    transport_error(c, rc, err, errlen);
    result = -1;
  } else {
    finish_answer(c, &t);
  }
  reel_buf_free(&t.body);
  return result;
}

reel_stream_result reel_client_stream(reel_client *c, const char *path, const char *last_id, long idle_timeout_s,
                                      reel_sse_parser *parser, reel_client_response *resp, int *got, char *err,
                                      size_t errlen) {
  memset(resp, 0, sizeof *resp);
  resp->retry_after_s = -1;
  *got = 0;
  transfer t = {.c = c, .resp = resp, .parser = parser};
  reel_buf_init(&t.body, 1u << 20);
  reel_buf idh;
  reel_buf_init(&idh, 2048);
  const char *extra[3] = {"Accept: text/event-stream", NULL, NULL};
  if (last_id && last_id[0] && reel_buf_printf(&idh, "Last-Event-ID: %s", last_id) == 0) extra[1] = idh.data;
  struct curl_slist *hd = NULL;
  c->curl_error[0] = '\0';
  c->aborted = 0;
  reel_sse_parser_reset_stream(parser);
  if (api_request(c, &t, "GET", path, NULL, extra, &hd) != 0) {
    snprintf(err, errlen, "out of memory");
    reel_buf_free(&t.body);
    reel_buf_free(&idh);
    return REEL_STREAM_DROPPED;
  }
  /* a stream is silent for at most a keep-alive period: longer is a dead connection */
  curl_easy_setopt(c->api, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c->api, CURLOPT_LOW_SPEED_TIME, idle_timeout_s);
  CURLcode rc = curl_easy_perform(c->api);
  curl_slist_free_all(hd);
  reel_buf_free(&idh);
  *got = t.got;
  reel_stream_result result;
  long status = 0;
  curl_easy_getinfo(c->api, CURLINFO_RESPONSE_CODE, &status);
  if (t.stopped) {
    result = REEL_STREAM_STOPPED;
  } else if (c->aborted) {
    result = REEL_STREAM_ABORTED;
  } else if (t.too_big) {
    snprintf(err, errlen, "the event stream sent a line or event too large to take");
    result = REEL_STREAM_DROPPED;
  } else if (status != 0 && status != 200 && (rc == CURLE_OK || rc == CURLE_WRITE_ERROR)) {
    finish_answer(c, &t);
    result = REEL_STREAM_REFUSED;
  } else if (rc != CURLE_OK) {
    if (rc == CURLE_OPERATION_TIMEDOUT)
      snprintf(err, errlen, "the event stream was silent for %ld s", idle_timeout_s);
    else
      transport_error(c, rc, err, errlen);
    result = REEL_STREAM_DROPPED;
  } else {
    result = REEL_STREAM_ENDED;
  }
  reel_buf_free(&t.body);
  return result;
}

int reel_client_download(reel_client *c, const char *url, const char *dest, char *err, size_t errlen) {
  char shown[512];
  reel_client_redact_url(url, shown, sizeof shown);
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
    snprintf(err, errlen, "the download URL is not http(s): %s", shown);
    return -1;
  }
  reel_buf part;
  reel_buf_init(&part, 8192);
  if (reel_buf_printf(&part, "%s.part", dest) != 0) {
    snprintf(err, errlen, "the output path is too long");
    reel_buf_free(&part);
    return -1;
  }
  FILE *f = fopen(part.data, "wb");
  if (!f) {
    snprintf(err, errlen, "%s: %s", part.data, strerror(errno));
    reel_buf_free(&part);
    return -1;
  }
  CURL *h = curl_easy_init();
  reel_client_response resp = {.retry_after_s = -1};
  transfer t = {.c = c, .resp = &resp, .file = f};
  int result = -1;
  if (h) {
    c->curl_error[0] = '\0';
    c->aborted = 0;
    common_options(c, h, &t);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK) result = 0;
    else if (c->aborted) snprintf(err, errlen, "interrupted");
    else if (rc == CURLE_HTTP_RETURNED_ERROR) snprintf(err, errlen, "downloading %s: HTTP %ld", shown, status);
    else snprintf(err, errlen, "downloading %s: %s", shown, curl_easy_strerror(rc)); /* curl's own text may hold the URL */
    curl_easy_cleanup(h);
  } else {
    snprintf(err, errlen, "out of memory");
  }
  if (fclose(f) != 0 && result == 0) {
    snprintf(err, errlen, "%s: %s", part.data, strerror(errno));
    result = -1;
  }
  if (result == 0 && rename(part.data, dest) != 0) {
    snprintf(err, errlen, "%s: %s", dest, strerror(errno));
    result = -1;
  }
  if (result != 0) unlink(part.data);
  reel_buf_free(&part);
  return result;
}
