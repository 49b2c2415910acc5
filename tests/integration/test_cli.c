/*
 * test_cli.c - the `workq` binary as a user runs it: migrate against a
 * real PostgreSQL (twice: the second is a no-op), configuration errors
 * with file, line and key, usage errors, and a help page for every
 * command.  Exit codes are part of the interface and are asserted.
 */
#include <stdio.h>
#include <string.h>

#include "wq_test.h"
#include "wq_test_pg.h"

static char out[65536];

static int
workq(const char *conninfo, const char *const *args)
{
    const char *argv[16] = { wq_test_bin("workq") };
    static char env_pg[1200];
    const char *env[] = { env_pg, NULL };
    int i;

    for (i = 0; args[i] != NULL && i < 14; i++)
        argv[i + 1] = args[i];
    argv[i + 1] = NULL;
    snprintf(env_pg, sizeof env_pg, "WORKQ_POSTGRES_CONNINFO=%s",
        conninfo ? conninfo : "host=127.0.0.1 port=1 dbname=none");
    return wq_test_cmd(argv, env, NULL, out, sizeof out);
}

static void
test_cli_migrate_twice_second_is_noop(void **state)
{
    const char *db = wq_test_pg_create_db();
    wq_store *s;

    (void)state;
    assert_int_equal(workq(db, (const char *[]){ "migrate", "--status",
        NULL }), 1);
    assert_non_null(strstr(out, "schema version 0"));
    assert_int_equal(workq(db, (const char *[]){ "migrate", NULL }), 0);
    assert_non_null(strstr(out, "schema migrated from version 0 to"));
    assert_int_equal(workq(db, (const char *[]){ "migrate", NULL }), 0);
    assert_non_null(strstr(out, "schema already at version"));
    assert_int_equal(workq(db, (const char *[]){ "--json", "migrate",
        "--status", NULL }), 0);
    assert_non_null(strstr(out, "{\"version\":"));
    s = wq_test_pg_open(db);
    assert_true(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks") == 0);
    assert_true(wq_test_pg_num(s,
        "SELECT count(*) FROM workq.schema_migrations") >= 1);
    wq_store_close(s);
}

static void
test_cli_migrate_unreachable_is_unavailable(void **state)
{
    (void)state;
    assert_int_equal(workq(NULL, (const char *[]){ "migrate", NULL }), 69);
    assert_non_null(strstr(out, "PostgreSQL"));
}

static void
test_cli_config_errors_name_file_line_key(void **state)
{
    FILE *f = fopen("bad.conf", "w");

    (void)state;
    assert_non_null(f);
    fputs("transport = \"carrier-pigeon\";\n"
          "kafka = {\n  partitions = 0;\n  colour = \"blue\";\n};\n", f);
    fclose(f);
    assert_int_equal(workq(NULL, (const char *[]){ "-c", "bad.conf",
        "config", "check", NULL }), 78);
    assert_non_null(strstr(out, "bad.conf:1: transport:"));
    assert_non_null(strstr(out, "bad.conf:3: kafka.partitions:"));
    assert_non_null(strstr(out, "bad.conf:4: kafka.colour:"));
}

static void
test_cli_config_default_file_is_valid(void **state)
{
    (void)state;
    assert_int_equal(workq(NULL, (const char *[]){ "-c",
        WQ_SOURCE_DIR "/config/workq.conf", "config", "check", NULL }), 0);
    assert_non_null(strstr(out, "configuration OK"));
}

static void
test_cli_usage_errors(void **state)
{
    (void)state;
    assert_int_equal(workq(NULL, (const char *[]){ NULL }), 64);
    assert_int_equal(workq(NULL, (const char *[]){ "frobnicate", NULL }), 64);
    assert_non_null(strstr(out, "unknown command 'frobnicate'"));
    assert_int_equal(workq(NULL, (const char *[]){ "migrate", "extra",
        NULL }), 64);
}

/* True if out is exactly one line. */
static int
one_line(void)
{
    const char *nl = strchr(out, '\n');

    return nl != NULL && nl[1] == '\0';
}

/*
 * A mistyped option gets one line that names it and where help is, not
 * the whole help page: the global options and every command's.
 */
static void
test_cli_unknown_option_is_one_line(void **state)
{
    static const char *const cmds[][3] = {
        { "status", NULL }, { "list", NULL }, { "retry", NULL },
        { "cancel", NULL }, { "dlq", "list" }, { "stats", NULL },
        { "workers", NULL }, { "migrate", NULL }, { "token", "create" },
        { "submit", NULL },
    };

    (void)state;
    assert_int_equal(workq(NULL, (const char *[]){ "--jsn", "stats",
        NULL }), 64);
    if (strcmp(out, "workq: unknown option '--jsn' (workq --help)\n") != 0)
        fail_msg("--jsn: got:\n%s", out);
    assert_int_equal(workq(NULL, (const char *[]){ "-c", NULL }), 64);
    if (!one_line() || strstr(out, "'-c' needs a value") == NULL)
        fail_msg("-c: got:\n%s", out);
    assert_int_equal(workq(NULL, (const char *[]){ NULL }), 64);
    if (!one_line() || strstr(out, "workq --help") == NULL)
        fail_msg("no command: got:\n%s", out);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char help[64];
        int rc = cmds[i][1] != NULL
            ? workq(NULL, (const char *[]){ cmds[i][0], cmds[i][1],
                "--no-such-option", NULL })
            : workq(NULL, (const char *[]){ cmds[i][0], "--no-such-option",
                NULL });

        snprintf(help, sizeof help, "(workq help %s)", cmds[i][0]);
        if (rc != 64 || !one_line()
            || strstr(out, "'--no-such-option'") == NULL
            || strstr(out, help) == NULL)
            fail_msg("%s --no-such-option: exit %d, want 64 and one line "
                "naming it and %s:\n%s", cmds[i][0], rc, help, out);
    }
    assert_int_equal(workq(NULL, (const char *[]){ "list", "-q", NULL }), 64);
    if (!one_line() || strstr(out, "option '-q' needs a value") == NULL)
        fail_msg("list -q: got:\n%s", out);
}

