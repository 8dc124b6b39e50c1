/*
 * test_graph_json — the Microsoft Graph request bodies mailspool builds, read
 * back with cJSON: fields and recipients, UTF-8 (umlauts, emoji) intact,
 * attachments base64 round-trip byte-identical even when the spool reader
 * returns short reads, the X- header rules, the sendMail / draft path choice,
 * and the parsing of Graph and Entra ID responses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "b64decode.h"
#include "graph_impl.h"
#include "xmalloc.h"

#define SUBJECT "Grüße aus Müllheim – Rechnung 🎉 Nr. \"42\""
#define NAME "Bärbel Groß 🙂"

static struct profile test_profile(void)
{
    struct profile p = {0};
    p.name = "ppr";
    p.from_address = "ppr@airport.example";
    p.from_display_name = "Flughafen – PPR";
    p.reply_to = "Buchhaltung <buchhaltung@airport.example>";
    p.m365_save_to_sent = false;
    return p;
}

/* Reads from a->data, at most 777 bytes per call: the builder must loop. */
static ssize_t short_reader(void *ctx, const struct msg_attachment *a, int64_t off, void *buf,
                            size_t len, struct err *e)
{
    int *calls = ctx;
    (*calls)++;
    (void)e;
    if (off >= (int64_t)a->data_len)
        return 0;
    size_t n = a->data_len - (size_t)off;
    if (n > len)
        n = len;
    if (n > 777)
        n = 777;
    memcpy(buf, a->data + off, n);
    return (ssize_t)n;
}

static ssize_t failing_reader(void *ctx, const struct msg_attachment *a, int64_t off, void *buf,
                              size_t len, struct err *e)
{
    (void)ctx, (void)a, (void)off, (void)buf, (void)len;
    return err_set(e, EX_IOERR, "blob gone");
}

static void add_att(struct message *m, const char *name, const char *type, size_t size)
{
    struct msg_attachment *a = message_add_attachment(m);
    a->name = xstrdup(name);
    a->content_type = type ? xstrdup(type) : NULL;
    a->size = (int64_t)size;
    a->data = xmalloc(size + 1);
    a->data_len = size;
    for (size_t i = 0; i < size; i++)
        a->data[i] = (unsigned char)((i * 131 + 7) ^ (i >> 8)); /* every byte value */
}

static struct message *test_message(void)
{
    struct message *m = message_new();
    struct err e = {0};
    m->area = xstrdup("ppr");
    m->subject = xstrdup(SUBJECT);
    m->text = xstrdup("Text body");
    m->html = xstrdup("<p>Sehr geehrte Frau Groß, 🛫 ÄÖÜ</p>");
    assert_int_equal(message_add_rcpt(m, RCPT_TO, NAME " <baerbel@example.org>", &e), 0);
    assert_int_equal(message_add_rcpt(m, RCPT_TO, "kunde@example.org", &e), 0);
    assert_int_equal(message_add_rcpt(m, RCPT_CC, "cc@example.org", &e), 0);
    assert_int_equal(message_add_rcpt(m, RCPT_BCC, "Geheim <bcc@example.org>", &e), 0);
    assert_int_equal(message_add_header(m, "X-Airport-Ref", "INV-2026-0042 – Ü", &e), 0);
    assert_int_equal(message_add_header(m, "Keywords", "not an X- header", &e), 0);
    return m;
}

static cJSON *parse(const char *s, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(s, len);
    assert_non_null(j);
    return j;
}

