/* test_store.c - unit tests for store.c; each test uses its own temporary database and never
 * touches another file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct fixture {
    char dir[64];
    char path[128];
    store *s;
    int64_t user_id; /* alice of partner ulb */
} fixture;

static int open_store(fixture *f)
{
    char err[256] = "";
    int ret = store_new(f->path, &f->s, err, sizeof err);
    if (ret != 0) print_error("store_new(%s): %d %s\n", f->path, ret, err);
    return ret;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/test_store.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/antenna.db", f->dir);
    if (open_store(f) != 0) {
        rmdir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state);

/* setup plus partner "ulb" and user "alice" of it. */
static int setup_user(void **state)
{
    if (setup(state) != 0) return -1;
    fixture *f = *state;
    if (store_partner_insert(f->s, "ulb", "Universite libre de Bruxelles", NULL) != 0 ||
        store_user_insert(f->s, "alice", "ulb", "alice", "user", &f->user_id) != 0) {
        teardown(state);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (!f) return 0;
    store_free(f->s);
    /* Removes every file a test made in its directory, even after a failed assertion. */
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char p[400];
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    int ret = rmdir(f->dir);
    free(f);
    return ret;
}

static int64_t insert_job(fixture *f, int64_t user_id, const char *name)
{
    store_job j = {0};
    j.user_id = user_id;
    snprintf(j.name, sizeof j.name, "%s", name);
    j.gpus = 1;
    j.cpus_per_task = 2;
    j.mem_mb = 1024;
    j.time_minutes = 30;
    assert_int_equal(store_job_insert(f->s, &j, "#!/bin/sh\necho hi\n"), 0);
    return j.id;
}

/* A job moved into Slurm's running state (dispatching -> dispatched -> running). */
static int64_t insert_running_job(fixture *f)
{
    int64_t id = insert_job(f, f->user_id, "run");
    assert_int_equal(store_job_transition(f->s, id, "queued", "dispatching", NULL), 0);
    assert_int_equal(store_job_set_dispatched(f->s, id, 4242), 0);
    store_job u = {.id = id, .state = "running", .started_at = 1000};
    assert_int_equal(store_job_update(f->s, &u), 0);
    return id;
}

/* --- partners --- */

static void partner_insert_then_get_returns_it(void **state)
{
    fixture *f = *state;
    int64_t before = time(NULL), id = 0;
    assert_int_equal(store_partner_insert(f->s, "ulb", "Brussels", &id), 0);
    assert_true(id > 0);
    store_partner p;
    assert_int_equal(store_partner_get(f->s, "ulb", &p), 0);
    assert_int_equal(p.id, id);
    assert_string_equal(p.name, "ulb");
    assert_string_equal(p.description, "Brussels");
    assert_true(p.created_at >= before && p.created_at <= time(NULL));
}

static void partner_get_unknown_is_enoent(void **state)
{
    fixture *f = *state;
    store_partner p;
    assert_int_equal(store_partner_get(f->s, "nobody", &p), -ENOENT);
}

static void partner_list_is_sorted_by_name(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_partner_insert(f->s, "vub", NULL, NULL), 0);
    assert_int_equal(store_partner_insert(f->s, "kul", "Leuven", NULL), 0);
    assert_int_equal(store_partner_insert(f->s, "ulb", "Brussels", NULL), 0);
    store_partner *ps = NULL;
    size_t n = 0;
    assert_int_equal(store_partner_list(f->s, &ps, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(ps[0].name, "kul");
    assert_string_equal(ps[0].description, "Leuven");
    assert_string_equal(ps[1].name, "ulb");
    assert_string_equal(ps[2].name, "vub");
    assert_string_equal(ps[2].description, "");
    free(ps);
}

static void partner_insert_duplicate_is_eexist(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_partner_insert(f->s, "ulb", "a", NULL), 0);
    assert_int_equal(store_partner_insert(f->s, "ulb", "b", NULL), -EEXIST);
    store_partner p;
    assert_int_equal(store_partner_get(f->s, "ulb", &p), 0);
    assert_string_equal(p.description, "a");
}

static void partner_insert_overlong_name_is_einval(void **state)
{
    fixture *f = *state;
    char name[STORE_NAME_MAX + 1];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    assert_int_equal(store_partner_insert(f->s, name, NULL, NULL), -EINVAL);
    assert_int_equal(store_partner_insert(f->s, "", NULL, NULL), -EINVAL);
}

/* --- users --- */

static void user_insert_then_get_returns_partner_name(void **state)
{
    fixture *f = *state;
    store_user u;
    assert_int_equal(store_user_get(f->s, "alice", &u), 0);
    assert_int_equal(u.id, f->user_id);
    assert_string_equal(u.name, "alice");
    assert_string_equal(u.partner, "ulb");
    assert_string_equal(u.unix_user, "alice");
    assert_string_equal(u.role, "user");
    assert_true(u.created_at > 0);
}

static void user_insert_unknown_partner_is_enoent(void **state)
{
    fixture *f = *state;
    int64_t id = -1;
    assert_int_equal(store_user_insert(f->s, "bob", "nowhere", "bob", "user", &id), -ENOENT);
    assert_int_equal(id, -1);
    store_user u;
    assert_int_equal(store_user_get(f->s, "bob", &u), -ENOENT);
}

static void user_insert_duplicate_is_eexist(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_user_insert(f->s, "alice", "ulb", "other", "admin", NULL), -EEXIST);
    store_user u;
    assert_int_equal(store_user_get(f->s, "alice", &u), 0);
    assert_string_equal(u.unix_user, "alice");
}

static void user_list_filters_by_partner(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_partner_insert(f->s, "vub", NULL, NULL), 0);
    assert_int_equal(store_user_insert(f->s, "carol", "vub", "carol", "admin", NULL), 0);
    assert_int_equal(store_user_insert(f->s, "bob", "ulb", "bob", "user", NULL), 0);

    store_user *us = NULL;
    size_t n = 0;
    assert_int_equal(store_user_list(f->s, NULL, &us, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(us[0].name, "alice");
    assert_string_equal(us[1].name, "bob");
    assert_string_equal(us[2].name, "carol");
    assert_string_equal(us[2].role, "admin");
    assert_string_equal(us[2].partner, "vub");
    free(us);

    assert_int_equal(store_user_list(f->s, "ulb", &us, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(us[0].name, "alice");
    assert_string_equal(us[1].name, "bob");
    free(us);

    assert_int_equal(store_user_list(f->s, "nowhere", &us, &n), 0);
    assert_int_equal(n, 0);
    assert_null(us);
}

/* --- tokens --- */

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void token_lookup_finds_owner(void **state)
{
    fixture *f = *state;
    int64_t tid = 0;
    assert_int_equal(store_token_insert(f->s, f->user_id, HASH_A, "laptop", &tid), 0);
    assert_true(tid > 0);
    store_user u;
    assert_int_equal(store_token_lookup(f->s, HASH_A, &u), 0);
    assert_int_equal(u.id, f->user_id);
    assert_string_equal(u.name, "alice");
    assert_string_equal(u.partner, "ulb");
}

static void token_lookup_revoked_is_enoent(void **state)
{
    fixture *f = *state;
    int64_t tid = 0;
    assert_int_equal(store_token_insert(f->s, f->user_id, HASH_A, "laptop", &tid), 0);
    assert_int_equal(store_token_revoke(f->s, tid), 0);
    store_user u;
    assert_int_equal(store_token_lookup(f->s, HASH_A, &u), -ENOENT);
}

static void token_lookup_unknown_hash_is_enoent(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_token_insert(f->s, f->user_id, HASH_A, NULL, NULL), 0);
    store_user u;
    assert_int_equal(store_token_lookup(f->s, HASH_B, &u), -ENOENT);
}

static void token_insert_unknown_user_is_enoent(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_token_insert(f->s, f->user_id + 100, HASH_A, "x", NULL), -ENOENT);
    store_user u;
    assert_int_equal(store_token_lookup(f->s, HASH_A, &u), -ENOENT);
}

static void token_insert_duplicate_hash_is_eexist(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_token_insert(f->s, f->user_id, HASH_A, "one", NULL), 0);
    assert_int_equal(store_token_insert(f->s, f->user_id, HASH_A, "two", NULL), -EEXIST);
}

static void token_revoke_twice_or_unknown_is_enoent(void **state)
{
    fixture *f = *state;
    int64_t tid = 0;
    assert_int_equal(store_token_insert(f->s, f->user_id, HASH_A, NULL, &tid), 0);
    assert_int_equal(store_token_revoke(f->s, tid), 0);
    assert_int_equal(store_token_revoke(f->s, tid), -ENOENT);
    assert_int_equal(store_token_revoke(f->s, tid + 100), -ENOENT);
}

static void token_list_filters_by_user_and_shows_revocation(void **state)
{
    fixture *f = *state;
    int64_t bob = 0, t1 = 0, t2 = 0;
    assert_int_equal(store_user_insert(f->s, "bob", "ulb", "bob", "user", &bob), 0);
    assert_int_equal(store_token_insert(f->s, f->user_id, HASH_A, "laptop", &t1), 0);
    assert_int_equal(store_token_insert(f->s, bob, HASH_B, "ci", &t2), 0);
    assert_int_equal(store_token_revoke(f->s, t1), 0);

    store_token *ts = NULL;
    size_t n = 0;
    assert_int_equal(store_token_list(f->s, 0, &ts, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ts[0].id, t1);
    assert_string_equal(ts[0].user, "alice");
    assert_string_equal(ts[0].label, "laptop");
    assert_true(ts[0].revoked_at > 0);
    assert_int_equal(ts[1].id, t2);
    assert_int_equal(ts[1].user_id, bob);
    assert_int_equal(ts[1].revoked_at, 0);
    free(ts);

    assert_int_equal(store_token_list(f->s, bob, &ts, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ts[0].label, "ci");
    free(ts);
}

/* --- jobs --- */

static void job_insert_fills_id_state_time_and_owner(void **state)
{
    fixture *f = *state;
    store_job j = {0};
    j.user_id = f->user_id;
    snprintf(j.name, sizeof j.name, "train");
    snprintf(j.gpu_type, sizeof j.gpu_type, "h100");
    snprintf(j.user, sizeof j.user, "mallory"); /* ignored: filled from the user row */
    j.gpus = 2;
    j.cpus_per_task = 4;
    j.mem_mb = 8192;
    j.time_minutes = 60;
    int64_t before = time(NULL);
    assert_int_equal(store_job_insert(f->s, &j, "#!/bin/sh\ntrue\n"), 0);
    assert_true(j.id > 0);
    assert_string_equal(j.state, STORE_STATE_QUEUED);
    assert_true(j.submitted_at >= before && j.submitted_at <= time(NULL));
    assert_string_equal(j.user, "alice");
    assert_string_equal(j.partner, "ulb");
    assert_string_equal(j.unix_user, "alice");

    store_job g;
    assert_int_equal(store_job_get(f->s, j.id, &g), 0);
    assert_int_equal(g.id, j.id);
    assert_int_equal(g.user_id, f->user_id);
    assert_string_equal(g.user, "alice");
    assert_string_equal(g.partner, "ulb");
    assert_string_equal(g.unix_user, "alice");
    assert_string_equal(g.name, "train");
    assert_string_equal(g.gpu_type, "h100");
    assert_int_equal(g.gpus, 2);
    assert_int_equal(g.cpus_per_task, 4);
    assert_int_equal(g.mem_mb, 8192);
    assert_int_equal(g.time_minutes, 60);
    assert_string_equal(g.state, "queued");
    assert_string_equal(g.reason, "");
    assert_int_equal(g.slurm_job_id, 0);
    assert_false(g.has_exit_code);
    assert_false(g.cancel_requested);
    assert_int_equal(g.submitted_at, j.submitted_at);
    assert_int_equal(g.dispatched_at, 0);
    assert_int_equal(g.started_at, 0);
    assert_int_equal(g.ended_at, 0);
}

static void job_insert_unknown_user_is_enoent(void **state)
{
    fixture *f = *state;
    store_job j = {.user_id = f->user_id + 100};
    assert_int_equal(store_job_insert(f->s, &j, "#!/bin/sh\n"), -ENOENT);
    store_job *js = NULL;
    size_t n = 1;
    assert_int_equal(store_job_list(f->s, 0, 0, &js, &n), 0);
    assert_int_equal(n, 0);
    assert_null(js);
}

static void job_get_unknown_is_enoent(void **state)
{
    fixture *f = *state;
    store_job j;
    char *script = NULL;
    assert_int_equal(store_job_get(f->s, 12345, &j), -ENOENT);
    assert_int_equal(store_job_script_get(f->s, 12345, &script), -ENOENT);
    assert_null(script);
}

static void job_list_filters_by_user_newest_first_with_limit(void **state)
{
    fixture *f = *state;
    int64_t bob = 0, ids[5];
    assert_int_equal(store_user_insert(f->s, "bob", "ulb", "bob", "user", &bob), 0);
    for (int i = 0; i < 5; i++) {
        ids[i] = insert_job(f, f->user_id, "a");
        insert_job(f, bob, "b");
    }
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list(f->s, f->user_id, 3, &js, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(js[i].id, ids[4 - i]);
        assert_string_equal(js[i].user, "alice");
    }
    free(js);

    assert_int_equal(store_job_list(f->s, f->user_id, 0, &js, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(js[4].id, ids[0]);
    free(js);

    assert_int_equal(store_job_list(f->s, 0, 0, &js, &n), 0);
    assert_int_equal(n, 10);
    for (size_t i = 1; i < n; i++)
        assert_true(js[i - 1].id > js[i].id);
    free(js);
}

static void job_script_round_trips(void **state)
{
    fixture *f = *state;
    const char *script = "#!/bin/bash\n#SBATCH --comment='x'\necho \"h\xc3\xa9llo\" $HOME\n";
    store_job j = {.user_id = f->user_id};
    assert_int_equal(store_job_insert(f->s, &j, script), 0);
    char *got = NULL;
    assert_int_equal(store_job_script_get(f->s, j.id, &got), 0);
    assert_string_equal(got, script);
    free(got);
}

static void job_script_of_200kb_round_trips(void **state)
{
    fixture *f = *state;
    size_t len = 200 * 1024;
    char *script = malloc(len + 1);
    assert_non_null(script);
    memcpy(script, "#!/bin/sh\n", 10);
    for (size_t i = 10; i < len; i++)
        script[i] = (i % 80 == 79) ? '\n' : (char)('a' + (i * 7) % 26);
    script[len] = '\0';
    store_job j = {.user_id = f->user_id};
    assert_int_equal(store_job_insert(f->s, &j, script), 0);
    char *got = NULL;
    assert_int_equal(store_job_script_get(f->s, j.id, &got), 0);
    assert_int_equal(strlen(got), len);
    assert_memory_equal(got, script, len + 1);
    free(got);
    free(script);
}

static void job_transition_moves_when_state_matches(void **state)
{
    fixture *f = *state;
    int64_t id = insert_job(f, f->user_id, "t");
    assert_int_equal(store_job_transition(f->s, id, "queued", "dispatching", "submitting"), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, "dispatching");
    assert_string_equal(j.reason, "submitting");
    assert_int_equal(j.ended_at, 0);
}

static void job_transition_from_other_state_is_eagain(void **state)
{
    fixture *f = *state;
    int64_t id = insert_job(f, f->user_id, "t");
    assert_int_equal(store_job_transition(f->s, id, "queued", "dispatching", NULL), 0);
    assert_int_equal(store_job_transition(f->s, id, "queued", "dispatching", NULL), -EAGAIN);
    assert_int_equal(store_job_transition(f->s, id + 100, "queued", "dispatching", NULL), -ENOENT);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, "dispatching");
}

static void job_transition_to_terminal_sets_ended_at(void **state)
{
    fixture *f = *state;
    int64_t id = insert_job(f, f->user_id, "t");
    assert_int_equal(store_job_transition(f->s, id, "queued", "dispatching", NULL), 0);
    assert_int_equal(store_job_transition(f->s, id, "dispatching", "failed", "bad partition"), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, "failed");
    assert_string_equal(j.reason, "bad partition");
    assert_true(j.ended_at >= j.submitted_at);
}

static void job_set_dispatched_records_slurm_id(void **state)
{
    fixture *f = *state;
    int64_t id = insert_job(f, f->user_id, "d");
    assert_int_equal(store_job_set_dispatched(f->s, id, 42), -EAGAIN); /* still queued */
    assert_int_equal(store_job_transition(f->s, id, "queued", "dispatching", NULL), 0);
    int64_t before = time(NULL);
    assert_int_equal(store_job_set_dispatched(f->s, id, 42), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, STORE_STATE_DISPATCHED);
    assert_int_equal(j.slurm_job_id, 42);
    assert_true(j.dispatched_at >= before && j.dispatched_at <= time(NULL));
    assert_int_equal(store_job_set_dispatched(f->s, id, 43), -EAGAIN);
    assert_int_equal(store_job_set_dispatched(f->s, id + 100, 43), -ENOENT);
}

static void job_update_records_running_then_completed_with_exit_code(void **state)
{
    fixture *f = *state;
    int64_t id = insert_running_job(f);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, "running");
    assert_int_equal(j.started_at, 1000);
    assert_int_equal(j.ended_at, 0);
    assert_false(j.has_exit_code);
    assert_int_equal(j.slurm_job_id, 4242);

    store_job u = {
        .id = id, .state = "completed", .ended_at = 2000, .has_exit_code = true, .exit_code = 3};
    assert_int_equal(store_job_update(f->s, &u), 0);
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, "completed");
    assert_int_equal(j.started_at, 1000); /* 0 in the update = unknown: kept */
    assert_int_equal(j.ended_at, 2000);
    assert_true(j.has_exit_code);
    assert_int_equal(j.exit_code, 3);
    assert_int_equal(j.slurm_job_id, 4242);
}

static void job_update_never_changes_terminal_job(void **state)
{
    fixture *f = *state;
    int64_t id = insert_running_job(f);
    store_job u = {.id = id, .state = "completed", .ended_at = 2000, .has_exit_code = true};
    assert_int_equal(store_job_update(f->s, &u), 0);

    store_job late = {.id = id,
                      .state = "running",
                      .reason = "again",
                      .started_at = 3000,
                      .ended_at = 4000,
                      .has_exit_code = true,
                      .exit_code = 9,
                      .slurm_job_id = 99};
    assert_int_equal(store_job_update(f->s, &late), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, "completed");
    assert_string_equal(j.reason, "");
    assert_int_equal(j.started_at, 1000);
    assert_int_equal(j.ended_at, 2000);
    assert_int_equal(j.exit_code, 0);
    assert_int_equal(j.slurm_job_id, 4242);
}

static void job_update_pending_reason_then_cleared(void **state)
{
    fixture *f = *state;
    int64_t id = insert_job(f, f->user_id, "p");
    assert_int_equal(store_job_transition(f->s, id, "queued", "dispatching", NULL), 0);
    assert_int_equal(store_job_set_dispatched(f->s, id, 7), 0);
    store_job u = {.id = id, .state = "pending", .reason = "Resources"};
    assert_int_equal(store_job_update(f->s, &u), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, "pending");
    assert_string_equal(j.reason, "Resources");
    store_job r = {.id = id, .state = "running", .started_at = 500};
    assert_int_equal(store_job_update(f->s, &r), 0);
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, "running");
    assert_string_equal(j.reason, "");
}

static void job_update_to_terminal_without_end_time_sets_ended_at(void **state)
{
    fixture *f = *state;
    int64_t id = insert_running_job(f);
    int64_t before = time(NULL);
    store_job u = {.id = id, .state = "failed", .has_exit_code = true, .exit_code = 1};
    assert_int_equal(store_job_update(f->s, &u), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, "failed");
    assert_true(j.ended_at >= before && j.ended_at <= time(NULL));
}

static void job_update_unknown_is_enoent(void **state)
{
    fixture *f = *state;
    store_job u = {.id = 777, .state = "running"};
    assert_int_equal(store_job_update(f->s, &u), -ENOENT);
}

static void job_cancel_queued_is_cancelled_at_once(void **state)
{
    fixture *f = *state;
    int64_t id = insert_job(f, f->user_id, "c");
    bool now_cancelled = false;
    int64_t before = time(NULL);
    assert_int_equal(store_job_cancel_request(f->s, id, &now_cancelled), 0);
    assert_true(now_cancelled);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, "cancelled");
    assert_string_equal(j.reason, "cancelled before dispatch");
    assert_true(j.ended_at >= before && j.ended_at <= time(NULL));
}

