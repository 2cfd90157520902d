/* A small blocking HTTP client over libcurl (GnuTLS build) for object storage:
 * one request at a time per call, bodies from memory or a file range,
 * responses captured with a cap, and a single rule for what is worth retrying.
 * Runs on worker threads (never on the event loop). */
#ifndef REEL_HTTP_CLIENT_H
#define REEL_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define REEL_HTTP_CLIENT_MAX_HEADERS 16

typedef struct {
  const char *method;  /* "GET", "PUT", "POST", "HEAD", "DELETE" */
  const char *url;     /* may carry a signed query string: never logged as is */
  const char *headers[REEL_HTTP_CLIENT_MAX_HEADERS]; /* "Name: value" */
  int n_headers;
  const void *body;    /* request body from memory, or: */
  size_t body_len;
  const char *file_path; /* request body from file_path[file_offset, +file_length) */
  int64_t file_offset, file_length;
  long timeout_seconds;  /* whole request; 0 = 300 */
  long timeout_ms;       /* whole request in ms, when set (overrides timeout_seconds) */
  long connect_timeout_ms; /* 0 = 15 s */
  const _Atomic int *abort; /* when set and it turns nonzero, the request stops within about a second */
} reel_http_client_request;

typedef struct {
  long status;           /* HTTP status, 0 when no response arrived */
  reel_buf body;         /* first 1 MiB of the body */
  char etag[160];        /* ETag response header, if any */
  char location[4096];   /* Location header, if any ("" when absent or longer than this; may be signed: never log it) */
  char range[96];        /* Range response header, if any (GCS resumable uploads: "bytes=0-N") */
  char retry_after[64];  /* Retry-After response header, if any */
  int transport_error;   /* a connection, TLS or timeout failure (no response) */
} reel_http_client_response;

/* The libcurl build loaded at run time by reel_http_client_global_init. */
#define REEL_HTTP_CLIENT_LIBRARY "libcurl-gnutls.so.4"

/* Loads and initialises libcurl once per process; call before threads start,
 * and only when object storage is configured (a reeld on local disk never
 * maps libcurl or its dependencies). 0, or REEL_EIO with a message in err
 * that says what to install. Until it succeeds no other function here may run. */
int reel_http_client_global_init(char *err, size_t errlen);
/* Performs one request. Returns 0 when a response arrived (whatever its
 * status), or REEL_ETIMEOUT / REEL_EIO for transport failures, with a message
 * in err that never contains the URL's query string. Free resp with
 * reel_http_client_response_free. */
int reel_http_client_perform(const reel_http_client_request *req, reel_http_client_response *resp, char *err,
                             size_t errlen);
void reel_http_client_response_free(reel_http_client_response *resp);
/* True for failures worth retrying: no response (connection reset, timeout),
 * 408, 429 and 5xx. 4xx such as 403 or a missing bucket are permanent. */
int reel_http_client_retryable(const reel_http_client_response *resp);

/* The <Code> of an XML error document (S3 and the GCS XML API answer with
 * <Error><Code>…</Code>), or "" when there is none. */
void reel_http_client_error_code(const reel_http_client_response *resp, char *out, size_t n);
/* Sleeps before retry number `attempt` (1-based): exponential from 200 ms,
 * capped at 10 s, with jitter. For worker threads only. */
void reel_http_client_back_off(int attempt);

#endif
