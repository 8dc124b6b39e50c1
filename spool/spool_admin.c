/*
 * spool_admin — administration reads and writes of the spool.
 *
 * Owns: the SQL of list, show, cancel, retry, purge and status figures.
 * Never: touches a message in state 'sending' (the daemon owns it until it
 * records the outcome) or deletes a queued message.
 */
#include "spool_admin.h"
#include "buf.h"
#include "spool_db.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* Purge deletes in batches so that producers never wait long for the lock. */
#define SPOOL_ADMIN_PURGE_BATCH 500

#define SPOOL_ADMIN_ROW_COLS                                                                       \
    "m.id, m.state, m.area, m.ref, m.subject, m.priority, m.created, m.updated,"                   \
    " m.not_before, m.expires, m.next_attempt, m.attempts, m.last_error, m.draft_id,"              \
    " (SELECT address FROM recipients r WHERE r.message_id = m.id ORDER BY r.id LIMIT 1),"         \
    " (SELECT count(*) FROM recipients r WHERE r.message_id = m.id)"

static void spool_admin_fill(sqlite3_stmt *st, struct spool_row *r)
{
    r->id = sqlite3_column_int64(st, 0);
    r->state = spool_db_column_dup(st, 1);
    r->area = spool_db_column_dup(st, 2);
    r->ref = spool_db_column_dup(st, 3);
    r->subject = spool_db_column_dup(st, 4);
    r->priority = sqlite3_column_int(st, 5);
    r->created = sqlite3_column_int64(st, 6);
    r->updated = sqlite3_column_int64(st, 7);
    r->not_before = sqlite3_column_int64(st, 8);
    r->expires = sqlite3_column_int64(st, 9);
    r->next_attempt = sqlite3_column_int64(st, 10);
    r->attempts = sqlite3_column_int(st, 11);
    r->last_error = spool_db_column_dup(st, 12);
    r->draft_id = spool_db_column_dup(st, 13);
    r->first_rcpt = spool_db_column_dup(st, 14);
    r->nrcpts = sqlite3_column_int64(st, 15);
}

void spool_admin_row_clear(struct spool_row *r)
{
    free(r->state);
    free(r->area);
    free(r->ref);
    free(r->subject);
    free(r->last_error);
    free(r->first_rcpt);
    free(r->draft_id);
    memset(r, 0, sizeof *r);
}

void spool_admin_rows_free(struct spool_row *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        spool_admin_row_clear(&v[i]);
    free(v);
}

int spool_admin_list(struct spool *sp, const struct spool_list_filter *f, struct spool_row **out,
                     size_t *n, struct err *e)
{
    *out = NULL;
    *n = 0;
    struct buf sql = BUF_INIT;
    /* The newest `limit` rows, shown oldest first. */
    buf_puts(&sql, "SELECT * FROM (SELECT " SPOOL_ADMIN_ROW_COLS " FROM messages m"
                   " WHERE (?1 IS NULL OR m.state = ?1) AND (?2 IS NULL OR m.area = ?2)"
                   " ORDER BY m.id DESC LIMIT ?3) ORDER BY 1");
    sqlite3_stmt *st;
    int rc = spool_db_prepare(sp, sql.data, &st, e);
    buf_free(&sql);
    if (rc != 0)
        return -1;
    spool_db_bind_text(st, 1, f->state);
    spool_db_bind_text(st, 2, f->area);
    sqlite3_bind_int64(st, 3, f->limit > 0 ? f->limit : -1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = xreallocarray(*out, *n + 1, sizeof **out);
        spool_admin_fill(st, &(*out)[(*n)++]);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        spool_admin_rows_free(*out, *n);
        *out = NULL;
        *n = 0;
        return spool_db_fail(sp, rc, "listing messages", e);
    }
    return 0;
}

int spool_admin_row(struct spool *sp, int64_t id, struct spool_row *out, struct err *e)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    if (spool_db_prepare(sp, "SELECT " SPOOL_ADMIN_ROW_COLS " FROM messages m WHERE m.id = ?1", &st,
                         e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW)
        spool_admin_fill(st, out);
    else if (rc == SQLITE_DONE)
        ret =
            err_set(e, EX_NOINPUT, "message %lld does not exist in spool %s: see `mailspool list`",
                    (long long)id, sp->path);
    else
        ret = spool_db_fail(sp, rc, "reading a message", e);
    sqlite3_finalize(st);
    return ret;
}

