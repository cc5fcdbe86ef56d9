/* test_job_cache.c - the job answer cache: served only for its generation, bounded, NULL-safe. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "job_cache.h"

static const job_cache_owner alice = {.user_id = 7, .partner = "ulb"};

static void an_answer_put_is_served_for_its_generation(void **state)
{
    (void)state;
    job_cache *jc = job_cache_new(8);
    assert_non_null(jc);
    assert_int_equal(job_cache_put(jc, 42, 3, &alice, "{\"id\":42}", 9), 0);
    job_cache_owner o;
    size_t len = 0;
    const char *b = job_cache_get(jc, 42, 3, &o, &len);
    assert_non_null(b);
    assert_int_equal(len, 9);
    assert_memory_equal(b, "{\"id\":42}", 9);
    assert_int_equal(o.user_id, 7);
    assert_string_equal(o.partner, "ulb");
    assert_int_equal(job_cache_hits(jc), 1);
    job_cache_free(jc);
}

static void an_answer_of_another_generation_is_never_served(void **state)
{
    (void)state;
    job_cache *jc = job_cache_new(8);
    assert_int_equal(job_cache_put(jc, 42, 3, &alice, "old", 3), 0);
    assert_null(job_cache_get(jc, 42, 4, NULL, NULL)); /* a change was committed since */
    assert_null(job_cache_get(jc, 42, 2, NULL, NULL));
    assert_int_equal(job_cache_hits(jc), 0);
    job_cache_free(jc);
}

static void a_job_sharing_a_slot_replaces_the_other(void **state)
{
    (void)state;
    job_cache *jc = job_cache_new(8);
    assert_int_equal(job_cache_put(jc, 1, 1, &alice, "one", 3), 0);
    assert_int_equal(job_cache_put(jc, 9, 1, &alice, "nine, longer", 12), 0); /* 9 % 8 == 1 */
    assert_null(job_cache_get(jc, 1, 1, NULL, NULL));
    size_t len = 0;
    const char *b = job_cache_get(jc, 9, 1, NULL, &len);
    assert_non_null(b);
    assert_memory_equal(b, "nine, longer", len);
    assert_int_equal(job_cache_put(jc, 1, 1, &alice, "1", 1), 0); /* shorter: reuses the room */
    b = job_cache_get(jc, 1, 1, NULL, &len);
    assert_int_equal(len, 1);
    assert_memory_equal(b, "1", 1);
    assert_null(job_cache_get(jc, 9, 1, NULL, NULL));
    job_cache_free(jc);
}

static void an_unknown_job_or_a_bad_argument_is_no_answer(void **state)
{
    (void)state;
    job_cache *jc = job_cache_new(0);
    assert_null(job_cache_get(jc, 5, 0, NULL, NULL));
    assert_null(job_cache_get(jc, 0, 0, NULL, NULL));
    assert_int_equal(job_cache_put(jc, 0, 0, &alice, "x", 1), -EINVAL);
    assert_int_equal(job_cache_put(jc, 5, 0, NULL, "x", 1), -EINVAL);
    assert_int_equal(job_cache_put(NULL, 5, 0, &alice, "x", 1), -EINVAL);
    assert_null(job_cache_get(NULL, 5, 0, NULL, NULL));
    assert_int_equal(job_cache_hits(NULL), 0);
    job_cache_free(jc);
    job_cache_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_answer_put_is_served_for_its_generation),
        cmocka_unit_test(an_answer_of_another_generation_is_never_served),
        cmocka_unit_test(a_job_sharing_a_slot_replaces_the_other),
        cmocka_unit_test(an_unknown_job_or_a_bad_argument_is_no_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
