/* test_quota_args.c - unit tests for client/quota_args: the `antenna quota set` options turned into
 * a PATCH body (unlimited as null, Slurm walltimes, refused values, no field) and quota periods.
 * Never touches the network. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "quota_args.h"

/* Fails the test unless the body of `q` equals the JSON text `expected`. */
static void assert_body(const quota_args *q, const char *expected)
{
    json_error_t e;
    json_t *want = json_loads(expected, 0, &e);
    if (want == NULL) fail_msg("bad test JSON: %s", e.text);
    const json_t *got = quota_args_body(q);
    if (got == NULL || !json_equal((json_t *)got, want)) {
        char *text = got ? json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(want);
        fail_msg("body %s, expected %s", text ? text : "(none)", expected);
    }
    json_decref(want);
}

static void set(quota_args *q, const char *opt, const char *value)
{
    char err[256] = "";
    int rc = quota_args_set(q, opt, value, err, sizeof err);
    if (rc != 0) fail_msg("%s %s: %d %s", opt, value, rc, err);
}

static void each_option_maps_to_its_api_field(void **state)
{
    (void)state;
    quota_args q;
    quota_args_init(&q);
    set(&q, "--gpu-hours", "100");
    set(&q, "--cpu-hours", "12.5");
    set(&q, "--max-gpus", "8");
    set(&q, "--max-jobs", "3");
    set(&q, "--max-queued", "50");
    set(&q, "--max-walltime", "90");
    set(&q, "--user-max-gpus", "0");
    assert_body(&q, "{\"gpu_hours\": 100.0, \"cpu_hours\": 12.5, \"max_gpus\": 8,"
                    " \"max_running_jobs\": 3, \"max_queued_jobs\": 50,"
                    " \"max_walltime_minutes\": 90, \"user_max_gpus\": 0}");
    /* budgets travel as JSON reals, caps as integers */
    assert_true(json_is_real(json_object_get(quota_args_body(&q), "gpu_hours")));
    assert_true(json_is_integer(json_object_get(quota_args_body(&q), "max_gpus")));
    char err[64];
    assert_int_equal(quota_args_check(&q, err, sizeof err), 0);
    quota_args_close(&q);
}

static void only_the_given_fields_are_sent(void **state)
{
    (void)state;
    quota_args q;
    quota_args_init(&q);
    set(&q, "--max-jobs", "4");
    assert_body(&q, "{\"max_running_jobs\": 4}");
    quota_args_close(&q);
}

static void unlimited_is_sent_as_null_for_every_field(void **state)
{
    (void)state;
    quota_args q;
    quota_args_init(&q);
    set(&q, "--gpu-hours", "unlimited");
    set(&q, "--cpu-hours", "Unlimited");
    set(&q, "--max-gpus", "UNLIMITED");
    set(&q, "--max-jobs", "unlimited");
    set(&q, "--max-queued", "unlimited");
    set(&q, "--max-walltime", "UNLIMITED");
    set(&q, "--user-max-gpus", "unlimited");
    assert_body(&q, "{\"gpu_hours\": null, \"cpu_hours\": null, \"max_gpus\": null,"
                    " \"max_running_jobs\": null, \"max_queued_jobs\": null,"
                    " \"max_walltime_minutes\": null, \"user_max_gpus\": null}");
    quota_args_close(&q);
}

static void walltime_takes_slurm_formats_as_minutes(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int minutes;
    } cases[] = {
        {"90", 90},        {"2:00:00", 120}, {"1-00:00:00", 1440}, {"1-12", 2160},
        {"2-06:30", 3270}, {"10:30", 11},    {"0:00:59", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        quota_args q;
        quota_args_init(&q);
        set(&q, "--max-walltime", cases[i].in);
        json_t *v = json_object_get(quota_args_body(&q), "max_walltime_minutes");
        if (!json_is_integer(v) || json_integer_value(v) != cases[i].minutes)
            fail_msg("%s: expected %d minutes", cases[i].in, cases[i].minutes);
        quota_args_close(&q);
    }
}

