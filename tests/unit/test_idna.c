/* test_idna — the ASCII form of internationalized domains (daemon/idna.c)
 * through the real libcurl and libidn2, in the locale mailspoold sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <locale.h>
#include <stdio.h>

#include "idna.h"
#include "message.h"

static void expect_addr(const char *in, const char *want)
{
    char *out = NULL;
    struct err e = {0};
    if (idna_address(in, &out, &e) != 0)
        fail_msg("%s: %s", in, e.msg);
    if (want == NULL)
        assert_null(out);
    else
        assert_string_equal(out, want);
    free(out);
}

static void test_address(void **state)
{
    (void)state;
    expect_addr("a@buecher.example", NULL); /* ASCII: left alone */
    expect_addr("a@b\xc3\xbc"
                "cher.example",
                "a@xn--bcher-kva.example");
    /* UTS #46 mapping: the same A-label whatever the case. */
    expect_addr("a@B\xc3\xbc"
                "cher.Example",
                "a@xn--bcher-kva.example");
    /* The local part is never touched (it needs SMTPUTF8). */
    expect_addr("m\xc3\xbcller@b\xc3\xbc"
                "cher.example",
                "m\xc3\xbcller@xn--bcher-kva.example");
    expect_addr("m\xc3\xbcller@example.org", NULL);
    expect_addr("a@[192.0.2.1]", NULL);
    expect_addr("a@xn--bcher-kva.example", NULL);
}

static void test_invalid_domain(void **state)
{
    (void)state;
    char *out = NULL;
    struct err e = {0};
    /* IDNA2008 forbids a hyphen at the end of a label. */
    assert_int_equal(idna_address("a@\xc3\xbc-.example", &out, &e), -1);
    assert_null(out);
    assert_int_equal(e.code, EX_DATAERR);
    assert_non_null(strstr(e.msg, "no valid ASCII form"));
}

static void test_mailbox(void **state)
{
    (void)state;
    char *out = NULL;
    struct err e = {0};
    assert_int_equal(idna_mailbox("B\xc3\xbcro <b@b\xc3\xbcro.example>", &out, &e), 0);
    assert_string_equal(out, "B\xc3\xbcro <b@xn--bro-hoa.example>");
    free(out);
    assert_int_equal(idna_mailbox("b@b\xc3\xbcro.example", &out, &e), 0);
    assert_string_equal(out, "b@xn--bro-hoa.example");
    free(out);
    /* An '@' in a quoted name comes before the address's own. */
    assert_int_equal(idna_mailbox("\"x@y\" <b@b\xc3\xbcro.example>", &out, &e), 0);
    assert_string_equal(out, "\"x@y\" <b@xn--bro-hoa.example>");
    free(out);
    assert_int_equal(idna_mailbox("B\xc3\xbcro <b@example.org>", &out, &e), 0);
    assert_null(out);
}

struct refusals {
    size_t n, idx;
    char why[512];
};

static void note_refusal(void *ctx, size_t i, const char *why)
{
    struct refusals *r = ctx;
    r->n++;
    r->idx = i;
    snprintf(r->why, sizeof r->why, "%s", why);
}

#define UE "\xc3\xbc" /* ü */

static void test_message(void **state)
{
    (void)state;
    struct message *m = message_new();
    struct err e = {0};
    assert_int_equal(message_add_rcpt(m, RCPT_TO, "a@b" UE "cher.example", &e), 0);
    assert_int_equal(message_add_rcpt(m, RCPT_BCC, "c@example.org", &e), 0);
    m->reply_to = strdup("B" UE "ro <b@b" UE "ro.example>");
    assert_int_equal(idna_message(m, NULL, NULL, &e), 0);
    assert_string_equal(m->rcpts[0].addr, "a@xn--bcher-kva.example");
    assert_string_equal(m->rcpts[1].addr, "c@example.org");
    assert_string_equal(m->reply_to, "B" UE "ro <b@xn--bro-hoa.example>");
    /* One bad domain: nothing changes, and the error names the recipient. */
    assert_int_equal(message_add_rcpt(m, RCPT_CC, "d@d" UE "d.example", &e), 0);
    assert_int_equal(message_add_rcpt(m, RCPT_CC, "x@example.org", &e), 0);
    free(m->rcpts[3].addr); /* as a spool row may hold it (rows are untrusted) */
    m->rcpts[3].addr = strdup("x@" UE "-.example");
    assert_int_equal(idna_message(m, NULL, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "cc recipient 4"));
    assert_string_equal(m->rcpts[2].addr, "d@d" UE "d.example");
    /* With a callback (the daemon): that recipient is refused, the others
     * are converted. */
    struct refusals r = {0};
    assert_int_equal(idna_message(m, note_refusal, &r, &e), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.idx, 3);
    assert_non_null(strstr(r.why, "cc recipient 4"));
    assert_int_equal(m->rcpts[3].state, RCPT_FAILED);
    assert_int_equal(m->rcpts[2].state, RCPT_PENDING);
    assert_string_equal(m->rcpts[2].addr, "d@xn--dd-xka.example");
    message_free(m);
}

/* libidn2 behind libcurl 7.88 maps full-width punctuation to ASCII: such a
 * result is no domain and is refused, never sent. */
static void test_fullwidth_punctuation_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "a@evil\xef\xbc\xa0victim.example", /* U+FF20 FULLWIDTH COMMERCIAL AT */
        "a@x\xef\xbc\x8fy.example",         /* U+FF0F FULLWIDTH SOLIDUS */
        "a@x\xef\xbc\x9ey.example",         /* U+FF1E FULLWIDTH GREATER-THAN SIGN */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL;
        struct err e = {0};
        if (idna_address(bad[i], &out, &e) != -1)
            fail_msg("%s became %s", bad[i], out ? out : "(unchanged)");
        assert_non_null(strstr(e.msg, "no valid ASCII form"));
    }
}

int main(void)
{
    /* As mailspoold does (daemon/main.c). */
    if (setlocale(LC_CTYPE, "C.UTF-8") == NULL)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address),
        cmocka_unit_test(test_invalid_domain),
        cmocka_unit_test(test_mailbox),
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_fullwidth_punctuation_refused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
