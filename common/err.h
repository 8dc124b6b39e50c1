/*
 * err — errors as values.
 *
 * Owns: struct err, a sysexits.h code plus a message that names the thing at
 * fault (file and line, profile, key, message id, address) and what to do.
 * Never: prints, logs or exits; the caller decides where a message goes.
 */
#ifndef MAILSPOOL_ERR_H
#define MAILSPOOL_ERR_H

#include <sysexits.h>

#define ERR_MSG_MAX 1024

struct err {
    int code; /* 0 or a sysexits.h value (EX_DATAERR, EX_CONFIG, ...) */
    char msg[ERR_MSG_MAX];
};

/* Sets code and message; returns -1 so that "return err_set(...)" reads well. */
int err_set(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes the existing message with "prefix: " (keeps the code). */
int err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(struct err *e);

#endif
