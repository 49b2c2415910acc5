/*
 * test_uuid.c - unit tests of shared/uuid.c: the bits of a v7 id, strict
 * ordering within a process (also across threads and fork), the text
 * form both ways, and the timestamp.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wq_test.h"

#include "clock.h"
#include "uuid.h"

/* RFC 9562 appendix A.6: a v7 id made at 2022-02-22T19:22:22Z. */
static const char rfc_text[] = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f";
static const uint8_t rfc_bytes[16] = {
    0x01, 0x7f, 0x22, 0xe2, 0x79, 0xb0, 0x7c, 0xc3,
    0x98, 0xc4, 0xdc, 0x0c, 0x0c, 0x07, 0x39, 0x8f,
};

#define N_MONO 100000

static void
test_uuid_version_variant(void **state)
{
    uint8_t id[16];

    (void)state;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(wq_uuid_v7(id), 0);
        assert_int_equal(id[6] >> 4, 7);
        assert_int_equal(id[8] >> 6, 2);
    }
}

static void
test_uuid_monotonic(void **state)
{
    uint8_t prev[16], cur[16];
    char prevtext[37], curtext[37];

    (void)state;
    assert_int_equal(wq_uuid_v7(prev), 0);
    wq_uuid_format(prev, prevtext);
    for (int i = 0; i < N_MONO; i++) {
        assert_int_equal(wq_uuid_v7(cur), 0);
        wq_uuid_format(cur, curtext);
        if (memcmp(prev, cur, 16) >= 0)
            fail_msg("id %d not ascending: %s then %s", i, prevtext,
                curtext);
        if (strcmp(prevtext, curtext) >= 0)
            fail_msg("text %d not ascending: %s then %s", i, prevtext,
                curtext);
        memcpy(prev, cur, 16);
        memcpy(prevtext, curtext, sizeof curtext);
    }
}

/* 100k ids in a tight loop spend the 12-bit counter of many milliseconds;
 * the borrowed time stays within the ids made, not hours ahead. */
static void
test_uuid_counter_overflow_borrows_little(void **state)
{
    uint8_t id[16];
    int64_t before, after, t;

    (void)state;
    before = wq_clock_wall_ms();
    for (int i = 0; i < N_MONO; i++)
        assert_int_equal(wq_uuid_v7(id), 0);
    after = wq_clock_wall_ms();
    t = wq_uuid_v7_time_ms(id);
    assert_true(t >= before);
    /* at worst 2049 ids per millisecond before borrowing one */
    assert_true(t <= after + N_MONO / 2049 + 1);
}

#define N_THREADS 4
#define N_PER_THREAD 25000

static uint8_t thread_ids[N_THREADS][N_PER_THREAD][16];

static void *
thread_main(void *arg)
{
    uint8_t (*ids)[16] = arg;

    for (int i = 0; i < N_PER_THREAD; i++)
        if (wq_uuid_v7(ids[i]) != 0)
            return arg;
    return NULL;
}

static int
cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void
test_uuid_threads_unique_and_ordered(void **state)
{
    pthread_t th[N_THREADS];
    uint8_t (*all)[16];
    void *ret;

    (void)state;
    for (int t = 0; t < N_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, thread_main,
            thread_ids[t]), 0);
    for (int t = 0; t < N_THREADS; t++) {
        assert_int_equal(pthread_join(th[t], &ret), 0);
        assert_null(ret);
        for (int i = 1; i < N_PER_THREAD; i++)
            assert_true(memcmp(thread_ids[t][i - 1], thread_ids[t][i],
                16) < 0);
    }
    all = (uint8_t (*)[16])thread_ids;
    qsort(all, N_THREADS * N_PER_THREAD, 16, cmp_id);
    for (int i = 1; i < N_THREADS * N_PER_THREAD; i++)
        assert_true(memcmp(all[i - 1], all[i], 16) < 0);
}

