/*
 * submit — the submission socket: producers' `mailspool enqueue` hands its
 * message to the daemon, which stores it with the same spool_enqueue a
 * direct enqueue runs and answers once the message is durable.
 *
 * Why a socket when producers can write the spool: one `mailspool enqueue`
 * that opens the spool itself spends most of its time loading SQLite,
 * parsing the schema and syncing its own commit under the write lock. The
 * daemon has the spool open already: the loop thread stores every request
 * complete in a loop turn in one transaction (it is the spool's writer
 * anyway, so nothing waits for a lock), and one sync of the write-ahead
 * log on another thread makes many commits durable at once while the loop
 * goes on. The spool stays the interface: with no daemon, or a message too
 * large for a request, the CLI writes the spool as before.
 *
 * Owns: the socket "<spool>.sock" (made with the spool file's group and
 * mode, so exactly those who may write the spool may connect; removed when
 * the daemon stops), the producers' connections until their request is
 * stored, the "submitted" log lines, and the syncer thread, which owns a
 * read-only descriptor of the write-ahead log, the answers waiting for a
 * sync, and their connections from then on.
 * Never: answers before the message is durable (the answer is sent only by
 * the syncer, after an fdatasync that began after the commit); opens a path
 * a producer names (attachments arrive as sealed memory copies the producer
 * made, so a hung network mount stalls the producer, never the loop);
 * stores attachments larger than SUBMIT_ATTACH_MAX on the loop thread (the
 * producer writes those itself); touches the spool or the log from the
 * syncer.
 */
#include "daemon.h"
#include "submit_wire.h"
#include "xmalloc.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Connections read at once; more producers wait in the listen backlog. */
#define SUBMIT_CLIENTS 64
/* A producer that does not finish its request in this time is dropped. */
#define SUBMIT_CLIENT_S 10

struct submit_client {
    struct submit *s;
    struct submit_client *next; /* in s->clients or s->ready */
    int fd;
    long uid, pid;
    struct timeval deadline; /* the whole request, however slowly it drips */
    struct event *ev;
    unsigned char head[SUBMIT_HEAD_LEN];
    size_t have; /* bytes of head + body read */
    unsigned char *body;
    uint32_t body_len, want_fds;
    int fds[SUBMIT_FDS_MAX];
    size_t nfds;
    bool bad;
};

/* An answer waiting for the sync, with the connection it goes to. */
struct submit_answer {
    int fd;
    bool stored; /* a new row: a failed sync turns the answer into an error */
    struct buf reply;
};

struct submit {
    struct daemon *d;
    char *path;
    int listen_fd;
    struct event *ev_listen, *ev_batch, *ev_resume;
    struct submit_client *clients, *ready;
    size_t nclients;
    /* the syncer */
    pthread_t th;
    bool running;
    int wal_fd;
    pthread_mutex_t mu; /* guards the three below */
    pthread_cond_t cv;
    struct submit_answer *queue;
    size_t nqueue, cap;
    bool stop;
};

/* ---- the syncer thread ----------------------------------------------- */

static void submit_send(struct submit_answer *a)
{
    ssize_t k;
    do
        k = send(a->fd, a->reply.data, a->reply.len, MSG_NOSIGNAL);
    while (k < 0 && errno == EINTR);
    /* A producer gone meanwhile learns nothing; its message is stored. */
    close(a->fd);
    buf_free(&a->reply);
}

static void *submit_syncer(void *arg)
{
    struct submit *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (s->nqueue == 0 && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        struct submit_answer *q = s->queue;
        size_t n = s->nqueue;
        bool stop = s->stop;
        s->queue = NULL;
        s->nqueue = s->cap = 0;
        pthread_mutex_unlock(&s->mu);
        if (n == 0 && stop)
            return NULL;
        /* One sync for every commit before it: each answer was queued
         * after its commit, so this sync began after that commit. */
        int rc = fdatasync(s->wal_fd);
        int saved = errno;
        for (size_t i = 0; i < n; i++) {
            if (rc != 0 && q[i].stored) {
                char msg[256];
                snprintf(msg, sizeof msg,
                         "mailspoold could not sync the spool (%s): the message may or may not "
                         "be queued; check with `mailspool list` before enqueueing it again",
                         strerror(saved));
                buf_reset(&q[i].reply);
                submit_wire_reply(&q[i].reply, EX_IOERR, 0, false, msg);
            }
            submit_send(&q[i]);
        }
        free(q);
    }
}

