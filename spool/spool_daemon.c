/*
 * spool_daemon — the daemon's side of the spool: claiming due work,
 * recording outcomes, heartbeat and profile state, housekeeping.
 *
 * Owns: the SQL of delivery state changes (queued -> sending -> sent/failed
 * or back to queued), attempt rows, the daemon and profiles tables, and
 * WAL checkpoints.
 * Never: changes a message that is not in the state the caller expects
 * (cancel may win a race), or holds a transaction across a network wait.
 */
#include "buf.h"
#include "spool.h"
#include "spool_db.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* Messages deleted per transaction by spool_maintain, and batches per call:
 * bounds how long one call blocks the daemon's loop. */
#define SPOOL_MAINTAIN_BATCH 500
#define SPOOL_MAINTAIN_MAX_BATCHES 20

int spool_requeue_sending(struct spool *sp, int64_t **ids, size_t *n, struct err *e)
{
    *ids = NULL;
    *n = 0;
    if (spool_db_begin(sp, e) != 0)
        return -1;
    sqlite3_stmt *st;
    if (spool_db_prepare(sp, "SELECT id FROM messages WHERE state = 'sending' ORDER BY id", &st,
                         e) != 0)
        return spool_db_rollback(sp);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *ids = xreallocarray(*ids, *n + 1, sizeof **ids);
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        goto fail;
    if (spool_db_prepare(sp,
                         "UPDATE messages SET state = 'queued', updated = ?1"
                         " WHERE state = 'sending'",
                         &st, e) != 0)
        goto fail_e;
    sqlite3_bind_int64(st, 1, spool_db_now());
    if (spool_db_step_done(sp, st, "requeueing interrupted messages", e) != 0)
        goto fail_e;
    if (spool_db_commit(sp, e) != 0)
        goto fail_e;
    return 0;
fail:
    spool_db_fail(sp, rc, "listing interrupted messages", e);
fail_e:
    spool_db_rollback(sp);
    free(*ids);
    *ids = NULL;
    *n = 0;
    return -1;
}

/* Steps st (columns id, area, priority, created, expires) into *out. */
static int spool_due_collect(struct spool *sp, sqlite3_stmt *st, const char *what,
                             struct spool_due **out, size_t *n, struct err *e)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = xreallocarray(*out, *n + 1, sizeof **out);
        struct spool_due *d = &(*out)[(*n)++];
        d->id = sqlite3_column_int64(st, 0);
        d->area = spool_db_column_dup(st, 1);
        if (d->area == NULL)
            d->area = xstrdup("");
        d->priority = sqlite3_column_int(st, 2);
        d->created = sqlite3_column_int64(st, 3);
        d->expires = sqlite3_column_int64(st, 4);
    }
    spool_db_release(st);
    if (rc != SQLITE_DONE) {
        spool_due_free(*out, *n);
        *out = NULL;
        *n = 0;
        return spool_db_fail(sp, rc, what, e);
    }
    return 0;
}

/* " AND area IN (?first, ...)" (or NOT IN) with n parameters. */
static void spool_area_list(struct buf *sql, bool in, size_t first, size_t n)
{
    buf_puts(sql, in ? " AND area IN (" : " AND area NOT IN (");
    for (size_t i = 0; i < n; i++)
        buf_printf(sql, "%s?%zu", i ? ", " : "", first + i);
    buf_puts(sql, ")");
}

int spool_due(struct spool *sp, int64_t now, const char *const *areas, size_t nareas, bool only,
              size_t max, struct spool_due **out, size_t *n, struct err *e)
{
    *out = NULL;
    *n = 0;
    struct buf sql = BUF_INIT;
    buf_puts(&sql, "SELECT id, area, priority, created, expires FROM messages"
                   " WHERE state = 'queued' AND next_attempt <= ?1 AND not_before <= ?1");
    if (nareas > 0 || only)
        spool_area_list(&sql, only, 3, nareas);
    buf_puts(&sql, " ORDER BY priority DESC, next_attempt, id LIMIT ?2");
    sqlite3_stmt *st;
    int rc = spool_db_cached(sp, sql.data, &st, e);
    buf_free(&sql);
    if (rc != 0)
        return -1;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    for (size_t i = 0; i < nareas; i++)
        spool_db_bind_text(st, (int)i + 3, areas[i]);
    return spool_due_collect(sp, st, "listing due messages", out, n, e);
}

