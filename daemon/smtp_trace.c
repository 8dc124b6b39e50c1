/*
 * smtp_trace — reading one SMTP session out of libcurl's debug stream.
 *
 * libcurl runs SMTP in lock step (one command, one reply; it does not
 * pipeline), so the reply that follows a command answers it. Each
 * CURLINFO_HEADER_OUT record is one command with its CRLF; each
 * CURLINFO_HEADER_IN record is one reply line.
 *
 * Never: keeps or emits what follows "AUTH" on the wire from our side: the
 * mechanism's initial response and every line sent after a 334 challenge
 * are base64 credentials.
 */
#include "smtp_trace.h"
#include "xmalloc.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TRACE_LINE_MAX 1024

void smtp_trace_init(struct smtp_trace *t, bool implicit_tls, smtp_trace_emit_fn emit,
                     void *emit_ctx)
{
    memset(t, 0, sizeof *t);
    t->stage = SMTP_STAGE_CONNECT;
    t->cmd = SMTP_CMD_GREETING;
    t->implicit_tls = implicit_tls;
    buf_init(&t->reply);
    buf_init(&t->caps);
    t->emit = emit;
    t->emit_ctx = emit_ctx;
}

void smtp_trace_free(struct smtp_trace *t)
{
    for (size_t i = 0; i < t->nrejects; i++) {
        free(t->rejects[i].addr);
        free(t->rejects[i].reply);
    }
    free(t->rejects);
    t->rejects = NULL;
    t->nrejects = 0;
    free(t->rcpt);
    t->rcpt = NULL;
    free(t->last);
    t->last = NULL;
    buf_free(&t->reply);
    buf_free(&t->caps);
}

/* Copies one record into out as a single printable line: trailing CR/LF
 * dropped, other control bytes replaced so a transcript line stays one line. */
static void trace_clean(const char *s, size_t n, char *out, size_t outlen)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    if (n >= outlen)
        n = outlen - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
    }
    out[n] = '\0';
}

