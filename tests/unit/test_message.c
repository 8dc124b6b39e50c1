/* test_message — message_validate table, adders, rcpt kinds, ownership. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "message.h"
#include "xmalloc.h"

/* A valid message with every kind of field set. */
static struct message *base(void)
{
    struct err e = {0};
    struct message *m = message_new();
    m->area = xstrdup("invoice");
    m->ref = xstrdup("invoice-2026-0042");
    m->subject = xstrdup("Rechnung 2026-0042 für Bärbel 😀");
    m->text = xstrdup("Sehr geehrte Damen und Herren,\n...");
    m->html = xstrdup("<p>Sehr geehrte Damen und Herren</p>");
    m->reply_to = xstrdup("Buchhaltung <buchhaltung@airport.example>");
    assert_int_equal(message_add_rcpt(m, RCPT_TO, "Bärbel Groß <b@example.org>", &e), 0);
    assert_int_equal(message_add_rcpt(m, RCPT_CC, "cc@example.org", &e), 0);
    assert_int_equal(message_add_rcpt(m, RCPT_BCC, "\"Audit, Team\" <audit@example.org>", &e), 0);
    assert_int_equal(message_add_header(m, "X-Airport-Ref", "INV-2026-0042", &e), 0);
    struct msg_attachment *a = message_add_attachment(m);
    a->name = xstrdup("Rechnung 2026-0042.pdf");
    a->content_type = xstrdup("application/pdf");
    a->data = (unsigned char *)xstrdup("%PDF");
    a->data_len = 4;
    a->size = 4;
    return m;
}

static void set(char **field, const char *v)
{
    free(*field);
    *field = v ? xstrdup(v) : NULL;
}

/* Each mutation breaks a valid message in one way. */
struct mutation {
    const char *label;
    void (*apply)(struct message *m);
    const char *why; /* substring of the error; NULL: still valid */
};

#define MUT(fn, body)                                                                              \
    static void fn(struct message *m)                                                              \
    {                                                                                              \
        body;                                                                                      \
    }

