/*
 * client.c - the public C client API (workq.h): builds envelopes from
 * wq_client_task values, publishes them through one transport handle and
 * waits for the broker's confirmations; delayed tasks go to PostgreSQL
 * through the store as `scheduled` rows.
 *
 * A client owns: its configuration (or borrows the caller's), one
 * publishing connection (pubconn.h: the transport handle, opened at open
 * and reopened after it failed, and the queues declared on it), one store
 * handle (opened on the first delayed task), one reusable encode buffer
 * and a pool of `struct slot`, one per message in flight, which is the
 * opaque the transport hands back to on_confirm.  It leaves the wire format to envelope.c, the broker
 * protocols to the transports and the SQL to store.c.
 *
 * The hot path allocates nothing once warm: the envelope borrows the
 * caller's strings, the encode buffer and the slots are reused.
 *
 * Failure handling.  A transport whose connection failed (WQ_EBROKER from
 * publish or flush) or that did not confirm by the deadline is closed at
 * once: closing reports every message still in flight to on_confirm, so
 * no slot is left waiting, and the next submit opens a new handle.  A
 * client idle for a second first lets the transport read its socket, so
 * a connection the broker closed meanwhile (a restart, missed heartbeats:
 * nobody serves them in an idle client) is replaced before it is used,
 * and a publish that finds its connection broken is tried once more on a
 * new one.  The transport gets the client's timeout as its publish
 * timeout, so the broker's library gives up at the same deadline.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "clock.h"
#include "config.h"
#include "envelope.h"
#include "priority.h"
#include "pubconn.h"
#include "store.h"
#include "store_flow.h"
#include "taskspec.h"
#include "transport.h"
#include "uuid.h"
#include "wq.h"
#include "workq.h"

#define DEFAULT_TIMEOUT_MS 30000
#define CLOSE_TIMEOUT_MS   1000     /* close after a failure: no waiting */
#define SERVE_EVERY        1024     /* async publishes between report serves */
#define SETTLE_EVERY       8192     /* confirmed tasks per receipts statement */
/* A confirmed task waits at most about this long for its receipt to be
 * sent, in a stream that is never flushed (see wq_client_submit_async). */
#define SETTLE_AGE_NS      (50ull * 1000000u)
/* Confirmed tasks that may pile up behind a receipts statement still
 * under way before the stream waits for it. */
#define SETTLE_BACKLOG     (4 * SETTLE_EVERY)
/* While tasks wait, a stream serves at least this often. */
#define SERVE_AGE_NS       (10ull * 1000000u)
/* After this long without a publish, check the connection first. */
#define IDLE_CHECK_NS      (1000ull * 1000000u)
/* A flush waits for the broker in slices of this long, and sends the
 * receipts of what it confirmed so far between them (broker_wait). */
#define RECEIPT_SLICE_MS   3
/* A confirmed task's receipt waits at most this long for the fates of
 * the ids before its own (struct fates). */
#define SETTLE_HOLD_NS     (200ull * 1000000u)
/* After PostgreSQL failed, receipts wait this long before a new try. */
#define STORE_RETRY_NS     (5000ull * 1000000u)

/* One message in flight: what to tell whom when the broker answers, and
 * what its receipt needs once it has. */
struct slot {
    struct slot *next;              /* in the free list */
    wq_client_done_fn *done;
    void *user;
    char id[WQ_CLIENT_ID_LEN];
    uint8_t uuid[16];
    int max_attempts;
    int64_t created_at_ms;
    int priority;                   /* the band it went to (priority.h) */
    const char *queue;              /* interned (names_intern) */
    const char *type;
    char *key;                      /* a client-given key, or NULL */
    int fresh;                      /* its id is of c->ids: seq */
    uint64_t seq;
    int keyed;                      /* counted in c->keyed_inflight */
};

/*
 * The fates (confirmed or failed) of the ids of c->ids, in sequence
 * order.  A confirmed fresh task's receipt is sent once every id before
 * its own has a fate (seq < low), so that a batch's receipts are ranges
 * with no gaps (store_tasks.c: one row for the lot instead of 16 bytes
 * an id).  Only the cost depends on it: the store checks each range.
 */
struct fates {
    uint64_t low;                   /* every seq below has its fate */
    uint64_t next;                  /* after the last seq stamped */
    unsigned char *known;           /* known[seq & (cap - 1)], seq in
                                       [low, next) */
    size_t cap;                     /* a power of two, or 0 */
};

struct wq_client {
    struct wq_config own;           /* when the client loaded it */
    struct wq_config *cfg;          /* &own or the caller's */
    int owns_cfg;
    int timeout_ms;

    struct wq_pubconn pc;           /* closed: opened on next use */
    wq_store *store;                /* NULL: open on first use */
    uint64_t store_retry_ns;        /* after a failure: not before this */
    char store_why[256];

    /* Confirmed by the broker, waiting for their receipts to be sent
     * (settle_send()); confirmed_ns: when the first of them was. */
    struct slot **confirmed;
    size_t nconfirmed, confirmed_cap;
    uint64_t confirmed_ns;
    /* Receipts sent, their answers not read yet (settle_recv()): sent[i]
     * is the slot of accepts[i], for i in [sent_first, nsent), in
     * ngroups sends (wq_store_accept_send) of group[] tasks each, the
     * oldest first.  Both arrays have room for sent_cap. */
    struct slot **sent;
    size_t sent_first, nsent, sent_cap;
    struct wq_accept *accepts;
    size_t group[WQ_ACCEPT_DEPTH];
    int ngroups;
    int answering;                  /* inside answer(): callbacks run */
    char **names;                   /* queue and type names, interned */
    size_t nnames, names_cap, last_name;

