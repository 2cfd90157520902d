/* QUIC connections on libuv UDP sockets, in the manner of ngtcp2's
 * examples/server.cc: ngtcp2 does the transport, ngtcp2_crypto_gnutls the
 * TLS 1.3 handshake, and an h3_session the HTTP/3 layer. This file owns the
 * sockets, the connection-ID table, Retry and Version Negotiation, one timer
 * per connection, and the write loop that coalesces HTTP/3 stream data into
 * packets. Packets are sent with uv_udp_try_send and dropped when the socket
 * is full (QUIC retransmits).
 *
 * ngtcp2 forbids most of its calls from inside its callbacks, so the stream
 * shutdowns the session asks for are queued and applied once the ngtcp2 call
 * returns, and a connection is only freed from the top of a loop callback. */
#include "http/h3_server.h"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <malloc.h>
#include <netdb.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "http/address.h"
#include "http/h3_session.h"

#define H3_MAX_LISTENERS 8
#define H3_SCID_LEN 18
#define H3_MAX_CIDS 32           /* connection IDs one connection may hold in the table */
#define H3_MAX_PACKETS_PER_WRITE 64
#define H3_MAX_PENDING_OPS 65536 /* queued stream shutdowns per connection */
#define H3_RETRY_TOKEN_TIMEOUT (10 * NGTCP2_SECONDS)
#define H3_RX_BUFFER 65536
#define H3_TX_BUFFER 65536
#define H3_TRIM_AFTER_STREAMS 64 /* a connection that had this many request streams trims the heap when freed */

typedef struct h3_conn h3_conn;

typedef struct cid_entry {
  struct cid_entry *next;
  h3_conn *conn;
  ngtcp2_cid cid;
} cid_entry;

typedef struct {
  uv_udp_t udp;
  reel_h3_server *srv;
  struct sockaddr_storage local;
  socklen_t local_len;
} h3_listener;

struct reel_h3_server {
  reel_h3_config cfg;
  h3_listener *listeners[H3_MAX_LISTENERS];
  int n_listeners;
  int listeners_closing;
  int handles_closing; /* listener handles closing: the server's memory must wait for them */
  h3_conn *conns; /* doubly linked: every connection whose memory is not yet freed */
  int n_conns;
  cid_entry **buckets;
  size_t n_buckets, n_entries;
  uint64_t hash_key;
  uint8_t secret[32]; /* Retry tokens and stateless reset tokens; never leaves the process */
  int shutting_down;
  int drained;
  int free_requested;
  int busy_conns; /* connections that had H3_TRIM_AFTER_STREAMS request streams, not yet freed */
  uint64_t last_refusal_log_ns;
  uint8_t rx[H3_RX_BUFFER];
  uint8_t tx[H3_TX_BUFFER];
};

typedef struct {
  int64_t stream_id;
  uint64_t code;
  int write; /* 1: RESET_STREAM (shutdown write), 0: STOP_SENDING (shutdown read) */
} stream_op;

struct h3_conn {
  reel_h3_server *srv;
  h3_listener *listener;
  h3_conn *prev, *next;
  uv_timer_t timer;
  ngtcp2_conn *qc;
  ngtcp2_crypto_conn_ref conn_ref;
  gnutls_session_t tls;
  reel_tls_credentials *creds;
  reel_h3_session *h3;
  struct sockaddr_storage remote;
  socklen_t remote_len;
  char remote_text[64];
  ngtcp2_cid scid;
  ngtcp2_cid cids[H3_MAX_CIDS]; /* in the server's table */
  int n_cids;
  ngtcp2_connection_close_error last_error;
  int error_set;
  uint8_t *closebuf; /* CONNECTION_CLOSE, resent while closing */
  size_t closelen;
  uint64_t close_received, close_next;
  int closing, draining, dead;
  int depth; /* inside ngtcp2 calls for this connection: it must not be freed or written now */
  stream_op *ops;
  size_t n_ops, cap_ops;
  int streams_seen; /* request streams the client opened */
};

static uint64_t now_ns(void) { return uv_hrtime(); }

static socklen_t addr_len(const struct sockaddr *sa) {
  return sa->sa_family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6) : (socklen_t)sizeof(struct sockaddr_in);
}

/* ---- connection-ID table (chained, keyed hash, grows with its entries) ---- */

