/*
 * store.h - workq's PostgreSQL store (libpq): the connection and the SQL
 * on the tables of shared/migrations/ (schema workq).
 *
 * A wq_store is one libpq connection.  It owns the connection, the
 * statements prepared on it and the SQLSTATE of its last failure; it
 * leaves the schema to migrate.h and the meaning of task states to the
 * worker and the scheduler (DESIGN.md "A task's life", and the comments
 * of shared/migrations/0001_init.sql).  All of workq's SQL lives in the
 * store's files, by use: store.c (the connection), store_tasks.c (tasks
 * as records, this header), store_claims.h (the worker), store_sched.h
 * (the scheduler's rounds), store_admin.h (the CLI's operator commands)
 * and migrate.h; no file outside the store includes <libpq-fe.h> or sees
 * the connection.
 *
 * Errors follow wq.h: 0 or a negative WQ_E*, with a sentence in the
 * caller's err buffer.  A connection failure or a server error is
 * WQ_ESTORE; a row the schema rejects (a CHECK, a unique key, bad JSON,
 * SQLSTATE classes 22 and 23) is WQ_EINVAL; a task that does not exist is
 * WQ_ENOENT.  Nothing here aborts on allocation failure (WQ_ENOMEM), so the
 * client API may use it too.
 *
 * Threads: a handle is not thread-safe; use one per thread.  Every call
 * blocks on the network.  A lost connection stays lost: every call fails
 * with WQ_ESTORE until wq_store_ping() reconnects, so that a transaction
 * that died with its connection can never be half-continued (a COMMIT
 * "succeeding" on a fresh connection).  A daemon's retry loop is: on
 * WQ_ESTORE, ROLLBACK if it can, back off, wq_store_ping() until it
 * succeeds, then redo the whole transaction.
 */
#ifndef WQ_STORE_H
#define WQ_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "wq.h"

typedef struct wq_store wq_store;

/* libpq's result, without including <libpq-fe.h> here: struct
 * pg_result is PGresult (see "Rows" below). */
struct pg_result;

/* The states of a task; workq.tasks.state holds their names. */
enum wq_task_state {
    WQ_TASK_SCHEDULED,   /* waiting for run_at (delayed submit) */
    WQ_TASK_QUEUED,      /* on the broker, not yet claimed */
    WQ_TASK_RUNNING,     /* claimed, under a lease */
    WQ_TASK_SUCCEEDED,   /* final: one committed success */
    WQ_TASK_RETRY_WAIT,  /* an attempt failed; due again at run_at */
    WQ_TASK_DEAD,        /* final: attempts spent or permanent failure */
    WQ_TASK_CANCELLED,   /* final: cancelled before it ran */
};
#define WQ_TASK_STATE_COUNT 7

/* wq_task_state_name returns "scheduled", "queued", ... for a state, or
 * NULL for a value outside the enum.  Static strings; thread-safe. */
const char *wq_task_state_name(enum wq_task_state state);

/* wq_task_state_parse returns the state named `s` (as stored in
 * workq.tasks.state), or WQ_EINVAL if `s` names none.  Thread-safe. */
int wq_task_state_parse(const char *s);

/* True (1) for succeeded, dead and cancelled, else 0. */
int wq_task_state_is_final(enum wq_task_state state);

/*
 * wq_store_open connects to PostgreSQL.  `conninfo` is a libpq connection
 * string or URI ("host=... dbname=...", "postgresql://..."); NULL or ""
 * means libpq's defaults and PG* environment.  `password`, when not NULL,
 * overrides any password in conninfo (so that a password_file secret
 * stays out of the configuration).  workq adds application_name=workq and
 * connect_timeout=10 unless conninfo sets them, and always uses UTF8.
 * libpq notices go to the log (wq_log_libpq_notice).
 *
 * Returns 0 with *out owning the connection (release it with
 * wq_store_close), or WQ_ESTORE with err holding libpq's reason, which
 * names the host and port; no part of a password is ever written into
 * err.  WQ_ENOMEM if out of memory.  Blocks while connecting.
 */
int wq_store_open(const char *conninfo, const char *password,
    wq_store **out, char *err, size_t errlen);

