/*
 * log.h - the one log of a workq process (STYLE.md habit 12).
 *
 * Lines go to stderr (journald picks them up under systemd) or to a file,
 * as text ("2026-11-28T07:43:06.123Z info worker: started") or as one JSON
 * object a line.  The level is checked before anything is formatted.
 * Untrusted text is escaped so that it can break neither a line nor the
 * JSON.  Messages of librdkafka, rabbitmq-c and libpq enter through
 * wq_log_external() and wq_log_libpq_notice().  All functions are
 * thread-safe: a line is written with one write(2).
 */
#ifndef WQ_LOG_H
#define WQ_LOG_H

#include <stdarg.h>

#include "wq.h"

enum wq_log_level {
    WQ_LOG_DEBUG,
    WQ_LOG_INFO,
    WQ_LOG_WARN,
    WQ_LOG_ERROR,
};

enum wq_log_format {
    WQ_LOG_TEXT,
    WQ_LOG_JSON,
};

/*
 * wq_log_setup sets the process name written on each line, the level and
 * the format.  `path` NULL or "" or "-" means stderr; otherwise lines are
 * appended to that file, which wq_log_reopen() opens again (for SIGHUP
 * after rotation).  Returns 0, or WQ_EIO with err filled if the file cannot
 * be opened (the log then stays on stderr).  Call before threads start.
 */
int wq_log_setup(const char *name, enum wq_log_level level,
    enum wq_log_format format, const char *path, char *err, size_t errlen);

/* wq_log_reopen reopens the log file; a no-op on stderr.  Not async-signal
 * safe: call it from the main loop after a SIGHUP flag was seen. */
int wq_log_reopen(void);

/* Parses "debug", "info", "warn", "error"; returns -1 if unknown. */
int wq_log_level_parse(const char *s);
/* Parses "text", "json"; returns -1 if unknown. */
int wq_log_format_parse(const char *s);

/*
 * wq_log_task_begin names the task the calling thread is working on (its
 * id; its W3C traceparent, trace.h, or NULL): until wq_log_task_end,
 * every line this thread writes carries them, after the message in text
 * (" task=ID traceparent=TP") and as fields "task" and "traceparent" in
 * JSON, so that a task's lines can be found by either.  The strings are
 * borrowed until wq_log_task_end.  Thread-local, no allocation: the
 * worker sets it around each task at no measurable cost.
 */
void wq_log_task_begin(const char *task_id, const char *traceparent);
void wq_log_task_end(void);

/* True if a message at `level` would be written. */
int wq_log_enabled(enum wq_log_level level);

/* Writes one line.  `component` names the module ("store", "kafka"). */
void wq_log(enum wq_log_level level, const char *component, const char *fmt,
    ...) WQ_PRINTFLIKE(3, 4);
void wq_logv(enum wq_log_level level, const char *component, const char *fmt,
    va_list ap) WQ_PRINTFLIKE(3, 0);

#define wq_log_debug(c, ...) do { \
    if (wq_log_enabled(WQ_LOG_DEBUG)) wq_log(WQ_LOG_DEBUG, (c), __VA_ARGS__); \
} while (0)
#define wq_log_info(c, ...) wq_log(WQ_LOG_INFO, (c), __VA_ARGS__)
/* Warnings and errors carry the source position. */
#define wq_log_warn(c, fmt, ...) wq_log(WQ_LOG_WARN, (c), \
    fmt " (%s:%d)", ##__VA_ARGS__, __FILE__, __LINE__)
#define wq_log_error(c, fmt, ...) wq_log(WQ_LOG_ERROR, (c), \
    fmt " (%s:%d)", ##__VA_ARGS__, __FILE__, __LINE__)

/*
 * wq_log_external logs a message of a library that speaks syslog levels
 * (librdkafka's log_cb: 0 emerg .. 7 debug).  `component` is e.g.
 * "rdkafka/BROKER".
 */
void wq_log_external(int syslog_level, const char *component,
    const char *msg);

/* A libpq notice processor: PQsetNoticeProcessor(conn,
 * wq_log_libpq_notice, NULL).  Trailing newlines are dropped. */
void wq_log_libpq_notice(void *arg, const char *message);

/*
 * wq_log_raw writes a constant message with write(2) only: safe in a
 * signal handler.  No formatting, no level check.
 */
void wq_log_raw(const char *msg);

#endif
