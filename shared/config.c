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
 * This file also writes --help text and dumps, and starts the transport
 * configuration (wq_config_transport_conf), whose broker-specific part
 * each backend builds from its own rows (transport.h); the strings they
 * build are kept by the config (wq_config_keep) until wq_config_free.
 *
 * Allocation uses alloc.h (abort on exhaustion): a process that cannot
 * allocate its configuration cannot run anyway.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <libconfig.h>

#include "alloc.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "redact.h"
#include "secfile.h"

#define DEFAULT_PATH   WQ_SYSCONFDIR "/workq/workq.conf"
#define ENV_PREFIX     "WORKQ_"
#define FILE_SUFFIX    "_file"
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
    size_t len = strlen(path), slen = strlen(FILE_SUFFIX);
    char base[256];
    const struct wq_config_key *k;

    if (len <= slen || len - slen >= sizeof base ||
        strcmp(path + len - slen, FILE_SUFFIX) != 0)
        return NULL;
    memcpy(base, path, len - slen);
    base[len - slen] = '\0';
    k = find_key(base);
    return k != NULL && (k->flags & WQ_CONFIG_SECRET) ? k : NULL;
}

/*
 * The field of key k in `cfg`: a struct wq_config, or for the keys of a
 * group's own table (config.h, GROUPS) one element of the list.
 */
static void *
field(void *cfg, const struct wq_config_key *k)
{
    return (char *)cfg + k->offset;
}

static const void *
cfield(const void *cfg, const struct wq_config_key *k)
{
    return (const char *)cfg + k->offset;
}

/* "WORKQ_KAFKA_BROKERS" (+ "_FILE" if `file`), into buf. */
static const char *
env_name(const struct wq_config_key *k, int file, char *buf, size_t len)
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

static const char *
leaf(const char *key)
{
    const char *dot = strrchr(key, '.');

    return dot != NULL ? dot + 1 : key;
}

/* ---- values -------------------------------------------------------------- */

