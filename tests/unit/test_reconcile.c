/* test_reconcile.c - the comparison of Antenna's jobs with slurmdbd's records, data-driven: each
 * row of `cases` is one situation (Antenna's jobs, the cluster's records) and the differences it
 * must give, in order; each case runs as a test of its own. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "reconcile.h"

#define T0   1800000000 /* a start time */
#define MAXN 6

struct want {
    reconcile_kind kind;
    int64_t slurm_job_id;
    int64_t antenna, slurm;
};

struct rcase {
    const char *name;
    reconcile_job jobs[MAXN];
    size_t n_jobs;
    reconcile_record recs[MAXN];
    size_t n_recs;
    struct want want[MAXN];
    size_t n_want;
    size_t jobs_compared;
};

/* An ended job of ulb that ran `el` seconds on `gpus` GPUs, charged `charge` GPU-seconds. */
#define JOB(id_, sid, gpus_, el, charge)                                                           \
    {                                                                                              \
        .id = id_, .slurm_job_id = sid, .partner = "ulb", .gpus = gpus_, .started_at = T0,         \
        .ended_at = T0 + (el), .ended = true, .charge_gpu_seconds = charge                         \
    }
/* The same with its ledger: `ledger` GPU-seconds, charged at weight 1000 with a 60 min limit. */
#define JOBL(id_, sid, gpus_, el, ledger)                                                          \
    {                                                                                              \
        .id = id_, .slurm_job_id = sid, .partner = "ulb", .gpus = gpus_, .started_at = T0,         \
        .ended_at = T0 + (el), .ended = true, .charge_gpu_seconds = ledger, .has_ledger = true,    \
        .ledger_gpu_seconds = ledger, .cpus = 1, .time_minutes = 60, .weight_milli = 1000          \
    }
/* Its record on partition gpu, account ulb. */
#define REC(sid, gpus_, el)                                                                        \
    {                                                                                              \
        .job_id = sid, .account = "ulb", .partition = "gpu", .start_time = T0,                     \
        .end_time = T0 + (el), .elapsed_s = el, .gpus = gpus_                                      \
    }

