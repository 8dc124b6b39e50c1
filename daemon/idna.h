/*
 * idna — the ASCII form (IDNA A-labels, "xn--...") of an address's domain.
 *
 * Owns: converting the domain of an address, bare or inside "Name <addr>"
 * text, and of every address of a message, with libcurl's URL API
 * (CURLU_PUNYCODE: libidn2 with UTS #46 mapping, so "Bücher.Example" and
 * "bücher.example" give the same xn--bcher-kva.example). That needs a
 * UTF-8 LC_CTYPE, which main sets (C.UTF-8) before any thread starts.
 * Never: touches a local part (a non-ASCII local part has no ASCII form: it
 * needs SMTPUTF8, which libcurl asks for when the server offers it), a
 * domain literal, or a domain that is ASCII already.
 *
 * Why: rechnung@bücher.example must go out with the A-label domain in the
 * envelope and in the headers, which every server accepts. The UTF-8 form
 * is valid only under SMTPUTF8 (RFC 6531, 6532), which many relays do not
 * offer; libcurl converts envelope domains itself, but only in a UTF-8
 * locale, and never the headers.
 */
#ifndef MAILSPOOL_IDNA_H
#define MAILSPOOL_IDNA_H

#include "err.h"
#include "message.h"

/* *out: a new string with the domain of addr (local@domain) in ASCII form,
 * or NULL when addr needs no change. EX_DATAERR when the domain is not a
 * valid internationalized domain name. */
int idna_address(const char *addr, char **out, struct err *e);

/* The same for text holding one address as a producer writes it: "a@b" or
 * "Name <a@b>" (the address is last); the rest of the text is kept. */
int idna_mailbox(const char *text, char **out, struct err *e);

/* Told of a recipient whose domain has no ASCII form (why names it). */
typedef void (*idna_refused_fn)(void *ctx, size_t rcpt, const char *why);

/* Every pending recipient and the Reply-To of m, in place. A recipient
 * whose domain has no ASCII form: with refused NULL, -1 with e naming it
 * and m unchanged; else refused() is told, the recipient becomes
 * RCPT_FAILED (in memory) and the others are converted. A Reply-To without
 * an ASCII form is always -1. */
int idna_message(struct message *m, idna_refused_fn refused, void *ctx, struct err *e);

#endif
