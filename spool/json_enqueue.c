/*
 * json_enqueue — the JSON enqueue document into a struct message.
 *
 * Owns: the table of document fields, type checks, and error messages that
 * name the field at fault. cJSON does the parsing.
 * Never: accepts a field it does not know (a typo must not silently drop a
 * recipient) or reads attachment files.
 */
#include "json_enqueue.h"
#include "address.h"
#include "b64decode.h"
#include "filetype.h"
#include "isotime.h"
#include "xmalloc.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define JSON_ENQUEUE_FIELDS                                                                        \
    "area, to, cc, bcc, reply_to, subject, text, html, attachments, headers, ref, not_before, "    \
    "expires, priority"

/* Whether f is one of JSON_ENQUEUE_FIELDS. A null value means "not given",
 * but only for a field the document has: a misspelt field is an error even
 * when it is null (SPEC 4: unknown fields are errors). */
static bool json_enqueue_known(const char *f)
{
    static const char fields[] = JSON_ENQUEUE_FIELDS;
    size_t n = strlen(f);
    if (n == 0 || strpbrk(f, ", ") != NULL)
        return false;
    for (const char *p = fields; (p = strstr(p, f)) != NULL; p += n)
        if ((p == fields || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

static int json_enqueue_type(const char *field, const char *want, struct err *e)
{
    return err_set(e, EX_DATAERR, "JSON field \"%s\": must be %s", field, want);
}

/* Copies a string field into *dst (replacing nothing: duplicates are
 * rejected before handlers run). */
static int json_enqueue_string(const cJSON *v, const char *field, char **dst, struct err *e)
{
    if (!cJSON_IsString(v))
        return json_enqueue_type(field, "a string", e);
    *dst = xstrdup(v->valuestring);
    return 0;
}

static int json_enqueue_rcpt(struct message *m, enum rcpt_kind kind, const cJSON *v,
                             const char *field, int idx, struct err *e)
{
    if (cJSON_IsString(v)) {
        if (message_add_rcpt(m, kind, v->valuestring, e) != 0)
            return err_prefix(e, "JSON field \"%s[%d]\"", field, idx);
        return 0;
    }
    if (!cJSON_IsObject(v))
        return err_set(e, EX_DATAERR,
                       "JSON field \"%s[%d]\": must be an address string or an object "
                       "{\"address\": ..., \"name\": ...}",
                       field, idx);
    const cJSON *addr = NULL, *name = NULL, *c;
    cJSON_ArrayForEach(c, v)
    {
        if (strcmp(c->string, "address") == 0 && addr == NULL)
            addr = c;
        else if (strcmp(c->string, "name") == 0 && name == NULL)
            name = c;
        else
            return err_set(e, EX_DATAERR,
                           "JSON field \"%s[%d]\": unknown or repeated field \"%s\": an "
                           "address object takes \"address\" and \"name\"",
                           field, idx, c->string);
    }
    if (!cJSON_IsString(addr))
        return err_set(e, EX_DATAERR, "JSON field \"%s[%d].address\": must be a string", field,
                       idx);
    if (name && !cJSON_IsString(name) && !cJSON_IsNull(name))
        return err_set(e, EX_DATAERR, "JSON field \"%s[%d].name\": must be a string", field, idx);
    if (message_add_rcpt(m, kind, addr->valuestring, e) != 0)
        return err_prefix(e, "JSON field \"%s[%d].address\"", field, idx);
    struct msg_rcpt *r = &m->rcpts[m->nrcpts - 1];
    if (cJSON_IsString(name) && name->valuestring[0] != '\0') {
        /* The name is checked as a whole by message_validate; reject the
         * header breakers here already so the error names the field. */
        if (!header_safe(name->valuestring))
            return err_set(e, EX_DATAERR,
                           "JSON field \"%s[%d].name\": holds CR, LF, NUL or invalid UTF-8: "
                           "remove them",
                           field, idx);
        free(r->name);
        r->name = xstrdup(name->valuestring);
    }
    return 0;
}

static int json_enqueue_rcpts(struct message *m, enum rcpt_kind kind, const cJSON *v,
                              const char *field, struct err *e)
{
    if (!cJSON_IsArray(v))
        return json_enqueue_type(field, "an array of addresses", e);
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, v)
    {
        if (json_enqueue_rcpt(m, kind, c, field, i, e) != 0)
            return -1;
        i++;
    }
    return 0;
}

static int json_enqueue_att_source(struct msg_attachment *a, const cJSON *path, const cJSON *b64,
                                   int idx, struct err *e)
{
    if ((path == NULL) == (b64 == NULL))
        return err_set(e, EX_DATAERR,
                       "JSON field \"attachments[%d]\": needs exactly one of \"path\" and "
                       "\"content_base64\"",
                       idx);
    if (path) {
        if (!cJSON_IsString(path) || path->valuestring[0] == '\0')
            return err_set(e, EX_DATAERR,
                           "JSON field \"attachments[%d].path\": must be a non-empty string", idx);
        a->path = xstrdup(path->valuestring);
        return 0;
    }
    if (!cJSON_IsString(b64))
        return err_set(e, EX_DATAERR,
                       "JSON field \"attachments[%d].content_base64\": must be a string", idx);
    size_t where = 0;
    const char *s = b64->valuestring;
    if (b64decode(s, strlen(s), &a->data, &a->data_len, &where) != 0)
        return err_set(e, EX_DATAERR,
                       "JSON field \"attachments[%d].content_base64\": not valid base64 at "
                       "character %zu: encode the bytes with standard padded base64",
                       idx, where + 1);
    return 0;
}

static int json_enqueue_att(struct message *m, const cJSON *v, int idx, struct err *e)
{
    if (!cJSON_IsObject(v))
        return err_set(e, EX_DATAERR, "JSON field \"attachments[%d]\": must be an object", idx);
    const cJSON *path = NULL, *b64 = NULL, *name = NULL, *type = NULL, *c;
    cJSON_ArrayForEach(c, v)
    {
        const cJSON **slot = strcmp(c->string, "path") == 0             ? &path
                             : strcmp(c->string, "content_base64") == 0 ? &b64
                             : strcmp(c->string, "name") == 0           ? &name
                             : strcmp(c->string, "content_type") == 0   ? &type
                                                                        : NULL;
        if (slot == NULL || *slot != NULL)
            return err_set(e, EX_DATAERR,
                           "JSON field \"attachments[%d]\": unknown or repeated field \"%s\": "
                           "an attachment takes path or content_base64, name, content_type",
                           idx, c->string);
        *slot = c;
    }
    if ((name && !cJSON_IsString(name)) || (type && !cJSON_IsString(type)))
        return err_set(e, EX_DATAERR,
                       "JSON field \"attachments[%d]\": name and content_type must be strings",
                       idx);
    if (b64 && name == NULL)
        return err_set(e, EX_DATAERR,
                       "JSON field \"attachments[%d].name\": required with content_base64", idx);
    struct msg_attachment *a = message_add_attachment(m);
    if (json_enqueue_att_source(a, path, b64, idx, e) != 0)
        return -1;
    a->name = xstrdup(name ? name->valuestring : filetype_basename(a->path));
    a->content_type = xstrdup(type ? type->valuestring : filetype_guess(a->name));
    return 0;
}

static int json_enqueue_atts(struct message *m, const cJSON *v, const char *field, struct err *e)
{
    if (!cJSON_IsArray(v))
        return json_enqueue_type(field, "an array of attachment objects", e);
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, v)
    {
        if (json_enqueue_att(m, c, i++, e) != 0)
            return -1;
    }
    return 0;
}

static int json_enqueue_headers(struct message *m, const cJSON *v, const char *field, struct err *e)
{
    if (!cJSON_IsObject(v))
        return json_enqueue_type(field, "an object of header names to string values", e);
    const cJSON *c;
    cJSON_ArrayForEach(c, v)
    {
        if (!cJSON_IsString(c))
            return err_set(e, EX_DATAERR, "JSON field \"headers.%s\": must be a string", c->string);
        if (message_add_header(m, c->string, c->valuestring, e) != 0)
            return err_prefix(e, "JSON field \"headers.%s\"", c->string);
    }
    return 0;
}

static int json_enqueue_time(const cJSON *v, const char *field, int64_t *dst, struct err *e)
{
    if (!cJSON_IsString(v))
        return json_enqueue_type(field, "an ISO 8601 string with an offset", e);
    char what[64];
    snprintf(what, sizeof what, "JSON field \"%s\"", field);
    return isotime_parse(v->valuestring, what, dst, e);
}

static int json_enqueue_priority(const cJSON *v, const char *field, int *dst, struct err *e)
{
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0.5;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < INT_MIN || d > INT_MAX)
        return json_enqueue_type(field, "an integer", e);
    *dst = (int)d;
    return 0;
}

