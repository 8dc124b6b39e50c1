/*
 * config_table — the one table of mailspool.conf keys and the typed value
 * parsers it drives (durations, sizes, integers, booleans, dates, enums,
 * addresses, hosts, URLs).
 *
 * Every key lives here once: name, section, type, bounds, default, help.
 * Lookups are case-insensitive; unknown keys get the closest known key as a
 * suggestion (optimal string alignment distance, so a swapped pair of letters
 * counts as one edit).
 * Never: reads files, resolves secrets, or puts a secret into a message
 * (CT_SECRET values are never parsed here).
 */
#include "config_impl.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "address.h"
#include "xmalloc.h"

#define MIN_S 60
#define HOUR_S 3600
#define DAY_S 86400
#define NOOFF ((ptrdiff_t)-1)
#define C(f) ((ptrdiff_t)offsetof(struct config, f))
#define P(f) ((ptrdiff_t)offsetof(struct profile, f))
#define A(f) ((ptrdiff_t)offsetof(struct area, f))

/* clang-format off */
const struct config_key config_keys[K_COUNT] = {
    [K_SPOOL_PATH] = {"path", NULL, CK_SPOOL, CT_PATH, 0, 0, CONFIG_DEFAULT_SPOOL, C(spool_path),
        "the spool database"},
    [K_LOG_FILE] = {"log_file", NULL, CK_DAEMON, CT_PATH, 0, 0, NULL, C(log_file),
        "log file; empty: standard error"},
    [K_LOG_LEVEL] = {"log_level", NULL, CK_DAEMON, CT_LOGLEVEL, 0, 0, "info", C(log_level),
        "error | warn | info | debug"},
    [K_MAX_CONNECTIONS] = {"max_connections", NULL, CK_DAEMON, CT_INT, 1, 1024, "16",
        C(max_connections), "concurrent deliveries of all profiles together"},
    [K_SHUTDOWN_TIMEOUT] = {"shutdown_timeout", NULL, CK_DAEMON, CT_DURATION, 0, HOUR_S, "10s",
        C(shutdown_timeout), "how long in-flight transfers may finish on SIGTERM"},
    [K_CONNECT_TIMEOUT] = {"connect_timeout", NULL, CK_DAEMON, CT_DURATION, 1, 10 * MIN_S, "30s",
        C(connect_timeout), "time to set up a connection (TCP and TLS)"},
    [K_RESPONSE_TIMEOUT] = {"response_timeout", NULL, CK_DAEMON, CT_DURATION, 1, HOUR_S, "10m",
        C(response_timeout), "wait for a server reply; RFC 5321 allows 10m after the final '.'"},
    [K_LOW_SPEED_TIME] = {"low_speed_time", NULL, CK_DAEMON, CT_DURATION, 1, HOUR_S, "2m",
        C(low_speed_time), "abort a transfer that makes no progress for this long"},
    [K_STATS_INTERVAL] = {"stats_interval", NULL, CK_DAEMON, CT_DURATION, 1, 7 * DAY_S, "1d",
        C(stats_interval), "how often the stats summary line is logged"},
    [K_RETRY_MIN] = {"retry_min", NULL, CK_QUEUE, CT_DURATION, 1, DAY_S, "1m", C(retry_min),
        "first retry delay; doubles per attempt"},
    [K_RETRY_MAX] = {"retry_max", NULL, CK_QUEUE, CT_DURATION, 1, 30 * DAY_S, "1h", C(retry_max),
        "cap of the retry delay"},
    [K_LIFETIME] = {"lifetime", NULL, CK_QUEUE, CT_DURATION, MIN_S, 365 * DAY_S, "5d",
        C(lifetime), "a message not delivered by then fails as expired"},
    [K_MAX_ATTEMPTS] = {"max_attempts", NULL, CK_QUEUE, CT_INT, 0, 1000000, "0",
        C(max_attempts), "0: unlimited within the lifetime"},
    [K_KEEP_SENT] = {"keep_sent", NULL, CK_QUEUE, CT_DURATION, MIN_S, 3650 * DAY_S, "30d",
        C(keep_sent), "sent messages are purged after this"},
    [K_FROM_ADDRESS] = {"FromAddress", NULL, CK_PROFILE, CT_ADDR_BARE, 0, 0, NULL,
        P(from_address), "required; the sender address"},
    [K_FROM_DISPLAY_NAME] = {"FromDisplayName", NULL, CK_PROFILE, CT_STRING, 0, 0, NULL,
        P(from_display_name), "the sender's name (no effect with Microsoft 365)"},
    [K_REPLY_TO] = {"ReplyToAddress", NULL, CK_PROFILE, CT_ADDR, 0, 0, NULL, P(reply_to),
        "where replies go"},
    [K_SMTP_HOST] = {"SMTPHost", NULL, CK_PROFILE, CT_HOST, 0, 0, NULL, P(smtp_host),
        "SMTP server (host name or IP address)"},
    [K_SMTP_PORT] = {"SMTPPort", NULL, CK_PROFILE, CT_INT, 1, 65535, "25", P(smtp_port),
        "SMTP server port"},
    [K_USERNAME] = {"Username", NULL, CK_PROFILE, CT_STRING, 0, 0, NULL, P(username),
        "user name for SMTP AUTH"},
    [K_PASSWORT] = {"Passwort", "Password", CK_PROFILE, CT_SECRET, 0, 0, NULL, NOOFF,
        "password for SMTP AUTH: literal, file:PATH or credential:NAME"},
    [K_SMTP_AUTH_REQ] = {"SMTPAuthReq", NULL, CK_PROFILE, CT_AUTHREQ, 0, 0, NULL, NOOFF,
        "SSL: SMTP with authentication over TLS; NIL: anonymous SMTP"},
    [K_SMTP_TLS] = {"SMTPTLS", NULL, CK_PROFILE, CT_TLS, 0, 0, NULL, P(smtp_tls),
        "implicit | starttls | none"},
    [K_365_CLIENT] = {"365Client", NULL, CK_PROFILE, CT_ID, 0, 0, NULL, P(m365_client),
        "application (client) ID of the Entra app registration"},
    [K_365_TENANT] = {"365Tenant", NULL, CK_PROFILE, CT_ID, 0, 0, NULL, P(m365_tenant),
        "directory (tenant) ID"},
    [K_365_SECRET] = {"365Secret", NULL, CK_PROFILE, CT_SECRET, 0, 0, NULL, NOOFF,
        "client secret value: literal, file:PATH or credential:NAME"},
    [K_365_SECRET_EXPIRES] = {"365SecretExpires", NULL, CK_PROFILE, CT_DATE, 0, 0, NULL,
        P(m365_secret_expires), "expiry date of the client secret, YYYY-MM-DD"},
    [K_365_AUTHORITY_HOST] = {"365AuthorityHost", NULL, CK_PROFILE, CT_URL, 0, 0,
        "https://login.microsoftonline.com", P(m365_authority_host), "Entra ID endpoint"},
    [K_365_GRAPH_HOST] = {"365GraphHost", NULL, CK_PROFILE, CT_URL, 0, 0,
        "https://graph.microsoft.com", P(m365_graph_host), "Microsoft Graph endpoint"},
    [K_365_SAVE_TO_SENT] = {"365SaveToSentItems", NULL, CK_PROFILE, CT_BOOL, 0, 0, "yes",
        P(m365_save_to_sent), "keep a copy in Sent Items"},
    [K_PROFILE_MAX_CONNECTIONS] = {"MaxConnections", NULL, CK_PROFILE, CT_INT, 1, 256, "4",
        P(max_connections), "concurrent deliveries of this profile"},
    [K_RATE_LIMIT] = {"RateLimit", NULL, CK_PROFILE, CT_INT, 0, 100000, NULL, P(rate_limit),
        "messages per minute; 0: none (default 30 for Microsoft 365, 0 for SMTP)"},
    [K_CA_FILE] = {"CAFile", NULL, CK_PROFILE, CT_PATH, 0, 0, NULL, P(ca_file),
        "CA certificates to trust instead of the system's"},
    [K_TLS_VERIFY] = {"TLSVerify", NULL, CK_PROFILE, CT_BOOL, 0, 0, "yes", P(tls_verify),
        "verify the server's certificate"},
    [K_AREA_PROFILE] = {"profile", NULL, CK_AREA, CT_STRING, 0, 0, NULL, A(profile_name),
        "required; the profile that sends this area"},
    [K_AREA_LIFETIME] = {"lifetime", NULL, CK_AREA, CT_DURATION, MIN_S, 365 * DAY_S, NULL,
        A(lifetime), "overrides [queue] lifetime"},
};
/* clang-format on */