static void bad_values_are_refused_naming_the_option(void **state)
{
    (void)state;
    static const struct {
        const char *opt, *value;
    } cases[] = {
        {"--gpu-hours", "-1"},         {"--gpu-hours", "1e3"},         {"--gpu-hours", "abc"},
        {"--gpu-hours", "nan"},        {"--gpu-hours", "inf"},         {"--gpu-hours", "12."},
        {"--gpu-hours", ""},           {"--cpu-hours", "0x10"},        {"--cpu-hours", "1,5"},
        {"--max-gpus", "-1"},          {"--max-gpus", "1.5"},          {"--max-gpus", "2147483648"},
        {"--max-jobs", "many"},        {"--max-queued", " 5"},         {"--user-max-gpus", "+2"},
        {"--max-walltime", "0"},       {"--max-walltime", "abc"},      {"--max-walltime", "-5"},
        {"--max-walltime", "1:2:3:4"}, {"--max-walltime", "infinite"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        quota_args q;
        quota_args_init(&q);
        char err[256] = "";
        int rc = quota_args_set(&q, cases[i].opt, cases[i].value, err, sizeof err);
        if (rc != -EINVAL) fail_msg("%s '%s': got %d", cases[i].opt, cases[i].value, rc);
        if (strstr(err, cases[i].opt) == NULL || strstr(err, "unlimited") == NULL)
            fail_msg("%s '%s': message \"%s\" should name the option and unlimited", cases[i].opt,
                     cases[i].value, err);
        assert_null(quota_args_body(&q));
        quota_args_close(&q);
    }
}

static void largest_values_are_accepted(void **state)
{
    (void)state;
    quota_args q;
    quota_args_init(&q);
    set(&q, "--max-gpus", "2147483647");
    set(&q, "--gpu-hours", "0");
    set(&q, "--cpu-hours", ".5");
    assert_body(&q, "{\"max_gpus\": 2147483647, \"gpu_hours\": 0.0, \"cpu_hours\": 0.5}");
    quota_args_close(&q);
}

static void a_later_value_for_a_field_wins(void **state)
{
    (void)state;
    quota_args q;
    quota_args_init(&q);
    set(&q, "--max-gpus", "8");
    set(&q, "--max-gpus", "unlimited");
    set(&q, "--gpu-hours", "unlimited");
    set(&q, "--gpu-hours", "40");
    assert_body(&q, "{\"max_gpus\": null, \"gpu_hours\": 40.0}");
    quota_args_close(&q);
}

static void no_field_is_refused_listing_the_options(void **state)
{
    (void)state;
    quota_args q;
    quota_args_init(&q);
    char err[512] = "";
    assert_int_equal(quota_args_check(&q, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "--gpu-hours"));
    assert_non_null(strstr(err, "--max-walltime"));
    assert_non_null(strstr(err, "--user-max-gpus"));
    assert_null(quota_args_body(&q));
    /* a refused value does not count as a field */
    assert_int_equal(quota_args_set(&q, "--max-gpus", "x", err, sizeof err), -EINVAL);
    assert_int_equal(quota_args_check(&q, err, sizeof err), -EINVAL);
    quota_args_close(&q);
}

static void other_options_are_not_fields(void **state)
{
    (void)state;
    quota_args q;
    quota_args_init(&q);
    char err[64] = "";
    assert_int_equal(quota_args_set(&q, "--period", "2026-11", err, sizeof err), -ENOENT);
    assert_int_equal(quota_args_set(&q, "--max-memory", "8", err, sizeof err), -ENOENT);
    assert_int_equal(quota_args_set(&q, "gpu-hours", "8", err, sizeof err), -ENOENT);
    assert_null(quota_args_body(&q));
    static const char *const known[] = {"--gpu-hours",    "--cpu-hours",  "--max-gpus",
                                        "--max-jobs",     "--max-queued", "--max-walltime",
                                        "--user-max-gpus"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        assert_true(quota_args_opt_known(known[i]));
    assert_false(quota_args_opt_known("--period"));
    assert_false(quota_args_opt_known("--json"));
    assert_false(quota_args_opt_known(NULL));
    quota_args_close(&q);
}

static void periods_are_year_dash_month_or_current(void **state)
{
    (void)state;
    assert_true(quota_args_period_valid("2026-11", 0));
    assert_true(quota_args_period_valid("2027-01", 1));
    assert_true(quota_args_period_valid("current", 1));
    assert_false(quota_args_period_valid("current", 0));
    static const char *const bad[] = {"2026-13",    "2026-00", "2026-1", "26-11",   "2026/11",
                                      "2026-11-01", "",        "now",    "2026-1a", "Current"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (quota_args_period_valid(bad[i], 1)) fail_msg("'%s' should be refused", bad[i]);
    assert_false(quota_args_period_valid(NULL, 1));
}

static void close_accepts_null_and_empties(void **state)
{
    (void)state;
    quota_args_close(NULL);
    quota_args q;
    quota_args_init(&q);
    set(&q, "--max-gpus", "2");
    quota_args_close(&q);
    assert_null(quota_args_body(&q));
    quota_args_close(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_option_maps_to_its_api_field),
        cmocka_unit_test(only_the_given_fields_are_sent),
        cmocka_unit_test(unlimited_is_sent_as_null_for_every_field),
        cmocka_unit_test(walltime_takes_slurm_formats_as_minutes),
        cmocka_unit_test(bad_values_are_refused_naming_the_option),
        cmocka_unit_test(largest_values_are_accepted),
        cmocka_unit_test(a_later_value_for_a_field_wins),
        cmocka_unit_test(no_field_is_refused_listing_the_options),
        cmocka_unit_test(other_options_are_not_fields),
        cmocka_unit_test(periods_are_year_dash_month_or_current),
        cmocka_unit_test(close_accepts_null_and_empties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
