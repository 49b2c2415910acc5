/*
 * test_cli_submit.c - `workq submit` as a user runs it, the real binary
 * against the private servers (configured through WORKQ_* environment
 * overrides), on both transports: the payload from an argument, a file
 * and stdin arrives intact; --batch sends every good line and reports a
 * bad one by number with exit 65; usage errors exit 64; an unreachable
 * broker 69; --delay writes a scheduled row; --wait reports the outcome
 * written to PostgreSQL (here by the test, standing in for a worker) and
 * times out with 75.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "envelope.h"
#include "store.h"
#include "uuid.h"
#include "wq_test.h"
#include "wq_test_broker.h"
#include "wq_test_pg.h"

#define RECV_MS 60000

static char out[1 << 20];

/*
 * Runs `workq ARGS...` for transport `kind` (conninfo NULL: the default
 * database), with `extra` environment entries (may be NULL) and `input`
 * on stdin.  Returns the exit status; the output is in `out`.
 */
static int
workq(int kind, const char *conninfo, const char *const *extra,
    const char *input, const char *const *args)
{
    const char *argv[40] = { NULL }, *env[16];
    size_t n = wq_test_env_for(kind, conninfo, env, 12), i;
    char bin[1024];

    snprintf(bin, sizeof bin, "%s", wq_test_bin("workq"));
    argv[0] = bin;
    for (i = 0; args[i] != NULL && i < 38; i++)
        argv[i + 1] = args[i];
    for (i = 0; extra != NULL && extra[i] != NULL && n < 15; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    return wq_test_cmd(argv, env, input, out, sizeof out);
}

/* The id printed after "PREFIX" in out (36 characters), or fails. */
static void
id_after(const char *prefix, char id[WQ_UUID_STRLEN])
{
    const char *p = strstr(out, prefix);
    uint8_t bin[16];

    if (p == NULL)
        fail_msg("no '%s' in the output:\n%s", prefix, out);
    p += strlen(prefix);
    memcpy(id, p, 36);
    id[36] = '\0';
    if (wq_uuid_parse(id, bin) != 0)
        fail_msg("'%s' after '%s' is not an id:\n%s", id, prefix, out);
}

/* The id printed alone on a line of out (stdout and stderr are merged,
 * so a log line may come first), or fails. */
static void
id_line(char id[WQ_UUID_STRLEN])
{
    uint8_t bin[16];

    for (const char *p = out; *p != '\0'; ) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);

        if (len == 36) {
            memcpy(id, p, 36);
            id[36] = '\0';
            if (wq_uuid_parse(id, bin) == 0)
                return;
        }
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    fail_msg("no task id line in the output:\n%s", out);
}

/* Finds the envelope with text id `id` among env[0..n). */
static const struct wq_envelope *
find(const struct wq_envelope *env, size_t n, const char *id)
{
    char text[WQ_UUID_STRLEN];

    for (size_t i = 0; i < n; i++) {
        wq_uuid_format(env[i].id, text);
        if (strcmp(text, id) == 0)
            return &env[i];
    }
    fail_msg("task %s did not arrive", id);
    return NULL;
}

/* --- payload from argument, file, stdin ---------------------------------- */

