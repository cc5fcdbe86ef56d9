/* store.h - antennad's durable state in SQLite (WAL): partners, users, tokens, jobs.
 *
 * The only module that includes sqlite3.h. Every function is blocking: call it from a worker thread
 * (uv_queue_work), never from the event-loop thread. Each call is one transaction (in a batch, a
 * savepoint of the batch's: see store_batch_begin); writes from several threads are serialised by
 * an internal write lock. Outside a batch, a call that returns 0 after a write has committed it to
 * disk (synchronous=FULL), so an acknowledged job survives a crash; in a batch, its commit does.
 *
 * Reads (the _get, _list, _lookup and _query functions) run on a second connection with its own
 * lock: they see the last committed state and never wait for a writer, not even for its fsync.
 * A ":memory:" database has one connection only, so there reads wait for writes.
 *
 * Errors: a write that fails because the disk (or the file system quota) is full returns -ENOSPC
 * (callers answer 503); any other database failure is -EIO.
 */
#ifndef ANTENNA_STORE_H
#define ANTENNA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store;

#define STORE_NAME_MAX   64
#define STORE_STATE_MAX  24
#define STORE_REASON_MAX 256

/* Job states, as stored and shown. */
#define STORE_STATE_QUEUED      "queued"      /* accepted, on disk, not yet sent to Slurm */
#define STORE_STATE_DISPATCHING "dispatching" /* the broker is submitting it (crash window) */
#define STORE_STATE_DISPATCHED  "dispatched"  /* Slurm accepted it; no state from Slurm yet */

typedef struct store_partner {
    int64_t id;
    char name[STORE_NAME_MAX];
    char description[STORE_REASON_MAX];
    int share_weight;   /* fair-share weight, >= 1 */
    int64_t created_at; /* unix seconds */
} store_partner;

typedef struct store_user {
    int64_t id;
    char name[STORE_NAME_MAX];
    char partner[STORE_NAME_MAX]; /* partner name */
    char unix_user[STORE_NAME_MAX];
    char role[16];     /* "user" | "manager" | "staff" | "admin" | "auditor" */
    char category[16]; /* "sme" | "researcher" | "institution" */
    int64_t created_at;
    bool disabled; /* a disabled user's tokens authenticate nothing */
} store_user;

/* One partner's limits for one period ("YYYY-MM"). -1 (STORE_UNLIMITED) = no limit. */
#define STORE_UNLIMITED (-1)
typedef struct store_quota {
    char partner[STORE_NAME_MAX];
    char period[8];
    int64_t gpu_seconds; /* GPU budget, weighted GPU-seconds */
    int64_t cpu_seconds; /* CPU budget, CPU-seconds */
    int max_gpus, max_running_jobs, max_queued_jobs, max_walltime_minutes, user_max_gpus;
    int64_t updated_at;
} store_quota;

/* One ledger row. kind "hold" (+amounts, at dispatch), "release" (-amounts, when the hold ends)
 * or "charge" (+amounts, what the job really used). Per partner and period:
 * used = sum(charge), held = sum(hold) + sum(release). */
typedef struct store_ledger_entry {
    int64_t id;
    int64_t job_id;
    char partner[STORE_NAME_MAX];
    char period[8];
    char kind[8];
    int64_t gpu_seconds, cpu_seconds;
    int64_t at;
} store_ledger_entry;

/* Ledger sums of one partner and period. */
typedef struct store_ledger_totals {
    char partner[STORE_NAME_MAX];
    char period[8];
    int64_t used_gpu_seconds, held_gpu_seconds, used_cpu_seconds, held_cpu_seconds;
    int64_t last_charge_at; /* 0 = no charge */
} store_ledger_totals;

typedef struct store_token {
    int64_t id;
    int64_t user_id;
    char user[STORE_NAME_MAX];
    char label[STORE_NAME_MAX];
    int64_t created_at;
    int64_t revoked_at; /* 0 = active */
    int64_t expires_at; /* unix seconds, 0 = never */
} store_token;

/* An active token as authentication needs it: its hash, expiry and user. */
typedef struct store_token_auth {
    int64_t id;
    char hash[64 + 1];  /* SHA-256 hex */
    int64_t expires_at; /* 0 = never */
    store_user user;
} store_token_auth;

