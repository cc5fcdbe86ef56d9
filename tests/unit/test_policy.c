/* test_policy.c - unit tests for policies/policy: admission rules and messages, costs and periods,
 * the multifactor priority, pick order and limits, holds and charges, reasons.
 * Never touches the network, the disk or Slurm. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

#define HOUR     3600
#define NOV15    1794744000 /* 2026-11-15 12:00:00 UTC */
#define NOV1     1793491200 /* 2026-11-01 00:00:00 UTC */
#define OCT31_23 1793487600 /* 2026-10-31 23:00:00 UTC */
#define DEC1     1796083200 /* 2026-12-01 00:00:00 UTC */

/* ---- fixtures ---- */

/* The defaults with only the given priority weights. */
static policy_config weights(int fs, int cat, int age, int size)
{
    policy_config c;
    policy_config_defaults(&c);
    c.weight_fairshare = fs;
    c.weight_category = cat;
    c.weight_age = age;
    c.weight_size = size;
    return c;
}

static policy_quota unlimited(void)
{
    policy_quota q = {
        .gpu_seconds = POLICY_UNLIMITED,
        .cpu_seconds = POLICY_UNLIMITED,
        .max_gpus = POLICY_UNLIMITED,
        .max_running_jobs = POLICY_UNLIMITED,
        .max_queued_jobs = POLICY_UNLIMITED,
        .max_walltime_minutes = POLICY_UNLIMITED,
        .user_max_gpus = POLICY_UNLIMITED,
    };
    return q;
}

static void set_quota(policy *p, const char *partner, const char *period, policy_quota q)
{
    assert_int_equal(policy_quota_set(p, partner, period, &q), 0);
}

/* Partners ulb and vub (share 1); alice (sme) and bob (institution) at ulb, carol (researcher) at
 * vub; unlimited quotas for 2026-11. */
