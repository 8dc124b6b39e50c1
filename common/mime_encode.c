/*
 * mime_encode — the encoders the composer needs: base64, quoted-printable,
 * RFC 2047 encoded-words, RFC 2231 parameters, and the folding header writer
 * they write through.
 *
 * Owns: line-length discipline (header lines within 78 octets where the
 * content allows, body lines within 76) and the rule that nothing written
 * here contains a bare CR or LF.
 * Never: decides which headers a message has (mime_header.c) or reads
 * attachment bytes (mime.c).
 */
#include "mime_impl.h"

#include <stdint.h>
#include <string.h>

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hexdigits[] = "0123456789ABCDEF";

/* ---- header writer ------------------------------------------------------ */

void mime_hw_begin(struct mime_hw *h, struct buf *out, const char *name)
{
    h->out = out;
    buf_puts(out, name);
    buf_putc(out, ':');
    h->col = strlen(name) + 1;
    h->started = false;
}

void mime_hw_attach(struct mime_hw *h, struct buf *out)
{
    h->out = out;
    size_t i = out->len;
    while (i > 0 && out->data[i - 1] != '\n')
        i--;
    h->col = out->len - i;
    h->started = true;
}

void mime_hw_token(struct mime_hw *h, const char *tok, size_t len)
{
    /* Folding a line that holds only the fold's own space gains nothing. */
    if (h->col + 1 + len > MIME_LINE_SOFT && h->col > 1 && h->started) {
        buf_append(h->out, "\r\n", 2);
        h->col = 0;
    }
    h->started = true;
    buf_putc(h->out, ' ');
    buf_append(h->out, tok, len);
    h->col += 1 + len;
}

void mime_hw_raw(struct mime_hw *h, const char *s, size_t len)
{
    buf_append(h->out, s, len);
    h->col += len;
}

void mime_hw_end(struct mime_hw *h)
{
    buf_append(h->out, "\r\n", 2);
    h->col = 0;
}

/* ---- RFC 2047 encoded-words ---------------------------------------------- */

#define EW_MAX 75   /* RFC 2047 2: an encoded-word is at most 75 octets */
#define EW_FRAME 12 /* "=?UTF-8?Q?" and "?=" */

/* Q octets that may stay literal even in a phrase (RFC 2047 5(3)). */
static bool q_literal(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' ||
           c == '*' || c == '+' || c == '-' || c == '/';
}

static size_t q_len(const unsigned char *s, size_t n)
{
    size_t l = 0;
    for (size_t i = 0; i < n; i++)
        l += (q_literal(s[i]) || s[i] == ' ') ? 1 : 3;
    return l;
}

static size_t b_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/* Length of the character at s (n octets left); invalid bytes count alone. */
static size_t char_len(const unsigned char *s, size_t n)
{
    size_t l = s[0] < 0x80 ? 1 : s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 1;
    if (l > n)
        return 1;
    for (size_t i = 1; i < l; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 1;
    return l;
}

static void ew_emit(struct mime_hw *h, const unsigned char *s, size_t n, bool q)
{
    struct buf w = BUF_INIT;
    buf_puts(&w, q ? "=?UTF-8?Q?" : "=?UTF-8?B?");
    if (q) {
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ')
                buf_putc(&w, '_');
            else if (q_literal(s[i]))
                buf_putc(&w, (char)s[i]);
            else
                buf_printf(&w, "=%c%c", hexdigits[s[i] >> 4], hexdigits[s[i] & 15]);
        }
    } else {
        mime_encode_base64(&w, s, n, 0);
    }
    buf_puts(&w, "?=");
    mime_hw_token(h, w.data, w.len);
    buf_free(&w);
}

