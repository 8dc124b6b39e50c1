/*
 * smtp_xfer — one libcurl easy handle per profile, one message per perform.
 *
 * Owns: the TLS and AUTH policy of a profile expressed as curl options, the
 * envelope (MAIL FROM, RCPT TO incl. Bcc), the MIME stream as curl's read
 * callback, abort and low-speed checks, and filling a job's output fields.
 * Never: touches threads, queues or the loop; the caller decides on which
 * thread a transfer runs (pool workers, or `mailspool test` inline).
 *
 * Internal to the SMTP transport (daemon/smtp*.c).
 */
#ifndef MAILSPOOL_SMTP_XFER_H
#define MAILSPOOL_SMTP_XFER_H

#include <stdatomic.h>
#include <stdbool.h>

#include <curl/curl.h>

#include "config.h"
#include "err.h"
#include "mime.h"
#include "smtp.h"
#include "smtp_trace.h"

struct smtp_xfer_io {
    mime_att_read_fn att_read; /* attachment bytes; NULL: a message with attachments fails */
    void *att_ctx;
    const atomic_bool *abort; /* set: end the transfer now (may be NULL) */
    long low_speed_s;         /* no body bytes accepted for this long: give up */
    smtp_trace_emit_fn emit;  /* transcript for `mailspool test`, or NULL */
    void *emit_ctx;
};

/* A handle carrying everything of the profile that does not change per
 * message (URL, TLS, credentials, timeouts, callbacks). NULL with e set. */
CURL *smtp_xfer_handle_new(const struct profile *pr, const struct smtp_timeouts *t, struct err *e);

/* Makes a handle safe to drop without waiting for a server: its idle
 * connection's socket is shut down so that curl_easy_cleanup's QUIT fails at
 * once instead of waiting up to a response timeout. Then cleans it up. */
void smtp_xfer_handle_free(CURL *h, bool polite);

/* What to do with the handle after a transfer. */
enum smtp_xfer_after {
    SMTP_XFER_KEEP,        /* cache it for the next message of the profile */
    SMTP_XFER_DROP,        /* suspect state (a TLS or AUTH failure): clean it up */
    SMTP_XFER_RETRY_FRESH, /* a reused connection was found dead (421 or no reply to
                            * MAIL) before anything of the message was accepted: drop
                            * it and run the job once more on a fresh handle */
};

/* Sends job->msg through h (made for job->profile) and fills job's output fields. */
enum smtp_xfer_after smtp_xfer_run(CURL *h, struct smtp_job *job, const struct smtp_xfer_io *io);

/* Sets a job's output fields to "nothing yet" without freeing them (the
 * caller clears a finished job with smtp_job_clear before reusing it). */
void smtp_xfer_job_reset(struct smtp_job *job);

/* curl stuffs dots after CRLF only; a bare CR or LF in the body could end the
 * data early at some servers (SMTP smuggling). The composer promises strict
 * CRLF and the read callback holds it to that with this check: false and *bad
 * (index in buf) at the first bare CR or LF; *prev_cr carries across chunks
 * (start false; true at the end means the stream ended in a bare CR). */
bool smtp_xfer_crlf_check(bool *prev_cr, const char *buf, size_t n, size_t *bad);
/* The same, but the bytes in skip (the base64 encoder's own output, see
 * mime_read_marked) are taken as CRLF-clean: only the first of them is
 * checked, against what precedes it; *prev_cr carries across them. */
bool smtp_xfer_crlf_check_skip(bool *prev_cr, const char *buf, size_t n,
                               const struct mime_span *skip, size_t *bad);

/* The EHLO name: the host's FQDN when gethostname() gives one, else the
 * domain of FromAddress, else "localhost". */
void smtp_xfer_ehlo_name(const char *from_address, char *out, size_t outlen);

#endif
