/*
 * workq.h - the public C client API of workq: submit background tasks to
 * Kafka or RabbitMQ from a C program.  This is the one header client code
 * includes; it includes nothing of workq's and needs only <stddef.h> and
 * <stdint.h>.  Link with libworkq.a and its libraries (pkg-config rdkafka
 * librabbitmq libpq msgpack libconfig libmicrohttpd libsystemd jansson).
 *
 *     wq_client *c;
 *     char err[WQ_ERRLEN], id[WQ_CLIENT_ID_LEN];
 *     struct wq_client_task t = { .queue = "emails", .type = "send",
 *         .payload = "{\"to\":\"a@b\"}", .payload_len = 12 };
 *
 *     if (wq_client_open(NULL, &c, err, sizeof err) != 0)
 *         die(err);
 *     if (wq_client_submit(c, &t, id, err, sizeof err) != 0)
 *         die(err);
 *     printf("task %s accepted\n", id);
 *     wq_client_free(c);
 *
 * A submit returns only after the broker confirmed the message (RabbitMQ
 * publisher confirms with persistent delivery; Kafka acks=all with the
 * idempotent producer), so an accepted task survives a broker restart.
 * A task with a delay or a run-at time goes to PostgreSQL instead, in the
 * state `scheduled`, and the scheduler publishes it when due.  The first
 * submit to a queue declares it (creates the Kafka topic or the durable
 * RabbitMQ queue "workq.<queue>"); declared queues are remembered.
 *
 * Three ways to submit: one task, blocking (wq_client_submit); an array,
 * with every message in flight at once and one flush (wq_client_submit_
 * batch, per-task results); or a stream, where wq_client_submit_async
 * queues each task and reports its outcome to a callback, and
 * wq_client_flush waits for the rest.
 *
 * Errors: every function returns 0 or a negative WQ_E* code, and writes
 * one sentence into a caller-owned `err` buffer (WQ_ERRLEN bytes are
 * enough; NULL is allowed).  The library never exits the process on a
 * broker, database or input error.  (Allocation failures in the client
 * itself return WQ_ENOMEM; the broker glue underneath still aborts when
 * memory is exhausted, as the daemons do.)
 *
 * Threads: a wq_client is not thread-safe; use one per thread, or one
 * behind a lock.  Callbacks run on the calling thread, inside submit,
 * flush and free calls.
 */
#ifndef WORKQ_H
#define WORKQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes; the same values as workq's internal wq.h. */
#define WQ_OK        0
#define WQ_EINVAL   -1  /* bad argument or malformed task */
#define WQ_ENOMEM   -2  /* allocation failed */
#define WQ_EIO      -3  /* I/O error on a file, socket or pipe */
#define WQ_ECONFIG  -4  /* configuration rejected */
#define WQ_EBROKER  -5  /* broker unreachable or refused */
#define WQ_ESTORE   -6  /* PostgreSQL unreachable or refused */
#define WQ_ETIMEOUT -7  /* a deadline passed */
#define WQ_ETOOBIG  -8  /* a size limit was exceeded */
#define WQ_ENOENT   -9  /* no such task, queue or file */
#define WQ_EDECODE  -10 /* an envelope failed strict decoding */
#define WQ_EAGAIN   -11 /* nothing now; try again later */
#define WQ_ENACK    -12 /* the broker refused (nacked) a message */
#define WQ_ECLOSED  -13 /* the handle was closed or is shutting down */

/* Size of the err buffers passed around at boundaries. */
#define WQ_ERRLEN 512

/* Bytes of a task id in text form, with its NUL ("0190a5f8-...-5e6f"). */
#define WQ_CLIENT_ID_LEN 37

/* wq_strerror returns a static description of a WQ_E* code; never NULL. */
const char *wq_strerror(int code);

typedef struct wq_client wq_client;

/*
 * How to reach the brokers when not from a configuration file.  Fields
 * left NULL or 0 keep workq's built-in defaults (config/workq.conf); the
 * WORKQ_* environment is not read.  Strings are copied by the open call.
 */
struct wq_client_conf {
    const char *transport;          /* "kafka" or "rabbitmq" */
    const char *kafka_brokers;      /* "host:port,host:port" */
    const char *rabbitmq_url;       /* amqp[s]://user:pass@host:port/vhost */
    const char *rabbitmq_queue_type;/* "quorum" or "classic" */
    const char *postgres_conninfo;  /* receipts and delayed tasks */
    const char *postgres_password;
    const char *client_id;          /* names this client to the broker */
    int kafka_partitions;           /* of topics this client creates */
    int kafka_linger_ms;            /* batching delay; -1: 0 ms */
    int timeout_ms;                 /* broker confirm deadline (30000) */
    int receipts;                   /* producer.receipts: 0 or 1 on (the
                                       default), -1 off (no PostgreSQL
                                       for immediate tasks; their ids
                                       resolve once claimed) */
};

