/* `reel-vectors gcs` and `reel-vectors sign-gcs`: runs Google's V4 signing
 * conformance cases (signingV4Tests, postPolicyV4Tests of a file laid out
 * like googleapis/conformance-tests storage/v1/v4_signatures.json) through
 * storage/gcs_sign.h, and prints single URLs from reel's upload/delivery API
 * for the cross-check against the official Node.js SDK. The key used here is
 * the conformance suite's inactive dummy key, so printing the URLs of a
 * mismatch (their signatures included) reveals nothing. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "storage/gcs_sign.h"
#include "storage/vectors.h"

#define CASE_FILE_MAX (16 * 1024 * 1024)

/* --------------------------------------------------------------- parsing -- */

static int parse_int64(const char *s, int64_t *out) {
  if (!s || !*s) return -1;
  errno = 0;
  char *end = NULL;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || end == s) return -1;
  *out = (int64_t)v;
  return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* Parses "YYYY-MM-DDTHH:MM:SSZ" into unix seconds. */
static int parse_rfc3339(const char *s, int64_t *out) {
  int y, mo, d, h, mi, se;
  char z = 0, extra = 0;
  if (!s || strlen(s) != 20) return -1;
  if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c%c", &y, &mo, &d, &h, &mi, &se, &z, &extra) != 7 || z != 'Z') return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 || h < 0 || mi < 0 || se < 0) return -1;
  *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
  return 0;
}

/* "expiration" is a number in the current suite and a string in older copies. */
static int json_seconds(json_t *v, int64_t *out) {
  if (json_is_integer(v)) {
    *out = (int64_t)json_integer_value(v);
    return 0;
  }
  if (json_is_string(v)) return parse_int64(json_string_value(v), out);
  return -1;
}

