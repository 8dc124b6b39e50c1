/*
 * message — one mail as the product knows it, between spool and transports.
 *
 * Owns: struct message and everything hanging off it (message_free releases
 * all); the validation every producer path and the daemon share.
 * Never: touches the spool, the network or the configuration.
 *
 * Strings are UTF-8. Times are Unix seconds (0: not set). Attachments carry
 * either a spool id (daemon side: bytes are read through a callback) or a
 * producer-side source (path or data) before enqueue.
 */
#ifndef MAILSPOOL_MESSAGE_H
#define MAILSPOOL_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum rcpt_kind { RCPT_TO = 0, RCPT_CC = 1, RCPT_BCC = 2 };

/* Delivery state of one recipient (spool column recipients.state). Only
 * pending recipients go into an envelope; the To and Cc headers always name
 * every recipient, whatever its state. */
enum rcpt_state {
    RCPT_PENDING = 0, /* NULL: not delivered yet */
    RCPT_SENT,        /* 'sent': a server took the message for it */
    RCPT_FAILED,      /* 'failed': refused permanently (5xx to RCPT) */
};

struct msg_rcpt {
    enum rcpt_kind kind;
    char *name;  /* display name or NULL */
    char *addr;  /* user@domain */
    int64_t row; /* recipients.id in the spool, 0 before enqueue */
    enum rcpt_state state;
    /* Set by message_mark_same: the index of an earlier pending recipient
     * with the same mailbox (To and Cc may both name it), which stands for
     * this one in an envelope; SIZE_MAX when none. */
    size_t same_as;
};

struct msg_attachment {
    int64_t id;         /* spool row id (0 before enqueue) */
    char *name;         /* file name shown to the recipient */
    char *content_type; /* e.g. application/pdf */
    int64_t size;
    char sha256[65]; /* lowercase hex, "" when unknown */
    /* producer side, before enqueue: exactly one of these */
    char *path;
    unsigned char *data;
    size_t data_len;
    int fd; /* an open regular file (the submission socket passes these),
             * owned by the message and closed by message_free; -1: none */
};

struct msg_header {
    char *name;
    char *value;
};

struct message {
    int64_t id;
    char *area;
    char *ref;
    char *subject;
    char *text;       /* text/plain body or NULL */
    char *html;       /* text/html body or NULL */
    char *reply_to;   /* "Name <a@b>" or "a@b", NULL: profile's default */
    char *message_id; /* "<...>", NULL: the composer derives a stable one */
    int priority;
    int64_t created;
    int64_t not_before;
    int64_t expires;
    int attempts;
    char *draft_id;   /* Graph draft left by an interrupted large send, or NULL */
    char *last_error; /* reason of the last failed attempt (spool), or NULL */

    struct msg_rcpt *rcpts;
    size_t nrcpts;
    struct msg_attachment *atts;
    size_t natts;
    struct msg_header *hdrs;
    size_t nhdrs;
};

struct message *message_new(void);
void message_free(struct message *m);

/* Adders copy their arguments. They validate what they can alone and return
 * -1 with e set (EX_DATAERR) when the value is unusable. */
int message_add_rcpt(struct message *m, enum rcpt_kind kind, const char *addr_spec, struct err *e);
int message_add_header(struct message *m, const char *name, const char *value, struct err *e);
struct msg_attachment *message_add_attachment(struct message *m);

/*
 * The whole message check shared by enqueue and by the daemon (which treats
 * every spool row as untrusted): area and subject present; at least one
 * recipient; a text or HTML body; no CR, LF or NUL in any header-bound string
 * (subject, names, addresses, reply-to, header names and values, attachment
 * names and types, ref); valid addresses; header names RFC 5322 field names
 * and not ones the composer owns (From, To, Cc, Bcc, Date, Message-ID, ...);
 * valid UTF-8 everywhere. Fails with EX_DATAERR and a message naming the field.
 *
 * Limits (common/message.c): area 1..64 of [A-Za-z0-9._-]; ref <= 255 octets;
 * subject <= 64 KiB; display names <= 998 octets; <= 10000 recipients; <= 100
 * extra headers, names <= 64 octets, values <= 8 KiB with no ASCII word over
 * 900 octets; <= 1000 attachments, names <= 255 octets without '/', '\' or
 * control characters and not "." or "..", content type "type/subtype" without
 * parameters (NULL: application/octet-stream); message_id "<left@right>".
 * Control characters other than TAB (subject, header values) are refused.
 */
int message_validate(const struct message *m, struct err *e);

const char *rcpt_kind_name(enum rcpt_kind kind); /* "to", "cc", "bcc" */
/* NULL for RCPT_PENDING, else "sent" or "failed" (the spool's values). */
const char *rcpt_state_name(enum rcpt_state st);
/* Recipients in state st. */
size_t message_count_rcpts(const struct message *m, enum rcpt_state st);
/* Sets same_as of every recipient: a pending one whose mailbox (local part
 * as written, domain in any ASCII case) an earlier pending one has already
 * gets that one's index, so that an envelope names each mailbox once.
 * O(n log n): a message may have thousands of recipients. */
void message_mark_same(struct message *m);
int rcpt_kind_parse(const char *s); /* -1 when unknown */

#endif
