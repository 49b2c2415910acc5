/*
 * config.c - loads struct wq_config from defaults, a libconfig file,
 * *_file secrets and WORKQ_* environment variables, all driven by the
 * table of config_table.c (see config.h).
 *
 * A load walks the libconfig tree once, in file order: each setting is
 * matched against the table (an unknown one is an error with a hint),
 * converted and copied into the struct, so nothing points into libconfig
 * once config_destroy() ran.  Problems do not stop the walk; each becomes
 * one line "FILE:LINE: KEY: message" in a list that is joined into the
 * caller's err buffer at the end.  Then secrets named by *_file settings
 * are read, then the environment is applied, with the same conversions as
 * the table's defaults (one string parser for both).
 *
 * Converting, checking, writing and freeing a value is its type's
 * business (config_types.c, one row per type); --help text and dumps are
 * written by config_print.c.  This file also starts the transport
 * configuration (wq_config_transport_conf), whose broker-specific part
 * each backend builds from its own rows (transport.h); the strings they
 * build are kept by the config (wq_config_keep) until wq_config_free.
 *
 * Allocation uses alloc.h (abort on exhaustion): a process that cannot
 * allocate its configuration cannot run anyway.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libconfig.h>

#include "alloc.h"
#include "config.h"
#include "config_impl.h"
#include "log.h"
#include "redact.h"
#include "secfile.h"

#define ENV_PREFIX     "WORKQ_"
#define SECRET_MAX     65536    /* bytes in a secret file */
#define MSG_MAX        512      /* bytes in one message before its prefix */

/* ---- collected errors ---------------------------------------------------- */

struct errs {
    char **v;
    size_t n, cap;
};

static void
errs_push(struct errs *e, char *line)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->v = xreallocarray(e->v, e->cap, sizeof *e->v);
    }
    e->v[e->n++] = line;
}

/* Adds "WHERE: KEY: message"; WHERE is "FILE:LINE" or "environment X". */
static void WQ_PRINTFLIKE(4, 5)
errs_add(struct errs *e, const char *where, const char *key,
    const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* a message may quote a value: never a password inside it */
    wq_redact_inplace(msg, sizeof msg);
    if (key != NULL)
        errs_push(e, xasprintf("%s: %s: %s", where, key, msg));
    else
        errs_push(e, xasprintf("%s: %s", where, msg));
}

/* "FILE:LINE" of a libconfig setting, into buf. */
static const char *
setting_where(const config_setting_t *s, const char *path, char *buf,
    size_t len)
{
    const char *file = config_setting_source_file(s);

    snprintf(buf, len, "%s:%u", file != NULL ? file : path,
        (unsigned)config_setting_source_line(s));
    return buf;
}

/*
 * Joins the lines into err with '\n'.  When they do not fit, whole lines
 * are kept and a last line says how many were left out.
 */
static void
errs_format(const struct errs *e, char *err, size_t errlen)
{
    size_t used = 0, i;
    char tail[64];

    if (err == NULL || errlen == 0)
        return;
    err[0] = '\0';
    for (i = 0; i < e->n; i++) {
        size_t need = strlen(e->v[i]) + (i > 0);
        /* keep room for the "and N more" line unless this is the last */
        size_t reserve = i + 1 < e->n ? sizeof tail : 0;

        if (used + need + reserve >= errlen)
            break;
        if (i > 0)
            err[used++] = '\n';
        memcpy(err + used, e->v[i], need - (i > 0));
        used += need - (i > 0);
        err[used] = '\0';
    }
    if (i == 0 && e->n > 0) {
        /* not even one line fits: cut the first */
        snprintf(err, errlen, "%s", e->v[0]);
    } else if (i < e->n) {
        snprintf(tail, sizeof tail, "\n... and %zu more error%s", e->n - i,
            e->n - i == 1 ? "" : "s");
        if (used + strlen(tail) < errlen)
            memcpy(err + used, tail, strlen(tail) + 1);
    }
}

static void
errs_free(struct errs *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
    memset(e, 0, sizeof *e);
}

/* ---- the table ----------------------------------------------------------- */

static const struct wq_config_key *
find_key(const char *key)
{
    for (size_t i = 0; i < wq_config_nkeys; i++)
        if (strcmp(wq_config_keys[i].key, key) == 0)
            return &wq_config_keys[i];
    return NULL;
}

