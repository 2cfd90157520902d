/* Unit tests for src/config: loading reel.yaml with its defaults, one error
 * message per kind of mistake (with file, line and key), the effective-config
 * precedence the spec names (config < CLI < HTTP), and YAML output that reads
 * back to the same JSON whatever the strings contain. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "common/error.h"
#include "config/config.h"
#include "render/options.h"

#define MINIMAL                   \
  "service:\n"                    \
  "  listen: 127.0.0.1:8000\n"    \
  "  data_dir: ./var\n"           \
  "  auth:\n"                     \
  "    tokens: [change-me]\n"     \
  "pipeline:\n"                   \
  "  default_backend: local\n"

/* Just enough service: for tests about other keys. */
#define AUTH "service:\n  auth:\n    tokens: [change-me]\n"

static char err[1024];

/* Files the loader checks exist (made in main): "@/" in a test's YAML stands
 * for their directory. */
static char fixtures[64];
#define GCS_KEY "tests/vectors/gcs-v4/service-account.json" /* unit tests run in the source tree */

/* yaml with every "@/" replaced by the fixtures directory (one of 8 rotating buffers). */
static const char *with_fixtures(const char *yaml) {
  static char buffers[8][4096];
  static int next;
  char *out = buffers[next++ % 8];
  size_t used = 0;
  for (const char *c = yaml; *c && used + sizeof fixtures + 2 < sizeof buffers[0]; c++) {
    if (c[0] == '@' && c[1] == '/') used += (size_t)snprintf(out + used, sizeof buffers[0] - used, "%s", fixtures);
    else out[used++] = *c;
  }
  out[used] = '\0';
  return out;
}

static void write_file(const char *name, const char *text) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", fixtures, name);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

static void make_fixtures(void) {
  snprintf(fixtures, sizeof fixtures, "/tmp/reel-test-config-XXXXXX");
  CHECK(mkdtemp(fixtures) != NULL);
  write_file("cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  write_file("key.pem", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
  write_file("ec-key.pem", "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n");
  write_file("notes.txt", "not a certificate\n");
  write_file("unreadable.pem", "-----BEGIN CERTIFICATE-----\n");
  char path[128];
  snprintf(path, sizeof path, "%s/unreadable.pem", fixtures);
  chmod(path, 0);
  snprintf(path, sizeof path, "%s/docs", fixtures);
  CHECK(mkdir(path, 0755) == 0);
  snprintf(path, sizeof path, "%s/var", fixtures);
  CHECK(mkdir(path, 0755) == 0);
  snprintf(path, sizeof path, "%s/var/reel.db", fixtures);
  CHECK(mkdir(path, 0755) == 0);
}

static void remove_fixtures(void) {
  static const char *const files[] = {"cert.pem", "key.pem", "ec-key.pem", "notes.txt", "unreadable.pem"};
  static const char *const dirs[] = {"docs", "var/reel.db", "var", ""};
  char path[128];
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    snprintf(path, sizeof path, "%s/%s", fixtures, files[i]);
    unlink(path);
  }
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
    snprintf(path, sizeof path, "%s/%s", fixtures, dirs[i]);
    rmdir(path);
  }
}

static int load(const char *yaml, reel_config *config) {
  return reel_config_load_string(yaml, strlen(yaml), "reel.yaml", config, err, sizeof err);
}

/* Loads yaml, expects REEL_ECONFIG and exactly the message `expected`. */
#define EXPECT_ERROR(yaml, expected)    \
  do {                                  \
    reel_config config_;                \
    CHECK_INT(load(yaml, &config_), REEL_ECONFIG); \
    CHECK_STR(err, expected);           \
    reel_config_free(&config_);         \
  } while (0)

/* Loads yaml, expects REEL_ECONFIG and a message starting with `prefix`. */
#define EXPECT_ERROR_PREFIX(yaml, prefix)                             \
  do {                                                                \
    reel_config config_;                                              \
    CHECK_INT(load(yaml, &config_), REEL_ECONFIG);                    \
    if (strncmp(err, prefix, strlen(prefix)) != 0) CHECK_STR(err, prefix); \
    reel_config_free(&config_);                                       \
  } while (0)

static void test_minimal_file_has_every_default(void) {
  reel_config c;
  CHECK_INT(load(MINIMAL, &c), 0);
  CHECK_STR(err, "");
  CHECK_STR(c.path, "reel.yaml");
  CHECK_INT(c.n_listen, 1);
  CHECK_STR(c.listen[0], "127.0.0.1:8000");
  CHECK_STR(c.data_dir, "./var");
  CHECK_STR(c.mode, "both");
  CHECK_INT(c.n_tokens, 1);
  CHECK_STR(c.tokens[0], "change-me");
  CHECK_INT(c.workers, 2);
  CHECK_INT(c.max_queue_depth, 1000);
  CHECK_INT(c.max_attempts, 3);
  CHECK(c.retry_base_seconds == 1.0);
  CHECK(c.retry_max_seconds == 300.0);
  CHECK(c.cancel_grace_seconds == 10.0);
  CHECK(c.job_timeout_seconds == 3600.0);
  CHECK_INT(c.max_prompt_chars, 2000);
  CHECK_INT(c.max_body_bytes, 65536);
  CHECK_INT(c.max_header_bytes, 16384);
  CHECK(c.header_timeout_seconds == 10.0);
  CHECK(c.idle_timeout_seconds == 60.0);
  CHECK_INT(c.max_connections, 10000);
  CHECK_INT(c.artifact_url_ttl_seconds, 3600);
  CHECK(c.public_base_url == NULL); /* unset: URLs follow the request (api/origin.h) */
  CHECK(c.signing_key == NULL);
  CHECK_INT(c.max_log_lines, 10000);
  CHECK_INT(c.max_log_line_bytes, 4096);
  CHECK_INT(c.keep_failed_workspaces, 0);
  CHECK_STR(c.log_level, "info");
  CHECK(c.docs_dir == NULL);
  CHECK_STR(c.database_backend, "sqlite");
  CHECK_STR(c.database_path, "./var/reel.db");
  CHECK_INT(c.lease_seconds, 30);
  CHECK_INT(c.retention_days, 30);
  CHECK(c.node_id == NULL);
  CHECK_STR(c.storage_backend, "local");
  CHECK_STR(c.storage_prefix, "reel");
  CHECK_STR(c.storage_path, "./var/artifacts");
  CHECK(json_is_object(c.pipeline));
  CHECK_INT(json_object_size(c.pipeline), 1);
  CHECK_STR(json_string_value(json_object_get(c.pipeline, "default_backend")), "local");
  CHECK_STR(c.default_backend, "local");
  CHECK(c.command_argv == NULL);
  CHECK_INT(c.command_argc, 0);
  reel_config_free(&c);
  CHECK(c.pipeline == NULL && c.path == NULL); /* free leaves a zeroed struct */
  reel_config_free(&c);                         /* and freeing twice is harmless */
}

