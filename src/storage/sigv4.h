/* AWS Signature Version 4 (AWS4-HMAC-SHA256) for S3 and S3-compatible stores.
 *
 * Three layers, from the most general to the one the S3 backend calls:
 *
 *   1. reel_sigv4_sign: the whole algorithm for one HTTP request, in either
 *      form (Authorization header, or query string for presigned URLs), with
 *      every intermediate result (canonical request, string to sign,
 *      signature) exposed; the conformance runner drives this one.
 *   2. reel_sigv4_sign_headers: "sign this request now" for the S3 client;
 *      returns the headers to add (X-Amz-Date, Authorization, ...).
 *   3. reel_sigv4_s3_*: S3 addressing (path-style or virtual-hosted),
 *      presigned GET/PUT URLs and presigned POST policies for browser uploads.
 *
 * Inputs are C strings with documented caps; anything too long fails with
 * REEL_ETOOBIG, anything malformed (control characters, CR/LF outside a
 * folded header line, bad names) with REEL_EINVAL, before any signing. Errors
 * come from common/error.h. Nothing here logs; secrets and derived keys are
 * wiped from memory after use, and every result is released by its _free
 * function (which wipes it too: results can hold the session token).
 *
 * Specification: "Signature Version 4 signing process" and the S3 pages
 * "Authenticating Requests: Using Query Parameters" and "Browser-Based
 * Uploads Using POST (AWS Signature Version 4)". */
#ifndef REEL_STORAGE_SIGV4_H
#define REEL_STORAGE_SIGV4_H

#include <stddef.h>
#include <stdint.h>

/* Input caps (bytes unless said otherwise). */
#define REEL_SIGV4_MAX_PATH 8192          /* request path, as sent */
#define REEL_SIGV4_MAX_QUERY 16384        /* query string, as sent, without '?' */
#define REEL_SIGV4_MAX_HEADERS 64         /* headers per request */
#define REEL_SIGV4_MAX_HEADER_NAME 128
#define REEL_SIGV4_MAX_HEADER_VALUE 8192
#define REEL_SIGV4_MAX_ACCESS_KEY 128
#define REEL_SIGV4_MAX_SECRET 512
#define REEL_SIGV4_MAX_SESSION_TOKEN 8192
#define REEL_SIGV4_MAX_SCOPE_PART 64      /* region, service */
#define REEL_SIGV4_MAX_ENDPOINT 512
#define REEL_SIGV4_MAX_KEY 1024           /* S3 object key (S3's own limit) */
#define REEL_SIGV4_MAX_EXPIRES 604800     /* 7 days: the longest SigV4 presigned lifetime */
#define REEL_SIGV4_MAX_POST_SIZE 5368709120LL /* 5 GiB: the largest single-part upload */

#define REEL_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define REEL_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* Hex SHA-256 of the empty string: the payload hash of a request without a body. */
#define REEL_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- Inputs ------------------------------------------------------------ */

typedef struct {
  const char *access_key_id;     /* printable ASCII without '/', ',' or spaces */
  const char *secret_access_key; /* printable ASCII */
  const char *session_token;     /* NULL or "" without temporary credentials */
} reel_sigv4_credentials;

/* Who signs, and for which credential scope. */
typedef struct {
  reel_sigv4_credentials credentials;
  const char *region;  /* "us-east-1"; letters, digits, '-', '_', '.' */
  const char *service; /* "s3" */
} reel_sigv4_signer;

/* A request header as it will be sent. A value may hold folded lines
 * ("a\n  b": a line break followed by a space or tab), which sign as one
 * line; any other CR or LF is rejected. */
typedef struct {
  const char *name;
  const char *value;
} reel_sigv4_header;

/* The request to sign, described as it goes on the wire. */
typedef struct {
  const char *method; /* "GET", "PUT", ... */
  const char *host;   /* signed as the Host header; NULL when headers carry Host */
  const char *path;   /* as sent, starting with '/' (percent-encoded, except that the
                         runner's cases may hold raw spaces and UTF-8) */
  const char *query;  /* as sent, without '?'; NULL or "" for none */
  const reel_sigv4_header *headers;
  size_t header_count;
  const char *payload_hash; /* lowercase hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" or
                               another "STREAMING-..." constant */
} reel_sigv4_request;

typedef enum {
  REEL_SIGV4_FORM_HEADERS, /* Authorization header (uploads, API calls) */
  REEL_SIGV4_FORM_QUERY    /* X-Amz-* query parameters (presigned URLs) */
} reel_sigv4_form;

typedef struct {
  reel_sigv4_form form;
  int64_t time;              /* signing time, unix seconds (UTC), year 1970..9999 */
  int64_t expires;           /* query form only: X-Amz-Expires, 1..REEL_SIGV4_MAX_EXPIRES */
  int normalize_path;        /* remove empty and "." segments, resolve ".." (never for S3) */
  int double_encode_path;    /* URI-encode the sent path once more (every service but S3) */
  int content_sha256_header; /* header form: add and sign x-amz-content-sha256 (S3 needs it) */
  int omit_session_token;    /* send X-Amz-Security-Token but leave it out of the signature */
} reel_sigv4_options;

