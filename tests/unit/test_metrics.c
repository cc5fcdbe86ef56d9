/* test_metrics.c - unit tests of the metrics module: counters, histogram buckets, the Prometheus
 * text format (families, samples, label escaping, histograms), antennad's process-wide metrics
 * (bounded label sets), the per-partner gauges, a thread-safety smoke test, and the Grafana
 * dashboard (deploy/grafana-antenna.json) naming only metrics that antennad writes. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "metrics.h"

static const int64_t bounds3[] = {10, 100, 1000};

/* The text written so far (NUL-terminated). */
static const char *text_of(const metrics_text *t)
{
    return t->buf ? t->buf : "";
}

static void test_counter_adds(void **state)
{
    (void)state;
    metrics_counter c = {0};
    metrics_counter_add(&c, 1);
    metrics_counter_add(&c, 41);
    assert_int_equal(metrics_counter_get(&c), 42);
}

static void test_histogram_observation_lands_in_first_bucket_at_or_above_it(void **state)
{
    (void)state;
    metrics_histogram h;
    assert_int_equal(metrics_histogram_init(&h, bounds3, 3, 1), 0);
    metrics_histogram_observe(&h, 10);   /* le=10 (bounds are inclusive) */
    metrics_histogram_observe(&h, 11);   /* le=100 */
    metrics_histogram_observe(&h, 5000); /* +Inf */
    metrics_histogram_observe(&h, -3);   /* counts as 0: le=10 */
    assert_int_equal(metrics_histogram_cumulative(&h, 0), 2);
    assert_int_equal(metrics_histogram_cumulative(&h, 1), 3);
    assert_int_equal(metrics_histogram_cumulative(&h, 2), 3);
    assert_int_equal(metrics_histogram_cumulative(&h, 3), 4);
}

static void test_histogram_init_refuses_unsorted_bounds(void **state)
{
    (void)state;
    static const int64_t bad[] = {10, 10, 20};
    metrics_histogram h;
    assert_int_equal(metrics_histogram_init(&h, bad, 3, 1), -EINVAL);
    assert_int_equal(metrics_histogram_init(&h, bounds3, METRICS_BUCKETS_MAX + 1, 1), -EINVAL);
    assert_int_equal(metrics_histogram_init(&h, bounds3, 3, 0), -EINVAL);
}

static void test_histogram_written_cumulative_with_sum_and_count_in_seconds(void **state)
{
    (void)state;
    static const int64_t us[] = {1000, 1000000};
    metrics_histogram h;
    assert_int_equal(metrics_histogram_init(&h, us, 2, 1e6), 0);
    metrics_histogram_observe(&h, 500);
    metrics_histogram_observe(&h, 2000000);
    metrics_text t;
    metrics_text_init(&t);
    metrics_label l[] = {{"rpc", "poll"}};
    metrics_text_histogram(&t, "x_seconds", l, 1, &h);
    assert_string_equal(text_of(&t), "x_seconds_bucket{rpc=\"poll\",le=\"0.001\"} 1\n"
                                     "x_seconds_bucket{rpc=\"poll\",le=\"1\"} 1\n"
                                     "x_seconds_bucket{rpc=\"poll\",le=\"+Inf\"} 2\n"
                                     "x_seconds_sum{rpc=\"poll\"} 2.0005\n"
                                     "x_seconds_count{rpc=\"poll\"} 2\n");
    metrics_text_close(&t);
}

static void test_family_writes_help_and_type(void **state)
{
    (void)state;
    metrics_text t;
    metrics_text_init(&t);
    metrics_text_family(&t, "a_total", "counter", "line one\nback\\slash");
    assert_string_equal(text_of(&t), "# HELP a_total line one\\nback\\\\slash\n"
                                     "# TYPE a_total counter\n");
    metrics_text_close(&t);
}

