/*
 * cli_token.c - `workq token`: make a bearer token for the HTTP API,
 * hash one, or check a tokens file (token.h has the file's format).
 *
 * The token itself is printed once, by `new`, and never written
 * anywhere else; the tokens file gets only its sha256 line.  `hash`
 * reads the token on stdin so that it stays out of argv (ps, shell
 * history).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "token.h"

#define CMD "token"

/* A comment for the tokens file: one line of visible text. */
static int
name_ok(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

static void
print_entry(struct cli *cli, const char *token, const char *entry,
    unsigned scopes, const char *name)
{
    char sc[32], line[WQ_TOKEN_ENTRY_LEN + 32 + 256 + 8];

    snprintf(line, sizeof line, "%s %s%s%s", entry,
        wq_token_scopes_text(scopes, sc, sizeof sc), name ? " # " : "",
        name ? name : "");
    if (cli->json) {
        json_t *j = json_pack("{s:s, s:s}", "entry", line, "scopes", sc);
        char *s;

        if (token != NULL)
            json_object_set_new(j, "token", json_string(token));
        s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (s == NULL)
            abort();
        puts(s);
        free(s);
        return;
    }
    if (token != NULL)
        printf("%s\n", token);
    printf("%s\n", line);
    if (!cli->quiet && token != NULL)
        fprintf(stderr, "workq token: give the first line to the client "
            "(it is shown only now); append the second to "
            "producer.tokens_file, then reload the producer "
            "(systemctl reload workq-producer)\n");
}

/* Reads the token from stdin: its first line, without the newline. */
static int
read_token(char *buf, size_t len, size_t *n)
{
    size_t got = 0;
    int c;

    while ((c = getchar()) != EOF && c != '\n') {
        if (got + 1 >= len)
            return -1;
        buf[got++] = (char)c;
    }
    if (got > 0 && buf[got - 1] == '\r')
        got--;
    buf[got] = '\0';
    *n = got;
    return 0;
}

static int
check_file(struct cli *cli, const char *path)
{
    char err[4096];
    wq_tokens *t;
    int rc;

    if (path == NULL) {
        if ((rc = cli_config(cli)) != CLI_OK)
            return rc;
        path = cli->cfg.producer.tokens_file;
        if (path[0] == '\0') {
            cli_err(CMD, "producer.tokens_file is not set: the HTTP API "
                "takes requests without a token");
            return CLI_CONFIG;
        }
    }
    if ((rc = wq_tokens_load(path, &t, err, sizeof err)) != 0) {
        fprintf(stderr, "workq token: %s\n", err);
        return rc == WQ_EIO ? CLI_NOINPUT : CLI_CONFIG;
    }
    if (cli->json) {
        json_t *j = json_pack("{s:s, s:I, s:I}", "file", path, "tokens",
            (json_int_t)wq_tokens_count(t), "plaintext",
            (json_int_t)wq_tokens_plaintext(t));
        char *s = json_dumps(j, JSON_COMPACT);

        json_decref(j);
        if (s == NULL)
            abort();
        puts(s);
        free(s);
    } else if (!cli->quiet)
        printf("%s: %zu token%s, %zu in plaintext%s\n", path,
            wq_tokens_count(t), wq_tokens_count(t) == 1 ? "" : "s",
            wq_tokens_plaintext(t), wq_tokens_plaintext(t) > 0
            ? " (replace each by its hash: workq token hash)" : "");
    rc = wq_tokens_plaintext(t) > 0 ? CLI_NO : CLI_OK;
    wq_tokens_free(t);
    return rc;
}

static int
run(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "scopes", required_argument, NULL, 's' },
        { "name", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 },
    };
    const char *what, *name = NULL;
    char err[WQ_ERRLEN], entry[WQ_TOKEN_ENTRY_LEN];
    char tok[WQ_TOKEN_MAX + 2];
    unsigned scopes = WQ_TOKEN_SCOPES_DEFAULT;
    size_t n;
    int ch, rc;

    if (argc < 2) {
        cli_print_help(&cli_cmd_token, stderr);
        return CLI_USAGE;
    }
    what = argv[1];
    optind = 2;
    while ((ch = getopt_long(argc, argv, "s:n:", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            if (wq_token_scopes_parse(optarg, &scopes, err, sizeof err)) {
                cli_err(CMD, "--scopes: %s", err);
                return CLI_USAGE;
            }
            break;
        case 'n':
            if (!name_ok(optarg) || strlen(optarg) > 200) {
                cli_err(CMD, "--name: one line of at most 200 bytes");
                return CLI_USAGE;
            }
            name = optarg;
            break;
        default:
            return cli_bad_option(cli_cmd_token.name, "s:n:", argv);
        }
    }
    if (strcmp(what, "check") == 0) {
        if (optind + 1 < argc) {
            cli_err(CMD, "unexpected argument '%s'", argv[optind + 1]);
            return CLI_USAGE;
        }
        return check_file(cli, optind < argc ? argv[optind] : NULL);
    }
    if (optind < argc) {
        cli_err(CMD, "unexpected argument '%s'%s", argv[optind],
            strcmp(what, "hash") == 0 ? " (the token is read from stdin)"
            : "");
        return CLI_USAGE;
    }
    if (strcmp(what, "new") == 0) {
        if (wq_token_generate(tok) != 0
            || wq_token_entry(tok, strlen(tok), entry) != 0) {
            cli_err(CMD, "no random bytes for a token");
            return CLI_SOFTWARE;
        }
        print_entry(cli, tok, entry, scopes, name);
        explicit_bzero(tok, sizeof tok);
        return CLI_OK;
    }
    if (strcmp(what, "hash") == 0) {
        if (read_token(tok, sizeof tok, &n) != 0
            || (rc = wq_token_entry(tok, n, entry)) == WQ_EINVAL) {
            explicit_bzero(tok, sizeof tok);
            cli_err(CMD, "the token on stdin must be 1 to %d visible ASCII "
                "characters on one line", WQ_TOKEN_MAX);
            return CLI_DATAERR;
        }
        explicit_bzero(tok, sizeof tok);
        if (rc != 0) {
            cli_err(CMD, "cannot hash the token");
            return CLI_SOFTWARE;
        }
        print_entry(cli, NULL, entry, scopes, name);
        return CLI_OK;
    }
    cli_err(CMD, "unknown action '%s' (new, hash, check)", what);
    return CLI_USAGE;
}

