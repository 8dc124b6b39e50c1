/*
 * spool — the internal API over spool.db, used by the CLI and the daemon.
 *
 * Owns: every SQL statement of the product (schema, migrations, reads and
 * writes), transactions, busy handling, attachment blobs.
 * Never: knows SMTP or Graph, reads the configuration, logs.
 *
 * One struct spool is one SQLite connection: use one per thread.
 * Times are Unix seconds unless a name ends in _ms.
 */
#ifndef MAILSPOOL_SPOOL_H
#define MAILSPOOL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "message.h"

enum msg_state { MSG_QUEUED = 0, MSG_SENDING, MSG_SENT, MSG_FAILED, MSG_CANCELLED };
const char *msg_state_name(enum msg_state s); /* "queued", ... */
int msg_state_parse(const char *s);           /* -1 when unknown */

enum spool_flags {
    SPOOL_PRODUCER = 0,      /* synchronous=FULL; creates a missing spool */
    SPOOL_DAEMON = 1 << 0,   /* synchronous=NORMAL; migrates older schemas */
    SPOOL_READONLY = 1 << 1, /* list/show/status; never creates */
};

struct spool;

/* Errors: EX_CANTCREAT (cannot create), EX_IOERR (corrupt / not a spool),
 * EX_TEMPFAIL (busy), EX_DATAERR (newer schema than this build knows). */
int spool_open(const char *path, int flags, struct spool **out, struct err *e);
void spool_close(struct spool *sp);
const char *spool_path(const struct spool *sp);

/* ---- producers -------------------------------------------------------- */

/* Validates (message_validate) and inserts m with its recipients, headers
 * and attachments (files read and copied now) in one BEGIN IMMEDIATE
 * transaction. A known (area, ref) sets *id to the existing row, *existing
 * true, and adds nothing. */
int spool_enqueue(struct spool *sp, const struct message *m, int64_t *id, bool *existing,
                  struct err *e);

/* One message of a batch and what became of it. */
struct spool_enq {
    const struct message *m; /* in */
    int rc;                  /* out: 0, or a sysexits.h code with e */
    int64_t id;              /* out: the new (or, existing, the known) id */
    bool existing;           /* out: the ref was known; nothing added */
    struct err e;
};
/* Enqueues n messages as spool_enqueue does, in one transaction with one
 * sync at its commit (group commit: the submission socket's many
 * producers), each in a savepoint of its own, so that one bad message
 * leaves the others. A failure of the transaction itself fails them all. */
void spool_enqueue_batch(struct spool *sp, struct spool_enq *qs, size_t n);

/* Opens the spool's write-ahead log read-only, for fdatasync(2) by another
 * thread: the daemon's connection commits with synchronous=NORMAL, and the
 * submission socket makes a producer's message durable before it answers
 * (what synchronous=FULL does at each commit) without blocking the loop.
 * Frames a checkpoint took from the log were synced by it (synchronous=
 * NORMAL syncs the log before and the database after copying). The log is
 * the same file for as long as the daemon's connection is open. */
int spool_wal_open(struct spool *sp, int *fd, struct err *e);

/* ---- daemon: claiming ------------------------------------------------- */

struct spool_due {
    int64_t id;
    char *area;
    int priority;
    int64_t created;
    int64_t expires; /* 0: none */
};

/* Returns sending rows to queued at start; *ids gets those ids (possible
 * duplicates), the caller frees it. */
int spool_requeue_sending(struct spool *sp, int64_t **ids, size_t *n, struct err *e);

/* Up to max queued messages due at now (next_attempt <= now and not_before
 * <= now), highest priority first, then oldest next_attempt, then id, whose
 * area is not in areas (only: whose area is in areas). The caller frees with
 * spool_due_free. */
int spool_due(struct spool *sp, int64_t now, const char *const *areas, size_t nareas, bool only,
              size_t max, struct spool_due **out, size_t *n, struct err *e);
void spool_due_free(struct spool_due *v, size_t n);
/* Makes queued messages due at now whose area is not one of was[] (the areas
 * an old configuration served, without a catch-all) and, unless all, is one
 * of now_served[]: a reload that adds their area releases them (SPEC 6)
 * instead of leaving them to wait out the retry_min they were deferred by.
 * not_before still holds. *count: how many. */
int spool_release_areas(struct spool *sp, int64_t now, const char *const *was, size_t nwas,
                        const char *const *now_served, size_t nnow, bool all, int64_t *count,
                        struct err *e);

/* Queued messages (due or not) created before created_before, or whose
 * expires (when set) is <= now: candidates for expiry, checked by the daemon
 * against each area's lifetime. At most max; free with spool_due_free. */
int spool_expiry_candidates(struct spool *sp, int64_t now, int64_t created_before, size_t max,
                            struct spool_due **out, size_t *n, struct err *e);

/* Earliest moment a queued message becomes due (max of next_attempt and
 * not_before), or 0 when nothing is queued. */
int spool_next_due(struct spool *sp, int64_t *when, struct err *e);

/* After the wall clock was set by delta seconds: queued messages whose retry
 * was still ahead (next_attempt > after, the wall time before the jump) move
 * by delta, so that each keeps its remaining wait. *n gets how many. */
