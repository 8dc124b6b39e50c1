/*
 * lifecycle — signals, reload, graceful stop, and the 1 s housekeeping tick.
 *
 * Owns: SIGTERM/SIGINT (stop: no new work, in-flight transfers get
 * shutdown_timeout, then are aborted and stay queued), SIGHUP (reload the
 * configuration atomically or keep the old one; reopen the log), SIGUSR1
 * (reopen the log), the heartbeat, systemd status and watchdog, periodic
 * spool maintenance, expiry sweeps, the daily stats line and secret-expiry
 * warnings.
 * Never: exits the process; it ends the loop and main() cleans up.
 */
#include "daemon.h"
#include "graph.h"
#include "smtp.h"
#include "xmalloc.h"

#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEARTBEAT_MS 5000
#define MAINTAIN_MS 60000
#define EXPIRY_SWEEP_S 5

void lifecycle_maybe_exit(struct daemon *d)
{
    if (d->stopping && d->ninflight == 0)
        event_base_loopexit(d->base, NULL);
}

static void lifecycle_shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct daemon *d = arg;
    log_event(d->log, LL_WARN, "stop", "aborting=%d reason=%q", d->ninflight,
              "shutdown_timeout reached; aborted transfers stay queued");
    d->aborting = true;
    delivery_abort_all(d);
    /* Aborts complete within moments; should one hang, leave anyway: the row
     * stays "sending" and returns to "queued" at the next start. */
    struct timeval tv = {5, 0};
    event_base_loopexit(d->base, &tv);
}

void lifecycle_stop(struct daemon *d)
{
    if (d->stopping)
        return;
    d->stopping = true;
    notify_stopping(d->notify);
    submit_close(d->submit);
    /* Look-ahead messages that have not begun go back to the queue now;
     * only transfers already under way get shutdown_timeout to finish. */
    if (d->smtp)
        smtp_pool_cancel_queued(d->smtp);
    if (d->graph)
        graph_cancel_unstarted(d->graph);
    log_event(d->log, LL_INFO, "stop", "inflight=%d timeout=%llds", d->ninflight,
              (long long)d->cfg->cfg->shutdown_timeout);
    if (d->ninflight > 0) {
        struct timeval tv = {(time_t)d->cfg->cfg->shutdown_timeout, 0};
        evtimer_add(d->ev_shutdown, &tv);
    }
    lifecycle_maybe_exit(d);
}

/* Profiles whose settings changed (or vanished) drop connections and tokens. */
static void lifecycle_forget_changed(struct daemon *d, const struct config *old,
                                     const struct config *neu)
{
    for (size_t i = 0; i < old->nprofiles; i++) {
        const struct profile *o = &old->profiles[i];
        const struct profile *n = config_profile_find(neu, o->name);
        if (n && strcmp(n->fingerprint, o->fingerprint) == 0)
            continue;
        if (d->smtp)
            smtp_pool_forget_profile(d->smtp, o->name);
        if (d->graph)
            graph_forget_profile(d->graph, o->name);
    }
}

/* Messages of an area the old configuration did not serve were deferred by
 * retry_min at a time; those whose area this reload adds are due now (SPEC
 * 6: deferred "until a reload adds the area"). Returns how many. */
static int64_t lifecycle_release_added_areas(struct daemon *d, const struct config *old,
                                             const struct config *neu)
{
    if (config_area_find(old, NULL) != NULL)
        return 0; /* [area *] served every area */
    bool added = config_area_find(neu, NULL) != NULL;
    for (size_t i = 0; !added && i < neu->nareas; i++)
        added = config_area_find(old, neu->areas[i].name) == NULL;
    if (!added)
        return 0; /* no write (and no write lock) on a reload that adds no area */
    const char **was = xcalloc(old->nareas + 1, sizeof *was);
    const char **now = xcalloc(neu->nareas + 1, sizeof *now);
    for (size_t i = 0; i < old->nareas; i++)
        was[i] = old->areas[i].name;
    size_t nnow = 0;
    for (size_t i = 0; i < neu->nareas; i++)
        if (strcmp(neu->areas[i].name, "*") != 0)
            now[nnow++] = neu->areas[i].name;
    int64_t n = 0;
    struct err e = {0};
    if (spool_release_areas(d->spool, now_s_wall(), was, old->nareas, now, nnow,
                            config_area_find(neu, NULL) != NULL, &n, &e) != 0)
        log_event(d->log, LL_WARN, "spool", "op=release reason=%q", e.msg);
    free(was);
    free(now);
    return n;
}

