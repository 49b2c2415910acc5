/*
 * ops.h - the operator's actions and reports as JSON: list tasks, retry,
 * cancel, dead letters (list, show, replay, purge; undecodable
 * messages: list, raw bytes), stats and their
 * history, workers, periodic tasks.
 *
 * One function per action runs its statements (store_admin.h) on a store
 * and builds the answer with jansson; `workq --json CMD` prints that
 * object and the HTTP API's operator routes (producer/api_ops.c) answer
 * it, so the two cannot disagree.  (A list's CLI form prints the
 * elements of the page's array one per line, as it always has.)  The
 * field names are those of docs/openapi.json.
 *
 * Every function blocks on the store and runs on the store's thread;
 * the objects are the caller's (json_decref).  Errors: 0, WQ_EINVAL
 * (bad input: a cursor, a state; err says which), WQ_ENOENT (no such
 * task), or the store's error (err filled); *out is NULL on failure.
 * Out of memory aborts, as alloc.h.
 */
#ifndef WQ_OPS_H
#define WQ_OPS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "store.h"
#include "transport.h"

/* "No bound" for the optional times and ages below. */
#define WQ_OPS_NONE INT64_MIN

/* The most a page may hold, and the most ids one replay or purge takes. */
#define WQ_OPS_PAGE_MAX   500
#define WQ_OPS_CHANGE_MAX 10000

/* What a task summary carries of the payload and result. */
enum wq_ops_bodies {
    WQ_OPS_BODIES_NONE,         /* payload_bytes only (HTTP) */
    WQ_OPS_BODIES_ALL,          /* also "payload" and "result" (CLI) */
};

/* GET /v1/tasks, `workq list`. */
struct wq_ops_tasks_query {
    const char *queue, *state, *type, *key_prefix;      /* NULL: any */
    int64_t created_after_ms, created_before_ms;        /* WQ_OPS_NONE */
    long limit;                 /* 1..; the caller bounds it */
    const char *cursor;         /* next_cursor of the page before, or NULL */
    enum wq_ops_bodies bodies;
};

/*
 * wq_ops_tasks_page returns {"tasks": [SUMMARY...], "next_cursor": text
 * or null}, newest first (created_at, id descending), at most q->limit
 * tasks after q->cursor.  SUMMARY is {id, queue, type, idempotency_key,
 * state, priority, attempt, max_attempts, created_at, updated_at, run_at,
 * finished_at, last_error (its first 200 characters), payload_bytes}.
 * next_cursor is null when the page is not full.  WQ_EINVAL for an
 * unknown state or a cursor this module did not make.
 */
int wq_ops_tasks_page(wq_store *s, const struct wq_ops_tasks_query *q,
    json_t **out, char *err, size_t errlen);

/* The dead tasks a list, replay or purge selects (docs: `workq dlq`). */
struct wq_ops_dead_filter {
    const char *queue, *type, *error;                   /* NULL: any */
    int64_t older_than_ms, newer_than_ms;               /* WQ_OPS_NONE */
    const char *const *ids;     /* only these (UUID text), or NULL */
    size_t nids;
};

/*
 * wq_ops_dead_page returns {"tasks": [SUMMARY + copy_published],
 * "next_cursor"} of the dead tasks `f` selects, newest finished first.
 * WQ_EINVAL for a bad cursor or id.
 */
int wq_ops_dead_page(wq_store *s, const struct wq_ops_dead_filter *f,
    long limit, const char *cursor, json_t **out, char *err, size_t errlen);

/* wq_ops_dead_count sets *n to the number of dead tasks `f` selects,
 * counting at most `limit` (0: no bound). */
int wq_ops_dead_count(wq_store *s, const struct wq_ops_dead_filter *f,
    long limit, long *n, char *err, size_t errlen);

/*
 * wq_ops_dead_change replays (a new attempt series of `attempts`, 0: as
 * long as the last, due now) or purges (deletes with their history) at
 * most `limit` (0: no bound) dead tasks `f` selects, in batches of 1000,
 * each its own short transaction.  Returns {"action": "replay"|"purge",
 * "dry_run": false, "replayed"|"purged": N, "ids": [the first 10000]}
 * (purge: also "broker_copies", what stays on the broker).  A task
 * replayed or purged is no longer dead, so a repeat touches nothing.  On
 * a failure after some batches *out still says what was done (and the
 * error is returned).
 */
int wq_ops_dead_change(wq_store *s, const struct wq_ops_dead_filter *f,
    long limit, long attempts, int purge, json_t **out, char *err,
    size_t errlen);

/*
 * wq_ops_undecodable_page returns {"undecodable": [{id (a number),
 * queue, transport, received_at, bytes (the raw length), error (its
 * first 200 characters)}]}: the broker messages a worker could not
 * decode (workq.dead_letters; docs/wire-format.md), newest first, at most
 * `limit`, selected by f's queue, error and ages (f->type and f->ids
 * select none: such a message has no type and no task).
 */
int wq_ops_undecodable_page(wq_store *s, const struct wq_ops_dead_filter *f,
    long limit, json_t **out, char *err, size_t errlen);