static const char *const kind_titles[CK_COUNT] = {
    [CK_NONE] = "(no section)", [CK_SPOOL] = "[spool]",          [CK_DAEMON] = "[daemon]",
    [CK_QUEUE] = "[queue]",     [CK_PROFILE] = "[profile NAME]", [CK_AREA] = "[area NAME]",
};

const char *config_kind_title(enum cfg_kind kind)
{
    return kind < CK_COUNT ? kind_titles[kind] : "?";
}

int config_key_find(enum cfg_kind kind, const char *name)
{
    for (int i = 0; i < K_COUNT; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->kind != kind)
            continue;
        if (strcasecmp(k->name, name) == 0 || (k->alias && strcasecmp(k->alias, name) == 0))
            return i;
    }
    return -1;
}

/* The section kind other than not_this that knows name, or CK_NONE. */
enum cfg_kind config_kind_of_key(const char *name, enum cfg_kind not_this)
{
    for (int i = 0; i < K_COUNT; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->kind != not_this &&
            (strcasecmp(k->name, name) == 0 || (k->alias && strcasecmp(k->alias, name) == 0)))
            return k->kind;
    }
    return CK_NONE;
}

/* Optimal string alignment distance, case-insensitive; long inputs are
 * capped because no key is longer than 32 characters. */
