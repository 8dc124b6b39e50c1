/*
 * graph_impl — the parts of the Microsoft 365 transport shared between its
 * files (graph.c, graph_xfer.c, graph_json.c, graph_token.c, graph_send.c,
 * graph_test.c). Not a public interface: only graph_*.c include it.
 *
 * Owns: the limits taken from Microsoft's documentation, struct graph_req
 * (one HTTP request with everything libcurl does not copy), and the
 * internal structs of the token cache, the per-application request budget
 * and the per-job state machine.
 * Never: holds a token or secret anywhere but graph_tok, a request's
 * Authorization header list and the token request's form body, all wiped
 * when freed.
 */
#ifndef MAILSPOOL_GRAPH_IMPL_H
#define MAILSPOOL_GRAPH_IMPL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "graph.h"

/* Microsoft's documented limits (Graph throttling limits, Outlook service
 * limits, "Attach large files to Outlook messages"). */
#define GRAPH_MAX_RECIPIENTS 500       /* Exchange Online recipients per message */
#define GRAPH_REQUEST_LIMIT 4000000    /* a Graph request body must stay under 4 MB */
#define GRAPH_UPLOAD_MIN (3 << 20)     /* attachments from 3 MB go through upload sessions */
#define GRAPH_CHUNK (10 * 320 * 1024)  /* multiple of 320 KiB, under 4 MB */
#define GRAPH_MAX_HEADERS 5            /* Graph refuses more internetMessageHeaders */
#define GRAPH_TOKEN_MAX_LIFETIME 86400 /* seconds: a longer expires_in is not believed */
#define GRAPH_RETRY_AFTER_MAX 3600     /* seconds: a longer Retry-After counts as this */
#define GRAPH_RESP_MAX (8 << 20)       /* a created draft echoes its body: keep up to 8 MiB */
#define GRAPH_CONNECT_TIMEOUT 30L      /* seconds */
#define GRAPH_LOW_SPEED_TIME 120L      /* seconds below 1 byte/s before giving up */

enum graph_method { GM_GET = 0, GM_POST, GM_PUT, GM_DELETE };

struct graph_tls {
    const char *ca_file; /* CAFile or NULL */
    bool verify;         /* TLSVerify */
    bool allow_http;     /* the configuration names a plain http:// loopback endpoint */
};

/* One HTTP request. Everything curl does not copy (URL is copied, but the
 * body given with CURLOPT_POSTFIELDS, the header list and the error buffer
 * are not) lives here until the easy handle is cleaned up. */
struct graph_req {
    CURL *easy;
    struct curl_slist *hdrs;
    enum graph_method method;
    char *url;
    char *body; /* malloc'ed, or NULL */
    size_t body_len;
    const char *content_type; /* static string, or NULL */
    char *extra_header;       /* e.g. "Content-Range: bytes 0-9/10", or NULL */
    bool auth;                /* sends "Authorization: Bearer" */
    bool immutable_id;        /* sends Prefer: IdType="ImmutableId" */
    bool secret_body;         /* body holds a secret: wiped when freed */
    bool secret_url;          /* URL is pre-authenticated: wiped when freed */
    unsigned token_gen;       /* generation of the token this request carried */

    /* result */
    struct buf resp;
    bool resp_truncated;
    char errbuf[CURL_ERROR_SIZE];
    char *request_id; /* response header request-id */
    int curl_code;
    long status;
    int64_t retry_after;
    bool running;

    void (*cb)(struct graph_req *r); /* completion, called from the loop */
    void *owner;
    struct graph_req *done_next; /* graph_xfer's list of finished transfers */
};

/* ---- graph_xfer.c: requests, and one CURLM driven by the libevent loop ---- */
struct graph_xfer;
struct event_base;

struct graph_req *graph_req_new(enum graph_method m, char *url, char *body, size_t body_len,
                                const char *content_type);
void graph_req_free(struct graph_req *r);
/* Clears the result so that the same request can be sent again. */
void graph_req_reset(struct graph_req *r);
/* Creates the easy handle with every option (used by the loop and by graph_test). */
int graph_req_prepare(struct graph_req *r, const struct graph_tls *tls, const char *token,
                      struct err *e);
/* Reads status, Retry-After and curl's result after a transfer, then frees the handle. */
void graph_req_finish(struct graph_req *r, CURLcode rc);

struct graph_xfer *graph_xfer_new(struct event_base *base, struct err *e);
/* Cancels what is running (no callbacks) and cleans up the multi handle;
 * must run before event_base_free. */
