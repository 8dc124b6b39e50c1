/*
 * bench_claim — the cost of the daemon's spool queries at a given queue size.
 *
 *     bench_claim SPOOL ROUNDS BATCH
 *
 * Opens SPOOL as the daemon does and times, over ROUNDS rounds: one
 * spool_due (the scheduler's query for BATCH due messages), claiming those
 * messages (spool_claim), handing them back to queued
 * (spool_finish, so the queue does not shrink), and spool_counts (what
 * `mailspool status` and the STATUS= line read). Prints mean microseconds:
 *     due_us X claim_us Y per_msg_claim_us Z counts_us W next_due_us V
 * Uses the internal spool API (spool/spool.h); owns nothing of the product.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "spool.h"

static double bench_claim_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_claim SPOOL ROUNDS BATCH\n");
        return 64;
    }
    int rounds = atoi(argv[2]);
    size_t batch = (size_t)atoi(argv[3]);
    struct spool *sp;
    struct err e = {0};
    if (spool_open(argv[1], SPOOL_DAEMON, &sp, &e) != 0) {
        fprintf(stderr, "bench_claim: %s\n", e.msg);
        return e.code ? e.code : 1;
    }
    double t_due = 0, t_claim = 0, t_counts = 0, t_next = 0;
    long nclaimed = 0;
    int rc = 0;
    for (int r = 0; r < rounds && rc == 0; r++) {
        struct spool_due *v = NULL;
        size_t n = 0;
        double t0 = bench_claim_us();
        rc = spool_due(sp, (int64_t)time(NULL), NULL, 0, false, batch, &v, &n, &e);
        double t1 = bench_claim_us();
        t_due += t1 - t0;
        if (rc != 0)
            break;
        int64_t *ids = malloc((n ? n : 1) * sizeof *ids);
        for (size_t i = 0; i < n; i++)
            ids[i] = v[i].id;
        bool *ok = calloc(n ? n : 1, sizeof *ok);
        t0 = bench_claim_us();
        for (size_t i = 0; rc == 0 && i < n; i++) {
            int r1 = spool_claim(sp, ids[i], &e);
            ok[i] = r1 == 1;
            rc = r1 < 0 ? -1 : 0;
        }
        t1 = bench_claim_us();
        t_claim += t1 - t0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (!ok[i])
                continue;
            nclaimed++;
            rc = spool_finish(sp, ids[i], MSG_QUEUED, 0, false, NULL, NULL, 0, &e);
        }
        free(ok);
        free(ids);
        spool_due_free(v, n);
        struct spool_counts c;
        t0 = bench_claim_us();
        if (rc == 0)
            rc = spool_counts(sp, &c, &e);
        t1 = bench_claim_us();
        t_counts += t1 - t0;
        int64_t when;
        t0 = bench_claim_us();
        if (rc == 0)
            rc = spool_next_due(sp, &when, &e);
        t_next += bench_claim_us() - t0;
    }
    spool_close(sp);
    if (rc != 0) {
        fprintf(stderr, "bench_claim: %s\n", e.msg);
        return e.code ? e.code : 1;
    }
    printf("due_us %.1f claim_us %.1f per_msg_claim_us %.1f counts_us %.1f next_due_us %.1f\n",
           t_due / rounds, t_claim / rounds, nclaimed ? t_claim / (double)nclaimed : 0.0,
           t_counts / rounds, t_next / rounds);
    return 0;
}
