/* Loads reel.yaml into a reel_config and refuses anything it does not
 * understand, naming file, line and key, so an operator learns about a typo at
 * start-up rather than from a job that misbehaves. Every key is declared once,
 * in service_keys[] and pipeline_keys[] below; the code that reads, checks,
 * defaults and frees values works from those tables. The YAML itself is parsed
 * by yaml_tree.c. */
#include "config/config.h"

#include "events/hub.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/error.h"
#include "config/yaml_tree.h"
#include "render/options.h"
#include "storage/gcs_sign.h"

#define DEFAULT_LISTEN "127.0.0.1:8000"
#define NO_MAXIMUM (-1.0) /* only the field's C type limits the value */
#define PATH_SIZE 256     /* dotted key paths in messages, e.g. "pipeline.google_veo.model" */
#define SHOWN_VALUE_CHARS 40

/* ---- The service: keys ------------------------------------------------- */

typedef enum {
  VALUE_SECTION, /* a mapping of further keys, declared below it in the table */
  VALUE_STRING,  /* char *: any scalar, kept as written */
  VALUE_CHOICE,  /* char *: one of `choices` */
  VALUE_URL,     /* char *: http:// or https:// URL, trailing slash removed */
  VALUE_INT,     /* int: a plain integer within bounds */
  VALUE_SIZE,    /* size_t: a plain integer within bounds */
  VALUE_SECONDS, /* double: an integer or a decimal number within bounds */
  VALUE_BOOLEAN, /* int: true/false/yes/no */
  VALUE_LISTEN,  /* listen[]/n_listen: one address or a list of them */
  VALUE_TOKENS,  /* tokens[]/n_tokens: a list of bearer tokens */
  VALUE_PROXIES, /* trusted_proxies[]/n_trusted_proxies: IP addresses or CIDR networks */
  VALUE_WEBHOOKS, /* webhooks[]/n_webhooks: {url, secret, events, retry_schedule_seconds} */
  VALUE_FILE,    /* char *: a file reeld reads, which must exist and be readable now */
  VALUE_DIRECTORY, /* char *: a directory reeld reads, which must exist now */
} value_type;

/* What a VALUE_FILE must contain, checked when the config is loaded. */
typedef enum {
  FILE_ANY,
  FILE_PEM_CERTIFICATE, /* a PEM certificate chain */
  FILE_PEM_KEY,         /* a PEM private key */
  FILE_GCS_KEY,         /* a Google service-account JSON key */
} file_content;

typedef struct {
  const char *name; /* the full dotted key, "service.workers" */
  value_type type;
  size_t offset; /* of the field in reel_config */
  const char *default_text;
  double default_number;
  double minimum;
  double maximum;        /* inclusive, or NO_MAXIMUM */
  int above_minimum;     /* the value must be > minimum rather than >= */
  const char *choices;   /* VALUE_CHOICE: "api|worker|both" */
  const char *not_yet;   /* VALUE_CHOICE: planned values that are refused for now */
  int may_be_empty;      /* VALUE_STRING: "" is a meaningful value */
  int secret;            /* never repeat the value in a message */
  file_content content;  /* VALUE_FILE */
} service_key;

#define FIELD(field) offsetof(reel_config, field)
#define SECTION(key) {.name = key, .type = VALUE_SECTION}
#define STRING(key, field, default_value) \
  {.name = key, .type = VALUE_STRING, .offset = FIELD(field), .default_text = default_value}
#define CHOICE(key, field, default_value, allowed, planned)                                     \
  {.name = key, .type = VALUE_CHOICE, .offset = FIELD(field), .default_text = default_value, \
   .choices = allowed, .not_yet = planned}
#define INTEGER(key, field, default_value, low, high)                                         \
  {.name = key, .type = VALUE_INT, .offset = FIELD(field), .default_number = default_value, \
   .minimum = low, .maximum = high}
#define SIZE(key, field, default_value, low, high)                                             \
  {.name = key, .type = VALUE_SIZE, .offset = FIELD(field), .default_number = default_value, \
   .minimum = low, .maximum = high}
#define SECONDS(key, field, default_value, low, high, above)                                     \
  {.name = key, .type = VALUE_SECONDS, .offset = FIELD(field), .default_number = default_value, \
   .minimum = low, .maximum = high, .above_minimum = above}
#define FILE_PATH(key, field, what) {.name = key, .type = VALUE_FILE, .offset = FIELD(field), .content = what}
#define BOOLEAN(key, field, default_value) \
  {.name = key, .type = VALUE_BOOLEAN, .offset = FIELD(field), .default_number = default_value}

static const service_key service_keys[] = {
    {.name = "service.listen", .type = VALUE_LISTEN},
    STRING("service.data_dir", data_dir, "./var"),
    CHOICE("service.mode", mode, "both", "api|worker|both", NULL),
    SECTION("service.auth"),
    {.name = "service.auth.tokens", .type = VALUE_TOKENS, .secret = 1},
    SECTION("service.tls"),
    FILE_PATH("service.tls.cert_file", tls_cert_file, FILE_PEM_CERTIFICATE),
    FILE_PATH("service.tls.key_file", tls_key_file, FILE_PEM_KEY),
    {.name = "service.trusted_proxies", .type = VALUE_PROXIES},
    SECTION("service.quic"),
    BOOLEAN("service.quic.retry", quic_retry, 1),
    INTEGER("service.quic.max_streams", quic_max_streams, 100, 1, 10000),
    SECONDS("service.quic.handshake_timeout_seconds", quic_handshake_timeout_seconds, 10, 0, 600, 1),
    INTEGER("service.workers", workers, 2, 0, 256),
    INTEGER("service.max_queue_depth", max_queue_depth, 1000, 1, NO_MAXIMUM),
    INTEGER("service.max_attempts", max_attempts, 3, 1, 100),
    SECONDS("service.retry_base_seconds", retry_base_seconds, 1.0, 0, NO_MAXIMUM, 1),
    SECONDS("service.retry_max_seconds", retry_max_seconds, 300, 0, NO_MAXIMUM, 1),
    SECONDS("service.cancel_grace_seconds", cancel_grace_seconds, 10, 0, 3600, 0),
    SECONDS("service.job_timeout_seconds", job_timeout_seconds, 3600, 0, NO_MAXIMUM, 1),
    INTEGER("service.max_prompt_chars", max_prompt_chars, 2000, 1, 1000000),
    SIZE("service.max_body_bytes", max_body_bytes, 65536, 1024, NO_MAXIMUM),
    SIZE("service.max_header_bytes", max_header_bytes, 16384, 1024, NO_MAXIMUM),
    SECONDS("service.header_timeout_seconds", header_timeout_seconds, 10, 0, NO_MAXIMUM, 1),
    SECONDS("service.idle_timeout_seconds", idle_timeout_seconds, 60, 0, NO_MAXIMUM, 1),
    INTEGER("service.max_connections", max_connections, 10000, 1, NO_MAXIMUM),
    INTEGER("service.artifact_url_ttl_seconds", artifact_url_ttl_seconds, 3600, 60, 604800),
    {.name = "service.public_base_url", .type = VALUE_URL, .offset = FIELD(public_base_url)},
    {.name = "service.signing_key", .type = VALUE_STRING, .offset = FIELD(signing_key), .secret = 1},
    SIZE("service.max_log_lines", max_log_lines, 10000, 10, NO_MAXIMUM),
    SIZE("service.max_log_line_bytes", max_log_line_bytes, 4096, 80, NO_MAXIMUM),
    BOOLEAN("service.keep_failed_workspaces", keep_failed_workspaces, 0),
    INTEGER("service.idempotency_ttl_seconds", idempotency_ttl_seconds, 86400, 1, 31536000),
    INTEGER("service.sse_max_streams", sse_max_streams, 10000, 0, NO_MAXIMUM),
    INTEGER("service.sse_max_streams_per_client", sse_max_streams_per_client, 100, 1, NO_MAXIMUM),
    SIZE("service.sse_max_buffered_bytes", sse_max_buffered_bytes, 1048576, 4096, NO_MAXIMUM),
    SECONDS("service.sse_keepalive_seconds", sse_keepalive_seconds, 15, 0, 3600, 1),
    {.name = "service.webhooks", .type = VALUE_WEBHOOKS, .secret = 1},
    INTEGER("service.webhook_concurrency", webhook_concurrency, 16, 1, 1024),
    SECONDS("service.webhook_timeout_seconds", webhook_timeout_seconds, 10, 0, 600, 1),
    CHOICE("service.log_level", log_level, "info", "debug|info|warn|error", NULL),
    {.name = "service.docs_dir", .type = VALUE_DIRECTORY, .offset = FIELD(docs_dir)},
    SECTION("service.database"),
    CHOICE("service.database.backend", database_backend, "sqlite", "sqlite|postgres", NULL),
    STRING("service.database.path", database_path, NULL), /* default: <data_dir>/reel.db */
    {.name = "service.database.url", .type = VALUE_STRING, .offset = FIELD(database_url), .secret = 1},
    FILE_PATH("service.database.password_file", database_password_file, FILE_ANY),
    STRING("service.node_id", node_id, NULL), /* default: host name and pid */
    INTEGER("service.lease_seconds", lease_seconds, 30, 2, 3600),
    INTEGER("service.retention_days", retention_days, 30, 0, 36500),
    SECTION("service.storage"),
    CHOICE("service.storage.backend", storage_backend, "local", "local|s3|gcs", NULL),
    {.name = "service.storage.prefix", .type = VALUE_STRING, .offset = FIELD(storage_prefix),
     .default_text = "reel", .may_be_empty = 1},
    STRING("service.storage.path", storage_path, NULL), /* default: <data_dir>/artifacts */
    /* S3-compatible and GCS object storage (backend s3 / gcs) */
    STRING("service.storage.bucket", storage_bucket, NULL),
    {.name = "service.storage.endpoint", .type = VALUE_URL, .offset = FIELD(storage_endpoint)}, /* default per backend */
    STRING("service.storage.region", storage_region, "us-east-1"),
    BOOLEAN("service.storage.path_style", storage_path_style, 0),
    {.name = "service.storage.access_key_id", .type = VALUE_STRING, .offset = FIELD(storage_access_key_id), .secret = 1},
    {.name = "service.storage.secret_access_key", .type = VALUE_STRING, .offset = FIELD(storage_secret_access_key),
     .secret = 1},
    {.name = "service.storage.session_token", .type = VALUE_STRING, .offset = FIELD(storage_session_token), .secret = 1},
    FILE_PATH("service.storage.credentials_file", storage_credentials_file, FILE_GCS_KEY),
    BOOLEAN("service.storage.signed_urls", storage_signed_urls, 1),
    SIZE("service.storage.multipart_threshold_bytes", storage_multipart_threshold, 16 << 20, 5 << 20, NO_MAXIMUM),
    SIZE("service.storage.multipart_part_bytes", storage_multipart_part, 8 << 20, 5 << 20, 5368709120.0),
    INTEGER("service.storage.multipart_parallel", storage_multipart_parallel, 4, 1, 16),
    INTEGER("service.storage.upload_attempts", storage_upload_attempts, 5, 1, 20),
};

