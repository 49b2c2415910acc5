/*
 * http.c - libmicrohttpd glue: body accumulation with a limit, deferred
 * answers through suspend/resume, constant-time token compare (see
 * http.h).
 *
 * A request's life in libmicrohttpd: the access handler is called once
 * with the headers (we allocate our per-request state), then once per
 * body chunk, then once with an empty chunk (we call the handler).  A
 * deferred request is suspended; wq_http_complete stores the answer and
 * resumes it, and the access handler is called again and queues it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>

#include "alloc.h"
#include "http.h"

struct wq_http {
    struct MHD_Daemon *mhd;
    struct wq_http_conf conf;
    int port;
    pthread_mutex_t lock;       /* guards the list of suspended requests */
    wq_http_req *suspended;
};

struct wq_http_req {
    wq_http *server;
    struct MHD_Connection *conn;
    char *body;
    size_t len, cap;
    int too_big;
    int state;                  /* READING, WAITING, ANSWERED */
    int status;
    const char *ctype;
    char *answer;
    size_t answer_len;
    wq_http_req *next, *prev;   /* in server->suspended while WAITING */
};

enum { READING, WAITING, ANSWERED };

int
wq_http_token_equal(const char *presented, const char *known)
{
    size_t n = strlen(known), m = strlen(presented);
    unsigned char diff = (unsigned char)(n != m);

    /* walk the known token's length whatever was presented */
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)known[i] ^
            (unsigned char)(i < m ? presented[i] : 0);
    return diff == 0;
}

char *
wq_http_json_error(const char *error, const char *detail, size_t *len)
{
    json_t *o = json_pack("{s:s, s:s}", "error", error, "detail",
        detail ? detail : "");
    char *s = json_dumps(o, JSON_COMPACT);

    json_decref(o);
    if (s == NULL)
        abort();
    *len = strlen(s);
    return s;
}

static enum MHD_Result
queue(struct MHD_Connection *conn, int status, const char *ctype,
    char *body, size_t len)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(len, body ? body : (char *)"",
        body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (ctype != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static void
unlink_suspended(wq_http_req *rq)
{
    wq_http *h = rq->server;

    if (rq->prev != NULL)
        rq->prev->next = rq->next;
    else if (h->suspended == rq)
        h->suspended = rq->next;
    if (rq->next != NULL)
        rq->next->prev = rq->prev;
    rq->next = rq->prev = NULL;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_size, void **con_cls)
{
    wq_http *h = cls;
    wq_http_req *rq = *con_cls;
    struct wq_http_request req;
    const char *ctype = NULL;
    char *body = NULL;
    size_t len = 0;
    int status = 500, rc;

    (void)version;
    if (rq == NULL) {
        rq = xcalloc(1, sizeof *rq);
        rq->server = h;
        rq->conn = conn;
        *con_cls = rq;
        return MHD_YES;
    }
    if (rq->state == WAITING) {
        /* resumed: the answer is in rq */
        rq->state = ANSWERED;
        body = rq->answer;
        rq->answer = NULL;
        return queue(conn, rq->status, rq->ctype, body, rq->answer_len);
    }
    if (*upload_size > 0) {
        if (!rq->too_big && rq->len + *upload_size > h->conf.max_body) {
            rq->too_big = 1;
        } else if (!rq->too_big) {
            if (rq->len + *upload_size + 1 > rq->cap) {
                rq->cap = (rq->len + *upload_size + 1) * 2;
                if (rq->cap > h->conf.max_body + 1)
                    rq->cap = h->conf.max_body + 1;
                rq->body = xreallocarray(rq->body, rq->cap, 1);
            }
            memcpy(rq->body + rq->len, upload_data, *upload_size);
            rq->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->state == ANSWERED)
        return MHD_NO;
    if (rq->too_big) {
        rq->state = ANSWERED;
        body = wq_http_json_error("payload_too_large",
            "request body exceeds the configured maximum", &len);
        return queue(conn, 413, "application/json", body, len);
    }
    if (rq->body == NULL)
        rq->body = xcalloc(1, 1);
    rq->body[rq->len] = '\0';

    req.method = method;
    req.path = url;
    req.body = rq->body;
    req.body_len = rq->len;
    req.content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
        MHD_HTTP_HEADER_CONTENT_TYPE);
    req.authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
        MHD_HTTP_HEADER_AUTHORIZATION);
    req.idempotency_key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
        "Idempotency-Key");
    req.handle = rq;

    /* Suspend before the handler can complete from another thread. */
    pthread_mutex_lock(&h->lock);
    rq->state = WAITING;
    rq->next = h->suspended;
    if (h->suspended != NULL)
        h->suspended->prev = rq;
    h->suspended = rq;
    MHD_suspend_connection(conn);
    pthread_mutex_unlock(&h->lock);

    rc = h->conf.handler(h->conf.user, &req, &status, &ctype, &body, &len);
    if (rc != WQ_EAGAIN)
        wq_http_complete(rq, status, ctype, body, len);
    return MHD_YES;
}

