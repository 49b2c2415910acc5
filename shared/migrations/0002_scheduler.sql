-- 0002_scheduler.sql - what the scheduler and the operator commands need
-- on top of 0001: a mark for dead tasks whose copy is on "workq.Q.dead",
-- the start of a task's current attempt series (`workq retry`), NOTIFY
-- triggers that wake the scheduler, and transactional enqueue through the
-- outbox: workq.enqueue(), callable from any language inside the
-- application's own transaction.
--
-- Like every migration it runs in one transaction under migrate.c's lock
-- and keeps the previous release's binaries working: only new nullable or
-- defaulted columns, new functions, triggers and one partial index.

-- dead_published_at: when the scheduler's copy of a dead task was
-- confirmed by the broker on "workq.Q.dead"; NULL while it is owed.
-- Anything that takes a task out of dead (`workq retry`, `workq dlq
-- replay`) clears it, so that dying again publishes a new copy.
--
-- attempt_base: tasks.attempt when the current attempt series began (0
-- for the first).  `workq retry` gives a dead task a new series of n
-- attempts by setting attempt_base = attempt and max_attempts = attempt +
-- n: attempt numbers keep growing, so the history in workq.attempts is
-- kept whole, and the claim's rule "attempt >= max_attempts is spent"
-- stays true.  max_attempts - attempt_base is the length of the series.
ALTER TABLE workq.tasks
    ADD COLUMN dead_published_at timestamptz,
    ADD COLUMN attempt_base integer NOT NULL DEFAULT 0;

-- NOT VALID: every existing row has attempt_base 0, so the scan that
-- validation would do (under an exclusive lock) proves nothing.
ALTER TABLE workq.tasks ADD CONSTRAINT tasks_attempt_base_check
    CHECK (attempt_base >= 0 AND attempt_base <= attempt) NOT VALID;

-- The scheduler's dead-letter copies: dead tasks still owed a copy,
-- oldest first.  Small: rows leave it when their copy is confirmed.
CREATE INDEX tasks_dead_unpublished_idx ON workq.tasks (finished_at)
    WHERE state = 'dead' AND dead_published_at IS NULL;

-- ---- waking the scheduler -------------------------------------------------
--
-- The scheduler LISTENs on channel workq_scheduler and otherwise sleeps
-- until the earliest time it knows of (a run_at, a lease deadline, a cron
-- tick).  These triggers tell it about work it cannot know of: a task
-- that became scheduled, retry_wait or dead, a run_at that moved, an
-- outbox row.  The payload says which ('tasks', 'outbox'); PostgreSQL
-- folds equal notifications of one transaction into one, so a batch of a
-- thousand rows sends one.  The WHEN clauses are evaluated without calling
-- the function, so the worker's hot path (claims insert or update rows to
-- running, successes to succeeded, lease renewals touch neither column
-- list) pays only for the comparison.
CREATE FUNCTION workq.notify_scheduler() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_notify('workq_scheduler', TG_ARGV[0]);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER tasks_notify_insert AFTER INSERT ON workq.tasks
    FOR EACH ROW WHEN (NEW.state IN ('scheduled', 'retry_wait', 'dead'))
    EXECUTE FUNCTION workq.notify_scheduler('tasks');

CREATE TRIGGER tasks_notify_update AFTER UPDATE OF state, run_at
    ON workq.tasks
    FOR EACH ROW WHEN (NEW.state IN ('scheduled', 'retry_wait', 'dead')
        AND (OLD.state IS DISTINCT FROM NEW.state
             OR OLD.run_at IS DISTINCT FROM NEW.run_at))
    EXECUTE FUNCTION workq.notify_scheduler('tasks');

CREATE TRIGGER outbox_notify AFTER INSERT ON workq.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION workq.notify_scheduler('outbox');

-- ---- UUIDv7 and the envelope in SQL -----------------------------------------
--
-- workq.enqueue() writes the message the relay will publish, so it must
-- write the envelope of shared/envelope.h (wire format version 1) itself:
-- a msgpack map with the keys in the encoder's order and msgpack's
-- smallest encodings, so that its bytes are exactly what the C encoder
-- would write for the same task (tests/integration/test_scheduler.c
-- decodes them strictly and encodes them again to check).

