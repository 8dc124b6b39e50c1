/*
 * graph — the Microsoft 365 transport's front door: jobs in, done() out.
 *
 * Owns: struct graph (the CURLM glue, the token cache, the runs), the
 * per-application budget of GRAPH_MAX_INFLIGHT requests in flight (one FIFO
 * queue per 365Client, shared by every profile of that application, whatever
 * MaxConnections says), and the one libevent callback from which jobs begin
 * and from which every done() is called, so that done() never runs inside
 * graph_submit, inside a libcurl callback, or while we walk our own lists.
 * Never: decides a message's fate (outcome.c does), writes the spool, or
 * frees a job (the caller owns it; done() is the last thing we do with it).
 */
#include "graph_impl.h"
#include "xmalloc.h"

#include <event2/event.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <time.h>

struct graph_app {
    char *client;
    int inflight;
    struct graph_run *head, *tail; /* waiting for a slot, FIFO */
    struct graph_app *next;
};

struct graph {
    struct event_base *base;
    struct log *log;
    struct graph_xfer *xfer;
    struct graph_app *apps;
    struct graph_tok *toks;                  /* the token cache */
    struct graph_tok *flights;               /* tokens with a request in flight, cached or not */
    struct graph_run *runs;                  /* every run alive */
    struct graph_run *new_head, *new_tail;   /* submitted, not begun */
    struct graph_run *done_head, *done_tail; /* finished, done() pending */
    struct graph_req **deferred;             /* requests that could not start */
    size_t ndeferred;
    struct event *ev_work;
    bool aborting;
};

struct event_base *graph_base(struct graph *g)
{
    return g->base;
}

struct log *graph_log(struct graph *g)
{
    return g->log;
}

struct graph_xfer *graph_xfer_of(struct graph *g)
{
    return g->xfer;
}

struct graph_tok **graph_toks_head(struct graph *g)
{
    return &g->toks;
}

struct graph_tok **graph_flights_head(struct graph *g)
{
    return &g->flights;
}

/* ---- queues ---------------------------------------------------------------- */

static void q_push(struct graph_run **head, struct graph_run **tail, struct graph_run *r)
{
    r->qnext = NULL;
    if (*tail)
        (*tail)->qnext = r;
    else
        *head = r;
    *tail = r;
}

static void q_remove(struct graph_run **head, struct graph_run **tail, struct graph_run *r)
{
    struct graph_run *prev = NULL;
    for (struct graph_run *w = *head; w; prev = w, w = w->qnext) {
        if (w != r)
            continue;
        if (prev)
            prev->qnext = w->qnext;
        else
            *head = w->qnext;
        if (*tail == w)
            *tail = prev;
        w->qnext = NULL;
        return;
    }
}

/* A request that failed before curl had it still completes from the loop. */
void graph_defer_req(struct graph *g, struct graph_req *r)
{
    g->deferred = xreallocarray(g->deferred, g->ndeferred + 1, sizeof *g->deferred);
    g->deferred[g->ndeferred++] = r;
    event_active(g->ev_work, 0, 0);
}

/* Cancels, forgets and frees a request wherever it is. */
void graph_req_discard(struct graph *g, struct graph_req *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < g->ndeferred; i++) {
        if (g->deferred[i] == r) {
            g->deferred[i] = g->deferred[--g->ndeferred];
            break;
        }
    }
    graph_xfer_cancel(g->xfer, r);
    graph_req_free(r);
}

/* ---- the per-application budget ------------------------------------------- */

/* Keyed by 365Client without regard to case: Entra's application ids are
 * GUIDs, and two profiles spelling one in different cases are one
 * application with one budget of GRAPH_MAX_INFLIGHT. */
static struct graph_app *app_get(struct graph *g, const char *client)
{
    for (struct graph_app *a = g->apps; a; a = a->next)
        if (strcasecmp(a->client, client) == 0)
            return a;
    struct graph_app *a = xcalloc(1, sizeof *a);
    a->client = xstrdup(client);
    a->next = g->apps;
    g->apps = a;
    return a;
}

static void run_start(struct graph_run *r);

/* Hands free slots to waiting runs, oldest first. */
static void app_next(struct graph *g, struct graph_app *a)
{
    while (!g->aborting && a->head && a->inflight < GRAPH_MAX_INFLIGHT) {
        struct graph_run *w = a->head;
        q_remove(&a->head, &a->tail, w);
        a->inflight++;
        w->slot = true;
        run_start(w);
    }
}

