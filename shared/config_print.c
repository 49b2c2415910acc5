/*
 * config_print.c - writes a loaded configuration back in libconfig
 * syntax (wq_config_dump: `workq config`, secrets hidden) and the --help
 * text of every key of the table (wq_config_print_doc).  Values are
 * written and ranges described by their type's row (config_types.c);
 * this file lays out the groups and the documentation around them.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "config_impl.h"


/* Length of the group part of a key: 5 for "kafka.brokers", 0 for a
 * top-level key. */
static size_t
group_len(const char *key)
{
    const char *dot = strrchr(key, '.');

    return dot != NULL ? (size_t)(dot - key) : 0;
}

#define MAX_DEPTH 8

/* Splits the group part of key ("a.b" of "a.b.c") into components. */
static size_t
group_parts(const char *key, const char **part, int *plen)
{
    size_t n = 0, glen = key != NULL ? group_len(key) : 0, off = 0;

    while (off < glen && n < MAX_DEPTH) {
        size_t l = strcspn(key + off, ".");

        if (off + l > glen)
            l = glen - off;
        part[n] = key + off;
        plen[n++] = (int)l;
        off += l + 1;
    }
    return n;
}

/*
 * Closes the groups of `prev` that `next` is not in and opens those of
 * `next` (either may be NULL).  A blank line separates top-level blocks.
 * Returns the depth of `next`.
 */
static size_t
switch_group(FILE *fp, const char *prev, const char *next)
{
    const char *pp[MAX_DEPTH], *np[MAX_DEPTH];
    int pl[MAX_DEPTH], nl[MAX_DEPTH];
    size_t pn = group_parts(prev, pp, pl), nn = group_parts(next, np, nl);
    size_t common = 0;

    while (common < pn && common < nn && pl[common] == nl[common] &&
        memcmp(pp[common], np[common], (size_t)pl[common]) == 0)
        common++;
    for (size_t d = pn; d > common; d--)
        fprintf(fp, "%*s};\n", (int)(4 * (d - 1)), "");
    if (prev != NULL && next != NULL && common == 0 && (pn > 0 || nn > 0))
        fputc('\n', fp);
    for (size_t d = common; d < nn; d++)
        fprintf(fp, "%*s%.*s = {\n", (int)(4 * d), "", nl[d], np[d]);
    return nn;
}

void
wq_config_dump(const struct wq_config *cfg, FILE *fp)
{
    const char *prev = NULL;

    fputs("# workq effective configuration (secrets hidden)\n", fp);
    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];
        size_t depth = switch_group(fp, prev, k->key);

        fprintf(fp, "%*s%s = ", (int)(4 * depth), "", leaf(k->key));
        wq_config_put_value(fp, cfg, k, depth);
        fputs(";\n", fp);
        prev = k->key;
    }
    switch_group(fp, prev, NULL);
}

void
wq_config_print_doc(FILE *fp)
{
    char range[128], env[128], fenv[160];

    fprintf(fp, "Configuration keys.  File: %s, or --config PATH.\n"
        "WORKQ_<KEY> in the environment beats the file; durations take "
        "ms, s, m, h;\nsizes take K, M, G, T (powers of 1024).\n",
        WQ_CONFIG_DEFAULT_PATH);
    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];
        int quote = wq_config_type(k)->quoted;

        wq_config_type(k)->range(k, range, sizeof range);
        fprintf(fp, "\n  %s  (%s, default %s%s%s%s%s)\n      %s\n"
            "      env %s", k->key, range,
            quote ? "\"" : "", k->def, quote ? "\"" : "",
            (k->flags & WQ_CONFIG_REQUIRED) ? ", required" : "",
            (k->flags & WQ_CONFIG_SECRET) ? ", secret" : "", k->doc,
            wq_config_env_name(k, 0, env, sizeof env));
        if (wq_config_type(k)->env_note != NULL)
            fputs(wq_config_type(k)->env_note, fp);
        if (k->flags & WQ_CONFIG_SECRET)
            fprintf(fp, "\n      or a file: %s%s, env %s", k->key,
                WQ_CONFIG_FILE_SUFFIX,
                wq_config_env_name(k, 1, fenv, sizeof fenv));
        fputc('\n', fp);
        for (size_t j = 0; j < k->nsub; j++) {
            const struct wq_config_key *sk = &k->sub[j];

            quote = wq_config_type(sk)->quoted;
            wq_config_type(sk)->range(sk, range, sizeof range);
            fprintf(fp, "      %s[].%s  (%s, default %s%s%s%s)\n          %s\n",
                k->key, sk->key, range,
                quote ? "\"" : "", sk->def, quote ? "\"" : "",
                (sk->flags & WQ_CONFIG_REQUIRED) ? ", required" : "",
                sk->doc);
        }
    }
}
