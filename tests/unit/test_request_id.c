/* test_request_id.c - unit tests of request ids: what is well-formed, and fresh ids. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "request_id.h"

static void test_letters_digits_dot_underscore_dash_are_well_formed(void **state)
{
    (void)state;
    assert_true(request_id_valid("it-abc123"));
    assert_true(request_id_valid("A.b_C-9"));
    assert_true(request_id_valid("x"));
}

static void test_empty_and_null_are_malformed(void **state)
{
    (void)state;
    assert_false(request_id_valid(""));
    assert_false(request_id_valid(NULL));
}

static void test_spaces_slashes_colons_and_controls_are_malformed(void **state)
{
    (void)state;
    assert_false(request_id_valid("a b"));
    assert_false(request_id_valid("a/b"));
    assert_false(request_id_valid("a:b")); /* would break the AdminComment tag */
    assert_false(request_id_valid("a\nb"));
    assert_false(request_id_valid("a\"b"));
    assert_false(request_id_valid("caf\xc3\xa9"));
}

static void test_64_chars_are_well_formed_65_are_not(void **state)
{
    (void)state;
    char id[REQUEST_ID_MAX + 2];
    memset(id, 'a', REQUEST_ID_MAX);
    id[REQUEST_ID_MAX] = '\0';
    assert_true(request_id_valid(id));
    id[REQUEST_ID_MAX] = 'a';
    id[REQUEST_ID_MAX + 1] = '\0';
    assert_false(request_id_valid(id));
}

static void test_made_ids_are_well_formed_and_differ(void **state)
{
    (void)state;
    char a[REQUEST_ID_MAKE_LEN], b[REQUEST_ID_MAKE_LEN];
    assert_int_equal(request_id_make(a, sizeof a), 0);
    assert_int_equal(request_id_make(b, sizeof b), 0);
    assert_true(request_id_valid(a));
    assert_true(request_id_valid(b));
    assert_string_not_equal(a, b);
    assert_int_equal(strlen(a) > 13, 1);
    assert_int_equal(a[12], '-');
    assert_memory_equal(a, b, 12); /* one process, one prefix */
}

static void test_make_refuses_a_small_buffer(void **state)
{
    (void)state;
    char small[8] = "zzzzzzz";
    assert_int_equal(request_id_make(small, sizeof small), -ENOSPC);
    assert_string_equal(small, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_letters_digits_dot_underscore_dash_are_well_formed),
        cmocka_unit_test(test_empty_and_null_are_malformed),
        cmocka_unit_test(test_spaces_slashes_colons_and_controls_are_malformed),
        cmocka_unit_test(test_64_chars_are_well_formed_65_are_not),
        cmocka_unit_test(test_made_ids_are_well_formed_and_differ),
        cmocka_unit_test(test_make_refuses_a_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
