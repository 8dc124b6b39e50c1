/*
 * sched — the scheduler: decides which due messages start now.
 *
 * Owns: the scheduler pass (picks due messages in priority order while
 * honouring max_connections, each profile's MaxConnections, RateLimit and
 * suspension, and shutdown; claims the picks in one transaction, together
 * with the outcomes decided in this loop turn, then starts them) and the one
 * timer that wakes the next pass.
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

/* Which areas a due query may return: every area but the blocked named ones;
 * or, when the catch-all [area *] is blocked (it stands for every area not
 * named), only the named areas still open, so that the query never walks a
 * backlog nobody can take now. room: slots the open profiles have left. */
struct sched_filter {
    char **v;
    size_t n;
    bool only;
    int room;
};

/* Deliveries profile p can still take in this phase, 0 when it takes no part
 * in the query: unavailable (suspended, RateLimit), full, or, in the
 * look-ahead phase, without room for a whole batch (profstate_batch: one
 * claim transaction refills several slots, not one per completion). */
static int sched_room(struct daemon *d, const struct profile *p, int64_t mono, bool ahead)
{
    if (!profstate_available(d, p, mono, ahead))
        return 0;
    int room =
        (ahead ? profstate_limit(p) : p->max_connections) - profstate_get(d, p->name)->active;
    return room >= (ahead ? profstate_batch(p) : 1) ? room : 0;
}

static void sched_filter_build(struct daemon *d, int64_t mono, bool ahead, struct sched_filter *f)
{
    const struct config *c = d->cfg->cfg;
    const struct area *star = config_area_find(c, NULL);
    f->only = star != NULL && sched_room(d, star->profile, mono, ahead) == 0;
    f->v = xcalloc(c->nareas + 1, sizeof *f->v);
    f->n = 0;
    for (size_t i = 0; i < c->nareas; i++) {
        const struct area *a = &c->areas[i];
        if (a != star && (sched_room(d, a->profile, mono, ahead) > 0) == f->only)
            f->v[f->n++] = a->name;
    }
    f->room = 0;
    for (size_t i = 0; i < c->nprofiles; i++)
        f->room += sched_room(d, &c->profiles[i], mono, ahead);
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

/* Fills free slots with the most urgent due messages whose profile can take
 * one; with ahead, also the look-ahead slots (profstate_limit). Returns the
 * global capacity left. */
static int sched_fill(struct daemon *d, int64_t mono, bool ahead, int capacity)
{
    const struct config *c = d->cfg->cfg;
    for (int round = 0; round < SCHED_ROUNDS && capacity > 0; round++) {
        struct sched_filter f;
        sched_filter_build(d, mono, ahead, &f);
        if (f.only && f.n == 0) {
            free(f.v);
            break; /* every profile is busy or blocked: nothing can start */
        }
        /* One more than the open slots: a message of an area no section
         * serves takes no profile slot (it is deferred at once). */
        size_t limit = (size_t)(f.room < capacity ? f.room : capacity) + 1;
        struct spool_due *v = NULL;
        size_t n = 0;
        struct err e = {0};
        int rc = spool_due(d->spool, now_s_wall(), (const char *const *)f.v, f.n, f.only, limit, &v,
                           &n, &e);
        free(f.v);
        if (rc != 0) {
            log_event(d->log, LL_ERROR, "spool", "op=due reason=%q", e.msg);
            break;
        }
        /* Pick first, reserving each pick's profile slot (so MaxConnections
         * and RateLimit hold within the pick), claim all picks in one
         * transaction, then start the ones claimed: no transfer begins
         * before its claim is committed. A profile that fills up within the
         * pick leaves its other messages to the next round's filter. */
        bool refused = false, claim_failed = false;
        int64_t *ids = xcalloc(n + 1, sizeof *ids);
        const struct profile **res = xcalloc(n + 1, sizeof *res);
        bool *claimed = xcalloc(n + 1, sizeof *claimed);
        size_t np = 0;
        for (size_t i = 0; i < n && capacity > 0; i++) {
            const struct area *a = config_area_find(c, v[i].area);
            if (a && !profstate_available(d, a->profile, mono, ahead)) {
                refused = true;
                continue;
            }
            if (a)
                profstate_started(d, a->profile, mono);
            ids[np] = v[i].id;
            res[np++] = a ? a->profile : NULL;
            capacity--;
        }
        if (np > 0 && pending_claim(d, ids, np, claimed, &e) != 0) {
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
        if (claim_failed || (n < limit && !refused))
            break;
    }
    return capacity;
}

/* One pass: first every profile up to its MaxConnections (so that a profile
 * with a backlog never holds slots another one could use to start a
 * transfer), then the look-ahead with what capacity is left. */
static void sched_run(struct daemon *d)
{
    if (d->stopping)
        return;
    clock_watch(d);
    int64_t mono = now_ms_mono();
    profstate_check_resume(d, mono);
    int capacity = d->cfg->cfg->max_connections - d->ninflight;
    for (int ahead = 0; ahead < 2 && capacity > 0; ahead++)
        capacity = sched_fill(d, mono, ahead, capacity);
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
