/*
 * log.c - levels, text and JSON lines, escaping, reopen (see log.h).
 *
 * Each line is built in a stack buffer and written with a single write(2)
 * on an O_APPEND descriptor, so concurrent threads and processes never
 * interleave within a line.  A line longer than the buffer is truncated
 * and marked with "...".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "redact.h"

#define LINE_MAX_BYTES 4096

static struct {
    char name[64];
    enum wq_log_level level;
    enum wq_log_format format;
    char path[512];
    int fd;
} logger = { "workq", WQ_LOG_INFO, WQ_LOG_TEXT, "", 2 };

static const char *const level_names[] = { "debug", "info", "warn", "error" };

int
wq_log_level_parse(const char *s)
{
    for (size_t i = 0; i < WQ_ARRAY_LEN(level_names); i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return (int)i;
    if (strcasecmp(s, "warning") == 0)
        return WQ_LOG_WARN;
    return -1;
}

int
wq_log_format_parse(const char *s)
{
    if (strcasecmp(s, "text") == 0)
        return WQ_LOG_TEXT;
    if (strcasecmp(s, "json") == 0)
        return WQ_LOG_JSON;
    return -1;
}

static int
open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int
wq_log_setup(const char *name, enum wq_log_level level,
    enum wq_log_format format, const char *path, char *err, size_t errlen)
{
    int fd;

    snprintf(logger.name, sizeof logger.name, "%s", name ? name : "workq");
    logger.level = level;
    logger.format = format;
    if (logger.fd > 2)
        close(logger.fd);
    logger.fd = 2;
    logger.path[0] = '\0';
    if (path == NULL || path[0] == '\0' || strcmp(path, "-") == 0)
        return 0;
    if ((fd = open_path(path)) < 0)
        return wq_seterr(err, errlen, WQ_EIO, "log file %s: %s", path,
            strerror(errno));
    snprintf(logger.path, sizeof logger.path, "%s", path);
    logger.fd = fd;
    return 0;
}

int
wq_log_reopen(void)
{
    int fd;

    if (logger.path[0] == '\0')
        return 0;
    if ((fd = open_path(logger.path)) < 0)
        return WQ_EIO;
    /* dup2 swaps atomically, so a concurrent writer never sees a closed fd */
    dup2(fd, logger.fd);
    close(fd);
    return 0;
}

/* The task this thread works on (wq_log_task_begin); borrowed. */
static __thread const char *task_id_tl, *task_trace_tl;

void
wq_log_task_begin(const char *task_id, const char *traceparent)
{
    task_id_tl = task_id;
    task_trace_tl = traceparent;
}

void
wq_log_task_end(void)
{
    task_id_tl = NULL;
    task_trace_tl = NULL;
}

int
wq_log_enabled(enum wq_log_level level)
{
    return level >= logger.level;
}

/* Appends src to buf[*off..cap), escaped for JSON (and so for text). */
static void
append_escaped(char *buf, size_t cap, size_t *off, const char *src)
{
    static const char hex[] = "0123456789abcdef";

    for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
        char tmp[7];
        size_t n;

        if (*p == '"' || *p == '\\') {
            tmp[0] = '\\'; tmp[1] = (char)*p; n = 2;
        } else if (*p == '\n') {
            tmp[0] = '\\'; tmp[1] = 'n'; n = 2;
        } else if (*p == '\t') {
            tmp[0] = '\\'; tmp[1] = 't'; n = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            memcpy(tmp, "\\u00", 4);
            tmp[4] = hex[*p >> 4]; tmp[5] = hex[*p & 15]; n = 6;
        } else {
            tmp[0] = (char)*p; n = 1;
        }
        if (*off + n >= cap)
            return;
        memcpy(buf + *off, tmp, n);
        *off += n;
    }
}

static void
append_raw(char *buf, size_t cap, size_t *off, const char *src)
{
    size_t n = strlen(src);

    if (*off + n >= cap)
        n = cap - *off - 1;
    memcpy(buf + *off, src, n);
    *off += n;
}

