/*
 * daemon.h - what every workq daemon does the same way: signals and the
 * systemd notification protocol (STYLE.md habits 9 and 10).
 *
 * Signal handlers only bump counters and write one byte to a self-pipe;
 * the daemon's loop polls wq_daemon_wakeup_fd() and reads the counters.
 * SIGTERM and SIGINT ask for a stop (a second one asks for "now"), SIGHUP
 * asks to reopen logs, SIGPIPE is ignored.
 *
 * sd_notify messages go to $NOTIFY_SOCKET when systemd (or a test) set
 * it, and are no-ops otherwise.  The watchdog interval comes from
 * $WATCHDOG_USEC; a daemon sends WATCHDOG=1 only from a loop that is
 * making progress, so a stuck daemon is restarted.
 */
#ifndef WQ_DAEMON_H
#define WQ_DAEMON_H

#include <stdint.h>

#include "wq.h"

/*
 * wq_daemon_signals_init installs the handlers.  Call once from the main
 * thread before starting other threads (which then should block these
 * signals: wq_daemon_block_signals).  Returns 0 or WQ_EIO.
 */
int wq_daemon_signals_init(char *err, size_t errlen);

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread, so they are
 * delivered to the main thread only.  Call at the top of worker threads. */
void wq_daemon_block_signals(void);

/* A descriptor that becomes readable when a signal arrived; drain it
 * with wq_daemon_drain_wakeup().  -1 before signals_init. */
int wq_daemon_wakeup_fd(void);
void wq_daemon_drain_wakeup(void);

/* How many stop signals arrived: 0 none, 1 drain, 2 or more stop now. */
int wq_daemon_stop_requested(void);
/* Asks for a stop from inside the process, as a signal would. */
void wq_daemon_request_stop(void);
/* True once per SIGHUP received since the last call. */
int wq_daemon_reload_requested(void);

/* sd_notify helpers; all return quietly without systemd. */
void wq_daemon_notify_ready(const char *status);
void wq_daemon_notify_status(const char *fmt, ...) WQ_PRINTFLIKE(1, 2);
void wq_daemon_notify_stopping(void);
void wq_daemon_notify_watchdog(void);

/* The watchdog period in microseconds that systemd expects, 0 if off.
 * Send WATCHDOG=1 at least every half of it. */
uint64_t wq_daemon_watchdog_usec(void);

#endif
