/* test_address — address_parse accept/reject tables, UTF-8 and header checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "address.h"
#include "xmalloc.h"

struct accept_case {
    const char *in;
    const char *name; /* NULL: no display name */
    const char *addr;
};

static const struct accept_case accepts[] = {
    {"a@b.example", NULL, "a@b.example"},
    {"<a@b.example>", NULL, "a@b.example"},
    {"Name <a@b.example>", "Name", "a@b.example"},
    {"Name<a@b.example>", "Name", "a@b.example"},
    {"\"Name, Jr.\" <a@b.example>", "Name, Jr.", "a@b.example"},
    {"Bärbel Groß <b@example.org>", "Bärbel Groß", "b@example.org"},
    {"  a@b.example  ", NULL, "a@b.example"},
    {"  Name   <a@b.example>  ", "Name", "a@b.example"},
    {"first.last+tag@sub.example.org", NULL, "first.last+tag@sub.example.org"},
    {"user@münchen.example", NULL, "user@münchen.example"},
    {"Jörg <jörg@例え.jp>", "Jörg", "jörg@例え.jp"},
    {"\"quoted local\"@example.org", NULL, "\"quoted local\"@example.org"},
    {"a@[192.0.2.1]", NULL, "a@[192.0.2.1]"},
    {"a@[IPv6:2001:db8::1]", NULL, "a@[IPv6:2001:db8::1]"},
    {"J. Smith <j@example.org>", "J. Smith", "j@example.org"},
    {"\"He said \\\"hi\\\"\" <h@example.org>", "He said \"hi\"", "h@example.org"},
    {"\"\" <a@b.example>", NULL, "a@b.example"},
    {"a@localhost", NULL, "a@localhost"},
    {"!#$%&'*+-/=?^_`{|}~@example.org", NULL, "!#$%&'*+-/=?^_`{|}~@example.org"},
    {"\"Müller, Hans\" <hm@example.org>", "Müller, Hans", "hm@example.org"},
    /* One field, one address: a name is taken as written (SPEC 2.2). */
    {"Müller, Hans <hm@example.org>", "Müller, Hans", "hm@example.org"},
    {"Smith, John <a@b.example>", "Smith, John", "a@b.example"},
    {"Dr. Müller (Buchhaltung) <m@example.org>", "Dr. Müller (Buchhaltung)", "m@example.org"},
    {"Firma [Intern] <x@example.org>", "Firma [Intern]", "x@example.org"},
    {"x@a-b.example", NULL, "x@a-b.example"},
    {"\"<weird>@name (x)\" <a@b.example>", "<weird>@name (x)", "a@b.example"},
    {"Flughafen Musterstadt – Buchhaltung <rechnung@airport.example>",
     "Flughafen Musterstadt – Buchhaltung", "rechnung@airport.example"},
    {"😀 Emoji <e@example.org>", "😀 Emoji", "e@example.org"},
    {"A.B@EXAMPLE.ORG", NULL, "A.B@EXAMPLE.ORG"},
};

struct reject_case {
    const char *in;
    const char *why; /* a substring of the error message */
};

static const struct reject_case rejects[] = {
    {"", "empty"},
    {"   ", "empty"},
    {"a@b.example\r\nBcc: x@y.example", "line break"},
    {"a@b.example\n", "line break"},
    {"a@b.example\r", "line break"},
    {"a\x01@b.example", "control"},
    {"a\t@b.example", "control"},
    {"a\x7f@b.example", "control"},
    {"list: a@b.example;", "groups"},
    {"list: <a@b.example>;", "groups"},
    {"undisclosed-recipients:;", "groups"},
    {"a@b.example (comment)", "comments"},
    {"<a@b.example> (c)", "comments"},
    {"\"a@b\"@example.org", "must not contain '@'"},
    {"<@route.example:a@b.example>", "source routes"},
    {"@route.example,@r2.example:a@b.example", "source routes"},
    {"@b.example", "local part"},
    {"ab.example", "no '@'"},
    {"Name <ab.example>", "no '@'"},
    {"a@", "domain after '@' is empty"},
    {"a@@b.example", "more than one '@'"},
    {"a@b@c.example", "more than one '@'"},
    {"a b@example.org", "spaces"},
    {"a@exa mple.org", "spaces"},
    {"\xff@b.example", "UTF-8"},
    {"a@b\xc3", "UTF-8"},
    {"\xc0\xaf@b.example", "UTF-8"},
    {"\xed\xa0\x80@b.example", "UTF-8"},
    {"Name <a@b.example", "no matching '>'"},
    {"a@b.example>", "do not pair up"},
    {"Name <<a@b.example>>", "do not pair up"},
    {"a@b.example, c@d.example", "only one"},
    {"A <a@b.example>, B <c@d.example>", "only one"},
    {"A <a@b.example> c@d.example", "only one"},
    {"a@b.example, Hans <h@example.org>", "special character"},
    {"\"Unclosed <a@b.example>", "closing"},
    {"\"Name\" Rest <a@b.example>", "wholly quoted"},
    {".a@b.example", "starts or ends with '.'"},
    {"a.@b.example", "starts or ends with '.'"},
    {"a..b@b.example", "two dots"},
    {"a@b..example", "empty label"},
    {"a@b.example.", "empty label"},
    {"a@.b.example", "empty label"},
    {"a@b_c.example", "character other than"},
    {"a@-b.example", "'-'"},
    {"a@b-.example", "'-'"},
    {"a@[300.1.1.1]", "IPv4"},
    {"a@[IPv6:zz::1]", "IPv6"},
    {"Name <a@b.example> trailing", "unexpected text"},
    {"Name@x <a@b.example>", "special character"},
    {"a\"b@example.org", "needs quoting"},
    {"\"\"@example.org", "quoted local part is empty"},
};

