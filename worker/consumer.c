/*
 * consumer.c - the worker's loop (see consumer.h).
 *
 * A task moves through four lists of this thread and one shared list:
 *
 *   broker --poll--> incoming --claim--> pool (running) --done--> torecord
 *                  \-> bad (undecodable: dead letter, ack)      --record--> ack
 *
 * Each turn of the loop: take what the handler threads finished (`done`,
 * under the lock); take what the broker has now (non-blocking polls, up
 * to a cap); if PostgreSQL has work, do one round trip that records the
 * finished tasks and claims as many deliveries as there are free slots
 * (store_claims.c), then ack and dispatch; otherwise block in the broker's poll
 * (or on the condition variable when not polling) until a delivery, a
 * finished task, a signal or a timer.  Batches form by themselves: what
 * piles up during one round trip is the next round's batch, so an idle
 * worker serves a lone task at once and a busy one amortizes each commit
 * over hundreds of tasks; worker.batch_wait (round_due) spaces the rounds
 * of a steady trickle, so that they carry more than one or two.  Nothing
 * polls on a timer but the timers that exist (reconnect backoff,
 * watchdog, drain deadline, the broker heartbeat inside the transport),
 * so an idle worker sleeps.
 *
 * Failures.  A lost broker: deliveries not yet claimed are dropped (the
 * broker gives them again), claimed ones still run and are recorded, but
 * never acked on a newer connection (the generation number tells); then
 * reconnect with backoff.  A lost PostgreSQL: nothing is claimed, and
 * finished tasks wait in `torecord`, unacked, until a reconnect lets the
 * round go through; running tasks go on.  A batch the server rejects as
 * bad data is retried one item at a time, and a delivery the store will
 * not take becomes a dead letter, so one bad task cannot stop a queue.
 *
 * Owns: the transport, the consumer's store connection, the pool, the
 * cancel eventfd, the tasks.  The lease set (worker_lease.h) and the handler
 * registry are the caller's.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "backoff.h"
#include "store_claims.h"
#include "clock.h"
#include "consumer.h"
#include "daemon.h"
#include "flow_control.h"
#include "log.h"
#include "migrate.h"
#include "pool.h"
#include "priority.h"
#include "progress.h"
#include "reconnect.h"
#include "trace.h"
#include "uuid.h"

/*
 * Attempts of a task whose type has no handler on the worker that got
 * it: a few, over the queue's first backoff steps (about 45 s with the
 * default policy), in case another worker of the queue knows the type
 * (a rolling deploy that brings a new type); then dead, rather than the
 * whole series of the queue's policy (25 attempts, some 17 days).
 */
#define UNKNOWN_TYPE_ATTEMPTS 3u

#define COMPONENT          "worker"
#define IDLE_WAKE_MS       10000    /* longest sleep: keeps /healthz fresh */
#define AT_CAP_POLL_MS     100      /* held deliveries at their cap */
#define CANCEL_GRACE_MS    2000     /* after cancel, for exec kills */
#define FINAL_RECORD_MS    5000     /* shutdown: last records */
#define CLOSE_TIMEOUT_MS   5000     /* transport close */
#define BROKER_BACKOFF_MIN 250
#define BROKER_BACKOFF_MAX 30000
#define STORE_BACKOFF_MIN  50
#define STORE_BACKOFF_MAX  5000
#define STATUS_EVERY_MS    1000
#define CANCELLED          "cancelled by an operator; the handler process " \
                           "was sent a cancel frame"
/* the history's trace of a run that may have been lost unrecorded
 * (docs/task-states.md, "Unclaimed runs"; tests/fault/chaos.sh counts
 * it beside lost leases) */
#define MAYBE_RAN          "redelivered with no row: an earlier delivery " \
                           "may have run unclaimed on a worker that " \
                           "stopped before recording it"

struct task {
    struct task *next;
    struct wq_consumer *owner;  /* the consumer that claimed it */
    atomic_int cancel;          /* an operator cancelled it (worker_lease.c) */
    atomic_int wake_fd;         /* its handler thread's eventfd; -1 */
    wq_delivery *d;             /* NULL once acked or given back */
    uint64_t tgen;              /* transport generation of d */
    struct wq_envelope env;
    char *bad;                  /* undecodable: why; then env is empty */
    int flow;                   /* enum flow_state (flow_control.h) */
    int held;                   /* this round did not claim it: its key
                                   runs unclaimed here (ukeys_collect) */
    uint64_t flow_wait_ns;      /* FLOW_ASK: not before this */
    int rejected;               /* the store rejected its outcome once */
    struct wq_claim claim;      /* task_id, attempt, max_attempts; the
                                   loop's (a late claim changes it) */
    uint32_t run_attempt, run_max;  /* claim's at dispatch: the handler's */
    int run_unclaimed;              /* claim's at dispatch */
    int maybe_ran;                  /* redelivered, and its claim made the
                                       row: say so in its history */
    char *note;                     /* the record's error text with
                                       MAYBE_RAN added, when it has one */
    atomic_int reported;            /* its handler reported progress */
    uint64_t dispatch_ns;
    /* on the consumer's list of unclaimed runs not claimed late yet */
    struct task *uprev, *unext;
    int on_ulist;
    char id[WQ_UUID_STRLEN];
    const struct wq_handler *h;
    int priority;               /* its band's (priority.h) */
    uint64_t start_ns, end_ns;
    struct wq_handler_result res;
    /* A process handler's task runs without a handler thread
     * (wq_handler_process_start): its context lives here, its request
     * while it runs (for a cancel from the lease thread), and it is on
     * the consumer's list of such runs (for the drain deadline). */
    struct wq_handler_ctx ctx;
    _Atomic(struct wq_proc_req *) preq;
    struct task *aprev, *anext;
};

struct tlist {
    struct task *head, *tail;
    size_t n;
};

/* Where a delivery stands with flow control (flow_control.h). */
enum flow_state {
    FLOW_NONE,                  /* not governed: claim it */
    FLOW_ASK,                   /* to be admitted before its claim */
    FLOW_ADMITTED,              /* admitted: claim it */
};

struct policy {
    const char *name;
    struct wq_backoff b;
    const char *hook_url;       /* NULL: the queue has no completion hook */
};

struct wq_consumer {
    struct wq_consumer_conf conf;

    /* Shared with handler threads and wq_consumer_stop: under lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct tlist done;
    int stop_req;               /* 0 run, 1 drain, 2 now */
    int sleeping;               /* blocked in the transport's poll */
    wq_transport *wake_t;

    /* The consumer thread's own. */
    wq_transport *t;
    uint64_t tgen;
    int t_broken;               /* an ack or nack failed: reconnect */
    char t_why[WQ_ERRLEN];
    struct wq_reconnect t_retry;
    int t_logged;
    uint64_t last_poll_ns;
    wq_store *s;
    int s_up;
    struct wq_reconnect s_retry;
    int s_logged;
    struct tlist incoming, bad, torecord;
    /* the priorities (1u << band) that entered `incoming` since it was
     * last empty: one bit means one band, and prioritize() has no walk */
    unsigned incoming_bands;
    size_t running;             /* claimed by this consumer, not done */
    struct task *async;         /* running without a thread (task.anext) */
    size_t isolate;             /* items still to try one at a time */
    int cancel_fd;
    int draining;
    uint64_t drain_deadline;
    struct wq_claim_bufs bufs;
    /* unclaimed runs (store_claims.h), oldest dispatch first, until they
     * end or are claimed late; and the round's late claims */
    struct task *uhead, *utail;
    struct task **late;
    atomic_int late_now;        /* an unclaimed run reported progress */
    /* hashes of the (queue, key) of unclaimed runs not recorded yet,
     * sorted, and how many deliveries the last round held back for
     * them (a second delivery of a key waits for the first's record) */
    uint64_t *ukeys;
    size_t nukeys, capukeys, nheld;
    /* the transport gives partitions up (on_revoke): a round writes the
     * rows of every unclaimed run and claims nothing new */
    int revoking;
    /* an unclaimed run ended with no row and no record (abandoned, or
     * dropped at the end): its delivery may run again without a trace
     * unless the transport keeps its reservation (on_revoke says so) */
    int unclaimed_lost;
    struct wq_claim *claims;
    struct wq_record *recs;
    struct policy *policies;
    size_t npolicies;
    int any_hook;               /* some policy names a hook_url */
    int loop_slot;              /* wq_worker_stats_loop_register */
    /* flow control: the admission's arrays (batch_max each), and the
     * deliveries waiting to ask again (FLOW_ASK, flow_wait_ns later) */
    wq_flow *flow;
    int flow_seen;              /* a delivery ever asked: else no walk */
    const struct wq_envelope **fenv;
    struct task **ftask;
    unsigned char *fadmitted;
    int *fwait;
    size_t nwaiting;
    uint64_t wait_next_ns;
    uint64_t status_last_ns;
    uint64_t status_sig;
    uint64_t round_ns;          /* when the last round began */
    /* priorities (priority.h): the broker queues consumed, the three
     * bands of each queue (the queue itself first: Kafka names the
     * consumer group after it), and the weighted picker's state */
    char **bands;
    size_t nbands;
    int weights[WQ_PRIORITY_N];
    int credit[WQ_PRIORITY_N];
};

/* ---- lists -------------------------------------------------------------- */

