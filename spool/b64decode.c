/*
 * b64decode — strict base64 decoding.
 *
 * Written by hand: none of the project's libraries exports a decoder
 * (cJSON has none; libcurl's is internal). Never: accepts the URL-safe
 * alphabet or data after the final padding.
 */
#include "b64decode.h"
#include "xmalloc.h"

#include <stdlib.h>

static int b64decode_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static int b64decode_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Emits the bytes of one complete group of 4 symbols of which pad are '='. */
static int b64decode_group(const int q[4], int pad, unsigned char *o, size_t *n)
{
    unsigned v = (unsigned)q[0] << 18 | (unsigned)q[1] << 12 | (unsigned)q[2] << 6 | (unsigned)q[3];
    if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
        return -1; /* non-zero pad bits: not canonical */
    o[(*n)++] = (unsigned char)(v >> 16);
    if (pad < 2)
        o[(*n)++] = (unsigned char)(v >> 8);
    if (pad < 1)
        o[(*n)++] = (unsigned char)v;
    return 0;
}

int b64decode(const char *in, size_t len, unsigned char **out, size_t *outlen, size_t *where)
{
    unsigned char *o = xmalloc(len / 4 * 3 + 3);
    size_t n = 0;
    int q[4], k = 0, pad = 0, done = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (b64decode_space(c))
            continue;
        *where = i;
        if (done)
            goto bad; /* data after the padded final group */
        if (c == '=') {
            if (k < 2)
                goto bad;
            pad++;
            q[k++] = 0;
        } else {
            int v = b64decode_value(c);
            if (v < 0 || pad > 0)
                goto bad;
            q[k++] = v;
        }
        if (k == 4) {
            if (b64decode_group(q, pad, o, &n) != 0)
                goto bad;
            done = pad > 0;
            k = 0;
        }
    }
    if (k != 0) {
        *where = len;
        goto bad;
    }
    *out = o;
    *outlen = n;
    return 0;
bad:
    free(o);
    return -1;
}
