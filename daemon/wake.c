/*
 * wake — wakes the scheduler when another process commits to the spool.
 *
 * inotify on the spool's directory sees every commit (CLI, C API or plain
 * SQL by any process) as a write to the -wal file (or the database file in
 * other journal modes). Our own commits wake it too; that costs one
 * coalesced scheduler pass (a few indexed queries) and keeps this simple.
 * No polling interval: an idle daemon starts a new message as soon as the
 * loop turns.
 * Never: reads the spool itself.
 */
#include "daemon.h"
#include "xmalloc.h"

#include <errno.h>
#include <event2/event.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

struct wake {
    struct daemon *d;
    int fd;
    struct event *ev;
    char *base; /* spool file name, e.g. "spool.db" */
};

static bool wake_relevant(const struct wake *w, const char *name)
{
    size_t n = strlen(w->base);
    return strncmp(name, w->base, n) == 0 &&
           (name[n] == '\0' || strcmp(name + n, "-wal") == 0 || strcmp(name + n, "-journal") == 0);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct wake *w = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool kick = false;
    for (;;) {
        ssize_t len = read(fd, buf, sizeof buf);
        if (len <= 0)
            break;
        for (char *p = buf; p < buf + len;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->len && wake_relevant(w, ev->name))
                kick = true;
            if (ev->mask & IN_Q_OVERFLOW)
                kick = true;
            p += sizeof *ev + ev->len;
        }
    }
    if (kick)
        sched_kick(w->d);
}

struct wake *wake_new(struct daemon *d, struct err *e)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        err_set(e, EX_OSERR, "inotify: %s", strerror(errno));
        return NULL;
    }
    char *copy = xstrdup(d->spool_path), *copy2 = xstrdup(d->spool_path);
    const char *dir = dirname(copy);
    if (inotify_add_watch(fd, dir, IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
        err_set(e, EX_OSERR, "inotify on %s: %s", dir, strerror(errno));
        close(fd);
        free(copy);
        free(copy2);
        return NULL;
    }
    struct wake *w = xcalloc(1, sizeof *w);
    w->d = d;
    w->fd = fd;
    w->base = xstrdup(basename(copy2));
    free(copy);
    free(copy2);
    w->ev = event_new(d->base, fd, EV_READ | EV_PERSIST, wake_cb, w);
    event_add(w->ev, NULL);
    return w;
}

void wake_free(struct wake *w)
{
    if (w == NULL)
        return;
    event_free(w->ev);
    close(w->fd);
    free(w->base);
    free(w);
}
