/*
 * test_conformance.c - publishing from another language, as
 * docs/wire-format.md promises: tests/conformance/publish.py, a Python
 * producer written from that document with Debian's python3-msgpack,
 * python3-pika and python3-confluent-kafka, publishes envelopes straight
 * to the private broker (declaring the RabbitMQ queue with the
 * document's arguments, creating the Kafka topic as the document says);
 * then a real workq-worker starts - after the producer, so on Kafka its
 * new consumer group must read from the oldest message - and PostgreSQL
 * must show each task run exactly once with its payload and headers, the
 * duplicate key not run again, and the malformed envelope kept whole in
 * workq.dead_letters, where `workq dlq list` shows it and `workq dlq
 * show --raw` gives its bytes back.
 *
 * Python is Debian's /usr/bin/python3 (the packages are Debian's); a
 * missing package fails the test with the package's name.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wq_test.h"
#include "wq_test_broker.h"
#include "wq_test_pg.h"
#include "uuid.h"

#define PYTHON    "/usr/bin/python3"
#define PUBLISHER WQ_SOURCE_DIR "/tests/conformance/publish.py"
#define COUNT     50

static pid_t worker_pid;
static char worker_log[256];

static void
show_log(void)
{
    char cmd[400];

    snprintf(cmd, sizeof cmd, "tail -n 40 %s >&2", worker_log);
    if (system(cmd) != 0)
        (void)0;
}

#define check(cond, ...) do {                                             \
    if (!(cond)) {                                                        \
        show_log();                                                       \
        fail_msg(__VA_ARGS__);                                            \
    }                                                                     \
} while (0)

static void
kill_worker(void)
{
    if (worker_pid > 0) {
        kill(worker_pid, SIGKILL);
        waitpid(worker_pid, NULL, 0);
        worker_pid = 0;
    }
}

static void
worker_start(int kind, const char *conninfo, const char *queue)
{
    const char *env[16], *argv[8];
    size_t ne;

    snprintf(worker_log, sizeof worker_log, "%s/worker.log",
        getenv("WQ_TEST_TMPDIR"));
    ne = wq_test_env_for(kind, conninfo, env, WQ_ARRAY_LEN(env) - 2);
    env[ne++] = "WORKQ_KAFKA_SESSION_TIMEOUT_MS=6000";
    env[ne] = NULL;
    argv[0] = wq_test_bin("workq-worker");
    argv[1] = "--queue";
    argv[2] = queue;
    argv[3] = "--concurrency";
    argv[4] = "8";
    argv[5] = NULL;
    worker_pid = wq_test_spawn(argv, env, NULL, worker_log);
    atexit(kill_worker);
}

static void
worker_stop(void)
{
    int rc;

    kill(worker_pid, SIGTERM);
    rc = wq_test_reap(&worker_pid, 30000);
    check(rc == 0, "worker did not stop cleanly: status %d", rc);
}

/* Waits until the query's number reaches `want`; returns the last one. */
static long long
wait_num(wq_store *s, long long want, int timeout_ms, const char *sql)
{
    long long v;

    (void)wq_test_waited((v = wq_test_pg_num(s, sql)) >= want, timeout_ms);
    return v;
}

/* Runs `workq ARGS...` (a shell line) against `conninfo`; exit status. */
static int
workq_sh(int kind, const char *conninfo, const char *line, char *out,
    size_t outlen)
{
    const char *env[8], *argv[4];
    char cmd[1024];

    wq_test_env_for(kind, conninfo, env, WQ_ARRAY_LEN(env));
    snprintf(cmd, sizeof cmd, "%s %s", wq_test_bin("workq"), line);
    argv[0] = "/bin/sh";
    argv[1] = "-c";
    argv[2] = cmd;
    argv[3] = NULL;
    return wq_test_cmd(argv, env, NULL, out, outlen);
}

/* The bytes of the file at path, at most max; the count. */
static size_t
read_bytes(const char *path, uint8_t *buf, size_t max)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL)
        fail_msg("cannot open %s", path);
    n = fread(buf, 1, max, f);
    fclose(f);
    return n;
}

