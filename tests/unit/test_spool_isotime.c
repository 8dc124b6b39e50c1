/* test_spool_isotime — strict ISO 8601 parsing (spool/isotime.c) and strict
 * base64 decoding (spool/b64decode.c): good inputs give the exact value,
 * every kind of bad input is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "b64decode.h"
#include "isotime.h"

static int64_t parse_ok(const char *s)
{
    struct err e = {0};
    int64_t t = -1;
    if (isotime_parse(s, "t", &t, &e) != 0)
        fail_msg("%s: %s", s, e.msg);
    return t;
}

static void test_valid(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse_ok("2026-12-05T06:00:00+01:00"), 1796446800);
    assert_int_equal(parse_ok("2026-12-05T05:00:00Z"), 1796446800);
    assert_int_equal(parse_ok("2026-12-05T05:00Z"), 1796446800);
    assert_int_equal(parse_ok("2026-12-05T00:30:00-0430"), 1796446800);
    assert_int_equal(parse_ok("2026-12-05T05:00:00.999Z"), 1796446800);
    assert_int_equal(parse_ok("2026-12-05t05:00:00z"), 1796446800);
    /* leap day, end of year, leap second clamps to :59 */
    assert_int_equal(parse_ok("2024-02-29T12:00:00Z"), 1709208000);
    assert_int_equal(parse_ok("2016-12-31T23:59:60Z"), 1483228799);
    assert_int_equal(parse_ok("2000-03-01T00:00:00Z"), 951868800);
}

static void test_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "2026-12-05",                /* no time */
        "2026-12-05T06:00:00",       /* no offset */
        "2026-12-05 06:00:00Z",      /* space instead of T */
        "2026-12-5T06:00:00Z",       /* one-digit day */
        "2026-13-05T06:00:00Z",      /* month 13 */
        "2026-02-29T06:00:00Z",      /* not a leap year */
        "2100-02-29T06:00:00Z",      /* century, not leap */
        "2026-04-31T06:00:00Z",      /* April has 30 days */
        "2026-12-05T24:00:00Z",      /* hour 24 */
        "2026-12-05T06:60:00Z",      /* minute 60 */
        "2026-12-05T06:00:61Z",      /* second 61 */
        "2026-12-05T06:00:00+24:00", /* offset hour */
        "2026-12-05T06:00:00+01:60", /* offset minute */
        "2026-12-05T06:00:00+1",     /* short offset */
        "2026-12-05T06:00:00Zjunk",  /* trailing */
        "2026-12-05T06:00:00.Z",     /* empty fraction */
        "1969-12-31T23:59:59Z",      /* before 1970 */
        "1970-01-01T00:30:00+01:00", /* before 1970 after the offset */
        "tomorrow",
        "+2026-12-05T06:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct err e = {0};
        int64_t t = 42;
        if (isotime_parse(bad[i], "--expires", &t, &e) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(e.code, EX_DATAERR);
        assert_non_null(strstr(e.msg, "--expires"));
        assert_int_equal(t, 42);
    }
}

static void test_format_roundtrip(void **state)
{
    (void)state;
    setenv("TZ", "Europe/Berlin", 1);
    char buf[40];
    isotime_format(1796446800, buf, sizeof buf);
    assert_string_equal(buf, "2026-12-05T06:00:00+01:00");
    assert_int_equal(parse_ok(buf), 1796446800);
    isotime_format(0, buf, sizeof buf);
    assert_string_equal(buf, "-");
    isotime_format_age(3 * 86400 + 4 * 3600 + 5, buf, sizeof buf);
    assert_string_equal(buf, "3d 4h");
    isotime_format_age(65, buf, sizeof buf);
    assert_string_equal(buf, "1m 5s");
}

static void b64_ok(const char *in, const char *want, size_t wantlen)
{
    unsigned char *out = NULL;
    size_t n = 0, where = 0;
    if (b64decode(in, strlen(in), &out, &n, &where) != 0)
        fail_msg("refused \"%s\" at %zu", in, where);
    assert_int_equal(n, wantlen);
    assert_memory_equal(out, want, wantlen);
    free(out);
}

static void test_base64(void **state)
{
    (void)state;
    b64_ok("", "", 0);
    b64_ok("Zg==", "f", 1);
    b64_ok("Zm8=", "fo", 2);
    b64_ok("Zm9v", "foo", 3);
    b64_ok("Zm9vYmFy", "foobar", 6);
    b64_ok("Zm9v\r\nYmFy\n", "foobar", 6); /* wrapped lines are fine */
    b64_ok("AAEC/w==", "\x00\x01\x02\xff", 4);
    static const char *const bad[] = {
        "Zg",       /* missing padding */
        "Zg=",      /* incomplete padding */
        "Z===",     /* too much padding */
        "Zh==",     /* non-zero pad bits */
        "Zm9=",     /* non-zero pad bits */
        "Zg==Zg==", /* data after the end */
        "Zm9v-_8=", /* URL-safe alphabet */
        "Zm9v!",    /* junk */
        "Z=g=",     /* padding in the middle */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char *out = NULL;
        size_t n = 0, where = 0;
        if (b64decode(bad[i], strlen(bad[i]), &out, &n, &where) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_null(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_format_roundtrip),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests_name("spool_isotime", tests, NULL, NULL);
}
