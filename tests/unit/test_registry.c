/* test_registry.c - unit tests for registry.c: every change goes through the committer thread to
 * the store, the audit trail and the policy engine, and each test checks all three.
 *
 * Each test starts its own world: a temporary directory with a store, an audit trail (key and
 * head file) and a registry, partners ulb (alice, bob), vub (victor) and nob (nina, no quota).
 * Never writes a store or audit trail of another test; never talks to Slurm. A hang fails the
 * binary: every world arms alarm(30).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "audit.h"
#include "log.h"
#include "policy.h"
#include "registry.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define SCRIPT     "#!/bin/bash\ntrue\n"
#define HASH_A     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B     "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define TIME_LIMIT 30 /* seconds per test before SIGALRM ends the binary */

static const registry_actor WHO = {.actor = "tester", .partner = "ulb"};

/* --- the world ---------------------------------------------------------------------------------
 */

struct world {
    char dir[64];
    char db[128], key[128], head[128];
    bool mounted; /* dir is a tmpfs of its own (setup_tiny_disk) */
    store *st;
    audit *au;
    registry *reg;
    int64_t alice, bob, victor, nina;
    char period[8]; /* now's */
};

static int quota_put(store *st, const char *partner, const char *period)
{
    store_quota q = {.gpu_seconds = 100 * 3600,
                     .cpu_seconds = STORE_UNLIMITED,
                     .max_gpus = STORE_UNLIMITED,
                     .max_running_jobs = STORE_UNLIMITED,
                     .max_queued_jobs = STORE_UNLIMITED,
                     .max_walltime_minutes = STORE_UNLIMITED,
                     .user_max_gpus = STORE_UNLIMITED};
    snprintf(q.partner, sizeof q.partner, "%s", partner);
    snprintf(q.period, sizeof q.period, "%s", period);
    return store_quota_set(st, &q);
}

/* Opens the store, its partners, users and quotas (written before the registry exists, so the
 * audit trail starts empty), the audit trail and the registry. */
static int world_open(struct world *w)
{
    char err[256] = "";
    policy_period_of(time(NULL), w->period);
    if (store_new(w->db, &w->st, err, sizeof err) < 0) {
        print_error("store_new: %s\n", err);
        return -1;
    }
    if (store_partner_insert(w->st, "ulb", "Brussels", 1, NULL) < 0 ||
        store_partner_insert(w->st, "vub", "Brussels too", 1, NULL) < 0 ||
        store_partner_insert(w->st, "nob", "no budget", 1, NULL) < 0 ||
        store_user_insert(w->st, "alice", "ulb", "nobody", "user", "sme", &w->alice) < 0 ||
        store_user_insert(w->st, "bob", "ulb", "nobody", "user", "researcher", &w->bob) < 0 ||
        store_user_insert(w->st, "victor", "vub", "acct-vub", "user", "sme", &w->victor) < 0 ||
        store_user_insert(w->st, "nina", "nob", "acct-nob", "user", "sme", &w->nina) < 0 ||
        quota_put(w->st, "ulb", w->period) < 0 || quota_put(w->st, "vub", w->period) < 0)
        return -1;
    if (audit_new(w->st, w->key, w->head, &w->au, err, sizeof err) < 0) {
        print_error("audit_new: %s\n", err);
        return -1;
    }
    policy_config pc;
    policy_config_defaults(&pc);
    registry_options ro = {.policy = &pc, .audit = w->au};
    if (registry_new(w->st, &ro, &w->reg, err, sizeof err) < 0) {
        print_error("registry_new: %s\n", err);
        return -1;
    }
    return 0;
}

static struct world *world_dir(void **state)
{
    struct world *w = calloc(1, sizeof *w);
    if (w == NULL) return NULL;
    snprintf(w->dir, sizeof w->dir, "/tmp/test_registry.XXXXXX");
    if (mkdtemp(w->dir) == NULL) {
        free(w);
        return NULL;
    }
    snprintf(w->db, sizeof w->db, "%s/antenna.db", w->dir);
    snprintf(w->key, sizeof w->key, "%s/audit.key", w->dir);
    snprintf(w->head, sizeof w->head, "%s/audit.head", w->dir);
    *state = w;
    alarm(TIME_LIMIT);
    return w;
}

static int setup(void **state)
{
    struct world *w = world_dir(state);
    if (w == NULL) return -1;
    return world_open(w); /* on failure, teardown cleans up */
}

/* The world on a 2 MiB tmpfs of its own, mounted over its directory. Without root or tmpfs it
 * opens nothing (w->st stays NULL): the test skips. */
