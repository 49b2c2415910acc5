/*
 * wq_test.h - the test harness: cmocka tests, each run in a process of
 * its own (STYLE.md habit 14).
 *
 * Every test function runs in a forked child, inside a fresh temporary
 * directory (its path in $WQ_TEST_TMPDIR, also the working directory),
 * with a time limit.  The child leaves through exit(), so LeakSanitizer
 * checks each test alone; a crash, a leak or a timeout fails that test
 * only.  The parent prints one closing line, "SUITE: N passed, M failed".
 *
 *   static const struct CMUnitTest tests[] = {
 *       cmocka_unit_test(test_envelope_roundtrip), ...
 *   };
 *   WQ_TEST_MAIN("envelope", tests)
 *
 * A test binary takes optional substrings as arguments and then runs only
 * the tests whose names contain one of them.
 */
#ifndef WQ_TEST_H
#define WQ_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

int wq_test_run(const char *suite, const struct CMUnitTest *tests, size_t n,
    int argc, char **argv);

/*
 * wq_test_env returns getenv(name), or `fallback` when unset.  Integration
 * tests read server addresses this way (tests/services/ctl env).
 */
const char *wq_test_env(const char *name, const char *fallback);

/* The addresses of the private servers of tests/services. */
#define WQ_TEST_PG_CONNINFO() wq_test_env("WORKQ_TEST_PG_CONNINFO", \
    "host=127.0.0.1 port=55432 user=postgres dbname=workq")
#define WQ_TEST_AMQP_URL() wq_test_env("WORKQ_TEST_AMQP_URL", \
    "amqp://guest:guest@127.0.0.1:55672")
#define WQ_TEST_KAFKA_BROKERS() wq_test_env("WORKQ_TEST_KAFKA_BROKERS", \
    "127.0.0.1:59092")

/* A name unique to this test process, for queues and keys: "PREFIX-<pid>-<n>". */
const char *wq_test_unique(const char *prefix);

/*
 * wq_test_bin returns the absolute path of a built binary ("workq",
 * "workq-worker", ...): WQ_SOURCE_DIR/$WORKQ_BUILD/NAME, where the
 * Makefile sets WORKQ_BUILD to the build directory (default "build").
 * Static buffer, valid until the next call.
 */
const char *wq_test_bin(const char *name);

/*
 * wq_test_cmd runs argv (argv[0] a path) with `env` entries ("K=V", NULL
 * ended, may be NULL) added to the environment and `input` (may be NULL)
 * on stdin; stdout and stderr together go to out (NUL-terminated, cut at
 * outlen).  Returns the exit status, 128+N for a signal, -1 if it could
 * not run.  Waits at most 120 s, then kills it.
 */
int wq_test_cmd(const char *const *argv, const char *const *env,
    const char *input, char *out, size_t outlen);

#define WQ_TEST_MAIN(suite, tests)                                        \
    int main(int argc, char **argv)                                       \
    {                                                                     \
        return wq_test_run((suite), (tests),                              \
            sizeof(tests) / sizeof((tests)[0]), argc, argv);              \
    }

#endif