/* True if some key lies inside group `path` ("kafka" for "kafka.x"). */
static int
is_group(const char *path)
{
    size_t len = strlen(path);

    for (size_t i = 0; i < wq_config_nkeys; i++)
        if (strncmp(wq_config_keys[i].key, path, len) == 0 &&
            wq_config_keys[i].key[len] == '.')
            return 1;
    return 0;
}

/* For "postgres.password_file", the SECRET row "postgres.password". */
static const struct wq_config_key *
secret_of_file_key(const char *path)
{
    size_t len = strlen(path), slen = strlen(WQ_CONFIG_FILE_SUFFIX);
    char base[256];
    const struct wq_config_key *k;

    if (len <= slen || len - slen >= sizeof base ||
        strcmp(path + len - slen, WQ_CONFIG_FILE_SUFFIX) != 0)
        return NULL;
    memcpy(base, path, len - slen);
    base[len - slen] = '\0';
    k = find_key(base);
    return k != NULL && (k->flags & WQ_CONFIG_SECRET) ? k : NULL;
}

/* "WORKQ_KAFKA_BROKERS" (+ "_FILE" if `file`), into buf. */
const char *
wq_config_env_name(const struct wq_config_key *k, int file, char *buf,
    size_t len)
{
    size_t n = 0;
    const char *p;

    n = (size_t)snprintf(buf, len, "%s", ENV_PREFIX);
    for (p = k->key; *p != '\0' && n + 1 < len; p++)
        buf[n++] = *p == '.' || *p == '-' ? '_' :
            (char)((*p >= 'a' && *p <= 'z') ? *p - 'a' + 'A' : *p);
    buf[n] = '\0';
    if (file)
        snprintf(buf + n, len - n, "_FILE");
    return buf;
}

/* ---- did you mean -------------------------------------------------------- */

static size_t
edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[128], i, j;

    if (la >= WQ_ARRAY_LEN(row) || lb >= WQ_ARRAY_LEN(row))
        return SIZE_MAX;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t up = row[j], best;

            best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/*
 * The known key closest to `path`, into buf: within a few edits (also of
 * a secret's KEY_file), or with the same leaf name in another group
 * ("worker.prefetch" -> "rabbitmq.prefetch").  Returns 0 if none is close.
 */
static int
suggest(const char *path, char *buf, size_t len)
{
    size_t best = SIZE_MAX, limit = strlen(path) / 4;
    char cand[160];

    if (limit < 2)
        limit = 2;
    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];

        for (int file = 0; file <= !!(k->flags & WQ_CONFIG_SECRET); file++) {
            size_t d;

            snprintf(cand, sizeof cand, "%s%s", k->key,
                file ? WQ_CONFIG_FILE_SUFFIX : "");
            if ((d = edit_distance(path, cand)) < best) {
                best = d;
                snprintf(buf, len, "%s", cand);
            }
        }
    }
    if (best <= limit)
        return 1;
    for (size_t i = 0; i < wq_config_nkeys; i++)
        if (strcmp(leaf(path), leaf(wq_config_keys[i].key)) == 0) {
            snprintf(buf, len, "%s", wq_config_keys[i].key);
            return 1;
        }
    return 0;
}

/* ---- secrets ------------------------------------------------------------- */

/*
 * Reads a secret file whole, without trailing newlines.  Returns a new
 * string, or NULL with a message in msg.
 */
