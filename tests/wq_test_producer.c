/*
 * wq_test_producer.c - starts and stops workq-producer for the tests
 * (see wq_test_producer.h).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wq_test.h"
#include "wq_test_http.h"
#include "wq_test_producer.h"

#define ENV_MAX 64

/* GET /healthz over HTTP answers 200. */
static int
http_healthy(int port, void *arg)
{
    char resp[512];

    (void)arg;
    return wq_test_http_request(port, "GET", "/healthz", NULL, NULL, NULL,
        NULL, 0, resp, sizeof resp) == 200;
}

/* Copies a log file of the test's directory to stderr. */
static void
dump_log(const char *path)
{
    char line[1024];
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return;
    fprintf(stderr, "----- %s -----\n", path);
    while (fgets(line, sizeof line, f) != NULL)
        fputs(line, stderr);
    fclose(f);
}

void
wq_test_producer_start(const char *host, const char *const *env,
    const char *const *args, int (*healthy)(int port, void *arg), void *arg,
    pid_t *pid, int *port)
{
    static char listen[96], bin[1024];
    const char *argv[16], *envv[ENV_MAX];
    size_t n = 0, na = 0;

    if (healthy == NULL)
        healthy = http_healthy;
    snprintf(bin, sizeof bin, "%s", wq_test_bin("workq-producer"));
    argv[na++] = bin;
    for (size_t i = 0; args != NULL && args[i] != NULL && na < 15; i++)
        argv[na++] = args[i];
    argv[na] = NULL;
    envv[n++] = listen;
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        assert_true(n < ENV_MAX - 1);
        envv[n++] = env[i];
    }
    envv[n] = NULL;
    for (int attempt = 0; attempt < 20; attempt++) {
        int status, fd;

        *port = 18000 + (int)(getpid() % 1000) + 1000 * attempt;
        if ((fd = wq_test_http_connect(*port)) >= 0) {
            close(fd);      /* someone else listens there */
            continue;
        }
        snprintf(listen, sizeof listen, "WORKQ_PRODUCER_LISTEN=%s:%d", host,
            *port);
        fflush(NULL);
        if ((*pid = fork()) == 0) {
            /* never outlive the test, even one that crashed */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            fd = open("producer.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
            dup2(fd, 1);
            dup2(fd, 2);
            for (size_t i = 0; envv[i] != NULL; i++)
                putenv((char *)envv[i]);
            execv(argv[0], (char *const *)argv);
            _exit(127);
        }
        assert_true(*pid > 0);
        for (int i = 0; i < 300; i++) {
            if (waitpid(*pid, &status, WNOHANG) == *pid) {
                *pid = 0;
                if (WIFEXITED(status) && WEXITSTATUS(status) == 69)
                    break;      /* port taken: the next one */
                fail_msg("workq-producer exited (status %d) at start; see "
                    "producer.log", status);
            }
            if (healthy(*port, arg))
                return;
            wq_test_sleep_ms(50);
        }
        if (*pid != 0)
            fail_msg("workq-producer did not answer on port %d", *port);
    }
    fail_msg("no free port for workq-producer");
}

int
wq_test_producer_stop(pid_t *pid)
{
    int status = -1;

    if (*pid <= 0)
        return -1;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 600; i++) {
        if (waitpid(*pid, &status, WNOHANG) == *pid) {
            *pid = 0;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                dump_log("producer.log");   /* the why, before the test
                                               fails on the status */
            return WIFEXITED(status) ? WEXITSTATUS(status)
                : 128 + WTERMSIG(status);
        }
        wq_test_sleep_ms(50);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, &status, 0);
    *pid = 0;
    fail_msg("workq-producer did not stop within 30 s of SIGTERM");
    return -1;
}