MUT(m_ok, (void)m)
MUT(m_no_area, set(&m->area, NULL))
MUT(m_bad_area, set(&m->area, "in voice"))
MUT(m_long_area, set(&m->area, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"))
MUT(m_no_subject, set(&m->subject, NULL))
MUT(m_empty_subject, set(&m->subject, ""))
MUT(m_subject_crlf, set(&m->subject, "Hi\r\nBcc: evil@example.org"))
MUT(m_subject_lf, set(&m->subject, "Hi\nthere"))
MUT(m_subject_ctrl, set(&m->subject, "Hi\x1b[31m"))
MUT(m_subject_tab, set(&m->subject, "Hi\tthere"))
MUT(m_subject_utf8, set(&m->subject, "Gr\xfc\xdf"))
MUT(m_subject_huge, {
    free(m->subject);
    m->subject = xmalloc(64 * 1024 + 2);
    memset(m->subject, 's', 64 * 1024 + 1);
    m->subject[64 * 1024 + 1] = '\0';
})
MUT(m_subject_max, {
    free(m->subject);
    m->subject = xmalloc(64 * 1024 + 1);
    memset(m->subject, 's', 64 * 1024);
    m->subject[64 * 1024] = '\0';
})
MUT(m_ref_lf, set(&m->ref, "r\n1"))
MUT(m_no_ref, set(&m->ref, NULL))
MUT(m_no_body, {
    set(&m->text, NULL);
    set(&m->html, NULL);
})
MUT(m_text_only, set(&m->html, NULL))
MUT(m_html_only, set(&m->text, NULL))
MUT(m_text_utf8, set(&m->text, "ok\xc3"))
MUT(m_html_utf8, set(&m->html, "\xed\xa0\x80"))
MUT(m_text_lf_ok, set(&m->text, "a\n.\nb\rc\r\n"))
MUT(m_reply_bad, set(&m->reply_to, "a@b, c@d"))
MUT(m_reply_crlf, set(&m->reply_to, "a@b.example\r\nX: y"))
MUT(m_msgid_ok, set(&m->message_id, "<abc.1@airport.example>"))
MUT(m_msgid_bad, set(&m->message_id, "abc@airport.example"))
MUT(m_msgid_space, set(&m->message_id, "<a b@airport.example>"))
MUT(m_no_rcpts, {
    for (size_t i = 0; i < m->nrcpts; i++) {
        free(m->rcpts[i].name);
        free(m->rcpts[i].addr);
    }
    m->nrcpts = 0;
})
MUT(m_bcc_only, {
    m->rcpts[0].kind = RCPT_BCC;
    m->rcpts[1].kind = RCPT_BCC;
})
MUT(m_rcpt_addr_lf, set(&m->rcpts[0].addr, "b@example.org\nRCPT TO:<x@evil.example>"))
MUT(m_rcpt_addr_named, set(&m->rcpts[0].addr, "Name <b@example.org>"))
MUT(m_rcpt_addr_bad, set(&m->rcpts[1].addr, "no-at-sign"))
MUT(m_rcpt_name_cr, set(&m->rcpts[0].name, "Bärbel\rGroß"))
MUT(m_rcpt_name_utf8, set(&m->rcpts[0].name, "B\xe4rbel"))
MUT(m_rcpt_kind, m->rcpts[0].kind = (enum rcpt_kind)7)
MUT(m_rcpt_null, set(&m->rcpts[2].addr, NULL))
MUT(m_hdr_reserved, set(&m->hdrs[0].name, "Bcc"))
MUT(m_hdr_reserved_case, set(&m->hdrs[0].name, "content-type"))
MUT(m_hdr_reserved_mid, set(&m->hdrs[0].name, "MESSAGE-ID"))
MUT(m_hdr_received, set(&m->hdrs[0].name, "Received"))
MUT(m_hdr_colon, set(&m->hdrs[0].name, "X-A:B"))
MUT(m_hdr_space, set(&m->hdrs[0].name, "X A"))
MUT(m_hdr_empty, set(&m->hdrs[0].name, ""))
MUT(m_hdr_utf8name, set(&m->hdrs[0].name, "X-Grüße"))
MUT(m_hdr_value_crlf, set(&m->hdrs[0].value, "a\r\nBcc: evil@example.org"))
MUT(m_hdr_value_utf8, set(&m->hdrs[0].value, "Grüße"))
MUT(m_hdr_value_ctrl, set(&m->hdrs[0].value, "a\x01"))
MUT(m_hdr_value_word, {
    free(m->hdrs[0].value);
    m->hdrs[0].value = xmalloc(902);
    memset(m->hdrs[0].value, 'w', 901);
    m->hdrs[0].value[901] = '\0';
})
MUT(m_hdr_value_word_utf8, {
    free(m->hdrs[0].value);
    m->hdrs[0].value = xmalloc(904);
    memset(m->hdrs[0].value, 'w', 901);
    strcpy(m->hdrs[0].value + 901, "ä");
})
MUT(m_att_slash, set(&m->atts[0].name, "../etc/passwd"))
MUT(m_att_backslash, set(&m->atts[0].name, "a\\b.pdf"))
MUT(m_att_dot, set(&m->atts[0].name, "."))
MUT(m_att_dotdot, set(&m->atts[0].name, ".."))
MUT(m_att_empty, set(&m->atts[0].name, ""))
MUT(m_att_null, set(&m->atts[0].name, NULL))
MUT(m_att_ctrl, set(&m->atts[0].name, "a\tb.pdf"))
MUT(m_att_lf, set(&m->atts[0].name, "a\nb.pdf"))
MUT(m_att_utf8_ok, set(&m->atts[0].name, "Größe 😀.pdf"))
MUT(m_att_type_bad, set(&m->atts[0].content_type, "pdf"))
MUT(m_att_type_param, set(&m->atts[0].content_type, "text/csv; charset=utf-8"))
MUT(m_att_type_crlf, set(&m->atts[0].content_type, "text/plain\r\nX: y"))
MUT(m_att_type_null, set(&m->atts[0].content_type, NULL))
MUT(m_att_type_ok, set(&m->atts[0].content_type, "application/vnd.ms-excel"))
MUT(m_att_both, m->atts[0].path = xstrdup("/tmp/x.pdf"))
MUT(m_att_negative, m->atts[0].size = -1)

static const struct mutation mutations[] = {
    {"valid", m_ok, NULL},
    {"no area", m_no_area, "area"},
    {"area with space", m_bad_area, "area"},
    {"area too long", m_long_area, "area"},
    {"no subject", m_no_subject, "subject: is missing"},
    {"empty subject", m_empty_subject, NULL},
    {"subject CRLF", m_subject_crlf, "subject: contains a line break"},
    {"subject LF", m_subject_lf, "subject: contains a line break"},
    {"subject control", m_subject_ctrl, "subject: contains a control"},
    {"subject tab", m_subject_tab, NULL},
    {"subject latin1", m_subject_utf8, "subject: is not valid UTF-8"},
    {"subject 64 KiB + 1", m_subject_huge, "subject: is too long"},
    {"subject 64 KiB", m_subject_max, NULL},
    {"ref LF", m_ref_lf, "ref:"},
    {"no ref", m_no_ref, NULL},
    {"no body", m_no_body, "body"},
    {"text only", m_text_only, NULL},
    {"html only", m_html_only, NULL},
    {"text not UTF-8", m_text_utf8, "text:"},
    {"html not UTF-8", m_html_utf8, "html:"},
    {"text with bare CR/LF", m_text_lf_ok, NULL},
    {"reply-to two", m_reply_bad, "reply-to:"},
    {"reply-to CRLF", m_reply_crlf, "reply-to:"},
    {"message-id ok", m_msgid_ok, NULL},
    {"message-id no <>", m_msgid_bad, "message-id"},
    {"message-id space", m_msgid_space, "message-id"},
    {"no recipients", m_no_rcpts, "recipients"},
    {"bcc only", m_bcc_only, NULL},
    {"rcpt LF", m_rcpt_addr_lf, "to:"},
    {"rcpt named", m_rcpt_addr_named, "not a bare address"},
    {"rcpt no @", m_rcpt_addr_bad, "cc:"},
    {"rcpt name CR", m_rcpt_name_cr, "display name contains a line break"},
    {"rcpt name latin1", m_rcpt_name_utf8, "UTF-8"},
    {"rcpt kind", m_rcpt_kind, "kind"},
    {"rcpt NULL", m_rcpt_null, "bcc:"},
    {"header Bcc", m_hdr_reserved, "writes this header itself"},
    {"header content-type", m_hdr_reserved_case, "writes this header itself"},
    {"header MESSAGE-ID", m_hdr_reserved_mid, "writes this header itself"},
    {"header Received", m_hdr_received, "writes this header itself"},
    {"header colon", m_hdr_colon, "header name"},
    {"header space", m_hdr_space, "header name"},
    {"header empty", m_hdr_empty, "header name"},
    {"header UTF-8 name", m_hdr_utf8name, "header name"},
    {"header value CRLF", m_hdr_value_crlf, "line break"},
    {"header value UTF-8", m_hdr_value_utf8, NULL},
    {"header value control", m_hdr_value_ctrl, "control"},
    {"header value long word", m_hdr_value_word, "900"},
    {"header value long word, non-ASCII", m_hdr_value_word_utf8, NULL},
    {"attachment path", m_att_slash, "'/'"},
    {"attachment backslash", m_att_backslash, "'/' or '\\'"},
    {"attachment .", m_att_dot, "\".\""},
    {"attachment ..", m_att_dotdot, "\"..\""},
    {"attachment empty", m_att_empty, "empty"},
    {"attachment NULL", m_att_null, "missing"},
    {"attachment tab", m_att_ctrl, "control"},
    {"attachment LF", m_att_lf, "line break"},
    {"attachment UTF-8", m_att_utf8_ok, NULL},
    {"type no slash", m_att_type_bad, "type/subtype"},
    {"type params", m_att_type_param, "type/subtype"},
    {"type CRLF", m_att_type_crlf, "type/subtype"},
    {"type NULL", m_att_type_null, NULL},
    {"type vnd", m_att_type_ok, NULL},
    {"path and data", m_att_both, "both"},
    {"negative size", m_att_negative, "negative"},
};

static void test_validate_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof mutations / sizeof mutations[0]; i++) {
        const struct mutation *c = &mutations[i];
        struct message *m = base();
        c->apply(m);
        struct err e = {0};
        int rc = message_validate(m, &e);
        if (c->why == NULL && rc != 0)
            fail_msg("%s: refused: %s", c->label, e.msg);
        if (c->why != NULL) {
            if (rc == 0)
                fail_msg("%s: accepted", c->label);
            assert_int_equal(e.code, EX_DATAERR);
            if (strstr(e.msg, c->why) == NULL)
                fail_msg("%s: message \"%s\" lacks \"%s\"", c->label, e.msg, c->why);
        }
        message_free(m);
    }
}

