/* The `reel` client's HTTP side, on libcurl: calls to the server's API with
 * the bearer token (one connection reused, HTTP/2 where the server offers
 * it over TLS), event streams fed to an SSE parser as they arrive, and
 * downloads of signed URLs (sent without the token). Messages never carry
 * the token or a signed URL's query string. */
#ifndef REEL_CLIENT_HTTP_H
#define REEL_CLIENT_HTTP_H

#include <jansson.h>
#include <stddef.h>

#include "client/client_config.h"
#include "client/sse_parser.h"

typedef struct reel_client reel_client;

/* One answer of the server. */
typedef struct {
  long status;        /* the HTTP status */
  json_t *json;       /* the body when it was JSON (problem details too), else NULL */
  long retry_after_s; /* Retry-After in seconds, or -1 */
  char content_type[128];
} reel_client_response;

/* Called while a transfer runs (about every second and on every piece of
 * data); non-zero stops the transfer. */
typedef int (*reel_client_tick)(void *ctx);

/* The result of one event-stream connection. */
typedef enum {
  REEL_STREAM_STOPPED,  /* the parser's callback stopped it (say, the terminal event) */
  REEL_STREAM_ENDED,    /* the server ended the stream normally */
  REEL_STREAM_DROPPED,  /* the connection failed or went silent */
  REEL_STREAM_REFUSED,  /* the server answered with another status (see the response) */
  REEL_STREAM_ABORTED   /* the tick asked to stop */
} reel_stream_result;

/* A client for cfg's server (cfg must outlive it), or NULL without memory. */
reel_client *reel_client_new(const reel_client_config *cfg);
void reel_client_free(reel_client *c);
/* Sets what runs while transfers wait (NULL: nothing). */
void reel_client_set_tick(reel_client *c, reel_client_tick tick, void *ctx);

/* method path (with its query) and an optional JSON body; extra_headers is a
 * NULL-terminated list of "Name: value" lines or NULL. 0 when the server
 * answered (any status: see resp), else non-zero with a message in err. */
int reel_client_call(reel_client *c, const char *method, const char *path, const char *json_body,
                     const char *const *extra_headers, reel_client_response *resp, char *err, size_t errlen);
void reel_client_response_free(reel_client_response *resp);
/* What to tell the user about an answer that is not a success: the problem's
 * detail (or title), else "HTTP <status>". */
void reel_client_problem_text(const reel_client_response *resp, char *out, size_t outlen);

/* GETs path as text/event-stream (Last-Event-ID sent when last_id is not
 * empty) and feeds every byte of the body to parser as it arrives. A stream
 * silent for idle_timeout_s (no event, no keep-alive) counts as dropped. On
 * REEL_STREAM_REFUSED resp holds the answer; err says why on DROPPED. *got
 * is set when at least one byte of the body arrived. */
reel_stream_result reel_client_stream(reel_client *c, const char *path, const char *last_id, long idle_timeout_s,
                                      reel_sse_parser *parser, reel_client_response *resp, int *got, char *err,
                                      size_t errlen);

/* Downloads url (a signed URL: no token is sent) to dest, through dest.part
 * renamed at the end. 0 or non-zero with a message in err. */
int reel_client_download(reel_client *c, const char *url, const char *dest, char *err, size_t errlen);

/* Writes url without its query or user:password ("https://h/p?…") for messages. */
void reel_client_redact_url(const char *url, char *out, size_t outlen);

#endif
