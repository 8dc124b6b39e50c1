/*
 * isotime — strict ISO 8601 date-times with an explicit offset.
 *
 * Owns: parsing the times producers give (--not-before, --expires, JSON
 * not_before/expires) and formatting times for people (local time with
 * offset, as in the log).
 * Never: guesses a time zone; a time without "Z" or an offset is an error.
 */
#ifndef MAILSPOOL_ISOTIME_H
#define MAILSPOOL_ISOTIME_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/*
 * Parses "YYYY-MM-DDTHH:MM[:SS[.fraction]]" followed by "Z" or "+HH:MM" /
 * "-HH:MM" (also "+HHMM") into Unix seconds (fractions are dropped). Years
 * 1970-9999; every field is range-checked (Feb 29 only in leap years; a
 * leap second :60 counts as :59). what names the field for the error
 * (EX_DATAERR).
 */
int isotime_parse(const char *s, const char *what, int64_t *out, struct err *e);

/* Local time "2026-12-04T19:00:01+01:00"; out needs 32 bytes. 0 formats as "-". */
void isotime_format(int64_t t, char *out, size_t outlen);

/* "3d 4h", "5m 2s", "12s": a short human duration. */
void isotime_format_age(int64_t seconds, char *out, size_t outlen);

#endif