static const char *json_str(json_t *obj, const char *name) {
  json_t *v = json_object_get(obj, name);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Fills params from a JSON object of strings (in the file's order). */
static int json_params(json_t *obj, reel_gcs_param *params, size_t *count, const char *what, char *err,
                       size_t errlen) {
  *count = 0;
  if (!obj) return 0;
  if (!json_is_object(obj)) {
    snprintf(err, errlen, "%s is not an object", what);
    return -1;
  }
  const char *name;
  json_t *value;
  json_object_foreach(obj, name, value) {
    if (*count >= REEL_GCS_PARAMS_MAX) {
      snprintf(err, errlen, "%s has more than %d entries", what, REEL_GCS_PARAMS_MAX);
      return -1;
    }
    if (!json_is_string(value)) {
      snprintf(err, errlen, "%s.%s is not a string", what, name);
      return -1;
    }
    params[*count].name = name;
    params[*count].value = json_string_value(value);
    (*count)++;
  }
  return 0;
}

/* Reads the location options shared by both kinds of case. */
static int json_location(json_t *c, reel_gcs_location *loc, char *err, size_t errlen) {
  memset(loc, 0, sizeof *loc);
  loc->scheme = json_str(c, "scheme");
  const char *style = json_str(c, "urlStyle");
  if (!style || strcmp(style, "PATH_STYLE") == 0) {
    loc->style = REEL_GCS_PATH_STYLE;
  } else if (strcmp(style, "VIRTUAL_HOSTED_STYLE") == 0) {
    loc->style = REEL_GCS_VIRTUAL_HOSTED_STYLE;
  } else if (strcmp(style, "BUCKET_BOUND_HOSTNAME") == 0) {
    loc->style = REEL_GCS_BUCKET_BOUND_HOSTNAME;
  } else {
    snprintf(err, errlen, "unknown urlStyle \"%s\"", style);
    return -1;
  }
  loc->bucket_bound_hostname = json_str(c, "bucketBoundHostname");
  loc->hostname = json_str(c, "hostname");
  loc->endpoint = json_str(c, "clientEndpoint");
  loc->emulator_host = json_str(c, "emulatorHostname");
  loc->universe_domain = json_str(c, "universeDomain");
  return 0;
}

static int json_times(json_t *c, int64_t *timestamp, int64_t *expires, char *err, size_t errlen) {
  if (parse_rfc3339(json_str(c, "timestamp"), timestamp) != 0) {
    snprintf(err, errlen, "timestamp is missing or not YYYY-MM-DDTHH:MM:SSZ");
    return -1;
  }
  if (json_seconds(json_object_get(c, "expiration"), expires) != 0) {
    snprintf(err, errlen, "expiration is missing or not a number of seconds");
    return -1;
  }
  return 0;
}

static const char *description(json_t *c) {
  const char *d = json_str(c, "description");
  return d ? d : "(no description)";
}

/* ------------------------------------------------------------ the cases -- */

/* Runs one signingV4Tests case; returns 1 when it passed. */
static int run_url_case(const reel_gcs_key *key, json_t *c, size_t index) {
  char err[512] = "";
  reel_gcs_param headers[REEL_GCS_PARAMS_MAX], query[REEL_GCS_PARAMS_MAX];
  reel_gcs_url_request req;
  memset(&req, 0, sizeof req);
  const char *expected = json_str(c, "expectedUrl");
  req.method = json_str(c, "method");
  req.bucket = json_str(c, "bucket");
  req.object = json_str(c, "object");
  if (!json_is_object(c) || !expected) {
    snprintf(err, sizeof err, "expectedUrl is missing");
  } else if (json_times(c, &req.timestamp, &req.expires_in, err, sizeof err) == 0 &&
             json_location(c, &req.location, err, sizeof err) == 0 &&
             json_params(json_object_get(c, "headers"), headers, &req.header_count, "headers", err, sizeof err) == 0 &&
             json_params(json_object_get(c, "queryParameters"), query, &req.query_count, "queryParameters", err,
                         sizeof err) == 0) {
    req.headers = headers;
    req.query = query;
    reel_gcs_signed_url signed_url;
    int rc = reel_gcs_sign_url(key, &req, &signed_url, err, sizeof err);
    if (rc == 0) {
      int same = strcmp(signed_url.url, expected) == 0;
      if (!same) {
        printf("FAIL signingV4Tests[%zu] %s: URL differs\n  expected: %s\n  actual:   %s\n", index, description(c),
               expected, signed_url.url);
        printf("  canonical request:\n    ");
        for (const char *p = signed_url.canonical_request; *p; p++) {
          if (*p == '\n')
            fputs("\n    ", stdout);
          else
            putchar(*p);
        }
        putchar('\n');
      }
      reel_gcs_signed_url_free(&signed_url);
      return same;
    }
  }
  printf("FAIL signingV4Tests[%zu] %s: %s\n", index, description(c), err);
  return 0;
}

static int json_conditions(json_t *obj, reel_gcs_policy_condition *conds, size_t *count, char *err, size_t errlen) {
  *count = 0;
  if (!obj) return 0;
  if (!json_is_object(obj)) {
    snprintf(err, errlen, "conditions is not an object");
    return -1;
  }
  const char *name;
  json_t *value;
  json_object_foreach(obj, name, value) {
    if (*count >= REEL_GCS_CONDITIONS_MAX) {
      snprintf(err, errlen, "too many conditions");
      return -1;
    }
    reel_gcs_policy_condition *c = &conds[*count];
    memset(c, 0, sizeof *c);
    int is_pair = json_is_array(value) && json_array_size(value) == 2;
    if ((strcmp(name, "startsWith") == 0 || strcmp(name, "eq") == 0) && is_pair &&
        json_is_string(json_array_get(value, 0)) && json_is_string(json_array_get(value, 1))) {
      c->kind = name[0] == 's' ? REEL_GCS_CONDITION_STARTS_WITH : REEL_GCS_CONDITION_EQ;
      c->field = json_string_value(json_array_get(value, 0));
      c->value = json_string_value(json_array_get(value, 1));
    } else if (strcmp(name, "contentLengthRange") == 0 && is_pair && json_is_integer(json_array_get(value, 0)) &&
               json_is_integer(json_array_get(value, 1))) {
      c->kind = REEL_GCS_CONDITION_CONTENT_LENGTH_RANGE;
      c->min = (int64_t)json_integer_value(json_array_get(value, 0));
      c->max = (int64_t)json_integer_value(json_array_get(value, 1));
    } else {
      snprintf(err, errlen, "unsupported condition \"%s\"", name);
      return -1;
    }
    (*count)++;
  }
  return 0;
}

/* Runs one postPolicyV4Tests case; returns 1 when it passed. */
static int run_policy_case(const reel_gcs_key *key, json_t *c, size_t index) {
  char err[512] = "";
  reel_gcs_param fields[REEL_GCS_PARAMS_MAX];
  reel_gcs_policy_condition conds[REEL_GCS_CONDITIONS_MAX];
  reel_gcs_policy_request req;
  memset(&req, 0, sizeof req);
  json_t *in = json_object_get(c, "policyInput");
  json_t *expect = json_object_get(c, "policyOutput");
  json_t *expect_fields = json_object_get(expect, "fields");
  const char *expect_url = json_str(expect, "url");
  if (!json_is_object(in) || !expect_url || !json_is_object(expect_fields)) {
    printf("FAIL postPolicyV4Tests[%zu] %s: policyInput, policyOutput.url or policyOutput.fields missing\n", index,
           description(c));
    return 0;
  }
  req.bucket = json_str(in, "bucket");
  req.object = json_str(in, "object");
  if (json_times(in, &req.timestamp, &req.expires_in, err, sizeof err) != 0 ||
      json_location(in, &req.location, err, sizeof err) != 0 ||
      json_params(json_object_get(in, "fields"), fields, &req.field_count, "fields", err, sizeof err) != 0 ||
      json_conditions(json_object_get(in, "conditions"), conds, &req.condition_count, err, sizeof err) != 0) {
    printf("FAIL postPolicyV4Tests[%zu] %s: %s\n", index, description(c), err);
    return 0;
  }
  req.fields = fields;
  req.conditions = conds;
  reel_gcs_post_policy policy;
  if (reel_gcs_sign_post_policy(key, &req, &policy, err, sizeof err) != 0) {
    printf("FAIL postPolicyV4Tests[%zu] %s: %s\n", index, description(c), err);
    return 0;
  }
  int ok = 1;
  if (strcmp(policy.url, expect_url) != 0) {
    printf("FAIL postPolicyV4Tests[%zu] %s: url differs\n  expected: %s\n  actual:   %s\n", index, description(c),
           expect_url, policy.url);
    ok = 0;
  }
  const char *name;
  json_t *value;
  json_object_foreach(expect_fields, name, value) {
    const char *want = json_is_string(value) ? json_string_value(value) : NULL;
    const char *got = reel_gcs_post_policy_field(&policy, name);
    if (!want || !got || strcmp(want, got) != 0) {
      printf("FAIL postPolicyV4Tests[%zu] %s: field %s differs\n  expected: %s\n  actual:   %s\n", index,
             description(c), name, want ? want : "(not a string)", got ? got : "(missing)");
      if (strcmp(name, "policy") == 0) {
        const char *decoded = json_str(expect, "expectedDecodedPolicy");
        printf("  expected policy document: %s\n  actual policy document:   %s\n", decoded ? decoded : "(not given)",
               policy.policy_json);
      }
      ok = 0;
    }
  }
  reel_gcs_post_policy_free(&policy);
  return ok;
}

/* Reads a whole file (at most CASE_FILE_MAX bytes) and parses it as JSON. */
static json_t *load_cases(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "reel-vectors gcs: %s: %s\n", path, strerror(errno));
    return NULL;
  }
  char *data = malloc(CASE_FILE_MAX + 1);
  size_t len = 0, n;
  while (data && len <= CASE_FILE_MAX && (n = fread(data + len, 1, CASE_FILE_MAX + 1 - len, f)) > 0) len += n;
  fclose(f);
  if (!data || len > CASE_FILE_MAX) {
    fprintf(stderr, "reel-vectors gcs: %s: %s\n", path, data ? "larger than 16 MiB" : "out of memory");
    free(data);
    return NULL;
  }
  json_error_t jerr;
  json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
  free(data);
  if (!root) fprintf(stderr, "reel-vectors gcs: %s:%d:%d: %s\n", path, jerr.line, jerr.column, jerr.text);
  return root;
}

