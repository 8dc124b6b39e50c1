/*
 * config_impl — private to common/config*.c: the key table, the parsed but
 * not yet typed sections, and the helpers those files share.
 *
 * The flow: config_parse.c turns text into sections of raw values (grammar
 * errors only), config.c applies the table to build struct config (value
 * errors), config_validate.c checks what spans keys (transport kinds,
 * warnings), config_secret.c reads secrets.
 * Never: included outside common/config*.c; the public contract is config.h.
 */
#ifndef MAILSPOOL_CONFIG_IMPL_H
#define MAILSPOOL_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "config.h"

enum cfg_kind { CK_NONE = 0, CK_SPOOL, CK_DAEMON, CK_QUEUE, CK_PROFILE, CK_AREA, CK_COUNT };

enum cfg_type {
    CT_STRING,    /* UTF-8 text without control characters */
    CT_PATH,      /* a file name */
    CT_HOST,      /* host name or IP address, no scheme, no port */
    CT_ID,        /* 365Client, 365Tenant: they become part of a URL */
    CT_URL,       /* https:// base URL (http:// only on loopback, for tests) */
    CT_ADDR_BARE, /* local@domain, stored bare */
    CT_ADDR,      /* an address as a producer writes it, stored as written */
    CT_SECRET,    /* literal, file:PATH or credential:NAME; config_secret.c */
    CT_INT,       /* int within min..max */
    CT_DURATION,  /* int64_t seconds within min..max */
    CT_BOOL,
    CT_DATE,     /* YYYY-MM-DD, int64_t Unix time of 00:00 UTC */
    CT_LOGLEVEL, /* enum log_level */
    CT_AUTHREQ,  /* SSL | NIL; not stored, it selects the transport */
    CT_TLS,      /* enum smtp_tls */
};

/* One entry per key; the order of this enum is the order of the table. */
enum cfg_key_id {
    K_SPOOL_PATH,
    K_LOG_FILE,
    K_LOG_LEVEL,
    K_MAX_CONNECTIONS,
    K_SHUTDOWN_TIMEOUT,
    K_CONNECT_TIMEOUT,
    K_RESPONSE_TIMEOUT,
    K_LOW_SPEED_TIME,
    K_STATS_INTERVAL,
    K_RETRY_MIN,
    K_RETRY_MAX,
    K_LIFETIME,
    K_MAX_ATTEMPTS,
    K_KEEP_SENT,
    K_FROM_ADDRESS,
    K_FROM_DISPLAY_NAME,
    K_REPLY_TO,
    K_SMTP_HOST,
    K_SMTP_PORT,
    K_USERNAME,
    K_PASSWORT,
    K_SMTP_AUTH_REQ,
    K_SMTP_TLS,
    K_365_CLIENT,
    K_365_TENANT,
    K_365_SECRET,
    K_365_SECRET_EXPIRES,
    K_365_AUTHORITY_HOST,
    K_365_GRAPH_HOST,
    K_365_SAVE_TO_SENT,
    K_PROFILE_MAX_CONNECTIONS,
    K_RATE_LIMIT,
    K_CA_FILE,
    K_TLS_VERIFY,
    K_AREA_PROFILE,
    K_AREA_LIFETIME,
    K_COUNT
};

struct config_key {
    const char *name;
    const char *alias; /* or NULL */
    enum cfg_kind kind;
    enum cfg_type type;
    int64_t min, max; /* CT_INT, CT_DURATION */
    const char *def;  /* default as text, or NULL: none or computed */
    ptrdiff_t off;    /* into struct config, profile or area; -1: not stored */
    const char *help;
};

extern const struct config_key config_keys[K_COUNT];

/* A value as written; raw NULL: not given. An empty value counts as not
 * given (its default applies) but still as a duplicate. */
struct cfg_val {
    char *raw;
    int line;
};

struct cfg_section {
    enum cfg_kind kind;
    char *name; /* profile or area name; NULL for [spool], [daemon], [queue] */
    int line;
    struct cfg_val vals[K_COUNT];
};

struct cfg_file {
    struct cfg_section *secs;
    size_t nsecs;
};

/* config.c */
void config_diag(struct diags *d, const char *file, int line, bool warning, const char *profile,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
bool config_val_given(const struct cfg_section *s, enum cfg_key_id id);
int config_val_line(const struct cfg_section *s, enum cfg_key_id id);

/* config_parse.c: grammar errors go to d; returns -1 only on a read error. */
int config_parse_file(FILE *f, const char *path, struct cfg_file *cf, struct diags *d);
void config_file_free(struct cfg_file *cf);

/* config_table.c */
int config_key_find(enum cfg_kind kind, const char *name);
const char *config_key_suggest(enum cfg_kind kind, const char *name, bool *close);
size_t config_edit_distance(const char *a, const char *b);
const char *config_kind_title(enum cfg_kind kind);
enum cfg_kind config_kind_of_key(const char *name, enum cfg_kind not_this);
/* Parses raw for key k and stores it into base (struct config, profile or
 * area); on a bad value returns -1 and a malloc'ed reason with the fix. */
int config_value_store(const struct config_key *k, const char *raw, void *base, char **why);
int config_parse_date(const char *s, int64_t *out);
int config_parse_bool(const char *s, bool *out);
int config_parse_authreq(const char *s, bool *ssl);

/* config_validate.c */
/* Warns about Microsoft 365 profiles that share a mailbox. */
void config_validate_mailboxes(const struct config *c, struct diags *d);
void config_validate_profile(struct profile *p, const struct cfg_section *s, int flags,
                             struct diags *d);
void config_profile_fingerprint(struct profile *p, const struct cfg_section *s);

/* config_secret.c */
bool config_secret_is_literal(const char *raw);
/* Checks the form of a secret value and, with CONFIG_RESOLVE_SECRETS, reads
 * it; returns the secret (caller frees with config_secret_free) or NULL. */
char *config_secret_get(const struct profile *p, const struct cfg_section *s, enum cfg_key_id id,
                        int flags, struct diags *d);
void config_secret_free(char *secret);
/* Warns when a file readable by others holds a literal secret. */
void config_secret_check_mode(const char *path, const struct stat *st, const struct cfg_file *cf,
                              struct diags *d);

#endif
