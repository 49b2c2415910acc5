/*
 * metrics.c - a registry of atomically updated metrics and the Prometheus
 * text renderer (see metrics.h).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "metrics.h"
#include "redact.h"

enum kind { COUNTER, GAUGE, HISTOGRAM };

struct wq_metric {
    enum kind kind;
    char *name, *help, *labels;
    _Atomic int64_t value;          /* counter or gauge */
    double *bounds;                 /* histogram */
    size_t nbounds;
    _Atomic uint64_t *buckets;      /* nbounds + 1 (the +Inf bucket) */
    _Atomic uint64_t sum_micros;    /* sum of observations, in 1e-6 units */
};

struct wq_metrics {
    wq_metric **v;
    size_t n, cap;
};

const double wq_metrics_latency_bounds[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
    5, 10,
};
const size_t wq_metrics_latency_nbounds =
    sizeof wq_metrics_latency_bounds / sizeof wq_metrics_latency_bounds[0];

wq_metrics *
wq_metrics_new(void)
{
    return xcalloc(1, sizeof(wq_metrics));
}

void
wq_metrics_free(wq_metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++) {
        wq_metric *x = m->v[i];
        free(x->name);
        free(x->help);
        free(x->labels);
        free(x->bounds);
        free((void *)x->buckets);
        free(x);
    }
    free(m->v);
    free(m);
}

static wq_metric *
add(wq_metrics *m, enum kind kind, const char *name, const char *help,
    const char *labels)
{
    wq_metric *x = xcalloc(1, sizeof *x);

    x->kind = kind;
    x->name = xstrdup(name);
    x->help = xstrdup(help);
    if (labels != NULL && labels[0] != '\0') {
        /* a label never shows a password, whatever it quotes */
        size_t n = wq_redact(NULL, 0, labels) + 1;

        x->labels = xmalloc(n);
        wq_redact(x->labels, n, labels);
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->v = xreallocarray(m->v, m->cap, sizeof *m->v);
    }
    m->v[m->n++] = x;
    return x;
}

wq_metric *
wq_metrics_counter(wq_metrics *m, const char *name, const char *help,
    const char *labels)
{
    return add(m, COUNTER, name, help, labels);
}

wq_metric *
wq_metrics_gauge(wq_metrics *m, const char *name, const char *help,
    const char *labels)
{
    return add(m, GAUGE, name, help, labels);
}

wq_metric *
wq_metrics_histogram(wq_metrics *m, const char *name, const char *help,
    const char *labels, const double *bounds, size_t n)
{
    wq_metric *x = add(m, HISTOGRAM, name, help, labels);

    x->bounds = xmemdup(bounds, n * sizeof *bounds);
    x->nbounds = n;
    x->buckets = xcalloc(n + 1, sizeof *x->buckets);
    return x;
}

void
wq_metric_inc(wq_metric *c, uint64_t n)
{
    if (c != NULL)
        atomic_fetch_add_explicit(&c->value, (int64_t)n,
            memory_order_relaxed);
}

void
wq_metric_set(wq_metric *g, int64_t v)
{
    if (g != NULL)
        atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

void
wq_metric_add(wq_metric *g, int64_t delta)
{
    if (g != NULL)
        atomic_fetch_add_explicit(&g->value, delta, memory_order_relaxed);
}

int64_t
wq_metric_value(const wq_metric *c)
{
    return atomic_load_explicit(&((wq_metric *)c)->value,
        memory_order_relaxed);
}

void
wq_metric_observe(wq_metric *h, double v)
{
    size_t i;

    if (h == NULL)
        return;
    /* cumulative buckets are summed at render time; store per bucket */
    for (i = 0; i < h->nbounds && v > h->bounds[i]; i++)
        ;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    if (v > 0)
        atomic_fetch_add_explicit(&h->sum_micros, (uint64_t)(v * 1e6),
            memory_order_relaxed);
}

/* Writes `name{labels,extra}` to f. */
static void
series(FILE *f, const char *name, const char *suffix, const char *labels,
    const char *extra)
{
    fprintf(f, "%s%s", name, suffix);
    if (labels == NULL && extra == NULL)
        return;
    fprintf(f, "{%s%s%s}", labels ? labels : "",
        labels && extra ? "," : "", extra ? extra : "");
}

char *
wq_metrics_render(wq_metrics *m, size_t *len)
{
    static const char *const type_names[] = { "counter", "gauge",
        "histogram" };
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);

    if (f == NULL)
        abort();
    for (size_t i = 0; i < m->n; i++) {
        wq_metric *x = m->v[i];
        int first = 1;

        /* HELP and TYPE once per family: only before its first series */
        for (size_t j = 0; j < i; j++)
            if (strcmp(m->v[j]->name, x->name) == 0)
                first = 0;
        if (first)
            fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help,
                x->name, type_names[x->kind]);
        if (x->kind != HISTOGRAM) {
            series(f, x->name, "", x->labels, NULL);
            fprintf(f, " %lld\n", (long long)atomic_load_explicit(&x->value,
                memory_order_relaxed));
            continue;
        }
        uint64_t cum = 0;
        char le[64];
        for (size_t b = 0; b <= x->nbounds; b++) {
            cum += atomic_load_explicit(&x->buckets[b], memory_order_relaxed);
            if (b < x->nbounds)
                snprintf(le, sizeof le, "le=\"%g\"", x->bounds[b]);
            else
                snprintf(le, sizeof le, "le=\"+Inf\"");
            series(f, x->name, "_bucket", x->labels, le);
            fprintf(f, " %llu\n", (unsigned long long)cum);
        }
        series(f, x->name, "_sum", x->labels, NULL);
        fprintf(f, " %.6f\n", (double)atomic_load_explicit(&x->sum_micros,
            memory_order_relaxed) / 1e6);
        series(f, x->name, "_count", x->labels, NULL);
        /* the count is the +Inf bucket, so the two always agree */
        fprintf(f, " %llu\n", (unsigned long long)cum);
    }
    fclose(f);
    if (len != NULL)
        *len = size;
    return buf;
}
