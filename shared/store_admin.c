/*
 * store_admin.c - the operator's statements (see store_admin.h), those
 * of the CLI's commands and of the HTTP API's operator routes; ops.c
 * runs them.  Times come back as epoch milliseconds, ids as text.
 */
#include "store_admin.h"
#include "store_int.h"
#include "wq.h"

/* $1 queue, $2 type, $3 error text, $4 older than ms, $5 newer than ms,
 * $6 ids (a uuid[] literal; NULL: any) */
#define FILTER \
    " t.state = 'dead'" \
    "   AND ($1::text IS NULL OR t.queue = $1)" \
    "   AND ($2::text IS NULL OR t.type = $2)" \
    "   AND ($3::text IS NULL OR strpos(lower(coalesce(t.last_error, ''))," \
    "        lower($3)) > 0)" \
    "   AND ($4::int8 IS NULL" \
    "        OR t.finished_at < now() - $4::int8 * interval '1 millisecond')" \
    "   AND ($5::int8 IS NULL" \
    "        OR t.finished_at >= now() - $5::int8 * interval '1 millisecond')" \
    "   AND ($6::uuid[] IS NULL OR t.id = ANY ($6::uuid[]))"

/* Epoch milliseconds of a timestamptz column, NULL for NULL. */
#define MS(col) "(floor(extract(epoch FROM " col ") * 1000))::int8"
/* Epoch microseconds: exact (extract gives numeric), for keyset cursors. */
#define US(col) "(extract(epoch FROM " col ") * 1000000)::int8"
/* A cursor's microseconds as a timestamptz. */
#define AT_US(p) "('epoch'::timestamptz + " p "::int8 * interval '1 microsecond')"

/*
 * The columns of a task summary (ops.h), in this order:
 * 0 id, 1 queue, 2 type, 3 state, 4 attempt, 5 max_attempts,
 * 6 updated_at, 7 run_at (ms), 8 last_error (200 characters), 9 payload
 * (all, its first 256 bytes or NULL, by BODIES), 10 payload bytes,
 * 11 result (as payload), 12 result bytes, 13 idempotency_key,
 * 14 created_at, 15 finished_at (ms), 16 dead_published_at IS NOT NULL,
 * 17 priority (0 low, 1 normal, 2 high).
 */
#define SUMMARY(BODIES) \
    "t.id::text, t.queue, t.type, t.state, t.attempt, t.max_attempts," \
    MS("t.updated_at") ", " MS("t.run_at") ", left(t.last_error, 200)," \
    "  CASE " BODIES " WHEN 'all' THEN t.payload" \
    "    WHEN 'preview' THEN substring(t.payload FROM 1 FOR 256) END," \
    "  octet_length(t.payload)," \
    "  CASE " BODIES " WHEN 'all' THEN t.result" \
    "    WHEN 'preview' THEN substring(t.result FROM 1 FOR 256) END," \
    "  octet_length(t.result), t.idempotency_key," \
    MS("t.created_at") ", " MS("t.finished_at") "," \
    "  t.dead_published_at IS NOT NULL, t.priority"

/* `workq cancel` */
/* `rec`: a task the broker holds and no worker claimed yet has only its
 * receipt (workq.task_handle); cancelling it writes its row as cancelled,
 * and the worker that receives the message then acks it as a duplicate. */
