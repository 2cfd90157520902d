/* A job's effective pipeline configuration, and its YAML form. The spec asks
 * for one function that merges config, CLI --prompt and HTTP prompt so the
 * precedence rule lives in one place; the YAML writer exists so a pipeline
 * program (such as ttv-pipeline's pipeline.py) can read that configuration as
 * a file, whatever characters a user put in the prompt. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "common/buf.h"
#include "config/config.h"

#define MAX_YAML_BYTES (64 * 1024 * 1024) /* a prompt of 1M characters, escaped, fits */
#define MAX_EMIT_DEPTH 64

json_t *reel_config_effective(const json_t *pipeline, const char *cli_prompt, const char *http_prompt) {
  json_t *effective = pipeline ? json_deep_copy(pipeline) : json_object();
  if (!effective) return NULL;
  if (!json_is_object(effective)) {
    json_decref(effective);
    return NULL;
  }
  /* Later entries win: HTTP > CLI > config. */
  const char *const overrides[] = {cli_prompt, http_prompt};
  for (size_t i = 0; i < sizeof overrides / sizeof overrides[0]; i++) {
    if (!overrides[i]) continue;
    if (json_object_set_new(effective, "prompt", json_string(overrides[i]))) {
      json_decref(effective);
      return NULL;
    }
  }
  return effective;
}

static int write_to_buffer(void *data, unsigned char *bytes, size_t size) {
  return reel_buf_append(data, bytes, size) == 0;
}

static int emit_scalar(yaml_emitter_t *emitter, const char *text, size_t length, yaml_scalar_style_t style) {
  yaml_event_t event;
  int plain = style == YAML_PLAIN_SCALAR_STYLE;
  if (!yaml_scalar_event_initialize(&event, NULL, NULL, (yaml_char_t *)text, (int)length, plain, !plain,
                                    style))
    return 0;
  return yaml_emitter_emit(emitter, &event);
}

/* A key can be written plain when it is a simple identifier no YAML reader
 * would take for a boolean or null. */
static int key_can_be_plain(const char *key, size_t length) {
  static const char *const reserved[] = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"};
  if (length == 0 || length > 64) return 0;
  for (size_t i = 0; i < length; i++) {
    char c = key[i];
    int letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!letter && (i == 0 || !((c >= '0' && c <= '9') || c == '-'))) return 0;
  }
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
    if (strlen(reserved[i]) == length && strncasecmp(key, reserved[i], length) == 0) return 0;
  return 1;
}

/* The shortest decimal text that reads back as the same double, always with a
 * '.' so every YAML reader sees a float. */
static void format_real(double value, char *out, size_t size) {
  for (int precision = 15; precision <= 17; precision++) {
    snprintf(out, size, "%.*g", precision, value);
    if (strtod(out, NULL) == value) break;
  }
  if (strchr(out, '.')) return;
  char *exponent = strchr(out, 'e');
  char tail[32] = "";
  if (exponent) {
    snprintf(tail, sizeof tail, "%s", exponent);
    *exponent = '\0';
  }
  size_t used = strlen(out);
  snprintf(out + used, size - used, ".0%s", tail);
}

static int emit_value(yaml_emitter_t *emitter, const json_t *value, int depth) {
  yaml_event_t event;
  char text[64];
  if (depth > MAX_EMIT_DEPTH) return 0;
  switch (json_typeof(value)) {
    case JSON_OBJECT: {
      if (!yaml_mapping_start_event_initialize(&event, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
          !yaml_emitter_emit(emitter, &event))
        return 0;
      const char *key;
      size_t key_length;
      json_t *child;
      json_object_keylen_foreach((json_t *)value, key, key_length, child) {
        yaml_scalar_style_t style =
            key_can_be_plain(key, key_length) ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        if (!emit_scalar(emitter, key, key_length, style) || !emit_value(emitter, child, depth + 1))
          return 0;
      }
      return yaml_mapping_end_event_initialize(&event) && yaml_emitter_emit(emitter, &event);
    }
    case JSON_ARRAY: {
      if (!yaml_sequence_start_event_initialize(&event, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
          !yaml_emitter_emit(emitter, &event))
        return 0;
      size_t index;
      json_t *child;
      json_array_foreach(value, index, child) {
        if (!emit_value(emitter, child, depth + 1)) return 0;
      }
      return yaml_sequence_end_event_initialize(&event) && yaml_emitter_emit(emitter, &event);
    }
    case JSON_STRING:
      return emit_scalar(emitter, json_string_value(value), json_string_length(value),
                         YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    case JSON_INTEGER:
      snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
      return emit_scalar(emitter, text, strlen(text), YAML_PLAIN_SCALAR_STYLE);
    case JSON_REAL:
      if (!isfinite(json_real_value(value))) return 0;
      format_real(json_real_value(value), text, sizeof text);
      return emit_scalar(emitter, text, strlen(text), YAML_PLAIN_SCALAR_STYLE);
    case JSON_TRUE:
      return emit_scalar(emitter, "true", 4, YAML_PLAIN_SCALAR_STYLE);
    case JSON_FALSE:
      return emit_scalar(emitter, "false", 5, YAML_PLAIN_SCALAR_STYLE);
    case JSON_NULL:
      return emit_scalar(emitter, "null", 4, YAML_PLAIN_SCALAR_STYLE);
  }
  return 0;
}

char *reel_config_to_yaml(const json_t *object) {
  if (!object) return NULL;
  reel_buf output;
  reel_buf_init(&output, MAX_YAML_BYTES);
  yaml_emitter_t emitter;
  if (!yaml_emitter_initialize(&emitter)) return NULL;
  yaml_emitter_set_output(&emitter, write_to_buffer, &output);
  yaml_emitter_set_unicode(&emitter, 1);
  yaml_emitter_set_width(&emitter, -1); /* never fold long strings */
  yaml_event_t event;
  int ok = yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING) &&
           yaml_emitter_emit(&emitter, &event) &&
           yaml_document_start_event_initialize(&event, NULL, NULL, NULL, 1) &&
           yaml_emitter_emit(&emitter, &event) && emit_value(&emitter, object, 0) &&
           yaml_document_end_event_initialize(&event, 1) && yaml_emitter_emit(&emitter, &event) &&
           yaml_stream_end_event_initialize(&event) && yaml_emitter_emit(&emitter, &event) &&
           yaml_emitter_flush(&emitter);
  yaml_emitter_delete(&emitter);
  if (!ok) {
    reel_buf_free(&output);
    return NULL;
  }
  return reel_buf_steal(&output);
}
