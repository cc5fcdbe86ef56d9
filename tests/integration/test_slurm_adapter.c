/* test_slurm_adapter.c - the Slurm adapter against a real cluster (SLURM_CONF) running jobs as an
 * unprivileged account (ANTENNA_TEST_UNIX_USER). Fails, never skips, when either is missing.
 * Never runs a job as root; cancels whatever it left running. */
#include "slurm_adapter.h"

#include <errno.h>
#include <ftw.h>
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

#define WAIT_SECONDS 40
#define TEST_ACCOUNT "antenna-sa-test"

static struct {
    const char *conf;
    char user[64];
    uid_t uid;
    gid_t gid;
    char dir[64];    /* work dir, owned by the test account */
    char prefix[64]; /* tag prefix of this run */
    slurm_adapter *sa;
    int seq;
    slurm_adapter_record rec; /* the record of the job of the account test, for later tests */
} T;

/* libslurm 22.05 leaks the decoded reply of a refused slurm_submit_batch_job (inside libslurm,
 * out of the adapter's reach). Tells LeakSanitizer so, when the test is built with it. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:slurm_submit_batch_job\n";
}

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool terminal(const char *state)
{
    return strcmp(state, "pending") != 0 && strcmp(state, "running") != 0 &&
           strcmp(state, "suspended") != 0;
}

/* Submits `script` with the defaults below changed by the caller's fields; writes the tag and
 * output path used. */
static int submit(slurm_adapter_submit_req *req, const char *script, char *tag, size_t tagsz,
                  char *out, size_t outsz, uint32_t *id, char *err, size_t errlen)
{
    int seq = ++T.seq;
    if (tag[0] == '\0') snprintf(tag, tagsz, "%s%d", T.prefix, seq);
    snprintf(out, outsz, "%s/job%d.out", T.dir, seq);
    req->script = script;
    req->work_dir = T.dir;
    req->stdout_path = out;
    req->tag = tag;
    if (req->name == NULL) req->name = "antenna-it";
    if (req->partition == NULL) req->partition = "gpu";
    if (req->cpus_per_task == 0) req->cpus_per_task = 1;
    if (req->time_minutes == 0) req->time_minutes = 5;
    return slurm_adapter_submit(T.sa, req, id, err, errlen);
}

/* Polls (full table first) until job `id` satisfies: terminal (want == NULL) or state `want`.
 * Fills *job and returns true, or false after WAIT_SECONDS. */
static bool wait_job(uint32_t id, const char *want, slurm_adapter_job *job)
{
    char err[256] = "";
    bool seen = false;
    slurm_adapter_poll_reset(T.sa);
    for (int i = 0; i < WAIT_SECONDS * 10; i++) {
        slurm_adapter_job *jobs = NULL;
        size_t n = 0;
        bool changed = false;
        int rc =
            slurm_adapter_poll(T.sa, T.prefix, NULL, NULL, &jobs, &n, &changed, err, sizeof err);
        if (rc != 0) {
            print_error("poll failed: %d %s\n", rc, err);
            free(jobs);
            return false;
        }
        for (size_t k = 0; changed && k < n; k++) {
            if (jobs[k].job_id == id) {
                *job = jobs[k];
                seen = true;
            }
        }
        free(jobs);
        if (seen && (want ? strcmp(job->state, want) == 0 : terminal(job->state))) return true;
        msleep(100);
    }
    print_error("job %" PRIu32 " is '%s' after %d s, wanted '%s'\n", id, seen ? job->state : "?",
                WAIT_SECONDS, want ? want : "finished");
    return false;
}

/* Reads the whole file into buf (NUL-terminated). */
static bool read_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return false;
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
    return true;
}

