/*
 * config — mailspool.conf: load, validate, report every problem at once.
 *
 * Owns: the INI grammar, the table of keys (name, type, bounds, default,
 * help), the seed's three transport kinds with their required and forbidden
 * keys, secret resolution (literal, file:PATH, credential:NAME), and the
 * resulting immutable struct config.
 * Never: logs, exits, or prints a secret. A config is built fresh and only
 * handed out when it is valid, so a reload can swap it atomically.
 */
#ifndef MAILSPOOL_CONFIG_H
#define MAILSPOOL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "log.h"

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/mailspool/mailspool.conf"
#define CONFIG_DEFAULT_SPOOL "/var/lib/mailspool/spool.db"

enum transport {
    TRANSPORT_NONE = 0,
    TRANSPORT_SMTP_AUTH, /* SMTPAuthReq = SSL */
    TRANSPORT_SMTP_ANON, /* SMTPAuthReq = NIL */
    TRANSPORT_GRAPH,     /* 365Client, 365Tenant, 365Secret */
};

enum smtp_tls { SMTP_TLS_NONE = 0, SMTP_TLS_STARTTLS, SMTP_TLS_IMPLICIT };

struct profile {
    char *name;
    const char *file; /* points into struct config */
    int line;         /* line of the [profile NAME] header */
    enum transport transport;

    char *from_address;      /* bare address */
    char *from_display_name; /* or NULL */
    char *reply_to;          /* ReplyToAddress as written, or NULL */

    char *smtp_host;
    int smtp_port; /* default 25 */
    char *username;
    char *password; /* resolved secret, or NULL */
    enum smtp_tls smtp_tls;

    char *m365_client;
    char *m365_tenant;
    char *m365_secret;           /* resolved secret, or NULL */
    int64_t m365_secret_expires; /* Unix time of 365SecretExpires (00:00 UTC), 0: unset */
    char *m365_authority_host;   /* default https://login.microsoftonline.com */
    char *m365_graph_host;       /* default https://graph.microsoft.com */
    bool m365_save_to_sent;

    int max_connections; /* default 4 */
    int rate_limit;      /* messages per minute; 0 none */
    char *ca_file;
    bool tls_verify;

    /* Digest of every setting (secrets included, as a hash only): two profiles
     * with the same name and fingerprint need no reconnect on reload. */
    char fingerprint[65];
};

struct area {
    char *name; /* "*" for the default area */
    char *profile_name;
    struct profile *profile; /* resolved; never NULL in a valid config */
    int64_t lifetime;        /* seconds; 0: [queue] lifetime */
    int line;
};

struct config {
    char *path;
    char *spool_path;
    int spool_path_line; /* of [spool] path; 0: the default */

    char *log_file; /* NULL: standard error */
    enum log_level log_level;
    int max_connections;      /* default 16 */
    int64_t shutdown_timeout; /* seconds, default 10 */
    /* Transfer timeouts ([daemon] connect_timeout = 30s, response_timeout = 10m,
     * low_speed_time = 2m): RFC 5321 allows 10 minutes for the reply to ".". */
    int64_t connect_timeout;
    int64_t response_timeout;
    int64_t low_speed_time;
    int64_t stats_interval; /* seconds between "stats" summary lines, default 1d */

    int64_t retry_min; /* seconds, default 60 */
    int64_t retry_max; /* seconds, default 3600 */
    int64_t lifetime;  /* seconds, default 5d */
    int max_attempts;  /* 0: unlimited */
    int64_t keep_sent; /* seconds, default 30d */

    struct profile *profiles;
    size_t nprofiles;
    struct area *areas;
    size_t nareas;
};

/* One problem found in a file: "FILE:LINE: [profile NAME: ]text". */
struct diag {
    char *file;
    int line;
    bool warning;
    char *profile; /* or NULL */
    char *text;
};

struct diags {
    struct diag *v;
    size_t n;
};

enum config_flags {
    CONFIG_RESOLVE_SECRETS = 1 << 0, /* read file:/credential: secrets (daemon); producers skip */
};

/*
 * Loads and validates path. Returns 0 and *out when there are no errors
 * (warnings may still be in d), else EX_CONFIG (or EX_NOINPUT when the file
 * is missing) with every problem in d and *out NULL.
 */
int config_load(const char *path, int flags, struct config **out, struct diags *d);
void config_free(struct config *c);
/* The [spool] path of the file at path (CONFIG_DEFAULT_SPOOL when it names
 * none), read even when other sections have errors, so that producers keep
 * enqueueing while an administrator fixes a profile; NULL when the file
 * cannot be read or its [spool] section itself has an error. */
char *config_spool_path(const char *path);

/* The area serving name: its own section, else [area *], else NULL. */
const struct area *config_area_find(const struct config *c, const char *name);
const struct profile *config_profile_find(const struct config *c, const char *name);
/* Lifetime of a message in area name (area's own, else [queue]). */
int64_t config_area_lifetime(const struct config *c, const char *name);

const char *transport_name(enum transport t); /* "smtp", "smtp", "graph", "none" */

/* Prints "FILE:LINE: [profile NAME: ]text" errors and "FILE:LINE: warning: [profile NAME: ]text"
 * warnings; returns the number of errors. */
size_t diags_print(const struct diags *d, FILE *out);
size_t diags_errors(const struct diags *d);
void diags_free(struct diags *d);

/* Durations "90", "90s", "5m", "2h", "5d" -> seconds; sizes "10K", "25M", "1G" -> bytes. */
int config_parse_duration(const char *s, int64_t *out);
int config_parse_size(const char *s, int64_t *out);

#endif
