/*
 * store.c - the PostgreSQL store's core: one libpq connection per
 * wq_store, its error text and its plain statements (see store.h for the
 * contracts and shared/migrations/0001_init.sql for the schema).
 *
 * The SQL lives beside it, one file per use: store_tasks.c (tasks as
 * records: insert, read, receipts, dead letters), store_claims.c (the
 * worker's claims, outcomes and leases), store_sched.c (the scheduler's
 * rounds) and store_admin.c (the CLI's operator commands); migrate.c
 * owns the schema.  They share store_int.h; no other file sees libpq.
 * The last two name their statements for the caller, which reads the
 * rows with the functions of the "rows" section at the end.
 *
 * This file owns the connection (reconnected by wq_store_ping only) and
 * the rules for error text: the server's primary message and SQLSTATE
 * (never DETAIL, which quotes row values such as payloads), and no part of
 * a password, even from a malformed conninfo.  Allocation failures are
 * returned as WQ_ENOMEM, never aborted on.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "alloc.h"
#include "log.h"
#include "migrate.h"
#include "store.h"
#include "store_int.h"


/* What replaces secrets in error text. */
#define REDACTED "********"

static const char *const state_names[WQ_TASK_STATE_COUNT] = {
    [WQ_TASK_SCHEDULED] = "scheduled",
    [WQ_TASK_QUEUED] = "queued",
    [WQ_TASK_RUNNING] = "running",
    [WQ_TASK_SUCCEEDED] = "succeeded",
    [WQ_TASK_RETRY_WAIT] = "retry_wait",
    [WQ_TASK_DEAD] = "dead",
    [WQ_TASK_CANCELLED] = "cancelled",
};

const char *
wq_task_state_name(enum wq_task_state state)
{
    if ((int)state < 0 || (int)state >= WQ_TASK_STATE_COUNT)
        return NULL;
    return state_names[state];
}

int
wq_task_state_parse(const char *s)
{
    if (s == NULL)
        return WQ_EINVAL;
    for (int i = 0; i < WQ_TASK_STATE_COUNT; i++)
        if (strcmp(s, state_names[i]) == 0)
            return i;
    return WQ_EINVAL;
}

int
wq_task_state_is_final(enum wq_task_state state)
{
    return state == WQ_TASK_SUCCEEDED || state == WQ_TASK_DEAD ||
        state == WQ_TASK_CANCELLED;
}

/* --- error text ------------------------------------------------------ */

/*
 * Copies src into dst (dstlen > 0), turning every run of whitespace
 * (libpq's messages span lines, with tabs) into one space and dropping it
 * at both ends.
 */
static void
squash_copy(char *dst, size_t dstlen, const char *src)
{
    size_t n = 0;
    int space = 0;

    for (; *src != '\0' && n + 1 < dstlen; src++) {
        if (isspace((unsigned char)*src)) {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < dstlen)
            dst[n++] = ' ';
        space = 0;
        dst[n++] = *src;
    }
    dst[n] = '\0';
}

/* Replaces every occurrence of `secret` in buf (size buflen) with
 * REDACTED, truncating at buflen. */
static void
redact_secret(char *buf, size_t buflen, const char *secret)
{
    size_t slen, rlen = strlen(REDACTED);
    char *p;

    if (secret == NULL || (slen = strlen(secret)) == 0)
        return;
    p = buf;
    while ((p = strstr(p, secret)) != NULL) {
        size_t tail = strlen(p + slen);
        size_t room = buflen - (size_t)(p - buf);  /* incl. the NUL */

        if (rlen + 1 >= room) {
            *p = '\0';
            return;
        }
        if (rlen + tail + 1 > room)
            tail = room - rlen - 1;
        memmove(p + rlen, p + slen, tail);
        p[rlen + tail] = '\0';
        memcpy(p, REDACTED, rlen);
        p += rlen;
    }
}

/* True if the conninfo string may carry a password: the keyword, or a
 * URI whose user part has "user:password@". */
