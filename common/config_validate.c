/*
 * config_validate — the rules that span keys of one profile: the seed's
 * three transport kinds with their required and forbidden keys, TLS and
 * rate-limit defaults that depend on the kind, the warnings, and the
 * profile's fingerprint.
 *
 * The kind is chosen by intent: 365* keys without SMTPHost, Username and
 * Passwort say Microsoft 365; else SMTPAuthReq = SSL or NIL says which SMTP;
 * else any 365* key says Microsoft 365. Against that kind every
 * missing and every forbidden key is one diag naming the profile and the key;
 * a profile that states no intent gets one diag listing, per kind, what is
 * missing and what is in the way.
 * Never: reads a secret's value into a message or a diag.
 */
#include "config_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "sha256.h"
#include "xmalloc.h"

#define DAY_S 86400
#define EXPIRY_WARN_DAYS 30

struct kind_rule {
    enum transport t;
    const char *title; /* for "must not be set for TITLE" */
    const char *name;  /* for "NAME needs ..." */
    const char *needs; /* the required keys, as prose */
    const char *fix;   /* what to do with a forbidden key */
    enum cfg_key_id need[4];
    enum cfg_key_id forbid[6];
};

/* K_COUNT ends each list. The seed's "Bitte stellen Sie sicher, dass
 * folgende Parameter nicht gesetzt sind" lists are the forbid columns. */
static const struct kind_rule rules[] = {
    {
        .t = TRANSPORT_SMTP_AUTH,
        .title = "SMTP with authentication (SMTPAuthReq = SSL)",
        .name = "SMTP with authentication",
        .needs = "SMTPHost, Username and Passwort",
        .fix = "remove it, or remove the SMTP keys to use Microsoft 365",
        .need = {K_SMTP_HOST, K_USERNAME, K_PASSWORT, K_COUNT},
        .forbid = {K_365_CLIENT, K_365_TENANT, K_365_SECRET, K_COUNT},
    },
    {
        .t = TRANSPORT_SMTP_ANON,
        .title = "anonymous SMTP (SMTPAuthReq = NIL)",
        .name = "anonymous SMTP",
        .needs = "SMTPHost",
        .fix = "remove it, or set SMTPAuthReq = SSL for SMTP with authentication",
        .need = {K_SMTP_HOST, K_COUNT},
        .forbid = {K_365_CLIENT, K_365_TENANT, K_365_SECRET, K_USERNAME, K_PASSWORT, K_COUNT},
    },
    {
        .t = TRANSPORT_GRAPH,
        .title = "Microsoft 365",
        .name = "Microsoft 365",
        .needs = "365Client, 365Tenant and 365Secret",
        .fix = "remove it: Microsoft 365 sends through Microsoft Graph over HTTPS and needs no "
               "server keys",
        .need = {K_365_CLIENT, K_365_TENANT, K_365_SECRET, K_COUNT},
        .forbid = {K_SMTP_HOST, K_SMTP_PORT, K_USERNAME, K_PASSWORT, K_SMTP_AUTH_REQ, K_COUNT},
    },
};

static const char *kname(enum cfg_key_id id)
{
    return config_keys[id].name;
}

static void perr(struct diags *d, const struct profile *p, int line, const char *text)
{
    config_diag(d, p->file, line, false, p->name, "%s", text);
}

/* Missing and forbidden keys of one kind, as "needs A, B and must not have C". */
static void describe_kind(struct buf *b, const struct kind_rule *r, const struct cfg_section *s)
{
    const char *auth = r->t == TRANSPORT_SMTP_AUTH   ? "SSL"
                       : r->t == TRANSPORT_SMTP_ANON ? "NIL"
                                                     : NULL;
    const char *sep = " needs ";
    buf_puts(b, r->name);
    if (auth) {
        buf_printf(b, "%sSMTPAuthReq = %s", sep, auth);
        sep = ", ";
    }
    for (size_t i = 0; r->need[i] != K_COUNT; i++) {
        if (!config_val_given(s, r->need[i])) {
            buf_printf(b, "%s%s", sep, kname(r->need[i]));
            sep = ", ";
        }
    }
    sep = strcmp(sep, ", ") == 0 ? " and must not have " : " must not have ";
    bool any = false;
    for (size_t i = 0; r->forbid[i] != K_COUNT; i++) {
        if (config_val_given(s, r->forbid[i])) {
            buf_printf(b, "%s%s", any ? ", " : sep, kname(r->forbid[i]));
            any = true;
        }
    }
}

