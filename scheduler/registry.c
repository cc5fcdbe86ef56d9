/* registry.c - the one owner of antennad's live state: a committer thread applies every change
 * to the store (one savepoint each, with its ledger rows and audit entry) and to the policy
 * engine, and commits the changes that arrive together in one transaction.
 *
 * Never talks to Slurm, never runs on the event-loop thread. Nothing outside this file writes the
 * store or takes the engine's lock.
 */
#include "registry.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "auth.h"
#include "fault.h"
#include "job_dependency.h"
#include "log.h"
#include "metrics.h"

enum change_kind {
    CH_SUBMIT,
    CH_CANCEL,
    CH_DISPATCH_BEGIN,
    CH_OUTCOMES,
    CH_SLURM,
    CH_PARTNER_CREATE,
    CH_PARTNER_UPDATE,
    CH_USER_CREATE,
    CH_USER_UPDATE,
    CH_QUOTA_SET,
    CH_TOKEN_CREATE,
    CH_TOKEN_REVOKE,
    CH_AUDIT,
    CH_HOUSEKEEP,
    CH_ADJUST,
    CH_ARRAY_CANCEL,
};

struct tok_entry;

/* One change handed to the committer. Lives on the caller's stack until done. */
struct change {
    enum change_kind kind;
    const registry_actor *who;
    int rc;
    bool done;
    pthread_cond_t *waiter; /* the caller waiting for this change, signalled alone (q_mu) */
    struct change *next;
    union {
        registry_submit *submit;
        struct {
            int64_t id;
            bool *now_cancelled;
            store_job *out;
        } cancel;
        struct {
            int64_t now;
            size_t max;
            store_job *jobs;
            size_t n;
        } begin;
        struct {
            registry_outcome *o;
            size_t n;
        } outcomes;
        struct {
            registry_slurm_change *c;
            size_t n;
        } slurm;
        struct {
            const char *name, *description, *partner, *unix_user, *role, *category;
            int share_weight;
            int disabled; /* CH_USER_UPDATE: -1 keep, 0, 1 */
            store_partner *pout;
            store_user *uout;
            store_user after; /* CH_USER_UPDATE: the user once changed (for the token table) */
        } who_rec;
        const store_quota *quota;
        struct {
            int64_t user_id, id, expires_at;
            const char *partner, *hash, *label;
            int64_t *id_out;
            struct tok_entry *entry; /* CH_TOKEN_CREATE: filled in the change, kept after commit */
        } token;
        struct {
            const char *action, *details;
        } audit;
        int64_t housekeep_now;
        struct {
            int64_t id, gpu_seconds, cpu_seconds;
            bool correct;
            const char *reason;
            store_job *out;
        } adjust;
        struct {
            int64_t id;
            size_t n_now, n_slurm;
            int64_t *in_slurm;
        } acancel;
    } u;
};

struct registry {
    _Atomic uint64_t generation; /* committed batches so far (registry_generation) */
    store *st;
    audit *au;
    policy *pol;
    policy_config cfg;
    size_t max_batch;
    int64_t idem_keep;

    pthread_mutex_t eng_mu;       /* the engine; held by the committer for a whole batch */
    job_dependency_index *dep_ix; /* queued job held for its dependencies <- the prerequisites
                                     it waits on (engine lock) */
    int64_t *dep_never;           /* held at a load with a condition that can never be met:
                                     cancelled by the next housekeeping (engine lock) */
    size_t n_dep_never;

    pthread_mutex_t q_mu;   /* the queue of changes and their completion */
    pthread_cond_t q_cv;    /* changes arrived, or stopping */
    pthread_cond_t done_cv; /* the last caller left while stopping (registry_free waits) */
    struct change *head, *tail;
    bool stopping;
    size_t callers; /* threads inside submit_change: registry_free waits for them to leave */
    pthread_t thread;

    pthread_mutex_t tok_mu; /* the token table */
    struct tok_entry **tok; /* tok_nb chains, by hash */
    size_t tok_nb, tok_n;   /* buckets (a power of two) and entries */

    pthread_mutex_t health_mu;
    int health_rc;
    char health_why[160];

    /* batch-local (committer thread only) */
    int64_t batch_seq;
    char batch_hash[STORE_HASH_HEX];
    bool engine_suspect; /* an engine step failed after its store step: rebuild after commit */
};

/* The token table: every active token (its hash, expiry and user, the user's disabled flag
 * included), loaded at open and changed after each commit that creates or revokes a token or
 * changes a user, before the callers hear of it: authenticating a request reads no row. A chained
 * hash table that doubles when it holds more entries than buckets. */
struct tok_entry {
    char hash[STORE_HASH_HEX];
    int64_t id;
    int64_t expires_at; /* 0 = never */
    store_user user;
    struct tok_entry *next;
};

static size_t tok_bucket_of(const char *hash, size_t nb)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = hash; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (size_t)(h & (nb - 1));
}

/* tok_mu held. Takes ownership of e. */
static void tok_insert(registry *r, struct tok_entry *e)
{
    if (r->tok_n >= r->tok_nb) { /* grow; on failure the chains only get longer */
        size_t nb = r->tok_nb * 2;
        struct tok_entry **b = calloc(nb, sizeof *b);
        if (b != NULL) {
            for (size_t i = 0; i < r->tok_nb; i++)
                for (struct tok_entry *t = r->tok[i], *next; t; t = next) {
                    next = t->next;
                    size_t j = tok_bucket_of(t->hash, nb);
                    t->next = b[j];
                    b[j] = t;
                }
            free(r->tok);
            r->tok = b;
            r->tok_nb = nb;
        }
    }
    size_t i = tok_bucket_of(e->hash, r->tok_nb);
    e->next = r->tok[i];
    r->tok[i] = e;
    r->tok_n++;
}

/* tok_mu held. O(tokens): revocations are rare. */
static void tok_remove_id(registry *r, int64_t id)
{
    for (size_t i = 0; i < r->tok_nb; i++)
        for (struct tok_entry **pp = &r->tok[i]; *pp; pp = &(*pp)->next)
            if ((*pp)->id == id) {
                struct tok_entry *dead = *pp;
                *pp = dead->next;
                free(dead);
                r->tok_n--;
                return;
            }
}

/* tok_mu held. Gives every token of user u->id the user's new row. O(tokens): rare. */
static void tok_user_set(registry *r, const store_user *u)
{
    for (size_t i = 0; i < r->tok_nb; i++)
        for (struct tok_entry *t = r->tok[i]; t; t = t->next)
            if (t->user.id == u->id) t->user = *u;
}

static void tok_clear(registry *r)
{
    for (size_t i = 0; i < r->tok_nb; i++)
        for (struct tok_entry *t = r->tok[i], *next; t; t = next) {
            next = t->next;
            free(t);
        }
    free(r->tok);
    r->tok = NULL;
    r->tok_nb = r->tok_n = 0;
}

/* Fills the table from the store's active tokens (at open, before any caller). */
static int tok_load(registry *r, char *err, size_t errlen)
{
    store_token_auth *ts = NULL;
    size_t n = 0;
    r->tok_nb = 1024;
    r->tok = calloc(r->tok_nb, sizeof *r->tok);
    if (r->tok == NULL) goto fail_alloc;
    int rc = store_token_active_list(r->st, &ts, &n);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read the tokens: %s", strerror(-rc));
        tok_clear(r);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        struct tok_entry *e = calloc(1, sizeof *e);
        if (e == NULL) {
            free(ts);
            tok_clear(r);
            goto fail_alloc;
        }
        snprintf(e->hash, sizeof e->hash, "%s", ts[i].hash);
        e->id = ts[i].id;
        e->expires_at = ts[i].expires_at;
        e->user = ts[i].user;
        tok_insert(r, e);
    }
    free(ts);
    return 0;
fail_alloc:
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

/* --- loading the engine from the store ---------------------------------------------------------
 */

int registry_job_cpus(const store_job *j)
{
    return j->cpus > 0 ? j->cpus : j->cpus_per_task;
}

void registry_job_to_policy(const store_job *j, policy_job *out)
{
    memset(out, 0, sizeof *out);
    out->id = j->id;
    snprintf(out->user, sizeof out->user, "%s", j->user);
    out->gpus = j->gpus;
    snprintf(out->gpu_type, sizeof out->gpu_type, "%s", j->gpu_type);
    out->cpus = registry_job_cpus(j);
    out->time_minutes = j->time_minutes;
    out->submitted_at = j->submitted_at;
    out->array_id = j->array_job_id;
    out->array_max = j->array_max;
}

static void quota_to_policy(const store_quota *q, policy_quota *out)
{
    out->gpu_seconds = q->gpu_seconds;
    out->cpu_seconds = q->cpu_seconds;
    out->max_gpus = q->max_gpus;
    out->max_running_jobs = q->max_running_jobs;
    out->max_queued_jobs = q->max_queued_jobs;
    out->max_walltime_minutes = q->max_walltime_minutes;
    out->user_max_gpus = q->user_max_gpus;
}

static bool state_running(const char *state)
{
    return strcmp(state, "running") == 0 || strcmp(state, "suspended") == 0;
}

/* Builds a new engine from the store's committed rows (or the batch's, on the batch thread). */
static policy *engine_load(const policy_config *cfg, store *st, char *err, size_t errlen)
{
    store_partner *ps = NULL;
    store_user *us = NULL;
    store_quota *qs = NULL;
    store_ledger_totals *ts = NULL;
    store_job *js = NULL;
    size_t nps = 0, nus = 0, nqs = 0, nts = 0, njs = 0;
    int rc;
    const char *what = "the configuration";
    policy *pol = policy_new(cfg, err, errlen);
    if (pol == NULL) return NULL;

    what = "partners";
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
        quota_to_policy(&qs[i], &q);
        if ((rc = policy_quota_set(pol, qs[i].partner, qs[i].period, &q)) < 0) goto fail;
    }
    /* One row per partner and period, with the time of its last charge: fair share decays
     * from there (O(partners x periods), not O(charges)). */
    what = "the ledger";
    if ((rc = store_ledger_totals_list(st, &ts, &nts)) < 0) goto fail;
    for (size_t i = 0; i < nts; i++) {
        if (ts[i].used_gpu_seconds == 0 && ts[i].used_cpu_seconds == 0) continue;
        if ((rc = policy_usage_load(pol, ts[i].partner, ts[i].period, ts[i].used_gpu_seconds,
                                    ts[i].used_cpu_seconds, ts[i].last_charge_at)) < 0)
            goto fail;
    }
    what = "active jobs";
    if ((rc = store_job_list_active(st, &js, &njs)) < 0) goto fail;
    for (size_t i = 0; i < njs; i++) {
        policy_job pj;
        registry_job_to_policy(&js[i], &pj);
        if (strcmp(js[i].state, STORE_STATE_QUEUED) == 0) {
            rc = policy_job_enqueue(pol, &pj);
        } else {
            /* A job dispatched by a release without periods has none: use its dispatch month. */
            char period[8];
            if (js[i].period[0])
                snprintf(period, sizeof period, "%s", js[i].period);
            else
                policy_period_of(js[i].dispatched_at > 0 ? js[i].dispatched_at : time(NULL),
                                 period);
            rc = policy_job_restore(pol, &pj, state_running(js[i].state), period,
                                    js[i].hold_gpu_seconds, js[i].hold_cpu_seconds);
        }
        if (rc < 0) goto fail;
    }
    free(ps);
    free(us);
    free(qs);
    free(ts);
    free(js);
    return pol;
