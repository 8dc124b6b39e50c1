/* test_spool — the spool sources against real SQLite files in a private directory:
 * creation (mode, WAL, version), enqueue/load round trip with attachment
 * blobs, idempotent refs, nothing written on bad input, the daemon's
 * claim/finish cycle, admin cancel/retry/purge, and refusal of newer,
 * foreign, damaged and non-database files (left untouched). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/mman.h>

#include "message.h"
#include "sha256.h"
#include "spool.h"
#include "spool_admin.h"
#include "spool_db.h" /* the connection, to simulate a full disk */
#include "xmalloc.h"

struct fx {
    char dir[64];
    char *db;
    struct spool *sp;
};

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/test_spool.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->db = xasprintf("%s/spool.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    spool_close(f->sp);
    char *cmd = xasprintf("rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(cmd);
    free(f->db);
    free(f);
    return 0;
}

static struct spool *open_or_fail(const char *path, int flags)
{
    struct spool *sp = NULL;
    struct err e = {0};
    if (spool_open(path, flags, &sp, &e) != 0)
        fail_msg("spool_open %s: %s", path, e.msg);
    return sp;
}

static long long sql_int(const char *db, const char *sql)
{
    sqlite3 *h;
    sqlite3_stmt *st;
    long long v = -1;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(h));
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static void sql_exec(const char *db, const char *sql)
{
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(h);
}

static struct message *sample(const char *area, const char *ref)
{
    struct message *m = message_new();
    struct err e = {0};
    m->area = xstrdup(area);
    m->ref = xstrdup_opt(ref);
    m->subject = xstrdup("Rechnung 2026-0042");
    m->text = xstrdup("Sehr geehrte Damen und Herren");
    assert_int_equal(message_add_rcpt(m, RCPT_TO, "Bärbel Groß <b@example.org>", &e), 0);
    assert_int_equal(message_add_rcpt(m, RCPT_BCC, "audit@example.org", &e), 0);
    assert_int_equal(message_add_header(m, "X-Airport-Ref", "INV-42", &e), 0);
    return m;
}

static int64_t enqueue_ok(struct spool *sp, const struct message *m, bool *existing)
{
    int64_t id = 0;
    struct err e = {0};
    if (spool_enqueue(sp, m, &id, existing, &e) != 0)
        fail_msg("enqueue: %s", e.msg);
    return id;
}

static void test_create(void **state)
{
    struct fx *f = *state;
    f->sp = open_or_fail(f->db, SPOOL_PRODUCER);
    struct stat st;
    assert_int_equal(stat(f->db, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    assert_int_equal(sql_int(f->db, "PRAGMA user_version"), 2);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(h);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM meta WHERE key = 'instance' AND "
                                    "length(value) = 32"),
                     1);
    /* A second opener (daemon) sees the same schema and does not redo it. */
    struct spool *d = open_or_fail(f->db, SPOOL_DAEMON);
    spool_close(d);
    /* The scheduler's queries read the partial queued-only indexes: the due
     * query the covering one alone, never a table row. */
    static const struct {
        const char *sql, *plan;
    } plans[] = {
        {"SELECT id, area, priority, created, expires FROM messages WHERE state = 'queued' AND"
         " next_attempt <= 5 AND not_before <= 5 AND area NOT IN ('x')"
         " ORDER BY priority DESC, next_attempt, id LIMIT 9",
         "COVERING INDEX messages_queued_due"},
        {"SELECT max(next_attempt, not_before) FROM messages WHERE state = 'queued'"
         " ORDER BY max(next_attempt, not_before) LIMIT 1",
         "INDEX messages_queued_due_at"},
        {"SELECT count(*) FROM messages WHERE state = 'queued' AND attempts > 0",
         "INDEX messages_queued_deferred"},
    };
    sqlite3 *q;
    assert_int_equal(sqlite3_open(f->db, &q), SQLITE_OK);
    for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++) {
        char *sql = xasprintf("EXPLAIN QUERY PLAN %s", plans[i].sql);
        assert_int_equal(sqlite3_prepare_v2(q, sql, -1, &s, NULL), SQLITE_OK);
        free(sql);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        const char *plan = (const char *)sqlite3_column_text(s, 3);
        if (strstr(plan, plans[i].plan) == NULL)
            fail_msg("query %zu: plan '%s' lacks '%s'", i, plan, plans[i].plan);
        sqlite3_finalize(s);
    }
    sqlite3_close(q);
}

