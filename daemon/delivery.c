/*
 * delivery — one message from claim to recorded outcome.
 *
 * Owns: struct delivery, the per-message state machine
 *   CLAIMED → PREPARE (load, validate, expiry, area → profile) →
 *   TRANSFER (smtp job on a worker, or graph job on the loop) → RECORD
 * and the one place where an outcome becomes a spool transaction, a profile
 * state change and a log line.
 * Never: talks to a server itself, or frees a delivery inside a transport's
 * callback chain before the transport is done with it (done() is the last
 * thing a transport does with a job).
 */
#include "daemon.h"
#include "graph.h"
#include "idna.h"
#include "smtp.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct delivery {
    struct daemon *d;
    struct delivery *prev, *next;
    int64_t id;
    struct message *msg;
    struct cfgref *cfg;
    const struct profile *p;
    int64_t started_mono;
    bool via_graph;
    struct smtp_job smtp;
    struct graph_job graph;
    /* What the attempt decided per recipient (delivery_rcpts_*): written with
     * the outcome. */
    struct spool_rcpt_mark *marks;
    size_t nmarks;
    /* Recipients refused before any server saw them (a domain without an
     * ASCII form): attempt rows like a server's 5xx. */
    struct delivery_refusal {
        char *addr, *why;
    } * refused;
    size_t nrefused;
    size_t nsent_now; /* recipients that got it in this attempt */
    size_t nlater;    /* recipients refused for now (4xx): the message waits for them */
    bool more_now;    /* ... only because the server takes fewer per message: go on now */
};

static void delivery_link(struct daemon *d, struct delivery *dl)
{
    dl->next = d->inflight;
    if (d->inflight)
        d->inflight->prev = dl;
    d->inflight = dl;
    d->ninflight++;
}

static void delivery_unlink(struct daemon *d, struct delivery *dl)
{
    if (dl->prev)
        dl->prev->next = dl->next;
    else
        d->inflight = dl->next;
    if (dl->next)
        dl->next->prev = dl->prev;
    d->ninflight--;
}

static void delivery_free(struct delivery *dl)
{
    smtp_job_clear(&dl->smtp);
    graph_job_clear(&dl->graph);
    message_free(dl->msg);
    cfgref_put(dl->cfg);
    free(dl->marks);
    for (size_t i = 0; i < dl->nrefused; i++) {
        free(dl->refused[i].addr);
        free(dl->refused[i].why);
    }
    free(dl->refused);
    free(dl);
}

/* created + lifetime, saturated: created comes from a spool row, which may
 * hold any integer (signed overflow would be undefined behaviour). */
static int64_t delivery_life_end(int64_t created, int64_t lifetime)
{
    int64_t end;
    if (__builtin_add_overflow(created, lifetime, &end))
        return lifetime > 0 ? INT64_MAX : INT64_MIN;
    return end;
}

/* The moment after which the message is pointless: expires, or created + lifetime. */
static int64_t delivery_deadline(const struct config *c, const struct message *m)
{
    int64_t end = delivery_life_end(m->created, config_area_lifetime(c, m->area));
    if (m->expires > 0 && m->expires < end)
        end = m->expires;
    return end;
}

/* RFC 5321 4.5.3.1.10: a server that takes fewer recipients per message
 * answers 452 (enhanced code 4.5.3) to the rest, which belong in a new
 * transaction right away rather than in a retry after backoff; older ones
 * answer 552 (5.5.3), which clients "SHOULD treat as temporary". 452 and
 * 552 alone also mean a full mailbox (4.2.2, 5.2.2), which is not this. */
static bool delivery_too_many(const struct smtp_rcpt_reject *r)
{
    if ((r->code != 452 && r->code != 552) || r->reply == NULL || strlen(r->reply) < 4)
        return false;
    const char *t = r->reply + 4;
    return strncmp(t + 1, ".5.3", 4) == 0 || strcasestr(r->reply, "too many recipients") != NULL;
}

