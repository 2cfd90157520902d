/* GCS V4 signing (storage/gcs_sign.h): canonical request pieces, object name
 * encoding, URL styles and endpoints, input limits, key loading errors that
 * never show key material, POST policy documents, and a signed URL whose
 * string to sign is re-derived here and whose RSA signature is verified with
 * the public key through GnuTLS. Uses the conformance suite's dummy key. */
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "storage/gcs_sign.h"

#define KEY_FILE "tests/vectors/gcs-v4/service-account.json"
#define EMAIL "test-iam-credentials@dummy-project-id.iam.gserviceaccount.com"

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *data = calloc(1, 65536);
  size_t n = data ? fread(data, 1, 65535, f) : 0;
  fclose(f);
  if (data) data[n] = '\0';
  return data;
}

static void sha256_hex(const char *s, char out[65]) {
  unsigned char d[32];
  gnutls_hash_fast(GNUTLS_DIG_SHA256, s, strlen(s), d);
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The public half of the key in the file, imported independently of gcs_sign.c. */
static gnutls_pubkey_t public_key_of(const char *key_json) {
  const char *begin = strstr(key_json, "-----BEGIN PRIVATE KEY-----");
  const char *end = strstr(key_json, "-----END PRIVATE KEY-----");
  if (!begin || !end) return NULL;
  end += strlen("-----END PRIVATE KEY-----");
  /* undo the JSON escaping of newlines */
  char *pem = calloc(1, (size_t)(end - begin) + 2);
  size_t n = 0;
  for (const char *p = begin; p < end; p++) {
    if (p[0] == '\\' && p[1] == 'n') {
      pem[n++] = '\n';
      p++;
    } else {
      pem[n++] = *p;
    }
  }
  pem[n++] = '\n';
  gnutls_privkey_t priv;
  gnutls_pubkey_t pub = NULL;
  gnutls_datum_t d = {(unsigned char *)pem, (unsigned)n};
  gnutls_privkey_init(&priv);
  if (gnutls_privkey_import_x509_raw(priv, &d, GNUTLS_X509_FMT_PEM, NULL, 0) == 0) {
    gnutls_pubkey_init(&pub);
    if (gnutls_pubkey_import_privkey(pub, priv, 0, 0) != 0) {
      gnutls_pubkey_deinit(pub);
      pub = NULL;
    }
  }
  gnutls_privkey_deinit(priv);
  memset(pem, 0, n);
  free(pem);
  return pub;
}

/* 1 when hex_sig is a valid RSA-SHA256 PKCS#1 v1.5 signature of message. */
static int verify(gnutls_pubkey_t pub, const char *message, const char *hex_sig) {
  size_t len = strlen(hex_sig) / 2;
  unsigned char *sig = malloc(len ? len : 1);
  for (size_t i = 0; i < len; i++) sscanf(hex_sig + 2 * i, "%2hhx", &sig[i]);
  gnutls_datum_t data = {(unsigned char *)message, (unsigned)strlen(message)};
  gnutls_datum_t s = {sig, (unsigned)len};
  int ok = gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_RSA_SHA256, 0, &data, &s) >= 0;
  free(sig);
  return ok;
}

static int no_key_material(const char *msg) {
  return !strstr(msg, "MII") && !strstr(msg, "PRIVATE KEY") && !strstr(msg, "BEGIN");
}