static policy *world(const policy_config *c)
{
    char err[128] = "";
    policy *p = policy_new(c, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(policy_partner_set(p, "ulb", 1), 0);
    assert_int_equal(policy_partner_set(p, "vub", 1), 0);
    assert_int_equal(policy_user_set(p, "alice", "ulb", POLICY_CAT_SME), 0);
    assert_int_equal(policy_user_set(p, "bob", "ulb", POLICY_CAT_INSTITUTION), 0);
    assert_int_equal(policy_user_set(p, "carol", "vub", POLICY_CAT_RESEARCHER), 0);
    set_quota(p, "ulb", "2026-11", unlimited());
    set_quota(p, "vub", "2026-11", unlimited());
    return p;
}

static policy_job mkjob(int64_t id, const char *user, int gpus, int minutes, int64_t submitted)
{
    policy_job j;
    memset(&j, 0, sizeof j);
    j.id = id;
    snprintf(j.user, sizeof j.user, "%s", user);
    j.gpus = gpus;
    j.cpus = 1;
    j.time_minutes = minutes;
    j.submitted_at = submitted;
    return j;
}

static void enq(policy *p, int64_t id, const char *user, int gpus, int minutes, int64_t submitted)
{
    policy_job j = mkjob(id, user, gpus, minutes, submitted);
    assert_int_equal(policy_job_enqueue(p, &j), 0);
}

/* Picks and dispatches the next job at `now`; returns its id. */
static int64_t dispatch_next(policy *p, int64_t now)
{
    int64_t id = -1, hg, hc;
    char period[8];
    assert_int_equal(policy_pick(p, now, &id, &hg, &hc, period), 0);
    assert_int_equal(policy_job_dispatched(p, id, now), 0);
    return id;
}

static int pick_id(policy *p, int64_t now, int64_t *id)
{
    int64_t hg, hc;
    char period[8];
    return policy_pick(p, now, id, &hg, &hc, period);
}

static void get_amounts(policy *p, const char *partner, const char *period, int64_t *used,
                        int64_t *held)
{
    policy_quota q;
    int64_t uc, hc;
    assert_int_equal(policy_quota_get(p, partner, period, &q, used, held, &uc, &hc), 0);
}

static void assert_close(double got, double want)
{
    double d = got - want;
    if (d < 0) d = -d;
    if (d > 1e-6 * (want < 0 ? -want : want) + 1e-9) fail_msg("got %.12f, want %.12f", got, want);
}

static void assert_admit(policy *p, const policy_job *j, int64_t now, policy_verdict *v)
{
    assert_int_equal(policy_job_admit(p, j, now, v), 0);
}

static void assert_contains(const char *s, const char *part)
{
    if (strstr(s, part) == NULL) fail_msg("\"%s\" does not contain \"%s\"", s, part);
}

/* ---- helpers shared with antennad and the CLI ---- */

static void category_parse_and_name_round_trip(void **state)
{
    (void)state;
    policy_category c;
    for (int i = 0; i < POLICY_CAT_COUNT; i++) {
        assert_int_equal(policy_category_parse(policy_category_name((policy_category)i), &c), 0);
        assert_int_equal(c, i);
    }
    assert_string_equal(policy_category_name(POLICY_CAT_SME), "sme");
    assert_string_equal(policy_category_name(POLICY_CAT_COUNT), "?");
    assert_int_equal(policy_category_parse("student", &c), -EINVAL);
    assert_int_equal(policy_category_parse("SME", &c), -EINVAL);
}

static void config_defaults_are_the_documented_ones(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    assert_int_equal(c.n_gpu_types, 1);
    assert_string_equal(c.gpu_types[0].name, "h100");
    assert_int_equal(c.gpu_types[0].weight_milli, 1000);
    assert_true(c.fairshare_halflife_hours == 168);
    assert_int_equal(c.weight_fairshare, 10000);
    assert_int_equal(c.weight_category, 1000);
    assert_int_equal(c.weight_age, 1000);
    assert_int_equal(c.weight_size, 500);
    assert_int_equal(c.category_factor_milli[POLICY_CAT_SME], 1000);
    assert_int_equal(c.category_factor_milli[POLICY_CAT_RESEARCHER], 800);
    assert_int_equal(c.category_factor_milli[POLICY_CAT_INSTITUTION], 600);
    assert_true(c.age_unit_hours == 24);
    assert_int_equal(c.max_gpus_per_job, 8);
    assert_int_equal(c.cluster_window, 4);
}

static void new_refuses_a_bad_config_naming_the_field(void **state)
{
    (void)state;
    char err[128];
    policy_config c;

    policy_config_defaults(&c);
    c.fairshare_halflife_hours = 0;
    err[0] = '\0';
    assert_null(policy_new(&c, err, sizeof err));
    assert_contains(err, "fairshare_halflife_hours");

    policy_config_defaults(&c);
    c.cluster_window = 0;
    assert_null(policy_new(&c, err, sizeof err));
    assert_contains(err, "cluster_window");

    policy_config_defaults(&c);
    c.n_gpu_types = 0;
    assert_null(policy_new(&c, err, sizeof err));
    assert_contains(err, "gpu_types");

    policy_config_defaults(&c);
    c.n_gpu_types = 2;
    c.gpu_types[1] = c.gpu_types[0];
    assert_null(policy_new(&c, err, sizeof err));
    assert_contains(err, "twice");

    policy_config_defaults(&c);
    c.category_factor_milli[POLICY_CAT_SME] = 1001;
    assert_null(policy_new(&c, err, sizeof err));
    assert_contains(err, "category_factors");

    policy_config_defaults(&c);
    c.weight_age = -1;
    assert_null(policy_new(&c, err, sizeof err));
    assert_contains(err, "priority_weight_age");

    policy_config_defaults(&c);
    c.age_unit_hours = 0;
    assert_null(policy_new(&c, err, sizeof err));
    assert_contains(err, "priority_age_unit_hours");

    assert_null(policy_new(NULL, err, sizeof err));
    policy_free(NULL);
}

static void quota_none_has_zero_budgets_and_no_caps(void **state)
{
    (void)state;
    policy_quota q;
    policy_quota_none(&q);
    assert_int_equal(q.gpu_seconds, 0);
    assert_int_equal(q.cpu_seconds, POLICY_UNLIMITED);
    assert_int_equal(q.max_gpus, POLICY_UNLIMITED);
    assert_int_equal(q.max_running_jobs, POLICY_UNLIMITED);
    assert_int_equal(q.max_queued_jobs, POLICY_UNLIMITED);
    assert_int_equal(q.max_walltime_minutes, POLICY_UNLIMITED);
    assert_int_equal(q.user_max_gpus, POLICY_UNLIMITED);
}

static void period_of_is_the_utc_month(void **state)
{
    (void)state;
    char out[8];
    assert_string_equal(policy_period_of(NOV15, out), "2026-11");
    assert_string_equal(policy_period_of(NOV1 - 1, out), "2026-10");
    assert_string_equal(policy_period_of(NOV1, out), "2026-11");
    assert_string_equal(policy_period_of(DEC1 - 1, out), "2026-11");
    assert_string_equal(policy_period_of(DEC1, out), "2026-12");
    assert_string_equal(policy_period_of(0, out), "1970-01");
}

static void period_valid_follows_yyyy_mm(void **state)
{
    (void)state;
    assert_int_equal(policy_period_valid("2026-11"), 1);
    assert_int_equal(policy_period_valid("2000-01"), 1);
    assert_int_equal(policy_period_valid("9999-12"), 1);
    static const char *const bad[] = {"1999-12",  "2026-13", "2026-00", "2026-1", "2026/11",
                                      "2026-11 ", "26-11",   "",        "abcd-ef"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (policy_period_valid(bad[i])) fail_msg("\"%s\" accepted", bad[i]);
    assert_int_equal(policy_period_valid(NULL), 0);
}

static void cost_rounds_up_and_applies_the_weight(void **state)
{
    (void)state;
    assert_int_equal(policy_cost(1, 3600, 1000), 3600);
    assert_int_equal(policy_cost(2, 3600, 500), 3600);
    assert_int_equal(policy_cost(1, 1, 500), 1);   /* 0.5 rounds up */
    assert_int_equal(policy_cost(1, 61, 500), 31); /* 30.5 rounds up */
    assert_int_equal(policy_cost(3, 7, 1001), 22); /* 21.021 rounds up */
    assert_int_equal(policy_cost(4, 1000, 1250), 5000);
    assert_int_equal(policy_cost(0, 3600, 1000), 0);
    assert_int_equal(policy_cost(1, 0, 1000), 0);
    assert_int_equal(policy_cost(1000000, INT64_MAX / 2, 1000000), INT64_MAX);
}

static void gpu_weight_knows_the_default_and_refuses_unknown_types(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    c.n_gpu_types = 2;
    snprintf(c.gpu_types[1].name, sizeof c.gpu_types[1].name, "l40s");
    c.gpu_types[1].weight_milli = 500;
    policy *p = policy_new(&c, NULL, 0);
    assert_non_null(p);
    assert_int_equal(policy_gpu_weight(p, ""), 1000);
    assert_int_equal(policy_gpu_weight(p, "h100"), 1000);
    assert_int_equal(policy_gpu_weight(p, "l40s"), 500);
    assert_int_equal(policy_gpu_weight(p, "a100"), -1);
    policy_free(p);
}

/* ---- the mirror ---- */

static void partner_and_user_set_validate_their_arguments(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = policy_new(&c, NULL, 0);
    char long_name[POLICY_NAME_MAX + 1];
    memset(long_name, 'x', POLICY_NAME_MAX);
    long_name[POLICY_NAME_MAX] = '\0';
    assert_int_equal(policy_partner_set(p, "ulb", 0), -EINVAL);
    assert_int_equal(policy_partner_set(p, "", 1), -EINVAL);
    assert_int_equal(policy_partner_set(p, long_name, 1), -EINVAL);
    assert_int_equal(policy_partner_set(p, "ulb", 2), 0);
    assert_int_equal(policy_partner_set(p, "ulb", 3), 0); /* update */
    assert_int_equal(policy_user_set(p, "alice", "nope", POLICY_CAT_SME), -ENOENT);
    assert_int_equal(policy_user_set(p, "alice", "ulb", POLICY_CAT_COUNT), -EINVAL);
    assert_int_equal(policy_user_set(p, "", "ulb", POLICY_CAT_SME), -EINVAL);
    assert_int_equal(policy_user_set(p, "alice", "ulb", POLICY_CAT_SME), 0);
    assert_int_equal(policy_user_set(p, "alice", "ulb", POLICY_CAT_RESEARCHER), 0);
    policy_free(p);
}

static void quota_get_of_a_period_never_set_is_none(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q;
    int64_t ug = 9, hg = 9, uc = 9, hc = 9;
    assert_int_equal(policy_quota_get(p, "ulb", "2027-01", &q, &ug, &hg, &uc, &hc), 0);
    assert_int_equal(q.gpu_seconds, 0);
    assert_int_equal(q.max_gpus, POLICY_UNLIMITED);
    assert_int_equal(ug + hg + uc + hc, 0);
    assert_int_equal(policy_quota_get(p, "nope", "2026-11", &q, &ug, &hg, &uc, &hc), -ENOENT);
    policy_free(p);
}

static void quota_set_validates_and_round_trips(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited(), got;
    q.gpu_seconds = 100 * HOUR;
    q.max_gpus = 8;
    assert_int_equal(policy_quota_set(p, "nope", "2026-11", &q), -ENOENT);
    assert_int_equal(policy_quota_set(p, "ulb", "2026-13", &q), -EINVAL);
    q.max_running_jobs = -2;
    assert_int_equal(policy_quota_set(p, "ulb", "2026-11", &q), -EINVAL);
    q.max_running_jobs = 3;
    assert_int_equal(policy_quota_set(p, "ulb", "2026-11", &q), 0);
    assert_int_equal(policy_quota_get(p, "ulb", "2026-11", &got, NULL, NULL, NULL, NULL), 0);
    assert_memory_equal(&got, &q, sizeof q);
    policy_free(p);
}

static void usage_load_adds_to_the_used_amount(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    int64_t used, held;
    assert_int_equal(policy_usage_load(p, "ulb", "2026-11", 1000, 50, NOV1), 0);
    assert_int_equal(policy_usage_load(p, "ulb", "2026-11", 500, 5, NOV1 + HOUR), 0);
    get_amounts(p, "ulb", "2026-11", &used, &held);
    assert_int_equal(used, 1500);
    assert_int_equal(held, 0);
    assert_int_equal(policy_usage_load(p, "nope", "2026-11", 1, 1, NOV1), -ENOENT);
    assert_int_equal(policy_usage_load(p, "ulb", "2026-11", -1, 0, NOV1), -EINVAL);
    policy_free(p);
}

/* ---- admission ---- */

static void admit_refuses_an_unknown_user(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_verdict v;
    policy_job j = mkjob(1, "mallory", 1, 60, NOV15);
    assert_admit(p, &j, NOV15, &v);
    assert_false(v.admitted);
    assert_string_equal(v.code, "unknown_user");
    assert_contains(v.message, "mallory");
    policy_free(p);
}

static void admit_refuses_an_unknown_gpu_type_listing_the_known_ones(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    c.n_gpu_types = 2;
    snprintf(c.gpu_types[1].name, sizeof c.gpu_types[1].name, "l40s");
    c.gpu_types[1].weight_milli = 500;
    policy *p = world(&c);
    policy_verdict v;
    policy_job j = mkjob(1, "alice", 1, 60, NOV15);
    snprintf(j.gpu_type, sizeof j.gpu_type, "a100");
    assert_admit(p, &j, NOV15, &v);
    assert_false(v.admitted);
    assert_string_equal(v.code, "unknown_gpu_type");
    assert_contains(v.message, "a100");
    assert_contains(v.message, "h100, l40s");
    j.gpus = 0; /* a CPU-only job's type does not matter */
    assert_admit(p, &j, NOV15, &v);
    assert_true(v.admitted);
    policy_free(p);
}

static void admit_refuses_a_walltime_over_the_limit(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.max_walltime_minutes = 1440;
    set_quota(p, "ulb", "2026-11", q);
    policy_verdict v;
    policy_job j = mkjob(1, "alice", 1, 2000, NOV15);
    assert_admit(p, &j, NOV15, &v);
    assert_false(v.admitted);
    assert_string_equal(v.code, "walltime_limit");
    assert_contains(v.message, "at most 1440 minutes (this job asks 2000)");
    j.time_minutes = 1440;
    assert_admit(p, &j, NOV15, &v);
    assert_true(v.admitted);
    policy_free(p);
}

static void admit_refuses_more_gpus_than_the_partner_cap(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.max_gpus = 4;
    set_quota(p, "ulb", "2026-11", q);
    policy_verdict v;
    policy_job j = mkjob(1, "alice", 6, 60, NOV15);
    assert_admit(p, &j, NOV15, &v);
    assert_false(v.admitted);
    assert_string_equal(v.code, "partner_gpu_limit");
    assert_string_equal(v.message, "ulb may run at most 4 GPUs at once (this job asks 6); ask for "
                                   "fewer GPUs or ask sustAIn.brussels staff to raise the cap");
    policy_free(p);
}

static void admit_refuses_more_gpus_than_the_user_cap(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.user_max_gpus = 2;
    set_quota(p, "ulb", "2026-11", q);
    policy_verdict v;
    policy_job j = mkjob(1, "alice", 3, 60, NOV15);
    assert_admit(p, &j, NOV15, &v);
    assert_false(v.admitted);
    assert_string_equal(v.code, "user_gpu_limit");
    assert_contains(v.message, "at most 2 GPUs at once (this job asks 3)");
    policy_free(p);
}

static void admit_refuses_when_the_partner_queue_is_full(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.max_queued_jobs = 2;
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "alice", 1, 60, NOV15);
    enq(p, 2, "bob", 1, 60, NOV15);
    policy_verdict v;
    policy_job j = mkjob(3, "alice", 1, 60, NOV15);
    assert_admit(p, &j, NOV15, &v);
    assert_false(v.admitted);
    assert_string_equal(v.code, "queued_limit");
    assert_contains(v.message, "at most 2 jobs queued");
    j = mkjob(3, "carol", 1, 60, NOV15); /* another partner's queue is not full */
    assert_admit(p, &j, NOV15, &v);
    assert_true(v.admitted);
    policy_free(p);
}

static void admit_refuses_a_cost_over_the_gpu_budget_left(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.gpu_seconds = 10 * HOUR;
    set_quota(p, "ulb", "2026-11", q);
    assert_int_equal(policy_usage_load(p, "ulb", "2026-11", 8 * HOUR, 0, NOV1), 0);
    policy_verdict v;
    policy_job j = mkjob(1, "alice", 3, 60, NOV15); /* 3 GPU-hours, 2 left */
    assert_admit(p, &j, NOV15, &v);
    assert_false(v.admitted);
    assert_string_equal(v.code, "budget_exceeded");
    assert_contains(v.message, "3.00 GPU-hours");
    assert_contains(v.message, "2.00 left of its 10.00 GPU-hour budget for 2026-11");
    j.gpus = 2; /* exactly what is left */
    assert_admit(p, &j, NOV15, &v);
    assert_true(v.admitted);
    assert_int_equal(v.budget_left_after_gpu_seconds, 0);
    policy_free(p);
}

static void admit_refuses_a_job_with_a_cost_when_no_quota_is_set(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_verdict v;
    policy_job j = mkjob(1, "alice", 1, 60, DEC1 + HOUR); /* no quota for 2026-12 */
    assert_admit(p, &j, DEC1 + HOUR, &v);
    assert_false(v.admitted);
    assert_string_equal(v.code, "budget_exceeded");
    assert_string_equal(v.period, "2026-12");
    assert_contains(v.message, "no GPU budget set for 2026-12");
    assert_contains(v.message, "ask sustAIn.brussels staff");
    j.gpus = 0; /* a CPU-only job: the CPU budget is optional, unlimited unless set */
    assert_admit(p, &j, DEC1 + HOUR, &v);
    assert_true(v.admitted);
    policy_free(p);
}

static void admit_refuses_a_cost_over_the_cpu_budget_left(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.cpu_seconds = 4 * HOUR;
    set_quota(p, "ulb", "2026-11", q);
    policy_verdict v;
    policy_job j = mkjob(1, "alice", 1, 60, NOV15);
    j.cpus = 8;
    assert_admit(p, &j, NOV15, &v);
    assert_false(v.admitted);
    assert_string_equal(v.code, "cpu_budget_exceeded");
    assert_int_equal(v.max_cost_cpu_seconds, 8 * HOUR);
    assert_contains(v.message, "8.00 CPU-hours");
    j.cpus = 4;
    assert_admit(p, &j, NOV15, &v);
    assert_true(v.admitted);
    policy_free(p);
}

static void check_decides_like_admit_without_the_quote(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.gpu_seconds = 4 * HOUR;
    set_quota(p, "ulb", "2026-11", q);
    policy_verdict a, k;
    policy_job j = mkjob(1, "alice", 1, 60, NOV15);
    assert_int_equal(policy_job_admit(p, &j, NOV15, &a), 0);
    assert_int_equal(policy_job_check(p, &j, NOV15, &k), 0);
    assert_true(a.admitted && k.admitted);
    assert_int_equal(k.max_cost_gpu_seconds, a.max_cost_gpu_seconds);
    assert_int_equal(k.budget_left_after_gpu_seconds, a.budget_left_after_gpu_seconds);
    assert_int_equal(a.queue_position, 1);
    assert_int_equal(k.queue_position, 0); /* no quote */
    j.gpus = 8;                            /* 8 GPU-hours > 4 left */
    assert_int_equal(policy_job_admit(p, &j, NOV15, &a), 0);
    assert_int_equal(policy_job_check(p, &j, NOV15, &k), 0);
    assert_false(a.admitted || k.admitted);
    assert_string_equal(k.code, a.code);
    assert_string_equal(k.message, a.message);
    policy_free(p);
}

static void admit_checks_limits_in_the_documented_order(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = {.gpu_seconds = 1,
                      .cpu_seconds = 1,
                      .max_gpus = 2,
                      .max_running_jobs = POLICY_UNLIMITED,
                      .max_queued_jobs = 0,
                      .max_walltime_minutes = 10,
                      .user_max_gpus = 1};
    set_quota(p, "ulb", "2026-11", q);
    policy_verdict v;
    policy_job j = mkjob(1, "alice", 3, 60, NOV15); /* breaks every limit */
    static const char *const order[] = {"walltime_limit",  "partner_gpu_limit",
                                        "user_gpu_limit",  "queued_limit",
                                        "budget_exceeded", "cpu_budget_exceeded"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        assert_admit(p, &j, NOV15, &v);
        assert_false(v.admitted);
        assert_string_equal(v.code, order[i]);
        /* lift that limit and see the next one */
        if (i == 0) j.time_minutes = 10;
        if (i == 1) q.max_gpus = POLICY_UNLIMITED;
        if (i == 2) q.user_max_gpus = POLICY_UNLIMITED;
        if (i == 3) q.max_queued_jobs = POLICY_UNLIMITED;
        if (i == 4) q.gpu_seconds = POLICY_UNLIMITED;
        set_quota(p, "ulb", "2026-11", q);
    }
    q.cpu_seconds = POLICY_UNLIMITED;
    set_quota(p, "ulb", "2026-11", q);
    assert_admit(p, &j, NOV15, &v);
    assert_true(v.admitted);
    policy_free(p);
}

static void admit_with_unlimited_fields_never_refuses(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    for (int i = 0; i < 50; i++)
        enq(p, 100 + i, "alice", 8, 60, NOV15);
    policy_verdict v;
    policy_job j = mkjob(1, "alice", 1000, 1000000, NOV15);
    j.cpus = 1000;
    assert_admit(p, &j, NOV15, &v);
    assert_true(v.admitted);
    assert_string_equal(v.code, "");
    assert_int_equal(v.budget_left_gpu_seconds, POLICY_UNLIMITED);
    assert_int_equal(v.budget_left_after_gpu_seconds, POLICY_UNLIMITED);
    assert_int_equal(v.max_cost_gpu_seconds, (int64_t)1000 * 1000000 * 60);
    policy_free(p);
}

static void admit_quote_fills_costs_and_the_budget_left(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.gpu_seconds = 100 * HOUR;
    set_quota(p, "ulb", "2026-11", q);
    assert_int_equal(policy_usage_load(p, "ulb", "2026-11", 10 * HOUR, 0, NOV1), 0);
    enq(p, 1, "bob", 4, 60, NOV15);
    dispatch_next(p, NOV15); /* holds 4 GPU-hours */
    policy_verdict v;
    policy_job j = mkjob(2, "alice", 2, 90, NOV15);
    assert_admit(p, &j, NOV15, &v);
    assert_true(v.admitted);
    assert_string_equal(v.period, "2026-11");
    assert_int_equal(v.max_cost_gpu_seconds, 3 * HOUR);
    assert_int_equal(v.max_cost_cpu_seconds, 90 * 60);
    assert_int_equal(v.budget_left_gpu_seconds, 86 * HOUR);
    assert_int_equal(v.budget_left_after_gpu_seconds, 83 * HOUR);
    assert_int_equal(policy_queue_length(p), 0); /* admission changes nothing */
    policy_free(p);
}

static void admit_quote_gives_queue_position_and_wait_reason(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0); /* older first */
    policy *p = world(&c);
    enq(p, 1, "bob", 1, 60, NOV15 - 3 * HOUR);
    enq(p, 2, "carol", 1, 60, NOV15 - 2 * HOUR);
    policy_verdict v;
    policy_job j = mkjob(3, "alice", 1, 60, NOV15);
    assert_admit(p, &j, NOV15, &v);
    assert_int_equal(v.queue_position, 3);
    assert_string_equal(v.wait_reason, POLICY_REASON_PRIORITY);
    assert_close(v.priority, 0);
    j.submitted_at = NOV15 - 4 * HOUR; /* would be the oldest */
    assert_admit(p, &j, NOV15, &v);
    assert_int_equal(v.queue_position, 1);
    assert_string_equal(v.wait_reason, "");
    assert_close(v.priority, 1000.0 * 4 / 24);
    policy_free(p);
}

