/*
 * transport.h - the broker behind one interface (DESIGN.md step 3,
 * STYLE.md habit 13).
 *
 * A queue Q is Kafka topic "workq.Q" (message key = the idempotency key)
 * or RabbitMQ durable queue "workq.Q" (quorum by default, persistent
 * messages).  Callers hold a wq_transport and never #ifdef on the broker:
 * each backend is one const wq_transport_ops (transport_kafka.c,
 * transport_amqp.c), picked by wq_transport_open() from conf->kind.
 *
 * Publishing is asynchronous with broker confirmation: publish() queues a
 * message and returns; the broker's verdict on it arrives later through
 * conf->on_confirm, called from inside publish(), flush() or poll() on the
 * calling thread.  flush() returns once every queued message has been
 * confirmed or refused.  So a batch is: publish N times, flush once.
 *
 * Consuming: subscribe() once, then poll() deliveries one at a time.  A
 * delivery must end with exactly one ack() (the outcome is recorded) or
 * nack() (give it back to the broker).  Kafka commits offsets only over a
 * contiguous run of acked offsets per partition; RabbitMQ acks (batched
 * with multiple=true where contiguous).
 *
 * Threads: a handle is not thread-safe; one thread calls all functions of
 * one handle.  Deliveries may be processed on other threads, but must be
 * handed back to that thread for ack/nack.
 */
#ifndef WQ_TRANSPORT_H
#define WQ_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "wq.h"

#define WQ_QUEUE_PREFIX "workq."

/*
 * The registry: one line per backend, X(KIND, "name", descriptor).  KIND
 * makes the constant WQ_TRANSPORT_KIND, "name" is the value of the
 * `transport` key (and ops->name), the descriptor is the backend's
 * struct wq_transport_backend.  The order is the kind's number (the
 * first is the configuration's default).
 */
#define WQ_TRANSPORT_BACKENDS(X) \
    X(RABBITMQ, "rabbitmq", wq_transport_amqp) \
    X(KAFKA,    "kafka",    wq_transport_kafka)

enum wq_transport_kind {
#define WQ_TRANSPORT_KIND_(k, name, desc) WQ_TRANSPORT_##k,
    WQ_TRANSPORT_BACKENDS(WQ_TRANSPORT_KIND_)
#undef WQ_TRANSPORT_KIND_
    WQ_TRANSPORT_NKINDS
};

/*
 * Called once per published message with its `opaque`, status 0 when the
 * broker confirmed it (persisted per its durability settings) or a
 * negative WQ_E* with a reason when it was refused or could not be sent.
 */
typedef void wq_confirm_fn(void *opaque, int status, const char *reason,
    void *user);

struct wq_transport_conf {
    enum wq_transport_kind kind;
    const char *client_id;        /* names this process to the broker */
    /* open() fails with WQ_EBROKER when the broker has not answered
     * within this long (RabbitMQ: connect and login; Kafka: a metadata
     * request); 0: each backend's default (RabbitMQ 10 s; Kafka: open
     * does not wait, librdkafka connects in the background). */
    int connect_timeout_ms;
    /* A published message the broker has not confirmed within this long
     * is refused (Kafka: message.timeout.ms, so the library gives up
     * when the caller does); 0: the backend's default (Kafka 30 s;
     * RabbitMQ has no such limit, the caller keeps its own). */
    int publish_timeout_ms;

    /* The backends' own settings, each filled by its settings() from its
     * configuration rows. */

    /* Kafka (librdkafka). */
    const char *kafka_brokers;    /* bootstrap.servers, read by librdkafka */
    const char *kafka_group_id;   /* consumer group; default "workq.<queue>" */
    int kafka_partitions;         /* for declare(): new topics */
    int kafka_replication;        /* for declare(): new topics */
    int kafka_min_insync;         /* min.insync.replicas of those; 0: broker's */
    int kafka_linger_ms;          /* producer batching (linger.ms) */
    int kafka_session_timeout_ms; /* consumer group session */
    /* Consumer: most deliveries of one topic the caller may hold (polled,
     * not yet acked or nacked) before that topic's partitions are paused
     * (resumed at half), while another topic has messages waiting; 0: no
     * limit.  A worker sets it so that a backlog of one priority band
     * cannot fill its whole window (priority.h). */
    int kafka_topic_hold_max;
    /* Extra librdkafka properties, "name=value" pairs (TLS, SASL, ...). */
    const char *const *kafka_props;
    size_t kafka_nprops;

