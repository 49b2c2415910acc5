/*
 * wq_test_broker.h - the brokers of tests/services seen from a test: a
 * raw consumer that takes envelopes off a queue with the transport API
 * and decodes them (the way a worker would, without one), and clean-up of
 * the queues a test created.
 *
 * Tests run against both transports; `kind` is WQ_TRANSPORT_KAFKA or
 * WQ_TRANSPORT_RABBITMQ.  A missing broker fails the test with a hint,
 * never skips it.
 */
#ifndef WQ_TEST_BROKER_H
#define WQ_TEST_BROKER_H

#include <stddef.h>

#include "envelope.h"
#include "transport.h"

/* "kafka" or "rabbitmq". */
const char *wq_test_kind_name(int kind);

/*
 * wq_test_transport_conf fills *tc for the private broker of `kind`
 * (WQ_TEST_KAFKA_BROKERS() / WQ_TEST_AMQP_URL(); quorum queues, the
 * default of the configuration; short Kafka group timeouts).
 */
void wq_test_transport_conf(int kind, struct wq_transport_conf *tc);

/*
 * wq_test_env_for fills env[] with the "WORKQ_..." entries that point a
 * workq binary at the private servers for `kind` (and at `conninfo` for
 * PostgreSQL when not NULL), NULL-terminated; returns the count.  The
 * strings are static, valid until the next call.
 */
size_t wq_test_env_for(int kind, const char *conninfo, const char **env,
    size_t max);

/*
 * wq_test_forget_queue remembers a queue to delete (RabbitMQ queue or
 * Kafka topic "workq.Q") when the test process exits.
 */
void wq_test_forget_queue(int kind, const char *queue);

/* wq_test_queue returns a queue name unique to this test process
 * (wq_test_unique(prefix)) that is deleted when the process exits
 * (wq_test_forget_queue).  Static buffer as wq_test_unique's. */
const char *wq_test_queue(int kind, const char *prefix);

/* wq_test_delete_queue deletes a queue (RabbitMQ) or topic (Kafka) now,
 * as an operator would; errors are ignored. */
void wq_test_delete_queue(int kind, const char *queue);

struct wq_test_consumer;

/* Subscribes to `queue` (which must exist) or fails the test. */
struct wq_test_consumer *wq_test_consumer_open(int kind, const char *queue);

/*
 * wq_test_consumer_recv takes envelopes off the queue until `n` arrived
 * or `timeout_ms` passed in all; each is decoded strictly
 * (a message that does not decode fails the test) and acked.  out[i]
 * are the caller's (wq_envelope_free).  Returns how many arrived.
 */
size_t wq_test_consumer_recv(struct wq_test_consumer *c,
    struct wq_envelope *out, size_t n, int timeout_ms);

/* The Kafka message key of the last delivery (NULL on RabbitMQ). */
const char *wq_test_consumer_last_key(const struct wq_test_consumer *c);

void wq_test_consumer_close(struct wq_test_consumer *c);

/*
 * wq_test_expect_only checks that the only message on the queue is the
 * one with id `id` (text): it waits for that one, then `quiet_ms` more,
 * and fails the test if anything else arrived.  Used after requests that
 * must publish nothing, followed by one that must (the sentinel).
 */
void wq_test_expect_only(struct wq_test_consumer *c, const char *id,
    int quiet_ms);

#endif
