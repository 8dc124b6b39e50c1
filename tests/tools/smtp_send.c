/*
 * smtp_send — test driver for the SMTP transport (daemon/smtp*.c).
 *
 * Owns: running a real event loop with a real smtp_pool against whatever
 * server the integration test started, and printing one JSON line per
 * finished job; or, with --test, running smtp_test() and exiting with its code.
 * Never: touches the spool but to read messages (-i), or prints a secret.
 *
 *   smtp_send -c CONF -p PROFILE [-s SPOOL -i ID]... | [-t TO]... [-b BCC]...
 *             [-C CC]... [-S SUBJECT] [-T TEXT] [-n COUNT] [-j THREADS]
 *             [--sequential] [--forget] [--forget-inflight-ms N]
 *             [--abort-after-ms N] [--test]
 *             [--connect-timeout S] [--response-timeout S] [--low-speed S]
 *             [-a PATH]...
 *
 * With -s and -t (no -i) the built message (with -a attachments) is first
 * enqueued into SPOOL through the C API and then loaded back by id, so the
 * workers stream its attachments from the spool as the daemon does.
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "message.h"
#include "smtp.h"
#include "spool.h"
#include "xmalloc.h"

struct run {
    struct event_base *base;
    struct smtp_pool *pool;
    const struct profile *pr;
    struct message **msgs; /* one per job (pointers may repeat) */
    struct smtp_job *jobs;
    size_t njobs, ndone, nsubmitted;
    bool sequential, forget;
    long forget_ms;          /* forget the profile this long after submitting job 2 */
    struct event *forget_ev; /* ... while that job is in flight */
};

static void print_result(const struct smtp_job *j, size_t index, int64_t id)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", (double)index);
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddNumberToObject(o, "curl_code", j->curl_code);
    cJSON_AddNumberToObject(o, "reply_code", j->reply_code);
    cJSON_AddItemToObject(o, "reply", j->reply ? cJSON_CreateString(j->reply) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "error", j->error ? cJSON_CreateString(j->error) : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "stage", smtp_stage_name(j->stage));
    cJSON_AddBoolToObject(o, "data_sent", j->data_sent);
    cJSON *rj = cJSON_AddArrayToObject(o, "rejects");
    for (size_t i = 0; i < j->nrejects; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "addr", j->rejects[i].addr);
        cJSON_AddNumberToObject(r, "code", j->rejects[i].code);
        cJSON_AddStringToObject(r, "reply", j->rejects[i].reply);
        cJSON_AddItemToArray(rj, r);
    }
    cJSON_AddNumberToObject(o, "accepted", (double)j->naccepted);
    cJSON_AddNumberToObject(o, "bytes", (double)j->bytes);
    cJSON_AddNumberToObject(o, "duration_ms", (double)j->duration_ms);
    cJSON_AddBoolToObject(o, "aborted", j->aborted);
    cJSON_AddNumberToObject(o, "msg_err", j->msg_err);
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    cJSON_Delete(o);
}

static void on_forget_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct run *r = arg;
    smtp_pool_forget_profile(r->pool, r->pr->name);
}

static void submit_next(struct run *r)
{
    size_t i = r->nsubmitted++;
    struct smtp_job *j = &r->jobs[i];
    smtp_pool_submit(r->pool, j);
    if (i == 1 && r->forget_ms > 0) {
        struct timeval tv = {r->forget_ms / 1000, (r->forget_ms % 1000) * 1000};
        r->forget_ev = evtimer_new(r->base, on_forget_timer, r);
        evtimer_add(r->forget_ev, &tv);
    }
}

static void job_done(struct smtp_job *job, void *arg)
{
    struct run *r = arg;
    size_t i = (size_t)(job - r->jobs);
    print_result(job, i, r->msgs[i]->id);
    r->ndone++;
    if (r->ndone == r->njobs) {
        event_base_loopbreak(r->base);
        return;
    }
    if (r->sequential && r->nsubmitted < r->njobs) {
        if (r->forget)
            smtp_pool_forget_profile(r->pool, r->pr->name);
        submit_next(r);
    }
}

static void on_abort_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct run *r = arg;
    smtp_pool_abort(r->pool);
}

static struct message *build_message(char **to, size_t nto, char **cc, size_t ncc, char **bcc,
                                     size_t nbcc, const char *subject, const char *text)
{
    struct message *m = message_new();
    struct err e = {0};
    m->area = xstrdup("test");
    m->subject = xstrdup(subject);
    m->text = xstrdup(text);
    m->created = (int64_t)time(NULL);
    char **lists[] = {to, cc, bcc};
    size_t ns[] = {nto, ncc, nbcc};
    enum rcpt_kind kinds[] = {RCPT_TO, RCPT_CC, RCPT_BCC};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < ns[k]; i++)
            if (message_add_rcpt(m, kinds[k], lists[k][i], &e) != 0) {
                fprintf(stderr, "smtp_send: %s\n", e.msg);
                exit(EX_USAGE);
            }
    return m;
}

