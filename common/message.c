/*
 * message — struct message, its adders, and the one validation that every
 * producer path and the daemon share.
 *
 * Owns: every allocation hanging off a struct message (message_free releases
 * all of it) and the limits below, which message.h documents for producers.
 * Never: touches the spool, the network or the configuration; never repairs
 * a value: a message that reaches the composer is either valid or refused
 * here with the field at fault named.
 */
#include "message.h"
#include "address.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define AREA_MAX 64
#define REF_MAX 255
#define SUBJECT_MAX (64 * 1024)
#define NAME_MAX_OCTETS 998
#define RCPTS_MAX 10000
#define HEADERS_MAX 100
#define HDR_NAME_MAX 64
#define HDR_VALUE_MAX 8192
#define HDR_WORD_MAX 900 /* an unfoldable ASCII run; keeps lines under 998 */
#define ATTS_MAX 1000
#define ATT_NAME_MAX 255
#define CTYPE_MAX 255
#define MSGID_MAX 250

struct message *message_new(void)
{
    return xcalloc(1, sizeof(struct message));
}

void message_free(struct message *m)
{
    if (m == NULL)
        return;
    free(m->area);
    free(m->ref);
    free(m->subject);
    free(m->text);
    free(m->html);
    free(m->reply_to);
    free(m->message_id);
    free(m->draft_id);
    free(m->last_error);
    for (size_t i = 0; i < m->nrcpts; i++) {
        free(m->rcpts[i].name);
        free(m->rcpts[i].addr);
    }
    free(m->rcpts);
    for (size_t i = 0; i < m->natts; i++) {
        free(m->atts[i].name);
        free(m->atts[i].content_type);
        free(m->atts[i].path);
        free(m->atts[i].data);
        if (m->atts[i].fd >= 0)
            close(m->atts[i].fd);
    }
    free(m->atts);
    for (size_t i = 0; i < m->nhdrs; i++) {
        free(m->hdrs[i].name);
        free(m->hdrs[i].value);
    }
    free(m->hdrs);
    free(m);
}

const char *rcpt_kind_name(enum rcpt_kind kind)
{
    switch (kind) {
    case RCPT_TO:
        return "to";
    case RCPT_CC:
        return "cc";
    case RCPT_BCC:
        return "bcc";
    }
    return "unknown";
}

const char *rcpt_state_name(enum rcpt_state st)
{
    switch (st) {
    case RCPT_PENDING:
        return NULL;
    case RCPT_SENT:
        return "sent";
    case RCPT_FAILED:
        return "failed";
    }
    return NULL;
}

/* Mailbox order: domain ignoring ASCII case, then local part as written. */
static int message_mailbox_cmp(const char *a, const char *b)
{
    const char *da = strrchr(a, '@'), *db = strrchr(b, '@');
    int c = strcasecmp(da ? da : "", db ? db : "");
    if (c != 0)
        return c;
    size_t la = da ? (size_t)(da - a) : strlen(a), lb = db ? (size_t)(db - b) : strlen(b);
    c = memcmp(a, b, la < lb ? la : lb);
    return c != 0 ? c : (la > lb) - (la < lb);
}

struct message_same_key {
    const char *addr;
    size_t idx;
};

static int message_same_cmp(const void *x, const void *y)
{
    const struct message_same_key *a = x, *b = y;
    int c = message_mailbox_cmp(a->addr, b->addr);
    return c != 0 ? c : (a->idx > b->idx) - (a->idx < b->idx);
}

void message_mark_same(struct message *m)
{
    struct message_same_key *k = xcalloc(m->nrcpts + 1, sizeof *k);
    size_t n = 0;
    for (size_t i = 0; i < m->nrcpts; i++) {
        m->rcpts[i].same_as = SIZE_MAX;
        if (m->rcpts[i].state == RCPT_PENDING && m->rcpts[i].addr)
            k[n++] = (struct message_same_key){m->rcpts[i].addr, i};
    }
    qsort(k, n, sizeof *k, message_same_cmp);
    /* Within a run of one mailbox the lowest index comes first. */
    for (size_t i = 1; i < n; i++)
        if (message_mailbox_cmp(k[i - 1].addr, k[i].addr) == 0) {
            size_t first = m->rcpts[k[i - 1].idx].same_as;
            m->rcpts[k[i].idx].same_as = first == SIZE_MAX ? k[i - 1].idx : first;
        }
    free(k);
}

