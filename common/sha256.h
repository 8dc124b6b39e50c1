/*
 * sha256 — FIPS 180-4 SHA-256, for attachment checksums and config
 * fingerprints.
 *
 * Written by hand because none of the project's dependencies exports one
 * (libcurl's and SQLite's are internal); it is small and tested against the
 * FIPS vectors in tests/unit/test_sha256.c.
 * Never: used for anything needing a keyed MAC or password hashing.
 */
#ifndef MAILSPOOL_SHA256_H
#define MAILSPOOL_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
    uint32_t h[8];
    uint64_t len; /* bytes so far */
    unsigned char block[64];
    size_t used;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, unsigned char out[32]);
/* Finishes s and writes 64 lowercase hex digits and a NUL. */
void sha256_final_hex(struct sha256 *s, char out[65]);
void sha256_hex(const void *data, size_t len, char out[65]);

#endif
