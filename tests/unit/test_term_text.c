/* test_term_text.c - unit tests for term_text.c: what a job's output looks like on a terminal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "term_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Escapes `in` (n bytes, cut into chunks of `chunk` bytes) and returns the text (free it). */
static char *escaped(const char *in, size_t n, size_t chunk)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    term_text t;
    term_text_init(&t);
    for (size_t i = 0; i < n; i += chunk)
        assert_int_equal(term_text_write(&t, out, in + i, n - i < chunk ? n - i : chunk), 0);
    assert_int_equal(term_text_finish(&t, out), 0);
    fclose(out);
    return buf;
}

static void test_escape_sequence_is_shown_not_sent(void **state)
{
    (void)state;
    static const char in[] = "a\x1b[2Jb\x1b]0;pwned\x07";
    char *s = escaped(in, sizeof in - 1, 64);
    assert_string_equal(s, "a\\x1b[2Jb\\x1b]0;pwned\\x07");
    free(s);
}

static void test_newline_and_tab_pass(void **state)
{
    (void)state;
    char *s = escaped("x\ty\nz\n", 6, 64);
    assert_string_equal(s, "x\ty\nz\n");
    free(s);
}

static void test_carriage_return_backspace_and_del_are_escaped(void **state)
{
    (void)state;
    char *s = escaped("ok\rno\b\x7f", 7, 64);
    assert_string_equal(s, "ok\\x0dno\\x08\\x7f");
    free(s);
}

static void test_utf8_c1_csi_is_escaped_even_when_cut_between_chunks(void **state)
{
    (void)state;
    static const char in[] = "a\xc2\x9b"
                             "31mb";
    for (size_t chunk = 1; chunk <= 3; chunk++) {
        char *s = escaped(in, sizeof in - 1, chunk);
        assert_string_equal(s, "a\\xc2\\x9b31mb");
        free(s);
    }
}

static void test_raw_c1_byte_is_escaped(void **state)
{
    (void)state;
    char *s = escaped("\x9b"
                      "2J",
                      3, 64);
    assert_string_equal(s, "\\x9b2J");
    free(s);
}

static void test_utf8_text_passes_unchanged(void **state)
{
    (void)state;
    static const char in[] = "caf\xc3\xa9 \xc2\xa0 \xe2\x82\xac \xf0\x9f\x9a\x80 \xe2\x80\x9b";
    for (size_t chunk = 1; chunk <= 4; chunk++) {
        char *s = escaped(in, sizeof in - 1, chunk);
        assert_string_equal(s, in);
        free(s);
    }
}

static void test_a_lone_c2_at_the_end_is_kept(void **state)
{
    (void)state;
    char *s = escaped("x\xc2", 2, 1);
    assert_string_equal(s, "x\xc2");
    free(s);
}

static void test_stream_escapes_what_is_written_to_it(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    FILE *f = term_text_stream(out);
    assert_non_null(f);
    fputs("hi\x1b[0m\n", f);
    assert_int_equal(fclose(f), 0);
    fclose(out);
    assert_string_equal(buf, "hi\\x1b[0m\n");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_sequence_is_shown_not_sent),
        cmocka_unit_test(test_newline_and_tab_pass),
        cmocka_unit_test(test_carriage_return_backspace_and_del_are_escaped),
        cmocka_unit_test(test_utf8_c1_csi_is_escaped_even_when_cut_between_chunks),
        cmocka_unit_test(test_raw_c1_byte_is_escaped),
        cmocka_unit_test(test_utf8_text_passes_unchanged),
        cmocka_unit_test(test_a_lone_c2_at_the_end_is_kept),
        cmocka_unit_test(test_stream_escapes_what_is_written_to_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
