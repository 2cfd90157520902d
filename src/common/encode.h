/* Hex and base64 encodings, written once. */
#ifndef REEL_ENCODE_H
#define REEL_ENCODE_H

#include <stddef.h>

#include "common/buf.h"

/* Writes 2n lowercase hex digits and a NUL into out (2n + 1 bytes). */
void reel_hex_encode(const unsigned char *in, size_t n, char *out);
/* Appends the standard base64 (with padding) of in[0..n) to out. 0 or a reel error. */
int reel_base64_encode(const unsigned char *in, size_t n, reel_buf *out);

#endif
