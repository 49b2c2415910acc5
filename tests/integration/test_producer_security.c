/*
 * test_producer_security.c - workq-producer, the real daemon, against
 * clients that cannot be trusted, and its security features:
 *
 *   - every size limit exactly at and one over: request body, payload
 *     (text and base64), batch, idempotency key, queue name, type, task
 *     headers (count, name, value); what is accepted arrives, nothing
 *     else does;
 *   - invalid UTF-8 in keys, queue names, headers; queue names with SQL
 *     or path metacharacters, in the path and on `workq submit --batch`
 *     lines: refused, nothing published;
 *   - HTTP header fields over the limits (count, name, value, total);
 *   - slow-loris clients (hundreds of connections sending a byte a
 *     second): each is cut at producer.read_timeout while a normal
 *     client is served within a bound, also with more slow clients than
 *     producer.max_connections;
 *   - a flood over producer.rate_limit (and of unauthorized requests):
 *     429 (401), and the daemon's VmRSS stays within a bound;
 *   - bearer tokens stored hashed, with scopes: 401, 403, admin, a
 *     stolen hash is no token, rotation by SIGHUP, a bad file on reload
 *     keeps the old tokens; `workq token new|hash|check`;
 *   - no secret in the log or in /metrics: tokens, payloads;
 *   - HTTPS end to end (a throwaway CA, curl verifying it), with the
 *     broker reached over TLS and SASL and PostgreSQL over verify-full
 *     TLS, all set through workq's configuration; a TLS key that does
 *     not fit is a configuration error (exit 78).
 *
 * The daemon's log goes to producer.log in the test's directory.  The
 * port: 18000 + pid % 1000, then 1000 further per retry when the daemon
 * exits 69 (address in use).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "envelope.h"
#include "http.h"
#include "token.h"
#include "uuid.h"
#include "wq_test.h"
#include "wq_test_broker.h"
#include "wq_test_http.h"
#include "wq_test_producer.h"
#include "wq_test_pg.h"

#define JSON     "application/json"
#define SUBMIT   "wq_submit-token-of-the-security-tests"
#define READ     "wq_read-token-of-the-security-tests"
#define ADMIN    "wq_admin-token-of-the-security-tests"
#define LEGACY   "legacy-plaintext-token"
#define RECV_MS  60000

#define TLS_CA()         wq_test_env("WORKQ_TEST_TLS_CA", \
    "/var/tmp/workq-services/tls/ca.pem")
#define KAFKA_SASL_SSL() wq_test_env("WORKQ_TEST_KAFKA_SASL_SSL_BROKERS", \
    "127.0.0.1:59096")
#define KAFKA_SASL_USER() wq_test_env("WORKQ_TEST_KAFKA_SASL_USER", "workq")
#define KAFKA_SASL_PASS() wq_test_env("WORKQ_TEST_KAFKA_SASL_PASSWORD", \
    "workq-test-secret")
#define AMQPS_URL()      wq_test_env("WORKQ_TEST_AMQPS_URL", \
    "amqps://guest:guest@localhost:55671/%2f")

struct producer {
    pid_t pid;
    int port;
    int tls;
};

/* --- small things -------------------------------------------------------- */

static void
sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* "sha256:HEX SCOPES # name\n" for a token. */
static void
add_token_line(char *buf, size_t len, const char *token, const char *scopes)
{
    char e[WQ_TOKEN_ENTRY_LEN];

    assert_int_equal(wq_token_entry(token, strlen(token), e), 0);
    snprintf(buf + strlen(buf), len - strlen(buf), "%s %s # test\n", e,
        scopes);
}

/* The tokens file of most tests: hashes with scopes, one legacy line. */
static const char *
tokens_text(void)
{
    static char buf[2048];

    snprintf(buf, sizeof buf, "# tokens of the security tests\n");
    add_token_line(buf, sizeof buf, SUBMIT, "submit");
    add_token_line(buf, sizeof buf, READ, "read");
    add_token_line(buf, sizeof buf, ADMIN, "admin");
    snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s\n", LEGACY);
    return buf;
}

/* VmRSS of a process in KiB. */
static long
rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* --- requests and answers ------------------------------------------------ */

static int
post(int port, const char *queue, const char *token, const char *body,
    char *resp, size_t rlen)
{
    char path[512];

    snprintf(path, sizeof path, "/v1/queues/%s/tasks", queue);
    return wq_test_http_request(port, "POST", path, JSON, token, NULL, body,
        strlen(body), resp, rlen);
}

/* The string member `name` of a JSON answer, or "" (copied into out). */
static const char *
json_str(const char *resp, const char *name, char *out, size_t len)
{
    json_t *j = json_loads(resp, 0, NULL), *v;

    out[0] = '\0';
    if (j != NULL && json_is_string(v = json_object_get(j, name)))
        snprintf(out, len, "%s", json_string_value(v));
    json_decref(j);
    return out;
}

/* --- HTTPS through curl -------------------------------------------------- */

/*
 * curl -X METHOD https://127.0.0.1:PORT/PATH verified with `ca`; returns
 * the HTTP status (the body in resp), or -(curl's exit status) when no
 * answer came (60: the certificate did not verify).
 */
static int
curl(int port, const char *ca, const char *method, const char *path,
    const char *token, const char *body, char *resp, size_t rlen)
{
    char url[512], auth[1200], out[65536];
    const char *argv[24];
    size_t n = 0;
    char *nl;
    int rc;

    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", port, path);
    argv[n++] = "/usr/bin/curl";
    argv[n++] = "-sS";
    argv[n++] = "--max-time";
    argv[n++] = "20";
    argv[n++] = "--cacert";
    argv[n++] = ca;
    argv[n++] = "-X";
    argv[n++] = method;
    argv[n++] = "-w";
    argv[n++] = "\n%{http_code}";
    if (token != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        argv[n++] = "-H";
        argv[n++] = auth;
    }
    if (body != NULL) {
        argv[n++] = "-H";
        argv[n++] = "Content-Type: application/json";
        argv[n++] = "--data-binary";
        argv[n++] = body;
    }
    argv[n++] = url;
    argv[n] = NULL;
    rc = wq_test_cmd(argv, NULL, NULL, out, sizeof out);
    if (rc != 0) {
        snprintf(resp, rlen, "%s", out);
        return -rc;
    }
    nl = strrchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    snprintf(resp, rlen, "%s", out);
    return atoi(nl + 1);
}

/* --- the daemon ---------------------------------------------------------- */

static int
healthy(const struct producer *p)
{
    char resp[512];

    if (p->tls)
        return curl(p->port, "certs/ca.pem", "GET", "/healthz", NULL, NULL,
            resp, sizeof resp) == 200;
    return wq_test_http_request(p->port, "GET", "/healthz", NULL, NULL, NULL,
        NULL, 0, resp, sizeof resp) == 200;
}

/*
 * Starts workq-producer for `kind` with the tokens file `tokens` (NULL:
 * none), `extra` environment entries (NULL-terminated, may be NULL) and,
 * with `tls`, HTTPS from ./certs; waits until /healthz answers.  With
 * `config`, the daemon reads that file (--config) and the environment
 * does not name the servers (it would win over the file).
 */
/* The host producer_start listens on (the tests connect to 127.0.0.1). */
static const char *listen_host = "127.0.0.1";

/* healthy() for wq_test_producer_start: arg is the struct producer */
static int
healthy_port(int port, void *arg)
{
    struct producer *p = arg;

    p->port = port;
    return healthy(p);
}

static struct producer
producer_start_conf(int kind, const char *config, const char *tokens,
    const char *const *extra, int tls)
{
    struct producer p = { 0, 0, tls };
    static char tfile[1200], cert[1200], key[1200], db[1024];
    const char *dir = wq_test_env("WQ_TEST_TMPDIR", ".");
    const char *env[40], *args[] = { "--config", config, NULL };
    size_t n;

    if (tokens != NULL)
        write_file("tokens", tokens);
    if (tls)
        wq_test_http_make_certs();
    /* a database of the test's own, migrated: delayed tasks and GET
     * /v1/tasks need the schema, and the shared "workq" database of a
     * fresh server has none */
    if (config == NULL)
        snprintf(db, sizeof db, "%s", wq_test_pg_create_migrated_db());
    n = config == NULL ? wq_test_env_for(kind, db, env, 12) : 0;
    /* per-pid queue names: the tests allow any (issue 12 item 4 has
     * a test of its own) */
    env[n++] = "WORKQ_PRODUCER_QUEUES=*";
    if (tokens != NULL) {
        snprintf(tfile, sizeof tfile, "WORKQ_PRODUCER_TOKENS_FILE=%s/"
            "tokens", dir);
        env[n++] = tfile;
    }
    if (tls) {
        snprintf(cert, sizeof cert, "WORKQ_PRODUCER_TLS_CERT=%s/certs/"
            "server.pem", dir);
        snprintf(key, sizeof key, "WORKQ_PRODUCER_TLS_KEY=%s/certs/"
            "server.key", dir);
        env[n++] = cert;
        env[n++] = key;
    }
    /* a small ASan quarantine, so that RSS means what it says */
    env[n++] = "ASAN_OPTIONS=quarantine_size_mb=4:"
        "detect_leaks=1";
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 39; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    wq_test_producer_start(listen_host, env, config != NULL ? args : NULL,
        healthy_port, &p, &p.pid, &p.port);
    return p;
}