void mime_hw_encoded_words(struct mime_hw *h, const char *utf8, size_t len)
{
    const unsigned char *s = (const unsigned char *)utf8;
    bool q = q_len(s, len) <= b_len(len);
    size_t start = 0, i = 0;
    /* The first word fills what is left of the current line when that holds
     * at least a few characters; later words each start a continuation line. */
    size_t room = h->col + 1 < MIME_LINE_SOFT ? MIME_LINE_SOFT - h->col - 1 : 0;
    size_t cap = room >= EW_FRAME + 12 && room < EW_MAX ? room : EW_MAX;
    /* A text that fits one word is not split just to fill this line, unless
     * the line holds only the field name. */
    if (h->started && EW_FRAME + (q ? q_len(s, len) : b_len(len)) <= EW_MAX)
        cap = EW_MAX;
    while (i < len) {
        size_t cl = char_len(s + i, len - i);
        size_t payload = q ? q_len(s + start, i + cl - start) : b_len(i + cl - start);
        if (i > start && EW_FRAME + payload > cap) {
            ew_emit(h, s + start, i - start, q);
            start = i;
            cap = EW_MAX;
            continue;
        }
        i += cl;
    }
    if (i > start)
        ew_emit(h, s + start, i - start, q);
}

/* ---- unstructured text and phrases ----------------------------------------- */

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* True when the text cannot be written literally. */
static bool text_needs_encoding(const char *s, bool subject)
{
    size_t run = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x7F || (*p < 0x20 && *p != '\t'))
            return true;
        if (subject && p[0] == '=' && p[1] == '?')
            return true;
        run = is_wsp((char)*p) ? 0 : run + 1;
        if (subject && run > MIME_LINE_SOFT - 2)
            return true;
    }
    return false;
}

void mime_hw_text(struct mime_hw *h, const char *utf8, bool subject)
{
    if (text_needs_encoding(utf8, subject)) {
        mime_hw_encoded_words(h, utf8, strlen(utf8));
        return;
    }
    /* Segments of one whitespace character plus a word: a fold goes before a
     * segment's whitespace, so unfolding (removing the CRLF) restores the
     * text exactly, and long runs of whitespace can be folded too. */
    const char *p = utf8;
    bool first = true;
    do {
        const char *seg = p;
        if (is_wsp(*p))
            p++;
        while (*p && !is_wsp(*p))
            p++;
        size_t n = (size_t)(p - seg);
        if (first) {
            mime_hw_token(h, seg, n);
            first = false;
            continue;
        }
        if (h->col + n > MIME_LINE_SOFT && h->col > 1) {
            buf_append(h->out, "\r\n", 2);
            h->col = 0;
        }
        mime_hw_raw(h, seg, n);
    } while (*p);
}

/* RFC 5322 atext. */
static bool is_atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

void mime_hw_phrase(struct mime_hw *h, const char *utf8)
{
    size_t len = strlen(utf8);
    bool atoms = len > 0 && utf8[0] != ' ' && utf8[len - 1] != ' ';
    size_t quoted = 2, run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)utf8[i];
        run = c == ' ' ? 0 : run + 1;
        /* A word longer than a line cannot be folded: encoded words can. */
        if (c < 0x20 || c >= 0x7F || (c == '=' && utf8[i + 1] == '?') || run > MIME_LINE_SOFT - 2) {
            mime_hw_encoded_words(h, utf8, len);
            return;
        }
        if (!is_atext(c) && !(c == ' ' && utf8[i + 1] != ' '))
            atoms = false;
        quoted += (c == '"' || c == '\\') ? 2 : 1;
    }
    if (atoms) {
        for (const char *p = utf8; *p;) {
            size_t n = strcspn(p, " ");
            mime_hw_token(h, p, n);
            p += n + (p[n] == ' ');
        }
        return;
    }
    if (quoted > MIME_LINE_SOFT - 2) { /* a quoted string cannot be folded cleanly */
        mime_hw_encoded_words(h, utf8, len);
        return;
    }
    struct buf q = BUF_INIT;
    buf_putc(&q, '"');
    for (const char *p = utf8; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_putc(&q, '\\');
        buf_putc(&q, *p);
    }
    buf_putc(&q, '"');
    mime_hw_token(h, q.data, q.len);
    buf_free(&q);
}

/* ---- RFC 2231 parameters ------------------------------------------------- */

#define PARAM_PLAIN 56 /* longest value written as name="value" */
#define PARAM_SEG 48   /* encoded octets per RFC 2231 continuation */

/* RFC 2231 attribute-char: CHAR except SPACE, '*', '\'', '%' and tspecials. */
static bool attr_char(unsigned char c)
{
    return c > 32 && c < 127 && strchr("*'%()<>@,;:\\\"/[]?=", c) == NULL;
}