static void slot_release(struct graph_run *r)
{
    if (!r->slot)
        return;
    r->slot = false;
    r->app->inflight--;
    app_next(r->g, r->app);
}

static void run_req_done(struct graph_req *req)
{
    struct graph_run *r = req->owner;
    slot_release(r);
    if (r->state == RS_DONE)
        return; /* aborted while its failed start waited in the deferred list */
    graph_send_response(r);
}

/* Sends r->req now (r holds a slot of its application). */
static void run_start(struct graph_run *r)
{
    struct graph *g = r->g;
    const char *token = NULL;
    if (r->req->auth) {
        /* Only a token with its renewal margin left goes out: one that
         * expires while the request waits at the server would earn a 401. */
        token = graph_token_usable(r->tok, true);
        if (token == NULL) { /* renewal due while queued: give the slot back */
            slot_release(r);
            graph_token_wait(r->tok, r);
            return;
        }
        r->req->token_gen = r->tok->gen;
    }
    struct graph_tls tls;
    graph_token_tls(r->tok, &tls);
    r->req->cb = run_req_done;
    r->req->owner = r;
    r->state = RS_FLIGHT;
    r->begun = true;
    struct err e = {0};
    if (graph_xfer_start(g->xfer, r->req, &tls, token, &e) != 0) {
        r->req->curl_code = CURLE_FAILED_INIT;
        snprintf(r->req->errbuf, sizeof r->req->errbuf, "%.200s", e.msg);
        graph_defer_req(g, r->req);
    }
}

static void run_slot(struct graph_run *r)
{
    struct graph_app *a = r->app;
    if (a->head == NULL && a->inflight < GRAPH_MAX_INFLIGHT) {
        a->inflight++;
        r->slot = true;
        run_start(r);
        return;
    }
    r->state = RS_SLOT;
    q_push(&a->head, &a->tail, r);
}

void graph_run_go(struct graph_run *r)
{
    if (r->req->auth && graph_token_usable(r->tok, true) == NULL) {
        graph_token_wait(r->tok, r);
        return;
    }
    run_slot(r);
}

/* After a token request answered (a new token is fresh for 90 % of its life). */
void graph_send_token_ready(struct graph_run *r)
{
    if (graph_token_usable(r->tok, true) == NULL) {
        graph_token_wait(r->tok, r);
        return;
    }
    run_slot(r);
}

/* ---- runs -------------------------------------------------------------------- */

/* {365GraphHost}/v1.0/users/{FromAddress}, the address percent-encoded except
 * its "@", which a path segment may carry as it is (RFC 3986, 3.3: pchar) and
 * which Microsoft's own examples write so (/users/{userPrincipalName}). */
char *graph_users_url(const char *graph_host, const char *from)
{
    char *esc = curl_easy_escape(NULL, from ? from : "", 0);
    if (esc) {
        char *w = esc;
        for (const char *r = esc; *r; w++) {
            if (strncmp(r, "%40", 3) == 0) {
                *w = '@';
                r += 3;
            } else {
                *w = *r++;
            }
        }
        *w = '\0';
    }
    char *u = xasprintf("%s/v1.0/users/%s", graph_host, esc ? esc : "");
    curl_free(esc);
    return u;
}

struct graph_run *graph_run_new(struct graph *g, struct graph_job *job, struct graph_tok *tok,
                                char *users, const char *client)
{
    struct graph_run *r = xcalloc(1, sizeof *r);
    r->g = g;
    r->job = job;
    r->tok = tok;
    r->users = users;
    r->app = app_get(g, client);
    r->client = xstrdup(client);
    r->started_ms = now_ms_mono();
    r->next = g->runs;
    if (g->runs)
        g->runs->prev = r;
    g->runs = r;
    return r;
}

void graph_run_free(struct graph_run *r)
{
    struct graph *g = r->g;
    if (r->prev)
        r->prev->next = r->next;
    else
        g->runs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    graph_req_discard(g, r->req);
    if (r->ev_delay)
        event_free(r->ev_delay);
    if (r->upload_url) {
        explicit_bzero(r->upload_url, strlen(r->upload_url));
        free(r->upload_url);
    }
    free(r->draft);
    free(r->plan);
    free(r->users);
    free(r->client);
    graph_token_put(r->tok);
    free(r);
}

