/*
 * spool_db — connection and transaction plumbing for the spool.
 *
 * Owns: BEGIN IMMEDIATE with bounded retries, ROLLBACK on every error path,
 * and turning SQLite result codes into sysexits.h codes and advice.
 * Never: keeps a transaction open after returning an error.
 */
#include "spool_db.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* Extra BEGIN IMMEDIATE attempts when SQLite returned BUSY without waiting
 * (as it may during WAL recovery), all within SPOOL_DB_BUSY_MS: once the busy
 * handler has waited that long, the lock holder is stuck and the caller
 * hears so (a producer exits 75) instead of waiting six times as long. */
#define SPOOL_DB_BEGIN_RETRIES 5

int64_t spool_db_now(void)
{
    return (int64_t)time(NULL);
}

int64_t spool_db_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static const char *spool_db_advice(int prim)
{
    switch (prim) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return "another process holds the spool locked; retry later";
    case SQLITE_FULL:
        return "the disk is full: free space on the file system holding the spool and retry; "
               "nothing was written";
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return "the file is not an SQLite database or is damaged; it was left untouched: "
               "point -s/MAILSPOOL_SPOOL/[spool] path at the right file or restore a backup";
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_CANTOPEN:
        return "check that the spool file and its directory exist and are writable by this "
               "user (producers need group write access)";
    case SQLITE_CONSTRAINT:
        return "the data breaks a rule of the spool schema (see docs/SPOOL.md)";
    case SQLITE_IOERR:
        return "an I/O error occurred; check the disk and the kernel log";
    default:
        return "see docs/SPOOL.md";
    }
}

static int spool_db_code(int prim)
{
    switch (prim) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return EX_TEMPFAIL;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_CANTOPEN:
        return EX_CANTCREAT;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
        return EX_DATAERR;
    default:
        return EX_IOERR;
    }
}

int spool_db_fail(struct spool *sp, int rc, const char *what, struct err *e)
{
    int prim = rc & 0xff;
    const char *text = sp && sp->db ? sqlite3_errmsg(sp->db) : sqlite3_errstr(rc);
    if (prim == SQLITE_FULL)
        text = "database or disk is full";
    return err_set(e, spool_db_code(prim), "spool %s: %s: %s: %s", sp ? sp->path : "?", what, text,
                   spool_db_advice(prim));
}

int spool_db_prepare(struct spool *sp, const char *sql, sqlite3_stmt **st, struct err *e)
{
    int rc = sqlite3_prepare_v2(sp->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        *st = NULL;
        return spool_db_fail(sp, rc, "preparing a statement", e);
    }
    return 0;
}

/* More distinct statements than the spool code has; should a configuration
 * with very many areas produce more (spool_due's skip list), the oldest entry
 * is replaced. Safe because callers release a cached statement before they
 * take another one. */
#define SPOOL_DB_CACHE_MAX 64

int spool_db_cached(struct spool *sp, const char *sql, sqlite3_stmt **st, struct err *e)
{
    for (size_t i = 0; i < sp->ncache; i++) {
        if (strcmp(sp->cache[i].sql, sql) == 0) {
            *st = sp->cache[i].st;
            sqlite3_reset(*st);
            sqlite3_clear_bindings(*st);
            return 0;
        }
    }
    if (spool_db_prepare(sp, sql, st, e) != 0)
        return -1;
    size_t slot = sp->ncache;
    if (slot == SPOOL_DB_CACHE_MAX) {
        slot = 0;
        sqlite3_finalize(sp->cache[0].st);
        free(sp->cache[0].sql);
        memmove(&sp->cache[0], &sp->cache[1], (SPOOL_DB_CACHE_MAX - 1) * sizeof *sp->cache);
        slot = SPOOL_DB_CACHE_MAX - 1;
    } else {
        sp->cache = xreallocarray(sp->cache, sp->ncache + 1, sizeof *sp->cache);
        sp->ncache++;
    }
    sp->cache[slot].sql = xstrdup(sql);
    sp->cache[slot].st = *st;
    return 0;
}

void spool_db_release(sqlite3_stmt *st)
{
    if (st)
        sqlite3_reset(st);
}

int spool_db_step_reset(struct spool *sp, sqlite3_stmt *st, const char *what, struct err *e)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        spool_db_fail(sp, rc, what, e);
        sqlite3_reset(st);
        return -1;
    }
    sqlite3_reset(st);
    return 0;
}

void spool_db_cache_free(struct spool *sp)
{
    for (size_t i = 0; i < sp->ncache; i++) {
        sqlite3_finalize(sp->cache[i].st);
        free(sp->cache[i].sql);
    }
    free(sp->cache);
    sp->cache = NULL;
    sp->ncache = 0;
}

/* BEGIN, COMMIT and ROLLBACK through the cache: sqlite3_exec parses them anew
 * every time. Returns the step's result code. */
int spool_db_control(struct spool *sp, const char *sql)
{
    sqlite3_stmt *st;
    struct err ignored = {0};
    if (spool_db_cached(sp, sql, &st, &ignored) != 0)
        return sqlite3_errcode(sp->db) != SQLITE_OK ? sqlite3_errcode(sp->db) : SQLITE_ERROR;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int spool_db_exec(struct spool *sp, const char *sql, const char *what, struct err *e)
{
    int rc = sqlite3_exec(sp->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return spool_db_fail(sp, rc, what, e);
    return 0;
}

int spool_db_read_begin(struct spool *sp, struct err *e)
{
    int rc = spool_db_control(sp, "BEGIN");
    if (rc != SQLITE_OK)
        return spool_db_fail(sp, rc, "starting a read", e);
    return 0;
}

static int64_t spool_db_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int spool_db_begin(struct spool *sp, struct err *e)
{
    int rc = SQLITE_OK;
    int64_t start = spool_db_mono_ms();
    for (int i = 0; i <= SPOOL_DB_BEGIN_RETRIES; i++) {
        rc = spool_db_control(sp, "BEGIN IMMEDIATE");
        if (rc == SQLITE_OK)
            return 0;
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
            break;
        if (spool_db_mono_ms() - start >= SPOOL_DB_BUSY_MS)
            break;
        struct timespec ts = {0, 20L * 1000 * 1000 * (i + 1)};
        nanosleep(&ts, NULL);
    }
    spool_db_fail(sp, rc, "starting a write transaction", e);
    if ((rc & 0xff) == SQLITE_BUSY)
        err_set(e, EX_TEMPFAIL,
                "spool %s: busy: another process held the write lock for more than %d s; "
                "retry later",
                sp->path, SPOOL_DB_BUSY_MS / 1000);
    return -1;
}

int spool_db_commit(struct spool *sp, struct err *e)
{
    int rc = spool_db_control(sp, "COMMIT");
    if (rc == SQLITE_OK)
        return 0;
    spool_db_fail(sp, rc, "committing", e);
    spool_db_rollback(sp);
    return -1;
}

int spool_db_rollback(struct spool *sp)
{
    if (sp && sp->db && !sqlite3_get_autocommit(sp->db))
        spool_db_control(sp, "ROLLBACK");
    return -1;
}

int spool_db_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
    if (s == NULL)
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
}

char *spool_db_column_dup(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return NULL;
    const unsigned char *t = sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (t == NULL)
        return xstrdup("");
    /* Keeps embedded NULs out of C strings; validation sees the truncation
     * only as a shorter value, never as memory trouble. */
    return xstrndup((const char *)t, (size_t)n);
}

int spool_db_step_done(struct spool *sp, sqlite3_stmt *st, const char *what, struct err *e)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        spool_db_fail(sp, rc, what, e);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}
