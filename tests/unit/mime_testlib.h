/*
 * mime_testlib — shared by test_mime.c and test_mime_stream.c: an in-memory
 * attachment reader, rendering through mime_read, the wire checks, and the
 * tests' own decoders (base64, quoted-printable, RFC 2047) used to prove the
 * composer's output decodes back to what went in.
 * Never: compiled alone; each test program includes it once.
 */
#ifndef MAILSPOOL_MIME_TESTLIB_H
#define MAILSPOOL_MIME_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "address.h"
#include "buf.h"
#include "message.h"
#include "mime.h"
#include "sha256.h"
#include "xmalloc.h"

/* Not every test program uses every helper. */
#define TL static __attribute__((unused))

/* ---- the attachment reader ------------------------------------------------ */

struct reader {
    size_t max_chunk; /* hand out at most this much per call (short reads) */
    size_t max_asked; /* largest len the composer asked for */
    int64_t next_off; /* reads must be sequential */
    int fail_at_call; /* 0: never; n: the n-th call fails */
    int calls;
    int64_t lie; /* added to the octets available: a blob of the wrong size */
    bool overfill;
};

/* Bytes come from a->data, or when a->data is NULL from a generator, so a
 * large attachment needs no memory in the test either. */
TL unsigned char gen_byte(int64_t off)
{
    uint64_t x = (uint64_t)off * 2654435761u;
    return (unsigned char)((x >> 13) ^ (x >> 5) ^ (uint64_t)off);
}

TL ssize_t att_read(void *ctx, const struct msg_attachment *a, int64_t off, void *buf, size_t len,
                    struct err *e)
{
    struct reader *r = ctx;
    r->calls++;
    if (r->fail_at_call && r->calls == r->fail_at_call)
        return err_set(e, EX_IOERR, "blob %lld: disk on fire", (long long)a->id);
    if (off == 0)
        r->next_off = 0;
    assert_int_equal(off, r->next_off);
    if (len > r->max_asked)
        r->max_asked = len;
    int64_t avail = a->size + r->lie - off;
    if (avail <= 0)
        return 0;
    size_t n = (size_t)avail < len ? (size_t)avail : len;
    if (r->max_chunk && n > r->max_chunk)
        n = r->max_chunk;
    for (size_t i = 0; i < n; i++)
        ((unsigned char *)buf)[i] = a->data && off + (int64_t)i < a->size
                                        ? a->data[off + (int64_t)i]
                                        : gen_byte(off + (int64_t)i);
    r->next_off = off + (int64_t)n;
    return r->overfill ? (ssize_t)len + 1 : (ssize_t)n;
}

/* ---- rendering and wire checks -------------------------------------------- */

TL const struct mime_sender sender = {"rechnung@airport.example",
                                      "Flughafen Musterstadt – Buchhaltung", NULL};

TL int render(const struct message *m, const struct mime_sender *s, struct reader *r, size_t chunk,
              struct buf *out, struct err *e)
{
    struct mime *mm = mime_new(m, s, att_read, r);
    char *tmp = xmalloc(chunk);
    ssize_t n;
    buf_reset(out);
    size_t guard = 0;
    while ((n = mime_read(mm, tmp, chunk, e)) > 0 && guard++ < 100000000)
        buf_append(out, tmp, (size_t)n);
    free(tmp);
    mime_free(mm);
    return n < 0 ? -1 : 0;
}

TL void must_render(const struct message *m, struct buf *out)
{
    struct reader r = {0};
    struct err e = {0};
    if (render(m, &sender, &r, 65536, out, &e) != 0)
        fail_msg("render failed: %s", e.msg);
}

/* CRLF only, every line <= 998 octets, the whole ends with CRLF, no line
 * is a lone "." and no NUL. */
TL void assert_wire_clean(const struct buf *b)
{
    assert_true(b->len >= 2);
    size_t start = 0;
    for (size_t i = 0; i < b->len; i++) {
        char c = b->data[i];
        if (c == '\0')
            fail_msg("NUL at %zu", i);
        if (c == '\r' && (i + 1 >= b->len || b->data[i + 1] != '\n'))
            fail_msg("bare CR at %zu", i);
        if (c == '\n') {
            if (i == 0 || b->data[i - 1] != '\r')
                fail_msg("bare LF at %zu", i);
            size_t len = i - 1 - start;
            if (len > 998)
                fail_msg("line of %zu octets at %zu", len, start);
            if (len == 1 && b->data[start] == '.')
                fail_msg("a lone \".\" line at %zu", start);
            start = i + 1;
        }
    }
    assert_int_equal(start, b->len); /* ends with CRLF */
}

