/* test_job_options.c - unit tests for scheduler/job_options: a job's sbatch options to and from
 * the JSON the API and the store hold. Never touches the network, the disk or Slurm. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job_options.h"

static void json_of_a_plain_request_is_empty(void **state)
{
    (void)state;
    jobreq r;
    jobreq_init(&r);
    json_t *o = job_options_json(&r);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 0);
    json_decref(o);
}

static void json_round_trips_every_option(void **state)
{
    (void)state;
    jobreq r, back;
    jobreq_init(&r);
    jobreq_init(&back);
    r.nodes_min = 2;
    r.nodes_max = 4;
    r.ntasks = 8;
    r.ntasks_per_node = 4;
    r.gpus_per_task = 1;
    r.cpus_per_gpu = 6;
    r.mem_per_gpu_mb = 40960;
    snprintf(r.partition, sizeof r.partition, "gpu");
    snprintf(r.output, sizeof r.output, "o-%%j");
    snprintf(r.error, sizeof r.error, "e-%%j");
    snprintf(r.env_export, sizeof r.env_export, "NONE,A=1");
    snprintf(r.chdir, sizeof r.chdir, "run");
    snprintf(r.signal, sizeof r.signal, "B:USR1@60");
    r.exclusive = 0;
    snprintf(r.constraint, sizeof r.constraint, "a100");
    r.requeue = 0;
    snprintf(r.comment, sizeof r.comment, "mine");
    json_t *o = job_options_json(&r);
    char *text = json_dumps(o, JSON_COMPACT);
    assert_int_equal(job_options_parse(text, &back), 0);
    back.script = r.script;
    assert_memory_equal(&r, &back, sizeof r);
    free(text);
    json_decref(o);
}

static void read_of_nodes_alone_means_exactly_that_many(void **state)
{
    (void)state;
    jobreq r;
    jobreq_init(&r);
    json_t *o = json_pack("{s:i}", "nodes", 3);
    assert_int_equal(job_options_read(o, &r, NULL, 0), 0);
    assert_int_equal(r.nodes_min, 3);
    assert_int_equal(r.nodes_max, 3);
    json_decref(o);
}

static void read_names_a_field_of_the_wrong_type(void **state)
{
    (void)state;
    jobreq r;
    jobreq_init(&r);
    char bad[32] = "";
    json_t *o = json_pack("{s:s}", "ntasks", "4");
    assert_int_equal(job_options_read(o, &r, bad, sizeof bad), -EINVAL);
    assert_string_equal(bad, "ntasks");
    json_decref(o);
}

static void read_names_a_string_that_does_not_fit(void **state)
{
    (void)state;
    jobreq r;
    jobreq_init(&r);
    char big[JOBREQ_PART_MAX + 8], bad[32] = "";
    memset(big, 'p', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    json_t *o = json_pack("{s:s}", "partition", big);
    assert_int_equal(job_options_read(o, &r, bad, sizeof bad), -EINVAL);
    assert_string_equal(bad, "partition");
    json_decref(o);
}

static void parse_of_empty_text_asks_nothing(void **state)
{
    (void)state;
    jobreq r, d;
    jobreq_init(&r);
    jobreq_init(&d);
    assert_int_equal(job_options_parse("", &r), 0);
    assert_int_equal(job_options_parse(NULL, &r), 0);
    assert_memory_equal(&r, &d, sizeof r);
    assert_int_equal(job_options_parse("[1]", &r), -EINVAL);
}

static void merge_adds_the_options_to_a_job_object(void **state)
{
    (void)state;
    json_t *job = json_pack("{s:i}", "id", 7);
    assert_int_equal(job_options_merge(job, "{\"nodes\":2,\"partition\":\"gpu\"}"), 0);
    assert_int_equal(json_integer_value(json_object_get(job, "nodes")), 2);
    assert_string_equal(json_string_value(json_object_get(job, "partition")), "gpu");
    assert_int_equal(job_options_merge(job, "not json"), -EINVAL);
    json_decref(job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_of_a_plain_request_is_empty),
        cmocka_unit_test(json_round_trips_every_option),
        cmocka_unit_test(read_of_nodes_alone_means_exactly_that_many),
        cmocka_unit_test(read_names_a_field_of_the_wrong_type),
        cmocka_unit_test(read_names_a_string_that_does_not_fit),
        cmocka_unit_test(parse_of_empty_text_asks_nothing),
        cmocka_unit_test(merge_adds_the_options_to_a_job_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