/* Read commands on a database that was never migrated say what to do. */
static void
test_cli_unmigrated_database_says_migrate(void **state)
{
    static const char *const cmds[][3] = {
        { "stats", NULL }, { "list", NULL }, { "workers", NULL },
        { "dlq", "list" },
        { "status", "0190f1e2-0000-7000-8000-000000000000" },
    };
    const char *db = wq_test_pg_create_db();

    (void)state;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int rc = workq(db, (const char *[]){ cmds[i][0], cmds[i][1], NULL });

        if (rc != 69 || strstr(out, "run `workq migrate`") == NULL
            || !one_line())
            fail_msg("%s: exit %d, want 69 and one line saying to run "
                "`workq migrate`:\n%s", cmds[i][0], rc, out);
    }
}

/* A listen port out of range is a configuration error at load. */
static void
test_cli_config_check_rejects_bad_port(void **state)
{
    FILE *f = fopen("port.conf", "w");

    (void)state;
    assert_non_null(f);
    fputs("producer = {\n  listen = \"127.0.0.1:99999\";\n};\n", f);
    fclose(f);
    assert_int_equal(workq(NULL, (const char *[]){ "-c", "port.conf",
        "config", "check", NULL }), 78);
    assert_non_null(strstr(out, "port.conf:2: producer.listen:"));
    assert_non_null(strstr(out, "99999"));
}

static void
test_cli_every_command_has_a_help_page(void **state)
{
    char list[65536], *line, *save = NULL;
    int n = 0;

    (void)state;
    assert_int_equal(workq(NULL, (const char *[]){ "--help", NULL }), 0);
    snprintf(list, sizeof list, "%s", strstr(out, "COMMANDS\n") + 9);
    for (line = strtok_r(list, "\n", &save); line != NULL && line[0] == ' ';
        line = strtok_r(NULL, "\n", &save)) {
        char name[64];

        assert_int_equal(sscanf(line, " %63s", name), 1);
        assert_int_equal(workq(NULL, (const char *[]){ "help", name, NULL }),
            0);
        assert_non_null(strstr(out, "NAME\n"));
        assert_non_null(strstr(out, "SYNOPSIS\n"));
        assert_int_equal(workq(NULL, (const char *[]){ name, "--help",
            NULL }), 0);
        n++;
    }
    assert_true(n >= 2);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cli_migrate_twice_second_is_noop),
    cmocka_unit_test(test_cli_migrate_unreachable_is_unavailable),
    cmocka_unit_test(test_cli_config_errors_name_file_line_key),
    cmocka_unit_test(test_cli_config_default_file_is_valid),
    cmocka_unit_test(test_cli_usage_errors),
    cmocka_unit_test(test_cli_unknown_option_is_one_line),
    cmocka_unit_test(test_cli_unmigrated_database_says_migrate),
    cmocka_unit_test(test_cli_config_check_rejects_bad_port),
    cmocka_unit_test(test_cli_every_command_has_a_help_page),
};

WQ_TEST_MAIN("cli", tests)
