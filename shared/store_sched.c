/*
 * store_sched.c - the scheduler's statements (see store_sched.h), moved
 * here unchanged from scheduler/: each round selects its rows FOR
 * UPDATE SKIP LOCKED, so that several schedulers share the work, and
 * settles them by id array in the same transaction.
 */
#include "store_sched.h"
#include "store_int.h"
#include "wq.h"

/* The leading columns of every task query that scheduler/rows.c reads
 * (WQ_SCHED_ROWS_TASK_NCOLS): id, queue, type, key, payload, headers,
 * attempt, max_attempts, created_at in epoch ms, and flow control's
 * concurrency key and limit (migration 0007; NULL, 0: none), read by
 * primary key from a table that holds only tasks with a key.  Alias the
 * table `t`. */
#define TASK_COLS \
    "t.id, t.queue, t.type, t.idempotency_key, t.payload, " \
    "t.headers::text, t.attempt, t.max_attempts, " \
    "floor(extract(epoch FROM t.created_at) * 1000)::int8, " \
    "f.concurrency_key, coalesce(f.concurrency_limit, 0)"
/* The join TASK_COLS needs, after "FROM workq.tasks t". */
#define TASK_FLOW_JOIN \
    " LEFT JOIN workq.flow_tasks f ON f.queue = t.queue" \
    "   AND f.idempotency_key = t.idempotency_key"

/* Retention: finished tasks of one target (an age, a queue or all but
 * the excluded ones), oldest first. */
#define TASKS_SQL(states, extra) \
    "DELETE FROM workq.tasks WHERE id IN (" \
    "  SELECT t.id FROM workq.tasks t" \
    "  WHERE t.state IN " states \
    "    AND t.finished_at < now() - $1::int8 * interval '1 millisecond'" \
    "    AND ($2::text IS NULL OR t.queue = $2::text)" \
    "    AND ($2::text IS NOT NULL OR NOT (t.queue = ANY($3::text[])))" \
    extra \
    "  ORDER BY t.finished_at" \
    "  LIMIT $4" \
    "  FOR UPDATE SKIP LOCKED)"

static const char sql_probe[] =
    "SELECT"
    "  (SELECT ceil(extract(epoch FROM min(run_at) - clock_timestamp())"
    "     * 1000)::int8 FROM workq.tasks"
    "   WHERE state IN ('scheduled', 'retry_wait')),"
    "  (SELECT ceil(extract(epoch FROM min(lease_expires_at)"
    "     - clock_timestamp()) * 1000)::int8 FROM workq.tasks"
    "   WHERE state = 'running'),"
    "  EXISTS (SELECT 1 FROM workq.tasks"
    "   WHERE state = 'dead' AND dead_published_at IS NULL),"
    "  EXISTS (SELECT 1 FROM workq.outbox),"
    "  EXISTS (SELECT 1 FROM workq.accepted)"
    "    OR EXISTS (SELECT 1 FROM workq.accepted_runs)";

static const char sql_due_select[] =
    "SELECT " TASK_COLS ", t.state,"
    "  floor(extract(epoch FROM now() - t.run_at) * 1000)::int8,"
    "  t.priority::int4"
    "  FROM workq.tasks t" TASK_FLOW_JOIN
    "  WHERE t.state IN ('scheduled', 'retry_wait') AND t.run_at <= now()"
    "  ORDER BY t.run_at"
    "  LIMIT $1"
    "  FOR UPDATE OF t SKIP LOCKED";

static const char sql_due_queued[] =
    "UPDATE workq.tasks SET state = 'queued', updated_at = now()"
    "  WHERE id = ANY($1::uuid[])"
    "    AND state IN ('scheduled', 'retry_wait')";

/* A row that makes no valid envelope can never run: dead, with why.
 * There is no copy for workq.Q.dead either (the same envelope). */
static const char sql_due_unpublishable[] =
    "UPDATE workq.tasks SET state = 'dead', finished_at = now(),"
    "  dead_published_at = now(), last_error = $2, updated_at = now()"
    "  WHERE id = $1::uuid AND state IN ('scheduled', 'retry_wait')";

