/*
 * daemon.c - signal counters with a self-pipe, and sd_notify (see
 * daemon.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "daemon.h"

static volatile sig_atomic_t stop_count;
static volatile sig_atomic_t reload_count;
static sig_atomic_t reload_seen;
static int wake_pipe[2] = { -1, -1 };

static void
on_signal(int sig)
{
    int saved = errno;
    char c = 1;

    if (sig == SIGHUP)
        reload_count++;
    else
        stop_count++;
    if (wake_pipe[1] >= 0 && write(wake_pipe[1], &c, 1) < 0)
        (void)0; /* pipe full: a wakeup is already pending */
    errno = saved;
}

int
wq_daemon_signals_init(char *err, size_t errlen)
{
    struct sigaction sa;

    if (wake_pipe[0] < 0 && pipe2(wake_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return wq_seterr(err, errlen, WQ_EIO, "pipe: %s", strerror(errno));
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0
        || sigaction(SIGHUP, &sa, NULL) < 0)
        return wq_seterr(err, errlen, WQ_EIO, "sigaction: %s",
            strerror(errno));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    return 0;
}

void
wq_daemon_block_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int
wq_daemon_wakeup_fd(void)
{
    return wake_pipe[0];
}

void
wq_daemon_drain_wakeup(void)
{
    char buf[64];

    while (wake_pipe[0] >= 0 && read(wake_pipe[0], buf, sizeof buf) > 0)
        ;
}

int
wq_daemon_stop_requested(void)
{
    return (int)stop_count;
}

void
wq_daemon_request_stop(void)
{
    on_signal(SIGTERM);
}

int
wq_daemon_reload_requested(void)
{
    sig_atomic_t now = reload_count;

    if (now == reload_seen)
        return 0;
    reload_seen = now;
    return 1;
}

void
wq_daemon_notify_ready(const char *status)
{
    if (status != NULL)
        sd_notifyf(0, "READY=1\nSTATUS=%s", status);
    else
        sd_notify(0, "READY=1");
}

void
wq_daemon_notify_status(const char *fmt, ...)
{
    char buf[256];
    va_list ap;

    if (getenv("NOTIFY_SOCKET") == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sd_notifyf(0, "STATUS=%s", buf);
}

void
wq_daemon_notify_stopping(void)
{
    sd_notify(0, "STOPPING=1");
}

void
wq_daemon_notify_watchdog(void)
{
    sd_notify(0, "WATCHDOG=1");
}

uint64_t
wq_daemon_watchdog_usec(void)
{
    uint64_t usec = 0;

    if (sd_watchdog_enabled(0, &usec) <= 0)
        return 0;
    return usec;
}
