/*
 * profstate — run-time state of each sender profile: deliveries in flight,
 * suspension after profile faults, the RateLimit window, last success and
 * error, published to the spool for `mailspool status`.
 *
 * Owns: struct profstate, kept by profile name across reloads.
 * Never: decides what a failure means (outcome.c) or claims messages (sched.c).
 */
#include "daemon.h"
#include "graph.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct profstate *profstate_get(struct daemon *d, const char *name)
{
    for (size_t i = 0; i < d->nprofiles; i++)
        if (strcmp(d->profiles[i]->name, name) == 0)
            return d->profiles[i];
    struct profstate *ps = xcalloc(1, sizeof *ps);
    ps->name = xstrdup(name);
    d->profiles = xreallocarray(d->profiles, d->nprofiles + 1, sizeof *d->profiles);
    d->profiles[d->nprofiles++] = ps;
    return ps;
}

static void profstate_free(struct profstate *ps)
{
    free(ps->name);
    free(ps->suspend_reason);
    free(ps->last_error);
    free(ps->window);
    free(ps);
}

void profstate_free_all(struct daemon *d)
{
    for (size_t i = 0; i < d->nprofiles; i++)
        profstate_free(d->profiles[i]);
    free(d->profiles);
    d->profiles = NULL;
    d->nprofiles = 0;
}

/* Sizes the RateLimit window to the profile's current limit (a reload may change it). */
static void profstate_window(struct profstate *ps, int rate)
{
    if (ps->window_len == rate)
        return;
    free(ps->window);
    ps->window = rate > 0 ? xcalloc((size_t)rate, sizeof *ps->window) : NULL;
    ps->window_len = rate;
    ps->window_pos = 0;
}

void profstate_sync(struct daemon *d)
{
    const struct config *c = d->cfg->cfg;
    for (size_t i = 0; i < d->nprofiles; i++)
        d->profiles[i]->seen = false;
    for (size_t i = 0; i < c->nprofiles; i++) {
        struct profstate *ps = profstate_get(d, c->profiles[i].name);
        ps->seen = true;
        profstate_window(ps, c->profiles[i].rate_limit);
    }
    /* Forget profiles that left the configuration once nothing runs on them. */
    size_t j = 0;
    for (size_t i = 0; i < d->nprofiles; i++) {
        if (!d->profiles[i]->seen && d->profiles[i]->active == 0)
            profstate_free(d->profiles[i]);
        else
            d->profiles[j++] = d->profiles[i];
    }
    d->nprofiles = j;
    d->profiles_dirty = true;
}

/* Monotonic ms when the next send may start under RateLimit (mono when now). */
int64_t profstate_next_slot(struct daemon *d, const struct profile *p, int64_t mono)
{
    struct profstate *ps = profstate_get(d, p->name);
    int64_t t = mono;
    if (ps->suspended_until > t)
        t = ps->suspended_until;
    if (ps->held_until > t)
        t = ps->held_until;
    if (ps->window_len > 0) {
        /* the oldest of the last rate_limit starts must be a minute old */
        int64_t oldest = ps->window[ps->window_pos];
        if (oldest != 0 && oldest + 60000 > t)
            t = oldest + 60000;
    }
    return t;
}

/*
 * Deliveries a profile may have at once: MaxConnections transfers, and for
 * SMTP three times as many again claimed and loaded, queued in the pool,
 * which starts each the moment a connection frees (at most MaxConnections
 * run at once) instead of after a loop turn that records the last outcome and
 * claims the next. Three times: the scheduler refills the look-ahead a whole
 * batch (profstate_batch) at a time, and the queue must not run dry while it
 * waits for that batch. Graph the same, its runs waiting in their
 * application's queue (at most GRAPH_MAX_INFLIGHT requests in flight), so
 * only where MaxConnections is at least that. Not with a RateLimit (a queued
 * message would count as started before it starts).
 */
int profstate_limit(const struct profile *p)
{
    int n = p->max_connections;
    if (p->rate_limit != 0)
        return n;
    if (p->transport != TRANSPORT_GRAPH)
        return 4 * n;
    return n >= GRAPH_MAX_INFLIGHT ? n + 2 * GRAPH_MAX_INFLIGHT : n;
}

/* How many look-ahead slots the scheduler refills at once: one claim
 * transaction then serves a batch, and the outcomes that wait for it
 * (pending.c) share its commit. SMTP: twice MaxConnections. Measured (W1, 4
 * connections, against batches of MaxConnections in a look-ahead of twice
 * MaxConnections): 22 instead of 27 KB written and about 15% less daemon CPU
 * per message, since the index pages a commit rewrites are shared by more
 * messages. Graph: its application's GRAPH_MAX_INFLIGHT, a whole round of
 * requests, which its look-ahead of twice that always has room for. */
int profstate_batch(const struct profile *p)
{
    return p->transport != TRANSPORT_GRAPH ? 2 * p->max_connections : GRAPH_MAX_INFLIGHT;
}

bool profstate_available(struct daemon *d, const struct profile *p, int64_t mono, bool ahead)
{
    struct profstate *ps = profstate_get(d, p->name);
    if (ps->active >= (ahead ? profstate_limit(p) : p->max_connections))
        return false;
    return profstate_next_slot(d, p, mono) <= mono;
}

void profstate_started(struct daemon *d, const struct profile *p, int64_t mono)
{
    struct profstate *ps = profstate_get(d, p->name);
    ps->active++;
    if (ps->window_len > 0) {
        ps->window[ps->window_pos] = mono;
        ps->window_pos = (ps->window_pos + 1) % ps->window_len;
    }
}

