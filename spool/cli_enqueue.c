/*
 * cli_enqueue — `mailspool enqueue`: one message from flags or from JSON.
 *
 * Owns: the enqueue flags (SPEC 2.2), the checks that happen before the
 * spool is touched (message validation, attachment files present, area
 * served by the configuration when it is readable), printing the id.
 * Never: opens (or creates) the spool before the input is known to be good,
 * so bad input leaves the spool exactly as it was.
 */
#include "cli.h"
#include "isotime.h"
#include "json_enqueue.h"
#include "filetype.h"
#include "message.h"
#include "xmalloc.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    OPT_AREA = 256,
    OPT_TO,
    OPT_CC,
    OPT_BCC,
    OPT_SUBJECT,
    OPT_TEXT,
    OPT_HTML,
    OPT_ATTACH,
    OPT_REPLY_TO,
    OPT_REF,
    OPT_NOT_BEFORE,
    OPT_EXPIRES,
    OPT_PRIORITY,
    OPT_HEADER,
    OPT_JSON,
    OPT_HELP,
};

static const struct option cli_enqueue_opts[] = {
    {"area", required_argument, NULL, OPT_AREA},
    {"to", required_argument, NULL, OPT_TO},
    {"cc", required_argument, NULL, OPT_CC},
    {"bcc", required_argument, NULL, OPT_BCC},
    {"subject", required_argument, NULL, OPT_SUBJECT},
    {"text", required_argument, NULL, OPT_TEXT},
    {"html", required_argument, NULL, OPT_HTML},
    {"attach", required_argument, NULL, OPT_ATTACH},
    {"reply-to", required_argument, NULL, OPT_REPLY_TO},
    {"ref", required_argument, NULL, OPT_REF},
    {"not-before", required_argument, NULL, OPT_NOT_BEFORE},
    {"expires", required_argument, NULL, OPT_EXPIRES},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"header", required_argument, NULL, OPT_HEADER},
    {"json", required_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

struct cli_enqueue_args {
    const char *json;
    const char *text, *html;
    int nflags; /* message flags given (they exclude --json) */
    int help;
};

static void cli_enqueue_help(void)
{
    puts("usage: mailspool enqueue --area A --to ADDR [--to ADDR]... [--cc ADDR]... "
         "[--bcc ADDR]...\n"
         "         --subject S [--text FILE|-] [--html FILE] "
         "[--attach 'PATH[;name=N][;type=T]']...\n"
         "         [--reply-to ADDR] [--ref KEY] [--not-before TIME] [--expires TIME]\n"
         "         [--priority N] [--header 'X-Name: value']...\n"
         "       mailspool enqueue --json FILE|-\n"
         "Prints the message id (with a known --ref: the existing one).");
}

/* Sets a single-valued string field; a repeat is a usage error. */
static int cli_enqueue_once(char **dst, const char *v, const char *flag, struct err *e)
{
    if (*dst != NULL)
        return err_set(e, EX_USAGE, "enqueue: %s given twice: give it once", flag);
    *dst = xstrdup(v);
    return 0;
}

/* "PATH[;name=N][;type=T]": the path ends at the first ";name=" or ";type=". */
static int cli_enqueue_attach(struct message *m, const char *spec, struct err *e)
{
    char *s = xstrdup(spec), *name = NULL, *type = NULL, *p = s;
    char *cut = NULL;
    for (char *q = s; (q = strchr(q, ';')) != NULL; q++)
        if (strncmp(q + 1, "name=", 5) == 0 || strncmp(q + 1, "type=", 5) == 0) {
            cut = q;
            break;
        }
    while (cut) {
        *cut = '\0';
        char *key = cut + 1, *next = NULL;
        for (char *q = key + 5; (q = strchr(q, ';')) != NULL; q++)
            if (strncmp(q + 1, "name=", 5) == 0 || strncmp(q + 1, "type=", 5) == 0) {
                next = q;
                break;
            }
        if (next)
            *next = '\0';
        if (key[0] == 'n')
            name = key + 5;
        else
            type = key + 5;
        if (next)
            *next = ';';
        cut = next;
    }
    int rc = 0;
    if (*p == '\0')
        rc = err_set(e, EX_USAGE, "enqueue: --attach '%s': the path is empty", spec);
    else {
        struct msg_attachment *a = message_add_attachment(m);
        a->path = xstrdup(p);
        a->name = xstrdup(name && *name ? name : filetype_basename(p));
        a->content_type = xstrdup(type && *type ? type : filetype_guess(a->name));
    }
    free(s);
    return rc;
}

/* "X-Name: value". */
static int cli_enqueue_header(struct message *m, const char *spec, struct err *e)
{
    const char *colon = strchr(spec, ':');
    if (colon == NULL)
        return err_set(e, EX_DATAERR, "enqueue: --header '%s': expected 'X-Name: value'", spec);
    char *name = xstrndup(spec, (size_t)(colon - spec));
    const char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    int rc = message_add_header(m, name, value, e);
    if (rc != 0)
        err_prefix(e, "enqueue: --header");
    free(name);
    return rc;
}

static int cli_enqueue_priority(const char *s, int *out, struct err *e)
{
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < INT_MIN || v > INT_MAX)
        return err_set(e, EX_DATAERR, "enqueue: --priority '%s': must be an integer", s);
    *out = (int)v;
    return 0;
}

