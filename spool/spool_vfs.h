/*
 * spool_vfs — the SQLite VFS that producer connections open the spool with
 * (see spool_vfs.c for what it changes and why that keeps every guarantee).
 *
 * Owns: the name of that VFS, registered on first use.
 * Never: becomes SQLite's default VFS; other connections in the process
 * (the producer's own databases) keep theirs.
 */
#ifndef MAILSPOOL_SPOOL_VFS_H
#define MAILSPOOL_SPOOL_VFS_H

/* The name to pass to sqlite3_open_v2, registering the VFS the first time
 * (thread-safe). NULL when SQLite has no "unix" VFS to build it on: the
 * caller then opens with the default VFS, i.e. exactly as before. */
const char *spool_vfs_name(void);

#endif