/* The value after "key=" on its own line of text, in out. */
static bool line_value(const char *text, const char *key, char *out, size_t len)
{
    size_t klen = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            const char *v = p + klen + 1;
            size_t n = strcspn(v, "\n");
            if (n >= len) n = len - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    char err[256] = "";
    const char *user = getenv("ANTENNA_TEST_UNIX_USER");
    T.conf = getenv("SLURM_CONF");
    if (T.conf == NULL || T.conf[0] == '\0' || user == NULL || user[0] == '\0') {
        fprintf(stderr, "test_slurm_adapter needs SLURM_CONF (a running cluster, see "
                        "deploy/slurm-cluster.sh) and ANTENNA_TEST_UNIX_USER (an unprivileged "
                        "account, see deploy/ensure-unix-user.sh); run "
                        "tests/integration/slurm-adapter-check.sh\n");
        return -1;
    }
    struct passwd *pw = getpwnam(user);
    if (pw == NULL || pw->pw_uid == 0 || pw->pw_gid == 0) {
        fprintf(stderr, "ANTENNA_TEST_UNIX_USER=%s: no such unprivileged account\n", user);
        return -1;
    }
    snprintf(T.user, sizeof T.user, "%s", user);
    T.uid = pw->pw_uid;
    T.gid = pw->pw_gid;
    snprintf(T.dir, sizeof T.dir, "/tmp/antenna-sa-test.XXXXXX");
    if (mkdtemp(T.dir) == NULL || chown(T.dir, T.uid, T.gid) != 0 || chmod(T.dir, 0755) != 0) {
        fprintf(stderr, "cannot prepare a work dir for %s: %s\n", user, strerror(errno));
        return -1;
    }
    snprintf(T.prefix, sizeof T.prefix, "antenna-sa-test:%ld:", (long)getpid());
    int rc = slurm_adapter_new(T.conf, &T.sa, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "slurm_adapter_new: %d %s\n", rc, err);
        return -1;
    }
    /* A cluster that enforces associations takes the account's jobs once it is a user of one
     * (its default account): the account tests below need slurmdbd anyway. */
    rc = slurm_adapter_account_ensure(T.sa, TEST_ACCOUNT, "adapter test", err, sizeof err);
    if (rc == 0) rc = slurm_adapter_user_ensure(T.sa, T.user, TEST_ACCOUNT, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "associations for %s: %d %s\n", T.user, rc, err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (T.sa != NULL) {
        /* Cancel whatever this run left behind. */
        slurm_adapter_job *jobs = NULL;
        size_t n = 0;
        bool changed = false;
        char err[256];
        slurm_adapter_poll_reset(T.sa);
        if (slurm_adapter_poll(T.sa, T.prefix, NULL, NULL, &jobs, &n, &changed, err, sizeof err) ==
            0) {
            for (size_t i = 0; i < n; i++)
                if (!terminal(jobs[i].state))
                    slurm_adapter_cancel(T.sa, jobs[i].job_id, err, sizeof err);
        }
        free(jobs);
        slurm_adapter_free(T.sa);
        T.sa = NULL;
    }
    if (T.dir[0] != '\0') nftw(T.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void test_poll_twice_without_change_reports_unchanged(void **state)
{
    (void)state;
    char err[256] = "";
    slurm_adapter_job *jobs = NULL;
    size_t n = 0;
    bool changed = false;

    slurm_adapter_poll_reset(T.sa);
    assert_int_equal(
        slurm_adapter_poll(T.sa, T.prefix, NULL, NULL, &jobs, &n, &changed, err, sizeof err), 0);
    assert_true(changed);
    assert_non_null(jobs);
    free(jobs);
    /* Slurm answers "no change" once its job table is older than our last poll by a second. */
    bool unchanged = false;
    for (int i = 0; i < 5 && !unchanged; i++) {
        msleep(1200);
        jobs = (slurm_adapter_job *)1;
        n = 99;
        assert_int_equal(
            slurm_adapter_poll(T.sa, T.prefix, NULL, NULL, &jobs, &n, &changed, err, sizeof err),
            0);
        if (!changed) {
            assert_null(jobs);
            assert_int_equal(n, 0);
            unchanged = true;
        }
        free(jobs);
    }
    assert_true(unchanged);
}

static void test_job_runs_as_mapped_user_with_two_gpus_and_completes(void **state)
{
    (void)state;
    char tag[128] = "", out[256], err[256] = "", text[4096], v[256];
    uint32_t id = 0;
    slurm_adapter_job job;
    slurm_adapter_submit_req req = {
        .uid = T.uid, .gid = T.gid, .gpus = 2, .gpu_type = "h100", .cpus_per_task = 2};
    const char *script = "#!/bin/bash\n"
                         "echo \"uid=$(id -u)\"\n"
                         "echo \"gpus_on_node=${SLURM_GPUS_ON_NODE:-none}\"\n"
                         "echo \"cuda=${CUDA_VISIBLE_DEVICES:-none}\"\n"
                         "echo \"cpus=${SLURM_CPUS_PER_TASK:-none}\"\n"
                         "echo \"tag=${ANTENNA_JOB_TAG:-none}\"\n"
                         "echo \"user=$USER home=$HOME\"\n";

    assert_int_equal(submit(&req, script, tag, sizeof tag, out, sizeof out, &id, err, sizeof err),
                     0);
    assert_true(id > 0);
    assert_true(wait_job(id, NULL, &job));
    assert_string_equal(job.state, "completed");
    assert_string_equal(job.tag, tag);
    assert_true(job.has_exit_code);
    assert_int_equal(job.exit_code, 0);
    assert_true(job.submit_time > 0);
    assert_true(job.start_time >= job.submit_time);
    assert_true(job.end_time >= job.start_time);
    assert_string_equal(job.reason, "");

    assert_true(read_file(out, text, sizeof text));
    char want[64];
    snprintf(want, sizeof want, "%u", (unsigned)T.uid);
    assert_true(line_value(text, "uid", v, sizeof v));
    assert_string_equal(v, want);
    assert_string_not_equal(v, "0");
    assert_true(line_value(text, "gpus_on_node", v, sizeof v));
    assert_string_equal(v, "2");
    assert_true(line_value(text, "cuda", v, sizeof v));
    assert_non_null(strchr(v, ','));              /* two entries: "a,b" */
    assert_null(strchr(strchr(v, ',') + 1, ',')); /* and no third */
    assert_true(line_value(text, "cpus", v, sizeof v));
    assert_string_equal(v, "2");
    assert_true(line_value(text, "tag", v, sizeof v));
    assert_string_equal(v, tag);
}

static void test_job_exiting_3_reports_failed_with_exit_code_3(void **state)
{
    (void)state;
    char tag[128] = "", out[256], err[256] = "";
    uint32_t id = 0;
    slurm_adapter_job job;
    slurm_adapter_submit_req req = {.uid = T.uid, .gid = T.gid};

    assert_int_equal(submit(&req, "#!/bin/bash\necho failing\nexit 3\n", tag, sizeof tag, out,
                            sizeof out, &id, err, sizeof err),
                     0);
    assert_true(wait_job(id, NULL, &job));
    assert_string_equal(job.state, "failed");
    assert_true(job.has_exit_code);
    assert_int_equal(job.exit_code, 3);
}

static void test_cancel_running_job_ends_cancelled(void **state)
{
    (void)state;
    char tag[128] = "", out[256], err[256] = "";
    uint32_t id = 0;
    slurm_adapter_job job;
    slurm_adapter_submit_req req = {.uid = T.uid, .gid = T.gid};

    assert_int_equal(submit(&req, "#!/bin/bash\necho started\nsleep 300\n", tag, sizeof tag, out,
                            sizeof out, &id, err, sizeof err),
                     0);
    assert_true(wait_job(id, "running", &job));
    assert_true(job.start_time > 0);
    assert_int_equal(job.end_time, 0);
    assert_false(job.has_exit_code);
    assert_int_equal(slurm_adapter_cancel(T.sa, id, err, sizeof err), 0);
    assert_true(wait_job(id, NULL, &job));
    assert_string_equal(job.state, "cancelled");
    assert_true(job.end_time > 0);
}

static void test_cancel_finished_job_returns_ealready(void **state)
{
    (void)state;
    char tag[128] = "", out[256], err[256] = "";
    uint32_t id = 0;
    slurm_adapter_job job;
    slurm_adapter_submit_req req = {.uid = T.uid, .gid = T.gid};

    assert_int_equal(
        submit(&req, "#!/bin/bash\ntrue\n", tag, sizeof tag, out, sizeof out, &id, err, sizeof err),
        0);
    assert_true(wait_job(id, NULL, &job));
    assert_string_equal(job.state, "completed");
    err[0] = '\0';
    assert_int_equal(slurm_adapter_cancel(T.sa, id, err, sizeof err), -EALREADY);
    assert_true(err[0] != '\0');
}

static void test_cancel_unknown_job_returns_enoent(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(slurm_adapter_cancel(T.sa, 987654321u, err, sizeof err), -ENOENT);
    assert_true(err[0] != '\0');
}

static void test_poll_returns_only_jobs_with_the_tag_prefix(void **state)
{
    (void)state;
    char mine[128] = "", other[128], out[256], err[256] = "", other_prefix[96];
    uint32_t mine_id = 0, other_id = 0;
    slurm_adapter_job *jobs = NULL;
    size_t n = 0;
    bool changed = false, found_mine = false, found_other = false;
    slurm_adapter_submit_req r1 = {.uid = T.uid, .gid = T.gid};
    slurm_adapter_submit_req r2 = {.uid = T.uid, .gid = T.gid};

    snprintf(other_prefix, sizeof other_prefix, "antenna-sa-other:%ld:", (long)getpid());
    snprintf(other, sizeof other, "%s1", other_prefix);
    assert_int_equal(submit(&r1, "#!/bin/bash\ntrue\n", mine, sizeof mine, out, sizeof out,
                            &mine_id, err, sizeof err),
                     0);
    assert_int_equal(submit(&r2, "#!/bin/bash\ntrue\n", other, sizeof other, out, sizeof out,
                            &other_id, err, sizeof err),
                     0);

    slurm_adapter_poll_reset(T.sa);
    assert_int_equal(
        slurm_adapter_poll(T.sa, T.prefix, NULL, NULL, &jobs, &n, &changed, err, sizeof err), 0);
    assert_true(changed);
    for (size_t i = 0; i < n; i++) {
        assert_memory_equal(jobs[i].tag, T.prefix, strlen(T.prefix));
        if (jobs[i].job_id == mine_id) found_mine = true;
        assert_int_not_equal(jobs[i].job_id, other_id);
    }
    free(jobs);
    assert_true(found_mine);

    /* The other job does exist in Slurm: its own prefix finds it. */
    slurm_adapter_poll_reset(T.sa);
    assert_int_equal(
        slurm_adapter_poll(T.sa, other_prefix, NULL, NULL, &jobs, &n, &changed, err, sizeof err),
        0);
    for (size_t i = 0; i < n; i++)
        if (jobs[i].job_id == other_id && strcmp(jobs[i].tag, other) == 0) found_other = true;
    free(jobs);
    slurm_adapter_cancel(T.sa, other_id, err, sizeof err); /* the teardown sees only ours */
    assert_true(found_other);
}

static void test_submit_as_root_is_refused_with_eperm(void **state)
{
    (void)state;
    char tag[128] = "", out[256], err[256] = "";
    uint32_t id = 12345;
    slurm_adapter_submit_req req = {.uid = 0, .gid = 0};

    assert_int_equal(
        submit(&req, "#!/bin/bash\nid\n", tag, sizeof tag, out, sizeof out, &id, err, sizeof err),
        -EPERM);
    assert_int_equal(id, 0);
    assert_non_null(strstr(err, "root"));

    /* Root's group alone is refused too. */
    slurm_adapter_submit_req req2 = {.uid = T.uid, .gid = 0};
    tag[0] = '\0';
    assert_int_equal(
        submit(&req2, "#!/bin/bash\nid\n", tag, sizeof tag, out, sizeof out, &id, err, sizeof err),
        -EPERM);
}

static void test_more_gpus_than_exist_is_refused_with_einval(void **state)
{
    (void)state;
    char tag[128] = "", out[256], err[256] = "";
    uint32_t id = 12345;
    slurm_adapter_submit_req req = {.uid = T.uid, .gid = T.gid, .gpus = 64, .gpu_type = "h100"};

    assert_int_equal(
        submit(&req, "#!/bin/bash\ntrue\n", tag, sizeof tag, out, sizeof out, &id, err, sizeof err),
        -EINVAL);
    assert_int_equal(id, 0);
    assert_true(strlen(err) > 10);
}

static void test_unknown_partition_is_refused_with_einval(void **state)
{
    (void)state;
    char tag[128] = "", out[256], err[256] = "";
    uint32_t id = 0;
    slurm_adapter_submit_req req = {.uid = T.uid, .gid = T.gid, .partition = "no-such-partition"};

    assert_int_equal(
        submit(&req, "#!/bin/bash\ntrue\n", tag, sizeof tag, out, sizeof out, &id, err, sizeof err),
        -EINVAL);
    assert_non_null(strstr(err, "partition"));
}

static void test_time_limit_reaches_slurm(void **state)
{
    (void)state;
    char tag[128] = "", out[256], err[256] = "", text[4096], v[64], script[1024];
    uint32_t id = 0;
    slurm_adapter_job job;
    slurm_adapter_submit_req req = {.uid = T.uid, .gid = T.gid, .time_minutes = 7};

    /* The job reads its own limit back from Slurm (as the job's user, not through the adapter). */
    snprintf(
        script, sizeof script,
        "#!/bin/bash\necho \"limit=$(SLURM_CONF='%s' squeue -h -j \"$SLURM_JOB_ID\" -o %%l)\"\n",
        T.conf);
    assert_int_equal(submit(&req, script, tag, sizeof tag, out, sizeof out, &id, err, sizeof err),
                     0);
    assert_true(wait_job(id, NULL, &job));
    assert_string_equal(job.state, "completed");
    assert_true(read_file(out, text, sizeof text));
    assert_true(line_value(text, "limit", v, sizeof v));
    assert_string_equal(v, "7:00");
}

/* The value of `field` ("AdminComment", "Comment", "JobName") in `scontrol -o show job id`, as a
 * Slurm client shows it (the test runs as root, like antennad); false when scontrol does not show
 * it (an unset comment). */
static bool scontrol_field(uint32_t id, const char *field, char *out, size_t len)
{
    static char line[65536];
    char cmd[128], key[64];
    bool found = false;
    snprintf(cmd, sizeof cmd, "scontrol -o show job %" PRIu32, id);
    snprintf(key, sizeof key, " %s=", field);
    FILE *p = popen(cmd, "r");
    if (p == NULL) return false;
    while (fgets(line, sizeof line, p) != NULL) {
        char *v = strstr(line, key);
        if (v == NULL) continue;
        v += strlen(key);
        size_t n = strcspn(v, " \n");
        if (n >= len) n = len - 1;
        memcpy(out, v, n);
        out[n] = '\0';
        found = true;
    }
    pclose(p);
    return found;
}

/* Runs a shell command (as root); true when it exits 0. */
static bool run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool run(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd) == 0;
}

static bool follows_one(void *arg, uint32_t job_id)
{
    return job_id == *(uint32_t *)arg;
}

/* One poll of the full table: whether job `id` is in it (its copy in *job). */
static bool poll_has(slurm_adapter_follows_fn follows, void *arg, uint32_t id,
                     slurm_adapter_job *job)
{
    slurm_adapter_job *jobs = NULL;
    size_t n = 0;
    bool changed = false, found = false;
    char err[256] = "";
    slurm_adapter_poll_reset(T.sa);
    assert_int_equal(
        slurm_adapter_poll(T.sa, T.prefix, follows, arg, &jobs, &n, &changed, err, sizeof err), 0);
    assert_true(changed);
    for (size_t i = 0; i < n; i++)
        if (jobs[i].job_id == id) {
            *job = jobs[i];
            found = true;
        }
    free(jobs);
    return found;
}

static void test_tag_is_in_admin_comment_and_comment_stays_the_users(void **state)
{
    (void)state;
    char tag[128] = "", out[256], err[256] = "", v[256];
    uint32_t id = 0;
    slurm_adapter_job job;
    slurm_adapter_submit_req req = {.uid = T.uid, .gid = T.gid};

    assert_int_equal(submit(&req, "#!/bin/bash\nsleep 300\n", tag, sizeof tag, out, sizeof out, &id,
                            err, sizeof err),
                     0);
    assert_true(scontrol_field(id, "AdminComment", v, sizeof v));
    assert_string_equal(v, tag);
    assert_false(scontrol_field(id, "Comment", v, sizeof v)); /* unset: the user's */
    assert_true(poll_has(NULL, NULL, id, &job));
    assert_string_equal(job.tag, tag);
    assert_int_equal(slurm_adapter_cancel(T.sa, id, err, sizeof err), 0);
}

static void test_job_whose_comment_and_name_change_is_still_found_by_its_tag(void **state)
{
    (void)state;
    char tag[128] = "", out[256], err[256] = "", v[256];
    uint32_t id = 0;
    slurm_adapter_job job;
    slurm_adapter_submit_req req = {.uid = T.uid, .gid = T.gid};

    assert_int_equal(submit(&req, "#!/bin/bash\nsleep 300\n", tag, sizeof tag, out, sizeof out, &id,
                            err, sizeof err),
                     0);
    assert_true(wait_job(id, "running", &job));
    /* what a job's user could do where Slurm lets them (root does it here) */
    assert_true(run("scontrol update jobid=%" PRIu32 " comment=x name=y", id));
    assert_true(scontrol_field(id, "Comment", v, sizeof v));
    assert_string_equal(v, "x");
    assert_true(poll_has(NULL, NULL, id, &job));
    assert_string_equal(job.tag, tag);
    assert_string_equal(job.state, "running");
    assert_int_equal(slurm_adapter_cancel(T.sa, id, err, sizeof err), 0);
}

static void test_followed_job_is_polled_by_its_id_whatever_its_tag(void **state)
{
    (void)state;
    char tag[128] = "", out[256], err[256] = "";
    uint32_t id = 0;
    slurm_adapter_job job;
    slurm_adapter_submit_req req = {.uid = T.uid, .gid = T.gid};

    assert_int_equal(submit(&req, "#!/bin/bash\nsleep 300\n", tag, sizeof tag, out, sizeof out, &id,
                            err, sizeof err),
                     0);
    assert_true(wait_job(id, "running", &job));
    /* an operator rewrote the tag: the prefix no longer finds it, its id does */
    assert_true(run("scontrol update jobid=%" PRIu32 " admincomment=rewritten", id));
    assert_false(poll_has(NULL, NULL, id, &job));
    assert_true(poll_has(follows_one, &id, id, &job));
    assert_string_equal(job.tag, "rewritten");
    assert_string_equal(job.state, "running");
    assert_int_equal(slurm_adapter_cancel(T.sa, id, err, sizeof err), 0);
    assert_true(poll_has(follows_one, &id, id, &job));
}

/* Last: swaps the adapter for one whose slurm.conf points at a port nobody listens on. */
static void test_unreachable_controller_gives_eagain(void **state)
{
    (void)state;
    char path[128], line[1024], err[256] = "", tag[128] = "", out[256];
    slurm_adapter_job *jobs = NULL;
    size_t n = 0;
    bool changed = true;
    uint32_t id = 0;

    snprintf(path, sizeof path, "%s/unreachable.conf", T.dir);
    FILE *in = fopen(T.conf, "r"), *o = fopen(path, "w");
    assert_non_null(in);
    assert_non_null(o);
    while (fgets(line, sizeof line, in) != NULL) {
        if (strncmp(line, "SlurmctldPort=", 14) == 0 || strncmp(line, "MessageTimeout=", 15) == 0)
            continue;
        fputs(line, o);
    }
    fputs("SlurmctldPort=1\nMessageTimeout=2\n", o); /* port 1: nothing listens there */
    fclose(in);
    fclose(o);

    slurm_adapter_free(T.sa);
    T.sa = NULL;
    assert_int_equal(slurm_adapter_new(path, &T.sa, err, sizeof err), 0);
    assert_int_equal(
        slurm_adapter_poll(T.sa, T.prefix, NULL, NULL, &jobs, &n, &changed, err, sizeof err),
        -EAGAIN);
    assert_null(jobs);
    assert_false(changed);
    assert_true(err[0] != '\0');
    slurm_adapter_submit_req req = {.uid = T.uid, .gid = T.gid};
    assert_int_equal(
        submit(&req, "#!/bin/bash\ntrue\n", tag, sizeof tag, out, sizeof out, &id, err, sizeof err),
        -EAGAIN);

    /* Back to the real cluster for the teardown. */
    slurm_adapter_free(T.sa);
    T.sa = NULL;
    assert_int_equal(slurm_adapter_new(T.conf, &T.sa, err, sizeof err), 0);
}

/* Polls slurmdbd (it records a job's end shortly after slurmctld, and under load may write the
 * end before the rest of the record) until job `id` has a finished, complete record; fills *r. */
static bool wait_record(uint32_t id, slurm_adapter_record *r)
{
    char err[256] = "";
    for (int i = 0; i < WAIT_SECONDS * 5; i++) {
        slurm_adapter_record *v = NULL;
        size_t n = 0;
        int rc = slurm_adapter_records_by_id(T.sa, &id, 1, &v, &n, err, sizeof err);
        if (rc != 0) {
            print_error("records_by_id: %d %s\n", rc, err);
            return false;
        }
        for (size_t k = 0; k < n; k++) {
            if (v[k].job_id == id && v[k].end_time > 0 && terminal(v[k].state) &&
                v[k].partition[0] != '\0' && v[k].admin_comment[0] != '\0') {
                *r = v[k];
                slurm_adapter_records_free(v);
                return true;
            }
        }
        slurm_adapter_records_free(v);
        msleep(200);
    }
    print_error("slurmdbd has no finished record of job %" PRIu32 " after %d s\n", id,
                WAIT_SECONDS);
    return false;
}

static void test_ensure_account_and_user_twice_succeeds(void **state)
{
    (void)state;
    char err[256] = "";
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            slurm_adapter_account_ensure(T.sa, "Antenna-SA-Test2", "second", err, sizeof err), 0);
        assert_int_equal(
            slurm_adapter_user_ensure(T.sa, T.user, "antenna-sa-test2", err, sizeof err), 0);
    }
}

