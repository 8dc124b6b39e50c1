/*
 * idna — the ASCII form of an address's domain (see idna.h).
 *
 * Never: converts by hand. IDNA needs Unicode normalisation and the UTS #46
 * mapping tables; libcurl's URL API reaches libidn2 for that (no other
 * dependency offers it: libidn2's own headers are not a build dependency).
 */
#include "idna.h"
#include "xmalloc.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool idna_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

/* What a converted domain may hold: letters, digits, hyphens and dots. The
 * libidn2 behind libcurl 7.88 maps without the STD3 rules, so a full-width
 * "＠" or "／" in a label comes back as '@' or '/'. */
static bool idna_ldh(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.'))
            return false;
    return true;
}

/* The A-label form of domain[0, n), or NULL with e set. */
static char *idna_domain(const char *domain, size_t n, struct err *e)
{
    char *url = xasprintf("smtp://%.*s/", (int)n, domain);
    CURLU *u = curl_url();
    char *host = NULL;
    CURLUcode rc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_HOST, &host, CURLU_PUNYCODE);
    char *out = NULL;
    /* Without a UTF-8 locale curl hands the name back unchanged. Its error
     * codes say little here (7.88 reports every IDNA refusal as "out of
     * memory"), so the message does not repeat them. */
    if (rc == CURLUE_OK && host && idna_ldh(host))
        out = xstrdup(host);
    else
        err_set(e, EX_DATAERR,
                "domain %.*s has no valid ASCII form (IDNA): it cannot be sent; check "
                "the address",
                (int)n, domain);
    curl_free(host);
    curl_url_cleanup(u);
    free(url);
    return out;
}

int idna_mailbox(const char *text, char **out, struct err *e)
{
    *out = NULL;
    /* The address comes last, so its '@' is the last one (a quoted name may
     * hold one too, but before it). The domain ends at '>' or the end. */
    const char *at = strrchr(text, '@');
    if (at == NULL || at[1] == '[')
        return 0;
    const char *dom = at + 1;
    size_t n = strcspn(dom, "> \t");
    if (idna_ascii(dom, n))
        return 0;
    char *d = idna_domain(dom, n, e);
    if (d == NULL)
        return -1;
    *out = xasprintf("%.*s%s%s", (int)(dom - text), text, d, dom + n);
    free(d);
    return 0;
}

int idna_address(const char *addr, char **out, struct err *e)
{
    /* A bare address is the simplest mailbox text. */
    return idna_mailbox(addr, out, e);
}

int idna_message(struct message *m, idna_refused_fn refused, void *ctx, struct err *e)
{
    char **addrs = xcalloc(m->nrcpts + 1, sizeof *addrs);
    char **why = xcalloc(m->nrcpts + 1, sizeof *why); /* recipients without an ASCII form */
    char *reply_to = NULL;
    int rc = 0;
    for (size_t i = 0; i < m->nrcpts && rc == 0; i++) {
        struct err e1 = {0};
        if (m->rcpts[i].state != RCPT_PENDING ||
            idna_address(m->rcpts[i].addr, &addrs[i], &e1) == 0)
            continue;
        err_prefix(&e1, "%s recipient %zu", rcpt_kind_name(m->rcpts[i].kind), i + 1);
        if (refused == NULL) {
            *e = e1;
            rc = -1;
        } else {
            why[i] = xstrdup(e1.msg);
        }
    }
    if (rc == 0 && m->reply_to && (rc = idna_mailbox(m->reply_to, &reply_to, e)) != 0)
        err_prefix(e, "reply-to");
    /* Only now, when nothing can fail any more, is m changed. */
    for (size_t i = 0; i < m->nrcpts; i++) {
        if (rc == 0 && why[i]) {
            m->rcpts[i].state = RCPT_FAILED;
            refused(ctx, i, why[i]);
        }
        if (rc == 0 && addrs[i]) {
            free(m->rcpts[i].addr);
            m->rcpts[i].addr = addrs[i];
        } else {
            free(addrs[i]);
        }
        free(why[i]);
    }
    free(why);
    free(addrs);
    if (rc == 0 && reply_to) {
        free(m->reply_to);
        m->reply_to = reply_to;
    } else {
        free(reply_to);
    }
    return rc;
}
