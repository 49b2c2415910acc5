/*
 * test_daemon.c - signal counters, the self-pipe wakeup, and sd_notify
 * messages received on a NOTIFY_SOCKET of the test's own.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "wq_test.h"
#include "daemon.h"

static int
notify_socket(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char path[200];
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

    assert_true(fd >= 0);
    assert_non_null(getcwd(path, sizeof path - 20));
    strcat(path, "/notify.sock");
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    setenv("NOTIFY_SOCKET", path, 1);
    return fd;
}

static void
recv_msg(int fd, char *buf, size_t len)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    ssize_t n;

    assert_int_equal(poll(&p, 1, 2000), 1);
    n = recv(fd, buf, len - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
}

static void
test_daemon_notify_messages_in_order(void **state)
{
    char buf[512];
    int fd = notify_socket();

    (void)state;
    wq_daemon_notify_ready("serving");
    recv_msg(fd, buf, sizeof buf);
    assert_string_equal(buf, "READY=1\nSTATUS=serving");
    wq_daemon_notify_status("in-flight %d", 3);
    recv_msg(fd, buf, sizeof buf);
    assert_string_equal(buf, "STATUS=in-flight 3");
    wq_daemon_notify_watchdog();
    recv_msg(fd, buf, sizeof buf);
    assert_string_equal(buf, "WATCHDOG=1");
    wq_daemon_notify_stopping();
    recv_msg(fd, buf, sizeof buf);
    assert_string_equal(buf, "STOPPING=1");
    close(fd);
}

static void
test_daemon_sigterm_counts_and_wakes(void **state)
{
    char err[WQ_ERRLEN];
    struct pollfd p;

    (void)state;
    assert_int_equal(wq_daemon_signals_init(err, sizeof err), 0);
    assert_int_equal(wq_daemon_stop_requested(), 0);
    p.fd = wq_daemon_wakeup_fd();
    p.events = POLLIN;
    assert_int_equal(poll(&p, 1, 0), 0);
    raise(SIGTERM);
    assert_int_equal(wq_daemon_stop_requested(), 1);
    assert_int_equal(poll(&p, 1, 0), 1);
    wq_daemon_drain_wakeup();
    assert_int_equal(poll(&p, 1, 0), 0);
    raise(SIGINT);
    assert_int_equal(wq_daemon_stop_requested(), 2);
}

static void
test_daemon_sighup_is_seen_once(void **state)
{
    char err[WQ_ERRLEN];

    (void)state;
    assert_int_equal(wq_daemon_signals_init(err, sizeof err), 0);
    assert_false(wq_daemon_reload_requested());
    raise(SIGHUP);
    assert_true(wq_daemon_reload_requested());
    assert_false(wq_daemon_reload_requested());
    assert_int_equal(wq_daemon_stop_requested(), 0);
}

static void
test_daemon_sigpipe_ignored(void **state)
{
    char err[WQ_ERRLEN];
    int fds[2];

    (void)state;
    assert_int_equal(wq_daemon_signals_init(err, sizeof err), 0);
    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    /* without the SIG_IGN this write would kill the test process */
    assert_int_equal(write(fds[1], "x", 1), -1);
    close(fds[1]);
}

static void
test_daemon_watchdog_interval_from_env(void **state)
{
    (void)state;
    unsetenv("WATCHDOG_USEC");
    assert_int_equal(wq_daemon_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "4000000", 1);
    setenv("WATCHDOG_PID", "", 1);
    unsetenv("WATCHDOG_PID");
    assert_int_equal(wq_daemon_watchdog_usec(), 4000000);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_daemon_notify_messages_in_order),
    cmocka_unit_test(test_daemon_sigterm_counts_and_wakes),
    cmocka_unit_test(test_daemon_sighup_is_seen_once),
    cmocka_unit_test(test_daemon_sigpipe_ignored),
    cmocka_unit_test(test_daemon_watchdog_interval_from_env),
};

WQ_TEST_MAIN("daemon", tests)