static const char *str_at(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static void check_rcpt(const cJSON *arr, int i, const char *addr, const char *name)
{
    const cJSON *r = cJSON_GetArrayItem(arr, i);
    assert_non_null(r);
    const cJSON *ea = cJSON_GetObjectItemCaseSensitive(r, "emailAddress");
    assert_string_equal(str_at(ea, "address"), addr);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(ea, "name");
    if (name)
        assert_string_equal(n->valuestring, name);
    else
        assert_null(n);
}

static void test_sendmail_fields(void **state)
{
    (void)state;
    struct profile p = test_profile();
    struct message *m = test_message();
    add_att(m, "Rechnung Größe.pdf", "application/pdf", 10000);
    add_att(m, "leer.txt", NULL, 0);
    unsigned char plan[2];
    assert_false(graph_json_plan(&p, m, plan));
    char *out = NULL;
    size_t len = 0;
    int calls = 0;
    struct err e = {0};
    assert_int_equal(graph_json_sendmail(&p, m, plan, short_reader, &calls, &out, &len, &e), 0);
    assert_true(calls > 10000 / 777);
    cJSON *root = parse(out, len);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "saveToSentItems")));
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "message");
    assert_string_equal(str_at(msg, "subject"), SUBJECT);
    assert_null(cJSON_GetObjectItemCaseSensitive(msg, "from")); /* the mailbox's own name */
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(msg, "body");
    assert_string_equal(str_at(body, "contentType"), "HTML");
    assert_string_equal(str_at(body, "content"), m->html);
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(msg, "toRecipients");
    assert_int_equal(cJSON_GetArraySize(to), 2);
    check_rcpt(to, 0, "baerbel@example.org", NAME);
    check_rcpt(to, 1, "kunde@example.org", NULL);
    check_rcpt(cJSON_GetObjectItemCaseSensitive(msg, "ccRecipients"), 0, "cc@example.org", NULL);
    check_rcpt(cJSON_GetObjectItemCaseSensitive(msg, "bccRecipients"), 0, "bcc@example.org",
               "Geheim");
    check_rcpt(cJSON_GetObjectItemCaseSensitive(msg, "replyTo"), 0, "buchhaltung@airport.example",
               "Buchhaltung");
    const cJSON *hdrs = cJSON_GetObjectItemCaseSensitive(msg, "internetMessageHeaders");
    assert_int_equal(cJSON_GetArraySize(hdrs), 1); /* Keywords is not sent */
    assert_string_equal(str_at(cJSON_GetArrayItem(hdrs, 0), "name"), "X-Airport-Ref");
    assert_string_equal(str_at(cJSON_GetArrayItem(hdrs, 0), "value"), "INV-2026-0042 – Ü");

    const cJSON *atts = cJSON_GetObjectItemCaseSensitive(msg, "attachments");
    assert_int_equal(cJSON_GetArraySize(atts), 2);
    const cJSON *a0 = cJSON_GetArrayItem(atts, 0);
    assert_string_equal(str_at(a0, "@odata.type"), "#microsoft.graph.fileAttachment");
    assert_string_equal(str_at(a0, "name"), "Rechnung Größe.pdf");
    assert_string_equal(str_at(a0, "contentType"), "application/pdf");
    const char *b64 = str_at(a0, "contentBytes");
    unsigned char *dec = NULL;
    size_t declen = 0, where = 0;
    assert_int_equal(b64decode(b64, strlen(b64), &dec, &declen, &where), 0);
    assert_int_equal(declen, 10000);
    assert_memory_equal(dec, m->atts[0].data, 10000);
    free(dec);
    const cJSON *a1 = cJSON_GetArrayItem(atts, 1);
    assert_string_equal(str_at(a1, "contentType"), "application/octet-stream");
    assert_string_equal(str_at(a1, "contentBytes"), "");
    cJSON_Delete(root);
    free(out);
    message_free(m);
}

static void test_text_body_own_reply_to_header_cap(void **state)
{
    (void)state;
    struct profile p = test_profile();
    p.m365_save_to_sent = true;
    struct message *m = test_message();
    free(m->html);
    m->html = NULL;
    m->reply_to = xstrdup("Zoë <zoe@example.org>");
    struct err e = {0};
    for (int i = 0; i < 7; i++) {
        char name[32];
        snprintf(name, sizeof name, "x-extra-%d", i);
        assert_int_equal(message_add_header(m, name, "v", &e), 0);
    }
    unsigned char plan[1];
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(graph_json_sendmail(&p, m, plan, short_reader, NULL, &out, &len, &e), 0);
    cJSON *root = parse(out, len);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "saveToSentItems")));
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "message");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(msg, "body");
    assert_string_equal(str_at(body, "contentType"), "Text");
    assert_string_equal(str_at(body, "content"), "Text body");
    check_rcpt(cJSON_GetObjectItemCaseSensitive(msg, "replyTo"), 0, "zoe@example.org", "Zoë");
    const cJSON *hdrs = cJSON_GetObjectItemCaseSensitive(msg, "internetMessageHeaders");
    assert_int_equal(cJSON_GetArraySize(hdrs), 5); /* Graph's maximum */
    assert_null(cJSON_GetObjectItemCaseSensitive(msg, "attachments"));
    cJSON_Delete(root);
    free(out);
    message_free(m);
}