void graph_xfer_free(struct graph_xfer *x);
/* Starts r; its cb runs later from a libevent callback. Never call from a
 * libcurl callback. */
int graph_xfer_start(struct graph_xfer *x, struct graph_req *r, const struct graph_tls *tls,
                     const char *token, struct err *e);
/* Stops r if it runs; its cb is not called. */
void graph_xfer_cancel(struct graph_xfer *x, struct graph_req *r);

/* ---- graph_json.c: request bodies and response parsing ---- */
enum graph_att_plan {
    GA_SENDMAIL = 0, /* inline in the sendMail request */
    GA_DRAFT,        /* inline in the draft creation request */
    GA_POST,         /* POST .../messages/{id}/attachments */
    GA_UPLOAD,       /* createUploadSession + PUT chunks */
};

/* Decides the path: false (all GA_SENDMAIL) when the sendMail request fits
 * under GRAPH_REQUEST_LIMIT, else true with a plan for each attachment. */
bool graph_json_plan(const struct profile *p, const struct message *m, unsigned char *plan);
/* {"message": {...}, "saveToSentItems": ...} with the GA_SENDMAIL attachments. */
int graph_json_sendmail(const struct profile *p, const struct message *m, const unsigned char *plan,
                        mime_att_read_fn rd, void *ctx, char **out, size_t *len, struct err *e);
/* The message object of a draft with its GA_DRAFT attachments. */
int graph_json_draft(const struct profile *p, const struct message *m, const unsigned char *plan,
                     mime_att_read_fn rd, void *ctx, char **out, size_t *len, struct err *e);
/* One #microsoft.graph.fileAttachment. */
int graph_json_attachment(const struct msg_attachment *a, mime_att_read_fn rd, void *ctx,
                          char **out, size_t *len, struct err *e);
/* {"AttachmentItem": {...}} of createUploadSession. */
char *graph_json_upload_session(const struct msg_attachment *a, size_t *len);

/* The string member key of the top-level object, or NULL. */
char *graph_json_get_string(const char *body, size_t len, const char *key);
/* Start of nextExpectedRanges[0] of an upload session response, -1 when absent. */
int64_t graph_json_next_range(const char *body, size_t len);
/* Graph's {"error": {"code", "message", "innerError": {"request-id"}}}. */
void graph_json_parse_error(const char *body, size_t len, char **code, char **message,
                            char **request_id);
/* Entra ID's token response: 0 and *token, *expires_in on success. */
int graph_json_parse_token(const char *body, size_t len, char **token, int64_t *expires_in);
/* Entra ID's {"error", "error_description", "error_codes", "trace_id", "correlation_id"}. */
void graph_json_parse_token_error(const char *body, size_t len, char **error, char **message,
                                  long *aadsts, char **trace_id, char **correlation_id);

/* The roles claim of a JWT access token as "A B C" (may be ""); -1 when the
 * token is not a readable JWT. Only the payload is decoded; nothing is verified. */
int graph_json_jwt_roles(const char *token, char **roles);

/* ---- graph_token.c: the token cache, single flight per profile ---- */
struct graph;
struct graph_run;

struct graph_tok {
    struct graph *g;
    struct graph_tok *next; /* g->toks while cached */
    int refs;
    bool cached; /* in g->toks (forget_profile takes it out) */
    char *name;
    char fp[65];
    /* what a token request needs, copied: the profile may be freed by a reload */
    char *client, *tenant, *secret, *authority, *graph_host, *ca_file;
    bool tls_verify;
    bool allow_http; /* config allows http:// on loopback only (tests, local proxies) */

    char *access_token; /* NULL when none; never logged */
    unsigned gen;       /* bumped by every new token */
    int64_t renew_ms;   /* monotonic: renew from here (min(5 min, 10%) before expiry) */
    int64_t expire_ms;  /* monotonic: unusable from here */
    int64_t expires_wall;
    struct graph_req *flight; /* the one token request in flight */
    struct graph_tok *fnext;  /* graph_flights_head while flight is set */
    struct graph_run *wait_head, *wait_tail;
};

struct graph_tok *graph_token_get(struct graph *g, const struct profile *p);
void graph_token_put(struct graph_tok *t);
/* A token that needs no renewal yet (or, with fresh == false, one still usable). */
const char *graph_token_usable(struct graph_tok *t, bool fresh);
/* Queues r until a token request answers (starts one when none is in flight). */
void graph_token_wait(struct graph_tok *t, struct graph_run *r);
void graph_token_unwait(struct graph_tok *t, struct graph_run *r);
/* Drops the token a request was refused with (401), unless already renewed. */
void graph_token_drop(struct graph_tok *t, unsigned gen);
void graph_token_tls(const struct graph_tok *t, struct graph_tls *tls);
char *graph_token_form(const struct graph_tok *t, size_t *len);
char *graph_token_url(const struct graph_tok *t);
void graph_token_abort_all(struct graph *g);
void graph_token_free_all(struct graph *g);