#define SERVICE_KEY_COUNT (sizeof service_keys / sizeof service_keys[0])

/* ---- The pipeline: keys reel knows ---------------------------------------- */

typedef enum {
  PIPELINE_TEXT,
  PIPELINE_CHOICE,
  PIPELINE_NUMBER,     /* an integer or decimal within [minimum, maximum] */
  PIPELINE_INTEGER,    /* an integer within [minimum, maximum] */
  PIPELINE_BOOLEAN,
  PIPELINE_FRAME_SIZE, /* "W*H" or "WxH" as the built-in renderer reads it */
  PIPELINE_VOICE,      /* an espeak-ng voice name */
  PIPELINE_MAPPING,    /* a provider section, passed through as it is */
  PIPELINE_COMMAND,    /* a list of words, or one string split on spaces */
} pipeline_type;

typedef struct {
  const char *name;
  pipeline_type type;
  const char *choices;
  double minimum, maximum; /* PIPELINE_NUMBER, PIPELINE_INTEGER: inclusive bounds */
} pipeline_key;

/* ttv-pipeline's key names; a null value is accepted for each and means "not
 * set". The bounds are those the built-in renderer accepts (render/options.c;
 * tests/unit/test_config.c checks that both agree), so a value that passes
 * --check-config cannot fail a job later. */
static const pipeline_key pipeline_keys[] = {
    {"pipeline.prompt", PIPELINE_TEXT, NULL, 0, 0},
    {"pipeline.default_backend", PIPELINE_CHOICE, "local|command", 0, 0},
    {"pipeline.command", PIPELINE_COMMAND, NULL, 0, 0},
    {"pipeline.generation_mode", PIPELINE_TEXT, NULL, 0, 0},
    {"pipeline.image_generation_model", PIPELINE_TEXT, NULL, 0, 0},
    {"pipeline.image_size", PIPELINE_FRAME_SIZE, NULL, 0, 0},
    {"pipeline.size", PIPELINE_FRAME_SIZE, NULL, 0, 0},
    {"pipeline.segment_duration_seconds", PIPELINE_NUMBER, NULL, 0.5, 600},
    {"pipeline.output_dir", PIPELINE_TEXT, NULL, 0, 0},
    {"pipeline.base_seed", PIPELINE_INTEGER, NULL, 0, 9007199254740991.0},
    {"pipeline.parallel_segments", PIPELINE_INTEGER, NULL, 1, 64},
    {"pipeline.fps", PIPELINE_NUMBER, NULL, 1, 120},
    {"pipeline.max_scenes", PIPELINE_INTEGER, NULL, 1, 200},
    {"pipeline.burn_captions", PIPELINE_BOOLEAN, NULL, 0, 0},
    {"pipeline.voice", PIPELINE_VOICE, NULL, 0, 0},
    {"pipeline.google_veo", PIPELINE_MAPPING, NULL, 0, 0},
    {"pipeline.runway_ml", PIPELINE_MAPPING, NULL, 0, 0},
    {"pipeline.minimax", PIPELINE_MAPPING, NULL, 0, 0},
    {"pipeline.remote_api", PIPELINE_MAPPING, NULL, 0, 0},
    {"pipeline.openai", PIPELINE_MAPPING, NULL, 0, 0},
    {"pipeline.comfyui", PIPELINE_MAPPING, NULL, 0, 0},
    {"pipeline.replicate", PIPELINE_MAPPING, NULL, 0, 0},
    {"pipeline.gcs", PIPELINE_MAPPING, NULL, 0, 0},
    {"pipeline.backends", PIPELINE_MAPPING, NULL, 0, 0},
};

#define PIPELINE_KEY_COUNT (sizeof pipeline_keys / sizeof pipeline_keys[0])
#define PIPELINE_PREFIX_LENGTH (sizeof "pipeline." - 1)

/* Every known key, service: then pipeline:, by one index (for hints). */
static size_t all_key_count(void) { return SERVICE_KEY_COUNT + PIPELINE_KEY_COUNT; }

static const char *known_key_name(size_t i) {
  return i < SERVICE_KEY_COUNT ? service_keys[i].name : pipeline_keys[i - SERVICE_KEY_COUNT].name;
}

/* ---- Loading state and messages ------------------------------------------ */

typedef struct {
  const char *name; /* the file, for messages */
  char *err;
  size_t errlen;
  reel_config *config;
  unsigned long service_line;                     /* where service: starts, 0 if absent */
  unsigned long service_lines[SERVICE_KEY_COUNT]; /* where each key was set, 0 if not */
  unsigned long pipeline_lines[PIPELINE_KEY_COUNT];
  unsigned long listen_lines[REEL_MAX_LISTEN];
} loader;