int spool_shift_retries(struct spool *sp, int64_t after, int64_t delta, int *n, struct err *e);

/* queued -> sending when still queued; returns 1 when claimed, 0 when
 * someone (cancel) got there first, -1 on error. */
int spool_claim(struct spool *sp, int64_t id, struct err *e);

/* Claims several messages in one transaction (the scheduler's pass):
 * claimed[i] tells whether ids[i] went queued -> sending. Returns -1 on
 * error, and then none is claimed. */
int spool_claim_many(struct spool *sp, const int64_t *ids, size_t n, bool *claimed, struct err *e);

/* Loads the whole message (no attachment bytes). Rows are untrusted: the
 * caller runs message_validate. EX_NOINPUT when id does not exist. */
int spool_load(struct spool *sp, int64_t id, struct message **out, struct err *e);

/* Reads attachment bytes in chunks; opens and closes the blob each call so
 * no read transaction spans a network wait. Signature of mime_att_read_fn
 * with ctx = struct spool *. Fails when the blob's size differs from a->size. */
ssize_t spool_att_read(void *sp, const struct msg_attachment *a, int64_t off, void *buf, size_t len,
                       struct err *e);

/* ---- daemon: outcomes ------------------------------------------------- */

struct spool_attempt {
    int64_t at_ms; /* wall clock, Unix milliseconds */
    const char *profile;
    const char *transport; /* "smtp", "graph", or "" */
    const char *result;    /* "sent", "deferred", "failed", "expired", "rcpt-rejected",
                            * "rcpt-deferred", "requeued" */
    const char *reply;     /* server reply or reason */
    int64_t duration_ms;
};

/*
 * Ends one attempt in one transaction: writes the attempt rows, then moves the
 * message (only if it is still in state sending) to new_state.
 *  - MSG_QUEUED: next_attempt set; attempts += count_attempt; last_error = reason
 *  - MSG_SENT / MSG_FAILED: final; last_error = reason (NULL for sent)
 */
int spool_finish(struct spool *sp, int64_t id, enum msg_state new_state, int64_t next_attempt,
                 bool count_attempt, const char *reason, const struct spool_attempt *att,
                 size_t natt, struct err *e);

/* What one attempt decided for one recipient (recipients.id of the message). */
struct spool_rcpt_mark {
    int64_t row;
    enum rcpt_state state; /* RCPT_SENT or RCPT_FAILED */
};

/* One outcome of spool_finish_many (the same fields as spool_finish, and
 * the recipients it decided, written only when the message was still
 * sending). */
struct spool_outcome {
    int64_t id;
    enum msg_state state;
    int64_t next_attempt;
    bool count_attempt;
    const char *reason;
    const struct spool_attempt *att;
    size_t natt;
    const struct spool_rcpt_mark *marks;
    size_t nmarks;
};

/* Group commit: writes all n outcomes in one transaction, all or none (one
 * commit, one fsync and one set of WAL frames for the lot). */
int spool_finish_many(struct spool *sp, const struct spool_outcome *v, size_t n, struct err *e);

/* One scheduler turn in one transaction: the outcomes v (as spool_finish_many),
 * then the claims ids (as spool_claim_many). All or nothing: on -1 no outcome
 * is written and nothing is claimed, and the caller may retry each part alone. */
int spool_turn(struct spool *sp, const struct spool_outcome *v, size_t nv, const int64_t *ids,
               size_t n, bool *claimed, struct err *e);

/* Graph: remembers (or clears with NULL) the draft of a large message. */
int spool_set_draft(struct spool *sp, int64_t id, const char *draft_id, struct err *e);

/* ---- daemon: state shown by `mailspool status` -------------------------- */

struct spool_profile_state {
    const char *name;
    const char *transport;
    int64_t last_success;
    int64_t last_error_at;
    const char *last_error;
    int64_t suspended_until; /* 0: not suspended */
    int64_t token_expires;   /* 0: no token */
    int64_t secret_expires;  /* 0: unknown */
};

int spool_heartbeat(struct spool *sp, long pid, int64_t started, int64_t now, struct err *e);
/* Replaces the whole profile table with these rows (one transaction). */
int spool_profiles_put(struct spool *sp, const struct spool_profile_state *v, size_t n,
                       struct err *e);

/* Queue figures for STATUS= and `status`. */
struct spool_counts {
    int64_t queued, sending, sent, failed, cancelled;
    int64_t deferred;      /* queued with attempts > 0 */
    int64_t oldest_queued; /* created of the oldest queued, 0 none */
};
int spool_counts(struct spool *sp, struct spool_counts *out, struct err *e);

/* Attempts since since_ms (wall clock, Unix ms), counted per area and
 * result ("sent", "deferred", "failed", "expired", ...), for the daemon's
 * "stats" line. *out is an array of *n rows; free with spool_stats_free. */
struct spool_stat {
    char *area;
    char *result;
    int64_t count;
};
int spool_stats(struct spool *sp, int64_t since_ms, struct spool_stat **out, size_t *n,
                struct err *e);
void spool_stats_free(struct spool_stat *v, size_t n);

/* Removes sent messages older than keep_sent and makes WAL checkpoints. */
int spool_maintain(struct spool *sp, int64_t now, int64_t keep_sent, struct err *e);

#endif
