/*
 * health.h - the operational endpoints every workq daemon serves on
 * metrics.listen: GET /healthz (200 {"status":"ok"}, or 503 with the
 * reason the daemon gives) and GET /metrics (its registry in Prometheus
 * text).  Built on http.h; the daemon keeps its own notion of health and
 * says it through a callback.
 */
#ifndef WQ_HEALTH_H
#define WQ_HEALTH_H

#include <stddef.h>

#include "http.h"
#include "metrics.h"

/*
 * Returns NULL when healthy, else a constant sentence saying why not
 * ("the consume loop is stuck").  Called on a server thread: it must only
 * read atomics or other thread-safe state.
 */
typedef const char *wq_health_fn(void *user);

/*
 * wq_health_serve starts /healthz and /metrics on `listen` ("host:port";
 * port 0 picks one; "" or NULL serves nothing and returns 0 with *out
 * NULL).  `reg` and `user` must outlive the server.  *port (may be NULL)
 * gets the bound port, 0 if none.  Returns 0, or WQ_EIO/WQ_EINVAL with
 * err set.  Stop with wq_http_stop(*out).
 */
int wq_health_serve(const char *listen, wq_metrics *reg, wq_health_fn *why,
    void *user, wq_http **out, int *port, char *err, size_t errlen);

#endif
