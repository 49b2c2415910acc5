/*
 * migrate.c - applies the embedded SQL migrations (migrations.h) to a
 * database, one transaction per migration, serialized by an advisory lock
 * (see migrate.h for the contracts).
 *
 * The loop is: BEGIN (read committed), take pg_advisory_xact_lock, read
 * the version, then either stop (up to date, or newer than we know) or run
 * the next migration's SQL and record it, and COMMIT, which releases the
 * lock.  Reading the version after taking the lock, in read committed
 * mode (each statement sees what committed before it started), is what
 * makes a concurrent run see the other's work and skip it.  The version
 * table itself is created by migration 1, so a database never migrated
 * is version 0.
 *
 * This file owns that sequence and workq.schema_migrations; the schema
 * is in shared/migrations/NNNN_name.sql and the connection in store.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "clock.h"
#include "log.h"
#include "migrate.h"
#include "migrations.h"
#include "store_int.h"

/* Records a migration; the checksum is the hex SHA-256 of its SQL. */
#define RECORD_SQL                                                        \
    "INSERT INTO workq.schema_migrations (version, name, checksum) "      \
    "VALUES ($1::int4, $2, encode(sha256($3::bytea), 'hex'))"

/* Applied migrations whose checksum differs from this binary's copy. */
#define CHECKSUM_SQL                                                      \
    "SELECT 1 FROM workq.schema_migrations WHERE version = $1::int4 "     \
    "AND checksum <> encode(sha256($2::bytea), 'hex')"

int
wq_migrate_latest(void)
{
    if (wq_migrations_count == 0)
        return 0;
    return wq_migrations[wq_migrations_count - 1].version;
}

/* The embedded list must be versions 1..N in order: migration v is
 * wq_migrations[v - 1]. */
static int
list_check(char *err, size_t errlen)
{
    for (size_t i = 0; i < wq_migrations_count; i++)
        if (wq_migrations[i].version != (int)i + 1)
            return wq_seterr(err, errlen, WQ_EINVAL,
                "embedded migrations: expected version %zu at position %zu, "
                "found %d", i + 1, i, wq_migrations[i].version);
    return 0;
}

/* Runs one parameterless statement, keeping no rows. */
static int
exec_simple(wq_store *s, const char *sql, const char *what, char *err,
    size_t errlen)
{
    PGresult *r = PQexec(s->conn, sql);
    int rc = wq_store_result_check(s, r, what, err, errlen);

    PQclear(r);
    return rc;
}

/* Ends a failed transaction; errors are beside the point by now. */
static void
rollback(wq_store *s)
{
    PGconn *conn = s->conn;

    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK"));
}

/*
 * Reads the version without wq_store_ping: inside the locked transaction
 * a reconnect would silently leave it (ping reconnects a lost
 * connection).
 */
static int
read_version(wq_store *s, int *version, char *err, size_t errlen)
{
    PGconn *conn = s->conn;
    PGresult *r;
    int rc, exists;

    *version = 0;
    r = PQexec(conn, "SELECT to_regclass('workq.schema_migrations') "
        "IS NOT NULL");
    if ((rc = wq_store_result_check(s, r, "read schema version", err,
        errlen)) != 0) {
        PQclear(r);
        return rc;
    }
    exists = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!exists)
        return 0;
    r = PQexec(conn, "SELECT coalesce(max(version), 0) "
        "FROM workq.schema_migrations");
    if ((rc = wq_store_result_check(s, r, "read schema version", err,
        errlen)) == 0)
        *version = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

int
wq_migrate_version(wq_store *s, int *version, char *err, size_t errlen)
{
    int rc;

    *version = 0;
    if ((rc = wq_store_ping(s, err, errlen)) != 0)
        return rc;
    return read_version(s, version, err, errlen);
}

/* Inside the locked transaction: applies migration m and records it. */
static int
apply_one(wq_store *s, const struct wq_migration *m, char *err,
    size_t errlen)
{
    PGconn *conn = s->conn;
    char version[16], what[160], why[WQ_ERRLEN];
    const char *values[3];
    int lengths[3] = { 0, 0, 0 }, formats[3] = { 0, 0, 1 };
    PGresult *r;
    int rc;

    snprintf(what, sizeof what, "migration %d (%s)", m->version, m->name);
    r = PQexec(conn, m->sql);
    rc = wq_store_result_check(s, r, what, why, sizeof why);
    PQclear(r);
    if (rc != 0)
        return wq_seterr(err, errlen, WQ_ESTORE, "%s", why);

    snprintf(version, sizeof version, "%d", m->version);
    values[0] = version;
    values[1] = m->name;
    values[2] = m->sql;
    lengths[2] = (int)strlen(m->sql);
    r = PQexecParams(conn, RECORD_SQL, 3, NULL, values, lengths, formats, 0);
    rc = wq_store_result_check(s, r, "record migration", err, errlen);
    PQclear(r);
    return rc;
}

/*
 * Commits the transaction of migration m.  A COMMIT of an aborted
 * transaction "succeeds" as a ROLLBACK, and a migration that ended the
 * transaction on its own broke the one-transaction rule: both are errors.
 */
