/*
 * cli_migrate.c - `workq migrate`: brings the PostgreSQL schema to the
 * version this binary carries, or shows where it stands.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "migrate.h"

static int
run(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "status", no_argument, NULL, 's' },
        { NULL, 0, NULL, 0 },
    };
    char err[WQ_ERRLEN];
    wq_store *store;
    int ch, status_only = 0, from = 0, to = 0, rc;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "s", opts, NULL)) != -1) {
        if (ch != 's') {
            return cli_bad_option(cli_cmd_migrate.name, "s", argv);
        }
        status_only = 1;
    }
    if (optind != argc) {
        cli_err("migrate", "unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
    if ((rc = cli_store(cli, &store)) != CLI_OK)
        return rc;
    if (status_only)
        rc = wq_migrate_version(store, &from, err, sizeof err);
    else
        rc = wq_migrate_run(store, &from, &to, err, sizeof err);
    wq_store_close(store);
    if (rc != 0) {
        cli_err("migrate", "%s", err);
        return cli_exit_code(rc);
    }
    if (status_only) {
        if (cli->json)
            printf("{\"version\":%d,\"latest\":%d}\n", from,
                wq_migrate_latest());
        else
            printf("schema version %d (this binary knows %d)\n", from,
                wq_migrate_latest());
        return from == wq_migrate_latest() ? CLI_OK : CLI_NO;
    }
    if (cli->json)
        printf("{\"from\":%d,\"to\":%d,\"applied\":%d}\n", from, to,
            to - from);
    else if (from == to)
        printf("schema already at version %d\n", to);
    else
        printf("schema migrated from version %d to %d\n", from, to);
    return CLI_OK;
}

const struct cli_command cli_cmd_migrate = {
    "migrate",
    "create or upgrade the PostgreSQL schema",
    "NAME\n"
    "    workq migrate - create or upgrade the PostgreSQL schema\n"
    "\n"
    "SYNOPSIS\n"
    "    workq [--config PATH] [--json] migrate [--status]\n"
    "\n"
    "DESCRIPTION\n"
    "    Applies, in order, every schema migration built into this binary\n"
    "    that the database (postgres.conninfo) lacks.  Each migration runs\n"
    "    in one transaction together with the row recording its version,\n"
    "    under an advisory lock, so concurrent runs are safe and a second\n"
    "    run is a no-op.  A database newer than this binary is refused.\n"
    "\n"
    "OPTIONS\n"
    "    -s, --status   only print the database's version; exit 1 if it\n"
    "                   is behind this binary\n"
    "\n"
    "EXIT STATUS\n"
    "    0 done; 1 (--status) behind; 69 PostgreSQL unavailable or a\n"
    "    migration failed; 78 configuration error.\n",
    run,
};
