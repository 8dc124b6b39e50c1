/*
 * graph_json — the JSON of Microsoft Graph and Entra ID requests and
 * responses, built and parsed with cJSON.
 *
 * Owns: the message resource as mailspool sends it (subject; one body, HTML
 * when the message has HTML, else Text; to/cc/bcc recipients with names;
 * replyTo from the message, else ReplyToAddress; fileAttachments with base64
 * contentBytes read in chunks; the producer's X- headers as
 * internetMessageHeaders), the choice between sendMail and the draft path
 * from an exact size estimate, and the parsing of Graph and Entra errors.
 * Never: sets "from" (Graph sends as the mailbox with its own display name,
 * so FromDisplayName has no effect, as the seed says), or keeps a token.
 *
 * internetMessageHeaders: Graph accepts only names starting with "x-"/"X-"
 * (other names fail the whole request with 400 InvalidInternetMessageHeader)
 * and at most 5 of them (400 InvalidInternetMessageHeaderCollection), and an
 * empty list is refused too. So the first 5 X- headers are sent and the rest
 * dropped: the standard headers mailspool composes itself for SMTP (From,
 * Date, Message-ID, ...) are Exchange's own business on this transport.
 */
#include "graph_impl.h"
#include "address.h"
#include "b64decode.h"
#include "xmalloc.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define B64_CHUNK (48 * 1024) /* a multiple of 3: chunks encode without padding */

/* Length of s as a JSON string literal (cJSON escapes ", \ and controls). */
static size_t json_str_len(const char *s)
{
    size_t n = 2;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\' || *p == '\b' || *p == '\f' || *p == '\n' || *p == '\r' ||
            *p == '\t')
            n += 2;
        else if (*p < 0x20)
            n += 6;
        else
            n++;
    }
    return n;
}

static int64_t b64_len(int64_t n)
{
    return (n + 2) / 3 * 4;
}

static bool header_is_custom(const char *name)
{
    return name && strncasecmp(name, "x-", 2) == 0;
}

/* Bytes of one fileAttachment object in the request. */
static int64_t att_cost(const struct msg_attachment *a)
{
    return b64_len(a->size) + (int64_t)json_str_len(a->name) +
           (int64_t)json_str_len(a->content_type) + 128;
}

/* Bytes of the message without attachments (a slight overestimate). */
static int64_t message_cost(const struct profile *p, const struct message *m)
{
    int64_t n = 512 + (int64_t)json_str_len(m->subject);
    n += (int64_t)json_str_len(m->html ? m->html : m->text);
    for (size_t i = 0; i < m->nrcpts; i++)
        n += 64 + (int64_t)json_str_len(m->rcpts[i].addr) + (int64_t)json_str_len(m->rcpts[i].name);
    n += 128 + (int64_t)json_str_len(m->reply_to ? m->reply_to : p->reply_to);
    for (size_t i = 0; i < m->nhdrs; i++)
        n += 48 + (int64_t)json_str_len(m->hdrs[i].name) + (int64_t)json_str_len(m->hdrs[i].value);
    return n;
}

bool graph_json_plan(const struct profile *p, const struct message *m, unsigned char *plan)
{
    int64_t base = message_cost(p, m), total = base;
    for (size_t i = 0; i < m->natts; i++)
        total += att_cost(&m->atts[i]);
    for (size_t i = 0; i < m->natts; i++)
        plan[i] = GA_SENDMAIL;
    if (total <= GRAPH_REQUEST_LIMIT)
        return false;
    /* Draft path: small attachments ride in the draft while it stays under the
     * limit, the others are posted one by one, and those of 3 MiB and more (the
     * documented threshold of upload sessions, which refuse smaller files) are
     * uploaded in chunks. */
    int64_t draft = base;
    for (size_t i = 0; i < m->natts; i++) {
        const struct msg_attachment *a = &m->atts[i];
        int64_t c = att_cost(a);
        if (a->size >= GRAPH_UPLOAD_MIN) {
            plan[i] = GA_UPLOAD;
        } else if (draft + c <= GRAPH_REQUEST_LIMIT) {
            plan[i] = GA_DRAFT;
            draft += c;
        } else {
            plan[i] = GA_POST;
        }
    }
    return true;
}