size_t config_edit_distance(const char *a, const char *b)
{
    enum { MAXL = 64 };
    size_t la = strnlen(a, MAXL), lb = strnlen(b, MAXL);
    size_t d[MAXL + 1][MAXL + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            size_t cost = ca != cb;
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

/* The closest key of kind (or its alias); *close tells whether it is close
 * enough to be a typo. NULL only for a kind without keys. */
const char *config_key_suggest(enum cfg_kind kind, const char *name, bool *close)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX;
    for (int i = 0; i < K_COUNT; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->kind != kind)
            continue;
        size_t dist = config_edit_distance(name, k->name);
        if (dist < bestd) {
            bestd = dist;
            best = k->name;
        }
        if (k->alias && (dist = config_edit_distance(name, k->alias)) < bestd) {
            bestd = dist;
            best = k->alias;
        }
    }
    size_t len = strlen(name);
    size_t limit = len < 4 ? 1 : len / 3 + 1;
    *close = best != NULL && bestd <= limit;
    return best;
}

/* Durations: a number with an optional s, m, h or d suffix (bare: seconds). */
int config_parse_duration(const char *s, int64_t *out)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0)
        return -1;
    int64_t mult = 1;
    switch (tolower((unsigned char)*end)) {
    case '\0':
        break;
    case 's':
        break;
    case 'm':
        mult = MIN_S;
        break;
    case 'h':
        mult = HOUR_S;
        break;
    case 'd':
        mult = DAY_S;
        break;
    default:
        return -1;
    }
    if (*end != '\0' && end[1] != '\0')
        return -1;
    if (v > INT64_MAX / mult)
        return -1;
    *out = (int64_t)v * mult;
    return 0;
}

/* Sizes: a number with an optional K, M or G suffix (powers of 1024). */
int config_parse_size(const char *s, int64_t *out)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0)
        return -1;
    int64_t mult = 1;
    switch (toupper((unsigned char)*end)) {
    case '\0':
        break;
    case 'K':
        mult = 1024;
        break;
    case 'M':
        mult = 1024 * 1024;
        break;
    case 'G':
        mult = 1024 * 1024 * 1024;
        break;
    default:
        return -1;
    }
    if (*end != '\0' && end[1] != '\0')
        return -1;
    if (v > INT64_MAX / mult)
        return -1;
    *out = (int64_t)v * mult;
    return 0;
}

/* YYYY-MM-DD, a real calendar day, as the Unix time of its 00:00 UTC. */
int config_parse_date(const char *s, int64_t *out)
{
    int y, m, d, n = 0;
    if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10)
        return -1;
    for (int i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? s[i] != '-' : !isdigit((unsigned char)s[i]))
            return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    time_t t = timegm(&tm);
    struct tm back;
    if (t == (time_t)-1 || gmtime_r(&t, &back) == NULL || back.tm_year != y - 1900 ||
        back.tm_mon != m - 1 || back.tm_mday != d)
        return -1;
    *out = (int64_t)t;
    return 0;
}