static struct producer
producer_start(int kind, const char *tokens, const char *const *extra,
    int tls)
{
    return producer_start_conf(kind, NULL, tokens, extra, tls);
}

static int
producer_stop(struct producer *p)
{
    return wq_test_producer_stop(&p->pid);
}

/*
 * Takes `n` messages off the queue, checks that their ids are exactly
 * ids[0..n), and that nothing else follows within quiet_ms.
 */
static void
expect_exactly(int kind, const char *queue, char (*ids)[WQ_UUID_STRLEN],
    size_t n, int quiet_ms)
{
    struct wq_test_consumer *c = wq_test_consumer_open(kind, queue);
    struct wq_envelope *env = calloc(n + 1, sizeof *env);
    char text[WQ_UUID_STRLEN];
    size_t got;

    got = wq_test_consumer_recv(c, env, n, RECV_MS);
    if (got != n)
        fail_msg("%zu of %zu accepted tasks arrived", got, n);
    for (size_t i = 0; i < n; i++) {
        size_t j;

        wq_uuid_format(env[i].id, text);
        for (j = 0; j < n && strcmp(text, ids[j]) != 0; j++)
            ;
        if (j == n)
            fail_msg("task %s arrived but was never accepted", text);
        wq_envelope_free(&env[i]);
    }
    if (wq_test_consumer_recv(c, env, 1, quiet_ms) != 0) {
        wq_uuid_format(env[0].id, text);
        fail_msg("an unexpected task arrived: %s (queue %s, type %s)", text,
            env[0].queue, env[0].type);
    }
    free(env);
    wq_test_consumer_close(c);
}

/* --- size limits, exactly ------------------------------------------------ */

/* A task body of exactly `total` bytes: {"type":"t"} padded with spaces. */
static char *
padded_body(size_t total)
{
    char *b = malloc(total + 1);

    memset(b, ' ', total);
    memcpy(b, "{\"type\":\"t\"}", 12);
    b[total] = '\0';
    return b;
}

/* {"type":"t","payload":"xxx..."} with a payload of n bytes. */
static char *
payload_body(size_t n, int base64)
{
    size_t cap = n * 2 + 64, off;
    char *b = malloc(cap);

    off = (size_t)snprintf(b, cap, "{\"type\":\"t\",\"%s\":\"",
        base64 ? "payload_base64" : "payload");
    if (base64) {
        /* n bytes of 0x00: "AAAA" per 3 bytes, padded */
        size_t full = n / 3, rest = n % 3;

        for (size_t i = 0; i < full; i++, off += 4)
            memcpy(b + off, "AAAA", 4);
        if (rest == 1) {
            memcpy(b + off, "AA==", 4);
            off += 4;
        } else if (rest == 2) {
            memcpy(b + off, "AAA=", 4);
            off += 4;
        }
    } else {
        memset(b + off, 'x', n);
        off += n;
    }
    snprintf(b + off, cap - off, "\"}");
    return b;
}

struct limit_case {
    const char *what;
    char *path;         /* owned */
    char *body;         /* owned */
    char *extra;        /* owned, may be NULL */
    int status;         /* expected */
    const char *error;  /* expected "error", or NULL for 202 */
};

static void
test_security_limits_exact(void **state)
{
    int kind = WQ_TRANSPORT_RABBITMQ;
    const char *queue = wq_test_queue(kind, "sec-limits");
    struct producer p;
    struct limit_case c[40];
    char (*ids)[WQ_UUID_STRLEN] = calloc(40, WQ_UUID_STRLEN);
    char tasks[256], batch[256], q128[WQ_QUEUE_MAX + 2];
    char *resp = malloc(65536), err[64];
    size_t n = 0, nok = 0;

    (void)state;
    /* room for a base64 payload of 1 MiB + 1; batches of 3 */
    p = producer_start(kind, tokens_text(), (const char *[]){
        "WORKQ_PRODUCER_MAX_BODY=1500000", "WORKQ_PRODUCER_BATCH_MAX=3",
        NULL }, 0);
    snprintf(tasks, sizeof tasks, "/v1/queues/%s/tasks", queue);
    snprintf(batch, sizeof batch, "/v1/queues/%s/tasks:batch", queue);

#define CASE(w, pth, bdy, ext, st, er) (c[n++] = (struct limit_case){ (w), \
    strdup(pth), (bdy), (ext), (st), (er) })
    /* the request body: max_body exactly, and one more */
    CASE("body = max_body", tasks, padded_body(1500000), NULL, 202, NULL);
    CASE("body = max_body + 1", tasks, padded_body(1500001), NULL, 413,
        "payload_too_large");
    /* the payload */
    CASE("payload = 1 MiB", tasks, payload_body(WQ_PAYLOAD_MAX, 0), NULL,
        202, NULL);
    CASE("payload = 1 MiB + 1", tasks, payload_body(WQ_PAYLOAD_MAX + 1, 0),
        NULL, 413, "too_large");
    CASE("base64 payload = 1 MiB", tasks, payload_body(WQ_PAYLOAD_MAX, 1),
        NULL, 202, NULL);
    CASE("base64 payload = 1 MiB + 1", tasks,
        payload_body(WQ_PAYLOAD_MAX + 1, 1), NULL, 413, "too_large");
    /* a batch */
    CASE("batch = batch_max", batch, strdup("{\"tasks\":[{\"type\":\"a\"},"
        "{\"type\":\"b\"},{\"type\":\"c\"}]}"), NULL, 202, NULL);
    CASE("batch = batch_max + 1", batch, strdup("[{\"type\":\"a\"},"
        "{\"type\":\"b\"},{\"type\":\"c\"},{\"type\":\"d\"}]"), NULL, 413,
        "too_large");
    /* the idempotency key: body and header */
    {
        char *b = malloc(WQ_KEY_MAX + 64), *h = malloc(WQ_KEY_MAX + 64);

        snprintf(b, WQ_KEY_MAX + 64, "{\"type\":\"t\",\"idempotency_key\":"
            "\"%0*d\"}", WQ_KEY_MAX, 1);
        CASE("key = 512 bytes", tasks, b, NULL, 202, NULL);
        b = malloc(WQ_KEY_MAX + 64);
        snprintf(b, WQ_KEY_MAX + 64, "{\"type\":\"t\",\"idempotency_key\":"
            "\"%0*d\"}", WQ_KEY_MAX + 1, 1);
        CASE("key = 513 bytes", tasks, b, NULL, 413, "too_large");
        snprintf(h, WQ_KEY_MAX + 64, "Idempotency-Key: %0*d\r\n",
            WQ_KEY_MAX + 1, 2);
        CASE("header key = 513 bytes", tasks, strdup("{\"type\":\"t\"}"), h,
            413, "too_large");
    }
    /* the queue name, in the path */
    memset(q128, 'q', WQ_QUEUE_MAX + 1);
    q128[WQ_QUEUE_MAX + 1] = '\0';
    {
        char path[512];

        snprintf(path, sizeof path, "/v1/queues/%s/tasks", q128 + 1);
        wq_test_forget_queue(kind, q128 + 1);
        CASE("queue = 128 bytes", path, strdup("{\"type\":\"t\"}"), NULL,
            202, NULL);
        snprintf(path, sizeof path, "/v1/queues/%s/tasks", q128);
        CASE("queue = 129 bytes", path, strdup("{\"type\":\"t\"}"), NULL,
            400, "invalid_queue");
    }
    /* the type */
    {
        char *b = malloc(WQ_TYPE_MAX + 64);

        snprintf(b, WQ_TYPE_MAX + 64, "{\"type\":\"%0*d\"}", WQ_TYPE_MAX, 7);
        CASE("type = 128 bytes", tasks, b, NULL, 202, NULL);
        b = malloc(WQ_TYPE_MAX + 64);
        snprintf(b, WQ_TYPE_MAX + 64, "{\"type\":\"%0*d\"}", WQ_TYPE_MAX + 1,
            7);
        CASE("type = 129 bytes", tasks, b, NULL, 413, "too_large");
    }
    /* task headers: count, name, value */
    for (int k = 0; k < 6; k++) {
        static const int count[] = { WQ_HEADERS_MAX, WQ_HEADERS_MAX + 1, 1, 1,
            1, 1 };
        static const int name[] = { 2, 2, WQ_HEADER_NAME_MAX,
            WQ_HEADER_NAME_MAX + 1, 2, 2 };
        static const int value[] = { 1, 1, 1, 1, WQ_HEADER_VALUE_MAX,
            WQ_HEADER_VALUE_MAX + 1 };
        static const char *const what[] = { "64 headers", "65 headers",
            "header name 256", "header name 257", "header value 4096",
            "header value 4097" };
        json_t *h = json_object(), *o;
        char nm[WQ_HEADER_NAME_MAX + 8], *val = malloc((size_t)value[k] + 1);

        memset(val, 'v', (size_t)value[k]);
        val[value[k]] = '\0';
        for (int i = 0; i < count[k]; i++) {
            memset(nm, 'n', sizeof nm);
            nm[name[k] - 2] = (char)('0' + i / 10);
            nm[name[k] - 1] = (char)('0' + i % 10);
            nm[name[k]] = '\0';
            json_object_set_new(h, nm, json_string(val));
        }
        o = json_pack("{s:s, s:o}", "type", "t", "headers", h);
        CASE(what[k], tasks, json_dumps(o, JSON_COMPACT), NULL,
            k % 2 == 0 ? 202 : 413, k % 2 == 0 ? NULL : "too_large");
        json_decref(o);
        free(val);
    }
