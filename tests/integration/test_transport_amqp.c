/*
 * test_transport_amqp.c - the RabbitMQ transport (shared/transport_amqp.c)
 * against a real broker at WQ_TEST_AMQP_URL() (tests/services: a private
 * node on 127.0.0.1:55672).  A missing broker fails every test with a
 * message saying so; nothing is skipped.
 *
 * Each test uses queues of its own (wq_test_unique) and deletes them at
 * exit, also after a failed assertion, through a plain rabbitmq-c
 * connection; that connection also inspects queues (message counts,
 * message properties) the way an operator would.  A small TCP relay in a
 * thread stands between the transport and the broker when a test needs
 * to cut the connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

#include "clock.h"
#include "transport.h"
#include "wq.h"
#include "wq_test.h"

#define CLOSE_MS 5000
#define FLUSH_MS 30000
#define POLL_MS  5000

/* --- confirmations -------------------------------------------------------- */

/* What on_confirm saw, per published message (opaque = index + 1). */
struct confirms {
    int n;
    int calls[16384];
    int status[16384];
    char reason[16384][96];
    int total;
};

static void
record_confirm(void *opaque, int status, const char *reason, void *user)
{
    struct confirms *c = user;
    size_t i = (size_t)(uintptr_t)opaque - 1;

    if (i >= WQ_ARRAY_LEN(c->calls))
        fail_msg("on_confirm with a foreign opaque %p", opaque);
    c->calls[i]++;
    c->status[i] = status;
    snprintf(c->reason[i], sizeof c->reason[i], "%s",
        reason != NULL ? reason : "");
    c->total++;
}

static struct confirms *
confirms_new(void)
{
    struct confirms *c = calloc(1, sizeof *c);

    assert_non_null(c);
    return c;
}

/* --- the broker, seen through a plain rabbitmq-c connection --------------- */

static struct amqp_connection_info
url_info(char *buf, size_t len)
{
    struct amqp_connection_info ci;

    snprintf(buf, len, "%s", WQ_TEST_AMQP_URL());
    amqp_default_connection_info(&ci);
    if (amqp_parse_url(buf, &ci) != AMQP_STATUS_OK)
        fail_msg("WORKQ_TEST_AMQP_URL '%s' is not an AMQP URL",
            WQ_TEST_AMQP_URL());
    if (ci.vhost[0] == '\0')
        ci.vhost = (char *)"/";
    return ci;
}

static const char *
broker_hint(void)
{
    static char buf[256];
    char url[512];
    struct amqp_connection_info ci = url_info(url, sizeof url);

    snprintf(buf, sizeof buf, "RabbitMQ at %s:%d (WORKQ_TEST_AMQP_URL; "
        "start the private node with `tests/services/ctl start rabbitmq`)",
        ci.host, ci.port);
    return buf;
}

/*
 * raw_try_open connects and opens channel 1; NULL with `why` filled if
 * it cannot.  No cmocka calls: it also runs at exit.
 */
static amqp_connection_state_t
raw_try_open(char *why, size_t len)
{
    char url[512];
    struct amqp_connection_info ci;
    amqp_connection_state_t c;
    amqp_socket_t *s;
    struct timeval tv = { 5, 0 };
    int rc;

    snprintf(url, sizeof url, "%s", WQ_TEST_AMQP_URL());
    amqp_default_connection_info(&ci);
    if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK) {
        snprintf(why, len, "bad URL");
        return NULL;
    }
    if (ci.vhost[0] == '\0')
        ci.vhost = (char *)"/";
    if ((c = amqp_new_connection()) == NULL)
        return NULL;
    if ((s = amqp_tcp_socket_new(c)) == NULL) {
        snprintf(why, len, "amqp_tcp_socket_new failed");
        goto fail;
    }
    if ((rc = amqp_socket_open_noblock(s, ci.host, ci.port, &tv)) != 0) {
        snprintf(why, len, "connect: %s", amqp_error_string2(rc));
        goto fail;
    }
    if (amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
        ci.user, ci.password).reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(why, len, "login refused");
        goto fail;
    }
    if (amqp_channel_open(c, 1) == NULL) {
        snprintf(why, len, "channel.open failed");
        goto fail;
    }
    return c;

fail:
    amqp_destroy_connection(c);
    return NULL;
}

/* raw_open connects on channel 1, or fails the test saying why. */
static amqp_connection_state_t
raw_open(void)
{
    char why[256] = "";
    amqp_connection_state_t c = raw_try_open(why, sizeof why);

    if (c == NULL)
        fail_msg("cannot reach %s: %s", broker_hint(), why);
    return c;
}

