/* `reel-vectors aws` runs cases of the AWS SigV4 test suite (the layout of
 * tests/vectors/aws-sigv4/: request.txt, context.json and the expected
 * canonical request, string to sign, signature and signed request of both the
 * header and the query form) through storage/sigv4; `reel-vectors
 * presign-s3` prints one presigned S3 URL, for the boto3 cross-check. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/error.h"
#include "storage/sigv4.h"
#include "storage/vectors.h"

#define CASE_FILE_MAX (1024 * 1024)
#define WHY_MAX 1024

/* Reads dir/name whole (NUL-terminated; *len excludes the NUL). REEL_ENOTFOUND when absent. */
static int read_case_file(const char *dir, const char *name, char **data, size_t *len) {
  *data = NULL;
  *len = 0;
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) return REEL_ETOOBIG;
  FILE *f = fopen(path, "rb");
  if (!f) return REEL_ENOTFOUND;
  reel_buf b;
  reel_buf_init(&b, CASE_FILE_MAX);
  char chunk[8192];
  size_t n;
  int rc = 0;
  while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0) rc = reel_buf_append(&b, chunk, n);
  if (!rc && ferror(f)) rc = REEL_EIO;
  fclose(f);
  if (!rc && !b.data) rc = reel_buf_append(&b, "", 0);
  if (rc) {
    reel_buf_free(&b);
    return rc;
  }
  *len = b.len;
  *data = reel_buf_steal(&b);
  return *data ? 0 : REEL_ENOMEM;
}

/* ---- request.txt -------------------------------------------------------- */

typedef struct {
  char *text; /* the file, cut in place into the pieces below */
  const char *method, *path, *query;
  reel_sigv4_header headers[REEL_SIGV4_MAX_HEADERS];
  size_t header_count;
  const char *body;
  size_t body_len;
} case_request;

/* Cuts "text" into request line, headers (a line starting with a space or
 * tab continues the header before it; the value keeps its line breaks), and
 * the body after the first empty line. */
static int parse_request(char *text, size_t len, case_request *r, char *why, size_t whylen) {
  memset(r, 0, sizeof *r);
  r->text = text;
  r->body = "";
  char *end = text + len;
  if (memchr(text, '\0', len)) {
    snprintf(why, whylen, "request.txt holds a NUL byte");
    return REEL_EPARSE;
  }
  char *eol = memchr(text, '\n', len);
  char *line_end = eol ? eol : end;
  if (eol) *eol = '\0';
  if (line_end > text && line_end[-1] == '\r') line_end[-1] = '\0';
  char *first_space = strchr(text, ' '), *last_space = strrchr(text, ' ');
  if (!first_space || first_space == last_space) {
    snprintf(why, whylen, "request.txt: request line is not \"METHOD TARGET VERSION\"");
    return REEL_EPARSE;
  }
  *first_space = '\0';
  *last_space = '\0';
  r->method = text;
  char *target = first_space + 1, *question = strchr(target, '?');
  if (question) {
    *question = '\0';
    r->query = question + 1;
  }
  r->path = target;

  char *p = eol ? eol + 1 : end;
  while (p < end) {
    if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) { /* blank line: the body follows */
      r->body = p + (*p == '\n' ? 1 : 2);
      r->body_len = (size_t)(end - r->body);
      return 0;
    }
    if (*p == ' ' || *p == '\t') {
      snprintf(why, whylen, "request.txt: continuation line without a header");
      return REEL_EPARSE;
    }
    if (r->header_count == REEL_SIGV4_MAX_HEADERS) {
      snprintf(why, whylen, "request.txt: more than %d headers", REEL_SIGV4_MAX_HEADERS);
      return REEL_ETOOBIG;
    }
    char *nl = memchr(p, '\n', (size_t)(end - p));
    while (nl && nl + 1 < end && (nl[1] == ' ' || nl[1] == '\t')) nl = memchr(nl + 1, '\n', (size_t)(end - nl - 1));
    char *stop = nl ? nl : end;
    char *colon = memchr(p, ':', (size_t)(stop - p));
    if (!colon) {
      snprintf(why, whylen, "request.txt: header line without ':'");
      return REEL_EPARSE;
    }
    *colon = '\0';
    if (stop > p && stop[-1] == '\r') stop[-1] = '\0';
    if (nl) *nl = '\0';
    r->headers[r->header_count].name = p;
    r->headers[r->header_count].value = colon + 1;
    r->header_count++;
    p = nl ? nl + 1 : end;
  }
  return 0;
}

