/*
 * test_migrations.c - checks the embedded SQL migrations without a
 * server: numbered 1..N without gaps, named, non-empty, and free of the
 * statements that would break migrate.c's one-transaction-per-migration
 * rule (BEGIN, COMMIT, ROLLBACK, VACUUM, CREATE INDEX CONCURRENTLY...).
 * Also checks that the task states of store.h are the ones the schema
 * allows.  The database side of migrate is tests/integration/test_store.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate.h"
#include "migrations.h"
#include "store.h"
#include "wq_test.h"

/*
 * A small SQL scanner: calls `fn` with the first word of every top-level
 * statement (upper-cased) and with every top-level word for which
 * `all_words` is set, skipping comments (-- and nested block comments),
 * quoted strings, quoted identifiers and dollar-quoted bodies, where
 * "BEGIN" is plpgsql, not a transaction.  Returns the number of
 * statements.
 */
typedef void word_fn(const char *word, int first, void *arg);

static size_t
sql_scan(const char *sql, word_fn *fn, void *arg)
{
    const char *p = sql;
    size_t statements = 0;
    int at_start = 1;

    while (*p != '\0') {
        if (p[0] == '-' && p[1] == '-') {
            p += strcspn(p, "\n");
        } else if (p[0] == '/' && p[1] == '*') {
            int depth = 1;

            for (p += 2; *p != '\0' && depth > 0; p++) {
                if (p[0] == '/' && p[1] == '*')
                    depth++, p++;
                else if (p[0] == '*' && p[1] == '/')
                    depth--, p++;
            }
        } else if (*p == '\'' || *p == '"') {
            char q = *p;
            int backslash = q == '\'' && p > sql &&
                (p[-1] == 'E' || p[-1] == 'e');

            for (p++; *p != '\0'; p++) {
                if (backslash && *p == '\\' && p[1] != '\0')
                    p++;
                else if (*p == q && p[1] == q)
                    p++;
                else if (*p == q)
                    break;
            }
            if (*p != '\0')
                p++;
            at_start = 0;
        } else if (*p == '$' && (p[1] == '$' || isalpha((unsigned char)p[1])
            || p[1] == '_')) {
            size_t n = 1 + strspn(p + 1, "abcdefghijklmnopqrstuvwxyz"
                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
            char tag[64];
            const char *end;

            if (p[n] != '$' || n + 2 > sizeof tag) {
                p++;        /* $1 parameter or stray $ */
                continue;
            }
            memcpy(tag, p, n + 1);
            tag[n + 1] = '\0';
            end = strstr(p + n + 1, tag);
            p = end != NULL ? end + n + 1 : p + strlen(p);
            at_start = 0;
        } else if (*p == ';') {
            at_start = 1;
            p++;
        } else if (isalpha((unsigned char)*p) || *p == '_') {
            char word[64];
            size_t n = 0;

            while ((isalnum((unsigned char)*p) || *p == '_') &&
                n + 1 < sizeof word)
                word[n++] = (char)toupper((unsigned char)*p++);
            while (isalnum((unsigned char)*p) || *p == '_')
                p++;
            word[n] = '\0';
            /* E'...' strings: let the quote branch see the E */
            if (*p == '\'' && n == 1 && word[0] == 'E')
                continue;
            if (at_start)
                statements++;
            fn(word, at_start, arg);
            at_start = 0;
        } else {
            p++;
        }
    }
    return statements;
}

struct forbidden {
    char found[256];
};

static void
check_word(const char *word, int first, void *arg)
{
    static const char *const starts[] = { "BEGIN", "START", "COMMIT", "END",
        "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE", "VACUUM" };
    struct forbidden *f = arg;
    size_t used = strlen(f->found);

    if (first) {
        for (size_t i = 0; i < WQ_ARRAY_LEN(starts); i++)
            if (strcmp(word, starts[i]) == 0)
                snprintf(f->found + used, sizeof f->found - used, "%s ",
                    word);
    } else if (strcmp(word, "CONCURRENTLY") == 0) {
        snprintf(f->found + used, sizeof f->found - used, "%s ", word);
    }
}

/* The forbidden words of `sql`, space-separated; "" if none. */
static const char *
forbidden_in(const char *sql, size_t *statements)
{
    static struct forbidden f;

    memset(&f, 0, sizeof f);
    *statements = sql_scan(sql, check_word, &f);
    return f.found;
}

static void
test_migrations_versions_ascend(void **state)
{
    (void)state;
    assert_true(wq_migrations_count >= 1);
    for (size_t i = 0; i < wq_migrations_count; i++) {
        if (wq_migrations[i].version != (int)i + 1)
            fail_msg("migration at position %zu has version %d, want %zu",
                i, wq_migrations[i].version, i + 1);
    }
}

static void
test_migrations_latest_is_last(void **state)
{
    (void)state;
    assert_int_equal(wq_migrate_latest(),
        wq_migrations[wq_migrations_count - 1].version);
    assert_int_equal(wq_migrate_latest(), (int)wq_migrations_count);
}

static void
test_migrations_named(void **state)
{
    (void)state;
    for (size_t i = 0; i < wq_migrations_count; i++) {
        const char *name = wq_migrations[i].name;

        assert_non_null(name);
        if (name[0] == '\0' || strspn(name,
            "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name))
            fail_msg("migration %d: bad name \"%s\" (want [a-z0-9_]+)",
                wq_migrations[i].version, name);
    }
}

static void
test_migrations_sql_is_one_transaction(void **state)
{
    (void)state;
    for (size_t i = 0; i < wq_migrations_count; i++) {
        const struct wq_migration *m = &wq_migrations[i];
        const char *bad;
        size_t statements;

        assert_non_null(m->sql);
        bad = forbidden_in(m->sql, &statements);
        if (statements == 0)
            fail_msg("migration %d (%s) has no statement", m->version,
                m->name);
        if (bad[0] != '\0')
            fail_msg("migration %d (%s) contains %s- migrate.c runs each "
                "migration in one transaction of its own", m->version,
                m->name, bad);
    }
}

/* The scanner must see what it is meant to see, and only that. */
static void
test_migrations_scanner(void **state)
{
    size_t n;

    (void)state;
    assert_string_equal(forbidden_in("BEGIN; CREATE TABLE t (a int);", &n),
        "BEGIN ");
    assert_int_equal(n, 2);
    assert_string_equal(forbidden_in("create table t (a int);\ncommit;",
        &n), "COMMIT ");
    assert_string_equal(forbidden_in("CREATE INDEX CONCURRENTLY i ON t (a)",
        &n), "CONCURRENTLY ");
    assert_string_equal(forbidden_in("start transaction", &n), "START ");
    /* comments, strings and plpgsql bodies are not statements */
    assert_string_equal(forbidden_in(
        "-- never BEGIN; here\n/* COMMIT; /* nested */ ROLLBACK; */\n"
        "COMMENT ON TABLE t IS 'BEGIN; COMMIT;';\n"
        "SELECT E'it\\'s; COMMIT', \"a;b\";\n"
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $fn$\n"
        "BEGIN\n  PERFORM 1; COMMIT;\nEND\n$fn$;\n"
        "DO $$ BEGIN NULL; END $$;", &n), "");
    assert_int_equal(n, 4);
    assert_string_equal(forbidden_in("SELECT $1; vacuum t", &n), "VACUUM ");
}

static void
test_migrations_states_match_schema(void **state)
{
    char quoted[64];

    (void)state;
    for (int i = 0; i < WQ_TASK_STATE_COUNT; i++) {
        const char *name = wq_task_state_name((enum wq_task_state)i);
        int found = 0;

        assert_non_null(name);
        assert_int_equal(wq_task_state_parse(name), i);
        snprintf(quoted, sizeof quoted, "'%s'", name);
        for (size_t k = 0; k < wq_migrations_count && !found; k++)
            found = strstr(wq_migrations[k].sql, quoted) != NULL;
        if (!found)
            fail_msg("state %s is not in any migration", name);
    }
    assert_null(wq_task_state_name((enum wq_task_state)WQ_TASK_STATE_COUNT));
    assert_int_equal(wq_task_state_parse("bogus"), WQ_EINVAL);
    assert_int_equal(wq_task_state_parse(NULL), WQ_EINVAL);
    assert_int_equal(wq_task_state_parse("Queued"), WQ_EINVAL);
    assert_true(wq_task_state_is_final(WQ_TASK_DEAD));
    assert_false(wq_task_state_is_final(WQ_TASK_RETRY_WAIT));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_migrations_versions_ascend),
    cmocka_unit_test(test_migrations_latest_is_last),
    cmocka_unit_test(test_migrations_named),
    cmocka_unit_test(test_migrations_sql_is_one_transaction),
    cmocka_unit_test(test_migrations_scanner),
    cmocka_unit_test(test_migrations_states_match_schema),
};

WQ_TEST_MAIN("migrations", tests)