static cJSON *json_recipient(const char *name, const char *addr)
{
    cJSON *r = cJSON_CreateObject();
    cJSON *ea = cJSON_AddObjectToObject(r, "emailAddress");
    cJSON_AddStringToObject(ea, "address", addr);
    if (name && *name)
        cJSON_AddStringToObject(ea, "name", name);
    return r;
}

static void json_recipients(cJSON *msg, const struct message *m)
{
    static const char *const keys[] = {"toRecipients", "ccRecipients", "bccRecipients"};
    for (int k = RCPT_TO; k <= RCPT_BCC; k++) {
        cJSON *arr = NULL;
        for (size_t i = 0; i < m->nrcpts; i++) {
            /* Only those still waiting for it: Graph's lists are both the
             * envelope and the headers, so after an SMTP attempt that
             * reached some recipients (delivery.c) the others see only
             * themselves. */
            if ((int)m->rcpts[i].kind != k || m->rcpts[i].state != RCPT_PENDING)
                continue;
            if (arr == NULL)
                arr = cJSON_AddArrayToObject(msg, keys[k]);
            cJSON_AddItemToArray(arr, json_recipient(m->rcpts[i].name, m->rcpts[i].addr));
        }
    }
}

/* replyTo: the message's own, else the profile's ReplyToAddress. */
static void json_reply_to(cJSON *msg, const struct profile *p, const struct message *m)
{
    const char *rt = m->reply_to && *m->reply_to ? m->reply_to : p->reply_to;
    if (rt == NULL || *rt == '\0')
        return;
    struct address a = {0};
    struct err e = {0};
    if (address_parse(rt, "reply-to", &a, &e) != 0)
        return; /* validated before; a profile value was checked by the config */
    cJSON *arr = cJSON_AddArrayToObject(msg, "replyTo");
    cJSON_AddItemToArray(arr, json_recipient(a.name, a.addr));
    address_clear(&a);
}

static void json_headers(cJSON *msg, const struct message *m)
{
    cJSON *arr = NULL;
    int n = 0;
    for (size_t i = 0; i < m->nhdrs && n < GRAPH_MAX_HEADERS; i++) {
        if (!header_is_custom(m->hdrs[i].name))
            continue;
        if (arr == NULL)
            arr = cJSON_AddArrayToObject(msg, "internetMessageHeaders");
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "name", m->hdrs[i].name);
        cJSON_AddStringToObject(h, "value", m->hdrs[i].value ? m->hdrs[i].value : "");
        cJSON_AddItemToArray(arr, h);
        n++;
    }
}

/* Reads attachment a whole (through rd, in chunks) and appends its base64. */
static int att_base64(const struct msg_attachment *a, mime_att_read_fn rd, void *ctx,
                      struct buf *out, struct err *e)
{
    unsigned char *chunk = xmalloc(B64_CHUNK);
    int64_t off = 0;
    int rc = 0;
    buf_reserve(out, (size_t)b64_len(a->size) + 1);
    while (rc == 0 && off < a->size) {
        size_t want = a->size - off < B64_CHUNK ? (size_t)(a->size - off) : B64_CHUNK;
        size_t have = 0;
        while (have < want) {
            ssize_t n = rd(ctx, a, off + (int64_t)have, chunk + have, want - have, e);
            if (n <= 0) {
                if (n == 0)
                    err_set(e, EX_DATAERR, "attachment %s ends after %lld of %lld bytes",
                            a->name ? a->name : "?", (long long)(off + (int64_t)have),
                            (long long)a->size);
                rc = -1;
                break;
            }
            have += (size_t)n;
        }
        if (rc == 0) {
            mime_encode_base64(out, chunk, have, 0);
            off += (int64_t)have;
        }
    }
    free(chunk);
    buf_append(out, "", 0); /* NUL-terminates, also for an empty attachment */
    return rc;
}

