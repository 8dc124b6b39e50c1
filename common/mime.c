/*
 * mime — a message as an RFC 5322 / MIME byte stream, produced on demand.
 *
 * Owns: the body structure (a single text part; multipart/alternative for
 * text plus HTML; multipart/mixed around it with one base64 part per
 * attachment), the boundaries, and the streaming that keeps memory bounded:
 * bodies are encoded 16 KiB at a time, attachments read through the caller's
 * callback up to 1 MiB at a time and base64-encoded on the fly, straight
 * into the caller's buffer.
 * Never: reads the spool or a file itself, holds more than B64_CHUNK octets
 * of an attachment, or emits a bare CR or LF or a line over 998 octets.
 *
 * The stream is a list of steps built on the first read: fixed text (the
 * header block, part headers, boundary lines, all kept in one buffer), a
 * quoted-printable body, or a base64 attachment. Reading walks the steps;
 * rewinding starts the walk again. The output is a pure function of the
 * message, the sender and the attachment bytes.
 */
#include "address.h"
#include "mime_impl.h"
#include "sha256.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QP_CHUNK (16 * 1024)
/* Octets read per fill, about 1 MiB. Each read opens the attachment's blob
 * anew (no read transaction spans a network wait), and SQLite then walks the
 * blob's overflow-page chain from its start, one page read per 4 KiB of
 * offset: the walks grow with the square of the attachment size over the
 * fill size. With 57 KiB fills a 5 MiB attachment cost 90 walks of about 640
 * pages each, most of the CPU of sending it (tests/bench profile of W3);
 * with 1 MiB fills it is 5 walks. The price is this buffer per transfer in
 * flight (only as large as the attachment needs; mailspoold's fixed mmap
 * threshold, daemon/main.c, returns it when the stream ends); the base64
 * goes straight into the caller's buffer, so there is no second buffer. */
#define B64_CHUNK (MIME_B64_LINE_IN * 18396)

enum step_kind { STEP_FIXED, STEP_QP, STEP_B64 };

struct step {
    enum step_kind kind;
    size_t off, len;  /* STEP_FIXED: range in mm->fixed */
    const char *body; /* STEP_QP */
    size_t body_len;
    size_t att; /* STEP_B64: index into m->atts */
};

struct mime {
    const struct message *m;
    const struct mime_sender *sender;
    mime_att_read_fn att_read;
    void *ctx;

    bool built;
    bool broken; /* the message cannot be composed; error holds why */
    struct err error;
    struct buf fixed;
    struct step *steps;
    size_t nsteps;

    /* position */
    size_t cur;     /* current step */
    size_t pos;     /* STEP_FIXED / STEP_QP: offset; STEP_B64: octets read */
    struct buf out; /* encoded bytes not yet handed out */
    size_t out_pos;
    bool out_b64; /* out holds base64 from the encoder */
    struct mime_qp qp;
    unsigned char *in; /* STEP_B64 input, in_cap octets (at most B64_CHUNK) */
    size_t in_cap;
    size_t in_len; /* octets in it */
    size_t in_pos; /* octets of it encoded */
    bool eof;
};

struct mime *mime_new(const struct message *m, const struct mime_sender *sender,
                      mime_att_read_fn att_read, void *ctx)
{
    struct mime *mm = xcalloc(1, sizeof *mm);
    mm->m = m;
    mm->sender = sender;
    mm->att_read = att_read;
    mm->ctx = ctx;
    buf_init(&mm->fixed);
    buf_init(&mm->out);
    mime_qp_init(&mm->qp);
    return mm;
}

void mime_free(struct mime *mm)
{
    if (mm == NULL)
        return;
    buf_free(&mm->fixed);
    buf_free(&mm->out);
    free(mm->steps);
    free(mm->in);
    free(mm);
}

void mime_rewind(struct mime *mm)
{
    mm->cur = 0;
    mm->pos = 0;
    buf_reset(&mm->out);
    mm->out_pos = 0;
    mime_qp_init(&mm->qp);
    mm->in_len = 0;
    mm->in_pos = 0;
    mm->eof = false;
}