static int
commit(wq_store *s, const struct wq_migration *m, char *err, size_t errlen)
{
    PGconn *conn = s->conn;
    PGresult *r;
    int rc;

    if (PQtransactionStatus(conn) != PQTRANS_INTRANS)
        return wq_seterr(err, errlen, WQ_ESTORE,
            "migration %d (%s) ended its transaction itself (COMMIT or "
            "ROLLBACK in its SQL)", m->version, m->name);
    r = PQexec(conn, "COMMIT");
    if ((rc = wq_store_result_check(s, r, "migrate: commit", err,
        errlen)) == 0 && strcmp(PQcmdStatus(r), "COMMIT") != 0)
        rc = wq_seterr(err, errlen, WQ_ESTORE,
            "migration %d (%s): commit was rolled back", m->version,
            m->name);
    PQclear(r);
    return rc;
}

/* Warns about applied migrations whose SQL differs from this binary's
 * copy: a released migration was edited.  Best effort. */
static void
checksums_warn(wq_store *s, int upto)
{
    PGconn *conn = s->conn;
    char version[16];
    const char *values[2];
    int lengths[2] = { 0, 0 }, formats[2] = { 0, 1 };
    PGresult *r;

    for (int v = 1; v <= upto && v <= (int)wq_migrations_count; v++) {
        const struct wq_migration *m = &wq_migrations[v - 1];

        snprintf(version, sizeof version, "%d", v);
        values[0] = version;
        values[1] = m->sql;
        lengths[1] = (int)strlen(m->sql);
        r = PQexecParams(conn, CHECKSUM_SQL, 2, NULL, values, lengths,
            formats, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
            wq_log_warn("migrate", "migration %d (%s) differs from the one "
                "applied to this database: a released migration was "
                "edited", v, m->name);
        PQclear(r);
    }
}

int
wq_migrate_to(wq_store *s, int target, int *from, int *to, char *err,
    size_t errlen)
{
    PGconn *conn = s->conn;
    int latest = wq_migrate_latest(), first = -1, version = 0, rc;
    char lock[80];

    if (from != NULL)
        *from = 0;
    if (to != NULL)
        *to = 0;
    if ((rc = list_check(err, errlen)) != 0)
        return rc;
    if (target < 1 || target > latest)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "migrate: target version %d is not in 1..%d", target, latest);
    if ((rc = wq_store_ping(s, err, errlen)) != 0)
        return rc;
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "migrate: the connection is inside a transaction");
    if (PQserverVersion(conn) < WQ_MIGRATE_MIN_SERVER)
        return wq_seterr(err, errlen, WQ_ESTORE,
            "migrate: PostgreSQL %d.%d is too old, workq needs %d or newer",
            PQserverVersion(conn) / 10000, PQserverVersion(conn) % 10000,
            WQ_MIGRATE_MIN_SERVER / 10000);
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%lld)",
        (long long)WQ_MIGRATE_LOCK_KEY);

    for (;;) {
        const struct wq_migration *m;
        uint64_t t0;
        int found;

        /* Read committed even if the server defaults to another level:
         * the version must be read after the lock is granted. */
        if ((rc = exec_simple(s, "BEGIN ISOLATION LEVEL READ COMMITTED",
            "migrate: begin", err, errlen)) != 0)
            goto fail;
        if ((rc = exec_simple(s, lock, "migrate: lock", err, errlen)) != 0)
            goto fail;
        if ((rc = read_version(s, &found, err, errlen)) != 0)
            goto fail;
        version = found;
        if (first < 0)
            first = version;
        if (version > latest) {
            rc = wq_seterr(err, errlen, WQ_ESTORE,
                "migrate: the database schema is at version %d, newer than "
                "this workq knows (%d): upgrade workq, do not downgrade the "
                "schema", version, latest);
            goto fail;
        }
        if (version >= target)
            break;

        m = &wq_migrations[version];
        t0 = wq_clock_mono_ns();
        if ((rc = apply_one(s, m, err, errlen)) != 0)
            goto fail;
        if ((rc = commit(s, m, err, errlen)) != 0)
            goto fail;
        version = m->version;
        wq_log_info("migrate", "applied migration %d (%s) in %llu ms",
            m->version, m->name,
            (unsigned long long)((wq_clock_mono_ns() - t0) / 1000000));
    }
    rollback(s);    /* nothing was done in this last transaction */
    checksums_warn(s, version);
    if (first == version)
        wq_log_info("migrate", "already at version %d", version);
    else
        wq_log_info("migrate", "migrated from version %d to %d", first,
            version);
    if (from != NULL)
        *from = first;
    if (to != NULL)
        *to = version;
    return 0;

fail:
    rollback(s);
    if (from != NULL)
        *from = first < 0 ? 0 : first;
    if (to != NULL)
        *to = version;  /* the last committed, or the newer one found */
    return rc;
}

int
wq_migrate_run(wq_store *s, int *from, int *to, char *err, size_t errlen)
{
    int latest = wq_migrate_latest();

    if (latest == 0)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "migrate: this binary has no migrations");
    return wq_migrate_to(s, latest, from, to, err, errlen);
}

int
wq_migrate_check(wq_store *s, char *err, size_t errlen)
{
    int version, latest = wq_migrate_latest(), rc;

    if ((rc = wq_migrate_version(s, &version, err, errlen)) != 0)
        return rc;
    if (version == 0)
        return wq_seterr(err, errlen, WQ_ESTORE, "the database has no workq "
            "schema yet: " WQ_MIGRATE_HINT);
    if (version < latest)
        return wq_seterr(err, errlen, WQ_ESTORE,
            "the database schema is at version %d, this workq needs %d: "
            WQ_MIGRATE_HINT, version, latest);
    if (version > latest)
        wq_log_warn("migrate", "the database schema is at version %d, newer "
            "than this workq knows (%d); running anyway", version, latest);
    return 0;
}