static void admit_quote_reason_names_the_limit_it_would_wait_on(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0);
    c.cluster_window = 2;
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.max_gpus = 2;
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "bob", 2, 60, NOV15 - HOUR);
    dispatch_next(p, NOV15);
    policy_verdict v;
    policy_job j = mkjob(2, "alice", 1, 60, NOV15);
    assert_admit(p, &j, NOV15, &v);
    assert_true(v.admitted);
    assert_string_equal(v.wait_reason, POLICY_REASON_PARTNER_GPU);
    enq(p, 3, "carol", 1, 60, NOV15);
    dispatch_next(p, NOV15); /* the window (2) is now full */
    assert_admit(p, &j, NOV15, &v);
    assert_string_equal(v.wait_reason, POLICY_REASON_CLUSTER_FULL);
    policy_free(p);
}

static void admit_quote_goes_next_past_a_blocked_higher_job(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.max_running_jobs = 0;
    set_quota(p, "vub", "2026-11", q);
    enq(p, 1, "carol", 1, 60, NOV15 - HOUR); /* ranks first but vub may run nothing */
    policy_verdict v;
    policy_job j = mkjob(2, "alice", 1, 60, NOV15);
    assert_admit(p, &j, NOV15, &v);
    assert_int_equal(v.queue_position, 2);
    assert_string_equal(v.wait_reason, "");
    policy_free(p);
}

static void admit_refuses_bad_job_fields(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_verdict v;
    policy_job j = mkjob(1, "alice", -1, 60, NOV15);
    assert_int_equal(policy_job_admit(p, &j, NOV15, &v), -EINVAL);
    j = mkjob(1, "alice", 1, 0, NOV15);
    assert_int_equal(policy_job_admit(p, &j, NOV15, &v), -EINVAL);
    j = mkjob(1, "alice", 1, 60, NOV15);
    j.cpus = -1;
    assert_int_equal(policy_job_admit(p, &j, NOV15, &v), -EINVAL);
    j = mkjob(1, "alice", 1, 60, NOV15);
    memset(j.user, 'a', sizeof j.user); /* unterminated */
    assert_int_equal(policy_job_admit(p, &j, NOV15, &v), -EINVAL);
    assert_int_equal(policy_job_enqueue(p, &j), -EINVAL);
    policy_free(p);
}

/* ---- priority ---- */

static void priority_follows_the_documented_formula(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    enq(p, 1, "carol", 2, 60, NOV15 - 12 * HOUR);
    /* F = 1 (no usage), C = 0.8, A = 12 h / 24 h, S = 2 / 8 */
    assert_close(policy_job_priority(p, 1, NOV15), 10000 + 1000 * 0.8 + 1000 * 0.5 + 500 * 0.25);
    assert_close(policy_job_priority(p, 99, NOV15), 0);
    policy_free(p);
}

static void fair_share_gives_lower_priority_to_the_partner_that_used_more(void **state)
{
    (void)state;
    policy_config c = weights(10000, 0, 0, 0);
    policy *p = world(&c);
    enq(p, 1, "alice", 1, 60, NOV15);
    enq(p, 2, "carol", 1, 60, NOV15);
    assert_close(policy_job_priority(p, 1, NOV15), 10000);
    assert_int_equal(policy_usage_load(p, "ulb", "2026-11", 2 * HOUR, 0, NOV15), 0);
    /* ulb: U share 1, weight share 1/2: F = 2^-2; vub: no usage, F = 1 */
    assert_close(policy_job_priority(p, 1, NOV15), 2500);
    assert_close(policy_job_priority(p, 2, NOV15), 10000);
    policy_free(p);
}