/* The fileAttachment object; its contentBytes references b64 (kept by the caller). */
static int json_file_attachment(const struct msg_attachment *a, mime_att_read_fn rd, void *ctx,
                                struct buf *b64, cJSON **out, struct err *e)
{
    if (att_base64(a, rd, ctx, b64, e) != 0)
        return -1;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "@odata.type", "#microsoft.graph.fileAttachment");
    cJSON_AddStringToObject(o, "name", a->name ? a->name : "attachment");
    cJSON_AddStringToObject(o, "contentType",
                            a->content_type ? a->content_type : "application/octet-stream");
    cJSON_AddItemToObject(o, "contentBytes", cJSON_CreateStringReference(b64->data));
    *out = o;
    return 0;
}

/* Builds the message object; attachments whose plan is want go in (their base64
 * in the returned bufs, which must outlive the printing). */
static cJSON *json_message(const struct profile *p, const struct message *m,
                           const unsigned char *plan, unsigned char want, mime_att_read_fn rd,
                           void *ctx, struct buf **bufs, struct err *e)
{
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "subject", m->subject ? m->subject : "");
    cJSON *body = cJSON_AddObjectToObject(msg, "body");
    cJSON_AddStringToObject(body, "contentType", m->html ? "HTML" : "Text");
    cJSON_AddStringToObject(body, "content", m->html ? m->html : (m->text ? m->text : ""));
    json_recipients(msg, m);
    json_reply_to(msg, p, m);
    json_headers(msg, m);
    *bufs = m->natts ? xcalloc(m->natts, sizeof **bufs) : NULL;
    cJSON *arr = NULL;
    for (size_t i = 0; i < m->natts; i++) {
        if (plan[i] != want)
            continue;
        if (arr == NULL)
            arr = cJSON_AddArrayToObject(msg, "attachments");
        cJSON *o = NULL;
        if (json_file_attachment(&m->atts[i], rd, ctx, &(*bufs)[i], &o, e) != 0) {
            cJSON_Delete(msg);
            return NULL;
        }
        cJSON_AddItemToArray(arr, o);
    }
    return msg;
}

static void bufs_free(struct buf *bufs, size_t n)
{
    for (size_t i = 0; bufs && i < n; i++)
        buf_free(&bufs[i]);
    free(bufs);
}

static int json_print(cJSON *root, char **out, size_t *len, struct err *e)
{
    char *s = cJSON_PrintUnformatted(root);
    if (s == NULL)
        return err_set(e, EX_OSERR, "out of memory printing the Graph request");
    *out = s;
    *len = strlen(s);
    return 0;
}

int graph_json_sendmail(const struct profile *p, const struct message *m, const unsigned char *plan,
                        mime_att_read_fn rd, void *ctx, char **out, size_t *len, struct err *e)
{
    struct buf *bufs = NULL;
    cJSON *msg = json_message(p, m, plan, GA_SENDMAIL, rd, ctx, &bufs, e);
    if (msg == NULL) {
        bufs_free(bufs, m->natts);
        return -1;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "message", msg);
    cJSON_AddBoolToObject(root, "saveToSentItems", p->m365_save_to_sent);
    int rc = json_print(root, out, len, e);
    cJSON_Delete(root);
    bufs_free(bufs, m->natts);
    return rc;
}

int graph_json_draft(const struct profile *p, const struct message *m, const unsigned char *plan,
                     mime_att_read_fn rd, void *ctx, char **out, size_t *len, struct err *e)
{
    struct buf *bufs = NULL;
    cJSON *msg = json_message(p, m, plan, GA_DRAFT, rd, ctx, &bufs, e);
    if (msg == NULL) {
        bufs_free(bufs, m->natts);
        return -1;
    }
    int rc = json_print(msg, out, len, e);
    cJSON_Delete(msg);
    bufs_free(bufs, m->natts);
    return rc;
}