static const char sql_cancel[] =
    "WITH rec AS ("
    "  INSERT INTO workq.tasks (id, queue, type, idempotency_key, state,"
    "    attempt, max_attempts, created_at, finished_at, last_error,"
    "    priority)"
    "  SELECT h.id, h.queue, h.type, h.idempotency_key, 'cancelled', 0,"
    "    h.max_attempts, h.created_at, now(),"
    "    'cancelled before a worker claimed it', h.priority"
    "  FROM workq.task_handle($1::uuid) h WHERE h.receipt"
    "  ON CONFLICT DO NOTHING"
    "  RETURNING id"
    "), old AS ("
    "  SELECT id, state, lease_owner FROM workq.tasks"
    "  WHERE id = $1::uuid FOR UPDATE"
    "), upd AS ("
    "  UPDATE workq.tasks x SET state = 'cancelled', finished_at = now(),"
    "    updated_at = now()"
    "  FROM old WHERE x.id = old.id"
    "    AND old.state IN ('scheduled', 'queued', 'retry_wait')"
    "  RETURNING x.id"
    "), note AS ("
    "  SELECT pg_notify('workq_cancel', old.id::text) FROM old"
    "  WHERE old.state = 'running'"
    ")"
    "SELECT old.state, old.lease_owner, EXISTS (SELECT 1 FROM upd),"
    "  (SELECT count(*) FROM note)"
    "  FROM old"
    " UNION ALL "
    "SELECT 'queued', NULL, true, 0 FROM rec";

/* `workq dlq list`, GET /v1/dead: newest finished first, keyset
 * pagination after ($8 us, $9 id); column 18 is the cursor's us */
static const char sql_dlq_list[] =
    "SELECT " SUMMARY("'none'") ", " US("t.finished_at")
    "  FROM workq.tasks t WHERE" FILTER
    "   AND ($8::int8 IS NULL OR (t.finished_at, t.id)"
    "        < (" AT_US("$8") ", $9::uuid))"
    "  ORDER BY t.finished_at DESC, t.id DESC"
    "  LIMIT $7::int8";

/* `workq dlq` */
static const char sql_dlq_count[] =
    "SELECT count(*) FROM (SELECT 1 FROM workq.tasks t WHERE" FILTER
    "  LIMIT $7::int8) AS m";

/* `workq dlq` */
/*
 * A new attempt series, as `workq retry` gives one.  The batch is a
 * MATERIALIZED CTE, chosen once: as an IN (subquery) the planner may
 * rescan it per row, and each rescan's FOR UPDATE skips the rows this
 * statement changed already and yields the next ones, so that a LIMIT
 * of 1 purged two tasks (found by the HTTP API's test).
 */
static const char sql_dlq_replay[] =
    "WITH c AS MATERIALIZED ("
    "  SELECT t.id FROM workq.tasks t WHERE" FILTER
    "  ORDER BY t.finished_at LIMIT $7::int8 FOR UPDATE SKIP LOCKED"
    ")"
    "UPDATE workq.tasks x SET state = 'retry_wait', run_at = now(),"
    "  finished_at = NULL, dead_published_at = NULL,"
    "  attempt_base = x.attempt,"
    "  max_attempts = x.attempt + coalesce($8::int4,"
    "    greatest(x.max_attempts - x.attempt_base, 1)),"
    "  updated_at = now()"
    "  FROM c WHERE x.id = c.id AND x.state = 'dead'"
    "  RETURNING x.id::text";

/* `workq dlq` */
static const char sql_dlq_purge[] =
    "WITH c AS MATERIALIZED ("
    "  SELECT t.id FROM workq.tasks t WHERE" FILTER
    "  ORDER BY t.finished_at LIMIT $7::int8 FOR UPDATE SKIP LOCKED"
    ")"
    "DELETE FROM workq.tasks x USING c WHERE x.id = c.id"
    "  AND x.state = 'dead'"
    "  RETURNING x.id::text";

/*
 * `workq list`, GET /v1/tasks: $1 queue, $2 state, $3 type, $4 limit,
 * $5 bodies ('all', 'preview', 'none'), $6 key prefix, $7 created at or
 * after (ms), $8 created before (ms), then the keyset cursor: after
 * ($9 us, $10 id).  Column 18 is the cursor's us.
 */
