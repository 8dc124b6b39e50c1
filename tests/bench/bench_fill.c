/*
 * bench_fill — the benchmark's producer: enqueues a workload through the
 * public C API (mailspool.h), one transaction per message, exactly as an
 * application would (synchronous=FULL).
 *
 *     bench_fill SPOOL AREA COUNT TEXT_BYTES [ATTACH_FILE|-] [NOT_BEFORE] [wake]
 *
 * Message i gets a deterministic plain-text body of about TEXT_BYTES bytes,
 * one recipient, and ATTACH_FILE (copied into the spool) unless it is "-".
 * NOT_BEFORE (Unix seconds, 0 for none) makes the messages not due.
 * Prints "enqueued COUNT seconds S" on success.
 *
 * With "wake" it enqueues one message per line read from standard input and
 * prints "commit NS" (CLOCK_MONOTONIC nanoseconds right after the commit)
 * for each, so that the caller can time commit-to-delivery.
 * Owns nothing of the product; never touches the spool but through the API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mailspool.h"

static long long bench_fill_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A body of about want bytes: numbered lines, different for every message. */
static char *bench_fill_body(long i, long want)
{
    char *b = malloc((size_t)want + 128);
    if (b == NULL)
        return NULL;
    long n = 0;
    for (int line = 1; n < want; line++)
        n += snprintf(b + n, (size_t)(want + 128 - n),
                      "Zeile %03d der Nachricht %06ld: Rechnungsposition, Landeentgelt, "
                      "Abstellgebuehr.\n",
                      line, i);
    return b;
}

static int bench_fill_one(mailspool *ms, const char *area, long i, long text_bytes,
                          const char *attach, long long not_before)
{
    char subject[96], rcpt[96];
    snprintf(subject, sizeof subject, "Benchmark message %06ld", i);
    snprintf(rcpt, sizeof rcpt, "Kunde %ld <kunde%ld@example.org>", i, i);
    char *body = bench_fill_body(i, text_bytes);
    if (body == NULL)
        return 71;
    mailspool_msg *m = mailspool_msg_new();
    int rc = mailspool_msg_set_area(m, area);
    if (rc == 0)
        rc = mailspool_msg_add_rcpt(m, MAILSPOOL_TO, rcpt);
    if (rc == 0)
        rc = mailspool_msg_set_subject(m, subject);
    if (rc == 0)
        rc = mailspool_msg_set_text(m, body);
    if (rc == 0 && attach)
        rc = mailspool_msg_attach_file(m, attach, "anhang.bin", "application/octet-stream");
    if (rc == 0 && not_before > 0)
        rc = mailspool_msg_set_not_before(m, not_before);
    free(body);
    if (rc != 0) {
        fprintf(stderr, "bench_fill: message %ld: %s\n", i, mailspool_msg_errmsg(m));
        mailspool_msg_free(m);
        return rc;
    }
    long long id;
    rc = mailspool_enqueue(ms, m, &id);
    if (rc != 0)
        fprintf(stderr, "bench_fill: message %ld: %s\n", i, mailspool_errmsg(ms));
    mailspool_msg_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 8) {
        fprintf(stderr,
                "usage: bench_fill SPOOL AREA COUNT TEXT_BYTES [ATTACH_FILE|-] [NOT_BEFORE] "
                "[wake]\n");
        return 64;
    }
    long count = strtol(argv[3], NULL, 10);
    long text_bytes = strtol(argv[4], NULL, 10);
    const char *attach = argc > 5 && strcmp(argv[5], "-") != 0 ? argv[5] : NULL;
    long long not_before = argc > 6 ? strtoll(argv[6], NULL, 10) : 0;
    int wake = argc > 7 && strcmp(argv[7], "wake") == 0;
    mailspool *ms;
    int rc = mailspool_open(argv[1], 0, &ms);
    if (rc != 0) {
        fprintf(stderr, "bench_fill: %s\n", mailspool_errmsg(ms));
        mailspool_close(ms);
        return rc;
    }
    long long t0 = bench_fill_now_ns();
    char line[64];
    for (long i = 0; i < count && rc == 0; i++) {
        if (wake && fgets(line, sizeof line, stdin) == NULL)
            break;
        rc = bench_fill_one(ms, argv[2], i, text_bytes, attach, not_before);
        if (wake && rc == 0) {
            printf("commit %lld\n", bench_fill_now_ns());
            fflush(stdout);
        }
    }
    long long t1 = bench_fill_now_ns();
    mailspool_close(ms);
    if (rc == 0)
        printf("enqueued %ld seconds %.6f\n", count, (double)(t1 - t0) / 1e9);
    return rc;
}
