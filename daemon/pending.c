/*
 * pending — outcomes on their way into the spool: the batch of outcomes
 * decided in this turn of the loop (written together, group commit), and
 * outcomes the spool could not take when they happened (disk full, an I/O
 * error, a lock held too long), kept and written again every second.
 *
 * Owns: the copies of such outcomes (state, next attempt, reason, attempt
 * rows) until spool_finish_many / spool_finish takes them, the linger
 * timer that writes the batch, and the log lines about refused outcomes.
 * Never: decides an outcome (delivery.c does) or touches a message that is
 * not still "sending" (the spool checks the state).
 *
 * Group commit: every outcome costs a write transaction, and the commit (the
 * fsync and the WAL frames of the messages table and its indexes) is most of
 * the loop thread's time under load. All outcomes decided before the loop
 * turns (the SMTP pool hands finished jobs over in bursts) are written in one
 * transaction, usually the claim transaction of the scheduler pass that the
 * first of them kicks (pending_claim). When no pass claims anything, a timer
 * armed by the first of them writes the batch PENDING_LINGER_US later; until
 * then further outcomes join it and a pass that does claim takes it along.
 * Until it commits the rows stay "sending": a crash in that window requeues
 * them at the next start, as for a transfer in flight (at-least-once, never
 * lost; the window is a few milliseconds longer than the transfer itself).
 *
 * Without the retry list, a message whose outcome failed to commit stayed
 * "sending" until the next restart, which then sent it again.
 */
#include "daemon.h"
#include "xmalloc.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

struct pending {
    struct pending *next;
    int64_t id;
    enum msg_state st;
    int64_t next_attempt;
    bool count;
    char *reason;
    struct spool_attempt *att;
    size_t natt;
    struct spool_rcpt_mark *marks;
    size_t nmarks;
    int tries; /* writes tried after the spool refused it */
};

static char *pending_dup(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void pending_free_one(struct pending *p)
{
    for (size_t i = 0; i < p->natt; i++) {
        free((char *)p->att[i].profile);
        free((char *)p->att[i].transport);
        free((char *)p->att[i].result);
        free((char *)p->att[i].reply);
    }
    free(p->att);
    free(p->marks);
    free(p->reason);
    free(p);
}

static void pending_write_batch(struct daemon *d);

/* Long enough to share a commit with the claims of the next pass under load
 * (a few per millisecond), short next to any transfer. */
#define PENDING_LINGER_US 5000

/* p as the spool's outcome record (pointing into p). */
static struct spool_outcome pending_outcome(const struct pending *p)
{
    return (struct spool_outcome){p->id,  p->st,   p->next_attempt, p->count, p->reason,
                                  p->att, p->natt, p->marks,        p->nmarks};
}

/* The list as the spool's outcome records (pointing into the list). */
static struct spool_outcome *pending_outcomes(const struct pending *list, size_t *n)
{
    *n = 0;
    for (const struct pending *p = list; p; p = p->next)
        (*n)++;
    struct spool_outcome *v = xcalloc(*n + 1, sizeof *v);
    size_t i = 0;
    for (const struct pending *p = list; p; p = p->next)
        v[i++] = pending_outcome(p);
    return v;
}

static void pending_batch_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pending_write_batch(arg);
}

void pending_add(struct daemon *d, int64_t id, enum msg_state st, int64_t next, bool count,
                 const char *reason, const struct spool_attempt *att, size_t natt,
                 const struct spool_rcpt_mark *marks, size_t nmarks)
{
    struct pending *p = xcalloc(1, sizeof *p);
    p->id = id;
    p->st = st;
    p->next_attempt = next;
    p->count = count;
    p->reason = pending_dup(reason);
    p->att = xcalloc(natt + 1, sizeof *p->att);
    p->natt = natt;
    for (size_t i = 0; i < natt; i++) {
        p->att[i] = att[i];
        p->att[i].profile = pending_dup(att[i].profile);
        p->att[i].transport = pending_dup(att[i].transport);
        p->att[i].result = pending_dup(att[i].result);
        p->att[i].reply = pending_dup(att[i].reply);
    }
    if (nmarks > 0) {
        p->marks = xcalloc(nmarks, sizeof *p->marks);
        memcpy(p->marks, marks, nmarks * sizeof *marks);
        p->nmarks = nmarks;
    }
    /* In order of decision: the attempt rows keep the order they had. */
    if (d->batch_tail == NULL)
        d->batch_tail = &d->batch;
    *d->batch_tail = p;
    d->batch_tail = &p->next;
    /* The scheduler pass first (active events run in the order they were
     * made active): its claim transaction takes this batch along
     * (pending_claim); the batch event then finds nothing left to write. */
    sched_kick(d);
    if (d->ev_batch == NULL && d->base && !d->batch_detached)
        d->ev_batch = event_new(d->base, -1, 0, pending_batch_cb, d);
    if (d->ev_batch && !evtimer_pending(d->ev_batch, NULL)) {
        struct timeval tv = {0, PENDING_LINGER_US};
        evtimer_add(d->ev_batch, &tv);
    }
}

