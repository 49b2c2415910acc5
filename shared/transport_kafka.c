/*
 * transport_kafka.c - the Kafka backend of the transport (transport.h), on
 * librdkafka.
 *
 * A handle owns two librdkafka clients.  The producer is created by open():
 * acks=all, not idempotent (see producer_conf_new), with a delivery report
 * callback that turns each
 * broker verdict into one conf->on_confirm call; it also serves declare()
 * through the Admin API.  The consumer is created by the first subscribe():
 * a consumer-group member with automatic commits off.
 *
 * Offsets.  Tasks of one partition may run in parallel, so acks arrive out
 * of order.  For every assigned (topic, partition) a `struct part` keeps the
 * offsets handed out and not yet acked, sorted.  The committable offset is
 * the lowest of them, or the last polled offset + 1 when none is in flight:
 * a commit never passes an unfinished task.  Commits are asynchronous
 * rd_kafka_commit() calls of an explicit offset list, batched: once
 * COMMIT_EVERY_ACKS acks have accumulated or COMMIT_EVERY_MS after the first
 * uncommitted ack, whichever comes first (checked in ack() and poll(); poll()
 * wakes up for it).  Revoked partitions and close() commit synchronously.
 * We commit explicit offsets rather than offsets_store() + auto commit so
 * that what is committed, and when, is decided here alone (the rebalance and
 * close paths need a synchronous commit of exactly the contiguous prefix).
 *
 * Rebalances.  A revoke commits what is committable for the revoked
 * partitions, then forgets their in-flight offsets: deliveries of those
 * partitions still held by the caller become stale, and acking them is a
 * no-op (a generation number in the delivery tells).  Both the eager and the
 * cooperative protocol are handled; the default assignor is eager `range`
 * (see consumer_conf_new for why).
 *
 * Unclaimed runs (conf->consumer_unclaimed; docs/task-states.md).  The
 * caller may run a delivery marked `first` before writing any row of it.
 * Kafka cannot tell a first delivery: a restarted or rebalanced partition
 * is re-read from its committed offset, and the offsets after it may have
 * run on the last holder without a row.  So a holder reserves offsets
 * before it marks them first: every commit of a partition carries, in its
 * metadata, "workq:unclaimed-below=R", and an offset is marked first only
 * below an R that the group has stored (reserve_ahead: a commit of its
 * own, on a private queue, which moves R UNCLAIMED_WINDOW past the newest
 * offset once that comes within half a window of R; it blocks the poll,
 * up to RESERVE_WAIT_MS, only for the first reservation of an
 * assignment, and its answer is served by later polls otherwise).  Every
 * commit carries the highest R sent, so none stores less than a pending
 * reservation.  A worker's consumers carry the last holders' R forward
 * even when they run nothing unclaimed (conf->on_revoke set, claim_after
 * 0).  A new holder
 * reads R with the committed offset (part_fetch_committed): offsets below
 * it are delivered `redelivered`, never first, so the caller claims them
 * before it runs them and its history says a run may have been lost; its
 * own R never falls below the last one.  Before partitions are revoked
 * (not lost) and at close(), conf->on_revoke lets the caller write the
 * rows of its unclaimed runs; when it could, this holder's reservation is
 * dropped from the revoke's commit, and the next holder runs first
 * deliveries unclaimed at once.  Deliveries the caller still holds of a
 * revoked partition lose `first` and are marked `revoked` before
 * on_revoke runs: the caller gives them back instead of running them,
 * since their next holder may run them unclaimed.  A partition whose committed metadata
 * could not be read is not committed (its last holder's R would be lost)
 * and marks nothing first; the read is tried again 5 s later.
 *
 * Memory.  Nothing here is allocated per message once warm: publish
 * copies the body into librdkafka's own message (RD_KAFKA_MSG_F_COPY) and
 * reuses a cached topic handle; deliveries come from a free pool and the
 * in-flight arrays grow by doubling.  Entries behind a nacked offset stay
 * (16 bytes each) until the next rebalance or close.  Allocation failure
 * aborts (alloc.h), in both backends and in librdkafka itself: only a new
 * queue, a new partition or a larger in-flight window allocates.
 *
 * Left to others: the envelope (bytes in, bytes out), retries of failed
 * tasks (a nack here only holds the offset back; see kafka_nack), and topic
 * configuration beyond partitions and replication.
 *
 * Threads: as transport.h says, one thread calls all functions of a handle,
 * except wakeup(), which any thread may call: it only touches the atomic
 * `woken` and `cq` and calls rd_kafka_queue_yield(), which rdkafka.h
 * allows from another thread.
 * librdkafka calls log_cb from its own threads; every other callback runs
 * inside rd_kafka_poll(), rd_kafka_flush() or rd_kafka_consumer_poll() on
 * the calling thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "alloc.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "priority.h"
#include "transport.h"

#define COMPONENT          "kafka"
#define PREFIX_LEN         (sizeof WQ_QUEUE_PREFIX - 1)
#define TOPIC_MAX          (PREFIX_LEN + WQ_BROKER_QUEUE_MAX + 1)

#define COMMIT_EVERY_ACKS  100      /* commit after this many acks ... */
#define COMMIT_EVERY_MS    100      /* ... or this long after the first one */
#define DECLARE_TIMEOUT_MS 30000    /* topic creation plus leader election */
#define QUEUE_FULL_WAIT_MS 100      /* producer queue full: serve reports */
#define PURGE_DRAIN_MS     1000     /* close: serve the purged reports */
/* Unclaimed runs: how far past the newest offset a reservation reaches
 * (see the top of this file), what its metadata says, and how long a
 * failed reservation or metadata read waits before the next try. */
#define UNCLAIMED_WINDOW   2048     /* half: ~100 ms of a 10k/s partition */
#define UNCLAIMED_META     "workq:unclaimed-below="
#define UNCLAIMED_RETRY_MS 5000     /* a metadata read may block 2 s */
#define RESERVE_WAIT_MS    500      /* an assignment's first reservation */
/* The first librdkafka whose SCRAM Kafka 4.x brokers accept (its
 * client-final nonce was wrong before: librdkafka#4895, CHANGELOG 2.6.1). */
#define SCRAM_KAFKA4_VERSION 0x02060100

/* One offset handed to the caller and not yet finished. */
struct inflight {
    int64_t offset;
    int32_t pending;    /* deliveries of this offset not yet acked */
    int32_t nacked;     /* nacked: never finished in this assignment */
};

/*
 * One (topic, partition) the consumer was ever assigned.  Parts live until
 * close, so a stale delivery's pointer stays valid; `gen` changes at every
 * assign and revoke, which makes earlier deliveries stale.
 */
struct part {
    char *topic;
    int32_t partition;
    int active;             /* in the current assignment */
    uint64_t gen;
    int64_t next;           /* last polled offset + 1; -1 before the first */
    int64_t committed;      /* last offset sent in a commit; -1 none */
    int64_t start_at;       /* where this assignment's fetch started (the
                               group's committed offset, or the log start
                               without one); -1: not asked yet */
    /* unclaimed runs (see the top of this file) */
    int meta_known;         /* suspect_below was read this assignment */
    int64_t suspect_below;  /* the last holders' reservation: offsets
                               below it may have run unclaimed; -1 none */
    int64_t reserved;       /* ours, stored: first below it; -1 none */
    int64_t reserve_sent;   /* the highest we sent; -1 none */
    int64_t reserve_inflight;   /* sent, no answer yet; -1 none */
    int64_t meta_sent;      /* the reservation our last commit carried */
    uint64_t meta_retry_ns; /* a failed read or reservation: not before */
    struct inflight *fl;    /* in flight: fl[start..len), sorted */
    size_t start, len, cap;
    struct topic_hold *hold;    /* its topic's, shared by its partitions */
};

/*
 * Deliveries of one topic held by the caller (conf->kafka_topic_hold_max):
 * at the limit the topic's assigned partitions are paused, which also
 * drops what librdkafka had fetched of them (a pause is a fetch version
 * barrier), and resumed at half, from the last polled offset + 1.  So a
 * backlog of one priority band cannot fill the worker's window and keep
 * another band's messages behind it in librdkafka's one consumer queue.
 *
 * Only when another band of the queue has messages waiting (hold_needed;
 * other queues of the worker do not count): a pause
 * costs a refetch of what it dropped, and the resumed fetch waits behind
 * the one in flight, a long poll of the empty partitions that can last
 * fetch.wait.max.ms.  Pausing a lone band's backlog at every window took
 * end-to-end Kafka throughput from 10-15k tasks/s to 3k (make bench,
 * 2026-12-06).  A topic at the limit and not paused is looked at again
 * as its deliveries finish (HOLD_CHECK_MS apart).
 */
struct topic_hold {
    char *topic;
    size_t held;
    int paused;
};

#define HOLD_CHECK_MS   20      /* a topic at its limit, not paused: how
                                   often to look for others' backlogs */

/* A delivery as the caller sees it, plus what we need to finish it. */
struct kdelivery {
    wq_delivery pub;            /* first: the caller holds &pub */
    rd_kafka_message_t *msg;    /* NULL while in the free pool */
    struct part *part;
    uint64_t gen;               /* part->gen when polled */
    struct kdelivery *prev, *next;
};

/* A producer topic handle, cached per queue. */
struct topic_ref {
    char *queue;
    rd_kafka_topic_t *rkt;
};

struct kafka_transport {
    struct wq_transport_base base;      /* first: see transport.h */
    wq_confirm_fn *on_confirm;
    void *on_confirm_user;
    int partitions, replication;    /* for declare() */
    int min_insync;                 /* min.insync.replicas; 0: broker's */

    rd_kafka_t *producer;
    /* While open() waits for a broker: librdkafka's lines are debug
     * lines and error_cb keeps the last error for the one we report. */
    atomic_int connecting;
    int all_down;               /* __ALL_BROKERS_DOWN while connecting */
    char conn_err[256];
    struct topic_ref *topics;
    size_t ntopics, topics_cap, last_topic;
    uint64_t outstanding;       /* published, no delivery report yet */
    uint64_t failed;            /* refused since the last clean flush */

    rd_kafka_conf_t *cconf;     /* consumer conf, until subscribe */
    rd_kafka_conf_t *bconf;     /* backlog()'s short-lived consumer */
    char *group_id;             /* conf->kafka_group_id; NULL: per queue */
    void (*dead_bounds)(void *, const char *, int64_t *, int64_t *);
    void *dead_bounds_user;
    rd_kafka_t *consumer;
    struct part **parts;
    size_t nparts, parts_cap;
    struct topic_hold **holds;  /* one per topic of `parts` */
    size_t nholds;
    size_t hold_max;            /* conf->kafka_topic_hold_max; 0: none */
    uint64_t hold_check_ns;     /* hold_check: not again before this */
    struct part *last_part;
    uint64_t gen_counter;
    struct kdelivery *live;     /* held by the caller */
    struct kdelivery *pool;     /* free, for reuse */
    /* Read by wakeup() from other threads, hence atomic. */
    _Atomic(rd_kafka_queue_t *) cq; /* the consumer queue, to yield */
    atomic_int woken;           /* wakeup() since the last poll() */
    int unclaimed;              /* conf->consumer_unclaimed */
    int reservations;           /* read and carry them: unclaimed, or a
                                   worker's consumer (on_revoke set) */
    rd_kafka_queue_t *rq;       /* answers to reservation commits */
    int (*on_revoke)(void *);   /* conf->on_revoke, and its argument */
    void *on_revoke_user;
    unsigned acks_pending;      /* acks since the last commit */
    uint64_t first_ack_ns;      /* when the first of them came */
};

static struct kafka_transport *
K(wq_transport *t)
{
    return (struct kafka_transport *)(void *)t;
}

