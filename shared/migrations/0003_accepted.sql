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

-- Receipts of tasks without a client-given key, in runs: one row per
-- batch a submitter recorded (per queue, type and max_attempts), its ids
-- sorted in `ids` as 16-byte values.  Such a task has a fresh UUIDv7 and
-- can never be a duplicate, so nothing needs one row per task: a run of
-- 10,000 tasks is one row of 160 kB, which is what lets receipts keep up
-- with a broker that confirms hundreds of thousands of tasks a second.
-- The scheduler rewrites a run without the ids that have a task row, and
-- deletes it when none is left (next_check and check_ms space out the
-- checks of a run that is not moving).
CREATE TABLE workq.accepted_runs (
    id           bigserial   PRIMARY KEY,
    first_id     uuid        NOT NULL,
    last_id      uuid        NOT NULL,
    created_at   timestamptz NOT NULL,  -- the earliest envelope created-at
    accepted_at  timestamptz NOT NULL DEFAULT now(),
    next_check   timestamptz NOT NULL DEFAULT now() + interval '2 seconds',
    check_ms     integer     NOT NULL DEFAULT 2000,
    max_attempts integer     NOT NULL,
    queue        text        NOT NULL,
    type         text        NOT NULL,
    ids          bytea       NOT NULL
        CHECK (octet_length(ids) > 0 AND octet_length(ids) % 16 = 0)
);

CREATE INDEX accepted_runs_range_idx ON workq.accepted_runs (first_id);
CREATE INDEX accepted_runs_check_idx ON workq.accepted_runs (next_check);

COMMENT ON TABLE workq.accepted_runs IS
    'Receipts of unclaimed tasks without a client key, a batch per row.';

-- Whether `ids` (16-byte ids end to end) holds p.  position() finds the
-- first match; an id is only ever at a multiple of 16, and a match
-- across two ids before the real one would need 128 bits to agree by
-- chance.
CREATE FUNCTION workq.ids_hold(ids bytea, p uuid) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT position(uuid_send(p) IN ids) % 16 = 1 $$;

-- One task by id, as the readers of a task see it: its row, else its
-- receipt (one of its own, or in a run) as a `queued` task.
CREATE FUNCTION workq.task_handle(p uuid) RETURNS SETOF workq.task_handles
    LANGUAGE sql STABLE
    AS $$
    SELECT * FROM workq.task_handles WHERE id = p
    UNION ALL
    (SELECT p, 0, r.max_attempts, r.created_at, r.accepted_at,
            NULL::timestamptz, NULL::timestamptz, NULL::timestamptz,
            NULL::timestamptz, 'queued'::text, r.queue, r.type, p::text,
            NULL::text, NULL::text, '{}'::jsonb, ''::bytea, NULL::text,
            NULL::bytea, NULL::timestamptz, 0, true
       FROM workq.accepted_runs r
      WHERE r.first_id <= p AND r.last_id >= p AND workq.ids_hold(r.ids, p)
        AND NOT EXISTS (SELECT 1 FROM workq.task_handles h WHERE h.id = p)
      LIMIT 1)
    $$;
