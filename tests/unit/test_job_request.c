/* test_job_request.c - unit tests for policies/job_request: parsers (tables) and validation rules.
 * Never touches the network, the disk or Slurm. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job_request.h"

/* ---- time ---- */

static const struct {
    const char *in;
    int minutes;
} time_ok[] = {
    {"1", 1},
    {"60", 60},
    {"0:30", 1},
    {"0:1", 1},
    {"1:00", 1},
    {"1:01", 2},
    {"90:00", 90},
    {"2:00:00", 120},
    {"1:30:30", 91},
    {"00:00:59", 1},
    {"2:90:00", 210},
    {"1-0", 1440},
    {"1-2", 1560},
    {"2-12:30", 3630},
    {"1-00:00:01", 1441},
    {"0-0:0:1", 1},
    {"5-0:0:0", 7200},
    {"1000000000", 1000000000},
    {"1000000-0", 1440000000},
};

static const char *const time_bad[] = {
    "",         "0",         "0:0", "00:00:00",   "0-0",         "0-0:0:0",   "UNLIMITED",
    "INFINITE", "infinite",  "-1",  "abc",        "1:",          ":1",        "1::1",
    "1:2:3:4",  "1-2:3:4:5", "1-",  "-1-2",       "1-2-3",       " 1",        "1 ",
    "+5",       "1.5",       "1h",  "1000000001", "99999999999", "2000000-0", "1-:30",
};

static void time_parse_accepts_every_slurm_format(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof time_ok / sizeof time_ok[0]; i++) {
        int m = -1;
        int rc = jobreq_time_parse(time_ok[i].in, &m);
        if (rc != 0 || m != time_ok[i].minutes)
            fail_msg("\"%s\": rc %d minutes %d, want %d", time_ok[i].in, rc, m, time_ok[i].minutes);
    }
}

static void time_parse_refuses_bad_zero_unlimited_and_overflow(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof time_bad / sizeof time_bad[0]; i++) {
        int m = 4242;
        int rc = jobreq_time_parse(time_bad[i], &m);
        if (rc != -EINVAL) fail_msg("\"%s\": rc %d, want -EINVAL", time_bad[i], rc);
        if (m != 4242) fail_msg("\"%s\": output changed on error", time_bad[i]);
    }
    int m;
    assert_int_equal(jobreq_time_parse(NULL, &m), -EINVAL);
}

static void time_format_matches_slurm(void **state)
{
    (void)state;
    static const struct {
        int minutes;
        const char *out;
    } cases[] = {
        {1, "00:01:00"},      {60, "01:00:00"}, {1439, "23:59:00"}, {1440, "1-00:00:00"},
        {3630, "2-12:30:00"}, {0, "00:00:00"},  {-5, "INVALID"},    {144000, "100-00:00:00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        assert_ptr_equal(jobreq_time_format(cases[i].minutes, buf, sizeof buf), buf);
        assert_string_equal(buf, cases[i].out);
    }
}

static void time_format_truncates_to_the_buffer(void **state)
{
    (void)state;
    char buf[5];
    jobreq_time_format(3630, buf, sizeof buf);
    assert_string_equal(buf, "2-12");
}

static void time_format_then_parse_round_trips(void **state)
{
    (void)state;
    static const int values[] = {1, 59, 60, 61, 1439, 1440, 1441, 10079, 525600};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char buf[32];
        int m = 0;
        assert_int_equal(jobreq_time_parse(jobreq_time_format(values[i], buf, sizeof buf), &m), 0);
        assert_int_equal(m, values[i]);
    }
}

/* ---- memory ---- */

static const struct {
    const char *in;
    int64_t mb;
} mem_ok[] = {
    {"0", 0},      {"1", 1},        {"100", 100},
    {"100M", 100}, {"100m", 100},   {"1G", 1024},
    {"2g", 2048},  {"1T", 1048576}, {"3t", 3145728},
    {"1K", 1},     {"1024K", 1},    {"1025k", 2},
    {"0K", 0},     {"16GB", 16384}, {"512MB", 512},
    {"4gb", 4096}, {"2048KB", 2},   {"9007199254740991", 9007199254740991LL},
};

static const char *const mem_bad[] = {
    "",
    "G",
    "-1",
    "1X",
    "1GG",
    "1 G",
    " 1",
    "1.5G",
    "1GBx",
    "1B",
    "+1",
    "1G ",
    "0x10",
    "9223372036854775807T",
    "99999999999999999999",
    "8796093022208T",
};

static void mem_parse_accepts_sizes_with_suffixes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof mem_ok / sizeof mem_ok[0]; i++) {
        int64_t mb = -1;
        int rc = jobreq_mem_parse(mem_ok[i].in, &mb);
        if (rc != 0 || mb != mem_ok[i].mb)
            fail_msg("\"%s\": rc %d mb %lld, want %lld", mem_ok[i].in, rc, (long long)mb,
                     (long long)mem_ok[i].mb);
    }
}