#undef CASE

    for (size_t i = 0; i < n; i++) {
        int st = wq_test_http_request(p.port, "POST", c[i].path, JSON, SUBMIT,
            c[i].extra, c[i].body, strlen(c[i].body), resp, 65536);

        if (st != c[i].status)
            fail_msg("%s: status %d, want %d: %.300s", c[i].what, st,
                c[i].status, resp);
        if (c[i].error != NULL) {
            if (strcmp(json_str(resp, "error", err, sizeof err), c[i].error)
                != 0)
                fail_msg("%s: error '%s', want '%s'", c[i].what, err,
                    c[i].error);
        } else if (strstr(c[i].path, ":batch") == NULL
            && strstr(c[i].path, q128 + 1) == NULL) {
            json_str(resp, "id", ids[nok++], WQ_UUID_STRLEN);
        }
        free(c[i].path);
        free(c[i].body);
        free(c[i].extra);
    }
    /* the accepted single tasks on `queue`, and the three of the batch */
    {
        struct wq_test_consumer *cons = wq_test_consumer_open(kind, queue);
        struct wq_envelope e[16];
        size_t got = wq_test_consumer_recv(cons, e, nok + 3, RECV_MS);

        assert_int_equal(got, nok + 3);
        for (size_t i = 0; i < got; i++)
            wq_envelope_free(&e[i]);
        assert_int_equal(wq_test_consumer_recv(cons, e, 1, 2000), 0);
        wq_test_consumer_close(cons);
    }
    assert_int_equal(producer_stop(&p), 0);
    free(ids);
    free(resp);
}

/* --- invalid UTF-8, metacharacters --------------------------------------- */

struct bad {
    const char *what, *path, *extra, *body;
    int status;
    const char *error;
};

static void
test_security_bad_names_and_utf8(void **state)
{
    int kind = WQ_TRANSPORT_RABBITMQ;
    const char *queue = wq_test_queue(kind, "sec-utf8");
    struct producer p = producer_start(kind, tokens_text(), NULL, 0);
    char tasks[256], resp[4096], err[64], ids[1][WQ_UUID_STRLEN];

    (void)state;
    snprintf(tasks, sizeof tasks, "/v1/queues/%s/tasks", queue);
    const struct bad cases[] = {
        /* invalid UTF-8 */
        { "key header not UTF-8", tasks, "Idempotency-Key: k\xc3\x28\r\n",
          "{\"type\":\"t\"}", 400, "invalid_task" },
        { "key header overlong UTF-8", tasks,
          "Idempotency-Key: \xc0\xaf\r\n", "{\"type\":\"t\"}", 400,
          "invalid_task" },
        { "key in body not UTF-8", tasks, NULL,
          "{\"type\":\"t\",\"idempotency_key\":\"k\xff\"}", 400,
          "invalid_json" },
        { "key a lone surrogate", tasks, NULL,
          "{\"type\":\"t\",\"idempotency_key\":\"\\udc00\"}", 400,
          "invalid_json" },
        { "key with NUL", tasks, NULL,
          "{\"type\":\"t\",\"idempotency_key\":\"a\\u0000b\"}", 400,
          "invalid_task" },
        { "header value not UTF-8", tasks, NULL,
          "{\"type\":\"t\",\"headers\":{\"h\":\"\xed\xa0\x80\"}}", 400,
          "invalid_json" },
        { "type not UTF-8", tasks, NULL, "{\"type\":\"\xfe\"}", 400,
          "invalid_json" },
        { "queue %FF", "/v1/queues/q%FF/tasks", NULL, "{\"type\":\"t\"}",
          400, "invalid_queue" },
        { "queue %C3%28", "/v1/queues/%C3%28/tasks", NULL,
          "{\"type\":\"t\"}", 400, "invalid_queue" },
        /* SQL and path metacharacters */
        { "queue a;drop", "/v1/queues/a;drop/tasks", NULL,
          "{\"type\":\"t\"}", 400, "invalid_queue" },
        { "queue a'b", "/v1/queues/a'b/tasks", NULL, "{\"type\":\"t\"}",
          400, "invalid_queue" },
        { "queue a%27b", "/v1/queues/a%27b/tasks", NULL, "{\"type\":\"t\"}",
          400, "invalid_queue" },
        { "queue with a space", "/v1/queues/a%20b/tasks", NULL,
          "{\"type\":\"t\"}", 400, "invalid_queue" },
        { "queue ../x", "/v1/queues/../x/tasks", NULL, "{\"type\":\"t\"}",
          404, "not_found" },
        { "queue ..%2Fx", "/v1/queues/..%2Fx/tasks", NULL,
          "{\"type\":\"t\"}", 404, "not_found" },
        { "queue ..", "/v1/queues/../tasks", NULL, "{\"type\":\"t\"}", 400,
          "invalid_queue" },
        { "queue %00", "/v1/queues/%00/tasks", NULL, "{\"type\":\"t\"}",
          404, "not_found" },
        { "queue a%00b", "/v1/queues/a%00b/tasks", NULL, "{\"type\":\"t\"}",
          404, "not_found" },
        { "queue $(id)", "/v1/queues/$(id)/tasks", NULL, "{\"type\":\"t\"}",
          400, "invalid_queue" },
        { "id with SQL", "/v1/tasks/1'%20OR%20'1'='1", NULL, NULL, 400,
          "invalid_id" },
        { "id with a path", "/v1/tasks/..%2F..%2Fetc%2Fpasswd", NULL, NULL,
          404, "not_found" },
    };

    (void)state;
    for (size_t i = 0; i < WQ_ARRAY_LEN(cases); i++) {
        const struct bad *c = &cases[i];
        int st = wq_test_http_request(p.port, c->body ? "POST" : "GET",
            c->path, c->body ? JSON : NULL, c->body ? SUBMIT : READ, c->extra,
            c->body ? c->body : "", c->body ? strlen(c->body) : 0, resp,
            sizeof resp);

        if (st != c->status)
            fail_msg("%s: status %d, want %d: %s", c->what, st, c->status,
                resp);
        if (strcmp(json_str(resp, "error", err, sizeof err), c->error) != 0)
            fail_msg("%s: error '%s', want '%s'", c->what, err, c->error);
    }
    /* the same names on `workq submit --batch` lines */
    {
        char out[8192], tq[300];
        const char *env[8];
        const char *argv[] = { NULL, "submit", "--batch", "-", "--queue",
            queue, NULL };
        char bin[1024], input[1024];

        snprintf(bin, sizeof bin, "%s", wq_test_bin("workq"));
        argv[0] = bin;
        wq_test_env_for(kind, NULL, env, 8);
        snprintf(tq, sizeof tq, "%s", queue);
        snprintf(input, sizeof input,
            "{\"queue\":\"a;drop\",\"type\":\"t\"}\n"
            "{\"queue\":\"../x\",\"type\":\"t\"}\n"
            "{\"queue\":\"a'b\",\"type\":\"t\"}\n"
            "{\"queue\":\"a\\u0000b\",\"type\":\"t\"}\n"
            "{\"queue\":\"q\xff\",\"type\":\"t\"}\n"
            "{\"type\":\"t\",\"idempotency_key\":\"\xc3\x28\"}\n");
        assert_int_equal(wq_test_cmd(argv, env, input, out, sizeof out), 65);
        assert_non_null(strstr(out, "0 tasks accepted, 6 lines rejected"));
    }
    /* nothing of it was published: the sentinel is alone */
    assert_int_equal(post(p.port, queue, SUBMIT, "{\"type\":\"sentinel\"}",
        resp, sizeof resp), 202);
    json_str(resp, "id", ids[0], WQ_UUID_STRLEN);
    expect_exactly(kind, queue, ids, 1, 2000);
    assert_int_equal(producer_stop(&p), 0);
}