size_t message_count_rcpts(const struct message *m, enum rcpt_state st)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nrcpts; i++)
        n += m->rcpts[i].state == st;
    return n;
}

int rcpt_kind_parse(const char *s)
{
    if (s == NULL)
        return -1;
    if (strcasecmp(s, "to") == 0)
        return RCPT_TO;
    if (strcasecmp(s, "cc") == 0)
        return RCPT_CC;
    if (strcasecmp(s, "bcc") == 0)
        return RCPT_BCC;
    return -1;
}

/* Why s cannot go into a header, or NULL. TAB is whitespace in unstructured
 * values (subject, header values) and refused elsewhere. */
static const char *text_problem(const char *s, size_t max, bool allow_tab)
{
    if (s == NULL)
        return "is missing";
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n')
            return "contains a line break (CR or LF); it must be one line";
        if ((c < 0x20 && !(c == '\t' && allow_tab)) || c == 0x7F)
            return "contains a control character";
    }
    if (!utf8_valid(s, len))
        return "is not valid UTF-8";
    if (len > max)
        return "is too long";
    return NULL;
}

/* RFC 5322 field name: printable ASCII except ':' (ftext). */
static bool header_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > HDR_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)n[i] < 33 || (unsigned char)n[i] > 126 || n[i] == ':')
            return false;
    return true;
}

/* Headers the composer writes itself; a producer must not set or repeat them. */
static bool header_name_reserved(const char *n)
{
    static const char *const reserved[] = {
        "From", "To",         "Cc",           "Bcc",    "Reply-To",    "Subject",
        "Date", "Message-ID", "MIME-Version", "Sender", "Return-Path", "Received",
    };
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcasecmp(n, reserved[i]) == 0)
            return true;
    return strncasecmp(n, "Content-", 8) == 0;
}

/* Why a header value is refused, or NULL. ASCII values are folded only at
 * whitespace, so no run of other characters may be longer than a line. */
static const char *header_value_problem(const char *v)
{
    const char *why = text_problem(v, HDR_VALUE_MAX, true);
    if (why)
        return why;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p >= 0x80)
            return NULL; /* written as RFC 2047 encoded-words, which fold anywhere */
    size_t run = 0;
    for (const char *p = v; *p; p++) {
        run = (*p == ' ' || *p == '\t') ? 0 : run + 1;
        if (run > HDR_WORD_MAX)
            return "has a word longer than 900 octets that cannot be folded";
    }
    return NULL;
}

static int header_check(const char *name, const char *value, struct err *e)
{
    if (name == NULL || !header_name_ok(name))
        return err_set(e, EX_DATAERR,
                       "header name \"%s\": must be 1 to 64 printable ASCII characters "
                       "without ':' or spaces",
                       name && header_safe(name) && strlen(name) < 200 ? name : "?");
    if (header_name_reserved(name))
        return err_set(e, EX_DATAERR,
                       "header \"%s\": mailspool writes this header itself; use the message "
                       "field (to, cc, subject, reply-to, ...) instead",
                       name);
    const char *why = header_value_problem(value);
    if (why)
        return err_set(e, EX_DATAERR, "header \"%s\": the value %s", name, why);
    return 0;
}

