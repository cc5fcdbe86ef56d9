/* test_auth.c - unit tests of bearer token generation, hashing and header parsing, and of the
 * limits of authentication: failed attempts per peer (with their per-minute counts) and the request
 * rate per token. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

static void test_hash_equal_compares_whole_hashes(void **state)
{
    (void)state;
    assert_true(auth_hash_equal("abcd", "abcd"));
    assert_false(auth_hash_equal("abcd", "abce"));
    assert_false(auth_hash_equal("abcd", "abc"));
    assert_false(auth_hash_equal(NULL, "abc"));
}

static void test_peer_ip_drops_the_port(void **state)
{
    (void)state;
    char ip[AUTH_PEER_MAX];
    assert_int_equal(auth_peer_ip("127.0.0.1:53412", ip, sizeof ip), 0);
    assert_string_equal(ip, "127.0.0.1");
    assert_int_equal(auth_peer_ip("[::1]:8443", ip, sizeof ip), 0);
    assert_string_equal(ip, "::1");
    assert_int_equal(auth_peer_ip("10.0.0.9", ip, sizeof ip), 0);
    assert_string_equal(ip, "10.0.0.9");
}

static void test_peers_refuse_after_the_limit_until_the_minute_ends(void **state)
{
    (void)state;
    auth_peers *p = NULL;
    int64_t t = 6000; /* a minute's start */
    assert_int_equal(auth_peers_new(64, 3, &p), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(auth_peers_check(p, "10.0.0.1", t + i), 0);
        auth_peers_fail(p, "10.0.0.1", t + i);
    }
    assert_int_equal(auth_peers_check(p, "10.0.0.1", t + 10), 50); /* Retry-After: to the minute */
    assert_int_equal(auth_peers_check(p, "10.0.0.2", t + 10), 0);  /* another peer may try */
    assert_int_equal(auth_peers_check(p, "10.0.0.1", t + 60), 0);  /* the next minute */
    auth_peers_free(p);
}

static void test_peers_drain_gives_one_count_per_peer_and_minute(void **state)
{
    (void)state;
    auth_peers *p = NULL;
    auth_peer_count out[8];
    int64_t t = 6000;
    assert_int_equal(auth_peers_new(64, 5, &p), 0);
    for (int i = 0; i < 7; i++) {
        if (auth_peers_check(p, "10.0.0.1", t + i) == 0) auth_peers_fail(p, "10.0.0.1", t + i);
    }
    auth_peers_fail(p, "10.0.0.2", t + 1);
    assert_int_equal(auth_peers_drain(p, t + 30, false, out, 8), 0); /* the minute goes on */
    auth_peers_fail(p, "10.0.0.1", t + 61); /* the next minute: the first one ended */
    size_t n = auth_peers_drain(p, t + 62, false, out, 8);
    assert_int_equal(n, 2);
    unsigned failures = 0, refused = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].minute, t);
        failures += out[i].failures;
        refused += out[i].refused;
    }
    assert_int_equal(failures, 6); /* 5 of .1, 1 of .2 */
    assert_int_equal(refused, 2);
    assert_int_equal(auth_peers_drain(p, t + 62, false, out, 8), 0); /* taken once */
    n = auth_peers_drain(p, t + 62, true, out, 8);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].peer, "10.0.0.1");
    assert_int_equal(out[0].failures, 1);
    auth_peers_free(p);
}

static void test_peers_table_is_bounded_and_keeps_evicted_counts(void **state)
{
    (void)state;
    auth_peers *p = NULL;
    auth_peer_count out[64];
    char ip[32];
    assert_int_equal(auth_peers_new(16, 100, &p), 0);
    for (int i = 0; i < 1000; i++) {
        snprintf(ip, sizeof ip, "10.0.%d.%d", i / 256, i % 256);
        auth_peers_fail(p, ip, 6000 + i % 50);
    }
    size_t n = auth_peers_drain(p, 6000, true, out, 64);
    assert_true(n <= 17); /* 16 slots and the "(evicted)" counts */
    unsigned total = 0;
    for (size_t i = 0; i < n; i++)
        total += out[i].failures;
    assert_int_equal(total, 1000);
    auth_peers_free(p);
}

static void test_rate_allows_a_burst_then_refuses_until_refilled(void **state)
{
    (void)state;
    auth_rate *r = NULL;
    const char *h = "aaaa";
    assert_int_equal(auth_rate_new(64, 2, 3, &r), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(auth_rate_take(r, h, 1000), 0);
    assert_int_equal(auth_rate_take(r, h, 1000), 1);      /* empty: one more in 0.5 s, said 1 s */
    assert_int_equal(auth_rate_take(r, "bbbb", 1000), 0); /* another token has its own bucket */
    assert_int_equal(auth_rate_take(r, h, 1500), 0);      /* refilled by 1 */
    assert_int_equal(auth_rate_take(r, h, 1500), 1);
    auth_rate_free(r);
}

static void test_rate_zero_never_limits(void **state)
{
    (void)state;
    auth_rate *r = NULL;
    assert_int_equal(auth_rate_new(0, 0, 0, &r), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(auth_rate_take(r, "aaaa", 1000), 0);
    auth_rate_free(r);
    assert_int_equal(auth_rate_new(0, 5, 0, &r), -EINVAL);
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
        cmocka_unit_test(test_hash_equal_compares_whole_hashes),
        cmocka_unit_test(test_peer_ip_drops_the_port),
        cmocka_unit_test(test_peers_refuse_after_the_limit_until_the_minute_ends),
        cmocka_unit_test(test_peers_drain_gives_one_count_per_peer_and_minute),
        cmocka_unit_test(test_peers_table_is_bounded_and_keeps_evicted_counts),
        cmocka_unit_test(test_rate_allows_a_burst_then_refuses_until_refilled),
        cmocka_unit_test(test_rate_zero_never_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
