/*
 * outcome — maps every transport result to OK / TEMPFAIL / PERMFAIL /
 * PROFILE-FAULT with a reason in plain words, and computes retry delays.
 *
 * Never: touches the spool, the log, or a clock. Pure and table-tested
 * (tests/unit/test_outcome.c).
 */
#include "outcome.h"
#include "smtp.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

static void outcome_set(struct outcome *o, enum outcome_kind k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void outcome_set(struct outcome *o, enum outcome_kind k, const char *fmt, ...)
{
    o->kind = k;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->reason, sizeof o->reason, fmt, ap);
    va_end(ap);
}

const char *outcome_kind_name(enum outcome_kind k)
{
    switch (k) {
    case OUT_OK:
        return "ok";
    case OUT_TEMPFAIL:
        return "tempfail";
    case OUT_PERMFAIL:
        return "permfail";
    case OUT_PROFILE:
        return "profile-fault";
    case OUT_ABORTED:
        return "aborted";
    }
    return "?";
}

static const char *stage_name(int stage)
{
    static const char *const names[] = {"connect", "TLS",  "AUTH", "MAIL FROM",
                                        "RCPT TO", "DATA", "done"};
    return (stage >= 0 && stage <= SMTP_STAGE_DONE) ? names[stage] : "?";
}

/* TLS and certificate failures: the profile's trust settings or the server are wrong. */
static bool curl_is_tls_error(int c)
{
    return c == CURLE_SSL_CONNECT_ERROR || c == CURLE_PEER_FAILED_VERIFICATION ||
           c == CURLE_SSL_CERTPROBLEM || c == CURLE_SSL_CIPHER || c == CURLE_SSL_CACERT_BADFILE ||
           c == CURLE_SSL_ISSUER_ERROR || c == CURLE_SSL_PINNEDPUBKEYNOTMATCH ||
           c == CURLE_SSL_ENGINE_INITFAILED || c == CURLE_SSL_CRL_BADFILE;
}

/* A reply code to MAIL, RCPT or DATA (or the final "."). */
static void smtp_classify_reply(const struct smtp_result *r, struct outcome *o)
{
    const char *reply = r->reply && *r->reply ? r->reply : (r->error ? r->error : "no reply");
    int code = r->reply_code;
    if (code == 530 || code == 535 || code == 534 || code == 538) {
        outcome_set(o, OUT_PROFILE,
                    "%s refused authentication at %s (%s): check Username and Passwort of "
                    "profile %s%s",
                    r->host, stage_name(r->stage), reply, r->profile,
                    r->anonymous ? " (the server wants AUTH; SMTPAuthReq = NIL sends none)" : "");
    } else if (code >= 500 && code < 600) {
        outcome_set(o, OUT_PERMFAIL, "%s", reply);
    } else if (code >= 400 && code < 500) {
        outcome_set(o, OUT_TEMPFAIL, "%s", reply);
    } else {
        outcome_set(o, OUT_TEMPFAIL, "unexpected reply at %s: %s", stage_name(r->stage), reply);
    }
}