static void
check_sources(int kind)
{
    const char *queue = wq_test_queue(kind, "cli-src");
    static const char file_payload[] = "from a file\n\twith\ttabs\n";
    struct wq_envelope env[3];
    struct wq_test_consumer *cons;
    const struct wq_envelope *e;
    char id_arg[WQ_UUID_STRLEN], id_file[WQ_UUID_STRLEN];
    char id_stdin[WQ_UUID_STRLEN];
    FILE *f;
    int rc;

    rc = workq(kind, NULL, NULL, NULL, (const char *[]){ "submit", "--queue",
        queue, "--type", "echo", "--key", "arg-key", "--max-attempts", "3",
        "-H", "a=1", "-H", "b=x=y", "hello from argv", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    id_line(id_arg);

    f = fopen("payload.bin", "wb");
    assert_non_null(f);
    fwrite(file_payload, 1, sizeof file_payload - 1, f);
    fclose(f);
    rc = workq(kind, NULL, NULL, NULL, (const char *[]){ "--json", "submit",
        "-q", queue, "-t", "echo", "--file", "payload.bin", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    id_after("{\"id\":\"", id_file);
    assert_non_null(strstr(out, "\"state\":\"queued\""));

    rc = workq(kind, NULL, NULL, "piped\ninput", (const char *[]){ "submit",
        "-q", queue, "-t", "echo", "-", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    id_line(id_stdin);

    cons = wq_test_consumer_open(kind, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, 3, RECV_MS), 3);
    e = find(env, 3, id_arg);
    assert_int_equal(e->payload_len, strlen("hello from argv"));
    assert_memory_equal(e->payload, "hello from argv", e->payload_len);
    assert_string_equal(e->type, "echo");
    assert_string_equal(e->key, "arg-key");
    assert_int_equal(e->max_attempts, 3);
    assert_int_equal(e->nheaders, 2);
    assert_string_equal(e->headers[0].name, "a");
    assert_string_equal(e->headers[0].value, "1");
    assert_string_equal(e->headers[1].name, "b");
    assert_string_equal(e->headers[1].value, "x=y");
    e = find(env, 3, id_file);
    assert_int_equal(e->payload_len, sizeof file_payload - 1);
    assert_memory_equal(e->payload, file_payload, e->payload_len);
    assert_string_equal(e->key, id_file);
    e = find(env, 3, id_stdin);
    assert_int_equal(e->payload_len, strlen("piped\ninput"));
    assert_memory_equal(e->payload, "piped\ninput", e->payload_len);
    for (int i = 0; i < 3; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);
}

static void
test_cli_submit_sources_kafka(void **state)
{
    (void)state;
    check_sources(WQ_TRANSPORT_KAFKA);
}

static void
test_cli_submit_sources_rabbitmq(void **state)
{
    (void)state;
    check_sources(WQ_TRANSPORT_RABBITMQ);
}

/* --- --batch ------------------------------------------------------------- */

static void
check_batch(int kind)
{
    const char *queue = wq_test_queue(kind, "cli-batch");
    const char *other = wq_test_queue(kind, "cli-batch-other");
    char input[2048], line[64], ids[5][WQ_UUID_STRLEN];
    struct wq_envelope env[4];
    struct wq_test_consumer *cons;
    const struct wq_envelope *e;
    int rc;

    snprintf(input, sizeof input,
        "{\"type\":\"a\",\"payload\":\"one\"}\n"
        "{\"type\":\"b\",\"payload\":{\"n\":2},\"idempotency_key\":\"k2\"}\n"
        "{\"type\":\"c\",\"payload\": oops}\n"
        "\n"
        "{\"type\":\"d\",\"payload_base64\":\"AAEC\",\"max_attempts\":9,"
        "\"headers\":{\"h\":\"v\"}}\n"
        "{\"type\":7}\n"
        "{\"queue\":\"%s\",\"type\":\"e\"}\n", other);
    rc = workq(kind, NULL, NULL, input, (const char *[]){ "submit",
        "--batch", "-", "--queue", queue, NULL });
    if (rc != 65)
        fail_msg("exit %d, want 65:\n%s", rc, out);
    assert_non_null(strstr(out, "line 3: invalid JSON"));
    assert_non_null(strstr(out, "line 6: field 'type'"));
    assert_non_null(strstr(out, "4 tasks accepted, 2 lines rejected"));
    for (int i = 0; i < 5; i++) {
        static const int lineno[] = { 1, 2, 5, 7, 0 };

        if (lineno[i] == 0)
            break;
        snprintf(line, sizeof line, "\n%d ", lineno[i]);
        if (lineno[i] == 1 && strncmp(out, "1 ", 2) == 0)
            id_after("1 ", ids[i]);
        else
            id_after(line, ids[i]);
    }

    cons = wq_test_consumer_open(kind, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, 3, RECV_MS), 3);
    e = find(env, 3, ids[0]);
    assert_string_equal(e->type, "a");
    assert_memory_equal(e->payload, "one", 3);
    e = find(env, 3, ids[1]);
    assert_string_equal(e->type, "b");
    assert_string_equal(e->key, "k2");
    assert_int_equal(e->payload_len, 7);
    assert_memory_equal(e->payload, "{\"n\":2}", 7);
    e = find(env, 3, ids[2]);
    assert_string_equal(e->type, "d");
    assert_int_equal(e->payload_len, 3);
    assert_memory_equal(e->payload, "\0\1\2", 3);
    assert_int_equal(e->max_attempts, 9);
    assert_int_equal(e->nheaders, 1);
    for (int i = 0; i < 3; i++)
        wq_envelope_free(&env[i]);
    /* nothing else on the queue (the bad lines sent nothing) */
    assert_int_equal(wq_test_consumer_recv(cons, env, 1, 1500), 0);
    wq_test_consumer_close(cons);

    cons = wq_test_consumer_open(kind, other);
    assert_int_equal(wq_test_consumer_recv(cons, env, 1, RECV_MS), 1);
    e = find(env, 1, ids[3]);
    assert_string_equal(e->type, "e");
    wq_envelope_free(&env[0]);
    wq_test_consumer_close(cons);
}

/* --- --hook ---------------------------------------------------------------- */

/* The value of header `name` of e, or NULL. */
static const char *
env_header(const struct wq_envelope *e, const char *name)
{
    for (size_t i = 0; i < e->nheaders; i++)
        if (strcmp(e->headers[i].name, name) == 0)
            return e->headers[i].value;
    return NULL;
}

/*
 * --hook URL sets the task's header workq-hook: on a single submit, as
 * the default of --batch lines (a line's own "hook" wins; a line with a
 * bad one is rejected), and on a delayed task's row.
 */
static void
check_hook(int kind)
{
    const char *db = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(kind, "cli-hook");
    char one[WQ_UUID_STRLEN], ids[2][WQ_UUID_STRLEN];
    struct wq_envelope env[3];
    struct wq_test_consumer *cons;
    wq_store *s;
    int rc;

    rc = workq(kind, db, NULL, NULL, (const char *[]){ "submit", "-q",
        queue, "-t", "echo", "--hook", "https://hooks.example/one", "-H",
        "a=1", "x", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    id_line(one);
    rc = workq(kind, db, NULL,
        "{\"type\":\"a\"}\n"
        "{\"type\":\"b\",\"hook\":\"HTTPS://own.example/b\"}\n"
        "{\"type\":\"c\",\"hook\":\"http://plain.example/c\"}\n",
        (const char *[]){ "submit", "--batch", "-", "--queue", queue,
        "--hook", "https://hooks.example/default", NULL });
    if (rc != 65)
        fail_msg("exit %d, want 65:\n%s", rc, out);
    assert_non_null(strstr(out, "line 3: field 'hook': hook URL "
        "'http://plain.example/c': want https://"));
    assert_non_null(strstr(out, "2 tasks accepted, 1 line rejected"));
    if (strncmp(out, "1 ", 2) == 0)
        id_after("1 ", ids[0]);
    else
        id_after("\n1 ", ids[0]);
    id_after("\n2 ", ids[1]);

    cons = wq_test_consumer_open(kind, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, 3, RECV_MS), 3);
    assert_string_equal(env_header(find(env, 3, one), "workq-hook"),
        "https://hooks.example/one");
    assert_string_equal(env_header(find(env, 3, one), "a"), "1");
    assert_string_equal(env_header(find(env, 3, ids[0]), "workq-hook"),
        "https://hooks.example/default");
    assert_string_equal(env_header(find(env, 3, ids[1]), "workq-hook"),
        "HTTPS://own.example/b");
    assert_int_equal(find(env, 3, ids[1])->nheaders, 1);
    for (int i = 0; i < 3; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);

    /* a delayed task keeps it in its row, for the completion trigger */
    rc = workq(kind, db, NULL, NULL, (const char *[]){ "--json", "submit",
        "-q", queue, "-t", "echo", "--delay", "1h", "--key", "later",
        "--hook", "https://hooks.example/later", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    s = wq_test_pg_open(db);
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM workq.tasks "
        "WHERE idempotency_key = 'later' AND state = 'scheduled' AND "
        "headers->>'workq-hook' = 'https://hooks.example/later'"), 1);
    wq_store_close(s);
}

static void
test_cli_submit_hook_kafka(void **state)
{
    (void)state;
    check_hook(WQ_TRANSPORT_KAFKA);
}

static void
test_cli_submit_hook_rabbitmq(void **state)
{
    (void)state;
    check_hook(WQ_TRANSPORT_RABBITMQ);
}

/*
 * Where a batch line is wrong: its line number from 1 (blank lines
 * counted), and within the line a column, never jansson's own line count
 * of the one line ("line 4: invalid JSON at line 2 column 0"); CRLF line
 * ends too.
 */
static void
test_cli_submit_batch_error_positions(void **state)
{
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "cli-batch-pos");
    const char input[] =
        "{\"type\":\"a\"}\n"
        "\n"
        "{\"type\":\"b\"\n"
        "{\"type\":\"c\", \"payload\": tru}\r\n"
        "{\"type\":\"d\",\r\n";
    int rc;

    (void)state;
    rc = workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, input, (const char *[]){
        "submit", "--batch", "-", "--queue", queue, NULL });
    if (rc != 65)
        fail_msg("exit %d, want 65:\n%s", rc, out);
    if (strstr(out, "line 3: invalid JSON at column 11: ") == NULL
        || strstr(out, "line 4: invalid JSON at column 27: ") == NULL
        || strstr(out, "line 5: invalid JSON at column 12: ") == NULL
        || strstr(out, "at line ") != NULL || strstr(out, "column 0") != NULL)
        fail_msg("want lines 3, 4, 5 with columns in the line:\n%s", out);
    assert_non_null(strstr(out, "1 task accepted, 3 lines rejected"));
}

static void
test_cli_submit_batch_bad_line_kafka(void **state)
{
    (void)state;
    check_batch(WQ_TRANSPORT_KAFKA);
}

static void
test_cli_submit_batch_bad_line_rabbitmq(void **state)
{
    (void)state;
    check_batch(WQ_TRANSPORT_RABBITMQ);
}

/* A big batch from a file, --json output: every line accepted. */
static void
test_cli_submit_batch_file_json(void **state)
{
    enum { N = 2000 };
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "cli-batch-file");
    struct wq_envelope *env = calloc(N, sizeof *env);
    struct wq_test_consumer *cons;
    FILE *f = fopen("tasks.jsonl", "w");
    size_t lines = 0;
    int rc;

    (void)state;
    assert_non_null(f);
    for (int i = 0; i < N; i++)
        fprintf(f, "{\"type\":\"noop\",\"payload\":\"%d\"}\n", i);
    fclose(f);
    rc = workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "--json", "submit", "-q", queue, "--batch", "tasks.jsonl", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%.2000s", rc, out);
    for (const char *p = out; (p = strstr(p, "{\"line\":")) != NULL; p++)
        lines++;
    assert_int_equal(lines, N);
    cons = wq_test_consumer_open(WQ_TRANSPORT_RABBITMQ, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, N, RECV_MS), N);
    for (int i = 0; i < N; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);
    free(env);
}


/*
 * --batch progress: none when stderr is not a terminal (here a pipe);
 * on a terminal (a pty made by script(1) of util-linux) a line rewritten
 * in place with the lines read, confirmed and refused.
 */
static void
test_cli_submit_batch_progress(void **state)
{
    enum { N = 3000 };
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "cli-progress");
    const char *argv[5], *env[16];
    char cmd[2048];
    FILE *f = fopen("progress.jsonl", "w");
    int rc;

    (void)state;
    assert_non_null(f);
    for (int i = 0; i < N; i++)
        fprintf(f, "{\"type\":\"noop\",\"payload\":\"%d\"}\n", i);
    fprintf(f, "not a task\n");
    fclose(f);

    rc = workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", queue, "--batch", "progress.jsonl", NULL });
    if (rc != 65)
        fail_msg("exit %d, want 65:\n%.2000s", rc, out);
    assert_null(strstr(out, "lines read"));
    assert_null(strchr(out, '\r'));
    assert_non_null(strstr(out, "3000 tasks accepted, 1 line rejected"));

    if (access("/usr/bin/script", X_OK) != 0)
        fail_msg("script(1) of util-linux is needed for this test");
    snprintf(cmd, sizeof cmd, "'%s' submit -q '%s' --batch progress.jsonl "
        ">/dev/null", wq_test_bin("workq"), queue);
    argv[0] = "/usr/bin/script";
    argv[1] = "-qec";
    argv[2] = cmd;
    argv[3] = "/dev/null";
    argv[4] = NULL;
    env[wq_test_env_for(WQ_TRANSPORT_RABBITMQ, NULL, env, 15)] = NULL;
    rc = wq_test_cmd(argv, env, NULL, out, sizeof out);
    if (rc != 65)
        fail_msg("exit %d, want 65:\n%.2000s", rc, out);
    assert_non_null(strstr(out, "\r\033[Kworkq submit: 1 lines read, "));
    assert_non_null(strstr(out, "confirmed, "));
    assert_non_null(strstr(out, "tasks/s"));
    /* the bad line's message starts on a cleared line */
    assert_non_null(strstr(out, "\r\033[Kworkq submit: line 3001: "));
    assert_non_null(strstr(out, "3000 tasks accepted, 1 line rejected"));
}

