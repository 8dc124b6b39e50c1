/*
 * spool_load — reading one message and its attachment bytes back.
 *
 * Owns: turning rows into a struct message exactly as stored (rows are
 * untrusted; the caller validates) and chunked blob reads.
 * Never: validates or repairs a row (a text holding a NUL byte, which a C
 * string cannot carry, is refused rather than cut), or holds a read
 * transaction between calls (each spool_att_read opens and closes its blob).
 */
#include "spool.h"
#include "spool_db.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* Fails when one of the columns [first, first + n) of the current row holds
 * a NUL byte. Plain SQL can store one; a C string would silently end there
 * ("a@b.example\0..." read as "a@b.example") and the message would go out
 * changed, so the row is refused instead (the daemon fails it with this). */
static int spool_load_nul(sqlite3_stmt *st, const char *table, int first, int n, int64_t id,
                          struct err *e)
{
    for (int c = first; c < first + n; c++) {
        const unsigned char *t = sqlite3_column_text(st, c);
        if (t && memchr(t, '\0', (size_t)sqlite3_column_bytes(st, c)))
            return err_set(e, EX_DATAERR,
                           "message %lld: column %s.%s holds a NUL byte, which no text may "
                           "contain: correct or delete the row",
                           (long long)id, table, sqlite3_column_name(st, c));
    }
    return 0;
}

static int spool_load_row(struct spool *sp, int64_t id, struct message *m, struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_cached(sp,
                        "SELECT area, ref, subject, body_text, body_html, reply_to, message_id,"
                        " priority, created, not_before, expires, attempts, draft_id, last_error"
                        " FROM messages WHERE id = ?1",
                        &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE)
            err_set(e, EX_NOINPUT, "message %lld does not exist in spool %s: see `mailspool list`",
                    (long long)id, sp->path);
        else
            spool_db_fail(sp, rc, "loading a message", e);
        spool_db_release(st);
        return -1;
    }
    m->id = id;
    m->area = spool_db_column_dup(st, 0);
    m->ref = spool_db_column_dup(st, 1);
    m->subject = spool_db_column_dup(st, 2);
    m->text = spool_db_column_dup(st, 3);
    m->html = spool_db_column_dup(st, 4);
    m->reply_to = spool_db_column_dup(st, 5);
    m->message_id = spool_db_column_dup(st, 6);
    m->priority = sqlite3_column_int(st, 7);
    m->created = sqlite3_column_int64(st, 8);
    m->not_before = sqlite3_column_int64(st, 9);
    m->expires = sqlite3_column_int64(st, 10);
    m->attempts = sqlite3_column_int(st, 11);
    m->draft_id = spool_db_column_dup(st, 12);
    m->last_error = spool_db_column_dup(st, 13);
    rc = spool_load_nul(st, "messages", 0, 7, id, e);
    spool_db_release(st);
    return rc;
}

/* Rows are appended as stored, without message_add_rcpt's checks: the
 * daemon must see a bad row in order to fail it with a reason. */
