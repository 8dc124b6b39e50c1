/*
 * test_mime — the composer's structure and headers: text, HTML, both, with
 * attachments (ASCII and RFC 2231 names); Date, From, To, Cc, Reply-To,
 * Subject, Message-ID, MIME-Version present, Bcc absent; RFC 2047 words that
 * decode back and never split a character; folding; the public encoders.
 * Rendering goes through mime_read with an in-memory attachment reader
 * (mime_testlib.h), and every render must pass the wire checks.
 */
#include "mime_testlib.h"
#include "mime_impl.h"

static void test_text_only(void **state)
{
    (void)state;
    const char *text = "Sehr geehrte Damen und Herren,\n\nanbei Ihre Rechnung.\n";
    struct message *m = msg(text, NULL);
    struct buf b = BUF_INIT;
    must_render(m, &b);
    assert_wire_clean(&b);
    common_headers(&b);
    char *v = header(&b, "Content-Type");
    assert_string_equal(v, "text/plain; charset=utf-8");
    free(v);
    v = header(&b, "Content-Transfer-Encoding");
    assert_string_equal(v, "quoted-printable");
    free(v);
    assert_null(strstr(b.data, "multipart"));
    assert_qp_part(&b, "Content-Transfer-Encoding: quoted-printable", text);
    buf_free(&b);
    message_free(m);
}

static void test_html_only(void **state)
{
    (void)state;
    const char *html = "<p>Grüße aus Musterstadt</p>"; /* no final line end */
    struct message *m = msg(NULL, html);
    struct buf b = BUF_INIT;
    must_render(m, &b);
    assert_wire_clean(&b);
    common_headers(&b);
    char *v = header(&b, "Content-Type");
    assert_string_equal(v, "text/html; charset=utf-8");
    free(v);
    assert_null(strstr(b.data, "text/plain"));
    assert_qp_part(&b, "Content-Transfer-Encoding: quoted-printable", html);
    buf_free(&b);
    message_free(m);
}

static void test_alternative(void **state)
{
    (void)state;
    struct message *m = msg("Text für Sie\n", "<p>HTML für Sie</p>\n");
    struct buf b = BUF_INIT;
    must_render(m, &b);
    assert_wire_clean(&b);
    common_headers(&b);
    char *v = header(&b, "Content-Type");
    assert_non_null(strstr(v, "multipart/alternative;"));
    assert_non_null(strstr(v, "boundary=\"=_ms_"));
    free(v);
    assert_null(strstr(b.data, "multipart/mixed"));
    assert_qp_part(&b, "text/plain; charset=utf-8", "Text für Sie\n");
    assert_qp_part(&b, "text/html; charset=utf-8", "<p>HTML für Sie</p>\n");
    /* plain first (RFC 2046: the preferred form last), then the closing line */
    assert_true(strstr(b.data, "text/plain") < strstr(b.data, "text/html"));
    assert_non_null(strstr(b.data, "_alt--\r\n"));
    buf_free(&b);
    message_free(m);
}

static void test_attachments(void **state)
{
    (void)state;
    struct message *m = msg("Anbei.\n", "<p>Anbei.</p>");
    const size_t sizes[] = {0, 1, 2, 56, 57, 58, 100000};
    char name[64];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(name, sizeof name, "file-%zu.bin", sizes[i]);
        attach(m, name, "application/octet-stream", sizes[i], true);
    }
    attach(m, "Rechnung 2026-0042.pdf", "application/pdf", 3000, true);
    attach(m, "Größe 😀.csv", "text/csv", 700, true);
    attach(m, "no-type.dat", NULL, 10, true);
    struct buf b = BUF_INIT;
    must_render(m, &b);
    assert_wire_clean(&b);
    common_headers(&b);
    char *v = header(&b, "Content-Type");
    assert_non_null(strstr(v, "multipart/mixed;"));
    free(v);
    assert_non_null(strstr(b.data, "Content-Type: multipart/alternative;"));
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char marker[128];
        snprintf(marker, sizeof marker, "filename=\"file-%zu.bin\"", sizes[i]);
        assert_att_roundtrip(&b, &m->atts[i], marker);
    }
    assert_non_null(strstr(b.data, "Content-Type: application/pdf; name=\"Rechnung 2026-0042.pdf\""
                                   "\r\nContent-Disposition: attachment;"
                                   " filename=\"Rechnung 2026-0042.pdf\"\r\n"));
    assert_att_roundtrip(&b, &m->atts[7], "filename=\"Rechnung 2026-0042.pdf\"");
    /* RFC 2231 for the non-ASCII name, in both places */
    const char *enc = "Gr%C3%B6%C3%9Fe%20%F0%9F%98%80.csv";
    char want[256];
    snprintf(want, sizeof want, "filename*=UTF-8''%s", enc);
    assert_non_null(strstr(b.data, want));
    snprintf(want, sizeof want, "name*=UTF-8''%s", enc);
    assert_non_null(strstr(b.data, want));
    assert_att_roundtrip(&b, &m->atts[8], want);
    assert_non_null(strstr(b.data, "Content-Type: application/octet-stream; name=\"no-type.dat\""));
    assert_non_null(strstr(b.data, "_mixed--\r\n"));
    assert_true(b.len > 2 && strcmp(b.data + b.len - 2, "\r\n") == 0);
    buf_free(&b);
    message_free(m);
}

