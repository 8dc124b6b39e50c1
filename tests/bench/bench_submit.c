/*
 * bench_submit — runs one process per message, like sendmail, without a
 * scripting language in the way.
 *
 *     bench_submit [-i STDIN_PATTERN] PARALLEL COUNT -- ARGV...
 *
 * Runs ARGV COUNT times, at most PARALLEL at a time (posix_spawnp, i.e.
 * vfork+exec in glibc), with every literal "{}" in an argument replaced by the
 * run's index (0 .. COUNT-1). A child's standard input is /dev/null, or with
 * -i the file STDIN_PATTERN names after the same "{}" replacement, opened by
 * posix_spawn itself (sendmail reads the message from standard input: no
 * shell per message). A child's standard output goes to /dev/null;
 * its standard error goes to a memory file of its slot and is printed, with
 * the index and exit status, only when the child fails. Prints
 *     submitted COUNT seconds S
 * (first spawn to last exit) and exits 0, or 1 when any child failed (at most
 * BENCH_SUBMIT_SHOW of them are printed), 64 on a usage error.
 * Used by tests/bench/bench.py (figures 3, 4 and 5): the Python harness cost CPU
 * on the same cores as the submitters. Owns nothing of the product.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xmalloc.h"

#define BENCH_SUBMIT_MAXPAR 256
#define BENCH_SUBMIT_SHOW 10     /* failing children printed */
#define BENCH_SUBMIT_ERRMAX 2048 /* bytes of one child's stderr printed */

extern char **environ;

struct bench_submit_slot {
    pid_t pid; /* 0: free */
    long index;
    int errfd; /* memfd: the child's stderr */
};

static double bench_submit_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* s with every "{}" replaced by idx, or NULL when s holds none. */
static char *bench_submit_subst(const char *s, const char *idx)
{
    if (strstr(s, "{}") == NULL)
        return NULL;
    size_t n = 0, il = strlen(idx);
    for (const char *p = s; (p = strstr(p, "{}")) != NULL; p += 2)
        n++;
    char *out = xmalloc(strlen(s) + n * il + 1), *o = out;
    for (const char *p = s;;) {
        const char *q = strstr(p, "{}");
        if (q == NULL) {
            strcpy(o, p);
            break;
        }
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, idx, il);
        o += il;
        p = q + 2;
    }
    return out;
}

/* Starts run index in slot; 0 or -1 (printed). */
static int bench_submit_spawn(struct bench_submit_slot *sl, long index, char **tmpl, int argc,
                              const char *in_tmpl, int devnull)
{
    char idx[24];
    snprintf(idx, sizeof idx, "%ld", index);
    char **argv = xcalloc((size_t)argc + 1, sizeof *argv);
    char **owned = xcalloc((size_t)argc + 1, sizeof *owned);
    for (int i = 0; i < argc; i++) {
        owned[i] = bench_submit_subst(tmpl[i], idx);
        argv[i] = owned[i] ? owned[i] : tmpl[i];
    }
    if (ftruncate(sl->errfd, 0) != 0 || lseek(sl->errfd, 0, SEEK_SET) != 0)
        perror("bench_submit: resetting a stderr buffer");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    char *in_path = in_tmpl ? bench_submit_subst(in_tmpl, idx) : NULL;
    if (in_tmpl) /* glibc copies the path */
        posix_spawn_file_actions_addopen(&fa, 0, in_path ? in_path : in_tmpl, O_RDONLY, 0);
    else
        posix_spawn_file_actions_adddup2(&fa, devnull, 0);
    posix_spawn_file_actions_adddup2(&fa, devnull, 1);
    posix_spawn_file_actions_adddup2(&fa, sl->errfd, 2);
    int rc = posix_spawnp(&sl->pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        fprintf(stderr, "bench_submit: #%ld: cannot run %s%s%s: %s\n", index, tmpl[0],
                in_tmpl ? " < " : "", in_tmpl ? (in_path ? in_path : in_tmpl) : "", strerror(rc));
    free(in_path);
    for (int i = 0; i < argc; i++)
        free(owned[i]);
    free(owned);
    free(argv);
    if (rc != 0) {
        sl->pid = 0;
        return -1;
    }
    sl->index = index;
    return 0;
}

/* Prints a failed child's status and the start of its stderr. */
static void bench_submit_report(const struct bench_submit_slot *sl, int status)
{
    char buf[BENCH_SUBMIT_ERRMAX + 1];
    ssize_t n = pread(sl->errfd, buf, BENCH_SUBMIT_ERRMAX, 0);
    buf[n > 0 ? n : 0] = '\0';
    if (WIFEXITED(status))
        fprintf(stderr, "bench_submit: #%ld exited %d: %s", sl->index, WEXITSTATUS(status), buf);
    else
        fprintf(stderr, "bench_submit: #%ld killed by signal %d: %s", sl->index,
                WIFSIGNALED(status) ? WTERMSIG(status) : 0, buf);
    if (n <= 0 || buf[n - 1] != '\n')
        fputc('\n', stderr);
}

static long bench_submit_num(const char *s, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno || end == s || *end || v < 1 || v > max ? -1 : v;
}

int main(int argc, char **argv)
{
    const char *in_tmpl = NULL;
    if (argc > 2 && strcmp(argv[1], "-i") == 0) {
        in_tmpl = argv[2];
        argc -= 2;
        argv += 2;
    }
    long par = argc > 4 ? bench_submit_num(argv[1], BENCH_SUBMIT_MAXPAR) : -1;
    long count = argc > 4 ? bench_submit_num(argv[2], 100000000L) : -1;
    if (argc < 5 || strcmp(argv[3], "--") != 0 || par < 0 || count < 0) {
        fprintf(stderr, "usage: bench_submit [-i STDIN_PATTERN] PARALLEL(1..%d) COUNT -- ARGV...\n",
                BENCH_SUBMIT_MAXPAR);
        return 64;
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) {
        perror("bench_submit: /dev/null");
        return 1;
    }
    struct bench_submit_slot slots[BENCH_SUBMIT_MAXPAR] = {{0}};
    for (long s = 0; s < par; s++) {
        slots[s].errfd = memfd_create("bench_submit-stderr", MFD_CLOEXEC);
        if (slots[s].errfd < 0) {
            perror("bench_submit: memfd_create");
            return 1;
        }
    }
    long next = 0, running = 0, failed = 0;
    double t0 = bench_submit_now();
    /* Each turn starts one child or reaps one: bounded by 2 * COUNT turns. */
    while (next < count || running > 0) {
        if (next < count && running < par) {
            long s = 0;
            while (slots[s].pid != 0)
                s++;
            if (bench_submit_spawn(&slots[s], next, argv + 4, argc - 4, in_tmpl, devnull) != 0)
                failed++;
            else
                running++;
            next++;
            continue;
        }
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            perror("bench_submit: waitpid");
            return 1;
        }
        for (long s = 0; s < par; s++) {
            if (slots[s].pid != pid)
                continue;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                if (failed < BENCH_SUBMIT_SHOW)
                    bench_submit_report(&slots[s], status);
                failed++;
            }
            slots[s].pid = 0;
            running--;
            break;
        }
    }
    double secs = bench_submit_now() - t0;
    printf("submitted %ld seconds %.6f\n", count, secs);
    if (failed)
        fprintf(stderr, "bench_submit: %ld of %ld runs failed\n", failed, count);
    return failed ? 1 : 0;
}
