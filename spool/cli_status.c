/*
 * cli_status — `mailspool status`: queue figures per area and state, the
 * oldest queued message, whether the daemon is alive, and per profile the
 * transport, last success and error, suspension, token and secret expiry.
 *
 * Owns: presenting what the daemon wrote into the daemon and profiles
 * tables. "Alive" means: the pid exists and the heartbeat is recent.
 * Never: writes to the spool, or shows a secret (the tables hold none).
 */
#include "cli.h"
#include "isotime.h"
#include "spool_admin.h"
#include "xmalloc.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A heartbeat older than this means the daemon is hung or gone. */
#define CLI_STATUS_STALE 120
/* status warns about a secret expiring within this many days (SPEC 3). */
#define CLI_STATUS_SECRET_WARN_DAYS 30

struct cli_status_area {
    char *area;
    int64_t count[5]; /* by enum msg_state */
    int64_t oldest_queued;
};

struct cli_status {
    int64_t now;
    struct spool_counts counts;
    struct spool_daemon_row daemon;
    int alive;
    struct cli_status_area *areas;
    size_t nareas;
    struct spool_profile_row *profiles;
    size_t nprofiles;
};

static void cli_status_group(struct cli_status *s, const struct spool_area_count *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *area = v[i].area ? v[i].area : "";
        if (s->nareas == 0 || strcmp(s->areas[s->nareas - 1].area, area) != 0) {
            s->areas = xreallocarray(s->areas, s->nareas + 1, sizeof *s->areas);
            memset(&s->areas[s->nareas], 0, sizeof *s->areas);
            s->areas[s->nareas++].area = xstrdup(area);
        }
        struct cli_status_area *a = &s->areas[s->nareas - 1];
        int st = msg_state_parse(v[i].state);
        if (st >= 0)
            a->count[st] = v[i].count;
        if (st == MSG_QUEUED)
            a->oldest_queued = v[i].oldest;
    }
}

static int cli_status_load(struct spool *sp, struct cli_status *s, struct err *e)
{
    s->now = (int64_t)time(NULL);
    struct spool_area_count *ac = NULL;
    size_t nac = 0;
    if (spool_counts(sp, &s->counts, e) != 0 || spool_admin_daemon(sp, &s->daemon, e) != 0 ||
        spool_admin_profiles(sp, &s->profiles, &s->nprofiles, e) != 0 ||
        spool_admin_area_counts(sp, &ac, &nac, e) != 0)
        return -1;
    cli_status_group(s, ac, nac);
    spool_admin_area_counts_free(ac, nac);
    if (s->daemon.present && s->daemon.pid > 0) {
        int exists = kill((pid_t)s->daemon.pid, 0) == 0 || errno == EPERM;
        s->alive = exists && s->now - s->daemon.heartbeat <= CLI_STATUS_STALE;
    }
    return 0;
}

static void cli_status_free(struct cli_status *s)
{
    for (size_t i = 0; i < s->nareas; i++)
        free(s->areas[i].area);
    free(s->areas);
    spool_admin_profiles_free(s->profiles, s->nprofiles);
}

/* Days from today (UTC) to the day of t; negative when past. */
static int64_t cli_status_days_left(int64_t t, int64_t now)
{
    int64_t a = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    return a - now / 86400;
}

static void cli_status_date(int64_t t, char *out, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, len, "%Y-%m-%d", &tm) == 0)
        snprintf(out, len, "@%lld", (long long)t);
}

static void cli_status_print_daemon(const struct cli_status *s)
{
    char age[32], up[32], t[40];
    if (!s->daemon.present) {
        puts("daemon:   not running (no heartbeat ever written)");
        return;
    }
    isotime_format_age(s->now - s->daemon.heartbeat, age, sizeof age);
    isotime_format_age(s->now - s->daemon.started, up, sizeof up);
    isotime_format(s->daemon.heartbeat, t, sizeof t);
    if (s->alive)
        printf("daemon:   running (pid %ld, up %s, heartbeat %s ago)\n", s->daemon.pid, up, age);
    else
        printf("daemon:   NOT running (pid %ld gone or silent; last heartbeat %s, %s ago)\n",
               s->daemon.pid, t, age);
}