static void test_no_custom_headers_no_list(void **state)
{
    (void)state;
    struct profile p = test_profile();
    p.reply_to = NULL;
    struct message *m = message_new();
    struct err e = {0};
    m->subject = xstrdup("s");
    m->text = xstrdup("t");
    assert_int_equal(message_add_rcpt(m, RCPT_BCC, "a@example.org", &e), 0);
    unsigned char plan[1];
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(graph_json_draft(&p, m, plan, short_reader, NULL, &out, &len, &e), 0);
    cJSON *msg = parse(out, len);
    assert_null(cJSON_GetObjectItemCaseSensitive(msg, "internetMessageHeaders"));
    assert_null(cJSON_GetObjectItemCaseSensitive(msg, "replyTo"));
    assert_null(cJSON_GetObjectItemCaseSensitive(msg, "toRecipients"));
    assert_string_equal(str_at(msg, "subject"), "s");
    cJSON_Delete(msg);
    free(out);
    message_free(m);
}

/* After an SMTP attempt that reached some recipients, Graph gets only those
 * still waiting (its lists are the envelope). */
static void test_only_pending_recipients(void **state)
{
    (void)state;
    struct profile p = test_profile();
    struct message *m = test_message();
    m->rcpts[0].state = RCPT_SENT;   /* baerbel, to */
    m->rcpts[2].state = RCPT_FAILED; /* cc */
    unsigned char plan[1];
    char *out = NULL;
    size_t len = 0;
    struct err e = {0};
    assert_int_equal(graph_json_sendmail(&p, m, plan, short_reader, NULL, &out, &len, &e), 0);
    cJSON *root = parse(out, len);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "message");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(msg, "toRecipients");
    assert_int_equal(cJSON_GetArraySize(to), 1);
    check_rcpt(to, 0, "kunde@example.org", NULL);
    assert_null(cJSON_GetObjectItemCaseSensitive(msg, "ccRecipients"));
    check_rcpt(cJSON_GetObjectItemCaseSensitive(msg, "bccRecipients"), 0, "bcc@example.org",
               "Geheim");
    cJSON_Delete(root);
    free(out);
    message_free(m);
}

static void test_reader_error(void **state)
{
    (void)state;
    struct profile p = test_profile();
    struct message *m = test_message();
    add_att(m, "a.bin", NULL, 100);
    unsigned char plan[1];
    char *out = NULL;
    size_t len = 0;
    struct err e = {0};
    assert_false(graph_json_plan(&p, m, plan));
    assert_int_equal(graph_json_sendmail(&p, m, plan, failing_reader, NULL, &out, &len, &e), -1);
    assert_non_null(strstr(e.msg, "blob gone"));
    assert_null(out);
    message_free(m);
}

/* Sizes only: the plan never reads bytes. */
static void sized_att(struct message *m, const char *name, int64_t size)
{
    struct msg_attachment *a = message_add_attachment(m);
    a->name = xstrdup(name);
    a->size = size;
}

static void test_plan(void **state)
{
    (void)state;
    struct profile p = test_profile();
    struct message *m = test_message();
    sized_att(m, "small", 2000000); /* 2.67 MB of base64: fits alone */
    unsigned char plan[8];
    assert_false(graph_json_plan(&p, m, plan));
    assert_int_equal(plan[0], GA_SENDMAIL);
    sized_att(m, "second", 1000000); /* together over 4 MB */
    sized_att(m, "big", 5 * 1000 * 1000);
    sized_att(m, "third", 1000000);
    sized_att(m, "edge", (3 << 20) - 1); /* under 3 MiB: upload sessions refuse it */
    sized_att(m, "three", 3 << 20);
    assert_true(graph_json_plan(&p, m, plan));
    assert_int_equal(plan[0], GA_DRAFT);
    assert_int_equal(plan[1], GA_POST); /* no room left in the draft */
    assert_int_equal(plan[2], GA_UPLOAD);
    assert_int_equal(plan[3], GA_POST);
    assert_int_equal(plan[4], GA_POST);
    assert_int_equal(plan[5], GA_UPLOAD);
    message_free(m);

    /* A body that alone is near the limit pushes even a small attachment out. */
    m = test_message();
    free(m->html);
    m->html = xmalloc(3999001);
    memset(m->html, 'a', 3999000);
    m->html[3999000] = '\0';
    sized_att(m, "tiny", 100);
    assert_true(graph_json_plan(&p, m, plan));
    assert_int_equal(plan[0], GA_POST);
    message_free(m);
}

