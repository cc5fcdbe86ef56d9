/* test_broker.c - unit tests of the broker's durable steps, against a fake Slurm.
 *
 * The broker is not the Slurm adapter, so its unit tests may use a fake one: this file defines
 * the slurm_adapter_* functions itself (the linker then never pulls the real adapter in). Each
 * test starts its own world: a temporary store, a loop, a broker, and an empty fake cluster.
 */
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker.h"
#include "log.h"
#include "registry.h"
#include "slurm_adapter.h"
#include "store.h"

/* --- the fake Slurm ----------------------------------------------------------------------------
 */

#define FAKE_MAX 1024
static struct fake {
    pthread_mutex_t mu;
    slurm_adapter_job jobs[FAKE_MAX];
    int64_t ours[FAKE_MAX]; /* our job id, from the tag at submit (the tag may change later) */
    size_t n;
    uint32_t next_id;
    int submit_rc;      /* what the next submits return (0 = accept) */
    int accept_left;    /* >= 0: accept this many more, then answer -EAGAIN; -1 = no limit */
    bool accept_anyway; /* with submit_rc < 0: the job is created all the same (a lost answer) */
    int poll_rc;
    unsigned submits, polls, cancels;
    uid_t last_uid;
    char last_tag[128];
    bool changed; /* the table changed since the last poll */
    /* slurmdbd */
    slurm_adapter_record recs[16];
    size_t nrecs;
    int records_rc; /* what records_by_id returns (0, -EAGAIN, -ENOTSUP) */
    unsigned record_reads;
    int ensure_rc; /* what the ensure calls return */
    unsigned account_ensures, user_ensures;
    char last_account[64];  /* of the last submit */
    char last_ensured[128]; /* "account/user" of the last user ensure */
    unsigned gpu_limit_calls;
    char last_gpu_limit[128]; /* "account=minutes" of the last GrpTRESMins call */
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

int slurm_adapter_records_by_id(slurm_adapter *a, const uint32_t *ids, size_t n_ids,
                                slurm_adapter_record **out, size_t *n, char *err, size_t errlen)
{
    (void)a;
    pthread_mutex_lock(&fake.mu);
    fake.record_reads++;
    int rc = fake.records_rc;
    *out = NULL;
    *n = 0;
    if (rc < 0) {
        snprintf(err, errlen, "fake slurmdbd: %d", rc);
    } else {
        *out = calloc(fake.nrecs + 1, sizeof **out);
        for (size_t k = 0; k < fake.nrecs; k++)
            for (size_t i = 0; i < n_ids; i++)
                if (fake.recs[k].job_id == ids[i]) (*out)[(*n)++] = fake.recs[k];
    }
    pthread_mutex_unlock(&fake.mu);
    return rc;
}

int slurm_adapter_records_between(slurm_adapter *a, int64_t from, int64_t to,
                                  slurm_adapter_record **out, size_t *n, char *err, size_t errlen)
{
    (void)a, (void)from, (void)to, (void)err, (void)errlen;
    *out = calloc(1, sizeof **out);
    *n = 0;
    return 0;
}

void slurm_adapter_records_free(slurm_adapter_record *r)
{
    free(r);
}

int slurm_adapter_account_ensure(slurm_adapter *a, const char *account, const char *description,
                                 char *err, size_t errlen)
{
    (void)a, (void)account, (void)description;
    pthread_mutex_lock(&fake.mu);
    fake.account_ensures++;
    int rc = fake.ensure_rc;
    if (rc < 0) snprintf(err, errlen, "fake slurmdbd: %d", rc);
    pthread_mutex_unlock(&fake.mu);
    return rc;
}

int slurm_adapter_user_ensure(slurm_adapter *a, const char *unix_user, const char *account,
                              char *err, size_t errlen)
{
    (void)a;
    pthread_mutex_lock(&fake.mu);
    fake.user_ensures++;
    int rc = fake.ensure_rc;
    if (rc < 0) snprintf(err, errlen, "fake slurmdbd: %d", rc);
    if (rc == 0) snprintf(fake.last_ensured, sizeof fake.last_ensured, "%s/%s", account, unix_user);
    pthread_mutex_unlock(&fake.mu);
    return rc;
}

int slurm_adapter_account_gpu_limit(slurm_adapter *a, const char *account, int64_t gpu_minutes,
                                    char *err, size_t errlen)
{
    (void)a, (void)err, (void)errlen;
    pthread_mutex_lock(&fake.mu);
    fake.gpu_limit_calls++;
    snprintf(fake.last_gpu_limit, sizeof fake.last_gpu_limit, "%s=%lld", account,
             (long long)gpu_minutes);
    pthread_mutex_unlock(&fake.mu);
    return 0;
}

/* Adds slurmdbd's record of the fake job submitted for our job `id`: `state`, ran from
 * start_ago to end_ago seconds ago, carrying `tag` (NULL: the job's own tag). */
static void fake_record(int64_t id, const char *state, int start_ago, int end_ago, const char *tag)
{
    pthread_mutex_lock(&fake.mu);
    for (size_t i = 0; i < fake.n; i++) {
        if (fake.ours[i] != id) continue;
        slurm_adapter_record *r = &fake.recs[fake.nrecs++];
        memset(r, 0, sizeof *r);
        r->job_id = fake.jobs[i].job_id;
        snprintf(r->admin_comment, sizeof r->admin_comment, "%s", tag ? tag : fake.jobs[i].tag);
        snprintf(r->state, sizeof r->state, "%s", state);
        r->submit_time = fake.jobs[i].submit_time;
        r->start_time = time(NULL) - start_ago;
        r->end_time = time(NULL) - end_ago;
        r->elapsed_s = start_ago - end_ago;
    }
    pthread_mutex_unlock(&fake.mu);
}

/* slurmctld forgets every job (MinJobAge passed). */
static void fake_purge(void)
{
    pthread_mutex_lock(&fake.mu);
    fake.n = 0;
    fake.changed = true;
    pthread_mutex_unlock(&fake.mu);
}

int slurm_adapter_new(const char *conf, slurm_adapter **out, char *err, size_t len)
{
    (void)conf, (void)err, (void)len;
    *out = (slurm_adapter *)&fake;
    return 0;
}

void slurm_adapter_free(slurm_adapter *a)
{
    (void)a;
}

int slurm_adapter_submit(slurm_adapter *a, const slurm_adapter_submit_req *req, uint32_t *job_id,
                         char *err, size_t errlen)
{
    (void)a;
    pthread_mutex_lock(&fake.mu);
    fake.submits++;
    int rc = fake.submit_rc;
    if (rc == 0 && fake.accept_left == 0) rc = -EAGAIN;
    if (rc == 0 && fake.accept_left > 0) fake.accept_left--;
    if (rc == 0 && fake.n == FAKE_MAX) rc = -EAGAIN;
    if (rc == 0 || fake.accept_anyway) {
        slurm_adapter_job *j = &fake.jobs[fake.n++];
        memset(j, 0, sizeof *j);
        j->job_id = fake.next_id++;
        snprintf(j->tag, sizeof j->tag, "%s", req->tag);
        const char *colon = strrchr(req->tag, ':');
        fake.ours[fake.n - 1] = colon ? strtoll(colon + 1, NULL, 10) : 0;
        snprintf(j->state, sizeof j->state, "pending");
        snprintf(j->reason, sizeof j->reason, "Priority");
        j->submit_time = time(NULL);
        if (rc == 0) *job_id = j->job_id;
        fake.last_uid = req->uid;
        snprintf(fake.last_account, sizeof fake.last_account, "%s",
                 req->account ? req->account : "");
        snprintf(fake.last_tag, sizeof fake.last_tag, "%s", req->tag);
        fake.changed = true;
    } else {
        snprintf(err, errlen, "fake Slurm says no (%d)", rc);
    }
    pthread_mutex_unlock(&fake.mu);
    return rc;
}

/* As the real adapter: the jobs the caller follows by id, whatever their tag, and the others
 * whose tag has the prefix. */
int slurm_adapter_poll(slurm_adapter *a, const char *prefix, slurm_adapter_follows_fn follows,
                       void *arg, slurm_adapter_job **jobs, size_t *n, bool *changed, char *err,
                       size_t errlen)
{
    (void)a;
    pthread_mutex_lock(&fake.mu);
    fake.polls++;
    int rc = fake.poll_rc;
    *jobs = NULL;
    *n = 0;
    *changed = false;
    if (rc < 0) {
        snprintf(err, errlen, "fake Slurm unreachable");
    } else if (fake.changed) {
        *jobs = calloc(fake.n ? fake.n : 1, sizeof **jobs);
        for (size_t i = 0; i < fake.n; i++)
            if (strncmp(fake.jobs[i].tag, prefix, strlen(prefix)) == 0 ||
                (follows != NULL && follows(arg, fake.jobs[i].job_id)))
                (*jobs)[(*n)++] = fake.jobs[i];
        *changed = true;
        fake.changed = false;
    }
    pthread_mutex_unlock(&fake.mu);
    return rc;
}

int slurm_adapter_partition_size(slurm_adapter *a, const char *partition, int *cpus, int *nodes,
                                 char *err, size_t errlen)
{
    (void)a, (void)partition, (void)err, (void)errlen;
    *cpus = 2;
    *nodes = 1;
    return 0;
}

void slurm_adapter_poll_reset(slurm_adapter *a)
{
    (void)a;
    pthread_mutex_lock(&fake.mu);
    fake.changed = true;
    pthread_mutex_unlock(&fake.mu);
}

int slurm_adapter_cancel(slurm_adapter *a, uint32_t job_id, char *err, size_t errlen)
{
    (void)a, (void)err, (void)errlen;
    pthread_mutex_lock(&fake.mu);
    fake.cancels++;
    for (size_t i = 0; i < fake.n; i++)
        if (fake.jobs[i].job_id == job_id) {
            snprintf(fake.jobs[i].state, sizeof fake.jobs[i].state, "cancelled");
            fake.jobs[i].end_time = time(NULL);
            fake.jobs[i].has_exit_code = true;
            fake.jobs[i].exit_code = 137;
            fake.changed = true;
        }
    pthread_mutex_unlock(&fake.mu);
    return 0;
}

/* Sets the state of the fake job submitted for our job `id`. */
static void fake_set(int64_t id, const char *state, int exit_code)
{
    pthread_mutex_lock(&fake.mu);
    for (size_t i = 0; i < fake.n; i++) {
        if (fake.ours[i] != id) continue;
        snprintf(fake.jobs[i].state, sizeof fake.jobs[i].state, "%s", state);
        fake.jobs[i].reason[0] = '\0';
        if (strcmp(state, "running") == 0) fake.jobs[i].start_time = time(NULL) - 5;
        if (store_state_terminal(state)) {
            if (fake.jobs[i].start_time == 0) fake.jobs[i].start_time = time(NULL) - 5;
            fake.jobs[i].end_time = time(NULL);
            fake.jobs[i].has_exit_code = true;
            fake.jobs[i].exit_code = exit_code;
        }
        fake.changed = true;
    }
    pthread_mutex_unlock(&fake.mu);
}

/* --- the world -----------------------------------------------------------------------------------
 */

struct world {
    char dir[64];
    store *st;
    uv_loop_t loop;
    broker *br;
    slurm_adapter *sa;
    registry *reg;
    int window;      /* the broker's cluster_window (0 = default) */
    bool gpu_limits; /* the broker's gpu_limits */
    int64_t user_id, root_user_id, vub_user_id;
};

/* Sets a quota for `partner` in the current period: a GPU budget (hours, -1 = unlimited) and a
 * GPU cap (-1 = none). */
static void set_quota(struct world *w, const char *partner, int64_t gpu_hours, int max_gpus)
{
    store_quota q = {.gpu_seconds = gpu_hours < 0 ? STORE_UNLIMITED : gpu_hours * 3600,
                     .cpu_seconds = STORE_UNLIMITED,
                     .max_gpus = max_gpus,
                     .max_running_jobs = STORE_UNLIMITED,
                     .max_queued_jobs = STORE_UNLIMITED,
                     .max_walltime_minutes = STORE_UNLIMITED,
                     .user_max_gpus = STORE_UNLIMITED};
    snprintf(q.partner, sizeof q.partner, "%s", partner);
    policy_period_of(time(NULL), q.period);
    if (w->reg != NULL) {
        registry_actor who = {.actor = "test", .partner = ""};
        assert_int_equal(registry_quota_set(w->reg, &who, &q), 0);
    } else {
        assert_int_equal(store_quota_set(w->st, &q), 0);
    }
}

static int world_setup(void **state)
{
    struct world *w = calloc(1, sizeof *w);
    char db[128], err[256];
    store_user u;
    snprintf(w->dir, sizeof w->dir, "/tmp/antenna-test-broker.XXXXXX");
    if (mkdtemp(w->dir) == NULL) return -1;
    snprintf(db, sizeof db, "%s/antenna.db", w->dir);
    if (store_new(db, &w->st, err, sizeof err) < 0) return -1;
    if (store_partner_insert(w->st, "ulb", "", 1, NULL) < 0) return -1;
    if (store_partner_insert(w->st, "vub", "", 1, NULL) < 0) return -1;
    if (store_user_insert(w->st, "alice", "ulb", "nobody", "user", "sme", &w->user_id) < 0)
        return -1;
    if (store_user_insert(w->st, "rooty", "ulb", "root", "user", "sme", &w->root_user_id) < 0)
        return -1;
    /* one Unix account serves one partner only: vub's user runs as another account */
    if (store_user_insert(w->st, "victor", "vub", "daemon", "user", "sme", &w->vub_user_id) < 0)
        return -1;
    set_quota(w, "ulb", -1, -1);
    set_quota(w, "vub", -1, -1);
    (void)u;
    pthread_mutex_lock(&fake.mu);
    fake.n = 0;
    fake.next_id = 100;
    fake.submit_rc = fake.poll_rc = 0;
    fake.accept_anyway = false;
    fake.accept_left = -1;
    fake.submits = fake.polls = fake.cancels = 0;
    fake.changed = true;
    fake.nrecs = 0;
    fake.records_rc = fake.ensure_rc = 0;
    fake.record_reads = fake.account_ensures = fake.user_ensures = 0;
    fake.last_account[0] = fake.last_ensured[0] = fake.last_gpu_limit[0] = '\0';
    fake.gpu_limit_calls = 0;
    pthread_mutex_unlock(&fake.mu);
    slurm_adapter_new(NULL, &w->sa, err, sizeof err);
    if (uv_loop_init(&w->loop) < 0) return -1;
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    struct world *w = *state;
    char cmd[128];
    broker_close(w->br, NULL, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    registry_free(w->reg);
    store_free(w->st);
    snprintf(cmd, sizeof cmd, "rm -rf %s", w->dir);
    int rc = system(cmd);
    free(w);
    return rc == 0 ? 0 : -1;
}

static void start_broker(struct world *w)
{
    char spool[128];
    snprintf(spool, sizeof spool, "%s/spool", w->dir);
    broker_options o = {.partition = "gpu",
                        .spool_dir = spool,
                        .poll_interval_ms = 10,
                        .resolve_after_ms = 100,
                        .cluster_window = w->window,
                        .record_grace_ms = 100,
                        .gpu_limits = w->gpu_limits};
    policy_config pc;
    char err[256];
    policy_config_defaults(&pc);
    registry_options ro = {.policy = &pc};
    assert_int_equal(registry_new(w->st, &ro, &w->reg, err, sizeof err), 0);
    assert_int_equal(broker_new(&w->loop, w->reg, w->sa, &o, &w->br), 0);
    assert_int_equal(broker_start(w->br), 0);
}

static int64_t queue_job(struct world *w, int64_t user_id)
{
    store_job j;
    memset(&j, 0, sizeof j);
    j.user_id = user_id;
    snprintf(j.name, sizeof j.name, "t");
    j.gpus = 1;
    snprintf(j.gpu_type, sizeof j.gpu_type, "h100");
    j.cpus_per_task = 1;
    j.time_minutes = 5;
    assert_int_equal(store_job_insert(w->st, &j, "#!/bin/bash\ntrue\n"), 0);
    return j.id;
}

/* Queues a job of `gpus` GPUs for `minutes`, in the store and, once the broker runs, the engine. */
static int64_t queue_gpus(struct world *w, int64_t user_id, int gpus, int minutes)
{
    store_job j;
    memset(&j, 0, sizeof j);
    j.user_id = user_id;
    snprintf(j.name, sizeof j.name, "g%d", gpus);
    j.gpus = gpus;
    snprintf(j.gpu_type, sizeof j.gpu_type, "h100");
    j.cpus_per_task = 1;
    j.time_minutes = minutes;
    if (w->reg == NULL) {
        assert_int_equal(store_job_insert(w->st, &j, "#!/bin/bash\ntrue\n"), 0);
        return j.id;
    }
    registry_actor who = {.actor = "test", .partner = ""};
    snprintf(j.user, sizeof j.user, "%s",
             user_id == w->user_id       ? "alice"
             : user_id == w->vub_user_id ? "victor"
                                         : "rooty");
    registry_submit sub = {.job = j, .script = "#!/bin/bash\ntrue\n"};
    assert_int_equal(registry_job_submit(w->reg, &who, &sub), 0);
    assert_true(sub.verdict.admitted);
    free(sub.body);
    broker_kick(w->br);
    return sub.job.id;
}

/* Sums the ledger rows of `kind` for job `id`. */
static int64_t ledger_sum(struct world *w, int64_t id, const char *kind)
{
    store_ledger_entry *e = NULL;
    size_t n = 0;
    int64_t sum = 0;
    assert_int_equal(store_ledger_list(w->st, NULL, id, kind, 0, &e, &n), 0);
    for (size_t i = 0; i < n; i++)
        sum += e[i].gpu_seconds;
    free(e);
    return sum;
}

/* Runs the loop until job `id` is in `state` (true) or 5 s pass (false). */
static bool run_until_state(struct world *w, int64_t id, const char *state)
{
    store_job j;
    for (int i = 0; i < 500; i++) {
        uv_run(&w->loop, UV_RUN_NOWAIT);
        usleep(10000);
        if (store_job_get(w->st, id, &j) == 0 && strcmp(j.state, state) == 0) return true;
    }
    store_job_get(w->st, id, &j);
    print_error("job %lld is %s (%s), wanted %s\n", (long long)id, j.state, j.reason, state);
    return false;
}

/* Runs the loop for `ms` milliseconds. */
static void run_for(struct world *w, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        uv_run(&w->loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
}

/* --- tests
 * ---------------------------------------------------------------------------------------- */

static void test_queued_job_is_dispatched_once_with_its_tag_and_account(void **state)
{
    struct world *w = *state;
    int64_t id = queue_job(w, w->user_id);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    run_for(w, 100);
    store_job j;
    assert_int_equal(store_job_get(w->st, id, &j), 0);
    assert_int_equal(j.slurm_job_id, 100);
    assert_true(j.dispatched_at > 0);
    assert_int_equal(fake.submits, 1);
    assert_int_equal(fake.last_uid, getpwnam("nobody")->pw_uid);
    char want[64];
    snprintf(want, sizeof want, "antenna:%s:%lld", store_instance_id(w->st), (long long)id);
    assert_string_equal(fake.last_tag, want);
}

static void test_slurm_states_flow_into_the_store(void **state)
{
    struct world *w = *state;
    int64_t id = queue_job(w, w->user_id);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake_set(id, "running", 0);
    assert_true(run_until_state(w, id, "running"));
    fake_set(id, "completed", 0);
    assert_true(run_until_state(w, id, "completed"));
    store_job j;
    store_job_get(w->st, id, &j);
    assert_true(j.has_exit_code);
    assert_int_equal(j.exit_code, 0);
    assert_true(j.started_at > 0);
    assert_true(j.ended_at >= j.started_at);
}

static void test_failed_job_keeps_its_exit_code(void **state)
{
    struct world *w = *state;
    int64_t id = queue_job(w, w->user_id);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake_set(id, "failed", 3);
    assert_true(run_until_state(w, id, "failed"));
    store_job j;
    store_job_get(w->st, id, &j);
    assert_int_equal(j.exit_code, 3);
}

static void test_unreachable_slurm_requeues_then_dispatches(void **state)
{
    struct world *w = *state;
    fake.submit_rc = -EAGAIN;
    int64_t id = queue_job(w, w->user_id);
    start_broker(w);
    run_for(w, 200);
    store_job j;
    store_job_get(w->st, id, &j);
    assert_string_equal(j.state, "queued");
    assert_non_null(strstr(j.reason, "waiting for Slurm"));
    assert_true(fake.submits > 1); /* retried at each tick */
    pthread_mutex_lock(&fake.mu);
    fake.submit_rc = 0;
    pthread_mutex_unlock(&fake.mu);
    assert_true(run_until_state(w, id, "pending"));
}

static void test_unreachable_slurm_shows_in_health(void **state)
{
    struct world *w = *state;
    fake.poll_rc = -EAGAIN;
    start_broker(w);
    run_for(w, 100);
    assert_false(broker_slurm_ok(w->br));
    pthread_mutex_lock(&fake.mu);
    fake.poll_rc = 0;
    pthread_mutex_unlock(&fake.mu);
    run_for(w, 100);
    assert_true(broker_slurm_ok(w->br));
}

static void test_refused_job_fails_with_slurms_reason(void **state)
{
    struct world *w = *state;
    fake.submit_rc = -EINVAL;
    int64_t id = queue_job(w, w->user_id);
    start_broker(w);
    assert_true(run_until_state(w, id, "failed"));
    store_job j;
    store_job_get(w->st, id, &j);
    assert_non_null(strstr(j.reason, "fake Slurm says no"));
}

static void test_job_mapped_to_root_is_never_submitted(void **state)
{
    struct world *w = *state;
    int64_t id = queue_job(w, w->root_user_id);
    start_broker(w);
    assert_true(run_until_state(w, id, "failed"));
    store_job j;
    store_job_get(w->st, id, &j);
    assert_non_null(strstr(j.reason, "root"));
    assert_int_equal(fake.submits, 0);
}

static void test_dispatching_job_found_by_tag_is_adopted_not_resubmitted(void **state)
{
    struct world *w = *state;
    int64_t id = queue_job(w, w->user_id);
    /* A crash after the submit but before it was recorded: Slurm has the job, we do not. */
    assert_int_equal(store_job_transition(w->st, id, "queued", "dispatching", NULL), 0);
    char tag[128];
    snprintf(tag, sizeof tag, "antenna:%s:%lld", store_instance_id(w->st), (long long)id);
    uint32_t sid;
    char err[64];
    slurm_adapter_submit_req req = {.tag = tag, .uid = 1};
    assert_int_equal(slurm_adapter_submit(w->sa, &req, &sid, err, sizeof err), 0);
    fake.submits = 0;
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    run_for(w, 100);
    store_job j;
    store_job_get(w->st, id, &j);
    assert_int_equal(j.slurm_job_id, sid);
    assert_int_equal(fake.submits, 0);
}

static void test_dispatching_job_not_in_slurm_is_submitted_once(void **state)
{
    struct world *w = *state;
    int64_t id = queue_job(w, w->user_id);
    assert_int_equal(store_job_transition(w->st, id, "queued", "dispatching", NULL), 0);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    run_for(w, 100);
    assert_int_equal(fake.submits, 1);
}

static void test_recovery_waits_for_slurm(void **state)
{
    struct world *w = *state;
    int64_t id = queue_job(w, w->user_id);
    assert_int_equal(store_job_transition(w->st, id, "queued", "dispatching", NULL), 0);
    fake.poll_rc = -EAGAIN;
    start_broker(w);
    run_for(w, 200);
    store_job j;
    store_job_get(w->st, id, &j);
    assert_string_equal(j.state, "dispatching");
    assert_int_equal(fake.submits, 0);
    pthread_mutex_lock(&fake.mu);
    fake.poll_rc = 0;
    pthread_mutex_unlock(&fake.mu);
    assert_true(run_until_state(w, id, "pending"));
    assert_int_equal(fake.submits, 1);
}

static void test_job_forgotten_by_slurm_becomes_lost(void **state)
{
    struct world *w = *state;
    int64_t id = queue_job(w, w->user_id);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    pthread_mutex_lock(&fake.mu);
    fake.n = 0; /* purged (MinJobAge) */
    fake.changed = true;
    pthread_mutex_unlock(&fake.mu);
    assert_true(run_until_state(w, id, "lost"));
}

static void test_job_forgotten_by_slurmctld_is_charged_from_its_slurmdbd_record(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 10, -1);
    int64_t id = queue_gpus(w, w->user_id, 2, 60);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake_set(id, "running", 0);
    assert_true(run_until_state(w, id, "running"));
    fake_record(id, "completed", 40, 10, NULL); /* ran 30 s, ended while we were not looking */
    fake_purge();
    assert_true(run_until_state(w, id, "completed"));
    store_job j;
    assert_int_equal(store_job_get(w->st, id, &j), 0);
    assert_int_equal(j.ended_at - j.started_at, 30);
    assert_true(j.has_exit_code);
    assert_int_equal(ledger_sum(w, id, "charge"), 2 * 30);
    assert_int_equal(ledger_sum(w, id, "release"), -2 * 3600);
    assert_true(fake.record_reads >= 1);
}

static void test_job_neither_knows_is_lost_and_charged_its_full_hold(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 10, -1);
    int64_t id = queue_gpus(w, w->user_id, 2, 60);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake_purge(); /* and slurmdbd has no record of it */
    assert_true(run_until_state(w, id, "lost"));
    store_job j;
    assert_int_equal(store_job_get(w->st, id, &j), 0);
    assert_non_null(strstr(j.reason, "full hold"));
    assert_int_equal(ledger_sum(w, id, "charge"), 2 * 3600);
    assert_int_equal(ledger_sum(w, id, "release"), -2 * 3600);
}

static void test_record_of_the_same_slurm_id_with_another_tag_is_not_taken(void **state)
{
    struct world *w = *state;
    int64_t id = queue_gpus(w, w->user_id, 1, 10);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake_record(id, "completed", 40, 10, "antenna:someone-else:1"); /* an id reused */
    fake_purge();
    assert_true(run_until_state(w, id, "lost"));
    assert_int_equal(ledger_sum(w, id, "charge"), 10 * 60);
}

/* A job submitted with a request id: queued in the store with it (as POST /v1/jobs does). */
static int64_t queue_job_with_request_id(struct world *w, const char *rid)
{
    store_job j;
    memset(&j, 0, sizeof j);
    j.user_id = w->user_id;
    snprintf(j.name, sizeof j.name, "t");
    j.gpus = 1;
    snprintf(j.gpu_type, sizeof j.gpu_type, "h100");
    j.cpus_per_task = 1;
    j.time_minutes = 5;
    snprintf(j.request_id, sizeof j.request_id, "%s", rid);
    assert_int_equal(store_job_insert(w->st, &j, "#!/bin/bash\ntrue\n"), 0);
    return j.id;
}

static void test_request_id_of_a_job_ends_its_slurm_tag(void **state)
{
    struct world *w = *state;
    int64_t id = queue_job_with_request_id(w, "it-abc123");
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    char want[160];
    snprintf(want, sizeof want, "antenna:%s:%lld rid=it-abc123", store_instance_id(w->st),
             (long long)id);
    assert_string_equal(fake.last_tag, want);
}

static void test_record_whose_tag_ends_in_a_request_id_is_taken(void **state)
{
    struct world *w = *state;
    int64_t id = queue_job_with_request_id(w, "it-rec1");
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake_record(id, "completed", 40, 10, NULL); /* its own tag, with " rid=it-rec1" */
    fake_purge();
    assert_true(run_until_state(w, id, "completed"));
}

static void test_slurmdbd_away_leaves_a_forgotten_job_followed_until_it_answers(void **state)
{
    struct world *w = *state;
    int64_t id = queue_gpus(w, w->user_id, 1, 10);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake.records_rc = -EAGAIN;
    fake_record(id, "completed", 40, 10, NULL);
    fake_purge();
    run_for(w, 2500); /* longer than the grace time: not decided while slurmdbd is away */
    store_job j;
    assert_int_equal(store_job_get(w->st, id, &j), 0);
    assert_string_equal(j.state, "pending");
    assert_true(fake.record_reads >= 2); /* asked again */
    fake.records_rc = 0;
    assert_true(run_until_state(w, id, "completed"));
    assert_int_equal(ledger_sum(w, id, "charge"), 30);
}

static void test_without_slurmdbd_a_forgotten_job_is_lost_with_its_full_hold(void **state)
{
    struct world *w = *state;
    fake.records_rc = -ENOTSUP;
    fake.ensure_rc = -ENOTSUP;
    int64_t id = queue_gpus(w, w->user_id, 1, 10);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake_purge();
    assert_true(run_until_state(w, id, "lost"));
    store_job j;
    assert_int_equal(store_job_get(w->st, id, &j), 0);
    assert_non_null(strstr(j.reason, "no slurmdbd"));
    assert_int_equal(ledger_sum(w, id, "charge"), 10 * 60);
}

static void test_submission_names_the_partners_account_once_its_association_exists(void **state)
{
    struct world *w = *state;
    int64_t a = queue_gpus(w, w->user_id, 1, 10);
    int64_t b = queue_gpus(w, w->user_id, 1, 10);
    start_broker(w);
    assert_true(run_until_state(w, a, "pending"));
    assert_true(run_until_state(w, b, "pending"));
    assert_string_equal(fake.last_account, "ulb");
    /* start-up ensured every user (alice, rooty, victor) once; the submits found them ensured */
    assert_int_equal(fake.user_ensures, 3);
    unsigned users = fake.user_ensures;
    int64_t c = queue_gpus(w, w->user_id, 1, 10);
    assert_true(run_until_state(w, c, "pending"));
    assert_int_equal(fake.user_ensures, users);
}

static void test_gpu_budget_is_mirrored_at_start_and_on_a_quota_change_when_on(void **state)
{
    struct world *w = *state;
    char period[8];
    policy_period_of(time(NULL), period);
    set_quota(w, "ulb", 10, -1);
    w->gpu_limits = true;
    start_broker(w);
    for (int i = 0; i < 100 && strcmp(fake.last_gpu_limit, "vub=-1") != 0; i++)
        run_for(w, 20);
    assert_true(fake.gpu_limit_calls >= 2); /* ulb and vub at start-up */
    assert_int_equal(broker_gpu_limit_push(w->br, "ulb", period, 3 * 3600 + 1), 0);
    for (int i = 0; i < 100 && strcmp(fake.last_gpu_limit, "ulb=181") != 0; i++)
        run_for(w, 20);
    assert_string_equal(fake.last_gpu_limit, "ulb=181"); /* GPU-minutes, rounded up */
    unsigned calls = fake.gpu_limit_calls;
    assert_int_equal(broker_gpu_limit_push(w->br, "ulb", "2000-01", 60), 0); /* not this month */
    run_for(w, 200);
    assert_int_equal(fake.gpu_limit_calls, calls);
}

static void test_gpu_budget_is_not_mirrored_by_default(void **state)
{
    struct world *w = *state;
    char period[8];
    policy_period_of(time(NULL), period);
    start_broker(w);
    assert_int_equal(broker_gpu_limit_push(w->br, "ulb", period, 3600), 0);
    run_for(w, 300);
    assert_int_equal(fake.gpu_limit_calls, 0);
}

static void test_slurmdbd_away_keeps_a_job_without_association_queued(void **state)
{
    struct world *w = *state;
    fake.ensure_rc = -EAGAIN;
    int64_t id = queue_gpus(w, w->user_id, 1, 10);
    start_broker(w);
    run_for(w, 500);
    store_job j;
    assert_int_equal(store_job_get(w->st, id, &j), 0);
    assert_string_equal(j.state, "queued");
    assert_int_equal(fake.submits, 0);
    fake.ensure_rc = 0;
    broker_kick(w->br);
    assert_true(run_until_state(w, id, "pending"));
    assert_int_equal(fake.submits, 1);
}

static void test_lost_submit_answer_is_looked_up_not_resubmitted(void **state)
{
    struct world *w = *state;
    pthread_mutex_lock(&fake.mu);
    fake.submit_rc = -ETIMEDOUT; /* Slurm took it, but the answer never came */
    fake.accept_anyway = true;
    pthread_mutex_unlock(&fake.mu);
    start_broker(w);
    int64_t id = queue_gpus(w, w->user_id, 1, 5);
    run_for(w, 50);
    store_job j;
    store_job_get(w->st, id, &j);
    assert_string_equal(j.state, "dispatching");
    pthread_mutex_lock(&fake.mu);
    fake.submit_rc = 0;
    fake.accept_anyway = false;
    pthread_mutex_unlock(&fake.mu);
    assert_true(run_until_state(w, id, "pending"));
    run_for(w, 200);
    store_job_get(w->st, id, &j);
    assert_int_equal(j.slurm_job_id, 100);
    assert_int_equal(fake.submits, 1);
    assert_int_equal(fake.n, 1);
}

static void test_lost_submit_never_accepted_is_requeued_and_sent_once_more(void **state)
{
    struct world *w = *state;
    pthread_mutex_lock(&fake.mu);
    fake.submit_rc = -ETIMEDOUT; /* the request never reached slurmctld */
    pthread_mutex_unlock(&fake.mu);
    start_broker(w);
    int64_t id = queue_gpus(w, w->user_id, 1, 5);
    run_for(w, 50);
    pthread_mutex_lock(&fake.mu);
    fake.submit_rc = 0;
    pthread_mutex_unlock(&fake.mu);
    assert_true(run_until_state(w, id, "pending"));
    run_for(w, 200);
    assert_int_equal(fake.submits, 2);
    assert_int_equal(fake.n, 1);
    assert_int_equal(ledger_sum(w, id, "hold"), 2 * 5 * 60); /* held, released, held again */
    assert_int_equal(ledger_sum(w, id, "release"), -5 * 60);
}

/* Counts the fake's Slurm jobs tagged for our job `id`. */
static int fake_count_tagged(int64_t id)
{
    char suffix[32];
    int c = 0;
    snprintf(suffix, sizeof suffix, ":%lld", (long long)id);
    pthread_mutex_lock(&fake.mu);
    for (size_t i = 0; i < fake.n; i++) {
        size_t tl = strlen(fake.jobs[i].tag), sl = strlen(suffix);
        if (tl >= sl && strcmp(fake.jobs[i].tag + tl - sl, suffix) == 0) c++;
    }
    pthread_mutex_unlock(&fake.mu);
    return c;
}

static void test_pipelined_dispatch_of_many_batches_sends_each_job_once(void **state)
{
    struct world *w = *state;
    int64_t ids[600];
    for (int i = 0; i < 600; i++)
        ids[i] = queue_job(w, i % 2 ? w->user_id : w->vub_user_id);
    w->window = 10000;
    start_broker(w);
    assert_true(run_until_state(w, ids[599], "pending"));
    run_for(w, 200);
    assert_int_equal(fake.submits, 600);
    for (int i = 0; i < 600; i++) {
        assert_int_equal(fake_count_tagged(ids[i]), 1);
        store_job j;
        assert_int_equal(store_job_get(w->st, ids[i], &j), 0);
        assert_string_equal(j.state, "pending");
    }
}

static void test_slurm_lost_mid_batch_requeues_the_rest_and_sends_each_once(void **state)
{
    struct world *w = *state;
    int64_t ids[300];
    for (int i = 0; i < 300; i++)
        ids[i] = queue_job(w, w->user_id);
    pthread_mutex_lock(&fake.mu);
    fake.accept_left = 150; /* Slurm goes away inside the second batch */
    pthread_mutex_unlock(&fake.mu);
    w->window = 10000;
    start_broker(w);
    int pending = 0, queued = 0;
    for (int round = 0; round < 300 && pending < 150; round++) {
        run_for(w, 20);
        pending = 0;
        for (int i = 0; i < 300; i++) {
            store_job j;
            assert_int_equal(store_job_get(w->st, ids[i], &j), 0);
            pending += strcmp(j.state, "pending") == 0;
        }
    }
    /* Slurm away altogether: no tick dispatches, and the rest settle back in the queue */
    pthread_mutex_lock(&fake.mu);
    fake.poll_rc = -EAGAIN;
    pthread_mutex_unlock(&fake.mu);
    run_for(w, 200);
    pending = queued = 0;
    for (int i = 0; i < 300; i++) {
        store_job j;
        assert_int_equal(store_job_get(w->st, ids[i], &j), 0);
        pending += strcmp(j.state, "pending") == 0;
        queued += strcmp(j.state, "queued") == 0;
    }
    assert_int_equal(pending, 150); /* the 150 Slurm took, and no other */
    assert_int_equal(queued, 150);  /* the others are back in the queue, holding nothing */
    for (int i = 0; i < 300; i++) {
        store_job j;
        assert_int_equal(store_job_get(w->st, ids[i], &j), 0);
        if (strcmp(j.state, "queued") == 0)
            assert_int_equal(ledger_sum(w, ids[i], "hold") + ledger_sum(w, ids[i], "release"), 0);
    }
    pthread_mutex_lock(&fake.mu);
    fake.accept_left = -1; /* back */
    fake.poll_rc = 0;
    pthread_mutex_unlock(&fake.mu);
    for (int i = 0; i < 300; i++)
        assert_true(run_until_state(w, ids[i], "pending"));
    run_for(w, 200);
    for (int i = 0; i < 300; i++)
        assert_int_equal(fake_count_tagged(ids[i]), 1);
}

static void test_cancel_request_is_sent_to_slurm_once(void **state)
{
    struct world *w = *state;
    int64_t id = queue_job(w, w->user_id);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    bool now = true;
    registry_actor who = {.actor = "test", .partner = ""};
    assert_int_equal(registry_job_cancel(w->reg, &who, id, &now, NULL), 0);
    assert_false(now);
    assert_int_equal(broker_cancel_push(w->br, id), 0);
    broker_kick(w->br);
    assert_true(run_until_state(w, id, "cancelled"));
    run_for(w, 100);
    assert_int_equal(fake.cancels, 1);
}

static void test_broker_keeps_polling_a_quiet_table(void **state)
{
    struct world *w = *state;
    int64_t id = queue_job(w, w->user_id);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    unsigned polls_before = fake.polls;
    run_for(w, 200);
    assert_true(fake.polls > polls_before); /* it keeps polling... */
    store_job j;
    store_job_get(w->st, id, &j);
    assert_string_equal(j.state, "pending"); /* ...and nothing changes */
}

static void test_dispatch_holds_the_maximum_cost_and_completion_charges_elapsed(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 10, -1);
    int64_t id = queue_gpus(w, w->user_id, 2, 60);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    assert_int_equal(ledger_sum(w, id, "hold"), 2 * 3600);
    fake_set(id, "running", 0);
    assert_true(run_until_state(w, id, "running"));
    fake_set(id, "completed", 0); /* ran 5 s (see fake_set) */
    assert_true(run_until_state(w, id, "completed"));
    store_job j;
    store_job_get(w->st, id, &j);
    int64_t elapsed = j.ended_at - j.started_at;
    assert_true(elapsed >= 5);
    assert_int_equal(ledger_sum(w, id, "charge"), 2 * elapsed);
    assert_int_equal(ledger_sum(w, id, "release"), -2 * 3600);
    assert_int_equal(j.hold_gpu_seconds, 0);
}

