/*
 * test_config — mailspool.conf: grammar and comments, the key table
 * (case-insensitive, alias, suggestions), typed values, the seed's transport
 * kinds, secrets (literal, file:, credential:), diag format, fingerprints.
 * Each test writes its files into a private mkdtemp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "xmalloc.h"

struct fx {
    char dir[64];
    struct diags d;
    struct config *c;
};

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/test_config.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    unsetenv("CREDENTIALS_DIRECTORY");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    config_free(f->c);
    diags_free(&f->d);
    char *cmd = xasprintf("rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Writes text to DIR/name with mode; returns the path (caller frees). */
static char *write_file(struct fx *f, const char *name, const char *text, mode_t mode)
{
    char *path = xasprintf("%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

/* Loads text as a 0600 config; returns config_load's code. */
static int load(struct fx *f, const char *text, int flags)
{
    config_free(f->c);
    f->c = NULL;
    diags_free(&f->d);
    char *path = write_file(f, "mailspool.conf", text, 0600);
    int rc = config_load(path, flags, &f->c, &f->d);
    free(path);
    return rc;
}

/* The diags as printed, for substring checks. */
static char *printed(const struct diags *d)
{
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    diags_print(d, m);
    fclose(m);
    return out;
}

static void assert_printed(struct fx *f, const char *needle)
{
    char *out = printed(&f->d);
    if (strstr(out, needle) == NULL)
        fail_msg("wanted \"%s\" in:\n%s", needle, out);
    free(out);
}

#define RELAY                                                                                      \
    "[profile relay]\nFromAddress = noreply@airport.example\nSMTPHost = 10.1.2.3\n"                \
    "SMTPAuthReq = NIL\n"

static const char *seed_conf = "[spool]\n"
                               "path = /var/lib/mailspool/test.db\n"
                               "\n"
                               "[daemon]\n"
                               "log_file = /var/log/ms.log   # empty: standard error\n"
                               "log_level = debug\n"
                               "max_connections = 8\n"
                               "shutdown_timeout = 2m\n"
                               "connect_timeout = 5\nresponse_timeout = 1m\nlow_speed_time = 20s\n"
                               "[queue]\n"
                               "retry_min = 30s\n"
                               "retry_max = 2h\n"
                               "lifetime = 3d\n"
                               "max_attempts = 7\n"
                               "keep_sent = 10d\n"
                               "[profile billing]\n"
                               "FromAddress     = rechnung@airport.example\n"
                               "FromDisplayName = Flughafen Musterstadt – Buchhaltung\n"
                               "ReplyToAddress  = Buchhaltung <buchhaltung@airport.example>\n"
                               "SMTPHost        = smtp.provider.example\n"
                               "SMTPPort        = 587\n"
                               "Username        = rechnung@airport.example\n"
                               "Passwort        = file:/etc/mailspool/secrets/billing\n"
                               "SMTPAuthReq     = SSL\n"
                               "[profile ppr]\n"
                               "FromAddress = ppr@airport.example\n"
                               "365Client   = 11111111-2222-3333-4444-555555555555\n"
                               "365Tenant   = 66666666-7777-8888-9999-000000000000\n"
                               "365Secret   = credential:ppr-secret\n"
                               "365SecretExpires = 2099-06-30\n" RELAY "[area invoice]\n"
                               "profile = billing\n"
                               "[area ppr]\n"
                               "profile  = ppr\n"
                               "lifetime = 6h ; slot\n"
                               "[area *]\n"
                               "profile = relay\n";

static void test_seed_example(void **state)
{
    struct fx *f = *state;
    assert_int_equal(load(f, seed_conf, 0), 0);
    struct config *c = f->c;
    assert_int_equal(diags_errors(&f->d), 0);
    assert_string_equal(c->spool_path, "/var/lib/mailspool/test.db");
    assert_string_equal(c->log_file, "/var/log/ms.log");
    assert_int_equal(c->log_level, LL_DEBUG);
    assert_int_equal(c->max_connections, 8);
    assert_int_equal(c->shutdown_timeout, 120);
    assert_int_equal(c->connect_timeout, 5);
    assert_int_equal(c->response_timeout, 60);
    assert_int_equal(c->low_speed_time, 20);
    assert_int_equal(c->retry_min, 30);
    assert_int_equal(c->retry_max, 7200);
    assert_int_equal(c->lifetime, 3 * 86400);
    assert_int_equal(c->max_attempts, 7);
    assert_int_equal(c->keep_sent, 10 * 86400);
    assert_int_equal(c->nprofiles, 3);

    const struct profile *b = config_profile_find(c, "billing");
    assert_non_null(b);
    assert_int_equal(b->transport, TRANSPORT_SMTP_AUTH);
    assert_string_equal(b->from_address, "rechnung@airport.example");
    assert_string_equal(b->from_display_name, "Flughafen Musterstadt – Buchhaltung");
    assert_string_equal(b->reply_to, "Buchhaltung <buchhaltung@airport.example>");
    assert_int_equal(b->smtp_port, 587);
    assert_int_equal(b->smtp_tls, SMTP_TLS_STARTTLS);
    assert_null(b->password); /* no CONFIG_RESOLVE_SECRETS: the file is not touched */
    assert_int_equal(b->rate_limit, 0);
    assert_int_equal(b->max_connections, 4);
    assert_true(b->tls_verify);
    assert_int_equal(b->line, 18);

    const struct profile *p = config_profile_find(c, "ppr");
    assert_int_equal(p->transport, TRANSPORT_GRAPH);
    assert_int_equal(p->rate_limit, 30);
    assert_true(p->m365_save_to_sent);
    assert_string_equal(p->m365_authority_host, "https://login.microsoftonline.com");
    assert_string_equal(p->m365_graph_host, "https://graph.microsoft.com");
    assert_int_equal(p->m365_secret_expires, 4086460800); /* 2099-06-30T00:00:00Z */
    assert_null(p->m365_secret);

    const struct profile *r = config_profile_find(c, "relay");
    assert_int_equal(r->transport, TRANSPORT_SMTP_ANON);
    assert_int_equal(r->smtp_port, 25);
    assert_int_equal(r->smtp_tls, SMTP_TLS_NONE);
    assert_null(config_profile_find(c, "nope"));

    assert_string_equal(transport_name(b->transport), "smtp");
    assert_string_equal(transport_name(r->transport), "smtp");
    assert_string_equal(transport_name(p->transport), "graph");
    assert_string_equal(transport_name(TRANSPORT_NONE), "none");
}

static void test_defaults_and_area_find(void **state)
{
    struct fx *f = *state;
    assert_int_equal(load(f, RELAY "[area border]\nprofile = relay\nlifetime = 1h\n", 0), 0);
    struct config *c = f->c;
    assert_string_equal(c->spool_path, CONFIG_DEFAULT_SPOOL);
    assert_null(c->log_file);
    assert_int_equal(c->log_level, LL_INFO);
    assert_int_equal(c->max_connections, 16);
    assert_int_equal(c->shutdown_timeout, 10);
    assert_int_equal(c->connect_timeout, 30);
    assert_int_equal(c->response_timeout, 600);
    assert_int_equal(c->low_speed_time, 120);
    assert_int_equal(c->retry_min, 60);
    assert_int_equal(c->retry_max, 3600);
    assert_int_equal(c->lifetime, 5 * 86400);
    assert_int_equal(c->max_attempts, 0);
    assert_int_equal(c->keep_sent, 30 * 86400);
    /* No [area *]: an unknown area has no profile and the queue's lifetime. */
    assert_non_null(config_area_find(c, "border"));
    assert_null(config_area_find(c, "invoice"));
    assert_int_equal(config_area_lifetime(c, "border"), 3600);
    assert_int_equal(config_area_lifetime(c, "invoice"), 5 * 86400);

    assert_int_equal(load(f, seed_conf, 0), 0);
    const struct area *a = config_area_find(f->c, "invoice");
    assert_string_equal(a->name, "invoice");
    assert_string_equal(a->profile->name, "billing");
    a = config_area_find(f->c, "reservation");
    assert_string_equal(a->name, "*");
    assert_string_equal(a->profile->name, "relay");
    assert_int_equal(config_area_lifetime(f->c, "ppr"), 6 * 3600);
    assert_int_equal(config_area_lifetime(f->c, "reservation"), 3 * 86400);
}

static void test_comments(void **state)
{
    struct fx *f = *state;
    const char *text = "\xef\xbb\xbf# a comment after a byte order mark\n"
                       "   ; an indented comment\n"
                       "\t# a tab-indented comment\n"
                       "[profile relay] # trailing comment on a header\r\n"
                       "FromAddress = noreply@airport.example\t; tab then comment\r\n"
                       "FromDisplayName = Team#1;A   # only this is a comment\n"
                       "Username = \n"
                       "SMTPHost    =   10.1.2.3   \n"
                       "SMTPAuthReq = NIL ;comment\n"
                       "[area *]\nprofile = relay\n";
    assert_int_equal(load(f, text, 0), 0);
    const struct profile *p = config_profile_find(f->c, "relay");
    assert_string_equal(p->from_address, "noreply@airport.example");
    assert_string_equal(p->from_display_name, "Team#1;A");
    assert_string_equal(p->smtp_host, "10.1.2.3");
    assert_null(p->username); /* empty value: not set */
    assert_int_equal(p->transport, TRANSPORT_SMTP_ANON);
}

static void test_durations_and_sizes(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(config_parse_duration("90", &v), 0);
    assert_int_equal(v, 90);
    assert_int_equal(config_parse_duration("90s", &v), 0);
    assert_int_equal(v, 90);
    assert_int_equal(config_parse_duration("5m", &v), 0);
    assert_int_equal(v, 300);
    assert_int_equal(config_parse_duration("2h", &v), 0);
    assert_int_equal(v, 7200);
    assert_int_equal(config_parse_duration("5d", &v), 0);
    assert_int_equal(v, 432000);
    assert_int_equal(config_parse_duration("0", &v), 0);
    assert_int_equal(v, 0);
    const char *bad[] = {"", "s", "-5m", "5x", "5 m", "5ms", "1h30m", " 5", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(config_parse_duration(bad[i], &v), -1);
    assert_int_equal(config_parse_duration("9223372036854775807d", &v), -1);

    assert_int_equal(config_parse_size("512", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(config_parse_size("10K", &v), 0);
    assert_int_equal(v, 10240);
    assert_int_equal(config_parse_size("25M", &v), 0);
    assert_int_equal(v, 25 * 1024 * 1024);
    assert_int_equal(config_parse_size("1G", &v), 0);
    assert_int_equal(v, 1073741824);
    const char *badsz[] = {"", "K", "1T", "-1K", "1KB", "1.5M"};
    for (size_t i = 0; i < sizeof badsz / sizeof badsz[0]; i++)
        assert_int_equal(config_parse_size(badsz[i], &v), -1);
}

static void test_keys_case_insensitive_and_alias(void **state)
{
    struct fx *f = *state;
    const char *text = "[SPOOL]\nPATH = /x/spool.db\n"
                       "[Daemon]\nLOG_LEVEL = Warn\n"
                       "[profile mixed]\n"
                       "fromaddress = a@example.org\n"
                       "smtphost = mail.example.org\n"
                       "USERNAME = a\n"
                       "password = literal\n"
                       "smtpauthreq = ssl\n"
                       "smtpport = 465\n"
                       "tlsverify = On\n"
                       "[area *]\nPROFILE = mixed\n";
    assert_int_equal(load(f, text, CONFIG_RESOLVE_SECRETS), 0);
    assert_string_equal(f->c->spool_path, "/x/spool.db");
    assert_int_equal(f->c->log_level, LL_WARN);
    const struct profile *p = config_profile_find(f->c, "mixed");
    assert_int_equal(p->transport, TRANSPORT_SMTP_AUTH);
    assert_string_equal(p->password, "literal");
    assert_int_equal(p->smtp_tls, SMTP_TLS_IMPLICIT); /* SSL on 465 */

    /* Passwort and its alias Password are one key: both given is a duplicate. */
    assert_int_equal(load(f,
                          "[profile p]\nFromAddress = a@example.org\nSMTPHost = h\nUsername = u\n"
                          "Passwort = a\nPassword = b\nSMTPAuthReq = SSL\n",
                          0),
                     EX_CONFIG);
    assert_printed(f, "mailspool.conf:6: profile p: key Passwort: given twice (first on line 5)");
}

static void test_unknown_key_suggestion(void **state)
{
    struct fx *f = *state;
    assert_int_equal(load(f,
                          "[profile relay]\nFromAddress = a@example.org\nSMTPHots = h\n"
                          "SMTPAuthReq = NIL\nsmtphost = h\nfrmaddress = x\nmax_connections = 3\n"
                          "Gibberish = 1\n[daemon]\nlifetime = 5d\n[quue]\nx = y\n"
                          "[profile p2]\nKennwort = x\n",
                          0),
                     EX_CONFIG);
    assert_null(f->c);
    assert_printed(f, "mailspool.conf:3: profile relay: unknown key 'SMTPHots'; did you mean "
                      "'SMTPHost'?");
    assert_printed(f, "mailspool.conf:6: profile relay: unknown key 'frmaddress'; did you mean "
                      "'FromAddress'?");
    assert_printed(f, ":7: profile relay: unknown key 'max_connections'; did you mean "
                      "'MaxConnections'?");
    /* Far from every key: still the closest one (SPEC 3), not as a typo. */
    assert_printed(f, ":8: profile relay: unknown key 'Gibberish' in [profile NAME]; the closest "
                      "known key is '");
    assert_printed(f, ":14: profile p2: unknown key 'Kennwort' in [profile NAME]; the closest "
                      "known key is 'Passwort'");
    assert_printed(f, ":10: key 'lifetime' does not belong in [daemon]: move it to [queue]");
    assert_printed(f, ":11: unknown section [quue]; did you mean [queue]?");
    /* Keys of an unknown section are not reported again. */
    char *out = printed(&f->d);
    assert_null(strstr(out, ":12:"));
    free(out);
}

static void test_grammar_errors(void **state)
{
    struct fx *f = *state;
    assert_int_equal(load(f,
                          "orphan = 1\n" RELAY "just words\n[profile relay]\n[area]\n"
                          "[area two words]\n[spool x]\n[spool\n= value\n[queue]\n[queue]\n",
                          0),
                     EX_CONFIG);
    assert_printed(f, ":1: key 'orphan' outside of any section");
    assert_printed(f, ":6: profile relay: malformed line");
    assert_printed(f, ":7: profile relay: section [profile relay] appears twice (first on line 2)");
    assert_printed(f, ":8: [area]: area name must be");
    assert_printed(f, ":9: [area two words]: area name must be");
    assert_printed(f, ":10: [spool x]: section [spool] takes no name");
    assert_printed(f, ":11: malformed section header");
    assert_printed(f, ":12: malformed line");
    assert_printed(f, ":14: section [queue] appears twice (first on line 13)");
}

static void test_bad_values(void **state)
{
    struct fx *f = *state;
    assert_int_equal(load(f,
                          "[daemon]\nlog_level = loud\nmax_connections = 0\nshutdown_timeout = "
                          "5x\n[queue]\nretry_min = 2h\nretry_max = 1h\n"
                          "[profile relay]\nFromAddress = not-an-address\nSMTPHost = h\n"
                          "SMTPAuthReq = NIL\nSMTPPort = 70000\nTLSVerify = maybe\n"
                          "SMTPTLS = sometimes\nRateLimit = x\n365AuthorityHost = ftp://x\n"
                          "[area a]\nprofile = relay\nlifetime = 0\n",
                          0),
                     EX_CONFIG);
    assert_printed(f, ":2: key log_level: 'loud' is not a log level");
    assert_printed(f, ":3: key max_connections: '0' is out of range: use 1 to 1024");
    assert_printed(f, ":4: key shutdown_timeout: '5x' is not a duration");
    assert_printed(f, ":6: key retry_min: 7200s is larger than retry_max (3600s)");
    assert_printed(f, ":9: profile relay: key FromAddress:");
    assert_printed(f, ":12: profile relay: key SMTPPort: '70000' is out of range: use 1 to 65535");
    assert_printed(f, ":13: profile relay: key TLSVerify: 'maybe' is not yes or no");
    assert_printed(f, ":14: profile relay: key SMTPTLS: 'sometimes' is not implicit, starttls");
    assert_printed(f, ":15: profile relay: key RateLimit: 'x' is not a whole number");
    assert_printed(f, ":16: profile relay: key 365AuthorityHost: 'ftp://x' is not an https:// URL");
    assert_printed(f, ":19: area a: key lifetime: '0' is out of range: use 1m to 365d");
    assert_int_equal(load(f,
                          "[profile relay]\nFromAddress = a@example.org\nSMTPHost = h.example:587\n"
                          "SMTPAuthReq = NIL\n",
                          0),
                     EX_CONFIG);
    assert_printed(f, ":3: profile relay: key SMTPHost: 'h.example:587' holds a port");
}

static void test_booleans_and_dates(void **state)
{
    struct fx *f = *state;
    const char *yes[] = {"yes", "true", "on", "1", "YES"}, *no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 5 + 4; i++) {
        char *text = xasprintf(RELAY "TLSVerify = %s\n[area *]\nprofile = relay\n",
                               i < 5 ? yes[i] : no[i - 5]);
        assert_int_equal(load(f, text, 0), 0);
        assert_int_equal(f->c->profiles[0].tls_verify, i < 5);
        free(text);
    }
    const char *bad[] = {"2027-02-30", "2027-6-30", "30.06.2027", "2027-06-30x"};
    for (size_t i = 0; i < 4; i++) {
        char *text = xasprintf("[profile m]\nFromAddress = a@example.org\n365Client = c\n"
                               "365Tenant = t\n365Secret = s\n365SecretExpires = %s\n",
                               bad[i]);
        assert_int_equal(load(f, text, 0), EX_CONFIG);
        assert_printed(f, "profile m: key 365SecretExpires: '");
        assert_printed(f, "is not a date: write YYYY-MM-DD");
        free(text);
    }
}

static void test_urls(void **state)
{
    struct fx *f = *state;
    const char *m365 = "[profile m]\nFromAddress = a@example.org\n365Client = c\n365Tenant = "
                       "t.onmicrosoft.com\n365Secret = s\n[area *]\nprofile = m\n";
    char *text = xasprintf("%s365AuthorityHost = http://127.0.0.1:8443/\n"
                           "365GraphHost = https://graph.microsoft.us//\n",
                           m365);
    /* Keys after [area *] belong to the area: put them in the profile. */
    char *fixed = xasprintf("[profile m]\n365AuthorityHost = http://127.0.0.1:8443/\n"
                            "365GraphHost = https://graph.microsoft.us//\n%s",
                            m365 + strlen("[profile m]\n"));
    assert_int_equal(load(f, text, 0), EX_CONFIG);
    assert_printed(f, "key '365AuthorityHost' does not belong in [area NAME]: move it to "
                      "[profile NAME]");
    assert_int_equal(load(f, fixed, 0), 0);
    assert_string_equal(f->c->profiles[0].m365_authority_host, "http://127.0.0.1:8443");
    assert_string_equal(f->c->profiles[0].m365_graph_host, "https://graph.microsoft.us");
    assert_string_equal(f->c->profiles[0].m365_tenant, "t.onmicrosoft.com");
    free(text);
    free(fixed);
    /* Plain http off loopback would send the client secret in clear text. */
    assert_int_equal(load(f,
                          "[profile m]\nFromAddress = a@example.org\n365Client = c\n"
                          "365Tenant = t\n365Secret = s\n365GraphHost = http://graph.example\n"
                          "365Client = x\n365Tenant = a/b\n",
                          0),
                     EX_CONFIG);
    assert_printed(f, ":6: profile m: key 365GraphHost: 'http://graph.example' is not an "
                      "https:// URL");
    assert_printed(f, ":7: profile m: key 365Client: given twice (first on line 3)");
}

static void test_transport_rules(void **state)
{
    struct fx *f = *state;
    /* Microsoft 365 with an SMTP key: the key is named on its own line. */
    assert_int_equal(load(f,
                          "[profile m]\nFromAddress = a@example.org\n365Client = c\n365Tenant = t\n"
                          "365Secret = s\nSMTPPort = 587\nUsername = u\n",
                          0),
                     EX_CONFIG);
    assert_printed(f, ":6: profile m: key SMTPPort: must not be set for Microsoft 365");
    assert_printed(f, ":7: profile m: key Username: must not be set for Microsoft 365");
    /* A stray SMTPAuthReq on a Microsoft 365 profile is the key at fault. */
    assert_int_equal(load(f,
                          "[profile m]\nFromAddress = a@example.org\n365Client = c\n365Tenant = t\n"
                          "365Secret = s\nSMTPAuthReq = NIL\n",
                          0),
                     EX_CONFIG);
    assert_printed(f, ":6: profile m: key SMTPAuthReq: must not be set for Microsoft 365");
    assert_int_equal(diags_errors(&f->d), 1);
    /* Anonymous with Passwort; missing SMTPHost. */
    assert_int_equal(
        load(f, "[profile a]\nFromAddress = a@example.org\nSMTPAuthReq = NIL\nPasswort = x\n", 0),
        EX_CONFIG);
    assert_printed(f, ":1: profile a: key SMTPHost: missing: anonymous SMTP (SMTPAuthReq = NIL)");
    assert_printed(f, ":4: profile a: key Passwort: must not be set for anonymous SMTP");
    /* No intent: every kind says what it lacks; FromAddress is missing too. */
    assert_int_equal(load(f, "[profile n]\nSMTPHost = h\n", 0), EX_CONFIG);
    assert_printed(f, ":1: profile n: key FromAddress: missing");
    assert_printed(f, ":1: profile n: matches no transport: SMTP with authentication needs "
                      "SMTPAuthReq = SSL, Username, Passwort; anonymous SMTP needs SMTPAuthReq "
                      "= NIL; Microsoft 365 needs 365Client, 365Tenant, 365Secret and must not "
                      "have SMTPHost");
    /* SSL with SMTPTLS = none. */
    assert_int_equal(load(f,
                          "[profile s]\nFromAddress = a@example.org\nSMTPHost = h\nUsername = u\n"
                          "Passwort = p\nSMTPAuthReq = SSL\nSMTPTLS = none\n",
                          0),
                     EX_CONFIG);
    assert_printed(f, ":7: profile s: key SMTPTLS: none is not allowed with SMTPAuthReq = SSL");
    /* NIL may ask for TLS. */
    assert_int_equal(load(f, RELAY "SMTPTLS = starttls\n[area *]\nprofile = relay\n", 0), 0);
    assert_int_equal(f->c->profiles[0].smtp_tls, SMTP_TLS_STARTTLS);
    /* An area naming a missing profile. */
    assert_int_equal(load(f, RELAY "[area x]\nprofile = nope\n", 0), EX_CONFIG);
    assert_printed(f, ":6: area x: key profile: there is no [profile nope]");
}

static void test_warnings(void **state)
{
    struct fx *f = *state;
    time_t soon = time(NULL) + 10 * 86400;
    struct tm tm;
    gmtime_r(&soon, &tm);
    char date[16];
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    char *text =
        xasprintf("[profile m]\nFromAddress = a@example.org\nFromDisplayName = X\n"
                  "365Client = c\n365Tenant = t\n365Secret = s\nRateLimit = 0\n"
                  "TLSVerify = no\n365SecretExpires = %s\n"
                  "[profile o]\nFromAddress = a@example.org\nSMTPHost = SMTP.office365.com\n"
                  "Username = u\nPasswort = p\nSMTPAuthReq = SSL\n"
                  "[area *]\nprofile = m\n",
                  date);
    assert_int_equal(load(f, text, 0), 0);
    free(text);
    assert_int_equal(diags_errors(&f->d), 0);
    assert_int_equal(f->d.n, 5);
    assert_printed(f, ":3: warning: profile m: key FromDisplayName: has no effect with Microsoft "
                      "365: the mailbox's own name is used");
    assert_printed(f, ":7: warning: profile m: key RateLimit: 0");
    assert_printed(f, ":8: warning: profile m: key TLSVerify: no");
    assert_printed(f, ":9: warning: profile m: key 365SecretExpires: the client secret expires "
                      "on");
    assert_printed(f, ":12: warning: profile o: key SMTPHost: smtp.office365.com with a password");
    assert_int_equal(f->c->profiles[0].rate_limit, 0);

    /* 365SecretExpires on an SMTP profile is an error. */
    assert_int_equal(load(f, RELAY "365SecretExpires = 2099-01-01\n", 0), EX_CONFIG);
    assert_printed(f, ":5: profile relay: key 365SecretExpires: only Microsoft 365 profiles");

    /* Two Microsoft 365 profiles of one mailbox: their RateLimits add up. */
    assert_int_equal(load(f,
                          "[profile m1]\nFromAddress = ppr@airport.example\n365Client = c\n"
                          "365Tenant = t\n365Secret = s\n"
                          "[profile m2]\nFromAddress = PPR@airport.example\n365Client = c\n"
                          "365Tenant = t\n365Secret = s\n"
                          "[profile m3]\nFromAddress = other@airport.example\n365Client = c\n"
                          "365Tenant = t\n365Secret = s\n[area *]\nprofile = m1\n",
                          0),
                     0);
    assert_int_equal(f->d.n, 1);
    assert_printed(f, ":6: warning: profile m2: sends from the mailbox PPR@airport.example like "
                      "profile m1: each profile has its own RateLimit");
}

static void test_secret_file(void **state)
{
    struct fx *f = *state;
    char *sec = write_file(f, "billing", "Geheim 1#;x\r\nsecond line\n", 0600);
    char *text = xasprintf("[profile b]\nFromAddress = a@example.org\nSMTPHost = h\n"
                           "Username = u\nPasswort = file:%s\nSMTPAuthReq = SSL\n"
                           "[area *]\nprofile = b\n",
                           sec);
    assert_int_equal(load(f, text, CONFIG_RESOLVE_SECRETS), 0);
    assert_string_equal(f->c->profiles[0].password, "Geheim 1#;x");
    assert_int_equal(f->d.n, 0);
    /* Producers do not read the file. */
    assert_int_equal(load(f, text, 0), 0);
    assert_null(f->c->profiles[0].password);
    /* Readable by others: a warning. */
    assert_int_equal(chmod(sec, 0644), 0);
    assert_int_equal(load(f, text, CONFIG_RESOLVE_SECRETS), 0);
    assert_printed(f, ":5: warning: profile b: key Passwort: secret file");
    assert_printed(f, "chmod 600");
    /* Unreadable: an error naming profile, key and path, never the value. */
    assert_int_equal(unlink(sec), 0);
    assert_int_equal(load(f, text, CONFIG_RESOLVE_SECRETS), EX_CONFIG);
    char *want = xasprintf(":5: profile b: key Passwort: cannot read secret file %s", sec);
    assert_printed(f, want);
    free(want);
    /* Without resolving, a missing file is no error (producers). */
    assert_int_equal(load(f, text, 0), 0);
    free(text);
    /* Relative paths are refused in any mode. */
    assert_int_equal(load(f,
                          "[profile b]\nFromAddress = a@example.org\nSMTPHost = h\nUsername = u\n"
                          "Passwort = file:secrets/b\nSMTPAuthReq = SSL\n",
                          0),
                     EX_CONFIG);
    assert_printed(f, ":5: profile b: key Passwort: file:secrets/b is not an absolute path");
    free(sec);
}

static void test_secret_credential(void **state)
{
    struct fx *f = *state;
    char *sec = write_file(f, "ppr-secret", "client-secret-value\n", 0600);
    const char *text =
        "[profile ppr]\nFromAddress = ppr@example.org\n365Client = c\n"
        "365Tenant = t\n365Secret = credential:ppr-secret\n[area *]\nprofile = ppr\n";
    assert_int_equal(load(f, text, CONFIG_RESOLVE_SECRETS), EX_CONFIG);
    assert_printed(f, ":5: profile ppr: key 365Secret: credential:ppr-secret needs "
                      "$CREDENTIALS_DIRECTORY, which is not set");
    setenv("CREDENTIALS_DIRECTORY", f->dir, 1);
    assert_int_equal(load(f, text, CONFIG_RESOLVE_SECRETS), 0);
    assert_string_equal(f->c->profiles[0].m365_secret, "client-secret-value");
    assert_int_equal(unlink(sec), 0);
    assert_int_equal(load(f, text, CONFIG_RESOLVE_SECRETS), EX_CONFIG);
    assert_printed(f, "key 365Secret: cannot read secret file");
    assert_printed(f, "/ppr-secret: No such file or directory");
    unsetenv("CREDENTIALS_DIRECTORY");
    assert_int_equal(load(f,
                          "[profile ppr]\nFromAddress = a@example.org\n365Client = c\n"
                          "365Tenant = t\n365Secret = credential:../etc/shadow\n",
                          CONFIG_RESOLVE_SECRETS),
                     EX_CONFIG);
    assert_printed(f, "key 365Secret: credential:../etc/shadow is not a credential name");
    free(sec);
}

static void test_literal_secret_mode_and_no_leak(void **state)
{
    struct fx *f = *state;
    const char *text = "[profile b]\nFromAddress = a@example.org\nSMTPHost = h\n"
                       "Username = u\nPasswort = Sup3rS3cretValue\nSMTPAuthReq = SSL\n"
                       "SMTPTLS = none\n365Client = x\n";
    char *path = write_file(f, "world.conf", text, 0644);
    int rc = config_load(path, CONFIG_RESOLVE_SECRETS, &f->c, &f->d);
    assert_int_equal(rc, EX_CONFIG);
    assert_printed(f, "world.conf:5: warning: profile b: key Passwort:");
    assert_printed(f, "is readable by others and holds this literal secret: run chmod 640");
    char *out = printed(&f->d);
    assert_null(strstr(out, "Sup3rS3cretValue"));
    free(out);
    /* 0640: no warning. */
    diags_free(&f->d);
    assert_int_equal(chmod(path, 0640), 0);
    const char *ok = "[profile b]\nFromAddress = a@example.org\nSMTPHost = h\n"
                     "Username = u\nPasswort = Sup3rS3cretValue\nSMTPAuthReq = SSL\n"
                     "[area *]\nprofile = b\n";
    free(write_file(f, "world.conf", ok, 0640));
    assert_int_equal(config_load(path, CONFIG_RESOLVE_SECRETS, &f->c, &f->d), 0);
    assert_int_equal(f->d.n, 0);
    free(path);
}

static void test_missing_file(void **state)
{
    struct fx *f = *state;
    char *path = xasprintf("%s/none.conf", f->dir);
    assert_int_equal(config_load(path, 0, &f->c, &f->d), EX_NOINPUT);
    assert_null(f->c);
    assert_int_equal(diags_errors(&f->d), 1);
    char *want = xasprintf("%s: cannot open the configuration: No such file or directory", path);
    assert_printed(f, want);
    free(want);
    free(path);
}

static void test_diags_print_format(void **state)
{
    (void)state;
    struct diags d = {0};
    struct diag v[] = {
        {"f.conf", 3, false, "p", "key X: bad"},
        {"f.conf", 4, true, "p", "key Y: odd"},
        {"f.conf", 5, true, NULL, "plain"},
        {"f.conf", 0, false, NULL, "whole file"},
    };
    d.v = v;
    d.n = 4;
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    assert_int_equal(diags_print(&d, m), 2);
    fclose(m);
    assert_string_equal(out, "f.conf:3: profile p: key X: bad\n"
                             "f.conf:4: warning: profile p: key Y: odd\n"
                             "f.conf:5: warning: plain\n"
                             "f.conf: whole file\n");
    free(out);
    assert_int_equal(diags_errors(&d), 2);
}

static void fingerprint_of(struct fx *f, const char *extra, int flags, char out[65])
{
    char *text = xasprintf("[profile b]\nFromAddress = a@example.org\nSMTPHost = h\n"
                           "Username = u\nSMTPAuthReq = SSL\n%s[area *]\nprofile = b\n",
                           extra);
    assert_int_equal(load(f, text, flags), 0);
    free(text);
    memcpy(out, f->c->profiles[0].fingerprint, 65);
    assert_int_equal(strlen(out), 64);
}

static void test_fingerprint(void **state)
{
    struct fx *f = *state;
    char a[65], b[65], c[65], d[65], e[65];
    fingerprint_of(f, "Passwort = one\n", CONFIG_RESOLVE_SECRETS, a);
    fingerprint_of(f, "Passwort = one\n", CONFIG_RESOLVE_SECRETS, b);
    assert_string_equal(a, b);
    fingerprint_of(f, "Passwort = two\n", CONFIG_RESOLVE_SECRETS, c);
    assert_string_not_equal(a, c);
    assert_null(strstr(a, "one"));
    fingerprint_of(f, "Passwort = one\nSMTPPort = 2525\n", CONFIG_RESOLVE_SECRETS, d);
    assert_string_not_equal(a, d);
    fingerprint_of(f, "Passwort = one\nMaxConnections = 5\n", CONFIG_RESOLVE_SECRETS, e);
    assert_string_not_equal(a, e);
    /* A secret file's new content changes the fingerprint. */
    char *sec = write_file(f, "pw", "first\n", 0600);
    char *line = xasprintf("Passwort = file:%s\n", sec);
    fingerprint_of(f, line, CONFIG_RESOLVE_SECRETS, a);
    free(write_file(f, "pw", "second\n", 0600));
    fingerprint_of(f, line, CONFIG_RESOLVE_SECRETS, b);
    assert_string_not_equal(a, b);
    free(line);
    free(sec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seed_example, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults_and_area_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_comments, setup, teardown),
        cmocka_unit_test(test_durations_and_sizes),
        cmocka_unit_test_setup_teardown(test_keys_case_insensitive_and_alias, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_suggestion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grammar_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_booleans_and_dates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warnings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_credential, setup, teardown),
        cmocka_unit_test_setup_teardown(test_literal_secret_mode_and_no_leak, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test(test_diags_print_format),
        cmocka_unit_test_setup_teardown(test_fingerprint, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
