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
    return (x->job_id > y->job_id) - (x->job_id < y->job_id);
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

static const reconcile_record *rec_find(const reconcile_record *const *rs, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rs[mid]->job_id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && rs[lo]->job_id == id ? rs[lo] : NULL;
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

    /* Antenna's side, each job once (a job listed twice is compared once) */
    for (size_t i = 0; i < n_jobs; i++) {
        const reconcile_job *j = js[i];
        if (i > 0 && js[i - 1]->slurm_job_id == j->slurm_job_id) continue;
        out->jobs_compared++;
        const reconcile_record *r = rec_find(rs, n_recs, j->slurm_job_id);
        if (r == NULL) {
            if (j->charge_gpu_seconds != 0 || j->charge_cpu_seconds != 0)
                add(out, RECONCILE_NO_RECORD, j, NULL, j->charge_gpu_seconds, 0);
            continue;
        }
        bool rec_ended = r->end_time > 0;
        if (rec_ended && (!j->ended || j->held))
            add(out, RECONCILE_HELD_AFTER_END, j, r, j->ended_at, r->end_time);
        if (j->ended && rec_ended) {
            int64_t el =
                j->started_at > 0 && j->ended_at > j->started_at ? j->ended_at - j->started_at : 0;
            int64_t d = el - r->elapsed_s;
            if (d > RECONCILE_ELAPSED_SLACK_S || d < -RECONCILE_ELAPSED_SLACK_S)
                add(out, RECONCILE_ELAPSED, j, r, el, r->elapsed_s);
        }
        if (r->start_time > 0 && j->gpus != r->gpus)
            add(out, RECONCILE_GPUS, j, r, j->gpus, r->gpus);
        if (j->ended && rec_ended && j->has_ledger) {
            /* what the record's elapsed time costs, give or take the elapsed slack */
            int64_t want = 0, lo = 0, hi = 0, sl = RECONCILE_ELAPSED_SLACK_S;
            policy_charge(j->gpus, j->cpus, j->time_minutes, j->weight_milli, r->elapsed_s, &want,
                          NULL);
            policy_charge(j->gpus, j->cpus, j->time_minutes, j->weight_milli, r->elapsed_s - sl,
                          &lo, NULL);
            policy_charge(j->gpus, j->cpus, j->time_minutes, j->weight_milli, r->elapsed_s + sl,
                          &hi, NULL);
            if (j->ledger_gpu_seconds < lo || j->ledger_gpu_seconds > hi)
                add(out, RECONCILE_CHARGE, j, r, j->ledger_gpu_seconds, want);
        }
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
