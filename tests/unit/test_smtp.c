/* test_smtp — the SMTP transport's pure parts: reply pairing, stages and AUTH
 * masking of smtp_trace (libcurl's debug stream fed line by line), the
 * bare CR/LF guard (also with the base64 encoder's bytes skipped) and the
 * EHLO name of smtp_xfer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "smtp_trace.h"
#include "smtp_xfer.h"

static void collect(void *ctx, const char *line)
{
    struct buf *b = ctx;
    buf_puts(b, line);
    buf_putc(b, '\n');
}

#define IN(t, s) smtp_trace_in((t), (s), strlen(s))
#define OUT(t, s) smtp_trace_out((t), (s), strlen(s))
#define TEXT(t, s) smtp_trace_text((t), (s), strlen(s))

static void test_session_pairs_replies(void **state)
{
    (void)state;
    struct smtp_trace t;
    smtp_trace_init(&t, false, NULL, NULL);
    IN(&t, "220 mx.example ESMTP\r\n");
    assert_int_equal(t.stage, SMTP_STAGE_CONNECT);
    OUT(&t, "EHLO client.example\r\n");
    IN(&t, "250-mx.example\r\n");
    IN(&t, "250-PIPELINING\r\n");
    IN(&t, "250 8BITMIME\r\n");
    assert_string_equal(t.last, "250 mx.example PIPELINING 8BITMIME");
    OUT(&t, "MAIL FROM:<a@example.org>\r\n");
    assert_int_equal(t.stage, SMTP_STAGE_MAIL);
    IN(&t, "250 2.1.0 Ok\r\n");
    OUT(&t, "RCPT TO:<good@example.org>\r\n");
    assert_int_equal(t.stage, SMTP_STAGE_RCPT);
    IN(&t, "250 2.1.5 Ok\r\n");
    OUT(&t, "RCPT TO:<bad@example.org>\r\n");
    IN(&t, "550-5.1.1 first line\r\n");
    IN(&t, "550 5.1.1 second line\r\n");
    OUT(&t, "RCPT TO:<later@example.org>\r\n");
    IN(&t, "451 4.7.1 try later\r\n");
    OUT(&t, "DATA\r\n");
    assert_int_equal(t.stage, SMTP_STAGE_DATA);
    IN(&t, "354 End data with <CR><LF>.<CR><LF>\r\n");
    assert_int_equal(t.cmd, SMTP_CMD_BODY);
    IN(&t, "250 2.0.0 Ok: queued as 4F2A1\r\n");
    assert_string_equal(t.last, "250 2.0.0 Ok: queued as 4F2A1");
    assert_int_equal(t.last_code, 250);
    assert_int_equal(t.naccepted, 1);
    assert_int_equal(t.nrejects, 2);
    assert_string_equal(t.rejects[0].addr, "bad@example.org");
    assert_int_equal(t.rejects[0].code, 550);
    assert_string_equal(t.rejects[0].reply, "550 5.1.1 first line 5.1.1 second line");
    assert_string_equal(t.rejects[1].addr, "later@example.org");
    assert_int_equal(t.rejects[1].code, 451);
    /* QUIT's reply never replaces the reply to "." */
    OUT(&t, "QUIT\r\n");
    IN(&t, "221 2.0.0 Bye\r\n");
    assert_string_equal(t.last, "250 2.0.0 Ok: queued as 4F2A1");
    smtp_trace_free(&t);
}

static void test_auth_is_masked(void **state)
{
    (void)state;
    struct buf tr = BUF_INIT;
    struct smtp_trace t;
    smtp_trace_init(&t, false, collect, &tr);
    IN(&t, "220 mx\r\n");
    OUT(&t, "AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n"); /* initial response */
    assert_int_equal(t.stage, SMTP_STAGE_AUTH);
    IN(&t, "535 5.7.8 Authentication credentials invalid\r\n");
    assert_false(t.auth_ok);
    assert_false(t.in_auth);
    OUT(&t, "AUTH LOGIN\r\n");
    IN(&t, "334 VXNlcm5hbWU6\r\n");
    OUT(&t, "YWxpY2U=\r\n");
    IN(&t, "334 UGFzc3dvcmQ6\r\n");
    OUT(&t, "czNjcmV0\r\n");
    IN(&t, "235 2.7.0 Authentication successful\r\n");
    assert_true(t.auth_ok);
    assert_string_equal(t.last, "235 2.7.0 Authentication successful");
    assert_non_null(strstr(tr.data, "C: AUTH PLAIN (credentials hidden)\n"));
    assert_non_null(strstr(tr.data, "C: AUTH LOGIN (credentials hidden)\n"));
    assert_non_null(strstr(tr.data, "C: (credentials hidden)\n"));
    assert_non_null(strstr(tr.data, "S: 334 (challenge hidden)\n"));
    assert_non_null(strstr(tr.data, "AUTH result: 235 (accepted)"));
    assert_null(strstr(tr.data, "AGFsaWNl"));
    assert_null(strstr(tr.data, "YWxpY2U="));
    assert_null(strstr(tr.data, "czNjcmV0"));
    assert_null(strstr(tr.data, "VXNlcm5hbWU6"));
    /* after AUTH, commands show again */
    OUT(&t, "MAIL FROM:<a@example.org>\r\n");
    assert_non_null(strstr(tr.data, "C: MAIL FROM:<a@example.org>\n"));
    smtp_trace_free(&t);
    buf_free(&tr);
}