/* A recipient refused for now (4xx, or too many for this message): it stays
 * pending; any other refusal is for good. */
static bool delivery_rej_later(const struct smtp_rcpt_reject *r)
{
    return r->code / 100 == 4 || delivery_too_many(r);
}

/* Queues the outcome for the group commit of this loop turn (pending.c);
 * when the spool refuses it (disk full), the row stays sending and the
 * outcome is kept and written again by the tick; should the daemon end
 * first, the next start requeues the row.
 * The log lines about the outcome (sent, deferred, failed) are written by
 * the callers right away, before the commit at the end of this loop turn: a
 * crash in between requeues the row, which is then tried again and logged
 * again. That is the at-least-once promise that already holds for a crash
 * during a transfer; the spool, not the log, is the record. */
static void delivery_record(struct delivery *dl, enum msg_state st, int64_t next, bool count,
                            const char *reason, const char *result, const char *reply)
{
    struct daemon *d = dl->d;
    struct spool_attempt att[1 + 64];
    size_t natt = 0;
    int64_t dur = dl->started_mono ? now_ms_mono() - dl->started_mono : 0;
    att[natt++] = (struct spool_attempt){now_ms_wall(),
                                         dl->p ? dl->p->name : "",
                                         dl->p ? transport_name(dl->p->transport) : "",
                                         result,
                                         reply,
                                         dur};
    for (size_t i = 0; i < dl->smtp.nrejects && natt < 1 + 64; i++)
        att[natt++] = (struct spool_attempt){
            now_ms_wall(),
            dl->p->name,
            "smtp",
            delivery_rej_later(&dl->smtp.rejects[i]) ? "rcpt-deferred" : "rcpt-rejected",
            dl->smtp.rejects[i].reply,
            0};
    for (size_t i = 0; i < dl->nrefused && natt < 1 + 64; i++)
        att[natt++] = (struct spool_attempt){now_ms_wall(),   dl->p ? dl->p->name : "", "",
                                             "rcpt-rejected", dl->refused[i].why,       0};
    pending_add(d, dl->id, st, next, count, reason, att, natt, dl->marks, dl->nmarks);
}

static void delivery_mark(struct delivery *dl, const struct msg_rcpt *r, enum rcpt_state st)
{
    if (dl->marks == NULL)
        dl->marks = xcalloc(dl->msg->nrcpts, sizeof *dl->marks);
    if (dl->nmarks < dl->msg->nrcpts && r->row > 0)
        dl->marks[dl->nmarks++] = (struct spool_rcpt_mark){r->row, st};
}

/* Graph sends to every pending recipient or to none. */
static void delivery_rcpts_graph(struct delivery *dl, const struct outcome *o)
{
    if (o->kind != OUT_OK)
        return;
    for (size_t i = 0; i < dl->msg->nrcpts; i++)
        if (dl->msg->rcpts[i].state == RCPT_PENDING) {
            delivery_mark(dl, &dl->msg->rcpts[i], RCPT_SENT);
            dl->nsent_now++;
        }
}

static const struct smtp_rcpt_reject *delivery_reject_of(const struct smtp_job *job,
                                                         const char *addr)
{
    for (size_t i = 0; i < job->nrejects; i++)
        if (strcmp(job->rejects[i].addr, addr) == 0)
            return &job->rejects[i];
    return NULL;
}

/*
 * SMTP: decides each pending recipient once the server has answered every
 * RCPT, that is when the message went out (to those accepted) or when all
 * were refused; any other failure leaves them all pending. A 5xx recipient
 * is refused for good (SPEC 9); a 4xx one stays pending and the message
 * waits for it alone: o becomes a temporary failure, which the accepted
 * recipients never see again. Refused for good, all of them, after others
 * had the message from earlier attempts: the message is sent.
 */
