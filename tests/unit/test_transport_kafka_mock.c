/*
 * test_transport_kafka_mock.c - the Kafka transport against a FAKE broker:
 * librdkafka's built-in mock cluster (rdkafka_mock.h), started in this
 * process on ephemeral loopback ports.
 *
 * The mock is not Kafka.  It serves these tests because it can inject
 * errors the real broker will not produce on demand: retriable and
 * permanent produce errors, brokers down.  It also runs consumer groups,
 * which lets us check the commit rules (contiguous offsets, nack, stale
 * acks after a rebalance) quickly.  Its limits (FACTS.md): no CreateTopics
 * (topics are made with rd_kafka_mock_topic_create, declare() is not
 * used), a first group join waits 3 s, and commits during a rebalance are
 * rejected.  Everything is checked against the real broker as well, in
 * tests/integration/test_transport_kafka.c.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "clock.h"
#include "log.h"
#include "transport.h"
#include "wq_test.h"

#define APIKEY_PRODUCE 0    /* Kafka protocol ApiKey of ProduceRequest */

/* The fake cluster and the client handle it lives on. */
struct mock {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    char brokers[256];
};

struct confirms {
    int n, ok, failed;
    int last_status;
    char last_reason[256];
};

static void
quiet_logs(void)
{
    /* librdkafka talks a lot to a mock; keep warnings and errors. */
    wq_log_setup("test", WQ_LOG_WARN, WQ_LOG_TEXT, NULL, NULL, 0);
}

static void
mock_start(struct mock *m, int nbrokers)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char errstr[256];

    quiet_logs();
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof errstr);
    assert_non_null(m->rk);
    m->mc = rd_kafka_mock_cluster_new(m->rk, nbrokers);
    assert_non_null(m->mc);
    snprintf(m->brokers, sizeof m->brokers, "%s",
        rd_kafka_mock_cluster_bootstraps(m->mc));
}

static void
mock_stop(struct mock *m)
{
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
}

