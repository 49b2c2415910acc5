/*
 * cli.h - what the subcommands of the `workq` CLI share: the context
 * (global options, the configuration, loaded once), the exit codes, and
 * the command table entry each cli_<name>.c provides.
 *
 * Exit codes follow sysexits(3), so scripts can tell failures apart:
 *   0  success
 *   1  the operation ran and its answer is "no" (e.g. a task failed)
 *  64  usage error (EX_USAGE)
 *  65  rejected input: a malformed task, payload or file (EX_DATAERR)
 *  66  no such task or file (EX_NOINPUT)
 *  69  broker or PostgreSQL unavailable (EX_UNAVAILABLE)
 *  70  internal error (EX_SOFTWARE)
 *  75  timed out, try again (EX_TEMPFAIL)
 *  78  configuration error (EX_CONFIG)
 */
#ifndef WQ_CLI_H
#define WQ_CLI_H

#include <stdio.h>

#include "config.h"
#include "store.h"

#define CLI_OK          0
#define CLI_NO          1
#define CLI_USAGE       64
#define CLI_DATAERR     65
#define CLI_NOINPUT     66
#define CLI_UNAVAILABLE 69
#define CLI_SOFTWARE    70
#define CLI_TEMPFAIL    75
#define CLI_CONFIG      78

struct cli {
    const char *config_path;    /* --config, NULL = default path */
    int json;                   /* --json: machine-readable output */
    int quiet;                  /* --quiet */
    int verbose;                /* --verbose: debug log to stderr */
    struct wq_config cfg;
    int cfg_loaded;
};

struct cli_command {
    const char *name;
    const char *summary;        /* one line for `workq --help` */
    const char *help;           /* the man-style page: `workq help NAME` */
    int (*run)(struct cli *cli, int argc, char **argv);
};

/* Loads the configuration once (--config or the default path); on error
 * prints every error line and returns CLI_CONFIG. */
int cli_config(struct cli *cli);

/* Opens the store from the configuration; prints the reason and returns
 * CLI_UNAVAILABLE (or CLI_CONFIG) on failure. */
int cli_store(struct cli *cli, wq_store **out);

/* Maps a WQ_E* code to an exit code. */
int cli_exit_code(int wq_error);

/* Prints "workq COMMAND: message" to stderr. */
void cli_err(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Reports the option getopt_long just refused (it returned '?'; opterr
 * is 0, so getopt said nothing) in one line on stderr, naming the
 * option and where help is: "workq COMMAND: unknown option '--x' (workq
 * help COMMAND)", or "... option '--queue' needs a value ...".  command
 * NULL: the global options ("workq --help").  optstring: the one given
 * to getopt_long.  Returns CLI_USAGE.
 */
int cli_bad_option(const char *command, const char *optstring, char **argv);

/* Prints a command's help page to f. */
void cli_print_help(const struct cli_command *c, FILE *f);

/* True if argv has -h or --help before any "--". */
int cli_wants_help(int argc, char **argv);

/* The commands, each defined in its own cli_<name>.c. */
extern const struct cli_command cli_cmd_migrate;
extern const struct cli_command cli_cmd_config;
extern const struct cli_command cli_cmd_submit;
extern const struct cli_command cli_cmd_status;
extern const struct cli_command cli_cmd_list;
extern const struct cli_command cli_cmd_retry;
extern const struct cli_command cli_cmd_cancel;
extern const struct cli_command cli_cmd_dlq;
extern const struct cli_command cli_cmd_stats;
extern const struct cli_command cli_cmd_workers;
extern const struct cli_command cli_cmd_token;
extern const struct cli_command cli_cmd_workflow;

/* cli_workflow.c: submits the workflow document at path ("-": stdin)
 * and prints its id; returns an exit code. */
int cli_workflow_submit(struct cli *cli, const char *path);

/* cli_workflow.c: prints the graph of the workflow with id `id` (or of
 * the workflow a task with that id is a node of); CLI_NOINPUT, silently,
 * when there is none. */
int cli_workflow_show(struct cli *cli, wq_store *s, const char *id);

#endif