static const struct rcase cases[] = {
    {.name = "nothing_on_either_side_is_clean"},
    {.name = "matching_jobs_and_records_are_clean",
     .jobs = {JOB(1, 101, 1, 600, 600), JOB(2, 102, 2, 60, 120)},
     .n_jobs = 2,
     .recs = {REC(102, 2, 60), REC(101, 1, 600)},
     .n_recs = 2,
     .jobs_compared = 2},
    {.name = "a_charge_with_no_record_is_no_record",
     .jobs = {JOB(1, 101, 1, 600, 600)},
     .n_jobs = 1,
     .want = {{RECONCILE_NO_RECORD, 101, 600, 0}},
     .n_want = 1,
     .jobs_compared = 1},
    {.name = "a_job_charged_nothing_with_no_record_is_not_a_difference",
     .jobs = {JOB(1, 101, 1, 0, 0)},
     .n_jobs = 1,
     .jobs_compared = 1},
    {.name = "a_record_on_our_account_with_no_job_is_escaped",
     .jobs = {JOB(1, 101, 1, 600, 600)},
     .n_jobs = 1,
     .recs = {REC(101, 1, 600), REC(555, 4, 300)},
     .n_recs = 2,
     .want = {{RECONCILE_ESCAPED, 555, 0, 300}},
     .n_want = 1,
     .jobs_compared = 1},
    {.name = "a_record_on_our_partition_under_another_account_is_escaped",
     .recs = {{.job_id = 556, .account = "other", .partition = "gpu", .elapsed_s = 5}},
     .n_recs = 1,
     .want = {{RECONCILE_ESCAPED, 556, 0, 5}},
     .n_want = 1},
    {.name = "a_record_on_our_account_in_another_case_is_escaped",
     .recs = {{.job_id = 558, .account = "ULB", .partition = "cpu", .elapsed_s = 7}},
     .n_recs = 1,
     .want = {{RECONCILE_ESCAPED, 558, 0, 7}},
     .n_want = 1},
    {.name = "a_record_outside_our_partitions_and_accounts_is_none_of_our_business",
     .recs = {{.job_id = 557, .account = "physics", .partition = "cpu", .elapsed_s = 5}},
     .n_recs = 1},
    {.name = "elapsed_one_second_apart_is_clean",
     .jobs = {JOB(1, 101, 1, 601, 601)},
     .n_jobs = 1,
     .recs = {REC(101, 1, 600)},
     .n_recs = 1,
     .jobs_compared = 1},
    {.name = "elapsed_two_seconds_apart_is_elapsed",
     .jobs = {JOB(1, 101, 1, 602, 602)},
     .n_jobs = 1,
     .recs = {REC(101, 1, 600)},
     .n_recs = 1,
     .want = {{RECONCILE_ELAPSED, 101, 602, 600}},
     .n_want = 1,
     .jobs_compared = 1},
    {.name = "gpu_counts_that_differ_are_gpus",
     .jobs = {JOB(1, 101, 1, 600, 600)},
     .n_jobs = 1,
     .recs = {REC(101, 2, 600)},
     .n_recs = 1,
     .want = {{RECONCILE_GPUS, 101, 1, 2}},
     .n_want = 1,
     .jobs_compared = 1},
    {.name = "a_job_running_in_antenna_whose_record_ended_is_held_after_end",
     .jobs = {{.id = 1,
               .slurm_job_id = 101,
               .partner = "ulb",
               .gpus = 1,
               .started_at = T0,
               .held = true}},
     .n_jobs = 1,
     .recs = {REC(101, 1, 600)},
     .n_recs = 1,
     .want = {{RECONCILE_HELD_AFTER_END, 101, 0, T0 + 600}},
     .n_want = 1,
     .jobs_compared = 1},
    {.name = "a_running_job_and_its_running_record_are_clean",
     .jobs = {{.id = 1,
               .slurm_job_id = 101,
               .partner = "ulb",
               .gpus = 1,
               .started_at = T0,
               .held = true}},
     .n_jobs = 1,
     .recs = {{.job_id = 101, .account = "ulb", .partition = "gpu", .start_time = T0, .gpus = 1}},
     .n_recs = 1,
     .jobs_compared = 1},
    {.name = "a_pending_record_without_gpus_yet_is_not_a_gpu_difference",
     .jobs = {{.id = 1, .slurm_job_id = 101, .partner = "ulb", .gpus = 2, .held = true}},
     .n_jobs = 1,
     .recs = {{.job_id = 101, .account = "ulb", .partition = "gpu"}},
     .n_recs = 1,
     .jobs_compared = 1},
    {.name = "a_record_listed_twice_counts_once",
     .jobs = {JOB(1, 101, 1, 600, 600)},
     .n_jobs = 1,
     .recs = {REC(101, 1, 600), REC(101, 1, 600), REC(700, 1, 9), REC(700, 1, 9)},
     .n_recs = 4,
     .want = {{RECONCILE_ESCAPED, 700, 0, 9}},
     .n_want = 1,
     .jobs_compared = 1},
    {.name = "a_ledger_charge_that_is_what_the_record_costs_is_clean",
     .jobs = {JOBL(1, 101, 2, 600, 1200), JOBL(2, 102, 2, 601, 1202)},
     .n_jobs = 2,
     .recs = {REC(101, 2, 600), REC(102, 2, 600)},
     .n_recs = 2,
     .jobs_compared = 2},
    {.name = "a_ledger_charge_changed_is_a_charge_difference",
     .jobs = {JOBL(1, 101, 2, 600, 1200 + 3600)},
     .n_jobs = 1,
     .recs = {REC(101, 2, 600)},
     .n_recs = 1,
     .want = {{RECONCILE_CHARGE, 101, 4800, 1200}},
     .n_want = 1,
     .jobs_compared = 1},
    {.name = "a_job_that_ran_but_was_charged_nothing_is_a_charge_difference",
     .jobs = {JOBL(1, 101, 1, 0, 0)},
     .n_jobs = 1,
     .recs = {REC(101, 1, 300)},
     .n_recs = 1,
     .want = {{RECONCILE_ELAPSED, 101, 0, 300}, {RECONCILE_CHARGE, 101, 0, 300}},
     .n_want = 2,
     .jobs_compared = 1},
    {.name = "a_charge_beyond_the_time_limit_is_capped_as_the_charge_is",
     .jobs = {JOBL(1, 101, 1, 3600, 3600)},
     .n_jobs = 1,
     .recs = {REC(101, 1, 3650)}, /* Slurm's OverTimeLimit let it run 50 s over */
     .n_recs = 1,
     .want = {{RECONCILE_ELAPSED, 101, 3600, 3650}},
     .n_want = 1,
     .jobs_compared = 1},
    {.name = "several_kinds_come_by_kind_then_slurm_id",
     .jobs = {JOB(3, 103, 1, 100, 100), JOB(1, 101, 1, 600, 600), JOB(2, 102, 1, 50, 50)},
     .n_jobs = 3,
     .recs = {REC(102, 4, 10), REC(900, 1, 1), REC(101, 1, 600)},
     .n_recs = 3,
     .want = {{RECONCILE_NO_RECORD, 103, 100, 0},
              {RECONCILE_ESCAPED, 900, 0, 1},
              {RECONCILE_ELAPSED, 102, 50, 10},
              {RECONCILE_GPUS, 102, 1, 4}},
     .n_want = 4,
     .jobs_compared = 3},
    /* Slurm requeued job 101 after 100 s of its 2 GPUs; its second run took 50 s. Antenna
     * charged each run: 300 GPU-s. slurmdbd has one record per run (and by_id and between may
     * both list a run: counted once). */
    {.name = "a_requeued_job_charged_for_each_run_is_clean",
     .jobs = {{.id = 1,
               .slurm_job_id = 101,
               .partner = "ulb",
               .gpus = 2,
               .started_at = T0 + 200,
               .ended_at = T0 + 250,
               .ended = true,
               .charge_gpu_seconds = 300,
               .has_ledger = true,
               .ledger_gpu_seconds = 300,
               .cpus = 1,
               .time_minutes = 60,
               .weight_milli = 1000,
               .prior_run_seconds = 100}},
     .n_jobs = 1,
     .recs = {{.job_id = 101,
               .account = "ulb",
               .partition = "gpu",
               .start_time = T0 + 200,
               .end_time = T0 + 250,
               .elapsed_s = 50,
               .gpus = 2},
              {.job_id = 101,
               .account = "ulb",
               .partition = "gpu",
               .start_time = T0,
               .end_time = T0 + 100,
               .elapsed_s = 100,
               .gpus = 2,
               .requeued = true},
              {.job_id = 101,
               .account = "ulb",
               .partition = "gpu",
               .start_time = T0,
               .end_time = T0 + 100,
               .elapsed_s = 100,
               .gpus = 2,
               .requeued = true}},
     .n_recs = 3,
     .jobs_compared = 1},
    /* the same job charged its last run only: the first run went uncharged */
    {.name = "a_requeued_job_charged_for_its_last_run_only_is_a_charge_difference",
     .jobs = {{.id = 1,
               .slurm_job_id = 101,
               .partner = "ulb",
               .gpus = 2,
               .started_at = T0 + 200,
               .ended_at = T0 + 250,
               .ended = true,
               .charge_gpu_seconds = 100,
               .has_ledger = true,
               .ledger_gpu_seconds = 100,
               .cpus = 1,
               .time_minutes = 60,
               .weight_milli = 1000}},
     .n_jobs = 1,
     .recs = {{.job_id = 101,
               .account = "ulb",
               .partition = "gpu",
               .start_time = T0 + 200,
               .end_time = T0 + 250,
               .elapsed_s = 50,
               .gpus = 2},
              {.job_id = 101,
               .account = "ulb",
               .partition = "gpu",
               .start_time = T0,
               .end_time = T0 + 100,
               .elapsed_s = 100,
               .gpus = 2,
               .requeued = true}},
     .n_recs = 2,
     .want = {{RECONCILE_ELAPSED, 101, 50, 150}, {RECONCILE_CHARGE, 101, 100, 300}},
     .n_want = 2,
     .jobs_compared = 1},
};