static void test_every_service_key_can_be_set(void) {
  const char *yaml =
      "service:\n"
      "  listen: [\"http://0.0.0.0:9000\", \"[::1]:9001\"]\n"
      "  data_dir: /srv/reel/\n"
      "  mode: api\n"
      "  auth: {tokens: [one-token, 12345678]}\n"
      "  workers: 0\n"
      "  max_queue_depth: 5\n"
      "  max_attempts: 100\n"
      "  retry_base_seconds: 0.5\n"
      "  retry_max_seconds: 2\n"
      "  cancel_grace_seconds: 0\n"
      "  job_timeout_seconds: 1.5\n"
      "  max_prompt_chars: 1000000\n"
      "  max_body_bytes: 1024\n"
      "  max_header_bytes: 2048\n"
      "  header_timeout_seconds: 3\n"
      "  idle_timeout_seconds: 4.25\n"
      "  max_connections: 1\n"
      "  artifact_url_ttl_seconds: 604800\n"
      "  public_base_url: https://reel.example.com/\n"
      "  signing_key: 's3cret: key'\n"
      "  max_log_lines: 10\n"
      "  max_log_line_bytes: 80\n"
      "  keep_failed_workspaces: yes\n"
      "  log_level: debug\n"
      "  docs_dir: @/docs\n"
      "  node_id: api-1\n"
      "  lease_seconds: 9\n"
      "  retention_days: 0\n"
      "  database:\n"
      "    backend: postgres\n"
      "    url: postgresql://reel@db.internal/reel\n"
      "    path: /tmp/jobs.db\n"
      "  storage:\n"
      "    backend: local\n"
      "    prefix: ''\n"
      "    path: /tmp/blobs\n";
  reel_config c;
  CHECK_INT(load(with_fixtures(yaml), &c), 0);
  CHECK_STR(err, "");
  CHECK_INT(c.n_listen, 2);
  CHECK_STR(c.listen[0], "http://0.0.0.0:9000");
  CHECK_STR(c.listen[1], "[::1]:9001");
  CHECK_STR(c.data_dir, "/srv/reel/");
  CHECK_STR(c.mode, "api");
  CHECK_INT(c.n_tokens, 2);
  CHECK_STR(c.tokens[1], "12345678");
  CHECK_INT(c.workers, 0);
  CHECK_INT(c.max_queue_depth, 5);
  CHECK_INT(c.max_attempts, 100);
  CHECK(c.retry_base_seconds == 0.5);
  CHECK(c.retry_max_seconds == 2.0);
  CHECK(c.cancel_grace_seconds == 0.0);
  CHECK(c.job_timeout_seconds == 1.5);
  CHECK_INT(c.max_prompt_chars, 1000000);
  CHECK_INT(c.max_body_bytes, 1024);
  CHECK_INT(c.max_header_bytes, 2048);
  CHECK(c.header_timeout_seconds == 3.0);
  CHECK(c.idle_timeout_seconds == 4.25);
  CHECK_INT(c.max_connections, 1);
  CHECK_INT(c.artifact_url_ttl_seconds, 604800);
  CHECK_STR(c.public_base_url, "https://reel.example.com"); /* trailing slash stripped */
  CHECK_STR(c.signing_key, "s3cret: key");
  CHECK_INT(c.max_log_lines, 10);
  CHECK_INT(c.max_log_line_bytes, 80);
  CHECK_INT(c.keep_failed_workspaces, 1);
  CHECK_STR(c.log_level, "debug");
  CHECK_STR(c.docs_dir, with_fixtures("@/docs"));
  CHECK_STR(c.database_path, "/tmp/jobs.db");
  CHECK_STR(c.database_backend, "postgres");
  CHECK_STR(c.database_url, "postgresql://reel@db.internal/reel");
  CHECK_STR(c.node_id, "api-1");
  CHECK_INT(c.lease_seconds, 9);
  CHECK_INT(c.retention_days, 0);
  CHECK_STR(c.storage_prefix, "");
  CHECK_STR(c.storage_path, "/tmp/blobs");
  CHECK_INT(json_object_size(c.pipeline), 0); /* no pipeline: section is an empty one */
  CHECK_STR(c.default_backend, "local");
  reel_config_free(&c);
}

static void test_derived_defaults(void) {
  reel_config c;
  /* data_dir with a trailing slash does not double it */
  CHECK_INT(load(AUTH "  data_dir: /data/\n", &c), 0);
  CHECK_STR(c.database_path, "/data/reel.db");
  CHECK_STR(c.storage_path, "/data/artifacts");
  CHECK_STR(c.listen[0], "127.0.0.1:8000"); /* listen absent: the default */
  /* unset public_base_url stays unset: URLs follow each request's scheme and Host */
  CHECK(c.public_base_url == NULL);
  reel_config_free(&c);

  CHECK_INT(load(AUTH "  public_base_url: http://example.com:8080/reel\n", &c), 0);
  CHECK_STR(c.public_base_url, "http://example.com:8080/reel");
  reel_config_free(&c);
}

static void test_listen_forms(void) {
  reel_config c;
  CHECK_INT(load(AUTH "  listen:\n    - 127.0.0.1:8000\n    - http://localhost:8001\n    - '[::]:8002'\n", &c), 0);
  CHECK_INT(c.n_listen, 3);
  CHECK_STR(c.listen[0], "127.0.0.1:8000");
  CHECK_STR(c.listen[1], "http://localhost:8001"); /* kept as written */
  CHECK_STR(c.listen[2], "[::]:8002");
  reel_config_free(&c);

  CHECK_INT(load(with_fixtures(AUTH "  listen: [http://127.0.0.1:80, 'https://[::1]:8443', h3://0.0.0.0:8443]\n"
                                    "  tls: {cert_file: @/cert.pem, key_file: @/key.pem}\n"
                                    "  trusted_proxies: [127.0.0.1, '::1', 10.0.0.0/8, 'fd00::/8']\n"),
                 &c),
            0);
  CHECK_INT(c.n_listen, 3);
  CHECK_INT(c.listen_scheme[0], REEL_LISTEN_HTTP);
  CHECK_INT(c.listen_scheme[1], REEL_LISTEN_HTTPS);
  CHECK_INT(c.listen_scheme[2], REEL_LISTEN_H3);
  CHECK_STR(c.tls_cert_file, with_fixtures("@/cert.pem"));
  CHECK_STR(c.tls_key_file, with_fixtures("@/key.pem"));
  CHECK_INT(c.n_trusted_proxies, 4);
  CHECK_STR(c.trusted_proxies[3], "fd00::/8");
  CHECK_INT(c.quic_retry, 1);
  CHECK_INT(c.quic_max_streams, 100);
  reel_config_free(&c);

  CHECK_INT(load(with_fixtures(AUTH "  listen: [h3://localhost:8443, https://localhost:8443]\n"
                                    "  tls: {cert_file: @/cert.pem, key_file: @/ec-key.pem}\n"),
                 &c),
            0);
  CHECK_INT(c.listen_scheme[0], REEL_LISTEN_H3);
  reel_config_free(&c);

  CHECK_INT(load(AUTH "  listen: [localhost:65535]\n", &c), 0);
  CHECK_INT(c.n_listen, 1);
  CHECK_STR(c.listen[0], "localhost:65535");
  reel_config_free(&c);

  EXPECT_ERROR(AUTH "  listen: localhost\n",
               "reel.yaml:4: service.listen: expected HOST:PORT, http://HOST:PORT, https://HOST:PORT or "
               "h3://HOST:PORT (IPv6 as [ADDRESS]:PORT) with a port from 0 to 65535, got \"localhost\"");
  EXPECT_ERROR_PREFIX(AUTH "  listen: 127.0.0.1:65536\n", "reel.yaml:4: service.listen: expected HOST:PORT");
  EXPECT_ERROR_PREFIX(AUTH "  listen: ':8000'\n", "reel.yaml:4: service.listen: expected HOST:PORT");
  EXPECT_ERROR_PREFIX(AUTH "  listen: '127.0.0.1:'\n", "reel.yaml:4: service.listen: expected HOST:PORT");
  EXPECT_ERROR_PREFIX(AUTH "  listen: 127.0.0.1:80/x\n", "reel.yaml:4: service.listen: expected HOST:PORT");
  EXPECT_ERROR_PREFIX(AUTH "  listen: '[::1]8000'\n", "reel.yaml:4: service.listen: expected HOST:PORT");
  EXPECT_ERROR(AUTH "  listen: [http://127.0.0.1:80, https://0.0.0.0:443]\n",
               "reel.yaml:4: service.listen: https://0.0.0.0:443 needs service.tls.cert_file and "
               "service.tls.key_file (PEM files; scripts/dev-cert.sh makes a development pair)");
  EXPECT_ERROR_PREFIX(with_fixtures(AUTH "  listen:\n    - 127.0.0.1:80\n    - h3://0.0.0.0:443\n  tls: {cert_file: @/cert.pem}\n"),
                      "reel.yaml:6: service.listen: h3://0.0.0.0:443 needs service.tls.cert_file");
  EXPECT_ERROR_PREFIX(AUTH "  listen: ftp://0.0.0.0:21\n", "reel.yaml:4: service.listen: expected HOST:PORT");
  EXPECT_ERROR(AUTH "  trusted_proxies: 10.0.0.1\n",
               "reel.yaml:4: service.trusted_proxies: expected a list of proxy addresses or networks, such as "
               "[127.0.0.1, 10.0.0.0/8], got a single value (write it as [address])");
  EXPECT_ERROR(AUTH "  trusted_proxies: [10.0.0.0/33]\n",
               "reel.yaml:4: service.trusted_proxies[0]: expected an IP address (10.0.0.5, ::1) or a CIDR "
               "network (10.0.0.0/8, fd00::/8), got \"10.0.0.0/33\"");
  EXPECT_ERROR_PREFIX(AUTH "  trusted_proxies: [proxy.local]\n", "reel.yaml:4: service.trusted_proxies[0]: expected an IP");
  EXPECT_ERROR_PREFIX(AUTH "  listen:\n    - 127.0.0.1:8000\n    - nope\n",
                      "reel.yaml:6: service.listen[1]: expected HOST:PORT");
  EXPECT_ERROR(AUTH "  listen: 8000\n",
               "reel.yaml:4: service.listen: expected HOST:PORT, got \"8000\" (write 127.0.0.1:8000 for "
               "this machine only, 0.0.0.0:8000 for all interfaces)");
  EXPECT_ERROR(AUTH "  listen: []\n",
               "reel.yaml:4: service.listen: needs at least one address, such as 127.0.0.1:8000");
  EXPECT_ERROR(AUTH "  listen: [a:1, a:2, a:3, a:4, a:5, a:6, a:7, a:8, a:9]\n",
               "reel.yaml:4: service.listen: at most 8 addresses are allowed, got 9");
}

