/* test_job_view.c - unit tests for client/job_view: --wait state lines, exit statuses, the jobs
 * table and the show details, including hostile JSON. Prints only into memory streams. */
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

#include "job_view.h"

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL) fail_msg("bad test JSON: %s", e.text);
    return j;
}

static int setup_utc(void **state)
{
    (void)state;
    setenv("TZ", "UTC0", 1);
    tzset();
    return 0;
}

static void terminal_states_are_exactly_the_documented_ones(void **state)
{
    (void)state;
    static const char *const terminal[] = {"completed",     "failed",    "cancelled", "timeout",
                                           "node_fail",     "preempted", "boot_fail", "deadline",
                                           "out_of_memory", "lost"};
    static const char *const live[] = {"queued",  "dispatching", "dispatched", "pending",
                                       "running", "suspended",   "",           "COMPLETED"};
    for (size_t i = 0; i < sizeof terminal / sizeof terminal[0]; i++)
        if (!job_view_state_terminal(terminal[i])) fail_msg("%s should be terminal", terminal[i]);
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
        if (job_view_state_terminal(live[i])) fail_msg("%s should not be terminal", live[i]);
    assert_int_equal(job_view_state_terminal(NULL), 0);
}

static void state_lines_match_the_wait_format(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *line;
    } cases[] = {
        {"{\"id\":7,\"state\":\"queued\",\"slurm_job_id\":null,\"exit_code\":null,\"reason\":\"\"}",
         "job 7: queued"},
        {"{\"id\":7,\"state\":\"dispatched\",\"slurm_job_id\":42,\"exit_code\":null}",
         "job 7: dispatched (slurm 42)"},
        {"{\"id\":7,\"state\":\"pending\",\"slurm_job_id\":42,\"reason\":\"Resources\"}",
         "job 7: pending (Resources)"},
        {"{\"id\":7,\"state\":\"running\",\"slurm_job_id\":42,\"reason\":\"\"}", "job 7: running"},
        {"{\"id\":7,\"state\":\"running\",\"cancel_requested\":true}",
         "job 7: running (cancel requested)"},
        {"{\"id\":7,\"state\":\"completed\",\"exit_code\":0}", "job 7: completed (exit 0)"},
        {"{\"id\":7,\"state\":\"failed\",\"exit_code\":3,\"reason\":\"NonZeroExitCode\"}",
         "job 7: failed (exit 3, NonZeroExitCode)"},
        {"{\"id\":7,\"state\":\"cancelled\",\"exit_code\":null,\"cancel_requested\":true}",
         "job 7: cancelled"},
        {"{\"id\":7,\"state\":\"running\",\"reason\":\"line\\nbreak\"}",
         "job 7: running (line break)"},
        {"{}", "job 0: unknown"},
        {"{\"id\":\"7\",\"state\":5,\"exit_code\":\"x\",\"slurm_job_id\":\"y\"}", "job 0: unknown"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = parse(cases[i].json);
        char buf[256];
        assert_string_equal(job_view_state_line(j, buf, sizeof buf), cases[i].line);
        json_decref(j);
    }
}

static void exit_status_follows_the_wait_rules(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int status;
    } cases[] = {
        {"{\"state\":\"completed\",\"exit_code\":0}", 0},
        {"{\"state\":\"completed\",\"exit_code\":null}", 0},
        {"{\"state\":\"failed\",\"exit_code\":3}", 3},
        {"{\"state\":\"failed\",\"exit_code\":300}", 255},
        {"{\"state\":\"failed\",\"exit_code\":-9}", 1},
        {"{\"state\":\"timeout\",\"exit_code\":0}", 1},
        {"{\"state\":\"cancelled\",\"exit_code\":null}", 1},
        {"{\"state\":\"lost\"}", 1},
        {"{\"state\":\"failed\",\"exit_code\":\"2\"}", 1},
        {"{}", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = parse(cases[i].json);
        if (job_view_exit_status(j) != cases[i].status)
            fail_msg("%s: got %d, want %d", cases[i].json, job_view_exit_status(j),
                     cases[i].status);
        json_decref(j);
    }
}

static char *capture_table(const json_t *jobs, int *rc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    *rc = job_view_print_table(f, jobs);
    fclose(f);
    return buf;
}

