/* reconciler.c - one reconciliation of the ledger with slurmdbd's records (on demand and daily).
 * Never runs a read on the loop thread, never writes the store but through registry_audit, never
 * calls libslurm but through the broker's adapter under broker_slurm_exclusive. */
#include "reconciler.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "log.h"
#include "policy.h"
#include "slurm_adapter.h"

#define NO_ACCOUNTING_MSG                                                                          \
    "the cluster keeps no accounting of record (no slurmdbd behind this Slurm): reconciliation "   \
    "needs slurmdbd (see README, Accounting)"

struct reconciler {
    uv_loop_t *loop;
    registry *reg;
    reconciler_source src;
    reconciler_options opt;
    char partition[64];
    uv_timer_t timer;
    uv_work_t work;
    bool busy, closing, started;
    int64_t last_day; /* the UTC day (unix days) of the last daily run done; worker side */
    bool warned_no_accounting;
};

/* --- the month ---------------------------------------------------------------------------------
 */

int reconciler_month_bounds(const char *month, int64_t *from, int64_t *to)
{
    if (month == NULL || !policy_period_valid(month)) return -EINVAL;
    int y = atoi(month), m = atoi(month + 5);
    struct tm a = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = 1};
    struct tm b = {
        .tm_year = (m == 12 ? y + 1 : y) - 1900, .tm_mon = m == 12 ? 0 : m, .tm_mday = 1};
    *from = (int64_t)timegm(&a);
    *to = (int64_t)timegm(&b);
    return 0;
}

/* --- the real source: slurmdbd through the broker's adapter ----------------------------------- */

struct acct_read {
    const int64_t *ids;
    size_t n_ids;
    int64_t from, to;
    reconcile_record **out;
    size_t *n;
    char *err;
    size_t errlen;
};

static void record_of(const slurm_adapter_record *s, reconcile_record *r)
{
    memset(r, 0, sizeof *r);
    r->job_id = s->job_id;
    snprintf(r->account, sizeof r->account, "%s", s->account);
    snprintf(r->partition, sizeof r->partition, "%s", s->partition);
    snprintf(r->user, sizeof r->user, "%s", s->user);
    r->start_time = s->start_time;
    r->end_time = s->end_time;
    r->elapsed_s = s->elapsed_s;
    r->gpus = s->gpus;
    r->requeued = s->requeued;
}

static int acct_read_locked(slurm_adapter *sa, void *arg)
{
    struct acct_read *q = arg;
    slurm_adapter_record *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, k = 0;
    uint32_t *ids = calloc(q->n_ids ? q->n_ids : 1, sizeof *ids);
    if (ids == NULL) return -ENOMEM;
    for (size_t i = 0; i < q->n_ids; i++)
        if (q->ids[i] > 0 && q->ids[i] <= UINT32_MAX) ids[k++] = (uint32_t)q->ids[i];
    int rc = slurm_adapter_records_between(sa, q->from, q->to, &b, &nb, q->err, q->errlen);
    if (rc == -ENOTSUP) snprintf(q->err, q->errlen, "%s", NO_ACCOUNTING_MSG);
    if (rc == 0 && k > 0) rc = slurm_adapter_records_by_id(sa, ids, k, &a, &na, q->err, q->errlen);
    free(ids);
    if (rc < 0) goto out;
    *q->out = calloc(na + nb + 1, sizeof **q->out);
    if (*q->out == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < na; i++)
        record_of(&a[i], &(*q->out)[i]);
    for (size_t i = 0; i < nb; i++)
        record_of(&b[i], &(*q->out)[na + i]);
    *q->n = na + nb;
out:
    slurm_adapter_records_free(a);
    slurm_adapter_records_free(b);
    return rc;
}

static int acct_records(void *ctx, const int64_t *ids, size_t n_ids, int64_t from, int64_t to,
                        reconcile_record **out, size_t *n, char *err, size_t errlen)
{
    struct acct_read q = {ids, n_ids, from, to, out, n, err, errlen};
    *out = NULL;
    *n = 0;
    int rc = broker_slurm_exclusive(ctx, acct_read_locked, &q);
    if (rc == -ENODEV) snprintf(err, errlen, "antennad runs without Slurm: %s", NO_ACCOUNTING_MSG);
    return rc == -ENODEV ? -ENOTSUP : rc;
}