static void param_quoted(struct mime_hw *h, const char *param, const char *value)
{
    struct buf t = BUF_INIT;
    buf_printf(&t, "%s=\"", param);
    for (const char *p = value; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_putc(&t, '\\');
        buf_putc(&t, *p);
    }
    buf_putc(&t, '"');
    mime_hw_token(h, t.data, t.len);
    buf_free(&t);
}

static void pct_encode(struct buf *out, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (attr_char(s[i]))
            buf_putc(out, (char)s[i]);
        else
            buf_printf(out, "%%%c%c", hexdigits[s[i] >> 4], hexdigits[s[i] & 15]);
    }
}

/* param*0*=UTF-8''...; param*1*=...: segments end between characters, so
 * each is valid UTF-8 by itself (RFC 2231 does not demand it, but some
 * readers decode segment by segment). */
static void param_segments(struct mime_hw *h, const char *param, const unsigned char *s, size_t len)
{
    struct buf seg = BUF_INIT, piece = BUF_INIT, t = BUF_INIT;
    int n = 0;
    for (size_t i = 0; i <= len;) {
        size_t cl = i < len ? char_len(s + i, len - i) : 0;
        buf_reset(&piece);
        pct_encode(&piece, s + i, cl);
        if (i == len || (seg.len > 0 && seg.len + piece.len > PARAM_SEG)) {
            buf_reset(&t);
            buf_printf(&t, "%s*%d*=%s%s%s", param, n, n == 0 ? "UTF-8''" : "",
                       seg.len ? seg.data : "", i < len ? ";" : "");
            mime_hw_token(h, t.data, t.len);
            n++;
            buf_reset(&seg);
            if (i == len)
                break;
        }
        buf_append(&seg, piece.data, piece.len);
        i += cl;
    }
    buf_free(&seg);
    buf_free(&piece);
    buf_free(&t);
}

/* param*=UTF-8''..., with continuations when long. */
static void param_extended(struct mime_hw *h, const char *param, const char *value)
{
    struct buf enc = BUF_INIT;
    pct_encode(&enc, (const unsigned char *)value, strlen(value));
    if (enc.len <= PARAM_SEG + 8) {
        struct buf t = BUF_INIT;
        buf_printf(&t, "%s*=UTF-8''%s", param, enc.len ? enc.data : "");
        mime_hw_token(h, t.data, t.len);
        buf_free(&t);
    } else {
        param_segments(h, param, (const unsigned char *)value, strlen(value));
    }
    buf_free(&enc);
}

void mime_hw_param(struct mime_hw *h, const char *param, const char *utf8)
{
    size_t len = strlen(utf8);
    bool plain = len <= PARAM_PLAIN && strstr(utf8, "=?") == NULL;
    for (size_t i = 0; i < len && plain; i++)
        plain = (unsigned char)utf8[i] >= 32 && (unsigned char)utf8[i] < 127;
    mime_hw_raw(h, ";", 1);
    if (plain)
        param_quoted(h, param, utf8);
    else
        param_extended(h, param, utf8);
}

/* ---- public encoders (mime.h) ---------------------------------------------- */

void mime_encode_rfc2047(struct buf *out, const char *utf8, size_t first_line_used)
{
    /* The writer puts a space before every word; the caller placed the text
     * already, so the first space is dropped and counted as used instead. */
    struct buf tmp = BUF_INIT;
    struct mime_hw h = {&tmp, first_line_used > 0 ? first_line_used - 1 : 0, false};
    mime_hw_encoded_words(&h, utf8, strlen(utf8));
    if (tmp.len > 0) {
        size_t skip = tmp.data[0] == ' ' ? 1 : 0;
        buf_append(out, tmp.data + skip, tmp.len - skip);
    }
    buf_free(&tmp);
}

/* ---- base64 (RFC 2045 6.8) ------------------------------------------------ */

/* The character of a 6-bit value, as a constant expression (b64chars as
 * arithmetic), so that the pair table below is built by the compiler. */
#define B64_CHAR(v)                                                                                \
    ((v) < 26    ? 'A' + (v)                                                                       \
     : (v) < 52  ? 'a' + (v)-26                                                                    \
     : (v) < 62  ? '0' + (v)-52                                                                    \
     : (v) == 62 ? '+'                                                                             \
                 : '/')
