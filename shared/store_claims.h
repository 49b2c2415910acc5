/*
 * store_claims.h - all of the worker's SQL (in the store, beside
 * store_tasks.c; the worker is its one user): claiming deliveries, recording
 * outcomes, renewing leases and the worker's heartbeat row, each for a
 * whole batch in one statement, following docs/task-states.md.
 *
 * One wq_claim_round() is one round trip in libpq pipeline mode: the
 * record statement and the claim statement, both multi-row (unnest of
 * binary arrays), run in the pipeline's one implicit transaction and
 * commit together at its Sync, so a round costs one commit (one WAL
 * flush) however many tasks it carries.  Deliveries the claim did not
 * take are classified with one more SELECT, only when there are some.
 *
 * The caller owns the store (a connection not shared with other
 * threads); nothing here keeps state between calls except reusable
 * buffers in a struct wq_claim_bufs.
 */
#ifndef WQ_STORE_CLAIMS_H
#define WQ_STORE_CLAIMS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "envelope.h"
#include "store.h"

/* What a claim decided for one delivery. */
enum wq_claim_status {
    WQ_CLAIM_PENDING,   /* undecided (the row changed under us, or a
                           duplicate key in the batch): claim it again */
    WQ_CLAIM_RUN,       /* claimed: run attempt `attempt` of task_id */
    WQ_CLAIM_EXHAUSTED, /* claimable, attempts spent: made dead at claim */
    WQ_CLAIM_FINAL,     /* succeeded, dead or cancelled: a duplicate */
    WQ_CLAIM_BUSY,      /* running under a live lease of lease_owner */
    WQ_CLAIM_NOT_DUE,   /* retry_wait or scheduled, run_at later */
};

/* One delivery to claim. */
struct wq_claim {
    const struct wq_envelope *env;  /* in: borrowed for the call */
    int priority;                   /* in: the band's (priority.h), for a
                                       new row; an existing row keeps its
                                       own */
    const char *hook_url;           /* in: the queue's completion hook,
                                       stored as header "workq-hook" when
                                       the task names none; NULL: none */
    int unclaimed_ok;               /* in: may run without a row (a first
                                       delivery; see "Unclaimed runs") */
    enum wq_claim_status status;    /* out */
    int unclaimed;                  /* out: RUN without a row: attempt 1,
                                       nothing written (task_id = env->id) */
    int inserted;                   /* out: RUN: this claim wrote the row
                                       anew (there was none) */
    uint8_t task_id[16];            /* out: the row's id (RUN, BUSY, ...);
                                       not always env->id: a second
                                       submit of a key has its own id */
    uint32_t attempt;               /* out: RUN: the attempt started */
    uint32_t max_attempts;          /* out */
    char state[16];                 /* out: the row's state, for FINAL */
    int own_lease;                  /* out: BUSY under our own worker id */
};

/* One outcome to record. */
struct wq_record {
    uint8_t task_id[16];
    uint32_t attempt;               /* the attempt claimed */
    const char *outcome;            /* workq.attempts.outcome */
    const char *state;              /* succeeded, retry_wait, dead or
                                       cancelled */
    const void *result;             /* bytes; success only */
    size_t result_len;
    const char *error;              /* failure text or a note; NULL none */
    int64_t delay_ms;               /* retry_wait: run_at = now() + it */
    int64_t duration_ms;            /* the handler's run time */
    int recorded;                   /* out: 1 if our lease still held and
                                       the row changed; 0: lost, nothing
                                       written (docs/task-states.md) */
    /* An unclaimed run (wq_claim.unclaimed) inserts its row, whole: */
    const struct wq_envelope *env;  /* NULL: a claimed attempt */
    const char *hook_url;           /* as wq_claim's */
    int priority;
    int64_t started_ms;             /* wall clock, when the handler began */
};

/* Buffers reused across rounds, so that a busy worker stops allocating. */
struct wq_claim_bufs {
    struct wq_buf b[40];
};

/* Releases the buffers; they are empty and reusable afterwards. */
void wq_claim_bufs_free(struct wq_claim_bufs *bufs);

