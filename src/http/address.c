/* Listen-address resolution and peer formatting. */
#include "http/address.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "common/error.h"

int reel_address_resolve_listen(const char *address, int socktype, struct addrinfo **res, char *err,
                                size_t errlen) {
  const char *a = address;
  const char *scheme_end = strstr(a, "://");
  if (scheme_end) a = scheme_end + 3;
  const char *colon = strrchr(a, ':');
  if (!colon || colon == a || colon[1] == '\0') {
    snprintf(err, errlen, "listen address \"%s\" needs HOST:PORT", address);
    return REEL_EINVAL;
  }
  char host[256];
  size_t hlen = (size_t)(colon - a);
  if (hlen >= sizeof host) hlen = sizeof host - 1;
  memcpy(host, a, hlen);
  host[hlen] = '\0';
  if (host[0] == '[' && hlen >= 2 && host[hlen - 1] == ']') {
    memmove(host, host + 1, hlen - 2);
    host[hlen - 2] = '\0';
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = socktype, .ai_flags = AI_PASSIVE};
  int gai = getaddrinfo(host, colon + 1, &hints, res);
  if (gai != 0) {
    snprintf(err, errlen, "cannot resolve listen address \"%s\": %s", address, gai_strerror(gai));
    return REEL_EINVAL;
  }
  return 0;
}

void reel_address_format(const struct sockaddr *sa, char *out, size_t outlen) {
  char ip[64] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof ip);
    port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof ip);
    port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  }
  snprintf(out, outlen, "%s:%d", ip, port);
}
