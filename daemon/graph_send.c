/*
 * graph_send — the requests of one job, as a state machine (enum graph_step).
 *
 * Small messages: one POST users/{from}/sendMail, 202 is success.
 * Messages whose request would exceed Graph's 4 MB limit take the draft path
 * ("Attach large files to Outlook messages", Microsoft Learn):
 *   [DELETE the draft an interrupted attempt left, 404 ignored]
 *   POST users/{from}/messages            -> draft id, on_draft(id) at once
 *   POST .../messages/{id}/attachments     for small attachments not in the draft
 *   POST .../attachments/createUploadSession, then PUT chunks of 10 x 320 KiB
 *        to the pre-authenticated uploadUrl, in order, with Content-Range and
 *        without Authorization (an expired URL, 404/410, restarts the session once)
 *   POST .../messages/{id}/send            -> 202, on_draft(NULL)
 * Every draft-path request carries Prefer: IdType="ImmutableId": the draft's
 * id then stays valid when send moves it to Sent Items ("Obtain immutable
 * identifiers for Outlook resources": create the draft with the header, send
 * it, and the same id names the Sent Items copy). send has no saveToSentItems
 * parameter, so with 365SaveToSentItems = no a detached clean-up run DELETEs
 * that id afterwards, retrying while the copy does not exist yet (404).
 *
 * Owns: the order of those requests, the 401 rule (drop the token, send the
 * same request once more with a new one), and filling struct graph_job.
 * Never: decides the outcome (outcome.c), and never calls done() itself
 * (graph_run_complete queues it for the loop).
 */
#include "graph_impl.h"
#include "log.h"
#include "xmalloc.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define DEL_SENT_TRIES 6 /* 1+2+4+8+16 s for the Sent Items copy to appear */

static bool ok2xx(const struct graph_req *q)
{
    return q->curl_code == CURLE_OK && q->status >= 200 && q->status < 300;
}

static void step_next_att(struct graph_run *r);
static void step_sendmail(struct graph_run *r);
static void step_create_draft(struct graph_run *r);

void graph_job_set_result(struct graph_job *job, const struct graph_req *req, bool token_request)
{
    graph_job_clear(job);
    job->curl_code = req->curl_code;
    job->http_status = req->status;
    job->retry_after = req->retry_after;
    job->token_request = token_request;
    if (token_request) {
        graph_json_parse_token_error(req->resp.data, req->resp.len, &job->error_code, &job->message,
                                     &job->aadsts, &job->request_id, &job->correlation_id);
    } else {
        char *rid = NULL;
        graph_json_parse_error(req->resp.data, req->resp.len, &job->error_code, &job->message,
                               &rid);
        job->request_id = req->request_id ? xstrdup(req->request_id) : rid;
        if (req->request_id)
            free(rid);
    }
    if (req->curl_code != CURLE_OK && job->message == NULL)
        job->message =
            xstrdup(req->errbuf[0] ? req->errbuf : curl_easy_strerror((CURLcode)req->curl_code));
}

static void draft_set(struct graph_run *r, const char *id)
{
    if (r->job && r->job->on_draft)
        r->job->on_draft(r->job, id, r->job->arg);
}

/* Replaces the run's request. */
static struct graph_req *run_req(struct graph_run *r, enum graph_step step, enum graph_method m,
                                 char *url, char *body, size_t len, const char *ctype)
{
    graph_req_free(r->req);
    r->req = graph_req_new(m, url, body, len, ctype);
    r->req->auth = true;
    r->req->immutable_id = step != GS_SENDMAIL;
    r->step = step;
    return r->req;
}

/* After the job's error fields are set: delete our draft (best effort), then end. */
static void run_fail(struct graph_run *r)
{
    struct graph_job *job = r->job;
    if (job && r->draft && !job->aborted && r->step != GS_DEL_FAILED &&
        graph_token_usable(r->tok, false)) {
        char *id = curl_easy_escape(NULL, r->draft, 0);
        run_req(r, GS_DEL_FAILED, GM_DELETE, xasprintf("%s/messages/%s", r->users, id), NULL, 0,
                NULL);
        curl_free(id);
        graph_run_go(r);
        return;
    }
    graph_run_complete(r);
}

