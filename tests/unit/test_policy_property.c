/* test_policy_property.c - randomized property test of policies/policy against a shadow model.
 *
 * Thousands of random operations (submit = admit + enqueue, pick + dispatch, start, finish with a
 * random elapsed time, cancel, requeue, quota and share-weight changes, months rolling over) drive
 * the engine and a shadow model written independently here (its own ledger, counters, limits,
 * fair-share decay and priority formula). After every step the test checks: the ledger matches
 * (every hold released exactly once), used + held <= budget, used + held + left = budget, caps and
 * the window are never exceeded by jobs in Slurm, every queued job's reason is the one the model
 * expects, priorities match the documented formula, and pick is right: when it returns a job, no
 * dispatchable job ranks strictly above it; when it returns -ENOENT, every user's top job is held
 * back by a real limit of its own (or the window is full). The seed is fixed and printed; set
 * ANTENNA_SEED to replay another. Never touches the network, the disk or Slurm.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

#define NP           5
#define NU           12
#define MAXJ         20000
#define MAXL         64
#define START        1792972800 /* 2026-10-26 00:00:00 UTC: the run crosses into 2026-11 */
#define DEFAULT_SEED 20261115ULL

typedef enum { S_QUEUED = 1, S_PENDING, S_RUNNING, S_DONE } s_state;

typedef struct {
    char name[24];
    int weight;
    double usage; /* fair-share usage at usage_at */
    int64_t usage_at;
    int64_t gpus, jobs; /* in Slurm */
    int queued;
} s_partner;

typedef struct {
    char name[24];
    int partner;
    policy_category cat;
    int64_t gpus; /* in Slurm */
} s_user;

typedef struct {
    int64_t id;
    int user, partner; /* partner: the one it counts against (users never move here) */
    int gpus, cpus, minutes, weight;
    int64_t sub;
    s_state st;
    char period[8];
    int64_t hold_gpu, hold_cpu;
} s_job;

typedef struct {
    int partner;
    char period[8];
    bool set;
    policy_quota q;
    int64_t used_gpu, held_gpu, used_cpu, held_cpu;
} s_ledger;

typedef struct {
    const char *name;
    int steps;
    int window;
    double halflife_hours;
} scenario;

typedef struct {
    uint64_t seed, rng;
    int step;
    policy_config cfg;
    policy *p;
    int64_t now;
    char cur[8];
    s_partner pa[NP];
    s_user us[NU];
    s_job *jobs;
    int n_jobs;
    s_ledger led[MAXL];
    int n_led;
    int64_t pending;
    int queued;
    long picks, dispatches, finishes, refusals, enoent_checks;
    long reasons_seen[7], codes_seen[7];
} sim;

static const char *const all_reasons[7] = {
    POLICY_REASON_CLUSTER_FULL, POLICY_REASON_PARTNER_GPU,      POLICY_REASON_PARTNER_JOBS,
    POLICY_REASON_USER_GPU,     POLICY_REASON_BUDGET_EXHAUSTED, POLICY_REASON_BUDGET_HELD,
    POLICY_REASON_PRIORITY};
static const char *const all_codes[7] = {
    "unknown_gpu_type", "walltime_limit",  "partner_gpu_limit",  "user_gpu_limit",
    "queued_limit",     "budget_exceeded", "cpu_budget_exceeded"};

/* Counts `name` in `seen` by its index in `names`. */
static void count_seen(const char *const *names, long *seen, const char *name)
{
    for (int i = 0; i < 7; i++)
        if (strcmp(names[i], name) == 0) seen[i]++;
}

#define CHECK(s, cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            char m_[512];                                                                          \
            snprintf(m_, sizeof m_, __VA_ARGS__);                                                  \
            fail_msg("seed %" PRIu64 " step %d: %s", (s)->seed, (s)->step, m_);                    \
        }                                                                                          \
    } while (0)

/* ---- randomness and arithmetic ---- */

static uint64_t rnd(sim *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int64_t rr(sim *s, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd(s) % (uint64_t)(hi - lo + 1));
}

static bool chance(sim *s, int percent)
{
    return rr(s, 1, 100) <= percent;
}

/* 2^x by halving/doubling and the exponential series (the tests do not link libm). */
static double two_to(double x)
{
    double r = 1;
    while (x < -1) {
        r *= 0.5;
        x += 1;
    }
    while (x > 1) {
        r *= 2;
        x -= 1;
    }
    double y = x * 0.69314718055994530942, term = 1, sum = 1;
    for (int k = 1; k < 30; k++) {
        term *= y / k;
        sum += term;
    }
    return r * sum;
}

