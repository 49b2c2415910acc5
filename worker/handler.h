/*
 * handler.h - what runs a task: the interface every handler kind offers
 * (built-in, exec, plugin, http, process) and the registry that maps a
 * task's queue and type to one of them, built from the `handlers`
 * configuration.
 *
 * A handler runs one task on the calling thread (a handler slot of
 * pool.c) and fills a struct wq_handler_result; it never touches the
 * broker or PostgreSQL.  Deciding what an outcome means for the task's
 * state (retry or dead, backoff) is consumer.c's business, not theirs.
 *
 * The kinds live in handler_builtin.c, handler_exec.c, handler_plugin.c
 * handler_http.c and handler_process.c (its frames in handler_proto.c);
 * handlers.c holds the registry.
 */
#ifndef WQ_WORKER_HANDLER_H
#define WQ_WORKER_HANDLER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "config.h"
#include "envelope.h"
#include "metrics.h"
#include "wq.h"

/* How an attempt ended; workq.attempts.outcome holds the names. */
enum wq_outcome {
    WQ_OUTCOME_SUCCEEDED,       /* "succeeded" */
    WQ_OUTCOME_FAILED,          /* "failed": retryable */
    WQ_OUTCOME_PERMANENT,       /* "permanent_failure": dead, no retry */
    WQ_OUTCOME_TIMEOUT,         /* "timeout": retryable */
    WQ_OUTCOME_CANCELLED,       /* "cancelled": an operator stopped it */
    WQ_OUTCOME_ABANDONED,       /* the worker stopped it: not recorded */
};

/* "succeeded", ... for workq.attempts.outcome; NULL for ABANDONED. */
const char *wq_outcome_name(enum wq_outcome o);

/* The task a handler runs; everything is borrowed for the call. */
struct wq_handler_ctx {
    const struct wq_envelope *env;  /* queue, type, key, payload, headers */
    const char *task_id;            /* the task's row id, UUID text */
    uint32_t attempt;               /* the attempt claimed, 1 first */
    uint32_t max_attempts;
    const char *worker_id;
    uint64_t deadline_ns;           /* monotonic; 0: no timeout */
    int64_t deadline_ms;            /* the same in epoch ms; 0: none */
    int cancel_fd;                  /* readable once the worker gives up
                                       on running tasks; -1: never */
    /* An operator's cancel of this task (workq cancel): task_cancel_fd
     * becomes readable and *cancelled is set; a readable fd with the
     * flag clear is a stale wakeup to drain and ignore.  -1 and NULL
     * when the caller offers none. */
    int task_cancel_fd;
    const atomic_int *cancelled;
    /* Progress of the task (progress.h): a percentage 0..100 and a short
     * message (may be NULL); cheap, never blocks.  NULL when the caller
     * takes none. */
    void (*progress)(void *user, int percent, const char *message);
    void *progress_user;
};

/* What a handler hands back.  Zero it before the run; the caller frees
 * it with wq_handler_result_free(). */
struct wq_handler_result {
    enum wq_outcome outcome;
    struct wq_buf result;       /* the result bytes (success) */
    char *error;                /* failure text; NULL on success */
    char *note;                 /* on success: what the history should
                                   know ("stdout cut at ..."); or NULL */
    int64_t retry_after_ms;     /* FAILED: retry no sooner than this (an
                                   HTTP Retry-After); 0: the policy's */
};

/* Frees what the result owns and zeroes it. */
void wq_handler_result_free(struct wq_handler_result *r);

/*
 * wq_handler_result_fail sets a failed outcome with a formatted error
 * text (the old text, if any, is replaced).  Returns nothing; allocation
 * aborts (alloc.h).
 */
void wq_handler_result_fail(struct wq_handler_result *r, enum wq_outcome o,
    const char *fmt, ...) WQ_PRINTFLIKE(3, 4);