static void test_error_lines_and_keys(void) {
  /* The example from config.h, line for line. */
  EXPECT_ERROR("# reel\n"
               "service:\n"
               "  listen: 127.0.0.1:8000\n"
               "  auth:\n"
               "    tokens: [change-me]\n"
               "\n"
               "  workers: many\n",
               "reel.yaml:7: service.workers: expected an integer from 0 to 256, got \"many\"");
  /* unknown keys: a near miss gets a suggestion, anything else the list */
  EXPECT_ERROR(AUTH "  wrokers: 4\n", "reel.yaml:4: service.wrokers: unknown key (did you mean workers?)");
  EXPECT_ERROR_PREFIX(AUTH "  colour: blue\n",
                      "reel.yaml:4: service.colour: unknown key (known keys: listen, data_dir, mode, auth, tls, "
                      "trusted_proxies, quic, workers,");
  EXPECT_ERROR(AUTH "  tls:\n    cert: a.pem\n", "reel.yaml:5: service.tls.cert: unknown key (known keys: cert_file, key_file)");
  EXPECT_ERROR("service:\n  auth:\n    tokens: [x]\n    users: [y]\n",
               "reel.yaml:4: service.auth.users: unknown key (known keys: tokens)");
  EXPECT_ERROR(AUTH "  database:\n    engine: sqlite\n",
               "reel.yaml:5: service.database.engine: unknown key (known keys: backend, path, url, password_file)");
  EXPECT_ERROR(AUTH "workers: 3\n",
               "reel.yaml:4: workers: unknown key (did you mean service.workers? reel's own settings go under service:)");
  EXPECT_ERROR(AUTH "prompt: a cat\n",
               "reel.yaml:4: prompt: unknown key (did you mean pipeline.prompt? pipeline settings go under pipeline:)");
  EXPECT_ERROR(AUTH "extras: 1\n", "reel.yaml:4: extras: unknown key (known keys: service, pipeline)");
  EXPECT_ERROR(AUTH "pipeline:\n  colour: red\n",
               "reel.yaml:5: pipeline.colour: unknown key (known keys: prompt, default_backend, command, "
               "generation_mode, image_generation_model, image_size, size, segment_duration_seconds, "
               "output_dir, base_seed, parallel_segments, fps, max_scenes, burn_captions, voice, google_veo, "
               "runway_ml, minimax, remote_api, openai, comfyui, replicate, gcs, backends)");
  EXPECT_ERROR(AUTH "pipeline:\n  promt: a cat\n", "reel.yaml:5: pipeline.promt: unknown key (did you mean prompt?)");
  EXPECT_ERROR(AUTH "  auth.tokens: [x]\n",
               "reel.yaml:4: service.auth.tokens: unknown key (dotted keys are not expanded: put each part on "
               "its own indented line)");

  /* wrong types */
  EXPECT_ERROR(AUTH "  workers: 2.5\n", "reel.yaml:4: service.workers: expected an integer from 0 to 256, got \"2.5\"");
  EXPECT_ERROR(AUTH "  workers: '2'\n",
               "reel.yaml:4: service.workers: expected an integer from 0 to 256, got the string \"2\" (write it "
               "without quotes)");
  EXPECT_ERROR(AUTH "  workers: [1]\n", "reel.yaml:4: service.workers: expected an integer from 0 to 256, got a list");
  EXPECT_ERROR(AUTH "  keep_failed_workspaces: maybe\n",
               "reel.yaml:4: service.keep_failed_workspaces: expected true or false, got \"maybe\"");
  EXPECT_ERROR(AUTH "  job_timeout_seconds: soon\n",
               "reel.yaml:4: service.job_timeout_seconds: expected a number of seconds > 0, got \"soon\"");
  EXPECT_ERROR(AUTH "  data_dir: {a: 1}\n", "reel.yaml:4: service.data_dir: expected a string, got a mapping");
  EXPECT_ERROR(AUTH "  data_dir: ''\n",
               "reel.yaml:4: service.data_dir: must not be empty (remove the key to use the default)");
  EXPECT_ERROR("service: 5\n", "reel.yaml:1: service: expected a mapping (keys indented below it), got \"5\"");
  EXPECT_ERROR(AUTH "  database: sqlite\n",
               "reel.yaml:4: service.database: expected a mapping (keys indented below it), got \"sqlite\"");
  EXPECT_ERROR("- service\n", "reel.yaml:1: expected a mapping with service: and pipeline: sections, got a list");

  /* out of range */
  EXPECT_ERROR(AUTH "  workers: 257\n", "reel.yaml:4: service.workers: expected an integer from 0 to 256, got \"257\"");
  EXPECT_ERROR(AUTH "  workers: -1\n", "reel.yaml:4: service.workers: expected an integer from 0 to 256, got \"-1\"");
  EXPECT_ERROR(AUTH "  workers: 99999999999999999999\n",
               "reel.yaml:4: service.workers: expected an integer from 0 to 256, got \"99999999999999999999\"");
  EXPECT_ERROR(AUTH "  max_queue_depth: 0\n", "reel.yaml:4: service.max_queue_depth: expected an integer >= 1, got \"0\"");
  EXPECT_ERROR(AUTH "  max_body_bytes: 1023\n", "reel.yaml:4: service.max_body_bytes: expected an integer >= 1024, got \"1023\"");
  EXPECT_ERROR(AUTH "  artifact_url_ttl_seconds: 59\n",
               "reel.yaml:4: service.artifact_url_ttl_seconds: expected an integer from 60 to 604800, got \"59\"");
  EXPECT_ERROR(AUTH "  retry_base_seconds: 0\n",
               "reel.yaml:4: service.retry_base_seconds: expected a number of seconds > 0, got \"0\"");
  EXPECT_ERROR(AUTH "  cancel_grace_seconds: 3600.5\n",
               "reel.yaml:4: service.cancel_grace_seconds: expected a number of seconds from 0 to 3600, got \"3600.5\"");
  EXPECT_ERROR(AUTH "  retry_base_seconds: 10\n  retry_max_seconds: 5\n",
               "reel.yaml:5: service.retry_max_seconds: must be at least service.retry_base_seconds (10), got 5");
  EXPECT_ERROR(AUTH "  retry_base_seconds: 400\n",
               "reel.yaml:4: service.retry_max_seconds: must be at least service.retry_base_seconds (400), got 300");

  /* choices */
  EXPECT_ERROR(AUTH "  mode: all\n", "reel.yaml:4: service.mode: expected api, worker or both, got \"all\"");
  EXPECT_ERROR(AUTH "  log_level: verbose\n",
               "reel.yaml:4: service.log_level: expected debug, info, warn or error, got \"verbose\"");
  EXPECT_ERROR(AUTH "  public_base_url: reel.example.com\n",
               "reel.yaml:4: service.public_base_url: expected a URL starting with http:// or https://, "
               "such as https://reel.example.com, got \"reel.example.com\"");

  /* duplicates */
  EXPECT_ERROR(AUTH "  workers: 1\n  workers: 2\n", "reel.yaml:5: service.workers: duplicate key (first set on line 4)");
  EXPECT_ERROR(AUTH "service: {}\n", "reel.yaml:4: service: duplicate key (first set on line 1)");
  EXPECT_ERROR(AUTH "pipeline:\n  prompt: a\n  prompt: b\n", "reel.yaml:6: pipeline.prompt: duplicate key (first set on line 5)");
  EXPECT_ERROR(AUTH "pipeline:\n  google_veo:\n    model: a\n    model: b\n",
               "reel.yaml:7: pipeline.google_veo.model: duplicate key (each key may appear once in a mapping)");
}

