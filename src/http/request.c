/* The protocol-independent half of request handling: headers, query
 * parameters, response building and RFC 9457 problem bodies. */
#include "http/request.h"

#include "http/body_stream.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "metrics/metrics.h"

reel_slice reel_http_request_header(const reel_http_request *req, const char *name) {
  for (int i = 0; i < req->n_headers; i++)
    if (reel_slice_caseeq(req->headers[i].name, name)) return req->headers[i].value;
  return (reel_slice){NULL, 0};
}

int reel_http_request_header_count(const reel_http_request *req, const char *name) {
  int count = 0;
  for (int i = 0; i < req->n_headers; i++) count += reel_slice_caseeq(req->headers[i].name, name);
  return count;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int percent_decode(const char *s, size_t n, char **out) {
  if (n > 4096) return REEL_ETOOBIG;
  char *d = malloc(n + 1);
  if (!d) return REEL_ENOMEM;
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') {
      if (i + 2 >= n) { free(d); return REEL_EPARSE; }
      int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
      if (hi < 0 || lo < 0) { free(d); return REEL_EPARSE; }
      d[j++] = (char)(hi * 16 + lo);
      i += 2;
    } else if (s[i] == '+') {
      d[j++] = ' ';
    } else {
      d[j++] = s[i];
    }
  }
  d[j] = '\0';
  if (strlen(d) != j) { free(d); return REEL_EPARSE; } /* embedded NUL */
  *out = d;
  return 0;
}

int reel_http_query_param(const reel_http_request *req, const char *name, char **out) {
  const char *q = req->query.ptr, *end = q + req->query.len;
  size_t nlen = strlen(name);
  const char *value = NULL, *value_end = NULL;
  *out = NULL;
  while (q && q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *stop = amp ? amp : end;
    const char *eq = memchr(q, '=', (size_t)(stop - q));
    const char *kend = eq ? eq : stop;
    if ((size_t)(kend - q) == nlen && memcmp(q, name, nlen) == 0) {
      if (value) return REEL_EPARSE; /* which one counts would be a guess */
      value = eq ? eq + 1 : stop;
      value_end = stop;
    }
    q = amp ? amp + 1 : end;
  }
  if (!value) return 0;
  int rc = percent_decode(value, (size_t)(value_end - value), out);
  return rc < 0 ? rc : 1;
}

void reel_http_response_init(reel_http_response *resp, int status) {
  memset(resp, 0, sizeof *resp);
  resp->status = status;
  resp->file_fd = -1;
  reel_buf_init(&resp->body, (size_t)64 << 20);
}

int reel_http_response_add_header(reel_http_response *resp, const char *name, const char *value) {
  if (resp->n_headers >= REEL_HTTP_MAX_RESPONSE_HEADERS) return REEL_ETOOBIG;
  char *n = strdup(name), *v = strdup(value);
  if (!n || !v) {
    free(n);
    free(v);
    return REEL_ENOMEM;
  }
  resp->headers[resp->n_headers].name = n;
  resp->headers[resp->n_headers].value = v;
  resp->n_headers++;
  return 0;
}

const char *reel_http_response_get_header(const reel_http_response *resp, const char *name) {
  for (int i = 0; i < resp->n_headers; i++)
    if (strcasecmp(resp->headers[i].name, name) == 0) return resp->headers[i].value;
  return NULL;
}

void reel_http_response_free(reel_http_response *resp) {
  for (int i = 0; i < resp->n_headers; i++) {
    free(resp->headers[i].name);
    free(resp->headers[i].value);
  }
  resp->n_headers = 0;
  reel_buf_free(&resp->body);
  if (resp->file_fd >= 0) {
    close(resp->file_fd);
    resp->file_fd = -1;
  }
  if (resp->file_ctx_free) resp->file_ctx_free(resp->file_ctx);
  if (resp->stream) reel_body_stream_release(resp->stream); /* no transport took it: the producer hears */
  resp->stream = NULL;
  resp->file_open = NULL;
  resp->file_ctx = NULL;
  resp->file_ctx_free = NULL;
}

void reel_http_send(reel_http_request *req, reel_http_response *resp) {
  if (req->sent) {
    reel_http_response_free(resp);
    return;
  }
  req->sent = 1;
  if (req->detached) {
    /* the client left (an h2/h3 reset, a closed connection) after the handler
     * acted, e.g. accepted a job: the request is still recorded */
    reel_http_request_finished(req, resp->status);
    reel_http_response_free(resp);
    req->transport->free(req);
    return;
  }
  reel_http_response_add_header(resp, "X-Request-Id", req->request_id);
  req->transport->send(req, resp);
}