/* --- HTTP header fields over the limits ---------------------------------- */

/* A POST with `n` extra header fields X-Fnn: v, the first with a name of
 * namelen bytes and a value of valuelen (0: short ones). */
static int
post_with_fields(int port, const char *queue, int n, size_t namelen,
    size_t valuelen, char *resp, size_t rlen)
{
    size_t cap = 65536 + namelen + valuelen, off = 0;
    char *extra = malloc(cap), path[300];
    int st;

    for (int i = 0; i < n; i++) {
        if (i == 0 && namelen > 0) {
            memset(extra + off, 'N', namelen);
            off += namelen;
        } else {
            off += (size_t)snprintf(extra + off, cap - off, "X-F%02d", i);
        }
        memcpy(extra + off, ": ", 2);
        off += 2;
        if (i == 0 && valuelen > 0) {
            memset(extra + off, 'v', valuelen);
            off += valuelen;
        } else {
            extra[off++] = 'v';
        }
        memcpy(extra + off, "\r\n", 2);
        off += 2;
    }
    extra[off] = '\0';
    snprintf(path, sizeof path, "/v1/queues/%s/tasks", queue);
    st = wq_test_http_request(port, "POST", path, JSON, SUBMIT, extra,
        "{\"type\":\"t\"}", 12, resp, rlen);
    free(extra);
    return st;
}

static void
test_security_http_header_limits(void **state)
{
    int kind = WQ_TRANSPORT_RABBITMQ;
    const char *queue = wq_test_queue(kind, "sec-hdr");
    struct producer p = producer_start(kind, tokens_text(), NULL, 0);
    char resp[8192], ids[2][WQ_UUID_STRLEN], err[64];
    /* the client sends Host, Content-Type, Authorization, Content-Length
     * and Connection: 5 fields */
    int base = 5, st;

    (void)state;
    assert_int_equal(post_with_fields(p.port, queue, WQ_HTTP_HEADERS_MAX -
        base, 0, 0, resp, sizeof resp), 202);
    json_str(resp, "id", ids[0], WQ_UUID_STRLEN);
    st = post_with_fields(p.port, queue, WQ_HTTP_HEADERS_MAX - base + 1, 0,
        0, resp, sizeof resp);
    assert_int_equal(st, 431);
    assert_string_equal(json_str(resp, "error", err, sizeof err),
        "header_fields_too_large");
    assert_int_equal(post_with_fields(p.port, queue, 1,
        WQ_HTTP_HEADER_NAME_MAX, 0, resp, sizeof resp), 202);
    json_str(resp, "id", ids[1], WQ_UUID_STRLEN);
    assert_int_equal(post_with_fields(p.port, queue, 1,
        WQ_HTTP_HEADER_NAME_MAX + 1, 0, resp, sizeof resp), 431);
    /* a value just over: refused; the token's own field too */
    assert_int_equal(post_with_fields(p.port, queue, 1, 0,
        WQ_HTTP_HEADER_VALUE_MAX + 1, resp, sizeof resp), 431);
    {
        char *tok = malloc(WQ_HTTP_HEADER_VALUE_MAX + 2), path[300];

        memset(tok, 'a', WQ_HTTP_HEADER_VALUE_MAX);
        tok[WQ_HTTP_HEADER_VALUE_MAX] = '\0';
        snprintf(path, sizeof path, "/v1/queues/%s/tasks", queue);
        assert_int_equal(wq_test_http_request(p.port, "POST", path, JSON, tok,
            NULL, "{\"type\":\"t\"}", 12, resp, sizeof resp), 431);
        free(tok);
    }
    /* all fields together over the connection's memory: refused by
     * libmicrohttpd, or the connection closed, never accepted */
    st = post_with_fields(p.port, queue, 40, 0, 0, resp, sizeof resp);
    assert_int_equal(st, 202);
    {
        char *extra = malloc(8 * 8000 + 64);
        size_t off = 0;

        for (int i = 0; i < 8; i++) {
            off += (size_t)sprintf(extra + off, "X-Big%d: ", i);
            memset(extra + off, 'b', 7900);
            off += 7900;
            memcpy(extra + off, "\r\n", 3);
            off += 2;
        }
        st = wq_test_http_request(p.port, "POST", "/v1/queues/x/tasks", JSON,
            SUBMIT, extra, "{\"type\":\"t\"}", 12, resp, sizeof resp);
        free(extra);
        assert_true(st == 431 || st == -1);
    }
    /* still serving; only the three accepted tasks arrived */
    assert_int_equal(wq_test_http_request(p.port, "GET", "/healthz", NULL,
        NULL, NULL, NULL, 0, resp, sizeof resp), 200);
    {
        struct wq_test_consumer *c = wq_test_consumer_open(kind, queue);
        struct wq_envelope e[4];

        assert_int_equal(wq_test_consumer_recv(c, e, 3, RECV_MS), 3);
        for (int i = 0; i < 3; i++)
            wq_envelope_free(&e[i]);
        assert_int_equal(wq_test_consumer_recv(c, e, 1, 2000), 0);
        wq_test_consumer_close(c);
    }
    assert_int_equal(producer_stop(&p), 0);
}

/* --- slow clients -------------------------------------------------------- */

struct loris {
    int fd;
    uint64_t closed_ns;
};

/* Opens n connections, each with the start of a request. */
static struct loris *
loris_open(int port, int n)
{
    static const char *const starts[] = {
        "POST /v1/queues/q/tasks HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        "POST /v1/queues/q/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: "
            "application/json\r\nContent-Length: 100000\r\n\r\n{\"type\":",
        "",
    };
    struct loris *l = calloc((size_t)n, sizeof *l);

    for (int i = 0; i < n; i++) {
        l[i].fd = wq_test_http_connect(port);
        if (l[i].fd < 0)
            fail_msg("slow client %d: cannot connect", i);
        fcntl(l[i].fd, F_SETFL, O_NONBLOCK);
        if (starts[i % 3][0] != '\0')
            (void)send(l[i].fd, starts[i % 3], strlen(starts[i % 3]),
                MSG_NOSIGNAL);
    }
    return l;
}

/* One byte more on each open connection; notes those the server closed.
 * Returns how many are still open. */
static int
loris_tick(struct loris *l, int n)
{
    int open = 0;

    for (int i = 0; i < n; i++) {
        char c;
        ssize_t r;

        if (l[i].closed_ns != 0)
            continue;
        r = recv(l[i].fd, &c, 1, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            || (r > 0)      /* an answer (408, 4xx): the server is done */
            || (i % 3 != 2 && send(l[i].fd, "a", 1, MSG_NOSIGNAL) < 0
            && errno != EAGAIN)) {
            l[i].closed_ns = wq_clock_mono_ns();
            close(l[i].fd);
            continue;
        }
        open++;
    }
    return open;
}

static void
loris_close(struct loris *l, int n)
{
    for (int i = 0; i < n; i++)
        if (l[i].closed_ns == 0)
            close(l[i].fd);
    free(l);
}

/*
 * `n` slow clients against a producer with a read timeout of 2 s: each
 * sends a byte a second; every ~300 ms a normal client posts a task and
 * must be answered within `bound_ms`; every slow client must be cut
 * between 2 and 5 s.
 */
