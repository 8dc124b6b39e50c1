/*
 * graph — the Microsoft 365 transport: OAuth 2.0 client credentials against
 * Entra ID and Microsoft Graph sendMail (or draft + upload session + send for
 * messages over Graph's 4 MB request limit), on the loop's CURLM.
 *
 * Owns: the per-profile token cache (single flight, renewed when less than
 * min(5 min, 10% of its lifetime) remains, dropped on 401 and retried once),
 * the per-application limit of 4 requests in flight, request building with
 * cJSON, and the parsing of Graph / Entra error bodies into struct graph_job.
 * Never: writes the spool or the log of deliveries; decides nothing about
 * the message's fate (outcome.c does); logs or returns a token or secret.
 */
#ifndef MAILSPOOL_GRAPH_H
#define MAILSPOOL_GRAPH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "message.h"
#include "mime.h"

struct event_base;
struct graph;

/* Microsoft's limit of concurrent requests per application (Graph throttling
 * limits); the transport queues what exceeds it. */
#define GRAPH_MAX_INFLIGHT 4

struct graph_job {
    /* ---- input (loop thread; kept alive by the caller until done) ---- */
    const struct profile *profile;
    const struct message *msg;
    mime_att_read_fn att_read; /* attachment bytes, read in chunks */
    void *att_ctx;
    /* Called when a draft is created (draft_id) or deleted (NULL), before the
     * next request, so that a crash mid-upload leaves a record to clean up. */
    void (*on_draft)(struct graph_job *job, const char *draft_id, void *arg);
    void (*done)(struct graph_job *job, void *arg);
    void *arg;

    /* ---- output ---- */
    int curl_code;
    long http_status;
    char *error_code; /* Graph error.code or OAuth error */
    long aadsts;
    char *message;    /* first line of the error description */
    char *request_id; /* Graph request-id (or Entra trace_id for token errors) */
    char *correlation_id;
    int64_t retry_after;
    bool token_request;
    bool draft_path;
    bool aborted;
    bool unstarted; /* graph_cancel_unstarted() returned it before any request */
    int64_t bytes;
    int64_t duration_ms;
};

struct graph *graph_new(struct event_base *base, struct log *log, struct err *e);
void graph_free(struct graph *g);
void graph_submit(struct graph *g, struct graph_job *job);
/* For a graceful stop: completes every job that has not sent a request yet
 * (waiting for a token or for a slot of its application) with aborted=true
 * and unstarted=true; jobs with a request out or done go on. */
void graph_cancel_unstarted(struct graph *g);
/* Drops the cached token of a profile (reload changed it). */
void graph_forget_profile(struct graph *g, const char *profile_name);
/* Wall-clock expiry of the cached token of a profile, 0 when none. */
int64_t graph_token_expires(struct graph *g, const char *profile_name);
/* Aborts transfers in flight; their jobs complete with aborted = true. */
void graph_abort(struct graph *g);
void graph_job_clear(struct graph_job *job);

/* `mailspool test` for a Microsoft 365 profile: synchronous, prints each step. */
int graph_test(const struct profile *p, const struct message *msg, FILE *out);

#endif