static void test_accept_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof accepts / sizeof accepts[0]; i++) {
        const struct accept_case *c = &accepts[i];
        struct address a;
        struct err e = {0};
        int rc = address_parse(c->in, "to", &a, &e);
        if (rc != 0)
            fail_msg("case %zu \"%s\" refused: %s", i, c->in, e.msg);
        assert_string_equal(a.addr, c->addr);
        if (c->name == NULL)
            assert_null(a.name);
        else
            assert_string_equal(a.name, c->name);
        assert_true(address_valid_addr(a.addr));
        address_clear(&a);
        assert_null(a.addr);
    }
}

static void test_reject_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rejects / sizeof rejects[0]; i++) {
        const struct reject_case *c = &rejects[i];
        struct address a = {(char *)"x", (char *)"y"};
        struct err e = {0};
        int rc = address_parse(c->in, "cc", &a, &e);
        if (rc == 0)
            fail_msg("case %zu \"%s\" accepted as <%s>", i, c->in, a.addr);
        assert_int_equal(rc, -1);
        assert_int_equal(e.code, EX_DATAERR);
        assert_null(a.name);
        assert_null(a.addr);
        if (strstr(e.msg, c->why) == NULL)
            fail_msg("case %zu \"%s\": message \"%s\" lacks \"%s\"", i, c->in, e.msg, c->why);
        assert_true(strncmp(e.msg, "cc: ", 4) == 0);
        /* the message itself never carries a line break or invalid UTF-8 */
        assert_true(header_safe(e.msg));
        assert_false(address_valid_addr(c->in));
    }
}

/* Lengths: local 64 / 65, label 63 / 64, domain 255 / 256. */
static void test_length_limits(void **state)
{
    (void)state;
    char in[600];
    struct address a;
    struct err e = {0};

    memset(in, 'l', 64);
    strcpy(in + 64, "@example.org");
    assert_int_equal(address_parse(in, "to", &a, &e), 0);
    address_clear(&a);
    memset(in, 'l', 65);
    strcpy(in + 65, "@example.org");
    assert_int_equal(address_parse(in, "to", &a, &e), -1);
    assert_non_null(strstr(e.msg, "64 octets"));

    strcpy(in, "a@");
    memset(in + 2, 'd', 63);
    strcpy(in + 65, ".example");
    assert_int_equal(address_parse(in, "to", &a, &e), 0);
    address_clear(&a);
    strcpy(in, "a@");
    memset(in + 2, 'd', 64);
    strcpy(in + 66, ".example");
    assert_int_equal(address_parse(in, "to", &a, &e), -1);
    assert_non_null(strstr(e.msg, "63 octets"));

    /* 4 labels of 63 plus 3 dots = 255 octets; one more label is too much */
    strcpy(in, "a@");
    size_t n = 2;
    for (int l = 0; l < 4; l++) {
        if (l)
            in[n++] = '.';
        memset(in + n, 'a' + l, 63);
        n += 63;
    }
    in[n] = '\0';
    assert_int_equal(strlen(in) - 2, 255);
    assert_int_equal(address_parse(in, "to", &a, &e), 0);
    address_clear(&a);
    strcpy(in + n, ".b");
    assert_int_equal(address_parse(in, "to", &a, &e), -1);
    assert_non_null(strstr(e.msg, "255 octets"));
}

