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
 *
 * Slow clients: libmicrohttpd's connection timeout is an idle timeout,
 * which a client sending one byte a second never reaches.  So each
 * connection is tracked from its accept (MHD_OPTION_NOTIFY_CONNECTION):
 * the time its current request started, and whether the handler has it
 * already.  A reaper thread sleeps until the earliest deadline of the
 * connections still reading and shuts their sockets down (shutdown(2),
 * not close: libmicrohttpd owns the descriptor, sees end of file and
 * closes it itself).  The lock that guards the tracks is also held by
 * the close notification, which runs before libmicrohttpd closes the
 * descriptor, so a descriptor is never shut down after it was reused.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "alloc.h"
#include "clock.h"
#include "http.h"
#include "log.h"

/*
 * TLS versions and suites: 1.3 (preferred: GnuTLS picks the highest
 * version both sides speak) and 1.2 with forward-secret AEAD suites only,
 * ECDHE key exchange with AES-GCM or ChaCha20-Poly1305.  No RSA key
 * exchange, no CBC, no SHA-1 MAC, no AES-CCM; no finite-field DHE either
 * (it would need DH parameters, and every TLS 1.2 client has ECDHE).
 */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2" \
    ":-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA" \
    ":-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-GCM" \
    ":-MAC-ALL:+AEAD"

/* One connection, from accept to close (its MHD socket context). */
struct track {
    struct track *next, *prev;
    int fd;
    uint64_t since_ns;          /* start of the request being read */
    int answering;              /* the handler has the request */
    int shut;                   /* shut down by the reaper */
};

struct wq_http {
    struct MHD_Daemon *mhd;
    struct wq_http_conf conf;
    int port;
    pthread_mutex_t lock;       /* guards the list of suspended requests */
    wq_http_req *suspended;
    int sending;                /* answered by wq_http_complete, not yet
                                 * sent (under lock) */
    char *cert, *key;           /* copies of the PEM text (TLS) */

    pthread_mutex_t conns_lock; /* guards conns, each track, stopping */
    pthread_cond_t conns_cond;  /* wakes the reaper */
    struct track *conns;
    int stopping, reaper_started;
    pthread_t reaper;
};

struct wq_http_req {
    wq_http *server;
    struct MHD_Connection *conn;
    char *body;
    size_t len, cap;
    int too_big;
    int reject;                 /* 431: headers over the limits; 400 */
    const char *malformed;      /* why 400 */
    unsigned retry_after;       /* seconds, for a Retry-After field */
    const char *const *fields;  /* name, value, ..., NULL; static */
    char client[INET6_ADDRSTRLEN];
    struct track *track;        /* the connection's, or NULL */
    int state;                  /* READING, WAITING, ANSWERED */
    int in_handler;             /* the handler runs (under server->lock) */
    int completed;              /* wq_http_complete was called (same) */
    int counted;                /* in server->sending (same) */
    int status;
    const char *ctype;
    char *answer;
    size_t answer_len;
    wq_http_req *next, *prev;   /* in server->suspended while WAITING */
};

enum { READING, WAITING, ANSWERED };

/* The query arguments of a request, gathered for the handler. */
struct args {
    struct wq_http_arg v[WQ_HTTP_ARGS_MAX];
    size_t n;
    int over;
};

static enum MHD_Result
on_arg(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
    struct args *a = cls;

    (void)kind;
    if (a->n == WQ_HTTP_ARGS_MAX) {
        a->over = 1;
        return MHD_NO;
    }
    a->v[a->n].name = key;
    a->v[a->n++].value = value;
    return MHD_YES;
}

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
    /* a detail may quote the client's bytes, which need not be UTF-8:
     * json_pack would refuse it */
    char *text = wq_utf8_sanitize(detail != NULL ? detail : "");
    json_t *o = json_pack("{s:s, s:s}", "error", error, "detail",
        text != NULL ? text : "");
    char *s = json_dumps(o, JSON_COMPACT);

    free(text);
    json_decref(o);
    if (s == NULL)
        abort();
    *len = strlen(s);
    return s;
}