int spool_release_areas(struct spool *sp, int64_t now, const char *const *was, size_t nwas,
                        const char *const *now_served, size_t nnow, bool all, int64_t *count,
                        struct err *e)
{
    *count = 0;
    if (!all && nnow == 0)
        return 0;
    struct buf sql = BUF_INIT;
    buf_puts(&sql, "UPDATE messages SET next_attempt = ?1"
                   " WHERE state = 'queued' AND next_attempt > ?1");
    if (nwas > 0)
        spool_area_list(&sql, false, 2, nwas);
    if (!all)
        spool_area_list(&sql, true, 2 + nwas, nnow);
    sqlite3_stmt *st;
    int rc = spool_db_prepare(sp, sql.data, &st, e);
    buf_free(&sql);
    if (rc != 0)
        return -1;
    sqlite3_bind_int64(st, 1, now);
    size_t k = 2;
    for (size_t i = 0; i < nwas; i++)
        spool_db_bind_text(st, (int)k++, was[i]);
    for (size_t i = 0; !all && i < nnow; i++)
        spool_db_bind_text(st, (int)k++, now_served[i]);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return spool_db_fail(sp, rc, "releasing messages of areas a reload added", e);
    *count = sqlite3_changes(sp->db);
    return 0;
}

int spool_expiry_candidates(struct spool *sp, int64_t now, int64_t created_before, size_t max,
                            struct spool_due **out, size_t *n, struct err *e)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (spool_db_cached(sp,
                        "SELECT id, area, priority, created, expires FROM messages"
                        " WHERE state = 'queued' AND (created < ?2"
                        " OR (expires > 0 AND expires <= ?1)) ORDER BY id LIMIT ?3",
                        &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, created_before);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
    return spool_due_collect(sp, st, "listing messages to expire", out, n, e);
}

void spool_due_free(struct spool_due *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].area);
    free(v);
}

int spool_next_due(struct spool *sp, int64_t *when, struct err *e)
{
    *when = 0;
    sqlite3_stmt *st;
    /* Written as ORDER BY ... LIMIT 1 over the exact expression of the index
     * messages_queued_due_at (partial: the state term must stay literal): one
     * index seek instead of a scan of every queued row. */
    if (spool_db_cached(sp,
                        "SELECT max(next_attempt, not_before) FROM messages"
                        " WHERE state = 'queued' ORDER BY max(next_attempt, not_before) LIMIT 1",
                        &st, e) != 0)
        return -1;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        spool_db_fail(sp, rc, "finding the next due message", e);
        spool_db_release(st);
        return -1;
    }
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        int64_t t = sqlite3_column_int64(st, 0);
        /* 0 means "nothing queued": a message due since forever is due at 1. */
        *when = t > 0 ? t : 1;
    }
    spool_db_release(st);
    return 0;
}

/* Runs one single-statement write under BEGIN IMMEDIATE; *changes gets
 * sqlite3_changes(). The statement's parameters are already bound. */
static int spool_daemon_write1(struct spool *sp, sqlite3_stmt *st, const char *what, int *changes,
                               struct err *e)
{
    if (spool_db_begin(sp, e) != 0) {
        sqlite3_finalize(st);
        return -1;
    }
    if (spool_db_step_done(sp, st, what, e) != 0)
        return spool_db_rollback(sp);
    if (changes)
        *changes = sqlite3_changes(sp->db);
    return spool_db_commit(sp, e);
}

