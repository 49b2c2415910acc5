/*
 * wq_test_http.c - the HTTP client of the tests (see wq_test_http.h):
 * loopback connections, raw requests, requests with the usual fields,
 * answers read until the server closes and split into status, header
 * fields and body; and the throwaway CA of the HTTPS tests, made by
 * tests/services/mkcerts.sh.  What the server should have answered is
 * for the tests to judge; nothing here checks it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wq_test.h"
#include "wq_test_http.h"

int
wq_test_http_connect(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 0 once all n bytes went, -1 when the connection failed first. */
static int
send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Everything the peer sends until it closes (or resets), NUL-terminated. */
static char *
read_all(int fd, size_t *len)
{
    size_t cap = 65536, got = 0;
    char *buf = malloc(cap);
    ssize_t r;

    assert_non_null(buf);
    for (;;) {
        if (got + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        r = recv(fd, buf + got, cap - 1 - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

/* Splits res->text into status, header fields and body. */
static void
parse(struct wq_test_http_response *res)
{
    const char *sep = memmem(res->text, res->len, "\r\n\r\n", 4);

    res->status = -1;
    if (res->len > 12 && strncmp(res->text, "HTTP/1.", 7) == 0)
        res->status = atoi(res->text + 9);
    res->head_len = sep != NULL ? (size_t)(sep - res->text) : res->len;
    res->body = sep != NULL ? sep + 4 : res->text + res->len;
    res->body_len = res->len - (size_t)(res->body - res->text);
}

/*
 * The head, then the body, on a new connection; then everything until
 * the server closes, into *res.  Returns res->status.
 */
static int
exchange(int port, const char *head, size_t hlen, const char *body,
    size_t blen, struct wq_test_http_response *res)
{
    int fd;

    memset(res, 0, sizeof *res);
    if ((fd = wq_test_http_connect(port)) < 0) {
        res->text = calloc(1, 1);
        assert_non_null(res->text);
    } else {
        /* the server may answer early (413, 431) and close: read it
         * anyway */
        (void)(send_all(fd, head, hlen) == 0
            && (blen == 0 || send_all(fd, body, blen) == 0));
        res->text = read_all(fd, &res->len);
        close(fd);
    }
    parse(res);
    return res->status;
}

int
wq_test_http_roundtrip(int port, const void *req, size_t len,
    struct wq_test_http_response *res)
{
    return exchange(port, req, len, NULL, 0, res);
}

char *
wq_test_http_get(int port, const char *path)
{
    struct wq_test_http_response res;
    char req[512];
    int fd, n;

    n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n",
        path);
    assert_true(n > 0 && (size_t)n < sizeof req);
    if ((fd = wq_test_http_connect(port)) < 0)
        fail_msg("GET %s: nothing accepts on 127.0.0.1:%d", path, port);
    memset(&res, 0, sizeof res);
    assert_int_equal(send_all(fd, req, (size_t)n), 0);
    res.text = read_all(fd, &res.len);
    close(fd);
    return res.text;
}

double
wq_test_http_metric(int port, const char *line_start)
{
    char *text = wq_test_http_get(port, "/metrics"), *s = text;
    size_t n = strlen(line_start);
    double v = 0;

    while ((s = strstr(s, line_start)) != NULL) {
        if (s == text || s[-1] == '\n') {
            v = strtod(s + n, NULL);
            break;
        }
        s += n;
    }
    free(text);
    return v;
}

void
wq_test_http_response_free(struct wq_test_http_response *res)
{
    free(res->text);
    res->text = NULL;
    res->body = NULL;
    res->len = res->head_len = res->body_len = 0;
}

int
wq_test_http_request(int port, const char *method, const char *path,
    const char *ctype, const char *token, const char *extra,
    const void *body, size_t blen, char *resp, size_t rlen)
{
    struct wq_test_http_response res;
    size_t hl = strlen(method) + strlen(path) + (ctype ? strlen(ctype) : 0)
        + (token ? strlen(token) : 0) + (extra ? strlen(extra) : 0) + 256;
    char *head = malloc(hl);
    int n, st;

    assert_non_null(head);
    n = snprintf(head, hl, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "%s%s%s%s%s%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
        method, path, ctype ? "Content-Type: " : "", ctype ? ctype : "",
        ctype ? "\r\n" : "", token ? "Authorization: Bearer " : "",
        token ? token : "", token ? "\r\n" : "", extra ? extra : "", blen);
    assert_true(n > 0 && (size_t)n < hl);
    st = exchange(port, head, (size_t)n, body, blen, &res);
    if (resp != NULL && rlen > 0)
        snprintf(resp, rlen, "%s", res.body);
    wq_test_http_response_free(&res);
    free(head);
    return st;
}

void
wq_test_http_make_certs(void)
{
    const char *argv[] = { "/bin/sh", WQ_SOURCE_DIR
        "/tests/services/mkcerts.sh", "certs", NULL };
    char out[4096];

    if (wq_test_cmd(argv, NULL, NULL, out, sizeof out) != 0)
        fail_msg("mkcerts.sh: %s", out);
}
