/* Fuzzes the config loader: reel.yaml is read at start-up from a file an
 * operator (or a deployment tool) controls, so no bytes may crash it, leak, or
 * make it grow without bound. Inputs that load are also written back as YAML
 * and read again, which exercises the effective-config writer on whatever
 * strings the fuzzer invents. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "config/config.h"

static void check_round_trip(const reel_config *config) {
  json_t *effective = reel_config_effective(config->pipeline, NULL, "fuzz \"prompt\": %{x}\n");
  if (!effective) abort();
  char *yaml = reel_config_to_yaml(effective);
  if (!yaml) abort();
  /* Read it back as the pipeline: section of a minimal file. */
  size_t length = strlen(yaml), size = length * 2 + 128, used;
  char *document = malloc(size);
  if (!document) abort();
  strcpy(document, "service:\n  auth:\n    tokens: [t]\npipeline:\n");
  used = strlen(document);
  for (const char *line = yaml; *line;) {
    const char *end = strchr(line, '\n');
    size_t line_length = end ? (size_t)(end - line) : strlen(line);
    document[used++] = ' ';
    document[used++] = ' ';
    memcpy(document + used, line, line_length);
    used += line_length;
    document[used++] = '\n';
    line += line_length + (end ? 1 : 0);
  }
  reel_config again;
  char err[512];
  int rc = reel_config_load_string(document, used, "again.yaml", &again, err, sizeof err);
  /* Anything the loader accepted, the writer must reproduce exactly (the
   * command key is re-checked, so only compare when it loads). */
  if (rc == 0 && !json_equal(again.pipeline, effective)) abort();
  if (rc == REEL_ENOMEM) abort();
  reel_config_free(&again);
  free(document);
  free(yaml);
  json_decref(effective);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reel_config config;
  char err[512];
  int rc = reel_config_load_string((const char *)data, size, "fuzz.yaml", &config, err, sizeof err);
  if (rc == REEL_ENOMEM) abort(); /* small inputs never need much memory: a wrong error code */
  if (rc == 0) check_round_trip(&config);
  reel_config_free(&config);
  return 0;
}
