/* reel.yaml: the one source of truth for a reel deployment.
 *
 * The file has two sections. `service:` configures reeld itself (listeners,
 * auth, store, storage, limits, workers). `pipeline:` is the pipeline's own
 * configuration, using ttv-pipeline's key names where they exist; it is kept
 * as a JSON tree so it can be handed to a pipeline program unchanged, with
 * only `prompt` ever overridden (see reel_config_effective).
 *
 * An empty value (or null, ~) keeps a key's default. The file is capped at
 * 1 MiB and 32 levels of nesting; anchors/aliases, tags other than !!str and
 * more than one YAML document are refused, as are duplicate keys. */
#ifndef REEL_CONFIG_H
#define REEL_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define REEL_MAX_LISTEN 8
#define REEL_MAX_TOKENS 32
#define REEL_MAX_PROXIES 32
#define REEL_MAX_WEBHOOKS 16
#define REEL_MAX_RETRY_STEPS 32

/* One entry of service.webhooks (SPEC section 8). */
typedef struct {
  char *url;            /* http:// or https:// */
  char *secret;         /* "whsec_" + base64 key (secret: never logged) */
  unsigned events;      /* event type bits (events/hub.h); default finished, failed, canceled */
  double retry_schedule[REEL_MAX_RETRY_STEPS]; /* seconds before each attempt; the first is usually 0 */
  int n_retry;
  unsigned long line;   /* where it was configured, for messages */
} reel_webhook_endpoint;

/* What a service.listen entry serves. */
typedef enum {
  REEL_LISTEN_HTTP,  /* http://: HTTP/1.1 and h2c with prior knowledge (cleartext) */
  REEL_LISTEN_HTTPS, /* https://: TLS over TCP, ALPN h2 and http/1.1 */
  REEL_LISTEN_H3,    /* h3://: HTTP/3 over QUIC (UDP) */
} reel_listen_scheme;

typedef struct {
  char *path;               /* the file this came from (for messages) */

  /* service: */
  char *listen[REEL_MAX_LISTEN]; /* "http://HOST:PORT" (also plain "HOST:PORT"), "https://HOST:PORT"
                                    or "h3://HOST:PORT"; a scalar or a list in YAML */
  reel_listen_scheme listen_scheme[REEL_MAX_LISTEN]; /* parsed from each listen[i] */
  int n_listen;
  char *tls_cert_file;      /* service.tls.cert_file: PEM chain, required by https:// and h3:// */
  char *tls_key_file;       /* service.tls.key_file: PEM private key */
  char *trusted_proxies[REEL_MAX_PROXIES]; /* service.trusted_proxies: IPs or CIDRs whose
                                              X-Forwarded-For/-Proto are believed */
  int n_trusted_proxies;
  reel_webhook_endpoint webhooks[REEL_MAX_WEBHOOKS]; /* service.webhooks */
  int n_webhooks;
  int webhook_concurrency;  /* service.webhook_concurrency: deliveries in flight per node, default 16 */
  double webhook_timeout_seconds; /* service.webhook_timeout_seconds: whole delivery, default 10 (connect: a third) */
  int quic_retry;           /* service.quic.retry: Retry address validation, default true */
  int quic_max_streams;     /* service.quic.max_streams: concurrent request streams, default 100 */
  double quic_handshake_timeout_seconds; /* service.quic.handshake_timeout_seconds, default 10 */
  char *data_dir;           /* default "./var"; relative paths are relative to the process cwd */
  char *mode;               /* "both" (default) | "api" | "worker" */
  char *tokens[REEL_MAX_TOKENS]; /* service.auth.tokens: bearer tokens (required, non-empty list) */
  int n_tokens;
  int workers;              /* service.workers: concurrent jobs, default 2, 0..256 */
  int max_queue_depth;      /* service.max_queue_depth: queued jobs before 429, default 1000, >= 1 */
  int max_attempts;         /* service.max_attempts: runs per job incl. retries, default 3, 1..100 */
  double retry_base_seconds;    /* service.retry_base_seconds: first backoff, default 1.0, > 0 */
  double retry_max_seconds;     /* service.retry_max_seconds: backoff cap, default 300, >= base */
  double cancel_grace_seconds;  /* service.cancel_grace_seconds: SIGTERM->SIGKILL, default 10, 0..3600 */
  double job_timeout_seconds;   /* service.job_timeout_seconds: default 3600, > 0 */
  int max_prompt_chars;     /* service.max_prompt_chars: default 2000, 1..1000000 */
  size_t max_body_bytes;    /* service.max_body_bytes: request body cap, default 65536, >= 1024 */
  size_t max_header_bytes;  /* service.max_header_bytes: request head cap, default 16384, >= 1024 */
  double header_timeout_seconds; /* service.header_timeout_seconds: default 10, > 0 */
  double idle_timeout_seconds;   /* service.idle_timeout_seconds: keep-alive idle, default 60, > 0 */
  int max_connections;      /* service.max_connections: default 10000, >= 1 */
  int artifact_url_ttl_seconds; /* service.artifact_url_ttl_seconds: default 3600, 60..604800 */
  char *public_base_url;    /* service.public_base_url: e.g. "https://reel.example.com" (must start
                               with http:// or https://; a trailing slash is removed), or NULL: URLs
                               handed to a client then use the scheme and Host it used (api/origin.h) */
  char *signing_key;        /* service.signing_key: HMAC key for download URLs; NULL = generate
                               once and keep in data_dir/signing.key */
  size_t max_log_lines;     /* service.max_log_lines: per job log cap, default 10000, >= 10 */
  size_t max_log_line_bytes; /* service.max_log_line_bytes: default 4096, >= 80 */
  int keep_failed_workspaces; /* service.keep_failed_workspaces: default false */
  int idempotency_ttl_seconds; /* service.idempotency_ttl_seconds: how long an Idempotency-Key is kept, default 86400 */
  int sse_max_streams;      /* service.sse_max_streams: event streams at once, default 10000 (503 beyond) */
  int sse_max_streams_per_client; /* service.sse_max_streams_per_client: default 100 (429 beyond) */
  size_t sse_max_buffered_bytes; /* service.sse_max_buffered_bytes: unsent bytes per stream before it is
                                    cut off, default 1 MiB, >= 4096 */
  double sse_keepalive_seconds; /* service.sse_keepalive_seconds: ": keep-alive" comment interval, default 15 */
  char *log_level;          /* service.log_level: debug|info|warn|error, default "info" */
  char *docs_dir;           /* service.docs_dir: Swagger UI assets; NULL = next to the binary */

  /* service.database: */
  char *database_backend;   /* service.database.backend: "sqlite" (default) | "postgres" */
  char *database_path;      /* service.database.path (sqlite): default "<data_dir>/reel.db" */
  char *database_url;       /* service.database.url (postgres): libpq URI, secret (may hold a password) */
  char *database_password_file; /* service.database.password_file (postgres): the password, one line */
  char *node_id;            /* service.node_id: this process in a cluster; NULL = "<host>:<pid>" */
  int lease_seconds;        /* service.lease_seconds: claim lease, renewed every third, default 30, 2..3600 */
  int retention_days;       /* service.retention_days: terminal jobs kept, default 30, 0 = forever */

  /* service.storage: */
  char *storage_backend;    /* service.storage.backend: "local" (default) | "s3" | "gcs" */
  char *storage_prefix;     /* service.storage.prefix: object key prefix, default "reel" */
  char *storage_path;       /* service.storage.path: local root, default "<data_dir>/artifacts" */
  char *storage_bucket;     /* service.storage.bucket (s3, gcs) */
  char *storage_endpoint;   /* service.storage.endpoint: e.g. "https://s3.eu-central-1.wasabisys.com",
                               "http://127.0.0.1:9000"; default https://s3.REGION.amazonaws.com (s3),
                               https://storage.googleapis.com (gcs) */
  char *storage_region;     /* service.storage.region (s3), default "us-east-1" */
  int storage_path_style;   /* service.storage.path_style (s3): https://endpoint/bucket/key, default false */
  char *storage_access_key_id;     /* service.storage.access_key_id (s3), secret */
  char *storage_secret_access_key; /* service.storage.secret_access_key (s3), secret */
  char *storage_session_token;     /* service.storage.session_token (s3, optional), secret */
  char *storage_credentials_file;  /* service.storage.credentials_file (gcs): service-account JSON key */
  int storage_signed_urls;  /* service.storage.signed_urls, default true; false: public URLs, expires_in 0 */
  size_t storage_multipart_threshold; /* service.storage.multipart_threshold_bytes, default 16 MiB, >= 5 MiB */
  size_t storage_multipart_part;      /* service.storage.multipart_part_bytes, default 8 MiB, >= 5 MiB */
  int storage_multipart_parallel;     /* service.storage.multipart_parallel, default 4, 1..16 */
  int storage_upload_attempts;        /* service.storage.upload_attempts, default 5, 1..20 */

  /* pipeline: the whole section as given (an object), for the pipeline program. */
  json_t *pipeline;
  /* Parsed views of pipeline keys reel itself acts on: */
  char *default_backend;    /* pipeline.default_backend: "local" (default) | "command" */
  char **command_argv;      /* pipeline.command: NULL-terminated argv, required for "command" */
  int command_argc;
} reel_config;

