/*
 * clock — the daemon's clocks: monotonic for timers and budgets, wall for
 * what is stored and shown, and the watch that keeps stored retry times
 * honest when the wall clock is set (a jump must neither fire nor starve
 * retries).
 *
 * Owns: reading the clocks; detecting wall clock jumps and moving pending
 * retries by the jump.
 * Never: moves a producer's own times (not_before, expires, created): those
 * are absolute moments and follow the wall clock.
 */
#include "daemon.h"

#include <time.h>

/* A step smaller than this is noise (or an NTP nudge) and moves nothing. */
#define CLOCK_JUMP_MIN_MS 1500

int64_t now_ms_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_s_wall(void)
{
    return (int64_t)time(NULL);
}

int64_t now_ms_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall minus boot time: constant unless someone sets the wall clock. Boot
 * time rather than monotonic because it also runs during a suspend, which
 * is time that really passed, not a jump. */
static int64_t clock_wall_offset_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return now_ms_wall() - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

void clock_watch_start(struct daemon *d)
{
    d->wall_offset_ms = clock_wall_offset_ms();
}

/*
 * Retry times are stored as wall-clock seconds (they must survive a
 * restart and mean something to `mailspool show`), so a set clock would
 * make them fire at once (set forward) or hours late (set back). Called
 * before every scheduler pass: on a jump, every pending retry moves by the
 * jump and keeps the wait it had left.
 */
void clock_watch(struct daemon *d)
{
    int64_t off = clock_wall_offset_ms();
    int64_t jump = off - d->wall_offset_ms;
    if (jump > -CLOCK_JUMP_MIN_MS && jump < CLOCK_JUMP_MIN_MS)
        return;
    /* The wall time it would be now had nobody touched the clock. */
    int64_t before_s = (now_ms_wall() - jump) / 1000;
    int64_t delta_s = (jump + (jump > 0 ? 500 : -500)) / 1000;
    d->wall_offset_ms = off;
    int n = 0;
    struct err e = {0};
    if (spool_shift_retries(d->spool, before_s, delta_s, &n, &e) != 0) {
        /* Try again at the next pass rather than leave the retries wrong. */
        d->wall_offset_ms = off - jump;
        log_event(d->log, LL_ERROR, "spool", "op=clock-jump reason=%q", e.msg);
        return;
    }
    log_event(d->log, LL_WARN, "clock-jump", "delta=%+llds retries-moved=%d reason=%q",
              (long long)delta_s, n,
              "the wall clock was set; pending retries keep their remaining wait");
}
