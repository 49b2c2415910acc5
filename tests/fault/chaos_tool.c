/*
 * chaos_tool.c - the C half of the chaos suite (tests/fault/chaos.sh):
 * the steady-rate submitter and a Kafka lag probe.
 *
 *   chaos-tool submit --config FILE --queue Q --rate N --duration S
 *                     --accepted FILE [--drain S] [--prefix P] [--type T]
 *                     [--count N]
 *   chaos-tool paced --config FILE --queue Q --rate N --duration S
 *                    --accepted FILE [--prefix P] [--type T] [--retry S]
 *                    [--threads K] [--samples FILE]
 *   chaos-tool kafka-lag --brokers HOST:PORT --queue Q
 *   chaos-tool kafka-config --brokers HOST:PORT --topic T --name NAME
 *
 * submit: every 100 ms a batch of new tasks (N a second in all, by the
 * clock: what an outage held back is made afterwards) through
 * the public client (shared/workq.h), as a user's program would.  Task i
 * gets the key PREFIX-i and a type chosen by i (the mix below), and one
 * task in ten is delayed (stored in PostgreSQL, published later by the
 * scheduler).  A task counts as accepted only when the client reported
 * it confirmed; its key and type are then appended to the accepted file,
 * line-buffered, so that a kill of this process loses no accepted key.
 * A task that was not confirmed (broker or PostgreSQL down or hung) is
 * resubmitted with the same key at the next tick, the client reopened
 * first: the promise is exactly-once per key, so a resubmission can only
 * become a duplicate delivery, never a second task.  After the duration
 * no new task is made; unconfirmed ones are retried for --drain seconds,
 * then reported as never accepted (they may have arrived or not: they
 * are not counted).  SIGTERM or SIGINT end the making of new tasks early.
 * With --type every task is of type T and none is delayed; with --count
 * no more than N tasks are made (the cluster scale run,
 * tests/cluster/scale.sh, submits its noops this way).
 *
 * paced: the producer's latency at a steady rate: task i is due at
 * i / N s after the start and is submitted then, alone, with the blocking
 * wq_client_submit (one task per call, as a request handler would), of
 * type T (default "ok"), never delayed, by one of K threads (default 16,
 * each with a client of its own, opened and warmed with one untimed task
 * PREFIX-wJ before the clock starts; task i
 * by thread i mod K: request handlers side by side, so one slow submit
 * does not hold up the rest).  Its latency is the time from
 * when it was due to the broker's confirmation, so a submit held up by
 * an outage also counts against the tasks that waited behind it.  A
 * failed submit is retried with the same key (the client reopened) for
 * up to --retry s (default 60) after the task was due, then given up.
 * Prints the count, the percentiles of that latency and those of the
 * calls alone; --samples writes "seconds-since-start latency-ms" per task.
 *
 * kafka-lag: prints the consumer group's lag on the queue's topic (the
 * sum over partitions of high watermark minus committed offset; a
 * partition with no committed offset counts whole), or -1 on error.
 *
 * kafka-config: prints the value a topic's configuration NAME has (its
 * own or the broker's default), e.g. min.insync.replicas; used by the
 * cluster smoke run (tests/cluster/smoke.sh).
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "workq.h"

#define TICK_MS     100
#define BATCH_MAX   4096

/* The mix, by i % 20: what each type does is configured by chaos.sh. */
struct kind {
    const char *type;
    int max_attempts;           /* 0: the queue's policy */
};

static const struct kind mix[20] = {
    { "ok", 0 }, { "ok", 0 }, { "ok", 0 }, { "ok", 0 }, { "ok", 0 },
    { "proc", 0 }, { "proc", 0 },           /* 25 % noop, 10 % process */
    { "flaky", 0 }, { "flaky", 0 }, { "flaky", 0 },        /* fail twice */
    { "doomed", 4 }, { "doomed", 4 },                     /* always fail */
    { "slow", 0 },                                        /* sleep */
    { "effect", 0 }, { "effect", 0 }, { "effect", 0 }, { "effect", 0 },
    { "crash", 0 }, { "crash", 0 },                       /* exec SIGSEGV once */
    { "crash_always", 4 },                                /* exec SIGSEGV */
};

