/*
 * metrics.h - counters, gauges and histograms, rendered in the Prometheus
 * text exposition format (version 0.0.4) for GET /metrics.
 *
 * A registry owns its metrics.  Metrics are created at start-up (not
 * thread-safe: create before threads start), then updated from any
 * thread with relaxed atomics: no lock on the hot path.  A metric name
 * may be registered several times with different label sets (e.g.
 * outcome="succeeded" and outcome="failed"); they render as one family.
 */
#ifndef WQ_METRICS_H
#define WQ_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct wq_metrics wq_metrics;
typedef struct wq_metric wq_metric;

wq_metrics *wq_metrics_new(void);
void wq_metrics_free(wq_metrics *m);

/*
 * Registration.  `labels` is NULL or the inside of the braces, already
 * escaped: `outcome="succeeded",queue="emails"`.  Strings are copied.
 * Histogram bounds ascend; +Inf is implicit.  The returned metric lives as
 * long as the registry.
 */
wq_metric *wq_metrics_counter(wq_metrics *m, const char *name,
    const char *help, const char *labels);
wq_metric *wq_metrics_gauge(wq_metrics *m, const char *name,
    const char *help, const char *labels);
wq_metric *wq_metrics_histogram(wq_metrics *m, const char *name,
    const char *help, const char *labels, const double *bounds, size_t n);

/* Latency buckets in seconds, 0.5 ms to 10 s, for the histograms. */
extern const double wq_metrics_latency_bounds[];
extern const size_t wq_metrics_latency_nbounds;

/* Updates; thread-safe, lock-free.  NULL metric is a no-op. */
void wq_metric_inc(wq_metric *c, uint64_t n);
void wq_metric_set(wq_metric *g, int64_t v);
void wq_metric_add(wq_metric *g, int64_t delta);
void wq_metric_observe(wq_metric *h, double v);

/* Current value of a counter or gauge (for tests and STATUS lines). */
int64_t wq_metric_value(const wq_metric *c);

/*
 * wq_metrics_render returns the whole exposition as a NUL-terminated
 * string the caller frees; *len gets its length.  Thread-safe with
 * respect to updates (values are read atomically one by one).
 */
char *wq_metrics_render(wq_metrics *m, size_t *len);

#endif