static void test_building_blocks(void) {
  reel_buf b;
  reel_buf_init(&b, 4096);
  const char name[] = "a b/c~d-e.f_g+h&i=j?k#l%m*'()!é😀";
  CHECK_INT(reel_gcs_percent_encode(name, strlen(name), 1, &b), 0);
  CHECK_STR(b.data, "a%20b/c~d-e.f_g%2Bh%26i%3Dj%3Fk%23l%25m%2A%27%28%29%21%C3%A9%F0%9F%98%80");
  reel_buf_reset(&b);
  CHECK_INT(reel_gcs_percent_encode("x/y;z", 5, 0, &b), 0);
  CHECK_STR(b.data, "x%2Fy%3Bz");
  reel_buf_reset(&b);
  CHECK_INT(reel_gcs_canonical_header_value(" \t abc    def\t\tghi  \t", &b), 0);
  CHECK_STR(b.data, "abc def ghi");
  reel_buf_reset(&b);
  CHECK_INT(reel_gcs_canonical_header_value("a\r\nb", &b), REEL_EINVAL);
  CHECK_INT(reel_gcs_canonical_header_value("a\x01" "b", &b), REEL_EINVAL);
  reel_buf_free(&b);
  char ts[17];
  CHECK_INT(reel_gcs_format_timestamp(1549011600, ts), 0);
  CHECK_STR(ts, "20190201T090000Z");
  CHECK_INT(reel_gcs_format_timestamp(1709251199, ts), 0);
  CHECK_STR(ts, "20240229T235959Z");
  CHECK_INT(reel_gcs_format_timestamp(-1, ts), REEL_EINVAL);
}

