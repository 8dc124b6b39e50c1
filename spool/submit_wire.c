/*
 * submit_wire — the frames of the submission socket (see submit_wire.h).
 *
 * Request: "MSQ1", u32 body length, u32 number of descriptors, then the
 * body: the strings area, ref, subject, text, html, reply_to, message_id;
 * i32 priority, i64 not_before, i64 expires; u32 recipients, each u8 kind,
 * name, address; u32 headers, each name, value; u32 attachments, each name,
 * content type, u8 source (0: the bytes follow as a string, 1: the next
 * descriptor). A string is u32 length (0xffffffff: none) and its bytes.
 * Reply: "MSA1", u32 code, i64 id, u8 existing, then a string (the error).
 * Integers are in host order: both ends are on this machine.
 */
#include "submit_wire.h"
#include "filetype.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUBMIT_NONE 0xffffffffu

static const char submit_magic[4] = {'M', 'S', 'Q', '1'};
static const char submit_reply_magic[4] = {'M', 'S', 'A', '1'};

char *submit_wire_path(const char *spool_path)
{
    size_t n = strlen(spool_path);
    char *p = xmalloc(n + sizeof ".sock");
    memcpy(p, spool_path, n);
    memcpy(p + n, ".sock", sizeof ".sock");
    return p;
}

