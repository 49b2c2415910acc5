/*
 * bench_submit.c - throughput and latency of the C client API
 * (shared/workq.h) against a real broker: a benchmark, run by `make
 * bench` (tests/bench/run.sh), never a test.
 *
 *   bench_submit [-t kafka|rabbitmq] [-n COUNT] [-b BATCH] [-s BYTES]
 *                [-l SINGLES] [-Q quorum|classic] [-q QUEUE] [-R on|off]
 *   bench_submit --cleanup -t KIND QUEUE...
 *
 * Batched: COUNT tasks of BYTES payload through wq_client_submit_async
 * with a flush every BATCH tasks (so BATCH messages are in flight at
 * once), timed from the first submit to the last confirmation.  Singles:
 * SINGLES tasks one at a time with wq_client_submit (each waits for its
 * confirmation): the latency percentiles of a blocking submit.  -R off
 * turns receipts off (producer.receipts: no PostgreSQL on the submit
 * path), for measuring what they cost; the default is on, as shipped.  The
 * output is one line per measurement, "key=value" words, for run.sh.
 *
 * It uses the public header only, as a user's program would, plus the
 * broker libraries for --cleanup (delete the queues or topics it made).
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

#include "workq.h"

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *
env_or(const char *name, const char *def)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : def;
}

static void
die(const char *what, const char *err)
{
    fprintf(stderr, "bench_submit: %s: %s\n", what, err);
    exit(1);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static long failures, untracked;

static void
on_done(void *user, const struct wq_client_result *r)
{
    (void)user;
    if (r->status != 0 && failures++ == 0)
        fprintf(stderr, "bench_submit: first failure: %s\n", r->error);
    /* receipts on, but not recorded (an unmigrated database?): the run
     * measures nothing of their cost */
    if (r->status == 0 && r->untracked && untracked++ == 0)
        fprintf(stderr, "bench_submit: receipts not recorded (is the "
            "database migrated? `workq migrate`)\n");
}

/* --- clean-up ------------------------------------------------------------- */

static void
cleanup_amqp(const char *url, char **queues, int n)
{
    char buf[512], name[300];
    struct amqp_connection_info ci;
    struct timeval tv = { 5, 0 };
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);

    snprintf(buf, sizeof buf, "%s", url);
    amqp_default_connection_info(&ci);
    if (amqp_parse_url(buf, &ci) != AMQP_STATUS_OK)
        die("cleanup", "bad AMQP URL");
    if (ci.vhost == NULL || ci.vhost[0] == '\0')
        ci.vhost = (char *)"/";
    if (amqp_socket_open_noblock(s, ci.host, ci.port, &tv) != 0
        || amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
            ci.user, ci.password).reply_type != AMQP_RESPONSE_NORMAL
        || amqp_channel_open(c, 1) == NULL)
        die("cleanup", "cannot connect to RabbitMQ");
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "workq.%s", queues[i]);
        amqp_queue_delete(c, 1, amqp_cstring_bytes(name), 0, 0);
    }
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