int config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

int config_parse_authreq(const char *s, bool *ssl)
{
    if (strcasecmp(s, "SSL") == 0)
        *ssl = true;
    else if (strcasecmp(s, "NIL") == 0)
        *ssl = false;
    else
        return -1;
    return 0;
}

/* "90s", "5m", "2h", "30d": the largest unit that divides exactly. */
static char *fmt_duration(int64_t v)
{
    if (v != 0 && v % DAY_S == 0)
        return xasprintf("%" PRId64 "d", v / DAY_S);
    if (v != 0 && v % HOUR_S == 0)
        return xasprintf("%" PRId64 "h", v / HOUR_S);
    if (v != 0 && v % MIN_S == 0)
        return xasprintf("%" PRId64 "m", v / MIN_S);
    return xasprintf("%" PRId64 "s", v);
}

static bool has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

static bool all_of(const char *s, const char *extra)
{
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr(extra, *p) == NULL)
            return false;
    return *s != '\0';
}

static bool url_loopback(const char *hostpart)
{
    static const char *const lo[] = {"127.0.0.1", "localhost", "[::1]"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(lo[i]);
        if (strncasecmp(hostpart, lo[i], n) == 0 &&
            (hostpart[n] == '\0' || hostpart[n] == ':' || hostpart[n] == '/'))
            return true;
    }
    return false;
}

static int store_text(const struct config_key *k, const char *raw, void *base, char **why)
{
    char **dst = (char **)((char *)base + k->off);
    if (has_control(raw) || !utf8_valid(raw, strlen(raw))) {
        *why = xstrdup("holds control characters or invalid UTF-8: write it as UTF-8 text");
        return -1;
    }
    switch (k->type) {
    case CT_HOST:
        if (strstr(raw, "://") != NULL) {
            *why = xasprintf("'%s' is a URL: give the host name or IP address only "
                             "(the port goes in SMTPPort)",
                             raw);
            return -1;
        }
        if (!all_of(raw, ".-_:[]")) {
            *why = xasprintf("'%s' is not a host name or IP address", raw);
            return -1;
        }
        /* One colon is host:port; IPv6 addresses have several. */
        const char *colon = strchr(raw, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL) {
            *why =
                xasprintf("'%s' holds a port: give the host alone and the port in SMTPPort", raw);
            return -1;
        }
        break;
    case CT_ID:
        if (!all_of(raw, ".-_") || strlen(raw) > 256) {
            *why = xasprintf("'%s' is not an ID: copy the GUID (or tenant domain) from the Entra "
                             "admin center",
                             raw);
            return -1;
        }
        break;
    case CT_URL: {
        const char *host = NULL;
        if (strncasecmp(raw, "https://", 8) == 0)
            host = raw + 8;
        else if (strncasecmp(raw, "http://", 7) == 0 && url_loopback(raw + 7))
            host = raw + 7;
        if (host == NULL || *host == '\0' || *host == '/' || strpbrk(raw, " \t?#") != NULL) {
            *why = xasprintf("'%s' is not an https:// URL (plain http:// only on loopback): "
                             "write e.g. https://login.microsoftonline.com",
                             raw);
            return -1;
        }
        size_t n = strlen(raw);
        while (n > 0 && raw[n - 1] == '/')
            n--;
        *dst = xstrndup(raw, n);
        return 0;
    }
    default:
        break;
    }
    *dst = xstrdup(raw);
    return 0;
}

static int store_address(const struct config_key *k, const char *raw, void *base, char **why)
{
    char **dst = (char **)((char *)base + k->off);
    struct address a = {0};
    struct err e = {0};
    if (address_parse(raw, k->name, &a, &e) < 0) {
        *why = xasprintf("%s: write it as user@example.org", e.msg);
        return -1;
    }
    if (k->type == CT_ADDR_BARE && a.name != NULL) {
        *why = xasprintf("'%s' carries a name: write the bare address (%s) and put the name in "
                         "FromDisplayName",
                         raw, a.addr);
        address_clear(&a);
        return -1;
    }
    *dst = xstrdup(k->type == CT_ADDR_BARE ? a.addr : raw);
    address_clear(&a);
    return 0;
}

