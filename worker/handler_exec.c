/*
 * handler_exec.c - the exec handler: a configured program runs one task
 * as a child process (see handler.h, wq_handler_exec_run, for the
 * contract).
 *
 * The child is started with posix_spawn (glibc's uses clone(CLONE_VFORK),
 * so a large worker does not copy its page tables per task), never
 * through a shell: file actions put the pipes on 0, 1 and 2 and close
 * every other descriptor (posix_spawn_file_actions_addclosefrom_np, glibc
 * 2.34), and attributes give it a process group of its own
 * (POSIX_SPAWN_SETPGROUP), an empty signal mask and default dispositions
 * (POSIX_SPAWN_SETSIGMASK | SETSIGDEF: the worker ignores SIGPIPE, and
 * ignored signals survive execve).  The parent's ends of the pipes are
 * O_CLOEXEC, so a program started at the same time on another thread
 * never inherits them.
 *
 * The calling thread then supervises it with one poll(2) over stdin (the
 * payload is written as the pipe takes it), stdout and stderr (read as
 * they come, kept up to their limits and counted beyond), a pidfd (Linux
 * 5.3; without one, a 20 ms waitid check) and the worker's cancel
 * descriptor.  When the program exits, what is left of its group gets
 * SIGKILL while the exited child, a zombie not yet reaped, still holds the
 * group's id, so the signal cannot reach a process that reused the id.
 * Only then is it reaped.
 *
 * Owns: the pipes, the child and its group for the duration of one call.
 * The process must ignore SIGPIPE (the daemon does): a program that
 * closes its stdin early makes our write fail with EPIPE.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "handler.h"
#include "log.h"

#define COMPONENT      "exec"
#define READ_CHUNK     16384
#define EXIT_DRAIN_MS  200      /* after exit: wait this long for EOF */
#define NOPIDFD_MS     20       /* without a pidfd: check exit this often */
#define ERROR_TAIL     512      /* bytes of stderr in the error text */

extern char **environ;

/* One program being supervised. */
struct child {
    pid_t pid;
    int in, out, err;           /* our ends; -1 once closed */
    int pidfd;                  /* -1 if the kernel has none */
    const uint8_t *payload;
    size_t payload_len, written;
    size_t out_total;           /* stdout bytes the program wrote */
    struct wq_buf errbuf;       /* stderr kept (max_stderr) */
    size_t err_total;
    int exited;                 /* a zombie now, not reaped yet */
    siginfo_t si;
    int signalled;              /* 0 none, SIGTERM or SIGKILL sent */
    uint64_t kill_at;           /* when SIGKILL follows SIGTERM; 0 none */
};

static void
close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static int
pidfd_open_pid(pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);

    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
#else
    (void)pid;
    return -1;
#endif
}

/* Sends sig to the child's whole process group. */
static void
signal_group(struct child *ch, int sig)
{
    if (kill(-ch->pid, sig) < 0 && errno != ESRCH)
        wq_log_warn(COMPONENT, "kill(-%ld, %d): %s", (long)ch->pid, sig,
            strerror(errno));
    ch->signalled = sig;
}

/* True once the child has exited (it stays a zombie: WNOWAIT). */
static int
check_exit(struct child *ch)
{
    siginfo_t si;

    if (ch->exited)
        return 1;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)ch->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0
        && si.si_pid == ch->pid) {
        ch->si = si;
        ch->exited = 1;
    }
    return ch->exited;
}

/* Reads what a pipe has now; 1 at EOF (closed then), 0 otherwise. */
static int
drain_pipe(int *fd, struct wq_buf *keep, size_t limit, size_t *total)
{
    char buf[READ_CHUNK];

    for (;;) {
        ssize_t n = read(*fd, buf, sizeof buf);

        if (n > 0) {
            size_t room = keep->len < limit ? limit - keep->len : 0;
            size_t take = (size_t)n < room ? (size_t)n : room;

            if (take > 0 && wq_buf_append(keep, buf, take) != 0)
                abort();        /* out of memory, as xmalloc would */
            *total += (size_t)n;
            continue;
        }
        if (n == 0) {
            close_fd(fd);
            return 1;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            close_fd(fd);
            return 1;
        }
        return 0;
    }
}

