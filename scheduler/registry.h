/* registry.h - the one owner of antennad's live state: the store, the policy engine and the audit
 * trail, changed together.
 *
 * Every change (a submission, a cancel, a dispatch begun, its outcome, a Slurm state change, a
 * finish with its charge, a partner, user, quota or token change) is one call here. The call
 * hands the change to the registry's committer thread and blocks until it is on disk: the
 * committer gathers the changes that arrive together into one SQLite transaction (group commit:
 * one COMMIT, one fsync and one audit head-file update for the whole batch), runs each change in
 * a savepoint of its own that holds its state change, its ledger rows and its audit entry, and
 * applies it to the policy engine. A change that fails leaves nothing of itself behind and
 * returns its error; the others of its batch are unaffected. If the batch's COMMIT fails (disk
 * full, I/O error), nothing of the batch is on disk, every change in it fails with that error,
 * and the engine is rebuilt from the store before anyone can read it: the engine's lock is held
 * by the committer from the first change of a batch until the batch is on disk (or undone), so no
 * reader ever sees a change that is not durable.
 *
 * Nothing else writes the store or touches the engine: callers never take the engine's lock and
 * never call a store_* write function. Reads of durable rows go to the store (its read connection,
 * which sees only committed data); reads of live engine state (wait reasons, priorities, quotes,
 * budgets used and held) go through the registry_*_live/quote/usage functions below.
 *
 * Threads: every change and read here blocks (SQLite, fsync): call them from worker threads
 * (uv_queue_work), never from the event-loop thread, but registry_token_check and
 * registry_health, which only read memory. All are thread-safe. Never talks to Slurm.
 */
#ifndef ANTENNA_REGISTRY_H
#define ANTENNA_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "job_array.h"
#include "job_dependency.h"
#include "policy.h"
#include "store.h"

typedef struct registry registry;

typedef struct registry_options {
    const policy_config *policy; /* the engine's configuration; copied */
    audit *audit;                /* the audit trail (borrowed); NULL = none (unit tests only) */
    size_t max_batch;            /* changes per group commit; 0 = 1024 */
    int64_t idem_keep_seconds;   /* how long an Idempotency-Key is remembered; 0 = 25 h */
} registry_options;

/* Loads the engine from `st` (borrowed; must outlive the registry) and starts the committer
 * thread. Returns 0 and sets *out, or a negative errno with a message in err. */
int registry_new(store *st, const registry_options *opt, registry **out, char *err, size_t errlen);

/* Waits for the changes already handed over to commit, stops the committer thread and frees the
 * engine. Changes handed over after this started fail with -ESHUTDOWN. Accepts NULL. */
void registry_free(registry *r);

/* How many batches were committed so far: it grows after each commit returns (whether the batch
 * took or not), so an answer read from the store after seeing generation G shows every change
 * committed up to G. Lock-free (one atomic load): safe on any thread, e.g. to keep answers in
 * memory for one generation (job_cache.h). */
uint64_t registry_generation(registry *r);

/* The store, for reads only (store_*_get, store_*_list, usage, audit lists). Never write through
 * it: every write is a registry change. */
store *registry_store(registry *r);

/* Who makes a change, for its audit entry. Strings are borrowed for the call. actor: a user's
 * name, "antennad" (the broker) or "-" (unauthenticated); partner: the actor's partner ("" or
 * NULL when none), used for entries that concern no partner of their own (job.refused, plain
 * registry_audit events); every other entry carries the partner the change concerns. */
typedef struct registry_actor {
    const char *actor;
    const char *partner;
} registry_actor;

/* The engine's view of store job `j` (its id, user, resources, time limit and submission time)
 * into *out. Pure: the one conversion the registry and the API's dry run share. */
void registry_job_to_policy(const store_job *j, policy_job *out);

/* The total CPUs store job `j` holds and is charged for: j->cpus (set at submission from
 * jobreq_totals_get), or cpus_per_task for rows older than that column. Pure. */
int registry_job_cpus(const store_job *j);

/* --- live reads (the engine) ------------------------------------------------------------------ */

/* A queued job's live state in the engine. */
typedef struct registry_live {
    char reason[32]; /* why it waits now (POLICY_REASON_*), "" when not queued */
    double priority; /* its priority now, 0 when not queued */
} registry_live;

/* Fills *out for job `id` at `now`. Always succeeds (a job not queued gets "" and 0). */
void registry_job_live(registry *r, int64_t id, int64_t now, registry_live *out);