static void
conformance(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    char queue[128], prefix[64], count[16], out[8192], sql[1024], id[64];
    char line[512], path[300], *hex;
    uint8_t raw[4096];
    size_t nraw;
    const char *addr = kind == WQ_TRANSPORT_KAFKA ? WQ_TEST_KAFKA_BROKERS()
        : WQ_TEST_AMQP_URL();
    const char *argv[8];
    uint8_t uuid[16];
    wq_store *s = wq_test_pg_open(ci);
    long long n;
    int rc;

    snprintf(queue, sizeof queue, "%s", wq_test_queue(kind,
        kind == WQ_TRANSPORT_KAFKA ? "conf-k" : "conf-r"));
    snprintf(prefix, sizeof prefix, "py");
    snprintf(count, sizeof count, "%d", COUNT);

    /* the producer first: nothing of workq has touched the queue yet */
    argv[0] = PYTHON;
    argv[1] = PUBLISHER;
    argv[2] = wq_test_kind_name(kind);
    argv[3] = addr;
    argv[4] = queue;
    argv[5] = prefix;
    argv[6] = count;
    argv[7] = NULL;
    rc = wq_test_cmd(argv, NULL, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("%s %s failed (status %d; Debian's python3-msgpack, "
            "python3-pika, python3-confluent-kafka: sh tests/deps.sh):\n%s",
            PYTHON, PUBLISHER, rc, out);
    assert_contains(out, "published");

    /* then the worker: it declares the same queue (no PRECONDITION_FAILED)
     * and, on Kafka, a new group reads from the oldest message */
    worker_start(kind, ci, queue);
    n = wait_num(s, COUNT + 1, 120000, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'succeeded'");
    check(n == COUNT + 1, "%lld of %d tasks succeeded", n, COUNT + 1);
    n = wait_num(s, 1, 30000, "SELECT count(*) FROM workq.dead_letters");
    check(n == 1, "%lld dead letters, want 1", n);
    worker_stop();

    /* each task once: one row, one attempt, echo's result = the payload */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks"),
        COUNT + 1);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.attempt_history"), COUNT + 1);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE attempt = 1 AND result = payload AND type = 'echo'"),
        COUNT + 1);
    /* binary payloads arrive as bin, byte for byte */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE idempotency_key = 'py-7' AND payload = "
        "'\\x00ff7061796c6f61642d37'::bytea"), 1);
    /* the duplicate of py-0 ran nothing: py-0 kept one payload, one run */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE idempotency_key = 'py-0' AND payload IN "
        "('\\x00ff7061796c6f61642d30'::bytea, 'duplicate'::bytea)"), 1);
    /* headers reach the task */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE headers->>'traceparent' = '00-4bf92f3577b34da6a3ce929d0e0e4736"
        "-00f067aa0ba902b7-01'"), COUNT);
    /* ids: the key's UUIDv5 as the document computes it, and a UUIDv7 */
    assert_int_equal(wq_uuid_for_key(queue, "py-3", uuid), 0);
    wq_uuid_format(uuid, id);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM workq.tasks WHERE id = "
        "'%s' AND idempotency_key = 'py-3'", id);
    assert_int_equal(wq_test_pg_num(s, sql), 1);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE idempotency_key = 'py-v7' AND substr(id::text, 15, 1) = '7'"),
        1);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE idempotency_key = 'py-bad'"), 0);
    /* the malformed envelope, whole, with the reason */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM workq.dead_letters "
        "WHERE queue = '%s' AND error LIKE '%%unsupported envelope version "
        "3%%' AND position('py-bad'::bytea IN raw) > 0", queue);
    assert_int_equal(wq_test_pg_num(s, sql), 1);

    /* the operator sees it with `workq dlq list`, and gets its bytes */
    rc = workq_sh(kind, ci, "dlq list", out, sizeof out);
    check(rc == 0, "workq dlq list: status %d: %s", rc, out);
    assert_contains(out, "UNDECODABLE");
    assert_contains(out, "unsupported envelope version 3");
    assert_contains(out, queue);
    n = wq_test_pg_num(s, "SELECT id FROM workq.dead_letters");
    snprintf(path, sizeof path, "%s/raw.bin", getenv("WQ_TEST_TMPDIR"));
    snprintf(line, sizeof line, "dlq show --raw %lld > %s", n, path);
    rc = workq_sh(kind, ci, line, out, sizeof out);
    check(rc == 0, "workq %s: status %d: %s", line, rc, out);
    check((nraw = read_bytes(path, raw, sizeof raw)) > 0, "%s is empty",
        path);
    hex = malloc(2 * nraw + 128);
    assert_non_null(hex);
    n = sprintf(hex, "SELECT count(*) FROM workq.dead_letters WHERE raw = "
        "'\\x");
    for (size_t i = 0; i < nraw; i++)
        n += sprintf(hex + n, "%02x", raw[i]);
    sprintf(hex + n, "'::bytea");
    assert_int_equal(wq_test_pg_num(s, hex), 1);
    free(hex);
    wq_store_close(s);
}

static void
conformance_kafka(void **state)
{
    (void)state;
    conformance(WQ_TRANSPORT_KAFKA);
}

static void
conformance_rabbitmq(void **state)
{
    (void)state;
    conformance(WQ_TRANSPORT_RABBITMQ);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(conformance_kafka),
    cmocka_unit_test(conformance_rabbitmq),
};

WQ_TEST_MAIN("conformance", tests)
