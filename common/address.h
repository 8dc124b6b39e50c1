/*
 * address — e-mail addresses and header-safe strings.
 *
 * Owns: parsing "user@domain" and "Display Name <user@domain>" (UTF-8 names,
 * UTF-8 IDN domains accepted as they are), the checks that keep CR, LF and NUL
 * out of anything that becomes a header or an SMTP command, and UTF-8 checks.
 * Never: resolves names or talks to the network.
 */
#ifndef MAILSPOOL_ADDRESS_H
#define MAILSPOOL_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct address {
    char *name; /* NULL when none; unquoted, UTF-8 */
    char *addr; /* local@domain */
};

/*
 * Parses one address as a producer writes it. Accepts "a@b.example",
 * "<a@b.example>", "Name <a@b.example>", "\"Name, Jr.\" <a@b.example>".
 * Rejects groups, comments, quoted local parts with '@', source routes, CR/LF/NUL,
 * local parts over 64 and domains over 255 octets, invalid UTF-8.
 * what names the field for the error ("to", "reply-to", "profile billing FromAddress").
 */
int address_parse(const char *in, const char *what, struct address *out, struct err *e);
void address_clear(struct address *a);
/* true when addr is a bare, valid local@domain (as address_parse requires). */
bool address_valid_addr(const char *addr);
/* true when s holds no CR, LF or NUL (before len) and is valid UTF-8. */
bool header_safe(const char *s);
/* A printable copy of in for an error message: control bytes (and bytes of
 * invalid UTF-8) become '?', cut to size at a character boundary; true when
 * it was cut. */
bool text_shown(const char *in, char *shown, size_t size);
bool utf8_valid(const char *s, size_t len);

#endif