/* A dry run: the full admission verdict with its quote (queue position: O(n) in the queued jobs).
 * Returns 0 or -EINVAL (bad job fields). */
int registry_job_quote(registry *r, const policy_job *j, int64_t now, policy_verdict *v);

/* A partner's quota for `period` as the engine has it (policy_quota_none when never set), with
 * its used and held amounts. Returns 0 or -ENOENT (no such partner). */
int registry_quota_usage(registry *r, const char *partner, const char *period, policy_quota *q,
                         int64_t *used_gpu_s, int64_t *held_gpu_s, int64_t *used_cpu_s,
                         int64_t *held_cpu_s);

/* The billing weight of `gpu_type` ("" = default), or -1 if unknown. */
int registry_gpu_weight(registry *r, const char *gpu_type);

/* The number of jobs queued in the engine. */
size_t registry_queue_length(registry *r);

/* Each partner's numbers now (queued jobs by wait reason, GPUs in Slurm and running, this period's
 * GPU budget used and held) into out[0..max), for GET /metrics: returns how many it filled. Holds
 * the engine's lock for O(partners + users x log partners), never O(queued jobs), and waits for
 * a batch being committed like every live read. Blocking: never on the loop thread. */
size_t registry_partner_stats(registry *r, int64_t now, policy_partner_stats *out, size_t max);

/* Sets the cluster window (how many of our jobs may wait in Slurm, dispatched but not yet
 * running): the broker sizes it from the cluster. Returns 0 or -EINVAL (window <= 0). */
int registry_window_set(registry *r, int window);

/* Authenticates the token whose SHA-256 is hash_hex at `now` (unix seconds) from the registry's
 * memory only: every active token (hash, expiry, user and the user's disabled flag) is loaded at
 * open and changed after each commit that creates or revokes a token or changes a user, before
 * that call returns (so a revoked token, or a disabled user's, never authenticates once the call
 * returned). Hashes are compared in constant time. Returns 0 and fills *out (may be NULL) with
 * the token's user, -ENOENT (unknown or revoked), -EKEYEXPIRED (expired: *out is filled, for the
 * message), or -EACCES (its user is disabled: *out is filled). Never touches SQLite, never
 * blocks but for a short mutex, O(1): safe on the event-loop thread. */
int registry_token_check(registry *r, const char *hash_hex, int64_t now, store_user *out);

/* Whether the store takes writes: 0 when it does, else the error of the last failed write
 * (-ENOSPC, -EIO) with a reason in why. While it fails, changes fail at once with that error and
 * a small probe write every 250 ms clears it when the store works again. Never blocks (reads a
 * flag under a mutex): safe on the event-loop thread, e.g. for /healthz. */
int registry_health(registry *r, char *why, size_t len);

/* --- changes ------------------------------------------------------------------------------------
 * Each returns once its batch is on disk (or undone). The common errors: -ENOSPC (disk full),
 * -EIO (the store failed), -ENOMEM, -ESHUTDOWN (the registry is stopping). */

/* A submission. In: job (user_id, user and the request fields; the rest is filled from the user
 * row), script, and an optional Idempotency-Key with the SHA-256 (hex) of the request body.
 * The registry admits it with the engine (policy_job_check), and either refuses it (verdict
 * not admitted; an audit entry "job.refused"; nothing else written) or inserts it queued with
 * its "job.submitted" audit entry and, with a key, the key's record holding the answer, then
 * queues it in the engine. The answer body is made by `render` inside the change, from the new
 * job and its live state (render returns a malloc'd string, or NULL for out of memory, which
 * fails the change with -ENOMEM). A key already used by this user with the same body hash
 * replays the first answer (replayed = true; nothing written); with another body hash the call
 * returns -EEXIST (answer 422). */
typedef struct registry_submit {
    store_job job;        /* in/out: on success, id, state, partner, unix_user and times */
    const char *script;   /* borrowed */
    const char *options;  /* borrowed: the job's sbatch options (job_options.c JSON), NULL = none */
    const char *idem_key; /* NULL = no key */
    const char *body_hash; /* with idem_key: hex SHA-256 of the request body */
    char *(*render)(const store_job *j, const registry_live *live, void *arg);
    void *render_arg;
    const job_array *array; /* borrowed; NULL = a plain job. Else the submission is the whole
                               array: admitted or refused as a whole (array->n_tasks x the cost of
                               one task), each task a job of its own (ids in index order, the
                               first one's id being the array's), inserted with its
                               "job.submitted" entry (with array_job_id and array_task_id) and
                               queued in the engine, all in this one change; job is the first
                               task; the script is stored once, with the first task */
    const job_dependency *dependency; /* borrowed; NULL or n == 0 = none. The caller checked
                                         that its prerequisites exist and that the submitter may
                                         see them */
    /* out */
    policy_verdict verdict; /* the admission; !verdict.admitted = refused (answer 403) */
    bool replayed;          /* the key's first answer is replayed */
    int status;             /* the answer's status: 202 (new or replayed) */
    char *body;             /* the answer's body, malloc'd: the caller frees it */
} registry_submit;

