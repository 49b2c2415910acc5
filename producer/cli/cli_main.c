/*
 * cli_main.c - `workq`, the command-line interface: global options, the
 * command table and dispatch.  Each command lives in its own cli_<name>.c
 * with its man-style help text next to its code.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"

static const struct cli_command *const commands[] = {
    &cli_cmd_migrate,
    &cli_cmd_config,
    &cli_cmd_submit,
    &cli_cmd_status,
    &cli_cmd_list,
    &cli_cmd_retry,
    &cli_cmd_cancel,
    &cli_cmd_dlq,
    &cli_cmd_stats,
    &cli_cmd_workers,
    &cli_cmd_token,
    &cli_cmd_workflow,
};

static const char usage_text[] =
    "NAME\n"
    "    workq - submit, inspect and operate workq background tasks\n"
    "\n"
    "SYNOPSIS\n"
    "    workq [-c PATH] [--json] [--quiet] [--verbose] COMMAND [ARGS...]\n"
    "    workq help COMMAND\n"
    "    workq --version\n"
    "\n"
    "GLOBAL OPTIONS\n"
    "    -c, --config PATH   configuration file (default "
    WQ_SYSCONFDIR "/workq/workq.conf;\n"
    "                        without one, built-in defaults and WORKQ_*\n"
    "                        environment variables apply)\n"
    "    -j, --json          machine-readable JSON output\n"
    "    -q, --quiet         print only what was asked for\n"
    "    -v, --verbose       log debug messages to stderr\n"
    "    -h, --help          this page; `workq help COMMAND` for one command\n"
    "    -V, --version       print the version\n"
    "\n"
    "COMMANDS\n";

static const char exit_text[] =
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 the answer is no (e.g. the task failed); 64 usage\n"
    "    error (an unknown option is named in one line); 65 rejected\n"
    "    input; 66 no such task or file; 69 broker or PostgreSQL\n"
    "    unavailable (a broker that does not answer within\n"
    "    broker.connect_timeout; a database without the workq schema:\n"
    "    run `workq migrate`); 70 internal error; 75 timed out; 78\n"
    "    configuration error (also a listen port or broker address that\n"
    "    is not valid).\n"
    "\n"
    "ENVIRONMENT\n"
    "    WORKQ_<GROUP>_<KEY> overrides any configuration key, e.g.\n"
    "    WORKQ_POSTGRES_CONNINFO, WORKQ_TRANSPORT, WORKQ_KAFKA_BROKERS.\n";

static void
usage(FILE *f)
{
    fputs(usage_text, f);
    for (size_t i = 0; i < WQ_ARRAY_LEN(commands); i++)
        fprintf(f, "    %-10s %s\n", commands[i]->name, commands[i]->summary);
    fputs(exit_text, f);
}

void
cli_err(const char *command, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "workq %s: ", command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int
cli_bad_option(const char *command, const char *optstring, char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    char opt[3] = { '-', (char)optopt, '\0' };
    char where[64], help[64];
    int missing;

    if (strncmp(arg, "--", 2) == 0) {
        /* a long option: unknown (optopt 0), or its value is missing */
        missing = optopt != 0;
    } else {
        /* a short one, maybe in a cluster: optopt is the letter */
        missing = optopt > 0 && optopt < 128 && optopt != ':'
            && strchr(optstring, optopt) != NULL;
        arg = opt;
    }
    if (command != NULL) {
        snprintf(where, sizeof where, "workq %s", command);
        snprintf(help, sizeof help, "workq help %s", command);
    } else {
        snprintf(where, sizeof where, "workq");
        snprintf(help, sizeof help, "workq --help");
    }
    if (missing)
        fprintf(stderr, "%s: option '%s' needs a value (%s)\n", where, arg,
            help);
    else
        fprintf(stderr, "%s: unknown option '%.*s' (%s)\n", where,
            (int)strcspn(arg, "="), arg, help);
    return CLI_USAGE;
}

void
cli_print_help(const struct cli_command *c, FILE *f)
{
    fputs(c->help, f);
}

int
cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    }
    return 0;
}