int message_add_rcpt(struct message *m, enum rcpt_kind kind, const char *addr_spec, struct err *e)
{
    if (kind != RCPT_TO && kind != RCPT_CC && kind != RCPT_BCC)
        return err_set(e, EX_DATAERR, "recipient kind %d: must be to, cc or bcc", (int)kind);
    if (m->nrcpts >= RCPTS_MAX)
        return err_set(e, EX_DATAERR, "%s: more than %d recipients", rcpt_kind_name(kind),
                       RCPTS_MAX);
    struct address a;
    if (address_parse(addr_spec, rcpt_kind_name(kind), &a, e) != 0)
        return -1;
    m->rcpts = xreallocarray(m->rcpts, m->nrcpts + 1, sizeof *m->rcpts);
    m->rcpts[m->nrcpts].kind = kind;
    m->rcpts[m->nrcpts].name = a.name;
    m->rcpts[m->nrcpts].addr = a.addr;
    m->rcpts[m->nrcpts].row = 0;
    m->rcpts[m->nrcpts].state = RCPT_PENDING;
    m->rcpts[m->nrcpts].same_as = SIZE_MAX;
    m->nrcpts++;
    return 0;
}

int message_add_header(struct message *m, const char *name, const char *value, struct err *e)
{
    if (m->nhdrs >= HEADERS_MAX)
        return err_set(e, EX_DATAERR, "headers: more than %d extra headers", HEADERS_MAX);
    if (header_check(name, value, e) != 0)
        return -1;
    m->hdrs = xreallocarray(m->hdrs, m->nhdrs + 1, sizeof *m->hdrs);
    m->hdrs[m->nhdrs].name = xstrdup(name);
    m->hdrs[m->nhdrs].value = xstrdup(value);
    m->nhdrs++;
    return 0;
}

struct msg_attachment *message_add_attachment(struct message *m)
{
    m->atts = xreallocarray(m->atts, m->natts + 1, sizeof *m->atts);
    struct msg_attachment *a = &m->atts[m->natts++];
    memset(a, 0, sizeof *a);
    a->fd = -1;
    return a;
}

/* RFC 2045 token characters (no tspecials, no spaces or controls). */
static bool mime_token_char(unsigned char c)
{
    return c > 32 && c < 127 && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* "type/subtype", both RFC 2045 tokens; parameters are not accepted. */
static bool content_type_ok(const char *ct)
{
    size_t len = strlen(ct);
    if (len == 0 || len > CTYPE_MAX)
        return false;
    const char *slash = strchr(ct, '/');
    if (slash == NULL || slash == ct || slash[1] == '\0')
        return false;
    for (const char *p = ct; *p; p++)
        if (p != slash && !mime_token_char((unsigned char)*p))
            return false;
    return true;
}

static int attachment_check(const struct msg_attachment *a, size_t i, struct err *e)
{
    const char *why = text_problem(a->name, ATT_NAME_MAX, false);
    if (why == NULL && a->name[0] == '\0')
        why = "is empty";
    if (why == NULL && (strchr(a->name, '/') || strchr(a->name, '\\')))
        why = "contains '/' or '\\'; give a file name, not a path";
    if (why == NULL && (strcmp(a->name, ".") == 0 || strcmp(a->name, "..") == 0))
        why = "is \".\" or \"..\"";
    if (why)
        return err_set(e, EX_DATAERR, "attachment %zu: the name %s", i + 1, why);
    if (a->content_type && !content_type_ok(a->content_type))
        return err_set(e, EX_DATAERR,
                       "attachment %zu \"%s\": content type must look like type/subtype "
                       "(e.g. application/pdf), without parameters",
                       i + 1, a->name);
    if (a->size < 0)
        return err_set(e, EX_DATAERR, "attachment %zu \"%s\": negative size", i + 1, a->name);
    if (a->path && a->data)
        return err_set(e, EX_DATAERR, "attachment %zu \"%s\": has both a path and data", i + 1,
                       a->name);
    return 0;
}

static int rcpt_check(const struct msg_rcpt *r, size_t i, struct err *e)
{
    const char *kind = rcpt_kind_name(r->kind);
    if (r->kind != RCPT_TO && r->kind != RCPT_CC && r->kind != RCPT_BCC)
        return err_set(e, EX_DATAERR, "recipient %zu: kind must be to, cc or bcc", i + 1);
    if (r->addr == NULL || !address_valid_addr(r->addr)) {
        struct address a;
        if (address_parse(r->addr ? r->addr : "", kind, &a, e) == 0) {
            address_clear(&a); /* parses as "Name <addr>", but a bare address is stored */
            err_set(e, EX_DATAERR, "%s: \"%s\" is not a bare address (user@domain)", kind, r->addr);
        }
        return -1;
    }
    const char *why = r->name ? text_problem(r->name, NAME_MAX_OCTETS, false) : NULL;
    if (why)
        return err_set(e, EX_DATAERR, "%s <%s>: the display name %s", kind, r->addr, why);
    return 0;
}

static bool area_ok(const char *a)
{
    size_t len = strlen(a);
    if (len == 0 || len > AREA_MAX)
        return false;
    for (const char *p = a; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    return true;
}

/* "<left@right>", printable ASCII without spaces, angle brackets only outside. */
static bool message_id_ok(const char *id)
{
    size_t len = strlen(id);
    if (len < 5 || len > MSGID_MAX || id[0] != '<' || id[len - 1] != '>')
        return false;
    size_t ats = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c <= 32 || c >= 127 || c == '<' || c == '>' || c == '"' || c == '\\')
            return false;
        ats += c == '@';
    }
    return ats == 1 && id[1] != '@' && id[len - 2] != '@';
}