/* ---- context.json ------------------------------------------------------- */

typedef struct {
  json_t *root;
  reel_sigv4_signer signer;
  int64_t time, expires;
  int normalize, sign_body, omit_session_token, double_encode;
} case_context;

static int parse_timestamp(const char *s, int64_t *out) {
  int y, mo, d, h, mi, sec, used = 0;
  if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6) return REEL_EPARSE;
  const char *rest = s + used;
  if (*rest == '.') /* fractional seconds: ignored */
    for (rest++; *rest >= '0' && *rest <= '9'; rest++) {
    }
  if (strcmp(rest, "Z") != 0) return REEL_EPARSE;
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec};
  time_t t = timegm(&tm);
  if (t == (time_t)-1) return REEL_EPARSE;
  *out = (int64_t)t;
  return 0;
}

static int json_flag(json_t *root, const char *name, int fallback) {
  json_t *v = json_object_get(root, name);
  return json_is_boolean(v) ? json_is_true(v) : fallback;
}

static int parse_context(const char *text, size_t len, case_context *c, char *why, size_t whylen) {
  memset(c, 0, sizeof *c);
  json_error_t error;
  c->root = json_loadb(text, len, 0, &error);
  if (!c->root || !json_is_object(c->root)) {
    snprintf(why, whylen, "context.json: %s (line %d)", c->root ? "not an object" : error.text, error.line);
    return REEL_EPARSE;
  }
  json_t *creds = json_object_get(c->root, "credentials");
  c->signer.credentials.access_key_id = json_string_value(json_object_get(creds, "access_key_id"));
  c->signer.credentials.secret_access_key = json_string_value(json_object_get(creds, "secret_access_key"));
  c->signer.credentials.session_token = json_string_value(json_object_get(creds, "token"));
  c->signer.region = json_string_value(json_object_get(c->root, "region"));
  c->signer.service = json_string_value(json_object_get(c->root, "service"));
  const char *timestamp = json_string_value(json_object_get(c->root, "timestamp"));
  if (!c->signer.credentials.access_key_id || !c->signer.credentials.secret_access_key || !c->signer.region ||
      !c->signer.service || !timestamp) {
    snprintf(why, whylen, "context.json: credentials, region, service or timestamp missing");
    return REEL_EPARSE;
  }
  if (parse_timestamp(timestamp, &c->time) != 0) {
    snprintf(why, whylen, "context.json: timestamp is not YYYY-MM-DDTHH:MM:SSZ");
    return REEL_EPARSE;
  }
  json_t *expires = json_object_get(c->root, "expiration_in_seconds");
  c->expires = json_is_integer(expires) ? (int64_t)json_integer_value(expires) : 3600;
  c->normalize = json_flag(c->root, "normalize", 1);
  c->sign_body = json_flag(c->root, "sign_body", 0);
  c->omit_session_token = json_flag(c->root, "omit_session_token", 0);
  /* S3 signs the path as sent; every other service URI-encodes it again. */
  c->double_encode = json_flag(c->root, "double_uri_encode", strcmp(c->signer.service, "s3") != 0);
  return 0;
}

/* ---- comparison --------------------------------------------------------- */

static size_t trimmed_len(const char *s, size_t len) {
  while (len && (s[len - 1] == '\n' || s[len - 1] == '\r')) len--;
  return len;
}

/* Appends a quoted, escaped, shortened copy of one line. */
static void quote_line(reel_buf *b, const char *s, size_t len) {
  if (!s) {
    reel_buf_append_str(b, "(end of text)");
    return;
  }
  reel_buf_append(b, "\"", 1);
  size_t shown = len > 160 ? 160 : len;
  for (size_t i = 0; i < shown; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      reel_buf_printf(b, "\\%c", c);
    else if (c < 0x20 || c == 0x7f)
      reel_buf_printf(b, "\\x%02x", c);
    else
      reel_buf_append(b, &s[i], 1);
  }
  reel_buf_append_str(b, len > shown ? "\"..." : "\"");
}