static void no_kind_matches(struct profile *p, const struct cfg_section *s, struct diags *d)
{
    struct buf b = BUF_INIT;
    buf_puts(&b, "matches no transport: ");
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (i > 0)
            buf_puts(&b, "; ");
        describe_kind(&b, &rules[i], s);
    }
    buf_puts(&b, ". Set the keys of the transport you use (SMTPAuthReq = SSL or NIL for SMTP, "
                 "365Client, 365Tenant and 365Secret for Microsoft 365)");
    perr(d, p, s->line, b.data);
    buf_free(&b);
}

/*
 * Which kind the profile means; NULL when it does not say. SMTPAuthReq
 * decides, except on a profile with 365* keys and no SMTPHost, Username or
 * Passwort: that one means Microsoft 365 and SMTPAuthReq is the stray key.
 */
static const struct kind_rule *intent(const struct cfg_section *s, bool *bad_authreq)
{
    *bad_authreq = false;
    bool m365 = config_val_given(s, K_365_CLIENT) || config_val_given(s, K_365_TENANT) ||
                config_val_given(s, K_365_SECRET);
    bool smtp = config_val_given(s, K_SMTP_HOST) || config_val_given(s, K_USERNAME) ||
                config_val_given(s, K_PASSWORT);
    if (m365 && !smtp)
        return &rules[2];
    if (config_val_given(s, K_SMTP_AUTH_REQ)) {
        bool ssl;
        if (config_parse_authreq(s->vals[K_SMTP_AUTH_REQ].raw, &ssl) < 0) {
            *bad_authreq = true; /* reported with the value */
            return NULL;
        }
        return &rules[ssl ? 0 : 1];
    }
    return m365 ? &rules[2] : NULL;
}

static void check_kind(struct profile *p, const struct cfg_section *s, struct diags *d)
{
    bool bad;
    const struct kind_rule *r = intent(s, &bad);
    p->transport = TRANSPORT_NONE;
    if (r == NULL) {
        if (!bad)
            no_kind_matches(p, s, d);
        return;
    }
    bool ok = true;
    for (size_t i = 0; r->need[i] != K_COUNT; i++) {
        if (config_val_given(s, r->need[i]))
            continue;
        ok = false;
        char *t = xasprintf("key %s: missing: %s needs %s", kname(r->need[i]), r->title, r->needs);
        perr(d, p, s->line, t);
        free(t);
    }
    for (size_t i = 0; r->forbid[i] != K_COUNT; i++) {
        if (!config_val_given(s, r->forbid[i]))
            continue;
        ok = false;
        char *t =
            xasprintf("key %s: must not be set for %s: %s", kname(r->forbid[i]), r->title, r->fix);
        perr(d, p, config_val_line(s, r->forbid[i]), t);
        free(t);
    }
    if (ok)
        p->transport = r->t;
}

/* The kind the profile means, even when it is not yet valid. */
static enum transport intended(const struct cfg_section *s)
{
    bool bad;
    const struct kind_rule *r = intent(s, &bad);
    return r ? r->t : TRANSPORT_NONE;
}

static void check_tls(struct profile *p, const struct cfg_section *s, struct diags *d)
{
    bool given = config_val_given(s, K_SMTP_TLS);
    enum transport t = intended(s);
    if (t == TRANSPORT_SMTP_AUTH) {
        if (!given)
            p->smtp_tls = p->smtp_port == 465 ? SMTP_TLS_IMPLICIT : SMTP_TLS_STARTTLS;
        else if (p->smtp_tls == SMTP_TLS_NONE && strcasecmp(s->vals[K_SMTP_TLS].raw, "none") == 0)
            perr(d, p, config_val_line(s, K_SMTP_TLS),
                 "key SMTPTLS: none is not allowed with SMTPAuthReq = SSL (the password would "
                 "travel in plain text): use starttls or implicit, or remove SMTPTLS");
    } else if (t == TRANSPORT_SMTP_ANON && !given) {
        p->smtp_tls = SMTP_TLS_NONE;
    }
}