static void delivery_rcpts_smtp(struct delivery *dl, struct outcome *o)
{
    const struct smtp_job *job = &dl->smtp;
    const struct message *m = dl->msg;
    size_t nmailboxes = 0; /* RCPT commands sent: pending mailboxes, each once */
    for (size_t i = 0; i < m->nrcpts; i++)
        nmailboxes += m->rcpts[i].state == RCPT_PENDING && m->rcpts[i].same_as == SIZE_MAX;
    bool delivered = o->kind == OUT_OK;
    bool all_refused = (o->kind == OUT_PERMFAIL || o->kind == OUT_TEMPFAIL) && !job->aborted &&
                       job->stage == SMTP_STAGE_RCPT && job->naccepted == 0 &&
                       job->nrejects == nmailboxes && nmailboxes > 0;
    if (!delivered && !all_refused)
        return;
    const struct smtp_rcpt_reject *first_later = NULL;
    bool too_many = false;
    for (size_t i = 0; i < m->nrcpts; i++) {
        const struct msg_rcpt *r = &m->rcpts[i];
        if (r->state != RCPT_PENDING)
            continue;
        /* A mailbox named twice had one RCPT, under its first address:
         * each address sent is unique, so the reply pairs by text. */
        const struct msg_rcpt *sent_as = r->same_as == SIZE_MAX ? r : &m->rcpts[r->same_as];
        const struct smtp_rcpt_reject *rej = delivery_reject_of(job, sent_as->addr);
        if (rej == NULL) {
            if (delivered) {
                delivery_mark(dl, r, RCPT_SENT);
                dl->nsent_now++;
            }
        } else if (delivery_rej_later(rej)) {
            if (first_later == NULL)
                first_later = rej;
            too_many = too_many || delivery_too_many(rej);
            dl->nlater++;
        } else {
            delivery_mark(dl, r, RCPT_FAILED);
        }
    }
    /* Some got it and the server wants fewer per message: on at once. Each
     * such round reaches at least one more recipient, so the rounds end;
     * a recipient refused for another reason (a full mailbox) is asked
     * again in them, and waits its backoff once the round reaches nobody. */
    dl->more_now = delivered && too_many && dl->nsent_now > 0;
    if (first_later != NULL) {
        o->kind = OUT_TEMPFAIL;
        if (dl->nlater > 1)
            snprintf(o->reason, sizeof o->reason, "%s (RCPT TO:<%s>, and %zu more recipients)",
                     first_later->reply, first_later->addr, dl->nlater - 1);
        else
            snprintf(o->reason, sizeof o->reason, "%s (RCPT TO:<%s>)", first_later->reply,
                     first_later->addr);
    } else if (all_refused && message_count_rcpts(m, RCPT_SENT) > 0) {
        o->kind = OUT_OK;
        snprintf(o->reason, sizeof o->reason,
                 "the other recipients had it from earlier attempts; the last refused it: %s",
                 job->reply ? job->reply : "");
    }
}

static void delivery_end(struct delivery *dl)
{
    struct daemon *d = dl->d;
    if (dl->p) {
        struct profstate *ps = profstate_get(d, dl->p->name);
        if (ps->active > 0 && dl->started_mono)
            ps->active--;
    }
    delivery_unlink(d, dl);
    delivery_free(dl);
    sched_kick(d);
    lifecycle_maybe_exit(d);
}

/* Fails the message now (permanent error, invalid row, or expired). */
static void delivery_fail(struct delivery *dl, const char *event, const char *reason)
{
    struct daemon *d = dl->d;
    const struct message *m = dl->msg;
    delivery_record(dl, MSG_FAILED, 0, dl->started_mono != 0, reason, event, reason);
    log_event(d->log, LL_ERROR, event, "id=%lld area=%q profile=%q via=%s attempt=%d reason=%q",
              (long long)dl->id, m ? m->area : "", dl->p ? dl->p->name : "-",
              dl->p ? transport_name(dl->p->transport) : "-", m ? m->attempts + 1 : 0, reason);
}