static uint64_t cid_hash(const reel_h3_server *s, const uint8_t *data, size_t len) {
  uint64_t h = 1469598103934665603ull ^ s->hash_key;
  for (size_t i = 0; i < len; i++) h = (h ^ data[i]) * 1099511628211ull;
  h ^= h >> 33; /* finalizer so the low bits depend on every byte */
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

static int table_grow(reel_h3_server *s) {
  size_t n = s->n_buckets ? s->n_buckets * 2 : 256;
  cid_entry **b = calloc(n, sizeof *b);
  if (!b) return REEL_ENOMEM;
  for (size_t i = 0; i < s->n_buckets; i++) {
    cid_entry *e = s->buckets[i];
    while (e) {
      cid_entry *next = e->next;
      size_t j = cid_hash(s, e->cid.data, e->cid.datalen) & (n - 1);
      e->next = b[j];
      b[j] = e;
      e = next;
    }
  }
  free(s->buckets);
  s->buckets = b;
  s->n_buckets = n;
  return 0;
}

static h3_conn *table_find(reel_h3_server *s, const uint8_t *data, size_t len) {
  if (!s->n_buckets) return NULL;
  for (cid_entry *e = s->buckets[cid_hash(s, data, len) & (s->n_buckets - 1)]; e; e = e->next)
    if (e->cid.datalen == len && memcmp(e->cid.data, data, len) == 0) return e->conn;
  return NULL;
}

static int table_add(reel_h3_server *s, const ngtcp2_cid *cid, h3_conn *c) {
  if (s->n_entries >= s->n_buckets && table_grow(s) != 0) return REEL_ENOMEM;
  if (table_find(s, cid->data, cid->datalen)) return REEL_ECONFLICT;
  cid_entry *e = malloc(sizeof *e);
  if (!e) return REEL_ENOMEM;
  e->cid = *cid;
  e->conn = c;
  size_t j = cid_hash(s, cid->data, cid->datalen) & (s->n_buckets - 1);
  e->next = s->buckets[j];
  s->buckets[j] = e;
  s->n_entries++;
  return 0;
}

static void table_remove(reel_h3_server *s, const ngtcp2_cid *cid) {
  if (!s->n_buckets) return;
  cid_entry **p = &s->buckets[cid_hash(s, cid->data, cid->datalen) & (s->n_buckets - 1)];
  for (; *p; p = &(*p)->next) {
    if ((*p)->cid.datalen == cid->datalen && memcmp((*p)->cid.data, cid->data, cid->datalen) == 0) {
      cid_entry *e = *p;
      *p = e->next;
      free(e);
      s->n_entries--;
      return;
    }
  }
}

static int conn_add_cid(h3_conn *c, const ngtcp2_cid *cid) {
  if (c->n_cids >= H3_MAX_CIDS) return REEL_ETOOBIG;
  int rc = table_add(c->srv, cid, c);
  if (rc != 0) return rc;
  c->cids[c->n_cids++] = *cid;
  return 0;
}

static void conn_remove_cid(h3_conn *c, const ngtcp2_cid *cid) {
  for (int i = 0; i < c->n_cids; i++) {
    if (ngtcp2_cid_eq(&c->cids[i], cid)) {
      table_remove(c->srv, cid);
      c->cids[i] = c->cids[--c->n_cids];
      return;
    }
  }
}

/* ---- sending ---- */

static void send_datagram(h3_listener *l, const struct sockaddr *to, const uint8_t *data, size_t len) {
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  uv_udp_try_send(&l->udp, &b, 1, to); /* EAGAIN: dropped, QUIC retransmits */
}

static void send_version_negotiation(h3_listener *l, const ngtcp2_version_cid *vc, const struct sockaddr *to) {
  uint8_t r[5];
  if (gnutls_rnd(GNUTLS_RND_NONCE, r, sizeof r) != 0) return;
  /* a reserved version (0x?a?a?a?a) keeps clients honest, then the one we speak */
  uint32_t versions[2] = {((((uint32_t)r[1] << 24) | ((uint32_t)r[2] << 16) | ((uint32_t)r[3] << 8) | r[4]) &
                           0xf0f0f0f0u) |
                              0x0a0a0a0au,
                          NGTCP2_PROTO_VER_V1};
  uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
  ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(buf, sizeof buf, r[0], vc->scid, vc->scidlen, vc->dcid,
                                                        vc->dcidlen, versions, 2);
  if (n > 0) send_datagram(l, to, buf, (size_t)n);
}

static void send_retry(h3_listener *l, const ngtcp2_pkt_hd *hd, const struct sockaddr *to, size_t received) {
  reel_h3_server *s = l->srv;
  ngtcp2_cid scid = {.datalen = H3_SCID_LEN};
  if (gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) != 0) return;
  uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
  ngtcp2_ssize tokenlen = ngtcp2_crypto_generate_retry_token(token, s->secret, sizeof s->secret, hd->version, to,
                                                             addr_len(to), &scid, &hd->dcid, now_ns());
  if (tokenlen < 0) return;
  uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
  size_t max = received * 3 < sizeof buf ? received * 3 : sizeof buf; /* anti-amplification */
  ngtcp2_ssize n = ngtcp2_crypto_write_retry(buf, max, hd->version, &hd->scid, &scid, &hd->dcid, token,
                                             (size_t)tokenlen);
  if (n > 0) send_datagram(l, to, buf, (size_t)n);
}

/* CONNECTION_CLOSE in an Initial packet, keeping no state (bad token, refusal). */
static void send_stateless_close(h3_listener *l, const ngtcp2_pkt_hd *hd, const struct sockaddr *to,
                                 uint64_t code, size_t received) {
  uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
  size_t max = received * 3 < sizeof buf ? received * 3 : sizeof buf;
  ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(buf, max, hd->version, &hd->scid, &hd->dcid, code, NULL, 0);
  if (n > 0) send_datagram(l, to, buf, (size_t)n);
}

/* ---- connection lifecycle ---- */

static void server_maybe_drained(reel_h3_server *s);
static void conn_arm_timer(h3_conn *c);
static int conn_write(h3_conn *c);

static void on_conn_closed(uv_handle_t *h) {
  h3_conn *c = h->data;
  reel_h3_server *s = c->srv;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->n_conns--;
  free(c);
  server_maybe_drained(s);
}

/* Releases everything now (requests still with the handler are detached);
 * the memory goes once the timer handle is closed. */
static void conn_free(h3_conn *c) {
  if (c->dead) return;
  c->dead = 1;
  while (c->n_cids > 0) conn_remove_cid(c, &c->cids[c->n_cids - 1]);
  reel_h3_session_free(c->h3);
  c->h3 = NULL;
  if (c->qc) ngtcp2_conn_del(c->qc);
  c->qc = NULL;
  if (c->tls) gnutls_deinit(c->tls);
  c->tls = NULL;
  reel_tls_credentials_release(c->creds);
  c->creds = NULL;
  free(c->closebuf);
  c->closebuf = NULL;
  free(c->ops);
  c->ops = NULL;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
  /* the last busy connection is gone: give the heap its many streams held back
   * to the system (once per burst: malloc_trim walks the heap), as h2_session does */
  if (c->streams_seen >= H3_TRIM_AFTER_STREAMS && --c->srv->busy_conns == 0) malloc_trim(0);
}

