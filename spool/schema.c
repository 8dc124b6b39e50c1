/*
 * schema — the spool's SQL schema (version 2), its creation and migrations.
 *
 * Owns: PRAGMA user_version and every CREATE statement. Never: empties,
 * recreates or repairs an existing file; a file that is not a spool is
 * refused and left as it is.
 *
 * The spool is one SQLite database in WAL mode. Its schema is a public,
 * versioned interface (PRAGMA user_version = 2); docs/SPOOL.md repeats this
 * comment with a worked example. Times are Unix seconds unless the name ends
 * in _ms. Every connection sets busy_timeout and PRAGMA foreign_keys = ON.
 *
 * messages — one row per mail.
 *   id            INTEGER PRIMARY KEY; the message id everywhere (CLI, logs)
 *   state         'queued' (waits for its next attempt), 'sending' (claimed by
 *                 the daemon), 'sent', 'failed' (permanent error or expired),
 *                 'cancelled'. Default 'queued'.
 *   area          mail area ("Versandbereich"); selects the sender profile
 *   ref           producer's idempotency key or NULL; UNIQUE(area, ref)
 *   subject       UTF-8, no CR/LF
 *   body_text     text/plain body or NULL
 *   body_html     text/html body or NULL (at least one body is required)
 *   reply_to      "a@b" or "Name <a@b>" or NULL (profile's ReplyToAddress)
 *   message_id    "<...>" or NULL: the daemon derives a stable one
 *   priority      higher goes first; default 0
 *   created       enqueue time; default now. Also the Date header.
 *   not_before    do not send before this time; 0: no constraint
 *   expires       after this the message fails as expired; 0: the area's
 *                 (or [queue]) lifetime counted from created
 *   next_attempt  due time of the next attempt; 0: now
 *   attempts      delivery attempts counted so far; default 0
 *   last_error    reason of the last deferral or failure
 *   updated       time of the last state change; purge compares it
 *   draft_id      Microsoft Graph draft of an interrupted large send
 * recipients — id, message_id -> messages, kind 'to'|'cc'|'bcc' (default
 *   'to'), name (display name or NULL), address (bare local@domain), state
 *   (written by the daemon only: NULL not delivered yet, 'sent' a server
 *   took the message for this recipient, 'failed' refused permanently).
 *   Version 2 added state; a message that some recipients have and others
 *   not (a 4xx to one RCPT) is sent later to the others alone.
 * headers — id, message_id -> messages, name, value: producer's extra
 *   headers (X-...); never From/To/Date/Message-ID and the like.
 * attachments — id, message_id -> messages, name (file name shown),
 *   content_type (default application/octet-stream), size (bytes; filled
 *   from data when inserted as NULL), sha256 (lowercase hex or NULL), data
 *   (BLOB, the bytes).
 * attempts — one row per delivery attempt, written by the daemon only:
 *   id, message_id, at_ms, profile, transport ('smtp'|'graph'|''), result
 *   ('sent'|'deferred'|'failed'|'expired'|'rcpt-rejected'|'requeued'),
 *   reply (server reply or reason), duration_ms.
 * daemon — at most one row (id = 1): pid, started, heartbeat of mailspoold.
 * profiles — one row per sender profile, replaced by the daemon: name,
 *   transport, last_success, last_error_at, last_error, suspended_until,
 *   token_expires, secret_expires (0: unknown / none).
 * meta — key/value: 'instance' (random id of this spool), 'created'.
 *
 * Every child table references messages(id) ON DELETE CASCADE.
 *
 * What producers may do with plain SQL: in ONE transaction (BEGIN
 * IMMEDIATE ... COMMIT), INSERT one row into messages (area, subject, a body
 * and optionally ref, reply_to, priority, not_before, expires, message_id)
 * and its rows into recipients, headers and attachments. Nothing else:
 * no UPDATE or DELETE, no writes to attempts, daemon, profiles or meta, no
 * state other than the default 'queued'. The daemon treats every row as
 * untrusted and fails a malformed message with a reason.
 */
#include "schema.h"
#include "spool_db.h"

#include <stdbool.h>
#include <stdio.h>