typedef struct store_job {
    int64_t id;
    int64_t user_id;
    char user[STORE_NAME_MAX];
    char partner[STORE_NAME_MAX];
    char unix_user[STORE_NAME_MAX];
    char name[128];
    int gpus;
    char gpu_type[32];
    int cpus_per_task;
    int64_t mem_mb;
    int time_minutes;
    char state[STORE_STATE_MAX];
    char reason[STORE_REASON_MAX]; /* why it waits or failed; "" if none */
    int64_t slurm_job_id;          /* 0 = not in Slurm yet */
    bool has_exit_code;
    int exit_code;
    bool cancel_requested;
    int64_t submitted_at, dispatched_at, started_at, ended_at; /* unix seconds, 0 = not yet */
    char period[8];           /* period of its hold and charge ("" before dispatch) */
    int64_t hold_gpu_seconds; /* its hold while in Slurm, 0 once released */
    int64_t hold_cpu_seconds;
    int64_t charge_gpu_seconds; /* what it was charged at its end */
    int64_t charge_cpu_seconds;
    /* read-only here: set by store_job_array_insert */
    int64_t array_job_id; /* the array it is a task of (its first task's id), 0 = none */
    int array_task_id;    /* its index in that array, -1 = none */
    int array_max;        /* the array's %max, 0 = none */
    int cpus; /* the job's total CPUs (jobreq_totals_get); 0 = as cpus_per_task (no extra row) */
    char request_id[65]; /* its submission's request id (request_id.h; table job_requests), "" if
                            none (jobs from before schema v8) */
    bool has_dependency; /* read-only here: it has rows in job_dependencies (its conditions) */
    /* read-only here: how many runs of it Slurm ended by requeueing it (store_job_run_end), each
     * charged; 0 = never requeued (store_job_runs_list has them). Its started_at/ended_at are its
     * current run's, its charge is every run's. */
    int restarts;
} store_job;

/* Opens (creating if needed) the database at `path`, in WAL mode, and migrates its schema.
 * Returns 0 and sets *out (free with store_free), or a negative errno with a message in err. */
int store_new(const char *path, store **out, char *err, size_t errlen);

/* Closes the database. Accepts NULL. A batch or change the calling thread still holds is rolled
 * back; none may be held by another thread. */
void store_free(store *s);

/* A random id made when the database was created; tags this broker's jobs in Slurm. Owned by s. */
const char *store_instance_id(const store *s);

/* --- batches (group commit) and changes ---
 *
 * A batch is one SQLite transaction that many changes share, so that they reach the disk with one
 * commit (one fsync). While the calling thread holds a batch, every store_* call it makes runs
 * inside it: a write runs in a savepoint of its own, so that its failure undoes its own writes
 * only and returns its error as when called alone, and reads see the batch's writes not yet
 * committed. Calls from other threads are not in the batch: their writes wait for it to end, and
 * their reads see the last commit and do not wait. A thread holds at most one batch or change at a
 * time, over all stores.
 *
 * What a call in a batch reports (a new id, an audit entry's seq and hash) stands only once the
 * batch commits with that call kept: an id or seq whose insert was undone is handed out again.
 * Should SQLite drop the whole batch itself (a full disk or an I/O error can make it roll the
 * transaction back), the call that met it and every later call in the batch return that error,
 * and so does store_batch_commit. */

/* On the calling thread: takes the store's write lock, waiting for other writers, and begins a
 * batch (BEGIN IMMEDIATE). Returns 0 (end it with store_batch_commit or store_batch_rollback on
 * the same thread), -EINVAL (this thread already holds a batch or a change), -EBUSY (another
 * process keeps the database locked), -ENOSPC, -EIO. */
int store_batch_begin(store *s);

/* Commits the calling thread's batch (one fsync) and releases the write lock, whatever the result.
 * Returns 0: every change in it is on disk. On failure nothing of it is on disk: -ENOSPC (disk
 * full), -EIO, or the error that made SQLite drop the batch earlier (a call in it returned it
 * too); -EINVAL when a change is still open in it (the batch is rolled back), or when this
 * thread holds no batch (nothing happens). */
int store_batch_commit(store *s);

