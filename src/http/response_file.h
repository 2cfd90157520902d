/* Files sent as response bodies, opened only when they can be sent. A
 * handler describes the file (reel_http_response's file_open, file_ctx,
 * file_offset, file_length) instead of holding a descriptor while the
 * response waits; the transport calls reel_http_response_open_file right
 * before it starts sending, within its own per-connection cap and the
 * process's descriptor ceiling (http/fd_limit.h). When no descriptor is
 * left the response becomes a 503 with Retry-After, never a 404. */
#ifndef REEL_HTTP_RESPONSE_FILE_H
#define REEL_HTTP_RESPONSE_FILE_H

#include "http/request.h"

/* 1 when resp carries a file to open (file_open set, no file_fd yet). */
int reel_http_response_wants_file(const reel_http_response *resp);
/* Opens resp's deferred file into file_fd. Returns 0 when it is open (or
 * there was nothing to open); otherwise logs why, rewrites resp into an error
 * response for req (503 + Retry-After when out of descriptors, 404 when the
 * file is gone or changed since the handler looked, 500 otherwise) and
 * returns the reel error. */
int reel_http_response_open_file(reel_http_response *resp, const reel_http_request *req);
/* Replaces resp by an RFC 9457 problem (status, slug, title, detail, the
 * request's path and id) with Retry-After: 1 when status is 503. Used by
 * transports that must refuse a response after the handler built it. */
void reel_http_response_replace_problem(reel_http_response *resp, const reel_http_request *req, int status,
                                        const char *slug, const char *title, const char *detail);

#endif