static void test_sample_without_labels_has_no_braces(void **state)
{
    (void)state;
    metrics_text t;
    metrics_text_init(&t);
    metrics_text_sample(&t, "up", NULL, 0, 1);
    metrics_text_sample(&t, "ratio", NULL, 0, 0.25);
    assert_string_equal(text_of(&t), "up 1\nratio 0.25\n");
    metrics_text_close(&t);
}

static void test_label_values_are_escaped(void **state)
{
    (void)state;
    metrics_text t;
    metrics_text_init(&t);
    metrics_label l[] = {{"partner", "a\"b\\c\nd"}};
    metrics_text_sample(&t, "m", l, 1, 3);
    assert_string_equal(text_of(&t), "m{partner=\"a\\\"b\\\\c\\nd\"} 3\n");
    metrics_text_close(&t);
}

static void test_label_escape_reports_no_space(void **state)
{
    (void)state;
    char out[3];
    assert_int_equal(metrics_label_escape("ab", out, sizeof out), 2);
    assert_int_equal(metrics_label_escape("a\"b", out, sizeof out), -ENOSPC);
    assert_string_equal(out, "a");
}

static void test_text_take_hands_over_the_buffer(void **state)
{
    (void)state;
    metrics_text t;
    metrics_text_init(&t);
    for (int i = 0; i < 1000; i++) /* grows past its first 4 KiB */
        metrics_text_sample(&t, "some_long_metric_name_for_growth", NULL, 0, i);
    size_t len = 0;
    char *s = metrics_text_take(&t, &len);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    assert_null(t.buf);
    free(s);
    metrics_text_close(&t);
}

static void test_route_register_returns_the_same_id_for_the_same_label(void **state)
{
    (void)state;
    int a = metrics_route_register("GET /test/a");
    int b = metrics_route_register("GET /test/b");
    assert_true(a > 0);
    assert_true(b > 0);
    assert_int_not_equal(a, b);
    assert_int_equal(metrics_route_register("GET /test/a"), a);
    assert_string_equal(metrics_route_label(a), "GET /test/a");
    assert_string_equal(metrics_route_label(0), "-");
    assert_string_equal(metrics_route_label(-5), "-");
}

static void test_http_requests_counted_by_route_and_status(void **state)
{
    (void)state;
    metrics_daemon_reset();
    int r = metrics_route_register("GET /test/counted");
    metrics_http_observe(r, 200, 150);
    metrics_http_observe(r, 200, 150);
    metrics_http_observe(r, 404, -1); /* counted, not timed */
    metrics_text t;
    metrics_text_init(&t);
    metrics_daemon_write(&t);
    const char *s = text_of(&t);
    assert_non_null(
        strstr(s, "antenna_http_requests_total{route=\"GET /test/counted\",status=\"200\"} 2\n"));
    assert_non_null(
        strstr(s, "antenna_http_requests_total{route=\"GET /test/counted\",status=\"404\"} 1\n"));
    assert_non_null(strstr(s, "antenna_http_request_duration_seconds_count{route=\"GET "
                              "/test/counted\"} 2\n"));
    metrics_text_close(&t);
}

static void test_unusual_status_counted_as_other(void **state)
{
    (void)state;
    metrics_daemon_reset();
    metrics_http_observe(0, 418, 10);
    metrics_text t;
    metrics_text_init(&t);
    metrics_daemon_write(&t);
    assert_non_null(
        strstr(text_of(&t), "antenna_http_requests_total{route=\"-\",status=\"other\"} 1\n"));
    metrics_text_close(&t);
}

static void test_unknown_refusal_code_counted_as_other(void **state)
{
    (void)state;
    metrics_daemon_reset();
    metrics_refusal("budget_exceeded");
    metrics_refusal("made-up code");
    metrics_text t;
    metrics_text_init(&t);
    metrics_daemon_write(&t);
    const char *s = text_of(&t);
    assert_non_null(strstr(s, "antenna_refusals_total{reason=\"budget_exceeded\"} 1\n"));
    assert_non_null(strstr(s, "antenna_refusals_total{reason=\"other\"} 1\n"));
    assert_null(strstr(s, "made-up"));
    metrics_text_close(&t);
}