#define N_CASES (sizeof cases / sizeof cases[0])

static void run_case(void **state)
{
    const struct rcase *c = *state;
    static const char *const parts[] = {"gpu"};
    static const char *const accts[] = {"ulb", "vub"};
    reconcile_scope scope = {parts, 1, accts, 2};
    reconcile_job jobs_before[MAXN];
    memcpy(jobs_before, c->jobs, sizeof jobs_before);
    reconcile_result r;
    assert_int_equal(reconcile_compare(c->jobs, c->n_jobs, c->recs, c->n_recs, &scope, &r), 0);
    assert_memory_equal(jobs_before, c->jobs, sizeof jobs_before); /* inputs unchanged */
    if (r.n_diffs != c->n_want) {
        for (size_t i = 0; i < r.n_diffs; i++)
            print_message("got %s slurm %lld: %lld vs %lld\n", reconcile_kind_name(r.diffs[i].kind),
                          (long long)r.diffs[i].slurm_job_id, (long long)r.diffs[i].antenna,
                          (long long)r.diffs[i].slurm);
        fail_msg("%s: %zu differences, wanted %zu", c->name, r.n_diffs, c->n_want);
    }
    size_t by_kind[RECONCILE_KINDS] = {0};
    for (size_t i = 0; i < c->n_want; i++) {
        assert_string_equal(reconcile_kind_name(r.diffs[i].kind),
                            reconcile_kind_name(c->want[i].kind));
        assert_int_equal(r.diffs[i].slurm_job_id, c->want[i].slurm_job_id);
        assert_int_equal(r.diffs[i].antenna, c->want[i].antenna);
        assert_int_equal(r.diffs[i].slurm, c->want[i].slurm);
        by_kind[c->want[i].kind]++;
    }
    for (int k = 0; k < RECONCILE_KINDS; k++)
        assert_int_equal(r.by_kind[k], by_kind[k]);
    assert_int_equal(r.jobs_compared, c->jobs_compared);
    reconcile_result_clear(&r);
    assert_null(r.diffs);
}

