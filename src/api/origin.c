/* Base URLs as the client sees them (see origin.h). */
#include "api/origin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A Host value fit to put in a URL: reg-name or IPv4 or [IPv6], an optional
 * :port, nothing else (no userinfo, path, spaces or controls). */
static int host_is_well_formed(reel_slice host) {
  if (host.len == 0 || host.len > 255) return 0;
  size_t i = 0;
  if (host.ptr[0] == '[') {
    while (i < host.len && host.ptr[i] != ']') {
      char c = host.ptr[i];
      if (i > 0 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
        return 0;
      i++;
    }
    if (i == host.len) return 0;
    i++;
  } else {
    while (i < host.len && host.ptr[i] != ':') {
      char c = host.ptr[i];
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '.' ||
            c == '_'))
        return 0;
      i++;
    }
    if (i == 0) return 0;
  }
  if (i == host.len) return 1;
  if (host.ptr[i] != ':' || i + 1 == host.len || host.len - i - 1 > 5) return 0;
  for (i++; i < host.len; i++)
    if (host.ptr[i] < '0' || host.ptr[i] > '9') return 0;
  return 1;
}

void reel_api_base_url(const reel_app *app, const reel_http_request *req, char *out, size_t len) {
  const char *configured = app->cfg ? app->cfg->public_base_url : NULL;
  if (configured && *configured) {
    size_t n = strlen(configured);
    while (n > 0 && configured[n - 1] == '/') n--;
    snprintf(out, len, "%.*s", (int)n, configured);
    return;
  }
  reel_slice host = req ? reel_http_request_header(req, "Host") : (reel_slice){NULL, 0};
  if (req && host.ptr && host_is_well_formed(host)) {
    const char *scheme = req->scheme ? req->scheme : (req->protocol == REEL_HTTP_3 ? "https" : "http");
    snprintf(out, len, "%s://%.*s", scheme, (int)host.len, host.ptr);
    return;
  }
  snprintf(out, len, "%s", app->listener_base_url);
}

char *reel_api_absolute_url(const reel_app *app, const reel_http_request *req, const char *url) {
  if (url[0] != '/') return strdup(url);
  char base[512];
  reel_api_base_url(app, req, base, sizeof base);
  size_t n = strlen(base) + strlen(url) + 1;
  char *out = malloc(n);
  if (out) snprintf(out, n, "%s%s", base, url);
  return out;
}
