/*
 * xmalloc — allocation helpers that never return NULL.
 *
 * Owns: the out-of-memory policy (print and abort; a mail daemon that cannot
 * allocate a few bytes cannot keep any promise, and the spool keeps the mail).
 * Never: hides ownership; every returned pointer belongs to the caller.
 */
#ifndef MAILSPOOL_XMALLOC_H
#define MAILSPOOL_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* xstrdup of NULL is NULL: for optional fields. */
char *xstrdup_opt(const char *s);

#endif
