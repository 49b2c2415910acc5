/*
 * config_types.c - the value types of the configuration table: one row
 * of struct wq_config_type_ops per enum wq_config_type (config_impl.h),
 * with the conversions from text and from libconfig settings, the range
 * checks, the libconfig-syntax writer, the --help range text and the
 * freeing of what a value owns.  The loader (config.c) and the printer
 * (config_print.c) only call through this table.
 *
 * Allocation uses alloc.h (abort on exhaustion), as config.c.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libconfig.h>

#include "alloc.h"
#include "config.h"
#include "config_impl.h"
#include "http.h"
#include "redact.h"

static const char *expected(const struct wq_config_key *k);

/* ---- values -------------------------------------------------------------- */

static void
list_free(struct wq_config_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void
wq_config_set_string(void *cfg, const struct wq_config_key *k, const char *s)
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

/* The element i of a list of groups. */
void *
wq_config_group_elem(const struct wq_config_key *k,
    const struct wq_config_groups *g, size_t i)
{
    return (char *)g->v + i * k->elem_size;
}

void
wq_config_groups_free(const struct wq_config_key *k,
    struct wq_config_groups *g)
{
    for (size_t i = 0; i < g->n; i++) {
        char *e = wq_config_group_elem(k, g, i);

        for (size_t j = 0; j < k->nsub; j++)
            wq_config_value_free(&k->sub[j], e);
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


const char *
wq_config_libconfig_type_name(int type)
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
    wq_config_set_string(cfg, k, s);
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


/* ---- the types ----------------------------------------------------------- */

/*
 * One block per type: from text, from a libconfig setting (called only
 * with a setting of a libconfig type it may take, else it answers 1 and
 * the caller says what was expected), the writer, the range text and,
 * for the types that own memory, the free.
 */

/* A libconfig setting of a type the key does not take. */
#define WRONG_TYPE 1

static int
is_int_setting(int type)
{
    return type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
}

static int
is_list_setting(int type)
{
    return type == CONFIG_TYPE_LIST || type == CONFIG_TYPE_ARRAY;
}

/* "\"x\" is not an integer" */
static int
not_a(const struct wq_config_key *k, const char *s, char *msg, size_t len)
{
    snprintf(msg, len, "\"%.64s\" is not %s", s, expected(k));
    return -1;
}

/* The types a file gives as a string only: the text form. */
static int
text_from_setting(void *cfg, const struct wq_config_key *k,
    const config_setting_t *s, int type, char *msg, size_t len)
{
    if (type != CONFIG_TYPE_STRING)
        return WRONG_TYPE;
    return wq_config_set_from_text(cfg, k, config_setting_get_string(s), msg,
        len);
}

/* STRING */

static void
string_put(FILE *fp, const void *f, const struct wq_config_key *k,
    size_t depth)
{
    const char *s = *(char *const *)f != NULL ? *(char *const *)f : "";

    (void)depth;
    put_string(fp, (k->flags & WQ_CONFIG_SECRET) && s[0] != '\0'
        ? "<hidden>" : s);
}

static void
string_range(const struct wq_config_key *k, char *buf, size_t len)
{
    (void)k;
    snprintf(buf, len, "string");
}

static void
string_free(const struct wq_config_key *k, void *f)
{
    char **p = f;

    (void)k;
    wipe_free(*p);
    *p = NULL;
}

/* INT */

static int
int_from_text(void *cfg, const struct wq_config_key *k, const char *s,
    char *msg, size_t len)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return not_a(k, s, msg, len);
    return check_int(cfg, k, v, msg, len);
}

static int
int_from_setting(void *cfg, const struct wq_config_key *k,
    const config_setting_t *s, int type, char *msg, size_t len)
{
    if (!is_int_setting(type))
        return WRONG_TYPE;
    return check_int(cfg, k, config_setting_get_int64(s), msg, len);
}

static void
int_put(FILE *fp, const void *f, const struct wq_config_key *k, size_t depth)
{
    (void)k; (void)depth;
    fprintf(fp, "%d", *(const int *)f);
}

static void
int_range(const struct wq_config_key *k, char *buf, size_t len)
{
    snprintf(buf, len, "integer %lld..%lld", k->min, k->max);
}

/* BOOL */

static int
bool_from_text(void *cfg, const struct wq_config_key *k, const char *s,
    char *msg, size_t len)
{
    int b = parse_bool(s);

    if (b < 0) {
        snprintf(msg, len, "\"%.64s\" is not true or false", s);
        return -1;
    }
    *(int *)field(cfg, k) = b;
    return 0;
}

static int
bool_from_setting(void *cfg, const struct wq_config_key *k,
    const config_setting_t *s, int type, char *msg, size_t len)
{
    (void)msg; (void)len;
    if (type != CONFIG_TYPE_BOOL)
        return WRONG_TYPE;
    *(int *)field(cfg, k) = config_setting_get_bool(s) ? 1 : 0;
    return 0;
}

static void
bool_put(FILE *fp, const void *f, const struct wq_config_key *k,
    size_t depth)
{
    (void)k; (void)depth;
    fputs(*(const int *)f ? "true" : "false", fp);
}

static void
bool_range(const struct wq_config_key *k, char *buf, size_t len)
{
    (void)k;
    snprintf(buf, len, "boolean");
}

/* ENUM */

static void
enum_put(FILE *fp, const void *f, const struct wq_config_key *k,
    size_t depth)
{
    int v = *(const int *)f, i;

    (void)depth;
    for (i = 0; k->values[i] != NULL && i != v; i++)
        ;
    put_string(fp, k->values[i] != NULL ? k->values[i] : "?");
}

static void
enum_range(const struct wq_config_key *k, char *buf, size_t len)
{
    char names[256];

    snprintf(buf, len, "one of %.100s", enum_names(k, names, sizeof names));
}

/* DURATION and SIZE: an int64_t written with units, the two differing
 * only in their parser, their formatter and their name. */

struct quantity {
    const char *name;                           /* "duration" */
    int (*parse)(const char *s, int64_t *v);
    const char *(*format)(int64_t v, char *buf, size_t len);
};

static const struct quantity quantities[] = {
    [WQ_CONFIG_DURATION] = { "duration", wq_config_parse_duration,
        format_duration },
    [WQ_CONFIG_SIZE] = { "size", wq_config_parse_size, format_size },
};

static int
check_quantity(void *cfg, const struct wq_config_key *k, int64_t v,
    char *msg, size_t len)
{
    const struct quantity *q = &quantities[k->type];
    char a[32], b[32], c[32];

    if (v < k->min || v > k->max) {
        snprintf(msg, len, "%s is out of range %s..%s",
            q->format(v, a, sizeof a), q->format(k->min, b, sizeof b),
            q->format(k->max, c, sizeof c));
        return -1;
    }
    *(int64_t *)field(cfg, k) = v;
    return 0;
}

static int
quantity_from_text(void *cfg, const struct wq_config_key *k, const char *s,
    char *msg, size_t len)
{
    int64_t v;

    if (quantities[k->type].parse(s, &v) != 0)
        return not_a(k, s, msg, len);
    return check_quantity(cfg, k, v, msg, len);
}

static void
quantity_put(FILE *fp, const void *f, const struct wq_config_key *k,
    size_t depth)
{
    char buf[64];

    (void)depth;
    put_string(fp, quantities[k->type].format(*(const int64_t *)f, buf,
        sizeof buf));
}

static void
quantity_range(const struct wq_config_key *k, char *buf, size_t len)
{
    const struct quantity *q = &quantities[k->type];
    char a[32], b[32];

    snprintf(buf, len, "%s %s..%s", q->name, q->format(k->min, a, sizeof a),
        q->format(k->max, b, sizeof b));
}

/* A duration: integer or float seconds, or the text form. */
static int
duration_from_setting(void *cfg, const struct wq_config_key *k,
    const config_setting_t *s, int type, char *msg, size_t len)
{
    if (is_int_setting(type)) {
        long long v = config_setting_get_int64(s);

        if (v < 0 || v > INT64_MAX / 1000) {
            snprintf(msg, len, "%lld seconds is out of range", v);
            return -1;
        }
        return check_quantity(cfg, k, (int64_t)v * 1000, msg, len);
    }
    if (type == CONFIG_TYPE_FLOAT) {
        double v = config_setting_get_float(s);

        if (!isfinite(v) || v < 0 || v > 1e15) {
            snprintf(msg, len, "%g seconds is out of range", v);
            return -1;
        }
        return check_quantity(cfg, k, (int64_t)llround(v * 1000.0), msg,
            len);
    }
    /* "30s", "500ms": the text form, as in the environment */
    if (type == CONFIG_TYPE_STRING)
        return quantity_from_text(cfg, k, config_setting_get_string(s), msg,
            len);
    return WRONG_TYPE;
}

/* A size: integer bytes, or the text form. */
static int
size_from_setting(void *cfg, const struct wq_config_key *k,
    const config_setting_t *s, int type, char *msg, size_t len)
{
    if (is_int_setting(type))
        return check_quantity(cfg, k, config_setting_get_int64(s), msg, len);
    if (type == CONFIG_TYPE_STRING)
        return quantity_from_text(cfg, k, config_setting_get_string(s), msg,
            len);
    return WRONG_TYPE;
}

/* OCTAL */

static int
octal_from_setting(void *cfg, const struct wq_config_key *k,
    const config_setting_t *s, int type, char *msg, size_t len)
{
    if (is_int_setting(type)) {
        /* libconfig reads 0077 as the decimal 77 */
        snprintf(msg, len, "expected %s, got an integer (write it in "
            "quotes: an unquoted 0077 would be read as decimal 77)",
            expected(k));
        return -1;
    }
    return text_from_setting(cfg, k, s, type, msg, len);
}

static void
octal_put(FILE *fp, const void *f, const struct wq_config_key *k,
    size_t depth)
{
    char buf[64];

    (void)k; (void)depth;
    snprintf(buf, sizeof buf, "%04o", (unsigned)*(const int *)f);
    put_string(fp, buf);
}

static void
octal_range(const struct wq_config_key *k, char *buf, size_t len)
{
    snprintf(buf, len, "octal %04llo..%04llo", k->min, k->max);
}

/* LIST */

static int
list_from_text(void *cfg, const struct wq_config_key *k, const char *s,
    char *msg, size_t len)
{
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

static int
list_from_setting(void *cfg, const struct wq_config_key *k,
    const config_setting_t *s, int type, char *msg, size_t len)
{
    int n, i;
    char **v;

    if (!is_list_setting(type))
        return WRONG_TYPE;
    n = config_setting_length(s);
    for (i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            snprintf(msg, len, "item %d is %s, expected a string", i + 1,
                wq_config_libconfig_type_name(config_setting_type(e)));
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

static void
list_put(FILE *fp, const void *f, const struct wq_config_key *k,
    size_t depth)
{
    const struct wq_config_list *l = f;

    (void)k; (void)depth;
    fputc('[', fp);
    for (size_t i = 0; i < l->n; i++) {
        fputs(i > 0 ? ", " : " ", fp);
        put_string(fp, l->v[i]);
    }
    fputs(" ]", fp);
}

static void
list_range(const struct wq_config_key *k, char *buf, size_t len)
{
    snprintf(buf, len, "list of strings, at least %lld", k->min);
}

static void
list_free_field(const struct wq_config_key *k, void *f)
{
    (void)k;
    list_free(f);
}

/* INT_LIST */

/* An item read as long long, clamped into an int (the range check sees
 * the unclamped value). */
static int
clamp_int(long long v)
{
    return (int)(v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : v);
}

static int
ints_from_text(void *cfg, const struct wq_config_key *k, const char *s,
    char *msg, size_t len)
{
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
            free(raw);
            free(v);
            return not_a(k, s, msg, len);
        }
        v[n] = clamp_int(raw[n]);
        n++;
        p = end + (*end == ',');
        p += strspn(p, " \t");
    }
    rc = check_ints(cfg, k, v, n, raw, msg, len);
    free(raw);
    return rc;
}

static int
ints_from_setting(void *cfg, const struct wq_config_key *k,
    const config_setting_t *s, int type, char *msg, size_t len)
{
    long long *raw;
    int n, i, *v;

    if (!is_list_setting(type))
        return WRONG_TYPE;
    n = config_setting_length(s);
    raw = xreallocarray(NULL, (size_t)n + 1, sizeof *raw);
    v = xreallocarray(NULL, (size_t)n + 1, sizeof *v);
    for (i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        int et = config_setting_type(e);

        if (!is_int_setting(et)) {
            snprintf(msg, len, "item %d is %s, expected an integer", i + 1,
                wq_config_libconfig_type_name(et));
            free(raw);
            free(v);
            return -1;
        }
        raw[i] = config_setting_get_int64(e);
        v[i] = clamp_int(raw[i]);
    }
    i = check_ints(cfg, k, v, (size_t)n, raw, msg, len);
    free(raw);
    return i;
}

static void
ints_put(FILE *fp, const void *f, const struct wq_config_key *k,
    size_t depth)
{
    const struct wq_config_ints *l = f;

    (void)k; (void)depth;
    fputc('[', fp);
    for (size_t i = 0; i < l->n; i++)
        fprintf(fp, "%s%d", i > 0 ? ", " : " ", l->v[i]);
    fputs(" ]", fp);
}

static void
ints_range(const struct wq_config_key *k, char *buf, size_t len)
{
    snprintf(buf, len, "list of integers %lld..%lld", k->min, k->max);
}

static void
ints_free_field(const struct wq_config_key *k, void *f)
{
    (void)k;
    ints_free(f);
}

/* GROUPS: read from a file by config.c (groups_load), element by element */

static void
groups_put(FILE *fp, const void *f, const struct wq_config_key *k,
    size_t depth)
{
    const struct wq_config_groups *g = f;
    int in = (int)(4 * (depth + 1));

    if (g->n == 0) {
        fputs("( )", fp);
        return;
    }
    fputs("(\n", fp);
    for (size_t i = 0; i < g->n; i++) {
        const void *e = wq_config_group_elem(k, g, i);

        fprintf(fp, "%*s{\n", in, "");
        for (size_t j = 0; j < k->nsub; j++) {
            fprintf(fp, "%*s%s = ", in + 4, "", k->sub[j].key);
            wq_config_put_value(fp, e, &k->sub[j], depth + 2);
            fputs(";\n", fp);
        }
        fprintf(fp, "%*s}%s\n", in, "", i + 1 < g->n ? "," : "");
    }
    fprintf(fp, "%*s)", in - 4, "");
}

static void
groups_range(const struct wq_config_key *k, char *buf, size_t len)
{
    (void)k;
    snprintf(buf, len, "list of groups");
}

static void
groups_free_field(const struct wq_config_key *k, void *f)
{
    wq_config_groups_free(k, f);
}

/* ---- the table of types -------------------------------------------------- */

static const struct wq_config_type_ops types[] = {
    [WQ_CONFIG_STRING] = { "a string", check_string, text_from_setting,
        string_put, string_range, string_free, 1, NULL },
    [WQ_CONFIG_INT] = { "an integer", int_from_text, int_from_setting,
        int_put, int_range, NULL, 0, NULL },
    [WQ_CONFIG_BOOL] = { "true or false", bool_from_text, bool_from_setting,
        bool_put, bool_range, NULL, 0, NULL },
    [WQ_CONFIG_ENUM] = { "a string", check_enum, text_from_setting,
        enum_put, enum_range, NULL, 1, NULL },
    [WQ_CONFIG_DURATION] = { "a duration: integer seconds or a string like "
        "\"30s\", \"500ms\", \"5m\", \"2h\"", quantity_from_text,
        duration_from_setting, quantity_put, quantity_range, NULL, 1, NULL },
    [WQ_CONFIG_SIZE] = { "a size: integer bytes or a string like \"512M\", "
        "\"2G\" (K, M, G, T: powers of 1024)", quantity_from_text,
        size_from_setting, quantity_put, quantity_range, NULL, 1, NULL },
    [WQ_CONFIG_OCTAL] = { "an octal string, like \"0077\"", check_octal,
        octal_from_setting, octal_put, octal_range, NULL, 1, NULL },
    [WQ_CONFIG_LIST] = { "a list of strings, like [\"a\", \"b\"]",
        list_from_text, list_from_setting, list_put, list_range,
        list_free_field, 1, " (comma-separated)" },
    [WQ_CONFIG_INT_LIST] = { "a list of integers, like [65, 78]",
        ints_from_text, ints_from_setting, ints_put, ints_range,
        ints_free_field, 0, " (comma-separated)" },
    [WQ_CONFIG_GROUPS] = { "a list of groups, like "
        "( { a = 1; }, { a = 2; } )", wq_config_groups_from_text, NULL,
        groups_put, groups_range, groups_free_field, 1,
        " (libconfig syntax: ( { ... }, { ... } ))" },
};

const struct wq_config_type_ops *
wq_config_type(const struct wq_config_key *k)
{
    return &types[k->type];
}

static const char *
expected(const struct wq_config_key *k)
{
    return types[k->type].expected;
}

int
wq_config_set_from_text(void *cfg, const struct wq_config_key *k,
    const char *s, char *msg, size_t len)
{
    return types[k->type].from_text(cfg, k, s, msg, len);
}

int
wq_config_set_from_setting(void *cfg, const struct wq_config_key *k,
    const config_setting_t *s, char *msg, size_t len)
{
    int type = config_setting_type(s), rc = WRONG_TYPE;

    if (types[k->type].from_setting != NULL)
        rc = types[k->type].from_setting(cfg, k, s, type, msg, len);
    if (rc != WRONG_TYPE)
        return rc;
    snprintf(msg, len, "expected %s, got %s", expected(k),
        wq_config_libconfig_type_name(type));
    return -1;
}

void
wq_config_value_free(const struct wq_config_key *k, void *cfg)
{
    if (types[k->type].free != NULL)
        types[k->type].free(k, field(cfg, k));
}

void
wq_config_put_value(FILE *fp, const void *cfg, const struct wq_config_key *k,
    size_t depth)
{
    types[k->type].put(fp, cfield(cfg, k), k, depth);
}