/* ---- Outputs ----------------------------------------------------------- */

#define REEL_SIGV4_MAX_FIELDS 10

/* Name/value pairs the signer produces (headers to add, query parameters to
 * append, form fields). Names are static strings; values are heap strings. */
typedef struct {
  const char *name;
  char *value;
} reel_sigv4_field;

typedef struct {
  reel_sigv4_field items[REEL_SIGV4_MAX_FIELDS];
  size_t count;
} reel_sigv4_fields;

/* Returns the value of the field named name (ASCII case-insensitive), or NULL. */
const char *reel_sigv4_fields_get(const reel_sigv4_fields *fields, const char *name);
/* Wipes and frees every value; the set is empty after. Safe on an empty set. */
void reel_sigv4_fields_free(reel_sigv4_fields *fields);

typedef struct {
  reel_sigv4_form form;
  char *canonical_request; /* may hold the session token: never log it */
  char *string_to_sign;
  char *credential_scope;  /* "20150830/us-east-1/s3/aws4_request" */
  char *signed_headers;    /* "host;x-amz-date" */
  char signature[65];      /* lowercase hex */
  /* Header form: the headers to add, in this order: X-Amz-Security-Token (with a
   * session token), X-Amz-Date, x-amz-content-sha256 (when asked), Authorization.
   * Query form: the parameters to append, values already URI-encoded, in this
   * order: X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-SignedHeaders,
   * X-Amz-Expires, X-Amz-Security-Token (with a session token), X-Amz-Signature. */
  reel_sigv4_fields added;
  char *query; /* query form: the added parameters joined with '&'; NULL otherwise */
} reel_sigv4_result;

/* Wipes and frees everything the result holds; safe on a zeroed or freed result. */
void reel_sigv4_result_free(reel_sigv4_result *result);
/* Wipes and frees a string returned by this module (URLs, texts). NULL is fine. */
void reel_sigv4_free(char *s);

/* ---- Layer 1: the algorithm ------------------------------------------- */

/* Signs req with signer under opt. On success (0) *out holds the canonical
 * request, string to sign, signature and what to add to the request; on error
 * *out is zeroed and holds nothing. Rejects requests that already carry what
 * the signer adds (Authorization, X-Amz-Date, X-Amz-Signature, ...), requests
 * without exactly one Host, and out-of-range options. */
int reel_sigv4_sign(const reel_sigv4_signer *signer, const reel_sigv4_options *opt, const reel_sigv4_request *req,
                    reel_sigv4_result *out);

/* Writes the signed request as HTTP/1.1 text into *out (free with
 * reel_sigv4_free) and its length into *out_len (when not NULL; the body may
 * hold NUL bytes): the request line (with the added query parameters in the
 * query form), Host when req->host is set, every header of req as given
 * ("Name:value"), the added headers in the header form, a blank line and the
 * body. */
int reel_sigv4_format_signed_request(const reel_sigv4_request *req, const reel_sigv4_result *result,
                                     const void *body, size_t body_len, char **out, size_t *out_len);

/* Steps of the algorithm, exposed for tests. Each writes a new heap string
 * into *out (free with reel_sigv4_free). */

/* URI-encodes s[0..len): every byte but A-Z a-z 0-9 '-' '.' '_' '~' becomes
 * %XX (uppercase hex); '/' is kept when keep_slash. */
int reel_sigv4_uri_encode(const char *s, size_t len, int keep_slash, char **out);
/* The canonical URI of a sent path: optionally normalized, then URI-encoded
 * again (double_encode) or, for S3, kept as sent with only the bytes that
 * need it encoded (valid %XX escapes stay as they are). */
int reel_sigv4_canonical_uri(const char *path, int normalize, int double_encode, char **out);
/* The canonical query string of a sent query: parameters percent-decoded and
 * re-encoded, "name=value" even for empty values, sorted by encoded name then
 * value, joined with '&'. Empty pieces ("a=1&&b=2") are dropped. */
int reel_sigv4_canonical_query(const char *query, char **out);
/* The canonical form of a header value: folded lines joined, leading and
 * trailing spaces and tabs removed, every run of them made one space. */
int reel_sigv4_canonical_header_value(const char *value, char **out);
/* Derives the signing key: HMAC chain over "AWS4"+secret, date (YYYYMMDD),
 * region, service and "aws4_request". Wipe key after use. */
int reel_sigv4_signing_key(const char *secret_access_key, const char *date, const char *region, const char *service,
                           unsigned char key[32]);
/* Writes the lowercase hex SHA-256 of data[0..len) into hex (65 bytes with NUL). */
int reel_sigv4_payload_hash(const void *data, size_t len, char hex[65]);

/* ---- Layer 2: the Authorization header -------------------------------- */

