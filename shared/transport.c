/*
 * transport.c - the registry of broker backends (WQ_TRANSPORT_BACKENDS in
 * transport.h): picks a backend by kind or name, lets every backend fill
 * its settings, and opens one.  Knows no broker by name: each backend's
 * file owns its library, its settings and its quirks.
 */
#include <stdlib.h>
#include <string.h>

#include "transport.h"

#define WQ_TRANSPORT_ENTRY_(k, name, desc) [WQ_TRANSPORT_##k] = &desc,
static const struct wq_transport_backend *const backends[] = {
    WQ_TRANSPORT_BACKENDS(WQ_TRANSPORT_ENTRY_)
};
#undef WQ_TRANSPORT_ENTRY_

#define WQ_TRANSPORT_NAME_(k, name, desc) [WQ_TRANSPORT_##k] = name,
const char *const wq_transport_names[] = {
    WQ_TRANSPORT_BACKENDS(WQ_TRANSPORT_NAME_)
    [WQ_TRANSPORT_NKINDS] = NULL
};
#undef WQ_TRANSPORT_NAME_

const struct wq_transport_backend *
wq_transport_backend(int kind)
{
    return kind >= 0 && kind < WQ_TRANSPORT_NKINDS ? backends[kind] : NULL;
}

const char *
wq_transport_kind_name(int kind)
{
    return kind >= 0 && kind < WQ_TRANSPORT_NKINDS ? wq_transport_names[kind]
        : "?";
}

int
wq_transport_kind_parse(const char *s)
{
    for (int k = 0; k < WQ_TRANSPORT_NKINDS; k++)
        if (strcmp(s, wq_transport_names[k]) == 0)
            return k;
    /* the protocol's name for RabbitMQ, accepted since the first release */
    if (strcmp(s, "amqp") == 0)
        return WQ_TRANSPORT_RABBITMQ;
    return -1;
}

int
wq_transport_settings(struct wq_config *cfg, struct wq_transport_conf *out,
    char *err, size_t errlen)
{
    int rc;

    for (int k = 0; k < WQ_TRANSPORT_NKINDS; k++)
        if ((rc = backends[k]->settings(cfg, out, err, errlen)) != 0)
            return rc;
    return 0;
}

int
wq_transport_open(const struct wq_transport_conf *conf, wq_transport **out,
    char *err, size_t errlen)
{
    const struct wq_transport_backend *b = wq_transport_backend(conf->kind);

    if (b == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "unknown transport kind %d",
            (int)conf->kind);
    return b->ops->open(conf, out, err, errlen);
}

void
wq_backlog_free(struct wq_backlog *b)
{
    free(b->parts);
    b->parts = NULL;
    b->nparts = 0;
}
