/*
 * cli_spool — the commands' own way into the spool.
 *
 * Owns: opening the spool at the path cli_util resolves, and the direct
 * enqueue (one process, one transaction, synchronous=FULL).
 * Never: is linked into the front `mailspool` binary: this file is what
 * makes a program load SQLite, which the front's enqueue through the
 * daemon does not need (see cli_front.c).
 */
#include "cli.h"

int cli_spool_open(struct cli *c, int flags, struct spool **sp, struct err *e)
{
    const char *path;
    if (cli_util_spool_path(c, &path, e) != 0)
        return -1;
    return spool_open(path, flags, sp, e);
}

int cli_spool_enqueue(struct cli *c, const struct message *m, int64_t *id, bool *existing,
                      struct err *e)
{
    struct spool *sp;
    if (cli_spool_open(c, SPOOL_PRODUCER, &sp, e) != 0)
        return -1;
    int rc = spool_enqueue(sp, m, id, existing, e);
    spool_close(sp);
    return rc;
}