/* The layout of version 1: no recipients.state. */
#define V1_SQL "ALTER TABLE recipients DROP COLUMN state; PRAGMA user_version = 1;"

/* Version 1 spools made by older builds (the first: messages_due and
 * messages_area_state; the next: full-width due, due-at and deferred
 * indexes) get the current indexes from the daemon, and lose the old ones,
 * as it migrates them to version 2. */
static void test_old_indexes_upgraded(void **state)
{
    struct fx *f = *state;
    static const char *const older[] = {
        "DROP INDEX messages_queued_due; DROP INDEX messages_queued_due_at;"
        " DROP INDEX messages_queued_deferred; DROP INDEX messages_area_state_created;"
        " CREATE INDEX messages_due ON messages (state, priority DESC, next_attempt);"
        " CREATE INDEX messages_area_state ON messages (area, state);",
        "DROP INDEX messages_queued_due; DROP INDEX messages_queued_due_at;"
        " DROP INDEX messages_queued_deferred;"
        " CREATE INDEX messages_due_cover ON messages"
        " (state, priority DESC, next_attempt, id, not_before, area, created, expires);"
        " CREATE INDEX messages_due_at ON messages (state, max(next_attempt, not_before));"
        " CREATE INDEX messages_deferred ON messages (state) WHERE attempts > 0;",
    };
    for (size_t i = 0; i < sizeof older / sizeof older[0]; i++) {
        if (unlink(f->db) != 0)
            assert_int_equal(errno, ENOENT);
        spool_close(open_or_fail(f->db, SPOOL_PRODUCER));
        sql_exec(f->db, older[i]);
        sql_exec(f->db, V1_SQL);
        struct spool *d = open_or_fail(f->db, SPOOL_DAEMON);
        spool_close(d);
        assert_int_equal(sql_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name IN"
                                        " ('messages_queued_due', 'messages_queued_due_at',"
                                        " 'messages_queued_deferred',"
                                        " 'messages_area_state_created')"),
                         4);
        assert_int_equal(sql_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name IN"
                                        " ('messages_due', 'messages_area_state',"
                                        " 'messages_due_cover', 'messages_due_at',"
                                        " 'messages_deferred')"),
                         0);
        assert_int_equal(sql_int(f->db, "PRAGMA user_version"), 2);
    }
}

/* A version 1 spool with a queued message: producers wait for the daemon
 * (75), which migrates it; readers read it as it is. The message is then
 * whole and every recipient pending. */
static void test_v1_migrated(void **state)
{
    struct fx *f = *state;
    struct spool *p = open_or_fail(f->db, SPOOL_PRODUCER);
    struct message *m = sample("invoice", "v1");
    int64_t id = enqueue_ok(p, m, NULL);
    message_free(m);
    spool_close(p);
    sql_exec(f->db, V1_SQL);
    struct spool *sp = NULL;
    struct err e = {0};
    assert_int_equal(spool_open(f->db, SPOOL_PRODUCER, &sp, &e), -1);
    assert_int_equal(e.code, EX_TEMPFAIL);
    assert_non_null(strstr(e.msg, "start mailspoold"));
    assert_int_equal(sql_int(f->db, "PRAGMA user_version"), 1);
    /* Reading needs no migration: show/list work before the daemon ran. */
    struct spool *ro = open_or_fail(f->db, SPOOL_READONLY);
    struct message *l = NULL;
    assert_int_equal(spool_load(ro, id, &l, &e), 0);
    assert_int_equal(message_count_rcpts(l, RCPT_PENDING), 2);
    message_free(l);
    spool_close(ro);
    assert_int_equal(sql_int(f->db, "PRAGMA user_version"), 1);
    f->sp = open_or_fail(f->db, SPOOL_DAEMON);
    assert_int_equal(sql_int(f->db, "PRAGMA user_version"), 2);
    assert_int_equal(spool_load(f->sp, id, &l, &e), 0);
    assert_int_equal(l->nrcpts, 2);
    assert_int_equal(message_count_rcpts(l, RCPT_PENDING), 2);
    assert_true(l->rcpts[0].row > 0 && l->rcpts[1].row > l->rcpts[0].row);
    message_free(l);
    /* What a version 1 producer writes still goes in. */
    sql_exec(f->db, "INSERT INTO messages (area, subject, body_text) VALUES ('x', 's', 't');"
                    "INSERT INTO recipients (message_id, kind, address)"
                    " VALUES (last_insert_rowid(), 'to', 'a@example.org');");
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM recipients WHERE state IS NULL"), 3);
}

