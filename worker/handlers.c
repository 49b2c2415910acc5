/*
 * handlers.c - the registry of handlers (type and queue -> the code that
 * runs it) built from the `handlers` configuration, and what all handler
 * kinds share: outcome names, results, and making program output safe
 * for a PostgreSQL text column (see handler.h).
 *
 * The registry owns the built-in settings, the loaded plugins and the
 * process handlers' pools (started by wq_handlers_start); the strings it
 * points to stay the configuration's.  It is built once at start-up and
 * read-only afterwards, so lookups need no lock.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "handler.h"
#include "log.h"

#define COMPONENT "handlers"

static const char *const builtin_names[] = { "noop", "echo", "sleep", "fail",
    "ack" };
#define NBUILTIN WQ_ARRAY_LEN(builtin_names)

struct wq_handlers {
    struct wq_handler *v;       /* configured, in configuration order */
    size_t n;
    struct wq_handler builtins[NBUILTIN];
    int have_builtins;
};

/* ---- shared by the kinds ------------------------------------------------ */

const char *
wq_outcome_name(enum wq_outcome o)
{
    switch (o) {
    case WQ_OUTCOME_SUCCEEDED: return "succeeded";
    case WQ_OUTCOME_FAILED:    return "failed";
    case WQ_OUTCOME_PERMANENT: return "permanent_failure";
    case WQ_OUTCOME_TIMEOUT:   return "timeout";
    case WQ_OUTCOME_CANCELLED: return "cancelled";
    case WQ_OUTCOME_ABANDONED: return NULL;
    }
    return NULL;
}

void
wq_handler_result_free(struct wq_handler_result *r)
{
    wq_buf_free(&r->result);
    free(r->error);
    free(r->note);
    memset(r, 0, sizeof *r);
}