/* On a replay, job is the job as the store has it now, status and body the first answer's, and
 * verdict.admitted is true (the rest of the verdict is not filled). Without a key, render is
 * still called when set. Returns 0 (admitted, refused or replayed: see s), -EEXIST (key reused
 * with another body), -ENOENT (no user with this id and name), -EINVAL (bad job fields), or a
 * common error. */
int registry_job_submit(registry *r, const registry_actor *who, registry_submit *s);

/* Asks to cancel job `id`: a queued job is cancelled at once (*now_cancelled = true; it leaves the
 * engine's queue), a job in Slurm gets cancel_requested for the broker. Audited
 * "job.cancel_requested". Fills *out (may be NULL) with the job after the change. Returns 0,
 * -ENOENT, -EALREADY (already terminal), or a common error. */
int registry_job_cancel(registry *r, const registry_actor *who, int64_t id, bool *now_cancelled,
                        store_job *out);

/* Asks to cancel every task of array `array_job_id` that has not ended, in one change: each as
 * registry_job_cancel does (a "job.cancel_requested" entry per task). Sets *n_now to the number
 * of tasks cancelled at once (they were queued) and *in_slurm to a malloc'd array (caller frees;
 * NULL when *n_slurm is 0) of the ids of the tasks in Slurm, whose cancel the broker must send.
 * Returns 0, -ENOENT (no such array), -EALREADY (every task already ended), or a common error. */
int registry_job_array_cancel(registry *r, const registry_actor *who, int64_t array_job_id,
                              size_t *n_now, int64_t **in_slurm, size_t *n_slurm);

/* The broker's dispatch step: picks up to `max` queued jobs in the engine's priority order, as
 * its caps, budgets and cluster window allow at `now`, and moves each to "dispatching" with its
 * budget hold (a "hold" ledger row, audit "job.dispatching"), all in one batch. Returns 0 and a
 * malloc'd array of the moved jobs (caller frees; NULL when *n is 0), or a common error. */
int registry_dispatch_begin(registry *r, int64_t now, size_t max, store_job **out, size_t *n);

/* What became of a dispatch. */
typedef enum registry_outcome_kind {
    REGISTRY_SUBMITTED = 1, /* Slurm accepted it as slurm_job_id: dispatching -> dispatched */
    REGISTRY_REFUSED,       /* it cannot run (Slurm refused it, no account...): -> failed, hold
                               released, charged nothing */
    REGISTRY_REQUEUE,       /* it was never submitted (Slurm unreachable): -> queued, hold
                               released, back in the engine's queue (held again when one of its
                               prerequisites is not in Slurm) */
    REGISTRY_CANCELLED,     /* it was never submitted: a dependency can never be met (its
                               prerequisite ended meanwhile, see registry_job_slurm_dependency):
                               -> cancelled with `reason`, hold released, charged nothing */
} registry_outcome_kind;

typedef struct registry_outcome {
    int64_t id;
    registry_outcome_kind kind;
    int64_t slurm_job_id; /* REGISTRY_SUBMITTED */
    char reason[STORE_REASON_MAX];
    int rc; /* out: 0, -EAGAIN (the job is no longer dispatching: nothing done), or an error */
    char request_id[65]; /* the job's request id, for the caller's log lines (never recorded) */
} registry_outcome;

/* Records n outcomes in one batch (each audited: job.dispatched, job.finished, job.requeued).
 * Returns 0 when the batch committed (see each rc), or a common error (nothing recorded: call
 * again later with the same outcomes). */
int registry_dispatch_outcomes(registry *r, registry_outcome *o, size_t n);

/* The broker's pipelined step: records the outcomes of the last batch (as
 * registry_dispatch_outcomes, result in *outcomes_rc) and begins the next one (as
 * registry_dispatch_begin, up to `max` jobs at `now`), handed over together so that both share
 * one group commit. Either part may be empty (n_out 0, max 0). Returns the begin's result. */
int registry_dispatch_step(registry *r, registry_outcome *o, size_t n_out, int64_t now, size_t max,
                           store_job **out, size_t *n, int *outcomes_rc);