static void
wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void
list_free(struct wq_config_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void
set_string(void *cfg, const struct wq_config_key *k, const char *s)
{
    char **p = field(cfg, k);

    wipe_free(*p);
    *p = xstrdup(s);
}

/* Takes ownership of v[0..n-1]. */
static void
set_list(void *cfg, const struct wq_config_key *k, char **v, size_t n)
{
    struct wq_config_list *l = field(cfg, k);

    list_free(l);
    l->v = xreallocarray(NULL, n + 1, sizeof *l->v);
    if (n > 0)
        memcpy(l->v, v, n * sizeof *v);
    l->v[n] = NULL;
    l->n = n;
}

static void
ints_free(struct wq_config_ints *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Takes ownership of v (n ints). */
static void
set_ints(void *cfg, const struct wq_config_key *k, int *v, size_t n)
{
    struct wq_config_ints *l = field(cfg, k);

    ints_free(l);
    l->v = v;
    l->n = n;
}

static void groups_free(const struct wq_config_key *k,
    struct wq_config_groups *g);

/* Frees what the field of k in cfg owns (strings, lists, groups). */
static void
value_free(const struct wq_config_key *k, void *cfg)
{
    switch (k->type) {
    case WQ_CONFIG_STRING: {
        char **p = field(cfg, k);

        wipe_free(*p);
        *p = NULL;
        break;
    }
    case WQ_CONFIG_LIST:
        list_free(field(cfg, k));
        break;
    case WQ_CONFIG_INT_LIST:
        ints_free(field(cfg, k));
        break;
    case WQ_CONFIG_GROUPS:
        groups_free(k, field(cfg, k));
        break;
    default:
        break;
    }
}

/* The element i of a list of groups. */
static void *
group_elem(const struct wq_config_key *k, const struct wq_config_groups *g,
    size_t i)
{
    return (char *)g->v + i * k->elem_size;
}

static void
groups_free(const struct wq_config_key *k, struct wq_config_groups *g)
{
    for (size_t i = 0; i < g->n; i++) {
        char *e = group_elem(k, g, i);

        for (size_t j = 0; j < k->nsub; j++)
            value_free(&k->sub[j], e);
        free(*(char **)(e + k->where_offset));
    }
    free(g->v);
    g->v = NULL;
    g->n = 0;
}

/* "1h30m", "1s500ms", "0s": the shortest exact form, which parses back. */
static const char *
format_duration(int64_t ms, char *buf, size_t len)
{
    static const struct { const char *unit; int64_t ms; } units[] = {
        { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
    };
    size_t n = 0;

    if (ms <= 0) {
        snprintf(buf, len, "%llds", (long long)ms / 1000);
        return buf;
    }
    for (size_t i = 0; i < WQ_ARRAY_LEN(units) && n < len; i++) {
        if (ms / units[i].ms == 0)
            continue;
        n += (size_t)snprintf(buf + n, len - n, "%lld%s",
            (long long)(ms / units[i].ms), units[i].unit);
        ms %= units[i].ms;
    }
    return buf;
}

int
wq_config_parse_duration(const char *s, int64_t *ms)
{
    static const struct { const char *unit; int64_t ms; } units[] = {
        { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
    };
    int64_t total = 0;
    const char *p = s;

    if (*p == '\0')
        return WQ_EINVAL;
    /* a bare integer is seconds, as in the file */
    if (strspn(p, "0123456789") == strlen(p)) {
        long long v;
        errno = 0;
        v = strtoll(p, NULL, 10);
        if (errno != 0 || v > INT64_MAX / 1000)
            return WQ_EINVAL;
        *ms = (int64_t)v * 1000;
        return 0;
    }
    while (*p != '\0') {
        int64_t n = 0, mult = 0;
        size_t ulen, i;

        if (*p < '0' || *p > '9')
            return WQ_EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (n > (INT64_MAX - 9) / 10)
                return WQ_EINVAL;
            n = n * 10 + (*p - '0');
        }
        ulen = strspn(p, "abcdefghijklmnopqrstuvwxyz");
        for (i = 0; i < WQ_ARRAY_LEN(units); i++)
            if (strlen(units[i].unit) == ulen &&
                strncmp(p, units[i].unit, ulen) == 0)
                mult = units[i].ms;
        if (mult == 0 || n > (INT64_MAX - total) / mult)
            return WQ_EINVAL;
        total += n * mult;
        p += ulen;
    }
    *ms = total;
    return 0;
}

static const struct { const char *unit; int64_t bytes; } size_units[] = {
    { "T", 1LL << 40 }, { "G", 1LL << 30 }, { "M", 1LL << 20 },
    { "K", 1LL << 10 },
};

int
wq_config_parse_size(const char *s, int64_t *bytes)
{
    const char *p = s;
    int64_t n = 0, mult = 1;

    if (*p < '0' || *p > '9')
        return WQ_EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (INT64_MAX - 9) / 10)
            return WQ_EINVAL;
        n = n * 10 + (*p - '0');
    }
    if (*p != '\0') {
        size_t i;

        for (i = 0; i < WQ_ARRAY_LEN(size_units); i++)
            if (strcasecmp(p, size_units[i].unit) == 0
                || (strncasecmp(p, size_units[i].unit, 1) == 0
                && strcmp(p + 1, "iB") == 0))
                break;
        if (i == WQ_ARRAY_LEN(size_units))
            return WQ_EINVAL;
        mult = size_units[i].bytes;
    }
    if (n > INT64_MAX / mult)
        return WQ_EINVAL;
    *bytes = n * mult;
    return 0;
}

/* "512M", "1536K", "1000": the largest unit that is exact. */
static const char *
format_size(int64_t bytes, char *buf, size_t len)
{
    for (size_t i = 0; i < WQ_ARRAY_LEN(size_units); i++)
        if (bytes > 0 && bytes % size_units[i].bytes == 0) {
            snprintf(buf, len, "%lld%s",
                (long long)(bytes / size_units[i].bytes), size_units[i].unit);
            return buf;
        }
    snprintf(buf, len, "%lld", (long long)bytes);
    return buf;
}

static const char *
expected(const struct wq_config_key *k)
{
    switch (k->type) {
    case WQ_CONFIG_STRING:   return "a string";
    case WQ_CONFIG_INT:      return "an integer";
    case WQ_CONFIG_BOOL:     return "true or false";
    case WQ_CONFIG_ENUM:     return "a string";
    case WQ_CONFIG_DURATION: return "a duration: integer seconds or a "
                                    "string like \"30s\", \"500ms\", "
                                    "\"5m\", \"2h\"";
    case WQ_CONFIG_SIZE:     return "a size: integer bytes or a string "
                                    "like \"512M\", \"2G\" (K, M, G, "
                                    "T: powers of 1024)";
    case WQ_CONFIG_OCTAL:    return "an octal string, like \"0077\"";
    case WQ_CONFIG_LIST:     return "a list of strings, like "
                                    "[\"a\", \"b\"]";
    case WQ_CONFIG_INT_LIST: return "a list of integers, like [65, 78]";
    case WQ_CONFIG_GROUPS:   return "a list of groups, like "
                                    "( { a = 1; }, { a = 2; } )";
    }
    return "?";
}

static const char *
libconfig_type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP:  return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:  return "an integer";
    case CONFIG_TYPE_FLOAT:  return "a float";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL:   return "a boolean";
    case CONFIG_TYPE_ARRAY:  return "an array";
    case CONFIG_TYPE_LIST:   return "a list";
    }
    return "nothing";
}

