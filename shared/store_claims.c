/*
 * store_claims.c - the worker's SQL, part of the store (see
 * store_claims.h for the contracts and docs/task-states.md for the rules
 * they implement).
 *
 * Batches travel as one-dimensional arrays in PostgreSQL's binary array
 * format (array_send: ndim, has-null flag, element type, dimension and
 * lower bound, then per element a 4-byte length and the element's binary
 * form): uuid as its 16 bytes, text and bytea as their bytes, int4/int8
 * big-endian.  Nothing is escaped, so payloads and keys of any bytes
 * travel as they are, and the statements unnest() the arrays into rows.
 * The round's statements are prepared once per connection (store_int.h's
 * WQ_PREP_* bits, cleared by a reconnect): planning the claim and the
 * record cost PostgreSQL more than executing them for a round of a few
 * tasks, which is what a worker makes below its top speed (issue 14).
 * Behind a transaction-mode pooler (store.h, WQ_STORE_POOLER_TRANSACTION)
 * they go unnamed instead, in the same pipeline.  Named, they run after
 * the plan guard (below), which keeps a plan made on an empty table from
 * scanning it whole once it is full.
 *
 * Owns nothing but what struct wq_claim_bufs holds; the connection is the
 * caller's store's (store_int.h).  Used by the worker only, which aborts
 * on exhaustion (alloc.h).
 */
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "alloc.h"
#include "pgarray.h"
#include "store_claims.h"
#include "store_int.h"
#include "uuid.h"


/* The buffers of struct wq_claim_bufs, by use. */
enum {
    B_R_ID, B_R_ATTEMPT, B_R_OUTCOME, B_R_STATE, B_R_RESULT, B_R_ERROR,
    B_R_DELAY, B_R_DURATION,
    B_C_ID, B_C_QUEUE, B_C_TYPE, B_C_KEY, B_C_PAYLOAD, B_C_HEADERS,
    B_C_MAX, B_C_CREATED, B_C_PRIORITY, B_C_UNCLAIMED,
    B_N_ID, B_N_QUEUE, B_N_TYPE, B_N_KEY, B_N_PAYLOAD, B_N_HEADERS, B_N_MAX,
    B_N_CREATED, B_N_PRIORITY, B_N_OUTCOME, B_N_STATE, B_N_RESULT, B_N_ERROR,
    B_N_DELAY, B_N_DURATION, B_N_STARTED,
    B_COUNT
};

_Static_assert(B_COUNT <= WQ_ARRAY_LEN(((struct wq_claim_bufs *)0)->b),
    "struct wq_claim_bufs needs more buffers");

/*
 * Record: one statement for the batch.  The guard of docs/task-states.md
 * ("Record") is the WHERE of the tasks update; the history is written
 * only for the tasks that passed it.  RETURNING says which.
 *
 * History (migration 0004): an attempt that succeeded stays in the task
 * row (started_at, worker, finished_at, duration_ms), so a success writes
 * no attempts row; any other outcome, and a success with a note (error:
 * "stdout cut at ..."), which the task row has no column for, inserts
 * its row (`hist`).  `open`
 * closes a row opened at claim by a binary of an earlier release (rows
 * with outcome NULL): it finds nothing otherwise, by the primary key.
 *
 * RUNNING is `(SELECT 'running')`, not the literal: with the literal the
 * planner may answer "state = 'running'" from the partial index
 * tasks_lease_idx and join it with the batch, and under load that index
 * is full of dead entries (every task passes through it), which made a
 * round of 240 outcomes cost 30 ms instead of 5.  The sub-select's value
 * is unknown when planning, so the index cannot match and each row is
 * found by its primary key.
 */
#define RUNNING "(SELECT 'running'::text)"
static const char record_sql[] =
    "WITH o AS ("
    "  SELECT * FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::text[],"
    "    $5::bytea[], $6::text[], $7::int8[], $8::int8[])"
    "    AS o(id, attempt, outcome, state, result, error, delay_ms,"
    "         duration_ms)"
    "), done AS ("
    "  UPDATE workq.tasks t SET"
    "    state = o.state,"
    "    result = CASE WHEN o.state = 'succeeded' THEN o.result"
    "             ELSE t.result END,"
    "    last_error = CASE WHEN o.state = 'succeeded' THEN t.last_error"
    "                 ELSE nullif(o.error, '') END,"
    "    run_at = CASE WHEN o.state = 'retry_wait'"
    "             THEN now() + o.delay_ms * interval '1 millisecond' END,"
    "    finished_at = CASE WHEN o.state IN ('succeeded', 'dead',"
    "                  'cancelled') THEN now() END,"
    "    duration_ms = o.duration_ms,"
    "    lease_owner = NULL, lease_expires_at = NULL,"
    "    worker = $9, updated_at = now()"
    "  FROM o"
    "  WHERE t.id = o.id AND t.state = " RUNNING " AND t.lease_owner = $9"
    "    AND t.attempt = o.attempt"
    "  RETURNING t.id, t.started_at"
    "), hist AS ("
    "  INSERT INTO workq.attempts AS a (task_id, attempt, started_at,"
    "    finished_at, duration_ms, worker, outcome, error)"
    "  SELECT o.id, o.attempt, coalesce(done.started_at, now()), now(),"
    "    o.duration_ms, $9, o.outcome, nullif(o.error, '')"
    "  FROM o JOIN done ON done.id = o.id"
    "  WHERE o.outcome <> 'succeeded' OR o.error <> ''"
    "  ON CONFLICT (task_id, attempt) DO UPDATE SET"
    "    outcome = EXCLUDED.outcome, finished_at = EXCLUDED.finished_at,"
    "    duration_ms = EXCLUDED.duration_ms, error = EXCLUDED.error,"
    "    worker = EXCLUDED.worker"
    "  WHERE a.outcome IS NULL"
    "), open AS ("
    "  UPDATE workq.attempts a SET outcome = o.outcome, finished_at = now(),"
    "    duration_ms = o.duration_ms, worker = $9"
    "  FROM o"
    "  WHERE a.task_id = ANY (ARRAY(SELECT id FROM done))"
    "    AND a.task_id = o.id AND a.attempt = o.attempt"
    "    AND o.outcome = 'succeeded' AND o.error = ''"
    "    AND a.outcome IS NULL"
    ")"
    "SELECT id::text FROM done";

/*
 * Record of unclaimed runs (docs/task-states.md "Unclaimed runs"): the
 * task's one write, its row inserted in its final state with attempt 1,
 * and its attempts row when it ended other than succeeded (or with a
 * note), as the record above writes it.  A row that appeared since the
 * claim found none (a cancel, another delivery's claim) wins: ON
 * CONFLICT DO NOTHING, and the outcome is not recorded.  The triggers of
 * an INSERT do the rest: the scheduler's wake-up for retry_wait and dead,
 * a completion hook for a final state.
 */
