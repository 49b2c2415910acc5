/*
 * cli_workflow.c - `workq workflow submit|show|add|close`: chains, groups
 * with a callback and batches (docs/workflows.md), through the functions
 * of workq_outbox.h on the CLI's PostgreSQL connection.  `workq submit
 * --workflow FILE` and `workq status ID` (an id that is a workflow's, or
 * a node's whose task has not started) come here too.
 *
 * A workflow is submitted to PostgreSQL, not to the broker: the nodes
 * that wait for nothing go out through workq.outbox, which
 * workq-scheduler relays, and every later step is written by the
 * transaction that records the outcome it follows.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "cli.h"
#include "cli_ops.h"
#include "textout.h"
#include "workq_outbox.h"

#define CMD "workflow"
#define DOC_MAX (64u << 20)     /* a document: 5000 tasks of 1 MiB ... */

/* Reads the file at path ("-": stdin) into *out (malloc'd, NUL after). */
static int
read_doc(const char *path, char **out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    size_t cap = 8192, n = 0, r;
    char *buf, *grown;

    *out = NULL;
    if (f == NULL) {
        cli_err(CMD, "%s: cannot open: %m", path);
        return CLI_NOINPUT;
    }
    if ((buf = malloc(cap)) == NULL)
        abort();
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            if (cap >= DOC_MAX) {
                cli_err(CMD, "%s: larger than %u MiB", path, DOC_MAX >> 20);
                free(buf);
                if (f != stdin)
                    fclose(f);
                return CLI_DATAERR;
            }
            cap *= 2;
            if ((grown = realloc(buf, cap)) == NULL)
                abort();
            buf = grown;
        }
    }
    buf[n] = '\0';
    if (f != stdin)
        fclose(f);
    *out = buf;
    return CLI_OK;
}

static const char *
str(json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));

    return s != NULL ? s : "";
}

static void
put_escaped(const char *s, size_t max)
{
    char *e = wq_text_escape_str(s, max);

    fputs(e, stdout);
    free(e);
}

/* The graph `doc` (workq.workflow_json) as a page for people. */
static void
print_graph(json_t *doc)
{
    json_t *p = json_object_get(doc, "progress"), *nodes, *n, *v;
    size_t i, k;

    printf("workflow   %s\n", str(doc, "id"));
    printf("kind       %s\n", str(doc, "kind"));
    if (json_object_get(doc, "name") != NULL) {
        fputs("name       ", stdout);
        put_escaped(str(doc, "name"), 256);
        fputs("\n", stdout);
    }
    printf("state      %s\n", str(doc, "state"));
    printf("created    %s\n", str(doc, "created_at"));
    printf("progress   %lld tasks: %lld succeeded, %lld dead, %lld "
        "cancelled, %lld pending\n",
        (long long)json_integer_value(json_object_get(p, "total")),
        (long long)json_integer_value(json_object_get(p, "succeeded")),
        (long long)json_integer_value(json_object_get(p, "dead")),
        (long long)json_integer_value(json_object_get(p, "cancelled")),
        (long long)json_integer_value(json_object_get(p, "pending")));
    printf("\n%-5s %-10s %-9s %-36s %-20s %s\n", "NODE", "STATE", "ROLE",
        "TASK", "TYPE", "AFTER");
    nodes = json_object_get(doc, "nodes");
    json_array_foreach(nodes, i, n) {
        json_t *parents = json_object_get(n, "parents");
        char role[24];
        int printed = 0;

        snprintf(role, sizeof role, "%s", str(n, "role"));
        if (strcmp(role, "callback") == 0
            && json_object_get(n, "when") != NULL)
            snprintf(role, sizeof role, "cb:%s", str(n, "when"));
        printf("%-5lld %-10s %-9s %-36s ",
            (long long)json_integer_value(json_object_get(n, "node")),
            str(n, "state"), role, str(n, "task_id"));
        put_escaped(str(n, "type"), 20);
        printf("%*s", (int)(strlen(str(n, "type")) < 20
            ? 21 - strlen(str(n, "type")) : 1), "");
        json_array_foreach(parents, k, v) {
            if (k > 0 && k == 8) {
                printf(",... (%zu)", json_array_size(parents));
                break;
            }
            printf("%s%lld", k > 0 ? "," : "", (long long)json_integer_value(v));
            printed = 1;
        }
        if (!printed)
            fputs("-", stdout);
        fputs("\n", stdout);
        if (json_object_get(n, "name") != NULL) {
            fputs("      name: ", stdout);
            put_escaped(str(n, "name"), 128);
            fputs("\n", stdout);
        }
        if (json_object_get(n, "error") != NULL) {
            fputs("      error: ", stdout);
            put_escaped(str(n, "error"), 512);
            fputs("\n", stdout);
        }
    }
}