fail:
    snprintf(err, errlen, "cannot load %s into the policy engine (%s)", what, strerror(-rc));
    free(ps);
    free(us);
    free(qs);
    free(ts);
    free(js);
    policy_free(pol);
    return NULL;
}

/* --- audit entries -------------------------------------------------------------------------- */

/* Appends an entry in the open batch; takes ownership of `details` (a JSON object, may be NULL).
 * Remembers it as the batch's last entry. Returns 0 or a negative errno. */
static int audit_add(registry *r, const char *actor, const char *partner, const char *action,
                     json_t *details)
{
    if (r->au == NULL) {
        json_decref(details);
        return 0;
    }
    char *text = details ? json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(details);
    if (details != NULL && text == NULL) return -ENOMEM;
    int64_t seq = 0;
    char hash[STORE_HASH_HEX];
    int rc = audit_append(r->au, actor, partner ? partner : "", action, text, &seq, hash);
    free(text);
    if (rc == 0) {
        r->batch_seq = seq;
        memcpy(r->batch_hash, hash, sizeof hash);
    }
    return rc;
}

static const char *who_actor(const struct change *c)
{
    return c->who && c->who->actor ? c->who->actor : "antennad";
}

static const char *who_partner(const struct change *c)
{
    return c->who && c->who->partner ? c->who->partner : "";
}

/* --- applying each kind of change (committer thread, engine locked, inside the batch) ------- */

static void live_of(registry *r, int64_t id, int64_t now, registry_live *out)
{
    const char *reason = policy_job_reason(r->pol, id, now);
    snprintf(out->reason, sizeof out->reason, "%s", reason ? reason : "");
    out->priority = policy_job_priority(r->pol, id, now);
}

/* --- dependencies (issue 9): the hold, the wake, the never-met end ---------------------------
 * A queued job waits in the engine (policy_job_dependency_hold) while one of its prerequisites is
 * not yet in Slurm (or, for a singleton, has not ended); the index maps each such prerequisite to
 * its waiting dependents, so that a prerequisite reaching Slurm or ending wakes only those. */

enum dep_overall { DEP_READY, DEP_WAIT, DEP_NEVER };

/* Where the n conditions `d` of job `id` stand now (the store's rows, as this thread sees them):
 * DEP_NEVER (with the first never-met condition's reason), else DEP_WAIT when one waits, else
 * DEP_READY. With `ix` and DEP_WAIT, records the prerequisites it waits on. Returns 0 or a
 * negative errno. */
static int depend_eval(registry *r, job_dependency_index *ix, int64_t id, const store_dependency *d,
                       size_t n, int *overall, char *reason, size_t rlen)
{
    job_dependency_status st[STORE_DEPENDENCY_MAX];
    *overall = DEP_READY;
    if (reason && rlen) reason[0] = '\0';
    for (size_t i = 0; i < n && i < STORE_DEPENDENCY_MAX; i++) {
        job_dependency_kind k;
        st[i] = JOB_DEP_MET;
        if (d[i].prereq_id <= 0 || job_dependency_kind_parse(d[i].kind, &k) < 0) continue;
        store_job p;
        int rc = store_job_get(r->st, d[i].prereq_id, &p);
        if (rc < 0 && rc != -ENOENT) return rc;
        if (rc == -ENOENT) snprintf(p.state, sizeof p.state, "lost");
        st[i] = job_dependency_check(k, p.state, rc == -ENOENT || store_state_terminal(p.state),
                                     rc == 0 && p.slurm_job_id > 0);
        if (st[i] == JOB_DEP_NEVER && *overall != DEP_NEVER) {
            *overall = DEP_NEVER;
            if (reason) job_dependency_never_reason(k, d[i].prereq_id, p.state, reason, rlen);
        } else if (st[i] == JOB_DEP_WAIT && *overall == DEP_READY) {
            *overall = DEP_WAIT;
        }
    }
    if (*overall != DEP_WAIT || ix == NULL) return 0;
    for (size_t i = 0; i < n && i < STORE_DEPENDENCY_MAX; i++)
        if (st[i] == JOB_DEP_WAIT && job_dependency_index_add(ix, d[i].prereq_id, id) < 0)
            return -ENOMEM;
    return 0;
}

/* Ends queued job `j` cancelled because a condition can never be met: no hold was taken, so it
 * is charged nothing; audited "job.finished". Returns 0 or a negative errno. */
static int depend_cancel(registry *r, const store_job *j, const char *reason)
{
    int rc = store_job_transition(r->st, j->id, STORE_STATE_QUEUED, "cancelled", reason);
    if (rc < 0) return rc;
    rc = audit_add(r, "antennad", j->partner, "job.finished",
                   json_pack("{s:I,s:s,s:s,s:b,s:i,s:s}", "job", (json_int_t)j->id, "user", j->user,
                             "state", "cancelled", "dispatched", 0, "charge_gpu_seconds", 0,
                             "reason", reason));
    if (rc < 0) return rc;
    policy_job_dequeue(r->pol, j->id); /* -ENOENT: not in the engine (a refused submission) */
    return 0;
}

/* A prerequisite reached Slurm or ended: re-judges the queued jobs that waited on it (and, when
 * one of them ends cancelled, those that waited on that one), releasing, keeping or cancelling
 * each. O(1) when nobody waits on `prereq`. In the caller's savepoint. Returns 0 or a negative
 * errno (the engine is then marked for a rebuild). */
static int depend_wake(registry *r, int64_t prereq)
{
    int64_t *work = NULL, *ids = NULL;
    size_t nw = 0, capw = 0;
    int rc = 0;
    int64_t cur = prereq;
    for (;;) {
        long nd = job_dependency_index_take(r->dep_ix, cur, &ids);
        if (nd < 0) {
            rc = (int)nd;
            break;
        }
        for (long i = 0; i < nd && rc == 0; i++) {
            store_job d;
            store_dependency *rows = NULL;
            size_t nr = 0;
            int overall;
            char why[STORE_REASON_MAX];
            if ((rc = store_job_get(r->st, ids[i], &d)) < 0) break;
            if (strcmp(d.state, STORE_STATE_QUEUED) != 0) continue;
            if ((rc = store_dependency_list(r->st, d.id, &rows, &nr)) < 0) break;
            rc = depend_eval(r, r->dep_ix, d.id, rows, nr, &overall, why, sizeof why);
            if (rc == 0 && overall != DEP_WAIT)
                for (size_t k = 0; k < nr; k++)
                    job_dependency_index_remove(r->dep_ix, rows[k].prereq_id, d.id);
            free(rows);
            if (rc < 0) break;
            if (overall == DEP_READY && policy_job_dependency_release(r->pol, d.id) < 0)
                r->engine_suspect = true;
            if (overall != DEP_NEVER) continue;
            if ((rc = depend_cancel(r, &d, why)) < 0) break;
            if (nw == capw) {
                size_t nc = capw ? 2 * capw : 16;
                int64_t *p = realloc(work, nc * sizeof *p);
                if (p == NULL) {
                    rc = -ENOMEM;
                    break;
                }
                work = p;
                capw = nc;
            }
            work[nw++] = d.id;
        }
        free(ids);
        ids = NULL;
        if (rc < 0 || nw == 0) break;
        cur = work[--nw];
    }
    free(work);
    if (rc < 0) r->engine_suspect = true;
    return rc;
}

/* The rows of a new job's dependency: its conditions, a singleton expanded to the user's earlier
 * jobs of the same name that have not ended (the newest ones when they are too many). Returns
 * the number of rows, or a negative errno. */
static long depend_rows(registry *r, const store_job *j, const job_dependency *dep,
                        store_dependency *rows)
{
    size_t n = 0;
    for (size_t i = 0; i < dep->n && n < STORE_DEPENDENCY_MAX; i++) {
        rows[n].job_id = j->id;
        snprintf(rows[n].kind, sizeof rows[n].kind, "%s",
                 job_dependency_kind_name(dep->items[i].kind));
        rows[n].prereq_id = dep->items[i].id;
        n++;
        if (dep->items[i].kind != JOB_DEP_SINGLETON) continue;
        int64_t *ids = NULL;
        size_t nids = 0;
        int rc = store_job_list_active_named(r->st, j->user_id, j->name, j->id, &ids, &nids);
        if (rc < 0) return rc;
        size_t room = STORE_DEPENDENCY_MAX - n, from = nids > room ? nids - room : 0;
        for (size_t k = from; k < nids; k++, n++) {
            rows[n].job_id = j->id;
            snprintf(rows[n].kind, sizeof rows[n].kind, "singleton");
            rows[n].prereq_id = ids[k];
        }
        free(ids);
    }
    return (long)n;
}

/* Builds the dependency index and the holds of engine `pol` from the store's queued jobs.
 * Returns the index, or NULL with a message in err. A job whose condition can never be met is
 * held and listed in *never (malloc'd) for the next housekeeping to cancel. */
static job_dependency_index *depend_load(registry *r, policy *pol, int64_t **never, size_t *n_never,
                                         char *err, size_t errlen)
{
    store_dependency *rows = NULL;
    size_t n = 0, cap = 0;
    *never = NULL;
    *n_never = 0;
    job_dependency_index *ix = job_dependency_index_new();
    int rc = ix ? store_dependency_list_queued(r->st, &rows, &n) : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n;) {
        size_t k = i;
        while (k < n && rows[k].job_id == rows[i].job_id)
            k++;
        int overall;
        rc = depend_eval(r, ix, rows[i].job_id, rows + i, k - i, &overall, NULL, 0);
        if (rc == 0 && overall != DEP_READY) policy_job_dependency_hold(pol, rows[i].job_id);
        if (rc == 0 && overall == DEP_NEVER) {
            if (*n_never == cap) {
                size_t nc = cap ? 2 * cap : 16;
                int64_t *p = realloc(*never, nc * sizeof *p);
                if (p == NULL) {
                    rc = -ENOMEM;
                    break;
                }
                *never = p;
                cap = nc;
            }
            (*never)[(*n_never)++] = rows[i].job_id;
        }
        i = k;
    }
    free(rows);
    if (rc == 0) return ix;
    snprintf(err, errlen, "cannot load the job dependencies (%s)", strerror(-rc));
    job_dependency_index_free(ix);
    free(*never);
    *never = NULL;
    *n_never = 0;
    return NULL;
}

/* Swaps in the index and never-met list of a fresh load. */
static void depend_swap(registry *r, job_dependency_index *ix, int64_t *never, size_t n_never)
{
    job_dependency_index_free(r->dep_ix);
    free(r->dep_never);
    r->dep_ix = ix;
    r->dep_never = never;
    r->n_dep_never = n_never;
}

/* Housekeeping: cancels the jobs a load found held by a condition never to be met. */
static int depend_sweep(registry *r)
{
    for (size_t i = 0; i < r->n_dep_never; i++) {
        store_job d;
        store_dependency *rows = NULL;
        size_t nr = 0;
        int overall = DEP_READY;
        char why[STORE_REASON_MAX];
        int rc = store_job_get(r->st, r->dep_never[i], &d);
        if (rc == 0 && strcmp(d.state, STORE_STATE_QUEUED) != 0) continue;
        if (rc == 0) rc = store_dependency_list(r->st, d.id, &rows, &nr);
        if (rc == 0) rc = depend_eval(r, r->dep_ix, d.id, rows, nr, &overall, why, sizeof why);
        free(rows);
        if (rc == 0 && overall == DEP_NEVER && (rc = depend_cancel(r, &d, why)) == 0)
            rc = depend_wake(r, d.id);
        if (rc == 0 && overall == DEP_READY) policy_job_dependency_release(r->pol, d.id);
        if (rc < 0) return rc;
    }
    free(r->dep_never);
    r->dep_never = NULL;
    r->n_dep_never = 0;
    return 0;
}