static char *
read_secret(const char *path, char *msg, size_t len)
{
    char *buf = xmalloc(SECRET_MAX + 1);
    size_t n = 0, got;
    FILE *fp;

    if ((fp = fopen(path, "re")) == NULL) {
        snprintf(msg, len, "cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    if (wq_secfile_check(fileno(fp), path, "secret file", 1, msg, len)
        != 0) {
        fclose(fp);
        goto fail;
    }
    while ((got = fread(buf + n, 1, SECRET_MAX + 1 - n, fp)) > 0)
        n += got;
    if (ferror(fp)) {
        snprintf(msg, len, "cannot read %s: %s", path, strerror(errno));
        fclose(fp);
        goto fail;
    }
    fclose(fp);
    if (n > SECRET_MAX) {
        snprintf(msg, len, "%s is larger than %d bytes", path, SECRET_MAX);
        goto fail;
    }
    if (memchr(buf, '\0', n) != NULL) {
        snprintf(msg, len, "%s contains a NUL byte", path);
        goto fail;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    return buf;
fail:
    explicit_bzero(buf, SECRET_MAX + 1);
    free(buf);
    return NULL;
}

/* ---- lists of groups ----------------------------------------------------- */

/* The key of k's own table named `name`, or NULL. */
static const struct wq_config_key *
find_sub(const struct wq_config_key *k, const char *name)
{
    for (size_t i = 0; i < k->nsub; i++)
        if (strcmp(k->sub[i].key, name) == 0)
            return &k->sub[i];
    return NULL;
}

/*
 * groups_load reads the libconfig list of groups `s` into the field of k
 * (a GROUPS row) in cfg: each element starts from the defaults of k's own
 * table, remembers where it was written and takes the settings of its
 * group.  Every problem becomes one line in e ("FILE:LINE:
 * handlers[2].kind: ..."); if there is any, the field keeps its old
 * value.  `path` names the source when libconfig knows no file.
 */
static void
groups_load(void *cfg, const struct wq_config_key *k,
    const config_setting_t *s, const char *path, struct errs *e)
{
    struct wq_config_groups g = { NULL, 0 };
    int type = config_setting_type(s), n;
    size_t nerr = e->n;
    char where[300], cwhere[300], name[128], msg[MSG_MAX];

    setting_where(s, path, where, sizeof where);
    if (type != CONFIG_TYPE_LIST && (type != CONFIG_TYPE_ARRAY
        || config_setting_length(s) != 0)) {
        errs_add(e, where, k->key, "expected %s, got %s",
            wq_config_type(k)->expected, wq_config_libconfig_type_name(type));
        return;
    }
    n = config_setting_length(s);
    g.v = n > 0 ? xcalloc((size_t)n, k->elem_size) : NULL;
    g.n = (size_t)n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *el = config_setting_get_elem(s, (unsigned)i);
        char *ep = wq_config_group_elem(k, &g, (size_t)i);
        int m;

        for (size_t j = 0; j < k->nsub; j++)
            if (wq_config_set_from_text(ep, &k->sub[j], k->sub[j].def, msg,
                sizeof msg) != 0) {
                fprintf(stderr, "workq: bad default of %s.%s: %s\n", k->key,
                    k->sub[j].key, msg);
                abort();
            }
        setting_where(el, path, where, sizeof where);
        *(char **)(ep + k->where_offset) = xstrdup(where);
        snprintf(name, sizeof name, "%s[%d]", k->key, i + 1);
        if (!config_setting_is_group(el)) {
            errs_add(e, where, name, "expected a group { ... }, got %s",
                wq_config_libconfig_type_name(config_setting_type(el)));
            continue;
        }
        m = config_setting_length(el);
        for (int j = 0; j < m; j++) {
            const config_setting_t *c = config_setting_get_elem(el,
                (unsigned)j);
            const char *cname = config_setting_name(c);
            const struct wq_config_key *sk = find_sub(k, cname);
            char full[300];

            snprintf(full, sizeof full, "%s.%s", name, cname);
            setting_where(c, path, cwhere, sizeof cwhere);
            if (sk == NULL) {
                const char *best = NULL;
                size_t bd = 3;

                for (size_t q = 0; q < k->nsub; q++) {
                    size_t d = edit_distance(cname, k->sub[q].key);

                    if (d < bd) {
                        bd = d;
                        best = k->sub[q].key;
                    }
                }
                if (best != NULL)
                    errs_add(e, cwhere, full,
                        "unknown key (did you mean %s?)", best);
                else
                    errs_add(e, cwhere, full, "unknown key");
            } else if (wq_config_set_from_setting(ep, sk, c, msg,
                sizeof msg) != 0) {
                errs_add(e, cwhere, full, "%s", msg);
            }
        }
        for (size_t j = 0; j < k->nsub; j++) {
            const struct wq_config_key *sk = &k->sub[j];

            if ((sk->flags & WQ_CONFIG_REQUIRED) && sk->type ==
                WQ_CONFIG_STRING && (*(char **)field(ep, sk))[0] == '\0')
                errs_add(e, where, name, "%s is required", sk->key);
        }
    }
    if (e->n > nerr) {
        wq_config_groups_free(k, &g);
        return;
    }
    wq_config_groups_free(k, field(cfg, k));
    *(struct wq_config_groups *)field(cfg, k) = g;
}

/* A list of groups written as text (a default, an environment variable)
 * in libconfig syntax: "( { type = \"x\"; }, { ... } )"; "" is empty. */
int
wq_config_groups_from_text(void *cfg, const struct wq_config_key *k,
    const char *s, char *msg, size_t len)
{
    struct errs e = { NULL, 0, 0 };
    char src[160];
    config_t lc;
    char *text;
    int rc = 0;

    if (s[strspn(s, " \t\n")] == '\0') {
        wq_config_groups_free(k, field(cfg, k));
        return 0;
    }
    wq_config_env_name(k, 0, src, sizeof src);
    memmove(src + strlen("environment "), src, strlen(src) + 1);
    memcpy(src, "environment ", strlen("environment "));
    config_init(&lc);
    text = xasprintf("v = %s;", s);
    if (config_read_string(&lc, text) != CONFIG_TRUE) {
        snprintf(msg, len, "not %s: %s", wq_config_type(k)->expected,
            config_error_text(&lc) ? config_error_text(&lc)
            : "syntax error");
        rc = -1;
    } else {
        groups_load(cfg, k, config_lookup(&lc, "v"), src, &e);
        if (e.n > 0) {
            snprintf(msg, len, "%s%s", e.v[0], e.n > 1 ? " (and more)" : "");
            rc = -1;
        }
    }
    free(text);
    config_destroy(&lc);
    errs_free(&e);
    return rc;
}

/* ---- loading ------------------------------------------------------------- */

/* What the file said about one SECRET key. */
struct secret_state {
    char value_where[300];      /* "FILE:LINE" of a non-empty value, or "" */
    char file_where[300];       /* "FILE:LINE" of KEY_file, or "" */
    char *file;                 /* KEY_file's path (non-empty) */
};

struct load {
    struct wq_config *cfg;
    const char *path;
    struct errs errs;
    struct secret_state *secrets;   /* one per table row */
};

static void
walk(struct load *ld, const config_setting_t *group, const char *prefix)
{
    int n = config_setting_length(group);

    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(group,
            (unsigned)i);
        const char *name = config_setting_name(s);
        const struct wq_config_key *k;
        char *path, where[300], msg[MSG_MAX], hint[160];

        if (name == NULL)
            continue;
        path = prefix != NULL ? xasprintf("%s.%s", prefix, name)
            : xstrdup(name);
        setting_where(s, ld->path, where, sizeof where);
        if ((k = find_key(path)) != NULL && k->type == WQ_CONFIG_GROUPS) {
            groups_load(ld->cfg, k, s, ld->path, &ld->errs);
        } else if (k != NULL) {
            if (wq_config_set_from_setting(ld->cfg, k, s, msg, sizeof msg) != 0)
                errs_add(&ld->errs, where, path, "%s", msg);
            else if ((k->flags & WQ_CONFIG_SECRET) &&
                (*(char **)field(ld->cfg, k))[0] != '\0')
                snprintf(ld->secrets[k - wq_config_keys].value_where,
                    sizeof ld->secrets[0].value_where, "%s", where);
        } else if (is_group(path)) {
            if (config_setting_is_group(s))
                walk(ld, s, path);
            else
                errs_add(&ld->errs, where, path,
                    "expected a group { ... }, got %s",
                    wq_config_libconfig_type_name(config_setting_type(s)));
        } else if ((k = secret_of_file_key(path)) != NULL) {
            struct secret_state *st = &ld->secrets[k - wq_config_keys];

            if (config_setting_type(s) != CONFIG_TYPE_STRING)
                errs_add(&ld->errs, where, path,
                    "expected a string (a file name), got %s",
                    wq_config_libconfig_type_name(config_setting_type(s)));
            else if (config_setting_get_string(s)[0] != '\0') {
                free(st->file);
                st->file = xstrdup(config_setting_get_string(s));
                snprintf(st->file_where, sizeof st->file_where, "%s",
                    where);
            }
        } else if (suggest(path, hint, sizeof hint)) {
            errs_add(&ld->errs, where, path,
                "unknown key (did you mean %s?)", hint);
        } else {
            errs_add(&ld->errs, where, path, "unknown key");
        }
        free(path);
    }
}