/* --- configuration and callbacks ------------------------------------------ */

static int
conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
    char *err, size_t errlen)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr)
        != RD_KAFKA_CONF_OK)
        return wq_seterr(err, errlen, WQ_ECONFIG, "kafka: %s", errstr);
    return 0;
}

static int
conf_set_int(rd_kafka_conf_t *conf, const char *name, int value, char *err,
    size_t errlen)
{
    char buf[32];

    snprintf(buf, sizeof buf, "%d", value);
    return conf_set(conf, name, buf, err, errlen);
}

/* True if the string property `name` is set to a non-empty value. */
static int
conf_has(const rd_kafka_conf_t *conf, const char *name)
{
    size_t size = 0;

    /* dest NULL: only the length, with its terminating NUL. */
    return rd_kafka_conf_get(conf, name, NULL, &size) == RD_KAFKA_CONF_OK
        && size > 1;
}

/*
 * librdkafka log lines, from any of its threads, into our one log; while
 * open() waits for a broker, as debug lines (syslog level 7): the failed
 * connection attempts are open()'s one error then.
 */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    struct kafka_transport *t = rk != NULL ? rd_kafka_opaque(rk) : NULL;
    char component[64];

    snprintf(component, sizeof component, "rdkafka/%s", fac);
    if (t != NULL && atomic_load(&t->connecting))
        level = 7;
    wq_log_external(level, component, buf);
}

/*
 * Errors the client raises.  They are informational (librdkafka recovers
 * by itself), except __FATAL: then the client is unusable, and publish or
 * poll report it.
 */
static void
error_cb(rd_kafka_t *rk, int e, const char *reason, void *opaque)
{
    char fatal[512];
    rd_kafka_resp_err_t fe;

    if (opaque != NULL && atomic_load(&K(opaque)->connecting)) {
        struct kafka_transport *t = K(opaque);

        if (e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
            t->all_down = 1;
        else
            snprintf(t->conn_err, sizeof t->conn_err, "%s", reason);
        wq_log_debug(COMPONENT, "%s: %s: %s", rd_kafka_name(rk),
            rd_kafka_err2name((rd_kafka_resp_err_t)e), reason);
        return;
    }
    if (e == RD_KAFKA_RESP_ERR__FATAL) {
        fe = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
        wq_log_error(COMPONENT, "%s: fatal error %s: %s", rd_kafka_name(rk),
            rd_kafka_err2name(fe), fatal);
        return;
    }
    wq_log_warn(COMPONENT, "%s: %s: %s", rd_kafka_name(rk),
        rd_kafka_err2name((rd_kafka_resp_err_t)e), reason);
}

/*
 * Says, once per process, why a SCRAM login will fail against Kafka 4.x
 * brokers with this librdkafka (Debian 12 ships 2.0.2): the broker only
 * answers "invalid credentials", which sends the operator looking at the
 * password.  Brokers before 4.0 accept it.
 */
static void
warn_scram(const char *name, const char *value)
{
    static atomic_int said;

    if ((strcmp(name, "sasl.mechanism") == 0
            || strcmp(name, "sasl.mechanisms") == 0)
        && strncmp(value, "SCRAM-", 6) == 0
        && rd_kafka_version() < SCRAM_KAFKA4_VERSION
        && atomic_exchange(&said, 1) == 0)
        wq_log_warn(COMPONENT, "librdkafka %s: Kafka 4.x brokers refuse "
            "its %s logins as invalid credentials (fixed in librdkafka "
            "2.6.1); against them use PLAIN over sasl_ssl",
            rd_kafka_version_str(), value);
}

/*
 * Which client a librdkafka property applies to: the "C/P" column of its
 * own table (rd_kafka_conf_properties_show, the text of CONFIGURATION.md),
 * read once per process, so it always matches the linked version.  A
 * property of the other client type is not set at all: librdkafka would
 * ignore it and log a CONFWARN line at every start.
 */
struct prop_scope {
    const char *name;
    char scope;             /* 'C' consumer, 'P' producer, '*' both */
};

static char *prop_text;                 /* the table's text, and */
static struct prop_scope *prop_scopes;  /* its rows: never freed */
static size_t prop_nscopes;
static pthread_once_t prop_scopes_once = PTHREAD_ONCE_INIT;

/* Lines "name | C/P | range | ...": keeps name and C/P. */
static void
prop_scopes_load(void)
{
    char *text = NULL, *line, *next, *bar, *end;
    size_t len = 0, cap = 0;
    FILE *f = open_memstream(&text, &len);

    if (f == NULL)
        return;
    rd_kafka_conf_properties_show(f);
    if (fclose(f) != 0 || text == NULL)
        return;
    prop_text = text;
    for (line = text; line != NULL && *line != '\0'; line = next) {
        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        if ((bar = strchr(line, '|')) == NULL || bar == line
            || line[0] == ' ' || line[0] == '-')
            continue;
        for (end = bar; end > line && end[-1] == ' '; end--)
            ;
        *end = '\0';
        for (bar++; *bar == ' '; bar++)
            ;
        if (*bar != 'C' && *bar != 'P' && *bar != '*')
            continue;
        if (prop_nscopes == cap) {
            cap = cap ? cap * 2 : 256;
            prop_scopes = xreallocarray(prop_scopes, cap,
                sizeof *prop_scopes);
        }
        prop_scopes[prop_nscopes].name = line;
        prop_scopes[prop_nscopes++].scope = *bar;
    }
}

/* True if property `name` applies to a client of `type`. */
static int
prop_applies(const char *name, rd_kafka_type_t type)
{
    pthread_once(&prop_scopes_once, prop_scopes_load);
    for (size_t i = 0; i < prop_nscopes; i++)
        if (strcmp(prop_scopes[i].name, name) == 0)
            return prop_scopes[i].scope == '*'
                || prop_scopes[i].scope ==
                (type == RD_KAFKA_PRODUCER ? 'P' : 'C');
    return 1;   /* unknown: rd_kafka_conf_set names it */
}

/* Applies conf->kafka_props ("name=value") after our own settings, so
 * that an operator can override them (TLS, SASL, tuning); each only on
 * the client `type` it applies to. */
static int
conf_apply_props(rd_kafka_conf_t *rc, rd_kafka_type_t type,
    const struct wq_transport_conf *conf, char *err, size_t errlen)
{
    for (size_t i = 0; i < conf->kafka_nprops; i++) {
        const char *p = conf->kafka_props[i], *eq;
        char *name;
        int rv = 0;

        if (p == NULL || (eq = strchr(p, '=')) == NULL || eq == p)
            return wq_seterr(err, errlen, WQ_ECONFIG,
                "kafka: property %zu is not \"name=value\"", i);
        name = xstrndup(p, (size_t)(eq - p));
        if (prop_applies(name, type)) {
            if (type == RD_KAFKA_PRODUCER)
                warn_scram(name, eq + 1);
            rv = conf_set(rc, name, eq + 1, err, errlen);
        }
        free(name);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* What both clients share: brokers, client id, logging, callbacks. */
static rd_kafka_conf_t *
conf_common(struct kafka_transport *t, const struct wq_transport_conf *conf,
    char *err, size_t errlen)
{
    rd_kafka_conf_t *rc = rd_kafka_conf_new();

    if (conf_set(rc, "bootstrap.servers", conf->kafka_brokers, err,
            errlen) != 0
        || conf_set(rc, "client.id",
            conf->client_id != NULL && conf->client_id[0] != '\0'
            ? conf->client_id : "workq", err, errlen) != 0
        /* one connection attempt (TCP, TLS, SASL) within the connect
         * timeout; librdkafka's floor is 1 s */
        || (conf->connect_timeout_ms > 0
            && conf_set_int(rc, "socket.connection.setup.timeout.ms",
            conf->connect_timeout_ms < 1000 ? 1000 : conf->connect_timeout_ms,
            err, errlen) != 0)) {
        rd_kafka_conf_destroy(rc);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(rc, log_cb);
    rd_kafka_conf_set_error_cb(rc, error_cb);
    rd_kafka_conf_set_opaque(rc, t);
    return rc;
}

/* Maps a delivery report error to a WQ_E* status. */
static int
delivery_status(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return 0;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        return WQ_ETIMEOUT;
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
        return WQ_ECLOSED;
    default:
        /* Broker error codes are positive: the broker refused it. */
        return e > 0 ? WQ_ENACK : WQ_EBROKER;
    }
}

/*
 * The delivery report callback: one call per produced message, inside
 * rd_kafka_poll()/rd_kafka_flush() on the calling thread.
 */
static void
dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    static const char *const persisted[] = {
        "not persisted", "possibly persisted", "persisted",
    };
    struct kafka_transport *t = opaque;
    rd_kafka_msg_status_t ms;
    char reason[384];
    int status;

    (void)rk;
    if (t->outstanding > 0)
        t->outstanding--;
    status = delivery_status(m->err);
    if (status != 0) {
        t->failed++;
        ms = rd_kafka_message_status(m);
        snprintf(reason, sizeof reason, "%s [%" PRId32 "]: %s (%s)",
            m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : "?", m->partition,
            rd_kafka_err2str(m->err),
            (unsigned)ms < WQ_ARRAY_LEN(persisted) ? persisted[ms] : "?");
        wq_log_debug(COMPONENT, "delivery failed: %s", reason);
    }
    if (t->on_confirm != NULL)
        t->on_confirm(m->_private, status, status != 0 ? reason : NULL,
            t->on_confirm_user);
}

static rd_kafka_conf_t *
producer_conf_new(struct kafka_transport *t,
    const struct wq_transport_conf *conf, char *err, size_t errlen)
{
    rd_kafka_conf_t *rc;

    if ((rc = conf_common(t, conf, err, errlen)) == NULL)
        return NULL;
    /*
     * acks=all: a delivery report says every in-sync replica holds it.
     *
     * Not idempotent.  librdkafka's idempotent producer (2.0.2 here)
     * reports a batch that failed NOT_LEADER_FOR_PARTITION (not persisted)
     * as delivered once a later batch succeeds ("implicitly acked"), and
     * a broker with no state for our producer id (a fresh topic, or
     * state expired after producer.id.expiration.ms) accepts that later
     * batch despite the sequence gap: confirmed tasks missing from the
     * topic, seen in 1 burst in 5 right after topic creation on Kafka
     * 4.4.  Without idempotence a retry may write a message twice (a
     * lost response) or out of order; workers claim by (queue,
     * idempotency key), so a duplicate runs once and order was never
     * promised.  A loss cannot be repaired downstream; a duplicate can.
     */
    if (conf_set(rc, "enable.idempotence", "false", err, errlen) != 0
        || conf_set(rc, "acks", "all", err, errlen) != 0
        /* a dead broker yields a delivery error, not an endless wait;
         * with the caller's deadline, librdkafka gives up when it does */
        || conf_set_int(rc, "message.timeout.ms",
            conf->publish_timeout_ms > 0 ? conf->publish_timeout_ms : 30000,
            err, errlen) != 0
        /*
         * lz4 compresses whole batches (INTRODUCTION.md "Compression"):
         * the envelopes' repeated field names and id prefixes shrink on
         * the wire and on the broker's disk for little CPU.  Measured on
         * the test broker, 200k 150-byte envelopes: ~420k msg/s against
         * ~340k with none (medians of 5).
         */
        || conf_set(rc, "compression.codec", "lz4", err, errlen) != 0
        /*
         * Topics are made by declare() with our partition count, never by
         * a metadata lookup of a mistyped queue (INTRODUCTION.md "Admin
         * API client" recommends this for clients that create topics).
         */
        || conf_set(rc, "allow.auto.create.topics", "false", err,
            errlen) != 0)
        goto fail;
    if (conf->kafka_linger_ms >= 0
        && conf_set_int(rc, "linger.ms", conf->kafka_linger_ms, err,
            errlen) != 0)
        goto fail;
    if (conf_apply_props(rc, RD_KAFKA_PRODUCER, conf, err, errlen) != 0)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(rc, dr_msg_cb);
    return rc;

fail:
    rd_kafka_conf_destroy(rc);
    return NULL;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
    rd_kafka_topic_partition_list_t *parts, void *opaque);
static void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
    rd_kafka_topic_partition_list_t *offsets, void *opaque);

static rd_kafka_conf_t *
consumer_conf_new(struct kafka_transport *t,
    const struct wq_transport_conf *conf, char *err, size_t errlen)
{
    rd_kafka_conf_t *rc;
    int hb;

    if ((rc = conf_common(t, conf, err, errlen)) == NULL)
        return NULL;
    if (conf->kafka_group_id != NULL && conf->kafka_group_id[0] != '\0'
        && conf_set(rc, "group.id", conf->kafka_group_id, err, errlen) != 0)
        goto fail;
    /*
     * We commit ourselves, and only what is finished; nothing may be
     * stored or committed behind our back.
     */
    if (conf_set(rc, "enable.auto.commit", "false", err, errlen) != 0
        || conf_set(rc, "enable.auto.offset.store", "false", err,
            errlen) != 0
        /* a new group starts at the oldest task, not after the newest */
        || conf_set(rc, "auto.offset.reset", "earliest", err, errlen) != 0
        /* tasks of aborted transactions are never run */
        || conf_set(rc, "isolation.level", "read_committed", err,
            errlen) != 0
        /*
         * Eager `range`, not `cooperative-sticky`: with manual commits a
         * commit that races a cooperative rebalance can make the member
         * lose its assignment and rejoin (librdkafka issue #4059, fixed by
         * PR #4908 after 2.8, so in both versions we build against).
         * Eager revokes everything at each rebalance, whose duplicates
         * the claim step absorbs.  Both protocols are handled below, so
         * kafka_props may still choose cooperative-sticky.
         */
        || conf_set(rc, "partition.assignment.strategy", "range", err,
            errlen) != 0)
        goto fail;
    /*
     * The prefetch, sized for a small process: queued.max.messages.kbytes
     * bounds librdkafka's queue of fetched messages (default 64 MiB;
     * "higher priority than queued.min.messages", CONFIGURATION.md), and
     * fetch.message.max.bytes the bytes asked per partition and fetch
     * (default 1 MiB; a fetch buffer lives as long as any of its
     * messages, and a worker holds up to concurrency + batch_max of
     * them).  1 MiB and 64 KiB keep a worker fed (about 12,000 noop
     * envelopes queued; larger messages make librdkafka grow the fetch
     * size by itself) and took a loaded worker from 39 MB to 28 MB.
     * kafka_props come after and win.
     */
    if (conf_set(rc, "queued.max.messages.kbytes", "1024", err, errlen) != 0
        || conf_set(rc, "fetch.message.max.bytes", "65536", err, errlen) != 0)
        goto fail;
    if (conf->kafka_session_timeout_ms > 0) {
        /*
         * A rebalance reaches a member with its next heartbeat: keep the
         * interval a tenth of the session (CONFIGURATION.md: heartbeats
         * keep the session alive), between 100 ms and the 3 s default.
         */
        hb = conf->kafka_session_timeout_ms / 10;
        hb = hb < 100 ? 100 : hb > 3000 ? 3000 : hb;
        if (conf_set_int(rc, "session.timeout.ms",
                conf->kafka_session_timeout_ms, err, errlen) != 0
            || conf_set_int(rc, "heartbeat.interval.ms", hb, err,
                errlen) != 0)
            goto fail;
    }
    if (conf_apply_props(rc, RD_KAFKA_CONSUMER, conf, err, errlen) != 0)
        goto fail;
    rd_kafka_conf_set_rebalance_cb(rc, rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(rc, offset_commit_cb);
    return rc;

fail:
    rd_kafka_conf_destroy(rc);
    return NULL;
}

/*
 * The conf of backlog()'s consumer: reads committed offsets and at most
 * one message per partition; never joins its group, stores or commits.
 */
static rd_kafka_conf_t *
backlog_conf_new(struct kafka_transport *t,
    const struct wq_transport_conf *conf, char *err, size_t errlen)
{
    rd_kafka_conf_t *rc;

    if ((rc = conf_common(t, conf, err, errlen)) == NULL)
        return NULL;
    if (conf_set(rc, "enable.auto.commit", "false", err, errlen) != 0
        || conf_set(rc, "enable.auto.offset.store", "false", err,
            errlen) != 0
        || conf_set(rc, "isolation.level", "read_committed", err,
            errlen) != 0
        || conf_apply_props(rc, RD_KAFKA_CONSUMER, conf, err, errlen) != 0) {
        rd_kafka_conf_destroy(rc);
        return NULL;
    }
    return rc;
}

/* --- producer ------------------------------------------------------------ */

static int
queue_check(const char *queue, char *err, size_t errlen)
{
    size_t n = queue != NULL ? strlen(queue) : 0;

    if (n == 0 || n > WQ_BROKER_QUEUE_MAX)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "kafka: queue name must have 1 to %d bytes", WQ_BROKER_QUEUE_MAX);
    return 0;
}

/* The producer's topic handle for `queue`, created on first use. */
static int
producer_topic(struct kafka_transport *t, const char *queue,
    rd_kafka_topic_t **out, char *err, size_t errlen)
{
    char name[TOPIC_MAX];
    rd_kafka_topic_t *rkt;
    struct topic_ref *ref;
    int rv;

    if (t->ntopics > 0
        && strcmp(t->topics[t->last_topic].queue, queue) == 0) {
        *out = t->topics[t->last_topic].rkt;
        return 0;
    }
    for (size_t i = 0; i < t->ntopics; i++) {
        if (strcmp(t->topics[i].queue, queue) == 0) {
            t->last_topic = i;
            *out = t->topics[i].rkt;
            return 0;
        }
    }
    if ((rv = queue_check(queue, err, errlen)) != 0)
        return rv;
    snprintf(name, sizeof name, "%s%s", WQ_QUEUE_PREFIX, queue);
    if ((rkt = rd_kafka_topic_new(t->producer, name, NULL)) == NULL)
        return wq_seterr(err, errlen, WQ_EBROKER, "kafka: topic %s: %s",
            name, rd_kafka_err2str(rd_kafka_last_error()));
    if (t->ntopics == t->topics_cap) {
        t->topics_cap = t->topics_cap ? t->topics_cap * 2 : 4;
        t->topics = xreallocarray(t->topics, t->topics_cap,
            sizeof *t->topics);
    }
    ref = &t->topics[t->ntopics];
    ref->queue = xstrdup(queue);
    ref->rkt = rkt;
    t->last_topic = t->ntopics++;
    *out = rkt;
    return 0;
}

static int
fatal_err(rd_kafka_t *rk, char *err, size_t errlen)
{
    char fatal[512] = "";
    rd_kafka_resp_err_t fe = rd_kafka_fatal_error(rk, fatal, sizeof fatal);

    return wq_seterr(err, errlen, WQ_EBROKER, "kafka: %s: fatal error %s: %s",
        rd_kafka_name(rk), rd_kafka_err2name(fe), fatal);
}

/*
 * Waits until a broker of `brokers` answers a metadata request, at most
 * timeout_ms, or fails at once when every broker refused the connection
 * (__ALL_BROKERS_DOWN, which error_cb notes when rd_kafka_poll serves
 * it).  The requests are short at first so that the refusal is seen
 * early, and grow for brokers far away.  WQ_EBROKER with one line that
 * names the brokers and the last connection error.
 */
static int
wait_connected(struct kafka_transport *t, const char *brokers, int timeout_ms,
    char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    uint64_t now = wq_clock_mono_ns();
    uint64_t deadline = now + (uint64_t)timeout_ms * 1000000u;
    rd_kafka_resp_err_t e;
    int slice = 250;

    for (;;) {
        int left = (int)((deadline - now) / 1000000u);

        if (left < 1)
            left = 1;
        e = rd_kafka_metadata(t->producer, 0, NULL, &md,
            slice < left ? slice : left);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_metadata_destroy(md);
            return 0;
        }
        rd_kafka_poll(t->producer, 0);
        now = wq_clock_mono_ns();
        if (t->all_down || now >= deadline)
            break;
        slice *= 2;
    }
    /* all down because the setup timed out (socket.connection.setup.
     * timeout.ms is the connect timeout too): a timeout, said as one */
    if (t->all_down && strstr(t->conn_err, "timed out") == NULL)
        wq_seterr(err, errlen, WQ_EBROKER, "kafka: cannot connect to "
            "broker %s: %s", brokers, t->conn_err);
    else
        wq_seterr(err, errlen, WQ_EBROKER, "kafka: broker %s did not "
            "answer within %d ms (broker.connect_timeout)%s%s", brokers,
            timeout_ms, t->conn_err[0] != '\0' ? ": " : "", t->conn_err);
    /* the why, for a daemon's log; below the CLI's level (warn), whose
     * one line is err */
    wq_log_info(COMPONENT, "%s", err);
    return WQ_EBROKER;
}