/* A new queued job's dependency: its rows, then the hold, or the never-met end (*j is then the
 * job as it ended). The job is already queued in the engine. Returns 0 or a negative errno. */
static int depend_submit(registry *r, store_job *j, const job_dependency *dep)
{
    store_dependency rows[STORE_DEPENDENCY_MAX];
    long n = depend_rows(r, j, dep, rows);
    if (n < 0) return (int)n;
    int rc = store_dependency_insert(r->st, j->id, rows, (size_t)n);
    int overall = DEP_READY;
    char why[STORE_REASON_MAX];
    if (rc == 0) rc = depend_eval(r, r->dep_ix, j->id, rows, (size_t)n, &overall, why, sizeof why);
    if (rc < 0) return rc;
    if (overall == DEP_NEVER) {
        if ((rc = depend_cancel(r, j, why)) < 0) return rc;
        return store_job_get(r->st, j->id, j);
    }
    if (overall == DEP_WAIT) policy_job_dependency_hold(r->pol, j->id);
    return 0;
}

/* A job back in the queue (its dispatch never reached Slurm): held again when it waits on a
 * prerequisite not in Slurm, cancelled when a condition can never be met. Returns 0 or a negative
 * errno. */
static int depend_requeued(registry *r, const store_job *j)
{
    store_dependency *rows = NULL;
    size_t nr = 0;
    int overall = DEP_READY;
    char why[STORE_REASON_MAX];
    int rc = store_dependency_list(r->st, j->id, &rows, &nr);
    if (rc == 0 && nr > 0)
        rc = depend_eval(r, r->dep_ix, j->id, rows, nr, &overall, why, sizeof why);
    free(rows);
    if (rc < 0) return rc;
    if (overall == DEP_WAIT) policy_job_dependency_hold(r->pol, j->id);
    if (overall != DEP_NEVER) return 0;
    if ((rc = depend_cancel(r, j, why)) < 0) return rc;
    return depend_wake(r, j->id);
}

/* The reason a dependent that never started ended: its never-met condition, if it has one (a
 * job Slurm cancelled for DependencyNeverSatisfied, with kill_invalid_depend). Leaves `reason`
 * as it is otherwise. */
static void depend_reason(registry *r, int64_t id, char *reason, size_t len)
{
    store_dependency *rows = NULL;
    size_t nr = 0;
    int overall = DEP_READY;
    char why[STORE_REASON_MAX];
    if (store_dependency_list(r->st, id, &rows, &nr) == 0 && nr > 0 &&
        depend_eval(r, NULL, id, rows, nr, &overall, why, sizeof why) == 0 && overall == DEP_NEVER)
        snprintf(reason, len, "%s", why);
    free(rows);
}

/* Job `id`'s row of sbatch options and CPU total (job_extra), when submission `s` asks options or
 * more CPUs than its cpus_per_task; none otherwise. Returns 0 or a negative errno. */
static int extra_write(registry *r, const registry_submit *s, int64_t id)
{
    const store_job *j = &s->job;
    bool has_options = s->options != NULL && s->options[0] != '\0';
    if (!has_options && (j->cpus <= 0 || j->cpus == j->cpus_per_task)) return 0;
    return store_job_extra_set(r->st, id, j->cpus, has_options ? s->options : "");
}

/* The answer of a new submission (render) and its Idempotency-Key record, the job queued.
 * Returns 0 or a negative errno (the caller dequeues what it queued). */
static int submit_answer(registry *r, registry_submit *s, int64_t now)
{
    store_job *j = &s->job;
    s->status = 202;
    if (s->render != NULL) {
        registry_live live;
        live_of(r, j->id, now, &live);
        s->body = s->render(j, &live, s->render_arg);
        if (s->body == NULL) return -ENOMEM;
    }
    if (s->idem_key != NULL) {
        store_idem e;
        memset(&e, 0, sizeof e);
        e.user_id = j->user_id;
        snprintf(e.key, sizeof e.key, "%s", s->idem_key);
        snprintf(e.body_hash, sizeof e.body_hash, "%s", s->body_hash ? s->body_hash : "");
        e.job_id = j->id;
        e.status = s->status;
        e.body = s->body ? s->body : (char *)"";
        e.created_at = now;
        int rc = store_idem_put(r->st, &e);
        if (rc < 0) {
            free(s->body);
            s->body = NULL;
            return rc;
        }
    }
    return 0;
}

/* The admitted submission of a whole array (apply_submit's tail): its n tasks inserted in index
 * order (the script once, with the first), tied to the array, audited one by one and queued in
 * the engine. On error the engine forgets what it queued; the change's savepoint undoes the rest.
 */
static int submit_array(registry *r, struct change *c, policy_job *pj, const char *asked,
                        int64_t now)
{
    registry_submit *s = c->u.submit;
    const job_array *a = s->array;
    store_job *j = &s->job, first;
    size_t n = a->n_tasks, queued = 0;
    int rc;
    int64_t *ids = calloc(n, sizeof *ids);
    if (ids == NULL) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        store_job t = *j;
        if ((rc = store_job_insert(r->st, &t, i == 0 ? s->script : "")) < 0) goto fail;
        if (strcmp(t.user, asked) != 0) { /* the id is another user's: undone */
            rc = -ENOENT;
            goto fail;
        }
        ids[i] = t.id;
        if (i == 0) first = t;
        /* each task asks what the array asks: its options and CPU total */
        if ((rc = extra_write(r, s, t.id)) < 0) goto fail;
    }
    store_job_array sa;
    memset(&sa, 0, sizeof sa);
    sa.array_job_id = ids[0];
    snprintf(sa.spec, sizeof sa.spec, "%s", a->spec);
    sa.task_count = (int)n;
    sa.max_running = a->max_running;
    sa.task_min = a->min;
    sa.task_max = a->max;
    sa.task_step = a->step;
    if ((rc = store_job_array_insert(r->st, &sa, ids, a->tasks, n)) < 0) goto fail;
    int64_t task_cost = s->verdict.max_cost_gpu_seconds / (int64_t)n;
    for (size_t i = 0; i < n; i++) {
        rc = audit_add(r, who_actor(c), first.partner, "job.submitted",
                       json_pack("{s:I,s:s,s:i,s:s,s:i,s:i,s:I,s:I,s:i,s:i}", "job",
                                 (json_int_t)ids[i], "name", j->name, "gpus", j->gpus, "gpu_type",
                                 j->gpu_type, "cpus_per_task", j->cpus_per_task, "time_minutes",
                                 j->time_minutes, "max_cost_gpu_seconds", (json_int_t)task_cost,
                                 "array_job_id", (json_int_t)ids[0], "array_task_id", a->tasks[i],
                                 "array_task_count", (int)n));
        if (rc < 0) goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        pj->id = ids[i];
        pj->submitted_at = first.submitted_at;
        pj->array_id = ids[0];
        pj->array_max = a->max_running;
        if ((rc = policy_job_enqueue(r->pol, pj)) < 0) goto fail;
        queued++;
    }
    *j = first;
    j->array_job_id = ids[0];
    j->array_task_id = a->tasks[0];
    j->array_max = a->max_running;
    if (s->dependency != NULL && s->dependency->n > 0) {
        /* every task waits on the array's dependency: held, released or ended on its own */
        for (size_t i = n; i-- > 0;) {
            store_job t = *j;
            t.id = ids[i];
            if ((rc = depend_submit(r, i == 0 ? j : &t, s->dependency)) < 0) goto fail;
        }
        if (j->array_job_id == 0) { /* depend_submit re-read the first task from the store */
            j->array_job_id = ids[0];
            j->array_task_id = a->tasks[0];
            j->array_max = a->max_running;
        }
    }
    if ((rc = submit_answer(r, s, now)) < 0) goto fail;
    free(ids);
    return 0;
fail:
    while (queued > 0)
        policy_job_dequeue(r->pol, ids[--queued]);
    free(ids);
    return rc;
}

static int apply_submit(registry *r, struct change *c)
{
    registry_submit *s = c->u.submit;
    store_job *j = &s->job;
    int rc;
    if (s->idem_key != NULL) {
        store_idem e;
        memset(&e, 0, sizeof e);
        rc = store_idem_get(r->st, j->user_id, s->idem_key, &e);
        if (rc == 0) {
            bool same = s->body_hash && strcmp(e.body_hash, s->body_hash) == 0;
            if (same) {
                s->replayed = true;
                s->status = e.status;
                s->body = e.body;
                e.body = NULL;
                s->verdict.admitted = true;
                if (store_job_get(r->st, e.job_id, j) < 0) j->id = e.job_id;
            }
            store_idem_clear(&e);
            return same ? 0 : -EEXIST;
        }
        if (rc != -ENOENT) return rc;
    }
    /* The submitter's name and id must agree with the store. The admitted path checks it on the
     * row the insert reads anyway (one read per submission, not two); a refusal, which writes no
     * job, looks the user up. */
    if (j->user[0] == '\0') return -ENOENT;
    char asked[sizeof j->user];
    memcpy(asked, j->user, sizeof asked);
    int64_t now = j->submitted_at ? j->submitted_at : time(NULL);
    policy_job pj;
    registry_job_to_policy(j, &pj);
    pj.submitted_at = now;
    if (s->array != NULL) pj.array_tasks = (int)s->array->n_tasks;
    if ((rc = policy_job_check(r->pol, &pj, now, &s->verdict)) < 0) return rc;
    if (!s->verdict.admitted) {
        store_user owner;
        if ((rc = store_user_get(r->st, j->user, &owner)) < 0) return rc;
        if (owner.id != j->user_id) return -ENOENT;
        return audit_add(r, who_actor(c), who_partner(c), "job.refused",
                         json_pack("{s:s,s:s,s:s,s:i,s:s,s:i}", "code", s->verdict.code, "message",
                                   s->verdict.message, "name", j->name, "gpus", j->gpus, "gpu_type",
                                   j->gpu_type, "time_minutes", j->time_minutes));
    }
    j->submitted_at = now;
    if (s->array != NULL) return submit_array(r, c, &pj, asked, now);
    if ((rc = store_job_insert(r->st, j, s->script)) < 0) return rc;
    if (strcmp(j->user, asked) != 0) return -ENOENT; /* the id is another user's: undone */
    if ((rc = extra_write(r, s, j->id)) < 0) return rc;
    json_t *det = json_pack("{s:I,s:s,s:i,s:s,s:i,s:i,s:I}", "job", (json_int_t)j->id, "name",
                            j->name, "gpus", j->gpus, "gpu_type", j->gpu_type, "cpus_per_task",
                            j->cpus_per_task, "time_minutes", j->time_minutes,
                            "max_cost_gpu_seconds", (json_int_t)s->verdict.max_cost_gpu_seconds);
    bool with_dep = s->dependency != NULL && s->dependency->n > 0;
    if (det != NULL && with_dep) {
        char text[JOB_DEPENDENCY_TEXT_MAX];
        job_dependency_format(s->dependency, text, sizeof text);
        json_object_set_new(det, "dependency", json_string(text));
    }
    rc = audit_add(r, who_actor(c), j->partner, "job.submitted", det);
    if (rc < 0) return rc;
    pj.id = j->id;
    pj.submitted_at = j->submitted_at;
    if ((rc = policy_job_enqueue(r->pol, &pj)) < 0) return rc;
    if (with_dep && (rc = depend_submit(r, j, s->dependency)) < 0) goto fail_queued;
    if ((rc = submit_answer(r, s, now)) < 0) goto fail_queued;
    return 0;
fail_queued:
    policy_job_dequeue(r->pol, j->id);
    return rc;
}