/* Walks what libconfig parsed (ok), or records why it could not. */
static void
read_parsed(struct load *ld, config_t *lc, int ok, const char *path)
{
    char where[300];

    if (ok) {
        walk(ld, config_root_setting(lc), NULL);
    } else if (config_error_type(lc) == CONFIG_ERR_FILE_IO) {
        errs_add(&ld->errs, path, NULL, "cannot read: %s",
            config_error_text(lc) ? config_error_text(lc) : "I/O");
    } else {
        snprintf(where, sizeof where, "%s:%d",
            config_error_file(lc) ? config_error_file(lc) : path,
            config_error_line(lc));
        errs_add(&ld->errs, where, NULL, "%s",
            config_error_text(lc) ? config_error_text(lc) : "syntax error");
    }
}

static void
read_file(struct load *ld, const char *path)
{
    config_t lc;
    struct stat st;
    char *dir, *slash;
    FILE *fp;

    /* open it once first: libconfig reports only "file I/O error" */
    if ((fp = fopen(path, "re")) == NULL) {
        errs_add(&ld->errs, path, NULL, "cannot read: %s", strerror(errno));
        return;
    }
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(fp);
        errs_add(&ld->errs, path, NULL, "cannot read: %s",
            strerror(EISDIR));
        return;
    }
    fclose(fp);
    config_init(&lc);
    /* @include "x.conf" is relative to the including file */
    dir = xstrdup(path);
    if ((slash = strrchr(dir, '/')) != NULL) {
        slash[slash == dir] = '\0';
        config_set_include_dir(&lc, dir);
    }
    free(dir);
    read_parsed(ld, &lc, config_read_file(&lc, path) == CONFIG_TRUE, path);
    config_destroy(&lc);
}

