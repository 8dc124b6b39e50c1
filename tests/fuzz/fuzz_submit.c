/*
 * fuzz_submit — libFuzzer target for a submission request's body
 * (spool/submit_wire.c), the bytes any process that may write the spool can
 * send mailspoold.
 *
 * Owns: the properties of the decoder: a refusal has a code and a reason
 * and leaves no message; an accepted body gives a message that encodes
 * again, and decoding that encoding gives the same encoding (nothing is
 * lost or invented on the way); a validated message composes to clean wire
 * bytes (fuzz_wire).
 * Never: touches a spool, a socket or a file (no descriptors travel here).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_wire.h"
#include "message.h"
#include "submit_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int encode(const struct message *m, struct buf *b)
{
    size_t nfds;
    struct err e = {0};
    return submit_wire_encode(m, b, &nfds, &e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct message *m = NULL;
    struct err e = {0};
    if (submit_wire_decode(data, size, NULL, 0, &m, &e) != 0) {
        FUZZ_CHECK(m == NULL, "a refused request left a message");
        FUZZ_CHECK(e.code != 0 && e.msg[0] != '\0', "a refusal without a reason");
        return 0;
    }
    struct buf one = BUF_INIT, two = BUF_INIT;
    FUZZ_CHECK(encode(m, &one) == 0, "a decoded message does not encode");
    struct message *again = NULL;
    FUZZ_CHECK(submit_wire_decode((const unsigned char *)one.data + SUBMIT_HEAD_LEN,
                                  one.len - SUBMIT_HEAD_LEN, NULL, 0, &again, &e) == 0,
               "an encoding does not decode");
    FUZZ_CHECK(encode(again, &two) == 0 && one.len == two.len &&
                   memcmp(one.data, two.data, one.len) == 0,
               "decoding changed the message");
    m->id = 7;
    m->created = 1796400001;
    if (message_validate(m, &e) == 0) {
        static const struct mime_sender sender = {"rechnung@airport.example", "Buchhaltung", NULL};
        FUZZ_CHECK(fuzz_wire_compose(m, &sender, 998) == 0,
                   "a validated message was refused by the composer");
    }
    buf_free(&one);
    buf_free(&two);
    message_free(again);
    message_free(m);
    return 0;
}