/* Signs req in the header form at time now (unix seconds) and writes the
 * headers to add into *out, in this order: X-Amz-Security-Token (with a
 * session token), X-Amz-Date, x-amz-content-sha256 (S3 only), Authorization.
 * With signer->service "s3" the path is signed as sent (no normalization, no
 * second encoding) and x-amz-content-sha256 carries req->payload_hash, as S3
 * requires; any other service gets the generic rules (normalized, double-encoded
 * path). req->host is normally set and req->headers then holds the other
 * headers to sign (Content-Type, Content-Length, x-amz-meta-*, ...). */
int reel_sigv4_sign_headers(const reel_sigv4_signer *signer, const reel_sigv4_request *req, int64_t now,
                            reel_sigv4_fields *out);

/* ---- Layer 3: S3 ------------------------------------------------------ */

/* An S3-compatible service, from reel.yaml. */
typedef struct {
  const char *endpoint; /* "https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:9000": scheme and
                           authority only (a trailing '/' is allowed) */
  const char *region;
  int virtual_hosted; /* 1: https://bucket.endpoint/key; 0: path-style https://endpoint/bucket/key.
                         An IP-address endpoint always uses path-style (as the AWS SDKs do). */
  reel_sigv4_credentials credentials;
} reel_sigv4_s3_config;

/* Where an object lives. */
typedef struct {
  char *origin; /* "https://bucket.s3.eu-west-1.amazonaws.com" (scheme://authority, no path) */
  char *host;   /* the Host header to sign: lowercase, without a default port */
  char *path;   /* "/key" or "/bucket/key", URI-encoded ('/' kept) */
} reel_sigv4_s3_location;

/* Computes origin, Host and path of bucket/key under cfg's addressing. key
 * may be NULL or "" for the bucket itself. Bucket names must be DNS-compatible
 * for virtual-hosted addressing (3-63 of a-z 0-9 '.' '-'); keys are 1..1024
 * bytes without control characters or "." / ".." segments (which HTTP clients
 * would resolve away). Free with reel_sigv4_s3_location_free. */
int reel_sigv4_s3_locate(const reel_sigv4_s3_config *cfg, const char *bucket, const char *key,
                         reel_sigv4_s3_location *out);
void reel_sigv4_s3_location_free(reel_sigv4_s3_location *loc);

typedef struct {
  const char *method; /* "GET", "HEAD" or "PUT" */
  const char *bucket;
  const char *key;
  int64_t now;     /* signing time, unix seconds */
  int64_t expires; /* lifetime in seconds, 1..REEL_SIGV4_MAX_EXPIRES */
  /* Headers the client must then send with exactly these values, e.g.
   * Content-Type, Content-MD5 or x-amz-checksum-sha256 on a PUT. NULL/0 for none. */
  const reel_sigv4_header *headers;
  size_t header_count;
} reel_sigv4_s3_presign_request;

/* Writes a presigned URL into *url (free with reel_sigv4_free):
 * origin + path + "?X-Amz-Algorithm=...&X-Amz-Credential=...&X-Amz-Date=...
 * &X-Amz-Expires=...&X-Amz-SignedHeaders=...[&X-Amz-Security-Token=...]
 * &X-Amz-Signature=...", signed with UNSIGNED-PAYLOAD, the same URL the AWS
 * SDKs produce for the same inputs. */
int reel_sigv4_s3_presign_url(const reel_sigv4_s3_config *cfg, const reel_sigv4_s3_presign_request *req, char **url);

typedef struct {
  const char *bucket;
  const char *key;        /* exact key; or NULL and key_prefix set */
  const char *key_prefix; /* non-empty: any key starting with it ("starts-with" condition) */
  int64_t now;            /* signing time, unix seconds */
  int64_t expires;        /* the policy expires now + expires, 1..REEL_SIGV4_MAX_EXPIRES */
  int64_t content_length_min; /* content-length-range, 0 <= min <= max */
  int64_t content_length_max; /* 1..REEL_SIGV4_MAX_POST_SIZE */
  const char *content_type;        /* exact Content-Type, or NULL */
  const char *content_type_prefix; /* or a "starts-with" condition ("video/"), or NULL */
} reel_sigv4_s3_post_request;

typedef struct {
  char *url; /* where the browser POSTs: "https://endpoint/bucket" or "https://bucket.endpoint/" */
  /* The form fields, in this order: key (key_prefix + "${filename}" for a
   * prefix), Content-Type (exact content_type only), x-amz-algorithm,
   * x-amz-credential, x-amz-date, x-amz-security-token (with a session token),
   * policy (base64 of the JSON policy), x-amz-signature. The file field goes last. */
  reel_sigv4_fields fields;
  char *policy_json; /* the decoded policy document */
} reel_sigv4_s3_post_form;

/* Builds and signs a POST policy: conditions on bucket, key, content length,
 * content type (when given) and every x-amz-* field. */
int reel_sigv4_s3_post_policy(const reel_sigv4_s3_config *cfg, const reel_sigv4_s3_post_request *req,
                              reel_sigv4_s3_post_form *out);
void reel_sigv4_s3_post_form_free(reel_sigv4_s3_post_form *form);

#endif
