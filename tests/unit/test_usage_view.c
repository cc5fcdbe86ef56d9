/* test_usage_view.c - unit tests for client/usage_view: exact hours, dates, the `antenna usage`
 * table with its TOTAL row and the CSV export (quoting, exact decimals, total record).
 * Prints only into memory streams; never touches the network. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "usage_view.h"

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL) fail_msg("bad test JSON: %s", e.text);
    return j;
}

/* Renders the JSON text as a table (csv 0) or CSV (csv 1) into a string (caller frees). */
static char *render(int csv, const char *text, const char *by, int *rc)
{
    json_t *j = parse(text);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    *rc = csv ? usage_view_print_csv(f, j, by) : usage_view_print_table(f, j, by);
    fclose(f);
    json_decref(j);
    return buf;
}

/* Usage by user: two rows (one with a comma and a quote in its key), the API's total. */
#define BY_USER                                                                                    \
    "{\"by\": \"user\", \"from\": \"2026-11-01\", \"to\": null, \"rows\": ["                       \
    "{\"key\": \"alice\", \"gpu_hours\": 12.5, \"cpu_hours\": 40.0, \"elapsed_gpu_hours\": 12.5,"  \
    " \"jobs\": 7, \"gpu_seconds\": 45000, \"cpu_seconds\": 144000},"                              \
    "{\"key\": \"bob \\\"the\\\" builder, jr\", \"gpu_hours\": 0.0002777777777777778,"             \
    " \"cpu_hours\": 0.5, \"jobs\": 1, \"gpu_seconds\": 1, \"cpu_seconds\": 1800}],"               \
    " \"total\": {\"gpu_hours\": 12.500277777777778, \"cpu_hours\": 40.5, \"jobs\": 8,"            \
    " \"gpu_seconds\": 45001, \"cpu_seconds\": 145800}}"

static void hours_are_exact_from_seconds_and_rounded_half_away_from_zero(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(usage_view_hours(5400, 4, b, sizeof b), "1.5000");
    assert_string_equal(usage_view_hours(1, 4, b, sizeof b), "0.0003");
    assert_string_equal(usage_view_hours(17, 2, b, sizeof b), "0.00");
    assert_string_equal(usage_view_hours(18, 2, b, sizeof b), "0.01");
    assert_string_equal(usage_view_hours(-1800, 2, b, sizeof b), "-0.50");
    assert_string_equal(usage_view_hours(-1, 2, b, sizeof b), "0.00");
    assert_string_equal(usage_view_hours(0, 0, b, sizeof b), "0");
    assert_string_equal(usage_view_hours(36000000000LL, 4, b, sizeof b), "10000000.0000");
}

static void dates_must_be_real_calendar_days(void **state)
{
    (void)state;
    assert_true(usage_view_date_valid("2026-11-01"));
    assert_true(usage_view_date_valid("2028-02-29"));
    assert_true(usage_view_date_valid("2000-02-29"));
    assert_false(usage_view_date_valid("2026-02-29"));
    assert_false(usage_view_date_valid("2100-02-29"));
    assert_false(usage_view_date_valid("2026-11-31"));
    assert_false(usage_view_date_valid("2026-13-01"));
    assert_false(usage_view_date_valid("2026-00-10"));
    assert_false(usage_view_date_valid("2026-1-01"));
    assert_false(usage_view_date_valid("2026-11-01T00:00:00Z"));
    assert_false(usage_view_date_valid("26-11-01"));
    assert_false(usage_view_date_valid(""));
    assert_false(usage_view_date_valid(NULL));
    assert_int_equal(usage_view_days_in_month(2026, 11), 30);
    assert_int_equal(usage_view_days_in_month(2028, 2), 29);
    assert_int_equal(usage_view_days_in_month(2026, 13), 0);
}

static void table_aligns_columns_and_ends_with_a_separator_and_the_total(void **state)
{
    (void)state;
    int rc;
    char *out = render(0, BY_USER, "user", &rc);
    assert_int_equal(rc, 2);
    assert_string_equal(out, "USER                   GPU_HOURS  CPU_HOURS  JOBS\n"
                             "alice                      12.50      40.00     7\n"
                             "bob \"the\" builder, jr       0.00       0.50     1\n"
                             "-------------------------------------------------\n"
                             "TOTAL                      12.50      40.50     8\n");
    free(out);
}