/* ---- graph_send.c: one job's requests ---- */
enum graph_step {
    GS_SENDMAIL = 0,   /* POST users/{from}/sendMail */
    GS_DEL_STALE,      /* DELETE the draft an interrupted attempt left */
    GS_CREATE_DRAFT,   /* POST users/{from}/messages */
    GS_ADD_ATT,        /* POST .../messages/{id}/attachments */
    GS_UPLOAD_SESSION, /* POST .../attachments/createUploadSession */
    GS_UPLOAD_CHUNK,   /* PUT a chunk to the upload URL (no Authorization) */
    GS_SEND_DRAFT,     /* POST .../messages/{id}/send */
    GS_DEL_FAILED,     /* DELETE our draft after a failure (best effort) */
    GS_DEL_SENT,       /* detached: DELETE the Sent Items copy (365SaveToSentItems = no) */
};

enum graph_run_state { RS_NEW = 0, RS_TOKEN, RS_SLOT, RS_FLIGHT, RS_DELAY, RS_DONE };

struct graph_app; /* graph.c: the request budget of one 365Client */

struct graph_run {
    struct graph *g;
    struct graph_job *job; /* NULL for a detached clean-up */
    struct graph_tok *tok; /* reference */
    struct graph_app *app;
    char *users;  /* {365GraphHost}/v1.0/users/{FromAddress, escaped} */
    char *client; /* 365Client: the application whose budget it uses */
    enum graph_step step;
    enum graph_run_state state;
    bool large;
    unsigned char *plan;
    size_t att;
    int64_t off;
    char *draft;      /* id of the draft we created */
    char *upload_url; /* pre-authenticated: a secret */
    struct graph_req *req;
    bool retried_401, restarted_upload;
    bool begun; /* a request of this run went out (graph_cancel_unstarted) */
    bool slot;  /* holds one of its application's GRAPH_MAX_INFLIGHT slots */
    int tries;  /* GS_DEL_SENT attempts */
    int chunks; /* PUTs for the current attachment: bounded */
    struct event *ev_delay;
    int64_t started_ms;
    struct graph_run *prev, *next; /* g->runs */
    struct graph_run *qnext;       /* a token, slot or completion queue */
};

void graph_send_begin(struct graph_run *r);
/* The token request answered: go on, or fail with its error. */
void graph_send_token_ready(struct graph_run *r);
void graph_send_token_failed(struct graph_run *r, const struct graph_req *flight);
/* The request of r completed (slot already released). */
void graph_send_response(struct graph_run *r);
/* Starts a detached clean-up that deletes the sent copy of draft id. */
void graph_send_delete_sent(struct graph *g, struct graph_tok *tok, const char *users,
                            const char *id, const char *client);

/* ---- graph.c: shared services of the transport ---- */
struct event_base *graph_base(struct graph *g);
struct log *graph_log(struct graph *g);
struct graph_xfer *graph_xfer_of(struct graph *g);
/* Takes the reference on tok and the string users. */
struct graph_run *graph_run_new(struct graph *g, struct graph_job *job, struct graph_tok *tok,
                                char *users, const char *client);
void graph_run_free(struct graph_run *r);
/* Sends r->req: waits for a token and a slot of the application as needed. */
void graph_run_go(struct graph_run *r);
/* Ends a job: done() runs later from a libevent callback; detached runs are freed. */
void graph_run_complete(struct graph_run *r);
struct graph_tok **graph_toks_head(struct graph *g);
/* A reload may take a token out of the cache while its request is in flight:
 * this list still holds it, so that a stop can cancel the request. */
struct graph_tok **graph_flights_head(struct graph *g);
/* Cancels, forgets (also from the requests that could not start) and frees r. */
void graph_req_discard(struct graph *g, struct graph_req *r);
/* A request that failed before curl had it completes from the loop all the same. */
void graph_defer_req(struct graph *g, struct graph_req *r);
/* Clocks: now_ms_mono() and now_s_wall() of daemon/clock.c. */
int64_t now_ms_mono(void);
int64_t now_s_wall(void);

/* Fills the job's output from a failed or refused request. */
void graph_job_set_result(struct graph_job *job, const struct graph_req *req, bool token_request);
char *graph_users_url(const char *graph_host, const char *from);

#endif
