/* policy.h - Antenna's policy engine: admission, per-partner quotas, holds and charges, fair-share
 * priority and dispatch order.
 *
 * Pure library: no I/O, no logging, no clock (the current time is always passed in, as unix
 * seconds), no libuv/Slurm/SQLite/OpenSSL. Not thread-safe: one owner (antennad's broker) drives
 * it. The engine is a mirror of the durable state (the store's partners, users, quotas, ledger and
 * active jobs): antennad loads it at start-up and feeds it every event; the store stays the truth.
 *
 * Units. Costs and budgets are integers in weighted GPU-seconds (1 GPU-hour = 3600) and
 * CPU-seconds, so that used + held + left = budget holds exactly:
 *   cost(job) = ceil(gpus x seconds x gpu_type_weight_milli / 1000)
 * The maximum cost of a job (its hold) uses its time limit; its charge uses its real elapsed time.
 *
 * Periods are calendar months in UTC, written "YYYY-MM". A job's hold and charge belong to the
 * period in which it was dispatched.
 *
 * Priority (higher runs first), the multifactor formula of docs/POLICIES.md:
 *   priority = W_fairshare x F + W_category x C + W_age x A + W_size x S
 *   F = 2^(-(U_p / U_total) / (w_p / w_total))  partner fair share, in (0, 1]: U is usage decayed
 *       with the configured half-life (U_total = 0 gives F = 1), w the share weights
 *   C = the user's category factor (config, 0..1)
 *   A = hours waited / age_unit_hours (not capped, so the order of waiting jobs never changes
 *       with time alone)
 *   S = gpus / max_gpus_per_job
 *
 * Dispatch. policy_pick returns the highest-priority queued job that its partner's caps, its
 * user's cap, its partner's budget and the cluster window allow. Jobs of one user are taken in
 * priority order (the user's top job waits, and the user's other jobs wait behind it); a user or
 * partner held back by its own limits never blocks the others. Picking costs O(log n) in the
 * number of queued jobs (a heap per user, a heap of users), plus O(log n) per user set aside.
 */
#ifndef ANTENNA_POLICY_H
#define ANTENNA_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct policy policy;

#define POLICY_NAME_MAX      64
#define POLICY_GPU_TYPES_MAX 16
#define POLICY_UNLIMITED     (-1) /* for any cap or budget field */

typedef enum policy_category {
    POLICY_CAT_SME = 0,
    POLICY_CAT_RESEARCHER = 1,
    POLICY_CAT_INSTITUTION = 2,
    POLICY_CAT_COUNT = 3
} policy_category;

/* Parses "sme", "researcher" or "institution". Returns 0, or -EINVAL. */
int policy_category_parse(const char *s, policy_category *out);

/* The name of a category ("sme", ...), or "?" when out of range. Static storage. */
const char *policy_category_name(policy_category c);

/* The site's configuration (antennad's config file). */
typedef struct policy_config {
    struct {
        char name[32];
        int weight_milli; /* 1000 = one GPU-hour costs one GPU-hour */
    } gpu_types[POLICY_GPU_TYPES_MAX];
    size_t n_gpu_types; /* >= 1; a job naming no type is billed (and run) as gpu_types[0] */
    double fairshare_halflife_hours;                                /* > 0 */
    int weight_fairshare, weight_category, weight_age, weight_size; /* >= 0 */
    int category_factor_milli[POLICY_CAT_COUNT];                    /* 0..1000 */
    double age_unit_hours;                                          /* > 0 */
    int max_gpus_per_job;                                           /* > 0, for the size factor */
    int cluster_window; /* > 0: at most this many of our jobs dispatched but not running */
} policy_config;

/* Fills `c` with the defaults: one type "h100" at weight 1000, half-life 168 h, weights
 * fairshare 10000, category 1000, age 1000, size 500, factors sme 1000, researcher 800,
 * institution 600, age unit 24 h, 8 GPUs per job, window 4. */
void policy_config_defaults(policy_config *c);

/* One partner's limits for one period. Every field may be POLICY_UNLIMITED. */
typedef struct policy_quota {
    int64_t gpu_seconds;      /* GPU budget, weighted GPU-seconds */
    int64_t cpu_seconds;      /* CPU budget, CPU-seconds */
    int max_gpus;             /* GPUs of the partner's jobs in Slurm at once */
    int max_running_jobs;     /* the partner's jobs in Slurm at once */
    int max_queued_jobs;      /* the partner's jobs waiting in antennad's queue */
    int max_walltime_minutes; /* per job */
    int user_max_gpus;        /* GPUs of one user's jobs in Slurm at once */
} policy_quota;

/* Sets every field of `q` to POLICY_UNLIMITED except the GPU budget, which is 0 (no budget set:
 * only jobs using no GPU are admitted; the CPU budget is optional and unlimited unless set). This
 * is the quota of a partner/period never set. */
