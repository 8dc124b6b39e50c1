/*
 * outcome — what one delivery attempt means for the message and the profile.
 *
 * Owns: the one mapping of every transport result (curl code, SMTP reply and
 * stage, HTTP status and Graph / Entra error codes) to exactly one of OK,
 * TEMPFAIL, PERMFAIL, PROFILE-FAULT (DESIGN.md section 5), the plain-words
 * reason, and the retry delay (exponential backoff with jitter, capped,
 * Retry-After when larger). Pure functions, tested by a table.
 * Never: touches the spool, the log or any clock; callers pass the time in.
 */
#ifndef MAILSPOOL_OUTCOME_H
#define MAILSPOOL_OUTCOME_H

#include <stdbool.h>
#include <stdint.h>

enum outcome_kind {
    OUT_OK = 0,
    OUT_TEMPFAIL, /* retry the message later */
    OUT_PERMFAIL, /* fail the message now */
    OUT_PROFILE,  /* the profile's fault: defer without burning an attempt, suspend */
    OUT_ABORTED,  /* shutdown stopped it: requeue, no attempt counted */
};

struct outcome {
    enum outcome_kind kind;
    char reason[512];      /* for the log and last_error; never holds a secret */
    int64_t retry_after;   /* seconds the server asked us to wait, 0 none */
    bool maybe_delivered;  /* the server may have accepted it (timeout after ".") */
    bool message_specific; /* a PROFILE-like failure that concerns only this message (Graph draft
                              403) */
};

/* Input of the SMTP classification: the fields of a finished smtp_job. */
struct smtp_result {
    int curl_code;
    int reply_code;
    const char *reply;
    const char *error;
    int stage; /* enum smtp_stage */
    bool data_sent;
    bool aborted;
    int msg_err;    /* sysexits code when the message itself could not be sent */
    bool anonymous; /* SMTPAuthReq = NIL */
    const char *profile;
    const char *host;
};

void outcome_classify_smtp(const struct smtp_result *r, struct outcome *o);

/* Input of the Graph classification. */
struct graph_result {
    int curl_code;
    long http_status;       /* 0 when no response */
    const char *error_code; /* Graph error.code or OAuth "error" */
    long aadsts;            /* AADSTS number from a token error, 0 none */
    const char *message;    /* Graph error.message / error_description (first line) */
    const char *request_id;
    int64_t retry_after;
    bool token_request; /* the failure came from the token endpoint */
    bool draft_path;    /* the request was part of the draft/upload path */
    bool aborted;
    const char *profile;
};

void outcome_classify_graph(const struct graph_result *r, struct outcome *o);

const char *outcome_kind_name(enum outcome_kind k);

/*
 * Delay before attempt number `attempts + 1` (attempts already made >= 1):
 * retry_min * 2^(attempts-1), capped at retry_max, times a jitter factor in
 * [0.9, 1.1] drawn from *rand_state; a larger retry_after wins. Seconds, >= 1.
 */
int64_t outcome_backoff(int attempts, int64_t retry_min, int64_t retry_max, int64_t retry_after,
                        unsigned int *rand_state);

#endif