static void test_requeued_runs_and_budget_ends_are_counted(void **state)
{
    (void)state;
    metrics_daemon_reset();
    metrics_requeued_runs(1, 0);
    metrics_requeued_runs(2, 1);
    metrics_text t;
    metrics_text_init(&t);
    metrics_daemon_write(&t);
    const char *s = text_of(&t);
    assert_non_null(strstr(s, "antenna_job_runs_requeued_total 3\n"));
    assert_non_null(strstr(s, "antenna_requeue_budget_ends_total 1\n"));
    metrics_text_close(&t);
}

static void test_dispatch_latency_observed_for_submitted_only(void **state)
{
    (void)state;
    metrics_daemon_reset();
    metrics_dispatch(METRICS_DISPATCH_SUBMITTED, 1500000);
    metrics_dispatch(METRICS_DISPATCH_REQUEUED, 99);
    metrics_text t;
    metrics_text_init(&t);
    metrics_daemon_write(&t);
    const char *s = text_of(&t);
    assert_non_null(strstr(s, "antenna_dispatches_total{outcome=\"submitted\"} 1\n"));
    assert_non_null(strstr(s, "antenna_dispatches_total{outcome=\"requeued\"} 1\n"));
    assert_non_null(strstr(s, "antenna_dispatch_latency_seconds_count 1\n"));
    assert_non_null(strstr(s, "antenna_dispatch_latency_seconds_sum 1.5\n"));
    metrics_text_close(&t);
}

static void test_slurm_rpc_errors_counted_by_rpc(void **state)
{
    (void)state;
    metrics_daemon_reset();
    metrics_slurm_rpc(METRICS_RPC_POLL, 2000, false);
    metrics_slurm_rpc(METRICS_RPC_CANCEL, 3000, true);
    metrics_text t;
    metrics_text_init(&t);
    metrics_daemon_write(&t);
    const char *s = text_of(&t);
    assert_non_null(strstr(s, "antenna_slurm_rpc_errors_total{rpc=\"cancel\"} 1\n"));
    assert_non_null(strstr(s, "antenna_slurm_rpc_errors_total{rpc=\"poll\"} 0\n"));
    assert_non_null(strstr(s, "antenna_slurm_rpc_duration_seconds_count{rpc=\"poll\"} 1\n"));
    metrics_text_close(&t);
}

static void test_store_commit_counts_latency_and_batch_size(void **state)
{
    (void)state;
    metrics_daemon_reset();
    metrics_store_commit(800, 3, false);
    metrics_store_commit(900, 1, true);
    metrics_text t;
    metrics_text_init(&t);
    metrics_daemon_write(&t);
    const char *s = text_of(&t);
    assert_non_null(strstr(s, "antenna_store_commit_duration_seconds_count 2\n"));
    assert_non_null(strstr(s, "antenna_store_commit_batch_changes_bucket{le=\"2\"} 1\n"));
    assert_non_null(strstr(s, "antenna_store_commit_batch_changes_bucket{le=\"4\"} 2\n"));
    assert_non_null(strstr(s, "antenna_store_commit_batch_changes_sum 4\n"));
    assert_non_null(strstr(s, "antenna_store_commit_failures_total 1\n"));
    metrics_text_close(&t);
}

static void test_connections_gauge_goes_up_and_down(void **state)
{
    (void)state;
    metrics_daemon_reset();
    metrics_connections_add(1);
    metrics_connections_add(1);
    metrics_connections_add(-1);
    metrics_text t;
    metrics_text_init(&t);
    metrics_daemon_write(&t);
    assert_non_null(strstr(text_of(&t), "antenna_http_connections 1\n"));
    metrics_text_close(&t);
}

