/*
 * config_impl.h - private to the configuration module: what config.c
 * (loading), config_types.c (the per-type table) and config_print.c
 * (dump and --help) share.  Nothing outside shared/config*.c includes it.
 *
 * Every value type of the key table (enum wq_config_type, config.h) has
 * one row of struct wq_config_type_ops: how it is read from text (a
 * default, the environment) and from a libconfig setting, how it is
 * written back in libconfig syntax, how its range reads in --help and
 * what it owns.  A new type is one row in config_types.c; no switch on
 * the type is left elsewhere.
 */
#ifndef WQ_CONFIG_IMPL_H
#define WQ_CONFIG_IMPL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "config.h"

#define WQ_CONFIG_DEFAULT_PATH WQ_SYSCONFDIR "/workq/workq.conf"
#define WQ_CONFIG_FILE_SUFFIX  "_file"

struct wq_config_type_ops {
    /* "an integer": what a value of this type looks like, for messages */
    const char *expected;
    /*
     * Converts `s`, written as text (a table default, an environment
     * variable; lists comma-separated with blanks around items trimmed,
     * "" the empty list), or the libconfig setting `s` of libconfig type
     * `type`, checks it against k's range and stores it in the field of
     * k in cfg.  Return 0, or -1 with a message in msg; from_setting
     * returns 1 for a libconfig type the key does not take (the caller
     * says what was expected).  from_setting is NULL for GROUPS, which
     * the loader reads element by element (config.c, groups_load).
     */
    int (*from_text)(void *cfg, const struct wq_config_key *k,
        const char *s, char *msg, size_t len);
    int (*from_setting)(void *cfg, const struct wq_config_key *k,
        const config_setting_t *s, int type, char *msg, size_t len);
    /* Writes the field f of k in libconfig syntax (secrets hidden);
     * depth is the indentation level of the key. */
    void (*put)(FILE *fp, const void *f, const struct wq_config_key *k,
        size_t depth);
    /* "integer 1..1024", "one of a|b": the type and range, for --help */
    void (*range)(const struct wq_config_key *k, char *buf, size_t len);
    /* Frees what the field f owns; NULL for types that own nothing. */
    void (*free)(const struct wq_config_key *k, void *f);
    int quoted;                 /* --help shows the default in quotes */
    const char *env_note;       /* how the environment writes it, or NULL */
};

/* The row of k's type. */
const struct wq_config_type_ops *wq_config_type(const struct wq_config_key *k);

/*
 * The field of key k in `cfg`: a struct wq_config, or for the keys of a
 * group's own table (config.h, GROUPS) one element of the list.
 */
static inline void *
field(void *cfg, const struct wq_config_key *k)
{
    return (char *)cfg + k->offset;
}

static inline const void *
cfield(const void *cfg, const struct wq_config_key *k)
{
    return (const char *)cfg + k->offset;
}

/* Frees a string that may hold a secret, wiping it first. */
static inline void
wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* "brokers" of "kafka.brokers". */
static inline const char *
leaf(const char *key)
{
    const char *dot = strrchr(key, '.');

    return dot != NULL ? dot + 1 : key;
}

/* ---- config_types.c ---- */

/* Converts text (see from_text) for k, whatever its type. */
int wq_config_set_from_text(void *cfg, const struct wq_config_key *k,
    const char *s, char *msg, size_t len);
/* Converts a libconfig setting for k; "expected X, got Y" when its
 * libconfig type does not fit. */
int wq_config_set_from_setting(void *cfg, const struct wq_config_key *k,
    const config_setting_t *s, char *msg, size_t len);
/* Stores a copy of s in the STRING field of k in cfg, unchecked (a secret
 * read from a file). */
void wq_config_set_string(void *cfg, const struct wq_config_key *k,
    const char *s);
/* Frees what the field of k in cfg owns and leaves it empty. */
void wq_config_value_free(const struct wq_config_key *k, void *cfg);
/* Writes the field of k in cfg in libconfig syntax. */
void wq_config_put_value(FILE *fp, const void *cfg,
    const struct wq_config_key *k, size_t depth);
/* "a string", "a list": libconfig's name of a setting type. */
const char *wq_config_libconfig_type_name(int type);
/* The element i of a list of groups of k. */
void *wq_config_group_elem(const struct wq_config_key *k,
    const struct wq_config_groups *g, size_t i);
/* Frees the elements of a list of groups of k and empties it. */
void wq_config_groups_free(const struct wq_config_key *k,
    struct wq_config_groups *g);

/* ---- config.c ---- */

/* "WORKQ_KAFKA_BROKERS" (+ "_FILE" if `file`), into buf. */
const char *wq_config_env_name(const struct wq_config_key *k, int file,
    char *buf, size_t len);
/* A list of groups written as text, in libconfig syntax (the GROUPS
 * type's from_text). */
int wq_config_groups_from_text(void *cfg, const struct wq_config_key *k,
    const char *s, char *msg, size_t len);

#endif