static void test_ensure_refuses_an_invalid_account_name(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(slurm_adapter_account_ensure(T.sa, "bad name;", "", err, sizeof err), -EINVAL);
    assert_true(err[0] != '\0');
    assert_int_equal(slurm_adapter_user_ensure(T.sa, "", TEST_ACCOUNT, err, sizeof err), -EINVAL);
}

static void test_record_of_a_job_carries_its_account_user_tag_gpus_and_times(void **state)
{
    (void)state;
    char tag[128] = "", out[256], err[256] = "";
    uint32_t id = 0;
    slurm_adapter_job job;
    slurm_adapter_record r;
    slurm_adapter_submit_req req = {.uid = T.uid,
                                    .gid = T.gid,
                                    .gpus = 2,
                                    .gpu_type = "h100",
                                    .cpus_per_task = 2,
                                    .account = "Antenna-SA-Test2"};
    assert_int_equal(submit(&req, "#!/bin/bash\nsleep 2\nexit 4\n", tag, sizeof tag, out,
                            sizeof out, &id, err, sizeof err),
                     0);
    assert_true(wait_job(id, NULL, &job));
    assert_string_equal(job.state, "failed");
    assert_true(wait_record(id, &r));
    assert_int_equal(r.job_id, id);
    assert_string_equal(r.account, "antenna-sa-test2");
    assert_string_equal(r.user, T.user);
    assert_string_equal(r.partition, "gpu");
    assert_string_equal(r.admin_comment, tag);
    assert_string_equal(r.state, "failed");
    assert_int_equal(r.exit_code, 4);
    assert_int_equal(r.gpus, 2);
    assert_int_equal(r.cpus, 2);
    assert_int_equal(r.start_time, job.start_time);
    assert_int_equal(r.end_time, job.end_time);
    assert_true(r.submit_time > 0 && r.submit_time <= r.start_time);
    assert_int_equal(r.elapsed_s, r.end_time - r.start_time);
    assert_true(r.elapsed_s >= 2);
    T.rec = r;
}

