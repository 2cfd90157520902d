/* The HTTP/1.1 front end on libuv: accepts connections, parses requests with
 * h1_parser, hands each to one handler as a reel_http_request, and writes the
 * response (memory or streamed file). Keep-alive, pipelining (answered in
 * order), 100-continue, header/idle timeouts, a connection cap and graceful
 * shutdown. HTTP/2 and HTTP/3 front ends will call the same handler. */
#ifndef REEL_HTTP_SERVER_H
#define REEL_HTTP_SERVER_H

#include <uv.h>

#include "http/h1_parser.h"
#include "http/request.h"
#include "http/tls.h"

#define REEL_HTTP_MAX_LISTENERS 8

typedef void (*reel_http_handler)(reel_http_request *req, void *app);

typedef struct reel_http_connection reel_http_connection;

typedef struct {
  uv_loop_t *loop;
  reel_h1_limits limits;
  uint64_t header_timeout_ms; /* a request's head must arrive within this */
  uint64_t idle_timeout_ms;   /* keep-alive connections idle longer are closed; also a stalled body or write */
  int max_connections;
  reel_http_handler handler;
  void *app;
  /* Extra header added to every response (e.g. Alt-Svc), or NULL. */
  const char *extra_header_name, *extra_header_value;

  /* Credentials for https:// listeners (set before listening on one). */
  reel_tls_context *tls;

  uv_tcp_t listeners[REEL_HTTP_MAX_LISTENERS];
  int listener_tls[REEL_HTTP_MAX_LISTENERS];
  int n_listeners;
  reel_http_connection *connections; /* doubly linked list */
  int n_connections;
  /* Connections with output that arrived from outside their own callbacks (a
   * late response, a streamed body's news), written a slice per loop turn so
   * that a fan-out to many streams never holds the loop for long. */
  reel_http_connection *output_first, *output_last;
  uv_idle_t output_idle;
  int output_idle_open;
  int shutting_down;
  void (*on_drained)(void *data);    /* called once, when shut down and no connection is left */
  void *on_drained_data;
} reel_http_server;

/* Prepares a server; no listener yet. */
void reel_http_server_init(reel_http_server *srv, uv_loop_t *loop, reel_http_handler handler, void *app);
/* Listens on "HOST:PORT", "http://HOST:PORT", "https://HOST:PORT" (TLS,
 * ALPN h2 and http/1.1; srv->tls must be set) or "[V6]:PORT". On success
 * writes the bound port to *port (useful with port 0). On failure returns a
 * reel error and a message in err. */
int reel_http_server_listen(reel_http_server *srv, const char *address, int *port, char *err, size_t errlen);
/* Stops accepting, closes idle connections and lets in-flight requests finish
 * (their connections close after the response). Calls on_drained when done. */
void reel_http_server_shutdown(reel_http_server *srv);

#endif
