/* test_slurm_adapter_nodbd.c - the Slurm adapter against a real cluster without slurmdbd
 * (SLURM_CONF of a cluster started with SLURM_CLUSTER_ACCOUNTING=0) running jobs as an
 * unprivileged account (ANTENNA_TEST_UNIX_USER): the documented fallback. Fails, never skips, when
 * either is missing or the cluster has slurmdbd. Never runs a job as root. */
#include "slurm_adapter.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>

static struct {
    slurm_adapter *sa;
    uid_t uid;
    gid_t gid;
} T;

static int group_setup(void **state)
{
    (void)state;
    char err[256] = "";
    const char *conf = getenv("SLURM_CONF"), *user = getenv("ANTENNA_TEST_UNIX_USER");
    struct passwd *pw = user ? getpwnam(user) : NULL;
    if (conf == NULL || conf[0] == '\0' || pw == NULL || pw->pw_uid == 0) {
        fprintf(stderr, "test_slurm_adapter_nodbd needs SLURM_CONF (a cluster started with "
                        "SLURM_CLUSTER_ACCOUNTING=0) and ANTENNA_TEST_UNIX_USER (unprivileged)\n");
        return -1;
    }
    T.uid = pw->pw_uid;
    T.gid = pw->pw_gid;
    if (slurm_adapter_new(conf, &T.sa, err, sizeof err) != 0) {
        fprintf(stderr, "slurm_adapter_new: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    slurm_adapter_free(T.sa);
    return 0;
}

static void test_records_are_enotsup_with_a_message(void **state)
{
    (void)state;
    char err[256] = "";
    uint32_t id = 1;
    slurm_adapter_record *v = (slurm_adapter_record *)1;
    size_t n = 99;
    assert_int_equal(slurm_adapter_records_by_id(T.sa, &id, 1, &v, &n, err, sizeof err), -ENOTSUP);
    assert_null(v);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err, "slurmdbd"));
    assert_int_equal(
        slurm_adapter_records_between(T.sa, time(NULL) - 60, time(NULL), &v, &n, err, sizeof err),
        -ENOTSUP);
    assert_null(v);
}

static void test_associations_and_limits_are_enotsup(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(slurm_adapter_account_ensure(T.sa, "ulb", "ULB", err, sizeof err), -ENOTSUP);
    assert_int_equal(slurm_adapter_user_ensure(T.sa, "antenna-it", "ulb", err, sizeof err),
                     -ENOTSUP);
    assert_int_equal(slurm_adapter_account_gpu_limit(T.sa, "ulb", 60, err, sizeof err), -ENOTSUP);
}

static void test_a_job_under_a_partner_account_still_runs(void **state)
{
    (void)state;
    char err[256] = "", dir[64] = "/tmp/antenna-nodbd-test.XXXXXX", out[128], tag[64];
    uint32_t id = 0;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chown(dir, T.uid, T.gid), 0);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(tag, sizeof tag, "antenna-nodbd:%ld:1", (long)getpid());
    slurm_adapter_submit_req req = {.name = "nodbd",
                                    .script = "#!/bin/bash\ntrue\n",
                                    .partition = "gpu",
                                    .work_dir = dir,
                                    .stdout_path = out,
                                    .account = "ulb",
                                    .tag = tag,
                                    .uid = T.uid,
                                    .gid = T.gid,
                                    .cpus_per_task = 1,
                                    .time_minutes = 1};
    assert_int_equal(slurm_adapter_submit(T.sa, &req, &id, err, sizeof err), 0);
    bool done = false;
    for (int i = 0; i < 300 && !done; i++) {
        slurm_adapter_job *jobs = NULL;
        size_t n = 0;
        bool changed = false;
        slurm_adapter_poll_reset(T.sa);
        assert_int_equal(slurm_adapter_poll(T.sa, "antenna-nodbd:", NULL, NULL, &jobs, &n, &changed,
                                            err, sizeof err),
                         0);
        for (size_t k = 0; k < n; k++)
            if (jobs[k].job_id == id && strcmp(jobs[k].state, "completed") == 0) done = true;
        free(jobs);
        if (!done) usleep(100000);
    }
    unlink(out);
    rmdir(dir);
    assert_true(done);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_are_enotsup_with_a_message),
        cmocka_unit_test(test_associations_and_limits_are_enotsup),
        cmocka_unit_test(test_a_job_under_a_partner_account_still_runs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