/* 1 when equal up to trailing line breaks; otherwise 0 and why names the first differing line. */
static int same_text(const char *expected, size_t elen, const char *actual, size_t alen, reel_buf *why) {
  elen = trimmed_len(expected, elen);
  alen = trimmed_len(actual, alen);
  if (elen == alen && memcmp(expected, actual, elen) == 0) return 1;
  size_t line = 1, ei = 0, ai = 0;
  for (;;) {
    size_t ee = ei, ae = ai;
    while (ee < elen && expected[ee] != '\n') ee++;
    while (ae < alen && actual[ae] != '\n') ae++;
    int e_done = ei > elen, a_done = ai > alen;
    if (e_done || a_done || ee - ei != ae - ai || memcmp(expected + ei, actual + ai, ee - ei) != 0) {
      reel_buf_printf(why, "line %zu: expected ", line);
      quote_line(why, e_done ? NULL : expected + ei, ee - ei);
      reel_buf_append_str(why, ", got ");
      quote_line(why, a_done ? NULL : actual + ai, ae - ai);
      return 0;
    }
    ei = ee + 1;
    ai = ae + 1;
    line++;
  }
}

/* ---- one case ----------------------------------------------------------- */

typedef struct {
  const char *dir;
  int compared;         /* expected files found */
  reel_buf first;       /* "file: line N: ..." of the first difference */
  reel_buf others;      /* names of further differing files */
} case_report;

static void report_difference(case_report *rep, const char *file, const char *detail) {
  if (!rep->first.len) {
    reel_buf_printf(&rep->first, "%s: %s", file, detail);
  } else {
    reel_buf_printf(&rep->others, "%s%s", rep->others.len ? ", " : "", file);
  }
}

static void compare_with_file(case_report *rep, const char *file, const char *actual, size_t actual_len) {
  char *expected;
  size_t expected_len;
  int rc = read_case_file(rep->dir, file, &expected, &expected_len);
  if (rc == REEL_ENOTFOUND) return; /* not every case carries every result */
  rep->compared++;
  if (rc) {
    report_difference(rep, file, reel_strerror(rc));
    return;
  }
  reel_buf why;
  reel_buf_init(&why, WHY_MAX);
  if (!same_text(expected, expected_len, actual, actual_len, &why)) report_difference(rep, file, why.data);
  reel_buf_free(&why);
  free(expected);
}

static void run_form(case_report *rep, const case_context *c, const case_request *r, reel_sigv4_form form,
                     const char *payload_hash) {
  const char *prefix = form == REEL_SIGV4_FORM_HEADERS ? "header" : "query";
  reel_sigv4_options opt = {
      .form = form,
      .time = c->time,
      .expires = c->expires,
      .normalize_path = c->normalize,
      .double_encode_path = c->double_encode,
      .content_sha256_header = c->sign_body && form == REEL_SIGV4_FORM_HEADERS,
      .omit_session_token = c->omit_session_token,
  };
  reel_sigv4_request req = {
      .method = r->method,
      .path = r->path,
      .query = r->query,
      .headers = r->headers,
      .header_count = r->header_count,
      .payload_hash = payload_hash,
  };
  reel_sigv4_result result;
  int rc = reel_sigv4_sign(&c->signer, &opt, &req, &result);
  char file[64];
  if (rc) {
    char detail[160];
    snprintf(detail, sizeof detail, "signing failed: %s (%s)", reel_err_name(rc), reel_strerror(rc));
    snprintf(file, sizeof file, "%s form", prefix);
    rep->compared++;
    report_difference(rep, file, detail);
    return;
  }
  snprintf(file, sizeof file, "%s-canonical-request.txt", prefix);
  compare_with_file(rep, file, result.canonical_request, strlen(result.canonical_request));
  snprintf(file, sizeof file, "%s-string-to-sign.txt", prefix);
  compare_with_file(rep, file, result.string_to_sign, strlen(result.string_to_sign));
  snprintf(file, sizeof file, "%s-signature.txt", prefix);
  compare_with_file(rep, file, result.signature, strlen(result.signature));
  char *text = NULL;
  size_t text_len = 0;
  rc = reel_sigv4_format_signed_request(&req, &result, r->body, r->body_len, &text, &text_len);
  snprintf(file, sizeof file, "%s-signed-request.txt", prefix);
  if (rc) {
    rep->compared++;
    report_difference(rep, file, reel_strerror(rc));
  } else {
    compare_with_file(rep, file, text, text_len);
  }
  reel_sigv4_free(text);
  reel_sigv4_result_free(&result);
}