static int setup_tiny_disk(void **state)
{
    struct world *w = world_dir(state);
    if (w == NULL) return -1;
    if (geteuid() != 0 ||
        mount("tmpfs", w->dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=2m,mode=0700") != 0)
        return 0;
    w->mounted = true;
    return world_open(w);
}

static int teardown(void **state)
{
    struct world *w = *state;
    if (w == NULL) return 0;
    registry_free(w->reg);
    audit_free(w->au);
    store_free(w->st);
    /* Removes every file the test made, even after a failed assertion. */
    DIR *d = opendir(w->dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char p[400];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", w->dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    if (w->mounted && umount2(w->dir, MNT_DETACH) != 0) print_error("umount %s\n", w->dir);
    int rc = rmdir(w->dir);
    free(w);
    alarm(0);
    return rc;
}

/* --- helpers -----------------------------------------------------------------------------------
 */

/* The answer body: the new job and its live state. */
static char *render_body(const store_job *j, const registry_live *live, void *arg)
{
    (void)arg;
    char *s = NULL;
    if (asprintf(&s, "{\"job\":%lld,\"user\":\"%s\",\"state\":\"%s\",\"reason\":\"%s\"}",
                 (long long)j->id, j->user, j->state, live->reason) < 0)
        return NULL;
    return s;
}

static char *render_nothing(const store_job *j, const registry_live *live, void *arg)
{
    (void)j, (void)live, (void)arg;
    return NULL; /* out of memory */
}

static void submit_init(registry_submit *s, int64_t user_id, const char *user, int gpus,
                        int minutes)
{
    memset(s, 0, sizeof *s);
    s->job.user_id = user_id;
    snprintf(s->job.user, sizeof s->job.user, "%s", user);
    snprintf(s->job.name, sizeof s->job.name, "t");
    s->job.gpus = gpus;
    if (gpus > 0) snprintf(s->job.gpu_type, sizeof s->job.gpu_type, "h100");
    s->job.cpus_per_task = 2;
    s->job.mem_mb = 1024;
    s->job.time_minutes = minutes;
    s->script = SCRIPT;
    s->render = render_body;
}

/* Submits a job that must be admitted; returns its id. */
static int64_t submit_ok(struct world *w, int64_t user_id, const char *user, int gpus, int minutes)
{
    registry_submit s;
    submit_init(&s, user_id, user, gpus, minutes);
    assert_int_equal(registry_job_submit(w->reg, &WHO, &s), 0);
    assert_true(s.verdict.admitted);
    assert_non_null(s.body);
    free(s.body);
    return s.job.id;
}

static store_job job_get(struct world *w, int64_t id)
{
    store_job j;
    assert_int_equal(store_job_get(w->st, id, &j), 0);
    return j;
}

static size_t job_count(struct world *w)
{
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list(w->st, 0, NULL, 0, &js, &n), 0);
    free(js);
    return n;
}

/* The "job" of an entry's details, 0 when none. */
static int64_t entry_job(const store_audit_entry *e)
{
    json_error_t jerr;
    json_t *d = json_loads(e->details ? e->details : "{}", 0, &jerr);
    int64_t id = (int64_t)json_integer_value(json_object_get(d, "job"));
    json_decref(d);
    return id;
}

/* The number of audit entries of `action` (NULL = all) about `job` (0 = any). */
static size_t audit_count(struct world *w, const char *action, int64_t job)
{
    store_audit_entry *es = NULL;
    size_t n = 0, k = 0;
    assert_int_equal(store_audit_list(w->st, 0, 0, NULL, action, 0, &es, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (job == 0 || entry_job(&es[i]) == job) k++;
    store_audit_entries_free(es, n);
    return k;
}

/* Sums the ledger rows of `kind` of job `id` (GPU-seconds); *rows gets their number. */
static int64_t ledger_sum(struct world *w, int64_t id, const char *kind, size_t *rows)
{
    store_ledger_entry *e = NULL;
    size_t n = 0;
    int64_t sum = 0;
    assert_int_equal(store_ledger_list(w->st, NULL, id, kind, 0, &e, &n), 0);
    for (size_t i = 0; i < n; i++)
        sum += e[i].gpu_seconds;
    free(e);
    if (rows) *rows = n;
    return sum;
}

/* Sets `partner`'s quota for now's period through the registry: a budget of 100 GPU-hours, a
 * GPU cap and a walltime cap (-1 = none). */
static void quota_set(struct world *w, const char *partner, int max_gpus, int max_walltime)
{
    store_quota q = {.gpu_seconds = 100 * 3600,
                     .cpu_seconds = STORE_UNLIMITED,
                     .max_gpus = max_gpus,
                     .max_running_jobs = STORE_UNLIMITED,
                     .max_queued_jobs = STORE_UNLIMITED,
                     .max_walltime_minutes = max_walltime,
                     .user_max_gpus = STORE_UNLIMITED};
    snprintf(q.partner, sizeof q.partner, "%s", partner);
    snprintf(q.period, sizeof q.period, "%s", w->period);
    assert_int_equal(registry_quota_set(w->reg, &WHO, &q), 0);
}

/* registry_dispatch_begin of every job that may go; returns how many moved, their ids in ids. */
static size_t begin_all(struct world *w, int64_t *ids, size_t max)
{
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(registry_dispatch_begin(w->reg, time(NULL), max, &js, &n), 0);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(js[i].state, STORE_STATE_DISPATCHING);
        if (ids) ids[i] = js[i].id;
    }
    free(js);
    return n;
}

/* One outcome; returns its rc. */
static int outcome(struct world *w, int64_t id, registry_outcome_kind kind, int64_t slurm_id)
{
    registry_outcome o = {.id = id, .kind = kind, .slurm_job_id = slurm_id};
    snprintf(o.reason, sizeof o.reason, "%s",
             kind == REGISTRY_REFUSED ? "Invalid account" : "Slurm unreachable");
    o.rc = 12345;
    assert_int_equal(registry_dispatch_outcomes(w->reg, &o, 1), 0);
    return o.rc;
}

/* A job of alice (1 GPU, 5 min) dispatched to Slurm as `slurm_id`; nothing else is queued. */
static int64_t dispatched_job(struct world *w, int64_t slurm_id)
{
    int64_t id = submit_ok(w, w->alice, "alice", 1, 5), got = 0;
    assert_int_equal(begin_all(w, &got, 1), 1);
    assert_int_equal(got, id);
    assert_int_equal(outcome(w, id, REGISTRY_SUBMITTED, slurm_id), 0);
    return id;
}

static registry_slurm_change slurm_change(int64_t id, int64_t slurm_id, const char *state,
                                          int64_t start, int64_t end)
{
    registry_slurm_change c;
    memset(&c, 0, sizeof c);
    c.id = id;
    c.slurm_job_id = slurm_id;
    snprintf(c.state, sizeof c.state, "%s", state);
    c.start_time = start;
    c.end_time = end;
    if (store_state_terminal(state)) {
        c.has_exit_code = true;
        c.exit_code = 0;
    }
    return c;
}

static void slurm_apply(struct world *w, registry_slurm_change *c)
{
    c->rc = 12345;
    assert_int_equal(registry_slurm_changes(w->reg, c, 1), 0);
    assert_int_equal(c->rc, 0);
}

/* --- submissions -------------------------------------------------------------------------------
 */

static void submit_commits_the_job_its_entry_and_queues_it_with_the_rendered_body(void **state)
{
    struct world *w = *state;
    registry_submit s;
    submit_init(&s, w->alice, "alice", 1, 5);
    assert_int_equal(registry_job_submit(w->reg, &WHO, &s), 0);
    assert_true(s.verdict.admitted);
    assert_false(s.replayed);
    assert_int_equal(s.status, 202);
    assert_true(s.job.id > 0);
    assert_string_equal(s.job.state, STORE_STATE_QUEUED);
    assert_string_equal(s.job.partner, "ulb");

    store_job j = job_get(w, s.job.id);
    assert_string_equal(j.state, STORE_STATE_QUEUED);
    assert_string_equal(j.user, "alice");
    assert_int_equal(j.gpus, 1);
    assert_int_equal(audit_count(w, "job.submitted", s.job.id), 1);
    assert_int_equal(audit_count(w, NULL, 0), 1);

    assert_int_equal(registry_queue_length(w->reg), 1);
    registry_live live;
    registry_job_live(w->reg, s.job.id, time(NULL), &live);
    assert_true(live.reason[0] != '\0');

    /* the body is render's, made from the new job inside the change */
    assert_non_null(s.body);
    char want[256];
    snprintf(want, sizeof want, "{\"job\":%lld,\"user\":\"alice\",\"state\":\"queued\",",
             (long long)s.job.id);
    assert_true(strncmp(s.body, want, strlen(want)) == 0);
    free(s.body);
}

static void submit_over_the_max_walltime_is_refused_with_only_a_job_refused_entry(void **state)
{
    struct world *w = *state;
    quota_set(w, "ulb", STORE_UNLIMITED, 60);
    size_t entries = audit_count(w, NULL, 0);
    registry_submit s;
    submit_init(&s, w->alice, "alice", 1, 61);
    assert_int_equal(registry_job_submit(w->reg, &WHO, &s), 0);
    assert_false(s.verdict.admitted);
    assert_string_equal(s.verdict.code, "walltime_limit");
    assert_null(s.body);
    assert_int_equal(job_count(w), 0);
    assert_int_equal(registry_queue_length(w->reg), 0);
    assert_int_equal(audit_count(w, NULL, 0), entries + 1);
    assert_int_equal(audit_count(w, "job.refused", 0), 1);
}

static void
submit_of_a_gpu_job_without_a_gpu_budget_is_refused_with_only_a_job_refused_entry(void **state)
{
    struct world *w = *state;
    policy_quota none, q;
    int64_t used = -1, held = -1, ucpu = -1, hcpu = -1;
    policy_quota_none(&none);
    assert_int_equal(registry_quota_usage(w->reg, "nob", w->period, &q, &used, &held, &ucpu, &hcpu),
                     0);
    assert_int_equal(q.gpu_seconds, none.gpu_seconds); /* nob never had a quota: no budget */

    registry_submit s;
    submit_init(&s, w->nina, "nina", 1, 5);
    assert_int_equal(registry_job_submit(w->reg, &WHO, &s), 0);
    assert_false(s.verdict.admitted);
    assert_string_equal(s.verdict.code, "budget_exceeded");
    assert_null(s.body);
    assert_int_equal(job_count(w), 0);
    assert_int_equal(registry_queue_length(w->reg), 0);
    assert_int_equal(audit_count(w, NULL, 0), 1);
    assert_int_equal(audit_count(w, "job.refused", 0), 1);
}

/* Neither the id nor the name is a user. */
static void submit_for_an_unknown_user_is_enoent_and_writes_nothing(void **state)
{
    struct world *w = *state;
    registry_submit s;
    submit_init(&s, 9999, "ghost", 1, 5);
    int rc = registry_job_submit(w->reg, &WHO, &s);
    if (rc == 0) print_error("admitted %d, code \"%s\"\n", s.verdict.admitted, s.verdict.code);
    free(s.body);
    assert_int_equal(rc, -ENOENT);
    assert_int_equal(job_count(w), 0);
    assert_int_equal(registry_queue_length(w->reg), 0);
    assert_int_equal(audit_count(w, NULL, 0), 0);
}

static void submit_for_an_unknown_user_id_is_enoent_and_writes_nothing(void **state)
{
    struct world *w = *state;
    registry_submit s;
    submit_init(&s, 9999, "alice", 1, 5);
    int rc = registry_job_submit(w->reg, &WHO, &s);
    free(s.body);
    assert_int_equal(rc, -ENOENT);
    assert_int_equal(job_count(w), 0);
    assert_int_equal(registry_queue_length(w->reg), 0);
    assert_int_equal(audit_count(w, NULL, 0), 0);
}

static void submit_for_an_unknown_user_name_is_enoent_and_writes_nothing(void **state)
{
    struct world *w = *state;
    registry_submit s;
    submit_init(&s, w->alice, "ghost", 1, 5);
    int rc = registry_job_submit(w->reg, &WHO, &s);
    if (rc == 0) print_error("admitted %d, code \"%s\"\n", s.verdict.admitted, s.verdict.code);
    free(s.body);
    assert_int_equal(rc, -ENOENT);
    assert_int_equal(job_count(w), 0);
    assert_int_equal(registry_queue_length(w->reg), 0);
    assert_int_equal(audit_count(w, NULL, 0), 0);
}

/* A change that fails after its audit entry was appended (here: render has no memory) leaves
 * nothing of itself, the entry included, so the head file must still match the chain. */
static void submit_failing_after_its_entry_leaves_a_chain_that_verifies(void **state)
{
    struct world *w = *state;
    submit_ok(w, w->alice, "alice", 1, 5); /* entry 1, committed, in the head file */
    registry_submit s;
    submit_init(&s, w->alice, "alice", 1, 5);
    s.render = render_nothing;
    assert_int_equal(registry_job_submit(w->reg, &WHO, &s), -ENOMEM);
    assert_null(s.body);
    assert_int_equal(job_count(w), 1);
    assert_int_equal(registry_queue_length(w->reg), 1);
    assert_int_equal(audit_count(w, NULL, 0), 1);

    audit_report rep;
    memset(&rep, 0, sizeof rep);
    assert_int_equal(audit_verify_open(w->au, &rep), 0);
    if (!rep.ok)
        print_error("audit_verify: %s (head says %lld)\n", rep.problem, (long long)rep.head_seq);
    assert_int_equal(rep.head_seq, 1);
    assert_true(rep.ok);
}

/* --- Idempotency-Key ---------------------------------------------------------------------------
 */

static int submit_keyed(struct world *w, int64_t user_id, const char *user, const char *key,
                        const char *hash, registry_submit *s)
{
    submit_init(s, user_id, user, 1, 5);
    s->idem_key = key;
    s->body_hash = hash;
    return registry_job_submit(w->reg, &WHO, s);
}

static void idem_same_key_and_body_replays_the_first_answer(void **state)
{
    struct world *w = *state;
    registry_submit a, b;
    assert_int_equal(submit_keyed(w, w->alice, "alice", "k-1", HASH_A, &a), 0);
    assert_true(a.verdict.admitted);
    assert_false(a.replayed);
    assert_int_equal(submit_keyed(w, w->alice, "alice", "k-1", HASH_A, &b), 0);
    assert_true(b.replayed);
    assert_int_equal(b.status, a.status);
    assert_int_equal(b.job.id, a.job.id);
    assert_non_null(a.body);
    assert_non_null(b.body);
    assert_string_equal(b.body, a.body);
    assert_int_equal(job_count(w), 1);
    assert_int_equal(registry_queue_length(w->reg), 1);
    assert_int_equal(audit_count(w, "job.submitted", 0), 1);
    free(a.body);
    free(b.body);
}

static void idem_same_key_other_body_is_eexist(void **state)
{
    struct world *w = *state;
    registry_submit a, b;
    assert_int_equal(submit_keyed(w, w->alice, "alice", "k-1", HASH_A, &a), 0);
    assert_int_equal(submit_keyed(w, w->alice, "alice", "k-1", HASH_B, &b), -EEXIST);
    assert_false(b.replayed);
    assert_null(b.body);
    assert_int_equal(job_count(w), 1);
    assert_int_equal(audit_count(w, NULL, 0), 1);
    free(a.body);
}

static void idem_same_key_of_two_users_makes_two_jobs(void **state)
{
    struct world *w = *state;
    registry_submit a, b;
    assert_int_equal(submit_keyed(w, w->alice, "alice", "k-1", HASH_A, &a), 0);
    assert_int_equal(submit_keyed(w, w->bob, "bob", "k-1", HASH_A, &b), 0);
    assert_false(a.replayed);
    assert_false(b.replayed);
    assert_true(a.job.id != b.job.id);
    assert_int_equal(job_count(w), 2);
    assert_int_equal(audit_count(w, "job.submitted", 0), 2);
    free(a.body);
    free(b.body);
}

#define IDEM_THREADS 8

struct keyed_call {
    struct world *w;
    pthread_barrier_t *go;
    registry_submit s;
    int rc;
};

static void *keyed_thread(void *arg)
{
    struct keyed_call *k = arg;
    pthread_barrier_wait(k->go);
    k->rc = submit_keyed(k->w, k->w->alice, "alice", "same-key", HASH_A, &k->s);
    return NULL;
}

static void idem_same_key_from_8_threads_makes_one_job_and_one_answer(void **state)
{
    struct world *w = *state;
    struct keyed_call k[IDEM_THREADS];
    pthread_t t[IDEM_THREADS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, IDEM_THREADS);
    for (int i = 0; i < IDEM_THREADS; i++) {
        memset(&k[i], 0, sizeof k[i]);
        k[i].w = w;
        k[i].go = &go;
        assert_int_equal(pthread_create(&t[i], NULL, keyed_thread, &k[i]), 0);
    }
    for (int i = 0; i < IDEM_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    int fresh = 0;
    for (int i = 0; i < IDEM_THREADS; i++) {
        assert_int_equal(k[i].rc, 0);
        assert_true(k[i].s.verdict.admitted);
        assert_non_null(k[i].s.body);
        assert_string_equal(k[i].s.body, k[0].s.body);
        assert_int_equal(k[i].s.job.id, k[0].s.job.id);
        assert_int_equal(k[i].s.status, 202);
        if (!k[i].s.replayed) fresh++;
    }
    assert_int_equal(fresh, 1);
    assert_int_equal(job_count(w), 1);
    assert_int_equal(registry_queue_length(w->reg), 1);
    assert_int_equal(audit_count(w, "job.submitted", 0), 1);
    for (int i = 0; i < IDEM_THREADS; i++)
        free(k[i].s.body);
}

/* --- group commit ------------------------------------------------------------------------------
 */

#define GC_THREADS 32
#define GC_EACH    50

struct gc_thread {
    struct world *w;
    pthread_barrier_t *go;
    int index;
    int failures;
    int first_error;
    int64_t ids[GC_EACH];
};

static void *gc_main(void *arg)
{
    struct gc_thread *g = arg;
    struct world *w = g->w;
    static const char *const names[] = {"alice", "bob", "victor"};
    int64_t uids[] = {w->alice, w->bob, w->victor};
    int u = g->index % 3;
    pthread_barrier_wait(g->go);
    for (int i = 0; i < GC_EACH; i++) {
        registry_submit s;
        submit_init(&s, uids[u], names[u], 1, 5);
        int rc = registry_job_submit(w->reg, &WHO, &s);
        if (rc != 0 || !s.verdict.admitted || s.body == NULL) {
            if (g->failures++ == 0) g->first_error = rc;
        }
        g->ids[i] = s.job.id;
        free(s.body);
    }
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void group_commit_of_32_threads_x_50_submissions_commits_all_and_verifies(void **state)
{
    struct world *w = *state;
    static struct gc_thread g[GC_THREADS];
    pthread_t t[GC_THREADS];
    pthread_barrier_t go;
    struct timespec t0, t1;
    pthread_barrier_init(&go, NULL, GC_THREADS + 1);
    for (int i = 0; i < GC_THREADS; i++) {
        memset(&g[i], 0, sizeof g[i]);
        g[i].w = w;
        g[i].go = &go;
        g[i].index = i;
        assert_int_equal(pthread_create(&t[i], NULL, gc_main, &g[i]), 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_barrier_wait(&go);
    for (int i = 0; i < GC_THREADS; i++)
        pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_barrier_destroy(&go);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("  %d submissions from %d threads in %.3f s (%.0f/s)\n", GC_THREADS * GC_EACH,
                  GC_THREADS, secs, (GC_THREADS * GC_EACH) / secs);

    const size_t total = GC_THREADS * GC_EACH;
    int64_t *all = malloc(total * sizeof *all);
    assert_non_null(all);
    for (int i = 0; i < GC_THREADS; i++) {
        if (g[i].failures)
            print_error("thread %d: %d failures, first rc %d\n", i, g[i].failures,
                        g[i].first_error);
        assert_int_equal(g[i].failures, 0);
        memcpy(all + (size_t)i * GC_EACH, g[i].ids, sizeof g[i].ids);
    }
    qsort(all, total, sizeof *all, cmp_id);
    for (size_t i = 0; i < total; i++) {
        assert_true(all[i] > 0);
        if (i > 0) assert_true(all[i] != all[i - 1]); /* ids are unique */
    }
    assert_int_equal(job_count(w), total);
    assert_int_equal(registry_queue_length(w->reg), total);

    /* every job has exactly one job.submitted entry */
    store_audit_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(w->st, 0, 0, NULL, "job.submitted", 0, &es, &n), 0);
    assert_int_equal(n, total);
    int64_t *seen = malloc(n * sizeof *seen);
    assert_non_null(seen);
    for (size_t i = 0; i < n; i++)
        seen[i] = entry_job(&es[i]);
    store_audit_entries_free(es, n);
    qsort(seen, n, sizeof *seen, cmp_id);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seen[i], all[i]);
    free(seen);
    free(all);

    audit_report rep;
    memset(&rep, 0, sizeof rep);
    assert_int_equal(audit_verify_open(w->au, &rep), 0);
    if (!rep.ok) print_error("audit_verify: %s\n", rep.problem);
    assert_true(rep.ok);
    assert_int_equal(rep.entries, total);
    assert_int_equal(rep.head_seq, total);
}

/* --- dispatch ----------------------------------------------------------------------------------
 */

static void dispatch_begin_moves_picked_jobs_with_a_hold_and_an_entry_each(void **state)
{
    struct world *w = *state;
    int64_t a = submit_ok(w, w->alice, "alice", 1, 5);
    int64_t b = submit_ok(w, w->bob, "bob", 2, 10);
    int64_t ids[4] = {0};
    assert_int_equal(begin_all(w, ids, 4), 2);
    assert_true((ids[0] == a && ids[1] == b) || (ids[0] == b && ids[1] == a));
    assert_int_equal(registry_queue_length(w->reg), 0);

    int64_t hold_a = policy_cost(1, 5 * 60, 1000), hold_b = policy_cost(2, 10 * 60, 1000);
    size_t rows = 0;
    assert_int_equal(ledger_sum(w, a, "hold", &rows), hold_a);
    assert_int_equal(rows, 1);
    assert_int_equal(ledger_sum(w, b, "hold", &rows), hold_b);
    assert_int_equal(rows, 1);
    store_job ja = job_get(w, a), jb = job_get(w, b);
    assert_string_equal(ja.state, STORE_STATE_DISPATCHING);
    assert_string_equal(jb.state, STORE_STATE_DISPATCHING);
    assert_int_equal(ja.hold_gpu_seconds, hold_a);
    assert_string_equal(ja.period, w->period);
    assert_int_equal(audit_count(w, "job.dispatching", a), 1);
    assert_int_equal(audit_count(w, "job.dispatching", b), 1);
    assert_int_equal(audit_count(w, "job.dispatching", 0), 2);

    policy_quota q;
    int64_t used = -1, held = -1, ucpu, hcpu;
    assert_int_equal(registry_quota_usage(w->reg, "ulb", w->period, &q, &used, &held, &ucpu, &hcpu),
                     0);
    assert_int_equal(used, 0);
    assert_int_equal(held, hold_a + hold_b);
}

static void dispatch_begin_skips_a_partner_over_its_gpu_cap(void **state)
{
    struct world *w = *state;
    quota_set(w, "ulb", 1, STORE_UNLIMITED);
    int64_t a1 = submit_ok(w, w->alice, "alice", 1, 5);
    int64_t a2 = submit_ok(w, w->alice, "alice", 1, 5);
    int64_t v = submit_ok(w, w->victor, "victor", 1, 5);
    int64_t ids[4] = {0};
    size_t n = begin_all(w, ids, 4);
    assert_int_equal(n, 2);
    bool got_v = false, got_a1 = false;
    for (size_t i = 0; i < n; i++) {
        assert_true(ids[i] != a2);
        got_v |= ids[i] == v;
        got_a1 |= ids[i] == a1;
    }
    assert_true(got_v);
    assert_true(got_a1);
    assert_string_equal(job_get(w, a2).state, STORE_STATE_QUEUED);
    assert_int_equal(ledger_sum(w, a2, "hold", NULL), 0);
    assert_int_equal(audit_count(w, "job.dispatching", a2), 0);
    assert_int_equal(registry_queue_length(w->reg), 1);
    registry_live live;
    registry_job_live(w->reg, a2, time(NULL), &live);
    assert_string_equal(live.reason, POLICY_REASON_PARTNER_GPU);
    /* and it stays put on the next dispatch step */
    assert_int_equal(begin_all(w, ids, 4), 0);
}

static void dispatch_begin_of_40_jobs_in_a_wide_window_moves_them_all(void **state)
{
    struct world *w = *state;
    assert_int_equal(registry_window_set(w->reg, 64), 0);
    for (int i = 0; i < 40; i++)
        submit_ok(w, i % 2 ? w->alice : w->victor, i % 2 ? "alice" : "victor", 1, 5);
    int64_t ids[64] = {0};
    assert_int_equal(begin_all(w, ids, 64), 40);
    qsort(ids, 40, sizeof ids[0], cmp_id);
    for (int i = 1; i < 40; i++)
        assert_true(ids[i] != ids[i - 1]);
    assert_int_equal(registry_queue_length(w->reg), 0);
    assert_int_equal(audit_count(w, "job.dispatching", 0), 40);
    size_t rows = 0;
    ledger_sum(w, 0, "hold", &rows);
    assert_int_equal(rows, 40);
}

static void outcome_submitted_makes_the_job_dispatched_with_its_slurm_id(void **state)
{
    struct world *w = *state;
    int64_t id = submit_ok(w, w->alice, "alice", 1, 5);
    assert_int_equal(begin_all(w, NULL, 4), 1);
    assert_int_equal(outcome(w, id, REGISTRY_SUBMITTED, 4242), 0);
    store_job j = job_get(w, id);
    assert_string_equal(j.state, STORE_STATE_DISPATCHED);
    assert_int_equal(j.slurm_job_id, 4242);
    assert_true(j.dispatched_at > 0);
    assert_int_equal(j.hold_gpu_seconds, policy_cost(1, 300, 1000)); /* still held */
    assert_int_equal(audit_count(w, "job.dispatched", id), 1);
}

static void outcome_refused_fails_the_job_and_releases_its_hold(void **state)
{
    struct world *w = *state;
    int64_t id = submit_ok(w, w->alice, "alice", 1, 5);
    assert_int_equal(begin_all(w, NULL, 4), 1);
    assert_int_equal(outcome(w, id, REGISTRY_REFUSED, 0), 0);
    store_job j = job_get(w, id);
    assert_string_equal(j.state, "failed");
    assert_string_equal(j.reason, "Invalid account");
    assert_int_equal(j.hold_gpu_seconds, 0);
    size_t holds = 0, releases = 0, charges = 0;
    int64_t hold = ledger_sum(w, id, "hold", &holds);
    int64_t release = ledger_sum(w, id, "release", &releases);
    assert_int_equal(holds, 1);
    assert_int_equal(releases, 1);
    assert_true(hold > 0);
    assert_int_equal(hold + release, 0);
    assert_int_equal(ledger_sum(w, id, "charge", &charges), 0);
    assert_int_equal(charges, 0);
    assert_int_equal(audit_count(w, "job.finished", id), 1);

    /* the engine no longer counts it: nothing held, nothing used, nothing queued */
    policy_quota q;
    int64_t used = -1, held = -1, ucpu, hcpu;
    assert_int_equal(registry_quota_usage(w->reg, "ulb", w->period, &q, &used, &held, &ucpu, &hcpu),
                     0);
    assert_int_equal(used, 0);
    assert_int_equal(held, 0);
    assert_int_equal(registry_queue_length(w->reg), 0);
    assert_int_equal(begin_all(w, NULL, 4), 0);
}

static void outcome_requeue_queues_the_job_again_for_the_next_pick(void **state)
{
    struct world *w = *state;
    int64_t id = submit_ok(w, w->alice, "alice", 1, 5);
    assert_int_equal(begin_all(w, NULL, 4), 1);
    assert_int_equal(outcome(w, id, REGISTRY_REQUEUE, 0), 0);
    store_job j = job_get(w, id);
    assert_string_equal(j.state, STORE_STATE_QUEUED);
    assert_int_equal(j.hold_gpu_seconds, 0);
    assert_int_equal(ledger_sum(w, id, "hold", NULL) + ledger_sum(w, id, "release", NULL), 0);
    assert_int_equal(audit_count(w, "job.requeued", id), 1);
    assert_int_equal(registry_queue_length(w->reg), 1);
    policy_quota q;
    int64_t used = -1, held = -1, ucpu, hcpu;
    assert_int_equal(registry_quota_usage(w->reg, "ulb", w->period, &q, &used, &held, &ucpu, &hcpu),
                     0);
    assert_int_equal(held, 0);

    int64_t again = 0;
    assert_int_equal(begin_all(w, &again, 4), 1);
    assert_int_equal(again, id);
    assert_int_equal(audit_count(w, "job.dispatching", id), 2);
    assert_int_equal(job_get(w, id).hold_gpu_seconds, policy_cost(1, 300, 1000));
}

static void outcome_for_a_job_not_dispatching_is_eagain_and_changes_nothing(void **state)
{
    struct world *w = *state;
    int64_t sent = dispatched_job(w, 4242);
    size_t entries = audit_count(w, NULL, 0);
    store_job before = job_get(w, sent);

    assert_int_equal(outcome(w, sent, REGISTRY_SUBMITTED, 9999), -EAGAIN);
    assert_int_equal(outcome(w, sent, REGISTRY_REFUSED, 0), -EAGAIN);
    assert_int_equal(outcome(w, sent, REGISTRY_REQUEUE, 0), -EAGAIN);
    store_job after = job_get(w, sent);
    assert_string_equal(after.state, before.state);
    assert_int_equal(after.slurm_job_id, 4242);
    assert_int_equal(after.hold_gpu_seconds, before.hold_gpu_seconds);
    assert_int_equal(audit_count(w, NULL, 0), entries);
    assert_int_equal(ledger_sum(w, sent, "release", NULL), 0);
}

/* --- Slurm changes -----------------------------------------------------------------------------
 */

static void slurm_pending_then_running_is_audited_job_started(void **state)
{
    struct world *w = *state;
    int64_t id = dispatched_job(w, 4242);
    int64_t t = time(NULL) - 10;
    registry_slurm_change c = slurm_change(id, 4242, "pending", 0, 0);
    slurm_apply(w, &c);
    assert_false(c.finished);
    assert_string_equal(job_get(w, id).state, "pending");
    assert_int_equal(audit_count(w, "job.started", id), 0);

    c = slurm_change(id, 4242, "running", t, 0);
    slurm_apply(w, &c);
    assert_false(c.finished);
    store_job j = job_get(w, id);
    assert_string_equal(j.state, "running");
    assert_int_equal(j.started_at, t);
    assert_int_equal(audit_count(w, "job.started", id), 1);
    assert_int_equal(audit_count(w, "job.finished", id), 0);
}

static void slurm_completed_charges_its_elapsed_time_and_releases_its_hold(void **state)
{
    struct world *w = *state;
    int64_t id = dispatched_job(w, 4242);
    int64_t t = time(NULL) - 200;
    registry_slurm_change c = slurm_change(id, 4242, "running", t, 0);
    slurm_apply(w, &c);
    c = slurm_change(id, 4242, "completed", t, t + 100);
    slurm_apply(w, &c);

    int64_t want_gpu = 0, want_cpu = 0;
    int weight = registry_gpu_weight(w->reg, "h100");
    assert_int_equal(weight, 1000);
    policy_charge(1, 2, 5, weight, 100, &want_gpu, &want_cpu);
    assert_true(c.finished);
    assert_int_equal(c.charge_gpu_seconds, want_gpu);
    assert_int_equal(c.charge_cpu_seconds, want_cpu);

    store_job j = job_get(w, id);
    assert_string_equal(j.state, "completed");
    assert_int_equal(j.started_at, t);
    assert_int_equal(j.ended_at, t + 100);
    assert_int_equal(j.charge_gpu_seconds, want_gpu);
    assert_int_equal(j.hold_gpu_seconds, 0);
    size_t charges = 0;
    assert_int_equal(ledger_sum(w, id, "charge", &charges), want_gpu);
    assert_int_equal(charges, 1);
    assert_int_equal(ledger_sum(w, id, "hold", NULL) + ledger_sum(w, id, "release", NULL), 0);
    assert_int_equal(audit_count(w, "job.finished", id), 1);

    policy_quota q;
    int64_t used = -1, held = -1, ucpu = -1, hcpu = -1;
    assert_int_equal(registry_quota_usage(w->reg, "ulb", w->period, &q, &used, &held, &ucpu, &hcpu),
                     0);
    assert_int_equal(used, want_gpu);
    assert_int_equal(held, 0);
    assert_int_equal(ucpu, want_cpu);
    assert_int_equal(hcpu, 0);
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

static void slurm_requeue_charges_each_run_once_and_keeps_the_hold_between(void **state)
{
    struct world *w = *state;
    int64_t id = dispatched_job(w, 4242);
    int64_t t = time(NULL) - 1000;
    registry_slurm_change c = slurm_change(id, 4242, "running", t, 0);
    slurm_apply(w, &c);
    /* Slurm requeued it after 100 s: it waits in Slurm again */
    c = slurm_change(id, 4242, "pending", 0, 0);
    c.runs_ended = 1;
    c.run_start = t;
    c.run_end = t + 100;
    slurm_apply(w, &c);
    assert_false(c.finished);
    assert_false(c.over_budget);
    int weight = registry_gpu_weight(w->reg, "h100");
    int64_t run1 = 0, run1_cpu = 0, run2 = 0, run2_cpu = 0;
    policy_charge(1, 2, 5, weight, 100, &run1, &run1_cpu);
    store_job j = job_get(w, id);
    assert_string_equal(j.state, "pending");
    assert_int_equal(j.restarts, 1);
    assert_int_equal(j.started_at, 0);
    assert_int_equal(j.charge_gpu_seconds, run1);
    assert_true(j.hold_gpu_seconds > 0);
    assert_int_equal(audit_count(w, "job.run_requeued", id), 1);
    policy_quota q;
    int64_t used = -1, held = -1, ucpu, hcpu;
    assert_int_equal(registry_quota_usage(w->reg, "ulb", w->period, &q, &used, &held, &ucpu, &hcpu),
                     0);
    assert_int_equal(used, run1);
    assert_int_equal(held, j.hold_gpu_seconds);

    /* its second run, 50 s, and its end */
    c = slurm_change(id, 4242, "running", t + 300, 0);
    slurm_apply(w, &c);
    assert_int_equal(audit_count(w, "job.started", id), 2);
    c = slurm_change(id, 4242, "completed", t + 300, t + 350);
    slurm_apply(w, &c);
    assert_true(c.finished);
    policy_charge(1, 2, 5, weight, 50, &run2, &run2_cpu);
    j = job_get(w, id);
    assert_string_equal(j.state, "completed");
    assert_int_equal(j.started_at, t + 300);
    assert_int_equal(prior_run_seconds(w->st, id), 100);
    assert_int_equal(j.charge_gpu_seconds, run1 + run2);
    assert_int_equal(j.charge_cpu_seconds, run1_cpu + run2_cpu);
    size_t charges = 0;
    assert_int_equal(ledger_sum(w, id, "charge", &charges), run1 + run2);
    assert_int_equal(charges, 2);
    assert_int_equal(ledger_sum(w, id, "hold", NULL) + ledger_sum(w, id, "release", NULL), 0);
    assert_int_equal(registry_quota_usage(w->reg, "ulb", w->period, &q, &used, &held, &ucpu, &hcpu),
                     0);
    assert_int_equal(used, run1 + run2);
    assert_int_equal(held, 0);
    assert_int_equal(ucpu, run1_cpu + run2_cpu);
}

static void slurm_requeue_seen_already_running_again_starts_the_next_run(void **state)
{
    struct world *w = *state;
    int64_t id = dispatched_job(w, 4242);
    int64_t t = time(NULL) - 1000;
    registry_slurm_change c = slurm_change(id, 4242, "running", t, 0);
    slurm_apply(w, &c);
    /* requeued and started over between two looks */
    c = slurm_change(id, 4242, "running", t + 200, 0);
    c.runs_ended = 1;
    c.run_start = t;
    c.run_end = t + 60;
    slurm_apply(w, &c);
    store_job j = job_get(w, id);
    assert_string_equal(j.state, "running");
    assert_int_equal(j.started_at, t + 200);
    assert_int_equal(j.restarts, 1);
    assert_int_equal(audit_count(w, "job.started", id), 2);
    c = slurm_change(id, 4242, "completed", t + 200, t + 210);
    slurm_apply(w, &c);
    int64_t want1 = 0, want2 = 0;
    int weight = registry_gpu_weight(w->reg, "h100");
    policy_charge(1, 2, 5, weight, 60, &want1, NULL);
    policy_charge(1, 2, 5, weight, 10, &want2, NULL);
    assert_int_equal(job_get(w, id).charge_gpu_seconds, want1 + want2);
}

static void slurm_requeue_past_the_budget_asks_for_the_job_to_end(void **state)
{
    struct world *w = *state;
    int64_t id = dispatched_job(w, 4242); /* 1 GPU, 5 min: a hold of 300 GPU-s */
    store_quota q = {.gpu_seconds = 400,
                     .cpu_seconds = STORE_UNLIMITED,
                     .max_gpus = STORE_UNLIMITED,
                     .max_running_jobs = STORE_UNLIMITED,
                     .max_queued_jobs = STORE_UNLIMITED,
                     .max_walltime_minutes = STORE_UNLIMITED,
                     .user_max_gpus = STORE_UNLIMITED};
    snprintf(q.partner, sizeof q.partner, "ulb");
    snprintf(q.period, sizeof q.period, "%s", w->period);
    assert_int_equal(registry_quota_set(w->reg, &WHO, &q), 0);
    int64_t t = time(NULL) - 1000;
    registry_slurm_change c = slurm_change(id, 4242, "running", t, 0);
    slurm_apply(w, &c);
    c = slurm_change(id, 4242, "pending", 0, 0);
    c.runs_ended = 1;
    c.run_start = t;
    c.run_end = t + 150; /* used 150 + held 300 > 400 */
    slurm_apply(w, &c);
    assert_true(c.over_budget);
    store_job j = job_get(w, id);
    assert_int_equal(j.restarts, 1);
    assert_true(j.cancel_requested); /* a restart sends the cancel again */
}

static void slurm_second_terminal_change_changes_nothing(void **state)
{
    struct world *w = *state;
    int64_t id = dispatched_job(w, 4242);
    int64_t t = time(NULL) - 200;
    registry_slurm_change c = slurm_change(id, 4242, "running", t, 0);
    slurm_apply(w, &c);
    c = slurm_change(id, 4242, "completed", t, t + 100);
    slurm_apply(w, &c);
    assert_true(c.finished);
    size_t entries = audit_count(w, NULL, 0);
    store_job before = job_get(w, id);

    c = slurm_change(id, 4242, "completed", t, t + 100);
    slurm_apply(w, &c);
    assert_false(c.finished);
    c = slurm_change(id, 4242, "failed", t, t + 150); /* nor a different one */
    slurm_apply(w, &c);
    assert_false(c.finished);

    size_t charges = 0;
    assert_int_equal(ledger_sum(w, id, "charge", &charges), before.charge_gpu_seconds);
    assert_int_equal(charges, 1);
    assert_int_equal(audit_count(w, NULL, 0), entries);
    store_job after = job_get(w, id);
    assert_string_equal(after.state, "completed");
    assert_int_equal(after.ended_at, before.ended_at);
    policy_quota q;
    int64_t used = -1, held = -1, ucpu, hcpu;
    assert_int_equal(registry_quota_usage(w->reg, "ulb", w->period, &q, &used, &held, &ucpu, &hcpu),
                     0);
    assert_int_equal(used, before.charge_gpu_seconds);
    assert_int_equal(held, 0);
}

static void slurm_lost_job_is_lost_charged_its_full_hold_and_audited_with_why(void **state)
{
    struct world *w = *state;
    int64_t id = dispatched_job(w, 4242); /* 1 GPU for 5 minutes */
    registry_slurm_change c = slurm_change(id, 4242, "running", time(NULL) - 100, 0);
    slurm_apply(w, &c);
    c = slurm_change(id, 4242, "", 0, 0);
    c.lost = true;
    snprintf(c.reason, sizeof c.reason, "nobody knows it: charged its full hold");
    slurm_apply(w, &c);
    assert_true(c.finished);
    assert_int_equal(c.charge_gpu_seconds, 5 * 60);
    store_job j = job_get(w, id);
    assert_string_equal(j.state, "lost");
    assert_string_equal(j.reason, "nobody knows it: charged its full hold");
    assert_int_equal(j.charge_gpu_seconds, 5 * 60);
    assert_int_equal(j.hold_gpu_seconds, 0);
    size_t charges = 0;
    assert_int_equal(ledger_sum(w, id, "charge", &charges), 5 * 60);
    assert_int_equal(charges, 1);
    assert_int_equal(ledger_sum(w, id, "hold", NULL) + ledger_sum(w, id, "release", NULL), 0);
    assert_int_equal(audit_count(w, "job.finished", id), 1);
    store_audit_entry *es = NULL;
    size_t n = 0;
    bool why = false;
    assert_int_equal(store_audit_list(w->st, 0, 0, NULL, "job.finished", 0, &es, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (entry_job(&es[i]) == id && strstr(es[i].details, "\"reason\":\"nobody knows it"))
            why = true;
    store_audit_entries_free(es, n);
    assert_true(why);
    policy_quota q;
    int64_t used = -1, held = -1, ucpu, hcpu;
    assert_int_equal(registry_quota_usage(w->reg, "ulb", w->period, &q, &used, &held, &ucpu, &hcpu),
                     0);
    assert_int_equal(used, 5 * 60);
    assert_int_equal(held, 0);
}

/* --- cancel ------------------------------------------------------------------------------------
 */

static void cancel_of_a_queued_job_cancels_it_at_once_and_leaves_the_queue(void **state)
{
    struct world *w = *state;
    int64_t keep = submit_ok(w, w->alice, "alice", 1, 5);
    int64_t id = submit_ok(w, w->alice, "alice", 1, 5);
    assert_int_equal(registry_queue_length(w->reg), 2);
    bool now = false;
    store_job out;
    memset(&out, 0, sizeof out);
    assert_int_equal(registry_job_cancel(w->reg, &WHO, id, &now, &out), 0);
    assert_true(now);
    assert_int_equal(out.id, id);
    assert_string_equal(out.state, "cancelled");
    assert_string_equal(job_get(w, id).state, "cancelled");
    assert_string_equal(job_get(w, keep).state, STORE_STATE_QUEUED);
    assert_int_equal(registry_queue_length(w->reg), 1);
    registry_live live;
    registry_job_live(w->reg, id, time(NULL), &live);
    assert_string_equal(live.reason, "");
    assert_int_equal(audit_count(w, "job.cancel_requested", id), 1);
    assert_int_equal(audit_count(w, "job.cancel_requested", 0), 1);
    int64_t got = 0;
    assert_int_equal(begin_all(w, &got, 4), 1); /* the cancelled one is never picked */
    assert_int_equal(got, keep);
}

static void cancel_of_a_terminal_job_is_ealready(void **state)
{
    struct world *w = *state;
    int64_t id = submit_ok(w, w->alice, "alice", 1, 5);
    bool now = false;
    assert_int_equal(registry_job_cancel(w->reg, &WHO, id, &now, NULL), 0);
    size_t entries = audit_count(w, NULL, 0);
    now = true;
    assert_int_equal(registry_job_cancel(w->reg, &WHO, id, &now, NULL), -EALREADY);
    assert_int_equal(audit_count(w, NULL, 0), entries);
    assert_int_equal(audit_count(w, "job.cancel_requested", id), 1);
    assert_string_equal(job_get(w, id).state, "cancelled");
}

/* --- partners, users, quotas, tokens -----------------------------------------------------------
 */

/* Exactly one new entry since `before` entries, of `action`. */
static void assert_one_new_entry(struct world *w, size_t before, const char *action)
{
    assert_int_equal(audit_count(w, NULL, 0), before + 1);
    store_audit_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(w->st, (int64_t)before, 0, NULL, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(es[0].action, action);
    assert_string_equal(es[0].actor, "tester");
    store_audit_entries_free(es, n);
}

static void partner_create_is_audited_partner_created(void **state)
{
    struct world *w = *state;
    store_partner p;
    assert_int_equal(registry_partner_create(w->reg, &WHO, "kul", "Leuven", 2, &p), 0);
    assert_string_equal(p.name, "kul");
    assert_int_equal(p.share_weight, 2);
    assert_one_new_entry(w, 0, "partner.created");
    store_partner got;
    assert_int_equal(store_partner_get(w->st, "kul", &got), 0);
    /* the engine knows it too: a quota for it reads back */
    policy_quota q;
    int64_t used, held, ucpu, hcpu;
    assert_int_equal(registry_quota_usage(w->reg, "kul", w->period, &q, &used, &held, &ucpu, &hcpu),
                     0);
}

static void partner_create_duplicate_is_eexist_and_not_audited(void **state)
{
    struct world *w = *state;
    assert_int_equal(registry_partner_create(w->reg, &WHO, "ulb", "again", 1, NULL), -EEXIST);
    assert_int_equal(audit_count(w, NULL, 0), 0);
    store_partner got;
    assert_int_equal(store_partner_get(w->st, "ulb", &got), 0);
    assert_string_equal(got.description, "Brussels");
}

static void partner_update_is_audited_partner_changed(void **state)
{
    struct world *w = *state;
    store_partner p;
    assert_int_equal(registry_partner_update(w->reg, &WHO, "ulb", "ULB", 3, &p), 0);
    assert_string_equal(p.description, "ULB");
    assert_int_equal(p.share_weight, 3);
    assert_one_new_entry(w, 0, "partner.changed");
    assert_int_equal(registry_partner_update(w->reg, &WHO, "nobody", "x", 1, NULL), -ENOENT);
    assert_int_equal(audit_count(w, NULL, 0), 1);
}

static void user_create_is_audited_user_created(void **state)
{
    struct world *w = *state;
    store_user u;
    assert_int_equal(
        registry_user_create(w->reg, &WHO, "carol", "vub", "acct-vub", "user", "institution", &u),
        0);
    assert_true(u.id > 0);
    assert_string_equal(u.partner, "vub");
    assert_one_new_entry(w, 0, "user.created");
    /* the engine knows her: her submission is admitted */
    submit_ok(w, u.id, "carol", 1, 5);
}

static void quota_set_is_audited_quota_set(void **state)
{
    struct world *w = *state;
    quota_set(w, "nob", STORE_UNLIMITED, STORE_UNLIMITED);
    assert_one_new_entry(w, 0, "quota.set");
    store_quota got;
    assert_int_equal(store_quota_get(w->st, "nob", w->period, &got), 0);
    assert_int_equal(got.gpu_seconds, 100 * 3600);
    policy_quota q;
    int64_t used, held, ucpu, hcpu;
    assert_int_equal(registry_quota_usage(w->reg, "nob", w->period, &q, &used, &held, &ucpu, &hcpu),
                     0);
    assert_int_equal(q.gpu_seconds, 100 * 3600);
}

static void token_create_is_audited_token_created(void **state)
{
    struct world *w = *state;
    int64_t id = 0;
    assert_int_equal(registry_token_create(w->reg, &WHO, w->alice, "ulb", HASH_A, "laptop", &id),
                     0);
    assert_true(id > 0);
    assert_one_new_entry(w, 0, "token.created");
    store_user u;
    assert_int_equal(store_token_lookup(w->st, HASH_A, &u), 0);
    assert_string_equal(u.name, "alice");
}

static void token_revoke_is_audited_token_revoked(void **state)
{
    struct world *w = *state;
    int64_t id = 0;
    assert_int_equal(registry_token_create(w->reg, &WHO, w->alice, "ulb", HASH_A, "laptop", &id),
                     0);
    assert_int_equal(registry_token_revoke(w->reg, &WHO, id), 0);
    assert_one_new_entry(w, 1, "token.revoked");
    store_user u;
    assert_int_equal(store_token_lookup(w->st, HASH_A, &u), -ENOENT);
    assert_int_equal(registry_token_revoke(w->reg, &WHO, id), -ENOENT);
    assert_int_equal(audit_count(w, NULL, 0), 2);
}

static void token_check_knows_a_new_token_and_a_revoked_one_no_longer_authenticates(void **state)
{
    struct world *w = *state;
    int64_t id = 0;
    store_user u;
    assert_int_equal(registry_token_check(w->reg, HASH_A, time(NULL), &u), -ENOENT);
    assert_int_equal(registry_token_create(w->reg, &WHO, w->alice, "ulb", HASH_A, "laptop", &id),
                     0);
    assert_int_equal(registry_token_check(w->reg, HASH_A, time(NULL), &u), 0);
    assert_string_equal(u.name, "alice");
    assert_string_equal(u.unix_user, "nobody");
    assert_int_equal(registry_token_revoke(w->reg, &WHO, id), 0);
    assert_int_equal(registry_token_check(w->reg, HASH_A, time(NULL), &u), -ENOENT);
    assert_int_equal(registry_token_check(w->reg, "nonsense", time(NULL), &u), -ENOENT);
}

static void token_check_refuses_an_expired_token_with_ekeyexpired(void **state)
{
    struct world *w = *state;
    int64_t id = 0, now = time(NULL);
    store_user u;
    assert_int_equal(
        registry_token_issue(w->reg, &WHO, w->alice, "ulb", HASH_A, "short", now + 60, &id), 0);
    assert_int_equal(registry_token_check(w->reg, HASH_A, now + 59, &u), 0);
    assert_int_equal(registry_token_check(w->reg, HASH_A, now + 60, &u), -EKEYEXPIRED);
    assert_string_equal(u.name, "alice");
    store_token t;
    assert_int_equal(store_token_get(w->st, id, &t), 0);
    assert_int_equal(t.expires_at, now + 60);
}

static void
token_check_of_a_disabled_user_is_eacces_at_once_and_works_again_once_enabled(void **state)
{
    struct world *w = *state;
    int64_t id = 0;
    store_user u;
    assert_int_equal(registry_token_create(w->reg, &WHO, w->alice, "ulb", HASH_A, "laptop", &id),
                     0);
    assert_int_equal(registry_user_update(w->reg, &WHO, "alice", NULL, 1, &u), 0);
    assert_true(u.disabled);
    assert_one_new_entry(w, 1, "user.disabled");
    assert_int_equal(registry_token_check(w->reg, HASH_A, time(NULL), &u), -EACCES);
    assert_int_equal(registry_user_update(w->reg, &WHO, "alice", NULL, 0, &u), 0);
    assert_one_new_entry(w, 2, "user.enabled");
    assert_int_equal(registry_token_check(w->reg, HASH_A, time(NULL), &u), 0);
    assert_false(u.disabled);
}

static void token_table_is_loaded_at_open_with_expiry_and_disabled_users(void **state)
{
    struct world *w = *state;
    int64_t now = time(NULL);
    store_user u;
    assert_int_equal(registry_token_issue(w->reg, &WHO, w->alice, "ulb", HASH_A, "a", 0, NULL), 0);
    assert_int_equal(
        registry_token_issue(w->reg, &WHO, w->victor, "vub", HASH_B, "b", now + 30, NULL), 0);
    assert_int_equal(registry_user_update(w->reg, &WHO, "alice", NULL, 1, NULL), 0);
    registry_free(w->reg);
    policy_config pc;
    policy_config_defaults(&pc);
    registry_options ro = {.policy = &pc, .audit = w->au};
    char err[256];
    assert_int_equal(registry_new(w->st, &ro, &w->reg, err, sizeof err), 0);
    assert_int_equal(registry_token_check(w->reg, HASH_A, now, &u), -EACCES);
    assert_int_equal(registry_token_check(w->reg, HASH_B, now, &u), 0);
    assert_string_equal(u.name, "victor");
    assert_int_equal(registry_token_check(w->reg, HASH_B, now + 30, &u), -EKEYEXPIRED);
}

static void token_table_grown_past_its_first_size_finds_each_token(void **state)
{
    struct world *w = *state;
    char hash[65];
    store_user u;
    for (int i = 0; i < 1100; i++) {
        snprintf(hash, sizeof hash, "%064x", i);
        assert_int_equal(registry_token_create(w->reg, &WHO, w->bob, "ulb", hash, "", NULL), 0);
    }
    for (int i = 0; i < 1100; i++) {
        snprintf(hash, sizeof hash, "%064x", i);
        assert_int_equal(registry_token_check(w->reg, hash, time(NULL), &u), 0);
        assert_string_equal(u.name, "bob");
    }
}

static void user_mapping_change_is_audited_with_the_old_and_new_account(void **state)
{
    struct world *w = *state;
    store_user u;
    store_audit_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(registry_user_update(w->reg, &WHO, "alice", "acct-ulb", -1, &u), 0);
    assert_string_equal(u.unix_user, "acct-ulb");
    assert_one_new_entry(w, 0, "user.mapping_changed");
    assert_int_equal(store_audit_list(w->st, 0, 0, NULL, "user.mapping_changed", 10, &es, &n), 0);
    assert_int_equal(n, 1);
    assert_non_null(strstr(es[0].details, "\"old_unix_user\":\"nobody\""));
    assert_non_null(strstr(es[0].details, "\"new_unix_user\":\"acct-ulb\""));
    store_audit_entries_free(es, n);
    /* the token table follows the new mapping */
    assert_int_equal(registry_token_create(w->reg, &WHO, w->alice, "ulb", HASH_A, "", NULL), 0);
    assert_int_equal(registry_user_update(w->reg, &WHO, "alice", "acct-ulb2", -1, NULL), 0);
    assert_int_equal(registry_token_check(w->reg, HASH_A, time(NULL), &u), 0);
    assert_string_equal(u.unix_user, "acct-ulb2");
}

static void user_mapped_to_another_partners_account_is_enotuniq_and_not_audited(void **state)
{
    struct world *w = *state;
    store_user u;
    /* victor (vub) has acct-vub: no user of ulb may take it */
    assert_int_equal(registry_user_update(w->reg, &WHO, "alice", "acct-vub", -1, &u), -ENOTUNIQ);
    assert_int_equal(
        registry_user_create(w->reg, &WHO, "carol", "ulb", "acct-vub", "user", "sme", &u),
        -ENOTUNIQ);
    assert_int_equal(audit_count(w, NULL, 0), 0);
    /* a user of the same partner may share it */
    assert_int_equal(
        registry_user_create(w->reg, &WHO, "vera", "vub", "acct-vub", "user", "sme", &u), 0);
}

static void user_update_of_an_unknown_user_is_enoent(void **state)
{
    struct world *w = *state;
    assert_int_equal(registry_user_update(w->reg, &WHO, "ghost", NULL, 1, NULL), -ENOENT);
    assert_int_equal(audit_count(w, NULL, 0), 0);
}

/* --- a full disk -------------------------------------------------------------------------------
 */

/* Fills the file system of `path` with one file until not a byte more fits. */
static void fill_disk(const char *path)
{
    static char buf[64 * 1024];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    size_t chunk = sizeof buf;
    while (chunk > 0) {
        ssize_t k = write(fd, buf, chunk);
        if (k < 0) {
            assert_int_equal(errno, ENOSPC);
            chunk /= 2;
        }
    }
    close(fd);
}

static void full_disk_submit_is_enospc_in_health_and_recovers_once_freed(void **state)
{
    struct world *w = *state;
    if (w->st == NULL) {
        print_message("skipped: a full disk needs root and a tmpfs mount (mount -t tmpfs), "
                      "not available here\n");
        skip();
    }
    char why[256] = "x";
    submit_ok(w, w->alice, "alice", 1, 5);
    assert_int_equal(registry_health(w->reg, why, sizeof why), 0);
    assert_string_equal(why, "");
    /* the log out of the way, so that the next commit must grow it */
    assert_int_equal(registry_housekeep(w->reg, time(NULL)), 0);
    size_t jobs = job_count(w), queued = registry_queue_length(w->reg);
    size_t entries = audit_count(w, NULL, 0);

    char filler[128];
    snprintf(filler, sizeof filler, "%s/filler", w->dir);
    fill_disk(filler);

    registry_submit s;
    submit_init(&s, w->alice, "alice", 1, 5);
    assert_int_equal(registry_job_submit(w->reg, &WHO, &s), -ENOSPC);
    assert_null(s.body);
    int h = registry_health(w->reg, why, sizeof why);
    print_message("  health %d: %s\n", h, why);
    assert_int_equal(h, -ENOSPC);
    assert_true(why[0] != '\0');
    assert_int_equal(registry_queue_length(w->reg), queued);
    assert_int_equal(job_count(w), jobs);
    assert_int_equal(audit_count(w, NULL, 0), entries);

    assert_int_equal(unlink(filler), 0);
    submit_ok(w, w->alice, "alice", 1, 5);
    assert_int_equal(registry_health(w->reg, why, sizeof why), 0);
    assert_string_equal(why, "");
    assert_int_equal(job_count(w), jobs + 1);
    assert_int_equal(registry_queue_length(w->reg), queued + 1);
    audit_report rep;
    memset(&rep, 0, sizeof rep);
    assert_int_equal(audit_verify_open(w->au, &rep), 0);
    if (!rep.ok) print_error("audit_verify: %s\n", rep.problem);
    assert_true(rep.ok);
}

/* --- registry_free with changes in flight ------------------------------------------------------
 */

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, open;
};

/* A render that holds the committer inside its batch until the gate opens. */
static char *render_gated(const store_job *j, const registry_live *live, void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return render_body(j, live, NULL);
}

/* One call from a thread of its own. */
struct flight {
    struct world *w;
    registry *reg;
    struct gate *gate; /* the gated submission only */
    bool no_memory;    /* a submission whose render fails */
    int64_t user_id;   /* 0 = alice */
    const char *user;
    int rc;
    int64_t id; /* the job submitted */
    bool returned;
    pthread_mutex_t *mu;
};

static void *flight_submit(void *arg)
{
    struct flight *f = arg;
    registry_submit s;
    submit_init(&s, f->user_id ? f->user_id : f->w->alice, f->user ? f->user : "alice", 1, 5);
    if (f->gate) {
        s.render = render_gated;
        s.render_arg = f->gate;
    }
    if (f->no_memory) s.render = render_nothing;
    int rc = registry_job_submit(f->reg, &WHO, &s);
    free(s.body);
    pthread_mutex_lock(f->mu);
    f->rc = rc;
    f->id = s.job.id;
    f->returned = true;
    pthread_mutex_unlock(f->mu);
    return NULL;
}

static void *flight_audit(void *arg)
{
    struct flight *f = arg;
    int rc = registry_audit(f->reg, &WHO, "test.inflight", "{\"n\":1}");
    pthread_mutex_lock(f->mu);
    f->rc = rc;
    f->returned = true;
    pthread_mutex_unlock(f->mu);
    return NULL;
}

static void *flight_free(void *arg)
{
    registry_free(arg);
    return NULL;
}

static bool flight_returned(struct flight *f)
{
    pthread_mutex_lock(f->mu);
    bool r = f->returned;
    pthread_mutex_unlock(f->mu);
    return r;
}

static void gate_wait_entered(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* While the committer is held in one batch, three changes queue up behind it and make the next
 * batch together: a submission, one that fails (render out of memory), an audit entry. */
static void batch_change_that_fails_leaves_the_others_of_its_batch_committed(void **state)
{
    struct world *w = *state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    struct gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct flight held = {.w = w, .reg = w->reg, .gate = &g, .mu = &mu};
    struct flight x = {.w = w, .reg = w->reg, .user_id = w->bob, .user = "bob", .mu = &mu};
    struct flight y = {.w = w,
                       .reg = w->reg,
                       .user_id = w->victor,
                       .user = "victor",
                       .no_memory = true,
                       .mu = &mu};
    struct flight z = {.w = w, .reg = w->reg, .mu = &mu};
    pthread_t th, tx, ty, tz;
    assert_int_equal(pthread_create(&th, NULL, flight_submit, &held), 0);
    gate_wait_entered(&g);
    assert_int_equal(pthread_create(&tx, NULL, flight_submit, &x), 0);
    usleep(50 * 1000);
    assert_int_equal(pthread_create(&ty, NULL, flight_submit, &y), 0);
    usleep(50 * 1000);
    assert_int_equal(pthread_create(&tz, NULL, flight_audit, &z), 0);
    usleep(50 * 1000);
    gate_open(&g);
    pthread_join(th, NULL);
    pthread_join(tx, NULL);
    pthread_join(ty, NULL);
    pthread_join(tz, NULL);

    assert_int_equal(held.rc, 0);
    assert_int_equal(x.rc, 0);
    assert_int_equal(y.rc, -ENOMEM);
    assert_int_equal(z.rc, 0);
    assert_int_equal(job_count(w), 2);
    assert_string_equal(job_get(w, x.id).user, "bob");
    store_job *vs = NULL;
    size_t nv = 0;
    assert_int_equal(store_job_list(w->st, w->victor, NULL, 0, &vs, &nv), 0);
    free(vs);
    assert_int_equal(nv, 0);
    assert_int_equal(registry_queue_length(w->reg), 2);
    assert_int_equal(audit_count(w, "job.submitted", 0), 2);
    assert_int_equal(audit_count(w, "test.inflight", 0), 1);
    assert_int_equal(audit_count(w, NULL, 0), 3);
    audit_report rep;
    memset(&rep, 0, sizeof rep);
    assert_int_equal(audit_verify_open(w->au, &rep), 0);
    if (!rep.ok) print_error("audit_verify: %s\n", rep.problem);
    assert_true(rep.ok);
}

#define IN_FLIGHT 16

static void free_with_changes_in_flight_completes_them_or_shuts_them_down(void **state)
{
    struct world *w = *state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    struct gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    registry *reg = w->reg;
    struct flight gated = {.w = w, .reg = reg, .gate = &g, .mu = &mu};
    struct flight fl[IN_FLIGHT], late = {.w = w, .reg = reg, .mu = &mu};
    pthread_t tg, tf, tl, t[IN_FLIGHT];

    /* the committer is held inside a batch */
    assert_int_equal(pthread_create(&tg, NULL, flight_submit, &gated), 0);
    gate_wait_entered(&g);
    /* changes handed over behind it: half submissions, half audit entries */
    for (int i = 0; i < IN_FLIGHT; i++) {
        fl[i] = (struct flight){.w = w, .reg = reg, .mu = &mu};
        assert_int_equal(pthread_create(&t[i], NULL, i % 2 ? flight_audit : flight_submit, &fl[i]),
                         0);
    }
    usleep(100 * 1000);
    /* registry_free starts, and waits for the held batch */
    w->reg = NULL; /* teardown must not free it again */
    assert_int_equal(pthread_create(&tf, NULL, flight_free, reg), 0);
    usleep(100 * 1000);
    /* a change handed over now fails at once */
    assert_int_equal(pthread_create(&tl, NULL, flight_audit, &late), 0);
    for (int i = 0; i < 200 && !flight_returned(&late); i++)
        usleep(10 * 1000);
    bool late_at_once = flight_returned(&late);

    gate_open(&g);
    pthread_join(tf, NULL);
    pthread_join(tg, NULL);
    pthread_join(tl, NULL);
    for (int i = 0; i < IN_FLIGHT; i++)
        pthread_join(t[i], NULL);

    assert_true(late_at_once);
    assert_int_equal(late.rc, -ESHUTDOWN);
    assert_int_equal(gated.rc, 0);
    size_t ok_submits = 1, ok_audits = 0;
    for (int i = 0; i < IN_FLIGHT; i++) {
        assert_true(fl[i].returned);
        if (fl[i].rc != 0) assert_int_equal(fl[i].rc, -ESHUTDOWN);
        if (fl[i].rc == 0) *(i % 2 ? &ok_audits : &ok_submits) += 1;
    }
    print_message("  in flight: %zu submissions and %zu entries committed, %zu shut down\n",
                  ok_submits - 1, ok_audits, IN_FLIGHT - (ok_submits - 1) - ok_audits);
    /* what was answered 0 is on disk, and nothing else */
    assert_int_equal(job_count(w), ok_submits);
    assert_int_equal(audit_count(w, "test.inflight", 0), ok_audits);
    assert_int_equal(audit_count(w, "job.submitted", 0), ok_submits);
    audit_report rep;
    memset(&rep, 0, sizeof rep);
    assert_int_equal(audit_verify_open(w->au, &rep), 0);
    assert_true(rep.ok);
}

/* --- refunds and corrections ------------------------------------------------------------------
 */

/* A job of alice that ran 100 s and was charged; returns its id, its charge in *gpu. */
static int64_t charged_job(struct world *w, int64_t slurm_id, int64_t *gpu)
{
    int64_t id = dispatched_job(w, slurm_id);
    int64_t t = time(NULL) - 200;
    registry_slurm_change c = slurm_change(id, slurm_id, "completed", t, t + 100);
    slurm_apply(w, &c);
    assert_true(c.charge_gpu_seconds > 0);
    if (gpu) *gpu = c.charge_gpu_seconds;
    return id;
}

static int64_t used_gpu(struct world *w)
{
    policy_quota q;
    int64_t used = -1, held = -1, ucpu = -1, hcpu = -1;
    assert_int_equal(registry_quota_usage(w->reg, "ulb", w->period, &q, &used, &held, &ucpu, &hcpu),
                     0);
    return used;
}

/* The ledger_sums row (the dispatch's budget check) against the ledger's own sum. */
static void assert_sums_right(struct world *w)
{
    store_ledger_totals *t = NULL;
    size_t n = 0;
    assert_int_equal(store_ledger_totals_list(w->st, &t, &n), 0);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].partner, "ulb") != 0 || strcmp(t[i].period, w->period) != 0) continue;
        assert_int_equal(t[i].used_gpu_seconds, used_gpu(w));
    }
    free(t);
}

static void
refund_whole_charge_is_one_negative_charge_entry_audited_and_gives_budget_back(void **state)
{
    struct world *w = *state;
    int64_t gpu = 0, id = charged_job(w, 5151, &gpu);
    assert_int_equal(used_gpu(w), gpu);
    store_job after;
    assert_int_equal(registry_job_refund(w->reg, &WHO, id, -1, -1, "node failure", &after), 0);
    assert_int_equal(after.charge_gpu_seconds, 0);
    assert_int_equal(after.charge_cpu_seconds, 0);
    size_t rows = 0;
    assert_int_equal(ledger_sum(w, id, "charge", &rows), 0);
    assert_int_equal(rows, 2);
    assert_int_equal(audit_count(w, "job.refunded", id), 1);
    assert_int_equal(used_gpu(w), 0);
    assert_sums_right(w);
    store_adjustment *a = NULL;
    size_t n = 0;
    assert_int_equal(store_adjustment_list(w->st, "ulb", w->period, id, &a, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(a[0].kind, "refund");
    assert_string_equal(a[0].reason, "node failure");
    assert_string_equal(a[0].actor, "tester");
    assert_int_equal(a[0].gpu_seconds, -gpu);
    free(a);
}

static void refund_of_a_part_then_more_than_is_left_is_erange_and_writes_nothing(void **state)
{
    struct world *w = *state;
    int64_t gpu = 0, id = charged_job(w, 5152, &gpu);
    assert_int_equal(registry_job_refund(w->reg, &WHO, id, gpu / 2, -1, "half", NULL), 0);
    size_t entries = audit_count(w, NULL, 0), rows = 0;
    assert_int_equal(registry_job_refund(w->reg, &WHO, id, gpu, -1, "too much", NULL), -ERANGE);
    assert_int_equal(audit_count(w, NULL, 0), entries);
    assert_int_equal(ledger_sum(w, id, "charge", &rows), gpu - gpu / 2);
    assert_int_equal(rows, 2);
    assert_int_equal(job_get(w, id).charge_gpu_seconds, gpu - gpu / 2);
    assert_int_equal(used_gpu(w), gpu - gpu / 2);
    assert_sums_right(w);
}

static void refund_of_a_fully_refunded_job_is_ealready(void **state)
{
    struct world *w = *state;
    int64_t id = charged_job(w, 5153, NULL);
    assert_int_equal(registry_job_refund(w->reg, &WHO, id, -1, -1, "all", NULL), 0);
    assert_int_equal(registry_job_refund(w->reg, &WHO, id, -1, -1, "again", NULL), -EALREADY);
    assert_int_equal(audit_count(w, "job.refunded", id), 1);
}

static void refund_without_a_reason_is_einval(void **state)
{
    struct world *w = *state;
    int64_t id = charged_job(w, 5154, NULL);
    assert_int_equal(registry_job_refund(w->reg, &WHO, id, -1, -1, "", NULL), -EINVAL);
    assert_int_equal(registry_job_refund(w->reg, &WHO, id, -1, -1, NULL, NULL), -EINVAL);
    assert_int_equal(audit_count(w, "job.refunded", id), 0);
}

static void refund_of_a_running_job_is_eagain(void **state)
{
    struct world *w = *state;
    int64_t id = dispatched_job(w, 5155);
    registry_slurm_change c = slurm_change(id, 5155, "running", time(NULL) - 10, 0);
    slurm_apply(w, &c);
    assert_int_equal(registry_job_refund(w->reg, &WHO, id, -1, -1, "early", NULL), -EAGAIN);
    assert_int_equal(registry_job_refund(w->reg, &WHO, 999999, -1, -1, "none", NULL), -ENOENT);
}

static void correct_writes_an_entry_of_the_difference_audited_job_corrected(void **state)
{
    struct world *w = *state;
    int64_t gpu = 0, id = charged_job(w, 5156, &gpu);
    store_job after;
    assert_int_equal(registry_job_correct(w->reg, &WHO, id, gpu + 3600, -1, "ran longer", &after),
                     0);
    assert_int_equal(after.charge_gpu_seconds, gpu + 3600);
    size_t rows = 0;
    assert_int_equal(ledger_sum(w, id, "charge", &rows), gpu + 3600);
    assert_int_equal(rows, 2);
    assert_int_equal(audit_count(w, "job.corrected", id), 1);
    assert_int_equal(used_gpu(w), gpu + 3600);
    assert_sums_right(w);
    assert_int_equal(registry_job_correct(w->reg, &WHO, id, gpu + 3600, -1, "same", NULL),
                     -EALREADY);
}

static void correct_of_a_lost_job_to_what_really_ran_lowers_its_charge(void **state)
{
    struct world *w = *state;
    int64_t id = dispatched_job(w, 5157);
    registry_slurm_change c = slurm_change(id, 5157, "running", time(NULL) - 60, 0);
    slurm_apply(w, &c);
    c = slurm_change(id, 5157, "", 0, 0);
    c.lost = true;
    slurm_apply(w, &c);
    store_job j = job_get(w, id);
    assert_string_equal(j.state, "lost");
    int64_t before = j.charge_gpu_seconds;
    assert_int_equal(registry_job_correct(w->reg, &WHO, id, 60, -1, "ran 60 s", &j), 0);
    assert_int_equal(j.charge_gpu_seconds, 60);
    assert_int_equal(ledger_sum(w, id, "charge", NULL), 60);
    assert_int_equal(used_gpu(w), 60);
    (void)before;
    assert_sums_right(w);
}

#define T(fn)  cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TD(fn) cmocka_unit_test_setup_teardown(fn, setup_tiny_disk, teardown)

/* --- job arrays --------------------------------------------------------------------------------
 */

/* Submits array `spec` of alice (1 GPU, `minutes` each); returns the registry's result. */
static int array_submit(struct world *w, const char *spec, int minutes, registry_submit *s,
                        job_array *a)
{
    char err[256];
    job_array_init(a);
    assert_int_equal(job_array_parse(spec, 0, a, err, sizeof err), 0);
    submit_init(s, w->alice, "alice", 1, minutes);
    s->array = a;
    return registry_job_submit(w->reg, &WHO, s);
}

static void array_submit_makes_one_job_and_one_entry_per_task_in_one_change(void **state)
{
    struct world *w = *state;
    registry_submit s;
    job_array a;
    assert_int_equal(array_submit(w, "0-3%2", 30, &s, &a), 0);
    assert_true(s.verdict.admitted);
    assert_non_null(s.body);
    free(s.body);
    int64_t aid = s.job.id;
    assert_int_equal(s.job.array_job_id, aid);
    assert_int_equal(s.job.array_task_id, 0);
    assert_int_equal(registry_queue_length(w->reg), 4);
    assert_int_equal(audit_count(w, "job.submitted", 0), 4);
    store_job *ts = NULL;
    size_t n = 0;
    assert_int_equal(store_job_array_tasks(w->st, aid, &ts, &n), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ts[i].array_task_id, (int)i);
        assert_int_equal(ts[i].array_max, 2);
        assert_string_equal(ts[i].state, STORE_STATE_QUEUED);
    }
    free(ts);
    char *script = NULL; /* stored once, with the first task */
    assert_int_equal(store_job_script_get(w->st, aid, &script), 0);
    assert_string_equal(script, SCRIPT);
    free(script);
    audit_report rep;
    assert_int_equal(audit_verify_open(w->au, &rep), 0);
    assert_int_equal(rep.ok, 1);
    job_array_close(&a);
}

static void array_over_the_budget_is_refused_whole_and_queues_nothing(void **state)
{
    struct world *w = *state;
    registry_submit s;
    job_array a;
    /* 100 GPU-hours: one task of 1 GPU x 20 h fits, six do not */
    assert_int_equal(array_submit(w, "0-5", 20 * 60, &s, &a), 0);
    assert_false(s.verdict.admitted);
    assert_string_equal(s.verdict.code, "budget_exceeded");
    assert_non_null(strstr(s.verdict.message, "array of 6 tasks"));
    assert_int_equal(job_count(w), 0);
    assert_int_equal(registry_queue_length(w->reg), 0);
    assert_int_equal(audit_count(w, "job.submitted", 0), 0);
    assert_int_equal(audit_count(w, "job.refused", 0), 1);
    job_array_close(&a);
}

static void array_dispatch_never_begins_more_than_its_max(void **state)
{
    struct world *w = *state;
    registry_submit s;
    job_array a;
    int64_t ids[8];
    assert_int_equal(array_submit(w, "0-3%2", 30, &s, &a), 0);
    free(s.body);
    assert_int_equal(begin_all(w, ids, 8), 2);
    assert_int_equal(begin_all(w, ids + 2, 8), 0);
    registry_live live;
    registry_job_live(w->reg, s.job.id + 2, time(NULL), &live);
    assert_string_equal(live.reason, POLICY_REASON_ARRAY_LIMIT);
    job_array_close(&a);
}

static void array_cancel_cancels_every_task_not_ended(void **state)
{
    struct world *w = *state;
    registry_submit s;
    job_array a;
    assert_int_equal(array_submit(w, "0-2", 30, &s, &a), 0);
    free(s.body);
    int64_t aid = s.job.id, got = 0;
    assert_int_equal(begin_all(w, &got, 1), 1); /* task 0 goes to Slurm */
    assert_int_equal(outcome(w, got, REGISTRY_SUBMITTED, 900), 0);
    size_t now = 0, n_slurm = 0;
    int64_t *slurm = NULL;
    assert_int_equal(registry_job_array_cancel(w->reg, &WHO, aid, &now, &slurm, &n_slurm), 0);
    assert_int_equal(now, 2);
    assert_int_equal(n_slurm, 1);
    assert_int_equal(slurm[0], got);
    free(slurm);
    assert_int_equal(registry_queue_length(w->reg), 0);
    assert_true(job_get(w, got).cancel_requested);
    assert_string_equal(job_get(w, aid + 2).state, "cancelled");
    assert_int_equal(audit_count(w, "job.cancel_requested", 0), 3);
    assert_int_equal(registry_job_array_cancel(w->reg, &WHO, aid + 1, &now, &slurm, &n_slurm),
                     -ENOENT);
    job_array_close(&a);
}

static void array_tasks_keep_their_max_after_a_restart(void **state)
{
    struct world *w = *state;
    registry_submit s;
    job_array a;
    assert_int_equal(array_submit(w, "0-3%1", 30, &s, &a), 0);
    free(s.body);
    assert_int_equal(begin_all(w, NULL, 8), 1);
    registry_free(w->reg);
    char err[256];
    policy_config pc;
    policy_config_defaults(&pc);
    registry_options ro = {.policy = &pc, .audit = w->au};
    assert_int_equal(registry_new(w->st, &ro, &w->reg, err, sizeof err), 0);
    assert_int_equal(registry_queue_length(w->reg), 3);
    assert_int_equal(begin_all(w, NULL, 8), 0);
    job_array_close(&a);
}

/* The site's bound (1000 tasks) in one change: every task, every entry, one batch. */
static void array_of_1000_tasks_is_one_change(void **state)
{
    struct world *w = *state;
    registry_submit s;
    job_array a;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(array_submit(w, "0-999%10", 1, &s, &a), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(s.verdict.admitted);
    free(s.body);
    print_message("    1000 tasks submitted in %.0f ms\n",
                  (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    assert_int_equal(registry_queue_length(w->reg), 1000);
    assert_int_equal(audit_count(w, "job.submitted", 0), 1000);
    assert_int_equal(begin_all(w, NULL, 2000), 4); /* the cluster window (4) is below its %10 */
    job_array_close(&a);
}

/* --- dependencies ------------------------------------------------------------------------------
 */

/* Submits a job of `user` named `name` with dependency `text` (admitted); returns its id. */
static int64_t submit_dep(struct world *w, int64_t user_id, const char *user, const char *name,
                          const char *text)
{
    registry_submit s;
    job_dependency d;
    char err[256];
    assert_int_equal(job_dependency_parse(text, &d, err, sizeof err), 0);
    submit_init(&s, user_id, user, 0, 5);
    snprintf(s.job.name, sizeof s.job.name, "%s", name);
    s.dependency = &d;
    assert_int_equal(registry_job_submit(w->reg, &WHO, &s), 0);
    assert_true(s.verdict.admitted);
    free(s.body);
    return s.job.id;
}

static const char *live_reason(struct world *w, int64_t id, registry_live *l)
{
    registry_job_live(w->reg, id, time(NULL), l);
    return l->reason;
}

static void dependency_on_a_queued_job_holds_it_with_reason_dependency(void **state)
{
    struct world *w = *state;
    int64_t pre = submit_ok(w, w->alice, "alice", 0, 5);
    char text[64];
    snprintf(text, sizeof text, "afterok:%lld", (long long)pre);
    int64_t dep = submit_dep(w, w->alice, "alice", "d", text);
    registry_live l;
    assert_string_equal(live_reason(w, dep, &l), "Dependency");
    int64_t ids[4];
    assert_int_equal(begin_all(w, ids, 4), 1); /* only the prerequisite goes */
    assert_int_equal(ids[0], pre);
    assert_string_equal(job_get(w, dep).state, STORE_STATE_QUEUED);
    char echo[64];
    assert_int_equal(registry_job_dependency_text(w->reg, dep, echo, sizeof echo), 0);
    assert_string_equal(echo, text);
}

static void dependency_released_once_its_prerequisite_has_a_slurm_id_passes_slurms_id(void **state)
{
    struct world *w = *state;
    int64_t pre = submit_ok(w, w->alice, "alice", 0, 5);
    char text[64], buf[128], why[256];
    snprintf(text, sizeof text, "afterok:%lld", (long long)pre);
    int64_t dep = submit_dep(w, w->alice, "alice", "d", text);
    int64_t ids[4];
    assert_int_equal(begin_all(w, ids, 4), 1);
    assert_int_equal(outcome(w, pre, REGISTRY_SUBMITTED, 777), 0);
    registry_live l;
    assert_string_not_equal(live_reason(w, dep, &l), "Dependency");
    assert_int_equal(begin_all(w, ids, 4), 1);
    assert_int_equal(ids[0], dep);
    assert_int_equal(registry_job_slurm_dependency(w->reg, dep, buf, sizeof buf, why, sizeof why),
                     0);
    assert_string_equal(buf, "afterok:777");
}

static void dependency_on_a_completed_job_is_met_and_not_passed_to_slurm(void **state)
{
    struct world *w = *state;
    int64_t pre = dispatched_job(w, 501);
    registry_slurm_change c = slurm_change(pre, 501, "completed", 1000, 1060);
    slurm_apply(w, &c);
    char text[64], buf[128] = "x", why[256];
    snprintf(text, sizeof text, "afterok:%lld,afterany:%lld", (long long)pre, (long long)pre);
    int64_t dep = submit_dep(w, w->alice, "alice", "d", text);
    registry_live l;
    assert_string_not_equal(live_reason(w, dep, &l), "Dependency");
    assert_int_equal(registry_job_slurm_dependency(w->reg, dep, buf, sizeof buf, why, sizeof why),
                     0);
    assert_string_equal(buf, "");
}

static void dependency_never_met_at_submission_ends_cancelled_charged_nothing(void **state)
{
    struct world *w = *state;
    int64_t pre = dispatched_job(w, 502);
    registry_slurm_change c = slurm_change(pre, 502, "completed", 1000, 1060);
    slurm_apply(w, &c);
    char text[64], want[160];
    snprintf(text, sizeof text, "afternotok:%lld", (long long)pre);
    int64_t dep = submit_dep(w, w->alice, "alice", "d", text);
    store_job j = job_get(w, dep);
    assert_string_equal(j.state, "cancelled");
    snprintf(want, sizeof want,
             "dependency afternotok:%lld can never be met: job %lld ended completed",
             (long long)pre, (long long)pre);
    assert_string_equal(j.reason, want);
    assert_int_equal(j.charge_gpu_seconds, 0);
    assert_int_equal(ledger_sum(w, dep, "hold", NULL), 0);
    assert_int_equal(audit_count(w, "job.finished", dep), 1);
    assert_int_equal(registry_queue_length(w->reg), 0);
}

static void
dependency_prerequisite_cancelled_before_slurm_cancels_its_dependents_in_chain(void **state)
{
    struct world *w = *state;
    int64_t pre = submit_ok(w, w->alice, "alice", 0, 5);
    char text[64];
    snprintf(text, sizeof text, "afterok:%lld", (long long)pre);
    int64_t mid = submit_dep(w, w->alice, "alice", "mid", text);
    snprintf(text, sizeof text, "afterok:%lld", (long long)mid);
    int64_t last = submit_dep(w, w->alice, "alice", "last", text);
    snprintf(text, sizeof text, "afternotok:%lld", (long long)pre);
    int64_t other = submit_dep(w, w->alice, "alice", "other", text);
    bool now = false;
    assert_int_equal(registry_job_cancel(w->reg, &WHO, pre, &now, NULL), 0);
    assert_true(now);
    assert_string_equal(job_get(w, mid).state, "cancelled");
    assert_non_null(strstr(job_get(w, mid).reason, "afterok:"));
    assert_string_equal(job_get(w, last).state, "cancelled");
    assert_string_equal(job_get(w, other).state, STORE_STATE_QUEUED); /* afternotok: met */
    registry_live l;
    assert_string_not_equal(live_reason(w, other, &l), "Dependency");
    assert_int_equal(registry_queue_length(w->reg), 1);
}

static void dependency_holds_are_rebuilt_from_the_store_at_start_up(void **state)
{
    struct world *w = *state;
    int64_t pre = submit_ok(w, w->alice, "alice", 0, 5);
    char text[64], err[256];
    snprintf(text, sizeof text, "afterok:%lld", (long long)pre);
    int64_t dep = submit_dep(w, w->alice, "alice", "d", text);
    registry_free(w->reg);
    policy_config pc;
    policy_config_defaults(&pc);
    registry_options ro = {.policy = &pc, .audit = w->au};
    assert_int_equal(registry_new(w->st, &ro, &w->reg, err, sizeof err), 0);
    registry_live l;
    assert_string_equal(live_reason(w, dep, &l), "Dependency");
    int64_t ids[4];
    assert_int_equal(begin_all(w, ids, 4), 1);
    assert_int_equal(ids[0], pre);
    assert_int_equal(outcome(w, pre, REGISTRY_SUBMITTED, 900), 0); /* the rebuilt index wakes */
    assert_string_not_equal(live_reason(w, dep, &l), "Dependency");
}

static void dependency_singleton_waits_for_the_users_earlier_job_of_that_name(void **state)
{
    struct world *w = *state;
    int64_t first = submit_dep(w, w->alice, "alice", "sweep", "singleton");
    int64_t bobs = submit_dep(w, w->bob, "bob", "sweep", "singleton"); /* another user */
    int64_t second = submit_dep(w, w->alice, "alice", "sweep", "singleton");
    registry_live l;
    assert_string_not_equal(live_reason(w, first, &l), "Dependency");
    assert_string_not_equal(live_reason(w, bobs, &l), "Dependency");
    assert_string_equal(live_reason(w, second, &l), "Dependency");
    int64_t ids[4];
    assert_int_equal(begin_all(w, ids, 4), 2);
    assert_int_equal(outcome(w, first, REGISTRY_SUBMITTED, 601), 0);
    assert_string_equal(live_reason(w, second, &l), "Dependency"); /* in Slurm is not enough */
    registry_slurm_change c = slurm_change(first, 601, "failed", 1000, 1010);
    slurm_apply(w, &c);
    assert_string_not_equal(live_reason(w, second, &l), "Dependency");
    char buf[64] = "x", why[128];
    assert_int_equal(
        registry_job_slurm_dependency(w->reg, second, buf, sizeof buf, why, sizeof why), 0);
    assert_string_equal(buf, ""); /* Slurm never sees a singleton */
    assert_int_equal(registry_job_dependency_text(w->reg, second, buf, sizeof buf), 0);
    assert_string_equal(buf, "singleton");
}

/* A dependent released and being dispatched when its prerequisite fails (both jobs in flight). */
static int64_t dependent_dispatching_when_its_prerequisite_failed(struct world *w, int64_t *pre)
{
    *pre = submit_ok(w, w->alice, "alice", 0, 5);
    char text[64];
    snprintf(text, sizeof text, "afterok:%lld", (long long)*pre);
    int64_t dep = submit_dep(w, w->alice, "alice", "d", text);
    int64_t ids[4];
    assert_int_equal(begin_all(w, ids, 4), 1);
    assert_int_equal(outcome(w, *pre, REGISTRY_SUBMITTED, 801), 0);
    assert_int_equal(begin_all(w, ids, 4), 1);
    assert_int_equal(ids[0], dep);
    registry_slurm_change c = slurm_change(*pre, 801, "failed", 1000, 1010);
    slurm_apply(w, &c);
    assert_string_equal(job_get(w, dep).state, STORE_STATE_DISPATCHING);
    return dep;
}

static void dependency_never_met_at_dispatch_is_ecanceled_and_the_outcome_cancels_it(void **state)
{
    struct world *w = *state;
    int64_t pre, dep = dependent_dispatching_when_its_prerequisite_failed(w, &pre);
    char buf[64], why[STORE_REASON_MAX] = "", want[160];
    assert_int_equal(registry_job_slurm_dependency(w->reg, dep, buf, sizeof buf, why, sizeof why),
                     -ECANCELED);
    snprintf(want, sizeof want, "dependency afterok:%lld can never be met: job %lld ended failed",
             (long long)pre, (long long)pre);
    assert_string_equal(why, want);
    registry_outcome o = {.id = dep, .kind = REGISTRY_CANCELLED};
    snprintf(o.reason, sizeof o.reason, "%s", why);
    assert_int_equal(registry_dispatch_outcomes(w->reg, &o, 1), 0);
    assert_int_equal(o.rc, 0);
    store_job j = job_get(w, dep);
    assert_string_equal(j.state, "cancelled");
    assert_string_equal(j.reason, want);
    assert_int_equal(j.hold_gpu_seconds, 0);
    assert_int_equal(j.charge_gpu_seconds, 0);
    assert_int_equal(audit_count(w, "job.finished", dep), 1);
}

static void dependency_never_met_when_a_dispatch_is_requeued_cancels_the_job(void **state)
{
    struct world *w = *state;
    int64_t pre, dep = dependent_dispatching_when_its_prerequisite_failed(w, &pre);
    assert_int_equal(outcome(w, dep, REGISTRY_REQUEUE, 0), 0);
    store_job j = job_get(w, dep);
    assert_string_equal(j.state, "cancelled");
    assert_non_null(strstr(j.reason, "can never be met"));
    assert_int_equal(registry_queue_length(w->reg), 0);
}

static void dependency_of_a_job_in_slurm_cancelled_by_slurm_names_the_condition(void **state)
{
    struct world *w = *state;
    int64_t pre = submit_ok(w, w->alice, "alice", 0, 5);
    char text[64];
    snprintf(text, sizeof text, "afterok:%lld", (long long)pre);
    int64_t dep = submit_dep(w, w->alice, "alice", "d", text);
    int64_t ids[4];
    assert_int_equal(begin_all(w, ids, 4), 1);
    assert_int_equal(outcome(w, pre, REGISTRY_SUBMITTED, 701), 0);
    assert_int_equal(begin_all(w, ids, 4), 1);
    assert_int_equal(outcome(w, dep, REGISTRY_SUBMITTED, 702), 0);
    registry_slurm_change c = slurm_change(pre, 701, "failed", 1000, 1010);
    slurm_apply(w, &c);
    /* kill_invalid_depend: Slurm cancels the dependent, which never started */
    registry_slurm_change d = slurm_change(dep, 702, "cancelled", 0, 1011);
    snprintf(d.reason, sizeof d.reason, "DependencyNeverSatisfied");
    slurm_apply(w, &d);
    store_job j = job_get(w, dep);
    assert_string_equal(j.state, "cancelled");
    assert_non_null(strstr(j.reason, "can never be met"));
    assert_int_equal(j.charge_gpu_seconds, 0);
}

int main(void)
{
    log_level_set(getenv("ANTENNA_TEST_LOG") ? getenv("ANTENNA_TEST_LOG") : "error");
    alarm(TIME_LIMIT); /* each world re-arms it: a hang anywhere ends the binary with a failure */
    const struct CMUnitTest tests[] = {
        T(submit_commits_the_job_its_entry_and_queues_it_with_the_rendered_body),
        T(array_submit_makes_one_job_and_one_entry_per_task_in_one_change),
        T(array_over_the_budget_is_refused_whole_and_queues_nothing),
        T(array_dispatch_never_begins_more_than_its_max),
        T(array_cancel_cancels_every_task_not_ended),
        T(array_tasks_keep_their_max_after_a_restart),
        T(array_of_1000_tasks_is_one_change),
        T(submit_over_the_max_walltime_is_refused_with_only_a_job_refused_entry),
        T(submit_of_a_gpu_job_without_a_gpu_budget_is_refused_with_only_a_job_refused_entry),
        T(submit_for_an_unknown_user_is_enoent_and_writes_nothing),
        T(submit_for_an_unknown_user_id_is_enoent_and_writes_nothing),
        T(submit_for_an_unknown_user_name_is_enoent_and_writes_nothing),
        T(submit_failing_after_its_entry_leaves_a_chain_that_verifies),
        T(idem_same_key_and_body_replays_the_first_answer),
        T(idem_same_key_other_body_is_eexist),
        T(idem_same_key_of_two_users_makes_two_jobs),
        T(idem_same_key_from_8_threads_makes_one_job_and_one_answer),
        T(group_commit_of_32_threads_x_50_submissions_commits_all_and_verifies),
        T(dispatch_begin_moves_picked_jobs_with_a_hold_and_an_entry_each),
        T(dispatch_begin_skips_a_partner_over_its_gpu_cap),
        T(dispatch_begin_of_40_jobs_in_a_wide_window_moves_them_all),
        T(outcome_submitted_makes_the_job_dispatched_with_its_slurm_id),
        T(outcome_refused_fails_the_job_and_releases_its_hold),
        T(outcome_requeue_queues_the_job_again_for_the_next_pick),
        T(outcome_for_a_job_not_dispatching_is_eagain_and_changes_nothing),
        T(slurm_pending_then_running_is_audited_job_started),
        T(slurm_completed_charges_its_elapsed_time_and_releases_its_hold),
        T(slurm_requeue_charges_each_run_once_and_keeps_the_hold_between),
        T(slurm_requeue_seen_already_running_again_starts_the_next_run),
        T(slurm_requeue_past_the_budget_asks_for_the_job_to_end),
        T(slurm_second_terminal_change_changes_nothing),
        T(slurm_lost_job_is_lost_charged_its_full_hold_and_audited_with_why),
        T(cancel_of_a_queued_job_cancels_it_at_once_and_leaves_the_queue),
        T(cancel_of_a_terminal_job_is_ealready),
        T(partner_create_is_audited_partner_created),
        T(partner_create_duplicate_is_eexist_and_not_audited),
        T(partner_update_is_audited_partner_changed),
        T(user_create_is_audited_user_created),
        T(quota_set_is_audited_quota_set),
        T(token_create_is_audited_token_created),
        T(token_revoke_is_audited_token_revoked),
        T(token_check_knows_a_new_token_and_a_revoked_one_no_longer_authenticates),
        T(token_check_refuses_an_expired_token_with_ekeyexpired),
        T(token_check_of_a_disabled_user_is_eacces_at_once_and_works_again_once_enabled),
        T(token_table_is_loaded_at_open_with_expiry_and_disabled_users),
        T(token_table_grown_past_its_first_size_finds_each_token),
        T(user_mapping_change_is_audited_with_the_old_and_new_account),
        T(user_mapped_to_another_partners_account_is_enotuniq_and_not_audited),
        T(user_update_of_an_unknown_user_is_enoent),
        TD(full_disk_submit_is_enospc_in_health_and_recovers_once_freed),
        T(batch_change_that_fails_leaves_the_others_of_its_batch_committed),
        T(free_with_changes_in_flight_completes_them_or_shuts_them_down),
        T(refund_whole_charge_is_one_negative_charge_entry_audited_and_gives_budget_back),
        T(refund_of_a_part_then_more_than_is_left_is_erange_and_writes_nothing),
        T(refund_of_a_fully_refunded_job_is_ealready),
        T(refund_without_a_reason_is_einval),
        T(refund_of_a_running_job_is_eagain),
        T(correct_writes_an_entry_of_the_difference_audited_job_corrected),
        T(correct_of_a_lost_job_to_what_really_ran_lowers_its_charge),
        T(dependency_on_a_queued_job_holds_it_with_reason_dependency),
        T(dependency_released_once_its_prerequisite_has_a_slurm_id_passes_slurms_id),
        T(dependency_on_a_completed_job_is_met_and_not_passed_to_slurm),
        T(dependency_never_met_at_submission_ends_cancelled_charged_nothing),
        T(dependency_prerequisite_cancelled_before_slurm_cancels_its_dependents_in_chain),
        T(dependency_holds_are_rebuilt_from_the_store_at_start_up),
        T(dependency_singleton_waits_for_the_users_earlier_job_of_that_name),
        T(dependency_of_a_job_in_slurm_cancelled_by_slurm_names_the_condition),
        T(dependency_never_met_at_dispatch_is_ecanceled_and_the_outcome_cancels_it),
        T(dependency_never_met_when_a_dispatch_is_requeued_cancels_the_job),

    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
