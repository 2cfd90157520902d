/* TLS credentials shared by the https:// (TCP) and h3:// (QUIC) listeners.
 * One reel_tls_context holds the certificate and key paths from config and
 * the credentials loaded from them. Connections take a reference to the
 * credentials they were started with, so a reload (SIGHUP) swaps in new ones
 * for new connections while connections mid-request finish on the old ones.
 * Everything here runs on the event loop thread (no locking). */
#ifndef REEL_HTTP_TLS_H
#define REEL_HTTP_TLS_H

#include <stddef.h>

#include <gnutls/gnutls.h>

/* GnuTLS priorities: TLS 1.2 and 1.3 with AEAD ciphers and forward-secret key
 * exchange on TCP; TLS 1.3 only on QUIC (RFC 9001). */
#define REEL_TLS_PRIORITY_TCP                                                                       \
  "NORMAL:%SERVER_PRECEDENCE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:"        \
  "+AES-256-GCM:+CHACHA20-POLY1305:-KX-ALL:+ECDHE-RSA:+ECDHE-ECDSA"
#define REEL_TLS_PRIORITY_QUIC                                                                      \
  "NORMAL:%SERVER_PRECEDENCE:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"        \
  "+CHACHA20-POLY1305:+AES-128-CCM"

typedef struct reel_tls_credentials reel_tls_credentials;

typedef struct {
  char cert_path[1024];
  char key_path[1024];
  reel_tls_credentials *current; /* the context holds one reference */
  gnutls_priority_t priority_tcp;
  gnutls_priority_t priority_quic;
  int reloads;                   /* successful reloads so far */
} reel_tls_context;

/* Loads cert_path (PEM chain) and key_path (PEM key). Returns 0, or a reel
 * error with a message naming the file and what to do in err. */
int reel_tls_context_init(reel_tls_context *ctx, const char *cert_path, const char *key_path, char *err,
                          size_t errlen);
/* Loads the files again. On success new connections use the new credentials
 * and open ones keep theirs; on failure the old credentials stay in use and
 * err says why. */
int reel_tls_context_reload(reel_tls_context *ctx, char *err, size_t errlen);
/* Drops the context's reference (credentials in use by connections live on
 * until those release theirs). */
void reel_tls_context_free(reel_tls_context *ctx);

/* Returns the current credentials with one more reference. */
reel_tls_credentials *reel_tls_credentials_acquire(reel_tls_context *ctx);
/* Drops a reference; the last one frees the credentials. NULL is ignored. */
void reel_tls_credentials_release(reel_tls_credentials *creds);
/* The GnuTLS credentials to set on a session (gnutls_credentials_set). */
gnutls_certificate_credentials_t reel_tls_credentials_get(const reel_tls_credentials *creds);

#endif