/* Dispatches one top-level field; 1 when the name is unknown. */
static int json_enqueue_field(struct message *m, const cJSON *v, struct err *e)
{
    const char *f = v->string;
    if (strcmp(f, "area") == 0)
        return json_enqueue_string(v, f, &m->area, e);
    if (strcmp(f, "to") == 0)
        return json_enqueue_rcpts(m, RCPT_TO, v, f, e);
    if (strcmp(f, "cc") == 0)
        return json_enqueue_rcpts(m, RCPT_CC, v, f, e);
    if (strcmp(f, "bcc") == 0)
        return json_enqueue_rcpts(m, RCPT_BCC, v, f, e);
    if (strcmp(f, "reply_to") == 0)
        return json_enqueue_string(v, f, &m->reply_to, e);
    if (strcmp(f, "subject") == 0)
        return json_enqueue_string(v, f, &m->subject, e);
    if (strcmp(f, "text") == 0)
        return json_enqueue_string(v, f, &m->text, e);
    if (strcmp(f, "html") == 0)
        return json_enqueue_string(v, f, &m->html, e);
    if (strcmp(f, "ref") == 0)
        return json_enqueue_string(v, f, &m->ref, e);
    if (strcmp(f, "attachments") == 0)
        return json_enqueue_atts(m, v, f, e);
    if (strcmp(f, "headers") == 0)
        return json_enqueue_headers(m, v, f, e);
    if (strcmp(f, "not_before") == 0)
        return json_enqueue_time(v, f, &m->not_before, e);
    if (strcmp(f, "expires") == 0)
        return json_enqueue_time(v, f, &m->expires, e);
    if (strcmp(f, "priority") == 0)
        return json_enqueue_priority(v, f, &m->priority, e);
    return 1;
}