static void test_key_errors(void) {
  char err[512];
  reel_gcs_key *key = (reel_gcs_key *)1;
  CHECK_INT(reel_gcs_key_load_file("/nonexistent/sa.json", &key, err, sizeof err), REEL_ENOTFOUND);
  CHECK(key == NULL);
  CHECK(strstr(err, "/nonexistent/sa.json") != NULL);

  /* A raw newline inside the PEM string: jansson would quote the text near it. */
  const char broken[] = "{\"type\":\"service_account\",\"client_email\":\"" EMAIL "\",\"private_key\":\""
                        "-----BEGIN PRIVATE KEY-----\nMIIEvAIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n\"}";
  CHECK_INT(reel_gcs_key_load_json(broken, strlen(broken), &key, err, sizeof err), REEL_EPARSE);
  CHECK(strstr(err, "not valid JSON") != NULL);
  CHECK(no_key_material(err));

  const char bad_pem[] = "{\"client_email\":\"" EMAIL "\",\"private_key\":"
                         "\"-----BEGIN PRIVATE KEY-----\\nMIIEvAIBADANBgkqhkiG9w0B!!!\\n-----END PRIVATE KEY-----\\n\"}";
  CHECK_INT(reel_gcs_key_load_json(bad_pem, strlen(bad_pem), &key, err, sizeof err), REEL_EPARSE);
  CHECK(strstr(err, "private_key") != NULL);
  CHECK(no_key_material(err));

  const char no_email[] = "{\"private_key\":\"x\"}";
  CHECK_INT(reel_gcs_key_load_json(no_email, strlen(no_email), &key, err, sizeof err), REEL_EPARSE);
  CHECK(strstr(err, "client_email") != NULL);
  const char wrong_type[] = "{\"type\":\"authorized_user\",\"client_email\":\"a@b\",\"private_key\":\"x\"}";
  CHECK_INT(reel_gcs_key_load_json(wrong_type, strlen(wrong_type), &key, err, sizeof err), REEL_EPARSE);
  CHECK(strstr(err, "service_account") != NULL);
  const char with_nul[] = "{\"client_email\":\"a@b\",\0\"private_key\":\"x\"}";
  CHECK_INT(reel_gcs_key_load_json(with_nul, sizeof with_nul - 1, &key, err, sizeof err), REEL_EPARSE);
  CHECK(strstr(err, "NUL") != NULL);
  const char escaped_nul[] = "{\"client_email\":\"a@b\\u0000c\",\"private_key\":\"x\"}";
  CHECK_INT(reel_gcs_key_load_json(escaped_nul, strlen(escaped_nul), &key, err, sizeof err), REEL_EPARSE);
  char *huge = calloc(1, REEL_GCS_KEY_FILE_MAX + 2);
  memset(huge, ' ', REEL_GCS_KEY_FILE_MAX + 1);
  CHECK_INT(reel_gcs_key_load_json(huge, REEL_GCS_KEY_FILE_MAX + 1, &key, err, sizeof err), REEL_ETOOBIG);
  free(huge);

  /* An EC key in an otherwise valid file: GOOG4-RSA-SHA256 needs RSA. */
  gnutls_x509_privkey_t ec;
  gnutls_x509_privkey_init(&ec);
  gnutls_x509_privkey_generate(ec, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
  gnutls_datum_t pem = {NULL, 0};
  gnutls_x509_privkey_export2_pkcs8(ec, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &pem);
  gnutls_x509_privkey_deinit(ec);
  char json[4096];
  size_t n = (size_t)snprintf(json, sizeof json, "{\"client_email\":\"a@b\",\"private_key\":\"");
  for (unsigned i = 0; i < pem.size && n < sizeof json - 8; i++) {
    if (pem.data[i] == '\n') {
      json[n++] = '\\';
      json[n++] = 'n';
    } else {
      json[n++] = (char)pem.data[i];
    }
  }
  n += (size_t)snprintf(json + n, sizeof json - n, "\"}");
  gnutls_free(pem.data);
  CHECK_INT(reel_gcs_key_load_json(json, n, &key, err, sizeof err), REEL_EUNSUPPORTED);
  CHECK(no_key_material(err));
}

/* Signs one URL and checks every piece against an independent derivation. */
static void test_signed_url(const reel_gcs_key *key, gnutls_pubkey_t pub) {
  char err[512];
  reel_gcs_param headers[] = {{"Content-Type", " video/mp4 "}, {"X-Goog-Meta-Tag", "a"}, {"x-goog-meta-tag", "b  c"}};
  reel_gcs_param query[] = {{"response-content-disposition", "attachment; filename=\"v 1.mp4\""}, {"a", "é"}};
  reel_gcs_url_request req = {.method = "PUT",
                              .bucket = "reel-artifacts",
                              .object = "jobs/j 1/final+video.mp4",
                              .timestamp = 1756643696, /* 2025-08-31T12:34:56Z */
                              .expires_in = 900,
                              .headers = headers,
                              .header_count = 3,
                              .query = query,
                              .query_count = 2};
  reel_gcs_signed_url s;
  CHECK_INT(reel_gcs_sign_url(key, &req, &s, err, sizeof err), 0);
  const char *expected_canonical =
      "PUT\n"
      "/reel-artifacts/jobs/j%201/final%2Bvideo.mp4\n"
      "X-Goog-Algorithm=GOOG4-RSA-SHA256"
      "&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam.gserviceaccount.com%2F20250831%2Fauto%2Fstorage%2Fgoog4_request"
      "&X-Goog-Date=20250831T123456Z&X-Goog-Expires=900"
      "&X-Goog-SignedHeaders=content-type%3Bhost%3Bx-goog-meta-tag"
      "&a=%C3%A9&response-content-disposition=attachment%3B%20filename%3D%22v%201.mp4%22\n"
      "content-type:video/mp4\n"
      "host:storage.googleapis.com\n"
      "x-goog-meta-tag:a,b c\n"
      "\n"
      "content-type;host;x-goog-meta-tag\n"
      "UNSIGNED-PAYLOAD";
  CHECK_STR(s.canonical_request, expected_canonical);
  char digest[65], string_to_sign[256];
  sha256_hex(expected_canonical, digest);
  snprintf(string_to_sign, sizeof string_to_sign, "GOOG4-RSA-SHA256\n20250831T123456Z\n20250831/auto/storage/goog4_request\n%s",
           digest);
  CHECK_STR(s.string_to_sign, string_to_sign);
  const char *prefix = "https://storage.googleapis.com/reel-artifacts/jobs/j%201/final%2Bvideo.mp4?X-Goog-Algorithm=";
  CHECK(strncmp(s.url, prefix, strlen(prefix)) == 0);
  const char *sig = strstr(s.url, "&X-Goog-Signature=");
  CHECK(sig != NULL);
  if (sig) {
    sig += strlen("&X-Goog-Signature=");
    CHECK_INT((int)strlen(sig), 512); /* 2048-bit RSA */
    CHECK(verify(pub, string_to_sign, sig));
    string_to_sign[strlen(string_to_sign) - 1] ^= 1;
    CHECK(!verify(pub, string_to_sign, sig));
  }
  reel_gcs_signed_url_free(&s);
}

static const char *sign_for_host(const reel_gcs_key *key, reel_gcs_location loc, const char *object, char *url,
                                 size_t url_len, char *host, size_t host_len) {
  reel_gcs_url_request req = {.method = "GET", .bucket = "b-1", .object = object, .timestamp = 1549011600,
                              .expires_in = 10, .location = loc};
  reel_gcs_signed_url s;
  char err[256];
  url[0] = host[0] = '\0';
  if (reel_gcs_sign_url(key, &req, &s, err, sizeof err) != 0) return NULL;
  snprintf(url, url_len, "%.*s", (int)(strchr(s.url, '?') - s.url), s.url);
  const char *h = strstr(s.canonical_request, "\nhost:");
  snprintf(host, host_len, "%.*s", (int)(strchr(h + 1, '\n') - h - 6), h + 6);
  reel_gcs_signed_url_free(&s);
  return url;
}

static void test_locations(const reel_gcs_key *key) {
  char url[512], host[256];
  sign_for_host(key, (reel_gcs_location){0}, "o", url, sizeof url, host, sizeof host);
  CHECK_STR(url, "https://storage.googleapis.com/b-1/o");
  CHECK_STR(host, "storage.googleapis.com");
  sign_for_host(key, (reel_gcs_location){0}, NULL, url, sizeof url, host, sizeof host);
  CHECK_STR(url, "https://storage.googleapis.com/b-1");
  sign_for_host(key, (reel_gcs_location){.style = REEL_GCS_VIRTUAL_HOSTED_STYLE}, NULL, url, sizeof url, host,
                sizeof host);
  CHECK_STR(url, "https://b-1.storage.googleapis.com/");
  CHECK_STR(host, "b-1.storage.googleapis.com");
  sign_for_host(key, (reel_gcs_location){.style = REEL_GCS_BUCKET_BOUND_HOSTNAME, .bucket_bound_hostname = "cdn.example"},
                "a/b", url, sizeof url, host, sizeof host);
  CHECK_STR(url, "https://cdn.example/a/b");
  CHECK_STR(host, "cdn.example");
  sign_for_host(key, (reel_gcs_location){.endpoint = "http://127.0.0.1:4443/"}, "o", url, sizeof url, host,
                sizeof host);
  CHECK_STR(url, "http://127.0.0.1:4443/b-1/o");
  CHECK_STR(host, "127.0.0.1");
  sign_for_host(key, (reel_gcs_location){.emulator_host = "localhost:9000"}, "o", url, sizeof url, host, sizeof host);
  CHECK_STR(url, "http://localhost:9000/b-1/o");
  CHECK_STR(host, "localhost");
  sign_for_host(key, (reel_gcs_location){.emulator_host = "localhost:9000", .endpoint = "https://[::1]:8443"}, "o",
                url, sizeof url, host, sizeof host);
  CHECK_STR(url, "https://[::1]:8443/b-1/o");
  CHECK_STR(host, "[::1]");
  sign_for_host(key, (reel_gcs_location){.universe_domain = "Example.COM", .style = REEL_GCS_VIRTUAL_HOSTED_STYLE},
                "o", url, sizeof url, host, sizeof host);
  CHECK_STR(url, "https://b-1.storage.example.com/o");
  CHECK(sign_for_host(key, (reel_gcs_location){.endpoint = "https://evil.example/path"}, "o", url, sizeof url, host,
                      sizeof host) == NULL);
  CHECK(sign_for_host(key, (reel_gcs_location){.endpoint = "ftp://x"}, "o", url, sizeof url, host, sizeof host) == NULL);
  CHECK(sign_for_host(key, (reel_gcs_location){.endpoint = "user@host"}, "o", url, sizeof url, host, sizeof host) ==
        NULL);
  CHECK(sign_for_host(key, (reel_gcs_location){.style = REEL_GCS_BUCKET_BOUND_HOSTNAME}, "o", url, sizeof url, host,
                      sizeof host) == NULL);
}

static int sign_status(const reel_gcs_key *key, reel_gcs_url_request req, char *err, size_t errlen) {
  reel_gcs_signed_url s;
  int rc = reel_gcs_sign_url(key, &req, &s, err, errlen);
  if (rc == 0) reel_gcs_signed_url_free(&s);
  return rc;
}

static void test_rejections(const reel_gcs_key *key) {
  char err[256];
  reel_gcs_url_request ok = {.method = "GET", .bucket = "bucket", .object = "o", .timestamp = 0, .expires_in = 1};
  CHECK_INT(sign_status(key, ok, err, sizeof err), 0);
  reel_gcs_url_request r = ok;
  r.method = "get";
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);
  r = ok, r.bucket = "Bucket";
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);
  r = ok, r.bucket = "b/x";
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);
  r = ok, r.object = "a\nb";
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);
  r = ok, r.object = "bad\xff" "utf8";
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);
  char long_name[REEL_GCS_OBJECT_MAX + 2];
  memset(long_name, 'a', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  r = ok, r.object = long_name;
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);
  r = ok, r.expires_in = 0;
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);
  r = ok, r.expires_in = REEL_GCS_EXPIRES_MAX + 1;
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);
  CHECK(strstr(err, "604800") != NULL);
  reel_gcs_param host[] = {{"Host", "x"}};
  r = ok, r.headers = host, r.header_count = 1;
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);
  reel_gcs_param crlf[] = {{"x-a", "1\r\nx-b: 2"}};
  r = ok, r.headers = crlf, r.header_count = 1;
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);
  reel_gcs_param colon[] = {{"x:a", "1"}};
  r = ok, r.headers = colon, r.header_count = 1;
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);
  reel_gcs_param reserved[] = {{"x-goog-signature", "00"}};
  r = ok, r.query = reserved, r.query_count = 1;
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);
  r = ok, r.query_count = REEL_GCS_PARAMS_MAX + 1, r.query = reserved;
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);
  reel_gcs_param sha[] = {{"x-goog-content-sha256", "not hex"}};
  r = ok, r.headers = sha, r.header_count = 1;
  CHECK_INT(sign_status(key, r, err, sizeof err), REEL_EINVAL);

  char *url = (char *)1;
  CHECK_INT(reel_gcs_download_url(key, "bucket", "", 0, 60, NULL, &url, err, sizeof err), REEL_EINVAL);
  CHECK(url == NULL);
  CHECK_INT(reel_gcs_upload_url(key, "bucket", "o", "video/mp4", 0, 60, "http://127.0.0.1:1", &url, err, sizeof err),
            0);
  CHECK(url && strncmp(url, "http://127.0.0.1:1/bucket/o?", 28) == 0);
  CHECK(url && strstr(url, "X-Goog-SignedHeaders=content-type%3Bhost&") != NULL);
  free(url);
  CHECK_INT(reel_gcs_resumable_upload_url(key, "bucket", "o", NULL, 0, 60, NULL, &url, err, sizeof err), 0);
  CHECK(url && strstr(url, "X-Goog-SignedHeaders=host%3Bx-goog-resumable&") != NULL);
  free(url);
}