static void warn(struct diags *d, const struct profile *p, int line, const char *text)
{
    config_diag(d, p->file, line, true, p->name, "%s", text);
}

static void check_expiry(struct profile *p, const struct cfg_section *s, struct diags *d)
{
    if (!config_val_given(s, K_365_SECRET_EXPIRES) || p->m365_secret_expires == 0)
        return;
    int line = config_val_line(s, K_365_SECRET_EXPIRES);
    if (intended(s) != TRANSPORT_GRAPH) {
        perr(d, p, line,
             "key 365SecretExpires: only Microsoft 365 profiles have a client secret: remove it");
        return;
    }
    int64_t left = p->m365_secret_expires - (int64_t)time(NULL);
    const char *date = s->vals[K_365_SECRET_EXPIRES].raw;
    char *t = NULL;
    if (left <= 0)
        t = xasprintf("key 365SecretExpires: the client secret expired on %s: create a new one in "
                      "the Entra admin center under Certificates & secrets, then set 365Secret "
                      "and 365SecretExpires",
                      date);
    else if (left < (int64_t)EXPIRY_WARN_DAYS * DAY_S)
        t = xasprintf("key 365SecretExpires: the client secret expires on %s, in %lld days: "
                      "create a new one in the Entra admin center under Certificates & secrets, "
                      "then set 365Secret and 365SecretExpires",
                      date, (long long)((left + DAY_S - 1) / DAY_S));
    if (t)
        warn(d, p, line, t);
    free(t);
}

static void check_warnings(struct profile *p, const struct cfg_section *s, struct diags *d)
{
    enum transport t = intended(s);
    if (t == TRANSPORT_GRAPH && config_val_given(s, K_FROM_DISPLAY_NAME))
        warn(d, p, config_val_line(s, K_FROM_DISPLAY_NAME),
             "key FromDisplayName: has no effect with Microsoft 365: the mailbox's own name is "
             "used; set the name in Microsoft 365 or remove the key");
    if (config_val_given(s, K_TLS_VERIFY) && !p->tls_verify)
        warn(d, p, config_val_line(s, K_TLS_VERIFY),
             "key TLSVerify: no: server certificates are not checked, anyone on the path can "
             "read the mail and the credentials; use CAFile for a private CA instead");
    if (t == TRANSPORT_SMTP_AUTH && p->smtp_host &&
        strcasecmp(p->smtp_host, "smtp.office365.com") == 0)
        warn(d, p, config_val_line(s, K_SMTP_HOST),
             "key SMTPHost: smtp.office365.com with a password: Microsoft is switching Basic "
             "authentication for SMTP client submission off; use the 365Client, 365Tenant and "
             "365Secret keys (Microsoft Graph) instead");
    if (t == TRANSPORT_GRAPH && config_val_given(s, K_RATE_LIMIT) && p->rate_limit == 0)
        warn(d, p, config_val_line(s, K_RATE_LIMIT),
             "key RateLimit: 0 (no limit) with Microsoft 365: Exchange Online accepts 30 "
             "messages per minute per mailbox and throttles beyond; remove the key for 30");
    check_expiry(p, s, d);
}

/* Exchange Online throttles a mailbox at 30 messages a minute, but each
 * profile counts its own RateLimit: two Microsoft 365 profiles sending from
 * one mailbox add up and get throttled (429) instead of paced. */