static void table_shows_every_column_like_squeue(void **state)
{
    (void)state;
    json_t *jobs = parse(
        "[{\"id\":12,\"name\":\"train\",\"state\":\"running\",\"gpus\":2,\"gpu_type\":\"h100\","
        "\"time_minutes\":1500,\"submitted_at\":\"2026-11-25T21:44:36Z\",\"slurm_job_id\":42,"
        "\"reason\":\"\"},"
        "{\"id\":7,\"name\":\"prep\",\"state\":\"pending\",\"gpus\":0,\"gpu_type\":\"\","
        "\"time_minutes\":60,\"submitted_at\":\"2026-11-25T08:05:00Z\",\"slurm_job_id\":null,"
        "\"reason\":\"Priority\"}]");
    int rc;
    char *out = capture_table(jobs, &rc);
    assert_int_equal(rc, 2);
    assert_string_equal(
        out, "ID  NAME   STATE    GPUS    TIME_LIMIT  SUBMITTED         SLURM_ID  REASON\n"
             "12  train  running  h100:2  1-01:00:00  2026-11-25 21:44  42        -\n"
             "7   prep   pending  0       01:00:00    2026-11-25 08:05  -         Priority\n");
    free(out);
    json_decref(jobs);
}

static void table_shows_what_queued_jobs_wait_on(void **state)
{
    (void)state;
    json_t *jobs =
        parse("[{\"id\":9,\"name\":\"big\",\"state\":\"queued\",\"gpus\":8,\"gpu_type\":\"\","
              "\"time_minutes\":60,\"submitted_at\":null,\"slurm_job_id\":null,"
              "\"reason\":\"PartnerGpuLimit\",\"period\":\"2026-11\",\"priority\":10450.2},"
              "{\"id\":8,\"name\":\"x\",\"state\":\"queued\",\"gpus\":1,\"gpu_type\":\"\","
              "\"time_minutes\":60,\"submitted_at\":null,\"slurm_job_id\":null,"
              "\"reason\":\"BudgetExhausted\"}]");
    int rc;
    char *out = capture_table(jobs, &rc);
    assert_int_equal(rc, 2);
    assert_string_equal(
        out, "ID  NAME  STATE   GPUS  TIME_LIMIT  SUBMITTED  SLURM_ID  REASON\n"
             "9   big   queued  8     01:00:00    -          -         PartnerGpuLimit\n"
             "8   x     queued  1     01:00:00    -          -         BudgetExhausted\n");
    free(out);
    json_decref(jobs);
    char line[256];
    json_t *job = parse("{\"id\":9,\"state\":\"queued\",\"reason\":\"UserGpuLimit\"}");
    assert_string_equal(job_view_state_line(job, line, sizeof line),
                        "job 9: queued (UserGpuLimit)");
    json_decref(job);
}

static void table_says_how_often_slurm_requeued_a_job(void **state)
{
    (void)state;
    json_t *jobs = parse("[{\"id\":4,\"name\":\"rq\",\"state\":\"running\",\"gpus\":1,"
                         "\"gpu_type\":\"\",\"time_minutes\":5,\"submitted_at\":null,"
                         "\"slurm_job_id\":40,\"reason\":\"\",\"restarts\":2},"
                         "{\"id\":3,\"name\":\"x\",\"state\":\"completed\",\"gpus\":1,"
                         "\"gpu_type\":\"\",\"time_minutes\":5,\"submitted_at\":null,"
                         "\"slurm_job_id\":30,\"reason\":\"\",\"restarts\":0}]");
    int rc;
    char *out = capture_table(jobs, &rc);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "4   rq    running (requeued 2x)  1     00:05:00"));
    assert_non_null(strstr(out, "3   x     completed              1"));
    free(out);
    json_decref(jobs);
}

static void table_survives_missing_and_mistyped_fields(void **state)
{
    (void)state;
    json_t *jobs = parse("[{\"id\":\"x\",\"name\":5,\"state\":null}, 3, \"str\"]");
    int rc;
    char *out = capture_table(jobs, &rc);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "ID  NAME"));
    free(out);
    json_decref(jobs);
}