static const char sql_list[] =
    "SELECT " SUMMARY("$5::text") ", " US("t.created_at")
    "  FROM workq.tasks t"
    "  WHERE ($1::text IS NULL OR t.queue = $1)"
    "    AND ($2::text IS NULL OR t.state = $2)"
    "    AND ($3::text IS NULL OR t.type = $3)"
    "    AND ($6::text IS NULL OR starts_with(t.idempotency_key, $6))"
    "    AND ($7::int8 IS NULL"
    "         OR t.created_at >= 'epoch'::timestamptz"
    "            + $7::int8 * interval '1 millisecond')"
    "    AND ($8::int8 IS NULL"
    "         OR t.created_at < 'epoch'::timestamptz"
    "            + $8::int8 * interval '1 millisecond')"
    "    AND ($9::int8 IS NULL OR (t.created_at, t.id)"
    "         < (" AT_US("$9") ", $10::uuid))"
    /* newest first; ids are UUIDv7, but those made in one millisecond
     * by SQL (workq.uuid_v7) are not ordered among themselves, hence
     * created_at first and the id to make the order total */
    "  ORDER BY t.created_at DESC, t.id DESC"
    "  LIMIT $4::int8";

/* `workq retry` */
static const char sql_retry[] =
    "WITH old AS ("
    "  SELECT id, state, attempt, max_attempts, attempt_base"
    "  FROM workq.tasks WHERE id = $1::uuid FOR UPDATE"
    "), upd AS ("
    "  UPDATE workq.tasks x SET"
    "    state = CASE WHEN old.state = 'scheduled' THEN 'scheduled'"
    "            ELSE 'retry_wait' END,"
    "    run_at = now(), finished_at = NULL, dead_published_at = NULL,"
    "    attempt_base = CASE WHEN old.state IN ('dead', 'cancelled')"
    "      THEN old.attempt ELSE x.attempt_base END,"
    "    max_attempts = CASE WHEN old.state IN ('dead', 'cancelled')"
    "      THEN old.attempt + coalesce($2::int4,"
    "        greatest(old.max_attempts - old.attempt_base, 1))"
    "      ELSE x.max_attempts END,"
    "    updated_at = now()"
    "  FROM old"
    "  WHERE x.id = old.id"
    "    AND old.state IN ('dead', 'cancelled', 'retry_wait', 'scheduled')"
    "  RETURNING x.attempt, x.max_attempts"
    ")"
    "SELECT old.state, (SELECT max_attempts FROM upd),"
    "  (SELECT attempt FROM upd), EXISTS (SELECT 1 FROM upd)"
    "  FROM old";

/* `workq stats` */
/*
 * Waiting: queued rows (published, not yet claimed) and scheduled or
 * retry_wait rows already due; their age counts from when they became
 * due.  Tasks submitted straight to the broker have no row until claimed,
 * so the broker's own depth is asked of the broker (broker_backlog).
 */
static const char sql_stats[] =
    "WITH q AS ("
    "  SELECT queue,"
    "    count(*) FILTER (WHERE state = 'scheduled') AS scheduled,"
    "    count(*) FILTER (WHERE state = 'queued') AS queued,"
    "    count(*) FILTER (WHERE state = 'running') AS running,"
    "    count(*) FILTER (WHERE state = 'retry_wait') AS retry_wait,"
    "    count(*) FILTER (WHERE state = 'succeeded') AS succeeded,"
    "    count(*) FILTER (WHERE state = 'dead') AS dead,"
    "    count(*) FILTER (WHERE state = 'cancelled') AS cancelled,"
    "    count(*) FILTER (WHERE state = 'succeeded'"
    "      AND finished_at > now() - interval '1 minute') AS ok_1m,"
    "    count(*) FILTER (WHERE state = 'dead'"
    "      AND finished_at > now() - interval '1 minute') AS dead_1m,"
    "    floor(extract(epoch FROM now() - min(CASE"
    "      WHEN state = 'queued' THEN coalesce(run_at, updated_at)"
    "      WHEN state IN ('scheduled', 'retry_wait') AND run_at <= now()"
    "        THEN run_at END)))::int8 AS oldest_s"
    "  FROM workq.tasks"
    "  WHERE $1::text IS NULL OR queue = $1"
    "  GROUP BY queue"
    "), o AS ("
    "  SELECT queue, count(*) AS outbox FROM workq.outbox"
    "  WHERE $1::text IS NULL OR queue = $1 GROUP BY queue"
    ")"
    "SELECT coalesce(q.queue, o.queue), coalesce(q.scheduled, 0),"
    "  coalesce(q.queued, 0), coalesce(q.running, 0),"
    "  coalesce(q.retry_wait, 0), coalesce(q.succeeded, 0),"
    "  coalesce(q.dead, 0), coalesce(q.cancelled, 0),"
    "  coalesce(q.ok_1m, 0), coalesce(q.dead_1m, 0), q.oldest_s,"
    "  coalesce(o.outbox, 0)"
    "  FROM q FULL JOIN o ON o.queue = q.queue"
    "  ORDER BY 1";

