/*
 * wq_test_producer.h - the producer daemon of the tests: starts
 * workq-producer on a free loopback port with the environment a test
 * gives, waits until it is healthy, and stops it with SIGTERM.  Which
 * servers, tokens and TLS files it uses is the test's business (the
 * environment it passes); this file only runs the process.
 */
#ifndef WQ_TEST_PRODUCER_H
#define WQ_TEST_PRODUCER_H

#include <sys/types.h>

/*
 * wq_test_producer_start runs workq-producer (wq_test_bin) with the
 * entries of `env` (NULL-terminated, may be NULL) and
 * WORKQ_PRODUCER_LISTEN=HOST:PORT added to its environment, `args`
 * (NULL-terminated, may be NULL) after the binary's name, stdout and
 * stderr appended to ./producer.log; the process dies with the test
 * (PR_SET_PDEATHSIG).  PORT is one nobody answers on; when the producer
 * exits 69 (its port taken) another is tried.  Waits until healthy(port,
 * arg) returns 1 (healthy NULL: GET /healthz over HTTP answers 200),
 * then stores the pid and port.  Fails the test when the producer exits
 * at start, never becomes healthy or no port is free.
 */
void wq_test_producer_start(const char *host, const char *const *env,
    const char *const *args, int (*healthy)(int port, void *arg), void *arg,
    pid_t *pid, int *port);

/*
 * wq_test_producer_stop sends SIGTERM to *pid and waits up to 30 s;
 * returns the exit status (128+N for a signal), -1 when *pid is not
 * running, and sets *pid to 0.  A status other than 0 copies
 * producer.log to stderr first.  Fails the test (after SIGKILL) when the
 * producer does not stop.
 */
int wq_test_producer_stop(pid_t *pid);

#endif