static void
raw_close(amqp_connection_state_t c)
{
    (void)amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    (void)amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

static void
full_name(char *buf, size_t len, const char *queue)
{
    snprintf(buf, len, "%s%s", WQ_QUEUE_PREFIX, queue);
}

/*
 * raw_count returns the ready messages of queue "workq.<queue>" (passive
 * declare), or -1 if there is no such queue.
 */
static long
raw_count(const char *queue)
{
    amqp_connection_state_t c = raw_open();
    amqp_queue_declare_ok_t *ok;
    char name[256];
    long n;

    full_name(name, sizeof name, queue);
    ok = amqp_queue_declare(c, 1, amqp_cstring_bytes(name), 1, 0, 0, 0,
        amqp_empty_table);
    n = ok != NULL ? (long)ok->message_count : -1;
    if (ok == NULL) {
        amqp_destroy_connection(c);     /* the channel is closed */
        return n;
    }
    raw_close(c);
    return n;
}

/* raw_count_settles waits up to 5 s for the count to reach `want`. */
static long
raw_count_settles(const char *queue, long want)
{
    long n = raw_count(queue);

    for (int i = 0; i < 50 && n != want; i++) {
        usleep(100000);
        n = raw_count(queue);
    }
    return n;
}

static void
raw_delete(const char *queue)
{
    amqp_connection_state_t c = raw_open();
    char name[256];

    full_name(name, sizeof name, queue);
    if (amqp_queue_delete(c, 1, amqp_cstring_bytes(name), 0, 0) == NULL) {
        amqp_destroy_connection(c);
        return;
    }
    raw_close(c);
}

/* Queues made by this test process, deleted at exit (pass or fail). */
static char *made[64];
static size_t nmade;

static void
delete_made(void)
{
    char why[256], name[256];
    amqp_connection_state_t c = raw_try_open(why, sizeof why);

    for (size_t i = 0; i < nmade; i++) {
        full_name(name, sizeof name, made[i]);
        if (c != NULL && amqp_queue_delete(c, 1, amqp_cstring_bytes(name),
            0, 0) == NULL) {
            amqp_destroy_connection(c);
            c = raw_try_open(why, sizeof why);
        }
        free(made[i]);
    }
    nmade = 0;
    if (c != NULL)
        raw_close(c);
}

/* queue_for_test names a fresh queue and schedules its deletion. */
static const char *
queue_for_test(const char *prefix)
{
    const char *q = wq_test_unique(prefix);

    if (nmade == 0)
        atexit(delete_made);
    assert_true(nmade < WQ_ARRAY_LEN(made));
    made[nmade] = strdup(q);
    assert_non_null(made[nmade]);
    return made[nmade++];
}

/* --- the transport -------------------------------------------------------- */

static int heartbeat_s = 10;    /* for the handles opened next */

static wq_transport *
open_url(const char *url, int quorum, int prefetch, struct confirms *c)
{
    struct wq_transport_conf conf;
    wq_transport *t = NULL;
    char err[WQ_ERRLEN];
    int rc;

    memset(&conf, 0, sizeof conf);
    conf.kind = WQ_TRANSPORT_RABBITMQ;
    conf.client_id = "test_transport_amqp";
    conf.amqp_url = url;
    conf.amqp_quorum = quorum;
    conf.amqp_prefetch = prefetch;
    conf.amqp_heartbeat_s = heartbeat_s;
    conf.on_confirm = c != NULL ? record_confirm : NULL;
    conf.on_confirm_user = c;
    rc = wq_transport_amqp_ops.open(&conf, &t, err, sizeof err);
    if (rc != 0)
        fail_msg("cannot open the transport to %s: %s (%s)", broker_hint(),
            err, wq_strerror(rc));
    assert_non_null(t);
    assert_string_equal(wq_transport_name(t), "rabbitmq");
    return t;
}

static wq_transport *
open_t(int quorum, int prefetch, struct confirms *c)
{
    return open_url(WQ_TEST_AMQP_URL(), quorum, prefetch, c);
}

#define CHECK_OK(call) do {                                               \
    char err_[WQ_ERRLEN] = "";                                            \
    int rc_ = (call);                                                     \
    if (rc_ != 0)                                                         \
        fail_msg("%s: %d (%s): %s", #call, rc_, wq_strerror(rc_), err_); \
} while (0)

static void
declare(wq_transport *t, const char *q)
{
    CHECK_OK(wq_transport_declare(t, q, err_, sizeof err_));
}

static void
publish(wq_transport *t, const char *q, const char *key, const void *body,
    size_t len, int i)
{
    CHECK_OK(wq_transport_publish(t, q, key, key != NULL ? strlen(key) : 0,
        body, len, (void *)(uintptr_t)(i + 1), err_, sizeof err_));
}

static void
flush_ok(wq_transport *t)
{
    CHECK_OK(wq_transport_flush(t, FLUSH_MS, err_, sizeof err_));
}

static void
subscribe(wq_transport *t, const char *q)
{
    const char *qs[1] = { q };

    CHECK_OK(wq_transport_subscribe(t, qs, 1, err_, sizeof err_));
}

static wq_delivery *
poll_one(wq_transport *t)
{
    wq_delivery *d = NULL;

    CHECK_OK(wq_transport_poll(t, &d, POLL_MS, err_, sizeof err_));
    assert_non_null(d);
    return d;
}

static void
ack(wq_transport *t, wq_delivery *d)
{
    CHECK_OK(wq_transport_ack(t, d, err_, sizeof err_));
}

/* expect_nothing: a poll of `ms` finds no delivery. */
static void
expect_nothing(wq_transport *t, int ms)
{
    wq_delivery *d = NULL;
    char err[WQ_ERRLEN];
    int rc = wq_transport_poll(t, &d, ms, err, sizeof err);

    if (rc == 0)
        fail_msg("unexpected delivery: %.*s", (int)d->len,
            (const char *)d->body);
    assert_int_equal(rc, WQ_EAGAIN);
}

/* Body "msg-<i>-" padded to 120 bytes; body_index reads <i> back. */
static size_t
make_body(char *buf, size_t len, int i)
{
    int n = snprintf(buf, len, "msg-%06d-", i);

    for (; (size_t)n < 120 && (size_t)n + 1 < len; n++)
        buf[n] = (char)('a' + n % 26);
    buf[n] = '\0';
    return (size_t)n;
}

static int
body_index(const wq_delivery *d)
{
    char buf[16];
    int i;

    if (d->len < 11 || memcmp(d->body, "msg-", 4) != 0)
        fail_msg("foreign body: %.*s", (int)d->len, (const char *)d->body);
    memcpy(buf, (const char *)d->body + 4, 6);
    buf[6] = '\0';
    i = atoi(buf);
    return i;
}

static void
publish_n(wq_transport *t, const char *q, int from, int n)
{
    char body[160], key[32];

    for (int i = from; i < from + n; i++) {
        size_t len = make_body(body, sizeof body, i);

        snprintf(key, sizeof key, "key-%d", i);
        publish(t, q, key, body, len, i);
    }
}

/* --- tests ---------------------------------------------------------------- */

/* declare is idempotent, for quorum and classic queues and across
 * handles. */
static void
test_transport_amqp_declare_twice(void **state)
{
    const char *q = queue_for_test("decl");
    const char *qc = queue_for_test("declc");
    wq_transport *t = open_t(1, 10, NULL), *t2 = open_t(1, 10, NULL);
    wq_transport *tc = open_t(0, 10, NULL);

    (void)state;
    declare(t, q);
    declare(t, q);
    declare(t2, q);
    declare(tc, qc);
    declare(tc, qc);
    assert_int_equal(raw_count(q), 0);
    assert_int_equal(raw_count(qc), 0);
    wq_transport_close(t, CLOSE_MS);
    wq_transport_close(t2, CLOSE_MS);
    wq_transport_close(tc, CLOSE_MS);
}

/* 2000 messages: all confirmed, all consumed once, all acked, none left. */
static void
test_transport_amqp_publish_consume(void **state)
{
    enum { N = 2000 };
    const char *q = queue_for_test("pubcon");
    struct confirms *c = confirms_new();
    wq_transport *t = open_t(1, 50, c);
    static char seen[N];
    int got = 0;

    (void)state;
    declare(t, q);
    publish_n(t, q, 0, N);
    flush_ok(t);
    assert_int_equal(c->total, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(c->calls[i], 1);
        if (c->status[i] != 0)
            fail_msg("message %d: status %d: %s", i, c->status[i],
                c->reason[i]);
    }
    assert_int_equal(raw_count_settles(q, N), N);

    subscribe(t, q);
    while (got < N) {
        wq_delivery *d = poll_one(t);
        int i = body_index(d);

        assert_true(i >= 0 && i < N);
        if (seen[i])
            fail_msg("message %d delivered twice", i);
        seen[i] = 1;
        assert_string_equal(d->queue, q);
        assert_int_equal(d->redelivered, 0);
        assert_int_equal(d->partition, -1);
        assert_true(d->offset > 0);
        assert_null(d->key);
        ack(t, d);
        got++;
    }
    expect_nothing(t, 300);
    wq_transport_close(t, CLOSE_MS);
    assert_int_equal(raw_count_settles(q, 0), 0);
    free(c);
}

/* More messages than the confirm window, without a flush between. */
static void
test_transport_amqp_window(void **state)
{
    enum { N = 12000 };
    const char *q = queue_for_test("window");
    struct confirms *c = confirms_new();
    wq_transport *t = open_t(0, 10, c);
    int before_flush;

    (void)state;
    declare(t, q);
    publish_n(t, q, 0, N);
    before_flush = c->total;
    flush_ok(t);
    assert_int_equal(c->total, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(c->calls[i], 1);
        assert_int_equal(c->status[i], 0);
    }
    /* publish() already took confirms in (the window demands it) */
    assert_true(before_flush >= N - 10000);
    assert_true(before_flush > 0);
    assert_int_equal(raw_count_settles(q, N), N);
    wq_transport_close(t, CLOSE_MS);
    free(c);
}

/* Consume 10, ack 5 out of order, close: a new consumer gets exactly the
 * other 5, marked redelivered. */
static void
test_transport_amqp_redeliver_unacked(void **state)
{
    const char *q = queue_for_test("redeliv");
    wq_transport *t = open_t(1, 20, NULL), *t2;
    static const int order[5] = { 2, 0, 4, 1, 3 };
    wq_delivery *d[10];
    int idx[10], seen[10] = { 0 };

    (void)state;
    declare(t, q);
    publish_n(t, q, 0, 10);
    flush_ok(t);
    subscribe(t, q);
    for (int i = 0; i < 10; i++) {
        d[i] = poll_one(t);
        idx[i] = body_index(d[i]);
        assert_int_equal(d[i]->redelivered, 0);
    }
    for (int i = 0; i < 5; i++)
        ack(t, d[order[i]]);
    wq_transport_close(t, CLOSE_MS);

    t2 = open_t(1, 20, NULL);
    subscribe(t2, q);
    for (int i = 0; i < 5; i++) {
        wq_delivery *x = poll_one(t2);
        int k = body_index(x), found = 0;

        for (int j = 5; j < 10; j++)
            if (idx[j] == k && !seen[j])
                seen[j] = found = 1;
        if (!found)
            fail_msg("message %d came back but had been acked", k);
        assert_int_equal(x->redelivered, 1);
        ack(t2, x);
    }
    expect_nothing(t2, 500);
    wq_transport_close(t2, CLOSE_MS);
    assert_int_equal(raw_count_settles(q, 0), 0);
}

/* Acks in random order, with deliveries still outstanding: the batched
 * (multiple) acks must never cover one the caller has not acked. */
static void
test_transport_amqp_ack_batching(void **state)
{
    enum { N = 300, ACKED = 220 };
    const char *q = queue_for_test("ackbatch");
    wq_transport *t = open_t(1, N, NULL), *t2;
    static wq_delivery *d[N];
    static int idx[N], perm[N], acked[N], back[N];

    (void)state;
    declare(t, q);
    publish_n(t, q, 0, N);
    flush_ok(t);
    subscribe(t, q);
    for (int i = 0; i < N; i++) {
        d[i] = poll_one(t);
        idx[i] = body_index(d[i]);
        perm[i] = i;
    }
    srand(12345);
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1), x = perm[i];

        perm[i] = perm[j];
        perm[j] = x;
    }
    for (int i = 0; i < ACKED; i++) {
        ack(t, d[perm[i]]);
        acked[idx[perm[i]]] = 1;
        if (i % 37 == 0)
            expect_nothing(t, 60);  /* lets the 50 ms ack timer fire */
    }
    wq_transport_close(t, CLOSE_MS);

    t2 = open_t(1, N, NULL);
    subscribe(t2, q);
    for (int i = 0; i < N - ACKED; i++) {
        wq_delivery *x = poll_one(t2);
        int k = body_index(x);

        if (acked[k])
            fail_msg("message %d came back but had been acked", k);
        if (back[k]++)
            fail_msg("message %d came back twice", k);
        assert_int_equal(x->redelivered, 1);
        ack(t2, x);
    }
    expect_nothing(t2, 500);
    wq_transport_close(t2, CLOSE_MS);
    assert_int_equal(raw_count_settles(q, 0), 0);
}

