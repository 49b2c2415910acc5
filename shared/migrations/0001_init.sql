-- 0001_init.sql - the first workq schema: everything a task's life needs
-- (DESIGN.md "A task's life"), so that the worker, the scheduler and the
-- CLI can be written against it without a schema rewrite.
--
-- migrate.c runs this file inside one transaction, under an advisory lock,
-- together with the row of workq.schema_migrations that records it: never
-- put BEGIN/COMMIT, CREATE INDEX CONCURRENTLY or VACUUM in a migration.
-- Every object lives in schema workq and is named with it, so search_path
-- does not matter.  Later migrations must stay compatible with the binaries
-- of the previous release (add columns and states, then drop them one
-- release later): daemons keep running while `workq migrate` runs.
--
-- Timestamps are timestamptz set by the database (now()) unless a column
-- says otherwise.  Every UPDATE of workq.tasks sets updated_at = now()
-- itself; there is no trigger, to keep the hot path cheap.

CREATE SCHEMA IF NOT EXISTS workq;

-- The applied migrations, one row each, written in the same transaction as
-- the migration itself.  checksum is the hex SHA-256 of the SQL as it was
-- embedded in the binary that applied it; migrate warns when a binary's
-- copy differs (someone edited a released migration).
CREATE TABLE workq.schema_migrations (
    version     integer     PRIMARY KEY CHECK (version >= 1),
    name        text        NOT NULL CHECK (name <> ''),
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- workq.tasks: one row per task (per queue and idempotency key), from
-- submit or first claim to its end.  States and who moves them:
--
--   scheduled   delayed submit, waiting for run_at; the scheduler
--               publishes it when due                  -> queued
--   queued      on the broker, not yet claimed         -> running
--   running     claimed by lease_owner until lease_expires_at; the worker
--               records                -> succeeded | retry_wait | dead;
--               the scheduler recovers an expired lease -> retry_wait | dead
--   retry_wait  an attempt failed; the scheduler publishes it again at
--               run_at                                  -> queued
--   succeeded, dead, cancelled
--               final (finished_at set); the promise is one committed
--               success or dead with its history in workq.attempts.
--
-- A claim is an upsert on (queue, idempotency_key): a worker may see a task
-- before any row exists (immediate submits go straight to the broker).  It
-- takes the row when the state is queued, scheduled or retry_wait, or
-- running with lease_expires_at < now(), and increments attempt; a row
-- that is succeeded, dead or cancelled marks the delivery as a duplicate.
-- A lease exists only while running: the transaction that records an
-- outcome sets lease_owner and lease_expires_at to NULL.
--
-- Column order puts fixed-width columns first (less alignment padding).
-- fillfactor 80 leaves room on each page so that the several updates of a
-- task's life usually stay on its page; those that change only unindexed
-- columns (result, last_error, worker) are HOT updates.
CREATE TABLE workq.tasks (
    id               uuid        PRIMARY KEY,  -- UUIDv7, made by the client
    attempt          integer     NOT NULL DEFAULT 0,  -- attempts started
    max_attempts     integer     NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),  -- envelope created-at
    updated_at       timestamptz NOT NULL DEFAULT now(),
    run_at           timestamptz,  -- when due (scheduled, retry_wait)
    started_at       timestamptz,  -- start of the current/last attempt
    finished_at      timestamptz,  -- set on entering a final state
    lease_expires_at timestamptz,  -- deadline of the running attempt
    state            text        NOT NULL,
    queue            text        NOT NULL,
    type             text        NOT NULL,  -- handler name
    idempotency_key  text        NOT NULL,  -- client-given, else id::text
    lease_owner      text,  -- worker id holding the lease (running only)
    worker           text,  -- worker id of the last attempt
    -- trace context and user headers
    headers          jsonb       NOT NULL DEFAULT '{}',
    payload          bytea       NOT NULL DEFAULT '',
    last_error       text,
    result           bytea,  -- handler output on success (bounded)

    CONSTRAINT tasks_queue_key_key UNIQUE (queue, idempotency_key),
    CONSTRAINT tasks_state_check CHECK (state IN ('scheduled', 'queued',
        'running', 'succeeded', 'retry_wait', 'dead', 'cancelled')),
    -- Queue Q is Kafka topic / RabbitMQ queue "workq.Q" and dead letters go
    -- to "workq.Q.dead": so the charset both brokers accept, and no name
    -- that would collide with another queue's dead-letter queue.
    CONSTRAINT tasks_queue_check CHECK (queue ~ '^[A-Za-z0-9._-]{1,128}$'
        AND queue !~ '[.]dead$'),
    CONSTRAINT tasks_type_check CHECK (octet_length(type) BETWEEN 1 AND 128),
    CONSTRAINT tasks_key_check
        CHECK (octet_length(idempotency_key) BETWEEN 1 AND 512),
    CONSTRAINT tasks_payload_check CHECK (octet_length(payload) <= 1048576),
    CONSTRAINT tasks_headers_check CHECK (jsonb_typeof(headers) = 'object'),
    CONSTRAINT tasks_attempt_check CHECK (attempt >= 0),
    CONSTRAINT tasks_max_attempts_check CHECK (max_attempts >= 1),
    -- What each state needs to be acted upon.
    CONSTRAINT tasks_running_check CHECK (state <> 'running' OR
        (attempt >= 1 AND lease_owner IS NOT NULL
         AND lease_expires_at IS NOT NULL)),
    CONSTRAINT tasks_lease_check CHECK (state = 'running' OR
        (lease_owner IS NULL AND lease_expires_at IS NULL)),
    CONSTRAINT tasks_due_check CHECK (state NOT IN ('scheduled', 'retry_wait')
        OR run_at IS NOT NULL),
    CONSTRAINT tasks_final_check CHECK (state NOT IN ('succeeded', 'dead',
        'cancelled') OR finished_at IS NOT NULL)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05,
        autovacuum_analyze_scale_factor = 0.05);