/* The same step in two halves, so that the broker submits one batch while the registry records
 * the previous one and begins the next: _start hands both changes over and returns at once (*out
 * is the step; `o` must stay valid until _finish), _finish waits for them and gives what
 * registry_dispatch_step gives, then frees the step. Every started step must be finished.
 * _start returns 0 or -ENOMEM (nothing handed over). */
typedef struct registry_step registry_step;
int registry_dispatch_step_start(registry *r, registry_outcome *o, size_t n_out, int64_t now,
                                 size_t max, registry_step **out);
int registry_dispatch_step_finish(registry *r, registry_step *t, store_job **out, size_t *n,
                                  int *outcomes_rc);

/* A change Slurm reported for one of our jobs in Slurm (or that Slurm no longer knows it). */
typedef struct registry_slurm_change {
    int64_t id;
    int64_t slurm_job_id;
    char state[STORE_STATE_MAX]; /* broker state name (pending, running, ..., completed) */
    char reason[STORE_REASON_MAX];
    int64_t start_time, end_time; /* unix seconds, 0 = unknown */
    bool has_exit_code;
    int exit_code;
    bool lost; /* neither slurmctld nor slurmdbd knows its end: state "lost", charged its full
                  hold (its time limit), with `reason` (or a default) in its audit entry */
    /* Runs that ended because Slurm requeued the job (sbatch --requeue), since the change
     * recorded before: 0 = none. Then [run_start, run_end] is their span (one run, or several
     * that ended between two looks), recorded and charged before the state above (which is the
     * job's next run's: pending, or running from start_time). */
    int runs_ended;
    int64_t run_start, run_end;
    /* out */
    bool over_budget; /* after the runs' charge, the partner's budget no longer covers the job's
                         hold: the caller must end the job in Slurm */
    int rc;           /* 0, -ENOENT (no such job), or an error */
    bool finished;    /* this change ended it */
    int64_t charge_gpu_seconds; /* its charge when finished */
    int64_t charge_cpu_seconds;
} registry_slurm_change;

/* Records n Slurm changes in one batch: the job's row, and on its end its hold released and its
 * charge (policy_job_charge, from Slurm's start and end) in the ledger, with an audit entry for
 * every state change ("job.started", "job.finished"), then the engine (started, finished). Runs
 * ended by a Slurm requeue come first: each a job_runs row and its charge ("job.run_requeued",
 * policy_job_run_ended), the hold kept for the next run. A
 * terminal job is never changed again. Returns 0 when the batch committed (see each rc), or a
 * common error (nothing recorded: call again with the same changes). */
int registry_slurm_changes(registry *r, registry_slurm_change *c, size_t n);

/* --- partners, users, quotas, tokens (each audited) ------------------------------------------ */

/* "partner.created". Returns 0 (fills *out when not NULL), -EEXIST, -EINVAL, or a common error. */
int registry_partner_create(registry *r, const registry_actor *who, const char *name,
                            const char *description, int share_weight, store_partner *out);

/* "partner.changed": description NULL = keep, share_weight 0 = keep. Returns 0 (fills *out),
 * -ENOENT, -EINVAL, or a common error. */
int registry_partner_update(registry *r, const registry_actor *who, const char *name,
                            const char *description, int share_weight, store_partner *out);

/* "user.created". The caller validated role and category. Returns 0 (fills *out), -EEXIST,
 * -ENOENT (no such partner), -EINVAL, or a common error. */
int registry_user_create(registry *r, const registry_actor *who, const char *name,
                         const char *partner, const char *unix_user, const char *role,
                         const char *category, store_user *out);

/* Changes user `name`: its Unix account (unix_user NULL = keep; the caller validated the account)
 * and whether it is disabled (disabled -1 = keep, 0 = enabled, 1 = disabled). Audited
 * "user.mapping_changed" (with the old and new account) and "user.disabled" / "user.enabled",
 * each only when it changes. A disabled user's tokens stop authenticating before this returns;
 * their jobs are left as they are. Returns 0 (fills *out when not NULL), -ENOENT (no such user),
 * -ENOTUNIQ (a user of another partner maps to unix_user), -EINVAL, or a common error. */
int registry_user_update(registry *r, const registry_actor *who, const char *name,
                         const char *unix_user, int disabled, store_user *out);

/* "quota.set": creates or replaces q->partner's quota for q->period. Returns 0, -ENOENT, -EINVAL,
 * or a common error. */
int registry_quota_set(registry *r, const registry_actor *who, const store_quota *q);

