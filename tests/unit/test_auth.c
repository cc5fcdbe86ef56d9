/* test_auth.c - unit tests of bearer token generation, hashing and header parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

static void test_generated_tokens_have_prefix_and_length(void **state)
{
    (void)state;
    char t[AUTH_TOKEN_LEN + 1];
    assert_int_equal(auth_token_generate(t, sizeof t), 0);
    assert_int_equal(strlen(t), AUTH_TOKEN_LEN);
    assert_memory_equal(t, "ant_", 4);
    for (size_t i = 4; i < AUTH_TOKEN_LEN; i++)
        assert_non_null(strchr("0123456789abcdef", t[i]));
}

static void test_generated_tokens_differ(void **state)
{
    (void)state;
    char a[AUTH_TOKEN_LEN + 1], b[AUTH_TOKEN_LEN + 1];
    assert_int_equal(auth_token_generate(a, sizeof a), 0);
    assert_int_equal(auth_token_generate(b, sizeof b), 0);
    assert_string_not_equal(a, b);
}

static void test_generate_refuses_small_buffer(void **state)
{
    (void)state;
    char t[AUTH_TOKEN_LEN];
    assert_int_equal(auth_token_generate(t, sizeof t), -EINVAL);
}

static void test_hash_is_sha256_hex(void **state)
{
    (void)state;
    char h[AUTH_HASH_HEX_LEN + 1];
    assert_int_equal(auth_token_hash("abc", h, sizeof h), 0);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_bearer_parse_cases(void **state)
{
    (void)state;
    static const struct {
        const char *header;
        int rc;
        const char *token;
    } cases[] = {
        {"Bearer ant_abc", 0, "ant_abc"},   {"bearer   ant_abc  ", 0, "ant_abc"},
        {"  BEARER\tx-y_z", 0, "x-y_z"},    {"Basic dXNlcjpwYXNz", -EINVAL, NULL},
        {"Bearer", -EINVAL, NULL},          {"Bearer ", -EINVAL, NULL},
        {"Bearerant_abc", -EINVAL, NULL},   {"Bearer ant abc", -EINVAL, NULL},
        {"Bearer ant_ab;c", -EINVAL, NULL}, {"", -EINVAL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[128] = "";
        int rc = auth_bearer_parse(cases[i].header, out, sizeof out);
        if (rc != cases[i].rc) fail_msg("case %zu (%s): rc %d", i, cases[i].header, rc);
        if (rc == 0) assert_string_equal(out, cases[i].token);
    }
    char out[128];
    assert_int_equal(auth_bearer_parse(NULL, out, sizeof out), -EINVAL);
}

static void test_bearer_parse_refuses_overlong_token(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(auth_bearer_parse("Bearer 12345678", out, sizeof out), -EINVAL);
    assert_int_equal(auth_bearer_parse("Bearer 1234567", out, sizeof out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated_tokens_have_prefix_and_length),
        cmocka_unit_test(test_generated_tokens_differ),
        cmocka_unit_test(test_generate_refuses_small_buffer),
        cmocka_unit_test(test_hash_is_sha256_hex),
        cmocka_unit_test(test_bearer_parse_cases),
        cmocka_unit_test(test_bearer_parse_refuses_overlong_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