/* Rolls back the calling thread's batch and releases the write lock. Does nothing when this thread
 * holds no batch. */
void store_batch_rollback(store *s);

/* Returns true on the thread that holds a batch of s, between store_batch_begin and its end. */
bool store_in_batch(const store *s);

/* Begins a change: several store calls that stand or fall together (a job insert and its audit
 * entry, say). In a batch (or an enclosing change) it is a savepoint; elsewhere it takes the write
 * lock and begins a transaction of its own, so that the change is atomic either way. Changes nest.
 * Returns 0 (end it with store_change_end on the same thread), -EINVAL (this thread holds another
 * store's batch), -EBUSY, -ENOSPC, -EIO, or the error that made SQLite drop the batch. */
int store_change_begin(store *s);

/* Ends the innermost change of the calling thread. rc is the change's result: when it is not 0
 * every write since store_change_begin is undone and rc is returned; when it is 0 the writes are
 * kept (in the batch, to commit with it; outside a batch, committed now) and 0 is returned, or
 * the error that kept them from being kept (then they are undone). -EINVAL: no change open. */
int store_change_end(store *s, int rc);

/* Checkpoints the write-ahead log into the database file and truncates the log to 0 bytes
 * (PRAGMA wal_checkpoint(TRUNCATE)), so that it does not stay large after a burst (SQLite's
 * autocheckpoint keeps running; PRAGMA journal_size_limit caps the log at 64 MiB when it restarts).
 * Blocking: waits for the write lock and for readers of the log; call it from a worker thread
 * when idle (the registry does, between batches). Returns 0, -EBUSY (readers or another process
 * kept it from finishing: try later), -EINVAL (this thread holds a batch or a change), -EIO. */
int store_checkpoint(store *s);

/* Writes one small row (meta "probe") in a transaction of its own and commits it (an fsync):
 * proves the database can take writes again after a failure (a disk full). Returns 0, -ENOSPC,
 * -EIO, -EINVAL (this thread holds a batch or a change). */
int store_probe(store *s);

/* --- partners --- */

/* Inserts a partner with a fair-share weight (>= 1). Returns 0 (sets *id when id is not NULL),
 * -EEXIST if the name is taken, -EINVAL, -EIO. */
int store_partner_insert(store *s, const char *name, const char *description, int share_weight,
                         int64_t *id);

/* Changes a partner's description (NULL = keep) and share weight (0 = keep). Returns 0, -ENOENT
 * (no such partner), -EINVAL, -EIO. */
int store_partner_update(store *s, const char *name, const char *description, int share_weight);

/* Finds a partner by name. Returns 0, -ENOENT, -EIO. */
int store_partner_get(store *s, const char *name, store_partner *out);

/* Lists partners by name. Returns 0 and a malloc'd array in *out (caller frees) of *n items. */
int store_partner_list(store *s, store_partner **out, size_t *n);

/* --- users --- */

/* Inserts a user of an existing partner, with a role and a category (the caller validates their
 * values). Returns 0 (sets *id), -EEXIST (name taken), -ENOENT (no such partner), -ENOTUNIQ (a
 * user of another partner maps to unix_user: one Unix account serves one partner only), -EINVAL,
 * -EIO. */
int store_user_insert(store *s, const char *name, const char *partner, const char *unix_user,
                      const char *role, const char *category, int64_t *id);

/* --- quotas --- */

/* Creates or replaces the quota of q->partner for q->period (updated_at = now). Returns 0,
 * -ENOENT (no such partner), -EINVAL, -EIO. */
int store_quota_set(store *s, const store_quota *q);

/* Reads the quota of `partner` for `period`. Returns 0, -ENOENT (never set), -EIO. */
int store_quota_get(store *s, const char *partner, const char *period, store_quota *out);

/* Lists quotas (of `period` only, when not NULL) by partner then period. Returns 0 and a malloc'd
 * array (caller frees; NULL when *n is 0). */
int store_quota_list(store *s, const char *period, store_quota **out, size_t *n);

/* --- ledger --- */

/* Sums the ledger per partner and period. Same ownership as store_quota_list. */
int store_ledger_totals_list(store *s, store_ledger_totals **out, size_t *n);

