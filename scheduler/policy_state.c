/* policy_state.c - builds antennad's policy engine from the store and guards it with a mutex.
 * Never writes the store and never talks to Slurm. */
#include "policy_state.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct policy_state {
    pthread_mutex_t mu;
    policy *pol;
};

void policy_state_job_from_store(const store_job *j, policy_job *out)
{
    memset(out, 0, sizeof *out);
    out->id = j->id;
    snprintf(out->user, sizeof out->user, "%s", j->user);
    out->gpus = j->gpus;
    snprintf(out->gpu_type, sizeof out->gpu_type, "%s", j->gpu_type);
    out->cpus = j->cpus_per_task;
    out->time_minutes = j->time_minutes;
    out->submitted_at = j->submitted_at;
}

void policy_state_quota_from_store(const store_quota *q, policy_quota *out)
{
    out->gpu_seconds = q->gpu_seconds;
    out->cpu_seconds = q->cpu_seconds;
    out->max_gpus = q->max_gpus;
    out->max_running_jobs = q->max_running_jobs;
    out->max_queued_jobs = q->max_queued_jobs;
    out->max_walltime_minutes = q->max_walltime_minutes;
    out->user_max_gpus = q->user_max_gpus;
}

static int load(policy *pol, store *st, char *err, size_t errlen)
{
    store_partner *ps = NULL;
    store_user *us = NULL;
    store_quota *qs = NULL;
    store_ledger_entry *ls = NULL;
    store_job *js = NULL;
    size_t nps = 0, nus = 0, nqs = 0, nls = 0, njs = 0;
    int rc;
    const char *what = "partners";

    if ((rc = store_partner_list(st, &ps, &nps)) < 0) goto fail;
    for (size_t i = 0; i < nps; i++)
        if ((rc = policy_partner_set(pol, ps[i].name, ps[i].share_weight)) < 0) goto fail;
    what = "users";
    if ((rc = store_user_list(st, NULL, &us, &nus)) < 0) goto fail;
    for (size_t i = 0; i < nus; i++) {
        policy_category cat = POLICY_CAT_RESEARCHER;
        policy_category_parse(us[i].category, &cat);
        if ((rc = policy_user_set(pol, us[i].name, us[i].partner, cat)) < 0) goto fail;
    }
    what = "quotas";
    if ((rc = store_quota_list(st, NULL, &qs, &nqs)) < 0) goto fail;
    for (size_t i = 0; i < nqs; i++) {
        policy_quota q;
        policy_state_quota_from_store(&qs[i], &q);
        if ((rc = policy_quota_set(pol, qs[i].partner, qs[i].period, &q)) < 0) goto fail;
    }
    what = "the ledger";
    if ((rc = store_ledger_list(st, NULL, 0, "charge", 0, &ls, &nls)) < 0) goto fail;
    for (size_t i = 0; i < nls; i++)
        if ((rc = policy_usage_load(pol, ls[i].partner, ls[i].period, ls[i].gpu_seconds,
                                    ls[i].cpu_seconds, ls[i].at)) < 0)
            goto fail;
    what = "active jobs";
    if ((rc = store_job_list_active(st, &js, &njs)) < 0) goto fail;
    for (size_t i = 0; i < njs; i++) {
        policy_job pj;
        policy_state_job_from_store(&js[i], &pj);
        if (strcmp(js[i].state, STORE_STATE_QUEUED) == 0)
            rc = policy_job_enqueue(pol, &pj);
        else {
            /* A job dispatched by a release without periods has none: use its dispatch month. */
            char period[8];
            if (js[i].period[0])
                snprintf(period, sizeof period, "%s", js[i].period);
            else
                policy_period_of(js[i].dispatched_at > 0 ? js[i].dispatched_at : time(NULL),
                                 period);
            bool running =
                strcmp(js[i].state, "running") == 0 || strcmp(js[i].state, "suspended") == 0;
            rc = policy_job_restore(pol, &pj, running, period, js[i].hold_gpu_seconds,
                                    js[i].hold_cpu_seconds);
        }
        if (rc < 0) goto fail;
    }
    rc = 0;
    goto out;
fail:
    snprintf(err, errlen, "cannot load %s into the policy engine (%s)", what, strerror(-rc));
out:
    free(ps);
    free(us);
    free(qs);
    free(ls);
    free(js);
    return rc;
}

int policy_state_new(const policy_config *cfg, store *st, policy_state **out, char *err,
                     size_t errlen)
{
    policy_state *ps = calloc(1, sizeof *ps);
    int rc;
    if (ps == NULL) return -ENOMEM;
    ps->pol = policy_new(cfg, err, errlen);
    if (ps->pol == NULL) {
        rc = -EINVAL;
        goto fail_policy;
    }
    if ((rc = load(ps->pol, st, err, errlen)) < 0) goto fail_load;
    pthread_mutex_init(&ps->mu, NULL);
    *out = ps;
    return 0;
fail_load:
    policy_free(ps->pol);
fail_policy:
    free(ps);
    return rc;
}

void policy_state_free(policy_state *ps)
{
    if (ps == NULL) return;
    pthread_mutex_destroy(&ps->mu);
    policy_free(ps->pol);
    free(ps);
}

policy *policy_state_lock(policy_state *ps)
{
    pthread_mutex_lock(&ps->mu);
    return ps->pol;
}

void policy_state_unlock(policy_state *ps)
{
    pthread_mutex_unlock(&ps->mu);
}