/* Runs one case directory; returns 1 when it passed, printing a FAIL line otherwise. */
static int run_case(const char *dir) {
  char name[512];
  size_t dir_len = strlen(dir);
  while (dir_len > 1 && dir[dir_len - 1] == '/') dir_len--;
  size_t start = dir_len;
  while (start > 0 && dir[start - 1] != '/') start--;
  snprintf(name, sizeof name, "%.*s", (int)(dir_len - start), dir + start);

  case_report rep = {.dir = dir};
  reel_buf_init(&rep.first, 4 * WHY_MAX);
  reel_buf_init(&rep.others, WHY_MAX);
  char why[512] = "";
  char *request_text = NULL, *context_text = NULL;
  size_t request_len = 0, context_len = 0;
  case_request request;
  case_context context;
  memset(&context, 0, sizeof context);
  int rc = read_case_file(dir, "request.txt", &request_text, &request_len);
  if (rc) snprintf(why, sizeof why, "request.txt: %s", reel_strerror(rc));
  if (!rc) {
    rc = read_case_file(dir, "context.json", &context_text, &context_len);
    if (rc) snprintf(why, sizeof why, "context.json: %s", reel_strerror(rc));
  }
  if (!rc) rc = parse_request(request_text, request_len, &request, why, sizeof why);
  if (!rc) rc = parse_context(context_text, context_len, &context, why, sizeof why);
  char payload_hash[65];
  if (!rc) rc = reel_sigv4_payload_hash(request.body, request.body_len, payload_hash);
  if (!rc) {
    run_form(&rep, &context, &request, REEL_SIGV4_FORM_HEADERS, payload_hash);
    run_form(&rep, &context, &request, REEL_SIGV4_FORM_QUERY, payload_hash);
    if (!rep.compared) snprintf(why, sizeof why, "no expected results (header-*.txt, query-*.txt) found");
  }
  int passed = !why[0] && !rep.first.len;
  if (!passed) {
    if (why[0])
      printf("FAIL %s: %s\n", name, why);
    else
      printf("FAIL %s: %s%s%s\n", name, rep.first.data, rep.others.len ? "; also differs: " : "",
             rep.others.len ? rep.others.data : "");
  }
  json_decref(context.root);
  free(request_text);
  free(context_text);
  reel_buf_free(&rep.first);
  reel_buf_free(&rep.others);
  return passed;
}