/* Lists ledger rows in id order: of `partner` (NULL = all), of `job_id` (0 = all), of `kind`
 * (NULL = all), at or after `since`. Same ownership as store_quota_list. */
int store_ledger_list(store *s, const char *partner, int64_t job_id, const char *kind,
                      int64_t since, store_ledger_entry **out, size_t *n);

/* Finds a user by name. Returns 0, -ENOENT, -EIO. */
int store_user_get(store *s, const char *name, store_user *out);

/* Finds a user by id. Returns 0, -ENOENT, -EIO. */
int store_user_get_id(store *s, int64_t id, store_user *out);

/* Changes user `name`'s Unix account (unix_user NULL = keep) and disabled flag (-1 = keep, 0 =
 * enabled, 1 = disabled). Returns 0, -ENOENT (no such user), -ENOTUNIQ (a user of another partner
 * maps to unix_user), -EINVAL, -EIO. The caller validates the account itself. */
int store_user_update(store *s, const char *name, const char *unix_user, int disabled);

/* Lists users (of `partner` only, when not NULL). Returns 0 and a malloc'd array (caller frees). */
int store_user_list(store *s, const char *partner, store_user **out, size_t *n);

/* --- tokens (only their SHA-256 hashes are stored) --- */

/* Stores a token hash for user `user_id`. Returns 0 (sets *id), -ENOENT (no such user), -EEXIST
 * (same hash already stored), -EIO. */
int store_token_insert(store *s, int64_t user_id, const char *hash_hex, const char *label,
                       int64_t *id);

/* As store_token_insert, with an expiry (unix seconds, 0 = never). Returns the same, -EINVAL for a
 * negative expiry. */
int store_token_insert_until(store *s, int64_t user_id, const char *hash_hex, const char *label,
                             int64_t expires_at, int64_t *id);

/* Reads token `id` (revoked or not). Returns 0, -ENOENT, -EIO. */
int store_token_get(store *s, int64_t id, store_token *out);

/* Lists every active (not revoked) token with its hash, expiry and user, expired ones included,
 * in id order: what the registry authenticates from. Returns 0 and a malloc'd array (caller
 * frees; NULL when *n is 0), -ENOMEM, -EIO. */
int store_token_active_list(store *s, store_token_auth **out, size_t *n);

/* Finds the user owning an active (not revoked) token hash. Returns 0, -ENOENT, -EIO. */
int store_token_lookup(store *s, const char *hash_hex, store_user *out);

/* Revokes token `id`. Returns 0, -ENOENT (no such active token), -EIO. */
int store_token_revoke(store *s, int64_t id);

/* Lists tokens (of `user_id` only, when > 0). Returns 0 and a malloc'd array (caller frees). */
int store_token_list(store *s, int64_t user_id, store_token **out, size_t *n);

/* --- jobs --- */

/* Inserts job `j` (user_id, the request fields and request_id, "" or well-formed by
 * request_id_valid, are read; user/partner/unix_user are filled from the user row) with its script,
 * in state queued, submitted_at = now. Returns 0 and fills j->id, j->state and the times; -ENOENT
 * (no such user), -EINVAL (a field too long, a malformed request_id), -EIO. */
int store_job_insert(store *s, store_job *j, const char *script);

/* Sets the wait reason of a queued job (no-op if the job is not queued or the reason is the same).
 * Returns 0, -ENOENT, -EIO. */
int store_job_reason_set(store *s, int64_t id, const char *reason);

/* Reads job `id`. Returns 0, -ENOENT, -EIO. */
int store_job_get(store *s, int64_t id, store_job *out);

/* Reads the script of job `id` into a malloc'd string *out (caller frees). Returns 0, -ENOENT. */
int store_job_script_get(store *s, int64_t id, char **out);

/* Reads the sbatch options of job `id` (job_options.c's JSON text, "" when it asks none) into a
 * malloc'd string *out (caller frees). Returns 0, -ENOENT. */
int store_job_options_get(store *s, int64_t id, char **out);

/* Records the total CPUs and the options text (copied) of queued job `id`, once, inside the
 * caller's change (the registry calls it right after store_job_insert, in the same change, for a
 * job whose CPUs differ from its cpus_per_task or that asks sbatch options). Returns 0, -ENOENT
 * (no such queued job), -EINVAL or -errno (-EIO when it was already recorded). */
