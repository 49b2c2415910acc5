/*
 * wq_test_broker.c - raw consumers and queue clean-up for integration
 * tests (see wq_test_broker.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

#include "clock.h"
#include "uuid.h"
#include "wq_test.h"
#include "wq_test_broker.h"

#define MAX_FORGET 32

struct wq_test_consumer {
    int kind;
    wq_transport *t;
    char key[WQ_KEY_MAX + 1];
};

static struct {
    int kind;
    char queue[WQ_QUEUE_MAX + 1];
} forget[MAX_FORGET];
static int nforget;
static pid_t forget_pid;

const char *
wq_test_kind_name(int kind)
{
    return kind == WQ_TRANSPORT_KAFKA ? "kafka" : "rabbitmq";
}

void
wq_test_transport_conf(int kind, struct wq_transport_conf *tc)
{
    memset(tc, 0, sizeof *tc);
    tc->kind = (enum wq_transport_kind)kind;
    tc->client_id = "workq-test";
    tc->kafka_brokers = WQ_TEST_KAFKA_BROKERS();
    tc->kafka_partitions = 4;
    tc->kafka_replication = 1;
    tc->kafka_linger_ms = 1;
    tc->kafka_session_timeout_ms = 6000;
    tc->amqp_url = WQ_TEST_AMQP_URL();
    tc->amqp_quorum = 1;
    tc->amqp_prefetch = 256;
    tc->amqp_heartbeat_s = 0;
}

size_t
wq_test_env_for(int kind, const char *conninfo, const char **env,
    size_t max)
{
    static char buf[4][1200];
    size_t n = 0;

    snprintf(buf[0], sizeof buf[0], "WORKQ_TRANSPORT=%s",
        wq_test_kind_name(kind));
    snprintf(buf[1], sizeof buf[1], "WORKQ_KAFKA_BROKERS=%s",
        WQ_TEST_KAFKA_BROKERS());
    snprintf(buf[2], sizeof buf[2], "WORKQ_RABBITMQ_URL=%s",
        WQ_TEST_AMQP_URL());
    snprintf(buf[3], sizeof buf[3], "WORKQ_POSTGRES_CONNINFO=%s",
        conninfo != NULL ? conninfo : WQ_TEST_PG_CONNINFO());
    for (int i = 0; i < 4 && n + 1 < max; i++)
        env[n++] = buf[i];
    env[n] = NULL;
    return n;
}

/* --- clean-up ------------------------------------------------------------- */

static void
delete_amqp(const char *queue)
{
    char url[512], name[sizeof WQ_QUEUE_PREFIX + WQ_QUEUE_MAX];
    struct amqp_connection_info ci;
    struct timeval tv = { 5, 0 };
    amqp_connection_state_t c;
    amqp_socket_t *s;

    snprintf(url, sizeof url, "%s", WQ_TEST_AMQP_URL());
    amqp_default_connection_info(&ci);
    if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK)
        return;
    if (ci.vhost == NULL || ci.vhost[0] == '\0')
        ci.vhost = (char *)"/";
    c = amqp_new_connection();
    if ((s = amqp_tcp_socket_new(c)) == NULL
        || amqp_socket_open_noblock(s, ci.host, ci.port, &tv) != 0
        || amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
            ci.user, ci.password).reply_type != AMQP_RESPONSE_NORMAL) {
        amqp_destroy_connection(c);
        return;
    }
    if (amqp_channel_open(c, 1) != NULL) {
        snprintf(name, sizeof name, "%s%s", WQ_QUEUE_PREFIX, queue);
        amqp_queue_delete(c, 1, amqp_cstring_bytes(name), 0, 0);
        amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    }
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

static void
delete_kafka(const char *const *queues, size_t n)
{
    char errstr[256], name[sizeof WQ_QUEUE_PREFIX + WQ_QUEUE_MAX];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_DeleteTopic_t *dt[MAX_FORGET];
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    rd_kafka_t *rk;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", WQ_TEST_KAFKA_BROKERS(),
        errstr, sizeof errstr) != RD_KAFKA_CONF_OK
        || (rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
            sizeof errstr)) == NULL) {
        rd_kafka_conf_destroy(conf);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%s", WQ_QUEUE_PREFIX, queues[i]);
        dt[i] = rd_kafka_DeleteTopic_new(name);
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, dt, n, NULL, q);
    if ((ev = rd_kafka_queue_poll(q, 10000)) != NULL)
        rd_kafka_event_destroy(ev);
    rd_kafka_DeleteTopic_destroy_array(dt, n);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