void policy_quota_none(policy_quota *q);

/* A job as the engine sees it. */
typedef struct policy_job {
    int64_t id;
    char user[POLICY_NAME_MAX];
    int gpus;
    char gpu_type[32]; /* "" = the default type */
    int cpus;          /* cpus_per_task (one task) */
    int time_minutes;
    int64_t submitted_at;
    /* A task of a job array (0 / 0 / 0 for a plain job): the array's id, shared by its tasks, and
     * its %max (at most that many of its tasks dispatched or running at once; 0 = no throttle).
     * array_tasks is read by admission only: an array is admitted or refused as a whole, its
     * cost being array_tasks x the cost of one task. */
    int64_t array_id;
    int array_max;
    int array_tasks;
} policy_job;

/* Why a job was refused or why it waits. */
typedef struct policy_verdict {
    bool admitted;
    char code[32];                /* refusal: walltime_limit, partner_gpu_limit, user_gpu_limit,
                                     budget_exceeded, cpu_budget_exceeded, queued_limit, unknown_gpu_type,
                                     unknown_user, unknown_partner; "" when admitted */
    char message[256];            /* names the limit and its value, and what to do */
    char period[8];               /* "YYYY-MM" of now */
    int64_t max_cost_gpu_seconds; /* the hold it would take */
    int64_t max_cost_cpu_seconds;
    int64_t budget_left_gpu_seconds;       /* left now (POLICY_UNLIMITED if unlimited) */
    int64_t budget_left_after_gpu_seconds; /* left after its hold (POLICY_UNLIMITED if unl.) */
    size_t queue_position;                 /* 1-based position in dispatch order if queued now */
    char wait_reason[32]; /* the limit it would wait on now, "" if it would go at once */
    double priority;      /* its priority if queued now */
} policy_verdict;

/* Reasons a queued job waits (as squeue shows them). */
#define POLICY_REASON_CLUSTER_FULL "ClusterFull"           /* the cluster window is full */
#define POLICY_REASON_PARTNER_GPU  "PartnerGpuLimit"       /* partner's max_gpus reached */
#define POLICY_REASON_PARTNER_JOBS "PartnerJobLimit"       /* partner's max_running_jobs */
#define POLICY_REASON_USER_GPU     "UserGpuLimit"          /* user's user_max_gpus */
#define POLICY_REASON_BUDGET_HELD  "BudgetHeld"            /* budget left < cost: holds of */
                                                           /* running jobs may come back */
#define POLICY_REASON_BUDGET_EXHAUSTED "BudgetExhausted"   /* budget - used < cost: never */
#define POLICY_REASON_PRIORITY         "Priority"          /* behind higher-priority jobs */
#define POLICY_REASON_ARRAY_LIMIT      "JobArrayTaskLimit" /* its array's %max is reached */
#define POLICY_REASON_DEPENDENCY       "Dependency"        /* held by its dependencies */

/* Creates an engine with a copy of `cfg`. Returns NULL on bad config or no memory (err, when not
 * NULL, says which field). Free with policy_free. */
policy *policy_new(const policy_config *cfg, char *err, size_t errlen);

/* Frees the engine. Accepts NULL. */
void policy_free(policy *p);

/* --- the mirror of partners, users, quotas and the ledger --- */

/* Adds or updates a partner (share weight >= 1). Returns 0, -EINVAL, -ENOMEM. */
int policy_partner_set(policy *p, const char *name, int share_weight);

/* Adds or updates a user of an existing partner. Returns 0, -ENOENT (no such partner), -EINVAL,
 * -ENOMEM. */
int policy_user_set(policy *p, const char *name, const char *partner, policy_category cat);

/* Sets a partner's quota for `period` ("YYYY-MM"). Takes effect at once on the queue. Returns 0,
 * -ENOENT, -EINVAL, -ENOMEM. */
int policy_quota_set(policy *p, const char *partner, const char *period, const policy_quota *q);

/* Reads a partner's quota for `period` (policy_quota_none when never set), and its used and held
 * amounts. Returns 0 or -ENOENT. */
int policy_quota_get(const policy *p, const char *partner, const char *period, policy_quota *q,
                     int64_t *used_gpu_s, int64_t *held_gpu_s, int64_t *used_cpu_s,
                     int64_t *held_cpu_s);

/* Start-up only: records that `partner` used `gpu_s`/`cpu_s` in `period` (charges already in the
 * ledger) and, at time `at`, for fair share. Call once per charge row (or per summed group with
 * the time of its last charge). Returns 0, -ENOENT, -EINVAL. */
int policy_usage_load(policy *p, const char *partner, const char *period, int64_t gpu_s,
                      int64_t cpu_s, int64_t at);

