/*
 * test_mime_stream — the composer as a stream: 1 MB bodies, SMTP smuggling
 * attempts, determinism, rewind, reads of 1..7 octets, a 5 MB attachment
 * read in chunks of at most 1 MiB, attachments of every size around a line
 * and a chunk streamed byte-identical to the reference encoder, the marks on
 * the encoder's own bytes, and refusals (bad input, reader errors, blobs of
 * the wrong size).
 */
#include "mime_testlib.h"

#define B64_CHUNK (57 * 18396) /* common/mime.c: octets per attachment read */

/* 1 MB of lines: long lines, dot lines, every kind of line end. */
static char *big_body(void)
{
    struct buf t = BUF_INIT;
    for (int i = 0; t.len < 1024 * 1024; i++) {
        switch (i % 9) {
        case 0:
            buf_printf(&t, "Zeile %d: Grüße mit Umlauten äöü und = Zeichen \n", i);
            break;
        case 1:
            buf_puts(&t, ".\n");
            break;
        case 2:
            buf_puts(&t, "\r\n.\r\n");
            break;
        case 3:
            for (int k = 0; k < 3000; k++)
                buf_putc(&t, (char)('a' + k % 26));
            buf_puts(&t, "\n");
            break;
        case 4:
            buf_puts(&t, "bare CR\rbare LF\n\rmixed\r\r\n\n");
            break;
        case 5:
            buf_puts(&t, "..leading dots and trailing tab\t\r\n");
            break;
        case 6:
            buf_puts(&t, "From the start of a line 😀\n");
            break;
        case 7:
            buf_puts(&t, "                                                                    "
                         "          spaces past column 76          \n");
            break;
        default:
            buf_puts(&t, "\n");
        }
    }
    buf_puts(&t, "last line without end");
    return buf_detach(&t);
}

static void test_big_body(void **state)
{
    (void)state;
    char *text = big_body();
    struct message *m = msg(text, text);
    struct buf b = BUF_INIT;
    must_render(m, &b);
    assert_wire_clean(&b);
    assert_qp_part(&b, "text/plain; charset=utf-8", text);
    assert_qp_part(&b, "text/html; charset=utf-8", text);
    assert_null(strstr(b.data, "\r\n.\r\n"));
    /* bodies are 7-bit too */
    for (size_t i = 0; i < b.len; i++)
        assert_true((unsigned char)b.data[i] < 0x80);
    buf_free(&b);
    message_free(m);
    free(text);
}

/* SMTP smuggling: no way for a body to end the DATA phase early. */

/* SMTP smuggling: no way for a body to end the DATA phase early. */
static void test_smuggling(void **state)
{
    (void)state;
    const char *evil[] = {
        "a\n.\nMAIL FROM:<x@evil.example>\n",
        "a\r\n.\r\nRCPT TO:<x@evil.example>\r\n",
        "a\r.\rDATA\r",
        "a\n.\r\nQUIT",
        "a\r\n.\nx",
        ".",
        "\n.\n",
    };
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        struct message *m = msg(evil[i], evil[i]);
        struct buf b = BUF_INIT;
        must_render(m, &b);
        assert_wire_clean(&b);
        assert_null(strstr(b.data, "\n.\r"));
        assert_null(strstr(b.data, "\r.\r"));
        assert_null(strstr(b.data, "\n.\n"));
        assert_qp_part(&b, "text/plain; charset=utf-8", evil[i]);
        buf_free(&b);
        message_free(m);
    }
}

static void test_determinism_rewind_chunks(void **state)
{
    (void)state;
    struct message *m = msg("Text\nmit Zeilen\n", "<p>HTML</p>");
    attach(m, "a.bin", "application/octet-stream", 200000, true);
    attach(m, "Bärbel.pdf", "application/pdf", 1234, true);
    struct buf one = BUF_INIT, two = BUF_INIT, small = BUF_INIT;
    must_render(m, &one);
    must_render(m, &two);
    assert_int_equal(one.len, two.len);
    assert_memory_equal(one.data, two.data, one.len);

    /* tiny reads of 1..7 octets, with a reader that hands out short chunks */
    struct reader r = {.max_chunk = 999};
    struct err e = {0};
    struct mime *mm = mime_new(m, &sender, att_read, &r);
    char tmp[8];
    size_t k = 0;
    ssize_t n;
    while ((n = mime_read(mm, tmp, 1 + k++ % 7, &e)) > 0)
        buf_append(&small, tmp, (size_t)n);
    assert_int_equal(n, 0);
    assert_int_equal(small.len, one.len);
    assert_memory_equal(small.data, one.data, one.len);
    assert_true(r.max_asked <= B64_CHUNK);
    assert_int_equal(mime_read(mm, tmp, sizeof tmp, &e), 0); /* stays at the end */

    /* rewind after a partial read, and after the end */
    mime_rewind(mm);
    buf_reset(&small);
    assert_int_equal(mime_read(mm, tmp, 5, &e), 5);
    mime_rewind(mm);
    char *big = xmalloc(70000);
    while ((n = mime_read(mm, big, 70000, &e)) > 0)
        buf_append(&small, big, (size_t)n);
    assert_int_equal(small.len, one.len);
    assert_memory_equal(small.data, one.data, one.len);
    mime_free(mm);
    free(big);

    /* a different message id gives different boundaries */
    m->id = 43;
    must_render(m, &two);
    char *b1 = strstr(one.data, "boundary=\"");
    char *b2 = strstr(two.data, "boundary=\"");
    assert_true(memcmp(b1, b2, 40) != 0);
    buf_free(&one);
    buf_free(&two);
    buf_free(&small);
    message_free(m);
}