/* Loads and validates path. On success returns 0 and fills *out (free with
 * reel_config_free). On failure returns REEL_ECONFIG and writes one line into
 * err (errlen bytes), "FILE:LINE: KEY: what is wrong (what to do)", e.g.
 * "reel.yaml:7: service.workers: expected an integer from 0 to 256, got \"many\"".
 * (REEL_ENOMEM if memory runs out.) After a failure *out is zeroed, so
 * reel_config_free on it is harmless. */
int reel_config_load(const char *path, reel_config *out, char *err, size_t errlen);
/* Same, from a YAML string in memory; `name` stands for the file in messages. */
int reel_config_load_string(const char *yaml, size_t len, const char *name, reel_config *out,
                            char *err, size_t errlen);
/* Loads a standalone pipeline file (the `pipeline:` section's keys at the top
 * level, as a job's pipeline_config.yaml is written) with the same typing and
 * validation as the pipeline section of reel.yaml. On success *out is a new
 * JSON object; on failure REEL_ECONFIG and one line in err. */
int reel_config_load_pipeline(const char *path, json_t **out, char *err, size_t errlen);
/* Releases everything the config owns. */
void reel_config_free(reel_config *cfg);

/* Builds a job's effective pipeline config: a new copy of `pipeline` where
 * `prompt` is replaced by cli_prompt if non-NULL, then by http_prompt if
 * non-NULL (HTTP > CLI > config); a NULL pipeline counts as an empty one.
 * Nothing else changes; an absent override
 * leaves the key as it was (or absent). Returns a new reference; NULL on OOM,
 * if pipeline is not an object, or if a prompt is not valid UTF-8. */
json_t *reel_config_effective(const json_t *pipeline, const char *cli_prompt, const char *http_prompt);

/* Serialises a JSON object as YAML (block style, strings always quoted safely)
 * into a heap string. Returns NULL on failure. Strings are double-quoted with
 * escapes, so any text reads back unchanged; reals always carry a '.'. */
char *reel_config_to_yaml(const json_t *object);

#endif