static void table_prints_nothing_for_an_empty_list(void **state)
{
    (void)state;
    json_t *jobs = json_array();
    int rc;
    char *out = capture_table(jobs, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "");
    free(out);
    json_decref(jobs);
}

static void detail_prints_known_fields_in_order_then_the_rest(void **state)
{
    (void)state;
    json_t *job = parse("{\"extra\":\"later\",\"state\":\"running\",\"id\":7,\"name\":\"train\","
                        "\"time_minutes\":90,\"mem_mb\":0,\"exit_code\":null,"
                        "\"cancel_requested\":false,\"submitted_at\":\"2026-11-25T21:44:36Z\"}");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(job_view_print_detail(f, job), 0);
    fclose(f);
    assert_string_equal(buf, "id:               7\n"
                             "name:             train\n"
                             "state:            running\n"
                             "mem_mb:           0 (Slurm's default)\n"
                             "time_minutes:     90 (01:30:00)\n"
                             "exit_code:        -\n"
                             "cancel_requested: false\n"
                             "submitted_at:     2026-11-25 21:44:36\n"
                             "extra:            later\n");
    free(buf);
    json_decref(job);
}

static char *capture_detail(const char *text)
{
    json_t *job = parse(text);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(job_view_print_detail(f, job), 0);
    fclose(f);
    json_decref(job);
    return buf;
}

static void detail_shows_period_priority_and_gpu_hours_before_the_times(void **state)
{
    (void)state;
    char *out = capture_detail(
        "{\"ended_at\":null,\"charge_gpu_hours\":1.2345,\"hold_gpu_hours\":4,"
        "\"priority\":10450.25,\"period\":\"2026-11\",\"cancel_requested\":false,\"id\":7}");
    assert_string_equal(out, "id:               7\n"
                             "cancel_requested: false\n"
                             "period:           2026-11\n"
                             "priority:         10450.2\n"
                             "hold_gpu_hours:   4.00 GPU-hours\n"
                             "charge_gpu_hours: 1.23 GPU-hours\n"
                             "ended_at:         -\n");
    free(out);
}

static void detail_shows_null_quota_fields_as_dash_and_omits_missing_ones(void **state)
{
    (void)state;
    char *out = capture_detail("{\"id\":7,\"period\":null,\"priority\":null,"
                               "\"charge_gpu_hours\":null}");
    assert_string_equal(out, "id:               7\n"
                             "period:           -\n"
                             "priority:         -\n"
                             "charge_gpu_hours: -\n");
    free(out);
    out = capture_detail("{\"id\":7,\"priority\":12}");
    assert_string_equal(out, "id:               7\n"
                             "priority:         12\n");
    free(out);
}

static void table_shows_an_array_as_one_line_with_counts_by_state(void **state)
{
    (void)state;
    json_t *jobs = parse(
        "[{\"id\":12,\"name\":\"sweep\",\"state\":\"completed\",\"gpus\":1,\"gpu_type\":\"h100\","
        "\"time_minutes\":10,\"submitted_at\":\"2026-11-25T21:44:36Z\",\"slurm_job_id\":42,"
        "\"reason\":\"\",\"array_job_id\":12,\"array_task_id\":0,"
        "\"array\":{\"spec\":\"0-3%2\",\"task_count\":4,\"counts\":{\"completed\":1,"
        "\"queued\":1,\"running\":2}}}]");
    int rc;
    char *out = capture_table(jobs, &rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "12_[0-3%2]  sweep  2 running, 1 queued, 1 completed  h100:1"));
    assert_null(strstr(out, "42")); /* no Slurm id: the array has several */
    free(out);
    json_decref(jobs);
}

