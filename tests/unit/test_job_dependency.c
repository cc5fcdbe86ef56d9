/* test_job_dependency.c - unit tests for policies/job_dependency: the parser (tables of sbatch's
 * documented --dependency forms, and the exact refusals), the canonical text, each condition
 * against its prerequisite's state, and the reverse index. Never touches the network, the disk
 * or Slurm. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job_dependency.h"

/* ---- the parser: accepted forms -> their canonical text ---- */

static const struct {
    const char *in, *canon;
    size_t n;
} parse_ok[] = {
    /* sbatch(1): after:job_id[[+time][:job_id[+time]...]] (without +time) */
    {"after:12", "after:12", 1},
    {"after:12:13", "after:12:13", 2},
    {"afterany:7", "afterany:7", 1},
    {"afterany:7:8:9", "afterany:7:8:9", 3},
    {"afterok:1", "afterok:1", 1},
    {"afternotok:3", "afternotok:3", 1},
    {"singleton", "singleton", 1},
    /* conditions joined by ',' (all must hold) */
    {"afterok:1,afternotok:2", "afterok:1,afternotok:2", 2},
    {"afterok:1:2,afterany:3,singleton", "afterok:1:2,afterany:3,singleton", 4},
    {"singleton,afterok:5", "singleton,afterok:5", 2},
    /* the same condition twice counts once */
    {"afterok:1,afterok:1", "afterok:1", 1},
    {"afterok:1:1", "afterok:1", 1},
    {"singleton,singleton", "singleton", 1},
    /* one kind split by another prints as given */
    {"afterok:1,afterany:2,afterok:3", "afterok:1,afterany:2,afterok:3", 3},
    {"afterok:9007199254740990", "afterok:9007199254740990", 1},
};

static void parse_accepts_sbatch_forms_and_prints_them_canonically(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_ok / sizeof parse_ok[0]; i++) {
        job_dependency d;
        char err[256], out[JOB_DEPENDENCY_TEXT_MAX];
        int rc = job_dependency_parse(parse_ok[i].in, &d, err, sizeof err);
        if (rc != 0) fail_msg("\"%s\": rc %d: %s", parse_ok[i].in, rc, err);
        if (d.n != parse_ok[i].n)
            fail_msg("\"%s\": %zu items, want %zu", parse_ok[i].in, d.n, parse_ok[i].n);
        assert_true(job_dependency_format(&d, out, sizeof out) > 0);
        if (strcmp(out, parse_ok[i].canon) != 0)
            fail_msg("\"%s\": printed \"%s\", want \"%s\"", parse_ok[i].in, out, parse_ok[i].canon);
    }
}

static void parse_keeps_kinds_and_ids_in_order(void **state)
{
    (void)state;
    job_dependency d;
    assert_int_equal(job_dependency_parse("afternotok:4:5,after:6,singleton", &d, NULL, 0), 0);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.items[0].kind, JOB_DEP_AFTERNOTOK);
    assert_int_equal(d.items[0].id, 4);
    assert_int_equal(d.items[1].kind, JOB_DEP_AFTERNOTOK);
    assert_int_equal(d.items[1].id, 5);
    assert_int_equal(d.items[2].kind, JOB_DEP_AFTER);
    assert_int_equal(d.items[2].id, 6);
    assert_int_equal(d.items[3].kind, JOB_DEP_SINGLETON);
    assert_int_equal(d.items[3].id, 0);
}

/* ---- the parser: refusals, each with the words its message must hold ---- */

static const struct {
    const char *in, *says;
} parse_bad[] = {
    {"", "empty"},
    {"afterok:1?afterok:2", "'?' (any one of the conditions) is not supported"},
    {"afterok:1?afternotok:1", "join them with ','"},
    {"after:12+5", "+time"},
    {"after:12+5:13", "a delay after the start"},
    {"afterok:12_3", "array tasks are not supported yet"},
    {"afterok:12_*", "array task"},
    {"aftercorr:12", "\"aftercorr\" is not supported"},
    {"afterburstbuffer:12", "\"afterburstbuffer\" is not supported"},
    {"expand:12", "\"expand\" is not supported"},
    {"afterfoo:12", "unknown dependency type \"afterfoo\""},
    {"AFTEROK:12", "unknown dependency type"},
    {"afterok", "needs a job id"},
    {"afterok:", "needs a job id after each ':'"},
    {"afterok:1:", "needs a job id after each ':'"},
    {"afterok::1", "needs a job id"},
    {"afterok:abc", "\"abc\" is not a job id"},
    {"afterok:-1", "is not a job id"},
    {"afterok:0", "job id 0 does not exist"},
    {"afterok:99999999999999999999", "too large"},
    {"afterok:1,", "an empty condition"},
    {",afterok:1", "an empty condition"},
    {"afterok:1,,afterok:2", "an empty condition"},
    {"singleton:3", "takes no job id"},
    {"afterok: 1", "a space"},
    {"afterok:1\n", "non-printable"},
    {"afterok:1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17", "more than 16 prerequisites"},
};