/*
 * wq_claim_round records `nrec` outcomes and claims `nclaim` deliveries
 * for worker `worker` with a lease of lease_ms, in one transaction.
 * Either may be 0.
 *
 * Claim (docs/task-states.md "Claimable"): a delivery whose (queue, key)
 * has no row inserts one, running, attempt 1; a row queued, retry_wait or
 * scheduled and due, or running with an expired lease is taken (attempt +
 * 1, lease set, run_at cleared), and an attempt left without an outcome
 * by a dead holder is recorded as lease_expired; a claimable row whose
 * attempts are spent becomes dead ("attempts exhausted") without a new
 * attempt.  The attempt started lives in the task row; it gets a
 * workq.attempts row only when it ends other than succeeded (migration
 * 0004; readers use the view workq.attempt_history).  Deliveries with the
 * same (queue, key) as an earlier one of the batch stay PENDING.
 *
 * Record: each outcome updates its task (and inserts its attempts row,
 * unless it succeeded) only while
 * state = running, lease_owner = worker and attempt = the claimed attempt;
 * rec->recorded tells whether it did.
 *
 * Unclaimed runs (docs/task-states.md "Unclaimed runs"): a claim with
 * unclaimed_ok whose (queue, key) has no row comes back RUN with
 * `unclaimed` set, and nothing is written for it.  Its record (rec->env
 * set) inserts the task row in its final state, attempt 1, with its
 * history, unless a row of that (queue, key) or id appeared meanwhile (a
 * cancel, another delivery's claim): then nothing is written and
 * `recorded` is 0.  A claim without unclaimed_ok of a running unclaimed
 * task (its late claim) is an ordinary claim: no row, it inserts one.
 *
 * Returns 0 with every status and flag set, after the commit.  On failure
 * nothing was committed (or, if the connection died during the commit,
 * possibly everything: both statements are safe to repeat, see
 * own_lease) and the outputs are meaningless: WQ_EINVAL when the server
 * rejected data (SQLSTATE class 22 or 23; one of the items is bad, try
 * them one by one), WQ_ESTORE otherwise (lost connection, deadlock,
 * server error: try again after wq_store_ping).  Blocks for the round
 * trip(s).
 */
int wq_claim_round(wq_store *s, struct wq_claim_bufs *bufs,
    const char *worker, int64_t lease_ms, struct wq_record *recs,
    size_t nrec, struct wq_claim *claims, size_t nclaim, char *err,
    size_t errlen);

/* Who a worker is, for its workq.workers row. */
struct wq_worker_info {
    const char *id;
    const char *hostname;
    const char *version;
    int pid;
    const char *const *queues;
    size_t nqueues;
};

/*
 * wq_claim_renew extends to now() + lease_ms the leases of the `n` tasks
 * whose ids are at ids (16 bytes each) that are still running under
 * w->id, and upserts the worker's heartbeat row (in_flight, queues,
 * heartbeat_at = now(), stopped_at cleared), in one statement.  *renewed
 * (may be NULL) gets how many leases it extended.  Returns 0 or
 * WQ_ESTORE.
 */
int wq_claim_renew(wq_store *s, struct wq_claim_bufs *bufs,
    const struct wq_worker_info *w, const uint8_t *ids, size_t n,
    int64_t lease_ms, int in_flight, size_t *renewed, char *err,
    size_t errlen);

/* wq_claim_stopped marks the worker's row stopped (a clean shutdown).
 * Returns 0 or WQ_ESTORE. */
int wq_claim_stopped(wq_store *s, const char *worker, char *err,
    size_t errlen);

/*
 * wq_claim_headers_json appends the envelope's headers to b as a JSON
 * object ({} without headers).  The envelope's strings are valid UTF-8
 * without NUL, so only quotes, backslashes and control characters need
 * escaping.  Returns 0 or WQ_ENOMEM.
 */
int wq_claim_headers_json(const struct wq_envelope *env, struct wq_buf *b);

/*
 * wq_claim_headers_json_hook is wq_claim_headers_json with the header
 * "workq-hook": hook_url added when hook_url is not NULL and the envelope
 * has no header of that name (a queue's completion hook, migration 0009).
 */
int wq_claim_headers_json_hook(const struct wq_envelope *env,
    const char *hook_url, struct wq_buf *b);

/*
 * wq_claim_progress writes the progress of running tasks (migration
 * 0009): parallel PostgreSQL array literals in text form of task ids,
 * attempts, percentages (0..100) and messages; a row changes only while
 * that attempt runs under `worker`'s lease.  Returns 0 or WQ_ESTORE.
 */
int wq_claim_progress(wq_store *s, const char *ids, const char *attempts,
    const char *percents, const char *messages, const char *worker,
    char *err, size_t errlen);

#endif
