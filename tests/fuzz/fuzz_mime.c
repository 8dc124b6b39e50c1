/*
 * fuzz_mime — libFuzzer target for the header encoder and MIME composer
 * (common/mime*.c, with message_validate in front of it).
 *
 * Owns: the mapping from fuzz bytes to a struct message and a sender. The
 * message is built both through the validating adders and raw, the way a
 * row written with plain SQL reaches the daemon, so the composer's own
 * checks are exercised too. The bytes that come out are judged by
 * fuzz_wire (CRLF only, lines <= 998, no lone ".", no injected field).
 * Never: writes files or keeps state between inputs.
 *
 * Input: byte 0 flags (bit 0 text, 1 html, 2 reply-to, 3 sender display
 * name, 4 Message-ID, 5 ref, bits 6-7 read chunk size), byte 1 the number of
 * attachments (bits 0-1) and bit 2 the profile's ReplyToAddress, then NUL-separated fields:
 * FromAddress, subject, the optional fields in flag order, per attachment name, content type,
 * bytes; then items whose first byte says what they are: t/c/b a recipient through
 * message_add_rcpt, T/C/B a raw recipient "name\x01addr" or "addr", h a
 * header "Name:value" through message_add_header, H the same raw.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_wire.h"
#include "message.h"
#include "xmalloc.h"

struct fuzz_mime_in {
    const char *p, *end;
};

/* The next NUL-terminated field, copied; NULL when the input is used up. */
static char *fuzz_mime_field(struct fuzz_mime_in *in)
{
    if (in->p >= in->end)
        return NULL;
    const char *nul = memchr(in->p, '\0', (size_t)(in->end - in->p));
    size_t len = nul ? (size_t)(nul - in->p) : (size_t)(in->end - in->p);
    char *s = xstrndup(in->p, len);
    in->p += len + 1;
    return s;
}

static void fuzz_mime_raw_rcpt(struct message *m, enum rcpt_kind kind, const char *s)
{
    const char *sep = strchr(s, '\x01');
    m->rcpts = xreallocarray(m->rcpts, m->nrcpts + 1, sizeof *m->rcpts);
    struct msg_rcpt *r = &m->rcpts[m->nrcpts++];
    r->kind = kind;
    r->name = sep ? xstrndup(s, (size_t)(sep - s)) : NULL;
    r->addr = xstrdup(sep ? sep + 1 : s);
}

static void fuzz_mime_header(struct message *m, const char *s, bool raw)
{
    const char *colon = strchr(s, ':');
    char *name = xstrndup(s, colon ? (size_t)(colon - s) : strlen(s));
    const char *value = colon ? colon + 1 : "";
    if (raw) {
        m->hdrs = xreallocarray(m->hdrs, m->nhdrs + 1, sizeof *m->hdrs);
        m->hdrs[m->nhdrs++] = (struct msg_header){name, xstrdup(value)};
        return;
    }
    struct err e = {0};
    (void)message_add_header(m, name, value, &e);
    free(name);
}

static void fuzz_mime_item(struct message *m, const char *s)
{
    struct err e = {0};
    switch (s[0]) {
    case 't':
    case 'c':
    case 'b':
        (void)message_add_rcpt(m,
                               s[0] == 't'   ? RCPT_TO
                               : s[0] == 'c' ? RCPT_CC
                                             : RCPT_BCC,
                               s + 1, &e);
        break;
    case 'T':
    case 'C':
    case 'B':
        fuzz_mime_raw_rcpt(m, s[0] == 'T' ? RCPT_TO : s[0] == 'C' ? RCPT_CC : RCPT_BCC, s + 1);
        break;
    case 'h':
    case 'H':
        fuzz_mime_header(m, s + 1, s[0] == 'H');
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const size_t chunks[] = {65536, 1, 13, 997};
    unsigned flags = data[0];
    size_t natts = data[1] % 4;
    struct fuzz_mime_in in = {(const char *)data + 2, (const char *)data + size};

    struct message *m = message_new();
    m->id = 42;
    m->created = 1796400001;
    m->area = xstrdup("fuzz");
    char *from = fuzz_mime_field(&in);
    char *from_name = NULL;
    m->subject = fuzz_mime_field(&in);
    if (flags & 1)
        m->text = fuzz_mime_field(&in);
    if (flags & 2)
        m->html = fuzz_mime_field(&in);
    if (flags & 4)
        m->reply_to = fuzz_mime_field(&in);
    if (flags & 8)
        from_name = fuzz_mime_field(&in);
    if (flags & 16)
        m->message_id = fuzz_mime_field(&in);
    if (flags & 32)
        m->ref = fuzz_mime_field(&in);
    char *profile_reply_to = data[1] & 4 ? fuzz_mime_field(&in) : NULL;
    for (size_t i = 0; i < natts; i++) {
        struct msg_attachment *a = message_add_attachment(m);
        a->id = (int64_t)i + 1;
        a->name = fuzz_mime_field(&in);
        a->content_type = fuzz_mime_field(&in);
        if (a->content_type && a->content_type[0] == '\0') {
            free(a->content_type);
            a->content_type = NULL;
        }
        char *bytes = fuzz_mime_field(&in);
        a->data_len = bytes ? strlen(bytes) : 0;
        a->data = (unsigned char *)bytes;
        a->size = (int64_t)a->data_len;
    }
    char *item;
    while ((item = fuzz_mime_field(&in)) != NULL) {
        fuzz_mime_item(m, item);
        free(item);
    }

    struct mime_sender sender = {from ? from : "", from_name, profile_reply_to};
    (void)fuzz_wire_compose(m, &sender, chunks[flags >> 6]);
    free(from);
    free(from_name);
    free(profile_reply_to);
    message_free(m);
    return 0;
}
