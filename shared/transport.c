/*
 * transport.c - picks a backend and forwards to its ops (see transport.h).
 */
#include <string.h>

#include "transport.h"

#define OPS(t) (((const struct wq_transport_base *)(const void *)(t))->ops)

int
wq_transport_kind_parse(const char *s)
{
    if (strcmp(s, "kafka") == 0)
        return WQ_TRANSPORT_KAFKA;
    if (strcmp(s, "rabbitmq") == 0 || strcmp(s, "amqp") == 0)
        return WQ_TRANSPORT_RABBITMQ;
    return -1;
}

int
wq_transport_open(const struct wq_transport_conf *conf, wq_transport **out,
    char *err, size_t errlen)
{
    const struct wq_transport_ops *ops;

    switch (conf->kind) {
    case WQ_TRANSPORT_KAFKA:    ops = &wq_transport_kafka_ops; break;
    case WQ_TRANSPORT_RABBITMQ: ops = &wq_transport_amqp_ops; break;
    default:
        return wq_seterr(err, errlen, WQ_EINVAL, "unknown transport kind %d",
            (int)conf->kind);
    }
    return ops->open(conf, out, err, errlen);
}

int
wq_transport_declare(wq_transport *t, const char *queue, char *err,
    size_t errlen)
{
    return OPS(t)->declare(t, queue, err, errlen);
}

int
wq_transport_publish(wq_transport *t, const char *queue, const void *key,
    size_t keylen, const void *body, size_t len, void *opaque, char *err,
    size_t errlen)
{
    return OPS(t)->publish(t, queue, key, keylen, body, len, opaque, err,
        errlen);
}

int
wq_transport_flush(wq_transport *t, int timeout_ms, char *err, size_t errlen)
{
    return OPS(t)->flush(t, timeout_ms, err, errlen);
}

int
wq_transport_subscribe(wq_transport *t, const char *const *queues, size_t n,
    char *err, size_t errlen)
{
    return OPS(t)->subscribe(t, queues, n, err, errlen);
}

int
wq_transport_poll(wq_transport *t, wq_delivery **out, int timeout_ms,
    char *err, size_t errlen)
{
    return OPS(t)->poll(t, out, timeout_ms, err, errlen);
}

int
wq_transport_ack(wq_transport *t, wq_delivery *d, char *err, size_t errlen)
{
    return OPS(t)->ack(t, d, err, errlen);
}

int
wq_transport_nack(wq_transport *t, wq_delivery *d, char *err, size_t errlen)
{
    return OPS(t)->nack(t, d, err, errlen);
}

void
wq_transport_close(wq_transport *t, int timeout_ms)
{
    if (t != NULL)
        OPS(t)->close(t, timeout_ms);
}

const char *
wq_transport_name(const wq_transport *t)
{
    return OPS(t)->name;
}