void lifecycle_reload(struct daemon *d)
{
    notify_reloading(d->notify);
    struct config *neu = NULL;
    struct diags dg = {0};
    int rc = config_load(d->config_path, CONFIG_RESOLVE_SECRETS, &neu, &dg);
    for (size_t i = 0; i < dg.n; i++) {
        const struct diag *dv = &dg.v[i];
        const char *ev = dv->warning ? "config-warning" : "config-error";
        if (dv->profile)
            log_event(d->log, dv->warning ? LL_WARN : LL_ERROR, ev,
                      "file=%q line=%d profile=%q text=%q", dv->file, dv->line, dv->profile,
                      dv->text);
        else
            log_event(d->log, dv->warning ? LL_WARN : LL_ERROR, ev, "file=%q line=%d text=%q",
                      dv->file, dv->line, dv->text);
    }
    diags_free(&dg);
    if (rc != 0) {
        log_event(d->log, LL_ERROR, "config-error", "file=%q reason=%q", d->config_path,
                  "new configuration rejected; the old one stays in force");
        notify_ready(d->notify);
        return;
    }
    struct err e = {0};
    if (log_open(d->log, neu->log_file, neu->log_level, &e) != 0)
        log_event(d->log, LL_ERROR, "config-error", "reason=%q", e.msg);
    if (neu->spool_path && strcmp(neu->spool_path, d->spool_path) != 0)
        log_event(d->log, LL_WARN, "reload", "reason=%q",
                  "[spool] path changed: takes effect at the next restart");
    lifecycle_forget_changed(d, d->cfg->cfg, neu);
    int64_t released = lifecycle_release_added_areas(d, d->cfg->cfg, neu);
    cfgref_put(d->cfg);
    d->cfg = cfgref_new(neu);
    profstate_sync(d);
    profstate_resume_all(d, "configuration reloaded");
    log_event(d->log, LL_INFO, "reload", "file=%q profiles=%zu areas=%zu released=%lld",
              d->config_path, neu->nprofiles, neu->nareas, (long long)released);
    notify_ready(d->notify);
    sched_kick(d);
}

static void lifecycle_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct daemon *d = arg;
    struct err e = {0};
    switch (sig) {
    case SIGTERM:
    case SIGINT:
        lifecycle_stop(d);
        break;
    case SIGHUP:
        if (log_reopen(d->log, &e) != 0)
            log_event(d->log, LL_ERROR, "log", "reason=%q", e.msg);
        lifecycle_reload(d);
        break;
    case SIGUSR1:
        if (log_reopen(d->log, &e) != 0)
            log_event(d->log, LL_ERROR, "log", "reason=%q", e.msg);
        else
            log_event(d->log, LL_INFO, "log-reopened", "");
        break;
    }
}

/* Seconds since t (0: none), saturated: t comes from a message row, which
 * may hold any integer. */
static int64_t lifecycle_age(int64_t t)
{
    int64_t age;
    if (t == 0)
        return 0;
    if (__builtin_sub_overflow(now_s_wall(), t, &age))
        return t < 0 ? INT64_MAX : INT64_MIN;
    return age;
}

static void lifecycle_status(struct daemon *d)
{
    struct spool_counts c = {0};
    struct err e = {0};
    if (spool_counts(d->spool, &c, &e) != 0)
        return;
    int suspended = 0;
    int64_t mono = now_ms_mono();
    for (size_t i = 0; i < d->nprofiles; i++)
        if (d->profiles[i]->suspended_until > mono)
            suspended++;
    char buf[256];
    snprintf(buf, sizeof buf,
             "queued=%lld deferred=%lld sending=%lld failed=%lld oldest=%llds "
             "suspended-profiles=%d",
             (long long)c.queued, (long long)c.deferred, (long long)c.sending, (long long)c.failed,
             (long long)lifecycle_age(c.oldest_queued), suspended);
    notify_status(d->notify, buf);
}

/* Adds one spool_stat row into the sent/deferred/failed triple it belongs to. */
static void lifecycle_stats_add(int64_t *t, const struct spool_stat *s)
{
    if (strcmp(s->result, "sent") == 0)
        t[0] += s->count;
    else if (strcmp(s->result, "deferred") == 0)
        t[1] += s->count;
    else if (strcmp(s->result, "failed") == 0 || strcmp(s->result, "expired") == 0)
        t[2] += s->count;
}

/*
 * The "stats" lines for log-based monitoring: per area and in total, the
 * attempts that ended sent, deferred and failed (incl. expired) since the
 * previous stats lines (about stats_interval; period= says exactly).
 */