/* Attachment names that need quoting, continuations, or look like words. */

/* Attachment names that need quoting, continuations, or look like words. */
static void test_attachment_names(void **state)
{
    (void)state;
    struct message *m = msg("x", NULL);
    attach(m, "say \"hi\".txt", "text/plain", 3, true);
    attach(m, "=?UTF-8?Q?trick?=.txt", "text/plain", 3, true);
    char longname[256];
    for (int i = 0; i < 80; i++)
        memcpy(longname + i * 3, "äx", 3);
    longname[240] = '\0';
    attach(m, longname, "text/plain", 3, true);
    struct buf b = BUF_INIT;
    must_render(m, &b);
    assert_wire_clean(&b);
    assert_header_lines_soft(&b);
    assert_non_null(strstr(b.data, "filename=\"say \\\"hi\\\".txt\""));
    assert_non_null(strstr(b.data, "filename*=UTF-8''%3D%3FUTF-8%3FQ%3Ftrick%3F%3D.txt"));
    assert_non_null(strstr(b.data, "filename*0*=UTF-8''%C3%A4x"));
    assert_non_null(strstr(b.data, " filename*1*="));
    /* every part header line within 78 octets, and no continuation splits
     * a character: no segment ends in the middle of %C3%A4 */
    const char *p = b.data;
    while ((p = strstr(p, "*=")) != NULL) {
        const char *eol = strstr(p, "\r\n");
        const char *semi = eol[-1] == ';' ? eol - 1 : eol;
        assert_false(semi - p >= 3 && semi[-3] == '%' && semi[-2] == 'C' && semi[-1] == '3');
        p = eol;
    }
    size_t start = 0;
    for (size_t i = 0; i < b.len; i++)
        if (b.data[i] == '\n') {
            assert_true(i - 1 - start <= 78);
            start = i + 1;
        }
    buf_free(&b);
    message_free(m);
}

static void test_utf8_headers(void **state)
{
    (void)state;
    struct message *m = msg("x\n", NULL);
    free(m->subject);
    m->subject = xstrdup("Grüße 😀 aus Musterstadt – Ihre Rechnung für Dezember mit Ümläuten "
                         "und Emoji 🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉 und noch viel mehr Text dahinter");
    struct err e = {0};
    assert_int_equal(message_add_header(m, "X-Airport-Ref", "Größe INV-2026", &e), 0);
    assert_int_equal(message_add_header(m, "X-Plain", "plain ascii value", &e), 0);
    struct buf b = BUF_INIT;
    must_render(m, &b);
    assert_wire_clean(&b);
    common_headers(&b);
    char *v = header(&b, "Subject");
    char *d = ew_decode(v);
    assert_string_equal(d, m->subject);
    assert_true(strlen(v) > 78); /* it was folded */
    free(v);
    free(d);
    v = header(&b, "From");
    char *lt = strstr(v, " <rechnung@airport.example>");
    assert_non_null(lt);
    *lt = '\0';
    d = ew_decode(v);
    assert_string_equal(d, "Flughafen Musterstadt – Buchhaltung");
    free(v);
    free(d);
    v = header(&b, "To");
    lt = strstr(v, " <b@example.org>");
    assert_non_null(lt);
    *lt = '\0';
    d = ew_decode(v);
    assert_string_equal(d, "Bärbel Groß");
    free(v);
    free(d);
    v = header(&b, "X-Airport-Ref");
    d = ew_decode(v);
    assert_string_equal(d, "Größe INV-2026");
    free(v);
    free(d);
    v = header(&b, "X-Plain");
    assert_string_equal(v, "plain ascii value");
    free(v);
    /* the header block is 7-bit */
    for (size_t i = 0; i < header_end(&b); i++)
        assert_true((unsigned char)b.data[i] < 0x80);
    buf_free(&b);
    message_free(m);
}