static void conn_set_transport_error(h3_conn *c, int liberr) {
  if (c->error_set) return;
  c->error_set = 1;
  ngtcp2_connection_close_error_set_transport_error_liberr(&c->last_error, liberr, NULL, 0);
}

static void conn_set_app_error(h3_conn *c, uint64_t code) {
  if (c->error_set) return;
  c->error_set = 1;
  ngtcp2_connection_close_error_set_application_error(&c->last_error, code, NULL, 0);
}

/* Sends CONNECTION_CLOSE with last_error and waits out the closing period
 * (3 PTO), answering further packets with the same close; during a server
 * shutdown the connection is freed at once. */
static void conn_close(h3_conn *c) {
  if (c->dead || c->closing || c->draining) return;
  if (c->last_error.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT_IDLE_CLOSE ||
      ngtcp2_conn_is_in_draining_period(c->qc)) {
    conn_free(c);
    return;
  }
  size_t size = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->qc);
  uint8_t *buf = malloc(size);
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  ngtcp2_ssize n =
      buf ? ngtcp2_conn_write_connection_close(c->qc, &ps.path, &pi, buf, size, &c->last_error, now_ns()) : -1;
  if (n <= 0) {
    free(buf);
    conn_free(c);
    return;
  }
  send_datagram(c->listener, (const struct sockaddr *)&c->remote, buf, (size_t)n);
  if (c->srv->shutting_down) {
    free(buf);
    conn_free(c);
    return;
  }
  c->closing = 1;
  c->closebuf = buf;
  c->closelen = (size_t)n;
  c->close_received = 0;
  c->close_next = 1;
  conn_arm_timer(c);
}

static void conn_start_draining(h3_conn *c) {
  if (c->srv->shutting_down) {
    conn_free(c);
    return;
  }
  c->draining = 1;
  conn_arm_timer(c);
}

static void conn_log_error(h3_conn *c, const char *what, int liberr) {
  reel_log(REEL_LOG_INFO, "QUIC connection error", "{s:s,s:s,s:s}", "remote", c->remote_text, "during", what,
           "error", ngtcp2_strerror(liberr));
}

/* ---- queued stream shutdowns (session hooks) ---- */

static void queue_op(h3_conn *c, int64_t stream_id, uint64_t code, int write) {
  if (c->dead) return;
  if (c->n_ops == c->cap_ops) {
    size_t cap = c->cap_ops ? c->cap_ops * 2 : 16;
    stream_op *ops = cap <= H3_MAX_PENDING_OPS ? realloc(c->ops, cap * sizeof *ops) : NULL;
    if (!ops) {
      conn_set_app_error(c, REEL_H3_INTERNAL_ERROR); /* applied by the next flush */
      return;
    }
    c->ops = ops;
    c->cap_ops = cap;
  }
  c->ops[c->n_ops++] = (stream_op){stream_id, code, write};
}

static void flush_ops(h3_conn *c) {
  for (size_t i = 0; i < c->n_ops; i++) {
    if (c->ops[i].write) ngtcp2_conn_shutdown_stream_write(c->qc, c->ops[i].stream_id, c->ops[i].code);
    else ngtcp2_conn_shutdown_stream_read(c->qc, c->ops[i].stream_id, c->ops[i].code);
  }
  c->n_ops = 0;
}

static void hook_consumed(void *io, int64_t stream_id, size_t n) {
  h3_conn *c = io;
  ngtcp2_conn_extend_max_stream_offset(c->qc, stream_id, n);
  ngtcp2_conn_extend_max_offset(c->qc, n);
}

static void hook_shutdown_read(void *io, int64_t stream_id, uint64_t code) { queue_op(io, stream_id, code, 0); }

static void hook_shutdown_write(void *io, int64_t stream_id, uint64_t code) { queue_op(io, stream_id, code, 1); }

static void on_conn_timer(uv_timer_t *t);

/* A handler answered later: write on the next loop turn, from the timer. */
static void hook_on_output(void *io) {
  h3_conn *c = io;
  if (c->dead || c->closing || c->draining) return;
  uv_timer_start(&c->timer, on_conn_timer, 0, 0);
}

/* ---- ngtcp2 callbacks ---- */