/* Writes "NAME:LINE: KEY: message" (or "NAME:LINE: message" without a key). */
static int fail(loader *l, unsigned long line, const char *key, const char *format, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(loader *l, unsigned long line, const char *key, const char *format, ...) {
  char message[768];
  va_list ap;
  va_start(ap, format);
  vsnprintf(message, sizeof message, format, ap);
  va_end(ap);
  if (l->err && l->errlen) {
    if (key)
      snprintf(l->err, l->errlen, "%s:%lu: %s: %s", l->name, line, key, message);
    else
      snprintf(l->err, l->errlen, "%s:%lu: %s", l->name, line, message);
  }
  return REEL_ECONFIG;
}

static int out_of_memory(loader *l) {
  if (l->err && l->errlen) snprintf(l->err, l->errlen, "%s: out of memory", l->name);
  return REEL_ENOMEM;
}

/* Describes a value for "got ...": the scalar quoted and shortened, or its kind. */
static void describe_value(const reel_yaml_node *node, int secret, char *out, size_t size) {
  out[0] = '\0';
  if (node->kind == REEL_YAML_SEQUENCE) {
    snprintf(out, size, "a list");
  } else if (node->kind == REEL_YAML_MAPPING) {
    snprintf(out, size, "a mapping");
  } else if (secret) {
    snprintf(out, size, "a value not shown here");
  } else {
    snprintf(out, size, "\"");
    reel_yaml_append_printable(out, size - 1, node->text, node->length, SHOWN_VALUE_CHARS);
    size_t used = strlen(out);
    out[used] = '"';
    out[used + 1] = '\0';
  }
}

/* Describes a value of the wrong type for "got ...". A quoted scalar is called
 * a string, since the quotes are what made it one; `hint` (such as "write it
 * without quotes") is added in parentheses when given. */
static void describe_wrong(const reel_yaml_node *node, const char *hint, char *out, size_t size) {
  char shown[96];
  describe_value(node, 0, shown, sizeof shown);
  int quoted = node->kind == REEL_YAML_SCALAR && !node->plain;
  snprintf(out, size, "%s%s%s%s%s", quoted ? "the string " : "", shown, hint ? " (" : "", hint ? hint : "",
           hint ? ")" : "");
}

/* Appends ".key" (or "[index]" when key is NULL) to a dotted path. */
static void extend_path(char *path, size_t size, const char *parent, const reel_yaml_node *key,
                        size_t index) {
  snprintf(path, size, "%s", parent);
  size_t used = strlen(path);
  if (!key) {
    snprintf(path + used, size - used, "[%zu]", index);
    return;
  }
  if (used && used + 1 < size) memcpy(path + used, ".", 2);
  reel_yaml_append_printable(path, size, key->text, key->length, 64);
}

/* ---- Reading scalars ----------------------------------------------------- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int text_is(const reel_yaml_node *node, const char *word) {
  return node->length == strlen(word) && memcmp(node->text, word, node->length) == 0;
}

static int is_null(const reel_yaml_node *node) {
  return node->kind == REEL_YAML_SCALAR && node->plain &&
         (node->length == 0 || text_is(node, "~") || text_is(node, "null") ||
          text_is(node, "Null") || text_is(node, "NULL"));
}

static int is_integer_text(const char *text, size_t length) {
  size_t i = 0;
  if (i < length && (text[i] == '-' || text[i] == '+')) i++;
  if (i == length) return 0;
  for (; i < length; i++)
    if (!is_digit(text[i])) return 0;
  return 1;
}

/* YAML 1.2 core schema floats without .inf/.nan: 1.5, .5, 1., 1e3, -2.5E-3 */
static int is_decimal_text(const char *text, size_t length) {
  size_t i = 0, digits = 0;
  if (i < length && (text[i] == '-' || text[i] == '+')) i++;
  while (i < length && is_digit(text[i])) i++, digits++;
  if (i < length && text[i] == '.') {
    i++;
    while (i < length && is_digit(text[i])) i++, digits++;
  }
  if (digits == 0) return 0;
  if (i < length && (text[i] == 'e' || text[i] == 'E')) {
    i++;
    if (i < length && (text[i] == '-' || text[i] == '+')) i++;
    size_t exponent_digits = 0;
    while (i < length && is_digit(text[i])) i++, exponent_digits++;
    if (exponent_digits == 0) return 0;
  }
  return i == length;
}

/* 1 and *value set for a plain integer that fits, 0 for anything else. */
static int read_integer(const reel_yaml_node *node, long long *value) {
  if (node->kind != REEL_YAML_SCALAR || !node->plain || !is_integer_text(node->text, node->length))
    return 0;
  errno = 0;
  long long parsed = strtoll(node->text, NULL, 10);
  if (errno == ERANGE) return 0;
  *value = parsed;
  return 1;
}

/* 1 and *value set for a plain integer or decimal number that is finite. */
static int read_number(const reel_yaml_node *node, double *value) {
  if (node->kind != REEL_YAML_SCALAR || !node->plain) return 0;
  if (!is_integer_text(node->text, node->length) && !is_decimal_text(node->text, node->length))
    return 0;
  double parsed = strtod(node->text, NULL);
  if (!isfinite(parsed)) return 0;
  *value = parsed;
  return 1;
}

/* 1 and *value set for a plain boolean; yes/no only when allow_yes_no. */
static int read_boolean(const reel_yaml_node *node, int allow_yes_no, int *value) {
  if (node->kind != REEL_YAML_SCALAR || !node->plain) return 0;
  static const char *const true_words[] = {"true", "True", "TRUE", "yes", "Yes", "YES"};
  static const char *const false_words[] = {"false", "False", "FALSE", "no", "No", "NO"};
  size_t words = allow_yes_no ? 6 : 3;
  for (size_t i = 0; i < words; i++) {
    if (text_is(node, true_words[i])) return *value = 1, 1;
    if (text_is(node, false_words[i])) return *value = 0, 1;
  }
  return 0;
}

/* True when word is one of the '|'-separated names in list. */
static int in_list(const char *list, const char *word, size_t length) {
  while (list && *list) {
    const char *end = strchr(list, '|');
    size_t item = end ? (size_t)(end - list) : strlen(list);
    if (item == length && memcmp(list, word, length) == 0) return 1;
    list = end ? end + 1 : NULL;
  }
  return 0;
}

/* "a|b|c" as "a, b or c". */
static void list_in_words(const char *list, char *out, size_t size) {
  size_t count = 1, index = 0;
  for (const char *c = list; *c; c++) count += *c == '|';
  out[0] = '\0';
  while (*list) {
    const char *end = strchr(list, '|');
    size_t item = end ? (size_t)(end - list) : strlen(list);
    const char *separator = index == 0 ? "" : index == count - 1 ? " or " : ", ";
    size_t used = strlen(out);
    snprintf(out + used, size - used, "%s%.*s", separator, (int)item, list);
    if (!end) break;
    list = end + 1;
    index++;
  }
}

/* A copy of a scalar as a C string; refuses NUL bytes. */
static int copy_text(loader *l, const reel_yaml_node *node, const char *key, char **out) {
  if (memchr(node->text, '\0', node->length))
    return fail(l, node->line, key, "must not contain NUL bytes");
  *out = strdup(node->text);
  return *out ? 0 : out_of_memory(l);
}

static void replace_string(char **field, char *value) {
  free(*field);
  *field = value;
}

/* ---- "unknown key" hints ------------------------------------------------ */

static size_t edit_distance(const char *a, size_t a_length, const char *b, size_t b_length) {
  size_t previous[65], current[65];
  if (a_length > 64 || b_length > 64) return SIZE_MAX;
  for (size_t j = 0; j <= b_length; j++) previous[j] = j;
  for (size_t i = 1; i <= a_length; i++) {
    current[0] = i;
    for (size_t j = 1; j <= b_length; j++) {
      size_t substitute = previous[j - 1] + (a[i - 1] != b[j - 1]);
      size_t remove = previous[j] + 1, insert = current[j - 1] + 1;
      current[j] = substitute < remove ? substitute : remove;
      if (insert < current[j]) current[j] = insert;
    }
    memcpy(previous, current, (b_length + 1) * sizeof previous[0]);
  }
  return previous[b_length];
}

/* Builds "(did you mean X?)" for a near miss, else "(known keys: a, b, c)". */
static void known_keys_hint(const reel_yaml_node *key, const char *const *names, size_t count,
                            char *out, size_t size) {
  size_t best = SIZE_MAX, best_index = 0;
  for (size_t i = 0; i < count; i++) {
    size_t distance = edit_distance(key->text, key->length, names[i], strlen(names[i]));
    if (distance < best) best = distance, best_index = i;
  }
  if (count && best <= (key->length < 5 ? 1u : 2u)) {
    snprintf(out, size, "(did you mean %s?)", names[best_index]);
    return;
  }
  snprintf(out, size, "(known keys:");
  for (size_t i = 0; i < count; i++) {
    size_t used = strlen(out);
    snprintf(out + used, size - used, "%s %s", i ? "," : "", names[i]);
  }
  size_t used = strlen(out);
  snprintf(out + used, size - used, ")");
}

/* The distance from `key` to the closest of names, or SIZE_MAX for none. */
static size_t nearest_distance(const reel_yaml_node *key, const char *const *names, size_t count) {
  size_t best = SIZE_MAX;
  for (size_t i = 0; i < count; i++) {
    size_t distance = edit_distance(key->text, key->length, names[i], strlen(names[i]));
    if (distance < best) best = distance;
  }
  return best;
}

static const char *known_key_name(size_t i);
static size_t all_key_count(void);

/* Finds known keys outside `parent` whose last part is closest to `key` (a
 * key indented under the wrong section, such as service.tokens for
 * service.auth.tokens). Writes "A" or "A or B" into out and returns their
 * distance, or SIZE_MAX when there is none. */
static size_t keys_elsewhere(const char *parent, const reel_yaml_node *key, char *out, size_t size) {
  size_t best = SIZE_MAX, parent_length = strlen(parent), shown = 0;
  out[0] = '\0';
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < all_key_count(); i++) {
      const char *name = known_key_name(i);
      const char *leaf = strrchr(name, '.') + 1;
      size_t name_parent = (size_t)(leaf - 1 - name);
      if (name_parent == parent_length && strncmp(name, parent, parent_length) == 0) continue;
      size_t distance = edit_distance(key->text, key->length, leaf, strlen(leaf));
      if (pass == 0 && distance < best) best = distance;
      if (pass == 1 && distance == best && shown < 3) {
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%s", shown ? " or " : "", name);
        shown++;
      }
    }
    if (best == SIZE_MAX) break;
  }
  return best;
}

static int unknown_key(loader *l, const char *parent, const reel_yaml_node *key,
                       const char *const *names, size_t count) {
  char path[PATH_SIZE], hint[512], elsewhere[PATH_SIZE * 3];
  extend_path(path, sizeof path, parent, key, 0);
  size_t limit = key->length < 5 ? 1u : 2u;
  size_t far = SIZE_MAX;
  if (!memchr(key->text, '.', key->length)) far = keys_elsewhere(parent, key, elsewhere, sizeof elsewhere);
  if (memchr(key->text, '.', key->length))
    snprintf(hint, sizeof hint, "(dotted keys are not expanded: put each part on its own indented line)");
  else if (far <= limit && far < nearest_distance(key, names, count))
    snprintf(hint, sizeof hint, "(did you mean %s? check its indentation)", elsewhere);
  else
    known_keys_hint(key, names, count, hint, sizeof hint);
  return fail(l, key->line, path, "unknown key %s", hint);
}

/* ---- service: ------------------------------------------------------------ */

/* The table entry for `key` directly under the section `parent`, or -1. */
static int find_service_key(const char *parent, const reel_yaml_node *key) {
  size_t parent_length = strlen(parent);
  if (memchr(key->text, '.', key->length) || memchr(key->text, '\0', key->length)) return -1;
  for (size_t i = 0; i < SERVICE_KEY_COUNT; i++) {
    const char *name = service_keys[i].name;
    if (strncmp(name, parent, parent_length) == 0 && name[parent_length] == '.' &&
        strcmp(name + parent_length + 1, key->text) == 0)
      return (int)i;
  }
  return -1;
}

static int unknown_service_key(loader *l, const char *parent, const reel_yaml_node *key) {
  const char *names[SERVICE_KEY_COUNT];
  size_t count = 0, parent_length = strlen(parent);
  for (size_t i = 0; i < SERVICE_KEY_COUNT; i++) {
    const char *name = service_keys[i].name;
    if (strncmp(name, parent, parent_length) == 0 && name[parent_length] == '.' &&
        !strchr(name + parent_length + 1, '.'))
      names[count++] = name + parent_length + 1;
  }
  return unknown_key(l, parent, key, names, count);
}

static int check_listen_address(loader *l, const reel_yaml_node *node, const char *key);
static int split_listen_address(const char *text, size_t length, reel_listen_scheme *scheme,
                                const char **host, size_t *host_length, long *port);
static int load_service_section(loader *l, const reel_yaml_node *mapping, const char *parent);

static void *field_of(reel_config *config, const service_key *entry) {
  return (char *)config + entry->offset;
}

/* 1 and *parsed set when value is a plain integer within the key's bounds. */
static int integer_in_bounds(const service_key *entry, const reel_yaml_node *value, long long *parsed) {
  long long type_maximum = entry->type == VALUE_INT ? INT_MAX : LLONG_MAX;
  long long maximum = entry->maximum == NO_MAXIMUM ? type_maximum : (long long)entry->maximum;
  return read_integer(value, parsed) && *parsed >= (long long)entry->minimum && *parsed <= maximum;
}

/* 1 and *parsed set when value is a plain number within the key's bounds. */
static int seconds_in_bounds(const service_key *entry, const reel_yaml_node *value, double *parsed) {
  if (!read_number(value, parsed)) return 0;
  if (entry->above_minimum ? *parsed <= entry->minimum : *parsed < entry->minimum) return 0;
  return entry->maximum == NO_MAXIMUM || *parsed <= entry->maximum;
}

/* "got ..." for a service value that is not what `fits` accepts: a quoted
 * scalar that would fit without its quotes says so. */
static void describe_service_value(const service_key *entry, const reel_yaml_node *value,
                                   int (*fits)(const service_key *, const reel_yaml_node *), char *out,
                                   size_t size) {
  const char *hint = NULL;
  if (value->kind == REEL_YAML_SCALAR && !value->plain) {
    reel_yaml_node plain = *value;
    plain.plain = 1;
    if (fits(entry, &plain)) hint = "write it without quotes";
  }
  describe_wrong(value, hint, out, size);
}

static int integer_fits(const service_key *entry, const reel_yaml_node *value) {
  long long parsed;
  return integer_in_bounds(entry, value, &parsed);
}