/*
 * Creates the producer and prepares the consumer's configuration.  With
 * conf->connect_timeout_ms > 0, blocks until a broker answered
 * (wait_connected): WQ_EBROKER when none did in time.  With 0 it does not
 * block: librdkafka connects in the background, so an unreachable broker
 * shows later, as delivery errors or declare() timing out.  WQ_ECONFIG
 * with err set if a property is rejected.
 */
static int
kafka_open(const struct wq_transport_conf *conf, wq_transport **out,
    char *err, size_t errlen)
{
    struct kafka_transport *t;
    rd_kafka_conf_t *pconf;
    char errstr[512];
    int rc;

    *out = NULL;
    if (conf->kafka_brokers == NULL || conf->kafka_brokers[0] == '\0')
        return wq_seterr(err, errlen, WQ_ECONFIG,
            "kafka: no brokers configured");
    t = xcalloc(1, sizeof *t);
    t->base.ops = &wq_transport_kafka_ops;
    t->on_confirm = conf->on_confirm;
    t->on_confirm_user = conf->on_confirm_user;
    t->partitions = conf->kafka_partitions;
    t->hold_max = conf->kafka_topic_hold_max > 0
        ? (size_t)conf->kafka_topic_hold_max : 0;
    t->replication = conf->kafka_replication;
    t->min_insync = conf->kafka_min_insync;

    /* Both confs now, so a bad property fails here, not at subscribe. */
    if ((pconf = producer_conf_new(t, conf, err, errlen)) == NULL)
        goto fail;
    if ((t->cconf = consumer_conf_new(t, conf, err, errlen)) == NULL
        || (t->bconf = backlog_conf_new(t, conf, err, errlen)) == NULL) {
        rd_kafka_conf_destroy(pconf);
        goto fail;
    }
    t->dead_bounds = conf->dead_bounds;
    t->dead_bounds_user = conf->dead_bounds_user;
    t->unclaimed = conf->consumer_unclaimed;
    t->reservations = conf->consumer_unclaimed || conf->on_revoke != NULL;
    t->on_revoke = conf->on_revoke;
    t->on_revoke_user = conf->on_revoke_user;
    if (conf->kafka_group_id != NULL && conf->kafka_group_id[0] != '\0')
        t->group_id = xstrdup(conf->kafka_group_id);
    /* rd_kafka_new takes pconf only on success; it does not connect yet. */
    atomic_store(&t->connecting, conf->connect_timeout_ms > 0);
    t->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, errstr,
        sizeof errstr);
    if (t->producer == NULL) {
        rd_kafka_conf_destroy(pconf);
        wq_seterr(err, errlen, WQ_ECONFIG, "kafka: producer: %s", errstr);
        goto fail;
    }
    if (conf->connect_timeout_ms > 0) {
        rc = wait_connected(t, conf->kafka_brokers, conf->connect_timeout_ms,
            err, errlen);
        if (rc != 0) {
            /* still quiet: destroying logs the attempts in progress */
            rd_kafka_destroy(t->producer);
            rd_kafka_conf_destroy(t->cconf);
            rd_kafka_conf_destroy(t->bconf);
            free(t->group_id);
            free(t);
            return rc;
        }
        atomic_store(&t->connecting, 0);
    }
    *out = (wq_transport *)(void *)t;
    return 0;

