/*
 * submit_wire — the protocol of mailspoold's submission socket.
 *
 * Owns: where the socket is (beside the spool, "<spool>.sock"), its
 * sockaddr (long paths through /proc/self/fd of the directory), the request
 * frame (one message, its attachments as open descriptors) and the reply
 * frame (the id, or the error a direct enqueue would have given).
 * Never: touches the spool, or carries a path the daemon would open: a
 * producer's files travel as descriptors of sealed memory copies the
 * producer made with its own rights (cli_submit.c), so the daemon never
 * reads a file for someone who could not.
 *
 * Written by hand because no dependency fits: the JSON enqueue document
 * names attachments by path and carries binary data as base64; these frames
 * carry bodies as they are and pass descriptors alongside (SCM_RIGHTS).
 * A request is untrusted input to the daemon: every length is checked.
 */
#ifndef MAILSPOOL_SUBMIT_WIRE_H
#define MAILSPOOL_SUBMIT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "buf.h"
#include "err.h"
#include "message.h"

/* A request's body above this goes the direct way (the daemon holds a whole
 * request in memory; attachments by descriptor do not count). */
#define SUBMIT_BODY_MAX (1024 * 1024)
/* Attachments passed as descriptors, in all: the daemon copies them into
 * the spool on its loop thread, so larger ones go the direct way. */
#define SUBMIT_ATTACH_MAX (1024 * 1024)
/* Descriptors one request passes (the kernel's limit per message is 253). */
#define SUBMIT_FDS_MAX 64
/* magic, body length, number of descriptors */
#define SUBMIT_HEAD_LEN 12

/* "<spool path>.sock", malloc'd. */
char *submit_wire_path(const char *spool_path);

/* Fills sa for path. A path too long for sun_path goes through the
 * directory: *dirfd gets an O_PATH descriptor the caller closes after
 * bind/connect (-1 when not needed). */
int submit_wire_addr(const char *path, struct sockaddr_un *sa, socklen_t *len, int *dirfd,
                     struct err *e);

/* Appends the request for m to out: the head, then the body. Attachments
 * with a path or a descriptor are sent as descriptors, in order; *nfds gets
 * how many. Fails (EX_DATAERR) when the body would pass SUBMIT_BODY_MAX or
 * the descriptors SUBMIT_FDS_MAX: such a message goes the direct way. */
int submit_wire_encode(const struct message *m, struct buf *out, size_t *nfds, struct err *e);

/* Parses a request's head: 0 and the lengths, or -1 (not a request). */
int submit_wire_head(const unsigned char head[SUBMIT_HEAD_LEN], uint32_t *body_len, uint32_t *nfds,
                     struct err *e);

/* Builds the message of a body. fds (nfds of them) become the attachments'
 * descriptors: each one is owned by *out afterwards, or closed on failure. */
int submit_wire_decode(const unsigned char *body, size_t len, int *fds, size_t nfds,
                       struct message **out, struct err *e);

/* The reply: rc 0 with id and existing, or rc a sysexits.h code with msg. */
void submit_wire_reply(struct buf *out, int rc, int64_t id, bool existing, const char *msg);
/* Parses a complete reply (len bytes); -1 when it is not one. */
int submit_wire_parse_reply(const unsigned char *p, size_t len, int *rc, int64_t *id,
                            bool *existing, struct err *msg);
/* How many bytes the reply at p needs in all (0: not known yet, -1: bad). */
long submit_wire_reply_len(const unsigned char *p, size_t len);

#endif