/* A refund or correction of charges already counted: adds gpu_delta/cpu_delta (signed) to
 * `partner`'s used amounts in `period`, never below 0 (a refund gives budget back). Fair-share
 * usage is not changed. Returns 0, -ENOENT (no such partner), -EINVAL (bad period). */
int policy_usage_adjust(policy *p, const char *partner, const char *period, int64_t gpu_delta,
                        int64_t cpu_delta);

/* --- jobs --- */

/* Decides whether `j` may be queued now, without changing anything; fills `v` (refusal or quote).
 * For an array (j->array_tasks > 1) the whole array is decided at once: its maximum cost (and the
 * budget left after it) is array_tasks x one task's, and its tasks must all fit the partner's
 * queued cap; the queue position and wait reason are its first task's.
 * Returns 0 (whatever the verdict), or -EINVAL (bad job fields). */
int policy_job_admit(const policy *p, const policy_job *j, int64_t now, policy_verdict *v);

/* The same decision as policy_job_admit, without the quote: queue_position, wait_reason and
 * priority are left 0/"" (costs and budgets left are filled). O(log n), where the quote is
 * O(p log n) for p partners (x 3 categories): use it for a real submission, policy_job_admit for a
 * dry run. Returns 0 or -EINVAL. */
int policy_job_check(const policy *p, const policy_job *j, int64_t now, policy_verdict *v);

/* Queues `j` (already admitted and on disk). A task of an array with a %max (j->array_max > 0)
 * is parked behind its array: at most one task of an array waits in its user's queue at a time,
 * and none while the array has array_max tasks dispatched or running; the next is put in the
 * queue when one is dispatched or ends (O(log n), no scan). Its tasks are taken in id order.
 * Returns 0, -EEXIST (id known), -ENOENT (unknown user), -ENOMEM. */
int policy_job_enqueue(policy *p, const policy_job *j);

/* Removes a queued job (cancelled before dispatch). Returns 0 or -ENOENT (not queued). */
int policy_job_dequeue(policy *p, int64_t id);

/* The next job to dispatch now, without changing anything: sets *id, the hold amounts and the
 * period. Returns 0, or -ENOENT when no queued job may go now. */
int policy_pick(policy *p, int64_t now, int64_t *id, int64_t *hold_gpu_s, int64_t *hold_cpu_s,
                char period[8]);

/* Records that queued job `id` was dispatched at `now` with the hold policy_pick gave: it leaves
 * the queue, takes its hold from its partner's budget, counts against the caps and the window.
 * Returns 0, -ENOENT (not queued), -EDQUOT (the hold no longer fits the budget: nothing changed),
 * -ENOMEM.
 */
int policy_job_dispatched(policy *p, int64_t id, int64_t now);

/* Puts a dispatched job back in the queue (Slurm was unreachable; the store released its hold):
 * releases its hold. Returns 0 or -ENOENT (not dispatched). */
int policy_job_requeue(policy *p, int64_t id);

/* Start-up only: restores a job already in Slurm (dispatched, pending or running) with its hold
 * and period, as the store has them. Returns 0, -EEXIST, -ENOENT (unknown user), -ENOMEM. */
int policy_job_restore(policy *p, const policy_job *j, bool running, const char *period,
                       int64_t hold_gpu_s, int64_t hold_cpu_s);

/* Records that job `id` started running in Slurm (it leaves the cluster window). Returns 0 or
 * -ENOENT. Idempotent. */
int policy_job_started(policy *p, int64_t id);

/* Records the end of job `id` (in Slurm): computes its charge from `elapsed_s` (0 when it never
 * started: no charge), releases its hold, adds the charge to its partner's used amount and
 * fair-share usage at `now`. Sets the charges and the period (for the ledger). Returns 0 or
 * -ENOENT. */
int policy_job_finished(policy *p, int64_t id, int64_t elapsed_s, int64_t now,
                        int64_t *charge_gpu_s, int64_t *charge_cpu_s, char period[8]);

/* Records that one run of job `id` (in Slurm) ended and Slurm requeued the job (sbatch
 * --requeue: a node failure, a preemption, an administrator's requeue): the run's charge, from
 * `elapsed_s` capped at `runs` x the time limit (`runs` > 1 when several runs ended unseen), is
 * added to its partner's used amount and fair-share usage at `now`, and the job counts as waiting
 * in Slurm again (until policy_job_started). Its hold is kept, whole: the next run may use its
 * full time limit. Sets the charges. *over_budget (may be NULL) is set when the partner's budget
 * of the job's period no longer covers what is used and held: the caller must then end the job,
 * or the next run could be charged past the budget. Returns 0, -ENOENT (not in Slurm), -EINVAL
 * (runs < 1). */
int policy_job_run_ended(policy *p, int64_t id, int64_t elapsed_s, int runs, int64_t now,
                         int64_t *charge_gpu_s, int64_t *charge_cpu_s, bool *over_budget);