static void job_cancel_running_sets_cancel_requested(void **state)
{
    fixture *f = *state;
    int64_t id = insert_running_job(f);
    bool now_cancelled = true;
    assert_int_equal(store_job_cancel_request(f->s, id, &now_cancelled), 0);
    assert_false(now_cancelled);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, "running");
    assert_true(j.cancel_requested);
    assert_int_equal(j.ended_at, 0);
}

static void job_cancel_terminal_is_ealready(void **state)
{
    fixture *f = *state;
    int64_t id = insert_job(f, f->user_id, "c");
    assert_int_equal(store_job_cancel_request(f->s, id, NULL), 0);
    bool now_cancelled = true;
    assert_int_equal(store_job_cancel_request(f->s, id, &now_cancelled), -EALREADY);
    assert_false(now_cancelled);
    assert_int_equal(store_job_cancel_request(f->s, id + 100, NULL), -ENOENT);
}

static void job_list_active_excludes_terminal_oldest_first(void **state)
{
    fixture *f = *state;
    int64_t queued = insert_job(f, f->user_id, "q");
    int64_t running = insert_running_job(f);
    int64_t done = insert_running_job(f);
    store_job u = {.id = done, .state = "completed", .has_exit_code = true};
    assert_int_equal(store_job_update(f->s, &u), 0);
    int64_t cancelled = insert_job(f, f->user_id, "c");
    assert_int_equal(store_job_cancel_request(f->s, cancelled, NULL), 0);
    int64_t dispatching = insert_job(f, f->user_id, "d");
    assert_int_equal(store_job_transition(f->s, dispatching, "queued", "dispatching", NULL), 0);
    int64_t lost = insert_running_job(f);
    assert_int_equal(store_job_transition(f->s, lost, "running", "lost", NULL), 0);

    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list_active(f->s, &js, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(js[0].id, queued);
    assert_int_equal(js[1].id, running);
    assert_int_equal(js[2].id, dispatching);
    free(js);
}

static void state_terminal_knows_every_state(void **state)
{
    (void)state;
    const char *terminal[] = {"completed", "failed",    "cancelled", "timeout",       "node_fail",
                              "preempted", "boot_fail", "deadline",  "out_of_memory", "lost"};
    const char *active[] = {"queued",  "dispatching", "dispatched", "pending",
                            "running", "suspended",   "",           "COMPLETED"};
    for (size_t i = 0; i < sizeof terminal / sizeof terminal[0]; i++)
        assert_true(store_state_terminal(terminal[i]));
    for (size_t i = 0; i < sizeof active / sizeof active[0]; i++)
        assert_false(store_state_terminal(active[i]));
    assert_false(store_state_terminal(NULL));
}

/* --- lifecycle --- */

static void instance_id_is_16_hex_chars(void **state)
{
    fixture *f = *state;
    const char *id = store_instance_id(f->s);
    assert_int_equal(strlen(id), 16);
    for (const char *p = id; *p; p++)
        assert_true(isxdigit((unsigned char)*p));
}

static void reopen_keeps_data_and_instance_id(void **state)
{
    fixture *f = *state;
    char iid[64];
    snprintf(iid, sizeof iid, "%s", store_instance_id(f->s));
    int64_t id = insert_job(f, f->user_id, "keep");
    assert_int_equal(store_token_insert(f->s, f->user_id, HASH_A, NULL, NULL), 0);
    store_free(f->s);
    f->s = NULL;

    assert_int_equal(open_store(f), 0);
    assert_string_equal(store_instance_id(f->s), iid);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.name, "keep");
    store_user u;
    assert_int_equal(store_token_lookup(f->s, HASH_A, &u), 0);
    assert_string_equal(u.name, "alice");
    /* ids keep growing after a restart */
    assert_true(insert_job(f, f->user_id, "next") > id);
}