static const char insert_sql[] =
    "WITH o AS ("
    "  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],"
    "    $5::bytea[], $6::text[], $7::int4[], $8::int8[], $9::int4[],"
    "    $10::text[], $11::text[], $12::bytea[], $13::text[], $14::int8[],"
    "    $15::int8[], $16::int8[])"
    "    AS o(id, queue, type, key, payload, headers, max_attempts,"
    "         created_ms, priority, outcome, state, result, error, delay_ms,"
    "         duration_ms, started_ms)"
    "), ins AS ("
    "  INSERT INTO workq.tasks AS t (id, queue, type, idempotency_key,"
    "    payload, headers, state, attempt, max_attempts, created_at,"
    "    started_at, finished_at, duration_ms, worker, result, last_error,"
    "    run_at, priority)"
    "  SELECT id, queue, type, key, payload, headers::jsonb, state, 1,"
    "    max_attempts,"
    "    timestamptz 'epoch' + created_ms * interval '1 millisecond',"
    "    least(now(), timestamptz 'epoch'"
    "      + started_ms * interval '1 millisecond'),"
    "    CASE WHEN state IN ('succeeded', 'dead', 'cancelled') THEN now() END,"
    "    duration_ms, $17,"
    "    CASE WHEN state = 'succeeded' THEN result END,"
    "    CASE WHEN state <> 'succeeded' THEN nullif(error, '') END,"
    "    CASE WHEN state = 'retry_wait'"
    "      THEN now() + delay_ms * interval '1 millisecond' END,"
    "    priority::int2"
    "  FROM o"
    "  ON CONFLICT DO NOTHING"
    "  RETURNING t.id, t.started_at"
    "), hist AS ("
    "  INSERT INTO workq.attempts (task_id, attempt, started_at,"
    "    finished_at, duration_ms, worker, outcome, error)"
    "  SELECT o.id, 1, ins.started_at, now(), o.duration_ms, $17,"
    "    o.outcome, nullif(o.error, '')"
    "  FROM o JOIN ins ON ins.id = o.id"
    "  WHERE o.outcome <> 'succeeded' OR o.error <> ''"
    ")"
    "SELECT id::text FROM ins";

/*
 * Claim: one statement for the batch (docs/task-states.md, "Row
 * creation", "Claimable", "Attempts").  The upsert takes a claimable row
 * or inserts a new one; CASE splits "claimable" into a new attempt and
 * "attempts exhausted".  The new attempt lives in the task row (migration
 * 0004): no attempts row is written for it.
 *
 * `lost` writes the attempt that a dead holder left running (its lease
 * expired) as lease_expired.  It reads that attempt from workq.tasks as
 * the statement's snapshot has it, which is the row before the upsert
 * changed it (started_at, worker, lease_owner of the lost attempt); an
 * attempt that already has its row (it failed and was recorded, or a
 * binary of an earlier release opened it) is closed if still open and
 * otherwise left alone.  It finds its rows by p.id = ANY (ARRAY(...)),
 * only for the claims that took a row from another attempt, so that a
 * claim of new tasks reads nothing (issue 14; test_store's
 * attempts_not_scanned).  RUNNING, as in the record: with the literal,
 * the planner read all of tasks_lease_idx (every task passes through
 * it) and filtered it by id.
 *
 * `x` marks the deliveries that run unclaimed (store_claims.h): allowed
 * to (a first delivery) and without a row of their (queue, key); they
 * skip the upsert and come back as 'unclaimed'.  The probe is a scalar
 * subquery, one index probe a delivery, where NOT EXISTS let a generic
 * plan made on an empty table hash the whole table once a round (a
 * round of 140 deliveries read 50,000 index entries, and PostgreSQL's
 * cost a task went from 27 to about 100 µs).  The row comparison, implied
 * by the two equalities, is there for the planner: only the unique
 * index on (queue, idempotency_key) can take it as an index condition,
 * so that index wins over tasks_queue_created_idx, which an empty
 * table's statistics made look as good and which reads the whole queue
 * for each probe.
 */
#define EXHAUSTED "t.attempt >= t.max_attempts"
static const char claim_sql[] =
    "WITH i AS ("
    "  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],"
    "    $5::bytea[], $6::text[], $7::int4[], $8::int8[], $11::int4[],"
    "    $12::bool[])"
    "    AS i(id, queue, type, key, payload, headers, max_attempts,"
    "         created_ms, priority, unclaimed_ok)"
    "), x AS ("
    "  SELECT i.*, i.unclaimed_ok AND (SELECT 1 FROM workq.tasks t"
    "    WHERE t.queue = i.queue AND t.idempotency_key = i.key"
    "      AND (t.queue, t.idempotency_key) >= (i.queue, i.key) LIMIT 1)"
    "    IS NULL AS unclaimed FROM i"
    "), c AS ("
    "  INSERT INTO workq.tasks AS t (id, queue, type, idempotency_key,"
    "    payload, headers, state, attempt, max_attempts, created_at,"
    "    started_at, lease_owner, lease_expires_at, worker, priority)"
    "  SELECT id, queue, type, key, payload, headers::jsonb, 'running', 1,"
    "    max_attempts,"
    "    timestamptz 'epoch' + created_ms * interval '1 millisecond',"
    "    now(), $9, now() + $10 * interval '1 millisecond', $9,"
    "    priority::int2"
    "  FROM x WHERE NOT x.unclaimed"
    "  ON CONFLICT (queue, idempotency_key) DO UPDATE SET"
    "    state = CASE WHEN " EXHAUSTED " THEN 'dead' ELSE 'running' END,"
    "    attempt = CASE WHEN " EXHAUSTED " THEN t.attempt"
    "              ELSE t.attempt + 1 END,"
    "    started_at = CASE WHEN " EXHAUSTED " THEN t.started_at"
    "                 ELSE now() END,"
    "    lease_owner = CASE WHEN " EXHAUSTED " THEN NULL ELSE $9 END,"
    "    lease_expires_at = CASE WHEN " EXHAUSTED " THEN NULL"
    "      ELSE now() + $10 * interval '1 millisecond' END,"
    "    worker = CASE WHEN " EXHAUSTED " THEN t.worker ELSE $9 END,"
    "    finished_at = CASE WHEN " EXHAUSTED " THEN now() END,"
    "    last_error = CASE WHEN " EXHAUSTED " THEN 'attempts exhausted'"
    "                 ELSE t.last_error END,"
    "    run_at = NULL, updated_at = now(),"
    /* a queue's completion hook reaches a row written before the claim
     * (a delayed task, a retry) too; see migration 0009 */
    "    headers = CASE WHEN EXCLUDED.headers ? '" WQ_HOOK_HEADER "'"
    "      AND NOT t.headers ? '" WQ_HOOK_HEADER "' THEN t.headers"
    "      || jsonb_build_object('" WQ_HOOK_HEADER "',"
    "         EXCLUDED.headers->'" WQ_HOOK_HEADER "')"
    "      ELSE t.headers END"
    "  WHERE t.state = 'queued'"
    "     OR (t.state IN ('retry_wait', 'scheduled') AND t.run_at <= now())"
    "     OR (t.state = 'running' AND t.lease_expires_at < now())"
    "  RETURNING t.id, t.queue, t.idempotency_key, t.state, t.attempt,"
    "    t.max_attempts, t.xmax = 0 AS inserted"
    "), lost AS ("
    "  INSERT INTO workq.attempts AS a (task_id, attempt, started_at,"
    "    worker, outcome, finished_at, error)"
    "  SELECT p.id, p.attempt, coalesce(p.started_at, now()), p.worker,"
    "    'lease_expired', now(), 'lease expired: worker '"
    "      || coalesce(p.lease_owner, '?') || ' stopped renewing it'"
    "  FROM workq.tasks p"
    "  WHERE p.id = ANY (ARRAY(SELECT id FROM c"
    "      WHERE c.attempt > 1 OR c.state = 'dead'))"
    "    AND p.state = " RUNNING " AND p.attempt >= 1"
    "  ON CONFLICT (task_id, attempt) DO UPDATE SET"
    "    outcome = 'lease_expired', finished_at = now(),"
    "    error = EXCLUDED.error"
    "  WHERE a.outcome IS NULL"
    ")"
    "SELECT id::text, queue, idempotency_key, state, attempt, max_attempts,"
    "  inserted FROM c"
    " UNION ALL "
    "SELECT id::text, queue, key, 'unclaimed', 1, max_attempts, false FROM x"
    "  WHERE x.unclaimed";