int spool_admin_find_ref(struct spool *sp, const char *area, const char *ref, int64_t *id,
                         struct err *e)
{
    *id = 0;
    sqlite3_stmt *st;
    if (spool_db_prepare(sp,
                         "SELECT id, area FROM messages WHERE ref = ?1"
                         " AND (?2 IS NULL OR area = ?2) ORDER BY id",
                         &st, e) != 0)
        return -1;
    spool_db_bind_text(st, 1, ref);
    spool_db_bind_text(st, 2, area);
    struct buf areas = BUF_INIT;
    int rc, found = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (found++ == 0)
            *id = sqlite3_column_int64(st, 0);
        buf_printf(&areas, "%s%s", found > 1 ? ", " : "", sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    int ret = 0;
    if (rc != SQLITE_DONE)
        ret = spool_db_fail(sp, rc, "looking up a ref", e);
    else if (found == 0)
        ret = err_set(e, EX_NOINPUT, "no message with ref \"%s\"%s%s in spool %s", ref,
                      area ? " in area " : "", area ? area : "", sp->path);
    else if (found > 1)
        ret = err_set(e, EX_USAGE, "ref \"%s\" exists in several areas (%s): add --area", ref,
                      areas.data);
    buf_free(&areas);
    return ret;
}

int spool_admin_attempts(struct spool *sp, int64_t id, struct spool_attempt_row **out, size_t *n,
                         struct err *e)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (spool_db_prepare(sp,
                         "SELECT at_ms, profile, transport, result, reply, duration_ms"
                         " FROM attempts WHERE message_id = ?1 ORDER BY at_ms, id",
                         &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = xreallocarray(*out, *n + 1, sizeof **out);
        struct spool_attempt_row *a = &(*out)[(*n)++];
        a->at_ms = sqlite3_column_int64(st, 0);
        a->profile = spool_db_column_dup(st, 1);
        a->transport = spool_db_column_dup(st, 2);
        a->result = spool_db_column_dup(st, 3);
        a->reply = spool_db_column_dup(st, 4);
        a->duration_ms = sqlite3_column_int64(st, 5);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        spool_admin_attempts_free(*out, *n);
        *out = NULL;
        *n = 0;
        return spool_db_fail(sp, rc, "reading attempts", e);
    }
    return 0;
}

void spool_admin_attempts_free(struct spool_attempt_row *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].profile);
        free(v[i].transport);
        free(v[i].result);
        free(v[i].reply);
    }
    free(v);
}

/* Reads the state of id inside the caller's transaction: 0 and *state
 * (static name), or -1 (EX_NOINPUT when the id is unknown). */
static int spool_admin_state(struct spool *sp, int64_t id, int *state, struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_prepare(sp, "SELECT state FROM messages WHERE id = ?1", &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW)
        *state = msg_state_parse((const char *)sqlite3_column_text(st, 0));
    else if (rc == SQLITE_DONE)
        ret =
            err_set(e, EX_NOINPUT, "message %lld does not exist in spool %s: see `mailspool list`",
                    (long long)id, sp->path);
    else
        ret = spool_db_fail(sp, rc, "reading a message", e);
    sqlite3_finalize(st);
    return ret;
}

/* Runs sql with ?1 = id, ?2 = now inside the caller's transaction. */
static int spool_admin_update(struct spool *sp, const char *sql, int64_t id, const char *what,
                              struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_prepare(sp, sql, &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, spool_db_now());
    return spool_db_step_done(sp, st, what, e);
}

int spool_admin_cancel(struct spool *sp, int64_t id, struct err *e)
{
    int state = -1;
    if (spool_db_begin(sp, e) != 0)
        return -1;
    if (spool_admin_state(sp, id, &state, e) != 0)
        return spool_db_rollback(sp);
    if (state == MSG_CANCELLED)
        return spool_db_commit(sp, e);
    if (state == MSG_SENDING) {
        spool_db_rollback(sp);
        return err_set(e, EX_TEMPFAIL,
                       "message %lld is being delivered right now: cancel it again if this "
                       "attempt does not succeed",
                       (long long)id);
    }
    if (state != MSG_QUEUED) {
        spool_db_rollback(sp);
        return err_set(e, EX_DATAERR,
                       "message %lld is already %s: only queued messages can be "
                       "cancelled",
                       (long long)id, msg_state_name((enum msg_state)state));
    }
    if (spool_admin_update(sp,
                           "UPDATE messages SET state = 'cancelled', updated = ?2"
                           " WHERE id = ?1 AND state = 'queued'",
                           id, "cancelling", e) != 0)
        return spool_db_rollback(sp);
    return spool_db_commit(sp, e);
}

