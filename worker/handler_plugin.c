/*
 * handler_plugin.c - the plugin handler: a shared object with the C ABI
 * of shared/workq_plugin.h, loaded once and run in-process on the
 * handler threads (see handler.h).
 *
 * This file owns the dlopen handle, the plugin's state and, for plugins
 * that are not WORKQ_PLUGIN_THREAD_SAFE, the lock that serializes their
 * run().  It gives the plugin a host table whose write() and error()
 * copy into the worker's own result, so no memory crosses between the
 * plugin's allocator and ours.
 *
 * RTLD_LOCAL keeps the plugin's symbols out of the global namespace (two
 * plugins may define the same names); RTLD_NOW resolves everything at
 * start-up, so a missing symbol stops the worker there and not in the
 * middle of a task (dlopen(3)).  RTLD_DEEPBIND is not used: it breaks
 * sanitizer interposition and a plugin linking its own libc symbols is
 * the rarer problem.
 */
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "handler.h"
#include "log.h"
#include "trace.h"
#include "workq_plugin.h"

#define COMPONENT "plugin"

struct wq_plugin {
    void *dl;
    char *path;
    const struct workq_plugin *abi;
    void *state;
    int inited;
    int serial;                 /* not thread-safe: lock around run */
    pthread_mutex_t lock;
    size_t max_output;
};

/* The output of one run, behind the plugin's opaque pointer. */
struct workq_plugin_output {
    const struct wq_handler_ctx *ctx;
    struct wq_handler_result *res;
    size_t max_output;
    size_t total;
    char *error;
};

static int
host_write(struct workq_plugin_output *out, const void *data, size_t len)
{
    struct wq_buf *b = &out->res->result;
    size_t room = b->len < out->max_output ? out->max_output - b->len : 0;
    size_t take = len < room ? len : room;

    out->total += len;
    if (take > 0 && wq_buf_append(b, data, take) != 0)
        abort();    /* out of memory, as xmalloc would */
    return take == len ? 0 : -1;
}

static void
host_error(struct workq_plugin_output *out, const char *msg)
{
    free(out->error);
    out->error = msg != NULL ? wq_handler_text_sanitize(msg, strlen(msg),
        4096) : NULL;
}

static void
host_log(int level, const char *msg)
{
    static const enum wq_log_level lv[] = {
        WQ_LOG_DEBUG, WQ_LOG_INFO, WQ_LOG_WARN, WQ_LOG_ERROR,
    };

    if (level < 0)
        level = 0;
    if (level > 3)
        level = 3;
    if (wq_log_enabled(lv[level]))
        wq_log(lv[level], COMPONENT, "%s", msg != NULL ? msg : "");
}

/* Progress of the run's task (progress.h through the handler context). */
static void
host_progress(struct workq_plugin_output *out, int percent,
    const char *message)
{
    if (out->ctx->progress != NULL)
        out->ctx->progress(out->ctx->progress_user, percent, message);
}

/* 1 once an operator cancelled the task or the worker gives up on its
 * running tasks (the drain deadline); cheap enough to poll in a loop. */
static int
host_cancelled(struct workq_plugin_output *out)
{
    const struct wq_handler_ctx *ctx = out->ctx;
    struct pollfd pfd = { ctx->cancel_fd, POLLIN, 0 };

    if (ctx->cancelled != NULL && atomic_load(ctx->cancelled))
        return 1;
    return ctx->cancel_fd >= 0 && poll(&pfd, 1, 0) == 1;
}

static const struct workq_plugin_host host = {
    sizeof(struct workq_plugin_host), host_write, host_error, host_log,
    host_progress, host_cancelled,
};