/* Why a delivery was not claimed: what its row looks like now. */
static const char classify_sql[] =
    "SELECT i.ord, t.id::text, t.state, t.attempt, t.max_attempts,"
    "  t.lease_owner = $3,"
    "  t.state = 'running' AND t.lease_expires_at >= now(),"
    "  t.state IN ('retry_wait', 'scheduled') AND t.run_at > now()"
    "  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY"
    "    AS i(queue, key, ord)"
    "  LEFT JOIN workq.tasks t"
    "    ON t.queue = i.queue AND t.idempotency_key = i.key";

/*
 * Renewal skips the rows another transaction holds locked: those are
 * being recorded (or claimed) by this worker's consumer right now, and
 * waiting for them made the renewal hold the locks it had already taken
 * while the consumer's next round waited in turn.  A row skipped while
 * it stays running is renewed next time, a third of the lease later.
 */
static const char renew_sql[] =
    "WITH mine AS ("
    "  SELECT id FROM workq.tasks"
    "  WHERE id = ANY($1::uuid[]) AND state = " RUNNING
    "    AND lease_owner = $2"
    "  FOR UPDATE SKIP LOCKED"
    "), renew AS ("
    "  UPDATE workq.tasks t SET"
    "    lease_expires_at = now() + $3 * interval '1 millisecond',"
    "    updated_at = now()"
    "  FROM mine WHERE t.id = mine.id"
    "  RETURNING 1"
    "), w AS ("
    "  INSERT INTO workq.workers AS w (id, pid, hostname, version, queues,"
    "    in_flight, started_at, heartbeat_at)"
    "  VALUES ($2, $4, $5, $6, $7::text[], $8, now(), now())"
    "  ON CONFLICT (id) DO UPDATE SET"
    "    started_at = CASE WHEN w.pid <> EXCLUDED.pid THEN now()"
    "                 ELSE w.started_at END,"
    "    pid = EXCLUDED.pid, hostname = EXCLUDED.hostname,"
    "    version = EXCLUDED.version, queues = EXCLUDED.queues,"
    "    in_flight = EXCLUDED.in_flight, heartbeat_at = now(),"
    "    stopped_at = NULL"
    ")"
    "SELECT count(*) FROM renew";

static const char stopped_sql[] =
    "UPDATE workq.workers SET stopped_at = now(), heartbeat_at = now(),"
    "  in_flight = 0 WHERE id = $1";

void
wq_claim_bufs_free(struct wq_claim_bufs *bufs)
{
    for (size_t i = 0; i < WQ_ARRAY_LEN(bufs->b); i++)
        wq_buf_free(&bufs->b[i]);
}

/* Appends s as the inside of a JSON string (the quotes are the caller's). */
static int
json_chars(struct wq_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int rc = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        char esc[6] = { '\\', 'u', '0', '0', 0, 0 };

        if (*p == '"' || *p == '\\') {
            esc[1] = (char)*p;
            rc |= wq_buf_append(b, esc, 2);
        } else if (*p < 0x20) {
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            rc |= wq_buf_append(b, esc, 6);
        } else {
            rc |= wq_buf_append(b, p, 1);
        }
    }
    return rc;
}

int
wq_claim_headers_json_hook(const struct wq_envelope *env,
    const char *hook_url, struct wq_buf *b)
{
    int rc = 0;
    size_t n = 0;

    rc |= wq_buf_append(b, "{", 1);
    for (size_t i = 0; i < env->nheaders; i++) {
        if (hook_url != NULL && strcmp(env->headers[i].name,
            WQ_HOOK_HEADER) == 0)
            hook_url = NULL;    /* the task's own hook wins */
        if (n++ > 0)
            rc |= wq_buf_append(b, ",", 1);
        rc |= wq_buf_append(b, "\"", 1);
        rc |= json_chars(b, env->headers[i].name);
        rc |= wq_buf_append(b, "\":\"", 3);
        rc |= json_chars(b, env->headers[i].value);
        rc |= wq_buf_append(b, "\"", 1);
    }
    if (hook_url != NULL) {
        if (n > 0)
            rc |= wq_buf_append(b, ",", 1);
        rc |= wq_buf_append(b, "\"" WQ_HOOK_HEADER "\":\"",
            strlen(WQ_HOOK_HEADER) + 4);
        rc |= json_chars(b, hook_url);
        rc |= wq_buf_append(b, "\"", 1);
    }
    rc |= wq_buf_append(b, "}", 1);
    return rc != 0 ? WQ_ENOMEM : 0;
}

int
wq_claim_headers_json(const struct wq_envelope *env, struct wq_buf *b)
{
    return wq_claim_headers_json_hook(env, NULL, b);
}

/* ---- sorting ------------------------------------------------------------ */

static int
cmp_claim(const struct wq_claim *a, const struct wq_claim *b)
{
    int c = strcmp(a->env->queue, b->env->queue);

    return c != 0 ? c : strcmp(a->env->key, b->env->key);
}

/* Equal keys keep the batch's order, so that the first delivery of a key
 * (the topic's or queue's order) is the one claimed: qsort_r promises no
 * stability (glibc 2.37 replaced its merge sort with introsort). */
static int
cmp_claim_idx(const void *a, const void *b, void *base)
{
    const struct wq_claim *c = base;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int d = cmp_claim(&c[i], &c[j]);

    return d != 0 ? d : (i > j) - (i < j);
}