static const char sql_lease_select[] =
    "SELECT t.id, t.queue, t.attempt, t.max_attempts"
    "  FROM workq.tasks t"
    "  WHERE t.state = 'running' AND t.lease_expires_at < now()"
    "  ORDER BY t.lease_expires_at"
    "  LIMIT $1"
    "  FOR UPDATE SKIP LOCKED";

/*
 * The attempt that lost its lease gets its outcome (its row exists since
 * the claim; if not, it is made), and any older attempt left open by
 * another lost worker too.  `x` carries each task's delay.  `older`
 * finds its rows by an index condition (task_id = ANY), as the claim's
 * `lost` does (store_claims.c): a join on outcome IS NULL alone may be
 * planned as a scan of the whole table.
 */
static const char sql_lease_recover[] =
    "WITH x AS ("
    "  SELECT * FROM unnest($1::uuid[], $2::int8[]) AS x(id, delay_ms)"
    "), u AS ("
    "  UPDATE workq.tasks t SET"
    "    state = CASE WHEN t.attempt >= t.max_attempts THEN 'dead'"
    "            ELSE 'retry_wait' END,"
    "    run_at = CASE WHEN t.attempt >= t.max_attempts THEN NULL"
    "             ELSE now() + x.delay_ms * interval '1 millisecond' END,"
    "    finished_at = CASE WHEN t.attempt >= t.max_attempts THEN now()"
    "                  END,"
    "    last_error = 'lease expired: worker '"
    "      || coalesce(t.lease_owner, '?') || ' stopped renewing it',"
    "    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
    "  FROM x"
    "  WHERE t.id = x.id AND t.state = 'running'"
    "    AND t.lease_expires_at < now()"
    "  RETURNING t.id, t.attempt, t.state, t.worker, t.started_at,"
    "    t.last_error"
    "), h AS ("
    "  INSERT INTO workq.attempts AS a (task_id, attempt, started_at,"
    "    worker, outcome, finished_at, error)"
    "  SELECT u.id, u.attempt, coalesce(u.started_at, now()), u.worker,"
    "    'lease_expired', now(), u.last_error"
    "  FROM u WHERE u.attempt >= 1"
    "  ON CONFLICT (task_id, attempt) DO UPDATE SET"
    "    outcome = 'lease_expired', finished_at = now(),"
    "    error = EXCLUDED.error"
    "  WHERE a.outcome IS NULL"
    "), older AS ("
    "  UPDATE workq.attempts a SET outcome = 'lease_expired',"
    "    finished_at = now(), error = 'lease expired'"
    "  FROM u WHERE a.task_id = ANY (ARRAY(SELECT id FROM u))"
    "    AND a.task_id = u.id AND a.attempt < u.attempt"
    "    AND a.outcome IS NULL"
    ")"
    "SELECT u.id, u.state FROM u";

static const char sql_dead_select[] =
    "SELECT " TASK_COLS ", t.last_error,"
    "  floor(extract(epoch FROM coalesce(t.finished_at, now())) * 1000)::int8"
    "  FROM workq.tasks t" TASK_FLOW_JOIN
    "  WHERE t.state = 'dead' AND t.dead_published_at IS NULL"
    "  ORDER BY t.finished_at"
    "  LIMIT $1"
    "  FOR UPDATE OF t SKIP LOCKED";

static const char sql_dead_mark[] =
    "UPDATE workq.tasks SET dead_published_at = now()"
    "  WHERE id = ANY($1::uuid[]) AND state = 'dead'"
    "    AND dead_published_at IS NULL";

static const char sql_outbox_select[] =
    "SELECT o.id, o.kind, o.queue, o.msg_key, o.body"
    "  FROM workq.outbox o"
    "  ORDER BY o.id"
    "  LIMIT $1"
    "  FOR UPDATE SKIP LOCKED";

static const char sql_outbox_delete[] =
    "DELETE FROM workq.outbox WHERE id = ANY($1::int8[])";

static const char sql_cron_last[] =
    "SELECT floor(extract(epoch FROM max(tick_at)))::int8"
    "  FROM workq.cron_ticks WHERE name = $1";

