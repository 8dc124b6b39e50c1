/*
 * fuzz_address — libFuzzer target for the address parser (common/address.c)
 * and the header form of an address (mime_format_address).
 *
 * Owns: the properties every accepted address must have: the bare address
 * passes address_valid_addr, holds no CR or LF and is valid UTF-8; the
 * display name is header-safe; the formatted header form is one logical
 * line without bare CR or LF, and parses back to the same
 * address (and, when written without encoded-words, the same name).
 * Also checks that the UTF-8 check agrees with header_safe.
 * Never: keeps state between inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "buf.h"
#include "fuzz_wire.h"
#include "mime.h"
#include "xmalloc.h"

/* The header form without folding (CRLF before a space or tab removed),
 * checking that no other CR or LF is in it. */
static char *fuzz_address_unfold(const struct buf *b)
{
    struct buf u = BUF_INIT;
    for (size_t i = 0; i < b->len; i++) {
        char c = b->data[i];
        if (c == '\r' || c == '\n') {
            FUZZ_CHECK(c == '\r' && i + 2 < b->len && b->data[i + 1] == '\n' &&
                           (b->data[i + 2] == ' ' || b->data[i + 2] == '\t'),
                       "a line break that is not folding in \"%s\"", b->data);
            i++;
            continue;
        }
        FUZZ_CHECK(c != '\0', "NUL in the header form");
        buf_putc(&u, c);
    }
    buf_append(&u, "", 0);
    return buf_detach(&u);
}

static void fuzz_address_accepted(const struct address *a)
{
    FUZZ_CHECK(a->addr != NULL && address_valid_addr(a->addr), "accepted \"%s\" is not valid",
               a->addr ? a->addr : "(null)");
    FUZZ_CHECK(header_safe(a->addr), "accepted address with CR, LF or invalid UTF-8");
    FUZZ_CHECK(a->name == NULL || header_safe(a->name), "accepted name is not header-safe");

    struct buf b = BUF_INIT;
    mime_format_address(&b, a->name, a->addr);
    char *flat = fuzz_address_unfold(&b);
    struct address back = {0};
    struct err e = {0};
    if (a->name != NULL && strncmp(flat, "=?UTF-8?", 8) == 0) {
        /* Encoded-words are for readers, not for our parser (and longer than
         * the name): the address must still stand alone at the end. */
        size_t fl = strlen(flat), al = strlen(a->addr);
        FUZZ_CHECK(fl > al + 2 && flat[fl - al - 2] == '<' && flat[fl - 1] == '>' &&
                       strncmp(flat + fl - al - 1, a->addr, al) == 0,
                   "the header form \"%s\" does not end with <%s>", flat, a->addr);
    } else {
        FUZZ_CHECK(address_parse(flat, "fuzz", &back, &e) == 0,
                   "the header form \"%s\" does not parse back: %s", flat, e.msg);
        FUZZ_CHECK(strcmp(back.addr, a->addr) == 0, "\"%s\" came back as \"%s\"", a->addr,
                   back.addr);
        if (a->name != NULL && a->name[0] != '\0')
            FUZZ_CHECK(back.name != NULL && strcmp(back.name, a->name) == 0,
                       "name \"%s\" came back as \"%s\"", a->name,
                       back.name ? back.name : "(null)");
    }
    address_clear(&back);
    free(flat);
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = xstrndup((const char *)data, size); /* stops at an embedded NUL, as C callers do */
    size_t len = strlen(in);
    bool safe = header_safe(in);
    FUZZ_CHECK(safe == (strcspn(in, "\r\n") == len && utf8_valid(in, len)),
               "header_safe disagrees with utf8_valid");

    struct address a = {0};
    struct err e = {0};
    if (address_parse(in, "to", &a, &e) == 0) {
        FUZZ_CHECK(safe, "accepted an input that is not header-safe");
        fuzz_address_accepted(&a);
        address_clear(&a);
    } else {
        FUZZ_CHECK(e.code == EX_DATAERR && e.msg[0] != '\0', "a refusal without a reason");
        FUZZ_CHECK(a.name == NULL && a.addr == NULL, "a refusal left allocations behind");
    }
    (void)address_valid_addr(in);
    free(in);
    return 0;
}