/* Takes r out of whatever it waits for. */
static void run_detach(struct graph_run *r)
{
    struct graph *g = r->g;
    switch (r->state) {
    case RS_NEW:
        q_remove(&g->new_head, &g->new_tail, r);
        break;
    case RS_TOKEN:
        graph_token_unwait(r->tok, r);
        break;
    case RS_SLOT:
        q_remove(&r->app->head, &r->app->tail, r);
        break;
    case RS_FLIGHT:
        if (r->req)
            graph_xfer_cancel(g->xfer, r->req);
        slot_release(r);
        break;
    case RS_DELAY:
        if (r->ev_delay)
            event_del(r->ev_delay);
        break;
    case RS_DONE:
        break;
    }
}

void graph_run_complete(struct graph_run *r)
{
    struct graph *g = r->g;
    if (r->state == RS_DONE)
        return;
    run_detach(r);
    r->state = RS_DONE;
    if (r->job)
        r->job->duration_ms = now_ms_mono() - r->started_ms;
    q_push(&g->done_head, &g->done_tail, r);
    event_active(g->ev_work, 0, 0);
}

/* The loop's side: deferred requests, new jobs, then done() callbacks. */
static void graph_work_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct graph *g = arg;
    while (g->ndeferred || g->new_head || g->done_head) {
        while (g->ndeferred) {
            struct graph_req *r = g->deferred[0];
            g->deferred[0] = g->deferred[--g->ndeferred];
            r->cb(r);
        }
        while (g->new_head) {
            struct graph_run *r = g->new_head;
            q_remove(&g->new_head, &g->new_tail, r);
            graph_send_begin(r);
        }
        while (g->done_head) {
            struct graph_run *r = g->done_head;
            q_remove(&g->done_head, &g->done_tail, r);
            struct graph_job *job = r->job;
            graph_run_free(r);
            if (job)
                job->done(job, job->arg);
        }
    }
}

/* ---- the public interface --------------------------------------------------- */

struct graph *graph_new(struct event_base *base, struct log *log, struct err *e)
{
    struct graph *g = xcalloc(1, sizeof *g);
    g->base = base;
    g->log = log;
    g->xfer = graph_xfer_new(base, e);
    g->ev_work = event_new(base, -1, 0, graph_work_cb, g);
    if (g->xfer == NULL || g->ev_work == NULL) {
        if (g->ev_work == NULL && g->xfer)
            err_set(e, EX_OSERR, "cannot create the Microsoft 365 transport's event");
        graph_free(g);
        return NULL;
    }
    return g;
}

/* Frees everything; jobs still running are dropped without done() (the daemon
 * calls graph_abort and lets them complete before it gets here). */
void graph_free(struct graph *g)
{
    if (g == NULL)
        return;
    g->aborting = true;
    while (g->runs)
        graph_run_free(g->runs);
    graph_token_abort_all(g);
    graph_token_free_all(g);
    while (g->apps) {
        struct graph_app *a = g->apps;
        g->apps = a->next;
        free(a->client);
        free(a);
    }
    free(g->deferred);
    graph_xfer_free(g->xfer);
    if (g->ev_work)
        event_free(g->ev_work);
    free(g);
}

void graph_submit(struct graph *g, struct graph_job *job)
{
    const struct profile *p = job->profile;
    struct graph_tok *tok = graph_token_get(g, p);
    char *users = graph_users_url(tok->graph_host, p->from_address);
    struct graph_run *r = graph_run_new(g, job, tok, users, p->m365_client ? p->m365_client : "");
    r->state = RS_NEW;
    q_push(&g->new_head, &g->new_tail, r);
    event_active(g->ev_work, 0, 0);
}

void graph_cancel_unstarted(struct graph *g)
{
    if (g == NULL)
        return;
    for (struct graph_run *r = g->runs; r; r = r->next) {
        if (r->job == NULL || r->begun ||
            (r->state != RS_NEW && r->state != RS_TOKEN && r->state != RS_SLOT))
            continue;
        r->job->aborted = true;
        r->job->unstarted = true;
        graph_run_complete(r);
    }
}

void graph_abort(struct graph *g)
{
    if (g == NULL)
        return;
    g->aborting = true;
    for (struct graph_run *r = g->runs; r; r = r->next) {
        if (r->state == RS_DONE)
            continue;
        if (r->job)
            r->job->aborted = true;
        graph_run_complete(r);
    }
    graph_token_abort_all(g);
    g->aborting = false;
}

void graph_job_clear(struct graph_job *job)
{
    if (job == NULL)
        return;
    free(job->error_code);
    free(job->message);
    free(job->request_id);
    free(job->correlation_id);
    job->error_code = job->message = job->request_id = job->correlation_id = NULL;
}
