/*
 * cli_render — `mailspool render ID`: the exact RFC 5322 message the SMTP
 * transport would send, composed by common/mime from the spool.
 *
 * Owns: choosing the sender (the area's profile from the configuration,
 * else a placeholder with a note on stderr).
 * Never: writes to the spool or needs secrets.
 */
#include "cli.h"
#include "mime.h"

#include <getopt.h>
#include <stdlib.h>

#define CLI_RENDER_PLACEHOLDER "sender@placeholder.invalid"

/* Fills s from the profile serving area, or the placeholder (with a note). */
static void cli_render_sender(struct cli *c, const char *area, struct mime_sender *s)
{
    s->from_address = CLI_RENDER_PLACEHOLDER;
    s->from_name = NULL;
    s->reply_to = NULL;
    enum cli_config_state cs = cli_util_config(c);
    const struct area *a = cs == CLI_CONFIG_VALID ? config_area_find(c->cfg, area) : NULL;
    if (a && a->profile) {
        s->from_address = a->profile->from_address;
        s->from_name = a->profile->from_display_name;
        s->reply_to = a->profile->reply_to;
        return;
    }
    if (cs == CLI_CONFIG_VALID)
        fprintf(stderr,
                "mailspool: note: no [area] section of %s serves area \"%s\"; From uses "
                "the placeholder %s\n",
                c->config_path, area, CLI_RENDER_PLACEHOLDER);
    else
        fprintf(stderr,
                "mailspool: note: configuration %s is %s; From uses the placeholder %s "
                "(the profile's FromAddress is used when sending)\n",
                c->config_path, cs == CLI_CONFIG_INVALID ? "invalid" : "not readable",
                CLI_RENDER_PLACEHOLDER);
}

static int cli_render_stream(struct spool *sp, const struct message *m, const struct mime_sender *s,
                             struct err *e)
{
    struct mime *mm = mime_new(m, s, spool_att_read, sp);
    static char buf[64 * 1024];
    ssize_t n;
    int rc = 0;
    /* Bounded: every read consumes output until mime_read reports the end. */
    while ((n = mime_read(mm, buf, sizeof buf, e)) > 0)
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            rc = err_set(e, EX_IOERR, "render: cannot write to standard output");
            break;
        }
    if (n < 0)
        rc = -1;
    mime_free(mm);
    return rc;
}

int cli_render_main(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'h') {
            puts("usage: mailspool render ID\n"
                 "Prints the RFC 5322 message as the SMTP transport would send it.");
            return 0;
        }
        return cli_util_bad_option("render", argv);
    }
    int64_t id;
    if (optind + 1 != argc || cli_util_parse_id(argv[optind], &id) != 0)
        return cli_util_usage("render", "give one message id (a positive number)");
    struct err e = {0};
    struct spool *sp;
    if (cli_spool_open(c, SPOOL_READONLY, &sp, &e) != 0)
        return cli_util_fail(&e);
    struct message *m = NULL;
    int rc = spool_load(sp, id, &m, &e);
    if (rc == 0 && (rc = message_validate(m, &e)) != 0)
        err_prefix(&e, "message %lld cannot be sent as stored", (long long)id);
    if (rc == 0) {
        struct mime_sender s;
        cli_render_sender(c, m->area, &s);
        rc = cli_render_stream(sp, m, &s, &e);
    }
    message_free(m);
    spool_close(sp);
    return rc == 0 ? 0 : cli_util_fail(&e);
}
