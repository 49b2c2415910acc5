/*
 * main.c - workq-producer, the HTTP API daemon that accepts tasks: flags,
 * configuration, signals, the threads, the main loop and the shutdown
 * sequence.  The routes live in api.c, the broker in publisher.c,
 * PostgreSQL in db.c.
 *
 * Threads: libmicrohttpd's pool (producer.threads) parses and validates
 * requests; one publisher thread owns the transport; one database thread
 * owns the store connection; the main thread waits for signals.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "api.h"
#include "clock.h"
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "http.h"
#include "secfile.h"
#include "log.h"
#include "metrics.h"
#include "publisher.h"

#define COMPONENT        "producer"
#define EXIT_CONFIG      78     /* EX_CONFIG */
#define EXIT_UNAVAILABLE 69     /* EX_UNAVAILABLE: cannot listen */
#define STATUS_EVERY_MS  10000  /* sd_notify STATUS= refresh */
#define HTTP_IDLE_S      30     /* idle keep-alive connections */
#define PEM_MAX          (1 << 20)  /* bytes in a TLS certificate or key */

static const char usage_text[] =
    "NAME\n"
    "    workq-producer - the workq HTTP API: accepts tasks and puts them\n"
    "    on the broker\n"
    "\n"
    "SYNOPSIS\n"
    "    workq-producer [-c PATH]\n"
    "    workq-producer --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    Listens on producer.listen and accepts tasks over HTTP/1.1.  A task\n"
    "    is answered 202 only after the broker confirmed it (RabbitMQ\n"
    "    publisher confirms, Kafka acks=all), or after PostgreSQL stored it\n"
    "    when it has a delay or a run_at time (the scheduler publishes it\n"
    "    when due).\n"
    "\n"
    "ROUTES\n"
    "    POST /v1/queues/QUEUE/tasks\n"
    "        Body (application/json): {\"type\": \"send\", \"payload\": ...,\n"
    "        \"idempotency_key\": \"k\", \"max_attempts\": 5, \"delay\": \"30s\",\n"
    "        \"run_at\": \"2026-11-28T07:43:06Z\", \"headers\": {\"k\": \"v\"}};\n"
    "        only \"type\" is required.  A string payload is taken as its\n"
    "        bytes, any other JSON value as its JSON text; \"payload_base64\"\n"
    "        carries binary.  The Idempotency-Key header may give the key.\n"
    "        202 {\"id\", \"queue\", \"idempotency_key\", \"state\"}.  A key\n"
    "        names its task (the id is the key's UUIDv5): a key submitted\n"
    "        before is answered 200 with that task's id and state and\n"
    "        \"duplicate\": true, and nothing new is stored or run.\n"
    "    POST /v1/queues/QUEUE/tasks:batch\n"
    "        Body {\"tasks\": [task, ...]} (or a bare array), at most\n"
    "        producer.batch_max tasks, validated all or nothing; an\n"
    "        error names the task by its index from 0 (\"tasks[3]: ...\").\n"
    "        202 {\"tasks\": [{\"id\", ...}, ...]}.\n"
    "    GET /v1/tasks/ID\n"
    "        The task's state, attempts, result or last error, from\n"
    "        PostgreSQL: the object `workq --json status ID` prints.  A\n"
    "        task on the broker that no worker has claimed yet answers\n"
    "        from its receipt: \"state\": \"queued\", \"claimed\": false.\n"
    "    POST /v1/workflows   body: a workflow document (a chain, a\n"
    "        group with a callback, a batch; docs/workflows.md), stored\n"
    "        in PostgreSQL: 202 {\"id\"}.  GET /v1/workflows/ID: the\n"
    "        graph with each node's state (read scope).  POST\n"
    "        /v1/workflows/ID/tasks {\"tasks\": [...]}: more tasks for a\n"
    "        batch (409 when it takes no more); POST\n"
    "        /v1/workflows/ID:close closes an open batch.\n"
    "    Operator routes (docs/operator-api.md; the answers are the\n"
    "    objects `workq --json` prints for the same command):\n"
    "    GET  /v1/tasks?queue=&state=&type=&key_prefix=&created_after=\n"
    "         &created_before=&limit=&cursor=   tasks, newest first, in\n"
    "         keyset pages: pass next_cursor as cursor for the next.\n"
    "    POST /v1/tasks/ID:retry, POST /v1/tasks/ID:cancel\n"
    "    GET  /v1/dead?queue=&type=&error=&older_than_ms=&newer_than_ms=\n"
    "         &limit=&cursor=, GET /v1/dead/ID   dead tasks\n"
    "    POST /v1/dead:replay, POST /v1/dead:purge   body {\"ids\": [...]}\n"
    "         or filters with a \"limit\" (at most 10000)\n"
    "    GET  /v1/undecodable?queue=&error=&older_than_ms=&newer_than_ms=\n"
    "         &limit=   broker messages that were no envelope (kept whole),\n"
    "         GET /v1/undecodable/N/raw   one's bytes as they came\n"
    "    GET  /v1/stats?queue=, GET /v1/stats/history?queue=&minutes=\n"
    "    GET  /v1/workers?all=true, GET /v1/periodic\n"
    "    GET  /v1/whoami   {\"scopes\": [\"read\", ...]}: the token's scopes.\n"
    "    GET  /v1/openapi.json   the OpenAPI 3.1 document of every route\n"
    "         (no token needed).\n"
    "    GET /ui/\n"
    "        The web dashboard (files built into this binary): open it in\n"
    "        a browser and log in with a token (read to view, admin to\n"
    "        act; kept in the tab, sent as a bearer token, no cookies).\n"
    "        The files need no token; their answers carry a strict\n"
    "        Content-Security-Policy.\n"
    "    GET /healthz    200 while the process runs.\n"
    "    GET /readyz     200 when the broker and PostgreSQL are reachable.\n"
    "    GET /metrics    Prometheus text: tasks accepted, requests\n"
    "                    rejected by reason, publish latency.\n"
    "\n"
    "    /v1/ routes need \"Authorization: Bearer TOKEN\" with a token of\n"
    "    producer.tokens_file (its sha256 line with scopes, from `workq\n"
    "    token new`): POST of tasks needs the scope submit, the GETs\n"
    "    need read, the operator POSTs (retry, cancel, replay, purge)\n"
    "    need admin, which has every scope.  /healthz, /readyz, /metrics,\n"
    "    /v1/openapi.json and /ui/ need no token.  There are no cookies: only\n"
    "    the Authorization header authenticates, so a page of another\n"
    "    site cannot act through a browser.  Without producer.tokens_file the producer does not start\n"
    "    (exit 78) unless producer.auth = \"none\", which takes every\n"
    "    request without a token and is refused on a non-loopback\n"
    "    producer.listen unless producer.auth_none_nonloopback = true.\n"
    "    With producer.tls_cert and producer.tls_key the API speaks HTTPS\n"
    "    (TLS 1.3, and 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305)\n"
    "    only.\n"
    "    Errors are {\"error\": CODE, \"detail\": TEXT}: 400 invalid JSON,\n"
    "    task, queue or id, or a malformed request (Content-Length twice\n"
    "    or with Transfer-Encoding, white space in a header name,\n"
    "    Authorization twice); 401 no or unknown token; 403 the token\n"
    "    lacks the scope, or the queue is not one of producer.queues, or\n"
    "    would be one over producer.max_queues; 404 no such route or\n"
    "    task; 405 wrong method;\n"
    "    413 body, payload or batch too large; 415 not application/json;\n"
    "    431 too many or too long header fields; 429 (with Retry-After)\n"
    "    over producer.rate_limit tasks a second, a batch counting its\n"
    "    tasks, or after 20 failed authentications from one address (then\n"
    "    one a second); 503 broker or PostgreSQL unavailable, no\n"
    "    confirmation within producer.request_timeout, or stopping.\n"
    "\n"
    "OPTIONS\n"
    "    -c, --config PATH  configuration file (default "
    WQ_SYSCONFDIR "/workq/workq.conf)\n"
    "    -h, --help         this page\n"
    "    -V, --version      print the version\n"
    "\n"
    "SIGNALS\n"
    "    SIGTERM, SIGINT  stop: refuse new tasks (503), finish the requests\n"
    "                     in flight within producer.request_timeout, flush\n"
    "                     the broker, exit 0; a second signal stops now.\n"
    "    SIGHUP           reopen the log file, reload the tokens file.\n"
    "\n"
    "ENVIRONMENT\n"
    "    WORKQ_<GROUP>_<KEY> overrides any configuration key, e.g.\n"
    "    WORKQ_PRODUCER_LISTEN, WORKQ_TRANSPORT, WORKQ_KAFKA_BROKERS.\n"
    "    NOTIFY_SOCKET, WATCHDOG_USEC: systemd notification (READY,\n"
    "    STATUS, WATCHDOG, STOPPING).\n"
    "\n"
    "EXIT STATUS\n"
    "    0 stopped cleanly; 64 usage error; 69 cannot listen (the error\n"
    "    names the address and the cause); 78 configuration error (a\n"
    "    listen address or port that is not valid; no tokens without\n"
    "    producer.auth = \"none\", or \"none\" on a non-loopback address).\n";