void
wq_logv(enum wq_log_level level, const char *component, const char *fmt,
    va_list ap)
{
    char msg[LINE_MAX_BYTES], line[LINE_MAX_BYTES * 2], ts[32];
    size_t off = 0;
    int n;

    if (!wq_log_enabled(level))
        return;
    n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n >= (int)sizeof msg)
        memcpy(msg + sizeof msg - 4, "...", 4);
    wq_redact_inplace(msg, sizeof msg);
    wq_clock_format_rfc3339(wq_clock_wall_ms(), ts, sizeof ts);
    if (component == NULL)
        component = "main";

    if (logger.format == WQ_LOG_JSON) {
        append_raw(line, sizeof line, &off, "{\"ts\":\"");
        append_raw(line, sizeof line, &off, ts);
        append_raw(line, sizeof line, &off, "\",\"level\":\"");
        append_raw(line, sizeof line, &off, level_names[level]);
        append_raw(line, sizeof line, &off, "\",\"proc\":\"");
        append_escaped(line, sizeof line, &off, logger.name);
        append_raw(line, sizeof line, &off, "\",\"component\":\"");
        append_escaped(line, sizeof line, &off, component);
        append_raw(line, sizeof line, &off, "\",\"msg\":\"");
        append_escaped(line, sizeof line, &off, msg);
        if (task_id_tl != NULL) {
            append_raw(line, sizeof line, &off, "\",\"task\":\"");
            append_escaped(line, sizeof line, &off, task_id_tl);
        }
        if (task_trace_tl != NULL) {
            append_raw(line, sizeof line, &off, "\",\"traceparent\":\"");
            append_escaped(line, sizeof line, &off, task_trace_tl);
        }
        /* leave room for the closing characters */
        if (off > sizeof line - 4)
            off = sizeof line - 4;
        append_raw(line, sizeof line, &off, "\"}\n");
    } else {
        append_raw(line, sizeof line, &off, ts);
        append_raw(line, sizeof line, &off, " ");
        append_raw(line, sizeof line, &off, level_names[level]);
        append_raw(line, sizeof line, &off, " ");
        append_escaped(line, sizeof line, &off, logger.name);
        append_raw(line, sizeof line, &off, " ");
        append_escaped(line, sizeof line, &off, component);
        append_raw(line, sizeof line, &off, ": ");
        append_escaped(line, sizeof line, &off, msg);
        if (task_id_tl != NULL) {
            append_raw(line, sizeof line, &off, " task=");
            append_escaped(line, sizeof line, &off, task_id_tl);
        }
        if (task_trace_tl != NULL) {
            append_raw(line, sizeof line, &off, " traceparent=");
            append_escaped(line, sizeof line, &off, task_trace_tl);
        }
        if (off > sizeof line - 2)
            off = sizeof line - 2;
        append_raw(line, sizeof line, &off, "\n");
    }
    /* a failed log write has nowhere to be reported */
    if (write(logger.fd, line, off) < 0)
        (void)0;
}

void
wq_log(enum wq_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    wq_logv(level, component, fmt, ap);
    va_end(ap);
}

void
wq_log_external(int syslog_level, const char *component, const char *msg)
{
    enum wq_log_level level;

    if (syslog_level <= 3)
        level = WQ_LOG_ERROR;
    else if (syslog_level == 4)
        level = WQ_LOG_WARN;
    else if (syslog_level <= 6)
        level = WQ_LOG_INFO;
    else
        level = WQ_LOG_DEBUG;
    wq_log(level, component, "%s", msg);
}

void
wq_log_libpq_notice(void *arg, const char *message)
{
    char buf[LINE_MAX_BYTES];
    size_t n;

    (void)arg;
    snprintf(buf, sizeof buf, "%s", message);
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    wq_log(WQ_LOG_INFO, "libpq", "%s", buf);
}

void
wq_log_raw(const char *msg)
{
    size_t n = strlen(msg);

    if (write(logger.fd, msg, n) < 0)
        (void)0;
}