static const char sql_cron_tick[] =
    "WITH ins AS ("
    "  INSERT INTO workq.cron_ticks (name, tick_at, task_id)"
    "  SELECT $1, timestamptz 'epoch' + x * interval '1 second',"
    "    workq.uuid_v7()"
    "  FROM unnest($2::int8[]) AS x"
    "  ON CONFLICT DO NOTHING"
    "  RETURNING tick_at, task_id"
    "), k AS ("
    "  SELECT tick_at, task_id,"
    "    to_char(tick_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI\"Z\"')"
    "      AS iso"
    "  FROM ins"
    ")"
    "INSERT INTO workq.tasks AS t (id, queue, type, idempotency_key,"
    "  payload, headers, state, attempt, max_attempts, run_at, created_at,"
    "  priority)"
    "SELECT k.task_id, $3, $4, 'cron:' || $1 || '@' || k.iso,"
    "  convert_to($5, 'UTF8'),"
    "  jsonb_build_object('workq-cron', $1::text, 'workq-tick', k.iso),"
    "  'scheduled', 0, $6::int4, k.tick_at, now(), $7::int2 "
    "FROM k "
    "ON CONFLICT (queue, idempotency_key) DO NOTHING "
    "RETURNING t.id";

/*
 * Runs of receipts (workq.accepted_runs) that are due for a check: each
 * is rewritten without the ids that have a task row, or deleted when
 * none is left.  A range (an empty `ids`, migration 0012) is deleted
 * once every id of it has a row, counted among the rows between its
 * first and last id; until then it stays as it is.  A run that did not
 * shrink is checked again later and later (check_ms doubles up to 5
 * minutes), so a backlog nobody consumes costs little.
 */
static const char sql_receipt_runs[] =
    "WITH due AS ("
    "  SELECT r.id, r.ids, r.check_ms, r.first_id, r.last_id"
    "  FROM workq.accepted_runs r"
    "  WHERE r.next_check <= now()"
    "  ORDER BY r.next_check LIMIT $1"
    "  FOR UPDATE SKIP LOCKED"
    "), kept AS ("
    "  SELECT d.id, d.check_ms, octet_length(d.ids) AS before,"
    "    CASE WHEN octet_length(d.ids) = 0 THEN"
    "      CASE WHEN (SELECT count(*) FROM workq.tasks t"
    "          WHERE t.id BETWEEN d.first_id AND d.last_id"
    "            AND workq.uuid_rand_b(t.id) BETWEEN"
    "              workq.uuid_rand_b(d.first_id)"
    "              AND workq.uuid_rand_b(d.last_id))"
    "        > workq.uuid_rand_b(d.last_id) - workq.uuid_rand_b(d.first_id)"
    "      THEN NULL ELSE d.ids END"
    "    ELSE (SELECT string_agg(x.b, ''::bytea ORDER BY x.i) FROM ("
    "       SELECT i, substring(d.ids FROM i * 16 + 1 FOR 16) AS b"
    "       FROM generate_series(0, octet_length(d.ids) / 16 - 1) i) x"
    "     WHERE NOT EXISTS (SELECT 1 FROM workq.tasks t"
    "       WHERE t.id = encode(x.b, 'hex')::uuid)) END AS ids"
    "  FROM due d"
    "), gone AS ("
    "  DELETE FROM workq.accepted_runs r USING kept k"
    "  WHERE r.id = k.id AND k.ids IS NULL RETURNING r.id"
    "), moved AS ("
    "  UPDATE workq.accepted_runs r SET ids = k.ids,"
    "    first_id = CASE WHEN octet_length(k.ids) = 0 THEN r.first_id"
    "      ELSE encode(substring(k.ids FROM 1 FOR 16), 'hex')::uuid END,"
    "    last_id = CASE WHEN octet_length(k.ids) = 0 THEN r.last_id"
    "      ELSE encode(substring(k.ids FROM octet_length(k.ids) - 15"
    "      FOR 16), 'hex')::uuid END,"
    "    check_ms = CASE WHEN octet_length(k.ids) = k.before"
    "      THEN least(k.check_ms * 2, 300000) ELSE 2000 END,"
    "    next_check = now() + (CASE WHEN octet_length(k.ids) = k.before"
    "      THEN least(k.check_ms * 2, 300000) ELSE 2000 END)"
    "      * interval '1 millisecond'"
    "  FROM kept k WHERE r.id = k.id AND k.ids IS NOT NULL RETURNING r.id"
    ")"
    "SELECT (SELECT count(*) FROM due), (SELECT count(*) FROM gone)";

