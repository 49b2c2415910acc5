/*
 * sched.h - the scheduler's shared context and its units of work
 * (DESIGN.md step 7, docs/task-states.md).
 *
 * The scheduler is one thread around one loop (main.c).  Each unit of
 * work is a "round": one short transaction over at most batch_size rows,
 * taken with FOR UPDATE SKIP LOCKED, so that any number of schedulers can
 * run side by side, each on rows the others do not hold.  A round that
 * publishes does so inside its transaction: select and lock, publish,
 * wait for the broker's confirmations, then write the bookkeeping for the
 * confirmed messages and commit.  A crash between the confirmation and
 * the commit leaves the rows as they were, so they are published again
 * (a duplicate, which the worker's claim absorbs); a crash before the
 * confirmation loses nothing.
 *
 *   publish.c        due scheduled and retry_wait tasks -> broker -> queued
 *   lease_recover.c  running tasks whose lease expired -> retry_wait/dead
 *   dead.c           dead tasks -> a copy on "workq.Q.dead", once
 *   outbox_relay.c   workq.outbox rows -> broker, in id order -> deleted
 *   periodic.c       cron ticks -> scheduled tasks, once per tick
 *   retention.c      old finished tasks -> deleted, in small batches
 *   hooks.c          completion hooks owed -> POSTed -> deleted (a
 *                    thread of its own, with its own connection)
 *   rows.c           what the rounds share: transactions, rows to envelopes
 *
 * Their statements live in the store (shared/store_sched.c), named by
 * enum wq_sched_sql; the rounds read the rows they return.
 *
 * Every round returns 0 or a negative WQ_E* code: WQ_ESTORE means the
 * PostgreSQL connection must be checked (wq_store_ping) before the next
 * round, WQ_EBROKER that the broker connection was closed and reconnects
 * later.  *more is set to 1 when the round filled its batch, so that the
 * loop runs it again at once instead of sleeping.
 */
#ifndef WQ_SCHED_H
#define WQ_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "backoff.h"
#include "broker.h"
#include "buf.h"
#include "config.h"
#include "envelope.h"
#include "sched_stats.h"
#include "store.h"
#include "store_sched.h"

struct pg_result;

struct wq_sched_periodic;     /* periodic.c */
struct wq_sched_retention;    /* retention.c */
struct wq_sched_hooks;        /* hooks.c */

struct wq_sched {
    struct wq_config *cfg;
    wq_store *store;            /* the one connection: LISTEN and SQL */
    wq_broker *broker;
    struct wq_sched_stats *st;
    int batch;                  /* scheduler.batch_size */
    int publish_timeout_ms;     /* scheduler.publish_timeout */
    struct wq_buf buf;          /* envelopes of the current batch */
    struct wq_sched_periodic *periodic;
    struct wq_sched_retention *retention;
    struct wq_sched_hooks *hooks;
};

/* ---- publish.c ----------------------------------------------------------- */

/*
 * wq_sched_publish_due publishes up to a batch of due scheduled and retry_wait
 * tasks, oldest run_at first, each with envelope attempt = tasks.attempt
 * + 1, and makes the confirmed ones queued.  A row that makes no valid
 * envelope (written by hand, say) is made dead with the reason.  *done
 * gets the number of rows made queued or dead.  Needs the broker up.
 */
int wq_sched_publish_due(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen);

/* ---- lease_recover.c ----------------------------------------------------- */

/*
 * wq_sched_lease_recover turns up to a batch of running tasks whose lease
 * expired into a failed attempt (workq.attempts outcome lease_expired):
 * retry_wait with run_at = now + the queue's backoff when attempts are
 * left, else dead.  *done gets the number of tasks recovered.
 */
int wq_sched_lease_recover(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen);

/* ---- dead.c -------------------------------------------------------------- */