static void fair_share_charge_from_a_finished_job_reorders_the_queue(void **state)
{
    (void)state;
    policy_config c = weights(10000, 0, 1000, 0);
    policy *p = world(&c);
    enq(p, 1, "alice", 1, 60, NOV15 - 2 * HOUR); /* alice first by age */
    enq(p, 2, "alice", 1, 60, NOV15 - HOUR);
    enq(p, 3, "carol", 1, 60, NOV15 - HOUR);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    int64_t id;
    assert_int_equal(pick_id(p, NOV15, &id), 0);
    assert_int_equal(id, 2); /* equal priority: the lower id goes first */
    int64_t cg, cc;
    char period[8];
    assert_int_equal(policy_job_finished(p, 1, HOUR, NOV15, &cg, &cc, period), 0);
    assert_int_equal(pick_id(p, NOV15, &id), 0);
    assert_int_equal(id, 3); /* ulb used more: vub's job goes first */
    assert_true(policy_job_priority(p, 3, NOV15) > policy_job_priority(p, 2, NOV15));
    policy_free(p);
}

static void fair_share_usage_halves_after_one_half_life(void **state)
{
    (void)state;
    policy_config c = weights(10000, 0, 0, 0);
    policy *p = world(&c);
    int64_t half = (int64_t)(c.fairshare_halflife_hours * HOUR);
    enq(p, 1, "alice", 1, 60, NOV1);
    enq(p, 2, "carol", 1, 60, NOV1);
    assert_int_equal(policy_usage_load(p, "ulb", "2026-11", 2 * HOUR, 0, NOV1), 0);
    assert_int_equal(policy_usage_load(p, "vub", "2026-11", HOUR, 0, NOV1 + half), 0);
    /* ulb's 2 h decayed to 1 h: equal usage, equal weight: F = 2^-1 for both */
    assert_close(policy_job_priority(p, 1, NOV1 + half), 5000);
    assert_close(policy_job_priority(p, 2, NOV1 + half), 5000);
    policy_free(p);
}

static void fair_share_uses_the_share_weights(void **state)
{
    (void)state;
    policy_config c = weights(10000, 0, 0, 0);
    policy *p = world(&c);
    assert_int_equal(policy_partner_set(p, "ulb", 3), 0);
    enq(p, 1, "alice", 1, 60, NOV1);
    enq(p, 2, "carol", 1, 60, NOV1);
    assert_int_equal(policy_usage_load(p, "ulb", "2026-11", HOUR, 0, NOV1), 0);
    assert_int_equal(policy_usage_load(p, "vub", "2026-11", HOUR, 0, NOV1), 0);
    /* ulb: 2^-(0.5 / 0.75) = 2^(-2/3); vub: 2^-(0.5 / 0.25) = 2^-2 */
    assert_close(policy_job_priority(p, 1, NOV1), 10000 * 0.62996052494743658);
    assert_close(policy_job_priority(p, 2, NOV1), 2500);
    policy_free(p);
}

static void category_factor_ranks_users(void **state)
{
    (void)state;
    policy_config c = weights(0, 1000, 0, 0);
    policy *p = world(&c);
    enq(p, 1, "bob", 1, 60, NOV15);   /* institution 0.6 */
    enq(p, 2, "alice", 1, 60, NOV15); /* sme 1.0 */
    assert_close(policy_job_priority(p, 1, NOV15), 600);
    assert_close(policy_job_priority(p, 2, NOV15), 1000);
    int64_t id;
    assert_int_equal(pick_id(p, NOV15, &id), 0);
    assert_int_equal(id, 2);
    policy_free(p);
}

static void age_factor_grows_with_the_wait_without_a_cap(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0);
    policy *p = world(&c);
    enq(p, 1, "alice", 1, 60, NOV1);
    assert_close(policy_job_priority(p, 1, NOV1), 0);
    assert_close(policy_job_priority(p, 1, NOV1 + 48 * HOUR), 2000);
    assert_close(policy_job_priority(p, 1, NOV1 + 240 * HOUR), 10000);
    policy_free(p);
}

static void size_factor_favours_bigger_jobs(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 0, 500);
    policy *p = world(&c);
    enq(p, 1, "alice", 1, 60, NOV15);
    enq(p, 2, "bob", 4, 60, NOV15);
    assert_close(policy_job_priority(p, 1, NOV15), 62.5);
    assert_close(policy_job_priority(p, 2, NOV15), 250);
    int64_t id;
    assert_int_equal(pick_id(p, NOV15, &id), 0);
    assert_int_equal(id, 2);
    policy_free(p);
}

/* ---- pick ---- */

static void pick_on_an_empty_queue_is_enoent(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    int64_t id;
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    policy_free(p);
}

static void pick_returns_the_highest_priority_and_changes_nothing(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0);
    policy *p = world(&c);
    enq(p, 1, "alice", 1, 60, NOV15 - HOUR);
    enq(p, 2, "bob", 2, 90, NOV15 - 3 * HOUR);
    enq(p, 3, "carol", 1, 60, NOV15 - 2 * HOUR);
    int64_t id = 0, hg = 0, hc = 0;
    char period[8] = "";
    for (int i = 0; i < 3; i++) {
        assert_int_equal(policy_pick(p, NOV15, &id, &hg, &hc, period), 0);
        assert_int_equal(id, 2);
        assert_int_equal(hg, 3 * HOUR);
        assert_int_equal(hc, 90 * 60);
        assert_string_equal(period, "2026-11");
        assert_int_equal(policy_queue_length(p), 3);
    }
    assert_int_equal(dispatch_next(p, NOV15), 2);
    assert_int_equal(dispatch_next(p, NOV15), 3);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    assert_int_equal(policy_queue_length(p), 0);
    policy_free(p);
}

static void pick_skips_a_capped_partner_while_another_dispatches(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.max_gpus = 2;
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "alice", 2, 60, NOV15 - 4 * HOUR);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    enq(p, 2, "alice", 1, 60, NOV15 - 3 * HOUR); /* ranks first, ulb is at its cap */
    enq(p, 3, "bob", 1, 60, NOV15 - 2 * HOUR);
    enq(p, 4, "carol", 1, 60, NOV15 - HOUR);
    assert_string_equal(policy_job_reason(p, 2, NOV15), POLICY_REASON_PARTNER_GPU);
    assert_string_equal(policy_job_reason(p, 3, NOV15), POLICY_REASON_PARTNER_GPU);
    assert_int_equal(dispatch_next(p, NOV15), 4);
    int64_t id;
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    policy_free(p);
}

static void user_cap_does_not_block_another_user_of_the_same_partner(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.user_max_gpus = 2;
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "alice", 2, 60, NOV15 - 4 * HOUR);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    enq(p, 2, "alice", 1, 60, NOV15 - 3 * HOUR);
    enq(p, 3, "bob", 2, 60, NOV15 - 2 * HOUR);
    assert_string_equal(policy_job_reason(p, 2, NOV15), POLICY_REASON_USER_GPU);
    assert_int_equal(dispatch_next(p, NOV15), 3);
    int64_t id;
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    policy_free(p);
}

static void user_top_job_blocked_holds_back_the_users_other_jobs(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.user_max_gpus = 3;
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "alice", 2, 60, NOV15 - 4 * HOUR);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    enq(p, 2, "alice", 2, 60, NOV15 - 3 * HOUR); /* over alice's cap */
    enq(p, 3, "alice", 1, 60, NOV15 - 2 * HOUR); /* would fit, but waits behind job 2 */
    int64_t id;
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    assert_string_equal(policy_job_reason(p, 2, NOV15), POLICY_REASON_USER_GPU);
    assert_string_equal(policy_job_reason(p, 3, NOV15), POLICY_REASON_PRIORITY);
    policy_free(p);
}

static void max_running_jobs_caps_the_partner_jobs_in_slurm(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.max_running_jobs = 2;
    set_quota(p, "ulb", "2026-11", q);
    for (int i = 1; i <= 3; i++)
        enq(p, i, i == 2 ? "bob" : "alice", 1, 60, NOV15 - 10 * HOUR + i);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    assert_int_equal(dispatch_next(p, NOV15), 2);
    assert_int_equal(policy_job_started(p, 1), 0); /* running still counts */
    int64_t id, cg, cc;
    char period[8];
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    assert_string_equal(policy_job_reason(p, 3, NOV15), POLICY_REASON_PARTNER_JOBS);
    assert_int_equal(policy_job_finished(p, 1, 60, NOV15, &cg, &cc, period), 0);
    assert_int_equal(dispatch_next(p, NOV15), 3);
    policy_free(p);
}

static void window_full_stops_every_pick_until_a_job_starts(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0);
    c.cluster_window = 2;
    policy *p = world(&c);
    for (int i = 1; i <= 3; i++)
        enq(p, i, i == 3 ? "carol" : "alice", 1, 60, NOV15 - 10 + i);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    assert_int_equal(dispatch_next(p, NOV15), 2);
    int64_t id;
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    assert_string_equal(policy_job_reason(p, 3, NOV15), POLICY_REASON_CLUSTER_FULL);
    assert_int_equal(policy_job_started(p, 1), 0);
    assert_int_equal(policy_job_started(p, 1), 0); /* idempotent: frees one slot only */
    assert_string_equal(policy_job_reason(p, 3, NOV15), POLICY_REASON_PRIORITY);
    assert_int_equal(dispatch_next(p, NOV15), 3);
    enq(p, 4, "bob", 1, 60, NOV15);
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    assert_int_equal(policy_job_started(p, 99), -ENOENT);
    policy_free(p);
}

static void reason_is_priority_for_a_job_that_would_go_next(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    enq(p, 1, "alice", 1, 60, NOV15);
    assert_string_equal(policy_job_reason(p, 1, NOV15), POLICY_REASON_PRIORITY);
    assert_null(policy_job_reason(p, 2, NOV15));
    dispatch_next(p, NOV15);
    assert_null(policy_job_reason(p, 1, NOV15)); /* not queued any more */
    policy_free(p);
}

/* ---- holds and charges ---- */

/* used + held + left = budget for ulb in 2026-11. */
static void assert_ledger(policy *p, int64_t budget, int64_t used_want, int64_t held_want)
{
    int64_t used, held;
    policy_verdict v;
    policy_job probe = mkjob(999, "alice", 0, 1, NOV15);
    probe.cpus = 0;
    get_amounts(p, "ulb", "2026-11", &used, &held);
    assert_int_equal(used, used_want);
    assert_int_equal(held, held_want);
    assert_admit(p, &probe, NOV15, &v);
    assert_int_equal(used + held + v.budget_left_gpu_seconds, budget);
}