int
cli_exit_code(int e)
{
    switch (e) {
    case WQ_OK:       return CLI_OK;
    case WQ_EINVAL:
    case WQ_EDECODE:
    case WQ_ETOOBIG:  return CLI_DATAERR;
    case WQ_ENOENT:   return CLI_NOINPUT;
    case WQ_ECONFIG:  return CLI_CONFIG;
    case WQ_EBROKER:
    case WQ_ESTORE:
    case WQ_ENACK:
    case WQ_EIO:      return CLI_UNAVAILABLE;
    case WQ_ETIMEOUT:
    case WQ_EAGAIN:   return CLI_TEMPFAIL;
    default:          return CLI_SOFTWARE;
    }
}

int
cli_config(struct cli *cli)
{
    static char err[WQ_CONFIG_ERRLEN];
    char lerr[WQ_ERRLEN];

    if (cli->cfg_loaded)
        return CLI_OK;
    if (wq_config_load(cli->config_path, &cli->cfg, err, sizeof err) != 0) {
        fprintf(stderr, "workq: configuration rejected:\n%s\n", err);
        return CLI_CONFIG;
    }
    cli->cfg_loaded = 1;
    /* the CLI's own output is its answer: log only warnings and errors
     * to stderr unless --verbose */
    if (wq_log_setup("workq", cli->verbose ? WQ_LOG_DEBUG :
        (cli->cfg.log.level > WQ_LOG_WARN ? cli->cfg.log.level : WQ_LOG_WARN),
        cli->cfg.log.format, NULL, lerr, sizeof lerr) != 0)
        fprintf(stderr, "workq: %s\n", lerr);
    return CLI_OK;
}

int
cli_store(struct cli *cli, wq_store **out)
{
    struct wq_store_opts so;
    char err[WQ_ERRLEN];
    int rc;

    if ((rc = cli_config(cli)) != CLI_OK)
        return rc;
    wq_config_store_opts(&cli->cfg, &so);
    if ((rc = wq_store_open_opts(&so, out, err, sizeof err)) != 0) {
        fprintf(stderr, "workq: PostgreSQL: %s\n", err);
        return cli_exit_code(rc);
    }
    return CLI_OK;
}

static const struct cli_command *
find(const char *name)
{
    for (size_t i = 0; i < WQ_ARRAY_LEN(commands); i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "json", no_argument, NULL, 'j' },
        { "quiet", no_argument, NULL, 'q' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct cli cli = { 0 };
    const struct cli_command *c;
    int ch, rc;

    /* every option error is one line of ours (cli_bad_option) */
    opterr = 0;
    /* "+": stop at the command name; its options are its own */
    while ((ch = getopt_long(argc, argv, "+c:jqvhV", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': cli.config_path = optarg; break;
        case 'j': cli.json = 1; break;
        case 'q': cli.quiet = 1; break;
        case 'v': cli.verbose = 1; break;
        case 'h': usage(stdout); return CLI_OK;
        case 'V': printf("workq %s\n", WQ_VERSION); return CLI_OK;
        default:  return cli_bad_option(NULL, "+c:jqvhV", argv);
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "workq: which command? (workq --help lists them)\n");
        return CLI_USAGE;
    }
    if (strcmp(argv[optind], "help") == 0) {
        if (optind + 1 >= argc) {
            usage(stdout);
            return CLI_OK;
        }
        if ((c = find(argv[optind + 1])) == NULL) {
            fprintf(stderr, "workq: unknown command '%s'\n", argv[optind + 1]);
            return CLI_USAGE;
        }
        cli_print_help(c, stdout);
        return CLI_OK;
    }
    if (strcmp(argv[optind], "version") == 0) {
        printf("workq %s\n", WQ_VERSION);
        return CLI_OK;
    }
    if ((c = find(argv[optind])) == NULL) {
        fprintf(stderr, "workq: unknown command '%s' (workq --help lists "
            "them)\n", argv[optind]);
        return CLI_USAGE;
    }
    if (cli_wants_help(argc - optind, argv + optind)) {
        cli_print_help(c, stdout);
        return CLI_OK;
    }
    rc = c->run(&cli, argc - optind, argv + optind);
    if (cli.cfg_loaded)
        wq_config_free(&cli.cfg);
    return rc;
}
