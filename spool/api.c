/*
 * api — libmailspool, the producer's C API (spool/mailspool.h).
 *
 * Owns: the opaque handles, early checks in the setters (so an error names
 * the call that brought the bad value) and the error message buffers.
 * Never: exits, prints, or keeps a pointer to the caller's strings or data
 * (everything is copied).
 */
#include "mailspool.h"
#include "address.h"
#include "config.h"
#include "filetype.h"
#include "message.h"
#include "spool.h"
#include "spool_admin.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

struct mailspool {
    struct spool *sp;
    struct err err;
};

struct mailspool_msg {
    struct message *m;
    struct err err;
};

/* A NULL handle or message is a usage error (64), never a crash. */
#define API_NEED(p)                                                                                \
    do {                                                                                           \
        if ((p) == NULL)                                                                           \
            return EX_USAGE;                                                                       \
    } while (0)

/* Returns e's code (or 0) so that API functions can "return api_rc(...)". */
static int api_rc(int rc, const struct err *e)
{
    if (rc == 0)
        return 0;
    return e->code ? e->code : EX_SOFTWARE;
}

int mailspool_open(const char *path, int flags, mailspool **out)
{
    API_NEED(out);
    mailspool *ms = xcalloc(1, sizeof *ms);
    *out = ms;
    if (flags != 0)
        return api_rc(err_set(&ms->err, EX_USAGE, "mailspool_open: flags must be 0"), &ms->err);
    if (path == NULL) {
        path = getenv("MAILSPOOL_SPOOL");
        if (path == NULL || *path == '\0')
            path = CONFIG_DEFAULT_SPOOL;
    }
    return api_rc(spool_open(path, SPOOL_PRODUCER, &ms->sp, &ms->err), &ms->err);
}

void mailspool_close(mailspool *ms)
{
    if (ms == NULL)
        return;
    spool_close(ms->sp);
    free(ms);
}

const char *mailspool_errmsg(const mailspool *ms)
{
    if (ms == NULL)
        return "mailspool: no handle (mailspool_open was not called)";
    return ms->err.msg;
}

/* Every administrative call needs an open spool. */
static int api_ready(mailspool *ms)
{
    if (ms == NULL)
        return EX_USAGE;
    if (ms->sp == NULL) {
        if (ms->err.code == 0)
            err_set(&ms->err, EX_USAGE, "mailspool: the spool is not open");
        return ms->err.code;
    }
    err_clear(&ms->err);
    return 0;
}

mailspool_msg *mailspool_msg_new(void)
{
    mailspool_msg *m = xcalloc(1, sizeof *m);
    m->m = message_new();
    return m;
}

void mailspool_msg_free(mailspool_msg *m)
{
    if (m == NULL)
        return;
    message_free(m->m);
    free(m);
}

const char *mailspool_msg_errmsg(const mailspool_msg *m)
{
    return m ? m->err.msg : "mailspool: no message";
}

/* Replaces *dst with a copy of s after checking it can go into a header. */
static int api_set_header_string(mailspool_msg *m, char **dst, const char *s, const char *field,
                                 int required)
{
    err_clear(&m->err);
    if (s == NULL || *s == '\0') {
        if (required)
            return api_rc(err_set(&m->err, EX_DATAERR, "%s: must not be empty", field), &m->err);
    } else if (!header_safe(s)) {
        return api_rc(err_set(&m->err, EX_DATAERR,
                              "%s: holds CR, LF, NUL or invalid UTF-8: remove line breaks", field),
                      &m->err);
    }
    free(*dst);
    *dst = s && *s ? xstrdup(s) : NULL;
    return 0;
}

int mailspool_msg_set_area(mailspool_msg *m, const char *area)
{
    API_NEED(m);
    return api_set_header_string(m, &m->m->area, area, "area", 1);
}

int mailspool_msg_add_rcpt(mailspool_msg *m, enum mailspool_rcpt kind, const char *address)
{
    API_NEED(m);
    err_clear(&m->err);
    if ((unsigned)kind > MAILSPOOL_BCC)
        return api_rc(err_set(&m->err, EX_USAGE,
                              "recipient kind %d: use MAILSPOOL_TO, _CC or "
                              "_BCC",
                              (int)kind),
                      &m->err);
    return api_rc(message_add_rcpt(m->m, (enum rcpt_kind)kind, address ? address : "", &m->err),
                  &m->err);
}

int mailspool_msg_set_subject(mailspool_msg *m, const char *subject)
{
    API_NEED(m);
    return api_set_header_string(m, &m->m->subject, subject, "subject", 1);
}

static int api_set_body(mailspool_msg *m, char **dst, const char *s, const char *field)
{
    err_clear(&m->err);
    if (s && !utf8_valid(s, strlen(s)))
        return api_rc(err_set(&m->err, EX_DATAERR,
                              "%s: not valid UTF-8: convert the body to "
                              "UTF-8",
                              field),
                      &m->err);
    free(*dst);
    *dst = xstrdup_opt(s);
    return 0;
}

int mailspool_msg_set_text(mailspool_msg *m, const char *text)
{
    API_NEED(m);
    return api_set_body(m, &m->m->text, text, "text");
}

int mailspool_msg_set_html(mailspool_msg *m, const char *html)
{
    API_NEED(m);
    return api_set_body(m, &m->m->html, html, "html");
}