static int cb_recv_stream_data(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id, uint64_t offset,
                               const uint8_t *data, size_t datalen, void *user_data, void *stream_user_data) {
  (void)qc, (void)offset, (void)stream_user_data;
  h3_conn *c = user_data;
  if (!c->h3) return 0;
  if (reel_h3_session_recv(c->h3, stream_id, data, datalen, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0) != 0) {
    conn_set_app_error(c, reel_h3_session_error_code(c->h3));
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int cb_acked_stream_data_offset(ngtcp2_conn *qc, int64_t stream_id, uint64_t offset, uint64_t datalen,
                                       void *user_data, void *stream_user_data) {
  (void)qc, (void)offset, (void)stream_user_data;
  h3_conn *c = user_data;
  if (!c->h3) return 0;
  if (reel_h3_session_add_ack_offset(c->h3, stream_id, datalen) != 0) {
    conn_set_app_error(c, reel_h3_session_error_code(c->h3));
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int cb_stream_open(ngtcp2_conn *qc, int64_t stream_id, void *user_data) {
  /* marks the request streams whose close must give the client a new one */
  if (ngtcp2_is_bidi_stream(stream_id)) {
    h3_conn *c = user_data;
    ngtcp2_conn_set_stream_user_data(qc, stream_id, user_data);
    if (++c->streams_seen == H3_TRIM_AFTER_STREAMS) c->srv->busy_conns++;
  }
  return 0;
}

static int cb_stream_close(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id, uint64_t app_error_code,
                           void *user_data, void *stream_user_data) {
  h3_conn *c = user_data;
  if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)) app_error_code = REEL_H3_NO_ERROR;
  if (c->h3 && reel_h3_session_stream_close(c->h3, stream_id, app_error_code) != 0) {
    conn_set_app_error(c, reel_h3_session_error_code(c->h3));
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  if (ngtcp2_is_bidi_stream(stream_id) && stream_user_data) ngtcp2_conn_extend_max_streams_bidi(qc, 1);
  return 0;
}

static int cb_stream_reset(ngtcp2_conn *qc, int64_t stream_id, uint64_t final_size, uint64_t app_error_code,
                           void *user_data, void *stream_user_data) {
  (void)qc, (void)final_size, (void)app_error_code, (void)stream_user_data;
  h3_conn *c = user_data;
  if (c->h3 && reel_h3_session_stream_reset(c->h3, stream_id) != 0) {
    conn_set_app_error(c, reel_h3_session_error_code(c->h3)); /* a reset flood: H3_EXCESSIVE_LOAD */
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int cb_extend_max_remote_streams_bidi(ngtcp2_conn *qc, uint64_t max_streams, void *user_data) {
  (void)qc;
  h3_conn *c = user_data;
  if (c->h3) reel_h3_session_set_max_client_streams(c->h3, max_streams);
  return 0;
}

static int cb_extend_max_stream_data(ngtcp2_conn *qc, int64_t stream_id, uint64_t max_data, void *user_data,
                                     void *stream_user_data) {
  (void)qc, (void)max_data, (void)stream_user_data;
  h3_conn *c = user_data;
  if (c->h3) reel_h3_session_unblock_stream(c->h3, stream_id);
  return 0;
}

static void cb_rand(uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *rand_ctx) {
  (void)rand_ctx;
  (void)gnutls_rnd(GNUTLS_RND_NONCE, dest, destlen);
}

static int cb_get_new_connection_id(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                                    void *user_data) {
  (void)qc;
  h3_conn *c = user_data;
  for (int attempt = 0; attempt < 4; attempt++) {
    if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
    cid->datalen = cidlen;
    int rc = conn_add_cid(c, cid);
    if (rc == REEL_ECONFLICT) continue;
    if (rc != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
    if (ngtcp2_crypto_generate_stateless_reset_token(token, c->srv->secret, sizeof c->srv->secret, cid) != 0)
      return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
  }
  return NGTCP2_ERR_CALLBACK_FAILURE;
}

static int cb_remove_connection_id(ngtcp2_conn *qc, const ngtcp2_cid *cid, void *user_data) {
  (void)qc;
  conn_remove_cid(user_data, cid);
  return 0;
}

static int conn_setup_h3(h3_conn *c);

static int cb_recv_tx_key(ngtcp2_conn *qc, ngtcp2_crypto_level level, void *user_data) {
  (void)qc;
  if (level != NGTCP2_CRYPTO_LEVEL_APPLICATION) return 0;
  return conn_setup_h3(user_data) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) { return ((h3_conn *)ref->user_data)->qc; }

/* ---- HTTP/3 on an established connection ---- */

static int conn_setup_h3(h3_conn *c) {
  if (c->h3) return 0;
  reel_h3_server *s = c->srv;
  if (ngtcp2_conn_get_max_local_streams_uni(c->qc) < 3) {
    conn_set_app_error(c, REEL_H3_GENERAL_PROTOCOL_ERROR);
    return -1;
  }
  reel_h3_session_config cfg = {
      .max_header_bytes = s->cfg.max_header_bytes,
      .max_body_bytes = s->cfg.max_body_bytes,
      .max_streams_bidi = ngtcp2_conn_get_local_transport_params(c->qc)->initial_max_streams_bidi,
      .handler = s->cfg.handler,
      .app = s->cfg.app,
      .extra_header_name = s->cfg.extra_header_name,
      .extra_header_value = s->cfg.extra_header_value,
      .remote = c->remote_text,
      .idle_timeout_ms = s->cfg.idle_timeout_ms,
      .send_timeout_ms = s->cfg.idle_timeout_ms,
      .consumed = hook_consumed,
      .shutdown_read = hook_shutdown_read,
      .shutdown_write = hook_shutdown_write,
      .on_output = hook_on_output,
      .io = c,
  };
  c->h3 = reel_h3_session_new(&cfg);
  if (!c->h3) {
    conn_set_app_error(c, REEL_H3_INTERNAL_ERROR);
    return -1;
  }
  int64_t control, encoder, decoder;
  if (ngtcp2_conn_open_uni_stream(c->qc, &control, NULL) != 0 ||
      ngtcp2_conn_open_uni_stream(c->qc, &encoder, NULL) != 0 ||
      ngtcp2_conn_open_uni_stream(c->qc, &decoder, NULL) != 0 ||
      reel_h3_session_bind_streams(c->h3, control, encoder, decoder) != 0) {
    conn_set_app_error(c, REEL_H3_INTERNAL_ERROR);
    return -1;
  }
  if (s->shutting_down) reel_h3_session_shutdown(c->h3);
  return 0;
}

/* Writes everything ngtcp2 and the session have to send, coalescing stream
 * data into packets; stops at the congestion window or after a burst (the
 * timer then fires at once). Returns 0, or -1 when the connection closed. */
static int conn_write(h3_conn *c) {
  if (c->dead || c->closing || c->draining) return -1;
  reel_h3_server *s = c->srv;
  size_t max_payload = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->qc);
  if (max_payload > sizeof s->tx) max_payload = sizeof s->tx;
  size_t max_packets = ngtcp2_conn_get_send_quantum(c->qc) / max_payload;
  if (max_packets < 1) max_packets = 1;
  if (max_packets > H3_MAX_PACKETS_PER_WRITE) max_packets = H3_MAX_PACKETS_PER_WRITE;
  ngtcp2_tstamp ts = now_ns();
  size_t packets = 0;
  int more = 0;
  flush_ops(c);
  c->depth++;
  for (;;) {
    int64_t stream_id = -1;
    int fin = 0;
    reel_h3_vec hv[16];
    ngtcp2_vec v[16];
    int n = 0;
    if (c->h3 && ngtcp2_conn_get_max_data_left(c->qc) > 0) {
      n = reel_h3_session_writev(c->h3, &stream_id, &fin, hv, 16);
      if (n < 0) {
        conn_set_app_error(c, reel_h3_session_error_code(c->h3));
        goto fail;
      }
      for (int i = 0; i < n; i++) v[i] = (ngtcp2_vec){hv[i].base, hv[i].len};
    }
    ngtcp2_ssize datalen = -1;
    uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    ngtcp2_ssize written = ngtcp2_conn_writev_stream(c->qc, &ps.path, &pi, s->tx, max_payload, &datalen, flags,
                                                     stream_id, v, (size_t)n, ts);
    if (written < 0) {
      if (written == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
        reel_h3_session_block_stream(c->h3, stream_id);
        continue;
      }
      if (written == NGTCP2_ERR_STREAM_SHUT_WR || written == NGTCP2_ERR_STREAM_NOT_FOUND) {
        reel_h3_session_shutdown_stream_write(c->h3, stream_id);
        continue;
      }
      if (written == NGTCP2_ERR_WRITE_MORE) {
        if (reel_h3_session_add_write_offset(c->h3, stream_id, (size_t)datalen) != 0) {
          conn_set_app_error(c, reel_h3_session_error_code(c->h3));
          goto fail;
        }
        continue;
      }
      conn_log_error(c, "write", (int)written);
      conn_set_transport_error(c, (int)written);
      goto fail;
    }
    if (datalen >= 0 && stream_id >= 0 && reel_h3_session_add_write_offset(c->h3, stream_id, (size_t)datalen) != 0) {
      conn_set_app_error(c, reel_h3_session_error_code(c->h3));
      goto fail;
    }
    if (written == 0) break; /* nothing more, or congestion limited */
    send_datagram(c->listener, (const struct sockaddr *)ps.path.remote.addr, s->tx, (size_t)written);
    if (++packets >= max_packets) {
      more = 1;
      break;
    }
    if (c->n_ops > 0) break; /* a read failure asked for a reset: apply it, then go on */
  }
  c->depth--;
  ngtcp2_conn_update_pkt_tx_time(c->qc, ts);
  if (c->n_ops > 0) {
    flush_ops(c);
    more = 1;
  }
  if (c->error_set) { /* a hook could not queue: give up on the connection */
    conn_close(c);
    return -1;
  }
  if (more) uv_timer_start(&c->timer, on_conn_timer, 0, 0);
  else conn_arm_timer(c);
  return 0;
fail:
  c->depth--;
  conn_close(c);
  return -1;
}

/* During a shutdown, a connection with no request stream left closes. */
static void conn_check_shutdown(h3_conn *c) {
  if (!c->srv->shutting_down || c->dead || c->closing || c->draining) return;
  if (c->h3 && reel_h3_session_request_streams(c->h3) > 0) return;
  conn_set_app_error(c, REEL_H3_NO_ERROR);
  conn_close(c);
}

/* After a packet or a timer: send what is due, then re-arm the timer. */
static void conn_after_io(h3_conn *c) {
  if (conn_write(c) != 0) return;
  conn_check_shutdown(c);
}

static void on_conn_timer(uv_timer_t *t) {
  h3_conn *c = t->data;
  if (c->dead) return;
  if (c->closing || c->draining) {
    conn_free(c); /* the closing or draining period is over */
    return;
  }
  int stalled = 0;
  if (c->h3 && reel_h3_session_deadline_ms(c->h3, &stalled) <= now_ns() / NGTCP2_MILLISECONDS) {
    /* the session's deadline, which PINGs and flow-control frames do not move */
    if (stalled) reel_log(REEL_LOG_INFO, "HTTP/3 responses made no progress: connection closed", "{s:s}", "remote",
                          c->remote_text);
    conn_set_app_error(c, stalled ? REEL_H3_EXCESSIVE_LOAD : REEL_H3_NO_ERROR);
    conn_close(c);
    return;
  }
  int rv = ngtcp2_conn_handle_expiry(c->qc, now_ns());
  if (rv != 0) {
    if (rv == NGTCP2_ERR_IDLE_CLOSE) {
      conn_free(c);
      return;
    }
    if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
      reel_log(REEL_LOG_INFO, "QUIC handshake timed out", "{s:s}", "remote", c->remote_text);
      conn_free(c);
      return;
    }
    conn_log_error(c, "timer", rv);
    conn_set_transport_error(c, rv);
    conn_close(c);
    return;
  }
  conn_after_io(c);
}

static void conn_arm_timer(h3_conn *c) {
  if (c->dead) return;
  uint64_t timeout_ms;
  if (c->closing || c->draining) {
    timeout_ms = 3 * ngtcp2_conn_get_pto(c->qc) / NGTCP2_MILLISECONDS + 1;
  } else {
    /* while a handler works on a request, PINGs keep both idle timers from
     * ending the connection; an idle connection is left to time out */
    int handling = c->h3 && reel_h3_session_handling(c->h3) > 0;
    ngtcp2_conn_set_keep_alive_timeout(c->qc, handling ? c->srv->cfg.idle_timeout_ms * NGTCP2_MILLISECONDS / 2 : 0);
    ngtcp2_tstamp expiry = ngtcp2_conn_get_expiry(c->qc), now = now_ns();
    if (expiry == UINT64_MAX) timeout_ms = 3600 * 1000; /* nothing due: the idle timeout always is */
    else timeout_ms = expiry <= now ? 0 : (expiry - now + NGTCP2_MILLISECONDS - 1) / NGTCP2_MILLISECONDS;
    uint64_t deadline = c->h3 ? reel_h3_session_deadline_ms(c->h3, NULL) : UINT64_MAX, now_ms = now / NGTCP2_MILLISECONDS;
    if (deadline != UINT64_MAX) {
      uint64_t left = deadline > now_ms ? deadline - now_ms : 0;
      if (left < timeout_ms) timeout_ms = left;
    }
  }
  uv_timer_start(&c->timer, on_conn_timer, timeout_ms, 0);
}

/* ---- receiving ---- */

static void conn_on_datagram(h3_conn *c, h3_listener *l, const uint8_t *data, size_t len,
                             const struct sockaddr *from) {
  if (c->dead || c->draining) return;
  if (c->closing) {
    /* answer with the same close, less and less often */
    if (++c->close_received >= c->close_next) {
      c->close_next *= 2;
      send_datagram(c->listener, from, c->closebuf, c->closelen);
    }
    return;
  }
  ngtcp2_path path = {{(ngtcp2_sockaddr *)&l->local, l->local_len},
                      {(ngtcp2_sockaddr *)from, addr_len(from)},
                      NULL};
  ngtcp2_pkt_info pi = {0};
  c->depth++;
  int rv = ngtcp2_conn_read_pkt(c->qc, &path, &pi, data, len, now_ns());
  c->depth--;
  if (rv != 0) {
    switch (rv) {
    case NGTCP2_ERR_DRAINING: /* the peer closed */
      conn_start_draining(c);
      return;
    case NGTCP2_ERR_RETRY:
    case NGTCP2_ERR_DROP_CONN:
      conn_free(c);
      return;
    case NGTCP2_ERR_CRYPTO:
      if (!c->error_set) {
        c->error_set = 1;
        ngtcp2_connection_close_error_set_transport_error_tls_alert(&c->last_error,
                                                                    ngtcp2_conn_get_tls_alert(c->qc), NULL, 0);
      }
      break;
    default:
      conn_set_transport_error(c, rv);
    }
    conn_log_error(c, "read", rv);
    c->n_ops = 0; /* after a fatal error only the close may be written */
    conn_close(c);
    return;
  }
  flush_ops(c);
  conn_after_io(c);
}

static int conn_init_tls(h3_conn *c) {
  reel_h3_server *s = c->srv;
  static const gnutls_datum_t alpn = {(unsigned char *)"h3", 2};
  if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NO_SIGNAL) != GNUTLS_E_SUCCESS) {
    c->tls = NULL;
    return -1;
  }
  c->creds = reel_tls_credentials_acquire(s->cfg.tls);
  if (gnutls_priority_set(c->tls, s->cfg.tls->priority_quic) != GNUTLS_E_SUCCESS ||
      ngtcp2_crypto_gnutls_configure_server_session(c->tls) != 0 ||
      gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, reel_tls_credentials_get(c->creds)) !=
          GNUTLS_E_SUCCESS ||
      gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) != GNUTLS_E_SUCCESS)
    return -1;
  gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_IGNORE);
  c->conn_ref.get_conn = get_conn;
  c->conn_ref.user_data = c;
  gnutls_session_set_ptr(c->tls, &c->conn_ref);
  ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);
  return 0;
}

