/*
 * test_outcome — the classification table of DESIGN.md section 5: every
 * transport result maps to exactly one of OK, TEMPFAIL, PERMFAIL,
 * PROFILE-FAULT (or ABORTED), and the backoff stays within its bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "outcome.h"
#include "smtp.h"

struct smtp_case {
    const char *name;
    int curl_code, reply_code, stage;
    bool data_sent, anonymous;
    enum outcome_kind want;
    bool maybe_delivered;
    const char *reason_has;
};

static const struct smtp_case smtp_cases[] = {
    {"accepted", CURLE_OK, 250, SMTP_STAGE_DONE, true, false, OUT_OK, false, "250"},
    {"550 at RCPT", CURLE_SEND_ERROR, 550, SMTP_STAGE_RCPT, false, false, OUT_PERMFAIL, false,
     "550"},
    {"553 at MAIL", CURLE_SEND_ERROR, 553, SMTP_STAGE_MAIL, false, false, OUT_PERMFAIL, false,
     "553"},
    {"554 after DATA", CURLE_WEIRD_SERVER_REPLY, 554, SMTP_STAGE_DATA, true, false, OUT_PERMFAIL,
     false, "554"},
    {"451 at DATA", CURLE_WEIRD_SERVER_REPLY, 451, SMTP_STAGE_DATA, true, false, OUT_TEMPFAIL,
     false, "451"},
    {"450 at RCPT", CURLE_SEND_ERROR, 450, SMTP_STAGE_RCPT, false, false, OUT_TEMPFAIL, false,
     "450"},
    {"421 at MAIL", CURLE_SEND_ERROR, 421, SMTP_STAGE_MAIL, false, false, OUT_TEMPFAIL, false,
     "421"},
    {"421 greeting", CURLE_WEIRD_SERVER_REPLY, 421, SMTP_STAGE_CONNECT, false, false, OUT_TEMPFAIL,
     false, "421"},
    {"535 AUTH", CURLE_LOGIN_DENIED, 535, SMTP_STAGE_AUTH, false, false, OUT_PROFILE, false,
     "Passwort"},
    {"530 auth required, anonymous", CURLE_SEND_ERROR, 530, SMTP_STAGE_MAIL, false, true,
     OUT_PROFILE, false, "SMTPAuthReq = NIL"},
    {"no STARTTLS", CURLE_USE_SSL_FAILED, 0, SMTP_STAGE_TLS, false, false, OUT_PROFILE, false,
     "STARTTLS"},
    {"bad certificate", CURLE_PEER_FAILED_VERIFICATION, 0, SMTP_STAGE_TLS, false, false,
     OUT_PROFILE, false, "CAFile"},
    {"handshake", CURLE_SSL_CONNECT_ERROR, 0, SMTP_STAGE_TLS, false, false, OUT_PROFILE, false,
     "TLS"},
    {"refused", CURLE_COULDNT_CONNECT, 0, SMTP_STAGE_CONNECT, false, false, OUT_PROFILE, false,
     "connect"},
    {"no DNS", CURLE_COULDNT_RESOLVE_HOST, 0, SMTP_STAGE_CONNECT, false, false, OUT_PROFILE, false,
     "resolve"},
    {"timeout before data", CURLE_OPERATION_TIMEDOUT, 0, SMTP_STAGE_RCPT, false, false,
     OUT_TEMPFAIL, false, "timeout"},
    {"timeout after dot", CURLE_OPERATION_TIMEDOUT, 0, SMTP_STAGE_DATA, true, false, OUT_TEMPFAIL,
     true, "may have been delivered"},
    {"closed after dot", CURLE_RECV_ERROR, 0, SMTP_STAGE_DATA, true, false, OUT_TEMPFAIL, true,
     "may have been delivered"},
    {"closed before greeting", CURLE_GOT_NOTHING, 0, SMTP_STAGE_CONNECT, false, false, OUT_TEMPFAIL,
     false, "connect"},
    {"spool read error", CURLE_READ_ERROR, 0, SMTP_STAGE_DATA, false, false, OUT_TEMPFAIL, false,
     "spool"},
    {"aborted", CURLE_ABORTED_BY_CALLBACK, 0, SMTP_STAGE_DATA, false, false, OUT_ABORTED, false,
     "shutdown"},
};

static void test_smtp_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof smtp_cases / sizeof smtp_cases[0]; i++) {
        const struct smtp_case *c = &smtp_cases[i];
        char reply[64];
        snprintf(reply, sizeof reply, "%d 4.0.0 test reply", c->reply_code);
        struct smtp_result r = {.curl_code = c->curl_code,
                                .reply_code = c->reply_code,
                                .reply = c->reply_code ? reply : NULL,
                                .stage = c->stage,
                                .data_sent = c->data_sent,
                                .anonymous = c->anonymous,
                                .profile = "billing",
                                .host = "smtp.example"};
        struct outcome o;
        outcome_classify_smtp(&r, &o);
        if (o.kind != c->want || o.maybe_delivered != c->maybe_delivered ||
            strstr(o.reason, c->reason_has) == NULL)
            fail_msg("case '%s': got %s (%s) maybe=%d", c->name, outcome_kind_name(o.kind),
                     o.reason, o.maybe_delivered);
    }
}

struct graph_case {
    const char *name;
    int curl_code;
    long status;
    const char *code;
    long aadsts;
    bool token, draft;
    int64_t retry_after;
    enum outcome_kind want;
    const char *reason_has;
};

static const struct graph_case graph_cases[] = {
    {"202", CURLE_OK, 202, NULL, 0, false, false, 0, OUT_OK, "202"},
    {"429 retry-after", CURLE_OK, 429, "TooManyRequests", 0, false, false, 120, OUT_TEMPFAIL,
     "Retry-After 120"},
    {"503", CURLE_OK, 503, "ServiceUnavailable", 0, false, false, 0, OUT_TEMPFAIL, "503"},
    {"500", CURLE_OK, 500, NULL, 0, false, false, 0, OUT_TEMPFAIL, "500"},
    {"502", CURLE_OK, 502, NULL, 0, false, false, 0, OUT_TEMPFAIL, "502"},
    {"504", CURLE_OK, 504, NULL, 0, false, false, 0, OUT_TEMPFAIL, "504"},
    {"408", CURLE_OK, 408, "RequestTimeout", 0, false, false, 0, OUT_TEMPFAIL, "408"},
    {"409", CURLE_OK, 409, "ErrorIrresolvableConflict", 0, false, false, 0, OUT_TEMPFAIL, "409"},
    {"423", CURLE_OK, 423, "ErrorItemLocked", 0, false, false, 0, OUT_TEMPFAIL, "423"},
    {"400 other", CURLE_OK, 400, "ErrorInvalidProperty", 0, false, false, 0, OUT_PERMFAIL,
     "ErrorInvalidProperty"},
    {"invalid recipients", CURLE_OK, 400, "ErrorInvalidRecipients", 0, false, false, 0,
     OUT_PERMFAIL, "ErrorInvalidRecipients"},
    {"413", CURLE_OK, 413, NULL, 0, false, false, 0, OUT_PERMFAIL, "too large"},
    {"size exceeded", CURLE_OK, 400, "ErrorMessageSizeExceeded", 0, false, false, 0, OUT_PERMFAIL,
     "too large"},
    {"403 access denied", CURLE_OK, 403, "ErrorAccessDenied", 0, false, false, 0, OUT_PROFILE,
     "Mail.Send"},
    {"403 send as", CURLE_OK, 403, "ErrorSendAsDenied", 0, false, false, 0, OUT_PROFILE,
     "ErrorSendAsDenied"},
    {"403 draft path", CURLE_OK, 403, "ErrorAccessDenied", 0, false, true, 0, OUT_TEMPFAIL,
     "Mail.ReadWrite"},
    {"mailbox not enabled", CURLE_OK, 404, "MailboxNotEnabledForRESTAPI", 0, false, false, 0,
     OUT_PROFILE, "mailbox"},
    {"401 after refresh", CURLE_OK, 401, "InvalidAuthenticationToken", 0, false, false, 0,
     OUT_PROFILE, "401"},
    {"expired secret", CURLE_OK, 401, "invalid_client", 7000222, true, false, 0, OUT_PROFILE,
     "Certificates & secrets and set 365Secret"},
    {"invalid secret", CURLE_OK, 401, "invalid_client", 7000215, true, false, 0, OUT_PROFILE,
     "365Secret"},
    {"unknown app", CURLE_OK, 400, "unauthorized_client", 700016, true, false, 0, OUT_PROFILE,
     "365Client"},
    {"unknown tenant", CURLE_OK, 400, "invalid_request", 90002, true, false, 0, OUT_PROFILE,
     "365Tenant"},
    {"disabled app", CURLE_OK, 401, "unauthorized_client", 7000112, true, false, 0, OUT_PROFILE,
     "disabled"},
    {"entra busy", CURLE_OK, 400, "invalid_request", 90024, true, false, 0, OUT_TEMPFAIL, "busy"},
    {"temporarily unavailable", CURLE_OK, 400, "temporarily_unavailable", 0, true, false, 0,
     OUT_TEMPFAIL, "temporarily"},
    {"token endpoint 503", CURLE_OK, 503, NULL, 0, true, false, 0, OUT_TEMPFAIL, "token"},
    {"token endpoint down", CURLE_COULDNT_CONNECT, 0, NULL, 0, true, false, 0, OUT_TEMPFAIL,
     "token"},
    {"graph reset", CURLE_RECV_ERROR, 0, NULL, 0, false, false, 0, OUT_TEMPFAIL, "Graph"},
    {"graph bad cert", CURLE_PEER_FAILED_VERIFICATION, 0, NULL, 0, false, false, 0, OUT_PROFILE,
     "TLS"},
};

static void test_smtp_message_error(void **state)
{
    (void)state;
    struct smtp_result r = {.curl_code = CURLE_READ_ERROR,
                            .msg_err = 65,
                            .error = "bare LF",
                            .stage = SMTP_STAGE_DATA,
                            .profile = "p",
                            .host = "h"};
    struct outcome o;
    outcome_classify_smtp(&r, &o);
    assert_int_equal(o.kind, OUT_PERMFAIL);
    r.msg_err = 74; /* I/O reading the spool: try again */
    outcome_classify_smtp(&r, &o);
    assert_int_equal(o.kind, OUT_TEMPFAIL);
}

