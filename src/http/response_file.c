/* Deferred response files and the error responses that replace them. */
#include "http/response_file.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "http/fd_limit.h"

int reel_http_response_wants_file(const reel_http_response *resp) {
  return resp->file_fd < 0 && resp->file_open != NULL;
}

void reel_http_response_replace_problem(reel_http_response *resp, const reel_http_request *req, int status,
                                        const char *slug, const char *title, const char *detail) {
  reel_http_response_free(resp);
  reel_http_response_init(resp, status);
  reel_http_response_add_header(resp, "Content-Type", "application/problem+json");
  if (status == 503) reel_http_response_add_header(resp, "Retry-After", "1");
  reel_http_response_add_header(resp, "X-Request-Id", req->request_id);
  char type[128];
  snprintf(type, sizeof type, "https://reel.invalid/problems/%s", slug);
  char *instance = reel_slice_dup(req->path);
  json_t *body = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "type", type, "title", title, "status", status,
                           "detail", detail, "instance", instance ? instance : "", "request_id", req->request_id);
  free(instance);
  char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  if (text) reel_buf_append_str(&resp->body, text);
  free(text);
  json_decref(body);
}

int reel_http_response_open_file(reel_http_response *resp, const reel_http_request *req) {
  if (!reel_http_response_wants_file(resp)) return 0;
  int fd = -1;
  errno = 0;
  int rc = resp->file_open(resp->file_ctx, &fd);
  int err = errno;
  if (rc == 0 && !reel_fd_limit_allows(fd)) {
    close(fd);
    fd = -1;
    rc = REEL_EBUSY;
    err = EMFILE;
  }
  if (rc == 0) {
    resp->file_fd = fd;
    return 0;
  }
  if (rc == REEL_EBUSY || reel_fd_limit_is_exhaustion(err)) {
    reel_fd_limit_report("file response answered 503", req->request_id);
    reel_http_response_replace_problem(resp, req, 503, "overloaded", "Service unavailable",
                                       "the server has no file descriptor left to send this file; retry shortly");
    return REEL_EBUSY;
  }
  if (rc == REEL_ENOTFOUND) {
    reel_http_response_replace_problem(resp, req, 404, "file-not-found", "File not found",
                                       "the file no longer exists or changed");
    return rc;
  }
  reel_log(REEL_LOG_ERROR, "cannot open a response file", "{s:s, s:s}", "request_id", req->request_id, "error",
           reel_strerror(rc));
  reel_http_response_replace_problem(resp, req, 500, "internal", "Internal error", "the file could not be opened");
  return rc;
}
