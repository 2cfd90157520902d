/* The HTTP/2 front end without I/O (nghttp2's mem_recv/mem_send style): the
 * connection owner feeds received bytes in with reel_h2_session_recv and
 * writes whatever reel_h2_session_send hands back; libuv does the I/O. Each
 * stream becomes a reel_http_request (protocol REEL_HTTP_2) handled by the
 * same handler as HTTP/1.1, and its response is streamed from memory or from
 * a file range, under HTTP/2 flow control.
 *
 * Limits: SETTINGS_MAX_CONCURRENT_STREAMS 100, the header list capped at
 * max_header_bytes (431 beyond), the body at max_body_bytes (413 beyond).
 * Responses waiting on flow control hold bounded resources: shared static
 * bodies are sent by reference, at most REEL_H2_MAX_OPEN_FILES response
 * files are open per connection (later file responses wait, unopened, for a
 * slot), and in-memory bodies not yet sent are capped at
 * REEL_H2_MAX_BUFFERED_BYTES per connection (a response beyond it, when
 * another is still unsent, becomes a 503). The request's own bytes are freed
 * once its response is submitted. Floods of control frames (PING, SETTINGS,
 * PRIORITY, RST_STREAM, empty DATA) beyond a rate, and nghttp2's own flood
 * detection, end the connection with GOAWAY ENHANCE_YOUR_CALM.
 *
 * Deadlines: reel_h2_session_deadline_ms tells the owner when to close the
 * connection. While response bytes are pending it is send_timeout_ms after
 * the last progress (REEL_H2_PROGRESS_BYTES of DATA written, or a response
 * finished); otherwise, with no request being handled, idle_timeout_ms
 * after the last request activity. Inbound PING, SETTINGS and WINDOW_UPDATE
 * frames never move either deadline, so a client cannot keep a connection
 * and its resources by dripping them.
 *
 * A stream whose request is still being handled when the stream or the
 * connection goes away is detached, so the late reel_http_send frees it. */
#ifndef REEL_H2_SESSION_H
#define REEL_H2_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "http/request.h"

/* The HTTP/2 connection preface a client with prior knowledge starts with. */
#define REEL_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define REEL_H2_PREFACE_LEN 24

#define REEL_H2_MAX_OPEN_FILES 8                   /* response files open at once per connection */
#define REEL_H2_MAX_BUFFERED_BYTES ((size_t)1 << 20) /* unsent in-memory response bytes per connection */
#define REEL_H2_PROGRESS_BYTES 16384                /* DATA that counts as progress for the send deadline */

typedef struct reel_h2_session reel_h2_session;

typedef struct {
  size_t max_header_bytes; /* advertised as SETTINGS_MAX_HEADER_LIST_SIZE and enforced */
  size_t max_body_bytes;
  void (*handler)(reel_http_request *req, void *app);
  void *app;
  const char *extra_header_name, *extra_header_value; /* added to every response, or NULL */
  const char *remote;                                 /* peer address for logs ("ip:port") */
  int secure;                                         /* carried over TLS (the request's scheme is https) */
  uint64_t idle_timeout_ms; /* no request activity and nothing to send for this long: close (0: 60 s) */
  uint64_t send_timeout_ms; /* response bytes pending and no progress for this long: close (0: 60 s) */
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
/* Monotonic milliseconds (reel_mono_ns() / 1e6) at which the owner should
 * close the connection, or UINT64_MAX while a handler works and nothing is
 * pending. When why is not NULL it is set to a log message for a close at
 * that deadline (NULL for plain idleness, which is not worth a line). */
uint64_t reel_h2_session_deadline_ms(const reel_h2_session *s, const char **why);
/* Graceful shutdown: GOAWAY naming the last stream processed; streams already
 * accepted finish, then reel_h2_session_want_io turns 0. */
void reel_h2_session_shutdown(reel_h2_session *s);
/* Ends the session now with GOAWAY (the error is INTERNAL_ERROR when
 * internal_error, else NO_ERROR), unless it already ended (e.g. with
 * ENHANCE_YOUR_CALM after a flood): the first error code stands. */
void reel_h2_session_terminate(reel_h2_session *s, int internal_error);

#endif
