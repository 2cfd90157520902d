/* HTTP/1.1 request parser: protocol cases as data (in the manner of curl's
 * tests/data), each also fed byte by byte, plus the cases a table cannot say. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "http/h1_parser.h"

#define COMPLETE 1     /* expected result: a complete request */
#define HEAD_BYTES 1024 /* limits unless a case names its own */
#define BODY_BYTES 2048

typedef struct {
  const char *name;
  const char *raw;
  size_t raw_len;     /* 0: strlen(raw); set it when raw holds a NUL */
  int result;         /* COMPLETE or a REEL_E* code */
  size_t used;        /* COMPLETE: bytes the request uses; 0: all of raw */
  const char *method; /* COMPLETE: NULL skips the checks below it */
  const char *path;
  const char *query;
  const char *body;
  int keep_alive;
  int chunked;
  long long content_length;
  int expect_continue;
  int minor_version;
  size_t max_header_bytes; /* 0: HEAD_BYTES */
  size_t max_body_bytes;   /* 0: BODY_BYTES */
} h1_case;

#define H "Host: reel.test\r\n"

static const h1_case cases[] = {
    /* Requests that parse. */
    {"simple GET", "GET /v1/jobs?limit=2 HTTP/1.1\r\n" H "\r\n", 0, COMPLETE, 0, "GET", "/v1/jobs",
     "limit=2", "", 1, 0, -1, 0, 1, 0, 0},
    {"POST with Content-Length",
     "POST /v1/jobs HTTP/1.1\r\n" H "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
     "{\"prompt\":1}\n",
     0, COMPLETE, 0, "POST", "/v1/jobs", "", "{\"prompt\":1}\n", 1, 0, 13, 0, 1, 0, 0},
    {"Content-Length: 0", "POST /x HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", 0, COMPLETE, 0, "POST",
     "/x", "", "", 1, 0, 0, 0, 1, 0, 0},
    {"pipelined GETs: the first only",
     "GET /a HTTP/1.1\r\n" H "\r\nGET /b HTTP/1.1\r\n" H "\r\n", 0, COMPLETE,
     sizeof("GET /a HTTP/1.1\r\n" H "\r\n") - 1, "GET", "/a", "", "", 1, 0, -1, 0, 1, 0, 0},
    {"pipelined POST then GET",
     "POST /a HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n" H "\r\n", 0, COMPLETE,
     sizeof("POST /a HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabc") - 1, "POST", "/a", "", "abc", 1, 0,
     3, 0, 1, 0, 0},
    {"chunked with extensions and trailers",
     "POST /v1/jobs HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
     "5;name=value\r\nhello\r\n6 ; a ;b=\"q r\"\r\n world\r\n0;last\r\nX-Trailer: yes\r\nX-Other:\r\n\r\n",
     0, COMPLETE, 0, "POST", "/v1/jobs", "", "hello world", 1, 1, -1, 0, 1, 0, 0},
    {"chunked: hex sizes, leading zeros, TE in any case",
     "PUT /c HTTP/1.1\r\n" H "Transfer-Encoding: ChUnKeD\r\n\r\n"
     "a\r\n0123456789\r\n0000000000000001\r\n!\r\n000\r\n\r\n",
     0, COMPLETE, 0, "PUT", "/c", "", "0123456789!", 1, 1, -1, 0, 1, 0, 0},
    {"chunked then a pipelined request",
     "POST /c HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 0,
     COMPLETE, sizeof("POST /c HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n") - 1,
     "POST", "/c", "", "x", 1, 1, -1, 0, 1, 0, 0},
    {"Transfer-Encoding with empty list elements",
     "POST /c HTTP/1.1\r\n" H "Transfer-Encoding: , chunked\r\n\r\n0\r\n\r\n", 0, COMPLETE, 0, "POST",
     "/c", "", "", 1, 1, -1, 0, 1, 0, 0},
    {"identical Content-Length lines", "POST /x HTTP/1.1\r\n" H "Content-Length: 2\r\nContent-Length: 02\r\n\r\nhi",
     0, COMPLETE, 0, "POST", "/x", "", "hi", 1, 0, 2, 0, 1, 0, 0},
    {"Content-Length as a list of identical values",
     "POST /x HTTP/1.1\r\n" H "Content-Length: 2 ,2\r\n\r\nhi", 0, COMPLETE, 0, "POST", "/x", "", "hi", 1,
     0, 2, 0, 1, 0, 0},
    {"header values trimmed, names any case",
     "GET / HTTP/1.1\r\nhOsT: \t reel.test \t\r\nX-Empty:\r\n\r\n", 0, COMPLETE, 0, "GET", "/", "", "", 1,
     0, -1, 0, 1, 0, 0},
    {"obs-text in a header value", "GET / HTTP/1.1\r\n" H "X-Name: caf\xc3\xa9\r\n\r\n", 0, COMPLETE, 0,
     "GET", "/", "", "", 1, 0, -1, 0, 1, 0, 0},
    {"empty query", "GET /p? HTTP/1.1\r\n" H "\r\n", 0, COMPLETE, 0, "GET", "/p", "", "", 1, 0, -1, 0, 1, 0, 0},
    {"leading empty lines are skipped", "\r\n\r\nGET /after HTTP/1.1\r\n" H "\r\n", 0, COMPLETE, 0, "GET",
     "/after", "", "", 1, 0, -1, 0, 1, 0, 0},
    {"OPTIONS *", "OPTIONS * HTTP/1.1\r\n" H "\r\n", 0, COMPLETE, 0, "OPTIONS", "*", "", "", 1, 0, -1, 0, 1,
     0, 0},
    {"absolute-form: its path is used", "GET http://reel.test:8000/v1/jobs?x=1 HTTP/1.1\r\n" H "\r\n", 0,
     COMPLETE, 0, "GET", "/v1/jobs", "x=1", "", 1, 0, -1, 0, 1, 0, 0},
    {"absolute-form without a path means /", "GET HTTPS://reel.test?q HTTP/1.1\r\n" H "\r\n", 0, COMPLETE,
     0, "GET", "/", "q", "", 1, 0, -1, 0, 1, 0, 0},
    {"any token is a method", "PURGE /x HTTP/1.1\r\n" H "\r\n", 0, COMPLETE, 0, "PURGE", "/x", "", "", 1, 0,
     -1, 0, 1, 0, 0},

    /* Persistence and expectations. */
    {"1.1 with Connection: close", "GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n", 0, COMPLETE, 0,
     "GET", "/", "", "", 0, 0, -1, 0, 1, 0, 0},
    {"1.1: close wins in a list", "GET / HTTP/1.1\r\n" H "Connection: keep-alive, Upgrade,CLOSE\r\n\r\n", 0,
     COMPLETE, 0, "GET", "/", "", "", 0, 0, -1, 0, 1, 0, 0},
    {"1.1: close only as a whole token", "GET / HTTP/1.1\r\n" H "Connection: closed, x-close\r\n\r\n", 0,
     COMPLETE, 0, "GET", "/", "", "", 1, 0, -1, 0, 1, 0, 0},
    {"1.0 closes by default, no Host needed", "GET / HTTP/1.0\r\n\r\n", 0, COMPLETE, 0, "GET", "/", "", "",
     0, 0, -1, 0, 0, 0, 0},
    {"1.0 with keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, COMPLETE, 0, "GET", "/",
     "", "", 1, 0, -1, 0, 0, 0, 0},
    {"1.0 with keep-alive and close", "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
     0, COMPLETE, 0, "GET", "/", "", "", 0, 0, -1, 0, 0, 0, 0},
    {"Expect: 100-continue", "POST /x HTTP/1.1\r\n" H "Expect: 100-Continue\r\nContent-Length: 1\r\n\r\nz", 0,
     COMPLETE, 0, "POST", "/x", "", "z", 1, 0, 1, 1, 1, 0, 0},
    {"Expect ignored in 1.0", "POST /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz", 0,
     COMPLETE, 0, "POST", "/x", "", "z", 0, 0, 1, 0, 0, 0, 0},

    /* Limits that are just met. */
    {"Content-Length at the body cap", "POST /x HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\n12345", 0, COMPLETE,
     0, "POST", "/x", "", "12345", 1, 0, 5, 0, 1, 0, 5},
    {"chunks at the body cap", "POST /x HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n3\r\n123\r\n2\r\n45\r\n0\r\n\r\n",
     0, COMPLETE, 0, "POST", "/x", "", "12345", 1, 1, -1, 0, 1, 0, 5},
    {"head exactly at the cap", "GET / HTTP/1.1\r\n" H "\r\n", 0, COMPLETE, 0, "GET", "/", "", "", 1, 0, -1,
     0, 1, sizeof("GET / HTTP/1.1\r\n" H "\r\n") - 1, 0},

    /* Request-line errors. */
    {"method not a token", "G(T / HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"no method", " / HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"two spaces", "GET  / HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"space in the target", "GET /a b HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"tab in the target", "GET /a\tb HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"control character in the target", "GET /a\x01 HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"DEL in the target", "GET /a\x7f HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"NUL in the target", "GET /a\0b HTTP/1.1\r\n" H "\r\n", sizeof("GET /a\0b HTTP/1.1\r\n" H "\r\n") - 1,
     .result = REEL_EPARSE},
    {"raw non-ASCII in the target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"fragment in the target", "GET /a#b HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"* without OPTIONS", "GET * HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"relative target", "GET a/b HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"authority-form", "CONNECT reel.test:443 HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"absolute-form, other scheme", "GET ftp://reel.test/x HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"absolute-form, no host", "GET http:///x HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"absolute-form with userinfo", "GET http://user:pw@reel.test/ HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"no version (HTTP/0.9)", "GET /\r\n\r\n", 0, .result = REEL_EPARSE},
    {"version in lower case", "GET / http/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"version without minor", "GET / HTTP/1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"version with two-digit minor", "GET / HTTP/1.10\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"space after the version", "GET / HTTP/1.1 \r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"HTTP/2.0 is 505", "GET / HTTP/2.0\r\n" H "\r\n", 0, .result = REEL_EUNSUPPORTED, .minor_version = -1},
    {"HTTP/2 preface is 505", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, .result = REEL_EUNSUPPORTED, .minor_version = -1},
    {"HTTP/1.2 is 505", "GET / HTTP/1.2\r\n" H "\r\n", 0, .result = REEL_EUNSUPPORTED, .minor_version = -1},
    {"HTTP/0.9 is 505", "GET / HTTP/0.9\r\n" H "\r\n", 0, .result = REEL_EUNSUPPORTED, .minor_version = -1},
    {"too many leading empty lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},
    {"leading bare LF", "\nGET / HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EPARSE},

    /* Line-ending and header errors. */
    {"bare LF line endings", "GET / HTTP/1.1\n" H "\n", 0, .result = REEL_EPARSE},
    {"bare LF ending the head", "GET / HTTP/1.1\r\n" H "\n", 0, .result = REEL_EPARSE},
    {"bare CR in a header value", "GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n", 0, .result = REEL_EPARSE},
    {"NUL in a header value", "GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n", sizeof("GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n") - 1,
     .result = REEL_EPARSE},
    {"control character in a header value", "GET / HTTP/1.1\r\n" H "X: a\x1b b\r\n\r\n", 0, .result = REEL_EPARSE},
    {"space before the colon", "GET / HTTP/1.1\r\nHost : reel.test\r\n\r\n", 0, .result = REEL_EPARSE},
    {"tab before the colon", "GET / HTTP/1.1\r\n" H "X\t: a\r\n\r\n", 0, .result = REEL_EPARSE},
    {"obs-fold", "GET / HTTP/1.1\r\n" H "X: a\r\n  b\r\n\r\n", 0, .result = REEL_EPARSE},
    {"whitespace before the first header", "GET / HTTP/1.1\r\n " H "\r\n", 0, .result = REEL_EPARSE},
    {"empty header name", "GET / HTTP/1.1\r\n" H ": a\r\n\r\n", 0, .result = REEL_EPARSE},
    {"header without a colon", "GET / HTTP/1.1\r\n" H "NoColon\r\n\r\n", 0, .result = REEL_EPARSE},
    {"header name not a token", "GET / HTTP/1.1\r\n" H "X(y): a\r\n\r\n", 0, .result = REEL_EPARSE},
    {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", 0, .result = REEL_EPARSE},
    {"two Host lines", "GET / HTTP/1.1\r\n" H H "\r\n", 0, .result = REEL_EPARSE},

    /* Framing errors. */
    {"Content-Length with a sign", "POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\nhello", 0, .result = REEL_EPARSE},
    {"Content-Length negative", "POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", 0, .result = REEL_EPARSE},
    {"Content-Length in hex", "POST / HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\nhello", 0, .result = REEL_EPARSE},
    {"Content-Length with junk", "POST / HTTP/1.1\r\n" H "Content-Length: 5 5\r\n\r\nhello", 0, .result = REEL_EPARSE},
    {"Content-Length empty", "POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", 0, .result = REEL_EPARSE},
    {"Content-Length overflowing", "POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999\r\n\r\n", 0,
     .result = REEL_EPARSE},
    {"conflicting Content-Length lines", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
     0, .result = REEL_EPARSE},
    {"conflicting Content-Length list", "POST / HTTP/1.1\r\n" H "Content-Length: 5, 6\r\n\r\nhello!", 0,
     .result = REEL_EPARSE},
    {"Content-Length list with a hole", "POST / HTTP/1.1\r\n" H "Content-Length: 5,,5\r\n\r\nhello", 0,
     .result = REEL_EPARSE},
    {"Transfer-Encoding and Content-Length",
     "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, .result = REEL_EPARSE},
    {"Transfer-Encoding gzip is 501", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", 0,
     .result = REEL_EUNSUPPORTED, .minor_version = 1},
    {"gzip, chunked is 501", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", 0,
     .result = REEL_EUNSUPPORTED, .minor_version = 1},
    {"chunked, gzip is 501", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
     0, .result = REEL_EUNSUPPORTED, .minor_version = 1},
    {"chunked twice", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 0,
     .result = REEL_EPARSE},
    {"empty Transfer-Encoding", "POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n", 0, .result = REEL_EPARSE},
    {"Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0,
     .result = REEL_EPARSE},

    /* Chunked errors. */
    {"chunk size not hex", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 0, .result = REEL_EPARSE},
    {"chunk size missing", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n;x\r\n", 0, .result = REEL_EPARSE},
    {"chunk size of 17 digits", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n00000000000000001\r\nx\r\n",
     0, .result = REEL_EPARSE},
    {"chunk size with trailing space", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n",
     0, .result = REEL_EPARSE},
    {"chunk size line with bare LF", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n", 0,
     .result = REEL_EPARSE},
    {"chunk extension with a control character",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n1;a\x01\r\nx\r\n0\r\n\r\n", 0, .result = REEL_EPARSE},
    {"chunk data without its CRLF", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n",
     0, .result = REEL_EPARSE},
    {"chunk data with bare LF", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n1\r\nx\n0\r\n\r\n", 0,
     .result = REEL_EPARSE},
    {"last chunk with junk", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0x\r\n\r\n", 0, .result = REEL_EPARSE},
    {"trailer with obs-fold", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\n c\r\n\r\n", 0,
     .result = REEL_EPARSE},
    {"trailer without a colon", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0\r\nnope\r\n\r\n", 0,
     .result = REEL_EPARSE},
    {"trailers ending in bare LF", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0\r\nA: b\n\n", 0,
     .result = REEL_EPARSE},

    /* Limits passed. */
    {"Content-Length over the cap: 413 before the body", "POST /x HTTP/1.1\r\n" H "Content-Length: 6\r\n\r\n", 0,
     .result = REEL_ETOOBIG, .max_body_bytes = 5},
    {"chunk over the cap: 413 before its data", "POST /x HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n6\r\n", 0,
     .result = REEL_ETOOBIG, .max_body_bytes = 5},
    {"chunks adding up over the cap",
     "POST /x HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n3\r\n123\r\n3\r\n456\r\n0\r\n\r\n", 0, .result = REEL_ETOOBIG,
     .max_body_bytes = 5},
    {"head one byte over the cap", "GET / HTTP/1.1\r\n" H "\r\n", 0, .result = REEL_EHEADERS_TOO_LARGE,
     .max_header_bytes = sizeof("GET / HTTP/1.1\r\n" H "\r\n") - 2},
    {"trailers over the cap",
     "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: r\r\n\r\n0\r\nX-Trailer: 01234567890123456789012345678901234567890123456789\r\n\r\n",
     0, .result = REEL_EHEADERS_TOO_LARGE, .max_header_bytes = 60},
};

/* A NUL-terminated copy of a slice, for CHECK_STR (a few live at once). */
static const char *text(reel_slice s) {
  static char ring[4][4096];
  static int next;
  char *out = ring[next++ % 4];
  size_t n = s.len < sizeof ring[0] - 1 ? s.len : sizeof ring[0] - 1;
  if (n) memcpy(out, s.ptr, n);
  out[n] = '\0';
  return out;
}

static size_t case_len(const h1_case *c) { return c->raw_len ? c->raw_len : strlen(c->raw); }

static reel_h1_limits case_limits(const h1_case *c) {
  return (reel_h1_limits){c->max_header_bytes ? c->max_header_bytes : HEAD_BYTES,
                          c->max_body_bytes ? c->max_body_bytes : BODY_BYTES};
}

/* True when every slice of a parsed request lies inside data[0..len). */
static int slice_inside(reel_slice s, const char *data, size_t len) {
  return s.ptr >= data && s.ptr <= data + len && s.len <= (size_t)(data + len - s.ptr);
}

static void check_result(const h1_case *c, const reel_h1_request *req, int rc, const char *data, size_t len) {
  int expected = c->result == COMPLETE ? (int)(c->used ? c->used : case_len(c)) : c->result;
  if (rc != expected) fprintf(stderr, "case \"%s\": got %d (%s)\n", c->name, rc, reel_err_name(rc));
  CHECK_INT(rc, expected);
  if (c->result == REEL_EUNSUPPORTED) CHECK_INT(req->minor_version, c->minor_version);
  if (c->result == REEL_ETOOBIG && !req->chunked) CHECK(req->head_complete);
  if (c->result != COMPLETE || rc != expected || !c->method) return;
  CHECK(req->head_complete);
  CHECK(slice_inside(req->method, data, len) && slice_inside(req->path, data, len) &&
        slice_inside(req->query, data, len) && slice_inside(req->target, data, len));
  CHECK_STR(text(req->method), c->method);
  CHECK_STR(text(req->path), c->path);
  CHECK_STR(text(req->query), c->query);
  CHECK_STR(req->body.data ? req->body.data : "", c->body);
  CHECK_INT(req->body.len, strlen(c->body));
  CHECK_INT(req->keep_alive, c->keep_alive);
  CHECK_INT(req->chunked, c->chunked);
  CHECK_INT(req->content_length, c->content_length);
  CHECK_INT(req->expect_continue, c->expect_continue);
  CHECK_INT(req->minor_version, c->minor_version);
}

/* The whole input in one call. */
static void run_at_once(const h1_case *c) {
  reel_h1_limits limits = case_limits(c);
  size_t len = case_len(c);
  char *data = malloc(len); /* exactly len bytes, so ASan sees any read past them */
  memcpy(data, c->raw, len);
  reel_h1_request req;
  reel_h1_request_init(&req, &limits);
  int rc = reel_h1_parse_request(data, len, &req);
  check_result(c, &req, rc, data, len);
  CHECK_INT(reel_h1_parse_request(data, len, &req), rc); /* asking again changes nothing */
  reel_h1_request_free(&req);
  free(data);
}

/* Prefixes of length 1, 2, ... each in a fresh exact-size copy (so the buffer
 * moves every call): all answer REEL_EAGAIN until one gives the final result. */
static void run_byte_by_byte(const h1_case *c) {
  reel_h1_limits limits = case_limits(c);
  size_t len = case_len(c);
  reel_h1_request req;
  reel_h1_request_init(&req, &limits);
  char *data = NULL;
  int rc = REEL_EAGAIN;
  size_t n;
  for (n = 1; n <= len && rc == REEL_EAGAIN; n++) {
    free(data);
    data = malloc(n);
    memcpy(data, c->raw, n);
    rc = reel_h1_parse_request(data, n, &req);
  }
  if (rc == REEL_EAGAIN) fprintf(stderr, "case \"%s\": still REEL_EAGAIN after all bytes\n", c->name);
  check_result(c, &req, rc, data, n - 1);
  reel_h1_request_free(&req);
  free(data);
}

static void test_table(void) {
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    run_at_once(&cases[i]);
    run_byte_by_byte(&cases[i]);
  }
}

/* The brief's incremental case spelled out: one buffer, len growing 1..n. */
static void test_chunked_incremental_same_buffer(void) {
  static const char raw[] = "POST /v1/jobs HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                            "4;ext=1\r\nwiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: v\r\n\r\n";
  size_t n = sizeof raw - 1;
  reel_h1_limits limits = {HEAD_BYTES, BODY_BYTES};
  reel_h1_request req;
  reel_h1_request_init(&req, &limits);
  int eagains = 0;
  for (size_t len = 1; len < n; len++) {
    int rc = reel_h1_parse_request(raw, len, &req);
    eagains += rc == REEL_EAGAIN;
  }
  CHECK_INT(eagains, n - 1);
  CHECK_INT(reel_h1_parse_request(raw, n, &req), n);
  CHECK_STR(req.body.data, "wikipedia in\r\n\r\nchunks.");
  CHECK_STR(text(reel_h1_header(&req, "transfer-encoding")), "chunked");
  reel_h1_request_free(&req);
}

/* A pipelined buffer, consumed request by request as a connection would. */
static void test_pipeline_loop(void) {
  static const char raw[] = "GET /one HTTP/1.1\r\n" H "\r\n"
                            "POST /two HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabc"
                            "\r\n" /* a stray CRLF after a body, skipped */
                            "POST /three HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
                            "GET /four HTTP/1.1\r\n";
  const char *expected_paths[] = {"/one", "/two", "/three"};
  const char *expected_bodies[] = {"", "abc", "xy"};
  reel_h1_limits limits = {HEAD_BYTES, BODY_BYTES};
  size_t offset = 0;
  for (int i = 0; i < 4; i++) {
    reel_h1_request req;
    reel_h1_request_init(&req, &limits);
    int rc = reel_h1_parse_request(raw + offset, sizeof raw - 1 - offset, &req);
    if (i < 3) {
      CHECK(rc > 0);
      CHECK_STR(text(req.path), expected_paths[i]);
      CHECK_STR(req.body.data ? req.body.data : "", expected_bodies[i]);
      if (rc > 0) offset += (size_t)rc;
    } else {
      CHECK_INT(rc, REEL_EAGAIN);
      CHECK(!req.head_complete);
    }
    reel_h1_request_free(&req);
  }
}

/* 431 for a head that keeps growing without its end; the error comes as soon
 * as max_header_bytes are in, not when the end arrives. */
static void test_endless_head(void) {
  enum { MAX = 256 };
  char data[MAX + 64];
  memcpy(data, "GET / HTTP/1.1\r\nX-Long: ", 24);
  memset(data + 24, 'a', sizeof data - 24);
  reel_h1_limits limits = {MAX, BODY_BYTES};
  reel_h1_request req;
  reel_h1_request_init(&req, &limits);
  for (size_t len = 1; len < MAX; len++) CHECK_INT(reel_h1_parse_request(data, len, &req), REEL_EAGAIN);
  CHECK_INT(reel_h1_parse_request(data, MAX, &req), REEL_EHEADERS_TOO_LARGE);
  CHECK_INT(reel_h1_parse_request(data, sizeof data, &req), REEL_EHEADERS_TOO_LARGE);
  reel_h1_request_free(&req);
}

/* REEL_H1_MAX_HEADERS fields parse; one more is 431. */
static void test_header_count(void) {
  for (int extra = 0; extra <= 1; extra++) {
    char data[8192];
    size_t len = (size_t)snprintf(data, sizeof data, "GET / HTTP/1.1\r\n" H);
    for (int i = 1; i < REEL_H1_MAX_HEADERS + extra; i++)
      len += (size_t)snprintf(data + len, sizeof data - len, "X-%d: %d\r\n", i, i);
    len += (size_t)snprintf(data + len, sizeof data - len, "\r\n");
    reel_h1_limits limits = {sizeof data, BODY_BYTES};
    reel_h1_request req;
    reel_h1_request_init(&req, &limits);
    int rc = reel_h1_parse_request(data, len, &req);
    if (extra) {
      CHECK_INT(rc, REEL_EHEADERS_TOO_LARGE);
    } else {
      CHECK_INT(rc, len);
      CHECK_INT(req.n_headers, REEL_H1_MAX_HEADERS);
      CHECK_STR(text(reel_h1_header(&req, "x-63")), "63");
    }
    reel_h1_request_free(&req);
  }
}

/* 413 from the head alone, with a Content-Length far over the cap. */
static void test_big_content_length_early(void) {
  static const char raw[] = "PUT /upload HTTP/1.1\r\n" H "Content-Length: 1000000000\r\n\r\n";
  reel_h1_limits limits = {HEAD_BYTES, BODY_BYTES};
  reel_h1_request req;
  reel_h1_request_init(&req, &limits);
  CHECK_INT(reel_h1_parse_request(raw, sizeof raw - 1, &req), REEL_ETOOBIG);
  CHECK(req.head_complete);
  CHECK_INT(req.content_length, 1000000000);
  CHECK(req.body.data == NULL);
  reel_h1_request_free(&req);
}

/* A body bigger than a stack buffer, waited for across calls. */
static void test_body_across_calls(void) {
  enum { BODY = 2000 };
  static char data[4096];
  size_t head = (size_t)snprintf(data, sizeof data, "POST /b HTTP/1.1\r\n" H "Content-Length: %d\r\n\r\n", BODY);
  memset(data + head, 'b', BODY);
  reel_h1_limits limits = {HEAD_BYTES, BODY_BYTES};
  reel_h1_request req;
  reel_h1_request_init(&req, &limits);
  CHECK_INT(reel_h1_parse_request(data, head, &req), REEL_EAGAIN);
  CHECK(req.head_complete);
  CHECK_INT(reel_h1_parse_request(data, head + BODY - 1, &req), REEL_EAGAIN);
  CHECK_INT(reel_h1_parse_request(data, head + BODY, &req), head + BODY);
  CHECK_INT(req.body.len, BODY);
  CHECK(req.body.len == BODY && req.body.data[0] == 'b' && req.body.data[BODY - 1] == 'b');
  reel_h1_request_free(&req);
}

/* Chunk extensions are bounded over the whole message, not per chunk. */
static void test_chunk_extension_budget(void) {
  static char data[16384];
  size_t len = (size_t)snprintf(data, sizeof data, "POST /e HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 10; i++) {
    len += (size_t)snprintf(data + len, sizeof data - len, "1;");
    memset(data + len, 'e', 500);
    len += 500;
    len += (size_t)snprintf(data + len, sizeof data - len, "\r\nx\r\n");
  }
  len += (size_t)snprintf(data + len, sizeof data - len, "0\r\n\r\n");
  reel_h1_limits limits = {HEAD_BYTES, BODY_BYTES};
  reel_h1_request req;
  reel_h1_request_init(&req, &limits);
  CHECK_INT(reel_h1_parse_request(data, len, &req), REEL_ETOOBIG);
  reel_h1_request_free(&req);
}

static void test_header_lookup(void) {
  static const char raw[] = "GET / HTTP/1.1\r\nHost: reel.test\r\nContent-Type: text/plain\r\n"
                            "X-Dup: first\r\nx-dup: second\r\nX-Empty:\r\n\r\n";
  reel_h1_request req;
  reel_h1_request_init(&req, NULL); /* default limits */
  CHECK_INT(reel_h1_parse_request(raw, sizeof raw - 1, &req), sizeof raw - 1);
  CHECK_STR(text(reel_h1_header(&req, "content-type")), "text/plain");
  CHECK_STR(text(reel_h1_header(&req, "CONTENT-TYPE")), "text/plain");
  CHECK_STR(text(reel_h1_header(&req, "Content-Type")), "text/plain");
  CHECK_STR(text(reel_h1_header(&req, "x-DUP")), "first");
  reel_slice empty = reel_h1_header(&req, "x-empty");
  CHECK(empty.ptr != NULL && empty.len == 0);
  reel_slice missing = reel_h1_header(&req, "Content-Typ");
  CHECK(missing.ptr == NULL && missing.len == 0);
  CHECK(reel_h1_header(&req, "Authorization").ptr == NULL);
  reel_h1_request_free(&req);
}

/* A shorter buffer after the head was seen is a caller error, not a crash. */
static void test_shrunk_buffer(void) {
  static const char raw[] = "POST / HTTP/1.1\r\n" H "Content-Length: 4\r\n\r\nab";
  reel_h1_request req;
  reel_h1_request_init(&req, NULL);
  CHECK_INT(reel_h1_parse_request(raw, sizeof raw - 1, &req), REEL_EAGAIN);
  CHECK_INT(reel_h1_parse_request(raw, 10, &req), REEL_EINVAL);
  reel_h1_request_free(&req);
}

/* Bytes that no valid request can begin with are refused as soon as they are
 * in (no waiting for header_timeout); prefixes of valid requests still wait. */
static void test_garbage_refused_early(void) {
  static const struct { const char *raw; size_t len; } garbage[] = {
      {"\0", 1},
      {"\x16\x03\x01\x02\x00\x01", 6}, /* a TLS ClientHello on a cleartext port */
      {"GET\0", 4},
      {" GET", 4},
      {"GET /\x01", 6},
      {"GET  /", 6},
      {"GET / HTTX", 10},
      {"GET / HTTP/1.1x", 15},
      {"GET / HTTP/a", 12},
      {"hello world this is not http", 28},
      {"GET /a\0", 7},
  };
  static const char *const waiting[] = {"G", "GET", "GET ", "GET /v1/jobs?x=1", "GET / ", "GET / HTTP/1.",
                                        "GET / HTTP/2.0", "GET / HTTP/1.1\r", "GET / HTTP/1.1\r\nHost: x",
                                        "\r\nGET / HTTP/1.1\r\n",
                                        /* past the request-line the complete head decides (a NUL there
                                           is a 400 only once an earlier error cannot come first) */
                                        "PRI * HTTP/2.0\r\nJ"};
  for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++) {
    reel_h1_request req;
    reel_h1_request_init(&req, NULL);
    CHECK_INT(reel_h1_parse_request(garbage[i].raw, garbage[i].len, &req), REEL_EPARSE);
    reel_h1_request_free(&req);
    /* the same, a byte at a time: refused at the first byte that cannot fit */
    reel_h1_request_init(&req, NULL);
    int rc = REEL_EAGAIN;
    for (size_t n = 1; n <= garbage[i].len && rc == REEL_EAGAIN; n++) rc = reel_h1_parse_request(garbage[i].raw, n, &req);
    CHECK_INT(rc, REEL_EPARSE);
    reel_h1_request_free(&req);
  }
  for (size_t i = 0; i < sizeof waiting / sizeof *waiting; i++) {
    reel_h1_request req;
    reel_h1_request_init(&req, NULL);
    size_t len = strlen(waiting[i]);
    for (size_t n = 1; n <= len; n++) CHECK_INT(reel_h1_parse_request(waiting[i], n, &req), REEL_EAGAIN);
    reel_h1_request_free(&req);
  }
}

int main(void) {
  test_garbage_refused_early();
  test_table();
  test_chunked_incremental_same_buffer();
  test_pipeline_loop();
  test_endless_head();
  test_header_count();
  test_big_content_length_early();
  test_body_across_calls();
  test_chunk_extension_budget();
  test_header_lookup();
  test_shrunk_buffer();
  return check_report();
}
