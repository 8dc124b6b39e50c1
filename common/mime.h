/*
 * mime — the RFC 5322 / MIME message, produced as a stream.
 *
 * Owns: header composition (From with RFC 2047 display name, To, Cc,
 * Reply-To, Subject RFC 2047 folded, Date, Message-ID, MIME-Version, the
 * producer's extra headers), multipart/alternative for text+HTML,
 * multipart/mixed with base64 attachments and RFC 2231 file names, strict
 * CRLF line ends, and the RFC 2047/2231/base64 encoders it needs.
 * Never: reads the spool itself; attachment bytes come through a callback so
 * that memory does not grow with attachment size. Bcc never appears.
 *
 * The output is a pure function of the message and sender (Date is the
 * message's creation time, boundaries derive from the Message-ID), so
 * `mailspool render` shows exactly what a retry sends.
 */
#ifndef MAILSPOOL_MIME_H
#define MAILSPOOL_MIME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"
#include "message.h"

struct mime_sender {
    const char *from_address; /* profile FromAddress */
    const char *from_name;    /* profile FromDisplayName or NULL */
    const char *reply_to;     /* profile ReplyToAddress or NULL (message's wins) */
};

/* Reads up to len bytes of attachment a at offset off into buf; returns the
 * count (0 at end) or -1 with e set. */
typedef ssize_t (*mime_att_read_fn)(void *ctx, const struct msg_attachment *a, int64_t off,
                                    void *buf, size_t len, struct err *e);

struct mime;

/* m and sender must outlive the stream. */
struct mime *mime_new(const struct message *m, const struct mime_sender *sender,
                      mime_att_read_fn att_read, void *ctx);
void mime_free(struct mime *mm);
/* Next bytes of the message: returns count, 0 at the end, -1 with e set. */
ssize_t mime_read(struct mime *mm, char *buf, size_t len, struct err *e);
/* Bytes of one read that the base64 encoder wrote itself (an attachment
 * body): characters of the base64 alphabet in lines of 76 ending in CRLF, a
 * contiguous piece of that output, so they hold no bare CR or LF and no line
 * starts with "." by construction. len 0: none. */
struct mime_span {
    size_t off, len;
};
/* mime_read that also marks, in *b64, the base64 bytes among those it
 * returned. Such a read ends where an attachment's base64 ends (it may
 * return less than len before the end), so that each holds one span at most
 * and every base64 byte is marked. The SMTP transport checks line ends only
 * in the unmarked bytes. */
ssize_t mime_read_marked(struct mime *mm, char *buf, size_t len, struct mime_span *b64,
                         struct err *e);
/* Restarts from the first byte (a retry on a reused stream). */
void mime_rewind(struct mime *mm);

/* The Message-ID the composer uses: m->message_id, else derived stably from
 * id, created and the sender's domain. Returns a malloc'ed "<...>". */
char *mime_message_id(const struct message *m, const char *from_address);

/* Encoders, exposed for Graph and tests. All append to out. */
void mime_encode_rfc2047(struct buf *out, const char *utf8, size_t first_line_used);
/* line_len: characters per line, each line ending in CRLF (rounded down to a
 * multiple of 4, at least 4: base64 comes in groups of 4); 0: no line breaks. */
void mime_encode_base64(struct buf *out, const void *data, size_t len, int line_len /*0: none*/);
void mime_format_address(struct buf *out, const char *name, const char *addr);
void mime_rfc2231_param(struct buf *out, const char *param, const char *utf8);

#endif
