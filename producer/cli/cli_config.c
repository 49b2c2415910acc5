/*
 * cli_config.c - `workq config`: check a configuration file, print the
 * effective configuration, or document every key.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int
run(struct cli *cli, int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "check";
    int rc;

    if (argc > 2) {
        cli_err("config", "unexpected argument '%s'", argv[2]);
        return CLI_USAGE;
    }
    if (strcmp(what, "keys") == 0) {
        wq_config_print_doc(stdout);
        return CLI_OK;
    }
    if (strcmp(what, "check") != 0 && strcmp(what, "dump") != 0) {
        cli_err("config", "unknown action '%s' (check, dump, keys)", what);
        return CLI_USAGE;
    }
    if ((rc = cli_config(cli)) != CLI_OK)
        return rc;
    if (strcmp(what, "dump") == 0)
        wq_config_dump(&cli->cfg, stdout);
    else if (!cli->quiet)
        printf("configuration OK\n");
    return CLI_OK;
}

const struct cli_command cli_cmd_config = {
    "config",
    "check, dump or document the configuration",
    "NAME\n"
    "    workq config - check, dump or document the configuration\n"
    "\n"
    "SYNOPSIS\n"
    "    workq [--config PATH] config [check | dump | keys]\n"
    "\n"
    "DESCRIPTION\n"
    "    check  loads the configuration (file, then WORKQ_* environment,\n"
    "           then *_file secrets) and reports every error as\n"
    "           FILE:LINE: KEY: message (the default action)\n"
    "    dump   prints the effective configuration as a valid file,\n"
    "           secrets hidden\n"
    "    keys   documents every key: type, range, default, environment\n"
    "\n"
    "EXIT STATUS\n"
    "    0 valid; 78 configuration rejected.\n",
    run,
};
