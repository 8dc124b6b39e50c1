/*
 * graph_token — OAuth 2.0 client credentials against Entra ID, one cached
 * access token per profile.
 *
 * Owns: struct graph_tok (keyed by profile name and fingerprint, so that a
 * reload with a new secret gets a new entry), the single flight (one token
 * request per profile at a time; every delivery that needs a token waits for
 * it and shares the answer), renewal when less than min(5 min, 10 %) of the
 * lifetime (Entra's expires_in) remains, and dropping a token Graph refused.
 * Never: logs, prints or returns a token or the client secret; both are
 * wiped from memory when dropped.
 */
#include "graph_impl.h"
#include "log.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void wipe_str(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void tok_free(struct graph_tok *t)
{
    wipe_str(t->access_token);
    wipe_str(t->secret);
    free(t->name);
    free(t->client);
    free(t->tenant);
    free(t->authority);
    free(t->graph_host);
    free(t->ca_file);
    free(t);
}

/* Copies a URL prefix without its trailing slashes. */
static char *strip_slash(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        n--;
    return xstrndup(s, n);
}

struct graph_tok *graph_token_get(struct graph *g, const struct profile *p)
{
    struct graph_tok **head = graph_toks_head(g);
    for (struct graph_tok *t = *head; t; t = t->next) {
        if (strcmp(t->name, p->name) == 0 && strcmp(t->fp, p->fingerprint) == 0) {
            t->refs++;
            return t;
        }
    }
    struct graph_tok *t = xcalloc(1, sizeof *t);
    t->g = g;
    t->refs = 2; /* the cache and the caller */
    t->cached = true;
    t->name = xstrdup(p->name);
    snprintf(t->fp, sizeof t->fp, "%s", p->fingerprint);
    t->client = xstrdup(p->m365_client ? p->m365_client : "");
    t->tenant = xstrdup(p->m365_tenant ? p->m365_tenant : "");
    t->secret = xstrdup(p->m365_secret ? p->m365_secret : "");
    t->authority = strip_slash(p->m365_authority_host ? p->m365_authority_host
                                                      : "https://login.microsoftonline.com");
    t->graph_host =
        strip_slash(p->m365_graph_host ? p->m365_graph_host : "https://graph.microsoft.com");
    t->ca_file = xstrdup_opt(p->ca_file);
    t->tls_verify = p->tls_verify;
    t->allow_http = strncasecmp(t->authority, "http://", 7) == 0 ||
                    strncasecmp(t->graph_host, "http://", 7) == 0;
    t->next = *head;
    *head = t;
    return t;
}

void graph_token_put(struct graph_tok *t)
{
    if (t && --t->refs == 0)
        tok_free(t);
}

const char *graph_token_usable(struct graph_tok *t, bool fresh)
{
    if (t->access_token == NULL)
        return NULL;
    int64_t now = now_ms_mono();
    return now < (fresh ? t->renew_ms : t->expire_ms) ? t->access_token : NULL;
}

void graph_token_tls(const struct graph_tok *t, struct graph_tls *tls)
{
    tls->ca_file = t->ca_file;
    tls->verify = t->tls_verify;
    tls->allow_http = t->allow_http;
}

char *graph_token_url(const struct graph_tok *t)
{
    char *tenant = curl_easy_escape(NULL, t->tenant, 0);
    char *url = xasprintf("%s/%s/oauth2/v2.0/token", t->authority, tenant ? tenant : "");
    curl_free(tenant);
    return url;
}

/* The form body; holds the secret (the request wipes it when freed). */
char *graph_token_form(const struct graph_tok *t, size_t *len)
{
    char *scope_raw = xasprintf("%s/.default", t->graph_host);
    char *client = curl_easy_escape(NULL, t->client, 0);
    char *secret = curl_easy_escape(NULL, t->secret, 0);
    char *scope = curl_easy_escape(NULL, scope_raw, 0);
    char *form = xasprintf("client_id=%s&client_secret=%s&scope=%s&grant_type=client_credentials",
                           client ? client : "", secret ? secret : "", scope ? scope : "");
    if (secret)
        explicit_bzero(secret, strlen(secret));
    curl_free(client);
    curl_free(secret);
    curl_free(scope);
    free(scope_raw);
    *len = strlen(form);
    return form;
}

/* Stores a new token; renewal starts when min(5 min, 10 %) of its lifetime remains. */
static void tok_store(struct graph_tok *t, char *token, int64_t lifetime)
{
    wipe_str(t->access_token);
    t->access_token = token;
    t->gen++;
    int64_t now = now_ms_mono();
    int64_t margin = lifetime * 100; /* 10 % in ms */
    if (margin > 300000)
        margin = 300000;
    t->expire_ms = now + lifetime * 1000;
    t->renew_ms = t->expire_ms - margin;
    t->expires_wall = now_s_wall() + lifetime;
    char when[40];
    log_iso_time(t->expires_wall, when, sizeof when);
    log_event(graph_log(t->g), LL_INFO, "token", "profile=%q expires=%s lifetime=%llds", t->name,
              when, (long long)lifetime);
}

static void tok_log_failure(struct graph_tok *t, const struct graph_req *r)
{
    char *error = NULL, *message = NULL, *trace = NULL, *corr = NULL;
    long aadsts = 0;
    graph_json_parse_token_error(r->resp.data, r->resp.len, &error, &message, &aadsts, &trace,
                                 &corr);
    if (r->curl_code != CURLE_OK)
        log_event(graph_log(t->g), LL_WARN, "token", "profile=%q result=failed reason=%q", t->name,
                  r->errbuf[0] ? r->errbuf : curl_easy_strerror((CURLcode)r->curl_code));
    else
        log_event(graph_log(t->g), LL_WARN, "token",
                  "profile=%q result=refused status=%ld error=%q aadsts=%ld trace_id=%q "
                  "correlation_id=%q reason=%q",
                  t->name, r->status, error ? error : "-", aadsts, trace ? trace : "-",
                  corr ? corr : "-", message ? message : "");
    free(error);
    free(message);
    free(trace);
    free(corr);
}