static void test_partner_gauges_in_gpu_hours_and_left_omitted_when_unlimited(void **state)
{
    (void)state;
    policy_partner_stats v[2];
    memset(v, 0, sizeof v);
    snprintf(v[0].name, sizeof v[0].name, "ulb");
    v[0].budget_gpu_s = 36000; /* 10 GPU-hours */
    v[0].used_gpu_s = 3600;
    v[0].held_gpu_s = 7200;
    v[0].gpus_running = 2;
    v[0].queued_by_reason[0] = 4; /* ClusterFull */
    snprintf(v[1].name, sizeof v[1].name, "vub");
    v[1].budget_gpu_s = POLICY_UNLIMITED;
    metrics_text t;
    metrics_text_init(&t);
    metrics_partners_write(&t, v, 2, 4);
    const char *s = text_of(&t);
    assert_non_null(strstr(s, "antenna_budget_gpu_hours{partner=\"ulb\",kind=\"budget\"} 10\n"));
    assert_non_null(strstr(s, "antenna_budget_gpu_hours{partner=\"ulb\",kind=\"used\"} 1\n"));
    assert_non_null(strstr(s, "antenna_budget_gpu_hours{partner=\"ulb\",kind=\"held\"} 2\n"));
    assert_non_null(strstr(s, "antenna_budget_gpu_hours{partner=\"ulb\",kind=\"left\"} 7\n"));
    assert_null(strstr(s, "antenna_budget_gpu_hours{partner=\"vub\",kind=\"left\"}"));
    assert_non_null(strstr(s, "antenna_partner_gpus_running{partner=\"ulb\"} 2\n"));
    assert_non_null(strstr(s, "antenna_queued_jobs{partner=\"ulb\",reason=\"ClusterFull\"} 4\n"));
    assert_non_null(strstr(s, "antenna_queued_jobs{partner=\"vub\",reason=\"Priority\"} 0\n"));
    assert_non_null(strstr(s, "antenna_queue_length 4\n"));
    metrics_text_close(&t);
}

/* Adds to `names` every antenna_* metric name that the strings of `v` (recursively) mention. */
static void expr_names(json_t *v, json_t *names)
{
    if (json_is_object(v) || json_is_array(v)) {
        const char *k;
        size_t i;
        json_t *x;
        if (json_is_object(v)) {
            json_object_foreach(v, k, x)
            {
                if (strcmp(k, "expr") == 0 || strcmp(k, "definition") == 0 ||
                    strcmp(k, "query") == 0)
                    expr_names(x, names);
                else if (json_is_object(x) || json_is_array(x))
                    expr_names(x, names);
            }
        } else {
            json_array_foreach(v, i, x) expr_names(x, names);
        }
        return;
    }
    if (!json_is_string(v)) return;
    const char *s = json_string_value(v);
    for (const char *p = strstr(s, "antenna_"); p; p = strstr(p + 1, "antenna_")) {
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)n, p);
        json_object_set_new(names, name, json_true());
        p += n - 1;
    }
}

static void test_grafana_dashboard_is_json_and_uses_only_metrics_written(void **state)
{
    (void)state;
    json_error_t jerr;
    json_t *dash = json_load_file("deploy/grafana-antenna.json", 0, &jerr);
    if (dash == NULL) fail_msg("deploy/grafana-antenna.json: line %d: %s", jerr.line, jerr.text);
    assert_non_null(json_object_get(dash, "panels"));
    metrics_text t;
    metrics_text_init(&t);
    metrics_daemon_write(&t);
    policy_partner_stats v[1];
    memset(v, 0, sizeof v);
    snprintf(v[0].name, sizeof v[0].name, "ulb");
    metrics_partners_write(&t, v, 1, 0);
    json_t *names = json_object();
    expr_names(dash, names);
    assert_true(json_object_size(names) >= 10);
    const char *name;
    json_t *x;
    json_object_foreach(names, name, x)
    {
        char family[160], base[128];
        snprintf(base, sizeof base, "%s", name);
        size_t n = strlen(base);
        static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
        for (size_t i = 0; i < 3; i++) {
            size_t k = strlen(suffixes[i]);
            if (n > k && strcmp(base + n - k, suffixes[i]) == 0) {
                snprintf(family, sizeof family, "# TYPE %.*s histogram\n", (int)(n - k), base);
                if (strstr(text_of(&t), family) != NULL) base[n - k] = '\0';
            }
        }
        snprintf(family, sizeof family, "# TYPE %s ", base);
        if (strstr(text_of(&t), family) == NULL)
            fail_msg("the dashboard uses %s, which antennad does not write", name);
    }
    json_decref(names);
    json_decref(dash);
    metrics_text_close(&t);
}