/* A 5 MB attachment that exists only in the generator: streamed in chunks
 * no larger than about 1 MiB, read strictly in order, decoded to the same hash. */
static void test_large_attachment_streamed(void **state)
{
    (void)state;
    struct message *m = msg("x", NULL);
    attach(m, "big.bin", "application/octet-stream", 5 * 1024 * 1024 + 17, false);
    struct reader r = {.max_chunk = 4096 * 3 + 1};
    struct err e = {0};
    struct buf b = BUF_INIT;
    assert_int_equal(render(m, &sender, &r, 16384, &b, &e), 0);
    assert_true(r.max_asked <= B64_CHUNK);
    assert_true(r.max_asked >= B64_CHUNK / 2); /* few large reads, each a walk of the blob */
    assert_true(r.calls > 5 * 1024 * 1024 / (4096 * 3 + 1));
    assert_wire_clean(&b);
    assert_att_roundtrip(&b, &m->atts[0], "filename=\"big.bin\"");
    buf_free(&b);
    message_free(m);
}

/* Renders m through mime_read_marked in reads of the sizes in sizes (cycled),
 * returning the bytes in out and in marked[i] whether byte i was marked as
 * the base64 encoder's own (the caller frees *marked). */
static void render_marked(const struct message *m, struct reader *r, const size_t *sizes,
                          size_t nsizes, struct buf *out, char **marked)
{
    struct mime *mm = mime_new(m, &sender, att_read, r);
    struct buf mk = BUF_INIT;
    char *tmp = xmalloc(70000);
    struct err e = {0};
    struct mime_span sp;
    ssize_t n;
    buf_reset(out);
    for (size_t k = 0; (n = mime_read_marked(mm, tmp, sizes[k % nsizes], &sp, &e)) > 0; k++) {
        assert_true((size_t)n <= sizes[k % nsizes]);
        assert_true(sp.len == 0 || sp.off + sp.len <= (size_t)n);
        for (ssize_t i = 0; i < n; i++)
            buf_putc(&mk, (size_t)i >= sp.off && (size_t)i < sp.off + sp.len ? 1 : 0);
        buf_append(out, tmp, (size_t)n);
        assert_true(k < 100000000);
    }
    if (n < 0)
        fail_msg("render failed: %s", e.msg);
    assert_int_equal(mime_read_marked(mm, tmp, 100, &sp, &e), 0);
    assert_int_equal(sp.len, 0);
    free(tmp);
    mime_free(mm);
    *marked = buf_detach(&mk);
}

/* Attachments of every size around a base64 line (57 octets) and around a
 * read chunk, several in one message and an empty one, read in pieces of
 * every kind (1..7 octets, around a line of 78, curl's 64 KiB) and with a
 * reader handing out short pieces: each attachment's part is byte for byte
 * what the reference encoder makes of its octets, and the marks cover
 * exactly those parts (never a header, boundary or text byte). */
