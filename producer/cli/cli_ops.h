/*
 * cli_ops.h - what the operator commands of the `workq` CLI share
 * (status, list, retry, cancel, dlq, stats, workers): queries with text
 * results, human tables, JSON output, times and ages, and the one task
 * view that `status` and `dlq show` print.
 *
 * All of it runs on the CLI's one thread and aborts on exhaustion, like
 * the rest of the CLI (alloc.h).
 */
#ifndef WQ_CLI_OPS_H
#define WQ_CLI_OPS_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "cli.h"
#include "ops.h"
#include "store.h"
#include "store_admin.h"

struct pg_result;

/*
 * cli_ops_query runs the store's statement `q` (store_admin.h) with text
 * parameters (NULL is SQL NULL) and text results into *out
 * (wq_store_rows_free it).  On failure it prints "workq CMD: message" and
 * returns the exit code (65 for data the server rejected, 69 otherwise);
 * 0 on success.
 */
int cli_ops_query(wq_store *s, const char *cmd, enum wq_admin_sql q,
    const char *const *params, struct pg_result **out);

/*
 * cli_ops_failed prints the error of an ops.h function as "workq CMD:
 * err" and returns the exit code: 65 for bad input, 66 for no such task,
 * 69 otherwise.
 */
int cli_ops_failed(const char *cmd, int rc, const char *err);

/*
 * cli_json_lines prints each element of the array `name` of o on a line
 * of its own (the CLI's form of a page of ops.h) and releases o.
 */
void cli_json_lines(json_t *o, const char *name);

/* A human table: columns padded to their widest cell, one header row. */
struct cli_table {
    size_t ncols, nrows, cap;
    const char *const *head;
    char **cells;               /* nrows * ncols copies */
};

void cli_table_init(struct cli_table *t, size_t ncols,
    const char *const *head);
/* Adds a row of ncols strings (NULL prints as "-"); copies them. */
void cli_table_add(struct cli_table *t, const char *const *row);
void cli_table_print(const struct cli_table *t, FILE *f);
void cli_table_free(struct cli_table *t);

/*
 * Task data for people: every human (non-JSON) output of a task's type,
 * key, queue, worker, error, result or payload goes through these (or
 * cli_table_add, which escapes its cells), so that no control character
 * or invalid UTF-8 of the data reaches a terminal (textout.h).
 *
 * cli_print_escaped prints s (NULL as "-") escaped.  cli_print_bytes
 * prints a preview of p[0..n): escaped text, or hex, cut after about max
 * bytes with a note.  cli_bytea_preview is that preview, malloc'd, of a
 * bytea column in text form (NULL gives NULL) that holds the first bytes
 * of `total` (0: all of them), with wq_text_preview's flags.  cli_json_bytea sets a
 * bytea column on o as "NAME" (UTF-8), "NAME_base64" (other bytes) or
 * null: the encoding of the HTTP API too.
 */
void cli_print_escaped(FILE *f, const char *s);
void cli_print_bytes(FILE *f, const void *p, size_t n, size_t max);
char *cli_bytea_preview(const char *hex, size_t total, size_t max,
    int flags);
int cli_json_bytea(json_t *o, const char *name, const char *hex);

/* Prints o as one compact line on stdout and releases it. */
void cli_json_print(json_t *o);

/* A text value or JSON null. */
json_t *cli_json_str(const char *s);

/*
 * An epoch-milliseconds column (text, may be NULL or "") as RFC 3339 into
 * buf (>= 40 bytes), or "-".  cli_json_time gives the string or null.
 */
const char *cli_time(const char *ms, char *buf, size_t len);
json_t *cli_json_time(const char *ms);

/* Seconds as "45s", "12m", "3h", "5d" into buf. */
const char *cli_age(int64_t seconds, char *buf, size_t len);

/*
 * cli_parse_age reads a duration like those of the configuration ("30s",
 * "5m", "2h", "1h30m", a bare number of seconds) and also days and weeks
 * ("7d", "2w").  Returns 0 with *ms set, or WQ_EINVAL.
 */
int cli_parse_age(const char *s, int64_t *ms);

/* Parses a positive integer option; prints the reason and returns
 * CLI_USAGE when it is not one in [min, max]. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long min,
    long max, long *out);

/* Checks that s is a task id; prints the reason and returns CLI_USAGE
 * when not. */
int cli_check_id(const char *cmd, const char *s);

/*
 * cli_show_task prints the task with id `id`, or (id NULL) the one with
 * (queue, key), with its attempt history: a page for people, or one JSON
 * object with --json.  A task still in the outbox (enqueued, not yet
 * relayed) is shown as state "outbox".  Returns 0, CLI_NOINPUT when
 * there is no such task, or the query's exit code.
 */
int cli_show_task(struct cli *cli, wq_store *s, const char *cmd,
    const char *id, const char *queue, const char *key);

#endif