static void
mock_topic(struct mock *m, const char *queue, int partitions)
{
    char topic[256];

    snprintf(topic, sizeof topic, "%s%s", WQ_QUEUE_PREFIX, queue);
    assert_int_equal(rd_kafka_mock_topic_create(m->mc, topic, partitions, 1),
        RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void
on_confirm(void *opaque, int status, const char *reason, void *user)
{
    struct confirms *c = user;

    (void)opaque;
    c->n++;
    if (status == 0) {
        c->ok++;
    } else {
        c->failed++;
        c->last_status = status;
        snprintf(c->last_reason, sizeof c->last_reason, "%s",
            reason != NULL ? reason : "(no reason)");
    }
}

static struct wq_transport_conf
conf_for(struct mock *m, struct confirms *c, const char *group,
    const char *const *props, size_t nprops)
{
    struct wq_transport_conf conf = {
        .kind = WQ_TRANSPORT_KAFKA,
        .client_id = "test-mock",
        .kafka_brokers = m->brokers,
        .kafka_group_id = group,
        .kafka_partitions = 1,
        .kafka_replication = 1,
        .kafka_linger_ms = 5,
        .kafka_session_timeout_ms = 6000,
        .kafka_props = props,
        .kafka_nprops = nprops,
        .on_confirm = on_confirm,
        .on_confirm_user = c,
    };
    return conf;
}

static wq_transport *
open_transport(const struct wq_transport_conf *conf)
{
    char err[WQ_ERRLEN] = "";
    wq_transport *t = NULL;
    int rv = wq_transport_kafka_ops.open(conf, &t, err, sizeof err);

    if (rv != 0)
        fail_msg("open: %s (%s)", wq_strerror(rv), err);
    return t;
}

static void
publish_n(wq_transport *t, const char *queue, int n)
{
    char err[WQ_ERRLEN] = "", key[32], body[64];

    for (int i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        int bl = snprintf(body, sizeof body, "body-%d", i);
        int rv = wq_transport_publish(t, queue, key, (size_t)kl, body,
            (size_t)bl, NULL, err, sizeof err);

        if (rv != 0)
            fail_msg("publish %d: %s (%s)", i, wq_strerror(rv), err);
    }
}

/* A retriable broker error (NOT_ENOUGH_REPLICAS) is retried by
 * librdkafka: the message is confirmed in the end. */
static void
test_transport_kafka_mock_retriable_error_confirmed(void **state)
{
    struct mock m;
    struct confirms c = { 0 };
    struct wq_transport_conf conf;
    wq_transport *t;
    char err[WQ_ERRLEN] = "";
    int rv;

    (void)state;
    mock_start(&m, 3);
    mock_topic(&m, "retry", 1);
    conf = conf_for(&m, &c, NULL, NULL, 0);
    t = open_transport(&conf);
    rd_kafka_mock_push_request_errors(m.mc, APIKEY_PRODUCE, 3,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    publish_n(t, "retry", 1);
    rv = wq_transport_flush(t, 20000, err, sizeof err);
    if (rv != 0)
        fail_msg("flush: %s (%s); last reason: %s", wq_strerror(rv), err,
            c.last_reason);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.ok, 1);
    wq_transport_close(t, 5000);
    mock_stop(&m);
}

/* A permanent broker error fails the message: on_confirm and flush say
 * so, and the producer goes on working afterwards. */
static void
test_transport_kafka_mock_permanent_error_refused(void **state)
{
    struct mock m;
    struct confirms c = { 0 };
    struct wq_transport_conf conf;
    wq_transport *t;
    char err[WQ_ERRLEN] = "";
    int rv;

    (void)state;
    mock_start(&m, 3);
    mock_topic(&m, "perm", 1);
    conf = conf_for(&m, &c, NULL, NULL, 0);
    t = open_transport(&conf);
    /* INVALID_RECORD: the broker refuses the batch, for good.  (Not
     * TOPIC_AUTHORIZATION_FAILED: librdkafka then fails later produce()
     * calls of that topic at once, which would end this test early.) */
    rd_kafka_mock_push_request_errors(m.mc, APIKEY_PRODUCE, 1,
        RD_KAFKA_RESP_ERR_INVALID_RECORD);
    publish_n(t, "perm", 1);
    rv = wq_transport_flush(t, 20000, err, sizeof err);
    assert_int_equal(rv, WQ_ENACK);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.failed, 1);
    assert_int_equal(c.last_status, WQ_ENACK);
    if (strstr(c.last_reason, "workq.perm") == NULL)
        fail_msg("reason does not name the topic: %s", c.last_reason);

    /* The failure is reported once; the next batch is clean. */
    publish_n(t, "perm", 1);
    rv = wq_transport_flush(t, 20000, err, sizeof err);
    if (rv != 0)
        fail_msg("second flush: %s (%s)", wq_strerror(rv), err);
    assert_int_equal(c.ok, 1);
    wq_transport_close(t, 5000);
    mock_stop(&m);
}

/* Every broker down: the message times out (message.timeout.ms from
 * kafka_props) and is reported as failed, never as confirmed. */
static void
test_transport_kafka_mock_brokers_down_fails(void **state)
{
    static const char *const props[] = { "message.timeout.ms=1500" };
    struct mock m;
    struct confirms c = { 0 };
    struct wq_transport_conf conf;
    wq_transport *t;
    char err[WQ_ERRLEN] = "";
    int rv;

    (void)state;
    mock_start(&m, 3);
    mock_topic(&m, "down", 1);
    rd_kafka_mock_broker_set_down(m.mc, -1);
    conf = conf_for(&m, &c, NULL, props, 1);
    t = open_transport(&conf);
    publish_n(t, "down", 3);
    rv = wq_transport_flush(t, 15000, err, sizeof err);
    assert_int_equal(rv, WQ_ENACK);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.ok, 0);
    assert_int_equal(c.last_status, WQ_ETIMEOUT);
    wq_transport_close(t, 1000);
    mock_stop(&m);
}

/*
 * close() with messages still unconfirmed (brokers down, message timeout
 * 30 s): they are purged, and on_confirm still hears of each exactly once,
 * as WQ_ECLOSED, before close returns.
 */
