/* test_csv.c - unit tests for client/csv: RFC 4180 quoting and records.
 * Writes only into memory streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "csv.h"

/* Writes one record of `n` fields into a string (caller frees). */
static char *record(size_t n, const char *const *fields)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(csv_row(f, n, fields), 0);
    fclose(f);
    return buf;
}

static void plain_fields_are_written_as_they_are_and_end_with_crlf(void **state)
{
    (void)state;
    const char *f[] = {"alice", "12.5000", "", NULL, "a b"};
    char *out = record(5, f);
    assert_string_equal(out, "alice,12.5000,,,a b\r\n");
    free(out);
}

static void fields_with_commas_quotes_or_newlines_are_quoted_with_quotes_doubled(void **state)
{
    (void)state;
    const char *f[] = {"Acme, Inc.", "say \"hi\"", "two\nlines", "cr\rhere", "<b>&\""};
    char *out = record(5, f);
    assert_string_equal(out, "\"Acme, Inc.\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\rhere\","
                             "\"<b>&\"\"\"\r\n");
    free(out);
}

static void fields_with_leading_or_trailing_spaces_are_quoted(void **state)
{
    (void)state;
    const char *f[] = {" lead", "trail ", "in side"};
    char *out = record(3, f);
    assert_string_equal(out, "\" lead\",\"trail \",in side\r\n");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_fields_are_written_as_they_are_and_end_with_crlf),
        cmocka_unit_test(fields_with_commas_quotes_or_newlines_are_quoted_with_quotes_doubled),
        cmocka_unit_test(fields_with_leading_or_trailing_spaces_are_quoted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