/*
 * wq_ops_undecodable_raw sets *bytes (malloc'd, the caller frees it) and
 * *n to the raw bytes of undecodable message `id` (decimal text).
 * WQ_ENOENT when there is none; WQ_EINVAL when id is not a number.
 */
int wq_ops_undecodable_raw(wq_store *s, const char *id,
    unsigned char **bytes, size_t *n, char *err, size_t errlen);

/*
 * wq_ops_task returns the task `id` (UUID text) as wq_task_json gives it,
 * with its attempts.  dead_only: WQ_ENOENT unless it is dead.
 */
int wq_ops_task(wq_store *s, const char *id, int dead_only, json_t **out,
    char *err, size_t errlen);

/*
 * wq_ops_retry runs task `id` again now (see `workq retry`): {"id",
 * "previous_state", "state" (after), "retried", "reason" (null, or why
 * the state refuses), and when retried "new_series", "attempt",
 * "max_attempts"}.  attempts: of the new series, 0 for the default.
 * Refusals are answers (retried false), not errors; WQ_ENOENT when there
 * is no such task.
 */
int wq_ops_retry(wq_store *s, const char *id, long attempts, json_t **out,
    char *err, size_t errlen);

/*
 * wq_ops_cancel cancels task `id` (see `workq cancel`): {"id",
 * "previous_state", "state" (after), "cancelled", "stop_requested" (it
 * runs: its worker was asked to stop it), "reason" (null when cancelled),
 * "worker" (the one asked, or null)}.  WQ_ENOENT when there is no such
 * task.
 */
int wq_ops_cancel(wq_store *s, const char *id, json_t **out, char *err,
    size_t errlen);

/*
 * The broker's part of the stats: the caller fills b[i], rc[i] (0,
 * WQ_ENOENT: the broker has no such queue, or another WQ_E*) and err[i]
 * for each of the n queues; any failure but WQ_ENOENT and WQ_EINVAL
 * makes the answer's "broker" null for every queue and sets
 * "broker_error".  The callee owns nothing of it (wq_ops_stats frees the
 * backlogs).
 */
typedef void wq_ops_backlog_fn(void *user, const char *const *queues,
    size_t n, struct wq_backlog *b, int *rc, char (*err)[WQ_ERRLEN]);

/*
 * wq_ops_stats returns {"queues": [{queue, scheduled, queued, running,
 * retry_wait, succeeded, dead, cancelled, succeeded_1m, dead_1m,
 * oldest_waiting_s, outbox, counts{state: n}, succeeded_last_minute,
 * dead_last_minute, rate_per_second, oldest_waiting_seconds, broker}],
 * "broker_error"}: the queues with rows, or `queue`, or (queue NULL)
 * those cfg names when the broker holds messages for them.  backlog NULL:
 * the broker is not asked ("broker" and "broker_error" absent).  The
 * backlog is asked for each priority band of each queue (priority.h):
 * "broker" holds the sums of the three, "bands": {high, normal, low}
 * each band's own, and on Kafka the partitions of all three, each with
 * its "priority".
 */
int wq_ops_stats(wq_store *s, const struct wq_config *cfg,
    const char *queue, wq_ops_backlog_fn *backlog, void *user,
    json_t **out, char *err, size_t errlen);

/*
 * wq_ops_history returns {"since", "step_s": 60, "series": [{queue,
 * succeeded: [...], dead: [...], failed: [...]}]}: per minute of the
 * last `minutes` (1..1440) up to now_ms, oldest first, the tasks that
 * succeeded, that died and the attempts that failed; a queue with none
 * is left out.
 */
int wq_ops_history(wq_store *s, const char *queue, int minutes,
    int64_t now_ms, json_t **out, char *err, size_t errlen);

/*
 * wq_ops_workers returns {"workers": [{id, hostname, pid, queues,
 * in_flight, started_at, heartbeat_at, heartbeat_age_s,
 * heartbeat_age_seconds, status, version}]}: those not stopped, or all.
 * lease_ms: worker.lease (a heartbeat older is "stale").
 */
int wq_ops_workers(wq_store *s, int all, int64_t lease_ms, json_t **out,
    char *err, size_t errlen);

/*
 * wq_ops_periodic returns {"periodic": [{name, schedule, queue, type,
 * priority, last_run_at, next_run_at}]}: cfg's periodic tasks, the last tick
 * workq.cron_ticks holds and the next after now_ms (null when the
 * schedule does not parse).
 */
int wq_ops_periodic(wq_store *s, const struct wq_config *cfg,
    int64_t now_ms, json_t **out, char *err, size_t errlen);

/*
 * wq_ops_backlog_json is the "broker" object of one queue: {transport,
 * exists, ready, waiting, unacked, consumers, lag, oldest_age_s,
 * oldest_waiting_seconds} (null where the broker cannot tell), Kafka also
 * {group, partitions: [{partition, low, high, committed, lag}]}; {transport,
 * exists: false, ready: 0, waiting: 0, ...} for a queue the broker does
 * not have (rc WQ_ENOENT).
 */
json_t *wq_ops_backlog_json(int transport, int rc,
    const struct wq_backlog *b);

#endif