/* A new connection from a client's first Initial (address validated when
 * odcid is set: the original DCID from the Retry token). */
static h3_conn *conn_new(h3_listener *l, const ngtcp2_pkt_hd *hd, const ngtcp2_cid *odcid,
                         const struct sockaddr *from) {
  reel_h3_server *s = l->srv;
  h3_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->srv = s;
  c->listener = l;
  c->remote_len = addr_len(from);
  memcpy(&c->remote, from, c->remote_len);
  reel_address_format(from, c->remote_text, sizeof c->remote_text);
  ngtcp2_connection_close_error_default(&c->last_error);
  c->scid.datalen = H3_SCID_LEN;
  if (gnutls_rnd(GNUTLS_RND_RANDOM, c->scid.data, c->scid.datalen) != 0) {
    free(c);
    return NULL;
  }
  ngtcp2_callbacks callbacks = {
      .recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
      .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
      .encrypt = ngtcp2_crypto_encrypt_cb,
      .decrypt = ngtcp2_crypto_decrypt_cb,
      .hp_mask = ngtcp2_crypto_hp_mask_cb,
      .recv_stream_data = cb_recv_stream_data,
      .acked_stream_data_offset = cb_acked_stream_data_offset,
      .stream_open = cb_stream_open,
      .stream_close = cb_stream_close,
      .rand = cb_rand,
      .get_new_connection_id = cb_get_new_connection_id,
      .remove_connection_id = cb_remove_connection_id,
      .update_key = ngtcp2_crypto_update_key_cb,
      .stream_reset = cb_stream_reset,
      .extend_max_remote_streams_bidi = cb_extend_max_remote_streams_bidi,
      .extend_max_stream_data = cb_extend_max_stream_data,
      .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
      .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
      .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
      .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
      .recv_tx_key = cb_recv_tx_key,
  };
  ngtcp2_settings settings;
  ngtcp2_settings_default(&settings);
  settings.initial_ts = now_ns();
  settings.handshake_timeout = s->cfg.handshake_timeout_ms * NGTCP2_MILLISECONDS;
  if (odcid) settings.token = hd->token; /* validated: no amplification limit */
  ngtcp2_transport_params params;
  ngtcp2_transport_params_default(&params);
  params.initial_max_stream_data_bidi_remote = 256 * 1024;
  params.initial_max_stream_data_uni = 64 * 1024;
  params.initial_max_data = 1024 * 1024;
  params.initial_max_streams_bidi = (uint64_t)s->cfg.max_streams_bidi;
  params.initial_max_streams_uni = 3; /* the client's control and QPACK streams */
  params.max_idle_timeout = s->cfg.idle_timeout_ms * NGTCP2_MILLISECONDS;
  params.disable_active_migration = 1;
  params.stateless_reset_token_present = 1;
  if (ngtcp2_crypto_generate_stateless_reset_token(params.stateless_reset_token, s->secret, sizeof s->secret,
                                                   &c->scid) != 0) {
    free(c);
    return NULL;
  }
  if (odcid) {
    params.original_dcid = *odcid;
    params.retry_scid = hd->dcid;
    params.retry_scid_present = 1;
  } else {
    params.original_dcid = hd->dcid;
  }
  ngtcp2_path path = {{(ngtcp2_sockaddr *)&l->local, l->local_len},
                      {(ngtcp2_sockaddr *)&c->remote, c->remote_len},
                      NULL};
  if (ngtcp2_conn_server_new(&c->qc, &hd->scid, &c->scid, &path, hd->version, &callbacks, &settings, &params, NULL,
                             c) != 0) {
    free(c);
    return NULL;
  }
  uv_timer_init(s->cfg.loop, &c->timer);
  c->timer.data = c;
  c->next = s->conns;
  if (c->next) c->next->prev = c;
  s->conns = c;
  s->n_conns++;
  if (conn_init_tls(c) != 0 || conn_add_cid(c, &hd->dcid) != 0 || conn_add_cid(c, &c->scid) != 0) {
    reel_log(REEL_LOG_INFO, "QUIC connection setup failed", "{s:s}", "remote", c->remote_text);
    conn_free(c);
    return NULL;
  }
  return c;
}