int
cli_workflow_show(struct cli *cli, wq_store *s, const char *id)
{
    char err[WQ_ERRLEN], *text = NULL;
    json_t *doc;
    int rc;

    if ((rc = wq_client_workflow_get(wq_store_libpq(s), id, &text, err,
        sizeof err)) != 0) {
        if (rc != WQ_ENOENT)
            cli_err(CMD, "%s", err);
        return cli_exit_code(rc);
    }
    if (cli->json) {
        printf("%s\n", text);
        free(text);
        return CLI_OK;
    }
    if ((doc = json_loads(text, 0, NULL)) == NULL) {
        free(text);
        cli_err(CMD, "the server's answer is not JSON");
        return CLI_SOFTWARE;
    }
    print_graph(doc);
    json_decref(doc);
    free(text);
    return CLI_OK;
}

int
cli_workflow_submit(struct cli *cli, const char *path)
{
    char err[WQ_ERRLEN], id[WQ_CLIENT_ID_LEN], *doc;
    wq_store *s;
    int rc;

    if ((rc = read_doc(path, &doc)) != CLI_OK)
        return rc;
    if ((rc = cli_store(cli, &s)) != CLI_OK) {
        free(doc);
        return rc;
    }
    rc = wq_client_workflow_submit_tx(wq_store_libpq(s), doc, id, err,
        sizeof err);
    free(doc);
    wq_store_close(s);
    if (rc != 0) {
        cli_err(CMD, "%s", err);
        return cli_exit_code(rc);
    }
    if (cli->json)
        printf("{\"id\":\"%s\"}\n", id);
    else
        printf("%s\n", id);
    return CLI_OK;
}

static int
add(struct cli *cli, const char *id, const char *path)
{
    char err[WQ_ERRLEN], *doc, *ids = NULL;
    wq_store *s;
    json_t *arr, *v;
    size_t i;
    int rc;

    if ((rc = read_doc(path, &doc)) != CLI_OK)
        return rc;
    if ((rc = cli_store(cli, &s)) != CLI_OK) {
        free(doc);
        return rc;
    }
    rc = wq_client_workflow_add_tx(wq_store_libpq(s), id, doc, &ids, err,
        sizeof err);
    free(doc);
    wq_store_close(s);
    if (rc != 0) {
        cli_err(CMD, "%s", err);
        return rc == WQ_ECLOSED ? CLI_NO : cli_exit_code(rc);
    }
    if (cli->json) {
        printf("{\"ids\":%s}\n", ids);
    } else if ((arr = json_loads(ids, 0, NULL)) != NULL) {
        json_array_foreach(arr, i, v)
            printf("%s\n", json_string_value(v));
        json_decref(arr);
    }
    free(ids);
    return CLI_OK;
}

static int
close_batch(struct cli *cli, const char *id)
{
    char err[WQ_ERRLEN];
    wq_store *s;
    int rc, closed = 0;

    if ((rc = cli_store(cli, &s)) != CLI_OK)
        return rc;
    rc = wq_client_workflow_close_tx(wq_store_libpq(s), id, &closed, err,
        sizeof err);
    wq_store_close(s);
    if (rc != 0) {
        cli_err(CMD, "%s", err);
        return cli_exit_code(rc);
    }
    if (cli->json)
        printf("{\"id\":\"%s\",\"closed\":%s}\n", id,
            closed ? "true" : "false");
    else if (!cli->quiet)
        printf(closed ? "closed %s\n" : "%s was closed already\n", id);
    return CLI_OK;
}

