/* The HTTP/3 front end without I/O (the HTTP/3 twin of h2_session): an
 * nghttp3 server connection fed with QUIC stream data by whoever owns the
 * QUIC connection (h3_server.c, or a test or fuzz target with no QUIC at
 * all). Each request stream becomes a reel_http_request (protocol
 * REEL_HTTP_3) handled by the same handler as HTTP/1.1 and HTTP/2, and its
 * response is streamed from memory or from a file range.
 *
 * The owner moves bytes both ways: stream data received goes in with
 * reel_h3_session_recv; stream data to send comes out of
 * reel_h3_session_writev, and the owner reports how much the transport took
 * (reel_h3_session_add_write_offset), what the peer acknowledged
 * (reel_h3_session_add_ack_offset) and which streams ended. The session asks
 * the owner for QUIC actions through the hooks in its config.
 *
 * Limits: the header section is capped at max_header_bytes (431 beyond,
 * also advertised as SETTINGS_MAX_FIELD_SECTION_SIZE), the body at
 * max_body_bytes (413 beyond), request streams by the owner's QUIC stream
 * limit. Responses waiting on flow control hold bounded resources, as in
 * h2_session: shared static bodies are sent by reference, at most
 * REEL_H3_MAX_OPEN_FILES response files are open per connection (later ones
 * wait, unopened, for a slot), unsent in-memory bodies are capped at
 * REEL_H3_MAX_BUFFERED_BYTES per connection (beyond it, with another still
 * unacknowledged, a response becomes a 503), and streams reset by the client
 * faster than a rate end the connection with H3_EXCESSIVE_LOAD.
 *
 * Deadlines: reel_h3_session_deadline_ms, like its HTTP/2 twin: with response
 * bytes pending, send_timeout_ms after the last progress (REEL_H3_PROGRESS_BYTES
 * acknowledged, or a response finished); otherwise, with no request being
 * handled, idle_timeout_ms after the last request activity. QUIC PINGs and
 * flow-control frames do not move it (QUIC's own idle timer, which they do
 * reset, runs beside it).
 *
 * A request still with the handler when its stream is reset or the
 * session is freed is detached, so the late reel_http_send frees it. */
#ifndef REEL_H3_SESSION_H
#define REEL_H3_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "http/request.h"

/* HTTP/3 application error codes (RFC 9114 section 8.1) used by the hooks. */
#define REEL_H3_NO_ERROR 0x100
#define REEL_H3_GENERAL_PROTOCOL_ERROR 0x101
#define REEL_H3_INTERNAL_ERROR 0x102
#define REEL_H3_EXCESSIVE_LOAD 0x107
#define REEL_H3_REQUEST_CANCELLED 0x10c

#define REEL_H3_MAX_OPEN_FILES 8                   /* response files open at once per connection */
#define REEL_H3_MAX_BUFFERED_BYTES ((size_t)1 << 20) /* unacknowledged in-memory response bytes per connection */
#define REEL_H3_PROGRESS_BYTES 16384                /* acknowledged bytes that count as progress */

typedef struct reel_h3_session reel_h3_session;

/* A piece of stream data to send (same layout as ngtcp2_vec and nghttp3_vec). */
typedef struct {
  uint8_t *base;
  size_t len;
} reel_h3_vec;

typedef struct {
  size_t max_header_bytes;
  size_t max_body_bytes;
  /* Request streams the client may open at first (its QUIC initial_max_streams_bidi). */
  uint64_t max_streams_bidi;
  void (*handler)(reel_http_request *req, void *app);
  void *app;
  const char *extra_header_name, *extra_header_value; /* added to every response, or NULL */
  const char *remote;                                 /* peer address for logs ("ip:port") */
  uint64_t idle_timeout_ms; /* no request activity and nothing to send for this long: close (0: 60 s) */
  uint64_t send_timeout_ms; /* response bytes pending and no progress for this long: close (0: 60 s) */

  /* QUIC hooks, each optional; io is passed back. The session may call them
   * from inside any of its functions, so an owner on ngtcp2 applies
   * shutdown_read and shutdown_write once the ngtcp2 call in progress has
   * returned. */
  /* n bytes of stream_id were consumed: give the peer that much more credit
   * on the stream and on the connection. */
  void (*consumed)(void *io, int64_t stream_id, size_t n);
  /* Stop reading stream_id (STOP_SENDING with app_error_code). */
  void (*shutdown_read)(void *io, int64_t stream_id, uint64_t app_error_code);
  /* Abort sending on stream_id (RESET_STREAM with app_error_code). */
  void (*shutdown_write)(void *io, int64_t stream_id, uint64_t app_error_code);
  /* A response submitted outside any session call (a handler answering
   * later) left output to send: call reel_h3_session_writev soon. Never
   * called from inside a session function. */
  void (*on_output)(void *io);
  void *io;
} reel_h3_session_config;