static void parse_refuses_unsupported_forms_saying_what_to_write(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_bad / sizeof parse_bad[0]; i++) {
        job_dependency d;
        char err[256] = "";
        d.n = 7;
        int rc = job_dependency_parse(parse_bad[i].in, &d, err, sizeof err);
        if (rc != -EINVAL) fail_msg("\"%s\": rc %d, want -EINVAL", parse_bad[i].in, rc);
        if (d.n != 0) fail_msg("\"%s\": %zu items left on a refusal", parse_bad[i].in, d.n);
        if (strstr(err, parse_bad[i].says) == NULL)
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", parse_bad[i].in, err,
                     parse_bad[i].says);
    }
}

static void parse_refuses_null_and_text_too_long(void **state)
{
    (void)state;
    job_dependency d;
    char err[128];
    assert_int_equal(job_dependency_parse(NULL, &d, err, sizeof err), -EINVAL);
    char big[JOB_DEPENDENCY_TEXT_MAX + 8];
    memset(big, '1', sizeof big - 1);
    memcpy(big, "afterok:", 8);
    big[sizeof big - 1] = '\0';
    assert_int_equal(job_dependency_parse(big, &d, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "longer than"));
}

static void format_reports_a_buffer_too_small(void **state)
{
    (void)state;
    job_dependency d;
    char out[8];
    assert_int_equal(job_dependency_parse("afterok:123456", &d, NULL, 0), 0);
    assert_int_equal(job_dependency_format(&d, out, sizeof out), -ENOSPC);
    assert_string_equal(out, "");
}

static void format_prints_an_expanded_singleton_once(void **state)
{
    (void)state;
    job_dependency d = {
        .n = 3,
        .items = {{JOB_DEP_SINGLETON, 0}, {JOB_DEP_SINGLETON, 41}, {JOB_DEP_SINGLETON, 42}}};
    char out[64];
    assert_int_equal(job_dependency_format(&d, out, sizeof out), 9);
    assert_string_equal(out, "singleton");
}

static void kind_names_parse_back(void **state)
{
    (void)state;
    for (int k = 0; k < JOB_DEP_KIND_COUNT; k++) {
        job_dependency_kind back;
        assert_int_equal(job_dependency_kind_parse(job_dependency_kind_name(k), &back), 0);
        assert_int_equal(back, k);
    }
    job_dependency_kind back;
    assert_int_equal(job_dependency_kind_parse("aftercorr", &back), -EINVAL);
    assert_string_equal(job_dependency_kind_name(JOB_DEP_KIND_COUNT), "?");
}

/* ---- each condition against its prerequisite's state ---- */

static const struct {
    job_dependency_kind kind;
    const char *state;
    bool terminal, in_slurm;
    job_dependency_status want;
} checks[] = {
    /* not in Slurm yet: Antenna holds the dependent */
    {JOB_DEP_AFTEROK, "queued", false, false, JOB_DEP_WAIT},
    {JOB_DEP_AFTERNOTOK, "dispatching", false, false, JOB_DEP_WAIT},
    {JOB_DEP_AFTER, "queued", false, false, JOB_DEP_WAIT},
    {JOB_DEP_AFTERANY, "queued", false, false, JOB_DEP_WAIT},
    /* in Slurm: Slurm enforces it (after: already met once it runs) */
    {JOB_DEP_AFTEROK, "dispatched", false, true, JOB_DEP_PASS},
    {JOB_DEP_AFTEROK, "running", false, true, JOB_DEP_PASS},
    {JOB_DEP_AFTERNOTOK, "pending", false, true, JOB_DEP_PASS},
    {JOB_DEP_AFTERANY, "running", false, true, JOB_DEP_PASS},
    {JOB_DEP_AFTER, "pending", false, true, JOB_DEP_PASS},
    {JOB_DEP_AFTER, "running", false, true, JOB_DEP_MET},
    {JOB_DEP_AFTER, "suspended", false, true, JOB_DEP_MET},
    /* ended: resolved by Antenna */
    {JOB_DEP_AFTEROK, "completed", true, true, JOB_DEP_MET},
    {JOB_DEP_AFTEROK, "failed", true, true, JOB_DEP_NEVER},
    {JOB_DEP_AFTEROK, "cancelled", true, false, JOB_DEP_NEVER},
    {JOB_DEP_AFTEROK, "timeout", true, true, JOB_DEP_NEVER},
    {JOB_DEP_AFTEROK, "lost", true, true, JOB_DEP_NEVER},
    {JOB_DEP_AFTERNOTOK, "completed", true, true, JOB_DEP_NEVER},
    {JOB_DEP_AFTERNOTOK, "failed", true, true, JOB_DEP_MET},
    {JOB_DEP_AFTERNOTOK, "cancelled", true, false, JOB_DEP_MET},
    {JOB_DEP_AFTERNOTOK, "node_fail", true, true, JOB_DEP_MET},
    {JOB_DEP_AFTERANY, "failed", true, true, JOB_DEP_MET},
    {JOB_DEP_AFTERANY, "completed", true, true, JOB_DEP_MET},
    {JOB_DEP_AFTER, "cancelled", true, false, JOB_DEP_MET},
    /* singleton: held by Antenna until the earlier job ends, never passed on */
    {JOB_DEP_SINGLETON, "queued", false, false, JOB_DEP_WAIT},
    {JOB_DEP_SINGLETON, "running", false, true, JOB_DEP_WAIT},
    {JOB_DEP_SINGLETON, "failed", true, true, JOB_DEP_MET},
};