static int seconds_fit(const service_key *entry, const reel_yaml_node *value) {
  double parsed;
  return seconds_in_bounds(entry, value, &parsed);
}

static int boolean_fits(const service_key *entry, const reel_yaml_node *value) {
  (void)entry;
  int parsed;
  return read_boolean(value, 1, &parsed);
}

static int load_bounded_integer(loader *l, const service_key *entry, const reel_yaml_node *value) {
  long long parsed = 0;
  if (!integer_in_bounds(entry, value, &parsed)) {
    char shown[160];
    describe_service_value(entry, value, integer_fits, shown, sizeof shown);
    if (entry->maximum == NO_MAXIMUM)
      return fail(l, value->line, entry->name, "expected an integer >= %.0f, got %s", entry->minimum,
                  shown);
    return fail(l, value->line, entry->name, "expected an integer from %.0f to %.0f, got %s",
                entry->minimum, entry->maximum, shown);
  }
  if (entry->type == VALUE_INT)
    *(int *)field_of(l->config, entry) = (int)parsed;
  else
    *(size_t *)field_of(l->config, entry) = (size_t)parsed;
  return 0;
}

static int load_seconds(loader *l, const service_key *entry, const reel_yaml_node *value) {
  double parsed = 0;
  if (!seconds_in_bounds(entry, value, &parsed)) {
    char shown[160];
    describe_service_value(entry, value, seconds_fit, shown, sizeof shown);
    if (entry->maximum == NO_MAXIMUM)
      return fail(l, value->line, entry->name, "expected a number of seconds %s %g, got %s",
                  entry->above_minimum ? ">" : ">=", entry->minimum, shown);
    return fail(l, value->line, entry->name, "expected a number of seconds from %g to %g, got %s",
                entry->minimum, entry->maximum, shown);
  }
  *(double *)field_of(l->config, entry) = parsed;
  return 0;
}

static int expect_scalar(loader *l, const service_key *entry, const reel_yaml_node *value,
                         const char *what) {
  if (value->kind == REEL_YAML_SCALAR) return 0;
  char shown[96];
  describe_value(value, 0, shown, sizeof shown);
  return fail(l, value->line, entry->name, "expected %s, got %s", what, shown);
}

static int load_string(loader *l, const service_key *entry, const reel_yaml_node *value) {
  int rc = expect_scalar(l, entry, value, "a string");
  if (rc) return rc;
  if (value->length == 0 && !entry->may_be_empty)
    return fail(l, value->line, entry->name, "must not be empty (remove the key to use the default)");
  char *text;
  if ((rc = copy_text(l, value, entry->name, &text))) return rc;
  replace_string(field_of(l->config, entry), text);
  return 0;
}

static int load_choice(loader *l, const service_key *entry, const reel_yaml_node *value) {
  char allowed[128];
  list_in_words(entry->choices, allowed, sizeof allowed);
  if (value->kind == REEL_YAML_SCALAR && in_list(entry->not_yet, value->text, value->length))
    return fail(l, value->line, entry->name, "%s is not yet supported (use %s)", value->text, allowed);
  if (value->kind != REEL_YAML_SCALAR || !in_list(entry->choices, value->text, value->length)) {
    char shown[96];
    describe_value(value, 0, shown, sizeof shown);
    return fail(l, value->line, entry->name, "expected %s, got %s", allowed, shown);
  }
  char *text;
  int rc = copy_text(l, value, entry->name, &text);
  if (rc) return rc;
  replace_string(field_of(l->config, entry), text);
  return 0;
}

static int load_url(loader *l, const service_key *entry, const reel_yaml_node *value) {
  int rc = expect_scalar(l, entry, value, "a URL such as https://reel.example.com");
  if (rc) return rc;
  size_t scheme = strncmp(value->text, "http://", 7) == 0    ? 7
                  : strncmp(value->text, "https://", 8) == 0 ? 8
                                                             : 0;
  int ok = scheme && value->length > scheme && value->text[scheme] != '/';
  for (size_t i = 0; ok && i < value->length; i++)
    if ((unsigned char)value->text[i] <= ' ' || value->text[i] == 0x7F) ok = 0;
  if (!ok) {
    char shown[96];
    describe_value(value, 0, shown, sizeof shown);
    return fail(l, value->line, entry->name,
                "expected a URL starting with http:// or https://, such as https://reel.example.com, got %s",
                shown);
  }
  char *text;
  if ((rc = copy_text(l, value, entry->name, &text))) return rc;
  size_t length = strlen(text);
  if (length > scheme + 1 && text[length - 1] == '/') text[length - 1] = '\0';
  replace_string(field_of(l->config, entry), text);
  return 0;
}

static int load_listen(loader *l, const service_key *entry, const reel_yaml_node *value) {
  reel_config *config = l->config;
  const reel_yaml_node *single = value;
  size_t count = value->kind == REEL_YAML_SEQUENCE ? value->count : 1;
  if (value->kind == REEL_YAML_MAPPING)
    return fail(l, value->line, entry->name,
                "expected an address such as 127.0.0.1:8000 or a list of them, got a mapping");
  if (count == 0)
    return fail(l, value->line, entry->name, "needs at least one address, such as 127.0.0.1:8000");
  if (count > REEL_MAX_LISTEN)
    return fail(l, value->line, entry->name, "at most %d addresses are allowed, got %zu",
                REEL_MAX_LISTEN, count);
  for (size_t i = 0; i < count; i++) {
    const reel_yaml_node *item = value->kind == REEL_YAML_SEQUENCE ? value->children[i] : single;
    char key[PATH_SIZE];
    if (value->kind == REEL_YAML_SEQUENCE)
      extend_path(key, sizeof key, entry->name, NULL, i);
    else
      snprintf(key, sizeof key, "%s", entry->name);
    int rc = check_listen_address(l, item, key);
    if (rc) return rc;
    char *text;
    if ((rc = copy_text(l, item, key, &text))) return rc;
    const char *host;
    size_t host_length;
    long port;
    split_listen_address(text, strlen(text), &config->listen_scheme[config->n_listen], &host, &host_length,
                         &port);
    l->listen_lines[config->n_listen] = item->line;
    config->listen[config->n_listen++] = text;
  }
  return 0;
}

static int load_tokens(loader *l, const service_key *entry, const reel_yaml_node *value) {
  reel_config *config = l->config;
  if (value->kind != REEL_YAML_SEQUENCE)
    return fail(l, value->line, entry->name,
                "expected a list of bearer tokens, such as [a-long-random-string], got %s",
                value->kind == REEL_YAML_MAPPING ? "a mapping" : "a single value (write it as [token])");
  if (value->count == 0)
    return fail(l, value->line, entry->name,
                "needs at least one token (clients send it as Authorization: Bearer TOKEN)");
  if (value->count > REEL_MAX_TOKENS)
    return fail(l, value->line, entry->name, "at most %d tokens are allowed, got %zu", REEL_MAX_TOKENS,
                value->count);
  for (size_t i = 0; i < value->count; i++) {
    const reel_yaml_node *item = value->children[i];
    char key[PATH_SIZE];
    extend_path(key, sizeof key, entry->name, NULL, i);
    if (item->kind != REEL_YAML_SCALAR || is_null(item) || item->length == 0) {
      char shown[96] = "nothing";
      if (item->kind != REEL_YAML_SCALAR) describe_value(item, 0, shown, sizeof shown);
      return fail(l, item->line, key, "expected a non-empty token, got %s", shown);
    }
    for (size_t c = 0; c < item->length; c++)
      if ((unsigned char)item->text[c] <= ' ' || item->text[c] == 0x7F)
        return fail(l, item->line, key, "a token must not contain spaces or control characters");
    char *text;
    int rc = copy_text(l, item, key, &text);
    if (rc) return rc;
    config->tokens[config->n_tokens++] = text;
  }
  return 0;
}

/* 1 if text is an IPv4/IPv6 address, optionally with a /PREFIX in range. */
static int is_address_or_network(const char *text) {
  char address[64];
  const char *slash = strchr(text, '/');
  size_t length = slash ? (size_t)(slash - text) : strlen(text);
  if (length == 0 || length >= sizeof address) return 0;
  memcpy(address, text, length);
  address[length] = '\0';
  unsigned char binary[16];
  int bits;
  if (inet_pton(AF_INET, address, binary) == 1) bits = 32;
  else if (inet_pton(AF_INET6, address, binary) == 1) bits = 128;
  else return 0;
  if (!slash) return 1;
  const char *digits = slash + 1;
  if (!*digits || strlen(digits) > 3) return 0;
  for (const char *c = digits; *c; c++)
    if (!is_digit(*c)) return 0;
  return atoi(digits) <= bits;
}

static int load_proxies(loader *l, const service_key *entry, const reel_yaml_node *value) {
  reel_config *config = l->config;
  if (value->kind != REEL_YAML_SEQUENCE)
    return fail(l, value->line, entry->name,
                "expected a list of proxy addresses or networks, such as [127.0.0.1, 10.0.0.0/8], got %s",
                value->kind == REEL_YAML_MAPPING ? "a mapping" : "a single value (write it as [address])");
  if (value->count > REEL_MAX_PROXIES)
    return fail(l, value->line, entry->name, "at most %d entries are allowed, got %zu", REEL_MAX_PROXIES,
                value->count);
  for (size_t i = 0; i < value->count; i++) {
    const reel_yaml_node *item = value->children[i];
    char key[PATH_SIZE];
    extend_path(key, sizeof key, entry->name, NULL, i);
    char *text;
    if (item->kind != REEL_YAML_SCALAR || is_null(item)) {
      char shown[96];
      describe_value(item, 0, shown, sizeof shown);
      return fail(l, item->line, key, "expected an IP address or CIDR network, got %s", shown);
    }
    int rc = copy_text(l, item, key, &text);
    if (rc) return rc;
    if (!is_address_or_network(text)) {
      char shown[96];
      describe_value(item, 0, shown, sizeof shown);
      free(text);
      return fail(l, item->line, key,
                  "expected an IP address (10.0.0.5, ::1) or a CIDR network (10.0.0.0/8, fd00::/8), got %s",
                  shown);
    }
    config->trusted_proxies[config->n_trusted_proxies++] = text;
  }
  return 0;
}