/* ---- building the steps ----------------------------------------------------- */

static struct step *step_add(struct mime *mm, enum step_kind kind)
{
    mm->steps = xreallocarray(mm->steps, mm->nsteps + 1, sizeof *mm->steps);
    struct step *s = &mm->steps[mm->nsteps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    return s;
}

/* Appends fixed text, extending the last step when it is fixed text too. */
static void fixed_add(struct mime *mm, const char *s)
{
    size_t off = mm->fixed.len;
    buf_puts(&mm->fixed, s);
    struct step *last = mm->nsteps ? &mm->steps[mm->nsteps - 1] : NULL;
    if (last && last->kind == STEP_FIXED && last->off + last->len == off) {
        last->len += strlen(s);
        return;
    }
    struct step *st = step_add(mm, STEP_FIXED);
    st->off = off;
    st->len = strlen(s);
}

static void text_part_add(struct mime *mm, const char *subtype, const char *body)
{
    char *h = xasprintf("Content-Type: text/%s; charset=utf-8\r\n"
                        "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                        subtype);
    fixed_add(mm, h);
    free(h);
    struct step *st = step_add(mm, STEP_QP);
    st->body = body;
    st->body_len = strlen(body);
}

/* The text, the HTML, or both as multipart/alternative (plain text first:
 * RFC 2046 5.1.4 puts the preferred form last). */
static void bodies_add(struct mime *mm, const char *alt)
{
    const struct message *m = mm->m;
    if (m->text && m->html) {
        char *h = xasprintf("Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n"
                            "--%s\r\n",
                            alt, alt);
        fixed_add(mm, h);
        free(h);
        text_part_add(mm, "plain", m->text);
        h = xasprintf("\r\n--%s\r\n", alt);
        fixed_add(mm, h);
        free(h);
        text_part_add(mm, "html", m->html);
        h = xasprintf("\r\n--%s--\r\n", alt);
        fixed_add(mm, h);
        free(h);
    } else {
        text_part_add(mm, m->text ? "plain" : "html", m->text ? m->text : m->html);
    }
}

static void attachment_add(struct mime *mm, size_t i, const char *mixed)
{
    const struct msg_attachment *a = &mm->m->atts[i];
    const char *name = a->name && a->name[0] ? a->name : "attachment.bin";
    struct buf h = BUF_INIT;
    buf_printf(&h, "\r\n--%s\r\n", mixed);
    struct mime_hw hw;
    mime_hw_begin(&hw, &h, "Content-Type");
    const char *ct =
        a->content_type && a->content_type[0] ? a->content_type : "application/octet-stream";
    mime_hw_token(&hw, ct, strlen(ct));
    mime_hw_param(&hw, "name", name);
    mime_hw_end(&hw);
    mime_hw_begin(&hw, &h, "Content-Disposition");
    mime_hw_token(&hw, "attachment", 10);
    mime_hw_param(&hw, "filename", name);
    mime_hw_end(&hw);
    buf_puts(&h, "Content-Transfer-Encoding: base64\r\n\r\n");
    fixed_add(mm, h.data);
    buf_free(&h);
    step_add(mm, STEP_B64)->att = i;
}

/* Boundaries from the Message-ID: stable, and "=_" cannot occur in
 * quoted-printable or base64 text, so they never collide with content. */
static void boundaries(const char *msgid, char mixed[64], char alt[64])
{
    char hex[65];
    sha256_hex(msgid, strlen(msgid), hex);
    snprintf(mixed, 64, "=_ms_%.32s_mixed", hex);
    snprintf(alt, 64, "=_ms_%.32s_alt", hex);
}

static int sender_check(const struct mime_sender *s, struct err *e)
{
    if (s == NULL || !address_valid_addr(s->from_address))
        return err_set(e, EX_CONFIG, "profile FromAddress \"%s\": not a valid address",
                       s && s->from_address && header_safe(s->from_address) ? s->from_address : "");
    if (s->from_name && !header_safe(s->from_name))
        return err_set(e, EX_CONFIG,
                       "profile FromDisplayName: contains a line break or invalid UTF-8");
    for (const unsigned char *p = (const unsigned char *)s->from_name; p && *p; p++)
        if (*p < 0x20 || *p == 0x7F)
            return err_set(e, EX_CONFIG, "profile FromDisplayName: contains a control character");
    return 0;
}

static int build(struct mime *mm, struct err *e)
{
    const struct message *m = mm->m;
    if (message_validate(m, e) != 0 || sender_check(mm->sender, e) != 0)
        return -1;
    if (m->natts > 0 && mm->att_read == NULL)
        return err_set(e, EX_SOFTWARE, "message %lld: attachments but no way to read them",
                       (long long)m->id);
    char *msgid = mime_message_id(m, mm->sender->from_address);
    int rc = mime_header_block(&mm->fixed, m, mm->sender, msgid, e);
    if (rc == 0) {
        struct step *st = step_add(mm, STEP_FIXED); /* the header block */
        st->len = mm->fixed.len;
        char mixed[64], alt[64];
        boundaries(msgid, mixed, alt);
        if (m->natts > 0) {
            char *h = xasprintf("Content-Type: multipart/mixed;\r\n boundary=\"%s\"\r\n\r\n"
                                "--%s\r\n",
                                mixed, mixed);
            fixed_add(mm, h);
            free(h);
            bodies_add(mm, alt);
            for (size_t i = 0; i < m->natts; i++)
                attachment_add(mm, i, mixed);
            h = xasprintf("\r\n--%s--\r\n", mixed);
            fixed_add(mm, h);
            free(h);
        } else {
            bodies_add(mm, alt);
        }
    }
    free(msgid);
    return rc;
}

/* ---- reading ------------------------------------------------------------- */

static void step_next(struct mime *mm)
{
    mm->cur++;
    mm->pos = 0;
    mime_qp_init(&mm->qp);
    mm->in_len = 0;
    mm->in_pos = 0;
    mm->eof = false;
}

static void qp_fill(struct mime *mm, const struct step *st)
{
    if (mm->pos < st->body_len) {
        size_t n = st->body_len - mm->pos < QP_CHUNK ? st->body_len - mm->pos : QP_CHUNK;
        mime_qp_feed(&mm->qp, &mm->out, st->body + mm->pos, n);
        mm->pos += n;
        return;
    }
    mime_qp_finish(&mm->qp, &mm->out);
    step_next(mm);
}

/* The input buffer for attachment a: B64_CHUNK octets, or whole lines of
 * one octet more than a smaller attachment's size (so that one fill also
 * sees its end). */
static size_t b64_cap(const struct msg_attachment *a)
{
    if (a->size <= 0 || a->size >= B64_CHUNK)
        return B64_CHUNK;
    return ((size_t)a->size / MIME_B64_LINE_IN + 1) * MIME_B64_LINE_IN;
}

/* Called when all of the input is encoded: reads until the input holds
 * in_cap octets (whole lines, as in_cap is a multiple of 57) or the
 * attachment ends. */
static int b64_load(struct mime *mm, const struct step *st, struct err *e)
{
    const struct msg_attachment *a = &mm->m->atts[st->att];
    size_t cap = b64_cap(a);
    if (cap > mm->in_cap) {
        free(mm->in);
        mm->in = xmalloc(cap);
        mm->in_cap = cap;
    }
    mm->in_len = 0;
    mm->in_pos = 0;
    while (mm->in_len < cap && !mm->eof) {
        size_t want = cap - mm->in_len;
        ssize_t n = mm->att_read(mm->ctx, a, (int64_t)mm->pos, mm->in + mm->in_len, want, e);
        if (n < 0)
            return err_prefix(e, "attachment \"%s\"", a->name ? a->name : "");
        if ((size_t)n > want)
            return err_set(e, EX_SOFTWARE, "attachment \"%s\": reader returned too much",
                           a->name ? a->name : "");
        if (n == 0)
            mm->eof = true;
        mm->in_len += (size_t)n;
        mm->pos += (size_t)n;
    }
    if (mm->eof && a->size > 0 && (int64_t)mm->pos != a->size)
        return err_set(e, EX_DATAERR, "attachment \"%s\": %zu octets read, %lld expected",
                       a->name ? a->name : "", mm->pos, (long long)a->size);
    return 0;
}

/* Encodes input: as many whole lines as fit into dst (room octets), written
 * there directly, returning their length; or, when not one line fits or
 * only the last partial line is left, one line into mm->out, returning 0. */
static size_t b64_encode(struct mime *mm, char *dst, size_t room)
{
    size_t lines = (mm->in_len - mm->in_pos) / MIME_B64_LINE_IN;
    if (lines > 0 && room >= MIME_B64_LINE_OUT) {
        if (lines > room / MIME_B64_LINE_OUT)
            lines = room / MIME_B64_LINE_OUT;
        mime_b64_lines(dst, mm->in + mm->in_pos, lines);
        mm->in_pos += lines * MIME_B64_LINE_IN;
        return lines * MIME_B64_LINE_OUT;
    }
    size_t n = lines > 0 ? MIME_B64_LINE_IN : mm->in_len - mm->in_pos;
    mime_encode_base64(&mm->out, mm->in + mm->in_pos, n, 76);
    mm->out_b64 = true;
    mm->in_pos += n;
    return 0;
}

/* Adds [off, off + n) of the caller's buffer to the span of base64 bytes.
 * It always continues the span: a marked read ends where an attachment's
 * base64 ends, and only fixed text can come before the first of it. */
static void span_add(struct mime_span *sp, size_t off, size_t n)
{
    if (sp == NULL || n == 0)
        return;
    if (sp->len == 0)
        sp->off = off;
    if (sp->off + sp->len == off) /* else not marked: checked like any byte */
        sp->len += n;
}

ssize_t mime_read_marked(struct mime *mm, char *buf, size_t len, struct mime_span *b64,
                         struct err *e)
{
    if (b64)
        *b64 = (struct mime_span){0, 0};
    if (!mm->built) {
        mm->built = true;
        if (build(mm, &mm->error) != 0)
            mm->broken = true;
    }
    if (mm->broken) {
        if (e)
            *e = mm->error;
        return -1;
    }
    size_t done = 0;
    while (done < len) {
        if (mm->out_pos < mm->out.len) {
            size_t n = mm->out.len - mm->out_pos;
            n = n < len - done ? n : len - done;
            memcpy(buf + done, mm->out.data + mm->out_pos, n);
            if (mm->out_b64)
                span_add(b64, done, n);
            mm->out_pos += n;
            done += n;
            continue;
        }
        buf_reset(&mm->out);
        mm->out_pos = 0;
        mm->out_b64 = false;
        if (mm->cur >= mm->nsteps)
            break;
        const struct step *st = &mm->steps[mm->cur];
        if (st->kind == STEP_FIXED) {
            size_t n = st->len - mm->pos < len - done ? st->len - mm->pos : len - done;
            memcpy(buf + done, mm->fixed.data + st->off + mm->pos, n);
            mm->pos += n;
            done += n;
            if (mm->pos == st->len)
                step_next(mm);
        } else if (st->kind == STEP_QP) {
            qp_fill(mm, st);
        } else if (mm->in_pos < mm->in_len) { /* STEP_B64 from here on */
            size_t n = b64_encode(mm, buf + done, len - done);
            span_add(b64, done, n);
            done += n;
        } else if (mm->eof) {
            step_next(mm);
            if (b64 && b64->len > 0)
                break; /* one span per read: the next part starts the next read */
        } else if (b64_load(mm, st, e) != 0) {
            return -1;
        }
    }
    return (ssize_t)done;
}

ssize_t mime_read(struct mime *mm, char *buf, size_t len, struct err *e)
{
    return mime_read_marked(mm, buf, len, NULL, e);
}