COMMENT ON TABLE workq.tasks IS
    'One row per task (queue, idempotency key): state, lease, outcome.';

-- The scheduler's due work: ORDER BY run_at ... FOR UPDATE SKIP LOCKED.
CREATE INDEX tasks_due_idx ON workq.tasks (run_at)
    WHERE state IN ('scheduled', 'retry_wait');
-- Lost-lease recovery: running rows whose lease_expires_at < now().
CREATE INDEX tasks_lease_idx ON workq.tasks (lease_expires_at)
    WHERE state = 'running';
-- `workq dlq list|purge` per queue, newest first.
CREATE INDEX tasks_dead_idx ON workq.tasks (queue, finished_at)
    WHERE state = 'dead';
-- Retention of finished work (dead tasks are kept until purged).
CREATE INDEX tasks_retention_idx ON workq.tasks (finished_at)
    WHERE state IN ('succeeded', 'cancelled');
-- `workq stats`: counts per queue and state.
CREATE INDEX tasks_queue_state_idx ON workq.tasks (queue, state);

-- workq.attempts: the history of every attempt, so that a dead task keeps
-- its full history.  The worker inserts the row when an attempt starts
-- (attempt = the task's attempt after the claim) and fills outcome,
-- finished_at, error and duration_ms in the transaction that records the
-- outcome; the scheduler writes lease_expired for attempts whose worker
-- died.  outcome NULL means the attempt is still running (or its worker
-- died and the scheduler has not noticed yet).
CREATE TABLE workq.attempts (
    task_id     uuid        NOT NULL
                REFERENCES workq.tasks (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL CHECK (attempt >= 1),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    -- the handler's run time, measured by the worker's monotonic clock
    duration_ms bigint      CHECK (duration_ms >= 0),
    worker      text,
    outcome     text        CHECK (outcome IN ('succeeded', 'failed',
                    'permanent_failure', 'timeout', 'lease_expired',
                    'cancelled')),
    error       text,
    PRIMARY KEY (task_id, attempt),
    CONSTRAINT attempts_finished_check
        CHECK ((outcome IS NULL) = (finished_at IS NULL))
) WITH (fillfactor = 90);

COMMENT ON TABLE workq.attempts IS
    'Attempt history of each task: worker, timings, outcome, error.';

-- workq.dead_letters: broker messages that could not be decoded as an
-- envelope.  The bytes are kept whole, never dropped, so an operator (or a
-- fixed decoder) can look at them and republish them.  On Kafka a message
-- redelivered after a crash (same queue, partition, offset and bytes) is
-- stored once; RabbitMQ delivery tags are only unique within a channel, so
-- a redelivered message may be stored twice (redelivered tells).
CREATE TABLE workq.dead_letters (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    replayed_at   timestamptz,  -- set by `workq dlq replay`
    src_partition integer,  -- Kafka partition; NULL on RabbitMQ
    src_offset    bigint,   -- Kafka offset, or RabbitMQ delivery tag
    redelivered   boolean     NOT NULL DEFAULT false,
    transport     text        NOT NULL
                  CHECK (transport IN ('kafka', 'rabbitmq')),
    queue         text        NOT NULL,  -- without the "workq." prefix
    worker        text,  -- worker id that received it
    error         text        NOT NULL,  -- why decoding failed
    msg_key       bytea,  -- Kafka message key
    raw           bytea       NOT NULL  -- the message body, byte for byte
);

COMMENT ON TABLE workq.dead_letters IS
    'Undecodable broker messages, kept whole.';

CREATE INDEX dead_letters_queue_idx
    ON workq.dead_letters (queue, received_at);
-- Deduplicates Kafka redeliveries: INSERT ... ON CONFLICT (queue,
-- src_partition, src_offset, sha256(raw)) WHERE transport = 'kafka'
-- DO NOTHING.  The bytes are part of the key so that a recreated topic
-- (offsets start again) never loses a message.
CREATE UNIQUE INDEX dead_letters_kafka_key ON workq.dead_letters
    (queue, src_partition, src_offset, sha256(raw))
    WHERE transport = 'kafka';

-- workq.workers: one row per worker process, upserted at start and on each
-- heartbeat (only unindexed columns change: HOT updates, hence the low
-- fillfactor).  `workq workers` lists them; a worker whose heartbeat_at is
-- old died without stopping.  Rows of stopped workers are kept for a while
-- and removed by retention.
CREATE TABLE workq.workers (
    id           text        PRIMARY KEY,  -- the lease_owner of its claims
    pid          integer     NOT NULL CHECK (pid > 0),
    in_flight    integer     NOT NULL DEFAULT 0 CHECK (in_flight >= 0),
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz,  -- set by a clean shutdown
    hostname     text        NOT NULL,
    version      text        NOT NULL,  -- WQ_VERSION of the binary
    queues       text[]      NOT NULL DEFAULT '{}'
) WITH (fillfactor = 50);

COMMENT ON TABLE workq.workers IS 'Worker processes and their heartbeats.';

-- workq.cron_ticks: periodic tasks fire once per tick even with several
-- schedulers: INSERT ... ON CONFLICT DO NOTHING, and only the scheduler
-- whose insert succeeded enqueues the task (in the same transaction).
CREATE TABLE workq.cron_ticks (
    name       text        NOT NULL,
    tick_at    timestamptz NOT NULL,
    task_id    uuid,  -- the task enqueued for this tick
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, tick_at)
);

-- workq.outbox: messages to publish, written in the same transaction as
-- the state change that needs them (a due task made queued, a dead task's
-- copy to "workq.Q.dead").  A relay publishes them in id order and deletes
-- each row once the broker confirmed it; a crash in between publishes a
-- duplicate, which the claim absorbs.  ids are allocated before commit, so
-- a relay must not remember "the last id done" (a smaller id may commit
-- later): it reads the rows present, oldest first, with
-- FOR UPDATE SKIP LOCKED, and deletes what it published.
CREATE TABLE workq.outbox (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    task_id    uuid,
    kind       text        NOT NULL DEFAULT 'task'
               CHECK (kind IN ('task', 'dead')),  -- dead: to "workq.Q.dead"
    queue      text        NOT NULL,  -- without the "workq." prefix
    msg_key    bytea,  -- Kafka message key (the idempotency key)
    body       bytea       NOT NULL  -- the encoded envelope
);

COMMENT ON TABLE workq.outbox IS
    'Messages to publish, in order, written with the state change.';