/* "token.created": stores the hash of a new token of user `user_id` labelled `label`, that never
 * expires. Returns 0 (sets *id), -ENOENT, -EEXIST, or a common error. */
int registry_token_create(registry *r, const registry_actor *who, int64_t user_id,
                          const char *user_partner, const char *hash_hex, const char *label,
                          int64_t *id);

/* As registry_token_create, expiring at `expires_at` (unix seconds; 0 = never; the caller
 * enforces the configured maximum). The token authenticates (registry_token_check) once this
 * returns 0. Returns the same, or -EINVAL (a negative expiry, a bad hash). */
int registry_token_issue(registry *r, const registry_actor *who, int64_t user_id,
                         const char *user_partner, const char *hash_hex, const char *label,
                         int64_t expires_at, int64_t *id);

/* "token.revoked". Returns 0, -ENOENT (no such active token), or a common error. */
int registry_token_revoke(registry *r, const registry_actor *who, int64_t id);

/* An audit entry that changes nothing else (e.g. "auth.failed"): details_json is a JSON object
 * text (NULL = "{}"). Returns 0 or a common error. */
int registry_audit(registry *r, const registry_actor *who, const char *action,
                   const char *details_json);

/* --- refunds and corrections (ledger entries, never edits; each audited) -------------------- */

/* A refund of ended job `id`: gives back gpu_seconds/cpu_seconds of its charge (both -1 = the
 * whole charge) as a negative "charge" ledger entry in the job's period, so that usage, the
 * statement and its partner's used budget go down by it; audited "job.refunded" with the reason
 * (required, non-empty) and the amounts. Fills *out (may be NULL) with the job after (its net
 * charge). Returns 0, -ENOENT (no such job), -EAGAIN (the job has not ended), -ERANGE (more than
 * is left of its charge), -EALREADY (nothing left to refund), -EINVAL (no reason, negative
 * amount), or a common error. */
int registry_job_refund(registry *r, const registry_actor *who, int64_t id, int64_t gpu_seconds,
                        int64_t cpu_seconds, const char *reason, store_job *out);

/* A correction of ended job `id`'s charge to gpu_seconds (>= 0) and cpu_seconds (-1 = keep): an
 * entry of the difference in the job's period (e.g. a lost job charged its full hold, corrected
 * to what really ran); audited "job.corrected". Same *out and errors as registry_job_refund
 * (-EALREADY: the charge already is that). */
int registry_job_correct(registry *r, const registry_actor *who, int64_t id, int64_t gpu_seconds,
                         int64_t cpu_seconds, const char *reason, store_job *out);

/* Housekeeping, from the broker's tick when nothing else is waiting: forgets Idempotency-Keys
 * older than the keep time (at most a bounded number per call) and checkpoints the WAL so that
 * it stays bounded. Returns 0 or a common error. */
int registry_housekeep(registry *r, int64_t now);

/* The engine side of a policy config change is not supported at run time: restart antennad. */

/* --- dependencies (issue 9) ---------------------------------------------------------------
 * A submission with a dependency (registry_submit.dependency) stores its conditions with the job
 * (a singleton expanded to the user's earlier jobs of that name not yet ended). While one
 * prerequisite is not in Slurm yet (or a singleton's earlier job has not ended) the job waits in
 * the engine with reason "Dependency"; when a prerequisite reaches Slurm or ends, only the jobs
 * waiting on it are judged again (an index in memory, rebuilt from the store at start-up and
 * after a failed batch). A condition that can never be met ends the job "cancelled" with a reason
 * naming it, charged nothing, audited "job.finished" (a job already in Slurm is ended by Slurm
 * itself with DependencyParameters=kill_invalid_depend; its reason is then named the same way). */

/* The dependency of job `id` in its canonical text ("afterok:4,singleton"), into buf ("" when it
 * has none). Reads committed rows. Returns 0 or a negative errno. */
int registry_job_dependency_text(registry *r, int64_t id, char *buf, size_t len);

/* The dependency of job `id` as Slurm must get it at dispatch, with Slurm's job ids
 * ("afterok:101,afternotok:102"): conditions already met are dropped, a singleton never goes
 * (Antenna enforced it). buf is "" when none is left. Reads committed rows (worker thread).
 * Returns 0, -ECANCELED (a condition can never be met: why says which), -EAGAIN (a prerequisite
 * is not in Slurm yet: why says which), -ENOSPC (too long), or a store error. */
int registry_job_slurm_dependency(registry *r, int64_t id, char *buf, size_t len, char *why,
                                  size_t wlen);

#endif