#define SMOKE_THREADS 4
#define SMOKE_EACH    100000

static void *smoke_main(void *arg)
{
    metrics_histogram *h = arg;
    for (int i = 0; i < SMOKE_EACH; i++) {
        metrics_histogram_observe(h, i % 2000);
        metrics_http_observe(0, 200, 1);
    }
    return NULL;
}

static void test_concurrent_observations_are_all_counted(void **state)
{
    (void)state;
    metrics_daemon_reset();
    metrics_histogram h;
    assert_int_equal(metrics_histogram_init(&h, bounds3, 3, 1), 0);
    pthread_t th[SMOKE_THREADS];
    for (int i = 0; i < SMOKE_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, smoke_main, &h), 0);
    for (int i = 0; i < SMOKE_THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(metrics_histogram_cumulative(&h, 3), SMOKE_THREADS * SMOKE_EACH);
    /* each thread puts 11 of every 2000 values (0..10) under le=10 */
    assert_int_equal(metrics_histogram_cumulative(&h, 0),
                     (uint64_t)SMOKE_THREADS * (SMOKE_EACH / 2000) * 11);
    uint64_t want_sum = (uint64_t)SMOKE_THREADS * (SMOKE_EACH / 2000) * (1999 * 2000 / 2);
    assert_int_equal(atomic_load(&h.sum), want_sum);
    metrics_text t;
    metrics_text_init(&t);
    metrics_daemon_write(&t);
    char want[128];
    snprintf(want, sizeof want, "antenna_http_requests_total{route=\"-\",status=\"200\"} %d\n",
             SMOKE_THREADS * SMOKE_EACH);
    assert_non_null(strstr(text_of(&t), want));
    metrics_text_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_adds),
        cmocka_unit_test(test_histogram_observation_lands_in_first_bucket_at_or_above_it),
        cmocka_unit_test(test_histogram_init_refuses_unsorted_bounds),
        cmocka_unit_test(test_histogram_written_cumulative_with_sum_and_count_in_seconds),
        cmocka_unit_test(test_family_writes_help_and_type),
        cmocka_unit_test(test_sample_without_labels_has_no_braces),
        cmocka_unit_test(test_label_values_are_escaped),
        cmocka_unit_test(test_label_escape_reports_no_space),
        cmocka_unit_test(test_text_take_hands_over_the_buffer),
        cmocka_unit_test(test_route_register_returns_the_same_id_for_the_same_label),
        cmocka_unit_test(test_http_requests_counted_by_route_and_status),
        cmocka_unit_test(test_unusual_status_counted_as_other),
        cmocka_unit_test(test_unknown_refusal_code_counted_as_other),
        cmocka_unit_test(test_requeued_runs_and_budget_ends_are_counted),
        cmocka_unit_test(test_dispatch_latency_observed_for_submitted_only),
        cmocka_unit_test(test_slurm_rpc_errors_counted_by_rpc),
        cmocka_unit_test(test_store_commit_counts_latency_and_batch_size),
        cmocka_unit_test(test_connections_gauge_goes_up_and_down),
        cmocka_unit_test(test_partner_gauges_in_gpu_hours_and_left_omitted_when_unlimited),
        cmocka_unit_test(test_concurrent_observations_are_all_counted),
        cmocka_unit_test(test_grafana_dashboard_is_json_and_uses_only_metrics_written),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
