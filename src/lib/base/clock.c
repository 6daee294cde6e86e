/* clock.c - the monotonic clock that progress, throttles and timeouts use. */
#define _GNU_SOURCE
#include "base/base.h"

#include <time.h>

double vma_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}