static void test_refused_job_releases_its_hold(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 10, -1);
    fake.submit_rc = -EINVAL;
    int64_t id = queue_gpus(w, w->user_id, 1, 60);
    start_broker(w);
    assert_true(run_until_state(w, id, "failed"));
    assert_int_equal(ledger_sum(w, id, "hold") + ledger_sum(w, id, "release"), 0);
    assert_int_equal(ledger_sum(w, id, "charge"), 0);
}

static void test_capped_partner_waits_while_another_dispatches(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 100, 2);
    int64_t a = queue_gpus(w, w->user_id, 2, 10);
    int64_t b = queue_gpus(w, w->user_id, 2, 10);
    int64_t c = queue_gpus(w, w->vub_user_id, 1, 10);
    start_broker(w);
    assert_true(run_until_state(w, a, "pending"));
    assert_true(run_until_state(w, c, "pending"));
    run_for(w, 100);
    store_job j;
    store_job_get(w->st, b, &j);
    assert_string_equal(j.state, "queued");
    registry_live live; /* wait reasons live in the engine */
    registry_job_live(w->reg, b, time(NULL), &live);
    assert_string_equal(live.reason, "PartnerGpuLimit");
    /* a slot frees: b goes */
    fake_set(a, "completed", 0);
    assert_true(run_until_state(w, b, "pending"));
}

