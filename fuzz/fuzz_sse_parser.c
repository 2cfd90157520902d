/* libFuzzer target: the reel client's text/event-stream parser, fed the
 * input whole and again in pieces split where its first byte says; both
 * must dispatch the same events, within the parser's bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/sse_parser.h"

typedef struct {
  unsigned long n;
  unsigned long long hash;
} tally;

static int count(void *ctx, const reel_sse_event *ev) {
  tally *t = ctx;
  if (ev->data_len > 4096 || strlen(ev->id) > 1024 || strlen(ev->type) > 256) __builtin_trap();
  t->n++;
  for (size_t i = 0; i < ev->data_len; i++) t->hash = t->hash * 131 + (unsigned char)ev->data[i];
  for (const char *c = ev->id; *c; c++) t->hash = t->hash * 31 + (unsigned char)*c;
  for (const char *c = ev->type; *c; c++) t->hash = t->hash * 17 + (unsigned char)*c;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t step = data[0] % 7 + 1;
  data++, size--;
  tally whole = {0}, pieces = {0};
  reel_sse_parser p;
  reel_sse_parser_init(&p, 512, 4096, count, &whole);
  int rc_whole = reel_sse_parser_feed(&p, (const char *)data, size);
  reel_sse_parser_free(&p);
  reel_sse_parser_init(&p, 512, 4096, count, &pieces);
  int rc_pieces = 0;
  for (size_t i = 0; i < size && rc_pieces == 0; i += step)
    rc_pieces = reel_sse_parser_feed(&p, (const char *)data + i, size - i < step ? size - i : step);
  reel_sse_parser_free(&p);
  if (rc_whole == 0 && rc_pieces == 0 && (whole.n != pieces.n || whole.hash != pieces.hash)) __builtin_trap();
  return 0;
}