static void test_tls_stages(void **state)
{
    (void)state;
    struct smtp_trace t;
    smtp_trace_init(&t, true, NULL, NULL);
    TEXT(&t, "  Trying 127.0.0.1:465...\n");
    assert_int_equal(t.stage, SMTP_STAGE_CONNECT);
    TEXT(&t, "Connected to mx (127.0.0.1) port 465 (#0)\n");
    assert_int_equal(t.stage, SMTP_STAGE_TLS);
    TEXT(&t, "SSL connection using TLSv1.3 / TLS_AES_256_GCM_SHA384\n");
    assert_true(t.tls_done);
    assert_int_equal(t.stage, SMTP_STAGE_CONNECT);
    smtp_trace_free(&t);

    smtp_trace_init(&t, false, NULL, NULL);
    TEXT(&t, "Connected to mx (127.0.0.1) port 587 (#0)\n");
    assert_int_equal(t.stage, SMTP_STAGE_CONNECT);
    OUT(&t, "STARTTLS\r\n");
    assert_int_equal(t.stage, SMTP_STAGE_TLS);
    TEXT(&t, "Re-using existing connection! (#0) with host mx\n");
    assert_true(t.reused);
    smtp_trace_free(&t);
}

static void test_transcript_filters_and_cleans(void **state)
{
    (void)state;
    struct buf tr = BUF_INIT;
    struct smtp_trace t;
    smtp_trace_init(&t, false, collect, &tr);
    TEXT(&t, "TLSv1.3 (OUT), TLS handshake, Client hello (1):\n");
    TEXT(&t, "SMTP 0x55 state change from EHLO to STARTTLS\n");
    assert_int_equal(tr.len, 0);
    TEXT(&t, " subject: CN=localhost; O=test\n");
    TEXT(&t, " SSL certificate verify ok.\n");
    assert_string_equal(tr.data, "TLS: certificate subject: CN=localhost; O=test\n"
                                 "TLS: certificate verified\n");
    buf_reset(&tr);
    IN(&t, "250 a\rb\x01"
           "c\r\n");
    assert_string_equal(tr.data, "S: 250 a?b?c\n");
    smtp_trace_free(&t);
    buf_free(&tr);
}

static void test_incomplete_reply_is_not_kept(void **state)
{
    (void)state;
    struct smtp_trace t;
    smtp_trace_init(&t, false, NULL, NULL);
    IN(&t, "220 mx\r\n");
    OUT(&t, "EHLO c\r\n");
    IN(&t, "250-mx\r\n"); /* connection lost before the last line */
    assert_string_equal(t.last, "220 mx");
    assert_int_equal(t.last_code, 220);
    smtp_trace_free(&t);
}

/* Whether the EHLO reply offered AUTH (smtp_xfer.c stops an SSL profile's
 * transfer when it did not): "AUTH" with mechanisms, the old "AUTH=" form,
 * not "AUTH" without any, not a keyword that merely begins with AUTH, not
 * the first line (the server's name); reset by the next EHLO. */
static void test_ehlo_auth_offer(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        bool auth;
    } cases[] = {
        {"250-AUTH PLAIN LOGIN\r\n", true}, {"250-auth plain\r\n", true},
        {"250-AUTH=LOGIN\r\n", true},       {"250-AUTH\r\n", false},
        {"250-AUTH \r\n", false},           {"250-AUTHENTICATE X\r\n", false},
        {"250-8BITMIME\r\n", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct smtp_trace t;
        smtp_trace_init(&t, false, NULL, NULL);
        IN(&t, "220 mx.example ESMTP\r\n");
        OUT(&t, "EHLO client.example\r\n");
        IN(&t, "250-AUTH PLAIN\r\n"); /* the first line names the server */
        IN(&t, cases[i].line);
        assert_false(t.ehlo_final);
        IN(&t, "250 HELP\r\n");
        assert_true(t.ehlo_final);
        if (t.ehlo_auth != cases[i].auth)
            fail_msg("EHLO line %s: AUTH offered %d, want %d", cases[i].line, t.ehlo_auth,
                     cases[i].auth);
        OUT(&t, "EHLO client.example\r\n");
        assert_false(t.ehlo_final);
        assert_false(t.ehlo_auth);
        smtp_trace_free(&t);
    }
}