static int
run(struct cli *cli, int argc, char **argv)
{
    const char *verb;
    wq_store *s;
    int rc;

    if (argc < 2) {
        cli_err(CMD, "give submit, show, add or close (workq help workflow)");
        return CLI_USAGE;
    }
    verb = argv[1];
    if (strcmp(verb, "submit") == 0 && argc == 3)
        return cli_workflow_submit(cli, argv[2]);
    if (strcmp(verb, "show") == 0 && argc == 3) {
        if ((rc = cli_check_id(CMD, argv[2])) != CLI_OK)
            return rc;
        if ((rc = cli_store(cli, &s)) != CLI_OK)
            return rc;
        rc = cli_workflow_show(cli, s, argv[2]);
        wq_store_close(s);
        if (rc == CLI_NOINPUT)
            cli_err(CMD, "%s: no workflow has this id, nor a task of one",
                argv[2]);
        return rc;
    }
    if (strcmp(verb, "add") == 0 && argc == 4) {
        if ((rc = cli_check_id(CMD, argv[2])) != CLI_OK)
            return rc;
        return add(cli, argv[2], argv[3]);
    }
    if (strcmp(verb, "close") == 0 && argc == 3) {
        if ((rc = cli_check_id(CMD, argv[2])) != CLI_OK)
            return rc;
        return close_batch(cli, argv[2]);
    }
    cli_err(CMD, "unknown verb or wrong arguments: '%s' (workq help "
        "workflow)", verb);
    return CLI_USAGE;
}

const struct cli_command cli_cmd_workflow = {
    "workflow",
    "submit and show chains, groups and batches of tasks",
    "NAME\n"
    "    workq workflow - chains, groups with a callback, batches\n"
    "\n"
    "SYNOPSIS\n"
    "    workq [--json] workflow submit FILE|-\n"
    "    workq [--json] workflow show ID\n"
    "    workq [--json] workflow add ID FILE|-\n"
    "    workq [--json] workflow close ID\n"
    "\n"
    "DESCRIPTION\n"
    "    A workflow is a JSON document (docs/workflows.md):\n"
    "      chain: each step runs once the step before it succeeded, with\n"
    "        that step's result as its payload (unless it gives a\n"
    "        payload of its own); a dead step cancels the rest, with\n"
    "        the reason.\n"
    "          {\"queue\":\"img\",\"chain\":[{\"type\":\"resize\",\n"
    "           \"payload\":\"a.png\"},{\"type\":\"upload\"}]}\n"
    "      group: its tasks run in parallel; the callback runs once when\n"
    "        all have ended (\"callback_when\": \"success\", the default:\n"
    "        only if all succeeded, else it is cancelled; \"complete\":\n"
    "        whatever they ended as), with their outcomes as payload.\n"
    "          {\"queue\":\"img\",\"group\":[{\"type\":\"a\"},{\"type\":\"b\"}],\n"
    "           \"callback\":{\"type\":\"report\"},\"callback_when\":\"complete\"}\n"
    "      batch: a named set of tasks with optional \"on_success\" and\n"
    "        \"on_complete\" callbacks; \"open\": true keeps it open for\n"
    "        `workflow add` until `workflow close`.\n"
    "          {\"queue\":\"img\",\"batch\":\"nightly\",\"tasks\":[...],\n"
    "           \"on_complete\":{\"type\":\"done\"},\"open\":true}\n"
    "    A task is {\"type\", \"queue\", \"payload\" or \"payload_base64\",\n"
    "    \"max_attempts\", \"headers\", \"name\"}; the document's \"queue\" is\n"
    "    the default.  \"key\" on the document makes the submit idempotent:\n"
    "    the same key answers the first workflow's id.\n"
    "\n"
    "    submit stores the workflow in PostgreSQL and prints its id; the\n"
    "    tasks that wait for nothing are published by workq-scheduler\n"
    "    (the outbox), every later step by the transaction that records\n"
    "    the outcome it follows: each runs once.  `workq submit\n"
    "    --workflow FILE` is the same.\n"
    "\n"
    "    show prints the graph: kind, state (open, running, succeeded,\n"
    "    failed), progress (tasks total, succeeded, dead, cancelled,\n"
    "    pending) and each node with its state, task id, type, the nodes\n"
    "    it waits for and its error or the reason it was cancelled.  ID\n"
    "    may be the workflow's or any of its tasks'.  `workq status ID`\n"
    "    shows it too.  --json prints the object of GET /v1/workflows/ID.\n"
    "\n"
    "    add starts more tasks (a JSON array of tasks) in a batch that is\n"
    "    open or still has tasks running, and prints their ids; its\n"
    "    callbacks then wait for them too.  close closes an open batch:\n"
    "    its callbacks run once its tasks have ended.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 done; 1 add: the batch takes no more tasks; 64 usage error;\n"
    "    65 invalid document; 66 no such workflow or file; 69 PostgreSQL\n"
    "    unavailable; 78 configuration error.\n",
    run,
};
