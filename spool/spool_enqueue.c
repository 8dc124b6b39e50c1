/*
 * spool_enqueue — putting one validated message into the spool.
 *
 * Owns: the producer's write: message, recipients, headers and attachments
 * in one BEGIN IMMEDIATE transaction; idempotency by (area, ref);
 * attachments streamed into blobs in chunks (zeroblob + sqlite3_blob_write)
 * with their size and SHA-256, so memory does not grow with file size.
 * Never: writes anything when any part fails (every error path rolls back),
 * or keeps a reference to the producer's files after returning.
 */
#include "address.h"
#include "filetype.h"
#include "sha256.h"
#include "spool.h"
#include "spool_db.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_ENQUEUE_CHUNK (64 * 1024)

/* One attachment's source: an open file or the producer's memory. */
struct enq_src {
    int fd;
    int64_t size;
    const char *label; /* path or name, for errors */
};

/* Makes fd (just opened, or passed over the submission socket) the source:
 * a regular file, read from its start, blocking. */
static int spool_enqueue_use_fd(struct enq_src *s, struct err *e)
{
    struct stat stb;
    if (fstat(s->fd, &stb) != 0 || !S_ISREG(stb.st_mode))
        return err_set(e, EX_NOINPUT, "attachment %s: not a regular file: attach a file", s->label);
    int fl = fcntl(s->fd, F_GETFL);
    if (fl < 0 || fcntl(s->fd, F_SETFL, fl & ~O_NONBLOCK) < 0 || lseek(s->fd, 0, SEEK_SET) != 0)
        return err_set(e, EX_IOERR, "attachment %s: %s", s->label, strerror(errno));
    s->size = (int64_t)stb.st_size;
    return 0;
}