static void
tl_push(struct tlist *l, struct task *t)
{
    t->next = NULL;
    if (l->tail != NULL)
        l->tail->next = t;
    else
        l->head = t;
    l->tail = t;
    l->n++;
}

static struct task *
tl_pop(struct tlist *l)
{
    struct task *t = l->head;

    if (t != NULL) {
        l->head = t->next;
        if (l->head == NULL)
            l->tail = NULL;
        l->n--;
        t->next = NULL;
    }
    return t;
}

/* Puts all of `front` before the tasks of l, keeping both orders. */
static void
tl_prepend(struct tlist *l, struct tlist *front)
{
    if (front->n == 0)
        return;
    front->tail->next = l->head;
    if (l->tail == NULL)
        l->tail = front->tail;
    l->head = front->head;
    l->n += front->n;
    memset(front, 0, sizeof *front);
}

/* The list of unclaimed runs not yet claimed late (consumer thread). */
static void
ulist_push(struct wq_consumer *c, struct task *tk)
{
    tk->unext = NULL;
    tk->uprev = c->utail;
    if (c->utail != NULL)
        c->utail->unext = tk;
    else
        c->uhead = tk;
    c->utail = tk;
    tk->on_ulist = 1;
}

static void
ulist_unlink(struct wq_consumer *c, struct task *tk)
{
    if (!tk->on_ulist)
        return;
    if (tk->uprev != NULL)
        tk->uprev->unext = tk->unext;
    else
        c->uhead = tk->unext;
    if (tk->unext != NULL)
        tk->unext->uprev = tk->uprev;
    else
        c->utail = tk->uprev;
    tk->uprev = tk->unext = NULL;
    tk->on_ulist = 0;
}

static void
task_free(struct task *t)
{
    wq_proc_req_free(atomic_load(&t->preq));
    wq_envelope_free(&t->env);
    wq_handler_result_free(&t->res);
    free(t->bad);
    free(t->note);
    free(t);
}

/* ---- policies ----------------------------------------------------------- */

static void
policies_init(struct wq_consumer *c)
{
    const struct wq_config *cfg = c->conf.cfg;
    const struct wq_config_queue_policy *p = cfg->queue_policies.v;

    c->npolicies = cfg->queue_policies.n;
    c->policies = xcalloc(c->npolicies + 1, sizeof *c->policies);
    for (size_t i = 0; i < c->npolicies; i++) {
        c->policies[i].name = p[i].name;
        c->policies[i].b.base_ms = p[i].backoff_base_ms;
        c->policies[i].b.cap_ms = p[i].backoff_cap_ms;
        c->policies[i].b.factor = p[i].backoff_factor;
        c->policies[i].b.jitter = (enum wq_jitter)p[i].backoff_jitter;
        c->policies[i].b.max_attempts = (uint32_t)p[i].max_attempts;
        if (p[i].hook_url != NULL && p[i].hook_url[0] != '\0') {
            c->policies[i].hook_url = p[i].hook_url;
            c->any_hook = 1;
        }
    }
}

/* The completion hook of a queue (its policy's, else "*"'s); NULL if
 * none.  Claims pass it to the store, which adds it to the task's
 * headers unless the task names its own (migration 0009). */
static const char *
hook_of(const struct wq_consumer *c, const char *queue)
{
    const char *star = NULL;

    if (!c->any_hook)
        return NULL;
    for (size_t i = 0; i < c->npolicies; i++) {
        if (strcmp(c->policies[i].name, queue) == 0)
            return c->policies[i].hook_url;
        if (strcmp(c->policies[i].name, "*") == 0)
            star = c->policies[i].hook_url;
    }
    return star;
}

/* The backoff of a queue: its own policy, else "*", else the default. */
static struct wq_backoff
policy_of(const struct wq_consumer *c, const char *queue)
{
    static const struct wq_backoff def = WQ_BACKOFF_DEFAULT;
    const struct wq_backoff *star = NULL;

    for (size_t i = 0; i < c->npolicies; i++) {
        if (strcmp(c->policies[i].name, queue) == 0)
            return c->policies[i].b;
        if (strcmp(c->policies[i].name, "*") == 0)
            star = &c->policies[i].b;
    }
    return star != NULL ? *star : def;
}

/* ---- handler threads ---------------------------------------------------- */

/*
 * Each handler thread has an eventfd on which an operator's cancel wakes
 * the task it runs (an exec handler, a sleep).  A cancel that comes just
 * as the thread moves to its next task wakes that one instead, which sees
 * its own flag clear and goes on.
 */
static pthread_key_t thread_fd_key;
static pthread_once_t thread_fd_once = PTHREAD_ONCE_INIT;

static void
thread_fd_close(void *p)
{
    close((int)(intptr_t)p - 1);
}

static void
thread_fd_init(void)
{
    pthread_key_create(&thread_fd_key, thread_fd_close);
}