static void fail_response(struct graph_run *r)
{
    if (r->job) {
        graph_job_set_result(r->job, r->req, false);
        r->job->draft_path = r->large || r->step == GS_DEL_STALE;
    }
    run_fail(r);
}

/* A failure found here, not by a server (recipient limit, spool read, bad reply). */
static void fail_local(struct graph_run *r, int curl_code, long status, const char *code,
                       const char *message)
{
    struct graph_job *job = r->job;
    if (job) {
        graph_job_clear(job);
        job->curl_code = curl_code;
        job->http_status = status;
        job->error_code = xstrdup_opt(code);
        job->message = xstrdup_opt(message);
        job->draft_path = r->large;
        if (r->req && r->req->request_id)
            job->request_id = xstrdup(r->req->request_id);
    }
    run_fail(r);
}

void graph_send_token_failed(struct graph_run *r, const struct graph_req *flight)
{
    if (r->job) {
        graph_job_set_result(r->job, flight, true);
        r->job->draft_path = r->large;
    }
    graph_run_complete(r);
}

static void success(struct graph_run *r)
{
    struct graph_job *job = r->job;
    graph_job_clear(job);
    job->curl_code = CURLE_OK;
    job->http_status = r->req->status;
    job->request_id = xstrdup_opt(r->req->request_id);
    graph_run_complete(r);
}

/* ---- steps ------------------------------------------------------------------ */

void graph_send_begin(struct graph_run *r)
{
    struct graph_job *job = r->job;
    const struct message *m = job->msg;
    if (m->nrcpts > GRAPH_MAX_RECIPIENTS) {
        /* Exchange Online refuses more recipients per message; not worth a request. */
        fail_local(r, CURLE_OK, 400, "TooManyRecipients",
                   "more than 500 recipients (the Exchange Online limit per message): split it");
        return;
    }
    r->plan = xcalloc(m->natts + 1, 1);
    r->large = graph_json_plan(job->profile, m, r->plan);
    if (m->draft_id && *m->draft_id) {
        char *id = curl_easy_escape(NULL, m->draft_id, 0);
        run_req(r, GS_DEL_STALE, GM_DELETE, xasprintf("%s/messages/%s", r->users, id), NULL, 0,
                NULL);
        curl_free(id);
        graph_run_go(r);
        return;
    }
    if (r->large)
        step_create_draft(r);
    else
        step_sendmail(r);
}

static void step_sendmail(struct graph_run *r)
{
    struct graph_job *job = r->job;
    char *body = NULL;
    size_t len = 0;
    struct err e = {0};
    if (graph_json_sendmail(job->profile, job->msg, r->plan, job->att_read, job->att_ctx, &body,
                            &len, &e) != 0) {
        fail_local(r, CURLE_READ_ERROR, 0, NULL, e.msg);
        return;
    }
    run_req(r, GS_SENDMAIL, GM_POST, xasprintf("%s/sendMail", r->users), body, len,
            "application/json");
    graph_run_go(r);
}

static void step_create_draft(struct graph_run *r)
{
    struct graph_job *job = r->job;
    char *body = NULL;
    size_t len = 0;
    struct err e = {0};
    if (graph_json_draft(job->profile, job->msg, r->plan, job->att_read, job->att_ctx, &body, &len,
                         &e) != 0) {
        fail_local(r, CURLE_READ_ERROR, 0, NULL, e.msg);
        return;
    }
    run_req(r, GS_CREATE_DRAFT, GM_POST, xasprintf("%s/messages", r->users), body, len,
            "application/json");
    graph_run_go(r);
}

/* URL of our draft plus suffix. */
static char *draft_url(const struct graph_run *r, const char *suffix)
{
    char *id = curl_easy_escape(NULL, r->draft, 0);
    char *u = xasprintf("%s/messages/%s%s", r->users, id ? id : "", suffix);
    curl_free(id);
    return u;
}

static void step_add_att(struct graph_run *r)
{
    struct graph_job *job = r->job;
    char *body = NULL;
    size_t len = 0;
    struct err e = {0};
    if (graph_json_attachment(&job->msg->atts[r->att], job->att_read, job->att_ctx, &body, &len,
                              &e) != 0) {
        fail_local(r, CURLE_READ_ERROR, 0, NULL, e.msg);
        return;
    }
    run_req(r, GS_ADD_ATT, GM_POST, draft_url(r, "/attachments"), body, len, "application/json");
    graph_run_go(r);
}