int store_job_extra_set(store *s, int64_t id, int cpus, const char *options);

/* Lists jobs newest first, of `user_id` only when > 0, of `partner` only when not NULL, at most
 * `limit` (0 = no limit); an array's tasks appear once, as its first task (store_job_array_*
 * reads the others). Returns 0 and a malloc'd array (caller frees; NULL when *n is 0). */
int store_job_list(store *s, int64_t user_id, const char *partner, size_t limit, store_job **out,
                   size_t *n);

/* Lists the jobs the broker still follows: states queued, dispatching, dispatched and every
 * non-terminal Slurm state, oldest first. Same ownership as store_job_list. */
int store_job_list_active(store *s, store_job **out, size_t *n);

/* Lists the active jobs that are in Slurm or being submitted to it: states dispatching, dispatched
 * and every non-terminal Slurm state (the active jobs but the queued ones), oldest first. Reads
 * them through an index of their own, so it costs nothing per queued job. Same ownership as
 * store_job_list. */
int store_job_list_in_slurm(store *s, store_job **out, size_t *n);

/* Starts the dispatch of queued job `id` in one transaction: checks that the hold fits what is
 * left of its partner's budgets for `period` (budget - used - held; a quota never set leaves 0, an
 * unlimited budget always fits), writes a "hold" ledger row, records period and hold on the job,
 * and moves it queued -> dispatching. Returns 0, -EAGAIN (not queued), -EDQUOT (the hold does not
 * fit: nothing written), -ENOENT, -EIO. */
int store_job_dispatch_begin(store *s, int64_t id, const char *period, int64_t hold_gpu_seconds,
                             int64_t hold_cpu_seconds);

/* Moves job `id` from `from_state` to `to_state`, setting reason (NULL = ""), in one transaction.
 * When to_state is queued or terminal and the job holds budget, the hold is released in the same
 * transaction ("release" row, job hold set to 0). A terminal to_state sets ended_at.
 * Returns 0, -ENOENT (no such job), -EAGAIN (the job is no longer in from_state), -EIO. */
int store_job_transition(store *s, int64_t id, const char *from_state, const char *to_state,
                         const char *reason);

/* Records that Slurm accepted job `id` as `slurm_job_id`: dispatching -> dispatched,
 * dispatched_at = now. Returns 0, -EAGAIN (not dispatching), -ENOENT, -EIO. */
int store_job_set_dispatched(store *s, int64_t id, int64_t slurm_job_id);

/* Records what Slurm says of job `id`: state, reason, start/end times (0 = unknown) and exit code
 * (has_exit_code). Only changed fields are written. A terminal job is never changed again. When
 * the new state is terminal, the same transaction releases the job's hold ("release" row) and
 * writes its charge (j->charge_gpu_seconds/cpu_seconds, a "charge" row when either is > 0).
 * Returns 0, -ENOENT, -EIO. */
int store_job_update(store *s, const store_job *j);

/* Asks to cancel job `id`. A queued job becomes cancelled at once (*now_cancelled = true); a job
 * in Slurm gets cancel_requested set, for the broker to act on. Returns 0, -ENOENT, -EALREADY
 * (already terminal), -EIO. */
int store_job_cancel_request(store *s, int64_t id, bool *now_cancelled);

/* --- usage (from the ledger's charges) --- */

/* What to sum. `by`: "partner", "user", "category", "gpu-type", "day" (UTC "YYYY-MM-DD" of the
 * charge), "month" (UTC "YYYY-MM" of the charge) or "total". Strings are borrowed. */
typedef struct store_usage_filter {
    const char *by;
    const char *partner; /* NULL = all */
    const char *user;    /* NULL = all */
    int64_t from, to;    /* charge time: from <= at < to; 0 = unbounded */
} store_usage_filter;

typedef struct store_usage_row {
    char key[STORE_NAME_MAX];    /* the group's value ("" for "total") */
    int64_t gpu_seconds;         /* weighted GPU-seconds charged (sum of the charge rows) */
    int64_t cpu_seconds;         /* CPU-seconds charged */
    int64_t elapsed_gpu_seconds; /* GPUs x elapsed, unweighted */
    int64_t jobs;                /* charged jobs */
} store_usage_row;

