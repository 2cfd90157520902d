/* POST /v1/jobs body rules and query parameter parsing. */
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"
#include "check.h"
#include "common/error.h"

static int accept(const char *body, int max, const char *expect_prompt) {
  char detail[256], *prompt = NULL;
  int rc = reel_validate_job_request(body, strlen(body), max, &prompt, detail, sizeof detail);
  int ok = rc == 0 && prompt && strcmp(prompt, expect_prompt) == 0;
  if (!ok) fprintf(stderr, "  body %s: rc=%d detail=%s prompt=%s\n", body, rc, rc ? detail : "", prompt ? prompt : "");
  free(prompt);
  return ok;
}

static int reject(const char *body, size_t len, const char *detail_part) {
  char detail[256] = "", *prompt = NULL;
  int rc = reel_validate_job_request(body, len, 2000, &prompt, detail, sizeof detail);
  int ok = rc == REEL_EPARSE && prompt == NULL && strstr(detail, detail_part) != NULL;
  if (!ok) fprintf(stderr, "  body %.*s: rc=%d detail=%s\n", (int)len, body, rc, detail);
  free(prompt);
  return ok;
}
#define REJECT(body, part) reject(body, sizeof(body) - 1, part)

int main(void) {
  CHECK(accept("{\"prompt\": \"a red fox\"}", 2000, "a red fox"));
  CHECK(accept("{\"prompt\": \"  padded \\n\"}", 2000, "padded"));
  CHECK(accept("{\"prompt\": \"\\u65e5\\u672c\"}", 2, "\xe6\x97\xa5\xe6\x9c\xac"));
  CHECK(accept("{\"prompt\": \"\xf0\x9f\x8e\xac film\"}", 6, "\xf0\x9f\x8e\xac film"));
  /* Unicode whitespace is trimmed too: U+3000, U+00A0 */
  CHECK(accept("{\"prompt\": \"\u3000\u00a0fox\u3000\"}", 2000, "fox"));
  CHECK(REJECT("{\"prompt\": \"\u3000\u3000\"}", "empty"));
  CHECK(REJECT("{\"prompt\": \"\u00a0\u2003\ufeff\"}", "empty"));
  CHECK(REJECT("", "not valid JSON"));
  CHECK(REJECT("{", "not valid JSON"));
  CHECK(REJECT("[\"prompt\"]", "JSON object"));
  CHECK(REJECT("\"prompt\"", "JSON object"));
  CHECK(REJECT("42", "JSON object"));
  CHECK(REJECT("{}", "required"));
  CHECK(REJECT("{\"prompt\": 5}", "must be a string"));
  CHECK(REJECT("{\"prompt\": null}", "must be a string"));
  CHECK(REJECT("{\"prompt\": \"   \"}", "empty"));
  CHECK(REJECT("{\"prompt\": \"\"}", "empty"));
  CHECK(REJECT("{\"prompt\": \"x\", \"size\": \"4k\"}", "unknown field \"size\""));
  CHECK(REJECT("{\"prompt\": \"x\", \"prompt\": \"y\"}", "duplicate"));
  CHECK(REJECT("{\"prompt\": \"a\\u0000b\"}", "NUL"));
  CHECK(REJECT("{\"prompt\": \"\xff\xfe\"}", "UTF-8"));
  CHECK(REJECT("{\"prompt\": \"x\"} trailing", "not valid JSON"));
  /* character limit counts code points, not bytes */
  char big[8200];
  strcpy(big, "{\"prompt\": \"");
  for (int i = 0; i < 2000; i++) strcat(big, "\xe6\x97\xa5");
  strcat(big, "\"}");
  char *prompt = NULL, detail[256];
  CHECK_INT(reel_validate_job_request(big, strlen(big), 2000, &prompt, detail, sizeof detail), 0);
  free(prompt);
  prompt = NULL;
  CHECK_INT(reel_validate_job_request(big, strlen(big), 1999, &prompt, detail, sizeof detail), REEL_EPARSE);
  CHECK(strstr(detail, "2000 characters") != NULL);

  /* The JSON work per body is capped before parsing: a million keys, or deep
   * nesting, is refused by the pre-scan; commas inside a string do not count. */
  {
    size_t keys = 1000000, cap = keys * 12 + 64, n = 0;
    char *huge = malloc(cap);
    n += (size_t)snprintf(huge + n, cap - n, "{\"prompt\": \"x\"");
    for (size_t i = 0; i < keys; i++) n += (size_t)snprintf(huge + n, cap - n, ",\"k%zu\":1", i);
    n += (size_t)snprintf(huge + n, cap - n, "}");
    CHECK(reject(huge, n, "more than 10000 JSON values"));
    char deep[200];
    memset(deep, '[', 100);
    memcpy(deep + 100, "\"x\"", 3);
    memset(deep + 103, ']', 97);
    CHECK(reject(deep, sizeof deep, "nested deeper than 64"));
    n = (size_t)snprintf(huge, cap, "{\"prompt\": \"");
    for (int i = 0; i < 20000; i++) huge[n++] = ',';
    n += (size_t)snprintf(huge + n, cap - n, "\\\"\"}");
    huge[n] = '\0';
    char *p = NULL, d[256];
    CHECK_INT(reel_validate_job_request(huge, n, 30000, &p, d, sizeof d), 0);
    CHECK(p && strlen(p) == 20001);
    free(p);
    free(huge);
  }

  CHECK(reel_validate_is_json_content_type(REEL_SLICE_LIT("application/json")));
  CHECK(reel_validate_is_json_content_type(REEL_SLICE_LIT("Application/JSON; charset=utf-8")));
  CHECK(!reel_validate_is_json_content_type(REEL_SLICE_LIT("application/jsonp")));
  CHECK(!reel_validate_is_json_content_type(REEL_SLICE_LIT("text/plain")));

  long long v;
  CHECK(reel_validate_int("60", 60, 604800, &v) == 0 && v == 60);
  CHECK(reel_validate_int("604801", 60, 604800, &v) != 0);
  CHECK(reel_validate_int("1.5", 0, 10, &v) != 0);
  CHECK(reel_validate_int("-1", 0, 10, &v) != 0);
  CHECK(reel_validate_int("", 0, 10, &v) != 0);
  CHECK(reel_validate_int("12abc", 0, 100, &v) != 0);
  CHECK(reel_validate_int("99999999999999999999", 0, 100, &v) != 0);
  int b;
  CHECK(reel_validate_bool("true", &b) == 0 && b == 1);
  CHECK(reel_validate_bool("FALSE", &b) == 0 && b == 0);
  CHECK(reel_validate_bool("maybe", &b) != 0);
  return check_report();
}
