/*
 * smtp_xfer — one libcurl easy handle per profile, one message per perform.
 *
 * Owns: the profile's TLS and AUTH policy as curl options, the envelope, the
 * MIME stream as the read callback, the abort and low-speed checks, and the
 * job's output fields.
 * Never: lets credentials cross the wire in plaintext (STARTTLS is required
 * with CURLUSESSL_ALL, never _TRY, before curl may AUTH), sends AUTH for an
 * anonymous profile, or hands curl an envelope address it did not check.
 *
 * Low speed: curl's own CURLOPT_LOW_SPEED_* check also runs while curl waits
 * (blocking) for the reply to the final ".", where no byte moves; it would cut
 * that wait, which RFC 5321 allows to last 10 minutes, down to low_speed_s.
 * So the check lives in the progress callback and only covers the body.
 */
#include "smtp_xfer.h"
#include "idna.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct xfer_ctx {
    struct smtp_trace trace;
    struct mime *mm;
    struct mime_sender sender;
    char *from_ace, *reply_ace; /* the profile's addresses with ASCII domains, or NULL */
    const struct smtp_xfer_io *io;
    int64_t bytes;
    bool data_sent;
    bool read_failed;
    bool aborted;
    bool too_slow;
    bool need_auth; /* SMTPAuthReq = SSL */
    bool no_auth;   /* stopped: the server offered no AUTH after TLS */
    bool prev_cr;   /* the last byte handed over was CR */
    struct err read_err;
    curl_off_t last_ul;
    int64_t last_progress_ms; /* 0: body not started */
    char errbuf[CURL_ERROR_SIZE];
};

static int64_t xfer_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Characters of a host name; anything else falls back to another name. */
static bool xfer_hostname_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-'))
            return false;
    }
    return true;
}

void smtp_xfer_ehlo_name(const char *from_address, char *out, size_t outlen)
{
    char host[256] = "";
    /* curl's default EHLO name is gethostname() cut at the first dot, which
     * relays with reject_non_fqdn_helo_hostname refuse; prefer the FQDN. */
    if (gethostname(host, sizeof host - 1) == 0 && strchr(host, '.') && xfer_hostname_ok(host)) {
        snprintf(out, outlen, "%s", host);
        return;
    }
    const char *at = from_address ? strrchr(from_address, '@') : NULL;
    if (at && xfer_hostname_ok(at + 1)) {
        snprintf(out, outlen, "%s", at + 1);
        return;
    }
    snprintf(out, outlen, "localhost");
}

/* An envelope address curl may put between < and > unchanged. A space is
 * allowed inside a quoted local part only ("quoted local"@example.org, which
 * enqueue accepts). */
