/*
 * fuzz_wire — shared by the fuzz targets that compose messages: stream a
 * struct message through mime_read and check the bytes as an SMTP server
 * would receive them.
 * Never: repairs or validates the message itself (mime_read does that and
 * may refuse it); a broken invariant aborts, which libFuzzer reports as a
 * crash with the input that caused it.
 */
#ifndef MAILSPOOL_FUZZ_WIRE_H
#define MAILSPOOL_FUZZ_WIRE_H

#include <stddef.h>

#include "message.h"
#include "mime.h"

/*
 * Composes m for sender, reading in chunks of chunk octets (1..65536), and
 * when the composer accepts the message checks the wire rules: CRLF only (no
 * bare CR or LF, no NUL), no line over 998 octets, no lone "." line, a blank
 * line ends the header block, no Bcc field, every top-level header field is
 * one the composer writes or one of m's extra headers (no injection), and a
 * rewound stream gives the same bytes. Attachment bytes come from a->data
 * (a->data_len octets; none for attachments without data). Returns 0 when
 * the composer produced a message, -1 when it refused it.
 */
int fuzz_wire_compose(const struct message *m, const struct mime_sender *sender, size_t chunk);

/* Aborts with a message when cond is false (assert() vanishes under NDEBUG). */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_wire_fail(__FILE__, __LINE__, __VA_ARGS__);                                       \
    } while (0)

void fuzz_wire_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#endif
