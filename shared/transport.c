/*
 * transport.c - picks a backend and forwards to its ops (see transport.h).
 */
#include <stdlib.h>
#include <string.h>

#include "transport.h"

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

void
wq_backlog_free(struct wq_backlog *b)
{
    free(b->parts);
    b->parts = NULL;
    b->nparts = 0;
}
