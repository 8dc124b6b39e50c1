/*
 * pending — outcomes the spool could not take when they happened (disk full,
 * an I/O error, a lock held too long), kept and written again every second.
 *
 * Owns: the copies of such outcomes (state, next attempt, reason, attempt
 * rows) until spool_finish takes them, and the log lines about them.
 * Never: decides an outcome (delivery.c does) or touches a message that is
 * not still "sending" (spool_finish checks the state).
 *
 * Without this, a message whose outcome failed to commit stayed "sending"
 * until the next restart, which then sent it again.
 */
#include "daemon.h"
#include "xmalloc.h"

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
    int tries;
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
    free(p->reason);
    free(p);
}

void pending_add(struct daemon *d, int64_t id, enum msg_state st, int64_t next, bool count,
                 const char *reason, const struct spool_attempt *att, size_t natt)
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
    p->next = d->pending;
    d->pending = p;
}

/* Writes what it can; logs each outcome once when it finally lands. */
void pending_flush(struct daemon *d)
{
    struct pending **pp = &d->pending;
    while (*pp) {
        struct pending *p = *pp;
        struct err e = {0};
        p->tries++;
        if (spool_finish(d->spool, p->id, p->st, p->next_attempt, p->count, p->reason, p->att,
                         p->natt, &e) != 0) {
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

void pending_free_all(struct daemon *d)
{
    while (d->pending) {
        struct pending *p = d->pending;
        d->pending = p->next;
        pending_free_one(p);
    }
}