/* "debug|info|warn|error"; an empty name shows as "". */
static const char *
enum_names(const struct wq_config_key *k, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; k->values[i] != NULL && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i > 0 ? "|" : "",
            k->values[i][0] != '\0' ? k->values[i] : "\"\"");
    return buf;
}

/*
 * The checks shared by every source.  Each returns 0 and stores the value,
 * or -1 with a message in msg.
 */
static int
check_int(void *cfg, const struct wq_config_key *k, long long v, char *msg,
    size_t len)
{
    if (v < k->min || v > k->max) {
        snprintf(msg, len, "%lld is out of range %lld..%lld", v, k->min,
            k->max);
        return -1;
    }
    *(int *)field(cfg, k) = (int)v;
    return 0;
}

/* A port: 1..65535 digits (0 too where `zero` is set). */
static int
port_ok(const char *p, size_t n, int zero)
{
    long v = 0;

    if (n == 0 || n > 5)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (p[i] - '0');
    }
    return v <= 65535 && (v > 0 || zero);
}

/* "host:port" in s[0..n): a host, then a valid port; [v6]:port too. */
static int
hostport_ok(const char *s, size_t n)
{
    const char *colon = NULL;

    for (size_t i = 0; i < n; i++)
        if (s[i] == ':')
            colon = s + i;
    if (colon == NULL || colon == s)
        return 0;
    if (s[0] == '[' && colon[-1] != ']')
        return 0;
    return port_ok(colon + 1, n - (size_t)(colon + 1 - s), 0);
}

/*
 * A string key that holds an address (the WQ_CONFIG_LISTEN, _HOSTPORTS
 * and _URL flags): checked here, so a port out of range is a
 * configuration error at load (file:line:key) rather than a failure to
 * start.  Stores the value on success.
 */
static int
check_string(void *cfg, const struct wq_config_key *k, const char *s,
    char *msg, size_t len)
{
    char why[256];

    if (s[0] == '\0' && k->def[0] == '\0')
        goto ok;
    if (k->flags & WQ_CONFIG_LISTEN) {
        if (wq_http_listen_check(s, why, sizeof why) != 0) {
            snprintf(msg, len, "%s (want HOST:PORT, HOST an IPv4 address, "
                "localhost or *)", why);
            return -1;
        }
    } else if (k->flags & WQ_CONFIG_HOSTPORTS) {
        const char *p = s;

        for (;;) {
            const char *comma = strchr(p, ','), *e;
            const char *b = p + strspn(p, " \t");

            e = comma != NULL ? comma : p + strlen(p);
            while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (!hostport_ok(b, (size_t)(e - b))) {
                snprintf(msg, len, "\"%.*s\" is not host:port with a port "
                    "1..65535", (int)(e - b > 64 ? 64 : e - b), b);
                return -1;
            }
            if (comma == NULL)
                break;
            p = comma + 1;
        }
    } else if (k->flags & WQ_CONFIG_URL) {
        const char *a = strstr(s, "://"), *end, *at, *colon = NULL;

        /* not a URL at all: wq_config_transport_conf says so */
        if (a == NULL)
            goto ok;
        /* the authority, as transport_amqp.c reads it: the host
         * after its last '@' */
        a += 3;
        end = a + strcspn(a, "/?#");
        at = a;
        for (const char *p = a; p < end; p++)
            if (*p == '@')
                at = p + 1;
        if (at == end || (at[0] == '[' ? strchr(at, ']') == NULL : 0)) {
            snprintf(msg, len, "\"%.64s\" has no host", s);
            return -1;
        }
        for (const char *p = at[0] == '[' ? strchr(at, ']') : at; p < end;
            p++)
            if (*p == ':')
                colon = p;
        if (colon != NULL
            && !port_ok(colon + 1, (size_t)(end - colon - 1), 0)) {
            snprintf(msg, len, "port \"%.*s\" of the URL is not 1..65535",
                (int)(end - colon - 1 > 16 ? 16 : end - colon - 1),
                colon + 1);
            return -1;
        }
    }
ok:
    set_string(cfg, k, s);
    return 0;
}

