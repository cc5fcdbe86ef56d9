/* test_ui_assets.c - unit tests of the embedded web console: lookup, types, caching, headers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "ui_assets.h"

static void test_ui_root_and_slash_serve_the_index(void **state)
{
    (void)state;
    const ui_asset *a = NULL, *b = NULL;
    assert_int_equal(ui_assets_lookup("/ui", &a), 0);
    assert_int_equal(ui_assets_lookup("/ui/", &b), 0);
    assert_string_equal(a->name, "index.html");
    assert_ptr_equal(a, b);
    assert_non_null(strstr(a->data, "<!doctype html>"));
    assert_int_equal(strlen(a->data), a->len);
}

static void test_known_files_are_served_with_their_type(void **state)
{
    (void)state;
    static const struct {
        const char *path, *type;
    } cases[] = {
        {"/ui/index.html", "text/html; charset=utf-8"},
        {"/ui/app.js", "text/javascript; charset=utf-8"},
        {"/ui/app.css", "text/css; charset=utf-8"},
        {"/ui/favicon.svg", "image/svg+xml"},
        {"/ui/vendor/uPlot-1.6.32.iife.min.js", "text/javascript; charset=utf-8"},
        {"/ui/vendor/uPlot-1.6.32.LICENSE.txt", "text/plain; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ui_asset *a = NULL;
        assert_int_equal(ui_assets_lookup(cases[i].path, &a), 0);
        assert_string_equal(a->name, cases[i].path + 4);
        assert_true(a->len > 0);
        assert_string_equal(ui_assets_content_type(a->name), cases[i].type);
    }
}

static void test_unknown_extension_is_octet_stream(void **state)
{
    (void)state;
    assert_string_equal(ui_assets_content_type("x.exe"), "application/octet-stream");
    assert_string_equal(ui_assets_content_type("noext"), "application/octet-stream");
    assert_string_equal(ui_assets_content_type("dir.js/file"), "application/octet-stream");
}

static void test_unknown_file_is_not_found(void **state)
{
    (void)state;
    const ui_asset *a = NULL;
    assert_int_equal(ui_assets_lookup("/ui/nope.js", &a), -ENOENT);
    assert_int_equal(ui_assets_lookup("/ui/vendor", &a), -ENOENT);
    assert_int_equal(ui_assets_lookup("/ui/APP.JS", &a), -ENOENT);
    assert_null(a);
}

static void test_traversal_and_unclean_names_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "/ui/../scheduler/api.c",
        "/ui/vendor/../../Makefile",
        "/ui/..",
        "/ui/./app.js",
        "/ui//app.js",
        "/ui/vendor//x.js",
        "/ui/app.js/",
        "/ui/%2e%2e/api.c",
        "/ui/a\\b",
        "/ui/app.js\n",
        "/ui/ app.js",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const ui_asset *a = NULL;
        assert_int_equal(ui_assets_lookup(bad[i], &a), -EINVAL);
        assert_null(a);
    }
}

static void test_only_the_ui_prefix_is_the_consoles(void **state)
{
    (void)state;
    assert_true(ui_assets_path_is_ui("/ui"));
    assert_true(ui_assets_path_is_ui("/ui/app.js"));
    assert_false(ui_assets_path_is_ui("/uix"));
    assert_false(ui_assets_path_is_ui("/v1/ui"));
    assert_false(ui_assets_path_is_ui("ui/app.js"));
    assert_false(ui_assets_path_is_ui(NULL));
    const ui_asset *a = NULL;
    assert_int_equal(ui_assets_lookup("/uix/app.js", &a), -EINVAL);
}

static void test_vendor_files_are_cached_and_own_files_revalidated(void **state)
{
    (void)state;
    assert_string_equal(ui_assets_cache_control("vendor/uPlot-1.6.32.iife.min.js"),
                        "public, max-age=86400");
    assert_string_equal(ui_assets_cache_control("app.js"), "no-cache");
    assert_string_equal(ui_assets_cache_control("index.html"), "no-cache");
}

static void test_etags_are_quoted_and_differ_between_files(void **state)
{
    (void)state;
    const ui_asset *a = NULL, *b = NULL;
    assert_int_equal(ui_assets_lookup("/ui/app.js", &a), 0);
    assert_int_equal(ui_assets_lookup("/ui/app.css", &b), 0);
    size_t n = strlen(a->etag);
    assert_true(n > 2 && a->etag[0] == '"' && a->etag[n - 1] == '"');
    assert_string_not_equal(a->etag, b->etag);
}

static void test_security_headers_forbid_inline_external_and_framing(void **state)
{
    (void)state;
    size_t n = 0;
    const ui_header *h = ui_assets_security_headers(&n);
    const char *csp = NULL, *nosniff = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(h[i].name, "Content-Security-Policy") == 0) csp = h[i].value;
        if (strcmp(h[i].name, "X-Content-Type-Options") == 0) nosniff = h[i].value;
        /* never a header the HTTP server writes itself (it would refuse it) */
        assert_int_not_equal(strcasecmp(h[i].name, "Content-Type"), 0);
    }
    assert_non_null(csp);
    assert_non_null(strstr(csp, "default-src 'self'"));
    assert_non_null(strstr(csp, "frame-ancestors 'none'"));
    assert_non_null(strstr(csp, "object-src 'none'"));
    assert_null(strstr(csp, "unsafe-inline"));
    assert_null(strstr(csp, "unsafe-eval"));
    assert_null(strstr(csp, "http"));
    assert_string_equal(nosniff, "nosniff");
}

static void test_index_has_no_inline_script_or_external_resource(void **state)
{
    (void)state;
    const ui_asset *a = NULL;
    assert_int_equal(ui_assets_lookup("/ui/", &a), 0);
    assert_null(strstr(a->data, "<script>"));
    assert_null(strstr(a->data, "style="));
    assert_null(strstr(a->data, "http://"));
    assert_null(strstr(a->data, "https://"));
    static const char *const handlers[] = {
        "onclick=", "onload=", "onsubmit=", "onerror=", "oninput=", "onchange=", "javascript:"};
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        assert_null(strcasestr(a->data, handlers[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ui_root_and_slash_serve_the_index),
        cmocka_unit_test(test_known_files_are_served_with_their_type),
        cmocka_unit_test(test_unknown_extension_is_octet_stream),
        cmocka_unit_test(test_unknown_file_is_not_found),
        cmocka_unit_test(test_traversal_and_unclean_names_are_refused),
        cmocka_unit_test(test_only_the_ui_prefix_is_the_consoles),
        cmocka_unit_test(test_vendor_files_are_cached_and_own_files_revalidated),
        cmocka_unit_test(test_etags_are_quoted_and_differ_between_files),
        cmocka_unit_test(test_security_headers_forbid_inline_external_and_framing),
        cmocka_unit_test(test_index_has_no_inline_script_or_external_resource),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
