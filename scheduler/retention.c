/*
 * retention.c - pruning, so that the tables stay small under months of
 * traffic (issue 5, "Retention").
 *
 * Every scheduler.retention_interval a pass runs, one step per call of
 * wq_sched_retention_prune() so the loop stays responsive; each step deletes at
 * most batch_size rows in one short statement (its own transaction), the
 * rows picked oldest first with FOR UPDATE SKIP LOCKED, so no long lock
 * is ever held and several schedulers can prune side by side.  A step
 * that filled its batch runs again; the pass moves on when one does not.
 *
 * What a pass deletes, in order:
 *   - per queue of queue_policies (name not "*"): succeeded and cancelled
 *     tasks that ended longer ago than the policy's retention, and dead
 *     tasks older than its dead_retention (0 in a policy means the "*"
 *     policy's, then scheduler.retention / scheduler.dead_retention);
 *   - the same for every other queue with the "*" policy's or the
 *     scheduler's ages;
 *     (an age of 0 keeps those tasks forever; dead tasks whose copy is not
 *     yet on workq.Q.dead are never pruned; workq.attempts rows go with
 *     their task, ON DELETE CASCADE)
 *   - periodic ticks older than max(scheduler.cron_catchup, 24 h), except
 *     each entry's latest, which later ticks are counted from;
 *   - rows of workers not heard of for 24 hours;
 *   - flow control's rows (migration 0007): the concurrency key of a
 *     task (workq.flow_tasks) whose task row is gone (pruned above, or
 *     never written) and that holds no admission, once it is older than
 *     a retention interval (the row has no timestamp: the previous pass
 *     records a transaction id, see store_sched.c); holds (flow_holds)
 *     taken over 24 hours ago whose task does not run under a live
 *     lease; unique windows that have ended (an open one is never
 *     touched).  Token buckets hold only state and are kept;
 *   - finished workflows (migration 0008): closed, every node ended
 *     longer ago than the "*" policy's retention (else
 *     scheduler.retention; 0 keeps them), with their nodes and edges;
 *     a statement takes at most batch_size workflows and, past the
 *     first, batch_size nodes.
 * Undecodable messages (workq.dead_letters) are left to the operator.
 * Completion hooks (workq.hook_deliveries, migration 0009) need no step:
 * hooks.c deletes a row once its hook is delivered (or dropped), and a
 * row still owed is never pruned, whatever the age of its task.
 *
 * Receipts (workq.accepted and workq.accepted_runs, migration 0003) have
 * a sweep of their own, every RECEIPTS_INTERVAL_MS: a receipt whose task
 * has a row in workq.tasks (claimed, cancelled) is redundant and deleted
 * (from a run: the run is rewritten without it), so the tables hold
 * about the broker's backlog of tasks not claimed yet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "sched.h"

#define COMPONENT "retention"
#define DAY_MS (24LL * 3600 * 1000)
#define RECEIPTS_INTERVAL_MS 5000
#define RECEIPTS_BATCHES     10     /* a sweep statement: batch_size x this */

/* The steps after the tasks' targets, in order. */
enum { X_TICKS, X_WORKERS, X_FLOW_TASKS, X_FLOW_HOLDS, X_WINDOWS,
    X_WORKFLOWS, X_COUNT };

static const enum wq_sched_sql extra_sql[X_COUNT] = {
    [X_TICKS] = WQ_SCHED_SQL_PRUNE_TICKS,
    [X_WORKERS] = WQ_SCHED_SQL_PRUNE_WORKERS,
    [X_FLOW_TASKS] = WQ_SCHED_SQL_PRUNE_FLOW_TASKS,
    [X_FLOW_HOLDS] = WQ_SCHED_SQL_PRUNE_FLOW_HOLDS,
    [X_WINDOWS] = WQ_SCHED_SQL_PRUNE_WINDOWS,
    [X_WORKFLOWS] = WQ_SCHED_SQL_PRUNE_WORKFLOWS,
};

struct target {
    const char *queue;          /* NULL: every queue without a policy */
    int dead;
    int64_t age_ms;
};

