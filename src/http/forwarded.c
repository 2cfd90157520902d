/* Trusted-proxy matching and X-Forwarded-* handling. */
#include "http/forwarded.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/error.h"

/* Parses an address into family and 16 bytes; IPv4-mapped IPv6 becomes IPv4. */
static int parse_address(const char *text, size_t len, int *family, unsigned char out[16]) {
  char buf[64];
  if (len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, text, len);
  buf[len] = '\0';
  /* "[v6]" as some proxies write it */
  char *p = buf;
  if (p[0] == '[' && len >= 2 && p[len - 1] == ']') {
    p[len - 1] = '\0';
    p++;
  }
  memset(out, 0, 16);
  if (inet_pton(AF_INET, p, out) == 1) {
    *family = AF_INET;
    return 0;
  }
  if (inet_pton(AF_INET6, p, out) == 1) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(out, mapped, 12) == 0) {
      memmove(out, out + 12, 4);
      memset(out + 4, 0, 12);
      *family = AF_INET;
    } else {
      *family = AF_INET6;
    }
    return 0;
  }
  return -1;
}

int reel_proxy_list_parse(reel_proxy_list *list, char *const *entries, int n, char *err, size_t errlen) {
  memset(list, 0, sizeof *list);
  for (int i = 0; i < n; i++) {
    if (list->n >= REEL_FORWARDED_MAX_NETWORKS) {
      snprintf(err, errlen, "at most %d trusted proxies", REEL_FORWARDED_MAX_NETWORKS);
      return REEL_EINVAL;
    }
    reel_network *net = &list->networks[list->n];
    const char *slash = strchr(entries[i], '/');
    size_t len = slash ? (size_t)(slash - entries[i]) : strlen(entries[i]);
    if (parse_address(entries[i], len, &net->family, net->address) != 0) goto bad;
    int max = net->family == AF_INET ? 32 : 128;
    net->prefix = max;
    if (slash) {
      char *end;
      long prefix = strtol(slash + 1, &end, 10);
      if (end == slash + 1 || *end || prefix < 0 || prefix > max) goto bad;
      net->prefix = (int)prefix;
    }
    list->n++;
    continue;
  bad:
    snprintf(err, errlen, "\"%s\" is not an IP address or CIDR network", entries[i]);
    return REEL_EINVAL;
  }
  return 0;
}

static int network_contains(const reel_network *net, int family, const unsigned char *address) {
  if (net->family != family) return 0;
  int full = net->prefix / 8, rest = net->prefix % 8;
  if (memcmp(net->address, address, (size_t)full) != 0) return 0;
  if (rest == 0) return 1;
  unsigned char mask = (unsigned char)(0xff << (8 - rest));
  return (net->address[full] & mask) == (address[full] & mask);
}

static int contains(const reel_proxy_list *list, const char *ip, size_t len) {
  int family;
  unsigned char address[16];
  if (parse_address(ip, len, &family, address) != 0) return 0;
  for (int i = 0; i < list->n; i++)
    if (network_contains(&list->networks[i], family, address)) return 1;
  return 0;
}

int reel_proxy_list_contains(const reel_proxy_list *list, const char *ip) { return contains(list, ip, strlen(ip)); }

/* The address part of "ip:port" (IPv6 peers are written "::1:port"). */
static size_t address_length(const char *remote) {
  const char *colon = strrchr(remote, ':');
  return colon ? (size_t)(colon - remote) : strlen(remote);
}

static int is_space(char c) { return c == ' ' || c == '\t'; }

void reel_forwarded_apply(reel_http_request *req, const reel_proxy_list *list) {
  if (!req->peer_addr[0]) snprintf(req->peer_addr, sizeof req->peer_addr, "%s", req->remote_addr);
  if (list->n == 0 || !contains(list, req->peer_addr, address_length(req->peer_addr))) return;
  /* every X-Forwarded-For line, right to left: the first hop not a trusted proxy is the client */
  const char *client = NULL;
  size_t client_len = 0;
  for (int h = req->n_headers - 1; h >= 0 && !client; h--) {
    const reel_http_header *hd = &req->headers[h];
    if (hd->name.len != 15 || strncasecmp(hd->name.ptr, "x-forwarded-for", 15) != 0) continue;
    const char *start = hd->value.ptr, *end = start + hd->value.len;
    while (end > start && !client) {
      const char *comma = end;
      while (comma > start && comma[-1] != ',') comma--;
      const char *a = comma, *b = end;
      while (a < b && is_space(*a)) a++;
      while (b > a && is_space(b[-1])) b--;
      end = comma > start ? comma - 1 : start;
      if (a == b) continue;
      int family;
      unsigned char address[16];
      if (parse_address(a, (size_t)(b - a), &family, address) != 0) break; /* garbage: trust nothing further */
      if (!contains(list, a, (size_t)(b - a))) client = a, client_len = (size_t)(b - a);
    }
  }
  if (client && client_len < sizeof req->remote_addr)
    snprintf(req->remote_addr, sizeof req->remote_addr, "%.*s", (int)client_len, client);
  reel_slice proto = reel_http_request_header(req, "X-Forwarded-Proto");
  if (reel_slice_eq(proto, "https")) req->scheme = "https";
  else if (reel_slice_eq(proto, "http")) req->scheme = "http";
}
