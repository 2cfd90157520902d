/* The HTTP/3 front end on libuv: QUIC (ngtcp2 with GnuTLS, TLS 1.3 only,
 * ALPN "h3") on one or more UDP sockets, each connection carrying an
 * h3_session whose requests go to the same handler as HTTP/1.1 and HTTP/2.
 *
 * Connections are found by connection ID in a hash table and capped at
 * max_connections; a Retry packet can validate the client's address before
 * any state is kept (require_retry); unknown QUIC versions get Version
 * Negotiation; malformed datagrams are dropped without touching other
 * connections. Each connection has one timer driven by ngtcp2's expiry
 * (loss recovery, idle and handshake timeouts). Everything runs on the loop
 * thread. */
#ifndef REEL_H3_SERVER_H
#define REEL_H3_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/request.h"
#include "http/tls.h"

typedef struct {
  uv_loop_t *loop;
  reel_tls_context *tls;          /* credentials taken per connection (a reload reaches new ones) */
  size_t max_header_bytes, max_body_bytes; /* 0: 16 KiB and 64 KiB */
  uint64_t idle_timeout_ms;       /* QUIC max_idle_timeout (0: 30 s) */
  uint64_t handshake_timeout_ms;  /* a handshake not done by then is dropped (stalled handshakes; 0: 10 s) */
  int max_connections;            /* 0: 10000 */
  int max_streams_bidi;           /* concurrent request streams per connection (0: 100) */
  int require_retry;              /* 1: address validation with a Retry packet before any state is kept */
  void (*handler)(reel_http_request *req, void *app);
  void *app;
  const char *extra_header_name, *extra_header_value; /* added to every response (e.g. alt-svc), or NULL */
  void (*on_drained)(void *data); /* after shutdown, once every connection is closed */
  void *on_drained_data;
} reel_h3_config;

typedef struct reel_h3_server reel_h3_server;

/* Creates a server (cfg is copied; its strings, tls and loop must outlive
 * it). Draws the per-process secret for Retry tokens and stateless reset
 * tokens. Returns NULL without loop, tls or handler, when out of memory, or
 * without randomness. */
reel_h3_server *reel_h3_server_new(const reel_h3_config *cfg);
/* Listens on "h3://HOST:PORT", "HOST:PORT" or "[V6]:PORT" (UDP). On success
 * writes the bound port to *port (port 0 picks one). On failure returns a
 * reel error with a message in err. */
int reel_h3_server_listen(reel_h3_server *s, const char *address, int *port, char *err, size_t errlen);
/* Connections currently held (handshaking, open, or closing), for metrics and tests. */
int reel_h3_server_connections(const reel_h3_server *s);
/* Graceful shutdown: stops accepting connections, sends GOAWAY on every
 * connection and lets accepted streams finish; each connection then closes
 * with H3_NO_ERROR (handshakes in progress are closed at once). Once none is
 * left the UDP sockets close and on_drained runs. Calling it again does
 * nothing. */
void reel_h3_server_shutdown(reel_h3_server *s);
/* Frees the server. Call it after on_drained, or if it never listened;
 * otherwise it shuts the server down without calling on_drained and frees it
 * once drained. NULL is ignored. */
void reel_h3_server_free(reel_h3_server *s);

#endif
