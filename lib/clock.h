#ifndef CLOCK_H
#define CLOCK_H

/* Seconds on the monotonic clock, for durations and deadlines (never the
 * wall clock, which jumps). */
double clock_now(void);

#endif
