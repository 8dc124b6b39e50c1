/*
 * smtp_pool — SMTP worker threads, their job queue, the per-profile handle
 * cache, and the hand-off of finished jobs to the loop thread.
 *
 * Owns: N pthreads each running one job at a time (curl_easy_perform, which
 * blocks on the reply to "."), a FIFO of submitted jobs and a FIFO of
 * finished ones (one mutex), the count of running jobs per profile name (a
 * queued job starts only while its profile runs fewer than MaxConnections:
 * the scheduler queues jobs ahead, so that a worker that finishes one starts
 * the next at once instead of waiting for the loop thread to record, claim
 * and load), an eventfd that a persistent libevent EV_READ event on the
 * loop's base watches, idle easy handles keyed by profile name + fingerprint
 * (a cached handle keeps its SMTP connection open for the next message), and
 * one read-only spool connection per worker for attachment blobs, opened by
 * the worker at its first message with attachments.
 * Never: runs done() anywhere but on the loop thread (or in smtp_pool_free on
 * the caller's thread); calls libevent from a worker (workers only write to
 * the eventfd); lets a QUIT to a silent server block the loop thread.
 */
#include "smtp.h"
#include "smtp_xfer.h"
#include "spool.h"
#include "xmalloc.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define POOL_MAX_THREADS 64

struct pool_fifo {
    struct smtp_job **v;
    size_t head, n, cap;
};

/* An idle handle (or one out with a worker) and the profile it was made for. */
struct pool_conn {
    CURL *h;
    char *name;
    char fp[65];
    uint64_t gen; /* p->gen when taken or made: a later forget makes it stale */
};

/* Jobs of one profile name running now. */
struct pool_running {
    char *name;
    int n;
};

/* smtp_pool_forget_profile(name) happened at generation gen. */
struct pool_forgot {
    char *name;
    uint64_t gen;
};

struct pool_worker {
    struct smtp_pool *p;
    pthread_t th;
    struct spool *sp; /* read-only, this thread's own connection, opened at the
                       * first message with attachments; NULL until then */
};

struct smtp_pool {
    struct event_base *base;
    char *spool_path; /* NULL: no spool, messages with attachments fail */
    struct event *ev;
    int efd;
    struct smtp_timeouts t;

    pthread_mutex_t mu; /* guards everything below except abort */
    pthread_cond_t cv;
    struct pool_fifo queue;
    struct pool_fifo done;
    struct pool_conn *idle;
    size_t nidle;
    struct pool_forgot *forgot;
    size_t nforgot;
    struct pool_running *run;
    size_t nrun;
    uint64_t gen;
    size_t nbusy; /* handles out with workers */
    bool stop;
    atomic_bool abort;

    struct pool_worker *w;
    int nw;
};

static void fifo_push(struct pool_fifo *f, struct smtp_job *j)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct smtp_job **v = xreallocarray(NULL, cap, sizeof *v);
        for (size_t i = 0; i < f->n; i++)
            v[i] = f->v[(f->head + i) % f->cap];
        free(f->v);
        f->v = v;
        f->cap = cap;
        f->head = 0;
    }
    f->v[(f->head + f->n) % f->cap] = j;
    f->n++;
}

static struct smtp_job *fifo_pop(struct pool_fifo *f)
{
    if (f->n == 0)
        return NULL;
    struct smtp_job *j = f->v[f->head];
    f->head = (f->head + 1) % f->cap;
    f->n--;
    return j;
}

/* Removes and returns the k-th oldest job (k < f->n). */
static struct smtp_job *fifo_take(struct pool_fifo *f, size_t k)
{
    struct smtp_job *j = f->v[(f->head + k) % f->cap];
    for (size_t i = k; i > 0; i--)
        f->v[(f->head + i) % f->cap] = f->v[(f->head + i - 1) % f->cap];
    f->head = (f->head + 1) % f->cap;
    f->n--;
    return j;
}

