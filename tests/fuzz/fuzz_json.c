/*
 * fuzz_json — libFuzzer target for the JSON enqueue parser
 * (spool/json_enqueue.c) and what follows it on the producer path:
 * message_validate, then the composer the daemon would run.
 *
 * Owns: the properties of the parse: a refusal is EX_DATAERR with a reason
 * and no message; an accepted document gives a message that, once
 * message_validate accepts it too, composes to clean wire bytes (fuzz_wire).
 * Attachments with a path have no bytes here (the parser never reads files).
 * Never: touches a spool or a file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_wire.h"
#include "json_enqueue.h"
#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct message *m = NULL;
    struct err e = {0};
    if (json_enqueue_parse((const char *)data, size, &m, &e) != 0) {
        FUZZ_CHECK(m == NULL, "a refused document left a message");
        FUZZ_CHECK(e.code == EX_DATAERR && e.msg[0] != '\0', "a refusal without a reason");
        return 0;
    }
    FUZZ_CHECK(m != NULL, "an accepted document without a message");
    m->id = 7;
    m->created = 1796400001;
    if (message_validate(m, &e) == 0) {
        static const struct mime_sender sender = {"rechnung@airport.example",
                                                  "Flughafen Musterstadt – Buchhaltung", NULL};
        FUZZ_CHECK(fuzz_wire_compose(m, &sender, size % 2 ? 65536 : 61) == 0,
                   "a validated message was refused by the composer");
    } else {
        FUZZ_CHECK(e.code == EX_DATAERR && e.msg[0] != '\0', "a refusal without a reason");
    }
    message_free(m);
    return 0;
}
