-- 0008_workflows.sql - chains, groups with a callback, and batches
-- (issue 18, "Workflows").  A workflow is a small graph of tasks kept in
-- tables of its own: nodes (a task to run, or a callback) and edges
-- (parent → child).  A node starts when the nodes it waits for have
-- ended; starting it writes its task row (state queued) and its message
-- to workq.outbox, which the scheduler's relay publishes.
--
-- Exactly once.  The step that follows an outcome is taken by a trigger
-- on workq.tasks, inside the transaction that records that outcome
-- (the worker's record, the claim that finds attempts spent, the
-- scheduler's lease recovery, `workq cancel`): the next node's task row
-- and outbox row commit with the outcome or not at all.  Each node moves
-- out of pending/started once (guarded UPDATE), and a child's count of
-- parents still running is decremented under its row lock, so one and
-- only one transaction sees it reach zero.  The relay may publish a
-- message twice after a crash; the claim absorbs the duplicate by its
-- idempotency key, which for a workflow node is its task id.
--
-- Cost for other tasks.  Only workflow tasks carry a reference
-- (tasks.workflow_id, NULL for every other row: no bytes beyond the null
-- bitmap the row already has).  The trigger's WHEN clause is evaluated
-- without calling the function, so a task outside a workflow pays one
-- comparison per state change and no query.
--
-- Like every migration it runs in one transaction and keeps the previous
-- release's binaries working: a new nullable column, new tables,
-- functions and one trigger.  Existing rows are not touched.

ALTER TABLE workq.tasks ADD COLUMN workflow_id uuid;

COMMENT ON COLUMN workq.tasks.workflow_id IS
    'The workflow this task is a node of (workq.workflows), else NULL.';

-- One row per workflow.  kind: how it was submitted (chain, group,
-- batch); the graph says the rest.  open: a batch that still takes
-- tasks before its callbacks may run (`workq workflow close`).
CREATE TABLE workq.workflows (
    id          uuid        PRIMARY KEY,  -- UUIDv7
    kind        text        NOT NULL CHECK (kind IN ('chain', 'group',
                    'batch')),
    name        text        CHECK (octet_length(name) BETWEEN 1 AND 256),
    -- the submitter's key: a second submit with it answers the first id
    key         text        UNIQUE CHECK (octet_length(key) BETWEEN 1 AND 512),
    open        boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    closed_at   timestamptz
);

COMMENT ON TABLE workq.workflows IS
    'Chains, groups and batches of tasks (workq.workflow_nodes).';

-- One row per node.  A node's task exists (workq.tasks, id = task_id)
-- from the moment it starts; before that its spec lives here.  state:
-- pending (waiting for parents), started (its task row says how it is
-- doing), succeeded, dead, cancelled (a parent it needed did not
-- succeed; reason says which, and why).  waiting: parents not yet ended,
-- plus one while an open batch holds its callbacks.  input: what its
-- payload is when it starts: its own payload, the result of its single
-- parent (a chain step), or the outcomes of its parents as JSON (a
-- callback).  run_when: start only if every parent succeeded, or once
-- every parent ended whatever the outcome.
CREATE TABLE workq.workflow_nodes (
    workflow_id  uuid        NOT NULL
                 REFERENCES workq.workflows (id) ON DELETE CASCADE,
    node         integer     NOT NULL CHECK (node >= 0),
    task_id      uuid        NOT NULL UNIQUE,
    role         text        NOT NULL CHECK (role IN ('task', 'callback')),
    name         text,
    queue        text        NOT NULL,
    type         text        NOT NULL,
    payload      bytea       NOT NULL DEFAULT '',
    headers      jsonb       NOT NULL DEFAULT '{}',
    max_attempts integer     NOT NULL CHECK (max_attempts >= 1),
    input        text        NOT NULL CHECK (input IN ('payload', 'result',
                     'outcomes')),
    run_when     text        NOT NULL CHECK (run_when IN ('success',
                     'complete')),
    waiting      integer     NOT NULL CHECK (waiting >= 0),
    state        text        NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'started', 'succeeded', 'dead',
                     'cancelled')),
    reason       text,
    started_at   timestamptz,
    ended_at     timestamptz,
    PRIMARY KEY (workflow_id, node)
);