/* The receipts of claimed tasks; LIMIT keeps each statement short. */
static const char sql_receipts[] =
    "DELETE FROM workq.accepted WHERE id IN ("
    "  SELECT a.id FROM workq.accepted a"
    "  WHERE EXISTS (SELECT 1 FROM workq.tasks t WHERE t.id = a.id)"
    "  LIMIT $1"
    "  FOR UPDATE OF a SKIP LOCKED)";

static const char sql_prune_done[] =
    TASKS_SQL("('succeeded', 'cancelled')", "");

static const char sql_prune_dead[] =
    TASKS_SQL("('dead')", "    AND t.dead_published_at IS NOT NULL");

static const char sql_prune_ticks[] =
    "DELETE FROM workq.cron_ticks WHERE (name, tick_at) IN ("
    "  SELECT c.name, c.tick_at FROM workq.cron_ticks c"
    "  WHERE c.tick_at < now() - $1::int8 * interval '1 millisecond'"
    "    AND c.tick_at < (SELECT max(m.tick_at) FROM workq.cron_ticks m"
    "                     WHERE m.name = c.name)"
    "  LIMIT $2"
    "  FOR UPDATE SKIP LOCKED)";

static const char sql_prune_workers[] =
    "DELETE FROM workq.workers WHERE id IN ("
    "  SELECT w.id FROM workq.workers w"
    "  WHERE greatest(w.heartbeat_at, w.stopped_at)"
    "    < now() - $1::int8 * interval '1 millisecond'"
    "  LIMIT $2"
    "  FOR UPDATE SKIP LOCKED)";

/*
 * Retention of flow control's rows (migration 0007).  The concurrency key
 * of a task (workq.flow_tasks) whose task row is gone and that holds no
 * admission: the row has no timestamp, so $1 is a transaction id the
 * previous pass recorded (txid_current()) and only rows written before it
 * go, i.e. rows older than one retention interval (a delayed submit
 * writes its key a moment before its task row, an admission with its
 * hold).  $1 NULL (the first pass), or not below the current id (a
 * restored database), deletes nothing and records.  Returns
 * the count deleted and the id for the next pass.
 */
static const char sql_prune_flow_tasks[] =
    "WITH d AS ("
    "  DELETE FROM workq.flow_tasks WHERE (queue, idempotency_key) IN ("
    "    SELECT f.queue, f.idempotency_key FROM workq.flow_tasks f"
    "    WHERE $1::int8 IS NOT NULL AND txid_current() > $1::int8"
    "      AND age(f.xmin) > txid_current() - $1::int8"
    "      AND NOT EXISTS (SELECT 1 FROM workq.tasks t"
    "        WHERE t.queue = f.queue AND t.idempotency_key = f.idempotency_key)"
    "      AND NOT EXISTS (SELECT 1 FROM workq.flow_holds h"
    "        WHERE h.queue = f.queue AND h.idempotency_key = f.idempotency_key)"
    "    LIMIT $2"
    "    FOR UPDATE SKIP LOCKED)"
    "  RETURNING 1)"
    "SELECT count(*), txid_current() FROM d";

/* Holds taken longer ago than $1 whose task does not run under a live
 * lease: dead (a hold is live only while that holds, or for a lease's
 * grace after it was taken); the key's next admission would delete
 * them, a key that is never used again keeps them otherwise. */
static const char sql_prune_flow_holds[] =
    "DELETE FROM workq.flow_holds WHERE (queue, idempotency_key) IN ("
    "  SELECT h.queue, h.idempotency_key FROM workq.flow_holds h"
    "  WHERE h.taken_at < now() - $1::int8 * interval '1 millisecond'"
    "    AND NOT EXISTS (SELECT 1 FROM workq.tasks t"
    "      WHERE t.queue = h.queue AND t.idempotency_key = h.idempotency_key"
    "        AND t.state = 'running' AND t.lease_expires_at >= now())"
    "  LIMIT $2"
    "  FOR UPDATE SKIP LOCKED)";