/*
 * Reads the PEM file of config key `key` into a new string, NUL-
 * terminated (the caller wipes and frees it).  NULL with err set when it
 * cannot be read, is empty, larger than PEM_MAX or holds a NUL.
 */
static char *
read_pem(const char *key, const char *path, char *err, size_t errlen)
{
    char *buf = xmalloc(PEM_MAX + 1);
    size_t n = 0, got;
    FILE *f;

    if ((f = fopen(path, "re")) == NULL) {
        wq_seterr(err, errlen, WQ_ECONFIG, "%s %s: %s", key, path,
            strerror(errno));
        free(buf);
        return NULL;
    }
    /* the private key is a secret; the certificate decides who we are */
    if (wq_secfile_check(fileno(f), path, key, strstr(key, "key") != NULL,
        err, errlen) != 0) {
        fclose(f);
        free(buf);
        return NULL;
    }
    while (n <= PEM_MAX && (got = fread(buf + n, 1, PEM_MAX + 1 - n, f)) > 0)
        n += got;
    if (ferror(f) || n == 0 || n > PEM_MAX || memchr(buf, '\0', n) != NULL) {
        wq_seterr(err, errlen, WQ_ECONFIG, "%s %s: %s", key, path,
            ferror(f) ? strerror(errno) : n == 0 ? "empty"
            : n > PEM_MAX ? "too large for a PEM file" : "not PEM text");
        fclose(f);
        explicit_bzero(buf, PEM_MAX + 1);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void
pem_free(char *p)
{
    if (p != NULL) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

/* The separate metrics.listen endpoint: /metrics and /healthz only. */
static int
metrics_handle(void *user, const struct wq_http_request *req, int *status,
    const char **ctype, char **body, size_t *len)
{
    wq_metrics *m = user;

    if (strcmp(req->path, "/metrics") == 0) {
        *status = 200;
        *ctype = "text/plain; version=0.0.4; charset=utf-8";
        *body = wq_metrics_render(m, len);
    } else if (strcmp(req->path, "/healthz") == 0) {
        *status = 200;
        *ctype = "application/json";
        *body = xstrdup("{\"status\":\"ok\"}");
        *len = strlen(*body);
    } else {
        *status = 404;
        *ctype = "application/json";
        *body = wq_http_json_error("not_found", "no such route", len);
    }
    return 0;
}

/*
 * Waits for a stop signal, reloading on SIGHUP and telling systemd how
 * things go.
 */
static void
main_loop(struct api *api, struct publisher *pub)
{
    uint64_t wd = wq_daemon_watchdog_usec(), last_status = 0;
    struct pollfd pfd = { .fd = wq_daemon_wakeup_fd(), .events = POLLIN };
    int timeout = wd > 0 ? (int)(wd / 2000) : STATUS_EVERY_MS;
    char err[WQ_ERRLEN];

    if (timeout > STATUS_EVERY_MS)
        timeout = STATUS_EVERY_MS;
    while (!wq_daemon_stop_requested()) {
        if (poll(&pfd, 1, timeout) > 0)
            wq_daemon_drain_wakeup();
        if (wq_daemon_reload_requested()) {
            wq_log_reopen();
            if (api_reload_tokens(api, err, sizeof err) != 0)
                wq_log_error(COMPONENT, "tokens not reloaded: %s", err);
            else
                wq_log_info(COMPONENT, "reloaded");
        }
        if (wd > 0)
            wq_daemon_notify_watchdog();
        if (wq_clock_mono_ns() - last_status
            >= (uint64_t)STATUS_EVERY_MS * 1000000u) {
            last_status = wq_clock_mono_ns();
            wq_daemon_notify_status("broker %s, %zu task(s) in flight",
                pub_broker_up(pub) ? "up" : "down", pub_inflight(pub));
        }
    }
}

/*
 * The shutdown sequence (STYLE.md habit 10):
 *  1. STOPPING=1; task routes answer 503 from now on (the listening
 *     socket stays open so that clients get an answer, not a refusal);
 *  2. the publisher publishes what it was handed, waits up to
 *     producer.request_timeout for the confirmations (a second signal:
 *     not any longer), answers every waiting request, flushes and closes
 *     the transport;
 *  3. the database thread runs the jobs it has and refuses new ones,
 *     closes its connection;
 *  4. the HTTP server stops (anything still waiting gets 503); only now
 *     can no handler reach the publisher or the database thread, so
 *  5. they are freed, then the rest; exit 0.
 */
static void
shutdown_all(struct wq_config *cfg, struct api *api, struct publisher *pub,
    struct dbq *db, wq_http *http, wq_http *mhttp)
{
    struct pollfd pfd = { .fd = wq_daemon_wakeup_fd(), .events = POLLIN };
    int hurried = 0;

    wq_daemon_notify_stopping();
    wq_log_info(COMPONENT, "stopping: %zu task(s) in flight",
        pub_inflight(pub));
    api_set_stopping(api);
    pub_stop_begin(pub, (int)cfg->producer.request_timeout_ms);
    while (!pub_finished(pub)) {
        if (poll(&pfd, 1, 50) > 0)
            wq_daemon_drain_wakeup();
        if (!hurried && wq_daemon_stop_requested() >= 2) {
            wq_log_warn(COMPONENT, "second stop signal: not waiting for "
                "the broker any longer");
            pub_hurry(pub);
            hurried = 1;
        }
    }
    db_stop(db);
    wq_http_stop(http);
    wq_http_stop(mhttp);
    pub_free(pub);
    db_free(db);
    wq_log_info(COMPONENT, "stopped");
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    static char cerr[WQ_CONFIG_ERRLEN];
    const char *config_path = NULL;
    struct wq_config cfg;
    struct publisher *pub = NULL;
    struct dbq *db = NULL;
    struct api *api = NULL;
    wq_http *http = NULL, *mhttp = NULL;
    wq_metrics *metrics;
    struct wq_http_conf hc;
    char err[WQ_ERRLEN], *cert = NULL, *key = NULL;
    int ch, rc = 0;

    while ((ch = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': config_path = optarg; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case 'V': printf("workq-producer %s\n", WQ_VERSION); return 0;
        default:  fputs(usage_text, stderr); return 64;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "workq-producer: unexpected argument '%s'\n",
            argv[optind]);
        return 64;
    }
    if (wq_config_load(config_path, &cfg, cerr, sizeof cerr) != 0) {
        fprintf(stderr, "workq-producer: configuration rejected:\n%s\n",
            cerr);
        wq_config_free(&cfg);
        return EXIT_CONFIG;
    }
    if (wq_config_setup_log(&cfg, "workq-producer", err, sizeof err) != 0)
        fprintf(stderr, "workq-producer: %s\n", err);
    wq_alloc_keep_heap();      /* before any thread: alloc.h */
    if (wq_daemon_signals_init(err, sizeof err) != 0) {
        wq_log_error(COMPONENT, "%s", err);
        wq_config_free(&cfg);
        return 1;
    }

    /* TLS material first: a configuration error exits before anything
     * starts */
    if ((cfg.producer.tls_cert[0] != '\0') != (cfg.producer.tls_key[0]
        != '\0')) {
        wq_log_error(COMPONENT, "producer.tls_cert and producer.tls_key "
            "go together: set both for HTTPS, or neither");
        wq_config_free(&cfg);
        return EXIT_CONFIG;
    }
    if (cfg.producer.tls_cert[0] != '\0'
        && ((cert = read_pem("producer.tls_cert", cfg.producer.tls_cert,
        err, sizeof err)) == NULL
        || (key = read_pem("producer.tls_key", cfg.producer.tls_key, err,
        sizeof err)) == NULL)) {
        wq_log_error(COMPONENT, "%s", err);
        pem_free(cert);
        wq_config_free(&cfg);
        return EXIT_CONFIG;
    }

    /* every metric is registered before the first thread starts */
    metrics = wq_metrics_new();
    {
        struct api_conf ac = { &cfg, NULL, NULL, metrics };

        if ((rc = api_new(&ac, &api, err, sizeof err)) != 0) {
            wq_log_error(COMPONENT, "%s", err);
            rc = EXIT_CONFIG;
            goto out;
        }
    }
    if ((rc = pub_start(&cfg, (int)cfg.producer.request_timeout_ms, metrics,
        api_receipts_round, api, &pub, err, sizeof err)) != 0
        || (rc = db_start(&cfg, &db, err, sizeof err)) != 0) {
        wq_log_error(COMPONENT, "%s", err);
        rc = rc == WQ_ECONFIG ? EXIT_CONFIG : 1;
        goto out;
    }
    api_set_backends(api, pub, db);
    memset(&hc, 0, sizeof hc);
    hc.listen = cfg.producer.listen;
    hc.max_body = (size_t)cfg.producer.max_body;
    hc.timeout_s = HTTP_IDLE_S;
    hc.read_timeout_s = (unsigned)((cfg.producer.read_timeout_ms + 999)
        / 1000);
    hc.threads = (unsigned)cfg.producer.threads;
    hc.max_connections = (unsigned)cfg.producer.max_connections;
    hc.tls_cert_pem = cert;
    hc.tls_key_pem = key;
    hc.handler = api_handle;
    hc.user = api;
    rc = wq_http_start(&hc, &http, err, sizeof err);
    pem_free(cert);             /* the server keeps copies */
    pem_free(key);
    cert = key = NULL;
    if (rc != 0) {
        wq_log_error(COMPONENT, "%s", err);
        rc = rc == WQ_ECONFIG ? EXIT_CONFIG : EXIT_UNAVAILABLE;
        goto out;
    }
    if (cfg.metrics.listen[0] != '\0') {
        /* plain HTTP: keep metrics.listen on a private address */
        hc.listen = cfg.metrics.listen;
        hc.max_body = 1024;
        hc.threads = 1;
        hc.tls_cert_pem = hc.tls_key_pem = NULL;
        hc.handler = metrics_handle;
        hc.user = metrics;
        if (wq_http_start(&hc, &mhttp, err, sizeof err) != 0) {
            wq_log_error(COMPONENT, "metrics: %s", err);
            rc = EXIT_UNAVAILABLE;
            goto out;
        }
    }
    wq_log_info(COMPONENT, "listening on %s (port %d, %s), transport %s, "
        "broker %s", cfg.producer.listen, wq_http_port(http),
        cfg.producer.tls_cert[0] != '\0' ? "HTTPS" : "plain HTTP",
        wq_transport_kind_name(cfg.transport),
        pub_broker_up(pub) ? "up" : "down");
    wq_daemon_notify_ready("accepting tasks");

    main_loop(api, pub);
    shutdown_all(&cfg, api, pub, db, http, mhttp);
    pub = NULL;
    db = NULL;
    http = mhttp = NULL;
    rc = 0;

out:
    if (rc != 0) {
        /* start-up failed: nothing was accepted, stop without draining */
        wq_http_stop(http);
        wq_http_stop(mhttp);
        if (pub != NULL)
            pub_free(pub);
        db_free(db);
    }
    api_free(api);
    wq_metrics_free(metrics);
    wq_config_free(&cfg);
    return rc;
}
