/*
 * workq_outbox.h - transactional enqueue from C: submit a task inside the
 * caller's own PostgreSQL transaction, so that the task exists if and
 * only if that transaction commits (the "outbox" pattern).
 *
 *     PQexec(conn, "BEGIN");
 *     PQexec(conn, "UPDATE accounts SET ...");
 *     if (wq_client_enqueue_tx(conn, &task, id, err, sizeof err) != 0)
 *         ... roll back ...
 *     PQexec(conn, "COMMIT");
 *
 * It runs SELECT workq.enqueue(...) (the SQL function of migration 0002,
 * usable from any language the same way) on the caller's connection: a
 * task due now becomes a row of workq.outbox holding its envelope, which
 * workq-scheduler relays to the broker (with confirms) after the commit;
 * a task with a delay or run_at becomes a scheduled task, published when
 * due.  No broker connection is needed here, and the call never commits
 * or rolls back anything itself.  Outside a transaction block the
 * statement commits on its own, like any other.
 *
 * Needs libpq; link with libworkq.a as workq.h says.  Kept apart from
 * workq.h so that programs that only publish need not see libpq.
 */
#ifndef WORKQ_OUTBOX_H
#define WORKQ_OUTBOX_H

#include <stddef.h>

#include "workq.h"

#ifdef __cplusplus
extern "C" {
#endif

struct pg_conn;     /* libpq's PGconn */

/*
 * wq_client_enqueue_tx enqueues `task` (the rules of struct
 * wq_client_task; max_attempts 0 means 25, since no queue policy is known
 * here) through `conn`, a libpq connection the caller owns and keeps
 * using.  Writes the task id into `id` (may be NULL): a new UUIDv7, or,
 * for a delayed task whose (queue, idempotency key) exists already, that
 * task's id.
 *
 * Returns 0; WQ_EINVAL when the task breaks a rule (the server says
 * which; the caller's transaction is then aborted, as after any failed
 * statement); WQ_ESTORE when the connection is bad, the transaction
 * had already failed, the schema lacks workq.enqueue (run `workq
 * migrate`) or the server failed; WQ_ENOMEM.  err gets one sentence.
 * Blocks for one round trip; not thread-safe with respect to `conn`.
 */
int wq_client_enqueue_tx(struct pg_conn *conn,
    const struct wq_client_task *task, char id[WQ_CLIENT_ID_LEN], char *err,
    size_t errlen);

/*
 * Workflows (docs/workflows.md): chains, groups with a callback and
 * batches, stored and stepped in PostgreSQL (migration 0008).  A workflow
 * is a JSON document:
 *
 *     {"queue": "img", "chain": [{"type": "resize", "payload": "a.png"},
 *                                {"type": "upload"}]}
 *     {"queue": "img", "group": [{"type": "a"}, {"type": "b"}],
 *      "callback": {"type": "report"}, "callback_when": "complete"}
 *     {"queue": "img", "batch": "nightly", "tasks": [...],
 *      "on_success": {"type": "ok"}, "on_complete": {"type": "done"},
 *      "open": true}
 *
 * Each step or callback is published exactly once, by the transaction
 * that records the outcome it follows (through workq.outbox, relayed by
 * workq-scheduler).  These functions run the SQL functions of that
 * migration on the caller's connection; the _tx ones never commit or
 * roll back themselves, so a workflow can be submitted inside the
 * caller's own transaction like wq_client_enqueue_tx.  Each blocks for
 * one round trip and is not thread-safe with respect to `conn`.
 *
 * Returns: 0; WQ_EINVAL for a bad document or id (err says what is
 * wrong; the caller's transaction is then aborted); WQ_ENOENT when no
 * workflow has that id; WQ_ECLOSED when a batch takes no more tasks;
 * WQ_ESTORE for a bad connection, a failed transaction, a schema without
 * migration 0008 (run `workq migrate`) or a server failure; WQ_ENOMEM.
 */

/* Submits the workflow `doc` (a JSON document, as above); writes its id
 * into `id` (may be NULL).  A document with a "key" that was submitted
 * before answers the first workflow's id and stores nothing. */
int wq_client_workflow_submit_tx(struct pg_conn *conn, const char *doc,
    char id[WQ_CLIENT_ID_LEN], char *err, size_t errlen);

/* Adds `tasks` (a JSON array of task objects) to batch `workflow_id` and
 * starts them.  *ids (may be NULL) gets the new tasks' ids as a JSON
 * array, to be released with free(). */
int wq_client_workflow_add_tx(struct pg_conn *conn, const char *workflow_id,
    const char *tasks, char **ids, char *err, size_t errlen);

/* Closes open batch `workflow_id`: its callbacks run once its tasks have
 * ended.  *closed (may be NULL) is 1, or 0 if it was closed already. */
int wq_client_workflow_close_tx(struct pg_conn *conn,
    const char *workflow_id, int *closed, char *err, size_t errlen);

/* The whole graph of a workflow, found by its id or by the task id of
 * one of its nodes, as a JSON object in *json (release with free()):
 * kind, state, progress and every node with its state (the document of
 * GET /v1/workflows/{id}). */
int wq_client_workflow_get(struct pg_conn *conn, const char *id,
    char **json, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