static int apply_cancel(registry *r, struct change *c)
{
    bool now = false;
    store_job j;
    int rc = store_job_cancel_request(r->st, c->u.cancel.id, &now);
    if (rc < 0) return rc;
    if ((rc = store_job_get(r->st, c->u.cancel.id, &j)) < 0) return rc;
    rc = audit_add(r, who_actor(c), j.partner, "job.cancel_requested",
                   json_pack("{s:I,s:s,s:b}", "job", (json_int_t)j.id, "owner", j.user,
                             "cancelled_before_dispatch", now));
    if (rc < 0) return rc;
    if (now && policy_job_dequeue(r->pol, j.id) < 0) r->engine_suspect = true;
    if (now && (rc = depend_wake(r, j.id)) < 0) return rc;
    if (c->u.cancel.now_cancelled) *c->u.cancel.now_cancelled = now;
    if (c->u.cancel.out) *c->u.cancel.out = j;
    return 0;
}

static int apply_array_cancel(registry *r, struct change *c)
{
    store_job *ts = NULL;
    size_t n = 0, live = 0;
    int rc = store_job_array_tasks(r->st, c->u.acancel.id, &ts, &n);
    if (rc < 0) return rc;
    if (n == 0) return -ENOENT;
    int64_t *slurm = calloc(n, sizeof *slurm);
    if (slurm == NULL) {
        free(ts);
        return -ENOMEM;
    }
    c->u.acancel.n_now = c->u.acancel.n_slurm = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool now = false;
        if (store_state_terminal(ts[i].state)) continue;
        live++;
        if ((rc = store_job_cancel_request(r->st, ts[i].id, &now)) < 0) break;
        rc = audit_add(r, who_actor(c), ts[i].partner, "job.cancel_requested",
                       json_pack("{s:I,s:s,s:b,s:I}", "job", (json_int_t)ts[i].id, "owner",
                                 ts[i].user, "cancelled_before_dispatch", now, "array_job_id",
                                 (json_int_t)c->u.acancel.id));
        if (rc < 0) break;
        if (now) {
            if (policy_job_dequeue(r->pol, ts[i].id) < 0) r->engine_suspect = true;
            c->u.acancel.n_now++;
            if ((rc = depend_wake(r, ts[i].id)) < 0) break; /* its dependents may never run */
        } else {
            slurm[c->u.acancel.n_slurm++] = ts[i].id;
        }
    }
    free(ts);
    if (rc == 0 && live == 0) rc = -EALREADY;
    if (rc < 0) {
        /* tasks already taken out of the engine come back with the rebuild after the batch */
        if (c->u.acancel.n_now > 0) r->engine_suspect = true;
        free(slurm);
        return rc;
    }
    c->u.acancel.in_slurm = slurm;
    return 0;
}

/* One pick: its hold and its move to dispatching in a savepoint of its own. Returns 0 (moved,
 * *moved = true), 1 (the store no longer had it queued: skipped), or a negative errno. */
static int begin_one(registry *r, int64_t id, int64_t hold_gpu, int64_t hold_cpu,
                     const char *period, store_job *out)
{
    int rc = store_change_begin(r->st);
    if (rc < 0) return rc;
    rc = store_job_dispatch_begin(r->st, id, period, hold_gpu, hold_cpu);
    if (rc == 0) rc = store_job_get(r->st, id, out);
    if (rc == 0)
        rc = audit_add(r, "antennad", out->partner, "job.dispatching",
                       json_pack("{s:I,s:s,s:s,s:I,s:I}", "job", (json_int_t)id, "user", out->user,
                                 "period", period, "hold_gpu_seconds", (json_int_t)hold_gpu,
                                 "hold_cpu_seconds", (json_int_t)hold_cpu));
    rc = store_change_end(r->st, rc);
    if (rc == -EAGAIN || rc == -ENOENT) return 1;
    return rc;
}

static int apply_dispatch_begin(registry *r, struct change *c)
{
    size_t cap = 0;
    int64_t now = c->u.begin.now;
    c->u.begin.jobs = NULL;
    c->u.begin.n = 0;
    while (c->u.begin.n < c->u.begin.max) {
        int64_t id, hold_gpu, hold_cpu;
        char period[8];
        if (policy_pick(r->pol, now, &id, &hold_gpu, &hold_cpu, period) < 0) break;
        if (c->u.begin.n == cap) {
            size_t ncap = cap ? 2 * cap : 32;
            if (ncap > c->u.begin.max) ncap = c->u.begin.max;
            store_job *p = realloc(c->u.begin.jobs, ncap * sizeof *p);
            if (p == NULL) break; /* what is picked so far goes */
            c->u.begin.jobs = p;
            cap = ncap;
        }
        store_job *j = &c->u.begin.jobs[c->u.begin.n];
        int rc = begin_one(r, id, hold_gpu, hold_cpu, period, j);
        if (rc == 1) { /* the store says it is not queued: the engine forgets it */
            policy_job_dequeue(r->pol, id);
            continue;
        }
        if (rc < 0) {
            /* -EDQUOT: the store's budget disagrees with the engine's; -ENOSPC, -EIO: the store
             * failed. Either way this job stays queued; what was picked before it goes. */
            if (rc == -EDQUOT) r->engine_suspect = true;
            if (c->u.begin.n == 0) {
                free(c->u.begin.jobs);
                c->u.begin.jobs = NULL;
                return rc;
            }
            break;
        }
        if (policy_job_dispatched(r->pol, id, now) < 0) r->engine_suspect = true;
        c->u.begin.n++;
    }
    return 0;
}

/* A dispatch that ends its job before Slurm ran it (refused by Slurm, or cancelled because a
 * dependency can never be met): `state` with the outcome's reason, charged nothing (no hold was
 * taken), audited "job.finished", its dependents woken. Returns 0 or a negative errno. */
static int dispatch_ended(registry *r, const registry_outcome *o, const char *state, int64_t now)
{
    store_job j;
    int rc = store_job_transition(r->st, o->id, STORE_STATE_DISPATCHING, state, o->reason);
    if (rc == 0) rc = store_job_get(r->st, o->id, &j);
    if (rc == 0)
        rc = audit_add(r, "antennad", j.partner, "job.finished",
                       json_pack("{s:I,s:s,s:s,s:b,s:i,s:s}", "job", (json_int_t)o->id, "user",
                                 j.user, "state", state, "dispatched", 0, "charge_gpu_seconds", 0,
                                 "reason", o->reason));
    if (rc == 0 && policy_job_finished(r->pol, o->id, 0, now, NULL, NULL, NULL) < 0)
        r->engine_suspect = true;
    if (rc == 0) rc = depend_wake(r, o->id);
    return rc;
}

static int outcome_one(registry *r, registry_outcome *o, int64_t now)
{
    store_job j;
    int rc;
    switch (o->kind) {
    case REGISTRY_SUBMITTED:
        rc = store_job_set_dispatched(r->st, o->id, o->slurm_job_id);
        if (rc == 0) rc = store_job_get(r->st, o->id, &j);
        if (rc == 0)
            rc = audit_add(r, "antennad", j.partner, "job.dispatched",
                           json_pack("{s:I,s:I,s:s,s:s,s:s,s:I}", "job", (json_int_t)o->id,
                                     "slurm_job_id", (json_int_t)o->slurm_job_id, "user", j.user,
                                     "unix_user", j.unix_user, "period", j.period,
                                     "hold_gpu_seconds", (json_int_t)j.hold_gpu_seconds));
        if (rc == 0) rc = depend_wake(r, o->id);
        return rc;
    case REGISTRY_REFUSED:
        return dispatch_ended(r, o, "failed", now);
    case REGISTRY_REQUEUE:
        rc = store_job_transition(r->st, o->id, STORE_STATE_DISPATCHING, STORE_STATE_QUEUED,
                                  o->reason);
        if (rc == 0) rc = store_job_get(r->st, o->id, &j);
        if (rc == 0)
            rc = audit_add(r, "antennad", j.partner, "job.requeued",
                           json_pack("{s:I,s:s,s:s}", "job", (json_int_t)o->id, "user", j.user,
                                     "reason", o->reason));
        if (rc == 0 && policy_job_requeue(r->pol, o->id) < 0) r->engine_suspect = true;
        if (rc == 0) rc = depend_requeued(r, &j);
        return rc;
    case REGISTRY_CANCELLED:
        return dispatch_ended(r, o, "cancelled", now);
    }
    return -EINVAL;
}

static int apply_outcomes(registry *r, struct change *c)
{
    int64_t now = time(NULL);
    for (size_t i = 0; i < c->u.outcomes.n; i++) {
        registry_outcome *o = &c->u.outcomes.o[i];
        int rc = store_change_begin(r->st);
        if (rc == 0) rc = store_change_end(r->st, outcome_one(r, o, now));
        o->rc = rc;
        if (rc == -ENOSPC || rc == -EIO) return rc; /* the store failed: the whole call again */
    }
    return 0;
}

/* What job `j` is charged for `runs` runs (1: one run) of `elapsed` seconds in all, at its GPU
 * type's weight (policy_charge_runs). */
static void job_charge(registry *r, const store_job *j, int runs, int64_t elapsed, int64_t *gpu_s,
                       int64_t *cpu_s)
{
    int w = policy_gpu_weight(r->pol, j->gpu_type);
    policy_charge_runs(j->gpus, registry_job_cpus(j), j->time_minutes, runs, w < 0 ? 1000 : w,
                       elapsed, gpu_s, cpu_s);
}

/* Records the runs of job `j` that ended when Slurm requeued it (sc->runs_ended of them, over
 * [sc->run_start, sc->run_end]): their job_runs row, their charge in the ledger, an audit entry,
 * then the engine (which says whether the budget still covers the job's hold). Updates j's
 * restarts and charges as written. */
static int run_requeued(registry *r, registry_slurm_change *sc, store_job *j, int64_t now)
{
    int64_t start = sc->run_start > 0 ? sc->run_start : 0;
    int64_t end = sc->run_end > start ? sc->run_end : start;
    int64_t elapsed = end - start;
    store_run run = {.job_id = j->id,
                     .runs = sc->runs_ended,
                     .slurm_job_id = j->slurm_job_id,
                     .started_at = start,
                     .ended_at = end,
                     .elapsed_seconds = elapsed};
    job_charge(r, j, sc->runs_ended, elapsed, &run.charge_gpu_seconds, &run.charge_cpu_seconds);
    fault_point("charge.before");
    int rc = store_job_run_end(r->st, &run);
    if (rc < 0) return rc;
    rc = audit_add(r, "antennad", j->partner, "job.run_requeued",
                   json_pack("{s:I,s:I,s:s,s:i,s:i,s:I,s:I,s:I,s:I,s:I}", "job", (json_int_t)j->id,
                             "slurm_job_id", (json_int_t)j->slurm_job_id, "user", j->user,
                             "restarts", j->restarts + sc->runs_ended, "runs", sc->runs_ended,
                             "started_at", (json_int_t)start, "ended_at", (json_int_t)end,
                             "elapsed_seconds", (json_int_t)elapsed, "charge_gpu_seconds",
                             (json_int_t)run.charge_gpu_seconds, "charge_cpu_seconds",
                             (json_int_t)run.charge_cpu_seconds));
    if (rc < 0) return rc;
    int64_t g = 0, cc = 0;
    bool over = false;
    if (policy_job_run_ended(r->pol, j->id, elapsed, sc->runs_ended, now, &g, &cc, &over) < 0 ||
        g != run.charge_gpu_seconds || cc != run.charge_cpu_seconds)
        r->engine_suspect = true;
    /* the job must end before its next run: its cancel is recorded with the charge, so that a
     * restart sends it again */
    if (over && (rc = store_job_cancel_request(r->st, j->id, NULL)) < 0) return rc;
    sc->over_budget = over;
    j->restarts += sc->runs_ended;
    j->charge_gpu_seconds += run.charge_gpu_seconds;
    j->charge_cpu_seconds += run.charge_cpu_seconds;
    return 0;
}

