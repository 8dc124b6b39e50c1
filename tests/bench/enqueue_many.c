/*
 * enqueue_many — a producer using only the public API (mailspool.h):
 * enqueues COUNT messages into SPOOL, one transaction each.
 *
 *     enqueue_many SPOOL COUNT AREA TAG
 *
 * Used by tests/integration/test_spool_concurrency.py (two of these at the
 * same time must lose nothing and never surface SQLITE_BUSY) and as a
 * throughput benchmark. Prints "enqueued COUNT" and exits 0, or prints the
 * library's error and exits with its sysexits code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailspool.h"

static int enqueue_one(mailspool *ms, const char *area, const char *tag, long i)
{
    char subject[128], ref[128], body[256];
    snprintf(subject, sizeof subject, "%s message %ld", tag, i);
    snprintf(ref, sizeof ref, "%s-%ld", tag, i);
    snprintf(body, sizeof body, "Body of %s message %ld.\n", tag, i);
    mailspool_msg *m = mailspool_msg_new();
    int rc = mailspool_msg_set_area(m, area);
    if (rc == 0)
        rc = mailspool_msg_add_rcpt(m, MAILSPOOL_TO, "Empfänger <rcpt@example.org>");
    if (rc == 0)
        rc = mailspool_msg_set_subject(m, subject);
    if (rc == 0)
        rc = mailspool_msg_set_text(m, body);
    if (rc == 0)
        rc = mailspool_msg_set_ref(m, ref);
    if (rc == 0)
        rc = mailspool_msg_attach_data(m, body, strlen(body), "small.txt", "text/plain");
    if (rc != 0) {
        fprintf(stderr, "enqueue_many: message %ld: %s\n", i, mailspool_msg_errmsg(m));
        mailspool_msg_free(m);
        return rc;
    }
    long long id;
    rc = mailspool_enqueue(ms, m, &id);
    if (rc != 0)
        fprintf(stderr, "enqueue_many: message %ld: %s\n", i, mailspool_errmsg(ms));
    mailspool_msg_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: enqueue_many SPOOL COUNT AREA TAG\n");
        return 64;
    }
    long count = strtol(argv[2], NULL, 10);
    mailspool *ms;
    int rc = mailspool_open(argv[1], 0, &ms);
    if (rc != 0) {
        fprintf(stderr, "enqueue_many: %s\n", mailspool_errmsg(ms));
        mailspool_close(ms);
        return rc;
    }
    for (long i = 0; i < count && rc == 0; i++)
        rc = enqueue_one(ms, argv[3], argv[4], i);
    mailspool_close(ms);
    if (rc == 0)
        printf("enqueued %ld\n", count);
    return rc;
}