fail:
    if (t->cconf != NULL)
        rd_kafka_conf_destroy(t->cconf);
    if (t->bconf != NULL)
        rd_kafka_conf_destroy(t->bconf);
    free(t->group_id);
    free(t);
    return WQ_ECONFIG;
}

/* Creates topic `name` unless it exists; waits for the controller. */
static int
create_topic(struct kafka_transport *t, const char *name, int partitions,
    int replication, int64_t retention_ms, int timeout_ms, char *err,
    size_t errlen)
{
    rd_kafka_NewTopic_t *nt;
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    const rd_kafka_CreateTopics_result_t *res;
    const rd_kafka_topic_result_t **tr;
    rd_kafka_resp_err_t e;
    char errstr[512];
    size_t n;
    int rv = 0;

    /* -1 asks for the broker's defaults (KIP-464). */
    nt = rd_kafka_NewTopic_new(name, partitions > 0 ? partitions : -1,
        replication > 0 ? replication : -1, errstr, sizeof errstr);
    if (nt == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "kafka: topic %s: %s", name,
            errstr);
    if (retention_ms > 0) {
        char v[32];

        snprintf(v, sizeof v, "%" PRId64, retention_ms);
        if ((e = rd_kafka_NewTopic_set_config(nt, "retention.ms", v))
            != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rv = wq_seterr(err, errlen, WQ_EINVAL,
                "kafka: topic %s: retention.ms: %s", name,
                rd_kafka_err2str(e));
            goto out;
        }
    }
    if (t->min_insync > 0) {
        char v[16];

        snprintf(v, sizeof v, "%d", t->min_insync);
        if ((e = rd_kafka_NewTopic_set_config(nt, "min.insync.replicas", v))
            != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rv = wq_seterr(err, errlen, WQ_EINVAL,
                "kafka: topic %s: min.insync.replicas: %s", name,
                rd_kafka_err2str(e));
            goto out;
        }
    }
    opts = rd_kafka_AdminOptions_new(t->producer,
        RD_KAFKA_ADMIN_OP_CREATETOPICS);
    /* The broker answers once the topic exists on the controller. */
    if (rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, errstr,
            sizeof errstr) != RD_KAFKA_RESP_ERR_NO_ERROR
        || rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, errstr,
            sizeof errstr) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rv = wq_seterr(err, errlen, WQ_EINVAL, "kafka: %s", errstr);
        goto out;
    }
    q = rd_kafka_queue_new(t->producer);
    rd_kafka_CreateTopics(t->producer, &nt, 1, opts, q);
    /* The request timeout bounds this wait; the margin covers the rest. */
    if ((ev = rd_kafka_queue_poll(q, timeout_ms + 5000)) == NULL) {
        rv = wq_seterr(err, errlen, WQ_ETIMEOUT,
            "kafka: creating topic %s: no answer in %d ms", name, timeout_ms);
        goto out;
    }
    if ((e = rd_kafka_event_error(ev)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rv = wq_seterr(err, errlen, e == RD_KAFKA_RESP_ERR__TIMED_OUT
            ? WQ_ETIMEOUT : WQ_EBROKER, "kafka: creating topic %s: %s", name,
            rd_kafka_event_error_string(ev));
        goto out;
    }
    res = rd_kafka_event_CreateTopics_result(ev);
    tr = rd_kafka_CreateTopics_result_topics(res, &n);
    if (n != 1) {
        rv = wq_seterr(err, errlen, WQ_EBROKER,
            "kafka: creating topic %s: %zu results", name, n);
        goto out;
    }
    e = rd_kafka_topic_result_error(tr[0]);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR
        && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        rv = wq_seterr(err, errlen, WQ_EBROKER,
            "kafka: creating topic %s: %s: %s", name, rd_kafka_err2name(e),
            rd_kafka_topic_result_error_string(tr[0]) != NULL
            ? rd_kafka_topic_result_error_string(tr[0])
            : rd_kafka_err2str(e));
    else if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        wq_log_info(COMPONENT, "created topic %s", name);

out:
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    if (q != NULL)
        rd_kafka_queue_destroy(q);
    if (opts != NULL)
        rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy(nt);
    return rv;
}

/* 1 if the metadata shows the topic with a leader for every partition. */
static int
topic_ready(const struct rd_kafka_metadata *md, char *why, size_t whylen)
{
    const struct rd_kafka_metadata_topic *mt;

    if (md->topic_cnt != 1) {
        snprintf(why, whylen, "not in metadata");
        return 0;
    }
    mt = &md->topics[0];
    if (mt->err != RD_KAFKA_RESP_ERR_NO_ERROR || mt->partition_cnt <= 0) {
        snprintf(why, whylen, "%s", mt->err != RD_KAFKA_RESP_ERR_NO_ERROR
            ? rd_kafka_err2str(mt->err) : "no partitions");
        return 0;
    }
    for (int i = 0; i < mt->partition_cnt; i++) {
        if (mt->partitions[i].err != RD_KAFKA_RESP_ERR_NO_ERROR
            || mt->partitions[i].leader < 0) {
            snprintf(why, whylen, "partition %" PRId32 " has no leader",
                mt->partitions[i].id);
            return 0;
        }
    }
    return 1;
}

/*
 * Creates topic "workq.<queue>" with conf->kafka_partitions and
 * kafka_replication (<= 0: the broker's defaults) and, when
 * kafka_min_insync > 0, that min.insync.replicas, unless it exists, then
 * waits until every partition has a leader.  Blocks up to
 * DECLARE_TIMEOUT_MS; WQ_ETIMEOUT or WQ_EBROKER with err set on failure.
 * An existing topic keeps its partition count.  A new dead-letter topic
 * "workq.Q.dead" gets retention.ms from conf->dead_bounds (Kafka has no
 * length bound); an existing one keeps its configuration (change it with
 * kafka-configs --alter).
 */
static int
kafka_declare(wq_transport *wt, const char *queue, char *err, size_t errlen)
{
    struct kafka_transport *t = K(wt);
    const struct rd_kafka_metadata *md;
    uint64_t deadline;
    rd_kafka_topic_t *rkt;
    rd_kafka_resp_err_t e;
    char name[TOPIC_MAX], why[128] = "no answer";
    long backoff_ms = 20;
    int64_t ttl_ms = 0, max_len = 0;
    size_t qn;
    int rv, ready;

    if ((rv = queue_check(queue, err, errlen)) != 0)
        return rv;
    qn = strlen(queue);
    snprintf(name, sizeof name, "%s%s", WQ_QUEUE_PREFIX, queue);
    if (t->dead_bounds != NULL && qn > 5
        && strcmp(queue + qn - 5, ".dead") == 0) {
        char base[WQ_BROKER_QUEUE_MAX + 1];

        snprintf(base, sizeof base, "%.*s", (int)(qn - 5), queue);
        t->dead_bounds(t->dead_bounds_user, base, &ttl_ms, &max_len);
    }
    deadline = wq_clock_mono_ns() + (uint64_t)DECLARE_TIMEOUT_MS * 1000000u;
    if ((rv = create_topic(t, name, t->partitions, t->replication, ttl_ms,
            DECLARE_TIMEOUT_MS, err, errlen)) != 0)
        return rv;
    if ((rv = producer_topic(t, queue, &rkt, err, errlen)) != 0)
        return rv;
    /*
     * A fresh topic may take a moment to have leaders everywhere
     * (INTRODUCTION.md "Topic metadata propagation"): ask until it does.
     */
    for (;;) {
        e = rd_kafka_metadata(t->producer, 0, rkt, &md,
            wq_clock_ms_until(deadline) > 5000 ? 5000
            : wq_clock_ms_until(deadline) + 1);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            ready = topic_ready(md, why, sizeof why);
            rd_kafka_metadata_destroy(md);
            if (ready)
                return 0;
        } else {
            snprintf(why, sizeof why, "%s", rd_kafka_err2str(e));
        }
        if (wq_clock_ms_until(deadline) == 0)
            return wq_seterr(err, errlen, WQ_ETIMEOUT,
                "kafka: topic %s not ready after %d ms: %s", name,
                DECLARE_TIMEOUT_MS, why);
        nanosleep(&(struct timespec){ 0, backoff_ms * 1000000L }, NULL);
        backoff_ms = backoff_ms * 2 > 500 ? 500 : backoff_ms * 2;
    }
}

/*
 * Queues one message, key = the idempotency key (it also picks the
 * partition), body copied.  Returns once librdkafka holds it: blocks only
 * while the local queue is full.  The queue must have been declared (we
 * never auto-create topics).  on_confirm follows, exactly once.
 */