static void pool_wake_loop(struct smtp_pool *p)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already huge: the loop will wake anyway. */
    while (write(p->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static void pool_mark_aborted(struct smtp_job *job)
{
    smtp_xfer_job_reset(job);
    job->curl_code = CURLE_ABORTED_BY_CALLBACK;
    job->aborted = true;
    job->error = xstrdup("aborted before it started: the SMTP pool is shutting down");
}

/* Moves every queued job to the finished list as aborted. Caller holds mu. */
static void pool_fail_queued_locked(struct smtp_pool *p)
{
    struct smtp_job *j;
    while ((j = fifo_pop(&p->queue)) != NULL) {
        pool_mark_aborted(j);
        fifo_push(&p->done, j);
    }
}

/* Runs done() of every finished job, outside the lock (done may submit). */
static void pool_run_done(struct smtp_pool *p)
{
    for (;;) {
        pthread_mutex_lock(&p->mu);
        struct smtp_job *j = fifo_pop(&p->done);
        pthread_mutex_unlock(&p->mu);
        if (j == NULL)
            return;
        j->done(j, j->arg);
    }
}

static void pool_on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    uint64_t n;
    while (read(fd, &n, sizeof n) < 0 && errno == EINTR)
        ;
    pool_run_done(arg);
}

/* ---- the handle cache ------------------------------------------------- */

static void pool_forgot_clear_locked(struct smtp_pool *p)
{
    for (size_t i = 0; i < p->nforgot; i++)
        free(p->forgot[i].name);
    free(p->forgot);
    p->forgot = NULL;
    p->nforgot = 0;
}

/* An idle handle of the job's profile (unless fresh), else a new one; NULL
 * with e set when curl refuses the profile. Counts the handle as busy. */
static struct pool_conn *pool_acquire(struct smtp_pool *p, const struct profile *pr, bool fresh,
                                      struct err *e)
{
    struct pool_conn *c = NULL;
    pthread_mutex_lock(&p->mu);
    for (size_t i = p->nidle; !fresh && i-- > 0;) {
        if (strcmp(p->idle[i].name, pr->name) == 0 && strcmp(p->idle[i].fp, pr->fingerprint) == 0) {
            c = xmalloc(sizeof *c);
            *c = p->idle[i];
            p->idle[i] = p->idle[--p->nidle];
            break;
        }
    }
    /* Busy from here on, so that a forget between now and pool_give is recorded. */
    uint64_t gen = p->gen;
    p->nbusy++;
    pthread_mutex_unlock(&p->mu);
    if (c == NULL) {
        CURL *h = smtp_xfer_handle_new(pr, &p->t, e);
        if (h == NULL) {
            pthread_mutex_lock(&p->mu);
            if (--p->nbusy == 0)
                pool_forgot_clear_locked(p);
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        c = xcalloc(1, sizeof *c);
        c->h = h;
        c->name = xstrdup(pr->name);
        snprintf(c->fp, sizeof c->fp, "%s", pr->fingerprint);
    }
    c->gen = gen;
    return c;
}

static bool pool_stale_locked(struct smtp_pool *p, const struct pool_conn *c)
{
    for (size_t i = 0; i < p->nforgot; i++)
        if (strcmp(p->forgot[i].name, c->name) == 0 && p->forgot[i].gen > c->gen)
            return true;
    return false;
}

/* Returns a handle after a job: cached when reusable, not stale and the
 * profile has fewer than MaxConnections idle ones; else dropped. */
static void pool_give(struct smtp_pool *p, struct pool_conn *c, bool keep, int max_idle)
{
    pthread_mutex_lock(&p->mu);
    p->nbusy--;
    size_t same = 0;
    for (size_t i = 0; i < p->nidle; i++)
        if (strcmp(p->idle[i].name, c->name) == 0 && strcmp(p->idle[i].fp, c->fp) == 0)
            same++;
    keep = keep && !p->stop && !atomic_load(&p->abort) && !pool_stale_locked(p, c) &&
           same < (size_t)(max_idle > 0 ? max_idle : 1);
    if (keep) {
        p->idle = xreallocarray(p->idle, p->nidle + 1, sizeof *p->idle);
        p->idle[p->nidle++] = *c;
    }
    if (p->nbusy == 0)
        pool_forgot_clear_locked(p);
    pthread_mutex_unlock(&p->mu);
    if (!keep) {
        /* Off the loop thread: a polite QUIT is affordable unless aborting. */
        smtp_xfer_handle_free(c->h, !atomic_load(&p->abort));
        free(c->name);
    }
    free(c);
}

/* ---- per-profile concurrency ------------------------------------------ */

/* The running count of a profile name. Caller holds mu. */
static int *pool_running_locked(struct smtp_pool *p, const char *name)
{
    for (size_t i = 0; i < p->nrun; i++)
        if (strcmp(p->run[i].name, name) == 0)
            return &p->run[i].n;
    p->run = xreallocarray(p->run, p->nrun + 1, sizeof *p->run);
    p->run[p->nrun] = (struct pool_running){xstrdup(name), 0};
    return &p->run[p->nrun++].n;
}

/* The oldest queued job whose profile may start another transfer, counted
 * as running; NULL when none may. Caller holds mu. */
static struct smtp_job *pool_next_locked(struct smtp_pool *p)
{
    for (size_t k = 0; k < p->queue.n; k++) {
        struct smtp_job *j = p->queue.v[(p->queue.head + k) % p->queue.cap];
        int *n = pool_running_locked(p, j->profile->name);
        int max = j->profile->max_connections > 0 ? j->profile->max_connections : 1;
        if (*n < max) {
            (*n)++;
            return fifo_take(&p->queue, k);
        }
    }
    return NULL;
}

/* ---- workers ---------------------------------------------------------- */

/* The worker's spool connection, opened when a message first needs one: an
 * idle daemon then holds no connection (and no schema, no page cache) per
 * worker, of which there are max_connections (default 16). */
static bool pool_worker_spool(struct pool_worker *w, struct smtp_job *job)
{
    if (w->sp != NULL || w->p->spool_path == NULL || job->msg->natts == 0)
        return true;
    struct err e = {0};
    if (spool_open(w->p->spool_path, SPOOL_READONLY, &w->sp, &e) == 0)
        return true;
    smtp_xfer_job_reset(job);
    job->curl_code = CURLE_READ_ERROR;
    job->msg_err = e.code ? e.code : EX_IOERR;
    job->error = xstrdup(e.msg);
    return false;
}

static void pool_run_job(struct pool_worker *w, struct smtp_job *job)
{
    struct smtp_pool *p = w->p;
    const struct profile *pr = job->profile;
    if (!pool_worker_spool(w, job))
        return;
    struct smtp_xfer_io io = {
        .att_read = w->sp ? spool_att_read : NULL,
        .att_ctx = w->sp,
        .abort = &p->abort,
        .low_speed_s = p->t.low_speed_s,
    };
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt > 0)
            smtp_job_clear(job); /* the dead connection's outcome is void */
        if (atomic_load(&p->abort)) {
            pool_mark_aborted(job);
            return;
        }
        struct err e = {0};
        struct pool_conn *c = pool_acquire(p, pr, attempt > 0, &e);
        if (c == NULL) {
            smtp_xfer_job_reset(job);
            job->curl_code = CURLE_FAILED_INIT;
            job->error = xstrdup(e.msg);
            return;
        }
        enum smtp_xfer_after after = smtp_xfer_run(c->h, job, &io);
        pool_give(p, c, after == SMTP_XFER_KEEP, pr->max_connections);
        if (after != SMTP_XFER_RETRY_FRESH)
            return;
    }
}

