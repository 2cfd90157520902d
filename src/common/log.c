/* The process logger. It redacts every string it is given, so a caller that
 * forgets cannot leak a token into the log. */
#include "common/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
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
      /* fail closed: a value that could not be redacted is not written */
      json_string_set(value, clean ? clean : REEL_REDACTED);
      free(clean);
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
  char *clean_msg = reel_redact_dup(msg); /* messages are constants, but a caller may forget */
  json_t *head = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "msg",
                           clean_msg ? clean_msg : REEL_REDACTED);
  free(clean_msg);
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

/* Appends s as a JSON string body (without quotes), escaping per RFC 8259. */
static int append_escaped(reel_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if (reel_buf_append(b, s + run, i - run)) return -1;
    char esc[7] = {'\\', (char)c, 0};
    size_t len = 2;
    if (c == '\n') esc[1] = 'n';
    else if (c == '\r') esc[1] = 'r';
    else if (c == '\t') esc[1] = 't';
    else if (c < 0x20) {
      esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
      len = 6;
    }
    if (reel_buf_append(b, esc, len)) return -1;
    run = i + 1;
  }
  return reel_buf_append(b, s + run, n - run);
}

void reel_log_fields(reel_log_level level, const char *msg, const reel_log_field *fields, int n) {
  if (level < min_level) return;
  reel_buf line = {.data = NULL, .len = 0, .cap = 0, .max = 64 * 1024};
  reel_buf clean;
  reel_buf_init(&clean, 16 * 1024);
  char ts[40];
  reel_rfc3339(reel_now_ms(), ts, sizeof ts);
  int rc = reel_buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, level_names[level]);
  rc = rc || reel_redact(msg, strlen(msg), &clean) || append_escaped(&line, clean.data, clean.len) ||
       reel_buf_append(&line, "\"", 1);
  for (int i = 0; i < n && rc == 0; i++) {
    const reel_log_field *f = &fields[i];
    rc = reel_buf_append(&line, ",\"", 2) || reel_buf_append_str(&line, f->key) || reel_buf_append(&line, "\":", 2);
    if (rc) break;
    if (f->type == REEL_LOG_STR || f->type == REEL_LOG_STRN) {
      reel_buf_reset(&clean);
      const char *v = f->str ? f->str : "";
      size_t vlen = f->type == REEL_LOG_STRN && f->str ? f->len : strlen(v);
      rc = reel_redact_line(v, vlen, 0, f->max ? f->max : (size_t)-1, &clean) || reel_buf_append(&line, "\"", 1) ||
           append_escaped(&line, clean.data ? clean.data : "", clean.len) || reel_buf_append(&line, "\"", 1);
    } else if (f->type == REEL_LOG_INT) {
      rc = reel_buf_printf(&line, "%lld", f->num);
    } else {
      rc = reel_buf_printf(&line, "%.3f", f->ms);
    }
  }
  if (rc == 0 && reel_buf_append(&line, "}\n", 2) == 0) {
    ssize_t w = write(STDERR_FILENO, line.data, line.len);
    (void)w;
  }
  reel_buf_free(&line);
  reel_buf_free(&clean);
}
