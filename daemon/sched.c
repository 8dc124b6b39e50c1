/*
 * sched — the scheduler: decides which due messages start now.
 *
 * Owns: the scheduler pass (picks due messages in priority order while
 * honouring max_connections, each profile's MaxConnections, RateLimit and
 * suspension, and shutdown; claims the picks in one transaction, then starts
 * them) and the one timer that wakes the next pass.
 * Never: waits on the network or holds a read transaction between passes;
 * a pass is a few indexed queries, then the loop is free again.
 */
#include "daemon.h"
#include "xmalloc.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define SCHED_FALLBACK_MS 5000 /* safety net if an inotify wake-up is ever missed */
#define SCHED_ROUNDS 8

static bool skip_has(char **v, size_t n, const char *area)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], area) == 0)
            return true;
    return false;
}

/* Areas whose profile cannot take a delivery now: the spool query skips them. */
static size_t sched_blocked_areas(struct daemon *d, int64_t mono, char ***out)
{
    const struct config *c = d->cfg->cfg;
    char **v = xcalloc(c->nareas + 1, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < c->nareas; i++)
        if (!profstate_available(d, c->areas[i].profile, mono))
            v[n++] = xstrdup(c->areas[i].name);
    *out = v;
    return n;
}

/* Arms the timer for the next pass. With every slot taken the next
 * completion kicks a pass anyway: only the safety net is armed, and the
 * spool is not asked when the next message falls due (measured: asking after
 * every pass of a burst cost more than the claim itself). */
static void sched_arm(struct daemon *d, int64_t mono, bool full)
{
    int64_t wait = SCHED_FALLBACK_MS;
    int64_t when = 0;
    struct err e = {0};
    if (!full && spool_next_due(d->spool, &when, &e) == 0 && when > 0) {
        int64_t ms = when * 1000 - now_ms_wall();
        /* Due now but blocked: the profile slots below decide; poll gently. */
        wait = ms > 0 ? (ms < wait ? ms : wait) : 1000;
    }
    const struct config *c = d->cfg->cfg;
    for (size_t i = 0; !full && i < c->nprofiles; i++) {
        int64_t slot = profstate_next_slot(d, &c->profiles[i], mono);
        if (slot > mono && slot - mono < wait)
            wait = slot - mono;
    }
    if (wait < 1)
        wait = 1;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)((wait % 1000) * 1000)};
    evtimer_add(d->ev_timer, &tv);
}

/* One pass: fill free delivery slots with the most urgent due messages. */
static void sched_run(struct daemon *d)
{
    if (d->stopping)
        return;
    clock_watch(d);
    int64_t mono = now_ms_mono();
    profstate_check_resume(d, mono);
    const struct config *c = d->cfg->cfg;
    int capacity = c->max_connections - d->ninflight;
    char **skip = NULL;
    size_t nskip = sched_blocked_areas(d, mono, &skip);
    size_t cap_skip = c->nareas + 1;
    for (int round = 0; round < SCHED_ROUNDS && capacity > 0; round++) {
        struct spool_due *v = NULL;
        size_t n = 0, limit = (size_t)capacity + 16;
        struct err e = {0};
        if (spool_due(d->spool, now_s_wall(), (const char *const *)skip, nskip, limit, &v, &n,
                      &e) != 0) {
            log_event(d->log, LL_ERROR, "spool", "op=due reason=%q", e.msg);
            break;
        }
        /* Pick first, reserving each pick's profile slot (so MaxConnections
         * and RateLimit hold within the pick), claim all picks in one
         * transaction, then start the ones claimed: no transfer begins
         * before its claim is committed. */
        bool skipped_new = false, claim_failed = false;
        int64_t *ids = xcalloc(n + 1, sizeof *ids);
        const struct profile **res = xcalloc(n + 1, sizeof *res);
        bool *claimed = xcalloc(n + 1, sizeof *claimed);
        size_t np = 0;
        for (size_t i = 0; i < n && capacity > 0; i++) {
            const struct area *a = config_area_find(c, v[i].area);
            if (a && !profstate_available(d, a->profile, mono)) {
                if (!skip_has(skip, nskip, v[i].area)) {
                    if (nskip + 1 >= cap_skip) {
                        cap_skip *= 2;
                        skip = xreallocarray(skip, cap_skip, sizeof *skip);
                    }
                    skip[nskip++] = xstrdup(v[i].area);
                    skipped_new = true;
                }
                continue;
            }
            if (a)
                profstate_started(d, a->profile, mono);
            ids[np] = v[i].id;
            res[np++] = a ? a->profile : NULL;
            capacity--;
        }
        if (spool_claim_many(d->spool, ids, np, claimed, &e) != 0) {
            log_event(d->log, LL_ERROR, "spool", "op=claim n=%zu reason=%q", np, e.msg);
            claim_failed = true;
        }
        for (size_t i = 0; i < np; i++) {
            if (claimed[i]) {
                delivery_start_claimed(d, ids[i], res[i]);
            } else if (res[i]) {
                struct profstate *ps = profstate_get(d, res[i]->name);
                if (ps->active > 0)
                    ps->active--; /* cancelled meanwhile, or the claim failed */
            }
        }
        free(ids);
        free(res);
        free(claimed);
        capacity = c->max_connections - d->ninflight;
        spool_due_free(v, n);
        if (claim_failed || (n < limit && !skipped_new))
            break;
    }
    for (size_t i = 0; i < nskip; i++)
        free(skip[i]);
    free(skip);
    sched_arm(d, mono, capacity <= 0);
}

static void sched_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sched_run(arg);
}

void sched_init(struct daemon *d)
{
    clock_watch_start(d);
    d->ev_run = event_new(d->base, -1, 0, sched_cb, d);
    d->ev_timer = evtimer_new(d->base, sched_cb, d);
}

/* Runs a pass soon (coalesced: many kicks before the loop turns make one pass). */
void sched_kick(struct daemon *d)
{
    if (d->ev_run)
        event_active(d->ev_run, 0, 0); /* activating an active event is a no-op */
}

void sched_free(struct daemon *d)
{
    if (d->ev_run)
        event_free(d->ev_run);
    if (d->ev_timer)
        event_free(d->ev_timer);
    d->ev_run = d->ev_timer = NULL;
}