int
wq_handler_plugin_load(const char *path, const char *options,
    size_t max_output, struct wq_plugin **out, char *err, size_t errlen)
{
    workq_plugin_entry_fn *entry;
    struct wq_plugin *p;
    char msg[WQ_ERRLEN];
    const char *e;
    int rc;

    *out = NULL;
    p = xcalloc(1, sizeof *p);
    p->path = xstrdup(path);
    p->max_output = max_output;
    pthread_mutex_init(&p->lock, NULL);
    if ((p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        e = dlerror();
        rc = wq_seterr(err, errlen, WQ_ECONFIG, "plugin %s: %s", path,
            e != NULL ? e : "cannot load");
        goto fail;
    }
    dlerror();
    /* POSIX: a void * from dlsym converts to a function pointer */
    *(void **)(&entry) = dlsym(p->dl, WORKQ_PLUGIN_ENTRY);
    if (entry == NULL) {
        rc = wq_seterr(err, errlen, WQ_ECONFIG, "plugin %s: no %s() (is it "
            "a workq plugin?)", path, WORKQ_PLUGIN_ENTRY);
        goto fail;
    }
    if ((p->abi = entry()) == NULL) {
        rc = wq_seterr(err, errlen, WQ_ECONFIG, "plugin %s: %s() returned "
            "NULL", path, WORKQ_PLUGIN_ENTRY);
        goto fail;
    }
    if (p->abi->abi_version != WORKQ_PLUGIN_ABI_VERSION) {
        rc = wq_seterr(err, errlen, WQ_ECONFIG, "plugin %s: ABI version %u, "
            "but this worker speaks version %d (rebuild it against this "
            "workq_plugin.h)", path, (unsigned)p->abi->abi_version,
            WORKQ_PLUGIN_ABI_VERSION);
        goto fail;
    }
    if (p->abi->run == NULL) {
        rc = wq_seterr(err, errlen, WQ_ECONFIG, "plugin %s: no run function",
            path);
        goto fail;
    }
    p->serial = !(p->abi->flags & WORKQ_PLUGIN_THREAD_SAFE);
    if (p->abi->init != NULL) {
        msg[0] = '\0';
        if (p->abi->init(&p->state, options != NULL ? options : "", &host,
            msg, sizeof msg) != 0) {
            msg[sizeof msg - 1] = '\0';
            rc = wq_seterr(err, errlen, WQ_ECONFIG, "plugin %s: init "
                "refused: %s", path, msg[0] != '\0' ? msg : "no reason given");
            goto fail;
        }
    }
    p->inited = 1;
    wq_log_info(COMPONENT, "loaded %s (%s, ABI %u%s)", path,
        p->abi->name != NULL ? p->abi->name : "unnamed",
        (unsigned)p->abi->abi_version, p->serial ? ", one run at a time"
        : "");
    *out = p;
    return 0;

fail:
    wq_handler_plugin_unload(p);
    return rc;
}

void
wq_handler_plugin_run(struct wq_plugin *p, const struct wq_handler_ctx *ctx,
    struct wq_handler_result *res)
{
    struct workq_plugin_header *hdrs = NULL;
    struct workq_plugin_output out;
    struct workq_plugin_task task;
    int status;

    memset(&task, 0, sizeof task);
    task.struct_size = sizeof task;
    task.id = ctx->task_id;
    task.queue = ctx->env->queue;
    task.type = ctx->env->type;
    task.key = ctx->env->key;
    task.attempt = ctx->attempt;
    task.max_attempts = ctx->max_attempts;
    task.payload = ctx->env->payload != NULL ? (const void *)ctx->env->payload
        : (const void *)"";
    task.payload_len = ctx->env->payload_len;
    if (ctx->env->nheaders > 0) {
        hdrs = xcalloc(ctx->env->nheaders, sizeof *hdrs);
        for (size_t i = 0; i < ctx->env->nheaders; i++) {
            hdrs[i].name = ctx->env->headers[i].name;
            hdrs[i].value = ctx->env->headers[i].value;
        }
    }
    task.headers = hdrs;
    task.nheaders = ctx->env->nheaders;
    task.deadline_ms = ctx->deadline_ms;
    task.worker_id = ctx->worker_id;
    task.traceparent = wq_trace_parent(ctx->env);

    memset(&out, 0, sizeof out);
    out.ctx = ctx;
    out.res = res;
    out.max_output = p->max_output;
    if (p->serial)
        pthread_mutex_lock(&p->lock);
    status = p->abi->run(p->state, &task, &out);
    if (p->serial)
        pthread_mutex_unlock(&p->lock);
    free(hdrs);

    /* a run that gave up because it saw the cancel (host->cancelled) */
    if (status != WORKQ_PLUGIN_OK && ctx->cancelled != NULL
        && atomic_load(ctx->cancelled)) {
        wq_handler_result_fail(res, WQ_OUTCOME_CANCELLED, "cancelled by an "
            "operator%s%s", out.error != NULL ? ": " : "",
            out.error != NULL ? out.error : "");
        free(out.error);
        return;
    }
    switch (status) {
    case WORKQ_PLUGIN_OK:
        res->outcome = WQ_OUTCOME_SUCCEEDED;
        if (out.total > res->result.len)
            res->note = xasprintf("result cut at %zu of %zu bytes",
                res->result.len, out.total);
        break;
    case WORKQ_PLUGIN_PERMANENT:
        wq_handler_result_fail(res, WQ_OUTCOME_PERMANENT, "%s",
            out.error != NULL ? out.error : "plugin: permanent failure");
        break;
    case WORKQ_PLUGIN_RETRY:
        wq_handler_result_fail(res, WQ_OUTCOME_FAILED, "%s",
            out.error != NULL ? out.error : "plugin: failed");
        break;
    default:
        wq_handler_result_fail(res, WQ_OUTCOME_FAILED, "plugin returned "
            "unknown status %d%s%s", status, out.error != NULL ? ": " : "",
            out.error != NULL ? out.error : "");
        break;
    }
    free(out.error);
}

void
wq_handler_plugin_unload(struct wq_plugin *p)
{
    if (p == NULL)
        return;
    if (p->inited && p->abi->fini != NULL)
        p->abi->fini(p->state);
    if (p->dl != NULL)
        dlclose(p->dl);
    pthread_mutex_destroy(&p->lock);
    free(p->path);
    free(p);
}
