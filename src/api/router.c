/* Routing and authentication: matches a request against the routes table,
 * answers 404/405 itself, checks bearer tokens in constant time, and calls
 * the route's handler. HEAD is served for every GET route (without a body). */
#include <gnutls/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/app.h"
#include "api/routes.h"
#include "common/error.h"
#include "metrics/metrics.h"
#include "storage/url_signer.h"

typedef void (*route_handler)(reel_app *, reel_http_request *, const reel_route_params *);

typedef struct {
  const char *method;
  const char *pattern;
  route_handler handler;
  int needs_token;
  int api_only;  /* served only by nodes that serve the API (not by workers) */
  char label[80];
} route;

static route routes[] = {
#define REEL_ROUTE_API 1
#define REEL_ROUTE_ANY 0
#define REEL_ROUTE_ENTRY_(method, pattern, handler, auth, role) {#method, pattern, handler, auth, REEL_ROUTE_##role, ""},
    REEL_ROUTE_MAP(REEL_ROUTE_ENTRY_)
#undef REEL_ROUTE_ENTRY_
};
#define N_ROUTES ((int)(sizeof routes / sizeof *routes))

/* Matches path against pattern segment by segment; {x} takes one non-empty segment. */
static int match(const char *pattern, reel_slice path, reel_route_params *p) {
  const char *pp = pattern;
  const char *s = path.ptr, *end = path.ptr + path.len;
  reel_route_params got = {{NULL, 0}, {NULL, 0}};
  while (*pp && s < end) {
    if (*pp == '{') {
      const char *close = strchr(pp, '}');
      const char *seg_end = memchr(s, '/', (size_t)(end - s));
      if (!seg_end) seg_end = end;
      if (seg_end == s) return 0;
      reel_slice v = {s, (size_t)(seg_end - s)};
      if (strncmp(pp, "{name}", 6) == 0) got.name = v;
      else got.id = v; /* {id} and {asset} */
      pp = close + 1;
      s = seg_end;
    } else {
      if (*pp != *s) return 0;
      pp++;
      s++;
    }
  }
  if (*pp || s != end) return 0;
  *p = got;
  return 1;
}

int reel_api_init(reel_app *app) {
  for (int i = 0; i < N_ROUTES; i++)
    snprintf(routes[i].label, sizeof routes[i].label, "%s %s", routes[i].method, routes[i].pattern);
  for (int i = 0; i < N_ROUTES; i++) reel_metrics_route(routes[i].label);
  app->n_tokens = 0;
  for (int i = 0; i < app->cfg->n_tokens && i < REEL_MAX_TOKENS; i++) {
    const char *t = app->cfg->tokens[i];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, t, strlen(t), app->token_digests[app->n_tokens]) != 0) return REEL_EIO;
    app->n_tokens++;
  }
  return 0;
}

void reel_api_print_routes(void) {
  for (int i = 0; i < N_ROUTES; i++) printf("%s %s\n", routes[i].method, routes[i].pattern);
}

/* Compares the presented token's digest with every configured one, without
 * stopping early, so timing reveals neither which token nor how much matched.
 * The match (1-based) goes into req->auth_token: it names the client. */
static int token_ok(reel_app *app, reel_http_request *req) {
  reel_slice auth = reel_http_request_header(req, "Authorization");
  if (!auth.ptr || auth.len < 8 || strncasecmp(auth.ptr, "Bearer ", 7) != 0) return 0;
  const char *tok = auth.ptr + 7;
  size_t n = auth.len - 7;
  while (n && *tok == ' ') tok++, n--;
  if (n == 0 || n > 4096) return 0;
  unsigned char digest[32];
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, tok, n, digest) != 0) return 0;
  int ok = 0, which = 0;
  for (int i = 0; i < app->n_tokens; i++) {
    int eq = reel_constant_time_equal(digest, app->token_digests[i], 32) ? 1 : 0;
    ok |= eq;
    which |= -eq & (i + 1);
  }
  req->auth_token = which;
  return ok;
}

void reel_api_handle(reel_http_request *req, void *data) {
  reel_app *app = data;
  if (!req->scheme) req->scheme = req->protocol == REEL_HTTP_3 ? "https" : "http";
  reel_forwarded_apply(req, &app->proxies);
  if (reel_http_request_header_count(req, "Authorization") > 1) {
    /* which one would count is a guess a proxy and reel could make differently */
    req->route = "malformed";
    reel_http_send_problem(req, 400, "duplicate-authorization", "Duplicate Authorization header",
                           "send exactly one \"Authorization: Bearer <token>\" header");
    return;
  }
  reel_route_params params;
  int path_matched = 0;
  char allow[128] = "";
  int is_head = reel_slice_eq(req->method, "HEAD");
  const route *chosen = NULL;
  /* explicit routes first, then HEAD served by a GET route */
  for (int pass = 0; pass < 2 && !chosen; pass++) {
    for (int i = 0; i < N_ROUTES; i++) {
      reel_route_params p;
      if (!match(routes[i].pattern, req->path, &p)) continue;
      path_matched = 1;
      int same = reel_slice_eq(req->method, routes[i].method);
      if (pass == 1) same = is_head && strcmp(routes[i].method, "GET") == 0;
      if (same) {
        chosen = &routes[i];
        params = p;
        break;
      }
    }
  }
  if (!chosen) {
    static const char *const known_methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"};
    int known = 0;
    for (size_t i = 0; i < sizeof known_methods / sizeof *known_methods; i++) known |= reel_slice_eq(req->method, known_methods[i]);
    if (!known) {
      req->route = "not-implemented";
      reel_http_send_problem(req, 501, "method-not-implemented", "Method not implemented",
                             "reel does not implement this request method");
      return;
    }
    req->route = path_matched ? "method-not-allowed" : "not-found";
    if (!path_matched) {
      reel_http_send_problem(req, 404, "not-found", "Not found", "no resource at this path");
      return;
    }
    for (int i = 0; i < N_ROUTES; i++) {
      reel_route_params p;
      if (!match(routes[i].pattern, req->path, &p) || strstr(allow, routes[i].method)) continue;
      snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "", routes[i].method);
      if (strcmp(routes[i].method, "GET") == 0 && !strstr(allow, "HEAD"))
        snprintf(allow + strlen(allow), sizeof allow - strlen(allow), ", HEAD");
    }
    reel_http_send_problem_with_headers(req, 405, "method-not-allowed", "Method not allowed",
                                        "this path does not accept this method; see the Allow header", "Allow",
                                        allow, NULL);
    return;
  }
  req->route = chosen->label;
  if (chosen->api_only && !app->serves_api) {
    reel_http_send_problem(req, 404, "not-served-by-worker", "Not served by a worker node",
                           "this node runs jobs only (service.mode: worker) and serves /healthz, /readyz and "
                           "/metrics; send API requests to an API node");
    return;
  }
  if (chosen->needs_token && !token_ok(app, req)) {
    reel_http_send_problem_with_headers(req, 401, "unauthorized", "Unauthorized",
                                        "send a valid token as \"Authorization: Bearer <token>\"",
                                        "WWW-Authenticate", "Bearer realm=\"reel\"", NULL);
    return;
  }
  chosen->handler(app, req, &params);
}