static enum MHD_Result
queue_fields(struct MHD_Connection *conn, int status, const char *ctype,
    char *body, size_t len, unsigned retry_after, const char *const *fields)
{
    struct MHD_Response *r;
    enum MHD_Result ret;
    char secs[16];

    r = MHD_create_response_from_buffer(len, body ? body : (char *)"",
        body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (ctype != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (retry_after > 0) {
        snprintf(secs, sizeof secs, "%u", retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    }
    for (; fields != NULL && fields[0] != NULL && fields[1] != NULL;
        fields += 2)
        MHD_add_response_header(r, fields[0], fields[1]);
    ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result
queue(struct MHD_Connection *conn, int status, const char *ctype,
    char *body, size_t len)
{
    return queue_fields(conn, status, ctype, body, len, 0, NULL);
}

/* A JSON answer after which the connection is closed: what follows a
 * malformed request on it cannot be trusted to be a request. */
static enum MHD_Result
queue_closing(struct MHD_Connection *conn, int status, char *body,
    size_t len)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
        "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
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

struct header_count {
    size_t n;
    int too_long;
    int content_length, transfer_encoding, authorization;
    const char *malformed;      /* why the header fields are refused */
};

/*
 * Counts the header fields and checks what libmicrohttpd lets through
 * that a proxy in front of us may read differently (request smuggling):
 * a NUL in a name or value, white space in a name, Content-Length twice
 * or next to Transfer-Encoding, and Authorization twice (which one
 * counts would be a guess).
 */
static enum MHD_Result
count_header(void *cls, enum MHD_ValueKind kind, const char *key,
    size_t key_size, const char *value, size_t value_size)
{
    struct header_count *hc = cls;

    (void)kind;
    hc->n++;
    if (key_size > WQ_HTTP_HEADER_NAME_MAX
        || value_size > WQ_HTTP_HEADER_VALUE_MAX)
        hc->too_long = 1;
    if (hc->malformed != NULL)
        return MHD_YES;
    if (strlen(key) != key_size
        || (value != NULL && strlen(value) != value_size))
        hc->malformed = "a NUL byte in a header field";
    else if (key_size == 0 || key[strcspn(key, " \t\r\n")] != '\0')
        hc->malformed = "white space in a header field name";
    else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0
        && (++hc->content_length > 1 || hc->transfer_encoding))
        hc->malformed = "Content-Length twice, or with Transfer-Encoding";
    else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0
        && (++hc->transfer_encoding > 1 || hc->content_length))
        hc->malformed = "Transfer-Encoding twice, or with Content-Length";
    else if (strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0
        && ++hc->authorization > 1)
        hc->malformed = "Authorization twice";
    return MHD_YES;
}

/*
 * libmicrohttpd's own messages (a malformed request it refused itself, a
 * failed TLS handshake, ...) go to our log, not raw to stderr.
 */
static void
mhd_log(void *cls, const char *fmt, va_list ap) WQ_PRINTFLIKE(2, 0);

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    wq_log_warn("http", "libmicrohttpd: %s", msg);
}

/* The client's address as text, or "" */
static void
client_text(struct MHD_Connection *conn, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
        MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

    buf[0] = '\0';
    if (sa != NULL && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)
            ->sin_addr, buf, len);
    else if (sa != NULL && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
            (const void *)sa)->sin6_addr, buf, len);
}

/*
 * A request libmicrohttpd refuses itself never reaches our handler (0.9.75:
 * HTTP/1.1 without Host, white space in the URL; 1.0 also a bare LF, a NUL,
 * Content-Length with Transfer-Encoding): the library answers 400, says
 * why in a message and closes the connection.  mhd_logger keeps the first
 * such message of the connection here (it runs on the connection's own
 * thread), and on_connection logs it once, with the client, at the close.
 * A thread that serves several connections at once may close another one
 * first: the refusal is then logged at that close, with that client (late
 * or misattributed, never lost).
 */
static _Thread_local char refused[160];

