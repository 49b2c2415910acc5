/*
 * flow_control.c - the worker's side of flow control (see
 * flow_control.h; the SQL is store_flow.c's).
 *
 * Rate limits become token buckets named "q:QUEUE" (the queue's limit)
 * and "t:QUEUE:TYPE" (a type's limit); a task needs a token of each
 * bucket that applies to it, and a slot of its concurrency key if it has
 * one, all or nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "flow_control.h"

#define RELEASE_BATCH 256       /* releases that go out without waiting */

struct limit {
    const char *queue;
    const char *type;           /* "": the queue's limit */
    char *bucket;
    int rate, burst;
};

struct release {
    char *queue, *key;
};

struct wq_flow {
    struct limit *limits;
    size_t nlimits;
    struct release *rel;
    size_t nrel, caprel;
    int urgent;
    struct wq_flow_bufs bufs;
    struct wq_flow_candidate *cand;
    struct wq_flow_release *relv;
    size_t capcand;
};

int
wq_flow_check_config(const struct wq_config *cfg, char *err, size_t errlen)
{
    const struct wq_config_rate_limit *l = cfg->rate_limits.v;
    char why[WQ_ERRLEN];

    for (size_t i = 0; i < cfg->rate_limits.n; i++) {
        if (wq_queue_name_valid(l[i].queue, why, sizeof why) != 0)
            return wq_seterr(err, errlen, WQ_ECONFIG, "%s: rate_limits: "
                "queue: %s", l[i].where, why);
        for (size_t j = 0; j < i; j++)
            if (strcmp(l[i].queue, l[j].queue) == 0
                && strcmp(l[i].type, l[j].type) == 0)
                return wq_seterr(err, errlen, WQ_ECONFIG, "%s: rate_limits: "
                    "queue \"%s\"%s%s%s has a limit already (%s)",
                    l[i].where, l[i].queue, l[i].type[0] != '\0'
                    ? " type \"" : "", l[i].type, l[i].type[0] != '\0'
                    ? "\"" : "", l[j].where);
    }
    return 0;
}

wq_flow *
wq_flow_new(const struct wq_config *cfg)
{
    const struct wq_config_rate_limit *l = cfg->rate_limits.v;
    wq_flow *f = xcalloc(1, sizeof *f);

    f->nlimits = cfg->rate_limits.n;
    f->limits = f->nlimits > 0 ? xcalloc(f->nlimits, sizeof *f->limits)
        : NULL;
    for (size_t i = 0; i < f->nlimits; i++) {
        f->limits[i].queue = l[i].queue;
        f->limits[i].type = l[i].type;
        f->limits[i].rate = l[i].rate;
        f->limits[i].burst = l[i].burst > 0 ? l[i].burst : l[i].rate;
        if (l[i].type[0] == '\0')
            f->limits[i].bucket = xasprintf("q:%s", l[i].queue);
        else
            f->limits[i].bucket = xasprintf("t:%s:%s", l[i].queue,
                l[i].type);
    }
    return f;
}

static void
release_clear(wq_flow *f)
{
    for (size_t i = 0; i < f->nrel; i++) {
        free(f->rel[i].queue);
        free(f->rel[i].key);
    }
    f->nrel = 0;
    f->urgent = 0;
}

void
wq_flow_free(wq_flow *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->nlimits; i++)
        free(f->limits[i].bucket);
    free(f->limits);
    release_clear(f);
    free(f->rel);
    free(f->cand);
    free(f->relv);
    wq_flow_bufs_free(&f->bufs);
    free(f);
}

/* The limits of a task: its queue's and its type's, each NULL if none. */
static void
limits_of(const wq_flow *f, const struct wq_envelope *env,
    const struct limit **ql, const struct limit **tl)
{
    *ql = *tl = NULL;
    for (size_t i = 0; i < f->nlimits; i++) {
        const struct limit *l = &f->limits[i];

        if (strcmp(l->queue, env->queue) != 0)
            continue;
        if (l->type[0] == '\0')
            *ql = l;
        else if (strcmp(l->type, env->type) == 0)
            *tl = l;
    }
}

int
wq_flow_needed(const wq_flow *f, const struct wq_envelope *env)
{
    const struct limit *ql, *tl;

    if (env->concurrency_key != NULL)
        return 1;
    if (f == NULL || f->nlimits == 0)
        return 0;
    limits_of(f, env, &ql, &tl);
    return ql != NULL || tl != NULL;
}

void
wq_flow_release_add(wq_flow *f, const struct wq_envelope *env, int urgent)
{
    if (env->concurrency_key == NULL)
        return;
    if (f->nrel == f->caprel) {
        f->caprel = f->caprel > 0 ? 2 * f->caprel : 16;
        f->rel = xreallocarray(f->rel, f->caprel, sizeof *f->rel);
    }
    f->rel[f->nrel].queue = xstrdup(env->queue);
    f->rel[f->nrel].key = xstrdup(env->key);
    f->nrel++;
    f->urgent |= urgent;
}

int
wq_flow_release_due(const wq_flow *f)
{
    return f->nrel > 0 && (f->urgent || f->nrel >= RELEASE_BATCH);
}

int
wq_flow_admit(wq_flow *f, wq_store *s, const char *worker,
    int64_t grace_ms, const struct wq_envelope *const *envs, size_t n,
    unsigned char *admitted, int *wait_ms, char *err, size_t errlen)
{
    int rc;

    if (n > f->capcand) {
        f->capcand = n;
        f->cand = xreallocarray(f->cand, n, sizeof *f->cand);
    }
    f->relv = xreallocarray(f->relv, f->nrel > 0 ? f->nrel : 1,
        sizeof *f->relv);
    for (size_t i = 0; i < f->nrel; i++) {
        f->relv[i].queue = f->rel[i].queue;
        f->relv[i].key = f->rel[i].key;
    }
    for (size_t i = 0; i < n; i++) {
        struct wq_flow_candidate *c = &f->cand[i];
        const struct limit *lim[2];

        memset(c, 0, sizeof *c);
        c->queue = envs[i]->queue;
        c->key = envs[i]->key;
        c->ckey = envs[i]->concurrency_key != NULL
            ? envs[i]->concurrency_key : "";
        c->climit = envs[i]->concurrency_limit > 0
            ? (int)envs[i]->concurrency_limit : 1;
        limits_of(f, envs[i], &lim[1], &lim[0]);    /* type, then queue */
        for (int j = 0; j < 2; j++) {
            c->bucket[j] = lim[j] != NULL ? lim[j]->bucket : "";
            c->rate[j] = lim[j] != NULL ? lim[j]->rate : 0;
            c->burst[j] = lim[j] != NULL ? lim[j]->burst : 0;
        }
    }
    rc = wq_store_flow_admit(s, &f->bufs, worker, grace_ms, f->cand, n,
        f->relv, f->nrel, err, errlen);
    if (rc != 0)
        return rc;
    release_clear(f);
    for (size_t i = 0; i < n; i++) {
        admitted[i] = (unsigned char)f->cand[i].admitted;
        wait_ms[i] = f->cand[i].wait_ms;
    }
    return 0;
}