void reel_http_send_json(reel_http_request *req, int status, const char *json_text) {
  reel_http_response resp;
  reel_http_response_init(&resp, status);
  reel_http_response_add_header(&resp, "Content-Type", "application/json");
  reel_buf_append_str(&resp.body, json_text);
  reel_http_send(req, &resp);
}

static void send_problem_v(reel_http_request *req, int status, const char *slug, const char *title,
                           const char *detail, va_list extra) {
  reel_http_response resp;
  reel_http_response_init(&resp, status);
  reel_http_response_add_header(&resp, "Content-Type", "application/problem+json");
  const char *name;
  while ((name = va_arg(extra, const char *)) != NULL) {
    const char *value = va_arg(extra, const char *);
    reel_http_response_add_header(&resp, name, value);
  }
  char type[128];
  snprintf(type, sizeof type, "https://reel.invalid/problems/%s", slug);
  char *instance = reel_slice_dup(req->path);
  json_t *body = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "type", type, "title", title, "status",
                           status, "detail", detail ? detail : title, "instance",
                           instance ? instance : "", "request_id", req->request_id);
  free(instance);
  char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  if (text) reel_buf_append_str(&resp.body, text);
  free(text);
  json_decref(body);
  reel_http_send(req, &resp);
}

void reel_http_send_problem(reel_http_request *req, int status, const char *slug, const char *title,
                            const char *detail) {
  reel_http_send_problem_with_headers(req, status, slug, title, detail, NULL);
}

void reel_http_send_problem_with_headers(reel_http_request *req, int status, const char *slug,
                                         const char *title, const char *detail, ...) {
  va_list ap;
  va_start(ap, detail);
  send_problem_v(req, status, slug, title, detail, ap);
  va_end(ap);
}

void reel_http_request_detach(reel_http_request *req) { req->detached = 1; }

void reel_http_request_finished(const reel_http_request *r, int status) {
  double seconds = (double)(reel_mono_ns() - r->start_ns) / 1e9;
  reel_metrics_http_observe(reel_metrics_route(r->route ? r->route : "other"), status, seconds);
  /* redacted whole, then cut: a secret crossing the cut must not survive in part */
  const reel_log_field fields[] = {
      {.key = "method", .type = REEL_LOG_STRN, .str = r->method.ptr, .len = r->method.len, .max = 15},
      {.key = "path", .type = REEL_LOG_STRN, .str = r->path.ptr, .len = r->path.len, .max = 511},
      {.key = "route", .type = REEL_LOG_STR, .str = r->route ? r->route : "-"},
      {.key = "status", .type = REEL_LOG_INT, .num = status},
      {.key = "duration_ms", .type = REEL_LOG_MS, .ms = seconds * 1000.0},
      {.key = "protocol", .type = REEL_LOG_STR, .str = reel_http_protocol_name(r->protocol)},
      {.key = "request_id", .type = REEL_LOG_STR, .str = r->request_id},
      {.key = "remote", .type = REEL_LOG_STR, .str = r->remote_addr},
      {.key = "scheme", .type = REEL_LOG_STR, .str = r->scheme ? r->scheme : "-"},
      {.key = "peer", .type = REEL_LOG_STR, .str = r->peer_addr}, /* only when a proxy forwarded the request */
      {.key = "client", .type = REEL_LOG_STR, .str = "gone"},      /* only when the response could not be sent */
  };
  reel_log_field shown[sizeof fields / sizeof *fields];
  int n = 0;
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
    if (strcmp(fields[i].key, "peer") == 0 && (!r->peer_addr[0] || strcmp(r->peer_addr, r->remote_addr) == 0)) continue;
    if (strcmp(fields[i].key, "client") == 0 && !r->detached) continue;
    shown[n++] = fields[i];
  }
  reel_log_fields(REEL_LOG_INFO, "request", shown, n);
}

const char *reel_http_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

const char *reel_http_protocol_name(reel_http_protocol p) {
  switch (p) {
  case REEL_HTTP_1_0: return "HTTP/1.0";
  case REEL_HTTP_1_1: return "HTTP/1.1";
  case REEL_HTTP_2: return "HTTP/2";
  case REEL_HTTP_3: return "HTTP/3";
  }
  return "HTTP";
}