int reel_vectors_gcs(int argc, char **argv) {
  if (argc < 1 || !argv[0]) {
    fprintf(stderr, "usage: reel-vectors gcs FILE.json   (service-account.json beside it)\n");
    return 2;
  }
  const char *path = argv[0];
  const char *slash = strrchr(path, '/');
  char key_path[4096];
  if (slash)
    snprintf(key_path, sizeof key_path, "%.*s/service-account.json", (int)(slash - path), path);
  else
    snprintf(key_path, sizeof key_path, "service-account.json");
  json_t *root = load_cases(path);
  if (!root) return 2;
  char err[512];
  reel_gcs_key *key = NULL;
  if (reel_gcs_key_load_file(key_path, &key, err, sizeof err) != 0) {
    fprintf(stderr, "reel-vectors gcs: %s\n", err);
    json_decref(root);
    return 2;
  }
  json_t *url_cases = json_object_get(root, "signingV4Tests");
  json_t *policy_cases = json_object_get(root, "postPolicyV4Tests");
  if (!json_is_array(url_cases) && !json_is_array(policy_cases)) {
    fprintf(stderr, "reel-vectors gcs: %s has neither signingV4Tests nor postPolicyV4Tests\n", path);
    json_decref(root);
    reel_gcs_key_free(key);
    return 2;
  }
  size_t passed = 0, failed = 0, i;
  json_t *c;
  json_array_foreach(url_cases, i, c) {
    if (run_url_case(key, c, i))
      passed++;
    else
      failed++;
  }
  json_array_foreach(policy_cases, i, c) {
    if (run_policy_case(key, c, i))
      passed++;
    else
      failed++;
  }
  printf("%zu passed, %zu failed\n", passed, failed);
  json_decref(root);
  reel_gcs_key_free(key);
  return failed == 0 && passed > 0 ? 0 : 1;
}