static int
cmp_rec_idx(const void *a, const void *b, void *base)
{
    const struct wq_record *r = base;

    return memcmp(r[*(const size_t *)a].task_id, r[*(const size_t *)b].task_id,
        16);
}

/* Sorts idx[0..n) by the claims' (queue, key), or the records' ids
 * (qsort_r: glibc's, with the context last). */
static void
sort_idx(size_t *idx, size_t n, struct wq_claim *claims,
    struct wq_record *recs)
{
    if (claims != NULL)
        qsort_r(idx, n, sizeof *idx, cmp_claim_idx, claims);
    else
        qsort_r(idx, n, sizeof *idx, cmp_rec_idx, recs);
}

/* ---- results ------------------------------------------------------------ */

static int
result_error(wq_store *s, PGresult *r, const char *what, char *err,
    size_t errlen)
{
    int rc = wq_store_result_check(s, r, what, err, errlen);

    if (rc == 0)
        rc = wq_seterr(err, errlen, WQ_ESTORE, "%s: unexpected result", what);
    return rc;
}

/* Reads the rest of a pipeline up to its Sync; returns 0 if it got there. */
static int
drain_to_sync(PGconn *c)
{
    PGresult *r;
    int nulls = 0;

    for (;;) {
        r = PQgetResult(c);
        if (r == NULL) {
            /* one NULL ends each query's results; many in a row mean the
             * connection is gone */
            if (++nulls > 4 || PQstatus(c) != CONNECTION_OK)
                return -1;
            continue;
        }
        nulls = 0;
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            return 0;
        }
        PQclear(r);
    }
}

/*
 * Ends a pipeline: reads up to its Sync if anything was sent (only then
 * is its transaction over, committed or rolled back), then leaves
 * pipeline mode.  Returns rc, or the first failure of these two when rc
 * is 0 (`what`: what was under way, for the lost connection's message).
 */
static int
pipeline_end(PGconn *c, int sent, int rc, const char *what, char *err,
    size_t errlen)
{
    if (sent && drain_to_sync(c) != 0 && rc == 0)
        rc = wq_seterr(err, errlen, WQ_ESTORE, "the connection to "
            "PostgreSQL was lost during %s", what);
    if (PQexitPipelineMode(c) != 1 && rc == 0)
        rc = wq_seterr(err, errlen, WQ_ESTORE, "cannot leave pipeline "
            "mode: %s", PQerrorMessage(c));
    return rc;
}