static int
check_duration(void *cfg, const struct wq_config_key *k, int64_t ms,
    char *msg, size_t len)
{
    char a[32], b[32], c[32];

    if (ms < k->min || ms > k->max) {
        snprintf(msg, len, "%s is out of range %s..%s",
            format_duration(ms, a, sizeof a),
            format_duration(k->min, b, sizeof b),
            format_duration(k->max, c, sizeof c));
        return -1;
    }
    *(int64_t *)field(cfg, k) = ms;
    return 0;
}

static int
check_size(void *cfg, const struct wq_config_key *k, int64_t bytes,
    char *msg, size_t len)
{
    char a[32], b[32], c[32];

    if (bytes < k->min || bytes > k->max) {
        snprintf(msg, len, "%s is out of range %s..%s",
            format_size(bytes, a, sizeof a), format_size(k->min, b, sizeof b),
            format_size(k->max, c, sizeof c));
        return -1;
    }
    *(int64_t *)field(cfg, k) = bytes;
    return 0;
}

/* An octal string ("0077", "22"; at most 8 digits), within the range. */
static int
check_octal(void *cfg, const struct wq_config_key *k, const char *s,
    char *msg, size_t len)
{
    size_t n = strlen(s);
    long v;

    if (n == 0 || n > 8 || strspn(s, "01234567") != n) {
        snprintf(msg, len, "\"%.64s\" is not %s", s, expected(k));
        return -1;
    }
    v = strtol(s, NULL, 8);
    if (v < k->min || v > k->max) {
        snprintf(msg, len, "%04lo is out of range %04llo..%04llo", v,
            k->min, k->max);
        return -1;
    }
    *(int *)field(cfg, k) = (int)v;
    return 0;
}

static int
check_enum(void *cfg, const struct wq_config_key *k, const char *s,
    char *msg, size_t len)
{
    char names[256];

    for (int i = 0; k->values[i] != NULL; i++)
        if (strcasecmp(s, k->values[i]) == 0) {
            *(int *)field(cfg, k) = i;
            return 0;
        }
    snprintf(msg, len, "\"%.64s\" is not one of %s", s,
        enum_names(k, names, sizeof names));
    return -1;
}

static int
check_list(void *cfg, const struct wq_config_key *k, char **v, size_t n,
    char *msg, size_t len)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (v[i][0] == '\0') {
            snprintf(msg, len, "item %zu is empty", i + 1);
            goto fail;
        }
    if ((long long)n < k->min) {
        snprintf(msg, len, "needs at least %lld item%s", k->min,
            k->min == 1 ? "" : "s");
        goto fail;
    }
    set_list(cfg, k, v, n);
    return 0;
fail:
    for (i = 0; i < n; i++)
        free(v[i]);
    return -1;
}

/* Takes ownership of v (n ints) whether it succeeds or not. */
static int
check_ints(void *cfg, const struct wq_config_key *k, int *v, size_t n,
    long long *raw, char *msg, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (raw[i] < k->min || raw[i] > k->max) {
            snprintf(msg, len, "item %zu: %lld is out of range %lld..%lld",
                i + 1, raw[i], k->min, k->max);
            free(v);
            return -1;
        }
    set_ints(cfg, k, v, n);
    return 0;
}

static int groups_from_text(void *cfg, const struct wq_config_key *k,
    const char *s, char *msg, size_t len);