static double dabs(double x)
{
    return x < 0 ? -x : x;
}

static int64_t cpu_cost(int cpus, int64_t seconds)
{
    return (int64_t)cpus * seconds;
}

/* ---- the shadow model ---- */

static s_ledger *ledger(sim *s, int partner, const char *period, bool create)
{
    for (int i = 0; i < s->n_led; i++)
        if (s->led[i].partner == partner && strcmp(s->led[i].period, period) == 0)
            return &s->led[i];
    if (!create) return NULL;
    CHECK(s, s->n_led < MAXL, "too many ledger entries");
    s_ledger *l = &s->led[s->n_led++];
    memset(l, 0, sizeof *l);
    l->partner = partner;
    memcpy(l->period, period, 8);
    policy_quota_none(&l->q);
    return l;
}

static policy_quota quota_now(sim *s, int partner)
{
    s_ledger *l = ledger(s, partner, s->cur, false);
    policy_quota q;
    if (l != NULL && l->set) return l->q;
    policy_quota_none(&q);
    return q;
}

static bool limited(int64_t v)
{
    return v != POLICY_UNLIMITED;
}

/* The shadow's own limit check for a queued job (NULL: nothing of its own holds it back). */
static const char *s_block(sim *s, const s_job *j)
{
    const s_partner *pa = &s->pa[j->partner];
    policy_quota q = quota_now(s, j->partner);
    s_ledger *l = ledger(s, j->partner, s->cur, false);
    int64_t ug = l ? l->used_gpu : 0, hg = l ? l->held_gpu : 0;
    int64_t uc = l ? l->used_cpu : 0, hc = l ? l->held_cpu : 0;
    int64_t cg = policy_cost(j->gpus, (int64_t)j->minutes * 60, j->weight);
    int64_t cc = cpu_cost(j->cpus, (int64_t)j->minutes * 60);
    if (limited(q.max_running_jobs) && pa->jobs >= q.max_running_jobs)
        return POLICY_REASON_PARTNER_JOBS;
    if (limited(q.max_gpus) && pa->gpus + j->gpus > q.max_gpus) return POLICY_REASON_PARTNER_GPU;
    if (limited(q.user_max_gpus) && s->us[j->user].gpus + j->gpus > q.user_max_gpus)
        return POLICY_REASON_USER_GPU;
    if ((limited(q.gpu_seconds) && cg > q.gpu_seconds - ug) ||
        (limited(q.cpu_seconds) && cc > q.cpu_seconds - uc))
        return POLICY_REASON_BUDGET_EXHAUSTED;
    if ((limited(q.gpu_seconds) && cg > q.gpu_seconds - ug - hg) ||
        (limited(q.cpu_seconds) && cc > q.cpu_seconds - uc - hc))
        return POLICY_REASON_BUDGET_HELD;
    return NULL;
}

/* The documented formula, from the shadow's own fair-share usage. */
static double s_priority(sim *s, const s_job *j)
{
    double u[NP], ut = 0, wt = 0;
    double halflife = s->cfg.fairshare_halflife_hours * 3600.0;
    for (int i = 0; i < NP; i++) {
        u[i] = s->pa[i].usage * two_to(-(double)(s->now - s->pa[i].usage_at) / halflife);
        ut += u[i];
        wt += s->pa[i].weight;
    }
    double f = ut > 0 ? two_to(-(u[j->partner] / ut) / (s->pa[j->partner].weight / wt)) : 1.0;
    const s_user *us = &s->us[j->user];
    return s->cfg.weight_fairshare * f +
           s->cfg.weight_category * s->cfg.category_factor_milli[us->cat] / 1000.0 +
           s->cfg.weight_age * ((double)(s->now - j->sub) / 3600.0) / s->cfg.age_unit_hours +
           s->cfg.weight_size * (double)j->gpus / s->cfg.max_gpus_per_job;
}

static void s_charge_usage(sim *s, int partner, int64_t amount)
{
    s_partner *pa = &s->pa[partner];
    double halflife = s->cfg.fairshare_halflife_hours * 3600.0;
    pa->usage = pa->usage * two_to(-(double)(s->now - pa->usage_at) / halflife) + (double)amount;
    pa->usage_at = s->now;
}