static bool xfer_addr_ok(const char *a)
{
    if (a == NULL || a[0] == '\0' || strchr(a, '@') == NULL)
        return false;
    bool quoted = false;
    for (const unsigned char *p = (const unsigned char *)a; *p; p++) {
        if (*p == '"' && (p == (const unsigned char *)a || p[-1] != '\\'))
            quoted = !quoted;
        if (*p == ' ' && quoted)
            continue;
        if (*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>')
            return false;
    }
    return true;
}

static int xfer_debug(CURL *h, curl_infotype type, char *data, size_t size, void *userp)
{
    (void)h;
    struct xfer_ctx *x = userp;
    if (x == NULL)
        return 0;
    switch (type) {
    case CURLINFO_TEXT:
        smtp_trace_text(&x->trace, data, size);
        break;
    case CURLINFO_HEADER_OUT:
        smtp_trace_out(&x->trace, data, size);
        break;
    case CURLINFO_HEADER_IN:
        smtp_trace_in(&x->trace, data, size);
        break;
    default:
        break; /* body bytes and TLS records */
    }
    return 0;
}

/*
 * libcurl passes every SMTP reply line here, right after the debug callback
 * has fed it to the trace, so the trace's state is that of the line.
 * Returning 0 stops the transfer there (CURLE_WRITE_ERROR):
 * - SMTPAuthReq = SSL: libcurl authenticates only when the server offers
 *   AUTH; when it offers none after TLS, libcurl goes on to MAIL and the mail
 *   leaves unauthenticated, which the profile rules out (and a relay that
 *   wants a login would refuse it anyway, burning the message's attempts).
 *   The transfer stops at the end of the EHLO reply that follows the TLS
 *   handshake when that reply lacks AUTH, or, should that be missed, at the
 *   reply to MAIL when no AUTH succeeded. A reused connection was checked
 *   when it was opened.
 * A recipient refused at RCPT, 4xx or 5xx, does not stop the transfer
 * (CURLOPT_MAIL_RCPT_ALLOWFAILS): the others get the message, and the
 * refusals are in the job for delivery.c, which keeps a 4xx recipient
 * pending in the spool and sends it the message alone later.
 */
static size_t xfer_header(char *buf, size_t size, size_t n, void *userp)
{
    (void)buf;
    (void)size;
    struct xfer_ctx *x = userp;
    if (x == NULL)
        return n;
    const struct smtp_trace *t = &x->trace;
    if (!x->need_auth || t->reused || !t->tls_done || t->auth_ok)
        return n;
    if ((t->cmd == SMTP_CMD_EHLO && t->ehlo_final && !t->ehlo_auth) || t->cmd == SMTP_CMD_MAIL) {
        x->no_auth = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    return n;
}

bool smtp_xfer_crlf_check(bool *prev_cr, const char *buf, size_t n, size_t *bad)
{
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if ((*prev_cr && c != '\n') || (c == '\n' && !*prev_cr)) {
            *bad = i;
            return false;
        }
        *prev_cr = c == '\r';
    }
    return true;
}

bool smtp_xfer_crlf_check_skip(bool *prev_cr, const char *buf, size_t n,
                               const struct mime_span *skip, size_t *bad)
{
    if (skip == NULL || skip->len == 0 || skip->off >= n)
        return smtp_xfer_crlf_check(prev_cr, buf, n, bad);
    size_t a = skip->off, b = skip->len < n - a ? a + skip->len : n;
    /* Before the span, and its first byte, which must continue what came
     * before it (a CR before it is followed by LF). */
    if (!smtp_xfer_crlf_check(prev_cr, buf, a + 1, bad))
        return false;
    *prev_cr = buf[b - 1] == '\r';
    size_t rest_bad = 0;
    if (smtp_xfer_crlf_check(prev_cr, buf + b, n - b, &rest_bad))
        return true;
    *bad = b + rest_bad;
    return false;
}

/* Holds the composed message to strict CRLF, except in the bytes the base64
 * encoder wrote (mime.h: CRLF by construction). Checking those too was about
 * an eighth of the CPU of sending an attachment (tests/bench profile of W3). */
static bool xfer_crlf_ok(struct xfer_ctx *x, const char *buf, size_t n, const struct mime_span *b64)
{
    size_t bad = 0;
    if (smtp_xfer_crlf_check_skip(&x->prev_cr, buf, n, b64, &bad))
        return true;
    err_set(&x->read_err, EX_DATAERR, "bare %s at byte %lld of the composed message",
            buf[bad] == '\n' ? "LF" : "CR", (long long)(x->bytes + (int64_t)bad));
    return false;
}

static size_t xfer_read(char *buf, size_t size, size_t nitems, void *userp)
{
    struct xfer_ctx *x = userp;
    if (x == NULL || x->mm == NULL)
        return CURL_READFUNC_ABORT;
    struct mime_span b64;
    ssize_t n = mime_read_marked(x->mm, buf, size * nitems, &b64, &x->read_err);
    if (n < 0) {
        x->read_failed = true;
        return CURL_READFUNC_ABORT;
    }
    if (n == 0 && x->prev_cr)
        err_set(&x->read_err, EX_DATAERR, "the composed message ends in a bare CR");
    if ((n == 0 && x->prev_cr) || (n > 0 && !xfer_crlf_ok(x, buf, (size_t)n, &b64))) {
        x->read_failed = true;
        return CURL_READFUNC_ABORT;
    }
    if (n == 0) {
        /* Everything before this was written to the socket already (curl
         * refills only an empty buffer); "." follows at once. */
        x->data_sent = true;
        smtp_trace_note(&x->trace, "(message body: %lld bytes)", (long long)x->bytes);
        return 0;
    }
    x->bytes += n;
    return (size_t)n;
}

static int xfer_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    struct xfer_ctx *x = userp;
    if (x == NULL)
        return 0;
    if (x->io->abort && atomic_load(x->io->abort)) {
        x->aborted = true;
        return 1;
    }
    if (x->trace.cmd != SMTP_CMD_BODY || x->data_sent || x->io->low_speed_s <= 0)
        return 0;
    int64_t now = xfer_now_ms();
    if (x->last_progress_ms == 0 || ulnow != x->last_ul) {
        x->last_ul = ulnow;
        x->last_progress_ms = now;
    } else if (now - x->last_progress_ms >= x->io->low_speed_s * 1000) {
        x->too_slow = true;
        return 1;
    }
    return 0;
}