static void test_quota_change_takes_effect_on_the_queue(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 100, 1);
    int64_t a = queue_gpus(w, w->user_id, 2, 10);
    start_broker(w);
    run_for(w, 150);
    store_job j;
    store_job_get(w->st, a, &j);
    assert_string_equal(j.state, "queued");
    set_quota(w, "ulb", 100, 4);
    broker_kick(w->br);
    assert_true(run_until_state(w, a, "pending"));
}

/* Changes the tag of the fake job submitted for our job `id`, as a job's user could change the
 * comment antennad used to tag it with. */
static void fake_retag(int64_t id, const char *tag)
{
    pthread_mutex_lock(&fake.mu);
    for (size_t i = 0; i < fake.n; i++)
        if (fake.ours[i] == id) snprintf(fake.jobs[i].tag, sizeof fake.jobs[i].tag, "%s", tag);
    fake.changed = true;
    pthread_mutex_unlock(&fake.mu);
}

static void test_job_whose_tag_changes_is_followed_by_its_slurm_id_and_charged(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 10, -1);
    int64_t id = queue_gpus(w, w->user_id, 2, 60);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake_retag(id, "x");
    run_for(w, 100);
    store_job j;
    store_job_get(w->st, id, &j);
    assert_string_equal(j.state, "pending"); /* not lost */
    fake_set(id, "running", 0);
    assert_true(run_until_state(w, id, "running"));
    fake_retag(id, "");
    fake_set(id, "completed", 0);
    assert_true(run_until_state(w, id, "completed"));
    store_job_get(w->st, id, &j);
    int64_t elapsed = j.ended_at - j.started_at;
    assert_true(elapsed >= 5);
    assert_int_equal(ledger_sum(w, id, "charge"), 2 * elapsed);
}

