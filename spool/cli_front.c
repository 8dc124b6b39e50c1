/*
 * cli_front — the front `mailspool` binary: enqueue through the daemon's
 * submission socket, everything else by the full CLI.
 *
 * Why two binaries: `mailspool enqueue` runs once per message, like
 * sendmail, so its start-up is the producer's cost. Loading SQLite alone
 * (its relocations are all bound at load) costs a process more than the
 * rest of an enqueue through the socket. The front links no SQLite; the
 * full CLI (LIBEXECDIR/mailspool/mailspool-cli) does the rest with the
 * same code.
 *
 * Owns: choosing between the socket and the full CLI for an enqueue, and
 * handing a command over to the full CLI (exec, same arguments, the
 * standard input that enqueue read replayed from memory).
 * Never: hands over a message the daemon may already have stored
 * (cli_submit decides that), or prints anything itself before an exec.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef LIBEXECDIR
#define LIBEXECDIR "/usr/local/libexec"
#endif
#define CLI_FRONT_FULL "mailspool-cli"

/* The full CLI: beside this program (a build tree), else in the libexec
 * directory beside this program's bin directory (make install, DESTDIR and
 * PREFIX included), else where this build was told it would be. */
static const char *cli_front_full(char *buf, size_t size)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    char *slash = n > 0 ? (self[n] = '\0', strrchr(self, '/')) : NULL;
    if (slash) {
        *slash = '\0';
        static const char *const rel[] = {"/" CLI_FRONT_FULL,
                                          "/../libexec/mailspool/" CLI_FRONT_FULL};
        for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
            int k = snprintf(buf, size, "%s%s", self, rel[i]);
            if (k > 0 && (size_t)k < size && access(buf, X_OK) == 0)
                return buf;
        }
    }
    return LIBEXECDIR "/mailspool/" CLI_FRONT_FULL;
}

/* Puts what enqueue read from standard input back there, from memory. */
static int cli_front_replay_stdin(struct cli *c, struct err *e)
{
    int fd = memfd_create("mailspool-stdin", MFD_CLOEXEC);
    if (fd < 0)
        return err_set(e, EX_OSERR, "standard input: cannot keep it: %s", strerror(errno));
    size_t off = 0;
    while (off < c->stdin_copy.len) {
        ssize_t k = write(fd, c->stdin_copy.data + off, c->stdin_copy.len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            close(fd);
            return err_set(e, EX_OSERR, "standard input: cannot keep it: %s", strerror(errno));
        }
        off += (size_t)k;
    }
    int rc = lseek(fd, 0, SEEK_SET) == 0 && dup2(fd, STDIN_FILENO) == STDIN_FILENO ? 0 : -1;
    int saved = errno;
    close(fd);
    if (rc != 0)
        return err_set(e, EX_OSERR, "standard input: cannot replay it: %s", strerror(saved));
    return 0;
}

int cli_front_exec(struct cli *c, struct err *e)
{
    if (c->stdin_read && cli_front_replay_stdin(c, e) != 0)
        return -1;
    char buf[PATH_MAX];
    const char *full = cli_front_full(buf, sizeof buf);
    fflush(stdout);
    execv(full, c->argv);
    return err_set(e, EX_SOFTWARE, "cannot run %s: %s: reinstall mailspool", full, strerror(errno));
}

int cli_front_enqueue(struct cli *c, const struct message *m, int64_t *id, bool *existing,
                      struct err *e)
{
    const char *path;
    if (cli_util_spool_path(c, &path, e) != 0)
        return -1;
    int rc = cli_submit_enqueue(path, m, id, existing, e);
    if (rc <= 0)
        return rc;
    return cli_front_exec(c, e); /* no daemon took it: the full CLI writes the spool */
}
