/*
 * spool_db — the connection and transaction plumbing shared by the spool sources.
 *
 * Owns: struct spool (one SQLite connection), BEGIN IMMEDIATE with a bounded
 * retry under SQLITE_BUSY, ROLLBACK after any failure, and the mapping of
 * SQLite result codes to sysexits.h codes with messages that say what to do.
 * Never: leaves a transaction open after an error, or exposes sqlite3 to
 * code outside spool/.
 */
#ifndef MAILSPOOL_SPOOL_DB_H
#define MAILSPOOL_SPOOL_DB_H

#include <sqlite3.h>
#include <stdint.h>

#include "err.h"
#include "spool.h"

/* How long one SQLite call waits for a lock before SQLITE_BUSY. */
#define SPOOL_DB_BUSY_MS 10000

/* One prepared statement kept for reuse, keyed by its SQL text. */
struct spool_db_stmt {
    char *sql;
    sqlite3_stmt *st;
};

struct spool {
    sqlite3 *db;
    char *path;
    int flags;                   /* enum spool_flags */
    int version;                 /* the schema's user_version once open: SCHEMA_VERSION,
                                  * or older for a read-only opener (schema_ensure) */
    struct spool_db_stmt *cache; /* see spool_db_cached */
    size_t ncache;
};

/* Unix seconds / milliseconds now. */
int64_t spool_db_now(void);
int64_t spool_db_now_ms(void);

/* Maps rc (a failed SQLite call) to a struct err: "spool PATH: what: sqlite
 * text" plus advice; BUSY -> EX_TEMPFAIL, FULL -> EX_IOERR "disk full",
 * NOTADB/CORRUPT -> EX_IOERR, READONLY/PERM/CANTOPEN -> EX_CANTCREAT,
 * CONSTRAINT -> EX_DATAERR. Returns -1. */
int spool_db_fail(struct spool *sp, int rc, const char *what, struct err *e);
/* A statement without parameters or rows (BEGIN, SAVEPOINT, COMMIT, ...),
 * prepared once and cached. Returns SQLite's result code (SQLITE_OK). */
int spool_db_control(struct spool *sp, const char *sql);

/* Prepares sql; on failure sets e and returns -1. */
int spool_db_prepare(struct spool *sp, const char *sql, sqlite3_stmt **st, struct err *e);
/*
 * The connection's cached statement for sql, reset and with its bindings
 * cleared; prepared on first use. Preparing cost more than executing for the
 * daemon's small statements (tests/bench profile). The caller never finalizes
 * it: it calls spool_db_release (or spool_db_step_reset) when done, on every
 * path, so that no cached statement keeps a read transaction open.
 */
int spool_db_cached(struct spool *sp, const char *sql, sqlite3_stmt **st, struct err *e);
/* Resets a cached statement after use. */
void spool_db_release(sqlite3_stmt *st);
/* spool_db_step_done for a cached statement: steps, then resets it. */
int spool_db_step_reset(struct spool *sp, sqlite3_stmt *st, const char *what, struct err *e);
/* Finalizes every cached statement (before sqlite3_close). */
void spool_db_cache_free(struct spool *sp);

/* Runs sql (no results expected) outside of prepared statements. */
int spool_db_exec(struct spool *sp, const char *sql, const char *what, struct err *e);

/* BEGIN (deferred): a read transaction, so that several reads see one state. */
int spool_db_read_begin(struct spool *sp, struct err *e);
/* BEGIN IMMEDIATE: busy_timeout first, then a few spaced retries. */
int spool_db_begin(struct spool *sp, struct err *e);
/* COMMIT; on failure rolls back and sets e. */
int spool_db_commit(struct spool *sp, struct err *e);
/* ROLLBACK if a transaction is open; never fails the caller. Returns -1 so
 * that "return spool_db_rollback(sp);" ends an error path. */
int spool_db_rollback(struct spool *sp);

/* Binds a C string or NULL as text. */
int spool_db_bind_text(sqlite3_stmt *st, int idx, const char *s);
/* Column as a malloc'ed string, or NULL when the column is NULL. */
char *spool_db_column_dup(sqlite3_stmt *st, int col);

/* Steps a statement that must finish with SQLITE_DONE; finalizes it. */
int spool_db_step_done(struct spool *sp, sqlite3_stmt *st, const char *what, struct err *e);

#endif