/*
 * wq_handler_text_sanitize returns a new string made of the n bytes at p
 * that PostgreSQL takes as text: valid UTF-8 stays, NUL and invalid
 * bytes become "\xNN", and it is at most `max` bytes long (when cut
 * short it ends in "..."); caller frees.  For error texts made from a
 * program's output.
 */
char *wq_handler_text_sanitize(const void *p, size_t n, size_t max);

/* ---- the kinds -------------------------------------------------------- */

struct wq_builtin;
struct wq_exec;
struct wq_plugin;

/*
 * wq_handler_builtin_new makes a built-in handler: `name` is noop, echo,
 * sleep or fail; `options` its "key=value" settings ("ms=100" for sleep;
 * "until=3", "p=0.5", "permanent" for fail), space- or comma-separated.
 * Returns 0 with *out owned by the caller (wq_handler_builtin_free), or
 * WQ_ECONFIG with err set for an unknown name or option.
 */
int wq_handler_builtin_new(const char *name, const char *options,
    size_t max_output, struct wq_builtin **out, char *err, size_t errlen);
void wq_handler_builtin_free(struct wq_builtin *b);

/*
 * wq_handler_builtin_run runs the built-in on the calling thread: noop
 * succeeds with an empty result; echo returns the payload; sleep sleeps
 * options' ms, or the payload's decimal milliseconds, waking early on
 * cancel_fd (ABANDONED), an operator's cancel (CANCELLED) or the deadline
 * (TIMEOUT); fail fails while
 * attempt < until, or with probability p, or for good with "permanent",
 * where the payload ("until=2") overrides the options.  Thread-safe.
 */
void wq_handler_builtin_run(const struct wq_builtin *b,
    const struct wq_handler_ctx *ctx, struct wq_handler_result *res);

/* What an exec handler runs: from one `handlers` group. */
struct wq_exec_conf {
    char *const *argv;          /* argv[0] an absolute path; NULL-ended */
    char *const *env;           /* extra "NAME=value"; NULL-ended or NULL */
    int64_t timeout_ms;         /* 0: none */
    int64_t kill_grace_ms;      /* SIGTERM to SIGKILL */
    const int *permanent;       /* exit codes that fail for good */
    size_t npermanent;
    size_t max_output;          /* stdout bytes kept */
    size_t max_stderr;          /* stderr bytes logged */
    /* Resource limits, soft and hard, set in the child before execve;
     * 0: the worker's own limit is inherited. */
    uint64_t limit_as;          /* RLIMIT_AS, bytes */
    uint64_t limit_cpu_s;       /* RLIMIT_CPU, seconds (SIGXCPU; the
                                   hard limit, SIGKILL, a second later) */
    uint64_t limit_nofile;      /* RLIMIT_NOFILE */
    uint64_t limit_nproc;       /* RLIMIT_NPROC, per user */
    uint64_t limit_fsize;       /* RLIMIT_FSIZE, bytes (SIGXFSZ) */
    int core_dumps;             /* 0: RLIMIT_CORE 0; 1: inherited */
    unsigned umask;             /* the program's umask; the config's
                                   default is 0077, a zeroed conf's 0 */
    const char *workdir;        /* chdir before execve; NULL or "": the
                                   worker's */
};

/* A program started by wq_exec_spawn: its pid and our pipe ends. */
struct wq_spawned {
    pid_t pid;
    int in, out, err;           /* non-blocking, O_CLOEXEC */
    int pidfd;                  /* -1 if the kernel has none */
};

/*
 * wq_exec_spawn starts c->argv with environment envp exactly as
 * wq_handler_exec_run does (below: its own process group, PDEATHSIG
 * SIGKILL tied to the calling thread, signals reset, pipes on 0, 1 and
 * 2, other descriptors closed, c's limits, no_new_privs, c->workdir,
 * c->umask), without waiting for it.  Returns 0 with *out filled (the
 * caller reaps the child and closes the descriptors), or an errno value
 * with the step that failed in why ("" when execve itself failed).  The
 * calling thread must outlive the child (PR_SET_PDEATHSIG follows the
 * thread).
 */
