/*
 * test_roundtrip.c - an envelope's confirmed round trip through each real
 * broker: encode, publish with broker confirmation, consume, decode to an
 * equal envelope, ack, and then nothing is left on the queue for a new
 * consumer of the same queue (RabbitMQ) or consumer group (Kafka).
 */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "envelope.h"
#include "transport.h"
#include "wq_test.h"

#define N 200

struct confirms {
    int ok, failed;
};

static void
on_confirm(void *opaque, int status, const char *reason, void *user)
{
    struct confirms *c = user;

    (void)opaque;
    if (status == 0)
        c->ok++;
    else {
        c->failed++;
        fprintf(stderr, "refused: %s\n", reason ? reason : "?");
    }
}

static void
conf_for(int kind, const char *group, struct confirms *c,
    struct wq_transport_conf *tc)
{
    memset(tc, 0, sizeof *tc);
    tc->kind = kind;
    tc->client_id = "test_roundtrip";
    tc->kafka_brokers = WQ_TEST_KAFKA_BROKERS();
    tc->kafka_group_id = group;
    tc->kafka_partitions = 2;
    tc->kafka_replication = 1;
    tc->kafka_linger_ms = 1;
    tc->kafka_session_timeout_ms = 6000;
    tc->amqp_url = WQ_TEST_AMQP_URL();
    tc->amqp_quorum = 1;
    tc->amqp_prefetch = 50;
    tc->amqp_heartbeat_s = 30;
    tc->on_confirm = on_confirm;
    tc->on_confirm_user = c;
}

static wq_transport *
open_or_fail(const struct wq_transport_conf *tc)
{
    char err[WQ_ERRLEN];
    wq_transport *t = NULL;

    if (wq_transport_open(tc, &t, err, sizeof err) != 0)
        fail_msg("cannot open %s transport: %s; start the servers with "
            "`tests/services/ctl start`", tc->kind == WQ_TRANSPORT_KAFKA
            ? "kafka" : "rabbitmq", err);
    return t;
}

static void
roundtrip(int kind)
{
    const char *queue = wq_test_unique("roundtrip");
    struct wq_envelope sent[N], got;
    struct wq_header hdr[2] = {
        { "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
        { "tenant", "acme" },
    };
    struct wq_transport_conf tc;
    struct confirms c = { 0, 0 };
    struct wq_buf buf = { 0 };
    char err[WQ_ERRLEN], payload[64];
    const char *queues[1] = { queue };
    int seen[N] = { 0 }, received = 0;
    wq_transport *t;
    wq_delivery *d;
    uint64_t deadline;

    conf_for(kind, queue, &c, &tc);
    t = open_or_fail(&tc);
    assert_int_equal(wq_transport_declare(t, queue, err, sizeof err), 0);
    for (int i = 0; i < N; i++) {
        int n = snprintf(payload, sizeof payload, "payload-%d-\001-x", i);
        payload[n - 2] = '\0';     /* binary payloads survive, NULs too */
        assert_int_equal(wq_envelope_init(&sent[i], queue, "echo", NULL,
            payload, (size_t)n, err, sizeof err), 0);
        sent[i].headers = hdr;
        sent[i].nheaders = 2;
        sent[i].max_attempts = 3;
        wq_buf_reset(&buf);
        assert_int_equal(wq_envelope_encode(&sent[i], &buf, err,
            sizeof err), 0);
        assert_int_equal(wq_transport_publish(t, queue, sent[i].key,
            strlen(sent[i].key), buf.data, buf.len, NULL, err, sizeof err), 0);
    }
    assert_int_equal(wq_transport_flush(t, 30000, err, sizeof err), 0);
    assert_int_equal(c.ok, N);
    assert_int_equal(c.failed, 0);

    assert_int_equal(wq_transport_subscribe(t, queues, 1, err, sizeof err),
        0);
    deadline = wq_clock_mono_ns() + 60ull * 1000000000u;
    while (received < N && wq_clock_mono_ns() < deadline) {
        int rc = wq_transport_poll(t, &d, 500, err, sizeof err);
        int match = -1;

        if (rc == WQ_EAGAIN)
            continue;
        assert_int_equal(rc, 0);
        assert_int_equal(wq_envelope_decode(d->body, d->len, &got, err,
            sizeof err), 0);
        assert_string_equal(d->queue, queue);
        for (int i = 0; i < N; i++)
            if (memcmp(sent[i].id, got.id, 16) == 0)
                match = i;
        assert_true(match >= 0);
        assert_false(seen[match]);
        seen[match] = 1;
        /* headers are the caller's memory in sent[]: compare by value */
        assert_true(wq_envelope_equal(&sent[match], &got));
        if (kind == WQ_TRANSPORT_KAFKA) {
            assert_int_equal(d->keylen, strlen(sent[match].key));
            assert_memory_equal(d->key, sent[match].key, d->keylen);
        }
        wq_envelope_free(&got);
        assert_int_equal(wq_transport_ack(t, d, err, sizeof err), 0);
        received++;
    }
    assert_int_equal(received, N);
    wq_transport_close(t, 10000);

    /* a new consumer of the same queue or group finds nothing left */
    t = open_or_fail(&tc);
    assert_int_equal(wq_transport_subscribe(t, queues, 1, err, sizeof err),
        0);
    deadline = wq_clock_mono_ns() + 8ull * 1000000000u;
    while (wq_clock_mono_ns() < deadline) {
        int rc = wq_transport_poll(t, &d, 500, err, sizeof err);

        if (rc == 0)
            fail_msg("a message was left on %s after all were acked", queue);
        assert_int_equal(rc, WQ_EAGAIN);
    }
    wq_transport_close(t, 5000);
    for (int i = 0; i < N; i++) {
        sent[i].headers = NULL;
        sent[i].nheaders = 0;
        wq_envelope_free(&sent[i]);
    }
    wq_buf_free(&buf);
}

static void
test_roundtrip_rabbitmq(void **state)
{
    (void)state;
    roundtrip(WQ_TRANSPORT_RABBITMQ);
}

static void
test_roundtrip_kafka(void **state)
{
    (void)state;
    roundtrip(WQ_TRANSPORT_KAFKA);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_roundtrip_rabbitmq),
    cmocka_unit_test(test_roundtrip_kafka),
};

WQ_TEST_MAIN("roundtrip", tests)
