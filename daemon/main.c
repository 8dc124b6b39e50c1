/*
 * main — mailspoold: start-up, the event loop, and the orderly end.
 *
 * Owns: command-line handling (-c, --check, --version, -v, and --test used
 * by `mailspool test`), the start-up order (config, log, instance lock,
 * spool, transports, loop), and the clean-up order (transports and curl
 * before the event base). The only place in daemon/ that may exit.
 * Never: does delivery work itself.
 */
#include "daemon.h"
#include "graph.h"
#include "smtp.h"
#include "testsend.h"
#include "xmalloc.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <libgen.h>
#include <locale.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: mailspoold [-c CONFIG] [--check] [--version] [-v]\n"
                 "       mailspoold [-c CONFIG] --test PROFILE --to ADDRESS\n");
}

static const char *config_path_default(const char *opt)
{
    if (opt)
        return opt;
    const char *env = getenv("MAILSPOOL_CONF");
    return env && *env ? env : CONFIG_DEFAULT_PATH;
}

/* Loads the configuration, printing every diagnostic; NULL when invalid. */
static struct config *main_load_config(const char *path, FILE *out)
{
    struct config *cfg = NULL;
    struct diags dg = {0};
    config_load(path, CONFIG_RESOLVE_SECRETS, &cfg, &dg);
    diags_print(&dg, out);
    diags_free(&dg);
    return cfg;
}

/* --check: every rule of the configuration, and that the spool can be opened. */
static int main_check(const char *path)
{
    struct config *cfg = main_load_config(path, stdout);
    if (cfg == NULL) {
        printf("%s: configuration is invalid\n", path);
        return EX_CONFIG;
    }
    const char *spool = cfg->spool_path ? cfg->spool_path : CONFIG_DEFAULT_SPOOL;
    /* FILE:LINE: like every other problem; the default path has no line. */
    char where[64] = "";
    if (cfg->spool_path_line > 0)
        snprintf(where, sizeof where, "%d:", cfg->spool_path_line);
    int rc = 0;
    struct err e = {0};
    if (access(spool, F_OK) == 0) {
        struct spool *sp = NULL;
        if (spool_open(spool, SPOOL_READONLY, &sp, &e) != 0) {
            printf("%s:%s [spool] path %s: %s\n", path, where, spool, e.msg);
            rc = EX_CONFIG;
        }
        spool_close(sp);
    } else {
        char *copy = xstrdup(spool);
        const char *dir = dirname(copy);
        if (access(dir, W_OK | X_OK) != 0) {
            printf("%s:%s [spool] path %s%s: cannot create it in %s: %s: create that directory, "
                   "writable by the mailspool user (the package's tmpfiles.d does), or fix the "
                   "path\n",
                   path, where, spool, where[0] ? "" : " (the default)", dir, strerror(errno));
            rc = EX_CONFIG;
        }
        free(copy);
    }
    if (rc == 0)
        printf("%s: configuration ok (%zu profiles, %zu areas)\n", path, cfg->nprofiles,
               cfg->nareas);
    config_free(cfg);
    return rc;
}

static int main_test(const char *path, const char *profile, const char *to)
{
    struct config *cfg = main_load_config(path, stderr);
    if (cfg == NULL)
        return EX_CONFIG;
    int rc = testsend_run(cfg, profile, to, stdout);
    config_free(cfg);
    return rc;
}

