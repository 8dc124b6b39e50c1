/*
 * cli_submit — `mailspool enqueue` handing its message to the running
 * daemon over the submission socket instead of writing the spool itself.
 *
 * Why: a producer process that opens the spool pays for loading SQLite,
 * parsing the schema and one sync per message; the daemon, already open,
 * commits the messages of many concurrent producers with one sync. The
 * result is the same row a direct enqueue writes, with the same checks and
 * the same errors (the daemon runs spool_enqueue).
 *
 * Owns: the client's side of the socket: connecting, passing attachments
 * as sealed memory copies of the files (read with the producer's own
 * rights), reading the reply.
 * Never: reports success without the daemon's reply (sent after its
 * commit); never falls back to a direct enqueue once the daemon may have
 * stored the message, unless the message has a ref (then the direct way
 * finds it instead of adding it twice).
 */
#include "cli.h"
#include "submit_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* How long the daemon may take to answer (its commit may wait for the
 * spool's lock like a direct enqueue would). */
#define CLI_SUBMIT_TIMEOUT_S 60

static int cli_submit_connect(const char *spool_path)
{
    char *path = submit_wire_path(spool_path);
    struct sockaddr_un sa;
    socklen_t len;
    int dirfd, fd = -1;
    struct err ignored = {0};
    if (submit_wire_addr(path, &sa, &len, &dirfd, &ignored) == 0) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct timeval tv = {CLI_SUBMIT_TIMEOUT_S, 0};
        if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
                        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
                        connect(fd, (struct sockaddr *)&sa, len) != 0)) {
            close(fd);
            fd = -1;
        }
        if (dirfd >= 0)
            close(dirfd);
    }
    free(path);
    return fd;
}

/* A sealed memory copy of the file open at fd: what the daemon reads can
 * neither change under it nor block it (a file on a hung network mount
 * would stall the daemon's loop, not only this producer). */
static int cli_submit_seal(int fd, const char *path, int *out, struct err *e)
{
    int mfd = memfd_create("mailspool-attachment", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0)
        return err_set(e, EX_OSERR, "attachment %s: cannot copy it: %s", path, strerror(errno));
    char buf[64 * 1024];
    for (;;) {
        ssize_t k = read(fd, buf, sizeof buf);
        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0)
            break;
        ssize_t w = k > 0 ? write(mfd, buf, (size_t)k) : -1;
        if (k < 0 || w != k) {
            int saved = errno;
            close(mfd);
            return err_set(e, k < 0 ? EX_NOINPUT : EX_OSERR, "attachment %s: %s error: %s", path,
                           k < 0 ? "read" : "copy", strerror(saved));
        }
    }
    if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        close(mfd);
        return err_set(e, EX_OSERR, "attachment %s: cannot seal its copy: %s", path,
                       strerror(errno));
    }
    *out = mfd;
    return 0;
}

/* The files the message attaches by path, opened as the direct way would,
 * then copied into sealed memory files (fds, *n of them). 1: more than
 * SUBMIT_ATTACH_MAX in all, nothing copied: write the spool directly. */
static int cli_submit_open(const struct message *m, int *fds, size_t *n, struct err *e)
{
    *n = 0;
    int64_t total = 0;
    for (size_t i = 0; i < m->natts; i++) {
        const char *p = m->atts[i].path;
        if (p == NULL)
            continue;
        /* O_NONBLOCK: opening a FIFO would wait for a writer. */
        int fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        struct stat st;
        if (fd < 0)
            return err_set(e, EX_NOINPUT, "attachment %s: cannot open: %s: check the path", p,
                           strerror(errno));
        fds[(*n)++] = fd;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
            return err_set(e, EX_NOINPUT, "attachment %s: not a regular file: attach a file", p);
        total += st.st_size;
    }
    if (total > SUBMIT_ATTACH_MAX)
        return 1; /* the daemon's loop would copy them: write the spool directly */
    for (size_t i = 0, k = 0; i < m->natts; i++) {
        if (m->atts[i].path == NULL)
            continue;
        int mfd;
        if (cli_submit_seal(fds[k], m->atts[i].path, &mfd, e) != 0)
            return -1;
        close(fds[k]);
        fds[k++] = mfd;
    }
    return 0;
}

/* Sends the whole request; the descriptors go with its first bytes. */
static int cli_submit_send(int sock, const struct buf *req, const int *fds, size_t nfds)
{
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int) * SUBMIT_FDS_MAX)];
    } ctl;
    struct iovec iov = {req->data, req->len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.space;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    size_t off = 0;
    while (off < req->len) {
        ssize_t k = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        off += (size_t)k;
        iov.iov_base = req->data + off;
        iov.iov_len = req->len - off;
        mh.msg_control = NULL;
        mh.msg_controllen = 0;
    }
    return 0;
}

/* Reads the reply: 0 with it parsed, -1 when none came. */
static int cli_submit_reply(int sock, int *rc, int64_t *id, bool *existing, struct err *e)
{
    unsigned char buf[64 + ERR_MSG_MAX];
    size_t have = 0;
    for (;;) {
        long need = submit_wire_reply_len(buf, have);
        if (need < 0)
            return -1;
        if (need > 0 && (size_t)need <= have)
            return submit_wire_parse_reply(buf, (size_t)need, rc, id, existing, e);
        ssize_t k = read(sock, buf + have, sizeof buf - have);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        have += (size_t)k;
    }
}

int cli_submit_enqueue(const char *spool_path, const struct message *m, int64_t *id, bool *existing,
                       struct err *e)
{
    struct buf req = BUF_INIT;
    size_t nfds = 0;
    struct err too_big = {0};
    if (submit_wire_encode(m, &req, &nfds, &too_big) != 0) {
        buf_free(&req);
        return 1;
    }
    int sock = cli_submit_connect(spool_path);
    if (sock < 0) {
        buf_free(&req);
        return 1;
    }
    int fds[SUBMIT_FDS_MAX];
    size_t opened = 0;
    int ret = cli_submit_open(m, fds, &opened, e);
    if (ret == 0 && cli_submit_send(sock, &req, fds, opened) != 0)
        ret = 1; /* the daemon stores only a whole request: nothing was stored */
    int rc = 0;
    if (ret == 0 && cli_submit_reply(sock, &rc, id, existing, e) != 0) {
        /* The daemon had the whole message and did not answer: it may have
         * stored it. A ref makes the direct way safe; without one, adding
         * it again could send it twice. */
        ret = m->ref ? 1
                     : err_set(e, EX_TEMPFAIL,
                               "mailspoold did not confirm the message (it stopped or the spool "
                               "is busy): it may or may not be queued; check with `mailspool "
                               "list` before enqueueing it again, or give --ref so that a "
                               "retry is safe");
    } else if (ret == 0 && rc != 0) {
        ret = -1;
    }
    for (size_t i = 0; i < opened; i++)
        close(fds[i]);
    close(sock);
    buf_free(&req);
    return ret;
}
