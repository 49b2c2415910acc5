/*
 * handler_process.c - the process handler: a pool of long-lived programs
 * per configured handler, each fed many tasks over its stdin and stdout
 * with the framed protocol of handler_proto.h (docs/handler-protocol.md
 * says why JSON lines, and what a program must do).
 *
 * Threads.  One supervisor thread per pool owns the programs: it starts
 * them (wq_exec_spawn, the exec handler's start, so the environment
 * allow-list, workdir, limits and no_new_privs are the same; and since
 * PR_SET_PDEATHSIG follows the thread that started a child, the
 * supervisor, which lives as long as the pool, is the one to start them),
 * writes the frames, reads the answers, and kills and restarts.  A handler
 * thread (pool.c) calling wq_handler_process_run sends its task itself
 * when a program has room and no task waits before it (the frame, encoded
 * before the lock is taken, written to the program's stdin under the
 * pool's lock, without a handoff; the supervisor is woken only for what it
 * alone does: the rest of a frame the pipe did not take, a closed pipe, a
 * deadline sooner than its poll's), else queues it and wakes the
 * supervisor; then it waits on an eventfd (its thread's cancel descriptor
 * from consumer.c when it has one, so that the same poll sees an
 * operator's cancel) until the answer is written into its result.  The
 * supervisor finishes requests under the lock and wakes their threads
 * after it let go of it (a thread woken under the lock would only sleep
 * again on it); a thread takes its answer without the lock, from the
 * request's atomic `finished`.  A request lives on the handler thread's
 * stack: the supervisor touches it only under the pool's lock, or between
 * FIN_DONE and FIN_WOKEN, which the thread waits out before it returns;
 * the handler thread unlinks it, under that lock, when it gives it up.
 *
 * The worker itself does not spend a thread per task here: its loop
 * starts a task with wq_handler_process_start (the same send or queue,
 * from the loop's thread, corked so that a round's frames go to each
 * program in one write), and the supervisor hands the answer back by
 * calling the request's done function after it let go of the lock, where
 * a handler thread would be woken.  A cancel (an operator's, or the drain
 * deadline's) unlinks the request under the lock and calls done itself;
 * whichever of the two marks the request done first calls done, once.
 *
 * Supervision.  A program that exits, writes something that is not a
 * frame, answers before its hello or with another protocol version, or
 * holds a task past its deadline, has its process group killed
 * (SIGKILL) and is started again after a backoff (RESTART_MIN_MS,
 * doubling to RESTART_MAX_MS); the tasks it held fail as attempts
 * (FAILED with the reason; the one past its deadline TIMEOUT).  A
 * program that dies within STABLE_MS of its start without answering a
 * task counts as a quick failure; CRASHLOOP_FAILS of them in a row mark
 * the pool crash-looping: logged, the gauge
 * workq_worker_process_crashloop set, /healthz 503
 * (wq_handlers_unhealthy), and tasks that find no program running fail
 * at once instead of waiting.  The backoff keeps the CPU idle meanwhile.
 *
 * Stop (wq_proc_pool_stop, once the consumers have drained): no new
 * request is taken; each program's stdin is closed once it holds no task
 * (end of input tells it to finish and exit); kill_grace later what is
 * left gets SIGKILL.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "daemon.h"
#include "handler.h"
#include "handler_proto.h"
#include "log.h"

#define COMPONENT        "process"
#define READ_CHUNK       65536
#define HELLO_MS         10000  /* a program says hello within this */
#define STABLE_MS        10000  /* up this long: not a quick failure */
#define RESTART_MIN_MS   100
#define RESTART_MAX_MS   30000
#define CRASHLOOP_FAILS  5
#define NOPIDFD_MS       50     /* without a pidfd: check exits this often */
#define PIPE_GONE_MS     1000   /* a pipe closed: the exit should follow */

enum req_state { REQ_PENDING, REQ_SENT, REQ_DONE };

/* A request the supervisor finished: its thread reads this without the
 * lock, and returns once it is FIN_WOKEN (the supervisor's last touch of
 * the request; it is set a few instructions after FIN_DONE). */
enum { FIN_NOT, FIN_DONE, FIN_WOKEN };

/* One task on its way through the pool; on the handler thread's stack. */
struct req {
    const struct wq_handler_ctx *ctx;
    struct wq_handler_result *res;
    uint64_t id;                /* frame id, unique in the pool */
    uint64_t deadline_ns;       /* 0: none */
    int64_t deadline_ms;
    int fd;                     /* eventfd written when done */
    struct wq_buf frame;        /* its task frame, encoded before the
                                   lock is taken */
    atomic_int finished;        /* FIN_*: set by the supervisor */
    enum req_state state;
    struct proc *proc;          /* while SENT */
    struct req *next;           /* pending list */
    wq_proc_done_fn *done;      /* async (wq_handler_process_start): called
                                   instead of writing fd */
    void *done_arg;
};

/* An asynchronous request: on the heap, the caller's until it frees it. */
struct wq_proc_req {
    struct req r;
};

enum proc_state { P_DOWN, P_HELLO, P_UP, P_CLOSING };

/* Requests whose threads are to be woken. */
struct wakeq {
    struct req **v;
    size_t n, cap;
};

struct proc {
    enum proc_state state;
    struct wq_spawned sp;
    struct wq_buf rbuf;         /* stdout not yet a whole line */
    size_t scanned;             /* of rbuf: bytes without a newline */
    struct wq_buf wbuf;         /* frames not yet written */
    size_t woff;
    struct wq_buf ebuf;         /* stderr not yet a whole line */
    struct req **slot;          /* max_in_flight; NULL free */
    size_t busy;
    uint64_t started_ns, hello_by_ns, restart_at_ns, close_by_ns;
    uint64_t gone_by_ns;        /* a pipe closed: exit by then; 0 none */
    unsigned fails;             /* quick failures in a row */
    int answered;               /* a task answered since the start */
    int exited;                 /* a zombie now (waitid WNOWAIT) */
    siginfo_t si;
};