/* Everything up to the first turn of the loop; exits on failure. */
static int main_start(struct daemon *d, struct config *cfg, bool verbose)
{
    struct err e = {0};
    lifecycle_hold_signals();
    d->log = log_new();
    if (log_open(d->log, cfg->log_file, verbose ? LL_DEBUG : cfg->log_level, &e) != 0) {
        fprintf(stderr, "mailspoold: %s\n", e.msg);
        return e.code;
    }
    d->spool_path = xstrdup(cfg->spool_path ? cfg->spool_path : CONFIG_DEFAULT_SPOOL);
    d->cfg = cfgref_new(cfg);
    if (lock_acquire(d->spool_path, &d->lock_fd, &e) != 0) {
        fprintf(stderr, "mailspoold: %s\n", e.msg);
        log_event(d->log, LL_ERROR, "start", "reason=%q", e.msg);
        return e.code;
    }
    if (spool_open(d->spool_path, SPOOL_DAEMON, &d->spool, &e) != 0) {
        fprintf(stderr, "mailspoold: spool %s: %s\n", d->spool_path, e.msg);
        log_event(d->log, LL_ERROR, "start", "spool=%q reason=%q", d->spool_path, e.msg);
        return e.code ? e.code : EX_IOERR;
    }
    log_event(d->log, LL_INFO, "start", "version=%s pid=%ld config=%q spool=%q", MAILSPOOL_VERSION,
              (long)getpid(), d->config_path, d->spool_path);
    int64_t *ids = NULL;
    size_t n = 0;
    if (spool_requeue_sending(d->spool, &ids, &n, &e) != 0) {
        fprintf(stderr, "mailspoold: spool %s: %s\n", d->spool_path, e.msg);
        return e.code ? e.code : EX_IOERR;
    }
    for (size_t i = 0; i < n; i++)
        log_event(d->log, LL_WARN, "requeued", "id=%lld possible-duplicate=yes reason=%q",
                  (long long)ids[i], "was being sent when the daemon stopped");
    free(ids);

    d->base = event_base_new();
    struct smtp_timeouts t = {cfg->connect_timeout, cfg->response_timeout, cfg->low_speed_time};
    d->smtp = smtp_pool_new(d->base, cfg->max_connections, d->spool_path, &t, &e);
    if (d->smtp == NULL) {
        fprintf(stderr, "mailspoold: %s\n", e.msg);
        return e.code ? e.code : EX_OSERR;
    }
    d->graph = graph_new(d->base, d->log, &e);
    if (d->graph == NULL) {
        fprintf(stderr, "mailspoold: %s\n", e.msg);
        return e.code ? e.code : EX_OSERR;
    }
    d->wake = wake_new(d, &e);
    if (d->wake == NULL)
        log_event(d->log, LL_WARN, "start", "reason=%q",
                  "no inotify; new messages are noticed within 5 s");
    d->submit = submit_new(d, &e);
    if (d->submit == NULL)
        log_event(d->log, LL_WARN, "start", "reason=%q effect=%q", e.msg,
                  "no submission socket: producers write the spool themselves");
    d->notify = notify_new(d);
    sched_init(d);
    lifecycle_setup(d, &e);
    profstate_sync(d);
    /* `mailspool status` sees the daemon and its profiles from the first moment. */
    if (spool_heartbeat(d->spool, (long)getpid(), d->started, now_s_wall(), &e) != 0)
        log_event(d->log, LL_WARN, "spool", "op=heartbeat reason=%q", e.msg);
    profstate_publish(d);
    for (size_t i = 0; i < cfg->nprofiles; i++)
        if (!cfg->profiles[i].tls_verify)
            log_event(d->log, LL_WARN, "config-warning", "profile=%q text=%q",
                      cfg->profiles[i].name, "TLSVerify = no: server certificates are not checked");
    return 0;
}