/* This thread's eventfd (stored + 1, so that 0 means none), drained. */
static int
thread_fd(void)
{
    intptr_t v;
    uint64_t n;
    int fd;

    pthread_once(&thread_fd_once, thread_fd_init);
    v = (intptr_t)pthread_getspecific(thread_fd_key);
    if (v == 0) {
        if ((fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
            return -1;
        pthread_setspecific(thread_fd_key, (void *)(intptr_t)(fd + 1));
        return fd;
    }
    fd = (int)v - 1;
    if (read(fd, &n, sizeof n) < 0)
        (void)0;    /* EAGAIN: nothing stale */
    return fd;
}

/*
 * Logs a line about a task from a thread that is not running it (the
 * loop, the lease thread), with the task's id and traceparent as the
 * handler thread's lines have them (log.h wq_log_task_begin).
 */
static void WQ_PRINTFLIKE(4, 5)
task_log(const char *id, const struct wq_envelope *env,
    enum wq_log_level level, const char *fmt, ...)
{
    va_list ap;

    if (!wq_log_enabled(level))
        return;
    wq_log_task_begin(id, wq_trace_parent(env));
    va_start(ap, fmt);
    wq_logv(level, COMPONENT, fmt, ap);
    va_end(ap);
    wq_log_task_end();
}

/*
 * An operator's cancel (NOTIFY workq_cancel), from the lease thread with
 * the lease set locked, so the task is still ours and alive.
 */
static void
on_cancel(void *p, void *user)
{
    struct task *tk = p;
    uint64_t one = 1;
    int fd;

    struct wq_proc_req *r;

    (void)user;
    atomic_store(&tk->cancel, 1);
    if ((fd = atomic_load(&tk->wake_fd)) >= 0
        && write(fd, &one, sizeof one) < 0)
        (void)0;    /* EAGAIN: a wakeup is pending anyway */
    if ((r = atomic_load(&tk->preq)) != NULL)
        wq_proc_req_cancel(tk->h->proc, r, WQ_OUTCOME_CANCELLED, CANCELLED);
    task_log(tk->id, &tk->env, WQ_LOG_INFO, "task %s: cancel requested",
        tk->id);
}

/* Wakes the loop; the lock is held.  One transport wakeup per sleep. */
static void
wake_locked(struct wq_consumer *c)
{
    if (c->sleeping && c->wake_t != NULL) {
        wq_transport_wakeup(c->wake_t);
        c->sleeping = 0;
    }
    pthread_cond_signal(&c->cond);
}

/* A handler's progress report (handler.h), into the lease thread's
 * table (progress.h). */
static void
report_progress(void *user, int percent, const char *message)
{
    struct task *tk = user;
    struct wq_consumer *c = tk->owner;

    wq_progress_report(wq_worker_lease_progress(c->conf.lease),
        tk->id, tk->run_attempt, percent, message);
    /* an unclaimed run has no row for it yet: claim it now (late claim)
     * and the report is written again then */
    if (tk->run_unclaimed && !atomic_exchange(&tk->reported, 1)) {
        pthread_mutex_lock(&c->lock);
        atomic_store(&c->late_now, 1);
        wake_locked(c);
        pthread_mutex_unlock(&c->lock);
    }
}

/* The context of tk's run: the handler thread's `thread_fd` for an
 * operator's cancel (-1: none, the run is asynchronous). */
static void
task_ctx(struct wq_consumer *c, struct task *tk, struct wq_handler_ctx *ctx,
    int thread_cancel_fd)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->env = &tk->env;
    ctx->task_id = tk->id;
    ctx->attempt = tk->run_attempt;
    ctx->max_attempts = tk->run_max;
    ctx->worker_id = c->conf.worker_id;
    ctx->cancel_fd = thread_cancel_fd >= 0 ? c->cancel_fd : -1;
    ctx->task_cancel_fd = thread_cancel_fd;
    ctx->cancelled = &tk->cancel;
    if (c->conf.lease != NULL) {
        ctx->progress = report_progress;
        ctx->progress_user = tk;
    }
    tk->start_ns = wq_clock_mono_ns();
    if (tk->h != NULL && tk->h->timeout_ms > 0) {
        ctx->deadline_ns = tk->start_ns
            + (uint64_t)tk->h->timeout_ms * 1000000u;
        ctx->deadline_ms = wq_clock_wall_ms() + tk->h->timeout_ms;
    }
}

/* tk's handler is done (its result set): back to the loop, from any
 * thread. */
static void
task_ended(struct task *tk)
{
    struct wq_consumer *c = tk->owner;

    tk->end_ns = wq_clock_mono_ns();
    wq_metric_observe(c->conf.stats->handler_seconds,
        (double)(tk->end_ns - tk->start_ns) / 1e9);
    wq_metric_add(c->conf.stats->running, -1);
    pthread_mutex_lock(&c->lock);
    tl_push(&c->done, tk);
    wake_locked(c);
    pthread_mutex_unlock(&c->lock);
}

void
wq_consumer_run_task(void *item, void *user)
{
    struct task *tk = item;
    struct wq_consumer *c = tk->owner;
    struct wq_handler_ctx ctx;

    (void)user;
    wq_log_task_begin(tk->id, wq_trace_parent(&tk->env));
    task_ctx(c, tk, &ctx, thread_fd());
    atomic_store(&tk->wake_fd, ctx.task_cancel_fd);
    if (atomic_load(&tk->cancel))
        wq_handler_result_fail(&tk->res, WQ_OUTCOME_CANCELLED, "cancelled "
            "before it started");
    else if (tk->h == NULL)
        wq_handler_result_fail(&tk->res, WQ_OUTCOME_FAILED, "no handler for "
            "type \"%s\" on queue \"%s\" (configure one in handlers: "
            "{ type = \"%s\"; ... }) on worker %s%s", tk->env.type,
            tk->env.queue, tk->env.type, c->conf.worker_id,
            tk->run_attempt >= UNKNOWN_TYPE_ATTEMPTS
            || tk->run_attempt >= tk->run_max
            ? "; dead: no attempt found a worker that knows the type" : "");
    else
        wq_handlers_run(tk->h, &ctx, &tk->res);
    atomic_store(&tk->wake_fd, -1);
    wq_log_task_end();      /* tk belongs to the loop from here on */
    task_ended(tk);
}

static void
async_done(void *arg)
{
    task_ended(arg);
}

/*
 * A process handler's task, on the loop's thread: its frame goes to a
 * program (or waits in the pool's line) and the answer comes back
 * through async_done, with no handler thread to wake and put to sleep
 * for each task (issue 16: that was two thirds of the worker's CPU per
 * task through the protocol).  A cancel that came before the request was
 * published is seen by the check after it.
 */
static void
start_async(struct wq_consumer *c, struct task *tk)
{
    struct wq_proc_req *r;

    task_ctx(c, tk, &tk->ctx, -1);
    if (atomic_load(&tk->cancel)) {
        wq_handler_result_fail(&tk->res, WQ_OUTCOME_CANCELLED, "cancelled "
            "before it started");
        task_ended(tk);
        return;
    }
    r = wq_handler_process_start(tk->h->proc, &tk->ctx, &tk->res,
        async_done, tk);
    if (r == NULL) {
        task_ended(tk);
        return;
    }
    /* collect() unlinks it, on this thread, after async_done */
    tk->aprev = NULL;
    tk->anext = c->async;
    if (c->async != NULL)
        c->async->aprev = tk;
    c->async = tk;
    atomic_store(&tk->preq, r);
    if (atomic_load(&tk->cancel))
        wq_proc_req_cancel(tk->h->proc, r, WQ_OUTCOME_CANCELLED, CANCELLED);
}

/* Takes tk off the list of asynchronous runs, if it is on it. */
static void
async_unlink(struct wq_consumer *c, struct task *tk)
{
    if (atomic_load(&tk->preq) == NULL)
        return;
    if (tk->aprev != NULL)
        tk->aprev->anext = tk->anext;
    else
        c->async = tk->anext;
    if (tk->anext != NULL)
        tk->anext->aprev = tk->aprev;
    tk->aprev = tk->anext = NULL;
}

/* ---- the broker --------------------------------------------------------- */

static void
ack(struct wq_consumer *c, struct task *tk)
{
    char err[WQ_ERRLEN];

    if (tk->d == NULL || tk->tgen != c->tgen || c->t == NULL || c->t_broken)
        return;
    if (wq_transport_ack(c->t, tk->d, err, sizeof err) != 0
        && !c->t_broken) {
        c->t_broken = 1;
        snprintf(c->t_why, sizeof c->t_why, "%s", err);
    }
    tk->d = NULL;
}

/* Gives a delivery back to the broker (redelivered later). */
static void
nack(struct wq_consumer *c, struct task *tk)
{
    char err[WQ_ERRLEN];

    if (tk->d == NULL || tk->tgen != c->tgen || c->t == NULL || c->t_broken)
        return;
    if (wq_transport_nack(c->t, tk->d, err, sizeof err) != 0
        && !c->t_broken) {
        c->t_broken = 1;
        snprintf(c->t_why, sizeof c->t_why, "%s", err);
    }
    tk->d = NULL;
}

/* Drops the broker connection; deliveries not claimed are forgotten (the
 * broker redelivers them), claimed tasks go on unacked. */
static void
transport_down(struct wq_consumer *c, const char *why)
{
    struct task *tk;

    wq_log_warn(COMPONENT, "broker connection lost: %s; %zu unclaimed "
        "deliveries given back", why, c->incoming.n + c->bad.n);
    while ((tk = tl_pop(&c->incoming)) != NULL)
        task_free(tk);
    while ((tk = tl_pop(&c->bad)) != NULL)
        task_free(tk);
    c->nwaiting = 0;
    wq_transport_close(c->t, 0);
    c->t = NULL;
    c->t_broken = 0;
    c->tgen++;
    wq_metric_set(c->conf.stats->broker_up, 0);
    wq_reconnect_failed(&c->t_retry);
    c->t_logged = 0;
}

static int
transport_up(struct wq_consumer *c)
{
    char err[WQ_ERRLEN];
    wq_transport *t = NULL;
    int rc;

    if ((rc = wq_transport_open(&c->conf.tconf, &t, err, sizeof err)) != 0)
        goto fail;
    for (size_t i = 0; i < c->nbands; i++)
        if ((rc = wq_transport_declare(t, c->bands[i], err,
            sizeof err)) != 0)
            goto fail;
    if ((rc = wq_transport_subscribe(t, (const char *const *)c->bands,
        c->nbands, err, sizeof err)) != 0)
        goto fail;
    c->t = t;
    c->tgen++;
    wq_reconnect_ok(&c->t_retry);
    c->last_poll_ns = wq_clock_mono_ns();
    wq_metric_set(c->conf.stats->broker_up, 1);
    wq_log_info(COMPONENT, "consuming %zu queue(s) from %s", c->conf.nqueues,
        wq_transport_name(t));
    return 0;

fail:
    wq_transport_close(t, 0);
    if (!c->t_logged)
        wq_log_warn(COMPONENT, "broker: %s (retrying)", err);
    else
        wq_log_debug(COMPONENT, "broker: %s (retrying)", err);
    c->t_logged = 1;
    wq_reconnect_failed(&c->t_retry);
    return rc;
}

/* A delivery came: decode it into a task for the claim or a dead letter. */
static void
accept_delivery(struct wq_consumer *c, wq_delivery *d)
{
    struct task *tk = xcalloc(1, sizeof *tk);
    char err[WQ_ERRLEN];
    size_t qlen;
    int rc;

    /* the band tells the priority; the envelope names the queue */
    tk->priority = wq_priority_of_band(d->queue, &qlen);
    tk->owner = c;
    tk->d = d;
    tk->tgen = c->tgen;
    atomic_init(&tk->wake_fd, -1);
    rc = wq_envelope_decode(d->body, d->len, &tk->env, err, sizeof err);
    if (rc == WQ_ENOMEM)
        abort();    /* the daemon's policy (alloc.h) */
    if (rc != 0) {
        tk->bad = xstrdup(err);
    } else if (strlen(tk->env.queue) != qlen
        || memcmp(tk->env.queue, d->queue, qlen) != 0) {
        tk->bad = xasprintf("an envelope of queue \"%s\" arrived on queue "
            "\"%s\"", tk->env.queue, d->queue);
        wq_envelope_free(&tk->env);
    } else if (wq_flow_needed(c->flow, &tk->env)) {
        tk->flow = FLOW_ASK;
        c->flow_seen = 1;
    }
    if (tk->bad != NULL) {
        wq_log_warn(COMPONENT, "undecodable message on %s (%zu bytes): %s",
            d->queue, d->len, tk->bad);
        tl_push(&c->bad, tk);
    } else {
        tl_push(&c->incoming, tk);
        c->incoming_bands |= 1u << tk->priority;
    }
}

/*
 * Takes up to `max` deliveries: the first poll waits up to timeout_ms
 * (woken early by a finished task or a stop), the others do not wait.
 */
static void
fetch(struct wq_consumer *c, int timeout_ms, size_t max)
{
    char err[WQ_ERRLEN];
    wq_delivery *d;
    int rc, wait;

    for (size_t got = 0; got < max && c->t != NULL && !c->t_broken; got++) {
        wait = got == 0 ? timeout_ms : 0;
        if (wait != 0) {
            pthread_mutex_lock(&c->lock);
            if (c->done.n > 0 || c->stop_req > 0) {
                wait = 0;
            } else {
                c->sleeping = 1;
                c->wake_t = c->t;
            }
            pthread_mutex_unlock(&c->lock);
        }
        rc = wq_transport_poll(c->t, &d, wait, err, sizeof err);
        if (wait != 0) {
            pthread_mutex_lock(&c->lock);
            c->sleeping = 0;
            c->wake_t = NULL;
            pthread_mutex_unlock(&c->lock);
        }
        c->last_poll_ns = wq_clock_mono_ns();
        if (rc == WQ_EAGAIN)
            return;
        if (rc != 0) {
            c->t_broken = 1;
            snprintf(c->t_why, sizeof c->t_why, "%s", err);
            return;
        }
        accept_delivery(c, d);
    }
}

/* ---- PostgreSQL --------------------------------------------------------- */

static void
store_down(struct wq_consumer *c, const char *why)
{
    if (!c->s_logged)
        wq_log_warn(COMPONENT, "PostgreSQL: %s; holding %zu outcome(s) and "
            "%zu delivery(ies) until it is back", why, c->torecord.n,
            c->incoming.n + c->bad.n);
    c->s_logged = 1;
    c->s_up = 0;
    wq_metric_set(c->conf.stats->store_up, 0);
    wq_reconnect_failed(&c->s_retry);
}

static void
store_up(struct wq_consumer *c)
{
    const struct wq_config *cfg = c->conf.cfg;
    char err[WQ_ERRLEN];
    int rc;

    if (c->s == NULL) {
        struct wq_store_opts so;

        wq_config_store_opts(cfg, &so);
        rc = wq_store_open_opts(&so, &c->s, err, sizeof err);
        if (rc == 0 && (rc = wq_migrate_check(c->s, err, sizeof err)) != 0) {
            wq_store_close(c->s);
            c->s = NULL;
        }
    } else {
        rc = wq_store_ping(c->s, err, sizeof err);
    }
    if (rc != 0) {
        store_down(c, err);
        return;
    }
    if (c->s_logged)
        wq_log_info(COMPONENT, "PostgreSQL is back");
    c->s_logged = 0;
    c->s_up = 1;
    wq_reconnect_ok(&c->s_retry);
    wq_metric_set(c->conf.stats->store_up, 1);
}

/* Keeps an undecodable message whole in workq.dead_letters, then acks. */
static int
dead_letter(struct wq_consumer *c, struct task *tk)
{
    struct wq_dead_letter dl;
    char err[WQ_ERRLEN];
    int rc;

    if (tk->d == NULL || tk->tgen != c->tgen) {
        task_free(tk);      /* the broker gives it again */
        return 0;
    }
    memset(&dl, 0, sizeof dl);
    dl.transport = wq_transport_name(c->t);
    dl.queue = tk->d->queue;
    dl.raw = tk->d->body;
    dl.raw_len = tk->d->len;
    dl.key = tk->d->key;
    dl.keylen = tk->d->keylen;
    dl.partition = tk->d->partition;
    dl.offset = tk->d->offset;
    dl.redelivered = tk->d->redelivered;
    dl.error = tk->bad;
    dl.worker = c->conf.worker_id;
    rc = wq_store_dead_letter_insert(c->s, &dl, NULL, err, sizeof err);
    if (rc == WQ_ESTORE) {
        tl_push(&c->bad, tk);
        store_down(c, err);
        return rc;
    }
    if (rc != 0) {
        /* the store will never take it: give it back rather than lose it */
        wq_log_error(COMPONENT, "cannot keep a dead letter of %s: %s",
            dl.queue, err);
        nack(c, tk);
    } else {
        wq_metric_inc(c->conf.stats->dead_letters, 1);
        ack(c, tk);
    }
    task_free(tk);
    return 0;
}

/* ---- claim and record --------------------------------------------------- */

/* Handler slots free in the whole worker (its consumers share them). */
static size_t
free_slots(const struct wq_consumer *c)
{
    size_t busy = atomic_load(c->conf.busy);

    return (size_t)c->conf.concurrency > busy
        ? (size_t)c->conf.concurrency - busy : 0;
}

static void
fill_record(struct wq_consumer *c, struct task *tk, struct wq_record *r)
{
    const struct wq_handler_result *res = &tk->res;
    struct wq_backoff b;

    memset(r, 0, sizeof *r);
    memcpy(r->task_id, tk->claim.task_id, 16);
    r->attempt = tk->claim.attempt;
    r->outcome = wq_outcome_name(res->outcome);
    r->duration_ms = (int64_t)((tk->end_ns - tk->start_ns) / 1000000u);
    if (tk->claim.unclaimed) {
        /* its one write: the whole row (store_claims.h) */
        r->env = &tk->env;
        r->hook_url = hook_of(c, tk->env.queue);
        r->priority = tk->priority;
        r->started_ms = wq_clock_wall_ms() - (int64_t)((wq_clock_mono_ns()
            - tk->start_ns) / 1000000u);
    }
    switch (res->outcome) {
    case WQ_OUTCOME_SUCCEEDED:
        r->state = "succeeded";
        r->result = res->result.data != NULL ? res->result.data : "";
        r->result_len = res->result.len;
        r->error = res->note;
        break;
    case WQ_OUTCOME_PERMANENT:
        r->state = "dead";
        r->error = res->error;
        break;
    case WQ_OUTCOME_CANCELLED:
        r->state = "cancelled";
        r->error = res->error;
        break;
    default:
        r->error = res->error;
        if (tk->claim.attempt < tk->claim.max_attempts
            && (tk->h != NULL || tk->claim.attempt < UNKNOWN_TYPE_ATTEMPTS)) {
            r->state = "retry_wait";
            b = policy_of(c, tk->env.queue);
            r->delay_ms = wq_backoff_delay_ms(&b, tk->claim.attempt,
                wq_backoff_rand01());
            /* an HTTP receiver's Retry-After: not sooner than it asked */
            if (res->retry_after_ms > r->delay_ms)
                r->delay_ms = res->retry_after_ms;
        } else {
            r->state = "dead";
        }
        break;
    }
    if (tk->maybe_ran) {
        if (r->error == NULL || r->error[0] == '\0') {
            r->error = MAYBE_RAN;
        } else {
            free(tk->note);
            tk->note = xasprintf("%s; %s", r->error, MAYBE_RAN);
            r->error = tk->note;
        }
    }
}

static void
count_outcome(struct wq_consumer *c, const struct task *tk,
    const struct wq_record *r)
{
    struct wq_worker_stats *st = c->conf.stats;
    int64_t age;

    switch (tk->res.outcome) {
    case WQ_OUTCOME_SUCCEEDED: wq_metric_inc(st->succeeded, 1); break;
    case WQ_OUTCOME_FAILED:    wq_metric_inc(st->failed, 1); break;
    case WQ_OUTCOME_PERMANENT: wq_metric_inc(st->permanent, 1); break;
    case WQ_OUTCOME_TIMEOUT:   wq_metric_inc(st->timeout, 1); break;
    case WQ_OUTCOME_CANCELLED: wq_metric_inc(st->cancelled, 1); break;
    case WQ_OUTCOME_ABANDONED: break;
    }
    if (strcmp(r->state, "dead") == 0)
        wq_metric_inc(st->dead, 1);
    age = wq_clock_wall_ms() - tk->env.created_at_ms;
    if (age >= 0)
        wq_metric_observe(st->latency_seconds, (double)age / 1e3);
    if (tk->res.outcome != WQ_OUTCOME_SUCCEEDED)
        task_log(tk->id, &tk->env, WQ_LOG_INFO,
            "task %s (%s) attempt %u/%u %s -> %s: %s", tk->id, tk->env.type,
            tk->claim.attempt, tk->claim.max_attempts, r->outcome, r->state,
            r->error != NULL ? r->error : "");
}

static void
dispatch(struct wq_consumer *c, struct task *tk)
{
    wq_uuid_format(tk->claim.task_id, tk->id);
    tk->run_attempt = tk->claim.attempt;
    tk->run_max = tk->claim.max_attempts;
    tk->run_unclaimed = tk->claim.unclaimed;
    tk->dispatch_ns = wq_clock_mono_ns();
    if (tk->claim.unclaimed)
        ulist_push(c, tk);
    tk->h = wq_handlers_find(c->conf.handlers, tk->env.queue, tk->env.type);
    wq_worker_lease_add(c->conf.lease, tk->claim.task_id, tk);
    c->running++;
    atomic_fetch_add(c->conf.busy, 1);
    wq_metric_add(c->conf.stats->running, 1);
    if (tk->h != NULL && tk->h->kind == WQ_HANDLER_PROCESS
        && tk->h->proc != NULL) {
        start_async(c, tk);
        return;
    }
    if (wq_pool_submit(c->conf.pool, tk) != 0) {
        /* only after stop, which the loop never reaches with work left */
        wq_handler_result_fail(&tk->res, WQ_OUTCOME_ABANDONED, "stopping");
        pthread_mutex_lock(&c->lock);
        tl_push(&c->done, tk);
        pthread_mutex_unlock(&c->lock);
    }
}

static void
settle_claim(struct wq_consumer *c, struct task *tk, struct tlist *pending)
{
    struct wq_worker_stats *st = c->conf.stats;
    char id[WQ_UUID_STRLEN];

    tk->claim.env = NULL;
    if (tk->flow == FLOW_ADMITTED && tk->claim.status != WQ_CLAIM_RUN
        && tk->claim.status != WQ_CLAIM_PENDING
        && !(tk->claim.status == WQ_CLAIM_BUSY && tk->claim.own_lease))
        wq_flow_release_add(c->flow, &tk->env, 1);
    switch (tk->claim.status) {
    case WQ_CLAIM_RUN:
        /* RabbitMQ gave it before, and there was no row: the consumer
         * that had it may have run it unclaimed and died */
        tk->maybe_ran = c->conf.claim_after_ms > 0 && tk->d != NULL
            && tk->d->redelivered && tk->claim.inserted;
        dispatch(c, tk);
        return;
    case WQ_CLAIM_BUSY:
        /* Our own lease, but no task of ours holds it: an earlier claim
         * committed while its answer was lost with the connection. */
        if (tk->claim.own_lease
            && !wq_worker_lease_holds(c->conf.lease, tk->claim.task_id)) {
            dispatch(c, tk);
            return;
        }
        wq_metric_inc(st->dup_running, 1);
        break;
    case WQ_CLAIM_FINAL:
        wq_metric_inc(st->dup_final, 1);
        break;
    case WQ_CLAIM_NOT_DUE:
        wq_metric_inc(st->dup_not_due, 1);
        break;
    case WQ_CLAIM_EXHAUSTED:
        wq_metric_inc(st->dead, 1);
        wq_metric_inc(st->dead_at_claim, 1);
        wq_uuid_format(tk->claim.task_id, id);
        task_log(id, &tk->env, WQ_LOG_WARN, "task %s (%s): attempts spent "
            "(%u of %u), dead without running", id, tk->env.type,
            tk->claim.attempt, tk->claim.max_attempts);
        break;
    case WQ_CLAIM_PENDING:
        tl_push(pending, tk);
        return;
    }
    ack(c, tk);
    task_free(tk);
}

/*
 * One item of a batch the store rejected as bad data, tried alone and
 * rejected again: an outcome becomes a plain failure without its result
 * (and is dropped, given back, if even that is refused); a claim becomes
 * a dead letter of the raw message.
 */
static void
reject_one(struct wq_consumer *c, int record, const char *why)
{
    struct task *tk;

    if (record) {
        tk = c->torecord.head;
        if (!tk->rejected) {
            task_log(tk->id, &tk->env, WQ_LOG_ERROR, "task %s: the store "
                "rejected its outcome (%s); recording a failure instead",
                tk->id, why);
            tk->rejected = 1;
            wq_handler_result_free(&tk->res);
            wq_handler_result_fail(&tk->res, WQ_OUTCOME_FAILED, "the store "
                "rejected this attempt's outcome: %s", why);
            return;
        }
        tl_pop(&c->torecord);
        task_log(tk->id, &tk->env, WQ_LOG_ERROR, "task %s: the store "
            "rejected even a failure (%s); its delivery is given back",
            tk->id, why);
        if (tk->claim.unclaimed)
            c->unclaimed_lost = 1;  /* it ran, and has no row */
        wq_worker_lease_remove(c->conf.lease, tk->claim.task_id);
        nack(c, tk);
        task_free(tk);
        return;
    }
    tk = tl_pop(&c->incoming);
    if (tk->flow == FLOW_ASK || tk->held) {
        /* the claim was the first delivery flow control (or a key's
         * unclaimed run) did not keep back: take that one, leave the
         * others in order */
        struct tlist kept = { NULL, NULL, 0 };

        do {
            tl_push(&kept, tk);
            tk = tl_pop(&c->incoming);
        } while (tk->flow == FLOW_ASK || tk->held);
        tl_prepend(&c->incoming, &kept);
    }
    tk->bad = xasprintf("the store rejected the task: %s", why);
    wq_envelope_free(&tk->env);
    tl_push(&c->bad, tk);
}

/*
 * Takes the `ncl` claimed tasks out of `incoming` and settles them.  They
 * are its first tasks, but for those flow control kept back (FLOW_ASK)
 * and those whose key runs unclaimed here (held), which stay where they
 * are, in order.
 */
static void
settle_claims(struct wq_consumer *c, size_t ncl, struct tlist *pending)
{
    struct tlist kept = { NULL, NULL, 0 };
    struct task *tk;

    for (size_t i = 0; i < ncl; ) {
        tk = tl_pop(&c->incoming);
        if (tk->flow == FLOW_ASK || tk->held) {
            tl_push(&kept, tk);
            continue;
        }
        tk->claim = c->claims[i++];
        settle_claim(c, tk, pending);
    }
    tl_prepend(&c->incoming, &kept);
}

/* Recounts the deliveries waiting to ask flow control again. */
static void
flow_recount(struct wq_consumer *c, uint64_t now)
{
    c->nwaiting = 0;
    c->wait_next_ns = UINT64_MAX;
    for (struct task *tk = c->incoming.head; tk != NULL; tk = tk->next)
        if (tk->flow == FLOW_ASK && tk->flow_wait_ns > now) {
            c->nwaiting++;
            if (tk->flow_wait_ns < c->wait_next_ns)
                c->wait_next_ns = tk->flow_wait_ns;
        }
}

/*
 * Flow control's admission (flow_control.h), before a claim: the
 * deliveries among the first `max` claimable ones that must ask, and may
 * now, ask in one round trip; those admitted are claimed by this round,
 * the others wait in `incoming` for the time the admission gave.  Only
 * deliveries with a concurrency key or a rate limit come here; without
 * any, this is a walk that finds nothing (and is skipped outright when
 * the worker has no limits and no delivery asks).  Returns 0, or -1 if
 * PostgreSQL failed (the store is down; nothing changed).
 */
static int
flow_round(struct wq_consumer *c, size_t max)
{
    char err[WQ_ERRLEN];
    uint64_t now = wq_clock_mono_ns();
    size_t n = 0, seen = 0;
    struct task *tk;
    int rc;

    if (!c->flow_seen)
        return 0;       /* no flow control so far: nothing to walk */
    for (tk = c->incoming.head; tk != NULL && seen < max; tk = tk->next) {
        if (tk->flow != FLOW_ASK) {
            seen++;
            continue;
        }
        if (tk->flow_wait_ns > now)
            continue;
        c->fenv[n] = &tk->env;
        c->ftask[n++] = tk;
        seen++;
    }
    if (n == 0 && !wq_flow_release_due(c->flow))
        return 0;
    rc = wq_flow_admit(c->flow, c->s, c->conf.worker_id, c->conf.lease_ms,
        c->fenv, n, c->fadmitted, c->fwait, err, sizeof err);
    if (rc != 0) {
        store_down(c, err);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (c->fadmitted[i]) {
            c->ftask[i]->flow = FLOW_ADMITTED;
        } else {
            c->ftask[i]->flow_wait_ns = now
                + (uint64_t)(c->fwait[i] > 0 ? c->fwait[i] : 1) * 1000000u;
            wq_metric_inc(c->conf.stats->flow_waits, 1);
        }
    }
    flow_recount(c, now);
    return 0;
}

/*
 * Priorities: when more deliveries wait than this round claims (`want`),
 * puts the ones the weighted picker (wq_priority_pick) chooses first in
 * `incoming`, in the picker's order; the others follow, each band in its
 * arrival order.  Deliveries that wait for flow control keep their
 * relative order at the end.  A walk of `incoming` (at most the worker's
 * cap of held deliveries) and nothing when all wait in one band.
 */
static void
prioritize(struct wq_consumer *c, size_t want)
{
    struct tlist band[WQ_PRIORITY_N], front = { NULL, NULL, 0 };
    struct tlist waiting = { NULL, NULL, 0 };
    uint64_t now = wq_clock_mono_ns();
    int avail[WQ_PRIORITY_N], seen[WQ_PRIORITY_N] = { 0 }, nbands = 0, p;
    size_t claimable = 0;
    struct task *tk;

    /* one band (the usual case): nothing to order, and no walk of what
     * may be thousands of held deliveries every round */
    if (c->incoming.n == 0)
        c->incoming_bands = 0;
    if ((c->incoming_bands & (c->incoming_bands - 1)) == 0)
        return;
    for (tk = c->incoming.head; tk != NULL; tk = tk->next) {
        if (tk->flow == FLOW_ASK && tk->flow_wait_ns > now)
            continue;
        claimable++;
        if (!seen[tk->priority]++)
            nbands++;
    }
    if (nbands < 2 || claimable <= want)
        return;     /* the order does not matter: every band goes */
    memset(band, 0, sizeof band);
    while ((tk = tl_pop(&c->incoming)) != NULL) {
        if (tk->flow == FLOW_ASK && tk->flow_wait_ns > now)
            tl_push(&waiting, tk);
        else
            tl_push(&band[tk->priority], tk);
    }
    while (front.n < want) {
        for (p = 0; p < WQ_PRIORITY_N; p++)
            avail[p] = band[p].n > 0;
        if ((p = wq_priority_pick(c->weights, c->credit, avail)) < 0)
            break;
        tl_push(&front, tl_pop(&band[p]));
    }
    for (p = WQ_PRIORITY_N - 1; p >= 0; p--)
        while ((tk = tl_pop(&band[p])) != NULL)
            tl_push(&front, tk);
    while ((tk = tl_pop(&waiting)) != NULL)
        tl_push(&front, tk);
    c->incoming = front;
}

/* The monotonic time at which the oldest unclaimed run is due for its
 * late claim; UINT64_MAX: none. */
static uint64_t
late_due_ns(const struct wq_consumer *c)
{
    return c->uhead == NULL ? UINT64_MAX : c->uhead->dispatch_ns
        + (uint64_t)c->conf.claim_after_ms * 1000000u;
}

/* A late claim is due: claim_after passed for the oldest unclaimed run,
 * or one reported progress. */
static int
late_due(const struct wq_consumer *c)
{
    return c->isolate == 0 && (atomic_load(&c->late_now)
        || late_due_ns(c) <= wq_clock_mono_ns());
}

/* FNV-1a of a task's queue and key, for the duplicate check. */
static uint64_t
key_hash(const struct wq_envelope *e)
{
    uint64_t h = 14695981039346656037ull;

    for (const char *s = e->queue; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull;     /* no byte of UTF-8 text */
    for (const char *s = e->key; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/*
 * The keys of this consumer's unclaimed runs that have no row yet:
 * running (not claimed late) or ended and not yet recorded.  Another
 * delivery of such a key (a second publish of it) would find no row and
 * run too, so it waits in `incoming` until the first one's record, and
 * is then claimed as the duplicate it is.  (A hash that collides only
 * makes a delivery wait for that record.)  Across workers there is no
 * such check; docs/task-states.md, "Unclaimed runs".
 */
static void
ukeys_collect(struct wq_consumer *c)
{
    size_t need = c->torecord.n;
    struct task *tk;

    c->nukeys = 0;
    for (tk = c->uhead; tk != NULL; tk = tk->unext)
        need++;
    if (need > c->capukeys) {
        c->capukeys = need * 2;
        c->ukeys = xreallocarray(c->ukeys, c->capukeys, sizeof *c->ukeys);
    }
    for (tk = c->uhead; tk != NULL; tk = tk->unext)
        c->ukeys[c->nukeys++] = key_hash(&tk->env);
    for (tk = c->torecord.head; tk != NULL; tk = tk->next)
        if (tk->claim.unclaimed)
            c->ukeys[c->nukeys++] = key_hash(&tk->env);
    if (c->nukeys > 1)
        qsort(c->ukeys, c->nukeys, sizeof *c->ukeys, cmp_u64);
}

static int
ukey_held(const struct wq_consumer *c, const struct task *tk)
{
    uint64_t h;

    if (c->nukeys == 0)
        return 0;
    h = key_hash(&tk->env);
    return bsearch(&h, c->ukeys, c->nukeys, sizeof h, cmp_u64) != NULL;
}

/*
 * A first delivery (the broker says no consumer had it: RabbitMQ's
 * redelivered flag clear) may run unclaimed when its (queue, key) has no
 * row (store_claims.h): its row is then written once, with its outcome.
 * Not under flow control, whose holds count running rows, and not with
 * worker.claim_after = 0.
 */
static int
may_run_unclaimed(const struct wq_consumer *c, const struct task *tk)
{
    return c->conf.claim_after_ms > 0 && tk->d != NULL && tk->d->first
        && tk->flow == FLOW_NONE;
}

/*
 * The late claims of a round: an unclaimed run still going after
 * worker.claim_after gets its row (running, leased) as any claim, so
 * that it shows, renews its lease and hears a cancel.  A row that is
 * there already wins: a cancelled one cancels the run; with any other
 * the run goes on and its record finds the row and drops the outcome.
 */
static void
settle_late(struct wq_consumer *c, size_t first, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct task *tk = c->late[i];
        const struct wq_claim *cl = &c->claims[first + i];

        if (cl->status == WQ_CLAIM_PENDING)
            continue;           /* next round */
        ulist_unlink(c, tk);
        if (cl->status == WQ_CLAIM_RUN || (cl->status == WQ_CLAIM_BUSY
            && cl->own_lease)) {
            if (memcmp(tk->claim.task_id, cl->task_id, 16) != 0) {
                wq_worker_lease_remove(c->conf.lease, tk->claim.task_id);
                memcpy(tk->claim.task_id, cl->task_id, 16);
                wq_worker_lease_add(c->conf.lease, tk->claim.task_id, tk);
            }
            tk->claim.attempt = cl->attempt;
            tk->claim.max_attempts = cl->max_attempts;
            tk->claim.unclaimed = 0;
            if (atomic_load(&tk->reported) && c->conf.lease != NULL)
                wq_progress_again(wq_worker_lease_progress(c->conf.lease),
                    tk->id);
            continue;
        }
        if (cl->status == WQ_CLAIM_FINAL
            && strcmp(cl->state, "cancelled") == 0) {
            on_cancel(tk, NULL);
            continue;
        }
        task_log(tk->id, &tk->env, WQ_LOG_INFO, "task %s: another delivery "
            "of its key holds its row (%s); this run's outcome will be "
            "dropped", tk->id, cl->state);
    }
}

/* When worker.batch_wait lets the next round go (round_due). */
static uint64_t
round_next_ns(const struct wq_consumer *c)
{
    return c->round_ns + (uint64_t)c->conf.batch_wait_ms * 1000000u;
}

/*
 * worker.batch_wait: while work keeps coming, a round goes at most this
 * often, and what arrives or finishes meanwhile joins the next one, so
 * that at a modest rate a round (its statements, its commit, its WAL
 * flush) carries several tasks instead of one or two (issue 14: at 2,000
 * tasks/s a round's fixed cost in PostgreSQL is most of a task's).  A
 * round goes at once after a quiet spell (an idle worker serves a lone
 * task at once), with a batch full, for a dead letter, and while
 * stopping.  0: as soon as there is work.
 */
static int
round_due(const struct wq_consumer *c)
{
    size_t want, held = c->nwaiting + c->nheld;

    if (c->conf.batch_wait_ms == 0 || c->draining || c->isolate > 0
        || c->bad.n > 0 || c->torecord.n >= (size_t)c->conf.batch_max)
        return 1;
    /* a full batch of claims: as many as the free slots take, so that a
     * backlog is never paced */
    want = free_slots(c);
    if (want > (size_t)c->conf.batch_max)
        want = (size_t)c->conf.batch_max;
    if (want > 0 && c->incoming.n >= held + want)
        return 1;
    /* the clock last: no cheaper test decided */
    return wq_clock_mono_ns() >= round_next_ns(c);
}

/* One round trip: record what finished, claim what fits in free slots. */
static void
store_round(struct wq_consumer *c)
{
    struct wq_worker_stats *st = c->conf.stats;
    size_t limit = (size_t)c->conf.batch_max, nrec = 0, ncl = 0, slots;
    size_t nlate = 0;
    struct tlist pending = { NULL, NULL, 0 };
    char err[WQ_ERRLEN];
    struct task *tk;
    uint64_t t0;
    double dt;
    int rc;

    while (c->bad.n > 0 && c->s_up)
        if (dead_letter(c, tl_pop(&c->bad)) != 0)
            return;
    if (c->isolate > 0)
        limit = 1;
    for (tk = c->torecord.head; tk != NULL && nrec < limit; tk = tk->next)
        fill_record(c, tk, &c->recs[nrec++]);
    slots = free_slots(c);
    c->nheld = 0;
    if (!c->draining && !c->revoking && !(c->isolate > 0 && nrec > 0)) {
        prioritize(c, slots < limit ? slots : limit);
        if (flow_round(c, slots < limit ? slots : limit) != 0)
            return;
        ukeys_collect(c);
        for (tk = c->incoming.head; tk != NULL && ncl < limit
            && ncl < slots; tk = tk->next) {
            if (tk->flow == FLOW_ASK)
                continue;       /* not admitted (yet): stays unclaimed */
            if ((tk->held = ukey_held(c, tk))) {
                c->nheld++;     /* its key runs unclaimed here */
                continue;
            }
            memset(&c->claims[ncl], 0, sizeof c->claims[ncl]);
            c->claims[ncl].hook_url = hook_of(c, tk->env.queue);
            c->claims[ncl].priority = tk->priority;
            c->claims[ncl].unclaimed_ok = may_run_unclaimed(c, tk);
            c->claims[ncl++].env = &tk->env;
        }
    }
    if ((c->revoking && c->isolate == 0) || late_due(c)) {
        /* revoking: every unclaimed run, due or not (not while a
         * rejected batch is tried item by item: reject_one takes the
         * claims it rejects from `incoming`) */
        uint64_t due = c->revoking ? UINT64_MAX : wq_clock_mono_ns()
            - (uint64_t)c->conf.claim_after_ms * 1000000u;
        int reports = atomic_exchange(&c->late_now, 0);

        for (tk = c->uhead; tk != NULL && ncl + nlate < limit;
            tk = tk->unext) {
            struct wq_claim *cl;

            if (tk->dispatch_ns > due && !atomic_load(&tk->reported)) {
                if (!reports)
                    break;      /* the list is in dispatch order */
                continue;
            }
            cl = &c->claims[ncl + nlate];
            memset(cl, 0, sizeof *cl);
            cl->hook_url = hook_of(c, tk->env.queue);
            cl->priority = tk->priority;
            cl->env = &tk->env;
            c->late[nlate++] = tk;
        }
    }
    if (nrec == 0 && ncl == 0 && nlate == 0)
        return;

    t0 = wq_clock_mono_ns();
    c->round_ns = t0;
    rc = wq_claim_round(c->s, &c->bufs, c->conf.worker_id, c->conf.lease_ms,
        c->recs, nrec, c->claims, ncl + nlate, err, sizeof err);
    dt = (double)(wq_clock_mono_ns() - t0) / 1e9;
    wq_metric_inc(st->rounds, 1);
    if (rc == WQ_EINVAL) {
        if (c->isolate > 0) {
            reject_one(c, nrec > 0, err);
            c->isolate--;
        } else {
            wq_log_warn(COMPONENT, "the store rejected a batch of %zu "
                "outcome(s) and %zu claim(s): %s; trying them one by one",
                nrec, ncl, err);
            c->isolate = nrec + ncl;
        }
        return;
    }
    if (rc != 0) {
        store_down(c, err);
        return;
    }
    if (c->isolate > 0)
        c->isolate--;
    if (nrec > 0)
        wq_metric_observe(st->record_seconds, dt);
    if (ncl > 0)
        wq_metric_observe(st->claim_seconds, dt);

    /* Committed: ack the recorded (or lost: recorded by nobody, nothing
     * to keep) outcomes, settle the claims. */
    for (size_t i = 0; i < nrec; i++) {
        tk = tl_pop(&c->torecord);
        if (c->recs[i].recorded) {
            count_outcome(c, tk, &c->recs[i]);
        } else if (c->recs[i].env != NULL) {
            wq_metric_inc(st->lost_leases, 1);
            task_log(tk->id, &tk->env, WQ_LOG_WARN, "task %s: its row was "
                "written while it ran unclaimed (a cancel, or another "
                "delivery's claim); its outcome (%s) was dropped", tk->id,
                c->recs[i].outcome);
        } else {
            wq_metric_inc(st->lost_leases, 1);
            task_log(tk->id, &tk->env, WQ_LOG_WARN, "task %s attempt %u: "
                "the lease was lost before the outcome (%s) was recorded; "
                "dropped", tk->id, tk->claim.attempt, c->recs[i].outcome);
        }
        wq_worker_lease_remove(c->conf.lease, tk->claim.task_id);
        if (tk->flow == FLOW_ADMITTED)
            wq_flow_release_add(c->flow, &tk->env, 0);
        ack(c, tk);
        task_free(tk);
    }
    if (nrec > 0)
        c->nheld = 0;   /* their keys are free now: look again */
    if (ncl > 0) {
        /* the round's process tasks go to each program in one write */
        wq_handlers_cork(c->conf.handlers, 1);
        settle_claims(c, ncl, &pending);
        wq_handlers_cork(c->conf.handlers, 0);
    }
    settle_late(c, ncl, nlate);
    tl_prepend(&c->incoming, &pending);
    wq_metric_set(st->in_flight, (int64_t)wq_worker_lease_count(c->conf.lease));
}

/* Takes the finished tasks of the handler threads and the stop request. */
static int
collect(struct wq_consumer *c)
{
    struct tlist got;
    struct task *tk;
    int stop;

    pthread_mutex_lock(&c->lock);
    got = c->done;
    memset(&c->done, 0, sizeof c->done);
    stop = c->stop_req;
    pthread_mutex_unlock(&c->lock);
    while ((tk = tl_pop(&got)) != NULL) {
        async_unlink(c, tk);
        ulist_unlink(c, tk);
        c->running--;
        atomic_fetch_sub(c->conf.busy, 1);
        if (tk->res.outcome == WQ_OUTCOME_ABANDONED) {
            /* not recorded, not acked: left to lease expiry */
            wq_metric_inc(c->conf.stats->abandoned, 1);
            if (tk->claim.unclaimed)
                c->unclaimed_lost = 1;  /* no lease, no row */
            task_log(tk->id, &tk->env, WQ_LOG_WARN,
                "task %s attempt %u abandoned: %s", tk->id, tk->claim.attempt,
                tk->res.error != NULL ? tk->res.error : "");
            wq_worker_lease_remove(c->conf.lease, tk->claim.task_id);
            task_free(tk);
            continue;
        }
        tl_push(&c->torecord, tk);
    }
    return stop;
}

/* An unclaimed run of this consumer has no row yet: running, or ended
 * and not recorded. */
static int
unclaimed_left(const struct wq_consumer *c)
{
    if (c->uhead != NULL || c->unclaimed_lost)
        return 1;
    for (const struct task *tk = c->torecord.head; tk != NULL; tk = tk->next)
        if (tk->claim.unclaimed)
            return 1;
    return 0;
}

/*
 * The transport gives partitions up (transport.h, on_revoke; Kafka's
 * rebalances and close): before the next holder reads them, every
 * unclaimed run gets its row, as a late claim (still running) or its
 * record (ended), so that the next holder finds the row instead of
 * running the task again.  Rounds until none is left, a few at most.
 * 0 when none is left; -1 otherwise (PostgreSQL down), and the transport
 * keeps its reservation, so that the next holder claims those deliveries
 * first and their history says they may have run.
 */
/* Gives back the deliveries of `l` whose partition was revoked: their
 * next holder reads them again (and may run them unclaimed). */
static void
drop_revoked(struct wq_consumer *c, struct tlist *l)
{
    struct tlist kept = { NULL, NULL, 0 };
    struct task *tk;

    while ((tk = tl_pop(l)) != NULL) {
        if (tk->d != NULL && tk->d->revoked) {
            nack(c, tk);
            task_free(tk);
        } else {
            tl_push(&kept, tk);
        }
    }
    *l = kept;
}

static int
on_revoke(void *arg)
{
    struct wq_consumer *c = arg;

    /* not claimed yet: not ours to run any more */
    drop_revoked(c, &c->incoming);
    drop_revoked(c, &c->bad);
    c->nheld = 0;
    flow_recount(c, wq_clock_mono_ns());
    (void)collect(c);
    c->revoking = 1;
    for (int i = 0; i < 8 && c->s_up && unclaimed_left(c); i++)
        store_round(c);
    c->revoking = 0;
    if (unclaimed_left(c)) {
        wq_log_warn(COMPONENT, "partitions revoked with unclaimed runs not "
            "written; their next holder claims them first");
        return -1;
    }
    return 0;
}

/* ---- the loop ----------------------------------------------------------- */

/* Something for a round: a dead letter, an outcome, a claim, a late
 * claim. */
static int
pending_work(const struct wq_consumer *c)
{
    return c->bad.n > 0 || c->torecord.n > 0
        || (!c->draining && c->incoming.n > c->nwaiting + c->nheld
            && free_slots(c) > 0)
        || late_due(c);
}

static int
has_work(const struct wq_consumer *c)
{
    return pending_work(c) && round_due(c);
}

static void
begin_drain(struct wq_consumer *c)
{
    struct task *tk;
    size_t n = c->incoming.n + c->bad.n;

    c->draining = 1;
    c->drain_deadline = wq_clock_mono_ns()
        + (uint64_t)c->conf.drain_timeout_ms * 1000000u;
    wq_daemon_notify_stopping();
    while ((tk = tl_pop(&c->incoming)) != NULL) {
        nack(c, tk);
        task_free(tk);
    }
    while ((tk = tl_pop(&c->bad)) != NULL) {
        nack(c, tk);
        task_free(tk);
    }
    c->nwaiting = 0;
    wq_log_info(COMPONENT, "stopping: %zu task(s) running get up to %lld ms "
        "to finish; %zu unclaimed deliveries given back", c->running,
        (long long)c->conf.drain_timeout_ms, n);
}

/* Milliseconds from now to a monotonic time, at least 0. */
static int
until(uint64_t at)
{
    return wq_clock_ms_until(at);
}

static int
min_wait(int a, int b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/*
 * Marks the loop's turn (main.c sends WATCHDOG=1 while every loop turns;
 * /healthz looks at them too), and lets the first loop publish the
 * worker's STATUS= line from the shared metrics, at most once a second
 * and only when it changed, so an idle worker sends nothing.
 */
static void
housekeeping(struct wq_consumer *c)
{
    struct wq_worker_stats *st = c->conf.stats;
    uint64_t now = wq_clock_mono_ns(), sig;
    int64_t done, failed;

    wq_worker_stats_loop_turn(st, c->loop_slot);
    if (c->loop_slot != 0)
        return;
    done = wq_metric_value(st->succeeded);
    failed = wq_metric_value(st->failed) + wq_metric_value(st->permanent)
        + wq_metric_value(st->timeout) + wq_metric_value(st->cancelled);
    sig = (uint64_t)done * 31 + (uint64_t)failed * 7 + c->running * 3
        + c->torecord.n + (uint64_t)c->s_up * 2 + (c->t != NULL)
        + (uint64_t)c->draining * 5;
    if (sig != c->status_sig
        && now - c->status_last_ns >= (uint64_t)STATUS_EVERY_MS * 1000000u) {
        wq_daemon_notify_status("%s; in-flight %zu, done %" PRId64
            ", failed %" PRId64 "%s%s", c->draining ? "draining"
            : "consuming", wq_worker_lease_count(c->conf.lease), done, failed,
            c->t == NULL ? "; no broker" : "",
            c->s_up ? "" : "; no PostgreSQL");
        c->status_sig = sig;
        c->status_last_ns = now;
    }
}

/* How long the loop may sleep, in ms. */
static int
sleep_ms(const struct wq_consumer *c)
{
    int w = IDLE_WAKE_MS;

    if (c->conf.watchdog_usec > 0)
        w = min_wait(w, (int)(c->conf.watchdog_usec / 3000));
    if (c->t == NULL && !c->draining)
        w = min_wait(w, wq_reconnect_wait_ms(&c->t_retry));
    if (!c->s_up)
        w = min_wait(w, wq_reconnect_wait_ms(&c->s_retry));
    if (c->draining)
        w = min_wait(w, until(c->drain_deadline));
    if (c->nwaiting > 0)
        w = min_wait(w, until(c->wait_next_ns) + 1);
    if (c->uhead != NULL)
        w = min_wait(w, until(late_due_ns(c)) + 1);
    if (c->conf.batch_wait_ms > 0 && c->s_up && pending_work(c))
        w = min_wait(w, until(round_next_ns(c)) + 1);
    return w;
}

/* Waits on the condition variable (not polling the broker). */
static void
cond_wait_ms(struct wq_consumer *c, int ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->lock);
    if (c->done.n == 0 && c->stop_req == (c->draining ? 1 : 0))
        pthread_cond_timedwait(&c->cond, &c->lock, &ts);
    pthread_mutex_unlock(&c->lock);
}

/* The last steps of a stop; returns how many tasks were abandoned. */
static int
finish(struct wq_consumer *c, int abandon)
{
    uint64_t end, one = 1;
    struct task *tk;
    int abandoned;

    if (abandon && c->running > 0) {
        wq_log_warn(COMPONENT, "drain deadline: stopping %zu running "
            "task(s); they are left to lease expiry", c->running);
        if (write(c->cancel_fd, &one, sizeof one) < 0)
            (void)0;    /* cannot fail on an eventfd below its max */
        for (tk = c->async; tk != NULL; tk = tk->anext)
            wq_proc_req_cancel(tk->h->proc, atomic_load(&tk->preq),
                WQ_OUTCOME_ABANDONED, "given up, the worker is stopping");
        end = wq_clock_mono_ns() + (uint64_t)CANCEL_GRACE_MS * 1000000u;
        while (c->running > 0 && wq_clock_mono_ns() < end) {
            cond_wait_ms(c, until(end) + 1);
            collect(c);
        }
    }
    collect(c);
    end = wq_clock_mono_ns() + (uint64_t)FINAL_RECORD_MS * 1000000u;
    while (c->torecord.n > 0 && wq_clock_mono_ns() < end) {
        if (!c->s_up) {
            if (!wq_reconnect_due(&c->s_retry))
                cond_wait_ms(c, wq_reconnect_wait_ms(&c->s_retry) + 1);
            store_up(c);
            continue;
        }
        store_round(c);
    }
    abandoned = (int)(c->running + c->torecord.n);
    if (c->torecord.n > 0)
        wq_log_warn(COMPONENT, "%zu outcome(s) could not be recorded; their "
            "tasks are left to lease expiry", c->torecord.n);
    while ((tk = tl_pop(&c->torecord)) != NULL) {
        if (tk->claim.unclaimed)
            c->unclaimed_lost = 1;
        wq_worker_lease_remove(c->conf.lease, tk->claim.task_id);
        task_free(tk);
    }
    /* librdkafka: commit and leave the group; rabbitmq-c: flush the acks,
     * close channels, then connections (the transport's close). */
    wq_transport_close(c->t, CLOSE_TIMEOUT_MS);
    c->t = NULL;
    wq_metric_set(c->conf.stats->broker_up, 0);
    wq_store_close(c->s);
    c->s = NULL;
    c->s_up = 0;
    wq_metric_set(c->conf.stats->store_up, 0);
    return abandoned;
}

int
wq_consumer_run(wq_consumer *c, void (*on_ready)(void *), void *arg)
{
    size_t cap = (size_t)c->conf.concurrency + (size_t)c->conf.batch_max;
    int stop, abandon = 0;

    wq_daemon_block_signals();
    if (on_ready != NULL)
        on_ready(arg);
    for (;;) {
        uint64_t now;
        size_t held;
        int w;

        stop = collect(c);
        housekeeping(c);
        now = wq_clock_mono_ns();
        if (stop > 0 && !c->draining)
            begin_drain(c);
        if (c->draining) {
            if (stop > 1 || now >= c->drain_deadline) {
                abandon = 1;
                break;
            }
            if (c->running == 0 && c->torecord.n == 0)
                break;
        }
        if (c->t_broken)
            transport_down(c, c->t_why);
        if (c->t == NULL && !c->draining && wq_reconnect_due(&c->t_retry))
            transport_up(c);
        if (!c->s_up && wq_reconnect_due(&c->s_retry))
            store_up(c);

        if (c->nwaiting > 0 && now >= c->wait_next_ns)
            flow_recount(c, now);
        held = c->incoming.n + c->bad.n;
        if (c->t != NULL && !c->draining) {
            if (held < cap)
                fetch(c, 0, cap - held);
            else if (now - c->last_poll_ns
                >= (uint64_t)AT_CAP_POLL_MS * 1000000u)
                fetch(c, 0, 1);     /* heartbeats, rebalances, commits */
        }
        if (c->s_up && has_work(c)) {
            store_round(c);
            continue;
        }

        w = sleep_ms(c);
        held = c->incoming.n + c->bad.n;
        if (c->t != NULL && !c->draining && !c->t_broken && held < cap)
            fetch(c, w, cap - held);
        else
            cond_wait_ms(c, c->t != NULL && !c->draining
                ? min_wait(w, AT_CAP_POLL_MS) : w);
    }
    return finish(c, abandon);
}

wq_consumer *
wq_consumer_new(const struct wq_consumer_conf *conf)
{
    struct wq_consumer *c = xcalloc(1, sizeof *c);
    pthread_condattr_t ca;

    c->conf = *conf;
    /* Kafka keeps a reservation for unclaimed runs and asks for their
     * rows before it gives partitions up (transport.h) */
    c->conf.tconf.consumer_unclaimed = conf->claim_after_ms > 0;
    c->conf.tconf.on_revoke = on_revoke;
    c->conf.tconf.on_revoke_user = c;
    /* jittered: reconnects of many workers do not arrive in step */
    wq_reconnect_init(&c->t_retry, BROKER_BACKOFF_MIN, BROKER_BACKOFF_MAX,
        WQ_JITTER_EQUAL);
    wq_reconnect_init(&c->s_retry, STORE_BACKOFF_MIN, STORE_BACKOFF_MAX,
        WQ_JITTER_EQUAL);
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    c->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->cancel_fd < 0) {
        wq_log_error(COMPONENT, "eventfd: %s", strerror(errno));
        abort();
    }
    c->claims = xcalloc((size_t)conf->batch_max, sizeof *c->claims);
    c->late = xcalloc((size_t)conf->batch_max, sizeof *c->late);
    c->recs = xcalloc((size_t)conf->batch_max, sizeof *c->recs);
    c->flow = wq_flow_new(conf->cfg);
    c->fenv = xcalloc((size_t)conf->batch_max, sizeof *c->fenv);
    c->ftask = xcalloc((size_t)conf->batch_max, sizeof *c->ftask);
    c->fadmitted = xcalloc((size_t)conf->batch_max, sizeof *c->fadmitted);
    c->fwait = xcalloc((size_t)conf->batch_max, sizeof *c->fwait);
    policies_init(c);
    c->nbands = conf->nqueues * WQ_PRIORITY_N;
    c->bands = xcalloc(c->nbands, sizeof *c->bands);
    for (size_t i = 0; i < conf->nqueues; i++) {
        char band[WQ_BROKER_QUEUE_MAX + 1];
        static const int order[WQ_PRIORITY_N] = {
            WQ_PRIORITY_NORMAL, WQ_PRIORITY_HIGH, WQ_PRIORITY_LOW,
        };

        for (int k = 0; k < WQ_PRIORITY_N; k++)
            c->bands[i * WQ_PRIORITY_N + (size_t)k] = xstrdup(
                wq_priority_band(band, sizeof band, conf->queues[i],
                order[k]));
    }
    c->weights[WQ_PRIORITY_HIGH] = conf->cfg->worker.priority_weight_high;
    c->weights[WQ_PRIORITY_NORMAL] = conf->cfg->worker.priority_weight_normal;
    c->weights[WQ_PRIORITY_LOW] = conf->cfg->worker.priority_weight_low;
    wq_worker_lease_on_cancel(conf->lease, on_cancel, c);
    c->loop_slot = wq_worker_stats_loop_register(conf->stats);
    return c;
}

void
wq_consumer_stop(wq_consumer *c, int now)
{
    pthread_mutex_lock(&c->lock);
    if (now)
        c->stop_req = 2;
    else if (c->stop_req < 1)
        c->stop_req = 1;
    wake_locked(c);
    pthread_mutex_unlock(&c->lock);
}

void
wq_consumer_free(wq_consumer *c)
{
    if (c == NULL)
        return;
    close(c->cancel_fd);
    wq_claim_bufs_free(&c->bufs);
    free(c->claims);
    free(c->late);
    free(c->ukeys);
    free(c->recs);
    wq_flow_free(c->flow);
    free(c->fenv);
    free(c->ftask);
    free(c->fadmitted);
    free(c->fwait);
    free(c->policies);
    for (size_t i = 0; i < c->nbands; i++)
        free(c->bands[i]);
    free(c->bands);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}