int wq_exec_spawn(const struct wq_exec_conf *c, char *const *envp,
    struct wq_spawned *out, char *why, size_t whylen);

/*
 * wq_handler_exec_run runs the program of `c` for one task and waits for
 * it, on the calling thread: started with clone(CLONE_VM|CLONE_VFORK)
 * and execve, without a shell, in a process group of its own, with stdin
 * the payload, stdout the result (max_output bytes kept, the rest read
 * and counted, reported in res->note), stderr to the log (max_stderr
 * bytes; its last line also in the error text), every other descriptor
 * closed, every signal disposition and the signal mask reset, c's
 * resource limits (RLIMIT_CORE 0 unless c->core_dumps), no_new_privs,
 * c->umask, and an environment of only PATH=/usr/bin:/bin, WORKQ_TASK_ID,
 * WORKQ_KEY, WORKQ_ATTEMPT, WORKQ_QUEUE, WORKQ_TYPE and c->env.
 *
 * Exit 0 succeeds; an exit code in c->permanent is PERMANENT; any other
 * exit or a signal is FAILED.  At the timeout, the whole group gets
 * SIGTERM and after kill_grace SIGKILL (TIMEOUT); so it does for an
 * operator's cancel of the task (CANCELLED); when ctx->cancel_fd becomes
 * readable (the worker's drain deadline) it gets SIGKILL (ABANDONED).
 * When the program itself has exited, what is left of its group is
 * killed too, so no grandchild outlives its task.  A program that cannot
 * be started (execve fails, or a limit cannot be set) is FAILED, with
 * the step and errno in the error text.
 * Thread-safe: many may run at once.
 */
void wq_handler_exec_run(const struct wq_exec_conf *c,
    const struct wq_handler_ctx *ctx, struct wq_handler_result *res);

/*
 * wq_handler_plugin_load dlopens the shared object at `path`, checks its
 * ABI version (workq_plugin.h) and calls its init with `options`.
 * Returns 0 with *out owned by the caller (wq_handler_plugin_unload), or
 * WQ_ECONFIG with err naming the path and the reason (no such file,
 * missing entry point, another ABI version, init refused).
 */
int wq_handler_plugin_load(const char *path, const char *options,
    size_t max_output, struct wq_plugin **out, char *err, size_t errlen);

/* Runs one task through the plugin; serialized unless it is
 * WORKQ_PLUGIN_THREAD_SAFE.  Thread-safe. */
void wq_handler_plugin_run(struct wq_plugin *p,
    const struct wq_handler_ctx *ctx, struct wq_handler_result *res);

/* Calls fini and dlcloses.  No run may be in progress.  NULL is allowed. */
void wq_handler_plugin_unload(struct wq_plugin *p);

/* What an http handler POSTs to: from one `handlers` group. */
struct wq_httph_conf {
    const char *url;
    const char *secret;         /* "": requests are not signed */
    const char *tls_ca;         /* "": the system's CAs */
    int follow_redirects;
    size_t max_output;          /* answer bytes kept as the result */
};

/*
 * wq_handler_http_global_init initializes libcurl once, before any
 * thread runs an http handler (curl_global_init is not thread-safe on
 * every build).  Returns 0 or WQ_ECONFIG with err set.
 */
int wq_handler_http_global_init(char *err, size_t errlen);

/*
 * wq_handler_http_run POSTs the task to c->url and waits for the answer
 * on the calling thread (handler_http.c says what is sent and how the
 * answer becomes the outcome), at most until ctx's deadline (60 s when
 * it has none); a readable ctx->cancel_fd stops it (ABANDONED), an
 * operator's cancel too (CANCELLED).  Thread-safe: each thread keeps its
 * own connections.
 */
void wq_handler_http_run(const struct wq_httph_conf *c,
    const struct wq_handler_ctx *ctx, struct wq_handler_result *res);

/*
 * wq_handler_http_sign writes the X-Workq-Signature value's hex digest,
 * HMAC-SHA256(secret, timestamp "." body), into out (64 digits and a
 * NUL).  Pure; for the handler and for tests that verify it.
 */
