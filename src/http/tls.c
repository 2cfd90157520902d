/* TLS credentials: loading, reference counting and reload. */
#include "http/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/x509.h>

#include "common/error.h"

struct reel_tls_credentials {
  gnutls_certificate_credentials_t cred;
  int refs;
};

/* Whether the private key belongs to the first certificate of the chain, by
 * their public-key IDs. GnuTLS's own check (skipped with
 * GNUTLS_CERTIFICATE_SKIP_KEY_CERT_MATCH) signs and verifies a test message,
 * which runs its whole ECDSA/RSA and GMP code at start: ~250 KB of an idle
 * reeld (bench/footprint.sh). The first handshake runs it anyway, when it
 * is needed. */
static int key_matches_certificate(gnutls_certificate_credentials_t cred) {
  gnutls_x509_crt_t *chain = NULL;
  unsigned n = 0;
  gnutls_x509_privkey_t key = NULL;
  int ok = 0;
  if (gnutls_certificate_get_x509_crt(cred, 0, &chain, &n) == GNUTLS_E_SUCCESS && n > 0 &&
      gnutls_certificate_get_x509_key(cred, 0, &key) == GNUTLS_E_SUCCESS) {
    unsigned char from_cert[64], from_key[64];
    size_t cert_len = sizeof from_cert, key_len = sizeof from_key;
    ok = gnutls_x509_crt_get_key_id(chain[0], GNUTLS_KEYID_USE_SHA256, from_cert, &cert_len) == 0 &&
         gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, from_key, &key_len) == 0 &&
         cert_len == key_len && memcmp(from_cert, from_key, cert_len) == 0;
  }
  for (unsigned i = 0; i < n; i++) gnutls_x509_crt_deinit(chain[i]);
  gnutls_free(chain);
  if (key) gnutls_x509_privkey_deinit(key);
  return ok;
}

static reel_tls_credentials *load(const char *cert, const char *key, char *err, size_t errlen) {
  reel_tls_credentials *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(err, errlen, "out of memory loading TLS credentials");
    return NULL;
  }
  if (gnutls_certificate_allocate_credentials(&c->cred) != GNUTLS_E_SUCCESS) {
    free(c);
    snprintf(err, errlen, "out of memory loading TLS credentials");
    return NULL;
  }
  gnutls_certificate_set_flags(c->cred, GNUTLS_CERTIFICATE_SKIP_KEY_CERT_MATCH); /* checked below, cheaply */
  int rc = gnutls_certificate_set_x509_key_file2(c->cred, cert, key, GNUTLS_X509_FMT_PEM, NULL, 0);
  if (rc >= 0 && !key_matches_certificate(c->cred)) {
    snprintf(err, errlen,
             "the TLS key %s does not belong to the certificate %s (the first certificate in the file must be "
             "the one issued for this key: check service.tls.cert_file and service.tls.key_file)",
             key, cert);
    gnutls_certificate_free_credentials(c->cred);
    free(c);
    return NULL;
  }
  if (rc < 0) {
    snprintf(err, errlen,
             "cannot load the TLS certificate %s with key %s: %s (check service.tls.cert_file and "
             "service.tls.key_file: PEM files, the key matching the certificate's first entry)",
             cert, key, gnutls_strerror(rc));
    gnutls_certificate_free_credentials(c->cred);
    free(c);
    return NULL;
  }
  c->refs = 1;
  return c;
}

int reel_tls_context_init(reel_tls_context *ctx, const char *cert_path, const char *key_path, char *err,
                          size_t errlen) {
  memset(ctx, 0, sizeof *ctx);
  snprintf(ctx->cert_path, sizeof ctx->cert_path, "%s", cert_path);
  snprintf(ctx->key_path, sizeof ctx->key_path, "%s", key_path);
  const char *where = NULL;
  if (gnutls_priority_init(&ctx->priority_tcp, REEL_TLS_PRIORITY_TCP, &where) < 0 ||
      gnutls_priority_init(&ctx->priority_quic, REEL_TLS_PRIORITY_QUIC, &where) < 0) {
    snprintf(err, errlen, "this GnuTLS does not accept reel's TLS priorities (at \"%s\")", where ? where : "?");
    reel_tls_context_free(ctx);
    return REEL_EINVAL;
  }
  ctx->current = load(cert_path, key_path, err, errlen);
  if (!ctx->current) {
    reel_tls_context_free(ctx);
    return REEL_EINVAL;
  }
  return 0;
}

int reel_tls_context_reload(reel_tls_context *ctx, char *err, size_t errlen) {
  reel_tls_credentials *fresh = load(ctx->cert_path, ctx->key_path, err, errlen);
  if (!fresh) return REEL_EINVAL;
  reel_tls_credentials_release(ctx->current);
  ctx->current = fresh;
  ctx->reloads++;
  return 0;
}

void reel_tls_context_free(reel_tls_context *ctx) {
  reel_tls_credentials_release(ctx->current);
  ctx->current = NULL;
  if (ctx->priority_tcp) gnutls_priority_deinit(ctx->priority_tcp);
  if (ctx->priority_quic) gnutls_priority_deinit(ctx->priority_quic);
  ctx->priority_tcp = ctx->priority_quic = NULL;
}

reel_tls_credentials *reel_tls_credentials_acquire(reel_tls_context *ctx) {
  ctx->current->refs++;
  return ctx->current;
}

void reel_tls_credentials_release(reel_tls_credentials *creds) {
  if (!creds || --creds->refs > 0) return;
  gnutls_certificate_free_credentials(creds->cred);
  free(creds);
}

gnutls_certificate_credentials_t reel_tls_credentials_get(const reel_tls_credentials *creds) {
  return creds->cred;
}