/* Extra headers: folded at their own whitespace (even inside long runs of
 * it), unfolding restores them exactly, "=?" stays as the producer wrote it,
 * a 900-octet word stays on one line within 998. */
static void test_extra_headers(void **state)
{
    (void)state;
    struct message *m = msg("x", NULL);
    struct err e = {0};
    char spaced[400], word[901];
    snprintf(spaced, sizeof spaced, "a%*sb c%*sd", 200, "", 100, "");
    memset(word, 'w', 900);
    word[900] = '\0';
    assert_int_equal(message_add_header(m, "X-Spaced", spaced, &e), 0);
    assert_int_equal(message_add_header(m, "X-Literal", "=?UTF-8?Q?kept?= as is", &e), 0);
    assert_int_equal(message_add_header(m, "X-Word", word, &e), 0);
    assert_int_equal(message_add_header(m, "In-Reply-To", "<prev@airport.example>", &e), 0);
    struct buf b = BUF_INIT;
    must_render(m, &b);
    assert_wire_clean(&b);
    char *v = header(&b, "X-Spaced");
    assert_string_equal(v, spaced);
    free(v);
    v = header(&b, "X-Literal");
    assert_string_equal(v, "=?UTF-8?Q?kept?= as is");
    free(v);
    v = header(&b, "X-Word");
    assert_string_equal(v, word);
    free(v);
    v = header(&b, "In-Reply-To");
    assert_string_equal(v, "<prev@airport.example>");
    free(v);
    /* every header line but the one holding the word within 78 octets */
    size_t end = header_end(&b), start = 0;
    for (size_t i = 0; i < end; i++)
        if (b.data[i] == '\n') {
            if (strncmp(b.data + start, "X-Word:", 7) != 0)
                assert_true(i - 1 - start <= 78);
            start = i + 1;
        }
    buf_free(&b);
    message_free(m);
}

static void test_ascii_subject_folding(void **state)
{
    (void)state;
    struct message *m = msg("x", NULL);
    free(m->subject);
    m->subject = xstrdup("A fairly long ASCII subject line that needs folding because it is "
                         "longer than seventy-eight characters, with  two spaces");
    struct buf b = BUF_INIT;
    must_render(m, &b);
    assert_header_lines_soft(&b);
    char *v = header(&b, "Subject");
    assert_string_equal(v, m->subject); /* unfolding restores it exactly */
    free(v);
    free(m->subject);
    m->subject = xstrdup("literal =?UTF-8?Q?not_a_word?= stays literal");
    must_render(m, &b);
    v = header(&b, "Subject");
    char *d = ew_decode(v);
    assert_string_equal(d, m->subject);
    free(v);
    free(d);
    buf_free(&b);
    message_free(m);
}

/* 1 MB of lines: long lines, dot lines, every kind of line end. */

static void test_message_id(void **state)
{
    (void)state;
    struct message *m = msg("x", NULL);
    char *id = mime_message_id(m, "rechnung@airport.example");
    assert_string_equal(id, "<ms.42.1796400001@airport.example>");
    free(id);
    id = mime_message_id(m, "r@münchen.example"); /* not ASCII: fallback domain */
    assert_string_equal(id, "<ms.42.1796400001@mailspool.invalid>");
    free(id);
    m->message_id = xstrdup("<own.id@airport.example>");
    id = mime_message_id(m, "rechnung@airport.example");
    assert_string_equal(id, "<own.id@airport.example>");
    free(id);
    struct buf b = BUF_INIT;
    must_render(m, &b);
    char *v = header(&b, "Message-ID");
    assert_string_equal(v, "<own.id@airport.example>");
    free(v);
    buf_free(&b);
    message_free(m);
}

