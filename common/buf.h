/*
 * buf — a growable byte buffer.
 *
 * Owns: its data array (buf_free releases it; buf_detach hands it over).
 * Never: assumes text; data is always NUL-terminated for convenience, but
 * len is the truth.
 */
#ifndef MAILSPOOL_BUF_H
#define MAILSPOOL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Returns the data (NUL-terminated, never NULL) and leaves b empty. */
char *buf_detach(struct buf *b);
/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);

#endif