/* The recipients an attempt decided are written with its outcome, only
 * while the message is still sending; a retry turns the refused ones back
 * into pending ones and leaves those that have it. */
static void test_recipient_marks(void **state)
{
    struct fx *f = *state;
    f->sp = open_or_fail(f->db, SPOOL_DAEMON);
    struct message *m = sample("invoice", NULL);
    struct err e = {0};
    assert_int_equal(message_add_rcpt(m, RCPT_TO, "voll@example.org", &e), 0);
    int64_t id = enqueue_ok(f->sp, m, NULL);
    message_free(m);
    struct message *l = NULL;
    assert_int_equal(spool_load(f->sp, id, &l, &e), 0);
    assert_int_equal(l->nrcpts, 3);
    struct spool_rcpt_mark marks[] = {{l->rcpts[0].row, RCPT_SENT}, {l->rcpts[1].row, RCPT_FAILED}};
    struct spool_attempt at = {0, "billing", "smtp", "sent", "250 2.0.0 Ok", 12};
    struct spool_outcome o = {id, MSG_QUEUED, 4100000000LL, true, "452 full", &at, 1, marks, 2};
    /* Not sending (never claimed): nothing is written. */
    assert_int_equal(spool_finish_many(f->sp, &o, 1, &e), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM recipients WHERE state IS NOT NULL"), 0);
    assert_int_equal(spool_claim(f->sp, id, &e), 1);
    assert_int_equal(spool_finish_many(f->sp, &o, 1, &e), 0);
    message_free(l);
    assert_int_equal(spool_load(f->sp, id, &l, &e), 0);
    assert_int_equal(l->rcpts[0].state, RCPT_SENT);
    assert_int_equal(l->rcpts[1].state, RCPT_FAILED);
    assert_int_equal(l->rcpts[2].state, RCPT_PENDING);
    /* A mark is final: a second attempt cannot turn "sent" into "failed". */
    struct spool_rcpt_mark again[] = {{l->rcpts[0].row, RCPT_FAILED}};
    o = (struct spool_outcome){id, MSG_FAILED, 0, true, "gave up", &at, 1, again, 1};
    assert_int_equal(spool_claim(f->sp, id, &e), 1);
    assert_int_equal(spool_finish_many(f->sp, &o, 1, &e), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM recipients WHERE state = 'sent'"), 1);
    /* retry: the refused recipient is pending again, the one that has it stays. */
    assert_int_equal(spool_admin_retry(f->sp, id, &e), 0);
    message_free(l);
    assert_int_equal(spool_load(f->sp, id, &l, &e), 0);
    assert_int_equal(l->rcpts[0].state, RCPT_SENT);
    assert_int_equal(l->rcpts[1].state, RCPT_PENDING);
    assert_int_equal(l->rcpts[2].state, RCPT_PENDING);
    message_free(l);
    /* retry --failed does the same. */
    sql_exec(f->db, "UPDATE recipients SET state = 'failed' WHERE state IS NULL;"
                    "UPDATE messages SET state = 'failed';");
    int64_t n = 0;
    assert_int_equal(spool_admin_retry_failed(f->sp, NULL, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM recipients WHERE state IS NULL"), 2);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM recipients WHERE state = 'sent'"), 1);
}

static void test_roundtrip(void **state)
{
    struct fx *f = *state;
    f->sp = open_or_fail(f->db, SPOOL_PRODUCER);
    char *path = xasprintf("%s/plan.pdf", f->dir);
    size_t big = 300 * 1000 + 7; /* several chunks, odd tail */
    unsigned char *bytes = xmalloc(big);
    for (size_t i = 0; i < big; i++)
        bytes[i] = (unsigned char)(i * 31 + 7);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, big, fp), big);
    fclose(fp);
    struct message *m = sample("invoice", NULL);
    struct msg_attachment *a = message_add_attachment(m);
    a->path = xstrdup(path);
    a->name = xstrdup("Plan.pdf");
    a->content_type = xstrdup("application/pdf");
    a = message_add_attachment(m);
    a->data = (unsigned char *)xstrdup("a,b\n");
    a->data_len = 4;
    a->name = xstrdup("x.csv");
    a->content_type = xstrdup("text/csv");
    m->priority = 7;
    int64_t id = enqueue_ok(f->sp, m, NULL);
    message_free(m);
    unlink(path); /* the spool holds its own copy */

    struct message *l = NULL;
    struct err e = {0};
    assert_int_equal(spool_load(f->sp, id, &l, &e), 0);
    assert_int_equal(message_validate(l, &e), 0);
    assert_string_equal(l->area, "invoice");
    assert_int_equal(l->priority, 7);
    assert_null(l->message_id);
    assert_int_equal(l->nrcpts, 2);
    assert_string_equal(l->rcpts[0].name, "Bärbel Groß");
    assert_int_equal(l->rcpts[1].kind, RCPT_BCC);
    assert_int_equal(l->nhdrs, 1);
    assert_int_equal(l->natts, 2);
    assert_int_equal(l->atts[0].size, (int64_t)big);
    char want[65];
    sha256_hex(bytes, big, want);
    assert_string_equal(l->atts[0].sha256, want);
    /* The checksum was written in place: no copy of the blob's pages was
     * freed (an UPDATE of the row rewrote them, doubling memory and file). */
    assert_int_equal(sql_int(f->db, "PRAGMA freelist_count"), 0);
    /* Read back in odd-sized chunks and compare. */
    unsigned char *got = xmalloc(big);
    int64_t off = 0;
    for (int guard = 0; guard < 1000; guard++) {
        ssize_t n = spool_att_read(f->sp, &l->atts[0], off, got + off, 9999, &e);
        assert_true(n >= 0);
        if (n == 0)
            break;
        off += n;
    }
    assert_int_equal(off, (int64_t)big);
    assert_memory_equal(got, bytes, big);
    /* A size that does not match the blob is an error, not short data. */
    l->atts[1].size = 5;
    assert_true(spool_att_read(f->sp, &l->atts[1], 0, got, 10, &e) < 0);
    assert_int_equal(e.code, EX_DATAERR);
    message_free(l);
    free(got);
    free(bytes);
    free(path);
    assert_int_equal(spool_load(f->sp, 999, &l, &e), -1);
    assert_int_equal(e.code, EX_NOINPUT);
}

