/*
 * wq_test_pg.c - per-test PostgreSQL databases (see wq_test_pg.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "migrate.h"
#include "store_int.h"
#include "wq_test.h"
#include "wq_test_pg.h"

#define MAX_DBS 8

static char created[MAX_DBS][64];
static int ncreated;
static pid_t creator;

static void
drop_all(void)
{
    char err[WQ_ERRLEN], sql[WQ_ERRLEN];
    wq_store *m;

    /* a forked child of the test must not drop its parent's databases */
    if (getpid() != creator || ncreated == 0)
        return;
    if (wq_store_open(WQ_TEST_PG_CONNINFO(), NULL, &m, err, sizeof err))
        return;
    for (int i = 0; i < ncreated; i++) {
        snprintf(sql, sizeof sql,
            "DROP DATABASE IF EXISTS %.63s WITH (FORCE)", created[i]);
        if (wq_store_exec(m, sql, err, sizeof err) != 0)
            fprintf(stderr, "%s: %s\n", sql, err);
    }
    ncreated = 0;
    wq_store_close(m);
}

/* Appends key='value' to buf, quoted as libpq wants. */
static void
conninfo_add(char *buf, size_t len, const char *key, const char *val)
{
    size_t n = strlen(buf);

    n += (size_t)snprintf(buf + n, len - n, "%s%s='", n > 0 ? " " : "",
        key);
    for (; *val != '\0' && n + 3 < len; val++) {
        if (*val == '\'' || *val == '\\')
            buf[n++] = '\\';
        buf[n++] = *val;
    }
    snprintf(buf + n, len - n, "'");
}

wq_store *
wq_test_pg_open(const char *conninfo)
{
    char err[WQ_ERRLEN];
    wq_store *s = NULL;

    if (wq_store_open(conninfo, NULL, &s, err, sizeof err) != 0)
        fail_msg("cannot reach the test PostgreSQL (%s): %s; start it with "
            "`tests/services/ctl start pg` or set WORKQ_TEST_PG_CONNINFO",
            conninfo, err);
    return s;
}

const char *
wq_test_pg_create_db(void)
{
    static char conninfo[1024];
    char name[64], sql[128], err[WQ_ERRLEN], *perr = NULL;
    PQconninfoOption *opts, *o;
    wq_store *m;

    if (ncreated == MAX_DBS)
        fail_msg("more than %d test databases in one test", MAX_DBS);
    snprintf(name, sizeof name, "wqtest_%ld_%d", (long)getpid(), ncreated);
    m = wq_test_pg_open(WQ_TEST_PG_CONNINFO());
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (wq_store_exec(m, sql, err, sizeof err) != 0) {
        wq_store_close(m);
        fail_msg("%s: %s", sql, err);
    }
    wq_store_close(m);
    if (creator != getpid()) {
        creator = getpid();
        ncreated = 0;
        atexit(drop_all);
    }
    snprintf(created[ncreated++], sizeof created[0], "%s", name);

    if ((opts = PQconninfoParse(WQ_TEST_PG_CONNINFO(), &perr)) == NULL) {
        PQfreemem(perr);
        fail_msg("bad WORKQ_TEST_PG_CONNINFO");
    }
    conninfo[0] = '\0';
    for (o = opts; o->keyword != NULL; o++)
        if (o->val != NULL && strcmp(o->keyword, "dbname") != 0)
            conninfo_add(conninfo, sizeof conninfo, o->keyword, o->val);
    conninfo_add(conninfo, sizeof conninfo, "dbname", name);
    PQconninfoFree(opts);
    return conninfo;
}

const char *
wq_test_pg_create_migrated_db(void)
{
    const char *conninfo = wq_test_pg_create_db();
    char err[WQ_ERRLEN];
    wq_store *s = wq_test_pg_open(conninfo);
    int rc = wq_migrate_run(s, NULL, NULL, err, sizeof err);

    wq_store_close(s);
    if (rc != 0)
        fail_msg("migrate: %s", err);
    return conninfo;
}

void
wq_test_pg_exec(wq_store *s, const char *sql)
{
    char err[WQ_ERRLEN];

    if (wq_store_exec(s, sql, err, sizeof err) != 0)
        fail_msg("%s: %s", sql, err);
}

long long
wq_test_pg_num(wq_store *s, const char *sql)
{
    PGresult *r = PQexec(wq_store_conn(s), sql);
    char msg[512];
    long long v;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        snprintf(msg, sizeof msg, "%s", PQresultStatus(r) == PGRES_TUPLES_OK
            ? "not exactly one row" : PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("%s: %s", sql, msg);
    }
    v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

long long
wq_test_pg_numf(wq_store *s, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return wq_test_pg_num(s, sql);
}