static s_job *s_find_state(sim *s, s_state st, bool any_in_slurm)
{
    int n = 0;
    for (int i = 0; i < s->n_jobs; i++) {
        s_state x = s->jobs[i].st;
        if (x == st || (any_in_slurm && (x == S_PENDING || x == S_RUNNING))) n++;
    }
    if (n == 0) return NULL;
    int k = (int)rr(s, 0, n - 1);
    for (int i = 0; i < s->n_jobs; i++) {
        s_state x = s->jobs[i].st;
        if (x == st || (any_in_slurm && (x == S_PENDING || x == S_RUNNING)))
            if (k-- == 0) return &s->jobs[i];
    }
    return NULL;
}

static s_job *s_job_by_id(sim *s, int64_t id)
{
    return (id >= 1 && id <= s->n_jobs) ? &s->jobs[id - 1] : NULL;
}

/* ---- quotas ---- */

/* A random quota for (partner, period) that never puts a limit below what jobs in Slurm and the
 * ledger already use, so that the invariants stay checkable after every step. */
static void random_quota(sim *s, int partner, const char *period)
{
    s_ledger *l = ledger(s, partner, period, true);
    const s_partner *pa = &s->pa[partner];
    int64_t user_max = 0;
    for (int i = 0; i < NU; i++)
        if (s->us[i].partner == partner && s->us[i].gpus > user_max) user_max = s->us[i].gpus;
    policy_quota q;
    q.gpu_seconds =
        chance(s, 20) ? POLICY_UNLIMITED : l->used_gpu + l->held_gpu + rr(s, 0, 60) * 1800;
    q.cpu_seconds =
        chance(s, 40) ? POLICY_UNLIMITED : l->used_cpu + l->held_cpu + rr(s, 0, 60) * 3600;
    q.max_gpus = chance(s, 30) ? POLICY_UNLIMITED : (int)(pa->gpus + rr(s, 0, 6));
    q.max_running_jobs = chance(s, 40) ? POLICY_UNLIMITED : (int)(pa->jobs + rr(s, 0, 3));
    q.max_queued_jobs = chance(s, 50) ? POLICY_UNLIMITED : (int)rr(s, 0, 25);
    q.max_walltime_minutes = chance(s, 50) ? POLICY_UNLIMITED : (int)rr(s, 30, 240);
    q.user_max_gpus = chance(s, 40) ? POLICY_UNLIMITED : (int)(user_max + rr(s, 0, 4));
    CHECK(s, policy_quota_set(s->p, pa->name, period, &q) == 0, "quota_set");
    l->q = q;
    l->set = true;
}

/* ---- operations ---- */