    struct wq_buf buf;              /* the encoded envelope */
    struct slot *free_slots;
    unsigned since_serve;
    uint64_t served_ns;             /* last serve of the broker's verdicts */
    int timing_out;                 /* closing after a flush timeout */
    /* flow control of the next submits (wq_client_set_flow); the key
     * is the client's copy */
    struct wq_client_flow flow;
    int priority;                   /* of the next submits (priority.h) */
    uint64_t last_use_ns;           /* last publish */
    /* the ids of tasks without a key: a confirmed batch of them is a
     * range, recorded as one receipt (wq_store_accept) */
    struct wq_uuid_seq ids;
    struct fates fates;
    size_t keyed_inflight;          /* keyed tasks awaiting the broker */

    int flush_rc;                   /* first failure since the last flush */
    char flush_err[256];
};

/* --- small helpers ------------------------------------------------------- */

/* Copies s into dst[size], cut if longer (snprintf would warn at -O2). */
static void
copy_str(char *dst, size_t size, const char *s)
{
    size_t n = strlen(s);

    if (n >= size)
        n = size - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Replaces a config string by a copy of s; 0 or WQ_ENOMEM. */
static int
set_string(char **field, const char *s)
{
    char *copy;

    if (s == NULL)
        return 0;
    if ((copy = strdup(s)) == NULL)
        return WQ_ENOMEM;
    free(*field);
    *field = copy;
    return 0;
}

static void
result_fail(struct wq_client_result *r, int status, const char *why)
{
    r->status = status;
    copy_str(r->error, sizeof r->error, why);
}

static void
note_failure(wq_client *c, int status, const char *why)
{
    if (c->flush_rc == 0) {
        c->flush_rc = status;
        copy_str(c->flush_err, sizeof c->flush_err, why);
    }
}

/* --- confirmations ------------------------------------------------------- */

/*
 * The client's copy of a queue or type name, made once: slots point to
 * it, so a task in flight copies no string, and the receipts of a batch
 * share their names.  NULL when out of memory.
 */
static const char *
names_intern(wq_client *c, const char *s)
{
    char **grown;

    if (c->last_name < c->nnames && strcmp(c->names[c->last_name], s) == 0)
        return c->names[c->last_name];
    for (size_t i = 0; i < c->nnames; i++)
        if (strcmp(c->names[i], s) == 0) {
            c->last_name = i;
            return c->names[i];
        }
    if (c->nnames == c->names_cap) {
        size_t cap = c->names_cap ? c->names_cap * 2 : 8;

        if ((grown = realloc(c->names, cap * sizeof *grown)) == NULL)
            return NULL;
        c->names = grown;
        c->names_cap = cap;
    }
    if ((c->names[c->nnames] = strdup(s)) == NULL)
        return NULL;
    c->last_name = c->nnames;
    return c->names[c->nnames++];
}

/*
 * Room in c->fates for one more seq; 0, or WQ_ENOMEM.  The window holds
 * the ids in flight, so it grows to the largest batch and stays.
 */
static int
fates_reserve(wq_client *c)
{
    struct fates *f = &c->fates;
    size_t cap = f->cap ? f->cap * 2 : 1024;
    unsigned char *grown;

    if (f->next - f->low < f->cap)
        return 0;
    if ((grown = calloc(cap, 1)) == NULL)
        return WQ_ENOMEM;
    for (uint64_t q = f->low; q < f->next; q++)
        grown[q & (cap - 1)] = f->known[q & (f->cap - 1)];
    free(f->known);
    f->known = grown;
    f->cap = cap;
    return 0;
}

/* The seq of a new fresh id (stamped in sequence order after
 * fates_reserve). */
static void
fates_stamp(wq_client *c, uint64_t seq)
{
    struct fates *f = &c->fates;

    if (seq != f->next) {
        /* the first id, or a sequence begun again (a forked child):
         * what is in flight of the old one no longer holds anything up */
        memset(f->known, 0, f->cap);
        f->low = seq;
    }
    f->known[seq & (f->cap - 1)] = 0;
    f->next = seq + 1;
}

/* A fresh id's fate is in: confirmed, refused, or never sent. */
static void
fates_known(wq_client *c, uint64_t seq)
{
    struct fates *f = &c->fates;

    if (seq < f->low || seq >= f->next)
        return;
    f->known[seq & (f->cap - 1)] = 1;
    while (f->low < f->next && f->known[f->low & (f->cap - 1)])
        f->known[f->low++ & (f->cap - 1)] = 0;
}

/* Keeps a confirmed slot for settle(); 0, or WQ_ENOMEM. */
static int
confirmed_push(wq_client *c, struct slot *s)
{
    struct slot **grown;

    if (c->nconfirmed == c->confirmed_cap) {
        size_t cap = c->confirmed_cap ? c->confirmed_cap * 2 : 256;

        if ((grown = realloc(c->confirmed, cap * sizeof *grown)) == NULL)
            return WQ_ENOMEM;
        c->confirmed = grown;
        c->confirmed_cap = cap;
    }
    if (c->nconfirmed == 0)
        c->confirmed_ns = wq_clock_mono_ns();
    c->confirmed[c->nconfirmed++] = s;
    return 0;
}

/* The store, opened on first use; NULL while PostgreSQL is unreachable
 * (tried again at most every STORE_RETRY_NS; c->store_why says why). */
static wq_store *
store_get(wq_client *c)
{
    struct wq_store_opts so;

    if (c->store != NULL)
        return c->store;
    if (wq_clock_mono_ns() < c->store_retry_ns)
        return NULL;
    wq_config_store_opts(c->cfg, &so);
    if (wq_store_open_opts(&so, &c->store, c->store_why,
        sizeof c->store_why) != 0) {
        c->store = NULL;
        c->store_retry_ns = wq_clock_mono_ns() + STORE_RETRY_NS;
    }
    return c->store;
}

/* After PostgreSQL failed: no receipts for a while (store_get). */
static void
store_fail(wq_client *c)
{
    wq_store_close(c->store);
    c->store = NULL;
    c->store_retry_ns = wq_clock_mono_ns() + STORE_RETRY_NS;
}

/*
 * Gives each of slots[0..n) its verdict: accepted (rc 0: acc[i] says
 * whether a duplicate, and its state), or accepted but untracked when
 * PostgreSQL could not record its receipt (the task is on the broker
 * and runs all the same); then returns the slots to the pool.
 */
static void
answer(wq_client *c, struct slot **slots, const struct wq_accept *acc,
    size_t n, int rc)
{
    struct wq_client_result r;

    c->answering = 1;
    for (size_t i = 0; i < n; i++) {
        struct slot *s = slots[i];

        memset(&r, 0, sizeof r);
        memcpy(r.id, s->id, sizeof r.id);
        copy_str(r.state, sizeof r.state, "queued");
        if (rc == 0) {
            r.duplicate = acc[i].duplicate;
            copy_str(r.state, sizeof r.state,
                wq_task_state_name(acc[i].state));
        } else {
            r.untracked = c->cfg->producer.receipts;
        }
        if (s->done != NULL)
            s->done(s->user, &r);
        free(s->key);
        s->key = NULL;
        s->next = c->free_slots;
        c->free_slots = s;
    }
    c->answering = 0;
}

/* Room for `need` tasks in sent[] and accepts[]; 0, or WQ_ENOMEM. */
static int
sent_reserve(wq_client *c, size_t need)
{
    struct wq_accept *acc;
    struct slot **sl;
    size_t cap = c->sent_cap ? c->sent_cap : 256;

    if (need <= c->sent_cap)
        return 0;
    while (cap < need)
        cap *= 2;
    if ((sl = realloc(c->sent, cap * sizeof *sl)) == NULL)
        return WQ_ENOMEM;
    c->sent = sl;
    if ((acc = realloc(c->accepts, cap * sizeof *acc)) == NULL)
        return WQ_ENOMEM;
    c->accepts = acc;
    c->sent_cap = cap;
    return 0;
}

/* Every receipt under way is lost (PostgreSQL failed): their tasks are
 * answered untracked, or as wq_store_accept says when `retry` can make
 * it again. */
static void
sent_fail(wq_client *c, int retry)
{
    size_t first = c->sent_first, n = c->nsent - first;
    char err[256];
    int rc = WQ_ESTORE;

    c->ngroups = 0;
    if (retry && wq_store_ping(c->store, NULL, 0) == 0)
        /* a connection lost and made again: receipts are idempotent */
        rc = wq_store_accept(c->store, &c->accepts[first], n, err,
            sizeof err);
    if (rc != 0)
        store_fail(c);
    answer(c, &c->sent[first], &c->accepts[first], n, rc);
}

/* What settle_send() sends: every receipt; those whose ids have no
 * gap before them (struct fates); or only keyed tasks' (a flush waiting
 * for the broker, after which the fresh ones go as one range). */
enum send_what { SEND_ALL, SEND_READY, SEND_KEYED };

/*
 * Sends the receipts of the confirmed tasks `what` says to PostgreSQL
 * (one statement per kind, wq_store_accept_send) without waiting for the
 * answer, unless WQ_ACCEPT_DEPTH sends are under way already: the next
 * batch's statement travels while the one before runs.  The others stay
 * confirmed for a later call, except when nothing is in flight, or
 * (SEND_READY) the oldest waited SETTLE_HOLD_NS.  The tasks get their
 * verdicts from settle_recv(); at once when receipts are off or
 * PostgreSQL is out of reach.
 */

static void
settle_send(wq_client *c, enum send_what what)
{
    size_t n = c->nconfirmed, base, go = 0, kept = 0;
    char err[256];
    wq_store *st = NULL;
    int all;

    /* a callback that submits or flushes: its tasks wait for the next
     * call, so that sent[] and accepts[] stay as answer() reads them */
    if (n == 0 || c->ngroups == WQ_ACCEPT_DEPTH || c->answering)
        return;
    if (c->ngroups == 0)
        c->sent_first = c->nsent = 0;
    base = c->nsent;
    if (sent_reserve(c, base + n) != 0) {
        /* out of memory: answered from confirmed[] itself, and pushes
         * during the callbacks go to a new one */
        struct slot **tell = c->confirmed;

        c->confirmed = NULL;
        c->nconfirmed = c->confirmed_cap = 0;
        answer(c, tell, NULL, n, WQ_ESTORE);
        free(tell);
        return;
    }
    /* fresh tasks wait for the fates of the ids before theirs (struct
     * fates), unless nothing is in flight or they waited long enough */
    all = what == SEND_ALL || c->pc.inflight == 0
        || !c->cfg->producer.receipts
        || (what == SEND_READY
            && wq_clock_mono_ns() - c->confirmed_ns >= SETTLE_HOLD_NS);
    for (size_t i = 0; i < n; i++) {
        struct slot *s = c->confirmed[i];

        if (all || !s->fresh
            || (what == SEND_READY && s->seq < c->fates.low))
            c->sent[base + go++] = s;
        else
            c->confirmed[kept++] = s;
    }
    c->nconfirmed = kept;
    if ((n = go) == 0)
        return;
    if (!c->cfg->producer.receipts || (st = store_get(c)) == NULL) {
        answer(c, &c->sent[base], NULL, n, WQ_ESTORE);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct slot *s = c->sent[base + i];
        struct wq_accept *a = &c->accepts[base + i];

        memcpy(a->id, s->uuid, sizeof a->id);
        a->queue = s->queue;
        a->type = s->type;
        a->key = s->key;
        a->max_attempts = s->max_attempts;
        a->created_at_ms = s->created_at_ms;
        a->priority = s->priority;
    }
    c->nsent = base + n;
    if (wq_store_accept_send(st, &c->accepts[base], n, err, sizeof err)
        != 0) {
        sent_fail(c, 0);        /* the sends before went with it */
        return;
    }
    c->group[c->ngroups++] = n;
}

/*
 * Reads the answer to the oldest receipts statement under way, if any,
 * and gives its tasks their verdicts.  Without `wait`, returns at once
 * when the answer is not in yet.  A statement that failed on a
 * connection lost and made again is run once more, with those sent
 * after it (receipts are idempotent).
 */
static void
settle_recv(wq_client *c, int wait)
{
    size_t first = c->sent_first, n;
    char err[256];
    int rc;

    if (c->ngroups == 0 || c->answering)
        return;
    n = c->group[0];
    rc = wq_store_accept_recv(c->store, &c->accepts[first], n, wait, err,
        sizeof err);
    if (rc == WQ_EAGAIN)
        return;
    if (rc != 0) {
        sent_fail(c, rc == WQ_ESTORE);  /* the later sends went with it */
        return;
    }
    c->ngroups--;
    memmove(&c->group[0], &c->group[1], (size_t)c->ngroups
        * sizeof c->group[0]);
    c->sent_first = first + n;
    answer(c, &c->sent[first], &c->accepts[first], n, 0);
}

/*
 * Records the receipts of every confirmed task, then gives each its
 * verdict: accepted, a duplicate of an earlier submit of its key, or
 * accepted but untracked.  The last statement is sent before the one
 * under way is read.  Blocks on PostgreSQL.
 */
static void
settle(wq_client *c)
{
    settle_send(c, SEND_ALL);
    while (c->ngroups > 0 && !c->answering) {
        settle_recv(c, 1);
        settle_send(c, SEND_ALL);
    }
}

/* Reads every receipts statement under way, so that the store is free
 * for something else (it serves one thing at a time). */
static void
settle_drain(wq_client *c)
{
    while (c->ngroups > 0 && !c->answering)
        settle_recv(c, 1);
}

/*
 * The transport's verdict on one message, on the calling thread inside
 * publish, flush or close.
 */
static void
on_confirm(void *opaque, int status, const char *reason, void *user)
{
    wq_client *c = user;
    struct slot *s = opaque;
    struct wq_client_result r;

    if (s->fresh)
        fates_known(c, s->seq);
    if (s->keyed)
        c->keyed_inflight--;
    if (status == 0 && s->queue != NULL && s->type != NULL
        && confirmed_push(c, s) == 0)
        return;     /* answered by settle(), after its receipt */
    memset(&r, 0, sizeof r);
    memcpy(r.id, s->id, sizeof r.id);
    if (status != 0 && c->timing_out)
        status = WQ_ETIMEOUT;
    r.status = status;
    if (status != 0) {
        snprintf(r.error, sizeof r.error, "%s%s%s", status == WQ_ETIMEOUT
            ? "not confirmed by the broker in time" : wq_strerror(status),
            reason != NULL ? ": " : "", reason != NULL ? reason : "");
        note_failure(c, status, r.error);
    } else {
        r.untracked = 1;        /* no room to remember it: no receipt */
        copy_str(r.state, sizeof r.state, "queued");
    }
    if (s->done != NULL)
        s->done(s->user, &r);
    free(s->key);
    s->key = NULL;
    s->next = c->free_slots;
    c->free_slots = s;
}

/* --- opening ------------------------------------------------------------- */

/* Everything after the configuration is in place. */
static int
client_start(wq_client *c, int timeout_ms, char *err, size_t errlen)
{
    struct wq_transport_conf tc;
    int rc;

    c->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    if ((rc = wq_config_transport_conf(c->cfg, &tc, err, errlen)) != 0)
        return rc;
    if (tc.client_id == NULL)
        tc.client_id = "workq-client";
    tc.publish_timeout_ms = c->timeout_ms;
    tc.on_confirm = on_confirm;
    tc.on_confirm_user = c;
    /* no backoff: a failed open is the caller's answer, the next submit
     * tries again */
    wq_pubconn_init(&c->pc, &tc, 0, 0, WQ_JITTER_NONE);
    return wq_pubconn_open(&c->pc, err, errlen);
}

static wq_client *
client_alloc(void)
{
    wq_client *c = calloc(1, sizeof(wq_client));

    if (c != NULL)
        c->priority = WQ_PRIORITY_NORMAL;
    return c;
}

int
wq_client_open(const char *config_path, wq_client **out, char *err,
    size_t errlen)
{
    char cerr[WQ_CONFIG_ERRLEN];
    wq_client *c;
    int rc;

    *out = NULL;
    if ((c = client_alloc()) == NULL)
        return wq_seterr(err, errlen, WQ_ENOMEM, "out of memory");
    c->cfg = &c->own;
    c->owns_cfg = 1;
    if ((rc = wq_config_load(config_path, &c->own, cerr, sizeof cerr))
        != 0) {
        wq_seterr(err, errlen, rc, "%s", cerr);
        wq_config_free(&c->own);
        free(c);
        return rc;
    }
    if ((rc = client_start(c, 0, err, errlen)) != 0) {
        wq_client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int
wq_client_open_conf(const struct wq_client_conf *conf, wq_client **out,
    char *err, size_t errlen)
{
    struct wq_config *cfg;
    wq_client *c;
    int rc = 0, kind;

    *out = NULL;
    if ((c = client_alloc()) == NULL)
        return wq_seterr(err, errlen, WQ_ENOMEM, "out of memory");
    c->cfg = cfg = &c->own;
    c->owns_cfg = 1;
    wq_config_defaults(cfg);
    if (conf != NULL) {
        if (conf->transport != NULL) {
            if ((kind = wq_transport_kind_parse(conf->transport)) < 0) {
                rc = wq_seterr(err, errlen, WQ_ECONFIG, "transport '%s': "
                    "want \"kafka\" or \"rabbitmq\"", conf->transport);
                goto fail;
            }
            cfg->transport = kind;
        }
        if (conf->rabbitmq_queue_type != NULL) {
            if (strcasecmp(conf->rabbitmq_queue_type, "quorum") == 0)
                cfg->rabbitmq.queue_type = WQ_RABBITMQ_QUORUM;
            else if (strcasecmp(conf->rabbitmq_queue_type, "classic") == 0)
                cfg->rabbitmq.queue_type = WQ_RABBITMQ_CLASSIC;
            else {
                rc = wq_seterr(err, errlen, WQ_ECONFIG, "rabbitmq queue "
                    "type '%s': want \"quorum\" or \"classic\"",
                    conf->rabbitmq_queue_type);
                goto fail;
            }
        }
        if (conf->kafka_partitions < 0 || conf->kafka_partitions > 1024
            || conf->kafka_linger_ms > 10000 || conf->timeout_ms < 0) {
            rc = wq_seterr(err, errlen, WQ_ECONFIG, "kafka_partitions, "
                "kafka_linger_ms or timeout_ms out of range");
            goto fail;
        }
        if (conf->receipts < 0)
            cfg->producer.receipts = 0;
        if (conf->kafka_partitions > 0)
            cfg->kafka.partitions = conf->kafka_partitions;
        if (conf->kafka_linger_ms != 0)
            cfg->kafka.linger_ms = conf->kafka_linger_ms < 0 ? 0
                : conf->kafka_linger_ms;
        if (set_string(&cfg->kafka.brokers, conf->kafka_brokers) != 0
            || set_string(&cfg->rabbitmq.url, conf->rabbitmq_url) != 0
            || set_string(&cfg->postgres.conninfo,
                conf->postgres_conninfo) != 0
            || set_string(&cfg->postgres.password,
                conf->postgres_password) != 0
            || set_string(&cfg->worker.id, conf->client_id) != 0) {
            rc = wq_seterr(err, errlen, WQ_ENOMEM, "out of memory");
            goto fail;
        }
    }
    if ((rc = client_start(c, conf != NULL ? conf->timeout_ms : 0, err,
        errlen)) != 0)
        goto fail;
    *out = c;
    return 0;

fail:
    wq_client_free(c);
    return rc;
}

int
wq_client_open_config(struct wq_config *cfg, wq_client **out, char *err,
    size_t errlen)
{
    wq_client *c;
    int rc;

    *out = NULL;
    if (cfg == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "no configuration");
    if ((c = client_alloc()) == NULL)
        return wq_seterr(err, errlen, WQ_ENOMEM, "out of memory");
    c->cfg = cfg;
    if ((rc = client_start(c, 0, err, errlen)) != 0) {
        wq_client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* --- delayed tasks: PostgreSQL ------------------------------------------- */

static int
store_insert(wq_client *c, const struct wq_task_new *t, int *inserted,
    char *err, size_t errlen)
{
    struct wq_store_opts so;
    int rc;

    /* the store serves one thing at a time: receipts under way first */
    settle_drain(c);
    wq_config_store_opts(c->cfg, &so);
    if (c->store == NULL && (rc = wq_store_open_opts(&so, &c->store, err,
        errlen)) != 0) {
        c->store = NULL;
        return rc;
    }
    if (t == NULL)
        return 0;               /* only the connection, for the caller */
    rc = wq_store_task_insert(c->store, t, inserted, err, errlen);
    if (rc == WQ_ESTORE && wq_store_ping(c->store, NULL, 0) == 0)
        /* a lost connection, back now: the insert is idempotent (the
         * same id under the same key), so doing it again is safe */
        rc = wq_store_task_insert(c->store, t, inserted, err, errlen);
    return rc;
}

/*
 * The key a task with a unique window runs under (wq_taskspec_unique_key)
 * into `out`: the window comes from PostgreSQL, as for store_insert.
 */
static int
unique_key(wq_client *c, const char *queue, const char *key,
    int64_t window_ms, char *out, size_t outlen, char *err, size_t errlen)
{
    struct wq_store_opts so;
    int64_t start = 0;
    int rc;

    settle_drain(c);
    wq_config_store_opts(c->cfg, &so);
    if (c->store == NULL && (rc = wq_store_open_opts(&so, &c->store, err,
        errlen)) != 0) {
        c->store = NULL;
        return rc;
    }
    rc = wq_store_unique_window(c->store, queue, key, window_ms, &start,
        err, errlen);
    if (rc == WQ_ESTORE && wq_store_ping(c->store, NULL, 0) == 0)
        rc = wq_store_unique_window(c->store, queue, key, window_ms, &start,
            err, errlen);
    if (rc != 0)
        return rc;
    return wq_taskspec_unique_key(key, start, out, outlen, err, errlen);
}

int
wq_client_set_flow(wq_client *c, const struct wq_client_flow *flow,
    char *err, size_t errlen)
{
    char *ckey = NULL;
    int rc;

    if (c == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "client is NULL");
    /* the key is checked per task (a window needs one), the rest here */
    if (flow != NULL && (rc = wq_taskspec_flow_check(flow, "", err,
        errlen)) != 0)
        return rc;
    if (flow != NULL && flow->concurrency_key != NULL
        && (ckey = strdup(flow->concurrency_key)) == NULL)
        return wq_seterr(err, errlen, WQ_ENOMEM, "out of memory");
    free((char *)(uintptr_t)c->flow.concurrency_key);
    memset(&c->flow, 0, sizeof c->flow);
    if (flow != NULL) {
        c->flow = *flow;
        c->flow.concurrency_key = ckey;
    }
    return 0;
}

int
wq_client_set_priority(wq_client *c, int priority, char *err, size_t errlen)
{
    if (c == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "client is NULL");
    if (priority < WQ_CLIENT_PRIORITY_LOW
        || priority > WQ_CLIENT_PRIORITY_HIGH)
        return wq_seterr(err, errlen, WQ_EINVAL, "priority %d is not "
            "%d (low), %d (normal) or %d (high)", priority,
            WQ_CLIENT_PRIORITY_LOW, WQ_CLIENT_PRIORITY_NORMAL,
            WQ_CLIENT_PRIORITY_HIGH);
    c->priority = priority;
    return 0;
}

/*
 * Stores a delayed task as `scheduled`, filling r.  A task whose key
 * exists already is not stored again: r->id is then the existing task's.
 */
static int
submit_scheduled(wq_client *c, const struct wq_envelope *env,
    struct wq_client_result *r, char *err, size_t errlen)
{
    struct wq_task_new t;
    struct wq_task_row row;
    char *hjson = NULL;
    int inserted = 0, rc;

    if (env->nheaders > 0 && (hjson = wq_taskspec_headers_json(env)) == NULL)
        return wq_seterr(err, errlen, WQ_ENOMEM, "out of memory");
    memset(&t, 0, sizeof t);
    memcpy(t.id, env->id, sizeof t.id);
    t.queue = env->queue;
    t.type = env->type;
    t.idempotency_key = env->key;
    t.payload = env->payload;
    t.payload_len = env->payload_len;
    t.headers_json = hjson;
    t.state = WQ_TASK_SCHEDULED;
    t.attempt = 0;
    t.max_attempts = (int)env->max_attempts;
    t.run_at_ms = env->run_at_ms;
    t.created_at_ms = env->created_at_ms;
    t.priority = c->priority;
    /* flow control: the scheduler publishes it with its concurrency key
     * (workq.flow_tasks), which is there before the task row is */
    rc = 0;
    if (env->concurrency_key != NULL && (rc = store_insert(c, NULL, NULL,
        err, errlen)) == 0)
        rc = wq_store_flow_remember(c->store, env->queue, env->key,
            env->concurrency_key, (int)env->concurrency_limit, err, errlen);
    if (rc == 0)
        rc = store_insert(c, &t, &inserted, err, errlen);
    free(hjson);
    if (rc != 0)
        return rc;
    r->scheduled = 1;
    r->run_at_ms = env->run_at_ms;
    copy_str(r->state, sizeof r->state, "scheduled");
    if (!inserted) {
        memset(&row, 0, sizeof row);
        rc = wq_store_task_get_by_key(c->store, env->queue, env->key, &row,
            err, errlen);
        if (rc != 0)
            return rc;
        if (memcmp(row.id, env->id, sizeof row.id) != 0) {
            wq_uuid_format(row.id, r->id);
            r->duplicate = 1;
            r->run_at_ms = row.run_at_ms;
        } else if (row.created_at_ms != env->created_at_ms
            || row.run_at_ms != env->run_at_ms) {
            /* the key's own id, taken before (the same envelope again is
             * this submit's retry after a lost connection) */
            r->duplicate = 1;
            r->run_at_ms = row.run_at_ms;
        }
        copy_str(r->state, sizeof r->state, wq_task_state_name(row.state));
        wq_task_row_free(&row);
    }
    return 0;
}

/* --- submitting ---------------------------------------------------------- */

static struct slot *
slot_get(wq_client *c)
{
    struct slot *s = c->free_slots;

    if (s != NULL)
        c->free_slots = s->next;
    else
        s = malloc(sizeof *s);
    return s;
}

/*
 * Publishes one envelope with `s` as its opaque.  On failure `s` is back
 * in the pool and no callback will come for it.
 *
 * A connection found broken (the broker restarted, or closed an idle
 * connection whose heartbeats nobody served) is replaced and the publish
 * tried once more on the new one.  The first attempt did not reach the
 * broker whole, or if it did, the retry is a duplicate with the same id
 * and key, which the worker's claim absorbs.
 */
static int
publish(wq_client *c, const struct wq_envelope *env, struct slot *s,
    char *err, size_t errlen)
{
    char band[WQ_BROKER_QUEUE_MAX + 1];
    int rc, tries = 0;

    /* the priority is the band the message goes to (priority.h) */
    wq_priority_band(band, sizeof band, env->queue, c->priority);
    wq_buf_reset(&c->buf);
    if ((rc = wq_envelope_encode(env, &c->buf, err, errlen)) != 0)
        goto fail;
again:
    if (c->pc.t != NULL && c->pc.inflight == 0
        && wq_clock_mono_ns() - c->last_use_ns > IDLE_CHECK_NS
        && wq_pubconn_flush(&c->pc, 0, NULL, 0) == WQ_EBROKER)
        /* it died while idle (the close is read here): a new one */
        wq_pubconn_drop(&c->pc, CLOSE_TIMEOUT_MS);
    c->last_use_ns = wq_clock_mono_ns();
    if ((rc = wq_pubconn_open(&c->pc, err, errlen)) != 0
        || (rc = wq_pubconn_declare(&c->pc, band, err, errlen)) != 0)
        goto broken;
    rc = wq_pubconn_publish(&c->pc, band, env->key, strlen(env->key),
        c->buf.data, c->buf.len, s, err, errlen);
    if (rc == 0)
        return 0;

broken:
    if (wq_pubconn_broken(rc) && c->pc.t != NULL) {
        /* the handle is no good any more: verdicts for the rest now */
        wq_pubconn_drop(&c->pc, CLOSE_TIMEOUT_MS);
        if (rc != WQ_ETIMEOUT && tries++ == 0)
            goto again;
    }
fail:
    free(s->key);
    s->key = NULL;
    s->next = c->free_slots;
    c->free_slots = s;
    return rc;
}

/*
 * In a stream of async submits: serves the broker's verdicts now and
 * then (every SERVE_EVERY publishes, or SERVE_AGE_NS after the last
 * serve when tasks are waiting), so callbacks come while the stream goes
 * on and slots are reused instead of piling up.  Receipts go to
 * PostgreSQL in large batches (SETTLE_EVERY tasks a statement), or once
 * the first confirmed task has waited SETTLE_AGE_NS, so that a slow
 * stream that is never flushed still hears of its tasks; the answer is
 * read at a later serve, while the stream goes on.
 */
static void
serve(wq_client *c)
{
    uint64_t now = c->last_use_ns;      /* publish() just read the clock */

    if (++c->since_serve < SERVE_EVERY && (now - c->served_ns
        < SERVE_AGE_NS || (c->pc.inflight == 0 && c->nconfirmed == 0
        && c->ngroups == 0)))
        return;
    c->since_serve = 0;
    c->served_ns = now;
    if (c->pc.t != NULL && c->pc.inflight > 0
        && wq_pubconn_flush(&c->pc, 0, NULL, 0) == WQ_EBROKER)
        wq_pubconn_drop(&c->pc, CLOSE_TIMEOUT_MS);
    /* PostgreSQL slower than the broker: wait for it rather than pile up */
    settle_recv(c, c->nconfirmed >= SETTLE_BACKLOG);
    if (c->nconfirmed >= SETTLE_EVERY || (c->nconfirmed > 0
        && wq_clock_mono_ns() - c->confirmed_ns >= SETTLE_AGE_NS))
        settle_send(c, SEND_READY);
}

int
wq_client_submit_async(wq_client *c, const struct wq_client_task *task,
    wq_client_done_fn *done, void *user, char id[WQ_CLIENT_ID_LEN],
    char *err, size_t errlen)
{
    struct wq_header hdrs[WQ_HEADERS_MAX];
    struct wq_client_task own;
    struct wq_client_result r;
    struct wq_envelope env;
    char idtext[WQ_CLIENT_ID_LEN], ukey[WQ_KEY_MAX + 1];
    struct slot *s;
    int64_t run_at;
    uint64_t seq = 0;
    int rc, fresh;

    if (id != NULL)
        id[0] = '\0';
    if (c == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "client is NULL");
    if (task != NULL && task->max_attempts == 0 && task->queue != NULL) {
        /* the queue's policy decides, as for every producer */
        own = *task;
        own.max_attempts = wq_taskspec_max_attempts(c->cfg, task->queue);
        task = &own;
    }
    /* flow control (wq_client_set_flow): a unique window names the key */
    if (c->flow.unique_for_ms > 0 && task != NULL) {
        if ((rc = wq_taskspec_flow_check(&c->flow, task->idempotency_key,
            err, errlen)) != 0)
            return rc;
        if (task->queue == NULL
            || (rc = wq_queue_name_valid(task->queue, err, errlen)) != 0)
            return task->queue == NULL ? wq_seterr(err, errlen, WQ_EINVAL,
                "task queue is NULL") : rc;
        if ((rc = unique_key(c, task->queue, task->idempotency_key,
            c->flow.unique_for_ms, ukey, sizeof ukey, err, errlen)) != 0)
            return rc;
        if (task != &own) {
            own = *task;
            task = &own;
        }
        own.idempotency_key = ukey;
    }
    if ((rc = wq_taskspec_envelope(task, &c->ids, &env, hdrs, idtext,
        &run_at, err, errlen)) != 0)
        return rc;
    if ((rc = wq_taskspec_flow_apply(&c->flow, &env, err, errlen)) != 0)
        return rc;

    if (run_at > 0) {
        memset(&r, 0, sizeof r);
        memcpy(r.id, idtext, sizeof r.id);
        if ((rc = submit_scheduled(c, &env, &r, err, errlen)) != 0)
            return rc;
        if (id != NULL)
            memcpy(id, r.id, WQ_CLIENT_ID_LEN);
        if (done != NULL)
            done(user, &r);
        return 0;
    }

    if ((s = slot_get(c)) == NULL)
        return wq_seterr(err, errlen, WQ_ENOMEM, "out of memory");
    s->fresh = 0;
    if (task->idempotency_key == NULL) {
        /* its id is of the client's sequence (wq_taskspec_envelope) */
        if (fates_reserve(c) == 0) {
            s->fresh = 1;
            s->seq = wq_uuid_rand_b(env.id);
            fates_stamp(c, s->seq);
        }
    }
    fresh = s->fresh;
    seq = s->seq;
    if ((s->keyed = task->idempotency_key != NULL))
        c->keyed_inflight++;
    s->done = done;
    s->user = user;
    memcpy(s->id, idtext, sizeof s->id);
    memcpy(s->uuid, env.id, sizeof s->uuid);
    s->max_attempts = (int)env.max_attempts;
    s->created_at_ms = env.created_at_ms;
    s->priority = c->priority;
    /* NULLs here (out of memory) only cost the receipt: see on_confirm */
    s->queue = names_intern(c, env.queue);
    s->type = names_intern(c, env.type);
    s->key = NULL;
    if (task->idempotency_key != NULL
        && (s->key = strdup(env.key)) == NULL)
        s->queue = NULL;        /* no receipt: reported untracked */
    if (id != NULL)
        memcpy(id, idtext, WQ_CLIENT_ID_LEN);
    /* after a successful publish `s` may already be back in the pool */
    if ((rc = publish(c, &env, s, err, errlen)) != 0) {
        if (fresh)
            fates_known(c, seq);
        if (task->idempotency_key != NULL)
            c->keyed_inflight--;
        if (id != NULL)
            id[0] = '\0';
        return rc;
    }
    serve(c);
    return 0;
}

/*
 * Waits up to timeout_ms for the broker's verdicts on every message in
 * flight, as wq_pubconn_flush does.  With receipts on, the wait goes in
 * slices of RECEIPT_SLICE_MS, and between two slices the receipts of
 * the keyed tasks the broker confirmed so far go to PostgreSQL (and the
 * answer to the statement before is read), so that PostgreSQL records
 * them while the broker confirms: a keyed task's receipt is a row, so
 * only the last slice's are left to record, not the whole batch's.
 * Fresh tasks' receipts wait for the end, when they make one range, one
 * row, and with no keyed task in flight the wait is one piece: on
 * RabbitMQ, waits in slices cost the confirmations more than the
 * overlap saved.  A slice
 * that ends with messages still unconfirmed is no failure: both
 * transports keep their state and count on, and only the deadline's
 * slice speaks for the flush.
 */
static int
broker_wait(wq_client *c, int timeout_ms, char *err, size_t errlen)
{
    uint64_t deadline = wq_clock_mono_ns()
        + (uint64_t)timeout_ms * 1000000u;
    int rc;

    if (!c->cfg->producer.receipts || c->keyed_inflight == 0)
        return wq_pubconn_flush(&c->pc, timeout_ms, err, errlen);
    for (;;) {
        uint64_t now = wq_clock_mono_ns();
        uint64_t left = now < deadline ? (deadline - now + 999999)
            / 1000000u : 0;
        int slice = left < RECEIPT_SLICE_MS ? (int)left : RECEIPT_SLICE_MS;

        rc = wq_pubconn_flush(&c->pc, slice, err, errlen);
        if (rc != WQ_ETIMEOUT || (uint64_t)slice == left
            || c->pc.inflight == 0)
            return rc;
        settle_recv(c, 0);
        settle_send(c, SEND_KEYED);
    }
}

int
wq_client_flush(wq_client *c, int timeout_ms, char *err, size_t errlen)
{
    char ferr[WQ_ERRLEN];
    int rc = 0;

    if (c == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "client is NULL");
    if (timeout_ms < 0)
        timeout_ms = c->timeout_ms;
    /* The receipts of keyed tasks the broker confirmed so far go to
     * PostgreSQL now, so that their round trips overlap the wait for the
     * rest; the fresh ones go after it as one range. */
    settle_recv(c, 0);
    settle_send(c, SEND_KEYED);
    if (c->pc.t != NULL && c->pc.inflight > 0) {
        rc = broker_wait(c, timeout_ms, ferr, sizeof ferr);
        if (wq_pubconn_broken(rc)) {
            c->timing_out = rc == WQ_ETIMEOUT;
            wq_pubconn_drop(&c->pc, 0);
            c->timing_out = 0;
            note_failure(c, rc, ferr);
        }
    }
    c->since_serve = 0;
    settle(c);
    rc = c->flush_rc;
    if (rc != 0)
        wq_seterr(err, errlen, rc, "%s", c->flush_err);
    c->flush_rc = 0;
    c->flush_err[0] = '\0';
    return rc;
}

/* A batch entry's callback: the outcome into results[i]. */
static void
batch_done(void *user, const struct wq_client_result *r)
{
    *(struct wq_client_result *)user = *r;
}

int
wq_client_submit_batch(wq_client *c, const struct wq_client_task *tasks,
    size_t n, struct wq_client_result *results, char *err, size_t errlen)
{
    char terr[WQ_ERRLEN];
    size_t nbad = 0, first = 0;
    int rc;

    if (c == NULL || (n > 0 && (tasks == NULL || results == NULL)))
        return wq_seterr(err, errlen, WQ_EINVAL, "client, tasks or results "
            "is NULL");
    for (size_t i = 0; i < n; i++) {
        memset(&results[i], 0, sizeof results[i]);
        /* pending until its callback says otherwise */
        results[i].status = WQ_EAGAIN;
        rc = wq_client_submit_async(c, &tasks[i], batch_done, &results[i],
            results[i].id, terr, sizeof terr);
        if (rc != 0)
            result_fail(&results[i], rc, terr);
    }
    (void)wq_client_flush(c, -1, NULL, 0);
    for (size_t i = 0; i < n; i++) {
        if (results[i].status == WQ_EAGAIN)
            /* cannot happen: the flush reports every message */
            result_fail(&results[i], WQ_ETIMEOUT, "no verdict");
        if (results[i].status != 0 && nbad++ == 0)
            first = i;
    }
    if (nbad == 0)
        return 0;
    return wq_seterr(err, errlen, results[first].status, "%zu of %zu "
        "task%s not accepted; task %zu: %s", nbad, n, n == 1 ? "" : "s",
        first, results[first].error);
}

int
wq_client_submit(wq_client *c, const struct wq_client_task *task,
    char id[WQ_CLIENT_ID_LEN], char *err, size_t errlen)
{
    struct wq_client_result r;
    char berr[WQ_ERRLEN];
    int rc;

    memset(&r, 0, sizeof r);
    rc = wq_client_submit_batch(c, task, 1, &r, berr, sizeof berr);
    if (id != NULL)
        memcpy(id, rc == 0 ? r.id : "", rc == 0 ? WQ_CLIENT_ID_LEN : 1);
    /* the task's own reason, without the batch's "1 of 1" */
    if (rc != 0)
        wq_seterr(err, errlen, rc, "%s", r.error[0] != '\0' ? r.error
            : berr);
    return rc;
}

void
wq_client_free(wq_client *c)
{
    struct slot *s;

    if (c == NULL)
        return;
    if (c->pc.t != NULL)
        (void)wq_client_flush(c, -1, NULL, 0);
    wq_pubconn_free(&c->pc, CLOSE_TIMEOUT_MS);
    settle(c);
    wq_store_close(c->store);
    free(c->confirmed);
    free(c->fates.known);
    free(c->sent);
    free(c->accepts);
    for (size_t i = 0; i < c->nnames; i++)
        free(c->names[i]);
    free(c->names);
    while ((s = c->free_slots) != NULL) {
        c->free_slots = s->next;
        free(s);
    }
    wq_buf_free(&c->buf);
    free((char *)(uintptr_t)c->flow.concurrency_key);
    if (c->owns_cfg)
        wq_config_free(&c->own);
    free(c);
}

/* The codes of workq.h and wq.h must agree. */
_Static_assert(WQ_ECLOSED == -13 && WQ_ENACK == -12 && WQ_ERRLEN == 512,
    "workq.h and wq.h disagree");
_Static_assert(WQ_CLIENT_ID_LEN == WQ_UUID_STRLEN, "id text length");