static void budget_is_held_at_dispatch_and_released_at_the_end(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.gpu_seconds = 3 * HOUR;
    set_quota(p, "ulb", "2026-11", q);
    int64_t cg, cc;
    char period[8];
    enq(p, 1, "alice", 1, 60, NOV15 - 3);
    enq(p, 2, "bob", 2, 60, NOV15 - 2);
    enq(p, 3, "alice", 1, 60, NOV15 - 1);
    assert_ledger(p, 3 * HOUR, 0, 0);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    assert_ledger(p, 3 * HOUR, 0, HOUR);
    assert_int_equal(dispatch_next(p, NOV15), 2);
    assert_ledger(p, 3 * HOUR, 0, 3 * HOUR);
    assert_string_equal(policy_job_reason(p, 3, NOV15), POLICY_REASON_BUDGET_HELD);
    assert_int_equal(policy_job_finished(p, 1, 1800, NOV15, &cg, &cc, period), 0);
    assert_int_equal(cg, 1800);
    assert_int_equal(cc, 1800);
    assert_string_equal(period, "2026-11");
    assert_ledger(p, 3 * HOUR, 1800, 2 * HOUR);
    assert_string_equal(policy_job_reason(p, 3, NOV15), POLICY_REASON_BUDGET_HELD);
    assert_int_equal(policy_job_finished(p, 2, HOUR, NOV15, &cg, &cc, period), 0);
    assert_int_equal(cg, 2 * HOUR);
    assert_ledger(p, 3 * HOUR, 1800 + 2 * HOUR, 0);
    /* 3600 > 10800 - 9000: never enough, whatever comes back */
    assert_string_equal(policy_job_reason(p, 3, NOV15), POLICY_REASON_BUDGET_EXHAUSTED);
    int64_t id;
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    policy_free(p);
}

static void finish_charges_the_elapsed_time_with_the_gpu_weight(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    c.n_gpu_types = 2;
    snprintf(c.gpu_types[1].name, sizeof c.gpu_types[1].name, "l40s");
    c.gpu_types[1].weight_milli = 500;
    policy *p = world(&c);
    policy_job j = mkjob(1, "alice", 1, 60, NOV15);
    snprintf(j.gpu_type, sizeof j.gpu_type, "l40s");
    j.cpus = 4;
    assert_int_equal(policy_job_enqueue(p, &j), 0);
    int64_t id, hg, hc, cg, cc;
    char period[8];
    assert_int_equal(policy_pick(p, NOV15, &id, &hg, &hc, period), 0);
    assert_int_equal(hg, 1800); /* 1 GPU x 1 h x 0.5 */
    assert_int_equal(hc, 4 * HOUR);
    assert_int_equal(policy_job_dispatched(p, 1, NOV15), 0);
    assert_int_equal(policy_job_finished(p, 1, 61, NOV15, &cg, &cc, period), 0);
    assert_int_equal(cg, 31); /* 30.5 rounds up */
    assert_int_equal(cc, 244);
    policy_free(p);
}

static void finish_never_charges_beyond_the_time_limit(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    enq(p, 1, "alice", 2, 60, NOV15);
    enq(p, 2, "alice", 2, 60, NOV15);
    dispatch_next(p, NOV15);
    dispatch_next(p, NOV15);
    int64_t cg, cc;
    char period[8];
    assert_int_equal(policy_job_finished(p, 1, 5 * HOUR, NOV15, &cg, &cc, period), 0);
    assert_int_equal(cg, 2 * HOUR);
    assert_int_equal(cc, HOUR);
    assert_int_equal(policy_job_finished(p, 2, 0, NOV15, &cg, &cc, period), 0); /* never ran */
    assert_int_equal(cg, 0);
    assert_int_equal(cc, 0);
    int64_t used, held;
    get_amounts(p, "ulb", "2026-11", &used, &held);
    assert_int_equal(used, 2 * HOUR);
    assert_int_equal(held, 0);
    policy_free(p);
}

static void a_job_dispatched_in_one_month_is_charged_to_that_month(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    set_quota(p, "ulb", "2026-10", unlimited());
    enq(p, 1, "alice", 1, 180, OCT31_23 - HOUR);
    int64_t id, hg, hc, cg, cc, used, held;
    char period[8];
    assert_int_equal(policy_pick(p, OCT31_23, &id, &hg, &hc, period), 0);
    assert_string_equal(period, "2026-10");
    assert_int_equal(policy_job_dispatched(p, 1, OCT31_23), 0);
    get_amounts(p, "ulb", "2026-10", &used, &held);
    assert_int_equal(held, 3 * HOUR);
    assert_int_equal(policy_job_finished(p, 1, 2 * HOUR, NOV1 + HOUR, &cg, &cc, period), 0);
    assert_string_equal(period, "2026-10");
    get_amounts(p, "ulb", "2026-10", &used, &held);
    assert_int_equal(used, 2 * HOUR);
    assert_int_equal(held, 0);
    get_amounts(p, "ulb", "2026-11", &used, &held);
    assert_int_equal(used, 0);
    assert_int_equal(held, 0);
    policy_free(p);
}

static void pick_uses_the_quota_of_the_current_period(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    set_quota(p, "ulb", "2026-10", unlimited()); /* and none for 2026-12 */
    enq(p, 1, "alice", 1, 60, OCT31_23 - HOUR);
    int64_t id;
    assert_int_equal(pick_id(p, OCT31_23, &id), 0);
    assert_string_equal(policy_job_reason(p, 1, OCT31_23), POLICY_REASON_PRIORITY);
    assert_int_equal(pick_id(p, DEC1, &id), -ENOENT);
    assert_string_equal(policy_job_reason(p, 1, DEC1), POLICY_REASON_BUDGET_EXHAUSTED);
    assert_int_equal(policy_job_dispatched(p, 1, DEC1), -EDQUOT);
    policy_free(p);
}

static void requeue_releases_the_hold_and_queues_the_job_again(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    c.cluster_window = 1;
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.gpu_seconds = 10 * HOUR;
    q.max_gpus = 1;
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "alice", 1, 60, NOV15);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    int64_t used, held, id;
    get_amounts(p, "ulb", "2026-11", &used, &held);
    assert_int_equal(held, HOUR);
    assert_int_equal(policy_job_requeue(p, 1), 0);
    get_amounts(p, "ulb", "2026-11", &used, &held);
    assert_int_equal(used, 0);
    assert_int_equal(held, 0);
    assert_int_equal(policy_queue_length(p), 1);
    /* the window and the partner cap are free again */
    assert_string_equal(policy_job_reason(p, 1, NOV15), POLICY_REASON_PRIORITY);
    assert_int_equal(pick_id(p, NOV15, &id), 0);
    assert_int_equal(id, 1);
    assert_int_equal(policy_job_requeue(p, 1), -ENOENT); /* queued, not dispatched */
    assert_int_equal(policy_job_requeue(p, 42), -ENOENT);
    policy_free(p);
}

static void run_ended_by_a_slurm_requeue_is_charged_and_keeps_the_hold(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.gpu_seconds = 10 * HOUR;
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "alice", 2, 60, NOV15);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    assert_int_equal(policy_job_started(p, 1), 0);
    int64_t cg = -1, cc = -1, used, held;
    bool over = true;
    assert_int_equal(policy_job_run_ended(p, 1, 600, 1, NOV15 + 600, &cg, &cc, &over), 0);
    assert_int_equal(cg, 2 * 600);
    assert_false(over);
    get_amounts(p, "ulb", "2026-11", &used, &held);
    assert_int_equal(used, 1200);
    assert_int_equal(held, 2 * HOUR); /* the next run may use its whole time limit */
    /* the second run, then the end: charged once more, the hold given back */
    assert_int_equal(policy_job_started(p, 1), 0);
    char period[8];
    assert_int_equal(policy_job_finished(p, 1, 300, NOV15 + 2000, &cg, &cc, period), 0);
    assert_int_equal(cg, 600);
    get_amounts(p, "ulb", "2026-11", &used, &held);
    assert_int_equal(used, 1800);
    assert_int_equal(held, 0);
    assert_int_equal(policy_job_run_ended(p, 1, 10, 1, NOV15, &cg, &cc, NULL), -ENOENT);
    policy_free(p);
}

static void charge_of_runs_is_capped_at_runs_times_the_limit(void **state)
{
    (void)state;
    int64_t g = -1, c = -1;
    policy_charge_runs(2, 4, 10, 3, 1000, 5000, &g, &c); /* 3 runs of 10 min: 1800 s at most */
    assert_int_equal(g, 2 * 1800);
    assert_int_equal(c, 4 * 1800);
    policy_charge_runs(2, 4, 10, 0, 1000, 5000, &g, &c); /* fewer than 1 run counts as 1 */
    assert_int_equal(g, 2 * 600);
    int64_t g1 = -1;
    policy_charge(2, 4, 10, 1500, 300, &g1, NULL); /* policy_charge is one run */
    policy_charge_runs(2, 4, 10, 1, 1500, 300, &g, NULL);
    assert_int_equal(g1, g);
    assert_int_equal(g, 900);
}

static void run_ended_charges_at_most_the_time_limit_of_each_run(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    set_quota(p, "ulb", "2026-11", unlimited());
    enq(p, 1, "alice", 1, 10, NOV15);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    int64_t cg, cc;
    assert_int_equal(policy_job_run_ended(p, 1, 5000, 1, NOV15, &cg, &cc, NULL), 0);
    assert_int_equal(cg, 600);
    /* three runs ended unseen, as one span: capped at three time limits */
    assert_int_equal(policy_job_run_ended(p, 1, 5000, 3, NOV15, &cg, &cc, NULL), 0);
    assert_int_equal(cg, 1800);
    assert_int_equal(policy_job_run_ended(p, 1, 10, 0, NOV15, &cg, &cc, NULL), -EINVAL);
    policy_free(p);
}

