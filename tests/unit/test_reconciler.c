/* test_reconciler.c - one reconciliation run over a real store and registry, with a fake source
 * of slurmdbd records: what it reads, what it answers, what it audits. */
#include <errno.h>
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
#include <jansson.h>

#include "audit.h"
#include "log.h"
#include "policy.h"
#include "reconciler.h"
#include "registry.h"
#include "store.h"

static const registry_actor WHO = {.actor = "audrey", .partner = "ulb"};

struct fake {
    reconcile_record recs[8];
    size_t n;
    int rc;
    size_t calls, ids_asked;
};

static int fake_records(void *ctx, const int64_t *ids, size_t n_ids, int64_t from, int64_t to,
                        reconcile_record **out, size_t *n, char *err, size_t errlen)
{
    struct fake *f = ctx;
    (void)ids, (void)from, (void)to;
    f->calls++;
    f->ids_asked = n_ids;
    if (f->rc < 0) {
        snprintf(err, errlen, "no slurmdbd here");
        return f->rc;
    }
    *out = calloc(f->n + 1, sizeof **out);
    memcpy(*out, f->recs, f->n * sizeof **out);
    *n = f->n;
    return 0;
}

struct world {
    char dir[64], db[128], key[128], head[128];
    store *st;
    audit *au;
    registry *reg;
    uv_loop_t loop;
    reconciler *rec;
    struct fake fake;
    int64_t alice;
    char period[8];
    int64_t t0; /* the jobs' start */
};

static int setup(void **state)
{
    struct world *w = calloc(1, sizeof *w);
    char err[256];
    snprintf(w->dir, sizeof w->dir, "/tmp/test_reconciler.XXXXXX");
    if (mkdtemp(w->dir) == NULL) return -1;
    snprintf(w->db, sizeof w->db, "%s/a.db", w->dir);
    snprintf(w->key, sizeof w->key, "%s/audit.key", w->dir);
    snprintf(w->head, sizeof w->head, "%s/audit.head", w->dir);
    *state = w;
    int64_t now = time(NULL);
    policy_period_of(now, w->period);
    int64_t from = 0, to = 0;
    reconciler_month_bounds(w->period, &from, &to);
    w->t0 = from; /* the jobs ran at the month's start, whatever today is */
    store_quota q = {.gpu_seconds = STORE_UNLIMITED,
                     .cpu_seconds = STORE_UNLIMITED,
                     .max_gpus = STORE_UNLIMITED,
                     .max_running_jobs = STORE_UNLIMITED,
                     .max_queued_jobs = STORE_UNLIMITED,
                     .max_walltime_minutes = STORE_UNLIMITED,
                     .user_max_gpus = STORE_UNLIMITED};
    snprintf(q.partner, sizeof q.partner, "ulb");
    snprintf(q.period, sizeof q.period, "%s", w->period);
    if (store_new(w->db, &w->st, err, sizeof err) < 0 ||
        store_partner_insert(w->st, "ulb", "", 1, NULL) < 0 ||
        store_user_insert(w->st, "alice", "ulb", "nobody", "user", "sme", &w->alice) < 0 ||
        store_quota_set(w->st, &q) < 0 ||
        audit_new(w->st, w->key, w->head, &w->au, err, sizeof err) < 0)
        return -1;
    policy_config pc;
    policy_config_defaults(&pc);
    registry_options ro = {.policy = &pc, .audit = w->au};
    if (registry_new(w->st, &ro, &w->reg, err, sizeof err) < 0) return -1;
    if (uv_loop_init(&w->loop) < 0) return -1;
    reconciler_source src = {.records = fake_records, .ctx = &w->fake};
    reconciler_options opt = {.partition = "gpu"};
    return reconciler_new(&w->loop, w->reg, &src, &opt, &w->rec);
}