/* One header of a task: trace context or user metadata. */
struct wq_client_header {
    const char *name;
    const char *value;
};

/*
 * A task to submit.  Everything is borrowed for the duration of the call
 * (the client copies what it keeps).  Limits: queue 1..128 bytes of
 * [A-Za-z0-9_.-], not starting with '.' nor ending in ".dead"; type
 * 1..128 bytes; key 1..512 bytes; payload up to 1 MiB of any bytes; at
 * most 64 headers, names 1..256 and values up to 4096 bytes; strings are
 * UTF-8 without NUL bytes.
 */
struct wq_client_task {
    const char *queue;              /* required */
    const char *type;               /* required: the handler's name */
    const void *payload;            /* may be NULL when payload_len is 0 */
    size_t payload_len;
    const char *idempotency_key;    /* NULL: the task id */
    int max_attempts;               /* 0: 25 */
    int64_t delay_ms;               /* > 0: run this much later */
    int64_t run_at_ms;              /* > 0: run at this epoch time (ms) */
    const struct wq_client_header *headers;
    size_t nheaders;
};

/*
 * Flow control of a task (README "Flow control"), set on the client with
 * wq_client_set_flow for the tasks it submits next.  Rate limits are the
 * workers' configuration, not the task's.
 */
struct wq_client_flow {
    const char *concurrency_key;    /* NULL: none.  At most
                                       concurrency_limit tasks with this
                                       key run at once, across every
                                       worker; 1..256 bytes of UTF-8 */
    int concurrency_limit;          /* 1..100000; 0: 1 */
    int64_t unique_for_ms;          /* > 0: a unique window.  Every submit
                                       of the task's (queue, key) within
                                       this long of the first is the same
                                       task; the first after it is a new
                                       one.  Needs an idempotency key */
};

/* The outcome of one submitted task. */
struct wq_client_result {
    int status;                     /* 0 or a WQ_E* code */
    char id[WQ_CLIENT_ID_LEN];      /* the task id ("" if none was made) */
    int scheduled;                  /* 1: stored in PostgreSQL, delayed */
    int duplicate;                  /* 1: an earlier submit took this
                                       (queue, key); id is that task's
                                       and nothing new will run */
    int64_t run_at_ms;              /* scheduled: when it is due */
    char error[256];                /* status != 0: why */
    char state[16];                 /* status 0: "queued", "scheduled",
                                       or a duplicate's present state */
    int untracked;                  /* 1: confirmed by the broker (it
                                       runs), but PostgreSQL could not
                                       record its receipt: `status` knows
                                       it only once a worker claims it */
};

/*
 * wq_client_open loads the configuration file at `config_path` exactly as
 * the workq daemons do (NULL: /etc/workq/workq.conf if it exists; the
 * WORKQ_* environment overrides either) and connects to the broker of its
 * `transport` key.  PostgreSQL is connected on the first submit that
 * needs it: the receipts of confirmed tasks (producer.receipts, on by
 * default), a delayed task.  Returns 0 with *out set (release with wq_client_free),
 * or WQ_ECONFIG (err lists the problems), WQ_EBROKER (unreachable),
 * WQ_ENOMEM.  Blocks while connecting.
 */
int wq_client_open(const char *config_path, wq_client **out, char *err,
    size_t errlen);

/* wq_client_open_conf is wq_client_open from a struct instead of a file;
 * `conf` may be NULL (all defaults). */
int wq_client_open_conf(const struct wq_client_conf *conf, wq_client **out,
    char *err, size_t errlen);

/*
 * For workq's own programs, which have loaded a configuration already:
 * the client borrows `cfg` (it must outlive the client and not be used
 * from another thread meanwhile).  Otherwise as wq_client_open.
 */
struct wq_config;
int wq_client_open_config(struct wq_config *cfg, wq_client **out, char *err,
    size_t errlen);

