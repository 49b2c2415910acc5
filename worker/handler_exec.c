/*
 * handler_exec.c - the exec handler: a configured program runs one task
 * as a child process (see handler.h, wq_handler_exec_run, for the
 * contract).
 *
 * The child is started the way glibc's posix_spawn starts one, but by
 * hand, because posix_spawn(3) has no attribute for resource limits (nor
 * for no_new_privs or the umask) and setrlimit(2) acts on the calling
 * process only: the limits have to be set in the child, between the
 * clone and the execve.  fork(2) would copy the page tables of a large
 * worker for every task; clone(2) with CLONE_VM | CLONE_VFORK instead
 * runs the child in the worker's memory, on a small stack of its own,
 * while this thread is suspended until the child's execve(2) succeeds or
 * the child exits (vfork(2) explains the sharing).
 *
 * Because it shares our memory, the child makes only async-signal-safe
 * calls (signal-safety(7)) and allocates nothing: the parent prepares
 * everything it needs (struct spawn_args).  A failed step stores its
 * errno and name in that struct and ends the child with _exit(127); the
 * parent, resumed only after that, reports it, so an error pipe is not
 * needed.  No handler of the worker may run in the child either: all
 * signals are blocked around the clone, and the child puts every
 * catchable signal back to SIG_DFL (rt_sigaction, sigaction(2); the
 * worker ignores SIGPIPE, and ignored signals survive execve) before it
 * unblocks them.
 *
 * The child, in order: setpgid(0, 0), a process group of its own (the
 * timeout kills the group); prctl(2) PR_SET_PDEATHSIG SIGKILL, so the
 * program dies with the worker (were the worker killed, it would go on
 * while the task runs again elsewhere); every signal to SIG_DFL; the pipes onto 0, 1
 * and 2 with dup2(2), which clears O_CLOEXEC there; close_range(2) of
 * everything from 3 up (a close(2) loop if the kernel is older than 5.9
 * or a seccomp filter refuses it); setrlimit(2) for each configured
 * limit, soft and hard, and RLIMIT_CORE 0 unless core dumps are allowed
 * (getrlimit(2), proc(5) /proc/PID/limits); prctl(2) PR_SET_NO_NEW_PRIVS,
 * so no setuid program or file capability gains anything (the kernel's
 * no_new_privs.rst); chdir(2) to the configured workdir; umask(2); an
 * empty signal mask; execve(2).  The start is exported as wq_exec_spawn
 * for the process kind (handler_process.c), which keeps its programs.  The
 * parent's ends of the pipes are O_CLOEXEC, so a program started at the
 * same time on another thread never inherits them.
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
 * Owns: the pipes, the child's stack while it starts, the child and its
 * group for the duration of one call.  The process must ignore SIGPIPE
 * (the daemon does): a program that closes its stdin early makes our
 * write fail with EPIPE.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "handler.h"
#include "log.h"
#include "trace.h"

#define COMPONENT      "exec"
#define READ_CHUNK     16384
#define EXIT_DRAIN_MS  200      /* after exit: wait this long for EOF */
#define NOPIDFD_MS     20       /* without a pidfd: check exit this often */
#define ERROR_TAIL     512      /* bytes of stderr in the error text */
#define CHILD_STACK    (128 * 1024) /* the child's stack until execve,
                                       its lowest page a guard */
#define NLIMITS        6        /* AS, CPU, NOFILE, NPROC, FSIZE, CORE */
#define PROGRESS_LINE_MAX 1024  /* bytes of a progress line */

/*
 * Code that runs in the child before execve, in the worker's memory:
 * no sanitizer instrumentation (it would poison shadow memory of a stack
 * that is unmapped afterwards, or call into the runtime), no inlining
 * into instrumented callers.
 */
#if defined(__clang__) || __GNUC__ >= 8
#define CHILD_CODE __attribute__((no_sanitize("address", "undefined"), \
    noinline))
#else
#define CHILD_CODE __attribute__((noinline))
#endif

/* One program being supervised. */
struct child {
    pid_t pid;
    int in, out, err;           /* our ends; -1 once closed */
    int prog;                   /* the progress pipe's read end, or -1 */
    struct wq_buf progbuf;      /* a progress line not yet whole */
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
    const char *trace;
    char **envp;

