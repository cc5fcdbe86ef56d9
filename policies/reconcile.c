/* reconcile.c - the comparison of Antenna's jobs with slurmdbd's records. Pure: never does I/O,
 * never logs, never changes its inputs. */
#include "reconcile.h"

#include "policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const kind_names[RECONCILE_KINDS] = {
    [RECONCILE_NO_RECORD] = "no_record",
    [RECONCILE_ESCAPED] = "escaped",
    [RECONCILE_ELAPSED] = "elapsed",
    [RECONCILE_GPUS] = "gpus",
    [RECONCILE_HELD_AFTER_END] = "held_after_end",
    [RECONCILE_CHARGE] = "charge",
};

const char *reconcile_kind_name(reconcile_kind k)
{
    return (unsigned)k < RECONCILE_KINDS ? kind_names[k] : "unknown";
}

void reconcile_result_clear(reconcile_result *r)
{
    if (r == NULL) return;
    free(r->diffs);
    memset(r, 0, sizeof *r);
}

static int cmp_job(const void *a, const void *b)
{
    const reconcile_job *x = *(const reconcile_job *const *)a,
                        *y = *(const reconcile_job *const *)b;
    return (x->slurm_job_id > y->slurm_job_id) - (x->slurm_job_id < y->slurm_job_id);
}

static int cmp_rec(const void *a, const void *b)
{
    const reconcile_record *x = *(const reconcile_record *const *)a,
                           *y = *(const reconcile_record *const *)b;
    if (x->job_id != y->job_id) return (x->job_id > y->job_id) ? 1 : -1;
    /* then by run: one run read twice (by id and by time) sorts next to itself */
    if (x->start_time != y->start_time) return (x->start_time > y->start_time) ? 1 : -1;
    if (x->end_time != y->end_time) return (x->end_time > y->end_time) ? 1 : -1;
    return (int)x->requeued - (int)y->requeued;
}

static int cmp_diff(const void *a, const void *b)
{
    const reconcile_diff *x = a, *y = b;
    if (x->kind != y->kind) return (int)x->kind - (int)y->kind;
    if (x->slurm_job_id != y->slurm_job_id) return (x->slurm_job_id > y->slurm_job_id) ? 1 : -1;
    return (x->job_id > y->job_id) - (x->job_id < y->job_id);
}

/* Slurm keeps account names lowercase: accounts compare without case. */
static bool in_list(const char *s, const char *const *list, size_t n, bool nocase)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] && (nocase ? strcasecmp(s, list[i]) : strcmp(s, list[i])) == 0) return true;
    return false;
}

static bool in_scope(const reconcile_record *r, const reconcile_scope *sc)
{
    if (sc == NULL) return true;
    return in_list(r->partition, sc->partitions, sc->n_partitions, false) ||
           in_list(r->account, sc->accounts, sc->n_accounts, true);
}

