/*
 * b64decode — strict base64 decoding (RFC 4648 standard alphabet) for
 * attachments given inline in a JSON enqueue document.
 *
 * Owns: rejecting anything that is not canonical base64.
 * Never: guesses: invalid characters, missing or misplaced padding and
 * non-zero pad bits are errors. Line breaks and spaces between groups are
 * skipped, because common encoders wrap lines.
 */
#ifndef MAILSPOOL_B64DECODE_H
#define MAILSPOOL_B64DECODE_H

#include <stddef.h>

/* Decodes in[0..len) into a malloc'ed *out (*outlen bytes). Returns 0, or
 * -1 with *where set to the offset of the first bad character. */
int b64decode(const char *in, size_t len, unsigned char **out, size_t *outlen, size_t *where);

#endif
