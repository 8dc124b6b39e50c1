/*
 * address — parsing and checking e-mail addresses and header-bound strings.
 *
 * Owns: the accepted address grammar (a deliberately small subset of RFC 5322
 * and RFC 5321/6531: one mailbox, optionally named), strict UTF-8 checking,
 * and the CR/LF/NUL checks that keep header injection and SMTP smuggling out.
 * Never: resolves names, touches the network, or repairs input: anything
 * doubtful is refused with a reason, because whatever passes here ends up in
 * a header line or an SMTP command.
 *
 * Accepted:  a@b.example  <a@b.example>  Name <a@b.example>
 *            "Name, Jr." <a@b.example>   Bärbel Groß <b@example.org>
 *            Groß, Bärbel <b@example.org>   Dr. Müller (Buchhaltung) <m@x.example>
 *            (a name before '<' is taken as written: one field holds one
 *            address, so its ',' or '(' cannot start another address or a
 *            comment; the composer quotes it in the header)
 *            "quoted local"@b.example    a@[192.0.2.1]  a@[IPv6:2001:db8::1]
 *            UTF-8 in local parts and domains (RFC 6531), kept as written.
 * Refused:   groups, comments (outside a name), source routes, several
 *            addresses, '@' '"' '\\' in an unquoted name, control
 *            bytes, invalid UTF-8, '@' inside a quoted local part, local
 *            parts over 64 octets, domains over 255 or labels over 63 octets.
 */
#include "address.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOCAL_MAX 64
#define DOMAIN_MAX 255
#define LABEL_MAX 63
#define NAME_MAX_OCTETS 998

/* Length of the UTF-8 sequence at s (at most n bytes), 0 when invalid.
 * Strict: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else
        return 0;
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        /* Mail bodies are mostly ASCII: skip 8 such octets at a time (the
         * daemon checks every body it loads; octet by octet this was 4% of
         * its CPU on small messages). memcpy keeps the load aligned-safe. */
        while (len - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & UINT64_C(0x8080808080808080))
                break;
            i += 8;
        }
        if (i >= len)
            break;
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

bool header_safe(const char *s)
{
    if (s == NULL)
        return false;
    size_t len = strcspn(s, "\r\n");
    if (s[len] != '\0')
        return false;
    return utf8_valid(s, len);
}

/* RFC 5322 atext, plus every byte of a UTF-8 sequence (RFC 6531). */
static bool is_atext(unsigned char c)
{
    if (c >= 0x80)
        return true;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* A quoted local part: printable ASCII and spaces, quoted pairs allowed,
 * never '@' (libcurl and many servers split envelope addresses at the first
 * '@'). s points at the opening quote; returns its length or 0. */
static size_t quoted_local_len(const char *s, const char **why)
{
    size_t i = 1;
    for (;;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\0') {
            *why = "the quoted local part has no closing '\"'";
            return 0;
        }
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            i++;
            c = (unsigned char)s[i];
            if (c == '\0') {
                *why = "the quoted local part ends in '\\'";
                return 0;
            }
        }
        if (c == '@') {
            *why = "a quoted local part must not contain '@'";
            return 0;
        }
        if (c < 0x20 || c >= 0x7F) {
            *why = "a quoted local part may hold printable ASCII only";
            return 0;
        }
        i++;
    }
}

static const char *check_local(const char *s, size_t len)
{
    if (len == 0)
        return "the local part before '@' is empty";
    if (len > LOCAL_MAX)
        return "the local part is longer than 64 octets";
    if (s[0] == '"') {
        const char *why = NULL;
        size_t q = quoted_local_len(s, &why);
        if (q == 0)
            return why;
        if (q != len)
            return "text follows the quoted local part";
        if (q == 2)
            return "the quoted local part is empty";
        return NULL;
    }
    if (s[0] == '.' || s[len - 1] == '.')
        return "the local part starts or ends with '.'";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (s[i + 1] == '.')
                return "the local part has two dots in a row";
        } else if (c == ' ' || c == '\t') {
            return "an address must not contain spaces";
        } else if (!is_atext(c)) {
            return "the local part has a character that needs quoting";
        }
    }
    return NULL;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]". */
static const char *check_literal(const char *s, size_t len)
{
    char tmp[64];
    unsigned char bin[16];
    if (s[len - 1] != ']' || len - 2 >= sizeof tmp)
        return "the domain literal is malformed";
    memcpy(tmp, s + 1, len - 2);
    tmp[len - 2] = '\0';
    if (strncasecmp(tmp, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, tmp + 5, bin) == 1 ? NULL : "the IPv6 domain literal is invalid";
    return inet_pton(AF_INET, tmp, bin) == 1 ? NULL : "the IPv4 domain literal is invalid";
}

static const char *check_label(const char *s, size_t len)
{
    if (len == 0)
        return "the domain has an empty label (two dots in a row, or a leading or trailing dot)";
    if (len > LABEL_MAX)
        return "a domain label is longer than 63 octets";
    if (s[0] == '-' || s[len - 1] == '-')
        return "a domain label starts or ends with '-'";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = c >= 0x80 || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9');
        if (c == ' ' || c == '\t')
            return "an address must not contain spaces";
        if (!ok)
            return "the domain has a character other than letters, digits, '-' and '.'";
    }
    return NULL;
}