static void mem_parse_refuses_garbage_negative_and_overflow(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof mem_bad / sizeof mem_bad[0]; i++) {
        int64_t mb = 77;
        int rc = jobreq_mem_parse(mem_bad[i], &mb);
        if (rc != -EINVAL) fail_msg("\"%s\": rc %d, want -EINVAL", mem_bad[i], rc);
        if (mb != 77) fail_msg("\"%s\": output changed on error", mem_bad[i]);
    }
    int64_t mb;
    assert_int_equal(jobreq_mem_parse(NULL, &mb), -EINVAL);
}

/* ---- GRES and --gpus ---- */

struct gpu_case {
    const char *in;
    int count;
    const char *type;
};

static const struct gpu_case gres_ok[] = {
    {"gpu", 1, ""},
    {"gpu:2", 2, ""},
    {"gpu:0", 0, ""},
    {"gpu:h100", 1, "h100"},
    {"gpu:h100:4", 4, "h100"},
    {"gpu:a100-80gb:2", 2, "a100-80gb"},
    {"gpu:A100_SXM:8", 8, "A100_SXM"},
    {"gpu:0123456789012345678901234567890:1", 1, "0123456789012345678901234567890"},
};

static const char *const gres_bad[] = {
    "",
    "gpus:2",
    "mps:100",
    "GPU:2",
    "gpu:",
    "gpu::2",
    "gpu:h100:",
    "gpu:h100:x",
    "gpu:h100:2:3",
    "gpu:h1.00:2",
    "gpu:2,mps:1",
    "gpu:-1",
    "gpu:99999999999",
    "gpu:h100:-2",
    "gpu:01234567890123456789012345678901:1", /* 32-char type does not fit */
    " gpu:2",
};

static const struct gpu_case gpus_ok[] = {
    {"2", 2, ""},        {"0", 0, ""}, {"h100:2", 2, "h100"}, {"a100_80:8", 8, "a100_80"},
    {"gpu:1", 1, "gpu"},
};

static const char *const gpus_bad[] = {
    "", "h100", "h100:", ":2", "h100:2:3", "-1", "2x", "h.100:2", "2147483648", "h100:x",
};

static void gres_parse_accepts_gpu_specs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof gres_ok / sizeof gres_ok[0]; i++) {
        int count = -1;
        char type[JOBREQ_GPU_TYPE_MAX] = "junk";
        int rc = jobreq_gres_parse(gres_ok[i].in, &count, type, sizeof type);
        if (rc != 0 || count != gres_ok[i].count || strcmp(type, gres_ok[i].type) != 0)
            fail_msg("\"%s\": rc %d count %d type \"%s\"", gres_ok[i].in, rc, count, type);
    }
}

static void gres_parse_refuses_non_gpu_and_malformed_specs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof gres_bad / sizeof gres_bad[0]; i++) {
        int count = 99;
        char type[JOBREQ_GPU_TYPE_MAX] = "keep";
        int rc = jobreq_gres_parse(gres_bad[i], &count, type, sizeof type);
        if (rc != -EINVAL) fail_msg("\"%s\": rc %d, want -EINVAL", gres_bad[i], rc);
        if (count != 99 || strcmp(type, "keep") != 0)
            fail_msg("\"%s\": output changed on error", gres_bad[i]);
    }
}

static void gres_parse_refuses_a_type_longer_than_the_buffer(void **state)
{
    (void)state;
    int count = 0;
    char type[4];
    assert_int_equal(jobreq_gres_parse("gpu:h100:1", &count, type, sizeof type), -EINVAL);
    assert_int_equal(jobreq_gres_parse("gpu:a10:1", &count, type, sizeof type), 0);
    assert_string_equal(type, "a10");
}

static void gpus_parse_accepts_count_and_type_count(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof gpus_ok / sizeof gpus_ok[0]; i++) {
        int count = -1;
        char type[JOBREQ_GPU_TYPE_MAX] = "junk";
        int rc = jobreq_gpus_parse(gpus_ok[i].in, &count, type, sizeof type);
        if (rc != 0 || count != gpus_ok[i].count || strcmp(type, gpus_ok[i].type) != 0)
            fail_msg("\"%s\": rc %d count %d type \"%s\"", gpus_ok[i].in, rc, count, type);
    }
}

static void gpus_parse_refuses_malformed_specs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof gpus_bad / sizeof gpus_bad[0]; i++) {
        int count = 99;
        char type[JOBREQ_GPU_TYPE_MAX] = "keep";
        int rc = jobreq_gpus_parse(gpus_bad[i], &count, type, sizeof type);
        if (rc != -EINVAL) fail_msg("\"%s\": rc %d, want -EINVAL", gpus_bad[i], rc);
        if (count != 99 || strcmp(type, "keep") != 0)
            fail_msg("\"%s\": output changed on error", gpus_bad[i]);
    }
}