static void op_submit(sim *s)
{
    static const char *const types[] = {"", "h100", "l40s", "a100"};
    if (s->n_jobs >= MAXJ || s->queued > 150) return;
    int u = (int)rr(s, 0, NU - 1);
    policy_job j;
    memset(&j, 0, sizeof j);
    j.id = s->n_jobs + 1;
    snprintf(j.user, sizeof j.user, "%s", s->us[u].name);
    j.gpus = (int)rr(s, 0, 4);
    int t = chance(s, 3) ? 3 : (int)rr(s, 0, 2);
    snprintf(j.gpu_type, sizeof j.gpu_type, "%s", types[t]);
    j.cpus = (int)rr(s, 1, 4);
    j.time_minutes = (int)rr(s, 1, 240);
    j.submitted_at = s->now - rr(s, 0, 600);
    int weight = policy_gpu_weight(s->p, j.gpu_type);

    /* the shadow's verdict, in the documented order */
    int partner = s->us[u].partner;
    policy_quota q = quota_now(s, partner);
    s_ledger *l = ledger(s, partner, s->cur, false);
    int64_t left_gpu = q.gpu_seconds - (l ? l->used_gpu + l->held_gpu : 0);
    int64_t left_cpu = q.cpu_seconds - (l ? l->used_cpu + l->held_cpu : 0);
    int64_t cg = policy_cost(j.gpus, (int64_t)j.time_minutes * 60, weight < 0 ? 1000 : weight);
    int64_t cc = cpu_cost(j.cpus, (int64_t)j.time_minutes * 60);
    const char *want = "";
    if (j.gpus > 0 && weight < 0)
        want = "unknown_gpu_type";
    else if (limited(q.max_walltime_minutes) && j.time_minutes > q.max_walltime_minutes)
        want = "walltime_limit";
    else if (limited(q.max_gpus) && j.gpus > q.max_gpus)
        want = "partner_gpu_limit";
    else if (limited(q.user_max_gpus) && j.gpus > q.user_max_gpus)
        want = "user_gpu_limit";
    else if (limited(q.max_queued_jobs) && s->pa[partner].queued >= q.max_queued_jobs)
        want = "queued_limit";
    else if (limited(q.gpu_seconds) && cg > left_gpu)
        want = "budget_exceeded";
    else if (limited(q.cpu_seconds) && cc > left_cpu)
        want = "cpu_budget_exceeded";

    policy_verdict v;
    CHECK(s, policy_job_admit(s->p, &j, s->now, &v) == 0, "admit failed");
    CHECK(s, strcmp(v.code, want) == 0, "admit code \"%s\", model says \"%s\"", v.code, want);
    CHECK(s, v.admitted == (want[0] == '\0'), "admitted flag");
    CHECK(s, strcmp(v.period, s->cur) == 0, "verdict period");
    if (!v.admitted) {
        CHECK(s, v.message[0] != '\0', "refusal without a message");
        count_seen(all_codes, s->codes_seen, v.code);
        s->refusals++;
        return;
    }
    CHECK(s, v.max_cost_gpu_seconds == cg && v.max_cost_cpu_seconds == cc, "quote costs");
    CHECK(s, v.budget_left_gpu_seconds == (limited(q.gpu_seconds) ? left_gpu : POLICY_UNLIMITED),
          "quote left %" PRId64 ", model %" PRId64, v.budget_left_gpu_seconds, left_gpu);
    CHECK(s, v.queue_position >= 1 && v.queue_position <= (size_t)s->queued + 1, "position");
    size_t ahead = 0; /* the quote counts every queued job of higher or equal priority */
    for (int k = 0; k < s->n_jobs; k++)
        if (s->jobs[k].st == S_QUEUED &&
            policy_job_priority(s->p, s->jobs[k].id, s->now) >= v.priority - 1e-6)
            ahead++;
    CHECK(s, v.queue_position == ahead + 1, "position %zu, brute force %zu", v.queue_position,
          ahead + 1);
    CHECK(s, policy_job_enqueue(s->p, &j) == 0, "enqueue");

    s_job *sj = &s->jobs[s->n_jobs++];
    memset(sj, 0, sizeof *sj);
    sj->id = j.id;
    sj->user = u;
    sj->partner = partner;
    sj->gpus = j.gpus;
    sj->cpus = j.cpus;
    sj->minutes = j.time_minutes;
    sj->weight = weight < 0 ? 1000 : weight;
    sj->sub = j.submitted_at;
    sj->st = S_QUEUED;
    s->pa[partner].queued++;
    s->queued++;
}

static void s_to_slurm(sim *s, s_job *j, const char *period, int64_t hg, int64_t hc, bool running)
{
    s_ledger *l = ledger(s, j->partner, period, true);
    l->held_gpu += hg;
    l->held_cpu += hc;
    j->hold_gpu = hg;
    j->hold_cpu = hc;
    memcpy(j->period, period, 8);
    j->st = running ? S_RUNNING : S_PENDING;
    s->pa[j->partner].gpus += j->gpus;
    s->pa[j->partner].jobs++;
    s->us[j->user].gpus += j->gpus;
    if (!running) s->pending++;
}

static void s_from_slurm(sim *s, s_job *j)
{
    s_ledger *l = ledger(s, j->partner, j->period, true);
    l->held_gpu -= j->hold_gpu;
    l->held_cpu -= j->hold_cpu;
    CHECK(s, l->held_gpu >= 0 && l->held_cpu >= 0, "model released a hold twice");
    if (j->st == S_PENDING) s->pending--;
    s->pa[j->partner].gpus -= j->gpus;
    s->pa[j->partner].jobs--;
    s->us[j->user].gpus -= j->gpus;
    j->hold_gpu = j->hold_cpu = 0;
}

