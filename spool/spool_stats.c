/*
 * spool_stats — attempt counts per area and result over a time window, for
 * the daemon's daily "stats" log line (log-based monitoring).
 *
 * Never: writes; it is one short read transaction.
 */
#include "spool.h"
#include "spool_db.h"
#include "xmalloc.h"

#include <stdlib.h>

int spool_stats(struct spool *sp, int64_t since_ms, struct spool_stat **out, size_t *n,
                struct err *e)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (spool_db_prepare(sp,
                         "SELECT m.area, a.result, count(*) FROM attempts a"
                         " JOIN messages m ON m.id = a.message_id WHERE a.at_ms >= ?1"
                         " GROUP BY m.area, a.result ORDER BY m.area, a.result",
                         &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, since_ms);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = xreallocarray(*out, cap, sizeof **out);
        }
        struct spool_stat *s = &(*out)[(*n)++];
        s->area = spool_db_column_dup(st, 0);
        s->result = spool_db_column_dup(st, 1);
        s->count = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        spool_stats_free(*out, *n);
        *out = NULL;
        *n = 0;
        return spool_db_fail(sp, rc, "counting attempts for stats", e);
    }
    return 0;
}

void spool_stats_free(struct spool_stat *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].area);
        free(v[i].result);
    }
    free(v);
}
