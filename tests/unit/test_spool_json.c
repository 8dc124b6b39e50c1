/* test_spool_json — the JSON enqueue document (spool/json_enqueue.c):
 * SPEC §4's example parses into the right message; unknown and repeated
 * fields, wrong types and bad values are EX_DATAERR naming the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "json_enqueue.h"
#include "message.h"

static const char spec_doc[] =
    "{\n"
    "  \"area\": \"invoice\",\n"
    "  \"to\": [\"kunde@example.org\", {\"address\": \"b@example.org\", \"name\": \"Bärbel "
    "Groß\"}],\n"
    "  \"cc\": [], \"bcc\": [\"audit@example.org\"],\n"
    "  \"reply_to\": \"buchhaltung@airport.example\",\n"
    "  \"subject\": \"Rechnung 2026-0042\",\n"
    "  \"text\": \"Sehr geehrte Damen und Herren, ...\",\n"
    "  \"html\": \"<p>Sehr geehrte Damen und Herren, ...</p>\",\n"
    "  \"attachments\": [\n"
    "    {\"path\": \"/srv/out/2026-0042.pdf\", \"name\": \"Rechnung 2026-0042.pdf\", "
    "\"content_type\": \"application/pdf\"},\n"
    "    {\"content_base64\": \"YSxiCjEsMgo=\", \"name\": \"Positionen.csv\", \"content_type\": "
    "\"text/csv\"},\n"
    "    {\"path\": \"/srv/out/plan.pdf\"}\n"
    "  ],\n"
    "  \"headers\": {\"X-Airport-Ref\": \"INV-2026-0042\"},\n"
    "  \"ref\": \"invoice-2026-0042\",\n"
    "  \"not_before\": \"2026-12-05T06:00:00+01:00\",\n"
    "  \"expires\": \"2026-12-05T09:30:00+01:00\",\n"
    "  \"priority\": 5\n"
    "}\n";

static void test_spec_document(void **state)
{
    (void)state;
    struct message *m = NULL;
    struct err e = {0};
    if (json_enqueue_parse(spec_doc, strlen(spec_doc), &m, &e) != 0)
        fail_msg("%s", e.msg);
    assert_string_equal(m->area, "invoice");
    assert_int_equal(m->nrcpts, 3);
    assert_string_equal(m->rcpts[0].addr, "kunde@example.org");
    assert_null(m->rcpts[0].name);
    assert_string_equal(m->rcpts[1].addr, "b@example.org");
    assert_string_equal(m->rcpts[1].name, "Bärbel Groß");
    assert_int_equal(m->rcpts[2].kind, RCPT_BCC);
    assert_string_equal(m->reply_to, "buchhaltung@airport.example");
    assert_string_equal(m->subject, "Rechnung 2026-0042");
    assert_non_null(m->text);
    assert_non_null(m->html);
    assert_int_equal(m->natts, 3);
    assert_string_equal(m->atts[0].path, "/srv/out/2026-0042.pdf");
    assert_string_equal(m->atts[0].name, "Rechnung 2026-0042.pdf");
    assert_int_equal(m->atts[1].data_len, 8);
    assert_memory_equal(m->atts[1].data, "a,b\n1,2\n", 8);
    assert_string_equal(m->atts[1].content_type, "text/csv");
    assert_string_equal(m->atts[2].name, "plan.pdf"); /* base name */
    assert_string_equal(m->atts[2].content_type, "application/pdf");
    assert_int_equal(m->nhdrs, 1);
    assert_string_equal(m->hdrs[0].name, "X-Airport-Ref");
    assert_string_equal(m->ref, "invoice-2026-0042");
    assert_int_equal(m->not_before, 1796446800);
    assert_int_equal(m->expires, 1796446800 + 3 * 3600 + 1800);
    assert_int_equal(m->priority, 5);
    assert_int_equal(message_validate(m, &e), 0);
    message_free(m);
}