static void test_post_policy(const reel_gcs_key *key, gnutls_pubkey_t pub) {
  char err[256];
  reel_gcs_param fields[] = {{"x-goog-meta-title", "Café \"😀\"\n"}, {"content-type", "video/mp4"},
                             {"x-ignore-note", "not in the policy"}};
  reel_gcs_policy_condition conds[] = {{.kind = REEL_GCS_CONDITION_CONTENT_LENGTH_RANGE, .min = 1, .max = 1048576},
                                       {.kind = REEL_GCS_CONDITION_STARTS_WITH, .field = "key", .value = "uploads/"},
                                       {.kind = REEL_GCS_CONDITION_EQ, .field = "$acl", .value = "private"}};
  reel_gcs_policy_request req = {.bucket = "reel-uploads",
                                 .object = "uploads/a.mp4",
                                 .timestamp = 1549011600,
                                 .expires_in = 3600,
                                 .fields = fields,
                                 .field_count = 3,
                                 .conditions = conds,
                                 .condition_count = 3,
                                 .location = {.style = REEL_GCS_VIRTUAL_HOSTED_STYLE}};
  reel_gcs_post_policy p;
  CHECK_INT(reel_gcs_sign_post_policy(key, &req, &p, err, sizeof err), 0);
  CHECK_STR(p.url, "https://reel-uploads.storage.googleapis.com/");
  CHECK_STR(p.policy_json,
            "{\"conditions\":[[\"content-length-range\",1,1048576],[\"starts-with\",\"$key\",\"uploads/\"],"
            "[\"eq\",\"$acl\",\"private\"],{\"content-type\":\"video/mp4\"},"
            "{\"x-goog-meta-title\":\"Caf\\u00e9 \\\"\\ud83d\\ude00\\\"\\n\"},"
            "{\"bucket\":\"reel-uploads\"},{\"key\":\"uploads/a.mp4\"},{\"x-goog-date\":\"20190201T090000Z\"},"
            "{\"x-goog-credential\":\"" EMAIL "/20190201/auto/storage/goog4_request\"},"
            "{\"x-goog-algorithm\":\"GOOG4-RSA-SHA256\"}],\"expiration\":\"2019-02-01T10:00:00Z\"}");
  CHECK_STR(reel_gcs_post_policy_field(&p, "key"), "uploads/a.mp4");
  CHECK_STR(reel_gcs_post_policy_field(&p, "x-ignore-note"), "not in the policy");
  CHECK_STR(reel_gcs_post_policy_field(&p, "x-goog-date"), "20190201T090000Z");
  const char *policy = reel_gcs_post_policy_field(&p, "policy");
  const char *sig = reel_gcs_post_policy_field(&p, "x-goog-signature");
  CHECK(policy && sig && verify(pub, policy, sig));
  gnutls_datum_t in = {(unsigned char *)(policy ? policy : ""), policy ? (unsigned)strlen(policy) : 0}, decoded;
  CHECK(gnutls_base64_decode2(&in, &decoded) == 0);
  CHECK(decoded.size == strlen(p.policy_json) && memcmp(decoded.data, p.policy_json, decoded.size) == 0);
  gnutls_free(decoded.data);
  reel_gcs_post_policy_free(&p);

  reel_gcs_param reserved[] = {{"x-goog-signature", "x"}};
  req.fields = reserved, req.field_count = 1;
  CHECK_INT(reel_gcs_sign_post_policy(key, &req, &p, err, sizeof err), REEL_EINVAL);
  req.field_count = 0, req.conditions = (reel_gcs_policy_condition[]){{.kind = REEL_GCS_CONDITION_CONTENT_LENGTH_RANGE,
                                                                       .min = 5, .max = 1}};
  req.condition_count = 1;
  CHECK_INT(reel_gcs_sign_post_policy(key, &req, &p, err, sizeof err), REEL_EINVAL);
}

int main(void) {
  test_building_blocks();
  test_key_errors();
  char err[512];
  reel_gcs_key *key = NULL;
  CHECK_INT(reel_gcs_key_load_file(KEY_FILE, &key, err, sizeof err), 0);
  char *key_json = read_file(KEY_FILE);
  gnutls_pubkey_t pub = key_json ? public_key_of(key_json) : NULL;
  CHECK(key != NULL && pub != NULL);
  if (key && pub) {
    CHECK_STR(reel_gcs_key_client_email(key), EMAIL);
    test_signed_url(key, pub);
    test_locations(key);
    test_rejections(key);
    test_post_policy(key, pub);
  }
  if (pub) gnutls_pubkey_deinit(pub);
  free(key_json);
  reel_gcs_key_free(key);
  return check_report();
}