int submit_wire_addr(const char *path, struct sockaddr_un *sa, socklen_t *len, int *dirfd,
                     struct err *e)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    *dirfd = -1;
    const char *use = path;
    char via[sizeof sa->sun_path];
    if (strlen(path) >= sizeof sa->sun_path) {
        /* Longer than sun_path: name it through the directory's descriptor,
         * which the kernel resolves like the directory itself. */
        const char *slash = strrchr(path, '/');
        char *dir = slash ? xstrndup(path, (size_t)(slash - path) + (slash == path)) : NULL;
        *dirfd = dir ? open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
        free(dir);
        if (*dirfd < 0)
            return err_set(e, EX_UNAVAILABLE, "submission socket %s: path too long", path);
        int n = snprintf(via, sizeof via, "/proc/self/fd/%d/%s", *dirfd, slash + 1);
        if (n < 0 || (size_t)n >= sizeof via) {
            close(*dirfd);
            *dirfd = -1;
            return err_set(e, EX_UNAVAILABLE, "submission socket %s: file name too long", path);
        }
        use = via;
    }
    size_t n = strlen(use);
    memcpy(sa->sun_path, use, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* ---- encoding --------------------------------------------------------- */

static void put_u32(struct buf *b, uint32_t v)
{
    buf_append(b, &v, sizeof v);
}

static void put_bytes(struct buf *b, const void *p, size_t n)
{
    put_u32(b, (uint32_t)n);
    buf_append(b, p, n);
}

static void put_str(struct buf *b, const char *s)
{
    if (s == NULL)
        put_u32(b, SUBMIT_NONE);
    else
        put_bytes(b, s, strlen(s));
}

int submit_wire_encode(const struct message *m, struct buf *out, size_t *nfds, struct err *e)
{
    size_t start = out->len;
    buf_append(out, submit_magic, sizeof submit_magic);
    put_u32(out, 0); /* body length, set below */
    put_u32(out, 0); /* descriptors, set below */
    const char *strs[] = {m->area, m->ref,      m->subject,   m->text,
                          m->html, m->reply_to, m->message_id};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        put_str(out, strs[i]);
    int32_t prio = m->priority;
    buf_append(out, &prio, sizeof prio);
    buf_append(out, &m->not_before, sizeof m->not_before);
    buf_append(out, &m->expires, sizeof m->expires);
    put_u32(out, (uint32_t)m->nrcpts);
    for (size_t i = 0; i < m->nrcpts; i++) {
        buf_putc(out, (char)m->rcpts[i].kind);
        put_str(out, m->rcpts[i].name);
        put_str(out, m->rcpts[i].addr);
    }
    put_u32(out, (uint32_t)m->nhdrs);
    for (size_t i = 0; i < m->nhdrs; i++) {
        put_str(out, m->hdrs[i].name);
        put_str(out, m->hdrs[i].value);
    }
    put_u32(out, (uint32_t)m->natts);
    size_t fds = 0;
    for (size_t i = 0; i < m->natts; i++) {
        const struct msg_attachment *a = &m->atts[i];
        /* The daemon never sees the path: the name the direct way would
         * derive from it travels instead. */
        put_str(out, a->name ? a->name : a->path ? filetype_basename(a->path) : NULL);
        put_str(out, a->content_type);
        bool by_fd = a->path != NULL || a->fd >= 0;
        buf_putc(out, by_fd ? 1 : 0);
        if (by_fd)
            fds++;
        else
            put_bytes(out, a->data ? (const void *)a->data : "", a->data ? a->data_len : 0);
    }
    size_t body = out->len - start - SUBMIT_HEAD_LEN;
    if (body > SUBMIT_BODY_MAX || fds > SUBMIT_FDS_MAX) {
        out->len = start;
        return err_set(e, EX_DATAERR, "message too large for the submission socket");
    }
    uint32_t v = (uint32_t)body;
    memcpy(out->data + start + 4, &v, sizeof v);
    v = (uint32_t)fds;
    memcpy(out->data + start + 8, &v, sizeof v);
    *nfds = fds;
    return 0;
}

/* ---- decoding --------------------------------------------------------- */

struct rd {
    const unsigned char *p;
    size_t left;
    bool bad;
};

static const void *take(struct rd *r, size_t n)
{
    if (r->bad || n > r->left) {
        r->bad = true;
        return NULL;
    }
    const void *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

/* n bytes into dst (zeros when the request is short). */
static void get_raw(struct rd *r, void *dst, size_t n)
{
    const void *p = take(r, n);
    if (p)
        memcpy(dst, p, n);
    else
        memset(dst, 0, n);
}

static uint32_t get_u32(struct rd *r)
{
    uint32_t v;
    get_raw(r, &v, sizeof v);
    return v;
}

static int64_t get_i64(struct rd *r)
{
    int64_t v;
    get_raw(r, &v, sizeof v);
    return v;
}

static unsigned char get_u8(struct rd *r)
{
    const unsigned char *p = take(r, 1);
    return p ? *p : 0;
}

/* Bytes of a string field; *none when absent. */
static const unsigned char *get_bytes(struct rd *r, size_t *n, bool *none)
{
    uint32_t len = get_u32(r);
    *none = len == SUBMIT_NONE;
    *n = *none ? 0 : len;
    return *none ? NULL : take(r, *n);
}

/* A text field: NULL when absent; a NUL inside makes the request bad. */
static char *get_str(struct rd *r)
{
    size_t n;
    bool none;
    const unsigned char *p = get_bytes(r, &n, &none);
    if (p == NULL || memchr(p, '\0', n) != NULL) {
        if (!none)
            r->bad = true;
        return NULL;
    }
    return xstrndup((const char *)p, n);
}

static int decode_rcpts(struct rd *r, struct message *m, struct err *e)
{
    uint32_t n = get_u32(r);
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        int kind = get_u8(r);
        char *name = get_str(r), *addr = get_str(r);
        int rc = r->bad || addr == NULL ? 0 : message_add_rcpt(m, (enum rcpt_kind)kind, addr, e);
        if (rc == 0 && !r->bad && addr != NULL) {
            free(m->rcpts[m->nrcpts - 1].name);
            m->rcpts[m->nrcpts - 1].name = name;
            name = NULL;
        } else if (rc == 0) {
            r->bad = true;
        }
        free(name);
        free(addr);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int decode_headers(struct rd *r, struct message *m, struct err *e)
{
    uint32_t n = get_u32(r);
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        char *name = get_str(r), *value = get_str(r);
        int rc = 0;
        if (name == NULL || value == NULL)
            r->bad = true;
        else
            rc = message_add_header(m, name, value, e);
        free(name);
        free(value);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static void decode_atts(struct rd *r, struct message *m, int *fds, size_t nfds, size_t *used)
{
    uint32_t n = get_u32(r);
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        /* Each attachment takes at least 9 bytes: a short request cannot
         * make us allocate for millions. */
        if (r->left < 9) {
            r->bad = true;
            break;
        }
        struct msg_attachment *a = message_add_attachment(m);
        a->name = get_str(r);
        a->content_type = get_str(r);
        if (get_u8(r) == 1) {
            if (*used >= nfds)
                r->bad = true;
            else
                a->fd = fds[(*used)++];
            continue;
        }
        size_t len;
        bool none;
        const unsigned char *p = get_bytes(r, &len, &none);
        if (p == NULL && len > 0)
            r->bad = true;
        if (r->bad || none)
            continue;
        a->data = xmalloc(len ? len : 1);
        memcpy(a->data, p, len);
        a->data_len = len;
    }
}

int submit_wire_head(const unsigned char head[SUBMIT_HEAD_LEN], uint32_t *body_len, uint32_t *nfds,
                     struct err *e)
{
    if (memcmp(head, submit_magic, sizeof submit_magic) != 0)
        return err_set(e, EX_PROTOCOL, "not a mailspool submission request");
    memcpy(body_len, head + 4, sizeof *body_len);
    memcpy(nfds, head + 8, sizeof *nfds);
    if (*body_len > SUBMIT_BODY_MAX || *nfds > SUBMIT_FDS_MAX)
        return err_set(e, EX_PROTOCOL, "submission request too large");
    return 0;
}

int submit_wire_decode(const unsigned char *body, size_t len, int *fds, size_t nfds,
                       struct message **out, struct err *e)
{
    struct rd r = {body, len, false};
    struct message *m = message_new();
    size_t used = 0;
    char **strs[] = {&m->area, &m->ref,      &m->subject,   &m->text,
                     &m->html, &m->reply_to, &m->message_id};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        *strs[i] = get_str(&r);
    m->priority = (int32_t)get_u32(&r);
    m->not_before = get_i64(&r);
    m->expires = get_i64(&r);
    int rc = decode_rcpts(&r, m, e);
    if (rc == 0)
        rc = decode_headers(&r, m, e);
    if (rc == 0)
        decode_atts(&r, m, fds, nfds, &used);
    if (rc == 0 && (r.bad || r.left != 0 || used != nfds))
        rc = err_set(e, EX_PROTOCOL, "malformed submission request");
    /* Descriptors not handed to an attachment are ours to close. */
    for (size_t i = used; i < nfds; i++)
        close(fds[i]);
    if (rc != 0) {
        message_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

/* ---- the reply -------------------------------------------------------- */

void submit_wire_reply(struct buf *out, int rc, int64_t id, bool existing, const char *msg)
{
    buf_append(out, submit_reply_magic, sizeof submit_reply_magic);
    put_u32(out, (uint32_t)rc);
    buf_append(out, &id, sizeof id);
    buf_putc(out, existing ? 1 : 0);
    put_str(out, msg ? msg : "");
}

/* magic, code, id, existing, string length */
#define SUBMIT_REPLY_HEAD (4 + 4 + 8 + 1 + 4)

long submit_wire_reply_len(const unsigned char *p, size_t len)
{
    if (len < SUBMIT_REPLY_HEAD)
        return len >= 4 && memcmp(p, submit_reply_magic, 4) != 0 ? -1 : 0;
    uint32_t n;
    memcpy(&n, p + SUBMIT_REPLY_HEAD - 4, sizeof n);
    if (memcmp(p, submit_reply_magic, 4) != 0 || n >= ERR_MSG_MAX)
        return -1;
    return (long)(SUBMIT_REPLY_HEAD + n);
}

int submit_wire_parse_reply(const unsigned char *p, size_t len, int *rc, int64_t *id,
                            bool *existing, struct err *msg)
{
    long need = submit_wire_reply_len(p, len);
    if (need <= 0 || (size_t)need != len)
        return -1;
    struct rd r = {p + 4, len - 4, false};
    *rc = (int)get_u32(&r);
    *id = get_i64(&r);
    *existing = get_u8(&r) != 0;
    char *s = get_str(&r);
    if (r.bad || s == NULL) {
        free(s);
        return -1;
    }
    msg->code = *rc;
    snprintf(msg->msg, sizeof msg->msg, "%s", s);
    free(s);
    return 0;
}