/* The Standard Webhooks schedule (SPEC section 8): 0, 5 s, 5 min, 30 min,
 * 2 h, 5 h, 10 h, 14 h, 20 h, 24 h. */
static const double default_retry_schedule[] = {0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400};

static int load_webhook(loader *l, const reel_yaml_node *item, const char *path, reel_webhook_endpoint *w) {
  if (item->kind != REEL_YAML_MAPPING)
    return fail(l, item->line, path, "expected a mapping {url, secret, events, retry_schedule_seconds}");
  w->line = item->line;
  w->events = reel_event_type_bit("job.finished") | reel_event_type_bit("job.failed") |
              reel_event_type_bit("job.canceled");
  w->n_retry = (int)(sizeof default_retry_schedule / sizeof *default_retry_schedule);
  memcpy(w->retry_schedule, default_retry_schedule, sizeof default_retry_schedule);
  for (size_t i = 0; i + 1 < item->count; i += 2) {
    const reel_yaml_node *key = item->children[i], *value = item->children[i + 1];
    char name[PATH_SIZE];
    extend_path(name, sizeof name, path, key, 0);
    if (text_is(key, "url")) {
      int ok = value->kind == REEL_YAML_SCALAR &&
               ((strncmp(value->text, "http://", 7) == 0 && value->length > 7) ||
                (strncmp(value->text, "https://", 8) == 0 && value->length > 8));
      for (size_t k = 0; ok && k < value->length; k++)
        if ((unsigned char)value->text[k] <= ' ' || value->text[k] == 0x7F) ok = 0;
      if (!ok) return fail(l, value->line, name, "expected a URL starting with http:// or https://");
      free(w->url);
      int rc = copy_text(l, value, name, &w->url);
      if (rc) return rc;
    } else if (text_is(key, "secret")) {
      /* a Standard Webhooks secret: whsec_ and a base64 key (never shown) */
      int ok = value->kind == REEL_YAML_SCALAR && value->length > 6 && strncmp(value->text, "whsec_", 6) == 0;
      for (size_t k = 6; ok && k < value->length; k++) {
        char ch = value->text[k];
        ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' ||
             ch == '/' || ch == '=';
      }
      if (!ok) return fail(l, value->line, name, "expected a Standard Webhooks secret: whsec_ followed by base64");
      free(w->secret);
      int rc = copy_text(l, value, name, &w->secret);
      if (rc) return rc;
    } else if (text_is(key, "events")) {
      if (value->kind != REEL_YAML_SEQUENCE || value->count == 0)
        return fail(l, value->line, name, "expected a list of event types, such as [job.finished, job.failed]");
      w->events = 0;
      for (size_t k = 0; k < value->count; k++) {
        const reel_yaml_node *t = value->children[k];
        unsigned bit = t->kind == REEL_YAML_SCALAR ? reel_event_type_bit(t->text) : 0;
        if (!bit) {
          char shown[96];
          describe_value(t, 0, shown, sizeof shown);
          return fail(l, t->line, name,
                      "unknown event type %s (job.created, job.started, job.progress, job.log, job.retrying, "
                      "job.finished, job.failed, job.canceled)", shown);
        }
        w->events |= bit;
      }
    } else if (text_is(key, "retry_schedule_seconds")) {
      if (value->kind != REEL_YAML_SEQUENCE || value->count == 0 || value->count > REEL_MAX_RETRY_STEPS)
        return fail(l, value->line, name, "expected a list of 1 to %d delays in seconds, such as [0, 5, 300]",
                    REEL_MAX_RETRY_STEPS);
      w->n_retry = 0;
      for (size_t k = 0; k < value->count; k++) {
        const reel_yaml_node *t = value->children[k];
        char *end = NULL;
        double v = t->kind == REEL_YAML_SCALAR && t->plain ? strtod(t->text, &end) : -1;
        if (!end || *end || v < 0 || v > 31536000)
          return fail(l, t->line, name, "expected a number of seconds from 0 to 31536000");
        w->retry_schedule[w->n_retry++] = v;
      }
    } else {
      return fail(l, key->line, name, "unknown key (a webhook has url, secret, events, retry_schedule_seconds)");
    }
  }
  if (!w->url) return fail(l, item->line, path, "a webhook needs a url");
  if (!w->secret) return fail(l, item->line, path, "a webhook needs a secret (whsec_...)");
  return 0;
}

static int load_webhooks(loader *l, const service_key *entry, const reel_yaml_node *value) {
  reel_config *config = l->config;
  if (value->kind != REEL_YAML_SEQUENCE)
    return fail(l, value->line, entry->name, "expected a list of webhooks, each {url, secret, events}");
  if (value->count > REEL_MAX_WEBHOOKS)
    return fail(l, value->line, entry->name, "at most %d webhooks are allowed, got %zu", REEL_MAX_WEBHOOKS,
                value->count);
  for (size_t i = 0; i < value->count; i++) {
    char path[PATH_SIZE];
    extend_path(path, sizeof path, entry->name, NULL, i);
    reel_webhook_endpoint *w = &config->webhooks[config->n_webhooks++];
    int rc = load_webhook(l, value->children[i], path, w);
    if (rc) return rc;
    for (int k = 0; k < config->n_webhooks - 1; k++)
      if (strcmp(config->webhooks[k].url, w->url) == 0)
        return fail(l, value->children[i]->line, path, "the same url is configured twice");
  }
  return 0;
}

/* Checks that a file reeld will read holds what it should; `path` is readable. */
static int check_file_content(loader *l, const service_key *entry, unsigned long line, const char *path) {
  if (entry->content == FILE_GCS_KEY) {
    reel_gcs_key *key = NULL;
    char why[256];
    int rc = reel_gcs_key_load_file(path, &key, why, sizeof why);
    reel_gcs_key_free(key);
    if (rc == REEL_ENOMEM) return out_of_memory(l);
    if (rc) return fail(l, line, entry->name, "%s is not a usable service-account key: %s", path, why);
    return 0;
  }
  if (entry->content != FILE_PEM_CERTIFICATE && entry->content != FILE_PEM_KEY) return 0;
  /* PEM headers come first; 64 KiB holds a long chain's first block many times over */
  char head[65536];
  FILE *file = fopen(path, "rb");
  if (!file) return fail(l, line, entry->name, "cannot read %s: %s", path, strerror(errno));
  size_t got = fread(head, 1, sizeof head - 1, file);
  fclose(file);
  head[got] = '\0';
  for (size_t i = 0; i < got; i++)
    if (head[i] == '\0') head[i] = ' ';
  if (entry->content == FILE_PEM_CERTIFICATE && !strstr(head, "-----BEGIN CERTIFICATE-----"))
    return fail(l, line, entry->name,
                "%s holds no PEM certificate (a \"-----BEGIN CERTIFICATE-----\" block; "
                "scripts/dev-cert.sh makes a development pair)",
                path);
  if (entry->content == FILE_PEM_KEY && !(strstr(head, "-----BEGIN ") && strstr(head, " PRIVATE KEY-----")))
    return fail(l, line, entry->name,
                "%s holds no PEM private key (a \"-----BEGIN ... PRIVATE KEY-----\" block)", path);
  return 0;
}

/* A path reeld reads later: it must exist now, be of the right kind and be
 * readable by this process, so the mistake is reported with its line. */
static int load_path(loader *l, const service_key *entry, const reel_yaml_node *value) {
  int rc = load_string(l, entry, value);
  if (rc) return rc;
  const char *path = *(char **)field_of(l->config, entry);
  int directory = entry->type == VALUE_DIRECTORY;
  struct stat st;
  if (stat(path, &st) != 0)
    return fail(l, value->line, entry->name, "cannot use %s: %s (relative paths are relative to reeld's working "
                "directory)", path, strerror(errno));
  if (directory && !S_ISDIR(st.st_mode))
    return fail(l, value->line, entry->name, "%s is not a directory", path);
  if (!directory && !S_ISREG(st.st_mode))
    return fail(l, value->line, entry->name, "%s is not a regular file", path);
  if (access(path, directory ? R_OK | X_OK : R_OK) != 0)
    return fail(l, value->line, entry->name, "cannot read %s: %s", path, strerror(errno));
  return directory ? 0 : check_file_content(l, entry, value->line, path);
}

static int load_service_value(loader *l, const service_key *entry, const reel_yaml_node *value) {
  if (is_null(value)) return 0; /* an empty value keeps the default */
  switch (entry->type) {
    case VALUE_SECTION:
      if (value->kind != REEL_YAML_MAPPING) {
        char shown[96];
        describe_value(value, 0, shown, sizeof shown);
        return fail(l, value->line, entry->name, "expected a mapping (keys indented below it), got %s",
                    shown);
      }
      return load_service_section(l, value, entry->name);
    case VALUE_STRING:
      return load_string(l, entry, value);
    case VALUE_CHOICE:
      return load_choice(l, entry, value);
    case VALUE_URL:
      return load_url(l, entry, value);
    case VALUE_INT:
    case VALUE_SIZE:
      return load_bounded_integer(l, entry, value);
    case VALUE_SECONDS:
      return load_seconds(l, entry, value);
    case VALUE_BOOLEAN: {
      int parsed;
      if (!read_boolean(value, 1, &parsed)) {
        char shown[160];
        describe_service_value(entry, value, boolean_fits, shown, sizeof shown);
        return fail(l, value->line, entry->name, "expected true or false, got %s", shown);
      }
      *(int *)field_of(l->config, entry) = parsed;
      return 0;
    }
    case VALUE_LISTEN:
      return load_listen(l, entry, value);
    case VALUE_TOKENS:
      return load_tokens(l, entry, value);
    case VALUE_PROXIES:
      return load_proxies(l, entry, value);
    case VALUE_WEBHOOKS:
      return load_webhooks(l, entry, value);
    case VALUE_FILE:
    case VALUE_DIRECTORY:
      return load_path(l, entry, value);
  }
  return 0;
}

static int load_service_section(loader *l, const reel_yaml_node *mapping, const char *parent) {
  for (size_t i = 0; i + 1 < mapping->count; i += 2) {
    const reel_yaml_node *key = mapping->children[i], *value = mapping->children[i + 1];
    int index = find_service_key(parent, key);
    if (index < 0) return unknown_service_key(l, parent, key);
    const service_key *entry = &service_keys[index];
    if (l->service_lines[index])
      return fail(l, key->line, entry->name, "duplicate key (first set on line %lu)",
                  l->service_lines[index]);
    l->service_lines[index] = key->line;
    int rc = load_service_value(l, entry, value);
    if (rc) return rc;
  }
  return 0;
}