    while (c->env != NULL && c->env[extra] != NULL)
        extra++;
    envp = xcalloc(9 + extra, sizeof *envp);
    envp[n++] = xstrdup("PATH=/usr/bin:/bin");
    envp[n++] = xasprintf("WORKQ_TASK_ID=%s", ctx->task_id);
    envp[n++] = xasprintf("WORKQ_KEY=%s", ctx->env->key);
    envp[n++] = xasprintf("WORKQ_ATTEMPT=%u", ctx->attempt);
    envp[n++] = xasprintf("WORKQ_QUEUE=%s", ctx->env->queue);
    envp[n++] = xasprintf("WORKQ_TYPE=%s", ctx->env->type);
    if ((trace = wq_trace_parent(ctx->env)) != NULL)
        envp[n++] = xasprintf("TRACEPARENT=%s", trace);
    if (ctx->progress != NULL)
        envp[n++] = xstrdup("WORKQ_PROGRESS_FD=3");
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

/* The step of the child's start that failed. */
enum step {
    STEP_NONE,
    STEP_SETPGID,
    STEP_DUP,
    STEP_SETRLIMIT,
    STEP_NO_NEW_PRIVS,
    STEP_PDEATHSIG,
    STEP_CHDIR,
    STEP_EXECVE,
};

/* One resource limit to set in the child. */
struct limit {
    int resource;               /* RLIMIT_* */
    const char *name;           /* "RLIMIT_NOFILE", for the error text */
    struct rlimit rl;
};

/*
 * What the child needs, all prepared by the parent (the child allocates
 * nothing), and what it reports: it sets step and err when a step fails,
 * in this struct, which lives in the parent's memory.
 */
struct spawn_args {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *workdir;        /* NULL: the worker's */
    int fd[4];                  /* become 0, 1, 2 and, unless -1, 3 (the
                                   progress pipe) */
    mode_t umask;
    pid_t parent;               /* the worker */
    struct limit lim[NLIMITS];
    size_t nlim;
    unsigned long dfl[8];       /* a kernel struct sigaction, all zero:
                                   SIG_DFL (larger than any ABI's) */
    sigset_t none;
    /* set by the child when it fails */
    enum step step;
    size_t failed_limit;        /* index in lim, for STEP_SETRLIMIT */
    int err;                    /* an errno value */
};

static CHILD_CODE _Noreturn void
child_fail(struct spawn_args *a, enum step step, int err)
{
    a->err = err;
    a->step = step;
    _exit(127);
}

/*
 * The child, from clone to execve: async-signal-safe calls only, on its
 * own stack, in the worker's memory (see the top of the file).  Never
 * returns: execve or _exit(127).
 */
static CHILD_CODE int
child_main(void *arg)
{
    struct spawn_args *a = arg;
    int fd[4], nfd = a->fd[3] >= 0 ? 4 : 3;

    if (setpgid(0, 0) < 0)
        child_fail(a, STEP_SETPGID, errno);
    /* a worker that dies (kill -9, OOM) takes its programs with it, as
     * systemd's KillMode=control-group does: an orphan would go on with a
     * task that is run again once its lease expires.  The parent is
     * checked after: it may have died before the prctl. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        child_fail(a, STEP_PDEATHSIG, errno);
    if (getppid() != a->parent)
        _exit(127);
    /* every catchable signal to SIG_DFL while all are still blocked.  The
     * system call itself: glibc's sigaction refuses its own two (32 and
     * 33, EINVAL), and a worker started with them ignored (GNU make's
     * children are) would pass SIG_IGN on.  An all-zero kernel struct
     * sigaction is SIG_DFL, no flags, an empty mask on every ABI. */
    for (int sig = 1; sig < _NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)syscall(SYS_rt_sigaction, sig, a->dfl, NULL,
                (size_t)(_NSIG - 1) / 8);
    /* a pipe end that is itself 0, 1 or 2 (the worker started with one
     * closed) moves up first, so that no dup2 overwrites another's
     * source and each dup2 clears O_CLOEXEC on its target */
    for (int i = 0; i < nfd; i++) {
        fd[i] = a->fd[i];
        if (fd[i] < nfd && (fd[i] = fcntl(fd[i], F_DUPFD, nfd)) < 0)
            child_fail(a, STEP_DUP, errno);
    }
    for (int i = 0; i < nfd; i++)
        if (dup2(fd[i], i) < 0)
            child_fail(a, STEP_DUP, errno);
    /* ENOSYS before Linux 5.9; EPERM from a seccomp filter that does not
     * know it (SystemCallErrorNumber=EPERM) */
    if (close_range((unsigned)nfd, ~0U, 0) < 0) {
        struct rlimit rl;
        unsigned max = 1u << 20;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < max)
            max = (unsigned)rl.rlim_cur;
        for (unsigned f = (unsigned)nfd; f < max; f++)
            (void)close((int)f);
    }
    for (size_t i = 0; i < a->nlim; i++)
        if (setrlimit(a->lim[i].resource, &a->lim[i].rl) < 0) {
            a->failed_limit = i;
            child_fail(a, STEP_SETRLIMIT, errno);
        }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(a, STEP_NO_NEW_PRIVS, errno);
    if (a->workdir != NULL && chdir(a->workdir) < 0)
        child_fail(a, STEP_CHDIR, errno);
    (void)umask(a->umask);
    /* as glibc's posix_spawn: unblock last, right before execve; the
     * mask survives execve, so it must be empty for the program */
    (void)sigprocmask(SIG_SETMASK, &a->none, NULL);
    execve(a->path, a->argv, a->envp);
    child_fail(a, STEP_EXECVE, errno);
}