/*
 * What sits between workq and PostgreSQL (postgres.pooler; the values
 * are the order of its names in config_table.c).
 *
 * NONE: a direct connection, or a pooler in session mode: the statements
 * that run often are prepared once per connection (named), and LISTEN
 * runs on the connection itself.  If one of them turns out missing on
 * the server connection, or another client's (SQLSTATE 26000, 42P05: a
 * transaction-mode pooler after all), that call fails with an error that
 * names the setting, and the store sends its statements unnamed from
 * then on; LISTEN stays where it was.
 *
 * TRANSACTION: a pooler that hands the server connection to another
 * client after every transaction (PgBouncer's pool_mode = transaction).
 * A named statement prepared in one transaction may be gone, or another
 * client's, in the next (PgBouncer before 1.21 does not track them), so
 * every statement is sent unnamed (PQsendQueryParams, PQexecParams: parsed
 * and planned each time, same pipelines).  A LISTEN would bind the
 * notifications to a server connection the client no longer holds, so
 * wq_store_listen opens a second connection of its own, to
 * listen_conninfo, which must reach PostgreSQL directly (or through a
 * pool in session mode), and listens there.
 */
enum wq_store_pooler {
    WQ_STORE_POOLER_NONE,
    WQ_STORE_POOLER_TRANSACTION,
};

/* How to connect: wq_store_open_opts.  Strings are borrowed for the call
 * (the store keeps copies of what it needs later). */
struct wq_store_opts {
    const char *conninfo;         /* as wq_store_open's */
    const char *password;         /* NULL or "": none; for both conninfos */
    int pooler;                   /* enum wq_store_pooler */
    const char *listen_conninfo;  /* for LISTEN under TRANSACTION; NULL
                                     or "": LISTEN refused then */
};

/*
 * wq_store_open_opts is wq_store_open with the pooler settings above; it
 * opens the connection to o->conninfo only (the listening connection is
 * opened by the first wq_store_listen).  Same results as wq_store_open.
 */
int wq_store_open_opts(const struct wq_store_opts *o, wq_store **out,
    char *err, size_t errlen);

/*
 * wq_store_listen starts listening on notification channel `channel` (an
 * SQL identifier of letters, digits and '_').  Without a transaction-mode
 * pooler it runs LISTEN on the store's connection; with one, on the
 * store's listening connection to listen_conninfo, opened (or reopened,
 * when it was lost) first.  wq_store_socket, _consume and _notifies then
 * serve that connection.  Call it again after wq_store_ping reconnected,
 * or after wq_store_consume failed: a new connection listens to nothing.
 * Returns 0, WQ_EINVAL for a bad channel name or no listen_conninfo under
 * a transaction-mode pooler, else WQ_ESTORE.  Blocks.
 */
int wq_store_listen(wq_store *s, const char *channel, char *err,
    size_t errlen);

/* wq_store_close closes the connection and frees the handle.  NULL is
 * allowed.  An open transaction is rolled back by the server. */
void wq_store_close(wq_store *s);

/*
 * Notifications (LISTEN/NOTIFY), for a daemon that waits on the store's
 * socket in its own poll loop: wq_store_listen, poll
 * wq_store_socket for POLLIN, then wq_store_consume and
 * wq_store_notifies.
 *
 * wq_store_socket returns the listening connection's socket (the store's
 * own connection unless wq_store_listen opened one of its own), or -1
 * when there is none (the connection is lost).  wq_store_consume reads
 * what the server sent on it without blocking: 0, or WQ_ESTORE with
 * libpq's reason (the connection is lost: wq_store_ping, then
 * wq_store_listen, reconnect).  wq_store_notifies calls
 * fn(channel, payload, user) for each notification received so far, in
 * order (the strings live for the call), and returns how many there were.
 */
int wq_store_socket(const wq_store *s);
int wq_store_consume(wq_store *s, char *err, size_t errlen);
typedef void wq_store_notify_fn(const char *channel, const char *payload,
    void *user);
size_t wq_store_notifies(wq_store *s, wq_store_notify_fn *fn, void *user);

/*
 * Rows: the statements of store_sched.h and store_admin.h give their
 * rows to the caller, which reads them with the functions below, without
 * the connection or libpq.  A result is a struct pg_result (libpq's
 * PGresult), opaque here.
 */

/* wq_store_rollback ends an open transaction with ROLLBACK, ignoring
 * errors (the connection may be gone); nothing when none is open. */
void wq_store_rollback(wq_store *s);