const struct cli_command cli_cmd_token = {
    "token",
    "make, hash or check bearer tokens of the HTTP API",
    "NAME\n"
    "    workq token - make, hash or check bearer tokens of the HTTP API\n"
    "\n"
    "SYNOPSIS\n"
    "    workq [--json] token new [--scopes SCOPES] [--name NAME]\n"
    "    workq [--json] token hash [--scopes SCOPES] [--name NAME] < TOKEN\n"
    "    workq [--json] token check [FILE]\n"
    "\n"
    "DESCRIPTION\n"
    "    The producer's HTTP API takes \"Authorization: Bearer TOKEN\".\n"
    "    producer.tokens_file lists the accepted tokens as hashes, one a\n"
    "    line, with the scopes each grants:\n"
    "\n"
    "        sha256:<64 hex digits> submit,read   # name\n"
    "\n"
    "    new    makes a random token (256 bits, \"wq_...\") and prints it,\n"
    "           then its line for the tokens file.  The token is shown\n"
    "           only this once; the file keeps only its hash.\n"
    "    hash   reads a token on stdin (its first line) and prints its\n"
    "           line for the tokens file; use it to move a plaintext\n"
    "           token into a hash.\n"
    "    check  reads FILE (default: producer.tokens_file of the\n"
    "           configuration) as the producer would, reports every\n"
    "           error with its line, and counts the tokens still written\n"
    "           in plaintext.\n"
    "\n"
    "    The producer rereads the file on SIGHUP (systemctl reload\n"
    "    workq-producer).  To rotate a token: add the new token's line,\n"
    "    reload, give the client the new token, and once it uses it,\n"
    "    delete the old line and reload again.\n"
    "\n"
    "OPTIONS\n"
    "    -s, --scopes SCOPES  comma-separated: submit (POST tasks), read\n"
    "                         (GET tasks), admin (all of them);\n"
    "                         default submit,read\n"
    "    -n, --name NAME      a comment for the line: who holds the token\n"
    "\n"
    "OUTPUT\n"
    "    new prints the token, then the line; hash prints the line.\n"
    "    --json prints {\"token\", \"entry\", \"scopes\"} (no token for\n"
    "    hash); check prints {\"file\", \"tokens\", \"plaintext\"}.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 done; 1 check: the file still holds plaintext tokens; 64 usage\n"
    "    error; 65 hash: no valid token on stdin; 66 check: no such file;\n"
    "    78 check: the file or the configuration is invalid.\n",
    run,
};