static void
test_transport_kafka_mock_close_reports_unconfirmed(void **state)
{
    struct mock m;
    struct confirms c = { 0 };
    struct wq_transport_conf conf;
    wq_transport *t;
    char err[WQ_ERRLEN] = "";
    uint64_t t0;

    (void)state;
    mock_start(&m, 1);
    mock_topic(&m, "closing", 1);
    rd_kafka_mock_broker_set_down(m.mc, -1);
    conf = conf_for(&m, &c, NULL, NULL, 0);
    t = open_transport(&conf);
    publish_n(t, "closing", 5);
    assert_int_equal(wq_transport_flush(t, 300, err, sizeof err),
        WQ_ETIMEOUT);
    assert_int_equal(c.n, 0);
    t0 = wq_clock_mono_ns();
    wq_transport_close(t, 500);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.failed, 5);
    assert_int_equal(c.last_status, WQ_ECLOSED);
    /* Bounded by the timeout plus the purge drain, not by the 30 s. */
    assert_true(wq_clock_mono_ns() - t0 < 5000000000u);
    mock_stop(&m);
}

/* A tiny producer queue: publish waits for room instead of dropping. */
static void
test_transport_kafka_mock_queue_full_never_drops(void **state)
{
    static const char *const props[] = { "queue.buffering.max.messages=5" };
    struct mock m;
    struct confirms c = { 0 };
    struct wq_transport_conf conf;
    wq_transport *t;
    char err[WQ_ERRLEN] = "";
    int rv;

    (void)state;
    mock_start(&m, 1);
    mock_topic(&m, "full", 1);
    conf = conf_for(&m, &c, NULL, props, 1);
    t = open_transport(&conf);
    publish_n(t, "full", 300);
    rv = wq_transport_flush(t, 20000, err, sizeof err);
    if (rv != 0)
        fail_msg("flush: %s (%s)", wq_strerror(rv), err);
    assert_int_equal(c.ok, 300);
    wq_transport_close(t, 5000);
    mock_stop(&m);
}

/* Polls until a delivery comes or `ms` pass; NULL on timeout. */
static wq_delivery *
poll_one(wq_transport *t, int ms)
{
    uint64_t end = wq_clock_mono_ns() + (uint64_t)ms * 1000000u;
    char err[WQ_ERRLEN] = "";
    wq_delivery *d;
    int rv;

    do {
        rv = wq_transport_poll(t, &d, 200, err, sizeof err);
        if (rv == 0)
            return d;
        if (rv != WQ_EAGAIN)
            fail_msg("poll: %s (%s)", wq_strerror(rv), err);
    } while (wq_clock_ms_until(end) > 0);
    return NULL;
}

static void
subscribe1(wq_transport *t, const char *queue)
{
    char err[WQ_ERRLEN] = "";
    const char *qs[] = { queue };
    int rv = wq_transport_subscribe(t, qs, 1, err, sizeof err);

    if (rv != 0)
        fail_msg("subscribe: %s (%s)", wq_strerror(rv), err);
}

/*
 * Offsets 0..9 of one partition: ack 0-4 and 7, nack 8, leave 5, 6, 9
 * held.  After close, the group resumes at 5: the commit stopped at the
 * first unfinished offset, 7 is read again, 6 is not skipped.
 */