static volatile sig_atomic_t stopping;
static const char *one_type;    /* submit --type */

static void
on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
sleep_until(double t)
{
    double d = t - now_s();
    struct timespec ts;

    if (d <= 0)
        return;
    ts.tv_sec = (time_t)d;
    ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

/* A task not yet confirmed: made at i, with its key. */
struct pending {
    long i;
    char key[64];
};

static void
task_of(const struct pending *p, struct wq_client_task *t, const char *queue)
{
    const struct kind *k = &mix[p->i % 20];

    memset(t, 0, sizeof *t);
    t->queue = queue;
    t->type = k->type;
    t->idempotency_key = p->key;
    t->payload = p->key;
    t->payload_len = strlen(p->key);
    if (one_type != NULL) {
        t->type = one_type;
        return;
    }
    t->max_attempts = k->max_attempts;
    if (p->i % 10 == 3)
        t->delay_ms = 300 + (p->i * 37) % 1700;
}

static int
submit_main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "queue", required_argument, NULL, 'q' },
        { "rate", required_argument, NULL, 'r' },
        { "duration", required_argument, NULL, 'd' },
        { "accepted", required_argument, NULL, 'a' },
        { "drain", required_argument, NULL, 'D' },
        { "prefix", required_argument, NULL, 'p' },
        { "type", required_argument, NULL, 't' },
        { "count", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL, *queue = NULL, *accepted = NULL;
    const char *prefix = "k";
    double rate = 50, duration = 60, drain = 60, t0, next;
    long count = -1;
    struct pending *pend;
    struct wq_client_task *tasks;
    struct wq_client_result *res;
    size_t npend = 0;
    long made = 0, confirmed = 0, resubmits = 0, reopens = 0;
    wq_client *c = NULL;
    char err[WQ_ERRLEN];
    FILE *out;
    int o;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config = optarg; break;
        case 'q': queue = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'a': accepted = optarg; break;
        case 'D': drain = atof(optarg); break;
        case 'p': prefix = optarg; break;
        case 't': one_type = optarg; break;
        case 'n': count = atol(optarg); break;
        default: return 2;
        }
    }
    if (config == NULL || queue == NULL || accepted == NULL || rate <= 0
        || rate * TICK_MS / 1000 > BATCH_MAX / 2) {
        fprintf(stderr, "chaos-tool submit: --config, --queue, --accepted "
            "and a rate of 1..%d are required\n", BATCH_MAX / 2 * 1000 / TICK_MS);
        return 2;
    }
    if ((out = fopen(accepted, "a")) == NULL) {
        perror(accepted);
        return 1;
    }
    setvbuf(out, NULL, _IOLBF, 0);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    pend = calloc(BATCH_MAX, sizeof *pend);
    tasks = calloc(BATCH_MAX, sizeof *tasks);
    res = calloc(BATCH_MAX, sizeof *res);
    if (pend == NULL || tasks == NULL || res == NULL)
        return 1;

    t0 = now_s();
    next = t0;
    for (;;) {
        double t = now_s();
        int making = !stopping && t - t0 < duration
            && (count < 0 || made < count);
        size_t n, kept;

        if (!making && (npend == 0 || t - t0 >= duration + drain))
            break;
        if (making) {
            /* by the clock: time spent blocked in an outage is made up
             * for afterwards, as an application's queue would be */
            double due = rate * (t - t0) - (double)made;

            while (due >= 1 && npend < BATCH_MAX
                && (count < 0 || made < count)) {
                pend[npend].i = made;
                snprintf(pend[npend].key, sizeof pend[npend].key, "%s-%07ld",
                    prefix, made);
                npend++;
                made++;
                due -= 1;
            }
        }
        if (c == NULL) {
            if (wq_client_open(config, &c, err, sizeof err) != 0) {
                c = NULL;
                next += TICK_MS / 1000.0 * 5;
                sleep_until(next);
                continue;
            }
            reopens++;
        }
        n = npend;
        for (size_t j = 0; j < n; j++)
            task_of(&pend[j], &tasks[j], queue);
        if (n > 0 && wq_client_submit_batch(c, tasks, n, res, err,
            sizeof err) != 0) {
            /* a broker or PostgreSQL outage: start afresh next tick */
            wq_client_free(c);
            c = NULL;
        }
        kept = 0;
        for (size_t j = 0; j < n; j++) {
            if (res[j].status == 0) {
                fprintf(out, "%s\t%s\n", pend[j].key, tasks[j].type);
                confirmed++;
            } else {
                pend[kept++] = pend[j];
                resubmits++;
            }
        }
        npend = kept;
        next += TICK_MS / 1000.0;
        if (next < now_s() - 1)
            next = now_s();     /* a long outage: don't burst afterwards */
        sleep_until(next);
    }
    wq_client_free(c);
    fclose(out);
    printf("made=%ld accepted=%ld resubmits=%ld never_accepted=%zu "
        "connections=%ld seconds=%.1f\n", made, confirmed, resubmits, npend,
        reopens, now_s() - t0);
    free(pend);
    free(tasks);
    free(res);
    return 0;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The p-quantile (0..1) of v[0..n), sorted; nearest rank. */