/* ------------------------------------------------------------- sign-gcs -- */

static void sign_usage(void) {
  fprintf(stderr, "usage: reel-vectors sign-gcs --key FILE --bucket B --object O --method GET|PUT|POST\n"
                  "                             --time UNIX --expires SECONDS [--content-type T] [--endpoint URL]\n");
}

int reel_vectors_sign_gcs(int argc, char **argv) {
  const char *key_path = NULL, *bucket = NULL, *object = NULL, *method = NULL, *time_text = NULL,
             *expires_text = NULL, *content_type = NULL, *endpoint = NULL;
  struct {
    const char *flag;
    const char **slot;
  } options[] = {{"--key", &key_path},       {"--bucket", &bucket},   {"--object", &object},
                 {"--method", &method},      {"--time", &time_text},  {"--expires", &expires_text},
                 {"--content-type", &content_type}, {"--endpoint", &endpoint}};
  for (int i = 0; i < argc; i++) {
    size_t k;
    for (k = 0; k < sizeof options / sizeof options[0]; k++)
      if (strcmp(argv[i], options[k].flag) == 0) break;
    if (k == sizeof options / sizeof options[0] || i + 1 >= argc) {
      fprintf(stderr, "reel-vectors sign-gcs: %s %s\n", argv[i],
              k == sizeof options / sizeof options[0] ? "is not an option" : "needs a value");
      sign_usage();
      return 2;
    }
    *options[k].slot = argv[++i];
  }
  int64_t now, expires;
  if (!key_path || !bucket || !object || !method || !time_text || !expires_text) {
    fprintf(stderr, "reel-vectors sign-gcs: --key, --bucket, --object, --method, --time and --expires are required\n");
    sign_usage();
    return 2;
  }
  if (parse_int64(time_text, &now) != 0 || parse_int64(expires_text, &expires) != 0) {
    fprintf(stderr, "reel-vectors sign-gcs: --time and --expires take whole seconds\n");
    return 2;
  }
  char err[512];
  reel_gcs_key *key = NULL;
  if (reel_gcs_key_load_file(key_path, &key, err, sizeof err) != 0) {
    fprintf(stderr, "reel-vectors sign-gcs: %s\n", err);
    return 2;
  }
  char *url = NULL;
  int rc;
  if (strcmp(method, "GET") == 0 && content_type) {
    rc = REEL_EINVAL;
    snprintf(err, sizeof err, "--content-type applies to PUT and POST only");
  } else if (strcmp(method, "GET") == 0) {
    rc = reel_gcs_download_url(key, bucket, object, now, expires, endpoint, &url, err, sizeof err);
  } else if (strcmp(method, "PUT") == 0) {
    rc = reel_gcs_upload_url(key, bucket, object, content_type, now, expires, endpoint, &url, err, sizeof err);
  } else if (strcmp(method, "POST") == 0) {
    rc = reel_gcs_resumable_upload_url(key, bucket, object, content_type, now, expires, endpoint, &url, err,
                                       sizeof err);
  } else {
    rc = REEL_EINVAL;
    snprintf(err, sizeof err, "--method must be GET (download), PUT (upload) or POST (resumable upload)");
  }
  reel_gcs_key_free(key);
  if (rc != 0) {
    free(url);
    fprintf(stderr, "reel-vectors sign-gcs: %s\n", err);
    return 2;
  }
  printf("%s\n", url);
  free(url);
  return 0;
}