static void
test_transport_kafka_mock_commit_stops_at_gap(void **state)
{
    struct mock m;
    struct confirms c = { 0 };
    struct wq_transport_conf conf;
    wq_transport *t;
    wq_delivery *d[10];
    char err[WQ_ERRLEN] = "";
    const char *group = wq_test_unique("g-gap");

    (void)state;
    mock_start(&m, 1);
    mock_topic(&m, "gap", 1);
    conf = conf_for(&m, &c, group, NULL, 0);
    t = open_transport(&conf);
    publish_n(t, "gap", 10);
    assert_int_equal(wq_transport_flush(t, 10000, err, sizeof err), 0);
    subscribe1(t, "gap");
    for (int i = 0; i < 10; i++) {
        d[i] = poll_one(t, 30000);
        if (d[i] == NULL)
            fail_msg("delivery %d did not come", i);
        assert_int_equal(d[i]->offset, i);
        assert_string_equal(d[i]->queue, "gap");
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(wq_transport_ack(t, d[i], err, sizeof err), 0);
    assert_int_equal(wq_transport_ack(t, d[7], err, sizeof err), 0);
    assert_int_equal(wq_transport_nack(t, d[8], err, sizeof err), 0);
    wq_transport_close(t, 5000);

    t = open_transport(&conf);
    subscribe1(t, "gap");
    for (int i = 5; i < 10; i++) {
        wq_delivery *e = poll_one(t, 30000);

        if (e == NULL)
            fail_msg("redelivery of offset %d did not come", i);
        assert_int_equal(e->offset, i);
        assert_int_equal(wq_transport_ack(t, e, err, sizeof err), 0);
    }
    wq_transport_close(t, 5000);
    mock_stop(&m);
}

/* The offset committed for `partition` of `queue` in `group`; -1 none. */
static int64_t
committed_offset(struct mock *m, const char *group, const char *queue,
    int32_t partition)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l;
    char errstr[256], topic[256];
    rd_kafka_t *rk;
    int64_t off;

    snprintf(topic, sizeof topic, "%s%s", WQ_QUEUE_PREFIX, queue);
    assert_int_equal(rd_kafka_conf_set(c, "bootstrap.servers", m->brokers,
        errstr, sizeof errstr), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(c, "group.id", group, errstr,
        sizeof errstr), RD_KAFKA_CONF_OK);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, errstr, sizeof errstr);
    assert_non_null(rk);
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    assert_int_equal(rd_kafka_committed(rk, l, 10000),
        RD_KAFKA_RESP_ERR_NO_ERROR);
    off = l->elems[0].offset < 0 ? -1 : l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return off;
}

/*
 * Consumer A holds 10 deliveries of two partitions; B joins the group and
 * takes partition X away from A, A keeps (eager: gets back) partition Y.
 *  - X: A's acks are stale; they succeed and commit nothing.
 *  - eager: Y was revoked and assigned again, and A re-reads offsets 0..
 *    of Y as new deliveries, held unacked.  A's acks of its old Y
 *    deliveries, same offsets, are stale too and must not finish the new
 *    ones: nothing is committed past 0.
 *  - cooperative: Y was never revoked, the old Y deliveries are valid and
 *    their acks commit offset 5.
 */
