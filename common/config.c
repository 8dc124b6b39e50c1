/*
 * config — loads mailspool.conf into an immutable struct config: open the
 * file, parse (config_parse.c), apply the key table with its defaults
 * (config_table.c), validate (config_validate.c), and collect every problem
 * as a diag so that one run reports them all.
 *
 * A config is built fresh and handed out only when it holds no error, so a
 * reload can swap the pointer and a rejected file leaves the old one in force.
 * Never: logs, exits, or prints a secret; diag texts never quote a secret.
 */
#include "config_impl.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void config_diag(struct diags *d, const char *file, int line, bool warning, const char *profile,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text;
    if (vasprintf(&text, fmt, ap) < 0)
        text = xstrdup("(out of memory formatting a diagnostic)");
    va_end(ap);
    d->v = xreallocarray(d->v, d->n + 1, sizeof *d->v);
    d->v[d->n++] = (struct diag){
        .file = xstrdup(file),
        .line = line,
        .warning = warning,
        .profile = xstrdup_opt(profile),
        .text = text,
    };
}

bool config_val_given(const struct cfg_section *s, enum cfg_key_id id)
{
    return s->vals[id].raw != NULL && s->vals[id].raw[0] != '\0';
}

int config_val_line(const struct cfg_section *s, enum cfg_key_id id)
{
    return s->vals[id].raw != NULL ? s->vals[id].line : s->line;
}

/* Applies every key of s's kind to base: the value given, else the default. */
static void apply_section(enum cfg_kind kind, const struct cfg_section *s, void *base,
                          const char *file, const char *profile, const char *area, struct diags *d)
{
    for (int id = 0; id < K_COUNT; id++) {
        const struct config_key *k = &config_keys[id];
        if (k->kind != kind)
            continue;
        bool given = s != NULL && config_val_given(s, (enum cfg_key_id)id);
        const char *raw = given ? s->vals[id].raw : k->def;
        if (raw == NULL)
            continue;
        char *why = NULL;
        if (config_value_store(k, raw, base, &why) == 0)
            continue;
        /* Defaults are tested to parse; only a given value gets here. */
        config_diag(d, file, given ? s->vals[id].line : 0, false, profile, "%s%s%skey %s: %s",
                    area ? "area " : "", area ? area : "", area ? ": " : "", k->name, why);
        free(why);
    }
}

static const struct cfg_section *find_single(const struct cfg_file *cf, enum cfg_kind kind)
{
    for (size_t i = 0; i < cf->nsecs; i++)
        if (cf->secs[i].kind == kind)
            return &cf->secs[i];
    return NULL;
}

static size_t count_kind(const struct cfg_file *cf, enum cfg_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < cf->nsecs; i++)
        n += cf->secs[i].kind == kind;
    return n;
}

/* Whether an error of d lies on the lines of section s (up to the next one). */
static bool section_has_error(const struct cfg_file *cf, const struct cfg_section *s,
                              const struct diags *d)
{
    int end = INT_MAX;
    for (size_t i = 0; i < cf->nsecs; i++)
        if (cf->secs[i].line > s->line && cf->secs[i].line < end)
            end = cf->secs[i].line;
    for (size_t i = 0; i < d->n; i++)
        if (!d->v[i].warning && d->v[i].line >= s->line && d->v[i].line < end)
            return true;
    return false;
}

char *config_spool_path(const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    struct cfg_file cf = {0};
    struct diags d = {0};
    int rc = config_parse_file(f, path, &cf, &d);
    fclose(f);
    char *out = NULL;
    const struct cfg_section *s = find_single(&cf, CK_SPOOL);
    if (rc == 0 && count_kind(&cf, CK_SPOOL) <= 1 && !(s && section_has_error(&cf, s, &d))) {
        const char *raw = s ? s->vals[K_SPOOL_PATH].raw : NULL;
        struct config tmp = {0};
        char *why = NULL;
        if (raw == NULL || *raw == '\0')
            out = xstrdup(CONFIG_DEFAULT_SPOOL);
        else if (config_value_store(&config_keys[K_SPOOL_PATH], raw, &tmp, &why) == 0)
            out = tmp.spool_path;
        free(why);
    }
    config_file_free(&cf);
    diags_free(&d);
    return out;
}

