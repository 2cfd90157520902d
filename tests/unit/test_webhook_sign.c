/* Standard Webhooks signing (events/webhook_sign.h) against the published
 * reference case in tests/vectors/standard-webhooks/vectors.json, plus the
 * ways a secret or a signature can be wrong; and Retry-After parsing
 * (events/webhook_sender.h). */
#include <jansson.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "events/webhook_sender.h"
#include "events/webhook_sign.h"

static void vectors(void) {
  json_error_t e;
  json_t *doc = json_load_file("tests/vectors/standard-webhooks/vectors.json", 0, &e);
  CHECK(doc != NULL);
  json_t *cases = json_object_get(doc, "cases");
  CHECK(json_array_size(cases) > 0);
  for (size_t i = 0; i < json_array_size(cases); i++) {
    json_t *c = json_array_get(cases, i);
    const char *secret = json_string_value(json_object_get(c, "secret"));
    const char *msg_id = json_string_value(json_object_get(c, "msg_id"));
    const char *payload = json_string_value(json_object_get(c, "payload"));
    const char *want = json_string_value(json_object_get(c, "signature"));
    long long ts = json_integer_value(json_object_get(c, "timestamp"));
    unsigned char key[REEL_WEBHOOK_MAX_KEY];
    size_t key_len = 0;
    char why[160], sig[REEL_WEBHOOK_MAX_SIGNATURE];
    CHECK_INT(reel_webhook_secret_decode(secret, key, sizeof key, &key_len, why, sizeof why), 0);
    CHECK_INT(key_len, 24);
    CHECK_INT(reel_webhook_sign(key, key_len, msg_id, ts, payload, strlen(payload), sig, sizeof sig), 0);
    CHECK_STR(sig, want);
    CHECK_INT(reel_webhook_verify(key, key_len, msg_id, ts, payload, strlen(payload), want), 1);
    char list[256];
    snprintf(list, sizeof list, "v1,bm90IGl0 %s", want); /* several signatures: any may match */
    CHECK_INT(reel_webhook_verify(key, key_len, msg_id, ts, payload, strlen(payload), list), 1);
    CHECK_INT(reel_webhook_verify(key, key_len, msg_id, ts + 1, payload, strlen(payload), want), 0);
    CHECK_INT(reel_webhook_verify(key, key_len, "msg_other", ts, payload, strlen(payload), want), 0);
    CHECK_INT(reel_webhook_verify(key, key_len, msg_id, ts, "{\"test\": 1}", 11, want), 0);
    CHECK_INT(reel_webhook_sign(key, key_len, msg_id, ts, payload, strlen(payload), sig, 10), REEL_ETOOBIG);
  }
  json_decref(doc);
}

static void bad_secrets(void) {
  unsigned char key[REEL_WEBHOOK_MAX_KEY];
  size_t len;
  char why[160];
  CHECK_INT(reel_webhook_secret_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, sizeof key, &len, why, sizeof why),
            REEL_EPARSE); /* no prefix */
  CHECK(strstr(why, "whsec_") != NULL);
  CHECK_INT(reel_webhook_secret_decode("whsec_", key, sizeof key, &len, why, sizeof why), REEL_EPARSE);
  CHECK_INT(reel_webhook_secret_decode("whsec_!!!!", key, sizeof key, &len, why, sizeof why), REEL_EPARSE);
  CHECK(strstr(why, "!!!!") == NULL); /* the secret is never repeated */
  char big[200] = "whsec_";
  for (int i = 6; i < 190; i++) big[i] = 'A';
  big[190] = '\0';
  CHECK_INT(reel_webhook_secret_decode(big, key, sizeof key, &len, why, sizeof why), REEL_EPARSE); /* too long a key */
}

static void retry_after(void) {
  CHECK_INT(reel_webhook_parse_retry_after("7", 0), 7);
  CHECK_INT(reel_webhook_parse_retry_after(" 120", 0), 120);
  CHECK_INT(reel_webhook_parse_retry_after("99999999999", 0), 31536000);
  /* Wed, 21 Oct 2015 07:28:00 GMT is 1445412480 */
  CHECK_INT(reel_webhook_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470LL), 10);
  CHECK_INT(reel_webhook_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490LL), 0); /* past */
  CHECK_INT(reel_webhook_parse_retry_after("soon", 0), -1);
  CHECK_INT(reel_webhook_parse_retry_after("5s", 0), -1);
}

int main(void) {
  vectors();
  bad_secrets();
  retry_after();
  return check_report();
}