static void *pool_worker_main(void *arg)
{
    struct pool_worker *w = arg;
    struct smtp_pool *p = w->p;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct smtp_job *job;
        while ((job = pool_next_locked(p)) == NULL && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
        if (job == NULL)
            return NULL; /* stopping and nothing left */
        pool_run_job(w, job);
        pthread_mutex_lock(&p->mu);
        (*pool_running_locked(p, job->profile->name))--;
        /* The loop drains the finished list until it is empty: it needs a
         * wake-up only when this job is the first on it. */
        bool wake = p->done.n == 0;
        fifo_push(&p->done, job);
        /* The slot this job frees is taken by this thread on the next turn;
         * wake another one only for what that leaves startable. */
        if (p->queue.n > 1)
            pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (wake)
            pool_wake_loop(p);
        pthread_mutex_lock(&p->mu);
    }
}

/* ---- public ----------------------------------------------------------- */

static void pool_join(struct smtp_pool *p, int started)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pool_fail_queued_locked(p);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < started; i++)
        pthread_join(p->w[i].th, NULL);
}

static void pool_release(struct smtp_pool *p)
{
    if (p->ev)
        event_free(p->ev);
    if (p->efd >= 0)
        close(p->efd);
    for (size_t i = 0; i < p->nidle; i++) {
        smtp_xfer_handle_free(p->idle[i].h, false);
        free(p->idle[i].name);
    }
    free(p->idle);
    pool_forgot_clear_locked(p);
    for (size_t i = 0; i < p->nrun; i++)
        free(p->run[i].name);
    free(p->run);
    for (int i = 0; i < p->nw; i++)
        if (p->w[i].sp)
            spool_close(p->w[i].sp);
    free(p->spool_path);
    free(p->w);
    free(p->queue.v);
    free(p->done.v);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static struct smtp_pool *pool_alloc(struct event_base *base, int nthreads,
                                    const struct smtp_timeouts *t)
{
    struct smtp_pool *p = xcalloc(1, sizeof *p);
    p->base = base;
    p->t = *t;
    p->efd = -1;
    atomic_init(&p->abort, false);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->nw = nthreads < 1 ? 1 : nthreads > POOL_MAX_THREADS ? POOL_MAX_THREADS : nthreads;
    p->w = xcalloc((size_t)p->nw, sizeof *p->w);
    return p;
}

struct smtp_pool *smtp_pool_new(struct event_base *base, int nthreads, const char *spool_path,
                                const struct smtp_timeouts *t, struct err *e)
{
    struct smtp_pool *p = pool_alloc(base, nthreads, t);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) {
        err_set(e, EX_OSERR, "SMTP pool: eventfd: %s", strerror(errno));
        goto fail;
    }
    p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, pool_on_event, p);
    if (p->ev == NULL || event_add(p->ev, NULL) != 0) {
        err_set(e, EX_SOFTWARE, "SMTP pool: cannot watch its eventfd in the event loop");
        goto fail;
    }
    p->spool_path = spool_path ? xstrdup(spool_path) : NULL;
    for (int i = 0; i < p->nw; i++)
        p->w[i].p = p;
    /* Workers inherit a mask blocking every signal: SIGTERM, SIGHUP and friends
     * are the loop thread's to handle, and no worker syscall gets EINTR. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < p->nw; i++) {
        int rc = pthread_create(&p->w[i].th, NULL, pool_worker_main, &p->w[i]);
        if (rc != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            err_set(e, EX_OSERR, "SMTP pool: starting worker %d: %s", i + 1, strerror(rc));
            pool_join(p, i);
            pool_run_done(p);
            goto fail;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p;
fail:
    pool_release(p);
    return NULL;
}

void smtp_pool_submit(struct smtp_pool *p, struct smtp_job *job)
{
    pthread_mutex_lock(&p->mu);
    if (p->stop || atomic_load(&p->abort)) {
        pool_mark_aborted(job);
        fifo_push(&p->done, job);
        pthread_mutex_unlock(&p->mu);
        pool_wake_loop(p);
        return;
    }
    fifo_push(&p->queue, job);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void smtp_pool_cancel_queued(struct smtp_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = 0;
    /* Keep, oldest first, as many as each profile can start at once (a worker
     * is on its way to them); return the rest. The running counts are raised
     * for the kept ones while walking and lowered again after. */
    for (size_t k = 0; k < p->queue.n;) {
        struct smtp_job *j = p->queue.v[(p->queue.head + k) % p->queue.cap];
        int *run = pool_running_locked(p, j->profile->name);
        int max = j->profile->max_connections > 0 ? j->profile->max_connections : 1;
        if (*run < max) {
            (*run)++;
            k++;
            continue;
        }
        j = fifo_take(&p->queue, k);
        pool_mark_aborted(j);
        j->unstarted = true;
        fifo_push(&p->done, j);
        n++;
    }
    for (size_t k = 0; k < p->queue.n; k++) {
        struct smtp_job *j = p->queue.v[(p->queue.head + k) % p->queue.cap];
        (*pool_running_locked(p, j->profile->name))--;
    }
    pthread_mutex_unlock(&p->mu);
    if (n > 0)
        pool_wake_loop(p);
}