/* --- exit codes ---------------------------------------------------------- */

static void
expect(int rc, int want, const char *what)
{
    if (rc != want)
        fail_msg("%s: exit %d, want %d:\n%s", what, rc, want, out);
}

static void
test_cli_submit_usage_errors(void **state)
{
    static char big[(1 << 20) + 10];
    FILE *f;

    (void)state;
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-t", "x", NULL }), 64, "no queue");
    assert_non_null(strstr(out, "--queue and --type are required"));
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", NULL }), 64, "no type");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--delay", "soon", NULL }), 64,
        "bad delay");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--at", "tomorrow", NULL }), 64,
        "bad --at");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--delay", "1s", "--at",
        "2030-01-01T00:00:00Z", NULL }), 64, "--delay and --at");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--max-attempts", "0", NULL }), 64,
        "max attempts 0");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--header", "novalue", NULL }), 64,
        "header without =");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--bogus", NULL }), 64,
        "unknown option");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "a", "b", NULL }), 64,
        "two payloads");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--file", "f", "a", NULL }), 64,
        "argument and --file");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "--batch", "-", "payload", NULL }), 64,
        "--batch with a payload");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--timeout", "1s", NULL }), 64,
        "--timeout without --wait");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--key", NULL }), 64,
        "--key without a value");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--hook", "http://app/done", NULL }),
        64, "--hook over http");
    assert_non_null(strstr(out, "--hook: hook URL 'http://app/done': want "
        "https://"));
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--hook", "https:///path", NULL }),
        64, "--hook without a host");
    assert_non_null(strstr(out, "no host"));
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--hook", "https://a b/", NULL }),
        64, "--hook with a space");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--hook", "https://a/", "-H",
        "workq-hook=https://b/", NULL }), 64, "--hook and the header");
    assert_non_null(strstr(out, "give --hook or --header workq-hook=URL"));

    /* rejected input: 65; a missing file: 66 */
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "bad/queue", "-t", "x", NULL }), 65, "bad queue");
    assert_non_null(strstr(out, "invalid character"));
    memset(big, 'a', sizeof big);
    f = fopen("big.bin", "wb");
    assert_non_null(f);
    fwrite(big, 1, sizeof big, f);
    fclose(f);
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--file", "big.bin", NULL }), 65,
        "payload over 1 MiB");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "--file", "nope.bin", NULL }), 66,
        "no such payload file");
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "--batch", "nope.jsonl", NULL }), 66, "no such batch");

    /* help */
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, NULL, NULL, (const char *[]){
        "submit", "--help", NULL }), 0, "--help");
    assert_non_null(strstr(out, "EXIT STATUS"));
    assert_non_null(strstr(out, "--batch"));
    assert_non_null(strstr(out, "--hook URL"));
}