static void step_upload_session(struct graph_run *r)
{
    size_t len = 0;
    char *body = graph_json_upload_session(&r->job->msg->atts[r->att], &len);
    run_req(r, GS_UPLOAD_SESSION, GM_POST, draft_url(r, "/attachments/createUploadSession"), body,
            len, "application/json");
    graph_run_go(r);
}

/* PUTs the next chunk: read from the spool now, so memory holds one chunk. */
static void step_upload_chunk(struct graph_run *r)
{
    struct graph_job *job = r->job;
    const struct msg_attachment *a = &job->msg->atts[r->att];
    int64_t want = a->size - r->off < GRAPH_CHUNK ? a->size - r->off : GRAPH_CHUNK;
    char *chunk = xmalloc((size_t)want + 1);
    int64_t have = 0;
    struct err e = {0};
    while (have < want) {
        ssize_t n =
            job->att_read(job->att_ctx, a, r->off + have, chunk + have, (size_t)(want - have), &e);
        if (n <= 0) {
            free(chunk);
            fail_local(r, CURLE_READ_ERROR, 0, NULL,
                       n == 0 ? "attachment ended early in the spool" : e.msg);
            return;
        }
        have += n;
    }
    struct graph_req *q = run_req(r, GS_UPLOAD_CHUNK, GM_PUT, xstrdup(r->upload_url), chunk,
                                  (size_t)want, "application/octet-stream");
    q->auth = false; /* the URL is pre-authenticated: no Authorization header */
    q->immutable_id = false;
    q->secret_url = true;
    q->extra_header = xasprintf("Content-Range: bytes %lld-%lld/%lld", (long long)r->off,
                                (long long)(r->off + want - 1), (long long)a->size);
    graph_run_go(r);
}

static void step_send_draft(struct graph_run *r)
{
    run_req(r, GS_SEND_DRAFT, GM_POST, draft_url(r, "/send"), NULL, 0, NULL);
    graph_run_go(r);
}

/* The next attachment that is not in the draft yet, else send. */
static void step_next_att(struct graph_run *r)
{
    const struct message *m = r->job->msg;
    for (; r->att < m->natts; r->att++) {
        if (r->plan[r->att] == GA_POST) {
            step_add_att(r);
            return;
        }
        if (r->plan[r->att] == GA_UPLOAD) {
            r->off = 0;
            r->chunks = 0;
            r->restarted_upload = false;
            step_upload_session(r);
            return;
        }
    }
    step_send_draft(r);
}

/* ---- the detached clean-up of the Sent Items copy --------------------------- */

static void del_sent_go(struct graph_run *r)
{
    graph_req_reset(r->req);
    graph_run_go(r);
}

static void del_sent_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    del_sent_go(arg);
}

void graph_send_delete_sent(struct graph *g, struct graph_tok *tok, const char *users,
                            const char *id, const char *client)
{
    tok->refs++;
    struct graph_run *r = graph_run_new(g, NULL, tok, xstrdup(users), client);
    r->draft = xstrdup(id);
    run_req(r, GS_DEL_SENT, GM_DELETE, draft_url(r, ""), NULL, 0, NULL);
    graph_run_go(r);
}

static void del_sent_response(struct graph_run *r)
{
    const struct graph_req *q = r->req;
    if (q->curl_code == CURLE_OK && q->status == 404 && ++r->tries < DEL_SENT_TRIES) {
        /* The copy appears in Sent Items only once Exchange has sent the message. */
        if (r->ev_delay == NULL)
            r->ev_delay = evtimer_new(graph_base(r->g), del_sent_timer, r);
        struct timeval tv = {(time_t)1 << (r->tries - 1), 0};
        r->state = RS_DELAY;
        evtimer_add(r->ev_delay, &tv);
        return;
    }
    if (!ok2xx(q))
        log_event(graph_log(r->g), LL_WARN, "graph",
                  "op=delete-sent-copy profile=%q status=%ld request-id=%q reason=%q", r->tok->name,
                  q->status, q->request_id ? q->request_id : "-",
                  q->curl_code ? curl_easy_strerror((CURLcode)q->curl_code)
                               : "the copy in Sent Items could not be deleted");
    graph_run_complete(r);
}