struct wq_proc_pool {
    pthread_mutex_t lock;
    pthread_t thread;
    int started;
    int wake;                   /* eventfd: requests, stop */
    const char *type;
    struct wq_exec_conf exec;   /* argv, limits, workdir, umask */
    size_t nproc;
    size_t max_in_flight;
    size_t max_output;
    size_t max_stderr;
    int64_t kill_grace_ms;
    char **envp;
    char *worker_id;
    struct proc *procs;
    struct req *pend_head, *pend_tail;
    atomic_uint_fast64_t next_id;   /* taken without the lock */
    int stopping;
    int corked;                 /* wq_proc_pool_cork: frames wait in wbuf */
    int sleeping;               /* in poll: a request must wake it */
    uint64_t sleep_until_ns;    /* while sleeping: when poll returns at
                                   the latest; 0 never */
    struct wakeq wakes, sending;    /* requests done, their threads not
                                       yet woken (see req_done) */
    atomic_int crashloop;
    char last_err[600];
    wq_metric *m_restarts, *m_crashloop, *m_up;
};

static void
close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void
wake(int fd)
{
    uint64_t one = 1;

    if (write(fd, &one, sizeof one) < 0)
        (void)0;        /* EAGAIN: a wakeup is pending anyway */
}

/* Wakes the supervisor if it sleeps in poll (the lock is held); while it
 * is awake it sees every change before it sleeps again, so one write per
 * sleep is enough (a write and a read saved per task under load). */
static void
wake_supervisor(struct wq_proc_pool *p)
{
    if (p->sleeping) {
        p->sleeping = 0;
        wake(p->wake);
    }
}

/*
 * Finishes r (the lock is held): its result is set.  Its thread is woken
 * later, by wakes_send once the supervisor has let go of the lock: a
 * thread woken under the lock would only sleep again on it.  Until then
 * r->finished is FIN_DONE, which holds r on its thread's stack.
 */
static void
req_done(struct wq_proc_pool *p, struct req *r)
{
    struct wakeq *q = &p->wakes;

    r->state = REQ_DONE;
    r->proc = NULL;
    atomic_store_explicit(&r->finished, FIN_DONE, memory_order_relaxed);
    if (q->n == q->cap) {
        q->cap = q->cap > 0 ? 2 * q->cap : 64;
        q->v = xreallocarray(q->v, q->cap, sizeof *q->v);
    }
    q->v[q->n++] = r;
}

/* Takes the wakeups owed (the lock is held) for wakes_send. */
static struct wakeq *
wakes_take(struct wq_proc_pool *p)
{
    struct wakeq t = p->sending;

    p->sending = p->wakes;
    p->wakes = t;
    p->wakes.n = 0;
    return &p->sending;
}

/* Wakes the threads of q's requests; the lock is not held (q is the
 * supervisor's own until it takes the next). */
static void
wakes_send(struct wakeq *q)
{
    for (size_t i = 0; i < q->n; i++) {
        struct req *r = q->v[i];
        wq_proc_done_fn *done = r->done;

        if (done != NULL) {
            void *arg = r->done_arg;

            atomic_store_explicit(&r->finished, FIN_WOKEN,
                memory_order_release);
            done(arg);      /* the last touch of r: its owner frees it */
            continue;
        }
        wake(r->fd);
        /* the last touch of r: its thread may return from now on */
        atomic_store_explicit(&r->finished, FIN_WOKEN,
            memory_order_release);
    }
    q->n = 0;
}

static void
req_fail(struct wq_proc_pool *p, struct req *r, enum wq_outcome o,
    const char *text)
{
    wq_handler_result_fail(r->res, o, "%s: %s", p->type, text);
    req_done(p, r);
}

/* ---- the programs -------------------------------------------------------- */

static int
up_count(const struct wq_proc_pool *p)
{
    int n = 0;

    for (size_t i = 0; i < p->nproc; i++)
        n += p->procs[i].state == P_UP;
    return n;
}

static void
update_gauges(struct wq_proc_pool *p)
{
    int loop = 0;

    for (size_t i = 0; i < p->nproc; i++)
        if (p->procs[i].fails >= CRASHLOOP_FAILS)
            loop = 1;
    if (loop && !atomic_load(&p->crashloop))
        wq_log_error(COMPONENT, "%s: the handler program is crash-looping "
            "(%d quick failures in a row; last: %s); restarting it every "
            "%d s at most, the worker reports unhealthy", p->type,
            CRASHLOOP_FAILS, p->last_err, RESTART_MAX_MS / 1000);
    else if (!loop && atomic_load(&p->crashloop))
        wq_log_info(COMPONENT, "%s: the handler program runs again",
            p->type);
    atomic_store(&p->crashloop, loop);
    if (p->m_crashloop != NULL)
        wq_metric_set(p->m_crashloop, loop);
    if (p->m_up != NULL)
        wq_metric_set(p->m_up, up_count(p));
}