/* Why queued job `id` waits now: one of the POLICY_REASON_* strings. Returns NULL when `id` is
 * not queued. The string is static. */
const char *policy_job_reason(const policy *p, int64_t id, int64_t now);

/* The priority of queued job `id` now, or 0 when not queued. */
double policy_job_priority(const policy *p, int64_t id, int64_t now);

/* Sets the cluster window (jobs dispatched but not yet running) to `window` (> 0): antennad sizes
 * it from the cluster's resources. Takes effect on the next pick. Returns 0 or -EINVAL. */
int policy_window_set(policy *p, int window);

/* The cluster window now. */
int policy_window(const policy *p);

/* The number of queued jobs. */
size_t policy_queue_length(const policy *p);

/* Holds queued job `id` for its dependencies: it stays queued (it counts against its partner's
 * queued cap) but policy_pick never returns it and its reason is POLICY_REASON_DEPENDENCY, until
 * policy_job_dependency_release. Idempotent. O(log n). Returns 0 or -ENOENT (not queued). */
int policy_job_dependency_hold(policy *p, int64_t id);

/* Ends the hold of policy_job_dependency_hold: the job competes for dispatch again with its
 * priority of before. Idempotent (a job not held is left alone). Never allocates. O(log n).
 * Returns 0 or -ENOENT (not queued). */
int policy_job_dependency_release(policy *p, int64_t id);

/* Whether queued job `id` is held for its dependencies. */
bool policy_job_dependency_held(const policy *p, int64_t id);
/* --- statistics, for antennad's metrics --- */

/* The wait reasons in the order of policy_partner_stats.queued_by_reason. */
#define POLICY_WAIT_REASONS 9
extern const char *const policy_wait_reasons[POLICY_WAIT_REASONS];

/* One partner's numbers now, as the engine keeps them (no scan of the queue). */
typedef struct policy_partner_stats {
    char name[POLICY_NAME_MAX];
    size_t queued;         /* its jobs in antennad's queue */
    int64_t gpus_in_slurm; /* GPUs of its jobs in Slurm (dispatched, pending there or running) */
    int64_t gpus_running;  /* of those, the GPUs of jobs that started */
    int64_t jobs_in_slurm;
    int64_t budget_gpu_s; /* this period's GPU budget (weighted GPU-seconds), POLICY_UNLIMITED */
    int64_t used_gpu_s, held_gpu_s; /* this period's */
    /* its queued jobs by wait reason (policy_wait_reasons), each user's jobs under the reason
     * its first job waits for (the jobs behind it wait for it) */
    size_t queued_by_reason[POLICY_WAIT_REASONS];
} policy_partner_stats;

/* Fills out[0..max) with the first `max` partners (by name) at `now` (for the period's budget and
 * the reasons) and returns how many it filled. O(partners + users x log partners), never O(queued
 * jobs): each user contributes its first queued job's reason. */
size_t policy_partner_stats_get(const policy *p, int64_t now, policy_partner_stats *out,
                                size_t max);

/* --- helpers shared with antennad and the CLI --- */

/* The period ("YYYY-MM", UTC) containing unix time `t`, into out[8]. Returns out. */
char *policy_period_of(int64_t t, char out[8]);

/* Returns 1 when `s` is a valid period "YYYY-MM" (2000-01 .. 9999-12), else 0. */
int policy_period_valid(const char *s);

/* cost = ceil(gpus x seconds x weight_milli / 1000), saturating at INT64_MAX. */
int64_t policy_cost(int gpus, int64_t seconds, int weight_milli);

/* The charge of a job that ran `elapsed_s` seconds: the one formula of a charge, used by the
 * engine and by whatever writes the ledger. The time is capped at the job's limit (Slurm may let
 * a job overrun it by OverTimeLimit: a charge never exceeds the hold) and a negative time is 0:
 *   *gpu_s = policy_cost(gpus, t, weight_milli), *cpu_s = cpus x t. Either pointer may be NULL. */
void policy_charge(int gpus, int cpus, int time_minutes, int weight_milli, int64_t elapsed_s,
                   int64_t *gpu_s, int64_t *cpu_s);

/* The same for `runs` runs (>= 1; less counts as 1) of a job that Slurm requeued, charged as one
 * span of `elapsed_s` seconds: the time is capped at runs x the job's limit. policy_charge is
 * runs = 1. */
void policy_charge_runs(int gpus, int cpus, int time_minutes, int runs, int weight_milli,
                        int64_t elapsed_s, int64_t *gpu_s, int64_t *cpu_s);

/* The billing weight of `gpu_type` ("" = the default type), or -1 if unknown. */
int policy_gpu_weight(const policy *p, const char *gpu_type);

#endif
