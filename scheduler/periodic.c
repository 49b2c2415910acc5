/*
 * periodic.c - periodic tasks: the `periodic` entries of the
 * configuration, each a cron schedule (cron.h, UTC) and a task to enqueue
 * on every tick.
 *
 * Exactly once per tick, whatever the number of schedulers and restarts:
 * a tick is enqueued by one statement that inserts its row into
 * workq.cron_ticks (primary key: name and tick time) with ON CONFLICT DO
 * NOTHING and, for the rows it did insert, the task - a scheduled task
 * with run_at = the tick, which publish.c sends at once.  Both commit
 * together, so a tick row exists if and only if its task does; a second
 * scheduler inserting the same tick waits for the first one's commit and
 * then inserts nothing.  The row carries the entry's priority, so the task
 * goes to that band (priority.h), as do its retries.  The task's idempotency key, "cron:NAME@TICK",
 * guards the same once more.
 *
 * Which ticks: those after the entry's latest recorded tick, no older
 * than scheduler.cron_catchup, up to now; so ticks missed while no
 * scheduler ran are caught up, and a scheduler that restarts enqueues
 * nothing twice.  An entry with no recorded tick starts with its next
 * tick (it does not catch up on the time before it existed).  Tick times
 * come from this host's clock; schedulers on hosts whose clocks differ
 * compute the same tick times, only at slightly different moments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "cron.h"
#include "log.h"
#include "sched.h"

#define COMPONENT "periodic"

/* Longest name: the key "cron:NAME@2026-11-28T07:00Z" stays below the
 * key limit with room to spare. */
#define NAME_MAX_BYTES 200

struct entry {
    const struct wq_config_periodic *c;
    struct wq_cron cron;
    int64_t next_s;             /* look again at this time (epoch s) */
};

struct wq_sched_periodic {
    struct entry *v;
    size_t n;
};

int
wq_sched_periodic_new(const struct wq_config *cfg,
    struct wq_sched_periodic **out, char *err, size_t errlen)
{
    const struct wq_config_periodic *c = cfg->periodic.v;
    struct wq_sched_periodic *p = xcalloc(1, sizeof *p);
    size_t used = 0;
    char why[WQ_ERRLEN];
    int bad = 0;

    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    p->v = xcalloc(cfg->periodic.n + 1, sizeof *p->v);
    p->n = cfg->periodic.n;
    for (size_t i = 0; i < p->n; i++) {
        const char *problem = NULL;
        char line[WQ_ERRLEN + 400];

        p->v[i].c = &c[i];
        if (strlen(c[i].name) > NAME_MAX_BYTES)
            problem = "name is longer than 200 bytes";
        for (size_t j = 0; j < i && problem == NULL; j++)
            if (strcmp(c[j].name, c[i].name) == 0)
                problem = "name is used by an earlier entry";
        if (problem == NULL && wq_cron_parse(c[i].schedule, &p->v[i].cron,
            why, sizeof why) != 0)
            problem = why;
        if (problem == NULL && wq_queue_name_valid(c[i].queue, why,
            sizeof why) != 0)
            problem = why;
        if (problem == NULL && strlen(c[i].type) > WQ_TYPE_MAX)
            problem = "type is longer than 128 bytes";
        if (problem == NULL && strlen(c[i].payload) > WQ_PAYLOAD_MAX)
            problem = "payload is larger than 1 MiB";
        if (problem == NULL)
            continue;
        bad = 1;
        snprintf(line, sizeof line, "%s%s: periodic[%zu] (%s): %s",
            used > 0 ? "\n" : "", c[i].where, i + 1, c[i].name, problem);
        if (err != NULL && used < errlen) {
            snprintf(err + used, errlen - used, "%s", line);
            used += strlen(err + used);
        }
    }
    if (bad) {
        wq_sched_periodic_free(p);
        return WQ_ECONFIG;
    }
    *out = p;
    return 0;
}

void
wq_sched_periodic_free(struct wq_sched_periodic *p)
{
    if (p == NULL)
        return;
    free(p->v);
    free(p);
}