static int
bsearch_claim(const size_t *idx, size_t n, struct wq_claim *claims,
    const char *queue, const char *key)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct wq_claim *c = &claims[idx[mid]];
        int d = strcmp(c->env->queue, queue);

        if (d == 0)
            d = strcmp(c->env->key, key);
        if (d == 0) {
            /* the first of equal keys is the one the statement got */
            while (mid > 0 && cmp_claim(&claims[idx[mid - 1]], c) == 0)
                mid--;
            return (int)mid;
        }
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int
bsearch_rec(const size_t *idx, size_t n, struct wq_record *recs,
    const uint8_t id[16])
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int d = memcmp(recs[idx[mid]].task_id, id, 16);

        if (d == 0)
            return (int)mid;
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int
parse_u32(const char *s, uint32_t *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (end == s || *end != '\0' || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* ---- the round ---------------------------------------------------------- */

/* Parameters 0..n-1 of a statement: the binary arrays bufs->b[first],
 * ... bufs->b[first + n - 1]; parameter n: `worker`, as text. */
static void
bind_arrays(const struct wq_claim_bufs *bufs, int first, int n,
    const char *worker, const char **values, int *lengths, int *formats)
{
    for (int i = 0; i < n; i++) {
        values[i] = bufs->b[first + i].data;
        lengths[i] = (int)bufs->b[first + i].len;
        formats[i] = 1;
    }
    values[n] = worker;
    lengths[n] = 0;
    formats[n] = 0;
}

/* Builds the record statement's parameters. */
static void
record_params(struct wq_claim_bufs *bufs, const struct wq_record *recs,
    const size_t *idx, size_t n)
{
    struct wq_buf *b = bufs->b;

    wq_pgarray_begin(&b[B_R_ID], WQ_OID_UUID, n);
    wq_pgarray_begin(&b[B_R_ATTEMPT], WQ_OID_INT4, n);
    wq_pgarray_begin(&b[B_R_OUTCOME], WQ_OID_TEXT, n);
    wq_pgarray_begin(&b[B_R_STATE], WQ_OID_TEXT, n);
    wq_pgarray_begin(&b[B_R_RESULT], WQ_OID_BYTEA, n);
    wq_pgarray_begin(&b[B_R_ERROR], WQ_OID_TEXT, n);
    wq_pgarray_begin(&b[B_R_DELAY], WQ_OID_INT8, n);
    wq_pgarray_begin(&b[B_R_DURATION], WQ_OID_INT8, n);
    /* In id order: two workers lock rows in the same order. */
    for (size_t k = 0; k < n; k++) {
        const struct wq_record *r = &recs[idx[k]];

        wq_pgarray_bytes(&b[B_R_ID], r->task_id, 16);
        wq_pgarray_i32(&b[B_R_ATTEMPT], (int32_t)r->attempt);
        wq_pgarray_str(&b[B_R_OUTCOME], r->outcome);
        wq_pgarray_str(&b[B_R_STATE], r->state);
        wq_pgarray_bytes(&b[B_R_RESULT], r->result, r->result != NULL
            ? r->result_len : 0);
        /* NULL error: an empty string, which the statement keeps as '' */
        wq_pgarray_str(&b[B_R_ERROR], r->error != NULL ? r->error : "");
        wq_pgarray_i64(&b[B_R_DELAY], r->delay_ms);
        wq_pgarray_i64(&b[B_R_DURATION], r->duration_ms);
    }
}

/* Appends the envelope's headers (with the queue's hook) as one text
 * element of array h: the JSON goes straight in, its length patched
 * after. */
static void
headers_elem(struct wq_buf *h, const struct wq_envelope *e,
    const char *hook_url)
{
    size_t at = h->len;
    uint32_t len;

    if (wq_buf_append(h, "\0\0\0\0", 4) != 0)
        abort();    /* out of memory: as xmalloc */
    if (wq_claim_headers_json_hook(e, hook_url, h) != 0)
        abort();
    len = htobe32((uint32_t)(h->len - at - 4));
    memcpy(h->data + at, &len, 4);
}

static int32_t
max_attempts_i32(const struct wq_envelope *e)
{
    return (int32_t)(e->max_attempts > INT32_MAX ? INT32_MAX
        : e->max_attempts);
}

/* Builds the insert statement's parameters (unclaimed runs), in id
 * order as the record's. */
static void
insert_params(struct wq_claim_bufs *bufs, const struct wq_record *recs,
    const size_t *idx, size_t n)
{
    struct wq_buf *b = bufs->b;
    static const uint32_t types[16] = { WQ_OID_UUID, WQ_OID_TEXT,
        WQ_OID_TEXT, WQ_OID_TEXT, WQ_OID_BYTEA, WQ_OID_TEXT, WQ_OID_INT4,
        WQ_OID_INT8, WQ_OID_INT4, WQ_OID_TEXT, WQ_OID_TEXT, WQ_OID_BYTEA,
        WQ_OID_TEXT, WQ_OID_INT8, WQ_OID_INT8, WQ_OID_INT8 };

    for (int i = 0; i < 16; i++)
        wq_pgarray_begin(&b[B_N_ID + i], types[i], n);
    for (size_t k = 0; k < n; k++) {
        const struct wq_record *r = &recs[idx[k]];
        const struct wq_envelope *e = r->env;

        wq_pgarray_bytes(&b[B_N_ID], r->task_id, 16);
        wq_pgarray_str(&b[B_N_QUEUE], e->queue);
        wq_pgarray_str(&b[B_N_TYPE], e->type);
        wq_pgarray_str(&b[B_N_KEY], e->key);
        wq_pgarray_bytes(&b[B_N_PAYLOAD], e->payload, e->payload_len);
        headers_elem(&b[B_N_HEADERS], e, r->hook_url);
        wq_pgarray_i32(&b[B_N_MAX], max_attempts_i32(e));
        wq_pgarray_i64(&b[B_N_CREATED], e->created_at_ms);
        wq_pgarray_i32(&b[B_N_PRIORITY], r->priority);
        wq_pgarray_str(&b[B_N_OUTCOME], r->outcome);
        wq_pgarray_str(&b[B_N_STATE], r->state);
        wq_pgarray_bytes(&b[B_N_RESULT], r->result, r->result != NULL
            ? r->result_len : 0);
        wq_pgarray_str(&b[B_N_ERROR], r->error != NULL ? r->error : "");
        wq_pgarray_i64(&b[B_N_DELAY], r->delay_ms);
        wq_pgarray_i64(&b[B_N_DURATION], r->duration_ms);
        wq_pgarray_i64(&b[B_N_STARTED], r->started_ms);
    }
}

/* Builds the claim statement's parameters from the first of each key. */
static size_t
claim_params(struct wq_claim_bufs *bufs, struct wq_claim *claims,
    const size_t *idx, size_t n, int *take)
{
    struct wq_buf *b = bufs->b, *h = &b[B_C_HEADERS];
    size_t m = 0;

    for (size_t k = 0; k < n; k++) {
        take[k] = k == 0 || cmp_claim(&claims[idx[k - 1]],
            &claims[idx[k]]) != 0;
        m += (size_t)take[k];
    }
    wq_pgarray_begin(&b[B_C_ID], WQ_OID_UUID, m);
    wq_pgarray_begin(&b[B_C_QUEUE], WQ_OID_TEXT, m);
    wq_pgarray_begin(&b[B_C_TYPE], WQ_OID_TEXT, m);
    wq_pgarray_begin(&b[B_C_KEY], WQ_OID_TEXT, m);
    wq_pgarray_begin(&b[B_C_PAYLOAD], WQ_OID_BYTEA, m);
    wq_pgarray_begin(h, WQ_OID_TEXT, m);
    wq_pgarray_begin(&b[B_C_MAX], WQ_OID_INT4, m);
    wq_pgarray_begin(&b[B_C_CREATED], WQ_OID_INT8, m);
    wq_pgarray_begin(&b[B_C_PRIORITY], WQ_OID_INT4, m);
    wq_pgarray_begin(&b[B_C_UNCLAIMED], WQ_OID_BOOL, m);
    for (size_t k = 0; k < n; k++) {
        const struct wq_envelope *e = claims[idx[k]].env;
        unsigned char ok = claims[idx[k]].unclaimed_ok != 0;

        if (!take[k])
            continue;
        wq_pgarray_bytes(&b[B_C_ID], e->id, 16);
        wq_pgarray_str(&b[B_C_QUEUE], e->queue);
        wq_pgarray_str(&b[B_C_TYPE], e->type);
        wq_pgarray_str(&b[B_C_KEY], e->key);
        wq_pgarray_bytes(&b[B_C_PAYLOAD], e->payload, e->payload_len);
        headers_elem(h, e, claims[idx[k]].hook_url);
        wq_pgarray_i32(&b[B_C_MAX], max_attempts_i32(e));
        wq_pgarray_i64(&b[B_C_CREATED], e->created_at_ms);
        wq_pgarray_i32(&b[B_C_PRIORITY], claims[idx[k]].priority);
        wq_pgarray_bytes(&b[B_C_UNCLAIMED], &ok, 1);
    }
    return m;
}

/* Prepares statement `name` on s's connection unless it is already
 * (bit in s->prepared).  Outside pipeline mode: one round trip, once. */
static int
prepare_once(wq_store *s, unsigned bit, const char *name, const char *sql,
    int n, const Oid *types, const char *what, char *err, size_t errlen)
{
    PGresult *r;
    int rc;

    if ((s->prepared & bit) || wq_store_unnamed(s))
        return 0;
    r = PQprepare(s->conn, name, sql, n, types);
    rc = wq_store_result_check(s, r, what, err, errlen);
    PQclear(r);
    if (rc == 0)
        s->prepared |= bit;
    return rc;
}

/* Sends statement `name` (prepared by prepare_once), or its text
 * unnamed behind a transaction-mode pooler. */
static int
send_query(wq_store *s, const char *name, const char *sql, int n,
    const Oid *types, const char *const *values, const int *lengths,
    const int *formats)
{
    if (wq_store_unnamed(s))
        return PQsendQueryParams(s->conn, sql, n, types, values, lengths,
            formats, 0);
    return PQsendQueryPrepared(s->conn, name, n, values, lengths, formats,
        0);
}

/*
 * The plan guard.  A named statement's generic plan is made at about its
 * sixth execution from the table's size and statistics at that moment,
 * and kept until they change (ANALYZE or VACUUM of the table, which
 * autovacuum runs only after a minute or more).  A worker that starts on
 * an empty or young workq.tasks (a fresh install, a benchmark) thus kept
 * a plan that reads the whole table by sequential scan, round after round
 * while the table grew: the record and the claim's `lost` did (auto_explain
 * on the benchmark's PostgreSQL: a record of 250 outcomes read all 50,000
 * rows, 4.4 ms a statement instead of 1.3, and RabbitMQ's end-to-end rate
 * went from 17-20k to 10k tasks/s in most runs).  Every lookup these
 * statements make has an index, so their transaction turns sequential
 * scans off first: set_config(..., true) lasts to the end of this
 * transaction only, so nothing stays on a pooled server connection.
 * Unnamed statements are planned with their values every time and need
 * no guard.
 */
static const char guard_sql[] =
    "SELECT set_config('enable_seqscan', 'off', true)";

/*
 * Begins a pipeline that starts with the plan guard: prepares the guard
 * once (named statements only, before pipeline mode), enters pipeline
 * mode and queues it.  0 with *guarded 1 if the guard went (guard_read
 * reads its result first), 0 if unnamed statements need none; else an
 * error code, out of pipeline mode again.
 */
static int
pipeline_begin(wq_store *s, int *guarded, char *err, size_t errlen)
{
    int rc;

    *guarded = 0;
    if ((rc = prepare_once(s, WQ_PREP_GUARD, "wq_plan_guard", guard_sql, 0,
        NULL, "plan guard", err, errlen)) != 0)
        return rc;
    if (PQenterPipelineMode(s->conn) != 1)
        return wq_seterr(err, errlen, WQ_ESTORE, "cannot enter pipeline "
            "mode: %s", PQerrorMessage(s->conn));
    if (wq_store_unnamed(s))
        return 0;
    if (PQsendQueryPrepared(s->conn, "wq_plan_guard", 0, NULL, NULL, NULL,
        0) != 1) {
        rc = wq_seterr(err, errlen, WQ_ESTORE, "plan guard: %s",
            PQerrorMessage(s->conn));
        (void)PQexitPipelineMode(s->conn);
        return rc;
    }
    *guarded = 1;
    return 0;
}

/* Reads the guard's result (sent: pipeline_begin's *guarded). */
static int
guard_read(wq_store *s, int sent, char *err, size_t errlen)
{
    PGresult *r;
    int rc;

    if (!sent)
        return 0;
    r = PQgetResult(s->conn);
    rc = r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK
        ? result_error(s, r, "plan guard", err, errlen) : 0;
    PQclear(r);
    if (rc == 0 && (r = PQgetResult(s->conn)) != NULL) {
        PQclear(r);
        rc = wq_seterr(err, errlen, WQ_ESTORE, "plan guard: more results "
            "than expected");
    }
    return rc;
}

/* Reads the record statement's rows: which tasks were recorded. */
static int
read_records(wq_store *s, PGconn *c, struct wq_record *recs,
    const size_t *idx, size_t n, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQgetResult(c);
    uint8_t id[16];
    int rc = 0;

    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = result_error(s, r, what, err, errlen);
        PQclear(r);
        return rc;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        int k;

        if (wq_uuid_parse(PQgetvalue(r, i, 0), id) == 0
            && (k = bsearch_rec(idx, n, recs, id)) >= 0)
            recs[idx[k]].recorded = 1;
    }
    PQclear(r);
    if ((r = PQgetResult(c)) != NULL) {     /* the end of this query */
        PQclear(r);
        return wq_seterr(err, errlen, WQ_ESTORE, "%s: more results than "
            "expected", what);
    }
    return 0;
}

/* Reads the claim statement's rows: the deliveries taken. */
static int
read_claims(wq_store *s, PGconn *c, struct wq_claim *claims,
    const size_t *idx, size_t n, char *err, size_t errlen)
{
    PGresult *r = PQgetResult(c);
    int rc = 0;

    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = result_error(s, r, "claim tasks", err, errlen);
        PQclear(r);
        return rc;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        int k = bsearch_claim(idx, n, claims, PQgetvalue(r, i, 1),
            PQgetvalue(r, i, 2));
        struct wq_claim *cl;
        const char *state = PQgetvalue(r, i, 3);

        if (k < 0)
            continue;
        cl = &claims[idx[k]];
        if (wq_uuid_parse(PQgetvalue(r, i, 0), cl->task_id) != 0
            || parse_u32(PQgetvalue(r, i, 4), &cl->attempt) != 0
            || parse_u32(PQgetvalue(r, i, 5), &cl->max_attempts) != 0)
            continue;
        cl->unclaimed = strcmp(state, "unclaimed") == 0;
        cl->inserted = strcmp(PQgetvalue(r, i, 6), "t") == 0;
        if (cl->unclaimed)
            state = "queued";       /* as task_handle() reads it */
        snprintf(cl->state, sizeof cl->state, "%s", state);
        cl->status = cl->unclaimed || strcmp(state, "running") == 0
            ? WQ_CLAIM_RUN : WQ_CLAIM_EXHAUSTED;
    }
    PQclear(r);
    if ((r = PQgetResult(c)) != NULL) {
        PQclear(r);
        return wq_seterr(err, errlen, WQ_ESTORE, "claim tasks: more "
            "results than expected");
    }
    return 0;
}

