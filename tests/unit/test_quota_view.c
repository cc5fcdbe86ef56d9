/* test_quota_view.c - unit tests for client/quota_view: the `antenna quota` table (unlimited, not
 * set, CPU columns), `partner show` and the `submit --dry-run` quote, including hostile JSON.
 * Prints only into memory streams; never touches the network. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <jansson.h>

#include "quota_view.h"

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL) fail_msg("bad test JSON: %s", e.text);
    return j;
}

enum view { TABLE, PARTNER, QUOTE };

/* Prints the JSON text through one view into a string (caller frees); *rc gets its result. */
static char *render(enum view v, const char *text, int *rc)
{
    json_t *j = parse(text);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    if (v == TABLE)
        *rc = quota_view_print_table(f, j);
    else if (v == PARTNER)
        *rc = quota_view_print_partner(f, j);
    else
        *rc = quota_view_print_quote(f, j);
    fclose(f);
    json_decref(j);
    return buf;
}

static int setup_utc(void **state)
{
    (void)state;
    setenv("TZ", "UTC0", 1);
    tzset();
    return 0;
}

/* The API doc's example quota. */
#define Q_ULB                                                                                      \
    "{\"partner\": \"ulb\", \"period\": \"2026-11\", \"share_weight\": 2, \"gpu_hours\": 100.0,"   \
    " \"used_gpu_hours\": 12.5, \"held_gpu_hours\": 4.0, \"left_gpu_hours\": 83.5,"                \
    " \"cpu_hours\": null, \"used_cpu_hours\": 3.2, \"held_cpu_hours\": 0.5,"                      \
    " \"left_cpu_hours\": null, \"max_gpus\": 8, \"max_running_jobs\": null,"                      \
    " \"max_queued_jobs\": 50, \"max_walltime_minutes\": 1440, \"user_max_gpus\": 4,"              \
    " \"set\": true}"

/* A quota never set (budgets 0, no caps), with a CPU budget number that must not count. */
#define Q_UNSET                                                                                    \
    "{\"partner\": \"vub\", \"period\": \"2026-11\", \"gpu_hours\": 0, \"used_gpu_hours\": 0,"     \
    " \"held_gpu_hours\": 0, \"left_gpu_hours\": 0, \"cpu_hours\": 0, \"used_cpu_hours\": 0,"      \
    " \"held_cpu_hours\": 0, \"left_cpu_hours\": 0, \"max_gpus\": null,"                           \
    " \"max_running_jobs\": null, \"max_queued_jobs\": null, \"max_walltime_minutes\": null,"      \
    " \"user_max_gpus\": null, \"set\": false}"

/* Unlimited GPU budget, a CPU budget, integer amounts. */
#define Q_CPU                                                                                      \
    "{\"partner\": \"imec\", \"period\": \"2026-11\", \"gpu_hours\": null, \"used_gpu_hours\": 1," \
    " \"held_gpu_hours\": 0, \"left_gpu_hours\": null, \"cpu_hours\": 500,"                        \
    " \"used_cpu_hours\": 20.25, \"held_cpu_hours\": 1.5, \"left_cpu_hours\": 478.25,"             \
    " \"max_gpus\": 2, \"max_running_jobs\": 1, \"max_queued_jobs\": 0,"                           \
    " \"max_walltime_minutes\": 90, \"user_max_gpus\": null, \"set\": true}"

static void table_shows_hours_with_two_decimals_caps_and_unlimited(void **state)
{
    (void)state;
    int rc;
    char *out = render(TABLE, "[" Q_ULB "]", &rc);
    assert_int_equal(rc, 1);
    assert_string_equal(out,
                        "PARTNER  PERIOD   BUDGET_GPUh  USED   HELD  LEFT   MAX_GPUS  MAX_JOBS "
                        "  MAX_QUEUED  MAX_WALLTIME  USER_MAX_GPUS\n"
                        "ulb      2026-11  100.00       12.50  4.00  83.50  8         "
                        "unlimited  50          1-00:00:00    4\n");
    free(out);
}

static void table_shows_not_set_for_a_quota_never_set(void **state)
{
    (void)state;
    int rc;
    char *out = render(TABLE, "[" Q_ULB ", " Q_UNSET "]", &rc);
    assert_int_equal(rc, 2);
    /* no CPU columns: the only quota with a numeric cpu_hours was never set */
    assert_null(strstr(out, "CPU"));
    assert_non_null(strstr(out, "\nvub      2026-11  not set      0.00   0.00  0.00   unlimited  "
                                "unlimited  unlimited   unlimited     unlimited\n"));
    free(out);
}

