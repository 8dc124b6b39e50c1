/*
 * spool_vfs — SQLite's "unix" VFS, except that a write-ahead log which
 * already holds more than its header is opened without SQLITE_OPEN_CREATE.
 *
 * Why: the unix VFS fsyncs the directory of every journal or WAL it opens
 * with SQLITE_OPEN_CREATE, at that handle's first sync (UNIXFILE_DIRSYNC in
 * os_unix.c), and SQLite asks for CREATE whenever it opens the WAL, whether
 * the file exists or not. So every one-shot producer (`mailspool enqueue`,
 * one process per message like sendmail) paid an fsync of the spool's
 * directory besides its commit's fdatasync, although the WAL it wrote to
 * had existed, durably named, since the daemon started.
 *
 * Why that stays durable. The directory sync protects the *name* of a new
 * file: without it a power cut may drop the WAL's directory entry, and with
 * it every commit in the file. Claim: once a WAL file is longer than its
 * 32-byte header, a directory sync covering its entry has completed.
 * - The first bytes ever written to a WAL inode are its header, by the
 *   first connection H that writes to it. H opened the file while it was
 *   still empty, so H opened it with CREATE (through this VFS, which only
 *   drops CREATE for a longer file, or through a stock one): H's handle
 *   carries the pending directory sync.
 * - SQLite syncs a freshly written WAL header before it writes any frame
 *   (wal.c: "Sync the header", skipped only with synchronous=OFF), and the
 *   unix VFS fsyncs the directory right after the file on a handle's first
 *   sync. So the entry is durable before any byte past the header exists.
 *   If H dies or fails between header and sync, the file stays at 32 bytes
 *   and the next writer opens it with CREATE, and syncs, again.
 * - Later writers append to or restart the same inode; its name stays.
 * The length is read on the opened descriptor (xFileSize), so no other file
 * can slip in between looking and opening; and SQLite opens the WAL under a
 * SHARED lock on the database, while only a connection holding EXCLUSIVE
 * may delete it (the last one to close). When the WAL is missing, empty or
 * just a header, the open is the unix VFS's own, CREATE and all.
 * What this relies on (docs/SPOOL.md states both): every writer of the
 * spool syncs (synchronous NORMAL or FULL, never OFF), and a -wal file put
 * in place by other means (cp, a restore) is followed by a `sync`.
 * Connections opened with SPOOL_DAEMON do not use this VFS (spool.c): the
 * daemon's behaviour is exactly SQLite's.
 *
 * Owns: the VFS "mailspool-unix", registered once per process. It is the
 * one piece of process-wide state in spool/: SQLite keeps registered VFSes
 * in a process-wide list and needs each to outlive every connection using
 * it; it is written once under pthread_once and only read afterwards.
 * Never: changes how a file is read, written, synced or locked (every method
 * but xOpen, and every file method, is the unix VFS's own), or becomes the
 * default VFS of the producer's other databases.
 */
#include "spool_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>

#define SPOOL_VFS_NAME "mailspool-unix"
#define SPOOL_VFS_WAL_HEADER 32 /* bytes; frames follow it */

struct spool_vfs {
    sqlite3_vfs vfs; /* first: SQLite passes &vfs back to xOpen */
    sqlite3_vfs *unix_vfs;
    const char *name; /* NULL until registered */
};

static struct spool_vfs spool_vfs_self;
static pthread_once_t spool_vfs_once = PTHREAD_ONCE_INIT;

/* See the top comment: an existing WAL with at least one frame is opened
 * without CREATE (so without the directory sync); anything else, and any
 * failure on that path, goes to the unix VFS's open unchanged. xAccess
 * EXISTS is false for an empty file, which spares a failed open. */
static int spool_vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
                          int *out_flags)
{
    sqlite3_vfs *base = ((struct spool_vfs *)vfs)->unix_vfs;
    if (name != NULL && (flags & SQLITE_OPEN_WAL) && (flags & SQLITE_OPEN_CREATE)) {
        int exists = 0;
        if (base->xAccess(base, name, SQLITE_ACCESS_EXISTS, &exists) == SQLITE_OK && exists &&
            base->xOpen(base, name, f, flags & ~SQLITE_OPEN_CREATE, out_flags) == SQLITE_OK) {
            sqlite3_int64 size = 0;
            if (f->pMethods->xFileSize(f, &size) == SQLITE_OK && size > SPOOL_VFS_WAL_HEADER)
                return SQLITE_OK;
            f->pMethods->xClose(f);
            f->pMethods = NULL;
        }
    }
    return base->xOpen(base, name, f, flags, out_flags);
}

/* A copy of "unix" (same pAppData, sizes and methods) under our name with
 * our xOpen. */
static void spool_vfs_register(void)
{
    sqlite3_vfs *base = sqlite3_vfs_find("unix");
    if (base == NULL)
        return;
    spool_vfs_self.vfs = *base;
    spool_vfs_self.vfs.pNext = NULL;
    spool_vfs_self.vfs.zName = SPOOL_VFS_NAME;
    spool_vfs_self.vfs.xOpen = spool_vfs_open;
    spool_vfs_self.unix_vfs = base;
    if (sqlite3_vfs_register(&spool_vfs_self.vfs, 0) == SQLITE_OK)
        spool_vfs_self.name = SPOOL_VFS_NAME;
}

const char *spool_vfs_name(void)
{
    pthread_once(&spool_vfs_once, spool_vfs_register);
    return spool_vfs_self.name;
}