/*
 * Suspends the profile with capped exponential backoff from retry_min: the
 * server is not hammered, the messages keep their attempts. Logged once per
 * suspension with what the administrator must fix.
 */
void profstate_suspend(struct daemon *d, const struct profile *p, const char *reason)
{
    struct profstate *ps = profstate_get(d, p->name);
    int64_t mono = now_ms_mono();
    if (ps->suspended_until > mono)
        return; /* already suspended: a late result of a parallel transfer */
    const struct config *c = d->cfg->cfg;
    int64_t delay = outcome_backoff(ps->faults + 1, c->retry_min, c->retry_max, 0, &d->rand_state);
    ps->faults++;
    ps->suspended_until = mono + delay * 1000;
    free(ps->suspend_reason);
    ps->suspend_reason = xstrdup(reason);
    profstate_error(d, p, reason);
    log_event(d->log, LL_ERROR, "profile-suspended", "profile=%q via=%s for=%llds reason=%q",
              p->name, transport_name(p->transport), (long long)delay, reason);
    d->profiles_dirty = true;
}

/*
 * Graph throttles per application and mailbox, and requests sent while
 * throttled count against it and extend the throttling (Microsoft's
 * throttling guidance): the Retry-After of one message holds its profile's
 * other messages too, not only the one that got it.
 */
void profstate_hold(struct daemon *d, const struct profile *p, int64_t seconds)
{
    struct profstate *ps = profstate_get(d, p->name);
    int64_t until = now_ms_mono() + seconds * 1000;
    if (until > ps->held_until)
        ps->held_until = until;
}

static void profstate_resume(struct daemon *d, struct profstate *ps, const char *why)
{
    ps->suspended_until = 0;
    free(ps->suspend_reason);
    ps->suspend_reason = NULL;
    log_event(d->log, LL_INFO, "profile-resumed", "profile=%q reason=%q", ps->name, why);
    d->profiles_dirty = true;
}

void profstate_resume_all(struct daemon *d, const char *why)
{
    for (size_t i = 0; i < d->nprofiles; i++) {
        d->profiles[i]->faults = 0;
        d->profiles[i]->held_until = 0; /* a reload means "try now" */
        if (d->profiles[i]->suspended_until)
            profstate_resume(d, d->profiles[i], why);
    }
}

/* Ends suspensions whose time is up; the next delivery is the probe. */
void profstate_check_resume(struct daemon *d, int64_t mono)
{
    for (size_t i = 0; i < d->nprofiles; i++) {
        struct profstate *ps = d->profiles[i];
        if (ps->suspended_until && ps->suspended_until <= mono)
            profstate_resume(d, ps, "suspension ended; trying again");
    }
}

void profstate_success(struct daemon *d, const struct profile *p)
{
    struct profstate *ps = profstate_get(d, p->name);
    ps->faults = 0;
    ps->last_success = now_s_wall();
    d->profiles_dirty = true;
}

void profstate_error(struct daemon *d, const struct profile *p, const char *reason)
{
    struct profstate *ps = profstate_get(d, p->name);
    ps->last_error_at = now_s_wall();
    free(ps->last_error);
    ps->last_error = xstrdup(reason);
    d->profiles_dirty = true;
}

/* Writes the profiles table that `mailspool status` reads. */
void profstate_publish(struct daemon *d)
{
    const struct config *c = d->cfg->cfg;
    struct spool_profile_state *v = xcalloc(c->nprofiles + 1, sizeof *v);
    int64_t mono = now_ms_mono(), wall = now_s_wall();
    for (size_t i = 0; i < c->nprofiles; i++) {
        const struct profile *p = &c->profiles[i];
        struct profstate *ps = profstate_get(d, p->name);
        v[i].name = p->name;
        v[i].transport = transport_name(p->transport);
        v[i].last_success = ps->last_success;
        v[i].last_error_at = ps->last_error_at;
        v[i].last_error = ps->last_error;
        v[i].suspended_until =
            ps->suspended_until > mono ? wall + (ps->suspended_until - mono + 999) / 1000 : 0;
        v[i].token_expires = ps->token_expires;
        v[i].secret_expires = p->m365_secret_expires;
    }
    struct err e = {0};
    if (spool_profiles_put(d->spool, v, c->nprofiles, &e) != 0)
        log_event(d->log, LL_WARN, "spool", "op=profiles reason=%q", e.msg);
    else
        d->profiles_dirty = false;
    free(v);
}

/* 365SecretExpires: from 30 days before, one warning a day per profile. */
void profstate_check_secrets(struct daemon *d)
{
    const struct config *c = d->cfg->cfg;
    int64_t wall = now_s_wall();
    int64_t day = wall / 86400;
    for (size_t i = 0; i < c->nprofiles; i++) {
        const struct profile *p = &c->profiles[i];
        if (p->m365_secret_expires == 0)
            continue;
        int64_t left = (p->m365_secret_expires - wall) / 86400;
        if (left > 30)
            continue;
        struct profstate *ps = profstate_get(d, p->name);
        if (ps->secret_warned_day == day)
            continue;
        ps->secret_warned_day = day;
        char date[16];
        time_t t = (time_t)p->m365_secret_expires;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(date, sizeof date, "%Y-%m-%d", &tm);
        log_event(d->log, LL_WARN, "secret-expiry", "profile=%q expires=%s days=%lld hint=%q",
                  p->name, date, (long long)left,
                  "create a new client secret in the Entra admin center under Certificates & "
                  "secrets, set 365Secret and 365SecretExpires, then reload");
    }
}
