/*
 * ui.h - the dashboard's static files (producer/ui/), served by
 * workq-producer under /ui.
 *
 * The files are compiled into the binary (producer/ui/embed.sh writes
 * them as byte arrays at build time), so an installed producer needs no
 * directory of assets and fetches nothing at run time.  They hold no
 * data: every number the pages show comes from the /v1/ API, fetched by
 * the pages' scripts with the token the operator typed, so the files
 * themselves are public.  This module only finds a file by its path and
 * names the header fields every /ui answer carries; the routing and the
 * answer are api.c's.
 */
#ifndef WQ_PRODUCER_UI_H
#define WQ_PRODUCER_UI_H

#include <stddef.h>

struct ui_asset {
    const char *name;           /* "app.js": the path under /ui/ */
    const char *ctype;          /* Content-Type */
    const unsigned char *data;
    size_t len;
};

/* Generated from producer/ui/ (build/gen/ui_assets.c). */
extern const struct ui_asset ui_assets[];
extern const size_t ui_assets_count;

/*
 * The header fields of every /ui answer (for wq_http_set_fields): a
 * Content-Security-Policy that allows scripts, styles, images and fetches
 * from this origin only and no inline script or style, no framing
 * (clickjacking), no MIME sniffing, no Referer, and no caching beyond a
 * revalidation.
 */
extern const char *const ui_fields[];

/*
 * ui_find returns the asset at `path`, a request path starting with
 * "/ui": "/ui" and "/ui/" are index.html.  NULL when there is no such
 * file.  Pure; the assets are static.
 */
const struct ui_asset *ui_find(const char *path);

#endif
