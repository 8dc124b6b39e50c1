/*
 * cli_show — `mailspool show`: every field of one message and every
 * delivery attempt (time, transport, result, server reply).
 *
 * Owns: the show layout ("field: value" lines) and its JSON form.
 * Never: writes to the spool or prints attachment bytes.
 */
#include "cli.h"
#include "isotime.h"
#include "spool_admin.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void cli_show_time(const char *label, int64_t t)
{
    char buf[40];
    isotime_format(t, buf, sizeof buf);
    printf("%-13s %s\n", label, buf);
}

static void cli_show_str(const char *label, const char *s)
{
    printf("%-13s %s\n", label, s ? s : "-");
}

/* Bodies can be long: show their size (render and --json show them whole). */
static void cli_show_body(const char *label, const char *body)
{
    if (body)
        printf("%-13s %zu bytes\n", label, strlen(body));
    else
        printf("%-13s -\n", label);
}

static void cli_show_attempt_time(int64_t at_ms, char *out, size_t len)
{
    char base[40];
    isotime_format(at_ms / 1000, base, sizeof base);
    /* Insert milliseconds before the offset: ...T19:00:01.123+01:00 */
    size_t n = strlen(base);
    if (n > 6 && at_ms > 0)
        snprintf(out, len, "%.*s.%03lld%s", (int)(n - 6), base, (long long)(at_ms % 1000),
                 base + n - 6);
    else
        snprintf(out, len, "%s", base);
}

static void cli_show_text(const struct spool_row *r, const struct message *m,
                          const struct spool_attempt_row *at, size_t nat)
{
    printf("%-13s %lld\n", "id:", (long long)r->id);
    cli_show_str("state:", r->state);
    cli_show_str("area:", r->area);
    cli_show_str("ref:", r->ref);
    cli_show_str("subject:", m->subject);
    printf("%-13s %d\n", "priority:", r->priority);
    cli_show_time("created:", r->created);
    cli_show_time("updated:", r->updated);
    cli_show_time("not before:", r->not_before);
    cli_show_time("expires:", r->expires);
    cli_show_time("next attempt:", r->next_attempt);
    printf("%-13s %d\n", "attempts:", r->attempts);
    cli_show_str("last error:", r->last_error);
    cli_show_str("message-id:", m->message_id ? m->message_id : "(derived when sent)");
    cli_show_str("reply-to:", m->reply_to);
    if (m->draft_id)
        cli_show_str("graph draft:", m->draft_id);
    for (size_t i = 0; i < m->nrcpts; i++) {
        char label[16];
        snprintf(label, sizeof label, "%s:", rcpt_kind_name(m->rcpts[i].kind));
        /* A recipient's own outcome, once the daemon decided it. */
        const char *st = m->rcpts[i].state == RCPT_SENT     ? "  [sent]"
                         : m->rcpts[i].state == RCPT_FAILED ? "  [refused]"
                                                            : "";
        if (m->rcpts[i].name)
            printf("%-13s %s <%s>%s\n", label, m->rcpts[i].name, m->rcpts[i].addr, st);
        else
            printf("%-13s %s%s\n", label, m->rcpts[i].addr, st);
    }
    for (size_t i = 0; i < m->nhdrs; i++)
        printf("%-13s %s: %s\n", "header:", m->hdrs[i].name, m->hdrs[i].value);
    cli_show_body("text:", m->text);
    cli_show_body("html:", m->html);
    for (size_t i = 0; i < m->natts; i++) {
        const struct msg_attachment *a = &m->atts[i];
        printf("%-13s %s (%s, %lld bytes, sha256 %s)\n", "attachment:", a->name ? a->name : "",
               a->content_type ? a->content_type : "", (long long)a->size,
               a->sha256[0] ? a->sha256 : "unknown");
    }
    for (size_t i = 0; i < nat; i++) {
        char t[48];
        cli_show_attempt_time(at[i].at_ms, t, sizeof t);
        printf("%-13s %s %s profile=%s result=%s %lld ms reply=\"%s\"\n", "attempt:", t,
               at[i].transport && *at[i].transport ? at[i].transport : "-",
               at[i].profile ? at[i].profile : "-", at[i].result ? at[i].result : "-",
               (long long)at[i].duration_ms, at[i].reply ? at[i].reply : "");
    }
}

