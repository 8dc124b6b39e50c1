/*
 * smtp_test — `mailspool test` for SMTP profiles: one synchronous send with
 * a fresh handle on the calling thread, every step printed as a plain line.
 *
 * Owns: the transcript layout (resolve, connect, TLS and certificate, EHLO
 * capabilities, AUTH mechanism and result, each server reply, the verdict)
 * and the mapping of the outcome to an exit code.
 * Never: prints a secret. AUTH payloads and everything sent after a 334 are
 * masked by smtp_trace; as a last guard any line holding the profile's
 * password is replaced before it is written.
 */
#include "smtp.h"
#include "smtp_xfer.h"
#include "xmalloc.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

struct test_out {
    FILE *out;
    const char *password; /* NULL or "": nothing to guard */
};

static void test_emit(void *ctx, const char *line)
{
    struct test_out *o = ctx;
    if (o->password && strlen(o->password) >= 3 && strstr(line, o->password)) {
        fputs("(line hidden: it contained the password)\n", o->out);
    } else {
        fputs(line, o->out);
        fputc('\n', o->out);
    }
}

static void test_printf(struct test_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void test_printf(struct test_out *o, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    test_emit(o, line);
}

static const char *test_tls_name(const struct profile *pr)
{
    if (pr->smtp_tls == SMTP_TLS_IMPLICIT)
        return "implicit TLS";
    if (pr->smtp_tls == SMTP_TLS_STARTTLS || pr->transport == TRANSPORT_SMTP_AUTH)
        return "STARTTLS required";
    return "none";
}

/* Resolves the host the way curl will, to print the addresses. Returns 0,
 * or the exit code when resolving failed. */
static int test_resolve(const struct profile *pr, struct test_out *o)
{
    char port[16];
    snprintf(port, sizeof port, "%d", pr->smtp_port > 0 ? pr->smtp_port : 25);
    test_printf(o, "resolve %s:%s", pr->smtp_host, port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(pr->smtp_host, port, &hints, &res);
    if (rc != 0) {
        test_printf(o, "resolve failed: %s", gai_strerror(rc));
        return rc == EAI_NONAME ? EX_CONFIG : EX_TEMPFAIL;
    }
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        char ip[INET6_ADDRSTRLEN] = "?";
        const void *addr = a->ai_family == AF_INET6
                               ? (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr
                               : (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr;
        inet_ntop(a->ai_family, addr, ip, sizeof ip);
        test_printf(o, "  address %s", ip);
    }
    freeaddrinfo(res);
    return 0;
}

static bool test_profile_reply(int code)
{
    /* authentication required / too weak / credentials invalid / encryption required */
    return code == 530 || code == 534 || code == 535 || code == 538;
}

/* The exit code of a finished test send and a word for it. */
static int test_verdict(const struct smtp_job *j, const char **what)
{
    CURLcode rc = (CURLcode)j->curl_code;
    if (rc == CURLE_OK) {
        *what = "accepted";
        return 0;
    }
    if (j->msg_err == EX_DATAERR) {
        *what = "the message is not sendable";
        return EX_DATAERR;
    }
    if (j->stage == SMTP_STAGE_TLS || j->stage == SMTP_STAGE_AUTH || rc == CURLE_LOGIN_DENIED ||
        rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL ||
        test_profile_reply(j->reply_code)) {
        *what = "profile or server configuration problem";
        return EX_CONFIG;
    }
    if (j->reply_code >= 500 && j->reply_code < 600) {
        *what = "refused permanently";
        return EX_UNAVAILABLE;
    }
    *what = "temporary failure";
    return EX_TEMPFAIL;
}

static void test_report(const struct smtp_job *j, int code, const char *what, struct test_out *o)
{
    for (size_t i = 0; i < j->nrejects; i++)
        test_printf(o, "recipient %s refused: %s", j->rejects[i].addr, j->rejects[i].reply);
    if (code == 0) {
        test_printf(o, "result: %s by the server: %s (%zu recipient%s, %lld bytes, %lld ms)", what,
                    j->reply ? j->reply : "", j->naccepted, j->naccepted == 1 ? "" : "s",
                    (long long)j->bytes, (long long)j->duration_ms);
        return;
    }
    test_printf(o, "result: %s at stage %s: %s%s%s", what, smtp_stage_name(j->stage),
                j->error ? j->error : "", j->reply ? "; last reply: " : "",
                j->reply ? j->reply : "");
    if (j->stage == SMTP_STAGE_TLS && j->curl_code == CURLE_USE_SSL_FAILED)
        test_printf(o, "hint: the server did not accept STARTTLS; the password was not sent");
    else if (j->curl_code == CURLE_PEER_FAILED_VERIFICATION)
        test_printf(o, "hint: the server's certificate is not trusted: set CAFile to its CA");
    else if (j->curl_code == CURLE_LOGIN_DENIED)
        test_printf(o, "hint: the server refused Username/Passwort of this profile");
    else if (j->curl_code == CURLE_AUTH_ERROR)
        test_printf(o, "hint: the server offers no AUTH after TLS (SMTPAuthReq = SSL needs a "
                       "login); nothing was sent");
}

int smtp_test(const struct profile *profile, const struct message *msg,
              const struct smtp_timeouts *t, FILE *out)
{
    struct test_out o = {out, profile->password};
    test_printf(&o, "profile %s: SMTP %s, TLS %s, certificate verification %s", profile->name,
                profile->transport == TRANSPORT_SMTP_AUTH ? "with AUTH (SMTPAuthReq = SSL)"
                                                          : "anonymous (SMTPAuthReq = NIL)",
                test_tls_name(profile), profile->tls_verify ? "on" : "OFF");
    if (profile->transport != TRANSPORT_SMTP_AUTH && profile->transport != TRANSPORT_SMTP_ANON) {
        test_printf(&o, "result: profile %s is not an SMTP profile", profile->name);
        return EX_CONFIG;
    }
    int rc = test_resolve(profile, &o);
    if (rc != 0) {
        test_printf(&o, "result: cannot resolve SMTPHost %s", profile->smtp_host);
        return rc;
    }
    struct err e = {0};
    CURL *h = smtp_xfer_handle_new(profile, t, &e);
    if (h == NULL) {
        test_printf(&o, "result: %s", e.msg);
        return EX_CONFIG;
    }
    struct smtp_job job = {.profile = profile, .msg = msg};
    struct smtp_xfer_io io = {.low_speed_s = t->low_speed_s, .emit = test_emit, .emit_ctx = &o};
    smtp_xfer_run(h, &job, &io);
    const char *what = "";
    rc = test_verdict(&job, &what);
    test_report(&job, rc, what, &o);
    smtp_job_clear(&job);
    smtp_xfer_handle_free(h, true); /* QUIT after the verdict is out */
    return rc;
}