static int pending_write1(struct daemon *d, struct pending *p, struct err *e)
{
    struct spool_outcome o = pending_outcome(p);
    return spool_finish_many(d->spool, &o, 1, e);
}

/* The spool refused p: log it once and keep it for the tick. */
static void pending_refused(struct daemon *d, struct pending *p, const struct err *e)
{
    log_event(d->log, LL_ERROR, "spool", "op=finish id=%lld state=%s retry=1s reason=%q",
              (long long)p->id, msg_state_name(p->st), e->msg);
    p->next = d->pending;
    d->pending = p;
}

/* Writes the batch in one transaction. Should that fail, each outcome is
 * tried alone, so that one the spool cannot take (or a commit that failed
 * for a moment) holds none of the others back; what is still refused goes
 * to the retry list. */
static void pending_write_batch(struct daemon *d)
{
    struct pending *list = d->batch;
    d->batch = NULL;
    d->batch_tail = &d->batch;
    if (list == NULL)
        return;
    size_t n;
    struct spool_outcome *v = pending_outcomes(list, &n);
    struct err e = {0};
    int rc = spool_finish_many(d->spool, v, n, &e);
    free(v);
    while (list) {
        struct pending *p = list;
        list = p->next;
        struct err e1 = {0};
        if (rc == 0 || pending_write1(d, p, &e1) == 0)
            pending_free_one(p);
        else
            pending_refused(d, p, &e1);
    }
    /* A message deferred to "now" becomes due only with this commit. */
    sched_kick(d);
}

/*
 * Claims ids in the transaction that also writes this turn's batch: one commit
 * where there were two (the claim is most of a scheduler pass, the batch most
 * of a completion). Should that transaction fail, the batch stays for
 * pending_write_batch and its one-by-one fallback, and the claim is tried
 * alone, so that an outcome the spool refuses never holds up new work.
 */
int pending_claim(struct daemon *d, const int64_t *ids, size_t n, bool *claimed, struct err *e)
{
    if (d->batch == NULL)
        return spool_claim_many(d->spool, ids, n, claimed, e);
    size_t nv;
    struct spool_outcome *v = pending_outcomes(d->batch, &nv);
    struct err e1 = {0};
    int rc = spool_turn(d->spool, v, nv, ids, n, claimed, &e1);
    free(v);
    if (rc != 0)
        return spool_claim_many(d->spool, ids, n, claimed, e);
    bool requeued = false;
    while (d->batch) {
        struct pending *p = d->batch;
        d->batch = p->next;
        requeued = requeued || p->st == MSG_QUEUED;
        pending_free_one(p);
    }
    d->batch_tail = &d->batch;
    /* A message deferred to "now" becomes due only with this commit. */
    if (requeued)
        sched_kick(d);
    return 0;
}

/* Writes the batch, then what the spool refused before; logs each refused
 * outcome once when it finally lands. */
void pending_flush(struct daemon *d)
{
    pending_write_batch(d);
    struct pending **pp = &d->pending;
    while (*pp) {
        struct pending *p = *pp;
        struct err e = {0};
        p->tries++;
        if (pending_write1(d, p, &e) != 0) {
            pp = &p->next;
            continue;
        }
        log_event(d->log, LL_INFO, "spool", "op=finish id=%lld state=%s tries=%d reason=%q",
                  (long long)p->id, msg_state_name(p->st), p->tries,
                  "outcome written after the spool refused it");
        *pp = p->next;
        pending_free_one(p);
    }
}

void pending_detach(struct daemon *d)
{
    if (d->ev_batch)
        event_free(d->ev_batch);
    d->ev_batch = NULL;
    d->batch_detached = true;
}

void pending_free_all(struct daemon *d)
{
    while (d->pending) {
        struct pending *p = d->pending;
        d->pending = p->next;
        pending_free_one(p);
    }
    while (d->batch) {
        struct pending *p = d->batch;
        d->batch = p->next;
        pending_free_one(p);
    }
    d->batch_tail = &d->batch;
}