static void test_tokens_required(void) {
  const char *required =
      "required: add at least one bearer token, such as auth: {tokens: [a-long-random-string]}";
  char expected[256];
  snprintf(expected, sizeof expected, "reel.yaml:1: service.auth.tokens: %s", required);
  EXPECT_ERROR("service:\n  workers: 1\n", expected);
  EXPECT_ERROR("", expected);
  EXPECT_ERROR("pipeline: {}\n", expected);
  snprintf(expected, sizeof expected, "reel.yaml:3: service.auth.tokens: %s", required);
  EXPECT_ERROR("service:\n  workers: 1\n  auth: {}\n", expected);
  EXPECT_ERROR("service:\n  auth:\n    tokens: []\n",
               "reel.yaml:3: service.auth.tokens: needs at least one token (clients send it as Authorization: Bearer TOKEN)");
  EXPECT_ERROR("service:\n  auth:\n    tokens: [ok-token, '']\n",
               "reel.yaml:3: service.auth.tokens[1]: expected a non-empty token, got nothing");
  EXPECT_ERROR("service:\n  auth:\n    tokens:\n      - a b\n",
               "reel.yaml:4: service.auth.tokens[0]: a token must not contain spaces or control characters");
  EXPECT_ERROR("service:\n  auth:\n    tokens: secret-token\n",
               "reel.yaml:3: service.auth.tokens: expected a list of bearer tokens, such as "
               "[a-long-random-string], got a single value (write it as [token])");
}

static void test_backends(void) {
  EXPECT_ERROR(AUTH "  database:\n    backend: postgres\n",
               "reel.yaml:5: service.database.url: required when service.database.backend is postgres (a libpq URI "
               "such as postgresql://reel@db.internal/reel)");
  EXPECT_ERROR(AUTH "  database:\n    backend: mysql\n",
               "reel.yaml:5: service.database.backend: expected sqlite or postgres, got \"mysql\"");
  EXPECT_ERROR(AUTH "  mode: worker\n",
               "reel.yaml:4: service.mode: worker needs a job store shared by several processes: set "
               "service.database.backend to postgres (SQLite serves one process only; use mode both)");
  EXPECT_ERROR(AUTH "  node_id: ''\n", "reel.yaml:4: service.node_id: must not be empty (remove the key to use the default)");
  EXPECT_ERROR(AUTH "  lease_seconds: 1\n",
               "reel.yaml:4: service.lease_seconds: expected an integer from 2 to 3600, got \"1\"");
  EXPECT_ERROR(AUTH "  storage:\n    backend: azure\n",
               "reel.yaml:5: service.storage.backend: expected local, s3 or gcs, got \"azure\"");
  EXPECT_ERROR(AUTH "  storage:\n    backend: gcs\n",
               "reel.yaml:5: service.storage.bucket: required when service.storage.backend is gcs");
  EXPECT_ERROR(AUTH "  storage:\n    backend: gcs\n    bucket: b\n",
               "reel.yaml:5: service.storage.credentials_file: required when service.storage.backend is gcs");
  EXPECT_ERROR(AUTH "  storage:\n    backend: s3\n",
               "reel.yaml:5: service.storage.bucket: required when service.storage.backend is s3");
  EXPECT_ERROR(AUTH "  storage:\n    backend: s3\n    bucket: b\n    access_key_id: AKIA\n",
               "reel.yaml:5: service.storage.secret_access_key: required when service.storage.backend is s3");
  EXPECT_ERROR(AUTH "pipeline:\n  default_backend: veo\n",
               "reel.yaml:5: pipeline.default_backend: expected local or command, got \"veo\"");
  EXPECT_ERROR(AUTH "pipeline:\n  prompt: a cat\n  default_backend: command\n",
               "reel.yaml:6: pipeline.command: required when pipeline.default_backend is command "
               "(such as command: [python3, pipeline.py])");
  EXPECT_ERROR(AUTH "pipeline:\n  default_backend: command\n  command: []\n",
               "reel.yaml:6: pipeline.command: must name a program to run, such as [python3, pipeline.py]");
  EXPECT_ERROR(AUTH "pipeline:\n  command: '   '\n",
               "reel.yaml:5: pipeline.command: must name a program to run, such as [python3, pipeline.py]");
  EXPECT_ERROR(AUTH "pipeline:\n  command: [python3, [x]]\n",
               "reel.yaml:5: pipeline.command[1]: expected a non-empty word, got a list");

  reel_config c;
  CHECK_INT(load(AUTH "pipeline:\n  default_backend: command\n  command: [python3, pipeline.py, --seed, 5]\n", &c), 0);
  CHECK_STR(c.default_backend, "command");
  CHECK_INT(c.command_argc, 4);
  CHECK_STR(c.command_argv[0], "python3");
  CHECK_STR(c.command_argv[3], "5"); /* a number is a word as written */
  CHECK(c.command_argv[4] == NULL);
  reel_config_free(&c);

  CHECK_INT(load(AUTH "pipeline:\n  default_backend: command\n  command: \"  python3\\tpipeline.py  --config  x.yaml \"\n", &c), 0);
  CHECK_INT(c.command_argc, 4);
  CHECK_STR(c.command_argv[0], "python3");
  CHECK_STR(c.command_argv[1], "pipeline.py");
  CHECK_STR(c.command_argv[2], "--config");
  CHECK_STR(c.command_argv[3], "x.yaml");
  CHECK(c.command_argv[4] == NULL);
  CHECK_STR(json_string_value(json_object_get(c.pipeline, "command")), "  python3\tpipeline.py  --config  x.yaml ");
  reel_config_free(&c);

  CHECK_INT(load(AUTH "  storage:\n    backend: gcs\n    bucket: reel-artifacts\n    credentials_file: " GCS_KEY "\n"
                      "    signed_urls: false\n", &c), 0);
  CHECK_STR(c.storage_backend, "gcs");
  CHECK_STR(c.storage_bucket, "reel-artifacts");
  CHECK_STR(c.storage_credentials_file, GCS_KEY);
  CHECK_INT(c.storage_signed_urls, 0);
  reel_config_free(&c);
}