static void test_upload_session_body(void **state)
{
    (void)state;
    struct msg_attachment a = {0};
    a.name = "Großes Archiv 📦.zip";
    a.content_type = "application/zip";
    a.size = 5242880;
    size_t len = 0;
    char *s = graph_json_upload_session(&a, &len);
    cJSON *root = parse(s, len);
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "AttachmentItem");
    assert_string_equal(str_at(it, "attachmentType"), "file");
    assert_string_equal(str_at(it, "name"), a.name);
    assert_string_equal(str_at(it, "contentType"), "application/zip");
    assert_int_equal((int64_t)cJSON_GetObjectItemCaseSensitive(it, "size")->valuedouble, 5242880);
    cJSON_Delete(root);
    free(s);
    assert_int_equal(GRAPH_CHUNK % (320 * 1024), 0);
    assert_true(GRAPH_CHUNK < 4000000);
}

static void test_parse_graph_error(void **state)
{
    (void)state;
    const char *b = "{\"error\":{\"code\":\"ErrorInvalidRecipients\",\"message\":\"At least one "
                    "recipient is not valid.\\r\\nsecond line\",\"innerError\":{\"request-id\":"
                    "\"7f3c-11\",\"date\":\"2026-01-01T00:00:00\"}}}";
    char *code, *msg, *rid;
    graph_json_parse_error(b, strlen(b), &code, &msg, &rid);
    assert_string_equal(code, "ErrorInvalidRecipients");
    assert_string_equal(msg, "At least one recipient is not valid.");
    assert_string_equal(rid, "7f3c-11");
    free(code), free(msg), free(rid);
    graph_json_parse_error("not json", 8, &code, &msg, &rid);
    assert_null(code), assert_null(msg), assert_null(rid);
    graph_json_parse_error(NULL, 0, &code, &msg, &rid);
    assert_null(code);
}

static void test_parse_token(void **state)
{
    (void)state;
    const char *ok = "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,"
                     "\"access_token\":\"eyJ0eXAi.abc.def\"}";
    char *tok = NULL;
    int64_t exp = 0;
    assert_int_equal(graph_json_parse_token(ok, strlen(ok), &tok, &exp), 0);
    assert_string_equal(tok, "eyJ0eXAi.abc.def");
    assert_int_equal(exp, 3599);
    free(tok);
    const char *str = "{\"expires_in\":\"5\",\"access_token\":\"x\"}";
    assert_int_equal(graph_json_parse_token(str, strlen(str), &tok, &exp), 0);
    assert_int_equal(exp, 5);
    free(tok);
    /* Beyond a day is a day; huge, infinite or negative lifetimes never reach
     * an integer conversion (the sanitizer build checks float casts). */
    const char *lifetimes[][2] = {
        {"86401", "86400"},    {"1e300", "86400"}, {"1e999", "86400"}, {"\"1e300\"", "86400"},
        {"\"3599 \"", "3599"}, {"3599.9", "3599"}, {"0.5", "0"},       {"-1e300", "0"},
        {"\"-5\"", "0"},       {"\"soon\"", "0"},  {"null", "0"},
    };
    for (size_t i = 0; i < sizeof lifetimes / sizeof lifetimes[0]; i++) {
        char doc[128];
        snprintf(doc, sizeof doc, "{\"expires_in\":%s,\"access_token\":\"x\"}", lifetimes[i][0]);
        long long want = atoll(lifetimes[i][1]);
        exp = -1;
        assert_int_equal(graph_json_parse_token(doc, strlen(doc), &tok, &exp), want > 0 ? 0 : -1);
        assert_int_equal(want > 0 ? exp : 0, want);
        free(tok);
        tok = NULL;
    }
    const char *none = "{\"expires_in\":5}";
    assert_int_equal(graph_json_parse_token(none, strlen(none), &tok, &exp), -1);
    assert_null(tok);

    const char *bad =
        "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000222: The provided "
        "client secret keys for app '1111' are expired.\\r\\nTrace ID: t-1\\r\\nCorrelation ID: "
        "c-1\",\"error_codes\":[7000222],\"trace_id\":\"t-1\",\"correlation_id\":\"c-1\"}";
    char *error, *msg, *trace, *corr;
    long aadsts = 0;
    graph_json_parse_token_error(bad, strlen(bad), &error, &msg, &aadsts, &trace, &corr);
    assert_string_equal(error, "invalid_client");
    assert_string_equal(msg, "AADSTS7000222: The provided client secret keys for app '1111' are "
                             "expired.");
    assert_int_equal(aadsts, 7000222);
    assert_string_equal(trace, "t-1");
    assert_string_equal(corr, "c-1");
    free(error), free(msg), free(trace), free(corr);
    const char *huge = "{\"error\":\"invalid_client\",\"error_codes\":[1e300]}";
    graph_json_parse_token_error(huge, strlen(huge), &error, &msg, &aadsts, &trace, &corr);
    assert_int_equal(aadsts, 0);
    free(error), free(msg), free(trace), free(corr);
}