/* A configuration as text, named `name` in errors (wq_config_load_string). */
static void
read_string(struct load *ld, const char *text, const char *name)
{
    config_t lc;

    config_init(&lc);
    read_parsed(ld, &lc, config_read_string(&lc, text) == CONFIG_TRUE, name);
    config_destroy(&lc);
}

/* Secrets named by KEY_file in the config file. */
static void
apply_file_secrets(struct load *ld)
{
    char msg[MSG_MAX];

    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];
        struct secret_state *st = &ld->secrets[i];
        char *fkey, *v;

        if (st->file == NULL)
            continue;
        fkey = xasprintf("%s%s", k->key, WQ_CONFIG_FILE_SUFFIX);
        if (st->value_where[0] != '\0')
            errs_add(&ld->errs, st->file_where, fkey,
                "both %s (at %s) and %s are set; keep one", leaf(k->key),
                st->value_where, leaf(fkey));
        else if ((v = read_secret(st->file, msg, sizeof msg)) == NULL)
            errs_add(&ld->errs, st->file_where, fkey, "%s", msg);
        else {
            wq_config_set_string(ld->cfg, k, v);
            wipe_free(v);
        }
        free(fkey);
    }
}

static void
apply_env(struct load *ld)
{
    char name[128], fname[160], where[200], msg[MSG_MAX];

    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];
        const char *v, *f = NULL;
        char *secret;

        wq_config_env_name(k, 0, name, sizeof name);
        v = getenv(name);
        if (k->flags & WQ_CONFIG_SECRET) {
            wq_config_env_name(k, 1, fname, sizeof fname);
            f = getenv(fname);
            if (f != NULL && f[0] == '\0')
                f = NULL;
        }
        if (v != NULL && f != NULL && v[0] != '\0') {
            snprintf(where, sizeof where, "environment %s", fname);
            errs_add(&ld->errs, where, k->key,
                "both %s and %s are set; keep one", name, fname);
            continue;
        }
        if (f != NULL) {
            snprintf(where, sizeof where, "environment %s", fname);
            if ((secret = read_secret(f, msg, sizeof msg)) == NULL)
                errs_add(&ld->errs, where, k->key, "%s", msg);
            else {
                wq_config_set_string(ld->cfg, k, secret);
                wipe_free(secret);
            }
            continue;
        }
        if (v != NULL
            && wq_config_set_from_text(ld->cfg, k, v, msg, sizeof msg) != 0) {
            snprintf(where, sizeof where, "environment %s", name);
            errs_add(&ld->errs, where, k->key, "%s", msg);
        }
    }
}

static void
check_required(struct load *ld, const char *path)
{
    char name[128];

    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];
        int empty;

        if (!(k->flags & WQ_CONFIG_REQUIRED))
            continue;
        if (k->type == WQ_CONFIG_STRING)
            empty = (*(char **)field(ld->cfg, k))[0] == '\0';
        else if (k->type == WQ_CONFIG_LIST)
            empty = ((struct wq_config_list *)field(ld->cfg, k))->n == 0;
        else
            continue;
        if (empty)
            errs_add(&ld->errs, path != NULL ? path : "configuration",
                k->key, "required: set it in the file or in %s",
                wq_config_env_name(k, 0, name, sizeof name));
    }
}