reconciler_source reconciler_source_slurm(broker *br)
{
    reconciler_source s = {.records = acct_records, .ctx = br};
    return s;
}

/* --- one run -----------------------------------------------------------------------------------
 */

static json_t *time_json(int64_t t)
{
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static int cmp_sum(const void *a, const void *b)
{
    int64_t x = ((const store_ledger_job_sum *)a)->job_id,
            y = ((const store_ledger_job_sum *)b)->job_id;
    return (x > y) - (x < y);
}

/* Antenna's side of job `s`; `sums` (by job id) are the ledger sums per job of the period it is
 * charged to (NULL: a job of another period, whose charge is not checked). The runs of a job Slurm
 * requeued are read for their elapsed time (a query for those jobs only). Returns 0 or a
 * negative errno. */
static int job_of(registry *reg, const store_job *s, const store_ledger_job_sum *sums, size_t nsums,
                  reconcile_job *j)
{
    memset(j, 0, sizeof *j);
    j->id = s->id;
    j->slurm_job_id = s->slurm_job_id;
    snprintf(j->partner, sizeof j->partner, "%s", s->partner);
    j->gpus = s->gpus;
    j->started_at = s->started_at;
    j->ended_at = s->ended_at;
    j->ended = store_state_terminal(s->state);
    j->held = s->hold_gpu_seconds > 0 || s->hold_cpu_seconds > 0;
    j->charge_gpu_seconds = s->charge_gpu_seconds;
    j->charge_cpu_seconds = s->charge_cpu_seconds;
    store_ledger_job_sum key = {.job_id = s->id};
    const store_ledger_job_sum *e = bsearch(&key, sums, nsums, sizeof *sums, cmp_sum);
    j->has_ledger = sums != NULL; /* a job of the period without a charge row was charged 0 */
    j->ledger_gpu_seconds = e ? e->charge_gpu_seconds - e->refund_gpu_seconds : 0;
    j->cpus = registry_job_cpus(s);
    j->time_minutes = s->time_minutes;
    int w = registry_gpu_weight(reg, s->gpu_type);
    j->weight_milli = w < 0 ? 1000 : w;
    if (s->restarts <= 0) return 0;
    store_run *runs = NULL;
    size_t n = 0;
    int rc = store_job_runs_list(registry_store(reg), s->id, &runs, &n);
    for (size_t k = 0; k < n; k++)
        j->prior_run_seconds += runs[k].elapsed_seconds;
    free(runs);
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Adds n to key's "field" in object o (created as {} when missing). */
static void count_add(json_t *o, const char *key, const char *field, json_int_t n)
{
    json_t *e = json_object_get(o, key);
    if (e == NULL) {
        e = json_pack("{s:I,s:I}", "jobs", (json_int_t)0, "differences", (json_int_t)0);
        json_object_set_new(o, key, e);
    }
    json_object_set_new(e, field, json_integer(json_integer_value(json_object_get(e, field)) + n));
}

int reconciler_run(reconciler *rc, const registry_actor *who, const char *month, int64_t now,
                   char **json, char *err, size_t errlen)
{
    int64_t from, to;
    store *st = registry_store(rc->reg);
    store_job *sj = NULL;
    store_partner *ps = NULL;
    store_ledger_job_sum *sums = NULL;
    size_t nsums = 0;
    reconcile_record *recs = NULL;
    reconcile_job *jobs = NULL;
    int64_t *ids = NULL;
    const char **accts = NULL;
    size_t nsj = 0, nps = 0, nrec = 0, nj = 0;
    reconcile_result res;
    memset(&res, 0, sizeof res);
    json_t *details = NULL, *answer = NULL;
    char *text = NULL;
    int r;

    *json = NULL;
    if (reconciler_month_bounds(month, &from, &to) < 0) {
        snprintf(err, errlen, "month must be YYYY-MM, not \"%.16s\"", month ? month : "");
        return -EINVAL;
    }
    if (from >= now) {
        snprintf(err, errlen, "%s has not begun: nothing to reconcile yet", month);
        return -EINVAL;
    }
    if (to > now) to = now;
    if ((r = store_job_list_period(st, month, &sj, &nsj)) < 0) {
        snprintf(err, errlen, "cannot read the month's jobs (%s)", strerror(-r));
        goto fail_jobs;
    }
    if ((r = store_ledger_job_sums(st, month, &sums, &nsums)) < 0) {
        snprintf(err, errlen, "cannot read the month's ledger (%s)", strerror(-r));
        goto fail_jobs;
    }
    if (sums == NULL && (sums = calloc(1, sizeof *sums)) == NULL) goto fail_nomem;
    ids = calloc(nsj + 1, sizeof *ids);
    if (ids == NULL) goto fail_nomem;
    for (size_t i = 0; i < nsj; i++)
        ids[i] = sj[i].slurm_job_id;
    if ((r = rc->src.records(rc->src.ctx, ids, nsj, from, to, &recs, &nrec, err, errlen)) < 0)
        goto fail_records;
    qsort(ids, nsj, sizeof *ids, cmp_i64);
    jobs = calloc(nsj + nrec + 1, sizeof *jobs);
    if (jobs == NULL) goto fail_nomem;
    for (size_t i = 0; i < nsj && r >= 0; i++)
        r = job_of(rc->reg, &sj[i], sums, nsums, &jobs[nj++]);
    /* a record of an Antenna job of another month (it ran across the month's start) */
    for (size_t i = 0; i < nrec; i++) {
        store_job x;
        if (bsearch(&recs[i].job_id, ids, nsj, sizeof *ids, cmp_i64) != NULL) continue;
        if (r >= 0 && store_job_get_by_slurm_id(st, recs[i].job_id, &x) == 0)
            r = job_of(rc->reg, &x, NULL, 0, &jobs[nj++]); /* its ledger is another month's */
    }
    if (r < 0) {
        snprintf(err, errlen, "cannot read the runs of a requeued job (%s)", strerror(-r));
        goto fail_records;
    }
    if ((r = store_partner_list(st, &ps, &nps)) < 0) {
        snprintf(err, errlen, "cannot read the partners (%s)", strerror(-r));
        goto fail_records;
    }
    accts = calloc(nps + 1, sizeof *accts);
    if (accts == NULL) goto fail_nomem;
    for (size_t i = 0; i < nps; i++)
        accts[i] = ps[i].name;
    const char *parts[1] = {rc->partition};
    reconcile_scope scope = {parts, rc->partition[0] ? 1 : 0, accts, nps};
    if ((r = reconcile_compare(jobs, nj, recs, nrec, &scope, &res)) < 0) goto fail_nomem;

    /* the audit entry: counts per kind and per partner */
    json_t *by_kind = json_object(), *partners = json_object();
    for (int k = 0; k < RECONCILE_KINDS; k++)
        json_object_set_new(by_kind, reconcile_kind_name(k),
                            json_integer((json_int_t)res.by_kind[k]));
    for (size_t i = 0; i < nj; i++)
        count_add(partners, jobs[i].partner, "jobs", 1);
    for (size_t i = 0; i < res.n_diffs; i++)
        count_add(partners, res.diffs[i].partner[0] ? res.diffs[i].partner : "-", "differences", 1);
    details = json_pack("{s:s,s:o,s:o,s:I,s:I,s:I,s:O,s:o}", "month", month, "from",
                        time_json(from), "to", time_json(to), "jobs", (json_int_t)res.jobs_compared,
                        "records", (json_int_t)res.records_seen, "differences",
                        (json_int_t)res.n_diffs, "by_kind", by_kind, "partners", partners);
    if (details == NULL || (text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
        json_decref(by_kind);
        goto fail_nomem;
    }
    if ((r = registry_audit(rc->reg, who, "reconcile.ran", text)) < 0) {
        snprintf(err, errlen, "cannot audit the run (%s)", strerror(-r));
        json_decref(by_kind);
        goto fail_records;
    }

    /* the answer */
    size_t max = rc->opt.max_listed ? rc->opt.max_listed : 10000;
    json_t *arr = json_array();
    for (size_t i = 0; i < res.n_diffs && i < max; i++) {
        const reconcile_diff *d = &res.diffs[i];
        json_array_append_new(
            arr, json_pack("{s:s,s:o,s:I,s:s,s:I,s:I}", "kind", reconcile_kind_name(d->kind), "job",
                           d->job_id ? json_integer(d->job_id) : json_null(), "slurm_job_id",
                           (json_int_t)d->slurm_job_id, "partner", d->partner, "antenna",
                           (json_int_t)d->antenna, "slurm", (json_int_t)d->slurm));
    }
    answer = json_pack("{s:s,s:o,s:o,s:o,s:{s:I,s:I,s:I,s:o},s:o,s:b}", "month", month, "from",
                       time_json(from), "to", time_json(to), "ran_at", time_json(now), "summary",
                       "jobs_compared", (json_int_t)res.jobs_compared, "records",
                       (json_int_t)res.records_seen, "differences", (json_int_t)res.n_diffs,
                       "by_kind", by_kind, "differences", arr, "truncated", res.n_diffs > max);
    if (answer == NULL || (*json = json_dumps(answer, JSON_COMPACT)) == NULL) goto fail_nomem;
    r = 0;
    goto done;

fail_nomem:
    r = -ENOMEM;
    snprintf(err, errlen, "out of memory");
fail_records:
fail_jobs:
done:
    json_decref(details);
    json_decref(answer);
    free(text);
    reconcile_result_clear(&res);
    free(accts);
    free(ps);
    free(sums);
    free(jobs);
    free(recs);
    free(ids);
    free(sj);
    return r;
}

/* --- the daily run -----------------------------------------------------------------------------
 */

#define DAY_S 86400

static void daily_work(uv_work_t *w)
{
    reconciler *rc = w->data;
    int64_t now = time(NULL), today = now / DAY_S;
    if (today == rc->last_day) return;
    /* already run today (before a restart)? */
    store_audit_entry *es = NULL;
    size_t n = 0;
    if (store_audit_list(registry_store(rc->reg), 0, today * DAY_S, "antennad", "reconcile.ran", 1,
                         &es, &n) == 0 &&
        n > 0) {
        store_audit_entries_free(es, n);
        rc->last_day = today;
        return;
    }
    store_audit_entries_free(es, n);
    char month[8], err[512] = "";
    policy_period_of(today * DAY_S - 1, month);
    registry_actor who = {.actor = "antennad", .partner = ""};
    char *json = NULL;
    int r = reconciler_run(rc, &who, month, today * DAY_S, &json, err, sizeof err);
    free(json);
    if (r == -EAGAIN) {
        LOG(LOG_WARN, "reconcile: daily run for %s: %s; trying again later", month, err);
        return;
    }
    rc->last_day = today;
    if (r == -ENOTSUP) {
        if (!rc->warned_no_accounting) LOG(LOG_INFO, "reconcile: no daily run: %s", err);
        rc->warned_no_accounting = true;
    } else if (r < 0) {
        LOG(LOG_WARN, "reconcile: daily run for %s failed: %s", month, err);
    } else {
        LOG(LOG_INFO, "reconcile: daily run for %s done (audited reconcile.ran)", month);
    }
}

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void daily_done(uv_work_t *w, int status)
{
    reconciler *rc = w->data;
    (void)status;
    rc->busy = false;
    if (rc->closing) uv_close((uv_handle_t *)&rc->timer, timer_closed);
}

static void on_timer(uv_timer_t *t)
{
    reconciler *rc = t->data;
    if (rc->busy || rc->closing) return;
    rc->busy = true;
    if (uv_queue_work(rc->loop, &rc->work, daily_work, daily_done) < 0) rc->busy = false;
}

int reconciler_new(uv_loop_t *loop, registry *reg, const reconciler_source *src,
                   const reconciler_options *opt, reconciler **out)
{
    reconciler *rc = calloc(1, sizeof *rc);
    if (rc == NULL) return -ENOMEM;
    rc->loop = loop;
    rc->reg = reg;
    rc->src = *src;
    if (opt) rc->opt = *opt;
    snprintf(rc->partition, sizeof rc->partition, "%s",
             opt && opt->partition ? opt->partition : "");
    rc->opt.partition = rc->partition;
    if (rc->opt.check_interval_ms == 0) rc->opt.check_interval_ms = 600000;
    rc->last_day = -1;
    int r = uv_timer_init(loop, &rc->timer);
    if (r < 0) {
        free(rc);
        return r;
    }
    rc->timer.data = rc;
    rc->work.data = rc;
    *out = rc;
    return 0;
}

int reconciler_start(reconciler *rc)
{
    rc->started = true;
    return uv_timer_start(&rc->timer, on_timer, rc->opt.check_interval_ms,
                          rc->opt.check_interval_ms);
}

void reconciler_close(reconciler *rc)
{
    if (rc == NULL || rc->closing) return;
    rc->closing = true;
    uv_timer_stop(&rc->timer);
    if (!rc->busy) uv_close((uv_handle_t *)&rc->timer, timer_closed);
}
