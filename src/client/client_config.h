/* Where the `reel` client finds its server and token (SPEC section 13):
 * --url/--token/--cacert flags first, then the REEL_URL/REEL_TOKEN/
 * REEL_CACERT environment, then `url:`, `token:` and `ca_file:` in the
 * client file (--config FILE, else $XDG_CONFIG_HOME/reel/client.yaml, else
 * ~/.config/reel/client.yaml), then the default URL http://127.0.0.1:8000
 * (what `make run` serves). */
#ifndef REEL_CLIENT_CONFIG_H
#define REEL_CLIENT_CONFIG_H

#include <stddef.h>

typedef struct {
  char *url;     /* without a trailing slash */
  char *token;   /* NULL when none was given */
  char *ca_file; /* NULL: the system's CAs */
  char *path;    /* the client file read, or NULL */
} reel_client_config;

/* The values given on the command line or in the environment (NULL when not). */
typedef struct {
  const char *url, *token, *ca_file, *config_path;
} reel_client_overrides;

/* Resolves the configuration. 0, or non-zero with a message in err naming
 * the file, line and key (an unreadable or malformed file, an unknown key, a
 * URL that is not http:// or https://). */
int reel_client_config_load(reel_client_config *cfg, const reel_client_overrides *given, char *err, size_t errlen);
/* Parses client-file text (exposed for tests); name appears in messages. */
int reel_client_config_parse(reel_client_config *cfg, const char *text, size_t len, const char *name, char *err,
                             size_t errlen);
void reel_client_config_free(reel_client_config *cfg);

#endif