static void
feed_stdin(struct child *ch)
{
    while (ch->in >= 0 && ch->written < ch->payload_len) {
        ssize_t n = write(ch->in, ch->payload + ch->written,
            ch->payload_len - ch->written);

        if (n > 0) {
            ch->written += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        /* EPIPE: the program does not read its input; that is its call */
        close_fd(&ch->in);
        return;
    }
    close_fd(&ch->in);
}

/* Builds the clean environment; strings are freed by env_free. */
static char **
env_build(const struct wq_exec_conf *c, const struct wq_handler_ctx *ctx)
{
    size_t n = 0, extra = 0;
    char **envp;

    while (c->env != NULL && c->env[extra] != NULL)
        extra++;
    envp = xcalloc(7 + extra, sizeof *envp);
    envp[n++] = xstrdup("PATH=/usr/bin:/bin");
    envp[n++] = xasprintf("WORKQ_TASK_ID=%s", ctx->task_id);
    envp[n++] = xasprintf("WORKQ_KEY=%s", ctx->env->key);
    envp[n++] = xasprintf("WORKQ_ATTEMPT=%u", ctx->attempt);
    envp[n++] = xasprintf("WORKQ_QUEUE=%s", ctx->env->queue);
    envp[n++] = xasprintf("WORKQ_TYPE=%s", ctx->env->type);
    for (size_t i = 0; i < extra; i++)
        envp[n++] = xstrdup(c->env[i]);
    envp[n] = NULL;
    return envp;
}

static void
env_free(char **envp)
{
    for (size_t i = 0; envp[i] != NULL; i++)
        free(envp[i]);
    free(envp);
}

/* Starts the program; returns 0 or an errno value. */
static int
spawn(const struct wq_exec_conf *c, char **envp, struct child *ch)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    int rc;

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0
        || pipe2(err, O_CLOEXEC) < 0) {
        rc = errno;
        goto close_pipes;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    sigemptyset(&none);
    sigfillset(&all);
    /* dup2 clears O_CLOEXEC on 0, 1 and 2; everything >= 3 is closed */
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP
        | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setsigmask(&at, &none);
    /* every catchable signal back to SIG_DFL (SIGKILL/SIGSTOP are left
     * out by the kernel anyway) */
    posix_spawnattr_setsigdefault(&at, &all);
    rc = posix_spawn(&ch->pid, c->argv[0], &fa, &at, c->argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0)
        goto close_pipes;
    close(in[0]);
    close(out[1]);
    close(err[1]);
    ch->in = in[1];
    ch->out = out[0];
    ch->err = err[0];
    fcntl(ch->in, F_SETFL, O_NONBLOCK);
    fcntl(ch->out, F_SETFL, O_NONBLOCK);
    fcntl(ch->err, F_SETFL, O_NONBLOCK);
    ch->pidfd = pidfd_open_pid(ch->pid);
    return 0;

close_pipes:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
        close_fd(&err[i]);
    }
    return rc;
}

/* The last non-empty line of stderr, sanitized, or NULL. */
static char *
stderr_tail(const struct wq_buf *b)
{
    size_t end = b->len, start;

    while (end > 0 && (b->data[end - 1] == '\n' || b->data[end - 1] == '\r'
        || b->data[end - 1] == ' '))
        end--;
    if (end == 0)
        return NULL;
    start = end;
    while (start > 0 && b->data[start - 1] != '\n')
        start--;
    if (end - start > ERROR_TAIL)
        start = end - ERROR_TAIL;
    return wq_handler_text_sanitize(b->data + start, end - start,
        ERROR_TAIL + 16);
}

/* Writes the kept stderr to the log, a line at a time. */
static void
log_stderr(const struct child *ch, const struct wq_handler_ctx *ctx)
{
    const char *p = ch->errbuf.data, *end = p + ch->errbuf.len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        char *line = wq_handler_text_sanitize(p, len, len * 4 + 8);

        wq_log(WQ_LOG_INFO, COMPONENT, "task %s stderr: %s", ctx->task_id,
            line);
        free(line);
        p += len + (nl != NULL);
    }
    if (ch->err_total > ch->errbuf.len)
        wq_log_warn(COMPONENT, "task %s: stderr cut at %zu of %zu bytes",
            ctx->task_id, ch->errbuf.len, ch->err_total);
}