static void main_cleanup(struct daemon *d)
{
    submit_free(d->submit);
    if (d->smtp)
        smtp_pool_free(d->smtp);
    if (d->graph)
        graph_free(d->graph);
    wake_free(d->wake);
    notify_free(d->notify);
    sched_free(d);
    for (int i = 0; i < 4; i++)
        if (d->ev_sig[i])
            event_free(d->ev_sig[i]);
    if (d->ev_tick)
        event_free(d->ev_tick);
    if (d->ev_shutdown)
        event_free(d->ev_shutdown);
    pending_detach(d);
    if (d->base)
        event_base_free(d->base);
    if (d->spool) {
        struct err e = {0};
        pending_flush(d); /* a last chance; what is left is requeued at the next start */
        profstate_publish(d);
        spool_close(d->spool);
        (void)e;
    }
    pending_free_all(d);
    profstate_free_all(d);
    if (d->cfg)
        cfgref_put(d->cfg);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    log_free(d->log);
    free(d->spool_path);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'V'},      {"verbose", no_argument, NULL, 'v'},
        {"test", required_argument, NULL, 'T'},   {"to", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config_opt = NULL, *test_profile = NULL, *test_to = NULL;
    bool check = false, verbose = false;
    int c;
    /* A fixed mmap threshold: glibc otherwise raises it to the size of every
     * large block freed, after which the 1 MiB attachment read buffers of big
     * messages come from each worker thread's own arena and stay resident
     * there (measured: peak RSS 31 MB instead of 22 MB for 5 MiB attachments
     * with the default 16 workers). 256 KiB keeps curl's per-read scratch
     * buffer (twice the upload buffer, smtp_xfer.c) and the read buffer of a
     * 200 KiB attachment on the heap: mmap and munmap for each cost 8 % of
     * the CPU of sending such a message. Fixing it also fixes the trim
     * threshold, which glibc would otherwise raise with it: at its 128 KiB
     * default every arena gave memory back and took it again all the time
     * (W1: 230 instead of 190 us of CPU per message); 1 MiB keeps that. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
    while ((c = getopt_long(argc, argv, "c:v", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_opt = optarg;
            break;
        case 'C':
            check = true;
            break;
        case 'V':
            printf("mailspoold %s\n", MAILSPOOL_VERSION);
            return 0;
        case 'v':
            verbose = true;
            break;
        case 'T':
            test_profile = optarg;
            break;
        case 't':
            test_to = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (optind != argc || (test_profile && !test_to) || (!test_profile && test_to)) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *path = config_path_default(config_opt);
    signal(SIGPIPE, SIG_IGN);
    /* Only the character type: libcurl converts internationalized domain
     * names (daemon/idna.c, and its own envelope) only in a UTF-8 locale.
     * glibc has C.UTF-8 built in; without it such a domain fails its
     * message with a reason instead of going out in UTF-8. */
    if (setlocale(LC_CTYPE, "C.UTF-8") == NULL)
        fprintf(stderr, "mailspoold: warning: no C.UTF-8 locale: addresses with an "
                        "internationalized domain cannot be sent\n");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "mailspoold: libcurl initialisation failed\n");
        return EX_SOFTWARE;
    }
    int rc;
    if (check) {
        rc = main_check(path);
    } else if (test_profile) {
        rc = main_test(path, test_profile, test_to);
    } else {
        struct config *cfg = main_load_config(path, stderr);
        if (cfg == NULL) {
            fprintf(stderr, "mailspoold: %s: configuration is invalid; not starting\n", path);
            curl_global_cleanup();
            return EX_CONFIG;
        }
        struct daemon d = {0};
        d.lock_fd = -1;
        d.config_path = xstrdup(path);
        d.started = now_s_wall();
        d.rand_state = (unsigned int)(getpid() ^ now_ms_wall());
        rc = main_start(&d, cfg, verbose);
        if (rc == 0) {
            log_event(d.log, LL_INFO, "ready", "profiles=%zu areas=%zu max_connections=%d",
                      cfg->nprofiles, cfg->nareas, cfg->max_connections);
            notify_ready(d.notify);
            sched_kick(&d);
            event_base_dispatch(d.base);
            log_event(d.log, LL_INFO, "stop", "reason=%q", "stopped");
        } else if (d.cfg == NULL) {
            config_free(cfg);
        }
        main_cleanup(&d);
        free(d.config_path);
    }
    curl_global_cleanup();
    return rc;
}
