/*
 * daemon — the context of mailspoold and the interfaces between its parts.
 *
 * Owns: struct daemon, the single owner of every long-lived object of the
 * process (event base, log, configuration, spool connection, transports,
 * scheduler state). Nothing in daemon/ keeps state anywhere else.
 * Never: is touched from a worker thread; workers hand results back through
 * their own completion queues and the loop thread alone changes this.
 */
#ifndef MAILSPOOL_DAEMON_H
#define MAILSPOOL_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "message.h"
#include "outcome.h"
#include "spool.h"

struct event;
struct event_base;
struct smtp_pool;
struct graph;

/* A configuration shared by the daemon and every delivery started under it:
 * a reload swaps d->cfg while in-flight deliveries finish with their old one. */
struct cfgref {
    struct config *cfg;
    int refs;
};
struct cfgref *cfgref_new(struct config *cfg);
struct cfgref *cfgref_get(struct cfgref *r);
void cfgref_put(struct cfgref *r);

/* Run-time state of one profile, kept by name across reloads (profstate.c). */
struct profstate {
    char *name;
    int active;              /* deliveries in flight */
    int64_t suspended_until; /* monotonic ms; 0: not suspended */
    int64_t held_until;      /* monotonic ms: a server's Retry-After; not a fault */
    int faults;              /* consecutive profile faults (backoff exponent) */
    char *suspend_reason;    /* what the administrator must fix */
    int64_t *window;         /* ring of the last rate_limit send starts (monotonic ms) */
    int window_len, window_pos;
    int64_t last_success;  /* wall clock s */
    int64_t last_error_at; /* wall clock s */
    char *last_error;
    int64_t token_expires;     /* wall clock s, Graph */
    int64_t secret_warned_day; /* 365SecretExpires warning: day number last warned */
    bool seen;                 /* present in the current configuration */
};

struct delivery; /* delivery.c */
struct pending;  /* pending.c */

struct daemon {
    struct event_base *base;
    struct log *log;
    char *config_path;
    struct cfgref *cfg;
    struct spool *spool;
    char *spool_path;
    struct smtp_pool *smtp;
    struct graph *graph; /* NULL until a Microsoft 365 profile exists */
    int lock_fd;

    struct profstate **profiles;
    size_t nprofiles;

    struct delivery *inflight; /* list of deliveries in flight */
    int ninflight;
    struct pending *pending; /* outcomes the spool refused, written again by the tick */
    struct pending *batch;   /* outcomes decided in this loop turn: one transaction */
    struct pending **batch_tail;
    struct event *ev_batch; /* writes the batch (made active by the first outcome) */
    bool batch_detached;    /* the loop is gone: the batch waits for the last flush */

    struct event *ev_run;      /* scheduler pass (made active to run soon) */
    struct event *ev_timer;    /* next due moment */
    struct event *ev_tick;     /* 1 s housekeeping */
    struct event *ev_shutdown; /* shutdown_timeout expiry */
    struct event *ev_sig[4];
    struct wake *wake;
    struct submit *submit; /* NULL: producers write the spool directly */
    struct notify *notify;

    bool stopping;
    bool aborting;
    int64_t started;        /* wall clock s */
    int64_t last_heartbeat; /* monotonic ms */
    int64_t last_maintain;  /* monotonic ms */
    int64_t last_stats;     /* monotonic ms of the last stats lines */
    int64_t stats_since_ms; /* wall clock ms the next stats lines count from */
    int64_t last_expiry_sweep;
    int64_t wall_offset_ms; /* wall minus boot time at the last clock_watch */
    unsigned int rand_state;
    bool profiles_dirty;
};

/* ---- time ---- */
int64_t now_ms_mono(void);
int64_t now_s_wall(void);
int64_t now_ms_wall(void);
void clock_watch_start(struct daemon *d);
/* Before each scheduler pass: moves pending retries when the wall clock was set. */
void clock_watch(struct daemon *d);

/* ---- profstate.c ---- */
struct profstate *profstate_get(struct daemon *d, const char *name);
void profstate_sync(struct daemon *d); /* marks seen/unseen after a (re)load */
int profstate_limit(const struct profile *p);
int profstate_batch(const struct profile *p);
/* A delivery of p may start now: fewer than MaxConnections (ahead: fewer than
 * profstate_limit) are active, not suspended, RateLimit allows. */