/* The number of rows; the number a DELETE/UPDATE changed. */
int wq_store_nrows(const struct pg_result *r);
int64_t wq_store_changed(const struct pg_result *r);
/* A field: 1 if SQL NULL; its bytes (NUL-terminated by libpq, "" for
 * SQL NULL); their length.  Valid until wq_store_rows_free. */
int wq_store_isnull(const struct pg_result *r, int row, int col);
const char *wq_store_value(const struct pg_result *r, int row, int col);
size_t wq_store_length(const struct pg_result *r, int row, int col);
/* Releases a result; NULL is allowed. */
void wq_store_rows_free(struct pg_result *r);

/* wq_store_bytea_decode returns the bytes of a bytea field in text form
 * ("\\x..."), malloc'd (free() them) with *n set, or NULL when out of
 * memory or the text is not bytea. */
unsigned char *wq_store_bytea_decode(const char *text, size_t *n);

/*
 * wq_store_ping checks that the server answers (SELECT 1).  A lost
 * connection is reconnected with the same parameters (and the SELECT
 * tried once more if it broke under it): whatever transaction was open
 * on it is gone, so call it between transactions, as health checks and
 * retry loops do.  Returns 0 or WQ_ESTORE.
 */
int wq_store_ping(wq_store *s, char *err, size_t errlen);

/*
 * wq_store_libpq returns the store's libpq connection (a PGconn), still
 * owned by the store, for the public client functions that take one
 * (workq_outbox.h: workflows).  Statements run on it outside the store's
 * own calls; leave no transaction open on it.
 */
struct pg_conn *wq_store_libpq(wq_store *s);

/*
 * wq_store_exec runs `sql`, one or several simple statements without
 * parameters (BEGIN, COMMIT, SET, DDL, test fixtures), and discards any
 * rows.  Returns 0, WQ_EINVAL when the server rejected data (SQLSTATE
 * class 22 or 23), else WQ_ESTORE; in both cases err has the server's
 * message and wq_store_last_sqlstate() its code.  Never pass untrusted
 * text in `sql`: values go through parameters (PQexecParams).
 */
int wq_store_exec(wq_store *s, const char *sql, char *err, size_t errlen);

/* wq_store_last_sqlstate returns the five-character SQLSTATE of the last
 * failed statement on this store ("23514"), or "" if there was none or
 * the failure did not come from the server.  Valid until the next call. */
const char *wq_store_last_sqlstate(const wq_store *s);

/*
 * A task to insert: plain fields, the store does not depend on the
 * envelope module.  Strings are borrowed for the call.  Times are
 * milliseconds since the Unix epoch.
 */
struct wq_task_new {
    uint8_t id[16];               /* UUIDv7 */
    const char *queue;            /* without the "workq." prefix */
    const char *type;             /* handler name */
    const char *idempotency_key;  /* NULL: the id's text form */
    const void *payload;          /* may be NULL when payload_len is 0 */
    size_t payload_len;
    const char *headers_json;     /* a JSON object, or NULL for {} */
    enum wq_task_state state;     /* usually scheduled or queued */
    int attempt;                  /* attempts already started, usually 0 */
    int max_attempts;             /* >= 1 */
    int64_t run_at_ms;            /* when due; 0 = none */
    int64_t created_at_ms;        /* envelope created-at; 0 = now */
    int priority;                 /* WQ_PRIORITY_* (priority.h); note
                                     that 0, a zeroed struct's, is low */
};

/*
 * wq_store_task_insert inserts a task unless its (queue, idempotency_key)
 * already exists, as a task or as the receipt of one on the broker
 * (wq_store_accept): INSERT ... ON CONFLICT DO NOTHING.  *inserted (may be
 * NULL) is set to 1 if the row was inserted and 0 if the key existed (the
 * existing row is left untouched).  Returns 0, WQ_EINVAL if the row breaks
 * a rule of the schema (queue name, sizes, state, JSON headers, the same
 * id under another key), WQ_ESTORE otherwise.  Prepared on first use.
 */
int wq_store_task_insert(wq_store *s, const struct wq_task_new *t,
    int *inserted, char *err, size_t errlen);

/*
 * A task as read back.  Every pointer is owned by the row and released by
 * wq_task_row_free; a pointer is NULL when the column is SQL NULL.  The
 * byte buffers carry one extra NUL byte past their length.  Times are
 * epoch milliseconds, 0 when NULL.
 */
