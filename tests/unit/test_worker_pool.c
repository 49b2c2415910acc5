/*
 * test_worker_pool.c - the handler threads (worker/pool.h): every item
 * runs once; items that block each get a thread of their own, whether
 * the threads are idle ones woken in a chain or new ones; stop runs
 * what is queued and refuses more.
 *
 * How many threads a burst of short items wakes is a matter of speed,
 * measured by the benchmarks (tests/bench), not asserted here.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "wq_test.h"
#include "pool.h"
#include "wq.h"

#define MAX_ITEMS 256

/* What the items of a test share: a gate that blocking items wait on. */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int open;
    int started;            /* blocking items inside fn */
    atomic_int runs[MAX_ITEMS];
    atomic_int total;
};

struct item {
    struct gate *g;
    int index;
    int block;              /* wait for the gate */
};

static void
run_item(void *arg, void *user)
{
    struct item *it = arg;
    struct gate *g = it->g;

    (void)user;
    atomic_fetch_add(&g->runs[it->index], 1);
    if (it->block) {
        pthread_mutex_lock(&g->lock);
        g->started++;
        pthread_cond_broadcast(&g->cond);
        while (!g->open)
            pthread_cond_wait(&g->cond, &g->lock);
        pthread_mutex_unlock(&g->lock);
    }
    atomic_fetch_add(&g->total, 1);
}

static void
gate_init(struct gate *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
}

static void
gate_destroy(struct gate *g)
{
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
}

/* Waits (at most 20 s, generous for a loaded machine and the sanitizer
 * build) until `n` blocking items are inside fn; returns how many are. */
static int
wait_started(struct gate *g, int n)
{
    struct timespec deadline;
    int got;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 20;
    pthread_mutex_lock(&g->lock);
    while (g->started < n
        && pthread_cond_timedwait(&g->cond, &g->lock, &deadline) == 0)
        ;
    got = g->started;
    pthread_mutex_unlock(&g->lock);
    return got;
}

static void
gate_open(struct gate *g, int open)
{
    pthread_mutex_lock(&g->lock);
    g->open = open;
    g->started = 0;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* Waits until the pool has nothing queued or running. */
static void
wait_drained(wq_pool *p)
{
    struct timespec pause = { 0, 1000000 };

    for (int i = 0; i < 20000 && wq_pool_pending(p) > 0; i++)
        nanosleep(&pause, NULL);
    assert_int_equal(wq_pool_pending(p), 0);
}

static void
submit_range(wq_pool *p, struct item *items, struct gate *g, int from,
    int to, int block)
{
    for (int i = from; i < to; i++) {
        items[i].g = g;
        items[i].index = i;
        items[i].block = block;
        assert_int_equal(wq_pool_submit(p, &items[i]), 0);
    }
}

/* Submits blocking items [from, to) and checks that `expect` blocking
 * items in all are inside fn (those of earlier calls since release). */
static void
start_blocking(wq_pool *p, struct item *items, struct gate *g, int from,
    int to, int expect, const char *what)
{
    int got;

    submit_range(p, items, g, from, to, 1);
    if ((got = wait_started(g, expect)) != expect)
        fail_msg("%s: %d of %d blocking items started", what, got, expect);
}

/* Lets every blocking item finish, waits until the pool is empty, and
 * closes the gate again for the next ones. */
static void
release(wq_pool *p, struct gate *g)
{
    gate_open(g, 1);
    wait_drained(p);
    gate_open(g, 0);
}

/* A burst of short items: each runs exactly once. */
static void
test_worker_pool_each_once(void **state)
{
    static struct item items[MAX_ITEMS];
    static struct gate g;
    wq_pool *p = wq_pool_new(16, 0, run_item, NULL);

    (void)state;
    gate_init(&g);
    for (int round = 0; round < 20; round++) {
        submit_range(p, items, &g, 0, MAX_ITEMS, 0);
        wait_drained(p);
    }
    assert_int_equal(wq_pool_stop(p, -1), 0);
    wq_pool_free(p);
    for (int i = 0; i < MAX_ITEMS; i++)
        if (atomic_load(&g.runs[i]) != 20)
            fail_msg("item %d ran %d times in 20 rounds", i,
                atomic_load(&g.runs[i]));
    assert_int_equal(atomic_load(&g.total), 20 * MAX_ITEMS);
    gate_destroy(&g);
}

/*
 * Items that block each get a thread at once: first on new threads,
 * then, once those are idle, on the idle ones woken one after the other
 * (the chain must reach every one of them), then on idle and new ones
 * together.
 */
static void
test_worker_pool_blocking_items_all_start(void **state)
{
    static struct item items[MAX_ITEMS];
    static struct gate g;
    wq_pool *p = wq_pool_new(96, 0, run_item, NULL);

    (void)state;
    gate_init(&g);

    /* 32 new threads */
    start_blocking(p, items, &g, 0, 32, 32, "new threads");
    release(p, &g);
    /* the same 32, idle now: every one woken */
    start_blocking(p, items, &g, 32, 64, 32, "idle threads");
    release(p, &g);
    /* 32 idle and 48 more to make */
    start_blocking(p, items, &g, 64, 144, 80, "idle and new threads");
    /* up to the cap (96): the rest waits in line, then runs */
    start_blocking(p, items, &g, 144, 168, 96, "up to the cap");
    assert_int_equal(wq_pool_pending(p), 96 + 8);
    release(p, &g);

    assert_int_equal(wq_pool_stop(p, -1), 0);
    wq_pool_free(p);
    for (int i = 0; i < 168; i++)
        assert_int_equal(atomic_load(&g.runs[i]), 1);
    gate_destroy(&g);
}

/* Stop runs what is queued, then refuses. */
static void
test_worker_pool_stop(void **state)
{
    static struct item items[MAX_ITEMS];
    static struct gate g;
    struct item late = { 0 };
    wq_pool *p = wq_pool_new(4, 0, run_item, NULL);

    (void)state;
    gate_init(&g);
    gate_open(&g, 1);
    submit_range(p, items, &g, 0, 100, 0);
    assert_int_equal(wq_pool_stop(p, -1), 0);
    assert_int_equal(atomic_load(&g.total), 100);
    late.g = &g;
    assert_int_equal(wq_pool_submit(p, &late), WQ_ECLOSED);
    wq_pool_free(p);
    gate_destroy(&g);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_worker_pool_each_once),
    cmocka_unit_test(test_worker_pool_blocking_items_all_start),
    cmocka_unit_test(test_worker_pool_stop),
};

WQ_TEST_MAIN("worker_pool", tests)