/* A datagram for no known connection: a client's first Initial (maybe after
 * a Retry), or something to drop. */
static void accept_initial(h3_listener *l, const uint8_t *data, size_t len, const struct sockaddr *from) {
  reel_h3_server *s = l->srv;
  ngtcp2_pkt_hd hd;
  if (ngtcp2_accept(&hd, data, len) != 0 || hd.type != NGTCP2_PKT_INITIAL) return;
  if (s->n_conns >= s->cfg.max_connections) {
    uint64_t now = now_ns();
    if (now - s->last_refusal_log_ns > NGTCP2_SECONDS) {
      s->last_refusal_log_ns = now;
      reel_log(REEL_LOG_INFO, "QUIC connection refused: max_connections reached", "{s:i}", "max_connections",
               s->cfg.max_connections);
    }
    send_stateless_close(l, &hd, from, NGTCP2_CONNECTION_REFUSED, len);
    return;
  }
  ngtcp2_cid odcid;
  const ngtcp2_cid *validated = NULL;
  if (s->cfg.require_retry) {
    if (hd.token.len == 0 || hd.token.base[0] != NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
      send_retry(l, &hd, from, len);
      return;
    }
    if (ngtcp2_crypto_verify_retry_token(&odcid, hd.token.base, hd.token.len, s->secret, sizeof s->secret,
                                         hd.version, from, addr_len(from), &hd.dcid, H3_RETRY_TOKEN_TIMEOUT,
                                         now_ns()) != 0) {
      send_stateless_close(l, &hd, from, NGTCP2_INVALID_TOKEN, len);
      return;
    }
    validated = &odcid;
  }
  h3_conn *c = conn_new(l, &hd, validated, from);
  if (c) conn_on_datagram(c, l, data, len, from);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  h3_listener *l = h->data;
  buf->base = (char *)l->srv->rx;
  buf->len = sizeof l->srv->rx;
}