static void op_dispatch_round(sim *s)
{
    for (int n = 0; n < 20; n++) {
        int64_t id, hg, hc;
        char period[8];
        if (policy_pick(s->p, s->now, &id, &hg, &hc, period) < 0) return;
        s_job *j = s_job_by_id(s, id);
        CHECK(s, j != NULL && j->st == S_QUEUED, "picked job %" PRId64 " is not queued", id);
        CHECK(s, hg == policy_cost(j->gpus, (int64_t)j->minutes * 60, j->weight), "gpu hold");
        CHECK(s, hc == cpu_cost(j->cpus, (int64_t)j->minutes * 60), "cpu hold");
        CHECK(s, strcmp(period, s->cur) == 0, "pick period");
        CHECK(s, policy_job_dispatched(s->p, id, s->now) == 0, "dispatched");
        s->pa[j->partner].queued--;
        s->queued--;
        s_to_slurm(s, j, period, hg, hc, false);
        s->dispatches++;
    }
}

static void op_start(sim *s)
{
    s_job *j = s_find_state(s, S_PENDING, false);
    if (j == NULL) return;
    CHECK(s, policy_job_started(s->p, j->id) == 0, "started");
    j->st = S_RUNNING;
    s->pending--;
}

static void op_finish(sim *s)
{
    s_job *j = s_find_state(s, 0, true);
    if (j == NULL) return;
    int64_t limit = (int64_t)j->minutes * 60, elapsed = 0;
    if (j->st == S_RUNNING) elapsed = chance(s, 5) ? limit + rr(s, 1, 300) : rr(s, 0, limit);
    int64_t billed = elapsed > limit ? limit : elapsed;
    int64_t want_g = policy_cost(j->gpus, billed, j->weight), want_c = cpu_cost(j->cpus, billed);
    int64_t cg = -1, cc = -1;
    char period[8] = "";
    CHECK(s, policy_job_finished(s->p, j->id, elapsed, s->now, &cg, &cc, period) == 0, "finish");
    CHECK(s, cg == want_g && cc == want_c, "charge %" PRId64 "/%" PRId64 ", model %" PRId64, cg, cc,
          want_g);
    CHECK(s, strcmp(period, j->period) == 0, "charge period");
    CHECK(s, cg <= j->hold_gpu && cc <= j->hold_cpu, "charge above the hold");
    s_ledger *l = ledger(s, j->partner, j->period, true);
    s_from_slurm(s, j);
    l->used_gpu += cg;
    l->used_cpu += cc;
    if (cg > 0) s_charge_usage(s, j->partner, cg);
    j->st = S_DONE;
    CHECK(s, policy_job_finished(s->p, j->id, 0, s->now, &cg, &cc, period) == -ENOENT,
          "finished twice");
    s->finishes++;
}

static void op_cancel(sim *s)
{
    s_job *j = s_find_state(s, S_QUEUED, false);
    if (j == NULL) return;
    CHECK(s, policy_job_dequeue(s->p, j->id) == 0, "dequeue");
    CHECK(s, policy_job_reason(s->p, j->id, s->now) == NULL, "reason of a cancelled job");
    j->st = S_DONE;
    s->pa[j->partner].queued--;
    s->queued--;
}

static void op_requeue(sim *s)
{
    s_job *j = s_find_state(s, S_PENDING, false);
    if (j == NULL) return;
    CHECK(s, policy_job_requeue(s->p, j->id) == 0, "requeue");
    s_from_slurm(s, j);
    j->st = S_QUEUED;
    s->pa[j->partner].queued++;
    s->queued++;
}

static void op_weight(sim *s)
{
    int i = (int)rr(s, 0, NP - 1);
    s->pa[i].weight = (int)rr(s, 1, 4);
    CHECK(s, policy_partner_set(s->p, s->pa[i].name, s->pa[i].weight) == 0, "partner_set");
}

static void advance(sim *s)
{
    char was[8];
    memcpy(was, s->cur, 8);
    s->now += rr(s, 0, 700);
    policy_period_of(s->now, s->cur);
    if (strcmp(was, s->cur) != 0)
        for (int i = 0; i < NP; i++)
            if (chance(s, 80)) random_quota(s, i, s->cur); /* else: never set for this month */
}

/* ---- invariants ---- */