static void test_error_names_field(void **state)
{
    (void)state;
    struct address a;
    struct err e = {0};
    assert_int_equal(address_parse("nope", "reply-to", &a, &e), -1);
    assert_true(strncmp(e.msg, "reply-to: invalid address \"nope\"", 32) == 0);
    assert_int_equal(address_parse("x y", "profile billing FromAddress", &a, &e), -1);
    assert_non_null(strstr(e.msg, "profile billing FromAddress"));
    /* the shown input is cut without breaking a UTF-8 sequence */
    char *long_in = xmalloc(1000);
    memset(long_in, 0, 1000);
    for (size_t i = 0; i + 2 < 600; i += 2)
        memcpy(long_in + i, "ä", 2);
    assert_int_equal(address_parse(long_in, "to", &a, &e), -1);
    assert_true(header_safe(e.msg));
    assert_non_null(strstr(e.msg, "...\""));
    free(long_in);
    assert_int_equal(address_parse(NULL, "to", &a, &e), -1);
}

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(utf8_valid("", 0));
    assert_true(utf8_valid("abc", 3));
    assert_true(utf8_valid("Grüße 😀 日本", strlen("Grüße 😀 日本")));
    assert_true(utf8_valid("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
    assert_false(utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(utf8_valid("\xc3", 1));             /* truncated */
    assert_false(utf8_valid("\xc3\x28", 2));         /* bad continuation */
    assert_false(utf8_valid("\x80", 1));             /* lone continuation */
    assert_false(utf8_valid("\xc1\xbf", 2));         /* overlong */
    assert_false(utf8_valid("\xe0\x9f\xbf", 3));     /* overlong */
    assert_false(utf8_valid("\xf0\x8f\xbf\xbf", 4)); /* overlong */
    assert_false(utf8_valid("\xed\xbf\xbf", 3));     /* surrogate */
    assert_false(utf8_valid("\xfe", 1));
    /* len is the truth, not the NUL */
    assert_true(utf8_valid("a\xc3\xa4", 3));
    assert_false(utf8_valid("a\xc3\xa4", 2));
}

/* The 8-octets-at-a-time ASCII skip: a bad or multi-octet sequence at every
 * position of a long ASCII run is still seen, and len stays the truth. */
static void test_utf8_valid_ascii_runs(void **state)
{
    (void)state;
    char s[64];
    for (size_t pos = 0; pos < 40; pos++) {
        memset(s, 'a', sizeof s);
        s[pos] = (char)0x80; /* lone continuation */
        assert_false(utf8_valid(s, 48));
        assert_true(utf8_valid(s, pos));
        memcpy(s + pos, "\xc3\xa4", 2);
        assert_true(utf8_valid(s, 48));
        assert_false(utf8_valid(s, pos + 1)); /* cut inside the sequence */
        memcpy(s + pos, "\xed\xa0\x80", 3);   /* surrogate */
        assert_false(utf8_valid(s, 48));
        s[pos] = '\0'; /* NUL is ASCII here; callers reject it where it matters */
        s[pos + 1] = 'b';
        s[pos + 2] = 'c';
        assert_true(utf8_valid(s, 48));
    }
}

static void test_header_safe(void **state)
{
    (void)state;
    assert_true(header_safe(""));
    assert_true(header_safe("Rechnung für Sie\tmit Tab"));
    assert_false(header_safe(NULL));
    assert_false(header_safe("a\rb"));
    assert_false(header_safe("a\nb"));
    assert_false(header_safe("x\r\nBcc: evil@example.org"));
    assert_false(header_safe("\xff"));
}

static void test_valid_addr(void **state)
{
    (void)state;
    assert_true(address_valid_addr("a@b.example"));
    assert_false(address_valid_addr("<a@b.example>"));
    assert_false(address_valid_addr("Name <a@b.example>"));
    assert_false(address_valid_addr(" a@b.example"));
    assert_false(address_valid_addr("a@b.example\n"));
    assert_false(address_valid_addr(NULL));
    assert_false(address_valid_addr(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_table),
        cmocka_unit_test(test_reject_table),
        cmocka_unit_test(test_length_limits),
        cmocka_unit_test(test_error_names_field),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_header_safe),
        cmocka_unit_test(test_utf8_valid_ascii_runs),
        cmocka_unit_test(test_valid_addr),
    };
    return cmocka_run_group_tests_name("address", tests, NULL, NULL);
}