int reel_vectors_aws(int argc, char **argv) {
  if (argc < 1) {
    fprintf(stderr, "usage: reel-vectors aws CASE_DIR...\n");
    return 2;
  }
  int passed = 0, failed = 0;
  for (int i = 0; i < argc; i++) {
    if (run_case(argv[i]))
      passed++;
    else
      failed++;
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

/* ---- presign-s3 --------------------------------------------------------- */

static int parse_int64(const char *s, int64_t *out) {
  if (!s || !*s) return REEL_EINVAL;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (*end || v < 0) return REEL_EINVAL;
  *out = (int64_t)v;
  return 0;
}

static int presign_usage(FILE *to, int rc) {
  fprintf(to,
          "usage: reel-vectors presign-s3 --endpoint URL --region R --bucket B --key K --method GET|PUT\n"
          "         --access-key A --secret S --time UNIX --expires N [--virtual-hosted]\n"
          "         [--session-token T] [--header 'Name: value']...\n"
          "prints the presigned URL (UNSIGNED-PAYLOAD; the headers given must be sent with it)\n");
  return rc;
}

int reel_vectors_presign_s3(int argc, char **argv) {
  reel_sigv4_s3_config cfg = {0};
  reel_sigv4_s3_presign_request req = {0};
  reel_sigv4_header headers[8];
  char header_names[8][REEL_SIGV4_MAX_HEADER_NAME + 1];
  size_t header_count = 0;
  int have_time = 0, have_expires = 0;
  for (int i = 0; i < argc; i++) {
    const char *opt = argv[i];
    if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) return presign_usage(stdout, 0);
    if (strcmp(opt, "--virtual-hosted") == 0) {
      cfg.virtual_hosted = 1;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "reel-vectors presign-s3: %s needs a value\n", opt);
      return presign_usage(stderr, 2);
    }
    const char *value = argv[++i];
    if (strcmp(opt, "--endpoint") == 0) {
      cfg.endpoint = value;
    } else if (strcmp(opt, "--region") == 0) {
      cfg.region = value;
    } else if (strcmp(opt, "--bucket") == 0) {
      req.bucket = value;
    } else if (strcmp(opt, "--key") == 0) {
      req.key = value;
    } else if (strcmp(opt, "--method") == 0) {
      req.method = value;
    } else if (strcmp(opt, "--access-key") == 0) {
      cfg.credentials.access_key_id = value;
    } else if (strcmp(opt, "--secret") == 0) {
      cfg.credentials.secret_access_key = value;
    } else if (strcmp(opt, "--session-token") == 0) {
      cfg.credentials.session_token = value;
    } else if (strcmp(opt, "--time") == 0) {
      if (parse_int64(value, &req.now) != 0) {
        fprintf(stderr, "reel-vectors presign-s3: --time wants unix seconds\n");
        return 2;
      }
      have_time = 1;
    } else if (strcmp(opt, "--expires") == 0) {
      if (parse_int64(value, &req.expires) != 0) {
        fprintf(stderr, "reel-vectors presign-s3: --expires wants seconds\n");
        return 2;
      }
      have_expires = 1;
    } else if (strcmp(opt, "--header") == 0) {
      const char *colon = strchr(value, ':');
      size_t name_len = colon ? (size_t)(colon - value) : 0;
      if (!colon || name_len == 0 || name_len > REEL_SIGV4_MAX_HEADER_NAME || header_count == 8) {
        fprintf(stderr, "reel-vectors presign-s3: --header wants 'Name: value' (at most 8)\n");
        return 2;
      }
      memcpy(header_names[header_count], value, name_len);
      header_names[header_count][name_len] = '\0';
      const char *v = colon + 1;
      while (*v == ' ' || *v == '\t') v++;
      headers[header_count].name = header_names[header_count];
      headers[header_count].value = v;
      header_count++;
    } else {
      fprintf(stderr, "reel-vectors presign-s3: unknown option %s\n", opt);
      return presign_usage(stderr, 2);
    }
  }
  if (!cfg.endpoint || !cfg.region || !req.bucket || !req.key || !req.method || !cfg.credentials.access_key_id ||
      !cfg.credentials.secret_access_key || !have_time || !have_expires) {
    fprintf(stderr, "reel-vectors presign-s3: missing option\n");
    return presign_usage(stderr, 2);
  }
  req.headers = header_count ? headers : NULL;
  req.header_count = header_count;
  char *url = NULL;
  int rc = reel_sigv4_s3_presign_url(&cfg, &req, &url);
  if (rc) {
    /* Names the failure only: never echo the credentials. */
    fprintf(stderr, "reel-vectors presign-s3: cannot presign: %s (%s); check endpoint, region, bucket, key, "
                    "method (GET, HEAD, PUT) and expires (1..%d)\n",
            reel_err_name(rc), reel_strerror(rc), REEL_SIGV4_MAX_EXPIRES);
    return 1;
  }
  printf("%s\n", url);
  reel_sigv4_free(url);
  return 0;
}
