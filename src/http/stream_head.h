/* A request arriving as header fields and data on one HTTP/2 or HTTP/3
 * stream: the part the h2 and h3 sessions share. Fields are collected under
 * the header limit (431 beyond, or when a Content-Length already exceeds the
 * body limit: 413), the body under the body limit (413), and at dispatch the
 * fields become a reel_http_request's slices (pseudo-headers mapped, the
 * query split off :path, :authority standing in for a missing Host). */
#ifndef REEL_HTTP_STREAM_HEAD_H
#define REEL_HTTP_STREAM_HEAD_H

#include <stddef.h>

#include "common/buf.h"
#include "http/request.h"

typedef struct {
  /* "name\0value\0" pairs, located by offsets until dispatch */
  reel_buf raw;
  size_t name_off[REEL_H1_MAX_HEADERS], value_off[REEL_H1_MAX_HEADERS];
  size_t name_len[REEL_H1_MAX_HEADERS], value_len[REEL_H1_MAX_HEADERS];
  int n_raw;
  int method_i, path_i, authority_i, host_seen;
  size_t header_bytes, max_header_bytes, max_body_bytes;
  int error_status; /* 431 or 413 found while receiving, else 0 */
  reel_http_header headers[REEL_H1_MAX_HEADERS + 1];
  reel_buf body;
} reel_stream_head;

/* Prepares an empty head with the two limits. */
void reel_stream_head_init(reel_stream_head *h, size_t max_header_bytes, size_t max_body_bytes);
/* Frees the buffers (the request's slices point into them). */
void reel_stream_head_free(reel_stream_head *h);
/* Adds one field, counting namelen + valuelen + per_field bytes against the
 * header limit (per_field: the protocol's accounting, e.g. 32 for HTTP/3,
 * RFC 9114 section 4.2.2). Ignored once an error is known. */
void reel_stream_head_add_field(reel_stream_head *h, const void *name, size_t namelen, const void *value,
                                size_t valuelen, size_t per_field);
/* Appends body bytes. Returns 0, or REEL_ETOOBIG (error_status is then 413). */
int reel_stream_head_add_body(reel_stream_head *h, const void *data, size_t len);
/* Gives r a new request id, remote (the peer for logs, or NULL) as its
 * remote address and scheme ("http", "https"), fills its method, path,
 * query, headers and body from h, then answers the error found while
 * receiving (431, 413), a 400 for a :path not in origin form, or hands r to
 * handler. protocol names the protocol in the 400. */
void reel_stream_head_dispatch(reel_stream_head *h, reel_http_request *r, const char *protocol, const char *remote,
                               const char *scheme, void (*handler)(reel_http_request *req, void *app), void *app);

#endif