void config_validate_mailboxes(const struct config *c, struct diags *d)
{
    for (size_t i = 0; i < c->nprofiles; i++) {
        const struct profile *a = &c->profiles[i];
        if (a->transport != TRANSPORT_GRAPH || a->from_address == NULL)
            continue;
        for (size_t j = 0; j < i; j++) {
            const struct profile *b = &c->profiles[j];
            if (b->transport != TRANSPORT_GRAPH || b->from_address == NULL ||
                strcasecmp(a->from_address, b->from_address) != 0)
                continue;
            char *t = xasprintf("sends from the mailbox %s like profile %s: each profile has its "
                                "own RateLimit, so together they may exceed what Exchange Online "
                                "accepts per mailbox and get throttled; use one profile per "
                                "mailbox",
                                a->from_address, b->name);
            warn(d, a, a->line, t);
            free(t);
            break;
        }
    }
}

static void check_files(struct profile *p, const struct cfg_section *s, int flags, struct diags *d)
{
    if (config_val_given(s, K_PASSWORT))
        p->password = config_secret_get(p, s, K_PASSWORT, flags, d);
    if (config_val_given(s, K_365_SECRET))
        p->m365_secret = config_secret_get(p, s, K_365_SECRET, flags, d);
    if ((flags & CONFIG_RESOLVE_SECRETS) && p->ca_file && access(p->ca_file, R_OK) != 0) {
        char *t = xasprintf("key CAFile: cannot read %s: %s: check the path and that the "
                            "mailspool user may read it",
                            p->ca_file, strerror(errno));
        perr(d, p, config_val_line(s, K_CA_FILE), t);
        free(t);
    }
}

void config_validate_profile(struct profile *p, const struct cfg_section *s, int flags,
                             struct diags *d)
{
    if (!config_val_given(s, K_FROM_ADDRESS))
        perr(d, p, s->line,
             "key FromAddress: missing: every profile needs its sender address "
             "(FromAddress = user@example.org)");
    check_kind(p, s, d);
    check_tls(p, s, d);
    if (!config_val_given(s, K_RATE_LIMIT))
        p->rate_limit = intended(s) == TRANSPORT_GRAPH ? 30 : 0;
    check_files(p, s, flags, d);
    check_warnings(p, s, d);
}

static void fp_str(struct sha256 *h, const char *label, const char *v)
{
    sha256_update(h, label, strlen(label) + 1);
    if (v)
        sha256_update(h, v, strlen(v) + 1);
    else
        sha256_update(h, "\xff", 1); /* unset differs from "" */
}

static void fp_int(struct sha256 *h, const char *label, long long v)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", v);
    fp_str(h, label, num);
}

/* Secrets go in as their resolved value when read, else as written (the
 * file: or credential: reference); only the digest leaves this function. */
void config_profile_fingerprint(struct profile *p, const struct cfg_section *s)
{
    struct sha256 h;
    sha256_init(&h);
    fp_str(&h, "name", p->name);
    fp_int(&h, "transport", p->transport);
    fp_str(&h, "from", p->from_address);
    fp_str(&h, "display", p->from_display_name);
    fp_str(&h, "reply-to", p->reply_to);
    fp_str(&h, "host", p->smtp_host);
    fp_int(&h, "port", p->smtp_port);
    fp_str(&h, "user", p->username);
    fp_str(&h, "password", p->password ? p->password : s->vals[K_PASSWORT].raw);
    fp_int(&h, "tls", p->smtp_tls);
    fp_str(&h, "client", p->m365_client);
    fp_str(&h, "tenant", p->m365_tenant);
    fp_str(&h, "secret", p->m365_secret ? p->m365_secret : s->vals[K_365_SECRET].raw);
    fp_int(&h, "expires", p->m365_secret_expires);
    fp_str(&h, "authority", p->m365_authority_host);
    fp_str(&h, "graph", p->m365_graph_host);
    fp_int(&h, "save-sent", p->m365_save_to_sent);
    fp_int(&h, "max-conn", p->max_connections);
    fp_int(&h, "rate", p->rate_limit);
    fp_str(&h, "ca-file", p->ca_file);
    fp_int(&h, "tls-verify", p->tls_verify);
    sha256_final_hex(&h, p->fingerprint);
    explicit_bzero(&h, sizeof h);
}