static void
proc_start(struct wq_proc_pool *p, struct proc *pr)
{
    char why[160];
    int rc;
    uint64_t now = wq_clock_mono_ns();

    rc = wq_exec_spawn(&p->exec, p->envp, &pr->sp, why, sizeof why);
    pr->started_ns = now;
    pr->answered = 0;
    pr->exited = 0;
    if (rc != 0) {
        snprintf(p->last_err, sizeof p->last_err, "cannot start %s: %s%s%s",
            p->exec.argv[0], why, why[0] != '\0' ? ": " : "", strerror(rc));
        wq_log_error(COMPONENT, "%s: %s", p->type, p->last_err);
        pr->fails++;
        pr->restart_at_ns = now + (uint64_t)RESTART_MAX_MS * 1000000u;
        if (pr->fails < CRASHLOOP_FAILS) {
            uint64_t ms = (uint64_t)RESTART_MIN_MS << (pr->fails - 1);

            pr->restart_at_ns = now + (ms < RESTART_MAX_MS ? ms
                : RESTART_MAX_MS) * 1000000u;
        }
        update_gauges(p);
        return;
    }
    pr->state = P_HELLO;
    pr->gone_by_ns = 0;
    pr->hello_by_ns = now + (uint64_t)HELLO_MS * 1000000u;
    wq_buf_reset(&pr->rbuf);
    wq_buf_reset(&pr->wbuf);
    wq_buf_reset(&pr->ebuf);
    pr->scanned = 0;
    pr->woff = 0;
    if (wq_proto_hello(&pr->wbuf, (unsigned)p->max_in_flight, p->worker_id,
        p->type) != 0)
        abort();
    wq_log_info(COMPONENT, "%s: started %s, pid %ld", p->type,
        p->exec.argv[0], (long)pr->sp.pid);
}

static int
check_exit(struct proc *pr)
{
    siginfo_t si;

    if (pr->exited)
        return 1;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pr->sp.pid, &si, WEXITED | WNOHANG | WNOWAIT)
        == 0 && si.si_pid == pr->sp.pid) {
        pr->si = si;
        pr->exited = 1;
    }
    return pr->exited;
}

/*
 * Ends a program (the lock is held): SIGKILL to its group while the
 * child, alive or a zombie, still holds the group id; reaped; its tasks
 * fail with `reason` (`late`, if not NULL, as TIMEOUT); a restart is
 * planned unless the pool stops.
 */
static void
proc_down(struct wq_proc_pool *p, struct proc *pr, const char *reason,
    struct req *late)
{
    uint64_t now = wq_clock_mono_ns();
    char what[600];
    long pid = (long)pr->sp.pid;
    int quick;

    if (kill(-pr->sp.pid, SIGKILL) < 0 && errno != ESRCH)
        wq_log_warn(COMPONENT, "kill(-%ld): %s", pid, strerror(errno));
    while (waitpid(pr->sp.pid, NULL, 0) < 0 && errno == EINTR)
        ;
    close_fd(&pr->sp.in);
    close_fd(&pr->sp.out);
    close_fd(&pr->sp.err);
    close_fd(&pr->sp.pidfd);
    snprintf(what, sizeof what, "%s[%ld] %s", p->exec.argv[0], pid, reason);
    for (size_t i = 0; i < p->max_in_flight; i++) {
        struct req *r = pr->slot[i];

        if (r == NULL)
            continue;
        pr->slot[i] = NULL;
        if (r == late) {
            req_fail(p, r, WQ_OUTCOME_TIMEOUT, what);
        } else {
            char text[700];

            snprintf(text, sizeof text, "handler process %s", what);
            req_fail(p, r, WQ_OUTCOME_FAILED, text);
        }
    }
    pr->busy = 0;
    quick = !pr->answered && now - pr->started_ns
        < (uint64_t)STABLE_MS * 1000000u;
    if (pr->state == P_CLOSING || p->stopping) {
        wq_log_info(COMPONENT, "%s: %s", p->type, what);
        pr->state = P_DOWN;
        pr->restart_at_ns = UINT64_MAX;
        update_gauges(p);
        return;
    }
    pr->state = P_DOWN;
    snprintf(p->last_err, sizeof p->last_err, "%s", what);
    pr->fails = quick ? pr->fails + 1 : 0;
    {
        uint64_t ms = RESTART_MIN_MS;

        if (pr->fails > 1)
            ms = pr->fails > 10 ? RESTART_MAX_MS
                : (uint64_t)RESTART_MIN_MS << (pr->fails - 1);
        if (ms > RESTART_MAX_MS)
            ms = RESTART_MAX_MS;
        pr->restart_at_ns = now + ms * 1000000u;
        wq_log_warn(COMPONENT, "%s: %s; restarting in %llu ms", p->type,
            what, (unsigned long long)ms);
    }
    if (p->m_restarts != NULL)
        wq_metric_inc(p->m_restarts, 1);
    update_gauges(p);
}

/* How the zombie ended, for the reason text. */
static void
exit_reason(const struct proc *pr, char *buf, size_t len)
{
    if (pr->si.si_code == CLD_EXITED)
        snprintf(buf, len, "exited with status %d", pr->si.si_status);
    else
        snprintf(buf, len, "was killed by signal %d (SIG%s)",
            pr->si.si_status, sigabbrev_np(pr->si.si_status) != NULL
            ? sigabbrev_np(pr->si.si_status) : "?");
}

/* A pipe of the program closed: it must exit soon, or be killed. */
static void
pipe_gone(struct proc *pr)
{
    if (pr->gone_by_ns == 0)
        pr->gone_by_ns = wq_clock_mono_ns()
            + (uint64_t)PIPE_GONE_MS * 1000000u;
}