static void tok_flight_unlink(struct graph_tok *t)
{
    for (struct graph_tok **pp = graph_flights_head(t->g); *pp; pp = &(*pp)->fnext) {
        if (*pp == t) {
            *pp = t->fnext;
            t->fnext = NULL;
            return;
        }
    }
}

/* The token request answered: store the token, then let every waiter go on. */
static void tok_flight_done(struct graph_req *r)
{
    struct graph_tok *t = r->owner;
    t->flight = NULL;
    tok_flight_unlink(t);
    bool ok = false;
    if (r->curl_code == CURLE_OK && r->status == 200) {
        char *token = NULL;
        int64_t lifetime = 0;
        if (graph_json_parse_token(r->resp.data, r->resp.len, &token, &lifetime) == 0) {
            tok_store(t, token, lifetime);
            explicit_bzero(r->resp.data, r->resp.len); /* held the token */
            ok = true;
        } else {
            if (r->resp.data)
                explicit_bzero(r->resp.data, r->resp.len); /* may hold a token all the same */
            r->curl_code = CURLE_WEIRD_SERVER_REPLY;
            snprintf(r->errbuf, sizeof r->errbuf, "token response without access_token");
        }
    }
    if (!ok)
        tok_log_failure(t, r);
    struct graph_run *w = t->wait_head;
    t->wait_head = t->wait_tail = NULL;
    while (w) {
        struct graph_run *next = w->qnext;
        w->qnext = NULL;
        if (ok)
            graph_send_token_ready(w);
        else
            graph_send_token_failed(w, r);
        w = next;
    }
    graph_req_free(r);
    graph_token_put(t);
}

static void tok_start_flight(struct graph_tok *t)
{
    size_t len = 0;
    char *form = graph_token_form(t, &len);
    struct graph_req *r =
        graph_req_new(GM_POST, graph_token_url(t), form, len, "application/x-www-form-urlencoded");
    r->secret_body = true;
    r->cb = tok_flight_done;
    r->owner = t;
    t->refs++;
    t->flight = r;
    struct graph_tok **flights = graph_flights_head(t->g);
    t->fnext = *flights;
    *flights = t;
    struct graph_tls tls;
    graph_token_tls(t, &tls);
    struct err e = {0};
    if (graph_xfer_start(graph_xfer_of(t->g), r, &tls, NULL, &e) != 0) {
        r->curl_code = CURLE_FAILED_INIT;
        snprintf(r->errbuf, sizeof r->errbuf, "%.200s", e.msg);
        graph_defer_req(t->g, r);
    }
}

void graph_token_wait(struct graph_tok *t, struct graph_run *r)
{
    r->state = RS_TOKEN;
    r->qnext = NULL;
    if (t->wait_tail)
        t->wait_tail->qnext = r;
    else
        t->wait_head = r;
    t->wait_tail = r;
    if (t->flight == NULL)
        tok_start_flight(t);
}

void graph_token_unwait(struct graph_tok *t, struct graph_run *r)
{
    struct graph_run *prev = NULL;
    for (struct graph_run *w = t->wait_head; w; prev = w, w = w->qnext) {
        if (w != r)
            continue;
        if (prev)
            prev->qnext = w->qnext;
        else
            t->wait_head = w->qnext;
        if (t->wait_tail == w)
            t->wait_tail = prev;
        w->qnext = NULL;
        return;
    }
}

void graph_token_drop(struct graph_tok *t, unsigned gen)
{
    if (t->access_token && t->gen == gen) {
        wipe_str(t->access_token);
        t->access_token = NULL;
    }
}

/* Shutdown: token requests in flight are cancelled (their waiters were
 * aborted), also those of tokens a reload took out of the cache. */
void graph_token_abort_all(struct graph *g)
{
    struct graph_tok **flights = graph_flights_head(g);
    while (*flights) {
        struct graph_tok *t = *flights;
        *flights = t->fnext;
        t->fnext = NULL;
        graph_req_discard(g, t->flight); /* also one that could not start */
        t->flight = NULL;
        graph_token_put(t);
    }
}

void graph_token_free_all(struct graph *g)
{
    struct graph_tok **head = graph_toks_head(g);
    while (*head) {
        struct graph_tok *t = *head;
        *head = t->next;
        t->cached = false;
        graph_token_put(t);
    }
}

void graph_forget_profile(struct graph *g, const char *profile_name)
{
    if (g == NULL)
        return;
    for (struct graph_tok **pp = graph_toks_head(g); *pp;) {
        struct graph_tok *t = *pp;
        if (strcmp(t->name, profile_name) != 0) {
            pp = &t->next;
            continue;
        }
        /* Deliveries under the old configuration keep their reference. */
        *pp = t->next;
        t->cached = false;
        t->next = NULL;
        wipe_str(t->access_token);
        t->access_token = NULL;
        graph_token_put(t);
    }
}

int64_t graph_token_expires(struct graph *g, const char *profile_name)
{
    int64_t best = 0;
    if (g == NULL)
        return 0;
    int64_t now = now_ms_mono();
    for (struct graph_tok *t = *graph_toks_head(g); t; t = t->next)
        if (strcmp(t->name, profile_name) == 0 && t->access_token && now < t->expire_ms &&
            t->expires_wall > best)
            best = t->expires_wall;
    return best;
}