static int spool_enqueue_open_one(const struct msg_attachment *a, size_t i, struct enq_src *s,
                                  struct err *e)
{
    s->fd = -1;
    if (a->fd >= 0) {
        s->label = a->name ? a->name : "(file)";
        /* Our own descriptor: the message keeps (and closes) the one it owns. */
        s->fd = fcntl(a->fd, F_DUPFD_CLOEXEC, 0);
        if (s->fd < 0)
            return err_set(e, EX_TEMPFAIL, "attachment %s: %s", s->label, strerror(errno));
        return spool_enqueue_use_fd(s, e);
    }
    if (a->path == NULL) {
        if (a->data == NULL && a->data_len > 0)
            return err_set(e, EX_DATAERR, "attachment %zu: no data and no path", i + 1);
        s->size = (int64_t)a->data_len;
        s->label = a->name ? a->name : "(data)";
        return 0;
    }
    s->label = a->path;
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer. */
    s->fd = open(a->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (s->fd < 0)
        return err_set(e, EX_NOINPUT, "attachment %s: cannot open: %s: check the path", a->path,
                       strerror(errno));
    return spool_enqueue_use_fd(s, e);
}

/* Opens every attachment before the transaction starts: a missing file is
 * reported before anything is written, and no lock is held while we fail. */
static int spool_enqueue_open_sources(struct spool *sp, const struct message *m,
                                      struct enq_src *src, struct err *e)
{
    int64_t limit = sqlite3_limit(sp->db, SQLITE_LIMIT_LENGTH, -1);
    for (size_t i = 0; i < m->natts; i++) {
        if (spool_enqueue_open_one(&m->atts[i], i, &src[i], e) != 0)
            return -1;
        if (src[i].size > limit)
            return err_set(e, EX_DATAERR,
                           "attachment %s: %lld bytes is more than the spool's limit of %lld "
                           "bytes: send a link instead",
                           src[i].label, (long long)src[i].size, (long long)limit);
    }
    return 0;
}

static void spool_enqueue_close_sources(struct enq_src *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (src[i].fd >= 0)
            close(src[i].fd);
}

/* Reads the next chunk of an attachment; -1 with e on a read error. */
static ssize_t spool_enqueue_src_read(const struct msg_attachment *a, struct enq_src *s,
                                      int64_t off, char *buf, size_t len, struct err *e)
{
    if (s->fd < 0) {
        size_t n = a->data_len - (size_t)off < len ? a->data_len - (size_t)off : len;
        if (n)
            memcpy(buf, a->data + off, n);
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t n = read(s->fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return err_set(e, EX_IOERR, "attachment %s: read error: %s", s->label, strerror(errno));
    }
}

/* Copies the source into the blob of row rowid; fills hex with its SHA-256. */
static int spool_enqueue_copy(struct spool *sp, const struct msg_attachment *a, struct enq_src *s,
                              int64_t rowid, char hex[65], struct err *e)
{
    sqlite3_blob *blob;
    int rc = sqlite3_blob_open(sp->db, "main", "attachments", "data", rowid, 1, &blob);
    if (rc != SQLITE_OK)
        return spool_db_fail(sp, rc, "opening an attachment blob", e);
    char *buf = xmalloc(SPOOL_ENQUEUE_CHUNK);
    struct sha256 h;
    sha256_init(&h);
    int64_t off = 0;
    int ret = 0;
    while (ret == 0) {
        ssize_t n = spool_enqueue_src_read(a, s, off, buf, SPOOL_ENQUEUE_CHUNK, e);
        if (n < 0) {
            ret = -1;
        } else if (n == 0) {
            break;
        } else if (off + n > s->size) {
            ret = err_set(e, EX_TEMPFAIL,
                          "attachment %s: the file grew while it was copied: "
                          "enqueue again once it is complete",
                          s->label);
        } else if ((rc = sqlite3_blob_write(blob, buf, (int)n, (int)off)) != SQLITE_OK) {
            ret = spool_db_fail(sp, rc, "writing an attachment", e);
        } else {
            sha256_update(&h, buf, (size_t)n);
            off += n;
        }
    }
    if (ret == 0 && off != s->size)
        ret = err_set(e, EX_TEMPFAIL,
                      "attachment %s: the file shrank while it was copied: "
                      "enqueue again once it is complete",
                      s->label);
    free(buf);
    rc = sqlite3_blob_close(blob);
    if (ret == 0 && rc != SQLITE_OK)
        ret = spool_db_fail(sp, rc, "writing an attachment", e);
    sha256_final_hex(&h, hex);
    return ret;
}

static int spool_enqueue_attachment(struct spool *sp, int64_t msg_id,
                                    const struct msg_attachment *a, struct enq_src *s,
                                    struct err *e)
{
    const char *name = a->name;
    if (name == NULL)
        name = a->path ? filetype_basename(a->path) : "attachment";
    const char *type = a->content_type ? a->content_type : filetype_guess(name);
    if (!header_safe(name) || !header_safe(type))
        return err_set(e, EX_DATAERR,
                       "attachment %s: name or type holds CR, LF, NUL or "
                       "invalid UTF-8: choose a plain name",
                       s->label);
    /* The checksum is known only after the copy. An UPDATE would rewrite the
     * whole row, blob included (SQLite rewrites a record whole): memory and
     * spool pages twice the attachment's size. So the row gets 64 placeholder
     * digits that the hex then overwrites in place, as a blob write of the
     * same length. */
    sqlite3_stmt *st;
    if (spool_db_cached(sp,
                        "INSERT INTO attachments (message_id, name, content_type, size, data,"
                        " sha256) VALUES (?1, ?2, ?3, ?4, zeroblob(?4), printf('%.64c', '0'))",
                        &st, e) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, msg_id);
    spool_db_bind_text(st, 2, name);
    spool_db_bind_text(st, 3, type);
    sqlite3_bind_int64(st, 4, s->size);
    if (spool_db_step_reset(sp, st, "storing an attachment", e) != 0)
        return -1;
    int64_t rowid = sqlite3_last_insert_rowid(sp->db);
    char hex[65];
    if (spool_enqueue_copy(sp, a, s, rowid, hex, e) != 0)
        return -1;
    sqlite3_blob *blob;
    int rc = sqlite3_blob_open(sp->db, "main", "attachments", "sha256", rowid, 1, &blob);
    if (rc == SQLITE_OK) {
        rc = sqlite3_blob_write(blob, hex, 64, 0);
        int rc2 = sqlite3_blob_close(blob);
        if (rc == SQLITE_OK)
            rc = rc2;
    }
    return rc == SQLITE_OK ? 0 : spool_db_fail(sp, rc, "storing an attachment checksum", e);
}

/* Finds the message of (area, ref); 1 found, 0 not, -1 error. */
static int spool_enqueue_find_ref(struct spool *sp, const struct message *m, int64_t *id,
                                  struct err *e)
{
    sqlite3_stmt *st;
    if (spool_db_cached(sp, "SELECT id FROM messages WHERE area = ?1 AND ref = ?2", &st, e) != 0)
        return -1;
    spool_db_bind_text(st, 1, m->area);
    spool_db_bind_text(st, 2, m->ref);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        found = 1;
    } else if (rc != SQLITE_DONE) {
        found = spool_db_fail(sp, rc, "looking up the ref", e);
    }
    spool_db_release(st);
    return found;
}

static int spool_enqueue_message_row(struct spool *sp, const struct message *m, int64_t *id,
                                     struct err *e)
{
    /* SQLite stores a text over its length limit as NULL (the bind fails):
     * a message without its body would go out, so refuse it here. */
    int64_t limit = sqlite3_limit(sp->db, SQLITE_LIMIT_LENGTH, -1);
    const char *big = m->text && (int64_t)strlen(m->text) > limit   ? "text body"
                      : m->html && (int64_t)strlen(m->html) > limit ? "HTML body"
                                                                    : NULL;
    if (big)
        return err_set(e, EX_DATAERR,
                       "message: the %s is more than the spool's limit of %lld bytes: send it "
                       "as an attachment or a link",
                       big, (long long)limit);
    sqlite3_stmt *st;
    if (spool_db_cached(sp,
                        "INSERT INTO messages (area, ref, subject, body_text, body_html, "
                        "reply_to, message_id, priority, created, not_before, expires, "
                        "next_attempt, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                        "?10, ?11, 0, ?9)",
                        &st, e) != 0)
        return -1;
    spool_db_bind_text(st, 1, m->area);
    spool_db_bind_text(st, 2, m->ref);
    spool_db_bind_text(st, 3, m->subject);
    spool_db_bind_text(st, 4, m->text);
    spool_db_bind_text(st, 5, m->html);
    spool_db_bind_text(st, 6, m->reply_to);
    spool_db_bind_text(st, 7, m->message_id);
    sqlite3_bind_int(st, 8, m->priority);
    sqlite3_bind_int64(st, 9, spool_db_now());
    sqlite3_bind_int64(st, 10, m->not_before);
    sqlite3_bind_int64(st, 11, m->expires);
    if (spool_db_step_reset(sp, st, "storing the message", e) != 0)
        return -1;
    *id = sqlite3_last_insert_rowid(sp->db);
    return 0;
}