/* A nacked delivery comes back, redelivered. */
static void
test_transport_amqp_nack_redelivered(void **state)
{
    const char *q = queue_for_test("nack");
    wq_transport *t = open_t(1, 10, NULL);
    wq_delivery *d;
    char err[WQ_ERRLEN];

    (void)state;
    declare(t, q);
    publish(t, q, "k", "msg-000007-x", 12, 0);
    flush_ok(t);
    subscribe(t, q);
    d = poll_one(t);
    assert_int_equal(body_index(d), 7);
    assert_int_equal(d->redelivered, 0);
    CHECK_OK(wq_transport_nack(t, d, err_, sizeof err_));
    /* a second ack/nack of the same delivery is refused */
    assert_int_equal(wq_transport_ack(t, d, err, sizeof err), WQ_EINVAL);
    d = poll_one(t);
    assert_int_equal(body_index(d), 7);
    assert_int_equal(d->redelivered, 1);
    ack(t, d);
    expect_nothing(t, 300);
    wq_transport_close(t, CLOSE_MS);
    assert_int_equal(raw_count_settles(q, 0), 0);
}

/* A message for a queue that does not exist comes back (basic.return)
 * and is reported refused; its neighbours are confirmed. */
static void
test_transport_amqp_publish_no_queue(void **state)
{
    const char *q = queue_for_test("exists");
    const char *missing = wq_test_unique("missing");
    struct confirms *c = confirms_new();
    wq_transport *t = open_t(1, 10, c);
    char err[WQ_ERRLEN];
    int rc;

    (void)state;
    declare(t, q);
    publish(t, q, "a", "msg-000000-", 11, 0);
    publish(t, missing, "b", "msg-000001-", 11, 1);
    publish(t, q, "c", "msg-000002-", 11, 2);
    rc = wq_transport_flush(t, FLUSH_MS, err, sizeof err);
    assert_int_equal(rc, WQ_ENACK);
    if (strstr(err, "no such queue") == NULL)
        fail_msg("flush error does not say 'no such queue': %s", err);
    assert_int_equal(c->total, 3);
    assert_int_equal(c->calls[0], 1);
    assert_int_equal(c->calls[1], 1);
    assert_int_equal(c->calls[2], 1);
    assert_int_equal(c->status[0], 0);
    assert_int_equal(c->status[1], WQ_ENACK);
    assert_int_equal(c->status[2], 0);
    if (strstr(c->reason[1], "no such queue") == NULL
        || strstr(c->reason[1], missing) == NULL)
        fail_msg("reason does not name the missing queue: %s", c->reason[1]);
    /* the refusal was reported once; the handle goes on */
    flush_ok(t);
    publish(t, q, "d", "msg-000003-", 11, 3);
    flush_ok(t);
    assert_int_equal(c->status[3], 0);
    assert_int_equal(raw_count_settles(q, 3), 3);
    wq_transport_close(t, CLOSE_MS);
    free(c);
}

