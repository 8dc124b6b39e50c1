/*
 * config_parse — the INI grammar of mailspool.conf: sections, key = value
 * lines and comments, into raw values per section.
 *
 * Comments: a line whose first non-blank character is '#' or ';', and the
 * rest of a line from a '#' or ';' that follows a blank. Values are trimmed;
 * there is no quoting (a secret holding " #" goes into a file:).
 * Every grammar problem (malformed line, unknown or duplicate section,
 * unknown or duplicate key) becomes a diag; parsing goes on so that one run
 * reports them all.
 * Never: interprets values, and never quotes a line it cannot parse (it may
 * be a secret someone wrapped).
 */
#include "config_impl.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xmalloc.h"

#define NAME_MAX_LEN 64

struct parser {
    const char *path;
    struct cfg_file *cf;
    struct diags *d;
    struct cfg_section *cur; /* NULL: outside any usable section */
    bool skipping;           /* inside a section already reported as bad */
    int line;
};

static char *trim(char *s)
{
    while (isblank((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Cuts the line at a comment: '#' or ';' first or after a blank. */
static void strip_comment(char *s)
{
    for (size_t i = 0; s[i]; i++) {
        if ((s[i] == '#' || s[i] == ';') && (i == 0 || isblank((unsigned char)s[i - 1]))) {
            s[i] = '\0';
            return;
        }
    }
}

static bool name_valid(const char *s, bool area)
{
    if (area && strcmp(s, "*") == 0)
        return true;
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr("_.-", *p) == NULL)
            return false;
    return true;
}

static const char *prof(const struct parser *ps)
{
    return ps->cur && ps->cur->kind == CK_PROFILE ? ps->cur->name : NULL;
}

static struct cfg_section *find_section(struct cfg_file *cf, enum cfg_kind kind, const char *name)
{
    for (size_t i = 0; i < cf->nsecs; i++) {
        struct cfg_section *s = &cf->secs[i];
        if (s->kind == kind &&
            (name == NULL ? s->name == NULL : s->name != NULL && strcmp(s->name, name) == 0))
            return s;
    }
    return NULL;
}

static enum cfg_kind kind_of_word(const char *w)
{
    static const char *const words[CK_COUNT] = {
        [CK_SPOOL] = "spool",     [CK_DAEMON] = "daemon", [CK_QUEUE] = "queue",
        [CK_PROFILE] = "profile", [CK_AREA] = "area",
    };
    for (int k = CK_SPOOL; k < CK_COUNT; k++)
        if (strcasecmp(w, words[k]) == 0)
            return (enum cfg_kind)k;
    return CK_NONE;
}

static void unknown_section(struct parser *ps, const char *word, const char *name)
{
    static const char *const words[] = {"spool", "daemon", "queue", "profile", "area"};
    const char *best = NULL;
    size_t bestd = 3;
    for (size_t i = 0; i < 5; i++) {
        size_t dist = config_edit_distance(word, words[i]);
        if (dist < bestd) {
            bestd = dist;
            best = words[i];
        }
    }
    if (best)
        config_diag(ps->d, ps->path, ps->line, false, NULL,
                    "unknown section [%s%s%s]; did you mean [%s%s]?", word, *name ? " " : "", name,
                    best, strcmp(best, "profile") == 0 || strcmp(best, "area") == 0 ? " NAME" : "");
    else
        config_diag(ps->d, ps->path, ps->line, false, NULL,
                    "unknown section [%s%s%s]: sections are [spool], [daemon], [queue], "
                    "[profile NAME] and [area NAME]",
                    word, *name ? " " : "", name);
}

/* "[word]" or "[word name]"; opens the section or reports why not. */
static void parse_header(struct parser *ps, char *s)
{
    ps->cur = NULL;
    ps->skipping = true;
    size_t n = strlen(s);
    if (s[n - 1] != ']') {
        config_diag(ps->d, ps->path, ps->line, false, NULL,
                    "malformed section header: write [profile NAME], [area NAME], [spool], "
                    "[daemon] or [queue]");
        return;
    }
    s[n - 1] = '\0';
    char *word = trim(s + 1), *name = word;
    while (*name && !isblank((unsigned char)*name))
        name++;
    if (*name)
        *name++ = '\0';
    name = trim(name);
    enum cfg_kind kind = kind_of_word(word);
    if (kind == CK_NONE) {
        unknown_section(ps, word, name);
        return;
    }
    bool named = kind == CK_PROFILE || kind == CK_AREA;
    if (named && !name_valid(name, kind == CK_AREA)) {
        config_diag(ps->d, ps->path, ps->line, false, NULL,
                    "[%s%s%s]: %s name must be 1 to %d letters, digits, '_', '.' or '-'%s", word,
                    *name ? " " : "", name, word, NAME_MAX_LEN,
                    kind == CK_AREA ? " (or * for the default area)" : "");
        return;
    }
    if (!named && *name) {
        config_diag(ps->d, ps->path, ps->line, false, NULL,
                    "[%s %s]: section [%s] takes no name: write [%s]", word, name, word, word);
        return;
    }
    struct cfg_section *dup = find_section(ps->cf, kind, named ? name : NULL);
    if (dup) {
        config_diag(ps->d, ps->path, ps->line, false, kind == CK_PROFILE ? name : NULL,
                    "section [%s%s%s] appears twice (first on line %d): merge the two", word,
                    named ? " " : "", named ? name : "", dup->line);
        return;
    }
    ps->cf->secs = xreallocarray(ps->cf->secs, ps->cf->nsecs + 1, sizeof *ps->cf->secs);
    struct cfg_section *sec = &ps->cf->secs[ps->cf->nsecs++];
    memset(sec, 0, sizeof *sec);
    sec->kind = kind;
    sec->name = named ? xstrdup(name) : NULL;
    sec->line = ps->line;
    ps->cur = sec;
    ps->skipping = false;
}

static void unknown_key(struct parser *ps, const char *key)
{
    enum cfg_kind here = ps->cur->kind;
    enum cfg_kind other = config_kind_of_key(key, here);
    bool close = false;
    const char *best = config_key_suggest(here, key, &close);
    if (close)
        config_diag(ps->d, ps->path, ps->line, false, prof(ps),
                    "unknown key '%s'; did you mean '%s'?", key, best);
    else if (other != CK_NONE)
        config_diag(ps->d, ps->path, ps->line, false, prof(ps),
                    "key '%s' does not belong in %s: move it to %s", key, config_kind_title(here),
                    config_kind_title(other));
    else if (best)
        config_diag(ps->d, ps->path, ps->line, false, prof(ps),
                    "unknown key '%s' in %s; the closest known key is '%s' (see "
                    "mailspool.conf(5) for the keys of this section)",
                    key, config_kind_title(here), best);
    else
        config_diag(ps->d, ps->path, ps->line, false, prof(ps),
                    "unknown key '%s' in %s: see mailspool.conf(5) for the keys of this section",
                    key, config_kind_title(here));
}

static void parse_assignment(struct parser *ps, char *s)
{
    char *eq = strchr(s, '=');
    if (eq == NULL || eq == s) {
        config_diag(ps->d, ps->path, ps->line, false, prof(ps),
                    "malformed line: expected 'key = value', a [section] or a comment");
        return;
    }
    *eq = '\0';
    char *key = trim(s), *value = trim(eq + 1);
    if (ps->cur == NULL) {
        if (!ps->skipping)
            config_diag(ps->d, ps->path, ps->line, false, NULL,
                        "key '%s' outside of any section: put it under [spool], [daemon], "
                        "[queue], [profile NAME] or [area NAME]",
                        key);
        return;
    }
    int id = config_key_find(ps->cur->kind, key);
    if (id < 0) {
        unknown_key(ps, key);
        return;
    }
    struct cfg_val *v = &ps->cur->vals[id];
    if (v->raw != NULL) {
        config_diag(ps->d, ps->path, ps->line, false, prof(ps),
                    "key %s: given twice (first on line %d): remove one", config_keys[id].name,
                    v->line);
        return;
    }
    v->raw = xstrdup(value);
    v->line = ps->line;
}

int config_parse_file(FILE *f, const char *path, struct cfg_file *cf, struct diags *d)
{
    struct parser ps = {.path = path, .cf = cf, .d = d};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    errno = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        ps.line++;
        if ((size_t)n != strlen(line)) {
            config_diag(d, path, ps.line, false, prof(&ps),
                        "line holds a NUL byte: save the file as plain UTF-8 text");
            continue;
        }
        char *s = line;
        if (ps.line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
            s += 3; /* a UTF-8 byte order mark from a Windows editor */
        strip_comment(s);
        s = trim(s);
        if (*s == '\0')
            continue;
        if (*s == '[')
            parse_header(&ps, s);
        else
            parse_assignment(&ps, s);
    }
    int rc = ferror(f) ? -1 : 0;
    if (rc < 0)
        config_diag(d, path, ps.line, false, NULL,
                    "cannot read the configuration: %s: give the path of the configuration file",
                    strerror(errno));
    if (line) {
        explicit_bzero(line, cap); /* it may have held a literal secret */
        free(line);
    }
    return rc;
}

void config_file_free(struct cfg_file *cf)
{
    for (size_t i = 0; i < cf->nsecs; i++) {
        struct cfg_section *s = &cf->secs[i];
        for (int k = 0; k < K_COUNT; k++) {
            if (s->vals[k].raw == NULL)
                continue;
            if (config_keys[k].type == CT_SECRET)
                explicit_bzero(s->vals[k].raw, strlen(s->vals[k].raw));
            free(s->vals[k].raw);
        }
        free(s->name);
    }
    free(cf->secs);
    cf->secs = NULL;
    cf->nsecs = 0;
}
