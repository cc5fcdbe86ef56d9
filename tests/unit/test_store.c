/* test_store.c - unit tests for store.c; each test uses its own temporary database and never
 * touches another file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store.h"

#include <ctype.h>
#include <stdbool.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct fixture {
    char dir[64];
    char path[128];
    store *s;
    int64_t user_id; /* alice of partner ulb */
    bool mounted;    /* f->dir is a tmpfs of its own (setup_tiny_disk) */
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
    if (store_partner_insert(f->s, "ulb", "Universite libre de Bruxelles", 1, NULL) != 0 ||
        store_user_insert(f->s, "alice", "ulb", "alice", "user", "researcher", &f->user_id) != 0) {
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
    if (f->mounted && umount2(f->dir, MNT_DETACH) != 0) print_error("umount %s\n", f->dir);
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

static void job_request_id_is_kept_and_read_back(void **state)
{
    fixture *f = *state;
    store_job j = {0}, got;
    j.user_id = f->user_id;
    j.time_minutes = 5;
    snprintf(j.request_id, sizeof j.request_id, "it-abc123");
    assert_int_equal(store_job_insert(f->s, &j, "#!/bin/sh\n"), 0);
    assert_int_equal(store_job_get(f->s, j.id, &got), 0);
    assert_string_equal(got.request_id, "it-abc123");
    int64_t plain = insert_job(f, f->user_id, "no-rid");
    assert_int_equal(store_job_get(f->s, plain, &got), 0);
    assert_string_equal(got.request_id, "");
}

static void job_with_a_malformed_request_id_is_refused(void **state)
{
    fixture *f = *state;
    store_job j = {0};
    j.user_id = f->user_id;
    j.time_minutes = 5;
    snprintf(j.request_id, sizeof j.request_id, "a b:c");
    assert_int_equal(store_job_insert(f->s, &j, "#!/bin/sh\n"), -EINVAL);
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
    assert_int_equal(store_partner_insert(f->s, "ulb", "Brussels", 1, &id), 0);
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
    assert_int_equal(store_partner_insert(f->s, "vub", NULL, 1, NULL), 0);
    assert_int_equal(store_partner_insert(f->s, "kul", "Leuven", 1, NULL), 0);
    assert_int_equal(store_partner_insert(f->s, "ulb", "Brussels", 1, NULL), 0);
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
    assert_int_equal(store_partner_insert(f->s, "ulb", "a", 1, NULL), 0);
    assert_int_equal(store_partner_insert(f->s, "ulb", "b", 1, NULL), -EEXIST);
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
    assert_int_equal(store_partner_insert(f->s, name, NULL, 1, NULL), -EINVAL);
    assert_int_equal(store_partner_insert(f->s, "", NULL, 1, NULL), -EINVAL);
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
    assert_int_equal(store_user_insert(f->s, "bob", "nowhere", "bob", "user", "researcher", &id),
                     -ENOENT);
    assert_int_equal(id, -1);
    store_user u;
    assert_int_equal(store_user_get(f->s, "bob", &u), -ENOENT);
}

static void user_insert_duplicate_is_eexist(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_user_insert(f->s, "alice", "ulb", "other", "admin", "researcher", NULL),
                     -EEXIST);
    store_user u;
    assert_int_equal(store_user_get(f->s, "alice", &u), 0);
    assert_string_equal(u.unix_user, "alice");
}

static void user_list_filters_by_partner(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_partner_insert(f->s, "vub", NULL, 1, NULL), 0);
    assert_int_equal(store_user_insert(f->s, "carol", "vub", "carol", "admin", "researcher", NULL),
                     0);
    assert_int_equal(store_user_insert(f->s, "bob", "ulb", "bob", "user", "researcher", NULL), 0);

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

static void token_insert_until_keeps_its_expiry(void **state)
{
    fixture *f = *state;
    int64_t tid = 0;
    assert_int_equal(store_token_insert_until(f->s, f->user_id, HASH_A, "short", 1234567, &tid), 0);
    store_token t;
    assert_int_equal(store_token_get(f->s, tid, &t), 0);
    assert_int_equal(t.expires_at, 1234567);
    assert_int_equal(store_token_insert_until(f->s, f->user_id, HASH_B, "x", -1, NULL), -EINVAL);
}

static void token_active_list_has_hash_expiry_and_user_but_no_revoked_token(void **state)
{
    fixture *f = *state;
    int64_t t1 = 0, t2 = 0;
    assert_int_equal(store_token_insert_until(f->s, f->user_id, HASH_A, "a", 99, &t1), 0);
    assert_int_equal(store_token_insert(f->s, f->user_id, HASH_B, "b", &t2), 0);
    assert_int_equal(store_token_revoke(f->s, t2), 0);
    store_token_auth *ts = NULL;
    size_t n = 0;
    assert_int_equal(store_token_active_list(f->s, &ts, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ts[0].id, t1);
    assert_string_equal(ts[0].hash, HASH_A);
    assert_int_equal(ts[0].expires_at, 99);
    assert_string_equal(ts[0].user.name, "alice");
    assert_string_equal(ts[0].user.partner, "ulb");
    assert_false(ts[0].user.disabled);
    free(ts);
}

static void user_update_disables_and_remaps(void **state)
{
    fixture *f = *state;
    store_user u;
    assert_int_equal(store_user_update(f->s, "alice", "alice2", 1), 0);
    assert_int_equal(store_user_get(f->s, "alice", &u), 0);
    assert_true(u.disabled);
    assert_string_equal(u.unix_user, "alice2");
    assert_int_equal(store_user_update(f->s, "alice", NULL, 0), 0);
    assert_int_equal(store_user_get_id(f->s, f->user_id, &u), 0);
    assert_false(u.disabled);
    assert_string_equal(u.unix_user, "alice2");
    assert_int_equal(store_user_update(f->s, "ghost", NULL, 1), -ENOENT);
    assert_int_equal(store_user_update(f->s, "alice", NULL, 2), -EINVAL);
}

static void user_of_another_partner_on_the_same_account_is_enotuniq(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_partner_insert(f->s, "vub", NULL, 1, NULL), 0);
    /* alice (ulb) runs as "alice": a vub user may not, a ulb user may */
    assert_int_equal(store_user_insert(f->s, "victor", "vub", "alice", "user", "sme", NULL),
                     -ENOTUNIQ);
    assert_int_equal(store_user_insert(f->s, "bob", "ulb", "alice", "user", "sme", NULL), 0);
    assert_int_equal(store_user_insert(f->s, "victor", "vub", "victor", "user", "sme", NULL), 0);
    assert_int_equal(store_user_update(f->s, "victor", "alice", -1), -ENOTUNIQ);
    store_user u;
    assert_int_equal(store_user_get(f->s, "victor", &u), 0);
    assert_string_equal(u.unix_user, "victor");
}

