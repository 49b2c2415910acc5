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

#ifdef __cplusplus
}
#endif

#endif