void
wq_handler_result_fail(struct wq_handler_result *r, enum wq_outcome o,
    const char *fmt, ...)
{
    char buf[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(r->error);
    r->error = wq_handler_text_sanitize(buf, strlen(buf), sizeof buf);
    r->outcome = o;
}

/* Length of the valid UTF-8 sequence at p (RFC 3629), 0 if invalid. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t cp;

    if (p[0] < 0x80)
        return p[0] != 0;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
        || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* Bytes the sanitized form of p[0..n) takes. */
static size_t
sanitized_len(const unsigned char *p, size_t n)
{
    size_t o = 0, i = 0;

    while (i < n) {
        size_t len = utf8_len(p + i, n - i);

        o += len > 0 ? len : 4;
        i += len > 0 ? len : 1;
    }
    return o;
}

char *
wq_handler_text_sanitize(const void *data, size_t n, size_t max)
{
    const unsigned char *p = data;
    size_t o = 0, i = 0, room;
    char *out;
    int cut;

    if (max < 8)
        max = 8;
    cut = sanitized_len(p, n) > max;
    room = cut ? max - 3 : max;
    out = xmalloc(max + 1);
    while (i < n) {
        size_t len = utf8_len(p + i, n - i);

        if (o + (len > 0 ? len : 4) > room)
            break;
        if (len > 0) {
            memcpy(out + o, p + i, len);
            o += len;
            i += len;
        } else {
            snprintf(out + o, 5, "\\x%02x", p[i]);
            o += 4;
            i++;
        }
    }
    if (cut) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* ---- the registry ------------------------------------------------------- */

struct errlines {
    char *buf;
    size_t len;
    size_t cap;
    int n;
};

static void WQ_PRINTFLIKE(2, 3)
err_add(struct errlines *e, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    size_t l;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    l = strlen(line);
    if (e->len + l + 2 > e->cap) {
        e->cap = (e->len + l + 2) * 2;
        e->buf = xreallocarray(e->buf, e->cap, 1);
    }
    if (e->len > 0)
        e->buf[e->len++] = '\n';
    memcpy(e->buf + e->len, line, l + 1);
    e->len += l;
    e->n++;
}

/* True if any exec resource limit of c is set to other than its default
 * (they apply to exec only). */
static int
has_limits(const struct wq_config_handler *c)
{
    return c->limit_memory != WQ_EXEC_LIMIT_MEMORY
        || c->limit_cpu_ms != WQ_EXEC_LIMIT_CPU_MS
        || c->limit_files != WQ_EXEC_LIMIT_FILES
        || c->limit_processes != WQ_EXEC_LIMIT_PROCESSES
        || c->limit_file_size != 0 || c->core_dumps;
}

/*
 * Warns when a limit is above the worker's own hard limit: only a worker
 * that may raise it (CAP_SYS_RESOURCE) can set it, so without that every
 * task of the handler fails to start, saying so.
 */
static void
warn_above_hard(const struct wq_config_handler *c, size_t idx,
    const char *key, int resource, uint64_t v)
{
    struct rlimit rl;

    if (v != 0 && getrlimit(resource, &rl) == 0 && rl.rlim_max
        != RLIM_INFINITY && v > (uint64_t)rl.rlim_max)
        wq_log_warn(COMPONENT, "%s: handlers[%zu].%s: %llu is above the "
            "worker's hard limit of %llu; without CAP_SYS_RESOURCE its "
            "tasks cannot start", c->where, idx, key, (unsigned long long)v,
            (unsigned long long)rl.rlim_max);
}

/*
 * 1 if url may be an http handler's: https, or plain http to a loopback
 * address only (a task and its signature in clear text stay on the
 * machine).
 */
static int
url_ok(const char *url)
{
    static const char *const local[] = { "http://127.", "http://[::1]",
        "http://localhost:", "http://localhost/" };

    if (strncmp(url, "https://", 8) == 0 && url[8] != '\0')
        return 1;
    for (size_t i = 0; i < WQ_ARRAY_LEN(local); i++)
        if (strncmp(url, local[i], strlen(local[i])) == 0)
            return 1;
    return 0;
}

/* Sets up one configured handler; problems go to e. */
static void
handler_init(struct wq_handler *h, const struct wq_config_handler *c,
    size_t idx, struct errlines *e)
{
    char err[WQ_ERRLEN];
    const char *name;

    h->conf = c;
    h->type = c->type;
    h->queue = c->queue;
    h->kind = (enum wq_handler_kind)c->kind;
    h->timeout_ms = c->timeout_ms;
    if (c->queue[0] != '\0' && wq_queue_name_valid(c->queue, err,
        sizeof err) != 0)
        err_add(e, "%s: handlers[%zu].queue: %s", c->where, idx, err);
    if (h->kind != WQ_HANDLER_EXEC && h->kind != WQ_HANDLER_PROCESS
        && has_limits(c))
        err_add(e, "%s: handlers[%zu]: limit_* and core_dumps apply to kinds "
            "exec and process only (a %s runs inside the worker)", c->where,
            idx, h->kind == WQ_HANDLER_PLUGIN ? "plugin" : h->kind
            == WQ_HANDLER_HTTP ? "http handler" : "builtin");
    if (h->kind != WQ_HANDLER_EXEC && h->kind != WQ_HANDLER_PROCESS
        && c->workdir[0] != '\0')
        err_add(e, "%s: handlers[%zu].workdir: applies to kinds exec and "
            "process only", c->where, idx);
    if (c->workdir[0] != '\0' && c->workdir[0] != '/')
        err_add(e, "%s: handlers[%zu].workdir: \"%s\" is not an absolute "
            "path", c->where, idx, c->workdir);
    switch (h->kind) {
    case WQ_HANDLER_BUILTIN:
        name = c->builtin[0] != '\0' ? c->builtin : c->type;
        if (c->argv.n > 0 || c->plugin[0] != '\0' || c->env.n > 0)
            err_add(e, "%s: handlers[%zu]: argv, env and plugin do not "
                "apply to kind builtin", c->where, idx);
        if (wq_handler_builtin_new(name, c->options, (size_t)c->max_output,
            &h->builtin, err, sizeof err) != 0)
            err_add(e, "%s: handlers[%zu]: %s%s", c->where, idx, err,
                strcmp(name, "*") == 0 ? " (type \"*\" needs builtin = "
                "\"...\")" : "");
        break;
    case WQ_HANDLER_EXEC:
    case WQ_HANDLER_PROCESS:
        if (c->argv.n == 0) {
            err_add(e, "%s: handlers[%zu].argv: kind %s needs a program",
                c->where, idx, h->kind == WQ_HANDLER_EXEC ? "exec"
                : "process");
            break;
        }
        if (c->argv.v[0][0] != '/')
            err_add(e, "%s: handlers[%zu].argv: \"%s\" is not an absolute "
                "path (no PATH search, no shell)", c->where, idx,
                c->argv.v[0]);
        else if (access(c->argv.v[0], X_OK) != 0)
            err_add(e, "%s: handlers[%zu].argv: %s is not an executable "
                "file", c->where, idx, c->argv.v[0]);
        for (size_t i = 0; i < c->env.n; i++) {
            const char *eq = strchr(c->env.v[i], '=');

            if (eq == NULL || eq == c->env.v[i])
                err_add(e, "%s: handlers[%zu].env: \"%s\" is not "
                    "NAME=value", c->where, idx, c->env.v[i]);
        }
        if (c->plugin[0] != '\0' || c->options[0] != '\0'
            || c->builtin[0] != '\0')
            err_add(e, "%s: handlers[%zu]: plugin, options and builtin do "
                "not apply to kind %s", c->where, idx, h->kind
                == WQ_HANDLER_EXEC ? "exec" : "process");
        if (h->kind == WQ_HANDLER_PROCESS && c->permanent_exit_codes.n != 1)
            err_add(e, "%s: handlers[%zu].permanent_exit_codes: kind process "
                "answers with frames, not exit codes", c->where, idx);
        h->exec.argv = c->argv.v;
        h->exec.env = c->env.n > 0 ? c->env.v : NULL;
        h->exec.timeout_ms = c->timeout_ms;
        h->exec.kill_grace_ms = c->kill_grace_ms;
        h->exec.permanent = c->permanent_exit_codes.v;
        h->exec.npermanent = c->permanent_exit_codes.n;
        h->exec.max_output = (size_t)c->max_output;
        h->exec.max_stderr = (size_t)c->max_stderr;
        h->exec.limit_as = (uint64_t)c->limit_memory;
        h->exec.limit_cpu_s = (uint64_t)(c->limit_cpu_ms + 999) / 1000;
        h->exec.limit_nofile = (uint64_t)c->limit_files;
        h->exec.limit_nproc = (uint64_t)c->limit_processes;
        h->exec.limit_fsize = (uint64_t)c->limit_file_size;
        h->exec.core_dumps = c->core_dumps;
        h->exec.umask = (unsigned)c->umask;
        h->exec.workdir = c->workdir;
        /* a long-lived program's CPU time is its whole life: the exec
         * default (per task) would kill it every 5 minutes of work */
        if (h->kind == WQ_HANDLER_PROCESS
            && c->limit_cpu_ms == WQ_EXEC_LIMIT_CPU_MS)
            h->exec.limit_cpu_s = 0;
        h->processes = (size_t)c->processes;
        h->max_in_flight = (size_t)c->max_in_flight;
        warn_above_hard(c, idx, "limit_memory", RLIMIT_AS,
            h->exec.limit_as);
        warn_above_hard(c, idx, "limit_cpu", RLIMIT_CPU,
            h->exec.limit_cpu_s);
        warn_above_hard(c, idx, "limit_files", RLIMIT_NOFILE,
            h->exec.limit_nofile);
        warn_above_hard(c, idx, "limit_processes", RLIMIT_NPROC,
            h->exec.limit_nproc);
        warn_above_hard(c, idx, "limit_file_size", RLIMIT_FSIZE,
            h->exec.limit_fsize);
        break;
    case WQ_HANDLER_PLUGIN:
        if (c->plugin[0] == '\0') {
            err_add(e, "%s: handlers[%zu].plugin: kind plugin needs the "
                "path of a shared object", c->where, idx);
            break;
        }
        if (c->argv.n > 0 || c->env.n > 0 || c->builtin[0] != '\0')
            err_add(e, "%s: handlers[%zu]: argv, env and builtin do not "
                "apply to kind plugin", c->where, idx);
        if (wq_handler_plugin_load(c->plugin, c->options,
            (size_t)c->max_output, &h->plugin, err, sizeof err) != 0)
            err_add(e, "%s: handlers[%zu].plugin: %s", c->where, idx, err);
        break;
    case WQ_HANDLER_HTTP:
        if (c->argv.n > 0 || c->env.n > 0 || c->builtin[0] != '\0'
            || c->plugin[0] != '\0' || c->options[0] != '\0')
            err_add(e, "%s: handlers[%zu]: argv, env, builtin, plugin and "
                "options do not apply to kind http", c->where, idx);
        if (!url_ok(c->url))
            err_add(e, "%s: handlers[%zu].url: kind http needs an https:// "
                "URL (http:// only to 127.0.0.1, [::1] or localhost), not "
                "\"%s\"", c->where, idx, c->url);
        if (c->tls_ca[0] != '\0' && access(c->tls_ca, R_OK) != 0)
            err_add(e, "%s: handlers[%zu].tls_ca: cannot read %s",
                c->where, idx, c->tls_ca);
        h->http.url = c->url;
        h->http.secret = c->secret;
        h->http.tls_ca = c->tls_ca;
        h->http.follow_redirects = c->follow_redirects;
        h->http.max_output = (size_t)c->max_output;
        break;
    }
    if (h->kind != WQ_HANDLER_HTTP && (c->url[0] != '\0'
        || c->secret[0] != '\0' || c->tls_ca[0] != '\0'
        || c->follow_redirects))
        err_add(e, "%s: handlers[%zu]: url, secret, tls_ca and "
            "follow_redirects apply to kind http only", c->where, idx);
}

int
wq_handlers_new(const struct wq_config *cfg, wq_handlers **out, char *err,
    size_t errlen)
{
    const struct wq_config_handler *c = cfg->handlers.v;
    struct errlines e = { NULL, 0, 0, 0 };
    struct wq_handlers *h = xcalloc(1, sizeof *h);
    char msg[WQ_ERRLEN];

    *out = NULL;
    for (size_t i = 0; i < cfg->handlers.n; i++)
        if (c[i].kind == WQ_HANDLER_HTTP) {
            if (wq_handler_http_global_init(msg, sizeof msg) != 0) {
                free(h);
                return wq_seterr(err, errlen, WQ_ECONFIG, "%s", msg);
            }
            break;
        }
    h->n = cfg->handlers.n;
    h->v = h->n > 0 ? xcalloc(h->n, sizeof *h->v) : NULL;
    for (size_t i = 0; i < h->n; i++) {
        handler_init(&h->v[i], &c[i], i + 1, &e);
        for (size_t j = 0; j < i; j++)
            if (strcmp(c[i].type, c[j].type) == 0
                && strcmp(c[i].queue, c[j].queue) == 0)
                err_add(&e, "%s: handlers[%zu]: type \"%s\"%s%s%s is "
                    "handled already by handlers[%zu] (%s)", c[i].where,
                    i + 1, c[i].type, c[i].queue[0] ? " of queue \"" : "",
                    c[i].queue, c[i].queue[0] ? "\"" : "", j + 1, c[j].where);
    }
    if (cfg->worker.builtin_handlers) {
        h->have_builtins = 1;
        for (size_t i = 0; i < NBUILTIN; i++) {
            struct wq_handler *b = &h->builtins[i];

            b->type = builtin_names[i];
            b->queue = "";
            b->kind = WQ_HANDLER_BUILTIN;
            /* echo may return the largest payload whole */
            if (wq_handler_builtin_new(builtin_names[i], "", WQ_PAYLOAD_MAX,
                &b->builtin, msg, sizeof msg) != 0)
                err_add(&e, "builtin %s: %s", builtin_names[i], msg);
        }
    }
    if (e.n > 0) {
        wq_seterr(err, errlen, WQ_ECONFIG, "%s", e.buf);
        free(e.buf);
        wq_handlers_free(h);
        return WQ_ECONFIG;
    }
    free(e.buf);
    *out = h;
    return 0;
}

static const struct wq_handler *
find_exact(const wq_handlers *h, const char *queue, const char *type)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->v[i].type, type) == 0
            && strcmp(h->v[i].queue, queue) == 0)
            return &h->v[i];
    return NULL;
}