static int
parse_bool(const char *s)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };

    for (size_t i = 0; i < WQ_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

/*
 * set_from_text converts a value written as text (a table default or an
 * environment variable) and stores it.  Lists are comma-separated, with
 * blanks around items trimmed; "" is the empty list.
 */
static int
set_from_text(void *cfg, const struct wq_config_key *k, const char *s,
    char *msg, size_t len)
{
    switch (k->type) {
    case WQ_CONFIG_STRING:
        return check_string(cfg, k, s, msg, len);
    case WQ_CONFIG_INT: {
        char *end;
        long long v;

        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0') {
            snprintf(msg, len, "\"%.64s\" is not %s", s, expected(k));
            return -1;
        }
        return check_int(cfg, k, v, msg, len);
    }
    case WQ_CONFIG_BOOL: {
        int b = parse_bool(s);

        if (b < 0) {
            snprintf(msg, len, "\"%.64s\" is not true or false", s);
            return -1;
        }
        *(int *)field(cfg, k) = b;
        return 0;
    }
    case WQ_CONFIG_ENUM:
        return check_enum(cfg, k, s, msg, len);
    case WQ_CONFIG_DURATION: {
        int64_t ms;

        if (wq_config_parse_duration(s, &ms) != 0) {
            snprintf(msg, len, "\"%.64s\" is not %s", s, expected(k));
            return -1;
        }
        return check_duration(cfg, k, ms, msg, len);
    }
    case WQ_CONFIG_SIZE: {
        int64_t bytes;

        if (wq_config_parse_size(s, &bytes) != 0) {
            snprintf(msg, len, "\"%.64s\" is not %s", s, expected(k));
            return -1;
        }
        return check_size(cfg, k, bytes, msg, len);
    }
    case WQ_CONFIG_OCTAL:
        return check_octal(cfg, k, s, msg, len);
    case WQ_CONFIG_LIST: {
        char **v = NULL;
        size_t n = 0;
        const char *p = *s != '\0' ? s : NULL;  /* "": no items */
        int rc;

        while (p != NULL) {
            const char *comma = strchr(p, ','), *b = p, *e;

            e = comma != NULL ? comma : p + strlen(p);
            while (b < e && (*b == ' ' || *b == '\t'))
                b++;
            while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            v = xreallocarray(v, n + 1, sizeof *v);
            v[n++] = xstrndup(b, (size_t)(e - b));
            p = comma != NULL ? comma + 1 : NULL;
        }
        rc = check_list(cfg, k, v, n, msg, len);
        free(v);
        return rc;
    }
    case WQ_CONFIG_INT_LIST: {
        long long *raw = NULL;
        int *v = NULL;
        size_t n = 0;
        const char *p = s + strspn(s, " \t");
        int rc;

        while (*p != '\0') {
            char *end;

            raw = xreallocarray(raw, n + 1, sizeof *raw);
            v = xreallocarray(v, n + 1, sizeof *v);
            errno = 0;
            raw[n] = strtoll(p, &end, 10);
            end += strspn(end, " \t");
            if (errno != 0 || end == p || (*end != ',' && *end != '\0')) {
                snprintf(msg, len, "\"%.64s\" is not %s", s, expected(k));
                free(raw);
                free(v);
                return -1;
            }
            v[n] = (int)(raw[n] < INT32_MIN ? INT32_MIN
                : raw[n] > INT32_MAX ? INT32_MAX : raw[n]);
            n++;
            p = end + (*end == ',');
            p += strspn(p, " \t");
        }
        rc = check_ints(cfg, k, v, n, raw, msg, len);
        free(raw);
        return rc;
    }
    case WQ_CONFIG_GROUPS:
        return groups_from_text(cfg, k, s, msg, len);
    }
    snprintf(msg, len, "unknown key type");
    return -1;
}