static int slurm_one(registry *r, registry_slurm_change *sc, int64_t now)
{
    store_job j;
    int rc = store_job_get(r->st, sc->id, &j);
    if (rc < 0) return rc;
    if (store_state_terminal(j.state)) return 0; /* never changed again */
    if (sc->runs_ended > 0 && !sc->lost) {
        if ((rc = run_requeued(r, sc, &j, now)) < 0) return rc;
        /* the job waits in Slurm again: what follows is its next run */
        snprintf(j.state, sizeof j.state, "pending");
        j.started_at = 0;
    }
    store_job u = j;
    bool was_running = state_running(j.state);
    if (sc->lost) {
        snprintf(u.state, sizeof u.state, "lost");
        if (sc->reason[0] != '\0')
            snprintf(u.reason, sizeof u.reason, "%s", sc->reason);
        else
            snprintf(u.reason, sizeof u.reason,
                     "neither slurmctld nor slurmdbd knows Slurm job %" PRId64
                     ": charged its full hold until staff correct it",
                     j.slurm_job_id);
        u.ended_at = now;
    } else {
        snprintf(u.state, sizeof u.state, "%s", sc->state);
        snprintf(u.reason, sizeof u.reason, "%s", sc->reason);
        bool started = strcmp(sc->state, "pending") != 0 && sc->start_time > 0;
        u.started_at = started ? sc->start_time : 0;
        u.ended_at = store_state_terminal(sc->state) ? sc->end_time : 0;
        u.has_exit_code = sc->has_exit_code && store_state_terminal(sc->state);
        u.exit_code = u.has_exit_code ? sc->exit_code : 0;
    }
    bool terminal = store_state_terminal(u.state);
    int64_t elapsed = 0;
    if (terminal) {
        /* What really ran, from Slurm's start and end; a lost job's end is unknown. */
        if (!sc->lost && u.started_at > 0 && u.ended_at > u.started_at)
            elapsed = u.ended_at - u.started_at;
        /* nobody knows what a lost job used: it is charged its full hold (its time limit),
         * never 0, until staff correct it */
        if (sc->lost) elapsed = (int64_t)j.time_minutes * 60;
        job_charge(r, &j, 1, elapsed, &u.charge_gpu_seconds, &u.charge_cpu_seconds);
    }
    if (terminal && strcmp(u.state, "cancelled") == 0 && u.started_at == 0)
        depend_reason(r, j.id, u.reason, sizeof u.reason);
    if ((rc = store_job_update(r->st, &u)) < 0) return rc;
    if (terminal) {
        fault_point("charge.before");
        json_t *ec = u.has_exit_code ? json_integer(u.exit_code) : json_null();
        json_t *det = json_pack("{s:I,s:I,s:s,s:s,s:o,s:I,s:I,s:I}", "job", (json_int_t)j.id,
                                "slurm_job_id", (json_int_t)j.slurm_job_id, "user", j.user, "state",
                                u.state, "exit_code", ec, "elapsed_seconds", (json_int_t)elapsed,
                                "charge_gpu_seconds", (json_int_t)u.charge_gpu_seconds,
                                "charge_cpu_seconds", (json_int_t)u.charge_cpu_seconds);
        /* a lost job's entry says why it was charged its full hold */
        if (sc->lost && det != NULL) json_object_set_new(det, "reason", json_string(u.reason));
        /* a job Slurm requeued: this entry charges its last run; its earlier runs were charged
         * by their job.run_requeued entries */
        if (j.restarts > 0 && det != NULL) {
            json_object_set_new(det, "restarts", json_integer(j.restarts));
            json_object_set_new(det, "total_charge_gpu_seconds",
                                json_integer(j.charge_gpu_seconds + u.charge_gpu_seconds));
        }
        rc = audit_add(r, "antennad", j.partner, "job.finished", det);
        if (rc < 0) return rc;
        int64_t g = 0, cc = 0;
        if (policy_job_finished(r->pol, j.id, elapsed, now, &g, &cc, NULL) < 0 ||
            g != u.charge_gpu_seconds || cc != u.charge_cpu_seconds)
            r->engine_suspect = true;
        sc->finished = true;
        sc->charge_gpu_seconds = u.charge_gpu_seconds;
        sc->charge_cpu_seconds = u.charge_cpu_seconds;
        if ((rc = depend_wake(r, j.id)) < 0) return rc;
    } else if (strcmp(u.state, j.state) != 0) {
        rc = audit_add(r, "antennad", j.partner,
                       !was_running && u.started_at > 0 ? "job.started" : "job.state",
                       json_pack("{s:I,s:I,s:s,s:s,s:s}", "job", (json_int_t)j.id, "slurm_job_id",
                                 (json_int_t)j.slurm_job_id, "user", j.user, "from", j.state,
                                 "state", u.state));
        if (rc < 0) return rc;
        if (!was_running && u.started_at > 0) policy_job_started(r->pol, j.id);
    }
    return 0;
}

static int apply_slurm(registry *r, struct change *c)
{
    int64_t now = time(NULL);
    for (size_t i = 0; i < c->u.slurm.n; i++) {
        registry_slurm_change *sc = &c->u.slurm.c[i];
        sc->finished = false;
        sc->over_budget = false;
        int rc = store_change_begin(r->st);
        if (rc == 0) rc = store_change_end(r->st, slurm_one(r, sc, now));
        sc->rc = rc;
        if (rc == -ENOSPC || rc == -EIO) return rc;
    }
    return 0;
}

static int apply_partner(registry *r, struct change *c, bool create)
{
    const char *name = c->u.who_rec.name;
    store_partner p;
    int rc = create ? store_partner_insert(r->st, name, c->u.who_rec.description,
                                           c->u.who_rec.share_weight, NULL)
                    : store_partner_update(r->st, name, c->u.who_rec.description,
                                           c->u.who_rec.share_weight);
    if (rc < 0) return rc;
    if ((rc = store_partner_get(r->st, name, &p)) < 0) return rc;
    rc = audit_add(r, who_actor(c), p.name, create ? "partner.created" : "partner.changed",
                   json_pack("{s:s,s:s,s:i}", "name", p.name, "description", p.description,
                             "share_weight", p.share_weight));
    if (rc < 0) return rc;
    if (policy_partner_set(r->pol, p.name, p.share_weight) < 0) r->engine_suspect = true;
    if (c->u.who_rec.pout) *c->u.who_rec.pout = p;
    return 0;
}

static int apply_user(registry *r, struct change *c)
{
    store_user u;
    int rc =
        store_user_insert(r->st, c->u.who_rec.name, c->u.who_rec.partner, c->u.who_rec.unix_user,
                          c->u.who_rec.role, c->u.who_rec.category, NULL);
    if (rc < 0) return rc;
    if ((rc = store_user_get(r->st, c->u.who_rec.name, &u)) < 0) return rc;
    rc = audit_add(r, who_actor(c), u.partner, "user.created",
                   json_pack("{s:s,s:s,s:s,s:s,s:s}", "name", u.name, "partner", u.partner,
                             "unix_user", u.unix_user, "role", u.role, "category", u.category));
    if (rc < 0) return rc;
    policy_category cat = POLICY_CAT_RESEARCHER;
    policy_category_parse(u.category, &cat);
    if (policy_user_set(r->pol, u.name, u.partner, cat) < 0) r->engine_suspect = true;
    if (c->u.who_rec.uout) *c->u.who_rec.uout = u;
    return 0;
}

static int apply_user_update(registry *r, struct change *c)
{
    store_user before, after;
    int rc = store_user_get(r->st, c->u.who_rec.name, &before);
    if (rc < 0) return rc;
    if ((rc = store_user_update(r->st, c->u.who_rec.name, c->u.who_rec.unix_user,
                                c->u.who_rec.disabled)) < 0)
        return rc;
    if ((rc = store_user_get(r->st, c->u.who_rec.name, &after)) < 0) return rc;
    if (strcmp(before.unix_user, after.unix_user) != 0 &&
        (rc = audit_add(r, who_actor(c), after.partner, "user.mapping_changed",
                        json_pack("{s:s,s:s,s:s}", "name", after.name, "old_unix_user",
                                  before.unix_user, "new_unix_user", after.unix_user))) < 0)
        return rc;
    if (before.disabled != after.disabled &&
        (rc = audit_add(r, who_actor(c), after.partner,
                        after.disabled ? "user.disabled" : "user.enabled",
                        json_pack("{s:s}", "name", after.name))) < 0)
        return rc;
    c->u.who_rec.after = after;
    if (c->u.who_rec.uout) *c->u.who_rec.uout = after;
    return 0;
}

static int apply_quota(registry *r, struct change *c)
{
    const store_quota *q = c->u.quota;
    int rc = store_quota_set(r->st, q);
    if (rc < 0) return rc;
    rc =
        audit_add(r, who_actor(c), q->partner, "quota.set",
                  json_pack("{s:s,s:I,s:I,s:i,s:i,s:i,s:i,s:i}", "period", q->period, "gpu_seconds",
                            (json_int_t)q->gpu_seconds, "cpu_seconds", (json_int_t)q->cpu_seconds,
                            "max_gpus", q->max_gpus, "max_running_jobs", q->max_running_jobs,
                            "max_queued_jobs", q->max_queued_jobs, "max_walltime_minutes",
                            q->max_walltime_minutes, "user_max_gpus", q->user_max_gpus));
    if (rc < 0) return rc;
    policy_quota pq;
    quota_to_policy(q, &pq);
    if (policy_quota_set(r->pol, q->partner, q->period, &pq) < 0) r->engine_suspect = true;
    return 0;
}

static int apply_token(registry *r, struct change *c, bool create)
{
    int rc;
    if (create) {
        int64_t id = 0;
        struct tok_entry *e = c->u.token.entry;
        rc = store_token_insert_until(r->st, c->u.token.user_id, c->u.token.hash, c->u.token.label,
                                      c->u.token.expires_at, &id);
        if (rc < 0) return rc;
        if ((rc = store_user_get_id(r->st, c->u.token.user_id, &e->user)) < 0) return rc;
        snprintf(e->hash, sizeof e->hash, "%s", c->u.token.hash);
        e->id = id;
        e->expires_at = c->u.token.expires_at;
        if (c->u.token.id_out) *c->u.token.id_out = id;
        json_t *d = json_pack("{s:I,s:I,s:s}", "token_id", (json_int_t)id, "user_id",
                              (json_int_t)c->u.token.user_id, "label",
                              c->u.token.label ? c->u.token.label : "");
        if (d && c->u.token.expires_at > 0)
            json_object_set_new(d, "expires_at", json_integer(c->u.token.expires_at));
        return audit_add(r, who_actor(c), c->u.token.partner, "token.created", d);
    }
    if ((rc = store_token_revoke(r->st, c->u.token.id)) < 0) return rc;
    return audit_add(r, who_actor(c), "", "token.revoked",
                     json_pack("{s:I}", "token_id", (json_int_t)c->u.token.id));
}