static void test_pipeline_section(void) {
  const char *yaml = AUTH
      "pipeline:\n"
      "  prompt: 'A cat: on a mat'\n"
      "  generation_mode: keyframe\n"
      "  size: '1280*720'\n"
      "  segment_duration_seconds: 5\n"
      "  fps: 23.976\n"
      "  base_seed: 42\n"
      "  parallel_segments: 2\n"
      "  burn_captions: true\n"
      "  output_dir: ~\n"
      "  google_veo:\n"
      "    project_id: \"123\"\n"
      "    quota: 123\n"
      "    ratio: 1.5e3\n"
      "    on: yes\n"
      "    flags: [True, FALSE, null, '', \"null\"]\n"
      "    nested: {deeper: {list: [[1, 2], {k: v}]}}\n"
      "    text: |\n"
      "      line one\n"
      "      line two\n"
      "  gcs:\n";
  reel_config c;
  CHECK_INT(load(yaml, &c), 0);
  CHECK_STR(err, "");
  json_t *expected = json_loads(
      "{\"prompt\": \"A cat: on a mat\", \"generation_mode\": \"keyframe\", \"size\": \"1280*720\","
      " \"segment_duration_seconds\": 5, \"fps\": 23.976, \"base_seed\": 42, \"parallel_segments\": 2,"
      " \"burn_captions\": true, \"output_dir\": null,"
      " \"google_veo\": {\"project_id\": \"123\", \"quota\": 123, \"ratio\": 1500.0, \"on\": \"yes\","
      "   \"flags\": [true, false, null, \"\", \"null\"],"
      "   \"nested\": {\"deeper\": {\"list\": [[1, 2], {\"k\": \"v\"}]}},"
      "   \"text\": \"line one\\nline two\\n\"},"
      " \"gcs\": null}",
      0, NULL);
  CHECK(expected != NULL);
  CHECK(json_equal(c.pipeline, expected));
  if (!json_equal(c.pipeline, expected)) {
    char *dump = json_dumps(c.pipeline, JSON_SORT_KEYS);
    fprintf(stderr, "got %s\n", dump);
    free(dump);
  }
  json_decref(expected);
  reel_config_free(&c);

  EXPECT_ERROR(AUTH "pipeline: [a]\n", "reel.yaml:4: pipeline: expected a mapping (keys indented below it), got a list");
  EXPECT_ERROR(AUTH "pipeline:\n  prompt: [a]\n", "reel.yaml:5: pipeline.prompt: expected a string, got a list");
  EXPECT_ERROR(AUTH "pipeline:\n  size: 1024\n",
               "reel.yaml:5: pipeline.size: expected a frame size \"W*H\" or \"WxH\" such as \"1280*720\" (even "
               "numbers from 16 to 7680), got \"1024\"");
  EXPECT_ERROR(AUTH "pipeline:\n  segment_duration_seconds: 0\n",
               "reel.yaml:5: pipeline.segment_duration_seconds: expected a number from 0.5 to 600, got \"0\"");
  EXPECT_ERROR(AUTH "pipeline:\n  base_seed: 1.5\n",
               "reel.yaml:5: pipeline.base_seed: expected an integer from 0 to 9007199254740991, got \"1.5\"");
  EXPECT_ERROR(AUTH "pipeline:\n  parallel_segments: 0\n",
               "reel.yaml:5: pipeline.parallel_segments: expected an integer from 1 to 64, got \"0\"");
  EXPECT_ERROR(AUTH "pipeline:\n  burn_captions: yes\n",
               "reel.yaml:5: pipeline.burn_captions: expected true or false, got \"yes\"");
  EXPECT_ERROR(AUTH "pipeline:\n  google_veo: veo-3\n",
               "reel.yaml:5: pipeline.google_veo: expected a mapping (keys indented below it), got \"veo-3\"");
  EXPECT_ERROR(AUTH "pipeline:\n  openai:\n    seed: 99999999999999999999\n",
               "reel.yaml:6: pipeline.openai.seed: integer does not fit in 64 bits (quote it to pass it as text)");
}

static void test_yaml_level_errors(void) {
  EXPECT_ERROR_PREFIX(AUTH "  workers: [1, 2\n", "reel.yaml:5: YAML syntax error: ");
  EXPECT_ERROR_PREFIX("service:\n  auth:\n    tokens: [x]\n   workers: 2\n", "reel.yaml:4: YAML syntax error: ");
  EXPECT_ERROR_PREFIX("service:\n\tworkers: 2\n", "reel.yaml:2: YAML syntax error: ");
  EXPECT_ERROR(AUTH "pipeline:\n  google_veo: &veo {a: 1}\n  gcs: *veo\n",
               "reel.yaml:5: pipeline.google_veo: anchors (&name) and aliases (*name) are not supported "
               "(write the value out in full)");
  EXPECT_ERROR(AUTH "  workers: !!int 3\n",
               "reel.yaml:4: service.workers: YAML tags such as tag:yaml.org,2002:int are not supported (remove the tag)");
  EXPECT_ERROR(AUTH "---\nservice: {}\n", "reel.yaml:4: only one YAML document is allowed per file (remove the second ---)");
  EXPECT_ERROR(AUTH "pipeline:\n  gcs:\n    ? [a]\n    : b\n",
               "reel.yaml:6: pipeline.gcs: mapping keys must be plain text, not a list or a mapping");
  EXPECT_ERROR(AUTH "  data_dir: \"a\\0b\"\n", "reel.yaml:4: service.data_dir: must not contain NUL bytes");
  EXPECT_ERROR(AUTH "  data_dir: a\x01b\n", "reel.yaml:4: YAML syntax error: control characters are not allowed");
  EXPECT_ERROR(AUTH "  data_dir: a\xc3\n", "reel.yaml:4: YAML syntax error: invalid trailing UTF-8 octet");

  /* nesting deeper than 32 levels */
  char deep[512];
  snprintf(deep, sizeof deep, AUTH "pipeline:\n  gcs: ");
  for (int i = 0; i < 40; i++) strcat(deep, "[");
  EXPECT_ERROR_PREFIX(deep, "reel.yaml:5: pipeline.gcs");
  CHECK(strstr(err, "nested more than 32 levels deep") != NULL);

  /* size cap: the call fails fast and says why */
  size_t big_length = 1024 * 1024 + 1;
  char *big = malloc(big_length);
  memset(big, '#', big_length);
  reel_config c;
  CHECK_INT(reel_config_load_string(big, big_length, "big.yaml", &c, err, sizeof err), REEL_ECONFIG);
  CHECK_STR(err, "big.yaml: the file is larger than 1024 KiB (is this the right file?)");
  free(big);

  /* a message never runs past the caller's buffer */
  char small[16];
  CHECK_INT(reel_config_load_string("x: 1\n", 5, "reel.yaml", &c, small, sizeof small), REEL_ECONFIG);
  CHECK_INT(strlen(small), 15);
}

static void test_load_from_file(void) {
  char path[] = "/tmp/reel-test-config-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  CHECK_INT(write(fd, MINIMAL, strlen(MINIMAL)), (long long)strlen(MINIMAL));
  close(fd);
  reel_config c;
  CHECK_INT(reel_config_load(path, &c, err, sizeof err), 0);
  CHECK_STR(c.path, path);
  CHECK_STR(c.tokens[0], "change-me");
  reel_config_free(&c);
  unlink(path);

  CHECK_INT(reel_config_load("no/such/reel.yaml", &c, err, sizeof err), REEL_ECONFIG);
  CHECK_STR(err, "no/such/reel.yaml: cannot open: No such file or directory");
  CHECK_INT(reel_config_load("/tmp", &c, err, sizeof err), REEL_ECONFIG);
  CHECK_STR(err, "/tmp: cannot read: Is a directory");
}