static double
quantile(const double *v, size_t n, double p)
{
    size_t k;

    if (n == 0)
        return 0;
    k = (size_t)(p * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    return v[(k > n ? n : k) - 1];
}

/* paced: what each submitting thread shares and keeps. */
struct paced {
    const char *config, *queue, *prefix, *type;
    double rate, retry, t0;
    size_t total, nthreads;
    double *lat, *call;         /* per task, ms; lat < 0: never accepted */
    FILE *out;
    pthread_mutex_t mu;         /* out, and the counters below */
    long failed_calls, late, reopens;
    pthread_barrier_t opened, started;  /* clients open; t0 set */
};

struct paced_thread {
    struct paced *p;
    size_t first;               /* tasks first, first + nthreads, ... */
    pthread_t tid;
};

static void *
paced_run(void *arg)
{
    struct paced_thread *pt = arg;
    struct paced *p = pt->p;
    wq_client *c = NULL;
    char err[WQ_ERRLEN];

    /* the client opened before the clock starts (at most 30 s) */
    for (int k = 0; k < 150 && c == NULL && !stopping; k++) {
        if (wq_client_open(p->config, &c, err, sizeof err) != 0) {
            c = NULL;
            sleep_until(now_s() + 0.2);
        }
    }
    /* and warm: one untimed task (key PREFIX-wJ) fetches the metadata */
    if (c != NULL) {
        struct wq_client_task w;
        char key[64];

        snprintf(key, sizeof key, "%s-w%zu", p->prefix, pt->first);
        memset(&w, 0, sizeof w);
        w.queue = p->queue;
        w.type = p->type;
        w.idempotency_key = key;
        w.payload = key;
        w.payload_len = strlen(key);
        if (wq_client_submit(c, &w, NULL, err, sizeof err) == 0) {
            pthread_mutex_lock(&p->mu);
            fprintf(p->out, "%s\t%s\n", key, p->type);
            pthread_mutex_unlock(&p->mu);
        }
    }
    pthread_mutex_lock(&p->mu);
    p->reopens += c != NULL;
    pthread_mutex_unlock(&p->mu);
    pthread_barrier_wait(&p->opened);
    pthread_barrier_wait(&p->started);
    for (size_t i = pt->first; i < p->total && !stopping; i += p->nthreads) {
        double due = p->t0 + (double)i / p->rate, s = 0, done;
        struct wq_client_task t;
        char key[64];
        int ok = 0;

        sleep_until(due);
        if (now_s() - due > 0.1) {
            pthread_mutex_lock(&p->mu);
            p->late++;
            pthread_mutex_unlock(&p->mu);
        }
        snprintf(key, sizeof key, "%s-%07zu", p->prefix, i);
        memset(&t, 0, sizeof t);
        t.queue = p->queue;
        t.type = p->type;
        t.idempotency_key = key;
        t.payload = key;
        t.payload_len = strlen(key);
        /* bounded: each round either submits or waits 0.2 s, until
         * --retry s after the task was due */
        while (!ok && now_s() - due <= p->retry) {
            if (c == NULL) {
                if (wq_client_open(p->config, &c, err, sizeof err) != 0) {
                    c = NULL;
                    sleep_until(now_s() + 0.2);
                    continue;
                }
                pthread_mutex_lock(&p->mu);
                p->reopens++;
                pthread_mutex_unlock(&p->mu);
            }
            s = now_s();
            if (wq_client_submit(c, &t, NULL, err, sizeof err) == 0) {
                ok = 1;
                break;
            }
            pthread_mutex_lock(&p->mu);
            if (++p->failed_calls <= 20)
                fprintf(stderr, "paced: %s: %s\n", key, err);
            pthread_mutex_unlock(&p->mu);
            wq_client_free(c);
            c = NULL;
        }
        if (!ok)
            continue;
        done = now_s();
        p->lat[i] = (done - due) * 1000;
        p->call[i] = (done - s) * 1000;
        pthread_mutex_lock(&p->mu);
        fprintf(p->out, "%s\t%s\n", key, p->type);
        pthread_mutex_unlock(&p->mu);
    }
    wq_client_free(c);
    return NULL;
}

static int
paced_main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "queue", required_argument, NULL, 'q' },
        { "rate", required_argument, NULL, 'r' },
        { "duration", required_argument, NULL, 'd' },
        { "accepted", required_argument, NULL, 'a' },
        { "prefix", required_argument, NULL, 'p' },
        { "type", required_argument, NULL, 't' },
        { "retry", required_argument, NULL, 'R' },
        { "samples", required_argument, NULL, 's' },
        { "threads", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 },
    };
    struct paced p = { .prefix = "p", .type = "ok", .rate = 200,
        .retry = 60, .nthreads = 16 };
    struct paced_thread *th;
    const char *accepted = NULL, *samples = NULL;
    double duration = 20, *lat, *call;
    size_t nlat = 0;
    FILE *smp = NULL;
    int o;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c': p.config = optarg; break;
        case 'q': p.queue = optarg; break;
        case 'r': p.rate = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'a': accepted = optarg; break;
        case 'p': p.prefix = optarg; break;
        case 't': p.type = optarg; break;
        case 'R': p.retry = atof(optarg); break;
        case 's': samples = optarg; break;
        case 'T': p.nthreads = (size_t)atol(optarg); break;
        default: return 2;
        }
    }
    if (p.config == NULL || p.queue == NULL || accepted == NULL
        || p.rate <= 0 || p.rate > 5000 || duration <= 0 || duration > 3600
        || p.retry < 0 || p.retry > 600 || p.nthreads < 1
        || p.nthreads > 64) {
        fprintf(stderr, "chaos-tool paced: --config, --queue, --accepted, "
            "a rate of 1..5000, a duration of 1..3600 s, a retry of "
            "0..600 s and 1..64 threads are required\n");
        return 2;
    }
    p.total = (size_t)(p.rate * duration);
    if ((p.out = fopen(accepted, "a")) == NULL) {
        perror(accepted);
        return 1;
    }
    setvbuf(p.out, NULL, _IOLBF, 0);
    if (samples != NULL && (smp = fopen(samples, "w")) == NULL) {
        perror(samples);
        fclose(p.out);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    p.lat = calloc(p.total + 1, sizeof *p.lat);
    p.call = calloc(p.total + 1, sizeof *p.call);
    lat = calloc(p.total + 1, sizeof *lat);
    call = calloc(p.total + 1, sizeof *call);
    th = calloc(p.nthreads, sizeof *th);
    if (p.lat == NULL || p.call == NULL || lat == NULL || call == NULL
        || th == NULL)
        return 1;
    for (size_t i = 0; i < p.total; i++)
        p.lat[i] = -1;
    pthread_mutex_init(&p.mu, NULL);
    pthread_barrier_init(&p.opened, NULL, (unsigned)p.nthreads + 1);
    pthread_barrier_init(&p.started, NULL, (unsigned)p.nthreads + 1);

    for (size_t j = 0; j < p.nthreads; j++) {
        th[j].p = &p;
        th[j].first = j;
        if (pthread_create(&th[j].tid, NULL, paced_run, &th[j]) != 0) {
            fprintf(stderr, "paced: pthread_create failed\n");
            return 1;
        }
    }
    pthread_barrier_wait(&p.opened);
    p.t0 = now_s() + 0.05;
    pthread_barrier_wait(&p.started);
    for (size_t j = 0; j < p.nthreads; j++)
        pthread_join(th[j].tid, NULL);
    fclose(p.out);
    for (size_t i = 0; i < p.total; i++) {
        if (p.lat[i] < 0)
            continue;
        if (smp != NULL)
            fprintf(smp, "%.3f %.2f\n", (double)i / p.rate, p.lat[i]);
        lat[nlat] = p.lat[i];
        call[nlat] = p.call[i];
        nlat++;
    }
    if (smp != NULL)
        fclose(smp);
    qsort(lat, nlat, sizeof *lat, cmp_double);
    qsort(call, nlat, sizeof *call, cmp_double);
    printf("due=%zu accepted=%zu never_accepted=%zu failed_calls=%ld "
        "late=%ld connections=%ld threads=%zu p50_ms=%.1f p99_ms=%.1f "
        "max_ms=%.1f call_p50_ms=%.1f call_p99_ms=%.1f call_max_ms=%.1f "
        "seconds=%.1f\n", p.total, nlat, p.total - nlat, p.failed_calls,
        p.late, p.reopens, p.nthreads, quantile(lat, nlat, 0.50),
        quantile(lat, nlat, 0.99), quantile(lat, nlat, 1.0),
        quantile(call, nlat, 0.50), quantile(call, nlat, 0.99),
        quantile(call, nlat, 1.0), now_s() - p.t0);
    pthread_mutex_destroy(&p.mu);
    pthread_barrier_destroy(&p.opened);
    pthread_barrier_destroy(&p.started);
    free(p.lat);
    free(p.call);
    free(lat);
    free(call);
    free(th);
    return 0;
}

