/*
 * ui.c - finds the dashboard's embedded files and names the header
 * fields their answers carry (see ui.h).
 */
#include <string.h>

#include "ui.h"

const char *const ui_fields[] = {
    "Content-Security-Policy",
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options", "nosniff",
    "X-Frame-Options", "DENY",
    "Referrer-Policy", "no-referrer",
    "Cache-Control", "no-cache",
    NULL,
};

const struct ui_asset *
ui_find(const char *path)
{
    const char *name;

    if (strncmp(path, "/ui", 3) != 0)
        return NULL;
    name = path + 3;
    if (*name == '\0' || strcmp(name, "/") == 0)
        name = "index.html";
    else if (*name == '/')
        name++;
    else
        return NULL;    /* "/uifoo" */
    for (size_t i = 0; i < ui_assets_count; i++)
        if (strcmp(ui_assets[i].name, name) == 0)
            return &ui_assets[i];
    return NULL;
}