/* Writes what the program's stdin takes now. */
static void
proc_flush(struct proc *pr)
{
    while (pr->sp.in >= 0 && pr->woff < pr->wbuf.len) {
        ssize_t n = write(pr->sp.in, pr->wbuf.data + pr->woff,
            pr->wbuf.len - pr->woff);

        if (n > 0) {
            pr->woff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        /* EPIPE: it closed its input, most likely exiting: the exit
         * status says more than the pipe, so wait for it a while */
        close_fd(&pr->sp.in);
        pipe_gone(pr);
        return;
    }
    if (pr->woff == pr->wbuf.len) {
        wq_buf_reset(&pr->wbuf);
        pr->woff = 0;
    }
}

/* Handles one line of the program's; 0, or -1 when it went down. */
static int
proc_line(struct wq_proc_pool *p, struct proc *pr, const char *line,
    size_t len)
{
    struct wq_proto_msg m;
    char err[WQ_ERRLEN], why[WQ_ERRLEN + 64];
    struct req *r = NULL;
    size_t i;

    if (wq_proto_parse(line, len, &m, err, sizeof err) != 0) {
        snprintf(why, sizeof why, "broke the protocol: %s", err);
        proc_down(p, pr, why, NULL);
        return -1;
    }
    if (m.kind == WQ_PROTO_HELLO) {
        if (pr->state == P_CLOSING) {
            /* a late hello from a program told to stop before it was
             * ready (its stdin is closed): it exits on its own */
            wq_proto_msg_free(&m);
            return 0;
        }
        if (pr->state != P_HELLO) {
            proc_down(p, pr, "broke the protocol: a second hello", NULL);
        } else if (m.protocol != WQ_PROTO_VERSION) {
            snprintf(why, sizeof why, "speaks protocol version %ld (%s); "
                "this worker speaks %d", m.protocol, m.library != NULL
                ? m.library : "no library named", WQ_PROTO_VERSION);
            proc_down(p, pr, why, NULL);
        } else {
            pr->state = P_UP;
            wq_log_info(COMPONENT, "%s: pid %ld ready (protocol %ld, %s)",
                p->type, (long)pr->sp.pid, m.protocol, m.library != NULL
                ? m.library : "no library named");
            update_gauges(p);
            wq_proto_msg_free(&m);
            return 0;
        }
        wq_proto_msg_free(&m);
        return -1;
    }
    if (pr->state != P_UP && pr->state != P_CLOSING) {
        wq_proto_msg_free(&m);
        proc_down(p, pr, "broke the protocol: a result before its hello",
            NULL);
        return -1;
    }
    for (i = 0; i < p->max_in_flight; i++)
        if (pr->slot[i] != NULL && pr->slot[i]->id == m.id) {
            r = pr->slot[i];
            break;
        }
    if (m.kind == WQ_PROTO_PROGRESS) {
        /* the task's handler thread waits for its result meanwhile, so its
         * context is alive; a report for a task that ended is dropped */
        if (r != NULL && r->ctx->progress != NULL)
            r->ctx->progress(r->ctx->progress_user, m.percent, m.error);
        wq_proto_msg_free(&m);
        return 0;
    }
    if (r == NULL) {
        uint64_t id = m.id;

        wq_proto_msg_free(&m);
        if (id >= atomic_load_explicit(&p->next_id,
            memory_order_relaxed)) {
            proc_down(p, pr, "broke the protocol: a result for a task never "
                "sent", NULL);
            return -1;
        }
        return 0;       /* a task cancelled or given up meanwhile */
    }
    pr->slot[i] = NULL;
    pr->busy--;
    pr->answered = 1;
    if (pr->fails > 0) {
        pr->fails = 0;
        update_gauges(p);
    }
    r->res->outcome = m.outcome;
    if (m.outcome == WQ_OUTCOME_SUCCEEDED) {
        size_t total = m.result.len;

        r->res->result = m.result;
        memset(&m.result, 0, sizeof m.result);
        if (total > p->max_output) {
            r->res->result.len = p->max_output;
            r->res->note = xasprintf("result cut at %zu of %zu bytes",
                p->max_output, total);
        }
    } else {
        r->res->error = m.error != NULL ? m.error : xasprintf("%s: the "
            "handler reported a %s failure without a text", p->type,
            m.outcome == WQ_OUTCOME_PERMANENT ? "permanent" : "retryable");
        m.error = NULL;
    }
    wq_proto_msg_free(&m);
    req_done(p, r);
    return 0;
}

/* Reads the program's stdout and handles the whole lines. */
static void
proc_read(struct wq_proc_pool *p, struct proc *pr)
{
    size_t max = WQ_PROTO_LINE_MAX(p->max_output);
    int more;

    for (;;) {
        ssize_t n;
        size_t start = 0;

        if (wq_buf_reserve(&pr->rbuf, READ_CHUNK) != 0)
            abort();
        n = read(pr->sp.out, pr->rbuf.data + pr->rbuf.len, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            /* EOF: it closed stdout, most likely exiting; the pidfd says */
            close_fd(&pr->sp.out);
            pipe_gone(pr);
            return;
        }
        pr->rbuf.len += (size_t)n;
        more = (size_t)n == READ_CHUNK;
        for (;;) {
            char *nl = memchr(pr->rbuf.data + pr->scanned, '\n',
                pr->rbuf.len - pr->scanned);

            if (nl == NULL) {
                pr->scanned = pr->rbuf.len;
                break;
            }
            if (proc_line(p, pr, pr->rbuf.data + start,
                (size_t)(nl - (pr->rbuf.data + start))) != 0)
                return;     /* down: its buffers were reset */
            start = (size_t)(nl - pr->rbuf.data) + 1;
            pr->scanned = start;
        }
        if (start > 0) {
            memmove(pr->rbuf.data, pr->rbuf.data + start,
                pr->rbuf.len - start);
            pr->rbuf.len -= start;
            pr->scanned -= start;
        }
        if (pr->rbuf.len > max) {
            proc_down(p, pr, "broke the protocol: a line longer than the "
                "frame limit", NULL);
            return;
        }
        if (!more)
            return;     /* drained, most likely: poll says if not */
    }
}

static void
log_err_line(struct wq_proc_pool *p, struct proc *pr, const char *s,
    size_t n)
{
    char *line = wq_handler_text_sanitize(s, n < p->max_stderr ? n
        : p->max_stderr, p->max_stderr + 16);

    wq_log(WQ_LOG_INFO, COMPONENT, "%s[%ld] stderr: %s", p->type,
        (long)pr->sp.pid, line);
    free(line);
}

/* Logs the program's stderr a line at a time. */
static void
proc_read_err(struct wq_proc_pool *p, struct proc *pr)
{
    char buf[READ_CHUNK];

    for (;;) {
        ssize_t n = read(pr->sp.err, buf, sizeof buf);
        const char *s = buf, *end;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            if (pr->ebuf.len > 0)
                log_err_line(p, pr, pr->ebuf.data, pr->ebuf.len);
            wq_buf_reset(&pr->ebuf);
            close_fd(&pr->sp.err);
            return;
        }
        end = buf + n;
        while (s < end) {
            const char *nl = memchr(s, '\n', (size_t)(end - s));

            if (nl == NULL) {
                if (pr->ebuf.len < p->max_stderr + 1
                    && wq_buf_append(&pr->ebuf, s, (size_t)(end - s)) != 0)
                    abort();
                break;
            }
            if (pr->ebuf.len > 0) {
                if (wq_buf_append(&pr->ebuf, s, (size_t)(nl - s)) != 0)
                    abort();
                log_err_line(p, pr, pr->ebuf.data, pr->ebuf.len);
                wq_buf_reset(&pr->ebuf);
            } else {
                log_err_line(p, pr, s, (size_t)(nl - s));
            }
            s = nl + 1;
        }
    }
}