/* Defers to next (clamped to the deadline so that expiry is never late).
 * After an attempt that reached some recipients (others refused for now),
 * its attempt row says sent, with the server's reply to the data. */
static void delivery_defer(struct delivery *dl, int64_t next, bool count, const char *reason)
{
    struct daemon *d = dl->d;
    const struct message *m = dl->msg;
    int64_t deadline = delivery_deadline(d->cfg->cfg, m);
    if (next > deadline)
        next = deadline;
    bool part = dl->nsent_now > 0;
    delivery_record(dl, MSG_QUEUED, next, count, reason, part ? "sent" : "deferred",
                    part && dl->smtp.reply ? dl->smtp.reply : reason);
    char when[40];
    log_iso_time(next, when, sizeof when);
    log_event(d->log, LL_WARN, "deferred",
              "id=%lld area=%q profile=%q via=%s attempt=%d next=%s reason=%q", (long long)dl->id,
              m->area, dl->p ? dl->p->name : "-", dl->p ? transport_name(dl->p->transport) : "-",
              m->attempts + (count ? 1 : 0), when, reason);
}

/* The sent line (and one rcpt-rejected line per recipient refused for good)
 * of an attempt that reached recipients; later= counts those it waits for. */
static void delivery_log_sent(struct delivery *dl, int attempt, int64_t ms, const char *reply)
{
    struct log *log = dl->d->log;
    const struct message *m = dl->msg;
    for (size_t i = 0; i < dl->smtp.nrejects; i++)
        if (!delivery_rej_later(&dl->smtp.rejects[i]))
            log_event(log, LL_WARN, "rcpt-rejected", "id=%lld area=%q profile=%q rcpt=%q reply=%q",
                      (long long)dl->id, m->area, dl->p->name, dl->smtp.rejects[i].addr,
                      dl->smtp.rejects[i].reply);
    char later[48] = "";
    if (dl->nlater > 0)
        snprintf(later, sizeof later, " later=%zu", dl->nlater);
    log_event(log, LL_INFO, "sent",
              "id=%lld area=%q profile=%q via=%s to=%zu%s bytes=%lld attempt=%d ms=%lld reply=%q",
              (long long)dl->id, m->area, dl->p->name, transport_name(dl->p->transport),
              dl->nsent_now, later, (long long)(dl->via_graph ? dl->graph.bytes : dl->smtp.bytes),
              attempt, (long long)ms, reply);
}

void delivery_finish(struct delivery *dl, const struct outcome *o)
{
    struct daemon *d = dl->d;
    const struct config *c = dl->cfg->cfg;
    const struct message *m = dl->msg;
    int attempt = m->attempts + 1;
    int64_t ms = now_ms_mono() - dl->started_mono;
    switch (o->kind) {
    case OUT_OK:
        delivery_record(dl, MSG_SENT, 0, true, NULL, "sent", o->reason);
        delivery_log_sent(dl, attempt, ms, o->reason);
        profstate_success(d, dl->p);
        break;
    case OUT_PERMFAIL:
        profstate_error(d, dl->p, o->reason);
        delivery_fail(dl, "failed", o->reason);
        break;
    case OUT_PROFILE:
        if (!o->message_specific) {
            profstate_suspend(d, dl->p, o->reason);
            delivery_defer(dl, now_s_wall(), false, o->reason);
            break;
        }
        /* A fault that concerns this message only: a temporary failure. */
        __attribute__((fallthrough));
    case OUT_TEMPFAIL: {
        if (dl->nsent_now > 0) {
            /* Some recipients have it; the message waits for the others. */
            delivery_log_sent(dl, attempt, ms, dl->smtp.reply ? dl->smtp.reply : "accepted");
            profstate_success(d, dl->p);
            if (dl->more_now) {
                /* The rest in the next transaction, at once and without using
                 * an attempt: every such round reaches more recipients. */
                delivery_defer(dl, now_s_wall(), false, o->reason);
                break;
            }
        } else {
            profstate_error(d, dl->p, o->reason);
        }
        if (o->retry_after > 0)
            profstate_hold(d, dl->p, o->retry_after);
        if (c->max_attempts > 0 && attempt >= c->max_attempts) {
            char why[700];
            snprintf(why, sizeof why, "gave up after %d attempts: %s", attempt, o->reason);
            delivery_fail(dl, "failed", why);
            break;
        }
        int64_t delay =
            outcome_backoff(attempt, c->retry_min, c->retry_max, o->retry_after, &d->rand_state);
        if (o->maybe_delivered)
            log_event(d->log, LL_WARN, "possible-duplicate", "id=%lld area=%q profile=%q reason=%q",
                      (long long)dl->id, m->area, dl->p->name, o->reason);
        /* Rounded up: a Retry-After of 3 s never becomes 2.1 s. */
        delivery_defer(dl, (now_ms_wall() + 999) / 1000 + delay, true, o->reason);
        break;
    }
    case OUT_ABORTED:
        delivery_record(dl, MSG_QUEUED, now_s_wall(), false, "stopped by shutdown", "requeued",
                        o->reason);
        log_event(d->log, LL_WARN, "requeued", "id=%lld area=%q profile=%q reason=%q%s",
                  (long long)dl->id, m->area, dl->p->name, o->reason,
                  o->maybe_delivered ? " possible-duplicate=yes" : "");
        break;
    }
    delivery_end(dl);
}