static int spool_enqueue_parts(struct spool *sp, const struct message *m, int64_t id, struct err *e)
{
    sqlite3_stmt *st;
    for (size_t i = 0; i < m->nrcpts; i++) {
        if (spool_db_cached(sp,
                            "INSERT INTO recipients (message_id, kind, name, address)"
                            " VALUES (?1, ?2, ?3, ?4)",
                            &st, e) != 0)
            return -1;
        sqlite3_bind_int64(st, 1, id);
        spool_db_bind_text(st, 2, rcpt_kind_name(m->rcpts[i].kind));
        spool_db_bind_text(st, 3, m->rcpts[i].name);
        spool_db_bind_text(st, 4, m->rcpts[i].addr);
        if (spool_db_step_reset(sp, st, "storing a recipient", e) != 0)
            return -1;
    }
    for (size_t i = 0; i < m->nhdrs; i++) {
        if (spool_db_cached(sp, "INSERT INTO headers (message_id, name, value) VALUES (?1, ?2, ?3)",
                            &st, e) != 0)
            return -1;
        sqlite3_bind_int64(st, 1, id);
        spool_db_bind_text(st, 2, m->hdrs[i].name);
        spool_db_bind_text(st, 3, m->hdrs[i].value);
        if (spool_db_step_reset(sp, st, "storing a header", e) != 0)
            return -1;
    }
    return 0;
}

/* One message inside the batch's transaction, in a savepoint of its own:
 * a message that fails leaves the others. 1: the whole transaction is gone
 * (SQLite rolled it back after an I/O error, a full disk or a lost lock). */
static int spool_enqueue_one_tx(struct spool *sp, struct spool_enq *q, struct enq_src *src)
{
    const struct message *m = q->m;
    if (spool_db_control(sp, "SAVEPOINT enq") != SQLITE_OK) {
        q->rc = spool_db_fail(sp, sqlite3_extended_errcode(sp->db), "starting a savepoint", &q->e);
        return 1;
    }
    int found = m->ref ? spool_enqueue_find_ref(sp, m, &q->id, &q->e) : 0;
    if (found > 0) {
        q->existing = true;
    } else if (found < 0 || spool_enqueue_message_row(sp, m, &q->id, &q->e) != 0 ||
               spool_enqueue_parts(sp, m, q->id, &q->e) != 0) {
        q->rc = -1;
    } else {
        for (size_t i = 0; i < m->natts && q->rc == 0; i++)
            if (spool_enqueue_attachment(sp, q->id, &m->atts[i], &src[i], &q->e) != 0)
                q->rc = -1;
    }
    if (sqlite3_get_autocommit(sp->db))
        return 1;
    if (q->rc != 0) {
        q->id = 0;
        if (spool_db_control(sp, "ROLLBACK TO enq") != SQLITE_OK)
            return 1;
    }
    return spool_db_control(sp, "RELEASE enq") == SQLITE_OK ? 0 : 1;
}