static void
check_loris(const char *max_conn, int n, int bound_ms)
{
    int kind = WQ_TRANSPORT_RABBITMQ;
    const char *queue = wq_test_queue(kind, "sec-loris");
    struct producer p = producer_start(kind, tokens_text(), (const char *[]){
        "WORKQ_PRODUCER_READ_TIMEOUT=2s", max_conn, NULL }, 0);
    char resp[4096];
    struct loris *l;
    uint64_t t0, worst = 0;
    int open = n, served = 0;

    t0 = wq_clock_mono_ns();
    l = loris_open(p.port, n);
    for (int round = 0; round < 30 && open > 0; round++) {
        if (round % 3 == 0)
            open = loris_tick(l, n);
        {
            uint64_t s = wq_clock_mono_ns(), d;
            int st = post(p.port, queue, SUBMIT, "{\"type\":\"t\"}", resp,
                sizeof resp);

            d = wq_clock_mono_ns() - s;
            if (st != 202)
                fail_msg("a normal client got %d while %d slow clients were "
                    "connected: %s", st, open, resp);
            if (d > worst)
                worst = d;
            served++;
        }
        sleep_ms(300);
    }
    for (int i = 0; i < n; i++) {
        double secs;

        if (l[i].closed_ns == 0)
            fail_msg("slow client %d still connected after %.1f s", i,
                (double)(wq_clock_mono_ns() - t0) / 1e9);
        secs = (double)(l[i].closed_ns - t0) / 1e9;
        if (secs < 1.5 || secs > 5.0)
            fail_msg("slow client %d cut after %.2f s (read timeout 2 s)", i,
                secs);
    }
    if (worst > (uint64_t)bound_ms * 1000000u)
        fail_msg("a normal client waited %.2f s (bound %d ms)",
            (double)worst / 1e9, bound_ms);
    printf("%d slow clients cut; %d normal requests, the slowest in %.0f "
        "ms\n", n, served, (double)worst / 1e6);
    loris_close(l, n);
    assert_int_equal(producer_stop(&p), 0);
}

static void
test_security_slow_loris(void **state)
{
    (void)state;
    /* far fewer slow clients than connections: others are served at
     * once */
    check_loris("WORKQ_PRODUCER_MAX_CONNECTIONS=1024", 300, 1000);
}

static void
test_security_slow_loris_over_max_connections(void **state)
{
    (void)state;
    /* more slow clients than connections: a normal client waits in the
     * backlog, at most until the slow ones are cut */
    check_loris("WORKQ_PRODUCER_MAX_CONNECTIONS=50", 90, 3500);
}

/* --- floods -------------------------------------------------------------- */

/* Posts `n` requests as fast as one client can; counts the statuses. */
static void
flood(int port, const char *path, const char *token, int n, int *n202,
    int *n429, int *n401)
{
    static const char body[] =
        "{\"type\":\"flood\",\"payload\":\"0123456789abcdef\"}";
    char resp[1024];

    for (int i = 0; i < n; i++) {
        int st = wq_test_http_request(port, "POST", path, JSON, token, NULL,
            body, sizeof body - 1, resp, sizeof resp);

        if (st == 202)
            (*n202)++;
        else if (st == 429)
            (*n429)++;
        else if (st == 401)
            (*n401)++;
        else
            fail_msg("flood: status %d: %s", st, resp);
    }
}

/* What the producer's resident memory may grow by over the flood: 8 MiB;
 * more under AddressSanitizer, whose quarantine holds freed blocks back
 * from reuse (Debian 13's ASan grew 8.2 MiB where Debian 12's stayed
 * under 8) */
#if defined(__SANITIZE_ADDRESS__)
#define FLOOD_RSS_KIB (16 * 1024)
#else
#define FLOOD_RSS_KIB (8 * 1024)
#endif

static void
test_security_rate_limit_flood(void **state)
{
    int kind = WQ_TRANSPORT_RABBITMQ;
    const char *queue = wq_test_queue(kind, "sec-flood");
    struct producer p = producer_start(kind, tokens_text(), (const char *[]){
        "WORKQ_PRODUCER_RATE_LIMIT=100", NULL }, 0);
    char path[256], resp[65536];
    int n202 = 0, n429 = 0, n401 = 0;
    long before, after;
    uint64_t t0;
    double secs;

    (void)state;
    snprintf(path, sizeof path, "/v1/queues/%s/tasks", queue);
    /* warm up: every code path and buffer once */
    flood(p.port, path, SUBMIT, 3000, &n202, &n429, &n401);
    flood(p.port, path, "not-a-token", 500, &n202, &n429, &n401);
    sleep_ms(500);
    before = rss_kib(p.pid);
    n202 = n429 = n401 = 0;
    t0 = wq_clock_mono_ns();
    flood(p.port, path, SUBMIT, 20000, &n202, &n429, &n401);
    flood(p.port, path, "not-a-token", 5000, &n202, &n429, &n401);
    secs = (double)(wq_clock_mono_ns() - t0) / 1e9;
    sleep_ms(500);
    after = rss_kib(p.pid);
    printf("flood: %d accepted, %d refused 429, %d refused 401 in %.1f s; "
        "VmRSS %ld -> %ld KiB\n", n202, n429, n401, secs, before, after);
    /* failed authentications are throttled per address (20, then one a
     * second): most of the wrong-token flood is answered 429 */
    if (n401 > 20 + (int)secs + 2)
        fail_msg("%d wrong tokens answered 401 in %.1f s", n401, secs);
    assert_true(n429 > 0);
    /* the bucket: one second's worth plus the rate over the time taken */
    if (n202 > 100 + (int)(100 * secs) + 10)
        fail_msg("%d accepted in %.1f s at a rate limit of 100/s", n202,
            secs);
    if (after - before > FLOOD_RSS_KIB)
        fail_msg("VmRSS grew by %ld KiB during the flood", after - before);
    assert_int_equal(wq_test_http_request(p.port, "GET", "/metrics", NULL,
        NULL, NULL, NULL, 0, resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "reason=\"rate_limited\"}"));
    assert_int_equal(producer_stop(&p), 0);
}

/* One request from source address `src` (a loopback address); status. */
static int
request_from(const char *src, int port, const char *raw, char *resp,
    size_t rlen)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    size_t n = 0;
    ssize_t r;
    int fd, status = -1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(inet_pton(AF_INET, src, &sa.sin_addr), 1);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        fail_msg("bind %s: %s", src, strerror(errno));
    sa.sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr), 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        fail_msg("connect from %s: %s", src, strerror(errno));
    assert_int_equal(write(fd, raw, strlen(raw)), (ssize_t)strlen(raw));
    while (n + 1 < rlen && (r = read(fd, resp + n, rlen - 1 - n)) > 0)
        n += (size_t)r;
    resp[n] = '\0';
    close(fd);
    if (n > 12 && strncmp(resp, "HTTP/1.", 7) == 0)
        status = atoi(resp + 9);
    return status;
}

/*
 * Failed authentications are throttled by client address: after 20 the
 * address is answered 429 with Retry-After, whatever token it shows;
 * the same token from another address still works (no lock-out by
 * token), and open routes stay open.
 */
static void
test_security_auth_failures_throttled(void **state)
{
    int kind = WQ_TRANSPORT_RABBITMQ;
    const char *queue = wq_test_queue(kind, "sec-authfail");
    struct producer p = producer_start(kind, tokens_text(), NULL, 0);
    static const char body[] = "{\"type\":\"t\"}";
    char path[256], raw[1024], resp[8192];
    int n401 = 0, n429 = 0, st;

    (void)state;
    snprintf(path, sizeof path, "/v1/queues/%s/tasks", queue);
    for (int i = 0; i < 30; i++) {
        st = wq_test_http_request(p.port, "POST", path, JSON, "wrong-token",
            NULL, body, sizeof body - 1, resp, sizeof resp);
        if (st == 401)
            n401++;
        else if (st == 429)
            n429++;
        else
            fail_msg("status %d: %s", st, resp);
    }
    if (n401 < 20 || n401 > 22 || n429 < 8)
        fail_msg("%d answered 401, %d answered 429", n401, n429);
    /* the address is throttled, whatever token it shows */
    snprintf(raw, sizeof raw, "POST %s HTTP/1.1\r\nHost: x\r\n"
        "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
        "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", path, SUBMIT,
        sizeof body - 1, body);
    st = request_from("127.0.0.1", p.port, raw, resp, sizeof resp);
    if (st != 429 || strstr(resp, "Retry-After: ") == NULL
        || strstr(resp, "auth_throttled") == NULL)
        fail_msg("status %d:\n%s", st, resp);
    /* the token is not locked out: from another address it works */
    st = request_from("127.0.0.2", p.port, raw, resp, sizeof resp);
    if (st != 202)
        fail_msg("from 127.0.0.2: status %d:\n%s", st, resp);
    /* open routes are not throttled */
    assert_int_equal(wq_test_http_request(p.port, "GET", "/healthz", NULL,
        NULL, NULL, NULL, 0, resp, sizeof resp), 200);
    assert_int_equal(wq_test_http_request(p.port, "GET", "/metrics", NULL,
        NULL, NULL, NULL, 0, resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "reason=\"auth_throttled\"}"));
    assert_int_equal(producer_stop(&p), 0);
}