/* ---- reel_config_effective: the four cases the spec names ---------------- */

static json_t *pipeline_of(const char *yaml, reel_config *c) {
  CHECK_INT(load(yaml, c), 0);
  return c->pipeline;
}

static void test_effective_precedence(void) {
  reel_config c;
  json_t *pipeline = pipeline_of(AUTH
                                 "pipeline:\n"
                                 "  prompt: from config\n"
                                 "  size: '1280*720'\n"
                                 "  google_veo: {model: veo-3, extra: [1, 2]}\n",
                                 &c);
  json_t *before = json_deep_copy(pipeline);

  /* (a) config only */
  json_t *a = reel_config_effective(pipeline, NULL, NULL);
  CHECK(json_equal(a, pipeline));
  CHECK_STR(json_string_value(json_object_get(a, "prompt")), "from config");

  /* (b) config + CLI */
  json_t *b = reel_config_effective(pipeline, "from cli", NULL);
  CHECK_STR(json_string_value(json_object_get(b, "prompt")), "from cli");

  /* (c) config + HTTP */
  json_t *cc = reel_config_effective(pipeline, NULL, "from http");
  CHECK_STR(json_string_value(json_object_get(cc, "prompt")), "from http");

  /* (d) config + CLI + HTTP: HTTP wins */
  json_t *d = reel_config_effective(pipeline, "from cli", "from http");
  CHECK_STR(json_string_value(json_object_get(d, "prompt")), "from http");

  /* nothing but the prompt changes, in any case */
  json_t *cases[] = {a, b, cc, d};
  for (int i = 0; i < 4; i++) {
    json_t *without_prompt = json_deep_copy(cases[i]);
    json_t *original_without_prompt = json_deep_copy(pipeline);
    json_object_del(without_prompt, "prompt");
    json_object_del(original_without_prompt, "prompt");
    CHECK(json_equal(without_prompt, original_without_prompt));
    CHECK_INT(json_object_size(cases[i]), json_object_size(pipeline));
    json_decref(without_prompt);
    json_decref(original_without_prompt);
  }

  /* a deep copy: changing the result leaves the config alone */
  json_array_append_new(json_object_get(json_object_get(d, "google_veo"), "extra"), json_integer(3));
  CHECK(json_equal(pipeline, before));
  CHECK(a != pipeline);

  json_decref(a);
  json_decref(b);
  json_decref(cc);
  json_decref(d);
  json_decref(before);
  reel_config_free(&c);
}

static void test_effective_without_config_prompt(void) {
  reel_config c;
  json_t *pipeline = pipeline_of(AUTH "pipeline:\n  size: '1280*720'\n", &c);

  json_t *a = reel_config_effective(pipeline, NULL, NULL);
  CHECK(json_equal(a, pipeline));
  CHECK(json_object_get(a, "prompt") == NULL); /* absent stays absent */

  json_t *b = reel_config_effective(pipeline, "from cli", NULL);
  CHECK_STR(json_string_value(json_object_get(b, "prompt")), "from cli");
  CHECK_STR(json_string_value(json_object_get(b, "size")), "1280*720");
  CHECK_INT(json_object_size(b), 2);

  json_t *cc = reel_config_effective(pipeline, NULL, "from http");
  CHECK_STR(json_string_value(json_object_get(cc, "prompt")), "from http");

  json_t *d = reel_config_effective(pipeline, "from cli", "from http");
  CHECK_STR(json_string_value(json_object_get(d, "prompt")), "from http");
  CHECK_INT(json_object_size(d), 2);

  /* an empty override is still an override */
  json_t *e = reel_config_effective(pipeline, "from cli", "");
  CHECK_STR(json_string_value(json_object_get(e, "prompt")), "");

  /* no pipeline at all */
  json_t *f = reel_config_effective(NULL, NULL, "only http");
  CHECK_STR(json_string_value(json_object_get(f, "prompt")), "only http");
  CHECK_INT(json_object_size(f), 1);

  /* a prompt that is not UTF-8 is refused, not passed on */
  CHECK(reel_config_effective(pipeline, "bad \xff byte", NULL) == NULL);

  CHECK_INT(json_object_size(pipeline), 1); /* the config never changes */
  json_t *to_free[] = {a, b, cc, d, e, f};
  for (int i = 0; i < 6; i++) json_decref(to_free[i]);
  reel_config_free(&c);
}

/* ---- reel_config_to_yaml: any string survives a round trip ---------------- */

/* Parses YAML written by reel_config_to_yaml back through the loader, as the
 * body of a pipeline: section. */
static json_t *read_back(const char *yaml) {
  size_t size = strlen(yaml) * 2 + 256;
  char *document = malloc(size);
  strcpy(document, AUTH "pipeline:\n");
  size_t used = strlen(document);
  for (const char *line = yaml; *line;) {
    const char *end = strchr(line, '\n');
    size_t length = end ? (size_t)(end - line) : strlen(line);
    used += (size_t)snprintf(document + used, size - used, "  %.*s\n", (int)length, line);
    line += length + (end ? 1 : 0);
  }
  reel_config c;
  json_t *result = NULL;
  if (load(document, &c) == 0) {
    result = json_incref(c.pipeline);
    reel_config_free(&c);
  } else {
    fprintf(stderr, "read_back: %s\n--- document ---\n%s", err, document);
  }
  free(document);
  return result;
}

static void test_yaml_round_trip(void) {
  static const char *const hostile[] = {
      "He said \"hi\": yes",
      "key: value",
      "line one\nline two\n",
      "\n\nleading newlines",
      "trailing spaces   ",
      "   leading spaces",
      "%{job_id} and {{ template }}",
      "{[&*!|>'\"%@`]}",
      "# not a comment",
      "- not a list",
      "? not a key",
      "--- not a document",
      "...",
      "emoji 🎬🎥 and a ZWJ family 👩‍👩‍👧",
      "日本語のテキスト、中文文本、한국어",
      "null", "~", "true", "no", "123", "1.5", "0x1F", "1e3", ".inf", "",
      "tab\there",
      "back\\slash \\n not a newline",
      "crlf\r\nline",
      "control \x01\x02\x1b[31m red",
      "delete \x7f",
      "line separator \xe2\x80\xa8 and next line \xc2\x85 and BOM \xef\xbb\xbf",
      "'single' and \"double\" quotes",
      "!tag-looking", "&anchor-looking", "*alias-looking",
  };
  json_t *object = json_object();
  json_t *veo = json_object();
  json_t *list = json_array();
  json_object_set_new(object, "prompt", json_string("A \"quoted\": prompt\nwith: %{everything} 🎬"));
  json_object_set_new(object, "google_veo", veo);
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    char key[32];
    snprintf(key, sizeof key, "value_%zu", i);
    json_object_set_new(veo, key, json_string(hostile[i]));
    json_object_set_new(veo, hostile[i], json_integer((json_int_t)i)); /* as keys too */
    json_array_append_new(list, json_string(hostile[i]));
  }
  json_object_set_new(veo, "nul", json_stringn("a\0b", 3));
  char long_text[20001];
  for (size_t i = 0; i < sizeof long_text - 1; i++) long_text[i] = "word "[i % 5];
  long_text[sizeof long_text - 1] = '\0';
  json_object_set_new(veo, "long", json_string(long_text));
  json_object_set_new(veo, long_text + 19800, json_true()); /* a 200-character key */
  json_object_set_new(veo, "list", list);
  json_object_set_new(veo, "numbers",
                      json_pack("[I, I, I, f, f, f, f, f, f]", (json_int_t)0, (json_int_t)LLONG_MAX,
                                (json_int_t)LLONG_MIN, 0.1, 1.0, -2.5e-8, 1e300, 5e-324, 123456789.125));
  json_object_set_new(veo, "others", json_pack("[b, b, n, {}, []]", 1, 0));
  json_object_set_new(object, "backends", json_pack("{s: {s: [{s: s}]}}", "a", "b", "c", "d"));

  char *yaml = reel_config_to_yaml(object);
  CHECK(yaml != NULL);
  if (!yaml) return;
  CHECK(strncmp(yaml, "prompt: \"A \\\"quoted\\\": prompt\\nwith: %{everything} 🎬\"\n", 40) == 0);
  json_t *back = read_back(yaml);
  CHECK(back != NULL);
  CHECK(json_equal(back, object));
  if (back && !json_equal(back, object)) {
    char *got = json_dumps(back, JSON_SORT_KEYS), *want = json_dumps(object, JSON_SORT_KEYS);
    fprintf(stderr, "yaml:\n%s\ngot  %s\nwant %s\n", yaml, got, want);
    free(got);
    free(want);
  }
  free(yaml);
  json_decref(back);

  /* the effective config of a hostile HTTP prompt survives too */
  json_t *effective = reel_config_effective(object, "cli", hostile[2]);
  yaml = reel_config_to_yaml(effective);
  back = read_back(yaml);
  CHECK(json_equal(back, effective));
  CHECK_STR(json_string_value(json_object_get(back, "prompt")), hostile[2]);
  free(yaml);
  json_decref(back);
  json_decref(effective);
  json_decref(object);

  /* an empty object */
  json_t *empty = json_object();
  yaml = reel_config_to_yaml(empty);
  CHECK_STR(yaml, "{}\n");
  free(yaml);
  json_decref(empty);
}

