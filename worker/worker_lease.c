/*
 * worker_lease.c - the set of claimed tasks, and the thread that renews their
 * leases, keeps the worker's heartbeat row and hears cancels (see
 * worker_lease.h).
 *
 * The set is a small open-addressing hash table of 16-byte task ids with
 * a pointer each (linear probing, deletion by backward shift, so there
 * are no tombstones); UUIDv7 ids end in random bits, which hash well.
 * One mutex guards it; the consumer adds and removes ids a batch at a
 * time and the thread copies them out every lease/3, so it is never held
 * for long.
 *
 * The thread sleeps in poll(2) on an eventfd (kick, stop) and, once
 * connected and listening, the socket of its PostgreSQL connection, so
 * that a NOTIFY workq_cancel wakes it at once.  A connection that fails
 * is pinged (which reconnects) before the next renewal, and LISTEN is
 * issued again on the new one.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "daemon.h"
#include "worker_lease.h"
#include "log.h"
#include "progress.h"
#include "uuid.h"

#define COMPONENT     "lease"
#define RETRY_MS      1000      /* after a failed renewal */
#define CANCEL_CHANNEL "workq_cancel"

struct slot {
    uint8_t id[16];             /* all-zero = empty (no UUIDv7 is zero) */
    void *task;
};

struct wq_worker_lease {
    pthread_mutex_t lock;       /* guards the set and `kick` */
    pthread_t thread;
    int started;
    int wake_fd;                /* eventfd: kick or stop */
    atomic_int stop;
    int clean;
    int kick;

    struct slot *slots;
    size_t cap, n;
    wq_worker_lease_cancel_fn *on_cancel;
    void *on_cancel_user;

    struct wq_worker_info w;
    char **queues;
    char *conninfo, *password, *listen_conninfo;
    int pooler;                 /* enum wq_store_pooler */
    int64_t lease_ms;
    wq_progress *progress;      /* reports of running tasks, flushed here */
};

static const uint8_t zero_id[16];

static size_t
slot_of(const struct wq_worker_lease *l, const uint8_t id[16])
{
    uint64_t h;

    memcpy(&h, id + 8, 8);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (size_t)h & (l->cap - 1);
}

static int
empty(const struct slot *s)
{
    return memcmp(s->id, zero_id, 16) == 0;
}

static void
set_insert(struct wq_worker_lease *l, const uint8_t id[16], void *task)
{
    size_t i = slot_of(l, id);

    while (!empty(&l->slots[i])) {
        if (memcmp(l->slots[i].id, id, 16) == 0) {
            l->slots[i].task = task;
            return;
        }
        i = (i + 1) & (l->cap - 1);
    }
    memcpy(l->slots[i].id, id, 16);
    l->slots[i].task = task;
    l->n++;
}

static void
grow(struct wq_worker_lease *l)
{
    struct slot *old = l->slots;
    size_t oldcap = l->cap;

    l->cap = oldcap ? oldcap * 2 : 64;
    l->slots = xcalloc(l->cap, sizeof *l->slots);
    l->n = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (!empty(&old[i]))
            set_insert(l, old[i].id, old[i].task);
    free(old);
}

static long
find(const struct wq_worker_lease *l, const uint8_t id[16])
{
    size_t i;

    if (l->cap == 0)
        return -1;
    i = slot_of(l, id);
    while (!empty(&l->slots[i])) {
        if (memcmp(l->slots[i].id, id, 16) == 0)
            return (long)i;
        i = (i + 1) & (l->cap - 1);
    }
    return -1;
}

void
wq_worker_lease_on_cancel(wq_worker_lease *l, wq_worker_lease_cancel_fn *fn,
    void *user)
{
    pthread_mutex_lock(&l->lock);
    l->on_cancel = fn;
    l->on_cancel_user = user;
    pthread_mutex_unlock(&l->lock);
}

void
wq_worker_lease_add(wq_worker_lease *l, const uint8_t id[16], void *task)
{
    pthread_mutex_lock(&l->lock);
    if ((l->n + 1) * 2 > l->cap)
        grow(l);
    set_insert(l, id, task);
    pthread_mutex_unlock(&l->lock);
}

void
wq_worker_lease_remove(wq_worker_lease *l, const uint8_t id[16])
{
    long at;
    size_t i, j;

    pthread_mutex_lock(&l->lock);
    if ((at = find(l, id)) >= 0) {
        /* backward shift: move later entries of the run into the hole
         * unless their home slot lies cyclically in (hole, them] */
        i = (size_t)at;
        j = i;
        for (;;) {
            size_t home;

            j = (j + 1) & (l->cap - 1);
            if (empty(&l->slots[j]))
                break;
            home = slot_of(l, l->slots[j].id);
            if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
                continue;
            l->slots[i] = l->slots[j];
            i = j;
        }
        memset(&l->slots[i], 0, sizeof l->slots[i]);
        l->n--;
    }
    pthread_mutex_unlock(&l->lock);
}