void
wq_http_complete(wq_http_req *rq, int status, const char *content_type,
    char *body, size_t body_len)
{
    wq_http *h = rq->server;

    pthread_mutex_lock(&h->lock);
    rq->status = status;
    rq->ctype = content_type;
    rq->answer = body;
    rq->answer_len = body_len;
    unlink_suspended(rq);
    MHD_resume_connection(rq->conn);
    pthread_mutex_unlock(&h->lock);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
    wq_http_req *rq = *con_cls;

    (void)cls; (void)conn; (void)toe;
    if (rq == NULL)
        return;
    free(rq->body);
    free(rq->answer);
    free(rq);
    *con_cls = NULL;
}

static int
parse_listen(const char *listen, struct sockaddr_in *sa, char *err,
    size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    char *end;
    long port;

    if (colon == NULL || (size_t)(colon - listen) >= sizeof host)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "listen address '%s': expected host:port", listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "listen address '%s': bad port", listen);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        sa->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "listen address '%s': host must be an IPv4 address", listen);
    return 0;
}

int
wq_http_start(const struct wq_http_conf *conf, wq_http **out, char *err,
    size_t errlen)
{
    struct sockaddr_in sa;
    const union MHD_DaemonInfo *info;
    wq_http *h;
    int rc;

    if ((rc = parse_listen(conf->listen, &sa, err, errlen)) != 0)
        return rc;
    h = xcalloc(1, sizeof *h);
    h->conf = *conf;
    pthread_mutex_init(&h->lock, NULL);
    h->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
        MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_access, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, conf->threads ? conf->threads : 1,
        MHD_OPTION_CONNECTION_TIMEOUT, conf->timeout_s ? conf->timeout_s : 10,
        MHD_OPTION_CONNECTION_LIMIT,
        conf->max_connections ? conf->max_connections : 1024,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_END);
    if (h->mhd == NULL) {
        pthread_mutex_destroy(&h->lock);
        free(h);
        return wq_seterr(err, errlen, WQ_EIO,
            "cannot listen on %s (address in use or not permitted)",
            conf->listen);
    }
    info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info != NULL ? info->port : ntohs(sa.sin_port);
    *out = h;
    return 0;
}

int
wq_http_port(const wq_http *h)
{
    return h->port;
}

void
wq_http_stop(wq_http *h)
{
    if (h == NULL)
        return;
    /* answer whatever still waits, so no connection hangs */
    for (;;) {
        wq_http_req *rq;
        size_t len;
        char *body;

        pthread_mutex_lock(&h->lock);
        rq = h->suspended;
        pthread_mutex_unlock(&h->lock);
        if (rq == NULL)
            break;
        body = wq_http_json_error("unavailable", "server is stopping", &len);
        wq_http_complete(rq, 503, "application/json", body, len);
    }
    MHD_stop_daemon(h->mhd);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