static const char *check_domain(const char *s, size_t len)
{
    if (len == 0)
        return "the domain after '@' is empty";
    if (len > DOMAIN_MAX)
        return "the domain is longer than 255 octets";
    if (s[0] == '[')
        return check_literal(s, len);
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            const char *why = check_label(s + start, i - start);
            if (why)
                return why;
            start = i + 1;
        }
    }
    return NULL;
}

/* Why the bare addr-spec s (len octets) is refused, or NULL when valid. */
static const char *check_addr_spec(const char *s, size_t len)
{
    if (len == 0)
        return "the address is empty";
    if (s[0] == '@' && memchr(s, ':', len))
        return "source routes (\"@host:...\") are not supported";
    if (memchr(s, '<', len) || memchr(s, '>', len))
        return "'<' and '>' do not pair up";
    size_t at;
    if (s[0] == '"') {
        const char *why = NULL;
        at = quoted_local_len(s, &why);
        if (at == 0)
            return why;
        if (at >= len || s[at] != '@')
            return "the address has no '@' after the quoted local part";
    } else {
        const char *p = memchr(s, '@', len);
        if (p == NULL)
            return "the address has no '@'";
        at = (size_t)(p - s);
        if (memchr(p + 1, '@', len - at - 1))
            return "the address has more than one '@'";
    }
    const char *why = check_local(s, at);
    if (why == NULL)
        why = check_domain(s + at + 1, len - at - 1);
    return why;
}

bool address_valid_addr(const char *addr)
{
    if (addr == NULL || !header_safe(addr))
        return false;
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
        if (*p < 0x20 || *p == 0x7F)
            return false;
    return check_addr_spec(addr, strlen(addr)) == NULL;
}

void address_clear(struct address *a)
{
    if (a == NULL)
        return;
    free(a->name);
    free(a->addr);
    a->name = NULL;
    a->addr = NULL;
}

bool text_shown(const char *in, char *shown, size_t size)
{
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)in;
    bool utf8 = utf8_valid(in, strlen(in));
    for (; *p && n + 1 < size; p++)
        shown[n++] = (*p < 0x20 || *p == 0x7F || (*p >= 0x80 && !utf8)) ? '?' : (char)*p;
    if (*p) /* cut: do not leave half a UTF-8 sequence in the message */
        while (n > 0 && !utf8_valid(shown, n))
            n--;
    shown[n] = '\0';
    return *p != '\0';
}

/* Fails with the field, a printable copy of the input and the reason. */
static int address_fail(struct err *e, const char *what, const char *in, const char *why)
{
    char shown[128];
    const char *more = text_shown(in, shown, sizeof shown) ? "..." : "";
    return err_set(e, EX_DATAERR, "%s: invalid address \"%s%s\": %s", what ? what : "address",
                   shown, more, why);
}

static bool is_space(char c)
{
    return c == ' ';
}

/* Unquotes a quoted display name at s into a new string; *end gets the
 * position after the closing quote. NULL with *why when malformed. */
static char *unquote_name(const char *s, const char **end, const char **why)
{
    struct {
        char *p;
        size_t n;
    } o = {xmalloc(strlen(s) + 1), 0};
    size_t i = 1;
    for (;; i++) {
        char c = s[i];
        if (c == '\0') {
            *why = "the quoted name has no closing '\"'";
            free(o.p);
            return NULL;
        }
        if (c == '"')
            break;
        if (c == '\\') {
            c = s[++i];
            if (c == '\0') {
                *why = "the quoted name ends in '\\'";
                free(o.p);
                return NULL;
            }
        }
        o.p[o.n++] = c;
    }
    o.p[o.n] = '\0';
    *end = s + i + 1;
    return o.p;
}

/* Why the unquoted display name s (len octets) is refused, or NULL. Names
 * may hold any text (SPEC 2.2): '.', ',', '(', ')', '[' and ']' are taken
 * literally ("J. Smith", "Groß, Bärbel", "Dr. Müller (Buchhaltung)"), as
 * the field holds one address. Refused: '@' (most likely a second address:
 * "a@x.example, B <b@y.example>"), ':' and ';' (group syntax), and '"' or
 * '\\' (quoting half a name). */
static const char *check_plain_name(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == ':' || c == ';')
            return "groups (\"name: a@b;\") are not supported";
        if (c == '"')
            return "a name must be either wholly quoted or not quoted at all";
        if (c != '\0' && strchr("<>@\\", c))
            return "the name has a special character; put the name in double quotes";
    }
    return NULL;
}