static int cli_enqueue_rcpt(struct message *m, enum rcpt_kind kind, const char *v, struct err *e)
{
    if (message_add_rcpt(m, kind, v, e) != 0)
        return err_prefix(e, "enqueue: --%s", rcpt_kind_name(kind));
    return 0;
}

/* One option into m / args; returns 0 or -1 with e. */
static int cli_enqueue_opt(int ch, const char *v, struct message *m, struct cli_enqueue_args *a,
                           struct err *e)
{
    a->nflags += ch != OPT_JSON && ch != OPT_HELP;
    switch (ch) {
    case OPT_AREA:
        return cli_enqueue_once(&m->area, v, "--area", e);
    case OPT_TO:
    case OPT_CC:
    case OPT_BCC:
        return cli_enqueue_rcpt(m, (enum rcpt_kind)(RCPT_TO + (ch - OPT_TO)), v, e);
    case OPT_SUBJECT:
        return cli_enqueue_once(&m->subject, v, "--subject", e);
    case OPT_TEXT:
    case OPT_HTML: {
        const char **dst = ch == OPT_TEXT ? &a->text : &a->html;
        if (*dst)
            return err_set(e, EX_USAGE, "enqueue: --%s given twice: give it once",
                           ch == OPT_TEXT ? "text" : "html");
        *dst = v;
        return 0;
    }
    case OPT_ATTACH:
        return cli_enqueue_attach(m, v, e);
    case OPT_REPLY_TO:
        return cli_enqueue_once(&m->reply_to, v, "--reply-to", e);
    case OPT_REF:
        return cli_enqueue_once(&m->ref, v, "--ref", e);
    case OPT_NOT_BEFORE:
        return isotime_parse(v, "enqueue: --not-before", &m->not_before, e);
    case OPT_EXPIRES:
        return isotime_parse(v, "enqueue: --expires", &m->expires, e);
    case OPT_PRIORITY:
        return cli_enqueue_priority(v, &m->priority, e);
    case OPT_HEADER:
        return cli_enqueue_header(m, v, e);
    case OPT_JSON:
        if (a->json)
            return err_set(e, EX_USAGE, "enqueue: --json given twice: give it once");
        a->json = v;
        return 0;
    case OPT_HELP:
        a->help = 1;
        return 0;
    default:
        return err_set(e, EX_USAGE, "enqueue: unknown option: run `mailspool enqueue --help`");
    }
}

static int cli_enqueue_parse(int argc, char **argv, struct message *m, struct cli_enqueue_args *a,
                             struct err *e)
{
    int ch;
    while ((ch = getopt_long(argc, argv, "", cli_enqueue_opts, NULL)) != -1) {
        if (ch == '?' || ch == ':')
            return err_set(e, EX_USAGE,
                           "enqueue: unknown option or missing value: '%s': run "
                           "`mailspool enqueue --help`",
                           argv[optind - 1]);
        if (cli_enqueue_opt(ch, optarg, m, a, e) != 0)
            return -1;
    }
    if (optind < argc)
        return err_set(e, EX_USAGE,
                       "enqueue: unexpected argument \"%s\": every value needs its "
                       "flag (e.g. --to ADDR)",
                       argv[optind]);
    if (a->json && a->nflags > 0)
        return err_set(e, EX_USAGE,
                       "enqueue: --json takes the whole message; give no other "
                       "message flags with it");
    if (a->text && a->html && strcmp(a->text, "-") == 0 && strcmp(a->html, "-") == 0)
        return err_set(e, EX_USAGE,
                       "enqueue: only one of --text and --html can read standard "
                       "input");
    return 0;
}