static void run_ended_past_the_budget_says_the_job_must_end(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.gpu_seconds = HOUR + 1800; /* room for one hold of an hour, and half an hour more */
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "alice", 1, 60, NOV15);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    int64_t cg, cc, used, held;
    bool over = true;
    assert_int_equal(policy_job_run_ended(p, 1, 1800, 1, NOV15, &cg, &cc, &over), 0);
    assert_false(over); /* used 1800 + held 3600 = the budget */
    assert_int_equal(policy_job_run_ended(p, 1, 1, 1, NOV15, &cg, &cc, &over), 0);
    assert_true(over);
    get_amounts(p, "ulb", "2026-11", &used, &held);
    assert_int_equal(used, 1801);
    assert_int_equal(held, HOUR);
    policy_free(p);
}

static void dequeue_removes_only_a_queued_job(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    enq(p, 1, "alice", 1, 60, NOV15);
    enq(p, 2, "alice", 1, 60, NOV15);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    assert_int_equal(policy_job_dequeue(p, 1), -ENOENT); /* in Slurm */
    assert_int_equal(policy_job_dequeue(p, 2), 0);
    assert_int_equal(policy_job_dequeue(p, 2), -ENOENT);
    assert_int_equal(policy_queue_length(p), 0);
    assert_null(policy_job_reason(p, 2, NOV15));
    int64_t id;
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    enq(p, 2, "alice", 1, 60, NOV15); /* the id may be used again */
    policy_free(p);
}

static void a_hold_is_never_released_twice(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.gpu_seconds = 10 * HOUR;
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "alice", 1, 60, NOV15);
    enq(p, 2, "alice", 1, 60, NOV15);
    dispatch_next(p, NOV15);
    dispatch_next(p, NOV15);
    int64_t cg, cc, used, held;
    char period[8];
    assert_int_equal(policy_job_finished(p, 1, 10, NOV15, &cg, &cc, period), 0);
    assert_int_equal(policy_job_finished(p, 1, 10, NOV15, &cg, &cc, period), -ENOENT);
    assert_int_equal(policy_job_requeue(p, 1), -ENOENT);
    get_amounts(p, "ulb", "2026-11", &used, &held);
    assert_int_equal(used, 10);
    assert_int_equal(held, HOUR);
    policy_free(p);
}

static void restore_counts_holds_caps_and_the_window(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0);
    c.cluster_window = 1;
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.max_running_jobs = 2;
    set_quota(p, "ulb", "2026-11", q);
    policy_job a = mkjob(10, "alice", 1, 60, NOV1);
    policy_job b = mkjob(11, "bob", 1, 60, NOV1);
    assert_int_equal(policy_job_restore(p, &a, true, "2026-11", HOUR, HOUR), 0);
    assert_int_equal(policy_job_restore(p, &b, false, "2026-10", 500, 7), 0);
    int64_t used, held, id, cg, cc;
    char period[8];
    get_amounts(p, "ulb", "2026-11", &used, &held);
    assert_int_equal(held, HOUR);
    get_amounts(p, "ulb", "2026-10", &used, &held);
    assert_int_equal(held, 500);
    enq(p, 1, "carol", 1, 60, NOV15);
    enq(p, 2, "alice", 1, 60, NOV15 - 1);
    assert_string_equal(policy_job_reason(p, 1, NOV15), POLICY_REASON_CLUSTER_FULL);
    assert_int_equal(policy_job_started(p, 11), 0);
    assert_string_equal(policy_job_reason(p, 2, NOV15), POLICY_REASON_PARTNER_JOBS);
    assert_int_equal(pick_id(p, NOV15, &id), 0);
    assert_int_equal(id, 1);
    assert_int_equal(policy_job_finished(p, 11, 60, NOV15, &cg, &cc, period), 0);
    assert_string_equal(period, "2026-10");
    get_amounts(p, "ulb", "2026-10", &used, &held);
    assert_int_equal(used, 60);
    assert_int_equal(held, 0);
    policy_free(p);
}

static void restore_refuses_duplicates_unknown_users_and_bad_periods(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_job a = mkjob(10, "alice", 1, 60, NOV1);
    assert_int_equal(policy_job_restore(p, &a, false, "2026-11", 0, 0), 0);
    assert_int_equal(policy_job_restore(p, &a, false, "2026-11", 0, 0), -EEXIST);
    assert_int_equal(policy_job_enqueue(p, &a), -EEXIST);
    a.id = 11;
    assert_int_equal(policy_job_restore(p, &a, false, "November", 0, 0), -EINVAL);
    assert_int_equal(policy_job_restore(p, &a, false, "2026-11", -1, 0), -EINVAL);
    a = mkjob(12, "mallory", 1, 60, NOV1);
    assert_int_equal(policy_job_restore(p, &a, false, "2026-11", 0, 0), -ENOENT);
    policy_free(p);
}

static void enqueue_refuses_a_known_id_and_an_unknown_user(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    enq(p, 1, "alice", 1, 60, NOV15);
    policy_job j = mkjob(1, "bob", 1, 60, NOV15);
    assert_int_equal(policy_job_enqueue(p, &j), -EEXIST);
    j = mkjob(2, "mallory", 1, 60, NOV15);
    assert_int_equal(policy_job_enqueue(p, &j), -ENOENT);
    assert_int_equal(policy_queue_length(p), 1);
    policy_free(p);
}

static void quota_changes_take_effect_at_once_on_pick_and_reasons(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.max_gpus = 0;
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "alice", 1, 60, NOV15);
    int64_t id;
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    assert_string_equal(policy_job_reason(p, 1, NOV15), POLICY_REASON_PARTNER_GPU);
    q.max_gpus = 1;
    q.gpu_seconds = 0;
    set_quota(p, "ulb", "2026-11", q);
    assert_string_equal(policy_job_reason(p, 1, NOV15), POLICY_REASON_BUDGET_EXHAUSTED);
    q.gpu_seconds = POLICY_UNLIMITED;
    set_quota(p, "ulb", "2026-11", q);
    assert_string_equal(policy_job_reason(p, 1, NOV15), POLICY_REASON_PRIORITY);
    assert_int_equal(pick_id(p, NOV15, &id), 0);
    assert_int_equal(id, 1);
    policy_free(p);
}

static void dispatched_refuses_a_hold_that_no_longer_fits(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.gpu_seconds = 2 * HOUR;
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "alice", 1, 60, NOV15);
    int64_t id, used, held;
    assert_int_equal(pick_id(p, NOV15, &id), 0);
    q.gpu_seconds = HOUR / 2; /* cut between pick and dispatch */
    set_quota(p, "ulb", "2026-11", q);
    assert_int_equal(policy_job_dispatched(p, 1, NOV15), -EDQUOT);
    get_amounts(p, "ulb", "2026-11", &used, &held);
    assert_int_equal(held, 0);
    assert_int_equal(policy_queue_length(p), 1);
    assert_string_equal(policy_job_reason(p, 1, NOV15), POLICY_REASON_BUDGET_EXHAUSTED);
    assert_int_equal(policy_job_dispatched(p, 7, NOV15), -ENOENT);
    policy_free(p);
}

static void cpu_budget_blocks_the_pick(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.cpu_seconds = 3 * HOUR;
    set_quota(p, "ulb", "2026-11", q);
    policy_job j = mkjob(1, "alice", 0, 60, NOV15);
    j.cpus = 2;
    assert_int_equal(policy_job_enqueue(p, &j), 0);
    j.id = 2;
    assert_int_equal(policy_job_enqueue(p, &j), 0);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    assert_string_equal(policy_job_reason(p, 2, NOV15), POLICY_REASON_BUDGET_HELD);
    int64_t id;
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    policy_free(p);
}

static void user_moved_to_another_partner_takes_its_queued_jobs(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.max_queued_jobs = 1;
    set_quota(p, "vub", "2026-11", q);
    enq(p, 1, "alice", 1, 60, NOV15);
    assert_int_equal(policy_user_set(p, "alice", "vub", POLICY_CAT_SME), 0);
    policy_verdict v;
    policy_job j = mkjob(2, "carol", 1, 60, NOV15);
    assert_admit(p, &j, NOV15, &v);
    assert_string_equal(v.code, "queued_limit"); /* alice's job now counts for vub */
    j = mkjob(2, "bob", 1, 60, NOV15);
    assert_admit(p, &j, NOV15, &v);
    assert_true(v.admitted);
    policy_free(p);
}

/* ---- job arrays: %max and the whole-array quote ---- */

/* Queues tasks first .. first + n - 1 of array `first` (its first task's id) with %max `max`. */
static void enq_array(policy *p, int64_t first, int n, int max, const char *user, int gpus)
{
    for (int i = 0; i < n; i++) {
        policy_job j = mkjob(first + i, user, gpus, 60, NOV15 - 100);
        j.array_id = first;
        j.array_max = max;
        assert_int_equal(policy_job_enqueue(p, &j), 0);
    }
}

/* Dispatches (and starts) every job that may go now; returns how many went. */
static int dispatch_all(policy *p, int64_t now, int64_t *ids)
{
    int n = 0;
    int64_t id;
    while (pick_id(p, now, &id) == 0) {
        assert_int_equal(policy_job_dispatched(p, id, now), 0);
        assert_int_equal(policy_job_started(p, id), 0);
        if (ids) ids[n] = id;
        n++;
    }
    return n;
}

static void array_max_never_dispatches_more_than_max_at_once(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 0, 0);
    policy *p = world(&c);
    int64_t ids[8];
    enq_array(p, 10, 4, 2, "alice", 1);
    assert_int_equal(dispatch_all(p, NOV15, ids), 2);
    assert_int_equal(ids[0], 10);
    assert_int_equal(ids[1], 11);
    assert_string_equal(policy_job_reason(p, 12, NOV15), POLICY_REASON_ARRAY_LIMIT);
    assert_string_equal(policy_job_reason(p, 13, NOV15), POLICY_REASON_ARRAY_LIMIT);
    assert_int_equal(policy_queue_length(p), 2); /* parked tasks are still queued */
    policy_free(p);
}