int
wq_worker_lease_holds(wq_worker_lease *l, const uint8_t id[16])
{
    int r;

    pthread_mutex_lock(&l->lock);
    r = find(l, id) >= 0;
    pthread_mutex_unlock(&l->lock);
    return r;
}

size_t
wq_worker_lease_count(wq_worker_lease *l)
{
    size_t n;

    pthread_mutex_lock(&l->lock);
    n = l->n;
    pthread_mutex_unlock(&l->lock);
    return n;
}

static void
wake(struct wq_worker_lease *l)
{
    uint64_t one = 1;

    if (write(l->wake_fd, &one, sizeof one) < 0)
        (void)0;    /* EAGAIN: the counter is full, a wakeup is pending */
}

void
wq_worker_lease_kick(wq_worker_lease *l)
{
    pthread_mutex_lock(&l->lock);
    l->kick = 1;
    pthread_mutex_unlock(&l->lock);
    wake(l);
}

/* A NOTIFY workq_cancel: cancel the task if it is ours. */
static void
cancel_one(struct wq_worker_lease *l, const char *payload)
{
    uint8_t id[16];
    long at;

    if (wq_uuid_parse(payload, id) != 0) {
        wq_log_warn(COMPONENT, "%s: \"%.64s\" is not a task id",
            CANCEL_CHANNEL, payload);
        return;
    }
    pthread_mutex_lock(&l->lock);
    if ((at = find(l, id)) >= 0 && l->on_cancel != NULL)
        l->on_cancel(l->slots[at].task, l->on_cancel_user);
    pthread_mutex_unlock(&l->lock);
}

/* A notification: a cancel names its task. */
static void
on_notify(const char *channel, const char *payload, void *user)
{
    if (strcmp(channel, CANCEL_CHANNEL) == 0)
        cancel_one(user, payload);
}

/* LISTEN on a (new) connection; 0 or WQ_ESTORE. */
static int
listen_cancels(wq_store *s, char *err, size_t errlen)
{
    return wq_store_listen(s, CANCEL_CHANNEL, err, errlen);
}

static void *
lease_main(void *arg)
{
    struct wq_worker_lease *l = arg;
    struct wq_claim_bufs bufs;
    wq_store *s = NULL;
    char err[WQ_ERRLEN];
    int64_t interval = l->lease_ms / 3;
    uint64_t next = 0;      /* the next renewal, monotonic; 0: now */
    uint64_t next_poll;     /* the next renewal or progress write */
    uint8_t *ids = NULL;
    size_t nids = 0, cap = 0, renewed = 0;
    int failing = 0, listening = 0, rc;

    wq_daemon_block_signals();
    memset(&bufs, 0, sizeof bufs);
    if (interval < 1)
        interval = 1;
    while (!atomic_load(&l->stop)) {
        struct pollfd pfd[2];
        int np = 1, kick;
        uint64_t v;

        if (wq_clock_mono_ns() >= next) {
            /* copy the set out, then talk to PostgreSQL without the lock */
            pthread_mutex_lock(&l->lock);
            if (l->cap > cap) {
                cap = l->cap;
                ids = xreallocarray(ids, cap, 16);
            }
            nids = 0;
            for (size_t i = 0; i < l->cap; i++)
                if (!empty(&l->slots[i]))
                    memcpy(ids + 16 * nids++, l->slots[i].id, 16);
            pthread_mutex_unlock(&l->lock);

            rc = 0;
            if (s == NULL) {
                struct wq_store_opts so = { l->conninfo, l->password,
                    l->pooler, l->listen_conninfo };

                rc = wq_store_open_opts(&so, &s, err, sizeof err);
            }
            else if (failing)
                rc = wq_store_ping(s, err, sizeof err);
            if (rc == 0 && (failing || !listening)) {
                /* a new connection (or the first): listen again */
                listening = 0;
                if ((rc = listen_cancels(s, err, sizeof err)) == 0)
                    listening = 1;
            }
            if (rc == 0)
                rc = wq_claim_renew(s, &bufs, &l->w, ids, nids, l->lease_ms,
                    (int)nids, &renewed, err, sizeof err);
            if (rc == 0) {
                if (failing)
                    wq_log_info(COMPONENT, "renewing leases again");
                failing = 0;
                next = wq_clock_mono_ns() + (uint64_t)interval * 1000000u;
                wq_log_debug(COMPONENT, "renewed %zu of %zu lease(s)",
                    renewed, nids);
                (void)wq_store_notifies(s, on_notify, l);
            } else {
                if (!failing)
                    wq_log_warn(COMPONENT, "cannot renew %zu lease(s): %s",
                        nids, err);
                failing = 1;
                listening = 0;
                next = wq_clock_mono_ns() + (uint64_t)(interval < RETRY_MS
                    ? interval : RETRY_MS) * 1000000u;
            }
        }

        /* progress reports that are due: one statement, on this
         * connection (progress.c) */
        if (s != NULL && !failing
            && wq_progress_next_ms(l->progress) == 0
            && wq_progress_flush(l->progress, s, l->w.id, err, sizeof err)
            != 0) {
            wq_log_warn(COMPONENT, "cannot write progress: %s", err);
            failing = 1;
            listening = 0;
            next = 0;
        }
        {
            int64_t pms = wq_progress_next_ms(l->progress);
            uint64_t pnext = wq_clock_mono_ns() + (uint64_t)pms * 1000000u;

            /* only while connected: a report waits for the connection
             * (the renewal's retry timer) instead of spinning */
            if (pms >= 0 && s != NULL && !failing && pnext < next)
                next_poll = pnext;
            else
                next_poll = next;
        }

        pfd[0].fd = l->wake_fd;
        pfd[0].events = POLLIN;
        if (s != NULL && listening && !failing
            && wq_store_socket(s) >= 0) {
            pfd[1].fd = wq_store_socket(s);
            pfd[1].events = POLLIN;
            np = 2;
        }
        if (poll(pfd, (nfds_t)np, wq_clock_ms_until(next_poll) + 1) < 0
            && errno != EINTR)
            wq_log_warn(COMPONENT, "poll: %s", strerror(errno));
        if (pfd[0].revents & POLLIN) {
            if (read(l->wake_fd, &v, sizeof v) < 0)
                (void)0;    /* EAGAIN: someone else took it */
            pthread_mutex_lock(&l->lock);
            kick = l->kick;
            l->kick = 0;
            pthread_mutex_unlock(&l->lock);
            if (kick)
                next = 0;
        }
        if (np == 2 && pfd[1].revents != 0) {
            if (wq_store_consume(s, err, sizeof err) != 0) {
                wq_log_warn(COMPONENT, "connection lost while listening for "
                    "cancels");
                failing = 1;
                listening = 0;
                next = 0;
            } else {
                (void)wq_store_notifies(s, on_notify, l);
            }
        }
    }
    if (s != NULL && l->clean && !failing
        && wq_claim_stopped(s, l->w.id, err, sizeof err) != 0)
        wq_log_warn(COMPONENT, "%s", err);
    wq_store_close(s);
    wq_claim_bufs_free(&bufs);
    free(ids);
    return NULL;
}

