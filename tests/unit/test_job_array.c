/* test_job_array.c - unit tests for policies/job_array: data-driven cases of sbatch's documented
 * --array forms (spec -> the task indices, %max and the environment's step; or the exact error),
 * one cmocka test per case, and the ID_TASK references. Never touches the network, the disk or
 * Slurm. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job_array.h"

/* One case: a spec with the site bound, and either the tasks ("0,1,2"), %max, min, max and step
 * it gives, or the start of the error message it must give. */
struct array_case {
    const char *name;
    const char *spec;
    int max_tasks; /* 0 = the default */
    const char *tasks;
    int max_running, min, max, step;
    const char *error; /* prefix of the message; NULL when it parses */
};

static const struct array_case cases[] = {
    /* sbatch(1): "--array=0-15", "--array=0,6,16-32", "--array=0-15:4", "--array=0-15%4" */
    {"range_0_15_has_16_tasks", "0-15", 0, "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", 0, 0, 15, 1,
     NULL},
    {"list_0_4_7_has_3_tasks_and_step_1", "0,4,7", 0, "0,4,7", 0, 0, 7, 1, NULL},
    {"list_with_a_range_0_6_16_32", "0,6,16-20", 0, "0,6,16,17,18,19,20", 0, 0, 20, 1, NULL},
    {"range_with_step_0_15_4", "0-15:4", 0, "0,4,8,12", 0, 0, 12, 4, NULL},
    {"range_with_step_keeps_its_step", "1-10:3", 0, "1,4,7,10", 0, 1, 10, 3, NULL},
    {"percent_max_1_7_2", "1-7%2", 0, "1,2,3,4,5,6,7", 2, 1, 7, 1, NULL},
    {"list_and_range_with_percent_max", "0-3,8%2", 0, "0,1,2,3,8", 2, 0, 8, 1, NULL},
    {"single_index", "5", 0, "5", 0, 5, 5, 1, NULL},
    {"single_index_with_max", "0%1", 0, "0", 1, 0, 0, 1, NULL},
    {"a_range_of_one", "3-3", 0, "3", 0, 3, 3, 1, NULL},
    {"duplicates_count_once", "0-3,2,3", 0, "0,1,2,3", 0, 0, 3, 1, NULL},
    {"unsorted_list_is_sorted", "7,0,4", 0, "0,4,7", 0, 0, 7, 1, NULL},
    /* SLURM_ARRAY_TASK_STEP as sbatch --array gave it on Slurm 22.05.8 (measured): the step of
     * the first A-B:S, else 1, whatever the gaps */
    {"evenly_spaced_list_has_step_1_as_in_slurm", "0,5,10", 0, "0,5,10", 0, 0, 10, 1, NULL},
    {"step_of_the_first_stepped_range_then_a_list", "0-7:2,20", 0, "0,2,4,6,20", 0, 0, 20, 2, NULL},
    {"step_of_a_stepped_range_after_an_index", "0,3-9:3", 0, "0,3,6,9", 0, 0, 9, 3, NULL},
    {"step_with_percent_max", "1-9:2%2", 0, "1,3,5,7,9", 2, 1, 9, 2, NULL},
    {"step_larger_than_range", "2-5:10", 0, "2", 0, 2, 2, 10, NULL},
    {"exactly_the_site_bound", "1-4", 4, "1,2,3,4", 0, 1, 4, 1, NULL},
    {"max_above_task_count_is_kept", "0-1%10", 0, "0,1", 10, 0, 1, 1, NULL},
    {"empty_is_refused", "", 0, NULL, 0, 0, 0, 0, "the array spec is empty"},
    {"over_the_site_bound_is_refused", "0-4", 4, NULL, 0, 0, 0, 0,
     "the array \"0-4\" has more than 4 tasks"},
    {"default_bound_is_1000", "0-1000", 0, NULL, 0, 0, 0, 0,
     "the array \"0-1000\" has more than 1000 tasks"},
    {"huge_range_is_refused_before_allocating", "0-4000000", 0, NULL, 0, 0, 0, 0,
     "the array \"0-4000000\" has more than 1000 tasks"},
    {"reversed_range_is_refused", "5-2", 0, NULL, 0, 0, 0, 0,
     "bad array spec \"5-2\": the range 5-2 ends before it starts; write 2-5"},
    {"negative_index_is_refused", "-1-3", 0, NULL, 0, 0, 0, 0, "bad array spec \"-1-3\" at"},
    {"index_above_the_maximum_is_refused", "4000001", 0, NULL, 0, 0, 0, 0,
     "bad array spec \"4000001\" at"},
    {"zero_step_is_refused", "0-7:0", 0, NULL, 0, 0, 0, 0,
     "bad array spec \"0-7:0\": the step after ':' must be"},
    {"zero_max_is_refused", "0-7%0", 0, NULL, 0, 0, 0, 0,
     "bad array spec \"0-7%0\": %MAX must be a whole number"},
    {"missing_max_is_refused", "0-7%", 0, NULL, 0, 0, 0, 0, "bad array spec \"0-7%\": %MAX"},
    {"max_in_the_middle_is_refused", "0-3%2,5", 0, NULL, 0, 0, 0, 0,
     "bad array spec \"0-3%2,5\": unexpected \",5\""},
    {"spaces_are_refused", "0, 4", 0, NULL, 0, 0, 0, 0, "bad array spec \"0, 4\" at \" 4\""},
    {"trailing_comma_is_refused", "0,4,", 0, NULL, 0, 0, 0, 0, "bad array spec \"0,4,\" at \"\""},
    {"open_range_is_refused", "3-", 0, NULL, 0, 0, 0, 0,
     "bad array spec \"3-\": a range A-B needs an end index"},
    {"letters_are_refused", "a-b", 0, NULL, 0, 0, 0, 0, "bad array spec \"a-b\" at \"a-b\""},
    {"step_without_range_is_refused", "3:2", 0, NULL, 0, 0, 0, 0,
     "bad array spec \"3:2\": unexpected \":2\""},
};

