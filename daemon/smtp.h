/*
 * smtp — the SMTP transport: libcurl on worker threads.
 *
 * Owns: a small pool of worker threads, each running curl_easy_perform for
 * one job at a time with an easy handle taken from a per-profile cache (so
 * connections are reused across messages of a profile); the MIME stream for
 * the job (common/mime.c, attachments read in chunks through the worker's own
 * spool connection); capture of the server's replies (final reply, rejected
 * recipients) through CURLOPT_DEBUGFUNCTION; TLS policy per profile.
 * Never: touches the scheduler, the log, or writes the spool; never calls
 * back into the loop except through the completion hand-off below.
 *
 * Why threads: libcurl's SMTP blocks waiting for the reply to the final "."
 * even in multi mode (DESIGN.md section 4, "A trap"). Jobs complete on the
 * loop thread: a worker queues the finished job and writes to an eventfd that
 * a persistent EV_READ event on the loop's base watches; that callback runs
 * done() (no evthread_use_pthreads needed). curl_global_init must have run
 * before smtp_pool_new (main does it before any thread).
 */
#ifndef MAILSPOOL_SMTP_H
#define MAILSPOOL_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

#include "config.h"
#include "err.h"
#include "message.h"

struct event_base;
struct smtp_pool;

/* One recipient refused at RCPT time. Every refusal is recorded; when
 * naccepted is 0 they were all refused and the transaction failed (curl_code
 * set, reply the last RCPT reply), else the message went to the others. */
struct smtp_rcpt_reject {
    char *addr;
    int code; /* e.g. 550, or 451 */
    /* the server's reply, lines joined by spaces,
     * e.g. "550 5.1.1 <x@y>: Recipient address rejected" */
    char *reply;
};

struct smtp_job {
    /* ---- input, set by the loop thread; not touched by the worker after done ---- */
    const struct profile *profile;                 /* kept alive by the caller until done() */
    const struct message *msg;                     /* ditto; validated by the caller */
    void (*done)(struct smtp_job *job, void *arg); /* runs on the loop thread */
    void *arg;

    /* ---- output, set by the worker ---- */
    int curl_code;  /* CURLcode of curl_easy_perform */
    int reply_code; /* last SMTP reply code (CURLINFO_RESPONSE_CODE), 0 when none */
    char *reply;    /* last server reply text (final "." reply on success), or NULL */
    char *error;    /* curl's error buffer text, or NULL; never holds a secret */
    int stage;      /* enum smtp_stage reached when it failed; SMTP_STAGE_DONE on success */
    bool data_sent; /* the whole body and "." were handed over: a timeout or lost
                     * connection now means "maybe delivered" */
    struct smtp_rcpt_reject *rejects;
    size_t nrejects;
    size_t naccepted; /* recipients accepted at RCPT */
    int64_t bytes;    /* message bytes handed to curl */
    int64_t duration_ms;
    bool aborted;   /* smtp_pool_abort() stopped it */
    bool unstarted; /* smtp_pool_cancel_queued() returned it before it began */
    int msg_err;    /* sysexits code when the message itself could not be sent
                     * (EX_DATAERR: unusable envelope address or attachment;
                     * EX_TEMPFAIL/EX_IOERR: spool read failed), 0 otherwise;
                     * error then says why and curl_code is CURLE_READ_ERROR */
};

enum smtp_stage {
    SMTP_STAGE_CONNECT = 0, /* resolve, connect, greeting */
    SMTP_STAGE_TLS,         /* STARTTLS refused or not offered / handshake / certificate */
    SMTP_STAGE_AUTH,        /* AUTH */
    SMTP_STAGE_MAIL,        /* MAIL FROM */
    SMTP_STAGE_RCPT,        /* RCPT TO */
    SMTP_STAGE_DATA,        /* DATA and the final "." */
    SMTP_STAGE_DONE,
};
/* "connect", "tls", "auth", "mail", "rcpt", "data", "done". */
const char *smtp_stage_name(int stage);

struct smtp_timeouts {
    long connect_s;   /* CURLOPT_CONNECTTIMEOUT, default 30 */
    long response_s;  /* CURLOPT_SERVER_RESPONSE_TIMEOUT, default 600 (RFC 5321's "." wait) */
    long low_speed_s; /* the body upload made no progress this long: CURLE_OPERATION_TIMEDOUT,
                       * default 120. Checked by the transport itself, not with
                       * CURLOPT_LOW_SPEED_*: curl applies those to the wait for
                       * the reply to "." too, which response_s governs */
};

/* Threads are started here; spool_path is opened by each worker at its first message
 * with attachments (read-only use: blobs; should that open fail, the job ends with
 * msg_err set, a temporary failure; NULL: no spool, messages with attachments
 * fail). Call on the loop thread. */
struct smtp_pool *smtp_pool_new(struct event_base *base, int nthreads, const char *spool_path,
                                const struct smtp_timeouts *t, struct err *e);
/*
 * Aborts running jobs, joins the workers, then runs the done() of every job
 * whose done() has not run yet (aborted ones with aborted=true) on the calling
 * thread, and frees the cached handles (their connections are closed without
 * waiting for a QUIT reply). Call it on the loop thread, or after the loop
 * stopped, before event_base_free and while done()'s targets still exist; a
 * done() must not call smtp_pool_free.
 */
void smtp_pool_free(struct smtp_pool *p);
/* Queues a job; done() runs later on the loop thread, exactly once. The output
 * fields are overwritten, not freed: smtp_job_clear a job before resubmitting it.
 * After smtp_pool_abort every submitted job completes at once with aborted=true. */
void smtp_pool_submit(struct smtp_pool *p, struct smtp_job *job);
/* For a graceful stop: returns the queued jobs that wait for a connection of
 * their profile to free (aborted=true, unstarted=true); running ones, and
 * queued ones a worker can start at once, go on. */
void smtp_pool_cancel_queued(struct smtp_pool *p);
/* Aborts running transfers (shutdown timeout) and fails queued jobs with aborted=true
 * (curl_code CURLE_ABORTED_BY_CALLBACK). Sticky: the pool is only good for freeing. */
void smtp_pool_abort(struct smtp_pool *p);
/* Drops cached connections of a profile name (reload changed it); handles in use
 * by a running job are dropped when it ends. Does not block on the server. */
void smtp_pool_forget_profile(struct smtp_pool *p, const char *profile_name);
/* Frees the output fields of a finished job (not the job itself) and empties them. */
void smtp_job_clear(struct smtp_job *job);

/*
 * `mailspool test`: sends one message through profile synchronously on the
 * calling thread, printing each step to out (resolve, connect, TLS version
 * and certificate subject, EHLO capabilities, AUTH mechanism and result,
 * server replies) with the password and AUTH payloads masked. Returns 0
 * accepted, EX_UNAVAILABLE refused permanently, EX_TEMPFAIL temporary,
 * EX_CONFIG profile/configuration problem (TLS or certificate failure,
 * STARTTLS not offered to an SSL profile, AUTH refused, 530/534/535/538, a
 * host name that does not exist), EX_DATAERR when msg is not sendable.
 */
int smtp_test(const struct profile *profile, const struct message *msg,
              const struct smtp_timeouts *t, FILE *out);

#endif