struct wq_sched_retention {
    struct target *t;
    size_t n;
    struct wq_buf excluded;     /* text[] of the queues with a policy */
    int64_t extra_ms[X_COUNT];  /* the age of each step after them;
                                 * < 0 skips it */
    char flow_xid[24];          /* flow_tasks: the previous pass's
                                 * transaction id ("": none yet) */
    char flow_xid_next[24];     /* ... and this pass's */
    int64_t interval_ms;
    uint64_t next_ns;           /* next pass */
    size_t step;                /* in the pass: targets, then X_* */
    int active;
    int64_t pass_rows;
    uint64_t receipts_next_ns;  /* next receipts sweep */
};

#define RUNS_BATCH 50   /* runs per statement: up to 50 x 10,000 ids */

static int64_t
pick(int64_t own, int64_t star, int64_t def)
{
    return own > 0 ? own : star > 0 ? star : def;
}

struct wq_sched_retention *
wq_sched_retention_new(const struct wq_config *cfg)
{
    const struct wq_config_queue_policy *p = cfg->queue_policies.v;
    struct wq_sched_retention *r = xcalloc(1, sizeof *r);
    int64_t star_done = 0, star_dead = 0;
    size_t n = 0;

    for (size_t i = 0; i < cfg->queue_policies.n; i++)
        if (strcmp(p[i].name, "*") == 0) {
            star_done = p[i].retention_ms;
            star_dead = p[i].dead_retention_ms;
        }
    r->t = xcalloc(2 * cfg->queue_policies.n + 2, sizeof *r->t);
    wq_sched_rows_array_begin(&r->excluded);
    for (size_t i = 0; i < cfg->queue_policies.n; i++) {
        if (strcmp(p[i].name, "*") == 0)
            continue;
        wq_sched_rows_array_add(&r->excluded, p[i].name);
        r->t[n++] = (struct target){ p[i].name, 0, pick(p[i].retention_ms,
            star_done, cfg->scheduler.retention_ms) };
        r->t[n++] = (struct target){ p[i].name, 1,
            pick(p[i].dead_retention_ms, star_dead,
                cfg->scheduler.dead_retention_ms) };
    }
    wq_sched_rows_array_end(&r->excluded);
    r->t[n++] = (struct target){ NULL, 0, pick(0, star_done,
        cfg->scheduler.retention_ms) };
    r->t[n++] = (struct target){ NULL, 1, pick(0, star_dead,
        cfg->scheduler.dead_retention_ms) };
    r->n = n;
    r->extra_ms[X_TICKS] = cfg->scheduler.cron_catchup_ms > DAY_MS
        ? cfg->scheduler.cron_catchup_ms : DAY_MS;
    r->extra_ms[X_WORKERS] = DAY_MS;
    r->extra_ms[X_FLOW_TASKS] = 0;
    r->extra_ms[X_FLOW_HOLDS] = DAY_MS;
    r->extra_ms[X_WINDOWS] = 0;
    r->extra_ms[X_WORKFLOWS] = pick(0, star_done,
        cfg->scheduler.retention_ms);
    if (r->extra_ms[X_WORKFLOWS] <= 0)
        r->extra_ms[X_WORKFLOWS] = -1;  /* kept forever, like the tasks */
    r->interval_ms = cfg->scheduler.retention_interval_ms;
    r->next_ns = wq_clock_mono_ns();     /* a first pass at start */
    r->receipts_next_ns = r->next_ns;
    return r;
}

void
wq_sched_retention_free(struct wq_sched_retention *r)
{
    if (r == NULL)
        return;
    wq_buf_free(&r->excluded);
    free(r->t);
    free(r);
}

int64_t
wq_sched_retention_next_ms(const struct wq_sched_retention *r)
{
    if (r->active)
        return 0;
    return wq_clock_ms_until(r->next_ns);
}

