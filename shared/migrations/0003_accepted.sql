-- 0003_accepted.sql - task handles that always resolve (issue 11, "A task
-- handle that always resolves").
--
-- An immediate submit goes to the broker, and workq.tasks gets its row
-- only when a worker claims the task.  Until then `workq status`, `cancel`
-- and GET /v1/tasks/ID need to know that the id was accepted.  Every
-- submit path (C client, `workq submit`, the HTTP API) therefore records
-- each task the broker confirmed here, in one multi-row statement per
-- flush, before it answers.  The row is a receipt, not the task: the
-- payload stays on the broker, and the claim path does not read or write
-- this table at all.
--
-- A receipt is redundant once workq.tasks has a row with the same id (the
-- task was claimed, scheduled or cancelled); the scheduler deletes such
-- receipts in small batches (retention.c, "receipts"), so the table holds
-- about the broker's backlog.  The view workq.task_handles is what the
-- readers of one task use: the task's row, or else its receipt as a
-- `queued` task that has made no attempt.
--
-- created_at is the envelope's created-at.  It tells a duplicate from the
-- submit's own message: a receipt or task row with the same id but
-- another created_at belongs to an earlier submit of the same key.

CREATE TABLE workq.accepted (
    id              uuid        PRIMARY KEY,
    created_at      timestamptz NOT NULL,
    accepted_at     timestamptz NOT NULL DEFAULT now(),
    max_attempts    integer     NOT NULL,
    queue           text        NOT NULL,
    type            text        NOT NULL,
    idempotency_key text        -- NULL: the id's text (no client key)
) WITH (autovacuum_vacuum_scale_factor = 0.02,
        autovacuum_analyze_scale_factor = 0.05);

COMMENT ON TABLE workq.accepted IS
    'Receipts of tasks the broker confirmed and no worker has claimed yet.';

CREATE VIEW workq.task_handles AS
    SELECT id, attempt, max_attempts, created_at, updated_at, run_at,
           started_at, finished_at, lease_expires_at, state, queue, type,
           idempotency_key, lease_owner, worker, headers, payload,
           last_error, result, dead_published_at, attempt_base,
           false AS receipt
      FROM workq.tasks
    UNION ALL
    SELECT a.id, 0, a.max_attempts, a.created_at, a.accepted_at, NULL,
           NULL, NULL, NULL, 'queued', a.queue, a.type,
           coalesce(a.idempotency_key, a.id::text), NULL, NULL,
           '{}'::jsonb, ''::bytea,
           NULL, NULL, NULL, 0,
           true
      FROM workq.accepted a
     WHERE NOT EXISTS (SELECT 1 FROM workq.tasks t WHERE t.id = a.id);

COMMENT ON VIEW workq.task_handles IS
    'One task by id: its row in workq.tasks, else its receipt as queued.';
