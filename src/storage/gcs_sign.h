/* Google Cloud Storage V4 signing (GOOG4-RSA-SHA256) with a service-account key.
 *
 * What this module promises:
 *   - Signed URLs per Google's "V4 signing process": any method, extra signed
 *     headers, extra query parameters, path-style, virtual-hosted-style and
 *     bucket-bound-hostname URLs, a custom endpoint, an emulator host and a
 *     universe domain. The result is byte-identical to what Google's client
 *     libraries produce for the same inputs (checked against the
 *     googleapis/conformance-tests cases by `reel-vectors gcs`).
 *   - Signed POST policies (HTML form uploads) with the policy document, its
 *     base64 and every form field the browser must send.
 *   - The private key never leaves this module: no error message, URL or
 *     field contains it, and the PEM text is wiped from memory once imported.
 *
 * How reel uses it (the upload/delivery choice): reel talks to GCS through the
 * XML API with V4-signed URLs only, so neither uploads nor downloads need an
 * OAuth2 access token (no token endpoint, no token cache, no clock-skewed
 * token refresh):
 *   - delivery:  reel_gcs_download_url()          -> GET, handed to clients;
 *   - upload:    reel_gcs_upload_url()            -> one PUT of the whole file
 *                (the uploader must send exactly the Content-Type it signed);
 *   - large:     reel_gcs_resumable_upload_url()  -> POST with header
 *                "x-goog-resumable: start" (and the signed Content-Type) opens
 *                a resumable session; the session URI in the answer's Location
 *                header then takes PUT chunks with Content-Range and needs no
 *                signature of its own;
 *   - browsers:  reel_gcs_sign_post_policy()      -> form POST upload.
 *
 * All times are unix seconds supplied by the caller (nothing here reads the
 * clock or the environment: an emulator host is an explicit option, never
 * STORAGE_EMULATOR_HOST). Every input is bounded (limits below); strings are
 * NUL-terminated C strings, so an embedded NUL cannot reach a signature, and
 * the key file is rejected if it contains one. Every heap result is released
 * by the matching *_free function. Functions return 0 or a negative reel_err
 * (common/error.h) and, when err is non-NULL, write a one-line message saying
 * what was wrong and where (never key material). */
#ifndef REEL_GCS_SIGN_H
#define REEL_GCS_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Limits. Inputs beyond them are rejected with REEL_EINVAL or REEL_ETOOBIG. */
#define REEL_GCS_KEY_FILE_MAX (64 * 1024)      /* bytes of a service-account JSON file */
#define REEL_GCS_BUCKET_MAX 222                /* GCS bucket names: 3..222 bytes */
#define REEL_GCS_OBJECT_MAX 1024               /* GCS object names: 1..1024 bytes of UTF-8 */
#define REEL_GCS_HOST_MAX 255                  /* host[:port] of any endpoint */
#define REEL_GCS_PARAMS_MAX 64                 /* headers, query parameters or form fields per call */
#define REEL_GCS_CONDITIONS_MAX 32             /* extra POST policy conditions */
#define REEL_GCS_NAME_MAX 256                  /* a header, query parameter or field name */
#define REEL_GCS_VALUE_MAX 4096                /* a header, query parameter or field value */
#define REEL_GCS_EXPIRES_MAX 604800            /* 7 days: the V4 maximum */
#define REEL_GCS_TIME_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

/* ------------------------------------------------------------------ keys -- */

/* A loaded service-account key: client_email + RSA private key. Opaque. */
typedef struct reel_gcs_key reel_gcs_key;

/* Loads a service-account JSON key file (as downloaded from Google Cloud:
 * "client_email" and a PEM "private_key"; "type", when present, must be
 * "service_account"). On success *out is a new key for reel_gcs_key_free.
 * Errors: REEL_ENOTFOUND (no such file), REEL_EIO (unreadable), REEL_ETOOBIG
 * (over REEL_GCS_KEY_FILE_MAX), REEL_EPARSE (not JSON, NUL byte, missing or
 * malformed field, private_key not a PEM key), REEL_EUNSUPPORTED (not RSA). */
int reel_gcs_key_load_file(const char *path, reel_gcs_key **out, char *err, size_t errlen);
/* The same from JSON text in memory (len bytes; the text is not modified). */
int reel_gcs_key_load_json(const char *json, size_t len, reel_gcs_key **out, char *err, size_t errlen);
/* The service account's e-mail address (the key's owner), valid until the key is freed. */
const char *reel_gcs_key_client_email(const reel_gcs_key *key);
/* A loaded key is read-only: it may be shared by threads that sign concurrently. */
/* Releases the key (the private key is deinitialised by GnuTLS). NULL is fine. */
void reel_gcs_key_free(reel_gcs_key *key);

/* ------------------------------------------------------------ locations -- */

