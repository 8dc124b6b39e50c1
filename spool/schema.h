/*
 * schema — the spool's SQL schema, its version and its migrations.
 *
 * Owns: PRAGMA user_version, creating an empty spool, migrating older
 * versions (daemon only), refusing newer ones and foreign databases.
 * Never: empties, recreates or "repairs" an existing file.
 */
#ifndef MAILSPOOL_SCHEMA_H
#define MAILSPOOL_SCHEMA_H

#include "err.h"
#include "spool_db.h"

#define SCHEMA_VERSION 2

/*
 * Brings the open connection's database to SCHEMA_VERSION: creates the
 * schema in a brand-new (empty) file, migrates older versions when
 * sp->flags has SPOOL_DAEMON, refuses newer versions (EX_DATAERR) and files
 * that hold other tables (EX_IOERR). Race-safe: the version is re-read
 * under BEGIN IMMEDIATE, so two creators at once both succeed.
 */
int schema_ensure(struct spool *sp, struct err *e);

/*
 * Reads only: refuses a newer spool or another application's database
 * before the opener writes anything (switching to WAL mode rewrites the
 * file header), so that such a file is truly left untouched.
 */
int schema_precheck(struct spool *sp, struct err *e);

#endif
