/*
 * cli_util — what every `mailspool` command shares: configuration and
 * spool path resolution, reading input files, printing errors and JSON.
 *
 * Owns: the order in which the spool path is chosen (SPEC 2.2) and the
 * configuration as the CLI sees it (never with secrets resolved).
 * Never: exits; commands return their exit code to main.
 */
#include "cli.h"
#include "xmalloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum cli_config_state cli_util_config(struct cli *c)
{
    if (c->config_state != CLI_CONFIG_UNLOADED)
        return c->config_state;
    /* Secrets stay unresolved: a producer may not read them, and need not. */
    int rc = config_load(c->config_path, 0, &c->cfg, &c->diags);
    if (rc == 0)
        c->config_state = CLI_CONFIG_VALID;
    else if (rc == EX_NOINPUT)
        c->config_state = CLI_CONFIG_UNREADABLE;
    else
        c->config_state = CLI_CONFIG_INVALID;
    return c->config_state;
}

int cli_util_spool_path(struct cli *c, const char **out, struct err *e)
{
    const char *env = getenv("MAILSPOOL_SPOOL");
    if (c->spool_opt && *c->spool_opt)
        *out = c->spool_opt;
    else if (env && *env)
        *out = env;
    else {
        switch (cli_util_config(c)) {
        case CLI_CONFIG_VALID:
            *out = c->cfg->spool_path && *c->cfg->spool_path ? c->cfg->spool_path
                                                             : CONFIG_DEFAULT_SPOOL;
            break;
        case CLI_CONFIG_INVALID:
            if (c->spool_salvaged == NULL) {
                c->spool_salvaged = config_spool_path(c->config_path);
                if (c->spool_salvaged)
                    fprintf(stderr,
                            "mailspool: note: configuration %s has errors (run `mailspoold -c "
                            "%s --check`); its [spool] path %s is used\n",
                            c->config_path, c->config_path, c->spool_salvaged);
            }
            if (c->spool_salvaged) {
                *out = c->spool_salvaged;
                break;
            }
            return err_set(e, EX_CONFIG,
                           "configuration %s has errors in its [spool] section, so its [spool] "
                           "path is unknown: run `mailspoold -c %s --check` and fix it, or pass "
                           "-s SPOOL",
                           c->config_path, c->config_path);
        default:
            *out = CONFIG_DEFAULT_SPOOL;
            break;
        }
    }
    return 0;
}

int cli_util_fail(const struct err *e)
{
    fprintf(stderr, "mailspool: %s\n", e->msg[0] ? e->msg : "unknown error");
    return e->code ? e->code : EX_SOFTWARE;
}

int cli_util_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mailspool %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun `mailspool %s --help` for its options.\n", cmd);
    return EX_USAGE;
}

int cli_util_bad_option(const char *cmd, char **argv)
{
    return cli_util_usage(cmd, "unknown option or missing value: '%s'", argv[optind - 1]);
}

static int cli_util_slurp(FILE *f, char **out, size_t *len)
{
    size_t cap = 64 * 1024, n = 0;
    char *p = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            p = xrealloc(p, cap + 1);
        }
        size_t r = fread(p + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        free(p);
        return -1;
    }
    p[n] = '\0';
    *out = p;
    *len = n;
    return 0;
}

int cli_util_read_file(const char *path, const char *what, char **out, size_t *len, struct err *e)
{
    *out = NULL;
    *len = 0;
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "re");
    if (f == NULL)
        return err_set(e, EX_NOINPUT, "%s %s: cannot open: %s: check the path", what, path,
                       strerror(errno));
    int rc = cli_util_slurp(f, out, len);
    int saved = errno;
    if (!is_stdin)
        fclose(f);
    if (rc != 0)
        return err_set(e, EX_NOINPUT, "%s %s: read error: %s", what,
                       is_stdin ? "(standard input)" : path, strerror(saved));
    if (memchr(*out, '\0', *len) != NULL) {
        free(*out);
        *out = NULL;
        return err_set(e, EX_DATAERR,
                       "%s %s: contains NUL bytes, so it is not text: attach it with --attach "
                       "instead",
                       what, is_stdin ? "(standard input)" : path);
    }
    return 0;
}

int cli_util_parse_id(const char *s, int64_t *id)
{
    if (s == NULL || *s < '1' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0)
        return -1;
    *id = v;
    return 0;
}

void cli_util_print_json(cJSON *v)
{
    char *s = cJSON_Print(v);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    cJSON_Delete(v);
}

void cli_util_free(struct cli *c)
{
    free(c->spool_salvaged);
    buf_free(&c->stdin_copy);
    config_free(c->cfg);
    diags_free(&c->diags);
}