/* The flags a message cannot do without: missing ones are usage errors. */
static int cli_enqueue_required(const struct message *m, const struct cli_enqueue_args *a,
                                struct err *e)
{
    const char *missing = m->area == NULL        ? "--area"
                          : m->nrcpts == 0       ? "--to (or --cc/--bcc)"
                          : m->subject == NULL   ? "--subject"
                          : !a->text && !a->html ? "--text or --html"
                                                 : NULL;
    if (missing)
        return err_set(e, EX_USAGE, "enqueue: %s is required (or use --json FILE)", missing);
    return 0;
}

/* Reads an input file; what comes from standard input is kept too, for the
 * front to replay to the full CLI. */
static int cli_enqueue_read(struct cli *c, const char *path, const char *what, char **out,
                            size_t *len, struct err *e)
{
    if (cli_util_read_file(path, what, out, len, e) != 0)
        return -1;
    if (strcmp(path, "-") == 0) {
        buf_append(&c->stdin_copy, *out, *len);
        c->stdin_read = true;
    }
    return 0;
}

static int cli_enqueue_bodies(struct cli *c, struct message *m, const struct cli_enqueue_args *a,
                              struct err *e)
{
    size_t len;
    if (a->text && cli_enqueue_read(c, a->text, "--text", &m->text, &len, e) != 0)
        return -1;
    if (a->html && cli_enqueue_read(c, a->html, "--html", &m->html, &len, e) != 0)
        return -1;
    return 0;
}

static int cli_enqueue_json(struct cli *c, const char *path, struct message **m, struct err *e)
{
    char *text;
    size_t len;
    if (cli_enqueue_read(c, path, "--json", &text, &len, e) != 0)
        return -1;
    struct message *jm;
    int rc = json_enqueue_parse(text, len, &jm, e);
    free(text);
    if (rc != 0)
        return -1;
    message_free(*m);
    *m = jm;
    return 0;
}

/* Everything that can be checked without the spool. */
static int cli_enqueue_check(struct cli *c, const struct message *m, struct err *e)
{
    if (message_validate(m, e) != 0)
        return -1;
    for (size_t i = 0; i < m->natts; i++) {
        struct stat st;
        const char *p = m->atts[i].path;
        if (p && (stat(p, &st) != 0 || access(p, R_OK) != 0))
            return err_set(e, EX_NOINPUT, "attachment %s: cannot read it: %s: check the path", p,
                           strerror(errno));
        if (p && !S_ISREG(st.st_mode))
            return err_set(e, EX_NOINPUT, "attachment %s: not a regular file", p);
    }
    enum cli_config_state cs = cli_util_config(c);
    if (cs == CLI_CONFIG_VALID && config_area_find(c->cfg, m->area) == NULL)
        return err_set(e, EX_DATAERR,
                       "area \"%s\": no [area %s] section (and no [area *]) in %s serves it: "
                       "use a configured area or add the section",
                       m->area, m->area, c->config_path);
    if (cs == CLI_CONFIG_INVALID)
        fprintf(stderr,
                "mailspool: note: configuration %s has errors; area \"%s\" was not "
                "checked (run `mailspoold --check`)\n",
                c->config_path, m->area);
    return 0;
}

static int cli_enqueue_store(struct cli *c, const struct message *m, struct err *e)
{
    int64_t id;
    bool existing;
    if (c->store(c, m, &id, &existing, e) != 0)
        return -1;
    printf("%lld\n", (long long)id);
    return 0;
}

int cli_enqueue_main(struct cli *c, int argc, char **argv)
{
    struct message *m = message_new();
    struct cli_enqueue_args a = {0};
    struct err e = {0};
    int rc = cli_enqueue_parse(argc, argv, m, &a, &e);
    if (rc == 0 && a.help) {
        cli_enqueue_help();
        message_free(m);
        return 0;
    }
    if (rc == 0 && a.json)
        rc = cli_enqueue_json(c, a.json, &m, &e);
    else if (rc == 0)
        rc = cli_enqueue_required(m, &a, &e);
    if (rc == 0 && !a.json)
        rc = cli_enqueue_bodies(c, m, &a, &e);
    if (rc == 0)
        rc = cli_enqueue_check(c, m, &e);
    if (rc == 0)
        rc = cli_enqueue_store(c, m, &e);
    message_free(m);
    return rc == 0 ? 0 : cli_util_fail(&e);
}
