/*
 * spool — opening and closing spool.db, and the names of message states.
 *
 * Owns: the connection settings every opener gets (WAL, a busy handler,
 * foreign keys, synchronous per role), creating a missing spool file with
 * mode 0660, and the integrity check on daemon start.
 * Never: recreates or empties a file that exists; a damaged file is refused
 * (EX_IOERR) and left for the administrator.
 */
#include "spool.h"
#include "schema.h"
#include "spool_db.h"
#include "spool_vfs.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const spool_state_names[] = {"queued", "sending", "sent", "failed", "cancelled"};

const char *msg_state_name(enum msg_state s)
{
    if ((unsigned)s >= sizeof spool_state_names / sizeof spool_state_names[0])
        return "unknown";
    return spool_state_names[s];
}

int msg_state_parse(const char *s)
{
    for (size_t i = 0; s && i < sizeof spool_state_names / sizeof spool_state_names[0]; i++)
        if (strcmp(s, spool_state_names[i]) == 0)
            return (int)i;
    return -1;
}

/* Creates the file ourselves (O_EXCL, so two creators cannot both "win"
 * badly) with mode 0660 regardless of umask: producers in the spool's
 * group must be able to write. SQLite gives -wal and -shm the same mode. */
static int spool_precreate(const char *path, struct err *e)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0660);
    if (fd >= 0) {
        if (fchmod(fd, 0660) != 0) {
            /* Not fatal: the file exists; the owner can still use it. */
        }
        close(fd);
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    int saved = errno;
    return err_set(e, EX_CANTCREAT,
                   "spool %s: cannot create it: %s: create its directory and make it writable "
                   "for this user, or choose another path with -s/MAILSPOOL_SPOOL/[spool] path",
                   path, strerror(saved));
}

/* PRAGMA journal_mode = WAL needs an exclusive lock for a moment, and
 * SQLite does not call the busy handler for it: while another process is
 * creating the same spool it fails with SQLITE_BUSY at once. Retry with
 * short sleeps, bounded by the busy timeout. An existing WAL spool needs no
 * lock at all. */
static int spool_set_wal(struct spool *sp, struct err *e)
{
    int waited_ms = 0;
    for (int i = 0;; i++) {
        sqlite3_stmt *st;
        if (spool_db_prepare(sp, "PRAGMA journal_mode = WAL", &st, e) != 0)
            return -1;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const char *mode = (const char *)sqlite3_column_text(st, 0);
            int ok = mode && strcmp(mode, "wal") == 0;
            sqlite3_finalize(st);
            if (!ok)
                return err_set(e, EX_IOERR,
                               "spool %s: cannot switch to WAL mode: put the spool on a local "
                               "file system",
                               sp->path);
            return 0;
        }
        spool_db_fail(sp, rc, "switching to WAL mode", e);
        sqlite3_finalize(st);
        if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= SPOOL_DB_BUSY_MS)
            return -1;
        int ms = 5 + (i % 8) * 5; /* 5..40 ms, staggered so racers drift apart */
        struct timespec ts = {0, (long)ms * 1000 * 1000};
        nanosleep(&ts, NULL);
        waited_ms += ms;
    }
}