/* now - t for a time read from a message row, which may hold any integer:
 * saturated instead of overflowing (and never INT64_MIN, which has no
 * negation). */
static int64_t cli_status_age(const struct cli_status *s, int64_t t)
{
    int64_t age;
    if (__builtin_sub_overflow(s->now, t, &age) || age == INT64_MIN)
        return t < 0 ? INT64_MAX : -INT64_MAX;
    return age;
}

static void cli_status_print_queue(const struct cli_status *s)
{
    const struct spool_counts *c = &s->counts;
    printf("queue:    %lld queued (%lld deferred), %lld sending, %lld sent, %lld failed, "
           "%lld cancelled\n",
           (long long)c->queued, (long long)c->deferred, (long long)c->sending, (long long)c->sent,
           (long long)c->failed, (long long)c->cancelled);
    if (c->oldest_queued) {
        char age[32];
        isotime_format_age(cli_status_age(s, c->oldest_queued), age, sizeof age);
        printf("oldest:   queued %s ago\n", age);
    }
    if (s->nareas == 0)
        return;
    printf("%-16s %8s %8s %8s %8s %9s  %s\n", "area", "queued", "sending", "sent", "failed",
           "cancelled", "oldest queued");
    for (size_t i = 0; i < s->nareas; i++) {
        const struct cli_status_area *a = &s->areas[i];
        char age[32] = "-";
        if (a->oldest_queued)
            isotime_format_age(cli_status_age(s, a->oldest_queued), age, sizeof age);
        printf("%-16s %8lld %8lld %8lld %8lld %9lld  %s\n", a->area, (long long)a->count[0],
               (long long)a->count[1], (long long)a->count[2], (long long)a->count[3],
               (long long)a->count[4], age);
    }
}

static void cli_status_print_profile(const struct cli_status *s, const struct spool_profile_row *p)
{
    char t[40];
    printf("profile %s (%s):\n", p->name ? p->name : "", p->transport ? p->transport : "-");
    isotime_format(p->last_success, t, sizeof t);
    printf("  last success:    %s\n", p->last_success ? t : "never");
    isotime_format(p->last_error_at, t, sizeof t);
    if (p->last_error_at)
        printf("  last error:      %s %s\n", t, p->last_error ? p->last_error : "");
    else
        printf("  last error:      none\n");
    isotime_format(p->suspended_until, t, sizeof t);
    if (p->suspended_until > s->now)
        printf("  suspended until: %s\n", t);
    else
        printf("  suspended:       no\n");
    if (p->token_expires) {
        isotime_format(p->token_expires, t, sizeof t);
        printf("  token expires:   %s\n", t);
    }
    if (p->secret_expires) {
        int64_t days = cli_status_days_left(p->secret_expires, s->now);
        cli_status_date(p->secret_expires, t, sizeof t);
        printf("  secret expires:  %s (%lld days left)%s\n", t, (long long)days,
               days < 0                              ? " EXPIRED: create a new client secret"
               : days <= CLI_STATUS_SECRET_WARN_DAYS ? " renew it soon"
                                                     : "");
    }
}

static cJSON *cli_status_json_profile(const struct cli_status *s, const struct spool_profile_row *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", p->name ? p->name : "");
    cJSON_AddStringToObject(o, "transport", p->transport ? p->transport : "");
    cJSON_AddNumberToObject(o, "last_success", (double)p->last_success);
    cJSON_AddNumberToObject(o, "last_error_at", (double)p->last_error_at);
    cJSON_AddItemToObject(o, "last_error",
                          p->last_error ? cJSON_CreateString(p->last_error) : cJSON_CreateNull());
    cJSON_AddBoolToObject(o, "suspended", p->suspended_until > s->now);
    cJSON_AddNumberToObject(o, "suspended_until", (double)p->suspended_until);
    cJSON_AddNumberToObject(o, "token_expires", (double)p->token_expires);
    cJSON_AddNumberToObject(o, "secret_expires", (double)p->secret_expires);
    if (p->secret_expires) {
        char d[32];
        cli_status_date(p->secret_expires, d, sizeof d);
        cJSON_AddStringToObject(o, "secret_expires_date", d);
        cJSON_AddNumberToObject(o, "secret_days_left",
                                (double)cli_status_days_left(p->secret_expires, s->now));
    }
    return o;
}

