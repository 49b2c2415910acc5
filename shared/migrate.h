/*
 * migrate.h - brings the workq schema of a database up to the version this
 * binary knows (`workq migrate`), and tells a daemon whether it can run on
 * the schema it finds.
 *
 * The migrations are the numbered files of shared/migrations/, compiled
 * into the library (migrations.h).  Each is applied in a transaction of
 * its own, together with the row of workq.schema_migrations that records
 * it, while holding the transaction-scoped advisory lock
 * WQ_MIGRATE_LOCK_KEY: concurrent runs (two hosts deploying at once)
 * serialize on it, and each migration is applied exactly once.  There are
 * no down migrations; a migration must keep the previous release's
 * binaries working (add now, drop a release later).
 *
 * All functions block on the database and use the store's connection,
 * which must not be inside a transaction.
 */
#ifndef WQ_MIGRATE_H
#define WQ_MIGRATE_H

#include <stddef.h>

#include "store.h"

/* The pg_advisory_xact_lock key that serializes migrations ("workqmig"). */
#define WQ_MIGRATE_LOCK_KEY 0x776f726b716d6967LL

/* The oldest PostgreSQL server version migrate accepts (15.0). */
#define WQ_MIGRATE_MIN_SERVER 150000

/* wq_migrate_latest returns the highest migration version built into this
 * binary (0 if there were none).  Pure; thread-safe. */
int wq_migrate_latest(void);

/*
 * wq_migrate_version reads the schema version of the database into
 * *version: the highest version recorded in workq.schema_migrations, 0 if
 * the table does not exist (a database never migrated).  Returns 0 or
 * WQ_ESTORE.  Takes no lock.
 */
int wq_migrate_version(wq_store *s, int *version, char *err, size_t errlen);

/*
 * wq_migrate_run applies every missing migration, in order, up to
 * wq_migrate_latest().  *from (may be NULL) receives the version found
 * under the lock before the first one was applied and *to (may be NULL)
 * the version reached; from == to means there was nothing to do, which is
 * logged as "already at version N".  A run that fails leaves the database
 * at the last migration that committed (*to), never half-way into one.
 *
 * Returns 0; WQ_ESTORE if the database is at a version newer than this
 * binary knows (refused, err says so: upgrade workq), if the server is
 * older than PostgreSQL 15, or if a migration failed (err names it and
 * the server's reason); WQ_EINVAL if the embedded migrations are not
 * numbered 1..N or the connection is inside a transaction.  May wait for
 * the lock while another run migrates.
 */
int wq_migrate_run(wq_store *s, int *from, int *to, char *err,
    size_t errlen);

/*
 * wq_migrate_to is wq_migrate_run stopping at version `target`
 * (1..latest): for tests of a migration against data of the one before.
 * A database already past `target` is left alone (no downgrades).
 */
int wq_migrate_to(wq_store *s, int target, int *from, int *to, char *err,
    size_t errlen);

/*
 * wq_migrate_check is for daemons at start-up: returns 0 if the database
 * has at least every migration this binary knows.  A newer database is
 * accepted with a warning in the log (migrations keep the previous
 * release working, so binaries may be upgraded after the schema).  An
 * older one returns WQ_ESTORE with err asking to run `workq migrate`.
 */
int wq_migrate_check(wq_store *s, char *err, size_t errlen);

/*
 * What every process says when the database lacks (some of) the workq
 * schema: wq_migrate_check at start-up, and wq_store_result_check for a
 * statement that found no workq relation or schema (SQLSTATE 42P01,
 * 3F000).
 */
#define WQ_MIGRATE_HINT "run `workq migrate`"

#endif