/* ---- identifiers ---- */

static void ident_valid_follows_the_identifier_rule(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int ok;
    } cases[] = {
        {"alice", 1},
        {"ulb", 1},
        {"a", 1},
        {"A.b_c-9", 1},
        {"1st", 1},
        {"_svc", 1},
        {"012345678901234567890123456789012345678901234567890123456789012", 1},  /* 63 */
        {"0123456789012345678901234567890123456789012345678901234567890123", 0}, /* 64 */
        {"", 0},
        {"-alice", 0},
        {".alice", 0},
        {"al ice", 0},
        {"alice/x", 0},
        {"al:ice", 0},
        {"élise", 0},
        {"alice\n", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (jobreq_ident_valid(cases[i].s) != cases[i].ok)
            fail_msg("\"%s\": want %d", cases[i].s, cases[i].ok);
    assert_int_equal(jobreq_ident_valid(NULL), 0);
}

/* ---- validation ---- */

static const char *const site_types[] = {"h100", "l40s", NULL};

static jobreq_limits site_limits(void)
{
    jobreq_limits lim = {
        .max_gpus = 8,
        .max_cpus = 64,
        .max_time_minutes = 2880,
        .max_mem_mb = 512 * 1024,
        .max_script_bytes = 64,
        .gpu_types = site_types,
    };
    return lim;
}

static jobreq valid_request(void)
{
    jobreq r;
    jobreq_init(&r);
    r.script = "#!/bin/bash\necho hi\n";
    return r;
}

/* Validates r and asserts it fails on `field` with `code`; returns the message for more checks. */
static const char *expect_refusal(const jobreq *r, const jobreq_limits *lim, const char *field,
                                  const char *code)
{
    static jobreq_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(jobreq_validate(r, lim, &err), -EINVAL);
    assert_string_equal(err.field, field);
    assert_string_equal(err.code, code);
    assert_true(strlen(err.message) > 10);
    return err.message;
}

static void init_sets_documented_defaults(void **state)
{
    (void)state;
    jobreq r;
    memset(&r, 0x5a, sizeof r);
    jobreq_init(&r);
    assert_string_equal(r.name, "");
    assert_null(r.script);
    assert_int_equal(r.gpus, 0);
    assert_string_equal(r.gpu_type, "");
    assert_int_equal(r.cpus_per_task, 1);
    assert_int_equal(r.mem_mb, 0);
    assert_int_equal(r.time_minutes, 60);
}

static void validate_accepts_defaults_with_a_script(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    jobreq_error err = {{0}, {0}, {0}};
    assert_int_equal(jobreq_validate(&r, &lim, &err), 0);
    assert_int_equal(jobreq_validate(&r, &lim, NULL), 0);
}

static void validate_accepts_values_at_every_limit(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.gpus = 8;
    snprintf(r.gpu_type, sizeof r.gpu_type, "l40s");
    r.cpus_per_task = 64;
    r.time_minutes = 2880;
    r.mem_mb = 512 * 1024;
    memset(r.name, 'n', sizeof r.name - 1);
    r.name[sizeof r.name - 1] = '\0';
    static char script[65];
    memset(script, 'x', 64);
    script[0] = '#';
    script[1] = '!';
    script[64] = '\0';
    r.script = script;
    assert_int_equal(jobreq_validate(&r, &lim, NULL), 0);
}

static void validate_refuses_a_missing_script(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.script = NULL;
    expect_refusal(&r, &lim, "script", "invalid_script");
}

static void validate_refuses_an_empty_script(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.script = "";
    expect_refusal(&r, &lim, "script", "invalid_script");
}

static void validate_refuses_a_script_without_shebang(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.script = "echo hi\n";
    const char *msg = expect_refusal(&r, &lim, "script", "invalid_script");
    assert_non_null(strstr(msg, "#!"));
    r.script = " #!/bin/sh\n";
    expect_refusal(&r, &lim, "script", "invalid_script");
}

static void validate_refuses_a_script_over_the_size_limit(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    static char script[66];
    memset(script, 'x', 65);
    script[0] = '#';
    script[1] = '!';
    script[65] = '\0';
    r.script = script;
    const char *msg = expect_refusal(&r, &lim, "script", "invalid_script");
    assert_non_null(strstr(msg, "64"));
}

static void validate_refuses_an_unterminated_long_name(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    memset(r.name, 'n', sizeof r.name);
    const char *msg = expect_refusal(&r, &lim, "name", "invalid_name");
    assert_non_null(strstr(msg, "127"));
}

static void validate_refuses_control_characters_in_name(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    static const char *const bad[] = {"a\tb",       "line\n",  "bell\a",      "del\x7f",
                                      "c1\xc2\x85", "bad\xff", "cut\xe2\x82", "overlong\xc0\xaf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jobreq r = valid_request();
        snprintf(r.name, sizeof r.name, "%s", bad[i]);
        expect_refusal(&r, &lim, "name", "invalid_name");
    }
}

static void validate_accepts_printable_utf8_names(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    static const char *const good[] = {"", "train run #3", "Université", "模型训练",
                                       "emoji \xf0\x9f\x9a\x80"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        jobreq r = valid_request();
        snprintf(r.name, sizeof r.name, "%s", good[i]);
        if (jobreq_validate(&r, &lim, NULL) != 0) fail_msg("\"%s\" refused", good[i]);
    }
}

static void validate_refuses_too_many_gpus_with_a_helpful_message(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.gpus = 12;
    const char *msg = expect_refusal(&r, &lim, "gpus", "invalid_gpus");
    assert_string_equal(msg, "the job asks 12 GPUs in all (gpus) but this site allows at most 8 "
                             "GPUs per job; ask for fewer nodes or GPUs");
}

static void validate_refuses_negative_gpus(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.gpus = -1;
    expect_refusal(&r, &lim, "gpus", "invalid_gpus");
}

static void validate_refuses_an_unknown_gpu_type(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.gpus = 1;
    snprintf(r.gpu_type, sizeof r.gpu_type, "a100");
    const char *msg = expect_refusal(&r, &lim, "gpu_type", "invalid_gpu_type");
    assert_non_null(strstr(msg, "h100, l40s"));
}

static void validate_refuses_gpu_type_with_bad_characters(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    lim.gpu_types = NULL;
    jobreq r = valid_request();
    r.gpus = 1;
    snprintf(r.gpu_type, sizeof r.gpu_type, "h100;rm");
    expect_refusal(&r, &lim, "gpu_type", "invalid_gpu_type");
    snprintf(r.gpu_type, sizeof r.gpu_type, "-h100");
    expect_refusal(&r, &lim, "gpu_type", "invalid_gpu_type");
}

static void validate_refuses_gpu_type_with_zero_gpus(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    snprintf(r.gpu_type, sizeof r.gpu_type, "h100");
    expect_refusal(&r, &lim, "gpu_type", "invalid_gpu_type");
}

static void validate_refuses_any_gpu_type_when_the_site_list_is_empty(void **state)
{
    (void)state;
    static const char *const none[] = {NULL};
    jobreq_limits lim = site_limits();
    lim.gpu_types = none;
    jobreq r = valid_request();
    r.gpus = 1;
    snprintf(r.gpu_type, sizeof r.gpu_type, "h100");
    expect_refusal(&r, &lim, "gpu_type", "invalid_gpu_type");
}

static void validate_accepts_any_gpu_type_without_a_site_list(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    lim.gpu_types = NULL;
    jobreq r = valid_request();
    r.gpus = 2;
    snprintf(r.gpu_type, sizeof r.gpu_type, "anything-9");
    assert_int_equal(jobreq_validate(&r, &lim, NULL), 0);
}

static void validate_refuses_zero_cpus(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.cpus_per_task = 0;
    const char *msg = expect_refusal(&r, &lim, "cpus_per_task", "invalid_cpus");
    assert_non_null(strstr(msg, "between 1 and 64 (got 0)"));
}

static void validate_refuses_too_many_cpus(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.cpus_per_task = 65;
    expect_refusal(&r, &lim, "cpus_per_task", "invalid_cpus");
}

static void validate_refuses_a_zero_time_limit(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.time_minutes = 0;
    expect_refusal(&r, &lim, "time_minutes", "invalid_time");
}

static void validate_refuses_a_time_limit_over_the_maximum(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.time_minutes = 2881;
    const char *msg = expect_refusal(&r, &lim, "time_minutes", "invalid_time");
    assert_non_null(strstr(msg, "between 1 and 2880 (got 2881)"));
}

static void validate_refuses_negative_memory(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.mem_mb = -1;
    expect_refusal(&r, &lim, "mem_mb", "invalid_mem");
}

static void validate_refuses_memory_over_the_maximum(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.mem_mb = 512 * 1024 + 1;
    expect_refusal(&r, &lim, "mem_mb", "invalid_mem");
}

static void validate_without_limits_checks_only_lower_bounds(void **state)
{
    (void)state;
    jobreq r = valid_request();
    r.gpus = 100000;
    r.cpus_per_task = 100000;
    r.time_minutes = INT_MAX;
    r.mem_mb = INT64_MAX;
    assert_int_equal(jobreq_validate(&r, NULL, NULL), 0);
    r.cpus_per_task = 0;
    const char *msg = expect_refusal(&r, NULL, "cpus_per_task", "invalid_cpus");
    assert_non_null(strstr(msg, "at least 1"));
}

static void validate_reports_the_first_bad_field(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.gpus = 99;
    r.cpus_per_task = 0;
    r.time_minutes = 0;
    expect_refusal(&r, &lim, "gpus", "invalid_gpus");
}

/* ---- totals, output patterns, export, signal, chdir, partitions, layout (issue 9) ---- */

static void totals_of_a_plain_job_are_its_gpus_and_cpus(void **state)
{
    (void)state;
    jobreq r = valid_request();
    r.gpus = 2;
    r.cpus_per_task = 4;
    jobreq_totals t;
    assert_int_equal(jobreq_totals_get(&r, &t), 0);
    assert_int_equal(t.nodes, 1);
    assert_int_equal(t.tasks, 1);
    assert_int_equal(t.gpus, 2);
    assert_int_equal(t.cpus, 4);
}

static void totals_count_gpus_per_node_on_every_node(void **state)
{
    (void)state;
    jobreq r = valid_request();
    r.nodes_min = r.nodes_max = 2;
    r.gpus_per_node = 4;
    r.ntasks_per_node = 4;
    jobreq_totals t;
    assert_int_equal(jobreq_totals_get(&r, &t), 0);
    assert_int_equal(t.gpus, 8);
    assert_int_equal(t.tasks, 8);
    assert_int_equal(t.cpus, 8);
}

static void totals_count_gpus_per_task_on_every_task(void **state)
{
    (void)state;
    jobreq r = valid_request();
    r.ntasks = 6;
    r.gpus_per_task = 1;
    r.cpus_per_task = 3;
    jobreq_totals t;
    assert_int_equal(jobreq_totals_get(&r, &t), 0);
    assert_int_equal(t.gpus, 6);
    assert_int_equal(t.cpus, 18);
}

static void totals_of_a_node_range_count_its_maximum(void **state)
{
    (void)state;
    jobreq r = valid_request();
    r.nodes_min = 2;
    r.nodes_max = 4;
    r.gpus_per_node = 2;
    jobreq_totals t;
    assert_int_equal(jobreq_totals_get(&r, &t), 0);
    assert_int_equal(t.nodes, 4);
    assert_int_equal(t.gpus, 8);
}

static void totals_with_cpus_per_gpu_count_cpus_from_gpus(void **state)
{
    (void)state;
    jobreq r = valid_request();
    r.nodes_min = r.nodes_max = 2;
    r.gpus_per_node = 2;
    r.cpus_per_gpu = 8;
    jobreq_totals t;
    assert_int_equal(jobreq_totals_get(&r, &t), 0);
    assert_int_equal(t.cpus, 32);
}

static void totals_refuse_an_overflowing_product(void **state)
{
    (void)state;
    jobreq r = valid_request();
    r.nodes_min = r.nodes_max = 100000;
    r.gpus_per_node = 100000;
    jobreq_totals t;
    assert_int_equal(jobreq_totals_get(&r, &t), -EOVERFLOW);
}

static void validate_refuses_a_multi_node_job_over_the_gpu_limit(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    jobreq r = valid_request();
    r.nodes_min = r.nodes_max = 3;
    r.gpus_per_node = 4; /* 12 > 8, though 4 per node is fine */
    const char *msg = expect_refusal(&r, &lim, "gpus", "invalid_gpus");
    assert_string_equal(msg, "the job asks 12 GPUs in all (nodes x gpus_per_node) but this site "
                             "allows at most 8 GPUs per job; ask for fewer nodes or GPUs");
}

static void validate_refuses_more_nodes_than_the_site_allows(void **state)
{
    (void)state;
    jobreq_limits lim = site_limits();
    lim.max_nodes = 2;
    jobreq r = valid_request();
    r.nodes_min = r.nodes_max = 3;
    const char *msg = expect_refusal(&r, &lim, "nodes", "invalid_nodes");
    assert_non_null(strstr(msg, "at most 2 nodes per job"));
}

static void validate_refuses_two_ways_of_asking_gpus(void **state)
{
    (void)state;
    jobreq r = valid_request();
    r.gpus = 2;
    r.gpus_per_node = 2;
    expect_refusal(&r, NULL, "gpus", "invalid_gpus");
}

static void validate_refuses_fewer_tasks_than_nodes(void **state)
{
    (void)state;
    jobreq r = valid_request();
    r.nodes_min = r.nodes_max = 2;
    r.ntasks = 1;
    expect_refusal(&r, NULL, "ntasks", "invalid_value");
}

static void validate_takes_requeue_true_or_false_only(void **state)
{
    (void)state;
    jobreq r = valid_request();
    r.requeue = 1;
    assert_int_equal(jobreq_validate(&r, NULL, NULL), 0);
    r.requeue = 0;
    assert_int_equal(jobreq_validate(&r, NULL, NULL), 0);
    r.requeue = 2;
    expect_refusal(&r, NULL, "requeue", "invalid_value");
}

static void validate_refuses_exclusive_where_the_site_does_not_say_its_node_size(void **state)
{
    (void)state;
    jobreq r = valid_request();
    jobreq_limits lim = site_limits();
    r.exclusive = 1;
    expect_refusal(&r, &lim, "exclusive", "invalid_exclusive");
    r.node_gpus = 8; /* the server's, from lim.node_gpus */
    assert_int_equal(jobreq_validate(&r, &lim, NULL), 0);
}

static void validate_lets_the_cli_carry_exclusive_to_the_server(void **state)
{
    (void)state;
    jobreq r = valid_request();
    r.exclusive = 1;
    assert_int_equal(jobreq_validate(&r, NULL, NULL), 0); /* no limits: the CLI */
}

static void totals_of_an_exclusive_job_are_every_gpu_and_cpu_of_its_nodes(void **state)
{
    (void)state;
    jobreq r = valid_request();
    r.exclusive = 1;
    r.nodes_min = r.nodes_max = 2;
    r.gpus_per_node = 1;
    r.cpus_per_task = 2;
    r.node_gpus = 8;
    r.node_cpus = 32;
    jobreq_totals t;
    assert_int_equal(jobreq_totals_get(&r, &t), 0);
    assert_int_equal(t.gpus, 16); /* Slurm gives it every GPU of both nodes */
    assert_int_equal(t.cpus, 64);
    r.exclusive = 0; /* the same request shared: what it asks */
    assert_int_equal(jobreq_totals_get(&r, &t), 0);
    assert_int_equal(t.gpus, 2);
    assert_int_equal(t.cpus, 4);
}

static void validate_refuses_an_output_path_outside_the_folder(void **state)
{
    (void)state;
    jobreq r = valid_request();
    snprintf(r.output, sizeof r.output, "../../etc/x");
    expect_refusal(&r, NULL, "output", "invalid_output");
}

static void validate_refuses_an_output_whose_name_pattern_makes_a_path(void **state)
{
    (void)state;
    jobreq r = valid_request();
    snprintf(r.name, sizeof r.name, "../x");
    snprintf(r.output, sizeof r.output, "%%x.out");
    expect_refusal(&r, NULL, "output", "invalid_output");
}

static void output_expand_gives_antenna_ids_name_and_user(void **state)
{
    (void)state;
    jobreq_output_ctx ctx = {
        .job_id = 42, .array_job_id = 0, .array_task_id = -1, .name = "train", .user = "acme1"};
    char out[128];
    assert_int_equal(
        jobreq_output_expand("%x-%u-%j-%A_%a.%%.out", &ctx, "output", out, sizeof out, NULL), 0);
    assert_string_equal(out, "train-acme1-42-42_0.%.out");
}

static void output_expand_gives_array_ids_and_zero_padding(void **state)
{
    (void)state;
    jobreq_output_ctx ctx = {
        .job_id = 50, .array_job_id = 47, .array_task_id = 3, .name = "s", .user = "u"};
    char out[128];
    assert_int_equal(jobreq_output_expand("run-%A_%3a-%5j", &ctx, "output", out, sizeof out, NULL),
                     0);
    assert_string_equal(out, "run-47_003-00050");
}

static void output_expand_refuses_the_node_name_pattern(void **state)
{
    (void)state;
    jobreq_error e;
    char out[64];
    assert_int_equal(jobreq_output_expand("o-%N.log", NULL, "error", out, sizeof out, &e), -EINVAL);
    assert_string_equal(e.field, "error");
    assert_non_null(strstr(e.message, "%N (the first node's name) is not known"));
}

static void output_expand_refuses_paths_and_unknown_patterns(void **state)
{
    (void)state;
    static const char *const bad[] = {"/tmp/x", "a/b", "..", ".", "", "x%", "x%q", "x%t"};
    char out[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (jobreq_output_expand(bad[i], NULL, "output", out, sizeof out, NULL) != -EINVAL)
            fail_msg("\"%s\" should be refused", bad[i]);
}

static void output_expand_refuses_a_name_that_becomes_a_path(void **state)
{
    (void)state;
    jobreq_output_ctx ctx = {.job_id = 1, .array_task_id = -1, .name = "a/../b", .user = "u"};
    char out[64];
    assert_int_equal(jobreq_output_expand("%x.out", &ctx, "output", out, sizeof out, NULL),
                     -EINVAL);
}

static void export_check_accepts_all_none_and_name_values(void **state)
{
    (void)state;
    static const char *const ok[] = {"ALL",    "NONE",  "ALL,EPOCHS=3", "NONE,A=1,B_2=x y",
                                     "LR=0.1", "EMPTY="};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (jobreq_export_check(ok[i], NULL, NULL) != 0) fail_msg("\"%s\" should pass", ok[i]);
}

static void export_check_refuses_loader_slurm_and_antenna_names(void **state)
{
    (void)state;
    static const char *const bad[] = {"LD_PRELOAD=/x.so", "ALL,LD_LIBRARY_PATH=/x",
                                      "LD_AUDIT=/a.so", "SLURM_JOB_ID=1", "ANTENNA_JOB_TAG=x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jobreq_error e;
        if (jobreq_export_check(bad[i], NULL, &e) != -EINVAL)
            fail_msg("\"%s\" should be refused", bad[i]);
        assert_non_null(strstr(e.message, "is refused"));
    }
}

static void export_check_refuses_the_sites_listed_names(void **state)
{
    (void)state;
    static const char *const deny[] = {"AWS_*", "PYTHONPATH", NULL};
    assert_int_equal(jobreq_export_check("AWS_SECRET=x", deny, NULL), -EINVAL);
    assert_int_equal(jobreq_export_check("PYTHONPATH=/x", deny, NULL), -EINVAL);
    assert_int_equal(jobreq_export_check("PYTHONPATHX=/x", deny, NULL), 0);
}

static void export_check_refuses_a_bare_name(void **state)
{
    (void)state;
    jobreq_error e;
    assert_int_equal(jobreq_export_check("ALL,HF_TOKEN", NULL, &e), -EINVAL);
    assert_non_null(strstr(e.message, "never copies the submitter's own environment"));
}

static void export_check_refuses_bad_names_and_empty_items(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "1A=x", "A-B=x", "A=1,,B=2", "=x", "ALL,NONE"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (jobreq_export_check(bad[i], NULL, NULL) != -EINVAL)
            fail_msg("\"%s\" should be refused", bad[i]);
}

static int collect_item(void *arg, const char *item)
{
    char *buf = arg;
    strcat(buf, item);
    strcat(buf, ";");
    return 0;
}

static void export_each_gives_only_the_name_value_items(void **state)
{
    (void)state;
    char buf[128] = "";
    assert_int_equal(jobreq_export_each("NONE,A=1,B=two", collect_item, buf), 0);
    assert_string_equal(buf, "A=1;B=two;");
}

static void signal_parse_reads_names_numbers_and_times(void **state)
{
    (void)state;
    int sig, secs, batch;
    assert_int_equal(jobreq_signal_parse("B:USR1@120", &sig, &secs, &batch), 0);
    assert_int_equal(sig, 10);
    assert_int_equal(secs, 120);
    assert_int_equal(batch, 1);
    assert_int_equal(jobreq_signal_parse("SIGTERM", &sig, &secs, &batch), 0);
    assert_int_equal(sig, 15);
    assert_int_equal(secs, 60);
    assert_int_equal(batch, 0);
    assert_int_equal(jobreq_signal_parse("R:2@5", &sig, &secs, &batch), 0);
    assert_int_equal(sig, 2);
    assert_int_equal(secs, 5);
}

static void signal_parse_refuses_bad_values(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "FOO", "0", "65", "USR1@", "USR1@70000", "X:USR1"};
    int sig, secs, batch;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (jobreq_signal_parse(bad[i], &sig, &secs, &batch) != -EINVAL)
            fail_msg("\"%s\" should be refused", bad[i]);
}

static void chdir_check_accepts_relative_folders_only(void **state)
{
    (void)state;
    assert_int_equal(jobreq_chdir_check(".", NULL), 0);
    assert_int_equal(jobreq_chdir_check("run1/logs", NULL), 0);
    static const char *const bad[] = {"/home", "..", "a/../b", "a//b", "a/", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (jobreq_chdir_check(bad[i], NULL) != -EINVAL)
            fail_msg("\"%s\" should be refused", bad[i]);
}

static void partition_check_tells_forbidden_from_unknown(void **state)
{
    (void)state;
    static const char *const allowed[] = {"gpu", NULL};
    static const char *const known[] = {"gpu", "debug", NULL};
    jobreq_error e;
    assert_int_equal(jobreq_partition_check("gpu", allowed, known, NULL), 0);
    assert_int_equal(jobreq_partition_check("", allowed, known, NULL), 0);
    assert_int_equal(jobreq_partition_check("debug", allowed, known, &e), -EACCES);
    assert_string_equal(e.code, "partition_forbidden");
    assert_non_null(strstr(e.message, "use one of: gpu"));
    assert_int_equal(jobreq_partition_check("nope", allowed, known, &e), -ENOENT);
    assert_string_equal(e.code, "unknown_partition");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(time_parse_accepts_every_slurm_format),
        cmocka_unit_test(time_parse_refuses_bad_zero_unlimited_and_overflow),
        cmocka_unit_test(time_format_matches_slurm),
        cmocka_unit_test(time_format_truncates_to_the_buffer),
        cmocka_unit_test(time_format_then_parse_round_trips),
        cmocka_unit_test(mem_parse_accepts_sizes_with_suffixes),
        cmocka_unit_test(mem_parse_refuses_garbage_negative_and_overflow),
        cmocka_unit_test(gres_parse_accepts_gpu_specs),
        cmocka_unit_test(gres_parse_refuses_non_gpu_and_malformed_specs),
        cmocka_unit_test(gres_parse_refuses_a_type_longer_than_the_buffer),
        cmocka_unit_test(gpus_parse_accepts_count_and_type_count),
        cmocka_unit_test(gpus_parse_refuses_malformed_specs),
        cmocka_unit_test(ident_valid_follows_the_identifier_rule),
        cmocka_unit_test(init_sets_documented_defaults),
        cmocka_unit_test(validate_accepts_defaults_with_a_script),
        cmocka_unit_test(validate_accepts_values_at_every_limit),
        cmocka_unit_test(validate_refuses_a_missing_script),
        cmocka_unit_test(validate_refuses_an_empty_script),
        cmocka_unit_test(validate_refuses_a_script_without_shebang),
        cmocka_unit_test(validate_refuses_a_script_over_the_size_limit),
        cmocka_unit_test(validate_refuses_an_unterminated_long_name),
        cmocka_unit_test(validate_refuses_control_characters_in_name),
        cmocka_unit_test(validate_accepts_printable_utf8_names),
        cmocka_unit_test(validate_refuses_too_many_gpus_with_a_helpful_message),
        cmocka_unit_test(validate_refuses_negative_gpus),
        cmocka_unit_test(validate_refuses_an_unknown_gpu_type),
        cmocka_unit_test(validate_refuses_gpu_type_with_bad_characters),
        cmocka_unit_test(validate_refuses_gpu_type_with_zero_gpus),
        cmocka_unit_test(validate_refuses_any_gpu_type_when_the_site_list_is_empty),
        cmocka_unit_test(validate_accepts_any_gpu_type_without_a_site_list),
        cmocka_unit_test(validate_refuses_zero_cpus),
        cmocka_unit_test(validate_refuses_too_many_cpus),
        cmocka_unit_test(validate_refuses_a_zero_time_limit),
        cmocka_unit_test(validate_refuses_a_time_limit_over_the_maximum),
        cmocka_unit_test(validate_refuses_negative_memory),
        cmocka_unit_test(validate_refuses_memory_over_the_maximum),
        cmocka_unit_test(validate_without_limits_checks_only_lower_bounds),
        cmocka_unit_test(validate_reports_the_first_bad_field),
        cmocka_unit_test(totals_of_a_plain_job_are_its_gpus_and_cpus),
        cmocka_unit_test(totals_count_gpus_per_node_on_every_node),
        cmocka_unit_test(totals_count_gpus_per_task_on_every_task),
        cmocka_unit_test(totals_of_a_node_range_count_its_maximum),
        cmocka_unit_test(totals_with_cpus_per_gpu_count_cpus_from_gpus),
        cmocka_unit_test(totals_refuse_an_overflowing_product),
        cmocka_unit_test(validate_refuses_a_multi_node_job_over_the_gpu_limit),
        cmocka_unit_test(validate_refuses_more_nodes_than_the_site_allows),
        cmocka_unit_test(validate_refuses_two_ways_of_asking_gpus),
        cmocka_unit_test(validate_refuses_fewer_tasks_than_nodes),
        cmocka_unit_test(validate_takes_requeue_true_or_false_only),
        cmocka_unit_test(validate_refuses_exclusive_where_the_site_does_not_say_its_node_size),
        cmocka_unit_test(validate_lets_the_cli_carry_exclusive_to_the_server),
        cmocka_unit_test(totals_of_an_exclusive_job_are_every_gpu_and_cpu_of_its_nodes),
        cmocka_unit_test(validate_refuses_an_output_path_outside_the_folder),
        cmocka_unit_test(validate_refuses_an_output_whose_name_pattern_makes_a_path),
        cmocka_unit_test(output_expand_gives_antenna_ids_name_and_user),
        cmocka_unit_test(output_expand_gives_array_ids_and_zero_padding),
        cmocka_unit_test(output_expand_refuses_the_node_name_pattern),
        cmocka_unit_test(output_expand_refuses_paths_and_unknown_patterns),
        cmocka_unit_test(output_expand_refuses_a_name_that_becomes_a_path),
        cmocka_unit_test(export_check_accepts_all_none_and_name_values),
        cmocka_unit_test(export_check_refuses_loader_slurm_and_antenna_names),
        cmocka_unit_test(export_check_refuses_the_sites_listed_names),
        cmocka_unit_test(export_check_refuses_a_bare_name),
        cmocka_unit_test(export_check_refuses_bad_names_and_empty_items),
        cmocka_unit_test(export_each_gives_only_the_name_value_items),
        cmocka_unit_test(signal_parse_reads_names_numbers_and_times),
        cmocka_unit_test(signal_parse_refuses_bad_values),
        cmocka_unit_test(chdir_check_accepts_relative_folders_only),
        cmocka_unit_test(partition_check_tells_forbidden_from_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