/* Tracks connections from accept to close, for the reaper. */
static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode code)
{
    wq_http *h = cls;
    struct track *t;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
            MHD_CONNECTION_INFO_CONNECTION_FD);

        t = xcalloc(1, sizeof *t);
        t->fd = ci != NULL ? ci->connect_fd : -1;
        t->since_ns = wq_clock_mono_ns();
        pthread_mutex_lock(&h->conns_lock);
        t->next = h->conns;
        if (h->conns != NULL)
            h->conns->prev = t;
        h->conns = t;
        pthread_cond_signal(&h->conns_cond);
        pthread_mutex_unlock(&h->conns_lock);
        *socket_context = t;
        return;
    }
    /* MHD_CONNECTION_NOTIFY_CLOSED: before the descriptor is closed */
    if (refused[0] != '\0') {
        char client[INET6_ADDRSTRLEN];

        client_text(conn, client, sizeof client);
        wq_log_warn("http", "refused a malformed request from %s (by the "
            "HTTP parser): %s", client[0] ? client : "?", refused);
        refused[0] = '\0';
    }
    if ((t = *socket_context) == NULL)
        return;
    pthread_mutex_lock(&h->conns_lock);
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        h->conns = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&h->conns_lock);
    free(t);
    *socket_context = NULL;
}

/*
 * The reaper: shuts down every connection whose request has not arrived
 * whole within read_timeout_s, then sleeps until the next such deadline
 * (or until a connection comes or a request ends, which may bring one
 * nearer).  No connection reading: no wakeups.
 */
static void *
reaper_main(void *arg)
{
    wq_http *h = arg;
    uint64_t limit = (uint64_t)h->conf.read_timeout_s * 1000000000u;

    pthread_mutex_lock(&h->conns_lock);
    while (!h->stopping) {
        uint64_t now = wq_clock_mono_ns(), next = 0;

        for (struct track *t = h->conns; t != NULL; t = t->next) {
            if (t->answering || t->shut || t->fd < 0)
                continue;
            if (now - t->since_ns >= limit) {
                shutdown(t->fd, SHUT_RDWR);
                t->shut = 1;
            } else if (next == 0 || t->since_ns + limit < next) {
                next = t->since_ns + limit;
            }
        }
        if (next == 0) {
            pthread_cond_wait(&h->conns_cond, &h->conns_lock);
        } else {
            struct timespec ts;
            uint64_t wait = next - now;

            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += (time_t)(wait / 1000000000u);
            ts.tv_nsec += (long)(wait % 1000000000u);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&h->conns_cond, &h->conns_lock, &ts);
        }
    }
    pthread_mutex_unlock(&h->conns_lock);
    return NULL;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_size, void **con_cls)
{
    wq_http *h = cls;
    wq_http_req *rq = *con_cls;
    struct wq_http_request req;
    struct args args;
    const char *ctype = NULL;
    char *body = NULL;
    size_t len = 0;
    int status = 500, rc;

    (void)version;
    if (rq == NULL) {
        const union MHD_ConnectionInfo *ci;
        struct header_count hc = { 0, 0 };

        rq = xcalloc(1, sizeof *rq);
        rq->server = h;
        rq->conn = conn;
        ci = MHD_get_connection_info(conn,
            MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        rq->track = ci != NULL ? ci->socket_context : NULL;
        client_text(conn, rq->client, sizeof rq->client);
        MHD_get_connection_values_n(conn, MHD_HEADER_KIND, count_header,
            &hc);
        if (hc.n > WQ_HTTP_HEADERS_MAX || hc.too_long) {
            rq->reject = 431;   /* answered once the body is read */
        } else if (hc.malformed != NULL) {
            rq->reject = 400;
            rq->malformed = hc.malformed;
            wq_log_warn("http", "refused a malformed request from %s "
                "(%s): %s %s", rq->client[0] ? rq->client : "?",
                hc.malformed, method, url);
        }
        *con_cls = rq;
        return MHD_YES;
    }
    if (rq->state == WAITING) {
        /* resumed: the answer is in rq */
        rq->state = ANSWERED;
        body = rq->answer;
        rq->answer = NULL;
        return queue_fields(conn, rq->status, rq->ctype, body,
            rq->answer_len, rq->retry_after, rq->fields);
    }
    if (*upload_size > 0) {
        if (rq->reject) {
            /* drop the body of a refused request */
        } else if (!rq->too_big
            && rq->len + *upload_size > h->conf.max_body) {
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
    if (rq->reject == 400) {
        rq->state = ANSWERED;
        body = wq_http_json_error("malformed_request", rq->malformed, &len);
        return queue_closing(conn, 400, body, len);
    }
    if (rq->reject) {
        char detail[128];

        rq->state = ANSWERED;
        snprintf(detail, sizeof detail, "at most %d header fields, names of "
            "at most %d bytes, values of at most %d", WQ_HTTP_HEADERS_MAX,
            WQ_HTTP_HEADER_NAME_MAX, WQ_HTTP_HEADER_VALUE_MAX);
        body = wq_http_json_error("header_fields_too_large", detail, &len);
        return queue(conn, rq->reject, "application/json", body, len);
    }
    if (rq->too_big) {
        rq->state = ANSWERED;
        body = wq_http_json_error("payload_too_large",
            "request body exceeds the configured maximum", &len);
        return queue(conn, 413, "application/json", body, len);
    }
    if (rq->body == NULL)
        rq->body = xcalloc(1, 1);
    rq->body[rq->len] = '\0';

    args.n = 0;
    args.over = 0;
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, on_arg, &args);
    if (args.over) {
        char detail[64];

        rq->state = ANSWERED;
        snprintf(detail, sizeof detail, "at most %d query arguments",
            WQ_HTTP_ARGS_MAX);
        body = wq_http_json_error("too_many_arguments", detail, &len);
        return queue(conn, 400, "application/json", body, len);
    }
    req.method = method;
    req.path = url;
    req.args = args.v;
    req.nargs = args.n;
    req.body = rq->body;
    req.body_len = rq->len;
    req.content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
        MHD_HTTP_HEADER_CONTENT_TYPE);
    req.authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
        MHD_HTTP_HEADER_AUTHORIZATION);
    req.idempotency_key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
        "Idempotency-Key");
    req.client_addr = rq->client;
    req.handle = rq;

    /* From now on the time is the handler's, not the client's. */
    if (rq->track != NULL) {
        pthread_mutex_lock(&h->conns_lock);
        rq->track->answering = 1;
        pthread_mutex_unlock(&h->conns_lock);
    }

    /* Suspend before the handler can complete from another thread. */
    pthread_mutex_lock(&h->lock);
    rq->state = WAITING;
    rq->in_handler = 1;
    rq->next = h->suspended;
    if (h->suspended != NULL)
        h->suspended->prev = rq;
    h->suspended = rq;
    MHD_suspend_connection(conn);
    pthread_mutex_unlock(&h->lock);

    rc = h->conf.handler(h->conf.user, &req, &status, &ctype, &body, &len);
    if (rc != WQ_EAGAIN) {
        wq_http_complete(rq, status, ctype, body, len);
    } else {
        /* deferred: from now on wq_http_stop may answer it */
        pthread_mutex_lock(&h->lock);
        rq->in_handler = 0;
        pthread_mutex_unlock(&h->lock);
    }
    return MHD_YES;
}