/* set_from_setting converts a libconfig setting and stores it. */
static int
set_from_setting(void *cfg, const struct wq_config_key *k,
    const config_setting_t *s, char *msg, size_t len)
{
    int type = config_setting_type(s);

    switch (k->type) {
    case WQ_CONFIG_STRING:
        if (type != CONFIG_TYPE_STRING)
            break;
        return check_string(cfg, k, config_setting_get_string(s), msg, len);
    case WQ_CONFIG_INT:
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
            break;
        return check_int(cfg, k, config_setting_get_int64(s), msg, len);
    case WQ_CONFIG_BOOL:
        if (type != CONFIG_TYPE_BOOL)
            break;
        *(int *)field(cfg, k) = config_setting_get_bool(s) ? 1 : 0;
        return 0;
    case WQ_CONFIG_ENUM:
        if (type != CONFIG_TYPE_STRING)
            break;
        return check_enum(cfg, k, config_setting_get_string(s), msg, len);
    case WQ_CONFIG_DURATION:
        if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
            long long v = config_setting_get_int64(s);

            if (v < 0 || v > INT64_MAX / 1000) {
                snprintf(msg, len, "%lld seconds is out of range", v);
                return -1;
            }
            return check_duration(cfg, k, (int64_t)v * 1000, msg, len);
        }
        if (type == CONFIG_TYPE_FLOAT) {
            double v = config_setting_get_float(s);

            if (!isfinite(v) || v < 0 || v > 1e15) {
                snprintf(msg, len, "%g seconds is out of range", v);
                return -1;
            }
            return check_duration(cfg, k, (int64_t)llround(v * 1000.0),
                msg, len);
        }
        /* "30s", "500ms": the text form, as in the environment */
        if (type == CONFIG_TYPE_STRING)
            return set_from_text(cfg, k, config_setting_get_string(s), msg,
                len);
        break;
    case WQ_CONFIG_SIZE:
        if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64)
            return check_size(cfg, k, config_setting_get_int64(s), msg,
                len);
        if (type == CONFIG_TYPE_STRING)
            return set_from_text(cfg, k, config_setting_get_string(s), msg,
                len);
        break;
    case WQ_CONFIG_OCTAL:
        if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
            /* libconfig reads 0077 as the decimal 77 */
            snprintf(msg, len, "expected %s, got an integer (write it in "
                "quotes: an unquoted 0077 would be read as decimal 77)",
                expected(k));
            return -1;
        }
        if (type != CONFIG_TYPE_STRING)
            break;
        return set_from_text(cfg, k, config_setting_get_string(s), msg, len);
    case WQ_CONFIG_LIST: {
        int n, i;
        char **v;

        if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY)
            break;
        n = config_setting_length(s);
        for (i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(s,
                (unsigned)i);

            if (config_setting_type(e) != CONFIG_TYPE_STRING) {
                snprintf(msg, len, "item %d is %s, expected a string",
                    i + 1, libconfig_type_name(config_setting_type(e)));
                return -1;
            }
        }
        v = xreallocarray(NULL, (size_t)n + 1, sizeof *v);
        for (i = 0; i < n; i++)
            v[i] = xstrdup(config_setting_get_string_elem(s, (unsigned)i));
        i = check_list(cfg, k, v, (size_t)n, msg, len);
        free(v);
        return i;
    }
    case WQ_CONFIG_INT_LIST: {
        long long *raw;
        int n, i, *v;

        if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY)
            break;
        n = config_setting_length(s);
        raw = xreallocarray(NULL, (size_t)n + 1, sizeof *raw);
        v = xreallocarray(NULL, (size_t)n + 1, sizeof *v);
        for (i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(s,
                (unsigned)i);
            int et = config_setting_type(e);

            if (et != CONFIG_TYPE_INT && et != CONFIG_TYPE_INT64) {
                snprintf(msg, len, "item %d is %s, expected an integer",
                    i + 1, libconfig_type_name(et));
                free(raw);
                free(v);
                return -1;
            }
            raw[i] = config_setting_get_int64(e);
            v[i] = (int)(raw[i] < INT32_MIN ? INT32_MIN
                : raw[i] > INT32_MAX ? INT32_MAX : raw[i]);
        }
        i = check_ints(cfg, k, v, (size_t)n, raw, msg, len);
        free(raw);
        return i;
    }
    case WQ_CONFIG_GROUPS:
        /* walk() reads these with groups_load, which can report an
         * error for each element */
        break;
    }
    snprintf(msg, len, "expected %s, got %s", expected(k),
        libconfig_type_name(type));
    return -1;
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
                file ? FILE_SUFFIX : "");
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
        errs_add(e, where, k->key, "expected %s, got %s", expected(k),
            libconfig_type_name(type));
        return;
    }
    n = config_setting_length(s);
    g.v = n > 0 ? xcalloc((size_t)n, k->elem_size) : NULL;
    g.n = (size_t)n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *el = config_setting_get_elem(s, (unsigned)i);
        char *ep = group_elem(k, &g, (size_t)i);
        int m;

        for (size_t j = 0; j < k->nsub; j++)
            if (set_from_text(ep, &k->sub[j], k->sub[j].def, msg,
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
                libconfig_type_name(config_setting_type(el)));
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
            } else if (set_from_setting(ep, sk, c, msg, sizeof msg) != 0) {
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
        groups_free(k, &g);
        return;
    }
    groups_free(k, field(cfg, k));
    *(struct wq_config_groups *)field(cfg, k) = g;
}

/* A list of groups written as text (a default, an environment variable)
 * in libconfig syntax: "( { type = \"x\"; }, { ... } )"; "" is empty. */
