/* Request heads of HTTP/2 and HTTP/3 streams. */
#include "http/stream_head.h"

#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/random.h"

void reel_stream_head_init(reel_stream_head *h, size_t max_header_bytes, size_t max_body_bytes) {
  memset(h, 0, sizeof *h);
  h->method_i = h->path_i = h->authority_i = -1;
  h->max_header_bytes = max_header_bytes;
  h->max_body_bytes = max_body_bytes;
  reel_buf_init(&h->raw, max_header_bytes + 1024);
  reel_buf_init(&h->body, max_body_bytes);
}

void reel_stream_head_free(reel_stream_head *h) {
  reel_buf_free(&h->raw);
  reel_buf_free(&h->body);
}

static int is(const void *name, size_t len, const char *literal) {
  return len == strlen(literal) && memcmp(name, literal, len) == 0;
}

void reel_stream_head_add_field(reel_stream_head *h, const void *name, size_t namelen, const void *value,
                                size_t valuelen, size_t per_field) {
  if (h->error_status) return;
  h->header_bytes += namelen + valuelen + per_field;
  if (h->header_bytes > h->max_header_bytes || h->n_raw >= REEL_H1_MAX_HEADERS) {
    h->error_status = 431;
    return;
  }
  size_t name_off = h->raw.len;
  if (reel_buf_append(&h->raw, name, namelen) != 0 || reel_buf_append(&h->raw, "", 1) != 0) {
    h->error_status = 431;
    return;
  }
  size_t value_off = h->raw.len;
  if (reel_buf_append(&h->raw, value, valuelen) != 0 || reel_buf_append(&h->raw, "", 1) != 0) {
    h->error_status = 431;
    return;
  }
  int i = h->n_raw++;
  h->name_off[i] = name_off, h->name_len[i] = namelen;
  h->value_off[i] = value_off, h->value_len[i] = valuelen;
  if (is(name, namelen, ":method")) h->method_i = i;
  else if (is(name, namelen, ":path")) h->path_i = i;
  else if (is(name, namelen, ":authority")) h->authority_i = i;
  else if (is(name, namelen, "host")) h->host_seen = 1;
  else if (is(name, namelen, "content-length")) {
    const unsigned char *v = value;
    unsigned long long cl = 0;
    for (size_t k = 0; k < valuelen && v[k] >= '0' && v[k] <= '9' && cl < (1ull << 60); k++)
      cl = cl * 10 + (unsigned)(v[k] - '0');
    if (cl > h->max_body_bytes) h->error_status = 413; /* known before the body arrives */
  }
}

int reel_stream_head_add_body(reel_stream_head *h, const void *data, size_t len) {
  if (reel_buf_append(&h->body, data, len) != 0) {
    h->error_status = 413;
    return REEL_ETOOBIG;
  }
  return 0;
}

static reel_slice raw_slice(reel_stream_head *h, size_t off, size_t len) {
  return (reel_slice){h->raw.data + off, len};
}

void reel_stream_head_dispatch(reel_stream_head *h, reel_http_request *r, const char *protocol, const char *remote,
                               const char *scheme, void (*handler)(reel_http_request *req, void *app), void *app) {
  reel_request_id_new(r->request_id);
  snprintf(r->remote_addr, sizeof r->remote_addr, "%s", remote ? remote : "");
  r->scheme = scheme;
  r->method = REEL_SLICE_LIT("-");
  r->path = REEL_SLICE_LIT("-");
  r->query = (reel_slice){"", 0};
  int n = 0;
  for (int i = 0; i < h->n_raw; i++) {
    reel_slice name = raw_slice(h, h->name_off[i], h->name_len[i]);
    reel_slice value = raw_slice(h, h->value_off[i], h->value_len[i]);
    if (i == h->method_i) r->method = value;
    else if (i == h->path_i) {
      const char *q = memchr(value.ptr, '?', value.len);
      r->path = (reel_slice){value.ptr, q ? (size_t)(q - value.ptr) : value.len};
      if (q) r->query = (reel_slice){q + 1, value.len - (size_t)(q + 1 - value.ptr)};
    } else if (name.len > 0 && name.ptr[0] != ':') {
      h->headers[n].name = name;
      h->headers[n].value = value;
      n++;
    }
  }
  /* :authority stands in for Host, which HTTP/2 and HTTP/3 clients usually leave out */
  if (h->authority_i >= 0 && !h->host_seen) {
    h->headers[n].name = REEL_SLICE_LIT("host");
    h->headers[n].value = raw_slice(h, h->value_off[h->authority_i], h->value_len[h->authority_i]);
    n++;
  }
  r->headers = h->headers;
  r->n_headers = n;
  r->body = (reel_slice){h->body.data ? h->body.data : "", h->body.len};
  if (h->error_status == 431) {
    r->route = "malformed";
    reel_http_send_problem(r, 431, "headers-too-large", "Request header fields too large",
                           "the request head is larger than service.max_header_bytes allows");
  } else if (h->error_status == 413) {
    r->route = "malformed";
    reel_http_send_problem(r, 413, "body-too-large", "Request body too large",
                           "the request body is larger than service.max_body_bytes allows");
  } else if (r->path.len == 0 || r->path.ptr[0] != '/') {
    char detail[64];
    snprintf(detail, sizeof detail, "%s requests need a :path in origin form", protocol);
    r->route = "malformed";
    reel_http_send_problem(r, 400, "malformed-request", "Malformed request", detail);
  } else {
    handler(r, app);
  }
}