/* Claimed ahead, never begun (shutdown): back to the queue as it was, no
 * attempt row, no attempt counted, its last error kept. */
static void delivery_return_unstarted(struct delivery *dl)
{
    pending_add(dl->d, dl->id, MSG_QUEUED, now_s_wall(), false, dl->msg->last_error, NULL, 0, NULL,
                0);
    log_event(dl->d->log, LL_DEBUG, "requeued", "id=%lld area=%q reason=%q", (long long)dl->id,
              dl->msg->area, "claimed ahead, not started before shutdown");
    delivery_end(dl);
}

static void delivery_smtp_done(struct smtp_job *job, void *arg)
{
    struct delivery *dl = arg;
    if (job->unstarted) {
        delivery_return_unstarted(dl);
        return;
    }
    struct smtp_result r = {
        .curl_code = job->curl_code,
        .reply_code = job->reply_code,
        .reply = job->reply,
        .error = job->error,
        .stage = job->stage,
        .data_sent = job->data_sent,
        .aborted = job->aborted,
        .msg_err = job->msg_err,
        .anonymous = dl->p->transport == TRANSPORT_SMTP_ANON,
        .profile = dl->p->name,
        .host = dl->p->smtp_host,
    };
    struct outcome o;
    outcome_classify_smtp(&r, &o);
    delivery_rcpts_smtp(dl, &o);
    delivery_finish(dl, &o);
}

static void delivery_graph_draft(struct graph_job *job, const char *draft_id, void *arg)
{
    (void)job;
    struct delivery *dl = arg;
    struct err e = {0};
    if (spool_set_draft(dl->d->spool, dl->id, draft_id, &e) != 0)
        log_event(dl->d->log, LL_ERROR, "spool", "op=draft id=%lld reason=%q", (long long)dl->id,
                  e.msg);
}

static void delivery_graph_done(struct graph_job *job, void *arg)
{
    struct delivery *dl = arg;
    if (job->unstarted) {
        delivery_return_unstarted(dl);
        return;
    }
    struct graph_result r = {
        .curl_code = job->curl_code,
        .http_status = job->http_status,
        .error_code = job->error_code,
        .aadsts = job->aadsts,
        .message = job->message,
        .request_id = job->request_id,
        .retry_after = job->retry_after,
        .token_request = job->token_request,
        .draft_path = job->draft_path,
        .aborted = job->aborted,
        .profile = dl->p->name,
    };
    struct outcome o;
    outcome_classify_graph(&r, &o);
    delivery_rcpts_graph(dl, &o);
    struct profstate *ps = profstate_get(dl->d, dl->p->name);
    if (dl->d->graph)
        ps->token_expires = graph_token_expires(dl->d->graph, dl->p->name);
    delivery_finish(dl, &o);
}