static int teardown(void **state)
{
    struct world *w = *state;
    if (w == NULL) return 0;
    reconciler_close(w->rec);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    registry_free(w->reg);
    audit_free(w->au);
    store_free(w->st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", w->dir);
    if (system(cmd) != 0) return -1;
    free(w);
    return 0;
}

static char *render(const store_job *j, const registry_live *live, void *arg)
{
    (void)j, (void)live, (void)arg;
    return strdup("{}");
}

/* A job of alice on `gpus` GPUs that Slurm ran as `slurm_id` for `el` seconds from w->t0. */
static int64_t ran_job(struct world *w, int64_t slurm_id, int gpus, int64_t el)
{
    registry_submit s;
    memset(&s, 0, sizeof s);
    s.job.user_id = w->alice;
    snprintf(s.job.user, sizeof s.job.user, "alice");
    s.job.gpus = gpus;
    s.job.cpus_per_task = 1;
    s.job.time_minutes = 60;
    s.job.submitted_at = time(NULL);
    s.script = "#!/bin/bash\ntrue\n";
    s.render = render;
    assert_int_equal(registry_job_submit(w->reg, &WHO, &s), 0);
    free(s.body);
    assert_true(s.verdict.admitted);
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(registry_dispatch_begin(w->reg, time(NULL), 1, &js, &n), 0);
    assert_int_equal(n, 1);
    free(js);
    registry_outcome o = {.id = s.job.id, .kind = REGISTRY_SUBMITTED, .slurm_job_id = slurm_id};
    assert_int_equal(registry_dispatch_outcomes(w->reg, &o, 1), 0);
    registry_slurm_change c;
    memset(&c, 0, sizeof c);
    c.id = s.job.id;
    c.slurm_job_id = slurm_id;
    snprintf(c.state, sizeof c.state, "completed");
    c.start_time = w->t0;
    c.end_time = w->t0 + el;
    c.has_exit_code = true;
    assert_int_equal(registry_slurm_changes(w->reg, &c, 1), 0);
    return s.job.id;
}

static void record(struct world *w, int64_t slurm_id, const char *account, int gpus, int64_t el)
{
    reconcile_record *r = &w->fake.recs[w->fake.n++];
    memset(r, 0, sizeof *r);
    r->job_id = slurm_id;
    snprintf(r->account, sizeof r->account, "%s", account);
    snprintf(r->partition, sizeof r->partition, "gpu");
    r->start_time = w->t0;
    r->end_time = w->t0 + el;
    r->elapsed_s = el;
    r->gpus = gpus;
}

static size_t runs_audited(struct world *w, json_t **last_details)
{
    store_audit_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(w->st, 0, 0, NULL, "reconcile.ran", 0, &es, &n), 0);
    if (last_details && n > 0) {
        json_error_t jerr;
        *last_details = json_loads(es[n - 1].details, 0, &jerr);
    }
    store_audit_entries_free(es, n);
    return n;
}

static json_t *run_ok(struct world *w)
{
    char *text = NULL, err[256] = "";
    int rc = reconciler_run(w->rec, &WHO, w->period, time(NULL), &text, err, sizeof err);
    if (rc != 0) fail_msg("reconciler_run: %d %s", rc, err);
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    free(text);
    assert_non_null(o);
    return o;
}

static int64_t summary(json_t *o, const char *field)
{
    return json_integer_value(json_object_get(json_object_get(o, "summary"), field));
}

static int64_t by_kind(json_t *o, const char *kind)
{
    return json_integer_value(
        json_object_get(json_object_get(json_object_get(o, "summary"), "by_kind"), kind));
}

static void clean_run_reports_no_difference_and_audits_reconcile_ran(void **state)
{
    struct world *w = *state;
    ran_job(w, 101, 1, 600);
    ran_job(w, 102, 2, 60);
    record(w, 101, "ulb", 1, 600);
    record(w, 102, "ulb", 2, 60);
    json_t *o = run_ok(w);
    assert_int_equal(summary(o, "jobs_compared"), 2);
    assert_int_equal(summary(o, "differences"), 0);
    assert_int_equal(json_array_size(json_object_get(o, "differences")), 0);
    assert_int_equal(w->fake.ids_asked, 2);
    json_decref(o);
    json_t *d = NULL;
    assert_int_equal(runs_audited(w, &d), 1);
    assert_string_equal(json_string_value(json_object_get(d, "month")), w->period);
    json_t *ulb = json_object_get(json_object_get(d, "partners"), "ulb");
    assert_int_equal(json_integer_value(json_object_get(ulb, "jobs")), 2);
    assert_int_equal(json_integer_value(json_object_get(ulb, "differences")), 0);
    json_decref(d);
}

static void escaped_record_missing_record_and_other_elapsed_are_each_named(void **state)
{
    struct world *w = *state;
    int64_t a = ran_job(w, 201, 1, 600);
    ran_job(w, 202, 1, 60); /* no record */
    record(w, 201, "ulb", 1, 500);
    record(w, 999, "ulb", 4, 30); /* behind Antenna's back */
    json_t *o = run_ok(w);
    assert_int_equal(summary(o, "differences"), 4);
    assert_int_equal(by_kind(o, "no_record"), 1);
    assert_int_equal(by_kind(o, "escaped"), 1);
    assert_int_equal(by_kind(o, "elapsed"), 1);
    assert_int_equal(by_kind(o, "charge"), 1); /* charged 600 s, the record says 500 */
    json_t *diffs = json_object_get(o, "differences");
    json_t *esc = json_array_get(diffs, 1);
    assert_string_equal(json_string_value(json_object_get(esc, "kind")), "escaped");
    assert_int_equal(json_integer_value(json_object_get(esc, "slurm_job_id")), 999);
    assert_true(json_is_null(json_object_get(esc, "job")));
    json_t *el = json_array_get(diffs, 2);
    assert_int_equal(json_integer_value(json_object_get(el, "job")), a);
    assert_int_equal(json_integer_value(json_object_get(el, "antenna")), 600);
    assert_int_equal(json_integer_value(json_object_get(el, "slurm")), 500);
    json_t *ch = json_array_get(diffs, 3);
    assert_string_equal(json_string_value(json_object_get(ch, "kind")), "charge");
    assert_int_equal(json_integer_value(json_object_get(ch, "antenna")), 600);
    assert_int_equal(json_integer_value(json_object_get(ch, "slurm")), 500);
    json_decref(o);
    json_t *d = NULL;
    assert_int_equal(runs_audited(w, &d), 1);
    assert_int_equal(json_integer_value(json_object_get(d, "differences")), 4);
    json_decref(d);
}