static void lifecycle_stats(struct daemon *d)
{
    /* Windows follow each other without gaps: each line counts since the last. */
    int64_t now = now_ms_wall();
    int64_t period = (now - d->stats_since_ms + 500) / 1000;
    struct spool_stat *v = NULL;
    size_t n = 0;
    struct err e = {0};
    if (spool_stats(d->spool, d->stats_since_ms, &v, &n, &e) != 0) {
        log_event(d->log, LL_WARN, "spool", "op=stats reason=%q", e.msg);
        return;
    }
    int64_t total[3] = {0, 0, 0};
    for (size_t i = 0; i < n;) {
        int64_t t[3] = {0, 0, 0};
        size_t j = i;
        for (; j < n && strcmp(v[j].area, v[i].area) == 0; j++)
            lifecycle_stats_add(t, &v[j]);
        log_event(d->log, LL_INFO, "stats",
                  "area=%q sent=%lld deferred=%lld failed=%lld period=%llds", v[i].area,
                  (long long)t[0], (long long)t[1], (long long)t[2], (long long)period);
        for (int k = 0; k < 3; k++)
            total[k] += t[k];
        i = j;
    }
    log_event(d->log, LL_INFO, "stats", "area=all sent=%lld deferred=%lld failed=%lld period=%llds",
              (long long)total[0], (long long)total[1], (long long)total[2], (long long)period);
    spool_stats_free(v, n);
    d->stats_since_ms = now;
}

static void lifecycle_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct daemon *d = arg;
    int64_t mono = now_ms_mono(), wall = now_s_wall();
    struct err e = {0};
    notify_watchdog(d->notify);
    if (d->pending)
        pending_flush(d);
    if (mono - d->last_heartbeat >= HEARTBEAT_MS) {
        d->last_heartbeat = mono;
        if (spool_heartbeat(d->spool, (long)getpid(), d->started, wall, &e) != 0)
            log_event(d->log, LL_WARN, "spool", "op=heartbeat reason=%q", e.msg);
        lifecycle_status(d);
        profstate_check_secrets(d);
    }
    if (d->profiles_dirty)
        profstate_publish(d);
    if (!d->stopping && wall - d->last_expiry_sweep >= EXPIRY_SWEEP_S) {
        d->last_expiry_sweep = wall;
        delivery_expire_sweep(d);
    }
    if (mono - d->last_stats >= d->cfg->cfg->stats_interval * 1000) {
        d->last_stats = mono;
        lifecycle_stats(d);
    }
    if (mono - d->last_maintain >= MAINTAIN_MS) {
        d->last_maintain = mono;
        if (spool_maintain(d->spool, wall, d->cfg->cfg->keep_sent, &e) != 0)
            log_event(d->log, LL_WARN, "spool", "op=maintain reason=%q", e.msg);
    }
}

/* The signals lifecycle_setup handles (d->ev_sig). */
static const int lifecycle_sigs[4] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};

static void lifecycle_sigset(sigset_t *set)
{
    sigemptyset(set);
    for (int i = 0; i < 4; i++)
        sigaddset(set, lifecycle_sigs[i]);
}

/* Until lifecycle_setup has their handlers, these signals wait, blocked:
 * with their default action, a stop, a reload or a log reopen (logrotate's
 * postrotate) that came during start-up killed the daemon on the spot, and
 * start-up can take seconds (the integrity check reads the whole spool, the
 * requeue waits for a producer's write lock). */
void lifecycle_hold_signals(void)
{
    sigset_t set;
    lifecycle_sigset(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int lifecycle_setup(struct daemon *d, struct err *e)
{
    (void)e;
    for (int i = 0; i < 4; i++) {
        d->ev_sig[i] = evsignal_new(d->base, lifecycle_sigs[i], lifecycle_signal_cb, d);
        event_add(d->ev_sig[i], NULL);
    }
    /* What came while they were held is delivered now, to libevent's handler,
     * and handled once the loop runs. */
    sigset_t set;
    lifecycle_sigset(&set);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    d->ev_shutdown = evtimer_new(d->base, lifecycle_shutdown_cb, d);
    d->ev_tick = event_new(d->base, -1, EV_PERSIST, lifecycle_tick_cb, d);
    struct timeval tv = {1, 0};
    event_add(d->ev_tick, &tv);
    d->last_heartbeat = now_ms_mono() - HEARTBEAT_MS; /* first tick writes one */
    d->last_maintain = now_ms_mono();
    d->last_stats = now_ms_mono();
    d->stats_since_ms = now_ms_wall();
    return 0;
}