/* Recipients of message id that a server refused for good. */
static int spool_admin_refused(struct spool *sp, int64_t id, int64_t *n, struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_prepare(
            sp, "SELECT count(*) FROM recipients WHERE message_id = ?1 AND state = 'failed'", &st,
            e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : spool_db_fail(sp, rc, "counting refused recipients", e);
}

int spool_admin_retry(struct spool *sp, int64_t id, struct err *e)
{
    int state = -1;
    if (spool_db_begin(sp, e) != 0)
        return -1;
    if (spool_admin_state(sp, id, &state, e) != 0)
        return spool_db_rollback(sp);
    if (state == MSG_SENDING) {
        spool_db_rollback(sp);
        return err_set(e, EX_TEMPFAIL,
                       "message %lld is being delivered right now: nothing to "
                       "retry",
                       (long long)id);
    }
    /* A sent message qualifies while a server's refusal keeps it from some
     * recipients (the relay's policy was fixed, say). */
    int64_t refused = 0;
    if (state == MSG_SENT && spool_admin_refused(sp, id, &refused, e) != 0)
        return spool_db_rollback(sp);
    if (state == MSG_SENT && refused == 0) {
        spool_db_rollback(sp);
        return err_set(e, EX_DATAERR, "message %lld was sent to every recipient: nothing to retry",
                       (long long)id);
    }
    if (state != MSG_QUEUED && state != MSG_FAILED && state != MSG_SENT) {
        spool_db_rollback(sp);
        return err_set(e, EX_DATAERR,
                       "message %lld is %s: only queued and failed messages, and sent ones "
                       "that some recipients refused, can be retried",
                       (long long)id, msg_state_name((enum msg_state)state));
    }
    /* An explicit retry means "now": it overrides not_before too. A failed
     * (or partly refused) message starts afresh: attempts from zero and a
     * new queue lifetime (created = now), and an expires time already past
     * no longer applies — otherwise a message that failed as expired would
     * expire again at once. Its recipients refused for good are tried
     * again; those that have it do not get it twice. */
    if (state != MSG_QUEUED && spool_admin_update(sp,
                                                  "UPDATE recipients SET state = NULL"
                                                  " WHERE message_id = ?1 AND state = 'failed'",
                                                  id, "retrying its refused recipients", e) != 0)
        return spool_db_rollback(sp);
    if (spool_admin_update(
            sp,
            "UPDATE messages SET next_attempt = 0, not_before = 0, updated = ?2,"
            " attempts = CASE state WHEN 'queued' THEN attempts ELSE 0 END,"
            " created = CASE state WHEN 'queued' THEN created ELSE ?2 END,"
            " expires = CASE WHEN state <> 'queued' AND expires > 0"
            " AND expires <= ?2 THEN 0 ELSE expires END,"
            " state = 'queued' WHERE id = ?1 AND state IN ('queued', 'failed', 'sent')",
            id, "retrying", e) != 0)
        return spool_db_rollback(sp);
    return spool_db_commit(sp, e);
}

/* One statement over the messages of an area (?1; NULL: every area), ?2
 * bound to now, under the caller's transaction; *changes from it. */
static int spool_admin_area_update(struct spool *sp, const char *sql, const char *area,
                                   const char *what, int64_t *changes, struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_prepare(sp, sql, &st, e) != 0)
        return -1;
    spool_db_bind_text(st, 1, area);
    sqlite3_bind_int64(st, 2, spool_db_now()); /* SQLITE_RANGE when sql has no ?2: harmless */
    if (spool_db_step_done(sp, st, what, e) != 0)
        return -1;
    if (changes)
        *changes = sqlite3_changes(sp->db);
    return 0;
}

int spool_admin_retry_failed(struct spool *sp, const char *area, int64_t *count, struct err *e)
{
    *count = 0;
    if (spool_db_begin(sp, e) != 0)
        return -1;
    /* As spool_admin_retry: refused recipients are tried again. */
    if (spool_admin_area_update(
            sp,
            "UPDATE recipients SET state = NULL WHERE state = 'failed' AND message_id"
            " IN (SELECT id FROM messages WHERE state = 'failed' AND (?1 IS NULL OR area = ?1))",
            area, "retrying refused recipients", NULL, e) != 0 ||
        spool_admin_area_update(
            sp,
            "UPDATE messages SET state = 'queued', next_attempt = 0, not_before = 0,"
            " attempts = 0, updated = ?2, created = ?2,"
            " expires = CASE WHEN expires > 0 AND expires <= ?2 THEN 0 ELSE expires END"
            " WHERE state = 'failed'"
            " AND (?1 IS NULL OR area = ?1)",
            area, "requeueing failed messages", count, e) != 0) {
        *count = 0;
        return spool_db_rollback(sp);
    }
    return spool_db_commit(sp, e);
}

