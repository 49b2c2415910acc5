/*
 * health.c - /healthz and /metrics for the daemons (see health.h).
 */
#include <string.h>

#include "alloc.h"
#include "health.h"

struct health {
    wq_metrics *reg;
    wq_health_fn *why;
    void *user;
};

static int
handler(void *user, const struct wq_http_request *req, int *status,
    const char **content_type, char **body, size_t *body_len)
{
    struct health *h = user;
    const char *why;

    *content_type = "application/json";
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        *status = 405;
        *body = wq_http_json_error("method not allowed", "GET only",
            body_len);
        return 0;
    }
    if (strcmp(req->path, "/metrics") == 0) {
        *status = 200;
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        *body = wq_metrics_render(h->reg, body_len);
        return 0;
    }
    if (strcmp(req->path, "/healthz") == 0) {
        if ((why = h->why(h->user)) == NULL) {
            *status = 200;
            *body = xstrdup("{\"status\":\"ok\"}\n");
            *body_len = strlen(*body);
        } else {
            *status = 503;
            *body = wq_http_json_error("unhealthy", why, body_len);
        }
        return 0;
    }
    *status = 404;
    *body = wq_http_json_error("not found", "try /healthz or /metrics",
        body_len);
    return 0;
}

int
wq_health_serve(const char *listen, wq_metrics *reg, wq_health_fn *why,
    void *user, wq_http **out, int *port, char *err, size_t errlen)
{
    /* one per process and never freed before exit: the server's threads
     * may read it until wq_http_stop returns */
    static struct health h;
    struct wq_http_conf hc;
    int rc;

    *out = NULL;
    if (port != NULL)
        *port = 0;
    if (listen == NULL || listen[0] == '\0')
        return 0;
    h.reg = reg;
    h.why = why;
    h.user = user;
    memset(&hc, 0, sizeof hc);
    hc.listen = listen;
    hc.max_body = 1024;
    hc.timeout_s = 10;
    hc.read_timeout_s = 10;     /* slow clients are cut here too */
    hc.threads = 2;
    hc.max_connections = 64;
    hc.handler = handler;
    hc.user = &h;
    if ((rc = wq_http_start(&hc, out, err, errlen)) != 0)
        return rc;
    if (port != NULL)
        *port = wq_http_port(*out);
    return 0;
}