static void test_job_whose_tag_changes_still_counts_against_its_partners_gpu_cap(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 100, 2);
    int64_t a = queue_gpus(w, w->user_id, 2, 10);
    start_broker(w);
    assert_true(run_until_state(w, a, "pending"));
    fake_set(a, "running", 0);
    assert_true(run_until_state(w, a, "running"));
    fake_retag(a, "x");
    int64_t b = queue_gpus(w, w->user_id, 2, 10);
    run_for(w, 200);
    store_job j;
    store_job_get(w->st, b, &j);
    assert_string_equal(j.state, "queued");
    store_job_get(w->st, a, &j);
    assert_string_equal(j.state, "running");
}

static void test_job_whose_tag_changes_can_still_be_cancelled(void **state)
{
    struct world *w = *state;
    int64_t id = queue_job(w, w->user_id);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake_set(id, "running", 0);
    assert_true(run_until_state(w, id, "running"));
    fake_retag(id, "x");
    run_for(w, 50);
    bool now = true;
    registry_actor who = {.actor = "test", .partner = ""};
    assert_int_equal(registry_job_cancel(w->reg, &who, id, &now, NULL), 0);
    assert_int_equal(broker_cancel_push(w->br, id), 0);
    broker_kick(w->br);
    assert_true(run_until_state(w, id, "cancelled"));
    assert_int_equal(fake.cancels, 1);
    assert_true(ledger_sum(w, id, "charge") >= 5);
}