static struct message *load_message(struct spool *sp, int64_t id)
{
    struct message *m = NULL;
    struct err e = {0};
    if (spool_load(sp, id, &m, &e) != 0 || message_validate(m, &e) != 0) {
        fprintf(stderr, "smtp_send: message %lld: %s\n", (long long)id, e.msg);
        exit(e.code ? e.code : EX_DATAERR);
    }
    return m;
}

/* Enqueues m (plus attachments) with the producer API, frees it, and
 * returns the stored copy as the daemon would load it. */
static struct message *enqueue_and_load(const char *path, struct message *m, char **att,
                                        size_t natt)
{
    struct err e = {0};
    for (size_t i = 0; i < natt; i++) {
        struct msg_attachment *a = message_add_attachment(m);
        a->path = xstrdup(att[i]);
        const char *slash = strrchr(att[i], '/');
        a->name = xstrdup(slash ? slash + 1 : att[i]);
        a->content_type = xstrdup("application/octet-stream");
    }
    struct spool *sp = NULL;
    int64_t id = 0;
    bool existing = false;
    if (spool_open(path, SPOOL_PRODUCER, &sp, &e) != 0 ||
        spool_enqueue(sp, m, &id, &existing, &e) != 0) {
        fprintf(stderr, "smtp_send: enqueue: %s\n", e.msg);
        exit(e.code ? e.code : EX_SOFTWARE);
    }
    message_free(m);
    struct message *loaded = load_message(sp, id);
    spool_close(sp);
    return loaded;
}

enum { O_SEQ = 256, O_FORGET, O_ABORT, O_TEST, O_CT, O_RT, O_LS, O_FORGET_MS };

static const struct option longopts[] = {
    {"sequential", no_argument, NULL, O_SEQ},
    {"forget", no_argument, NULL, O_FORGET},
    {"forget-inflight-ms", required_argument, NULL, O_FORGET_MS},
    {"abort-after-ms", required_argument, NULL, O_ABORT},
    {"test", no_argument, NULL, O_TEST},
    {"connect-timeout", required_argument, NULL, O_CT},
    {"response-timeout", required_argument, NULL, O_RT},
    {"low-speed", required_argument, NULL, O_LS},
    {NULL, 0, NULL, 0},
};

struct args {
    const char *conf, *profile, *spool, *subject, *text;
    char *to[64], *cc[64], *bcc[64], *att[16];
    size_t nto, ncc, nbcc, natt;
    int64_t ids[1024];
    size_t nids;
    long count, threads, abort_ms, ct, rt, ls, forget_ms;
    bool sequential, forget, test;
};

/* Repeatable options; false when c is not one. */
static bool arg_list(struct args *a, int c)
{
    switch (c) {
    case 'i':
        if (a->nids < 1024)
            a->ids[a->nids++] = atoll(optarg);
        return true;
    case 't':
        if (a->nto < 64)
            a->to[a->nto++] = optarg;
        return true;
    case 'C':
        if (a->ncc < 64)
            a->cc[a->ncc++] = optarg;
        return true;
    case 'b':
        if (a->nbcc < 64)
            a->bcc[a->nbcc++] = optarg;
        return true;
    case 'a':
        if (a->natt < 16)
            a->att[a->natt++] = optarg;
        return true;
    default:
        return false;
    }
}

/* Options with a number; false when c is not one. */
static bool arg_number(struct args *a, int c)
{
    long *slot = c == 'n'           ? &a->count
                 : c == 'j'         ? &a->threads
                 : c == O_ABORT     ? &a->abort_ms
                 : c == O_CT        ? &a->ct
                 : c == O_RT        ? &a->rt
                 : c == O_LS        ? &a->ls
                 : c == O_FORGET_MS ? &a->forget_ms
                                    : NULL;
    if (slot)
        *slot = atol(optarg);
    return slot != NULL;
}

static void parse_args(int argc, char **argv, struct args *a)
{
    int c;
    while ((c = getopt_long(argc, argv, "c:p:s:i:t:C:b:S:T:n:j:a:", longopts, NULL)) != -1) {
        if (arg_list(a, c) || arg_number(a, c))
            continue;
        if (c == 'c')
            a->conf = optarg;
        else if (c == 'p')
            a->profile = optarg;
        else if (c == 's')
            a->spool = optarg;
        else if (c == 'S')
            a->subject = optarg;
        else if (c == 'T')
            a->text = optarg;
        else if (c == O_SEQ)
            a->sequential = true;
        else if (c == O_FORGET)
            a->forget = true;
        else if (c == O_TEST)
            a->test = true;
        else
            exit(EX_USAGE); /* getopt printed why */
    }
    if (!a->conf || !a->profile || (a->nids == 0 && a->nto + a->ncc + a->nbcc == 0)) {
        fprintf(stderr, "smtp_send: -c, -p and -i or -t are required\n");
        exit(EX_USAGE);
    }
}