static void check_ledger(sim *s)
{
    for (int i = 0; i < s->n_led; i++) {
        s_ledger *l = &s->led[i];
        policy_quota q;
        int64_t ug, hg, uc, hc;
        CHECK(s,
              policy_quota_get(s->p, s->pa[l->partner].name, l->period, &q, &ug, &hg, &uc, &hc) ==
                  0,
              "quota_get");
        CHECK(s, ug == l->used_gpu && hg == l->held_gpu && uc == l->used_cpu && hc == l->held_cpu,
              "%s %s: engine used/held %" PRId64 "/%" PRId64 " cpu %" PRId64 "/%" PRId64
              ", model %" PRId64 "/%" PRId64 " cpu %" PRId64 "/%" PRId64,
              s->pa[l->partner].name, l->period, ug, hg, uc, hc, l->used_gpu, l->held_gpu,
              l->used_cpu, l->held_cpu);
        if (limited(q.gpu_seconds))
            CHECK(s, ug + hg <= q.gpu_seconds, "%s %s: used + held over the GPU budget",
                  s->pa[l->partner].name, l->period);
        if (limited(q.cpu_seconds))
            CHECK(s, uc + hc <= q.cpu_seconds, "%s %s: used + held over the CPU budget",
                  s->pa[l->partner].name, l->period);
    }
    /* used + held + left = budget, with `left` as admission computes it */
    for (int i = 0; i < NP; i++) {
        int u = 0;
        while (s->us[u].partner != i)
            u++;
        policy_job probe;
        memset(&probe, 0, sizeof probe);
        probe.id = -1;
        snprintf(probe.user, sizeof probe.user, "%s", s->us[u].name);
        probe.time_minutes = 1;
        policy_verdict v;
        CHECK(s, policy_job_admit(s->p, &probe, s->now, &v) == 0, "probe admit");
        if (!v.admitted) continue; /* e.g. queued_limit: no quote */
        policy_quota q;
        int64_t ug, hg, uc, hc;
        policy_quota_get(s->p, s->pa[i].name, s->cur, &q, &ug, &hg, &uc, &hc);
        if (limited(q.gpu_seconds))
            CHECK(s, ug + hg + v.budget_left_gpu_seconds == q.gpu_seconds,
                  "used + held + left != budget");
        else
            CHECK(s, v.budget_left_gpu_seconds == POLICY_UNLIMITED, "unlimited left");
    }
}

static void check_caps(sim *s)
{
    int64_t pending = 0;
    int queued = 0;
    for (int i = 0; i < s->n_jobs; i++) {
        pending += s->jobs[i].st == S_PENDING;
        queued += s->jobs[i].st == S_QUEUED;
    }
    CHECK(s, pending == s->pending && queued == s->queued, "model counters drifted");
    CHECK(s, s->pending <= s->cfg.cluster_window, "window exceeded: %" PRId64, s->pending);
    CHECK(s, policy_queue_length(s->p) == (size_t)s->queued, "queue length %zu, model %d",
          policy_queue_length(s->p), s->queued);
    for (int i = 0; i < NP; i++) {
        policy_quota q = quota_now(s, i);
        if (limited(q.max_gpus))
            CHECK(s, s->pa[i].gpus <= q.max_gpus, "%s over max_gpus", s->pa[i].name);
        if (limited(q.max_running_jobs))
            CHECK(s, s->pa[i].jobs <= q.max_running_jobs, "%s over max_running_jobs",
                  s->pa[i].name);
    }
    for (int i = 0; i < NU; i++) {
        policy_quota q = quota_now(s, s->us[i].partner);
        if (limited(q.user_max_gpus))
            CHECK(s, s->us[i].gpus <= q.user_max_gpus, "%s over user_max_gpus", s->us[i].name);
    }
}

