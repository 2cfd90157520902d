/* X-Forwarded-For/-Proto are believed only from service.trusted_proxies. */
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "http/forwarded.h"

static reel_proxy_list list_of(char *const *entries, int n) {
  reel_proxy_list l;
  char err[128];
  CHECK_INT(reel_proxy_list_parse(&l, entries, n, err, sizeof err), 0);
  return l;
}

/* Applies the list to a request from peer with the given headers (name, value pairs). */
static reel_http_request apply(const reel_proxy_list *l, const char *peer, reel_http_header *headers, int n) {
  reel_http_request r;
  memset(&r, 0, sizeof r);
  snprintf(r.remote_addr, sizeof r.remote_addr, "%s", peer);
  r.scheme = "http";
  r.headers = headers;
  r.n_headers = n;
  reel_forwarded_apply(&r, l);
  return r;
}

#define H(n, v) {.name = {n, sizeof n - 1}, .value = {v, sizeof v - 1}}

int main(void) {
  char *entries[] = {"127.0.0.1", "10.0.0.0/8", "fd00::/8", "192.168.1.128/25"};
  reel_proxy_list l = list_of(entries, 4);
  CHECK(reel_proxy_list_contains(&l, "127.0.0.1"));
  CHECK(!reel_proxy_list_contains(&l, "127.0.0.2"));
  CHECK(reel_proxy_list_contains(&l, "10.255.1.2"));
  CHECK(!reel_proxy_list_contains(&l, "11.0.0.1"));
  CHECK(reel_proxy_list_contains(&l, "fd12::1"));
  CHECK(!reel_proxy_list_contains(&l, "fe80::1"));
  CHECK(reel_proxy_list_contains(&l, "::ffff:10.1.1.1")); /* IPv4-mapped */
  CHECK(reel_proxy_list_contains(&l, "192.168.1.200"));
  CHECK(!reel_proxy_list_contains(&l, "192.168.1.100"));
  CHECK(!reel_proxy_list_contains(&l, "not-an-ip"));

  char err[128];
  reel_proxy_list bad;
  char *wrong[] = {"10.0.0.0/33"};
  CHECK_INT(reel_proxy_list_parse(&bad, wrong, 1, err, sizeof err), REEL_EINVAL);
  CHECK(strstr(err, "10.0.0.0/33") != NULL);

  /* a trusted proxy: the client is the rightmost untrusted hop, the scheme comes from the proxy */
  reel_http_header h1[] = {H("X-Forwarded-For", "203.0.113.7, 10.1.2.3"), H("X-Forwarded-Proto", "https")};
  reel_http_request r = apply(&l, "127.0.0.1:5000", h1, 2);
  CHECK_STR(r.remote_addr, "203.0.113.7");
  CHECK_STR(r.peer_addr, "127.0.0.1:5000");
  CHECK_STR(r.scheme, "https");

  /* a client that prepends a forged hop cannot choose its address */
  reel_http_header h2[] = {H("x-forwarded-for", "6.6.6.6, 198.51.100.9")};
  r = apply(&l, "10.0.0.1:443", h2, 1);
  CHECK_STR(r.remote_addr, "198.51.100.9");

  /* several header lines: the last one is the nearest proxy's */
  reel_http_header h3[] = {H("X-Forwarded-For", "6.6.6.6"), H("X-Forwarded-For", "198.51.100.10")};
  r = apply(&l, "127.0.0.1:1", h3, 2);
  CHECK_STR(r.remote_addr, "198.51.100.10");

  /* an untrusted peer: headers ignored */
  reel_http_header h4[] = {H("X-Forwarded-For", "203.0.113.7"), H("X-Forwarded-Proto", "https")};
  r = apply(&l, "203.0.113.50:1234", h4, 2);
  CHECK_STR(r.remote_addr, "203.0.113.50:1234");
  CHECK_STR(r.scheme, "http");

  /* no trusted proxies configured: nothing is believed */
  reel_proxy_list empty = list_of(NULL, 0);
  r = apply(&empty, "127.0.0.1:1", h4, 2);
  CHECK_STR(r.remote_addr, "127.0.0.1:1");
  CHECK_STR(r.scheme, "http");

  /* garbage in the header: the proxy stays the client; an odd proto is ignored */
  reel_http_header h5[] = {H("X-Forwarded-For", "<script>, 10.0.0.9"), H("X-Forwarded-Proto", "gopher")};
  r = apply(&l, "127.0.0.1:9", h5, 2);
  CHECK_STR(r.remote_addr, "127.0.0.1:9");
  CHECK_STR(r.scheme, "http");

  /* IPv6 client through an IPv6 proxy, bracketed form accepted */
  reel_http_header h6[] = {H("X-Forwarded-For", "[2001:db8::5]")};
  r = apply(&l, "fd00::1:8443", h6, 1);
  CHECK_STR(r.remote_addr, "[2001:db8::5]");
  return check_report();
}
