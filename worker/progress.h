/*
 * progress.h - progress reports of running tasks (issue 18, "Visibility
 * of a running task"): handlers report a percentage and a short message;
 * this module keeps the latest report of each task and writes it to
 * PostgreSQL (workq.tasks.progress, progress_message, progress_at) at
 * most once a second per task, from the lease thread's connection
 * (worker_lease.c), so that handler threads never wait for the store.
 *
 * A task that reports nothing costs nothing here: no entry, no write.
 * All functions are thread-safe.
 */
#ifndef WQ_PROGRESS_H
#define WQ_PROGRESS_H

#include <stdint.h>

#include "store.h"

#define WQ_PROGRESS_MSG_MAX   200     /* bytes of a message kept */
#define WQ_PROGRESS_PERIOD_MS 1000    /* one write per task per period */

typedef struct wq_progress wq_progress;

/* wq_progress_new makes an empty table; wake_fd (an eventfd, or -1) is
 * written when a report is due, to wake the thread that flushes. */
wq_progress *wq_progress_new(int wake_fd);
void wq_progress_free(wq_progress *p);

/*
 * wq_progress_report records the latest progress of attempt `attempt` of
 * task `task_id` (UUID text): percent is clamped to 0..100, the message
 * (may be NULL) cut to WQ_PROGRESS_MSG_MAX bytes at a UTF-8 boundary and
 * stripped of control characters.  Never blocks on I/O.
 */
void wq_progress_report(wq_progress *p, const char *task_id,
    uint32_t attempt, int percent, const char *message);

/*
 * wq_progress_flush writes the reports that are due (their task's last
 * write is at least WQ_PROGRESS_PERIOD_MS old) in one statement, for
 * tasks running under `worker`.  Returns 0, or the store's error (the
 * reports are then dropped: a later one replaces them anyway).
 */
int wq_progress_flush(wq_progress *p, wq_store *s, const char *worker,
    char *err, size_t errlen);

/* Milliseconds until a report is due; -1 if none is pending. */
int64_t wq_progress_next_ms(wq_progress *p);

/*
 * wq_progress_again makes the latest report of task_id, if the table
 * still has it, due at once: written again by the next flush.  For a
 * task whose row did not exist when its report was written (an
 * unclaimed run, store_claims.h, until its late claim).
 */
void wq_progress_again(wq_progress *p, const char *task_id);

/* Writes done since the start (for /metrics and tests). */
uint64_t wq_progress_writes(wq_progress *p);

/* Counters of reports and of writes (metrics.h; either may be NULL).
 * Call before reports arrive. */
struct wq_metric;
void wq_progress_set_metrics(wq_progress *p, struct wq_metric *reports,
    struct wq_metric *writes);

#endif