-- A version 7 UUID (RFC 9562): 48 bits of Unix milliseconds over a
-- random version 4 UUID, whose version nibble becomes 7 (bits 52, 53).
CREATE FUNCTION workq.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $fn$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
        PLACING substring(int8send(floor(extract(epoch FROM
            clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
        52, 1), 53, 1), 'hex')::uuid
$fn$;

-- msgpack: a non-negative integer, smallest encoding.
CREATE FUNCTION workq.msgpack_uint(v bigint) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT CASE
        WHEN v < 0 THEN NULL
        WHEN v < 128 THEN substring(int4send(v::integer) FROM 4)
        WHEN v < 256 THEN '\xcc'::bytea
            || substring(int4send(v::integer) FROM 4)
        WHEN v < 65536 THEN '\xcd'::bytea
            || substring(int4send(v::integer) FROM 3)
        WHEN v < 4294967296 THEN '\xce'::bytea || substring(int8send(v) FROM 5)
        ELSE '\xcf'::bytea || int8send(v)
    END
$fn$;

-- msgpack: str (fixstr, str 8, 16, 32) of the text's UTF-8 bytes.
CREATE FUNCTION workq.msgpack_str(s text) RETURNS bytea
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $fn$
    SELECT CASE
        WHEN n < 32 THEN set_byte('\x00'::bytea, 0, 160 + n) || b
        WHEN n < 256 THEN '\xd9'::bytea || substring(int4send(n) FROM 4) || b
        WHEN n < 65536 THEN '\xda'::bytea || substring(int4send(n) FROM 3)
            || b
        ELSE '\xdb'::bytea || int4send(n) || b
    END
    FROM (SELECT convert_to(s, 'UTF8') AS b) AS x,
        LATERAL (SELECT octet_length(x.b) AS n) AS y
$fn$;

-- msgpack: bin (bin 8, 16, 32).
CREATE FUNCTION workq.msgpack_bin(b bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT CASE
        WHEN octet_length(b) < 256 THEN '\xc4'::bytea
            || substring(int4send(octet_length(b)) FROM 4) || b
        WHEN octet_length(b) < 65536 THEN '\xc5'::bytea
            || substring(int4send(octet_length(b)) FROM 3) || b
        ELSE '\xc6'::bytea || int4send(octet_length(b)) || b
    END
$fn$;

-- msgpack: the header of a map of n pairs (fixmap, map 16, map 32).
CREATE FUNCTION workq.msgpack_map(n integer) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT CASE
        WHEN n < 0 THEN NULL
        WHEN n < 16 THEN set_byte('\x00'::bytea, 0, 128 + n)
        WHEN n < 65536 THEN '\xde'::bytea || substring(int4send(n) FROM 3)
        ELSE '\xdf'::bytea || int4send(n)
    END
$fn$;

-- The envelope of one task (envelope.h, version 1).  The arguments must
-- already obey the wire format's rules (workq.enqueue checks them);
-- header values are the JSON strings of the headers object.  run_at NULL
-- or at the epoch leaves "r" out, no headers leaves "h" out.
CREATE FUNCTION workq.envelope(p_id uuid, p_queue text, p_type text,
    p_key text, p_payload bytea, p_attempt integer, p_max_attempts integer,
    p_created_at timestamptz, p_run_at timestamptz, p_headers jsonb)
RETURNS bytea
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    h bytea := '';
    nh integer := 0;
    n integer := 9;
    r bigint := 0;
    kv record;
BEGIN
    IF p_run_at IS NOT NULL THEN
        r := floor(extract(epoch FROM p_run_at) * 1000)::bigint;
    END IF;
    IF r > 0 THEN
        n := n + 1;
    END IF;
    IF p_headers IS NOT NULL AND p_headers <> '{}'::jsonb THEN
        FOR kv IN SELECT e.key, e.value FROM jsonb_each(p_headers) AS e LOOP
            h := h || workq.msgpack_str(kv.key)
                || workq.msgpack_str(kv.value #>> '{}');
            nh := nh + 1;
        END LOOP;
        n := n + 1;
    END IF;
    RETURN workq.msgpack_map(n)
        || workq.msgpack_str('v') || workq.msgpack_uint(1)
        || workq.msgpack_str('id') || '\xc410'::bytea || uuid_send(p_id)
        || workq.msgpack_str('q') || workq.msgpack_str(p_queue)
        || workq.msgpack_str('t') || workq.msgpack_str(p_type)
        || workq.msgpack_str('k') || workq.msgpack_str(p_key)
        || workq.msgpack_str('p') || workq.msgpack_bin(p_payload)
        || workq.msgpack_str('a') || workq.msgpack_uint(p_attempt)
        || workq.msgpack_str('m') || workq.msgpack_uint(p_max_attempts)
        || workq.msgpack_str('c') || workq.msgpack_uint(floor(extract(epoch
            FROM p_created_at) * 1000)::bigint)
        || CASE WHEN r > 0 THEN workq.msgpack_str('r') || workq.msgpack_uint(r)
           ELSE ''::bytea END
        || CASE WHEN nh > 0 THEN workq.msgpack_str('h')
               || workq.msgpack_map(nh) || h
           ELSE ''::bytea END;
END
$fn$;

-- ---- transactional enqueue ----------------------------------------------------
--
-- workq.enqueue: submit a task inside the caller's own transaction, so
-- that the task exists if and only if that transaction commits.  From any
-- language:
--
--   BEGIN;
--   INSERT INTO orders ...;
--   SELECT workq.enqueue('emails', 'send_receipt', '{"order": 42}'::bytea,
--                        idempotency_key => 'receipt-42');
--   COMMIT;
--
-- A task due now becomes a row of workq.outbox holding its envelope; the
-- scheduler's relay publishes outbox rows, oldest first, waits for the
-- broker's confirmation and deletes them (a crash in between publishes a
-- duplicate, which the worker's claim absorbs by idempotency key).  The
-- task's workq.tasks row is made by its first claim, as for any task
-- submitted for now.  A task with run_at in the future is stored as a
-- scheduled task instead, which the scheduler publishes when due; a
-- scheduled task with the same (queue, key) is not stored twice, and its
-- id is returned.
--
-- Arguments follow the envelope's rules (envelope.h): queue 1..128 bytes
-- of [A-Za-z0-9_.-], not starting with '.' nor ending in ".dead"; type
-- 1..128 bytes; idempotency_key 1..512 bytes (NULL: the task id);
-- payload up to 1 MiB; max_attempts >= 1 (NULL: 25); headers a JSON object
-- of at most 64 string values, names 1..256 bytes, values up to 4096
-- bytes.  A violation raises SQLSTATE 22023 (invalid_parameter_value)
-- naming the argument.  Returns the task id (a UUIDv7).
CREATE FUNCTION workq.enqueue(queue text, type text,
    payload bytea DEFAULT '', idempotency_key text DEFAULT NULL,
    max_attempts integer DEFAULT NULL, run_at timestamptz DEFAULT NULL,
    headers jsonb DEFAULT '{}')
RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_id uuid := workq.uuid_v7();
    v_key text := coalesce(enqueue.idempotency_key, v_id::text);
    v_max integer := coalesce(enqueue.max_attempts, 25);
    v_headers jsonb := coalesce(enqueue.headers, '{}'::jsonb);
    v_existing uuid;
    kv record;
    nh integer := 0;
BEGIN
    IF enqueue.queue IS NULL OR enqueue.queue !~ '^[A-Za-z0-9_.-]{1,128}$'
        OR enqueue.queue ~ '^[.]' OR enqueue.queue ~ '[.]dead$' THEN
        RAISE EXCEPTION 'workq.enqueue: queue %: want 1..128 bytes of '
            '[A-Za-z0-9_.-], not starting with "." nor ending in ".dead"',
            coalesce(quote_literal(enqueue.queue), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF enqueue.type IS NULL
        OR octet_length(enqueue.type) NOT BETWEEN 1 AND 128 THEN
        RAISE EXCEPTION 'workq.enqueue: type must be 1..128 bytes'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(v_key) NOT BETWEEN 1 AND 512 THEN
        RAISE EXCEPTION 'workq.enqueue: idempotency_key must be 1..512 bytes'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF enqueue.payload IS NULL THEN
        RAISE EXCEPTION 'workq.enqueue: payload must not be NULL (use '''')'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(enqueue.payload) > 1048576 THEN
        RAISE EXCEPTION 'workq.enqueue: payload is % bytes, the limit is '
            '1048576', octet_length(enqueue.payload)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_max < 1 THEN
        RAISE EXCEPTION 'workq.enqueue: max_attempts must be at least 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(v_headers) <> 'object' THEN
        RAISE EXCEPTION 'workq.enqueue: headers must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR kv IN SELECT e.key, e.value FROM jsonb_each(v_headers) AS e LOOP
        nh := nh + 1;
        IF jsonb_typeof(kv.value) <> 'string' THEN
            RAISE EXCEPTION 'workq.enqueue: header % must be a string',
                quote_literal(kv.key)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF octet_length(kv.key) NOT BETWEEN 1 AND 256
            OR octet_length(kv.value #>> '{}') > 4096 THEN
            RAISE EXCEPTION 'workq.enqueue: header % is too long (names '
                '1..256 bytes, values up to 4096)', quote_literal(
                left(kv.key, 64))
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    IF nh > 64 THEN
        RAISE EXCEPTION 'workq.enqueue: % headers, the limit is 64', nh
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF enqueue.run_at IS NOT NULL AND enqueue.run_at > now() THEN
        INSERT INTO workq.tasks (id, queue, type, idempotency_key, payload,
            headers, state, attempt, max_attempts, run_at)
        VALUES (v_id, enqueue.queue, enqueue.type, v_key, enqueue.payload,
            v_headers, 'scheduled', 0, v_max, enqueue.run_at)
        ON CONFLICT ON CONSTRAINT tasks_queue_key_key DO NOTHING;
        IF NOT FOUND THEN
            SELECT t.id INTO v_existing FROM workq.tasks AS t
                WHERE t.queue = enqueue.queue AND t.idempotency_key = v_key;
            RETURN v_existing;
        END IF;
        RETURN v_id;
    END IF;

    INSERT INTO workq.outbox (task_id, kind, queue, msg_key, body)
    VALUES (v_id, 'task', enqueue.queue, convert_to(v_key, 'UTF8'),
        workq.envelope(v_id, enqueue.queue, enqueue.type, v_key,
            enqueue.payload, 1, v_max, now(), NULL, v_headers));
    RETURN v_id;
END
$fn$;

COMMENT ON FUNCTION workq.enqueue(text, text, bytea, text, integer,
    timestamptz, jsonb) IS
    'Submit a task in the caller''s transaction (outbox); returns its id.';