static void
test_cli_submit_broker_unreachable(void **state)
{
    const char *amqp[] = { "WORKQ_RABBITMQ_URL=amqp://guest:guest@"
        "127.0.0.1:1", NULL };

    (void)state;
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, amqp, NULL, (const char *[]){
        "submit", "-q", "q", "-t", "x", "payload", NULL }), 69,
        "broker unreachable");
    assert_non_null(strstr(out, "127.0.0.1:1"));
    expect(workq(WQ_TRANSPORT_RABBITMQ, NULL, amqp, "{\"type\":\"x\"}\n",
        (const char *[]){ "submit", "-q", "q", "--batch", "-", NULL }), 69,
        "batch, broker unreachable");
}

/*
 * An unreachable broker fails fast and plainly, on both transports: a
 * closed port (refused) within the default connect timeout, a port that
 * accepts and never answers within broker.connect_timeout; each time
 * exit 69 and one line that names the broker (no librdkafka noise).
 */
static void
unreachable_fast(int kind)
{
    char port_url[128], port_kafka[128];
    const char *refused[] = { "WORKQ_RABBITMQ_URL=amqp://guest:guest@"
        "127.0.0.1:1", "WORKQ_KAFKA_BROKERS=127.0.0.1:1", NULL };
    const char *silent[] = { port_url, port_kafka,
        "WORKQ_BROKER_CONNECT_TIMEOUT=1s", NULL };
    const char *args[] = { "submit", "-q", "q", "-t", "x", "payload", NULL };
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t sl = sizeof sa;
    uint64_t t0;
    double secs;
    int fd, port;

    /* refused: well within the default 5 s */
    t0 = wq_clock_mono_ns();
    expect(workq(kind, NULL, refused, NULL, args), 69, "refused");
    secs = (double)(wq_clock_mono_ns() - t0) / 1e9;
    if (secs > 5.0 + 2.0)
        fail_msg("refused: took %.1f s", secs);
    if (strchr(out, '\n') != strrchr(out, '\n')
        || strstr(out, "127.0.0.1:1") == NULL)
        fail_msg("refused: want one line naming 127.0.0.1:1, got:\n%s", out);

    /* silent: a listener that never accepts; the kernel completes the
     * TCP handshake, the broker's answer never comes */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    port = ntohs(sa.sin_port);
    snprintf(port_url, sizeof port_url,
        "WORKQ_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:%d", port);
    snprintf(port_kafka, sizeof port_kafka,
        "WORKQ_KAFKA_BROKERS=127.0.0.1:%d", port);
    t0 = wq_clock_mono_ns();
    expect(workq(kind, NULL, silent, NULL, args), 69, "silent");
    secs = (double)(wq_clock_mono_ns() - t0) / 1e9;
    close(fd);
    if (secs < 0.9 || secs > 1.0 + 2.0)
        fail_msg("silent: took %.1f s, want about 1 s", secs);
    if (strchr(out, '\n') != strrchr(out, '\n')
        || strstr(out, port_kafka + strlen("WORKQ_KAFKA_BROKERS=")) == NULL
        || strstr(out, "broker.connect_timeout") == NULL)
        fail_msg("silent: want one line naming the broker and "
            "broker.connect_timeout, got:\n%s", out);
}