const struct wq_handler *
wq_handlers_find(const wq_handlers *h, const char *queue, const char *type)
{
    const struct wq_handler *x;

    if ((x = find_exact(h, queue, type)) != NULL
        || (x = find_exact(h, "", type)) != NULL
        || (x = find_exact(h, queue, "*")) != NULL
        || (x = find_exact(h, "", "*")) != NULL)
        return x;
    if (h->have_builtins)
        for (size_t i = 0; i < NBUILTIN; i++)
            if (strcmp(builtin_names[i], type) == 0)
                return &h->builtins[i];
    return NULL;
}

void
wq_handlers_run(const struct wq_handler *h, const struct wq_handler_ctx *ctx,
    struct wq_handler_result *res)
{
    uint64_t start = wq_clock_mono_ns();

    switch (h->kind) {
    case WQ_HANDLER_BUILTIN:
        wq_handler_builtin_run(h->builtin, ctx, res);
        break;
    case WQ_HANDLER_EXEC:
        wq_handler_exec_run(&h->exec, ctx, res);
        return;     /* it kills at its own timeout */
    case WQ_HANDLER_PLUGIN:
        wq_handler_plugin_run(h->plugin, ctx, res);
        break;
    case WQ_HANDLER_HTTP:
        wq_handler_http_run(&h->http, ctx, res);
        return;     /* libcurl stops at the deadline */
    case WQ_HANDLER_PROCESS:
        if (h->proc == NULL)
            wq_handler_result_fail(res, WQ_OUTCOME_FAILED, "%s: the handler "
                "processes were not started", h->type);
        else
            wq_handler_process_run(h->proc, ctx, res);
        return;     /* it kills at the deadline itself */
    }
    /* A built-in or plugin cannot be stopped; one that returns after its
     * timeout has still overrun it. */
    if (h->timeout_ms > 0 && res->outcome != WQ_OUTCOME_ABANDONED
        && res->outcome != WQ_OUTCOME_TIMEOUT
        && res->outcome != WQ_OUTCOME_CANCELLED
        && wq_clock_mono_ns() - start > (uint64_t)h->timeout_ms * 1000000u)
        wq_handler_result_fail(res, WQ_OUTCOME_TIMEOUT, "%s: ran longer "
            "than its timeout of %lld ms", h->type, (long long)h->timeout_ms);
}

