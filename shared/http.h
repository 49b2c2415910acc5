/*
 * http.h - the small HTTP/1.1 server every workq daemon embeds, on
 * libmicrohttpd: the producer's task API, and /healthz, /readyz and
 * /metrics everywhere.
 *
 * The server owns its threads (libmicrohttpd's internal epoll thread
 * pool).  A handler sees a whole request, body included (bounded by
 * max_body: larger bodies are answered 413 before the handler runs), and
 * either answers at once or later: it returns WQ_EAGAIN after keeping the
 * request's handle, and some thread calls wq_http_complete() when the
 * answer is known (for example when the broker confirmed).  No thread is
 * blocked while a request waits.
 *
 * Limits, for clients that cannot be trusted: at most WQ_HTTP_HEADERS_MAX
 * header fields, each name at most WQ_HTTP_HEADER_NAME_MAX bytes and each
 * value at most WQ_HTTP_HEADER_VALUE_MAX (else 431, after the body is
 * read and dropped); the request line and headers together must fit in
 * WQ_HTTP_CONN_MEMORY (libmicrohttpd answers 431 or 414 and closes);
 * bodies over max_body get 413.  A request must arrive whole (TLS
 * handshake, headers, body) within read_timeout_s of its start, which is
 * the accept or the end of the previous request on the connection: a
 * client that trickles bytes (slow loris) is disconnected then, whatever
 * the idle timeout.  Time a handler takes to answer does not count.
 *
 * TLS (HTTPS): give the certificate chain and private key as PEM text;
 * the server then speaks only TLS 1.3 and 1.2 on its port (GnuTLS, as
 * libmicrohttpd is built with it), and on 1.2 only forward-secret AEAD
 * suites (ECDHE with AES-GCM or ChaCha20-Poly1305).
 */
#ifndef WQ_HTTP_H
#define WQ_HTTP_H

#include <stddef.h>

#include "wq.h"

#define WQ_HTTP_HEADERS_MAX      64
#define WQ_HTTP_HEADER_NAME_MAX  256
#define WQ_HTTP_HEADER_VALUE_MAX 8192
#define WQ_HTTP_CONN_MEMORY      (32u * 1024)

typedef struct wq_http wq_http;
typedef struct wq_http_req wq_http_req;

/* The most query arguments a request may carry; more answer 400 before
 * the handler runs. */
#define WQ_HTTP_ARGS_MAX 32

/* One query argument, percent-decoded (value NULL for "?name"). */
struct wq_http_arg {
    const char *name;
    const char *value;
};

struct wq_http_request {
    const char *method;         /* "GET", "POST", ... */
    const char *path;           /* without the query string */
    /* the query string's arguments, in order, valid during the handler
     * call only (copy what is kept) */
    const struct wq_http_arg *args;
    size_t nargs;
    const char *body;           /* NUL-terminated copy; may hold NULs */
    size_t body_len;
    const char *content_type;   /* header value or NULL */
    const char *authorization;  /* header value or NULL */
    const char *idempotency_key;/* Idempotency-Key header or NULL */
    const char *client_addr;    /* the peer's numeric address, or "" */
    wq_http_req *handle;        /* for wq_http_complete */
};

/*
 * A handler fills status, content_type and body (body is taken over and
 * freed by the server; may be NULL for an empty body) and returns 0, or
 * returns WQ_EAGAIN to answer later with wq_http_complete(req->handle, ...).
 * Called on a server thread; must not block for long.
 */
typedef int wq_http_handler(void *user, const struct wq_http_request *req,
    int *status, const char **content_type, char **body, size_t *body_len);

struct wq_http_conf {
    const char *listen;         /* "host:port"; port 0 picks a free port */
    size_t max_body;            /* bytes; larger bodies get 413 */
    unsigned timeout_s;         /* idle connection timeout (default 10) */
    unsigned read_timeout_s;    /* a request arrives whole within; 0: none */
    unsigned threads;           /* server threads, >= 1 */
    unsigned max_connections;   /* concurrent connections (default 1024) */
    const char *tls_cert_pem;   /* both set: HTTPS; copied at start */
    const char *tls_key_pem;
    wq_http_handler *handler;
    void *user;
};

/*
 * wq_http_listen_check says whether `listen` is an address wq_http_start
 * accepts: "HOST:PORT", HOST an IPv4 address, "localhost", "*" or empty
 * (every address), PORT 0..65535 (0 picks a free one).  0, or WQ_EINVAL
 * with err naming what is wrong.  Pure; the configuration checks its
 * listen keys with it at load.
 */
int wq_http_listen_check(const char *listen, char *err, size_t errlen);

/*
 * wq_http_start binds and starts serving.  Returns 0 with *out set, or
 * WQ_EIO/WQ_EINVAL with err filled (bad address, port taken), or
 * WQ_ECONFIG for TLS material that is not a PEM certificate and its
 * matching key (err says which), or only one of the two.
 */
int wq_http_start(const struct wq_http_conf *conf, wq_http **out, char *err,
    size_t errlen);

/* The bound port (useful with port 0). */
int wq_http_port(const wq_http *h);

/*
 * wq_http_complete answers a request whose handler returned WQ_EAGAIN.
 * Takes ownership of body.  Thread-safe; call it once per such request,
 * before wq_http_stop returns.  The first answer stands: a later call
 * (the request was answered 503 by wq_http_stop meanwhile) frees body.
 */
void wq_http_complete(wq_http_req *req, int status, const char *content_type,
    char *body, size_t body_len);

/*
 * wq_http_retry_after adds "Retry-After: SECONDS" to the answer of req
 * (a 429 or 503), whether it is given by the handler's return or later by
 * wq_http_complete.  Call it before the answer is given, from the thread
 * that has the request.
 */
void wq_http_retry_after(wq_http_req *req, unsigned seconds);

/*
 * wq_http_set_fields adds header fields to the answer of req, as with
 * wq_http_retry_after: `fields` is "Name", "value", ..., NULL, and must
 * outlive the answer (a static table: the dashboard's security headers).
 * The fields are not checked; never put client text in them.
 */
void wq_http_set_fields(wq_http_req *req, const char *const *fields);

/*
 * wq_http_stop stops accepting, waits for the server threads and frees
 * the server.  Requests still waiting for wq_http_complete are answered
 * 503 first; a request whose handler is still running is left to it, and
 * waited for.
 */
void wq_http_stop(wq_http *h);

/*
 * wq_http_token_equal compares a presented token with a known one in time
 * that depends only on the known token's length.  Returns 1 if equal.
 */
int wq_http_token_equal(const char *presented, const char *known);

/*
 * wq_http_json_error makes the body {"error":"...","detail":"..."} (the
 * strings JSON-escaped); caller frees.
 */
char *wq_http_json_error(const char *error, const char *detail,
    size_t *len);

#endif
