/* common/utf8: strict decoding, replacement, encoding round trips, Latin-1 lowercase. */
#include <string.h>

#include "check.h"
#include "common/utf8.h"

static size_t decode_str(const char *s, uint32_t *cp) {
  return reel_utf8_decode((const unsigned char *)s, strlen(s), 0, cp);
}

int main(void) {
  uint32_t cp = 0;
  CHECK_INT(decode_str("A", &cp), 1);
  CHECK_INT(cp, 'A');
  CHECK_INT(decode_str("\xc3\xa9", &cp), 2); /* é */
  CHECK_INT(cp, 0xE9);
  CHECK_INT(decode_str("\xe6\x97\xa5", &cp), 3); /* 日 */
  CHECK_INT(cp, 0x65E5);
  CHECK_INT(decode_str("\xf0\x9f\x8e\xac", &cp), 4); /* 🎬 */
  CHECK_INT(cp, 0x1F3AC);
  /* invalid: overlong, surrogate, above U+10FFFF, truncated, lone continuation */
  const char *bad[] = {"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe6\x97", "\x80", "\xff"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cp = 7;
    CHECK_INT(decode_str(bad[i], &cp), 0);
    CHECK_INT(cp, 7);
    CHECK_INT(reel_utf8_decode_or_replace((const unsigned char *)bad[i], strlen(bad[i]), 0, &cp), 1);
    CHECK_INT(cp, REEL_UTF8_REPLACEMENT);
  }
  /* every code point outside the surrogates round-trips */
  int mismatches = 0;
  for (uint32_t c = 0; c <= 0x10FFFF; c++) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    char buf[4];
    size_t n = reel_utf8_encode(c, buf);
    uint32_t back = 0;
    if (reel_utf8_decode((const unsigned char *)buf, n, 0, &back) != n || back != c) mismatches++;
  }
  CHECK_INT(mismatches, 0);
  CHECK_INT(reel_utf8_lower_latin1('Q'), 'q');
  CHECK_INT(reel_utf8_lower_latin1(0xC9), 0xE9); /* É -> é */
  CHECK_INT(reel_utf8_lower_latin1(0xD7), 0xD7); /* × stays */
  CHECK_INT(reel_utf8_lower_latin1(0x416), 0x416);
  return check_report();
}