/* A label value for type t: as it is, unless it needs escaping. */
static const char *
label_type(const char *t, size_t idx, char *buf, size_t len)
{
    if (strpbrk(t, "\"\\\n") == NULL)
        return t;
    snprintf(buf, len, "handlers[%zu]", idx);
    return buf;
}

int
wq_handlers_start(wq_handlers *h, wq_metrics *reg, const char *worker_id,
    char *err, size_t errlen)
{
    for (size_t i = 0; i < h->n; i++) {
        struct wq_handler *x = &h->v[i];
        struct wq_proc_conf pc;
        char lb[64], *labels;
        int rc;

        if (x->kind != WQ_HANDLER_PROCESS || x->proc != NULL)
            continue;
        memset(&pc, 0, sizeof pc);
        pc.type = x->type;
        pc.exec = x->exec;
        pc.processes = x->processes > 0 ? x->processes : 1;
        pc.max_in_flight = x->max_in_flight > 0 ? x->max_in_flight : 1;
        pc.worker_id = worker_id;
        if (reg != NULL) {
            labels = xasprintf("type=\"%s\"", label_type(x->type, i + 1, lb,
                sizeof lb));
            pc.m_restarts = wq_metrics_counter(reg,
                "workq_worker_process_restarts_total",
                "Handler processes restarted (exit, protocol error, missed "
                "deadline).", labels);
            pc.m_up = wq_metrics_gauge(reg, "workq_worker_process_up",
                "Handler processes running and past their hello.", labels);
            pc.m_crashloop = wq_metrics_gauge(reg,
                "workq_worker_process_crashloop",
                "1 while a process handler is crash-looping.", labels);
            free(labels);
        }
        if ((rc = wq_proc_pool_new(&pc, &x->proc, err, errlen)) != 0)
            return rc;
    }
    return 0;
}

const char *
wq_handlers_unhealthy(void *arg)
{
    wq_handlers *h = arg;
    const char *why;

    for (size_t i = 0; h != NULL && i < h->n; i++)
        if ((why = wq_proc_pool_unhealthy(h->v[i].proc)) != NULL)
            return why;
    return NULL;
}

void
wq_handlers_cork(const wq_handlers *h, int on)
{
    for (size_t i = 0; h != NULL && i < h->n; i++)
        if (h->v[i].proc != NULL) {
            if (on)
                wq_proc_pool_cork(h->v[i].proc);
            else
                wq_proc_pool_uncork(h->v[i].proc);
        }
}

void
wq_handlers_free(wq_handlers *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n; i++)
        wq_proc_pool_free(h->v[i].proc);
    for (size_t i = 0; i < h->n; i++) {
        wq_handler_builtin_free(h->v[i].builtin);
        wq_handler_plugin_unload(h->v[i].plugin);
    }
    for (size_t i = 0; i < NBUILTIN; i++)
        wq_handler_builtin_free(h->builtins[i].builtin);
    free(h->v);
    free(h);
}
