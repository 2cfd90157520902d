/* The HTTP/2 front end without I/O (nghttp2's mem_recv/mem_send style): the
 * connection owner feeds received bytes in with reel_h2_session_recv and
 * writes whatever reel_h2_session_send hands back; libuv does the I/O. Each
 * stream becomes a reel_http_request (protocol REEL_HTTP_2) handled by the
 * same handler as HTTP/1.1, and its response is streamed from memory or from
 * a file range, under HTTP/2 flow control.
 *
 * Limits: SETTINGS_MAX_CONCURRENT_STREAMS 100, the header list capped at
 * max_header_bytes (431 beyond), the body at max_body_bytes (413 beyond),
 * nghttp2's flood protection as it comes. A stream whose request is still
 * being handled when the stream or the connection goes away is detached, so
 * the late reel_http_send frees it. */
#ifndef REEL_H2_SESSION_H
#define REEL_H2_SESSION_H

#include <stddef.h>

#include "common/buf.h"
#include "http/request.h"

/* The HTTP/2 connection preface a client with prior knowledge starts with. */
#define REEL_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define REEL_H2_PREFACE_LEN 24

typedef struct reel_h2_session reel_h2_session;

typedef struct {
  size_t max_header_bytes; /* advertised as SETTINGS_MAX_HEADER_LIST_SIZE and enforced */
  size_t max_body_bytes;
  void (*handler)(reel_http_request *req, void *app);
  void *app;
  const char *extra_header_name, *extra_header_value; /* added to every response, or NULL */
  const char *remote;                                 /* peer address for logs ("ip:port") */
  int secure;                                         /* carried over TLS (the request's scheme is https) */
  /* Called when a response submitted outside reel_h2_session_recv (a handler
   * answering later) left output to send: the owner should call
   * reel_h2_session_send soon. Never called from inside recv or send. */
  void (*on_output)(void *io);
  void *io;
} reel_h2_config;

/* Creates a server session (our SETTINGS are queued at once). cfg is copied;
 * its strings must outlive the session. Returns NULL when out of memory. */
reel_h2_session *reel_h2_session_new(const reel_h2_config *cfg);
/* Frees the session. Streams whose requests are still being handled are
 * detached (their late send frees them); all others are freed now. */
void reel_h2_session_free(reel_h2_session *s);

/* Processes received bytes, starting with the client preface. Handlers may
 * run (and answer) from inside. Returns 0, or REEL_EPARSE/REEL_ENOMEM when
 * the connection cannot go on (send what reel_h2_session_send still gives,
 * then close). Protocol errors are answered with GOAWAY and return 0; the
 * session then stops wanting I/O. */
int reel_h2_session_recv(reel_h2_session *s, const void *data, size_t len);
/* Appends pending output to out, stopping after about max bytes. Returns 0 or
 * REEL_ENOMEM/REEL_EIO (close the connection). */
int reel_h2_session_send(reel_h2_session *s, reel_buf *out, size_t max);
/* 1 while the session wants to read or write; 0 once it is done (after
 * GOAWAY with no stream left): then close the connection. */
int reel_h2_session_want_io(const reel_h2_session *s);
/* Number of requests handed to the handler and not yet answered. */
int reel_h2_session_handling(const reel_h2_session *s);
/* Graceful shutdown: GOAWAY naming the last stream processed; streams already
 * accepted finish, then reel_h2_session_want_io turns 0. */
void reel_h2_session_shutdown(reel_h2_session *s);
/* Ends the session now with GOAWAY (the error is INTERNAL_ERROR when
 * internal_error, else NO_ERROR). */
void reel_h2_session_terminate(reel_h2_session *s, int internal_error);

#endif
