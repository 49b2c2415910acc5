/*
 * leases.c - lost-lease recovery (docs/task-states.md "Leases").
 *
 * A running task whose lease_expires_at has passed belongs to a worker
 * that died or hung: it stopped renewing the lease (workers renew every
 * third of it).  One round turns up to a batch of them into a failed
 * attempt, outcome lease_expired, in one transaction: retry_wait with
 * run_at = now + the queue's backoff when attempts are left, else dead
 * (with its whole history; dead.c then publishes the copy).  The backoff
 * is computed here, per task, with the same policy and jitter the worker
 * uses for a failed handler; the rows are locked by the SELECT, so the
 * UPDATE that follows acts on exactly what was read.
 *
 * If the worker was only slow and records its outcome later, its record
 * finds the row no longer running under its lease and changes nothing:
 * at most one outcome per attempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "alloc.h"
#include "log.h"
#include "sched.h"

#define COMPONENT "leases"

static const char select_sql[] =
    "SELECT t.id, t.queue, t.attempt, t.max_attempts"
    "  FROM workq.tasks t"
    "  WHERE t.state = 'running' AND t.lease_expires_at < now()"
    "  ORDER BY t.lease_expires_at"
    "  LIMIT $1"
    "  FOR UPDATE SKIP LOCKED";

/*
 * The attempt that lost its lease gets its outcome (its row exists since
 * the claim; if not, it is made), and any older attempt left open by
 * another lost worker too.  `x` carries each task's delay.
 */
static const char recover_sql[] =
    "WITH x AS ("
    "  SELECT * FROM unnest($1::uuid[], $2::int8[]) AS x(id, delay_ms)"
    "), u AS ("
    "  UPDATE workq.tasks t SET"
    "    state = CASE WHEN t.attempt >= t.max_attempts THEN 'dead'"
    "            ELSE 'retry_wait' END,"
    "    run_at = CASE WHEN t.attempt >= t.max_attempts THEN NULL"
    "             ELSE now() + x.delay_ms * interval '1 millisecond' END,"
    "    finished_at = CASE WHEN t.attempt >= t.max_attempts THEN now()"
    "                  END,"
    "    last_error = 'lease expired: worker '"
    "      || coalesce(t.lease_owner, '?') || ' stopped renewing it',"
    "    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
    "  FROM x"
    "  WHERE t.id = x.id AND t.state = 'running'"
    "    AND t.lease_expires_at < now()"
    "  RETURNING t.id, t.attempt, t.state, t.worker, t.started_at,"
    "    t.last_error"
    "), h AS ("
    "  INSERT INTO workq.attempts AS a (task_id, attempt, started_at,"
    "    worker, outcome, finished_at, error)"
    "  SELECT u.id, u.attempt, coalesce(u.started_at, now()), u.worker,"
    "    'lease_expired', now(), u.last_error"
    "  FROM u WHERE u.attempt >= 1"
    "  ON CONFLICT (task_id, attempt) DO UPDATE SET"
    "    outcome = 'lease_expired', finished_at = now(),"
    "    error = EXCLUDED.error"
    "  WHERE a.outcome IS NULL"
    "), older AS ("
    "  UPDATE workq.attempts a SET outcome = 'lease_expired',"
    "    finished_at = now(), error = 'lease expired'"
    "  FROM u WHERE a.task_id = u.id AND a.attempt < u.attempt"
    "    AND a.outcome IS NULL"
    ")"
    "SELECT u.id, u.state FROM u";

int
wq_leases_recover(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen)
{
    struct wq_buf ids = WQ_BUF_INIT, delays = WQ_BUF_INIT;
    struct pg_result *r, *u = NULL;
    const char *params[2];
    char id[37], d[32];
    int rc, rows;

    *more = 0;
    *done = 0;
    if ((rc = wq_rows_round_begin(s->store, select_sql, s->batch,
        "select expired leases", &r, err, errlen)) != 0 || r == NULL)
        return rc;
    rows = wq_store_rows_count(r);
    *more = rows == s->batch;
    wq_rows_array_begin(&ids);
    wq_rows_array_begin(&delays);
    for (int i = 0; i < rows; i++) {
        struct wq_backoff b;
        int32_t attempt = wq_rows_i32(r, i, 2);

        wq_rows_policy(s->cfg, wq_rows_text(r, i, 1), &b, NULL);
        wq_rows_uuid(r, i, 0, id);
        wq_rows_array_add(&ids, id);
        snprintf(d, sizeof d, "%lld", (long long)wq_backoff_delay_ms(&b,
            attempt > 0 ? (uint32_t)attempt : 1, wq_backoff_rand01()));
        wq_rows_array_add(&delays, d);
    }
    wq_rows_array_end(&ids);
    wq_rows_array_end(&delays);
    params[0] = ids.data;
    params[1] = delays.data;
    if ((rc = wq_rows_query(s->store, recover_sql, 2, params, &u,
        "recover expired leases", err, errlen)) != 0)
        goto fail;
    if ((rc = wq_rows_commit(s->store, err, errlen)) != 0)
        goto fail;
    for (int i = 0; i < wq_store_rows_count(u); i++) {
        int dead = strcmp(wq_rows_text(u, i, 1), "dead") == 0;

        wq_rows_uuid(u, i, 0, id);
        wq_log_info(COMPONENT, "task %s: lease expired, %s", id,
            dead ? "attempts spent: dead" : "retry scheduled");
        wq_metric_inc(dead ? s->st->lease_dead : s->st->lease_retry, 1);
    }
    *done = wq_store_rows_count(u);
    goto out;

fail:
    wq_rows_rollback(s->store);
out:
    wq_store_rows_free(r);
    wq_store_rows_free(u);
    wq_buf_free(&ids);
    wq_buf_free(&delays);
    return rc;
}