int spool_shift_retries(struct spool *sp, int64_t after, int64_t delta, int *n, struct err *e)
{
    *n = 0;
    sqlite3_stmt *st;
    /* not_before is a producer's absolute time and stays as it is. */
    if (spool_db_prepare(sp,
                         "UPDATE messages SET next_attempt = next_attempt + ?2"
                         " WHERE state = 'queued' AND next_attempt > ?1",
                         &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, delta);
    return spool_daemon_write1(sp, st, "moving retries after a clock jump", n, e);
}

int spool_claim(struct spool *sp, int64_t id, struct err *e)
{
    if (spool_db_begin(sp, e) != 0)
        return -1;
    sqlite3_stmt *st;
    if (spool_db_cached(sp,
                        "UPDATE messages SET state = 'sending', updated = ?2"
                        " WHERE id = ?1 AND state = 'queued'",
                        &st, e) != 0)
        return spool_db_rollback(sp);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, spool_db_now());
    if (spool_db_step_reset(sp, st, "claiming a message", e) != 0)
        return spool_db_rollback(sp);
    int changes = sqlite3_changes(sp->db);
    if (spool_db_commit(sp, e) != 0)
        return -1;
    return changes > 0 ? 1 : 0;
}

/* The claims of spool_claim_many inside the caller's transaction. */
static int spool_claim_in_tx(struct spool *sp, const int64_t *ids, size_t n, bool *claimed,
                             struct err *e)
{
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st;
        if (spool_db_cached(sp,
                            "UPDATE messages SET state = 'sending', updated = ?2"
                            " WHERE id = ?1 AND state = 'queued'",
                            &st, e) != 0)
            return -1;
        sqlite3_bind_int64(st, 1, ids[i]);
        sqlite3_bind_int64(st, 2, spool_db_now());
        if (spool_db_step_reset(sp, st, "claiming a message", e) != 0)
            return -1;
        claimed[i] = sqlite3_changes(sp->db) > 0;
    }
    return 0;
}

static int spool_finish_one(struct spool *sp, const struct spool_outcome *o, struct err *e);

int spool_turn(struct spool *sp, const struct spool_outcome *v, size_t nv, const int64_t *ids,
               size_t n, bool *claimed, struct err *e)
{
    for (size_t i = 0; i < n; i++)
        claimed[i] = false;
    if (n == 0 && nv == 0)
        return 0;
    if (spool_db_begin(sp, e) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < nv && rc == 0; i++)
        rc = spool_finish_one(sp, &v[i], e);
    if (rc == 0)
        rc = spool_claim_in_tx(sp, ids, n, claimed, e);
    if (rc == 0)
        rc = spool_db_commit(sp, e); /* rolls back when it fails */
    else
        spool_db_rollback(sp);
    /* On failure nothing was written and nothing claimed. */
    for (size_t i = 0; rc != 0 && i < n; i++)
        claimed[i] = false;
    return rc;
}

int spool_claim_many(struct spool *sp, const int64_t *ids, size_t n, bool *claimed, struct err *e)
{
    return spool_turn(sp, NULL, 0, ids, n, claimed, e);
}