    /* RabbitMQ (rabbitmq-c). */
    const char *amqp_url;         /* amqp[s]://user:pass@host:port/vhost */
    const char *amqp_hosts;       /* more nodes "host:port,..."; NULL: none */
    int amqp_quorum;              /* 1: quorum queues, 0: classic */
    int amqp_prefetch;            /* basic.qos prefetch count */
    int amqp_heartbeat_s;         /* AMQP heartbeat, 0 = off */
    const char *amqp_cacert;      /* TLS: CA file for amqps:// */

    /*
     * Consumer: the caller may run a delivery whose `first` is set before
     * any row of it exists (docs/task-states.md, "Unclaimed runs").
     * RabbitMQ sets `first` from its redelivered flag and needs nothing
     * more.  Kafka cannot tell a first delivery, so with this set it keeps
     * a reservation in its commits' metadata (transport_kafka.c, "Unclaimed
     * runs"), and calls on_revoke before it gives partitions up (a
     * rebalance, close()): the caller then writes a row for every delivery
     * of this handle that ran unclaimed, and returns 0 when none is left
     * without one.  on_revoke runs on the polling thread, inside poll() or
     * close(); it may ack and nack.  NULL: the reservation stays.
     */
    int consumer_unclaimed;
    int (*on_revoke)(void *user);
    void *on_revoke_user;

    wq_confirm_fn *on_confirm;    /* may be NULL: then use flush()'s result */
    void *on_confirm_user;

    /*
     * Bounds of a dead-letter queue "Q.dead", asked by declare() when it
     * creates one: *ttl_ms (RabbitMQ x-message-ttl, Kafka retention.ms)
     * and *max_length (RabbitMQ x-max-length; Kafka has none), 0 = no
     * bound.  `queue` is Q without ".dead".  NULL: no bounds.
     */
    void (*dead_bounds)(void *user, const char *queue, int64_t *ttl_ms,
        int64_t *max_length);
    void *dead_bounds_user;
};

/*
 * What the broker holds for one queue (backlog()).  -1 in a field means
 * the broker cannot tell.
 *
 * RabbitMQ: `ready` is the queue's message count from a passive
 * queue.declare (messages not delivered to any consumer); `unacked` is -1
 * (AMQP does not say; it takes the management plugin); `consumers` is
 * the consumer count; `oldest_ms` is -1 (only a basic.get would show the
 * head, and that redelivers it).
 *
 * Kafka: one entry in `parts` per partition; each partition's lag is
 * high watermark minus the consumer group's committed offset, or minus
 * the low watermark when the group has committed nothing there (a new
 * group starts at the oldest message).  `ready` is the sum of the lags
 * (read but uncommitted messages count: Kafka cannot tell them apart),
 * `unacked` and `consumers` are -1, `oldest_ms` is the age of the
 * message at the first uncommitted offset of the partitions that lag
 * (by its timestamp), -1 when none lags or it could not be read.
 */
struct wq_backlog_partition {
    int32_t partition;
    int64_t low, high;          /* watermarks: first and next offset */
    int64_t committed;          /* the group's offset; -1: none */
    int64_t lag;
};

struct wq_backlog {
    int64_t ready;
    int64_t unacked;
    int64_t consumers;
    int64_t oldest_ms;
    char group[WQ_BROKER_QUEUE_MAX + 16];  /* Kafka: the consumer group read */
    struct wq_backlog_partition *parts;   /* Kafka; malloc'd */
    size_t nparts;
};

/* Frees b->parts (b itself belongs to the caller). */
void wq_backlog_free(struct wq_backlog *b);

typedef struct wq_transport wq_transport;

/*
 * One message taken off the broker.  It belongs to the transport and
 * stays valid until ack() or nack() is called on it.
 */
typedef struct wq_delivery {
    const char *queue;        /* queue name without the "workq." prefix */
    const void *body;
    size_t len;
    const void *key;          /* Kafka message key; NULL on RabbitMQ */
    size_t keylen;
    int32_t partition;        /* Kafka partition, -1 on RabbitMQ */
    int64_t offset;           /* Kafka offset, or RabbitMQ delivery tag */
    int redelivered;          /* broker says it may have been seen before */
    int first;                /* no consumer ran it before, as far as
                                 the broker tells: RabbitMQ's redelivered
                                 flag clear; on Kafka an offset of this
                                 holder's reservation that no earlier
                                 holder reserved (consumer_unclaimed) */
    int revoked;              /* Kafka: its partition went to another
                                 consumer (set before on_revoke runs),
                                 which reads it again: give it back
                                 (nack), do not run it */
} wq_delivery;

