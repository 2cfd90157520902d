/* One job operation on behalf of one request: what the /v1 handlers share.
 * A handler makes the call, fills the operation's inputs and runs it; its
 * callback answers the request and frees the call. */
#ifndef REEL_API_CALL_H
#define REEL_API_CALL_H

#include <jansson.h>

#include "api/app.h"

typedef struct {
  reel_job_op op; /* first: the callback casts back */
  reel_app *app;
  reel_http_request *req;
  int64_t expires_in;
  int redirect;
} reel_api_call;

/* A call of kind for req whose operation reports to cb; NULL (a 500 sent)
 * when out of memory. */
reel_api_call *reel_api_call_new(reel_app *app, reel_http_request *req, reel_job_op_kind kind,
                                 void (*cb)(reel_job_op *, int));
/* Frees the call and its operation's outputs. */
void reel_api_call_free(reel_api_call *c);
/* Sends value (taken) as a JSON body; reals print with 15 significant digits. */
void reel_api_send_json_value(reel_http_request *req, int status, json_t *value);
/* Answers the common failures of an operation (404 for an unknown job, 503
 * for the store); returns 1 when it did, 0 for success. */
int reel_api_send_op_error(reel_http_request *req, int result);

#endif