TL size_t header_end(const struct buf *b)
{
    const char *p = strstr(b->data, "\r\n\r\n");
    assert_non_null(p);
    return (size_t)(p - b->data) + 2;
}

/* Every line of the top header block within 78 octets. */
TL void assert_header_lines_soft(const struct buf *b)
{
    size_t end = header_end(b), start = 0;
    for (size_t i = 0; i < end; i++)
        if (b->data[i] == '\n') {
            if (i - 1 - start > 78)
                fail_msg("header line over 78: %.*s", (int)(i - 1 - start), b->data + start);
            start = i + 1;
        }
}

/* The unfolded value of the n-th field called name in the top header block,
 * or NULL. */
TL char *header_nth(const struct buf *b, const char *name, int nth)
{
    size_t end = header_end(b), nl = strlen(name);
    for (size_t i = 0; i < end; i++) {
        if ((i != 0 && b->data[i - 1] != '\n') || strncasecmp(b->data + i, name, nl) != 0 ||
            b->data[i + nl] != ':')
            continue;
        if (nth-- > 0)
            continue;
        struct buf v = BUF_INIT;
        size_t j = i + nl + 1;
        while (j < end && b->data[j] == ' ')
            j++;
        for (; j < end; j++) {
            if (b->data[j] == '\r' && b->data[j + 1] == '\n') {
                if (b->data[j + 2] != ' ' && b->data[j + 2] != '\t')
                    break;
                j++;
                continue;
            }
            buf_putc(&v, b->data[j]);
        }
        buf_append(&v, "", 0); /* terminated even when empty */
        return buf_detach(&v);
    }
    return NULL;
}

TL char *header(const struct buf *b, const char *name)
{
    return header_nth(b, name, 0);
}

/* ---- decoders (the test's own, to check the composer's encoders) ---------------- */

TL int b64val(char c)
{
    const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(t, c) : NULL;
    return p ? (int)(p - t) : -1;
}

/* The plainest RFC 2045 6.8 encoder: one character at a time, a CRLF after
 * every line_len characters and after the last line (0: no line breaks).
 * The reference the composer's fast encoder must match byte for byte. */
TL void b64_reference(struct buf *out, const unsigned char *s, size_t len, int line_len)
{
    const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int col = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        v |= i + 1 < len ? (unsigned)s[i + 1] << 8 : 0;
        v |= i + 2 < len ? s[i + 2] : 0;
        char q[4] = {t[v >> 18], t[(v >> 12) & 63], i + 1 < len ? t[(v >> 6) & 63] : '=',
                     i + 2 < len ? t[v & 63] : '='};
        for (int k = 0; k < 4; k++) {
            if (line_len > 0 && col == line_len) {
                buf_append(out, "\r\n", 2);
                col = 0;
            }
            buf_putc(out, q[k]);
            col++;
        }
    }
    if (line_len > 0 && col > 0)
        buf_append(out, "\r\n", 2);
}

/* n octets of base64 text in lines of exactly line_len characters (the last
 * one shorter or as long), each ending in CRLF; line_len 0: one line, no
 * CRLF. Only the alphabet, '=' padding at the very end, nothing else. */
TL void assert_b64_lines(const char *s, size_t n, int line_len)
{
    const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t col = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        if (line_len > 0 && s[i] == '\r') {
            if (i + 1 >= n || s[i + 1] != '\n')
                fail_msg("bare CR at %zu", i);
            if (col == 0 || (col != (size_t)line_len && i + 2 != n))
                fail_msg("line of %zu characters at %zu", col, i);
            col = 0;
            i++;
            continue;
        }
        if (s[i] == '=')
            pad++;
        else if (s[i] == '\0' || strchr(t, s[i]) == NULL || pad > 0)
            fail_msg("0x%02x at %zu", (unsigned char)s[i], i);
        if (line_len > 0 && ++col > (size_t)line_len)
            fail_msg("line over %d at %zu", line_len, i);
    }
    assert_true(pad <= 2);
    if (line_len > 0 && n > 0)
        assert_true(n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n');
}