static void two_databases_get_different_instance_ids(void **state)
{
    fixture *f = *state;
    char other[160], err[256];
    snprintf(other, sizeof other, "%s/other.db", f->dir);
    store *s2 = NULL;
    assert_int_equal(store_new(other, &s2, err, sizeof err), 0);
    assert_string_not_equal(store_instance_id(s2), store_instance_id(f->s));
    store_free(s2);
}

#define THREADS         4
#define JOBS_PER_THREAD 200

typedef struct inserter {
    fixture *f;
    int64_t ids[JOBS_PER_THREAD];
    int failures;
} inserter;

static void *insert_many(void *arg)
{
    inserter *in = arg;
    for (int i = 0; i < JOBS_PER_THREAD; i++) {
        store_job j = {.user_id = in->f->user_id, .gpus = i};
        if (store_job_insert(in->f->s, &j, "#!/bin/sh\n") != 0)
            in->failures++;
        else
            in->ids[i] = j.id;
    }
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void concurrent_inserts_all_land_with_unique_ids(void **state)
{
    fixture *f = *state;
    static inserter ins[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&ins[t], 0, sizeof ins[t]);
        ins[t].f = f;
        assert_int_equal(pthread_create(&th[t], NULL, insert_many, &ins[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);

    int64_t *all = malloc(sizeof *all * THREADS * JOBS_PER_THREAD);
    assert_non_null(all);
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(ins[t].failures, 0);
        memcpy(all + t * JOBS_PER_THREAD, ins[t].ids, sizeof ins[t].ids);
    }
    qsort(all, THREADS * JOBS_PER_THREAD, sizeof *all, cmp_id);
    for (int i = 1; i < THREADS * JOBS_PER_THREAD; i++)
        assert_true(all[i] > all[i - 1]);
    free(all);

    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list(f->s, f->user_id, 0, &js, &n), 0);
    assert_int_equal(n, THREADS * JOBS_PER_THREAD);
    free(js);
}

static void store_new_in_missing_directory_fails_with_message(void **state)
{
    fixture *f = *state;
    char path[160], err[256] = "";
    snprintf(path, sizeof path, "%s/no/such/dir/antenna.db", f->dir);
    store *s = (store *)1;
    int ret = store_new(path, &s, err, sizeof err);
    assert_int_equal(ret, -ENOENT);
    assert_null(s);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "directory does not exist"));
}