static void array_max_wakes_a_parked_task_when_one_ends(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 0, 0);
    policy *p = world(&c);
    int64_t id;
    enq_array(p, 10, 4, 2, "alice", 1);
    assert_int_equal(dispatch_all(p, NOV15, NULL), 2);
    assert_int_equal(policy_job_finished(p, 11, 60, NOV15 + 60, NULL, NULL, NULL), 0);
    assert_int_equal(pick_id(p, NOV15 + 60, &id), 0);
    assert_int_equal(id, 12);
    assert_int_equal(dispatch_all(p, NOV15 + 60, NULL), 1);
    assert_int_equal(pick_id(p, NOV15 + 60, &id), -ENOENT);
    policy_free(p);
}

static void array_max_does_not_hold_back_the_users_other_jobs(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 0, 0);
    policy *p = world(&c);
    int64_t ids[8];
    enq_array(p, 10, 3, 1, "alice", 1);
    enq(p, 20, "alice", 1, 60, NOV15); /* later, lower priority than the array's tasks */
    assert_int_equal(dispatch_all(p, NOV15, ids), 2);
    assert_int_equal(ids[0], 10);
    assert_int_equal(ids[1], 20);
    policy_free(p);
}

static void array_max_counts_tasks_restored_after_their_siblings(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 0, 0);
    policy *p = world(&c);
    int64_t id;
    /* the queued task 12 of array 10 is loaded first... */
    policy_job j = mkjob(12, "alice", 1, 60, NOV15 - 100);
    j.array_id = 10;
    j.array_max = 2;
    assert_int_equal(policy_job_enqueue(p, &j), 0);
    /* ... tasks 10 and 11, restored in Slurm, which fill the array's %max */
    for (int64_t t = 10; t <= 11; t++) {
        policy_job r = mkjob(t, "alice", 1, 60, NOV15 - 100);
        r.array_id = 10;
        r.array_max = 2;
        assert_int_equal(policy_job_restore(p, &r, true, "2026-11", 0, 0), 0);
    }
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    assert_string_equal(policy_job_reason(p, 12, NOV15), POLICY_REASON_ARRAY_LIMIT);
    assert_int_equal(policy_job_finished(p, 10, 60, NOV15, NULL, NULL, NULL), 0);
    assert_int_equal(pick_id(p, NOV15, &id), 0);
    assert_int_equal(id, 12);
    policy_free(p);
}

static void array_max_requeued_task_goes_again_first(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 0, 0);
    policy *p = world(&c);
    int64_t id;
    enq_array(p, 10, 3, 1, "alice", 1);
    assert_int_equal(dispatch_next(p, NOV15), 10);
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    assert_int_equal(policy_job_requeue(p, 10), 0);
    assert_int_equal(dispatch_next(p, NOV15), 10);
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    policy_free(p);
}

static void array_max_cancel_of_a_parked_task_leaves_the_others(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 0, 0);
    policy *p = world(&c);
    int64_t id;
    enq_array(p, 10, 4, 1, "alice", 1);
    assert_int_equal(policy_job_dequeue(p, 12), 0); /* parked */
    assert_int_equal(policy_job_dequeue(p, 10), 0); /* the one in the user's queue */
    assert_int_equal(dispatch_next(p, NOV15), 11);
    assert_int_equal(policy_job_finished(p, 11, 1, NOV15, NULL, NULL, NULL), 0);
    assert_int_equal(dispatch_next(p, NOV15), 13);
    assert_int_equal(policy_job_finished(p, 13, 1, NOV15, NULL, NULL, NULL), 0);
    assert_int_equal(pick_id(p, NOV15, &id), -ENOENT);
    assert_int_equal(policy_queue_length(p), 0);
    policy_free(p); /* ASan: the array is freed with its last task */
}

/* Random dispatches and ends over three arrays: never more than an array's %max in Slurm, and
 * every task runs in the end. */
static void array_max_holds_under_random_dispatches_and_ends(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 0, 0);
    policy *p = world(&c);
    static const int maxes[3] = {1, 2, 3};
    int64_t in_slurm[64];
    int n_in = 0, done = 0, total = 3 * 10;
    unsigned seed = 12345;
    for (int a = 0; a < 3; a++)
        enq_array(p, 100 * (a + 1), 10, maxes[a], a == 2 ? "carol" : "alice", 1);
    while (done < total) {
        seed = seed * 1103515245u + 12345u;
        int64_t id;
        if ((seed >> 16) % 2 == 0 && pick_id(p, NOV15, &id) == 0) {
            assert_int_equal(policy_job_dispatched(p, id, NOV15), 0);
            assert_int_equal(policy_job_started(p, id), 0);
            in_slurm[n_in++] = id;
        } else if (n_in > 0) {
            int k = (int)((seed >> 8) % (unsigned)n_in);
            assert_int_equal(policy_job_finished(p, in_slurm[k], 1, NOV15, NULL, NULL, NULL), 0);
            in_slurm[k] = in_slurm[--n_in];
            done++;
        }
        int per[3] = {0, 0, 0};
        for (int i = 0; i < n_in; i++)
            per[in_slurm[i] / 100 - 1]++;
        for (int a = 0; a < 3; a++)
            if (per[a] > maxes[a])
                fail_msg("array %d: %d tasks in Slurm, max %d", a, per[a], maxes[a]);
    }
    assert_int_equal(policy_queue_length(p), 0);
    policy_free(p);
}

static void array_quote_covers_every_task(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 0, 0);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.gpu_seconds = 10 * HOUR;
    set_quota(p, "ulb", "2026-11", q);
    policy_job j = mkjob(0, "alice", 2, 60, NOV15);
    j.array_tasks = 4;
    policy_verdict v;
    assert_int_equal(policy_job_admit(p, &j, NOV15, &v), 0);
    assert_true(v.admitted);
    assert_int_equal(v.max_cost_gpu_seconds, 8 * HOUR);
    assert_int_equal(v.budget_left_after_gpu_seconds, 2 * HOUR);
    policy_free(p);
}

static void array_over_the_budget_is_refused_as_a_whole(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 0, 0);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.gpu_seconds = 10 * HOUR;
    set_quota(p, "ulb", "2026-11", q);
    policy_job j = mkjob(0, "alice", 2, 60, NOV15);
    j.array_tasks = 6; /* each task fits (2 h), the array does not (12 h) */
    policy_verdict v;
    assert_int_equal(policy_job_check(p, &j, NOV15, &v), 0);
    assert_false(v.admitted);
    assert_string_equal(v.code, "budget_exceeded");
    assert_non_null(strstr(v.message, "this array of 6 tasks may cost up to 12.00 GPU-hours (2.00 "
                                      "per task) but ulb has 10.00 left"));
    assert_non_null(strstr(v.message, "nothing was queued"));
    policy_free(p);
}

static void array_over_the_queued_cap_is_refused_as_a_whole(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 0, 0);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.max_queued_jobs = 5;
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "alice", 0, 60, NOV15);
    enq(p, 2, "alice", 0, 60, NOV15);
    policy_job j = mkjob(0, "alice", 0, 60, NOV15);
    j.array_tasks = 4;
    policy_verdict v;
    assert_int_equal(policy_job_check(p, &j, NOV15, &v), 0);
    assert_false(v.admitted);
    assert_string_equal(v.code, "queued_limit");
    assert_non_null(strstr(v.message, "this array adds 4 tasks"));
    j.array_tasks = 3;
    assert_int_equal(policy_job_check(p, &j, NOV15, &v), 0);
    assert_true(v.admitted);
    policy_free(p);
}

/* ---- holds for dependencies ---- */

static void dependency_hold_keeps_the_job_out_of_the_pick_with_reason_dependency(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0);
    policy *p = world(&c);
    enq(p, 1, "alice", 1, 60, NOV15 - 3 * HOUR); /* the oldest: would go first */
    enq(p, 2, "alice", 1, 60, NOV15 - HOUR);
    assert_int_equal(policy_job_dependency_hold(p, 1), 0);
    assert_true(policy_job_dependency_held(p, 1));
    assert_string_equal(policy_job_reason(p, 1, NOV15), POLICY_REASON_DEPENDENCY);
    assert_int_equal(policy_queue_length(p), 2); /* still queued */
    assert_int_equal(dispatch_next(p, NOV15), 2);
    int64_t id;
    assert_int_equal(policy_pick(p, NOV15, &id, NULL, NULL, NULL), -ENOENT);
    assert_int_equal(policy_job_dispatched(p, 1, NOV15), -ENOENT);
    policy_free(p);
}

static void dependency_release_lets_the_job_compete_again(void **state)
{
    (void)state;
    policy_config c = weights(0, 0, 1000, 0);
    policy *p = world(&c);
    enq(p, 1, "alice", 1, 60, NOV15 - 3 * HOUR);
    enq(p, 2, "bob", 1, 60, NOV15 - HOUR);
    assert_int_equal(policy_job_dependency_hold(p, 1), 0);
    assert_int_equal(policy_job_dependency_hold(p, 1), 0); /* idempotent */
    assert_int_equal(policy_job_dependency_release(p, 1), 0);
    assert_false(policy_job_dependency_held(p, 1));
    assert_int_equal(policy_job_dependency_release(p, 1), 0); /* idempotent */
    assert_int_equal(dispatch_next(p, NOV15), 1); /* its old priority: the oldest first */
    assert_int_equal(dispatch_next(p, NOV15), 2);
    policy_free(p);
}

static void dependency_held_job_counts_against_the_queued_cap(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.max_queued_jobs = 1;
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "alice", 1, 60, NOV15);
    assert_int_equal(policy_job_dependency_hold(p, 1), 0);
    policy_job j = mkjob(2, "alice", 1, 60, NOV15);
    policy_verdict v;
    assert_int_equal(policy_job_check(p, &j, NOV15, &v), 0);
    assert_false(v.admitted);
    assert_string_equal(v.code, "queued_limit");
    policy_free(p);
}