/* Splits an address into scheme, host (brackets kept for IPv6) and port.
 * Returns 0 if it is [SCHEME://]HOST:PORT or [SCHEME://][IPV6]:PORT with
 * SCHEME http (the default), https or h3. */
static int split_listen_address(const char *text, size_t length, reel_listen_scheme *scheme,
                                const char **host, size_t *host_length, long *port) {
  const char *end = text + length;
  *scheme = REEL_LISTEN_HTTP;
  if (length >= 7 && strncmp(text, "http://", 7) == 0) text += 7;
  else if (length >= 8 && strncmp(text, "https://", 8) == 0) text += 8, *scheme = REEL_LISTEN_HTTPS;
  else if (length >= 5 && strncmp(text, "h3://", 5) == 0) text += 5, *scheme = REEL_LISTEN_H3;
  const char *colon;
  if (text < end && *text == '[') {
    const char *close = memchr(text, ']', (size_t)(end - text));
    if (!close || close == text + 1 || close + 1 >= end || close[1] != ':') return -1;
    for (const char *c = text + 1; c < close; c++)
      if (!(is_digit(*c) || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == ':' ||
            *c == '.' || *c == '%'))
        return -1;
    colon = close + 1;
  } else {
    colon = NULL;
    for (const char *c = text; c < end; c++)
      if (*c == ':') colon = c;
    if (!colon || colon == text) return -1;
    for (const char *c = text; c < colon; c++)
      if (!(is_digit(*c) || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '.' ||
            *c == '-' || *c == '_'))
        return -1;
  }
  const char *digits = colon + 1;
  if (end - digits < 1 || end - digits > 5) return -1;
  long value = 0;
  for (const char *c = digits; c < end; c++) {
    if (!is_digit(*c)) return -1;
    value = value * 10 + (*c - '0');
  }
  if (value > 65535) return -1;
  *host = text;
  *host_length = (size_t)(colon - text);
  *port = value;
  return 0;
}

static int check_listen_address(loader *l, const reel_yaml_node *node, const char *key) {
  const char *host;
  size_t host_length;
  long port;
  reel_listen_scheme scheme;
  if (node->kind == REEL_YAML_SCALAR &&
      split_listen_address(node->text, node->length, &scheme, &host, &host_length, &port) == 0)
    return 0;
  char shown[96];
  describe_value(node, 0, shown, sizeof shown);
  if (node->kind == REEL_YAML_SCALAR && node->length > 0 && node->length <= 5 &&
      is_integer_text(node->text, node->length) && is_digit(node->text[0]))
    return fail(l, node->line, key,
                "expected HOST:PORT, got %s "
                "(write 127.0.0.1:%s for this machine only, 0.0.0.0:%s for all interfaces)",
                shown, node->text, node->text);
  return fail(l, node->line, key,
              "expected HOST:PORT, http://HOST:PORT, https://HOST:PORT or h3://HOST:PORT (IPv6 as "
              "[ADDRESS]:PORT) with a port from 0 to 65535, got %s",
              shown);
}

/* ---- pipeline: ----------------------------------------------------------- */

/* Converts a subtree to JSON: plain scalars are typed by their text, quoted
 * ones are strings. Duplicate keys are refused at any depth. */
static int to_json(loader *l, const reel_yaml_node *node, const char *path, json_t **out) {
  *out = NULL;
  if (node->kind == REEL_YAML_SCALAR) {
    long long integer;
    double number;
    int boolean;
    if (is_null(node)) {
      *out = json_null();
    } else if (node->plain && is_integer_text(node->text, node->length)) {
      if (!read_integer(node, &integer))
        return fail(l, node->line, path, "integer does not fit in 64 bits (quote it to pass it as text)");
      *out = json_integer(integer);
    } else if (read_boolean(node, 0, &boolean)) {
      *out = json_boolean(boolean);
    } else if (read_number(node, &number)) {
      *out = json_real(number);
    } else {
      *out = json_stringn(node->text, node->length);
    }
    return *out ? 0 : out_of_memory(l);
  }
  json_t *container = node->kind == REEL_YAML_SEQUENCE ? json_array() : json_object();
  if (!container) return out_of_memory(l);
  size_t step = node->kind == REEL_YAML_SEQUENCE ? 1 : 2;
  for (size_t i = 0; i + step - 1 < node->count; i += step) {
    const reel_yaml_node *key = step == 2 ? node->children[i] : NULL;
    const reel_yaml_node *value = node->children[i + step - 1];
    char child_path[PATH_SIZE];
    extend_path(child_path, sizeof child_path, path, key, i);
    if (key && json_object_getn(container, key->text, key->length)) {
      json_decref(container);
      return fail(l, key->line, child_path, "duplicate key (each key may appear once in a mapping)");
    }
    json_t *child;
    int rc = to_json(l, value, child_path, &child);
    if (!rc && (key ? json_object_setn_new(container, key->text, key->length, child)
                    : json_array_append_new(container, child)))
      rc = out_of_memory(l);
    if (rc) {
      json_decref(container);
      return rc;
    }
  }
  *out = container;
  return 0;
}

/* Fills command_argv from a list of words, or from one string split on spaces. */
static int load_command(loader *l, const pipeline_key *entry, const reel_yaml_node *value) {
  reel_config *config = l->config;
  size_t count = 0;
  if (value->kind == REEL_YAML_MAPPING)
    return fail(l, value->line, entry->name,
                "expected a list of words such as [python3, pipeline.py] or one string, got a mapping");
  if (value->kind == REEL_YAML_SEQUENCE) {
    for (size_t i = 0; i < value->count; i++) {
      const reel_yaml_node *item = value->children[i];
      if (item->kind != REEL_YAML_SCALAR || is_null(item) || item->length == 0) {
        char key[PATH_SIZE], shown[96] = "nothing";
        extend_path(key, sizeof key, entry->name, NULL, i);
        if (item->kind != REEL_YAML_SCALAR) describe_value(item, 0, shown, sizeof shown);
        return fail(l, item->line, key, "expected a non-empty word, got %s", shown);
      }
    }
    count = value->count;
  } else {
    for (size_t i = 0; i < value->length; i++)
      if (value->text[i] != ' ' && value->text[i] != '\t' &&
          (i == 0 || value->text[i - 1] == ' ' || value->text[i - 1] == '\t'))
        count++;
  }
  if (count == 0)
    return fail(l, value->line, entry->name, "must name a program to run, such as [python3, pipeline.py]");
  config->command_argv = calloc(count + 1, sizeof *config->command_argv);
  if (!config->command_argv) return out_of_memory(l);
  if (value->kind == REEL_YAML_SEQUENCE) {
    for (size_t i = 0; i < count; i++) {
      char key[PATH_SIZE];
      extend_path(key, sizeof key, entry->name, NULL, i);
      int rc = copy_text(l, value->children[i], key, &config->command_argv[i]);
      if (rc) return rc;
      config->command_argc++;
    }
    return 0;
  }
  if (memchr(value->text, '\0', value->length))
    return fail(l, value->line, entry->name, "must not contain NUL bytes");
  const char *word = value->text, *end = value->text + value->length;
  while (word < end) {
    while (word < end && (*word == ' ' || *word == '\t')) word++;
    const char *stop = word;
    while (stop < end && *stop != ' ' && *stop != '\t') stop++;
    if (stop == word) break;
    char *copy = reel_slice_dup((reel_slice){word, (size_t)(stop - word)});
    if (!copy) return out_of_memory(l);
    config->command_argv[config->command_argc++] = copy;
    word = stop;
  }
  return 0;
}

/* 1 for an espeak-ng voice name: "en-us", "fr", "mb-fr1", "en+f3", "roa/fr". */
static int is_voice_name(const char *text, size_t length) {
  if (length == 0 || length > 64) return 0;
  for (size_t i = 0; i < length; i++) {
    char c = text[i];
    if (!(is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '+' || c == '_' ||
          c == '/'))
      return 0;
  }
  return 1;
}

/* What a known pipeline key's value should have been, such as "an integer
 * from 1 to 64", or NULL when `value` is acceptable (null always is). `out`
 * holds the text when it has to be made. */
static const char *pipeline_value_problem(const pipeline_key *entry, const json_t *value, char *out, size_t size) {
  if (json_is_null(value)) return NULL;
  switch (entry->type) {
    case PIPELINE_TEXT:
      return json_is_string(value) ? NULL : "a string";
    case PIPELINE_CHOICE:
      list_in_words(entry->choices, out, size);
      return json_is_string(value) && in_list(entry->choices, json_string_value(value), json_string_length(value))
                 ? NULL
                 : out;
    case PIPELINE_NUMBER: {
      snprintf(out, size, "a number from %g to %g", entry->minimum, entry->maximum);
      double number = json_number_value(value);
      return json_is_number(value) && number >= entry->minimum && number <= entry->maximum ? NULL : out;
    }
    case PIPELINE_INTEGER: {
      snprintf(out, size, "an integer from %.0f to %.0f", entry->minimum, entry->maximum);
      double number = (double)json_integer_value(value);
      return json_is_integer(value) && number >= entry->minimum && number <= entry->maximum ? NULL : out;
    }
    case PIPELINE_BOOLEAN:
      return json_is_boolean(value) ? NULL : "true or false";
    case PIPELINE_FRAME_SIZE: {
      int width, height;
      return json_is_string(value) && reel_render_parse_size(json_string_value(value), &width, &height) == 0
                 ? NULL
                 : "a frame size \"W*H\" or \"WxH\" such as \"1280*720\" (even numbers from 16 to 7680)";
    }
    case PIPELINE_VOICE:
      return json_is_string(value) && is_voice_name(json_string_value(value), json_string_length(value))
                 ? NULL
                 : "an espeak-ng voice name such as en-us, fr or de (letters, digits, -, +, _ and /)";
    case PIPELINE_MAPPING:
      return json_is_object(value) ? NULL : "a mapping (keys indented below it)";
    case PIPELINE_COMMAND:
      return NULL;
  }
  return NULL;
}