static int store_number(const struct config_key *k, const char *raw, void *base, char **why)
{
    int64_t v;
    if (k->type == CT_DURATION) {
        if (config_parse_duration(raw, &v) < 0) {
            *why = xasprintf("'%s' is not a duration: write a number with s, m, h or d "
                             "(e.g. 90s, 5m, 2h, 5d)",
                             raw);
            return -1;
        }
    } else {
        char *end;
        errno = 0;
        long long ll = strtoll(raw, &end, 10);
        if (errno != 0 || end == raw || *end != '\0' ||
            !(isdigit((unsigned char)raw[0]) || raw[0] == '-')) {
            *why = xasprintf("'%s' is not a whole number", raw);
            return -1;
        }
        v = ll;
    }
    if (v < k->min || v > k->max) {
        if (k->type == CT_DURATION) {
            char *lo = fmt_duration(k->min), *hi = fmt_duration(k->max);
            *why = xasprintf("'%s' is out of range: use %s to %s", raw, lo, hi);
            free(lo);
            free(hi);
        } else {
            *why =
                xasprintf("'%s' is out of range: use %" PRId64 " to %" PRId64, raw, k->min, k->max);
        }
        return -1;
    }
    if (k->type == CT_DURATION)
        *(int64_t *)((char *)base + k->off) = v;
    else
        *(int *)((char *)base + k->off) = (int)v;
    return 0;
}

static int store_enum(const struct config_key *k, const char *raw, void *base, char **why)
{
    void *dst = k->off >= 0 ? (char *)base + k->off : NULL;
    bool b;
    switch (k->type) {
    case CT_BOOL:
        if (config_parse_bool(raw, &b) < 0) {
            *why = xasprintf("'%s' is not yes or no (also true/false, on/off, 1/0)", raw);
            return -1;
        }
        *(bool *)dst = b;
        return 0;
    case CT_DATE: {
        int64_t t;
        if (config_parse_date(raw, &t) < 0) {
            *why = xasprintf("'%s' is not a date: write YYYY-MM-DD, e.g. 2027-06-30", raw);
            return -1;
        }
        *(int64_t *)dst = t;
        return 0;
    }
    case CT_LOGLEVEL: {
        int l = log_level_parse(raw);
        if (l < 0) {
            *why = xasprintf("'%s' is not a log level: use error, warn, info or debug", raw);
            return -1;
        }
        *(enum log_level *)dst = (enum log_level)l;
        return 0;
    }
    case CT_AUTHREQ:
        if (config_parse_authreq(raw, &b) < 0) {
            *why = xasprintf("'%s' is neither SSL nor NIL: use SSL for SMTP with authentication, "
                             "NIL for anonymous SMTP",
                             raw);
            return -1;
        }
        return 0;
    case CT_TLS: {
        enum smtp_tls t;
        if (strcasecmp(raw, "implicit") == 0)
            t = SMTP_TLS_IMPLICIT;
        else if (strcasecmp(raw, "starttls") == 0)
            t = SMTP_TLS_STARTTLS;
        else if (strcasecmp(raw, "none") == 0)
            t = SMTP_TLS_NONE;
        else {
            *why = xasprintf("'%s' is not implicit, starttls or none", raw);
            return -1;
        }
        *(enum smtp_tls *)dst = t;
        return 0;
    }
    default:
        *why = xstrdup("internal error: unknown key type");
        return -1;
    }
}

int config_value_store(const struct config_key *k, const char *raw, void *base, char **why)
{
    *why = NULL;
    switch (k->type) {
    case CT_SECRET:
        return 0; /* config_secret.c; never parsed or quoted here */
    case CT_STRING:
    case CT_PATH:
    case CT_HOST:
    case CT_ID:
    case CT_URL:
        return store_text(k, raw, base, why);
    case CT_ADDR_BARE:
    case CT_ADDR:
        return store_address(k, raw, base, why);
    case CT_INT:
    case CT_DURATION:
        return store_number(k, raw, base, why);
    default:
        return store_enum(k, raw, base, why);
    }
}