static void test_records_by_id_leaves_out_ids_slurmdbd_never_saw(void **state)
{
    (void)state;
    char err[256] = "";
    uint32_t ids[2] = {67000000u, T.rec.job_id};
    slurm_adapter_record *v = NULL;
    size_t n = 99;
    assert_true(T.rec.job_id > 0);
    assert_int_equal(slurm_adapter_records_by_id(T.sa, ids, 1, &v, &n, err, sizeof err), 0);
    assert_non_null(v);
    assert_int_equal(n, 0);
    slurm_adapter_records_free(v);
    assert_int_equal(slurm_adapter_records_by_id(T.sa, ids, 2, &v, &n, err, sizeof err), 0);
    assert_true(n >= 1);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(v[k].job_id, T.rec.job_id);
    slurm_adapter_records_free(v);
}

/* Whether records v[n] hold job `id` with tag `tag`. */
static bool records_have(const slurm_adapter_record *v, size_t n, uint32_t id, const char *tag)
{
    for (size_t k = 0; k < n; k++)
        if (v[k].job_id == id && strcmp(v[k].admin_comment, tag) == 0) return true;
    return false;
}

static void test_records_between_hold_the_jobs_that_ran_in_the_window_only(void **state)
{
    (void)state;
    char err[256] = "";
    slurm_adapter_record *v = NULL;
    size_t n = 0;
    assert_true(T.rec.job_id > 0);
    assert_int_equal(slurm_adapter_records_between(T.sa, T.rec.start_time + 1, T.rec.start_time + 2,
                                                   &v, &n, err, sizeof err),
                     0);
    assert_true(records_have(v, n, T.rec.job_id, T.rec.admin_comment));
    for (size_t k = 0; k < n; k++) /* every one ran in the window */
        assert_true(v[k].start_time > 0 && v[k].start_time < T.rec.start_time + 2 &&
                    (v[k].end_time == 0 || v[k].end_time >= T.rec.start_time + 1));
    slurm_adapter_records_free(v);
    assert_int_equal(slurm_adapter_records_between(T.sa, T.rec.end_time + 3600,
                                                   T.rec.end_time + 7200, &v, &n, err, sizeof err),
                     0);
    assert_false(records_have(v, n, T.rec.job_id, T.rec.admin_comment));
    slurm_adapter_records_free(v);
    assert_int_equal(slurm_adapter_records_between(T.sa, 10, 10, &v, &n, err, sizeof err), -EINVAL);
}