/* Version 0 (an empty file) -> 1. */
static const char schema_v1_sql[] =
    "CREATE TABLE messages ("
    " id INTEGER PRIMARY KEY,"
    " state TEXT NOT NULL DEFAULT 'queued'"
    "  CHECK (state IN ('queued','sending','sent','failed','cancelled')),"
    " area TEXT NOT NULL,"
    " ref TEXT,"
    " subject TEXT NOT NULL,"
    " body_text TEXT,"
    " body_html TEXT,"
    " reply_to TEXT,"
    " message_id TEXT,"
    " priority INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL DEFAULT (CAST(strftime('%s','now') AS INTEGER)),"
    " not_before INTEGER NOT NULL DEFAULT 0,"
    " expires INTEGER NOT NULL DEFAULT 0,"
    " next_attempt INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " updated INTEGER NOT NULL DEFAULT (CAST(strftime('%s','now') AS INTEGER)),"
    " draft_id TEXT,"
    " UNIQUE (area, ref));"
    /* Oldest queued, list by state. */
    "CREATE INDEX messages_state_created ON messages (state, created);"
    /* purge and maintenance. */
    "CREATE INDEX messages_state_updated ON messages (state, updated);"
    /* The scheduler's and status's indexes: schema_v1_index_sql. */
    "CREATE TABLE recipients ("
    " id INTEGER PRIMARY KEY,"
    " message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,"
    " kind TEXT NOT NULL DEFAULT 'to' CHECK (kind IN ('to','cc','bcc')),"
    " name TEXT,"
    " address TEXT NOT NULL);"
    "CREATE INDEX recipients_message ON recipients (message_id);"
    "CREATE TABLE headers ("
    " id INTEGER PRIMARY KEY,"
    " message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " value TEXT NOT NULL);"
    "CREATE INDEX headers_message ON headers (message_id);"
    "CREATE TABLE attachments ("
    " id INTEGER PRIMARY KEY,"
    " message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " content_type TEXT NOT NULL DEFAULT 'application/octet-stream',"
    " size INTEGER,"
    " sha256 TEXT,"
    " data BLOB NOT NULL);"
    "CREATE INDEX attachments_message ON attachments (message_id);"
    /* A producer using plain SQL need not count bytes; CAST makes length()
     * count bytes even when the data was inserted as text. */
    "CREATE TRIGGER attachments_size AFTER INSERT ON attachments WHEN NEW.size IS NULL"
    " BEGIN UPDATE attachments SET size = length(CAST(NEW.data AS BLOB)) WHERE id = NEW.id;"
    " END;"
    "CREATE TABLE attempts ("
    " id INTEGER PRIMARY KEY,"
    " message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,"
    " at_ms INTEGER NOT NULL,"
    " profile TEXT,"
    " transport TEXT,"
    " result TEXT NOT NULL,"
    " reply TEXT,"
    " duration_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX attempts_message ON attempts (message_id);"
    "CREATE TABLE daemon ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " pid INTEGER NOT NULL,"
    " started INTEGER NOT NULL,"
    " heartbeat INTEGER NOT NULL);"
    "CREATE TABLE profiles ("
    " name TEXT PRIMARY KEY,"
    " transport TEXT,"
    " last_success INTEGER NOT NULL DEFAULT 0,"
    " last_error_at INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " suspended_until INTEGER NOT NULL DEFAULT 0,"
    " token_expires INTEGER NOT NULL DEFAULT 0,"
    " secret_expires INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
    "INSERT INTO meta (key, value) VALUES ('instance', lower(hex(randomblob(16)))),"
    " ('created', CAST(strftime('%s','now') AS INTEGER));";

/* Indexes added within version 1 (no table or column a producer sees changed,
 * so no version bump). A new spool gets them right after schema_v1_sql; the
 * daemon adds what a spool made by an older build lacks and drops what they
 * replaced. Measured by tests/bench: without them the scheduler's "when is
 * the next message due" and the status counts read every queued row. */