/* `workq workers` */
static const char sql_workers[] =
    "SELECT id, hostname, pid, array_to_string(queues, ','), in_flight,"
    "  (floor(extract(epoch FROM started_at) * 1000))::int8,"
    "  (floor(extract(epoch FROM heartbeat_at) * 1000))::int8,"
    "  floor(extract(epoch FROM now() - heartbeat_at))::int8,"
    "  CASE WHEN stopped_at IS NOT NULL THEN 'stopped'"
    "       WHEN heartbeat_at < now() - $2::int8 * interval '1 millisecond'"
    "       THEN 'stale' ELSE 'live' END,"
    "  version"
    "  FROM workq.workers"
    "  WHERE $1::bool OR stopped_at IS NULL"
    /* rows of workers gone for a day are pruned (scheduler): small */
    "  ORDER BY id LIMIT 10000";

/*
 * GET /v1/stats/history: per queue and minute (epoch minutes, from $2),
 * the tasks that succeeded ('s') or died ('d') and the attempts that
 * failed ('f', any failure outcome) - each an index range scan on when
 * they ended (0004).  $1 queue or NULL.
 */
static const char sql_history[] =
    "WITH t AS ("
    /* each state alone, so that each reads its partial index on
     * finished_at (tasks_retention_idx, tasks_dead_page_idx) */
    "  SELECT queue, 's' AS k,"
    "    floor(extract(epoch FROM finished_at) / 60)::int8 AS m"
    "  FROM workq.tasks"
    "  WHERE state = 'succeeded'"
    "    AND finished_at >= to_timestamp($2::int8 * 60)"
    "    AND ($1::text IS NULL OR queue = $1)"
    "  UNION ALL"
    "  SELECT queue, 'd', floor(extract(epoch FROM finished_at) / 60)::int8"
    "  FROM workq.tasks"
    "  WHERE state = 'dead'"
    "    AND finished_at >= to_timestamp($2::int8 * 60)"
    "    AND ($1::text IS NULL OR queue = $1)"
    "), f AS ("
    /* the queue of each failed attempt by its task's key, one lookup
     * each: a join may hash the whole tasks table */
    "  SELECT (SELECT x.queue FROM workq.tasks x WHERE x.id = a.task_id)"
    "    AS queue, floor(extract(epoch FROM a.finished_at) / 60)::int8 AS m"
    "  FROM workq.attempts a"
    "  WHERE a.finished_at >= to_timestamp($2::int8 * 60)"
    "    AND a.outcome IN ('failed', 'permanent_failure', 'timeout',"
    "      'lease_expired')"
    ")"
    "SELECT queue, m, k, count(*) FROM t GROUP BY 1, 2, 3"
    " UNION ALL "
    "SELECT queue, m, 'f', count(*) FROM f"
    "  WHERE queue IS NOT NULL AND ($1::text IS NULL OR queue = $1)"
    "  GROUP BY 1, 2"
    "  ORDER BY 1, 2";