static void trace_emit(struct smtp_trace *t, const char *prefix, const char *line)
{
    if (t->emit == NULL)
        return;
    char tmp[TRACE_LINE_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s%s", prefix, line);
    t->emit(t->emit_ctx, tmp);
}

void smtp_trace_note(struct smtp_trace *t, const char *fmt, ...)
{
    if (t->emit == NULL)
        return;
    char tmp[TRACE_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    t->emit(t->emit_ctx, tmp);
}

static bool starts(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Informational text from curl: connection and TLS facts for the stage and
 * the transcript. Everything else (handshake record dumps, state chatter) is
 * dropped; the error itself reaches the caller through the error buffer. */
static void trace_text_line(struct smtp_trace *t, const char *raw)
{
    const char *s = raw;
    while (*s == ' ' || *s == '*')
        s++;
    if (starts(s, "Trying ")) {
        trace_emit(t, "connect ", s + 7);
    } else if (starts(s, "Connected to ")) {
        if (t->implicit_tls && !t->tls_done)
            t->stage = SMTP_STAGE_TLS;
        trace_emit(t, "connected to ", s + 13);
    } else if (starts(s, "Re-using existing connection")) {
        t->reused = true;
        trace_emit(t, "", "reusing the connection");
    } else if (starts(s, "SSL connection using ")) {
        t->tls_done = true;
        if (t->stage == SMTP_STAGE_TLS)
            t->stage = SMTP_STAGE_CONNECT; /* greeting or EHLO come next */
        trace_emit(t, "TLS: ", s + 21);
    } else if (starts(s, "subject: ")) {
        trace_emit(t, "TLS: certificate subject: ", s + 9);
    } else if (starts(s, "issuer: ")) {
        trace_emit(t, "TLS: certificate issuer: ", s + 8);
    } else if (starts(s, "expire date: ")) {
        trace_emit(t, "TLS: certificate expires: ", s + 13);
    } else if (starts(s, "subjectAltName: ")) {
        trace_emit(t, "TLS: certificate ", s);
    } else if (starts(s, "SSL certificate verify ok")) {
        trace_emit(t, "", "TLS: certificate verified");
    } else if (starts(s, "SSL certificate verify result: ")) {
        trace_emit(t, "TLS: certificate NOT verified (TLSVerify = no): ", s + 31);
    } else if (starts(s, "SSL certificate problem: ")) {
        trace_emit(t, "TLS: certificate problem: ", s + 25);
    } else if (starts(s, "SSL: ") || starts(s, "CAfile: ")) {
        trace_emit(t, "TLS: ", s);
    }
}

void smtp_trace_text(struct smtp_trace *t, const char *s, size_t n)
{
    /* infof/failf records are one line each, but be safe with several. */
    while (n > 0) {
        const char *nl = memchr(s, '\n', n);
        size_t len = nl ? (size_t)(nl - s) + 1 : n;
        char line[TRACE_LINE_MAX];
        trace_clean(s, len, line, sizeof line);
        if (line[0] != '\0')
            trace_text_line(t, line);
        s += len;
        n -= len;
    }
}

/* The address inside "RCPT TO:<addr> ...", or the whole argument. */
static char *trace_rcpt_addr(const char *line)
{
    const char *lt = strchr(line, '<');
    const char *gt = lt ? strchr(lt, '>') : NULL;
    if (lt && gt)
        return xstrndup(lt + 1, (size_t)(gt - lt - 1));
    const char *colon = strchr(line, ':');
    return xstrdup(colon ? colon + 1 : line);
}

void smtp_trace_out(struct smtp_trace *t, const char *s, size_t n)
{
    char line[TRACE_LINE_MAX];
    trace_clean(s, n, line, sizeof line);
    if (t->in_auth) {
        trace_emit(t, "", "C: (credentials hidden)");
        return;
    }
    buf_reset(&t->reply); /* a reply cut short by a new command is void */
    if (starts(line, "AUTH")) {
        t->in_auth = true;
        t->cmd = SMTP_CMD_AUTH;
        t->stage = SMTP_STAGE_AUTH;
        char mech[64] = "";
        sscanf(line + 4, " %63[A-Za-z0-9_-]", mech);
        char shown[128];
        snprintf(shown, sizeof shown, "C: AUTH %s (credentials hidden)", mech);
        trace_emit(t, "", shown);
        return;
    }
    if (starts(line, "EHLO") || starts(line, "HELO")) {
        t->cmd = SMTP_CMD_EHLO;
        t->ehlo_final = false;
        t->ehlo_auth = false;
    } else if (starts(line, "STARTTLS")) {
        t->cmd = SMTP_CMD_STARTTLS;
        t->stage = SMTP_STAGE_TLS;
    } else if (starts(line, "MAIL")) {
        t->cmd = SMTP_CMD_MAIL;
        t->stage = SMTP_STAGE_MAIL;
    } else if (starts(line, "RCPT")) {
        t->cmd = SMTP_CMD_RCPT;
        t->stage = SMTP_STAGE_RCPT;
        free(t->rcpt);
        t->rcpt = trace_rcpt_addr(line);
    } else if (starts(line, "DATA")) {
        t->cmd = SMTP_CMD_DATA;
        t->stage = SMTP_STAGE_DATA;
    } else if (starts(line, "QUIT")) {
        t->cmd = SMTP_CMD_QUIT;
    } else {
        t->cmd = SMTP_CMD_OTHER;
    }
    trace_emit(t, "C: ", line);
}

static void trace_add_reject(struct smtp_trace *t, int code, const char *reply)
{
    t->rejects = xreallocarray(t->rejects, t->nrejects + 1, sizeof *t->rejects);
    struct smtp_rcpt_reject *r = &t->rejects[t->nrejects++];
    r->addr = t->rcpt ? t->rcpt : xstrdup("");
    t->rcpt = NULL;
    r->code = code;
    r->reply = xstrdup(reply);
}

/* A final reply line arrived: the reply in t->reply answers t->cmd. */
static void trace_complete(struct smtp_trace *t, int code)
{
    if (t->in_auth && code == 334) {
        buf_reset(&t->reply); /* a SASL challenge: the client's answer is secret */
        return;
    }
    if (t->cmd == SMTP_CMD_QUIT) {
        buf_reset(&t->reply);
        return;
    }
    free(t->last);
    t->last = xstrdup(t->reply.data ? t->reply.data : "");
    t->last_code = code;
    switch (t->cmd) {
    case SMTP_CMD_AUTH:
        t->in_auth = false;
        t->auth_ok = code == 235;
        smtp_trace_note(t, "AUTH result: %d (%s)", code, t->auth_ok ? "accepted" : "refused");
        break;
    case SMTP_CMD_EHLO:
        if (t->caps.len > 0)
            smtp_trace_note(t, "EHLO capabilities: %s", t->caps.data);
        break;
    case SMTP_CMD_RCPT:
        if (code / 100 == 2)
            t->naccepted++;
        else
            trace_add_reject(t, code, t->last);
        free(t->rcpt);
        t->rcpt = NULL;
        break;
    case SMTP_CMD_DATA:
        if (code == 354)
            t->cmd = SMTP_CMD_BODY;
        break;
    default:
        break;
    }
    buf_reset(&t->reply);
}

void smtp_trace_in(struct smtp_trace *t, const char *s, size_t n)
{
    char line[TRACE_LINE_MAX];
    trace_clean(s, n, line, sizeof line);
    bool coded = isdigit((unsigned char)line[0]) && isdigit((unsigned char)line[1]) &&
                 isdigit((unsigned char)line[2]) &&
                 (line[3] == '\0' || line[3] == ' ' || line[3] == '-');
    int code = coded ? atoi(line) : 0;
    bool final = coded && line[3] != '-';

    if (t->in_auth && code == 334)
        trace_emit(t, "", "S: 334 (challenge hidden)");
    else
        trace_emit(t, "S: ", line);

    bool first = t->reply.len == 0;
    if (t->cmd == SMTP_CMD_EHLO && !first && coded && line[3] != '\0') {
        if (t->caps.len > 0)
            buf_puts(&t->caps, ", ");
        buf_puts(&t->caps, line + 4);
        /* "AUTH PLAIN LOGIN", or the old "AUTH=LOGIN" form; "AUTH" with no
         * mechanism offers nothing to log in with */
        if (starts(line + 4, "AUTH") && (line[8] == ' ' || line[8] == '=') &&
            line[9 + strspn(line + 9, " ")] != '\0')
            t->ehlo_auth = true;
    } else if (t->cmd == SMTP_CMD_EHLO && first) {
        buf_reset(&t->caps);
    }
    if (t->cmd == SMTP_CMD_EHLO && final)
        t->ehlo_final = true;
    if (!(t->in_auth && code == 334)) {
        if (first) {
            buf_puts(&t->reply, line);
            if (coded && line[3] == '-')
                t->reply.data[3] = ' ';
        } else {
            buf_putc(&t->reply, ' ');
            buf_puts(&t->reply, coded && line[3] != '\0' ? line + 4 : line);
        }
    }
    if (final)
        trace_complete(t, code);
}

const char *smtp_stage_name(int stage)
{
    static const char *const names[] = {"connect", "tls", "auth", "mail", "rcpt", "data", "done"};
    if (stage < 0 || stage > SMTP_STAGE_DONE)
        return "unknown";
    return names[stage];
}