static void build_globals(struct config *c, const struct cfg_file *cf, struct diags *d)
{
    static const enum cfg_kind kinds[] = {CK_SPOOL, CK_DAEMON, CK_QUEUE};
    for (size_t i = 0; i < 3; i++)
        apply_section(kinds[i], find_single(cf, kinds[i]), c, c->path, NULL, NULL, d);
    const struct cfg_section *sp = find_single(cf, CK_SPOOL);
    c->spool_path_line = sp ? config_val_line(sp, K_SPOOL_PATH) : 0;
    if (c->retry_min > c->retry_max) {
        const struct cfg_section *q = find_single(cf, CK_QUEUE);
        config_diag(d, c->path, q ? config_val_line(q, K_RETRY_MIN) : 0, false, NULL,
                    "key retry_min: %llds is larger than retry_max (%llds): make retry_min at "
                    "most retry_max",
                    (long long)c->retry_min, (long long)c->retry_max);
    }
}

static void build_profiles(struct config *c, const struct cfg_file *cf, int flags, struct diags *d)
{
    c->profiles = xcalloc(count_kind(cf, CK_PROFILE) + 1, sizeof *c->profiles);
    for (size_t i = 0; i < cf->nsecs; i++) {
        const struct cfg_section *s = &cf->secs[i];
        if (s->kind != CK_PROFILE)
            continue;
        struct profile *p = &c->profiles[c->nprofiles++];
        p->name = xstrdup(s->name);
        p->file = c->path;
        p->line = s->line;
        apply_section(CK_PROFILE, s, p, c->path, p->name, NULL, d);
        config_validate_profile(p, s, flags, d);
        config_profile_fingerprint(p, s);
    }
    config_validate_mailboxes(c, d);
}

static void build_areas(struct config *c, const struct cfg_file *cf, struct diags *d)
{
    c->areas = xcalloc(count_kind(cf, CK_AREA) + 1, sizeof *c->areas);
    for (size_t i = 0; i < cf->nsecs; i++) {
        const struct cfg_section *s = &cf->secs[i];
        if (s->kind != CK_AREA)
            continue;
        struct area *a = &c->areas[c->nareas++];
        a->name = xstrdup(s->name);
        a->line = s->line;
        apply_section(CK_AREA, s, a, c->path, NULL, a->name, d);
        if (!config_val_given(s, K_AREA_PROFILE)) {
            config_diag(d, c->path, s->line, false, NULL,
                        "area %s: key profile: missing: name the profile that sends this area "
                        "(profile = NAME of a [profile NAME] section)",
                        a->name);
            continue;
        }
        a->profile = (struct profile *)config_profile_find(c, a->profile_name);
        if (a->profile == NULL && a->profile_name != NULL)
            config_diag(d, c->path, config_val_line(s, K_AREA_PROFILE), false, NULL,
                        "area %s: key profile: there is no [profile %s]: define it or name an "
                        "existing profile",
                        a->name, a->profile_name);
    }
    if (c->nareas == 0 && c->nprofiles > 0)
        config_diag(d, c->path, 0, true, NULL,
                    "no [area NAME] section: no message can be delivered; add [area *] with "
                    "profile = NAME");
}

static struct config *config_build(const struct cfg_file *cf, const char *path, int flags,
                                   struct diags *d)
{
    struct config *c = xcalloc(1, sizeof *c);
    c->path = xstrdup(path);
    build_globals(c, cf, d);
    build_profiles(c, cf, flags, d);
    build_areas(c, cf, d);
    return c;
}

/* Stable by line, so the report reads top to bottom like the file. */
static void diags_sort(struct diags *d, size_t from)
{
    for (size_t i = from + 1; i < d->n; i++) {
        struct diag x = d->v[i];
        size_t j = i;
        while (j > from && d->v[j - 1].line > x.line) {
            d->v[j] = d->v[j - 1];
            j--;
        }
        d->v[j] = x;
    }
}