/* Unique windows that ended longer ago than $1: the next submit of
 * their (queue, key) would replace them with a new window anyway; an
 * open window is never touched. */
static const char sql_prune_windows[] =
    "DELETE FROM workq.unique_windows WHERE (queue, idempotency_key) IN ("
    "  SELECT u.queue, u.idempotency_key FROM workq.unique_windows u"
    "  WHERE u.window_end < now() - $1::int8 * interval '1 millisecond'"
    "  LIMIT $2"
    "  FOR UPDATE SKIP LOCKED)";

/*
 * Finished workflows (migration 0008): closed, every node ended, the
 * last longer ago than $1; oldest first, with their nodes and edges (ON
 * DELETE CASCADE).  At most $2 workflows and, past the first, $2 nodes
 * in all, so one statement stays short whatever their size.  Returns
 * the workflows deleted, their nodes, and how many were picked (more
 * than deleted, or $2: the step runs again).
 */
static const char sql_prune_workflows[] =
    "WITH pick AS ("
    "  SELECT w.id, w.created_at FROM workq.workflows w"
    "  WHERE NOT w.open"
    "    AND w.created_at < now() - $1::int8 * interval '1 millisecond'"
    "    AND NOT EXISTS (SELECT 1 FROM workq.workflow_nodes n"
    "      WHERE n.workflow_id = w.id AND (n.state IN ('pending', 'started')"
    "        OR n.ended_at IS NULL"
    "        OR n.ended_at >= now() - $1::int8 * interval '1 millisecond'))"
    "  ORDER BY w.created_at"
    "  LIMIT $2"
    "  FOR UPDATE SKIP LOCKED"
    "), sized AS ("
    "  SELECT p.id, row_number() OVER o AS rn,"
    "    sum((SELECT count(*) FROM workq.workflow_nodes n"
    "         WHERE n.workflow_id = p.id)) OVER o AS upto"
    "  FROM pick p WINDOW o AS (ORDER BY p.created_at, p.id)"
    "), d AS ("
    "  DELETE FROM workq.workflows w USING sized s"
    "  WHERE w.id = s.id AND (s.rn = 1 OR s.upto <= $2)"
    "  RETURNING s.upto"
    ")"
    "SELECT (SELECT count(*) FROM d), (SELECT coalesce(max(upto), 0) FROM d),"
    "  (SELECT count(*) FROM pick)";

/* Completion hooks (scheduler/hooks.c, migration 0009): the due
 * deliveries, those delivered (deleted), those to try again later. */
static const char sql_hooks_select[] =
    "SELECT d.id::text, d.url, d.body, d.attempts"
    "  FROM workq.hook_deliveries d"
    "  WHERE d.next_at <= now()"
    "  ORDER BY d.next_at"
    "  LIMIT $1"
    "  FOR UPDATE SKIP LOCKED";

/* Milliseconds until the earliest delivery is due (NULL: none). */
static const char sql_hooks_next[] =
    "SELECT ceil(extract(epoch FROM min(next_at) - clock_timestamp())"
    "  * 1000)::int8 FROM workq.hook_deliveries";

static const char sql_hooks_delivered[] =
    "DELETE FROM workq.hook_deliveries WHERE id = ANY($1::uuid[])";

static const char sql_hooks_retry[] =
    "UPDATE workq.hook_deliveries d SET attempts = d.attempts + 1,"
    "    next_at = now() + x.delay_ms * interval '1 millisecond',"
    "    last_error = x.error"
    "  FROM unnest($1::uuid[], $2::int8[], $3::text[])"
    "    AS x(id, delay_ms, error)"
    "  WHERE d.id = x.id";

