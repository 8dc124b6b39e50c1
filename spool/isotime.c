/*
 * isotime — strict ISO 8601 parsing and human time formatting.
 *
 * Owns: the calendar arithmetic (days from civil date, no time zone
 * database needed because every input carries its offset).
 * Never: accepts a time without an offset, or silently normalises an
 * out-of-range field (2026-02-30 is an error, not March 2).
 */
#include "isotime.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Reads exactly n digits at *p; advances; -1 when not digits. */
static int isotime_digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    return v;
}

static bool isotime_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int isotime_mdays(int y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && isotime_leap(y) ? 29 : d[m - 1];
}

/* Days since 1970-01-01 of a valid proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t isotime_days(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int isotime_bad(const char *s, const char *what, const char *why, struct err *e)
{
    return err_set(e, EX_DATAERR,
                   "%s: \"%s\" is not a valid time (%s): write ISO 8601 with an offset, e.g. "
                   "2026-12-05T06:00:00+01:00 or 2026-12-05T05:00:00Z",
                   what, s, why);
}

/* Parses the date part "YYYY-MM-DD" and the 'T'. */
static int isotime_date(const char **p, int *y, int *mo, int *d)
{
    if ((*y = isotime_digits(p, 4)) < 0 || *(*p)++ != '-' || (*mo = isotime_digits(p, 2)) < 0 ||
        *(*p)++ != '-' || (*d = isotime_digits(p, 2)) < 0)
        return -1;
    return 0;
}

/* Parses "Z", "+HH:MM", "+HHMM" (or '-'); *off gets seconds east of UTC. */
static int isotime_offset(const char **p, int *off)
{
    char c = **p;
    if (c == 'Z' || c == 'z') {
        (*p)++;
        *off = 0;
        return 0;
    }
    if (c != '+' && c != '-')
        return -1;
    (*p)++;
    int hh = isotime_digits(p, 2);
    if (hh < 0)
        return -1;
    if (**p == ':')
        (*p)++;
    int mm = isotime_digits(p, 2);
    if (mm < 0 || hh > 23 || mm > 59)
        return -1;
    *off = (hh * 3600 + mm * 60) * (c == '-' ? -1 : 1);
    return 0;
}

int isotime_parse(const char *s, const char *what, int64_t *out, struct err *e)
{
    const char *p = s;
    int y, mo, d, h, mi, sec = 0, off;
    if (s == NULL || isotime_date(&p, &y, &mo, &d) != 0)
        return isotime_bad(s ? s : "", what, "expected YYYY-MM-DD", e);
    if (*p != 'T' && *p != 't')
        return isotime_bad(s, what, "expected 'T' between date and time", e);
    p++;
    if ((h = isotime_digits(&p, 2)) < 0 || *p++ != ':' || (mi = isotime_digits(&p, 2)) < 0)
        return isotime_bad(s, what, "expected HH:MM after 'T'", e);
    if (*p == ':') {
        p++;
        if ((sec = isotime_digits(&p, 2)) < 0)
            return isotime_bad(s, what, "expected two digits of seconds", e);
        if (*p == '.' || *p == ',') {
            p++;
            if (*p < '0' || *p > '9')
                return isotime_bad(s, what, "expected digits after the decimal sign", e);
            while (*p >= '0' && *p <= '9')
                p++;
        }
    }
    if (*p == '\0')
        return isotime_bad(s, what, "no offset: add Z or +HH:MM", e);
    if (isotime_offset(&p, &off) != 0 || *p != '\0')
        return isotime_bad(s, what, "bad offset or trailing characters", e);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > isotime_mdays(y, mo))
        return isotime_bad(s, what, "no such date", e);
    if (h > 23 || mi > 59 || sec > 60)
        return isotime_bad(s, what, "no such time of day", e);
    if (sec == 60)
        sec = 59;
    int64_t t = isotime_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    if (t < 0)
        return isotime_bad(s, what, "before 1970", e);
    *out = t;
    return 0;
}

void isotime_format(int64_t t, char *out, size_t outlen)
{
    if (t == 0) {
        snprintf(out, outlen, "-");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    char z[8];
    if (localtime_r(&tt, &tm) == NULL || strftime(z, sizeof z, "%z", &tm) != 5) {
        snprintf(out, outlen, "@%lld", (long long)t);
        return;
    }
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s%.3s:%.2s", base, z, z + 3);
}

void isotime_format_age(int64_t s, char *out, size_t outlen)
{
    const char *sign = s < 0 ? "-" : "";
    if (s < 0)
        s = -s;
    if (s >= 86400)
        snprintf(out, outlen, "%s%lldd %lldh", sign, (long long)(s / 86400),
                 (long long)(s % 86400 / 3600));
    else if (s >= 3600)
        snprintf(out, outlen, "%s%lldh %lldm", sign, (long long)(s / 3600),
                 (long long)(s % 3600 / 60));
    else if (s >= 60)
        snprintf(out, outlen, "%s%lldm %llds", sign, (long long)(s / 60), (long long)(s % 60));
    else
        snprintf(out, outlen, "%s%llds", sign, (long long)s);
}