/*
 * wq_client_submit submits one task and waits until the broker confirmed
 * it, or until PostgreSQL committed it when it is delayed.  Writes the
 * task id into `id` (may be NULL).  Returns 0; WQ_EINVAL or WQ_ETOOBIG
 * for a task that breaks a rule (nothing was sent); WQ_EBROKER, WQ_ENACK
 * or WQ_ETIMEOUT when the broker did not confirm (the task may still have
 * arrived: resubmit with the same idempotency key to be safe); WQ_ESTORE
 * for PostgreSQL.  Tasks queued with wq_client_submit_async before are
 * flushed too.  Blocks.
 */
int wq_client_submit(wq_client *c, const struct wq_client_task *task,
    char id[WQ_CLIENT_ID_LEN], char *err, size_t errlen);

/*
 * wq_client_submit_batch submits tasks[0..n) with all messages in flight
 * at once, then waits for every confirmation (one flush).  results[i]
 * (an array of n, filled by the call) holds each task's outcome; a bad
 * task fails alone and the others are still sent.  Returns 0 if every
 * task was accepted, else the code of the first failure (err says how
 * many failed and why the first did).  Blocks.
 */
int wq_client_submit_batch(wq_client *c, const struct wq_client_task *tasks,
    size_t n, struct wq_client_result *results, char *err, size_t errlen);

/* Called once per task queued with wq_client_submit_async. */
typedef void wq_client_done_fn(void *user, const struct wq_client_result *r);

/*
 * wq_client_submit_async queues one task and returns before the broker
 * answers; `done` (may be NULL) is called with its outcome later, from
 * inside a later submit, flush or free call on this client (in a stream
 * that goes on without a flush, about 50 ms after the broker confirmed
 * the task, once its receipt is recorded).  A delayed
 * task is stored at once and reported before this call returns.  Writes
 * the id into `id` (may be NULL).  Returns 0 when the task was queued (or
 * stored), and then `done` will be called exactly once; or a WQ_E* code
 * when it was not (`done` is then not called).  May block while too many
 * messages are in flight.
 */
int wq_client_submit_async(wq_client *c, const struct wq_client_task *task,
    wq_client_done_fn *done, void *user, char id[WQ_CLIENT_ID_LEN],
    char *err, size_t errlen);

/*
 * wq_client_flush waits up to timeout_ms (-1: the configured timeout)
 * until every queued task has been confirmed or refused, calling the
 * `done` callbacks.  Returns 0 if all queued tasks were confirmed, the
 * code of a failure otherwise (WQ_ETIMEOUT: the unconfirmed ones are
 * reported as WQ_ETIMEOUT and the connection is reopened on next use).
 */
int wq_client_flush(wq_client *c, int timeout_ms, char *err, size_t errlen);

/*
 * wq_client_set_flow makes `flow` (copied; NULL: none) the flow control
 * of every task this client submits from now on, by any of the submit
 * calls, until the next call.  A task with a concurrency key travels as
 * an envelope of version 2 (docs/wire-format.md), which workers of
 * release 0.9 and later read.  A unique window costs each submit one
 * PostgreSQL round trip (workq.unique_windows) and turns the task's key
 * KEY into "KEY@w<window start, epoch ms>"; submits without a key are
 * refused with WQ_EINVAL.  Returns 0, or WQ_EINVAL for a bad value (err
 * says which), WQ_ENOMEM.
 */
int wq_client_set_flow(wq_client *c, const struct wq_client_flow *flow,
    char *err, size_t errlen);

/* Task priorities (wq_client_set_priority; README "Priorities"). */
#define WQ_CLIENT_PRIORITY_LOW    0
#define WQ_CLIENT_PRIORITY_NORMAL 1     /* the default */
#define WQ_CLIENT_PRIORITY_HIGH   2

/*
 * wq_client_set_priority makes `priority` (WQ_CLIENT_PRIORITY_*) the
 * priority of every task this client submits from now on, by any of the
 * submit calls, until the next call; a new client submits normal ones.
 * A high or low task goes to its queue's priority band, broker queue
 * "workq.<queue>.priority-high" or "workq.<queue>.priority-low" (normal:
 * "workq.<queue>" as always), which workers that know priorities
 * consume (CHANGELOG); a delayed task keeps its priority in PostgreSQL
 * and goes to its band when due.  Transactional enqueues
 * (wq_client_enqueue_tx) are normal.  Returns 0, or WQ_EINVAL for a
 * value out of range.
 */
int wq_client_set_priority(wq_client *c, int priority, char *err,
    size_t errlen);

/*
 * wq_client_free flushes what is queued (within the configured timeout),
 * closes the broker and database connections and frees the client.
 * NULL is allowed.
 */
void wq_client_free(wq_client *c);

#ifdef __cplusplus
}
#endif

#endif
