/*
 * fuzz_wire — the wire checks shared by the composing fuzz targets: render a
 * message through mime_read (in the caller's chunk size), then hold the
 * bytes to the rules a receiving SMTP server and RFC 5322 impose.
 * Never: decides whether a message is acceptable; the composer does, and a
 * refusal is a fine result. Only what it emits is judged here.
 */
#include "fuzz_wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "xmalloc.h"

void fuzz_wire_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: invariant broken: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* Attachment bytes from a->data; an attachment without data is empty. */
static ssize_t fuzz_wire_att_read(void *ctx, const struct msg_attachment *a, int64_t off, void *buf,
                                  size_t len, struct err *e)
{
    (void)ctx;
    (void)e;
    FUZZ_CHECK(off >= 0 && (size_t)off <= a->data_len, "attachment read at %lld of %zu",
               (long long)off, a->data_len);
    size_t n = a->data_len - (size_t)off;
    n = n < len ? n : len;
    if (n > 0)
        memcpy(buf, a->data + off, n);
    return (ssize_t)n;
}

static int fuzz_wire_render(struct mime *mm, size_t chunk, struct buf *out)
{
    char *tmp = xmalloc(chunk);
    struct err e = {0};
    ssize_t n;
    /* Bounded: the composer must end; 64 MiB is far beyond any fuzz input. */
    while ((n = mime_read(mm, tmp, chunk, &e)) > 0) {
        FUZZ_CHECK((size_t)n <= chunk, "mime_read returned %zd for %zu", n, chunk);
        buf_append(out, tmp, (size_t)n);
        FUZZ_CHECK(out->len < 64 * 1024 * 1024, "composer output does not end");
    }
    free(tmp);
    if (n < 0)
        FUZZ_CHECK(e.code != 0 && e.msg[0] != '\0', "a refusal without a reason");
    return n < 0 ? -1 : 0;
}

/* CRLF only, no NUL, lines <= 998, no lone ".", ends with CRLF. */
static void fuzz_wire_lines(const struct buf *b)
{
    FUZZ_CHECK(b->len >= 2, "message of %zu octets", b->len);
    size_t start = 0;
    for (size_t i = 0; i < b->len; i++) {
        char c = b->data[i];
        FUZZ_CHECK(c != '\0', "NUL at %zu", i);
        FUZZ_CHECK(c != '\r' || (i + 1 < b->len && b->data[i + 1] == '\n'), "bare CR at %zu", i);
        if (c != '\n')
            continue;
        FUZZ_CHECK(i > 0 && b->data[i - 1] == '\r', "bare LF at %zu", i);
        size_t len = i - 1 - start;
        FUZZ_CHECK(len <= 998, "line of %zu octets at %zu", len, start);
        FUZZ_CHECK(!(len == 1 && b->data[start] == '.'), "a lone \".\" line at %zu", start);
        start = i + 1;
    }
    FUZZ_CHECK(start == b->len, "the message does not end with CRLF");
}

static const char *const fuzz_wire_own[] = {
    "Date",    "From",       "To",           "Cc",           "Reply-To",
    "Subject", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
};

/* Every field of the top header block is the composer's own (at most once)
 * or one of the producer's extra headers (at most as often as given). */
static void fuzz_wire_fields(const struct buf *b, const struct message *m)
{
    const char *end = strstr(b->data, "\r\n\r\n");
    FUZZ_CHECK(end != NULL, "no blank line after the header block");
    size_t hend = (size_t)(end - b->data) + 2;
    size_t own_seen[sizeof fuzz_wire_own / sizeof fuzz_wire_own[0]] = {0};
    size_t *extra_seen = xcalloc(m->nhdrs + 1, sizeof *extra_seen);
    for (size_t i = 0; i < hend;) {
        const char *line = b->data + i;
        const char *eol = strstr(line, "\r\n");
        size_t len = (size_t)(eol - line);
        i += len + 2;
        if (line[0] == ' ' || line[0] == '\t')
            continue; /* a folded continuation */
        const char *colon = memchr(line, ':', len);
        FUZZ_CHECK(colon != NULL && colon > line, "header line without a field name: %.*s",
                   (int)(len < 200 ? len : 200), line);
        size_t nlen = (size_t)(colon - line);
        FUZZ_CHECK(strncasecmp(line, "Bcc", nlen) != 0 || nlen != 3, "a Bcc field went out");
        bool known = false;
        for (size_t k = 0; k < sizeof fuzz_wire_own / sizeof fuzz_wire_own[0] && !known; k++)
            if (strlen(fuzz_wire_own[k]) == nlen &&
                strncasecmp(line, fuzz_wire_own[k], nlen) == 0) {
                FUZZ_CHECK(++own_seen[k] == 1, "%s twice in the header block", fuzz_wire_own[k]);
                known = true;
            }
        /* An extra header name matches as many given headers as carry it. */
        size_t given = 0, seen = 0, first = m->nhdrs;
        for (size_t h = 0; h < m->nhdrs && !known; h++)
            if (strlen(m->hdrs[h].name) == nlen && strncasecmp(line, m->hdrs[h].name, nlen) == 0) {
                given++;
                first = first < h ? first : h;
            }
        if (!known) {
            FUZZ_CHECK(given > 0, "injected header field: %.*s", (int)(nlen < 200 ? nlen : 200),
                       line);
            seen = ++extra_seen[first];
            FUZZ_CHECK(seen <= given, "header %.*s more often than given", (int)nlen, line);
        }
    }
    free(extra_seen);
    static const size_t always[] = {0, 1, 6, 7}; /* Date, From, Message-ID, MIME-Version */
    for (size_t k = 0; k < sizeof always / sizeof always[0]; k++)
        FUZZ_CHECK(own_seen[always[k]] == 1, "no %s field", fuzz_wire_own[always[k]]);
}

int fuzz_wire_compose(const struct message *m, const struct mime_sender *sender, size_t chunk)
{
    if (chunk == 0 || chunk > 65536)
        chunk = 65536;
    struct mime *mm = mime_new(m, sender, fuzz_wire_att_read, NULL);
    struct buf first = BUF_INIT;
    if (fuzz_wire_render(mm, chunk, &first) != 0) {
        mime_free(mm);
        buf_free(&first);
        return -1;
    }
    fuzz_wire_lines(&first);
    fuzz_wire_fields(&first, m);
    /* A retry reuses the stream: the same bytes, read in another chunk size. */
    mime_rewind(mm);
    struct buf again = BUF_INIT;
    FUZZ_CHECK(fuzz_wire_render(mm, chunk == 65536 ? 7 : 65536, &again) == 0,
               "a rewound stream fails");
    FUZZ_CHECK(again.len == first.len && memcmp(again.data, first.data, first.len) == 0,
               "a rewound stream differs");
    mime_free(mm);
    buf_free(&first);
    buf_free(&again);
    return 0;
}