static void table_names_its_key_column_after_the_grouping(void **state)
{
    (void)state;
    int rc;
    char *out = render(0,
                       "{\"by\": \"gpu-type\", \"rows\": [{\"key\": \"h100\", \"gpu_seconds\": "
                       "7200, \"cpu_seconds\": 0, \"jobs\": 1}]}",
                       NULL, &rc);
    assert_int_equal(rc, 1);
    assert_string_equal(out, "GPU_TYPE  GPU_HOURS  CPU_HOURS  JOBS\n"
                             "h100           2.00       0.00     1\n"
                             "------------------------------------\n"
                             "TOTAL          2.00       0.00     1\n");
    free(out);
}

static void table_sums_the_rows_when_the_answer_has_no_total(void **state)
{
    (void)state;
    int rc;
    char *out = render(0,
                       "{\"rows\": [{\"key\": \"2026-11-03\", \"gpu_seconds\": 5400, "
                       "\"cpu_hours\": 1.25, \"jobs\": 2}, {\"key\": \"2026-11-04\", "
                       "\"gpu_seconds\": 1800, \"cpu_hours\": 0.5, \"jobs\": 1}]}",
                       "day", &rc);
    assert_int_equal(rc, 2);
    assert_string_equal(out, "DAY         GPU_HOURS  CPU_HOURS  JOBS\n"
                             "2026-11-03       1.50       1.25     2\n"
                             "2026-11-04       0.50       0.50     1\n"
                             "--------------------------------------\n"
                             "TOTAL            2.00       1.75     3\n");
    free(out);
}

static void table_shows_missing_and_hostile_fields_safely(void **state)
{
    (void)state;
    int rc;
    char *out = render(0, "{\"rows\": [{\"key\": \"a\\nb\\u001b[31m\", \"gpu_hours\": \"x\"}, 7]}",
                       "partner", &rc);
    assert_int_equal(rc, 2);
    assert_string_equal(out, "PARTNER   GPU_HOURS  CPU_HOURS  JOBS\n"
                             "a b [31m          -          -     -\n"
                             "-                 -          -     -\n"
                             "------------------------------------\n"
                             "TOTAL             -          -     -\n");
    free(out);
}

static void table_and_csv_refuse_an_answer_without_rows(void **state)
{
    (void)state;
    int rc;
    char *out = render(0, "{\"by\": \"user\"}", NULL, &rc);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(out, "");
    free(out);
    out = render(1, "{\"rows\": {}}", NULL, &rc);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(out, "");
    free(out);
}

static void csv_has_a_header_quoted_keys_exact_decimals_and_a_total_record(void **state)
{
    (void)state;
    int rc;
    char *out = render(1, BY_USER, "user", &rc);
    assert_int_equal(rc, 2);
    assert_string_equal(out, "user,gpu_hours,gpu_seconds,cpu_hours,cpu_seconds,jobs\r\n"
                             "alice,12.5000,45000,40.0000,144000,7\r\n"
                             "\"bob \"\"the\"\" builder, jr\",0.0003,1,0.5000,1800,1\r\n"
                             "TOTAL,12.5003,45001,40.5000,145800,8\r\n");
    free(out);
}

static void csv_names_the_gpu_type_column_with_an_underscore_and_leaves_unknowns_empty(void **state)
{
    (void)state;
    int rc;
    char *out = render(1, "{\"rows\": [{\"key\": \"\", \"gpu_hours\": 1.5}]}", "gpu-type", &rc);
    assert_int_equal(rc, 1);
    assert_string_equal(out, "gpu_type,gpu_hours,gpu_seconds,cpu_hours,cpu_seconds,jobs\r\n"
                             ",1.5000,,,,\r\n"
                             "TOTAL,1.5000,,,,\r\n");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hours_are_exact_from_seconds_and_rounded_half_away_from_zero),
        cmocka_unit_test(dates_must_be_real_calendar_days),
        cmocka_unit_test(table_aligns_columns_and_ends_with_a_separator_and_the_total),
        cmocka_unit_test(table_names_its_key_column_after_the_grouping),
        cmocka_unit_test(table_sums_the_rows_when_the_answer_has_no_total),
        cmocka_unit_test(table_shows_missing_and_hostile_fields_safely),
        cmocka_unit_test(table_and_csv_refuse_an_answer_without_rows),
        cmocka_unit_test(csv_has_a_header_quoted_keys_exact_decimals_and_a_total_record),
        cmocka_unit_test(
            csv_names_the_gpu_type_column_with_an_underscore_and_leaves_unknowns_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