void
wq_http_retry_after(wq_http_req *rq, unsigned seconds)
{
    rq->retry_after = seconds;
}

void
wq_http_set_fields(wq_http_req *rq, const char *const *fields)
{
    rq->fields = fields;
}

void
wq_http_complete(wq_http_req *rq, int status, const char *content_type,
    char *body, size_t body_len)
{
    wq_http *h = rq->server;

    pthread_mutex_lock(&h->lock);
    if (rq->completed) {
        /* answered already: the first answer stands */
        pthread_mutex_unlock(&h->lock);
        free(body);
        return;
    }
    rq->completed = 1;
    rq->counted = 1;
    h->sending++;
    rq->in_handler = 0;
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
    wq_http *h = cls;
    wq_http_req *rq = *con_cls;

    (void)conn; (void)toe;
    if (rq == NULL)
        return;
    if (rq->counted) {
        pthread_mutex_lock(&h->lock);
        h->sending--;
        pthread_mutex_unlock(&h->lock);
    }
    if (rq->track != NULL) {
        /* the next request on this connection starts its clock now */
        pthread_mutex_lock(&h->conns_lock);
        rq->track->answering = 0;
        rq->track->since_ns = wq_clock_mono_ns();
        pthread_cond_signal(&h->conns_cond);
        pthread_mutex_unlock(&h->conns_lock);
    }
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
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0
        || port < 0 || port > 65535)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "listen address '%s': port '%s' is not a number 0..65535",
            listen, colon + 1);
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
wq_http_listen_check(const char *listen, char *err, size_t errlen)
{
    struct sockaddr_in sa;

    return parse_listen(listen, &sa, err, errlen);
}

