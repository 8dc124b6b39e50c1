/*
 * fuzz_config — libFuzzer target for the configuration loader
 * (common/config*.c) through its public entry, config_load, on a memfd.
 *
 * Owns: the properties of a load: it returns 0 with a config and no error
 * diag, or EX_CONFIG with at least one; every diag is one line of text (a
 * config value can never add a line to the --check output); a valid config
 * resolves every area to a profile with a valid FromAddress; and a literal
 * secret that occurs only once in the file never appears in a diag.
 * Secrets are resolved as the daemon does (file: and credential: are read;
 * $CREDENTIALS_DIRECTORY is a private directory holding one credential).
 * Never: writes anything but its memfd and that directory.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "address.h"
#include "config.h"
#include "config_impl.h"
#include "fuzz_wire.h"
#include "xmalloc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/mailspool-fuzz-cred.XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 0;
    char *path = xasprintf("%s/ppr-secret", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("credential~Secret.Value\n", f);
        fclose(f);
    }
    free(path);
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    return 0;
}

/* A word the product prints by itself: a key name ("did you mean
 * 'max_attempts'?"). A secret spelled like one proves nothing when quoted. */
static bool fuzz_config_own_word(const char *s)
{
    for (int k = 0; k < K_COUNT; k++)
        if (strcasecmp(s, config_keys[k].name) == 0 ||
            (config_keys[k].alias && strcasecmp(s, config_keys[k].alias) == 0))
            return true;
    return false;
}

/* The literal values of secret keys that occur exactly once in text and are
 * long enough not to be a common word (nor one of the product's own words):
 * any diag quoting one leaks it. */
static size_t fuzz_config_secrets(const char *text, char **out, size_t max)
{
    size_t n = 0;
    for (const char *line = text; *line && n < max;) {
        const char *eol = strchrnul(line, '\n');
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        static const char *const keys[] = {"Passwort", "Password", "365Secret"};
        for (size_t k = 0; k < 3; k++) {
            size_t kl = strlen(keys[k]);
            if ((size_t)(eol - p) <= kl || strncasecmp(p, keys[k], kl) != 0)
                continue;
            const char *v = p + kl;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            if (v >= eol || *v != '=')
                break;
            v++;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vl = strcspn(v, " \t#;\r\n");
            if (vl >= 12 && v + vl <= eol) {
                char *s = xstrndup(v, vl);
                const char *first = strstr(text, s);
                if (first == v && strstr(v + 1, s) == NULL && strncmp(s, "file:", 5) != 0 &&
                    strncmp(s, "credential:", 11) != 0 && !fuzz_config_own_word(s))
                    out[n++] = s;
                else
                    free(s);
            }
            break;
        }
        line = *eol ? eol + 1 : eol;
    }
    return n;
}

static void fuzz_config_check_diags(const struct diags *d, const char *text, bool whole)
{
    char *secrets[8];
    size_t ns = whole ? fuzz_config_secrets(text, secrets, 8) : 0; /* text ends at a NUL */
    for (size_t i = 0; i < d->n; i++) {
        const struct diag *g = &d->v[i];
        FUZZ_CHECK(g->text != NULL && g->file != NULL, "a diag without text or file");
        FUZZ_CHECK(strchr(g->text, '\n') == NULL, "a diag of several lines: %s", g->text);
        FUZZ_CHECK(g->profile == NULL || strchr(g->profile, '\n') == NULL,
                   "a profile name with a line break");
        for (size_t s = 0; s < ns; s++)
            FUZZ_CHECK(strstr(g->text, secrets[s]) == NULL, "a diag quotes a secret: %s", g->text);
    }
    for (size_t s = 0; s < ns; s++)
        free(secrets[s]);
    FILE *null = fopen("/dev/null", "w");
    if (null) {
        FUZZ_CHECK(diags_print(d, null) == diags_errors(d), "diags_print miscounts");
        fclose(null);
    }
}

static void fuzz_config_check_valid(const struct config *c)
{
    for (size_t i = 0; i < c->nareas; i++) {
        const struct area *a = &c->areas[i];
        FUZZ_CHECK(a->profile != NULL, "area %s without a profile", a->name);
        FUZZ_CHECK(config_area_find(c, a->name) == a, "area %s is not found", a->name);
        FUZZ_CHECK(config_profile_find(c, a->profile_name) == a->profile,
                   "area %s: its profile is not found", a->name);
    }
    for (size_t i = 0; i < c->nprofiles; i++) {
        const struct profile *p = &c->profiles[i];
        FUZZ_CHECK(p->transport != TRANSPORT_NONE, "profile %s without a transport", p->name);
        FUZZ_CHECK(address_valid_addr(p->from_address), "profile %s: FromAddress invalid", p->name);
        FUZZ_CHECK(p->from_display_name == NULL || header_safe(p->from_display_name),
                   "profile %s: FromDisplayName is not header-safe", p->name);
        FUZZ_CHECK(p->max_connections > 0, "profile %s: MaxConnections %d", p->name,
                   p->max_connections);
    }
    FUZZ_CHECK(c->spool_path != NULL && c->spool_path[0] != '\0', "no spool path");
    FUZZ_CHECK(c->retry_min > 0 && c->retry_min <= c->retry_max, "retry_min %lld retry_max %lld",
               (long long)c->retry_min, (long long)c->retry_max);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz.conf", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    char *path = xasprintf("/proc/self/fd/%d", fd);
    char *text = xstrndup((const char *)data, size);
    struct config *c = NULL;
    struct diags d = {0};
    int rc = config_load(path, CONFIG_RESOLVE_SECRETS, &c, &d);
    if (rc == 0) {
        FUZZ_CHECK(c != NULL && diags_errors(&d) == 0, "loaded with errors");
        fuzz_config_check_valid(c);
    } else {
        FUZZ_CHECK(rc == EX_CONFIG && c == NULL && diags_errors(&d) > 0,
                   "refused (%d) without an error diag", rc);
    }
    fuzz_config_check_diags(&d, text, strlen(text) == size);
    config_free(c);
    diags_free(&d);

    /* The value parsers on their own, with the whole input as the value. */
    int64_t v;
    (void)config_parse_duration(text, &v);
    (void)config_parse_size(text, &v);
    free(text);
    free(path);
    close(fd);
    return 0;
}