/* xorshift64: reproducible "random" octets for the encoder tests. */
TL void fill_random(unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t x = seed ? seed : 88172645463325252u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)(x >> 24);
    }
}

TL void b64_decode(const char *s, size_t n, struct buf *out)
{
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '=')
            continue;
        int v = b64val(s[i]);
        if (v < 0)
            fail_msg("not base64: 0x%02x at %zu", (unsigned char)s[i], i);
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_putc(out, (char)((acc >> bits) & 0xFF));
        }
    }
}

TL int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* RFC 2045 6.7 decoding; also checks lines <= 76 and no trailing space. */
TL void qp_decode(const char *s, size_t n, struct buf *out)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
            if (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'))
                fail_msg("QP line with trailing whitespace");
            buf_append(out, "\r\n", 2);
            i++;
            col = 0;
            continue;
        }
        if (++col > 76)
            fail_msg("QP line over 76");
        if (s[i] != '=') {
            buf_putc(out, s[i]);
            continue;
        }
        if (i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
            i += 2; /* soft break */
            col = 0;
            continue;
        }
        assert_true(i + 2 < n);
        int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
        if (hi < 0 || lo < 0)
            fail_msg("bad QP escape at %zu", i);
        buf_putc(out, (char)(hi * 16 + lo));
        col += 2;
        i += 2;
    }
}

/* Decodes a value made only of UTF-8 encoded-words (or returns it as it is
 * when it has none); each word must be valid UTF-8 on its own. */
TL char *ew_decode(const char *v)
{
    if (strncmp(v, "=?", 2) != 0)
        return xstrdup(v);
    struct buf out = BUF_INIT;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        assert_true(strncmp(p, "=?UTF-8?", 8) == 0);
        char kind = p[8];
        assert_true(kind == 'Q' || kind == 'B');
        assert_int_equal(p[9], '?');
        const char *end = strstr(p + 10, "?=");
        assert_non_null(end);
        assert_true(end + 2 - p <= 75);
        struct buf w = BUF_INIT;
        if (kind == 'B') {
            b64_decode(p + 10, (size_t)(end - p - 10), &w);
        } else {
            for (const char *q = p + 10; q < end; q++) {
                if (*q == '_')
                    buf_putc(&w, ' ');
                else if (*q == '=') {
                    buf_putc(&w, (char)(hexval(q[1]) * 16 + hexval(q[2])));
                    q += 2;
                } else
                    buf_putc(&w, *q);
            }
        }
        if (!utf8_valid(w.data ? w.data : "", w.len))
            fail_msg("encoded-word splits a UTF-8 sequence: %.*s", (int)(end + 2 - p), p);
        buf_append(&out, w.data ? w.data : "", w.len);
        buf_free(&w);
        p = end + 2;
    }
    buf_append(&out, "", 0);
    return buf_detach(&out);
}

/* Text with every line end (CRLF, LF, CR) as CRLF: what the QP body holds. */
TL char *crlf(const char *s)
{
    struct buf b = BUF_INIT;
    for (; *s; s++) {
        if (*s == '\r' && s[1] == '\n')
            continue;
        if (*s == '\r' || *s == '\n')
            buf_append(&b, "\r\n", 2);
        else
            buf_putc(&b, *s);
    }
    buf_append(&b, "", 0);
    return buf_detach(&b);
}

/* The body of the part whose headers contain marker (searched from the start
 * of the message), up to the next boundary line or the end. */
TL void part_body(const struct buf *b, const char *marker, const char **body, size_t *len)
{
    const char *m = strstr(b->data, marker);
    if (m == NULL)
        fail_msg("no part with %s", marker);
    const char *start = strstr(m, "\r\n\r\n");
    assert_non_null(start);
    start += 4;
    const char *end = strstr(start, "\r\n--=_ms_");
    *body = start;
    *len = end ? (size_t)(end - start) : b->len - (size_t)(start - b->data);
}

