/*
 * store_int.h - what the store's own files share (store.c, store_*.c,
 * migrate.c): the body of struct wq_store and the check every operation
 * starts with.  Nothing outside the store includes it but white-box
 * tests; callers see only store.h, and libpq stays inside these files.
 */
#ifndef WQ_STORE_INT_H
#define WQ_STORE_INT_H

#include <libpq-fe.h>

#include "buf.h"
#include "store.h"

struct wq_store {
    PGconn *conn;
    int pooler;             /* enum wq_store_pooler: TRANSACTION sends
                               every statement unnamed */
    int named_lost;         /* 1: one of our named statements was
                               missing on the server connection, or
                               another client's (a transaction-mode
                               pooler the configuration does not name):
                               unnamed from then on, LISTEN as before */
    PGconn *lconn;          /* LISTEN's own connection (TRANSACTION
                               only; NULL until wq_store_listen) */
    char *listen_conninfo;  /* NULL: none */
    char *password;         /* NULL: none; for lconn's connects */
    unsigned prepared;      /* bit (1u << STMT_*) set: prepared on
                               conn (store_tasks.c); WQ_PREP_* for
                               store_claims.c's statements */
    char sqlstate[6];       /* of the last failure, "" if none */
    /* Receipts sent and not read yet (wq_store_accept_send/_recv): the
     * pipeline's sync points still to come, in all and per send (oldest
     * first, WQ_ACCEPT_DEPTH at most), and the oldest send's first
     * failure. */
    int accept_syncs;
    int accept_group[WQ_ACCEPT_DEPTH];
    int accept_ngroups;
    int accept_rc;
    char accept_err[WQ_ERRLEN];
    /* The receipts' parameters, kept from one statement to the next: a
     * batch's ids are 160 kB, which malloc would map and unmap (and the
     * kernel zero) every time (store_tasks.c, accept_fresh). */
    struct wq_buf accept_params[8];
    const struct wq_accept **accept_order;
    size_t accept_order_cap;
    struct wq_idkey *accept_keys;   /* 2 * accept_order_cap: ids_sort */
};

/* True when statements go unnamed (a transaction-mode pooler, named or
 * found out): the store's files then send PQsendQueryParams/PQexecParams
 * where they would prepare. */
static inline int
wq_store_unnamed(const struct wq_store *s)
{
    return s->pooler == WQ_STORE_POOLER_TRANSACTION || s->named_lost;
}

/* Bits of wq_store.prepared for store_claims.c (store_tasks.c's STMT_*
 * stay below them); cleared with the others on a reconnect. */
#define WQ_PREP_RECORD   (1u << 16)
#define WQ_PREP_CLAIM    (1u << 17)
#define WQ_PREP_CLASSIFY (1u << 18)
#define WQ_PREP_GUARD    (1u << 19)
#define WQ_PREP_INSERT   (1u << 20)

/*
 * wq_store_ready is called at the start of every operation: it clears the
 * SQLSTATE and refuses a connection that broke during an earlier call.
 * It does not reconnect: a transaction open on it is gone, and the
 * caller's next statement (say COMMIT) must fail rather than run on a
 * fresh connection.  Only wq_store_ping reconnects.  0 or WQ_ESTORE.
 */
int wq_store_ready(wq_store *s, char *err, size_t errlen);

/*
 * wq_store_result_check is for the store's files that run libpq
 * themselves: it returns 0 when `r` (from PQexec* on this store's
 * connection, not consumed) holds PGRES_COMMAND_OK or PGRES_TUPLES_OK,
 * and otherwise an error as wq_store_exec reports it, with err "what:
 * server message (SQLSTATE x)" (no "what: " when what is "").  `r`
 * NULL means libpq failed (out of memory, connection lost).  The caller
 * still PQclear()s r.
 */
int wq_store_result_check(wq_store *s, const struct pg_result *r,
    const char *what, char *err, size_t errlen);

/*
 * wq_store_query (for store_sched.c and store_admin.c) runs `sql` with
 * text parameters values[0..n) (NULL is SQL NULL), results in binary
 * format when `binary` (uuid as 16 bytes, bytea as its bytes, int4/int8
 * big-endian) or else text.  Returns 0 with *out set (release it with
 * wq_store_rows_free), or an error as wq_store_exec reports it, prefixed
 * with `what`, and *out NULL.
 */
int wq_store_query(wq_store *s, const char *sql, int n,
    const char *const *values, int binary, struct pg_result **out,
    const char *what, char *err, size_t errlen);

/* The connection, for white-box tests (tests/) that check or drive it
 * directly; the store's own files use s->conn. */
static inline PGconn *
wq_store_conn(wq_store *s)
{
    return s->conn;
}

#endif