static const char schema_v1_index_sql[] =
    /* status: counts per area and state and the oldest from the index alone. */
    "CREATE INDEX IF NOT EXISTS messages_area_state_created ON messages (area, state, created);"
    /* Claiming due work walks this index in ORDER BY order and stops at LIMIT,
     * without reading a table row: it holds every column the due query needs
     * (a queued row is about the size of its body, so reading rows would
     * walk the whole table through a page cache far smaller than it).
     * The three queued-only indexes are partial (WHERE state = 'queued'): a
     * message leaves them when it is claimed, and sending -> sent, the most
     * common change, touches none of them. They still begin with state, so
     * that the planner, which has no statistics, sees an equality there and
     * prefers them to messages_state_updated. */
    "CREATE INDEX IF NOT EXISTS messages_queued_due ON messages"
    " (state, priority DESC, next_attempt, id, not_before, area, created, expires)"
    " WHERE state = 'queued';"
    /* The moment the next queued message falls due, without a scan. */
    "CREATE INDEX IF NOT EXISTS messages_queued_due_at ON messages"
    " (state, max(next_attempt, not_before)) WHERE state = 'queued';"
    /* status: deferred messages counted without reading every queued row. */
    "CREATE INDEX IF NOT EXISTS messages_queued_deferred ON messages (state)"
    " WHERE state = 'queued' AND attempts > 0;"
    /* Replaced by the partial indexes above: the same queries, but every
     * state change had to update them (about a third of the index work of
     * a delivered message). */
    "DROP INDEX IF EXISTS messages_due_cover;"
    "DROP INDEX IF EXISTS messages_due_at;"
    "DROP INDEX IF EXISTS messages_deferred;"
    "DROP INDEX IF EXISTS messages_area_state;"
    "DROP INDEX IF EXISTS messages_due;";

static int schema_v1_indexes(struct spool *sp, struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_prepare(sp,
                         "SELECT count(*), count(*) FILTER (WHERE name IN"
                         " ('messages_area_state', 'messages_due', 'messages_due_cover',"
                         " 'messages_due_at', 'messages_deferred'))"
                         " FROM sqlite_master WHERE type = 'index' AND name IN"
                         " ('messages_area_state_created', 'messages_queued_due',"
                         " 'messages_queued_due_at', 'messages_queued_deferred',"
                         " 'messages_area_state', 'messages_due', 'messages_due_cover',"
                         " 'messages_due_at', 'messages_deferred')",
                         &st, e) != 0)
        return -1;
    int rc = sqlite3_step(st);
    int have = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    int old = rc == SQLITE_ROW ? sqlite3_column_int(st, 1) : 0;
    sqlite3_finalize(st);
    if (have < 0)
        return spool_db_fail(sp, rc, "reading the schema", e);
    if (have == 4 && old == 0)
        return 0;
    if (spool_db_begin(sp, e) != 0)
        return -1;
    if (spool_db_exec(sp, schema_v1_index_sql, "adding indexes", e) != 0)
        return spool_db_rollback(sp);
    return spool_db_commit(sp, e);
}

static int schema_v0_to_v1(struct spool *sp, struct err *e)
{
    if (spool_db_exec(sp, schema_v1_sql, "creating the schema", e) != 0)
        return -1;
    return spool_db_exec(sp, schema_v1_index_sql, "creating the indexes", e);
}

/* Version 1 -> 2: delivery state per recipient. A column with no default
 * and a CHECK that NULL passes: every existing recipient is "not delivered
 * yet", which is true of every message a version 1 daemon left queued, and
 * a producer's INSERT written for version 1 works unchanged. */
static int schema_v1_to_v2(struct spool *sp, struct err *e)
{
    return spool_db_exec(sp,
                         "ALTER TABLE recipients ADD COLUMN state TEXT"
                         " CHECK (state IN ('sent', 'failed'))",
                         "adding recipients.state", e);
}

/* schema_steps[v] takes the database from version v to v + 1. A version 3
 * adds schema_v2_to_v3 here and bumps SCHEMA_VERSION. */
typedef int (*schema_step_fn)(struct spool *sp, struct err *e);
static const schema_step_fn schema_steps[SCHEMA_VERSION] = {schema_v0_to_v1, schema_v1_to_v2};

/* The first n (at most 2) integer columns of the one row sql returns. */
static int schema_read_ints(struct spool *sp, const char *sql, int *out, int n, struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_prepare(sp, sql, &st, e) != 0)
        return -1;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        spool_db_fail(sp, rc, "reading the schema version", e);
        sqlite3_finalize(st);
        return -1;
    }
    for (int i = 0; i < n; i++)
        out[i] = sqlite3_column_int(st, i);
    sqlite3_finalize(st);
    return 0;
}

