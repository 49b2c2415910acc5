/*
 * priority.h - task priorities as broker bands (issue 18, "Priorities").
 *
 * A task has one of three priorities: high, normal (the default) and low.
 * Each priority of a queue Q is its own broker queue, a "band": normal is
 * "workq.Q" itself (so producers that know nothing of priorities, the
 * wire format and every existing consumer are unchanged), high is
 * "workq.Q.priority-high" and low "workq.Q.priority-low" (a Kafka topic
 * or a RabbitMQ queue each).  The envelope does not carry the priority:
 * the band a message sits on does, and its `q` stays Q.  The two
 * suffixes are reserved: no queue name may end in them (envelope.c).
 *
 * Why bands and not broker priorities: workq's RabbitMQ queues are quorum
 * queues, which have no message priorities before RabbitMQ 4.0 (3.10 to
 * 3.13 ignore x-max-priority on them), and classic queues with
 * x-max-priority are not replicated; Kafka has no priorities at all.
 * Bands work the same on both, and a worker decides how often each band
 * is served (wq_priority_pick, weighted), so low tasks still progress.
 *
 * Pure functions; no state, thread-safe.
 */
#ifndef WQ_PRIORITY_H
#define WQ_PRIORITY_H

#include <stddef.h>

#include "wq.h"

enum wq_priority {
    WQ_PRIORITY_LOW = 0,
    WQ_PRIORITY_NORMAL = 1,     /* the default; the band is Q itself */
    WQ_PRIORITY_HIGH = 2,
    WQ_PRIORITY_N
};

#define WQ_PRIORITY_HIGH_SUFFIX ".priority-high"
#define WQ_PRIORITY_LOW_SUFFIX  ".priority-low"

/* "high", "normal", "low"; "?" for a value out of range. */
const char *wq_priority_name(int priority);

/*
 * wq_priority_parse reads "high", "normal", "low" (any case) or "2", "1",
 * "0" into *out.  0, or WQ_EINVAL for anything else (*out untouched).
 */
int wq_priority_parse(const char *s, int *out);

/*
 * wq_priority_band writes the band of `queue` at `priority` (a queue name
 * without the "workq." prefix) into buf: the queue itself for normal (or
 * an out-of-range priority), else the queue with its suffix.  buf should
 * hold WQ_BROKER_QUEUE_MAX + 1 bytes; the name is cut to fit otherwise.
 * Returns buf.
 */
char *wq_priority_band(char *buf, size_t len, const char *queue,
    int priority);

/*
 * wq_priority_of_band splits a band name (without the "workq." prefix):
 * returns the priority its suffix says (normal without one) and sets
 * *qlen to the length of the queue name before the suffix.
 */
int wq_priority_of_band(const char *band, size_t *qlen);

/*
 * The weighted picker of a worker.  weights[p] is how many picks of
 * priority p one round makes (0: the band is served only when the
 * others have nothing).  `credit` is the caller's state, zeroed at the
 * start, WQ_PRIORITY_N entries.  avail[p] says whether priority p has a
 * task waiting.  Returns the priority to take next, or -1 when none is
 * available.  Within a round higher priorities are picked first; a round
 * ends when every available band has used its weight, so over time the
 * bands with work get their weights' shares (6:3:1 by default): high runs
 * first, and low still progresses.
 */
int wq_priority_pick(const int weights[WQ_PRIORITY_N],
    int credit[WQ_PRIORITY_N], const int avail[WQ_PRIORITY_N]);

#endif
