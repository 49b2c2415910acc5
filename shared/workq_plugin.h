/*
 * workq_plugin.h - the C ABI of workq handler plugins: a shared object
 * that workq-worker loads with dlopen() and calls in-process, on its
 * handler threads, for the task types configured as
 *
 *     handlers = ( { type = "geo"; kind = "plugin";
 *                    plugin = "/usr/lib/workq/geo.so";
 *                    options = "db=/var/lib/geo"; } );
 *
 * This header is the whole contract and stands alone (C99, no other workq
 * header), so that a plugin builds against it and nothing else:
 *
 *     cc -shared -fPIC -o geo.so geo.c
 *
 * The plugin exports one function, workq_plugin_entry (WORKQ_PLUGIN_ENTRY),
 * returning a pointer to a static struct workq_plugin whose abi_version is
 * the WORKQ_PLUGIN_ABI_VERSION it was built with.  The worker refuses a
 * plugin of any other version at start-up, with a message naming both.
 * A new version is made only when something here changes incompatibly;
 * fields added at the end of the task and host structs keep the version
 * (their struct_size tells what is there).
 *
 * Life of a plugin in a worker:
 *   1. dlopen(RTLD_NOW | RTLD_LOCAL), entry(), the version check;
 *   2. init(&state, options, host, err, errlen) once: 0 or a refusal
 *      (the worker then does not start);
 *   3. run(state, task, out) for each task, on any handler thread: at once
 *      on several threads if flags has WORKQ_PLUGIN_THREAD_SAFE, else one
 *      at a time (the worker holds a lock around run);
 *   4. fini(state) once at shutdown, after the last run returned; then
 *      dlclose().
 *
 * Results travel without crossing allocators: run() appends result bytes
 * with host->write() and describes a failure with host->error(); both
 * copy.  A result longer than the handler's max_output is cut there, and
 * write() returns -1 from then on (the plugin may stop producing).
 * Everything the worker passes to run() is valid only during that call.
 *
 * A run that takes too long cannot be stopped from outside (it shares the
 * worker's address space): honour task->deadline_ms, and return
 * WORKQ_PLUGIN_RETRY when it is past; poll host->cancelled() for an
 * operator's cancel.  A plugin that crashes takes the
 * worker with it; its task is retried when its lease expires, and after
 * max_attempts it is dead-lettered without running again.
 */
#ifndef WORKQ_PLUGIN_H
#define WORKQ_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WORKQ_PLUGIN_ABI_VERSION 1

/* The name of the function a plugin exports. */
#define WORKQ_PLUGIN_ENTRY "workq_plugin_entry"

/* What run() returns. */
enum workq_plugin_status {
    WORKQ_PLUGIN_OK = 0,        /* success: the written bytes are the result */
    WORKQ_PLUGIN_RETRY = 1,     /* failed; retried after the queue's backoff */
    WORKQ_PLUGIN_PERMANENT = 2, /* failed for good: dead, no retry */
};

/* struct workq_plugin.flags */
#define WORKQ_PLUGIN_THREAD_SAFE 0x1u   /* run() may run on many threads */

struct workq_plugin_header {
    const char *name;
    const char *value;
};

/* The task a run() is for.  Strings are NUL-terminated UTF-8. */
struct workq_plugin_task {
    size_t struct_size;         /* sizeof(struct workq_plugin_task) */
    const char *id;             /* the task id, "0190a5f8-7c1e-7a3b-..." */
    const char *queue;
    const char *type;
    const char *key;            /* idempotency key */
    uint32_t attempt;           /* 1 for the first run */
    uint32_t max_attempts;
    const void *payload;        /* payload_len bytes, then a NUL byte */
    size_t payload_len;
    const struct workq_plugin_header *headers;
    size_t nheaders;
    int64_t deadline_ms;        /* epoch ms at which it times out; 0: none */
    const char *worker_id;
    /* Since workq 0.10 (check struct_size): the task's W3C traceparent
     * (also among the headers) when it has a well-formed one, else NULL. */
    const char *traceparent;
};

/* The worker's side of one run(); opaque to the plugin. */
struct workq_plugin_output;

/* What the worker offers a plugin; given to init(), valid until fini(). */
struct workq_plugin_host {
    size_t struct_size;         /* sizeof(struct workq_plugin_host) */
    /* Appends len bytes to the result; 0, or -1 once over max_output. */
    int (*write)(struct workq_plugin_output *out, const void *data,
        size_t len);
    /* Sets the error text of a failed run (copied; the last one wins). */
    void (*error)(struct workq_plugin_output *out, const char *msg);
    /* Writes msg to the worker's log; level 0 debug, 1 info, 2 warn,
     * 3 error. */
    void (*log)(int level, const char *msg);
    /*
     * Since workq 0.10 (check struct_size >= offsetof(struct
     * workq_plugin_host, cancelled) + sizeof(void *)):
     *
     * progress() reports how far the run is: percent 0..100 and a short
     * message (may be NULL; copied, cut at 200 bytes).  Cheap and never
     * blocking: call it as often as you like; `workq status`, the HTTP
     * API and the dashboard show the latest (written at most once a
     * second).
     *
     * cancelled() returns 1 once an operator cancelled the task (`workq
     * cancel`) or the worker gives up on its running tasks (a stop past
     * worker.drain_timeout), else 0.  Poll it in long loops and return
     * soon after it says 1 (any status: a run that was cancelled and
     * does not return WORKQ_PLUGIN_OK is recorded as cancelled).
     */
    void (*progress)(struct workq_plugin_output *out, int percent,
        const char *message);
    int (*cancelled)(struct workq_plugin_output *out);
};

struct workq_plugin {
    uint32_t abi_version;       /* WORKQ_PLUGIN_ABI_VERSION */
    uint32_t flags;             /* WORKQ_PLUGIN_THREAD_SAFE or 0 */
    const char *name;           /* for the log */
    /*
     * Called once before any run.  *state (initially NULL) is passed to
     * run() and fini().  `options` is the handler's options string ("" if
     * none).  Returns 0, or non-zero with a reason in err (errlen bytes)
     * to refuse; the worker then exits with that reason.  May be NULL.
     */
    int (*init)(void **state, const char *options,
        const struct workq_plugin_host *host, char *err, size_t errlen);
    /* Runs one task; returns an enum workq_plugin_status.  Required. */
    int (*run)(void *state, const struct workq_plugin_task *task,
        struct workq_plugin_output *out);
    /* Called once at shutdown after the last run().  May be NULL. */
    void (*fini)(void *state);
};

/* The type of the exported workq_plugin_entry function. */
typedef const struct workq_plugin *workq_plugin_entry_fn(void);

#ifdef __cplusplus
}
#endif

#endif