static cJSON *cli_status_json(const struct cli_status *s, const char *path)
{
    static const char *const names[5] = {"queued", "sending", "sent", "failed", "cancelled"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "spool", path);
    cJSON *d = cJSON_AddObjectToObject(o, "daemon");
    cJSON_AddBoolToObject(d, "running", s->alive);
    if (s->daemon.present) {
        cJSON_AddNumberToObject(d, "pid", (double)s->daemon.pid);
        cJSON_AddNumberToObject(d, "started", (double)s->daemon.started);
        cJSON_AddNumberToObject(d, "uptime", (double)(s->now - s->daemon.started));
        cJSON_AddNumberToObject(d, "heartbeat", (double)s->daemon.heartbeat);
        cJSON_AddNumberToObject(d, "heartbeat_age", (double)(s->now - s->daemon.heartbeat));
    }
    const struct spool_counts *c = &s->counts;
    cJSON *t = cJSON_AddObjectToObject(o, "counts");
    int64_t tv[5] = {c->queued, c->sending, c->sent, c->failed, c->cancelled};
    for (int i = 0; i < 5; i++)
        cJSON_AddNumberToObject(t, names[i], (double)tv[i]);
    cJSON_AddNumberToObject(t, "deferred", (double)c->deferred);
    cJSON_AddItemToObject(o, "oldest_queued_age",
                          c->oldest_queued
                              ? cJSON_CreateNumber((double)cli_status_age(s, c->oldest_queued))
                              : cJSON_CreateNull());
    cJSON *areas = cJSON_AddObjectToObject(o, "areas");
    for (size_t i = 0; i < s->nareas; i++) {
        cJSON *a = cJSON_AddObjectToObject(areas, s->areas[i].area);
        for (int k = 0; k < 5; k++)
            cJSON_AddNumberToObject(a, names[k], (double)s->areas[i].count[k]);
        int64_t old = s->areas[i].oldest_queued;
        cJSON_AddItemToObject(a, "oldest_queued_age",
                              old ? cJSON_CreateNumber((double)cli_status_age(s, old))
                                  : cJSON_CreateNull());
    }
    cJSON *ps = cJSON_AddArrayToObject(o, "profiles");
    for (size_t i = 0; i < s->nprofiles; i++)
        cJSON_AddItemToArray(ps, cli_status_json_profile(s, &s->profiles[i]));
    return o;
}

static void cli_status_print(const struct cli_status *s, const char *path)
{
    printf("spool:    %s\n", path);
    cli_status_print_daemon(s);
    cli_status_print_queue(s);
    if (s->nprofiles == 0)
        puts("profiles: none reported yet (mailspoold writes them when it runs)");
    for (size_t i = 0; i < s->nprofiles; i++)
        cli_status_print_profile(s, &s->profiles[i]);
}

int cli_status_main(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int json = 0, ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'j')
            json = 1;
        else if (ch == 'h') {
            puts("usage: mailspool status [--json]");
            return 0;
        } else
            return cli_util_bad_option("status", argv);
    }
    if (optind != argc)
        return cli_util_usage("status", "unexpected argument \"%s\"", argv[optind]);
    struct err e = {0};
    struct spool *sp;
    if (cli_spool_open(c, SPOOL_READONLY, &sp, &e) != 0)
        return cli_util_fail(&e);
    struct cli_status s = {0};
    int rc = cli_status_load(sp, &s, &e);
    if (rc == 0 && json)
        cli_util_print_json(cli_status_json(&s, spool_path(sp)));
    else if (rc == 0)
        cli_status_print(&s, spool_path(sp));
    cli_status_free(&s);
    spool_close(sp);
    return rc == 0 ? 0 : cli_util_fail(&e);
}
