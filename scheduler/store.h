/* store.h - antennad's durable state in SQLite (WAL): partners, users, tokens, jobs.
 *
 * The only module that includes sqlite3.h. Every function is blocking: call it from a worker thread
 * (uv_queue_work), never from the event-loop thread. Each call is one transaction; calls from
 * several threads are serialised by an internal mutex. A call that returns 0 after a write has
 * committed it to disk (synchronous=FULL), so an acknowledged job survives a crash.
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
    int64_t created_at; /* unix seconds */
} store_partner;

typedef struct store_user {
    int64_t id;
    char name[STORE_NAME_MAX];
    char partner[STORE_NAME_MAX]; /* partner name */
    char unix_user[STORE_NAME_MAX];
    char role[16]; /* "user" | "admin" (more roles later) */
    int64_t created_at;
} store_user;

typedef struct store_token {
    int64_t id;
    int64_t user_id;
    char user[STORE_NAME_MAX];
    char label[STORE_NAME_MAX];
    int64_t created_at;
    int64_t revoked_at; /* 0 = active */
} store_token;

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
} store_job;

/* Opens (creating if needed) the database at `path`, in WAL mode, and migrates its schema.
 * Returns 0 and sets *out (free with store_free), or a negative errno with a message in err. */
int store_new(const char *path, store **out, char *err, size_t errlen);

/* Closes the database. Accepts NULL. */
void store_free(store *s);

/* A random id made when the database was created; tags this broker's jobs in Slurm. Owned by s. */
const char *store_instance_id(const store *s);

/* --- partners --- */

/* Inserts a partner. Returns 0 (sets *id when id is not NULL), -EEXIST if the name is taken, -EIO.
 */
int store_partner_insert(store *s, const char *name, const char *description, int64_t *id);

/* Finds a partner by name. Returns 0, -ENOENT, -EIO. */
int store_partner_get(store *s, const char *name, store_partner *out);

/* Lists partners by name. Returns 0 and a malloc'd array in *out (caller frees) of *n items. */
int store_partner_list(store *s, store_partner **out, size_t *n);

/* --- users --- */

/* Inserts a user of an existing partner. Returns 0 (sets *id), -EEXIST (name taken), -ENOENT
 * (no such partner), -EIO. */
int store_user_insert(store *s, const char *name, const char *partner, const char *unix_user,
                      const char *role, int64_t *id);

/* Finds a user by name. Returns 0, -ENOENT, -EIO. */
int store_user_get(store *s, const char *name, store_user *out);

/* Lists users (of `partner` only, when not NULL). Returns 0 and a malloc'd array (caller frees). */
int store_user_list(store *s, const char *partner, store_user **out, size_t *n);

/* --- tokens (only their SHA-256 hashes are stored) --- */

/* Stores a token hash for user `user_id`. Returns 0 (sets *id), -ENOENT (no such user), -EEXIST
 * (same hash already stored), -EIO. */
int store_token_insert(store *s, int64_t user_id, const char *hash_hex, const char *label,
                       int64_t *id);

/* Finds the user owning an active (not revoked) token hash. Returns 0, -ENOENT, -EIO. */
int store_token_lookup(store *s, const char *hash_hex, store_user *out);

/* Revokes token `id`. Returns 0, -ENOENT (no such active token), -EIO. */
int store_token_revoke(store *s, int64_t id);

/* Lists tokens (of `user_id` only, when > 0). Returns 0 and a malloc'd array (caller frees). */
int store_token_list(store *s, int64_t user_id, store_token **out, size_t *n);

/* --- jobs --- */

/* Inserts job `j` (user_id and the request fields are read; user/partner/unix_user are filled
 * from the user row) with its script, in state queued, submitted_at = now. Returns 0 and fills
 * j->id, j->state and the times; -ENOENT (no such user), -EIO. */
int store_job_insert(store *s, store_job *j, const char *script);

/* Reads job `id`. Returns 0, -ENOENT, -EIO. */
int store_job_get(store *s, int64_t id, store_job *out);

/* Reads the script of job `id` into a malloc'd string *out (caller frees). Returns 0, -ENOENT. */
int store_job_script_get(store *s, int64_t id, char **out);

/* Lists jobs newest first, of `user_id` only when > 0, at most `limit` (0 = no limit). Returns 0
 * and a malloc'd array (caller frees; NULL when *n is 0). */
int store_job_list(store *s, int64_t user_id, size_t limit, store_job **out, size_t *n);

/* Lists the jobs the broker still follows: states queued, dispatching, dispatched and every
 * non-terminal Slurm state, oldest first. Same ownership as store_job_list. */
int store_job_list_active(store *s, store_job **out, size_t *n);

/* Moves job `id` from `from_state` to `to_state`, setting reason (NULL = ""), in one transaction.
 * Returns 0, -ENOENT (no such job), -EAGAIN (the job is no longer in from_state), -EIO. */
int store_job_transition(store *s, int64_t id, const char *from_state, const char *to_state,
                         const char *reason);

/* Records that Slurm accepted job `id` as `slurm_job_id`: dispatching -> dispatched,
 * dispatched_at = now. Returns 0, -EAGAIN (not dispatching), -ENOENT, -EIO. */
int store_job_set_dispatched(store *s, int64_t id, int64_t slurm_job_id);

/* Records what Slurm says of job `id`: state, reason, start/end times (0 = unknown) and exit code
 * (has_exit_code). Only changed fields are written. A terminal job is never changed again.
 * Returns 0, -ENOENT, -EIO. */
int store_job_update(store *s, const store_job *j);

/* Asks to cancel job `id`. A queued job becomes cancelled at once (*now_cancelled = true); a job
 * in Slurm gets cancel_requested set, for the broker to act on. Returns 0, -ENOENT, -EALREADY
 * (already terminal), -EIO. */
int store_job_cancel_request(store *s, int64_t id, bool *now_cancelled);

/* Returns true when `state` is terminal (completed, failed, cancelled, timeout, ...). */
bool store_state_terminal(const char *state);

#endif