TL void assert_qp_part(const struct buf *b, const char *marker, const char *text)
{
    const char *body;
    size_t len;
    part_body(b, marker, &body, &len);
    struct buf d = BUF_INIT;
    qp_decode(body, len, &d);
    char *want = crlf(text);
    if (d.len != strlen(want) || memcmp(d.data, want, d.len) != 0)
        fail_msg("QP body differs for %s", marker);
    free(want);
    buf_free(&d);
}

/* ---- messages ------------------------------------------------------------- */

TL struct message *msg(const char *text, const char *html)
{
    struct err e = {0};
    struct message *m = message_new();
    m->id = 42;
    m->created = 1796400001; /* Fri, 04 Dec 2026 16:00:01 +0000 */
    m->area = xstrdup("invoice");
    m->subject = xstrdup("Rechnung 2026-0042");
    m->text = text ? xstrdup(text) : NULL;
    m->html = html ? xstrdup(html) : NULL;
    assert_int_equal(message_add_rcpt(m, RCPT_TO, "Bärbel Groß <b@example.org>", &e), 0);
    assert_int_equal(message_add_rcpt(m, RCPT_TO, "\"Name, Jr.\" <jr@example.org>", &e), 0);
    assert_int_equal(message_add_rcpt(m, RCPT_CC, "cc@example.org", &e), 0);
    assert_int_equal(message_add_rcpt(m, RCPT_BCC, "Secret Person <hidden@example.org>", &e), 0);
    return m;
}

TL struct msg_attachment *attach(struct message *m, const char *name, const char *type, size_t size,
                                 bool from_data)
{
    struct msg_attachment *a = message_add_attachment(m);
    a->id = (int64_t)m->natts;
    a->name = xstrdup(name);
    a->content_type = type ? xstrdup(type) : NULL;
    a->size = (int64_t)size;
    if (from_data) {
        a->data = xmalloc(size ? size : 1);
        for (size_t i = 0; i < size; i++)
            a->data[i] = gen_byte((int64_t)(i * 31 + size));
        a->data_len = size;
    }
    return a;
}

TL void common_headers(const struct buf *b)
{
    char *v;
    assert_non_null(v = header(b, "Date"));
    assert_string_equal(v, "Fri, 04 Dec 2026 16:00:01 +0000");
    free(v);
    assert_non_null(v = header(b, "Message-ID"));
    assert_string_equal(v, "<ms.42.1796400001@airport.example>");
    free(v);
    assert_non_null(v = header(b, "MIME-Version"));
    assert_string_equal(v, "1.0");
    free(v);
    assert_non_null(v = header(b, "Subject"));
    free(v);
    assert_non_null(v = header(b, "From"));
    assert_non_null(strstr(v, "<rechnung@airport.example>"));
    free(v);
    assert_non_null(v = header(b, "To"));
    assert_non_null(strstr(v, "<b@example.org>"));
    assert_non_null(strstr(v, "\"Name, Jr.\" <jr@example.org>"));
    free(v);
    assert_non_null(v = header(b, "Cc"));
    assert_string_equal(v, "cc@example.org");
    free(v);
    assert_null(header(b, "Bcc"));
    assert_null(strstr(b->data, "hidden@example.org"));
    assert_null(strstr(b->data, "Secret"));
    assert_null(header_nth(b, "Subject", 1)); /* exactly one */
    assert_header_lines_soft(b);
}

TL void assert_att_roundtrip(const struct buf *b, const struct msg_attachment *a,
                             const char *marker)
{
    const char *body;
    size_t len;
    part_body(b, marker, &body, &len);
    for (size_t i = 0, col = 0; i < len; i++) { /* 76-character lines */
        if (body[i] == '\r')
            col = 0, i++;
        else if (++col > 76)
            fail_msg("base64 line over 76");
    }
    struct buf d = BUF_INIT;
    b64_decode(body, len, &d);
    assert_int_equal(d.len, (size_t)a->size);
    char got[65], want[65];
    sha256_hex(d.data ? d.data : "", d.len, got);
    struct sha256 s;
    sha256_init(&s);
    for (int64_t i = 0; i < a->size; i++) {
        unsigned char c = a->data ? a->data[i] : gen_byte(i);
        sha256_update(&s, &c, 1);
    }
    sha256_final_hex(&s, want);
    assert_string_equal(got, want);
    buf_free(&d);
}

#endif