static int apply_audit(registry *r, struct change *c)
{
    json_error_t jerr;
    json_t *d = c->u.audit.details ? json_loads(c->u.audit.details, 0, &jerr) : NULL;
    if (c->u.audit.details && !json_is_object(d)) {
        json_decref(d);
        return -EINVAL;
    }
    return audit_add(r, who_actor(c), who_partner(c), c->u.audit.action, d);
}

static int apply_housekeep(registry *r, struct change *c)
{
    size_t removed = 0;
    if (r->n_dep_never > 0) {
        int rc = depend_sweep(r);
        if (rc < 0) return rc;
    }
    return store_idem_prune(r->st, c->u.housekeep_now - r->idem_keep, 1000, &removed);
}

/* A refund or correction: the amounts asked become signed differences of the job's charge. */
static int apply_adjust(registry *r, struct change *c)
{
    store_job j;
    int rc = store_job_get(r->st, c->u.adjust.id, &j);
    if (rc < 0) return rc;
    if (!store_state_terminal(j.state) || !j.period[0]) return -EAGAIN;
    int64_t g = c->u.adjust.gpu_seconds, cp = c->u.adjust.cpu_seconds, dg, dc;
    if (c->u.adjust.correct) {
        dg = g - j.charge_gpu_seconds;
        dc = cp < 0 ? 0 : cp - j.charge_cpu_seconds;
    } else if (g < 0 && cp < 0) {
        dg = -j.charge_gpu_seconds;
        dc = -j.charge_cpu_seconds;
    } else {
        dg = g < 0 ? 0 : -g;
        dc = cp < 0 ? 0 : -cp;
    }
    if (dg == 0 && dc == 0) return -EALREADY;
    const char *kind = c->u.adjust.correct ? "correction" : "refund";
    store_job after;
    rc = store_job_adjust(r->st, j.id, kind, dg, dc, c->u.adjust.reason, who_actor(c), &after);
    if (rc < 0) return rc;
    rc = audit_add(
        r, who_actor(c), j.partner, c->u.adjust.correct ? "job.corrected" : "job.refunded",
        json_pack("{s:I,s:I,s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "job", (json_int_t)j.id, "slurm_job_id",
                  (json_int_t)j.slurm_job_id, "user", j.user, "period", j.period, "reason",
                  c->u.adjust.reason, "gpu_seconds", (json_int_t)dg, "cpu_seconds", (json_int_t)dc,
                  "charge_gpu_seconds", (json_int_t)after.charge_gpu_seconds, "charge_cpu_seconds",
                  (json_int_t)after.charge_cpu_seconds));
    if (rc < 0) return rc;
    if (policy_usage_adjust(r->pol, j.partner, j.period, dg, dc) < 0) r->engine_suspect = true;
    if (c->u.adjust.out) *c->u.adjust.out = after;
    return 0;
}

static int apply(registry *r, struct change *c)
{
    switch (c->kind) {
    case CH_SUBMIT:
        return apply_submit(r, c);
    case CH_CANCEL:
        return apply_cancel(r, c);
    case CH_DISPATCH_BEGIN:
        return apply_dispatch_begin(r, c);
    case CH_OUTCOMES:
        return apply_outcomes(r, c);
    case CH_SLURM:
        return apply_slurm(r, c);
    case CH_PARTNER_CREATE:
        return apply_partner(r, c, true);
    case CH_PARTNER_UPDATE:
        return apply_partner(r, c, false);
    case CH_USER_CREATE:
        return apply_user(r, c);
    case CH_USER_UPDATE:
        return apply_user_update(r, c);
    case CH_QUOTA_SET:
        return apply_quota(r, c);
    case CH_TOKEN_CREATE:
        return apply_token(r, c, true);
    case CH_TOKEN_REVOKE:
        return apply_token(r, c, false);
    case CH_AUDIT:
        return apply_audit(r, c);
    case CH_HOUSEKEEP:
        return apply_housekeep(r, c);
    case CH_ADJUST:
        return apply_adjust(r, c);
    case CH_ARRAY_CANCEL:
        return apply_array_cancel(r, c);
    }
    return -EINVAL;
}

/* Undoes what a change handed back to its caller when its batch did not commit. */
static void change_undo(struct change *c)
{
    if (c->kind == CH_SUBMIT) {
        free(c->u.submit->body);
        c->u.submit->body = NULL;
        c->u.submit->replayed = false;
    } else if (c->kind == CH_DISPATCH_BEGIN) {
        free(c->u.begin.jobs);
        c->u.begin.jobs = NULL;
        c->u.begin.n = 0;
    } else if (c->kind == CH_ARRAY_CANCEL) {
        free(c->u.acancel.in_slurm);
        c->u.acancel.in_slurm = NULL;
        c->u.acancel.n_slurm = c->u.acancel.n_now = 0;
    }
}

/* --- the committer -------------------------------------------------------------------------- */

static void health_set(registry *r, int rc, const char *what)
{
    pthread_mutex_lock(&r->health_mu);
    if (rc == 0) {
        if (r->health_rc != 0) LOG(LOG_INFO, "store: writes succeed again");
        r->health_rc = 0;
        r->health_why[0] = '\0';
    } else {
        if (r->health_rc == 0)
            LOG(LOG_ERROR, "store: %s failed (%s); changes are refused until it works again", what,
                strerror(-rc));
        r->health_rc = rc;
        snprintf(r->health_why, sizeof r->health_why, "the store cannot %s: %s", what,
                 rc == -ENOSPC ? "the disk is full" : strerror(-rc));
    }
    pthread_mutex_unlock(&r->health_mu);
}

/* Rebuilds the engine from the store (committed rows). Engine lock held. */
static void engine_rebuild(registry *r)
{
    char err[256];
    policy *fresh = engine_load(&r->cfg, r->st, err, sizeof err);
    if (fresh == NULL) {
        LOG(LOG_ERROR, "registry: cannot rebuild the policy engine from the store: %s", err);
        return;
    }
    int64_t *never = NULL;
    size_t n_never = 0;
    job_dependency_index *ix = depend_load(r, fresh, &never, &n_never, err, sizeof err);
    if (ix == NULL) {
        LOG(LOG_ERROR, "registry: cannot rebuild the policy engine from the store: %s", err);
        policy_free(fresh);
        return;
    }
    depend_swap(r, ix, never, n_never);
    policy_window_set(fresh, policy_window(r->pol));
    policy_free(r->pol);
    r->pol = fresh;
    LOG(LOG_WARN, "registry: policy engine rebuilt from the store");
}

static void run_batch(registry *r, struct change *list)
{
    pthread_mutex_lock(&r->eng_mu);
    r->batch_seq = 0;
    r->engine_suspect = false;
    bool touched = false;
    int rc = store_batch_begin(r->st);
    if (rc < 0) {
        for (struct change *c = list; c; c = c->next)
            c->rc = rc;
        pthread_mutex_unlock(&r->eng_mu);
        health_set(r, rc, "begin a transaction");
        return;
    }
    for (struct change *c = list; c; c = c->next) {
        /* the batch's last audit entry, to restore if this change is undone */
        int64_t seq0 = r->batch_seq;
        char hash0[STORE_HASH_HEX];
        memcpy(hash0, r->batch_hash, sizeof hash0);
        rc = store_change_begin(r->st);
        if (rc == 0) {
            int arc = apply(r, c);
            rc = store_change_end(r->st, arc);
            /* a change of many items may have moved the engine for items before the one that
             * failed, and a change whose savepoint would not release has moved it too */
            if ((arc < 0 && (c->kind == CH_OUTCOMES || c->kind == CH_SLURM)) ||
                (arc == 0 && rc < 0))
                r->engine_suspect = true;
        }
        if (rc != 0) {
            r->batch_seq = seq0;
            memcpy(r->batch_hash, hash0, sizeof hash0);
        }
        c->rc = rc;
        touched = true;
    }
    fault_point("commit.before");
    int64_t seq = r->batch_seq;
    char hash[STORE_HASH_HEX];
    memcpy(hash, r->batch_hash, sizeof hash);
    size_t nchanges = 0;
    for (struct change *c = list; c; c = c->next)
        nchanges++;
    int64_t t0 = metrics_now_us();
    rc = store_batch_commit(r->st);
    /* after the commit returned: a read that sees the old generation may see the new rows (its
     * cached answer is then stale at once), never the reverse */
    atomic_fetch_add(&r->generation, 1);
    metrics_store_commit(metrics_now_us() - t0, nchanges, rc < 0);
    if (rc < 0) {
        for (struct change *c = list; c; c = c->next) {
            if (c->rc == 0) change_undo(c);
            c->rc = rc;
        }
        if (touched) engine_rebuild(r);
        pthread_mutex_unlock(&r->eng_mu);
        health_set(r, rc, "commit");
        return;
    }
    if (r->engine_suspect) engine_rebuild(r);
    pthread_mutex_unlock(&r->eng_mu);
    /* the token table, before the callers hear of it: a revoked token or a disabled user's
     * never authenticates again once the call returns */
    bool tokens = false;
    for (struct change *c = list; c; c = c->next)
        tokens =
            tokens || (c->rc == 0 && (c->kind == CH_TOKEN_CREATE || c->kind == CH_TOKEN_REVOKE ||
                                      c->kind == CH_USER_UPDATE));
    if (tokens) {
        pthread_mutex_lock(&r->tok_mu);
        for (struct change *c = list; c; c = c->next) {
            if (c->rc != 0) continue;
            if (c->kind == CH_TOKEN_CREATE) {
                tok_insert(r, c->u.token.entry);
                c->u.token.entry = NULL;
            } else if (c->kind == CH_TOKEN_REVOKE) {
                tok_remove_id(r, c->u.token.id);
            } else if (c->kind == CH_USER_UPDATE) {
                tok_user_set(r, &c->u.who_rec.after);
            }
        }
        pthread_mutex_unlock(&r->tok_mu);
    }
    health_set(r, 0, NULL);
    if (seq > 0 && r->au != NULL && (rc = audit_head_sync(r->au, seq, hash)) < 0)
        LOG(LOG_ERROR, "audit: cannot write the head file (%s); the chain itself is committed",
            strerror(-rc));
    fault_point("commit.after");
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* While the store refuses writes (disk full): one small probe write at most every
 * PROBE_EVERY_MS; until one succeeds, changes fail at once with the store's error (no batch is
 * tried, so the engine is never touched). Returns 0 when the store takes writes. */
#define PROBE_EVERY_MS 250
static int degraded_check(registry *r, int64_t *last_probe)
{
    int rc = registry_health(r, NULL, 0);
    if (rc == 0) return 0;
    int64_t now = mono_ms();
    if (now - *last_probe < PROBE_EVERY_MS) return rc;
    *last_probe = now;
    rc = store_probe(r->st);
    if (rc == 0) health_set(r, 0, NULL);
    return rc;
}