/* Each document must fail with EX_DATAERR and a message containing needle. */
static void test_rejections(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *needle;
    } cases[] = {
        {"{\"area\":\"a\",\"bogus\":1}", "\"bogus\""},
        {"{\"area\":\"a\",\"Area\":\"b\"}", "\"Area\""},
        {"{\"area\":\"a\",\"area\":\"b\"}", "appears twice"},
        {"{\"area\":5}", "\"area\""},
        {"{\"to\":\"a@example.org\"}", "\"to\""},
        {"{\"to\":[5]}", "to[0]"},
        {"{\"cc\":[\"ok@example.org\",\"not an address\"]}", "cc[1]"},
        {"{\"to\":[{\"address\":\"a@example.org\",\"nam\":\"x\"}]}", "\"nam\""},
        {"{\"to\":[{\"name\":\"x\"}]}", "to[0].address"},
        {"{\"to\":[{\"address\":\"a@example.org\",\"name\":\"x\\r\\nBcc: y@z.org\"}]}",
         "to[0].name"},
        {"{\"to\":[\"X\\r\\nBcc: <a@example.org>\"]}", "to[0]"},
        {"{\"subject\":[\"x\"]}", "\"subject\""},
        {"{\"attachments\":{}}", "\"attachments\""},
        {"{\"attachments\":[{\"name\":\"x\"}]}", "attachments[0]"},
        {"{\"attachments\":[{\"path\":\"/a\",\"content_base64\":\"Zg==\",\"name\":\"x\"}]}",
         "attachments[0]"},
        {"{\"attachments\":[{\"content_base64\":\"Zg==\"}]}", "attachments[0].name"},
        {"{\"attachments\":[{\"content_base64\":\"Zg=\",\"name\":\"x\"}]}",
         "attachments[0].content_base64"},
        {"{\"attachments\":[{\"path\":\"/a\",\"size\":3}]}", "\"size\""},
        {"{\"headers\":[\"X-A: b\"]}", "\"headers\""},
        {"{\"headers\":{\"X-A\":1}}", "headers.X-A"},
        {"{\"headers\":{\"X-A\":\"b\\r\\nBcc: c@d.org\"}}", "headers.X-A"},
        {"{\"headers\":{\"From\":\"x@y.org\"}}", "headers.From"},
        {"{\"not_before\":\"2026-12-05T06:00:00\"}", "not_before"},
        {"{\"expires\":1796446800}", "expires"},
        {"{\"priority\":1.5}", "priority"},
        {"{\"priority\":\"1\"}", "priority"},
        {"{\"priority\":1e12}", "priority"},
        {"[1,2]", "must be an object"},
        /* null is "not given" for known fields only: a misspelt one is an error */
        {"{\"bc\":null}", "JSON field \"bc\": unknown"},
        {"{\"to, cc\":null}", "unknown"},
        {"{\"\":null}", "unknown"},
        {"{\"priorit\":null}", "unknown"},
        {"{\"area\": \"a\",\n \"to\": [}", "line 2"},
        {"", "syntax error"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct message *m = (struct message *)1;
        struct err e = {0};
        if (json_enqueue_parse(cases[i].doc, strlen(cases[i].doc), &m, &e) == 0)
            fail_msg("accepted %s", cases[i].doc);
        assert_null(m);
        assert_int_equal(e.code, EX_DATAERR);
        if (strstr(e.msg, cases[i].needle) == NULL)
            fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].doc, e.msg, cases[i].needle);
    }
}

static void test_nulls_are_absent(void **state)
{
    (void)state;
    const char *doc = "{\"area\":\"report\",\"to\":[\"a@example.org\"],\"subject\":\"s\","
                      "\"text\":\"t\",\"html\":null,\"ref\":null,\"priority\":null,"
                      "\"cc\":null,\"expires\":null}";
    struct message *m = NULL;
    struct err e = {0};
    if (json_enqueue_parse(doc, strlen(doc), &m, &e) != 0)
        fail_msg("%s", e.msg);
    assert_null(m->html);
    assert_null(m->ref);
    assert_int_equal(m->priority, 0);
    assert_int_equal(message_validate(m, &e), 0);
    message_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_document),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_nulls_are_absent),
    };
    return cmocka_run_group_tests_name("spool_json", tests, NULL, NULL);
}