static void
limit_add(struct spawn_args *a, int resource, const char *name,
    uint64_t cur, uint64_t max)
{
    struct limit *l = &a->lim[a->nlim++];

    l->resource = resource;
    l->name = name;
    l->rl.rlim_cur = (rlim_t)cur;
    l->rl.rlim_max = (rlim_t)max;
}

/* The configured limits of c, in the order the child sets them. */
static void
limits_build(const struct wq_exec_conf *c, struct spawn_args *a)
{
    if (c->limit_as != 0)
        limit_add(a, RLIMIT_AS, "RLIMIT_AS", c->limit_as, c->limit_as);
    if (c->limit_cpu_s != 0) {
        /* SIGXCPU at the soft limit; SIGKILL a second later, unless the
         * worker's hard limit is closer (a hard limit is never raised for
         * the sake of that second) */
        uint64_t hard = c->limit_cpu_s + 1;
        struct rlimit old;

        if (getrlimit(RLIMIT_CPU, &old) == 0 && old.rlim_max
            != RLIM_INFINITY && hard > (uint64_t)old.rlim_max
            && c->limit_cpu_s <= (uint64_t)old.rlim_max)
            hard = (uint64_t)old.rlim_max;
        limit_add(a, RLIMIT_CPU, "RLIMIT_CPU", c->limit_cpu_s, hard);
    }
    if (c->limit_nofile != 0)
        limit_add(a, RLIMIT_NOFILE, "RLIMIT_NOFILE", c->limit_nofile,
            c->limit_nofile);
    if (c->limit_nproc != 0)
        limit_add(a, RLIMIT_NPROC, "RLIMIT_NPROC", c->limit_nproc,
            c->limit_nproc);
    if (c->limit_fsize != 0)
        limit_add(a, RLIMIT_FSIZE, "RLIMIT_FSIZE", c->limit_fsize,
            c->limit_fsize);
    if (!c->core_dumps)
        limit_add(a, RLIMIT_CORE, "RLIMIT_CORE", 0, 0);
}