static void *committer_main(void *arg)
{
    registry *r = arg;
    int64_t last_probe = 0;
    for (;;) {
        pthread_mutex_lock(&r->q_mu);
        while (r->head == NULL && !r->stopping) {
            if (registry_health(r, NULL, 0) == 0) {
                pthread_cond_wait(&r->q_cv, &r->q_mu);
                continue;
            }
            /* degraded and idle: wake up to probe, so that health recovers by itself */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += PROBE_EVERY_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&r->q_cv, &r->q_mu, &ts);
            if (r->head == NULL) {
                pthread_mutex_unlock(&r->q_mu);
                degraded_check(r, &last_probe);
                pthread_mutex_lock(&r->q_mu);
            }
        }
        if (r->head == NULL) {
            pthread_mutex_unlock(&r->q_mu);
            break;
        }
        struct change *list = r->head, *last = list;
        size_t n = 1;
        while (last->next != NULL && n < r->max_batch) {
            last = last->next;
            n++;
        }
        r->head = last->next;
        if (r->head == NULL) r->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&r->q_mu);

        int drc = degraded_check(r, &last_probe);
        if (drc < 0) {
            for (struct change *c = list; c; c = c->next)
                c->rc = drc;
        } else {
            run_batch(r, list);
        }

        /* Only the callers of this batch wake up, each on its own condition (a broadcast woke
         * every waiting caller at each batch). The signals go out under q_mu: a caller cannot
         * return, and end its condition's life, before the committer lets go of it. */
        pthread_mutex_lock(&r->q_mu);
        for (struct change *c = list, *next; c; c = next) {
            next = c->next;
            pthread_cond_t *w = c->waiter;
            c->done = true;
            if (w != NULL) pthread_cond_signal(w);
        }
        pthread_mutex_unlock(&r->q_mu);
    }
    return NULL;
}

/* Hands cs[0..n-1] to the committer together (they go into the same batch unless it is full),
 * without waiting. Returns 0 (then wait with changes_wait), or -ESHUTDOWN (nothing handed). */
static int changes_hand(registry *r, struct change **cs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cs[i]->done = false;
        cs[i]->waiter = NULL;
        cs[i]->next = i + 1 < n ? cs[i + 1] : NULL;
        cs[i]->rc = 0;
    }
    pthread_mutex_lock(&r->q_mu);
    if (r->stopping) {
        pthread_mutex_unlock(&r->q_mu);
        return -ESHUTDOWN;
    }
    r->callers++;
    if (r->tail)
        r->tail->next = cs[0];
    else
        r->head = cs[0];
    r->tail = cs[n - 1];
    pthread_cond_signal(&r->q_cv);
    pthread_mutex_unlock(&r->q_mu);
    return 0;
}

/* Waits until the last of the changes handed with changes_hand is done. Returns last->rc. */
static int changes_wait(registry *r, struct change *last)
{
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    pthread_mutex_lock(&r->q_mu);
    last->waiter = &cv;
    while (!last->done)
        pthread_cond_wait(&cv, &r->q_mu);
    last->waiter = NULL;
    int rc = last->rc;
    if (--r->callers == 0 && r->stopping) pthread_cond_broadcast(&r->done_cv);
    pthread_mutex_unlock(&r->q_mu);
    pthread_cond_destroy(&cv);
    return rc;
}

static int submit_changes(registry *r, struct change **cs, size_t n)
{
    int rc = changes_hand(r, cs, n);
    if (rc < 0) return rc;
    changes_wait(r, cs[n - 1]);
    return cs[0]->rc;
}

/* Hands `c` to the committer and waits until its batch is done. Returns c->rc. */
static int submit_change(registry *r, struct change *c)
{
    return submit_changes(r, &c, 1);
}

/* --- lifecycle ------------------------------------------------------------------------------ */

int registry_new(store *st, const registry_options *opt, registry **out, char *err, size_t errlen)
{
    int rc;
    registry *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->st = st;
    r->au = opt->audit;
    if (opt->policy)
        r->cfg = *opt->policy;
    else
        policy_config_defaults(&r->cfg);
    r->max_batch = opt->max_batch ? opt->max_batch : 1024;
    if ((rc = tok_load(r, err, errlen)) < 0) {
        free(r);
        return rc;
    }
    r->idem_keep = opt->idem_keep_seconds ? opt->idem_keep_seconds : 25 * 3600;
    r->pol = engine_load(&r->cfg, st, err, errlen);
    if (r->pol == NULL) {
        rc = -EINVAL;
        goto fail_engine;
    }
    r->dep_ix = depend_load(r, r->pol, &r->dep_never, &r->n_dep_never, err, errlen);
    if (r->dep_ix == NULL) {
        rc = -ENOMEM;
        goto fail_depend;
    }
    pthread_mutex_init(&r->eng_mu, NULL);
    pthread_mutex_init(&r->q_mu, NULL);
    pthread_mutex_init(&r->health_mu, NULL);
    pthread_mutex_init(&r->tok_mu, NULL);
    pthread_cond_init(&r->q_cv, NULL);
    pthread_cond_init(&r->done_cv, NULL);
    if ((rc = -pthread_create(&r->thread, NULL, committer_main, r)) < 0) {
        snprintf(err, errlen, "cannot start the committer thread: %s", strerror(-rc));
        goto fail_thread;
    }
    *out = r;
    return 0;
fail_thread:
    pthread_mutex_destroy(&r->tok_mu);
    pthread_cond_destroy(&r->done_cv);
    pthread_cond_destroy(&r->q_cv);
    pthread_mutex_destroy(&r->health_mu);
    pthread_mutex_destroy(&r->q_mu);
    pthread_mutex_destroy(&r->eng_mu);
    depend_swap(r, NULL, NULL, 0);
fail_depend:
    policy_free(r->pol);
fail_engine:
    tok_clear(r);
    free(r);
    return rc;
}

void registry_free(registry *r)
{
    if (r == NULL) return;
    pthread_mutex_lock(&r->q_mu);
    r->stopping = true;
    pthread_cond_signal(&r->q_cv);
    pthread_mutex_unlock(&r->q_mu);
    pthread_join(r->thread, NULL);
    pthread_mutex_lock(&r->q_mu); /* woken callers may still be leaving submit_change */
    while (r->callers > 0)
        pthread_cond_wait(&r->done_cv, &r->q_mu);
    pthread_mutex_unlock(&r->q_mu);
    pthread_cond_destroy(&r->done_cv);
    pthread_cond_destroy(&r->q_cv);
    pthread_mutex_destroy(&r->tok_mu);
    pthread_mutex_destroy(&r->health_mu);
    pthread_mutex_destroy(&r->q_mu);
    pthread_mutex_destroy(&r->eng_mu);
    depend_swap(r, NULL, NULL, 0);
    policy_free(r->pol);
    tok_clear(r);
    free(r);
}

int registry_token_check(registry *r, const char *hash_hex, int64_t now, store_user *out)
{
    if (r == NULL || hash_hex == NULL || strlen(hash_hex) >= STORE_HASH_HEX) return -ENOENT;
    int rc = -ENOENT;
    pthread_mutex_lock(&r->tok_mu);
    for (struct tok_entry *t = r->tok[tok_bucket_of(hash_hex, r->tok_nb)]; t; t = t->next) {
        if (!auth_hash_equal(t->hash, hash_hex)) continue;
        if (t->user.disabled)
            rc = -EACCES;
        else if (t->expires_at > 0 && now >= t->expires_at)
            rc = -EKEYEXPIRED;
        else
            rc = 0;
        if (out) *out = t->user;
        break;
    }
    pthread_mutex_unlock(&r->tok_mu);
    return rc;
}

uint64_t registry_generation(registry *r)
{
    return r ? atomic_load(&r->generation) : 0;
}

store *registry_store(registry *r)
{
    return r->st;
}

/* --- live reads ----------------------------------------------------------------------------- */

void registry_job_live(registry *r, int64_t id, int64_t now, registry_live *out)
{
    pthread_mutex_lock(&r->eng_mu);
    live_of(r, id, now, out);
    pthread_mutex_unlock(&r->eng_mu);
}

int registry_job_quote(registry *r, const policy_job *j, int64_t now, policy_verdict *v)
{
    pthread_mutex_lock(&r->eng_mu);
    int rc = policy_job_admit(r->pol, j, now, v);
    pthread_mutex_unlock(&r->eng_mu);
    return rc;
}

int registry_quota_usage(registry *r, const char *partner, const char *period, policy_quota *q,
                         int64_t *used_gpu_s, int64_t *held_gpu_s, int64_t *used_cpu_s,
                         int64_t *held_cpu_s)
{
    pthread_mutex_lock(&r->eng_mu);
    int rc = policy_quota_get(r->pol, partner, period, q, used_gpu_s, held_gpu_s, used_cpu_s,
                              held_cpu_s);
    pthread_mutex_unlock(&r->eng_mu);
    return rc;
}

int registry_gpu_weight(registry *r, const char *gpu_type)
{
    pthread_mutex_lock(&r->eng_mu);
    int w = policy_gpu_weight(r->pol, gpu_type);
    pthread_mutex_unlock(&r->eng_mu);
    return w;
}

size_t registry_queue_length(registry *r)
{
    pthread_mutex_lock(&r->eng_mu);
    size_t n = policy_queue_length(r->pol);
    pthread_mutex_unlock(&r->eng_mu);
    return n;
}

size_t registry_partner_stats(registry *r, int64_t now, policy_partner_stats *out, size_t max)
{
    pthread_mutex_lock(&r->eng_mu);
    size_t n = policy_partner_stats_get(r->pol, now, out, max);
    pthread_mutex_unlock(&r->eng_mu);
    return n;
}

int registry_health(registry *r, char *why, size_t len)
{
    pthread_mutex_lock(&r->health_mu);
    int rc = r->health_rc;
    if (why && len) snprintf(why, len, "%s", r->health_why);
    pthread_mutex_unlock(&r->health_mu);
    return rc;
}

int registry_window_set(registry *r, int window)
{
    pthread_mutex_lock(&r->eng_mu);
    int rc = policy_window_set(r->pol, window);
    pthread_mutex_unlock(&r->eng_mu);
    return rc;
}

/* --- changes -------------------------------------------------------------------------------- */

int registry_job_submit(registry *r, const registry_actor *who, registry_submit *s)
{
    struct change c = {.kind = CH_SUBMIT, .who = who, .u.submit = s};
    s->replayed = false;
    s->status = 0;
    s->body = NULL;
    memset(&s->verdict, 0, sizeof s->verdict);
    return submit_change(r, &c);
}

int registry_job_cancel(registry *r, const registry_actor *who, int64_t id, bool *now_cancelled,
                        store_job *out)
{
    struct change c = {.kind = CH_CANCEL, .who = who};
    c.u.cancel.id = id;
    c.u.cancel.now_cancelled = now_cancelled;
    c.u.cancel.out = out;
    return submit_change(r, &c);
}

int registry_job_array_cancel(registry *r, const registry_actor *who, int64_t array_job_id,
                              size_t *n_now, int64_t **in_slurm, size_t *n_slurm)
{
    struct change c = {.kind = CH_ARRAY_CANCEL, .who = who};
    c.u.acancel.id = array_job_id;
    int rc = submit_change(r, &c);
    *n_now = rc == 0 ? c.u.acancel.n_now : 0;
    *n_slurm = rc == 0 ? c.u.acancel.n_slurm : 0;
    *in_slurm = rc == 0 ? c.u.acancel.in_slurm : NULL;
    if (rc != 0) free(c.u.acancel.in_slurm);
    return rc;
}

