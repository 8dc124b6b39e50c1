/*
 * smtp_trace — reading one SMTP session out of libcurl's debug stream.
 *
 * Owns: the stage reached (enum smtp_stage), pairing each command sent with
 * the reply that follows (RCPT TO:<addr> with its reply), the last complete
 * reply, rejected recipients, and the masking of AUTH exchanges; optionally
 * a human transcript for `mailspool test` through an emit callback.
 * Never: stores or emits an AUTH command's arguments or anything the client
 * sends after a 334 challenge (base64 credentials); touches curl itself, so
 * it can be tested by feeding it lines.
 *
 * Internal to the SMTP transport (daemon/smtp*.c).
 */
#ifndef MAILSPOOL_SMTP_TRACE_H
#define MAILSPOOL_SMTP_TRACE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "smtp.h"

/* The command whose reply is awaited. */
enum smtp_trace_cmd {
    SMTP_CMD_GREETING = 0, /* nothing sent yet: the server's greeting */
    SMTP_CMD_EHLO,         /* EHLO or HELO */
    SMTP_CMD_STARTTLS,
    SMTP_CMD_AUTH, /* AUTH and every SASL continuation */
    SMTP_CMD_MAIL,
    SMTP_CMD_RCPT,
    SMTP_CMD_DATA,
    SMTP_CMD_BODY, /* the message after 354; its reply is the one to "." */
    SMTP_CMD_QUIT,
    SMTP_CMD_OTHER,
};

typedef void (*smtp_trace_emit_fn)(void *ctx, const char *line);

struct smtp_trace {
    int stage;         /* enum smtp_stage */
    int cmd;           /* enum smtp_trace_cmd */
    bool implicit_tls; /* smtps://: the handshake precedes the greeting */
    bool tls_done;     /* a TLS handshake completed in this session */
    bool in_auth;      /* between AUTH and its final (non-334) reply */
    bool reused;       /* curl reused a cached connection */
    bool auth_ok;      /* a 235 answered AUTH */
    bool ehlo_final;   /* the reply to the last EHLO is complete */
    bool ehlo_auth;    /* ... and offered AUTH */
    char *rcpt;        /* address of the RCPT awaiting its reply */

    struct buf reply; /* the reply being assembled, lines joined by spaces */
    int reply_code;
    char *last; /* last complete reply (not QUIT's, not a 334), or NULL */
    int last_code;

    struct smtp_rcpt_reject *rejects;
    size_t nrejects;
    size_t naccepted;

    struct buf caps; /* EHLO keywords of the last EHLO reply, for the transcript */

    smtp_trace_emit_fn emit; /* NULL: no transcript */
    void *emit_ctx;
};

void smtp_trace_init(struct smtp_trace *t, bool implicit_tls, smtp_trace_emit_fn emit,
                     void *emit_ctx);
/* Frees everything still owned (rejects not taken, replies). */
void smtp_trace_free(struct smtp_trace *t);

/* One call per libcurl debug record: CURLINFO_TEXT, _HEADER_OUT, _HEADER_IN. */
void smtp_trace_text(struct smtp_trace *t, const char *s, size_t n);
void smtp_trace_out(struct smtp_trace *t, const char *s, size_t n);
void smtp_trace_in(struct smtp_trace *t, const char *s, size_t n);

/* Emits one transcript line (a note of our own), if a transcript is kept. */
void smtp_trace_note(struct smtp_trace *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