/* Where a refusal of a bare address is better explained by its shape. */
static const char *check_bare_shape(const char *s)
{
    bool q = false;
    bool colon = false;
    if (s[0] == '@') /* a source route; check_addr_spec says so */
        return NULL;
    for (const char *p = s; *p; p++) {
        if (*p == '"' && (p == s || p[-1] != '\\'))
            q = !q;
        if (q)
            continue;
        if (*p == '(' || *p == ')')
            return "comments \"(...)\" are not supported";
        if (*p == ':')
            colon = true;
        if (*p == ';' && colon)
            return "groups (\"name: a@b;\") are not supported";
        if (*p == ',')
            return "only one address is allowed";
        if (*p == '<' || *p == '>')
            return "'<' and '>' do not pair up";
    }
    return NULL;
}

/* The display name before the '<' at lt: wholly quoted or plain. *name gets
 * a copy, or NULL when there is none. */
static const char *angle_name(const char *s, const char *lt, char **name)
{
    const char *why = NULL;
    *name = NULL;
    if (s[0] == '"') {
        const char *after;
        *name = unquote_name(s, &after, &why);
        if (*name == NULL)
            return why;
        while (is_space(*after))
            after++;
        if (after != lt)
            why = "a name must be either wholly quoted or not quoted at all";
    } else {
        const char *end = lt;
        while (end > s && is_space(end[-1]))
            end--;
        why = check_plain_name(s, (size_t)(end - s));
        if (why == NULL && end > s)
            *name = xstrndup(s, (size_t)(end - s));
    }
    if (why == NULL && *name && strlen(*name) > NAME_MAX_OCTETS)
        why = "the display name is longer than 998 octets";
    if (why || (*name && (*name)[0] == '\0')) {
        free(*name);
        *name = NULL;
    }
    return why;
}

/* The addr-spec between the '<' at lt and its '>' (*gt), and nothing after. */
static const char *angle_addr(const char *lt, const char **gt)
{
    *gt = strchr(lt + 1, '>');
    if (*gt == NULL)
        return "'<' has no matching '>'";
    if (memchr(lt + 1, '<', (size_t)(*gt - lt - 1)))
        return "'<' and '>' do not pair up";
    const char *rest = *gt + 1;
    while (is_space(*rest))
        rest++;
    if (*rest == ',' || *rest == '<' || (*rest && strchr(rest, '@')))
        return "only one address is allowed";
    if (*rest == '(')
        return "comments \"(...)\" are not supported";
    if (*rest)
        return "unexpected text after '>'";
    return check_addr_spec(lt + 1, (size_t)(*gt - lt - 1));
}

/* "Name <addr>" or "<addr>": lt points at the '<'. */
static int parse_angle(const char *s, const char *lt, const char *what, const char *in,
                       struct address *out, struct err *e)
{
    char *name;
    const char *gt = NULL;
    const char *why = angle_name(s, lt, &name);
    if (why == NULL)
        why = angle_addr(lt, &gt);
    if (why) {
        free(name);
        return address_fail(e, what, in, why);
    }
    out->name = name;
    out->addr = xstrndup(lt + 1, (size_t)(gt - lt - 1));
    return 0;
}

/* Refuses what no part of an address may hold. */
static const char *input_problem(const char *in)
{
    size_t len = strlen(in);
    if (!utf8_valid(in, len))
        return "not valid UTF-8";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\r' || c == '\n')
            return "contains a line break (CR or LF)";
        if (c < 0x20 || c == 0x7F)
            return "contains a control character";
    }
    return NULL;
}

/* The '<' outside a leading quoted name, or NULL; why for an open quote. */
static const char *find_angle(const char *t, const char **why)
{
    if (t[0] != '"')
        return strchr(t, '<');
    const char *after = NULL;
    char *nm = unquote_name(t, &after, why);
    if (nm == NULL)
        return NULL;
    free(nm);
    return strchr(after, '<');
}

int address_parse(const char *in, const char *what, struct address *out, struct err *e)
{
    out->name = NULL;
    out->addr = NULL;
    if (in == NULL)
        return address_fail(e, what, "", "no address given");
    const char *why = input_problem(in);
    if (why)
        return address_fail(e, what, in, why);
    const char *s = in;
    while (is_space(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && is_space(s[n - 1]))
        n--;
    if (n == 0)
        return address_fail(e, what, in, "the address is empty");
    char *t = xstrndup(s, n);
    int rc = 0;
    const char *lt = find_angle(t, &why);
    if (lt != NULL) {
        rc = parse_angle(t, lt, what, in, out, e);
    } else {
        if (why == NULL)
            why = check_bare_shape(t);
        if (why == NULL)
            why = check_addr_spec(t, n);
        if (why)
            rc = address_fail(e, what, in, why);
        else
            out->addr = xstrdup(t);
    }
    free(t);
    return rc;
}