static int
kafka_publish(wq_transport *wt, const char *queue, const void *key,
    size_t keylen, const void *body, size_t len, void *opaque, char *err,
    size_t errlen)
{
    struct kafka_transport *t = K(wt);
    rd_kafka_topic_t *rkt;
    rd_kafka_resp_err_t e;
    int rv;

    if ((rv = producer_topic(t, queue, &rkt, err, errlen)) != 0)
        return rv;
    for (;;) {
        /* F_COPY: librdkafka copies the body with its message header. */
        e = rd_kafka_producev(t->producer, RD_KAFKA_V_RKT(rkt),
            RD_KAFKA_V_KEY(key, keylen),
            RD_KAFKA_V_VALUE((void *)(uintptr_t)body, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        /*
         * The local queue is full (queue.buffering.max.*): serving
         * delivery reports makes room.  Wait, then try again; never drop.
         * message.timeout.ms bounds this even with the broker gone.
         */
        rd_kafka_poll(t->producer, QUEUE_FULL_WAIT_MS);
    }
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        break;
    case RD_KAFKA_RESP_ERR__FATAL:
        return fatal_err(t->producer, err, errlen);
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return wq_seterr(err, errlen, WQ_ETOOBIG,
            "kafka: %zu-byte message to %s%s is too large", len,
            WQ_QUEUE_PREFIX, queue);
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        return wq_seterr(err, errlen, WQ_ENOENT, "kafka: %s%s: %s",
            WQ_QUEUE_PREFIX, queue, rd_kafka_err2str(e));
    default:
        return wq_seterr(err, errlen, WQ_EBROKER, "kafka: %s%s: %s",
            WQ_QUEUE_PREFIX, queue, rd_kafka_err2str(e));
    }
    t->outstanding++;
    /* Serve the reports that are ready, so on_confirm keeps flowing. */
    rd_kafka_poll(t->producer, 0);
    return 0;
}

/*
 * Sends what is queued at once and waits for every delivery report, up
 * to timeout_ms (< 0: until message.timeout.ms has failed the rest).  0
 * if every message since the last flush that returned 0 or WQ_ENACK was
 * confirmed; WQ_ENACK if any was refused or timed out; WQ_ETIMEOUT if
 * reports are still missing (the failures seen so far are then reported
 * by the next flush).
 */
static int
kafka_flush(wq_transport *wt, int timeout_ms, char *err, size_t errlen)
{
    struct kafka_transport *t = K(wt);
    uint64_t failed;

    /* Sends at once, ignoring linger.ms, and serves delivery reports. */
    rd_kafka_flush(t->producer, timeout_ms < 0 ? -1 : timeout_ms);
    if (t->outstanding > 0)
        return wq_seterr(err, errlen, WQ_ETIMEOUT,
            "kafka: %" PRIu64 " message(s) not confirmed after %d ms",
            t->outstanding, timeout_ms);
    if (t->failed > 0) {
        failed = t->failed;
        t->failed = 0;
        return wq_seterr(err, errlen, WQ_ENACK,
            "kafka: %" PRIu64 " message(s) refused or undeliverable", failed);
    }
    return 0;
}

/* --- consumer: in-flight offsets ----------------------------------------- */

static struct part *
part_find(struct kafka_transport *t, const char *topic, int32_t partition)
{
    struct part *p = t->last_part;

    if (p != NULL && p->partition == partition && strcmp(p->topic, topic) == 0)
        return p;
    for (size_t i = 0; i < t->nparts; i++) {
        p = t->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return t->last_part = p;
    }
    return NULL;
}

static struct part *
part_get(struct kafka_transport *t, const char *topic, int32_t partition)
{
    struct part *p;

    if ((p = part_find(t, topic, partition)) != NULL)
        return p;
    if (t->nparts == t->parts_cap) {
        t->parts_cap = t->parts_cap ? t->parts_cap * 2 : 8;
        t->parts = xreallocarray(t->parts, t->parts_cap, sizeof *t->parts);
    }
    p = xcalloc(1, sizeof *p);
    p->topic = xstrdup(topic);
    p->partition = partition;
    for (size_t i = 0; i < t->nholds && p->hold == NULL; i++)
        if (strcmp(t->holds[i]->topic, topic) == 0)
            p->hold = t->holds[i];
    if (p->hold == NULL) {
        t->holds = xreallocarray(t->holds, t->nholds + 1, sizeof *t->holds);
        p->hold = xcalloc(1, sizeof *p->hold);
        p->hold->topic = xstrdup(topic);
        t->holds[t->nholds++] = p->hold;
    }
    p->next = p->committed = p->start_at = -1;
    p->suspect_below = p->reserved = p->meta_sent = -1;
    p->reserve_sent = p->reserve_inflight = -1;
    t->parts[t->nparts++] = p;
    return t->last_part = p;
}

/* Pauses (or resumes) the assigned partitions of h's topic. */
static void
hold_pause(struct kafka_transport *t, struct topic_hold *h, int pause)
{
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_resp_err_t e;

    h->paused = pause;
    if (t->consumer == NULL)
        return;
    list = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < t->nparts; i++)
        if (t->parts[i]->hold == h && t->parts[i]->active)
            rd_kafka_topic_partition_list_add(list, h->topic,
                t->parts[i]->partition);
    if (list->cnt > 0) {
        e = pause ? rd_kafka_pause_partitions(t->consumer, list)
            : rd_kafka_resume_partitions(t->consumer, list);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            wq_log_warn(COMPONENT, "%s %s: %s", pause ? "pause" : "resume",
                h->topic, rd_kafka_err2str(e));
        else
            wq_log_debug(COMPONENT, "%s %s: %zu deliveries held",
                pause ? "paused" : "resumed", h->topic, h->held);
    }
    rd_kafka_topic_partition_list_destroy(list);
}

/* 1 if topics a and b are bands of one queue (priority.h). */
static int
same_queue(const char *a, const char *b)
{
    size_t la, lb;

    if (strncmp(a, WQ_QUEUE_PREFIX, PREFIX_LEN) == 0
        && strncmp(b, WQ_QUEUE_PREFIX, PREFIX_LEN) == 0) {
        a += PREFIX_LEN;
        b += PREFIX_LEN;
    }
    (void)wq_priority_of_band(a, &la);
    (void)wq_priority_of_band(b, &lb);
    return la == lb && memcmp(a, b, la) == 0;
}

/* The reservation in a commit's metadata (UNCLAIMED_META); -1: none. */
static int64_t
meta_parse(const void *md, size_t len)
{
    const size_t pl = sizeof UNCLAIMED_META - 1;
    char buf[48], *end;
    long long v;

    if (md == NULL || len <= pl || len >= sizeof buf
        || memcmp(md, UNCLAIMED_META, pl) != 0)
        return -1;
    memcpy(buf, md, len);
    buf[len] = '\0';
    errno = 0;
    v = strtoll(buf + pl, &end, 10);
    return errno == 0 && end != buf + pl && *end == '\0' && v >= 0 ? v : -1;
}

/* Puts reservation r (>= 0) in a commit's metadata, which librdkafka
 * frees with the list. */
static void
meta_set(rd_kafka_topic_partition_t *e, int64_t r)
{
    char buf[48];
    int n;

    if (r < 0)
        return;
    n = snprintf(buf, sizeof buf, UNCLAIMED_META "%" PRId64, r);
    e->metadata = xmalloc((size_t)n);
    memcpy(e->metadata, buf, (size_t)n);
    e->metadata_size = (size_t)n;
}

/*
 * Asks the group's coordinator for p's committed offset (start_at) and
 * the reservation in its metadata (suspect_below): a round trip, once per
 * partition and assignment; a failed one is tried again after
 * UNCLAIMED_RETRY_MS.
 */