int
wq_sched_retention_prune(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen)
{
    struct wq_sched_retention *r = s->retention;
    const char *params[4];
    char age[32], limit[16];
    struct pg_result *res;
    enum wq_sched_sql q;
    int rc, x = -1, full;

    *more = 0;
    *done = 0;
    if (!r->active) {
        if (wq_clock_mono_ns() < r->next_ns)
            return 0;
        r->active = 1;
        r->step = 0;
        r->pass_rows = 0;
    }
    /* skip targets and steps whose age keeps everything */
    while (r->step < r->n && r->t[r->step].age_ms <= 0)
        r->step++;
    while (r->step >= r->n && r->step < r->n + X_COUNT
        && r->extra_ms[r->step - r->n] < 0)
        r->step++;
    snprintf(limit, sizeof limit, "%d", s->batch);
    if (r->step < r->n) {
        const struct target *t = &r->t[r->step];

        snprintf(age, sizeof age, "%lld", (long long)t->age_ms);
        params[0] = age;
        params[1] = t->queue;
        params[2] = r->excluded.data;
        params[3] = limit;
        q = t->dead ? WQ_SCHED_SQL_PRUNE_DEAD : WQ_SCHED_SQL_PRUNE_DONE;
    } else if (r->step < r->n + X_COUNT) {
        x = (int)(r->step - r->n);
        snprintf(age, sizeof age, "%lld", (long long)r->extra_ms[x]);
        params[0] = x == X_FLOW_TASKS
            ? (r->flow_xid[0] != '\0' ? r->flow_xid : NULL) : age;
        params[1] = limit;
        q = extra_sql[x];
    } else {
        if (r->pass_rows > 0)
            wq_log_info(COMPONENT, "pruned %lld row(s)",
                (long long)r->pass_rows);
        r->active = 0;
        r->next_ns = wq_clock_mono_ns()
            + (uint64_t)r->interval_ms * 1000000u;
        return 0;
    }
    if ((rc = wq_store_sched_query(s->store, q, params, &res, err,
        errlen)) != 0)
        return rc;
    full = 0;
    if (x == X_FLOW_TASKS) {
        *done = atoi(wq_store_value(res, 0, 0));
        full = *done >= s->batch;
        if (r->flow_xid_next[0] == '\0')
            snprintf(r->flow_xid_next, sizeof r->flow_xid_next, "%s",
                wq_store_value(res, 0, 1));
        if (!full) {
            /* the step is over: the next pass deletes what is older */
            memcpy(r->flow_xid, r->flow_xid_next, sizeof r->flow_xid);
            r->flow_xid_next[0] = '\0';
        }
    } else if (x == X_WORKFLOWS) {
        int picked = atoi(wq_store_value(res, 0, 2)),
            workflows = atoi(wq_store_value(res, 0, 0));

        *done = workflows + atoi(wq_store_value(res, 0, 1));
        full = picked >= s->batch || workflows < picked;
    } else {
        *done = (int)wq_store_changed(res);
        full = *done >= s->batch;
    }
    wq_store_rows_free(res);
    r->pass_rows += *done;
    wq_metric_inc(s->st->pruned, (uint64_t)*done);
    if (!full)
        r->step++;
    *more = 1;      /* the pass goes on (or ends) at the next call */
    return 0;
}

int64_t
wq_sched_receipts_next_ms(const struct wq_sched_retention *r)
{
    return wq_clock_ms_until(r->receipts_next_ns);
}

int
wq_sched_receipts_sweep(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen)
{
    struct wq_sched_retention *r = s->retention;
    const char *params[1];
    char limit[16];
    struct pg_result *res;
    int rc, runs, batch = s->batch * RECEIPTS_BATCHES;

    *more = 0;
    *done = 0;
    if (wq_clock_mono_ns() < r->receipts_next_ns)
        return 0;
    snprintf(limit, sizeof limit, "%d", batch);
    params[0] = limit;
    if ((rc = wq_store_sched_query(s->store, WQ_SCHED_SQL_RECEIPTS, params,
        &res, err, errlen)) != 0)
        return rc;
    *done = (int)wq_store_changed(res);
    wq_store_rows_free(res);

    snprintf(limit, sizeof limit, "%d", RUNS_BATCH);
    if ((rc = wq_store_sched_query(s->store, WQ_SCHED_SQL_RECEIPT_RUNS,
        params, &res, err, errlen)) != 0)
        return rc;
    runs = atoi(wq_store_value(res, 0, 0));
    *done += atoi(wq_store_value(res, 0, 1));
    wq_store_rows_free(res);
    if (*done >= batch || runs >= RUNS_BATCH)
        *more = 1;      /* a backlog of them: on at once */
    else
        r->receipts_next_ns = wq_clock_mono_ns()
            + (uint64_t)RECEIPTS_INTERVAL_MS * 1000000u;
    return 0;
}
