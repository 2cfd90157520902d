/* libFuzzer target for the HTTP/1.1 request parser, which reads bytes from
 * strangers. Small limits so the fuzzer reaches them. The input is parsed as a
 * pipeline (request after request), and the first request is also fed in
 * three pieces split at points taken from the input's hash, each piece in a
 * fresh exact-size buffer: the pieces must give the same answer as the whole.
 * Every invariant that fails traps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "http/h1_parser.h"

#define FUZZ_MAX_HEADER_BYTES 1024
#define FUZZ_MAX_BODY_BYTES 2048

static const reel_h1_limits limits = {FUZZ_MAX_HEADER_BYTES, FUZZ_MAX_BODY_BYTES};

static void require(int condition) {
  if (!condition) __builtin_trap();
}

static int slice_inside(reel_slice s, const char *data, size_t len) {
  return s.ptr >= data && s.ptr <= data + len && s.len <= (size_t)(data + len - s.ptr);
}

static int is_documented_result(int rc) {
  return rc > 0 || rc == REEL_EAGAIN || rc == REEL_EPARSE || rc == REEL_EHEADERS_TOO_LARGE ||
         rc == REEL_ETOOBIG || rc == REEL_EUNSUPPORTED;
}

/* What must hold after any call that was given data[0..len). */
static void check_request(const reel_h1_request *req, int rc, const char *data, size_t len) {
  require(is_documented_result(rc));
  require(req->body.len <= FUZZ_MAX_BODY_BYTES);
  require(req->n_headers >= 0 && req->n_headers <= REEL_H1_MAX_HEADERS);
  if (req->head_complete) {
    require(req->head_len_ <= len && req->head_len_ <= FUZZ_MAX_HEADER_BYTES);
    require(req->minor_version == 0 || req->minor_version == 1);
    require(req->method.len > 0 && req->target.len > 0 && req->path.len > 0);
    require(slice_inside(req->method, data, req->head_len_) && slice_inside(req->target, data, req->head_len_) &&
            slice_inside(req->path, data, req->head_len_) && slice_inside(req->query, data, req->head_len_));
    for (int i = 0; i < req->n_headers; i++)
      require(slice_inside(req->headers[i].name, data, req->head_len_) &&
              slice_inside(req->headers[i].value, data, req->head_len_));
    require(!(req->chunked && req->content_length >= 0));
  }
  if (rc > 0) {
    require((size_t)rc <= len);
    require(req->head_complete && req->head_len_ <= (size_t)rc);
    if (!req->chunked) {
      size_t body_len = req->content_length > 0 ? (size_t)req->content_length : 0;
      require(req->body.len == body_len && (size_t)rc == req->head_len_ + body_len);
      require(body_len == 0 || memcmp(req->body.data, data + req->head_len_, body_len) == 0);
    }
  }
}

static int same_slice_text(reel_slice a, reel_slice b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* The request from pieces must equal the request from the whole. */
static void check_same_request(const reel_h1_request *whole, const reel_h1_request *pieces) {
  require(whole->head_complete == pieces->head_complete);
  if (!whole->head_complete) return;
  require(same_slice_text(whole->method, pieces->method) && same_slice_text(whole->target, pieces->target) &&
          same_slice_text(whole->path, pieces->path) && same_slice_text(whole->query, pieces->query));
  require(whole->n_headers == pieces->n_headers && whole->keep_alive == pieces->keep_alive &&
          whole->chunked == pieces->chunked && whole->content_length == pieces->content_length &&
          whole->expect_continue == pieces->expect_continue && whole->minor_version == pieces->minor_version);
  require(whole->body.len == pieces->body.len);
  require(whole->body.len == 0 || memcmp(whole->body.data, pieces->body.data, whole->body.len) == 0);
}

static void parse_pipeline(const char *data, size_t size) {
  size_t offset = 0;
  while (offset < size) { /* bounded: each round consumes at least one byte */
    reel_h1_request req;
    reel_h1_request_init(&req, &limits);
    int rc = reel_h1_parse_request(data + offset, size - offset, &req);
    check_request(&req, rc, data + offset, size - offset);
    reel_h1_request_free(&req);
    if (rc <= 0) break;
    offset += (size_t)rc;
  }
}

static uint64_t hash_bytes(const char *data, size_t size) {
  uint64_t hash = 14695981039346656037u; /* FNV-1a */
  for (size_t i = 0; i < size; i++) hash = (hash ^ (unsigned char)data[i]) * 1099511628211u;
  return hash;
}

static void parse_in_pieces(const char *data, size_t size) {
  reel_h1_request whole;
  reel_h1_request_init(&whole, &limits);
  int whole_rc = reel_h1_parse_request(data, size, &whole);

  uint64_t hash = hash_bytes(data, size);
  size_t first = (size_t)(hash % (size + 1));
  size_t second = first + (size_t)((hash >> 32) % (size - first + 1));
  size_t ends[3] = {first, second, size};

  reel_h1_request pieces;
  reel_h1_request_init(&pieces, &limits);
  int rc = REEL_EAGAIN;
  char *copy = NULL;
  for (int i = 0; i < 3 && rc == REEL_EAGAIN; i++) {
    if (ends[i] == 0) continue;
    char *grown = malloc(ends[i]); /* a new address each time: the parser must follow it */
    if (!grown) break;
    memcpy(grown, data, ends[i]);
    free(copy);
    copy = grown;
    rc = reel_h1_parse_request(copy, ends[i], &pieces);
    check_request(&pieces, rc, copy, ends[i]);
    if (rc != REEL_EAGAIN) require(rc == whole_rc); /* an answer from a prefix is final */
  }
  if (copy) {
    require(rc == whole_rc);
    if (rc > 0) check_same_request(&whole, &pieces);
  }
  free(copy);
  reel_h1_request_free(&pieces);
  reel_h1_request_free(&whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parse_pipeline((const char *)data, size);
  parse_in_pieces((const char *)data, size);
  return 0;
}