static const char *
signal_name(int sig)
{
    const char *s = sigabbrev_np(sig);

    return s != NULL ? s : "?";
}

/* Sets the outcome from how the child ended. */
static void
conclude(const struct wq_exec_conf *c, const struct wq_handler_ctx *ctx,
    struct child *ch, int timed_out, int cancelled, int op_cancel,
    struct wq_handler_result *res)
{
    char *tail = stderr_tail(&ch->errbuf);
    const char *sep = tail != NULL ? ": " : "";
    const char *t = tail != NULL ? tail : "";

    if (cancelled) {
        wq_handler_result_fail(res, WQ_OUTCOME_ABANDONED, "%s: killed, the "
            "worker is stopping", c->argv[0]);
    } else if (op_cancel) {
        wq_handler_result_fail(res, WQ_OUTCOME_CANCELLED, "%s: cancelled by "
            "an operator; process group killed", c->argv[0]);
    } else if (timed_out) {
        wq_handler_result_fail(res, WQ_OUTCOME_TIMEOUT, "%s: timed out after "
            "%lld ms; process group killed%s%s", c->argv[0],
            (long long)c->timeout_ms, sep, t);
    } else if (ch->si.si_code == CLD_EXITED && ch->si.si_status == 0) {
        res->outcome = WQ_OUTCOME_SUCCEEDED;
        if (ch->out_total > res->result.len)
            res->note = xasprintf("stdout cut at %zu of %zu bytes",
                res->result.len, ch->out_total);
    } else if (ch->si.si_code == CLD_EXITED) {
        enum wq_outcome o = WQ_OUTCOME_FAILED;

        for (size_t i = 0; i < c->npermanent; i++)
            if (c->permanent[i] == ch->si.si_status)
                o = WQ_OUTCOME_PERMANENT;
        wq_handler_result_fail(res, o, "%s: exit status %d%s%s%s",
            c->argv[0], ch->si.si_status,
            o == WQ_OUTCOME_PERMANENT ? " (permanent)" : "", sep, t);
    } else {
        wq_handler_result_fail(res, WQ_OUTCOME_FAILED, "%s: killed by signal "
            "%d (SIG%s)%s%s", c->argv[0], ch->si.si_status,
            signal_name(ch->si.si_status), sep, t);
    }
    if (res->note != NULL)
        wq_log_warn(COMPONENT, "task %s: %s", ctx->task_id, res->note);
    free(tail);
}

