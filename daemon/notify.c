/*
 * notify — talks to systemd (Type=notify): READY=1, RELOADING=1, STOPPING=1,
 * STATUS= lines and WATCHDOG=1 pings at half of WATCHDOG_USEC.
 *
 * Uses libsystemd's sd_notify; without NOTIFY_SOCKET every call is a no-op.
 * Never: blocks the loop (sd_notify sends one datagram).
 */
#include "daemon.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

struct notify {
    bool enabled;
    uint64_t watchdog_usec; /* 0: no watchdog */
    int64_t last_ping;      /* monotonic ms */
    char *last_status;
};

struct notify *notify_new(struct daemon *d)
{
    (void)d;
    struct notify *n = xcalloc(1, sizeof *n);
    n->enabled = getenv("NOTIFY_SOCKET") != NULL;
    uint64_t usec = 0;
    if (n->enabled && sd_watchdog_enabled(0, &usec) > 0)
        n->watchdog_usec = usec;
    return n;
}

void notify_free(struct notify *n)
{
    if (n) {
        free(n->last_status);
        free(n);
    }
}

void notify_ready(struct notify *n)
{
    if (n->enabled)
        sd_notify(0, "READY=1");
}

void notify_reloading(struct notify *n)
{
    if (!n->enabled)
        return;
    /* MONOTONIC_USEC lets systemd >= 253 pair RELOADING with the next READY. */
    char buf[64];
    snprintf(buf, sizeof buf, "RELOADING=1\nMONOTONIC_USEC=%lld", (long long)now_ms_mono() * 1000);
    sd_notify(0, buf);
}

void notify_stopping(struct notify *n)
{
    if (n->enabled)
        sd_notify(0, "STOPPING=1");
}

void notify_status(struct notify *n, const char *status)
{
    if (!n->enabled || (n->last_status && strcmp(n->last_status, status) == 0))
        return;
    free(n->last_status);
    n->last_status = xstrdup(status);
    char *msg = xasprintf("STATUS=%s", status);
    sd_notify(0, msg);
    free(msg);
}

void notify_watchdog(struct notify *n)
{
    if (!n->enabled || n->watchdog_usec == 0)
        return;
    int64_t now = now_ms_mono();
    if (now - n->last_ping >= (int64_t)(n->watchdog_usec / 2000)) {
        sd_notify(0, "WATCHDOG=1");
        n->last_ping = now;
    }
}