/* Persistent, msgpack, message-id = key (long keys in a header). */
static void
test_transport_amqp_message_properties(void **state)
{
    const char *q = queue_for_test("props");
    wq_transport *t = open_t(1, 10, NULL);
    amqp_connection_state_t c;
    char longkey[301], name[256];

    (void)state;
    memset(longkey, 'k', 300);
    longkey[300] = '\0';
    declare(t, q);
    publish(t, q, "key-1", "hello", 5, 0);
    publish(t, q, longkey, "world", 5, 1);
    flush_ok(t);
    wq_transport_close(t, CLOSE_MS);
    assert_int_equal(raw_count_settles(q, 2), 2);

    c = raw_open();
    full_name(name, sizeof name, q);
    for (int i = 0; i < 2; i++) {
        amqp_rpc_reply_t r;
        amqp_message_t m;
        const amqp_basic_properties_t *p;
        int have_seq = 0, have_key = 0;

        r = amqp_basic_get(c, 1, amqp_cstring_bytes(name), 1);
        assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
        assert_int_equal(r.reply.id, AMQP_BASIC_GET_OK_METHOD);
        r = amqp_read_message(c, 1, &m, 0);
        assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
        p = &m.properties;
        assert_true(p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG);
        assert_int_equal(p->delivery_mode, 2);
        assert_true(p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG);
        assert_int_equal(p->content_type.len, strlen("application/msgpack"));
        assert_memory_equal(p->content_type.bytes, "application/msgpack",
            p->content_type.len);
        for (int h = 0; (p->_flags & AMQP_BASIC_HEADERS_FLAG)
            && h < p->headers.num_entries; h++) {
            const amqp_table_entry_t *e = &p->headers.entries[h];

            if (e->key.len == 11 && memcmp(e->key.bytes, "x-workq-seq", 11)
                == 0)
                have_seq = 1;
            if (e->key.len == 11 && memcmp(e->key.bytes, "x-workq-key", 11)
                == 0) {
                assert_int_equal(e->value.value.bytes.len, 300);
                assert_memory_equal(e->value.value.bytes.bytes, longkey, 300);
                have_key = 1;
            }
        }
        assert_true(have_seq);
        if (m.body.len == 5 && memcmp(m.body.bytes, "hello", 5) == 0) {
            assert_true(p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG);
            assert_int_equal(p->message_id.len, 5);
            assert_memory_equal(p->message_id.bytes, "key-1", 5);
        } else {
            assert_int_equal(m.body.len, 5);
            assert_memory_equal(m.body.bytes, "world", 5);
            assert_false(p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG);
            assert_true(have_key);
        }
        amqp_destroy_message(&m);
        amqp_maybe_release_buffers(c);
    }
    raw_close(c);
}

