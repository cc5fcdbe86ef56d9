/* ui_assets.h - the web console's static files (ui/), embedded at build time, served at /ui.
 *
 * Serves from memory only: never reads a file, never blocks the loop, never serves a name that is
 * not in the embedded table (so no path can reach outside ui/). Needs no token: the console's
 * files hold no data; every data call the page makes goes to /v1 with its bearer token. Every
 * answer carries the console's security headers (a strict Content-Security-Policy and friends).
 */
#ifndef ANTENNA_UI_ASSETS_H
#define ANTENNA_UI_ASSETS_H

#include <stdbool.h>
#include <stddef.h>

#include "http_server.h"

/* One embedded file: `name` is its path under ui/ ("index.html", "vendor/uPlot.iife.min.js"),
 * `etag` a quoted strong validator. Static data: never freed. */
typedef struct ui_asset {
    const char *name;
    const char *data;
    unsigned long len;
    const char *etag;
} ui_asset;

/* A response header every /ui answer carries. */
typedef struct ui_header {
    const char *name;
    const char *value;
} ui_header;

/* True when `path` (a request path, no query) is the console's: "/ui" or "/ui/..." (not "/uix"). */
bool ui_assets_path_is_ui(const char *path);

/* Finds the file for a request path: "/ui" and "/ui/" give index.html, "/ui/NAME" the file NAME.
 * Returns 0 and points *out at static data; -EINVAL for a path that is not a clean name under
 * /ui/ (empty segments, "." or "..", a backslash, a byte outside [A-Za-z0-9._/-]); -ENOENT for a
 * clean name that is not embedded. Pure; any thread. */
int ui_assets_lookup(const char *path, const ui_asset **out);

/* The Content-Type for a file name, by its extension (one place for the mapping); unknown ones
 * are "application/octet-stream". Static string. */
const char *ui_assets_content_type(const char *name);

/* The Cache-Control for a file: the vendored libraries (vendor/, named with their version) may be
 * cached for a day; the console's own files are revalidated on each load (ETag). Static string. */
const char *ui_assets_cache_control(const char *name);

/* The security headers of every /ui answer, *n set to their count. Static data. */
const ui_header *ui_assets_security_headers(size_t *n);

/* Answers `req` (whose path is the console's, see ui_assets_path_is_ui) on the loop thread from
 * memory: 200 with the file, its type, ETag and caching headers; 304 when If-None-Match names its
 * ETag; 404 for an unknown file, 400 for a malformed name, 405 for a method other than GET or HEAD
 * (the server sends no body for HEAD). Every answer carries ui_assets_security_headers. Answers
 * exactly once; loop thread only. */
void ui_assets_respond(http_request *req);

#endif
