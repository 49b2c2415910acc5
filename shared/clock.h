/*
 * clock.h - time in the two kinds workq needs: monotonic nanoseconds for
 * deadlines and durations, and wall-clock milliseconds since the Unix
 * epoch for timestamps that travel (envelopes, PostgreSQL rows, UUIDv7).
 * All functions are thread-safe and never fail on Linux.
 */
#ifndef WQ_CLOCK_H
#define WQ_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic time in nanoseconds from an arbitrary origin. */
uint64_t wq_clock_mono_ns(void);

/* Wall-clock time in milliseconds since 1970-01-01T00:00:00Z. */
int64_t wq_clock_wall_ms(void);

/* Milliseconds left until the monotonic deadline `deadline_ns`, 0 if past. */
int wq_clock_ms_until(uint64_t deadline_ns);

/*
 * wq_clock_format_rfc3339 writes `ms` (epoch milliseconds) as
 * "2026-11-28T07:43:06.123Z" into buf (at least 32 bytes).  Returns buf.
 */
char *wq_clock_format_rfc3339(int64_t ms, char *buf, size_t len);

#endif