/* Checks a known pipeline key's value; fills the parsed views in reel_config. */
static int check_pipeline_value(loader *l, const pipeline_key *entry, const reel_yaml_node *node,
                                const json_t *value) {
  if (json_is_null(value)) return 0;
  if (entry->type == PIPELINE_COMMAND) return load_command(l, entry, node);
  char expected_text[160];
  const char *expected = pipeline_value_problem(entry, value, expected_text, sizeof expected_text);
  if (!expected) return 0;
  /* Would the same text be right with the quotes removed (or added)? */
  const char *hint = NULL;
  if (node->kind == REEL_YAML_SCALAR && !memchr(node->text, '\0', node->length)) {
    reel_yaml_node other = *node;
    other.plain = !node->plain;
    loader silent = {.name = l->name, .config = l->config};
    json_t *retyped = NULL;
    char scratch[160];
    if (to_json(&silent, &other, entry->name, &retyped) == 0 && !json_is_null(retyped) &&
        !pipeline_value_problem(entry, retyped, scratch, sizeof scratch))
      hint = node->plain ? "put it in quotes" : "write it without quotes";
    json_decref(retyped);
  }
  char shown[160];
  describe_wrong(node, hint, shown, sizeof shown);
  return fail(l, node->line, entry->name, "expected %s, got %s", expected, shown);
}

/* The table index of a pipeline key, or PIPELINE_KEY_COUNT. */
static size_t find_pipeline_key(const reel_yaml_node *key) {
  for (size_t i = 0; i < PIPELINE_KEY_COUNT; i++) {
    const char *leaf = pipeline_keys[i].name + PIPELINE_PREFIX_LENGTH;
    if (strlen(leaf) == key->length && memcmp(leaf, key->text, key->length) == 0) return i;
  }
  return PIPELINE_KEY_COUNT;
}

static int load_pipeline(loader *l, const reel_yaml_node *mapping) {
  reel_config *config = l->config;
  for (size_t i = 0; i + 1 < mapping->count; i += 2) {
    const reel_yaml_node *key = mapping->children[i], *value = mapping->children[i + 1];
    size_t index = find_pipeline_key(key);
    if (index == PIPELINE_KEY_COUNT) {
      const char *names[PIPELINE_KEY_COUNT];
      for (size_t n = 0; n < PIPELINE_KEY_COUNT; n++)
        names[n] = pipeline_keys[n].name + PIPELINE_PREFIX_LENGTH;
      return unknown_key(l, "pipeline", key, names, PIPELINE_KEY_COUNT);
    }
    const pipeline_key *entry = &pipeline_keys[index];
    if (l->pipeline_lines[index])
      return fail(l, key->line, entry->name, "duplicate key (first set on line %lu)",
                  l->pipeline_lines[index]);
    l->pipeline_lines[index] = key->line;
    json_t *converted;
    int rc = to_json(l, value, entry->name, &converted);
    if (rc) return rc;
    if ((rc = check_pipeline_value(l, entry, value, converted))) {
      json_decref(converted);
      return rc;
    }
    if (json_object_setn_new(config->pipeline, key->text, key->length, converted)) return out_of_memory(l);
  }
  return 0;
}

/* ---- The whole file ---------------------------------------------------- */

static int load_root(loader *l, const reel_yaml_node *root) {
  if (!root || is_null(root)) return 0;
  if (root->kind != REEL_YAML_MAPPING) {
    char shown[96];
    describe_value(root, 0, shown, sizeof shown);
    return fail(l, root->line, NULL, "expected a mapping with service: and pipeline: sections, got %s",
                shown);
  }
  unsigned long pipeline_line = 0;
  for (size_t i = 0; i + 1 < root->count; i += 2) {
    const reel_yaml_node *key = root->children[i], *value = root->children[i + 1];
    int is_service = text_is(key, "service");
    if (!is_service && !text_is(key, "pipeline")) {
      if (find_service_key("service", key) >= 0)
        return fail(l, key->line, key->text,
                    "unknown key (did you mean service.%s? reel's own settings go under service:)",
                    key->text);
      if (find_pipeline_key(key) < PIPELINE_KEY_COUNT)
        return fail(l, key->line, key->text,
                    "unknown key (did you mean pipeline.%s? pipeline settings go under pipeline:)",
                    key->text);
      static const char *const sections[] = {"service", "pipeline"};
      return unknown_key(l, "", key, sections, 2);
    }
    unsigned long *seen = is_service ? &l->service_line : &pipeline_line;
    if (*seen)
      return fail(l, key->line, key->text, "duplicate key (first set on line %lu)", *seen);
    *seen = key->line;
    if (is_null(value)) continue;
    if (value->kind != REEL_YAML_MAPPING) {
      char shown[96];
      describe_value(value, 0, shown, sizeof shown);
      return fail(l, value->line, key->text, "expected a mapping (keys indented below it), got %s", shown);
    }
    int rc = is_service ? load_service_section(l, value, "service") : load_pipeline(l, value);
    if (rc) return rc;
  }
  return 0;
}

static int join_path(loader *l, const char *directory, const char *file, char **out) {
  size_t length = strlen(directory);
  int slash = length && directory[length - 1] == '/';
  if (asprintf(out, "%s%s%s", directory, slash ? "" : "/", file) < 0) {
    *out = NULL;
    return out_of_memory(l);
  }
  return 0;
}

/* Table positions of keys this file names directly (the names exist). */
static size_t service_index(const char *name) {
  size_t i = 0;
  while (i + 1 < SERVICE_KEY_COUNT && strcmp(service_keys[i].name, name) != 0) i++;
  return i;
}

static size_t pipeline_index(const char *name) {
  size_t i = 0;
  while (i + 1 < PIPELINE_KEY_COUNT && strcmp(pipeline_keys[i].name, name) != 0) i++;
  return i;
}

/* A place reeld creates if it is missing must not exist as the wrong kind of
 * thing (data_dir as a file, database.path as a directory...). */
static int check_place(loader *l, const char *key, unsigned long line, const char *path, int want_directory) {
  struct stat st;
  if (!path || stat(path, &st) != 0) return 0; /* made at start */
  if (want_directory && !S_ISDIR(st.st_mode))
    return fail(l, line, key, "%s exists but is not a directory", path);
  if (!want_directory && S_ISDIR(st.st_mode))
    return fail(l, line, key, "%s is a directory, not a database file", path);
  return 0;
}

/* Number of code points in UTF-8 text (the loader has refused invalid UTF-8). */
static size_t utf8_characters(const char *text, size_t length) {
  size_t count = 0;
  for (size_t i = 0; i < length; i++) count += ((unsigned char)text[i] & 0xC0) != 0x80;
  return count;
}

/* The checks of finish() that look at the file system, and the config's own prompt. */
static int check_places(loader *l) {
  reel_config *config = l->config;
  unsigned long data_dir_line = l->service_lines[service_index("service.data_dir")];
  unsigned long line = data_dir_line ? data_dir_line : l->service_line ? l->service_line : 1;
  int rc = check_place(l, "service.data_dir", line, config->data_dir, 1);
  unsigned long database_line = l->service_lines[service_index("service.database.path")];
  if (!rc && strcmp(config->database_backend, "sqlite") == 0)
    rc = check_place(l, database_line ? "service.database.path" : "service.data_dir",
                     database_line ? database_line : line, config->database_path, 0);
  unsigned long storage_line = l->service_lines[service_index("service.storage.path")];
  if (!rc && strcmp(config->storage_backend, "local") == 0)
    rc = check_place(l, storage_line ? "service.storage.path" : "service.data_dir",
                     storage_line ? storage_line : line, config->storage_path, 1);
  if (rc) return rc;
  const json_t *prompt = json_object_get(config->pipeline, "prompt");
  if (json_is_string(prompt)) {
    size_t characters = utf8_characters(json_string_value(prompt), json_string_length(prompt));
    if (characters > (size_t)config->max_prompt_chars)
      return fail(l, l->pipeline_lines[pipeline_index("pipeline.prompt")], "pipeline.prompt",
                  "has %zu characters; service.max_prompt_chars allows at most %d", characters,
                  config->max_prompt_chars);
  }
  return 0;
}