static int
groups_from_text(void *cfg, const struct wq_config_key *k, const char *s,
    char *msg, size_t len)
{
    struct errs e = { NULL, 0, 0 };
    char src[160];
    config_t lc;
    char *text;
    int rc = 0;

    if (s[strspn(s, " \t\n")] == '\0') {
        groups_free(k, field(cfg, k));
        return 0;
    }
    env_name(k, 0, src, sizeof src);
    memmove(src + strlen("environment "), src, strlen(src) + 1);
    memcpy(src, "environment ", strlen("environment "));
    config_init(&lc);
    text = xasprintf("v = %s;", s);
    if (config_read_string(&lc, text) != CONFIG_TRUE) {
        snprintf(msg, len, "not %s: %s", expected(k),
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
            if (set_from_setting(ld->cfg, k, s, msg, sizeof msg) != 0)
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
                    libconfig_type_name(config_setting_type(s)));
        } else if ((k = secret_of_file_key(path)) != NULL) {
            struct secret_state *st = &ld->secrets[k - wq_config_keys];

            if (config_setting_type(s) != CONFIG_TYPE_STRING)
                errs_add(&ld->errs, where, path,
                    "expected a string (a file name), got %s",
                    libconfig_type_name(config_setting_type(s)));
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
        fkey = xasprintf("%s%s", k->key, FILE_SUFFIX);
        if (st->value_where[0] != '\0')
            errs_add(&ld->errs, st->file_where, fkey,
                "both %s (at %s) and %s are set; keep one", leaf(k->key),
                st->value_where, leaf(fkey));
        else if ((v = read_secret(st->file, msg, sizeof msg)) == NULL)
            errs_add(&ld->errs, st->file_where, fkey, "%s", msg);
        else {
            set_string(ld->cfg, k, v);
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

        env_name(k, 0, name, sizeof name);
        v = getenv(name);
        if (k->flags & WQ_CONFIG_SECRET) {
            env_name(k, 1, fname, sizeof fname);
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
                set_string(ld->cfg, k, secret);
                wipe_free(secret);
            }
            continue;
        }
        if (v != NULL && set_from_text(ld->cfg, k, v, msg, sizeof msg) != 0) {
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
                env_name(k, 0, name, sizeof name));
    }
}

void
wq_config_defaults(struct wq_config *out)
{
    char msg[MSG_MAX];

    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];

        if (set_from_text(out, k, k->def, msg, sizeof msg) != 0) {
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
    if (path == NULL && (stat(DEFAULT_PATH, &st) == 0 || errno != ENOENT))
        path = DEFAULT_PATH;
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
        value_free(&wq_config_keys[i], cfg);
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

/* ---- output -------------------------------------------------------------- */

/* A libconfig string literal, with any password inside it hidden. */
static void
put_string(FILE *fp, const char *text)
{
    size_t n = wq_redact(NULL, 0, text) + 1;
    char *s = xmalloc(n);

    wq_redact(s, n, text);
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':  fputs("\\\"", fp); break;
        case '\\': fputs("\\\\", fp); break;
        case '\n': fputs("\\n", fp); break;
        case '\r': fputs("\\r", fp); break;
        case '\t': fputs("\\t", fp); break;
        case '\f': fputs("\\f", fp); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(fp, "\\x%02x", *p);
            else
                fputc(*p, fp);
        }
    }
    fputc('"', fp);
    free(s);
}

static void
put_value(FILE *fp, const void *cfg, const struct wq_config_key *k,
    size_t depth)
{
    const void *f = cfield(cfg, k);
    char buf[64];

    switch (k->type) {
    case WQ_CONFIG_STRING: {
        const char *s = *(char *const *)f != NULL ? *(char *const *)f : "";

        put_string(fp, (k->flags & WQ_CONFIG_SECRET) && s[0] != '\0'
            ? "<hidden>" : s);
        break;
    }
    case WQ_CONFIG_INT:
        fprintf(fp, "%d", *(const int *)f);
        break;
    case WQ_CONFIG_BOOL:
        fputs(*(const int *)f ? "true" : "false", fp);
        break;
    case WQ_CONFIG_ENUM: {
        int v = *(const int *)f, i;

        for (i = 0; k->values[i] != NULL && i != v; i++)
            ;
        put_string(fp, k->values[i] != NULL ? k->values[i] : "?");
        break;
    }
    case WQ_CONFIG_DURATION:
        put_string(fp, format_duration(*(const int64_t *)f, buf, sizeof buf));
        break;
    case WQ_CONFIG_SIZE:
        put_string(fp, format_size(*(const int64_t *)f, buf, sizeof buf));
        break;
    case WQ_CONFIG_OCTAL:
        snprintf(buf, sizeof buf, "%04o", (unsigned)*(const int *)f);
        put_string(fp, buf);
        break;
    case WQ_CONFIG_LIST: {
        const struct wq_config_list *l = f;

        fputc('[', fp);
        for (size_t i = 0; i < l->n; i++) {
            fputs(i > 0 ? ", " : " ", fp);
            put_string(fp, l->v[i]);
        }
        fputs(" ]", fp);
        break;
    }
    case WQ_CONFIG_INT_LIST: {
        const struct wq_config_ints *l = f;

        fputc('[', fp);
        for (size_t i = 0; i < l->n; i++)
            fprintf(fp, "%s%d", i > 0 ? ", " : " ", l->v[i]);
        fputs(" ]", fp);
        break;
    }
    case WQ_CONFIG_GROUPS: {
        const struct wq_config_groups *g = f;
        int in = (int)(4 * (depth + 1));

        if (g->n == 0) {
            fputs("( )", fp);
            break;
        }
        fputs("(\n", fp);
        for (size_t i = 0; i < g->n; i++) {
            const void *e = group_elem(k, g, i);

            fprintf(fp, "%*s{\n", in, "");
            for (size_t j = 0; j < k->nsub; j++) {
                fprintf(fp, "%*s%s = ", in + 4, "", k->sub[j].key);
                put_value(fp, e, &k->sub[j], depth + 2);
                fputs(";\n", fp);
            }
            fprintf(fp, "%*s}%s\n", in, "", i + 1 < g->n ? "," : "");
        }
        fprintf(fp, "%*s)", in - 4, "");
        break;
    }
    }
}

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
        put_value(fp, cfg, k, depth);
        fputs(";\n", fp);
        prev = k->key;
    }
    switch_group(fp, prev, NULL);
}

