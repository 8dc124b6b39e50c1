/* test_api — libmailspool's error reporting: when enqueue cannot even start,
 * the message's error is set too (docs/SPOOL.md prints it), *id is 0, and
 * NULL handles are usage errors, not crashes; messages are one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "mailspool.h"

static mailspool_msg *sample(void)
{
    mailspool_msg *m = mailspool_msg_new();
    assert_int_equal(mailspool_msg_set_area(m, "invoice"), 0);
    assert_int_equal(mailspool_msg_add_rcpt(m, MAILSPOOL_TO, "kunde@example.org"), 0);
    assert_int_equal(mailspool_msg_set_subject(m, "Rechnung"), 0);
    assert_int_equal(mailspool_msg_set_text(m, "Text"), 0);
    return m;
}

static void test_enqueue_on_a_failed_open(void **state)
{
    (void)state;
    mailspool *ms = NULL;
    int rc = mailspool_open("/nonexistent-mailspool-dir/spool.db", 0, &ms);
    assert_int_equal(rc, 73);
    mailspool_msg *m = sample();
    long long id = -1;
    assert_int_equal(mailspool_enqueue(ms, m, &id), 73);
    assert_int_equal(id, 0);
    assert_non_null(strstr(mailspool_msg_errmsg(m), "/nonexistent-mailspool-dir"));
    mailspool_close(ms);

    id = -1;
    assert_int_equal(mailspool_enqueue(NULL, m, &id), 64);
    assert_int_equal(id, 0);
    assert_true(strlen(mailspool_msg_errmsg(m)) > 0);
    assert_int_equal(mailspool_enqueue(NULL, NULL, &id), 64);
    mailspool_msg_free(m);
    /* NULL handles: usage errors, not crashes. */
    assert_int_equal(mailspool_open("x.db", 0, NULL), 64);
    assert_int_equal(mailspool_msg_set_area(NULL, "invoice"), 64);
    assert_int_equal(mailspool_msg_add_rcpt(NULL, MAILSPOOL_TO, "a@example.org"), 64);
    assert_int_equal(mailspool_msg_set_priority(NULL, 1), 64);
    assert_int_equal(mailspool_msg_attach_data(NULL, "x", 1, "x.txt", NULL), 64);
}

static void test_error_messages_are_one_line(void **state)
{
    (void)state;
    mailspool_msg *m = sample();
    assert_int_equal(mailspool_msg_attach_data(m, "abc", 3, "a\nb", NULL), 65);
    const char *msg = mailspool_msg_errmsg(m);
    assert_non_null(strstr(msg, "attachment a?b"));
    assert_null(strchr(msg, '\n'));
    mailspool_msg_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enqueue_on_a_failed_open),
        cmocka_unit_test(test_error_messages_are_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
