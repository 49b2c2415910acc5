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
 *
 * It also holds what every kind of test shares: assert_contains, waits
 * on a condition with a time limit (tests never sleep to wait), the
 * private services stopped and started under a test (wq_test_service),
 * and child processes with their logs (wq_test_cmd, wq_test_spawn).
 * Servers, HTTP and the producer daemon have headers of their own
 * (wq_test_pg.h, wq_test_broker.h, wq_test_http.h, wq_test_producer.h).
 */
#ifndef WQ_TEST_H
#define WQ_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <cmocka.h>

/* Fails the test unless the string `hay` (may be NULL) contains `needle`,
 * printing both. */
#define assert_contains(hay, needle) do {                                 \
    const char *h_ = (hay), *n_ = (needle);                               \
    if (h_ == NULL || strstr(h_, n_) == NULL)                             \
        fail_msg("\"%s\"\n    does not contain \"%s\"", h_ ? h_ : "(null)", \
            n_);                                                          \
} while (0)

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

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t wq_test_now_ms(void);

/*
 * wq_test_waited(cond, timeout_ms) evaluates `cond` every 20 ms until it
 * holds (the expression is then 1) or timeout_ms have passed (then 0).
 * wq_test_wait_until fails the test with the printf-style message when
 * the time runs out first.  A test that must wait for something waits on
 * it this way, never with a bare sleep.
 */
#define wq_test_waited(cond, timeout_ms) __extension__ ({                \
    int64_t wq_dl_ = wq_test_now_ms() + (timeout_ms);                     \
    int wq_ok_;                                                           \
    while (!(wq_ok_ = !!(cond)) && wq_test_now_ms() < wq_dl_)             \
        wq_test_sleep_ms(20);                                             \
    wq_ok_;                                                               \
})
#define wq_test_wait_until(cond, timeout_ms, ...) do {                    \
    if (!wq_test_waited((cond), (timeout_ms)))                            \
        fail_msg(__VA_ARGS__);                                            \
} while (0)

void wq_test_sleep_ms(int ms);

/*
 * wq_test_service runs `tests/services/ctl VERB SERVICE` ("stop",
 * "start", "restart", "pause", "resume", ...; SERVICE "pg", "rabbitmq",
 * "kafka"), its output appended to ./ctl.log, and fails the test when
 * it fails.  A service this test process stopped or paused is started or
 * resumed again when the process exits, whether the test passed or not;
 * when that fails, the process exits with status 1, so this test fails,
 * not the suites that come after it.  Blocks while ctl runs.
 */
void wq_test_service(const char *verb, const char *service);

/*
 * wq_test_spawn starts argv (argv[0] a path) with stdout and stderr
 * written to the file `log` (truncated), and the entries of env, then of
 * env2 ("K=V", each NULL-terminated, either may be NULL) added to its
 * environment, later ones winning.  Returns its pid; the caller reaps it
 * (wq_test_reap).  Does not wait.
 */
pid_t wq_test_spawn(const char *const *argv, const char *const *env,
    const char *const *env2, const char *log);

/*
 * wq_test_reap waits up to timeout_ms for process *pid to exit and
 * returns its status (128+N for signal N), setting *pid to 0; -1 if it
 * still runs then.
 */
int wq_test_reap(pid_t *pid, int timeout_ms);

/* The whole text of the file at path (malloc'd; "" when it cannot be
 * read). */
char *wq_test_read_file(const char *path);

#define WQ_TEST_MAIN(suite, tests)                                        \
    int main(int argc, char **argv)                                       \
    {                                                                     \
        return wq_test_run((suite), (tests),                              \
            sizeof(tests) / sizeof((tests)[0]), argc, argv);              \
    }

#endif