static void test_ref_and_bad_input(void **state)
{
    struct fx *f = *state;
    f->sp = open_or_fail(f->db, SPOOL_PRODUCER);
    struct message *m = sample("invoice", "inv-42");
    bool existing = true;
    int64_t id1 = enqueue_ok(f->sp, m, &existing);
    assert_false(existing);
    int64_t id2 = enqueue_ok(f->sp, m, &existing);
    assert_true(existing);
    assert_int_equal(id1, id2);
    /* Same ref, other area: a different message. */
    free(m->area);
    m->area = xstrdup("report");
    assert_true(enqueue_ok(f->sp, m, &existing) != id1);
    message_free(m);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM messages"), 2);

    /* Bad subject: nothing written. */
    m = sample("invoice", NULL);
    free(m->subject);
    m->subject = xstrdup("x\r\nBcc: evil@example.org");
    int64_t id = 5;
    struct err e = {0};
    assert_int_equal(spool_enqueue(f->sp, m, &id, NULL, &e), -1);
    assert_int_equal(e.code, EX_DATAERR);
    message_free(m);
    /* Missing attachment after a good one: nothing written. */
    m = sample("invoice", NULL);
    struct msg_attachment *a = message_add_attachment(m);
    a->data = (unsigned char *)xstrdup("ok");
    a->data_len = 2;
    a->name = xstrdup("ok.txt");
    a = message_add_attachment(m);
    a->path = xasprintf("%s/missing.pdf", f->dir);
    a->name = xstrdup("missing.pdf");
    assert_int_equal(spool_enqueue(f->sp, m, &id, NULL, &e), -1);
    assert_int_equal(e.code, EX_NOINPUT);
    assert_non_null(strstr(e.msg, "missing.pdf"));
    message_free(m);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM messages"), 2);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM attachments"), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM recipients"), 4);

    /* A FIFO as attachment: refused at once (opening it for reading would
     * wait for a writer forever). */
    m = sample("invoice", NULL);
    a = message_add_attachment(m);
    a->path = xasprintf("%s/fifo", f->dir);
    a->name = xstrdup("fifo.bin");
    assert_int_equal(mkfifo(a->path, 0600), 0);
    assert_int_equal(spool_enqueue(f->sp, m, &id, NULL, &e), -1);
    assert_int_equal(e.code, EX_NOINPUT);
    assert_non_null(strstr(e.msg, "not a regular file"));
    unlink(a->path);
    message_free(m);

    /* --ref with an attachment file that is gone by now: the known ref wins
     * (SPEC 2.2: it prints the existing id and adds nothing). */
    m = sample("invoice", "inv-43");
    a = message_add_attachment(m);
    a->path = xasprintf("%s/gone.pdf", f->dir);
    a->name = xstrdup("gone.pdf");
    FILE *fp = fopen(a->path, "w");
    assert_non_null(fp);
    fputs("%PDF-1.4\n", fp);
    fclose(fp);
    int64_t first = enqueue_ok(f->sp, m, &existing);
    assert_false(existing);
    unlink(a->path);
    assert_int_equal(enqueue_ok(f->sp, m, &existing), first);
    assert_true(existing);
    message_free(m);

    /* A body over SQLite's length limit would be stored as NULL: refused. */
    assert_int_equal(sqlite3_limit(f->sp->db, SQLITE_LIMIT_LENGTH, 5000) > 5000, 1);
    m = sample("invoice", NULL);
    free(m->text);
    m->text = xmalloc(6001);
    memset(m->text, 'x', 6000);
    m->text[6000] = '\0';
    assert_int_equal(spool_enqueue(f->sp, m, &id, NULL, &e), -1);
    assert_int_equal(e.code, EX_DATAERR);
    assert_non_null(strstr(e.msg, "text body"));
    message_free(m);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM messages"), 3);
}

