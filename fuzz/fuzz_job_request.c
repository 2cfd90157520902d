/* libFuzzer target: the POST /v1/jobs body validator must never crash, leak
 * or accept a prompt that breaks its own rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char detail[256], *prompt = NULL;
  int rc = reel_validate_job_request((const char *)data, size, 50, &prompt, detail, sizeof detail);
  if (rc == 0) {
    size_t n = strlen(prompt), chars = 0;
    if (n == 0) __builtin_trap();
    for (size_t i = 0; i < n; i++)
      if (((unsigned char)prompt[i] & 0xC0) != 0x80) chars++;
    if (chars > 50 || prompt[0] == ' ' || prompt[n - 1] == ' ') __builtin_trap();
    free(prompt);
  } else if (prompt) {
    __builtin_trap();
  }
  return 0;
}