/* What failed in the child, for the error text; "" for execve. */
static void
describe_step(const struct spawn_args *a, char *buf, size_t len)
{
    const struct limit *l = &a->lim[a->failed_limit];

    switch (a->step) {
    case STEP_SETPGID:
        snprintf(buf, len, "setpgid");
        break;
    case STEP_DUP:
        snprintf(buf, len, "dup2 of the pipes");
        break;
    case STEP_SETRLIMIT:
        snprintf(buf, len, "setrlimit(%s, %llu)", l->name,
            (unsigned long long)l->rl.rlim_cur);
        break;
    case STEP_NO_NEW_PRIVS:
        snprintf(buf, len, "prctl(PR_SET_NO_NEW_PRIVS)");
        break;
    case STEP_PDEATHSIG:
        snprintf(buf, len, "prctl(PR_SET_PDEATHSIG)");
        break;
    case STEP_CHDIR:
        snprintf(buf, len, "chdir(%s)", a->workdir);
        break;
    case STEP_NONE:
    case STEP_EXECVE:
        buf[0] = '\0';
        break;
    }
}

/* wq_exec_spawn, with progress_w (unless -1) as the program's
 * descriptor 3. */
static int
exec_spawn(const struct wq_exec_conf *c, char *const *envp, int progress_w,
    struct wq_spawned *out, char *why, size_t whylen)
{
    int in[2] = { -1, -1 }, o[2] = { -1, -1 }, err[2] = { -1, -1 };
    struct spawn_args a;
    sigset_t all, old;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *stack;
    pid_t pid;
    int rc;

    why[0] = '\0';
    out->pid = -1;
    out->in = out->out = out->err = out->pidfd = -1;
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(o, O_CLOEXEC) < 0
        || pipe2(err, O_CLOEXEC) < 0) {
        rc = errno;
        goto close_pipes;
    }
    memset(&a, 0, sizeof a);
    a.path = c->argv[0];
    a.argv = c->argv;
    a.envp = envp;
    a.workdir = c->workdir != NULL && c->workdir[0] != '\0' ? c->workdir
        : NULL;
    a.fd[0] = in[0];
    a.fd[1] = o[1];
    a.fd[2] = err[1];
    a.fd[3] = progress_w;
    a.umask = (mode_t)(c->umask & 0777);
    a.parent = getpid();
    sigemptyset(&a.none);
    limits_build(c, &a);

    stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE
        | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (stack == MAP_FAILED) {
        rc = errno;
        goto close_pipes;
    }
    /* the stack grows down: an overflow faults instead of writing over
     * whatever lies below */
    (void)mprotect(stack, page, PROT_NONE);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* returns once the child has called execve or exited */
    pid = clone(child_main, stack + CHILD_STACK, CLONE_VM | CLONE_VFORK
        | SIGCHLD, &a);
    rc = pid < 0 ? errno : 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, CHILD_STACK);
    if (rc != 0)
        goto close_pipes;
    if (a.step != STEP_NONE) {
        rc = a.err != 0 ? a.err : EIO;
        describe_step(&a, why, whylen);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        goto close_pipes;
    }
    out->pid = pid;
    close(in[0]);
    close(o[1]);
    close(err[1]);
    out->in = in[1];
    out->out = o[0];
    out->err = err[0];
    fcntl(out->in, F_SETFL, O_NONBLOCK);
    fcntl(out->out, F_SETFL, O_NONBLOCK);
    fcntl(out->err, F_SETFL, O_NONBLOCK);
    out->pidfd = pidfd_open_pid(pid);
    return 0;

close_pipes:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&o[i]);
        close_fd(&err[i]);
    }
    return rc;
}

int
wq_exec_spawn(const struct wq_exec_conf *c, char *const *envp,
    struct wq_spawned *out, char *why, size_t whylen)
{
    return exec_spawn(c, envp, -1, out, why, whylen);
}

/*
 * Reads the progress pipe: lines "PERCENT" or "PERCENT MESSAGE" (PERCENT
 * a decimal integer, clamped to 0..100; MESSAGE the rest of the line),
 * each handed to ctx->progress.  Other lines are ignored; a line longer
 * than PROGRESS_LINE_MAX is dropped.  The pipe is closed at EOF.
 */