void outcome_classify_smtp(const struct smtp_result *r, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    const char *err = r->error && *r->error ? r->error : curl_easy_strerror(r->curl_code);
    if (r->aborted || r->curl_code == CURLE_ABORTED_BY_CALLBACK) {
        outcome_set(o, OUT_ABORTED, "transfer aborted by shutdown");
        o->maybe_delivered = r->data_sent;
        return;
    }
    if (r->msg_err == EX_DATAERR) {
        outcome_set(o, OUT_PERMFAIL, "message cannot be sent as it is: %s", err);
        return;
    }
    switch (r->curl_code) {
    case CURLE_OK:
        outcome_set(o, OUT_OK, "%s", r->reply ? r->reply : "accepted");
        return;
    case CURLE_LOGIN_DENIED:
        outcome_set(o, OUT_PROFILE,
                    "%s rejected the login of profile %s (%s): check Username and Passwort",
                    r->host, r->profile, r->reply && *r->reply ? r->reply : err);
        return;
    case CURLE_AUTH_ERROR: /* smtp_xfer.c: SMTPAuthReq = SSL, no AUTH offered after TLS */
        outcome_set(o, OUT_PROFILE,
                    "%s offers no AUTH after TLS, so profile %s (SMTPAuthReq = SSL) sent nothing: "
                    "enable SMTP AUTH on the server, or set SMTPAuthReq = NIL if this relay takes "
                    "mail without a login",
                    r->host, r->profile);
        return;
    case CURLE_USE_SSL_FAILED:
        outcome_set(o, OUT_PROFILE,
                    "%s does not offer STARTTLS, so profile %s (SMTPAuthReq = SSL) will not send "
                    "its password: enable TLS on the server, or set SMTPPort = 465 for implicit "
                    "TLS",
                    r->host, r->profile);
        return;
    case CURLE_COULDNT_RESOLVE_HOST:
        outcome_set(o, OUT_PROFILE, "cannot resolve SMTPHost %s of profile %s: %s", r->host,
                    r->profile, err);
        return;
    case CURLE_COULDNT_CONNECT:
        outcome_set(o, OUT_PROFILE, "cannot connect to %s (profile %s): %s", r->host, r->profile,
                    err);
        return;
    default:
        break;
    }
    if (curl_is_tls_error(r->curl_code)) {
        outcome_set(o, OUT_PROFILE,
                    "TLS with %s failed for profile %s: %s; check the server certificate, CAFile "
                    "and TLSVerify",
                    r->host, r->profile, err);
        return;
    }
    if (r->curl_code == CURLE_OPERATION_TIMEDOUT) {
        o->maybe_delivered = r->data_sent;
        outcome_set(o, OUT_TEMPFAIL, "timeout at %s with %s%s: %s", stage_name(r->stage), r->host,
                    r->data_sent ? " after the final \".\" (the message may have been delivered)"
                                 : "",
                    err);
        return;
    }
    if (r->reply_code >= 400 && r->stage >= SMTP_STAGE_MAIL) {
        smtp_classify_reply(r, o);
        return;
    }
    if (r->reply_code == 421 || (r->reply_code >= 400 && r->reply_code < 500)) {
        outcome_set(o, OUT_TEMPFAIL, "%s at %s", r->reply ? r->reply : err, stage_name(r->stage));
        return;
    }
    if (r->reply_code >= 500 && r->stage == SMTP_STAGE_AUTH) {
        smtp_classify_reply(r, o);
        return;
    }
    if (r->curl_code == CURLE_READ_ERROR) {
        outcome_set(o, OUT_TEMPFAIL, "reading the message from the spool failed: %s", err);
        return;
    }
    /* Connection dropped, nothing or garbage received: try again later. */
    o->maybe_delivered = r->data_sent;
    outcome_set(o, OUT_TEMPFAIL, "%s at %s with %s%s", err, stage_name(r->stage), r->host,
                r->data_sent ? " after the final \".\" (the message may have been delivered)" : "");
}

/* Entra ID (AADSTS) errors of the token endpoint, in plain words. */
static void graph_classify_token(const struct graph_result *r, struct outcome *o)
{
    const char *p = r->profile;
    switch (r->aadsts) {
    case 7000222:
        outcome_set(o, OUT_PROFILE,
                    "client secret of profile %s has expired (AADSTS7000222): create a new one in "
                    "the Entra admin center under Certificates & secrets and set 365Secret",
                    p);
        return;
    case 7000215:
        outcome_set(o, OUT_PROFILE,
                    "client secret of profile %s is invalid (AADSTS7000215): set 365Secret to the "
                    "secret's Value (not its Secret ID) from Certificates & secrets",
                    p);
        return;
    case 700016:
        outcome_set(o, OUT_PROFILE,
                    "application 365Client of profile %s is not known in tenant 365Tenant "
                    "(AADSTS700016): check the Application (client) ID and the Directory "
                    "(tenant) ID",
                    p);
        return;
    case 90002:
        outcome_set(o, OUT_PROFILE,
                    "tenant 365Tenant of profile %s does not exist (AADSTS90002): set the "
                    "Directory (tenant) ID of the app registration",
                    p);
        return;
    case 7000112:
        outcome_set(o, OUT_PROFILE,
                    "application of profile %s is disabled (AADSTS7000112): enable it in the "
                    "Entra admin center",
                    p);
        return;
    case 90024:
    case 90055:
        outcome_set(o, OUT_TEMPFAIL, "Entra ID is busy (AADSTS%ld): %s", r->aadsts,
                    r->message ? r->message : "");
        return;
    default:
        break;
    }
    if (r->error_code && strcmp(r->error_code, "temporarily_unavailable") == 0) {
        outcome_set(o, OUT_TEMPFAIL, "Entra ID temporarily unavailable: %s",
                    r->message ? r->message : "");
        return;
    }
    if (r->http_status == 429 || r->http_status >= 500 || r->http_status == 0) {
        outcome_set(o, OUT_TEMPFAIL, "token request for profile %s failed: %s", p,
                    r->http_status ? "server busy or failing" : "no response");
        return;
    }
    outcome_set(o, OUT_PROFILE,
                "token request for profile %s refused (HTTP %ld, %s%s%s): check "
                "365Client, 365Tenant and 365Secret",
                p, r->http_status, r->error_code ? r->error_code : "error", r->message ? ": " : "",
                r->message ? r->message : "");
}