static void
part_fetch_committed(struct kafka_transport *t, struct part *p)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_topic_partition_t *e;
    rd_kafka_resp_err_t err;

    if (p->meta_known || wq_clock_mono_ns() < p->meta_retry_ns)
        return;
    l = rd_kafka_topic_partition_list_new(1);
    e = rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    /* a short wait: one round trip to the group's coordinator */
    err = rd_kafka_committed(t->consumer, l, 2000);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        err = e->err;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        p->start_at = e->offset >= 0 ? e->offset : 0;
        p->suspect_below = meta_parse(e->metadata, e->metadata_size);
        p->meta_known = 1;
    } else {
        wq_log_warn(COMPONENT, "%s [%" PRId32 "]: committed offset: %s; "
            "trying again", p->topic, p->partition, rd_kafka_err2str(err));
        p->meta_retry_ns = wq_clock_mono_ns()
            + (uint64_t)UNCLAIMED_RETRY_MS * 1000000u;
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/*
 * 1 if a partition of ours in another band of h's queue has messages we
 * have not polled (other queues do not count: the hold is for bands): its high watermark (librdkafka's cached figure, from the last
 * fetch; no request) past our position there.  Before the first poll of
 * a partition the position is where its fetch started, the group's
 * committed offset, asked of the broker once per assignment.
 */
static int
hold_needed(struct kafka_transport *t, const struct topic_hold *h)
{
    for (size_t i = 0; i < t->nparts; i++) {
        struct part *p = t->parts[i];
        int64_t lo, hi, pos;

        if (p->hold == h || !p->active || !same_queue(h->topic, p->topic)
            || rd_kafka_get_watermark_offsets(t->consumer, p->topic,
                p->partition, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR
            || hi <= 0 || hi <= lo)
            continue;       /* not fetched yet, or empty */
        if ((pos = p->next) < 0) {
            if (p->start_at < 0)
                part_fetch_committed(t, p);
            pos = p->start_at > lo ? p->start_at : lo;
        }
        if (hi > pos)
            return 1;
    }
    return 0;
}

/* Pauses the topics at their limit once others have a backlog (see
 * struct topic_hold); at most every HOLD_CHECK_MS. */
static void
hold_check(struct kafka_transport *t)
{
    uint64_t now = wq_clock_mono_ns();

    if (now < t->hold_check_ns)
        return;
    t->hold_check_ns = now + (uint64_t)HOLD_CHECK_MS * 1000000u;
    for (size_t i = 0; i < t->nholds; i++) {
        struct topic_hold *h = t->holds[i];

        if (!h->paused && h->held >= t->hold_max && hold_needed(t, h))
            hold_pause(t, h, 1);
    }
}

/* Forgets the in-flight offsets; a new generation makes old deliveries
 * stale.  Large arrays are given back. */
static void
part_reset(struct kafka_transport *t, struct part *p, int active)
{
    p->active = active;
    p->gen = ++t->gen_counter;
    p->next = p->committed = p->start_at = -1;
    p->suspect_below = p->reserved = p->meta_sent = -1;
    p->reserve_sent = p->reserve_inflight = -1;
    p->meta_known = 0;
    p->meta_retry_ns = 0;
    p->start = p->len = 0;
    if (p->cap > 4096) {
        free(p->fl);
        p->fl = NULL;
        p->cap = 0;
    }
}

/* Index of the first in-flight entry with offset >= off. */
static size_t
part_lower_bound(const struct part *p, int64_t off)
{
    size_t lo = p->start, hi = p->len;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (p->fl[mid].offset < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Makes room for one more entry at the end. */
static void
part_reserve(struct part *p)
{
    if (p->len < p->cap)
        return;
    if (p->start > 0 && p->start >= p->cap / 2) {
        memmove(p->fl, p->fl + p->start,
            (p->len - p->start) * sizeof *p->fl);
        p->len -= p->start;
        p->start = 0;
        return;
    }
    p->cap = p->cap ? p->cap * 2 : 64;
    p->fl = xreallocarray(p->fl, p->cap, sizeof *p->fl);
}

/* A polled offset goes in flight. */
static void
part_track(struct part *p, int64_t off)
{
    size_t i;

    if (p->start == p->len)
        p->start = p->len = 0;
    if (p->start == p->len || off > p->fl[p->len - 1].offset) {
        /* The usual case: offsets of a partition arrive ascending. */
        part_reserve(p);
        p->fl[p->len++] = (struct inflight){ off, 1, 0 };
    } else {
        /*
         * An offset at or below one in flight: the fetch position went
         * back (an offset reset).  Keep the array sorted; an offset
         * already in flight counts twice.
         */
        wq_log_warn(COMPONENT, "%s [%" PRId32 "]: offset %" PRId64
            " again, below %" PRId64, p->topic, p->partition, off,
            p->fl[p->len - 1].offset);
        i = part_lower_bound(p, off);
        if (i < p->len && p->fl[i].offset == off) {
            p->fl[i].pending++;
        } else {
            part_reserve(p);
            i = part_lower_bound(p, off);
            memmove(p->fl + i + 1, p->fl + i, (p->len - i) * sizeof *p->fl);
            p->fl[i] = (struct inflight){ off, 1, 0 };
            p->len++;
        }
    }
    p->next = off + 1;
}

/* An acked (finish) or nacked offset; the finished prefix leaves. */
static void
part_finish(struct part *p, int64_t off, int nack)
{
    size_t i = part_lower_bound(p, off);

    if (i >= p->len || p->fl[i].offset != off)
        return;
    if (nack)
        p->fl[i].nacked = 1;
    if (p->fl[i].pending > 0)
        p->fl[i].pending--;
    while (p->start < p->len && p->fl[p->start].pending == 0
        && !p->fl[p->start].nacked)
        p->start++;
}

/*
 * The offset to commit: the lowest one in flight, or the last polled + 1
 * when none is; the lower of the two after an offset reset.  -1: nothing
 * was polled in this assignment.
 */
static int64_t
part_committable(const struct part *p)
{
    int64_t c = p->next;

    if (c >= 0 && p->start < p->len && p->fl[p->start].offset < c)
        c = p->fl[p->start].offset;
    return c;
}

/*
 * The reservation p's commit of offset c carries: the last holders' or
 * ours, whichever reaches further; -1 when it does not pass c (the next
 * holder starts at c).
 */
static int64_t
part_meta(const struct part *p, int64_t c)
{
    int64_t r = p->suspect_below > p->reserve_sent ? p->suspect_below
        : p->reserve_sent;

    return r > c ? r : -1;
}

/*
 * The answer to a reservation commit (reserve_ahead), served from t->rq;
 * `opaque` is the partition's generation when it was sent, so that an
 * answer from an earlier assignment of the partition confirms nothing.
 */
static void
reserve_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
    rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    struct kafka_transport *t = rd_kafka_opaque(rk);
    rd_kafka_topic_partition_t *o;
    struct part *p;

    if (offsets == NULL || offsets->cnt != 1)
        return;
    o = &offsets->elems[0];
    p = part_find(t, o->topic, o->partition);
    if (p == NULL || p->gen != (uint64_t)(uintptr_t)opaque
        || p->reserve_inflight < 0)
        return;
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        e = o->err;
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (p->reserve_inflight > p->reserved)
            p->reserved = p->reserve_inflight;
    } else {
        wq_log_warn(COMPONENT, "%s [%" PRId32 "]: reservation for unclaimed "
            "runs not stored (%s); claiming first", p->topic, p->partition,
            rd_kafka_err2str(e));
        p->committed = -1;      /* the next commit sends it again */
        p->meta_sent = -2;
        p->meta_retry_ns = wq_clock_mono_ns()
            + (uint64_t)UNCLAIMED_RETRY_MS * 1000000u;
    }
    p->reserve_inflight = -1;
}

/*
 * Moves p's reservation UNCLAIMED_WINDOW past `off` once `off` came
 * within half a window of what was sent, with a commit of its own whose
 * answer reserve_cb takes (see the top of this file): only what the group
 * stored may be marked first.  One at a time per partition.  The first
 * of an assignment waits for its answer, up to RESERVE_WAIT_MS; the
 * others are answered while the window still has room.
 */
static void
reserve_ahead(struct kafka_transport *t, struct part *p, int64_t off)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_topic_partition_t *e;
    int64_t c = part_committable(p), r = off + UNCLAIMED_WINDOW;
    rd_kafka_resp_err_t err;
    uint64_t end;

    if (p->reserve_inflight >= 0)
        rd_kafka_queue_poll_callback(t->rq, 0);
    if (p->reserve_inflight >= 0 || off + UNCLAIMED_WINDOW / 2
        < p->reserve_sent || c < 0 || wq_clock_mono_ns() < p->meta_retry_ns)
        return;
    if (r < p->suspect_below)
        r = p->suspect_below;
    l = rd_kafka_topic_partition_list_new(1);
    e = rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    e->offset = c;
    meta_set(e, r);
    err = rd_kafka_commit_queue(t->consumer, l, t->rq, reserve_cb,
        (void *)(uintptr_t)p->gen);
    rd_kafka_topic_partition_list_destroy(l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        wq_log_warn(COMPONENT, "%s [%" PRId32 "]: reservation for unclaimed "
            "runs: %s; claiming first", p->topic, p->partition,
            rd_kafka_err2str(err));
        p->meta_retry_ns = wq_clock_mono_ns()
            + (uint64_t)UNCLAIMED_RETRY_MS * 1000000u;
        return;
    }
    p->reserve_inflight = r;
    if (r > p->reserve_sent)
        p->reserve_sent = r;
    p->committed = c;
    p->meta_sent = part_meta(p, c);
    end = wq_clock_mono_ns() + (uint64_t)RESERVE_WAIT_MS * 1000000u;
    while (p->reserved < 0 && p->reserve_inflight >= 0
        && wq_clock_mono_ns() < end)
        rd_kafka_queue_poll_callback(t->rq, wq_clock_ms_until(end));
}

/* Marks a delivery first: an offset of our stored reservation, not below
 * the last holders' (see the top of this file). */
static void
unclaimed_mark(struct kafka_transport *t, struct part *p,
    struct kdelivery *kd)
{
    int64_t off = kd->pub.offset;

    if (kd->pub.redelivered)
        return;
    reserve_ahead(t, p, off);
    kd->pub.first = off < p->reserved;
}

/*
 * Before partitions go (`parts`; NULL: all, at close): the caller's
 * deliveries lose `first`, and unless the assignment is lost already,
 * on_revoke writes the rows of the caller's unclaimed runs; when it did,
 * our reservation leaves the next commits of those partitions.
 */
static void
unclaimed_revoke(struct kafka_transport *t,
    const rd_kafka_topic_partition_list_t *parts, int lost)
{
    struct part *p;

    for (struct kdelivery *kd = t->live; kd != NULL; kd = kd->next) {
        kd->pub.first = 0;
        if (parts == NULL || rd_kafka_topic_partition_list_find(parts,
                kd->part->topic, kd->part->partition) != NULL)
            kd->pub.revoked = 1;
    }
    if (lost || t->on_revoke == NULL || t->on_revoke(t->on_revoke_user) != 0)
        return;
    for (size_t i = 0; i < (parts != NULL ? (size_t)parts->cnt : t->nparts);
        i++) {
        p = parts != NULL ? part_find(t, parts->elems[i].topic,
            parts->elems[i].partition) : t->parts[i];
        if (p != NULL)
            p->reserved = p->reserve_sent = -1;
    }
}

/* --- consumer: commits and rebalances ------------------------------------ */

/*
 * Commits the committable offsets of the active partitions (of those in
 * `only` when not NULL) that moved since their last commit.
 */
static void
commit_parts(struct kafka_transport *t,
    const rd_kafka_topic_partition_list_t *only, int async)
{
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_resp_err_t e;
    struct part *p;
    int64_t c, r;
    size_t n = only != NULL ? (size_t)only->cnt : t->nparts;
    rd_kafka_topic_partition_t *elem;

    if (only == NULL) {
        /* Everything committable goes now: the batch starts over. */
        t->acks_pending = 0;
        t->first_ack_ns = 0;
    }
    if (t->consumer == NULL || n == 0)
        return;
    list = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        p = only != NULL
            ? part_find(t, only->elems[i].topic, only->elems[i].partition)
            : t->parts[i];
        if (p == NULL || !p->active || (c = part_committable(p)) < 0
            || (t->reservations && !p->meta_known))
            continue;       /* unknown: its last holder's R would be lost */
        r = t->reservations ? part_meta(p, c) : -1;
        if (c <= p->committed && r == p->meta_sent)
            continue;
        elem = rd_kafka_topic_partition_list_add(list, p->topic,
            p->partition);
        elem->offset = c;
        meta_set(elem, r);
        p->committed = c;
        p->meta_sent = r;
    }
    if (list->cnt > 0) {
        e = rd_kafka_commit(t->consumer, list, async);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            wq_log_warn(COMPONENT, "commit of %d partition(s): %s",
                list->cnt, rd_kafka_err2str(e));
            /* Not committed: the next commit tries again. */
            for (int i = 0; i < list->cnt; i++)
                if ((p = part_find(t, list->elems[i].topic,
                        list->elems[i].partition)) != NULL) {
                    p->committed = -1;
                    p->meta_sent = -2;
                }
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
}

/* Milliseconds until the batched commit is due; 0: now. */
static int
commit_due_ms(const struct kafka_transport *t)
{
    if (t->acks_pending >= COMMIT_EVERY_ACKS)
        return 0;
    return wq_clock_ms_until(t->first_ack_ns
        + (uint64_t)COMMIT_EVERY_MS * 1000000u);
}

static void
commit_maybe(struct kafka_transport *t)
{
    if (t->acks_pending > 0 && commit_due_ms(t) == 0)
        commit_parts(t, NULL, 1);
}

static void
ack_counted(struct kafka_transport *t)
{
    if (t->acks_pending++ == 0)
        t->first_ack_ns = wq_clock_mono_ns();
}

/*
 * Results of our commits, served by rd_kafka_consumer_poll().  A failed
 * partition is committed again with the next batch.
 */
static void
offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
    rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    struct kafka_transport *t = opaque;
    rd_kafka_topic_partition_t *o;
    rd_kafka_resp_err_t pe;
    struct part *p;

    (void)rk;
    if (e == RD_KAFKA_RESP_ERR__NO_OFFSET || offsets == NULL)
        return;
    for (int i = 0; i < offsets->cnt; i++) {
        o = &offsets->elems[i];
        pe = o->err != RD_KAFKA_RESP_ERR_NO_ERROR ? o->err : e;
        if (pe == RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        wq_log_warn(COMPONENT, "commit %s [%" PRId32 "] @%" PRId64 ": %s",
            o->topic, o->partition, o->offset, rd_kafka_err2str(pe));
        p = part_find(t, o->topic, o->partition);
        if (p != NULL && p->active && p->committed == o->offset) {
            p->committed = -1;
            p->meta_sent = -2;
            ack_counted(t);
        }
    }
}

static void
log_partitions(const char *what, const rd_kafka_topic_partition_list_t *l)
{
    char buf[512];
    size_t off = 0;

    if (!wq_log_enabled(WQ_LOG_INFO))
        return;
    buf[0] = '\0';
    for (int i = 0; i < l->cnt && off < sizeof buf; i++) {
        int n = snprintf(buf + off, sizeof buf - off, "%s%s[%" PRId32 "]",
            i ? " " : "", l->elems[i].topic, l->elems[i].partition);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    wq_log_info(COMPONENT, "%s %d partition(s): %s", what, l->cnt, buf);
}

/*
 * Group rebalances, served by rd_kafka_consumer_poll() (and by
 * rd_kafka_consumer_close()).  Eager protocols assign and revoke the whole
 * set with rd_kafka_assign(); the cooperative one changes it with
 * rd_kafka_incremental_(un)assign() (rdkafka.h, rd_kafka_conf_set_
 * rebalance_cb).
 */
static void
rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
    rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_transport *t = opaque;
    const char *proto = rd_kafka_rebalance_protocol(rk);
    int coop = proto != NULL && strcmp(proto, "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t ae = RD_KAFKA_RESP_ERR_NO_ERROR;
    struct part *p;

    switch (e) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        log_partitions("assigned", parts);
        /* Start fresh: the fetch starts at the committed offset. */
        for (int i = 0; i < parts->cnt; i++)
            part_reset(t, part_get(t, parts->elems[i].topic,
                parts->elems[i].partition), 1);
        if (coop)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            ae = rd_kafka_assign(rk, parts);
        /* a topic at its hold limit stays paused on new partitions too */
        for (size_t i = 0; i < t->nholds; i++)
            if (t->holds[i]->paused)
                hold_pause(t, t->holds[i], 1);
        break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        log_partitions(rd_kafka_assignment_lost(rk) ? "lost" : "revoked",
            parts);
        if (t->reservations)
            unclaimed_revoke(t, parts, rd_kafka_assignment_lost(rk));
        /* A lost assignment is owned by others already: no commit. */
        if (!rd_kafka_assignment_lost(rk))
            commit_parts(t, parts, 0);
        for (int i = 0; i < parts->cnt; i++)
            if ((p = part_find(t, parts->elems[i].topic,
                    parts->elems[i].partition)) != NULL)
                part_reset(t, p, 0);
        if (coop)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            ae = rd_kafka_assign(rk, NULL);
        break;
    default:
        /* rdkafka.h: on any other error, assign(NULL) to resync. */
        wq_log_warn(COMPONENT, "rebalance failed: %s", rd_kafka_err2str(e));
        for (size_t i = 0; i < t->nparts; i++)
            if (t->parts[i]->active)
                part_reset(t, t->parts[i], 0);
        ae = rd_kafka_assign(rk, NULL);
        break;
    }
    if (error != NULL) {
        wq_log_warn(COMPONENT, "incremental assignment change: %s",
            rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    if (ae != RD_KAFKA_RESP_ERR_NO_ERROR)
        wq_log_warn(COMPONENT, "assign: %s", rd_kafka_err2str(ae));
}

/* --- consumer: the transport operations ---------------------------------- */

/*
 * Creates the consumer on first use, in group conf->kafka_group_id or
 * else "workq.<queues[0]>", and subscribes to the queues' topics (a later
 * call replaces the subscription).  Does not block: the group is joined
 * and partitions are assigned inside poll().
 */
static int
kafka_subscribe(wq_transport *wt, const char *const *queues, size_t n,
    char *err, size_t errlen)
{
    struct kafka_transport *t = K(wt);
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_resp_err_t e;
    char name[TOPIC_MAX], errstr[512];
    int rv;

    if (n == 0)
        return wq_seterr(err, errlen, WQ_EINVAL, "kafka: no queue to consume");
    for (size_t i = 0; i < n; i++)
        if ((rv = queue_check(queues[i], err, errlen)) != 0)
            return rv;
    if (t->consumer == NULL) {
        /* A consumer group per queue (DESIGN.md step 3) by default. */
        snprintf(name, sizeof name, "%s%s", WQ_QUEUE_PREFIX, queues[0]);
        if (!conf_has(t->cconf, "group.id")
            && (rv = conf_set(t->cconf, "group.id", name, err, errlen)) != 0)
            return rv;
        t->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, t->cconf, errstr,
            sizeof errstr);
        if (t->consumer == NULL)
            return wq_seterr(err, errlen, WQ_ECONFIG, "kafka: consumer: %s",
                errstr);
        t->cconf = NULL;    /* owned by the consumer now */
        /* Errors and logs of the main queue come out of consumer_poll. */
        rd_kafka_poll_set_consumer(t->consumer);
        atomic_store(&t->cq, rd_kafka_queue_get_consumer(t->consumer));
        t->rq = rd_kafka_queue_new(t->consumer);
    }
    list = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%s", WQ_QUEUE_PREFIX, queues[i]);
        rd_kafka_topic_partition_list_add(list, name, RD_KAFKA_PARTITION_UA);
    }
    e = rd_kafka_subscribe(t->consumer, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e == RD_KAFKA_RESP_ERR__FATAL)
        return fatal_err(t->consumer, err, errlen);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return wq_seterr(err, errlen, WQ_EBROKER, "kafka: subscribe: %s",
            rd_kafka_err2str(e));
    return 0;
}

/* Hands a message to the caller wrapped in a (pooled) delivery. */
static struct kdelivery *
deliver(struct kafka_transport *t, rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    struct kdelivery *kd;
    struct part *p = part_find(t, topic, m->partition);
    int again;

    if (p == NULL || !p->active) {
        /* Not ours (any more): its owner runs it. */
        wq_log_warn(COMPONENT, "%s [%" PRId32 "] @%" PRId64
            ": not assigned, skipped", topic, m->partition, m->offset);
        rd_kafka_message_destroy(m);
        return NULL;
    }
    again = p->next >= 0 && m->offset < p->next;
    part_track(p, m->offset);
    if (++p->hold->held >= t->hold_max && t->hold_max > 0
        && !p->hold->paused) {
        t->hold_check_ns = 0;   /* at the limit now: look at once */
        hold_check(t);
    }
    if ((kd = t->pool) != NULL)
        t->pool = kd->next;
    else
        kd = xmalloc(sizeof *kd);
    kd->msg = m;
    kd->part = p;
    kd->gen = p->gen;
    kd->pub.queue = strncmp(topic, WQ_QUEUE_PREFIX, PREFIX_LEN) == 0
        ? topic + PREFIX_LEN : topic;
    kd->pub.body = m->payload;
    kd->pub.len = m->len;
    kd->pub.key = m->key;
    kd->pub.keylen = m->key_len;
    kd->pub.partition = m->partition;
    kd->pub.offset = m->offset;
    /* Kafka does not say; an offset polled again in this assignment (an
     * offset reset) was seen before */
    kd->pub.redelivered = again;
    kd->pub.first = 0;
    kd->pub.revoked = 0;
    if (t->reservations) {
        /* below the last holders' reservation, or while it is unknown:
         * it may have run on them (see the top of this file) */
        part_fetch_committed(t, p);
        if (!p->meta_known || m->offset < p->suspect_below)
            kd->pub.redelivered = 1;
    }
    if (t->unclaimed)
        unclaimed_mark(t, p, kd);
    kd->prev = NULL;
    kd->next = t->live;
    if (t->live != NULL)
        t->live->prev = kd;
    t->live = kd;
    return kd;
}

/* Destroys the message and puts the delivery back in the pool. */
static void
release(struct kafka_transport *t, struct kdelivery *kd)
{
    struct topic_hold *h = kd->part->hold;

    if (h->held > 0 && --h->held <= t->hold_max / 2 && h->paused
        && t->hold_max > 0)
        hold_pause(t, h, 0);
    else if (h->held >= t->hold_max && t->hold_max > 0 && !h->paused)
        hold_check(t);
    rd_kafka_message_destroy(kd->msg);
    kd->msg = NULL;
    if (kd->prev != NULL)
        kd->prev->next = kd->next;
    else
        t->live = kd->next;
    if (kd->next != NULL)
        kd->next->prev = kd->prev;
    kd->prev = NULL;
    kd->next = t->pool;
    t->pool = kd;
}

/*
 * Waits up to timeout_ms (< 0: forever) for a message.  Also serves
 * rebalances, commit results, due batched commits and our producer's
 * delivery reports.  Call it at least every max.poll.interval.ms (5 min
 * by default) or the group takes the partitions away.  Transient errors
 * are logged and waited out; WQ_EBROKER only for a fatal client error.
 * The delivery stays valid until ack(), nack() or close().
 */
static int
kafka_poll(wq_transport *wt, wq_delivery **out, int timeout_ms, char *err,
    size_t errlen)
{
    struct kafka_transport *t = K(wt);
    uint64_t deadline = 0;
    rd_kafka_message_t *m;
    struct kdelivery *kd;
    int wait, due;

    *out = NULL;
    if (t->consumer == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "kafka: poll before subscribe");
    if (timeout_ms > 0)
        deadline = wq_clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    /* Confirms of our own publishes flow here too (transport.h). */
    if (t->outstanding > 0)
        rd_kafka_poll(t->producer, 0);
    for (;;) {
        commit_maybe(t);
        wait = timeout_ms < 0 ? -1
            : timeout_ms == 0 ? 0 : wq_clock_ms_until(deadline);
        /* Wake up for a due commit, not later: no ack waits long. */
        if (t->acks_pending > 0 && (due = commit_due_ms(t)) >= 0
            && (wait < 0 || due < wait))
            wait = due;
        if (atomic_exchange(&t->woken, 0))
            return WQ_EAGAIN;
        m = rd_kafka_consumer_poll(t->consumer, wait);
        if (m == NULL) {
            /* Yielded by wakeup(), or timed out. */
            if (atomic_exchange(&t->woken, 0) || timeout_ms == 0
                || (timeout_ms > 0 && wq_clock_ms_until(deadline) == 0))
                return WQ_EAGAIN;
            continue;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_resp_err_t e = m->err;

            if (e != RD_KAFKA_RESP_ERR__PARTITION_EOF
                && e != RD_KAFKA_RESP_ERR__FATAL)
                /* Transient: librdkafka recovers; keep going. */
                wq_log_warn(COMPONENT, "consume %s [%" PRId32 "]: %s",
                    m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : "-",
                    m->partition, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            if (e == RD_KAFKA_RESP_ERR__FATAL)
                return fatal_err(t->consumer, err, errlen);
            continue;
        }
        if ((kd = deliver(t, m)) != NULL) {
            *out = &kd->pub;
            return 0;
        }
    }
}

/*
 * The task's outcome is recorded.  Its offset becomes finished, and the
 * committed offset moves over the contiguous finished run with the next
 * batched commit.  A delivery of a partition revoked since it was polled
 * is stale: the ack only frees it (another member re-reads it).
 */
static int
kafka_ack(wq_transport *wt, wq_delivery *d, char *err, size_t errlen)
{
    struct kafka_transport *t = K(wt);
    struct kdelivery *kd = (struct kdelivery *)(void *)d;

    if (kd == NULL || kd->msg == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "kafka: ack of a delivery already finished");
    if (kd->gen == kd->part->gen) {
        part_finish(kd->part, kd->pub.offset, 0);
        ack_counted(t);
    }
    release(t, kd);
    commit_maybe(t);
    return 0;
}

/*
 * Kafka cannot hand one message back.  The nacked offset stays unfinished
 * until the next rebalance or close, so no commit passes it and the
 * partition is re-read from there after a restart or a rebalance: tasks
 * after it run twice (the claim step absorbs that).  Callers should
 * rather record a failure and ack, as the worker does.
 */
static int
kafka_nack(wq_transport *wt, wq_delivery *d, char *err, size_t errlen)
{
    struct kafka_transport *t = K(wt);
    struct kdelivery *kd = (struct kdelivery *)(void *)d;

    if (kd == NULL || kd->msg == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "kafka: nack of a delivery already finished");
    if (kd->gen == kd->part->gen) {
        wq_log_debug(COMPONENT, "%s [%" PRId32 "] @%" PRId64 ": nacked, "
            "commits stop here", kd->part->topic, kd->pub.partition,
            kd->pub.offset);
        part_finish(kd->part, kd->pub.offset, 1);
    }
    release(t, kd);
    return 0;
}

/*
 * Another thread wants the poller back: rd_kafka_queue_yield() makes a
 * blocked rd_kafka_consumer_poll() return NULL at once, or the next one if
 * none is blocked (the flag stays on the queue), and `woken` tells
 * kafka_poll not to wait again.
 */
static void
kafka_wakeup(wq_transport *wt)
{
    struct kafka_transport *t = K(wt);
    rd_kafka_queue_t *q;

    atomic_store(&t->woken, 1);
    /* Before subscribe() there is no queue: the flag does it alone. */
    if ((q = atomic_load(&t->cq)) != NULL)
        rd_kafka_queue_yield(q);
}

/*
 * Shutdown, in librdkafka's order (INTRODUCTION.md "Termination"):
 *  1. producer: flush within timeout_ms; what is still unconfirmed is
 *     purged, so on_confirm still sees it once (as WQ_ECLOSED); destroy
 *     the topic handles, then the producer;
 *  2. consumer: drop our consumer queue reference; commit the
 *     committable offsets synchronously; destroy the
 *     messages of deliveries the caller still holds (they are redelivered
 *     later); rd_kafka_consumer_close() leaves the group (its revoke
 *     commits nothing new); rd_kafka_destroy();
 *  3. free our memory.
 */
static void
kafka_close(wq_transport *wt, int timeout_ms)
{
    /* timeout_ms bounds the producer flush; leaving the group may add up
     * to a broker round trip or, with the broker gone, its timeouts. */
    struct kafka_transport *t = K(wt);
    struct kdelivery *kd;
    rd_kafka_resp_err_t e;

    if (t == NULL)
        return;
    if (t->producer != NULL) {
        rd_kafka_flush(t->producer, timeout_ms < 0 ? -1 : timeout_ms);
        if (t->outstanding > 0) {
            wq_log_warn(COMPONENT, "close: %" PRIu64 " message(s) not "
                "confirmed after %d ms, purged", t->outstanding, timeout_ms);
            rd_kafka_purge(t->producer,
                RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_flush(t->producer, PURGE_DRAIN_MS);
        }
        for (size_t i = 0; i < t->ntopics; i++) {
            rd_kafka_topic_destroy(t->topics[i].rkt);
            free(t->topics[i].queue);
        }
        rd_kafka_destroy(t->producer);
    }
    /* rdkafka.h: the queue reference goes before rd_kafka_consumer_close. */
    if (atomic_load(&t->cq) != NULL)
        rd_kafka_queue_destroy(atomic_exchange(&t->cq, NULL));
    if (t->rq != NULL) {
        rd_kafka_queue_destroy(t->rq);
        t->rq = NULL;
    }
    if (t->consumer != NULL) {
        if (t->reservations)
            unclaimed_revoke(t, NULL, 0);
        /* asked once: the revoke inside rd_kafka_consumer_close comes
         * after the caller's deliveries are released below */
        t->on_revoke = NULL;
        commit_parts(t, NULL, 0);
        t->hold_max = 0;    /* no resume while leaving */
        while (t->live != NULL)
            release(t, t->live);
        if ((e = rd_kafka_consumer_close(t->consumer))
            != RD_KAFKA_RESP_ERR_NO_ERROR)
            wq_log_warn(COMPONENT, "consumer close: %s", rd_kafka_err2str(e));
        rd_kafka_destroy(t->consumer);
    }
    if (t->cconf != NULL)
        rd_kafka_conf_destroy(t->cconf);
    if (t->bconf != NULL)
        rd_kafka_conf_destroy(t->bconf);
    free(t->group_id);
    while ((kd = t->pool) != NULL) {
        t->pool = kd->next;
        free(kd);
    }
    for (size_t i = 0; i < t->nparts; i++) {
        free(t->parts[i]->fl);
        free(t->parts[i]->topic);
        free(t->parts[i]);
    }
    free(t->parts);
    for (size_t i = 0; i < t->nholds; i++) {
        free(t->holds[i]->topic);
        free(t->holds[i]);
    }
    free(t->holds);
    free(t->topics);
    free(t);
}

/* --- backlog ------------------------------------------------------------- */

#define BACKLOG_TIMEOUT_MS 5000     /* metadata, watermarks, committed */
#define BACKLOG_PEEK_MS    2000     /* reading the oldest waiting messages */

/*
 * Reads the first uncommitted message of each lagging partition with the
 * short-lived consumer rk (assign, never subscribe: the group's members
 * are not disturbed) and sets out->oldest_ms from the oldest timestamp.
 * Best effort: leaves -1 when nothing came within BACKLOG_PEEK_MS.
 */
static void
backlog_peek(rd_kafka_t *rk, const char *topic, struct wq_backlog *out)
{
    rd_kafka_topic_partition_list_t *al;
    uint64_t deadline;
    int64_t oldest = -1;
    size_t want = 0;
    char *seen;

    al = rd_kafka_topic_partition_list_new((int)out->nparts);
    for (size_t i = 0; i < out->nparts; i++) {
        struct wq_backlog_partition *p = &out->parts[i];

        if (p->lag <= 0)
            continue;
        rd_kafka_topic_partition_list_add(al, topic, p->partition)->offset
            = p->committed >= 0 ? p->committed : p->low;
        want++;
    }
    seen = xcalloc(out->nparts + 1, 1);
    if (want == 0 || rd_kafka_assign(rk, al) != RD_KAFKA_RESP_ERR_NO_ERROR)
        goto out;
    deadline = wq_clock_mono_ns() + (uint64_t)BACKLOG_PEEK_MS * 1000000u;
    while (want > 0 && wq_clock_ms_until(deadline) > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk,
            wq_clock_ms_until(deadline));
        rd_kafka_timestamp_type_t tt;
        int64_t ts;

        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            for (size_t i = 0; i < out->nparts; i++) {
                if (out->parts[i].partition != m->partition || seen[i])
                    continue;
                seen[i] = 1;
                want--;
                ts = rd_kafka_message_timestamp(m, &tt);
                if (ts >= 0 && (oldest < 0 || ts < oldest))
                    oldest = ts;
            }
        }
        rd_kafka_message_destroy(m);
    }
    (void)rd_kafka_assign(rk, NULL);
    if (oldest >= 0) {
        int64_t age = wq_clock_wall_ms() - oldest;

        out->oldest_ms = age > 0 ? age : 0;
    }
out:
    free(seen);
    rd_kafka_topic_partition_list_destroy(al);
}

/*
 * kafka_backlog: the topic's partitions (metadata), each one's
 * watermarks, the group's committed offsets (a consumer in the group that
 * never joins it), the lags, and the age of the oldest uncommitted
 * message (backlog_peek).  The group is conf->kafka_group_id, else
 * "workq.<queue>" as kafka_subscribe names it (for a priority band,
 * "workq.Q.priority-high", that of its queue Q, whose worker reads the
 * three bands in one group).  Blocks a few seconds at most.
 */
static int
kafka_backlog(wq_transport *wt, const char *queue, struct wq_backlog *out,
    char *err, size_t errlen)
{
    struct kafka_transport *t = K(wt);
    const struct rd_kafka_metadata *md = NULL;
    const struct rd_kafka_metadata_topic *mt;
    rd_kafka_topic_partition_list_t *list = NULL;
    rd_kafka_conf_t *cc = NULL;
    rd_kafka_topic_t *rkt;
    rd_kafka_resp_err_t e;
    rd_kafka_t *rk = NULL;
    char name[TOPIC_MAX], errstr[512];
    int rv;

    memset(out, 0, sizeof *out);
    out->ready = out->unacked = out->consumers = out->oldest_ms = -1;
    if ((rv = queue_check(queue, err, errlen)) != 0)
        return rv;
    snprintf(name, sizeof name, "%s%s", WQ_QUEUE_PREFIX, queue);
    if (t->group_id != NULL) {
        snprintf(out->group, sizeof out->group, "%s", t->group_id);
    } else {
        /* a priority band's topic is read by its queue's group */
        size_t qlen;

        (void)wq_priority_of_band(queue, &qlen);
        snprintf(out->group, sizeof out->group, "%s%.*s", WQ_QUEUE_PREFIX,
            (int)qlen, queue);
    }
    if ((rv = producer_topic(t, queue, &rkt, err, errlen)) != 0)
        return rv;
    e = rd_kafka_metadata(t->producer, 0, rkt, &md, BACKLOG_TIMEOUT_MS);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return wq_seterr(err, errlen, WQ_EBROKER, "kafka: metadata of %s: %s", name, rd_kafka_err2str(e));
    if (md->topic_cnt != 1
        || md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
        || md->topics[0].partition_cnt <= 0) {
        rv = wq_seterr(err, errlen, WQ_ENOENT, "kafka: no topic %s", name);
        goto out;
    }
    mt = &md->topics[0];
    out->nparts = (size_t)mt->partition_cnt;
    out->parts = xcalloc(out->nparts, sizeof *out->parts);
    list = rd_kafka_topic_partition_list_new(mt->partition_cnt);
    out->ready = 0;
    for (int i = 0; i < mt->partition_cnt; i++) {
        struct wq_backlog_partition *p = &out->parts[i];

        p->partition = mt->partitions[i].id;
        p->committed = -1;
        e = rd_kafka_query_watermark_offsets(t->producer, name, p->partition,
            &p->low, &p->high, BACKLOG_TIMEOUT_MS);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rv = wq_seterr(err, errlen, WQ_EBROKER,
                "kafka: watermarks of %s [%" PRId32 "]: %s", name,
                p->partition, rd_kafka_err2str(e));
            goto out;
        }
        rd_kafka_topic_partition_list_add(list, name, p->partition);
    }

    cc = rd_kafka_conf_dup(t->bconf);
    if ((rv = conf_set(cc, "group.id", out->group, err, errlen)) != 0)
        goto out;
    if ((rk = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof errstr))
        == NULL) {
        rv = wq_seterr(err, errlen, WQ_ECONFIG, "kafka: consumer: %s",
            errstr);
        goto out;
    }
    cc = NULL;  /* owned by rk */
    e = rd_kafka_committed(rk, list, BACKLOG_TIMEOUT_MS);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rv = wq_seterr(err, errlen, WQ_EBROKER,
            "kafka: committed offsets of group %s: %s", out->group,
            rd_kafka_err2str(e));
        goto out;
    }
    for (int i = 0; i < list->cnt; i++) {
        for (size_t k = 0; k < out->nparts; k++) {
            struct wq_backlog_partition *p = &out->parts[k];

            if (p->partition != list->elems[i].partition)
                continue;
            if (list->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR
                && list->elems[i].offset >= 0)
                p->committed = list->elems[i].offset;
            /* a committed offset below the low watermark (retention ran)
             * resumes at the low watermark */
            p->lag = p->high - (p->committed >= p->low ? p->committed
                : p->low);
            if (p->lag < 0)
                p->lag = 0;
            out->ready += p->lag;
        }
    }
    if (out->ready > 0)
        backlog_peek(rk, name, out);
    rv = 0;