static void test_add_rcpt(void **state)
{
    (void)state;
    struct message *m = message_new();
    struct err e = {0};
    assert_int_equal(message_add_rcpt(m, RCPT_TO, "\"Name, Jr.\" <a@b.example>", &e), 0);
    assert_string_equal(m->rcpts[0].name, "Name, Jr.");
    assert_string_equal(m->rcpts[0].addr, "a@b.example");
    assert_int_equal(m->rcpts[0].kind, RCPT_TO);
    assert_int_equal(message_add_rcpt(m, RCPT_BCC, "a@b, c@d", &e), -1);
    assert_int_equal(e.code, EX_DATAERR);
    assert_true(strncmp(e.msg, "bcc: ", 5) == 0);
    assert_int_equal(message_add_rcpt(m, (enum rcpt_kind)9, "a@b.example", &e), -1);
    assert_int_equal(m->nrcpts, 1);
    message_free(m);
}

static void test_add_header(void **state)
{
    (void)state;
    struct message *m = message_new();
    struct err e = {0};
    assert_int_equal(message_add_header(m, "X-Airport-Ref", "INV-1", &e), 0);
    assert_int_equal(message_add_header(m, "List-Unsubscribe", "<mailto:u@example.org>", &e), 0);
    assert_int_equal(message_add_header(m, "Subject", "x", &e), -1);
    assert_non_null(strstr(e.msg, "Subject"));
    assert_int_equal(message_add_header(m, "X-Evil", "x\r\nBcc: y@example.org", &e), -1);
    assert_int_equal(message_add_header(m, "Content-Transfer-Encoding", "8bit", &e), -1);
    assert_int_equal(message_add_header(m, NULL, "x", &e), -1);
    assert_int_equal(m->nhdrs, 2);
    for (int i = 2; i < 100; i++)
        assert_int_equal(message_add_header(m, "X-Many", "v", &e), 0);
    assert_int_equal(message_add_header(m, "X-Many", "v", &e), -1);
    assert_non_null(strstr(e.msg, "100"));
    message_free(m);
}