int config_load(const char *path, int flags, struct config **out, struct diags *d)
{
    *out = NULL;
    size_t first = d->n, errs = diags_errors(d);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        config_diag(d, path, 0, false, NULL,
                    "cannot open the configuration: %s: check the path (-c or MAILSPOOL_CONF) "
                    "and that the mailspool user may read it",
                    strerror(errno));
        return EX_NOINPUT;
    }
    struct cfg_file cf = {0};
    struct stat st;
    int rc = fstat(fileno(f), &st) == 0 ? config_parse_file(f, path, &cf, d) : -1;
    fclose(f);
    if (rc < 0) {
        config_file_free(&cf);
        return EX_NOINPUT;
    }
    struct config *c = config_build(&cf, path, flags, d);
    config_secret_check_mode(path, &st, &cf, d);
    config_file_free(&cf);
    diags_sort(d, first);
    if (diags_errors(d) > errs) {
        config_free(c);
        return EX_CONFIG;
    }
    *out = c;
    return 0;
}

static void profile_clear(struct profile *p)
{
    free(p->name);
    free(p->from_address);
    free(p->from_display_name);
    free(p->reply_to);
    free(p->smtp_host);
    free(p->username);
    config_secret_free(p->password);
    free(p->m365_client);
    free(p->m365_tenant);
    config_secret_free(p->m365_secret);
    free(p->m365_authority_host);
    free(p->m365_graph_host);
    free(p->ca_file);
}

void config_free(struct config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nprofiles; i++)
        profile_clear(&c->profiles[i]);
    free(c->profiles);
    for (size_t i = 0; i < c->nareas; i++) {
        free(c->areas[i].name);
        free(c->areas[i].profile_name);
    }
    free(c->areas);
    free(c->path);
    free(c->spool_path);
    free(c->log_file);
    free(c);
}

const struct profile *config_profile_find(const struct config *c, const char *name)
{
    for (size_t i = 0; name != NULL && i < c->nprofiles; i++)
        if (strcmp(c->profiles[i].name, name) == 0)
            return &c->profiles[i];
    return NULL;
}

const struct area *config_area_find(const struct config *c, const char *name)
{
    const struct area *def = NULL;
    for (size_t i = 0; i < c->nareas; i++) {
        if (name != NULL && strcmp(c->areas[i].name, name) == 0)
            return &c->areas[i];
        if (strcmp(c->areas[i].name, "*") == 0)
            def = &c->areas[i];
    }
    return def;
}

int64_t config_area_lifetime(const struct config *c, const char *name)
{
    const struct area *a = config_area_find(c, name);
    return a != NULL && a->lifetime > 0 ? a->lifetime : c->lifetime;
}

const char *transport_name(enum transport t)
{
    switch (t) {
    case TRANSPORT_SMTP_AUTH:
    case TRANSPORT_SMTP_ANON:
        return "smtp";
    case TRANSPORT_GRAPH:
        return "graph";
    default:
        return "none";
    }
}

size_t diags_errors(const struct diags *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++)
        n += !d->v[i].warning;
    return n;
}

/* "FILE:LINE: profile NAME: text" for errors, "FILE:LINE: warning: profile
 * NAME: text" for warnings (SPEC 2.1); line 0 means the file as a whole. */
size_t diags_print(const struct diags *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct diag *g = &d->v[i];
        if (g->line > 0)
            fprintf(out, "%s:%d: ", g->file, g->line);
        else
            fprintf(out, "%s: ", g->file);
        if (g->warning)
            fputs("warning: ", out);
        if (g->profile)
            fprintf(out, "profile %s: ", g->profile);
        fprintf(out, "%s\n", g->text);
    }
    fflush(out);
    return diags_errors(d);
}

void diags_free(struct diags *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].file);
        free(d->v[i].profile);
        free(d->v[i].text);
    }
    free(d->v);
    d->v = NULL;
    d->n = 0;
}