static int
conninfo_has_password(const char *ci)
{
    const char *p, *end;

    if (strcasestr(ci, "password") != NULL)
        return 1;
    if ((p = strstr(ci, "://")) == NULL)
        return 0;
    p += 3;
    end = p + strcspn(p, "/?");
    for (const char *at = p; at < end; at++)
        if (*at == '@')
            return memchr(p, ':', (size_t)(at - p)) != NULL;
    return 0;
}

/* True if libpq would read ci as a conninfo string or URI rather than as
 * a bare database name (PQconnectdbParams with expand_dbname). */
static int
conninfo_is_expanded(const char *ci)
{
    return strchr(ci, '=') != NULL ||
        strncmp(ci, "postgresql://", 13) == 0 ||
        strncmp(ci, "postgres://", 11) == 0;
}

int
wq_store_result_check(wq_store *s, const PGresult *r, const char *what,
    char *err, size_t errlen)
{
    const char *state = NULL, *msg = NULL;
    const char *sep = *what != '\0' ? ": " : "";     /* "": no prefix */
    char buf[WQ_ERRLEN];
    ExecStatusType st;

    s->sqlstate[0] = '\0';
    if (r != NULL) {
        st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
            return 0;
        state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        if (msg == NULL && st != PGRES_FATAL_ERROR &&
            st != PGRES_NONFATAL_ERROR) {
            return wq_seterr(err, errlen, WQ_ESTORE,
                "%s%sunexpected result %s", what, sep, PQresStatus(st));
        }
    }
    if (msg == NULL)
        msg = PQerrorMessage(s->conn);
    squash_copy(buf, sizeof buf, msg != NULL && *msg != '\0' ? msg
        : "no answer from the server");
    if (state != NULL && strlen(state) == 5) {
        memcpy(s->sqlstate, state, 6);
        /* undefined table or schema of ours: not migrated (far enough) */
        if ((strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0)
            && strstr(buf, "\"workq") != NULL)
            return wq_seterr(err, errlen, WQ_ESTORE, "%s%sthe database has "
                "no workq schema, or an older one (%s): " WQ_MIGRATE_HINT,
                what, sep, buf);
        /* one of our named statements missing on the connection, or
         * there already: another client's server connection, which is
         * what a transaction-mode pooler hands out.  This call fails (its
         * transaction is gone); the caller's retry goes unnamed. */
        if ((strcmp(state, "26000") == 0 || strcmp(state, "42P05") == 0)
            && strstr(buf, "\"wq_") != NULL) {
            s->named_lost = 1;
            return wq_seterr(err, errlen, WQ_ESTORE, "%s%s%s (SQLSTATE %s): "
                "is a pooler in transaction mode (PgBouncer) between workq "
                "and PostgreSQL? This connection sends its statements "
                "unnamed from now on; set postgres.pooler = \"transaction\" "
                "and postgres.listen_conninfo, or cancels and wake-ups may "
                "be lost (docs/production.md, \"Managed PostgreSQL\")",
                what, sep, buf, state);
        }
        /* 22: data exception, 23: integrity constraint violation */
        return wq_seterr(err, errlen,
            strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0
            ? WQ_EINVAL : WQ_ESTORE, "%s%s%s (SQLSTATE %s)", what, sep, buf,
            state);
    }
    return wq_seterr(err, errlen, WQ_ESTORE, "%s%s%s", what, sep, buf);
}

const char *
wq_store_last_sqlstate(const wq_store *s)
{
    return s->sqlstate;
}

/* --- connection ------------------------------------------------------ */

/*
 * Connects to `conninfo` with workq's keywords (store.h, wq_store_open);
 * `what` starts the error text ("connect to PostgreSQL").  0 with *out
 * set, WQ_ESTORE or WQ_ENOMEM with no part of a password in err.
 */
