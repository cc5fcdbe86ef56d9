/* reconcile.h - compares Antenna's jobs and charges with the cluster's accounting records
 * (slurmdbd), job by job, and names every difference.
 *
 * Pure: no I/O, no Slurm or SQLite type, never logs. The caller reads both sides (the store, the
 * Slurm adapter) and hands them over as plain arrays; the comparison is this one function.
 */
#ifndef ANTENNA_RECONCILE_H
#define ANTENNA_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECONCILE_NAME_MAX 64

/* Antenna's side: one job that reached Slurm. */
typedef struct reconcile_job {
    int64_t id;           /* Antenna's job id */
    int64_t slurm_job_id; /* > 0 */
    char partner[RECONCILE_NAME_MAX];
    int gpus;
    int64_t started_at, ended_at;                   /* unix seconds, 0 = not (yet) */
    bool ended;                                     /* in a terminal state */
    bool held;                                      /* still holds budget */
    int64_t charge_gpu_seconds, charge_cpu_seconds; /* its net charge (after refunds) */
    /* for the charge check: what its ledger rows say it used (the sum of its charge rows but the
     * refunds since its last correction, which are deliberate; a correction states what it
     * used), and how it is charged */
    bool has_ledger;
    int64_t ledger_gpu_seconds;
    int cpus, time_minutes, weight_milli;
    /* its runs that Slurm requeued (--requeue), each charged: their elapsed seconds summed (its
     * started_at/ended_at are its last run's) */
    int64_t prior_run_seconds;
} reconcile_job;

/* The cluster's side: one record of slurmdbd. */
typedef struct reconcile_record {
    int64_t job_id; /* Slurm's job id */
    char account[RECONCILE_NAME_MAX];
    char partition[RECONCILE_NAME_MAX];
    char user[RECONCILE_NAME_MAX];
    int64_t start_time, end_time; /* 0 = not (yet) */
    int64_t elapsed_s;
    int gpus;      /* allocated */
    bool requeued; /* a run that Slurm ended by requeueing the job: the job's next run is another
                      record of the same id, and the job's elapsed time and charge are the sums
                      over its runs (a record listed twice counts once) */
} reconcile_record;

/* The kinds of difference. */
typedef enum reconcile_kind {
    RECONCILE_NO_RECORD = 0,  /* a charge with no record in slurmdbd */
    RECONCILE_ESCAPED,        /* a record on Antenna's partitions or accounts, no Antenna job */
    RECONCILE_ELAPSED,        /* elapsed time differs by more than RECONCILE_ELAPSED_SLACK_S */
    RECONCILE_GPUS,           /* GPU counts differ */
    RECONCILE_HELD_AFTER_END, /* Antenna still holds budget (or runs it) after its record ended */
    RECONCILE_CHARGE,         /* the ledger's charge is not what the record's elapsed time costs */
    RECONCILE_KINDS
} reconcile_kind;

#define RECONCILE_ELAPSED_SLACK_S 1

/* One difference. antenna/slurm: the two values compared (seconds, GPUs, GPU-seconds charged for
 * NO_RECORD, end times for HELD_AFTER_END, GPU-seconds for CHARGE: the ledger's and what the
 * record's elapsed time costs by policy_charge; 0 where a side has none). A CHARGE difference is
 * one beyond what RECONCILE_ELAPSED_SLACK_S seconds either way cost. */
typedef struct reconcile_diff {
    reconcile_kind kind;
    int64_t job_id;                   /* Antenna's job, 0 for ESCAPED */
    int64_t slurm_job_id;             /* Slurm's job id */
    char partner[RECONCILE_NAME_MAX]; /* Antenna's partner, or the record's account (ESCAPED) */
    int64_t antenna, slurm;
} reconcile_diff;

/* Which records are Antenna's business: those on one of its partitions or accounts. Borrowed. */
typedef struct reconcile_scope {
    const char *const *partitions;
    size_t n_partitions;
    const char *const *accounts;
    size_t n_accounts;
} reconcile_scope;

/* The result: differences in a stable order (by kind, then Slurm id), their count per kind and the
 * number of Antenna jobs compared. */
typedef struct reconcile_result {
    reconcile_diff *diffs; /* malloc'd; free with reconcile_result_clear */
    size_t n_diffs;
    size_t by_kind[RECONCILE_KINDS];
    size_t jobs_compared;
    size_t records_seen;
} reconcile_result;

/* Compares `jobs` (Antenna's jobs of the period, and any other Antenna job that a record names)
 * with `recs` (slurmdbd's records of the period and of those jobs; a record may appear twice) in
 * O((n + m) log(n + m)). Neither input is changed. Fills *out (clear it with
 * reconcile_result_clear). Returns 0, -EINVAL (NULL arguments with a non-zero count), -ENOMEM. */
int reconcile_compare(const reconcile_job *jobs, size_t n_jobs, const reconcile_record *recs,
                      size_t n_recs, const reconcile_scope *scope, reconcile_result *out);

/* Frees what reconcile_compare filled and zeroes *r. Accepts NULL. */
void reconcile_result_clear(reconcile_result *r);

/* The kind's name, as the API shows it: "no_record", "escaped", "elapsed", "gpus",
 * "held_after_end", "charge". Static. */
const char *reconcile_kind_name(reconcile_kind k);

#endif