/* Creates a server session. cfg is copied; its strings must outlive the
 * session. Returns NULL when out of memory. */
reel_h3_session *reel_h3_session_new(const reel_h3_session_config *cfg);
/* Frees the session. Requests still with the handler are detached (their
 * late send frees them); every other stream is freed now. NULL is ignored. */
void reel_h3_session_free(reel_h3_session *s);

/* Names the three unidirectional streams the owner opened for the server's
 * control, QPACK encoder and QPACK decoder streams (call once, before
 * writev). Returns 0 or REEL_EINVAL. */
int reel_h3_session_bind_streams(reel_h3_session *s, int64_t control_id, int64_t qpack_encoder_id,
                                 int64_t qpack_decoder_id);

/* Processes len bytes received on stream_id (fin: the peer's last bytes on
 * it). Handlers may run (and answer) from inside. Returns 0, or REEL_EPARSE /
 * REEL_ENOMEM when the connection must close with
 * reel_h3_session_error_code(). */
int reel_h3_session_recv(reel_h3_session *s, int64_t stream_id, const uint8_t *data, size_t len, int fin);

/* Fills vec with up to veccnt pieces of the next stream data to send and
 * stores the stream in *stream_id and whether it ends there in *fin. Returns
 * the number of pieces (0 with *stream_id -1 when nothing is waiting; 0 with
 * a stream and *fin set means "just the FIN"), or REEL_EPARSE / REEL_ENOMEM
 * (close the connection with reel_h3_session_error_code()). */
int reel_h3_session_writev(reel_h3_session *s, int64_t *stream_id, int *fin, reel_h3_vec *vec, size_t veccnt);
/* The transport took n bytes of what writev gave for stream_id (0 for a
 * bare FIN). Returns 0 or REEL_EPARSE / REEL_ENOMEM. */
int reel_h3_session_add_write_offset(reel_h3_session *s, int64_t stream_id, size_t n);
/* The peer acknowledged n more bytes of stream_id: their buffers are
 * released and streams waiting on them go on. Returns 0 or an error as above. */
int reel_h3_session_add_ack_offset(reel_h3_session *s, int64_t stream_id, uint64_t n);
/* QUIC flow control blocks stream_id / lifts the block. */
void reel_h3_session_block_stream(reel_h3_session *s, int64_t stream_id);
void reel_h3_session_unblock_stream(reel_h3_session *s, int64_t stream_id);
/* The transport will not send on stream_id any more (e.g. it was reset). */
void reel_h3_session_shutdown_stream_write(reel_h3_session *s, int64_t stream_id);
/* The peer reset stream_id or asked us to stop sending on it: a request not
 * answered yet is abandoned (detached if the handler holds it) and the
 * stream is aborted through the hooks. Returns 0, or REEL_EPARSE when resets
 * come faster than a rate (a flood: close the connection with
 * reel_h3_session_error_code(), H3_EXCESSIVE_LOAD). */
int reel_h3_session_stream_reset(reel_h3_session *s, int64_t stream_id);
/* The QUIC stream is closed (app_error_code as received or sent, or
 * REEL_H3_NO_ERROR). Returns 0, or REEL_EPARSE when a critical stream closed
 * (close the connection with reel_h3_session_error_code()). */
int reel_h3_session_stream_close(reel_h3_session *s, int64_t stream_id, uint64_t app_error_code);
/* The client may now open max_streams request streams in total. */
void reel_h3_session_set_max_client_streams(reel_h3_session *s, uint64_t max_streams);

/* Graceful shutdown: queues GOAWAY naming the streams already accepted;
 * newer ones are refused, accepted ones finish. Returns 0 or REEL_EINVAL
 * before reel_h3_session_bind_streams. */
int reel_h3_session_shutdown(reel_h3_session *s);
/* Request streams not yet closed (after a shutdown, 0 means the connection
 * may close with H3_NO_ERROR). */
int reel_h3_session_request_streams(const reel_h3_session *s);
/* Requests handed to the handler and not answered yet. */
int reel_h3_session_handling(const reel_h3_session *s);
/* Monotonic milliseconds (reel_mono_ns() / 1e6) at which the owner should
 * close the connection, or UINT64_MAX while a handler works and nothing is
 * pending; *stalled (if not NULL) is set when that close is for responses
 * that made no progress (close with H3_EXCESSIVE_LOAD), else it is idleness. */
uint64_t reel_h3_session_deadline_ms(const reel_h3_session *s, int *stalled);
/* The HTTP/3 error code for CONNECTION_CLOSE after a call failed. */
uint64_t reel_h3_session_error_code(const reel_h3_session *s);

#endif