/* curl's upload buffer, a little under its default of 64 KiB. For every
 * read callback curl's SMTP code mallocs a scratch buffer of twice this size
 * for dot-stuffing and frees it again when nothing needed stuffing, as in
 * our output, where no line starts with "." (lib/smtp.c,
 * Curl_smtp_escape_eob). Above mailspoold's mmap threshold (daemon/main.c)
 * every callback would cost an mmap and a munmap: 110 of each per 5 MiB
 * message, a fifth of the CPU of sending it (measured with a threshold of
 * 128 KiB and the default buffer, whose scratch block is 128 KiB). Larger
 * buffers did not pay (W2/W3 CPU unchanged at 256 KiB and 512 KiB, peak RSS
 * up by 1.5 and 3.5 MB). */
#define XFER_UPLOAD_BUF (63L * 1024)

#define XSET(h, opt, val)                                                                          \
    do {                                                                                           \
        if (curl_easy_setopt((h), (opt), (val)) != CURLE_OK)                                       \
            bad = #opt;                                                                            \
    } while (0)

/* TLS: implicit → smtps://; STARTTLS → smtp:// with CURLUSESSL_ALL, which makes
 * curl send STARTTLS whether or not it is offered and fail the transfer
 * (CURLE_USE_SSL_FAILED) before any AUTH when it is refused. An SSL profile is
 * never sent in plaintext, even if its smtp_tls says none. */
static bool xfer_implicit_tls(const struct profile *pr)
{
    return pr->smtp_tls == SMTP_TLS_IMPLICIT;
}

static long xfer_use_ssl(const struct profile *pr)
{
    if (pr->transport == TRANSPORT_SMTP_AUTH || pr->smtp_tls != SMTP_TLS_NONE)
        return CURLUSESSL_ALL;
    return CURLUSESSL_NONE;
}

