/*
 * pubconn.c - one publishing connection over a transport handle (see
 * pubconn.h).
 *
 * The declared queues live in a small open-addressing set of names
 * (FNV-1a, linear probing, at most half full), with the last hit checked
 * first: a stream of messages to one queue costs one strcmp each.
 * Allocation failures only cost the memory of a declaration (plain
 * malloc, no abort: the C client shares this code).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pubconn.h"

/* ---- declared queues ---------------------------------------------------- */

static uint64_t
hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;     /* FNV-1a */

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int
declared(struct wq_pubconn *pc, const char *q)
{
    if (pc->cap == 0)
        return 0;
    if (pc->names[pc->last] != NULL && strcmp(pc->names[pc->last], q) == 0)
        return 1;
    for (size_t i = hash(q) & (pc->cap - 1);; i = (i + 1) & (pc->cap - 1)) {
        if (pc->names[i] == NULL)
            return 0;
        if (strcmp(pc->names[i], q) == 0) {
            pc->last = i;
            return 1;
        }
    }
}

/* Puts the (owned) name into a set with room for it. */
static void
insert(struct wq_pubconn *pc, char *name)
{
    size_t i = hash(name) & (pc->cap - 1);

    while (pc->names[i] != NULL)
        i = (i + 1) & (pc->cap - 1);
    pc->names[i] = name;
    pc->last = i;
    pc->used++;
}

/* Remembers q; without memory it is simply not remembered. */
static void
remember(struct wq_pubconn *pc, const char *q)
{
    char *copy;

    if ((pc->used + 1) * 2 > pc->cap) {
        char **old = pc->names, **grown;
        size_t ocap = pc->cap, ncap = ocap == 0 ? 64 : ocap * 2;

        if ((grown = calloc(ncap, sizeof *grown)) == NULL)
            return;
        pc->names = grown;
        pc->cap = ncap;
        pc->used = 0;
        for (size_t i = 0; i < ocap; i++)
            if (old[i] != NULL)
                insert(pc, old[i]);
        free(old);
    }
    if ((copy = strdup(q)) != NULL)
        insert(pc, copy);
}

void
wq_pubconn_forget(struct wq_pubconn *pc)
{
    for (size_t i = 0; i < pc->cap; i++) {
        free(pc->names[i]);
        pc->names[i] = NULL;
    }
    pc->used = 0;
    pc->last = 0;
}

/* ---- the handle ----------------------------------------------------------- */

/* Every verdict passes here on its way to the owner. */
static void
on_confirm(void *opaque, int status, const char *reason, void *user)
{
    struct wq_pubconn *pc = user;

    if (pc->inflight > 0)
        pc->inflight--;
    /* the queue may be gone (deleted by an operator): declare the queues
     * again on their next use; it is idempotent and rare */
    if (status != 0)
        wq_pubconn_forget(pc);
    if (pc->on_confirm != NULL)
        pc->on_confirm(opaque, status, reason, pc->on_confirm_user);
}

void
wq_pubconn_init(struct wq_pubconn *pc, const struct wq_transport_conf *tc,
    int64_t min_ms, int64_t max_ms, enum wq_jitter jitter)
{
    memset(pc, 0, sizeof *pc);
    pc->tc = *tc;
    pc->on_confirm = tc->on_confirm;
    pc->on_confirm_user = tc->on_confirm_user;
    pc->tc.on_confirm = on_confirm;
    pc->tc.on_confirm_user = pc;
    wq_reconnect_init(&pc->retry, min_ms, max_ms, jitter);
}

int
wq_pubconn_broken(int rc)
{
    return rc == WQ_EBROKER || rc == WQ_ETIMEOUT || rc == WQ_ECLOSED;
}

int
wq_pubconn_open(struct wq_pubconn *pc, char *err, size_t errlen)
{
    int rc;

    if (pc->t != NULL)
        return 0;
    if ((rc = wq_transport_open(&pc->tc, &pc->t, err, errlen)) != 0) {
        pc->t = NULL;
        wq_reconnect_failed(&pc->retry);
        return rc;
    }
    wq_reconnect_ok(&pc->retry);
    return 0;
}

int
wq_pubconn_declare(struct wq_pubconn *pc, const char *queue, char *err,
    size_t errlen)
{
    int rc;

    if (declared(pc, queue))
        return 0;
    if ((rc = wq_transport_declare(pc->t, queue, err, errlen)) != 0)
        return rc;
    remember(pc, queue);
    return 0;
}

int
wq_pubconn_publish(struct wq_pubconn *pc, const char *queue,
    const void *key, size_t keylen, const void *body, size_t len,
    void *opaque, char *err, size_t errlen)
{
    int rc;

    /* counted first: the verdict may come inside publish() */
    pc->inflight++;
    rc = wq_transport_publish(pc->t, queue, key, keylen, body, len, opaque,
        err, errlen);
    if (rc != 0)
        pc->inflight--;
    return rc;
}

int
wq_pubconn_flush(struct wq_pubconn *pc, int timeout_ms, char *err,
    size_t errlen)
{
    return wq_transport_flush(pc->t, timeout_ms, err, errlen);
}

void
wq_pubconn_drop(struct wq_pubconn *pc, int timeout_ms)
{
    if (pc->t == NULL)
        return;
    wq_transport_close(pc->t, timeout_ms);
    pc->t = NULL;
    pc->inflight = 0;
    wq_pubconn_forget(pc);
    wq_reconnect_hold(&pc->retry, pc->retry.step_ms);
}

void
wq_pubconn_free(struct wq_pubconn *pc, int timeout_ms)
{
    wq_pubconn_drop(pc, timeout_ms);
    wq_pubconn_forget(pc);
    free(pc->names);
    pc->names = NULL;
    pc->cap = 0;
}
