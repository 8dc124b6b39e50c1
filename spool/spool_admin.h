/*
 * spool_admin — the administrator's reads and writes of the spool (the
 * `mailspool` CLI and libmailspool's administration calls).
 *
 * Owns: listing, finding by ref, attempts history, cancel, retry, purge,
 * and the figures `mailspool status` shows.
 * Never: changes a message the daemon is sending (state 'sending').
 * Every returned row owns its strings; free with the matching _free.
 */
#ifndef MAILSPOOL_SPOOL_ADMIN_H
#define MAILSPOOL_SPOOL_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "spool.h"

struct spool_list_filter {
    const char *state; /* NULL: all */
    const char *area;  /* NULL: all */
    int64_t limit;     /* 0: all; else the newest limit messages */
};

/* One message as listed and shown (what struct message does not carry). */
struct spool_row {
    int64_t id;
    char *state;
    char *area;
    char *ref;
    char *subject;
    int priority;
    int64_t created, updated, not_before, expires, next_attempt;
    int attempts;
    char *last_error;
    char *first_rcpt; /* first recipient's address, or NULL */
    int64_t nrcpts;
    char *draft_id;
};

/* Rows in id order. */
int spool_admin_list(struct spool *sp, const struct spool_list_filter *f, struct spool_row **out,
                     size_t *n, struct err *e);
/* One row; EX_NOINPUT when id does not exist. */
int spool_admin_row(struct spool *sp, int64_t id, struct spool_row *out, struct err *e);
void spool_admin_row_clear(struct spool_row *r);
void spool_admin_rows_free(struct spool_row *v, size_t n);

/* The message of ref (in area, or in any area when area is NULL; several
 * matches are EX_USAGE asking for --area). EX_NOINPUT when unknown. */
int spool_admin_find_ref(struct spool *sp, const char *area, const char *ref, int64_t *id,
                         struct err *e);

struct spool_attempt_row {
    int64_t at_ms;
    char *profile;
    char *transport;
    char *result;
    char *reply;
    int64_t duration_ms;
};
int spool_admin_attempts(struct spool *sp, int64_t id, struct spool_attempt_row **out, size_t *n,
                         struct err *e);
void spool_admin_attempts_free(struct spool_attempt_row *v, size_t n);

/* queued -> cancelled. Already cancelled: 0. Sending: EX_TEMPFAIL; sent or
 * failed: EX_DATAERR; unknown id: EX_NOINPUT. */
int spool_admin_cancel(struct spool *sp, int64_t id, struct err *e);
/* queued: due now; failed: queued again, due now, attempts reset. Sending:
 * EX_TEMPFAIL; sent or cancelled: EX_DATAERR; unknown id: EX_NOINPUT. */
int spool_admin_retry(struct spool *sp, int64_t id, struct err *e);
int spool_admin_retry_failed(struct spool *sp, const char *area, int64_t *count, struct err *e);
/* Deletes sent, failed and cancelled messages updated before `before`. */
int spool_admin_purge(struct spool *sp, int64_t before, int64_t *count, struct err *e);

struct spool_area_count {
    char *area;
    char *state;
    int64_t count;
    int64_t oldest; /* min(created) of the rows; 0 when none */
};
int spool_admin_area_counts(struct spool *sp, struct spool_area_count **out, size_t *n,
                            struct err *e);
void spool_admin_area_counts_free(struct spool_area_count *v, size_t n);

struct spool_daemon_row {
    int present; /* 0: no daemon has ever written a heartbeat */
    long pid;
    int64_t started, heartbeat;
};
int spool_admin_daemon(struct spool *sp, struct spool_daemon_row *out, struct err *e);

struct spool_profile_row {
    char *name;
    char *transport;
    int64_t last_success, last_error_at;
    char *last_error;
    int64_t suspended_until, token_expires, secret_expires;
};
int spool_admin_profiles(struct spool *sp, struct spool_profile_row **out, size_t *n,
                         struct err *e);
void spool_admin_profiles_free(struct spool_profile_row *v, size_t n);

#endif