/*
 * Why `sa` cannot be bound, for the error: libmicrohttpd only says
 * "Failed to bind to port 0" (it was given an address, not a port).  A
 * socket of our own tries the same bind and reports errno.
 */
static const char *
bind_cause(const struct sockaddr_in *sa, char *buf, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    snprintf(buf, len, "libmicrohttpd could not start");
    if (fd < 0) {
        snprintf(buf, len, "socket: %s", strerror(errno));
        return buf;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) != 0
        || listen(fd, 1) != 0)
        snprintf(buf, len, "%s", strerror(errno));
    close(fd);
    return buf;
}

/* libmicrohttpd's own messages: debug lines (our errors say more). */
static void
mhd_logger(void *cls, const char *fmt, va_list ap) WQ_PRINTFLIKE(2, 0);

static void
mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    static const char refusal[] =
        "Error processing request (HTTP response code is 4";

    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    if (strncmp(line, refusal, sizeof refusal - 1) == 0
        && refused[0] == '\0') {
        /* the reason is the body of the library's answer */
        const char *b = strstr(line, "<body>"), *e;

        b = b != NULL ? b + strlen("<body>") : line;
        e = strstr(b, "</body>");
        snprintf(refused, sizeof refused, "%.*s",
            (int)(e != NULL ? (size_t)(e - b) : strlen(b)), b);
    }
    wq_log_debug("http", "libmicrohttpd: %s", line);
}

/*
 * Checks TLS material before libmicrohttpd gets it, for an error that
 * says what is wrong (libmicrohttpd only fails to start): a PEM
 * certificate, a PEM private key, and the key belongs to the certificate.
 */
static int
tls_check(const char *cert, const char *key, char *err, size_t errlen)
{
    BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    int rc = 0;

    if (cb == NULL || kb == NULL)
        rc = wq_seterr(err, errlen, WQ_ENOMEM, "TLS: out of memory");
    else if ((x = PEM_read_bio_X509(cb, NULL, NULL, NULL)) == NULL)
        rc = wq_seterr(err, errlen, WQ_ECONFIG,
            "TLS certificate: no PEM certificate found");
    else if ((k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL)) == NULL)
        rc = wq_seterr(err, errlen, WQ_ECONFIG, "TLS key: no unencrypted "
            "PEM private key found");
    else if (X509_check_private_key(x, k) != 1)
        rc = wq_seterr(err, errlen, WQ_ECONFIG,
            "TLS key: it does not belong to the certificate");
    else if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0)
        rc = wq_seterr(err, errlen, WQ_ECONFIG,
            "TLS certificate: it has expired");
    BIO_free(cb);
    BIO_free(kb);
    EVP_PKEY_free(k);
    X509_free(x);
    ERR_clear_error();
    return rc;
}

/* Wipes and frees a PEM copy. */
static void
pem_free(char *p)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, strlen(p));
        free(p);
    }
}

static void
server_free(wq_http *h)
{
    pthread_mutex_destroy(&h->lock);
    pthread_mutex_destroy(&h->conns_lock);
    pthread_cond_destroy(&h->conns_cond);
    pem_free(h->cert);
    pem_free(h->key);
    free(h);
}

int
wq_http_start(const struct wq_http_conf *conf, wq_http **out, char *err,
    size_t errlen)
{
    struct MHD_OptionItem o[16];
    struct sockaddr_in sa;
    const union MHD_DaemonInfo *info;
    pthread_condattr_t ca;
    wq_http *h;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
        MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    size_t n = 0;
    int rc, tls = conf->tls_cert_pem != NULL || conf->tls_key_pem != NULL;

    if ((rc = parse_listen(conf->listen, &sa, err, errlen)) != 0)
        return rc;
    if (tls) {
        if (conf->tls_cert_pem == NULL || conf->tls_key_pem == NULL)
            return wq_seterr(err, errlen, WQ_ECONFIG, "TLS needs both a "
                "certificate and its key");
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
            return wq_seterr(err, errlen, WQ_ECONFIG, "TLS: libmicrohttpd "
                "was built without TLS support");
        if ((rc = tls_check(conf->tls_cert_pem, conf->tls_key_pem, err,
            errlen)) != 0)
            return rc;
    }
    h = xcalloc(1, sizeof *h);
    h->conf = *conf;
    h->conf.tls_cert_pem = h->conf.tls_key_pem = NULL;
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->conns_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->conns_cond, &ca);
    pthread_condattr_destroy(&ca);