static void test_attachment_sizes_marked(void **state)
{
    (void)state;
    const size_t sizes[] = {0,   1,   2,   3,   4,   55,  56,  57,  58,   59,    113,
                            114, 115, 116, 170, 171, 172, 300, 999, 1000, 65536, 200 * 1024};
    const size_t big[] = {B64_CHUNK - 1, B64_CHUNK, B64_CHUNK + 1, B64_CHUNK + 57,
                          2 * B64_CHUNK + 58};
    const size_t small_reads[] = {1, 2, 3, 4, 5, 6, 7, 77, 78, 79, 155, 156, 157};
    const size_t big_reads[] = {65536, 65536 - 17, 70000};
    struct message *m = msg("Text\n.\nmit Zeilen\n", NULL);
    char name[32];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(name, sizeof name, "s%zu.bin", sizes[i]);
        attach(m, name, "application/octet-stream", sizes[i], true);
    }
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        snprintf(name, sizeof name, "b%zu.bin", big[i]);
        attach(m, name, NULL, big[i], false); /* from the generator */
    }
    struct buf want = BUF_INIT, got = BUF_INIT, raw = BUF_INIT;
    for (int pass = 0; pass < 3; pass++) {
        struct reader r = {.max_chunk = pass == 2 ? 4096 * 3 + 1 : 0};
        char *marked;
        if (pass == 0)
            render_marked(m, &r, small_reads, sizeof small_reads / sizeof small_reads[0], &got,
                          &marked);
        else
            render_marked(m, &r, big_reads, sizeof big_reads / sizeof big_reads[0], &got, &marked);
        assert_wire_clean(&got);
        size_t b64_bytes = 0, b64_marked = 0;
        for (size_t a = 0; a < m->natts; a++) {
            const struct msg_attachment *at = &m->atts[a];
            buf_reset(&raw);
            for (int64_t o = 0; o < at->size; o++)
                buf_putc(&raw, (char)(at->data ? at->data[o] : gen_byte(o)));
            buf_reset(&want);
            b64_reference(&want, (const unsigned char *)raw.data, raw.len, 76);
            char marker[48];
            snprintf(marker, sizeof marker, "filename=\"%s\"", at->name);
            const char *body;
            size_t len;
            part_body(&got, marker, &body, &len);
            if (len != want.len || (len > 0 && memcmp(body, want.data, len) != 0))
                fail_msg("attachment %s (pass %d) differs from the reference", at->name, pass);
            size_t off = (size_t)(body - got.data);
            for (size_t i = off; i < off + len; i++) {
                b64_marked += marked[i] != 0;
                marked[i] = 0; /* what is left marked must be nothing */
            }
            b64_bytes += len;
        }
        for (size_t i = 0; i < got.len; i++)
            if (marked[i])
                fail_msg("byte %zu (pass %d) is marked but not base64 of an attachment", i, pass);
        /* and every base64 byte is marked: none needs the line-end check */
        if (b64_marked != b64_bytes)
            fail_msg("pass %d: %zu of %zu base64 bytes marked", pass, b64_marked, b64_bytes);
        free(marked);
    }
    buf_free(&want);
    buf_free(&got);
    buf_free(&raw);
    message_free(m);
}

static void test_refuses_bad_input(void **state)
{
    (void)state;
    struct reader r = {0};
    struct err e = {0};
    struct buf b = BUF_INIT;
    char tmp[64];

    struct message *m = msg("x", NULL);
    free(m->subject);
    m->subject = xstrdup("Hi\r\nBcc: evil@example.org");
    assert_int_equal(render(m, &sender, &r, 4096, &b, &e), -1);
    assert_int_equal(e.code, EX_DATAERR);
    assert_non_null(strstr(e.msg, "subject"));
    struct mime *mm = mime_new(m, &sender, att_read, &r);
    assert_int_equal(mime_read(mm, tmp, sizeof tmp, &e), -1);
    mime_rewind(mm); /* still refused */
    assert_int_equal(mime_read(mm, tmp, sizeof tmp, &e), -1);
    mime_free(mm);
    message_free(m);

    m = msg("x", NULL);
    struct mime_sender s = {"not-an-address", NULL, NULL};
    assert_int_equal(render(m, &s, &r, 4096, &b, &e), -1);
    assert_int_equal(e.code, EX_CONFIG);
    assert_non_null(strstr(e.msg, "FromAddress"));
    struct mime_sender s2 = {"a@b.example", "Evil\r\nBcc: x@y.example", NULL};
    assert_int_equal(render(m, &s2, &r, 4096, &b, &e), -1);
    assert_non_null(strstr(e.msg, "FromDisplayName"));

    attach(m, "a.bin", NULL, 10, true);
    mm = mime_new(m, &sender, NULL, NULL); /* attachments need a reader */
    assert_int_equal(mime_read(mm, tmp, sizeof tmp, &e), -1);
    mime_free(mm);
    buf_free(&b);
    message_free(m);
}

static void test_reader_errors(void **state)
{
    (void)state;
    struct err e = {0};
    struct buf b = BUF_INIT;
    struct message *m = msg("x", NULL);
    attach(m, "Rechnung.pdf", "application/pdf", 300000, true);

    struct reader r = {.fail_at_call = 3, .max_chunk = 1000};
    assert_int_equal(render(m, &sender, &r, 4096, &b, &e), -1);
    assert_int_equal(e.code, EX_IOERR);
    assert_non_null(strstr(e.msg, "Rechnung.pdf"));
    assert_non_null(strstr(e.msg, "disk on fire"));

    struct reader shorter = {.lie = -10};
    assert_int_equal(render(m, &sender, &shorter, 4096, &b, &e), -1);
    assert_non_null(strstr(e.msg, "expected"));
    struct reader longer = {.lie = 10};
    assert_int_equal(render(m, &sender, &longer, 4096, &b, &e), -1);
    assert_non_null(strstr(e.msg, "expected"));
    struct reader over = {.overfill = true};
    assert_int_equal(render(m, &sender, &over, 4096, &b, &e), -1);
    assert_non_null(strstr(e.msg, "too much"));
    buf_free(&b);
    message_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_body),
        cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_determinism_rewind_chunks),
        cmocka_unit_test(test_large_attachment_streamed),
        cmocka_unit_test(test_attachment_sizes_marked),
        cmocka_unit_test(test_refuses_bad_input),
        cmocka_unit_test(test_reader_errors),
    };
    return cmocka_run_group_tests_name("mime_stream", tests, NULL, NULL);
}
