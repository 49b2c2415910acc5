/*
 * bench_http.c - the http handler kind against a local receiver that
 * answers at once, driven through the worker's handler code (handler.h)
 * from T threads as the worker's handler slots would, without broker or
 * PostgreSQL: what the handler kind itself costs.
 *
 *   bench_http [-n TASKS] [-t THREADS] [-s SECRET]
 *
 * The receiver is a child process of this one: a single-threaded epoll
 * loop speaking HTTP/1.1 with keep-alive on a loopback port, reading
 * each request (head and Content-Length body) and answering
 * "200 OK" with a 2-byte body; it does no signature check (the worker's
 * signing cost is in the figures when a secret is given, the default).
 * Prints tasks/s and the CPU time of this process (the worker's side:
 * libcurl, HMAC, headers, polling) per task, user and system, from
 * getrusage(2) RUSAGE_SELF; the receiver's own CPU (RUSAGE_CHILDREN once
 * reaped) is printed apart.  A benchmark: it prints figures and never
 * fails on them; the receiver's count of connections shows the
 * keep-alive reuse.  make bench-http builds and runs it.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_threads.h"
#include "clock.h"
#include "handler.h"

#define CONN_BUF 65536

static const char answer[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n"
    "\r\nok";

static volatile sig_atomic_t stopping;

static void
on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

struct conn {
    int fd;
    size_t len;
    char buf[CONN_BUF];
};

/* Length of the first whole request in c->buf, 0 while incomplete. */
static size_t
whole_request(const struct conn *c)
{
    const char *end = memmem(c->buf, c->len, "\r\n\r\n", 4), *p;
    size_t head, body = 0;

    if (end == NULL)
        return 0;
    head = (size_t)(end - c->buf) + 4;
    for (p = c->buf; p < end; p = memchr(p, '\n', (size_t)(end - p)) + 1) {
        if (strncasecmp(p, "content-length:", 15) == 0)
            body = strtoul(p + 15, NULL, 10);
        if (memchr(p, '\n', (size_t)(end - p)) == NULL)
            break;
    }
    return c->len >= head + body ? head + body : 0;
}

/* The receiver: on SIGTERM it prints how many connections it accepted
 * and how many requests it answered, and exits. */
static void
receive(int lfd)
{
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[64];
    long accepted = 0, answered = 0;

    signal(SIGTERM, on_term);
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    while (!stopping) {
        int n = epoll_wait(ep, evs, 64, -1);

        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            ssize_t r;
            size_t req, out = 0;
            char reply[16 * sizeof answer];

            if (c == NULL) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK), one = 1;

                if (fd < 0)
                    continue;
                accepted++;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = calloc(1, sizeof *c);
                c->fd = fd;
                ev.events = EPOLLIN;
                ev.data.ptr = c;
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                continue;
            }
            r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                close(c->fd);
                free(c);
                continue;
            }
            c->len += (size_t)r;
            while ((req = whole_request(c)) > 0) {
                memmove(c->buf, c->buf + req, c->len - req);
                c->len -= req;
                answered++;
                if (out + sizeof answer - 1 <= sizeof reply) {
                    memcpy(reply + out, answer, sizeof answer - 1);
                    out += sizeof answer - 1;
                }
            }
            if (out > 0 && write(c->fd, reply, out) < 0)
                (void)0;
        }
    }
    printf("receiver: %ld requests answered on %ld connections\n", answered,
        accepted);
    exit(0);
}

/* Runs n tasks through the http kind (arg: its configuration). */
static long
run_tasks(const void *arg, long n)
{
    const struct wq_httph_conf *conf = arg;
    struct wq_envelope env;
    char err[WQ_ERRLEN];
    long failed = 0;

    if (wq_envelope_init(&env, "bench", "post", "bench-key", "hello", 5, err,
        sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    for (long i = 0; i < n; i++) {
        struct wq_handler_ctx ctx;
        struct wq_handler_result res;

        memset(&ctx, 0, sizeof ctx);
        memset(&res, 0, sizeof res);
        ctx.env = &env;
        ctx.task_id = "0190a8d2-5f1c-7cc3-9a5e-2b3c4d5e6f70";
        ctx.attempt = 1;
        ctx.max_attempts = 1;
        ctx.cancel_fd = -1;
        ctx.task_cancel_fd = -1;
        wq_handler_http_run(conf, &ctx, &res);
        if (res.outcome != WQ_OUTCOME_SUCCEEDED || res.result.len != 2) {
            if (failed++ == 0)
                fprintf(stderr, "failed: %s\n", res.error != NULL
                    ? res.error : "wrong result");
        }
        wq_handler_result_free(&res);
    }
    wq_envelope_free(&env);
    return failed;
}

/* Runs n tasks over t threads; prints the figures. */
static void
measure(const char *name, const struct wq_httph_conf *conf, long n, int t)
{
    struct bench_figures f;

    bench_threads(run_tasks, conf, n, t, &f);
    bench_print(name, n, t, &f);
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    long n = 50000;
    int t = 16, opt, lfd, one = 1;
    const char *secret = "bench-secret";
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    struct wq_httph_conf conf;
    struct rusage rc;
    char url[64], err[WQ_ERRLEN];
    pid_t pid;
    int status;

    signal(SIGPIPE, SIG_IGN);       /* as the worker */
    while ((opt = getopt(argc, argv, "n:t:s:")) != -1)
        switch (opt) {
        case 'n': n = atol(optarg); break;
        case 't': t = atoi(optarg); break;
        case 's': secret = optarg; break;
        default:
            fprintf(stderr, "usage: bench_http [-n TASKS] [-t THREADS] "
                "[-s SECRET]\n");
            return 64;
        }
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0
        || listen(lfd, 1024) != 0
        || getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0) {
        perror("receiver socket");
        return 1;
    }
    if ((pid = fork()) < 0)
        return 1;
    if (pid == 0)
        receive(lfd);
    close(lfd);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/task", ntohs(sa.sin_port));

    if (wq_handler_http_global_init(err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    memset(&conf, 0, sizeof conf);
    conf.url = url;
    conf.secret = secret;
    conf.tls_ca = "";
    conf.max_output = 1 << 20;
    printf("http handler, POST of a 5-byte payload to a C receiver on "
        "loopback answering 200 at once%s; %ld cores online, load ",
        secret[0] != '\0' ? ", signed" : "", sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);
    if (system("cat /proc/loadavg") != 0)
        printf("\n");
    measure("warm-up", &conf, 1000, t);
    measure("http", &conf, n, t);

    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    getrusage(RUSAGE_CHILDREN, &rc);
    printf("receiver's CPU, all runs: %.2f s (user %.2f, sys %.2f), "
        "%.1f us/task\n", bench_tv_s(rc.ru_utime) + bench_tv_s(rc.ru_stime),
        bench_tv_s(rc.ru_utime), bench_tv_s(rc.ru_stime),
        (bench_tv_s(rc.ru_utime) + bench_tv_s(rc.ru_stime)) * 1e6 / (double)(n + 1000));
    return 0;
}