static void store_new_on_non_database_file_fails(void **state)
{
    fixture *f = *state;
    char path[160], err[256] = "";
    snprintf(path, sizeof path, "%s/garbage.db", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 100; i++)
        fputs("this is not an sqlite database\n", fp);
    fclose(fp);
    store *s = NULL;
    assert_true(store_new(path, &s, err, sizeof err) < 0);
    assert_null(s);
    assert_non_null(strstr(err, path));
}

/* PRAGMA user_version is the big-endian 32-bit integer at offset 60 of an SQLite file. */
static void store_new_refuses_newer_schema_version(void **state)
{
    fixture *f = *state;
    store_free(f->s); /* the last close checkpoints the WAL into the main file */
    f->s = NULL;
    FILE *fp = fopen(f->path, "r+b");
    assert_non_null(fp);
    const unsigned char version[4] = {0, 0, 0x03, 0xe7}; /* 999 */
    assert_int_equal(fseek(fp, 60, SEEK_SET), 0);
    assert_int_equal(fwrite(version, 1, sizeof version, fp), sizeof version);
    assert_int_equal(fclose(fp), 0);
    char err[256] = "";
    assert_int_equal(store_new(f->path, &f->s, err, sizeof err), -EPROTO);
    assert_null(f->s);
    assert_non_null(strstr(err, "schema version 999"));
}