static void test_parse_ids(void **state)
{
    (void)state;
    const char *d = "{\"id\":\"AAMkAD=\",\"subject\":\"x\"}";
    char *id = graph_json_get_string(d, strlen(d), "id");
    assert_string_equal(id, "AAMkAD=");
    free(id);
    assert_null(graph_json_get_string(d, strlen(d), "uploadUrl"));
    const char *u = "{\"ExpirationDateTime\":\"x\",\"nextExpectedRanges\":[\"3276800\"]}";
    assert_int_equal(graph_json_next_range(u, strlen(u)), 3276800);
    const char *f = "{\"nextExpectedRanges\":[\"0-\"]}";
    assert_int_equal(graph_json_next_range(f, strlen(f)), 0);
    assert_int_equal(graph_json_next_range("{}", 2), -1);
}

static void test_jwt_roles(void **state)
{
    (void)state;
    /* {"alg":"none"} . {"aud":"https://graph.microsoft.com","roles":["Mail.Send","Mail.ReadWrite"]}
     */
    const char *jwt = "eyJhbGciOiJub25lIn0."
                      "eyJhdWQiOiJodHRwczovL2dyYXBoLm1pY3Jvc29mdC5jb20iLCJyb2xlcyI6WyJNYWlsLlNlbmQi"
                      "LCJNYWlsLlJlYWRXcml0ZSJdfQ.sig";
    char *roles = NULL;
    assert_int_equal(graph_json_jwt_roles(jwt, &roles), 0);
    assert_string_equal(roles, "Mail.Send Mail.ReadWrite");
    free(roles);
    /* {"aud":"x"}: a JWT without roles */
    assert_int_equal(graph_json_jwt_roles("e30.eyJhdWQiOiJ4In0.s", &roles), 0);
    assert_string_equal(roles, "");
    free(roles);
    assert_int_equal(graph_json_jwt_roles("opaque-random-token", &roles), -1);
    assert_null(roles);
    assert_int_equal(graph_json_jwt_roles("a.!!!.b", &roles), -1);
}

/* The mailbox in the path: percent-encoded, but "@" as it is (RFC 3986 pchar). */
static void test_users_url(void **state)
{
    (void)state;
    char *u = graph_users_url("https://graph.example", "ppr@airport.example");
    assert_string_equal(u, "https://graph.example/v1.0/users/ppr@airport.example");
    free(u);
    u = graph_users_url("https://graph.example", "a+b/c%40 d@x.example");
    assert_string_equal(u, "https://graph.example/v1.0/users/a%2Bb%2Fc%2540%20d@x.example");
    free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sendmail_fields),
        cmocka_unit_test(test_text_body_own_reply_to_header_cap),
        cmocka_unit_test(test_no_custom_headers_no_list),
        cmocka_unit_test(test_only_pending_recipients),
        cmocka_unit_test(test_reader_error),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_upload_session_body),
        cmocka_unit_test(test_parse_graph_error),
        cmocka_unit_test(test_parse_token),
        cmocka_unit_test(test_parse_ids),
        cmocka_unit_test(test_jwt_roles),
        cmocka_unit_test(test_users_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
