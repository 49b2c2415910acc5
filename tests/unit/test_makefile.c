/*
 * test_makefile.c - the Makefile's targets that install packages (demo,
 * chaos, check) compile with the pkg-config flags of the packages they
 * have just installed, so they work on their first run on a machine
 * without the -dev packages.
 *
 * Each test runs `make -n TARGET` in the source tree with a fake
 * pkg-config first in PATH.  The fake one answers nothing to the make
 * that was started by hand (MAKELEVEL unset: it reads the Makefile before
 * deps has run, when the packages do not exist yet) and answers a marker
 * flag to any sub-make (started from a recipe, after the deps line).  Every
 * compile command must then carry the marker, and the deps line must come
 * before the first compile command.  `make -n` runs no recipe but those
 * that start a sub-make, so nothing is installed or built.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wq_test.h"

#define FAKE_FLAG "-I/wq-fake-pkgconfig-include"

static char out[1 << 20];

/* Writes TMPDIR/fakebin/pkg-config and returns "PATH=fakebin:$PATH". */
static const char *
fake_pkg_config_path(void)
{
    static char dir[600], path[700], env[8192];
    const char *tmp = wq_test_env("WQ_TEST_TMPDIR", ".");
    FILE *f;

    snprintf(dir, sizeof dir, "%s/fakebin", tmp);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/pkg-config", dir);
    assert_non_null(f = fopen(path, "w"));
    fputs("#!/bin/sh\n"
        "# no package exists for the make started by hand\n"
        "[ -n \"${MAKELEVEL:-}\" ] && [ \"$MAKELEVEL\" -ge 1 ] || exit 1\n"
        "case \"$1\" in\n"
        "--exists) exit 0 ;;\n"
        "--cflags) echo '" FAKE_FLAG "' ;;\n"
        "--libs) echo '-lwqfake' ;;\n"
        "esac\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0755), 0);
    snprintf(env, sizeof env, "PATH=%s:%s", dir,
        wq_test_env("PATH", "/usr/bin:/bin"));
    return env;
}

/*
 * Runs `make -n -C SOURCE BUILD=TMPDIR/build TARGET` with the fake
 * pkg-config, then checks the order of deps and compile commands and that
 * every compile command has the flags of the sub-make.
 */
static void
check_target(const char *target)
{
    static char build[700];
    const char *env[] = { fake_pkg_config_path(), NULL };
    const char *argv[] = { "/usr/bin/env", "-u", "MAKEFLAGS", "-u", "MFLAGS",
        "-u", "MAKELEVEL", "-u", "MAKEOVERRIDES", "make", "-n", "-C",
        WQ_SOURCE_DIR, build, target, NULL };
    const char *deps, *line, *first_cc = NULL;
    int rc, compiles = 0;

    snprintf(build, sizeof build, "BUILD=%s/build",
        wq_test_env("WQ_TEST_TMPDIR", "."));
    rc = wq_test_cmd(argv, env, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("make -n %s exited %d:\n%s", target, rc, out);
    deps = strstr(out, "sh tests/deps.sh");
    if (deps == NULL)
        fail_msg("make -n %s does not install packages first:\n%s", target,
            out);
    for (line = out; line != NULL && *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);

        /* a compile command: "cc ... -c shared/x.c -o BUILD/shared/x.o" */
        if (len > 0 && memmem(line, len, " -MMD ", 6) != NULL
            && memmem(line, len, " -c ", 4) != NULL) {
            compiles++;
            if (first_cc == NULL)
                first_cc = line;
            if (memmem(line, len, FAKE_FLAG, strlen(FAKE_FLAG)) == NULL)
                fail_msg("make %s compiles with the flags read before deps "
                    "ran (no " FAKE_FLAG "):\n%.*s", target, (int)len, line);
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    if (compiles == 0)
        fail_msg("make -n %s printed no compile command:\n%s", target, out);
    assert_true(deps < first_cc);
}

static void
test_makefile_demo_compiles_after_deps(void **state)
{
    (void)state;
    check_target("demo");
}

static void
test_makefile_check_compiles_after_deps(void **state)
{
    (void)state;
    check_target("check");
}

static void
test_makefile_chaos_compiles_after_deps(void **state)
{
    (void)state;
    check_target("chaos");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_makefile_demo_compiles_after_deps),
    cmocka_unit_test(test_makefile_check_compiles_after_deps),
    cmocka_unit_test(test_makefile_chaos_compiles_after_deps),
};

WQ_TEST_MAIN("makefile", tests)
