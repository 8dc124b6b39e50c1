/* test_submit_wire — the submission socket's frames (spool/submit_wire.c):
 * a message survives encode and decode whole, attachments by path travel
 * as descriptors, and every malformed request (truncated at any byte, a NUL
 * in a text, trailing bytes, the wrong number of descriptors) is refused
 * with the descriptors closed and nothing leaked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "submit_wire.h"

static struct message *sample(void)
{
    struct message *m = message_new();
    struct err e = {0};
    m->area = strdup("invoice");
    m->ref = strdup("inv-0042");
    m->subject = strdup("Rechnung 2026-0042 für Bärbel");
    m->text = strdup("Sehr geehrte Damen und Herren,\r\n...");
    m->html = NULL;
    m->reply_to = strdup("buchhaltung@airport.example");
    m->priority = -3;
    m->not_before = 1796400000;
    m->expires = 1796403600;
    assert_int_equal(message_add_rcpt(m, RCPT_TO, "Bärbel Groß <b@example.org>", &e), 0);
    assert_int_equal(message_add_rcpt(m, RCPT_BCC, "audit@example.org", &e), 0);
    assert_int_equal(message_add_header(m, "X-Airport-Ref", "INV-2026-0042", &e), 0);
    struct msg_attachment *a = message_add_attachment(m);
    a->name = strdup("Positionen.csv");
    a->content_type = strdup("text/csv");
    a->data = malloc(5);
    memcpy(a->data, "a;b\0c", 5); /* binary: a NUL travels as it is */
    a->data_len = 5;
    a = message_add_attachment(m);
    a->path = strdup("/srv/out/2026-0042.pdf");
    a->content_type = NULL;
    return m;
}

/* The body of m's request, its head checked. */
static unsigned char *encode_body(const struct message *m, size_t *len, size_t *nfds)
{
    struct buf b = BUF_INIT;
    struct err e = {0};
    assert_int_equal(submit_wire_encode(m, &b, nfds, &e), 0);
    uint32_t body_len, fds;
    assert_int_equal(submit_wire_head((const unsigned char *)b.data, &body_len, &fds, &e), 0);
    assert_int_equal(body_len, b.len - SUBMIT_HEAD_LEN);
    assert_int_equal(fds, *nfds);
    *len = body_len;
    unsigned char *body = malloc(body_len ? body_len : 1);
    memcpy(body, b.data + SUBMIT_HEAD_LEN, body_len);
    buf_free(&b);
    return body;
}