/* Sums the ledger's charge rows by f->by, ordered by key. Returns 0 and a malloc'd array (caller
 * frees; NULL when *n is 0), -EINVAL (unknown `by`), -EIO. The sum of the rows equals the sum of
 * the matching charge rows exactly. */
int store_usage_query(store *s, const store_usage_filter *f, store_usage_row **out, size_t *n);

/* Lists the jobs charged to `partner` for `period` (ledger period) with their charges, by end
 * time. Same ownership as store_job_list. */
int store_job_list_charged(store *s, const char *partner, const char *period, store_job **out,
                           size_t *n);

/* --- audit trail (a hash chain: see scheduler/audit.h) --- */

#define STORE_HASH_HEX 65

typedef struct store_audit_entry {
    int64_t seq;                  /* 1, 2, 3, ... set by store_audit_append */
    int64_t at;                   /* unix seconds; 0 in an append = now */
    char actor[STORE_NAME_MAX];   /* user name, "antennad" (the broker), "-" (unauthenticated) */
    char partner[STORE_NAME_MAX]; /* "" when none */
    char action[48];              /* e.g. "job.submitted", "auth.failed" */
    char *details;                /* JSON object text; owned by the entry */
    char prev_hash[STORE_HASH_HEX];
    char hash[STORE_HASH_HEX];
} store_audit_entry;

/* Computes the hash of `e` (all its fields but `hash`, prev_hash included) into out[65]. Returns
 * 0 or a negative errno. */
typedef int (*store_audit_hash_fn)(const store_audit_entry *e, char out[STORE_HASH_HEX], void *arg);

/* Appends `e` in one transaction: sets e->seq to the last seq + 1, e->prev_hash to the last hash
 * ("" for the first), e->at to now when 0, then e->hash with `fn`, and inserts it. e->details is
 * borrowed (NULL = "{}"). Returns 0, or the hash function's error, or -EIO. */
int store_audit_append(store *s, store_audit_entry *e, store_audit_hash_fn fn, void *arg);

/* Lists entries in seq order with seq > after_seq (INT64_MIN = every row, one at seq INT64_MIN
 * included), at >= since (0 = all), of `actor` and `action`
 * (NULL = any; an action ending in '.' matches as a prefix), at most `limit` (0 = no limit).
 * Returns 0 and a malloc'd array to free with store_audit_entries_free, -EIO. Rows are returned
 * as stored, even when tampered with (verification is the caller's job). */
int store_audit_list(store *s, int64_t after_seq, int64_t since, const char *actor,
                     const char *action, size_t limit, store_audit_entry **out, size_t *n);

/* Frees what store_audit_list returned. Accepts NULL. */
void store_audit_entries_free(store_audit_entry *e, size_t n);

/* --- idempotency records ---
 *
 * The first answer to a request that carried an idempotency key, kept so that a retry with the
 * same key gets the same answer instead of a second job. One record per user and key. */

#define STORE_IDEM_KEY_MAX 256 /* key bytes + NUL */

typedef struct store_idem {
    int64_t user_id;
    char key[STORE_IDEM_KEY_MAX];
    char body_hash[STORE_HASH_HEX]; /* hash of the request body, to tell a replay from a misuse */
    int64_t job_id;                 /* the job it made, 0 = none */
    int status;                     /* the HTTP status answered */
    char *body;                     /* the body answered; malloc'd, owned by the struct */
    int64_t created_at;             /* unix seconds */
} store_idem;

/* Reads the record of `user_id` and `key` into *out (all of it overwritten; out->body is NULL
 * unless 0 is returned). Returns 0 (free out->body with store_idem_clear), -ENOENT, -EINVAL (key
 * empty or longer than STORE_IDEM_KEY_MAX - 1 bytes), -ENOMEM, -EIO. */
int store_idem_get(store *s, int64_t user_id, const char *key, store_idem *out);

/* Stores record *e (borrowed; body NULL = ""), created_at = now when e->created_at is 0. A record
 * is never replaced. Returns 0, -EEXIST (this user already used this key), -EINVAL (bad key or
 * hash), -ENOSPC, -EIO. */