int graph_json_attachment(const struct msg_attachment *a, mime_att_read_fn rd, void *ctx,
                          char **out, size_t *len, struct err *e)
{
    struct buf b64 = BUF_INIT;
    cJSON *o = NULL;
    int rc = json_file_attachment(a, rd, ctx, &b64, &o, e);
    if (rc == 0) {
        rc = json_print(o, out, len, e);
        cJSON_Delete(o);
    }
    buf_free(&b64);
    return rc;
}

char *graph_json_upload_session(const struct msg_attachment *a, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *it = cJSON_AddObjectToObject(root, "AttachmentItem");
    cJSON_AddStringToObject(it, "attachmentType", "file");
    cJSON_AddStringToObject(it, "name", a->name ? a->name : "attachment");
    cJSON_AddNumberToObject(it, "size", (double)a->size);
    cJSON_AddStringToObject(it, "contentType",
                            a->content_type ? a->content_type : "application/octet-stream");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (s == NULL)
        s = xstrdup("{}");
    *len = strlen(s);
    return s;
}

/* ---- responses ---------------------------------------------------------- */

static cJSON *json_parse(const char *body, size_t len)
{
    if (body == NULL || len == 0)
        return NULL;
    return cJSON_ParseWithLength(body, len);
}

static char *json_dup_string(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring ? xstrdup(v->valuestring) : NULL;
}

/* First line of s, at most 400 bytes (AADSTS descriptions carry trace lines). */
static char *first_line(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strcspn(s, "\r\n");
    return xstrndup(s, n > 400 ? 400 : n);
}

char *graph_json_get_string(const char *body, size_t len, const char *key)
{
    cJSON *root = json_parse(body, len);
    char *v = cJSON_IsObject(root) ? json_dup_string(root, key) : NULL;
    cJSON_Delete(root);
    return v;
}

int64_t graph_json_next_range(const char *body, size_t len)
{
    cJSON *root = json_parse(body, len);
    int64_t next = -1;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "nextExpectedRanges");
    const cJSON *first = cJSON_IsArray(arr) ? cJSON_GetArrayItem(arr, 0) : NULL;
    if (cJSON_IsString(first) && first->valuestring) {
        char *end = NULL;
        long long v = strtoll(first->valuestring, &end, 10);
        if (end != first->valuestring && v >= 0)
            next = (int64_t)v;
    }
    cJSON_Delete(root);
    return next;
}

void graph_json_parse_error(const char *body, size_t len, char **code, char **message,
                            char **request_id)
{
    *code = *message = *request_id = NULL;
    cJSON *root = json_parse(body, len);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsObject(err)) {
        *code = json_dup_string(err, "code");
        char *m = json_dup_string(err, "message");
        *message = first_line(m);
        free(m);
        const cJSON *inner = cJSON_GetObjectItemCaseSensitive(err, "innerError");
        if (!cJSON_IsObject(inner))
            inner = cJSON_GetObjectItemCaseSensitive(err, "innererror");
        if (cJSON_IsObject(inner))
            *request_id = json_dup_string(inner, "request-id");
    }
    cJSON_Delete(root);
}

/* A token lifetime in whole seconds, or 0 when v is none. Entra issues 60-90
 * minute tokens; a lifetime beyond GRAPH_TOKEN_MAX_LIFETIME is taken as that
 * (a 401 renews a token early anyway), and a huge or non-finite number from
 * the authority must never reach an integer conversion, which would be
 * undefined (and lifetime * 1000 would overflow later). */
static int64_t token_lifetime(double v)
{
    if (!(v >= 1)) /* also NaN */
        return 0;
    return v > GRAPH_TOKEN_MAX_LIFETIME ? GRAPH_TOKEN_MAX_LIFETIME : (int64_t)v;
}