int
wq_worker_lease_start(const struct wq_worker_info *w,
    const struct wq_store_opts *so, int64_t lease_ms, wq_worker_lease **out,
    char *err, size_t errlen)
{
    struct wq_worker_lease *l = xcalloc(1, sizeof *l);
    int rc;

    *out = NULL;
    pthread_mutex_init(&l->lock, NULL);
    l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    l->w.id = xstrdup(w->id);
    l->w.hostname = xstrdup(w->hostname);
    l->w.version = xstrdup(w->version);
    l->w.pid = w->pid;
    l->queues = xcalloc(w->nqueues + 1, sizeof *l->queues);
    for (size_t i = 0; i < w->nqueues; i++)
        l->queues[i] = xstrdup(w->queues[i]);
    l->w.queues = (const char *const *)l->queues;
    l->w.nqueues = w->nqueues;
    l->conninfo = xstrdup(so->conninfo != NULL ? so->conninfo : "");
    l->password = xstrdup(so->password != NULL ? so->password : "");
    l->listen_conninfo = xstrdup(so->listen_conninfo != NULL
        ? so->listen_conninfo : "");
    l->pooler = so->pooler;
    l->lease_ms = lease_ms;
    grow(l);
    l->progress = wq_progress_new(l->wake_fd);
    if (l->wake_fd < 0) {
        wq_seterr(err, errlen, WQ_EIO, "eventfd: %s", strerror(errno));
        wq_worker_lease_stop(l, 0);
        return WQ_EIO;
    }
    if ((rc = pthread_create(&l->thread, NULL, lease_main, l)) != 0) {
        wq_seterr(err, errlen, WQ_EIO, "cannot start the lease thread: %s",
            strerror(rc));
        wq_worker_lease_stop(l, 0);
        return WQ_EIO;
    }
    l->started = 1;
    *out = l;
    return 0;
}

wq_progress *
wq_worker_lease_progress(wq_worker_lease *l)
{
    return l->progress;
}

void
wq_worker_lease_stop(wq_worker_lease *l, int clean)
{
    if (l == NULL)
        return;
    l->clean = clean;
    atomic_store(&l->stop, 1);
    if (l->started) {
        wake(l);
        pthread_join(l->thread, NULL);
    }
    for (size_t i = 0; i < l->w.nqueues; i++)
        free(l->queues[i]);
    free(l->queues);
    free((char *)l->w.id);
    free((char *)l->w.hostname);
    free((char *)l->w.version);
    if (l->password != NULL)
        explicit_bzero(l->password, strlen(l->password));
    free(l->password);
    free(l->conninfo);
    free(l->listen_conninfo);
    free(l->slots);
    wq_progress_free(l->progress);
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