static const char *xfer_set_profile(CURL *h, const struct profile *pr,
                                    const struct smtp_timeouts *t, const char *url,
                                    const char *from)
{
    const char *bad = NULL;
    XSET(h, CURLOPT_NOSIGNAL, 1L);
    XSET(h, CURLOPT_URL, url);
    XSET(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    XSET(h, CURLOPT_USE_SSL, xfer_use_ssl(pr));
    if (pr->transport == TRANSPORT_SMTP_AUTH) {
        XSET(h, CURLOPT_USERNAME, pr->username ? pr->username : "");
        XSET(h, CURLOPT_PASSWORD, pr->password ? pr->password : "");
    }
    XSET(h, CURLOPT_MAIL_FROM, from);
    XSET(h, CURLOPT_MAIL_RCPT_ALLLOWFAILS, 1L);
    XSET(h, CURLOPT_UPLOAD, 1L);
    XSET(h, CURLOPT_UPLOAD_BUFFERSIZE, XFER_UPLOAD_BUF);
    XSET(h, CURLOPT_CONNECTTIMEOUT, t->connect_s);
    XSET(h, CURLOPT_SERVER_RESPONSE_TIMEOUT, t->response_s);
    XSET(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (pr->ca_file)
        XSET(h, CURLOPT_CAINFO, pr->ca_file);
    XSET(h, CURLOPT_SSL_VERIFYPEER, pr->tls_verify ? 1L : 0L);
    XSET(h, CURLOPT_SSL_VERIFYHOST, pr->tls_verify ? 2L : 0L);
    XSET(h, CURLOPT_READFUNCTION, xfer_read);
    XSET(h, CURLOPT_DEBUGFUNCTION, xfer_debug);
    XSET(h, CURLOPT_HEADERFUNCTION, xfer_header);
    XSET(h, CURLOPT_XFERINFOFUNCTION, xfer_progress);
    XSET(h, CURLOPT_NOPROGRESS, 0L);
    return bad;
}

CURL *smtp_xfer_handle_new(const struct profile *pr, const struct smtp_timeouts *t, struct err *e)
{
    if (pr->transport != TRANSPORT_SMTP_AUTH && pr->transport != TRANSPORT_SMTP_ANON) {
        err_set(e, EX_CONFIG, "profile %s: not an SMTP profile", pr->name);
        return NULL;
    }
    if (pr->smtp_host == NULL || !xfer_addr_ok(pr->from_address)) {
        err_set(e, EX_CONFIG, "profile %s: SMTPHost or FromAddress missing or invalid", pr->name);
        return NULL;
    }
    CURL *h = curl_easy_init();
    if (h == NULL) {
        err_set(e, EX_SOFTWARE, "profile %s: curl_easy_init failed", pr->name);
        return NULL;
    }
    /* An internationalized domain in the envelope and EHLO by its A-labels,
     * so that only a non-ASCII local part makes curl ask for SMTPUTF8. */
    char *from_ace = NULL;
    struct err ie = {0};
    if (idna_address(pr->from_address, &from_ace, &ie) != 0)
        from_ace = NULL;
    const char *from_addr = from_ace ? from_ace : pr->from_address;
    char ehlo[256];
    smtp_xfer_ehlo_name(from_addr, ehlo, sizeof ehlo);
    bool v6 = strchr(pr->smtp_host, ':') != NULL;
    /* The URL's path is the EHLO name (curl's documented SMTP URL form). */
    char *url =
        xasprintf("%s://%s%s%s:%d/%s", xfer_implicit_tls(pr) ? "smtps" : "smtp", v6 ? "[" : "",
                  pr->smtp_host, v6 ? "]" : "", pr->smtp_port > 0 ? pr->smtp_port : 25, ehlo);
    char *from = xasprintf("<%s>", from_addr);
    const char *bad = xfer_set_profile(h, pr, t, url, from);
    free(url);
    free(from);
    free(from_ace);
    if (bad) {
        curl_easy_cleanup(h);
        err_set(e, EX_SOFTWARE,
                "profile %s: this libcurl refuses %s (is it built with SMTP and TLS?)", pr->name,
                bad);
        return NULL;
    }
    return h;
}

void smtp_xfer_handle_free(CURL *h, bool polite)
{
    if (h == NULL)
        return;
    if (!polite) {
        /* curl owns the fd and closes it; shutdown() only makes its QUIT and
         * TLS close_notify fail fast instead of waiting for a silent server. */
        curl_socket_t fd = CURL_SOCKET_BAD;
        if (curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK && fd != CURL_SOCKET_BAD)
            shutdown(fd, SHUT_RDWR);
    }
    curl_easy_cleanup(h);
}

/* The envelope: every pending mailbox (To, Cc and Bcc) once, as "<addr>"
 * (message_mark_same has run: a server may deliver a mailbox named twice
 * twice, and one RCPT reply per mailbox is what delivery.c pairs). NULL with e set
 * when an address would let text through curl unchecked. */
static struct curl_slist *xfer_rcpts(const struct message *m, struct err *e)
{
    struct curl_slist *l = NULL;
    for (size_t i = 0; i < m->nrcpts; i++) {
        if (m->rcpts[i].state != RCPT_PENDING || m->rcpts[i].same_as != SIZE_MAX)
            continue; /* had it already, refused for good, or named once already */
        if (!xfer_addr_ok(m->rcpts[i].addr)) {
            curl_slist_free_all(l);
            err_set(e, EX_DATAERR, "message %lld: recipient %zu is not a usable address",
                    (long long)m->id, i + 1);
            return NULL;
        }
        char *a = xasprintf("<%s>", m->rcpts[i].addr);
        struct curl_slist *n = curl_slist_append(l, a);
        free(a);
        if (n == NULL) {
            curl_slist_free_all(l);
            err_set(e, EX_TEMPFAIL, "message %lld: out of memory", (long long)m->id);
            return NULL;
        }
        l = n;
    }
    if (l == NULL)
        err_set(e, EX_DATAERR, "message %lld: no recipient left to send to", (long long)m->id);
    return l;
}

static void xfer_bind(CURL *h, struct xfer_ctx *x, struct curl_slist *rcpts)
{
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L); /* the debug callback needs it */
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_READDATA, x);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts);
}