int store_idem_put(store *s, const store_idem *e);

/* Frees e->body and sets it to NULL. Accepts NULL. */
void store_idem_clear(store_idem *e);

/* Deletes at most `max` (0 = no limit) records created before `before` (unix seconds), oldest
 * first, and sets *removed (when not NULL) to their number. Returns 0, -ENOSPC, -EIO. */
int store_idem_prune(store *s, int64_t before, size_t max, size_t *removed);

/* --- refunds and corrections (ledger entries, never edits) --- */

/* One refund or correction: a "charge" ledger row of the signed difference (a refund is
 * negative), with why and by whom. */
typedef struct store_adjustment {
    int64_t ledger_id;
    int64_t job_id;
    char partner[STORE_NAME_MAX];
    char period[8];
    char kind[16];                    /* "refund" | "correction" */
    int64_t gpu_seconds, cpu_seconds; /* signed differences */
    char reason[STORE_REASON_MAX];
    char actor[STORE_NAME_MAX];
    int64_t at;
} store_adjustment;

/* In one transaction: appends a "charge" ledger row of gpu_delta/cpu_delta to ended job `id`'s
 * period (so the ledger's sums, usage and quotas' used figures count it), its ledger_adjustments
 * row (kind "refund" or "correction", reason and actor, both non-empty) and sets the job's charge
 * fields to the new net charge; fills *out (may be NULL) with the job after. Returns 0, -ENOENT
 * (no such job), -EAGAIN (the job has not ended, or was never dispatched: nothing to adjust),
 * -ERANGE (the net charge would fall below 0: a refund can't exceed what was charged), -EINVAL
 * (bad kind, empty reason, both deltas 0), -ENOSPC, -EIO. Nothing is written on error. */
int store_job_adjust(store *s, int64_t id, const char *kind, int64_t gpu_delta, int64_t cpu_delta,
                     const char *reason, const char *actor, store_job *out);

/* Lists adjustments in ledger order, of `partner` and of `period` (NULL = all), of `job_id` (0 =
 * all). Same ownership as store_quota_list. */
int store_adjustment_list(store *s, const char *partner, const char *period, int64_t job_id,
                          store_adjustment **out, size_t *n);

/* --- reads for the reconciliation --- */

/* Lists the jobs of ledger period `period` that reached Slurm (slurm_job_id > 0), by id, through
 * an index. Same ownership as store_job_list. */
int store_job_list_period(store *s, const char *period, store_job **out, size_t *n);

/* One job's charge rows in a period: their sum, and the part of it that refunds made since its last
 * correction are (<= 0; a correction states the job's whole charge, earlier refunds included). */
typedef struct store_ledger_job_sum {
    int64_t job_id;
    int64_t charge_gpu_seconds;
    int64_t refund_gpu_seconds;
} store_ledger_job_sum;

/* Sums the ledger's charge rows of `period` per job, by job id, from the rows themselves (not the
 * jobs' charge fields), through an index. Same ownership as store_quota_list. */
int store_ledger_job_sums(store *s, const char *period, store_ledger_job_sum **out, size_t *n);

/* Reads the job Slurm knows as `slurm_job_id` (the newest, should ids be reused). Returns 0,
 * -ENOENT, -EIO. */
int store_job_get_by_slurm_id(store *s, int64_t slurm_job_id, store_job *out);

/* --- job arrays (each task is a job of its own; see store_job's array fields) --- */

/* An array: its id is its first task's job id (like Slurm's %A). */
typedef struct store_job_array {
    int64_t array_job_id;
    char spec[128]; /* as the user wrote it, e.g. "0-3%2" */
    int task_count;
    int max_running; /* %max, 0 = none */
    int task_min, task_max, task_step;
} store_job_array;

/* Ties the n jobs job_ids[] (already inserted, in a change with them; job_ids[0] ==
 * a->array_job_id) to array `a` as its tasks of indices task_ids[], with the array's row, in one
 * savepoint. Returns 0, -EINVAL, -EEXIST (a job already is a task, an index twice), -ENOSPC,
 * -EIO. Nothing is written on error. */
int store_job_array_insert(store *s, const store_job_array *a, const int64_t *job_ids,
                           const int *task_ids, size_t n);