static int
conn_open(const char *conninfo, const char *password, const char *what,
    PGconn **out, char *err, size_t errlen)
{
    const char *kw[6], *val[6];
    PQconninfoOption *opts = NULL, *o;
    const char *ci_password = NULL;
    char *perr = NULL, buf[WQ_ERRLEN];
    PGconn *conn = NULL;
    int n = 0, rc;

    *out = NULL;
    if (conninfo == NULL)
        conninfo = "";

    /* Parse first, to report a malformed string without leaking a
     * password and to know the password to redact from later errors. */
    if (conninfo_is_expanded(conninfo)) {
        if ((opts = PQconninfoParse(conninfo, &perr)) == NULL) {
            if (perr == NULL)
                return wq_seterr(err, errlen, WQ_ENOMEM,
                    "PostgreSQL conninfo: out of memory");
            squash_copy(buf, sizeof buf, perr);
            PQfreemem(perr);
            /* libpq quotes pieces of the string ('missing "=" after
             * "cret"'): they may be pieces of the password, and a
             * password may hold quotes itself, so no redaction of them
             * can be trusted.  Say nothing of the string then. */
            if (conninfo_has_password(conninfo))
                return wq_seterr(err, errlen, WQ_ESTORE,
                    "invalid PostgreSQL conninfo (libpq's details withheld: "
                    "the string holds a password; quote values that "
                    "contain spaces or quotes, or use password_file)");
            return wq_seterr(err, errlen, WQ_ESTORE,
                "invalid PostgreSQL conninfo: %s", buf);
        }
        for (o = opts; o->keyword != NULL; o++)
            if (strcmp(o->keyword, "password") == 0)
                ci_password = o->val;
    }

    /* Earlier keywords are overridden by the expanded conninfo, later
     * ones override it. */
    kw[n] = "connect_timeout";  val[n++] = "10";
    kw[n] = "application_name"; val[n++] = "workq";
    kw[n] = "dbname";           val[n++] = conninfo;
    kw[n] = "client_encoding";  val[n++] = "UTF8";
    if (password != NULL) {
        kw[n] = "password";     val[n++] = password;
    }
    kw[n] = NULL;               val[n] = NULL;

    if ((conn = PQconnectdbParams(kw, val, 1)) == NULL) {
        rc = wq_seterr(err, errlen, WQ_ENOMEM, "%s: out of memory", what);
        goto fail;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        squash_copy(buf, sizeof buf, PQerrorMessage(conn));
        redact_secret(buf, sizeof buf, ci_password);
        redact_secret(buf, sizeof buf, password);
        rc = wq_seterr(err, errlen, WQ_ESTORE, "%s: %s", what, buf);
        goto fail;
    }
    PQsetNoticeProcessor(conn, wq_log_libpq_notice, NULL);
    PQconninfoFree(opts);
    wq_log_debug("store", "connected to %s:%s database %s as %s",
        PQhost(conn), PQport(conn), PQdb(conn), PQuser(conn));
    *out = conn;
    return 0;

fail:
    PQfinish(conn);
    PQconninfoFree(opts);
    return rc;
}

int
wq_store_open_opts(const struct wq_store_opts *o, wq_store **out, char *err,
    size_t errlen)
{
    const char *pw = o->password != NULL && o->password[0] != '\0'
        ? o->password : NULL;
    PGconn *conn;
    wq_store *s;
    int rc;

    *out = NULL;
    if ((rc = conn_open(o->conninfo, pw, "connect to PostgreSQL", &conn,
        err, errlen)) != 0)
        return rc;
    if ((s = calloc(1, sizeof *s)) == NULL)
        goto nomem;
    s->conn = conn;
    s->pooler = o->pooler;
    if (s->pooler == WQ_STORE_POOLER_TRANSACTION) {
        if ((o->listen_conninfo != NULL && o->listen_conninfo[0] != '\0'
            && (s->listen_conninfo = strdup(o->listen_conninfo)) == NULL)
            || (pw != NULL && (s->password = strdup(pw)) == NULL))
            goto nomem;
    }
    *out = s;
    return 0;

nomem:
    wq_store_close(s);
    if (s == NULL)
        PQfinish(conn);
    return wq_seterr(err, errlen, WQ_ENOMEM,
        "connect to PostgreSQL: out of memory");
}