static cJSON *cli_show_json_parts(const struct message *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *rc = cJSON_AddArrayToObject(o, "rcpts");
    for (size_t i = 0; i < m->nrcpts; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "kind", rcpt_kind_name(m->rcpts[i].kind));
        cJSON_AddStringToObject(r, "address", m->rcpts[i].addr);
        if (m->rcpts[i].name)
            cJSON_AddStringToObject(r, "name", m->rcpts[i].name);
        const char *st = rcpt_state_name(m->rcpts[i].state);
        cJSON_AddItemToObject(r, "state", st ? cJSON_CreateString(st) : cJSON_CreateNull());
        cJSON_AddItemToArray(rc, r);
    }
    cJSON *hs = cJSON_AddArrayToObject(o, "headers");
    for (size_t i = 0; i < m->nhdrs; i++) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "name", m->hdrs[i].name);
        cJSON_AddStringToObject(h, "value", m->hdrs[i].value);
        cJSON_AddItemToArray(hs, h);
    }
    cJSON *as = cJSON_AddArrayToObject(o, "attachments");
    for (size_t i = 0; i < m->natts; i++) {
        const struct msg_attachment *a = &m->atts[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "id", (double)a->id);
        cJSON_AddStringToObject(j, "name", a->name ? a->name : "");
        cJSON_AddStringToObject(j, "content_type", a->content_type ? a->content_type : "");
        cJSON_AddNumberToObject(j, "size", (double)a->size);
        cJSON_AddStringToObject(j, "sha256", a->sha256);
        cJSON_AddItemToArray(as, j);
    }
    return o;
}

static cJSON *cli_show_json(const struct spool_row *r, const struct message *m,
                            const struct spool_attempt_row *at, size_t nat)
{
    cJSON *o = cli_list_row_json(r);
    cJSON_DeleteItemFromObject(o, "first_recipient");
    cJSON_DeleteItemFromObject(o, "recipients");
    cJSON *parts = cli_show_json_parts(m);
    cJSON_AddItemToObject(o, "recipients", cJSON_DetachItemFromObject(parts, "rcpts"));
    cJSON_AddItemToObject(o, "headers", cJSON_DetachItemFromObject(parts, "headers"));
    cJSON_AddItemToObject(o, "attachments", cJSON_DetachItemFromObject(parts, "attachments"));
    cJSON_Delete(parts);
    cJSON_AddItemToObject(o, "message_id",
                          m->message_id ? cJSON_CreateString(m->message_id) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "reply_to",
                          m->reply_to ? cJSON_CreateString(m->reply_to) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "draft_id",
                          m->draft_id ? cJSON_CreateString(m->draft_id) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "text", m->text ? cJSON_CreateString(m->text) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "html", m->html ? cJSON_CreateString(m->html) : cJSON_CreateNull());
    cJSON *arr = cJSON_AddArrayToObject(o, "attempt_log");
    for (size_t i = 0; i < nat; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "at_ms", (double)at[i].at_ms);
        cJSON_AddStringToObject(a, "profile", at[i].profile ? at[i].profile : "");
        cJSON_AddStringToObject(a, "transport", at[i].transport ? at[i].transport : "");
        cJSON_AddStringToObject(a, "result", at[i].result ? at[i].result : "");
        cJSON_AddStringToObject(a, "reply", at[i].reply ? at[i].reply : "");
        cJSON_AddNumberToObject(a, "duration_ms", (double)at[i].duration_ms);
        cJSON_AddItemToArray(arr, a);
    }
    return o;
}

/* Loads and prints message id. */
static int cli_show_one(struct spool *sp, int64_t id, int json, struct err *e)
{
    struct spool_row r;
    if (spool_admin_row(sp, id, &r, e) != 0)
        return -1;
    struct message *m = NULL;
    struct spool_attempt_row *at = NULL;
    size_t nat = 0;
    int rc = spool_load(sp, id, &m, e);
    if (rc == 0)
        rc = spool_admin_attempts(sp, id, &at, &nat, e);
    if (rc == 0 && json)
        cli_util_print_json(cli_show_json(&r, m, at, nat));
    else if (rc == 0)
        cli_show_text(&r, m, at, nat);
    spool_admin_attempts_free(at, nat);
    message_free(m);
    spool_admin_row_clear(&r);
    return rc;
}

int cli_show_main(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"ref", required_argument, NULL, 'r'},
        {"area", required_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *ref = NULL, *area = NULL;
    int json = 0, ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'r')
            ref = optarg;
        else if (ch == 'a')
            area = optarg;
        else if (ch == 'j')
            json = 1;
        else if (ch == 'h') {
            puts("usage: mailspool show ID|--ref KEY [--area A] [--json]");
            return 0;
        } else
            return cli_util_bad_option("show", argv);
    }
    int64_t id = 0;
    if (ref == NULL && (optind + 1 != argc || cli_util_parse_id(argv[optind], &id) != 0))
        return cli_util_usage("show", "give one message id (a positive number) or --ref KEY");
    if (ref != NULL && optind != argc)
        return cli_util_usage("show", "give either an id or --ref KEY, not both");
    struct err e = {0};
    struct spool *sp;
    if (cli_spool_open(c, SPOOL_READONLY, &sp, &e) != 0)
        return cli_util_fail(&e);
    int rc = ref ? spool_admin_find_ref(sp, area, ref, &id, &e) : 0;
    if (rc == 0)
        rc = cli_show_one(sp, id, json, &e);
    spool_close(sp);
    return rc == 0 ? 0 : cli_util_fail(&e);
}