/* The program of pool p with the fewest tasks that takes one more. */
static struct proc *
pick(struct wq_proc_pool *p)
{
    struct proc *best = NULL;

    for (size_t i = 0; i < p->nproc; i++) {
        struct proc *pr = &p->procs[i];

        if (pr->state == P_UP && pr->busy < p->max_in_flight
            && (best == NULL || pr->busy < best->busy))
            best = pr;
    }
    return best;
}

#define UNFRAMED "the task cannot be framed (a field is not UTF-8)"

/* Gives r to program pr, which has room (the lock is held): its frame,
 * encoded before, waits in pr->wbuf. */
static void
send_task(struct proc *pr, struct req *r)
{
    size_t i;

    if (wq_buf_append(&pr->wbuf, r->frame.data, r->frame.len) != 0)
        abort();
    for (i = 0; pr->slot[i] != NULL; i++)
        ;
    pr->slot[i] = r;
    pr->busy++;
    r->proc = pr;
    r->state = REQ_SENT;
}

/* Sends pending requests to programs with room. */
static void
dispatch(struct wq_proc_pool *p)
{
    struct proc *pr;

    while (p->pend_head != NULL && (pr = pick(p)) != NULL) {
        struct req *r = p->pend_head;

        p->pend_head = r->next;
        if (p->pend_head == NULL)
            p->pend_tail = NULL;
        r->next = NULL;
        send_task(pr, r);
    }
}

/* Deadlines of sent tasks, hello and stop timers, restarts.  Returns the
 * next time something is due (0: nothing). */
static uint64_t
timers(struct wq_proc_pool *p, uint64_t now)
{
    uint64_t next = 0;

#define DUE(t) do { if ((t) != 0 && (next == 0 || (t) < next)) next = (t); \
    } while (0)
    for (size_t i = 0; i < p->nproc; i++) {
        struct proc *pr = &p->procs[i];

        if (pr->state == P_DOWN) {
            if (!p->stopping && now >= pr->restart_at_ns)
                proc_start(p, pr);
            if (pr->state == P_DOWN) {
                if (!p->stopping)
                    DUE(pr->restart_at_ns);
                continue;
            }
        }
        if (pr->gone_by_ns != 0 && pr->state != P_CLOSING) {
            if (now >= pr->gone_by_ns) {
                proc_down(p, pr, pr->sp.out < 0 ? "closed its stdout"
                    : "closed its stdin", NULL);
                continue;
            }
            DUE(pr->gone_by_ns);
        }
        if (pr->state == P_HELLO) {
            if (now >= pr->hello_by_ns) {
                proc_down(p, pr, "sent no hello within 10 s", NULL);
                continue;
            }
            DUE(pr->hello_by_ns);
        }
        if (pr->state == P_CLOSING) {
            if (now >= pr->close_by_ns) {
                proc_down(p, pr, "did not exit within kill_grace of its "
                    "stdin closing; killed", NULL);
                continue;
            }
            DUE(pr->close_by_ns);
        }
        for (size_t j = 0; j < p->max_in_flight && pr->state != P_DOWN;
            j++) {
            struct req *r = pr->slot[j];
            char why[200];

            if (r == NULL || r->deadline_ns == 0)
                continue;
            if (now >= r->deadline_ns) {
                snprintf(why, sizeof why, "held task %s past its deadline; "
                    "process group killed", r->ctx->task_id);
                proc_down(p, pr, why, r);
                break;
            }
            DUE(r->deadline_ns);
        }
        if (pr->state == P_UP && pr->fails > 0 && now - pr->started_ns
            >= (uint64_t)STABLE_MS * 1000000u) {
            pr->fails = 0;
            update_gauges(p);
        }
        if (pr->state == P_UP && pr->fails > 0)
            DUE(pr->started_ns + (uint64_t)STABLE_MS * 1000000u);
    }
#undef DUE
    return next;
}

/* At a stop: closes the stdin of programs holding no task. */
static int
closing(struct wq_proc_pool *p, uint64_t now)
{
    int alive = 0;

    for (size_t i = 0; i < p->nproc; i++) {
        struct proc *pr = &p->procs[i];

        if (pr->state == P_DOWN)
            continue;
        alive++;
        if (pr->state != P_CLOSING && pr->busy == 0
            && pr->woff == pr->wbuf.len) {
            close_fd(&pr->sp.in);
            pr->state = P_CLOSING;
            pr->close_by_ns = now + (uint64_t)p->kill_grace_ms * 1000000u;
        }
    }
    return alive;
}

