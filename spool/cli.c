/*
 * cli — main of `mailspool`: global options and command dispatch.
 *
 * Owns: `mailspool [-c CONFIG] [-s SPOOL] COMMAND [ARGS]`, the command
 * table and the top-level usage text.
 * Never: does a command's work itself; each command lives in its cli_*.c.
 *
 * Built twice: as the full CLI (mailspool-cli), and with CLI_FRONT as the
 * front `mailspool`, which runs enqueue and test (neither needs SQLite)
 * itself and hands every other command to the full CLI (cli_front.c says
 * why).
 */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(struct cli *c, int argc, char **argv);
} cli_commands[] = {
#ifdef CLI_FRONT
    {"enqueue", cli_enqueue_main},
    {"test", cli_test_main},
#else
    {"enqueue", cli_enqueue_main}, {"list", cli_list_main},     {"show", cli_show_main},
    {"render", cli_render_main},   {"retry", cli_admin_retry},  {"cancel", cli_admin_cancel},
    {"purge", cli_admin_purge},    {"status", cli_status_main}, {"test", cli_test_main},
#endif
};

static void cli_help(FILE *out)
{
    fputs("usage: mailspool [-c CONFIG] [-s SPOOL] COMMAND [ARGS]\n"
          "\n"
          "  enqueue --area A --to ADDR [--cc ADDR] [--bcc ADDR] --subject S\n"
          "          [--text FILE|-] [--html FILE] [--attach 'PATH[;name=N][;type=T]']\n"
          "          [--reply-to ADDR] [--ref KEY] [--not-before TIME] [--expires TIME]\n"
          "          [--priority N] [--header 'X-Name: value']\n"
          "  enqueue --json FILE|-\n"
          "  list [--state S] [--area A] [--limit N] [--json]\n"
          "  show ID|--ref KEY [--area A] [--json]\n"
          "  render ID\n"
          "  retry ID|--failed [--area A]\n"
          "  cancel ID\n"
          "  purge [--older-than DURATION]\n"
          "  status [--json]\n"
          "  test --profile P --to ADDR\n"
          "\n"
          "  -c CONFIG  configuration (default $MAILSPOOL_CONF, else " CONFIG_DEFAULT_PATH ")\n"
          "  -s SPOOL   spool (default $MAILSPOOL_SPOOL, else [spool] path, else\n"
          "             " CONFIG_DEFAULT_SPOOL ")\n"
          "Times are ISO 8601 with an offset or Z; durations take s, m, h, d.\n"
          "Exit codes: 0 ok, 64 usage, 65 bad data, 66 missing input, 73 cannot create,\n"
          "74 I/O error, 75 busy (retry), 78 configuration error.\n",
          out);
}

static int cli_dispatch(struct cli *c, int argc, char **argv)
{
    for (size_t i = 0; i < sizeof cli_commands / sizeof cli_commands[0]; i++)
        if (strcmp(argv[0], cli_commands[i].name) == 0) {
            optind = 0; /* glibc: fully reinitialise getopt for the command */
            opterr = 0; /* commands word their own errors */
            return cli_commands[i].fn(c, argc, argv);
        }
#ifdef CLI_FRONT
    struct err e = {0};
    cli_front_exec(c, &e);
    return cli_util_fail(&e);
#endif
    fprintf(stderr, "mailspool: unknown command \"%s\": run `mailspool --help`\n", argv[0]);
    return EX_USAGE;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"spool", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct cli c = {0};
    c.argv = argv;
#ifdef CLI_FRONT
    c.store = cli_front_enqueue;
#else
    c.store = cli_spool_enqueue;
#endif
    int ch;
    /* '+': stop at the command; its options are parsed by the command. */
    while ((ch = getopt_long(argc, argv, "+c:s:hV", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            c.config_opt = optarg;
            break;
        case 's':
            c.spool_opt = optarg;
            break;
        case 'h':
            cli_help(stdout);
            return 0;
        case 'V':
            printf("mailspool %s\n", MAILSPOOL_VERSION);
            return 0;
        default:
            fputs("Run `mailspool --help` for usage.\n", stderr);
            return EX_USAGE;
        }
    }
    if (optind >= argc) {
        cli_help(stderr);
        return EX_USAGE;
    }
    const char *env = getenv("MAILSPOOL_CONF");
    c.config_path = c.config_opt ? c.config_opt : env && *env ? env : CONFIG_DEFAULT_PATH;
    int rc = cli_dispatch(&c, argc - optind, argv + optind);
    cli_util_free(&c);
    if (fflush(stdout) != 0 && rc == 0) {
        perror("mailspool: standard output");
        rc = EX_IOERR;
    }
    return rc;
}