/* POST one task to /v1/queues/QUEUE/tasks with the submit token. */
static int
post_to(int port, const char *queue, char *resp, size_t rlen)
{
    static const char body[] = "{\"type\":\"t\"}";
    char path[256];

    snprintf(path, sizeof path, "/v1/queues/%s/tasks", queue);
    return wq_test_http_request(port, "POST", path, JSON, SUBMIT, NULL, body,
        sizeof body - 1, resp, rlen);
}

/*
 * A submit token names only the queues of producer.queues (names or
 * glob patterns), at most producer.max_queues of them; by default the
 * queues the configuration names.  Others are refused 403 and make
 * nothing on the broker.
 */
static void
test_security_queue_allow_list(void **state)
{
    int kind = WQ_TRANSPORT_RABBITMQ;
    const char *base = wq_test_queue(kind, "sec-allow");
    static char allow[256], wq[256];
    char q[4][200], resp[8192];
    struct producer p;

    (void)state;
    for (int i = 0; i < 4; i++) {
        snprintf(q[i], sizeof q[i], "%s.%c", base, 'a' + i);
        wq_test_forget_queue(kind, q[i]);
    }
    snprintf(allow, sizeof allow, "WORKQ_PRODUCER_QUEUES=%s,%s.*", base,
        base);
    p = producer_start(kind, tokens_text(), (const char *[]){ allow,
        "WORKQ_PRODUCER_MAX_QUEUES=3", NULL }, 0);
    assert_int_equal(post_to(p.port, base, resp, sizeof resp), 202);
    assert_int_equal(post_to(p.port, q[0], resp, sizeof resp), 202);
    assert_int_equal(post_to(p.port, q[1], resp, sizeof resp), 202);
    /* a fourth queue: over producer.max_queues */
    assert_int_equal(post_to(p.port, q[2], resp, sizeof resp), 403);
    assert_non_null(strstr(resp, "producer.max_queues"));
    /* the queues taken stay usable */
    assert_int_equal(post_to(p.port, q[0], resp, sizeof resp), 202);
    /* a name no pattern matches */
    assert_int_equal(post_to(p.port, "sec-allow-elsewhere", resp,
        sizeof resp), 403);
    assert_non_null(strstr(resp, "producer.queues"));
    assert_non_null(strstr(resp, "\"error\":\"forbidden\""));
    assert_int_equal(producer_stop(&p), 0);

    /* the default: the queues the configuration names */
    snprintf(wq, sizeof wq, "WORKQ_WORKER_QUEUES=%s", q[3]);
    p = producer_start(kind, tokens_text(), (const char *[]){
        "WORKQ_PRODUCER_QUEUES=", wq, NULL }, 0);
    assert_int_equal(post_to(p.port, q[3], resp, sizeof resp), 202);
    assert_int_equal(post_to(p.port, base, resp, sizeof resp), 403);
    assert_int_equal(producer_stop(&p), 0);
}

/* --- tokens -------------------------------------------------------------- */

static void
test_security_tokens_scopes_and_rotation(void **state)
{
    int kind = WQ_TRANSPORT_RABBITMQ;
    const char *queue = wq_test_queue(kind, "sec-tokens");
    struct producer p = producer_start(kind, tokens_text(), NULL, 0);
    char tasks[256], get[256], resp[8192], err[64], id[64], text[2048];
    char entry[WQ_TOKEN_ENTRY_LEN];
    static const char body[] = "{\"type\":\"t\",\"delay\":\"1h\"}";

    (void)state;
    snprintf(tasks, sizeof tasks, "/v1/queues/%s/tasks", queue);
    /* submit: POST yes, GET no */
    assert_int_equal(post(p.port, queue, SUBMIT, body, resp, sizeof resp),
        202);
    json_str(resp, "id", id, sizeof id);
    snprintf(get, sizeof get, "/v1/tasks/%s", id);
    assert_int_equal(wq_test_http_request(p.port, "GET", get, NULL, SUBMIT,
        NULL, NULL, 0, resp, sizeof resp), 403);
    assert_string_equal(json_str(resp, "error", err, sizeof err),
        "forbidden");
    /* read: GET yes, POST no */
    assert_int_equal(wq_test_http_request(p.port, "GET", get, NULL, READ, NULL,
        NULL, 0, resp, sizeof resp), 200);
    assert_int_equal(post(p.port, queue, READ, body, resp, sizeof resp),
        403);
    /* admin and the legacy plaintext line: both */
    assert_int_equal(wq_test_http_request(p.port, "GET", get, NULL, ADMIN,
        NULL, NULL, 0, resp, sizeof resp), 200);
    assert_int_equal(post(p.port, queue, ADMIN, body, resp, sizeof resp),
        202);
    assert_int_equal(post(p.port, queue, LEGACY, body, resp, sizeof resp),
        202);
    assert_int_equal(wq_test_http_request(p.port, "GET", get, NULL, LEGACY,
        NULL, NULL, 0, resp, sizeof resp), 200);
    /* no token, a wrong one, a prefix, the stored hash itself: 401 */
    assert_int_equal(post(p.port, queue, NULL, body, resp, sizeof resp), 401);
    assert_int_equal(post(p.port, queue, "wq_nope", body, resp, sizeof resp),
        401);
    assert_int_equal(post(p.port, queue, "wq_submit", body, resp,
        sizeof resp), 401);
    assert_int_equal(wq_token_entry(SUBMIT, strlen(SUBMIT), entry), 0);
    assert_int_equal(post(p.port, queue, entry, body, resp, sizeof resp),
        401);
    assert_int_equal(post(p.port, queue, entry + 7, body, resp, sizeof resp),
        401);
    /* metrics and health need no token */
    assert_int_equal(wq_test_http_request(p.port, "GET", "/metrics", NULL,
        NULL, NULL, NULL, 0, resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "{reason=\"forbidden\"} 2\n"));
    assert_int_equal(wq_test_http_request(p.port, "GET", "/readyz", NULL, NULL,
        NULL, NULL, 0, resp, sizeof resp), 200);

    /* rotation: a new token in, the old one out, SIGHUP */
    text[0] = '\0';
    add_token_line(text, sizeof text, "wq_rotated-new-token", "submit,read");
    add_token_line(text, sizeof text, READ, "read");
    write_file("tokens.new", text);
    assert_int_equal(rename("tokens.new", "tokens"), 0);
    kill(p.pid, SIGHUP);
    for (int i = 0; i < 100 && post(p.port, queue, SUBMIT, body, resp,
        sizeof resp) != 401; i++)
        sleep_ms(50);
    assert_int_equal(post(p.port, queue, SUBMIT, body, resp, sizeof resp),
        401);
    assert_int_equal(post(p.port, queue, "wq_rotated-new-token", body, resp,
        sizeof resp), 202);
    /* a broken file on reload: the tokens in force stay */
    write_file("tokens", "sha256:not-hex submit\n");
    kill(p.pid, SIGHUP);
    sleep_ms(500);
    assert_int_equal(post(p.port, queue, "wq_rotated-new-token", body, resp,
        sizeof resp), 202);
    {
        char *log = wq_test_read_file("producer.log");

        assert_non_null(strstr(log, "tokens not reloaded"));
        assert_non_null(strstr(log, "tokens:1: sha256: must be followed"));
        assert_non_null(strstr(log, "1 of 4 tokens are written in "
            "plaintext"));
        free(log);
    }
    assert_int_equal(producer_stop(&p), 0);
}

/* --- no secrets in logs or metrics ---------------------------------------- */