static int run_pool(struct args *a, const struct profile *pr, struct message **msgs, size_t n,
                    const struct smtp_timeouts *t)
{
    struct run r = {.pr = pr, .msgs = msgs, .njobs = n};
    r.sequential = a->sequential;
    r.forget = a->forget;
    r.forget_ms = a->forget_ms;
    r.base = event_base_new();
    struct err e = {0};
    r.pool = smtp_pool_new(r.base, (int)a->threads, a->spool, t, &e);
    if (r.pool == NULL) {
        fprintf(stderr, "smtp_send: %s\n", e.msg);
        return e.code ? e.code : EX_SOFTWARE;
    }
    r.jobs = xcalloc(n, sizeof *r.jobs);
    for (size_t i = 0; i < n; i++) {
        r.jobs[i].profile = pr;
        r.jobs[i].msg = msgs[i];
        r.jobs[i].done = job_done;
        r.jobs[i].arg = &r;
    }
    struct event *abort_ev = NULL;
    if (a->abort_ms > 0) {
        abort_ev = evtimer_new(r.base, on_abort_timer, &r);
        struct timeval tv = {a->abort_ms / 1000, (a->abort_ms % 1000) * 1000};
        evtimer_add(abort_ev, &tv);
    }
    size_t first = r.sequential ? 1 : n;
    for (size_t i = 0; i < first; i++)
        submit_next(&r);
    event_base_dispatch(r.base);
    smtp_pool_free(r.pool);
    if (abort_ev)
        event_free(abort_ev);
    if (r.forget_ev)
        event_free(r.forget_ev);
    event_base_free(r.base);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        failed += r.jobs[i].curl_code != 0;
        smtp_job_clear(&r.jobs[i]);
    }
    free(r.jobs);
    return failed ? 1 : 0;
}

/* The distinct messages to send: loaded by id (-i), or built from -t/-b/-C. */
static struct message **messages_from_args(struct args *a)
{
    struct message **uniq = xcalloc(a->nids ? a->nids : 1, sizeof *uniq);
    if (a->nids == 0) {
        uniq[0] = build_message(a->to, a->nto, a->cc, a->ncc, a->bcc, a->nbcc, a->subject, a->text);
        if (a->spool)
            uniq[0] = enqueue_and_load(a->spool, uniq[0], a->att, a->natt);
        return uniq;
    }
    struct spool *sp = NULL;
    struct err e = {0};
    if (a->spool == NULL || spool_open(a->spool, SPOOL_READONLY, &sp, &e) != 0) {
        fprintf(stderr, "smtp_send: spool: %s\n", a->spool ? e.msg : "-s is required with -i");
        exit(EX_USAGE);
    }
    for (size_t i = 0; i < a->nids; i++)
        uniq[i] = load_message(sp, a->ids[i]);
    spool_close(sp);
    return uniq;
}

int main(int argc, char **argv)
{
    struct args a = {
        .subject = "smtp_send test", .text = "Hello from smtp_send.\r\n", .count = 1, .threads = 2};
    parse_args(argc, argv, &a);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    struct config *cfg = NULL;
    struct diags d = {0};
    int rc = config_load(a.conf, CONFIG_RESOLVE_SECRETS, &cfg, &d);
    if (rc != 0) {
        diags_print(&d, stderr);
        diags_free(&d);
        return rc;
    }
    diags_free(&d);
    const struct profile *pr = config_profile_find(cfg, a.profile);
    if (pr == NULL) {
        fprintf(stderr, "smtp_send: no profile %s\n", a.profile);
        return EX_USAGE;
    }
    struct smtp_timeouts t = {a.ct ? a.ct : (long)cfg->connect_timeout,
                              a.rt ? a.rt : (long)cfg->response_timeout,
                              a.ls ? a.ls : (long)cfg->low_speed_time};

    size_t nuniq = a.nids ? a.nids : 1;
    struct message **uniq = messages_from_args(&a);

    if (a.test) {
        rc = smtp_test(pr, uniq[0], &t, stdout);
    } else {
        size_t n = nuniq * (size_t)(a.count > 0 ? a.count : 1);
        struct message **msgs = xcalloc(n, sizeof *msgs);
        for (size_t i = 0; i < n; i++)
            msgs[i] = uniq[i % nuniq];
        rc = run_pool(&a, pr, msgs, n, &t);
        free(msgs);
    }
    for (size_t i = 0; i < nuniq; i++)
        message_free(uniq[i]);
    free(uniq);
    config_free(cfg);
    curl_global_cleanup();
    return rc;
}