int mailspool_msg_set_reply_to(mailspool_msg *m, const char *address)
{
    API_NEED(m);
    err_clear(&m->err);
    if (address && *address) {
        struct address a = {NULL, NULL};
        if (address_parse(address, "reply-to", &a, &m->err) != 0)
            return api_rc(-1, &m->err);
        address_clear(&a);
    }
    free(m->m->reply_to);
    m->m->reply_to = address && *address ? xstrdup(address) : NULL;
    return 0;
}

int mailspool_msg_set_ref(mailspool_msg *m, const char *ref)
{
    API_NEED(m);
    return api_set_header_string(m, &m->m->ref, ref, "ref", 0);
}

static int api_set_time(mailspool_msg *m, int64_t *dst, int64_t t, const char *field)
{
    err_clear(&m->err);
    if (t < 0)
        return api_rc(err_set(&m->err, EX_DATAERR,
                              "%s: %lld is before 1970: pass Unix seconds "
                              "or 0",
                              field, (long long)t),
                      &m->err);
    *dst = t;
    return 0;
}

int mailspool_msg_set_not_before(mailspool_msg *m, int64_t unix_time)
{
    API_NEED(m);
    return api_set_time(m, &m->m->not_before, unix_time, "not_before");
}

int mailspool_msg_set_expires(mailspool_msg *m, int64_t unix_time)
{
    API_NEED(m);
    return api_set_time(m, &m->m->expires, unix_time, "expires");
}

int mailspool_msg_set_priority(mailspool_msg *m, int priority)
{
    API_NEED(m);
    err_clear(&m->err);
    m->m->priority = priority;
    return 0;
}

int mailspool_msg_add_header(mailspool_msg *m, const char *name, const char *value)
{
    API_NEED(m);
    err_clear(&m->err);
    return api_rc(message_add_header(m->m, name ? name : "", value ? value : "", &m->err), &m->err);
}

/* Checks name and type, then adds an attachment with them (defaults filled). */
static struct msg_attachment *api_attachment(mailspool_msg *m, const char *name,
                                             const char *content_type, const char *fallback)
{
    const char *n = name && *name ? name : fallback;
    const char *t = content_type && *content_type ? content_type : filetype_guess(n);
    if (!header_safe(n) || !header_safe(t)) {
        char shown[128];
        text_shown(n, shown, sizeof shown);
        err_set(&m->err, EX_DATAERR,
                "attachment %s: name or content type holds CR, LF, NUL or "
                "invalid UTF-8: choose a plain name",
                shown);
        return NULL;
    }
    struct msg_attachment *a = message_add_attachment(m->m);
    a->name = xstrdup(n);
    a->content_type = xstrdup(t);
    return a;
}

int mailspool_msg_attach_file(mailspool_msg *m, const char *path, const char *name,
                              const char *content_type)
{
    API_NEED(m);
    err_clear(&m->err);
    if (path == NULL || *path == '\0')
        return api_rc(err_set(&m->err, EX_USAGE, "attachment: the path is empty"), &m->err);
    struct msg_attachment *a = api_attachment(m, name, content_type, filetype_basename(path));
    if (a == NULL)
        return api_rc(-1, &m->err);
    a->path = xstrdup(path);
    return 0;
}

int mailspool_msg_attach_data(mailspool_msg *m, const void *data, size_t len, const char *name,
                              const char *content_type)
{
    API_NEED(m);
    err_clear(&m->err);
    if (data == NULL && len > 0)
        return api_rc(err_set(&m->err, EX_USAGE, "attachment: data is NULL"), &m->err);
    struct msg_attachment *a = api_attachment(m, name, content_type, "attachment");
    if (a == NULL)
        return api_rc(-1, &m->err);
    a->data = xmalloc(len ? len : 1);
    if (len)
        memcpy(a->data, data, len);
    a->data_len = len;
    return 0;
}

int mailspool_enqueue(mailspool *ms, mailspool_msg *m, long long *id)
{
    if (id)
        *id = 0;
    API_NEED(m);
    err_clear(&m->err);
    int rc = api_ready(ms);
    if (rc != 0) {
        /* The message's error too, as for any other enqueue failure. */
        if (ms && ms->err.code)
            m->err = ms->err;
        else
            err_set(&m->err, EX_USAGE, "mailspool_enqueue: no spool handle");
        return rc;
    }
    int64_t id64 = 0;
    bool existing = false;
    err_clear(&m->err);
    rc = api_rc(spool_enqueue(ms->sp, m->m, &id64, &existing, &ms->err), &ms->err);
    if (rc != 0)
        m->err = ms->err;
    if (id)
        *id = (long long)id64;
    return rc;
}

int mailspool_cancel(mailspool *ms, long long id)
{
    int rc = api_ready(ms);
    return rc ? rc : api_rc(spool_admin_cancel(ms->sp, id, &ms->err), &ms->err);
}

int mailspool_retry(mailspool *ms, long long id)
{
    int rc = api_ready(ms);
    return rc ? rc : api_rc(spool_admin_retry(ms->sp, id, &ms->err), &ms->err);
}

int mailspool_retry_failed(mailspool *ms, const char *area, long long *count)
{
    int rc = api_ready(ms);
    int64_t n = 0;
    if (rc == 0)
        rc = api_rc(spool_admin_retry_failed(ms->sp, area, &n, &ms->err), &ms->err);
    if (count)
        *count = (long long)n;
    return rc;
}

int mailspool_purge(mailspool *ms, int64_t before, long long *count)
{
    int rc = api_ready(ms);
    int64_t n = 0;
    if (rc == 0)
        rc = api_rc(spool_admin_purge(ms->sp, before, &n, &ms->err), &ms->err);
    if (count)
        *count = (long long)n;
    return rc;
}