static void submit_queue(struct submit *s, int fd, bool stored, struct buf *reply)
{
    pthread_mutex_lock(&s->mu);
    if (s->nqueue == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->queue = xreallocarray(s->queue, s->cap, sizeof *s->queue);
    }
    s->queue[s->nqueue++] = (struct submit_answer){fd, stored, *reply};
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- the loop thread: connections ------------------------------------ */

static void submit_client_free(struct submit_client *c)
{
    for (size_t i = 0; i < c->nfds; i++)
        close(c->fds[i]);
    if (c->ev)
        event_free(c->ev);
    free(c->body);
    if (c->fd >= 0)
        close(c->fd);
    c->s->nclients--;
    if (c->s->nclients == SUBMIT_CLIENTS - 1 && c->s->ev_listen &&
        !evtimer_pending(c->s->ev_resume, NULL))
        event_add(c->s->ev_listen, NULL); /* room again */
    free(c);
}

static void submit_unlink_client(struct submit_client **list, struct submit_client *c)
{
    for (struct submit_client **p = list; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            return;
        }
}

/* Keeps the descriptors a read brought; too many make the request bad. */
static void submit_take_fds(struct submit_client *c, struct msghdr *mh)
{
    for (struct cmsghdr *h = CMSG_FIRSTHDR(mh); h; h = CMSG_NXTHDR(mh, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
            if (c->nfds < SUBMIT_FDS_MAX) {
                c->fds[c->nfds++] = fd;
            } else {
                close(fd);
                c->bad = true;
            }
        }
    }
    if (mh->msg_flags & MSG_CTRUNC)
        c->bad = true;
}

/* Reads what is there: 1 when the request is complete, 0 more to come,
 * -1 the producer is gone or sent something that is not a request. */
static int submit_read(struct submit_client *c)
{
    for (;;) {
        unsigned char *dst;
        size_t room;
        if (c->have < SUBMIT_HEAD_LEN) {
            dst = c->head + c->have;
            room = SUBMIT_HEAD_LEN - c->have;
        } else {
            dst = c->body + (c->have - SUBMIT_HEAD_LEN);
            room = SUBMIT_HEAD_LEN + c->body_len - c->have;
        }
        if (room == 0)
            return c->nfds == c->want_fds && !c->bad ? 1 : -1;
        union {
            struct cmsghdr h;
            char space[CMSG_SPACE(sizeof(int) * SUBMIT_FDS_MAX)];
        } ctl;
        struct iovec iov = {dst, room};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        mh.msg_control = ctl.space;
        mh.msg_controllen = sizeof ctl.space;
        ssize_t k = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (k <= 0)
            return -1;
        submit_take_fds(c, &mh);
        size_t before = c->have;
        c->have += (size_t)k;
        if (before < SUBMIT_HEAD_LEN && c->have == SUBMIT_HEAD_LEN) {
            struct err e = {0};
            if (submit_wire_head(c->head, &c->body_len, &c->want_fds, &e) != 0)
                return -1;
            c->body = xmalloc(c->body_len ? c->body_len : 1);
        }
    }
}

static void submit_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct submit_client *c = arg;
    struct submit *s = c->s;
    struct timeval now;
    event_base_gettimeofday_cached(s->d->base, &now);
    bool late = (what & EV_TIMEOUT) || evutil_timercmp(&now, &c->deadline, >);
    int r = late ? -1 : submit_read(c);
    if (r == 0)
        return;
    submit_unlink_client(&s->clients, c);
    if (r < 0) {
        submit_client_free(c);
        return;
    }
    event_del(c->ev);
    c->next = s->ready;
    s->ready = c;
    event_active(s->ev_batch, 0, 0); /* once per turn: one transaction */
}

static void submit_on_accept(evutil_socket_t lfd, short what, void *arg);

/* Out of descriptors: listen again in a second (a level-triggered listener
 * would otherwise call us again at once, for as long as that lasts). */
static void submit_pause(struct submit *s, int err)
{
    log_event(s->d->log, LL_WARN, "submit-refused", "reason=%q",
              err == EMFILE || err == ENFILE ? "out of file descriptors: paused for 1 s"
                                             : "out of memory: paused for 1 s");
    event_del(s->ev_listen);
    struct timeval tv = {1, 0};
    evtimer_add(s->ev_resume, &tv);
}

static void submit_on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct submit *s = arg;
    if (s->ev_listen)
        event_add(s->ev_listen, NULL);
}