/*
 * wq_sched_dead_publish publishes a copy of up to a batch of dead tasks that
 * have none yet on "workq.<queue>.dead" (the task's envelope, attempt =
 * the last attempt, plus headers workq-dead-reason, workq-dead-at and
 * workq-attempts) and marks them (tasks.dead_published_at).  *done gets
 * the number marked.  Needs the broker up.
 */
int wq_sched_dead_publish(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen);

/* ---- outbox_relay.c ------------------------------------------------------ */

/*
 * wq_sched_outbox_relay publishes up to a batch of workq.outbox rows in id
 * order (kind 'dead' to "workq.<queue>.dead") and deletes the confirmed
 * ones.  *done gets the number deleted.  Needs the broker up.
 */
int wq_sched_outbox_relay(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen);

/* ---- periodic.c ---------------------------------------------------------- */

/*
 * wq_sched_periodic_new checks the `periodic` entries of cfg (unique names,
 * valid cron expressions, queue names) and prepares their state in *out.
 * Returns 0, or WQ_ECONFIG with one "FILE:LINE: periodic[N]: reason" line
 * per problem in err.
 */
int wq_sched_periodic_new(const struct wq_config *cfg,
    struct wq_sched_periodic **out, char *err, size_t errlen);
void wq_sched_periodic_free(struct wq_sched_periodic *p);

/*
 * wq_sched_periodic_tick enqueues the ticks that are due (now, or missed within
 * scheduler.cron_catchup) as scheduled tasks, each gated by its row in
 * workq.cron_ticks so that it is enqueued once whatever the number of
 * schedulers.  *done gets the number of tasks enqueued.
 */
int wq_sched_periodic_tick(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen);

/* Milliseconds until the next tick of any entry (wall clock); -1 if
 * there are no entries. */
int64_t wq_sched_periodic_next_ms(const struct wq_sched_periodic *p);

/* ---- retention.c --------------------------------------------------------- */

struct wq_sched_retention *wq_sched_retention_new(const struct wq_config *cfg);
void wq_sched_retention_free(struct wq_sched_retention *r);

/*
 * wq_sched_retention_prune deletes one batch of what retention allows (tasks
 * by queue and state, old periodic ticks, workers long gone) when a pass
 * is due (every scheduler.retention_interval); *more says the pass goes
 * on.  *done gets the number of rows deleted.
 */
int wq_sched_retention_prune(struct wq_sched *s, int *more, int *done,
    char *err, size_t errlen);

/* Milliseconds until the next pass is due; 0 while one is under way. */
int64_t wq_sched_retention_next_ms(const struct wq_sched_retention *r);

/*
 * wq_sched_receipts_sweep deletes, when due (every few seconds), up to a large
 * batch of receipts (workq.accepted) whose task has a row in workq.tasks;
 * *more when the batch was full.  wq_sched_receipts_next_ms: until it is due.
 */
int wq_sched_receipts_sweep(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen);
int64_t wq_sched_receipts_next_ms(const struct wq_sched_retention *r);

/* ---- hooks.c ------------------------------------------------------------ */

/*
 * wq_sched_hooks_new prepares the completion hooks' sender: its HTTP
 * client (libcurl, kept for the scheduler's life so that connections are
 * reused) and its state; cfg and st must outlive it.  Call before
 * threads start.  Returns 0, or WQ_EIO with err filled.
 *
 * wq_sched_hooks_start starts its thread, which has its own PostgreSQL
 * connection: it POSTs due completion hooks (workq.hook_deliveries,
 * migration 0009), hooks.concurrency at once, deletes those answered
 * 2xx and postpones the others by the hook backoff, in one transaction
 * a round, so that a slow receiver never holds the scheduler's loop.
 *
 * wq_sched_hooks_free stops the thread (a round under way finishes: at
 * most hooks.timeout; a second stop signal cuts it short, the rows are
 * then sent again later), closes its connection and frees it.
 */
int wq_sched_hooks_new(const struct wq_config *cfg, struct wq_sched_stats *st,
    struct wq_sched_hooks **out, char *err, size_t errlen);
