#include "client/sse_parser.h"

#include <string.h>

#include "common/error.h"

#define MAX_ID_BYTES 1024
#define MAX_TYPE_BYTES 256

void reel_sse_parser_init(reel_sse_parser *p, size_t max_line, size_t max_event, reel_sse_event_cb cb, void *ctx) {
  memset(p, 0, sizeof *p);
  p->on_event = cb;
  p->ctx = ctx;
  reel_buf_init(&p->line, max_line);
  reel_buf_init(&p->data, max_event);
  reel_buf_init(&p->type, MAX_TYPE_BYTES);
  reel_buf_init(&p->id, MAX_ID_BYTES);
  p->retry_ms = -1;
}

void reel_sse_parser_free(reel_sse_parser *p) {
  reel_buf_free(&p->line);
  reel_buf_free(&p->data);
  reel_buf_free(&p->type);
  reel_buf_free(&p->id);
}

void reel_sse_parser_reset_stream(reel_sse_parser *p) {
  reel_buf_reset(&p->line);
  reel_buf_reset(&p->data);
  reel_buf_reset(&p->type);
  p->saw_cr = 0;
  p->started = 0;
  p->failed = 0;
}

int reel_sse_parser_set_last_id(reel_sse_parser *p, const char *id) {
  reel_buf_reset(&p->id);
  return reel_buf_append_str(&p->id, id);
}

const char *reel_sse_parser_last_id(const reel_sse_parser *p) { return p->id.data ? p->id.data : ""; }

/* An empty line: the event so far goes out (when it has data). */
static int dispatch(reel_sse_parser *p) {
  int rc = 0;
  if (p->data.len > 0) {
    reel_sse_event ev;
    ev.id = reel_sse_parser_last_id(p);
    ev.type = p->type.len ? p->type.data : "message";
    ev.data_len = p->data.len - 1; /* the last LF goes */
    p->data.data[ev.data_len] = '\0';
    ev.data = p->data.data;
    rc = p->on_event ? p->on_event(p->ctx, &ev) : 0;
  }
  reel_buf_reset(&p->data);
  reel_buf_reset(&p->type);
  return rc;
}

/* Interprets one complete line (without its end). */
static int process_line(reel_sse_parser *p, const char *line, size_t len) {
  if (len == 0) return dispatch(p);
  if (line[0] == ':') {
    p->comments++;
    return 0;
  }
  const char *colon = memchr(line, ':', len);
  size_t name_len = colon ? (size_t)(colon - line) : len;
  const char *value = colon ? colon + 1 : line + len;
  size_t value_len = (size_t)(line + len - value);
  if (value_len > 0 && value[0] == ' ') value++, value_len--;
  if (name_len == 4 && memcmp(line, "data", 4) == 0) {
    if (reel_buf_append(&p->data, value, value_len) != 0 || reel_buf_append(&p->data, "\n", 1) != 0)
      return REEL_ETOOBIG;
  } else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
    reel_buf_reset(&p->type);
    if (value_len && reel_buf_append(&p->type, value, value_len) != 0) return REEL_ETOOBIG;
  } else if (name_len == 2 && memcmp(line, "id", 2) == 0) {
    if (!memchr(value, '\0', value_len)) { /* an id with NUL is ignored */
      reel_buf_reset(&p->id);
      if (value_len && reel_buf_append(&p->id, value, value_len) != 0) return REEL_ETOOBIG;
    }
  } else if (name_len == 5 && memcmp(line, "retry", 5) == 0) {
    long ms = 0;
    size_t i = 0;
    for (; i < value_len && value[i] >= '0' && value[i] <= '9'; i++)
      if (ms < 100000000) ms = ms * 10 + (value[i] - '0');
    if (value_len > 0 && i == value_len) p->retry_ms = ms;
  }
  return 0; /* other fields are ignored */
}

int reel_sse_parser_feed(reel_sse_parser *p, const char *bytes, size_t len) {
  if (p->failed) return REEL_ETOOBIG;
  size_t i = 0;
  if (!p->started) {
    /* a UTF-8 BOM may open the stream; it may itself come in pieces */
    static const char bom[] = "\xEF\xBB\xBF";
    size_t have = p->line.len;
    while (i < len && have + i < 3 && bytes[i] == bom[have + i]) i++;
    if (have + i < 3 && i == len) { /* still a prefix of the BOM: wait */
      if (reel_buf_append(&p->line, bytes, len) != 0) return REEL_ETOOBIG;
      return 0;
    }
    p->started = 1;
    if (have + i == 3) {
      reel_buf_reset(&p->line); /* the whole BOM: dropped */
    } else {
      /* not a BOM after all: what was held is ordinary text */
      i = 0;
      size_t held = p->line.len;
      if (held) {
        char tmp[3];
        memcpy(tmp, p->line.data, held);
        reel_buf_reset(&p->line);
        int rc = reel_sse_parser_feed(p, tmp, held);
        if (rc) return rc;
      }
    }
  }
  while (i < len) {
    if (p->saw_cr) { /* a CRLF's LF, after the line already ended at the CR */
      p->saw_cr = 0;
      if (bytes[i] == '\n') {
        i++;
        continue;
      }
    }
    const char *start = bytes + i;
    size_t n = len - i, k = 0;
    while (k < n && start[k] != '\n' && start[k] != '\r') k++;
    if (k == n) { /* no line end in the rest: keep it */
      if (reel_buf_append(&p->line, start, k) != 0) {
        p->failed = 1;
        return REEL_ETOOBIG;
      }
      return 0;
    }
    int rc;
    if (p->line.len) {
      if (reel_buf_append(&p->line, start, k) != 0) {
        p->failed = 1;
        return REEL_ETOOBIG;
      }
      rc = process_line(p, p->line.data, p->line.len);
      reel_buf_reset(&p->line);
    } else {
      if (k > p->line.max) {
        p->failed = 1;
        return REEL_ETOOBIG;
      }
      rc = process_line(p, start, k);
    }
    if (start[k] == '\r') p->saw_cr = 1;
    i += k + 1;
    if (rc == REEL_ETOOBIG) {
      p->failed = 1;
      return rc;
    }
    if (rc) return rc;
  }
  return 0;
}
