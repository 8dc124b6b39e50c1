/*
 * cli_admin — `mailspool retry`, `cancel` and `purge`.
 *
 * Owns: these commands' arguments and their one-line confirmations.
 * Never: touches a message that the daemon is sending (spool_admin refuses
 * with EX_TEMPFAIL) or deletes a queued message.
 */
#include "cli.h"
#include "spool_admin.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLI_ADMIN_PURGE_DEFAULT (30 * 86400)

static int cli_admin_help(const char *usage)
{
    puts(usage);
    return 0;
}

static int cli_admin_retry_run(struct cli *c, int failed, const char *area, int64_t id)
{
    struct err e = {0};
    struct spool *sp;
    if (cli_spool_open(c, SPOOL_PRODUCER, &sp, &e) != 0)
        return cli_util_fail(&e);
    int64_t n = 0;
    int rc = failed ? spool_admin_retry_failed(sp, area, &n, &e) : spool_admin_retry(sp, id, &e);
    spool_close(sp);
    if (rc != 0)
        return cli_util_fail(&e);
    if (failed)
        printf("requeued %lld failed message%s\n", (long long)n, n == 1 ? "" : "s");
    else
        printf("message %lld is due now\n", (long long)id);
    return 0;
}

int cli_admin_retry(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"failed", no_argument, NULL, 'f'},
        {"area", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *area = NULL;
    int failed = 0, ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'f')
            failed = 1;
        else if (ch == 'a')
            area = optarg;
        else if (ch == 'h')
            return cli_admin_help("usage: mailspool retry ID|--failed [--area A]\n"
                                  "Makes a queued message due now, or requeues a failed one, or "
                                  "a sent one for the recipients a server refused.");
        else
            return cli_util_bad_option("retry", argv);
    }
    int64_t id = 0;
    if (failed && optind != argc)
        return cli_util_usage("retry", "give either an id or --failed, not both");
    if (!failed && area)
        return cli_util_usage("retry", "--area goes with --failed");
    if (!failed && (optind + 1 != argc || cli_util_parse_id(argv[optind], &id) != 0))
        return cli_util_usage("retry", "give one message id (a positive number) or --failed");
    return cli_admin_retry_run(c, failed, area, id);
}

int cli_admin_cancel(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'h')
            return cli_admin_help("usage: mailspool cancel ID\n"
                                  "A queued message will not be sent.");
        return cli_util_bad_option("cancel", argv);
    }
    int64_t id;
    if (optind + 1 != argc || cli_util_parse_id(argv[optind], &id) != 0)
        return cli_util_usage("cancel", "give one message id (a positive number)");
    struct err e = {0};
    struct spool *sp;
    if (cli_spool_open(c, SPOOL_PRODUCER, &sp, &e) != 0)
        return cli_util_fail(&e);
    int rc = spool_admin_cancel(sp, id, &e);
    spool_close(sp);
    if (rc != 0)
        return cli_util_fail(&e);
    printf("message %lld cancelled\n", (long long)id);
    return 0;
}

int cli_admin_purge(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"older-than", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int64_t age = CLI_ADMIN_PURGE_DEFAULT;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'o' && config_parse_duration(optarg, &age) != 0)
            return cli_util_usage("purge",
                                  "--older-than %s: not a duration: write e.g. 30d, "
                                  "12h, 90m or 0",
                                  optarg);
        if (ch == 'h')
            return cli_admin_help("usage: mailspool purge [--older-than DURATION]\n"
                                  "Deletes sent, failed and cancelled messages last changed "
                                  "longer ago than DURATION (default 30d).");
        if (ch != 'o')
            return cli_util_bad_option("purge", argv);
    }
    if (optind != argc)
        return cli_util_usage("purge", "unexpected argument \"%s\"", argv[optind]);
    struct err e = {0};
    struct spool *sp;
    if (cli_spool_open(c, SPOOL_PRODUCER, &sp, &e) != 0)
        return cli_util_fail(&e);
    int64_t n = 0;
    /* "older than 0" means every finished message, even one from this second. */
    int64_t before = age == 0 ? (int64_t)time(NULL) + 1 : (int64_t)time(NULL) - age;
    int rc = spool_admin_purge(sp, before, &n, &e);
    spool_close(sp);
    if (rc != 0)
        return cli_util_fail(&e);
    printf("purged %lld message%s\n", (long long)n, n == 1 ? "" : "s");
    return 0;
}