static void array_detail_lists_every_task_with_its_index_state_and_charge(void **state)
{
    (void)state;
    json_t *a = parse("{\"array_job_id\":12,\"spec\":\"0,4\",\"task_count\":2,\"max_running\":1,"
                      "\"counts\":{\"completed\":1,\"queued\":1},\"tasks\":["
                      "{\"id\":12,\"task_id\":0,\"state\":\"completed\",\"reason\":\"\","
                      "\"slurm_job_id\":42,\"started_at\":null,\"ended_at\":null,"
                      "\"charge_gpu_hours\":0.25},"
                      "{\"id\":13,\"task_id\":4,\"state\":\"queued\",\"reason\":"
                      "\"JobArrayTaskLimit\",\"slurm_job_id\":null,\"started_at\":null,"
                      "\"ended_at\":null,\"charge_gpu_hours\":null}]}");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(job_view_print_array(f, a), 0);
    fclose(f);
    assert_non_null(strstr(buf, "array:            0,4, 2 task(s), at most 1 at once: 1 queued, "
                                "1 completed\n"));
    assert_non_null(strstr(buf, "12_0  12      completed"));
    assert_non_null(strstr(buf, "0.25 GPU-h"));
    assert_non_null(strstr(buf, "12_4  13      queued     JobArrayTaskLimit"));
    free(buf);
    json_decref(a);
}

static void detail_shows_the_request_id_after_the_slurm_id(void **state)
{
    (void)state;
    char *out = capture_detail("{\"exit_code\":0,\"request_id\":\"it-abc123\",\"slurm_job_id\":42,"
                               "\"id\":7}");
    assert_string_equal(out, "id:               7\n"
                             "slurm_job_id:     42\n"
                             "request_id:       it-abc123\n"
                             "exit_code:        0\n");
    free(out);
}

static void runs_of_a_requeued_job_list_each_run_with_its_charge(void **state)
{
    (void)state;
    json_t *runs = parse("[{\"run\":1,\"runs\":1,\"slurm_job_id\":42,\"started_at\":null,"
                         "\"ended_at\":null,\"elapsed_seconds\":95,\"charge_gpu_hours\":0.21},"
                         "{\"run\":2,\"runs\":3,\"slurm_job_id\":42,\"started_at\":null,"
                         "\"ended_at\":null,\"elapsed_seconds\":600,\"charge_gpu_hours\":1.5}]");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(job_view_print_runs(f, runs), 0);
    fclose(f);
    assert_non_null(strstr(buf, "runs requeued by Slurm"));
    assert_non_null(strstr(buf, "95 s"));
    assert_non_null(strstr(buf, "0.21 GPU-h"));
    assert_non_null(strstr(buf, "2 (3 runs)"));
    assert_non_null(strstr(buf, "1.50 GPU-h"));
    free(buf);
    json_decref(runs);
    /* a job never requeued prints nothing */
    runs = parse("[]");
    buf = NULL;
    f = open_memstream(&buf, &len);
    assert_int_equal(job_view_print_runs(f, runs), 0);
    fclose(f);
    assert_string_equal(buf, "");
    free(buf);
    json_decref(runs);
}

static void detail_leaves_the_runs_to_their_table(void **state)
{
    (void)state;
    char *out = capture_detail("{\"id\":7,\"restarts\":1,\"runs\":[{\"run\":1}]}");
    assert_string_equal(out, "id:               7\n"
                             "restarts:         1\n");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(terminal_states_are_exactly_the_documented_ones),
        cmocka_unit_test(state_lines_match_the_wait_format),
        cmocka_unit_test(exit_status_follows_the_wait_rules),
        cmocka_unit_test_setup(table_shows_every_column_like_squeue, setup_utc),
        cmocka_unit_test(table_shows_what_queued_jobs_wait_on),
        cmocka_unit_test(table_survives_missing_and_mistyped_fields),
        cmocka_unit_test(table_prints_nothing_for_an_empty_list),
        cmocka_unit_test_setup(detail_prints_known_fields_in_order_then_the_rest, setup_utc),
        cmocka_unit_test(detail_shows_period_priority_and_gpu_hours_before_the_times),
        cmocka_unit_test(detail_shows_null_quota_fields_as_dash_and_omits_missing_ones),
        cmocka_unit_test_setup(table_shows_an_array_as_one_line_with_counts_by_state, setup_utc),
        cmocka_unit_test(table_says_how_often_slurm_requeued_a_job),
        cmocka_unit_test(array_detail_lists_every_task_with_its_index_state_and_charge),
        cmocka_unit_test(detail_shows_the_request_id_after_the_slurm_id),
        cmocka_unit_test(runs_of_a_requeued_job_list_each_run_with_its_charge),
        cmocka_unit_test(detail_leaves_the_runs_to_their_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