#define OPT(opt, v, p) (o[n++] = (struct MHD_OptionItem){ (opt), (v), (p) })
    /* first, so that no message of the start goes to stderr */
    OPT(MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)(void *)mhd_log, NULL);
    OPT(MHD_OPTION_SOCK_ADDR, 0, &sa);
#if MHD_VERSION >= 0x00097701
    /* 0.9.77 and 1.0 (Debian 13): bare LF, white space in names and
     * obsolete line folding are refused by the library itself */
    OPT(MHD_OPTION_CLIENT_DISCIPLINE_LVL, 2, NULL);
#else
    /* 0.9.75 (Debian 12): refuses white space in header names and in the
     * URL, and HTTP/1.1 without Host; bare LF it accepts (see README,
     * Security) */
    OPT(MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL);
#endif
    if (conf->threads > 1)  /* else the one internal thread serves */
        OPT(MHD_OPTION_THREAD_POOL_SIZE, conf->threads, NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT, conf->timeout_s ? conf->timeout_s
        : 10, NULL);
    OPT(MHD_OPTION_CONNECTION_LIMIT, conf->max_connections
        ? conf->max_connections : 1024, NULL);
    OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, WQ_HTTP_CONN_MEMORY, NULL);
    OPT(MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)(void *)on_completed, h);
    OPT(MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)(void *)on_connection, h);
    OPT(MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)(void *)mhd_logger, NULL);
    if (tls) {
        /* libmicrohttpd keeps the pointers: copies that live as long */
        h->cert = xstrdup(conf->tls_cert_pem);
        h->key = xstrdup(conf->tls_key_pem);
        flags |= MHD_USE_TLS;
        OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert);
        OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, h->key);
        OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES);
    }
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT

    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, h,
        MHD_OPTION_ARRAY, o, MHD_OPTION_END);
    if (h->mhd == NULL) {
        char cause[256];

        server_free(h);
        return wq_seterr(err, errlen, WQ_EIO, "cannot listen on %s: %s%s",
            conf->listen, bind_cause(&sa, cause, sizeof cause),
            tls ? " (or TLS set-up failed)" : "");
    }
    if (conf->read_timeout_s > 0) {
        if (pthread_create(&h->reaper, NULL, reaper_main, h) != 0) {
            MHD_stop_daemon(h->mhd);
            server_free(h);
            return wq_seterr(err, errlen, WQ_EIO, "cannot start a thread");
        }
        h->reaper_started = 1;
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
    /*
     * Answer whatever still waits, so no connection hangs; but not a
     * request whose handler still runs: that one answers itself, at once
     * (a 503 from here would be replaced by its answer, or replace it).
     */
    for (;;) {
        wq_http_req *rq;
        size_t len;
        char *body;
        int busy;

        pthread_mutex_lock(&h->lock);
        for (rq = h->suspended; rq != NULL && rq->in_handler; rq = rq->next)
            ;
        busy = h->suspended != NULL;
        pthread_mutex_unlock(&h->lock);
        if (rq == NULL) {
            if (!busy)
                break;
            nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
            continue;
        }
        body = wq_http_json_error("unavailable", "server is stopping", &len);
        wq_http_complete(rq, 503, "application/json", body, len);
    }
    /*
     * An answer given by wq_http_complete is sent by a server thread once
     * the request is resumed; stopping the daemon before then would drop
     * it.  Wait for those (at most 2 s: a client that does not read may
     * not hold the stop up).
     */
    for (int ms = 0; ms < 2000; ms++) {
        int sending;

        pthread_mutex_lock(&h->lock);
        sending = h->sending;
        pthread_mutex_unlock(&h->lock);
        if (sending <= 0)
            break;
        nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    }
    if (h->reaper_started) {
        pthread_mutex_lock(&h->conns_lock);
        h->stopping = 1;
        pthread_cond_signal(&h->conns_cond);
        pthread_mutex_unlock(&h->conns_lock);
        pthread_join(h->reaper, NULL);
    }
    MHD_stop_daemon(h->mhd);
    server_free(h);
}
