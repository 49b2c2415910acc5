/*
 * fuzz_config.c - libFuzzer target for the configuration loader, through
 * wq_config_load_string (libconfig parsing, the table of keys, lists of
 * groups, durations, enums, ranges, the collected error report).
 *
 * Every input is either rejected with WQ_ECONFIG and a report whose
 * lines all look like "WHERE: ..." (and a config that frees cleanly), or
 * accepted; an accepted configuration must dump to text that loads back
 * to the same dump (the dump is what `workq config dump` prints and what
 * an operator may save), and must give a transport configuration or a
 * clean WQ_ECONFIG.
 *
 * Inputs with "@include" are skipped: an include reads a file named by
 * the input, which is file I/O, not parsing (the configuration is
 * trusted operator input; the fuzzer looks for bugs, not for files).
 * *_file secrets are read as the loader would, from whatever path the
 * input names; they are bounded reads, and no workq run uses this
 * process's environment (WORKQ_* variables are cleared first).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

extern char **environ;

#define CHECK(cond, what) do {                                              \
    if (!(cond)) {                                                          \
        fprintf(stderr, "fuzz_config: %s (%s:%d)\n", (what), __FILE__,      \
            __LINE__);                                                      \
        abort();                                                            \
    }                                                                       \
} while (0)

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    /* the loader applies WORKQ_* from the environment: none here */
    for (;;) {
        char **e;

        for (e = environ; *e != NULL; e++)
            if (strncmp(*e, "WORKQ_", 6) == 0)
                break;
        if (*e == NULL)
            break;
        {
            char name[256];
            size_t n = strcspn(*e, "=");

            snprintf(name, sizeof name, "%.*s", (int)n, *e);
            unsetenv(name);
        }
    }
    return 0;
}

static char *
dump(const struct wq_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    CHECK(f != NULL, "open_memstream");
    wq_config_dump(cfg, f);
    fclose(f);
    return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char err[WQ_CONFIG_ERRLEN];
    struct wq_config cfg, again;
    struct wq_transport_conf tc;
    char *text, *d1, *d2, terr[WQ_ERRLEN];
    int rc;

    text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    if (strstr(text, "@include") != NULL) {
        free(text);
        return 0;
    }
    rc = wq_config_load_string(text, "fuzz.conf", &cfg, err, sizeof err);
    free(text);
    if (rc != 0) {
        CHECK(rc == WQ_ECONFIG, "a failed load that is not WQ_ECONFIG");
        CHECK(err[0] != '\0', "a rejection without a report");
        CHECK(strstr(err, ": ") != NULL, "a report line without WHERE: ");
        wq_config_free(&cfg);
        return 0;
    }
    d1 = dump(&cfg);
    rc = wq_config_load_string(d1, "dump.conf", &again, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "fuzz_config: the dump does not load:\n%s\n--- "
            "dump ---\n%s\n", err, d1);
        abort();
    }
    d2 = dump(&again);
    if (strcmp(d1, d2) != 0) {
        fprintf(stderr, "fuzz_config: dump, load, dump differs:\n%s\n"
            "--- and ---\n%s\n", d1, d2);
        abort();
    }
    rc = wq_config_transport_conf(&cfg, &tc, terr, sizeof terr);
    CHECK(rc == 0 || rc == WQ_ECONFIG, "transport conf: unexpected code");
    /* twice: the second call reuses the first's strings */
    if (rc == 0)
        CHECK(wq_config_transport_conf(&cfg, &tc, terr, sizeof terr) == 0,
            "transport conf: a second call differs");
    free(d1);
    free(d2);
    wq_config_free(&again);
    wq_config_free(&cfg);
    wq_config_free(&cfg);   /* safe twice, by contract */
    return 0;
}