static void
a_correction_to_what_ran_clears_a_charge_difference_a_refund_does_not_make_one(void **state)
{
    struct world *w = *state;
    int64_t a = ran_job(w, 401, 1, 600), b = ran_job(w, 402, 1, 600);
    record(w, 401, "ulb", 1, 300); /* the record: it ran 300 s; Antenna charged 600 */
    record(w, 402, "ulb", 1, 600);
    json_t *o = run_ok(w);
    assert_int_equal(by_kind(o, "charge"), 1);
    json_decref(o);
    assert_int_equal(registry_job_correct(w->reg, &WHO, a, 300, -1, "ran 300 s", NULL), 0);
    assert_int_equal(registry_job_refund(w->reg, &WHO, b, 100, -1, "goodwill", NULL), 0);
    o = run_ok(w);
    assert_int_equal(by_kind(o, "charge"), 0);
    assert_int_equal(by_kind(o, "elapsed"), 1); /* Antenna's times are what Slurm said at the end */
    json_decref(o);
}

static void no_accounting_is_enotsup_and_audits_nothing(void **state)
{
    struct world *w = *state;
    ran_job(w, 301, 1, 60);
    w->fake.rc = -ENOTSUP;
    char *text = NULL, err[256] = "";
    assert_int_equal(reconciler_run(w->rec, &WHO, w->period, time(NULL), &text, err, sizeof err),
                     -ENOTSUP);
    assert_null(text);
    assert_int_equal(runs_audited(w, NULL), 0);
}

static void a_bad_or_future_month_is_einval_and_reads_nothing(void **state)
{
    struct world *w = *state;
    char *text = NULL, err[256] = "";
    assert_int_equal(reconciler_run(w->rec, &WHO, "2026-13", time(NULL), &text, err, sizeof err),
                     -EINVAL);
    assert_int_equal(reconciler_run(w->rec, &WHO, "2999-01", time(NULL), &text, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "has not begun"));
    assert_int_equal(w->fake.calls, 0);
    assert_int_equal(runs_audited(w, NULL), 0);
}

static void month_bounds_are_the_utc_month(void **state)
{
    (void)state;
    int64_t from = 0, to = 0;
    assert_int_equal(reconciler_month_bounds("2026-12", &from, &to), 0);
    assert_int_equal(from, 1796083200); /* 2026-12-01T00:00:00Z */
    assert_int_equal(to, 1798761600);   /* 2027-01-01T00:00:00Z */
    assert_int_equal(reconciler_month_bounds("2026-1", &from, &to), -EINVAL);
}

static void stop_loop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void daily_run_audits_yesterdays_month_once_as_antennad(void **state)
{
    struct world *w = *state;
    reconciler_close(w->rec); /* one with a short check interval instead */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    reconciler_source src = {.records = fake_records, .ctx = &w->fake};
    reconciler_options opt = {.partition = "gpu", .check_interval_ms = 20};
    assert_int_equal(reconciler_new(&w->loop, w->reg, &src, &opt, &w->rec), 0);
    assert_int_equal(reconciler_start(w->rec), 0);
    uv_timer_t stop;
    uv_timer_init(&w->loop, &stop);
    uv_timer_start(&stop, stop_loop, 600, 0);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    reconciler_close(w->rec);
    w->rec = NULL;
    uv_close((uv_handle_t *)&stop, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT); /* both closed, a run in flight finished */
    store_audit_entry *es = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(w->st, 0, 0, "antennad", "reconcile.ran", 0, &es, &n), 0);
    assert_int_equal(n, 1); /* many checks, one run a day */
    char month[8];
    int64_t today = time(NULL) / 86400;
    policy_period_of(today * 86400 - 1, month);
    assert_non_null(strstr(es[0].details, month));
    store_audit_entries_free(es, n);
    assert_int_equal(w->fake.calls, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    log_level_set("error");
    alarm(60);
    const struct CMUnitTest tests[] = {
        T(clean_run_reports_no_difference_and_audits_reconcile_ran),
        T(escaped_record_missing_record_and_other_elapsed_are_each_named),
        T(a_correction_to_what_ran_clears_a_charge_difference_a_refund_does_not_make_one),
        T(no_accounting_is_enotsup_and_audits_nothing),
        T(a_bad_or_future_month_is_einval_and_reads_nothing),
        T(daily_run_audits_yesterdays_month_once_as_antennad),
        cmocka_unit_test(month_bounds_are_the_utc_month),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