static void *
supervise(void *arg)
{
    struct wq_proc_pool *p = arg;
    struct pollfd *pfd = xcalloc(1 + 4 * p->nproc, sizeof *pfd);
    int *who = xcalloc(1 + 4 * p->nproc, sizeof *who);  /* proc, or -1 */

    wq_daemon_block_signals();      /* signals are the main thread's */
    pthread_setname_np(pthread_self(), "wq-process");  /* for top -H */
    pthread_mutex_lock(&p->lock);
    for (;;) {
        uint64_t now = wq_clock_mono_ns(), due;
        int n = 0, wait = -1, nopidfd = 0;
        struct wakeq *wakes;

        if (p->stopping) {
            struct req *r;

            while ((r = p->pend_head) != NULL) {
                p->pend_head = r->next;
                req_fail(p, r, WQ_OUTCOME_ABANDONED, "the worker is "
                    "stopping");
            }
            p->pend_tail = NULL;
            if (closing(p, now) == 0)
                break;
        }
        /* sent first, so that the deadlines of what was just sent count
         * in this turn's wait */
        dispatch(p);
        due = timers(p, now);
        /* a timer may have put the last program down (killed past its
         * kill_grace): nothing would wake the poll below */
        if (p->stopping && closing(p, now) == 0)
            break;
        if (p->pend_head != NULL && up_count(p) == 0
            && atomic_load(&p->crashloop)) {
            struct req *r;
            char text[700];

            snprintf(text, sizeof text, "no handler process runs (crash "
                "loop): %s", p->last_err);
            while ((r = p->pend_head) != NULL) {
                p->pend_head = r->next;
                req_fail(p, r, WQ_OUTCOME_FAILED, text);
            }
            p->pend_tail = NULL;
        }

        pfd[n] = (struct pollfd){ p->wake, POLLIN, 0 };
        who[n++] = -1;
        for (size_t i = 0; i < p->nproc; i++) {
            struct proc *pr = &p->procs[i];

            if (pr->state == P_DOWN)
                continue;
            proc_flush(pr);
            if (pr->state == P_DOWN)
                continue;
            if (pr->sp.out >= 0) {
                pfd[n] = (struct pollfd){ pr->sp.out, POLLIN, 0 };
                who[n++] = (int)i;
            }
            if (pr->sp.err >= 0) {
                pfd[n] = (struct pollfd){ pr->sp.err, POLLIN, 0 };
                who[n++] = (int)i;
            }
            if (pr->sp.in >= 0 && pr->woff < pr->wbuf.len) {
                pfd[n] = (struct pollfd){ pr->sp.in, POLLOUT, 0 };
                who[n++] = (int)i;
            }
            if (pr->sp.pidfd >= 0) {
                pfd[n] = (struct pollfd){ pr->sp.pidfd, POLLIN, 0 };
                who[n++] = (int)i;
            } else {
                nopidfd = 1;
            }
        }
        if (due != 0)
            wait = wq_clock_ms_until(due) + 1;
        if (nopidfd && (wait < 0 || wait > NOPIDFD_MS))
            wait = NOPIDFD_MS;
        p->sleeping = 1;
        p->sleep_until_ns = wait < 0 ? 0 : now + (uint64_t)wait * 1000000u;
        wakes = wakes_take(p);
        pthread_mutex_unlock(&p->lock);
        wakes_send(wakes);
        if (poll(pfd, (nfds_t)n, wait) < 0 && errno != EINTR) {
            wq_log_error(COMPONENT, "poll: %s", strerror(errno));
            usleep(100000);
        }
        pthread_mutex_lock(&p->lock);
        p->sleeping = 0;
        if (pfd[0].revents != 0) {
            uint64_t v;

            if (read(p->wake, &v, sizeof v) < 0)
                (void)0;
        }
        for (int k = 1; k < n; k++) {
            struct proc *pr = &p->procs[who[k]];

            if (pfd[k].revents == 0 || pr->state == P_DOWN)
                continue;
            if (pfd[k].fd == pr->sp.out)
                proc_read(p, pr);
            else if (pfd[k].fd == pr->sp.err)
                proc_read_err(p, pr);
            else if (pfd[k].fd == pr->sp.in)
                proc_flush(pr);
        }
        /* exits last: what the program wrote before is handled first;
         * waitid only when its pidfd says so (or there is none) */
        for (int k = 1; k < n; k++) {
            struct proc *pr = &p->procs[who[k]];

            if (pfd[k].revents != 0 && pfd[k].fd == pr->sp.pidfd
                && pr->state != P_DOWN)
                check_exit(pr);
        }
        for (size_t i = 0; i < p->nproc; i++) {
            struct proc *pr = &p->procs[i];
            char why[80];

            if (pr->state == P_DOWN || (pr->sp.pidfd >= 0 ? !pr->exited
                : !check_exit(pr)))
                continue;
            if (pr->sp.out >= 0)
                proc_read(p, pr);
            if (pr->state == P_DOWN)
                continue;
            if (pr->sp.err >= 0)
                proc_read_err(p, pr);
            exit_reason(pr, why, sizeof why);
            proc_down(p, pr, why, NULL);
        }
    }
    wakes_send(wakes_take(p));  /* the requests failed at the stop */
    pthread_mutex_unlock(&p->lock);
    free(pfd);
    free(who);
    return NULL;
}

/* ---- the interface ------------------------------------------------------- */

static char **
env_build(const char *const *extra, const char *type, const char *worker)
{
    size_t n = 0, ne = 0;
    char **envp;

    while (extra != NULL && extra[ne] != NULL)
        ne++;
    envp = xcalloc(5 + ne, sizeof *envp);
    envp[n++] = xstrdup("PATH=/usr/bin:/bin");
    envp[n++] = xasprintf("WORKQ_PROTOCOL=%d", WQ_PROTO_VERSION);
    envp[n++] = xasprintf("WORKQ_TYPE=%s", type);
    envp[n++] = xasprintf("WORKQ_WORKER_ID=%s", worker);
    for (size_t i = 0; i < ne; i++)
        envp[n++] = xstrdup(extra[i]);
    envp[n] = NULL;
    return envp;
}

/* Waits until the supervisor is done with r, if it finished it: the
 * wakeup write is on its way (a microsecond or two), so spin a little
 * before yielding. */