/* Checks that no field appears twice (cJSON keeps both). */
static int json_enqueue_dups(const cJSON *root, struct err *e)
{
    for (const cJSON *a = root->child; a; a = a->next)
        for (const cJSON *b = root->child; b != a; b = b->next)
            if (strcmp(a->string, b->string) == 0)
                return err_set(e, EX_DATAERR, "JSON field \"%s\": appears twice: keep one",
                               a->string);
    return 0;
}

/* Line and column of at in text, both counted from 1. */
static void json_enqueue_where(const char *text, size_t len, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; at && p < at && p < text + len; p++) {
        *col = *p == '\n' ? 1 : *col + 1;
        *line += *p == '\n';
    }
}

static int json_enqueue_syntax(const char *text, size_t len, struct err *e)
{
    int line, col;
    json_enqueue_where(text, len, cJSON_GetErrorPtr(), &line, &col);
    return err_set(e, EX_DATAERR,
                   "JSON document: syntax error at line %d, column %d: fix the "
                   "document (see SPEC section 4 / docs/SPOOL.md)",
                   line, col);
}

/* The first "\u0000" escape inside a string, or NULL. cJSON decodes it into
 * a C string, which silently ends the value there ("a@b.example\u0000..."
 * would become a shorter, different value): such a document is refused. */
static const char *json_enqueue_nul_escape(const char *text, size_t len)
{
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '"')
            in_string = !in_string;
        else if (in_string && text[i] == '\\' && i + 1 < len) {
            i++;
            if (text[i] == 'u' && len - i > 4 && memcmp(text + i + 1, "0000", 4) == 0)
                return text + i - 1;
        }
    }
    return NULL;
}

/* Refuses what cJSON accepts silently: NUL escapes, and text after the
 * document (a second document would be dropped without a word). */
static int json_enqueue_strict(const char *text, size_t len, const char *end, struct err *e)
{
    int line, col;
    const char *nul = json_enqueue_nul_escape(text, len);
    if (nul) {
        json_enqueue_where(text, len, nul, &line, &col);
        return err_set(e, EX_DATAERR,
                       "JSON document: \\u0000 (NUL) at line %d, column %d: no field may "
                       "hold a NUL character; remove it",
                       line, col);
    }
    while (end && end < text + len && strchr(" \t\r\n", *end) && *end != '\0')
        end++;
    if (end && end < text + len) {
        json_enqueue_where(text, len, end, &line, &col);
        return err_set(e, EX_DATAERR,
                       "JSON document: unexpected text after the document at line %d, "
                       "column %d: give one message per document",
                       line, col);
    }
    return 0;
}

int json_enqueue_parse(const char *text, size_t len, struct message **out, struct err *e)
{
    *out = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root == NULL)
        return json_enqueue_syntax(text, len, e);
    int rc = json_enqueue_strict(text, len, end, e);
    if (rc == 0 && !cJSON_IsObject(root))
        rc = err_set(e, EX_DATAERR, "JSON document: must be an object {\"area\": ..., ...}");
    else if (rc == 0)
        rc = json_enqueue_dups(root, e);
    struct message *m = message_new();
    const cJSON *v;
    for (v = rc == 0 ? root->child : NULL; v && rc == 0; v = v->next) {
        bool null = cJSON_IsNull(v);
        if (null && json_enqueue_known(v->string))
            continue; /* null is "not given" for every known field */
        int r = null ? 1 : json_enqueue_field(m, v, e);
        if (r == 1)
            rc = err_set(e, EX_DATAERR,
                         "JSON field \"%s\": unknown: the document takes " JSON_ENQUEUE_FIELDS,
                         v->string);
        else if (r != 0)
            rc = -1;
    }
    cJSON_Delete(root);
    if (rc != 0) {
        message_free(m);
        return -1;
    }
    *out = m;
    return 0;
}