void
wq_handler_exec_run(const struct wq_exec_conf *c,
    const struct wq_handler_ctx *ctx, struct wq_handler_result *res)
{
    struct child ch;
    char **envp;
    uint64_t deadline = 0, drain_until = 0;
    int rc, timed_out = 0, cancelled = 0, op_cancel = 0;

    memset(&ch, 0, sizeof ch);
    ch.in = ch.out = ch.err = ch.pidfd = -1;
    ch.payload = ctx->env->payload;
    ch.payload_len = ctx->env->payload_len;
    envp = env_build(c, ctx);
    rc = spawn(c, envp, &ch);
    env_free(envp);
    if (rc != 0) {
        wq_handler_result_fail(res, WQ_OUTCOME_FAILED, "cannot start %s: %s",
            c->argv[0], strerror(rc));
        return;
    }
    if (c->timeout_ms > 0)
        deadline = wq_clock_mono_ns() + (uint64_t)c->timeout_ms * 1000000u;
    if (ctx->deadline_ns != 0 && (deadline == 0 || ctx->deadline_ns
        < deadline))
        deadline = ctx->deadline_ns;
    feed_stdin(&ch);

    for (;;) {
        struct pollfd pfd[6];
        int n = 0, wait = -1, ipid = -1, icancel = -1, iin = -1, iout = -1,
            ierr = -1, itask = -1;
        uint64_t now;

        if (ch.out >= 0) {
            iout = n;
            pfd[n++] = (struct pollfd){ ch.out, POLLIN, 0 };
        }
        if (ch.err >= 0) {
            ierr = n;
            pfd[n++] = (struct pollfd){ ch.err, POLLIN, 0 };
        }
        if (ch.in >= 0 && !ch.exited) {
            iin = n;
            pfd[n++] = (struct pollfd){ ch.in, POLLOUT, 0 };
        }
        if (ch.pidfd >= 0 && !ch.exited) {
            ipid = n;
            pfd[n++] = (struct pollfd){ ch.pidfd, POLLIN, 0 };
        }
        if (ctx->cancel_fd >= 0 && !cancelled) {
            icancel = n;
            pfd[n++] = (struct pollfd){ ctx->cancel_fd, POLLIN, 0 };
        }
        if (ctx->task_cancel_fd >= 0 && !op_cancel && !timed_out
            && !ch.exited) {
            itask = n;
            pfd[n++] = (struct pollfd){ ctx->task_cancel_fd, POLLIN, 0 };
        }

        now = wq_clock_mono_ns();
        if (ch.exited) {
            /* exited: collect what is still in the pipes, for a while */
            if (drain_until == 0)
                drain_until = now + (uint64_t)EXIT_DRAIN_MS * 1000000u;
            if ((ch.out < 0 && ch.err < 0) || now >= drain_until)
                break;
            wait = wq_clock_ms_until(drain_until) + 1;
        } else {
            if (deadline != 0 && !timed_out && !op_cancel
                && now >= deadline) {
                timed_out = 1;
                signal_group(&ch, SIGTERM);
                ch.kill_at = now + (uint64_t)c->kill_grace_ms * 1000000u;
            }
            if (ch.kill_at != 0 && now >= ch.kill_at) {
                signal_group(&ch, SIGKILL);
                ch.kill_at = 0;
            }
            if (deadline != 0 && !timed_out)
                wait = wq_clock_ms_until(deadline) + 1;
            if (ch.kill_at != 0) {
                int k = wq_clock_ms_until(ch.kill_at) + 1;

                wait = wait < 0 || k < wait ? k : wait;
            }
            if (ch.pidfd < 0 && (wait < 0 || wait > NOPIDFD_MS))
                wait = NOPIDFD_MS;
        }

        if (poll(pfd, (nfds_t)n, wait) < 0 && errno != EINTR) {
            wq_log_error(COMPONENT, "poll: %s", strerror(errno));
            signal_group(&ch, SIGKILL);
        }
        if (iout >= 0 && pfd[iout].revents != 0)
            drain_pipe(&ch.out, &res->result, c->max_output, &ch.out_total);
        if (ierr >= 0 && pfd[ierr].revents != 0)
            drain_pipe(&ch.err, &ch.errbuf, c->max_stderr, &ch.err_total);
        if (iin >= 0 && pfd[iin].revents != 0)
            feed_stdin(&ch);
        if (itask >= 0 && pfd[itask].revents != 0) {
            uint64_t v;

            if (read(ctx->task_cancel_fd, &v, sizeof v) < 0)
                (void)0;    /* EAGAIN: drained already */
            if (ctx->cancelled != NULL && atomic_load(ctx->cancelled)) {
                /* an operator's cancel: as a timeout, with grace */
                op_cancel = 1;
                signal_group(&ch, SIGTERM);
                ch.kill_at = wq_clock_mono_ns()
                    + (uint64_t)c->kill_grace_ms * 1000000u;
            }
        }
        if (icancel >= 0 && pfd[icancel].revents != 0) {
            /* the drain time is over: no grace any more */
            cancelled = 1;
            signal_group(&ch, SIGKILL);
        }
        if (ipid >= 0 || ch.pidfd < 0)
            check_exit(&ch);
    }

    /* Whatever the program left running in its group goes with it, while
     * the zombie still reserves the group id; then reap. */
    signal_group(&ch, SIGKILL);
    while (waitpid(ch.pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (ch.out >= 0)
        drain_pipe(&ch.out, &res->result, c->max_output, &ch.out_total);
    if (ch.err >= 0)
        drain_pipe(&ch.err, &ch.errbuf, c->max_stderr, &ch.err_total);
    close_fd(&ch.in);
    close_fd(&ch.out);
    close_fd(&ch.err);
    close_fd(&ch.pidfd);
    log_stderr(&ch, ctx);
    conclude(c, ctx, &ch, timed_out, cancelled, op_cancel, res);
    wq_buf_free(&ch.errbuf);
}