/* A wrong password: WQ_EBROKER saying the login was refused. */
static void
test_transport_amqp_wrong_password(void **state)
{
    struct wq_transport_conf conf;
    wq_transport *t = NULL;
    char url[512], bad[768], err[WQ_ERRLEN];
    struct amqp_connection_info ci = url_info(url, sizeof url);
    int rc;

    (void)state;
    raw_close(raw_open());      /* the broker is there */
    snprintf(bad, sizeof bad, "amqp://%s:not-the-password@%s:%d/%s",
        ci.user, ci.host, ci.port, strcmp(ci.vhost, "/") == 0 ? ""
        : ci.vhost);
    memset(&conf, 0, sizeof conf);
    conf.kind = WQ_TRANSPORT_RABBITMQ;
    conf.amqp_url = bad;
    conf.amqp_quorum = 1;
    rc = wq_transport_amqp_ops.open(&conf, &t, err, sizeof err);
    assert_int_equal(rc, WQ_EBROKER);
    assert_null(t);
    if (strstr(err, "login refused") == NULL
        || strstr(err, "ACCESS_REFUSED") == NULL)
        fail_msg("unclear error for a wrong password: %s", err);
    if (strstr(err, "not-the-password") != NULL)
        fail_msg("the error shows the password: %s", err);
}

/* Nothing listens on the port: WQ_EBROKER at once. */
static void
test_transport_amqp_unreachable(void **state)
{
    struct wq_transport_conf conf;
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    wq_transport *t = NULL;
    char url[128], err[WQ_ERRLEN];
    uint64_t t0;
    int fd, rc;

    (void)state;
    /* a port that was free a moment ago */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
    close(fd);
    snprintf(url, sizeof url, "amqp://guest:guest@127.0.0.1:%d/",
        ntohs(sa.sin_port));

    memset(&conf, 0, sizeof conf);
    conf.kind = WQ_TRANSPORT_RABBITMQ;
    conf.amqp_url = url;
    t0 = wq_clock_mono_ns();
    rc = wq_transport_amqp_ops.open(&conf, &t, err, sizeof err);
    assert_int_equal(rc, WQ_EBROKER);
    assert_null(t);
    assert_true(wq_clock_mono_ns() - t0 < 2000000000u);
    if (strstr(err, "cannot connect") == NULL
        || strstr(err, "127.0.0.1") == NULL)
        fail_msg("unclear error for a closed port: %s", err);

    /* and a URL that is not one */
    conf.amqp_url = "http://nope";
    rc = wq_transport_amqp_ops.open(&conf, &t, err, sizeof err);
    assert_int_equal(rc, WQ_ECONFIG);
}

/* rabbitmq.hosts: the URL's node does not answer, the next one listed
 * does (a cluster whose first node is down); a list of nodes none of which
 * answers fails naming the last one; a bad list is a configuration error. */
static void
test_transport_amqp_other_nodes(void **state)
{
    struct wq_transport_conf conf;
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    wq_transport *t = NULL;
    char url[256], hosts[256], dead[64], err[WQ_ERRLEN], user[64], pass[64];
    char host[64];
    const char *q = queue_for_test("nodes");
    int fd, rc, port = 0, free_port;

    (void)state;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
    close(fd);
    free_port = ntohs(sa.sin_port);
    /* the test broker's URL, amqp://user:pass@host:port/... */
    if (sscanf(WQ_TEST_AMQP_URL(), "amqp://%63[^:]:%63[^@]@%63[^:]:%d",
            user, pass, host, &port) != 4)
        skip();
    snprintf(url, sizeof url, "amqp://%s:%s@127.0.0.1:%d/%%2f", user, pass,
        free_port);
    snprintf(dead, sizeof dead, "127.0.0.1:%d", free_port);
    snprintf(hosts, sizeof hosts, "%s, %s:%d", dead, host, port);

    memset(&conf, 0, sizeof conf);
    conf.kind = WQ_TRANSPORT_RABBITMQ;
    conf.client_id = "test_transport_amqp";
    conf.amqp_url = url;
    conf.amqp_hosts = hosts;
    conf.amqp_quorum = 1;
    conf.amqp_prefetch = 10;
    rc = wq_transport_amqp_ops.open(&conf, &t, err, sizeof err);
    if (rc != 0)
        fail_msg("the second node of rabbitmq.hosts was not tried: %s", err);
    declare(t, q);
    wq_transport_close(t, 1000);
    t = NULL;

    conf.amqp_hosts = dead;
    rc = wq_transport_amqp_ops.open(&conf, &t, err, sizeof err);
    assert_int_equal(rc, WQ_EBROKER);
    assert_null(t);
    if (strstr(err, dead) == NULL || strstr(err, "every other node") == NULL)
        fail_msg("unclear error when no node answers: %s", err);

    conf.amqp_hosts = "127.0.0.1:notaport";
    rc = wq_transport_amqp_ops.open(&conf, &t, err, sizeof err);
    assert_int_equal(rc, WQ_ECONFIG);
    if (strstr(err, "rabbitmq.hosts") == NULL)
        fail_msg("unclear error for a bad rabbitmq.hosts: %s", err);
}

/* Declaring a queue with the other type is a clear error; the handle
 * declares and publishes on afterwards. */
static void
test_transport_amqp_queue_type_mismatch(void **state)
{
    const char *q = queue_for_test("mismatch");
    const char *q2 = queue_for_test("mismatch2");
    wq_transport *classic = open_t(0, 10, NULL);
    wq_transport *quorum = open_t(1, 10, NULL);
    char err[WQ_ERRLEN];
    int rc;

    (void)state;
    declare(classic, q);
    rc = wq_transport_declare(quorum, q, err, sizeof err);
    assert_int_equal(rc, WQ_EBROKER);
    if (strstr(err, "PRECONDITION_FAILED") == NULL
        || strstr(err, "x-queue-type") == NULL
        || strstr(err, "another type") == NULL)
        fail_msg("unclear error for a queue type mismatch: %s", err);

    /* the other way round */
    declare(quorum, q2);
    rc = wq_transport_declare(classic, q2, err, sizeof err);
    assert_int_equal(rc, WQ_EBROKER);
    if (strstr(err, "PRECONDITION_FAILED") == NULL)
        fail_msg("unclear error for a queue type mismatch: %s", err);

    /* both handles still work */
    declare(quorum, q2);
    declare(classic, q);
    publish(quorum, q2, NULL, "msg-000001-", 11, 0);
    flush_ok(quorum);
    publish(classic, q, NULL, "msg-000002-", 11, 0);
    flush_ok(classic);
    wq_transport_close(classic, CLOSE_MS);
    wq_transport_close(quorum, CLOSE_MS);
    assert_int_equal(raw_count_settles(q, 1), 1);
    assert_int_equal(raw_count_settles(q2, 1), 1);
}

