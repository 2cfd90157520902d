/* One request model for every protocol (in the manner of h2o's h2o_req_t).
 * HTTP/1.1 today, HTTP/2 and HTTP/3 later: each front end fills a
 * reel_http_request, calls the router, and implements reel_http_transport to
 * carry the response. Handlers never learn which protocol carried a request.
 *
 * Lifetime: the front end allocates the request; the handler must finish it
 * with exactly one reel_http_send (now or later, from a callback). If the
 * connection goes away first, the front end calls reel_http_request_detach and
 * the eventual send just frees the request. Every slice in a request points
 * into memory the request owns, so it stays valid after a detach. */
#ifndef REEL_HTTP_REQUEST_H
#define REEL_HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "http/h1_parser.h"

typedef enum { REEL_HTTP_1_0, REEL_HTTP_1_1, REEL_HTTP_2, REEL_HTTP_3 } reel_http_protocol;

#define REEL_HTTP_MAX_RESPONSE_HEADERS 16

typedef struct reel_http_request reel_http_request;
typedef struct reel_http_response reel_http_response;

/* What a front end provides to carry one response. */
typedef struct {
  /* Sends resp for req (the transport takes ownership of resp's body/file and
   * frees req when done). Never called twice for one request. */
  void (*send)(reel_http_request *req, reel_http_response *resp);
  /* Frees a request whose connection is gone (called instead of send). */
  void (*free)(reel_http_request *req);
} reel_http_transport;

struct reel_http_response {
  int status;
  struct {
    char *name;
    char *value;
  } headers[REEL_HTTP_MAX_RESPONSE_HEADERS];
  int n_headers;
  reel_buf body;        /* in-memory body, followed by static_body if set, or: */
  int file_fd;          /* >= 0: stream file_length bytes from file_offset, then close */
  int64_t file_offset;
  int64_t file_length;
  /* Shared immutable bytes (an asset loaded once, alive for the process's
   * life) sent after body, by reference: never copied or freed per response. */
  const void *static_body;
  size_t static_len;
  /* A file opened only when the transport is about to send it (file_fd < 0,
   * file_offset and file_length set): file_open(file_ctx, &fd) opens it, see
   * http/response_file.h. file_ctx_free(file_ctx) runs when the response is
   * freed. Transports call reel_http_response_open_file, never file_open. */
  int (*file_open)(void *ctx, int *fd);
  void *file_ctx;
  void (*file_ctx_free)(void *ctx);
  int head_only;        /* HEAD: headers (with the real Content-Length) but no body */
  /* A body produced while it is sent (http/body_stream.h), instead of body,
   * file or static_body: no Content-Length (HTTP/1.1 sends it chunked). The
   * response owns the consumer side until a transport takes it. */
  struct reel_body_stream *stream;
};

struct reel_http_request {
  reel_http_protocol protocol;
  reel_slice method;
  reel_slice path;       /* raw, not percent-decoded */
  reel_slice query;      /* raw, without '?' */
  const reel_http_header *headers;
  int n_headers;
  reel_slice body;
  char request_id[17];
  char remote_addr[64];  /* the client: the socket peer, or the X-Forwarded-For client of a trusted proxy */
  char peer_addr[64];    /* the socket peer ("" until the router fills it in) */
  const char *scheme;    /* "https" (TLS, QUIC, or X-Forwarded-Proto from a trusted proxy) or "http";
                            front ends set it, the router defaults it */
  uint64_t start_ns;     /* monotonic, for latency */
  const char *route;     /* route pattern chosen by the router, for logs and metrics */
  int auth_token;        /* which configured token authenticated it (1-based), 0 for none (the router sets it) */

  /* Owned by the front end. */
  const reel_http_transport *transport;
  void *transport_data;
  int detached; /* the connection is gone; slices stay valid (the request owns its bytes) */
  int sent;
};

/* Returns the first header named name (case-insensitive), or {NULL, 0}. */
reel_slice reel_http_request_header(const reel_http_request *req, const char *name);
/* How many headers named NAME (case-insensitive) the request carries. */
int reel_http_request_header_count(const reel_http_request *req, const char *name);
/* Copies the query parameter name, percent-decoded ('+' as space), into a heap
 * string (*out, caller frees). Returns 1 if present once, 0 if absent,
 * REEL_EPARSE for bad encoding or a name given more than once, REEL_ETOOBIG
 * over 4 KiB. */
int reel_http_query_param(const reel_http_request *req, const char *name, char **out);

/* Initialises resp with a status and no headers or body. */
void reel_http_response_init(reel_http_response *resp, int status);
/* Adds a header (both strings copied). Returns 0 or REEL_ENOMEM/REEL_ETOOBIG. */
int reel_http_response_add_header(reel_http_response *resp, const char *name, const char *value);
/* Returns the value of a response header already added, or NULL. */
const char *reel_http_response_get_header(const reel_http_response *resp, const char *name);
/* Frees headers, body and any open file. */
void reel_http_response_free(reel_http_response *resp);

/* Finishes req with resp (moved: resp is emptied). Adds X-Request-Id. Safe on
 * a detached request (it is then freed). */
void reel_http_send(reel_http_request *req, reel_http_response *resp);
/* Convenience: sends status with a JSON body (text is copied). */
void reel_http_send_json(reel_http_request *req, int status, const char *json_text);
/* Sends an RFC 9457 problem+json error: type slug, title, detail (may be NULL).
 * The body carries instance (the path) and request_id. */
void reel_http_send_problem(reel_http_request *req, int status, const char *slug, const char *title,
                            const char *detail);
/* Like reel_http_send_problem with extra response headers (name, value pairs, NULL-terminated). */
void reel_http_send_problem_with_headers(reel_http_request *req, int status, const char *slug,
                                         const char *title, const char *detail, ...);
/* Marks the request as abandoned by its connection: a later send frees it. */
void reel_http_request_detach(reel_http_request *req);

/* Records a request whose response is being sent, for every protocol alike:
 * the request metrics and the access log line (method, path without query,
 * route, status, duration, protocol, request_id, remote). Front ends call it
 * once per response. */
void reel_http_request_finished(const reel_http_request *req, int status);

/* Standard reason phrase for a status code ("Unknown" if none). */
const char *reel_http_reason(int status);
/* Name of a protocol as logged: "HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3". */
const char *reel_http_protocol_name(reel_http_protocol p);

#endif