static void
stale_ack_after_revoke(const char *strategy, int eager)
{
    char prop[128];
    const char *props[] = { prop };
    struct mock m;
    struct confirms c = { 0 };
    struct wq_transport_conf conf;
    wq_transport *a, *b;
    wq_delivery *held[10], *d = NULL, *x;
    char err[WQ_ERRLEN] = "", topic[64], body[16], errstr[256];
    const char *group = wq_test_unique("g-stale");
    rd_kafka_conf_t *pc;
    rd_kafka_t *p;
    uint64_t end;
    int32_t taken, kept;
    int again = 0;
    int64_t cx, cy;

    snprintf(prop, sizeof prop, "partition.assignment.strategy=%s",
        strategy);
    mock_start(&m, 1);
    mock_topic(&m, "stale", 2);
    /* Five messages in each partition, produced straight to them. */
    snprintf(topic, sizeof topic, "%sstale", WQ_QUEUE_PREFIX);
    pc = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(pc, "bootstrap.servers", m.brokers,
        errstr, sizeof errstr), RD_KAFKA_CONF_OK);
    p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof errstr);
    assert_non_null(p);
    for (int i = 0; i < 10; i++) {
        snprintf(body, sizeof body, "m%d", i);
        assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_PARTITION(i % 2), RD_KAFKA_V_VALUE(body, strlen(body)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    assert_int_equal(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);

    conf = conf_for(&m, &c, group, props, 1);
    a = open_transport(&conf);
    subscribe1(a, "stale");
    for (int i = 0; i < 10; i++)
        if ((held[i] = poll_one(a, 30000)) == NULL)
            fail_msg("A: delivery %d did not come", i);

    b = open_transport(&conf);
    subscribe1(b, "stale");
    /* Both must poll for the rebalance to go through; A holds what it
     * reads again (after an eager rebalance). */
    end = wq_clock_mono_ns() + 60000000000u;
    while (d == NULL && wq_clock_ms_until(end) > 0) {
        if ((x = poll_one(a, 200)) != NULL)
            again++;
        d = poll_one(b, 200);
    }
    if (d == NULL)
        fail_msg("B got no partition within 60 s (%s)", strategy);
    taken = d->partition;
    kept = 1 - taken;
    /* Give A time to re-read Y if it is going to. */
    end = wq_clock_mono_ns() + 3000000000u;
    while (wq_clock_ms_until(end) > 0)
        if ((x = poll_one(a, 200)) != NULL) {
            assert_int_equal(x->partition, kept);
            again++;
        }
    if (eager && again == 0)
        fail_msg("eager: A did not re-read partition %d", (int)kept);
    if (!eager && again != 0)
        fail_msg("cooperative: A re-read %d message(s)", again);

    /* Stale or not, every ack succeeds. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(wq_transport_ack(a, held[i], err, sizeof err), 0);
    wq_transport_close(a, 5000);    /* what A re-read stays unacked */
    wq_transport_close(b, 5000);    /* B's first delivery too */

    cx = committed_offset(&m, group, "stale", taken);
    cy = committed_offset(&m, group, "stale", kept);
    if (cx > 0)
        fail_msg("%s: stale acks committed partition %d to %" PRId64,
            strategy, (int)taken, cx);
    if (eager && cy > 0)
        fail_msg("%s: stale acks committed re-read partition %d to %"
            PRId64, strategy, (int)kept, cy);
    if (!eager && cy != 5)
        fail_msg("%s: kept partition %d committed to %" PRId64 ", not 5",
            strategy, (int)kept, cy);
    mock_stop(&m);
}

static void
test_transport_kafka_mock_stale_ack_eager(void **state)
{
    (void)state;
    stale_ack_after_revoke("range", 1);
}

static void
test_transport_kafka_mock_stale_ack_cooperative(void **state)
{
    (void)state;
    stale_ack_after_revoke("cooperative-sticky", 0);
}

static void *
wake_later(void *arg)
{
    nanosleep(&(struct timespec){ 0, 300000000L }, NULL);
    wq_transport_wakeup(arg);
    return NULL;
}

/*
 * wakeup(): before subscribe it makes the next poll return WQ_EAGAIN at
 * once; from another thread it ends a poll blocked for 20 s; afterwards
 * messages flow as before.
 */
static void
test_transport_kafka_mock_wakeup(void **state)
{
    struct mock m;
    struct confirms c = { 0 };
    struct wq_transport_conf conf;
    wq_transport *t;
    wq_delivery *d;
    pthread_t th;
    char err[WQ_ERRLEN] = "";
    uint64_t t0, ms;
    int rv;

    (void)state;
    mock_start(&m, 1);
    mock_topic(&m, "wake", 1);
    conf = conf_for(&m, &c, wq_test_unique("g-wake"), NULL, 0);
    t = open_transport(&conf);

    wq_transport_wakeup(t);
    subscribe1(t, "wake");
    t0 = wq_clock_mono_ns();
    assert_int_equal(wq_transport_poll(t, &d, 20000, err, sizeof err),
        WQ_EAGAIN);
    assert_true(wq_clock_mono_ns() - t0 < 1000000000u);

    assert_int_equal(pthread_create(&th, NULL, wake_later, t), 0);
    t0 = wq_clock_mono_ns();
    rv = wq_transport_poll(t, &d, 20000, err, sizeof err);
    ms = (wq_clock_mono_ns() - t0) / 1000000u;
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(rv, WQ_EAGAIN);
    if (ms < 250 || ms > 3000)
        fail_msg("poll returned after %" PRIu64 " ms, wakeup came at 300",
            ms);

    /* One wakeup, one early return: the next poll waits and delivers. */
    publish_n(t, "wake", 1);
    assert_int_equal(wq_transport_flush(t, 10000, err, sizeof err), 0);
    if ((d = poll_one(t, 30000)) == NULL)
        fail_msg("no delivery after the wakeups");
    assert_int_equal(wq_transport_ack(t, d, err, sizeof err), 0);
    wq_transport_close(t, 5000);
    mock_stop(&m);
}

/* A bad property is rejected at open, with the property named. */
static void
test_transport_kafka_mock_bad_property(void **state)
{
    static const char *const props[] = { "no.such.property=1" };
    static const char *const noeq[] = { "linger.ms" };
    struct mock m;
    struct confirms c = { 0 };
    struct wq_transport_conf conf;
    wq_transport *t = NULL;
    char err[WQ_ERRLEN] = "";

    (void)state;
    mock_start(&m, 1);
    conf = conf_for(&m, &c, NULL, props, 1);
    assert_int_equal(wq_transport_kafka_ops.open(&conf, &t, err, sizeof err),
        WQ_ECONFIG);
    assert_null(t);
    assert_non_null(strstr(err, "no.such.property"));
    conf = conf_for(&m, &c, NULL, noeq, 1);
    assert_int_equal(wq_transport_kafka_ops.open(&conf, &t, err, sizeof err),
        WQ_ECONFIG);
    mock_stop(&m);
}

/*
 * Each property goes only to the client it applies to: a worker's
 * consumer properties (queued.max.messages.kbytes, fetch.message.max.bytes)
 * and a client's producer one (message.timeout.ms) make no CONFWARN line
 * when the producer (open) and the consumer (subscribe) are created.
 */
static void
test_transport_kafka_mock_no_confwarn(void **state)
{
    static const char *const props[] = {
        "queued.max.messages.kbytes=1024", "fetch.message.max.bytes=65536",
        "message.timeout.ms=5000", "socket.keepalive.enable=true",
    };
    const char *queues[] = { "confwarn" };
    struct mock m;
    struct confirms c = { 0 };
    struct wq_transport_conf conf;
    wq_transport *t;
    wq_delivery *d;
    char err[WQ_ERRLEN] = "", log[65536];
    FILE *f;
    size_t n;

    (void)state;
    mock_start(&m, 1);
    mock_topic(&m, "confwarn", 1);
    /* librdkafka's warnings and notices, into a file we read back */
    assert_int_equal(wq_log_setup("test", WQ_LOG_INFO, WQ_LOG_TEXT,
        "kafka.log", err, sizeof err), 0);
    conf = conf_for(&m, &c, "confwarn-group", props, WQ_ARRAY_LEN(props));
    t = open_transport(&conf);
    assert_int_equal(wq_transport_subscribe(t, queues, 1, err, sizeof err),
        0);
    publish_n(t, "confwarn", 1);
    assert_int_equal(wq_transport_flush(t, 5000, err, sizeof err), 0);
    (void)wq_transport_poll(t, &d, 200, err, sizeof err);
    wq_transport_close(t, 1000);
    mock_stop(&m);
    assert_non_null(f = fopen("kafka.log", "r"));
    n = fread(log, 1, sizeof log - 1, f);
    log[n] = '\0';
    fclose(f);
    if (strstr(log, "CONFWARN") != NULL)
        fail_msg("a property went to the wrong client:\n%s", log);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_transport_kafka_mock_retriable_error_confirmed),
    cmocka_unit_test(test_transport_kafka_mock_permanent_error_refused),
    cmocka_unit_test(test_transport_kafka_mock_brokers_down_fails),
    cmocka_unit_test(test_transport_kafka_mock_close_reports_unconfirmed),
    cmocka_unit_test(test_transport_kafka_mock_queue_full_never_drops),
    cmocka_unit_test(test_transport_kafka_mock_commit_stops_at_gap),
    cmocka_unit_test(test_transport_kafka_mock_stale_ack_eager),
    cmocka_unit_test(test_transport_kafka_mock_stale_ack_cooperative),
    cmocka_unit_test(test_transport_kafka_mock_wakeup),
    cmocka_unit_test(test_transport_kafka_mock_bad_property),
    cmocka_unit_test(test_transport_kafka_mock_no_confwarn),
};

WQ_TEST_MAIN("transport_kafka_mock", tests)