/* Deleting a consumed queue cancels the consumer: poll says so. */
static void
test_transport_amqp_queue_deleted(void **state)
{
    const char *q = queue_for_test("deleted");
    wq_transport *t = open_t(1, 10, NULL);
    wq_delivery *d = NULL;
    char err[WQ_ERRLEN];
    int rc;

    (void)state;
    declare(t, q);
    subscribe(t, q);
    expect_nothing(t, 100);
    raw_delete(q);
    rc = wq_transport_poll(t, &d, POLL_MS, err, sizeof err);
    assert_int_equal(rc, WQ_EBROKER);
    assert_null(d);
    if (strstr(err, "cancelled") == NULL || strstr(err, q) == NULL)
        fail_msg("unclear error for a deleted queue: %s", err);
    wq_transport_close(t, CLOSE_MS);
}

/* With 1 s heartbeats, a handle that only polls keeps its publishing
 * connection, and one that only flushes keeps its consuming one. */
static void
test_transport_amqp_heartbeats(void **state)
{
    const char *q = queue_for_test("beat");
    wq_transport *t;
    char err[WQ_ERRLEN];

    (void)state;
    heartbeat_s = 1;
    t = open_t(1, 10, NULL);
    declare(t, q);
    subscribe(t, q);
    expect_nothing(t, 4000);
    publish(t, q, NULL, "msg-000001-", 11, 0);
    flush_ok(t);
    ack(t, poll_one(t));
    for (int i = 0; i < 10; i++) {
        CHECK_OK(wq_transport_flush(t, 0, err_, sizeof err_));
        usleep(400000);
    }
    assert_int_equal(wq_transport_poll(t, &(wq_delivery *){ NULL }, 100, err,
        sizeof err), WQ_EAGAIN);
    publish(t, q, NULL, "msg-000002-", 11, 1);
    flush_ok(t);
    ack(t, poll_one(t));
    wq_transport_close(t, CLOSE_MS);
    assert_int_equal(raw_count_settles(q, 0), 0);
}

static void *
wake_later(void *arg)
{
    usleep(200000);
    wq_transport_wakeup(arg);
    return NULL;
}

/* wakeup() from another thread ends a blocked poll() at once; a wakeup
 * with no poll() waiting ends the next one; deliveries still flow. */
static void
test_transport_amqp_wakeup(void **state)
{
    const char *q = queue_for_test("wake");
    wq_transport *t = open_t(1, 10, NULL);
    wq_delivery *d = NULL;
    char err[WQ_ERRLEN];
    pthread_t th;
    uint64_t t0;
    int rc;

    (void)state;
    declare(t, q);
    subscribe(t, q);
    assert_int_equal(pthread_create(&th, NULL, wake_later, t), 0);
    t0 = wq_clock_mono_ns();
    rc = wq_transport_poll(t, &d, 10000, err, sizeof err);
    assert_int_equal(rc, WQ_EAGAIN);
    assert_null(d);
    assert_true(wq_clock_mono_ns() - t0 < 5000000000u);
    pthread_join(th, NULL);

    wq_transport_wakeup(t);
    t0 = wq_clock_mono_ns();
    assert_int_equal(wq_transport_poll(t, &d, 10000, err, sizeof err),
        WQ_EAGAIN);
    assert_true(wq_clock_mono_ns() - t0 < 1000000000u);

    publish(t, q, NULL, "msg-000004-", 11, 0);
    flush_ok(t);
    d = poll_one(t);
    assert_int_equal(body_index(d), 4);
    ack(t, d);
    wq_transport_close(t, CLOSE_MS);
    assert_int_equal(raw_count_settles(q, 0), 0);
}

/* --- a TCP relay that can cut connections --------------------------------- */

struct relay {
    int lfd;
    int port;
    char host[128];
    int bport;
    int fds[16][2];
    int npairs;
    volatile int cut;
    volatile int freeze;        /* keep the sockets, forward nothing */
    volatile int stop;
    pthread_t th;
};

static int
relay_connect(const struct relay *r)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)r->bport);
    if (fd < 0 || inet_pton(AF_INET, r->host, &sa.sin_addr) != 1
        || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void *
relay_main(void *arg)
{
    struct relay *r = arg;
    char buf[65536];

    while (!r->stop) {
        struct pollfd p[1 + 32];
        int n = 0;

        if (r->cut) {
            for (int i = 0; i < r->npairs; i++) {
                for (int k = 0; k < 2; k++)
                    if (r->fds[i][k] >= 0) {
                        shutdown(r->fds[i][k], SHUT_RDWR);
                        close(r->fds[i][k]);
                        r->fds[i][k] = -1;
                    }
            }
            r->npairs = 0;
            usleep(10000);
            continue;
        }
        if (r->freeze) {
            usleep(10000);
            continue;
        }
        p[n].fd = r->lfd;
        p[n++].events = POLLIN;
        for (int i = 0; i < r->npairs; i++)
            for (int k = 0; k < 2; k++) {
                p[n].fd = r->fds[i][k];
                p[n++].events = POLLIN;
            }
        if (poll(p, (nfds_t)n, 20) <= 0)
            continue;
        if ((p[0].revents & POLLIN) && r->npairs < 16) {
            int a = accept(r->lfd, NULL, NULL), b;

            if (a >= 0) {
                if ((b = relay_connect(r)) < 0)
                    close(a);
                else {
                    r->fds[r->npairs][0] = a;
                    r->fds[r->npairs][1] = b;
                    r->npairs++;
                }
            }
            continue;
        }
        for (int i = 1; i < n; i++) {
            int pair = (i - 1) / 2, side = (i - 1) % 2;
            ssize_t got;

            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            got = read(p[i].fd, buf, sizeof buf);
            if (got <= 0) {
                r->cut = 1;
                break;
            }
            for (ssize_t off = 0; off < got;) {
                ssize_t w = write(r->fds[pair][!side], buf + off,
                    (size_t)(got - off));

                if (w <= 0) {
                    r->cut = 1;
                    break;
                }
                off += w;
            }
        }
    }
    return NULL;
}

static void
relay_start(struct relay *r)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    char url[512];
    struct amqp_connection_info ci = url_info(url, sizeof url);
    int one = 1;

    memset(r, 0, sizeof *r);
    snprintf(r->host, sizeof r->host, "%s",
        strcmp(ci.host, "localhost") == 0 ? "127.0.0.1" : ci.host);
    r->bport = ci.port;
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->lfd >= 0);
    setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(r->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(r->lfd, 8), 0);
    assert_int_equal(getsockname(r->lfd, (struct sockaddr *)&sa, &salen), 0);
    r->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&r->th, NULL, relay_main, r), 0);
}