static int memfd(void)
{
    int fd = memfd_create("att", MFD_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static void test_roundtrip(void **state)
{
    (void)state;
    struct message *m = sample();
    size_t len, nfds;
    unsigned char *body = encode_body(m, &len, &nfds);
    assert_int_equal(nfds, 1);
    int fds[1] = {memfd()};
    struct message *d = NULL;
    struct err e = {0};
    assert_int_equal(submit_wire_decode(body, len, fds, 1, &d, &e), 0);
    assert_string_equal(d->area, "invoice");
    assert_string_equal(d->ref, "inv-0042");
    assert_string_equal(d->subject, m->subject);
    assert_string_equal(d->text, m->text);
    assert_null(d->html);
    assert_string_equal(d->reply_to, m->reply_to);
    assert_null(d->message_id);
    assert_int_equal(d->priority, -3);
    assert_int_equal(d->not_before, 1796400000);
    assert_int_equal(d->expires, 1796403600);
    assert_int_equal(d->nrcpts, 2);
    assert_string_equal(d->rcpts[0].name, "Bärbel Groß");
    assert_string_equal(d->rcpts[0].addr, "b@example.org");
    assert_int_equal(d->rcpts[1].kind, RCPT_BCC);
    assert_null(d->rcpts[1].name);
    assert_int_equal(d->nhdrs, 1);
    assert_string_equal(d->hdrs[0].value, "INV-2026-0042");
    assert_int_equal(d->natts, 2);
    assert_int_equal(d->atts[0].data_len, 5);
    assert_memory_equal(d->atts[0].data, "a;b\0c", 5);
    assert_int_equal(d->atts[0].fd, -1);
    /* The path never travels: the name the direct way would give it does. */
    assert_null(d->atts[1].path);
    assert_string_equal(d->atts[1].name, "2026-0042.pdf");
    assert_null(d->atts[1].content_type);
    assert_int_equal(d->atts[1].fd, fds[0]);
    assert_int_equal(message_validate(d, &e), 0);
    message_free(d); /* closes the descriptor */
    assert_int_equal(fcntl(fds[0], F_GETFD), -1);
    free(body);
    message_free(m);
}

/* Every prefix of a request is refused, and its descriptors are closed. */
static void test_truncated(void **state)
{
    (void)state;
    struct message *m = sample();
    size_t len, nfds;
    unsigned char *body = encode_body(m, &len, &nfds);
    for (size_t cut = 0; cut < len; cut++) {
        int fds[1] = {memfd()};
        struct message *d = NULL;
        struct err e = {0};
        assert_int_not_equal(submit_wire_decode(body, cut, fds, 1, &d, &e), 0);
        assert_null(d);
        assert_true(e.code != 0 && e.msg[0] != '\0');
        assert_int_equal(fcntl(fds[0], F_GETFD), -1);
    }
    free(body);
    message_free(m);
}

static void test_malformed(void **state)
{
    (void)state;
    struct message *m = sample();
    size_t len, nfds;
    unsigned char *body = encode_body(m, &len, &nfds);
    struct message *d = NULL;
    struct err e = {0};
    /* the wrong number of descriptors */
    assert_int_not_equal(submit_wire_decode(body, len, NULL, 0, &d, &e), 0);
    int two[2] = {memfd(), memfd()};
    assert_int_not_equal(submit_wire_decode(body, len, two, 2, &d, &e), 0);
    assert_int_equal(fcntl(two[0], F_GETFD), -1);
    assert_int_equal(fcntl(two[1], F_GETFD), -1);
    /* a trailing byte */
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, body, len);
    longer[len] = 0;
    int one[1] = {memfd()};
    assert_int_not_equal(submit_wire_decode(longer, len + 1, one, 1, &d, &e), 0);
    /* a NUL inside a text ("invoice" is the first string, after its length) */
    body[4 + 2] = '\0';
    one[0] = memfd();
    assert_int_not_equal(submit_wire_decode(body, len, one, 1, &d, &e), 0);
    assert_null(d);
    /* counts far beyond the bytes: refused at once, nothing allocated for them */
    unsigned char big[64];
    memset(big, 0xff, sizeof big); /* every string absent, then huge counts */
    assert_int_not_equal(submit_wire_decode(big, sizeof big, NULL, 0, &d, &e), 0);
    free(longer);
    free(body);
    message_free(m);
}

static void test_head_and_limits(void **state)
{
    (void)state;
    unsigned char head[SUBMIT_HEAD_LEN] = "MSQX";
    uint32_t len, fds;
    struct err e = {0};
    assert_int_not_equal(submit_wire_head(head, &len, &fds, &e), 0);
    memcpy(head, "MSQ1", 4);
    uint32_t v = SUBMIT_BODY_MAX + 1, z = 0;
    memcpy(head + 4, &v, 4);
    memcpy(head + 8, &z, 4);
    assert_int_not_equal(submit_wire_head(head, &len, &fds, &e), 0);
    /* a message whose request would be too large goes the direct way */
    struct message *m = sample();
    free(m->text);
    m->text = malloc(SUBMIT_BODY_MAX + 2);
    memset(m->text, 'a', SUBMIT_BODY_MAX + 1);
    m->text[SUBMIT_BODY_MAX + 1] = '\0';
    struct buf b = BUF_INIT;
    size_t nfds;
    assert_int_not_equal(submit_wire_encode(m, &b, &nfds, &e), 0);
    assert_int_equal(b.len, 0);
    buf_free(&b);
    message_free(m);
}

static void test_reply(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    submit_wire_reply(&b, 0, 4711, true, "");
    submit_wire_reply(&b, 65, 0, false, "to: invalid address \"x\"");
    const unsigned char *p = (const unsigned char *)b.data;
    long first = submit_wire_reply_len(p, b.len);
    assert_true(first > 0 && (size_t)first < b.len);
    for (long k = 0; k < first; k++)
        assert_true(submit_wire_reply_len(p, (size_t)k) == 0);
    int rc;
    int64_t id;
    bool existing;
    struct err e = {0};
    assert_int_equal(submit_wire_parse_reply(p, (size_t)first, &rc, &id, &existing, &e), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(id, 4711);
    assert_true(existing);
    assert_int_equal(
        submit_wire_parse_reply(p + first, b.len - (size_t)first, &rc, &id, &existing, &e), 0);
    assert_int_equal(rc, 65);
    assert_int_equal(e.code, 65);
    assert_string_equal(e.msg, "to: invalid address \"x\"");
    assert_true(submit_wire_reply_len((const unsigned char *)"XXXXXXXXXXXXXXXXXXXXXXXX", 24) < 0);
    buf_free(&b);
}

static void test_long_path(void **state)
{
    (void)state;
    char path[300];
    memset(path, 'd', sizeof path);
    memcpy(path, "/tmp/", 5);
    path[200] = '/';
    strcpy(path + 201, "spool.db.sock");
    struct sockaddr_un sa;
    socklen_t len;
    int dirfd;
    struct err e = {0};
    /* the directory does not exist: refused, nothing left open */
    assert_int_not_equal(submit_wire_addr(path, &sa, &len, &dirfd, &e), 0);
    assert_int_equal(dirfd, -1);
    assert_int_equal(submit_wire_addr("/run/x.sock", &sa, &len, &dirfd, &e), 0);
    assert_string_equal(sa.sun_path, "/run/x.sock");
    assert_int_equal(dirfd, -1);
    char *p = submit_wire_path("/var/lib/mailspool/spool.db");
    assert_string_equal(p, "/var/lib/mailspool/spool.db.sock");
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_malformed), cmocka_unit_test(test_head_and_limits),
        cmocka_unit_test(test_reply),     cmocka_unit_test(test_long_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