static void test_too_many_rcpts(void **state)
{
    (void)state;
    struct message *m = base();
    struct err e = {0};
    while (m->nrcpts < 10000)
        assert_int_equal(message_add_rcpt(m, RCPT_BCC, "x@example.org", &e), 0);
    assert_int_equal(message_validate(m, &e), 0);
    assert_int_equal(message_add_rcpt(m, RCPT_BCC, "x@example.org", &e), -1);
    assert_non_null(strstr(e.msg, "10000"));
    message_free(m);
}

static void test_rcpt_kinds(void **state)
{
    (void)state;
    assert_string_equal(rcpt_kind_name(RCPT_TO), "to");
    assert_string_equal(rcpt_kind_name(RCPT_CC), "cc");
    assert_string_equal(rcpt_kind_name(RCPT_BCC), "bcc");
    assert_int_equal(rcpt_kind_parse("to"), RCPT_TO);
    assert_int_equal(rcpt_kind_parse("CC"), RCPT_CC);
    assert_int_equal(rcpt_kind_parse("bcc"), RCPT_BCC);
    assert_int_equal(rcpt_kind_parse("from"), -1);
    assert_int_equal(rcpt_kind_parse(NULL), -1);
}

static void test_free_null_and_empty(void **state)
{
    (void)state;
    message_free(NULL);
    struct message *m = message_new();
    struct err e = {0};
    assert_int_equal(message_validate(m, &e), -1);
    assert_non_null(strstr(e.msg, "area"));
    assert_int_equal(message_validate(NULL, &e), -1);
    struct msg_attachment *a = message_add_attachment(m);
    assert_null(a->name);
    assert_int_equal(a->id, 0);
    assert_int_equal(m->natts, 1);
    message_free(m);
}

/* One RCPT per mailbox: the same address in To and Cc, in any case of its
 * domain, is named once, by its first pending occurrence; local parts are
 * compared as written (RFC 5321 leaves their case to the server). */
static void test_mark_same(void **state)
{
    (void)state;
    struct message *m = message_new();
    struct err e = {0};
    const char *in[][2] = {
        {"to", "b@x.example"},  {"to", "a@x.example"}, {"cc", "a@X.Example"},
        {"bcc", "A@x.example"}, {"cc", "c@y.example"}, {"bcc", "a@x.example"},
        {"to", "c@y.example"},
    };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        assert_int_equal(
            message_add_rcpt(m, (enum rcpt_kind)rcpt_kind_parse(in[i][0]), in[i][1], &e), 0);
    m->rcpts[4].state = RCPT_SENT; /* not pending: the later c@y stands alone */
    message_mark_same(m);
    const size_t want[] = {SIZE_MAX, SIZE_MAX, 1, SIZE_MAX, SIZE_MAX, 1, SIZE_MAX};
    for (size_t i = 0; i < m->nrcpts; i++)
        if (m->rcpts[i].same_as != want[i])
            fail_msg("recipient %zu (%s): same_as %zu, wanted %zu", i, m->rcpts[i].addr,
                     m->rcpts[i].same_as, want[i]);
    message_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_table),      cmocka_unit_test(test_add_rcpt),
        cmocka_unit_test(test_mark_same),           cmocka_unit_test(test_add_header),
        cmocka_unit_test(test_too_many_rcpts),      cmocka_unit_test(test_rcpt_kinds),
        cmocka_unit_test(test_free_null_and_empty),
    };
    return cmocka_run_group_tests_name("message", tests, NULL, NULL);
}