static void test_stage_names(void **state)
{
    (void)state;
    assert_string_equal(smtp_stage_name(SMTP_STAGE_CONNECT), "connect");
    assert_string_equal(smtp_stage_name(SMTP_STAGE_TLS), "tls");
    assert_string_equal(smtp_stage_name(SMTP_STAGE_AUTH), "auth");
    assert_string_equal(smtp_stage_name(SMTP_STAGE_RCPT), "rcpt");
    assert_string_equal(smtp_stage_name(SMTP_STAGE_DONE), "done");
    assert_string_equal(smtp_stage_name(99), "unknown");
}

static void test_ehlo_name_is_a_host_name(void **state)
{
    (void)state;
    char name[256];
    smtp_xfer_ehlo_name("x@mail.airport.example", name, sizeof name);
    /* the FQDN of this host if it has one, else the sender's domain */
    assert_true(strchr(name, '.') != NULL);
    for (const char *p = name; *p; p++)
        assert_true(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-", *p));
    smtp_xfer_ehlo_name("x@bad domain/with%stuff", name, sizeof name);
    assert_null(strchr(name, ' '));
    assert_null(strchr(name, '%'));
    assert_null(strchr(name, '/'));
}

static void test_crlf_guard(void **state)
{
    (void)state;
    bool cr = false;
    size_t bad = 99;
    assert_true(smtp_xfer_crlf_check(&cr, "a\r\nb\r", 5, &bad));
    assert_true(cr); /* a CRLF split across chunks is fine */
    assert_true(smtp_xfer_crlf_check(&cr, "\nc\r\n", 4, &bad));
    assert_false(cr);
    assert_false(smtp_xfer_crlf_check(&cr, "ok\r\n.\n", 6, &bad));
    assert_int_equal(bad, 5); /* the bare LF */
    cr = false;
    assert_false(smtp_xfer_crlf_check(&cr, "x\ry", 3, &bad));
    assert_int_equal(bad, 2); /* the byte after a bare CR */
    cr = false;
    assert_true(smtp_xfer_crlf_check(&cr, "", 0, &bad));
}

/* The check with the base64 encoder's bytes skipped: what is outside the
 * span is still checked in full, the first byte of the span must continue
 * what precedes it, and a CR at the end of a span carries to the next read. */
static void test_crlf_guard_skips_encoder_bytes(void **state)
{
    (void)state;
    bool cr = false;
    size_t bad = 99;
#define SKIP(s, off, len)                                                                          \
    smtp_xfer_crlf_check_skip(&cr, (s), strlen(s), &(struct mime_span){(off), (len)}, &bad)
    assert_true(SKIP("x\r\nQUJD\r\nRA\r\n", 0, 0));
    assert_true(smtp_xfer_crlf_check_skip(&cr, "x\r\n", 3, NULL, &bad));
    /* the span's bytes are taken as they are; the rest is checked */
    assert_true(SKIP("x\r\nQU\nD\r\n\r\nok\r\n", 3, 6));
    assert_false(cr);
    assert_false(SKIP("x\nyQUJD\r\n", 3, 6));
    assert_int_equal(bad, 1); /* before the span */
    cr = false;
    assert_false(SKIP("ab\rQUJD\r\n", 3, 6));
    assert_int_equal(bad, 3); /* a bare CR right before the span */
    cr = false;
    assert_false(SKIP("QUJD\r\n.\n", 0, 6));
    assert_int_equal(bad, 7); /* after the span, index in the whole buffer */
    cr = false;
    assert_false(SKIP("\nQUJD\r\n", 0, 7));
    assert_int_equal(bad, 0); /* a span cannot start with LF unless a CR came before */
    /* a span ending in CR (the caller's buffer ended there) ... */
    cr = false;
    assert_true(SKIP("QUJD\r", 0, 5));
    assert_true(cr);
    /* ... continues with LF in the next read, marked or not */
    assert_true(SKIP("\nQUJD\r\n", 0, 7));
    assert_false(cr);
    assert_true(SKIP("QUJD\r", 0, 5));
    assert_false(SKIP("x\r\n", 0, 0));
    assert_int_equal(bad, 0); /* the CR it ended with was bare */
    /* a span reaching past the buffer is cut at its end */
    cr = false;
    assert_true(SKIP("a\r\nQU", 3, 100));
    assert_false(cr);
#undef SKIP
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_pairs_replies),
        cmocka_unit_test(test_auth_is_masked),
        cmocka_unit_test(test_tls_stages),
        cmocka_unit_test(test_transcript_filters_and_cleans),
        cmocka_unit_test(test_incomplete_reply_is_not_kept),
        cmocka_unit_test(test_ehlo_auth_offer),
        cmocka_unit_test(test_stage_names),
        cmocka_unit_test(test_ehlo_name_is_a_host_name),
        cmocka_unit_test(test_crlf_guard),
        cmocka_unit_test(test_crlf_guard_skips_encoder_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