struct wq_task_row {
    uint8_t id[16];
    char *queue;
    char *type;
    char *idempotency_key;
    uint8_t *payload;             /* never NULL after a successful get */
    size_t payload_len;
    char *headers_json;           /* JSON object text */
    enum wq_task_state state;
    int attempt;
    int max_attempts;
    char *lease_owner;
    char *worker;
    char *last_error;
    uint8_t *result;              /* NULL if the task has no result */
    size_t result_len;
    int64_t run_at_ms;
    int64_t lease_expires_at_ms;
    int64_t created_at_ms;
    int64_t started_at_ms;
    int64_t finished_at_ms;
    int64_t updated_at_ms;
    int attempt_base;             /* attempt when the series began (a
                                     retry by hand), usually 0 */
    int64_t dead_published_at_ms; /* when the dead copy went out */
    int receipt;                  /* 1: accepted, not claimed yet; only
                                     the receipt is known (no payload) */
    int priority;                 /* WQ_PRIORITY_* (priority.h): the
                                     row's, or the receipt's band */
    /* Progress (migration 0009), filled by wq_store_task_progress only */
    int has_progress;             /* 1: a handler reported progress */
    int progress;                 /* 0..100 */
    char *progress_message;       /* may be NULL */
    int64_t progress_at_ms;
};

/*
 * wq_store_task_get reads the task with id `id` into *out (a task the
 * broker holds that no worker claimed yet reads as `queued` from its
 * receipt, with out->receipt set), which the
 * caller releases with wq_task_row_free (also after a failure, which
 * leaves it zeroed).  Returns 0, WQ_ENOENT if there is no such task,
 * WQ_ESTORE or WQ_ENOMEM.  Prepared on first use.
 */
int wq_store_task_get(wq_store *s, const uint8_t id[16],
    struct wq_task_row *out, char *err, size_t errlen);

/*
 * wq_store_task_progress fills row's progress fields (has_progress,
 * progress, progress_message, progress_at_ms) from the task's last
 * report, if any: one read by primary key, for the readers of one task
 * (workq status, GET /v1/tasks/ID).  Returns 0 or WQ_ESTORE.
 */
int wq_store_task_progress(wq_store *s, struct wq_task_row *row, char *err,
    size_t errlen);

/* wq_store_task_get_by_key is wq_store_task_get by (queue, idempotency
 * key), the identity a claim uses (a receipt is found by the key's id,
 * wq_uuid_for_key). */
int wq_store_task_get_by_key(wq_store *s, const char *queue,
    const char *idempotency_key, struct wq_task_row *out, char *err,
    size_t errlen);

/*
 * One attempt of a task's history (the view workq.attempt_history: the
 * rows of workq.attempts and the running or succeeded attempt kept in the
 * task row), as read back.  The
 * strings are owned by the array and NULL when the column is SQL NULL;
 * times are epoch milliseconds, 0 when NULL; duration_ms is -1 when the
 * attempt has not finished.
 */
struct wq_task_attempt {
    int attempt;
    int64_t started_at_ms;
    int64_t finished_at_ms;
    int64_t duration_ms;
    char *worker;
    char *outcome;
    char *error;
};

/*
 * wq_store_task_attempts reads the attempts of task `id` in order into
 * *out (*n entries; NULL and 0 for none), which the caller releases with
 * wq_task_attempts_free.  Returns 0, WQ_ESTORE or WQ_ENOMEM.
 */
int wq_store_task_attempts(wq_store *s, const uint8_t id[16],
    struct wq_task_attempt **out, size_t *n, char *err, size_t errlen);

/* wq_task_attempts_free frees what wq_store_task_attempts returned.
 * NULL is allowed. */
void wq_task_attempts_free(struct wq_task_attempt *v, size_t n);

/*
 * wq_store_outbox_get finds task `id` in workq.outbox (enqueued in a
 * transaction, not relayed yet): *queue (malloc'd, the caller frees it)
 * and *created_at_ms.  Returns 0, WQ_ENOENT, WQ_ESTORE or WQ_ENOMEM.
 */
int wq_store_outbox_get(wq_store *s, const uint8_t id[16], char **queue,
    int64_t *created_at_ms, char *err, size_t errlen);

/*
 * A task the broker confirmed, for its receipt in workq.accepted.  The
 * strings are borrowed for the call; duplicate and state are answers.
 */
