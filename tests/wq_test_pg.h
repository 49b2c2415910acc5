/*
 * wq_test_pg.h - a fresh PostgreSQL database per test, on the private
 * server of tests/services (WQ_TEST_PG_CONNINFO()).
 *
 * The schema name is fixed (workq), so isolation is by database: create
 * one named wqtest_<pid>_<n>, migrated or not, and it is dropped (WITH
 * (FORCE)) when the test process exits, whether the test passed or not.
 * A missing server fails the test with a hint; it never skips.
 */
#ifndef WQ_TEST_PG_H
#define WQ_TEST_PG_H

#include <stddef.h>

#include "store.h"

/*
 * Creates an empty database and returns a conninfo selecting it (a static
 * buffer, valid until the next call).  Fails the test if the server is
 * unreachable.
 */
const char *wq_test_pg_create_db(void);

/* As wq_test_pg_create_db, then applies every migration. */
const char *wq_test_pg_create_migrated_db(void);

/* Opens a store on conninfo or fails the test. */
wq_store *wq_test_pg_open(const char *conninfo);

/* Runs sql or fails the test. */
void wq_test_pg_exec(wq_store *s, const char *sql);

/* The first column of the single row of a query, as a number. */
long long wq_test_pg_num(wq_store *s, const char *sql);

/* As wq_test_pg_num with a printf-style query. */
long long wq_test_pg_numf(wq_store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