#define B64_P1(i) B64_CHAR((i) >> 6), B64_CHAR((i)&63)
#define B64_P4(i) B64_P1(i), B64_P1((i) + 1), B64_P1((i) + 2), B64_P1((i) + 3)
#define B64_P16(i) B64_P4(i), B64_P4((i) + 4), B64_P4((i) + 8), B64_P4((i) + 12)
#define B64_P64(i) B64_P16(i), B64_P16((i) + 16), B64_P16((i) + 32), B64_P16((i) + 48)
#define B64_P256(i) B64_P64(i), B64_P64((i) + 64), B64_P64((i) + 128), B64_P64((i) + 192)
#define B64_P1024(i) B64_P256(i), B64_P256((i) + 256), B64_P256((i) + 512), B64_P256((i) + 768)

/* The two characters of every 12-bit value: one lookup per two output
 * characters. Encoding attachments was the largest item of sending them
 * (tests/bench profiles of W2/W3); this and whole lines at a time made it
 * about five times cheaper than a lookup and a line check per character. */
static const char b64_pairs[8192] = {B64_P1024(0), B64_P1024(1024), B64_P1024(2048),
                                     B64_P1024(3072)};

static char *b64_pair(char *o, unsigned v12)
{
    memcpy(o, b64_pairs + 2 * v12, 2);
    return o + 2;
}

/* n octets, n a multiple of 3, without line breaks; returns the end. Six
 * octets per step through one 8-octet big-endian load (the compiler makes it
 * a single load), as long as 8 octets are left to read. */