/* Area, ref, subject, reply-to, message id, bodies. */
static int fields_check(const struct message *m, struct err *e)
{
    if (m->area == NULL || !area_ok(m->area))
        return err_set(e, EX_DATAERR,
                       "area: missing or invalid; use 1 to 64 letters, digits, '.', '_' or '-'");
    const char *why;
    if (m->ref && (why = text_problem(m->ref, REF_MAX, false)) != NULL)
        return err_set(e, EX_DATAERR, "ref: %s", why);
    if ((why = text_problem(m->subject, SUBJECT_MAX, true)) != NULL)
        return err_set(e, EX_DATAERR, "subject: %s%s", why,
                       m->subject && strlen(m->subject) > SUBJECT_MAX ? " (limit 64 KiB)" : "");
    if (m->reply_to) {
        struct address a;
        if (address_parse(m->reply_to, "reply-to", &a, e) != 0)
            return -1;
        address_clear(&a);
    }
    if (m->message_id && !message_id_ok(m->message_id))
        return err_set(e, EX_DATAERR,
                       "message-id: must look like <left@right> in printable ASCII "
                       "without spaces, at most %d octets",
                       MSGID_MAX);
    if (m->text == NULL && m->html == NULL)
        return err_set(e, EX_DATAERR, "body: give a text or an HTML body (or both)");
    if (m->text && !utf8_valid(m->text, strlen(m->text)))
        return err_set(e, EX_DATAERR, "text: the body is not valid UTF-8");
    if (m->html && !utf8_valid(m->html, strlen(m->html)))
        return err_set(e, EX_DATAERR, "html: the body is not valid UTF-8");
    return 0;
}

int message_validate(const struct message *m, struct err *e)
{
    if (m == NULL)
        return err_set(e, EX_DATAERR, "message: missing");
    if (fields_check(m, e) != 0)
        return -1;
    if (m->nrcpts == 0)
        return err_set(e, EX_DATAERR, "recipients: give at least one of to, cc or bcc");
    if (m->nrcpts > RCPTS_MAX)
        return err_set(e, EX_DATAERR, "recipients: more than %d", RCPTS_MAX);
    for (size_t i = 0; i < m->nrcpts; i++)
        if (rcpt_check(&m->rcpts[i], i, e) != 0)
            return -1;
    if (m->nhdrs > HEADERS_MAX)
        return err_set(e, EX_DATAERR, "headers: more than %d extra headers", HEADERS_MAX);
    for (size_t i = 0; i < m->nhdrs; i++)
        if (header_check(m->hdrs[i].name, m->hdrs[i].value, e) != 0)
            return -1;
    if (m->natts > ATTS_MAX)
        return err_set(e, EX_DATAERR, "attachments: more than %d", ATTS_MAX);
    for (size_t i = 0; i < m->natts; i++)
        if (attachment_check(&m->atts[i], i, e) != 0)
            return -1;
    return 0;
}