/* "integer 1..1024", "one of a|b", ...: the type and range of k. */
static const char *
range_text(const struct wq_config_key *k, char *range, size_t len)
{
    char names[256], a[32], b[32];

    switch (k->type) {
    case WQ_CONFIG_STRING:
        snprintf(range, len, "string");
        break;
    case WQ_CONFIG_INT:
        snprintf(range, len, "integer %lld..%lld", k->min, k->max);
        break;
    case WQ_CONFIG_BOOL:
        snprintf(range, len, "boolean");
        break;
    case WQ_CONFIG_ENUM:
        snprintf(range, len, "one of %.100s",
            enum_names(k, names, sizeof names));
        break;
    case WQ_CONFIG_DURATION:
        snprintf(range, len, "duration %s..%s",
            format_duration(k->min, a, sizeof a),
            format_duration(k->max, b, sizeof b));
        break;
    case WQ_CONFIG_SIZE:
        snprintf(range, len, "size %s..%s",
            format_size(k->min, a, sizeof a),
            format_size(k->max, b, sizeof b));
        break;
    case WQ_CONFIG_OCTAL:
        snprintf(range, len, "octal %04llo..%04llo", k->min, k->max);
        break;
    case WQ_CONFIG_LIST:
        snprintf(range, len, "list of strings, at least %lld", k->min);
        break;
    case WQ_CONFIG_INT_LIST:
        snprintf(range, len, "list of integers %lld..%lld", k->min, k->max);
        break;
    case WQ_CONFIG_GROUPS:
        snprintf(range, len, "list of groups");
        break;
    }
    return range;
}

static int
quoted(const struct wq_config_key *k)
{
    return k->type != WQ_CONFIG_INT && k->type != WQ_CONFIG_BOOL
        && k->type != WQ_CONFIG_INT_LIST;
}

void
wq_config_print_doc(FILE *fp)
{
    char range[128], env[128], fenv[160];

    fprintf(fp, "Configuration keys.  File: %s, or --config PATH.\n"
        "WORKQ_<KEY> in the environment beats the file; durations take "
        "ms, s, m, h;\nsizes take K, M, G, T (powers of 1024).\n",
        DEFAULT_PATH);
    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];
        int quote = quoted(k);

        fprintf(fp, "\n  %s  (%s, default %s%s%s%s%s)\n      %s\n"
            "      env %s", k->key, range_text(k, range, sizeof range),
            quote ? "\"" : "", k->def, quote ? "\"" : "",
            (k->flags & WQ_CONFIG_REQUIRED) ? ", required" : "",
            (k->flags & WQ_CONFIG_SECRET) ? ", secret" : "", k->doc,
            env_name(k, 0, env, sizeof env));
        if (k->type == WQ_CONFIG_LIST || k->type == WQ_CONFIG_INT_LIST)
            fputs(" (comma-separated)", fp);
        if (k->type == WQ_CONFIG_GROUPS)
            fputs(" (libconfig syntax: ( { ... }, { ... } ))", fp);
        if (k->flags & WQ_CONFIG_SECRET)
            fprintf(fp, "\n      or a file: %s%s, env %s", k->key,
                FILE_SUFFIX,
                env_name(k, 1, fenv, sizeof fenv));
        fputc('\n', fp);
        for (size_t j = 0; j < k->nsub; j++) {
            const struct wq_config_key *sk = &k->sub[j];

            quote = quoted(sk);
            fprintf(fp, "      %s[].%s  (%s, default %s%s%s%s)\n          %s\n",
                k->key, sk->key, range_text(sk, range, sizeof range),
                quote ? "\"" : "", sk->def, quote ? "\"" : "",
                (sk->flags & WQ_CONFIG_REQUIRED) ? ", required" : "",
                sk->doc);
        }
    }
}
