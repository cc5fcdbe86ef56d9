/* test_table.c - unit tests for client/table: column alignment, cell cleaning, RFC 3339 parsing and
 * local-time cells. Prints only into memory streams; never touches the network. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "table.h"

/* Prints t into a string (caller frees). */
static char *render(const table *t)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(table_print(t, f), 0);
    fclose(f);
    return buf;
}

static void print_aligns_columns_two_spaces_apart_without_trailing_blanks(void **state)
{
    (void)state;
    static const char *const headers[] = {"ID", "NAME", "STATE"};
    table *t = table_new(3, headers);
    assert_non_null(t);
    const char *r1[] = {"7", "train", "running"};
    const char *r2[] = {"12", "x", "queued"};
    assert_int_equal(table_add_row(t, r1), 0);
    assert_int_equal(table_add_row(t, r2), 0);
    assert_int_equal(table_rows(t), 2);
    char *out = render(t);
    assert_string_equal(out, "ID  NAME   STATE\n"
                             "7   train  running\n"
                             "12  x      queued\n");
    free(out);
    table_free(t);
}

static void cells_show_dash_when_empty_and_spaces_for_control_characters(void **state)
{
    (void)state;
    static const char *const headers[] = {"A", "B", "C"};
    table *t = table_new(3, headers);
    const char *row[] = {NULL, "", "x\ty\nz"};
    assert_int_equal(table_add_row(t, row), 0);
    char *out = render(t);
    assert_string_equal(out, "A  B  C\n-  -  x y z\n");
    free(out);
    table_free(t);
}

static void width_counts_utf8_characters_not_bytes(void **state)
{
    (void)state;
    static const char *const headers[] = {"NAME", "X"};
    table *t = table_new(2, headers);
    const char *r1[] = {"Université", "1"};
    const char *r2[] = {"ulb", "2"};
    table_add_row(t, r1);
    table_add_row(t, r2);
    char *out = render(t);
    assert_string_equal(out, "NAME        X\n"
                             "Université  1\n"
                             "ulb         2\n");
    free(out);
    table_free(t);
}

static void many_rows_grow_the_table(void **state)
{
    (void)state;
    static const char *const headers[] = {"N"};
    table *t = table_new(1, headers);
    char cell[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(cell, sizeof cell, "%d", i);
        const char *row[] = {cell};
        assert_int_equal(table_add_row(t, row), 0);
    }
    assert_int_equal(table_rows(t), 1000);
    char *out = render(t);
    assert_non_null(strstr(out, "\n999\n"));
    free(out);
    table_free(t);
}

static void new_refuses_zero_columns_and_free_accepts_null(void **state)
{
    (void)state;
    assert_null(table_new(0, NULL));
    table_free(NULL);
}

static void time_parse_reads_rfc3339_utc(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        time_t t;
    } ok[] = {
        {"2026-11-25T21:44:36Z", 1795643076},
        {"2026-11-25T21:44:36.123Z", 1795643076},
        {"2026-11-25T21:44:36+00:00", 1795643076},
        {"1970-01-01T00:00:00Z", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        time_t t = -1;
        assert_int_equal(table_time_parse(ok[i].s, &t), 0);
        assert_int_equal(t, ok[i].t);
    }
    static const char *const bad[] = {
        "",     "2026-11-25",           "2026-11-25 21:44:36Z",      "2026-11-25T21:44:36",
        "junk", "2026-13-25T21:44:36Z", "2026-11-25T21:44:36+01:00", "2026-11-25T21:44:36.Z",
        NULL,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        time_t t;
        if (table_time_parse(bad[i], &t) != -EINVAL) fail_msg("\"%s\" accepted", bad[i]);
    }
}

static void time_local_converts_to_the_local_zone(void **state)
{
    (void)state;
    char buf[64];
    setenv("TZ", "UTC0", 1);
    tzset();
    assert_string_equal(table_time_local("2026-11-25T21:44:36Z", false, buf, sizeof buf),
                        "2026-11-25 21:44");
    setenv("TZ", "CET-1", 1); /* UTC+1, no tzdata needed */
    tzset();
    assert_string_equal(table_time_local("2026-11-25T23:44:36Z", false, buf, sizeof buf),
                        "2026-11-26 00:44");
    assert_string_equal(table_time_local("2026-11-25T23:44:36Z", true, buf, sizeof buf),
                        "2026-11-26 00:44:36");
    unsetenv("TZ");
    tzset();
}

static void time_local_shows_dash_for_null_and_copies_garbage(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(table_time_local(NULL, false, buf, sizeof buf), "-");
    assert_string_equal(table_time_local("", false, buf, sizeof buf), "-");
    assert_string_equal(table_time_local("yesterday", false, buf, sizeof buf), "yesterday");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(print_aligns_columns_two_spaces_apart_without_trailing_blanks),
        cmocka_unit_test(cells_show_dash_when_empty_and_spaces_for_control_characters),
        cmocka_unit_test(width_counts_utf8_characters_not_bytes),
        cmocka_unit_test(many_rows_grow_the_table),
        cmocka_unit_test(new_refuses_zero_columns_and_free_accepts_null),
        cmocka_unit_test(time_parse_reads_rfc3339_utc),
        cmocka_unit_test(time_local_converts_to_the_local_zone),
        cmocka_unit_test(time_local_shows_dash_for_null_and_copies_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