/* idna_message: a recipient whose domain has no ASCII form is refused for
 * good now, and the others still get the message. */
static void delivery_refuse_rcpt(void *ctx, size_t i, const char *why)
{
    struct delivery *dl = ctx;
    const struct msg_rcpt *r = &dl->msg->rcpts[i];
    delivery_mark(dl, r, RCPT_FAILED);
    dl->refused = xreallocarray(dl->refused, dl->nrefused + 1, sizeof *dl->refused);
    dl->refused[dl->nrefused++] = (struct delivery_refusal){xstrdup(r->addr), xstrdup(why)};
    log_event(dl->d->log, LL_WARN, "rcpt-rejected", "id=%lld area=%q rcpt=%q reply=%q",
              (long long)dl->id, dl->msg->area, r->addr, why);
}

/* PREPARE: everything that can be decided without a server. Returns false
 * when the delivery already ended here. */
static bool delivery_prepare(struct delivery *dl)
{
    const struct config *c = dl->cfg->cfg;
    struct err e = {0};
    if (message_validate(dl->msg, &e) != 0 ||
        idna_message(dl->msg, delivery_refuse_rcpt, dl, &e) != 0) {
        char why[1100];
        snprintf(why, sizeof why, "invalid message in the spool: %s", e.msg);
        delivery_fail(dl, "failed", why);
        return false;
    }
    /* One RCPT per mailbox: To and Cc may name the same one. */
    message_mark_same(dl->msg);
    const struct message *m = dl->msg;
    size_t nsent = message_count_rcpts(m, RCPT_SENT);
    if (message_count_rcpts(m, RCPT_PENDING) == 0) {
        /* Every recipient has it or was refused: rows written so (retry
         * turns refused recipients back into pending ones), or the last
         * ones just refused above. Nobody is left to send it to. */
        if (nsent > 0) {
            delivery_record(dl, MSG_SENT, 0, false, NULL, "sent", "every recipient had it already");
            log_event(dl->d->log, LL_INFO, "sent", "id=%lld area=%q to=0 reason=%q",
                      (long long)dl->id, m->area, "every recipient had it already");
        } else {
            delivery_fail(dl, "failed",
                          dl->nrefused ? dl->refused[0].why
                                       : "every recipient was refused for good");
        }
        return false;
    }
    /* Said when a message expires that some recipients have (4xx to others). */
    char had[80] = "";
    if (nsent > 0)
        snprintf(had, sizeof had, " (%zu of %zu recipients had it)", nsent, m->nrcpts);
    int64_t now = now_s_wall();
    if (m->expires > 0 && now >= m->expires) {
        char why[800];
        snprintf(why, sizeof why, "its expires time passed before it could be sent%s%s%s", had,
                 m->last_error ? "; last error: " : "", m->last_error ? m->last_error : "");
        delivery_fail(dl, "expired", why);
        return false;
    }
    int64_t lifetime = config_area_lifetime(c, m->area);
    if (now >= delivery_life_end(m->created, lifetime)) {
        char why[800];
        snprintf(why, sizeof why, "queue lifetime of %llds ended%s%s%s", (long long)lifetime, had,
                 m->last_error ? "; last error: " : "", m->last_error ? m->last_error : "");
        delivery_fail(dl, "expired", why);
        return false;
    }
    const struct area *a = config_area_find(c, dl->msg->area);
    if (a == NULL) {
        char why[300];
        snprintf(why, sizeof why,
                 "no [area %s] section and no [area *] serves this message: add one and reload",
                 dl->msg->area);
        delivery_defer(dl, now + c->retry_min, false, why);
        return false;
    }
    dl->p = a->profile;
    return true;
}

