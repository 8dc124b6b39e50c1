/*
 * clock — the daemon's two clocks: monotonic for timers and budgets (a wall
 * clock jump must neither fire nor starve retries), wall for what is stored
 * and shown.
 */
#include "daemon.h"

#include <time.h>

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