static void
test_cli_submit_unreachable_fast_kafka(void **state)
{
    (void)state;
    unreachable_fast(WQ_TRANSPORT_KAFKA);
}

static void
test_cli_submit_unreachable_fast_rabbitmq(void **state)
{
    (void)state;
    unreachable_fast(WQ_TRANSPORT_RABBITMQ);
}

/* --- delayed and --wait -------------------------------------------------- */

static void
test_cli_submit_delayed(void **state)
{
    const char *db = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "cli-delayed");
    char id[WQ_UUID_STRLEN];
    wq_store *s;
    int rc;

    (void)state;
    rc = workq(WQ_TRANSPORT_RABBITMQ, db, NULL, NULL, (const char *[]){
        "--json", "submit", "-q", queue, "-t", "report", "--delay", "30s",
        "later", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    id_after("{\"id\":\"", id);
    assert_non_null(strstr(out, "\"state\":\"scheduled\""));
    assert_non_null(strstr(out, "\"run_at\":\""));
    rc = workq(WQ_TRANSPORT_RABBITMQ, db, NULL, NULL, (const char *[]){
        "submit", "-q", queue, "-t", "report", "--at",
        "2099-01-01T00:00:00+01:00", "--key", "new-year", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    s = wq_test_pg_open(db);
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM workq.tasks "
        "WHERE id = '%s' AND state = 'scheduled' AND payload = 'later' "
        "AND run_at > now() + interval '20 seconds'", id), 1);
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM workq.tasks "
        "WHERE idempotency_key = 'new-year' AND run_at = "
        "'2098-12-31T23:00:00Z'"), 1);
    wq_store_close(s);
}

