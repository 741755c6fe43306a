/*
 * clock.c — the one clock for durations and deadlines: CLOCK_MONOTONIC,
 * which no change of the wall clock moves.
 */
#include <time.h>

#include "extern.h"

/* clock_ms: milliseconds on the monotonic clock (an arbitrary origin). */
double clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