static void tasks_format(const job_array *a, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < a->n_tasks && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%d", i ? "," : "", a->tasks[i]);
}

static void array_case_run(void **state)
{
    const struct array_case *tc = *state;
    job_array a;
    char err[512] = "", got[4096];
    job_array_init(&a);
    int rc = job_array_parse(tc->spec, tc->max_tasks, &a, err, sizeof err);
    if (tc->error != NULL) {
        if (rc != -EINVAL) fail_msg("\"%s\": rc %d, want -EINVAL", tc->spec, rc);
        if (strncmp(err, tc->error, strlen(tc->error)) != 0)
            fail_msg("\"%s\": error \"%s\", want it to start with \"%s\"", tc->spec, err,
                     tc->error);
        assert_int_equal(a.n_tasks, 0);
        assert_null(a.tasks);
        return;
    }
    if (rc != 0) fail_msg("\"%s\": rc %d (%s)", tc->spec, rc, err);
    tasks_format(&a, got, sizeof got);
    assert_string_equal(got, tc->tasks);
    assert_int_equal(a.max_running, tc->max_running);
    assert_int_equal(a.min, tc->min);
    assert_int_equal(a.max, tc->max);
    assert_int_equal(a.step, tc->step);
    assert_string_equal(a.spec, tc->spec);
    job_array_close(&a);
    assert_null(a.tasks);
}

static void parse_again_releases_the_previous_tasks(void **state)
{
    (void)state;
    job_array a;
    char err[256];
    job_array_init(&a);
    assert_int_equal(job_array_parse("0-9", 0, &a, err, sizeof err), 0);
    assert_int_equal(job_array_parse("3", 0, &a, err, sizeof err), 0); /* ASan: no leak */
    assert_int_equal(a.n_tasks, 1);
    assert_int_equal(job_array_parse("x", 0, &a, err, sizeof err), -EINVAL);
    assert_int_equal(a.n_tasks, 0);
    job_array_close(&a);
    job_array_close(NULL);
}

static void too_long_spec_is_refused(void **state)
{
    (void)state;
    char spec[JOB_ARRAY_SPEC_MAX + 8], err[256];
    memset(spec, '1', sizeof spec - 1);
    spec[sizeof spec - 1] = '\0';
    job_array a;
    job_array_init(&a);
    assert_int_equal(job_array_parse(spec, 0, &a, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "longer than 127 characters"));
}

static void ref_parse_reads_id_and_task(void **state)
{
    (void)state;
    int64_t id = 0;
    int task = 0;
    assert_int_equal(job_array_ref_parse("12", &id, &task), 0);
    assert_int_equal(id, 12);
    assert_int_equal(task, -1);
    assert_int_equal(job_array_ref_parse("12_3", &id, &task), 0);
    assert_int_equal(id, 12);
    assert_int_equal(task, 3);
    assert_int_equal(job_array_ref_parse("7_0", &id, &task), 0);
    assert_int_equal(task, 0);
}

static void ref_parse_refuses_anything_else(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",    "0",   "0_1", "12_",   "_3",  "12_-1",      "12_3_4",
        "a_1", "12x", " 12", "12_ 3", "-12", "12_4000001", "1234567890123456789"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t id = 0;
        int task = 0;
        if (job_array_ref_parse(bad[i], &id, &task) != -EINVAL) fail_msg("\"%s\" accepted", bad[i]);
    }
}

int main(void)
{
    size_t n = sizeof cases / sizeof cases[0];
    static const struct CMUnitTest dedicated[] = {
        cmocka_unit_test(parse_again_releases_the_previous_tasks),
        cmocka_unit_test(too_long_spec_is_refused),
        cmocka_unit_test(ref_parse_reads_id_and_task),
        cmocka_unit_test(ref_parse_refuses_anything_else),
    };
    size_t nd = sizeof dedicated / sizeof dedicated[0];
    struct CMUnitTest *tests = calloc(n + nd, sizeof *tests);
    if (tests == NULL) return 1;
    for (size_t i = 0; i < n; i++) {
        tests[i].name = cases[i].name;
        tests[i].test_func = array_case_run;
        tests[i].initial_state = (void *)&cases[i];
    }
    memcpy(tests + n, dedicated, sizeof dedicated);
    int rc = _cmocka_run_group_tests("job_array", tests, n + nd, NULL, NULL);
    free(tests);
    return rc;
}
