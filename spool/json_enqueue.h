/*
 * json_enqueue — the JSON enqueue document (SPEC §4) as a struct message.
 *
 * Owns: the document's fields and their types: unknown or duplicate fields,
 * wrong types and bad values are EX_DATAERR naming the field ("to[2]",
 * "attachments[1].content_base64", "headers.X-Ref").
 * Never: reads attachment files (spool_enqueue does, at enqueue) or touches
 * the spool.
 */
#ifndef MAILSPOOL_JSON_ENQUEUE_H
#define MAILSPOOL_JSON_ENQUEUE_H

#include <stddef.h>

#include "err.h"
#include "message.h"

/* Parses text[0..len) into a new message (*out, freed with message_free).
 * The message is not validated as a whole: spool_enqueue does that. */
int json_enqueue_parse(const char *text, size_t len, struct message **out, struct err *e);

#endif
