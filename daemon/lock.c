/*
 * lock — one daemon per spool: an exclusive flock on "SPOOL.lock" holding the
 * owner's pid. The kernel drops the lock when the process dies, so a kill -9
 * never leaves a stale lock behind.
 * Never: blocks; a second daemon is told at once who runs (exit 75).
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int lock_acquire(const char *spool_path, int *fd_out, struct err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.lock", spool_path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return err_set(e, EX_CANTCREAT, "lock file %s: cannot open: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        long pid = strtol(buf, NULL, 10);
        close(fd);
        if (errno == EWOULDBLOCK || errno == EAGAIN || pid > 0)
            return err_set(e, EX_TEMPFAIL,
                           "spool %s is already served by mailspoold pid %ld (lock %s); stop it "
                           "first or use another spool",
                           spool_path, pid, path);
        return err_set(e, EX_TEMPFAIL, "lock file %s: %s", path, strerror(errno));
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        close(fd);
        return err_set(e, EX_IOERR, "lock file %s: cannot write pid: %s", path, strerror(errno));
    }
    *fd_out = fd;
    return 0;
}