static void test_requeued_job_is_charged_from_its_first_start(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 10, -1);
    int64_t id = queue_gpus(w, w->user_id, 1, 60);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake_set(id, "running", 0); /* started 5 s ago */
    assert_true(run_until_state(w, id, "running"));
    store_job j;
    store_job_get(w->st, id, &j);
    int64_t first = j.started_at;
    /* requeued: Slurm shows it pending with no start, then running from now */
    pthread_mutex_lock(&fake.mu);
    for (size_t i = 0; i < fake.n; i++)
        if (fake.ours[i] == id) {
            snprintf(fake.jobs[i].state, sizeof fake.jobs[i].state, "pending");
            fake.jobs[i].start_time = 0;
        }
    fake.changed = true;
    pthread_mutex_unlock(&fake.mu);
    assert_true(run_until_state(w, id, "pending"));
    store_job_get(w->st, id, &j);
    assert_int_equal(j.started_at, first); /* the store keeps it too: a restart charges from it */
    pthread_mutex_lock(&fake.mu);
    for (size_t i = 0; i < fake.n; i++)
        if (fake.ours[i] == id) {
            snprintf(fake.jobs[i].state, sizeof fake.jobs[i].state, "running");
            fake.jobs[i].start_time = time(NULL);
        }
    fake.changed = true;
    pthread_mutex_unlock(&fake.mu);
    assert_true(run_until_state(w, id, "running"));
    fake_set(id, "completed", 0);
    assert_true(run_until_state(w, id, "completed"));
    store_job_get(w->st, id, &j);
    assert_int_equal(j.started_at, first);
    assert_true(ledger_sum(w, id, "charge") >= j.ended_at - first);
    assert_true(j.ended_at - first >= 5);
}

