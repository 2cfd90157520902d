/* libFuzzer target: query-string parameters (percent-decoding) and the integer
 * and boolean parsers every query parameter goes through. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"
#include "http/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reel_http_request req;
  memset(&req, 0, sizeof req);
  req.query = (reel_slice){(const char *)data, size};
  static const char *const names[] = {"status", "limit", "cursor", "tail", "expires_in", "redirect", "expires", "signature"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char *value = NULL;
    int rc = reel_http_query_param(&req, names[i], &value);
    if (rc == 1) {
      if (!value || strlen(value) > size) __builtin_trap();
      long long n;
      int b;
      if (reel_validate_int(value, 0, 10000, &n) == 0 && (n < 0 || n > 10000)) __builtin_trap();
      reel_validate_bool(value, &b);
      free(value);
    } else if (value) {
      __builtin_trap();
    }
  }
  return 0;
}