/*
 * Keys that only make sense together: a transaction-mode pooler needs a
 * connection of its own for LISTEN.  Without one, a cancel of a running
 * task (a NOTIFY, nothing in its row) would never reach its worker, so
 * the configuration is refused rather than run without cancels.
 */
static void
check_pooler(struct load *ld, const char *path)
{
    if (ld->cfg->postgres.pooler == WQ_STORE_POOLER_TRANSACTION
        && ld->cfg->postgres.listen_conninfo[0] == '\0')
        errs_add(&ld->errs, path != NULL ? path : "configuration",
            "postgres.listen_conninfo", "required when postgres.pooler is "
            "\"transaction\": LISTEN (cancels of running tasks, the "
            "scheduler's wake-ups) needs a session, which a "
            "transaction-mode pooler does not keep; name a direct "
            "connection to PostgreSQL (or a session-mode pool)");
}

void
wq_config_defaults(struct wq_config *out)
{
    char msg[MSG_MAX];

    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];

        if (wq_config_set_from_text(out, k, k->def, msg, sizeof msg) != 0) {
            fprintf(stderr, "workq: bad default of %s: %s\n", k->key, msg);
            abort();
        }
    }
}

/*
 * Whether the file just read holds a secret: a secret key's value, or a
 * string whose value is not its default and holds a password
 * (postgres.conninfo, rabbitmq.url).
 */
static int
file_holds_secret(const struct load *ld)
{
    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];
        const char *v;
        char *r;
        int changed;

        if (ld->secrets[i].value_where[0] != '\0')
            return 1;
        if (k->type != WQ_CONFIG_STRING || (k->flags & WQ_CONFIG_SECRET))
            continue;
        v = *(char *const *)field(ld->cfg, k);
        if (v == NULL || strcmp(v, k->def) == 0)
            continue;
        r = xmalloc(wq_redact(NULL, 0, v) + 1);
        wq_redact(r, wq_redact(NULL, 0, v) + 1, v);
        changed = strcmp(r, v) != 0;
        free(r);
        if (changed)
            return 1;
    }
    return 0;
}

/*
 * The configuration file names the programs workers run and may hold
 * secrets: refused when others may write it, a warning when others may
 * read the secrets in it (secfile.h).
 */
static void
check_file_mode(struct load *ld)
{
    char msg[MSG_MAX];

    if (wq_secfile_check_path(ld->path, "configuration file",
        file_holds_secret(ld), msg, sizeof msg) != 0)
        errs_add(&ld->errs, ld->path, NULL, "%s", msg);
}

/*
 * The load itself: defaults, then the file at `path` (or `text`, named
 * `path` in errors, when not NULL; neither when path is NULL), secrets,
 * environment, required keys.
 */
static int
load(const char *path, const char *text, struct wq_config *out, char *err,
    size_t errlen)
{
    struct load ld = { out, path, { NULL, 0, 0 }, NULL };
    int rc = 0;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    wq_config_defaults(out);
    ld.secrets = xcalloc(wq_config_nkeys, sizeof *ld.secrets);
    if (ld.path != NULL) {
        if (text != NULL)
            read_string(&ld, text, ld.path);
        else
            read_file(&ld, ld.path);
        if (text == NULL && ld.errs.n == 0)
            check_file_mode(&ld);
        apply_file_secrets(&ld);
    }
    apply_env(&ld);
    check_required(&ld, ld.path);
    check_pooler(&ld, ld.path);

    if (ld.errs.n > 0) {
        errs_format(&ld.errs, err, errlen);
        wq_config_free(out);
        rc = WQ_ECONFIG;
    }
    for (size_t i = 0; i < wq_config_nkeys; i++)
        free(ld.secrets[i].file);
    free(ld.secrets);
    errs_free(&ld.errs);
    return rc;
}

int
wq_config_load(const char *path, struct wq_config *out, char *err,
    size_t errlen)
{
    struct stat st;

    /* the default file is optional: defaults + env without it */
    if (path == NULL
        && (stat(WQ_CONFIG_DEFAULT_PATH, &st) == 0 || errno != ENOENT))
        path = WQ_CONFIG_DEFAULT_PATH;
    return load(path, NULL, out, err, errlen);
}