static void test_reply_to(void **state)
{
    (void)state;
    struct message *m = msg("x", NULL);
    struct mime_sender s = {"rechnung@airport.example", NULL, "buchhaltung@airport.example"};
    struct reader r = {0};
    struct err e = {0};
    struct buf b = BUF_INIT;
    assert_int_equal(render(m, &s, &r, 4096, &b, &e), 0);
    char *v = header(&b, "Reply-To");
    assert_string_equal(v, "buchhaltung@airport.example");
    free(v);
    v = header(&b, "From"); /* no display name */
    assert_string_equal(v, "rechnung@airport.example");
    free(v);
    m->reply_to = xstrdup("Bärbel Groß <b@example.org>");
    assert_int_equal(render(m, &s, &r, 4096, &b, &e), 0);
    v = header(&b, "Reply-To");
    assert_non_null(strstr(v, "<b@example.org>"));
    assert_null(strstr(v, "buchhaltung"));
    free(v);
    free(m->reply_to);
    m->reply_to = NULL;
    s.reply_to = NULL;
    assert_int_equal(render(m, &s, &r, 4096, &b, &e), 0);
    assert_null(header(&b, "Reply-To"));
    s.reply_to = "not an address";
    assert_int_equal(render(m, &s, &r, 4096, &b, &e), -1);
    assert_int_equal(e.code, EX_CONFIG);
    assert_non_null(strstr(e.msg, "ReplyToAddress"));
    buf_free(&b);
    message_free(m);
}

static void test_bcc_only(void **state)
{
    (void)state;
    struct message *m = msg("x", NULL);
    for (size_t i = 0; i < m->nrcpts; i++)
        m->rcpts[i].kind = RCPT_BCC;
    struct buf b = BUF_INIT;
    must_render(m, &b);
    assert_wire_clean(&b);
    char *v = header(&b, "To");
    assert_string_equal(v, "undisclosed-recipients:;");
    free(v);
    assert_null(header(&b, "Cc"));
    assert_null(header(&b, "Bcc"));
    assert_null(strstr(b.data, "example.org"));
    buf_free(&b);
    message_free(m);
}

static void test_many_recipients_fold(void **state)
{
    (void)state;
    struct message *m = msg("x", NULL);
    struct err e = {0};
    for (int i = 0; i < 50; i++) {
        char a[64];
        snprintf(a, sizeof a, "Empfänger Nummer %d <r%d@example.org>", i, i);
        assert_int_equal(message_add_rcpt(m, RCPT_TO, a, &e), 0);
    }
    struct buf b = BUF_INIT;
    must_render(m, &b);
    assert_wire_clean(&b);
    assert_header_lines_soft(&b);
    char *v = header(&b, "To");
    assert_non_null(strstr(v, "<r0@example.org>, "));
    assert_non_null(strstr(v, "<r49@example.org>"));
    free(v);
    buf_free(&b);
    message_free(m);
}

static void test_encoders(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        buf_reset(&b);
        mime_encode_base64(&b, in[i], strlen(in[i]), 0);
        assert_string_equal(b.data ? b.data : "", out[i]);
    }
    buf_reset(&b);
    mime_encode_base64(&b, "foobarfoobar", 12, 8);
    assert_string_equal(b.data, "Zm9vYmFy\r\nZm9vYmFy\r\n");

    buf_reset(&b);
    buf_puts(&b, "Subject: ");
    mime_encode_rfc2047(&b, "Grüße", 9);
    assert_string_equal(b.data, "Subject: =?UTF-8?B?R3LDvMOfZQ==?="); /* B is shorter */
    buf_reset(&b);
    mime_encode_rfc2047(&b, "日本語", 0);
    assert_string_equal(b.data, "=?UTF-8?B?5pel5pys6Kqe?=");

    buf_reset(&b);
    mime_format_address(&b, NULL, "a@b.example");
    assert_string_equal(b.data, "a@b.example");
    buf_reset(&b);
    mime_format_address(&b, "Hans Muster", "a@b.example");
    assert_string_equal(b.data, "Hans Muster <a@b.example>");
    buf_reset(&b);
    mime_format_address(&b, "Muster, Hans", "a@b.example");
    assert_string_equal(b.data, "\"Muster, Hans\" <a@b.example>");
    buf_reset(&b);
    mime_format_address(&b, "J. \"Jay\" Smith", "a@b.example");
    assert_string_equal(b.data, "\"J. \\\"Jay\\\" Smith\" <a@b.example>");
    buf_reset(&b);
    mime_format_address(&b, "Bärbel", "b@example.org");
    assert_string_equal(b.data, "=?UTF-8?Q?B=C3=A4rbel?= <b@example.org>");

    buf_reset(&b);
    buf_puts(&b, "Content-Disposition: attachment");
    mime_rfc2231_param(&b, "filename", "a.pdf");
    assert_string_equal(b.data, "Content-Disposition: attachment; filename=\"a.pdf\"");
    buf_reset(&b);
    mime_rfc2231_param(&b, "filename", "ä b.pdf");
    assert_string_equal(b.data, "; filename*=UTF-8''%C3%A4%20b.pdf");
    buf_free(&b);
}