static void
test_security_no_secrets_in_log_or_metrics(void **state)
{
    int kind = WQ_TRANSPORT_RABBITMQ;
    const char *queue = wq_test_queue(kind, "sec-secrets");
    struct producer p = producer_start(kind, tokens_text(), (const char *[]){
        "WORKQ_LOG_LEVEL=debug", "WORKQ_PRODUCER_RATE_LIMIT=1000", NULL }, 0);
    static const char *const secrets[] = { SUBMIT, READ, ADMIN, LEGACY,
        "wq_wrong-token-that-leaks", "PAYLOAD-SECRET-7f3a", "HEADER-SECRET" };
    char resp[65536], tasks[256], *log;

    (void)state;
    snprintf(tasks, sizeof tasks, "/v1/queues/%s/tasks", queue);
    /* accepted, refused for every reason that sees a payload or token */
    assert_int_equal(post(p.port, queue, SUBMIT, "{\"type\":\"t\","
        "\"payload\":\"PAYLOAD-SECRET-7f3a\",\"headers\":{\"auth\":"
        "\"HEADER-SECRET\"}}", resp, sizeof resp), 202);
    assert_int_equal(post(p.port, queue, "wq_wrong-token-that-leaks",
        "{\"type\":\"t\",\"payload\":\"PAYLOAD-SECRET-7f3a\"}", resp,
        sizeof resp), 401);
    assert_int_equal(post(p.port, queue, READ, "{\"type\":\"t\","
        "\"payload\":\"PAYLOAD-SECRET-7f3a\"}", resp, sizeof resp), 403);
    assert_int_equal(post(p.port, queue, SUBMIT, "{\"type\":\"t\","
        "\"payload\":\"PAYLOAD-SECRET-7f3a\",\"max_attempt\":1}", resp,
        sizeof resp), 400);
    assert_int_equal(post(p.port, queue, ADMIN, "{\"type\":\"t\","
        "\"payload\":\"PAYLOAD-SECRET-7f3a\"", resp, sizeof resp), 400);
    assert_int_equal(post(p.port, "bad;queue", LEGACY, "{\"type\":\"t\","
        "\"payload\":\"PAYLOAD-SECRET-7f3a\"}", resp, sizeof resp), 400);
    assert_int_equal(wq_test_http_request(p.port, "GET", "/v1/tasks/x", NULL,
        READ, NULL, NULL, 0, resp, sizeof resp), 400);
    assert_int_equal(wq_test_http_request(p.port, "GET", "/metrics", NULL,
        NULL, NULL, NULL, 0, resp, sizeof resp), 200);
    kill(p.pid, SIGHUP);    /* a reload logs about the tokens file */
    sleep_ms(300);
    assert_int_equal(producer_stop(&p), 0);
    log = wq_test_read_file("producer.log");
    assert_non_null(strstr(log, "listening on"));   /* a log was written */
    for (size_t i = 0; i < WQ_ARRAY_LEN(secrets); i++) {
        if (strstr(log, secrets[i]) != NULL)
            fail_msg("the log holds '%s'", secrets[i]);
        if (strstr(resp, secrets[i]) != NULL)
            fail_msg("/metrics holds '%s'", secrets[i]);
    }
    free(log);
}

/* --- HTTPS, end to end ---------------------------------------------------- */

/*
 * The producer on HTTPS, its broker reached over TLS (RabbitMQ amqps, or
 * Kafka SASL_SSL with the password from a file) and PostgreSQL with
 * sslmode=verify-full, all through its configuration file; a task posted
 * with curl verifying the throwaway CA arrives; a delayed one is stored
 * and read back; no secret reaches the log.
 */
static void
check_https_e2e(int kind)
{
    const char *queue = wq_test_queue(kind, "sec-https");
    const char *db = wq_test_pg_create_migrated_db();
    char conf[4096], conninfo[1024], cfgpath[1100], resp[65536], id[64];
    char path[256], ids[1][WQ_UUID_STRLEN], *log;
    const char *dir = wq_test_env("WQ_TEST_TMPDIR", ".");
    struct producer p;
    int st;

    snprintf(conninfo, sizeof conninfo, "%s sslmode=verify-full "
        "sslrootcert=%s", db, TLS_CA());
    write_file("kafka-password", KAFKA_SASL_PASS());
    if (kind == WQ_TRANSPORT_KAFKA)
        snprintf(conf, sizeof conf,
            "transport = \"kafka\";\n"
            "kafka = { brokers = \"%s\"; security_protocol = \"sasl_ssl\";\n"
            "  sasl_mechanism = \"PLAIN\"; sasl_username = \"%s\";\n"
            "  sasl_password_file = \"%s/kafka-password\";\n"
            "  ssl_ca_location = \"%s\"; };\n"
            "postgres = { conninfo = \"%s\"; };\n"
            "log = { level = \"debug\"; };\n",
            KAFKA_SASL_SSL(), KAFKA_SASL_USER(), dir, TLS_CA(), conninfo);
    else
        snprintf(conf, sizeof conf,
            "transport = \"rabbitmq\";\n"
            "rabbitmq = { url = \"%s\"; tls_ca = \"%s\"; };\n"
            "postgres = { conninfo = \"%s\"; };\n"
            "log = { level = \"debug\"; };\n",
            AMQPS_URL(), TLS_CA(), conninfo);
    write_file("workq.conf", conf);
    snprintf(cfgpath, sizeof cfgpath, "%s/workq.conf", dir);
    p = producer_start_conf(kind, cfgpath, tokens_text(), NULL, 1);

    /* a task over HTTPS, through the secured broker */
    snprintf(path, sizeof path, "/v1/queues/%s/tasks", queue);
    st = curl(p.port, "certs/ca.pem", "POST", path, SUBMIT,
        "{\"type\":\"t\",\"payload\":\"PAYLOAD-SECRET-e2e\"}", resp,
        sizeof resp);
    if (st != 202)
        fail_msg("POST over HTTPS: %d: %s", st, resp);
    json_str(resp, "id", ids[0], WQ_UUID_STRLEN);
    /* a delayed one: PostgreSQL over verify-full TLS; read back */
    st = curl(p.port, "certs/ca.pem", "POST", path, SUBMIT,
        "{\"type\":\"later\",\"delay\":\"1h\"}", resp, sizeof resp);
    if (st != 202)
        fail_msg("delayed POST over HTTPS: %d: %s", st, resp);
    json_str(resp, "id", id, sizeof id);
    snprintf(path, sizeof path, "/v1/tasks/%s", id);
    st = curl(p.port, "certs/ca.pem", "GET", path, READ, NULL, resp,
        sizeof resp);
    if (st != 200 || strstr(resp, "\"scheduled\"") == NULL)
        fail_msg("GET over HTTPS: %d: %s", st, resp);
    /* the scopes hold over TLS too */
    assert_int_equal(curl(p.port, "certs/ca.pem", "GET", path, SUBMIT, NULL,
        resp, sizeof resp), 403);
    /* another CA: curl refuses the server; plain HTTP gets no answer */
    assert_int_equal(curl(p.port, "certs/other-ca.pem", "GET", "/healthz",
        NULL, NULL, resp, sizeof resp), -60);
    assert_int_equal(wq_test_http_request(p.port, "GET", "/healthz", NULL,
        NULL, NULL, NULL, 0, resp, sizeof resp), -1);
    /* the task arrived, alone (read over the plain listener) */
    expect_exactly(kind, queue, ids, 1, 1000);
    assert_int_equal(producer_stop(&p), 0);

    log = wq_test_read_file("producer.log");
    assert_non_null(strstr(log, "HTTPS"));
    if (strstr(log, KAFKA_SASL_PASS()) != NULL)
        fail_msg("the log holds the SASL password");
    if (strstr(log, SUBMIT) != NULL || strstr(log, READ) != NULL
        || strstr(log, "PAYLOAD-SECRET-e2e") != NULL)
        fail_msg("the log holds a token or a payload");
    free(log);
}

static void
test_security_https_e2e_kafka(void **state)
{
    (void)state;
    check_https_e2e(WQ_TRANSPORT_KAFKA);
}

static void
test_security_https_e2e_rabbitmq(void **state)
{
    (void)state;
    check_https_e2e(WQ_TRANSPORT_RABBITMQ);
}