static int
lag_main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "brokers", required_argument, NULL, 'b' },
        { "queue", required_argument, NULL, 'q' },
        { NULL, 0, NULL, 0 },
    };
    const char *brokers = NULL, *queue = NULL;
    char topic[256], errstr[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *parts;
    long long lag = 0;
    int o, rv = 1;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'b': brokers = optarg; break;
        case 'q': queue = optarg; break;
        default: return 2;
        }
    }
    if (brokers == NULL || queue == NULL) {
        fprintf(stderr, "chaos-tool kafka-lag: --brokers and --queue\n");
        return 2;
    }
    /* the worker's topic and group are both "workq.<queue>" */
    snprintf(topic, sizeof topic, "workq.%s", queue);
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
            sizeof errstr) != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(conf, "group.id", topic, errstr,
            sizeof errstr) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka-lag: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        fprintf(stderr, "kafka-lag: %s\n", errstr);
        return 1;
    }
    {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);

        if (rd_kafka_metadata(rk, 0, rkt, &md, 10000)
            != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1
            || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "kafka-lag: no metadata for %s\n", topic);
            rd_kafka_topic_destroy(rkt);
            goto out;
        }
        rd_kafka_topic_destroy(rkt);
    }
    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int p = 0; p < md->topics[0].partition_cnt; p++)
        rd_kafka_topic_partition_list_add(parts, topic,
            md->topics[0].partitions[p].id);
    if (rd_kafka_committed(rk, parts, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kafka-lag: committed offsets not known\n");
        rd_kafka_topic_partition_list_destroy(parts);
        goto out;
    }
    for (int j = 0; j < parts->cnt; j++) {
        int64_t lo, hi;
        rd_kafka_topic_partition_t *tp = &parts->elems[j];

        if (rd_kafka_query_watermark_offsets(rk, topic, tp->partition, &lo,
            &hi, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "kafka-lag: no watermarks\n");
            rd_kafka_topic_partition_list_destroy(parts);
            goto out;
        }
        lag += hi - (tp->offset >= 0 ? tp->offset : lo);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    rv = 0;
out:
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    printf("%lld\n", rv == 0 ? lag : -1LL);
    return rv;
}

static int
config_main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "brokers", required_argument, NULL, 'b' },
        { "topic", required_argument, NULL, 't' },
        { "name", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 },
    };
    const char *brokers = NULL, *topic = NULL, *name = NULL;
    char errstr[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_ConfigResource_t *res;
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    const rd_kafka_DescribeConfigs_result_t *dr;
    const rd_kafka_ConfigResource_t **rs;
    const rd_kafka_ConfigEntry_t **ents;
    size_t nrs = 0, nents = 0;
    int o, rv = 1;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'b': brokers = optarg; break;
        case 't': topic = optarg; break;
        case 'n': name = optarg; break;
        default: return 2;
        }
    }
    if (brokers == NULL || topic == NULL || name == NULL) {
        fprintf(stderr, "chaos-tool kafka-config: --brokers, --topic and "
            "--name\n");
        return 2;
    }
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
            sizeof errstr) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka-config: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr))
        == NULL) {
        fprintf(stderr, "kafka-config: %s\n", errstr);
        return 1;
    }
    res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    q = rd_kafka_queue_new(rk);
    rd_kafka_DescribeConfigs(rk, &res, 1, NULL, q);
    ev = rd_kafka_queue_poll(q, 15000);
    if (ev == NULL || rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kafka-config: %s\n", ev != NULL
            ? rd_kafka_event_error_string(ev) : "no answer in 15 s");
        goto out;
    }
    dr = rd_kafka_event_DescribeConfigs_result(ev);
    rs = rd_kafka_DescribeConfigs_result_resources(dr, &nrs);
    if (nrs != 1 || rd_kafka_ConfigResource_error(rs[0])
        != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kafka-config: topic %s: %s\n", topic, nrs == 1
            ? rd_kafka_ConfigResource_error_string(rs[0]) : "no result");
        goto out;
    }
    ents = rd_kafka_ConfigResource_configs(rs[0], &nents);
    for (size_t i = 0; i < nents; i++) {
        if (strcmp(rd_kafka_ConfigEntry_name(ents[i]), name) == 0) {
            const char *v = rd_kafka_ConfigEntry_value(ents[i]);

            printf("%s\n", v != NULL ? v : "");
            rv = 0;
        }
    }
    if (rv != 0)
        fprintf(stderr, "kafka-config: topic %s has no %s\n", topic, name);
out:
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(res);
    rd_kafka_destroy(rk);
    return rv;
}

int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "submit") == 0)
        return submit_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "paced") == 0)
        return paced_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "kafka-lag") == 0)
        return lag_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "kafka-config") == 0)
        return config_main(argc - 1, argv + 1);
    fprintf(stderr, "usage: chaos-tool submit|paced|kafka-lag|kafka-config ... "
        "(see tests/fault/chaos_tool.c)\n");
    return 2;
}