/* The quoted-printable encoder as it was written first, one buf_append per
 * octet: the reference the pointer-writing encoder must match byte for byte. */
struct qp_ref {
    size_t col;
    char ws;
    bool skip_lf;
};

static void qp_ref_put(struct qp_ref *q, struct buf *out, const char *s, size_t n)
{
    if (q->col + n > 75) {
        buf_append(out, "=\r\n", 3);
        q->col = 0;
    }
    buf_append(out, s, n);
    q->col += n;
}

static void qp_ref_encoded(struct qp_ref *q, struct buf *out, unsigned char c)
{
    char t[4];
    snprintf(t, sizeof t, "=%02X", c);
    qp_ref_put(q, out, t, 3);
}

static void qp_ref_literal(struct qp_ref *q, struct buf *out, unsigned char c)
{
    if (q->col + 1 > 75) {
        buf_append(out, "=\r\n", 3);
        q->col = 0;
    }
    if (c == '.' && q->col == 0) {
        qp_ref_encoded(q, out, c);
        return;
    }
    qp_ref_put(q, out, (const char *)&c, 1);
}

static void qp_ref_feed(struct qp_ref *q, struct buf *out, const unsigned char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = in[i];
        if (q->skip_lf) {
            q->skip_lf = false;
            if (c == '\n')
                continue;
        }
        if (c == '\r' || c == '\n') {
            if (q->ws)
                qp_ref_encoded(q, out, (unsigned char)q->ws);
            q->ws = 0;
            buf_append(out, "\r\n", 2);
            q->col = 0;
            q->skip_lf = c == '\r';
            continue;
        }
        if (q->ws)
            qp_ref_literal(q, out, (unsigned char)q->ws);
        q->ws = 0;
        if (c == ' ' || c == '\t')
            q->ws = (char)c;
        else if (c >= 33 && c <= 126 && c != '=')
            qp_ref_literal(q, out, c);
        else
            qp_ref_encoded(q, out, c);
    }
}

static void qp_ref_finish(struct qp_ref *q, struct buf *out)
{
    if (q->ws)
        qp_ref_literal(q, out, (unsigned char)q->ws);
    q->ws = 0;
    if (q->col > 0) {
        buf_append(out, "=\r\n", 3);
        q->col = 0;
    }
}

/* The quoted-printable encoder against the reference, byte for byte: text
 * made of the octets that steer it (space, tab, CR, LF, '.', '=', 8-bit,
 * plain letters) in random mixes and lengths, fed in random pieces (its
 * state crosses the pieces), then in worst-case runs of 8-bit octets, which
 * must also stay inside the room the encoder reserves (ASan checks that). */
