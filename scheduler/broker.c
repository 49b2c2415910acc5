/*
 * broker.c - the scheduler's batches on a publishing connection (see
 * broker.h; the connection, its declared queues and its reconnect backoff
 * are pubconn.c's).
 *
 * Confirmations arrive through the transport's on_confirm callback with
 * the opaque given at publish.  The opaque carries the batch's generation
 * and the message's index, not a pointer: a confirmation that comes late
 * (after its batch timed out, from inside a later call or from the close
 * that purges it) finds a different generation and is ignored, so it can
 * never write into a batch that no longer exists.
 *
 * A message the broker returns or refuses makes the connection forget
 * its declared queues, so a queue deleted behind our back is declared
 * again by the next batch.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "broker.h"
#include "log.h"
#include "pubconn.h"
#include "transport.h"

#define COMPONENT "broker"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
#define IDX_BITS       24           /* message index inside the opaque */
#define CLOSE_MS       2000         /* closing a broken connection */

struct wq_broker {
    struct wq_config *cfg;
    char *client_id;
    struct wq_pubconn pc;
    /* the batch being confirmed */
    uint64_t gen;
    struct wq_broker_msg *msgs;
    size_t n;
};

/* ---- the connection ------------------------------------------------------ */

static void
on_confirm(void *opaque, int status, const char *reason, void *user)
{
    wq_broker *b = user;
    uintptr_t v = (uintptr_t)opaque;
    size_t idx = (size_t)(v & ((1u << IDX_BITS) - 1));
    uint64_t gen = (uint64_t)(v >> IDX_BITS);

    if (gen != (b->gen & ((UINT64_C(1) << (sizeof(uintptr_t) * 8
        - IDX_BITS)) - 1)) || b->msgs == NULL || idx >= b->n)
        return;     /* a late verdict on a batch that is gone */
    b->msgs[idx].status = status;
    if (status != 0)
        wq_log_warn(COMPONENT, "message to '%s' refused: %s",
            b->msgs[idx].queue, reason != NULL ? reason : "?");
}

static void
go_down(wq_broker *b, const char *why)
{
    if (b->pc.t == NULL)
        return;
    wq_log_warn(COMPONENT, "closing the broker connection: %s", why);
    b->gen++;       /* verdicts from the close belong to no batch */
    wq_pubconn_drop(&b->pc, CLOSE_MS);
}

wq_broker *
wq_broker_new(struct wq_config *cfg, const char *client_id)
{
    wq_broker *b = xcalloc(1, sizeof *b);

    b->cfg = cfg;
    b->client_id = xstrdup(client_id);
    return b;
}

int
wq_broker_is_up(const wq_broker *b)
{
    return b->pc.t != NULL;
}

int64_t
wq_broker_retry_ms(const wq_broker *b)
{
    if (b->pc.t != NULL)
        return 0;
    return wq_reconnect_wait_ms(&b->pc.retry);
}

int
wq_broker_ready(wq_broker *b, char *err, size_t errlen)
{
    struct wq_transport_conf tc;
    int rc;

    if (b->pc.t != NULL)
        return 0;
    if (!wq_reconnect_due(&b->pc.retry))
        return wq_seterr(err, errlen, WQ_EAGAIN, "waiting %lld ms before "
            "the next connection attempt",
            (long long)wq_broker_retry_ms(b));
    /* set up at the first attempt: a configuration the transport
     * refuses is then reported here, at each attempt */
    if (b->pc.tc.on_confirm == NULL) {
        if ((rc = wq_config_transport_conf(b->cfg, &tc, err, errlen)) != 0)
            return rc;
        tc.client_id = b->client_id;
        tc.on_confirm = on_confirm;
        tc.on_confirm_user = b;
        wq_pubconn_init(&b->pc, &tc, BACKOFF_MIN_MS, BACKOFF_MAX_MS,
            WQ_JITTER_EQUAL);
    }
    if ((rc = wq_pubconn_open(&b->pc, err, errlen)) != 0)
        return rc == WQ_ECONFIG ? rc : WQ_EBROKER;
    wq_log_info(COMPONENT, "connected to %s", wq_transport_name(b->pc.t));
    return 0;
}