/* `workq token`: new, hash and check, as an operator runs them. */
static void
test_security_token_cli(void **state)
{
    static char out[8192];
    char bin[1024], tok[256], line[512], *nl;
    const char *argv[8];
    unsigned scopes;
    wq_tokens *t;
    char err[WQ_ERRLEN];

    (void)state;
    snprintf(bin, sizeof bin, "%s", wq_test_bin("workq"));
    argv[0] = bin;
    argv[1] = "--quiet";
    argv[2] = "token";
    argv[3] = "new";
    argv[4] = "--scopes";
    argv[5] = "submit";
    argv[6] = NULL;
    assert_int_equal(wq_test_cmd(argv, NULL, NULL, out, sizeof out), 0);
    /* the token, then its line; nothing else */
    nl = strchr(out, '\n');
    assert_non_null(nl);
    snprintf(tok, sizeof tok, "%.*s", (int)(nl - out), out);
    snprintf(line, sizeof line, "%s", nl + 1);
    assert_memory_equal(tok, "wq_", 3);
    assert_memory_equal(line, "sha256:", 7);
    assert_null(strstr(line, tok));
    assert_int_equal(wq_tokens_parse(line, strlen(line), "new", &t, err,
        sizeof err), 0);
    scopes = wq_tokens_check(t, tok, strlen(tok));
    assert_int_equal(scopes, WQ_TOKEN_SCOPE_SUBMIT);
    wq_tokens_free(t);

    /* hash: the token on stdin gives the same line */
    argv[3] = "hash";
    {
        char input[300];

        snprintf(input, sizeof input, "%s\n", tok);
        assert_int_equal(wq_test_cmd(argv, NULL, input, out, sizeof out), 0);
    }
    assert_string_equal(out, line);
    /* not on the command line */
    argv[6] = tok;
    argv[7] = NULL;
    assert_int_equal(wq_test_cmd(argv, NULL, "", out, sizeof out), 64);
    argv[6] = NULL;

    /* check: 0 for hashes only, 1 with a plaintext line, 78 if broken */
    write_file("tokens.ok", line);
    write_file("tokens.plain", "legacy-token\n");
    write_file("tokens.bad", "sha256:123 submit\n");
    argv[1] = "token";
    argv[2] = "check";
    argv[4] = NULL;
    argv[3] = "tokens.ok";
    assert_int_equal(wq_test_cmd(argv, NULL, NULL, out, sizeof out), 0);
    argv[3] = "tokens.plain";
    assert_int_equal(wq_test_cmd(argv, NULL, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "1 in plaintext"));
    argv[3] = "tokens.bad";
    assert_int_equal(wq_test_cmd(argv, NULL, NULL, out, sizeof out), 78);
    assert_non_null(strstr(out, "tokens.bad:1:"));
    argv[3] = "nonexistent";
    assert_int_equal(wq_test_cmd(argv, NULL, NULL, out, sizeof out), 66);
}

/* TLS material that cannot work is a configuration error: exit 78. */
static void
test_security_https_config_errors(void **state)
{
    static char out[65536];
    char cert[1200], key[1200], other[1200], wkey[1200], bin[1024];
    const char *dir = wq_test_env("WQ_TEST_TMPDIR", ".");
    const char *argv[] = { bin, NULL };
    struct {
        const char *what, *cert, *key, *msg;
    } cases[] = {
        { "key of another certificate", cert, other, "does not belong" },
        { "certificate only", cert, "", "go together" },
        { "no such key file", cert, "/nonexistent/key.pem",
          "/nonexistent/key.pem" },
        { "key in the certificate's place", key, key, "TLS certificate" },
        { "key writable by others", cert, wkey, "is writable by others" },
    };

    (void)state;
    wq_test_http_make_certs();
    snprintf(bin, sizeof bin, "%s", wq_test_bin("workq-producer"));
    snprintf(cert, sizeof cert, "WORKQ_PRODUCER_TLS_CERT=%s/certs/server.pem",
        dir);
    snprintf(key, sizeof key, "%s/certs/server.key", dir);
    snprintf(other, sizeof other, "%s/certs/other-ca.key", dir);
    /* a copy of the key that anyone may write: refused (issue 12) */
    snprintf(wkey, sizeof wkey, "%s/world.key", dir);
    {
        char *pem = wq_test_read_file(key);

        write_file(wkey, pem);
        free(pem);
        assert_int_equal(chmod(wkey, 0666), 0);
    }
    for (size_t i = 0; i < WQ_ARRAY_LEN(cases); i++) {
        char c[1300], k[1300];
        const char *env[10];
        size_t n = wq_test_env_for(WQ_TRANSPORT_RABBITMQ, NULL, env, 5);

        snprintf(c, sizeof c, "%s", cases[i].cert == key ? "" : cert);
        if (cases[i].cert == key)
            snprintf(c, sizeof c, "WORKQ_PRODUCER_TLS_CERT=%s", key);
        snprintf(k, sizeof k, "WORKQ_PRODUCER_TLS_KEY=%s", cases[i].key);
        env[n++] = c;
        env[n++] = k;
        env[n++] = "WORKQ_PRODUCER_LISTEN=127.0.0.1:1";
        /* no tokens here: the TLS errors are the subject */
        env[n++] = "WORKQ_PRODUCER_AUTH=none";
        env[n] = NULL;
        if (wq_test_cmd(argv, env, NULL, out, sizeof out) != 78)
            fail_msg("%s: not exit 78: %s", cases[i].what, out);
        if (strstr(out, cases[i].msg) == NULL)
            fail_msg("%s: no '%s' in: %s", cases[i].what, cases[i].msg, out);
    }
}

/* --- producer.auth: no open API by default ------------------------------- */

/*
 * Without a tokens file the producer refuses to start (78) unless
 * producer.auth = "none"; "none" runs on loopback and takes requests
 * without a token; "none" on a non-loopback address is refused unless
 * producer.auth_none_nonloopback is set.
 */
static void
test_security_auth_none_explicit(void **state)
{
    const char *argv[] = { NULL, NULL };
    char bin[1024], out[8192], path[300], resp[1024];
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "sec-auth");
    struct producer p;

    (void)state;
    snprintf(bin, sizeof bin, "%s", wq_test_bin("workq-producer"));
    argv[0] = bin;
    {
        const char *env[12];
        size_t n = wq_test_env_for(WQ_TRANSPORT_RABBITMQ, NULL, env, 8);

        env[n++] = "WORKQ_PRODUCER_LISTEN=127.0.0.1:1";
        env[n] = NULL;
        if (wq_test_cmd(argv, env, NULL, out, sizeof out) != 78)
            fail_msg("no tokens, default auth: not exit 78: %s", out);
        if (strstr(out, "producer.tokens_file is not set") == NULL
            || strstr(out, "or set producer.auth") == NULL)
            fail_msg("no tokens: the error does not say why: %s", out);
    }
    {
        const char *env[12];
        size_t n = wq_test_env_for(WQ_TRANSPORT_RABBITMQ, NULL, env, 8);

        env[n++] = "WORKQ_PRODUCER_LISTEN=0.0.0.0:1";
        env[n++] = "WORKQ_PRODUCER_AUTH=none";
        env[n] = NULL;
        if (wq_test_cmd(argv, env, NULL, out, sizeof out) != 78)
            fail_msg("auth none on 0.0.0.0: not exit 78: %s", out);
        if (strstr(out, "not a loopback address") == NULL
            || strstr(out, "auth_none_nonloopback") == NULL)
            fail_msg("auth none on 0.0.0.0: the error does not say why: "
                "%s", out);
    }

    /* loopback: starts and takes a task without a token */
    p = producer_start(WQ_TRANSPORT_RABBITMQ, NULL,
        (const char *[]){ "WORKQ_PRODUCER_AUTH=none", NULL }, 0);
    snprintf(path, sizeof path, "/v1/queues/%s/tasks", queue);
    if (wq_test_http_request(p.port, "POST", path, JSON, NULL, NULL,
            "{\"type\":\"t\"}", 12, resp, sizeof resp) != 202)
        fail_msg("auth none: a task without a token was not taken: %s",
            resp);
    assert_int_equal(producer_stop(&p), 0);

    /* forced: also on every address */
    listen_host = "0.0.0.0";
    p = producer_start(WQ_TRANSPORT_RABBITMQ, NULL,
        (const char *[]){ "WORKQ_PRODUCER_AUTH=none",
        "WORKQ_PRODUCER_AUTH_NONE_NONLOOPBACK=true", NULL }, 0);
    listen_host = "127.0.0.1";
    if (wq_test_http_request(p.port, "POST", path, JSON, NULL, NULL,
            "{\"type\":\"t\"}", 12, resp, sizeof resp) != 202)
        fail_msg("auth none, forced on 0.0.0.0: a task was not taken: %s",
            resp);
    assert_int_equal(producer_stop(&p), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_security_auth_none_explicit),
    cmocka_unit_test(test_security_limits_exact),
    cmocka_unit_test(test_security_bad_names_and_utf8),
    cmocka_unit_test(test_security_http_header_limits),
    cmocka_unit_test(test_security_slow_loris),
    cmocka_unit_test(test_security_slow_loris_over_max_connections),
    cmocka_unit_test(test_security_rate_limit_flood),
    cmocka_unit_test(test_security_auth_failures_throttled),
    cmocka_unit_test(test_security_queue_allow_list),
    cmocka_unit_test(test_security_tokens_scopes_and_rotation),
    cmocka_unit_test(test_security_no_secrets_in_log_or_metrics),
    cmocka_unit_test(test_security_https_e2e_kafka),
    cmocka_unit_test(test_security_https_e2e_rabbitmq),
    cmocka_unit_test(test_security_https_config_errors),
    cmocka_unit_test(test_security_token_cli),
};

WQ_TEST_MAIN("producer_security", tests)
