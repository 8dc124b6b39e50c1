/*
 * log — one line per event, greppable: "TIME LEVEL EVENT key=value ...".
 *
 * Owns: the log file descriptor and its reopening; timestamp and quoting.
 * Never: logs a secret (callers never pass one) or lets a value break a line.
 * Each event is written with one write(2) on an O_APPEND descriptor, so lines
 * from concurrent writers never interleave and a rename by logrotate loses none.
 */
#include "log.h"
#include "address.h"
#include "buf.h"
#include "xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct log {
    char *path; /* NULL: standard error */
    int fd;
    enum log_level level;
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

struct log *log_new(void)
{
    struct log *lg = xcalloc(1, sizeof *lg);
    lg->fd = STDERR_FILENO;
    lg->level = LL_INFO;
    return lg;
}

void log_free(struct log *lg)
{
    if (lg == NULL)
        return;
    if (lg->fd != STDERR_FILENO && lg->fd >= 0)
        close(lg->fd);
    free(lg->path);
    free(lg);
}

static int log_open_fd(const char *path, struct err *e)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return err_set(e, EX_CANTCREAT, "log file %s: cannot open: %s", path, strerror(errno));
    return fd;
}

int log_open(struct log *lg, const char *path, enum log_level level, struct err *e)
{
    int fd = STDERR_FILENO;
    if (path && *path) {
        fd = log_open_fd(path, e);
        if (fd < 0)
            return -1;
    }
    if (lg->fd != STDERR_FILENO && lg->fd >= 0)
        close(lg->fd);
    free(lg->path);
    lg->path = (path && *path) ? xstrdup(path) : NULL;
    lg->fd = fd;
    lg->level = level;
    return 0;
}

void log_set_level(struct log *lg, enum log_level level)
{
    lg->level = level;
}

enum log_level log_get_level(const struct log *lg)
{
    return lg->level;
}

int log_reopen(struct log *lg, struct err *e)
{
    if (lg->path == NULL)
        return 0;
    int fd = log_open_fd(lg->path, e);
    if (fd < 0)
        return -1;
    if (lg->fd != STDERR_FILENO && lg->fd >= 0)
        close(lg->fd);
    lg->fd = fd;
    return 0;
}

const char *log_level_name(enum log_level level)
{
    return (level >= LL_ERROR && level <= LL_DEBUG) ? level_names[level] : "info";
}

int log_level_parse(const char *s)
{
    for (int i = 0; i <= LL_DEBUG; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return LL_WARN;
    return -1;
}

void log_timestamp(char *out, unsigned long outlen)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    char date[32], zone[8];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(zone, sizeof zone, "%z", &tm); /* +0100 */
    snprintf(out, outlen, "%s.%03ld%.3s:%.2s", date, (long)(tv.tv_usec / 1000), zone, zone + 3);
}

void log_iso_time(int64_t t, char *out, unsigned long outlen)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    char date[32], zone[8];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(zone, sizeof zone, "%z", &tm);
    snprintf(out, outlen, "%s%.3s:%.2s", date, zone, zone + 3);
}

/* A token is printed bare when it has no space, quote, '=' or control byte.
 * Text that is not UTF-8 (a hostile spool row) has its bytes >= 0x80 escaped
 * too, so that the log stays text for grep and awk. */
static void log_put_quoted(struct buf *b, const char *s)
{
    if (s == NULL) {
        buf_puts(b, "\"\"");
        return;
    }
    bool utf8 = utf8_valid(s, strlen(s));
    bool bare = *s != '\0' && utf8;
    for (const unsigned char *p = (const unsigned char *)s; *p && bare; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            bare = false;
    if (bare) {
        buf_puts(b, s);
        return;
    }
    buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            buf_puts(b, "\\\"");
            break;
        case '\\':
            buf_puts(b, "\\\\");
            break;
        case '\n':
            buf_puts(b, "\\n");
            break;
        case '\r':
            buf_puts(b, "\\r");
            break;
        case '\t':
            buf_puts(b, "\\t");
            break;
        default:
            if (*p < ' ' || *p == 0x7f || (*p >= 0x80 && !utf8))
                buf_printf(b, "\\x%02x", *p);
            else
                buf_putc(b, (char)*p);
        }
    }
    buf_putc(b, '"');
}

/*
 * Expands kvfmt one conversion at a time: %q is ours, everything else is
 * handed to vsnprintf with a copy of the spec. Supported length modifiers are
 * those the code uses: h, l, ll, z, j.
 */
static void log_expand(struct buf *b, const char *fmt, va_list ap)
{
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            buf_putc(b, *p);
            continue;
        }
        const char *start = p++;
        if (*p == '%') {
            buf_putc(b, '%');
            continue;
        }
        if (*p == 'q') {
            log_put_quoted(b, va_arg(ap, const char *));
            continue;
        }
        while (*p && strchr("-+ #0123456789.", *p))
            p++;
        char len[3] = "";
        while (*p && strchr("hlzj", *p) && strlen(len) < 2)
            strncat(len, p++, 1);
        char spec[32];
        size_t n = (size_t)(p - start) + 1;
        if (n >= sizeof spec || *p == '\0')
            break;
        memcpy(spec, start, n);
        spec[n] = '\0';
        switch (*p) {
        case 'd':
        case 'i':
        case 'u':
        case 'x':
        case 'X':
        case 'o':
            if (strcmp(len, "ll") == 0)
                buf_printf(b, spec, va_arg(ap, long long));
            else if (strcmp(len, "l") == 0)
                buf_printf(b, spec, va_arg(ap, long));
            else if (strcmp(len, "z") == 0)
                buf_printf(b, spec, va_arg(ap, size_t));
            else if (strcmp(len, "j") == 0)
                buf_printf(b, spec, va_arg(ap, long long));
            else
                buf_printf(b, spec, va_arg(ap, int));
            break;
        case 'f':
        case 'g':
        case 'e':
            buf_printf(b, spec, va_arg(ap, double));
            break;
        case 's':
            buf_printf(b, spec, va_arg(ap, const char *));
            break;
        case 'c':
            buf_printf(b, spec, va_arg(ap, int));
            break;
        default:
            buf_append(b, spec, n);
        }
    }
}

char *log_format_kv(const char *kvfmt, ...)
{
    struct buf b = BUF_INIT;
    va_list ap;
    va_start(ap, kvfmt);
    log_expand(&b, kvfmt, ap);
    va_end(ap);
    return buf_detach(&b);
}

void log_eventv(struct log *lg, enum log_level level, const char *event, const char *kvfmt,
                va_list ap)
{
    if (lg == NULL || level > lg->level)
        return;
    char ts[48];
    log_timestamp(ts, sizeof ts);
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s %s %s", ts, log_level_name(level), event);
    if (kvfmt && *kvfmt) {
        buf_putc(&b, ' ');
        log_expand(&b, kvfmt, ap);
    }
    /* A %s value must never split the event: fold stray line breaks. */
    for (size_t i = 0; i < b.len; i++)
        if (b.data[i] == '\n' || b.data[i] == '\r')
            b.data[i] = ' ';
    buf_putc(&b, '\n');
    ssize_t off = 0;
    while ((size_t)off < b.len) {
        ssize_t w = write(lg->fd, b.data + off, b.len - (size_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* nowhere to report a failing log; the spool still has the truth */
        off += w;
    }
    buf_free(&b);
}

void log_event(struct log *lg, enum log_level level, const char *event, const char *kvfmt, ...)
{
    va_list ap;
    va_start(ap, kvfmt);
    log_eventv(lg, level, event, kvfmt, ap);
    va_end(ap);
}