static int spool_finish_attempts(struct spool *sp, int64_t id, const struct spool_attempt *att,
                                 size_t natt, struct err *e)
{
    for (size_t i = 0; i < natt; i++) {
        sqlite3_stmt *st;
        if (spool_db_cached(sp,
                            "INSERT INTO attempts (message_id, at_ms, profile, transport,"
                            " result, reply, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                            &st, e) != 0)
            return -1;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, att[i].at_ms ? att[i].at_ms : spool_db_now_ms());
        spool_db_bind_text(st, 3, att[i].profile);
        spool_db_bind_text(st, 4, att[i].transport ? att[i].transport : "");
        spool_db_bind_text(st, 5, att[i].result ? att[i].result : "");
        spool_db_bind_text(st, 6, att[i].reply);
        sqlite3_bind_int64(st, 7, att[i].duration_ms);
        if (spool_db_step_reset(sp, st, "recording an attempt", e) != 0)
            return -1;
    }
    return 0;
}

/* The recipients one attempt decided. Only a recipient still pending is
 * marked: a mark is final (retry turns 'failed' back into pending). */
static int spool_finish_marks(struct spool *sp, int64_t id, const struct spool_rcpt_mark *v,
                              size_t n, struct err *e)
{
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st;
        if (spool_db_cached(sp,
                            "UPDATE recipients SET state = ?3"
                            " WHERE id = ?1 AND message_id = ?2 AND state IS NULL",
                            &st, e) != 0)
            return -1;
        sqlite3_bind_int64(st, 1, v[i].row);
        sqlite3_bind_int64(st, 2, id);
        spool_db_bind_text(st, 3, rcpt_state_name(v[i].state));
        if (spool_db_step_reset(sp, st, "recording a recipient's delivery", e) != 0)
            return -1;
    }
    return 0;
}