typedef enum {
  REEL_GCS_PATH_STYLE = 0,        /* {scheme}://{host}/{bucket}/{object} */
  REEL_GCS_VIRTUAL_HOSTED_STYLE,  /* {scheme}://{bucket}.{host}/{object} */
  REEL_GCS_BUCKET_BOUND_HOSTNAME  /* {scheme}://{bucket_bound_hostname}/{object} (a CNAME or load balancer) */
} reel_gcs_url_style;

/* Where a signed URL or POST policy points. Zero-initialise and set what you
 * need; every field is optional except bucket_bound_hostname with that style.
 *
 * The host is the first of: hostname, endpoint, emulator_host, else
 * "storage." + universe_domain ("googleapis.com" when NULL). Each of the three
 * overrides is "host[:port]" or "http(s)://host[:port]" (one trailing "/"
 * allowed, no path). A scheme written in the override wins; otherwise scheme
 * applies ("https" when NULL), except that an emulator_host without a scheme
 * means "http" unless scheme is set, as STORAGE_EMULATOR_HOST does. With
 * VIRTUAL_HOSTED_STYLE the bucket is prefixed to that host.
 *
 * The signed "host" header is the URL's host without its port (as Google's
 * client libraries sign it: "http://localhost:8080" signs "host:localhost"). */
typedef struct {
  const char *scheme;                /* "https" or "http"; NULL = as described above */
  reel_gcs_url_style style;
  const char *bucket_bound_hostname; /* "cdn.example.com" or "https://cdn.example.com" */
  const char *hostname;              /* per-request host override */
  const char *endpoint;              /* client-wide endpoint, e.g. a fake server in tests */
  const char *emulator_host;         /* what STORAGE_EMULATOR_HOST would say, passed explicitly */
  const char *universe_domain;       /* e.g. "googleapis.com" (the default) */
} reel_gcs_location;

/* A name/value pair supplied by the caller (header, query parameter, form field). */
typedef struct {
  const char *name;
  const char *value;
} reel_gcs_param;

/* ----------------------------------------------------------- signed URLs -- */

typedef struct {
  const char *method;      /* GET, HEAD, PUT, POST, DELETE, PATCH or OPTIONS */
  const char *bucket;      /* [a-z0-9._-], 3..REEL_GCS_BUCKET_MAX, starts and ends alphanumeric */
  const char *object;      /* NULL or "" for the bucket itself (e.g. listing); else valid UTF-8
                              without CR/LF, percent-encoded except A-Za-z0-9-._~ and "/" */
  int64_t timestamp;       /* unix seconds the signature starts at (X-Goog-Date), 0..REEL_GCS_TIME_MAX */
  int64_t expires_in;      /* seconds the URL stays valid (X-Goog-Expires), 1..REEL_GCS_EXPIRES_MAX */
  /* Extra headers the request must carry, all signed. Names are lowercased and
   * trimmed, values trimmed with whitespace runs collapsed to one space; a
   * repeated name joins its values with ",". "host" is always signed and may
   * not be given. An "x-goog-content-sha256" header makes its value the signed
   * payload hash instead of UNSIGNED-PAYLOAD. */
  const reel_gcs_param *headers;
  size_t header_count;
  /* Extra query parameters, signed and kept in the URL (sorted, encoded).
   * The X-Goog-Algorithm/Credential/Date/Expires/SignedHeaders/Signature
   * names are reserved. */
  const reel_gcs_param *query;
  size_t query_count;
  reel_gcs_location location;
} reel_gcs_url_request;

typedef struct {
  char *url;               /* the signed URL */
  char *canonical_request; /* what was hashed (no secret; for tests and debugging) */
  char *string_to_sign;    /* what was signed with the private key */
} reel_gcs_signed_url;

/* Signs req with key. On success out holds three heap strings (free with
 * reel_gcs_signed_url_free); on failure out is zeroed. REEL_EINVAL names the
 * offending input; REEL_ETOOBIG when a result would exceed 64 KiB; REEL_EIO
 * when GnuTLS fails to sign. */
int reel_gcs_sign_url(const reel_gcs_key *key, const reel_gcs_url_request *req, reel_gcs_signed_url *out, char *err,
                      size_t errlen);
void reel_gcs_signed_url_free(reel_gcs_signed_url *signed_url);

/* ------------------------------------------------ reel's upload/delivery -- */
/* Path-style URLs on https://storage.googleapis.com, or on endpoint when it is
 * non-NULL ("http://127.0.0.1:4443" for an emulator or a fake server in tests;
 * same syntax as reel_gcs_location.endpoint). now is the signing time and
 * expires_in the lifetime in seconds (1..604800). *url is a new heap string
 * for free(). */

/* A GET URL that downloads bucket/object. */
int reel_gcs_download_url(const reel_gcs_key *key, const char *bucket, const char *object, int64_t now,
                          int64_t expires_in, const char *endpoint, char **url, char *err, size_t errlen);
/* A PUT URL that uploads bucket/object in one request (XML API). content_type,
 * when non-NULL, is signed: the upload must send exactly that Content-Type. */