int
wq_config_load_string(const char *text, const char *name,
    struct wq_config *out, char *err, size_t errlen)
{
    return load(name != NULL ? name : "(string)", text != NULL ? text : "",
        out, err, errlen);
}

/* ---- kept storage (the transports' settings) --------------------------- */

/* One value kept for wq_config_keep, in a list that lives as long as
 * the configuration. */
struct wq_config_derived {
    struct wq_config_derived *next;
    size_t len;
    void *data;
};

static void
derived_free(struct wq_config_derived *d)
{
    while (d != NULL) {
        struct wq_config_derived *next = d->next;

        /* they may hold secrets (a password in a URL or a property) */
        explicit_bzero(d->data, d->len);
        free(d->data);
        free(d);
        d = next;
    }
}

const void *
wq_config_keep(struct wq_config *cfg, const void *p, size_t len)
{
    struct wq_config_derived *d;

    for (d = cfg->derived_; d != NULL; d = d->next)
        if (d->len == len && memcmp(d->data, p, len) == 0)
            return d->data;
    d = xmalloc(sizeof *d);
    d->len = len;
    d->data = xmemdup(p, len);
    d->next = cfg->derived_;
    cfg->derived_ = d;
    return d->data;
}

const char *
wq_config_keepf(struct wq_config *cfg, const char *fmt, ...)
{
    const char *kept;
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    s = xmalloc(n > 0 ? (size_t)n + 1 : 1);
    va_start(ap, fmt);
    vsnprintf(s, n > 0 ? (size_t)n + 1 : 1, fmt, ap);
    va_end(ap);
    kept = wq_config_keep(cfg, s, strlen(s) + 1);
    wipe_free(s);
    return kept;
}

void
wq_config_free(struct wq_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < wq_config_nkeys; i++)
        wq_config_value_free(&wq_config_keys[i], cfg);
    derived_free(cfg->derived_);
    memset(cfg, 0, sizeof *cfg);
}

const char *
wq_config_enum_name(const struct wq_config *cfg, const char *key)
{
    const struct wq_config_key *k = find_key(key);
    int v;

    if (k == NULL || k->type != WQ_CONFIG_ENUM)
        return "";
    v = *(const int *)cfield(cfg, k);
    for (int i = 0; k->values[i] != NULL; i++)
        if (i == v)
            return k->values[i];
    return "";
}

int
wq_config_transport_conf(struct wq_config *cfg,
    struct wq_transport_conf *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->kind = cfg->transport;
    out->client_id = cfg->worker.id[0] != '\0' ? cfg->worker.id : NULL;
    out->connect_timeout_ms = cfg->broker.connect_timeout_ms > INT32_MAX
        ? INT32_MAX : (int)cfg->broker.connect_timeout_ms;
    out->dead_bounds = wq_config_dead_bounds;
    out->dead_bounds_user = cfg;
    /* each backend reads its own rows (kafka.*, rabbitmq.*) */
    return wq_transport_settings(cfg, out, err, errlen);
}

void
wq_config_store_opts(const struct wq_config *cfg, struct wq_store_opts *out)
{
    out->conninfo = cfg->postgres.conninfo;
    out->password = cfg->postgres.password;
    out->pooler = cfg->postgres.pooler;
    out->listen_conninfo = cfg->postgres.listen_conninfo;
}

void
wq_config_dead_bounds(void *user, const char *queue, int64_t *ttl_ms,
    int64_t *max_length)
{
    const struct wq_config *cfg = user;
    const struct wq_config_queue_policy *p = cfg->queue_policies.v, *use;

    use = NULL;
    for (size_t i = 0; i < cfg->queue_policies.n && use == NULL; i++)
        if (strcmp(p[i].name, queue) == 0)
            use = &p[i];
    for (size_t i = 0; i < cfg->queue_policies.n && use == NULL; i++)
        if (strcmp(p[i].name, "*") == 0)
            use = &p[i];
    *ttl_ms = use != NULL ? use->dead_ttl_ms : WQ_DEAD_TTL_DEFAULT_MS;
    *max_length = use != NULL ? use->dead_max_length
        : WQ_DEAD_MAX_LENGTH_DEFAULT;
}

int
wq_config_setup_log(const struct wq_config *cfg, const char *procname,
    char *err, size_t errlen)
{
    return wq_log_setup(procname, (enum wq_log_level)cfg->log.level,
        (enum wq_log_format)cfg->log.format, cfg->log.file, err, errlen);
}