static void
wait_woken(struct req *r)
{
    for (unsigned i = 0; atomic_load_explicit(&r->finished,
        memory_order_acquire) == FIN_DONE; i++)
        if (i >= 200)
            sched_yield();
}

int
wq_proc_pool_new(const struct wq_proc_conf *c, struct wq_proc_pool **out,
    char *err, size_t errlen)
{
    struct wq_proc_pool *p = xcalloc(1, sizeof *p);
    int rc;

    *out = NULL;
    {
        /* held briefly by many threads: spin a little before sleeping */
        pthread_mutexattr_t a;

        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
        pthread_mutex_init(&p->lock, &a);
        pthread_mutexattr_destroy(&a);
    }
    p->wake = -1;
    p->type = c->type;
    p->exec = c->exec;
    p->nproc = c->processes;
    p->max_in_flight = c->max_in_flight;
    p->max_output = c->exec.max_output;
    p->max_stderr = c->exec.max_stderr > 0 ? c->exec.max_stderr : 1;
    p->kill_grace_ms = c->exec.kill_grace_ms;
    p->worker_id = xstrdup(c->worker_id != NULL ? c->worker_id : "");
    p->envp = env_build((const char *const *)c->exec.env, c->type,
        p->worker_id);
    atomic_init(&p->next_id, 1);
    atomic_init(&p->crashloop, 0);
    p->procs = xcalloc(p->nproc, sizeof *p->procs);
    for (size_t i = 0; i < p->nproc; i++) {
        struct proc *pr = &p->procs[i];

        pr->state = P_DOWN;
        pr->sp.pid = -1;
        pr->sp.in = pr->sp.out = pr->sp.err = pr->sp.pidfd = -1;
        pr->slot = xcalloc(p->max_in_flight, sizeof *pr->slot);
    }
    p->m_restarts = c->m_restarts;
    p->m_crashloop = c->m_crashloop;
    p->m_up = c->m_up;
    if ((p->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        rc = wq_seterr(err, errlen, WQ_EIO, "eventfd: %s", strerror(errno));
        goto fail;
    }
    if ((rc = pthread_create(&p->thread, NULL, supervise, p)) != 0) {
        rc = wq_seterr(err, errlen, WQ_EIO, "cannot start the supervisor "
            "thread: %s", strerror(rc));
        goto fail;
    }
    p->started = 1;
    *out = p;
    return 0;

fail:
    wq_proc_pool_free(p);
    return rc;
}

/*
 * Frames r's task and sends it to a program with room, or queues it
 * (r->ctx, res, fd or done set by the caller).  Returns 0, or -1 when r
 * finished at once (its result set: the pool stops, the task cannot be
 * framed).
 */
static int
req_submit(struct wq_proc_pool *p, struct req *r)
{
    const struct wq_handler_ctx *ctx = r->ctx;
    uint64_t now = wq_clock_mono_ns();
    struct proc *pr;

    r->deadline_ns = ctx->deadline_ns;
    r->deadline_ms = ctx->deadline_ms;
    if (r->deadline_ns != 0 && r->deadline_ms == 0)
        r->deadline_ms = wq_clock_wall_ms() + (int64_t)((r->deadline_ns
            > now ? r->deadline_ns - now : 0) / 1000000u);

    /* framed before the lock is taken: the pool's threads wait less on
     * it (a frame id unique in the pool needs no lock) */
    r->id = atomic_fetch_add_explicit(&p->next_id, 1, memory_order_relaxed);
    if (wq_proto_task(&r->frame, r->id, ctx, r->deadline_ms) != 0) {
        wq_handler_result_fail(r->res, WQ_OUTCOME_PERMANENT, "%s: %s",
            p->type, UNFRAMED);
        return -1;
    }
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        wq_handler_result_fail(r->res, WQ_OUTCOME_ABANDONED, "%s: the "
            "worker is stopping", p->type);
        return -1;
    }
    r->state = REQ_PENDING;
    if (p->pend_head == NULL && (pr = pick(p)) != NULL) {
        /* a program has room and no task waits before this one: send it
         * from this thread, without a handoff to the supervisor */
        size_t queued = pr->wbuf.len - pr->woff;

        send_task(pr, r);
        if (queued == 0 && !p->corked)
            proc_flush(pr);
        /* the supervisor must wake for what it alone can do: write what
         * the pipe did not take, see a closed pipe, or keep a deadline
         * sooner than its poll's (corked: the uncork writes) */
        if ((pr->woff < pr->wbuf.len && !p->corked) || pr->sp.in < 0
            || (r->deadline_ns != 0 && (p->sleep_until_ns == 0
            || r->deadline_ns < p->sleep_until_ns)))
            wake_supervisor(p);
    } else {
        if (p->pend_tail != NULL)
            p->pend_tail->next = r;
        else
            p->pend_head = r;
        p->pend_tail = r;
        wake_supervisor(p);
    }
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/*
 * Gives r up (the lock is held, r not done): out of the pending list, or
 * out of its program's slots with a cancel frame for the program.
 */
static void
req_unlink(struct wq_proc_pool *p, struct req *r)
{
    struct proc *pr;

    if (r->state == REQ_PENDING) {
        struct req **pp = &p->pend_head, *prev = NULL;

        while (*pp != r) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        *pp = r->next;
        if (p->pend_tail == r)
            p->pend_tail = prev;
    } else {
        pr = r->proc;
        for (size_t i = 0; i < p->max_in_flight; i++)
            if (pr->slot[i] == r) {
                pr->slot[i] = NULL;
                pr->busy--;
            }
        if (pr->sp.in >= 0 && wq_proto_cancel(&pr->wbuf, r->id) != 0)
            abort();
    }
    r->state = REQ_DONE;
    r->proc = NULL;
    wake_supervisor(p);
}

void
wq_handler_process_run(struct wq_proc_pool *p,
    const struct wq_handler_ctx *ctx, struct wq_handler_result *res)
{
    struct req r;
    int own = ctx->task_cancel_fd < 0;

    memset(&r, 0, sizeof r);
    r.ctx = ctx;
    r.res = res;
    r.fd = own ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : ctx->task_cancel_fd;
    if (r.fd < 0) {
        wq_handler_result_fail(res, WQ_OUTCOME_FAILED, "%s: eventfd: %s",
            p->type, strerror(errno));
        return;
    }
    if (req_submit(p, &r) != 0)
        goto out;

    for (;;) {
        struct pollfd pfd[2];
        int n = 0, icancel = -1;
        enum wq_outcome give_up = WQ_OUTCOME_SUCCEEDED;

        pfd[n++] = (struct pollfd){ r.fd, POLLIN, 0 };
        if (ctx->cancel_fd >= 0) {
            icancel = n;
            pfd[n++] = (struct pollfd){ ctx->cancel_fd, POLLIN, 0 };
        }
        if (poll(pfd, (nfds_t)n, -1) < 0 && errno != EINTR)
            usleep(1000);
        /* the answer, most often: taken without the lock (the result was
         * written before `finished` was set, release and acquire) */
        if (atomic_load_explicit(&r.finished, memory_order_acquire)
            != FIN_NOT)
            break;
        pthread_mutex_lock(&p->lock);
        if (r.state == REQ_DONE) {
            /* the eventfd is left readable: consumer.c drains its
             * thread's before the next task (a read saved) */
            pthread_mutex_unlock(&p->lock);
            break;
        }
        if (pfd[0].revents != 0) {
            uint64_t v;

            if (read(r.fd, &v, sizeof v) < 0)
                (void)0;
        }
        if (icancel >= 0 && pfd[icancel].revents != 0)
            give_up = WQ_OUTCOME_ABANDONED;
        else if (ctx->cancelled != NULL && atomic_load(ctx->cancelled))
            give_up = WQ_OUTCOME_CANCELLED;
        if (give_up == WQ_OUTCOME_SUCCEEDED) {
            pthread_mutex_unlock(&p->lock);
            continue;
        }
        /* unlink it; a program holding it is told, its answer ignored */
        req_unlink(p, &r);
        pthread_mutex_unlock(&p->lock);
        if (give_up == WQ_OUTCOME_ABANDONED)
            wq_handler_result_fail(res, give_up, "%s: given up, the worker "
                "is stopping", p->type);
        else
            wq_handler_result_fail(res, give_up, "%s: cancelled by an "
                "operator; the handler process was sent a cancel frame",
                p->type);
        break;
    }
out:
    /* woken by something else than the supervisor's wakeup, which is
     * still to come: r must outlive it (a few instructions away) */
    wait_woken(&r);
    wq_buf_free(&r.frame);
    if (own)
        close(r.fd);
}

struct wq_proc_req *
wq_handler_process_start(struct wq_proc_pool *p,
    const struct wq_handler_ctx *ctx, struct wq_handler_result *res,
    wq_proc_done_fn *done, void *arg)
{
    struct wq_proc_req *a = xcalloc(1, sizeof *a);

    a->r.ctx = ctx;
    a->r.res = res;
    a->r.fd = -1;
    a->r.done = done;
    a->r.done_arg = arg;
    if (req_submit(p, &a->r) != 0) {
        wq_buf_free(&a->r.frame);
        free(a);
        return NULL;
    }
    return a;
}

void
wq_proc_req_cancel(struct wq_proc_pool *p, struct wq_proc_req *a,
    enum wq_outcome why, const char *text)
{
    struct req *r = &a->r;

    pthread_mutex_lock(&p->lock);
    if (r->state == REQ_DONE) {
        /* answered, or its done call is on its way */
        pthread_mutex_unlock(&p->lock);
        return;
    }
    req_unlink(p, r);
    pthread_mutex_unlock(&p->lock);
    wq_handler_result_fail(r->res, why, "%s: %s", p->type, text);
    atomic_store_explicit(&r->finished, FIN_WOKEN, memory_order_release);
    r->done(r->done_arg);
}

void
wq_proc_pool_cork(struct wq_proc_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->corked++;
    pthread_mutex_unlock(&p->lock);
}

void
wq_proc_pool_uncork(struct wq_proc_pool *p)
{
    int left = 0;

    pthread_mutex_lock(&p->lock);
    if (--p->corked == 0) {
        for (size_t i = 0; i < p->nproc; i++) {
            struct proc *pr = &p->procs[i];

            if (pr->woff < pr->wbuf.len) {
                proc_flush(pr);
                left |= pr->woff < pr->wbuf.len;
            }
        }
        if (left)
            wake_supervisor(p);
    }
    pthread_mutex_unlock(&p->lock);
}

void
wq_proc_req_free(struct wq_proc_req *a)
{
    if (a == NULL)
        return;
    wq_buf_free(&a->r.frame);
    free(a);
}

const char *
wq_proc_pool_unhealthy(struct wq_proc_pool *p)
{
    return p != NULL && atomic_load(&p->crashloop) ? "a handler process is "
        "crash-looping" : NULL;
}

void
wq_proc_pool_free(struct wq_proc_pool *p)
{
    if (p == NULL)
        return;
    if (p->started) {
        pthread_mutex_lock(&p->lock);
        p->stopping = 1;
        pthread_mutex_unlock(&p->lock);
        wake(p->wake);
        pthread_join(p->thread, NULL);
    }
    for (size_t i = 0; i < p->nproc; i++) {
        wq_buf_free(&p->procs[i].rbuf);
        wq_buf_free(&p->procs[i].wbuf);
        wq_buf_free(&p->procs[i].ebuf);
        free(p->procs[i].slot);
    }
    free(p->procs);
    free(p->wakes.v);
    free(p->sending.v);
    for (size_t i = 0; p->envp != NULL && p->envp[i] != NULL; i++)
        free(p->envp[i]);
    free(p->envp);
    free(p->worker_id);
    if (p->wake >= 0)
        close(p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
