/* X-Forwarded-For / X-Forwarded-Proto from trusted proxies only
 * (service.trusted_proxies). A request whose socket peer is not in the list
 * keeps its peer as the client, whatever headers it sends, so a client cannot
 * forge its address in the logs by adding the header itself. */
#ifndef REEL_HTTP_FORWARDED_H
#define REEL_HTTP_FORWARDED_H

#include "http/request.h"

#define REEL_FORWARDED_MAX_NETWORKS 32

typedef struct {
  int family; /* AF_INET or AF_INET6 */
  unsigned char address[16];
  int prefix; /* bits that must match */
} reel_network;

typedef struct {
  reel_network networks[REEL_FORWARDED_MAX_NETWORKS];
  int n;
} reel_proxy_list;

/* Parses "IP" or "IP/PREFIX" entries (IPv4 or IPv6). Returns 0, or
 * REEL_EINVAL naming the first bad entry in err. */
int reel_proxy_list_parse(reel_proxy_list *list, char *const *entries, int n, char *err, size_t errlen);
/* 1 if ip (an address without port; IPv4-mapped IPv6 counts as IPv4) is in
 * one of the networks. */
int reel_proxy_list_contains(const reel_proxy_list *list, const char *ip);

/* If req's socket peer is a trusted proxy: the client becomes the rightmost
 * X-Forwarded-For entry that is not itself a trusted proxy (req->remote_addr;
 * the proxy stays in req->peer_addr), and X-Forwarded-Proto (http or https)
 * sets req->scheme. Otherwise the headers are ignored. */
void reel_forwarded_apply(reel_http_request *req, const reel_proxy_list *list);

#endif