static void unset_quota_shows_a_null_left_as_dash_not_unlimited(void **state)
{
    (void)state;
    int rc;
    char *out = render(TABLE,
                       "[{\"partner\": \"vub\", \"period\": \"2026-11\", \"gpu_hours\": null,"
                       " \"used_gpu_hours\": 0, \"held_gpu_hours\": 0, \"left_gpu_hours\": null,"
                       " \"max_gpus\": 4, \"max_running_jobs\": null, \"max_queued_jobs\": null,"
                       " \"max_walltime_minutes\": 60, \"user_max_gpus\": null, \"set\": false}]",
                       &rc);
    assert_int_equal(rc, 1);
    assert_string_equal(out, "PARTNER  PERIOD   BUDGET_GPUh  USED  HELD  LEFT  MAX_GPUS  MAX_JOBS  "
                             " MAX_QUEUED  MAX_WALLTIME  USER_MAX_GPUS\n"
                             "vub      2026-11  not set      0.00  0.00  -     4         unlimited "
                             " unlimited   01:00:00      unlimited\n");
    free(out);
}

static void table_adds_cpu_columns_when_a_partner_has_a_cpu_budget(void **state)
{
    (void)state;
    int rc;
    char *out = render(TABLE, "[" Q_ULB ", " Q_UNSET ", " Q_CPU "]", &rc);
    assert_int_equal(rc, 3);
    assert_string_equal(
        out, "PARTNER  PERIOD   BUDGET_GPUh  USED   HELD  LEFT       BUDGET_CPUh  CPU_USED  "
             "CPU_HELD  CPU_LEFT   MAX_GPUS   MAX_JOBS   MAX_QUEUED  MAX_WALLTIME  USER_MAX_GPUS\n"
             "ulb      2026-11  100.00       12.50  4.00  83.50      unlimited    3.20      0.50 "
             "     unlimited  8          unlimited  50          1-00:00:00    4\n"
             "vub      2026-11  not set      0.00   0.00  0.00       not set      0.00      0.00 "
             "     0.00       unlimited  unlimited  unlimited   unlimited     unlimited\n"
             "imec     2026-11  unlimited    1.00   0.00  unlimited  500.00       20.25     1.50 "
             "     478.25     2          1          0           01:30:00      unlimited\n");
    free(out);
}

static void table_survives_missing_and_mistyped_fields(void **state)
{
    (void)state;
    int rc;
    char *out =
        render(TABLE,
               "[{\"partner\": 5, \"set\": \"x\", \"gpu_hours\": \"lots\", \"max_gpus\": 1.5,"
               " \"cpu_hours\": [1]}, 7, {\"partner\": \"a\\u0007b\"}]",
               &rc);
    assert_int_equal(rc, 3);
    assert_string_equal(out, "PARTNER  PERIOD  BUDGET_GPUh  USED  HELD  LEFT  MAX_GPUS  MAX_JOBS  "
                             "MAX_QUEUED  MAX_WALLTIME  USER_MAX_GPUS\n"
                             "-        -       -            -     -     -     -         -         "
                             "-           -             -\n"
                             "-        -       -            -     -     -     -         -         "
                             "-           -             -\n"
                             "a b      -       -            -     -     -     -         -         "
                             "-           -             -\n");
    free(out);
}

static void table_prints_nothing_for_an_empty_or_non_list(void **state)
{
    (void)state;
    int rc;
    char *out = render(TABLE, "[]", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "");
    free(out);
    out = render(TABLE, "{\"quotas\": []}", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "");
    free(out);
}

static void partner_shows_its_fields_then_its_quota_as_a_table(void **state)
{
    (void)state;
    int rc;
    char *out =
        render(PARTNER,
               "{\"quota\": " Q_ULB ", \"extra\": true, \"name\": \"ulb\", \"description\": "
               "\"Universit\\u00e9 libre\\nde Bruxelles\", \"share_weight\": 2, \"created_at\": "
               "\"2026-11-01T09:00:00Z\"}",
               &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out,
                        "name:         ulb\n"
                        "description:  Université libre de Bruxelles\n"
                        "share_weight: 2\n"
                        "created_at:   2026-11-01 09:00:00\n"
                        "extra:        true\n"
                        "\n"
                        "PARTNER  PERIOD   BUDGET_GPUh  USED   HELD  LEFT   MAX_GPUS  MAX_JOBS "
                        "  MAX_QUEUED  MAX_WALLTIME  USER_MAX_GPUS\n"
                        "ulb      2026-11  100.00       12.50  4.00  83.50  8         "
                        "unlimited  50          1-00:00:00    4\n");
    free(out);
}

static void partner_without_a_quota_object_says_so(void **state)
{
    (void)state;
    int rc;
    char *out = render(PARTNER, "{\"name\": \"ulb\", \"share_weight\": 1, \"quota\": null}", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "name:         ulb\n"
                             "share_weight: 1\n"
                             "quota:        -\n");
    free(out);
}

