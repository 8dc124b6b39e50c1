/*
 * mime_header — the top header block of a message: Date, From, To, Cc,
 * Reply-To, Subject, Message-ID, MIME-Version and the producer's headers.
 *
 * Owns: which fields appear and in what order, the stable Message-ID, and
 * the rule that Bcc never appears.
 * Never: validates the message (the caller ran message_validate) or decides
 * the body structure (mime.c); the encoders it uses live in mime_encode.c.
 */
#include "address.h"
#include "mime_impl.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void mime_header_date(struct buf *out, int64_t t)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL) {
        tt = 0;
        gmtime_r(&tt, &tm);
    }
    /* Built by hand: strftime's names follow the locale. */
    buf_printf(out, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
               months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The part after the last '@' when it may appear in a Message-ID
 * (RFC 5322 id-right: dot-atom-text or a no-fold literal), else NULL. */
static const char *msgid_domain(const char *from)
{
    const char *at = from ? strrchr(from, '@') : NULL;
    if (at == NULL || at[1] == '\0')
        return NULL;
    for (const unsigned char *p = (const unsigned char *)at + 1; *p; p++) {
        if (*p <= 32 || *p >= 127 || strchr("()<>,;\\\"@", *p))
            return NULL;
    }
    return at + 1;
}

char *mime_message_id(const struct message *m, const char *from_address)
{
    if (m->message_id && m->message_id[0])
        return xstrdup(m->message_id);
    /* Stable across retries and renders: only fields that never change. An
     * IDN domain (non-ASCII) cannot be an id-right, hence the fallback. */
    const char *domain = msgid_domain(from_address);
    return xasprintf("<ms.%lld.%lld@%s>", (long long)m->id, (long long)m->created,
                     domain ? domain : "mailspool.invalid");
}

/* "Name <addr>" (name as atoms, quoted or RFC 2047) or "addr". */
static void header_address(struct mime_hw *h, const char *name, const char *addr)
{
    if (name && name[0]) {
        mime_hw_phrase(h, name);
        char *t = xasprintf("<%s>", addr);
        mime_hw_token(h, t, strlen(t));
        free(t);
    } else {
        mime_hw_token(h, addr, strlen(addr));
    }
}

void mime_format_address(struct buf *out, const char *name, const char *addr)
{
    /* The writer puts a space before each token; drop the first one. */
    struct buf tmp = BUF_INIT;
    struct mime_hw h;
    mime_hw_attach(&h, out);
    h.out = &tmp;
    if (h.col > 0)
        h.col--;
    header_address(&h, name, addr);
    if (tmp.len > 0) {
        size_t skip = tmp.data[0] == ' ' ? 1 : 0;
        buf_append(out, tmp.data + skip, tmp.len - skip);
    }
    buf_free(&tmp);
}

/* To or Cc: every recipient of kind, comma-separated; false when none. */
static bool header_rcpts(struct buf *out, const struct message *m, enum rcpt_kind kind,
                         const char *field)
{
    struct mime_hw h;
    size_t n = 0;
    for (size_t i = 0; i < m->nrcpts; i++) {
        const struct msg_rcpt *r = &m->rcpts[i];
        if (r->kind != kind)
            continue;
        if (n++ == 0)
            mime_hw_begin(&h, out, field);
        else
            mime_hw_raw(&h, ",", 1);
        header_address(&h, r->name, r->addr);
    }
    if (n > 0)
        mime_hw_end(&h);
    return n > 0;
}

/* Reply-To: the message's own, else the profile's; parsed again here because
 * both are stored as the producer or the administrator wrote them. */
static int header_reply_to(struct buf *out, const struct message *m, const struct mime_sender *s,
                           struct err *e)
{
    const char *v = m->reply_to ? m->reply_to : s->reply_to;
    if (v == NULL || v[0] == '\0')
        return 0;
    struct address a;
    if (address_parse(v, m->reply_to ? "reply-to" : "profile ReplyToAddress", &a, e) != 0) {
        if (!m->reply_to && e)
            e->code = EX_CONFIG;
        return -1;
    }
    struct mime_hw h;
    mime_hw_begin(&h, out, "Reply-To");
    header_address(&h, a.name, a.addr);
    mime_hw_end(&h);
    address_clear(&a);
    return 0;
}

/* Every line within the hard limit: the last guard before the wire. */
static int header_lines_check(const struct buf *b, size_t from, struct err *e)
{
    size_t start = from;
    for (size_t i = from; i < b->len; i++) {
        if (b->data[i] != '\n')
            continue;
        if (i == 0 || b->data[i - 1] != '\r' || i - 1 - start > MIME_LINE_HARD)
            return err_set(e, EX_DATAERR,
                           "message header: a line is longer than 998 octets or has a bare LF");
        start = i + 1;
    }
    return 0;
}

int mime_header_block(struct buf *out, const struct message *m, const struct mime_sender *s,
                      const char *msgid, struct err *e)
{
    size_t start = out->len;
    struct mime_hw h;
    mime_hw_begin(&h, out, "Date");
    buf_putc(out, ' ');
    mime_header_date(out, m->created);
    mime_hw_end(&h);

    mime_hw_begin(&h, out, "From");
    header_address(&h, s->from_name, s->from_address);
    mime_hw_end(&h);

    bool to = header_rcpts(out, m, RCPT_TO, "To");
    bool cc = header_rcpts(out, m, RCPT_CC, "Cc");
    if (!to && !cc) /* Bcc only: RFC 5322 3.6.3's empty group */
        buf_puts(out, "To: undisclosed-recipients:;\r\n");
    if (header_reply_to(out, m, s, e) != 0)
        return -1;

    mime_hw_begin(&h, out, "Subject");
    mime_hw_text(&h, m->subject ? m->subject : "", true);
    mime_hw_end(&h);

    mime_hw_begin(&h, out, "Message-ID");
    mime_hw_token(&h, msgid, strlen(msgid));
    mime_hw_end(&h);
    buf_puts(out, "MIME-Version: 1.0\r\n");

    for (size_t i = 0; i < m->nhdrs; i++) {
        mime_hw_begin(&h, out, m->hdrs[i].name);
        mime_hw_text(&h, m->hdrs[i].value, false);
        mime_hw_end(&h);
    }
    return header_lines_check(out, start, e);
}