int
wq_store_open(const char *conninfo, const char *password, wq_store **out,
    char *err, size_t errlen)
{
    struct wq_store_opts o = { conninfo, password, WQ_STORE_POOLER_NONE,
        NULL };

    return wq_store_open_opts(&o, out, err, errlen);
}

void
wq_store_close(wq_store *s)
{
    if (s == NULL)
        return;
    PQfinish(s->conn);
    PQfinish(s->lconn);
    if (s->password != NULL) {
        explicit_bzero(s->password, strlen(s->password));
        free(s->password);
    }
    free(s->listen_conninfo);
    for (size_t i = 0; i < sizeof s->accept_params
        / sizeof s->accept_params[0]; i++)
        wq_buf_free(&s->accept_params[i]);
    free(s->accept_order);
    free(s->accept_keys);
    free(s);
}

/* The connection notifications arrive on: LISTEN's own, once open. */
static PGconn *
listen_conn(const wq_store *s)
{
    return s->lconn != NULL ? s->lconn : s->conn;
}

int
wq_store_socket(const wq_store *s)
{
    return PQsocket(listen_conn(s));
}

int
wq_store_consume(wq_store *s, char *err, size_t errlen)
{
    PGconn *c = listen_conn(s);
    char buf[WQ_ERRLEN];

    if (PQconsumeInput(c) == 1)
        return 0;
    squash_copy(buf, sizeof buf, PQerrorMessage(c));
    return wq_seterr(err, errlen, WQ_ESTORE, "%s%s", s->lconn != NULL
        ? "listening connection: " : "", buf);
}

size_t
wq_store_notifies(wq_store *s, wq_store_notify_fn *fn, void *user)
{
    PGnotify *n;
    size_t count = 0;

    /* LISTEN's own connection is read by wq_store_consume only (when
     * its socket polls readable), so that a failure there is reported
     * to the caller, who reconnects */
    while ((n = PQnotifies(listen_conn(s))) != NULL) {
        fn(n->relname, n->extra, user);
        PQfreemem(n);
        count++;
    }
    return count;
}

/* store_int.h */
int
wq_store_ready(wq_store *s, char *err, size_t errlen)
{
    s->sqlstate[0] = '\0';
    if (s->accept_syncs > 0)
        return wq_seterr(err, errlen, WQ_ESTORE, "receipts are under way "
            "on this connection (wq_store_accept_recv first)");
    if (PQstatus(s->conn) == CONNECTION_OK)
        return 0;
    return wq_seterr(err, errlen, WQ_ESTORE, "the connection to PostgreSQL "
        "was lost (wq_store_ping reconnects)");
}

/* Reconnects with the same parameters; the prepared statements are gone
 * with the old connection. */
static int
store_reset(wq_store *s, char *err, size_t errlen)
{
    char buf[WQ_ERRLEN];

    s->prepared = 0;
    PQreset(s->conn);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        squash_copy(buf, sizeof buf, PQerrorMessage(s->conn));
        return wq_seterr(err, errlen, WQ_ESTORE,
            "reconnect to PostgreSQL: %s", buf);
    }
    wq_log_warn("store", "connection to PostgreSQL was lost; reconnected");
    return 0;
}

struct pg_conn *
wq_store_libpq(wq_store *s)
{
    return s->conn;
}

int
wq_store_ping(wq_store *s, char *err, size_t errlen)
{
    PGresult *r;
    int rc = WQ_ESTORE;

    for (int i = 0; i < 2; i++) {
        s->sqlstate[0] = '\0';
        if (PQstatus(s->conn) != CONNECTION_OK &&
            (rc = store_reset(s, err, errlen)) != 0)
            return rc;
        r = PQexec(s->conn, "SELECT 1");
        rc = wq_store_result_check(s, r, "ping", err, errlen);
        PQclear(r);
        /* Try again only if the connection broke under the query. */
        if (rc == 0 || PQstatus(s->conn) == CONNECTION_OK)
            break;
    }
    return rc;
}

int
wq_store_exec(wq_store *s, const char *sql, char *err, size_t errlen)
{
    PGresult *r;
    int rc;

    if ((rc = wq_store_ready(s, err, errlen)) != 0)
        return rc;
    r = PQexec(s->conn, sql);
    rc = wq_store_result_check(s, r, "exec", err, errlen);
    PQclear(r);
    return rc;
}