int registry_dispatch_begin(registry *r, int64_t now, size_t max, store_job **out, size_t *n)
{
    struct change c = {.kind = CH_DISPATCH_BEGIN};
    *out = NULL;
    *n = 0;
    if (max == 0) return 0;
    c.u.begin.now = now;
    c.u.begin.max = max;
    int rc = submit_change(r, &c);
    if (rc < 0) return rc;
    *out = c.u.begin.jobs;
    *n = c.u.begin.n;
    return 0;
}

struct registry_step {
    struct change rec, begin;
    struct change *cs[2];
    size_t k;
    int handed; /* 0, or -ESHUTDOWN */
};

int registry_dispatch_step_start(registry *r, registry_outcome *o, size_t n_out, int64_t now,
                                 size_t max, registry_step **out)
{
    registry_step *t = calloc(1, sizeof *t);
    if (t == NULL) return -ENOMEM;
    t->rec.kind = CH_OUTCOMES;
    t->rec.u.outcomes.o = o;
    t->rec.u.outcomes.n = n_out;
    t->begin.kind = CH_DISPATCH_BEGIN;
    t->begin.u.begin.now = now;
    t->begin.u.begin.max = max;
    if (n_out > 0) t->cs[t->k++] = &t->rec;
    if (max > 0) t->cs[t->k++] = &t->begin;
    if (t->k > 0) t->handed = changes_hand(r, t->cs, t->k);
    *out = t;
    return 0;
}

int registry_dispatch_step_finish(registry *r, registry_step *t, store_job **out, size_t *n,
                                  int *outcomes_rc)
{
    *out = NULL;
    *n = 0;
    *outcomes_rc = 0;
    int rc = t->handed;
    if (t->k > 0 && rc == 0) changes_wait(r, t->cs[t->k - 1]);
    if (rc == 0 && t->rec.u.outcomes.n > 0) *outcomes_rc = t->rec.rc;
    if (rc < 0) *outcomes_rc = rc;
    if (rc == 0 && t->begin.u.begin.max > 0) {
        rc = t->begin.rc;
        if (rc == 0) {
            *out = t->begin.u.begin.jobs;
            *n = t->begin.u.begin.n;
        }
    }
    free(t);
    return rc;
}

int registry_dispatch_step(registry *r, registry_outcome *o, size_t n_out, int64_t now, size_t max,
                           store_job **out, size_t *n, int *outcomes_rc)
{
    registry_step *t;
    int rc = registry_dispatch_step_start(r, o, n_out, now, max, &t);
    if (rc < 0) {
        *out = NULL;
        *n = 0;
        *outcomes_rc = rc;
        return rc;
    }
    return registry_dispatch_step_finish(r, t, out, n, outcomes_rc);
}

int registry_dispatch_outcomes(registry *r, registry_outcome *o, size_t n)
{
    if (n == 0) return 0;
    struct change c = {.kind = CH_OUTCOMES};
    c.u.outcomes.o = o;
    c.u.outcomes.n = n;
    return submit_change(r, &c);
}

int registry_slurm_changes(registry *r, registry_slurm_change *sc, size_t n)
{
    if (n == 0) return 0;
    struct change c = {.kind = CH_SLURM};
    c.u.slurm.c = sc;
    c.u.slurm.n = n;
    return submit_change(r, &c);
}

static int partner_change(registry *r, enum change_kind kind, const registry_actor *who,
                          const char *name, const char *description, int share_weight,
                          store_partner *out)
{
    struct change c = {.kind = kind, .who = who};
    c.u.who_rec.name = name;
    c.u.who_rec.description = description;
    c.u.who_rec.share_weight = share_weight;
    c.u.who_rec.pout = out;
    return submit_change(r, &c);
}

int registry_partner_create(registry *r, const registry_actor *who, const char *name,
                            const char *description, int share_weight, store_partner *out)
{
    return partner_change(r, CH_PARTNER_CREATE, who, name, description, share_weight, out);
}

int registry_partner_update(registry *r, const registry_actor *who, const char *name,
                            const char *description, int share_weight, store_partner *out)
{
    return partner_change(r, CH_PARTNER_UPDATE, who, name, description, share_weight, out);
}

int registry_user_create(registry *r, const registry_actor *who, const char *name,
                         const char *partner, const char *unix_user, const char *role,
                         const char *category, store_user *out)
{
    struct change c = {.kind = CH_USER_CREATE, .who = who};
    c.u.who_rec.name = name;
    c.u.who_rec.partner = partner;
    c.u.who_rec.unix_user = unix_user;
    c.u.who_rec.role = role;
    c.u.who_rec.category = category;
    c.u.who_rec.uout = out;
    return submit_change(r, &c);
}

int registry_user_update(registry *r, const registry_actor *who, const char *name,
                         const char *unix_user, int disabled, store_user *out)
{
    if (name == NULL || disabled < -1 || disabled > 1) return -EINVAL;
    struct change c = {.kind = CH_USER_UPDATE, .who = who};
    c.u.who_rec.name = name;
    c.u.who_rec.unix_user = unix_user;
    c.u.who_rec.disabled = disabled;
    c.u.who_rec.uout = out;
    return submit_change(r, &c);
}

int registry_quota_set(registry *r, const registry_actor *who, const store_quota *q)
{
    struct change c = {.kind = CH_QUOTA_SET, .who = who, .u.quota = q};
    return submit_change(r, &c);
}

int registry_token_create(registry *r, const registry_actor *who, int64_t user_id,
                          const char *user_partner, const char *hash_hex, const char *label,
                          int64_t *id)
{
    return registry_token_issue(r, who, user_id, user_partner, hash_hex, label, 0, id);
}

int registry_token_issue(registry *r, const registry_actor *who, int64_t user_id,
                         const char *user_partner, const char *hash_hex, const char *label,
                         int64_t expires_at, int64_t *id)
{
    if (hash_hex == NULL || strlen(hash_hex) >= STORE_HASH_HEX || expires_at < 0) return -EINVAL;
    struct change c = {.kind = CH_TOKEN_CREATE, .who = who};
    c.u.token.user_id = user_id;
    c.u.token.partner = user_partner;
    c.u.token.hash = hash_hex;
    c.u.token.label = label;
    c.u.token.expires_at = expires_at;
    c.u.token.id_out = id;
    c.u.token.entry = calloc(1, sizeof *c.u.token.entry);
    if (c.u.token.entry == NULL) return -ENOMEM;
    int rc = submit_change(r, &c);
    free(c.u.token.entry); /* NULL once the table took it */
    return rc;
}

int registry_token_revoke(registry *r, const registry_actor *who, int64_t id)
{
    struct change c = {.kind = CH_TOKEN_REVOKE, .who = who};
    c.u.token.id = id;
    return submit_change(r, &c);
}

int registry_audit(registry *r, const registry_actor *who, const char *action,
                   const char *details_json)
{
    struct change c = {.kind = CH_AUDIT, .who = who};
    c.u.audit.action = action;
    c.u.audit.details = details_json;
    return submit_change(r, &c);
}

int registry_housekeep(registry *r, int64_t now)
{
    struct change c = {.kind = CH_HOUSEKEEP, .u.housekeep_now = now};
    int rc = submit_change(r, &c);
    if (rc < 0) return rc;
    return store_checkpoint(r->st);
}

static int job_adjust(registry *r, const registry_actor *who, int64_t id, bool correct,
                      int64_t gpu_seconds, int64_t cpu_seconds, const char *reason, store_job *out)
{
    if (reason == NULL || reason[0] == '\0' || strlen(reason) >= STORE_REASON_MAX ||
        gpu_seconds < -1 || cpu_seconds < -1 || (correct && gpu_seconds < 0))
        return -EINVAL;
    struct change c = {.kind = CH_ADJUST, .who = who};
    c.u.adjust.id = id;
    c.u.adjust.correct = correct;
    c.u.adjust.gpu_seconds = gpu_seconds;
    c.u.adjust.cpu_seconds = cpu_seconds;
    c.u.adjust.reason = reason;
    c.u.adjust.out = out;
    return submit_change(r, &c);
}

int registry_job_refund(registry *r, const registry_actor *who, int64_t id, int64_t gpu_seconds,
                        int64_t cpu_seconds, const char *reason, store_job *out)
{
    return job_adjust(r, who, id, false, gpu_seconds, cpu_seconds, reason, out);
}

int registry_job_correct(registry *r, const registry_actor *who, int64_t id, int64_t gpu_seconds,
                         int64_t cpu_seconds, const char *reason, store_job *out)
{
    return job_adjust(r, who, id, true, gpu_seconds, cpu_seconds, reason, out);
}

/* --- dependencies: reads --- */

int registry_job_dependency_text(registry *r, int64_t id, char *buf, size_t len)
{
    if (len > 0) buf[0] = '\0';
    store_dependency *rows = NULL;
    size_t n = 0;
    int rc = store_dependency_list(r->st, id, &rows, &n);
    if (rc < 0 || n == 0) {
        free(rows);
        return rc;
    }
    job_dependency d = {.n = 0};
    for (size_t i = 0; i < n && d.n < JOB_DEPENDENCY_MAX; i++) {
        job_dependency_kind k;
        if (job_dependency_kind_parse(rows[i].kind, &k) < 0) continue;
        if (k == JOB_DEP_SINGLETON && rows[i].prereq_id != 0) continue; /* its expansion */
        d.items[d.n].kind = k;
        d.items[d.n].id = rows[i].prereq_id;
        d.n++;
    }
    free(rows);
    rc = job_dependency_format(&d, buf, len);
    return rc < 0 ? rc : 0;
}

int registry_job_slurm_dependency(registry *r, int64_t id, char *buf, size_t len, char *why,
                                  size_t wlen)
{
    store_dependency *rows = NULL;
    size_t n = 0, at = 0;
    if (len > 0) buf[0] = '\0';
    int rc = store_dependency_list(r->st, id, &rows, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        job_dependency_kind k;
        store_job p;
        if (rows[i].prereq_id <= 0 || job_dependency_kind_parse(rows[i].kind, &k) < 0) continue;
        if (k == JOB_DEP_SINGLETON) continue; /* Antenna enforced it before the release */
        if ((rc = store_job_get(r->st, rows[i].prereq_id, &p)) < 0) break;
        switch (
            job_dependency_check(k, p.state, store_state_terminal(p.state), p.slurm_job_id > 0)) {
        case JOB_DEP_MET:
            break;
        case JOB_DEP_NEVER:
            job_dependency_never_reason(k, p.id, p.state, why, wlen);
            rc = -ECANCELED;
            break;
        case JOB_DEP_WAIT:
            snprintf(why, wlen, "waiting for job %" PRId64 " (dependency %s)", p.id, rows[i].kind);
            rc = -EAGAIN;
            break;
        case JOB_DEP_PASS: {
            int w = snprintf(buf + at, len > at ? len - at : 0, "%s%s:%" PRId64, at ? "," : "",
                             rows[i].kind, p.slurm_job_id);
            if (w < 0 || (size_t)w >= (len > at ? len - at : 0)) {
                snprintf(why, wlen, "the dependency is too long for Slurm");
                rc = -ENOSPC;
            } else {
                at += (size_t)w;
            }
            break;
        }
        }
    }
    free(rows);
    if (rc < 0 && len > 0) buf[0] = '\0';
    return rc;
}