static void test_gpu_limit_is_set_and_cleared(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(
        slurm_adapter_account_gpu_limit(T.sa, "antenna-sa-test2", 600, err, sizeof err), 0);
    assert_int_equal(
        slurm_adapter_account_gpu_limit(T.sa, "antenna-sa-test2", 600, err, sizeof err), 0);
    assert_int_equal(slurm_adapter_account_gpu_limit(T.sa, "antenna-sa-test2", -1, err, sizeof err),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poll_twice_without_change_reports_unchanged),
        cmocka_unit_test(test_ensure_account_and_user_twice_succeeds),
        cmocka_unit_test(test_ensure_refuses_an_invalid_account_name),
        cmocka_unit_test(test_record_of_a_job_carries_its_account_user_tag_gpus_and_times),
        cmocka_unit_test(test_records_by_id_leaves_out_ids_slurmdbd_never_saw),
        cmocka_unit_test(test_records_between_hold_the_jobs_that_ran_in_the_window_only),
        cmocka_unit_test(test_gpu_limit_is_set_and_cleared),
        cmocka_unit_test(test_job_runs_as_mapped_user_with_two_gpus_and_completes),
        cmocka_unit_test(test_job_exiting_3_reports_failed_with_exit_code_3),
        cmocka_unit_test(test_cancel_running_job_ends_cancelled),
        cmocka_unit_test(test_cancel_finished_job_returns_ealready),
        cmocka_unit_test(test_cancel_unknown_job_returns_enoent),
        cmocka_unit_test(test_poll_returns_only_jobs_with_the_tag_prefix),
        cmocka_unit_test(test_submit_as_root_is_refused_with_eperm),
        cmocka_unit_test(test_more_gpus_than_exist_is_refused_with_einval),
        cmocka_unit_test(test_unknown_partition_is_refused_with_einval),
        cmocka_unit_test(test_time_limit_reaches_slurm),
        cmocka_unit_test(test_tag_is_in_admin_comment_and_comment_stays_the_users),
        cmocka_unit_test(test_job_whose_comment_and_name_change_is_still_found_by_its_tag),
        cmocka_unit_test(test_followed_job_is_polled_by_its_id_whatever_its_tag),
        cmocka_unit_test(test_unreachable_controller_gives_eagain),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
