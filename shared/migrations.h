/*
 * migrations.h - the numbered SQL migrations of shared/migrations/, built
 * into the library by shared/migrations/embed.sh.  Versions ascend from 1
 * without gaps; migrate.c applies them.
 */
#ifndef WQ_MIGRATIONS_H
#define WQ_MIGRATIONS_H

#include <stddef.h>

struct wq_migration {
    int version;
    const char *name;
    const char *sql;
};

extern const struct wq_migration wq_migrations[];
extern const size_t wq_migrations_count;

#endif