/* Gives back a slot the scheduler reserved for a delivery that did not start. */
static void delivery_release(struct daemon *d, const struct profile *reserved)
{
    if (reserved == NULL)
        return;
    struct profstate *ps = profstate_get(d, reserved->name);
    if (ps->active > 0)
        ps->active--;
}

void delivery_start_claimed(struct daemon *d, int64_t id, const struct profile *reserved)
{
    struct err e = {0};
    struct delivery *dl = xcalloc(1, sizeof *dl);
    dl->d = d;
    dl->id = id;
    dl->cfg = cfgref_get(d->cfg);
    delivery_link(d, dl);
    if (spool_load(d->spool, id, &dl->msg, &e) != 0) {
        /* A row we cannot even read: fail it with the reason, keep going. */
        log_event(d->log, LL_ERROR, "failed", "id=%lld reason=%q", (long long)id, e.msg);
        delivery_release(d, reserved);
        delivery_record(dl, MSG_FAILED, 0, false, e.msg, "failed", e.msg);
        delivery_end(dl);
        return;
    }
    if (!delivery_prepare(dl)) {
        delivery_release(d, reserved);
        delivery_end(dl);
        return;
    }
    dl->started_mono = now_ms_mono();
    if (reserved != dl->p) {
        delivery_release(d, reserved);
        profstate_started(d, dl->p, dl->started_mono);
    }
    if (dl->p->transport == TRANSPORT_GRAPH) {
        dl->via_graph = true;
        dl->graph.profile = dl->p;
        dl->graph.msg = dl->msg;
        dl->graph.att_read = spool_att_read;
        dl->graph.att_ctx = d->spool;
        dl->graph.on_draft = delivery_graph_draft;
        dl->graph.done = delivery_graph_done;
        dl->graph.arg = dl;
        graph_submit(d->graph, &dl->graph);
        return;
    }
    dl->smtp.profile = dl->p;
    dl->smtp.msg = dl->msg;
    dl->smtp.done = delivery_smtp_done;
    dl->smtp.arg = dl;
    smtp_pool_submit(d->smtp, &dl->smtp);
}

void delivery_start(struct daemon *d, int64_t id)
{
    struct err e = {0};
    int r = spool_claim(d->spool, id, &e);
    if (r != 1) {
        if (r < 0)
            log_event(d->log, LL_ERROR, "spool", "op=claim id=%lld reason=%q", (long long)id,
                      e.msg);
        return;
    }
    delivery_start_claimed(d, id, NULL);
}

void delivery_abort_all(struct daemon *d)
{
    if (d->smtp)
        smtp_pool_abort(d->smtp);
    if (d->graph)
        graph_abort(d->graph);
}

/*
 * Messages nobody can send in time (profile suspended for long, area not
 * served) would never be claimed: fail them as expired when their deadline
 * passes. Checked every few seconds by the tick.
 */
void delivery_expire_sweep(struct daemon *d)
{
    const struct config *c = d->cfg->cfg;
    int64_t min_life = c->lifetime;
    for (size_t i = 0; i < c->nareas; i++)
        if (c->areas[i].lifetime > 0 && c->areas[i].lifetime < min_life)
            min_life = c->areas[i].lifetime;
    int64_t now = now_s_wall();
    struct spool_due *v = NULL;
    size_t n = 0;
    struct err e = {0};
    if (spool_expiry_candidates(d->spool, now, now - min_life, 256, &v, &n, &e) != 0) {
        log_event(d->log, LL_ERROR, "spool", "op=expiry reason=%q", e.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bool expired = (v[i].expires > 0 && v[i].expires <= now) ||
                       delivery_life_end(v[i].created, config_area_lifetime(c, v[i].area)) <= now;
        if (expired)
            delivery_start(d, v[i].id); /* PREPARE fails it as expired */
    }
    spool_due_free(v, n);
}