/*
 * The same key twice: the same id, a note that the key was submitted
 * before; `workq status` answers the id at once (its receipt), before any
 * worker ran.
 */
static void
test_cli_submit_same_key_same_id(void **state)
{
    const char *db = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "cli-samekey");
    char id[WQ_UUID_STRLEN], id2[WQ_UUID_STRLEN];
    int rc;

    (void)state;
    rc = workq(WQ_TRANSPORT_RABBITMQ, db, NULL, NULL, (const char *[]){
        "submit", "-q", queue, "-t", "echo", "--key", "k-1", "one", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    id_line(id);
    assert_null(strstr(out, "submitted before"));
    rc = workq(WQ_TRANSPORT_RABBITMQ, db, NULL, NULL, (const char *[]){
        "submit", "-q", queue, "-t", "echo", "--key", "k-1", "two", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    id_line(id2);
    assert_string_equal(id2, id);
    assert_non_null(strstr(out, "the key was submitted before: task"));
    assert_non_null(strstr(out, "is queued"));
    rc = workq(WQ_TRANSPORT_RABBITMQ, db, NULL, NULL, (const char *[]){
        "--json", "status", id, NULL });
    if (rc != 0)
        fail_msg("status: exit %d:\n%s", rc, out);
    assert_non_null(strstr(out, "\"state\":\"queued\""));
    assert_non_null(strstr(out, "\"claimed\":false"));
}

/*
 * Stands in for a worker: waits for the task on the broker, then records
 * an outcome for its (queue, key) in PostgreSQL.  Runs in a child.
 */
static void
fake_worker(const char *db, const char *queue, const char *state,
    const char *result)
{
    struct wq_test_consumer *cons;
    struct wq_envelope env;
    char sql[2048], id[WQ_UUID_STRLEN];
    wq_store *s;

    cons = wq_test_consumer_open(WQ_TRANSPORT_RABBITMQ, queue);
    if (wq_test_consumer_recv(cons, &env, 1, RECV_MS) != 1)
        _exit(2);
    wq_uuid_format(env.id, id);
    s = wq_test_pg_open(db);
    snprintf(sql, sizeof sql, "INSERT INTO workq.tasks (id, attempt, "
        "max_attempts, state, queue, type, idempotency_key, result, "
        "last_error, finished_at, worker) VALUES ('%s', 1, %u, '%s', '%s', "
        "'%s', '%s', %s, %s, now(), 'fake')", id, env.max_attempts, state,
        env.queue, env.type, env.key, result != NULL ? result : "NULL",
        result == NULL ? "'it broke'" : "NULL");
    wq_test_pg_exec(s, sql);
    wq_store_close(s);
    wq_envelope_free(&env);
    wq_test_consumer_close(cons);
    _exit(0);
}

static void
check_wait(const char *state, const char *result, int want)
{
    const char *db = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "cli-wait");
    struct wq_test_consumer *cons;
    struct wq_envelope env;
    pid_t pid;
    int rc, status;

    /* declare the queue (a first task), so that the fake worker can
     * subscribe to it; drain that task */
    rc = workq(WQ_TRANSPORT_RABBITMQ, db, NULL, NULL, (const char *[]){
        "submit", "-q", queue, "-t", "declare", NULL });
    assert_int_equal(rc, 0);
    cons = wq_test_consumer_open(WQ_TRANSPORT_RABBITMQ, queue);
    assert_int_equal(wq_test_consumer_recv(cons, &env, 1, RECV_MS), 1);
    wq_envelope_free(&env);
    wq_test_consumer_close(cons);
    fflush(NULL);
    if ((pid = fork()) == 0)
        fake_worker(db, queue, state, result);
    assert_true(pid > 0);
    rc = workq(WQ_TRANSPORT_RABBITMQ, db, NULL, NULL, (const char *[]){
        "submit", "-q", queue, "-t", "job", "--key", "wait-key", "--wait",
        "--timeout", "60s", "input", NULL });
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (rc != want)
        fail_msg("exit %d, want %d:\n%s", rc, want, out);
}

static void
test_cli_submit_wait_succeeded(void **state)
{
    (void)state;
    check_wait("succeeded", "'all done'", 0);
    assert_non_null(strstr(out, "succeeded after 1 attempt\nall done\n"));
}

static void
test_cli_submit_wait_dead(void **state)
{
    (void)state;
    check_wait("dead", NULL, 1);
    assert_non_null(strstr(out, "dead after 1 attempt\nerror: it broke"));
}

static void
test_cli_submit_wait_timeout(void **state)
{
    const char *db = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "cli-wait-to");
    uint64_t t0 = wq_clock_mono_ns();
    int rc;

    (void)state;
    rc = workq(WQ_TRANSPORT_RABBITMQ, db, NULL, NULL, (const char *[]){
        "--json", "submit", "-q", queue, "-t", "job", "--wait",
        "--timeout", "1500ms", NULL });
    expect(rc, 75, "--wait without a worker");
    assert_non_null(strstr(out, "\"state\":\"timeout\""));
    assert_true(wq_clock_mono_ns() - t0 >= 1500000000u);
}

/*
 * `workq status ID` names the task's priority `want` as text and as
 * JSON, and says whether a worker claimed it (`claimed` 0: on the
 * broker, read from its receipt).
 */
static void
status_priority(int kind, const char *db, const char *id, const char *want,
    int claimed)
{
    char line[64];
    json_error_t e;
    json_t *j;
    int rc;

    rc = workq(kind, db, NULL, NULL, (const char *[]){ "status", id, NULL });
    expect(rc, 0, "status");
    snprintf(line, sizeof line, "\npriority    %s\n", want);
    if (strstr(out, line) == NULL)
        fail_msg("status %s: no priority %s:\n%s", id, want, out);
    rc = workq(kind, db, NULL, NULL, (const char *[]){ "--json", "status", id,
        NULL });
    expect(rc, 0, "status --json");
    if ((j = json_loads(out, 0, &e)) == NULL)
        fail_msg("status --json: not JSON (%s):\n%s", e.text, out);
    if (!json_is_string(json_object_get(j, "priority"))
        || strcmp(json_string_value(json_object_get(j, "priority")), want)
        != 0)
        fail_msg("status --json %s: priority is not \"%s\":\n%s", id, want,
            out);
    assert_int_equal(json_is_false(json_object_get(j, "claimed")), !claimed);
    json_decref(j);
}

/*
 * --priority and a batch line's "priority" (README "Priorities"): each
 * task goes to its band, "Q.priority-high", "Q" or "Q.priority-low", and
 * a delayed one keeps its priority in PostgreSQL for the scheduler.
 * `workq status` and `workq list` show the priority, also of a task no
 * worker has claimed (its receipt, in a run without a key or alone with
 * one).
 */
static void
check_priority(int kind)
{
    const char *db = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(kind, "cli-prio");
    char hi[200], lo[200], id_hi[WQ_UUID_STRLEN], id_lo[WQ_UUID_STRLEN];
    struct wq_envelope env[3];
    struct wq_test_consumer *cons;
    wq_store *s;
    int rc;

    snprintf(hi, sizeof hi, "%s.priority-high", queue);
    snprintf(lo, sizeof lo, "%s.priority-low", queue);
    rc = workq(kind, db, NULL, NULL, (const char *[]){ "submit", "-q",
        queue, "-t", "job", "--priority", "high", "urgent", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    id_line(id_hi);
    rc = workq(kind, db, NULL, NULL, (const char *[]){ "submit", "-q",
        queue, "-t", "job", "--priority", "0", "whenever", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    id_line(id_lo);
    /* a line's own priority beats --priority; without one, --priority */
    rc = workq(kind, db, NULL, "{\"type\":\"job\",\"priority\":\"high\","
        "\"payload\":\"line1\"}\n{\"type\":\"job\",\"payload\":\"line2\"}\n"
        "{\"type\":\"job\",\"priority\":1,\"payload\":\"line3\"}\n",
        (const char *[]){ "submit", "--batch", "-", "-q", queue,
        "--priority", "low", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    status_priority(kind, db, id_hi, "high", 0);
    status_priority(kind, db, id_lo, "low", 0);

    cons = wq_test_consumer_open(kind, hi);
    assert_int_equal(wq_test_consumer_recv(cons, env, 2, RECV_MS), 2);
    for (int i = 0; i < 2; i++) {
        /* the envelope names the queue, not the band */
        assert_string_equal(env[i].queue, queue);
        assert_true(memcmp(env[i].payload, "urgent", 6) == 0
            || memcmp(env[i].payload, "line1", 5) == 0);
        wq_envelope_free(&env[i]);
    }
    wq_test_consumer_close(cons);
    cons = wq_test_consumer_open(kind, lo);
    assert_int_equal(wq_test_consumer_recv(cons, env, 2, RECV_MS), 2);
    for (int i = 0; i < 2; i++) {
        assert_true(memcmp(env[i].payload, "whenever", 8) == 0
            || memcmp(env[i].payload, "line2", 5) == 0);
        wq_envelope_free(&env[i]);
    }
    wq_test_consumer_close(cons);
    cons = wq_test_consumer_open(kind, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, 1, RECV_MS), 1);
    assert_memory_equal(env[0].payload, "line3", 5);
    wq_envelope_free(&env[0]);
    wq_test_consumer_close(cons);

    /* delayed: the row keeps it */
    rc = workq(kind, db, NULL, NULL, (const char *[]){ "submit", "-q",
        queue, "-t", "job", "--delay", "1h", "--key", "later-hi",
        "--priority", "high", NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    s = wq_test_pg_open(db);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE idempotency_key = 'later-hi' AND state = 'scheduled' AND "
        "priority = 2"), 1);
    wq_store_close(s);
    id_line(id_hi);
    status_priority(kind, db, id_hi, "high", 1);
    rc = workq(kind, db, NULL, NULL, (const char *[]){ "list", "-q", queue,
        NULL });
    expect(rc, 0, "list");
    if (strstr(out, " high ") == NULL || strstr(out, "PRIORITY") == NULL)
        fail_msg("list does not show the priority:\n%s", out);
    rc = workq(kind, db, NULL, NULL, (const char *[]){ "--json", "list",
        "-q", queue, NULL });
    expect(rc, 0, "list --json");
    assert_non_null(strstr(out, "\"priority\":\"high\""));

    /* with a key, the receipt is a row of its own */
    rc = workq(kind, db, NULL, NULL, (const char *[]){ "submit", "-q",
        queue, "-t", "job", "--key", "now-lo", "--priority", "low", "x",
        NULL });
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    id_line(id_lo);
    status_priority(kind, db, id_lo, "low", 0);

    /* a bad value is a usage error; a queue may not look like a band */
    rc = workq(kind, db, NULL, NULL, (const char *[]){ "submit", "-q",
        queue, "-t", "job", "--priority", "urgent", NULL });
    expect(rc, 64, "--priority urgent");
    assert_non_null(strstr(out, "want high, normal or low"));
    rc = workq(kind, db, NULL, NULL, (const char *[]){ "submit", "-q", hi,
        "-t", "job", NULL });
    if (rc == 0)
        fail_msg("a queue named like a band was accepted:\n%s", out);
    assert_non_null(strstr(out, "reserved for priority bands"));
}

static void
test_cli_submit_priority_kafka(void **state)
{
    (void)state;
    check_priority(WQ_TRANSPORT_KAFKA);
}

static void
test_cli_submit_priority_rabbitmq(void **state)
{
    (void)state;
    check_priority(WQ_TRANSPORT_RABBITMQ);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cli_submit_sources_kafka),
    cmocka_unit_test(test_cli_submit_same_key_same_id),
    cmocka_unit_test(test_cli_submit_sources_rabbitmq),
    cmocka_unit_test(test_cli_submit_batch_bad_line_kafka),
    cmocka_unit_test(test_cli_submit_batch_bad_line_rabbitmq),
    cmocka_unit_test(test_cli_submit_batch_error_positions),
    cmocka_unit_test(test_cli_submit_batch_file_json),
    cmocka_unit_test(test_cli_submit_batch_progress),
    cmocka_unit_test(test_cli_submit_usage_errors),
    cmocka_unit_test(test_cli_submit_broker_unreachable),
    cmocka_unit_test(test_cli_submit_unreachable_fast_kafka),
    cmocka_unit_test(test_cli_submit_unreachable_fast_rabbitmq),
    cmocka_unit_test(test_cli_submit_delayed),
    cmocka_unit_test(test_cli_submit_hook_kafka),
    cmocka_unit_test(test_cli_submit_hook_rabbitmq),
    cmocka_unit_test(test_cli_submit_wait_succeeded),
    cmocka_unit_test(test_cli_submit_wait_dead),
    cmocka_unit_test(test_cli_submit_wait_timeout),
    cmocka_unit_test(test_cli_submit_priority_kafka),
    cmocka_unit_test(test_cli_submit_priority_rabbitmq),
};

WQ_TEST_MAIN("cli_submit", tests)