static void null_inputs_with_counts_are_einval(void **state)
{
    (void)state;
    reconcile_result r;
    assert_int_equal(reconcile_compare(NULL, 1, NULL, 0, NULL, &r), -EINVAL);
    assert_int_equal(reconcile_compare(NULL, 0, NULL, 0, NULL, NULL), -EINVAL);
    reconcile_result_clear(NULL);
}

static void kind_names_are_the_api_names(void **state)
{
    (void)state;
    assert_string_equal(reconcile_kind_name(RECONCILE_NO_RECORD), "no_record");
    assert_string_equal(reconcile_kind_name(RECONCILE_ESCAPED), "escaped");
    assert_string_equal(reconcile_kind_name(RECONCILE_HELD_AFTER_END), "held_after_end");
    assert_string_equal(reconcile_kind_name(RECONCILE_CHARGE), "charge");
    assert_string_equal(reconcile_kind_name(RECONCILE_KINDS), "unknown");
}

int main(void)
{
    struct CMUnitTest tests[N_CASES + 2];
    for (size_t i = 0; i < N_CASES; i++) {
        memset(&tests[i], 0, sizeof tests[i]);
        tests[i].name = cases[i].name;
        tests[i].test_func = run_case;
        tests[i].initial_state = (void *)&cases[i];
    }
    tests[N_CASES] = (struct CMUnitTest)cmocka_unit_test(null_inputs_with_counts_are_einval);
    tests[N_CASES + 1] = (struct CMUnitTest)cmocka_unit_test(kind_names_are_the_api_names);
    return _cmocka_run_group_tests("reconcile", tests, N_CASES + 2, NULL, NULL);
}