void wq_handler_http_sign(const char *secret, const char *timestamp,
    const void *body, size_t len, char out[65]);
/* What a process handler runs: from one `handlers` group. */
struct wq_proc_conf {
    const char *type;           /* for logs and frames */
    struct wq_exec_conf exec;   /* argv, env, limits, workdir, umask,
                                   max_output, max_stderr (per line),
                                   kill_grace (stdin closed to SIGKILL) */
    size_t processes;           /* programs kept running, >= 1 */
    size_t max_in_flight;       /* tasks sent to one at once, >= 1 */
    const char *worker_id;      /* sent in the hello */
    wq_metric *m_restarts;      /* may be NULL */
    wq_metric *m_crashloop;
    wq_metric *m_up;
};

struct wq_proc_pool;

/*
 * wq_proc_pool_new starts the pool's supervisor thread, which starts
 * c->processes programs at once and keeps them running
 * (handler_process.c; docs/handler-protocol.md).  Strings of c must
 * outlive the pool.  Returns 0 with *out owned by the caller
 * (wq_proc_pool_free), or WQ_EIO with err set.
 */
int wq_proc_pool_new(const struct wq_proc_conf *c, struct wq_proc_pool **out,
    char *err, size_t errlen);

/*
 * wq_handler_process_run sends the task to a program of the pool with
 * room (it waits in line while none has) and waits for its answer, on
 * the calling thread: "ok" succeeds with the result (cut at max_output,
 * with a note), "retry" is FAILED, "fail" PERMANENT, each with the
 * program's error text.  A program that exits, breaks the protocol or
 * holds a task past ctx's deadline is killed with its process group and
 * restarted; the tasks it held fail (the late one as TIMEOUT).  When
 * ctx->cancel_fd becomes readable the task is given up (ABANDONED); an
 * operator's cancel makes it CANCELLED; in both cases the program gets a
 * cancel frame and its late answer is ignored.  Thread-safe.
 */
void wq_handler_process_run(struct wq_proc_pool *p,
    const struct wq_handler_ctx *ctx, struct wq_handler_result *res);

/*
 * The same without a thread per task (the worker's way: a handler slot
 * that waits on events, not a sleeping thread).  wq_handler_process_start
 * sends or queues the task as wq_handler_process_run does and returns at
 * once; when the answer is in (or the program died, or the deadline
 * passed), res is set and done(arg) is called, once, from the pool's
 * supervisor thread or from the thread that cancels, without the pool's
 * lock held: done must be quick (push and wake).  ctx and res must live
 * until done.  Returns the request, which the caller frees with
 * wq_proc_req_free once done was called; or NULL when the task finished
 * at once (res set, done not called: a stopping pool, a task that cannot
 * be framed).  ctx->cancel_fd and task_cancel_fd are not used: give up
 * with wq_proc_req_cancel.  Thread-safe.
 */
struct wq_proc_req;
typedef void wq_proc_done_fn(void *arg);
struct wq_proc_req *wq_handler_process_start(struct wq_proc_pool *p,
    const struct wq_handler_ctx *ctx, struct wq_handler_result *res,
    wq_proc_done_fn *done, void *arg);

/*
 * wq_proc_req_cancel gives r up unless it is done already: the result is
 * `why` (ABANDONED: the worker stops; CANCELLED: an operator's cancel)
 * with `text`, a program holding it gets a cancel frame and its late
 * answer is ignored, and done(arg) is called from here.  Harmless when r
 * is done (it changes nothing then).  Thread-safe; r must not be freed
 * yet.
 */
void wq_proc_req_cancel(struct wq_proc_pool *p, struct wq_proc_req *r,
    enum wq_outcome why, const char *text);

/*
 * Between wq_proc_pool_cork and wq_proc_pool_uncork (which nest), tasks
 * started go to their programs' buffers and the uncork writes each
 * program's in one write: a burst of n starts costs one system call per
 * program instead of n, and the program reads them in one.  Keep a cork
 * short (one round of the caller's loop): the frames wait meanwhile.
 * Thread-safe.
 */