void smtp_pool_abort(struct smtp_pool *p)
{
    atomic_store(&p->abort, true);
    pthread_mutex_lock(&p->mu);
    pool_fail_queued_locked(p);
    pthread_mutex_unlock(&p->mu);
    pool_wake_loop(p);
}

void smtp_pool_forget_profile(struct smtp_pool *p, const char *profile_name)
{
    struct pool_conn *drop = NULL;
    size_t ndrop = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->nidle;) {
        if (strcmp(p->idle[i].name, profile_name) == 0) {
            drop = xreallocarray(drop, ndrop + 1, sizeof *drop);
            drop[ndrop++] = p->idle[i];
            p->idle[i] = p->idle[--p->nidle];
        } else {
            i++;
        }
    }
    p->gen++;
    if (p->nbusy > 0) {
        p->forgot = xreallocarray(p->forgot, p->nforgot + 1, sizeof *p->forgot);
        p->forgot[p->nforgot].name = xstrdup(profile_name);
        p->forgot[p->nforgot++].gen = p->gen;
    }
    pthread_mutex_unlock(&p->mu);
    /* On the loop thread: no QUIT round trip (see smtp_xfer_handle_free). */
    for (size_t i = 0; i < ndrop; i++) {
        smtp_xfer_handle_free(drop[i].h, false);
        free(drop[i].name);
    }
    free(drop);
}

void smtp_pool_free(struct smtp_pool *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->abort, true);
    pool_join(p, p->nw);
    pool_run_done(p); /* every job's done() exactly once, here if not before */
    pool_release(p);
}

void smtp_job_clear(struct smtp_job *job)
{
    free(job->reply);
    free(job->error);
    for (size_t i = 0; i < job->nrejects; i++) {
        free(job->rejects[i].addr);
        free(job->rejects[i].reply);
    }
    free(job->rejects);
    smtp_xfer_job_reset(job);
}