/* Reasons and priorities of every queued job, then pick's answer against the model. */
static void check_queue(sim *s)
{
    bool full = s->pending >= s->cfg.cluster_window;
    double top_prio[NU];
    bool has[NU] = {false};
    for (int i = 0; i < s->n_jobs; i++) {
        s_job *j = &s->jobs[i];
        if (j->st != S_QUEUED) continue;
        const char *b = s_block(s, j);
        const char *want = full ? POLICY_REASON_CLUSTER_FULL : b ? b : POLICY_REASON_PRIORITY;
        const char *got = policy_job_reason(s->p, j->id, s->now);
        CHECK(s, got != NULL && strcmp(got, want) == 0, "job %" PRId64 ": reason %s, model %s",
              j->id, got ? got : "NULL", want);
        count_seen(all_reasons, s->reasons_seen, got);
        double pe = policy_job_priority(s->p, j->id, s->now), pm = s_priority(s, j);
        CHECK(s, dabs(pe - pm) <= 1e-7 * (dabs(pm) + 1),
              "job %" PRId64 ": priority %.9f, model %.9f", j->id, pe, pm);
        if (!has[j->user] || pm > top_prio[j->user]) top_prio[j->user] = pm;
        has[j->user] = true;
    }
    /* per user: is every job that may be its top (ties within eps) free of its own limits? */
    const double eps = 1e-6;
    bool none_blocked[NU];
    for (int u = 0; u < NU; u++)
        none_blocked[u] = true;
    for (int i = 0; i < s->n_jobs; i++) {
        s_job *j = &s->jobs[i];
        if (j->st != S_QUEUED || s_priority(s, j) < top_prio[j->user] - eps) continue;
        if (s_block(s, j) != NULL) none_blocked[j->user] = false;
    }

    int64_t id, hg, hc;
    char period[8];
    int rc = policy_pick(s->p, s->now, &id, &hg, &hc, period);
    CHECK(s, policy_queue_length(s->p) == (size_t)s->queued, "pick changed the queue");
    if (rc == -ENOENT) {
        s->enoent_checks++;
        if (full) return;
        /* no starvation: every user's top job is held back by a limit of its own (its other
         * jobs wait behind it) */
        for (int u = 0; u < NU; u++)
            CHECK(s, !has[u] || !none_blocked[u],
                  "pick found nothing but %s's top job is free to go", s->us[u].name);
        return;
    }
    CHECK(s, rc == 0, "pick rc %d", rc);
    s->picks++;
    CHECK(s, !full, "pick with a full window");
    s_job *j = s_job_by_id(s, id);
    CHECK(s, j != NULL && j->st == S_QUEUED, "pick of a job not queued");
    CHECK(s, s_block(s, j) == NULL, "picked job %" PRId64 " is held by %s", id, s_block(s, j));
    double pj = s_priority(s, j);
    CHECK(s, pj >= top_prio[j->user] - eps, "picked job is not its user's top");
    for (int u = 0; u < NU; u++)
        if (has[u] && none_blocked[u])
            CHECK(s, top_prio[u] <= pj + eps,
                  "picked %" PRId64 " (%.6f) but %s's top job (%.6f) may go", id, pj, s->us[u].name,
                  top_prio[u]);
}

static void check_all(sim *s)
{
    check_ledger(s);
    check_caps(s);
    check_queue(s);
}

/* ---- the run ---- */

static uint64_t seed_from_env(void)
{
    const char *e = getenv("ANTENNA_SEED");
    if (e == NULL || *e == '\0') return DEFAULT_SEED;
    return strtoull(e, NULL, 0);
}

