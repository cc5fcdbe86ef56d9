/* test_rank.c - unit tests of the order-statistic set, against a brute-force count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "rank.h"

#define N 3000

static size_t brute_count(const rank_node *nodes, const int *in, size_t n, double key)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i] && nodes[i].key >= key) c++;
    return c;
}

static void test_empty_set_counts_nothing(void **state)
{
    (void)state;
    rank_set s;
    rank_init(&s);
    assert_int_equal(rank_size(&s), 0);
    assert_int_equal(rank_count_at_or_above(&s, -1e300), 0);
}

static void test_counts_ties_and_bounds(void **state)
{
    (void)state;
    rank_set s;
    rank_node n[4];
    rank_init(&s);
    rank_insert(&s, &n[0], 1.0, 1);
    rank_insert(&s, &n[1], 2.0, 2);
    rank_insert(&s, &n[2], 2.0, 3);
    rank_insert(&s, &n[3], 3.0, 4);
    assert_int_equal(rank_count_at_or_above(&s, 2.0), 3);
    assert_int_equal(rank_count_at_or_above(&s, 2.5), 1);
    assert_int_equal(rank_count_at_or_above(&s, 0.0), 4);
    assert_int_equal(rank_count_at_or_above(&s, 3.5), 0);
    rank_remove(&s, &n[1]);
    assert_int_equal(rank_count_at_or_above(&s, 2.0), 2);
    assert_int_equal(rank_size(&s), 3);
}

static void test_random_inserts_and_removes_match_a_brute_count(void **state)
{
    (void)state;
    static rank_node nodes[N];
    static int in[N];
    unsigned seed = 12345;
    const char *env = getenv("ANTENNA_SEED");
    if (env) seed = (unsigned)strtoul(env, NULL, 10);
    srand(seed);
    rank_set s;
    rank_init(&s);
    size_t live = 0;
    for (int step = 0; step < 20 * N; step++) {
        size_t i = (size_t)rand() % N;
        if (in[i]) {
            rank_remove(&s, &nodes[i]);
            in[i] = 0;
            live--;
        } else {
            rank_insert(&s, &nodes[i], (double)(rand() % 200) / 4.0, (int64_t)i);
            in[i] = 1;
            live++;
        }
        if (step % 97 == 0) {
            double k = (double)(rand() % 220) / 4.0 - 2.0;
            if (rank_count_at_or_above(&s, k) != brute_count(nodes, in, N, k))
                fail_msg("seed %u step %d: count at or above %g differs", seed, step, k);
            assert_int_equal(rank_size(&s), live);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_set_counts_nothing),
        cmocka_unit_test(test_counts_ties_and_bounds),
        cmocka_unit_test(test_random_inserts_and_removes_match_a_brute_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