static void on_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags) {
  h3_listener *l = udp->data;
  reel_h3_server *s = l->srv;
  if (nread <= 0 || !from || (flags & UV_UDP_PARTIAL)) return;
  const uint8_t *data = (const uint8_t *)buf->base;
  size_t len = (size_t)nread;
  ngtcp2_version_cid vc;
  int rv = ngtcp2_pkt_decode_version_cid(&vc, data, len, H3_SCID_LEN);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    /* only for datagrams as large as a real Initial, so it cannot amplify */
    if (!s->shutting_down && len >= NGTCP2_MAX_UDP_PAYLOAD_SIZE) send_version_negotiation(l, &vc, from);
    return;
  }
  if (rv != 0 || vc.dcidlen > NGTCP2_MAX_CIDLEN) return;
  h3_conn *c = table_find(s, vc.dcid, vc.dcidlen);
  if (c) {
    conn_on_datagram(c, l, data, len, from);
    return;
  }
  if (vc.version == 0 || s->shutting_down) return; /* a short header for no connection, or no new ones */
  accept_initial(l, data, len, from);
}

/* ---- server ---- */

reel_h3_server *reel_h3_server_new(const reel_h3_config *cfg) {
  if (!cfg->loop || !cfg->tls || !cfg->handler) return NULL;
  reel_h3_server *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->cfg = *cfg;
  if (!s->cfg.max_header_bytes) s->cfg.max_header_bytes = 16384;
  if (!s->cfg.max_body_bytes) s->cfg.max_body_bytes = 65536;
  if (!s->cfg.idle_timeout_ms) s->cfg.idle_timeout_ms = 30000;
  if (!s->cfg.handshake_timeout_ms) s->cfg.handshake_timeout_ms = 10000;
  if (s->cfg.max_connections <= 0) s->cfg.max_connections = 10000;
  if (s->cfg.max_streams_bidi <= 0) s->cfg.max_streams_bidi = 100;
  if (gnutls_rnd(GNUTLS_RND_KEY, s->secret, sizeof s->secret) != 0 ||
      gnutls_rnd(GNUTLS_RND_RANDOM, &s->hash_key, sizeof s->hash_key) != 0) {
    free(s);
    return NULL;
  }
  return s;
}

