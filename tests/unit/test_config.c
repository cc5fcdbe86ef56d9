/* test_config.c - unit tests of antennad's JSON config loader. Each test writes its own file. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/antenna-test-config.XXXXXX");
    if (mkdtemp(dir) == NULL) return -1;
    snprintf(path, sizeof path, "%s/antennad.json", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

static int load(const char *json, config *c, char *err, size_t len)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    config_defaults(c);
    return config_load(path, c, err, len);
}

static void test_defaults_are_sane(void **state)
{
    (void)state;
    config c;
    config_defaults(&c);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8443);
    assert_string_equal(c.partition, "gpu");
    assert_int_equal(c.max_gpus, 8);
    assert_string_equal(c.gpu_type_list[0], "h100");
    assert_null(c.gpu_type_list[1]);
    assert_int_equal(c.policy.n_gpu_types, 1);
    assert_int_equal(c.policy.gpu_types[0].weight_milli, 1000);
}

static void test_gpu_weights_set_billing_weights(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"gpu_weights\": {\"a100\": 0.6}, \"gpu_types\": [\"h100\", \"a100\"]}",
                          &c, err, sizeof err),
                     0);
    assert_int_equal(c.policy.n_gpu_types, 2);
    assert_string_equal(c.policy.gpu_types[1].name, "a100");
    assert_int_equal(c.policy.gpu_types[1].weight_milli, 600);
    assert_int_equal(c.policy.gpu_types[0].weight_milli, 1000);
}

static void test_gpu_weight_of_unknown_type_is_an_error(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"gpu_weights\": {\"v100\": 0.5}}", &c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "v100"));
}

static void test_priority_keys_and_category_factors(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"fairshare_halflife_hours\": 24, \"priority_weight_age\": 7, "
                          "\"cluster_window\": 2, \"category_factors\": {\"sme\": 0.5}}",
                          &c, err, sizeof err),
                     0);
    assert_true(c.policy.fairshare_halflife_hours == 24.0);
    assert_int_equal(c.policy.weight_age, 7);
    assert_int_equal(c.policy.cluster_window, 2);
    assert_int_equal(c.policy.category_factor_milli[POLICY_CAT_SME], 500);
}

static void test_bad_priority_values_are_errors(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"cluster_window\": 0}", &c, err, sizeof err), -EINVAL);
    assert_int_equal(load("{\"priority_weight_size\": 1.5}", &c, err, sizeof err), -EINVAL);
    assert_int_equal(load("{\"category_factors\": {\"startup\": 1}}", &c, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "startup"));
}

static void test_values_override_defaults(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"listen_port\": 9000, \"partition\": \"batch\", \"max_gpus\": 4, "
                          "\"poll_interval_ms\": 250, \"max_mem_mb\": 1024}",
                          &c, err, sizeof err),
                     0);
    assert_int_equal(c.listen_port, 9000);
    assert_string_equal(c.partition, "batch");
    assert_int_equal(c.max_gpus, 4);
    assert_int_equal(c.poll_interval_ms, 250);
    assert_int_equal(c.max_mem_mb, 1024);
}

static void test_relative_paths_resolve_against_the_file(void **state)
{
    (void)state;
    config c;
    char err[256] = "", want[256];
    assert_int_equal(load("{\"database\": \"db/antenna.db\", \"tls_cert\": \"/abs/c.pem\"}", &c,
                          err, sizeof err),
                     0);
    snprintf(want, sizeof want, "%s/db/antenna.db", dir);
    assert_string_equal(c.database, want);
    assert_string_equal(c.tls_cert, "/abs/c.pem");
}

static void test_gpu_types_list(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"gpu_types\": [\"h100\", \"a100\"]}", &c, err, sizeof err), 0);
    assert_string_equal(c.gpu_type_list[0], "h100");
    assert_string_equal(c.gpu_type_list[1], "a100");
    assert_null(c.gpu_type_list[2]);
}

static void test_partitions_default_to_the_default_partition(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"partition\": \"batch\"}", &c, err, sizeof err), 0);
    const char *const *l = config_partitions_for(&c, "ulb");
    assert_string_equal(l[0], "batch");
    assert_null(l[1]);
    assert_string_equal(config_default_partition_for(&c, "ulb"), "batch");
}

static void test_partner_partitions_narrow_the_list(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"partitions\": [\"gpu\", \"debug\"], \"partner_partitions\": "
                          "{\"ulb\": [\"debug\"]}}",
                          &c, err, sizeof err),
                     0);
    const char *const *l = config_partitions_for(&c, "ulb");
    assert_string_equal(l[0], "debug");
    assert_null(l[1]);
    assert_string_equal(config_default_partition_for(&c, "ulb"), "debug");
    l = config_partitions_for(&c, "vub");
    assert_string_equal(l[0], "gpu");
    assert_string_equal(l[1], "debug");
    assert_string_equal(config_default_partition_for(&c, "vub"), "gpu");
}

static void test_partitions_must_hold_the_default(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"partitions\": [\"debug\"]}", &c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "default partition \"gpu\""));
}

static void test_partner_partitions_must_be_site_partitions(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"partner_partitions\": {\"ulb\": [\"bigmem\"]}}", &c, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "partner_partitions.ulb[0]"));
}

static void test_export_deny_and_max_nodes_load(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"export_deny\": [\"AWS_*\"], \"max_nodes\": 2}", &c, err, sizeof err),
                     0);
    assert_string_equal(c.export_deny_list[0], "AWS_*");
    assert_null(c.export_deny_list[1]);
    assert_int_equal(c.max_nodes, 2);
}

static void test_unknown_key_is_an_error_naming_it(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"listen_prot\": 1}", &c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "listen_prot"));
}

static void test_wrong_type_is_an_error_naming_the_key(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"listen_port\": \"8443\"}", &c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "listen_port must be an integer"));
}

static void test_out_of_range_is_an_error(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"listen_port\": 70000}", &c, err, sizeof err), -EINVAL);
    assert_int_equal(load("{\"poll_interval_ms\": 1}", &c, err, sizeof err), -EINVAL);
}

static void test_http_bounds_load_and_default(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    config_defaults(&c);
    assert_int_equal(c.max_connections_per_peer, 32);
    assert_int_equal(c.handshake_timeout_ms, 5000);
    assert_int_equal(c.request_timeout_ms, 10000);
    assert_int_equal(c.max_unsent_bytes, 1024 * 1024);
    assert_int_equal(c.max_buffered_body_bytes, 64 * 1024 * 1024);
    assert_int_equal(c.healthz_starved_ms, 5000);
    assert_int_equal(load("{\"max_connections_per_peer\": 4, \"handshake_timeout_ms\": 2000, "
                          "\"request_timeout_ms\": 3000, \"max_unsent_bytes\": 65536, "
                          "\"max_buffered_body_bytes\": 8388608, \"healthz_starved_ms\": 900}",
                          &c, err, sizeof err),
                     0);
    assert_int_equal(c.max_connections_per_peer, 4);
    assert_int_equal(c.handshake_timeout_ms, 2000);
    assert_int_equal(c.request_timeout_ms, 3000);
    assert_int_equal(c.max_unsent_bytes, 65536);
    assert_int_equal(c.max_buffered_body_bytes, 8388608);
    assert_int_equal(c.healthz_starved_ms, 900);
    assert_int_equal(load("{\"max_connections_per_peer\": 0}", &c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "max_connections_per_peer"));
}

static void test_malformed_json_reports_line(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\n\"listen_port\": 1,\n}", &c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, ":3:"));
}

static void test_non_object_is_an_error(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("[1]", &c, err, sizeof err), -EINVAL);
}

static void test_the_example_config_loads(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    config_defaults(&c);
    if (config_load("deploy/antennad.example.json", &c, err, sizeof err) != 0)
        fail_msg("deploy/antennad.example.json: %s", err);
    assert_string_equal(c.audit_key_file, "/etc/antenna/audit.key");
    assert_int_equal(c.policy.cluster_window, 4);
}

static void test_slurm_gpu_limits_is_off_by_default_and_takes_0_or_1(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{}", &c, err, sizeof err), 0);
    assert_int_equal(c.slurm_gpu_limits, 0);
    assert_int_equal(load("{\"slurm_gpu_limits\": 1}", &c, err, sizeof err), 0);
    assert_int_equal(c.slurm_gpu_limits, 1);
    assert_int_equal(load("{\"slurm_gpu_limits\": 2}", &c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "slurm_gpu_limits"));
}

static void test_missing_file_is_enoent(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    config_defaults(&c);
    assert_int_equal(config_load("/nonexistent/antennad.json", &c, err, sizeof err), -ENOENT);
    assert_true(strlen(err) > 0);
}

static void test_account_and_token_keys(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"unix_uid_min\": 2000, \"unix_deny\": [\"nobody\", \"slurm\"], "
                          "\"auth_failures_per_minute\": 5, \"token_rate_per_second\": 3, "
                          "\"token_burst\": 6, \"token_default_lifetime_days\": 7, "
                          "\"token_max_lifetime_days\": 30}",
                          &c, err, sizeof err),
                     0);
    assert_int_equal(c.unix_uid_min, 2000);
    assert_string_equal(c.unix_deny_list[0], "nobody");
    assert_string_equal(c.unix_deny_list[1], "slurm");
    assert_null(c.unix_deny_list[2]);
    assert_int_equal(c.auth_failures_per_minute, 5);
    assert_int_equal(c.token_rate_per_second, 3);
    assert_int_equal(c.token_burst, 6);
    assert_int_equal(c.token_default_lifetime_days, 7);
    assert_int_equal(c.token_max_lifetime_days, 30);
}

static void test_default_token_lifetime_over_the_maximum_is_an_error(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"token_default_lifetime_days\": 60, \"token_max_lifetime_days\": 30}",
                          &c, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "token_default_lifetime_days"));
}

static void test_unix_deny_must_be_names(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(load("{\"unix_deny\": [1]}", &c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "unix_deny"));
}

static void test_metrics_access_is_loopback_by_default_and_takes_a_role(void **state)
{
    (void)state;
    config c;
    char err[512] = "";
    config_defaults(&c);
    assert_string_equal(c.metrics_access, "loopback");
    assert_int_equal(load("{\"metrics_access\": \"role:auditor\"}", &c, err, sizeof err), 0);
    assert_string_equal(c.metrics_access, "role:auditor");
}

static void test_metrics_access_refuses_an_unknown_role_and_says_what_to_write(void **state)
{
    (void)state;
    config c;
    char err[512] = "";
    assert_int_equal(load("{\"metrics_access\": \"role:root\"}", &c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "metrics_access must be \"loopback\" or \"role:<role>\""));
    assert_int_equal(load("{\"metrics_access\": \"anyone\"}", &c, err, sizeof err), -EINVAL);
}

static void test_access_log_is_on_by_default_and_takes_0_or_1(void **state)
{
    (void)state;
    config c;
    char err[512] = "";
    config_defaults(&c);
    assert_int_equal(c.access_log, 1);
    assert_int_equal(load("{\"access_log\": 0}", &c, err, sizeof err), 0);
    assert_int_equal(c.access_log, 0);
    assert_int_equal(load("{\"access_log\": 2}", &c, err, sizeof err), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_sane),
        cmocka_unit_test_setup_teardown(test_values_override_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relative_paths_resolve_against_the_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gpu_types_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gpu_weights_set_billing_weights, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gpu_weight_of_unknown_type_is_an_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_priority_keys_and_category_factors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_priority_values_are_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partitions_default_to_the_default_partition, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_partner_partitions_narrow_the_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partitions_must_hold_the_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partner_partitions_must_be_site_partitions, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_export_deny_and_max_nodes_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_is_an_error_naming_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_type_is_an_error_naming_the_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_bounds_load_and_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_json_reports_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_object_is_an_error, setup, teardown),
        cmocka_unit_test(test_the_example_config_loads),
        cmocka_unit_test(test_missing_file_is_enoent),
        cmocka_unit_test_setup_teardown(test_account_and_token_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_token_lifetime_over_the_maximum_is_an_error,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_deny_must_be_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_access_is_loopback_by_default_and_takes_a_role,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_metrics_access_refuses_an_unknown_role_and_says_what_to_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_log_is_on_by_default_and_takes_0_or_1, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slurm_gpu_limits_is_off_by_default_and_takes_0_or_1,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