/* A forked child must not reuse the random bytes its parent buffered. */
static void
test_uuid_fork_does_not_share_randomness(void **state)
{
    uint8_t id[16], mine[16], childs[16];
    int fd[2], status;
    pid_t pid;

    (void)state;
    assert_int_equal(wq_uuid_v7(id), 0);        /* fills the block */
    assert_int_equal(pipe(fd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (wq_uuid_v7(childs) != 0 ||
            write(fd[1], childs, 16) != 16)
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    assert_int_equal(wq_uuid_v7(mine), 0);
    assert_int_equal(read(fd[0], childs, 16), 16);
    close(fd[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* rand_b: 62 random bits */
    assert_true(memcmp(mine + 8, childs + 8, 8) != 0);
}

/*
 * A sequence (wq_uuid_seq_stamp): rand_b goes up by one per id from a
 * start below 2^61, the version and variant stay, the ids keep the order
 * they were made in, and wq_uuid_rand_b reads back what was stamped.  A
 * forked child starts a sequence of its own instead of going on with
 * its parent's.
 */
static void
test_uuid_seq(void **state)
{
    struct wq_uuid_seq seq = { 0, 0, 0 };
    uint8_t prev[16], id[16], childs[16];
    uint64_t first = 0;
    int fd[2], status;
    pid_t pid;

    (void)state;
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(wq_uuid_v7(id), 0);
        wq_uuid_seq_stamp(&seq, id);
        assert_int_equal(id[6] >> 4, 7);
        assert_int_equal(id[8] >> 6, 2);
        if (i == 0) {
            first = wq_uuid_rand_b(id);
            assert_true(first < (UINT64_C(1) << 61));
        } else {
            assert_true(wq_uuid_rand_b(id) == first + (uint64_t)i);
            assert_true(memcmp(prev, id, 16) < 0);
        }
        memcpy(prev, id, 16);
    }
    assert_int_equal(pipe(fd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (wq_uuid_v7(childs) != 0)
            _exit(1);
        wq_uuid_seq_stamp(&seq, childs);
        if (write(fd[1], childs, 16) != 16)
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    assert_int_equal(read(fd[0], childs, 16), 16);
    close(fd[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* the parent's next would be first + 5000 */
    assert_true(wq_uuid_rand_b(childs) != first + 5000);
    assert_int_equal(wq_uuid_v7(id), 0);
    wq_uuid_seq_stamp(&seq, id);
    assert_true(wq_uuid_rand_b(id) == first + 5000);
}

static void
test_uuid_format_known(void **state)
{
    char text[37];

    (void)state;
    wq_uuid_format(rfc_bytes, text);
    assert_string_equal(text, rfc_text);
}

static void
test_uuid_format_parse_roundtrip(void **state)
{
    uint8_t id[16], back[16];
    char text[37];

    (void)state;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(wq_uuid_v7(id), 0);
        wq_uuid_format(id, text);
        assert_int_equal(strlen(text), 36);
        assert_int_equal(wq_uuid_parse(text, back), 0);
        assert_memory_equal(id, back, 16);
    }
    assert_int_equal(wq_uuid_parse(rfc_text, back), 0);
    assert_memory_equal(back, rfc_bytes, 16);
    /* upper case reads the same; output is always lower case */
    assert_int_equal(wq_uuid_parse("017F22E2-79B0-7CC3-98C4-DC0C0C07398F",
        back), 0);
    assert_memory_equal(back, rfc_bytes, 16);
}

static void
test_uuid_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "017f22e2",
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398",      /* 35 */
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398f0",    /* 37 */
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398f ",
        " 017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
        "017f22e279b07cc398c4dc0c0c07398f",         /* no hyphens */
        "017f22e2-79b07-cc3-98c4-dc0c0c07398f",     /* hyphen moved */
        "017f22e2_79b0_7cc3_98c4_dc0c0c07398f",
        "017f22g2-79b0-7cc3-98c4-dc0c0c07398f",     /* g */
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398-",
        "-17f22e2-79b0-7cc3-98c4-dc0c0c07398f",
        "{017f22e2-79b0-7cc3-98c4-dc0c0c07398f}",
        "urn:uuid:017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
        "017f22e2-79b0-7cc3-98c4-dc0c0c0739\xc3\xa9",
        "017f22e2-79b0-7cc3-98c4+dc0c0c07398f",
    };
    uint8_t out[16], keep[16];

    (void)state;
    memset(out, 0xaa, sizeof out);
    memcpy(keep, out, sizeof keep);
    for (size_t i = 0; i < WQ_ARRAY_LEN(bad); i++) {
        if (wq_uuid_parse(bad[i], out) != WQ_EINVAL)
            fail_msg("accepted bad uuid \"%s\"", bad[i]);
        assert_memory_equal(out, keep, 16);
    }
    assert_int_equal(wq_uuid_parse(NULL, out), WQ_EINVAL);
}

static void
test_uuid_time(void **state)
{
    uint8_t id[16], v4[16];
    int64_t before, after, t;

    (void)state;
    assert_int_equal(wq_uuid_v7_time_ms(rfc_bytes), 1645557742000LL);

    before = wq_clock_wall_ms();
    assert_int_equal(wq_uuid_v7(id), 0);
    after = wq_clock_wall_ms();
    t = wq_uuid_v7_time_ms(id);
    assert_true(t >= before && t <= after);

    /* not version 7, or not variant 10: no time */
    memcpy(v4, id, 16);
    v4[6] = (uint8_t)((v4[6] & 0x0f) | 0x40);
    assert_int_equal(wq_uuid_v7_time_ms(v4), WQ_EINVAL);
    memcpy(v4, id, 16);
    v4[8] = (uint8_t)(v4[8] & 0x3f);
    assert_int_equal(wq_uuid_v7_time_ms(v4), WQ_EINVAL);
}

/* The id of a (queue, key): RFC 9562's UUIDv5 of "QUEUE:KEY" in our
 * namespace (the value Python's uuid.uuid5 gives for the same), stable,
 * and different for another queue or key. */
static void
test_uuid_for_key(void **state)
{
    uint8_t a[16], b[16];
    char text[WQ_UUID_STRLEN];

    (void)state;
    assert_int_equal(wq_uuid_for_key("emails", "order-42", a), 0);
    wq_uuid_format(a, text);
    assert_string_equal(text, "6f488781-3f69-5a89-9d27-01242369ff25");
    assert_int_equal(a[6] >> 4, 5);
    assert_int_equal(a[8] >> 6, 2);
    assert_int_equal(wq_uuid_for_key("emails", "order-42", b), 0);
    assert_memory_equal(a, b, 16);
    assert_int_equal(wq_uuid_for_key("email", "s:order-42", b), 0);
    assert_memory_not_equal(a, b, 16);
    assert_int_equal(wq_uuid_for_key("emails", "order-43", b), 0);
    assert_memory_not_equal(a, b, 16);
    assert_int_equal(wq_uuid_for_key(NULL, "k", b), WQ_EINVAL);
    assert_int_equal(wq_uuid_v7_time_ms(a), WQ_EINVAL);
}

/* Threads that compute their first key's id at the same moment (SHA-1
 * is fetched once, on the first call of any of them) all get the known
 * value, every time. */
static void *
for_key_main(void *arg)
{
    uint8_t want[16], got[16];
    long bad = 0;

    (void)arg;
    if (wq_uuid_parse("6f488781-3f69-5a89-9d27-01242369ff25", want) != 0)
        return (void *)-1L;
    for (int i = 0; i < 2000; i++) {
        wq_uuid_for_key_n("emails", 6, "order-42", 8, got);
        bad += memcmp(got, want, 16) != 0;
    }
    return (void *)bad;
}

static void
test_uuid_for_key_threads(void **state)
{
    pthread_t th[8];
    void *ret;

    (void)state;
    for (int t = 0; t < 8; t++)
        assert_int_equal(pthread_create(&th[t], NULL, for_key_main, NULL),
            0);
    for (int t = 0; t < 8; t++) {
        assert_int_equal(pthread_join(th[t], &ret), 0);
        assert_int_equal((long)ret, 0);
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_uuid_version_variant),
    cmocka_unit_test(test_uuid_monotonic),
    cmocka_unit_test(test_uuid_counter_overflow_borrows_little),
    cmocka_unit_test(test_uuid_threads_unique_and_ordered),
    cmocka_unit_test(test_uuid_fork_does_not_share_randomness),
    cmocka_unit_test(test_uuid_seq),
    cmocka_unit_test(test_uuid_format_known),
    cmocka_unit_test(test_uuid_format_parse_roundtrip),
    cmocka_unit_test(test_uuid_parse_rejects),
    cmocka_unit_test(test_uuid_time),
    cmocka_unit_test(test_uuid_for_key_threads),
    cmocka_unit_test(test_uuid_for_key),
};

WQ_TEST_MAIN("uuid", tests)
