/*
 * mime_impl — private to common/mime*.c: the header-line writer that folds,
 * the streaming quoted-printable encoder, and base64 in whole lines.
 *
 * The split: mime_encode.c holds the encoders (base64, quoted-printable,
 * RFC 2047 encoded-words, RFC 2231 parameters), mime_header.c composes
 * header fields (addresses, Date, Message-ID, the top header block), and
 * mime.c turns a message into the byte stream.
 * Never: included outside common/mime*.c; the public contract is mime.h.
 */
#ifndef MAILSPOOL_MIME_IMPL_H
#define MAILSPOOL_MIME_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"
#include "message.h"
#include "mime.h"

#define MIME_LINE_SOFT 78  /* RFC 5322 2.1.1: SHOULD */
#define MIME_LINE_HARD 998 /* RFC 5322 2.1.1: MUST */

#define MIME_B64_LINE_IN 57  /* octets per base64 line */
#define MIME_B64_LINE_OUT 78 /* its 76 characters (RFC 2045 6.8) and CRLF */

/* Encodes nlines whole lines of MIME_B64_LINE_IN octets from in straight into
 * out (MIME_B64_LINE_OUT octets each, the same bytes mime_encode_base64 with
 * line_len 76 writes); returns the end of what it wrote. */
char *mime_b64_lines(char *out, const unsigned char *in, size_t nlines);

/* Writes one header field, folding at the separators it is given so that
 * lines stay within MIME_LINE_SOFT where the content allows. */
struct mime_hw {
    struct buf *out;
    size_t col;   /* octets on the current line */
    bool started; /* a token follows the field name: folding may begin */
};

/* Starts "Name:" on a new line of out. */
void mime_hw_begin(struct mime_hw *h, struct buf *out, const char *name);
/* Continues on out, whose current line already holds some octets. */
void mime_hw_attach(struct mime_hw *h, struct buf *out);
/* Appends " tok", or CRLF SP tok when the line would grow too long (never
 * right after the field name: "Name:" alone on a line helps no one). */
void mime_hw_token(struct mime_hw *h, const char *tok, size_t len);
/* Appends s as it is, never folding (",", ";"). */
void mime_hw_raw(struct mime_hw *h, const char *s, size_t len);
/* Ends the field with CRLF. */
void mime_hw_end(struct mime_hw *h);

/* Unstructured text (Subject, extra header values): written as it is and
 * folded at its own whitespace, or as RFC 2047 encoded-words when it holds
 * non-ASCII or control characters, or (subject) "=?" that a reader would
 * take for an encoded-word, or a word too long to fold. Extra headers keep
 * "=?" and long words: they may be structured, and the producer's own. */
void mime_hw_text(struct mime_hw *h, const char *utf8, bool subject);
/* A display name: atoms, a quoted string, or encoded-words. */
void mime_hw_phrase(struct mime_hw *h, const char *utf8);
/* RFC 2047 encoded-words for utf8 (Q or B, whichever is shorter), each a
 * token; a UTF-8 sequence is never split between two words. */
void mime_hw_encoded_words(struct mime_hw *h, const char *utf8, size_t len);
/* A MIME parameter: name="value", or RFC 2231 name*=UTF-8''... with
 * continuations (name*0*=, name*1*=) when long. Writes the leading ";". */
void mime_hw_param(struct mime_hw *h, const char *param, const char *utf8);

/* Streaming quoted-printable (RFC 2045 6.7) for UTF-8 text bodies. Any line
 * end in the input (CRLF, bare LF, bare CR) becomes a hard CRLF line break,
 * so the output has no bare CR or LF; lines are at most 76 octets; a '.' at
 * the start of a line is encoded, so no line can be a lone "." (SMTP
 * smuggling); the output always ends with CRLF (a soft break "=" CRLF when
 * the text does not end with a line break, which decodes to nothing). */
struct mime_qp {
    size_t col;
    char ws;      /* a space or tab held back: it must be encoded at a line end */
    bool skip_lf; /* the last input byte was CR */
};

void mime_qp_init(struct mime_qp *q);
void mime_qp_feed(struct mime_qp *q, struct buf *out, const char *in, size_t len);
void mime_qp_finish(struct mime_qp *q, struct buf *out);

/* The top header block from Date to the producer's extra headers (no
 * Content-* fields, no blank line). Fails when a line would exceed 998. */
int mime_header_block(struct buf *out, const struct message *m, const struct mime_sender *s,
                      const char *msgid, struct err *e);
/* "Thu, 04 Dec 2026 18:00:01 +0000" (RFC 5322 3.3, always UTC). */
void mime_header_date(struct buf *out, int64_t t);

#endif