static int spool_load_rcpts(struct spool *sp, struct message *m, struct err *e)
{
    sqlite3_stmt *st;
    /* Version 1 (read-only openers only) has no state: all pending. */
    if (spool_db_cached(sp,
                        sp->version >= 2 ? "SELECT kind, name, address, id, state FROM recipients"
                                           " WHERE message_id = ?1 ORDER BY id"
                                         : "SELECT kind, name, address, id, NULL FROM recipients"
                                           " WHERE message_id = ?1 ORDER BY id",
                        &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, m->id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        m->rcpts = xreallocarray(m->rcpts, m->nrcpts + 1, sizeof *m->rcpts);
        struct msg_rcpt *r = &m->rcpts[m->nrcpts++];
        int kind = rcpt_kind_parse((const char *)sqlite3_column_text(st, 0));
        r->kind = kind < 0 ? RCPT_TO : (enum rcpt_kind)kind;
        r->name = spool_db_column_dup(st, 1);
        r->addr = spool_db_column_dup(st, 2);
        if (r->addr == NULL)
            r->addr = xstrdup("");
        r->row = sqlite3_column_int64(st, 3);
        r->same_as = SIZE_MAX;
        const char *state = (const char *)sqlite3_column_text(st, 4);
        /* The column's CHECK admits nothing else. */
        r->state = state == NULL                ? RCPT_PENDING
                   : strcmp(state, "sent") == 0 ? RCPT_SENT
                                                : RCPT_FAILED;
        if (spool_load_nul(st, "recipients", 0, 3, m->id, e) != 0) {
            spool_db_release(st);
            return -1;
        }
    }
    spool_db_release(st);
    if (rc != SQLITE_DONE)
        return spool_db_fail(sp, rc, "loading recipients", e);
    return 0;
}

static int spool_load_headers(struct spool *sp, struct message *m, struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_cached(sp, "SELECT name, value FROM headers WHERE message_id = ?1 ORDER BY id",
                        &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, m->id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        m->hdrs = xreallocarray(m->hdrs, m->nhdrs + 1, sizeof *m->hdrs);
        struct msg_header *h = &m->hdrs[m->nhdrs++];
        h->name = spool_db_column_dup(st, 0);
        h->value = spool_db_column_dup(st, 1);
        if (h->name == NULL)
            h->name = xstrdup("");
        if (h->value == NULL)
            h->value = xstrdup("");
        if (spool_load_nul(st, "headers", 0, 2, m->id, e) != 0) {
            spool_db_release(st);
            return -1;
        }
    }
    spool_db_release(st);
    if (rc != SQLITE_DONE)
        return spool_db_fail(sp, rc, "loading headers", e);
    return 0;
}

static int spool_load_atts(struct spool *sp, struct message *m, struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_cached(sp,
                        "SELECT id, name, content_type, size, sha256 FROM attachments"
                        " WHERE message_id = ?1 ORDER BY id",
                        &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, m->id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct msg_attachment *a = message_add_attachment(m);
        a->id = sqlite3_column_int64(st, 0);
        a->name = spool_db_column_dup(st, 1);
        a->content_type = spool_db_column_dup(st, 2);
        a->size = sqlite3_column_int64(st, 3);
        const char *hex = (const char *)sqlite3_column_text(st, 4);
        a->sha256[0] = '\0';
        if (hex && strlen(hex) == 64)
            memcpy(a->sha256, hex, 65);
        if (spool_load_nul(st, "attachments", 1, 2, m->id, e) != 0) {
            spool_db_release(st);
            return -1;
        }
    }
    spool_db_release(st);
    if (rc != SQLITE_DONE)
        return spool_db_fail(sp, rc, "loading attachments", e);
    return 0;
}

int spool_load(struct spool *sp, int64_t id, struct message **out, struct err *e)
{
    *out = NULL;
    struct message *m = message_new();
    /* One read transaction so that the parts match the row. */
    int rc = spool_db_read_begin(sp, e);
    if (rc == 0)
        rc = spool_load_row(sp, id, m, e);
    if (rc == 0)
        rc = spool_load_rcpts(sp, m, e);
    if (rc == 0)
        rc = spool_load_headers(sp, m, e);
    if (rc == 0)
        rc = spool_load_atts(sp, m, e);
    spool_db_rollback(sp);
    if (rc != 0) {
        message_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

ssize_t spool_att_read(void *ctx, const struct msg_attachment *a, int64_t off, void *buf,
                       size_t len, struct err *e)
{
    struct spool *sp = ctx;
    /* The composer asks once more at the end to see the attachment end. The
     * read that got there opened the blob and checked its size; opening it
     * again (which prepares a statement) cost about 2% of the daemon's CPU
     * in the W2 benchmark. */
    if (a->size > 0 && off == a->size)
        return 0;
    sqlite3_blob *blob;
    int rc = sqlite3_blob_open(sp->db, "main", "attachments", "data", a->id, 0, &blob);
    if (rc != SQLITE_OK) {
        spool_db_fail(sp, rc, "opening an attachment", e);
        return err_prefix(e, "attachment %lld (%s)", (long long)a->id, a->name ? a->name : "");
    }
    int64_t size = sqlite3_blob_bytes(blob);
    ssize_t n = 0;
    if (size != a->size) {
        n = err_set(e, EX_DATAERR,
                    "spool %s: attachment %lld (%s) holds %lld bytes but its size column says "
                    "%lld: the row was changed after enqueue; enqueue the message again",
                    sp->path, (long long)a->id, a->name ? a->name : "", (long long)size,
                    (long long)a->size);
    } else if (off < 0 || off >= size) {
        n = 0;
    } else {
        size_t want = (size_t)(size - off) < len ? (size_t)(size - off) : len;
        rc = sqlite3_blob_read(blob, buf, (int)want, (int)off);
        n = rc == SQLITE_OK ? (ssize_t)want : spool_db_fail(sp, rc, "reading an attachment", e);
    }
    sqlite3_blob_close(blob);
    return n;
}