static void
forget_all(void)
{
    const char *kq[MAX_FORGET];
    size_t nk = 0;

    if (getpid() != forget_pid)
        return;
    for (int i = 0; i < nforget; i++) {
        if (forget[i].kind == WQ_TRANSPORT_KAFKA)
            kq[nk++] = forget[i].queue;
        else
            delete_amqp(forget[i].queue);
    }
    if (nk > 0)
        delete_kafka(kq, nk);
    nforget = 0;
}

const char *
wq_test_queue(int kind, const char *prefix)
{
    const char *q = wq_test_unique(prefix);

    wq_test_forget_queue(kind, q);
    return q;
}

void
wq_test_delete_queue(int kind, const char *queue)
{
    if (kind == WQ_TRANSPORT_KAFKA)
        delete_kafka(&queue, 1);
    else
        delete_amqp(queue);
}

void
wq_test_forget_queue(int kind, const char *queue)
{
    if (nforget == 0 || forget_pid != getpid()) {
        nforget = 0;
        forget_pid = getpid();
        atexit(forget_all);
    }
    if (nforget == MAX_FORGET)
        return;
    forget[nforget].kind = kind;
    snprintf(forget[nforget].queue, sizeof forget[nforget].queue, "%s",
        queue);
    nforget++;
}

/* --- consuming ------------------------------------------------------------ */

struct wq_test_consumer *
wq_test_consumer_open(int kind, const char *queue)
{
    struct wq_test_consumer *c = calloc(1, sizeof *c);
    struct wq_transport_conf tc;
    char err[WQ_ERRLEN];
    const char *queues[1] = { queue };

    assert_non_null(c);
    c->kind = kind;
    wq_test_transport_conf(kind, &tc);
    /* a group of its own: this consumer reads the topic from the start */
    tc.kafka_group_id = wq_test_unique("workq-test-group");
    if (wq_transport_open(&tc, &c->t, err, sizeof err) != 0)
        fail_msg("cannot reach %s: %s; start it with `tests/services/ctl "
            "start %s`", wq_test_kind_name(kind), err,
            kind == WQ_TRANSPORT_KAFKA ? "kafka" : "rabbitmq");
    if (wq_transport_subscribe(c->t, queues, 1, err, sizeof err) != 0)
        fail_msg("subscribe to %s: %s", queue, err);
    return c;
}

size_t
wq_test_consumer_recv(struct wq_test_consumer *c, struct wq_envelope *out,
    size_t n, int timeout_ms)
{
    uint64_t deadline = wq_clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    char err[WQ_ERRLEN];
    wq_delivery *d;
    size_t got = 0;
    int rc, left;

    while (got < n && (left = wq_clock_ms_until(deadline)) > 0) {
        rc = wq_transport_poll(c->t, &d, left > 500 ? 500 : left, err,
            sizeof err);
        if (rc == WQ_EAGAIN)
            continue;
        if (rc != 0)
            fail_msg("poll: %s", err);
        if (wq_envelope_decode(d->body, d->len, &out[got], err,
            sizeof err) != 0)
            fail_msg("a message on %s does not decode: %s", d->queue, err);
        c->key[0] = '\0';
        if (d->key != NULL && d->keylen < sizeof c->key) {
            memcpy(c->key, d->key, d->keylen);
            c->key[d->keylen] = '\0';
        }
        if (wq_transport_ack(c->t, d, err, sizeof err) != 0)
            fail_msg("ack: %s", err);
        got++;
    }
    return got;
}

const char *
wq_test_consumer_last_key(const struct wq_test_consumer *c)
{
    return c->kind == WQ_TRANSPORT_KAFKA ? c->key : NULL;
}

void
wq_test_consumer_close(struct wq_test_consumer *c)
{
    if (c == NULL)
        return;
    wq_transport_close(c->t, 5000);
    free(c);
}

void
wq_test_expect_only(struct wq_test_consumer *c, const char *id,
    int quiet_ms)
{
    struct wq_envelope env[4];
    char text[WQ_UUID_STRLEN];
    size_t n;
    int seen = 0;

    /* the sentinel may take a while (a Kafka group joins first) */
    n = wq_test_consumer_recv(c, env, 1, 60000);
    for (;;) {
        for (size_t i = 0; i < n; i++) {
            wq_uuid_format(env[i].id, text);
            if (strcmp(text, id) == 0 && !seen) {
                seen = 1;
            } else {
                char type[WQ_TYPE_MAX + 1];

                snprintf(type, sizeof type, "%s", env[i].type);
                wq_envelope_free(&env[i]);
                fail_msg("a message was published that should not have "
                    "been: id %s, type '%s'", text, type);
            }
            wq_envelope_free(&env[i]);
        }
        if (!seen)
            fail_msg("the expected message %s did not arrive", id);
        if ((n = wq_test_consumer_recv(c, env, 1, quiet_ms)) == 0)
            break;
    }
}
