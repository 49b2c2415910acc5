/*
 * test_http.c - the embedded HTTP server on a loopback port: immediate
 * and deferred answers, the body limit, many concurrent clients, and the
 * constant-time token compare.  The client is a plain socket speaking
 * HTTP/1.1, so what is tested is what goes over the wire.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wq_test.h"
#include "http.h"

/* Sends a raw request, returns the status code; the response in out. */
static int
roundtrip(int port, const char *raw, size_t rawlen, char *out, size_t outlen)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM, 0), status = -1;
    size_t got = 0;
    ssize_t n;

    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    for (size_t off = 0; off < rawlen; off += (size_t)n)
        if ((n = write(fd, raw + off, rawlen - off)) <= 0)
            break;
    while (got < outlen - 1 && (n = read(fd, out + got, outlen - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(fd);
    sscanf(out, "HTTP/1.%*d %d", &status);
    return status;
}

static int
get(int port, const char *path, char *out, size_t outlen)
{
    char req[512];

    snprintf(req, sizeof req,
        "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    return roundtrip(port, req, strlen(req), out, outlen);
}

struct deferred {
    wq_http_req *req;
};

static void *
answer_later(void *arg)
{
    struct deferred *d = arg;

    usleep(50000);
    wq_http_complete(d->req, 202, "text/plain", strdup("later"), 5);
    free(d);
    return NULL;
}

static int
handler(void *user, const struct wq_http_request *req, int *status,
    const char **ctype, char **body, size_t *len)
{
    (void)user;
    if (strcmp(req->path, "/defer") == 0) {
        struct deferred *d = malloc(sizeof *d);
        pthread_t t;

        d->req = req->handle;
        pthread_create(&t, NULL, answer_later, d);
        pthread_detach(t);
        return WQ_EAGAIN;
    }
    if (strcmp(req->path, "/echo") == 0) {
        *status = 200;
        *ctype = "application/octet-stream";
        *body = malloc(req->body_len + 1);
        memcpy(*body, req->body, req->body_len);
        *len = req->body_len;
        return 0;
    }
    if (strcmp(req->path, "/auth") == 0) {
        *status = req->authorization != NULL &&
            strcmp(req->authorization, "Bearer s3cret") == 0 ? 204 : 401;
        return 0;
    }
    *status = 404;
    *ctype = "application/json";
    *body = wq_http_json_error("not_found", req->path, len);
    return 0;
}

static wq_http *
start(size_t max_body)
{
    struct wq_http_conf conf = {
        .listen = "127.0.0.1:0", .max_body = max_body, .timeout_s = 5,
        .threads = 2, .handler = handler,
    };
    char err[WQ_ERRLEN];
    wq_http *h = NULL;

    assert_int_equal(wq_http_start(&conf, &h, err, sizeof err), 0);
    assert_true(wq_http_port(h) > 0);
    return h;
}

static void
test_http_immediate_and_not_found(void **state)
{
    wq_http *h = start(1024);
    char out[4096];

    (void)state;
    assert_int_equal(get(wq_http_port(h), "/nope", out, sizeof out), 404);
    assert_non_null(strstr(out, "{\"error\":\"not_found\",\"detail\":\"/nope\"}"));
    wq_http_stop(h);
}

static void
test_http_deferred_answer(void **state)
{
    wq_http *h = start(1024);
    char out[4096];

    (void)state;
    assert_int_equal(get(wq_http_port(h), "/defer", out, sizeof out), 202);
    assert_non_null(strstr(out, "\r\n\r\nlater"));
    wq_http_stop(h);
}

static void
test_http_body_echo_and_limit(void **state)
{
    wq_http *h = start(16);
    char out[4096], req[512];
    int n;

    (void)state;
    n = snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nHost: x\r\n"
        "Connection: close\r\nContent-Length: 5\r\n\r\nab_cd");
    req[n - 3] = '\0';     /* a NUL inside the body survives */
    assert_int_equal(roundtrip(wq_http_port(h), req, (size_t)n, out,
        sizeof out), 200);
    assert_non_null(strstr(out, "Content-Length: 5"));
    n = snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nHost: x\r\n"
        "Connection: close\r\nContent-Length: 20\r\n\r\n01234567890123456789");
    assert_int_equal(roundtrip(wq_http_port(h), req, (size_t)n, out,
        sizeof out), 413);
    assert_non_null(strstr(out, "payload_too_large"));
    wq_http_stop(h);
}

static void
test_http_authorization_header_reaches_handler(void **state)
{
    wq_http *h = start(64);
    char out[4096];
    const char *req = "GET /auth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Authorization: Bearer s3cret\r\n\r\n";

    (void)state;
    assert_int_equal(roundtrip(wq_http_port(h), req, strlen(req), out,
        sizeof out), 204);
    assert_int_equal(get(wq_http_port(h), "/auth", out, sizeof out), 401);
    wq_http_stop(h);
}

static int client_port;

static void *
client(void *arg)
{
    char out[4096];
    intptr_t ok = 0;

    (void)arg;
    for (int i = 0; i < 50; i++)
        ok += get(client_port, i % 2 ? "/defer" : "/nope", out,
            sizeof out) == (i % 2 ? 202 : 404);
    return (void *)ok;
}

static void
test_http_concurrent_clients_all_answered(void **state)
{
    wq_http *h = start(64);
    pthread_t t[8];
    intptr_t total = 0;

    (void)state;
    client_port = wq_http_port(h);
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, client, NULL);
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (intptr_t)r;
    }
    assert_int_equal(total, 400);
    wq_http_stop(h);
}

static void
test_http_bad_listen_address(void **state)
{
    struct wq_http_conf conf = { .listen = "nonsense", .handler = handler };
    char err[WQ_ERRLEN];
    wq_http *h = NULL;

    (void)state;
    assert_int_equal(wq_http_start(&conf, &h, err, sizeof err), WQ_EINVAL);
    assert_non_null(strstr(err, "nonsense"));
}

static void
test_http_token_equal(void **state)
{
    (void)state;
    assert_true(wq_http_token_equal("abc", "abc"));
    assert_false(wq_http_token_equal("abd", "abc"));
    assert_false(wq_http_token_equal("ab", "abc"));
    assert_false(wq_http_token_equal("abcd", "abc"));
    assert_false(wq_http_token_equal("", "abc"));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_http_immediate_and_not_found),
    cmocka_unit_test(test_http_deferred_answer),
    cmocka_unit_test(test_http_body_echo_and_limit),
    cmocka_unit_test(test_http_authorization_header_reaches_handler),
    cmocka_unit_test(test_http_concurrent_clients_all_answered),
    cmocka_unit_test(test_http_bad_listen_address),
    cmocka_unit_test(test_http_token_equal),
};

WQ_TEST_MAIN("http", tests)