int64_t
wq_sched_periodic_next_ms(const struct wq_sched_periodic *p)
{
    int64_t now_ms = wq_clock_wall_ms(), best = -1;

    for (size_t i = 0; p != NULL && i < p->n; i++) {
        int64_t ms = p->v[i].next_s * 1000 - now_ms;

        if (ms < 0)
            ms = 0;
        if (best < 0 || ms < best)
            best = ms;
    }
    return best;
}

/* Enqueues the due ticks of one entry. */
static int
tick_entry(struct wq_sched *s, struct entry *e, int64_t now_s, int *more,
    int *done, char *err, size_t errlen)
{
    const struct wq_config_periodic *c = e->c;
    struct wq_buf ticks = WQ_BUF_INIT;
    struct pg_result *r = NULL;
    const char *params[7];
    char num[32], maxa[16], prio[8];
    int64_t from, t, catchup_s = s->cfg->scheduler.cron_catchup_ms / 1000;
    int rc, n = 0, max_attempts = c->max_attempts;

    params[0] = c->name;
    if ((rc = wq_store_sched_query(s->store, WQ_SCHED_SQL_CRON_LAST, params,
        &r, err, errlen)) != 0)
        return rc;
    if (wq_store_isnull(r, 0, 0)) {
        from = now_s;   /* a new entry starts with its next tick */
    } else {
        from = wq_sched_rows_i64(r, 0, 0);
        if (from < now_s - catchup_s - 1)
            from = now_s - catchup_s - 1;
    }
    wq_store_rows_free(r);
    r = NULL;

    wq_sched_rows_array_begin(&ticks);
    for (rc = wq_cron_next(&e->cron, from, &t); rc == 0 && t <= now_s;
        rc = wq_cron_next(&e->cron, t, &t)) {
        if (n == s->batch) {
            *more = 1;
            break;
        }
        snprintf(num, sizeof num, "%lld", (long long)t);
        wq_sched_rows_array_add(&ticks, num);
        n++;
    }
    wq_sched_rows_array_end(&ticks);
    rc = 0;
    if (*more)
        e->next_s = now_s;
    else if (wq_cron_next(&e->cron, now_s, &e->next_s) != 0)
        e->next_s = INT64_MAX / 1000;

    if (n > 0) {
        if (max_attempts <= 0)
            wq_sched_rows_policy(s->cfg, c->queue, &(struct wq_backoff){ 0 },
                &max_attempts);
        snprintf(maxa, sizeof maxa, "%d", max_attempts);
        params[1] = ticks.data;
        params[2] = c->queue;
        params[3] = c->type;
        params[4] = c->payload;
        params[5] = maxa;
        /* publish.c sends the task to its priority's band */
        snprintf(prio, sizeof prio, "%d", c->priority);
        params[6] = prio;
        if ((rc = wq_store_sched_query(s->store, WQ_SCHED_SQL_CRON_TICK,
            params, &r, err, errlen)) == 0) {
            int got = wq_store_nrows(r);

            if (got > 0)
                wq_log_info(COMPONENT, "%s: enqueued %d tick(s) of %d due "
                    "(queue %s, type %s)", c->name, got, n, c->queue,
                    c->type);
            wq_metric_inc(s->st->cron_ticks, (uint64_t)got);
            *done += got;
            wq_store_rows_free(r);
        } else {
            e->next_s = now_s;  /* try again after the store is back */
        }
    }
    wq_buf_free(&ticks);
    return rc;
}

int
wq_sched_periodic_tick(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen)
{
    int64_t now_s = wq_clock_wall_ms() / 1000;
    int rc;

    *more = 0;
    *done = 0;
    for (size_t i = 0; s->periodic != NULL && i < s->periodic->n; i++) {
        struct entry *e = &s->periodic->v[i];
        int m = 0;

        if (e->next_s > now_s)
            continue;
        if ((rc = tick_entry(s, e, now_s, &m, done, err, errlen)) != 0)
            return rc;
        *more |= m;
    }
    return 0;
}