/* ---- Messages for the mistakes a new user makes: one line each ---------- */

static const struct {
  const char *yaml, *expected;
} message_cases[] = {
    /* values reeld or the renderer would refuse later, refused at start with line and key */
    {AUTH "pipeline:\n  size: \"1280 by 720\"\n",
     "reel.yaml:5: pipeline.size: expected a frame size \"W*H\" or \"WxH\" such as \"1280*720\" (even numbers "
     "from 16 to 7680), got the string \"1280 by 720\""},
    {AUTH "pipeline:\n  size: 1281x720\n",
     "reel.yaml:5: pipeline.size: expected a frame size \"W*H\" or \"WxH\" such as \"1280*720\" (even numbers "
     "from 16 to 7680), got \"1281x720\""},
    {AUTH "pipeline:\n  image_size: 8000*8000\n",
     "reel.yaml:5: pipeline.image_size: expected a frame size \"W*H\" or \"WxH\" such as \"1280*720\" (even "
     "numbers from 16 to 7680), got \"8000*8000\""},
    {AUTH "pipeline:\n  fps: 500\n", "reel.yaml:5: pipeline.fps: expected a number from 1 to 120, got \"500\""},
    {AUTH "pipeline:\n  fps: 0.5\n", "reel.yaml:5: pipeline.fps: expected a number from 1 to 120, got \"0.5\""},
    {AUTH "pipeline:\n  fps: \"24\"\n",
     "reel.yaml:5: pipeline.fps: expected a number from 1 to 120, got the string \"24\" (write it without quotes)"},
    {AUTH "pipeline:\n  segment_duration_seconds: 601\n",
     "reel.yaml:5: pipeline.segment_duration_seconds: expected a number from 0.5 to 600, got \"601\""},
    {AUTH "pipeline:\n  max_scenes: 201\n",
     "reel.yaml:5: pipeline.max_scenes: expected an integer from 1 to 200, got \"201\""},
    {AUTH "pipeline:\n  parallel_segments: 65\n",
     "reel.yaml:5: pipeline.parallel_segments: expected an integer from 1 to 64, got \"65\""},
    {AUTH "pipeline:\n  base_seed: -1\n",
     "reel.yaml:5: pipeline.base_seed: expected an integer from 0 to 9007199254740991, got \"-1\""},
    {AUTH "pipeline:\n  burn_captions: 'true'\n",
     "reel.yaml:5: pipeline.burn_captions: expected true or false, got the string \"true\" (write it without "
     "quotes)"},
    {AUTH "pipeline:\n  voice: english please\n",
     "reel.yaml:5: pipeline.voice: expected an espeak-ng voice name such as en-us, fr or de (letters, digits, -, "
     "+, _ and /), got \"english please\""},
    {AUTH "pipeline:\n  prompt: 1234\n", "reel.yaml:5: pipeline.prompt: expected a string, got \"1234\" (put it in quotes)"},
    {AUTH "  max_prompt_chars: 5\npipeline:\n  prompt: a lighthouse\n",
     "reel.yaml:6: pipeline.prompt: has 12 characters; service.max_prompt_chars allows at most 5"},
    /* files reeld reads must be there now */
    {AUTH "  tls:\n    cert_file: @/missing.pem\n    key_file: @/key.pem\n",
     "reel.yaml:5: service.tls.cert_file: cannot use @/missing.pem: No such file or directory (relative paths are "
     "relative to reeld's working directory)"},
    {AUTH "  tls:\n    cert_file: @/cert.pem\n    key_file: @/docs\n",
     "reel.yaml:6: service.tls.key_file: @/docs is not a regular file"},
    {AUTH "  tls:\n    cert_file: @/notes.txt\n",
     "reel.yaml:5: service.tls.cert_file: @/notes.txt holds no PEM certificate (a \"-----BEGIN CERTIFICATE-----\" "
     "block; scripts/dev-cert.sh makes a development pair)"},
    {AUTH "  tls:\n    cert_file: @/cert.pem\n    key_file: @/cert.pem\n",
     "reel.yaml:6: service.tls.key_file: @/cert.pem holds no PEM private key (a \"-----BEGIN ... PRIVATE KEY-----\" "
     "block)"},
    {AUTH "  docs_dir: @/nothing-here\n",
     "reel.yaml:4: service.docs_dir: cannot use @/nothing-here: No such file or directory (relative paths are "
     "relative to reeld's working directory)"},
    {AUTH "  docs_dir: @/cert.pem\n", "reel.yaml:4: service.docs_dir: @/cert.pem is not a directory"},
    {AUTH "  storage:\n    backend: gcs\n    bucket: b\n    credentials_file: @/cert.pem\n",
     "reel.yaml:7: service.storage.credentials_file: @/cert.pem is not a usable service-account key: "},
    {AUTH "  storage:\n    endpoint: s3.example.com\n",
     "reel.yaml:5: service.storage.endpoint: expected a URL starting with http:// or https://, such as "
     "https://reel.example.com, got \"s3.example.com\""},
    {AUTH "  data_dir: @/cert.pem\n", "reel.yaml:4: service.data_dir: @/cert.pem exists but is not a directory"},
    {AUTH "  data_dir: @/var\n", "reel.yaml:4: service.data_dir: @/var/reel.db is a directory, not a database file"},
    {AUTH "  storage:\n    path: @/notes.txt\n",
     "reel.yaml:5: service.storage.path: @/notes.txt exists but is not a directory"},
    /* a number or a boolean written as a string */
    {AUTH "  workers: \"2\"\n",
     "reel.yaml:4: service.workers: expected an integer from 0 to 256, got the string \"2\" (write it without "
     "quotes)"},
    {AUTH "  workers: \"300\"\n", "reel.yaml:4: service.workers: expected an integer from 0 to 256, got the string \"300\""},
    {AUTH "  workers: \"many\"\n", "reel.yaml:4: service.workers: expected an integer from 0 to 256, got the string \"many\""},
    {AUTH "  max_body_bytes: '2048'\n",
     "reel.yaml:4: service.max_body_bytes: expected an integer >= 1024, got the string \"2048\" (write it without "
     "quotes)"},
    {AUTH "  job_timeout_seconds: \"1.5\"\n",
     "reel.yaml:4: service.job_timeout_seconds: expected a number of seconds > 0, got the string \"1.5\" (write it "
     "without quotes)"},
    {AUTH "  keep_failed_workspaces: \"yes\"\n",
     "reel.yaml:4: service.keep_failed_workspaces: expected true or false, got the string \"yes\" (write it without "
     "quotes)"},
    /* a known key under the wrong section */
    {"service:\n  auth: {}\n  tokens: [x]\n",
     "reel.yaml:3: service.tokens: unknown key (did you mean service.auth.tokens? check its indentation)"},
    {AUTH "  cert_file: cert.pem\n",
     "reel.yaml:4: service.cert_file: unknown key (did you mean service.tls.cert_file? check its indentation)"},
    {AUTH "  bucket: b\n", "reel.yaml:4: service.bucket: unknown key (did you mean service.storage.bucket? check its "
                           "indentation)"},
    {AUTH "  path: x\n",
     "reel.yaml:4: service.path: unknown key (did you mean service.database.path or service.storage.path? check "
     "its indentation)"},
    {AUTH "  fps: 24\n", "reel.yaml:4: service.fps: unknown key (did you mean pipeline.fps? check its indentation)"},
    {AUTH "pipeline:\n  workers: 2\n",
     "reel.yaml:5: pipeline.workers: unknown key (did you mean service.workers? check its indentation)"},
    {AUTH "  storage:\n    workers: 2\n",
     "reel.yaml:5: service.storage.workers: unknown key (did you mean service.workers? check its indentation)"},
    {AUTH "  auth:\n    token: [x]\n", "reel.yaml:4: service.auth: duplicate key (first set on line 2)"},
    {"service:\n  auth:\n    token: [x]\n", "reel.yaml:3: service.auth.token: unknown key (did you mean tokens?)"},
    {AUTH "tokens: [x]\n", "reel.yaml:4: tokens: unknown key (did you mean service.auth.tokens? check its indentation)"},
    {AUTH "  tls:\n    key_fil: k.pem\n", "reel.yaml:5: service.tls.key_fil: unknown key (did you mean key_file?)"},
};