/* Nothing of this job may stay reachable from a cached handle. */
static void xfer_unbind(CURL *h)
{
    curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, NULL);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, NULL);
    curl_easy_setopt(h, CURLOPT_READDATA, NULL);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, NULL);
}

static bool xfer_tls_code(CURLcode rc)
{
    switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return true;
    default:
        return false;
    }
}

static void xfer_fill_job(CURL *h, CURLcode rc, struct xfer_ctx *x, struct smtp_job *job)
{
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    job->curl_code = rc;
    job->reply_code = code ? (int)code : x->trace.last_code;
    job->reply = x->trace.last;
    x->trace.last = NULL;
    job->data_sent = x->data_sent;
    job->rejects = x->trace.rejects;
    job->nrejects = x->trace.nrejects;
    x->trace.rejects = NULL;
    x->trace.nrejects = 0;
    job->naccepted = x->trace.naccepted;
    job->bytes = x->bytes;
    job->aborted = x->aborted;
    job->stage = rc == CURLE_OK ? SMTP_STAGE_DONE : x->trace.stage;
    if (xfer_tls_code(rc))
        job->stage = SMTP_STAGE_TLS;
    else if (rc == CURLE_LOGIN_DENIED)
        job->stage = SMTP_STAGE_AUTH;
    if (x->no_auth) {
        job->curl_code = CURLE_AUTH_ERROR;
        job->stage = SMTP_STAGE_AUTH;
        job->error = xstrdup("the server offers no AUTH after TLS; nothing was sent");
    } else if (x->read_failed) {
        job->curl_code = CURLE_READ_ERROR;
        job->msg_err = x->read_err.code ? x->read_err.code : EX_IOERR;
        job->error = xasprintf("reading the message: %s", x->read_err.msg);
    } else if (x->too_slow) {
        job->curl_code = CURLE_OPERATION_TIMEDOUT;
        job->error = xasprintf("the server accepted no message data for %ld s", x->io->low_speed_s);
    } else if (rc != CURLE_OK) {
        job->error = xstrdup(x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    }
}

void smtp_xfer_job_reset(struct smtp_job *job)
{
    job->curl_code = 0;
    job->reply_code = 0;
    job->reply = NULL;
    job->error = NULL;
    job->stage = SMTP_STAGE_CONNECT;
    job->data_sent = false;
    job->rejects = NULL;
    job->nrejects = 0;
    job->naccepted = 0;
    job->bytes = 0;
    job->duration_ms = 0;
    job->aborted = false;
    job->msg_err = 0;
}

static ssize_t xfer_no_att_read(void *ctx, const struct msg_attachment *a, int64_t off, void *buf,
                                size_t len, struct err *e)
{
    (void)ctx;
    (void)off;
    (void)buf;
    (void)len;
    return err_set(e, EX_SOFTWARE, "attachment %s: no spool to read it from", a->name);
}

/*
 * A cached connection the server closed while idle (many relays answer 421 to
 * the next command after N messages or an idle timeout, and curl's liveness
 * check sees a TLS connection with an unread alert as alive) fails the first
 * command. Nothing of the message was accepted then, so a second try on a
 * fresh connection cannot duplicate it.
 */
static enum smtp_xfer_after xfer_after(CURLcode rc, const struct xfer_ctx *x,
                                       const struct smtp_job *job)
{
    if (rc == CURLE_OK)
        return SMTP_XFER_KEEP;
    if (x->trace.reused && !x->data_sent && !x->aborted && !x->read_failed &&
        job->stage <= SMTP_STAGE_MAIL && (x->trace.last_code == 421 || x->trace.last_code == 0))
        return SMTP_XFER_RETRY_FRESH;
    if (job->stage == SMTP_STAGE_TLS || job->stage == SMTP_STAGE_AUTH)
        return SMTP_XFER_DROP;
    return SMTP_XFER_KEEP;
}

enum smtp_xfer_after smtp_xfer_run(CURL *h, struct smtp_job *job, const struct smtp_xfer_io *io)
{
    const struct profile *pr = job->profile;
    int64_t start = xfer_now_ms();
    smtp_xfer_job_reset(job);
    struct err e = {0};
    struct curl_slist *rcpts = xfer_rcpts(job->msg, &e);
    if (rcpts == NULL) {
        job->curl_code = CURLE_READ_ERROR;
        job->msg_err = e.code;
        job->error = xstrdup(e.msg);
        job->stage = SMTP_STAGE_CONNECT;
        job->duration_ms = xfer_now_ms() - start;
        return SMTP_XFER_KEEP;
    }
    struct xfer_ctx *x = xcalloc(1, sizeof *x);
    x->io = io;
    /* The profile's addresses in the headers in their ASCII form, as curl
     * sends FromAddress in MAIL FROM; one that has none stays as written
     * (the server judges it). */
    struct err ie = {0};
    if (idna_address(pr->from_address, &x->from_ace, &ie) != 0)
        x->from_ace = NULL;
    if (pr->reply_to && idna_mailbox(pr->reply_to, &x->reply_ace, &ie) != 0)
        x->reply_ace = NULL;
    x->sender.from_address = x->from_ace ? x->from_ace : pr->from_address;
    x->sender.from_name = pr->from_display_name;
    x->sender.reply_to = x->reply_ace ? x->reply_ace : pr->reply_to;
    x->mm =
        mime_new(job->msg, &x->sender, io->att_read ? io->att_read : xfer_no_att_read, io->att_ctx);
    smtp_trace_init(&x->trace, xfer_implicit_tls(pr), io->emit, io->emit_ctx);
    x->need_auth = pr->transport == TRANSPORT_SMTP_AUTH;

    xfer_bind(h, x, rcpts);
    CURLcode rc = curl_easy_perform(h);
    xfer_fill_job(h, rc, x, job);
    xfer_unbind(h);

    enum smtp_xfer_after after = xfer_after(rc, x, job);
    curl_slist_free_all(rcpts);
    mime_free(x->mm);
    smtp_trace_free(&x->trace);
    free(x->from_ace);
    free(x->reply_ace);
    free(x);
    job->duration_ms = xfer_now_ms() - start;
    return after;
}
