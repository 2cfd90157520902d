/* UTF-8 code points: one strict decoder, an encoder and the small case rule
 * the renderer's word matching needs. */
#ifndef REEL_UTF8_H
#define REEL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The replacement character, for callers that go on past invalid bytes. */
#define REEL_UTF8_REPLACEMENT 0xFFFDu

/* Decodes the code point at s[i] (i < len) into *cp; returns its length in
 * bytes, or 0 when the bytes there are not valid UTF-8 (overlong, surrogate,
 * truncated, above U+10FFFF), leaving *cp unchanged. */
size_t reel_utf8_decode(const unsigned char *s, size_t len, size_t i, uint32_t *cp);

/* Like reel_utf8_decode, but an invalid byte reads as U+FFFD of length 1, so
 * a scan always moves forward. */
size_t reel_utf8_decode_or_replace(const unsigned char *s, size_t len, size_t i, uint32_t *cp);

/* Writes c (at most U+10FFFF) as UTF-8 into out (room for 4 bytes); returns
 * the length. */
size_t reel_utf8_encode(uint32_t c, char out[4]);

/* Lowercase for ASCII and Latin-1 capitals (A-Z, À-Þ but ×); every other code
 * point is returned as it is. */
uint32_t reel_utf8_lower_latin1(uint32_t c);

#endif