/* Checks that need several keys, and fills defaults that depend on others. */
static int finish(loader *l) {
  reel_config *config = l->config;
  if (config->n_tokens == 0) {
    unsigned long line = l->service_lines[service_index("service.auth")];
    if (!line) line = l->service_line ? l->service_line : 1;
    return fail(l, line, "service.auth.tokens",
                "required: add at least one bearer token, such as auth: {tokens: [a-long-random-string]}");
  }
  if (config->retry_max_seconds < config->retry_base_seconds) {
    unsigned long line = l->service_lines[service_index("service.retry_max_seconds")];
    if (!line) line = l->service_lines[service_index("service.retry_base_seconds")];
    return fail(l, line, "service.retry_max_seconds",
                "must be at least service.retry_base_seconds (%g), got %g", config->retry_base_seconds,
                config->retry_max_seconds);
  }
  if (config->n_listen == 0) {
    if (!(config->listen[0] = strdup(DEFAULT_LISTEN))) return out_of_memory(l);
    config->n_listen = 1;
  }
  int rc;
  if (!config->database_path && (rc = join_path(l, config->data_dir, "reel.db", &config->database_path)))
    return rc;
  if (!config->storage_path && (rc = join_path(l, config->data_dir, "artifacts", &config->storage_path)))
    return rc;
  int tls_listener = -1;
  for (int i = 0; i < config->n_listen; i++)
    if (config->listen_scheme[i] != REEL_LISTEN_HTTP && tls_listener < 0) tls_listener = i;
  if (tls_listener >= 0 && (!config->tls_cert_file || !config->tls_key_file)) {
    unsigned long line = l->listen_lines[tls_listener];
    if (!line) line = l->service_lines[service_index("service.listen")];
    return fail(l, line, "service.listen",
                "%s needs service.tls.cert_file and service.tls.key_file (PEM files; "
                "scripts/dev-cert.sh makes a development pair)",
                config->listen[tls_listener]);
  }
  static const struct {
    const char *backend, *key;
    size_t offset;
  } required[] = {
      {"s3", "service.storage.bucket", offsetof(reel_config, storage_bucket)},
      {"s3", "service.storage.access_key_id", offsetof(reel_config, storage_access_key_id)},
      {"s3", "service.storage.secret_access_key", offsetof(reel_config, storage_secret_access_key)},
      {"gcs", "service.storage.bucket", offsetof(reel_config, storage_bucket)},
      {"gcs", "service.storage.credentials_file", offsetof(reel_config, storage_credentials_file)},
  };
  for (size_t i = 0; i < sizeof required / sizeof *required; i++) {
    if (strcmp(config->storage_backend, required[i].backend) != 0) continue;
    if (*(char **)((char *)config + required[i].offset)) continue;
    unsigned long line = l->service_lines[service_index("service.storage.backend")];
    return fail(l, line, required[i].key, "required when service.storage.backend is %s", required[i].backend);
  }

  int postgres = strcmp(config->database_backend, "postgres") == 0;
  if (postgres && !config->database_url) {
    unsigned long line = l->service_lines[service_index("service.database.backend")];
    return fail(l, line, "service.database.url",
                "required when service.database.backend is postgres (a libpq URI such as "
                "postgresql://reel@db.internal/reel)");
  }
  if (!postgres && strcmp(config->mode, "both") != 0) {
    unsigned long line = l->service_lines[service_index("service.mode")];
    return fail(l, line, "service.mode",
                "%s needs a job store shared by several processes: set service.database.backend to postgres "
                "(SQLite serves one process only; use mode both)",
                config->mode);
  }
  if (config->node_id && (!config->node_id[0] || strlen(config->node_id) > 63)) {
    unsigned long line = l->service_lines[service_index("service.node_id")];
    return fail(l, line, "service.node_id", "must be 1 to 63 characters");
  }

  const json_t *backend = json_object_get(config->pipeline, "default_backend");
  config->default_backend = strdup(json_is_string(backend) ? json_string_value(backend) : "local");
  if (!config->default_backend) return out_of_memory(l);
  if (strcmp(config->default_backend, "command") == 0 && config->command_argc == 0) {
    return fail(l, l->pipeline_lines[pipeline_index("pipeline.default_backend")], "pipeline.command",
                "required when pipeline.default_backend is command "
                "(such as command: [python3, pipeline.py])");
  }
  return check_places(l);
}

static int apply_defaults(reel_config *config) {
  for (size_t i = 0; i < SERVICE_KEY_COUNT; i++) {
    const service_key *entry = &service_keys[i];
    void *field = field_of(config, entry);
    switch (entry->type) {
      case VALUE_STRING:
      case VALUE_CHOICE:
      case VALUE_URL:
      case VALUE_FILE:
      case VALUE_DIRECTORY:
        if (entry->default_text && !(*(char **)field = strdup(entry->default_text))) return REEL_ENOMEM;
        break;
      case VALUE_INT:
      case VALUE_BOOLEAN:
        *(int *)field = (int)entry->default_number;
        break;
      case VALUE_SIZE:
        *(size_t *)field = (size_t)entry->default_number;
        break;
      case VALUE_SECONDS:
        *(double *)field = entry->default_number;
        break;
      case VALUE_SECTION:
      case VALUE_LISTEN:
      case VALUE_TOKENS:
      case VALUE_PROXIES:
      case VALUE_WEBHOOKS:
        break;
    }
  }
  config->pipeline = json_object();
  return config->pipeline ? 0 : REEL_ENOMEM;
}

int reel_config_load_string(const char *yaml, size_t len, const char *name, reel_config *out,
                            char *err, size_t errlen) {
  loader l = {.name = name ? name : "(config)", .err = err, .errlen = errlen, .config = out};
  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = '\0';
  if (!(out->path = strdup(l.name)) || apply_defaults(out)) {
    reel_config_free(out);
    return out_of_memory(&l);
  }
  reel_yaml_node *root = NULL;
  int rc = reel_yaml_parse(yaml ? yaml : "", yaml ? len : 0, l.name, &root, err, errlen);
  if (!rc) rc = load_root(&l, root);
  if (!rc) rc = finish(&l);
  reel_yaml_free(root);
  if (rc) reel_config_free(out);
  return rc;
}

/* Reads a whole config file (capped one byte past the YAML limit, so the
 * parser can say it is too large). 0, or REEL_ECONFIG/REEL_ENOMEM with a message. */
static int read_config_file(const char *path, reel_buf *contents, char *err, size_t errlen) {
  FILE *file = fopen(path, "rb");
  if (!file) {
    if (err && errlen) snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return REEL_ECONFIG;
  }
  reel_buf_init(contents, REEL_YAML_MAX_BYTES + 1);
  char chunk[65536];
  int rc = 0;
  while (!rc && contents->len < contents->max) {
    size_t want = contents->max - contents->len < sizeof chunk ? contents->max - contents->len : sizeof chunk;
    size_t got = fread(chunk, 1, want, file);
    if (got && reel_buf_append(contents, chunk, got)) rc = REEL_ENOMEM;
    if (got < want) break;
  }
  if (!rc && ferror(file)) {
    if (err && errlen) snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    rc = REEL_ECONFIG;
  } else if (rc && err && errlen) {
    snprintf(err, errlen, "%s: out of memory", path);
  }
  fclose(file);
  if (rc) reel_buf_free(contents);
  return rc;
}

/* Whether WORD of pipeline.command is a relative file path to anchor at the
 * config file's directory: the program when it has a slash, any other word
 * (not an option, not a template) when that file exists there. */
static int is_relative_file_word(const char *dir, const char *word, int is_program) {
  if (word[0] == '\0' || word[0] == '/' || word[0] == '-' || strchr(word, '{')) return 0;
  if (is_program) return strchr(word, '/') != NULL;
  char candidate[PATH_MAX];
  if ((size_t)snprintf(candidate, sizeof candidate, "%s/%s", dir, word) >= sizeof candidate) return 0;
  struct stat st;
  return stat(candidate, &st) == 0 && S_ISREG(st.st_mode);
}

/* The pipeline runs in its job's workspace, so relative file words of
 * pipeline.command (["python3", "pipeline.py"], ["./run.sh"]) are made
 * absolute against the directory of the config file that names them. */
static int anchor_command_paths(reel_config *config, const char *config_path, char *err, size_t errlen) {
  if (!config->command_argv || config->command_argc == 0) return 0;
  char *copy = strdup(config_path);
  if (!copy) return REEL_ENOMEM;
  char *dir = realpath(dirname(copy), NULL);
  free(copy);
  if (!dir) {
    if (err && errlen) snprintf(err, errlen, "%s: cannot resolve its directory: %s", config_path, strerror(errno));
    return REEL_ECONFIG;
  }
  int rc = 0;
  for (int i = 0; i < config->command_argc && !rc; i++) {
    char *word = config->command_argv[i];
    if (!is_relative_file_word(dir, word, i == 0)) continue;
    size_t need = strlen(dir) + 1 + strlen(word) + 1;
    char *absolute = malloc(need);
    if (!absolute) {
      rc = REEL_ENOMEM;
      break;
    }
    snprintf(absolute, need, "%s/%s", dir, strncmp(word, "./", 2) == 0 ? word + 2 : word);
    free(word);
    config->command_argv[i] = absolute;
  }
  free(dir);
  return rc;
}

int reel_config_load(const char *path, reel_config *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  reel_buf contents;
  int rc = read_config_file(path, &contents, err, errlen);
  if (rc) return rc;
  rc = reel_config_load_string(contents.data ? contents.data : "", contents.len, path, out, err, errlen);
  reel_buf_free(&contents);
  if (!rc && (rc = anchor_command_paths(out, path, err, errlen)) != 0) reel_config_free(out);
  return rc;
}

int reel_config_load_pipeline(const char *path, json_t **out, char *err, size_t errlen) {
  *out = NULL;
  reel_config config;
  memset(&config, 0, sizeof config);
  loader l = {.name = path, .err = err, .errlen = errlen, .config = &config};
  if (err && errlen) err[0] = '\0';
  reel_buf contents;
  int rc = read_config_file(path, &contents, err, errlen);
  if (rc) return rc;
  reel_yaml_node *root = NULL;
  rc = reel_yaml_parse(contents.data ? contents.data : "", contents.len, path, &root, err, errlen);
  reel_buf_free(&contents);
  if (!rc && !(config.pipeline = json_object())) rc = out_of_memory(&l);
  if (!rc && root && !is_null(root)) {
    if (root->kind != REEL_YAML_MAPPING) rc = fail(&l, root->line, NULL, "expected a mapping of pipeline keys");
    else rc = load_pipeline(&l, root);
  }
  reel_yaml_free(root);
  if (!rc) *out = json_incref(config.pipeline);
  reel_config_free(&config);
  return rc;
}

void reel_config_free(reel_config *cfg) {
  if (!cfg) return;
  for (size_t i = 0; i < SERVICE_KEY_COUNT; i++) {
    value_type type = service_keys[i].type;
    if (type == VALUE_STRING || type == VALUE_CHOICE || type == VALUE_URL || type == VALUE_FILE ||
        type == VALUE_DIRECTORY)
      free(*(char **)field_of(cfg, &service_keys[i]));
  }
  for (int i = 0; i < cfg->n_listen && i < REEL_MAX_LISTEN; i++) free(cfg->listen[i]);
  for (int i = 0; i < cfg->n_tokens && i < REEL_MAX_TOKENS; i++) free(cfg->tokens[i]);
  for (int i = 0; i < cfg->n_trusted_proxies && i < REEL_MAX_PROXIES; i++) free(cfg->trusted_proxies[i]);
  for (int i = 0; i < cfg->n_webhooks && i < REEL_MAX_WEBHOOKS; i++) {
    free(cfg->webhooks[i].url);
    if (cfg->webhooks[i].secret) memset(cfg->webhooks[i].secret, 0, strlen(cfg->webhooks[i].secret));
    free(cfg->webhooks[i].secret);
  }
  if (cfg->command_argv)
    for (int i = 0; cfg->command_argv[i]; i++) free(cfg->command_argv[i]);
  free(cfg->command_argv);
  free(cfg->default_backend);
  free(cfg->path);
  json_decref(cfg->pipeline);
  memset(cfg, 0, sizeof *cfg);
}