/* ---- responses -------------------------------------------------------------- */

static void chunk_response(struct graph_run *r)
{
    const struct graph_req *q = r->req;
    const struct msg_attachment *a = &r->job->msg->atts[r->att];
    if (q->curl_code == CURLE_OK && (q->status == 404 || q->status == 410) &&
        !r->restarted_upload) {
        /* The upload URL expired: one new session, from the first byte. */
        r->restarted_upload = true;
        r->off = 0;
        step_upload_session(r);
        return;
    }
    if (!ok2xx(q)) {
        fail_response(r);
        return;
    }
    r->job->bytes += (int64_t)q->body_len;
    int64_t next = r->off + (int64_t)q->body_len;
    if (q->status == 200) {
        int64_t said = graph_json_next_range(q->resp.data, q->resp.len);
        if (said >= 0 && said <= a->size)
            next = said;
    }
    if (q->status == 201 || next >= a->size) {
        r->att++;
        step_next_att(r);
        return;
    }
    /* The server names where to go on; one that never advances is not followed forever. */
    if (++r->chunks > 2 * (a->size / GRAPH_CHUNK + 2)) {
        fail_local(r, CURLE_WEIRD_SERVER_REPLY, 0, NULL, "the upload session does not advance");
        return;
    }
    r->off = next;
    step_upload_chunk(r);
}

static void large_response(struct graph_run *r)
{
    struct graph_req *q = r->req;
    switch (r->step) {
    case GS_CREATE_DRAFT:
        r->draft = graph_json_get_string(q->resp.data, q->resp.len, "id");
        if (r->draft == NULL) {
            fail_local(r, CURLE_WEIRD_SERVER_REPLY, 0, NULL, "Graph created no draft id");
            return;
        }
        draft_set(r, r->draft); /* before anything else: a crash leaves a record */
        r->att = 0;
        step_next_att(r);
        return;
    case GS_ADD_ATT:
        r->att++;
        step_next_att(r);
        return;
    case GS_UPLOAD_SESSION: {
        char *url = graph_json_get_string(q->resp.data, q->resp.len, "uploadUrl");
        if (url == NULL) {
            fail_local(r, CURLE_WEIRD_SERVER_REPLY, 0, NULL, "upload session without uploadUrl");
            return;
        }
        if (r->upload_url) {
            explicit_bzero(r->upload_url, strlen(r->upload_url));
            free(r->upload_url);
        }
        r->upload_url = url;
        r->off = 0;
        step_upload_chunk(r);
        return;
    }
    case GS_SEND_DRAFT:
        draft_set(r, NULL);
        if (!r->job->profile->m365_save_to_sent)
            graph_send_delete_sent(r->g, r->tok, r->users, r->draft, r->client);
        success(r);
        return;
    default:
        graph_run_complete(r);
        return;
    }
}

void graph_send_response(struct graph_run *r)
{
    struct graph_req *q = r->req;
    if (q->curl_code == CURLE_OK && q->status == 401 && q->auth && !r->retried_401) {
        /* An expired or revoked token: renew it and send this request once more. */
        r->retried_401 = true;
        graph_token_drop(r->tok, q->token_gen);
        graph_req_reset(q);
        graph_run_go(r);
        return;
    }
    if (r->step == GS_DEL_SENT) {
        del_sent_response(r);
        return;
    }
    if (r->step == GS_DEL_FAILED) {
        if (ok2xx(q) || (q->curl_code == CURLE_OK && q->status == 404))
            draft_set(r, NULL);
        graph_run_complete(r);
        return;
    }
    if (r->step == GS_DEL_STALE) {
        if (!ok2xx(q) && !(q->curl_code == CURLE_OK && q->status == 404)) {
            fail_response(r);
            return;
        }
        draft_set(r, NULL);
        if (r->large)
            step_create_draft(r);
        else
            step_sendmail(r);
        return;
    }
    if (r->step == GS_UPLOAD_CHUNK) {
        chunk_response(r);
        return;
    }
    if (!ok2xx(q)) {
        fail_response(r);
        return;
    }
    r->job->bytes += (int64_t)q->body_len;
    if (r->step == GS_SENDMAIL)
        success(r);
    else
        large_response(r);
}