static int spool_quick_check(struct spool *sp, struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_prepare(sp, "PRAGMA quick_check(1)", &st, e) != 0)
        return -1;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        spool_db_fail(sp, rc, "checking integrity", e);
        sqlite3_finalize(st);
        return -1;
    }
    const char *res = (const char *)sqlite3_column_text(st, 0);
    if (res == NULL || strcmp(res, "ok") != 0) {
        /* quick_check's report spans lines; an error message is one line. */
        char why[256];
        snprintf(why, sizeof why, "%s", res ? res : "?");
        for (char *p = why; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        err_set(e, EX_IOERR,
                "spool %s: integrity check failed (%s): the database is damaged; it was left "
                "untouched: stop producers, restore a backup or recover it with "
                "`sqlite3 %s .recover`",
                sp->path, why, sp->path);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

/* The busy handler: up to SPOOL_DB_BUSY_MS in all, like busy_timeout, but in
 * steps of 0.1, 0.2, ... 1 ms, then 1 ms. SQLite's own handler sleeps 1, 2,
 * 5, 10, 15, 20, 25 ms..., while a producer holds the write lock for about
 * half a millisecond (insert, then the commit's fdatasync): with four
 * `mailspool enqueue` at once its sleeps left the CPUs idle (770 sleeps per
 * 1000 messages, 1.4 of 2 CPUs busy). count is the number of earlier calls
 * for this lock, so the time waited so far follows from it. */
static int spool_busy(void *unused, int count)
{
    (void)unused;
    long long waited_us = count <= 10 ? 50LL * count * (count + 1) : 5500LL + (count - 10) * 1000LL;
    if (waited_us >= SPOOL_DB_BUSY_MS * 1000LL)
        return 0;
    long step_us = count < 10 ? 100L * (count + 1) : 1000L;
    struct timespec ts = {0, step_us * 1000L};
    nanosleep(&ts, NULL);
    return 1;
}

static int spool_configure(struct spool *sp, struct err *e)
{
    sqlite3_extended_result_codes(sp->db, 1);
    sqlite3_busy_handler(sp->db, spool_busy, NULL);
    if (!(sp->flags & SPOOL_READONLY) && (schema_precheck(sp, e) != 0 || spool_set_wal(sp, e) != 0))
        return -1;
    if (spool_db_exec(sp, "PRAGMA foreign_keys = ON", "enabling foreign keys", e) != 0)
        return -1;
    /* Read-only connections (the SMTP workers', which read attachment blobs,
     * and the CLI's list/show/status/render) keep a small page cache. A blob
     * read walks the blob's overflow pages from its start, more pages than
     * SQLite's default cache of 2 MB holds for a large attachment: that cache
     * gained nothing there and only filled up, in every worker (W3 with 16
     * workers: peak RSS 55 -> 27 MB, daemon CPU -8%; `mailspool status` at
     * 100,000 messages unchanged). */
    if ((sp->flags & SPOOL_READONLY) &&
        spool_db_exec(sp, "PRAGMA cache_size = -256", "setting the page cache", e) != 0)
        return -1;
    /* In WAL mode NORMAL may lose the last commits on power loss: fine for
     * the daemon's state (one resend at worst), never for a producer's mail. */
    const char *sync =
        (sp->flags & SPOOL_DAEMON) ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL";
    if (spool_db_exec(sp, sync, "setting synchronous", e) != 0)
        return -1;
    if (sp->flags & SPOOL_DAEMON) {
        if (spool_db_exec(sp, "PRAGMA journal_size_limit = 67108864", "limiting the WAL", e) != 0)
            return -1;
        if (spool_quick_check(sp, e) != 0)
            return -1;
    }
    return schema_ensure(sp, e);
}

int spool_open(const char *path, int flags, struct spool **out, struct err *e)
{
    *out = NULL;
    if (path == NULL || *path == '\0')
        return err_set(e, EX_USAGE, "spool path is empty: set -s, MAILSPOOL_SPOOL or [spool] path");
    if (flags & SPOOL_READONLY) {
        if (access(path, F_OK) != 0)
            return err_set(e, EX_NOINPUT,
                           "spool %s does not exist: check -s/MAILSPOOL_SPOOL/[spool] path; "
                           "enqueueing a message or starting mailspoold creates it",
                           path);
    } else if (spool_precreate(path, e) != 0) {
        return -1;
    }
    struct spool *sp = xcalloc(1, sizeof *sp);
    sp->path = xstrdup(path);
    sp->flags = flags;
    int oflags = (flags & SPOOL_READONLY) ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    /* Producers skip the directory fsync for a WAL that already exists
     * (spool_vfs.c says why that is safe); the daemon keeps SQLite's VFS. */
    const char *vfs = (flags & SPOOL_DAEMON) ? NULL : spool_vfs_name();
    int rc = sqlite3_open_v2(path, &sp->db, oflags | SQLITE_OPEN_NOMUTEX, vfs);
    if (rc != SQLITE_OK) {
        spool_db_fail(sp, rc, "opening", e);
        spool_close(sp);
        return -1;
    }
    if (spool_configure(sp, e) != 0) {
        spool_close(sp);
        return -1;
    }
    *out = sp;
    return 0;
}

void spool_close(struct spool *sp)
{
    if (sp == NULL)
        return;
    if (sp->db) {
        spool_db_rollback(sp);
        spool_db_cache_free(sp);
        sqlite3_close_v2(sp->db);
    }
    free(sp->path);
    free(sp);
}

const char *spool_path(const struct spool *sp)
{
    return sp->path;
}

int spool_wal_open(struct spool *sp, int *fd, struct err *e)
{
    const char *wal = sqlite3_filename_wal(sqlite3_db_filename(sp->db, "main"));
    *fd = wal ? open(wal, O_RDONLY | O_CLOEXEC) : -1;
    if (*fd < 0)
        return err_set(e, EX_IOERR, "spool %s: cannot open its write-ahead log: %s", sp->path,
                       wal ? strerror(errno) : "not in WAL mode");
    return 0;
}