static void store_free_accepts_null(void **state)
{
    (void)state;
    store_free(NULL);
}

#define T(fn)  cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TU(fn) cmocka_unit_test_setup_teardown(fn, setup_user, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(partner_insert_then_get_returns_it),
        T(partner_get_unknown_is_enoent),
        T(partner_list_is_sorted_by_name),
        T(partner_insert_duplicate_is_eexist),
        T(partner_insert_overlong_name_is_einval),
        TU(user_insert_then_get_returns_partner_name),
        TU(user_insert_unknown_partner_is_enoent),
        TU(user_insert_duplicate_is_eexist),
        TU(user_list_filters_by_partner),
        TU(token_lookup_finds_owner),
        TU(token_lookup_revoked_is_enoent),
        TU(token_lookup_unknown_hash_is_enoent),
        TU(token_insert_unknown_user_is_enoent),
        TU(token_insert_duplicate_hash_is_eexist),
        TU(token_revoke_twice_or_unknown_is_enoent),
        TU(token_list_filters_by_user_and_shows_revocation),
        TU(job_insert_fills_id_state_time_and_owner),
        TU(job_insert_unknown_user_is_enoent),
        TU(job_get_unknown_is_enoent),
        TU(job_list_filters_by_user_newest_first_with_limit),
        TU(job_script_round_trips),
        TU(job_script_of_200kb_round_trips),
        TU(job_transition_moves_when_state_matches),
        TU(job_transition_from_other_state_is_eagain),
        TU(job_transition_to_terminal_sets_ended_at),
        TU(job_set_dispatched_records_slurm_id),
        TU(job_update_records_running_then_completed_with_exit_code),
        TU(job_update_never_changes_terminal_job),
        TU(job_update_pending_reason_then_cleared),
        TU(job_update_to_terminal_without_end_time_sets_ended_at),
        TU(job_update_unknown_is_enoent),
        TU(job_cancel_queued_is_cancelled_at_once),
        TU(job_cancel_running_sets_cancel_requested),
        TU(job_cancel_terminal_is_ealready),
        TU(job_list_active_excludes_terminal_oldest_first),
        cmocka_unit_test(state_terminal_knows_every_state),
        T(instance_id_is_16_hex_chars),
        TU(reopen_keeps_data_and_instance_id),
        T(two_databases_get_different_instance_ids),
        TU(concurrent_inserts_all_land_with_unique_ids),
        T(store_new_in_missing_directory_fails_with_message),
        T(store_new_on_non_database_file_fails),
        T(store_new_refuses_newer_schema_version),
        cmocka_unit_test(store_free_accepts_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