static void setup(sim *s, const scenario *sc)
{
    memset(s, 0, sizeof *s);
    s->seed = seed_from_env();
    s->rng = s->seed ^ (uint64_t)sc->window * 0x100000001b3ULL;
    policy_config_defaults(&s->cfg);
    s->cfg.n_gpu_types = 2;
    snprintf(s->cfg.gpu_types[1].name, sizeof s->cfg.gpu_types[1].name, "l40s");
    s->cfg.gpu_types[1].weight_milli = 600;
    s->cfg.cluster_window = sc->window;
    s->cfg.fairshare_halflife_hours = sc->halflife_hours;
    s->p = policy_new(&s->cfg, NULL, 0);
    assert_non_null(s->p);
    s->jobs = calloc(MAXJ, sizeof *s->jobs);
    assert_non_null(s->jobs);
    s->now = START;
    policy_period_of(s->now, s->cur);
    for (int i = 0; i < NP; i++) {
        snprintf(s->pa[i].name, sizeof s->pa[i].name, "partner%d", i);
        s->pa[i].weight = (int)rr(s, 1, 3);
        s->pa[i].usage_at = s->now;
        assert_int_equal(policy_partner_set(s->p, s->pa[i].name, s->pa[i].weight), 0);
    }
    for (int i = 0; i < NU; i++) {
        snprintf(s->us[i].name, sizeof s->us[i].name, "user%d", i);
        s->us[i].partner = i < NP ? i : (int)rr(s, 0, NP - 1); /* every partner has a user */
        s->us[i].cat = (policy_category)rr(s, 0, POLICY_CAT_COUNT - 1);
        assert_int_equal(
            policy_user_set(s->p, s->us[i].name, s->pa[s->us[i].partner].name, s->us[i].cat), 0);
    }
    /* start-up: past charges (ledger and fair share) */
    for (int i = 0; i < NP; i++) {
        if (!chance(s, 60)) continue;
        int64_t g = rr(s, 1, 20) * 3600, c = rr(s, 0, 50) * 3600;
        int64_t at = s->now - rr(s, 0, 48 * 3600);
        assert_int_equal(policy_usage_load(s->p, s->pa[i].name, s->cur, g, c, at), 0);
        s_ledger *l = ledger(s, i, s->cur, true);
        l->used_gpu += g;
        l->used_cpu += c;
        int64_t keep = s->now;
        s->now = at;
        s_charge_usage(s, i, g);
        s->now = keep;
    }
    for (int i = 0; i < NP; i++)
        random_quota(s, i, s->cur);
    /* start-up: jobs already in Slurm, with unlimited room so that no cap or budget breaks */
    for (int k = 0; k < 3; k++) {
        int u = (int)rr(s, 0, NU - 1);
        policy_quota q = quota_now(s, s->us[u].partner);
        if (limited(q.gpu_seconds) || limited(q.cpu_seconds) || limited(q.max_gpus) ||
            limited(q.max_running_jobs) || limited(q.user_max_gpus) || s->pending >= sc->window)
            continue;
        policy_job j;
        memset(&j, 0, sizeof j);
        j.id = s->n_jobs + 1;
        snprintf(j.user, sizeof j.user, "%s", s->us[u].name);
        j.gpus = (int)rr(s, 1, 2);
        j.cpus = 2;
        j.time_minutes = 120;
        j.submitted_at = s->now - 3600;
        s_job *sj = &s->jobs[s->n_jobs++];
        memset(sj, 0, sizeof *sj);
        sj->id = j.id;
        sj->user = u;
        sj->partner = s->us[u].partner;
        sj->gpus = j.gpus;
        sj->cpus = j.cpus;
        sj->minutes = j.time_minutes;
        sj->weight = 1000;
        sj->sub = j.submitted_at;
        int64_t hg = policy_cost(j.gpus, 7200, 1000), hc = cpu_cost(2, 7200);
        bool running = chance(s, 50);
        assert_int_equal(policy_job_restore(s->p, &j, running, s->cur, hg, hc), 0);
        s_to_slurm(s, sj, s->cur, hg, hc, running);
    }
}

static void run(const scenario *sc)
{
    sim s;
    setup(&s, sc);
    printf("test_policy_property: %s: seed %" PRIu64 " (set ANTENNA_SEED to replay another)\n",
           sc->name, s.seed);
    check_all(&s);
    for (s.step = 1; s.step <= sc->steps; s.step++) {
        int op = (int)rr(&s, 1, 100);
        if (op <= 30)
            op_submit(&s);
        else if (op <= 50)
            op_dispatch_round(&s);
        else if (op <= 65)
            op_start(&s);
        else if (op <= 82)
            op_finish(&s);
        else if (op <= 87)
            op_cancel(&s);
        else if (op <= 91)
            op_requeue(&s);
        else if (op <= 97)
            random_quota(&s, (int)rr(&s, 0, NP - 1), s.cur);
        else
            op_weight(&s);
        advance(&s);
        check_all(&s);
    }
    printf("test_policy_property: %s: %d steps, %d jobs, %ld refused, %ld dispatched, %ld "
           "finished, %ld picks and %ld empty picks checked; ends in %s\n",
           sc->name, sc->steps, s.n_jobs, s.refusals, s.dispatches, s.finishes, s.picks,
           s.enoent_checks, s.cur);
    /* the run must have exercised the interesting paths */
    assert_true(s.dispatches > 100);
    assert_true(s.finishes > 100);
    assert_true(s.refusals > 10);
    assert_true(s.enoent_checks > 100);
    for (int i = 0; i < 7; i++) {
        if (s.reasons_seen[i] == 0) fail_msg("the run never saw reason %s", all_reasons[i]);
        if (s.codes_seen[i] == 0) fail_msg("the run never saw refusal %s", all_codes[i]);
    }
    policy_free(s.p);
    free(s.jobs);
}

static void random_operations_keep_every_invariant(void **state)
{
    (void)state;
    const scenario sc = {"window 4, half-life 24 h", 12000, 4, 24};
    run(&sc);
}

static void random_operations_with_a_small_window_and_fast_decay(void **state)
{
    (void)state;
    /* a 1-hour half-life over weeks also exercises the rescaling of fair-share usage */
    const scenario sc = {"window 2, half-life 1 h", 12000, 2, 1};
    run(&sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_operations_keep_every_invariant),
        cmocka_unit_test(random_operations_with_a_small_window_and_fast_decay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