/* Slurm requeues the fake job of our job `id`, as slurmctld shows it: pending (no start), its
 * restart count one more, its submit time the requeue's (`ago` seconds ago). */
static void fake_requeue(int64_t id, int ago)
{
    pthread_mutex_lock(&fake.mu);
    for (size_t i = 0; i < fake.n; i++)
        if (fake.ours[i] == id) {
            snprintf(fake.jobs[i].state, sizeof fake.jobs[i].state, "pending");
            snprintf(fake.jobs[i].reason, sizeof fake.jobs[i].reason, "BeginTime");
            fake.jobs[i].start_time = 0;
            fake.jobs[i].restarts++;
            fake.jobs[i].submit_time = time(NULL) - ago;
        }
    fake.changed = true;
    pthread_mutex_unlock(&fake.mu);
}

static bool run_until_restarts(struct world *w, int64_t id, int restarts)
{
    store_job j;
    for (int i = 0; i < 500; i++) {
        uv_run(&w->loop, UV_RUN_NOWAIT);
        usleep(10000);
        if (store_job_get(w->st, id, &j) == 0 && j.restarts == restarts) return true;
    }
    print_error("job %lld has %d restarts, wanted %d\n", (long long)id, j.restarts, restarts);
    return false;
}

/* The elapsed seconds of job `id`'s runs that Slurm requeued, summed (store_job_runs_list). */
static int64_t prior_run_seconds(store *st, int64_t id)
{
    store_run *rs = NULL;
    size_t n = 0;
    assert_int_equal(store_job_runs_list(st, id, &rs, &n), 0);
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += rs[i].elapsed_seconds;
    free(rs);
    return sum;
}