int
wq_store_listen(wq_store *s, const char *channel, char *err, size_t errlen)
{
    char sql[80], buf[WQ_ERRLEN];
    PGresult *r;
    int rc;

    if (channel[0] == '\0' || strlen(channel) > 63
        || strspn(channel, "abcdefghijklmnopqrstuvwxyz"
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(channel))
        return wq_seterr(err, errlen, WQ_EINVAL, "LISTEN: \"%s\" is not a "
            "channel name", channel);
    snprintf(sql, sizeof sql, "LISTEN %s", channel);
    if (s->pooler != WQ_STORE_POOLER_TRANSACTION)
        return wq_store_exec(s, sql, err, errlen);
    if (s->listen_conninfo == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "LISTEN %s: a "
            "transaction-mode pooler keeps no session; set "
            "postgres.listen_conninfo to a direct connection", channel);
    s->sqlstate[0] = '\0';
    if (s->lconn != NULL && PQstatus(s->lconn) != CONNECTION_OK) {
        PQreset(s->lconn);
        if (PQstatus(s->lconn) != CONNECTION_OK) {
            squash_copy(buf, sizeof buf, PQerrorMessage(s->lconn));
            redact_secret(buf, sizeof buf, s->password);
            return wq_seterr(err, errlen, WQ_ESTORE, "reconnect to "
                "PostgreSQL (postgres.listen_conninfo): %s", buf);
        }
        wq_log_warn("store", "listening connection to PostgreSQL was lost; "
            "reconnected");
    }
    if (s->lconn == NULL && (rc = conn_open(s->listen_conninfo, s->password,
        "connect to PostgreSQL (postgres.listen_conninfo)", &s->lconn, err,
        errlen)) != 0)
        return rc;
    r = PQexec(s->lconn, sql);
    rc = wq_store_result_check(s, r, "LISTEN (postgres.listen_conninfo)",
        err, errlen);
    PQclear(r);
    return rc;
}

/* --- rows ------------------------------------------------------------ */

int
wq_store_query(wq_store *s, const char *sql, int n, const char *const *values,
    int binary, PGresult **out, const char *what, char *err, size_t errlen)
{
    PGresult *r;
    int rc;

    *out = NULL;
    r = PQexecParams(s->conn, sql, n, NULL, values, NULL, NULL,
        binary ? 1 : 0);
    if ((rc = wq_store_result_check(s, r, what, err, errlen)) != 0) {
        PQclear(r);
        return rc;
    }
    *out = r;
    return 0;
}

void
wq_store_rollback(wq_store *s)
{
    if (PQstatus(s->conn) == CONNECTION_OK
        && PQtransactionStatus(s->conn) != PQTRANS_IDLE)
        PQclear(PQexec(s->conn, "ROLLBACK"));
}

int
wq_store_nrows(const PGresult *r)
{
    return PQntuples(r);
}

int64_t
wq_store_changed(const PGresult *r)
{
    return strtoll(PQcmdTuples((PGresult *)r), NULL, 10);
}

int
wq_store_isnull(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col);
}

const char *
wq_store_value(const PGresult *r, int row, int col)
{
    return PQgetvalue(r, row, col);
}

size_t
wq_store_length(const PGresult *r, int row, int col)
{
    return (size_t)PQgetlength(r, row, col);
}

void
wq_store_rows_free(PGresult *r)
{
    PQclear(r);
}

unsigned char *
wq_store_bytea_decode(const char *text, size_t *n)
{
    unsigned char *v, *copy;

    if ((v = PQunescapeBytea((const unsigned char *)text, n)) == NULL)
        return NULL;
    /* PQunescapeBytea's memory is libpq's (PQfreemem): hand out a copy */
    if ((copy = malloc(*n + 1)) != NULL) {
        memcpy(copy, v, *n);
        copy[*n] = '\0';
    }
    PQfreemem(v);
    return copy;
}
