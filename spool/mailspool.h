/*
 * libmailspool — the producer's C API of mailspool.
 *
 * Put a message into the spool (an SQLite database) in one transaction and
 * return at once; mailspoold delivers it. Link with `pkg-config --libs mailspool`.
 *
 *     mailspool *ms;
 *     if (mailspool_open(NULL, 0, &ms) != 0) { puts(mailspool_errmsg(ms)); ... }
 *     mailspool_msg *m = mailspool_msg_new();
 *     mailspool_msg_set_area(m, "invoice");
 *     mailspool_msg_add_rcpt(m, MAILSPOOL_TO, "Bärbel Groß <b@example.org>");
 *     mailspool_msg_set_subject(m, "Rechnung 2026-0042");
 *     mailspool_msg_set_text(m, "Sehr geehrte Damen und Herren, ...");
 *     mailspool_msg_attach_file(m, "/srv/out/2026-0042.pdf", NULL, NULL);
 *     long long id;
 *     int rc = mailspool_enqueue(ms, m, &id);   // 0, or a sysexits.h code
 *     mailspool_msg_free(m);
 *     mailspool_close(ms);
 *
 * Every function returning int returns 0 on success or a sysexits.h code
 * (65 bad data, 66 missing file, 73 cannot create, 74 I/O error, 75 busy)
 * with a message naming the field at fault in mailspool_errmsg() /
 * mailspool_msg_errmsg(). Strings are UTF-8 and copied. Times are Unix seconds.
 * A NULL handle or message is 64 (usage). Handles are not shared between
 * threads.
 */
#ifndef MAILSPOOL_H
#define MAILSPOOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MAILSPOOL_SCHEMA_VERSION 2

typedef struct mailspool mailspool;
typedef struct mailspool_msg mailspool_msg;

enum mailspool_rcpt { MAILSPOOL_TO = 0, MAILSPOOL_CC = 1, MAILSPOOL_BCC = 2 };

/* path NULL: $MAILSPOOL_SPOOL, else /var/lib/mailspool/spool.db. Creates a
 * missing spool with the current schema. *out is set even on failure (for
 * mailspool_errmsg) and must be closed. flags: 0. */
int mailspool_open(const char *path, int flags, mailspool **out);
void mailspool_close(mailspool *ms);
const char *mailspool_errmsg(const mailspool *ms);

mailspool_msg *mailspool_msg_new(void);
void mailspool_msg_free(mailspool_msg *m);
const char *mailspool_msg_errmsg(const mailspool_msg *m);

int mailspool_msg_set_area(mailspool_msg *m, const char *area);
int mailspool_msg_add_rcpt(mailspool_msg *m, enum mailspool_rcpt kind, const char *address);
int mailspool_msg_set_subject(mailspool_msg *m, const char *subject);
int mailspool_msg_set_text(mailspool_msg *m, const char *text);
int mailspool_msg_set_html(mailspool_msg *m, const char *html);
int mailspool_msg_set_reply_to(mailspool_msg *m, const char *address);
int mailspool_msg_set_ref(mailspool_msg *m, const char *ref);
int mailspool_msg_set_not_before(mailspool_msg *m, int64_t unix_time);
int mailspool_msg_set_expires(mailspool_msg *m, int64_t unix_time);
int mailspool_msg_set_priority(mailspool_msg *m, int priority);
int mailspool_msg_add_header(mailspool_msg *m, const char *name, const char *value);
/* The file is read and copied into the spool at enqueue. name/type NULL: the
 * file's base name / guessed from its extension. */
int mailspool_msg_attach_file(mailspool_msg *m, const char *path, const char *name,
                              const char *content_type);
int mailspool_msg_attach_data(mailspool_msg *m, const void *data, size_t len, const char *name,
                              const char *content_type);

/*
 * Validates and enqueues m in one transaction (attachments copied in).
 * With a ref already known for the area, sets *id to the existing message and
 * adds nothing (returns 0).
 */
int mailspool_enqueue(mailspool *ms, mailspool_msg *m, long long *id);

/* Administration (the CLI is built on these). */
int mailspool_cancel(mailspool *ms, long long id);
int mailspool_retry(mailspool *ms, long long id);
/* Requeues every failed message (of area, or all when area is NULL); *count gets how many. */
int mailspool_retry_failed(mailspool *ms, const char *area, long long *count);
/* Deletes sent, failed and cancelled messages last changed before unix time before. */
int mailspool_purge(mailspool *ms, int64_t before, long long *count);

#ifdef __cplusplus
}
#endif

#endif