/* The index of the first record of Slurm job `id` in rs (sorted), or n. */
static size_t rec_lower(const reconcile_record *const *rs, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rs[mid]->job_id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const reconcile_job *job_find(const reconcile_job *const *js, size_t n, int64_t slurm_id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (js[mid]->slurm_job_id < slurm_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && js[lo]->slurm_job_id == slurm_id ? js[lo] : NULL;
}

/* Appends one difference. Room for it was reserved. */
static void add(reconcile_result *out, reconcile_kind kind, const reconcile_job *j,
                const reconcile_record *r, int64_t antenna, int64_t slurm)
{
    reconcile_diff *d = &out->diffs[out->n_diffs++];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->job_id = j ? j->id : 0;
    d->slurm_job_id = j ? j->slurm_job_id : r->job_id;
    memcpy(d->partner, j ? j->partner : r->account, RECONCILE_NAME_MAX);
    d->partner[RECONCILE_NAME_MAX - 1] = '\0';
    d->antenna = antenna;
    d->slurm = slurm;
    out->by_kind[kind]++;
}

/* Adds one run of job `j` that slurmdbd recorded as `el` seconds: to the elapsed time, the slack
 * (RECONCILE_ELAPSED_SLACK_S per run), and what it costs by policy_charge, give or take the slack
 * (want, lo, hi). */
static void run_cost(const reconcile_job *j, int64_t el, int64_t *elapsed, int64_t *slack,
                     int64_t *want, int64_t *lo, int64_t *hi)
{
    int64_t c = 0, l = 0, h = 0, sl = RECONCILE_ELAPSED_SLACK_S;
    policy_charge(j->gpus, j->cpus, j->time_minutes, j->weight_milli, el, &c, NULL);
    policy_charge(j->gpus, j->cpus, j->time_minutes, j->weight_milli, el - sl, &l, NULL);
    policy_charge(j->gpus, j->cpus, j->time_minutes, j->weight_milli, el + sl, &h, NULL);
    *elapsed += el;
    *slack += sl;
    *want += c;
    *lo += l;
    *hi += h;
}

int reconcile_compare(const reconcile_job *jobs, size_t n_jobs, const reconcile_record *recs,
                      size_t n_recs, const reconcile_scope *scope, reconcile_result *out)
{
    if (out == NULL || (jobs == NULL && n_jobs) || (recs == NULL && n_recs)) return -EINVAL;
    memset(out, 0, sizeof *out);
    const reconcile_job **js = calloc(n_jobs ? n_jobs : 1, sizeof *js);
    const reconcile_record **rs = calloc(n_recs ? n_recs : 1, sizeof *rs);
    /* at most 4 differences per job (held, elapsed, gpus, charge; or no record) plus one per
     * record */
    out->diffs = calloc(4 * n_jobs + n_recs + 1, sizeof *out->diffs);
    if (js == NULL || rs == NULL || out->diffs == NULL) goto fail_alloc;
    for (size_t i = 0; i < n_jobs; i++)
        js[i] = &jobs[i];
    for (size_t i = 0; i < n_recs; i++)
        rs[i] = &recs[i];
    qsort(js, n_jobs, sizeof *js, cmp_job);
    qsort(rs, n_recs, sizeof *rs, cmp_rec);

    /* Antenna's side, each job once (a job listed twice is compared once); a job Slurm requeued
     * has one record per run, summed (records sorted by id, then run, so a run read twice is
     * next to itself) */
    for (size_t i = 0; i < n_jobs; i++) {
        const reconcile_job *j = js[i];
        if (i > 0 && js[i - 1]->slurm_job_id == j->slurm_job_id) continue;
        out->jobs_compared++;
        size_t lo_rec = rec_lower(rs, n_recs, j->slurm_job_id);
        if (lo_rec == n_recs || rs[lo_rec]->job_id != j->slurm_job_id) {
            if (j->charge_gpu_seconds != 0 || j->charge_cpu_seconds != 0)
                add(out, RECONCILE_NO_RECORD, j, NULL, j->charge_gpu_seconds, 0);
            continue;
        }
        /* its runs: the requeued ones summed, `r` its last (the record not requeued) */
        const reconcile_record *r = NULL;
        int64_t elapsed = 0, want = 0, lo = 0, hi = 0, slack = 0;
        for (size_t k = lo_rec; k < n_recs && rs[k]->job_id == j->slurm_job_id; k++) {
            const reconcile_record *x = rs[k];
            if (k > 0 && rs[k - 1]->job_id == x->job_id && cmp_rec(&rs[k - 1], &rs[k]) == 0)
                continue; /* the same run read twice */
            if (!x->requeued) {
                if (r == NULL || x->start_time > r->start_time) r = x;
                continue;
            }
            run_cost(j, x->elapsed_s, &elapsed, &slack, &want, &lo, &hi);
        }
        if (r == NULL) r = rs[lo_rec]; /* only requeued runs yet: it waits in Slurm again */
        bool rec_ended = !r->requeued && r->end_time > 0;
        if (!r->requeued) run_cost(j, r->elapsed_s, &elapsed, &slack, &want, &lo, &hi);
        if (rec_ended && (!j->ended || j->held))
            add(out, RECONCILE_HELD_AFTER_END, j, r, j->ended_at, r->end_time);
        if (j->ended && rec_ended) {
            int64_t el =
                j->started_at > 0 && j->ended_at > j->started_at ? j->ended_at - j->started_at : 0;
            el += j->prior_run_seconds;
            int64_t d = el - elapsed;
            if (d > slack || d < -slack) add(out, RECONCILE_ELAPSED, j, r, el, elapsed);
        }
        if (r->start_time > 0 && j->gpus != r->gpus)
            add(out, RECONCILE_GPUS, j, r, j->gpus, r->gpus);
        /* what the records' elapsed times cost, give or take the elapsed slack of each run */
        if (j->ended && rec_ended && j->has_ledger &&
            (j->ledger_gpu_seconds < lo || j->ledger_gpu_seconds > hi))
            add(out, RECONCILE_CHARGE, j, r, j->ledger_gpu_seconds, want);
    }
    /* the cluster's side: records of ours that no Antenna job explains */
    for (size_t i = 0; i < n_recs; i++) {
        const reconcile_record *r = rs[i];
        if (i > 0 && rs[i - 1]->job_id == r->job_id) continue;
        out->records_seen++;
        if (job_find(js, n_jobs, r->job_id) == NULL && in_scope(r, scope))
            add(out, RECONCILE_ESCAPED, NULL, r, 0, r->elapsed_s);
    }
    qsort(out->diffs, out->n_diffs, sizeof *out->diffs, cmp_diff);
    free(js);
    free(rs);
    return 0;

fail_alloc:
    free(js);
    free(rs);
    reconcile_result_clear(out);
    return -ENOMEM;
}