struct wq_transport_ops {
    const char *name;
    int (*open)(const struct wq_transport_conf *conf, wq_transport **out,
        char *err, size_t errlen);
    /* Creates the queue if missing (idempotent). */
    int (*declare)(wq_transport *t, const char *queue, char *err,
        size_t errlen);
    /* Queues one message; confirmation arrives through on_confirm. */
    int (*publish)(wq_transport *t, const char *queue, const void *key,
        size_t keylen, const void *body, size_t len, void *opaque,
        char *err, size_t errlen);
    /* Waits until every queued message was confirmed or refused.
     * Returns 0 if all were confirmed, WQ_ENACK if any was refused,
     * WQ_ETIMEOUT if some are still outstanding at the deadline. */
    int (*flush)(wq_transport *t, int timeout_ms, char *err, size_t errlen);
    /* Starts consuming the named queues. */
    int (*subscribe)(wq_transport *t, const char *const *queues, size_t n,
        char *err, size_t errlen);
    /* Waits up to timeout_ms for a delivery: 0 and *out set, WQ_EAGAIN if
     * none came, another WQ_E* on a broken connection. */
    int (*poll)(wq_transport *t, wq_delivery **out, int timeout_ms,
        char *err, size_t errlen);
    /* The outcome is recorded: the broker may forget the message. */
    int (*ack)(wq_transport *t, wq_delivery *d, char *err, size_t errlen);
    /* Give the message back: redelivered later (to this or another
     * consumer).  Kafka cannot give one message back; its nack leaves the
     * offset uncommitted so the partition is re-read from there after a
     * restart or rebalance. */
    int (*nack)(wq_transport *t, wq_delivery *d, char *err, size_t errlen);
    /* Flushes within timeout_ms, commits what is acked, closes in the
     * library's required order and frees the handle. */
    void (*close)(wq_transport *t, int timeout_ms);
    /* Makes a poll() blocked in another thread, or else the next one,
     * return WQ_EAGAIN at once.  The one thread-safe operation: a worker's
     * handler threads call it to hand a finished task back to the thread
     * that polls.  Not async-signal-safe; never concurrent with close(). */
    void (*wakeup)(wq_transport *t);
    /* Fills *out with what the broker holds for `queue` (see struct
     * wq_backlog); the caller frees it with wq_backlog_free.  Blocks for
     * a few round trips (Kafka: also a short-lived consumer in the
     * queue's group that never joins it nor commits).  WQ_ENOENT when
     * the broker has no such queue. */
    int (*backlog)(wq_transport *t, const char *queue, struct wq_backlog *out,
        char *err, size_t errlen);
};

struct wq_config;       /* config.h */

/*
 * One backend as the rest of workq sees it.  Everything that differs
 * between brokers outside the backend's own file is here, as data or a
 * function, so that callers never test the kind.
 */
struct wq_transport_backend {
    const struct wq_transport_ops *ops;
    /*
     * Fills this backend's fields of *out (kafka_* or amqp_*) from its
     * rows of cfg; the strings it builds are kept by cfg
     * (wq_config_keep).  0, or WQ_ECONFIG with err set.
     */
    int (*settings)(struct wq_config *cfg, struct wq_transport_conf *out,
        char *err, size_t errlen);
    /* Logs a warning for settings of cfg that work against the worker
     * (RabbitMQ: a prefetch below the concurrency).  May be NULL. */
    void (*check_worker)(const struct wq_config *cfg);
    /* How often an idle handle must be called (flush(t, 0) or poll()) to
     * keep its connection (RabbitMQ heartbeats); 0: never.  May be NULL. */
    int64_t (*keepalive_ms)(const struct wq_config *cfg);
    /* A worker runs one consumer per queue (Kafka: a consumer group per
     * queue) rather than one for all its queues. */
    unsigned consumer_per_queue : 1;
    /* backlog() reports partitions, the group, the lag and the age of
     * the oldest waiting message (struct wq_backlog). */
    unsigned backlog_partitions : 1;
};

