/*
 * handler_proto.h - the frames of the process handler protocol
 * (docs/handler-protocol.md, version 1): JSON objects, one per line, on
 * a long-lived program's stdin (the worker's frames) and stdout (the
 * program's).  This module only encodes and decodes them; starting,
 * feeding and supervising the programs is handler_process.c's.
 *
 * The worker writes "hello" (once, first), "task" and "cancel"; the
 * program writes "hello" (once, first, before any answer) and "result".
 * Bytes travel as textout.h does it: "payload" / "result" when they are
 * UTF-8, "payload_base64" / "result_base64" (standard base64, padded)
 * otherwise.  Pure functions, any thread.
 */
#ifndef WQ_WORKER_HANDLER_PROTO_H
#define WQ_WORKER_HANDLER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "handler.h"

#define WQ_PROTO_VERSION 1

/* The longest line the worker reads from a program: a result of
 * max_output bytes in base64 and an error text fit in it. */
#define WQ_PROTO_LINE_MAX(max_output) \
    ((size_t)(max_output) / 3 * 4 + 65536)

/*
 * wq_proto_hello appends the worker's hello line to b:
 * {"t":"hello","protocol":1,"max_in_flight":N,"worker":ID,"type":TYPE}.
 * Returns 0 or WQ_ENOMEM.
 */
int wq_proto_hello(struct wq_buf *b, unsigned max_in_flight,
    const char *worker_id, const char *type);

/*
 * wq_proto_task appends the task line of frame `id` to b: id, task_id,
 * queue, type, key, attempt, max_attempts, deadline_ms (epoch ms, null
 * when none), headers (an object of strings) and the payload.  Returns 0,
 * or WQ_EINVAL when a text field is not UTF-8 (a decoded envelope's
 * always are), or WQ_ENOMEM.
 */
int wq_proto_task(struct wq_buf *b, uint64_t id,
    const struct wq_handler_ctx *ctx, int64_t deadline_ms);

/* wq_proto_cancel appends {"t":"cancel","id":N} to b.  Returns 0 or
 * WQ_ENOMEM. */
int wq_proto_cancel(struct wq_buf *b, uint64_t id);

/* A decoded line of the program's. */
enum wq_proto_kind {
    WQ_PROTO_HELLO,
    WQ_PROTO_RESULT,
    WQ_PROTO_PROGRESS,          /* id, percent, message (error field) */
};

struct wq_proto_msg {
    enum wq_proto_kind kind;
    long protocol;              /* hello: the program's version */
    int percent;                /* progress: 0..100 */
    char *library;              /* hello: its "library" text, or NULL */
    uint64_t id;                /* result: the frame it answers */
    enum wq_outcome outcome;    /* result: SUCCEEDED, FAILED ("retry") or
                                   PERMANENT ("fail") */
    struct wq_buf result;       /* result: the bytes (ok) */
    char *error;                /* result: the text (retry, fail); may be
                                   NULL */
};

/*
 * wq_proto_parse decodes one line (without its newline) into *m, which
 * the caller frees with wq_proto_msg_free.  Returns 0, or WQ_EINVAL with
 * err saying what is wrong (not JSON, not an object, an unknown "t", a
 * missing or mistyped field, bad base64); *m is then empty.
 */
int wq_proto_parse(const char *line, size_t len, struct wq_proto_msg *m,
    char *err, size_t errlen);

void wq_proto_msg_free(struct wq_proto_msg *m);

#endif