static const struct {
    const char *sql;
    int nparams;
    int binary;
    const char *what;
} stmts[WQ_SCHED_SQL_COUNT] = {
    [WQ_SCHED_SQL_PROBE] = {
        sql_probe, 0, 1, "probe" },
    [WQ_SCHED_SQL_DUE_SELECT] = {
        sql_due_select, 1, 1, "select due tasks" },
    [WQ_SCHED_SQL_DUE_QUEUED] = {
        sql_due_queued, 1, 1, "mark published tasks queued" },
    [WQ_SCHED_SQL_DUE_UNPUBLISHABLE] = {
        sql_due_unpublishable, 2, 1, "make an unpublishable task dead" },
    [WQ_SCHED_SQL_LEASE_SELECT] = {
        sql_lease_select, 1, 1, "select expired leases" },
    [WQ_SCHED_SQL_LEASE_RECOVER] = {
        sql_lease_recover, 2, 1, "recover expired leases" },
    [WQ_SCHED_SQL_DEAD_SELECT] = {
        sql_dead_select, 1, 1, "select dead tasks" },
    [WQ_SCHED_SQL_DEAD_MARK] = {
        sql_dead_mark, 1, 1, "mark dead copies published" },
    [WQ_SCHED_SQL_OUTBOX_SELECT] = {
        sql_outbox_select, 1, 1, "select outbox rows" },
    [WQ_SCHED_SQL_OUTBOX_DELETE] = {
        sql_outbox_delete, 1, 1, "delete relayed outbox rows" },
    [WQ_SCHED_SQL_CRON_LAST] = {
        sql_cron_last, 1, 1, "read the last periodic tick" },
    [WQ_SCHED_SQL_CRON_TICK] = {
        sql_cron_tick, 7, 1, "enqueue periodic ticks" },
    [WQ_SCHED_SQL_RECEIPT_RUNS] = {
        sql_receipt_runs, 1, 0, "sweep receipt runs" },
    [WQ_SCHED_SQL_RECEIPTS] = {
        sql_receipts, 1, 0, "sweep receipts" },
    [WQ_SCHED_SQL_PRUNE_DONE] = {
        sql_prune_done, 4, 0, "prune finished tasks" },
    [WQ_SCHED_SQL_PRUNE_DEAD] = {
        sql_prune_dead, 4, 0, "prune finished tasks" },
    [WQ_SCHED_SQL_PRUNE_TICKS] = {
        sql_prune_ticks, 2, 0, "prune periodic ticks" },
    [WQ_SCHED_SQL_PRUNE_WORKERS] = {
        sql_prune_workers, 2, 0, "prune worker rows" },
    [WQ_SCHED_SQL_PRUNE_FLOW_TASKS] = {
        sql_prune_flow_tasks, 2, 0, "prune concurrency keys of gone tasks" },
    [WQ_SCHED_SQL_PRUNE_FLOW_HOLDS] = {
        sql_prune_flow_holds, 2, 0, "prune dead concurrency holds" },
    [WQ_SCHED_SQL_PRUNE_WINDOWS] = {
        sql_prune_windows, 2, 0, "prune ended unique windows" },
    [WQ_SCHED_SQL_PRUNE_WORKFLOWS] = {
        sql_prune_workflows, 2, 0, "prune finished workflows" },
    [WQ_SCHED_SQL_HOOKS_SELECT] = {
        sql_hooks_select, 1, 0, "select due completion hooks" },
    [WQ_SCHED_SQL_HOOKS_NEXT] = {
        sql_hooks_next, 0, 0, "read when the next completion hook is due" },
    [WQ_SCHED_SQL_HOOKS_DELIVERED] = {
        sql_hooks_delivered, 1, 0, "delete delivered completion hooks" },
    [WQ_SCHED_SQL_HOOKS_RETRY] = {
        sql_hooks_retry, 3, 0, "postpone completion hooks" },
};

int
wq_store_sched_query(wq_store *s, enum wq_sched_sql q,
    const char *const *values, struct pg_result **out, char *err,
    size_t errlen)
{
    if ((unsigned)q >= WQ_SCHED_SQL_COUNT) {
        *out = NULL;
        return wq_seterr(err, errlen, WQ_EINVAL, "no statement %d", (int)q);
    }
    return wq_store_query(s, stmts[q].sql, stmts[q].nparams, values,
        stmts[q].binary, out, stmts[q].what, err, errlen);
}