void wq_proc_pool_cork(struct wq_proc_pool *p);
void wq_proc_pool_uncork(struct wq_proc_pool *p);

/* Frees a request whose done was called.  NULL is allowed. */
void wq_proc_req_free(struct wq_proc_req *r);

/* A constant sentence while the pool is crash-looping, else NULL.
 * Thread-safe. */
const char *wq_proc_pool_unhealthy(struct wq_proc_pool *p);

/*
 * wq_proc_pool_free stops the pool: pending tasks are ABANDONED, each
 * program's stdin is closed once it holds no task, and what has not
 * exited kill_grace later gets SIGKILL (its process group); then the
 * thread is joined.  No run may be in progress.  NULL is allowed.
 */
void wq_proc_pool_free(struct wq_proc_pool *p);

/* ---- the registry (handlers.c) --------------------------------------- */

/* One configured handler. */
struct wq_handler {
    const char *type;           /* borrowed from the config */
    const char *queue;          /* "" any */
    enum wq_handler_kind kind;
    int64_t timeout_ms;         /* 0: none */
    struct wq_builtin *builtin;
    struct wq_exec_conf exec;
    struct wq_plugin *plugin;
    struct wq_httph_conf http;
    struct wq_proc_pool *proc;  /* kind process, once started */
    size_t processes, max_in_flight;
    const struct wq_config_handler *conf;
};

typedef struct wq_handlers wq_handlers;

/*
 * wq_handlers_new builds the registry from cfg->handlers, plus the
 * built-ins noop, echo, ack, sleep and fail when cfg->worker.builtin_handlers
 * is set.  Checks each group (exec needs an absolute argv[0] that is an
 * executable file, plugin needs a loadable .so, builtin a known name)
 * and loads the plugins.  Returns 0 with *out owned by the caller, or
 * WQ_ECONFIG with err holding one line per problem ("FILE:LINE:
 * handlers[2]: ...").  `cfg` must outlive the registry.
 */
int wq_handlers_new(const struct wq_config *cfg, wq_handlers **out,
    char *err, size_t errlen);

/*
 * wq_handlers_find returns the handler of a task: exact queue and type,
 * then type with queue "", then type "*" for the queue, then type "*"
 * with queue "", then a built-in of that name; NULL if none.  Pure
 * lookup, thread-safe.
 */
const struct wq_handler *wq_handlers_find(const wq_handlers *h,
    const char *queue, const char *type);

/*
 * wq_handlers_run runs the task with handler h on the calling thread,
 * enforcing h's timeout for kinds that cannot be stopped (the outcome
 * becomes TIMEOUT when a built-in or plugin returns after it).
 */
void wq_handlers_run(const struct wq_handler *h,
    const struct wq_handler_ctx *ctx, struct wq_handler_result *res);

/*
 * wq_handlers_start starts the programs of every process handler (a
 * supervisor thread each), registering their metrics in reg (may be
 * NULL): workq_worker_process_restarts_total, workq_worker_process_up
 * and workq_worker_process_crashloop, labelled by type.  Call once,
 * before tasks run and before reg is served.  Returns 0, or WQ_EIO with
 * err set.
 */
int wq_handlers_start(wq_handlers *h, wq_metrics *reg, const char *worker_id,
    char *err, size_t errlen);

/* Corks (on = 1) or uncorks (0) every process handler's pool
 * (wq_proc_pool_cork): around a round of starts.  NULL is allowed. */
void wq_handlers_cork(const wq_handlers *h, int on);

/* Why the handlers make the worker unhealthy (a crash-looping process
 * handler), or NULL.  Thread-safe. */
const char *wq_handlers_unhealthy(void *h);

/* Stops the process handlers (wq_proc_pool_free), unloads plugins and
 * frees the registry.  NULL is allowed. */
void wq_handlers_free(wq_handlers *h);

#endif
