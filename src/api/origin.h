/* The base URL ("scheme://authority[/prefix]") at which a client reached
 * reeld, for the URLs reeld hands back: local download URLs and the OpenAPI
 * document's `servers`. */
#ifndef REEL_API_ORIGIN_H
#define REEL_API_ORIGIN_H

#include <stddef.h>

#include "api/app.h"

/* Writes the base URL for req into out (no trailing slash):
 * service.public_base_url when configured; else the request's scheme (https
 * on TLS and HTTP/3, or what a trusted proxy forwarded) with its Host or
 * :authority when that is a well-formed host[:port]; else the first
 * listener's address. Always succeeds (out is truncated to len). */
void reel_api_base_url(const reel_app *app, const reel_http_request *req, char *out, size_t len);

/* URL itself when it is absolute; a path ("/v1/files/...") prefixed with
 * reel_api_base_url. Heap (caller frees), NULL when out of memory. */
char *reel_api_absolute_url(const reel_app *app, const reel_http_request *req, const char *url);

#endif
