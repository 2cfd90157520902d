/* Socket addresses for the listeners: resolving "[SCHEME://]HOST:PORT" for
 * bind() and formatting peers as "ip:port" for logs. */
#ifndef REEL_HTTP_ADDRESS_H
#define REEL_HTTP_ADDRESS_H

#include <netdb.h>
#include <stddef.h>
#include <sys/socket.h>

/* Resolves a listen address "HOST:PORT", "[V6]:PORT", optionally after a
 * "SCHEME://" prefix, for socktype (SOCK_STREAM or SOCK_DGRAM). Returns 0
 * with *res (free it with freeaddrinfo), or REEL_EINVAL and a message naming
 * the address in err. */
int reel_address_resolve_listen(const char *address, int socktype, struct addrinfo **res, char *err,
                                size_t errlen);
/* Writes "ip:port" for an IPv4 or IPv6 socket address ("?:0" otherwise). */
void reel_address_format(const struct sockaddr *sa, char *out, size_t outlen);

#endif