/* Reads array `array_job_id`. Returns 0, -ENOENT (no such array), -EIO. */
int store_job_array_get(store *s, int64_t array_job_id, store_job_array *out);

/* Lists the tasks of array `array_job_id` by id (which is their index order), through the index
 * (never the queue). Same ownership as store_job_list; none when no such array. */
int store_job_array_tasks(store *s, int64_t array_job_id, store_job **out, size_t *n);

/* Reads the task of index `task_id` of array `array_job_id`. Returns 0, -ENOENT, -EIO. */
int store_job_array_task_get(store *s, int64_t array_job_id, int task_id, store_job *out);

/* How many of an array's tasks are in each state. */
typedef struct store_state_count {
    char state[STORE_STATE_MAX];
    int64_t n;
} store_state_count;

/* Counts the tasks of array `array_job_id` by state (states in name order; none when no such
 * array), through the index. Same ownership as store_job_list. */
int store_job_array_counts(store *s, int64_t array_job_id, store_state_count **out, size_t *n);

/* Returns true when `state` is terminal (completed, failed, cancelled, timeout, ...). */
bool store_state_terminal(const char *state);

/* --- dependencies (issue 9) --- */

#define STORE_DEPENDENCY_MAX 64 /* rows of one job: its conditions, a singleton's expansion */

/* One condition of job `job_id` on job `prereq_id` (0: a singleton's own row). */
typedef struct store_dependency {
    int64_t job_id;
    char kind[16]; /* after, afterok, afternotok, afterany, singleton */
    int64_t prereq_id;
} store_dependency;

/* Writes the n conditions of job `job_id` (in this order) in one savepoint. Registry only.
 * Returns 0, -EINVAL (bad kind, n > STORE_DEPENDENCY_MAX), -EEXIST (already written), or a
 * store error. */
int store_dependency_insert(store *s, int64_t job_id, const store_dependency *d, size_t n);

/* The conditions of job `job_id` in their order, into a malloc'd array (caller frees; NULL and
 * *n = 0 when it has none). Returns 0 or a negative errno. */
int store_dependency_list(store *s, int64_t job_id, store_dependency **out, size_t *n);

/* The conditions of every queued job, by job id then order (the registry's start-up rebuild of
 * its dependency index). Returns 0 (malloc'd *out, caller frees) or a negative errno. */
int store_dependency_list_queued(store *s, store_dependency **out, size_t *n);

/* --- runs of a requeued job (issue 9, --requeue) --- */

/* One run of a job that ended when Slurm requeued the job (a node failure, a preemption, an
 * administrator's requeue of a --requeue job). */
typedef struct store_run {
    int64_t job_id;
    int run;  /* 1, 2, ... in order (set by store_job_run_end) */
    int runs; /* >= 1: the Slurm runs this row covers (several ended between two looks) */
    int64_t slurm_job_id;
    int64_t started_at, ended_at; /* unix seconds */
    int64_t elapsed_seconds;
    int64_t charge_gpu_seconds, charge_cpu_seconds; /* its charge (policy_job_run_ended) */
} store_run;

/* Records the end of one run of job `r->job_id` (in Slurm, not ended) in one savepoint: its row
 * in job_runs (r->run is ignored: the next number), its charge in the ledger (a "charge" row,
 * added to the job's charge fields, in the job's period; none when 0), and the job's started_at
 * back to 0 (its next run sets it). The job's hold is left as it is. Registry only. Returns 0,
 * -EINVAL, -ENOENT, -EALREADY (the job is queued or ended), or a store error. */
int store_job_run_end(store *s, const store_run *r);

/* The ended runs of job `job_id`, in order, into a malloc'd array (caller frees; NULL and *n = 0
 * when it has none). Returns 0 or a negative errno. */
int store_job_runs_list(store *s, int64_t job_id, store_run **out, size_t *n);

/* The ids of user `user_id`'s jobs named `name` with an id below `before_id` that have not ended,
 * ascending, into a malloc'd array (caller frees). Returns 0 or a negative errno. */
int store_job_list_active_named(store *s, int64_t user_id, const char *name, int64_t before_id,
                                int64_t **ids, size_t *n);

#endif