/* One outcome inside the caller's transaction. */
static int spool_finish_one(struct spool *sp, const struct spool_outcome *o, struct err *e)
{
    if (spool_finish_attempts(sp, o->id, o->att, o->natt, e) != 0)
        return -1;
    sqlite3_stmt *st;
    if (spool_db_cached(sp,
                        "UPDATE messages SET state = ?2, next_attempt = ?3,"
                        " attempts = attempts + ?4, last_error = ?5, updated = ?6"
                        " WHERE id = ?1 AND state = 'sending'",
                        &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, o->id);
    spool_db_bind_text(st, 2, msg_state_name(o->state));
    sqlite3_bind_int64(st, 3, o->state == MSG_QUEUED ? o->next_attempt : 0);
    sqlite3_bind_int(st, 4, o->count_attempt ? 1 : 0);
    spool_db_bind_text(st, 5, o->state == MSG_SENT ? NULL : o->reason);
    sqlite3_bind_int64(st, 6, spool_db_now());
    if (spool_db_step_reset(sp, st, "recording the outcome", e) != 0)
        return -1;
    if (o->nmarks == 0 || sqlite3_changes(sp->db) == 0)
        return 0; /* no longer ours: retried or cancelled meanwhile */
    return spool_finish_marks(sp, o->id, o->marks, o->nmarks, e);
}

int spool_finish_many(struct spool *sp, const struct spool_outcome *v, size_t n, struct err *e)
{
    return spool_turn(sp, v, n, NULL, 0, NULL, e);
}

int spool_finish(struct spool *sp, int64_t id, enum msg_state new_state, int64_t next_attempt,
                 bool count_attempt, const char *reason, const struct spool_attempt *att,
                 size_t natt, struct err *e)
{
    struct spool_outcome o = {id,   new_state, next_attempt, count_attempt, reason, att, natt,
                              NULL, 0};
    return spool_finish_many(sp, &o, 1, e);
}

int spool_set_draft(struct spool *sp, int64_t id, const char *draft_id, struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_prepare(sp, "UPDATE messages SET draft_id = ?2 WHERE id = ?1", &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    spool_db_bind_text(st, 2, draft_id);
    return spool_daemon_write1(sp, st, "remembering a draft", NULL, e);
}

int spool_heartbeat(struct spool *sp, long pid, int64_t started, int64_t now, struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_prepare(sp,
                         "INSERT INTO daemon (id, pid, started, heartbeat) VALUES (1, ?1, ?2, ?3)"
                         " ON CONFLICT (id) DO UPDATE SET pid = excluded.pid,"
                         " started = excluded.started, heartbeat = excluded.heartbeat",
                         &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, pid);
    sqlite3_bind_int64(st, 2, started);
    sqlite3_bind_int64(st, 3, now);
    return spool_daemon_write1(sp, st, "writing the heartbeat", NULL, e);
}

static int spool_profiles_insert(struct spool *sp, const struct spool_profile_state *p,
                                 struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_prepare(sp,
                         "INSERT OR REPLACE INTO profiles (name, transport, last_success,"
                         " last_error_at, last_error, suspended_until, token_expires,"
                         " secret_expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                         &st, e) != 0)
        return -1;
    spool_db_bind_text(st, 1, p->name ? p->name : "");
    spool_db_bind_text(st, 2, p->transport);
    sqlite3_bind_int64(st, 3, p->last_success);
    sqlite3_bind_int64(st, 4, p->last_error_at);
    spool_db_bind_text(st, 5, p->last_error);
    sqlite3_bind_int64(st, 6, p->suspended_until);
    sqlite3_bind_int64(st, 7, p->token_expires);
    sqlite3_bind_int64(st, 8, p->secret_expires);
    return spool_db_step_done(sp, st, "writing profile state", e);
}

int spool_profiles_put(struct spool *sp, const struct spool_profile_state *v, size_t n,
                       struct err *e)
{
    if (spool_db_begin(sp, e) != 0)
        return -1;
    if (spool_db_exec(sp, "DELETE FROM profiles", "clearing profile state", e) != 0)
        return spool_db_rollback(sp);
    for (size_t i = 0; i < n; i++)
        if (spool_profiles_insert(sp, &v[i], e) != 0)
            return spool_db_rollback(sp);
    return spool_db_commit(sp, e);
}

int spool_counts(struct spool *sp, struct spool_counts *out, struct err *e)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    /* Both queries are answered from indexes (messages_state_created,
     * messages_queued_deferred), never from the table rows. */
    if (spool_db_cached(sp, "SELECT state, count(*), min(created) FROM messages GROUP BY state",
                        &st, e) != 0)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t c = sqlite3_column_int64(st, 1);
        switch (msg_state_parse((const char *)sqlite3_column_text(st, 0))) {
        case MSG_QUEUED:
            out->queued = c;
            out->oldest_queued = sqlite3_column_int64(st, 2);
            break;
        case MSG_SENDING:
            out->sending = c;
            break;
        case MSG_SENT:
            out->sent = c;
            break;
        case MSG_FAILED:
            out->failed = c;
            break;
        case MSG_CANCELLED:
            out->cancelled = c;
            break;
        default:
            break;
        }
    }
    spool_db_release(st);
    if (rc != SQLITE_DONE)
        return spool_db_fail(sp, rc, "counting messages", e);
    if (spool_db_cached(sp, "SELECT count(*) FROM messages WHERE state = 'queued' AND attempts > 0",
                        &st, e) != 0)
        return -1;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        out->deferred = sqlite3_column_int64(st, 0);
    spool_db_release(st);
    if (rc != SQLITE_ROW)
        return spool_db_fail(sp, rc, "counting deferred messages", e);
    return 0;
}

int spool_maintain(struct spool *sp, int64_t now, int64_t keep_sent, struct err *e)
{
    for (int b = 0; keep_sent > 0 && b < SPOOL_MAINTAIN_MAX_BATCHES; b++) {
        sqlite3_stmt *st;
        if (spool_db_prepare(sp,
                             "DELETE FROM messages WHERE id IN (SELECT id FROM messages"
                             " WHERE state = 'sent' AND updated < ?1 LIMIT ?2)",
                             &st, e) != 0)
            return -1;
        sqlite3_bind_int64(st, 1, now - keep_sent);
        sqlite3_bind_int(st, 2, SPOOL_MAINTAIN_BATCH);
        int changes = 0;
        if (spool_daemon_write1(sp, st, "purging sent messages", &changes, e) != 0)
            return -1;
        if (changes < SPOOL_MAINTAIN_BATCH)
            break;
    }
    int rc = sqlite3_wal_checkpoint_v2(sp->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
        return spool_db_fail(sp, rc, "checkpointing the WAL", e);
    return 0;
}