/* GET /v1/periodic: the last tick of each name of $1 (a text[] literal),
 * one backward step of cron_ticks' primary key each. */
static const char sql_ticks[] =
    "SELECT n, (SELECT " MS("max(c.tick_at)") " FROM workq.cron_ticks c"
    "  WHERE c.name = n)"
    "  FROM unnest($1::text[]) AS n";

/*
 * `workq dlq list|show` of undecodable messages (workq.dead_letters).
 * List: $1 queue, $2 error text, $3 older than ms, $4 newer than ms (by
 * received_at), $5 limit; newest first.
 */
static const char sql_undecodable_list[] =
    "SELECT id, queue, transport,"
    "  (floor(extract(epoch FROM received_at) * 1000))::int8,"
    "  length(raw), left(error, 200)"
    "  FROM workq.dead_letters"
    "  WHERE ($1::text IS NULL OR queue = $1)"
    "    AND ($2::text IS NULL OR strpos(lower(error), lower($2)) > 0)"
    "    AND ($3::int8 IS NULL"
    "         OR received_at < now() - $3::int8 * interval '1 millisecond')"
    "    AND ($4::int8 IS NULL"
    "         OR received_at >= now() - $4::int8 * interval '1 millisecond')"
    "  ORDER BY id DESC LIMIT $5::int8";

/* One undecodable message, whole: $1 its id. */
static const char sql_undecodable_get[] =
    "SELECT id, queue, transport,"
    "  (floor(extract(epoch FROM received_at) * 1000))::int8,"
    "  length(raw), error, worker, src_partition, src_offset, redelivered,"
    "  msg_key, raw"
    "  FROM workq.dead_letters WHERE id = $1::int8";

static const struct {
    const char *sql;
    int nparams;
} stmts[WQ_ADMIN_SQL_COUNT] = {
    [WQ_ADMIN_SQL_CANCEL] = { sql_cancel, 1 },
    [WQ_ADMIN_SQL_DLQ_LIST] = { sql_dlq_list, 9 },
    [WQ_ADMIN_SQL_DLQ_COUNT] = { sql_dlq_count, 7 },
    [WQ_ADMIN_SQL_DLQ_REPLAY] = { sql_dlq_replay, 8 },
    [WQ_ADMIN_SQL_DLQ_PURGE] = { sql_dlq_purge, 7 },
    [WQ_ADMIN_SQL_HISTORY] = { sql_history, 2 },
    [WQ_ADMIN_SQL_LIST] = { sql_list, 10 },
    [WQ_ADMIN_SQL_RETRY] = { sql_retry, 2 },
    [WQ_ADMIN_SQL_STATS] = { sql_stats, 1 },
    [WQ_ADMIN_SQL_TICKS] = { sql_ticks, 1 },
    [WQ_ADMIN_SQL_WORKERS] = { sql_workers, 2 },
    [WQ_ADMIN_SQL_UNDECODABLE_LIST] = { sql_undecodable_list, 5 },
    [WQ_ADMIN_SQL_UNDECODABLE_GET] = { sql_undecodable_get, 1 },
};

int
wq_store_admin_query(wq_store *s, enum wq_admin_sql q,
    const char *const *values, struct pg_result **out, const char *what,
    char *err, size_t errlen)
{
    if ((unsigned)q >= WQ_ADMIN_SQL_COUNT) {
        *out = NULL;
        return wq_seterr(err, errlen, WQ_EINVAL, "no statement %d", (int)q);
    }
    return wq_store_query(s, stmts[q].sql, stmts[q].nparams, values, 0, out,
        what, err, errlen);
}

const char *
wq_store_admin_sql(enum wq_admin_sql q)
{
    return (unsigned)q < WQ_ADMIN_SQL_COUNT ? stmts[q].sql : NULL;
}