static void finish(struct spool *sp, int64_t id, enum msg_state s, int64_t next, const char *res)
{
    struct spool_attempt at = {0, "billing", "smtp", res, "250 2.0.0 Ok", 12};
    struct err e = {0};
    if (spool_finish(sp, id, s, next, true, s == MSG_SENT ? NULL : "451 later", &at, 1, &e) != 0)
        fail_msg("finish: %s", e.msg);
}

static void test_daemon_cycle(void **state)
{
    struct fx *f = *state;
    struct spool *p = open_or_fail(f->db, SPOOL_PRODUCER);
    f->sp = open_or_fail(f->db, SPOOL_DAEMON);
    struct message *m = sample("invoice", NULL);
    int64_t low = enqueue_ok(p, m, NULL);
    m->priority = 9;
    int64_t high = enqueue_ok(p, m, NULL);
    m->not_before = 4000000000LL;
    int64_t later = enqueue_ok(p, m, NULL);
    free(m->area);
    m->area = xstrdup("border");
    m->not_before = 0;
    m->priority = 0;
    int64_t border = enqueue_ok(p, m, NULL);
    message_free(m);
    spool_close(p);

    struct spool_due *d;
    size_t n;
    struct err e = {0};
    const char *skip[] = {"border"};
    assert_int_equal(spool_due(f->sp, 1000000000000LL / 1000, skip, 1, false, 10, &d, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(d[0].id, high); /* priority first */
    assert_int_equal(d[1].id, low);
    spool_due_free(d, n);
    /* An allow-list: only the named areas; an empty one returns nothing. */
    assert_int_equal(spool_due(f->sp, 1000000000000LL / 1000, skip, 1, true, 10, &d, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(d[0].id, border);
    spool_due_free(d, n);
    assert_int_equal(spool_due(f->sp, 1000000000000LL / 1000, NULL, 0, true, 10, &d, &n, &e), 0);
    assert_int_equal(n, 0);
    spool_due_free(d, n);
    assert_int_equal(spool_due(f->sp, 2000000000LL, NULL, 0, false, 10, &d, &n, &e), 0);
    assert_int_equal(n, 3);
    spool_due_free(d, n);
    /* Expiry candidates: created before a cut-off, or past their own expiry. */
    sql_exec(f->db, "UPDATE messages SET created = 500 WHERE id = 1;"
                    "UPDATE messages SET expires = 900 WHERE id = 4;");
    assert_int_equal(spool_expiry_candidates(f->sp, 1000, 600, 10, &d, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(d[0].id, low);
    assert_int_equal(d[0].created, 500);
    assert_int_equal(d[1].id, border);
    assert_int_equal(d[1].expires, 900);
    assert_string_equal(d[1].area, "border");
    spool_due_free(d, n);
    assert_int_equal(spool_expiry_candidates(f->sp, 800, 400, 10, &d, &n, &e), 0);
    assert_int_equal(n, 0);
    spool_due_free(d, n);
    int64_t when = -1;
    assert_int_equal(spool_next_due(f->sp, &when, &e), 0);
    assert_true(when > 0);

    assert_int_equal(spool_claim(f->sp, high, &e), 1);
    assert_int_equal(spool_claim(f->sp, high, &e), 0); /* already claimed */
    finish(f->sp, high, MSG_QUEUED, 4100000000LL, "deferred");
    assert_int_equal(sql_int(f->db, "SELECT attempts FROM messages WHERE id = 2"), 1);
    assert_int_equal(spool_claim(f->sp, high, &e), 1);
    finish(f->sp, high, MSG_SENT, 0, "sent");
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM attempts WHERE message_id = 2"), 2);
    assert_int_equal(sql_int(f->db, "SELECT last_error IS NULL FROM messages WHERE id = 2"), 1);

    /* Cancel wins over a later claim; a claimed message survives a restart. */
    assert_int_equal(spool_admin_cancel(f->sp, low, &e), 0);
    assert_int_equal(spool_claim(f->sp, low, &e), 0);
    assert_int_equal(spool_claim(f->sp, border, &e), 1);
    assert_int_equal(spool_admin_cancel(f->sp, border, &e), -1);
    assert_int_equal(e.code, EX_TEMPFAIL);
    int64_t *ids;
    assert_int_equal(spool_requeue_sending(f->sp, &ids, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], border);
    free(ids);

    struct spool_counts c;
    assert_int_equal(spool_counts(f->sp, &c, &e), 0);
    assert_int_equal(c.queued, 2);
    assert_int_equal(c.sent, 1);
    assert_int_equal(c.cancelled, 1);
    assert_true(c.oldest_queued > 0);
    (void)later;
}

static void test_daemon_tables(void **state)
{
    struct fx *f = *state;
    f->sp = open_or_fail(f->db, SPOOL_DAEMON);
    struct err e = {0};
    assert_int_equal(spool_heartbeat(f->sp, 123, 1000, 1005, &e), 0);
    assert_int_equal(spool_heartbeat(f->sp, 123, 1000, 1010, &e), 0);
    struct spool_daemon_row dr;
    assert_int_equal(spool_admin_daemon(f->sp, &dr, &e), 0);
    assert_int_equal(dr.present, 1);
    assert_int_equal(dr.pid, 123);
    assert_int_equal(dr.heartbeat, 1010);
    struct spool_profile_state ps[2] = {
        {"billing", "smtp", 10, 0, NULL, 0, 0, 0},
        {"ppr", "graph", 0, 20, "AADSTS7000222", 30, 40, 50},
    };
    assert_int_equal(spool_profiles_put(f->sp, ps, 2, &e), 0);
    assert_int_equal(spool_profiles_put(f->sp, ps + 1, 1, &e), 0); /* replaces */
    struct spool_profile_row *pr;
    size_t n;
    assert_int_equal(spool_admin_profiles(f->sp, &pr, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(pr[0].name, "ppr");
    assert_string_equal(pr[0].last_error, "AADSTS7000222");
    assert_int_equal(pr[0].secret_expires, 50);
    spool_admin_profiles_free(pr, n);
}

static void test_admin(void **state)
{
    struct fx *f = *state;
    f->sp = open_or_fail(f->db, SPOOL_PRODUCER);
    struct message *m = sample("invoice", NULL);
    for (int i = 0; i < 4; i++)
        enqueue_ok(f->sp, m, NULL);
    message_free(m);
    sql_exec(f->db, "UPDATE messages SET state = 'failed', attempts = 3, updated = 100"
                    " WHERE id IN (1, 2);"
                    "UPDATE messages SET state = 'sent', updated = 100 WHERE id = 3;");
    struct err e = {0};
    assert_int_equal(spool_admin_retry(f->sp, 1, &e), 0);
    assert_int_equal(sql_int(f->db, "SELECT state = 'queued' AND attempts = 0 FROM messages "
                                    "WHERE id = 1"),
                     1);
    assert_int_equal(spool_admin_retry(f->sp, 3, &e), -1);
    assert_int_equal(e.code, EX_DATAERR);
    assert_int_equal(spool_admin_retry(f->sp, 77, &e), -1);
    assert_int_equal(e.code, EX_NOINPUT);
    int64_t n = 0;
    assert_int_equal(spool_admin_retry_failed(f->sp, "report", &n, &e), 0);
    assert_int_equal(n, 0);
    assert_int_equal(spool_admin_retry_failed(f->sp, NULL, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(spool_admin_purge(f->sp, 1000, &n, &e), 0);
    assert_int_equal(n, 1); /* only the sent one; queued ones stay */
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM messages"), 3);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM recipients WHERE message_id = 3"), 0);
    int64_t id;
    assert_int_equal(spool_admin_find_ref(f->sp, NULL, "nope", &id, &e), -1);
    assert_int_equal(e.code, EX_NOINPUT);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

static void assert_refused(const char *path, int flags, int code)
{
    struct spool *sp = NULL;
    struct err e = {0};
    assert_int_equal(spool_open(path, flags, &sp, &e), -1);
    assert_null(sp);
    if (e.code != code)
        fail_msg("%s: code %d, wanted %d: %s", path, e.code, code, e.msg);
    assert_non_null(strstr(e.msg, path));
    if (getenv("TEST_SPOOL_VERBOSE"))
        fprintf(stderr, "refused: %s\n", e.msg);
}

static void test_refusals(void **state)
{
    struct fx *f = *state;
    /* Not a database: refused, contents unchanged. */
    char junk[8192];
    memset(junk, 'x', sizeof junk);
    write_file(f->db, junk, sizeof junk);
    assert_refused(f->db, SPOOL_PRODUCER, EX_IOERR);
    assert_refused(f->db, SPOOL_DAEMON, EX_IOERR);
    FILE *fp = fopen(f->db, "rb");
    char back[8192];
    assert_int_equal(fread(back, 1, sizeof back, fp), sizeof back);
    fclose(fp);
    assert_memory_equal(back, junk, sizeof junk);
    unlink(f->db);
    /* Another application's database. */
    sql_exec(f->db, "CREATE TABLE customers (id INTEGER PRIMARY KEY)");
    assert_refused(f->db, SPOOL_PRODUCER, EX_IOERR);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name = 'messages'"),
                     0);
    unlink(f->db);
    /* A newer schema. */
    spool_close(open_or_fail(f->db, SPOOL_PRODUCER));
    sql_exec(f->db, "PRAGMA user_version = 3");
    assert_refused(f->db, SPOOL_DAEMON, EX_DATAERR);
    assert_refused(f->db, SPOOL_PRODUCER, EX_DATAERR);
    /* Read-only never creates. */
    char *missing = xasprintf("%s/none.db", f->dir);
    assert_refused(missing, SPOOL_READONLY, EX_NOINPUT);
    assert_int_equal(access(missing, F_OK), -1);
    free(missing);
    /* A directory that does not exist: cannot create. */
    char *nodir = xasprintf("%s/no/such/dir/spool.db", f->dir);
    assert_refused(nodir, SPOOL_PRODUCER, EX_CANTCREAT);
    free(nodir);
}

static void test_damaged(void **state)
{
    struct fx *f = *state;
    struct spool *sp = open_or_fail(f->db, SPOOL_PRODUCER);
    struct message *m = sample("invoice", NULL);
    for (int i = 0; i < 200; i++)
        enqueue_ok(sp, m, NULL);
    message_free(m);
    spool_close(sp);
    /* Scribble over the interior of an index page; the header stays intact. */
    struct stat st;
    assert_int_equal(stat(f->db, &st), 0);
    assert_true(st.st_size > 8 * 4096);
    FILE *fp = fopen(f->db, "r+b");
    char junk[3000];
    memset(junk, 0x5a, sizeof junk);
    for (long pg = 2; pg * 4096 < st.st_size; pg += 2) {
        fseek(fp, pg * 4096 + 100, SEEK_SET);
        fwrite(junk, 1, sizeof junk, fp);
    }
    fclose(fp);
    assert_refused(f->db, SPOOL_DAEMON, EX_IOERR);
    assert_int_equal(stat(f->db, &st), 0);
    assert_true(st.st_size > 8 * 4096); /* not emptied */
}

static void test_disk_full(void **state)
{
    struct fx *f = *state;
    f->sp = open_or_fail(f->db, SPOOL_PRODUCER);
    struct message *m = sample("invoice", NULL);
    enqueue_ok(f->sp, m, NULL);
    /* SQLite reports SQLITE_FULL when the file may not grow: as on a full disk. */
    assert_int_equal(sqlite3_exec(f->sp->db, "PRAGMA max_page_count = 40", NULL, NULL, NULL),
                     SQLITE_OK);
    struct msg_attachment *a = message_add_attachment(m);
    a->data_len = 1024 * 1024;
    a->data = xcalloc(1, a->data_len);
    a->name = xstrdup("big.bin");
    int64_t id = 0;
    struct err e = {0};
    assert_int_equal(spool_enqueue(f->sp, m, &id, NULL, &e), -1);
    assert_int_equal(e.code, EX_IOERR);
    assert_non_null(strstr(e.msg, "disk is full"));
    assert_int_equal(id, 0);
    message_free(m);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM messages"), 1);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM attachments"), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM recipients"), 2);
}

/* spool_enqueue_batch (the submission socket's group commit): one
 * transaction; a message that fails leaves the others; a ref given twice
 * in one batch is one message; an attachment passed as a descriptor is
 * copied from its start, and the message keeps its descriptor. */
static void test_batch(void **state)
{
    struct fx *f = *state;
    f->sp = open_or_fail(f->db, SPOOL_DAEMON);
    struct message *ms[4] = {sample("invoice", "b-1"), sample("invoice", NULL),
                             sample("invoice", "b-1"), sample("report", NULL)};
    free(ms[1]->rcpts[0].addr);
    ms[1]->rcpts[0].addr = xstrdup("not an address");
    int fd = memfd_create("att", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "Position;Betrag\n", 16), 16);
    struct msg_attachment *a = message_add_attachment(ms[3]);
    a->name = xstrdup("Positionen.csv");
    a->fd = fd;
    struct spool_enq qs[4];
    for (int i = 0; i < 4; i++)
        qs[i] = (struct spool_enq){.m = ms[i]};
    spool_enqueue_batch(f->sp, qs, 4);
    assert_int_equal(qs[0].rc, 0);
    assert_false(qs[0].existing);
    assert_int_equal(qs[1].rc, EX_DATAERR);
    assert_int_equal(qs[1].id, 0);
    assert_non_null(strstr(qs[1].e.msg, "not an address"));
    assert_int_equal(qs[2].rc, 0);
    assert_true(qs[2].existing);
    assert_int_equal(qs[2].id, qs[0].id);
    assert_int_equal(qs[3].rc, 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM messages"), 2);
    char *sql = xasprintf("SELECT size FROM attachments WHERE message_id = %lld "
                          "AND CAST(data AS TEXT) = 'Position;Betrag' || char(10)",
                          (long long)qs[3].id);
    assert_int_equal(sql_int(f->db, sql), 16);
    free(sql);
    assert_true(fcntl(fd, F_GETFD) >= 0); /* still the message's */
    for (int i = 0; i < 4; i++)
        message_free(ms[i]);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_indexes_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_migrated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recipient_marks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ref_and_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_cycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
    };
    return cmocka_run_group_tests_name("spool", tests, NULL, NULL);
}