struct wq_accept {
    uint8_t id[16];
    const char *queue;
    const char *type;
    const char *key;              /* NULL: no client-given key (the
                                     id's text; never a duplicate) */
    int max_attempts;
    int64_t created_at_ms;        /* the envelope's */
    int priority;                 /* WQ_PRIORITY_* (priority.h): the band
                                     it was published to */
    int duplicate;                /* out: 1 if an earlier submit of the
                                     same (queue, key) holds the id */
    enum wq_task_state state;     /* out: queued, or a duplicate's state */
};

/*
 * wq_store_accept records the receipts of v[0..n) in one statement (its
 * own transaction), after the broker confirmed them and before the
 * submitter answers, so that the ids resolve at once (`workq status`,
 * GET /v1/tasks/ID, cancel).  A task that has a row in workq.tasks
 * already gets no receipt.  Sets each entry's duplicate and state.
 * Returns 0, or WQ_ESTORE (nothing recorded; the tasks are on the broker
 * all the same and run, but their ids resolve only once claimed).
 * Blocks on the database.
 */
int wq_store_accept(wq_store *s, struct wq_accept *v, size_t n, char *err,
    size_t errlen);

/*
 * wq_store_accept_send and wq_store_accept_recv are wq_store_accept in
 * two halves, for a submitter that has something else to wait for
 * meanwhile (the broker's next confirmations): send writes the
 * statements to PostgreSQL (libpq's pipeline mode) and returns without
 * waiting for them; recv reads their answers into v, which must hold
 * the same entries as the send's v[0..n), unchanged in between (the
 * array may have moved).  Up to WQ_ACCEPT_DEPTH sends may be under way
 * at once, so that one batch's statement is written while the one
 * before is still running; each recv answers the oldest send.  Until
 * the last of them is answered, the store serves nothing else (other
 * calls fail with WQ_ESTORE).
 *
 * send returns 0, WQ_EINVAL (WQ_ACCEPT_DEPTH sends under way already;
 * nothing changed), or WQ_ESTORE: nothing is under way any more, the
 * earlier sends included (their entries untold; wq_store_accept them
 * again).  recv returns 0, WQ_EAGAIN when `wait` is 0 and the answers
 * are not all in yet (call it again later), or a failure as
 * wq_store_accept does (WQ_ESTORE; WQ_EINVAL for a row the table
 * refuses), and then the answers of the later sends are dropped too
 * (their statements may have run): nothing is under way any more.
 * send blocks only while writing; recv blocks only with `wait`.
 */
#define WQ_ACCEPT_DEPTH 2
int wq_store_accept_send(wq_store *s, struct wq_accept *v, size_t n,
    char *err, size_t errlen);
int wq_store_accept_recv(wq_store *s, struct wq_accept *v, size_t n,
    int wait, char *err, size_t errlen);

/* wq_task_row_free frees what the row owns and zeroes it; the struct
 * itself stays the caller's.  Safe on a zeroed row and twice. */
void wq_task_row_free(struct wq_task_row *row);

/*
 * A broker message that failed to decode as an envelope: the fields of
 * the transport's wq_delivery plus why.  Borrowed for the call.
 */
struct wq_dead_letter {
    const char *transport;        /* "kafka" or "rabbitmq" (ops->name) */
    const char *queue;            /* without the "workq." prefix */
    const void *raw;              /* the message body, kept byte for byte */
    size_t raw_len;
    const void *key;              /* Kafka message key, or NULL */
    size_t keylen;
    int32_t partition;            /* Kafka partition, -1 on RabbitMQ */
    int64_t offset;               /* Kafka offset or delivery tag; -1 none */
    int redelivered;
    const char *error;            /* the decoder's reason */
    const char *worker;           /* receiving worker's id, or NULL */
};

/*
 * wq_store_dead_letter_insert stores an undecodable message whole in
 * workq.dead_letters.  *id (may be NULL) receives the new row's id, or 0
 * when the same Kafka message (queue, partition, offset and bytes) was
 * stored before, by a delivery that crashed before its commit.  Returns 0,
 * WQ_EINVAL (unknown transport, missing fields) or WQ_ESTORE.  Call it
 * before acking the message.
 */
int wq_store_dead_letter_insert(wq_store *s, const struct wq_dead_letter *dl,
    int64_t *id, char *err, size_t errlen);

#endif