int
wq_broker_publish(wq_broker *b, struct wq_broker_msg *msgs, size_t n,
    int timeout_ms, size_t *nok, char *err, size_t errlen)
{
    char perr[WQ_ERRLEN];
    size_t ok = 0;
    int rc = 0, refused = 0;

    if (nok != NULL)
        *nok = 0;
    for (size_t i = 0; i < n; i++)
        msgs[i].status = WQ_ETIMEOUT;   /* until the broker says */
    if (b->pc.t == NULL)
        return wq_seterr(err, errlen, WQ_EBROKER, "not connected to the "
            "broker");
    if (n >= (1u << IDX_BITS))
        return wq_seterr(err, errlen, WQ_EINVAL, "batch too large");
    b->gen++;
    b->msgs = msgs;
    b->n = n;

    for (size_t i = 0; i < n; i++) {
        uintptr_t opaque = ((uintptr_t)b->gen << IDX_BITS) | i;

        rc = wq_pubconn_declare(&b->pc, msgs[i].queue, perr, sizeof perr);
        if (rc == WQ_EBROKER || rc == WQ_ETIMEOUT) {
            wq_seterr(err, errlen, rc, "declare '%s': %s", msgs[i].queue,
                perr);
            goto broken;
        }
        if (rc != 0) {
            /* this queue cannot be had (name, type mismatch): its
             * messages fail, the others go on */
            wq_log_warn(COMPONENT, "declare '%s': %s", msgs[i].queue, perr);
            msgs[i].status = rc;
            refused = 1;
            continue;
        }
        rc = wq_pubconn_publish(&b->pc, msgs[i].queue, msgs[i].key,
            msgs[i].keylen, msgs[i].body, msgs[i].len, (void *)opaque, perr,
            sizeof perr);
        if (rc == WQ_EBROKER || rc == WQ_ETIMEOUT) {
            wq_seterr(err, errlen, rc, "publish to '%s': %s", msgs[i].queue,
                perr);
            goto broken;
        }
        if (rc != 0) {
            wq_log_warn(COMPONENT, "publish to '%s': %s", msgs[i].queue,
                perr);
            msgs[i].status = rc;
            refused = 1;
        }
    }
    rc = wq_pubconn_flush(&b->pc, timeout_ms, perr, sizeof perr);
    if (rc == WQ_EBROKER || rc == WQ_ETIMEOUT) {
        wq_seterr(err, errlen, rc, "waiting for confirms: %s", perr);
        goto broken;
    }
    if (rc != 0)
        refused = 1;
    for (size_t i = 0; i < n; i++)
        ok += msgs[i].status == 0;
    if (refused)
        wq_pubconn_forget(&b->pc);
    b->msgs = NULL;
    b->n = 0;
    if (nok != NULL)
        *nok = ok;
    return 0;

broken:
    /* Keep the verdicts already in; the rest are unknown. */
    for (size_t i = 0; i < n; i++)
        ok += msgs[i].status == 0;
    b->msgs = NULL;
    b->n = 0;
    go_down(b, err);
    if (nok != NULL)
        *nok = ok;
    return rc;
}

int64_t
wq_broker_keepalive_ms(const wq_broker *b)
{
    const struct wq_transport_backend *be =
        wq_transport_backend(b->cfg->transport);

    return be->keepalive_ms != NULL ? be->keepalive_ms(b->cfg) : 0;
}

void
wq_broker_keepalive(wq_broker *b)
{
    char err[WQ_ERRLEN];
    int rc;

    if (b->pc.t == NULL)
        return;
    rc = wq_pubconn_flush(&b->pc, 0, err, sizeof err);
    if (rc == WQ_EBROKER)
        go_down(b, err);
}

void
wq_broker_free(wq_broker *b, int timeout_ms)
{
    if (b == NULL)
        return;
    b->gen++;       /* verdicts from the close belong to no batch */
    wq_pubconn_free(&b->pc, timeout_ms);
    free(b->client_id);
    free(b);
}