static void check_judges_each_condition_by_its_prerequisites_state(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        job_dependency_status st = job_dependency_check(checks[i].kind, checks[i].state,
                                                        checks[i].terminal, checks[i].in_slurm);
        if (st != checks[i].want)
            fail_msg("%s on %s: %d, want %d", job_dependency_kind_name(checks[i].kind),
                     checks[i].state, st, checks[i].want);
    }
}

static void never_reason_names_the_condition_and_the_prerequisite(void **state)
{
    (void)state;
    char buf[128];
    job_dependency_never_reason(JOB_DEP_AFTERNOTOK, 12, "completed", buf, sizeof buf);
    assert_string_equal(buf, "dependency afternotok:12 can never be met: job 12 ended completed");
}

/* ---- the reverse index ---- */

static void index_take_gives_only_the_dependents_of_that_prerequisite(void **state)
{
    (void)state;
    job_dependency_index *ix = job_dependency_index_new();
    assert_non_null(ix);
    assert_int_equal(job_dependency_index_add(ix, 1, 10), 0);
    assert_int_equal(job_dependency_index_add(ix, 1, 11), 0);
    assert_int_equal(job_dependency_index_add(ix, 2, 10), 0);
    assert_int_equal(job_dependency_index_add(ix, 1, 10), 0); /* idempotent */
    assert_int_equal(job_dependency_index_size(ix), 3);
    int64_t *ids = NULL;
    long n = job_dependency_index_take(ix, 1, &ids);
    assert_int_equal(n, 2);
    assert_true((ids[0] == 10 && ids[1] == 11) || (ids[0] == 11 && ids[1] == 10));
    free(ids);
    assert_int_equal(job_dependency_index_size(ix), 1);
    assert_int_equal(job_dependency_index_take(ix, 1, &ids), 0);
    assert_null(ids);
    job_dependency_index_free(ix);
}

static void index_remove_forgets_one_edge(void **state)
{
    (void)state;
    job_dependency_index *ix = job_dependency_index_new();
    assert_int_equal(job_dependency_index_add(ix, 5, 50), 0);
    assert_int_equal(job_dependency_index_add(ix, 5, 51), 0);
    job_dependency_index_remove(ix, 5, 50);
    job_dependency_index_remove(ix, 5, 99); /* not there: nothing */
    int64_t *ids = NULL;
    assert_int_equal(job_dependency_index_take(ix, 5, &ids), 1);
    assert_int_equal(ids[0], 51);
    free(ids);
    job_dependency_index_free(ix);
    job_dependency_index_free(NULL);
}

static void index_keeps_every_edge_while_it_grows(void **state)
{
    (void)state;
    job_dependency_index *ix = job_dependency_index_new();
    for (int64_t p = 1; p <= 1000; p++)
        for (int64_t d = 0; d < 3; d++)
            assert_int_equal(job_dependency_index_add(ix, p, 10000 + p * 3 + d), 0);
    assert_int_equal(job_dependency_index_size(ix), 3000);
    for (int64_t p = 1; p <= 1000; p++) {
        int64_t *ids = NULL;
        assert_int_equal(job_dependency_index_take(ix, p, &ids), 3);
        for (int k = 0; k < 3; k++)
            assert_true(ids[k] >= 10000 + p * 3 && ids[k] < 10000 + p * 3 + 3);
        free(ids);
    }
    assert_int_equal(job_dependency_index_size(ix), 0);
    job_dependency_index_free(ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_accepts_sbatch_forms_and_prints_them_canonically),
        cmocka_unit_test(parse_keeps_kinds_and_ids_in_order),
        cmocka_unit_test(parse_refuses_unsupported_forms_saying_what_to_write),
        cmocka_unit_test(parse_refuses_null_and_text_too_long),
        cmocka_unit_test(format_reports_a_buffer_too_small),
        cmocka_unit_test(format_prints_an_expanded_singleton_once),
        cmocka_unit_test(kind_names_parse_back),
        cmocka_unit_test(check_judges_each_condition_by_its_prerequisites_state),
        cmocka_unit_test(never_reason_names_the_condition_and_the_prerequisite),
        cmocka_unit_test(index_take_gives_only_the_dependents_of_that_prerequisite),
        cmocka_unit_test(index_remove_forgets_one_edge),
        cmocka_unit_test(index_keeps_every_edge_while_it_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