static inline char *b64_groups(char *o, const unsigned char *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 6) {
        const unsigned char *p = s + i;
        uint64_t x = (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 | (uint64_t)p[2] << 40 |
                     (uint64_t)p[3] << 32 | (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 |
                     (uint64_t)p[6] << 8 | p[7];
        o = b64_pair(o, (unsigned)(x >> 52) & 0xFFF);
        o = b64_pair(o, (unsigned)(x >> 40) & 0xFFF);
        o = b64_pair(o, (unsigned)(x >> 28) & 0xFFF);
        o = b64_pair(o, (unsigned)(x >> 16) & 0xFFF);
    }
    for (; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        o = b64_pair(o, v >> 12);
        o = b64_pair(o, v & 0xFFF);
    }
    return o;
}

/* The last 1 or 2 octets, padded with '='. */
static char *b64_tail(char *o, const unsigned char *s, size_t n)
{
    unsigned v = (unsigned)s[0] << 16 | (n > 1 ? (unsigned)s[1] << 8 : 0);
    *o++ = b64chars[v >> 18];
    *o++ = b64chars[(v >> 12) & 63];
    *o++ = n > 1 ? b64chars[(v >> 6) & 63] : '=';
    *o++ = '=';
    return o;
}

char *mime_b64_lines(char *out, const unsigned char *in, size_t nlines)
{
    for (size_t l = 0; l < nlines; l++) {
        out = b64_groups(out, in + l * MIME_B64_LINE_IN, MIME_B64_LINE_IN);
        *out++ = '\r';
        *out++ = '\n';
    }
    return out;
}

void mime_encode_base64(struct buf *out, const void *data, size_t len, int line_len)
{
    const unsigned char *s = data;
    if (len == 0)
        return;
    /* Octets per line: line_len characters, rounded down to whole groups. */
    size_t per = line_len > 0 ? ((size_t)line_len / 4 > 0 ? (size_t)line_len / 4 : 1) * 3 : len;
    size_t lines = (len + per - 1) / per;
    buf_reserve(out, b_len(len) + (line_len > 0 ? lines * 2 : 0));
    char *o = out->data + out->len;
    for (size_t off = 0; off < len; off += per) {
        size_t n = len - off < per ? len - off : per;
        o = b64_groups(o, s + off, n / 3 * 3);
        if (n % 3)
            o = b64_tail(o, s + off + n / 3 * 3, n % 3);
        if (line_len > 0) {
            *o++ = '\r';
            *o++ = '\n';
        }
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
}

void mime_rfc2231_param(struct buf *out, const char *param, const char *utf8)
{
    struct mime_hw h;
    mime_hw_attach(&h, out);
    mime_hw_param(&h, param, utf8);
}

/* ---- quoted-printable ---------------------------------------------------- */

#define QP_MAX 75 /* octets before the soft break's '=' (RFC 2045: lines <= 76) */

/* Room mime_qp_feed reserves per input octet, and for what mime_qp_finish
 * writes. An octet's own output is at most 3 ("=XX"); a held-back space or
 * tab is written with the next octet (at most 3, as "=20" before a line
 * break that replaces an input CR or LF of its own); a soft break (3) comes
 * at most once per 24 input octets, since each adds at most 3 to a line of
 * 75. So 3.125 per octet and 6 more bound the output; 4 and 16 are ample.
 * The encoder writes through a pointer into that room: a buf_append per
 * octet cost about 10% of the daemon's CPU on small messages. */
#define QP_ROOM_PER_OCTET 4
#define QP_ROOM_EXTRA 16

void mime_qp_init(struct mime_qp *q)
{
    q->col = 0;
    q->ws = 0;
    q->skip_lf = false;
}

static char *qp_soft_break(struct mime_qp *q, char *o)
{
    memcpy(o, "=\r\n", 3);
    q->col = 0;
    return o + 3;
}

static char *qp_encoded(struct mime_qp *q, char *o, unsigned char c)
{
    if (q->col + 3 > QP_MAX)
        o = qp_soft_break(q, o);
    o[0] = '=';
    o[1] = hexdigits[c >> 4];
    o[2] = hexdigits[c & 15];
    q->col += 3;
    return o + 3;
}

static char *qp_literal(struct mime_qp *q, char *o, unsigned char c)
{
    if (q->col + 1 > QP_MAX)
        o = qp_soft_break(q, o);
    if (c == '.' && q->col == 0) /* a line of "." must never reach SMTP */
        return qp_encoded(q, o, c);
    *o++ = (char)c;
    q->col++;
    return o;
}

static char *qp_hard_break(struct mime_qp *q, char *o)
{
    if (q->ws) /* trailing whitespace would be stripped by decoders */
        o = qp_encoded(q, o, (unsigned char)q->ws);
    q->ws = 0;
    *o++ = '\r';
    *o++ = '\n';
    q->col = 0;
    return o;
}

void mime_qp_feed(struct mime_qp *state, struct buf *out, const char *in, size_t len)
{
    if (len == 0)
        return;
    buf_reserve(out, len * QP_ROOM_PER_OCTET + QP_ROOM_EXTRA);
    char *o = out->data + out->len;
    /* The state lives in a local copy while octets are written through o: a
     * char pointer may alias *state, which would force every column update
     * back to memory. */
    struct mime_qp local = *state, *q = &local;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        /* The common case first: a printable octet above '.' (a '.' may start
         * a line, the octets below it take the general path) on a line with
         * room, with no white space held back and no CR just seen. */
        if (c > 46 && c <= 126 && c != '=' && q->col < QP_MAX && !q->ws && !q->skip_lf) {
            *o++ = (char)c;
            q->col++;
            continue;
        }
        if (q->skip_lf) {
            q->skip_lf = false;
            if (c == '\n')
                continue;
        }
        if (c == '\r' || c == '\n') {
            o = qp_hard_break(q, o);
            q->skip_lf = c == '\r';
            continue;
        }
        if (q->ws)
            o = qp_literal(q, o, (unsigned char)q->ws);
        q->ws = 0;
        if (c == ' ' || c == '\t')
            q->ws = (char)c;
        else if (c >= 33 && c <= 126 && c != '=')
            o = qp_literal(q, o, c);
        else
            o = qp_encoded(q, o, c);
    }
    *state = local;
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
}

void mime_qp_finish(struct mime_qp *q, struct buf *out)
{
    buf_reserve(out, QP_ROOM_EXTRA);
    char *o = out->data + out->len;
    if (q->ws)
        o = qp_literal(q, o, (unsigned char)q->ws); /* followed by "=", so not trailing */
    q->ws = 0;
    if (q->col > 0)
        o = qp_soft_break(q, o);
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
}