static void test_graph_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof graph_cases / sizeof graph_cases[0]; i++) {
        const struct graph_case *c = &graph_cases[i];
        struct graph_result r = {.curl_code = c->curl_code,
                                 .http_status = c->status,
                                 .error_code = c->code,
                                 .aadsts = c->aadsts,
                                 .message = "details",
                                 .request_id = "rid-1",
                                 .retry_after = c->retry_after,
                                 .token_request = c->token,
                                 .draft_path = c->draft,
                                 .profile = "ppr"};
        struct outcome o;
        outcome_classify_graph(&r, &o);
        if (o.kind != c->want || strstr(o.reason, c->reason_has) == NULL)
            fail_msg("case '%s': got %s (%s)", c->name, outcome_kind_name(o.kind), o.reason);
        if (c->status >= 400 && !c->token && c->curl_code == CURLE_OK &&
            strstr(o.reason, "rid-1") == NULL)
            fail_msg("case '%s': request-id missing from '%s'", c->name, o.reason);
    }
}

static void test_backoff(void **state)
{
    (void)state;
    unsigned int seed = 42;
    for (int attempt = 1; attempt <= 20; attempt++) {
        for (int k = 0; k < 50; k++) {
            int64_t d = outcome_backoff(attempt, 60, 3600, 0, &seed);
            double base = 60.0;
            for (int i = 1; i < attempt && base < 3600; i++)
                base *= 2;
            if (base > 3600)
                base = 3600;
            assert_true(d >= (int64_t)(base * 0.9) - 1 && d <= (int64_t)(base * 1.1) + 1);
            assert_true(d <= 3600); /* retry_max is a cap, jitter included */
        }
    }
    assert_int_equal(outcome_backoff(1, 1, 1, 0, &seed), 1);
    assert_true(outcome_backoff(1, 60, 3600, 7200, &seed) == 7200); /* Retry-After wins */
    assert_true(outcome_backoff(5, 60, 3600, 3, &seed) >= 864);     /* ...only when larger */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_table),
        cmocka_unit_test(test_smtp_message_error),
        cmocka_unit_test(test_graph_table),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests_name("outcome", tests, NULL, NULL);
}