static int schema_version(struct spool *sp, int *v, struct err *e)
{
    return schema_read_ints(sp, "PRAGMA user_version", v, 1, e);
}

/* Version 0 is an empty file; one with tables is some other application's. */
static int schema_refuse_foreign(struct spool *sp, struct err *e)
{
    int n;
    if (schema_read_ints(sp, "SELECT count(*) FROM sqlite_master", &n, 1, e) != 0)
        return -1;
    if (n > 0)
        return err_set(e, EX_IOERR,
                       "spool %s: this SQLite database holds other tables and no mailspool "
                       "schema (user_version 0); it was left untouched: point "
                       "-s/MAILSPOOL_SPOOL/[spool] path at the spool file",
                       sp->path);
    return 0;
}

/* Runs the steps from version v under the caller's write transaction. */
static int schema_upgrade(struct spool *sp, int v, struct err *e)
{
    if (v == 0 && schema_refuse_foreign(sp, e) != 0)
        return -1;
    for (; v < SCHEMA_VERSION; v++)
        if (schema_steps[v](sp, e) != 0)
            return err_prefix(e, "migrating schema version %d to %d", v, v + 1);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
    return spool_db_exec(sp, sql, "setting the schema version", e);
}

static int schema_refuse(struct spool *sp, int v, struct err *e)
{
    if (v > SCHEMA_VERSION)
        return err_set(e, EX_DATAERR,
                       "spool %s: schema version %d is newer than this build knows (%d): "
                       "install the mailspool version that wrote it",
                       sp->path, v, SCHEMA_VERSION);
    if (sp->flags & SPOOL_READONLY) {
        if (v == 0)
            return err_set(e, EX_NOINPUT,
                           "spool %s: has no mailspool schema yet: enqueue a message or start "
                           "mailspoold to create it",
                           sp->path);
        return 0; /* read as it is (schema_ensure) */
    }
    if (v > 0 && !(sp->flags & SPOOL_DAEMON))
        return err_set(e, EX_TEMPFAIL,
                       "spool %s: schema version %d is older than %d: start mailspoold, which "
                       "migrates it, and retry",
                       sp->path, v, SCHEMA_VERSION);
    return 0;
}

int schema_precheck(struct spool *sp, struct err *e)
{
    /* Version and tables from one snapshot: another opener may be creating
     * the schema right now, and its tables and version 1 commit together. */
    int vn[2];
    if (schema_read_ints(sp,
                         "SELECT (SELECT user_version FROM pragma_user_version),"
                         " (SELECT count(*) FROM sqlite_master)",
                         vn, 2, e) != 0)
        return -1;
    int v = vn[0], n = vn[1];
    if (v > SCHEMA_VERSION)
        return schema_refuse(sp, v, e);
    return v == 0 && n > 0 ? schema_refuse_foreign(sp, e) : 0;
}

int schema_ensure(struct spool *sp, struct err *e)
{
    int v;
    if (schema_version(sp, &v, e) != 0)
        return -1;
    sp->version = v;
    if (v == SCHEMA_VERSION)
        return (sp->flags & SPOOL_DAEMON) ? schema_v1_indexes(sp, e) : 0;
    if (schema_refuse(sp, v, e) != 0)
        return -1;
    /* Reading an older spool needs no migration: list, show and status keep
     * working when the upgraded daemon has not run yet (or cannot start),
     * and what they read of a newer column is its value for old rows. */
    if (sp->flags & SPOOL_READONLY)
        return 0;
    if (spool_db_begin(sp, e) != 0)
        return -1;
    /* Someone else may have created or migrated it while we waited. */
    if (schema_version(sp, &v, e) != 0)
        return spool_db_rollback(sp);
    if (v == SCHEMA_VERSION) {
        spool_db_rollback(sp);
        sp->version = v;
        return 0;
    }
    bool migrated = v > 0;
    if (schema_refuse(sp, v, e) != 0 || schema_upgrade(sp, v, e) != 0)
        return spool_db_rollback(sp);
    if (spool_db_commit(sp, e) != 0)
        return -1;
    sp->version = SCHEMA_VERSION;
    /* A spool migrated from an older version may also predate the indexes
     * added within version 1. */
    return migrated ? schema_v1_indexes(sp, e) : 0;
}