COMMENT ON TABLE workq.workflow_nodes IS
    'The tasks and callbacks of each workflow, and where each stands.';

CREATE TABLE workq.workflow_edges (
    workflow_id uuid    NOT NULL,
    parent      integer NOT NULL,
    child       integer NOT NULL,
    PRIMARY KEY (workflow_id, parent, child),
    FOREIGN KEY (workflow_id, parent)
        REFERENCES workq.workflow_nodes (workflow_id, node) ON DELETE CASCADE,
    FOREIGN KEY (workflow_id, child)
        REFERENCES workq.workflow_nodes (workflow_id, node) ON DELETE CASCADE
);

COMMENT ON TABLE workq.workflow_edges IS
    'Which node waits for which: child starts after parent ended.';

-- Children of a node are found by (workflow_id, parent), the primary
-- key's prefix; parents of a node (inputs, the graph) by this index.
CREATE INDEX workflow_edges_child_idx
    ON workq.workflow_edges (workflow_id, child);

-- ---- helpers ---------------------------------------------------------------

-- Text of bytes that are UTF-8, else NULL.
CREATE FUNCTION workq.workflow_utf8(b bytea) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    RETURN convert_from(b, 'UTF8');
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$fn$;

-- Raises 22023 (invalid_parameter_value) with `msg`.
CREATE FUNCTION workq.workflow_bad(msg text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'workflow: %', msg
        USING ERRCODE = 'invalid_parameter_value';
END
$fn$;

-- Checks one task of a workflow document and stores it as node `n`
-- (with the role, name, input, run_when and waiting given).  The rules
-- are workq.enqueue's; a task's key is its id, so none may be given.
CREATE FUNCTION workq.workflow_add_node(wf uuid, n integer, t jsonb,
    dflt_queue text, p_role text, p_name text, p_input text,
    p_run_when text, p_waiting integer, what text)
RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    k text;
    v_queue text;
    v_payload bytea := '';
    v_max integer := 25;
    v_headers jsonb := '{}';
    kv record;
    nh integer := 0;
BEGIN
    IF t IS NULL OR jsonb_typeof(t) <> 'object' THEN
        PERFORM workq.workflow_bad(what || ' must be an object');
    END IF;
    FOR k IN SELECT jsonb_object_keys(t) LOOP
        IF k NOT IN ('type', 'queue', 'payload', 'payload_base64',
            'max_attempts', 'headers', 'name') THEN
            PERFORM workq.workflow_bad(format('%s: unknown member "%s"',
                what, left(k, 64)));
        END IF;
    END LOOP;
    IF jsonb_typeof(t->'type') IS DISTINCT FROM 'string'
        OR octet_length(t->>'type') NOT BETWEEN 1 AND 128 THEN
        PERFORM workq.workflow_bad(what || ': "type" must be a string of '
            '1..128 bytes');
    END IF;
    v_queue := coalesce(t->>'queue', dflt_queue);
    IF v_queue IS NULL OR v_queue !~ '^[A-Za-z0-9_.-]{1,128}$'
        OR v_queue ~ '^[.]' OR v_queue ~ '[.]dead$' THEN
        PERFORM workq.workflow_bad(format('%s: queue %s: want 1..128 bytes '
            'of [A-Za-z0-9_.-], not starting with "." nor ending in ".dead" '
            '(give "queue" here or in the document)', what,
            coalesce(quote_literal(left(v_queue, 140)), 'missing')));
    END IF;
    IF t ? 'payload' AND t ? 'payload_base64' THEN
        PERFORM workq.workflow_bad(what || ': give "payload" or '
            '"payload_base64", not both');
    ELSIF t ? 'payload' THEN
        -- a string as its UTF-8 bytes, any other JSON value as its text
        v_payload := convert_to(CASE jsonb_typeof(t->'payload')
            WHEN 'string' THEN t->>'payload' ELSE (t->'payload')::text END,
            'UTF8');
    ELSIF t ? 'payload_base64' THEN
        BEGIN
            v_payload := decode(t->>'payload_base64', 'base64');
        EXCEPTION WHEN others THEN
            PERFORM workq.workflow_bad(what || ': "payload_base64" is not '
                'base64');
        END;
    END IF;
    IF octet_length(v_payload) > 1048576 THEN
        PERFORM workq.workflow_bad(format('%s: payload is %s bytes, the '
            'limit is 1048576', what, octet_length(v_payload)));
    END IF;
    IF t ? 'max_attempts' THEN
        IF jsonb_typeof(t->'max_attempts') <> 'number'
            OR (t->>'max_attempts') !~ '^[0-9]{1,9}$'
            OR (t->>'max_attempts')::integer < 1 THEN
            PERFORM workq.workflow_bad(what || ': "max_attempts" must be a '
                'whole number >= 1');
        END IF;
        v_max := (t->>'max_attempts')::integer;
    END IF;
    IF t ? 'headers' THEN
        v_headers := t->'headers';
        IF jsonb_typeof(v_headers) <> 'object' THEN
            PERFORM workq.workflow_bad(what || ': "headers" must be an '
                'object');
        END IF;
        FOR kv IN SELECT e.key, e.value FROM jsonb_each(v_headers) AS e LOOP
            nh := nh + 1;
            IF jsonb_typeof(kv.value) <> 'string'
                OR octet_length(kv.key) NOT BETWEEN 1 AND 256
                OR octet_length(kv.value #>> '{}') > 4096
                OR kv.key = 'workq-workflow' THEN
                PERFORM workq.workflow_bad(format('%s: header %s: names '
                    '1..256 bytes (not "workq-workflow"), string values up '
                    'to 4096 bytes', what, quote_literal(left(kv.key, 64))));
            END IF;
        END LOOP;
        IF nh > 63 THEN
            PERFORM workq.workflow_bad(format('%s: %s headers, the limit is '
                '63', what, nh));
        END IF;
    END IF;
    IF t ? 'name' AND (jsonb_typeof(t->'name') <> 'string'
        OR octet_length(t->>'name') NOT BETWEEN 1 AND 128) THEN
        PERFORM workq.workflow_bad(what || ': "name" must be a string of '
            '1..128 bytes');
    END IF;
    INSERT INTO workq.workflow_nodes (workflow_id, node, task_id, role, name,
        queue, type, payload, headers, max_attempts, input, run_when,
        waiting)
    VALUES (wf, n, workq.uuid_v7(), p_role, coalesce(t->>'name', p_name),
        v_queue, t->>'type', v_payload, v_headers, v_max,
        CASE WHEN p_input = 'result' AND (t ? 'payload'
            OR t ? 'payload_base64') THEN 'payload' ELSE p_input END,
        p_run_when, p_waiting);
END
$fn$;

-- The payload of a callback: its workflow and, per parent, the node's
-- outcome, result (text if UTF-8, else base64) and error.  Results are
-- left out ("results_omitted": true) when they would pass the payload
-- limit of 1 MiB.
CREATE FUNCTION workq.workflow_outcomes(wf uuid, n integer) RETURNS bytea
LANGUAGE plpgsql AS $fn$
DECLARE
    w record;
    doc jsonb;
    b bytea;
BEGIN
    SELECT * INTO w FROM workq.workflows WHERE id = wf;
    FOR i IN 0..1 LOOP
        SELECT jsonb_strip_nulls(jsonb_build_object(
                'workflow', wf, 'kind', w.kind, 'name', w.name,
                'results_omitted', CASE WHEN i = 1 THEN true END,
                'outcomes', coalesce(jsonb_agg(jsonb_strip_nulls(
                    jsonb_build_object('node', p.node, 'name', p.name,
                        'task_id', p.task_id, 'state', p.state,
                        'result', CASE WHEN i = 0 AND p.state = 'succeeded'
                            THEN workq.workflow_utf8(t.result) END,
                        'result_base64', CASE WHEN i = 0
                            AND p.state = 'succeeded'
                            AND workq.workflow_utf8(t.result) IS NULL
                            THEN encode(t.result, 'base64') END,
                        'error', CASE WHEN p.state = 'dead'
                            THEN coalesce(t.last_error, p.reason)
                            WHEN p.state = 'cancelled' THEN p.reason END))
                    ORDER BY p.node), '[]'::jsonb)))
          INTO doc
          FROM workq.workflow_edges e
          JOIN workq.workflow_nodes p
            ON p.workflow_id = e.workflow_id AND p.node = e.parent
          LEFT JOIN workq.tasks t ON t.id = p.task_id
         WHERE e.workflow_id = wf AND e.child = n;
        b := convert_to(doc::text, 'UTF8');
        EXIT WHEN octet_length(b) <= 1048576;
    END LOOP;
    RETURN b;
END
$fn$;

-- Starts node n: its task row (queued) and its message in the outbox,
-- in the caller's transaction.  An input over the payload limit (a
-- parent's result cannot be, a callback's outcomes can) cancels it.
CREATE FUNCTION workq.workflow_start_node(wf uuid, n integer)
RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    nd record;
    v_payload bytea;
    v_key text;
    v_headers jsonb;
BEGIN
    SELECT * INTO nd FROM workq.workflow_nodes
     WHERE workflow_id = wf AND node = n;
    IF nd.input = 'result' THEN
        SELECT t.result INTO v_payload
          FROM workq.workflow_edges e
          JOIN workq.workflow_nodes p
            ON p.workflow_id = e.workflow_id AND p.node = e.parent
          JOIN workq.tasks t ON t.id = p.task_id
         WHERE e.workflow_id = wf AND e.child = n
         ORDER BY e.parent LIMIT 1;
    ELSIF nd.input = 'outcomes' THEN
        v_payload := workq.workflow_outcomes(wf, n);
    ELSE
        v_payload := nd.payload;
    END IF;
    v_payload := coalesce(v_payload, '');
    IF octet_length(v_payload) > 1048576 THEN
        PERFORM workq.workflow_node_ended(wf, n, 'cancelled', format(
            'its input is %s bytes, the payload limit is 1048576',
            octet_length(v_payload)));
        RETURN;
    END IF;
    v_key := nd.task_id::text;
    v_headers := nd.headers || jsonb_build_object('workq-workflow', wf::text);
    INSERT INTO workq.tasks (id, queue, type, idempotency_key, payload,
        headers, state, attempt, max_attempts, workflow_id)
    VALUES (nd.task_id, nd.queue, nd.type, v_key, v_payload, v_headers,
        'queued', 0, nd.max_attempts, wf);
    INSERT INTO workq.outbox (task_id, kind, queue, msg_key, body)
    VALUES (nd.task_id, 'task', nd.queue, convert_to(v_key, 'UTF8'),
        workq.envelope(nd.task_id, nd.queue, nd.type, v_key, v_payload, 1,
            nd.max_attempts, now(), NULL, v_headers));
    UPDATE workq.workflow_nodes SET state = 'started', started_at = now()
     WHERE workflow_id = wf AND node = n;
END
$fn$;

-- Node n ended with `outcome` (succeeded, dead, cancelled): each child
-- counts one parent less; a child that needs every parent to succeed is
-- cancelled when this one did not (and so on down the graph, with the
-- first cause as the reason); a child whose parents have all ended
-- starts.  A node that ended already is left alone, so a task that a
-- workflow has moved on from (a dead node retried by hand) changes
-- nothing.
CREATE FUNCTION workq.workflow_node_ended(wf uuid, n integer, outcome text,
    p_reason text)
RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    c record;
    left_ integer;
    rw text;
    nm text;
    why text;
BEGIN
    UPDATE workq.workflow_nodes
       SET state = outcome, reason = p_reason, ended_at = now()
     WHERE workflow_id = wf AND node = n AND state IN ('pending', 'started')
    RETURNING name INTO nm;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    why := CASE WHEN outcome = 'cancelled' THEN p_reason
        ELSE format('node %s%s ended %s%s', n,
            coalesce(' (' || nm || ')', ''), outcome,
            coalesce(': ' || p_reason, '')) END;
    FOR c IN SELECT e.child FROM workq.workflow_edges e
              WHERE e.workflow_id = wf AND e.parent = n ORDER BY e.child LOOP
        UPDATE workq.workflow_nodes SET waiting = waiting - 1
         WHERE workflow_id = wf AND node = c.child AND state = 'pending'
        RETURNING waiting, run_when INTO left_, rw;
        CONTINUE WHEN NOT FOUND;
        IF outcome <> 'succeeded' AND rw = 'success' THEN
            PERFORM workq.workflow_node_ended(wf, c.child, 'cancelled', why);
        ELSIF left_ = 0 THEN
            PERFORM workq.workflow_start_node(wf, c.child);
        END IF;
    END LOOP;
END
$fn$;

-- The trigger: a workflow task reached a final state.
CREATE FUNCTION workq.workflow_task_ended() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    n integer;
BEGIN
    SELECT node INTO n FROM workq.workflow_nodes
     WHERE task_id = NEW.id AND workflow_id = NEW.workflow_id;
    IF FOUND THEN
        PERFORM workq.workflow_node_ended(NEW.workflow_id, n, NEW.state,
            CASE WHEN NEW.state = 'succeeded' THEN NULL
                 ELSE coalesce(NEW.last_error, NEW.state) END);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER tasks_workflow_ended AFTER UPDATE OF state ON workq.tasks
    FOR EACH ROW WHEN (NEW.workflow_id IS NOT NULL
        AND NEW.state IN ('succeeded', 'dead', 'cancelled')
        AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION workq.workflow_task_ended();

-- ---- submitting, adding, closing, reading ----------------------------------
--
-- workq.workflow_submit(doc): stores the workflow of a JSON document and
-- starts the nodes that wait for nothing, in the caller's transaction
-- (their messages go through the outbox).  Returns its id.  The document
-- (docs/workflows.md):
--   {"chain": [T, ...]}                       each step after the first
--       runs once the one before succeeded, with its result as payload
--       (unless it gives a payload of its own)
--   {"group": [T, ...], "callback": T, "callback_when": "success" |
--       "complete"}                            callback optional
--   {"batch": "NAME", "tasks": [T, ...], "on_success": T,
--       "on_complete": T, "open": false}       callbacks optional
-- and in each: "queue" (the default for its tasks), "name", "key".
-- T = {"type", "queue", "payload" | "payload_base64", "max_attempts",
-- "headers", "name"}.  At most 5000 nodes per workflow.  A bad document
-- raises 22023 naming what is wrong.
CREATE FUNCTION workq.workflow_submit(doc jsonb) RETURNS uuid
LANGUAGE plpgsql AS $fn$
DECLARE
    wf uuid := workq.uuid_v7();
    k text;
    v_kind text;
    v_name text;
    v_open boolean := false;
    v_existing uuid;
    dq text := doc->>'queue';
    arr jsonb;
    n integer;
    cb integer;
    r record;
BEGIN
    IF doc IS NULL OR jsonb_typeof(doc) <> 'object' THEN
        PERFORM workq.workflow_bad('the document must be a JSON object');
    END IF;
    FOR k IN SELECT jsonb_object_keys(doc) LOOP
        IF k NOT IN ('chain', 'group', 'batch', 'tasks', 'callback',
            'callback_when', 'on_success', 'on_complete', 'open', 'queue',
            'name', 'key') THEN
            PERFORM workq.workflow_bad(format('unknown member "%s"',
                left(k, 64)));
        END IF;
    END LOOP;
    IF (doc ? 'chain')::int + (doc ? 'group')::int + (doc ? 'batch')::int
        <> 1 THEN
        PERFORM workq.workflow_bad('give exactly one of "chain", "group" '
            'and "batch"');
    END IF;
    v_kind := CASE WHEN doc ? 'chain' THEN 'chain'
        WHEN doc ? 'group' THEN 'group' ELSE 'batch' END;
    IF v_kind <> 'group' AND (doc ? 'callback' OR doc ? 'callback_when') THEN
        PERFORM workq.workflow_bad('"callback" belongs to a group');
    END IF;
    IF v_kind <> 'batch' AND (doc ? 'tasks' OR doc ? 'on_success'
        OR doc ? 'on_complete' OR doc ? 'open') THEN
        PERFORM workq.workflow_bad('"tasks", "on_success", "on_complete" '
            'and "open" belong to a batch');
    END IF;
    IF doc ? 'queue' AND jsonb_typeof(doc->'queue') <> 'string' THEN
        PERFORM workq.workflow_bad('"queue" must be a string');
    END IF;
    v_name := CASE WHEN v_kind = 'batch' THEN doc->>'batch'
        ELSE doc->>'name' END;
    IF v_kind = 'batch' THEN
        IF jsonb_typeof(doc->'batch') <> 'string' THEN
            PERFORM workq.workflow_bad('"batch" is the batch''s name, a '
                'string');
        END IF;
        IF doc ? 'name' THEN
            PERFORM workq.workflow_bad('a batch is named by "batch"');
        END IF;
    END IF;
    IF v_name IS NOT NULL AND octet_length(v_name) NOT BETWEEN 1 AND 256 THEN
        PERFORM workq.workflow_bad('the name must be 1..256 bytes');
    END IF;
    IF doc ? 'open' THEN
        IF jsonb_typeof(doc->'open') <> 'boolean' THEN
            PERFORM workq.workflow_bad('"open" must be true or false');
        END IF;
        v_open := (doc->>'open')::boolean;
    END IF;
    IF doc ? 'key' THEN
        IF jsonb_typeof(doc->'key') <> 'string'
            OR octet_length(doc->>'key') NOT BETWEEN 1 AND 512 THEN
            PERFORM workq.workflow_bad('"key" must be a string of 1..512 '
                'bytes');
        END IF;
        INSERT INTO workq.workflows (id, kind, name, key, open)
        VALUES (wf, v_kind, v_name, doc->>'key', v_open)
        ON CONFLICT (key) DO NOTHING;
        IF NOT FOUND THEN
            SELECT id INTO v_existing FROM workq.workflows
             WHERE key = doc->>'key';
            RETURN v_existing;
        END IF;
    ELSE
        INSERT INTO workq.workflows (id, kind, name, open)
        VALUES (wf, v_kind, v_name, v_open);
    END IF;

    arr := coalesce(doc->v_kind, '[]'::jsonb);
    IF v_kind = 'batch' THEN
        arr := coalesce(doc->'tasks', '[]'::jsonb);
    END IF;
    IF jsonb_typeof(arr) <> 'array' THEN
        PERFORM workq.workflow_bad(format('"%s" must be an array of tasks',
            CASE WHEN v_kind = 'batch' THEN 'tasks' ELSE v_kind END));
    END IF;
    n := jsonb_array_length(arr);
    IF n = 0 AND v_kind <> 'batch' THEN
        PERFORM workq.workflow_bad(format('"%s" has no tasks', v_kind));
    END IF;
    IF n > 4998 THEN
        PERFORM workq.workflow_bad(format('%s tasks, the limit is 4998', n));
    END IF;
    FOR i IN 0..n - 1 LOOP
        PERFORM workq.workflow_add_node(wf, i, arr->i, dq, 'task', NULL,
            CASE WHEN v_kind = 'chain' AND i > 0 THEN 'result'
                ELSE 'payload' END,
            'success', CASE WHEN v_kind = 'chain' AND i > 0 THEN 1 ELSE 0 END,
            format('task %s', i));
        IF v_kind = 'chain' AND i > 0 THEN
            INSERT INTO workq.workflow_edges VALUES (wf, i - 1, i);
        END IF;
    END LOOP;

    cb := n;
    IF v_kind = 'group' AND doc ? 'callback' THEN
        IF coalesce(doc->>'callback_when', 'success')
            NOT IN ('success', 'complete') THEN
            PERFORM workq.workflow_bad('"callback_when" is "success" or '
                '"complete"');
        END IF;
        PERFORM workq.workflow_add_node(wf, cb, doc->'callback', dq,
            'callback', 'callback', 'outcomes',
            coalesce(doc->>'callback_when', 'success'), n, 'callback');
        INSERT INTO workq.workflow_edges
            SELECT wf, i, cb FROM generate_series(0, n - 1) AS i;
        cb := cb + 1;
    ELSIF v_kind = 'group' AND doc ? 'callback_when' THEN
        PERFORM workq.workflow_bad('"callback_when" without "callback"');
    END IF;
    IF v_kind = 'batch' THEN
        FOREACH k IN ARRAY ARRAY['on_success', 'on_complete'] LOOP
            CONTINUE WHEN NOT doc ? k;
            PERFORM workq.workflow_add_node(wf, cb, doc->k, dq, 'callback',
                k, 'outcomes', CASE k WHEN 'on_success' THEN 'success'
                    ELSE 'complete' END, n + v_open::int, k);
            INSERT INTO workq.workflow_edges
                SELECT wf, i, cb FROM generate_series(0, n - 1) AS i;
            cb := cb + 1;
        END LOOP;
    END IF;

    FOR r IN SELECT node FROM workq.workflow_nodes
              WHERE workflow_id = wf AND waiting = 0 AND state = 'pending'
              ORDER BY node LOOP
        PERFORM workq.workflow_start_node(wf, r.node);
    END LOOP;
    RETURN wf;
END
$fn$;

COMMENT ON FUNCTION workq.workflow_submit(jsonb) IS
    'Submit a chain, group or batch (JSON document); returns its id.';

-- workq.workflow_add(wf, tasks): adds tasks (a JSON array of T) to batch
-- wf and starts them; its callbacks then wait for them too.  A batch
-- takes tasks while it is open or some of its tasks have not ended, and
-- not once a callback has started.  Returns the new tasks' ids in order.
-- No such workflow: SQLSTATE P0002; not a batch, or done: 55000.
CREATE FUNCTION workq.workflow_add(wf uuid, tasks jsonb)
RETURNS SETOF uuid
LANGUAGE plpgsql AS $fn$
DECLARE
    w record;
    first integer;
    n integer;
    total integer;
BEGIN
    SELECT * INTO w FROM workq.workflows WHERE id = wf FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'workflow %: no such workflow', wf
            USING ERRCODE = 'no_data_found';
    END IF;
    IF w.kind <> 'batch' THEN
        RAISE EXCEPTION 'workflow %: a % takes no tasks once submitted, only '
            'a batch does', wf, w.kind
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF tasks IS NULL OR jsonb_typeof(tasks) <> 'array'
        OR jsonb_array_length(tasks) = 0 THEN
        PERFORM workq.workflow_bad('want a non-empty array of tasks');
    END IF;
    -- the callbacks' rows: locked, so that none starts meanwhile
    PERFORM 1 FROM workq.workflow_nodes
      WHERE workflow_id = wf AND role = 'callback' ORDER BY node FOR UPDATE;
    IF EXISTS (SELECT 1 FROM workq.workflow_nodes WHERE workflow_id = wf
                AND role = 'callback' AND state <> 'pending')
        OR (NOT w.open AND NOT EXISTS (SELECT 1 FROM workq.workflow_nodes
                WHERE workflow_id = wf AND role = 'task'
                  AND state IN ('pending', 'started'))) THEN
        RAISE EXCEPTION 'workflow %: the batch is done (closed, every task '
            'ended); it takes no more tasks', wf
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT max(node) + 1, count(*) INTO first, total
      FROM workq.workflow_nodes WHERE workflow_id = wf;
    n := jsonb_array_length(tasks);
    IF total + n > 5000 THEN
        PERFORM workq.workflow_bad(format('the batch would have %s nodes, '
            'the limit is 5000', total + n));
    END IF;
    FOR i IN 0..n - 1 LOOP
        PERFORM workq.workflow_add_node(wf, first + i, tasks->i, NULL, 'task',
            NULL, 'payload', 'success', 0, format('task %s', i));
        INSERT INTO workq.workflow_edges
            SELECT wf, first + i, c.node FROM workq.workflow_nodes c
             WHERE c.workflow_id = wf AND c.role = 'callback';
    END LOOP;
    UPDATE workq.workflow_nodes SET waiting = waiting + n
     WHERE workflow_id = wf AND role = 'callback';
    FOR i IN 0..n - 1 LOOP
        PERFORM workq.workflow_start_node(wf, first + i);
    END LOOP;
    RETURN QUERY SELECT task_id FROM workq.workflow_nodes
                  WHERE workflow_id = wf AND node >= first ORDER BY node;
END
$fn$;

-- workq.workflow_close(wf): an open batch stops taking tasks, so that
-- its callbacks run once its tasks have ended (at once if they have).
-- Returns false if it was closed already.
CREATE FUNCTION workq.workflow_close(wf uuid) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    w record;
    c record;
    left_ integer;
BEGIN
    SELECT * INTO w FROM workq.workflows WHERE id = wf FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'workflow %: no such workflow', wf
            USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT w.open THEN
        RETURN false;
    END IF;
    UPDATE workq.workflows SET open = false, closed_at = now()
     WHERE id = wf;
    FOR c IN SELECT node FROM workq.workflow_nodes
              WHERE workflow_id = wf AND role = 'callback' AND state = 'pending'
              ORDER BY node LOOP
        UPDATE workq.workflow_nodes SET waiting = waiting - 1
         WHERE workflow_id = wf AND node = c.node
        RETURNING waiting INTO left_;
        IF left_ = 0 THEN
            PERFORM workq.workflow_start_node(wf, c.node);
        END IF;
    END LOOP;
    RETURN true;
END
$fn$;

-- workq.workflow_json(id): the whole graph of a workflow, found by its
-- id or by the task id of one of its nodes; NULL if neither.  Each
-- node's state is its task's state once it started (queued, running,
-- retry_wait, ...), else pending, or how it ended.  progress counts the
-- tasks (not the callbacks): total, succeeded, dead, cancelled, pending
-- (not ended yet).  state: open (a batch still taking tasks), running,
-- succeeded (every node did), failed (every node ended, not all
-- succeeded).
CREATE FUNCTION workq.workflow_json(p uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    wf uuid;
    w record;
    nodes jsonb;
    prog record;
    unended integer;
    failed integer;
BEGIN
    SELECT id INTO wf FROM workq.workflows WHERE id = p;
    IF NOT FOUND THEN
        SELECT workflow_id INTO wf FROM workq.workflow_nodes
         WHERE task_id = p;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    SELECT * INTO w FROM workq.workflows WHERE id = wf;
    SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
            'node', n.node, 'name', n.name, 'role', n.role,
            'task_id', n.task_id, 'queue', n.queue, 'type', n.type,
            'state', CASE WHEN n.state = 'started'
                THEN coalesce(t.state, 'queued') ELSE n.state END,
            'when', CASE WHEN n.role = 'callback' THEN n.run_when END,
            'parents', (SELECT coalesce(jsonb_agg(e.parent ORDER BY e.parent),
                    '[]'::jsonb) FROM workq.workflow_edges e
                 WHERE e.workflow_id = wf AND e.child = n.node),
            'attempt', t.attempt,
            'error', CASE WHEN n.state IN ('dead', 'cancelled') THEN n.reason
                WHEN t.state IN ('retry_wait', 'dead') THEN t.last_error END,
            'started_at', n.started_at, 'ended_at', n.ended_at))
            ORDER BY n.node), '[]'::jsonb),
           count(*) FILTER (WHERE n.state IN ('pending', 'started')),
           count(*) FILTER (WHERE n.state IN ('dead', 'cancelled'))
      INTO nodes, unended, failed
      FROM workq.workflow_nodes n
      LEFT JOIN workq.tasks t ON t.id = n.task_id
     WHERE n.workflow_id = wf;
    SELECT count(*) AS total,
           count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE state = 'dead') AS dead,
           count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE state IN ('pending', 'started')) AS pending
      INTO prog
      FROM workq.workflow_nodes WHERE workflow_id = wf AND role = 'task';
    RETURN jsonb_strip_nulls(jsonb_build_object(
        'id', wf, 'kind', w.kind, 'name', w.name, 'key', w.key,
        'state', CASE WHEN w.open THEN 'open'
            WHEN unended > 0 THEN 'running'
            WHEN failed = 0 THEN 'succeeded' ELSE 'failed' END,
        'open', w.open, 'created_at', w.created_at,
        'closed_at', w.closed_at,
        'progress', jsonb_build_object('total', prog.total,
            'succeeded', prog.succeeded, 'dead', prog.dead,
            'cancelled', prog.cancelled, 'pending', prog.pending),
        'nodes', nodes));
END
$fn$;