static void test_job_requeued_by_slurm_is_charged_each_run_it_ran(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 10, -1);
    int64_t id = queue_gpus(w, w->user_id, 2, 60);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake_set(id, "running", 0); /* started 5 s ago */
    assert_true(run_until_state(w, id, "running"));
    store_job j;
    store_job_get(w->st, id, &j);
    int64_t first = j.started_at;
    fake_requeue(id, 2); /* the first run ended 2 s ago */
    assert_true(run_until_restarts(w, id, 1));
    store_job_get(w->st, id, &j);
    assert_string_equal(j.state, "pending");
    assert_int_equal(j.started_at, 0);
    store_run *runs = NULL;
    size_t n = 0;
    assert_int_equal(store_job_runs_list(w->st, id, &runs, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(runs[0].started_at, first);
    int64_t run1 = runs[0].ended_at - runs[0].started_at;
    assert_true(run1 >= 2 && run1 <= 4);
    free(runs);
    assert_int_equal(ledger_sum(w, id, "charge"), 2 * run1);
    assert_int_equal(ledger_sum(w, id, "release"), 0); /* the hold stays for the next run */

    fake_set(id, "running", 0); /* its second run */
    assert_true(run_until_state(w, id, "running"));
    fake_set(id, "completed", 0);
    assert_true(run_until_state(w, id, "completed"));
    store_job_get(w->st, id, &j);
    int64_t run2 = j.ended_at - j.started_at;
    assert_true(run2 >= 5);
    assert_int_equal(j.restarts, 1);
    assert_int_equal(prior_run_seconds(w->st, id), run1);
    assert_int_equal(j.charge_gpu_seconds, 2 * (run1 + run2));
    assert_int_equal(ledger_sum(w, id, "charge"), 2 * (run1 + run2));
    assert_int_equal(ledger_sum(w, id, "release"), -2 * 3600);
    assert_int_equal(fake.cancels, 0);
}

static void test_run_never_seen_running_is_charged_from_when_it_was_last_seen_waiting(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 10, -1);
    int64_t id = queue_gpus(w, w->user_id, 1, 60);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    run_for(w, 1500); /* listings see it waiting */
    int64_t before = time(NULL);
    fake_requeue(id, 0); /* it ran and was requeued between two listings */
    assert_true(run_until_restarts(w, id, 1));
    store_run *runs = NULL;
    size_t n = 0;
    assert_int_equal(store_job_runs_list(w->st, id, &runs, &n), 0);
    assert_int_equal(n, 1);
    /* from the last listing that saw it waiting: at most a poll interval (0.2 s) and a second of
     * rounding before the requeue, never before its dispatch */
    store_job j;
    store_job_get(w->st, id, &j);
    assert_true(runs[0].started_at >= j.dispatched_at);
    assert_true(runs[0].started_at >= before - 2);
    assert_true(runs[0].ended_at >= runs[0].started_at);
    assert_true(runs[0].ended_at <= time(NULL));
    free(runs);
}

static void test_run_requeued_unseen_is_charged_from_slurmdbds_record_of_it(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 10, -1);
    int64_t id = queue_gpus(w, w->user_id, 2, 60);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    /* it ran 7 s and was requeued 3 s ago, between two looks: slurmdbd recorded that run */
    fake_record(id, "pending", 10, 3, NULL);
    fake.recs[fake.nrecs - 1].requeued = true;
    fake_requeue(id, 3);
    assert_true(run_until_restarts(w, id, 1));
    store_run *runs = NULL;
    size_t n = 0;
    assert_int_equal(store_job_runs_list(w->st, id, &runs, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(runs[0].ended_at - runs[0].started_at, 7);
    free(runs);
    assert_int_equal(ledger_sum(w, id, "charge"), 2 * 7);
    assert_true(fake.record_reads >= 1);
}

static void test_requeued_job_past_its_budget_is_cancelled_with_the_reason(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 1, -1); /* one GPU-hour: room for the hold of this job, nothing more */
    int64_t id = queue_gpus(w, w->user_id, 1, 60);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake_set(id, "running", 0);
    assert_true(run_until_state(w, id, "running"));
    fake_requeue(id, 1); /* ran about 4 s: 4 used + 3600 held > 3600 */
    assert_true(run_until_state(w, id, "cancelled"));
    store_job j;
    store_job_get(w->st, id, &j);
    assert_int_equal(j.restarts, 1);
    assert_non_null(strstr(j.reason, "budget no longer covers another run"));
    assert_int_equal(fake.cancels, 1);
    assert_true(j.charge_gpu_seconds > 0);
    assert_int_equal(ledger_sum(w, id, "charge"), j.charge_gpu_seconds);
    assert_int_equal(ledger_sum(w, id, "release"), -3600);
}