static void submit_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    struct submit *s = arg;
    while (s->nclients < SUBMIT_CLIENTS) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM))
            submit_pause(s, errno);
        if (fd < 0)
            return; /* EAGAIN, or a producer gone already */
        struct submit_client *c = xcalloc(1, sizeof *c);
        c->s = s;
        c->fd = fd;
        c->uid = c->pid = -1;
        struct ucred cr;
        socklen_t len = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0) {
            c->uid = (long)cr.uid;
            c->pid = (long)cr.pid;
        }
        s->nclients++;
        struct timeval tv = {SUBMIT_CLIENT_S, 0};
        event_base_gettimeofday_cached(s->d->base, &c->deadline);
        evutil_timeradd(&c->deadline, &tv, &c->deadline);
        c->ev = event_new(s->d->base, fd, EV_READ | EV_PERSIST, submit_on_read, c);
        if (c->ev == NULL || event_add(c->ev, &tv) != 0) {
            submit_client_free(c);
            continue;
        }
        c->next = s->clients;
        s->clients = c;
    }
    event_del(s->ev_listen); /* full: the backlog holds the rest */
}

/* ---- the loop thread: storing ---------------------------------------- */

/* Attachments are copied into the spool on the loop thread, so only small
 * ones in sealed memory files are taken: a file on a hung network mount,
 * or one that changes meanwhile, could stall or confuse the loop (the CLI
 * sends exactly these). */
static int submit_check_atts(const struct message *m, struct err *e)
{
    const int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
    int64_t total = 0;
    for (size_t i = 0; i < m->natts; i++) {
        struct stat st;
        int fd = m->atts[i].fd;
        if (fd < 0)
            continue;
        int got = fcntl(fd, F_GET_SEALS); /* -1 for anything but a memory file */
        if (got < 0 || (got & seals) != seals || fstat(fd, &st) != 0)
            return err_set(e, EX_PROTOCOL, "attachment %zu: not a sealed memory file: pass a copy",
                           i + 1);
        total += st.st_size;
    }
    if (total > SUBMIT_ATTACH_MAX)
        return err_set(e, EX_PROTOCOL, "attachments too large for the submission socket");
    return 0;
}

/* q->m is NULL for a request that did not decode (always refused). */
static void submit_log(struct submit *s, const struct submit_client *c, const struct spool_enq *q)
{
    if (q->rc == 0)
        log_event(s->d->log, LL_INFO, "submitted", "id=%lld area=%q uid=%ld pid=%ld%s",
                  (long long)q->id, q->m->area, c->uid, c->pid, q->existing ? " existing=yes" : "");
    else
        log_event(s->d->log, LL_WARN, "submit-refused", "uid=%ld pid=%ld status=%d reason=%q",
                  c->uid, c->pid, q->rc, q->e.msg);
}

static void submit_on_batch(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct submit *s = arg;
    size_t n = 0;
    for (struct submit_client *c = s->ready; c; c = c->next)
        n++;
    struct submit_client **cs = xcalloc(n ? n : 1, sizeof *cs);
    struct spool_enq *qs = xcalloc(n ? n : 1, sizeof *qs);
    struct message **ms = xcalloc(n ? n : 1, sizeof *ms);
    size_t nq = 0, i = n;
    /* s->ready is newest first: store in the order the requests completed,
     * so that ids (and ties in the due order) follow arrival. */
    for (struct submit_client *c = s->ready; c; c = c->next)
        cs[--i] = c;
    s->ready = NULL;
    for (i = 0; i < n; i++) {
        struct err e = {0};
        int rc =
            submit_wire_decode(cs[i]->body, cs[i]->body_len, cs[i]->fds, cs[i]->nfds, &ms[i], &e);
        cs[i]->nfds = 0; /* the message owns them now, or decode closed them */
        if (rc == 0 && submit_check_atts(ms[i], &e) != 0) {
            message_free(ms[i]);
            ms[i] = NULL;
        }
        if (ms[i] == NULL) {
            struct spool_enq q = {.rc = e.code ? e.code : EX_PROTOCOL, .e = e, .m = NULL};
            struct buf b = BUF_INIT;
            submit_wire_reply(&b, q.rc, 0, false, e.msg);
            submit_log(s, cs[i], &q);
            submit_queue(s, cs[i]->fd, false, &b);
            cs[i]->fd = -1;
            continue;
        }
        qs[nq++] = (struct spool_enq){.m = ms[i]};
    }
    if (nq > 0)
        spool_enqueue_batch(s->d->spool, qs, nq);
    bool stored = false;
    for (i = 0, nq = 0; i < n; i++) {
        if (ms[i] != NULL) {
            const struct spool_enq *q = &qs[nq++];
            submit_log(s, cs[i], q);
            struct buf b = BUF_INIT;
            submit_wire_reply(&b, q->rc, q->id, q->existing, q->rc ? q->e.msg : "");
            submit_queue(s, cs[i]->fd, q->rc == 0 && !q->existing, &b);
            stored = stored || (q->rc == 0 && !q->existing);
            cs[i]->fd = -1;
            message_free(ms[i]);
        }
        submit_client_free(cs[i]);
    }
    free(cs);
    free(qs);
    free(ms);
    if (stored)
        sched_kick(s->d); /* our own commit: no need to wait for the spool watch */
}