static void
cleanup_kafka(const char *brokers, char **queues, int n)
{
    char errstr[256], name[300];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_DeleteTopic_t **dt = calloc((size_t)n, sizeof *dt);
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    rd_kafka_t *rk;

    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
        sizeof errstr);
    if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
        sizeof errstr)) == NULL)
        die("cleanup", errstr);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "workq.%s", queues[i]);
        dt[i] = rd_kafka_DeleteTopic_new(name);
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, dt, (size_t)n, NULL, q);
    if ((ev = rd_kafka_queue_poll(q, 15000)) != NULL)
        rd_kafka_event_destroy(ev);
    rd_kafka_DeleteTopic_destroy_array(dt, (size_t)n);
    free(dt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

/* --- measurements --------------------------------------------------------- */

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "cleanup", no_argument, NULL, 'C' },
        { NULL, 0, NULL, 0 },
    };
    const char *transport = "kafka", *queue_type = "quorum", *queue = NULL;
    long count = 100000, batch = 10000, singles = 500, size = 100;
    int ch, cleanup = 0, receipts = 1;
    char qbuf[64], err[WQ_ERRLEN], id[WQ_CLIENT_ID_LEN], *payload;
    struct wq_client_conf conf;
    struct wq_client_task t;
    double t0, dt, *lat;
    wq_client *c;

    while ((ch = getopt_long(argc, argv, "t:n:b:s:l:Q:q:R:", opts, NULL))
        != -1) {
        switch (ch) {
        case 't': transport = optarg; break;
        case 'n': count = atol(optarg); break;
        case 'b': batch = atol(optarg); break;
        case 's': size = atol(optarg); break;
        case 'l': singles = atol(optarg); break;
        case 'Q': queue_type = optarg; break;
        case 'q': queue = optarg; break;
        case 'R': receipts = strcmp(optarg, "off") != 0; break;
        case 'C': cleanup = 1; break;
        default:
            fprintf(stderr, "usage: bench_submit [-t kafka|rabbitmq] [-n N] "
                "[-b BATCH] [-s BYTES] [-l SINGLES] [-Q quorum|classic] "
                "[-q QUEUE] [-R on|off]\n       bench_submit --cleanup -t KIND QUEUE...\n");
            return 64;
        }
    }
    if (cleanup) {
        if (strcmp(transport, "kafka") == 0)
            cleanup_kafka(env_or("WORKQ_KAFKA_BROKERS", "127.0.0.1:59092"),
                argv + optind, argc - optind);
        else
            cleanup_amqp(env_or("WORKQ_RABBITMQ_URL",
                "amqp://guest:guest@127.0.0.1:55672"), argv + optind,
                argc - optind);
        return 0;
    }
    if (queue == NULL) {
        snprintf(qbuf, sizeof qbuf, "bench-%s-%ld", transport, (long)getpid());
        queue = qbuf;
    }
    memset(&conf, 0, sizeof conf);
    conf.transport = transport;
    conf.kafka_brokers = env_or("WORKQ_KAFKA_BROKERS", "127.0.0.1:59092");
    /* receipts (producer.receipts) go here: a migrated database */
    conf.postgres_conninfo = env_or("WORKQ_POSTGRES_CONNINFO",
        "host=127.0.0.1 port=55432 user=postgres dbname=workq");
    conf.rabbitmq_url = env_or("WORKQ_RABBITMQ_URL",
        "amqp://guest:guest@127.0.0.1:55672");
    conf.rabbitmq_queue_type = queue_type;
    conf.client_id = "bench_submit";
    conf.receipts = receipts ? 1 : -1;
    if (wq_client_open_conf(&conf, &c, err, sizeof err) != 0)
        die("open", err);
    payload = malloc((size_t)size + 1);
    memset(payload, 'p', (size_t)size);
    memset(&t, 0, sizeof t);
    t.queue = queue;
    t.type = "noop";
    t.payload = payload;
    t.payload_len = (size_t)size;

    /* declares the queue, warms the connection */
    if (wq_client_submit(c, &t, id, err, sizeof err) != 0)
        die("first submit", err);

    t0 = now_s();
    for (long i = 0; i < count; i++) {
        if (wq_client_submit_async(c, &t, on_done, NULL, NULL, err,
            sizeof err) != 0)
            die("submit", err);
        if ((i + 1) % batch == 0)
            (void)wq_client_flush(c, -1, NULL, 0);
    }
    (void)wq_client_flush(c, -1, NULL, 0);
    dt = now_s() - t0;
    printf("kind=client-batch transport=%s queue_type=%s tasks=%ld "
        "payload=%ld batch=%ld receipts=%s seconds=%.3f rate=%.0f "
        "failed=%ld untracked=%ld\n", transport,
        strcmp(transport, "kafka") == 0 ? "-" : queue_type, count, size,
        batch, receipts ? "on" : "off", dt, (double)count / dt, failures,
        untracked);

    lat = calloc((size_t)(singles > 0 ? singles : 1), sizeof *lat);
    t0 = now_s();
    for (long i = 0; i < singles; i++) {
        double s0 = now_s();

        if (wq_client_submit(c, &t, id, err, sizeof err) != 0)
            die("single submit", err);
        lat[i] = (now_s() - s0) * 1000.0;
    }
    dt = now_s() - t0;
    if (singles > 0) {
        qsort(lat, (size_t)singles, sizeof *lat, cmp_double);
        printf("kind=client-single transport=%s queue_type=%s tasks=%ld "
            "seconds=%.3f rate=%.0f p50_ms=%.2f p99_ms=%.2f\n", transport,
            strcmp(transport, "kafka") == 0 ? "-" : queue_type, singles, dt,
            (double)singles / dt, lat[singles / 2],
            lat[(size_t)((double)singles * 0.99)]);
    }
    wq_client_free(c);
    free(lat);
    free(payload);
    return failures > 0 || untracked > 0;
}
