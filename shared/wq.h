/*
 * wq.h - what every workq module shares: error codes, compiler attributes
 * and a few size limits.
 *
 * The error convention (STYLE.md habit 5): functions return int, 0 on
 * success and a negative WQ_E* code on failure.  At I/O and configuration
 * boundaries they also take a caller-owned `char *err, size_t errlen` that
 * receives one human sentence saying what went wrong.  Nothing here
 * allocates.
 */
#ifndef WQ_H
#define WQ_H

#include <stddef.h>

#define WQ_OK        0
#define WQ_EINVAL   -1  /* bad argument or malformed input */
#define WQ_ENOMEM   -2  /* allocation failed (client API only) */
#define WQ_EIO      -3  /* I/O error on a file, socket or pipe */
#define WQ_ECONFIG  -4  /* configuration rejected */
#define WQ_EBROKER  -5  /* broker unreachable or refused */
#define WQ_ESTORE   -6  /* PostgreSQL unreachable or refused */
#define WQ_ETIMEOUT -7  /* a deadline passed */
#define WQ_ETOOBIG  -8  /* a size limit was exceeded */
#define WQ_ENOENT   -9  /* no such task, queue or file */
#define WQ_EDECODE  -10 /* an envelope failed strict decoding */
#define WQ_EAGAIN   -11 /* nothing now; try again later */
#define WQ_ENACK    -12 /* the broker refused (nacked) a message */
#define WQ_ECLOSED  -13 /* the handle was closed or is shutting down */

/* Size of the err buffers passed around at boundaries. */
#define WQ_ERRLEN 512

/* Limits of the wire format (see envelope.h). */
#define WQ_QUEUE_MAX   128          /* bytes in a queue name */
/* bytes in a broker queue name: a queue and its priority band suffix
 * (priority.h) or ".dead" */
#define WQ_BROKER_QUEUE_MAX (WQ_QUEUE_MAX + 16)
#define WQ_TYPE_MAX    128          /* bytes in a task type */
#define WQ_KEY_MAX     512          /* bytes in an idempotency key */
#define WQ_PAYLOAD_MAX (1u << 20)   /* bytes in a payload (1 MiB) */

/* The header naming a task's completion hook (an https URL), migration
 * 0009 and scheduler/hooks.c. */
#define WQ_HOOK_HEADER "workq-hook"

#if defined(__GNUC__)
#define WQ_PRINTFLIKE(f, a) __attribute__((format(printf, f, a)))
#define WQ_NORETURN __attribute__((noreturn))
#define WQ_UNUSED __attribute__((unused))
#define WQ_MUSTCHECK __attribute__((warn_unused_result))
#else
#define WQ_PRINTFLIKE(f, a)
#define WQ_NORETURN
#define WQ_UNUSED
#define WQ_MUSTCHECK
#endif

#define WQ_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * wq_strerror returns a static, constant description of a WQ_E* code.
 * Never NULL; thread-safe.
 */
const char *wq_strerror(int code);

/*
 * wq_seterr formats into a caller-owned error buffer; a NULL err or zero
 * errlen is allowed and ignored.  Returns `code` so callers can write
 * `return wq_seterr(err, errlen, WQ_EIO, "open %s: %s", ...);`.
 */
int wq_seterr(char *err, size_t errlen, int code, const char *fmt, ...)
    WQ_PRINTFLIKE(4, 5);

/*
 * wq_utf8_sanitize returns a copy of s with every byte that is not part
 * of valid UTF-8 replaced by '?': an error text may quote the garbage it
 * choked on (or cut a character in two), and JSON and PostgreSQL text
 * take only UTF-8.  NULL if out of memory.  The caller frees.
 */
char *wq_utf8_sanitize(const char *s);

/* wq_wipe_free zeroes a string that may hold a secret, then frees it.
 * NULL is allowed. */
void wq_wipe_free(char *s);

#endif