out:
    if (rk != NULL) {
        (void)rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    if (cc != NULL)
        rd_kafka_conf_destroy(cc);
    if (list != NULL)
        rd_kafka_topic_partition_list_destroy(list);
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    if (rv != 0)
        wq_backlog_free(out);
    return rv;
}

/* --- settings ------------------------------------------------------------ */

/*
 * Fills the kafka_* fields from the kafka.* rows: brokers and tuning as
 * they are, and librdkafka property pairs ("security.protocol=...",
 * "sasl.mechanism=...", "sasl.username=...", "sasl.password=...",
 * "ssl.ca.location=...", the optional ones only when set).  The brokers
 * list goes to librdkafka unread (bootstrap.servers): whatever it
 * accepts works.
 */
static int
kafka_settings(struct wq_config *cfg, struct wq_transport_conf *out,
    char *err, size_t errlen)
{
    const char *mech = wq_config_enum_name(cfg, "kafka.sasl_mechanism");
    const char *props[5];
    size_t n = 0;

    (void)err;
    (void)errlen;
    props[n++] = wq_config_keepf(cfg, "security.protocol=%s",
        wq_config_enum_name(cfg, "kafka.security_protocol"));
    if (mech[0] != '\0')
        props[n++] = wq_config_keepf(cfg, "sasl.mechanism=%s", mech);
    if (cfg->kafka.sasl_username[0] != '\0')
        props[n++] = wq_config_keepf(cfg, "sasl.username=%s",
            cfg->kafka.sasl_username);
    if (cfg->kafka.sasl_password[0] != '\0')
        props[n++] = wq_config_keepf(cfg, "sasl.password=%s",
            cfg->kafka.sasl_password);
    if (cfg->kafka.ssl_ca_location[0] != '\0')
        props[n++] = wq_config_keepf(cfg, "ssl.ca.location=%s",
            cfg->kafka.ssl_ca_location);
    out->kafka_brokers = cfg->kafka.brokers;
    out->kafka_group_id = NULL;
    out->kafka_partitions = cfg->kafka.partitions;
    out->kafka_replication = cfg->kafka.replication_factor;
    out->kafka_min_insync = cfg->kafka.min_insync_replicas;
    out->kafka_linger_ms = cfg->kafka.linger_ms;
    out->kafka_session_timeout_ms = cfg->kafka.session_timeout_ms;
    out->kafka_props = wq_config_keep(cfg, props, n * sizeof *props);
    out->kafka_nprops = n;
    return 0;
}

/*
 * The Kafka backend (see transport.h for the contract of each operation,
 * and the functions above for what is particular to Kafka).  One handle
 * per thread; handles are independent.
 */
const struct wq_transport_ops wq_transport_kafka_ops = {
    .name = "kafka",
    .open = kafka_open,
    .declare = kafka_declare,
    .publish = kafka_publish,
    .flush = kafka_flush,
    .subscribe = kafka_subscribe,
    .poll = kafka_poll,
    .ack = kafka_ack,
    .nack = kafka_nack,
    .close = kafka_close,
    .wakeup = kafka_wakeup,
    .backlog = kafka_backlog,
};

const struct wq_transport_backend wq_transport_kafka = {
    .ops = &wq_transport_kafka_ops,
    .settings = kafka_settings,
    .consumer_per_queue = 1,
    .backlog_partitions = 1,
};
