/* HTTP/1.1 request parser without I/O (bytes in, a parsed request out), in the
 * manner of nghttp2's mem_recv cores. It is bounded: the head is capped at
 * max_header_bytes (431 beyond), the body at max_body_bytes (413 beyond), the
 * header count at REEL_H1_MAX_HEADERS (431 beyond). Fuzzed in fuzz/fuzz_h1_parser.c.
 *
 * Use: keep the connection's unread bytes in one buffer; call
 * reel_h1_parse_request on it after each read. It either needs more bytes,
 * reports an error (answer with the status it names, then close), or returns
 * how many bytes the complete request used (consume them; the rest is the
 * next pipelined request). */
#ifndef REEL_H1_PARSER_H
#define REEL_H1_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define REEL_H1_MAX_HEADERS 64

typedef struct {
  reel_slice name;
  reel_slice value; /* leading/trailing spaces and tabs removed */
} reel_http_header;

typedef struct {
  size_t max_header_bytes; /* request line + headers + final CRLF */
  size_t max_body_bytes;   /* decoded body */
} reel_h1_limits;

typedef struct {
  /* Set once the head is complete (also when the call returns REEL_EAGAIN
   * waiting for the body). Slices point into the data buffer of the latest call
   * (a buffer that moved between calls is fine) and stay valid while that buffer
   * is unchanged. */
  int head_complete;
  reel_slice method;  /* token, e.g. "GET" */
  reel_slice target;  /* request-target as sent, e.g. "/v1/jobs?limit=2" */
  reel_slice path;    /* target up to '?' (origin-form) */
  reel_slice query;   /* after '?', without it; empty if none */
  int minor_version;  /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
  reel_http_header headers[REEL_H1_MAX_HEADERS];
  int n_headers;
  int keep_alive;       /* 1.1 default on unless "Connection: close"; 1.0 only with keep-alive */
  int expect_continue;  /* "Expect: 100-continue" was sent */
  int chunked;          /* Transfer-Encoding: chunked */
  long long content_length; /* -1 when absent */
  /* The decoded body (Content-Length or chunked), owned by this struct:
   * call reel_h1_request_free when done. Empty when there is no body. */
  reel_buf body;
  /* internal: where the head ended, so a second call need not rescan it */
  size_t head_len_;
  /* internal, set by reel_h1_request_init and the parser; callers leave them alone */
  size_t max_header_bytes_;
  size_t head_scanned_;         /* the search for the head's end resumes here */
  uintptr_t head_data_;         /* the buffer the slices point into (re-pointed if it moves) */
  size_t chunk_resume_;         /* chunked: offset of the first chunk not yet decoded */
  size_t chunk_extension_bytes_; /* chunked: extension bytes in the chunks decoded so far */
  size_t trailer_scanned_;      /* chunked: the search for the trailers' end resumes here */
  size_t partial_checked_;      /* an incomplete head was checked up to here */
  int line_part_;               /* which part of the request-line partial_checked_ is in */
} reel_h1_request;

/* Prepares req for a first parse call (body buffer capped at limits->max_body_bytes). */
void reel_h1_request_init(reel_h1_request *req, const reel_h1_limits *limits);
/* Frees the body; req can be re-initialised afterwards. */
void reel_h1_request_free(reel_h1_request *req);

/* Parses one request from the start of data[0..len). Call again with the same
 * req and a longer buffer (same prefix) after REEL_EAGAIN. Returns:
 *   > 0                     bytes used by the complete request;
 *   REEL_EAGAIN             need more bytes (head_complete tells whether the head is in);
 *   REEL_EPARSE             malformed request or framing (400, then close), as soon as
 *                           the bytes in cannot begin a valid request-line (a NUL, a
 *                           byte that cannot be in a method, a bad prefix), including
 *                           both Content-Length and Transfer-Encoding, conflicting
 *                           Content-Lengths, bad chunk sizes, obs-fold, bare LF in the
 *                           head, control characters in the target, a target that is
 *                           neither origin-form, absolute-form (http/https: its path is
 *                           used) nor "*" for OPTIONS, a missing (HTTP/1.1) or repeated Host;
 *   REEL_EHEADERS_TOO_LARGE head over max_header_bytes or too many headers (431);
 *   REEL_ETOOBIG            body over max_body_bytes, known as early as possible (413);
 *   REEL_EUNSUPPORTED       a transfer coding other than chunked (501), or an HTTP
 *                           version other than 1.0/1.1 (505 — see req->minor_version = -1);
 *   REEL_ENOMEM, REEL_EINVAL out of memory, or data shorter than the head an earlier call saw
 *                           (500, then close). */
int reel_h1_parse_request(const char *data, size_t len, reel_h1_request *req);

/* Returns the value of the first header named name (case-insensitive), or an
 * empty slice with ptr == NULL if there is none. */
reel_slice reel_h1_header(const reel_h1_request *req, const char *name);

#endif