/* ---- start and stop --------------------------------------------------- */

/* Binds under a temporary name and renames: the socket appears with its
 * final group and mode, never with the wider ones of the moment between. */
static int submit_listen(struct submit *s, struct err *e)
{
    struct stat st, db;
    if (lstat(s->path, &st) == 0 && !S_ISSOCK(st.st_mode))
        return err_set(e, EX_CANTCREAT, "%s exists and is not a socket: remove it", s->path);
    if (stat(s->d->spool_path, &db) != 0)
        return err_set(e, EX_CANTCREAT, "spool %s: %s", s->d->spool_path, strerror(errno));
    size_t n = strlen(s->path);
    char *tmp = xmalloc(n + sizeof ".new");
    memcpy(tmp, s->path, n);
    memcpy(tmp + n, ".new", sizeof ".new");
    unlink(tmp);
    struct sockaddr_un sa;
    socklen_t len;
    int dirfd, rc = -1;
    if (submit_wire_addr(tmp, &sa, &len, &dirfd, e) != 0) {
        free(tmp);
        return -1;
    }
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&sa, len) != 0)
        err_set(e, EX_CANTCREAT, "%s: %s", s->path, strerror(errno));
    else if (chmod(tmp, db.st_mode & 0660) != 0 ||
             (chown(tmp, (uid_t)-1, db.st_gid) != 0 && errno != EPERM) ||
             listen(s->listen_fd, 128) != 0 || rename(tmp, s->path) != 0)
        err_set(e, EX_CANTCREAT, "%s: %s", s->path, strerror(errno));
    else
        rc = 0;
    if (rc != 0)
        unlink(tmp);
    if (dirfd >= 0)
        close(dirfd);
    free(tmp);
    return rc;
}

struct submit *submit_new(struct daemon *d, struct err *e)
{
    struct submit *s = xcalloc(1, sizeof *s);
    s->d = d;
    s->listen_fd = s->wal_fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->path = submit_wire_path(d->spool_path);
    if (spool_wal_open(d->spool, &s->wal_fd, e) != 0 || submit_listen(s, e) != 0)
        goto fail;
    s->ev_listen = event_new(d->base, s->listen_fd, EV_READ | EV_PERSIST, submit_on_accept, s);
    s->ev_batch = event_new(d->base, -1, 0, submit_on_batch, s);
    s->ev_resume = evtimer_new(d->base, submit_on_resume, s);
    if (s->ev_listen == NULL || s->ev_batch == NULL || s->ev_resume == NULL ||
        event_add(s->ev_listen, NULL) != 0) {
        err_set(e, EX_SOFTWARE, "cannot watch the submission socket");
        goto fail;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&s->th, NULL, submit_syncer, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        err_set(e, EX_OSERR, "starting the submission syncer: %s", strerror(rc));
        goto fail;
    }
    s->running = true;
    return s;
fail:
    submit_free(s);
    return NULL;
}

void submit_close(struct submit *s)
{
    if (s == NULL || s->listen_fd < 0)
        return;
    /* Producers that come now write the spool themselves. */
    unlink(s->path);
    if (s->ev_listen)
        event_free(s->ev_listen);
    s->ev_listen = NULL;
    close(s->listen_fd);
    s->listen_fd = -1;
}

void submit_free(struct submit *s)
{
    if (s == NULL)
        return;
    submit_close(s);
    /* Requests complete but not stored yet are stored now: the producers
     * have sent everything and wait for the answer. */
    if (s->ready && s->d->spool)
        submit_on_batch(-1, 0, s);
    while (s->clients) {
        struct submit_client *c = s->clients;
        s->clients = c->next;
        submit_client_free(c);
    }
    if (s->running) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->th, NULL); /* it answers what is queued first */
    }
    if (s->ev_batch)
        event_free(s->ev_batch);
    if (s->ev_resume)
        event_free(s->ev_resume);
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}
