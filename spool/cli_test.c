/*
 * cli_test — `mailspool test --profile P --to ADDR`: runs
 * `mailspoold -c CONFIG --test P --to ADDR`, which owns the transports and
 * the secrets, and passes its exit code through.
 *
 * Owns: finding mailspoold (next to this binary, then SBINDIR, then PATH).
 * Never: reads secrets or talks to a mail server itself.
 */
#include "cli.h"
#include "xmalloc.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* mailspoold in the directory of the running binary (a build tree), else in
 * the installed SBINDIR (bin/ and sbin/ differ after `make install`, and
 * sbin/ is often not in a user's PATH), or NULL. */
static char *cli_test_sibling(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *path = xasprintf("%s/mailspoold", dirname(self));
        if (access(path, X_OK) == 0)
            return path;
        free(path);
    }
    if (access(SBINDIR "/mailspoold", X_OK) == 0)
        return xstrdup(SBINDIR "/mailspoold");
    return NULL;
}

int cli_test_main(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"profile", required_argument, NULL, 'p'},
        {"to", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *profile = NULL, *to = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'p')
            profile = optarg;
        else if (ch == 't')
            to = optarg;
        else if (ch == 'h') {
            puts("usage: mailspool test --profile P --to ADDR\n"
                 "Sends one test message through profile P now (runs mailspoold --test).");
            return 0;
        } else
            return cli_util_bad_option("test", argv);
    }
    if (profile == NULL || to == NULL || optind != argc)
        return cli_util_usage("test", "give --profile P and --to ADDR");
    char *daemon = cli_test_sibling();
    const char *prog = daemon ? daemon : "mailspoold";
    char *args[] = {(char *)prog, "-c", (char *)c->config_path, "--test", (char *)profile, "--to",
                    (char *)to,   NULL};
    fflush(stdout);
    execvp(prog, args);
    fprintf(stderr,
            "mailspool: test: cannot run %s: %s: install mailspoold next to mailspool or in "
            "PATH\n",
            prog, strerror(errno));
    free(daemon);
    return EX_OSFILE;
}