static void
relay_stop(struct relay *r)
{
    r->cut = 1;
    usleep(50000);
    r->stop = 1;
    pthread_join(r->th, NULL);
    close(r->lfd);
}

/* The connection breaks under a publisher and a consumer: every call
 * says WQ_EBROKER with a reason, every published message gets its one
 * verdict, nothing crashes, and close frees it all. */
static void
test_transport_amqp_broken_connection(void **state)
{
    const char *q = queue_for_test("broken");
    struct confirms *c = confirms_new();
    struct relay r;
    wq_transport *t;
    wq_delivery *held, *d = NULL;
    char url[512], via[768], err[WQ_ERRLEN];
    struct amqp_connection_info ci = url_info(url, sizeof url);
    int rc, published = 0;

    (void)state;
    relay_start(&r);
    snprintf(via, sizeof via, "amqp://%s:%s@127.0.0.1:%d/%s", ci.user,
        ci.password, r.port, strcmp(ci.vhost, "/") == 0 ? "" : ci.vhost);
    t = open_url(via, 1, 10, c);
    declare(t, q);
    publish_n(t, q, 0, 5);
    published = 5;
    flush_ok(t);
    subscribe(t, q);
    held = poll_one(t);

    r.cut = 1;
    usleep(100000);

    /* publishing: a write may still land in the socket buffer, but then
     * the verdict comes through on_confirm */
    for (int i = 5; i < 10; i++) {
        rc = wq_transport_publish(t, q, NULL, 0, "msg-000009-", 11,
            (void *)(uintptr_t)(i + 1), err, sizeof err);
        if (rc == 0)
            published = i + 1;
        else {
            assert_int_equal(rc, WQ_EBROKER);
            break;
        }
    }
    rc = wq_transport_flush(t, 2000, err, sizeof err);
    assert_int_equal(rc, WQ_EBROKER);
    assert_true(strlen(err) > 10);
    assert_int_equal(c->total, published);
    for (int i = 5; i < published; i++) {
        assert_int_equal(c->calls[i], 1);
        assert_int_not_equal(c->status[i], 0);
    }
    rc = wq_transport_publish(t, q, NULL, 0, "x", 1, NULL, err, sizeof err);
    assert_int_equal(rc, WQ_EBROKER);
    rc = wq_transport_declare(t, q, err, sizeof err);
    assert_int_equal(rc, WQ_EBROKER);

    /* consuming: deliveries that were already in our socket buffer may
     * still come out, then the broken connection shows */
    for (int i = 0; i < 10; i++) {
        rc = wq_transport_poll(t, &d, 2000, err, sizeof err);
        if (rc != 0)
            break;
        (void)wq_transport_ack(t, d, err, sizeof err);
        d = NULL;
    }
    assert_int_equal(rc, WQ_EBROKER);
    assert_null(d);
    assert_true(strlen(err) > 10);
    rc = wq_transport_ack(t, held, err, sizeof err);
    assert_int_equal(rc, WQ_EBROKER);
    rc = wq_transport_poll(t, &d, 100, err, sizeof err);
    assert_int_equal(rc, WQ_EBROKER);

    wq_transport_close(t, CLOSE_MS);
    relay_stop(&r);
    /* the held delivery went back to the queue */
    assert_int_equal(raw_count_settles(q, 5), 5);
    free(c);
}

/* A broker that goes silent without closing the socket (a network
 * partition) is noticed by its missing heartbeats. */
static void
test_transport_amqp_silent_broker(void **state)
{
    const char *q = queue_for_test("silent");
    struct relay r;
    wq_transport *t;
    wq_delivery *d = NULL;
    char url[512], via[768], err[WQ_ERRLEN];
    struct amqp_connection_info ci = url_info(url, sizeof url);
    uint64_t t0;
    int rc;

    (void)state;
    relay_start(&r);
    snprintf(via, sizeof via, "amqp://%s:%s@127.0.0.1:%d/%s", ci.user,
        ci.password, r.port, strcmp(ci.vhost, "/") == 0 ? "" : ci.vhost);
    heartbeat_s = 1;
    t = open_url(via, 1, 10, NULL);
    declare(t, q);
    subscribe(t, q);
    expect_nothing(t, 100);

    r.freeze = 1;
    t0 = wq_clock_mono_ns();
    rc = wq_transport_poll(t, &d, 10000, err, sizeof err);
    assert_int_equal(rc, WQ_EBROKER);
    assert_true(wq_clock_mono_ns() - t0 < 6000000000u);
    if (strstr(err, "heartbeat") == NULL)
        fail_msg("unclear error for a silent broker: %s", err);
    rc = wq_transport_flush(t, 10000, err, sizeof err);
    assert_int_equal(rc, WQ_EBROKER);
    assert_true(wq_clock_mono_ns() - t0 < 9000000000u);
    t0 = wq_clock_mono_ns();
    wq_transport_close(t, CLOSE_MS);
    assert_true(wq_clock_mono_ns() - t0 < 1000000000u);
    relay_stop(&r);
}

/* Close with deliveries never acked and messages never flushed: the
 * messages are confirmed, the deliveries go back, nothing leaks. */