#define WQ_TRANSPORT_DECLARE_(k, name, desc) \
    extern const struct wq_transport_backend desc;
WQ_TRANSPORT_BACKENDS(WQ_TRANSPORT_DECLARE_)
#undef WQ_TRANSPORT_DECLARE_

/* The two backends' ops, which their own tests open directly. */
extern const struct wq_transport_ops wq_transport_kafka_ops;
extern const struct wq_transport_ops wq_transport_amqp_ops;

/* The values of the `transport` key, by kind, NULL-terminated. */
extern const char *const wq_transport_names[];

/* The backend of `kind` (enum wq_transport_kind); NULL if none. */
const struct wq_transport_backend *wq_transport_backend(int kind);

/* The name of `kind` ("kafka"), "?" if none. */
const char *wq_transport_kind_name(int kind);

/*
 * wq_transport_settings lets every backend fill its fields of *out from
 * cfg (see struct wq_transport_backend.settings), so that *out can open
 * any of them.  0, or the first backend's WQ_ECONFIG with err set.
 */
int wq_transport_settings(struct wq_config *cfg,
    struct wq_transport_conf *out, char *err, size_t errlen);

/*
 * Every backend's handle starts with this header, so the generic
 * functions below can find the ops.
 */
struct wq_transport_base {
    const struct wq_transport_ops *ops;
};

#define WQ_TRANSPORT_OPS(t) \
    (((const struct wq_transport_base *)(const void *)(t))->ops)

/*
 * wq_transport_open picks the backend named by conf->kind and opens it.
 * On success *out owns a connection; release it with wq_transport_close.
 * Blocks while connecting.  The other calls forward to the ops.
 */
int wq_transport_open(const struct wq_transport_conf *conf,
    wq_transport **out, char *err, size_t errlen);

static inline int
wq_transport_declare(wq_transport *t, const char *queue, char *err,
    size_t errlen)
{
    return WQ_TRANSPORT_OPS(t)->declare(t, queue, err, errlen);
}

static inline int
wq_transport_publish(wq_transport *t, const char *queue, const void *key,
    size_t keylen, const void *body, size_t len, void *opaque, char *err,
    size_t errlen)
{
    return WQ_TRANSPORT_OPS(t)->publish(t, queue, key, keylen, body, len,
        opaque, err, errlen);
}

static inline int
wq_transport_flush(wq_transport *t, int timeout_ms, char *err, size_t errlen)
{
    return WQ_TRANSPORT_OPS(t)->flush(t, timeout_ms, err, errlen);
}

static inline int
wq_transport_subscribe(wq_transport *t, const char *const *queues, size_t n,
    char *err, size_t errlen)
{
    return WQ_TRANSPORT_OPS(t)->subscribe(t, queues, n, err, errlen);
}

static inline int
wq_transport_poll(wq_transport *t, wq_delivery **out, int timeout_ms,
    char *err, size_t errlen)
{
    return WQ_TRANSPORT_OPS(t)->poll(t, out, timeout_ms, err, errlen);
}

static inline int
wq_transport_ack(wq_transport *t, wq_delivery *d, char *err, size_t errlen)
{
    return WQ_TRANSPORT_OPS(t)->ack(t, d, err, errlen);
}

static inline int
wq_transport_nack(wq_transport *t, wq_delivery *d, char *err, size_t errlen)
{
    return WQ_TRANSPORT_OPS(t)->nack(t, d, err, errlen);
}

static inline int
wq_transport_backlog(wq_transport *t, const char *queue,
    struct wq_backlog *out, char *err, size_t errlen)
{
    return WQ_TRANSPORT_OPS(t)->backlog(t, queue, out, err, errlen);
}

static inline void
wq_transport_wakeup(wq_transport *t)
{
    WQ_TRANSPORT_OPS(t)->wakeup(t);
}

static inline void
wq_transport_close(wq_transport *t, int timeout_ms)
{
    if (t != NULL)
        WQ_TRANSPORT_OPS(t)->close(t, timeout_ms);
}

static inline const char *
wq_transport_name(const wq_transport *t)
{
    return WQ_TRANSPORT_OPS(t)->name;
}

/* Kind from its name ("kafka", "rabbitmq"; also "amqp"); -1 if
 * unknown. */
int wq_transport_kind_parse(const char *s);

#endif