/*
 * Runs the classify statement: unnamed alone, named after the plan guard
 * in one pipeline (one round trip, one implicit transaction).  0 with *out
 * its rows, else an error code.
 */
static int
classify_exec(wq_store *s, const char *const *values, const int *lengths,
    const int *formats, PGresult **out, char *err, size_t errlen)
{
    static const Oid types[3] = { WQ_OID_TEXT_A, WQ_OID_TEXT_A, WQ_OID_TEXT };
    PGconn *c = s->conn;
    PGresult *r = NULL;
    int rc = 0, sent_g = 0, sent = 0;

    *out = NULL;
    if (wq_store_unnamed(s)) {
        r = PQexecParams(c, classify_sql, 3, types, values, lengths, formats,
            0);
        goto check;
    }
    if ((rc = pipeline_begin(s, &sent_g, err, errlen)) != 0)
        return rc;
    if (PQsendQueryPrepared(c, "wq_claim_classify", 3, values, lengths,
        formats, 0) != 1 || PQpipelineSync(c) != 1) {
        rc = wq_seterr(err, errlen, WQ_ESTORE, "classify deliveries: %s",
            PQerrorMessage(c));
        goto out;
    }
    sent = 1;
    if ((rc = guard_read(s, sent_g, err, errlen)) != 0)
        goto out;
    r = PQgetResult(c);
out:
    if ((rc = pipeline_end(c, sent_g || sent, rc, "classify", err, errlen))
        != 0) {
        PQclear(r);
        return rc;
    }
check:
    if ((rc = wq_store_result_check(s, r, "classify deliveries", err,
        errlen)) != 0 || PQresultStatus(r) != PGRES_TUPLES_OK) {
        if (rc == 0)
            rc = wq_seterr(err, errlen, WQ_ESTORE, "classify deliveries: "
                "unexpected result");
        PQclear(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* One more round trip for the deliveries the claim did not take. */
static int
classify(wq_store *s, struct wq_claim_bufs *bufs, const char *worker,
    struct wq_claim *claims, const size_t *idx, size_t n, const int *take,
    char *err, size_t errlen)
{
    static const Oid types[3] = { WQ_OID_TEXT_A, WQ_OID_TEXT_A, WQ_OID_TEXT };
    struct wq_buf *q = &bufs->b[B_C_QUEUE], *k = &bufs->b[B_C_KEY];
    size_t *pos, m = 0;
    const char *values[3];
    int lengths[3], formats[3] = { 1, 1, 0 };
    PGresult *r;
    int rc;

    pos = xcalloc(n, sizeof *pos);
    for (size_t j = 0; j < n; j++)
        if (take[j] && claims[idx[j]].status == WQ_CLAIM_PENDING)
            pos[m++] = idx[j];
    if (m == 0) {
        free(pos);
        return 0;
    }
    wq_pgarray_begin(q, WQ_OID_TEXT, m);
    wq_pgarray_begin(k, WQ_OID_TEXT, m);
    for (size_t j = 0; j < m; j++) {
        wq_pgarray_str(q, claims[pos[j]].env->queue);
        wq_pgarray_str(k, claims[pos[j]].env->key);
    }
    values[0] = q->data;
    lengths[0] = (int)q->len;
    values[1] = k->data;
    lengths[1] = (int)k->len;
    values[2] = worker;
    lengths[2] = 0;
    if ((rc = prepare_once(s, WQ_PREP_CLASSIFY, "wq_claim_classify",
        classify_sql, 3, types, "classify deliveries", err, errlen)) != 0
        || (rc = classify_exec(s, values, lengths, formats, &r, err,
        errlen)) != 0) {
        free(pos);
        return rc;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        uint32_t ord;
        struct wq_claim *cl;
        const char *state;

        if (parse_u32(PQgetvalue(r, i, 0), &ord) != 0 || ord < 1 || ord > m)
            continue;
        cl = &claims[pos[ord - 1]];
        if (PQgetisnull(r, i, 1))
            continue;       /* no row (deleted meanwhile): claim again */
        state = PQgetvalue(r, i, 2);
        wq_uuid_parse(PQgetvalue(r, i, 1), cl->task_id);
        parse_u32(PQgetvalue(r, i, 3), &cl->attempt);
        parse_u32(PQgetvalue(r, i, 4), &cl->max_attempts);
        snprintf(cl->state, sizeof cl->state, "%s", state);
        if (strcmp(state, "succeeded") == 0 || strcmp(state, "dead") == 0
            || strcmp(state, "cancelled") == 0)
            cl->status = WQ_CLAIM_FINAL;
        else if (strcmp(PQgetvalue(r, i, 6), "t") == 0) {
            cl->status = WQ_CLAIM_BUSY;
            cl->own_lease = strcmp(PQgetvalue(r, i, 5), "t") == 0;
        } else if (strcmp(PQgetvalue(r, i, 7), "t") == 0)
            cl->status = WQ_CLAIM_NOT_DUE;
        /* else: claimable now (it changed in between): PENDING */
    }
    PQclear(r);
    free(pos);
    return 0;
}

int
wq_claim_round(wq_store *s, struct wq_claim_bufs *bufs, const char *worker,
    int64_t lease_ms, struct wq_record *recs, size_t nrec,
    struct wq_claim *claims, size_t nclaim, char *err, size_t errlen)
{
    static const Oid rtypes[9] = { WQ_OID_UUID_A, WQ_OID_INT4_A, WQ_OID_TEXT_A,
        WQ_OID_TEXT_A, WQ_OID_BYTEA_A, WQ_OID_TEXT_A, WQ_OID_INT8_A, WQ_OID_INT8_A,
        WQ_OID_TEXT };
    static const Oid ctypes[12] = { WQ_OID_UUID_A, WQ_OID_TEXT_A, WQ_OID_TEXT_A,
        WQ_OID_TEXT_A, WQ_OID_BYTEA_A, WQ_OID_TEXT_A, WQ_OID_INT4_A, WQ_OID_INT8_A,
        WQ_OID_TEXT, WQ_OID_INT8, WQ_OID_INT4_A, WQ_OID_BOOL_A };
    static const Oid ntypes[17] = { WQ_OID_UUID_A, WQ_OID_TEXT_A, WQ_OID_TEXT_A,
        WQ_OID_TEXT_A, WQ_OID_BYTEA_A, WQ_OID_TEXT_A, WQ_OID_INT4_A, WQ_OID_INT8_A,
        WQ_OID_INT4_A, WQ_OID_TEXT_A, WQ_OID_TEXT_A, WQ_OID_BYTEA_A, WQ_OID_TEXT_A,
        WQ_OID_INT8_A, WQ_OID_INT8_A, WQ_OID_INT8_A, WQ_OID_TEXT };
    PGconn *c = s->conn;
    struct wq_buf *b = bufs->b;
    const char *values[17];
    int lengths[17], formats[17];
    size_t *ridx = NULL, *nidx = NULL, *cidx = NULL, m = 0, nr = 0, nn = 0;
    int *take = NULL, rc = 0, sent_g = 0, sent_r = 0, sent_n = 0, sent_c = 0;
    char lease[32];

    if (PQstatus(c) != CONNECTION_OK)
        return wq_seterr(err, errlen, WQ_ESTORE, "the connection to "
            "PostgreSQL was lost");
    for (size_t i = 0; i < nrec; i++)
        recs[i].recorded = 0;
    for (size_t i = 0; i < nclaim; i++) {
        claims[i].status = WQ_CLAIM_PENDING;
        claims[i].own_lease = 0;
        claims[i].unclaimed = 0;
        claims[i].inserted = 0;
        claims[i].state[0] = '\0';
    }
    if (nrec == 0 && nclaim == 0)
        return 0;
    /* claimed attempts update their rows, unclaimed runs insert theirs */
    if (nrec > 0) {
        ridx = xcalloc(nrec, sizeof *ridx);
        nidx = xcalloc(nrec, sizeof *nidx);
        for (size_t i = 0; i < nrec; i++) {
            if (recs[i].env != NULL)
                nidx[nn++] = i;
            else
                ridx[nr++] = i;
        }
    }
    if ((nr > 0 && (rc = prepare_once(s, WQ_PREP_RECORD, "wq_record",
        record_sql, 9, rtypes, "record outcomes", err, errlen)) != 0)
        || (nn > 0 && (rc = prepare_once(s, WQ_PREP_INSERT, "wq_record_new",
        insert_sql, 17, ntypes, "record unclaimed runs", err, errlen)) != 0)
        || (nclaim > 0 && (rc = prepare_once(s, WQ_PREP_CLAIM, "wq_claim",
        claim_sql, 12, ctypes, "claim tasks", err, errlen)) != 0)
        || (rc = pipeline_begin(s, &sent_g, err, errlen)) != 0) {
        free(ridx);
        free(nidx);
        return rc;
    }

    if (nr > 0) {
        sort_idx(ridx, nr, NULL, recs);
        record_params(bufs, recs, ridx, nr);
        bind_arrays(bufs, B_R_ID, 8, worker, values, lengths, formats);
        if (send_query(s, "wq_record", record_sql, 9, rtypes, values, lengths,
            formats) != 1) {
            rc = wq_seterr(err, errlen, WQ_ESTORE, "record outcomes: %s",
                PQerrorMessage(c));
            goto out;
        }
        sent_r = 1;
    }
    if (nn > 0) {
        sort_idx(nidx, nn, NULL, recs);
        insert_params(bufs, recs, nidx, nn);
        bind_arrays(bufs, B_N_ID, 16, worker, values, lengths, formats);
        if (send_query(s, "wq_record_new", insert_sql, 17, ntypes, values,
            lengths, formats) != 1) {
            rc = wq_seterr(err, errlen, WQ_ESTORE, "record unclaimed runs: "
                "%s", PQerrorMessage(c));
            goto out;
        }
        sent_n = 1;
    }
    if (nclaim > 0) {
        cidx = xcalloc(nclaim, sizeof *cidx);
        take = xcalloc(nclaim, sizeof *take);
        for (size_t i = 0; i < nclaim; i++)
            cidx[i] = i;
        /* (queue, key) order: the rows are locked in that order by every
         * worker, which keeps two claims from deadlocking */
        sort_idx(cidx, nclaim, claims, NULL);
        m = claim_params(bufs, claims, cidx, nclaim, take);
        bind_arrays(bufs, B_C_ID, 8, worker, values, lengths, formats);
        snprintf(lease, sizeof lease, "%lld", (long long)lease_ms);
        values[9] = lease;
        lengths[9] = 0;
        formats[9] = 0;
        values[10] = b[B_C_PRIORITY].data;
        lengths[10] = (int)b[B_C_PRIORITY].len;
        formats[10] = 1;
        values[11] = b[B_C_UNCLAIMED].data;
        lengths[11] = (int)b[B_C_UNCLAIMED].len;
        formats[11] = 1;
        if (send_query(s, "wq_claim", claim_sql, 12, ctypes, values, lengths,
            formats) != 1) {
            rc = wq_seterr(err, errlen, WQ_ESTORE, "claim tasks: %s",
                PQerrorMessage(c));
            goto out;
        }
        sent_c = 1;
    }
    /* One Sync: both statements are one implicit transaction, committed
     * here; an error in either rolls both back (libpq "Pipeline Mode"). */
    if (PQpipelineSync(c) != 1) {
        rc = wq_seterr(err, errlen, WQ_ESTORE, "pipeline sync: %s",
            PQerrorMessage(c));
        goto out;
    }
    if ((rc = guard_read(s, sent_g, err, errlen)) != 0)
        goto out;
    if (sent_r && (rc = read_records(s, c, recs, ridx, nr, "record outcomes",
        err, errlen)) != 0)
        goto out;
    if (sent_n && (rc = read_records(s, c, recs, nidx, nn, "record unclaimed "
        "runs", err, errlen)) != 0)
        goto out;
    if (sent_c && (rc = read_claims(s, c, claims, cidx, nclaim, err,
        errlen)) != 0)
        goto out;

out:
    /* up to the Sync, whatever happened */
    rc = pipeline_end(c, sent_g || sent_r || sent_n || sent_c, rc,
        "a commit", err, errlen);
    if (rc != 0) {
        for (size_t i = 0; i < nrec; i++)
            recs[i].recorded = 0;
        for (size_t i = 0; i < nclaim; i++)
            claims[i].status = WQ_CLAIM_PENDING;
    } else if (m > 0) {
        rc = classify(s, bufs, worker, claims, cidx, nclaim, take, err,
            errlen);
    }
    free(ridx);
    free(nidx);
    free(cidx);
    free(take);
    return rc;
}

int
wq_claim_renew(wq_store *s, struct wq_claim_bufs *bufs,
    const struct wq_worker_info *w, const uint8_t *ids, size_t n,
    int64_t lease_ms, int in_flight, size_t *renewed, char *err,
    size_t errlen)
{
    static const Oid types[8] = { WQ_OID_UUID_A, WQ_OID_TEXT, WQ_OID_INT8, WQ_OID_INT4,
        WQ_OID_TEXT, WQ_OID_TEXT, WQ_OID_TEXT_A, WQ_OID_INT4 };
    struct wq_buf *a = &bufs->b[B_R_ID], *q = &bufs->b[B_R_STATE];
    char lease[32], pid[16], inf[16];
    const char *values[8];
    int lengths[8] = { 0 }, formats[8] = { 1, 0, 0, 0, 0, 0, 1, 0 };
    PGresult *r;
    int rc;

    wq_pgarray_begin(a, WQ_OID_UUID, n);
    for (size_t i = 0; i < n; i++)
        wq_pgarray_bytes(a, ids + 16 * i, 16);
    wq_pgarray_begin(q, WQ_OID_TEXT, w->nqueues);
    for (size_t i = 0; i < w->nqueues; i++)
        wq_pgarray_str(q, w->queues[i]);
    snprintf(lease, sizeof lease, "%lld", (long long)lease_ms);
    snprintf(pid, sizeof pid, "%d", w->pid);
    snprintf(inf, sizeof inf, "%d", in_flight < 0 ? 0 : in_flight);
    values[0] = a->data;
    lengths[0] = (int)a->len;
    values[1] = w->id;
    values[2] = lease;
    values[3] = pid;
    values[4] = w->hostname;
    values[5] = w->version;
    values[6] = q->data;
    lengths[6] = (int)q->len;
    values[7] = inf;
    r = PQexecParams(s->conn, renew_sql, 8, types, values, lengths,
        formats, 0);
    if ((rc = wq_store_result_check(s, r, "renew leases", err, errlen))
        == 0 && renewed != NULL)
        *renewed = PQntuples(r) == 1
            ? (size_t)strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return rc;
}

int
wq_claim_stopped(wq_store *s, const char *worker, char *err, size_t errlen)
{
    const char *values[1] = { worker };
    PGresult *r;
    int rc;

    r = PQexecParams(s->conn, stopped_sql, 1, NULL, values, NULL,
        NULL, 0);
    rc = wq_store_result_check(s, r, "mark the worker stopped", err, errlen);
    PQclear(r);
    return rc;
}

/*
 * Progress (worker/progress.c, migration 0009): the latest report of each
 * task, written only while the attempt that made it holds the lease.
 */
static const char progress_sql[] =
    "UPDATE workq.tasks t SET progress = x.percent,"
    "    progress_message = nullif(x.message, ''), progress_at = now()"
    "  FROM unnest($1::uuid[], $2::int4[], $3::int2[], $4::text[])"
    "    AS x(id, attempt, percent, message)"
    "  WHERE t.id = x.id AND t.state = 'running' AND t.attempt = x.attempt"
    "    AND t.lease_owner = $5";

int
wq_claim_progress(wq_store *s, const char *ids, const char *attempts,
    const char *percents, const char *messages, const char *worker,
    char *err, size_t errlen)
{
    const char *values[5] = { ids, attempts, percents, messages, worker };
    PGresult *r;
    int rc;

    r = PQexecParams(s->conn, progress_sql, 5, NULL, values, NULL, NULL, 0);
    rc = wq_store_result_check(s, r, "write progress", err, errlen);
    PQclear(r);
    return rc;
}