static void
test_transport_amqp_close_outstanding(void **state)
{
    const char *q = queue_for_test("closeout");
    struct confirms *c = confirms_new();
    wq_transport *t = open_t(1, 10, c);

    (void)state;
    declare(t, q);
    publish_n(t, q, 0, 20);
    flush_ok(t);
    subscribe(t, q);
    for (int i = 0; i < 3; i++)
        (void)poll_one(t);
    publish_n(t, q, 20, 5);
    wq_transport_close(t, CLOSE_MS);
    assert_int_equal(c->total, 25);
    for (int i = 0; i < 25; i++)
        assert_int_equal(c->status[i], 0);
    assert_int_equal(raw_count_settles(q, 25), 25);
    free(c);
}

/* --- dead-letter bounds --------------------------------------------------- */

static int64_t bound_ttl_ms, bound_max;

static void
test_bounds(void *user, const char *queue, int64_t *ttl_ms,
    int64_t *max_length)
{
    (void)user;
    (void)queue;
    *ttl_ms = bound_ttl_ms;
    *max_length = bound_max;
}

static wq_transport *
open_bounded(int64_t ttl_ms, int64_t max)
{
    struct wq_transport_conf conf;
    wq_transport *t = NULL;
    char err[WQ_ERRLEN];

    bound_ttl_ms = ttl_ms;
    bound_max = max;
    memset(&conf, 0, sizeof conf);
    conf.kind = WQ_TRANSPORT_RABBITMQ;
    conf.client_id = "test_transport_amqp";
    conf.amqp_url = WQ_TEST_AMQP_URL();
    conf.amqp_quorum = 1;
    conf.amqp_prefetch = 10;
    conf.amqp_heartbeat_s = heartbeat_s;
    conf.dead_bounds = test_bounds;
    if (wq_transport_amqp_ops.open(&conf, &t, err, sizeof err) != 0)
        fail_msg("cannot open the transport to %s: %s", broker_hint(), err);
    return t;
}

/* A fresh "Q.dead" name, deleted at exit. */
static const char *
dead_queue_for_test(const char *prefix)
{
    const char *q = queue_for_test(prefix);
    char *d = malloc(strlen(q) + 6);

    assert_non_null(d);
    sprintf(d, "%s.dead", q);
    assert_true(nmade < WQ_ARRAY_LEN(made));
    made[nmade++] = d;
    return d;
}

/*
 * workq.Q.dead is declared with the bounds conf->dead_bounds gives: it
 * keeps at most x-max-length copies (the oldest dropped), copies expire
 * after x-message-ttl; other queues get none.  Declaring it again with
 * other bounds (a changed configuration) still works: the queue is used
 * as it is.
 */
static void
test_transport_amqp_dead_bounds(void **state)
{
    const char *dq = dead_queue_for_test("deadb");
    const char *tq = dead_queue_for_test("deadttl");
    const char *plain = queue_for_test("deadbplain");
    wq_transport *t = open_bounded(600000, 5);
    struct wq_backlog b;
    char err[WQ_ERRLEN];

    (void)state;
    declare(t, dq);
    declare(t, plain);
    for (int i = 0; i < 8; i++) {
        publish(t, dq, "k", "x", 1, i);
        publish(t, plain, "k", "x", 1, i);
    }
    flush_ok(t);
    assert_int_equal(raw_count_settles(dq, 5), 5);
    assert_int_equal(raw_count_settles(plain, 8), 8);
    /* the backlog op sees the same */
    if (wq_transport_backlog(t, dq, &b, err, sizeof err) != 0)
        fail_msg("backlog: %s", err);
    assert_int_equal(b.ready, 5);
    assert_int_equal(b.unacked, -1);
    assert_int_equal(b.oldest_ms, -1);
    wq_backlog_free(&b);
    wq_transport_close(t, CLOSE_MS);

    /* other bounds for an existing queue: declared as it is */
    t = open_bounded(1000, 2);
    declare(t, dq);
    publish(t, dq, "k", "x", 1, 0);
    flush_ok(t);
    assert_int_equal(raw_count_settles(dq, 5), 5);

    wq_transport_close(t, CLOSE_MS);

    /* a TTL: the copies go */
    t = open_bounded(300, 0);
    declare(t, tq);
    for (int i = 0; i < 3; i++)
        publish(t, tq, "k", "x", 1, i);
    flush_ok(t);
    assert_int_equal(raw_count_settles(tq, 0), 0);
    wq_transport_close(t, CLOSE_MS);

    /* no such queue: WQ_ENOENT */
    t = open_t(1, 10, NULL);
    assert_int_equal(wq_transport_backlog(t, "no-such-queue-h2", &b, err,
        sizeof err), WQ_ENOENT);
    wq_transport_close(t, CLOSE_MS);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_transport_amqp_dead_bounds),
    cmocka_unit_test(test_transport_amqp_declare_twice),
    cmocka_unit_test(test_transport_amqp_publish_consume),
    cmocka_unit_test(test_transport_amqp_window),
    cmocka_unit_test(test_transport_amqp_redeliver_unacked),
    cmocka_unit_test(test_transport_amqp_ack_batching),
    cmocka_unit_test(test_transport_amqp_nack_redelivered),
    cmocka_unit_test(test_transport_amqp_publish_no_queue),
    cmocka_unit_test(test_transport_amqp_message_properties),
    cmocka_unit_test(test_transport_amqp_wrong_password),
    cmocka_unit_test(test_transport_amqp_unreachable),
    cmocka_unit_test(test_transport_amqp_other_nodes),
    cmocka_unit_test(test_transport_amqp_queue_type_mismatch),
    cmocka_unit_test(test_transport_amqp_queue_deleted),
    cmocka_unit_test(test_transport_amqp_heartbeats),
    cmocka_unit_test(test_transport_amqp_wakeup),
    cmocka_unit_test(test_transport_amqp_broken_connection),
    cmocka_unit_test(test_transport_amqp_silent_broker),
    cmocka_unit_test(test_transport_amqp_close_outstanding),
};

WQ_TEST_MAIN("transport_amqp", tests)