int reel_gcs_upload_url(const reel_gcs_key *key, const char *bucket, const char *object, const char *content_type,
                        int64_t now, int64_t expires_in, const char *endpoint, char **url, char *err, size_t errlen);
/* A POST URL that starts a resumable upload of bucket/object (XML API): the
 * request must send "x-goog-resumable: start" (signed) and, when content_type
 * is non-NULL, that Content-Type. */
int reel_gcs_resumable_upload_url(const reel_gcs_key *key, const char *bucket, const char *object,
                                  const char *content_type, int64_t now, int64_t expires_in, const char *endpoint,
                                  char **url, char *err, size_t errlen);

/* ---------------------------------------------------------- POST policy -- */

typedef enum {
  REEL_GCS_CONDITION_EQ,                  /* ["eq", "$field", "value"] */
  REEL_GCS_CONDITION_STARTS_WITH,         /* ["starts-with", "$field", "prefix"] */
  REEL_GCS_CONDITION_CONTENT_LENGTH_RANGE /* ["content-length-range", min, max] */
} reel_gcs_condition_kind;

typedef struct {
  reel_gcs_condition_kind kind;
  const char *field; /* EQ / STARTS_WITH: the form field, "acl" or "$acl" */
  const char *value; /* EQ / STARTS_WITH: the value or prefix ("" allowed) */
  int64_t min, max;  /* CONTENT_LENGTH_RANGE: 0 <= min <= max (bytes) */
} reel_gcs_policy_condition;

typedef struct {
  const char *bucket;
  const char *object;  /* the "key" field; required */
  int64_t timestamp;   /* unix seconds (x-goog-date) */
  int64_t expires_in;  /* the policy expires at timestamp + expires_in (1..604800) */
  /* Extra form fields (acl, cache-control, content-type, success_action_status,
   * x-goog-meta-*, ...). Each becomes an exact-match condition, sorted by name,
   * and is returned as a form field; fields named "x-ignore-*" are returned
   * but left out of the policy. bucket, key, policy, file and x-goog-algorithm/
   * credential/date/signature are reserved. */
  const reel_gcs_param *fields;
  size_t field_count;
  /* Extra conditions, placed first in the policy in the given order. */
  const reel_gcs_policy_condition *conditions;
  size_t condition_count;
  reel_gcs_location location;
} reel_gcs_policy_request;

/* A form field produced by reel_gcs_sign_post_policy (heap strings). */
typedef struct {
  char *name;
  char *value;
} reel_gcs_field;

typedef struct {
  char *url;              /* where the form POSTs, ending in "/" */
  reel_gcs_field *fields; /* key, the extra fields, x-goog-algorithm, x-goog-credential,
                             x-goog-date, x-goog-signature, policy (in that order) */
  size_t field_count;
  char *policy_json;      /* the policy document before base64 (ASCII JSON, non-ASCII as \uXXXX) */
} reel_gcs_post_policy;

/* Signs a V4 POST policy: the policy document is
 *   {"conditions":[<conditions>,<fields>,{"bucket":..},{"key":..},
 *    {"x-goog-date":..},{"x-goog-credential":..},{"x-goog-algorithm":"GOOG4-RSA-SHA256"}],
 *    "expiration":"YYYY-MM-DDTHH:MM:SSZ"}
 * serialised compactly with every non-ASCII character as a lowercase \uXXXX
 * escape; the "policy" field is its base64 and "x-goog-signature" the hex
 * RSA-SHA256 signature of that base64 text. Free out with
 * reel_gcs_post_policy_free; on failure out is zeroed. */
int reel_gcs_sign_post_policy(const reel_gcs_key *key, const reel_gcs_policy_request *req, reel_gcs_post_policy *out,
                              char *err, size_t errlen);
/* The value of the form field name, or NULL. */
const char *reel_gcs_post_policy_field(const reel_gcs_post_policy *policy, const char *name);
void reel_gcs_post_policy_free(reel_gcs_post_policy *policy);

/* --------------------------------------------------------- building blocks -- */
/* Exposed for tests and for callers that sign other requests. */

/* Appends s[0..len) percent-encoded as V4 signing wants: every byte except
 * A-Z a-z 0-9 - . _ ~ (and "/" when keep_slash) as %XX with upper-case hex. */
int reel_gcs_percent_encode(const char *s, size_t len, int keep_slash, reel_buf *out);
/* Appends the canonical form of a header value: leading and trailing spaces
 * and tabs removed, every inner run of them replaced by one space.
 * REEL_EINVAL for CR, LF or another control character. */
int reel_gcs_canonical_header_value(const char *value, reel_buf *out);
/* Writes "YYYYMMDDTHHMMSSZ" (X-Goog-Date) for unix seconds t; REEL_EINVAL out of range. */
int reel_gcs_format_timestamp(int64_t t, char out[17]);

#endif