static void test_message_table(void) {
  for (size_t i = 0; i < sizeof message_cases / sizeof *message_cases; i++) {
    const char *yaml = with_fixtures(message_cases[i].yaml);
    const char *expected = with_fixtures(message_cases[i].expected);
    reel_config c;
    int rc = load(yaml, &c);
    CHECK_INT(rc, REEL_ECONFIG);
    /* a case ending in ": " is a prefix (the rest comes from a library) */
    size_t length = strlen(expected);
    int prefix = length > 2 && strcmp(expected + length - 2, ": ") == 0;
    int matches = prefix ? strncmp(err, expected, length) == 0 : strcmp(err, expected) == 0;
    if (!matches) fprintf(stderr, "case %zu: %s\n  got:      %s\n  expected: %s\n", i, yaml, err, expected);
    CHECK(matches);
    reel_config_free(&c);
  }
  if (geteuid() != 0) { /* root reads any file */
    EXPECT_ERROR_PREFIX(with_fixtures(AUTH "  tls:\n    cert_file: @/unreadable.pem\n"),
                        with_fixtures("reel.yaml:5: service.tls.cert_file: cannot read @/unreadable.pem: "));
  }
  /* what is right is still accepted */
  reel_config c;
  CHECK_INT(load(with_fixtures(AUTH "  docs_dir: @/docs\n  tls: {cert_file: @/cert.pem, key_file: @/ec-key.pem}\n"
                                    "  storage:\n    backend: gcs\n    bucket: b\n    credentials_file: " GCS_KEY "\n"
                                    "pipeline:\n  size: 640x360\n  image_size: '1920*1080'\n  fps: 23.976\n"
                                    "  voice: en-us\n  max_scenes: 200\n  base_seed: 9007199254740991\n"),
                 &c),
            0);
  CHECK_STR(err, "");
  reel_config_free(&c);
}

/* Every value the loader accepts for a renderer key, the renderer accepts, and
 * the values just outside the loader's bounds the renderer refuses too. */
static void test_renderer_agrees_on_bounds(void) {
  static const struct {
    const char *key, *value;
    int valid;
  } cases[] = {
      {"size", "'16*16'", 1},         {"size", "'7680x7680'", 1},   {"size", "'14*16'", 0},
      {"size", "'7682*16'", 0},       {"size", "'17*16'", 0},       {"image_size", "'16x7680'", 1},
      {"image_size", "'1280 720'", 0}, {"fps", "1", 1},              {"fps", "120", 1},
      {"fps", "0.99", 0},             {"fps", "120.5", 0},          {"segment_duration_seconds", "0.5", 1},
      {"segment_duration_seconds", "600", 1}, {"segment_duration_seconds", "0.49", 0},
      {"segment_duration_seconds", "600.01", 0}, {"max_scenes", "1", 1}, {"max_scenes", "200", 1},
      {"max_scenes", "0", 0},         {"max_scenes", "201", 0},     {"base_seed", "0", 1},
      {"base_seed", "9007199254740991", 1}, {"base_seed", "-1", 0}, {"base_seed", "9007199254740992", 0},
      {"parallel_segments", "1", 1},  {"parallel_segments", "64", 1}, {"parallel_segments", "0", 0},
      {"parallel_segments", "65", 0}, {"burn_captions", "true", 1}, {"burn_captions", "'yes'", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char yaml[256];
    snprintf(yaml, sizeof yaml, AUTH "pipeline:\n  prompt: a cat\n  %s: %s\n", cases[i].key, cases[i].value);
    reel_config c;
    int loaded = load(yaml, &c) == 0;
    if (loaded != cases[i].valid) fprintf(stderr, "bounds case %zu (%s: %s): %s\n", i, cases[i].key, cases[i].value, err);
    CHECK_INT(loaded, cases[i].valid);
    if (loaded) {
      reel_render_options o;
      char why[256] = "";
      int rendered = reel_render_options_from_json(c.pipeline, &o, why, sizeof why) == 0;
      if (!rendered) fprintf(stderr, "the renderer refuses %s: %s: %s\n", cases[i].key, cases[i].value, why);
      CHECK(rendered);
      if (rendered) reel_render_options_free(&o);
      reel_config_free(&c);
    } else {
      /* the same value as JSON, straight to the renderer, is refused there too */
      json_t *pipeline = json_pack("{s:s}", "prompt", "a cat");
      const char *v = cases[i].value;
      json_t *value = v[0] == '\'' ? json_stringn(v + 1, strlen(v) - 2) : json_loads(v, JSON_DECODE_ANY, NULL);
      CHECK(value != NULL);
      json_object_set_new(pipeline, cases[i].key, value);
      reel_render_options o;
      char why[256];
      int rendered = reel_render_options_from_json(pipeline, &o, why, sizeof why) == 0;
      if (rendered) {
        fprintf(stderr, "the renderer accepts %s: %s that the loader refuses\n", cases[i].key, v);
        reel_render_options_free(&o);
      }
      CHECK(!rendered);
      json_decref(pipeline);
    }
  }
}

int main(void) {
  make_fixtures();
  test_minimal_file_has_every_default();
  test_every_service_key_can_be_set();
  test_derived_defaults();
  test_listen_forms();
  test_error_lines_and_keys();
  test_tokens_required();
  test_backends();
  test_pipeline_section();
  test_yaml_level_errors();
  test_load_from_file();
  test_effective_precedence();
  test_effective_without_config_prompt();
  test_yaml_round_trip();
  test_message_table();
  test_renderer_agrees_on_bounds();
  remove_fixtures();
  return check_report();
}
