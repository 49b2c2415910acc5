/*
 * test_abi.c - libworkq.so exports the public C API and nothing else: the
 * functions declared in the public headers (shared/workq.h,
 * shared/workq_outbox.h, shared/workq_plugin.h), the global names of the
 * version script shared/libworkq.map and the defined dynamic symbols
 * of the built library (`nm -D --defined-only`) are the same three sets,
 * every export carries the version node WORKQ_0, and the soname's major
 * is that of the version the binaries print.
 *
 * The headers are read as text: a function declaration is a line at the
 * outer level (not indented, not a comment, a typedef or a preprocessor
 * line) whose first "(" follows an identifier.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wq_test.h"

#define MAXSYMS 64

struct names {
    int n;
    char name[MAXSYMS][64];
};

static char out[1 << 16];

static void
add(struct names *s, const char *name, size_t len, const char *where)
{
    if (s->n == MAXSYMS || len == 0 || len >= sizeof s->name[0])
        fail_msg("%s: cannot hold symbol \"%.*s\"", where, (int)len, name);
    for (int i = 0; i < s->n; i++)
        if (strlen(s->name[i]) == len && memcmp(s->name[i], name, len) == 0)
            return;
    memcpy(s->name[s->n], name, len);
    s->name[s->n][len] = '\0';
    s->n++;
}

static int
has(const struct names *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->name[i], name) == 0)
            return 1;
    return 0;
}

/* Fails naming each name of a that b lacks. */
static void
subset(const struct names *a, const char *aname, const struct names *b,
    const char *bname)
{
    char missing[2048] = "";

    for (int i = 0; i < a->n; i++)
        if (!has(b, a->name[i])) {
            strncat(missing, " ", sizeof missing - strlen(missing) - 1);
            strncat(missing, a->name[i], sizeof missing - strlen(missing) - 1);
        }
    if (missing[0] != '\0')
        fail_msg("in %s but not in %s:%s", aname, bname, missing);
}

static void
header_functions(const char *path, struct names *s)
{
    char *text = wq_test_read_file(path), *line, *save = NULL;

    if (text[0] == '\0')
        fail_msg("cannot read %s", path);
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        const char *paren = strchr(line, '('), *end = paren, *start;

        if (paren == NULL || !isalpha((unsigned char)line[0])
            || strncmp(line, "typedef", 7) == 0)
            continue;
        while (end > line && isspace((unsigned char)end[-1]))
            end--;
        for (start = end; start > line && (isalnum((unsigned char)start[-1])
             || start[-1] == '_'); start--)
            ;
        if (start < end)
            add(s, start, (size_t)(end - start), path);
    }
    free(text);
}

static void
map_globals(const char *path, struct names *s)
{
    char *text = wq_test_read_file(path);
    char *p = strstr(text, "global:"), *end = p ? strstr(p, "local:") : NULL;

    if (p == NULL || end == NULL)
        fail_msg("%s has no global: and local: sections", path);
    for (p += strlen("global:"); p < end;) {
        char *semi = memchr(p, ';', (size_t)(end - p));

        if (semi == NULL)
            break;
        while (isspace((unsigned char)*p))
            p++;
        add(s, p, (size_t)(semi - p), path);
        p = semi + 1;
    }
    free(text);
}

static void
test_abi_exports_public_api_only(void **state)
{
    const char *argv[] = { "/usr/bin/nm", "-D", "--defined-only", NULL,
        NULL };
    static char so[1024];
    struct names hdr = { 0 }, map = { 0 }, dyn = { 0 };
    char *line, *save = NULL;
    int rc;

    (void)state;
    header_functions(WQ_SOURCE_DIR "/shared/workq.h", &hdr);
    header_functions(WQ_SOURCE_DIR "/shared/workq_outbox.h", &hdr);
    header_functions(WQ_SOURCE_DIR "/shared/workq_plugin.h", &hdr);
    /* the reader finds declarations: the header's first and its outbox */
    assert_true(has(&hdr, "wq_strerror"));
    assert_true(has(&hdr, "wq_client_enqueue_tx"));
    map_globals(WQ_SOURCE_DIR "/shared/libworkq.map", &map);

    snprintf(so, sizeof so, "%s", wq_test_bin("libworkq.so"));
    argv[3] = so;
    rc = wq_test_cmd(argv, NULL, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("nm -D %s exited %d:\n%s", so, rc, out);
    for (line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char addr[32], type[4], name[256], *at;

        if (sscanf(line, "%31s %3s %255s", addr, type, name) != 3)
            fail_msg("nm -D: unexpected line \"%s\"", line);
        if (strcmp(type, "A") == 0 && strcmp(name, "WORKQ_0") == 0)
            continue;           /* the version node itself */
        if ((at = strstr(name, "@@")) == NULL || strcmp(at, "@@WORKQ_0") != 0)
            fail_msg("%s exports %s outside the version node WORKQ_0", so,
                name);
        add(&dyn, name, (size_t)(at - name), so);
    }
    subset(&dyn, "libworkq.so's exports", &hdr, "the public headers");
    subset(&hdr, "the public headers", &dyn, "libworkq.so's exports");
    subset(&map, "shared/libworkq.map", &hdr, "the public headers");
    subset(&hdr, "the public headers", &map, "shared/libworkq.map");
}

static void
test_abi_soname_follows_version(void **state)
{
    const char *argv[] = { "/usr/bin/readelf", "-d", NULL, NULL };
    static char so[1024];
    char want[64];
    int rc;

    (void)state;
    snprintf(so, sizeof so, "%s", wq_test_bin("libworkq.so"));
    argv[2] = so;
    rc = wq_test_cmd(argv, NULL, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("readelf -d %s exited %d:\n%s", so, rc, out);
    /* "0.9.0+g1234abc" -> libworkq.so.0 */
    snprintf(want, sizeof want, "Library soname: [libworkq.so.%.*s]",
        (int)strspn(WQ_VERSION, "0123456789"), WQ_VERSION);
    assert_contains(out, want);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_abi_exports_public_api_only),
    cmocka_unit_test(test_abi_soname_follows_version),
};

WQ_TEST_MAIN("abi", tests)
