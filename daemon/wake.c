/*
 * wake — wakes the scheduler when another process commits to the spool.
 *
 * inotify on the spool's directory sees every commit (CLI, C API or plain
 * SQL by any process) as a write to the -wal file (or the database file in
 * other journal modes). Our own commits wake it too; that costs one
 * coalesced scheduler pass (a few indexed queries) and keeps this simple.
 * No polling interval: an idle daemon starts a new message as soon as the
 * loop turns.
 *
 * The event comes too early, though: a commit writes its frames to the WAL
 * (the event), then syncs, and only then publishes them in the -shm index,
 * which is written through mmap and raises no event at all. A pass that runs
 * on the event alone often sees the database as it was before the commit
 * (measured: most single enqueues waited for a later wake-up, about 1 s). So
 * every burst of events is followed by a short chain of settle passes, each
 * after a growing delay, restarted by any event that arrives meanwhile.
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

/* Delays of the settle passes after a burst of events: a commit's sync takes
 * well under a millisecond on an SSD and tens of milliseconds on a busy disk.
 * Each delay about 1.4 times the one before, so that a commit is seen at
 * most about 40% later than it became visible (with 1, 3, 10, 30 a sync of
 * 11 ms was seen after 30); a pass is a few indexed queries (~40 us). */
static const int wake_settle_ms[] = {1, 2, 4, 7, 11, 16, 23, 32, 45, 64, 100};
#define WAKE_SETTLE_STEPS ((int)(sizeof wake_settle_ms / sizeof wake_settle_ms[0]))

struct wake {
    struct daemon *d;
    int fd;
    struct event *ev;
    struct event *settle; /* the next settle pass */
    int step;             /* index into wake_settle_ms of the pending settle pass */
    bool again;           /* an event arrived while a settle pass was pending */
    char *base;           /* spool file name, e.g. "spool.db" */
};

static void wake_settle_arm(struct wake *w)
{
    int ms = wake_settle_ms[w->step];
    struct timeval tv = {0, ms * 1000};
    evtimer_add(w->settle, &tv);
}

static void wake_settle_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct wake *w = arg;
    sched_kick(w->d);
    if (w->again) {
        w->again = false;
        w->step = 0;
    } else if (++w->step >= WAKE_SETTLE_STEPS) {
        return;
    }
    wake_settle_arm(w);
}

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
    if (!kick)
        return;
    sched_kick(w->d);
    if (evtimer_pending(w->settle, NULL)) {
        w->again = true;
    } else {
        w->step = 0;
        w->again = false;
        wake_settle_arm(w);
    }
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
    w->settle = evtimer_new(d->base, wake_settle_cb, w);
    event_add(w->ev, NULL);
    return w;
}

void wake_free(struct wake *w)
{
    if (w == NULL)
        return;
    event_free(w->ev);
    event_free(w->settle);
    close(w->fd);
    free(w->base);
    free(w);
}
