/*
 * wq_test_http.h - the HTTP client of the tests: plain sockets speaking
 * HTTP/1.1 to a server on a loopback port, so that what a test checks is
 * what goes over the wire; and the throwaway CA of the HTTPS tests.
 *
 * Every request goes on a new connection and is answered before the
 * server closes it (Connection: close); there is no keep-alive and no
 * timeout of its own: the server's timeouts and the time limit of the
 * test (wq_test.h) bound a call.  Raw bytes, malformed or oversized,
 * go through wq_test_http_roundtrip; a test that needs a connection to
 * hold (slow clients) takes one from wq_test_http_connect; a daemon's
 * Prometheus metrics are read with wq_test_http_metric.  HTTPS is not
 * spoken here: the tests reach it through curl, verifying the CA that
 * wq_test_http_make_certs makes.
 *
 * All functions may be called from several threads at once.
 */
#ifndef WQ_TEST_HTTP_H
#define WQ_TEST_HTTP_H

#include <stddef.h>

/*
 * One answer as read off the wire.  `text` holds every byte the server
 * sent before it closed, NUL-terminated after `len`; the status line and
 * header fields are its first `head_len` bytes (all of it when no blank
 * line came), the body follows the blank line.
 */
struct wq_test_http_response {
    int status;         /* the status code; -1 when no HTTP answer came */
    char *text;         /* owned: wq_test_http_response_free */
    size_t len;
    size_t head_len;
    const char *body;   /* into text; "" when there is none */
    size_t body_len;
};

/*
 * wq_test_http_connect opens a TCP connection to 127.0.0.1:port and
 * returns its descriptor (blocking, close-on-exec; the caller closes
 * it), or -1 when nothing accepts there.
 */
int wq_test_http_connect(int port);

/*
 * wq_test_http_roundtrip sends the `len` bytes of `req` as they are on a
 * new connection and reads until the server closes it; fills *res (the
 * caller frees it with wq_test_http_response_free, in every case) and
 * returns res->status: the status code, or -1 when the connection could
 * not be made or no HTTP answer came.  A send cut short by the server
 * (an early 413 or 431, a reset) is not an error: what it answered is
 * read.  Blocks until the server closes; fails the test when out of
 * memory.
 */
int wq_test_http_roundtrip(int port, const void *req, size_t len,
    struct wq_test_http_response *res);

/* Frees what wq_test_http_roundtrip put in *res; res itself stays. */
void wq_test_http_response_free(struct wq_test_http_response *res);

/*
 * wq_test_http_request sends one request with the usual fields:
 * "METHOD PATH HTTP/1.1", Host, Content-Type when `ctype` is not NULL,
 * "Authorization: Bearer TOKEN" when `token` is not NULL, then `extra`
 * as it is (more fields, each ending in "\r\n"; may be NULL), then
 * Content-Length (blen) and Connection: close, and `blen` bytes of
 * `body` (may be NULL when blen is 0).  Returns the status code, or -1
 * as wq_test_http_roundtrip; the body of the answer goes to resp (cut
 * at its first NUL and at rlen; resp may be NULL).  Blocks like
 * wq_test_http_roundtrip.
 */
int wq_test_http_request(int port, const char *method, const char *path,
    const char *ctype, const char *token, const char *extra,
    const void *body, size_t blen, char *resp, size_t rlen);

/*
 * wq_test_http_get sends "GET PATH HTTP/1.0" to 127.0.0.1:port and
 * returns the whole answer, status line and header fields included
 * (malloc'd, NUL-terminated; the caller frees it).  Fails the test when
 * nothing accepts on the port.  Blocks like wq_test_http_roundtrip.
 */
char *wq_test_http_get(int port, const char *path);

/*
 * wq_test_http_metric returns the value of the first line of GET
 * /metrics on `port` that starts with `line_start` ("name " or
 * "name{labels} "), 0 when there is none.  Only whole lines count, so
 * "# HELP name ..." never matches.  Fails the test like wq_test_http_get.
 */
double wq_test_http_metric(int port, const char *line_start);

/*
 * wq_test_http_make_certs makes a throwaway CA and a server certificate
 * it signed (localhost, 127.0.0.1) in ./certs, the test's directory,
 * with tests/services/mkcerts.sh: ca.pem, server.pem, server.key and
 * an unrelated CA, other-ca.pem and other-ca.key.  Blocks while openssl
 * runs; fails the test with the script's output when it fails.
 */
void wq_test_http_make_certs(void);

#endif