static void test_qp_matches_reference(void **state)
{
    (void)state;
    static const unsigned char alphabet[] = " \t\r\n.=\xc3\xa4\x00\x7f"
                                            "aaaaaaaaaaaaaaaaaaaabcdefghijklmnop";
    enum { MAXLEN = 3000 };
    unsigned char *data = xmalloc(MAXLEN);
    unsigned char rnd[MAXLEN];
    struct buf got = BUF_INIT, want = BUF_INIT;
    for (int k = 0; k < 2000; k++) {
        size_t len = k < 300 ? (size_t)k : (size_t)(k * 7919 % MAXLEN);
        fill_random(rnd, len, 1 + (uint64_t)k);
        for (size_t i = 0; i < len; i++)
            data[i] = k >= 1900 ? (unsigned char)(0x80 | rnd[i])
                                : alphabet[rnd[i] % (sizeof alphabet - 1)];
        buf_reset(&got);
        buf_reset(&want);
        struct mime_qp q;
        mime_qp_init(&q);
        struct qp_ref r = {0, 0, false};
        for (size_t off = 0; off < len;) {
            size_t n = 1 + (size_t)(rnd[off] * 13 + k) % 97;
            if (n > len - off)
                n = len - off;
            mime_qp_feed(&q, &got, (const char *)data + off, n);
            off += n;
        }
        mime_qp_finish(&q, &got);
        qp_ref_feed(&r, &want, data, len);
        qp_ref_finish(&r, &want);
        if (got.len != want.len || (got.len > 0 && memcmp(got.data, want.data, got.len) != 0))
            fail_msg("quoted-printable of case %d (%zu octets) differs from the reference", k, len);
        assert_int_equal(got.data[got.len], '\0');
    }
    buf_free(&got);
    buf_free(&want);
    free(data);
}

/* The fast encoder (pair table, six octets per step, whole lines) against
 * the reference, byte for byte: every length from 0 to 300 and some longer
 * ones, random octets and the extremes 0x00 and 0xFF, each line length the
 * composer uses (76, none) and a few more. */
static void test_base64_matches_reference(void **state)
{
    (void)state;
    enum { MAXLEN = 5000 };
    unsigned char *data = xmalloc(MAXLEN);
    struct buf got = BUF_INIT, want = BUF_INIT, dec = BUF_INIT;
    const int line_lens[] = {0, 76, 4, 8, 72};
    const size_t longer[] = {456, 57 * 20, 57 * 20 + 1, 57 * 20 + 2, 4095, 4096, MAXLEN};
    for (int pattern = 0; pattern < 3; pattern++) {
        for (size_t k = 0; k < 301 + sizeof longer / sizeof longer[0]; k++) {
            size_t len = k <= 300 ? k : longer[k - 301];
            if (pattern == 0)
                fill_random(data, len, 1 + len);
            else
                memset(data, pattern == 1 ? 0x00 : 0xFF, len);
            for (size_t l = 0; l < sizeof line_lens / sizeof line_lens[0]; l++) {
                buf_reset(&got);
                buf_reset(&want);
                buf_puts(&got, "x"); /* appends after what is there */
                buf_puts(&want, "x");
                mime_encode_base64(&got, data, len, line_lens[l]);
                b64_reference(&want, data, len, line_lens[l]);
                if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0)
                    fail_msg("base64 of %zu octets (pattern %d, lines %d) differs", len, pattern,
                             line_lens[l]);
                assert_int_equal(got.data[got.len], '\0');
                /* the reference itself: it decodes back, in lines of line_len + CRLF */
                buf_reset(&dec);
                b64_decode(want.data + 1, want.len - 1, &dec);
                assert_int_equal(dec.len, len);
                assert_true(len == 0 || memcmp(dec.data, data, len) == 0);
                assert_b64_lines(want.data + 1, want.len - 1, line_lens[l]);
            }
        }
    }
    buf_free(&got);
    buf_free(&want);
    buf_free(&dec);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_only),
        cmocka_unit_test(test_html_only),
        cmocka_unit_test(test_alternative),
        cmocka_unit_test(test_attachments),
        cmocka_unit_test(test_attachment_names),
        cmocka_unit_test(test_utf8_headers),
        cmocka_unit_test(test_ascii_subject_folding),
        cmocka_unit_test(test_extra_headers),
        cmocka_unit_test(test_message_id),
        cmocka_unit_test(test_reply_to),
        cmocka_unit_test(test_bcc_only),
        cmocka_unit_test(test_many_recipients_fold),
        cmocka_unit_test(test_encoders),
        cmocka_unit_test(test_base64_matches_reference),
        cmocka_unit_test(test_qp_matches_reference),
    };
    return cmocka_run_group_tests_name("mime", tests, NULL, NULL);
}