static void token_list_filters_by_user_and_shows_revocation(void **state)
{
    fixture *f = *state;
    int64_t bob = 0, t1 = 0, t2 = 0;
    assert_int_equal(store_user_insert(f->s, "bob", "ulb", "bob", "user", "researcher", &bob), 0);
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
    assert_int_equal(store_job_list(f->s, 0, NULL, 0, &js, &n), 0);
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
    assert_int_equal(store_user_insert(f->s, "bob", "ulb", "bob", "user", "researcher", &bob), 0);
    for (int i = 0; i < 5; i++) {
        ids[i] = insert_job(f, f->user_id, "a");
        insert_job(f, bob, "b");
    }
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list(f->s, f->user_id, NULL, 3, &js, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(js[i].id, ids[4 - i]);
        assert_string_equal(js[i].user, "alice");
    }
    free(js);

    assert_int_equal(store_job_list(f->s, f->user_id, NULL, 0, &js, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(js[4].id, ids[0]);
    free(js);

    assert_int_equal(store_job_list(f->s, 0, NULL, 0, &js, &n), 0);
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

static void job_extra_gives_total_cpus_and_options(void **state)
{
    fixture *f = *state;
    store_job j = {.user_id = f->user_id, .cpus_per_task = 2};
    assert_int_equal(store_job_insert(f->s, &j, "#!/bin/sh\n"), 0);
    assert_int_equal(store_job_extra_set(f->s, j.id, 16, "{\"nodes\":2}"), 0);
    store_job got;
    assert_int_equal(store_job_get(f->s, j.id, &got), 0);
    assert_int_equal(got.cpus, 16);
    char *opts = NULL;
    assert_int_equal(store_job_options_get(f->s, j.id, &opts), 0);
    assert_string_equal(opts, "{\"nodes\":2}");
    free(opts);
}

static void job_without_extra_has_no_options_and_cpus_zero(void **state)
{
    fixture *f = *state;
    store_job j = {.user_id = f->user_id, .cpus_per_task = 2};
    assert_int_equal(store_job_insert(f->s, &j, "#!/bin/sh\n"), 0);
    store_job got;
    assert_int_equal(store_job_get(f->s, j.id, &got), 0);
    assert_int_equal(got.cpus, 0);
    char *opts = NULL;
    assert_int_equal(store_job_options_get(f->s, j.id, &opts), 0);
    assert_string_equal(opts, "");
    free(opts);
    assert_int_equal(store_job_options_get(f->s, 99999, &opts), -ENOENT);
    assert_int_equal(store_job_extra_set(f->s, 99999, 1, ""), -ENOENT);
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
    assert_int_equal(store_job_list(f->s, f->user_id, NULL, 0, &js, &n), 0);
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

/* --- v2: partners, users --- */

static void partner_insert_keeps_share_weight_in_every_read(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_partner_insert(f->s, "ulb", "Brussels", 7, NULL), 0);
    store_partner p;
    assert_int_equal(store_partner_get(f->s, "ulb", &p), 0);
    assert_int_equal(p.share_weight, 7);
    store_partner *ps = NULL;
    size_t n = 0;
    assert_int_equal(store_partner_list(f->s, &ps, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ps[0].share_weight, 7);
    free(ps);
}

static void partner_insert_share_weight_below_1_is_einval(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_partner_insert(f->s, "ulb", "Brussels", 0, NULL), -EINVAL);
    assert_int_equal(store_partner_insert(f->s, "ulb", "Brussels", -3, NULL), -EINVAL);
    store_partner p;
    assert_int_equal(store_partner_get(f->s, "ulb", &p), -ENOENT);
}

static void partner_update_changes_description_and_share_weight(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_partner_insert(f->s, "ulb", "Brussels", 1, NULL), 0);
    assert_int_equal(store_partner_insert(f->s, "vub", "Other", 1, NULL), 0);
    assert_int_equal(store_partner_update(f->s, "ulb", "ULB, Brussels", 3), 0);
    store_partner *ps = NULL;
    size_t n = 0;
    assert_int_equal(store_partner_list(f->s, &ps, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ps[0].name, "ulb");
    assert_string_equal(ps[0].description, "ULB, Brussels");
    assert_int_equal(ps[0].share_weight, 3);
    assert_string_equal(ps[1].description, "Other"); /* the other partner is untouched */
    assert_int_equal(ps[1].share_weight, 1);
    free(ps);
}

static void partner_update_keeps_fields_not_given(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_partner_insert(f->s, "ulb", "Brussels", 1, NULL), 0);
    assert_int_equal(store_partner_update(f->s, "ulb", NULL, 5), 0);
    store_partner p;
    assert_int_equal(store_partner_get(f->s, "ulb", &p), 0);
    assert_string_equal(p.description, "Brussels");
    assert_int_equal(p.share_weight, 5);
    assert_int_equal(store_partner_update(f->s, "ulb", "", 0), 0);
    assert_int_equal(store_partner_get(f->s, "ulb", &p), 0);
    assert_string_equal(p.description, "");
    assert_int_equal(p.share_weight, 5);
}

static void partner_update_unknown_is_enoent_bad_weight_einval(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_partner_insert(f->s, "ulb", "Brussels", 1, NULL), 0);
    assert_int_equal(store_partner_update(f->s, "nobody", "x", 2), -ENOENT);
    assert_int_equal(store_partner_update(f->s, "ulb", "x", -1), -EINVAL);
    store_partner p;
    assert_int_equal(store_partner_get(f->s, "ulb", &p), 0);
    assert_string_equal(p.description, "Brussels");
    assert_int_equal(p.share_weight, 1);
}

static void user_category_is_kept_in_every_read(void **state)
{
    fixture *f = *state;
    int64_t bob = 0;
    assert_int_equal(store_user_insert(f->s, "bob", "ulb", "bob", "manager", "sme", &bob), 0);
    assert_int_equal(store_token_insert(f->s, bob, HASH_B, "ci", NULL), 0);
    store_user u;
    assert_int_equal(store_user_get(f->s, "bob", &u), 0);
    assert_string_equal(u.category, "sme");
    assert_string_equal(u.role, "manager");
    assert_int_equal(store_token_lookup(f->s, HASH_B, &u), 0);
    assert_string_equal(u.category, "sme");
    store_user *us = NULL;
    size_t n = 0;
    assert_int_equal(store_user_list(f->s, "ulb", &us, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(us[0].name, "alice");
    assert_string_equal(us[0].category, "researcher");
    assert_string_equal(us[1].name, "bob");
    assert_string_equal(us[1].category, "sme");
    free(us);
}

static void user_insert_overlong_category_is_einval(void **state)
{
    fixture *f = *state;
    assert_int_equal(
        store_user_insert(f->s, "bob", "ulb", "bob", "user", "a-category-too-long", NULL), -EINVAL);
    assert_int_equal(store_user_insert(f->s, "bob", "ulb", "bob", "user", "", NULL), -EINVAL);
    store_user u;
    assert_int_equal(store_user_get(f->s, "bob", &u), -ENOENT);
}

/* --- v2: quotas --- */

#define PERIOD "2026-11"

static store_quota quota_of(const char *partner, const char *period, int64_t gpu_s, int64_t cpu_s)
{
    store_quota q = {.gpu_seconds = gpu_s,
                     .cpu_seconds = cpu_s,
                     .max_gpus = STORE_UNLIMITED,
                     .max_running_jobs = STORE_UNLIMITED,
                     .max_queued_jobs = STORE_UNLIMITED,
                     .max_walltime_minutes = STORE_UNLIMITED,
                     .user_max_gpus = STORE_UNLIMITED};
    snprintf(q.partner, sizeof q.partner, "%s", partner);
    snprintf(q.period, sizeof q.period, "%s", period);
    return q;
}

static void set_budget(fixture *f, const char *period, int64_t gpu_s, int64_t cpu_s)
{
    store_quota q = quota_of("ulb", period, gpu_s, cpu_s);
    assert_int_equal(store_quota_set(f->s, &q), 0);
}

static void quota_set_then_get_returns_it(void **state)
{
    fixture *f = *state;
    store_quota q = {.gpu_seconds = 360000,
                     .cpu_seconds = STORE_UNLIMITED,
                     .max_gpus = 8,
                     .max_running_jobs = 4,
                     .max_queued_jobs = 50,
                     .max_walltime_minutes = 1440,
                     .user_max_gpus = 2};
    snprintf(q.partner, sizeof q.partner, "ulb");
    snprintf(q.period, sizeof q.period, PERIOD);
    int64_t before = time(NULL);
    assert_int_equal(store_quota_set(f->s, &q), 0);
    store_quota g;
    assert_int_equal(store_quota_get(f->s, "ulb", PERIOD, &g), 0);
    assert_string_equal(g.partner, "ulb");
    assert_string_equal(g.period, PERIOD);
    assert_int_equal(g.gpu_seconds, 360000);
    assert_int_equal(g.cpu_seconds, STORE_UNLIMITED);
    assert_int_equal(g.max_gpus, 8);
    assert_int_equal(g.max_running_jobs, 4);
    assert_int_equal(g.max_queued_jobs, 50);
    assert_int_equal(g.max_walltime_minutes, 1440);
    assert_int_equal(g.user_max_gpus, 2);
    assert_true(g.updated_at >= before && g.updated_at <= time(NULL));
}

static void quota_set_again_replaces_it(void **state)
{
    fixture *f = *state;
    set_budget(f, PERIOD, 100, 200);
    store_quota q = quota_of("ulb", PERIOD, 300, STORE_UNLIMITED);
    q.max_gpus = 4;
    assert_int_equal(store_quota_set(f->s, &q), 0);
    store_quota *qs = NULL;
    size_t n = 0;
    assert_int_equal(store_quota_list(f->s, NULL, &qs, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(qs[0].gpu_seconds, 300);
    assert_int_equal(qs[0].cpu_seconds, STORE_UNLIMITED);
    assert_int_equal(qs[0].max_gpus, 4);
    free(qs);
}

static void quota_list_sorts_by_partner_then_period_and_filters_by_period(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_partner_insert(f->s, "kul", NULL, 1, NULL), 0);
    set_budget(f, "2026-12", 1, 1);
    set_budget(f, PERIOD, 2, 2);
    store_quota q = quota_of("kul", PERIOD, 3, 3);
    assert_int_equal(store_quota_set(f->s, &q), 0);

    store_quota *qs = NULL;
    size_t n = 0;
    assert_int_equal(store_quota_list(f->s, NULL, &qs, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(qs[0].partner, "kul");
    assert_string_equal(qs[1].partner, "ulb");
    assert_string_equal(qs[1].period, PERIOD);
    assert_string_equal(qs[2].partner, "ulb");
    assert_string_equal(qs[2].period, "2026-12");
    free(qs);

    assert_int_equal(store_quota_list(f->s, "2026-12", &qs, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(qs[0].partner, "ulb");
    assert_int_equal(qs[0].gpu_seconds, 1);
    free(qs);

    assert_int_equal(store_quota_list(f->s, "2020-01", &qs, &n), 0);
    assert_int_equal(n, 0);
    assert_null(qs);
}

static void quota_of_unknown_partner_is_enoent(void **state)
{
    fixture *f = *state;
    store_quota q = quota_of("nobody", PERIOD, 100, 100);
    assert_int_equal(store_quota_set(f->s, &q), -ENOENT);
    store_quota g;
    assert_int_equal(store_quota_get(f->s, "nobody", PERIOD, &g), -ENOENT);
    store_quota *qs = NULL;
    size_t n = 0;
    assert_int_equal(store_quota_list(f->s, NULL, &qs, &n), 0);
    assert_int_equal(n, 0);
}

static void quota_get_never_set_is_enoent(void **state)
{
    fixture *f = *state;
    set_budget(f, "2026-10", 100, 100);
    store_quota g;
    assert_int_equal(store_quota_get(f->s, "ulb", PERIOD, &g), -ENOENT);
}

static void quota_set_bad_values_is_einval(void **state)
{
    fixture *f = *state;
    store_quota q = quota_of("ulb", PERIOD, -2, 0);
    assert_int_equal(store_quota_set(f->s, &q), -EINVAL);
    q = quota_of("ulb", PERIOD, 0, 0);
    q.user_max_gpus = -5;
    assert_int_equal(store_quota_set(f->s, &q), -EINVAL);
    const char *bad_periods[] = {"2026-13", "2026-00", "2026-1", "202611", "abcd-ef", ""};
    for (size_t i = 0; i < sizeof bad_periods / sizeof bad_periods[0]; i++) {
        q = quota_of("ulb", bad_periods[i], 0, 0);
        assert_int_equal(store_quota_set(f->s, &q), -EINVAL);
    }
    store_quota *qs = NULL;
    size_t n = 0;
    assert_int_equal(store_quota_list(f->s, NULL, &qs, &n), 0);
    assert_int_equal(n, 0);
}

/* --- v2: dispatch, holds, charges --- */

static size_t ledger_rows(fixture *f, int64_t job_id, const char *kind)
{
    store_ledger_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_ledger_list(f->s, NULL, job_id, kind, 0, &es, &n), 0);
    free(es);
    return n;
}

static void dispatch_begin_within_budget_holds_and_moves_to_dispatching(void **state)
{
    fixture *f = *state;
    set_budget(f, PERIOD, 1000, 500);
    int64_t id = insert_job(f, f->user_id, "d");
    assert_int_equal(store_job_reason_set(f->s, id, "Priority"), 0);
    int64_t before = time(NULL);
    assert_int_equal(store_job_dispatch_begin(f->s, id, PERIOD, 600, 200), 0);

    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, STORE_STATE_DISPATCHING);
    assert_string_equal(j.reason, ""); /* it no longer waits */
    assert_string_equal(j.period, PERIOD);
    assert_int_equal(j.hold_gpu_seconds, 600);
    assert_int_equal(j.hold_cpu_seconds, 200);
    assert_int_equal(j.charge_gpu_seconds, 0);

    store_ledger_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_ledger_list(f->s, NULL, 0, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(es[0].job_id, id);
    assert_string_equal(es[0].partner, "ulb");
    assert_string_equal(es[0].period, PERIOD);
    assert_string_equal(es[0].kind, "hold");
    assert_int_equal(es[0].gpu_seconds, 600);
    assert_int_equal(es[0].cpu_seconds, 200);
    assert_true(es[0].at >= before && es[0].at <= time(NULL));
    free(es);
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

static void run_end_charges_the_run_keeps_the_hold_and_adds_up_the_runs(void **state)
{
    fixture *f = *state;
    set_budget(f, PERIOD, 10000, STORE_UNLIMITED);
    int64_t id = insert_job(f, f->user_id, "rq");
    assert_int_equal(store_job_dispatch_begin(f->s, id, PERIOD, 3600, 0), 0);
    assert_int_equal(store_job_set_dispatched(f->s, id, 77), 0);
    store_job u = {.id = id, .state = "running", .started_at = 1000};
    assert_int_equal(store_job_update(f->s, &u), 0);
    store_run r = {.job_id = id,
                   .runs = 1,
                   .slurm_job_id = 77,
                   .started_at = 1000,
                   .ended_at = 1100,
                   .elapsed_seconds = 100,
                   .charge_gpu_seconds = 200,
                   .charge_cpu_seconds = 100};
    assert_int_equal(store_job_run_end(f->s, &r), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_int_equal(j.restarts, 1);
    assert_int_equal(prior_run_seconds(f->s, id), 100);
    assert_int_equal(j.started_at, 0); /* its next run sets it */
    assert_int_equal(j.charge_gpu_seconds, 200);
    assert_int_equal(j.hold_gpu_seconds, 3600); /* kept for the next run */
    assert_int_equal(ledger_rows(f, id, "charge"), 1);
    assert_int_equal(ledger_rows(f, id, "release"), 0);
    /* two more runs ended unseen, then the last run and the end */
    r.runs = 2;
    r.started_at = 1200;
    r.ended_at = 1500;
    r.elapsed_seconds = 300;
    r.charge_gpu_seconds = 600;
    assert_int_equal(store_job_run_end(f->s, &r), 0);
    u = (store_job){.id = id, .state = "running", .started_at = 1600};
    assert_int_equal(store_job_update(f->s, &u), 0);
    u = (store_job){.id = id, .state = "completed", .ended_at = 1650, .charge_gpu_seconds = 100};
    assert_int_equal(store_job_update(f->s, &u), 0);
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_int_equal(j.restarts, 3);
    assert_int_equal(prior_run_seconds(f->s, id), 400);
    assert_int_equal(j.started_at, 1600);
    assert_int_equal(j.charge_gpu_seconds, 900);
    assert_int_equal(j.charge_cpu_seconds, 200);
    assert_int_equal(ledger_rows(f, id, "charge"), 3);
    assert_int_equal(ledger_rows(f, id, "release"), 1);
    store_run *rs = NULL;
    size_t n = 0;
    assert_int_equal(store_job_runs_list(f->s, id, &rs, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rs[0].run, 1);
    assert_int_equal(rs[0].runs, 1);
    assert_int_equal(rs[0].ended_at, 1100);
    assert_int_equal(rs[1].run, 2);
    assert_int_equal(rs[1].runs, 2);
    assert_int_equal(rs[1].charge_gpu_seconds, 600);
    free(rs);
    /* an ended job has no more runs */
    assert_int_equal(store_job_run_end(f->s, &r), -EALREADY);
}

static void run_end_refuses_a_queued_job_and_bad_runs(void **state)
{
    fixture *f = *state;
    int64_t id = insert_job(f, f->user_id, "q");
    store_run r = {.job_id = id, .runs = 1, .started_at = 10, .ended_at = 20};
    assert_int_equal(store_job_run_end(f->s, &r), -EALREADY);
    r.runs = 0;
    assert_int_equal(store_job_run_end(f->s, &r), -EINVAL);
    r.runs = 1;
    r.ended_at = 5;
    assert_int_equal(store_job_run_end(f->s, &r), -EINVAL);
    r = (store_run){.job_id = 999999, .runs = 1};
    assert_int_equal(store_job_run_end(f->s, &r), -ENOENT);
    store_run *rs = NULL;
    size_t n = 7;
    assert_int_equal(store_job_runs_list(f->s, id, &rs, &n), 0);
    assert_int_equal(n, 0);
    assert_null(rs);
}

static void dispatch_begin_over_budget_is_edquot_and_writes_nothing(void **state)
{
    fixture *f = *state;
    set_budget(f, PERIOD, 1000, STORE_UNLIMITED);
    int64_t id = insert_job(f, f->user_id, "big");
    assert_int_equal(store_job_reason_set(f->s, id, "BudgetHeld"), 0);
    assert_int_equal(store_job_dispatch_begin(f->s, id, PERIOD, 1001, 0), -EDQUOT);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, STORE_STATE_QUEUED);
    assert_string_equal(j.reason, "BudgetHeld");
    assert_string_equal(j.period, "");
    assert_int_equal(j.hold_gpu_seconds, 0);
    assert_int_equal(ledger_rows(f, 0, NULL), 0);
    /* the exact budget still fits */
    assert_int_equal(store_job_dispatch_begin(f->s, id, PERIOD, 1000, 0), 0);
}

static void dispatch_begin_counts_used_and_held_against_budget(void **state)
{
    fixture *f = *state;
    set_budget(f, PERIOD, 100, STORE_UNLIMITED);
    int64_t a = insert_job(f, f->user_id, "a"), b = insert_job(f, f->user_id, "b"),
            c = insert_job(f, f->user_id, "c");
    assert_int_equal(store_job_dispatch_begin(f->s, a, PERIOD, 60, 0), 0);
    assert_int_equal(store_job_dispatch_begin(f->s, b, PERIOD, 50, 0), -EDQUOT); /* 60 held */
    assert_int_equal(store_job_set_dispatched(f->s, a, 11), 0);
    store_job u = {.id = a, .state = "completed", .charge_gpu_seconds = 30};
    assert_int_equal(store_job_update(f->s, &u), 0); /* 30 used, 0 held: 70 left */
    assert_int_equal(store_job_dispatch_begin(f->s, b, PERIOD, 50, 0), 0); /* 20 left */
    assert_int_equal(store_job_dispatch_begin(f->s, c, PERIOD, 21, 0), -EDQUOT);
    assert_int_equal(store_job_dispatch_begin(f->s, c, PERIOD, 20, 0), 0);
}

static void dispatch_begin_unlimited_budget_always_fits(void **state)
{
    fixture *f = *state;
    set_budget(f, PERIOD, STORE_UNLIMITED, STORE_UNLIMITED);
    for (int i = 0; i < 3; i++) {
        int64_t id = insert_job(f, f->user_id, "u");
        assert_int_equal(store_job_dispatch_begin(f->s, id, PERIOD, INT64_MAX / 4, INT64_MAX / 4),
                         0);
    }
    assert_int_equal(ledger_rows(f, 0, "hold"), 3);
}

static void dispatch_begin_without_quota_fits_only_zero_hold(void **state)
{
    fixture *f = *state;
    int64_t a = insert_job(f, f->user_id, "a"), b = insert_job(f, f->user_id, "b");
    assert_int_equal(store_job_dispatch_begin(f->s, a, PERIOD, 1, 0), -EDQUOT);
    assert_int_equal(store_job_dispatch_begin(f->s, a, PERIOD, 0, 1), -EDQUOT);
    assert_int_equal(ledger_rows(f, 0, NULL), 0);
    assert_int_equal(store_job_dispatch_begin(f->s, b, PERIOD, 0, 0), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, b, &j), 0);
    assert_string_equal(j.state, STORE_STATE_DISPATCHING);
}

static void dispatch_begin_uses_the_quota_of_its_period_only(void **state)
{
    fixture *f = *state;
    set_budget(f, "2026-10", 1000, 1000);
    int64_t id = insert_job(f, f->user_id, "p");
    assert_int_equal(store_job_dispatch_begin(f->s, id, PERIOD, 10, 0), -EDQUOT);
    assert_int_equal(store_job_dispatch_begin(f->s, id, "2026-10", 10, 0), 0);
}

static void dispatch_begin_checks_cpu_budget_separately(void **state)
{
    fixture *f = *state;
    set_budget(f, PERIOD, STORE_UNLIMITED, 100);
    int64_t a = insert_job(f, f->user_id, "a"), b = insert_job(f, f->user_id, "b");
    assert_int_equal(store_job_dispatch_begin(f->s, a, PERIOD, 5, 101), -EDQUOT);
    assert_int_equal(store_job_dispatch_begin(f->s, a, PERIOD, 5, 70), 0);
    assert_int_equal(store_job_dispatch_begin(f->s, b, PERIOD, 0, 31), -EDQUOT); /* 30 left */
    set_budget(f, PERIOD, 5, STORE_UNLIMITED); /* now no GPU-s left (a holds 5), CPU unlimited */
    assert_int_equal(store_job_dispatch_begin(f->s, b, PERIOD, 1, 0), -EDQUOT);
    assert_int_equal(store_job_dispatch_begin(f->s, b, PERIOD, 0, 1000000), 0);
}

static void dispatch_begin_not_queued_is_eagain_unknown_is_enoent(void **state)
{
    fixture *f = *state;
    set_budget(f, PERIOD, 1000, 1000);
    int64_t id = insert_job(f, f->user_id, "d");
    assert_int_equal(store_job_dispatch_begin(f->s, id, PERIOD, 10, 10), 0);
    assert_int_equal(store_job_dispatch_begin(f->s, id, PERIOD, 10, 10), -EAGAIN);
    assert_int_equal(store_job_dispatch_begin(f->s, id + 100, PERIOD, 10, 10), -ENOENT);
    assert_int_equal(store_job_dispatch_begin(f->s, id, "2026-1", 10, 10), -EINVAL);
    assert_int_equal(store_job_dispatch_begin(f->s, id, PERIOD, -1, 10), -EINVAL);
    assert_int_equal(ledger_rows(f, 0, NULL), 1);
}

/* A job dispatched with holds of 600 GPU-s and 200 CPU-s against a budget that has room. */
static int64_t insert_held_job(fixture *f)
{
    store_quota q;
    if (store_quota_get(f->s, "ulb", PERIOD, &q) != 0) set_budget(f, PERIOD, 100000, 100000);
    int64_t id = insert_job(f, f->user_id, "held");
    assert_int_equal(store_job_dispatch_begin(f->s, id, PERIOD, 600, 200), 0);
    return id;
}

static void transition_to_failed_releases_hold(void **state)
{
    fixture *f = *state;
    int64_t id = insert_held_job(f);
    assert_int_equal(store_job_transition(f->s, id, "dispatching", "failed", "bad script"), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_int_equal(j.hold_gpu_seconds, 0);
    assert_int_equal(j.hold_cpu_seconds, 0);
    assert_string_equal(j.period, PERIOD);
    store_ledger_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_ledger_list(f->s, NULL, id, "release", 0, &es, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(es[0].period, PERIOD);
    assert_int_equal(es[0].gpu_seconds, -600);
    assert_int_equal(es[0].cpu_seconds, -200);
    free(es);
}

static void transition_to_queued_releases_hold_and_allows_a_new_dispatch(void **state)
{
    fixture *f = *state;
    set_budget(f, PERIOD, 600, 200); /* room for one hold only */
    int64_t id = insert_held_job(f);
    assert_int_equal(store_job_transition(f->s, id, "dispatching", "queued", "Slurm unreachable"),
                     0);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, "queued");
    assert_int_equal(j.hold_gpu_seconds, 0);
    assert_int_equal(j.ended_at, 0);
    assert_int_equal(ledger_rows(f, id, "release"), 1);
    assert_int_equal(store_job_dispatch_begin(f->s, id, PERIOD, 600, 200), 0);
    assert_int_equal(ledger_rows(f, id, "hold"), 2);
}

static void transition_between_active_states_keeps_hold(void **state)
{
    fixture *f = *state;
    int64_t id = insert_held_job(f);
    assert_int_equal(store_job_transition(f->s, id, "dispatching", "dispatched", NULL), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_int_equal(j.hold_gpu_seconds, 600);
    assert_int_equal(ledger_rows(f, id, "release"), 0);
}

static void hold_is_released_once_whatever_the_call_order(void **state)
{
    fixture *f = *state;
    /* failed, then a late update from Slurm, then another terminal state */
    int64_t a = insert_held_job(f);
    assert_int_equal(store_job_transition(f->s, a, "dispatching", "failed", NULL), 0);
    store_job u = {.id = a, .state = "completed", .charge_gpu_seconds = 5};
    assert_int_equal(store_job_update(f->s, &u), 0); /* terminal: never changed again */
    assert_int_equal(store_job_transition(f->s, a, "failed", "lost", NULL), 0);
    assert_int_equal(ledger_rows(f, a, "hold"), 1);
    assert_int_equal(ledger_rows(f, a, "release"), 1);
    assert_int_equal(ledger_rows(f, a, "charge"), 0);
    /* back to the queue, then cancelled there */
    int64_t b = insert_held_job(f);
    assert_int_equal(store_job_transition(f->s, b, "dispatching", "queued", NULL), 0);
    bool now_cancelled = false;
    assert_int_equal(store_job_cancel_request(f->s, b, &now_cancelled), 0);
    assert_true(now_cancelled);
    assert_int_equal(ledger_rows(f, b, "hold"), 1);
    assert_int_equal(ledger_rows(f, b, "release"), 1);
    store_ledger_totals *ts = NULL;
    size_t n = 0;
    assert_int_equal(store_ledger_totals_list(f->s, &ts, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ts[0].held_gpu_seconds, 0);
    assert_int_equal(ts[0].held_cpu_seconds, 0);
    free(ts);
}

static void update_to_completed_releases_hold_and_writes_charge(void **state)
{
    fixture *f = *state;
    int64_t id = insert_held_job(f);
    assert_int_equal(store_job_set_dispatched(f->s, id, 77), 0);
    store_job r = {.id = id, .state = "running", .started_at = 1000};
    assert_int_equal(store_job_update(f->s, &r), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_int_equal(j.hold_gpu_seconds, 600); /* running: still held */

    int64_t before = time(NULL);
    store_job u = {.id = id,
                   .state = "completed",
                   .ended_at = 1400,
                   .has_exit_code = true,
                   .charge_gpu_seconds = 400,
                   .charge_cpu_seconds = 150};
    assert_int_equal(store_job_update(f->s, &u), 0);
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, "completed");
    assert_int_equal(j.hold_gpu_seconds, 0);
    assert_int_equal(j.hold_cpu_seconds, 0);
    assert_int_equal(j.charge_gpu_seconds, 400);
    assert_int_equal(j.charge_cpu_seconds, 150);

    store_ledger_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_ledger_list(f->s, "ulb", id, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(es[0].kind, "hold");
    assert_string_equal(es[1].kind, "release");
    assert_int_equal(es[1].gpu_seconds, -600);
    assert_string_equal(es[2].kind, "charge");
    assert_string_equal(es[2].period, PERIOD);
    assert_int_equal(es[2].gpu_seconds, 400);
    assert_int_equal(es[2].cpu_seconds, 150);
    assert_true(es[2].at >= before && es[2].at <= time(NULL));
    free(es);
}

static void update_to_terminal_without_charge_writes_no_charge_row(void **state)
{
    fixture *f = *state;
    int64_t id = insert_held_job(f);
    assert_int_equal(store_job_set_dispatched(f->s, id, 78), 0);
    store_job u = {.id = id, .state = "cancelled"};
    assert_int_equal(store_job_update(f->s, &u), 0);
    assert_int_equal(ledger_rows(f, id, "release"), 1);
    assert_int_equal(ledger_rows(f, id, "charge"), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_int_equal(j.hold_gpu_seconds, 0);
    assert_int_equal(j.charge_gpu_seconds, 0);
}

static void update_charge_of_job_without_period_uses_dispatch_month(void **state)
{
    fixture *f = *state;
    /* dispatched without a hold, as a job in flight when a v1 database was migrated */
    int64_t id = insert_job(f, f->user_id, "old");
    assert_int_equal(store_job_transition(f->s, id, "queued", "dispatching", NULL), 0);
    assert_int_equal(store_job_set_dispatched(f->s, id, 79), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    char month[8];
    time_t t = (time_t)j.dispatched_at;
    struct tm tm;
    assert_non_null(gmtime_r(&t, &tm));
    assert_int_equal(strftime(month, sizeof month, "%Y-%m", &tm), 7);

    store_job u = {.id = id, .state = "completed", .charge_cpu_seconds = 9};
    assert_int_equal(store_job_update(f->s, &u), 0);
    store_ledger_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_ledger_list(f->s, NULL, id, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(es[0].kind, "charge");
    assert_string_equal(es[0].period, month);
    assert_int_equal(es[0].gpu_seconds, 0);
    assert_int_equal(es[0].cpu_seconds, 9);
    free(es);
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.period, month);
    assert_int_equal(j.charge_cpu_seconds, 9);
}

static void update_negative_charge_is_einval(void **state)
{
    fixture *f = *state;
    int64_t id = insert_held_job(f);
    store_job u = {.id = id, .state = "completed", .charge_gpu_seconds = -1};
    assert_int_equal(store_job_update(f->s, &u), -EINVAL);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.state, STORE_STATE_DISPATCHING);
    assert_int_equal(ledger_rows(f, id, NULL), 1);
}

/* --- v2: ledger --- */

static void ledger_totals_match_rows(void **state)
{
    fixture *f = *state;
    int64_t carol = 0;
    assert_int_equal(store_partner_insert(f->s, "kul", NULL, 1, NULL), 0);
    assert_int_equal(store_user_insert(f->s, "carol", "kul", "carol", "user", "sme", &carol), 0);
    set_budget(f, PERIOD, 10000, 10000);
    set_budget(f, "2026-12", 10000, 10000);
    store_quota q = quota_of("kul", PERIOD, STORE_UNLIMITED, STORE_UNLIMITED);
    assert_int_equal(store_quota_set(f->s, &q), 0);

    /* ulb 2026-11: one charged job, one still held; ulb 2026-12: one failed; kul: one held */
    int64_t a = insert_job(f, f->user_id, "a"), b = insert_job(f, f->user_id, "b"),
            c = insert_job(f, f->user_id, "c"), d = insert_job(f, carol, "d");
    assert_int_equal(store_job_dispatch_begin(f->s, a, PERIOD, 1000, 100), 0);
    assert_int_equal(store_job_dispatch_begin(f->s, b, PERIOD, 700, 70), 0);
    assert_int_equal(store_job_dispatch_begin(f->s, c, "2026-12", 500, 50), 0);
    assert_int_equal(store_job_dispatch_begin(f->s, d, PERIOD, 300, 30), 0);
    assert_int_equal(store_job_set_dispatched(f->s, a, 1), 0);
    store_job u = {
        .id = a, .state = "completed", .charge_gpu_seconds = 800, .charge_cpu_seconds = 60};
    assert_int_equal(store_job_update(f->s, &u), 0);
    assert_int_equal(store_job_transition(f->s, c, "dispatching", "failed", NULL), 0);

    store_ledger_totals *ts = NULL;
    size_t n = 0;
    assert_int_equal(store_ledger_totals_list(f->s, &ts, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(ts[0].partner, "kul");
    assert_int_equal(ts[0].held_gpu_seconds, 300);
    assert_int_equal(ts[0].used_gpu_seconds, 0);
    assert_int_equal(ts[0].last_charge_at, 0);
    assert_string_equal(ts[1].partner, "ulb");
    assert_string_equal(ts[1].period, PERIOD);
    assert_int_equal(ts[1].used_gpu_seconds, 800);
    assert_int_equal(ts[1].held_gpu_seconds, 700);
    assert_int_equal(ts[1].used_cpu_seconds, 60);
    assert_int_equal(ts[1].held_cpu_seconds, 70);
    assert_true(ts[1].last_charge_at > 0);
    assert_string_equal(ts[2].period, "2026-12");
    assert_int_equal(ts[2].used_gpu_seconds, 0);
    assert_int_equal(ts[2].held_gpu_seconds, 0);

    /* the same sums, recomputed from the rows */
    store_ledger_entry *es = NULL;
    size_t ne = 0;
    assert_int_equal(store_ledger_list(f->s, NULL, 0, NULL, 0, &es, &ne), 0);
    assert_int_equal(ne, 7); /* 4 holds, the releases of a and c, the charge of a */
    for (size_t t = 0; t < n; t++) {
        int64_t used_g = 0, held_g = 0, used_c = 0, held_c = 0, last = 0;
        for (size_t i = 0; i < ne; i++) {
            if (strcmp(es[i].partner, ts[t].partner) || strcmp(es[i].period, ts[t].period))
                continue;
            if (strcmp(es[i].kind, "charge") == 0) {
                used_g += es[i].gpu_seconds;
                used_c += es[i].cpu_seconds;
                if (es[i].at > last) last = es[i].at;
            } else {
                held_g += es[i].gpu_seconds;
                held_c += es[i].cpu_seconds;
            }
        }
        assert_int_equal(ts[t].used_gpu_seconds, used_g);
        assert_int_equal(ts[t].held_gpu_seconds, held_g);
        assert_int_equal(ts[t].used_cpu_seconds, used_c);
        assert_int_equal(ts[t].held_cpu_seconds, held_c);
        assert_int_equal(ts[t].last_charge_at, last);
    }
    free(es);
    free(ts);
}

static void ledger_list_filters_by_partner_job_kind_and_since(void **state)
{
    fixture *f = *state;
    int64_t carol = 0;
    assert_int_equal(store_partner_insert(f->s, "kul", NULL, 1, NULL), 0);
    assert_int_equal(store_user_insert(f->s, "carol", "kul", "carol", "user", "sme", &carol), 0);
    store_quota q = quota_of("kul", PERIOD, STORE_UNLIMITED, STORE_UNLIMITED);
    assert_int_equal(store_quota_set(f->s, &q), 0);
    int64_t a = insert_held_job(f), b = insert_held_job(f), c = insert_job(f, carol, "c");
    assert_int_equal(store_job_dispatch_begin(f->s, c, PERIOD, 1, 1), 0);
    assert_int_equal(store_job_transition(f->s, a, "dispatching", "failed", NULL), 0);

    store_ledger_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_ledger_list(f->s, NULL, 0, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 4);
    for (size_t i = 1; i < n; i++)
        assert_true(es[i].id > es[i - 1].id);
    free(es);
    assert_int_equal(store_ledger_list(f->s, "ulb", 0, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 3);
    free(es);
    assert_int_equal(store_ledger_list(f->s, "kul", 0, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(es[0].job_id, c);
    free(es);
    assert_int_equal(store_ledger_list(f->s, NULL, b, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(es[0].job_id, b);
    free(es);
    assert_int_equal(store_ledger_list(f->s, "ulb", 0, "release", 0, &es, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(es[0].job_id, a);
    free(es);
    assert_int_equal(store_ledger_list(f->s, NULL, 0, NULL, time(NULL) + 3600, &es, &n), 0);
    assert_int_equal(n, 0);
    assert_null(es);
    assert_int_equal(store_ledger_list(f->s, NULL, 0, NULL, time(NULL) - 3600, &es, &n), 0);
    assert_int_equal(n, 4);
    free(es);
}

/* Runs `sql` on f->path with the sqlite3 command-line tool (this test cannot include sqlite3.h).
 * Its output goes to out (when not NULL). Returns the tool's exit status. */
static int sqlite_cli(fixture *f, const char *sql, char *out, size_t cap)
{
    char sql_path[160], cmd[512];
    snprintf(sql_path, sizeof sql_path, "%s/cli.sql", f->dir);
    FILE *fp = fopen(sql_path, "w");
    if (!fp) return -1;
    fputs(sql, fp);
    if (fclose(fp) != 0) return -1;
    snprintf(cmd, sizeof cmd, "sqlite3 -bail '%s' < '%s' 2>/dev/null", f->path, sql_path);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t len = 0, got;
    char buf[256];
    if (out && cap) out[0] = '\0';
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) {
        if (!out || len + 1 >= cap) continue;
        if (got > cap - 1 - len) got = cap - 1 - len;
        memcpy(out + len, buf, got);
        len += got;
        out[len] = '\0';
    }
    int status = pclose(p);
    unlink(sql_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void ledger_rows_cannot_be_updated_or_deleted(void **state)
{
    fixture *f = *state;
    insert_held_job(f);
    char out[64];
    assert_int_equal(
        sqlite_cli(f, "SELECT count(*), sum(gpu_seconds) FROM ledger;", out, sizeof out), 0);
    assert_string_equal(out, "1|600\n");
    assert_int_not_equal(sqlite_cli(f, "UPDATE ledger SET gpu_seconds = 0;", NULL, 0), 0);
    assert_int_not_equal(sqlite_cli(f, "DELETE FROM ledger;", NULL, 0), 0);
    assert_int_equal(
        sqlite_cli(f, "SELECT count(*), sum(gpu_seconds) FROM ledger;", out, sizeof out), 0);
    assert_string_equal(out, "1|600\n");
}

/* --- v2: jobs --- */

static void job_list_filters_by_partner(void **state)
{
    fixture *f = *state;
    int64_t bob = 0, carol = 0;
    assert_int_equal(store_partner_insert(f->s, "kul", NULL, 1, NULL), 0);
    assert_int_equal(store_user_insert(f->s, "bob", "ulb", "bob", "user", "sme", &bob), 0);
    assert_int_equal(store_user_insert(f->s, "carol", "kul", "carol", "user", "sme", &carol), 0);
    int64_t a1 = insert_job(f, f->user_id, "a1"), c1 = insert_job(f, carol, "c1"),
            b1 = insert_job(f, bob, "b1"), a2 = insert_job(f, f->user_id, "a2");

    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list(f->s, 0, "ulb", 0, &js, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(js[0].id, a2);
    assert_int_equal(js[1].id, b1);
    assert_int_equal(js[2].id, a1);
    free(js);
    assert_int_equal(store_job_list(f->s, 0, "kul", 0, &js, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(js[0].id, c1);
    free(js);
    assert_int_equal(store_job_list(f->s, 0, "ulb", 2, &js, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(js[1].id, b1);
    free(js);
    assert_int_equal(store_job_list(f->s, f->user_id, "ulb", 0, &js, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(js[0].id, a2);
    assert_int_equal(js[1].id, a1);
    free(js);
    assert_int_equal(store_job_list(f->s, f->user_id, "kul", 0, &js, &n), 0);
    assert_int_equal(n, 0);
    assert_null(js);
}

static void job_reason_set_changes_only_queued_jobs(void **state)
{
    fixture *f = *state;
    int64_t q = insert_job(f, f->user_id, "q"), d = insert_job(f, f->user_id, "d");
    assert_int_equal(store_job_transition(f->s, d, "queued", "dispatching", "submitting"), 0);
    assert_int_equal(store_job_reason_set(f->s, q, "PartnerGpuLimit"), 0);
    assert_int_equal(store_job_reason_set(f->s, q, "PartnerGpuLimit"), 0); /* same: no-op */
    assert_int_equal(store_job_reason_set(f->s, d, "Priority"), 0);        /* not queued: no-op */
    store_job j;
    assert_int_equal(store_job_get(f->s, q, &j), 0);
    assert_string_equal(j.reason, "PartnerGpuLimit");
    assert_int_equal(store_job_get(f->s, d, &j), 0);
    assert_string_equal(j.reason, "submitting");
    assert_int_equal(store_job_reason_set(f->s, q, NULL), 0);
    assert_int_equal(store_job_get(f->s, q, &j), 0);
    assert_string_equal(j.reason, "");
}

static void job_reason_set_unknown_is_enoent(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_job_reason_set(f->s, 4242, "Priority"), -ENOENT);
}

static void job_list_active_returns_period_and_holds(void **state)
{
    fixture *f = *state;
    int64_t queued = insert_job(f, f->user_id, "q");
    int64_t held = insert_held_job(f);
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list_active(f->s, &js, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(js[0].id, queued);
    assert_string_equal(js[0].period, "");
    assert_int_equal(js[0].hold_gpu_seconds, 0);
    assert_int_equal(js[1].id, held);
    assert_string_equal(js[1].state, STORE_STATE_DISPATCHING);
    assert_string_equal(js[1].period, PERIOD);
    assert_int_equal(js[1].hold_gpu_seconds, 600);
    assert_int_equal(js[1].hold_cpu_seconds, 200);
    free(js);
}

/* --- v2: concurrent dispatches --- */

/* Two racers dispatch one job each per round, in lock step (a barrier before each round), for
 * a period whose budget has room for one hold only: every round is a race on the last of a
 * budget. */
#define RACE_ROUNDS 40
#define RACE_HOLD   100
#define RACE_BUDGET 150

typedef struct racer {
    store *s;
    const int64_t *ids; /* one per round */
    pthread_barrier_t *start;
    int dispatched, refused, errors;
} racer;

static void race_period(int round, char out[8])
{
    unsigned r = (unsigned)round % 1200u;
    snprintf(out, 8, "%04u-%02u", 2030u + r / 12u, r % 12u + 1u);
}

static void race_run(racer *r)
{
    for (int i = 0; i < RACE_ROUNDS; i++) {
        char period[8];
        race_period(i, period);
        pthread_barrier_wait(r->start);
        int rc = store_job_dispatch_begin(r->s, r->ids[i], period, RACE_HOLD, 0);
        if (rc == 0)
            r->dispatched++;
        else if (rc == -EDQUOT)
            r->refused++;
        else
            r->errors++;
    }
}

static void *race_thread(void *arg)
{
    race_run(arg);
    return NULL;
}

static void insert_race_jobs(fixture *f, int64_t ids[2][RACE_ROUNDS])
{
    for (int i = 0; i < RACE_ROUNDS; i++) {
        char period[8];
        race_period(i, period);
        set_budget(f, period, RACE_BUDGET, STORE_UNLIMITED);
        ids[0][i] = insert_job(f, f->user_id, "x");
        ids[1][i] = insert_job(f, f->user_id, "y");
    }
}

/* After the race: one hold per period, within its budget, in the ledger and on the jobs. */
static void check_race_result(fixture *f, int dispatched)
{
    assert_int_equal(dispatched, RACE_ROUNDS);
    store_ledger_totals *ts = NULL;
    size_t n = 0;
    assert_int_equal(store_ledger_totals_list(f->s, &ts, &n), 0);
    assert_int_equal(n, RACE_ROUNDS);
    for (size_t i = 0; i < n; i++) {
        assert_true(ts[i].held_gpu_seconds <= RACE_BUDGET);
        assert_int_equal(ts[i].held_gpu_seconds, RACE_HOLD);
    }
    free(ts);
    store_ledger_entry *es = NULL;
    assert_int_equal(store_ledger_list(f->s, "ulb", 0, "hold", 0, &es, &n), 0);
    free(es);
    assert_int_equal(n, RACE_ROUNDS);
    store_job *js = NULL;
    assert_int_equal(store_job_list_active(f->s, &js, &n), 0);
    size_t dispatching = 0;
    for (size_t i = 0; i < n; i++)
        dispatching += strcmp(js[i].state, STORE_STATE_DISPATCHING) == 0;
    free(js);
    assert_int_equal(dispatching, RACE_ROUNDS);
}

static void concurrent_dispatch_from_two_handles_never_exceeds_budget(void **state)
{
    fixture *f = *state;
    static int64_t ids[2][RACE_ROUNDS];
    insert_race_jobs(f, ids);
    store *other = NULL;
    char err[256];
    assert_int_equal(store_new(f->path, &other, err, sizeof err), 0);
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    racer r[2] = {{.s = f->s, .ids = ids[0], .start = &start},
                  {.s = other, .ids = ids[1], .start = &start}};
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&th[t], NULL, race_thread, &r[t]), 0);
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    pthread_barrier_destroy(&start);
    store_free(other);
    assert_int_equal(r[0].errors + r[1].errors, 0);
    assert_int_equal(r[0].refused + r[1].refused, RACE_ROUNDS);
    check_race_result(f, r[0].dispatched + r[1].dispatched);
}

/* In a child: opens its own store and races. Exits with the number of jobs it dispatched, or
 * 255 on any error other than -EDQUOT. Never returns. */
static void race_child(const char *path, const int64_t *ids, pthread_barrier_t *start)
{
    char err[256];
    racer r = {.ids = ids, .start = start};
    if (store_new(path, &r.s, err, sizeof err) != 0) _exit(255);
    race_run(&r);
    store_free(r.s);
    _exit(r.errors ? 255 : r.dispatched);
}

static void concurrent_dispatch_from_two_processes_never_exceeds_budget(void **state)
{
    fixture *f = *state;
    static int64_t ids[2][RACE_ROUNDS];
    insert_race_jobs(f, ids);
    store_free(f->s); /* no connection may cross a fork */
    f->s = NULL;
    pthread_barrier_t *start =
        mmap(NULL, sizeof *start, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(start != MAP_FAILED);
    pthread_barrierattr_t attr;
    assert_int_equal(pthread_barrierattr_init(&attr), 0);
    assert_int_equal(pthread_barrierattr_setpshared(&attr, PTHREAD_PROCESS_SHARED), 0);
    assert_int_equal(pthread_barrier_init(start, &attr, 2), 0);
    pthread_barrierattr_destroy(&attr);
    pid_t pids[2];
    for (int c = 0; c < 2; c++) {
        pids[c] = fork();
        if (pids[c] == 0) race_child(f->path, ids[c], start);
    }
    int dispatched = 0, failed = 0;
    for (int c = 0; c < 2; c++) {
        int status = 0;
        if (pids[c] < 0 || waitpid(pids[c], &status, 0) != pids[c] || !WIFEXITED(status) ||
            WEXITSTATUS(status) == 255)
            failed++;
        else
            dispatched += WEXITSTATUS(status);
    }
    pthread_barrier_destroy(start);
    munmap(start, sizeof *start);
    assert_int_equal(failed, 0);
    assert_int_equal(open_store(f), 0);
    check_race_result(f, dispatched);
}

/* --- v2: migration from a v1 database --- */

/* The v0 -> v1 step of store.c, word for word (TERMINAL_SQL expanded). */
static const char v1_schema[] =
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL);"
    "INSERT INTO meta (key, value) VALUES ('instance_id', lower(hex(randomblob(8))));"
    "CREATE TABLE partners ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  partner_id INTEGER NOT NULL REFERENCES partners(id),"
    "  unix_user TEXT NOT NULL,"
    "  role TEXT NOT NULL DEFAULT 'user',"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX users_partner ON users (partner_id);"
    "CREATE TABLE tokens ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  hash TEXT NOT NULL UNIQUE,"
    "  label TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX tokens_user ON tokens (user_id);"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  user_name TEXT NOT NULL,"
    "  partner TEXT NOT NULL,"
    "  unix_user TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  gpus INTEGER NOT NULL,"
    "  gpu_type TEXT NOT NULL,"
    "  cpus_per_task INTEGER NOT NULL,"
    "  mem_mb INTEGER NOT NULL,"
    "  time_minutes INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  slurm_job_id INTEGER NOT NULL DEFAULT 0,"
    "  exit_code INTEGER,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
    "  submitted_at INTEGER NOT NULL,"
    "  dispatched_at INTEGER NOT NULL DEFAULT 0,"
    "  started_at INTEGER NOT NULL DEFAULT 0,"
    "  ended_at INTEGER NOT NULL DEFAULT 0,"
    "  script TEXT NOT NULL);"
    "CREATE INDEX jobs_user ON jobs (user_id, id);"
    "CREATE INDEX jobs_state ON jobs (state);"
    "CREATE INDEX jobs_active ON jobs (id) WHERE state NOT IN "
    "('completed','failed','cancelled','timeout','node_fail','preempted','boot_fail','deadline',"
    "'out_of_memory','lost');";

/* What a v1 antennad left: a completed, a running and a queued job; the id counter at 100. */
static const char v1_data[] =
    "UPDATE meta SET value = '0123456789abcdef' WHERE key = 'instance_id';"
    "INSERT INTO partners (id, name, description, created_at) VALUES (1, 'ulb', 'Brussels', 1700);"
    "INSERT INTO users (id, name, partner_id, unix_user, role, created_at)"
    " VALUES (1, 'alice', 1, 'alice_u', 'admin', 1701);"
    "INSERT INTO tokens (user_id, hash, label, created_at) VALUES (1, '" HASH_A
    "', 'laptop', 1702);"
    "INSERT INTO jobs (id, user_id, user_name, partner, unix_user, name, gpus, gpu_type,"
    " cpus_per_task, mem_mb, time_minutes, state, reason, slurm_job_id, exit_code,"
    " cancel_requested, submitted_at, dispatched_at, started_at, ended_at, script) VALUES"
    " (7, 1, 'alice', 'ulb', 'alice_u', 'done', 2, 'h100', 4, 8192, 60, 'completed', '', 4001, 0,"
    "  0, 1800, 1810, 1820, 1900, '#!/bin/sh' || char(10) || 'echo done' || char(10)),"
    " (8, 1, 'alice', 'ulb', 'alice_u', 'run', 1, '', 2, 1024, 30, 'running', '', 4002, NULL,"
    "  1, 1850, 1860, 1870, 0, '#!/bin/sh' || char(10) || replace(hex(zeroblob(5000)), '00', "
    "'ab')),"
    " (9, 1, 'alice', 'ulb', 'alice_u', 'wait', 1, '', 2, 1024, 30, 'queued', 'Priority', 0, NULL,"
    "  0, 1880, 0, 0, 0, '#!/bin/sh' || char(10));"
    "UPDATE sqlite_sequence SET seq = 100 WHERE name = 'jobs';"
    "PRAGMA user_version = 1;";

/* setup without opening the store: the test writes the database first. */
static int setup_empty(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/test_store.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/antenna.db", f->dir);
    *state = f;
    return 0;
}

/* Writes the v1 database with the sqlite3 tool, then opens (and so migrates) it. */
static void open_v1_database(fixture *f)
{
    char sql[sizeof v1_schema + sizeof v1_data + 64];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode = WAL;%s%s", v1_schema, v1_data);
    assert_int_equal(sqlite_cli(f, sql, NULL, 0), 0);
    char out[16];
    assert_int_equal(sqlite_cli(f, "PRAGMA user_version;", out, sizeof out), 0);
    assert_string_equal(out, "1\n");
    assert_int_equal(open_store(f), 0);
}

static void migration_from_v1_keeps_data(void **state)
{
    fixture *f = *state;
    open_v1_database(f);
    assert_string_equal(store_instance_id(f->s), "0123456789abcdef");
    store_user u;
    assert_int_equal(store_token_lookup(f->s, HASH_A, &u), 0);
    assert_string_equal(u.name, "alice");
    assert_string_equal(u.partner, "ulb");
    assert_string_equal(u.unix_user, "alice_u");
    assert_string_equal(u.role, "admin");
    assert_int_equal(u.created_at, 1701);
    store_partner p;
    assert_int_equal(store_partner_get(f->s, "ulb", &p), 0);
    assert_string_equal(p.description, "Brussels");
    assert_int_equal(p.created_at, 1700);

    store_job j;
    assert_int_equal(store_job_get(f->s, 7, &j), 0);
    assert_string_equal(j.name, "done");
    assert_string_equal(j.state, "completed");
    assert_int_equal(j.gpus, 2);
    assert_string_equal(j.gpu_type, "h100");
    assert_int_equal(j.mem_mb, 8192);
    assert_int_equal(j.slurm_job_id, 4001);
    assert_true(j.has_exit_code);
    assert_int_equal(j.exit_code, 0);
    assert_int_equal(j.submitted_at, 1800);
    assert_int_equal(j.dispatched_at, 1810);
    assert_int_equal(j.started_at, 1820);
    assert_int_equal(j.ended_at, 1900);
    assert_int_equal(store_job_get(f->s, 8, &j), 0);
    assert_string_equal(j.state, "running");
    assert_false(j.has_exit_code);
    assert_true(j.cancel_requested);
    assert_int_equal(store_job_get(f->s, 9, &j), 0);
    assert_string_equal(j.reason, "Priority");

    char *script = NULL;
    assert_int_equal(store_job_script_get(f->s, 8, &script), 0);
    assert_int_equal(strlen(script), 10 + 10000);
    assert_memory_equal(script, "#!/bin/sh\nabab", 14);
    free(script);
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list_active(f->s, &js, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(js[0].id, 8);
    assert_int_equal(js[1].id, 9);
    free(js);
}

static void migration_from_v1_fills_new_fields_with_defaults(void **state)
{
    fixture *f = *state;
    open_v1_database(f);
    store_partner p;
    assert_int_equal(store_partner_get(f->s, "ulb", &p), 0);
    assert_int_equal(p.share_weight, 1);
    store_user u;
    assert_int_equal(store_user_get(f->s, "alice", &u), 0);
    assert_string_equal(u.category, "researcher");
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list(f->s, 0, "ulb", 0, &js, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(js[i].period, "");
        assert_int_equal(js[i].hold_gpu_seconds, 0);
        assert_int_equal(js[i].hold_cpu_seconds, 0);
        assert_int_equal(js[i].charge_gpu_seconds, 0);
        assert_int_equal(js[i].charge_cpu_seconds, 0);
    }
    free(js);
    store_quota *qs = NULL;
    assert_int_equal(store_quota_list(f->s, NULL, &qs, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ledger_rows(f, 0, NULL), 0);

    /* the new tables work on the migrated data */
    set_budget(f, PERIOD, 100, 100);
    assert_int_equal(store_job_dispatch_begin(f->s, 9, PERIOD, 60, 60), 0);
    assert_int_equal(ledger_rows(f, 9, "hold"), 1);

    char out[64];
    assert_int_equal(sqlite_cli(f, "PRAGMA user_version;", out, sizeof out), 0);
    assert_string_equal(out, "12\n"); /* and on to the current version */
    /* script stays the last column of jobs (listing jobs never reads its overflow pages) */
    assert_int_equal(
        sqlite_cli(f, "SELECT name FROM pragma_table_info('jobs') ORDER BY cid DESC LIMIT 1;", out,
                   sizeof out),
        0);
    assert_string_equal(out, "script\n");
}

static void migration_from_v1_keeps_job_id_counter(void **state)
{
    fixture *f = *state;
    open_v1_database(f);
    int64_t id = insert_job(f, 1, "after");
    assert_int_equal(id, 101); /* never reuses an id v1 handed out, even one not in the table */
    store_free(f->s);
    f->s = NULL;
    assert_int_equal(open_store(f), 0); /* already current: no new migration */
    assert_int_equal(insert_job(f, 1, "again"), 102);
}

/* --- v3: migration from a v2 database --- */

/* The v1 -> v2 step of store.c, word for word (TERMINAL_SQL expanded). */
static const char v2_step[] =
    "ALTER TABLE partners ADD COLUMN share_weight INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE users ADD COLUMN category TEXT NOT NULL DEFAULT 'researcher';"
    "CREATE TABLE jobs_v2 ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  user_name TEXT NOT NULL,"
    "  partner TEXT NOT NULL,"
    "  unix_user TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  gpus INTEGER NOT NULL,"
    "  gpu_type TEXT NOT NULL,"
    "  cpus_per_task INTEGER NOT NULL,"
    "  mem_mb INTEGER NOT NULL,"
    "  time_minutes INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  slurm_job_id INTEGER NOT NULL DEFAULT 0,"
    "  exit_code INTEGER,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
    "  submitted_at INTEGER NOT NULL,"
    "  dispatched_at INTEGER NOT NULL DEFAULT 0,"
    "  started_at INTEGER NOT NULL DEFAULT 0,"
    "  ended_at INTEGER NOT NULL DEFAULT 0,"
    "  period TEXT NOT NULL DEFAULT '',"
    "  hold_gpu_seconds INTEGER NOT NULL DEFAULT 0,"
    "  hold_cpu_seconds INTEGER NOT NULL DEFAULT 0,"
    "  charge_gpu_seconds INTEGER NOT NULL DEFAULT 0,"
    "  charge_cpu_seconds INTEGER NOT NULL DEFAULT 0,"
    "  script TEXT NOT NULL);"
    "INSERT INTO jobs_v2 (id, user_id, user_name, partner, unix_user, name, gpus, gpu_type,"
    "  cpus_per_task, mem_mb, time_minutes, state, reason, slurm_job_id, exit_code,"
    "  cancel_requested, submitted_at, dispatched_at, started_at, ended_at, script)"
    " SELECT id, user_id, user_name, partner, unix_user, name, gpus, gpu_type, cpus_per_task,"
    "  mem_mb, time_minutes, state, reason, slurm_job_id, exit_code, cancel_requested,"
    "  submitted_at, dispatched_at, started_at, ended_at, script FROM jobs ORDER BY id;"
    "DELETE FROM sqlite_sequence WHERE name = 'jobs_v2';"
    "INSERT INTO sqlite_sequence (name, seq)"
    " SELECT 'jobs_v2', seq FROM sqlite_sequence WHERE name = 'jobs';"
    "DROP TABLE jobs;"
    "ALTER TABLE jobs_v2 RENAME TO jobs;"
    "CREATE INDEX jobs_user ON jobs (user_id, id);"
    "CREATE INDEX jobs_partner ON jobs (partner, id);"
    "CREATE INDEX jobs_state ON jobs (state);"
    "CREATE INDEX jobs_active ON jobs (id) WHERE state NOT IN "
    "('completed','failed','cancelled','timeout','node_fail','preempted','boot_fail','deadline',"
    "'out_of_memory','lost');"
    "CREATE TABLE quotas ("
    "  partner_id INTEGER NOT NULL REFERENCES partners(id),"
    "  period TEXT NOT NULL,"
    "  gpu_seconds INTEGER NOT NULL,"
    "  cpu_seconds INTEGER NOT NULL,"
    "  max_gpus INTEGER NOT NULL,"
    "  max_running_jobs INTEGER NOT NULL,"
    "  max_queued_jobs INTEGER NOT NULL,"
    "  max_walltime_minutes INTEGER NOT NULL,"
    "  user_max_gpus INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (partner_id, period));"
    "CREATE TABLE ledger ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id),"
    "  partner_id INTEGER NOT NULL REFERENCES partners(id),"
    "  period TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('hold', 'release', 'charge')),"
    "  gpu_seconds INTEGER NOT NULL,"
    "  cpu_seconds INTEGER NOT NULL,"
    "  at INTEGER NOT NULL);"
    "CREATE INDEX ledger_partner_period ON ledger (partner_id, period);"
    "CREATE INDEX ledger_job ON ledger (job_id);"
    "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger"
    " BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;"
    "CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger"
    " BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;";

/* What a v2 antennad left: partners with weights, users with categories, a quota, a charged job
 * (period 2026-10, charged 2026-10-15 12:00 UTC), a running job holding budget, a queued job. */
static const char v2_data[] =
    "UPDATE meta SET value = 'fedcba9876543210' WHERE key = 'instance_id';"
    "INSERT INTO partners (id, name, description, created_at, share_weight) VALUES"
    " (1, 'ulb', 'Brussels', 1700, 3), (2, 'kul', 'Leuven', 1701, 1);"
    "INSERT INTO users (id, name, partner_id, unix_user, role, created_at, category) VALUES"
    " (1, 'alice', 1, 'alice_u', 'admin', 1702, 'sme'),"
    " (2, 'carol', 2, 'carol_u', 'user', 1703, 'institution');"
    "INSERT INTO tokens (user_id, hash, label, created_at) VALUES (1, '" HASH_A
    "', 'laptop', 1704);"
    "INSERT INTO jobs (id, user_id, user_name, partner, unix_user, name, gpus, gpu_type,"
    " cpus_per_task, mem_mb, time_minutes, state, reason, slurm_job_id, exit_code,"
    " cancel_requested, submitted_at, dispatched_at, started_at, ended_at, period,"
    " hold_gpu_seconds, hold_cpu_seconds, charge_gpu_seconds, charge_cpu_seconds, script) VALUES"
    " (7, 1, 'alice', 'ulb', 'alice_u', 'done', 2, 'h100', 4, 8192, 60, 'completed', '', 4001, 0,"
    "  0, 1792060000, 1792061000, 1792061200, 1792065600, '2026-10', 0, 0, 8800, 17600,"
    "  '#!/bin/sh' || char(10)),"
    " (8, 1, 'alice', 'ulb', 'alice_u', 'run', 1, '', 2, 1024, 30, 'running', '', 4002, NULL,"
    "  0, 1793600000, 1793600100, 1793600200, 0, '2026-11', 1800, 3600, 0, 0,"
    "  '#!/bin/sh' || char(10)),"
    " (9, 2, 'carol', 'kul', 'carol_u', 'wait', 1, '', 2, 1024, 30, 'queued', 'Priority', 0,"
    "  NULL, 0, 1793600300, 0, 0, 0, '', 0, 0, 0, 0, '#!/bin/sh' || char(10));"
    "UPDATE sqlite_sequence SET seq = 100 WHERE name = 'jobs';"
    "INSERT INTO quotas (partner_id, period, gpu_seconds, cpu_seconds, max_gpus,"
    " max_running_jobs, max_queued_jobs, max_walltime_minutes, user_max_gpus, updated_at)"
    " VALUES (1, '2026-11', 360000, -1, 8, 4, 50, 1440, 2, 1705);"
    "INSERT INTO ledger (job_id, partner_id, period, kind, gpu_seconds, cpu_seconds, at) VALUES"
    " (7, 1, '2026-10', 'hold', 14400, 28800, 1792061000),"
    " (7, 1, '2026-10', 'release', -14400, -28800, 1792065600),"
    " (7, 1, '2026-10', 'charge', 8800, 17600, 1792065600),"
    " (8, 1, '2026-11', 'hold', 1800, 3600, 1793600100);"
    "PRAGMA user_version = 2;";

/* Writes the v2 database with the sqlite3 tool (v1 schema, then the v1 -> v2 step, then v2
 * data), without opening the store. */
static void write_v2_database(fixture *f)
{
    char sql[sizeof v1_schema + sizeof v2_step + sizeof v2_data + 64];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode = WAL;%s%s%s", v1_schema, v2_step, v2_data);
    assert_int_equal(sqlite_cli(f, sql, NULL, 0), 0);
    char out[16];
    assert_int_equal(sqlite_cli(f, "PRAGMA user_version;", out, sizeof out), 0);
    assert_string_equal(out, "2\n");
}

static void migration_from_v2_keeps_data(void **state)
{
    fixture *f = *state;
    write_v2_database(f);
    assert_int_equal(open_store(f), 0);
    char out[64];
    assert_int_equal(sqlite_cli(f, "PRAGMA user_version;", out, sizeof out), 0);
    assert_string_equal(out, "12\n");
    assert_string_equal(store_instance_id(f->s), "fedcba9876543210");

    store_partner p;
    assert_int_equal(store_partner_get(f->s, "ulb", &p), 0);
    assert_string_equal(p.description, "Brussels");
    assert_int_equal(p.share_weight, 3);
    store_user u;
    assert_int_equal(store_token_lookup(f->s, HASH_A, &u), 0);
    assert_string_equal(u.name, "alice");
    assert_string_equal(u.category, "sme");
    assert_string_equal(u.role, "admin");
    store_quota q;
    assert_int_equal(store_quota_get(f->s, "ulb", "2026-11", &q), 0);
    assert_int_equal(q.gpu_seconds, 360000);
    assert_int_equal(q.cpu_seconds, STORE_UNLIMITED);
    assert_int_equal(q.user_max_gpus, 2);

    store_job j;
    assert_int_equal(store_job_get(f->s, 7, &j), 0);
    assert_string_equal(j.state, "completed");
    assert_string_equal(j.period, "2026-10");
    assert_int_equal(j.charge_gpu_seconds, 8800);
    assert_int_equal(j.charge_cpu_seconds, 17600);
    assert_int_equal(j.ended_at, 1792065600);
    assert_int_equal(store_job_get(f->s, 8, &j), 0);
    assert_string_equal(j.state, "running");
    assert_int_equal(j.hold_gpu_seconds, 1800);
    assert_int_equal(j.hold_cpu_seconds, 3600);
    assert_int_equal(store_job_get(f->s, 9, &j), 0);
    assert_string_equal(j.reason, "Priority");

    store_ledger_totals *ts = NULL;
    size_t n = 0;
    assert_int_equal(store_ledger_totals_list(f->s, &ts, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ts[0].period, "2026-10");
    assert_int_equal(ts[0].used_gpu_seconds, 8800);
    assert_int_equal(ts[0].held_gpu_seconds, 0);
    assert_int_equal(ts[0].last_charge_at, 1792065600);
    assert_string_equal(ts[1].period, "2026-11");
    assert_int_equal(ts[1].held_gpu_seconds, 1800);
    free(ts);
    assert_int_equal(ledger_rows(f, 0, NULL), 4);

    /* the new calls work on the migrated rows, and new ids follow the old counter */
    store_usage_filter uf = {.by = "day"};
    store_usage_row *rows = NULL;
    assert_int_equal(store_usage_query(f->s, &uf, &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].key, "2026-10-15");
    assert_int_equal(rows[0].gpu_seconds, 8800);
    assert_int_equal(rows[0].elapsed_gpu_seconds, 2 * (1792065600 - 1792061200));
    free(rows);
    store_job *js = NULL;
    assert_int_equal(store_job_list_charged(f->s, "ulb", "2026-10", &js, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(js[0].id, 7);
    free(js);
    assert_int_equal(insert_job(f, 2, "after"), 101);
}

/* The same query on the sqlite3 tool's view of the migrated and of a new database: the schema
 * they end with (tables, indexes, triggers, their SQL) must be the same. */
#define SCHEMA_SQL "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name;"

static void migration_from_v2_gives_the_schema_of_a_new_database(void **state)
{
    fixture *f = *state;
    static char migrated[16384], fresh[16384];
    write_v2_database(f);
    assert_int_equal(open_store(f), 0);
    assert_int_equal(sqlite_cli(f, SCHEMA_SQL, migrated, sizeof migrated), 0);
    assert_true(strlen(migrated) < sizeof migrated - 1);
    store_free(f->s);
    f->s = NULL;
    char old[sizeof f->path];
    memcpy(old, f->path, sizeof old);
    snprintf(f->path, sizeof f->path, "%s/fresh.db", f->dir);
    assert_int_equal(open_store(f), 0);
    assert_int_equal(sqlite_cli(f, SCHEMA_SQL, fresh, sizeof fresh), 0);
    memcpy(f->path, old, sizeof old);
    assert_string_equal(migrated, fresh);
    assert_non_null(strstr(fresh, "table|audit|audit|"));
    assert_non_null(strstr(fresh, "index|ledger_kind_at|ledger|"));
    char out[16];
    assert_int_equal(sqlite_cli(f,
                                "SELECT count(*) FROM sqlite_master "
                                "WHERE type = 'trigger' AND tbl_name = 'audit';",
                                out, sizeof out),
                     0);
    assert_string_equal(out, "0\n"); /* the hash chain, not SQLite, guards the audit trail */
}

/* --- v3: usage --- */

/* Adds bob (ulb, sme), partner kul and carol (kul, institution), with unlimited quotas for
 * PERIOD; alice (ulb, researcher) comes from setup_user. */
static void add_usage_users(fixture *f, int64_t *bob, int64_t *carol)
{
    assert_int_equal(store_user_insert(f->s, "bob", "ulb", "bob", "user", "sme", bob), 0);
    assert_int_equal(store_partner_insert(f->s, "kul", NULL, 1, NULL), 0);
    assert_int_equal(store_user_insert(f->s, "carol", "kul", "carol", "user", "institution", carol),
                     0);
    store_quota q = quota_of("ulb", PERIOD, STORE_UNLIMITED, STORE_UNLIMITED);
    assert_int_equal(store_quota_set(f->s, &q), 0);
    q = quota_of("kul", PERIOD, STORE_UNLIMITED, STORE_UNLIMITED);
    assert_int_equal(store_quota_set(f->s, &q), 0);
}

/* A job of `user_id` with `gpus` GPUs of `gpu_type`, dispatched for `period` with a hold, run
 * from `started` (0 = never started) and completed at `ended` with the given charge (no charge
 * row when both are 0). */
static int64_t charged_job(fixture *f, int64_t user_id, int gpus, const char *gpu_type,
                           const char *period, int64_t started, int64_t ended, int64_t charge_gpu,
                           int64_t charge_cpu)
{
    store_job j = {.user_id = user_id, .gpus = gpus, .cpus_per_task = 1, .time_minutes = 10};
    snprintf(j.name, sizeof j.name, "charged");
    snprintf(j.gpu_type, sizeof j.gpu_type, "%s", gpu_type);
    assert_int_equal(store_job_insert(f->s, &j, "#!/bin/sh\n"), 0);
    assert_int_equal(store_job_dispatch_begin(f->s, j.id, period, 10, 10), 0);
    assert_int_equal(store_job_set_dispatched(f->s, j.id, 5000 + j.id), 0);
    if (started > 0) {
        store_job r = {.id = j.id, .state = "running", .started_at = started};
        assert_int_equal(store_job_update(f->s, &r), 0);
    }
    store_job c = {.id = j.id,
                   .state = "completed",
                   .ended_at = ended,
                   .has_exit_code = true,
                   .charge_gpu_seconds = charge_gpu,
                   .charge_cpu_seconds = charge_cpu};
    assert_int_equal(store_job_update(f->s, &c), 0);
    return j.id;
}

/* Five charged jobs, one cancelled and one running (neither charged):
 *   alice (ulb, researcher): 2 x h100 for 600 s, charged 1200 GPU-s / 300 CPU-s;
 *                            1 x a100 for 100 s, charged 50 / 100
 *   bob (ulb, sme):          no GPU for 500 s, charged 0 / 500
 *   carol (kul, institution): 4 x h100 for 10 s, charged 40 / 7;
 *                            1 GPU of no named type, never started, charged 0 / 3 */
static void add_usage_jobs(fixture *f, int64_t bob, int64_t carol)
{
    charged_job(f, f->user_id, 2, "h100", PERIOD, 1000, 1600, 1200, 300);
    charged_job(f, f->user_id, 1, "a100", PERIOD, 2000, 2100, 50, 100);
    charged_job(f, bob, 0, "", PERIOD, 1000, 1500, 0, 500);
    charged_job(f, carol, 4, "h100", PERIOD, 1000, 1010, 40, 7);
    charged_job(f, carol, 1, "", PERIOD, 0, 3000, 0, 3);
    int64_t cancelled = insert_job(f, f->user_id, "cancelled");
    assert_int_equal(store_job_dispatch_begin(f->s, cancelled, PERIOD, 500, 500), 0);
    assert_int_equal(store_job_transition(f->s, cancelled, "dispatching", "cancelled", NULL), 0);
    int64_t running = insert_job(f, bob, "running");
    assert_int_equal(store_job_dispatch_begin(f->s, running, PERIOD, 700, 700), 0);
}

typedef struct usage_want {
    const char *key;
    int64_t gpu, cpu, elapsed, jobs;
} usage_want;

/* Asserts that the query `by` (with filters partner, user) returns exactly `want`. */
static void check_usage(fixture *f, const char *by, const char *partner, const char *user,
                        const usage_want *want, size_t nwant)
{
    store_usage_filter uf = {.by = by, .partner = partner, .user = user};
    store_usage_row *rows = NULL;
    size_t n = 99;
    assert_int_equal(store_usage_query(f->s, &uf, &rows, &n), 0);
    assert_int_equal(n, nwant);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].key, want[i].key);
        assert_int_equal(rows[i].gpu_seconds, want[i].gpu);
        assert_int_equal(rows[i].cpu_seconds, want[i].cpu);
        assert_int_equal(rows[i].elapsed_gpu_seconds, want[i].elapsed);
        assert_int_equal(rows[i].jobs, want[i].jobs);
    }
    if (n == 0) assert_null(rows);
    free(rows);
}

static void usage_by_partner_sums_only_charge_rows(void **state)
{
    fixture *f = *state;
    int64_t bob, carol;
    add_usage_users(f, &bob, &carol);
    add_usage_jobs(f, bob, carol);
    const usage_want want[] = {{"kul", 40, 10, 40, 2}, {"ulb", 1250, 900, 1300, 3}};
    check_usage(f, "partner", NULL, NULL, want, 2);
}

static void usage_by_user_sums_per_user(void **state)
{
    fixture *f = *state;
    int64_t bob, carol;
    add_usage_users(f, &bob, &carol);
    add_usage_jobs(f, bob, carol);
    const usage_want want[] = {
        {"alice", 1250, 400, 1300, 2}, {"bob", 0, 500, 0, 1}, {"carol", 40, 10, 40, 2}};
    check_usage(f, "user", NULL, NULL, want, 3);
}

static void usage_by_category_sums_per_user_category(void **state)
{
    fixture *f = *state;
    int64_t bob, carol;
    add_usage_users(f, &bob, &carol);
    add_usage_jobs(f, bob, carol);
    const usage_want want[] = {
        {"institution", 40, 10, 40, 2}, {"researcher", 1250, 400, 1300, 2}, {"sme", 0, 500, 0, 1}};
    check_usage(f, "category", NULL, NULL, want, 3);
}

static void usage_by_gpu_type_counts_jobs_without_type_as_none(void **state)
{
    fixture *f = *state;
    int64_t bob, carol;
    add_usage_users(f, &bob, &carol);
    add_usage_jobs(f, bob, carol);
    const usage_want want[] = {
        {"a100", 50, 100, 100, 1}, {"h100", 1240, 307, 1240, 2}, {"none", 0, 503, 0, 2}};
    check_usage(f, "gpu-type", NULL, NULL, want, 3);
}

static void usage_total_is_one_row_with_empty_key(void **state)
{
    fixture *f = *state;
    int64_t bob, carol;
    add_usage_users(f, &bob, &carol);
    const usage_want zero[] = {{"", 0, 0, 0, 0}};
    check_usage(f, "total", NULL, NULL, zero, 1); /* nothing charged yet */
    check_usage(f, "partner", NULL, NULL, NULL, 0);
    add_usage_jobs(f, bob, carol);
    const usage_want want[] = {{"", 1290, 910, 1340, 5}};
    check_usage(f, "total", NULL, NULL, want, 1);
}

static void usage_elapsed_is_gpus_times_run_time_clamped_at_zero(void **state)
{
    fixture *f = *state;
    int64_t bob, carol;
    add_usage_users(f, &bob, &carol);
    charged_job(f, f->user_id, 3, "h100", PERIOD, 1000, 1100, 1, 1); /* 300 */
    charged_job(f, f->user_id, 3, "h100", PERIOD, 5000, 4000, 1, 1); /* ended before start: 0 */
    charged_job(f, f->user_id, 3, "h100", PERIOD, 0, 4000, 1, 1);    /* never started: 0 */
    charged_job(f, f->user_id, 0, "", PERIOD, 1000, 9000, 0, 1);     /* no GPU: 0 */
    const usage_want want[] = {{"", 3, 4, 300, 4}};
    check_usage(f, "total", NULL, NULL, want, 1);
}

static void usage_filters_by_partner_and_user(void **state)
{
    fixture *f = *state;
    int64_t bob, carol;
    add_usage_users(f, &bob, &carol);
    add_usage_jobs(f, bob, carol);
    const usage_want ulb_users[] = {{"alice", 1250, 400, 1300, 2}, {"bob", 0, 500, 0, 1}};
    check_usage(f, "user", "ulb", NULL, ulb_users, 2);
    const usage_want alice_types[] = {{"a100", 50, 100, 100, 1}, {"h100", 1200, 300, 1200, 1}};
    check_usage(f, "gpu-type", NULL, "alice", alice_types, 2);
    const usage_want alice_ulb[] = {{"ulb", 1250, 400, 1300, 2}};
    check_usage(f, "partner", "ulb", "alice", alice_ulb, 1);
    check_usage(f, "partner", "kul", "alice", NULL, 0); /* alice is not of kul */
    check_usage(f, "user", "nobody", NULL, NULL, 0);
    const usage_want none[] = {{"", 0, 0, 0, 0}};
    check_usage(f, "total", NULL, "nobody", none, 1);
}

/* The store stamps a charge with the time of the update that writes it, so charges at chosen
 * times are appended to the ledger with the sqlite3 tool, for jobs completed without a charge:
 * at 2026-10-31 23:59:59, 2026-11-01 00:00:00, 2026-11-02 08:00, 2026-12-31 23:00 and
 * 2027-01-01 00:30 UTC, charged 10, 20, 40, 80 and 160 GPU-seconds. */
static void add_timed_charges(fixture *f)
{
    int64_t ids[5];
    set_budget(f, PERIOD, STORE_UNLIMITED, STORE_UNLIMITED);
    for (int i = 0; i < 5; i++)
        ids[i] = charged_job(f, f->user_id, 1, "h100", PERIOD, 0, 0, 0, 0);
    assert_int_equal(ledger_rows(f, 0, "charge"), 0);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO ledger (job_id, partner_id, period, kind, gpu_seconds, cpu_seconds, at)"
             " SELECT column1, (SELECT id FROM partners WHERE name = 'ulb'), '%s', 'charge',"
             " column2, column2 / 10, column3 FROM (VALUES"
             " (%lld, 10, 1793491199), (%lld, 20, 1793491200), (%lld, 40, 1793606400),"
             " (%lld, 80, 1798758000), (%lld, 160, 1798763400));",
             PERIOD, (long long)ids[0], (long long)ids[1], (long long)ids[2], (long long)ids[3],
             (long long)ids[4]);
    assert_int_equal(sqlite_cli(f, sql, NULL, 0), 0);
    assert_int_equal(ledger_rows(f, 0, "charge"), 5);
}

static void usage_by_day_and_month_use_the_utc_date_of_the_charge(void **state)
{
    fixture *f = *state;
    add_timed_charges(f);
    /* 13 hours ahead of UTC here: a local date would move every charge to the next day */
    char *tz = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    assert_int_equal(setenv("TZ", "XXX-13", 1), 0);
    tzset();
    const usage_want days[] = {{"2026-10-31", 10, 1, 0, 1},
                               {"2026-11-01", 20, 2, 0, 1},
                               {"2026-11-02", 40, 4, 0, 1},
                               {"2026-12-31", 80, 8, 0, 1},
                               {"2027-01-01", 160, 16, 0, 1}};
    check_usage(f, "day", NULL, NULL, days, 5);
    const usage_want months[] = {{"2026-10", 10, 1, 0, 1},
                                 {"2026-11", 60, 6, 0, 2},
                                 {"2026-12", 80, 8, 0, 1},
                                 {"2027-01", 160, 16, 0, 1}};
    check_usage(f, "month", NULL, NULL, months, 4);
    if (tz)
        setenv("TZ", tz, 1);
    else
        unsetenv("TZ");
    tzset();
    free(tz);
}

/* The GPU-seconds of `by` = "total" over from <= at < to. */
static int64_t usage_between(fixture *f, int64_t from, int64_t to)
{
    store_usage_filter uf = {.by = "total", .from = from, .to = to};
    store_usage_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_usage_query(f->s, &uf, &rows, &n), 0);
    assert_int_equal(n, 1);
    int64_t gpu = rows[0].gpu_seconds;
    free(rows);
    return gpu;
}

static void usage_from_is_inclusive_and_to_exclusive(void **state)
{
    fixture *f = *state;
    add_timed_charges(f);
    assert_int_equal(usage_between(f, 0, 0), 310);
    assert_int_equal(usage_between(f, 1793491200, 0), 300);          /* from Nov 1st 00:00 */
    assert_int_equal(usage_between(f, 1793491201, 0), 280);          /* one second later */
    assert_int_equal(usage_between(f, 0, 1793491200), 10);           /* to Nov 1st 00:00 */
    assert_int_equal(usage_between(f, 0, 1793491201), 30);           /* one second later */
    assert_int_equal(usage_between(f, 1793491200, 1798758000), 60);  /* November to Dec 31 */
    assert_int_equal(usage_between(f, 1798763400, 1798763401), 160); /* one second */
    assert_int_equal(usage_between(f, 1798763401, 0), 0);
}

static void usage_unknown_by_is_einval(void **state)
{
    fixture *f = *state;
    const char *bad[] = {"gpu_type", "Partner", "", "days", "partner "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        store_usage_filter uf = {.by = bad[i]};
        store_usage_row *rows = (store_usage_row *)&uf;
        size_t n = 7;
        assert_int_equal(store_usage_query(f->s, &uf, &rows, &n), -EINVAL);
        assert_null(rows);
        assert_int_equal(n, 0);
    }
    store_usage_filter none = {.by = NULL};
    store_usage_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_usage_query(f->s, &none, &rows, &n), -EINVAL);
}

/* Random jobs and charges (fixed seed): every dimension's rows sum to the total, which equals
 * the sum of the ledger's charge rows; each row equals the sum computed here from the jobs. */
#define RANDOM_JOBS 60

typedef struct rand_user {
    const char *name, *partner, *category;
} rand_user;

static const rand_user rand_users[] = {
    {"alice", "ulb", "researcher"}, {"bob", "ulb", "sme"},  {"carol", "kul", "institution"},
    {"dave", "kul", "researcher"},  {"erin", "vub", "sme"}, {"frank", "vub", "institution"},
};
#define RAND_USERS (sizeof rand_users / sizeof rand_users[0])

typedef struct rand_job {
    size_t user;
    int gpus;
    const char *gpu_type;
    int64_t started, ended, gpu_s, cpu_s;
    bool charged;
    char day[16], month[16]; /* of its charge row */
} rand_job;

static uint64_t rand_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* The group of job j in dimension `by`. */
static const char *rand_key(const rand_job *j, const char *by)
{
    const rand_user *u = &rand_users[j->user];
    if (strcmp(by, "partner") == 0) return u->partner;
    if (strcmp(by, "user") == 0) return u->name;
    if (strcmp(by, "category") == 0) return u->category;
    if (strcmp(by, "gpu-type") == 0) return j->gpus <= 0 || !j->gpu_type[0] ? "none" : j->gpu_type;
    if (strcmp(by, "day") == 0) return j->day;
    if (strcmp(by, "month") == 0) return j->month;
    return "";
}

/* Sums the charged jobs of group `key` in `by` (and of partner, user when not NULL). */
static store_usage_row rand_sum(const rand_job *js, size_t n, const char *by, const char *key,
                                const char *partner, const char *user)
{
    store_usage_row r;
    memset(&r, 0, sizeof r);
    for (size_t i = 0; i < n; i++) {
        const rand_job *j = &js[i];
        if (!j->charged || strcmp(rand_key(j, by), key) != 0) continue;
        if (partner && strcmp(rand_users[j->user].partner, partner) != 0) continue;
        if (user && strcmp(rand_users[j->user].name, user) != 0) continue;
        r.gpu_seconds += j->gpu_s;
        r.cpu_seconds += j->cpu_s;
        if (j->gpus > 0 && j->started > 0 && j->ended > j->started)
            r.elapsed_gpu_seconds += j->gpus * (j->ended - j->started);
        r.jobs++;
    }
    return r;
}

/* Checks the rows of `by` (with filters) against the jobs; returns their sum. */
static store_usage_row check_random_dim(fixture *f, const rand_job *js, size_t njobs,
                                        const char *by, const char *partner, const char *user)
{
    store_usage_filter uf = {.by = by, .partner = partner, .user = user};
    store_usage_row *rows = NULL, sum;
    size_t n = 0;
    memset(&sum, 0, sizeof sum);
    assert_int_equal(store_usage_query(f->s, &uf, &rows, &n), 0);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) assert_true(strcmp(rows[i - 1].key, rows[i].key) < 0); /* ordered by key */
        store_usage_row want = rand_sum(js, njobs, by, rows[i].key, partner, user);
        assert_true(want.jobs > 0);
        assert_int_equal(rows[i].gpu_seconds, want.gpu_seconds);
        assert_int_equal(rows[i].cpu_seconds, want.cpu_seconds);
        assert_int_equal(rows[i].elapsed_gpu_seconds, want.elapsed_gpu_seconds);
        assert_int_equal(rows[i].jobs, want.jobs);
        sum.gpu_seconds += rows[i].gpu_seconds;
        sum.cpu_seconds += rows[i].cpu_seconds;
        sum.elapsed_gpu_seconds += rows[i].elapsed_gpu_seconds;
        sum.jobs += rows[i].jobs;
    }
    free(rows);
    return sum;
}

static void make_random_jobs(fixture *f, rand_job *js, size_t n)
{
    static const char *const periods[] = {"2026-10", "2026-11", "2026-12"};
    static const char *const types[] = {"", "h100", "a100", "l4"};
    int64_t ids[RAND_USERS];
    assert_int_equal(store_partner_insert(f->s, "kul", NULL, 1, NULL), 0);
    assert_int_equal(store_partner_insert(f->s, "vub", NULL, 2, NULL), 0);
    for (size_t u = 0; u < RAND_USERS; u++) {
        store_user su;
        if (store_user_get(f->s, rand_users[u].name, &su) != 0)
            assert_int_equal(store_user_insert(f->s, rand_users[u].name, rand_users[u].partner,
                                               rand_users[u].name, "user", rand_users[u].category,
                                               NULL),
                             0);
        assert_int_equal(store_user_get(f->s, rand_users[u].name, &su), 0);
        assert_string_equal(su.category, rand_users[u].category);
        ids[u] = su.id;
        for (size_t p = 0; p < 3; p++) {
            store_quota q =
                quota_of(rand_users[u].partner, periods[p], STORE_UNLIMITED, STORE_UNLIMITED);
            assert_int_equal(store_quota_set(f->s, &q), 0);
        }
    }
    uint64_t x = 0x5eed2026u;
    for (size_t i = 0; i < n; i++) {
        rand_job *j = &js[i];
        memset(j, 0, sizeof *j);
        j->user = rand_next(&x) % RAND_USERS;
        j->gpus = (int)(rand_next(&x) % 5);
        j->gpu_type = types[rand_next(&x) % 4];
        const char *period = periods[rand_next(&x) % 3];
        j->started = rand_next(&x) % 6 == 0 ? 0 : 1000 + (int64_t)(rand_next(&x) % 100000);
        j->ended = j->started + (int64_t)(rand_next(&x) % 20000) - 2000;
        if (j->ended < 1) j->ended = 1;
        unsigned fate = rand_next(&x) % 10;
        if (fate == 0) { /* still running: held, not charged */
            int64_t id = insert_job(f, ids[j->user], "running");
            assert_int_equal(store_job_dispatch_begin(f->s, id, period, 5, 5), 0);
            continue;
        }
        if (fate != 1) { /* fate 1: completed without a charge */
            j->gpu_s = rand_next(&x) % 4 == 0 ? 0 : (int64_t)(rand_next(&x) % 1000000);
            j->cpu_s = 1 + (int64_t)(rand_next(&x) % 1000000);
            j->charged = true;
        }
        int64_t id = charged_job(f, ids[j->user], j->gpus, j->gpu_type, period, j->started,
                                 j->ended, j->gpu_s, j->cpu_s);
        if (!j->charged) continue;
        store_ledger_entry *es = NULL;
        size_t ne = 0;
        assert_int_equal(store_ledger_list(f->s, NULL, id, "charge", 0, &es, &ne), 0);
        assert_int_equal(ne, 1);
        time_t at = (time_t)es[0].at;
        free(es);
        struct tm tm;
        assert_non_null(gmtime_r(&at, &tm));
        assert_int_equal(strftime(j->day, sizeof j->day, "%Y-%m-%d", &tm), 10);
        assert_int_equal(strftime(j->month, sizeof j->month, "%Y-%m", &tm), 7);
    }
}

static void usage_random_charges_sum_the_same_in_every_dimension_and_in_the_ledger(void **state)
{
    fixture *f = *state;
    static rand_job js[RANDOM_JOBS];
    make_random_jobs(f, js, RANDOM_JOBS);

    store_usage_row total = rand_sum(js, RANDOM_JOBS, "total", "", NULL, NULL);
    assert_true(total.jobs > RANDOM_JOBS / 2);
    store_ledger_entry *es = NULL;
    size_t ne = 0;
    assert_int_equal(store_ledger_list(f->s, NULL, 0, "charge", 0, &es, &ne), 0);
    int64_t ledger_gpu = 0, ledger_cpu = 0;
    for (size_t i = 0; i < ne; i++) {
        ledger_gpu += es[i].gpu_seconds;
        ledger_cpu += es[i].cpu_seconds;
    }
    free(es);
    assert_int_equal(ne, total.jobs);
    assert_int_equal(ledger_gpu, total.gpu_seconds);
    assert_int_equal(ledger_cpu, total.cpu_seconds);

    static const char *const dims[] = {"partner", "user",  "category", "gpu-type",
                                       "day",     "month", "total"};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        store_usage_row sum = check_random_dim(f, js, RANDOM_JOBS, dims[d], NULL, NULL);
        assert_int_equal(sum.gpu_seconds, total.gpu_seconds);
        assert_int_equal(sum.cpu_seconds, total.cpu_seconds);
        assert_int_equal(sum.elapsed_gpu_seconds, total.elapsed_gpu_seconds);
        assert_int_equal(sum.jobs, total.jobs);
    }
    /* filtered: by partner, then by user, in every dimension */
    for (size_t u = 0; u < RAND_USERS; u++) {
        const char *partner = rand_users[u].partner, *user = rand_users[u].name;
        store_usage_row want_p = rand_sum(js, RANDOM_JOBS, "total", "", partner, NULL);
        store_usage_row want_u = rand_sum(js, RANDOM_JOBS, "total", "", NULL, user);
        for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
            store_usage_row sum = check_random_dim(f, js, RANDOM_JOBS, dims[d], partner, NULL);
            assert_int_equal(sum.gpu_seconds, want_p.gpu_seconds);
            assert_int_equal(sum.jobs, want_p.jobs);
            sum = check_random_dim(f, js, RANDOM_JOBS, dims[d], NULL, user);
            assert_int_equal(sum.gpu_seconds, want_u.gpu_seconds);
            assert_int_equal(sum.cpu_seconds, want_u.cpu_seconds);
            assert_int_equal(sum.jobs, want_u.jobs);
        }
    }
}

/* A statement (GET /v1/reports) sums store_job_list_charged's charges per partner and period:
 * on random data, that sum must equal the ledger's charge rows of the same partner and period. */
static void statement_totals_equal_ledger_sums_on_random_data(void **state)
{
    fixture *f = *state;
    static rand_job js[RANDOM_JOBS];
    static const char *const periods[] = {"2026-10", "2026-11", "2026-12"};
    static const char *const partners[] = {"ulb", "kul", "vub"};
    make_random_jobs(f, js, RANDOM_JOBS);
    int64_t grand = 0, grand_jobs = 0;
    for (size_t p = 0; p < 3; p++) {
        for (size_t q = 0; q < 3; q++) {
            store_job *jobs = NULL;
            size_t n = 0;
            int64_t stmt = 0, ledger = 0;
            assert_int_equal(store_job_list_charged(f->s, partners[p], periods[q], &jobs, &n), 0);
            for (size_t i = 0; i < n; i++)
                stmt += jobs[i].charge_gpu_seconds;
            free(jobs);
            store_ledger_entry *es = NULL;
            size_t ne = 0;
            assert_int_equal(store_ledger_list(f->s, partners[p], 0, "charge", 0, &es, &ne), 0);
            size_t in_period = 0;
            for (size_t i = 0; i < ne; i++)
                if (strcmp(es[i].period, periods[q]) == 0) {
                    ledger += es[i].gpu_seconds;
                    in_period++;
                }
            free(es);
            assert_int_equal(stmt, ledger);
            assert_int_equal(n, in_period);
            grand += stmt;
            grand_jobs += (int64_t)n;
        }
    }
    store_usage_row total = rand_sum(js, RANDOM_JOBS, "total", "", NULL, NULL);
    assert_int_equal(grand, total.gpu_seconds);
    assert_int_equal(grand_jobs, total.jobs);
}

/* The running sums that a dispatch's budget check reads equal the ledger's own sums. */
static void ledger_running_sums_equal_the_ledger_on_random_data(void **state)
{
    fixture *f = *state;
    static rand_job js[RANDOM_JOBS];
    make_random_jobs(f, js, RANDOM_JOBS);
    static char sums[65536], want[65536];
    assert_int_equal(sqlite_cli(f,
                                "SELECT partner_id, period, used_gpu, held_gpu, used_cpu, held_cpu "
                                "FROM ledger_sums ORDER BY 1, 2;",
                                sums, sizeof sums),
                     0);
    assert_int_equal(
        sqlite_cli(f,
                   "SELECT partner_id, period,"
                   " coalesce(sum(CASE WHEN kind = 'charge' THEN gpu_seconds END), 0),"
                   " coalesce(sum(CASE WHEN kind <> 'charge' THEN gpu_seconds END), 0),"
                   " coalesce(sum(CASE WHEN kind = 'charge' THEN cpu_seconds END), 0),"
                   " coalesce(sum(CASE WHEN kind <> 'charge' THEN cpu_seconds END), 0)"
                   " FROM ledger GROUP BY partner_id, period ORDER BY 1, 2;",
                   want, sizeof want),
        0);
    assert_true(strlen(want) > 10);
    assert_string_equal(sums, want);
}

/* --- v3: statements --- */

static void job_list_charged_lists_charged_jobs_of_partner_and_period_by_end_time(void **state)
{
    fixture *f = *state;
    int64_t bob, carol;
    add_usage_users(f, &bob, &carol);
    set_budget(f, "2026-12", STORE_UNLIMITED, STORE_UNLIMITED);
    int64_t x = charged_job(f, f->user_id, 2, "h100", PERIOD, 1000, 3000, 4000, 10);
    int64_t y = charged_job(f, bob, 1, "a100", PERIOD, 1500, 2000, 500, 20);
    int64_t y2 = charged_job(f, f->user_id, 0, "", PERIOD, 1900, 2000, 0, 30); /* same end */
    int64_t z = charged_job(f, f->user_id, 1, "h100", "2026-12", 100, 1000, 900, 1);
    int64_t k = charged_job(f, carol, 1, "h100", PERIOD, 100, 500, 400, 1);
    charged_job(f, f->user_id, 1, "h100", PERIOD, 100, 200, 0, 0); /* completed, not charged */
    insert_held_job(f);                                            /* held, not charged */

    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list_charged(f->s, "ulb", PERIOD, &js, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(js[0].id, y);
    assert_int_equal(js[1].id, y2);
    assert_int_equal(js[2].id, x);
    assert_string_equal(js[2].user, "alice");
    assert_string_equal(js[2].partner, "ulb");
    assert_string_equal(js[2].name, "charged");
    assert_int_equal(js[2].gpus, 2);
    assert_string_equal(js[2].gpu_type, "h100");
    assert_string_equal(js[2].state, "completed");
    assert_true(js[2].has_exit_code);
    assert_int_equal(js[2].slurm_job_id, 5000 + x);
    assert_int_equal(js[2].started_at, 1000);
    assert_int_equal(js[2].ended_at, 3000);
    assert_string_equal(js[2].period, PERIOD);
    assert_int_equal(js[2].hold_gpu_seconds, 0);
    assert_int_equal(js[2].charge_gpu_seconds, 4000);
    assert_int_equal(js[2].charge_cpu_seconds, 10);
    assert_int_equal(js[1].charge_cpu_seconds, 30);
    free(js);
    assert_int_equal(store_job_list_charged(f->s, "ulb", "2026-12", &js, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(js[0].id, z);
    free(js);
    assert_int_equal(store_job_list_charged(f->s, "kul", PERIOD, &js, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(js[0].id, k);
    free(js);
    assert_int_equal(store_job_list_charged(f->s, "ulb", "2027-01", &js, &n), 0);
    assert_int_equal(n, 0);
    assert_null(js);
    assert_int_equal(store_job_list_charged(f->s, "nobody", PERIOD, &js, &n), 0);
    assert_int_equal(n, 0);
}

/* --- v3: audit trail --- */

/* A test hash (not cryptographic): four FNV-1a 64 over the fields audit.h hashes, as hex. */
static void test_hash(const store_audit_entry *e, char out[STORE_HASH_HEX])
{
    char head[512];
    snprintf(head, sizeof head, "%s\n%lld\n%lld\n%s\n%s\n%s\n", e->prev_hash, (long long)e->seq,
             (long long)e->at, e->actor, e->partner, e->action);
    uint64_t h[4];
    for (int k = 0; k < 4; k++) {
        h[k] = 14695981039346656037ULL ^ (uint64_t)k;
        const char *parts[2] = {head, e->details ? e->details : "(null)"};
        for (int p = 0; p < 2; p++)
            for (const unsigned char *c = (const unsigned char *)parts[p]; *c; c++)
                h[k] = (h[k] ^ *c) * 1099511628211ULL;
    }
    snprintf(out, STORE_HASH_HEX, "%016llx%016llx%016llx%016llx", (unsigned long long)h[0],
             (unsigned long long)h[1], (unsigned long long)h[2], (unsigned long long)h[3]);
}

/* What the hash function was last called with; `fail` makes it fail. */
typedef struct hash_spy {
    int calls;
    int fail;
    store_audit_entry seen;
    char details[256];
} hash_spy;

static int spy_hash(const store_audit_entry *e, char out[STORE_HASH_HEX], void *arg)
{
    hash_spy *spy = arg;
    if (spy) {
        spy->calls++;
        spy->seen = *e;
        snprintf(spy->details, sizeof spy->details, "%s", e->details ? e->details : "(null)");
        spy->seen.details = spy->details;
        if (spy->fail) return spy->fail;
    }
    test_hash(e, out);
    return 0;
}

static store_audit_entry audit_entry(const char *actor, const char *partner, const char *action,
                                     const char *details, int64_t at)
{
    store_audit_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.actor, sizeof e.actor, "%s", actor);
    snprintf(e.partner, sizeof e.partner, "%s", partner);
    snprintf(e.action, sizeof e.action, "%s", action);
    e.details = (char *)details;
    e.at = at;
    return e;
}

static void audit_append(fixture *f, const char *actor, const char *action, int64_t at)
{
    store_audit_entry e = audit_entry(actor, "", action, "{}", at);
    assert_int_equal(store_audit_append(f->s, &e, spy_hash, NULL), 0);
}

static void assert_entry_equal(const store_audit_entry *a, const store_audit_entry *b)
{
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->at, b->at);
    assert_string_equal(a->actor, b->actor);
    assert_string_equal(a->partner, b->partner);
    assert_string_equal(a->action, b->action);
    assert_string_equal(a->details, b->details);
    assert_string_equal(a->prev_hash, b->prev_hash);
}

static void audit_append_chains_entries_and_hashes_their_final_fields(void **state)
{
    fixture *f = *state;
    hash_spy spy = {0};
    store_audit_entry e1 = audit_entry("alice", "ulb", "job.submitted", "{\"job\":1}", 0);
    memset(e1.prev_hash, 'x', sizeof e1.prev_hash - 1); /* whatever the caller left there */
    e1.seq = 42;
    assert_int_equal(store_audit_append(f->s, &e1, spy_hash, &spy), 0);
    assert_int_equal(spy.calls, 1);
    assert_int_equal(e1.seq, 1);
    assert_string_equal(e1.prev_hash, "");
    assert_entry_equal(&spy.seen, &e1); /* hashed with its final seq, at and prev_hash */
    char want[STORE_HASH_HEX];
    test_hash(&e1, want);
    assert_string_equal(e1.hash, want);

    store_audit_entry e2 = audit_entry("antennad", "", "job.dispatched", "{\"job\":1}", 0);
    assert_int_equal(store_audit_append(f->s, &e2, spy_hash, &spy), 0);
    assert_int_equal(spy.calls, 2);
    assert_int_equal(e2.seq, 2);
    assert_string_equal(e2.prev_hash, e1.hash);
    assert_entry_equal(&spy.seen, &e2);
    test_hash(&e2, want);
    assert_string_equal(e2.hash, want);

    store_audit_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(f->s, 0, 0, NULL, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 2);
    assert_entry_equal(&es[0], &e1);
    assert_string_equal(es[0].hash, e1.hash);
    assert_entry_equal(&es[1], &e2);
    assert_string_equal(es[1].hash, e2.hash);
    assert_true(es[0].details != e1.details); /* a copy, owned by the entry */
    store_audit_entries_free(es, n);
}

static void
audit_append_stamps_at_only_when_zero_and_stores_no_details_as_empty_object(void **state)
{
    fixture *f = *state;
    hash_spy spy = {0};
    int64_t before = time(NULL);
    store_audit_entry e1 = audit_entry("-", "", "auth.failed", NULL, 0);
    assert_int_equal(store_audit_append(f->s, &e1, spy_hash, &spy), 0);
    assert_true(e1.at >= before && e1.at <= time(NULL));
    assert_int_equal(spy.seen.at, e1.at);
    assert_string_equal(spy.details, "{}"); /* hashed as stored */
    assert_null(e1.details);                /* the caller's pointer is left alone */
    store_audit_entry e2 = audit_entry("admin", "kul", "quota.set", "{\"gpu\":5}", 1234);
    assert_int_equal(store_audit_append(f->s, &e2, spy_hash, &spy), 0);
    assert_int_equal(e2.at, 1234);
    assert_int_equal(spy.seen.at, 1234);

    store_audit_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(f->s, 0, 0, NULL, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(es[0].at, e1.at);
    assert_string_equal(es[0].details, "{}");
    assert_int_equal(es[1].at, 1234);
    assert_string_equal(es[1].partner, "kul");
    assert_string_equal(es[1].details, "{\"gpu\":5}");
    store_audit_entries_free(es, n);
}

/* Lists with the filters and checks the seqs returned. want ends with 0. */
static void check_audit_list(fixture *f, int64_t after, int64_t since, const char *actor,
                             const char *action, size_t limit, const int64_t *want)
{
    store_audit_entry *es = NULL;
    size_t n = 99, nwant = 0;
    while (want[nwant])
        nwant++;
    assert_int_equal(store_audit_list(f->s, after, since, actor, action, limit, &es, &n), 0);
    assert_int_equal(n, nwant);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(es[i].seq, want[i]);
    if (n == 0) assert_null(es);
    store_audit_entries_free(es, n);
}

/* seq: 1 alice job.submitted, 2 antennad job.dispatched, 3 - auth.failed, 4 alice
 * job.cancel_requested, 5 bob jobs.listed, 6 alice job, 7 admin quota.set; at = seq x 1000. */
static void add_audit_entries(fixture *f)
{
    static const char *const rows[][2] = {
        {"alice", "job.submitted"}, {"antennad", "job.dispatched"},
        {"-", "auth.failed"},       {"alice", "job.cancel_requested"},
        {"bob", "jobs.listed"},     {"alice", "job"},
        {"admin", "quota.set"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        audit_append(f, rows[i][0], rows[i][1], (int64_t)(i + 1) * 1000);
}

static void audit_list_filters_by_after_since_actor_action_and_limit(void **state)
{
    fixture *f = *state;
    add_audit_entries(f);
    check_audit_list(f, 0, 0, NULL, NULL, 0, (const int64_t[]){1, 2, 3, 4, 5, 6, 7, 0});
    check_audit_list(f, 3, 0, NULL, NULL, 0, (const int64_t[]){4, 5, 6, 7, 0});
    check_audit_list(f, 7, 0, NULL, NULL, 0, (const int64_t[]){0});
    check_audit_list(f, 0, 4000, NULL, NULL, 0, (const int64_t[]){4, 5, 6, 7, 0});
    check_audit_list(f, 0, 4001, NULL, NULL, 0, (const int64_t[]){5, 6, 7, 0});
    check_audit_list(f, 0, 0, "alice", NULL, 0, (const int64_t[]){1, 4, 6, 0});
    check_audit_list(f, 0, 0, "nobody", NULL, 0, (const int64_t[]){0});
    check_audit_list(f, 0, 0, NULL, "auth.failed", 0, (const int64_t[]){3, 0});
    check_audit_list(f, 0, 0, NULL, NULL, 2, (const int64_t[]){1, 2, 0});
    check_audit_list(f, 5, 0, NULL, NULL, 5, (const int64_t[]){6, 7, 0});
    check_audit_list(f, 1, 2000, "alice", "job.", 1, (const int64_t[]){4, 0});
    check_audit_list(f, 0, 0, "alice", "job.submitted", 0, (const int64_t[]){1, 0});
}

static void audit_list_action_ending_in_dot_matches_a_prefix(void **state)
{
    fixture *f = *state;
    add_audit_entries(f);
    check_audit_list(f, 0, 0, NULL, "job.", 0, (const int64_t[]){1, 2, 4, 0});
    check_audit_list(f, 0, 0, NULL, "job", 0, (const int64_t[]){6, 0}); /* no dot: exact */
    check_audit_list(f, 0, 0, NULL, "jobs.", 0, (const int64_t[]){5, 0});
    check_audit_list(f, 0, 0, NULL, "job.cancel_", 0, (const int64_t[]){0}); /* no wildcard */
    check_audit_list(f, 0, 0, NULL, "JOB.", 0, (const int64_t[]){0});        /* case counts */
    check_audit_list(f, 0, 0, NULL, "job.submitted.", 0, (const int64_t[]){0});
    check_audit_list(f, 0, 0, NULL, "", 0, (const int64_t[]){0}); /* "" is an exact action */
}

#define AUDIT_THREADS     4
#define AUDITS_PER_THREAD 50

typedef struct audit_writer {
    store *s;
    int index, errors;
} audit_writer;

static void *audit_many(void *arg)
{
    audit_writer *w = arg;
    for (int i = 0; i < AUDITS_PER_THREAD; i++) {
        char details[64];
        snprintf(details, sizeof details, "{\"n\":%d}", i);
        store_audit_entry e = audit_entry("", "", "job.submitted", details, 0);
        snprintf(e.actor, sizeof e.actor, "writer%d", w->index);
        if (store_audit_append(w->s, &e, spy_hash, NULL) != 0) w->errors++;
    }
    return NULL;
}

/* Two threads on each of two handles of the same database. */
static void audit_concurrent_appends_make_one_chain_without_gaps(void **state)
{
    fixture *f = *state;
    store *other = NULL;
    char err[256];
    assert_int_equal(store_new(f->path, &other, err, sizeof err), 0);
    audit_writer w[AUDIT_THREADS];
    pthread_t th[AUDIT_THREADS];
    for (int t = 0; t < AUDIT_THREADS; t++) {
        w[t] = (audit_writer){.s = t % 2 ? other : f->s, .index = t};
        assert_int_equal(pthread_create(&th[t], NULL, audit_many, &w[t]), 0);
    }
    for (int t = 0; t < AUDIT_THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    store_free(other);
    for (int t = 0; t < AUDIT_THREADS; t++)
        assert_int_equal(w[t].errors, 0);

    store_audit_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(f->s, 0, 0, NULL, NULL, 0, &es, &n), 0);
    assert_int_equal(n, AUDIT_THREADS * AUDITS_PER_THREAD);
    int per_writer[AUDIT_THREADS] = {0};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(es[i].seq, (int64_t)i + 1);
        assert_string_equal(es[i].prev_hash, i == 0 ? "" : es[i - 1].hash);
        char want[STORE_HASH_HEX];
        test_hash(&es[i], want);
        assert_string_equal(es[i].hash, want);
        int t = es[i].actor[6] - '0';
        assert_true(t >= 0 && t < AUDIT_THREADS);
        per_writer[t]++;
    }
    for (int t = 0; t < AUDIT_THREADS; t++)
        assert_int_equal(per_writer[t], AUDITS_PER_THREAD);
    store_audit_entries_free(es, n);
}

static void audit_append_with_failing_hash_writes_nothing(void **state)
{
    fixture *f = *state;
    audit_append(f, "alice", "job.submitted", 0);
    hash_spy spy = {.fail = -EKEYREJECTED};
    store_audit_entry e = audit_entry("bob", "ulb", "job.submitted", "{}", 0);
    assert_int_equal(store_audit_append(f->s, &e, spy_hash, &spy), -EKEYREJECTED);
    assert_int_equal(spy.calls, 1);
    assert_int_equal(spy.seen.seq, 2);
    assert_int_equal(e.seq, 0); /* the caller's entry is left as it was */
    assert_int_equal(e.at, 0);
    assert_string_equal(e.hash, "");

    store_audit_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(f->s, 0, 0, NULL, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 1);
    char first[STORE_HASH_HEX];
    memcpy(first, es[0].hash, sizeof first);
    store_audit_entries_free(es, n);
    spy.fail = 0; /* the next append follows the last entry written */
    assert_int_equal(store_audit_append(f->s, &e, spy_hash, &spy), 0);
    assert_int_equal(e.seq, 2);
    assert_string_equal(e.prev_hash, first);
}

static void audit_append_without_actor_or_action_is_einval(void **state)
{
    fixture *f = *state;
    hash_spy spy = {0};
    store_audit_entry e = audit_entry("", "", "job.submitted", NULL, 0);
    assert_int_equal(store_audit_append(f->s, &e, spy_hash, &spy), -EINVAL);
    e = audit_entry("alice", "", "", NULL, 0);
    assert_int_equal(store_audit_append(f->s, &e, spy_hash, &spy), -EINVAL);
    e = audit_entry("alice", "", "job.submitted", NULL, 0);
    assert_int_equal(store_audit_append(f->s, &e, NULL, NULL), -EINVAL);
    memset(e.action, 'a', sizeof e.action); /* not terminated */
    assert_int_equal(store_audit_append(f->s, &e, spy_hash, &spy), -EINVAL);
    assert_int_equal(spy.calls, 0);
    store_audit_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(f->s, 0, 0, NULL, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 0);
}

/* The audit table has no trigger: the sqlite3 tool can edit and delete rows, and the store lists
 * them as stored (catching that is the hash chain's job). */
static void audit_rows_edited_outside_are_listed_as_stored(void **state)
{
    fixture *f = *state;
    for (int i = 1; i <= 3; i++)
        audit_append(f, "alice", "job.submitted", i * 1000);
    store_audit_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(f->s, 0, 0, NULL, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 3);
    char hash2[STORE_HASH_HEX];
    memcpy(hash2, es[1].hash, sizeof hash2);
    store_audit_entries_free(es, n);

    assert_int_equal(
        sqlite_cli(f, "UPDATE audit SET details = '{\"job\":99}', actor = 'mallory' WHERE seq = 2;",
                   NULL, 0),
        0);
    assert_int_equal(sqlite_cli(f, "DELETE FROM audit WHERE seq = 3;", NULL, 0), 0);
    assert_int_equal(store_audit_list(f->s, 0, 0, NULL, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(es[1].seq, 2);
    assert_string_equal(es[1].actor, "mallory");
    assert_string_equal(es[1].details, "{\"job\":99}");
    assert_string_equal(es[1].hash, hash2); /* its stored hash no longer matches its fields */
    char now_hash[STORE_HASH_HEX];
    test_hash(&es[1], now_hash);
    assert_string_not_equal(now_hash, hash2);
    store_audit_entries_free(es, n);
}

static void audit_entries_free_accepts_null(void **state)
{
    (void)state;
    store_audit_entries_free(NULL, 0);
    store_audit_entries_free(NULL, 3);
}

/* --- batches, changes, the read connection --- */

/* Closes and reopens f's store: what is found after this was on disk. */
static void reopen(fixture *f)
{
    store_free(f->s);
    f->s = NULL;
    assert_int_equal(open_store(f), 0);
}

static size_t audit_count(fixture *f)
{
    store_audit_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(f->s, 0, 0, NULL, NULL, 0, &es, &n), 0);
    store_audit_entries_free(es, n);
    return n;
}

#define BATCH_JOBS 50

static void batch_commit_makes_every_change_durable(void **state)
{
    fixture *f = *state;
    int64_t ids[BATCH_JOBS];
    assert_int_equal(store_batch_begin(f->s), 0);
    assert_true(store_in_batch(f->s));
    for (int i = 0; i < BATCH_JOBS; i++) {
        ids[i] = insert_job(f, f->user_id, "batched");
        audit_append(f, "alice", "job.submitted", 0);
    }
    assert_int_equal(store_partner_insert(f->s, "kul", "Leuven", 2, NULL), 0);
    assert_int_equal(store_batch_commit(f->s), 0);
    assert_false(store_in_batch(f->s));

    reopen(f);
    for (int i = 0; i < BATCH_JOBS; i++) {
        store_job j;
        assert_int_equal(store_job_get(f->s, ids[i], &j), 0);
        assert_string_equal(j.state, STORE_STATE_QUEUED);
    }
    assert_int_equal(audit_count(f), BATCH_JOBS);
    store_partner p;
    assert_int_equal(store_partner_get(f->s, "kul", &p), 0);
    assert_int_equal(p.share_weight, 2);
}

static void batch_failing_call_undoes_only_its_own_writes(void **state)
{
    fixture *f = *state;
    set_budget(f, PERIOD, 1000, STORE_UNLIMITED);
    int64_t queued = insert_job(f, f->user_id, "big");
    assert_int_equal(store_batch_begin(f->s), 0);
    int64_t a = insert_job(f, f->user_id, "a");
    assert_int_equal(store_partner_insert(f->s, "ulb", "again", 1, NULL), -EEXIST);
    /* the budget check reads, then fails after nothing: its savepoint leaves no hold row */
    assert_int_equal(store_job_dispatch_begin(f->s, queued, PERIOD, 1001, 0), -EDQUOT);
    assert_int_equal(store_job_dispatch_begin(f->s, a, PERIOD, 400, 0), 0);
    assert_int_equal(store_job_transition(f->s, queued, "running", "failed", NULL), -EAGAIN);
    int64_t b = insert_job(f, f->user_id, "b");
    assert_int_equal(store_batch_commit(f->s), 0);

    reopen(f);
    store_job j;
    assert_int_equal(store_job_get(f->s, a, &j), 0);
    assert_string_equal(j.state, STORE_STATE_DISPATCHING);
    assert_int_equal(j.hold_gpu_seconds, 400);
    assert_int_equal(store_job_get(f->s, b, &j), 0);
    assert_int_equal(store_job_get(f->s, queued, &j), 0);
    assert_string_equal(j.state, STORE_STATE_QUEUED);
    assert_int_equal(j.hold_gpu_seconds, 0);
    assert_int_equal(ledger_rows(f, queued, NULL), 0);
    assert_int_equal(ledger_rows(f, a, "hold"), 1);
    store_partner p;
    assert_int_equal(store_partner_get(f->s, "ulb", &p), 0);
    assert_string_equal(p.description, "Universite libre de Bruxelles");
}

static void batch_rollback_leaves_nothing(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_batch_begin(f->s), 0);
    int64_t id = insert_job(f, f->user_id, "gone");
    audit_append(f, "alice", "job.submitted", 0);
    assert_int_equal(store_partner_insert(f->s, "kul", NULL, 1, NULL), 0);
    store_batch_rollback(f->s);
    assert_false(store_in_batch(f->s));

    reopen(f);
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), -ENOENT);
    assert_int_equal(audit_count(f), 0);
    store_partner p;
    assert_int_equal(store_partner_get(f->s, "kul", &p), -ENOENT);
    /* and the store takes writes again */
    assert_true(insert_job(f, f->user_id, "next") > 0);
}

/* Asserts that the store holds exactly the jobs named `first` and `second` (NULL: none), oldest
 * first. */
static void assert_job_names(fixture *f, const char *first, const char *second)
{
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list_active(f->s, &js, &n), 0);
    assert_int_equal(n, (first != NULL) + (second != NULL));
    if (first) assert_string_equal(js[0].name, first);
    if (second) assert_string_equal(js[1].name, second);
    free(js);
}

/* One change: a job insert and its audit entry; fails with `rc` after both when rc < 0. */
static int submit_change(fixture *f, const char *name, int rc, int64_t *id)
{
    assert_int_equal(store_change_begin(f->s), 0);
    *id = insert_job(f, f->user_id, name);
    audit_append(f, "alice", "job.submitted", 0);
    return store_change_end(f->s, rc);
}

static void change_end_with_error_undoes_that_change_only(void **state)
{
    fixture *f = *state;
    int64_t kept1, undone, kept2;
    assert_int_equal(store_batch_begin(f->s), 0);
    assert_int_equal(submit_change(f, "one", 0, &kept1), 0);
    assert_int_equal(submit_change(f, "two", -EDQUOT, &undone), -EDQUOT);
    store_job j;
    assert_int_equal(store_job_get(f->s, undone, &j), -ENOENT); /* undone in the batch already */
    assert_int_equal(submit_change(f, "three", 0, &kept2), 0);
    assert_int_equal(store_batch_commit(f->s), 0);

    reopen(f);
    assert_job_names(f, "one", "three");
    assert_int_equal(store_job_get(f->s, kept1, &j), 0);
    assert_int_equal(store_job_get(f->s, kept2, &j), 0);
    assert_int_equal(kept2, undone); /* the undone insert took back its id */
    /* two entries, chained without a gap: the undone change's entry left no trace */
    store_audit_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(f->s, 0, 0, NULL, NULL, 0, &es, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(es[0].seq, 1);
    assert_int_equal(es[1].seq, 2);
    assert_string_equal(es[1].prev_hash, es[0].hash);
    store_audit_entries_free(es, n);
}

static void changes_nest_and_an_inner_failure_keeps_the_outer_writes(void **state)
{
    fixture *f = *state;
    int64_t outer, inner;
    assert_int_equal(store_batch_begin(f->s), 0);
    assert_int_equal(store_change_begin(f->s), 0);
    outer = insert_job(f, f->user_id, "outer");
    assert_int_equal(submit_change(f, "inner", -EIO, &inner), -EIO);
    assert_int_equal(store_change_end(f->s, 0), 0);
    assert_int_equal(store_batch_commit(f->s), 0);
    store_job j;
    assert_int_equal(store_job_get(f->s, outer, &j), 0);
    assert_int_equal(store_job_get(f->s, inner, &j), -ENOENT);
    assert_int_equal(audit_count(f), 0);
}

static void change_outside_a_batch_is_its_own_transaction(void **state)
{
    fixture *f = *state;
    int64_t undone, kept;
    assert_int_equal(submit_change(f, "undone", -EEXIST, &undone), -EEXIST);
    assert_false(store_in_batch(f->s));
    assert_int_equal(submit_change(f, "kept", 0, &kept), 0);
    reopen(f);
    assert_job_names(f, "kept", NULL);
    store_job j;
    assert_int_equal(store_job_get(f->s, kept, &j), 0);
    assert_int_equal(kept, undone);
    assert_int_equal(audit_count(f), 1);
}

static void batch_reads_on_its_thread_see_its_uncommitted_writes(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_batch_begin(f->s), 0);
    int64_t id = insert_job(f, f->user_id, "mine");
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_string_equal(j.name, "mine");
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list_active(f->s, &js, &n), 0);
    assert_int_equal(n, 1);
    free(js);
    assert_int_equal(store_batch_commit(f->s), 0);
}

static void batch_misuse_is_einval(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_batch_commit(f->s), -EINVAL);  /* no batch */
    assert_int_equal(store_change_end(f->s, 0), -EINVAL); /* no change */
    store_batch_rollback(f->s);                           /* no batch: nothing happens */
    assert_int_equal(store_batch_begin(f->s), 0);
    assert_int_equal(store_batch_begin(f->s), -EINVAL); /* nested */
    assert_int_equal(store_checkpoint(f->s), -EINVAL);  /* inside the batch */
    assert_int_equal(store_change_begin(f->s), 0);
    /* a change still open: the batch is rolled back, and the store is free again */
    int64_t id = insert_job(f, f->user_id, "open");
    assert_int_equal(store_batch_commit(f->s), -EINVAL);
    assert_false(store_in_batch(f->s));
    store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), -ENOENT);
    assert_int_equal(store_change_end(f->s, 0), -EINVAL);
    assert_int_equal(store_batch_begin(f->s), 0);
    store_batch_rollback(f->s);
}

/* A thread that does one store call while the test thread holds a batch. */
typedef struct other_thread {
    fixture *f;
    int64_t job_id;
    int ret;
    int done; /* set (atomically) when the call returned */
} other_thread;

static void *other_job_get(void *arg)
{
    other_thread *o = arg;
    store_job j;
    o->ret = store_job_get(o->f->s, o->job_id, &j);
    __atomic_store_n(&o->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *other_partner_insert(void *arg)
{
    other_thread *o = arg;
    assert_false(store_in_batch(o->f->s)); /* the batch is the test thread's only */
    o->ret = store_partner_insert(o->f->s, "kul", NULL, 1, NULL);
    __atomic_store_n(&o->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Joins t within `seconds`; returns whether it ended. */
static bool join_within(pthread_t t, int seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    return pthread_timedjoin_np(t, NULL, &deadline) == 0;
}

static void reader_thread_is_not_blocked_by_a_batch_and_sees_committed_rows_only(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_batch_begin(f->s), 0);
    other_thread o = {.f = f, .job_id = insert_job(f, f->user_id, "uncommitted")};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_job_get, &o), 0);
    bool ended = join_within(t, 5);
    assert_int_equal(store_batch_commit(f->s), 0); /* before asserting: a blocked reader ends */
    if (!ended) assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(ended);
    assert_int_equal(o.ret, -ENOENT);

    o.done = 0;
    assert_int_equal(pthread_create(&t, NULL, other_job_get, &o), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(o.ret, 0); /* committed: found */
}

static void writer_thread_waits_for_the_batch_then_writes_outside_it(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_batch_begin(f->s), 0);
    other_thread o = {.f = f};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_partner_insert, &o), 0);
    struct timespec pause = {.tv_nsec = 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    assert_int_equal(__atomic_load_n(&o.done, __ATOMIC_SEQ_CST), 0); /* waits for the lock */
    store_batch_rollback(f->s);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(o.ret, 0); /* its write was not in the batch rolled back */
    store_partner p;
    assert_int_equal(store_partner_get(f->s, "kul", &p), 0);
}

/* --- WAL checkpoint --- */

static off_t wal_size(fixture *f)
{
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    struct stat sb;
    assert_int_equal(stat(wal, &sb), 0);
    return sb.st_size;
}

static void checkpoint_truncates_the_wal(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 300; i++)
        insert_job(f, f->user_id, "fill");
    assert_true(wal_size(f) > 0);
    assert_int_equal(store_checkpoint(f->s), 0);
    assert_int_equal(wal_size(f), 0);
    /* the data is in the database file, and the store goes on */
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list(f->s, 0, NULL, 0, &js, &n), 0);
    assert_int_equal(n, 300);
    free(js);
    insert_job(f, f->user_id, "after");
    assert_true(wal_size(f) > 0);
}

/* --- v4: idempotency records, jobs in Slurm --- */

static store_idem idem_of(int64_t user_id, const char *key, int64_t job_id, const char *body,
                          int64_t created_at)
{
    store_idem e;
    memset(&e, 0, sizeof e);
    e.user_id = user_id;
    snprintf(e.key, sizeof e.key, "%s", key);
    snprintf(e.body_hash, sizeof e.body_hash, "%064d", 7);
    e.job_id = job_id;
    e.status = 201;
    e.body = (char *)body;
    e.created_at = created_at;
    return e;
}

static void idem_put_then_get_returns_it(void **state)
{
    fixture *f = *state;
    int64_t before = time(NULL);
    store_idem e = idem_of(f->user_id, "req-1", 42, "{\"id\":42}", 0);
    assert_int_equal(store_idem_put(f->s, &e), 0);
    store_idem got;
    assert_int_equal(store_idem_get(f->s, f->user_id, "req-1", &got), 0);
    assert_int_equal(got.user_id, f->user_id);
    assert_string_equal(got.key, "req-1");
    assert_string_equal(got.body_hash, e.body_hash);
    assert_int_equal(got.job_id, 42);
    assert_int_equal(got.status, 201);
    assert_string_equal(got.body, "{\"id\":42}");
    assert_true(got.created_at >= before && got.created_at <= time(NULL));
    store_idem_clear(&got);
    assert_null(got.body);
    /* keys are per user */
    assert_int_equal(store_idem_get(f->s, f->user_id + 1, "req-1", &got), -ENOENT);
    assert_null(got.body);
    assert_int_equal(store_idem_get(f->s, f->user_id, "req-2", &got), -ENOENT);
}

static void idem_put_same_key_twice_is_eexist_and_keeps_the_first(void **state)
{
    fixture *f = *state;
    store_idem e = idem_of(f->user_id, "k", 1, "first", 100);
    assert_int_equal(store_idem_put(f->s, &e), 0);
    store_idem again = idem_of(f->user_id, "k", 2, "second", 200);
    assert_int_equal(store_idem_put(f->s, &again), -EEXIST);
    store_idem other_user = idem_of(f->user_id + 1, "k", 3, "other", 300);
    assert_int_equal(store_idem_put(f->s, &other_user), 0);
    store_idem got;
    assert_int_equal(store_idem_get(f->s, f->user_id, "k", &got), 0);
    assert_int_equal(got.job_id, 1);
    assert_string_equal(got.body, "first");
    assert_int_equal(got.created_at, 100);
    store_idem_clear(&got);
}

static void idem_bad_key_or_hash_is_einval(void **state)
{
    fixture *f = *state;
    char long_key[STORE_IDEM_KEY_MAX + 1];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    store_idem e = idem_of(f->user_id, "", 1, "{}", 0);
    assert_int_equal(store_idem_put(f->s, &e), -EINVAL);
    memset(e.key, 'k', sizeof e.key); /* no NUL */
    assert_int_equal(store_idem_put(f->s, &e), -EINVAL);
    e = idem_of(f->user_id, "k", 1, "{}", 0);
    memset(e.body_hash, 'a', sizeof e.body_hash);
    assert_int_equal(store_idem_put(f->s, &e), -EINVAL);
    assert_int_equal(store_idem_put(f->s, NULL), -EINVAL);
    store_idem got;
    assert_int_equal(store_idem_get(f->s, f->user_id, long_key, &got), -EINVAL);
    assert_int_equal(store_idem_get(f->s, f->user_id, "", &got), -EINVAL);
    /* the longest key fits */
    long_key[STORE_IDEM_KEY_MAX - 1] = '\0';
    e = idem_of(f->user_id, long_key, 1, NULL, 0); /* no body: "" */
    assert_int_equal(store_idem_put(f->s, &e), 0);
    assert_int_equal(store_idem_get(f->s, f->user_id, long_key, &got), 0);
    assert_string_equal(got.body, "");
    store_idem_clear(&got);
    store_idem_clear(NULL);
}

static void idem_prune_removes_at_most_max_oldest_first_before_a_time(void **state)
{
    fixture *f = *state;
    /* created at 500, 100, 400, 200, 300 */
    const int64_t at[] = {500, 100, 400, 200, 300};
    for (int i = 0; i < 5; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%lld", (long long)at[i]);
        store_idem e = idem_of(f->user_id, key, i, "{}", at[i]);
        assert_int_equal(store_idem_put(f->s, &e), 0);
    }
    size_t removed = 99;
    assert_int_equal(store_idem_prune(f->s, 400, 2, &removed), 0);
    assert_int_equal(removed, 2); /* 100 and 200 */
    store_idem got;
    assert_int_equal(store_idem_get(f->s, f->user_id, "k100", &got), -ENOENT);
    assert_int_equal(store_idem_get(f->s, f->user_id, "k200", &got), -ENOENT);
    assert_int_equal(store_idem_get(f->s, f->user_id, "k300", &got), 0);
    store_idem_clear(&got);
    assert_int_equal(store_idem_prune(f->s, 400, 0, &removed), 0); /* 0: no limit */
    assert_int_equal(removed, 1);                                  /* 300; 400 is not before */
    assert_int_equal(store_idem_get(f->s, f->user_id, "k400", &got), 0);
    store_idem_clear(&got);
    assert_int_equal(store_idem_prune(f->s, 400, 0, NULL), 0);
    assert_int_equal(store_idem_prune(f->s, INT64_MAX, 0, &removed), 0);
    assert_int_equal(removed, 2);
}

static void idem_put_in_a_batch_is_seen_by_a_get_in_it_and_kept_by_its_commit(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_batch_begin(f->s), 0);
    int64_t id = insert_job(f, f->user_id, "idem");
    store_idem e = idem_of(f->user_id, "req", id, "{\"id\":1}", 0);
    assert_int_equal(store_idem_put(f->s, &e), 0);
    store_idem got;
    assert_int_equal(store_idem_get(f->s, f->user_id, "req", &got), 0);
    assert_int_equal(got.job_id, id);
    store_idem_clear(&got);
    assert_int_equal(store_idem_put(f->s, &e), -EEXIST); /* fails alone; the batch goes on */
    assert_int_equal(store_batch_commit(f->s), 0);
    reopen(f);
    assert_int_equal(store_idem_get(f->s, f->user_id, "req", &got), 0);
    assert_int_equal(got.job_id, id);
    store_idem_clear(&got);
}

static void job_list_in_slurm_excludes_queued_and_terminal_jobs_oldest_first(void **state)
{
    fixture *f = *state;
    insert_job(f, f->user_id, "queued");
    int64_t dispatching = insert_job(f, f->user_id, "dispatching");
    assert_int_equal(store_job_transition(f->s, dispatching, "queued", "dispatching", NULL), 0);
    int64_t done = insert_running_job(f);
    store_job u = {.id = done, .state = "completed", .has_exit_code = true};
    assert_int_equal(store_job_update(f->s, &u), 0);
    int64_t dispatched = insert_job(f, f->user_id, "dispatched");
    assert_int_equal(store_job_transition(f->s, dispatched, "queued", "dispatching", NULL), 0);
    assert_int_equal(store_job_set_dispatched(f->s, dispatched, 77), 0);
    int64_t cancelled = insert_job(f, f->user_id, "cancelled");
    assert_int_equal(store_job_cancel_request(f->s, cancelled, NULL), 0);
    int64_t running = insert_running_job(f);
    insert_job(f, f->user_id, "queued too");

    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list_in_slurm(f->s, &js, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(js[0].id, dispatching);
    assert_string_equal(js[0].state, STORE_STATE_DISPATCHING);
    assert_int_equal(js[1].id, dispatched);
    assert_int_equal(js[1].slurm_job_id, 77);
    assert_int_equal(js[2].id, running);
    assert_string_equal(js[2].state, "running");
    free(js);
    /* the active list still has the queued jobs too */
    assert_int_equal(store_job_list_active(f->s, &js, &n), 0);
    assert_int_equal(n, 5);
    free(js);
}

static void job_list_in_slurm_of_no_job_is_empty(void **state)
{
    fixture *f = *state;
    insert_job(f, f->user_id, "queued");
    store_job *js = (store_job *)1;
    size_t n = 9;
    assert_int_equal(store_job_list_in_slurm(f->s, &js, &n), 0);
    assert_int_equal(n, 0);
    assert_null(js);
}

/* What the v6 -> v7 step adds (refunds and corrections, the reconciliation's indexes). */
#define V7_DROP                                                                                    \
    "DROP TRIGGER ledger_adjustments_no_update; DROP TRIGGER ledger_adjustments_no_delete; "       \
    "DROP TABLE ledger_adjustments; DROP INDEX jobs_period; DROP INDEX jobs_slurm_id; "            \
    "DROP INDEX ledger_period_job; "

/* What the v7 -> v8 step adds (job arrays). */
#define V8_DROP                                                                                    \
    "DROP INDEX job_array_tasks_array; DROP TABLE job_array_tasks; DROP TABLE job_arrays; "
/* What the v8 -> v9 step adds (sbatch options). */
#define V9_DROP "DROP TABLE job_extra; "
/* What the v9 -> v10 step adds (job dependencies). */
#define V10_DROP "DROP TABLE job_dependencies; DROP INDEX jobs_user_name; "
/* What the v10 -> v11 step adds (request ids). */
#define V11_DROP "DROP TABLE job_requests; "
/* What the v11 -> v12 step adds (the runs of a requeued job). */
#define V12_DROP "DROP TABLE job_runs; "

/* A v3 database is a v6 one without the v3 -> v4, v4 -> v5, v5 -> v6 and v6 -> v7 steps' tables,
 * columns, indexes and trigger. */
static void migration_from_v3_keeps_data_and_gives_the_schema_of_a_new_database(void **state)
{
    fixture *f = *state;
    static char migrated[16384], fresh[16384];
    assert_int_equal(sqlite_cli(f, SCHEMA_SQL, fresh, sizeof fresh), 0);
    int64_t queued = insert_job(f, f->user_id, "old");
    int64_t running = insert_running_job(f);
    audit_append(f, "alice", "job.submitted", 0);
    store_free(f->s);
    f->s = NULL;
    assert_int_equal(
        sqlite_cli(f,
                   "DROP TRIGGER ledger_sums_add; DROP TABLE ledger_sums; "
                   "DROP TABLE idempotency; DROP INDEX jobs_in_slurm; "
                   "DROP INDEX users_unix_user; ALTER TABLE users DROP COLUMN "
                   "disabled; ALTER TABLE tokens DROP COLUMN expires_at; " V7_DROP V8_DROP V9_DROP
                       V10_DROP V11_DROP V12_DROP "PRAGMA user_version = 3;",
                   NULL, 0),
        0);
    assert_int_equal(open_store(f), 0);
    char out[16];
    assert_int_equal(sqlite_cli(f, "PRAGMA user_version;", out, sizeof out), 0);
    assert_string_equal(out, "12\n");
    assert_int_equal(sqlite_cli(f, SCHEMA_SQL, migrated, sizeof migrated), 0);
    assert_string_equal(migrated, fresh);
    assert_non_null(strstr(fresh, "table|idempotency|idempotency|"));
    assert_non_null(strstr(fresh, "index|jobs_in_slurm|jobs|"));

    store_job j;
    assert_int_equal(store_job_get(f->s, queued, &j), 0);
    assert_string_equal(j.name, "old");
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list_in_slurm(f->s, &js, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(js[0].id, running);
    free(js);
    assert_int_equal(audit_count(f), 1);
    store_idem e = idem_of(f->user_id, "k", queued, "{}", 0);
    assert_int_equal(store_idem_put(f->s, &e), 0);
}

/* --- v8: job dependencies --- */

static void dependency_rows_read_back_in_their_order(void **state)
{
    fixture *f = *state;
    int64_t a = insert_job(f, f->user_id, "a"), b = insert_job(f, f->user_id, "b");
    int64_t d = insert_job(f, f->user_id, "d");
    store_dependency in[2] = {{.prereq_id = b, .kind = "afternotok"},
                              {.prereq_id = a, .kind = "afterok"}};
    assert_int_equal(store_dependency_insert(f->s, d, in, 2), 0);
    store_dependency *out = NULL;
    size_t n = 0;
    assert_int_equal(store_dependency_list(f->s, d, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].kind, "afternotok");
    assert_int_equal(out[0].prereq_id, b);
    assert_int_equal(out[1].job_id, d);
    assert_int_equal(out[1].prereq_id, a);
    free(out);
    assert_int_equal(store_dependency_list(f->s, a, &out, &n), 0);
    assert_int_equal(n, 0);
}

static void dependency_of_an_unknown_kind_is_refused(void **state)
{
    fixture *f = *state;
    int64_t a = insert_job(f, f->user_id, "a");
    store_dependency in = {.prereq_id = a, .kind = "aftercorr"};
    assert_int_not_equal(store_dependency_insert(f->s, a, &in, 1), 0);
    store_dependency *out = NULL;
    size_t n = 0;
    assert_int_equal(store_dependency_list(f->s, a, &out, &n), 0);
    assert_int_equal(n, 0);
}

static void dependency_list_queued_skips_jobs_no_longer_queued(void **state)
{
    fixture *f = *state;
    int64_t a = insert_job(f, f->user_id, "a"), q = insert_job(f, f->user_id, "q");
    int64_t gone = insert_job(f, f->user_id, "gone");
    store_dependency in = {.prereq_id = a, .kind = "afterok"};
    assert_int_equal(store_dependency_insert(f->s, q, &in, 1), 0);
    assert_int_equal(store_dependency_insert(f->s, gone, &in, 1), 0);
    assert_int_equal(store_job_transition(f->s, gone, "queued", "cancelled", "x"), 0);
    store_dependency *out = NULL;
    size_t n = 0;
    assert_int_equal(store_dependency_list_queued(f->s, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].job_id, q);
    free(out);
}

static void job_list_active_named_gives_earlier_unended_jobs_of_that_name(void **state)
{
    fixture *f = *state;
    int64_t a = insert_job(f, f->user_id, "sweep"), ended = insert_job(f, f->user_id, "sweep");
    insert_job(f, f->user_id, "other");
    int64_t me = insert_job(f, f->user_id, "sweep");
    insert_job(f, f->user_id, "sweep"); /* later: not a predecessor */
    assert_int_equal(store_job_transition(f->s, ended, "queued", "cancelled", "x"), 0);
    int64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list_active_named(f->s, f->user_id, "sweep", me, &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], a);
    free(ids);
}

/* --- a full disk --- */

/* setup_user on a 1 MiB tmpfs of its own, mounted over the test's directory. Without root or
 * tmpfs (a container, say) it opens nothing: the test skips. */
static int setup_tiny_disk(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/test_store.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/antenna.db", f->dir);
    *state = f;
    if (geteuid() != 0 ||
        mount("tmpfs", f->dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,mode=0700") != 0)
        return 0;
    f->mounted = true;
    if (open_store(f) != 0 ||
        store_partner_insert(f->s, "ulb", "Universite libre de Bruxelles", 1, NULL) != 0 ||
        store_user_insert(f->s, "alice", "ulb", "alice", "user", "researcher", &f->user_id) != 0 ||
        store_checkpoint(f->s) != 0) /* the migrations' log, out of the way */
        return -1;                   /* teardown unmounts */
    return 0;
}

#define BIG_SCRIPT (48 * 1024)

static char *big_script(void)
{
    char *script = malloc(BIG_SCRIPT + 1);
    assert_non_null(script);
    memset(script, '#', BIG_SCRIPT);
    script[BIG_SCRIPT] = '\0';
    return script;
}

static void full_disk_write_is_enospc_and_a_batch_commit_leaves_nothing(void **state)
{
    fixture *f = *state;
    if (!f->mounted) {
        print_message("skipped: a full disk needs root and a tmpfs mount (mount -t tmpfs), "
                      "not available here\n");
        skip();
    }
    char *script = big_script();
    int64_t first = insert_job(f, f->user_id, "small");
    int ret = 0, i;
    for (i = 0; i < 100 && ret == 0; i++) {
        store_job j = {.user_id = f->user_id, .gpus = 1};
        ret = store_job_insert(f->s, &j, script);
    }
    assert_int_equal(ret, -ENOSPC);
    assert_true(i > 1); /* the disk held some before it was full */
    store_job got;
    assert_int_equal(store_job_get(f->s, first, &got), 0); /* reads go on */

    store_job *before = NULL;
    size_t n_before = 0;
    assert_int_equal(store_job_list(f->s, 0, NULL, 0, &before, &n_before), 0);
    free(before);
    assert_int_equal(store_batch_begin(f->s), 0);
    store_job j = {.user_id = f->user_id, .gpus = 1};
    assert_int_equal(store_job_insert(f->s, &j, script), 0); /* in the page cache so far */
    assert_int_equal(store_batch_commit(f->s), -ENOSPC);
    assert_false(store_in_batch(f->s));
    free(script);
    store_job *after = NULL;
    size_t n_after = 0;
    assert_int_equal(store_job_list(f->s, 0, NULL, 0, &after, &n_after), 0);
    free(after);
    assert_int_equal(n_after, n_before);
    /* the write lock was released: a new batch begins */
    assert_int_equal(store_batch_begin(f->s), 0);
    store_batch_rollback(f->s);
}

#define T(fn)  cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TU(fn) cmocka_unit_test_setup_teardown(fn, setup_user, teardown)
#define TE(fn) cmocka_unit_test_setup_teardown(fn, setup_empty, teardown)

/* --- refunds and corrections --- */

/* A job of alice dispatched in PERIOD and completed with a charge of 800 GPU-s and 60 CPU-s. */
static int64_t adjustable_job(fixture *f, int64_t slurm_id)
{
    int64_t id = insert_job(f, f->user_id, "charged");
    store_quota q = quota_of("ulb", PERIOD, STORE_UNLIMITED, STORE_UNLIMITED);
    assert_int_equal(store_quota_set(f->s, &q), 0);
    assert_int_equal(store_job_dispatch_begin(f->s, id, PERIOD, 1000, 100), 0);
    assert_int_equal(store_job_set_dispatched(f->s, id, slurm_id), 0);
    store_job u = {
        .id = id, .state = "completed", .charge_gpu_seconds = 800, .charge_cpu_seconds = 60};
    assert_int_equal(store_job_update(f->s, &u), 0);
    return id;
}

static int64_t used_of(fixture *f, const char *period)
{
    store_ledger_totals *ts = NULL;
    size_t n = 0;
    int64_t used = -1;
    assert_int_equal(store_ledger_totals_list(f->s, &ts, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(ts[i].period, period) == 0) used = ts[i].used_gpu_seconds;
    free(ts);
    return used;
}

static void job_adjust_refund_appends_a_negative_charge_and_sets_the_net_charge(void **state)
{
    fixture *f = *state;
    int64_t id = adjustable_job(f, 61);
    store_job j;
    assert_int_equal(store_job_adjust(f->s, id, "refund", -300, -60, "node failure", "stan", &j),
                     0);
    assert_int_equal(j.charge_gpu_seconds, 500);
    assert_int_equal(j.charge_cpu_seconds, 0);
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_int_equal(j.charge_gpu_seconds, 500);
    store_ledger_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_ledger_list(f->s, NULL, id, "charge", 0, &es, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(es[1].gpu_seconds, -300);
    assert_string_equal(es[1].period, PERIOD);
    free(es);
    assert_int_equal(used_of(f, PERIOD), 500); /* ledger_sums, kept by its trigger */
    store_adjustment *as = NULL;
    assert_int_equal(store_adjustment_list(f->s, "ulb", PERIOD, 0, &as, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(as[0].kind, "refund");
    assert_string_equal(as[0].actor, "stan");
    assert_int_equal(as[0].job_id, id);
    free(as);
}

static void job_adjust_below_zero_is_erange_and_writes_nothing(void **state)
{
    fixture *f = *state;
    int64_t id = adjustable_job(f, 62);
    assert_int_equal(store_job_adjust(f->s, id, "refund", -801, 0, "too much", "stan", NULL),
                     -ERANGE);
    assert_int_equal(ledger_rows(f, id, "charge"), 1);
    assert_int_equal(used_of(f, PERIOD), 800);
    store_adjustment *as = NULL;
    size_t n = 0;
    assert_int_equal(store_adjustment_list(f->s, NULL, NULL, id, &as, &n), 0);
    assert_int_equal(n, 0);
    free(as);
}

static void job_adjust_of_a_job_not_ended_is_eagain(void **state)
{
    fixture *f = *state;
    int64_t id = insert_running_job(f);
    assert_int_equal(store_job_adjust(f->s, id, "correction", 10, 0, "x", "stan", NULL), -EAGAIN);
    assert_int_equal(store_job_adjust(f->s, 999, "correction", 10, 0, "x", "stan", NULL), -ENOENT);
    assert_int_equal(store_job_adjust(f->s, id, "gift", 10, 0, "x", "stan", NULL), -EINVAL);
    assert_int_equal(store_job_adjust(f->s, id, "refund", -1, 0, "", "stan", NULL), -EINVAL);
}

static void ledger_adjustments_are_append_only(void **state)
{
    fixture *f = *state;
    int64_t id = adjustable_job(f, 63);
    assert_int_equal(store_job_adjust(f->s, id, "correction", 100, 0, "longer", "stan", NULL), 0);
    char out[256] = "";
    assert_int_not_equal(
        sqlite_cli(f, "UPDATE ledger_adjustments SET reason = 'edited';", out, sizeof out), 0);
    assert_int_not_equal(sqlite_cli(f, "DELETE FROM ledger_adjustments;", out, sizeof out), 0);
}

static void job_list_period_and_get_by_slurm_id_find_jobs_in_slurm(void **state)
{
    fixture *f = *state;
    int64_t a = adjustable_job(f, 64);
    insert_job(f, f->user_id, "queued"); /* never in Slurm: not listed */
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list_period(f->s, PERIOD, &js, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(js[0].id, a);
    free(js);
    store_job j;
    assert_int_equal(store_job_get_by_slurm_id(f->s, 64, &j), 0);
    assert_int_equal(j.id, a);
    assert_int_equal(store_job_get_by_slurm_id(f->s, 65, &j), -ENOENT);
    assert_int_equal(store_job_adjust(f->s, a, "refund", -300, 0, "x", "stan", NULL), 0);
    assert_int_equal(store_job_adjust(f->s, a, "correction", 100, 0, "y", "stan", NULL), 0);
    store_ledger_job_sum *sums = NULL;
    assert_int_equal(store_ledger_job_sums(f->s, PERIOD, &sums, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(sums[0].job_id, a);
    assert_int_equal(sums[0].charge_gpu_seconds, 800 - 300 + 100);
    assert_int_equal(sums[0].refund_gpu_seconds, 0); /* the correction came after the refund */
    free(sums);
    assert_int_equal(store_job_adjust(f->s, a, "refund", -50, 0, "z", "stan", NULL), 0);
    assert_int_equal(store_ledger_job_sums(f->s, PERIOD, &sums, &n), 0);
    assert_int_equal(sums[0].charge_gpu_seconds, 800 - 300 + 100 - 50);
    assert_int_equal(sums[0].refund_gpu_seconds, -50);
    free(sums);
}

/* ---- job arrays ---- */

/* Inserts a plain job, then an array of three tasks (indices 0, 4, 8, %max 2); returns the
 * array's id (its first task's). */
static int64_t insert_array(fixture *f, int64_t *plain)
{
    *plain = insert_job(f, f->user_id, "plain");
    int64_t ids[3];
    int tasks[3] = {0, 4, 8};
    for (int i = 0; i < 3; i++)
        ids[i] = insert_job(f, f->user_id, "sweep");
    store_job_array a = {.array_job_id = ids[0],
                         .task_count = 3,
                         .max_running = 2,
                         .task_min = 0,
                         .task_max = 8,
                         .task_step = 4};
    snprintf(a.spec, sizeof a.spec, "0-8:4%%2");
    assert_int_equal(store_job_array_insert(f->s, &a, ids, tasks, 3), 0);
    return ids[0];
}

static void array_tasks_carry_their_array_index_and_max(void **state)
{
    fixture *f = *state;
    int64_t plain, aid = insert_array(f, &plain);
    store_job j;
    assert_int_equal(store_job_get(f->s, aid + 1, &j), 0);
    assert_int_equal(j.array_job_id, aid);
    assert_int_equal(j.array_task_id, 4);
    assert_int_equal(j.array_max, 2);
    assert_int_equal(store_job_get(f->s, plain, &j), 0);
    assert_int_equal(j.array_job_id, 0);
    assert_int_equal(j.array_task_id, -1);
    assert_int_equal(j.array_max, 0);
    store_job_array a;
    assert_int_equal(store_job_array_get(f->s, aid, &a), 0);
    assert_string_equal(a.spec, "0-8:4%2");
    assert_int_equal(a.task_count, 3);
    assert_int_equal(store_job_array_get(f->s, plain, &a), -ENOENT);
}

static void job_list_shows_an_array_once_as_its_first_task(void **state)
{
    fixture *f = *state;
    int64_t plain, aid = insert_array(f, &plain);
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list(f->s, f->user_id, NULL, 0, &js, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(js[0].id, aid);
    assert_int_equal(js[1].id, plain);
    free(js);
    assert_int_equal(store_job_list(f->s, 0, NULL, 0, &js, &n), 0);
    assert_int_equal(n, 2);
    free(js);
}

static void array_tasks_and_task_get_read_by_array_id(void **state)
{
    fixture *f = *state;
    int64_t plain, aid = insert_array(f, &plain);
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(store_job_array_tasks(f->s, aid, &js, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(js[2].array_task_id, 8);
    free(js);
    store_job j;
    assert_int_equal(store_job_array_task_get(f->s, aid, 8, &j), 0);
    assert_int_equal(j.id, aid + 2);
    assert_int_equal(store_job_array_task_get(f->s, aid, 1, &j), -ENOENT);
    assert_int_equal(store_job_array_task_get(f->s, plain, 0, &j), -ENOENT);
}

static void array_counts_group_tasks_by_state(void **state)
{
    fixture *f = *state;
    int64_t plain, aid = insert_array(f, &plain);
    assert_int_equal(store_job_transition(f->s, aid, "queued", "dispatching", NULL), 0);
    store_state_count *k = NULL;
    size_t n = 0;
    assert_int_equal(store_job_array_counts(f->s, aid, &k, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(k[0].state, "dispatching");
    assert_int_equal(k[0].n, 1);
    assert_string_equal(k[1].state, "queued");
    assert_int_equal(k[1].n, 2);
    free(k);
}

static void array_insert_refuses_an_index_twice_and_writes_nothing(void **state)
{
    fixture *f = *state;
    int64_t ids[2] = {insert_job(f, f->user_id, "a"), insert_job(f, f->user_id, "b")};
    int tasks[2] = {3, 3};
    store_job_array a = {
        .array_job_id = ids[0], .task_count = 2, .task_min = 3, .task_max = 3, .task_step = 1};
    snprintf(a.spec, sizeof a.spec, "3,3");
    assert_int_equal(store_job_array_insert(f->s, &a, ids, tasks, 2), -EEXIST);
    assert_int_equal(store_job_array_get(f->s, ids[0], &a), -ENOENT);
    a.array_job_id = ids[1]; /* not the first task's id */
    assert_int_equal(store_job_array_insert(f->s, &a, ids, tasks, 1), -EINVAL);
}

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
        TU(token_insert_until_keeps_its_expiry),
        TU(token_active_list_has_hash_expiry_and_user_but_no_revoked_token),
        TU(user_update_disables_and_remaps),
        TU(user_of_another_partner_on_the_same_account_is_enotuniq),
        TU(job_insert_fills_id_state_time_and_owner),
        TU(job_insert_unknown_user_is_enoent),
        TU(job_get_unknown_is_enoent),
        TU(job_list_filters_by_user_newest_first_with_limit),
        TU(job_script_round_trips),
        TU(job_extra_gives_total_cpus_and_options),
        TU(job_without_extra_has_no_options_and_cpus_zero),
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
        T(partner_insert_keeps_share_weight_in_every_read),
        T(partner_insert_share_weight_below_1_is_einval),
        T(partner_update_changes_description_and_share_weight),
        T(partner_update_keeps_fields_not_given),
        T(partner_update_unknown_is_enoent_bad_weight_einval),
        TU(user_category_is_kept_in_every_read),
        TU(user_insert_overlong_category_is_einval),
        TU(quota_set_then_get_returns_it),
        TU(quota_set_again_replaces_it),
        TU(quota_list_sorts_by_partner_then_period_and_filters_by_period),
        TU(quota_of_unknown_partner_is_enoent),
        TU(quota_get_never_set_is_enoent),
        TU(quota_set_bad_values_is_einval),
        TU(dispatch_begin_within_budget_holds_and_moves_to_dispatching),
        TU(run_end_charges_the_run_keeps_the_hold_and_adds_up_the_runs),
        TU(run_end_refuses_a_queued_job_and_bad_runs),
        TU(dispatch_begin_over_budget_is_edquot_and_writes_nothing),
        TU(dispatch_begin_counts_used_and_held_against_budget),
        TU(dispatch_begin_unlimited_budget_always_fits),
        TU(dispatch_begin_without_quota_fits_only_zero_hold),
        TU(dispatch_begin_uses_the_quota_of_its_period_only),
        TU(dispatch_begin_checks_cpu_budget_separately),
        TU(dispatch_begin_not_queued_is_eagain_unknown_is_enoent),
        TU(transition_to_failed_releases_hold),
        TU(transition_to_queued_releases_hold_and_allows_a_new_dispatch),
        TU(transition_between_active_states_keeps_hold),
        TU(hold_is_released_once_whatever_the_call_order),
        TU(update_to_completed_releases_hold_and_writes_charge),
        TU(update_to_terminal_without_charge_writes_no_charge_row),
        TU(update_charge_of_job_without_period_uses_dispatch_month),
        TU(update_negative_charge_is_einval),
        TU(ledger_totals_match_rows),
        TU(ledger_list_filters_by_partner_job_kind_and_since),
        TU(ledger_rows_cannot_be_updated_or_deleted),
        TU(job_list_filters_by_partner),
        TU(job_reason_set_changes_only_queued_jobs),
        TU(job_reason_set_unknown_is_enoent),
        TU(job_list_active_returns_period_and_holds),
        TU(concurrent_dispatch_from_two_handles_never_exceeds_budget),
        TU(concurrent_dispatch_from_two_processes_never_exceeds_budget),
        TE(migration_from_v1_keeps_data),
        TE(migration_from_v1_fills_new_fields_with_defaults),
        TE(migration_from_v1_keeps_job_id_counter),
        TE(migration_from_v2_keeps_data),
        TE(migration_from_v2_gives_the_schema_of_a_new_database),
        TU(usage_by_partner_sums_only_charge_rows),
        TU(usage_by_user_sums_per_user),
        TU(usage_by_category_sums_per_user_category),
        TU(usage_by_gpu_type_counts_jobs_without_type_as_none),
        TU(usage_total_is_one_row_with_empty_key),
        TU(usage_elapsed_is_gpus_times_run_time_clamped_at_zero),
        TU(usage_filters_by_partner_and_user),
        TU(usage_by_day_and_month_use_the_utc_date_of_the_charge),
        TU(usage_from_is_inclusive_and_to_exclusive),
        TU(usage_unknown_by_is_einval),
        TU(usage_random_charges_sum_the_same_in_every_dimension_and_in_the_ledger),
        TU(statement_totals_equal_ledger_sums_on_random_data),
        TU(ledger_running_sums_equal_the_ledger_on_random_data),
        TU(job_list_charged_lists_charged_jobs_of_partner_and_period_by_end_time),
        T(audit_append_chains_entries_and_hashes_their_final_fields),
        T(audit_append_stamps_at_only_when_zero_and_stores_no_details_as_empty_object),
        T(audit_list_filters_by_after_since_actor_action_and_limit),
        T(audit_list_action_ending_in_dot_matches_a_prefix),
        T(audit_concurrent_appends_make_one_chain_without_gaps),
        T(audit_append_with_failing_hash_writes_nothing),
        T(audit_append_without_actor_or_action_is_einval),
        T(audit_rows_edited_outside_are_listed_as_stored),
        TU(batch_commit_makes_every_change_durable),
        TU(batch_failing_call_undoes_only_its_own_writes),
        TU(batch_rollback_leaves_nothing),
        TU(change_end_with_error_undoes_that_change_only),
        TU(changes_nest_and_an_inner_failure_keeps_the_outer_writes),
        TU(change_outside_a_batch_is_its_own_transaction),
        TU(batch_reads_on_its_thread_see_its_uncommitted_writes),
        TU(batch_misuse_is_einval),
        TU(reader_thread_is_not_blocked_by_a_batch_and_sees_committed_rows_only),
        TU(writer_thread_waits_for_the_batch_then_writes_outside_it),
        TU(checkpoint_truncates_the_wal),
        TU(idem_put_then_get_returns_it),
        TU(idem_put_same_key_twice_is_eexist_and_keeps_the_first),
        TU(idem_bad_key_or_hash_is_einval),
        TU(idem_prune_removes_at_most_max_oldest_first_before_a_time),
        TU(idem_put_in_a_batch_is_seen_by_a_get_in_it_and_kept_by_its_commit),
        TU(job_list_in_slurm_excludes_queued_and_terminal_jobs_oldest_first),
        TU(job_list_in_slurm_of_no_job_is_empty),
        TU(dependency_rows_read_back_in_their_order),
        TU(dependency_of_an_unknown_kind_is_refused),
        TU(dependency_list_queued_skips_jobs_no_longer_queued),
        TU(job_list_active_named_gives_earlier_unended_jobs_of_that_name),
        TU(migration_from_v3_keeps_data_and_gives_the_schema_of_a_new_database),
        cmocka_unit_test_setup_teardown(full_disk_write_is_enospc_and_a_batch_commit_leaves_nothing,
                                        setup_tiny_disk, teardown),
        cmocka_unit_test(audit_entries_free_accepts_null),
        cmocka_unit_test(store_free_accepts_null),
        cmocka_unit_test_setup_teardown(
            job_adjust_refund_appends_a_negative_charge_and_sets_the_net_charge, setup_user,
            teardown),
        cmocka_unit_test_setup_teardown(job_adjust_below_zero_is_erange_and_writes_nothing,
                                        setup_user, teardown),
        cmocka_unit_test_setup_teardown(job_adjust_of_a_job_not_ended_is_eagain, setup_user,
                                        teardown),
        cmocka_unit_test_setup_teardown(ledger_adjustments_are_append_only, setup_user, teardown),
        cmocka_unit_test_setup_teardown(array_tasks_carry_their_array_index_and_max, setup_user,
                                        teardown),
        cmocka_unit_test_setup_teardown(job_list_shows_an_array_once_as_its_first_task, setup_user,
                                        teardown),
        cmocka_unit_test_setup_teardown(array_tasks_and_task_get_read_by_array_id, setup_user,
                                        teardown),
        cmocka_unit_test_setup_teardown(array_counts_group_tasks_by_state, setup_user, teardown),
        cmocka_unit_test_setup_teardown(array_insert_refuses_an_index_twice_and_writes_nothing,
                                        setup_user, teardown),
        cmocka_unit_test_setup_teardown(job_request_id_is_kept_and_read_back, setup_user, teardown),
        cmocka_unit_test_setup_teardown(job_with_a_malformed_request_id_is_refused, setup_user,
                                        teardown),
        cmocka_unit_test_setup_teardown(job_list_period_and_get_by_slurm_id_find_jobs_in_slurm,
                                        setup_user, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