int spool_admin_purge(struct spool *sp, int64_t before, int64_t *count, struct err *e)
{
    *count = 0;
    /* Bounded by the number of rows: every batch deletes or the loop ends. */
    for (;;) {
        if (spool_db_begin(sp, e) != 0)
            return -1;
        sqlite3_stmt *st;
        if (spool_db_prepare(sp,
                             "DELETE FROM messages WHERE id IN (SELECT id FROM messages"
                             " WHERE state IN ('sent', 'failed', 'cancelled') AND updated < ?1"
                             " LIMIT ?2)",
                             &st, e) != 0)
            return spool_db_rollback(sp);
        sqlite3_bind_int64(st, 1, before);
        sqlite3_bind_int(st, 2, SPOOL_ADMIN_PURGE_BATCH);
        if (spool_db_step_done(sp, st, "purging", e) != 0)
            return spool_db_rollback(sp);
        int changes = sqlite3_changes(sp->db);
        if (spool_db_commit(sp, e) != 0)
            return -1;
        *count += changes;
        if (changes < SPOOL_ADMIN_PURGE_BATCH)
            return 0;
    }
}

int spool_admin_area_counts(struct spool *sp, struct spool_area_count **out, size_t *n,
                            struct err *e)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (spool_db_prepare(sp,
                         "SELECT area, state, count(*), min(created) FROM messages"
                         " GROUP BY area, state ORDER BY area, state",
                         &st, e) != 0)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = xreallocarray(*out, *n + 1, sizeof **out);
        struct spool_area_count *c = &(*out)[(*n)++];
        c->area = spool_db_column_dup(st, 0);
        c->state = spool_db_column_dup(st, 1);
        c->count = sqlite3_column_int64(st, 2);
        c->oldest = sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        spool_admin_area_counts_free(*out, *n);
        *out = NULL;
        *n = 0;
        return spool_db_fail(sp, rc, "counting messages", e);
    }
    return 0;
}

void spool_admin_area_counts_free(struct spool_area_count *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].area);
        free(v[i].state);
    }
    free(v);
}

int spool_admin_daemon(struct spool *sp, struct spool_daemon_row *out, struct err *e)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    if (spool_db_prepare(sp, "SELECT pid, started, heartbeat FROM daemon WHERE id = 1", &st, e) !=
        0)
        return -1;
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW) {
        out->present = 1;
        out->pid = (long)sqlite3_column_int64(st, 0);
        out->started = sqlite3_column_int64(st, 1);
        out->heartbeat = sqlite3_column_int64(st, 2);
    } else if (rc != SQLITE_DONE) {
        ret = spool_db_fail(sp, rc, "reading the daemon's heartbeat", e);
    }
    sqlite3_finalize(st);
    return ret;
}

int spool_admin_profiles(struct spool *sp, struct spool_profile_row **out, size_t *n, struct err *e)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (spool_db_prepare(sp,
                         "SELECT name, transport, last_success, last_error_at, last_error,"
                         " suspended_until, token_expires, secret_expires FROM profiles"
                         " ORDER BY name",
                         &st, e) != 0)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = xreallocarray(*out, *n + 1, sizeof **out);
        struct spool_profile_row *p = &(*out)[(*n)++];
        p->name = spool_db_column_dup(st, 0);
        p->transport = spool_db_column_dup(st, 1);
        p->last_success = sqlite3_column_int64(st, 2);
        p->last_error_at = sqlite3_column_int64(st, 3);
        p->last_error = spool_db_column_dup(st, 4);
        p->suspended_until = sqlite3_column_int64(st, 5);
        p->token_expires = sqlite3_column_int64(st, 6);
        p->secret_expires = sqlite3_column_int64(st, 7);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        spool_admin_profiles_free(*out, *n);
        *out = NULL;
        *n = 0;
        return spool_db_fail(sp, rc, "reading profile state", e);
    }
    return 0;
}

void spool_admin_profiles_free(struct spool_profile_row *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].transport);
        free(v[i].last_error);
    }
    free(v);
}