static void server_release(reel_h3_server *s) {
  for (size_t i = 0; i < s->n_buckets; i++) {
    while (s->buckets[i]) {
      cid_entry *e = s->buckets[i];
      s->buckets[i] = e->next;
      free(e);
    }
  }
  free(s->buckets);
  gnutls_memset(s->secret, 0, sizeof s->secret);
  free(s);
}

/* Frees the server once it was asked to and no handle of it is open. */
static void server_try_release(reel_h3_server *s) {
  if (s->free_requested && s->handles_closing == 0 && (s->drained || (s->n_listeners == 0 && s->n_conns == 0)))
    server_release(s);
}

static void on_failed_listener_closed(uv_handle_t *h) {
  h3_listener *l = h->data;
  reel_h3_server *s = l->srv;
  free(l);
  s->handles_closing--;
  server_try_release(s);
}

static void server_finish_drain(reel_h3_server *s) {
  s->drained = 1;
  void (*cb)(void *) = s->cfg.on_drained;
  s->cfg.on_drained = NULL;
  if (s->free_requested) {
    server_try_release(s);
    return;
  }
  if (cb) cb(s->cfg.on_drained_data);
}

static void on_listener_closed(uv_handle_t *h) {
  h3_listener *l = h->data;
  reel_h3_server *s = l->srv;
  free(l);
  if (--s->handles_closing > 0) return;
  server_finish_drain(s);
}

static void server_maybe_drained(reel_h3_server *s) {
  if (!s->shutting_down || s->n_conns > 0 || s->listeners_closing || s->drained) return;
  s->listeners_closing = 1;
  if (s->n_listeners == 0) {
    server_finish_drain(s);
    return;
  }
  for (int i = 0; i < s->n_listeners; i++) {
    s->handles_closing++;
    uv_udp_recv_stop(&s->listeners[i]->udp);
    uv_close((uv_handle_t *)&s->listeners[i]->udp, on_listener_closed);
  }
}

int reel_h3_server_listen(reel_h3_server *s, const char *address, int *port, char *err, size_t errlen) {
  if (s->shutting_down) {
    snprintf(err, errlen, "the HTTP/3 server is shutting down");
    return REEL_EINVAL;
  }
  if (s->n_listeners >= H3_MAX_LISTENERS) {
    snprintf(err, errlen, "too many HTTP/3 listeners (at most %d)", H3_MAX_LISTENERS);
    return REEL_EINVAL;
  }
  struct addrinfo *res;
  int rc = reel_address_resolve_listen(address, SOCK_DGRAM, &res, err, errlen);
  if (rc != 0) return rc;
  h3_listener *l = calloc(1, sizeof *l);
  if (!l) {
    freeaddrinfo(res);
    snprintf(err, errlen, "out of memory listening on %s", address);
    return REEL_ENOMEM;
  }
  l->srv = s;
  uv_udp_init(s->cfg.loop, &l->udp);
  l->udp.data = l;
  rc = uv_udp_bind(&l->udp, res->ai_addr, 0);
  freeaddrinfo(res);
  int len = sizeof l->local;
  if (rc == 0) rc = uv_udp_getsockname(&l->udp, (struct sockaddr *)&l->local, &len);
  if (rc == 0) rc = uv_udp_recv_start(&l->udp, on_alloc, on_recv);
  if (rc != 0) {
    snprintf(err, errlen, "cannot listen on %s (UDP): %s", address, uv_strerror(rc));
    s->handles_closing++;
    uv_close((uv_handle_t *)&l->udp, on_failed_listener_closed);
    return REEL_EIO;
  }
  l->local_len = (socklen_t)len;
  int size = 4 << 20; /* room for bursts of Initials and uploads */
  uv_recv_buffer_size((uv_handle_t *)&l->udp, &size);
  *port = ntohs(l->local.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&l->local)->sin6_port
                                               : ((struct sockaddr_in *)&l->local)->sin_port);
  s->listeners[s->n_listeners++] = l;
  return 0;
}

int reel_h3_server_connections(const reel_h3_server *s) { return s->n_conns; }

void reel_h3_server_shutdown(reel_h3_server *s) {
  if (s->shutting_down) return;
  s->shutting_down = 1;
  h3_conn *c = s->conns;
  while (c) {
    h3_conn *next = c->next; /* c may close now (its memory stays until the timer handle closes) */
    if (c->dead) {
    } else if (c->depth > 0) {
      /* called from inside this connection's packet (a handler): it writes and
       * checks for the end when the packet is done */
      if (c->h3) reel_h3_session_shutdown(c->h3);
    } else if (c->closing || c->draining) {
      conn_free(c);
    } else if (c->h3 && reel_h3_session_shutdown(c->h3) == 0) {
      conn_after_io(c); /* GOAWAY */
    } else {
      conn_check_shutdown(c);
    }
    c = next;
  }
  server_maybe_drained(s);
}

void reel_h3_server_free(reel_h3_server *s) {
  if (!s) return;
  s->free_requested = 1;
  if (!s->drained && (s->n_listeners > 0 || s->n_conns > 0)) {
    s->cfg.on_drained = NULL;
    reel_h3_server_shutdown(s); /* freed once drained */
    return;
  }
  server_try_release(s);
}