static void
read_progress(struct child *ch, const struct wq_handler_ctx *ctx)
{
    char buf[1024];

    for (;;) {
        ssize_t n = read(ch->prog, buf, sizeof buf);
        size_t start = 0;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                close_fd(&ch->prog);
            return;
        }
        if (wq_buf_append(&ch->progbuf, buf, (size_t)n) != 0)
            abort();
        for (size_t i = 0; i < ch->progbuf.len; i++) {
            char *line = ch->progbuf.data + start, *end;
            long pct;

            if (ch->progbuf.data[i] != '\n')
                continue;
            ch->progbuf.data[i] = '\0';
            if (i > 0 && ch->progbuf.data[i - 1] == '\r')
                ch->progbuf.data[i - 1] = '\0';
            pct = strtol(line, &end, 10);
            if (end != line && (*end == '\0' || *end == ' '))
                ctx->progress(ctx->progress_user, pct < 0 ? 0 : pct > 100
                    ? 100 : (int)pct, *end == ' ' ? end + 1 : NULL);
            start = i + 1;
        }
        memmove(ch->progbuf.data, ch->progbuf.data + start,
            ch->progbuf.len - start);
        ch->progbuf.len -= start;
        if (ch->progbuf.len > PROGRESS_LINE_MAX)
            ch->progbuf.len = 0;    /* no line end in sight: dropped */
    }
}

/* Starts the program for one task; as wq_exec_spawn.  With a progress
 * pipe when the caller takes progress: its read end in ch->prog. */
static int
spawn(const struct wq_exec_conf *c, char **envp, int want_progress,
    struct child *ch, char *why, size_t whylen)
{
    struct wq_spawned sp;
    int prog[2] = { -1, -1 }, rc;

    if (want_progress && pipe2(prog, O_CLOEXEC) < 0)
        return errno;
    rc = exec_spawn(c, envp, prog[1], &sp, why, whylen);
    close_fd(&prog[1]);
    if (rc != 0) {
        close_fd(&prog[0]);
        return rc;
    }
    ch->prog = prog[0];
    if (ch->prog >= 0)
        fcntl(ch->prog, F_SETFL, O_NONBLOCK);
    ch->pid = sp.pid;
    ch->in = sp.in;
    ch->out = sp.out;
    ch->err = sp.err;
    ch->pidfd = sp.pidfd;
    return 0;
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
    char why[128];

    memset(&ch, 0, sizeof ch);
    ch.in = ch.out = ch.err = ch.pidfd = ch.prog = -1;
    ch.payload = ctx->env->payload;
    ch.payload_len = ctx->env->payload_len;
    envp = env_build(c, ctx);
    rc = spawn(c, envp, ctx->progress != NULL, &ch, why, sizeof why);
    env_free(envp);
    if (rc != 0) {
        wq_handler_result_fail(res, WQ_OUTCOME_FAILED, "cannot start %s: "
            "%s%s%s", c->argv[0], why, why[0] != '\0' ? ": " : "",
            strerror(rc));
        return;
    }
    if (c->timeout_ms > 0)
        deadline = wq_clock_mono_ns() + (uint64_t)c->timeout_ms * 1000000u;
    if (ctx->deadline_ns != 0 && (deadline == 0 || ctx->deadline_ns
        < deadline))
        deadline = ctx->deadline_ns;
    feed_stdin(&ch);

    for (;;) {
        struct pollfd pfd[7];
        int n = 0, wait = -1, ipid = -1, icancel = -1, iin = -1, iout = -1,
            ierr = -1, itask = -1, iprog = -1;
        uint64_t now;

        if (ch.out >= 0) {
            iout = n;
            pfd[n++] = (struct pollfd){ ch.out, POLLIN, 0 };
        }
        if (ch.err >= 0) {
            ierr = n;
            pfd[n++] = (struct pollfd){ ch.err, POLLIN, 0 };
        }
        if (ch.prog >= 0 && !ch.exited) {
            iprog = n;
            pfd[n++] = (struct pollfd){ ch.prog, POLLIN, 0 };
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
        if (iprog >= 0 && pfd[iprog].revents != 0)
            read_progress(&ch, ctx);
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
    if (ch.prog >= 0)
        read_progress(&ch, ctx);
    close_fd(&ch.in);
    close_fd(&ch.out);
    close_fd(&ch.err);
    close_fd(&ch.pidfd);
    close_fd(&ch.prog);
    wq_buf_free(&ch.progbuf);
    log_stderr(&ch, ctx);
    conclude(c, ctx, &ch, timed_out, cancelled, op_cancel, res);
    wq_buf_free(&ch.errbuf);
}
