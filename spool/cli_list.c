/*
 * cli_list — `mailspool list`: one line (or one JSON object) per message.
 *
 * Owns: the list line format: "ID STATE AREA CREATED ATTEMPTS TO SUBJECT"
 * with the last error appended for deferred and failed messages.
 * Never: writes to the spool.
 */
#include "cli.h"
#include "isotime.h"
#include "spool_admin.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void cli_list_line(const struct spool_row *r)
{
    char created[40];
    isotime_format(r->created, created, sizeof created);
    printf("%-6lld %-9s %-12s %s %2d %s%s", (long long)r->id, r->state ? r->state : "?",
           r->area ? r->area : "", created, r->attempts, r->first_rcpt ? r->first_rcpt : "-",
           r->nrcpts > 1 ? " (+more)" : "");
    printf("  %s", r->subject ? r->subject : "");
    if (r->last_error && r->state && strcmp(r->state, "sent") != 0)
        printf("  [%s]", r->last_error);
    putchar('\n');
}

cJSON *cli_list_row_json(const struct spool_row *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    cJSON_AddStringToObject(o, "state", r->state ? r->state : "");
    cJSON_AddStringToObject(o, "area", r->area ? r->area : "");
    if (r->ref)
        cJSON_AddStringToObject(o, "ref", r->ref);
    else
        cJSON_AddNullToObject(o, "ref");
    cJSON_AddStringToObject(o, "subject", r->subject ? r->subject : "");
    cJSON_AddNumberToObject(o, "priority", r->priority);
    cJSON_AddNumberToObject(o, "created", (double)r->created);
    cJSON_AddNumberToObject(o, "updated", (double)r->updated);
    cJSON_AddNumberToObject(o, "not_before", (double)r->not_before);
    cJSON_AddNumberToObject(o, "expires", (double)r->expires);
    cJSON_AddNumberToObject(o, "next_attempt", (double)r->next_attempt);
    cJSON_AddNumberToObject(o, "attempts", r->attempts);
    if (r->last_error)
        cJSON_AddStringToObject(o, "last_error", r->last_error);
    else
        cJSON_AddNullToObject(o, "last_error");
    cJSON_AddNumberToObject(o, "recipients", (double)r->nrcpts);
    if (r->first_rcpt)
        cJSON_AddStringToObject(o, "first_recipient", r->first_rcpt);
    else
        cJSON_AddNullToObject(o, "first_recipient");
    return o;
}

static int cli_list_limit(const char *s, int64_t *out)
{
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < 0)
        return -1;
    *out = v;
    return 0;
}

int cli_list_main(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'}, {"area", required_argument, NULL, 'a'},
        {"limit", required_argument, NULL, 'n'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    struct spool_list_filter f = {0};
    int json = 0, ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 's' && msg_state_parse(optarg) < 0)
            return cli_util_usage("list",
                                  "--state %s: use queued, sending, sent, failed or "
                                  "cancelled",
                                  optarg);
        if (ch == 'n' && cli_list_limit(optarg, &f.limit) != 0)
            return cli_util_usage("list", "--limit %s: must be a number >= 0", optarg);
        if (ch == 's')
            f.state = optarg;
        else if (ch == 'a')
            f.area = optarg;
        else if (ch == 'j')
            json = 1;
        else if (ch == 'h') {
            puts("usage: mailspool list [--state S] [--area A] [--limit N] [--json]\n"
                 "Lists messages oldest first; --limit N shows the newest N.");
            return 0;
        } else if (ch != 'n')
            return cli_util_bad_option("list", argv);
    }
    if (optind < argc)
        return cli_util_usage("list", "unexpected argument \"%s\"", argv[optind]);
    struct err e = {0};
    struct spool *sp;
    if (cli_spool_open(c, SPOOL_READONLY, &sp, &e) != 0)
        return cli_util_fail(&e);
    struct spool_row *rows;
    size_t n;
    int rc = spool_admin_list(sp, &f, &rows, &n, &e);
    spool_close(sp);
    if (rc != 0)
        return cli_util_fail(&e);
    if (json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(arr, cli_list_row_json(&rows[i]));
        cli_util_print_json(arr);
    } else {
        for (size_t i = 0; i < n; i++)
            cli_list_line(&rows[i]);
    }
    spool_admin_rows_free(rows, n);
    return 0;
}
