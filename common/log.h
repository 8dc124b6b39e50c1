/*
 * log — one line per event, greppable: "TIME LEVEL EVENT key=value ...".
 *
 * Owns: the log destination (a file, or standard error when no file is set),
 * its reopening for logrotate, the timestamp format and value quoting.
 * Never: receives a secret. Callers pass only values that may be shown;
 * the %q conversion also neutralises CR/LF so one event stays one line.
 */
#ifndef MAILSPOOL_LOG_H
#define MAILSPOOL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

enum log_level { LL_ERROR = 0, LL_WARN = 1, LL_INFO = 2, LL_DEBUG = 3 };

struct log;

struct log *log_new(void);
void log_free(struct log *lg);
/* path NULL or "": standard error. Fails (EX_CANTCREAT) when the file cannot be opened. */
int log_open(struct log *lg, const char *path, enum log_level level, struct err *e);
void log_set_level(struct log *lg, enum log_level level);
enum log_level log_get_level(const struct log *lg);
/* Reopens the same path (after logrotate renamed it); keeps the old fd on failure. */
int log_reopen(struct log *lg, struct err *e);

/*
 * Writes "TIME LEVEL EVENT " followed by kvfmt expanded. kvfmt is printf-like
 * with one extra conversion: %q takes a const char * and prints it bare when it
 * is a plain token, else in double quotes with \" \\ \n \r \t escaped (NULL
 * prints as ""). All other conversions are passed to vsnprintf one at a time.
 * Example: log_event(lg, LL_INFO, "sent", "id=%lld area=%q reply=%q", id, a, r);
 */
void log_event(struct log *lg, enum log_level level, const char *event, const char *kvfmt, ...);
void log_eventv(struct log *lg, enum log_level level, const char *event, const char *kvfmt,
                va_list ap);

/* Formats like log_event's kvfmt into a malloc'ed string (for tests and status). */
char *log_format_kv(const char *kvfmt, ...);

const char *log_level_name(enum log_level level);
/* Parses "error|warn|info|debug"; returns -1 when unknown. */
int log_level_parse(const char *s);
/* ISO 8601 local time of Unix time t with offset, e.g. 2026-12-04T19:03:05+01:00. */
void log_iso_time(int64_t t, char *out, unsigned long outlen);
/* ISO 8601 local time with milliseconds and offset, e.g. 2026-12-04T19:00:01.123+01:00. */
void log_timestamp(char *out, unsigned long outlen);

#endif