static void
test_runs_requeued_while_slurmctld_forgot_the_job_are_charged_from_slurmdbd(void **state)
{
    struct world *w = *state;
    set_quota(w, "ulb", 10, -1);
    int64_t id = queue_gpus(w, w->user_id, 2, 60);
    start_broker(w);
    assert_true(run_until_state(w, id, "pending"));
    fake_set(id, "running", 0);
    assert_true(run_until_state(w, id, "running"));
    /* while nobody looked: requeued after 10 s, ran again 10 s, and slurmctld forgot it */
    fake_record(id, "pending", 100, 90, NULL);
    fake.recs[fake.nrecs - 1].requeued = true;
    fake_record(id, "completed", 50, 40, NULL);
    fake.recs[fake.nrecs - 1].submit_time = time(NULL) - 90; /* Slurm's: the requeue's time */
    fake_purge();
    assert_true(run_until_state(w, id, "completed"));
    store_job j;
    store_job_get(w->st, id, &j);
    assert_int_equal(j.restarts, 1);
    assert_int_equal(prior_run_seconds(w->st, id), 10);
    assert_int_equal(j.ended_at - j.started_at, 10);
    assert_int_equal(ledger_sum(w, id, "charge"), 2 * (10 + 10));
}

#define T(f) cmocka_unit_test_setup_teardown(f, world_setup, world_teardown)

/* --- the names of a job's output files (no world needed) --- */

static void test_stream_path_defaults_to_output_log(void **state)
{
    (void)state;
    broker_options bo = {.spool_dir = "/sp"};
    store_job j = {.id = 7};
    char p[256];
    assert_int_equal(broker_job_stream_path(&bo, &j, NULL, BROKER_STDOUT, p, sizeof p), 0);
    assert_string_equal(p, "/sp/jobs/7/output.log");
    assert_int_equal(broker_job_stream_path(&bo, &j, NULL, BROKER_STDERR, p, sizeof p), -ENOENT);
}

static void test_stream_path_expands_the_jobs_patterns(void **state)
{
    (void)state;
    broker_options bo = {.spool_dir = "/sp"};
    store_job j = {.id = 12};
    snprintf(j.name, sizeof j.name, "train");
    snprintf(j.unix_user, sizeof j.unix_user, "acme1");
    jobreq r;
    jobreq_init(&r);
    snprintf(r.output, sizeof r.output, "o-%%j.log");
    snprintf(r.error, sizeof r.error, "e-%%x-%%u.log");
    char p[256];
    assert_int_equal(broker_job_stream_path(&bo, &j, &r, BROKER_STDOUT, p, sizeof p), 0);
    assert_string_equal(p, "/sp/jobs/12/o-12.log");
    assert_int_equal(broker_job_stream_path(&bo, &j, &r, BROKER_STDERR, p, sizeof p), 0);
    assert_string_equal(p, "/sp/jobs/12/e-train-acme1.log");
}

static void test_stream_path_of_an_error_file_equal_to_the_output_is_not_apart(void **state)
{
    (void)state;
    broker_options bo = {.spool_dir = "/sp"};
    store_job j = {.id = 3};
    jobreq r;
    jobreq_init(&r);
    snprintf(r.output, sizeof r.output, "all-%%j");
    snprintf(r.error, sizeof r.error, "all-%%j");
    char p[256];
    assert_int_equal(broker_job_stream_path(&bo, &j, &r, BROKER_STDERR, p, sizeof p), -ENOENT);
}

int main(void)
{
    log_level_set(getenv("ANTENNA_TEST_LOG") ? getenv("ANTENNA_TEST_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_path_defaults_to_output_log),
        cmocka_unit_test(test_stream_path_expands_the_jobs_patterns),
        cmocka_unit_test(test_stream_path_of_an_error_file_equal_to_the_output_is_not_apart),
        T(test_queued_job_is_dispatched_once_with_its_tag_and_account),
        T(test_slurm_states_flow_into_the_store),
        T(test_failed_job_keeps_its_exit_code),
        T(test_unreachable_slurm_requeues_then_dispatches),
        T(test_unreachable_slurm_shows_in_health),
        T(test_refused_job_fails_with_slurms_reason),
        T(test_job_mapped_to_root_is_never_submitted),
        T(test_dispatching_job_found_by_tag_is_adopted_not_resubmitted),
        T(test_dispatching_job_not_in_slurm_is_submitted_once),
        T(test_recovery_waits_for_slurm),
        T(test_job_forgotten_by_slurm_becomes_lost),
        T(test_job_forgotten_by_slurmctld_is_charged_from_its_slurmdbd_record),
        T(test_job_neither_knows_is_lost_and_charged_its_full_hold),
        T(test_record_of_the_same_slurm_id_with_another_tag_is_not_taken),
        T(test_request_id_of_a_job_ends_its_slurm_tag),
        T(test_record_whose_tag_ends_in_a_request_id_is_taken),
        T(test_slurmdbd_away_leaves_a_forgotten_job_followed_until_it_answers),
        T(test_without_slurmdbd_a_forgotten_job_is_lost_with_its_full_hold),
        T(test_submission_names_the_partners_account_once_its_association_exists),
        T(test_slurmdbd_away_keeps_a_job_without_association_queued),
        T(test_gpu_budget_is_mirrored_at_start_and_on_a_quota_change_when_on),
        T(test_gpu_budget_is_not_mirrored_by_default),
        T(test_cancel_request_is_sent_to_slurm_once),
        T(test_broker_keeps_polling_a_quiet_table),
        T(test_lost_submit_answer_is_looked_up_not_resubmitted),
        T(test_pipelined_dispatch_of_many_batches_sends_each_job_once),
        T(test_slurm_lost_mid_batch_requeues_the_rest_and_sends_each_once),
        T(test_lost_submit_never_accepted_is_requeued_and_sent_once_more),
        T(test_dispatch_holds_the_maximum_cost_and_completion_charges_elapsed),
        T(test_refused_job_releases_its_hold),
        T(test_capped_partner_waits_while_another_dispatches),
        T(test_quota_change_takes_effect_on_the_queue),
        T(test_job_whose_tag_changes_is_followed_by_its_slurm_id_and_charged),
        T(test_job_whose_tag_changes_still_counts_against_its_partners_gpu_cap),
        T(test_job_whose_tag_changes_can_still_be_cancelled),
        T(test_requeued_job_is_charged_from_its_first_start),
        T(test_job_requeued_by_slurm_is_charged_each_run_it_ran),
        T(test_run_never_seen_running_is_charged_from_when_it_was_last_seen_waiting),
        T(test_run_requeued_unseen_is_charged_from_slurmdbds_record_of_it),
        T(test_requeued_job_past_its_budget_is_cancelled_with_the_reason),
        T(test_runs_requeued_while_slurmctld_forgot_the_job_are_charged_from_slurmdbd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
