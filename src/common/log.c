/* The process logger. It redacts every string it is given, so a caller that
 * forgets cannot leak a token into the log. */
#include "common/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/redact.h"

static reel_log_level min_level = REEL_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void reel_log_set_level(reel_log_level level) { min_level = level; }

int reel_log_level_parse(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0) return i;
  return -1;
}

static void redact_strings(json_t *obj) {
  const char *key;
  json_t *value;
  json_object_foreach(obj, key, value) {
    if (json_is_string(value)) {
      char *clean = reel_redact_dup(json_string_value(value));
      if (clean) {
        json_string_set(value, clean);
        free(clean);
      }
    }
  }
}

void reel_log(reel_log_level level, const char *msg, const char *fields_fmt, ...) {
  if (level < min_level) return;
  json_t *line = NULL;
  if (fields_fmt) {
    va_list ap;
    va_start(ap, fields_fmt);
    json_error_t err;
    line = json_vpack_ex(&err, 0, fields_fmt, ap);
    va_end(ap);
  }
  if (!line) line = json_object();
  if (!line) return;
  redact_strings(line);
  char ts[40];
  reel_rfc3339(reel_now_ms(), ts, sizeof ts);
  json_t *head = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "msg", msg);
  if (head) {
    json_object_update(head, line);
    char *text = json_dumps(head, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text) {
      size_t n = strlen(text);
      text[n] = '\n';
      ssize_t w = write(STDERR_FILENO, text, n + 1);
      (void)w;
      free(text);
    }
    json_decref(head);
  }
  json_decref(line);
}