/* Checks what can be checked before the transaction: the message, a known
 * ref (it needs none of the files, which may be gone by now), the files. */
static int spool_enqueue_prepare(struct spool *sp, struct spool_enq *q, struct enq_src *src)
{
    const struct message *m = q->m;
    if (message_validate(m, &q->e) != 0)
        return -1;
    if (m->ref) {
        int found = spool_enqueue_find_ref(sp, m, &q->id, &q->e);
        if (found != 0) {
            q->existing = found > 0;
            return found < 0 ? -1 : 1;
        }
    }
    return spool_enqueue_open_sources(sp, m, src, &q->e) != 0 ? -1 : 0;
}

/* The transaction failed: every message that was in it gets the reason. */
static void spool_enqueue_fail_all(struct spool_enq *qs, const bool *ready, size_t n,
                                   const struct err *e)
{
    for (size_t i = 0; i < n; i++)
        if (ready[i] && qs[i].rc == 0) {
            qs[i].rc = -1;
            qs[i].id = 0;
            qs[i].existing = false;
            qs[i].e = *e;
        }
}

void spool_enqueue_batch(struct spool *sp, struct spool_enq *qs, size_t n)
{
    struct enq_src **src = xcalloc(n ? n : 1, sizeof *src);
    bool *ready = xcalloc(n ? n : 1, sizeof *ready);
    size_t nready = 0;
    for (size_t i = 0; i < n; i++) {
        struct spool_enq *q = &qs[i];
        q->rc = 0;
        q->id = 0;
        q->existing = false;
        q->e.code = 0;
        q->e.msg[0] = '\0';
        src[i] = xcalloc(q->m->natts ? q->m->natts : 1, sizeof **src);
        for (size_t k = 0; k < q->m->natts; k++)
            src[i][k].fd = -1;
        if (sp->flags & SPOOL_READONLY) {
            q->rc =
                err_set(&q->e, EX_SOFTWARE, "spool %s: opened read-only; cannot enqueue", sp->path);
            continue;
        }
        int prep = spool_enqueue_prepare(sp, q, src[i]);
        if (prep < 0)
            q->rc = -1;
        else if (prep == 0) {
            ready[i] = true;
            nready++;
        }
    }
    struct err e = {0};
    if (nready > 0 && spool_db_begin(sp, &e) != 0) {
        spool_enqueue_fail_all(qs, ready, n, &e);
    } else if (nready > 0) {
        bool lost = false;
        for (size_t i = 0; i < n && !lost; i++)
            if (ready[i] && spool_enqueue_one_tx(sp, &qs[i], src[i]) != 0) {
                lost = true;
                e = qs[i].e;
                if (e.code == 0)
                    spool_db_fail(sp, sqlite3_extended_errcode(sp->db), "storing the message", &e);
            }
        if (lost) {
            spool_db_rollback(sp);
            spool_enqueue_fail_all(qs, ready, n, &e);
        } else if (spool_db_commit(sp, &e) != 0) {
            spool_enqueue_fail_all(qs, ready, n, &e);
        }
    }
    for (size_t i = 0; i < n; i++) {
        spool_enqueue_close_sources(src[i], qs[i].m->natts);
        free(src[i]);
        if (qs[i].rc != 0)
            qs[i].rc = qs[i].e.code ? qs[i].e.code : EX_SOFTWARE;
    }
    free(src);
    free(ready);
}

int spool_enqueue(struct spool *sp, const struct message *m, int64_t *id, bool *existing,
                  struct err *e)
{
    struct spool_enq q = {.m = m};
    spool_enqueue_batch(sp, &q, 1);
    *id = q.id;
    if (existing)
        *existing = q.existing;
    if (q.rc != 0) {
        *e = q.e;
        return -1;
    }
    return 0;
}