static void admitted_quote_shows_cost_budget_position_and_reason(void **state)
{
    (void)state;
    int rc;
    char *out = render(QUOTE,
                       "{\"dry_run\": true, \"admitted\": true, \"code\": \"\", \"message\": \"\","
                       " \"period\": \"2026-11\", \"max_cost_gpu_hours\": 2.0,"
                       " \"budget_left_gpu_hours\": 100.0, \"budget_left_after_gpu_hours\": 98.0,"
                       " \"queue_position\": 3, \"wait_reason\": \"PartnerGpuLimit\","
                       " \"priority\": 10450.2}",
                       &rc);
    assert_int_equal(rc, 1);
    assert_string_equal(out, "Job would be admitted (period 2026-11).\n"
                             "  max cost:       2.00 GPU-hours\n"
                             "  budget left:    100.00 GPU-hours (98.00 after this job)\n"
                             "  queue position: 3\n"
                             "  would wait on:  PartnerGpuLimit\n"
                             "  priority:       10450.2\n");
    free(out);
}

static void admitted_quote_with_unlimited_budget_and_no_wait(void **state)
{
    (void)state;
    int rc;
    char *out = render(QUOTE,
                       "{\"admitted\": true, \"period\": \"2026-11\", \"max_cost_gpu_hours\": 1,"
                       " \"budget_left_gpu_hours\": null, \"budget_left_after_gpu_hours\": null,"
                       " \"queue_position\": 1, \"wait_reason\": \"\"}",
                       &rc);
    assert_int_equal(rc, 1);
    assert_string_equal(out, "Job would be admitted (period 2026-11).\n"
                             "  max cost:       1.00 GPU-hours\n"
                             "  budget left:    unlimited\n"
                             "  queue position: 1\n"
                             "  would wait on:  nothing\n");
    free(out);
}

static void refused_quote_shows_message_and_code_and_returns_0(void **state)
{
    (void)state;
    int rc;
    char *out =
        render(QUOTE,
               "{\"admitted\": false, \"code\": \"budget_exceeded\", \"message\": \"the job "
               "may cost 200.00 GPU-hours but only 10.00 are left\", \"period\": "
               "\"2026-11\", \"max_cost_gpu_hours\": 200, \"budget_left_gpu_hours\": 10,"
               " \"budget_left_after_gpu_hours\": null, \"queue_position\": null,"
               " \"wait_reason\": \"\"}",
               &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "Job would be refused: the job may cost 200.00 GPU-hours but only "
                             "10.00 are left (budget_exceeded)\n"
                             "  max cost:       200.00 GPU-hours\n"
                             "  budget left:    10.00 GPU-hours\n");
    free(out);
}

static void refused_quote_cleans_control_characters_and_missing_reasons(void **state)
{
    (void)state;
    int rc;
    char *out = render(QUOTE, "{\"admitted\": false, \"message\": \"\\u001b[31mred\"}", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "Job would be refused:  [31mred\n");
    free(out);
    out = render(QUOTE, "{\"admitted\": false}", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "Job would be refused (the server gave no reason)\n");
    free(out);
}

static void quote_without_a_boolean_admitted_is_refused_unprinted(void **state)
{
    (void)state;
    static const char *const bad[] = {"{}", "{\"admitted\": \"yes\"}", "{\"admitted\": 1}", "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc;
        char *out = render(QUOTE, bad[i], &rc);
        if (rc != -EINVAL) fail_msg("%s: got %d", bad[i], rc);
        assert_string_equal(out, "");
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_shows_hours_with_two_decimals_caps_and_unlimited),
        cmocka_unit_test(table_shows_not_set_for_a_quota_never_set),
        cmocka_unit_test(unset_quota_shows_a_null_left_as_dash_not_unlimited),
        cmocka_unit_test(table_adds_cpu_columns_when_a_partner_has_a_cpu_budget),
        cmocka_unit_test(table_survives_missing_and_mistyped_fields),
        cmocka_unit_test(table_prints_nothing_for_an_empty_or_non_list),
        cmocka_unit_test_setup(partner_shows_its_fields_then_its_quota_as_a_table, setup_utc),
        cmocka_unit_test(partner_without_a_quota_object_says_so),
        cmocka_unit_test(admitted_quote_shows_cost_budget_position_and_reason),
        cmocka_unit_test(admitted_quote_with_unlimited_budget_and_no_wait),
        cmocka_unit_test(refused_quote_shows_message_and_code_and_returns_0),
        cmocka_unit_test(refused_quote_cleans_control_characters_and_missing_reasons),
        cmocka_unit_test(quote_without_a_boolean_admitted_is_refused_unprinted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