int wq_sched_hooks_start(struct wq_sched_hooks *h, char *err, size_t errlen);
void wq_sched_hooks_free(struct wq_sched_hooks *h);

/* ---- rows.c -------------------------------------------------------------- */

/* The leading columns of every task query the rows helpers read, in
 * order: id, queue, type, key, payload, headers, attempt, max_attempts,
 * created_at in epoch ms, concurrency key (NULL: none) and limit (flow
 * control) (TASK_COLS in shared/store_sched.c). */
#define WQ_SCHED_ROWS_TASK_NCOLS 11

/* BEGIN, COMMIT; ROLLBACK ignores errors (the connection may be gone). */
int wq_sched_rows_begin(wq_store *s, char *err, size_t errlen);
int wq_sched_rows_commit(wq_store *s, char *err, size_t errlen);
void wq_sched_rows_rollback(wq_store *s);

/*
 * A round of the scheduler's loops is one transaction: select at most
 * `batch` rows (the select statement's one parameter, FOR UPDATE SKIP
 * LOCKED; statements in shared/store_sched.c), act on them, settle them,
 * commit.
 *
 * wq_sched_rows_round_begin opens the transaction and runs the select.  0 with
 * *out set: rows to act on, the transaction open.  0 with *out NULL: no
 * rows, committed.  Otherwise an error, rolled back.
 *
 * wq_sched_rows_round_settle runs the settle statement with `ids` (an
 * array from wq_sched_rows_array_*; skipped when nids is 0) and commits.
 * 0, err untouched (a partial publish failure written there stays); or
 * the error, with err replaced, the transaction left for the caller to
 * roll back.
 */
int wq_sched_rows_round_begin(wq_store *s, enum wq_sched_sql select, int batch,
    struct pg_result **out, char *err, size_t errlen);
int wq_sched_rows_round_settle(wq_store *s, enum wq_sched_sql settle,
    const struct wq_buf *ids, size_t nids, char *err, size_t errlen);

/* Binary result fields: NULL-aware readers. */
const char *wq_sched_rows_text(const struct pg_result *r, int row, int col);
int32_t wq_sched_rows_i32(const struct pg_result *r, int row, int col);
int64_t wq_sched_rows_i64(const struct pg_result *r, int row, int col);

/*
 * Array parameters in text form: wq_sched_rows_array_begin() empties b and
 * writes "{", wq_sched_rows_array_add() adds one element (quoted and escaped),
 * wq_sched_rows_array_end() writes "}" and the NUL.  b->data is then the
 * parameter.
 */
void wq_sched_rows_array_begin(struct wq_buf *b);
void wq_sched_rows_array_add(struct wq_buf *b, const char *elem);
void wq_sched_rows_array_end(struct wq_buf *b);

/*
 * wq_sched_rows_envelope encodes the task of row `row` of r (the task
 * columns first) as an envelope with the given attempt and the extra headers
 * (added after the task's own, skipping names it has, up to the limit),
 * appending it to out.  Returns 0, or WQ_EINVAL/WQ_ETOOBIG with err
 * saying why the row makes no valid envelope.
 */
int wq_sched_rows_envelope(const struct pg_result *r, int row, uint32_t attempt,
    const struct wq_header *extra, size_t nextra, struct wq_buf *out,
    char *err, size_t errlen);

/* The text form of the uuid in column col (binary) into out[37]. */
void wq_sched_rows_uuid(const struct pg_result *r, int row, int col,
    char out[37]);

/*
 * wq_sched_rows_policy fills *b with the backoff of `queue`: its own entry of
 * queue_policies, else the "*" entry, else the defaults (backoff.h).
 * *max_attempts (may be NULL) gets the policy's max_attempts.
 */
void wq_sched_rows_policy(const struct wq_config *cfg, const char *queue,
    struct wq_backoff *b, int *max_attempts);

#endif