bool profstate_available(struct daemon *d, const struct profile *p, int64_t mono, bool ahead);
int64_t profstate_next_slot(struct daemon *d, const struct profile *p, int64_t mono);
void profstate_started(struct daemon *d, const struct profile *p, int64_t mono);
void profstate_suspend(struct daemon *d, const struct profile *p, const char *reason);
/* The server asked for seconds of quiet (Retry-After on a 429 or 503): no
 * delivery of the profile starts before then. */
void profstate_hold(struct daemon *d, const struct profile *p, int64_t seconds);
void profstate_resume_all(struct daemon *d, const char *why);
void profstate_check_resume(struct daemon *d, int64_t mono);
void profstate_success(struct daemon *d, const struct profile *p);
void profstate_error(struct daemon *d, const struct profile *p, const char *reason);
void profstate_publish(struct daemon *d); /* writes the profiles table for `status` */
void profstate_free_all(struct daemon *d);
void profstate_check_secrets(struct daemon *d);

/* ---- sched.c ---- */
void sched_init(struct daemon *d);
void sched_kick(struct daemon *d);
void sched_free(struct daemon *d);

/* ---- delivery.c ---- */
/* Claims one message, then starts it. */
void delivery_start(struct daemon *d, int64_t id);
/* Starts a message the caller claimed. reserved: the profile whose slot the
 * caller already took with profstate_started (given back if the delivery
 * ends before its transfer or uses another profile), or NULL. */
void delivery_start_claimed(struct daemon *d, int64_t id, const struct profile *reserved);
void delivery_abort_all(struct daemon *d);
/* Records the outcome of a finished transfer (called by the transports' done callbacks). */
void delivery_finish(struct delivery *dl, const struct outcome *o);
/* Fails or defers queued messages that nobody can send anymore. */
void delivery_expire_sweep(struct daemon *d);

/* ---- pending.c: outcomes on their way into the spool ---- */
/* Queues an outcome for the batch written at the end of this loop turn, with
 * the recipients it decided (marks, copied). */
void pending_add(struct daemon *d, int64_t id, enum msg_state st, int64_t next, bool count,
                 const char *reason, const struct spool_attempt *att, size_t natt,
                 const struct spool_rcpt_mark *marks, size_t nmarks);
/* spool_claim_many, in one transaction with the outcomes batched so far. */
int pending_claim(struct daemon *d, const int64_t *ids, size_t n, bool *claimed, struct err *e);
void pending_flush(struct daemon *d);  /* the tick, and once more at the end */
void pending_detach(struct daemon *d); /* before the event base is freed */
void pending_free_all(struct daemon *d);

/* ---- wake.c: inotify on the spool directory ---- */
struct wake *wake_new(struct daemon *d, struct err *e);
void wake_free(struct wake *w);

/* submit.c: the submission socket beside the spool and its thread. */
struct submit;
struct submit *submit_new(struct daemon *d, struct err *e);
/* Stops taking new connections (the daemon is stopping); requests begun go on. */
void submit_close(struct submit *s);
void submit_free(struct submit *s);

/* ---- notify.c: systemd ---- */
struct notify *notify_new(struct daemon *d);
void notify_free(struct notify *n);
void notify_ready(struct notify *n);
void notify_reloading(struct notify *n);
void notify_stopping(struct notify *n);
void notify_status(struct notify *n, const char *status);
void notify_watchdog(struct notify *n); /* called by the tick; pings at half the interval */

/* ---- lifecycle.c ---- */
/* Blocks SIGTERM, SIGINT, SIGHUP, SIGUSR1 until lifecycle_setup handles them. */
void lifecycle_hold_signals(void);
int lifecycle_setup(struct daemon *d, struct err *e);
void lifecycle_reload(struct daemon *d);
void lifecycle_stop(struct daemon *d);
void lifecycle_maybe_exit(struct daemon *d);

/* ---- lock.c ---- */
int lock_acquire(const char *spool_path, int *fd, struct err *e);

#endif