void outcome_classify_graph(const struct graph_result *r, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    o->retry_after = r->retry_after;
    const char *code = r->error_code ? r->error_code : "";
    const char *msg = r->message ? r->message : "";
    const char *rid = r->request_id ? r->request_id : "-";
    if (r->aborted) {
        outcome_set(o, OUT_ABORTED, "transfer aborted by shutdown");
        return;
    }
    if (r->curl_code != CURLE_OK) {
        if (curl_is_tls_error(r->curl_code)) {
            outcome_set(o, OUT_PROFILE,
                        "TLS with Microsoft 365 failed for profile %s: %s; check CAFile and "
                        "TLSVerify",
                        r->profile, curl_easy_strerror(r->curl_code));
            return;
        }
        outcome_set(o, OUT_TEMPFAIL, "%s request failed: %s", r->token_request ? "token" : "Graph",
                    curl_easy_strerror(r->curl_code));
        return;
    }
    if (r->token_request && r->http_status != 200) {
        graph_classify_token(r, o);
        return;
    }
    long s = r->http_status;
    if (s >= 200 && s < 300) {
        outcome_set(o, OUT_OK, "HTTP %ld request-id=%s", s, rid);
        return;
    }
    /* Besides the throttling and server errors, the 4xx that say "not now"
     * rather than "not this message" (Microsoft Graph's error responses):
     * 408 Request Timeout, 409 Conflict with the resource's current state,
     * 423 Locked. */
    if (s == 429 || s == 500 || s == 502 || s == 503 || s == 504 || s == 0 || s == 408 ||
        s == 409 || s == 423) {
        if (r->retry_after > 0)
            outcome_set(o, OUT_TEMPFAIL, "HTTP %ld, Retry-After %lld (request-id %s)", s,
                        (long long)r->retry_after, rid);
        else
            outcome_set(o, OUT_TEMPFAIL, "HTTP %ld %s (request-id %s)", s, code, rid);
        return;
    }
    if (s == 401) {
        outcome_set(o, OUT_PROFILE,
                    "Graph refused the access token of profile %s (HTTP 401 %s, request-id %s): "
                    "check that the app has the Mail.Send application permission with admin "
                    "consent",
                    r->profile, code, rid);
        return;
    }
    if (s == 403) {
        if (r->draft_path) {
            o->message_specific = true;
            outcome_set(o, OUT_TEMPFAIL,
                        "Graph denied the draft/upload path (HTTP 403 %s, request-id %s): "
                        "messages over 3 MB need the Mail.ReadWrite application permission "
                        "besides Mail.Send for profile %s",
                        code, rid, r->profile);
            return;
        }
        if (strcmp(code, "ErrorSendAsDenied") == 0) {
            outcome_set(o, OUT_PROFILE,
                        "mailbox refuses to send as FromAddress of profile %s (HTTP 403 "
                        "ErrorSendAsDenied, request-id %s): grant the app send rights on it",
                        r->profile, rid);
            return;
        }
        outcome_set(o, OUT_PROFILE,
                    "access to the mailbox of profile %s denied (HTTP 403 %s, request-id %s): "
                    "grant Mail.Send with admin consent and check any application access policy "
                    "covers FromAddress",
                    r->profile, code, rid);
        return;
    }
    if (s == 404 || strcmp(code, "MailboxNotEnabledForRESTAPI") == 0 ||
        strcmp(code, "ErrorInvalidUser") == 0) {
        outcome_set(o, OUT_PROFILE,
                    "FromAddress of profile %s is not a Microsoft 365 mailbox that Graph can use "
                    "(HTTP %ld %s, request-id %s)",
                    r->profile, s, code, rid);
        return;
    }
    if (s == 413 || strcmp(code, "ErrorMessageSizeExceeded") == 0) {
        outcome_set(o, OUT_PERMFAIL,
                    "message too large for Microsoft 365 (HTTP %ld %s, request-id %s)", s, code,
                    rid);
        return;
    }
    if (s >= 400 && s < 500) {
        outcome_set(o, OUT_PERMFAIL, "Graph rejected the message (HTTP %ld %s: %s, request-id %s)",
                    s, code, msg, rid);
        return;
    }
    outcome_set(o, OUT_TEMPFAIL, "HTTP %ld %s (request-id %s)", s, code, rid);
}

int64_t outcome_backoff(int attempts, int64_t retry_min, int64_t retry_max, int64_t retry_after,
                        unsigned int *rand_state)
{
    if (retry_min < 1)
        retry_min = 1;
    if (retry_max < retry_min)
        retry_max = retry_min;
    double delay = (double)retry_min;
    for (int i = 1; i < attempts && delay < (double)retry_max; i++)
        delay *= 2;
    if (delay > (double)retry_max)
        delay = (double)retry_max;
    double jitter = 0.9 + 0.2 * ((double)rand_r(rand_state) / (double)RAND_MAX);
    int64_t d = (int64_t)(delay * jitter + 0.5);
    if (d > retry_max) /* retry_max is a cap (SPEC 3): the jitter spreads below it */
        d = retry_max;
    if (d < 1)
        d = 1;
    if (retry_after > d)
        d = retry_after;
    return d;
}