static void dependency_held_job_can_be_dequeued(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    enq(p, 1, "alice", 1, 60, NOV15);
    enq(p, 2, "alice", 1, 60, NOV15 + 1);
    assert_int_equal(policy_job_dependency_hold(p, 1), 0);
    assert_int_equal(policy_job_dequeue(p, 1), 0);
    assert_int_equal(policy_queue_length(p), 1);
    assert_null(policy_job_reason(p, 1, NOV15));
    assert_int_equal(dispatch_next(p, NOV15), 2);
    assert_int_equal(policy_job_dependency_hold(p, 2), -ENOENT); /* in Slurm now */
    assert_int_equal(policy_job_dependency_hold(p, 99), -ENOENT);
    policy_free(p);
}

static const policy_partner_stats *stats_of(const policy_partner_stats *v, size_t n,
                                            const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0) return &v[i];
    fail_msg("no stats for partner %s", name);
    return NULL;
}

static void partner_stats_count_queued_in_slurm_and_running_gpus(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    enq(p, 1, "alice", 2, 60, NOV15);
    enq(p, 2, "bob", 1, 60, NOV15);
    enq(p, 3, "carol", 4, 60, NOV15);
    int64_t first = dispatch_next(p, NOV15);
    int64_t second = dispatch_next(p, NOV15);
    assert_int_equal(policy_job_started(p, first), 0);
    policy_partner_stats v[4];
    size_t n = policy_partner_stats_get(p, NOV15, v, 4);
    assert_int_equal(n, 2);
    int64_t gpus[4] = {0, 2, 1, 4};
    const policy_partner_stats *ulb = stats_of(v, n, "ulb"), *vub = stats_of(v, n, "vub");
    size_t ulb_in_slurm = (first != 3) + (second != 3);
    assert_int_equal(ulb->queued + vub->queued, 1);
    assert_int_equal(ulb->gpus_running + vub->gpus_running, gpus[first]);
    assert_int_equal(ulb->gpus_in_slurm + vub->gpus_in_slurm, gpus[first] + gpus[second]);
    assert_int_equal(ulb->jobs_in_slurm, ulb_in_slurm);
    assert_int_equal(ulb->budget_gpu_s, POLICY_UNLIMITED);
    policy_free(p);
}

static void partner_stats_count_each_users_jobs_under_its_first_jobs_reason(void **state)
{
    (void)state;
    policy_config c;
    policy_config_defaults(&c);
    policy *p = world(&c);
    policy_quota q = unlimited();
    q.max_gpus = 1; /* ulb: one GPU in Slurm at once */
    set_quota(p, "ulb", "2026-11", q);
    enq(p, 1, "alice", 1, 60, NOV15);
    enq(p, 2, "alice", 1, 60, NOV15 + 1);
    enq(p, 3, "alice", 1, 60, NOV15 + 2);
    assert_int_equal(dispatch_next(p, NOV15), 1);
    policy_partner_stats v[2];
    size_t n = policy_partner_stats_get(p, NOV15, v, 2);
    const policy_partner_stats *ulb = stats_of(v, n, "ulb");
    assert_int_equal(ulb->queued, 2);
    size_t k = 0;
    while (strcmp(policy_wait_reasons[k], POLICY_REASON_PARTNER_GPU) != 0)
        k++;
    assert_int_equal(ulb->queued_by_reason[k], 2);
    assert_int_equal(policy_job_finished(p, 1, 60, NOV15 + 60, NULL, NULL, NULL), 0);
    n = policy_partner_stats_get(p, NOV15 + 60, v, 2);
    ulb = stats_of(v, n, "ulb");
    assert_int_equal(ulb->queued_by_reason[k], 0);
    assert_int_equal(ulb->gpus_running, 0);
    assert_int_equal(ulb->used_gpu_s, 60);
    policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(category_parse_and_name_round_trip),
        cmocka_unit_test(config_defaults_are_the_documented_ones),
        cmocka_unit_test(new_refuses_a_bad_config_naming_the_field),
        cmocka_unit_test(quota_none_has_zero_budgets_and_no_caps),
        cmocka_unit_test(period_of_is_the_utc_month),
        cmocka_unit_test(period_valid_follows_yyyy_mm),
        cmocka_unit_test(cost_rounds_up_and_applies_the_weight),
        cmocka_unit_test(gpu_weight_knows_the_default_and_refuses_unknown_types),
        cmocka_unit_test(partner_and_user_set_validate_their_arguments),
        cmocka_unit_test(quota_get_of_a_period_never_set_is_none),
        cmocka_unit_test(quota_set_validates_and_round_trips),
        cmocka_unit_test(usage_load_adds_to_the_used_amount),
        cmocka_unit_test(admit_refuses_an_unknown_user),
        cmocka_unit_test(admit_refuses_an_unknown_gpu_type_listing_the_known_ones),
        cmocka_unit_test(admit_refuses_a_walltime_over_the_limit),
        cmocka_unit_test(admit_refuses_more_gpus_than_the_partner_cap),
        cmocka_unit_test(admit_refuses_more_gpus_than_the_user_cap),
        cmocka_unit_test(admit_refuses_when_the_partner_queue_is_full),
        cmocka_unit_test(admit_refuses_a_cost_over_the_gpu_budget_left),
        cmocka_unit_test(admit_refuses_a_job_with_a_cost_when_no_quota_is_set),
        cmocka_unit_test(admit_refuses_a_cost_over_the_cpu_budget_left),
        cmocka_unit_test(admit_checks_limits_in_the_documented_order),
        cmocka_unit_test(check_decides_like_admit_without_the_quote),
        cmocka_unit_test(admit_with_unlimited_fields_never_refuses),
        cmocka_unit_test(admit_quote_fills_costs_and_the_budget_left),
        cmocka_unit_test(admit_quote_gives_queue_position_and_wait_reason),
        cmocka_unit_test(admit_quote_reason_names_the_limit_it_would_wait_on),
        cmocka_unit_test(admit_quote_goes_next_past_a_blocked_higher_job),
        cmocka_unit_test(admit_refuses_bad_job_fields),
        cmocka_unit_test(priority_follows_the_documented_formula),
        cmocka_unit_test(fair_share_gives_lower_priority_to_the_partner_that_used_more),
        cmocka_unit_test(fair_share_charge_from_a_finished_job_reorders_the_queue),
        cmocka_unit_test(fair_share_usage_halves_after_one_half_life),
        cmocka_unit_test(fair_share_uses_the_share_weights),
        cmocka_unit_test(category_factor_ranks_users),
        cmocka_unit_test(age_factor_grows_with_the_wait_without_a_cap),
        cmocka_unit_test(size_factor_favours_bigger_jobs),
        cmocka_unit_test(pick_on_an_empty_queue_is_enoent),
        cmocka_unit_test(pick_returns_the_highest_priority_and_changes_nothing),
        cmocka_unit_test(pick_skips_a_capped_partner_while_another_dispatches),
        cmocka_unit_test(user_cap_does_not_block_another_user_of_the_same_partner),
        cmocka_unit_test(user_top_job_blocked_holds_back_the_users_other_jobs),
        cmocka_unit_test(max_running_jobs_caps_the_partner_jobs_in_slurm),
        cmocka_unit_test(window_full_stops_every_pick_until_a_job_starts),
        cmocka_unit_test(reason_is_priority_for_a_job_that_would_go_next),
        cmocka_unit_test(budget_is_held_at_dispatch_and_released_at_the_end),
        cmocka_unit_test(finish_charges_the_elapsed_time_with_the_gpu_weight),
        cmocka_unit_test(finish_never_charges_beyond_the_time_limit),
        cmocka_unit_test(a_job_dispatched_in_one_month_is_charged_to_that_month),
        cmocka_unit_test(pick_uses_the_quota_of_the_current_period),
        cmocka_unit_test(requeue_releases_the_hold_and_queues_the_job_again),
        cmocka_unit_test(run_ended_by_a_slurm_requeue_is_charged_and_keeps_the_hold),
        cmocka_unit_test(charge_of_runs_is_capped_at_runs_times_the_limit),
        cmocka_unit_test(run_ended_charges_at_most_the_time_limit_of_each_run),
        cmocka_unit_test(run_ended_past_the_budget_says_the_job_must_end),
        cmocka_unit_test(dequeue_removes_only_a_queued_job),
        cmocka_unit_test(a_hold_is_never_released_twice),
        cmocka_unit_test(restore_counts_holds_caps_and_the_window),
        cmocka_unit_test(restore_refuses_duplicates_unknown_users_and_bad_periods),
        cmocka_unit_test(enqueue_refuses_a_known_id_and_an_unknown_user),
        cmocka_unit_test(quota_changes_take_effect_at_once_on_pick_and_reasons),
        cmocka_unit_test(dispatched_refuses_a_hold_that_no_longer_fits),
        cmocka_unit_test(cpu_budget_blocks_the_pick),
        cmocka_unit_test(user_moved_to_another_partner_takes_its_queued_jobs),
        cmocka_unit_test(array_max_never_dispatches_more_than_max_at_once),
        cmocka_unit_test(array_max_wakes_a_parked_task_when_one_ends),
        cmocka_unit_test(array_max_does_not_hold_back_the_users_other_jobs),
        cmocka_unit_test(array_max_counts_tasks_restored_after_their_siblings),
        cmocka_unit_test(array_max_requeued_task_goes_again_first),
        cmocka_unit_test(array_max_cancel_of_a_parked_task_leaves_the_others),
        cmocka_unit_test(array_max_holds_under_random_dispatches_and_ends),
        cmocka_unit_test(array_quote_covers_every_task),
        cmocka_unit_test(array_over_the_budget_is_refused_as_a_whole),
        cmocka_unit_test(array_over_the_queued_cap_is_refused_as_a_whole),
        cmocka_unit_test(dependency_hold_keeps_the_job_out_of_the_pick_with_reason_dependency),
        cmocka_unit_test(dependency_release_lets_the_job_compete_again),
        cmocka_unit_test(dependency_held_job_counts_against_the_queued_cap),
        cmocka_unit_test(dependency_held_job_can_be_dequeued),
        cmocka_unit_test(partner_stats_count_queued_in_slurm_and_running_gpus),
        cmocka_unit_test(partner_stats_count_each_users_jobs_under_its_first_jobs_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