int graph_json_parse_token(const char *body, size_t len, char **token, int64_t *expires_in)
{
    *token = NULL;
    *expires_in = 0;
    cJSON *root = json_parse(body, len);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "access_token");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
    int64_t exp = 0;
    if (cJSON_IsNumber(x)) {
        exp = token_lifetime(x->valuedouble);
    } else if (cJSON_IsString(x) && x->valuestring) { /* some authorities send a string */
        char *end = NULL;
        double v = strtod(x->valuestring, &end);
        exp = end != x->valuestring ? token_lifetime(v) : 0;
    }
    int rc = -1;
    if (cJSON_IsString(t) && t->valuestring && *t->valuestring && exp > 0) {
        *token = xstrdup(t->valuestring);
        *expires_in = exp;
        rc = 0;
    }
    if (cJSON_IsString(t) && t->valuestring)
        explicit_bzero(t->valuestring, strlen(t->valuestring));
    cJSON_Delete(root);
    return rc;
}

void graph_json_parse_token_error(const char *body, size_t len, char **error, char **message,
                                  long *aadsts, char **trace_id, char **correlation_id)
{
    *error = *message = *trace_id = *correlation_id = NULL;
    *aadsts = 0;
    cJSON *root = json_parse(body, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return;
    }
    *error = json_dup_string(root, "error");
    char *d = json_dup_string(root, "error_description");
    *message = first_line(d);
    free(d);
    const cJSON *codes = cJSON_GetObjectItemCaseSensitive(root, "error_codes");
    const cJSON *c0 = cJSON_IsArray(codes) ? cJSON_GetArrayItem(codes, 0) : NULL;
    if (cJSON_IsNumber(c0) && c0->valuedouble >= 0 && c0->valuedouble <= 99999999)
        *aadsts = (long)c0->valuedouble; /* AADSTS codes have at most 8 digits */
    else if (*message && strncmp(*message, "AADSTS", 6) == 0)
        *aadsts = strtol(*message + 6, NULL, 10);
    *trace_id = json_dup_string(root, "trace_id");
    *correlation_id = json_dup_string(root, "correlation_id");
    cJSON_Delete(root);
}

int graph_json_jwt_roles(const char *token, char **roles)
{
    *roles = NULL;
    const char *p1 = strchr(token, '.');
    const char *p2 = p1 ? strchr(p1 + 1, '.') : NULL;
    if (p2 == NULL)
        return -1;
    /* base64url without padding -> base64 */
    struct buf b64 = BUF_INIT;
    buf_append(&b64, p1 + 1, (size_t)(p2 - p1 - 1));
    for (size_t i = 0; i < b64.len; i++)
        b64.data[i] = b64.data[i] == '-' ? '+' : (b64.data[i] == '_' ? '/' : b64.data[i]);
    while (b64.len % 4)
        buf_putc(&b64, '=');
    unsigned char *json = NULL;
    size_t n = 0, where = 0;
    cJSON *claims = NULL;
    if (b64decode(b64.data, b64.len, &json, &n, &where) == 0)
        claims = cJSON_ParseWithLength((const char *)json, n);
    free(json);
    buf_free(&b64);
    if (!cJSON_IsObject(claims)) {
        cJSON_Delete(claims);
        return -1;
    }
    struct buf out = BUF_INIT;
    buf_append(&out, "", 0);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(claims, "roles");
    for (int i = 0; cJSON_IsArray(arr) && i < cJSON_GetArraySize(arr); i++) {
        const cJSON *it = cJSON_GetArrayItem(arr, i);
        if (cJSON_IsString(it) && it->valuestring && *it->valuestring) {
            if (out.len)
                buf_putc(&out, ' ');
            buf_puts(&out, it->valuestring);
        }
    }
    cJSON_Delete(claims);
    *roles = buf_detach(&out);
    return 0;
}
