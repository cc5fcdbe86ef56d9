/* store.c - antennad's durable state in SQLite. Never builds SQL from user data, never runs on the
 * event-loop thread, never logs token hashes, scripts or audit details, never updates or deletes a
 * ledger or audit row. */
#include "store.h"

#include "log.h"
#include "request_id.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The terminal states, as one SQL list (used by the active-jobs query and its partial index, which
 * must match word for word) and as an array for store_state_terminal. Keep the two in step.
 * NOT_IN_SLURM_SQL adds queued: the states of a job neither in Slurm nor being submitted to it
 * (the in-Slurm query and its partial index, word for word too). */
#define TERMINAL_LIST                                                                              \
    "'completed','failed','cancelled','timeout','node_fail','preempted','boot_fail','deadline',"   \
    "'out_of_memory','lost'"
#define TERMINAL_SQL     "(" TERMINAL_LIST ")"
#define NOT_IN_SLURM_SQL "('queued'," TERMINAL_LIST ")"

static const char *const terminal_states[] = {
    "completed", "failed",   "cancelled",     "timeout", "node_fail",
    "preempted", "deadline", "out_of_memory", "lost",    "boot_fail",
};

#define STORE_BUSY_TIMEOUT_MS 10000

/* Schema migrations: migrations[v] brings a database from user_version v to v + 1. Append only;
 * never edit a step that has shipped. Static SQL only. */
static const char *const migrations[] = {
    /* v0 -> v1 */
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL);"
    "INSERT INTO meta (key, value) VALUES ('instance_id', lower(hex(randomblob(8))));"
    "CREATE TABLE partners ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  partner_id INTEGER NOT NULL REFERENCES partners(id),"
    "  unix_user TEXT NOT NULL,"
    "  role TEXT NOT NULL DEFAULT 'user',"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX users_partner ON users (partner_id);"
    "CREATE TABLE tokens ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  hash TEXT NOT NULL UNIQUE,"
    "  label TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX tokens_user ON tokens (user_id);"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  user_name TEXT NOT NULL,"
    "  partner TEXT NOT NULL,"
    "  unix_user TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  gpus INTEGER NOT NULL,"
    "  gpu_type TEXT NOT NULL,"
    "  cpus_per_task INTEGER NOT NULL,"
    "  mem_mb INTEGER NOT NULL,"
    "  time_minutes INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  slurm_job_id INTEGER NOT NULL DEFAULT 0,"
    "  exit_code INTEGER," /* NULL = no exit code yet */
    "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
    "  submitted_at INTEGER NOT NULL,"
    "  dispatched_at INTEGER NOT NULL DEFAULT 0,"
    "  started_at INTEGER NOT NULL DEFAULT 0,"
    "  ended_at INTEGER NOT NULL DEFAULT 0,"
    "  script TEXT NOT NULL);" /* last: listing jobs never reads its overflow pages */
    "CREATE INDEX jobs_user ON jobs (user_id, id);"
    "CREATE INDEX jobs_state ON jobs (state);"
    "CREATE INDEX jobs_active ON jobs (id) WHERE state NOT IN " TERMINAL_SQL ";",

    /* v1 -> v2: share weights, user categories, quotas, the ledger, job holds and charges. The
     * jobs table is rebuilt (ALTER TABLE ADD COLUMN would put the new columns after script),
     * keeping every row and its AUTOINCREMENT counter, so that ids are never reused. No table
     * references jobs before this step, so dropping it checks no foreign key. */
    "ALTER TABLE partners ADD COLUMN share_weight INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE users ADD COLUMN category TEXT NOT NULL DEFAULT 'researcher';"
    "CREATE TABLE jobs_v2 ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  user_name TEXT NOT NULL,"
    "  partner TEXT NOT NULL,"
    "  unix_user TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  gpus INTEGER NOT NULL,"
    "  gpu_type TEXT NOT NULL,"
    "  cpus_per_task INTEGER NOT NULL,"
    "  mem_mb INTEGER NOT NULL,"
    "  time_minutes INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  slurm_job_id INTEGER NOT NULL DEFAULT 0,"
    "  exit_code INTEGER,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
    "  submitted_at INTEGER NOT NULL,"
    "  dispatched_at INTEGER NOT NULL DEFAULT 0,"
    "  started_at INTEGER NOT NULL DEFAULT 0,"
    "  ended_at INTEGER NOT NULL DEFAULT 0,"
    "  period TEXT NOT NULL DEFAULT '',"
    "  hold_gpu_seconds INTEGER NOT NULL DEFAULT 0,"
    "  hold_cpu_seconds INTEGER NOT NULL DEFAULT 0,"
    "  charge_gpu_seconds INTEGER NOT NULL DEFAULT 0,"
    "  charge_cpu_seconds INTEGER NOT NULL DEFAULT 0,"
    "  script TEXT NOT NULL);"
    "INSERT INTO jobs_v2 (id, user_id, user_name, partner, unix_user, name, gpus, gpu_type,"
    "  cpus_per_task, mem_mb, time_minutes, state, reason, slurm_job_id, exit_code,"
    "  cancel_requested, submitted_at, dispatched_at, started_at, ended_at, script)"
    " SELECT id, user_id, user_name, partner, unix_user, name, gpus, gpu_type, cpus_per_task,"
    "  mem_mb, time_minutes, state, reason, slurm_job_id, exit_code, cancel_requested,"
    "  submitted_at, dispatched_at, started_at, ended_at, script FROM jobs ORDER BY id;"
    "DELETE FROM sqlite_sequence WHERE name = 'jobs_v2';"
    "INSERT INTO sqlite_sequence (name, seq)"
    " SELECT 'jobs_v2', seq FROM sqlite_sequence WHERE name = 'jobs';"
    "DROP TABLE jobs;"
    "ALTER TABLE jobs_v2 RENAME TO jobs;"
    "CREATE INDEX jobs_user ON jobs (user_id, id);"
    "CREATE INDEX jobs_partner ON jobs (partner, id);"
    "CREATE INDEX jobs_state ON jobs (state);"
    "CREATE INDEX jobs_active ON jobs (id) WHERE state NOT IN " TERMINAL_SQL ";"
    "CREATE TABLE quotas ("
    "  partner_id INTEGER NOT NULL REFERENCES partners(id),"
    "  period TEXT NOT NULL,"
    "  gpu_seconds INTEGER NOT NULL,"
    "  cpu_seconds INTEGER NOT NULL,"
    "  max_gpus INTEGER NOT NULL,"
    "  max_running_jobs INTEGER NOT NULL,"
    "  max_queued_jobs INTEGER NOT NULL,"
    "  max_walltime_minutes INTEGER NOT NULL,"
    "  user_max_gpus INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (partner_id, period));"
    "CREATE TABLE ledger ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id),"
    "  partner_id INTEGER NOT NULL REFERENCES partners(id),"
    "  period TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('hold', 'release', 'charge')),"
    "  gpu_seconds INTEGER NOT NULL,"
    "  cpu_seconds INTEGER NOT NULL,"
    "  at INTEGER NOT NULL);"
    "CREATE INDEX ledger_partner_period ON ledger (partner_id, period);"
    "CREATE INDEX ledger_job ON ledger (job_id);"
    /* append-only, whoever writes to the file */
    "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger"
    " BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;"
    "CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger"
    " BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;",

    /* v2 -> v3: the audit trail and an index for usage sums. seq is not AUTOINCREMENT:
     * store_audit_append sets it to the last seq + 1 in its write transaction. No trigger guards
     * the audit table: the hash chain (audit.c) catches an edited, deleted or inserted row, and
     * store_audit_list shows rows as stored so that it can. */
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY,"
    "  at INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  partner TEXT NOT NULL DEFAULT '',"
    "  action TEXT NOT NULL,"
    "  details TEXT NOT NULL DEFAULT '{}',"
    "  prev_hash TEXT NOT NULL,"
    "  hash TEXT NOT NULL);"
    "CREATE INDEX audit_action ON audit (action);"
    "CREATE INDEX audit_actor ON audit (actor);"
    "CREATE INDEX audit_at ON audit (at);"
    "CREATE INDEX ledger_kind_at ON ledger (kind, at);",

    /* v3 -> v4: idempotency records (the first answer to a request, replayed to a retry with the
     * same key), pruned oldest first; and the jobs in Slurm or being submitted (active, not
     * queued), so that following them never reads the queue. No foreign key: a record outlives
     * nothing it names, and pruning it checks no other table. */
    "CREATE TABLE idempotency ("
    "  user_id INTEGER NOT NULL,"
    "  key TEXT NOT NULL,"
    "  body_hash TEXT NOT NULL,"
    "  job_id INTEGER NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, key));"
    "CREATE INDEX idempotency_created ON idempotency (created_at);"
    "CREATE INDEX jobs_in_slurm ON jobs (id) WHERE state NOT IN " NOT_IN_SLURM_SQL ";",

    /* v4 -> v5: the ledger's running sums per partner and period, kept by a trigger in the same
     * statement as each ledger row, so that a dispatch's budget check reads one row instead of
     * summing the month's ledger (which made dispatching n jobs cost O(n^2)). */
    "CREATE TABLE ledger_sums ("
    "  partner_id INTEGER NOT NULL,"
    "  period TEXT NOT NULL,"
    "  used_gpu INTEGER NOT NULL,"
    "  held_gpu INTEGER NOT NULL,"
    "  used_cpu INTEGER NOT NULL,"
    "  held_cpu INTEGER NOT NULL,"
    "  PRIMARY KEY (partner_id, period));"
    "INSERT INTO ledger_sums SELECT partner_id, period,"
    "  coalesce(sum(CASE WHEN kind = 'charge' THEN gpu_seconds END), 0),"
    "  coalesce(sum(CASE WHEN kind <> 'charge' THEN gpu_seconds END), 0),"
    "  coalesce(sum(CASE WHEN kind = 'charge' THEN cpu_seconds END), 0),"
    "  coalesce(sum(CASE WHEN kind <> 'charge' THEN cpu_seconds END), 0)"
    "  FROM ledger GROUP BY partner_id, period;"
    "CREATE TRIGGER ledger_sums_add AFTER INSERT ON ledger BEGIN"
    "  INSERT INTO ledger_sums (partner_id, period, used_gpu, held_gpu, used_cpu, held_cpu)"
    "  VALUES (NEW.partner_id, NEW.period,"
    "    CASE WHEN NEW.kind = 'charge' THEN NEW.gpu_seconds ELSE 0 END,"
    "    CASE WHEN NEW.kind <> 'charge' THEN NEW.gpu_seconds ELSE 0 END,"
    "    CASE WHEN NEW.kind = 'charge' THEN NEW.cpu_seconds ELSE 0 END,"
    "    CASE WHEN NEW.kind <> 'charge' THEN NEW.cpu_seconds ELSE 0 END)"
    "  ON CONFLICT (partner_id, period) DO UPDATE SET"
    "    used_gpu = used_gpu + excluded.used_gpu, held_gpu = held_gpu + excluded.held_gpu,"
    "    used_cpu = used_cpu + excluded.used_cpu, held_cpu = held_cpu + excluded.held_cpu;"
    " END;",

    /* v5 -> v6: users that can be disabled (their tokens stop at once), tokens with an expiry
     * (0 = never), and an index to find who else maps to a Unix account (one account serves the
     * users of one partner only). */
    "ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tokens ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX users_unix_user ON users (unix_user);",

    /* v6 -> v7 (issue 10, refunds and reconciliation): what makes a "charge" row a refund or a
     * correction (its ledger row holds the signed amount, so that ledger_sums and usage stay
     * sums of rows), append-only like the ledger; and the indexes the reconciliation reads jobs
     * by (their period, their Slurm id). */
    "CREATE TABLE ledger_adjustments ("
    "  ledger_id INTEGER PRIMARY KEY REFERENCES ledger(id),"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id),"
    "  kind TEXT NOT NULL CHECK (kind IN ('refund', 'correction')),"
    "  reason TEXT NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  at INTEGER NOT NULL);"
    "CREATE INDEX ledger_adjustments_job ON ledger_adjustments (job_id);"
    "CREATE TRIGGER ledger_adjustments_no_update BEFORE UPDATE ON ledger_adjustments"
    " BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;"
    "CREATE TRIGGER ledger_adjustments_no_delete BEFORE DELETE ON ledger_adjustments"
    " BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;"
    "CREATE INDEX jobs_period ON jobs (period, id) WHERE slurm_job_id > 0;"
    "CREATE INDEX jobs_slurm_id ON jobs (slurm_job_id) WHERE slurm_job_id > 0;"
    "CREATE INDEX ledger_period_job ON ledger (period, job_id) WHERE kind = 'charge';",

    /* v7 -> v8 (issue 9, job arrays): an array (its id is its first task's job id, like Slurm's
     * %A) with its spec as given and what its tasks' environment says of it; each task is a job
     * of its own, tied to its array and index here. Tables of their own, so that the jobs table
     * keeps script last; reads by array id go through the index. */
    "CREATE TABLE job_arrays ("
    "  array_job_id INTEGER PRIMARY KEY REFERENCES jobs(id),"
    "  spec TEXT NOT NULL,"
    "  task_count INTEGER NOT NULL,"
    "  max_running INTEGER NOT NULL DEFAULT 0,"
    "  task_min INTEGER NOT NULL,"
    "  task_max INTEGER NOT NULL,"
    "  task_step INTEGER NOT NULL);"
    "CREATE TABLE job_array_tasks ("
    "  job_id INTEGER PRIMARY KEY REFERENCES jobs(id),"
    "  array_job_id INTEGER NOT NULL REFERENCES job_arrays(array_job_id),"
    "  task_id INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX job_array_tasks_array ON job_array_tasks (array_job_id, task_id);",
    /* v8 -> v9 (issue 9, sbatch options): a job's total CPUs, and its sbatch options (nodes,
     * tasks, partition, output/error, export, ...) as the JSON object job_options.c writes, in a
     * table of their own (so that script stays the last column of jobs); a job without a row asks
     * none, its CPUs being its cpus_per_task. `jobs.gpus` holds the job's total GPUs. */
    "CREATE TABLE job_extra ("
    "  job_id INTEGER PRIMARY KEY REFERENCES jobs(id),"
    "  cpus INTEGER NOT NULL,"
    "  options TEXT NOT NULL);",
    /* v9 -> v10 (issue 9, dependencies): the conditions of a job on its prerequisites, in the
     * order given; a singleton is one row of prereq 0 plus one row per earlier job of the same
     * user and name that had not ended at submission. Written once, with the job. */
    "CREATE TABLE job_dependencies ("
    "  job_id INTEGER NOT NULL REFERENCES jobs(id),"
    "  pos INTEGER NOT NULL,"
    "  kind TEXT NOT NULL"
    "    CHECK (kind IN ('after', 'afterok', 'afternotok', 'afterany', 'singleton')),"
    "  prereq_id INTEGER NOT NULL,"
    "  PRIMARY KEY (job_id, pos));"
    "CREATE INDEX jobs_user_name ON jobs (user_id, name) WHERE state NOT IN " TERMINAL_SQL ";",
    /* v10 -> v11 (issue 11): the request id of a job's submission, to follow it from the HTTP
     * answer through antennad's log to Slurm's AdminComment (none for older jobs). A table of
     * its own: a column added to jobs would come after script, and reading it would read the
     * script's overflow pages on every job listed. */
    "CREATE TABLE job_requests ("
    "  job_id INTEGER PRIMARY KEY REFERENCES jobs(id),"
    "  request_id TEXT NOT NULL);",
    /* v11 -> v12 (issue 9, --requeue): the runs of a job that Slurm requeued, each ended and
     * charged on its own (its ledger row is written with it); the job's own started_at/ended_at
     * are its last run's. `runs` > 1 when several runs ended between two looks at Slurm. A table
     * of its own (see v11), append-only like the ledger. */
    "CREATE TABLE job_runs ("
    "  job_id INTEGER NOT NULL REFERENCES jobs(id),"
    "  run INTEGER NOT NULL,"
    "  runs INTEGER NOT NULL CHECK (runs >= 1),"
    "  slurm_job_id INTEGER NOT NULL,"
    "  started_at INTEGER NOT NULL,"
    "  ended_at INTEGER NOT NULL,"
    "  elapsed_seconds INTEGER NOT NULL,"
    "  charge_gpu_seconds INTEGER NOT NULL,"
    "  charge_cpu_seconds INTEGER NOT NULL,"
    "  PRIMARY KEY (job_id, run)) WITHOUT ROWID;"
    "CREATE TRIGGER job_runs_no_update BEFORE UPDATE ON job_runs"
    " BEGIN SELECT RAISE(ABORT, 'the runs of a job are append-only'); END;"
    "CREATE TRIGGER job_runs_no_delete BEFORE DELETE ON job_runs"
    " BEGIN SELECT RAISE(ABORT, 'the runs of a job are append-only'); END;",
};

#define STORE_SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

#define JOB_COLS                                                                                   \
    "id, user_id, user_name, partner, unix_user, name, gpus, gpu_type, cpus_per_task, mem_mb, "    \
    "time_minutes, state, reason, slurm_job_id, exit_code, cancel_requested, submitted_at, "       \
    "dispatched_at, started_at, ended_at, period, hold_gpu_seconds, hold_cpu_seconds, "            \
    "charge_gpu_seconds, charge_cpu_seconds, " JOB_ARRAY_COLS ", "                                 \
    "coalesce((SELECT x.cpus FROM job_extra x WHERE x.job_id = jobs.id), 0), "                     \
    "(SELECT r.request_id FROM job_requests r WHERE r.job_id = jobs.id), "                         \
    "EXISTS (SELECT 1 FROM job_dependencies d WHERE d.job_id = jobs.id), "                         \
    "(SELECT coalesce(sum(u.runs), 0) FROM job_runs u WHERE u.job_id = jobs.id)"

/* A job's array, its index in it and the array's %max (0, -1, 0 for a plain job): one primary-key
 * lookup each, so that every statement reading JOB_COLS from jobs keeps its plan. */
#define JOB_ARRAY_COLS                                                                             \
    "coalesce((SELECT t.array_job_id FROM job_array_tasks t WHERE t.job_id = jobs.id), 0), "       \
    "coalesce((SELECT t.task_id FROM job_array_tasks t WHERE t.job_id = jobs.id), -1), "           \
    "coalesce((SELECT a.max_running FROM job_array_tasks t JOIN job_arrays a ON "                  \
    "a.array_job_id = t.array_job_id WHERE t.job_id = jobs.id), 0)"

/* Jobs listed for GET /v1/jobs: an array's tasks appear once, as its first task. */
#define JOB_NOT_LATER_TASK                                                                         \
    "NOT EXISTS (SELECT 1 FROM job_array_tasks t WHERE t.job_id = jobs.id AND "                    \
    "t.array_job_id <> jobs.id)"

#define PARTNER_COLS "id, name, description, share_weight, created_at"

#define USER_COLS "u.id, u.name, p.name, u.unix_user, u.role, u.category, u.created_at, u.disabled"

#define TOKEN_COLS "t.id, t.user_id, u.name, t.label, t.created_at, t.revoked_at, t.expires_at"

#define QUOTA_COLS                                                                                 \
    "p.name, q.period, q.gpu_seconds, q.cpu_seconds, q.max_gpus, q.max_running_jobs, "             \
    "q.max_queued_jobs, q.max_walltime_minutes, q.user_max_gpus, q.updated_at"

/* The jobs of one user, of one partner, or both: ?1 user id, ?2 partner, ?3 limit (-1 = none). */
#define JOB_LIST(where)                                                                            \
    "SELECT " JOB_COLS " FROM jobs " where " AND " JOB_NOT_LATER_TASK " ORDER BY id DESC LIMIT ?3"

/* Usage: the charge rows of partner ?1 (NULL = all) and user ?2 (NULL = all) with ?3 <= at < ?4,
 * first summed per group key and job (so that a job's GPUs x elapsed counts once per group
 * whatever its number of charge rows), then per key: key, GPU-s, CPU-s, elapsed GPU-s, jobs. */
#define USAGE_SUMS "coalesce(sum(g), 0), coalesce(sum(c), 0), coalesce(sum(e), 0), count(*) "
#define USAGE_FROM(key)                                                                            \
    "FROM (SELECT " key " AS k, l.job_id, sum(l.gpu_seconds) AS g, sum(l.cpu_seconds) AS c, "      \
    "max(CASE WHEN j.gpus > 0 AND j.started_at > 0 AND j.ended_at > j.started_at "                 \
    "THEN j.gpus * (j.ended_at - j.started_at) ELSE 0 END) AS e "                                  \
    "FROM ledger l JOIN partners p ON p.id = l.partner_id JOIN jobs j ON j.id = l.job_id "         \
    "JOIN users u ON u.id = j.user_id "                                                            \
    "WHERE l.kind = 'charge' AND l.at >= ?3 AND l.at < ?4 "                                        \
    "AND (?1 IS NULL OR p.name = ?1) AND (?2 IS NULL OR u.name = ?2) "                             \
    "GROUP BY k, l.job_id) "
#define USAGE_BY(key) "SELECT k, " USAGE_SUMS USAGE_FROM(key) "GROUP BY k ORDER BY k"

#define AUDIT_COLS "seq, at, actor, partner, action, details, prev_hash, hash"

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_OP_BEGIN,
    ST_OP_RELEASE,
    ST_OP_ROLLBACK,
    ST_CHANGE_BEGIN,
    ST_CHANGE_RELEASE,
    ST_CHANGE_ROLLBACK,
    ST_PARTNER_INSERT,
    ST_PARTNER_GET,
    ST_PARTNER_LIST,
    ST_PARTNER_ID,
    ST_PARTNER_UPDATE,
    ST_USER_INSERT,
    ST_USER_GET,
    ST_USER_GET_ID,
    ST_USER_LIST,
    ST_USER_LIST_PARTNER,
    ST_USER_UNIX_OTHER,
    ST_USER_SET_UNIX,
    ST_USER_SET_DISABLED,
    ST_QUOTA_SET,
    ST_QUOTA_GET,
    ST_QUOTA_LIST,
    ST_QUOTA_LIST_PERIOD,
    ST_QUOTA_BUDGET,
    ST_LEDGER_INSERT,
    ST_LEDGER_SUMS,
    ST_LEDGER_TOTALS,
    ST_LEDGER_LIST,
    ST_TOKEN_INSERT,
    ST_TOKEN_LOOKUP,
    ST_TOKEN_REVOKE,
    ST_TOKEN_LIST,
    ST_TOKEN_LIST_USER,
    ST_TOKEN_ACTIVE,
    ST_TOKEN_GET,
    ST_JOB_INSERT,
    ST_JOB_REQUEST_INSERT,
    ST_JOB_GET,
    ST_JOB_SCRIPT,
    ST_JOB_LIST,
    ST_JOB_LIST_USER,
    ST_JOB_LIST_PARTNER,
    ST_JOB_LIST_USER_PARTNER,
    ST_JOB_LIST_ACTIVE,
    ST_JOB_LIST_IN_SLURM,
    ST_JOB_EXISTS,
    ST_JOB_REASON_SET,
    ST_JOB_BILLING,
    ST_JOB_DISPATCH,
    ST_JOB_HOLD_CLEAR,
    ST_JOB_CHARGE,
    ST_JOB_TRANSITION,
    ST_JOB_SET_DISPATCHED,
    ST_JOB_UPDATE_READ,
    ST_JOB_UPDATE_WRITE,
    ST_JOB_CANCEL_QUEUED,
    ST_JOB_CANCEL_FLAG,
    ST_USAGE_PARTNER,
    ST_USAGE_USER,
    ST_USAGE_CATEGORY,
    ST_USAGE_GPU_TYPE,
    ST_USAGE_DAY,
    ST_USAGE_MONTH,
    ST_USAGE_TOTAL,
    ST_JOB_LIST_CHARGED,
    ST_AUDIT_LAST,
    ST_AUDIT_INSERT,
    ST_IDEM_GET,
    ST_IDEM_PUT,
    ST_IDEM_PRUNE,
    ST_JOB_CHARGE_NET,
    ST_ADJUST_INSERT,
    ST_ADJUST_LIST,
    ST_JOB_LIST_PERIOD,
    ST_JOB_GET_SLURM,
    ST_LEDGER_JOB_SUMS,
    ST_ARRAY_INSERT,
    ST_ARRAY_TASK_INSERT,
    ST_ARRAY_GET,
    ST_ARRAY_TASKS,
    ST_ARRAY_TASK_GET,
    ST_ARRAY_COUNTS,
    ST_JOB_OPTIONS,
    ST_JOB_OPTIONS_SET,
    ST_DEP_INSERT,
    ST_DEP_LIST,
    ST_DEP_LIST_QUEUED,
    ST_JOB_ACTIVE_NAMED,
    ST_RUN_INSERT,
    ST_RUN_LIST,
    ST_JOB_RUN_RESET,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    /* In a held transaction: one call's savepoint, and one change's (a ROLLBACK TO is always
     * followed by the RELEASE of the same name). Nested savepoints of one name are fine: each
     * statement acts on the innermost. */
    [ST_OP_BEGIN] = "SAVEPOINT op",
    [ST_OP_RELEASE] = "RELEASE op",
    [ST_OP_ROLLBACK] = "ROLLBACK TO op",
    [ST_CHANGE_BEGIN] = "SAVEPOINT change",
    [ST_CHANGE_RELEASE] = "RELEASE change",
    [ST_CHANGE_ROLLBACK] = "ROLLBACK TO change",
    [ST_PARTNER_INSERT] = "INSERT INTO partners (name, description, share_weight, created_at) "
                          "VALUES (?1, ?2, ?3, ?4)",
    [ST_PARTNER_GET] = "SELECT " PARTNER_COLS " FROM partners WHERE name = ?1",
    [ST_PARTNER_LIST] = "SELECT " PARTNER_COLS " FROM partners ORDER BY name",
    [ST_PARTNER_ID] = "SELECT id FROM partners WHERE name = ?1",
    [ST_PARTNER_UPDATE] =
        "UPDATE partners SET description = coalesce(?2, description), "
        "share_weight = CASE WHEN ?3 > 0 THEN ?3 ELSE share_weight END WHERE name = ?1",
    [ST_USER_INSERT] =
        "INSERT INTO users (name, partner_id, unix_user, role, category, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_USER_GET] = "SELECT " USER_COLS " FROM users u JOIN partners p ON p.id = u.partner_id "
                    "WHERE u.name = ?1",
    [ST_USER_GET_ID] = "SELECT " USER_COLS " FROM users u JOIN partners p ON p.id = u.partner_id "
                       "WHERE u.id = ?1",
    [ST_USER_LIST] = "SELECT " USER_COLS " FROM users u JOIN partners p ON p.id = u.partner_id "
                     "ORDER BY u.name",
    [ST_USER_LIST_PARTNER] =
        "SELECT " USER_COLS " FROM users u JOIN partners p ON p.id = u.partner_id "
        "WHERE p.name = ?1 ORDER BY u.name",
    /* a user of another partner than ?2 (a partner id) mapped to Unix account ?1 */
    [ST_USER_UNIX_OTHER] = "SELECT 1 FROM users WHERE unix_user = ?1 AND partner_id <> ?2 LIMIT 1",
    [ST_USER_SET_UNIX] = "UPDATE users SET unix_user = ?2 WHERE id = ?1",
    [ST_USER_SET_DISABLED] = "UPDATE users SET disabled = ?2 WHERE id = ?1",
    /* The WHERE of the SELECT also tells the parser that ON starts the upsert clause. */
    [ST_QUOTA_SET] =
        "INSERT INTO quotas (partner_id, period, gpu_seconds, cpu_seconds, max_gpus, "
        "max_running_jobs, max_queued_jobs, max_walltime_minutes, user_max_gpus, updated_at) "
        "SELECT id, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 FROM partners WHERE name = ?1 "
        "ON CONFLICT (partner_id, period) DO UPDATE SET gpu_seconds = excluded.gpu_seconds, "
        "cpu_seconds = excluded.cpu_seconds, max_gpus = excluded.max_gpus, "
        "max_running_jobs = excluded.max_running_jobs, "
        "max_queued_jobs = excluded.max_queued_jobs, "
        "max_walltime_minutes = excluded.max_walltime_minutes, "
        "user_max_gpus = excluded.user_max_gpus, updated_at = excluded.updated_at",
    [ST_QUOTA_GET] = "SELECT " QUOTA_COLS " FROM quotas q JOIN partners p ON p.id = q.partner_id "
                     "WHERE p.name = ?1 AND q.period = ?2",
    [ST_QUOTA_LIST] = "SELECT " QUOTA_COLS " FROM quotas q JOIN partners p ON p.id = q.partner_id "
                      "ORDER BY p.name, q.period",
    [ST_QUOTA_LIST_PERIOD] =
        "SELECT " QUOTA_COLS " FROM quotas q JOIN partners p ON p.id = q.partner_id "
        "WHERE q.period = ?1 ORDER BY p.name, q.period",
    [ST_QUOTA_BUDGET] =
        "SELECT gpu_seconds, cpu_seconds FROM quotas WHERE partner_id = ?1 AND period = ?2",
    [ST_LEDGER_INSERT] = "INSERT INTO ledger (job_id, partner_id, period, kind, gpu_seconds, "
                         "cpu_seconds, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* used GPU, held GPU, used CPU, held CPU of one partner and period */
    [ST_LEDGER_SUMS] = "SELECT coalesce(max(used_gpu), 0), coalesce(max(held_gpu), 0), "
                       "coalesce(max(used_cpu), 0), coalesce(max(held_cpu), 0) "
                       "FROM ledger_sums WHERE partner_id = ?1 AND period = ?2",
    [ST_LEDGER_TOTALS] = "SELECT p.name, l.period, "
                         "coalesce(sum(CASE WHEN l.kind = 'charge' THEN l.gpu_seconds END), 0), "
                         "coalesce(sum(CASE WHEN l.kind <> 'charge' THEN l.gpu_seconds END), 0), "
                         "coalesce(sum(CASE WHEN l.kind = 'charge' THEN l.cpu_seconds END), 0), "
                         "coalesce(sum(CASE WHEN l.kind <> 'charge' THEN l.cpu_seconds END), 0), "
                         "coalesce(max(CASE WHEN l.kind = 'charge' THEN l.at END), 0) "
                         "FROM ledger l JOIN partners p ON p.id = l.partner_id "
                         "GROUP BY p.name, l.period ORDER BY p.name, l.period",
    [ST_LEDGER_LIST] =
        "SELECT l.id, l.job_id, p.name, l.period, l.kind, l.gpu_seconds, l.cpu_seconds, l.at "
        "FROM ledger l JOIN partners p ON p.id = l.partner_id "
        "WHERE (?1 IS NULL OR p.name = ?1) AND (?2 = 0 OR l.job_id = ?2) "
        "AND (?3 IS NULL OR l.kind = ?3) AND l.at >= ?4 ORDER BY l.id",
    [ST_TOKEN_INSERT] = "INSERT INTO tokens (user_id, hash, label, created_at, expires_at) "
                        "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_TOKEN_LOOKUP] = "SELECT " USER_COLS " FROM tokens t JOIN users u ON u.id = t.user_id "
                        "JOIN partners p ON p.id = u.partner_id "
                        "WHERE t.hash = ?1 AND t.revoked_at = 0",
    [ST_TOKEN_REVOKE] = "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at = 0",
    [ST_TOKEN_LIST] = "SELECT " TOKEN_COLS " FROM tokens t JOIN users u ON u.id = t.user_id "
                      "ORDER BY t.id",
    [ST_TOKEN_LIST_USER] = "SELECT " TOKEN_COLS " FROM tokens t JOIN users u ON u.id = t.user_id "
                           "WHERE t.user_id = ?1 ORDER BY t.id",
    [ST_TOKEN_GET] = "SELECT " TOKEN_COLS " FROM tokens t JOIN users u ON u.id = t.user_id "
                     "WHERE t.id = ?1",
    /* every active token with its user: what the registry authenticates from */
    [ST_TOKEN_ACTIVE] = "SELECT t.id, t.hash, t.expires_at, " USER_COLS " FROM tokens t "
                        "JOIN users u ON u.id = t.user_id JOIN partners p ON p.id = u.partner_id "
                        "WHERE t.revoked_at = 0 ORDER BY t.id",
    [ST_JOB_INSERT] = "INSERT INTO jobs (user_id, user_name, partner, unix_user, name, gpus, "
                      "gpu_type, cpus_per_task, mem_mb, time_minutes, state, submitted_at, script) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'queued', ?11, ?12)",
    [ST_JOB_REQUEST_INSERT] = "INSERT INTO job_requests (job_id, request_id) VALUES (?1, ?2)",
    [ST_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [ST_JOB_SCRIPT] = "SELECT script FROM jobs WHERE id = ?1",
    [ST_JOB_OPTIONS] = "SELECT coalesce((SELECT x.options FROM job_extra x WHERE x.job_id = j.id), "
                       "'') FROM jobs j WHERE j.id = ?1",
    [ST_JOB_OPTIONS_SET] = "INSERT INTO job_extra (job_id, cpus, options) SELECT id, ?2, ?3 FROM "
                           "jobs WHERE id = ?1 AND state = 'queued'",
    [ST_JOB_LIST] = JOB_LIST("WHERE 1"),
    [ST_JOB_LIST_USER] = JOB_LIST("WHERE user_id = ?1"),
    [ST_JOB_LIST_PARTNER] = JOB_LIST("WHERE partner = ?2"),
    [ST_JOB_LIST_USER_PARTNER] = JOB_LIST("WHERE user_id = ?1 AND partner = ?2"),
    [ST_JOB_LIST_ACTIVE] =
        "SELECT " JOB_COLS " FROM jobs WHERE state NOT IN " TERMINAL_SQL " ORDER BY id",
    [ST_JOB_LIST_IN_SLURM] =
        "SELECT " JOB_COLS " FROM jobs WHERE state NOT IN " NOT_IN_SLURM_SQL " ORDER BY id",
    [ST_JOB_EXISTS] = "SELECT state FROM jobs WHERE id = ?1",
    [ST_JOB_REASON_SET] = "UPDATE jobs SET reason = ?2 "
                          "WHERE id = ?1 AND state = 'queued' AND reason <> ?2",
    /* What the ledger needs of a job: its partner (through its user), state, period, hold. */
    [ST_JOB_BILLING] = "SELECT u.partner_id, j.state, j.period, j.hold_gpu_seconds, "
                       "j.hold_cpu_seconds, j.dispatched_at "
                       "FROM jobs j JOIN users u ON u.id = j.user_id WHERE j.id = ?1",
    [ST_JOB_DISPATCH] = "UPDATE jobs SET state = 'dispatching', reason = '', period = ?2, "
                        "hold_gpu_seconds = ?3, hold_cpu_seconds = ?4 "
                        "WHERE id = ?1 AND state = 'queued'",
    [ST_JOB_HOLD_CLEAR] = "UPDATE jobs SET hold_gpu_seconds = 0, hold_cpu_seconds = 0 "
                          "WHERE id = ?1",
    /* added: a job Slurm requeued is charged once per run */
    [ST_JOB_CHARGE] = "UPDATE jobs SET period = ?2, charge_gpu_seconds = charge_gpu_seconds + ?3, "
                      "charge_cpu_seconds = charge_cpu_seconds + ?4 WHERE id = ?1",
    [ST_JOB_TRANSITION] = "UPDATE jobs SET state = ?3, reason = ?4, "
                          "ended_at = CASE WHEN ?5 AND ended_at = 0 THEN ?6 ELSE ended_at END "
                          "WHERE id = ?1 AND state = ?2",
    [ST_JOB_SET_DISPATCHED] = "UPDATE jobs SET state = 'dispatched', slurm_job_id = ?2, "
                              "dispatched_at = ?3 WHERE id = ?1 AND state = 'dispatching'",
    [ST_JOB_UPDATE_READ] = "SELECT state, reason, slurm_job_id, exit_code, started_at, ended_at "
                           "FROM jobs WHERE id = ?1",
    [ST_JOB_UPDATE_WRITE] = "UPDATE jobs SET state = ?2, reason = ?3, slurm_job_id = ?4, "
                            "exit_code = ?5, started_at = ?6, ended_at = ?7 WHERE id = ?1",
    [ST_JOB_CANCEL_QUEUED] = "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, "
                             "reason = 'cancelled before dispatch', ended_at = ?2 "
                             "WHERE id = ?1 AND state = 'queued'",
    [ST_JOB_CANCEL_FLAG] = "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1",
    [ST_USAGE_PARTNER] = USAGE_BY("p.name"),
    [ST_USAGE_USER] = USAGE_BY("u.name"),
    [ST_USAGE_CATEGORY] = USAGE_BY("u.category"),
    /* a job without GPUs, or naming no GPU type, is counted as "none" */
    [ST_USAGE_GPU_TYPE] =
        USAGE_BY("CASE WHEN j.gpus <= 0 OR j.gpu_type = '' THEN 'none' ELSE j.gpu_type END"),
    [ST_USAGE_DAY] = USAGE_BY("strftime('%Y-%m-%d', l.at, 'unixepoch')"),
    [ST_USAGE_MONTH] = USAGE_BY("strftime('%Y-%m', l.at, 'unixepoch')"),
    /* no GROUP BY: always one row, of zeros when nothing was charged */
    [ST_USAGE_TOTAL] = "SELECT '', " USAGE_SUMS USAGE_FROM("''"),
    [ST_JOB_LIST_CHARGED] =
        "SELECT " JOB_COLS " FROM jobs WHERE id IN (SELECT l.job_id FROM ledger l "
        "JOIN partners p ON p.id = l.partner_id "
        "WHERE p.name = ?1 AND l.period = ?2 AND l.kind = 'charge') ORDER BY ended_at, id",
    [ST_AUDIT_LAST] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
    [ST_AUDIT_INSERT] =
        "INSERT INTO audit (" AUDIT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_IDEM_GET] = "SELECT user_id, key, body_hash, job_id, status, body, created_at "
                    "FROM idempotency WHERE user_id = ?1 AND key = ?2",
    [ST_IDEM_PUT] = "INSERT INTO idempotency (user_id, key, body_hash, job_id, status, body, "
                    "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* ?2 = -1: no limit */
    [ST_IDEM_PRUNE] = "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency "
                      "WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
    [ST_JOB_CHARGE_NET] = "UPDATE jobs SET charge_gpu_seconds = ?2, charge_cpu_seconds = ?3 "
                          "WHERE id = ?1",
    [ST_ADJUST_INSERT] = "INSERT INTO ledger_adjustments (ledger_id, job_id, kind, reason, actor, "
                         "at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* ?1 partner (NULL = all), ?2 period (NULL = all), ?3 job (0 = all) */
    [ST_ADJUST_LIST] =
        "SELECT a.ledger_id, a.job_id, p.name, l.period, a.kind, l.gpu_seconds, l.cpu_seconds, "
        "a.reason, a.actor, a.at FROM ledger_adjustments a JOIN ledger l ON l.id = a.ledger_id "
        "JOIN partners p ON p.id = l.partner_id WHERE (?1 IS NULL OR p.name = ?1) "
        "AND (?2 IS NULL OR l.period = ?2) AND (?3 = 0 OR a.job_id = ?3) ORDER BY a.ledger_id",
    [ST_JOB_LIST_PERIOD] =
        "SELECT " JOB_COLS " FROM jobs WHERE period = ?1 AND slurm_job_id > 0 ORDER BY id",
    [ST_LEDGER_JOB_SUMS] =
        "SELECT l.job_id, sum(l.gpu_seconds), "
        "coalesce(sum(CASE WHEN a.kind = 'refund' AND l.id > coalesce((SELECT max(c.ledger_id) "
        "FROM ledger_adjustments c WHERE c.job_id = l.job_id AND c.kind = 'correction'), 0) "
        "THEN l.gpu_seconds END), 0) FROM ledger l "
        "LEFT JOIN ledger_adjustments a ON a.ledger_id = l.id "
        "WHERE l.kind = 'charge' AND l.period = ?1 GROUP BY l.job_id ORDER BY l.job_id",
    [ST_JOB_GET_SLURM] = "SELECT " JOB_COLS " FROM jobs WHERE slurm_job_id = ?1 AND "
                         "slurm_job_id > 0 ORDER BY id DESC LIMIT 1",
    [ST_ARRAY_INSERT] = "INSERT INTO job_arrays (array_job_id, spec, task_count, max_running, "
                        "task_min, task_max, task_step) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_ARRAY_TASK_INSERT] =
        "INSERT INTO job_array_tasks (job_id, array_job_id, task_id) VALUES (?1, ?2, ?3)",
    [ST_ARRAY_GET] = "SELECT array_job_id, spec, task_count, max_running, task_min, task_max, "
                     "task_step FROM job_arrays WHERE array_job_id = ?1",
    [ST_ARRAY_TASKS] = "SELECT " JOB_COLS " FROM jobs WHERE id IN (SELECT job_id FROM "
                       "job_array_tasks WHERE array_job_id = ?1) ORDER BY id",
    [ST_ARRAY_TASK_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = (SELECT job_id FROM "
                          "job_array_tasks WHERE array_job_id = ?1 AND task_id = ?2)",
    [ST_ARRAY_COUNTS] = "SELECT j.state, count(*) FROM job_array_tasks t JOIN jobs j ON "
                        "j.id = t.job_id WHERE t.array_job_id = ?1 GROUP BY j.state ORDER BY "
                        "j.state",
    [ST_DEP_INSERT] = "INSERT INTO job_dependencies (job_id, pos, kind, prereq_id) "
                      "VALUES (?1, ?2, ?3, ?4)",
    [ST_DEP_LIST] = "SELECT job_id, kind, prereq_id FROM job_dependencies WHERE job_id = ?1 "
                    "ORDER BY pos",
    [ST_DEP_LIST_QUEUED] = "SELECT d.job_id, d.kind, d.prereq_id FROM jobs j "
                           "JOIN job_dependencies d ON d.job_id = j.id "
                           "WHERE j.state = 'queued' ORDER BY d.job_id, d.pos",
    [ST_JOB_ACTIVE_NAMED] = "SELECT id FROM jobs WHERE user_id = ?1 AND name = ?2 AND id < ?3 "
                            "AND state NOT IN " TERMINAL_SQL " ORDER BY id",
    [ST_RUN_INSERT] =
        "INSERT INTO job_runs (job_id, run, runs, slurm_job_id, started_at, ended_at, "
        "elapsed_seconds, charge_gpu_seconds, charge_cpu_seconds) VALUES (?1, "
        "(SELECT coalesce(max(run), 0) + 1 FROM job_runs WHERE job_id = ?1), ?2, ?3, "
        "?4, ?5, ?6, ?7, ?8)",
    [ST_RUN_LIST] =
        "SELECT job_id, run, runs, slurm_job_id, started_at, ended_at, elapsed_seconds, "
        "charge_gpu_seconds, charge_cpu_seconds FROM job_runs WHERE job_id = ?1 "
        "ORDER BY run",
    [ST_JOB_RUN_RESET] = "UPDATE jobs SET started_at = 0 WHERE id = ?1",
};

/* The filters of store_audit_list that its statement is built for: one cached statement per
 * combination, so that SQLite can pick the index of the filters given. */
enum {
    AUDIT_BY_SINCE = 1,
    AUDIT_BY_ACTOR = 2,
    AUDIT_BY_ACTION = 4,
    AUDIT_BY_PREFIX = 8, /* with AUDIT_BY_ACTION */
    AUDIT_LIST_VARIANTS = 16
};

/* One SQLite connection and its cached statements. */
typedef struct conn {
    sqlite3 *db;
    sqlite3_stmt *stmts[ST_COUNT];
    sqlite3_stmt *audit_list[AUDIT_LIST_VARIANTS];
} conn;

/* What the thread holding the write lock keeps open across calls on the write connection. */
enum held_kind {
    HELD_NONE,   /* nothing: each call is its own transaction */
    HELD_BATCH,  /* store_batch_begin */
    HELD_CHANGE, /* store_change_begin outside a batch: the change is its own transaction */
};

struct store {
    conn w;                /* the write connection; also serves the reads of its holder */
    conn r;                /* the read connection (r.db NULL for ":memory:": reads use w) */
    pthread_mutex_t lock;  /* the write lock: guards w and the fields below */
    pthread_mutex_t rlock; /* guards r */
    enum held_kind held;   /* what the holder of `lock` keeps open */
    int changes_open;      /* store_change_begin calls not yet ended, in the held transaction */
    int held_err;          /* the error that made SQLite roll the held transaction back, or 0 */
    bool op_open;          /* the current call's own transaction (or savepoint) is open */
    char instance_id[40];
};

/* The store whose write transaction (a batch, or a change on its own) this thread holds, if any.
 * While set, the thread holds s->lock and each of its calls on that store runs inside. */
static _Thread_local const store *held_by_me;

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Maps an SQLite result code to a negative errno; logs the unexpected ones with SQLite's text. A
 * full disk (or file system quota) is -ENOSPC, whether SQLite says SQLITE_FULL or an I/O error
 * whose system errno says so; any other failure is -EIO. */
static int db_error(conn *c, int rc, const char *what)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return -EEXIST;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return -ENOENT;
    case SQLITE_NOMEM:
        return -ENOMEM;
    default:
        break;
    }
    int sys = sqlite3_system_errno(c->db);
    bool full = (rc & 0xff) == SQLITE_FULL ||
                ((rc & 0xff) == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT));
    LOG(LOG_ERROR, "store: %s: %s (sqlite %d%s)", what, sqlite3_errmsg(c->db), rc,
        full ? ", disk full" : "");
    return full ? -ENOSPC : -EIO;
}

/* Returns cached statement `id` of c (prepared on first use; stmt_done resets it), or NULL. */
static sqlite3_stmt *stmt_get(conn *c, enum stmt_id id)
{
    if (!c->stmts[id]) {
        int rc = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->stmts[id], NULL);
        if (rc != SQLITE_OK) {
            db_error(c, rc, "prepare");
            c->stmts[id] = NULL;
            return NULL;
        }
    }
    return c->stmts[id];
}

static void stmt_done(sqlite3_stmt *st)
{
    if (!st) return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs a statement that returns no row (BEGIN, COMMIT, an INSERT/UPDATE). Returns 0 or -errno. */
static int stmt_run(conn *c, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? 0 : db_error(c, sqlite3_extended_errcode(c->db), what);
    stmt_done(st);
    return ret;
}

/* Runs cached statement `id` (no parameter, no row). Returns 0 or -errno. */
static int stmt_exec(conn *c, enum stmt_id id, const char *what)
{
    sqlite3_stmt *st = stmt_get(c, id);
    return st ? stmt_run(c, st, what) : -EIO;
}

/* Whether the calling thread holds the write transaction of s (so holds s->lock). */
static bool held_here(const store *s)
{
    return held_by_me == s;
}

/* In the held transaction, after a call: SQLite rolls a whole transaction back on some errors
 * (disk full, I/O errors). Then nothing of it is left and later statements would each commit on
 * their own, so every later call in it fails with that error, and so does its end. Returns ret, or
 * the error when the transaction is gone. */
static int held_check(store *s, int ret)
{
    if (!sqlite3_get_autocommit(s->w.db)) return ret;
    if (ret == 0) ret = -EIO;
    if (s->held_err == 0) s->held_err = ret;
    return ret;
}

/* Takes the write connection for one call: locks it, unless this thread holds its transaction.
 * With `tx` the call gets its own transaction: BEGIN IMMEDIATE, or in the held transaction a
 * savepoint, so that a failure undoes only this call's writes. A call of one statement needs none
 * (SQLite undoes a failed statement alone). Returns 0 (then end with write_end) or -errno (nothing
 * to end). */
static int write_begin(store *s, bool tx)
{
    bool inside = held_here(s);
    if (inside && s->held_err) return s->held_err;
    if (!inside) pthread_mutex_lock(&s->lock);
    int ret = tx ? stmt_exec(&s->w, inside ? ST_OP_BEGIN : ST_BEGIN, "begin") : 0;
    if (ret < 0) {
        if (inside)
            held_check(s, ret);
        else
            pthread_mutex_unlock(&s->lock);
        return ret;
    }
    s->op_open = tx;
    return 0;
}

/* Ends what write_begin started: commits (or releases the savepoint) when ret is 0, rolls back
 * otherwise, and unlocks. Returns the final result. */
static int write_end(store *s, int ret)
{
    bool inside = held_here(s);
    conn *c = &s->w;
    if (s->op_open) {
        s->op_open = false;
        if (ret == 0) ret = stmt_exec(c, inside ? ST_OP_RELEASE : ST_COMMIT, "commit");
        if (ret < 0 && !sqlite3_get_autocommit(c->db)) {
            if (inside) {
                stmt_exec(c, ST_OP_ROLLBACK, "rollback");
                stmt_exec(c, ST_OP_RELEASE, "rollback");
            } else {
                stmt_exec(c, ST_ROLLBACK, "rollback");
            }
        }
    }
    if (inside) return held_check(s, ret);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* Takes the connection for one read: the write connection when this thread holds its transaction
 * (so that it sees its own writes), else the read connection, which sees committed data only and
 * never waits for a writer (":memory:" has none: then the write connection, locked). */
static conn *read_begin(store *s)
{
    if (held_here(s)) return &s->w;
    if (!s->r.db) {
        pthread_mutex_lock(&s->lock);
        return &s->w;
    }
    pthread_mutex_lock(&s->rlock);
    return &s->r;
}

static void read_end(store *s, conn *c)
{
    if (held_here(s)) return;
    pthread_mutex_unlock(c == &s->r ? &s->rlock : &s->lock);
}

static void col_text(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t len = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (len >= cap) len = cap - 1;
    if (len) memcpy(dst, t, len);
    dst[len] = '\0';
}

static bool text_fits(const char *str, size_t cap)
{
    return str && strnlen(str, cap) < cap;
}

static bool name_ok(const char *name)
{
    return text_fits(name, STORE_NAME_MAX) && name[0] != '\0';
}

static int bind_text(sqlite3_stmt *st, int idx, const char *str)
{
    return sqlite3_bind_text(st, idx, str ? str : "", -1, SQLITE_STATIC);
}

/* Appends one zeroed item to a growing array. Returns a pointer to it, or NULL (out of memory). */
static void *array_push(void **arr, size_t *n, size_t *cap, size_t item)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        if (ncap > SIZE_MAX / item) return NULL;
        void *p = realloc(*arr, ncap * item);
        if (!p) return NULL;
        *arr = p;
        *cap = ncap;
    }
    void *slot = (char *)*arr + *n * item;
    memset(slot, 0, item);
    (*n)++;
    return slot;
}

typedef void (*row_reader)(sqlite3_stmt *st, void *item);

/* Steps `st` to the end, reading each row with `read` into a malloc'd array. Resets st. */
static int read_rows(conn *c, sqlite3_stmt *st, size_t item, row_reader read, void **out, size_t *n)
{
    void *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        void *slot = array_push(&arr, &cnt, &cap, item);
        if (!slot) {
            ret = -ENOMEM;
            goto fail_rows;
        }
        read(st, slot);
    }
    if (rc != SQLITE_DONE) {
        ret = db_error(c, sqlite3_extended_errcode(c->db), "list");
        goto fail_rows;
    }
    stmt_done(st);
    *out = arr;
    *n = cnt;
    return 0;

fail_rows:
    stmt_done(st);
    free(arr);
    return ret;
}

/* Steps `st` once: 0 and the row read with `read`, -ENOENT (no row), or -errno. Resets st. */
static int read_one(conn *c, sqlite3_stmt *st, row_reader read, void *out)
{
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW)
        read(st, out);
    else if (rc == SQLITE_DONE)
        ret = -ENOENT;
    else
        ret = db_error(c, sqlite3_extended_errcode(c->db), "read");
    stmt_done(st);
    return ret;
}

static void read_partner(sqlite3_stmt *st, void *item)
{
    store_partner *p = item;
    memset(p, 0, sizeof *p);
    p->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, p->name, sizeof p->name);
    col_text(st, 2, p->description, sizeof p->description);
    p->share_weight = sqlite3_column_int(st, 3);
    p->created_at = sqlite3_column_int64(st, 4);
}

static void read_user(sqlite3_stmt *st, void *item)
{
    store_user *u = item;
    memset(u, 0, sizeof *u);
    u->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, u->name, sizeof u->name);
    col_text(st, 2, u->partner, sizeof u->partner);
    col_text(st, 3, u->unix_user, sizeof u->unix_user);
    col_text(st, 4, u->role, sizeof u->role);
    col_text(st, 5, u->category, sizeof u->category);
    u->created_at = sqlite3_column_int64(st, 6);
    u->disabled = sqlite3_column_int(st, 7) != 0;
}

static void read_quota(sqlite3_stmt *st, void *item)
{
    store_quota *q = item;
    memset(q, 0, sizeof *q);
    col_text(st, 0, q->partner, sizeof q->partner);
    col_text(st, 1, q->period, sizeof q->period);
    q->gpu_seconds = sqlite3_column_int64(st, 2);
    q->cpu_seconds = sqlite3_column_int64(st, 3);
    q->max_gpus = sqlite3_column_int(st, 4);
    q->max_running_jobs = sqlite3_column_int(st, 5);
    q->max_queued_jobs = sqlite3_column_int(st, 6);
    q->max_walltime_minutes = sqlite3_column_int(st, 7);
    q->user_max_gpus = sqlite3_column_int(st, 8);
    q->updated_at = sqlite3_column_int64(st, 9);
}

static void read_ledger_entry(sqlite3_stmt *st, void *item)
{
    store_ledger_entry *e = item;
    memset(e, 0, sizeof *e);
    e->id = sqlite3_column_int64(st, 0);
    e->job_id = sqlite3_column_int64(st, 1);
    col_text(st, 2, e->partner, sizeof e->partner);
    col_text(st, 3, e->period, sizeof e->period);
    col_text(st, 4, e->kind, sizeof e->kind);
    e->gpu_seconds = sqlite3_column_int64(st, 5);
    e->cpu_seconds = sqlite3_column_int64(st, 6);
    e->at = sqlite3_column_int64(st, 7);
}

static void read_ledger_totals(sqlite3_stmt *st, void *item)
{
    store_ledger_totals *t = item;
    memset(t, 0, sizeof *t);
    col_text(st, 0, t->partner, sizeof t->partner);
    col_text(st, 1, t->period, sizeof t->period);
    t->used_gpu_seconds = sqlite3_column_int64(st, 2);
    t->held_gpu_seconds = sqlite3_column_int64(st, 3);
    t->used_cpu_seconds = sqlite3_column_int64(st, 4);
    t->held_cpu_seconds = sqlite3_column_int64(st, 5);
    t->last_charge_at = sqlite3_column_int64(st, 6);
}

static void read_token(sqlite3_stmt *st, void *item)
{
    store_token *t = item;
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(st, 0);
    t->user_id = sqlite3_column_int64(st, 1);
    col_text(st, 2, t->user, sizeof t->user);
    col_text(st, 3, t->label, sizeof t->label);
    t->created_at = sqlite3_column_int64(st, 4);
    t->revoked_at = sqlite3_column_int64(st, 5);
    t->expires_at = sqlite3_column_int64(st, 6);
}

static void read_token_auth(sqlite3_stmt *st, void *item)
{
    store_token_auth *t = item;
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, t->hash, sizeof t->hash);
    t->expires_at = sqlite3_column_int64(st, 2);
    t->user.id = sqlite3_column_int64(st, 3);
    col_text(st, 4, t->user.name, sizeof t->user.name);
    col_text(st, 5, t->user.partner, sizeof t->user.partner);
    col_text(st, 6, t->user.unix_user, sizeof t->user.unix_user);
    col_text(st, 7, t->user.role, sizeof t->user.role);
    col_text(st, 8, t->user.category, sizeof t->user.category);
    t->user.created_at = sqlite3_column_int64(st, 9);
    t->user.disabled = sqlite3_column_int(st, 10) != 0;
}

static void read_job(sqlite3_stmt *st, void *item)
{
    store_job *j = item;
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(st, 0);
    j->user_id = sqlite3_column_int64(st, 1);
    col_text(st, 2, j->user, sizeof j->user);
    col_text(st, 3, j->partner, sizeof j->partner);
    col_text(st, 4, j->unix_user, sizeof j->unix_user);
    col_text(st, 5, j->name, sizeof j->name);
    j->gpus = sqlite3_column_int(st, 6);
    col_text(st, 7, j->gpu_type, sizeof j->gpu_type);
    j->cpus_per_task = sqlite3_column_int(st, 8);
    j->mem_mb = sqlite3_column_int64(st, 9);
    j->time_minutes = sqlite3_column_int(st, 10);
    col_text(st, 11, j->state, sizeof j->state);
    col_text(st, 12, j->reason, sizeof j->reason);
    j->slurm_job_id = sqlite3_column_int64(st, 13);
    j->has_exit_code = sqlite3_column_type(st, 14) != SQLITE_NULL;
    j->exit_code = j->has_exit_code ? sqlite3_column_int(st, 14) : 0;
    j->cancel_requested = sqlite3_column_int(st, 15) != 0;
    j->submitted_at = sqlite3_column_int64(st, 16);
    j->dispatched_at = sqlite3_column_int64(st, 17);
    j->started_at = sqlite3_column_int64(st, 18);
    j->ended_at = sqlite3_column_int64(st, 19);
    col_text(st, 20, j->period, sizeof j->period);
    j->hold_gpu_seconds = sqlite3_column_int64(st, 21);
    j->hold_cpu_seconds = sqlite3_column_int64(st, 22);
    j->charge_gpu_seconds = sqlite3_column_int64(st, 23);
    j->charge_cpu_seconds = sqlite3_column_int64(st, 24);
    j->array_job_id = sqlite3_column_int64(st, 25);
    j->array_task_id = sqlite3_column_int(st, 26);
    j->array_max = sqlite3_column_int(st, 27);
    j->cpus = sqlite3_column_int(st, 28);
    col_text(st, 29, j->request_id, sizeof j->request_id);
    j->has_dependency = sqlite3_column_int(st, 30) != 0;
    j->restarts = sqlite3_column_int(st, 31);
}

static int64_t now(void)
{
    return (int64_t)time(NULL);
}

/* --- opening --- */

/* Runs one PRAGMA (static text) that may return a row; copies its first column into out. */
static int pragma(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (out && outlen) col_text(st, 0, out, outlen);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Brings the schema to STORE_SCHEMA_VERSION, one transaction per step. The version is read inside
 * each step's write transaction, so two processes opening a new database never both migrate it. */
static int store_migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    for (;;) {
        char buf[32] = "", set_version[64], *msg = NULL;
        int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = pragma(db, "PRAGMA user_version", buf, sizeof buf);
        if (rc != SQLITE_OK) {
            set_err(err, errlen, "cannot read the schema version of %s: %s", path,
                    msg ? msg : sqlite3_errmsg(db));
            goto fail_step;
        }
        int version = atoi(buf);
        if (version == STORE_SCHEMA_VERSION)
            return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
        if (version > STORE_SCHEMA_VERSION || version < 0) {
            set_err(err, errlen,
                    "database %s has schema version %d, newer than this antennad knows (%d): "
                    "upgrade antennad",
                    path, version, STORE_SCHEMA_VERSION);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -EPROTO;
        }
        snprintf(set_version, sizeof set_version, "PRAGMA user_version = %d", version + 1);
        rc = sqlite3_exec(db, migrations[version], NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = sqlite3_exec(db, set_version, NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            set_err(err, errlen, "cannot migrate %s to schema version %d: %s", path, version + 1,
                    msg ? msg : sqlite3_errmsg(db));
            goto fail_step;
        }
        continue;

    fail_step:
        sqlite3_free(msg);
        if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -EIO;
    }
}

/* Creates the database file 0600 when it does not exist yet (SQLite gives its -wal and -shm
 * files the same mode), so that a missing directory is reported as such. */
static int precreate(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    int e = errno;
    char *dir = strdup(path);
    struct stat sb;
    bool dir_missing = e == ENOENT && dir && stat(dirname(dir), &sb) != 0 && errno == ENOENT;
    free(dir);
    if (dir_missing)
        set_err(err, errlen, "cannot create database %s: its directory does not exist (create it)",
                path);
    else
        set_err(err, errlen, "cannot open database %s: %s", path, strerror(e));
    return -e;
}

/* Opens one connection to `path` (flags: SQLite's open flags) with extended result codes and the
 * busy timeout. Returns an SQLite code; c->db may be set even on failure (conn_close frees it). */
static int conn_open(conn *c, const char *path, int flags)
{
    int rc = sqlite3_open_v2(path, &c->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, STORE_BUSY_TIMEOUT_MS);
    return SQLITE_OK;
}

/* Finalizes c's statements and closes it. Accepts a connection never opened. */
static void conn_close(conn *c)
{
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->stmts[i]);
    for (int i = 0; i < AUDIT_LIST_VARIANTS; i++)
        sqlite3_finalize(c->audit_list[i]);
    sqlite3_close_v2(c->db);
    memset(c, 0, sizeof *c);
}

int store_new(const char *path, store **out, char *err, size_t errlen)
{
    set_err(err, errlen, "%s", "");
    if (!path || !path[0] || !out) {
        set_err(err, errlen, "store_new: no database path given");
        return -EINVAL;
    }
    *out = NULL;
    bool memory = strcmp(path, ":memory:") == 0;
    int ret = memory ? 0 : precreate(path, err, errlen);
    if (ret < 0) return ret;

    store *s = calloc(1, sizeof *s);
    if (!s) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        set_err(err, errlen, "cannot create the store mutex");
        ret = -ENOMEM;
        goto fail_mutex;
    }
    if (pthread_mutex_init(&s->rlock, NULL) != 0) {
        set_err(err, errlen, "cannot create the store mutex");
        ret = -ENOMEM;
        goto fail_rmutex;
    }

    int rc = conn_open(&s->w, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (rc != SQLITE_OK) {
        int sys = s->w.db ? sqlite3_system_errno(s->w.db) : 0;
        set_err(err, errlen, "cannot open database %s: %s", path,
                s->w.db ? sqlite3_errmsg(s->w.db) : sqlite3_errstr(rc));
        ret = sys > 0 ? -sys : -EIO;
        goto fail_setup;
    }

    /* journal_size_limit: a WAL that grew during a burst is cut back to 64 MiB when it restarts
     * (autocheckpoint keeps restarting it; store_checkpoint empties it). */
    char mode[16] = "";
    rc = pragma(s->w.db, "PRAGMA journal_mode = WAL", mode, sizeof mode);
    if (rc == SQLITE_OK) rc = pragma(s->w.db, "PRAGMA synchronous = FULL", NULL, 0);
    if (rc == SQLITE_OK) rc = pragma(s->w.db, "PRAGMA foreign_keys = ON", NULL, 0);
    if (rc == SQLITE_OK) rc = pragma(s->w.db, "PRAGMA journal_size_limit = 67108864", NULL, 0);
    if (rc != SQLITE_OK) {
        set_err(err, errlen, "cannot set up database %s: %s", path, sqlite3_errmsg(s->w.db));
        ret = -EIO;
        goto fail_setup;
    }
    if (strcmp(mode, "wal") != 0 && !memory) {
        set_err(err, errlen, "database %s cannot use WAL mode (journal mode is '%s')", path, mode);
        ret = -EIO;
        goto fail_setup;
    }

    ret = store_migrate(s->w.db, path, err, errlen);
    if (ret < 0) goto fail_setup;

    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->w.db, "SELECT value FROM meta WHERE key = 'instance_id'", -1, &st,
                            NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) col_text(st, 0, s->instance_id, sizeof s->instance_id);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW || !s->instance_id[0]) {
        set_err(err, errlen, "database %s has no instance id: %s", path,
                rc == SQLITE_ROW || rc == SQLITE_DONE ? "meta row missing"
                                                      : sqlite3_errmsg(s->w.db));
        ret = -EIO;
        goto fail_setup;
    }

    /* The read connection: in WAL mode it reads the last commit while a writer holds its
     * transaction. query_only: nothing can write through it. */
    if (!memory) {
        rc = conn_open(&s->r, path, SQLITE_OPEN_READWRITE);
        if (rc == SQLITE_OK) rc = pragma(s->r.db, "PRAGMA query_only = ON", NULL, 0);
        if (rc != SQLITE_OK) {
            set_err(err, errlen, "cannot open a read connection to database %s: %s", path,
                    s->r.db ? sqlite3_errmsg(s->r.db) : sqlite3_errstr(rc));
            ret = -EIO;
            goto fail_setup;
        }
    }

    *out = s;
    return 0;

fail_setup:
    conn_close(&s->r); /* also after a failed open: it may return a handle */
    conn_close(&s->w);
    pthread_mutex_destroy(&s->rlock);
fail_rmutex:
    pthread_mutex_destroy(&s->lock);
fail_mutex:
    free(s);
    return ret;
}

void store_free(store *s)
{
    if (!s) return;
    if (held_here(s)) { /* a batch or change left open: nothing of it is kept */
        if (!sqlite3_get_autocommit(s->w.db)) stmt_exec(&s->w, ST_ROLLBACK, "rollback");
        held_by_me = NULL;
        pthread_mutex_unlock(&s->lock);
    }
    conn_close(&s->r);
    conn_close(&s->w);
    pthread_mutex_destroy(&s->rlock);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

const char *store_instance_id(const store *s)
{
    return s->instance_id;
}

/* --- batches and changes --- */

/* BEGIN IMMEDIATE of a held transaction: -EBUSY when another process keeps the database's write
 * lock past the busy timeout. Returns 0 or -errno. */
static int held_begin(conn *c)
{
    sqlite3_stmt *st = stmt_get(c, ST_BEGIN);
    if (!st) return -EIO;
    int ret = 0;
    if (sqlite3_step(st) != SQLITE_DONE) {
        int rc = sqlite3_extended_errcode(c->db);
        ret = (rc & 0xff) == SQLITE_BUSY ? -EBUSY : db_error(c, rc, "batch begin");
    }
    stmt_done(st);
    return ret;
}

/* Makes the calling thread the holder of s's write transaction, just begun. */
static void held_take(store *s, enum held_kind kind)
{
    s->held = kind;
    s->changes_open = kind == HELD_CHANGE ? 1 : 0;
    s->held_err = 0;
    s->op_open = false;
    held_by_me = s;
}

/* Ends the held transaction: COMMIT when ret is 0 (and SQLite did not roll it back already), else
 * ROLLBACK; then releases the write lock. Returns 0 or the error. */
static int held_end(store *s, int ret)
{
    conn *c = &s->w;
    if (ret == 0 && s->held_err) ret = s->held_err;
    if (ret == 0) ret = stmt_exec(c, ST_COMMIT, "commit");
    if (ret < 0 && !sqlite3_get_autocommit(c->db)) stmt_exec(c, ST_ROLLBACK, "rollback");
    s->held = HELD_NONE;
    s->changes_open = 0;
    s->held_err = 0;
    held_by_me = NULL;
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_batch_begin(store *s)
{
    if (!s || held_by_me) return -EINVAL;
    pthread_mutex_lock(&s->lock);
    int ret = held_begin(&s->w);
    if (ret < 0) {
        pthread_mutex_unlock(&s->lock);
        return ret;
    }
    held_take(s, HELD_BATCH);
    return 0;
}

int store_batch_commit(store *s)
{
    if (!s || !held_here(s) || s->held != HELD_BATCH) return -EINVAL;
    if (s->changes_open > 0) {
        LOG(LOG_ERROR, "store: batch committed with %d change(s) open: rolled back",
            s->changes_open);
        return held_end(s, -EINVAL);
    }
    return held_end(s, 0);
}

void store_batch_rollback(store *s)
{
    if (!s || !held_here(s) || s->held != HELD_BATCH) return;
    held_end(s, -ECANCELED);
}

bool store_in_batch(const store *s)
{
    return s && held_here(s) && s->held == HELD_BATCH;
}

int store_change_begin(store *s)
{
    if (!s) return -EINVAL;
    if (held_here(s)) {
        if (s->held_err) return s->held_err;
        int ret = stmt_exec(&s->w, ST_CHANGE_BEGIN, "change begin");
        if (ret < 0) return held_check(s, ret);
        s->changes_open++;
        return 0;
    }
    if (held_by_me) return -EINVAL; /* this thread holds another store's transaction */
    pthread_mutex_lock(&s->lock);
    int ret = held_begin(&s->w);
    if (ret < 0) {
        pthread_mutex_unlock(&s->lock);
        return ret;
    }
    held_take(s, HELD_CHANGE);
    return 0;
}

int store_change_end(store *s, int rc)
{
    if (!s || !held_here(s) || s->changes_open == 0) return -EINVAL;
    s->changes_open--;
    if (s->held == HELD_CHANGE && s->changes_open == 0) return held_end(s, rc);
    if (s->held_err) return rc != 0 ? rc : s->held_err;
    conn *c = &s->w;
    if (rc == 0) {
        rc = stmt_exec(c, ST_CHANGE_RELEASE, "change release");
        if (rc == 0) return 0;
    }
    if (!sqlite3_get_autocommit(c->db)) {
        stmt_exec(c, ST_CHANGE_ROLLBACK, "change rollback");
        stmt_exec(c, ST_CHANGE_RELEASE, "change rollback");
    }
    return held_check(s, rc);
}

int store_checkpoint(store *s)
{
    if (!s || held_here(s)) return -EINVAL;
    pthread_mutex_lock(&s->lock);
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(s->w.db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
    int ret = 0;
    if ((rc & 0xff) == SQLITE_BUSY)
        ret = -EBUSY;
    else if (rc != SQLITE_OK)
        ret = db_error(&s->w, rc, "checkpoint");
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* Reads every row of statement `id` into a malloc'd array of `item`-sized records made by
 * `read`, on the read connection; its one parameter ?1 is `text` or *key (each NULL = none).
 * Returns 0 (sets *out, NULL when *n is 0), or a negative errno. */
static int list_bound(store *s, enum stmt_id id, const char *text, const int64_t *key, size_t item,
                      row_reader read, void **out, size_t *n)
{
    if (!s || !out || !n) return -EINVAL;
    *out = NULL;
    *n = 0;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, id);
    if (st && text) bind_text(st, 1, text);
    if (st && key) sqlite3_bind_int64(st, 1, *key);
    int ret = st ? read_rows(c, st, item, read, out, n) : -EIO;
    read_end(s, c);
    return ret;
}

/* list_bound of a statement whose parameter, if any, is a text. */
static int list_rows(store *s, enum stmt_id id, const char *text, size_t item, row_reader read,
                     void **out, size_t *n)
{
    return list_bound(s, id, text, NULL, item, read, out, n);
}

/* list_bound of a statement whose one parameter is an id (?1). */
static int list_of(store *s, enum stmt_id id, int64_t key, size_t item, row_reader read, void **out,
                   size_t *n)
{
    return list_bound(s, id, NULL, &key, item, read, out, n);
}

/* list_rows of a statement without parameters. */
static int list_all(store *s, enum stmt_id id, size_t item, row_reader read, void **out, size_t *n)
{
    return list_rows(s, id, NULL, item, read, out, n);
}

int store_probe(store *s)
{
    if (!s || held_here(s)) return -EINVAL;
    int ret = write_begin(s, false);
    if (ret < 0) return ret;
    char sql[128];
    snprintf(sql, sizeof sql,
             "INSERT INTO meta (key, value) VALUES ('probe', '%lld') "
             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
             (long long)now());
    int rc = sqlite3_exec(s->w.db, sql, NULL, NULL, NULL);
    ret = rc == SQLITE_OK ? 0 : db_error(&s->w, rc, "probe");
    return write_end(s, ret);
}

/* --- partners --- */

int store_partner_insert(store *s, const char *name, const char *description, int share_weight,
                         int64_t *id)
{
    if (!s || !name_ok(name) || share_weight < 1) return -EINVAL;
    if (description && !text_fits(description, STORE_REASON_MAX)) return -EINVAL;
    int ret = write_begin(s, false);
    if (ret < 0) return ret;
    conn *c = &s->w;
    sqlite3_stmt *st = stmt_get(c, ST_PARTNER_INSERT);
    ret = -EIO;
    if (st) {
        bind_text(st, 1, name);
        bind_text(st, 2, description);
        sqlite3_bind_int(st, 3, share_weight);
        sqlite3_bind_int64(st, 4, now());
        ret = stmt_run(c, st, "partner insert");
        if (ret == 0 && id) *id = sqlite3_last_insert_rowid(c->db);
    }
    return write_end(s, ret);
}

int store_partner_update(store *s, const char *name, const char *description, int share_weight)
{
    if (!s || !name || share_weight < 0) return -EINVAL;
    if (description && !text_fits(description, STORE_REASON_MAX)) return -EINVAL;
    int ret = write_begin(s, false);
    if (ret < 0) return ret;
    conn *c = &s->w;
    sqlite3_stmt *st = stmt_get(c, ST_PARTNER_UPDATE);
    ret = -EIO;
    if (st) {
        bind_text(st, 1, name);
        if (description)
            bind_text(st, 2, description);
        else
            sqlite3_bind_null(st, 2);
        sqlite3_bind_int(st, 3, share_weight);
        ret = stmt_run(c, st, "partner update");
        if (ret == 0 && sqlite3_changes(c->db) == 0) ret = -ENOENT;
    }
    return write_end(s, ret);
}

int store_partner_get(store *s, const char *name, store_partner *out)
{
    if (!s || !name || !out) return -EINVAL;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_PARTNER_GET);
    int ret = -EIO;
    if (st) {
        bind_text(st, 1, name);
        ret = read_one(c, st, read_partner, out);
    }
    read_end(s, c);
    return ret;
}

int store_partner_list(store *s, store_partner **out, size_t *n)
{
    return list_all(s, ST_PARTNER_LIST, sizeof **out, read_partner, (void **)out, n);
}

/* --- users --- */

/* Whether Unix account `unix_user` is free for the users of partner `partner_id`: 0, or
 * -ENOTUNIQ when a user of another partner maps to it, or -errno. On the write connection. */
static int unix_user_free_for(conn *c, const char *unix_user, int64_t partner_id)
{
    sqlite3_stmt *st = stmt_get(c, ST_USER_UNIX_OTHER);
    if (!st) return -EIO;
    bind_text(st, 1, unix_user);
    sqlite3_bind_int64(st, 2, partner_id);
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_ROW    ? -ENOTUNIQ
              : rc == SQLITE_DONE ? 0
                                  : db_error(c, sqlite3_extended_errcode(c->db), "account lookup");
    stmt_done(st);
    return ret;
}

int store_user_insert(store *s, const char *name, const char *partner, const char *unix_user,
                      const char *role, const char *category, int64_t *id)
{
    if (!role) role = "user";
    if (!category) category = "researcher";
    if (!s || !name_ok(name) || !partner || !name_ok(unix_user) ||
        !text_fits(role, sizeof((store_user *)0)->role) || !role[0] ||
        !text_fits(category, sizeof((store_user *)0)->category) || !category[0])
        return -EINVAL;
    int ret = write_begin(s, true);
    if (ret < 0) return ret;
    conn *c = &s->w;
    int64_t new_id = 0;

    sqlite3_stmt *st = stmt_get(c, ST_PARTNER_ID);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    bind_text(st, 1, partner);
    int rc = sqlite3_step(st);
    int64_t partner_id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc == SQLITE_DONE)
        ret = -ENOENT;
    else if (rc != SQLITE_ROW)
        ret = db_error(c, sqlite3_extended_errcode(c->db), "partner lookup");
    stmt_done(st);
    if (ret < 0) goto out;

    st = stmt_get(c, ST_USER_INSERT);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, partner_id);
    bind_text(st, 3, unix_user);
    bind_text(st, 4, role);
    bind_text(st, 5, category);
    sqlite3_bind_int64(st, 6, now());
    ret = stmt_run(c, st, "user insert");
    if (ret == 0) new_id = sqlite3_last_insert_rowid(c->db);
    /* after the insert, so that a taken name is -EEXIST whatever the account */
    if (ret == 0) ret = unix_user_free_for(c, unix_user, partner_id);
out:
    ret = write_end(s, ret);
    if (ret == 0 && id) *id = new_id;
    return ret;
}

int store_user_get(store *s, const char *name, store_user *out)
{
    if (!s || !name || !out) return -EINVAL;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_USER_GET);
    int ret = -EIO;
    if (st) {
        bind_text(st, 1, name);
        ret = read_one(c, st, read_user, out);
    }
    read_end(s, c);
    return ret;
}

int store_user_get_id(store *s, int64_t id, store_user *out)
{
    if (!s || !out) return -EINVAL;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_USER_GET_ID);
    int ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        ret = read_one(c, st, read_user, out);
    }
    read_end(s, c);
    return ret;
}

int store_user_update(store *s, const char *name, const char *unix_user, int disabled)
{
    if (!s || !name || (unix_user && !name_ok(unix_user)) || disabled < -1 || disabled > 1)
        return -EINVAL;
    int ret = write_begin(s, true);
    if (ret < 0) return ret;
    conn *c = &s->w;
    store_user u;
    int64_t partner_id = 0;
    sqlite3_stmt *st = stmt_get(c, ST_USER_GET);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    bind_text(st, 1, name);
    if ((ret = read_one(c, st, read_user, &u)) < 0) goto out;
    if ((st = stmt_get(c, ST_PARTNER_ID)) == NULL) {
        ret = -EIO;
        goto out;
    }
    bind_text(st, 1, u.partner);
    if (sqlite3_step(st) == SQLITE_ROW) partner_id = sqlite3_column_int64(st, 0);
    stmt_done(st);
    if (unix_user && strcmp(unix_user, u.unix_user) != 0) {
        if ((ret = unix_user_free_for(c, unix_user, partner_id)) < 0) goto out;
        if ((st = stmt_get(c, ST_USER_SET_UNIX)) == NULL) {
            ret = -EIO;
            goto out;
        }
        sqlite3_bind_int64(st, 1, u.id);
        bind_text(st, 2, unix_user);
        if ((ret = stmt_run(c, st, "user update")) < 0) goto out;
    }
    if (disabled >= 0 && disabled != (int)u.disabled) {
        if ((st = stmt_get(c, ST_USER_SET_DISABLED)) == NULL) {
            ret = -EIO;
            goto out;
        }
        sqlite3_bind_int64(st, 1, u.id);
        sqlite3_bind_int(st, 2, disabled);
        ret = stmt_run(c, st, "user update");
    }
out:
    return write_end(s, ret);
}

int store_user_list(store *s, const char *partner, store_user **out, size_t *n)
{
    return list_rows(s, partner ? ST_USER_LIST_PARTNER : ST_USER_LIST, partner, sizeof **out,
                     read_user, (void **)out, n);
}

/* --- quotas --- */

/* "YYYY-MM" with a month from 01 to 12. */
static bool period_ok(const char *p)
{
    if (!p || strnlen(p, 8) != 7) return false;
    for (int i = 0; i < 7; i++)
        if (i == 4 ? p[i] != '-' : (p[i] < '0' || p[i] > '9')) return false;
    int month = (p[5] - '0') * 10 + (p[6] - '0');
    return month >= 1 && month <= 12;
}

/* The period ("YYYY-MM", UTC) of unix time t. */
static void period_of(int64_t t, char out[8])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900) {
        memcpy(out, "1970-01", 8);
        return;
    }
    snprintf(out, 8, "%04u-%02u", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)tm.tm_mon % 12u + 1u);
}

static bool limit_ok(int64_t v)
{
    return v >= 0 || v == STORE_UNLIMITED;
}

int store_quota_set(store *s, const store_quota *q)
{
    if (!s || !q || !name_ok(q->partner) || !period_ok(q->period) || !limit_ok(q->gpu_seconds) ||
        !limit_ok(q->cpu_seconds) || !limit_ok(q->max_gpus) || !limit_ok(q->max_running_jobs) ||
        !limit_ok(q->max_queued_jobs) || !limit_ok(q->max_walltime_minutes) ||
        !limit_ok(q->user_max_gpus))
        return -EINVAL;
    int ret = write_begin(s, false);
    if (ret < 0) return ret;
    conn *c = &s->w;
    sqlite3_stmt *st = stmt_get(c, ST_QUOTA_SET);
    ret = -EIO;
    if (st) {
        bind_text(st, 1, q->partner);
        bind_text(st, 2, q->period);
        sqlite3_bind_int64(st, 3, q->gpu_seconds);
        sqlite3_bind_int64(st, 4, q->cpu_seconds);
        sqlite3_bind_int(st, 5, q->max_gpus);
        sqlite3_bind_int(st, 6, q->max_running_jobs);
        sqlite3_bind_int(st, 7, q->max_queued_jobs);
        sqlite3_bind_int(st, 8, q->max_walltime_minutes);
        sqlite3_bind_int(st, 9, q->user_max_gpus);
        sqlite3_bind_int64(st, 10, now());
        ret = stmt_run(c, st, "quota set");
        if (ret == 0 && sqlite3_changes(c->db) == 0) ret = -ENOENT; /* no such partner */
    }
    return write_end(s, ret);
}

int store_quota_get(store *s, const char *partner, const char *period, store_quota *out)
{
    if (!s || !partner || !period || !out) return -EINVAL;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_QUOTA_GET);
    int ret = -EIO;
    if (st) {
        bind_text(st, 1, partner);
        bind_text(st, 2, period);
        ret = read_one(c, st, read_quota, out);
    }
    read_end(s, c);
    return ret;
}

int store_quota_list(store *s, const char *period, store_quota **out, size_t *n)
{
    return list_rows(s, period ? ST_QUOTA_LIST_PERIOD : ST_QUOTA_LIST, period, sizeof **out,
                     read_quota, (void **)out, n);
}

/* --- ledger --- */

int store_ledger_totals_list(store *s, store_ledger_totals **out, size_t *n)
{
    return list_all(s, ST_LEDGER_TOTALS, sizeof **out, read_ledger_totals, (void **)out, n);
}

int store_ledger_list(store *s, const char *partner, int64_t job_id, const char *kind,
                      int64_t since, store_ledger_entry **out, size_t *n)
{
    if (!s || !out || !n) return -EINVAL;
    *out = NULL;
    *n = 0;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_LEDGER_LIST);
    int ret = -EIO;
    if (st) {
        if (partner)
            bind_text(st, 1, partner);
        else
            sqlite3_bind_null(st, 1);
        sqlite3_bind_int64(st, 2, job_id);
        if (kind)
            bind_text(st, 3, kind);
        else
            sqlite3_bind_null(st, 3);
        sqlite3_bind_int64(st, 4, since);
        ret = read_rows(c, st, sizeof **out, read_ledger_entry, (void **)out, n);
    }
    read_end(s, c);
    return ret;
}

/* Inside a transaction: appends one ledger row. The only way rows enter the ledger; nothing ever
 * changes or removes one. Returns 0 or -errno. */
static int ledger_append(conn *c, int64_t job_id, int64_t partner_id, const char *period,
                         const char *kind, int64_t gpu_seconds, int64_t cpu_seconds, int64_t at)
{
    sqlite3_stmt *st = stmt_get(c, ST_LEDGER_INSERT);
    if (!st) return -EIO;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int64(st, 2, partner_id);
    bind_text(st, 3, period);
    bind_text(st, 4, kind);
    sqlite3_bind_int64(st, 5, gpu_seconds);
    sqlite3_bind_int64(st, 6, cpu_seconds);
    sqlite3_bind_int64(st, 7, at);
    return stmt_run(c, st, "ledger append");
}

/* --- tokens --- */

int store_token_insert(store *s, int64_t user_id, const char *hash_hex, const char *label,
                       int64_t *id)
{
    return store_token_insert_until(s, user_id, hash_hex, label, 0, id);
}

int store_token_insert_until(store *s, int64_t user_id, const char *hash_hex, const char *label,
                             int64_t expires_at, int64_t *id)
{
    if (!s || !hash_hex || !hash_hex[0] || strlen(hash_hex) >= STORE_HASH_HEX || expires_at < 0)
        return -EINVAL;
    if (label && !text_fits(label, STORE_NAME_MAX)) return -EINVAL;
    int ret = write_begin(s, false);
    if (ret < 0) return ret;
    conn *c = &s->w;
    sqlite3_stmt *st = stmt_get(c, ST_TOKEN_INSERT);
    ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, user_id);
        bind_text(st, 2, hash_hex);
        bind_text(st, 3, label);
        sqlite3_bind_int64(st, 4, now());
        sqlite3_bind_int64(st, 5, expires_at);
        ret = stmt_run(c, st, "token insert");
        if (ret == 0 && id) *id = sqlite3_last_insert_rowid(c->db);
    }
    return write_end(s, ret);
}

int store_token_lookup(store *s, const char *hash_hex, store_user *out)
{
    if (!s || !hash_hex || !out) return -EINVAL;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_TOKEN_LOOKUP);
    int ret = -EIO;
    if (st) {
        bind_text(st, 1, hash_hex);
        ret = read_one(c, st, read_user, out);
    }
    read_end(s, c);
    return ret;
}

int store_token_revoke(store *s, int64_t id)
{
    if (!s) return -EINVAL;
    int ret = write_begin(s, false);
    if (ret < 0) return ret;
    conn *c = &s->w;
    sqlite3_stmt *st = stmt_get(c, ST_TOKEN_REVOKE);
    ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, now());
        ret = stmt_run(c, st, "token revoke");
        if (ret == 0 && sqlite3_changes(c->db) == 0) ret = -ENOENT;
    }
    return write_end(s, ret);
}

int store_token_list(store *s, int64_t user_id, store_token **out, size_t *n)
{
    if (!s || !out || !n) return -EINVAL;
    *out = NULL;
    *n = 0;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, user_id > 0 ? ST_TOKEN_LIST_USER : ST_TOKEN_LIST);
    int ret = -EIO;
    if (st) {
        if (user_id > 0) sqlite3_bind_int64(st, 1, user_id);
        ret = read_rows(c, st, sizeof **out, read_token, (void **)out, n);
    }
    read_end(s, c);
    return ret;
}

int store_token_get(store *s, int64_t id, store_token *out)
{
    if (!s || !out) return -EINVAL;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_TOKEN_GET);
    int ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        ret = read_one(c, st, read_token, out);
    }
    read_end(s, c);
    return ret;
}

int store_token_active_list(store *s, store_token_auth **out, size_t *n)
{
    return list_all(s, ST_TOKEN_ACTIVE, sizeof **out, read_token_auth, (void **)out, n);
}

/* --- jobs --- */

static bool state_ok(const char *state)
{
    return text_fits(state, STORE_STATE_MAX) && state[0] != '\0';
}

/* What the ledger needs to know of a job. */
typedef struct job_billing {
    int64_t partner_id;
    char state[STORE_STATE_MAX];
    char period[8];
    int64_t hold_gpu_seconds, hold_cpu_seconds;
    int64_t dispatched_at;
} job_billing;

static void read_billing(sqlite3_stmt *st, void *item)
{
    job_billing *b = item;
    memset(b, 0, sizeof *b);
    b->partner_id = sqlite3_column_int64(st, 0);
    col_text(st, 1, b->state, sizeof b->state);
    col_text(st, 2, b->period, sizeof b->period);
    b->hold_gpu_seconds = sqlite3_column_int64(st, 3);
    b->hold_cpu_seconds = sqlite3_column_int64(st, 4);
    b->dispatched_at = sqlite3_column_int64(st, 5);
}

/* Inside a transaction: reads what the ledger needs of job `id`. Returns 0, -ENOENT, -errno. */
static int job_billing_get(conn *c, int64_t id, job_billing *out)
{
    sqlite3_stmt *st = stmt_get(c, ST_JOB_BILLING);
    if (!st) return -EIO;
    sqlite3_bind_int64(st, 1, id);
    return read_one(c, st, read_billing, out);
}

/* Inside a transaction: releases the hold of job `id`, if it has one: a "release" row with the
 * negated amounts, and the job's hold set to 0. Releasing twice writes nothing the second time.
 * Returns 0 or -errno. */
static int hold_release(conn *c, int64_t id, int64_t at)
{
    job_billing b;
    int ret = job_billing_get(c, id, &b);
    if (ret < 0 || (b.hold_gpu_seconds == 0 && b.hold_cpu_seconds == 0)) return ret;
    ret = ledger_append(c, id, b.partner_id, b.period, "release", -b.hold_gpu_seconds,
                        -b.hold_cpu_seconds, at);
    if (ret < 0) return ret;
    sqlite3_stmt *st = stmt_get(c, ST_JOB_HOLD_CLEAR);
    if (!st) return -EIO;
    sqlite3_bind_int64(st, 1, id);
    return stmt_run(c, st, "job hold release");
}

/* Inside a transaction: charges job `id` (a "charge" row, added to its charge fields). The charge
 * belongs to the job's period; a job dispatched before periods were recorded (a database
 * migrated from v1) gets the period of its dispatch, or of `at`. Returns 0 or -errno. */
static int charge_write(conn *c, int64_t id, int64_t gpu_seconds, int64_t cpu_seconds, int64_t at)
{
    job_billing b;
    int ret = job_billing_get(c, id, &b);
    if (ret < 0) return ret;
    if (!b.period[0]) period_of(b.dispatched_at > 0 ? b.dispatched_at : at, b.period);
    ret = ledger_append(c, id, b.partner_id, b.period, "charge", gpu_seconds, cpu_seconds, at);
    if (ret < 0) return ret;
    sqlite3_stmt *st = stmt_get(c, ST_JOB_CHARGE);
    if (!st) return -EIO;
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, b.period);
    sqlite3_bind_int64(st, 3, gpu_seconds);
    sqlite3_bind_int64(st, 4, cpu_seconds);
    return stmt_run(c, st, "job charge");
}

int store_job_insert(store *s, store_job *j, const char *script)
{
    if (!s || !j || !script || !text_fits(j->name, sizeof j->name) ||
        !text_fits(j->gpu_type, sizeof j->gpu_type) ||
        !text_fits(j->request_id, sizeof j->request_id) ||
        (j->request_id[0] != '\0' && !request_id_valid(j->request_id)))
        return -EINVAL;
    int ret = write_begin(s, true);
    if (ret < 0) return ret;
    conn *c = &s->w;
    store_user u;
    int64_t t = now(), new_id = 0;

    sqlite3_stmt *st = stmt_get(c, ST_USER_GET_ID);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, j->user_id);
    ret = read_one(c, st, read_user, &u);
    if (ret < 0) goto out;

    st = stmt_get(c, ST_JOB_INSERT);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, j->user_id);
    bind_text(st, 2, u.name);
    bind_text(st, 3, u.partner);
    bind_text(st, 4, u.unix_user);
    bind_text(st, 5, j->name);
    sqlite3_bind_int(st, 6, j->gpus);
    bind_text(st, 7, j->gpu_type);
    sqlite3_bind_int(st, 8, j->cpus_per_task);
    sqlite3_bind_int64(st, 9, j->mem_mb);
    sqlite3_bind_int(st, 10, j->time_minutes);
    sqlite3_bind_int64(st, 11, t);
    sqlite3_bind_text(st, 12, script, -1, SQLITE_STATIC);
    ret = stmt_run(c, st, "job insert");
    if (ret == 0) new_id = sqlite3_last_insert_rowid(c->db);
    if (ret == 0 && j->request_id[0] != '\0') {
        st = stmt_get(c, ST_JOB_REQUEST_INSERT);
        if (!st) {
            ret = -EIO;
            goto out;
        }
        sqlite3_bind_int64(st, 1, new_id);
        bind_text(st, 2, j->request_id);
        ret = stmt_run(c, st, "job request id insert");
    }
out:
    ret = write_end(s, ret);
    if (ret < 0) return ret;

    j->id = new_id;
    memcpy(j->user, u.name, sizeof j->user);
    memcpy(j->partner, u.partner, sizeof j->partner);
    memcpy(j->unix_user, u.unix_user, sizeof j->unix_user);
    snprintf(j->state, sizeof j->state, "%s", STORE_STATE_QUEUED);
    j->reason[0] = '\0';
    j->slurm_job_id = 0;
    j->has_exit_code = false;
    j->exit_code = 0;
    j->cancel_requested = false;
    j->submitted_at = t;
    j->dispatched_at = j->started_at = j->ended_at = 0;
    j->period[0] = '\0';
    j->hold_gpu_seconds = j->hold_cpu_seconds = 0;
    j->charge_gpu_seconds = j->charge_cpu_seconds = 0;
    return 0;
}

/* Inside a transaction (or alone): reads the state of job `id`. Returns 0, -ENOENT, -errno. */
static int job_state(conn *c, int64_t id, char *state, size_t cap)
{
    sqlite3_stmt *st = stmt_get(c, ST_JOB_EXISTS);
    if (!st) return -EIO;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW)
        col_text(st, 0, state, cap);
    else if (rc == SQLITE_DONE)
        ret = -ENOENT;
    else
        ret = db_error(c, sqlite3_extended_errcode(c->db), "job state");
    stmt_done(st);
    return ret;
}

int store_job_reason_set(store *s, int64_t id, const char *reason)
{
    if (!s || (reason && !text_fits(reason, STORE_REASON_MAX))) return -EINVAL;
    int ret = write_begin(s, false);
    if (ret < 0) return ret;
    conn *c = &s->w;
    sqlite3_stmt *st = stmt_get(c, ST_JOB_REASON_SET);
    ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        bind_text(st, 2, reason);
        ret = stmt_run(c, st, "job reason");
        if (ret == 0 && sqlite3_changes(c->db) == 0) {
            char cur[STORE_STATE_MAX];
            ret = job_state(c, id, cur, sizeof cur); /* 0: not queued, or the same reason */
        }
    }
    return write_end(s, ret);
}

int store_job_get(store *s, int64_t id, store_job *out)
{
    if (!s || !out) return -EINVAL;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_JOB_GET);
    int ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        ret = read_one(c, st, read_job, out);
    }
    read_end(s, c);
    return ret;
}

/* Reads one text column of job `id` (statement `which`) into a malloc'd string. */
static int job_text_get(store *s, int64_t id, enum stmt_id which, const char *what, char **out)
{
    if (!s || !out) return -EINVAL;
    *out = NULL;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, which);
    int ret = -EIO;
    if (!st) goto out;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        size_t len = t ? (size_t)sqlite3_column_bytes(st, 0) : 0;
        char *copy = malloc(len + 1);
        if (copy) {
            if (len) memcpy(copy, t, len);
            copy[len] = '\0';
            *out = copy;
            ret = 0;
        } else {
            ret = -ENOMEM;
        }
    } else if (rc == SQLITE_DONE) {
        ret = -ENOENT;
    } else {
        ret = db_error(c, sqlite3_extended_errcode(c->db), what);
    }
    stmt_done(st);
out:
    read_end(s, c);
    return ret;
}

int store_job_script_get(store *s, int64_t id, char **out)
{
    return job_text_get(s, id, ST_JOB_SCRIPT, "job script", out);
}

int store_job_options_get(store *s, int64_t id, char **out)
{
    return job_text_get(s, id, ST_JOB_OPTIONS, "job options", out);
}

int store_job_extra_set(store *s, int64_t id, int cpus, const char *options)
{
    if (!s || !options || cpus < 0) return -EINVAL;
    int ret = write_begin(s, false);
    if (ret < 0) return ret;
    conn *c = &s->w;
    sqlite3_stmt *st = stmt_get(c, ST_JOB_OPTIONS_SET);
    ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, cpus);
        sqlite3_bind_text(st, 3, options, -1, SQLITE_STATIC);
        ret = stmt_run(c, st, "job options");
        if (ret == 0 && sqlite3_changes(c->db) == 0) ret = -ENOENT;
    }
    return write_end(s, ret);
}

int store_job_list(store *s, int64_t user_id, const char *partner, size_t limit, store_job **out,
                   size_t *n)
{
    if (!s || !out || !n) return -EINVAL;
    *out = NULL;
    *n = 0;
    int64_t lim = limit == 0 || limit > (size_t)INT64_MAX ? -1 : (int64_t)limit;
    enum stmt_id id = user_id > 0 ? (partner ? ST_JOB_LIST_USER_PARTNER : ST_JOB_LIST_USER)
                                  : (partner ? ST_JOB_LIST_PARTNER : ST_JOB_LIST);
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, id);
    int ret = -EIO;
    if (st) {
        /* every variant numbers its parameters alike (?1 user, ?2 partner, ?3 limit) */
        sqlite3_bind_int64(st, 1, user_id);
        bind_text(st, 2, partner);
        sqlite3_bind_int64(st, 3, lim);
        ret = read_rows(c, st, sizeof **out, read_job, (void **)out, n);
    }
    read_end(s, c);
    return ret;
}

int store_job_list_active(store *s, store_job **out, size_t *n)
{
    return list_all(s, ST_JOB_LIST_ACTIVE, sizeof **out, read_job, (void **)out, n);
}

int store_job_list_in_slurm(store *s, store_job **out, size_t *n)
{
    return list_all(s, ST_JOB_LIST_IN_SLURM, sizeof **out, read_job, (void **)out, n);
}

/* Whether `hold` fits what is left of `budget` (STORE_UNLIMITED: always). */
static bool budget_fits(int64_t budget, int64_t used, int64_t held, int64_t hold)
{
    if (budget == STORE_UNLIMITED) return true;
    int64_t left;
    if (__builtin_sub_overflow(budget, used, &left) || __builtin_sub_overflow(left, held, &left))
        return false;
    return hold <= left;
}

int store_job_dispatch_begin(store *s, int64_t id, const char *period, int64_t hold_gpu_seconds,
                             int64_t hold_cpu_seconds)
{
    if (!s || !period_ok(period) || hold_gpu_seconds < 0 || hold_cpu_seconds < 0) return -EINVAL;
    int ret = write_begin(s, true);
    if (ret < 0) return ret;
    conn *c = &s->w;
    /* BEGIN IMMEDIATE takes the database's write lock before the budget is read, so no other
     * connection, in this process or another, can add a hold between the check and the write. */

    job_billing b;
    ret = job_billing_get(c, id, &b);
    if (ret < 0) goto out;
    if (strcmp(b.state, STORE_STATE_QUEUED) != 0) {
        ret = -EAGAIN;
        goto out;
    }

    int64_t budget_gpu = 0, budget_cpu = 0; /* a quota never set leaves no budget */
    sqlite3_stmt *st = stmt_get(c, ST_QUOTA_BUDGET);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, b.partner_id);
    bind_text(st, 2, period);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        budget_gpu = sqlite3_column_int64(st, 0);
        budget_cpu = sqlite3_column_int64(st, 1);
    } else if (rc != SQLITE_DONE) {
        ret = db_error(c, sqlite3_extended_errcode(c->db), "quota budget");
    }
    stmt_done(st);
    if (ret < 0) goto out;

    st = stmt_get(c, ST_LEDGER_SUMS);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, b.partner_id);
    bind_text(st, 2, period);
    rc = sqlite3_step(st);
    int64_t used_gpu = 0, held_gpu = 0, used_cpu = 0, held_cpu = 0;
    if (rc == SQLITE_ROW) {
        used_gpu = sqlite3_column_int64(st, 0);
        held_gpu = sqlite3_column_int64(st, 1);
        used_cpu = sqlite3_column_int64(st, 2);
        held_cpu = sqlite3_column_int64(st, 3);
    } else {
        ret = db_error(c, sqlite3_extended_errcode(c->db), "ledger sums");
    }
    stmt_done(st);
    if (ret < 0) goto out;
    if (!budget_fits(budget_gpu, used_gpu, held_gpu, hold_gpu_seconds) ||
        !budget_fits(budget_cpu, used_cpu, held_cpu, hold_cpu_seconds)) {
        ret = -EDQUOT;
        goto out;
    }

    ret = ledger_append(c, id, b.partner_id, period, "hold", hold_gpu_seconds, hold_cpu_seconds,
                        now());
    if (ret < 0) goto out;
    st = stmt_get(c, ST_JOB_DISPATCH);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, period);
    sqlite3_bind_int64(st, 3, hold_gpu_seconds);
    sqlite3_bind_int64(st, 4, hold_cpu_seconds);
    ret = stmt_run(c, st, "job dispatch");
    if (ret == 0 && sqlite3_changes(c->db) != 1) ret = -EIO; /* it was queued a moment ago */
out:
    ret = write_end(s, ret);
    return ret;
}

int store_job_transition(store *s, int64_t id, const char *from_state, const char *to_state,
                         const char *reason)
{
    if (!s || !state_ok(from_state) || !state_ok(to_state)) return -EINVAL;
    if (reason && !text_fits(reason, STORE_REASON_MAX)) return -EINVAL;
    int ret = write_begin(s, true);
    if (ret < 0) return ret;
    conn *c = &s->w;
    int64_t t = now();
    bool terminal = store_state_terminal(to_state);
    sqlite3_stmt *st = stmt_get(c, ST_JOB_TRANSITION);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, from_state);
    bind_text(st, 3, to_state);
    bind_text(st, 4, reason);
    sqlite3_bind_int(st, 5, terminal);
    sqlite3_bind_int64(st, 6, t);
    ret = stmt_run(c, st, "job transition");
    if (ret == 0 && sqlite3_changes(c->db) == 0) {
        char cur[STORE_STATE_MAX];
        ret = job_state(c, id, cur, sizeof cur);
        if (ret == 0) ret = -EAGAIN;
    }
    if (ret == 0 && (terminal || strcmp(to_state, STORE_STATE_QUEUED) == 0))
        ret = hold_release(c, id, t);
out:
    ret = write_end(s, ret);
    return ret;
}

int store_job_set_dispatched(store *s, int64_t id, int64_t slurm_job_id)
{
    if (!s || slurm_job_id <= 0) return -EINVAL;
    int ret = write_begin(s, true);
    if (ret < 0) return ret;
    conn *c = &s->w;
    sqlite3_stmt *st = stmt_get(c, ST_JOB_SET_DISPATCHED);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, slurm_job_id);
    sqlite3_bind_int64(st, 3, now());
    ret = stmt_run(c, st, "job set dispatched");
    if (ret == 0 && sqlite3_changes(c->db) == 0) {
        char cur[STORE_STATE_MAX];
        ret = job_state(c, id, cur, sizeof cur);
        if (ret == 0) ret = -EAGAIN;
    }
out:
    ret = write_end(s, ret);
    return ret;
}

int store_job_update(store *s, const store_job *j)
{
    if (!s || !j || !text_fits(j->state, sizeof j->state) ||
        !text_fits(j->reason, sizeof j->reason) || j->charge_gpu_seconds < 0 ||
        j->charge_cpu_seconds < 0)
        return -EINVAL;
    int ret = write_begin(s, true);
    if (ret < 0) return ret;
    conn *c = &s->w;
    int64_t t = now();

    sqlite3_stmt *st = stmt_get(c, ST_JOB_UPDATE_READ);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, j->id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        ret = rc == SQLITE_DONE ? -ENOENT : db_error(c, sqlite3_extended_errcode(c->db), "job");
        stmt_done(st);
        goto out;
    }
    char cur_state[STORE_STATE_MAX], cur_reason[STORE_REASON_MAX];
    col_text(st, 0, cur_state, sizeof cur_state);
    col_text(st, 1, cur_reason, sizeof cur_reason);
    int64_t cur_slurm = sqlite3_column_int64(st, 2);
    bool cur_has_exit = sqlite3_column_type(st, 3) != SQLITE_NULL;
    int cur_exit = sqlite3_column_int(st, 3);
    int64_t cur_started = sqlite3_column_int64(st, 4);
    int64_t cur_ended = sqlite3_column_int64(st, 5);
    stmt_done(st);
    if (store_state_terminal(cur_state)) goto out; /* never changed again; ret is 0 */

    const char *state = j->state[0] ? j->state : cur_state;
    bool terminal = store_state_terminal(state);
    int64_t slurm = j->slurm_job_id > 0 ? j->slurm_job_id : cur_slurm;
    bool has_exit = j->has_exit_code || cur_has_exit;
    int exit_code = j->has_exit_code ? j->exit_code : cur_exit;
    int64_t started = j->started_at > 0 ? j->started_at : cur_started;
    int64_t ended = j->ended_at > 0 ? j->ended_at : cur_ended;
    if (ended == 0 && terminal) ended = t;

    /* nothing changed: write nothing (a change to a terminal state is always a change) */
    if (strcmp(state, cur_state) == 0 && strcmp(j->reason, cur_reason) == 0 && slurm == cur_slurm &&
        has_exit == cur_has_exit && (!has_exit || exit_code == cur_exit) &&
        started == cur_started && ended == cur_ended)
        goto out;

    st = stmt_get(c, ST_JOB_UPDATE_WRITE);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, j->id);
    bind_text(st, 2, state);
    bind_text(st, 3, j->reason);
    sqlite3_bind_int64(st, 4, slurm);
    if (has_exit)
        sqlite3_bind_int(st, 5, exit_code);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_int64(st, 6, started);
    sqlite3_bind_int64(st, 7, ended);
    ret = stmt_run(c, st, "job update");
    if (ret == 0 && terminal) ret = hold_release(c, j->id, t);
    if (ret == 0 && terminal && (j->charge_gpu_seconds > 0 || j->charge_cpu_seconds > 0))
        ret = charge_write(c, j->id, j->charge_gpu_seconds, j->charge_cpu_seconds, t);
out:
    ret = write_end(s, ret);
    return ret;
}

int store_job_cancel_request(store *s, int64_t id, bool *now_cancelled)
{
    if (!s) return -EINVAL;
    if (now_cancelled) *now_cancelled = false;
    int ret = write_begin(s, true);
    if (ret < 0) return ret;
    conn *c = &s->w;
    char cur[STORE_STATE_MAX];
    bool cancelled = false;
    int64_t t = now();
    ret = job_state(c, id, cur, sizeof cur);
    if (ret < 0) goto out;
    if (store_state_terminal(cur)) {
        ret = -EALREADY;
        goto out;
    }
    cancelled = strcmp(cur, STORE_STATE_QUEUED) == 0;
    sqlite3_stmt *st = stmt_get(c, cancelled ? ST_JOB_CANCEL_QUEUED : ST_JOB_CANCEL_FLAG);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    if (cancelled) sqlite3_bind_int64(st, 2, t);
    ret = stmt_run(c, st, "job cancel");
    /* a queued job holds nothing; should one ever, its end still gives the hold back */
    if (ret == 0 && cancelled) ret = hold_release(c, id, t);
out:
    ret = write_end(s, ret);
    if (ret == 0 && now_cancelled) *now_cancelled = cancelled;
    return ret;
}

/* --- usage --- */

static const struct {
    const char *by;
    enum stmt_id st;
} usage_dims[] = {
    {"partner", ST_USAGE_PARTNER},   {"user", ST_USAGE_USER}, {"category", ST_USAGE_CATEGORY},
    {"gpu-type", ST_USAGE_GPU_TYPE}, {"day", ST_USAGE_DAY},   {"month", ST_USAGE_MONTH},
    {"total", ST_USAGE_TOTAL},
};

static void read_usage_row(sqlite3_stmt *st, void *item)
{
    store_usage_row *r = item;
    memset(r, 0, sizeof *r);
    col_text(st, 0, r->key, sizeof r->key);
    r->gpu_seconds = sqlite3_column_int64(st, 1);
    r->cpu_seconds = sqlite3_column_int64(st, 2);
    r->elapsed_gpu_seconds = sqlite3_column_int64(st, 3);
    r->jobs = sqlite3_column_int64(st, 4);
}

/* Binds `str` at idx, or NULL (the statement's "any") when str is NULL. */
static void bind_text_or_null(sqlite3_stmt *st, int idx, const char *str)
{
    if (str)
        bind_text(st, idx, str);
    else
        sqlite3_bind_null(st, idx);
}

int store_usage_query(store *s, const store_usage_filter *f, store_usage_row **out, size_t *n)
{
    if (!s || !f || !out || !n) return -EINVAL;
    *out = NULL;
    *n = 0;
    enum stmt_id id = ST_COUNT;
    for (size_t i = 0; f->by && i < sizeof usage_dims / sizeof usage_dims[0]; i++)
        if (strcmp(f->by, usage_dims[i].by) == 0) id = usage_dims[i].st;
    if (id == ST_COUNT) return -EINVAL;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, id);
    int ret = -EIO;
    if (st) {
        bind_text_or_null(st, 1, f->partner);
        bind_text_or_null(st, 2, f->user);
        /* unbounded ends as the widest bounds: the (kind, at) index serves every query */
        sqlite3_bind_int64(st, 3, f->from != 0 ? f->from : INT64_MIN);
        sqlite3_bind_int64(st, 4, f->to != 0 ? f->to : INT64_MAX);
        ret = read_rows(c, st, sizeof **out, read_usage_row, (void **)out, n);
    }
    read_end(s, c);
    return ret;
}

int store_job_list_charged(store *s, const char *partner, const char *period, store_job **out,
                           size_t *n)
{
    if (!s || !partner || !period || !out || !n) return -EINVAL;
    *out = NULL;
    *n = 0;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_JOB_LIST_CHARGED);
    int ret = -EIO;
    if (st) {
        bind_text(st, 1, partner);
        bind_text(st, 2, period);
        ret = read_rows(c, st, sizeof **out, read_job, (void **)out, n);
    }
    read_end(s, c);
    return ret;
}

/* --- refunds and corrections --- */

static void read_adjustment(sqlite3_stmt *st, void *item)
{
    store_adjustment *a = item;
    memset(a, 0, sizeof *a);
    a->ledger_id = sqlite3_column_int64(st, 0);
    a->job_id = sqlite3_column_int64(st, 1);
    col_text(st, 2, a->partner, sizeof a->partner);
    col_text(st, 3, a->period, sizeof a->period);
    col_text(st, 4, a->kind, sizeof a->kind);
    a->gpu_seconds = sqlite3_column_int64(st, 5);
    a->cpu_seconds = sqlite3_column_int64(st, 6);
    col_text(st, 7, a->reason, sizeof a->reason);
    col_text(st, 8, a->actor, sizeof a->actor);
    a->at = sqlite3_column_int64(st, 9);
}

int store_job_adjust(store *s, int64_t id, const char *kind, int64_t gpu_delta, int64_t cpu_delta,
                     const char *reason, const char *actor, store_job *out)
{
    if (!s || !kind || (strcmp(kind, "refund") != 0 && strcmp(kind, "correction") != 0) ||
        !reason || !reason[0] || !text_fits(reason, STORE_REASON_MAX) || !name_ok(actor) ||
        (gpu_delta == 0 && cpu_delta == 0))
        return -EINVAL;
    int ret = write_begin(s, true);
    if (ret < 0) return ret;
    conn *c = &s->w;
    int64_t t = now();
    store_job j;
    job_billing b;
    sqlite3_stmt *st = stmt_get(c, ST_JOB_GET);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    if ((ret = read_one(c, st, read_job, &j)) < 0) goto out;
    if ((ret = job_billing_get(c, id, &b)) < 0) goto out;
    if (!store_state_terminal(j.state) || !b.period[0]) {
        ret = -EAGAIN;
        goto out;
    }
    int64_t net_gpu = j.charge_gpu_seconds + gpu_delta, net_cpu = j.charge_cpu_seconds + cpu_delta;
    if (net_gpu < 0 || net_cpu < 0) {
        ret = -ERANGE;
        goto out;
    }
    if ((ret = ledger_append(c, id, b.partner_id, b.period, "charge", gpu_delta, cpu_delta, t)) < 0)
        goto out;
    int64_t ledger_id = sqlite3_last_insert_rowid(c->db);
    if (!(st = stmt_get(c, ST_ADJUST_INSERT))) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, ledger_id);
    sqlite3_bind_int64(st, 2, id);
    bind_text(st, 3, kind);
    bind_text(st, 4, reason);
    bind_text(st, 5, actor);
    sqlite3_bind_int64(st, 6, t);
    if ((ret = stmt_run(c, st, "adjustment insert")) < 0) goto out;
    if (!(st = stmt_get(c, ST_JOB_CHARGE_NET))) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, net_gpu);
    sqlite3_bind_int64(st, 3, net_cpu);
    if ((ret = stmt_run(c, st, "job net charge")) < 0) goto out;
    j.charge_gpu_seconds = net_gpu;
    j.charge_cpu_seconds = net_cpu;
    if (out) *out = j;
out:
    return write_end(s, ret);
}

int store_adjustment_list(store *s, const char *partner, const char *period, int64_t job_id,
                          store_adjustment **out, size_t *n)
{
    if (!s || !out || !n) return -EINVAL;
    *out = NULL;
    *n = 0;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_ADJUST_LIST);
    int ret = -EIO;
    if (st) {
        if (partner)
            bind_text(st, 1, partner);
        else
            sqlite3_bind_null(st, 1);
        if (period)
            bind_text(st, 2, period);
        else
            sqlite3_bind_null(st, 2);
        sqlite3_bind_int64(st, 3, job_id);
        ret = read_rows(c, st, sizeof **out, read_adjustment, (void **)out, n);
    }
    read_end(s, c);
    return ret;
}

/* --- reads for the reconciliation --- */

int store_job_list_period(store *s, const char *period, store_job **out, size_t *n)
{
    if (!period) return -EINVAL;
    return list_rows(s, ST_JOB_LIST_PERIOD, period, sizeof **out, read_job, (void **)out, n);
}

static void read_job_sum(sqlite3_stmt *st, void *item)
{
    store_ledger_job_sum *e = item;
    e->job_id = sqlite3_column_int64(st, 0);
    e->charge_gpu_seconds = sqlite3_column_int64(st, 1);
    e->refund_gpu_seconds = sqlite3_column_int64(st, 2);
}

int store_ledger_job_sums(store *s, const char *period, store_ledger_job_sum **out, size_t *n)
{
    if (!period) return -EINVAL;
    return list_rows(s, ST_LEDGER_JOB_SUMS, period, sizeof **out, read_job_sum, (void **)out, n);
}

int store_job_get_by_slurm_id(store *s, int64_t slurm_job_id, store_job *out)
{
    if (!s || !out || slurm_job_id <= 0) return -EINVAL;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_JOB_GET_SLURM);
    int ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, slurm_job_id);
        ret = read_one(c, st, read_job, out);
    }
    read_end(s, c);
    return ret;
}

/* --- idempotency records --- */

static bool idem_key_ok(const char *key)
{
    return text_fits(key, STORE_IDEM_KEY_MAX) && key[0] != '\0';
}

int store_idem_get(store *s, int64_t user_id, const char *key, store_idem *out)
{
    if (!out) return -EINVAL;
    memset(out, 0, sizeof *out);
    if (!s || !idem_key_ok(key)) return -EINVAL;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_IDEM_GET);
    int ret = -EIO;
    if (!st) goto out;
    sqlite3_bind_int64(st, 1, user_id);
    bind_text(st, 2, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *body = sqlite3_column_text(st, 5);
        size_t len = body ? (size_t)sqlite3_column_bytes(st, 5) : 0;
        out->body = malloc(len + 1);
        if (out->body) {
            if (len) memcpy(out->body, body, len);
            out->body[len] = '\0';
            out->user_id = sqlite3_column_int64(st, 0);
            col_text(st, 1, out->key, sizeof out->key);
            col_text(st, 2, out->body_hash, sizeof out->body_hash);
            out->job_id = sqlite3_column_int64(st, 3);
            out->status = sqlite3_column_int(st, 4);
            out->created_at = sqlite3_column_int64(st, 6);
            ret = 0;
        } else {
            ret = -ENOMEM;
        }
    } else if (rc == SQLITE_DONE) {
        ret = -ENOENT;
    } else {
        ret = db_error(c, sqlite3_extended_errcode(c->db), "idempotency get");
    }
    stmt_done(st);
out:
    read_end(s, c);
    return ret;
}

int store_idem_put(store *s, const store_idem *e)
{
    if (!s || !e || !idem_key_ok(e->key) || !text_fits(e->body_hash, sizeof e->body_hash))
        return -EINVAL;
    int ret = write_begin(s, false);
    if (ret < 0) return ret;
    conn *c = &s->w;
    sqlite3_stmt *st = stmt_get(c, ST_IDEM_PUT);
    ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, e->user_id);
        bind_text(st, 2, e->key);
        bind_text(st, 3, e->body_hash);
        sqlite3_bind_int64(st, 4, e->job_id);
        sqlite3_bind_int(st, 5, e->status);
        bind_text(st, 6, e->body);
        sqlite3_bind_int64(st, 7, e->created_at != 0 ? e->created_at : now());
        ret = stmt_run(c, st, "idempotency put");
    }
    return write_end(s, ret);
}

void store_idem_clear(store_idem *e)
{
    if (!e) return;
    free(e->body);
    e->body = NULL;
}

int store_idem_prune(store *s, int64_t before, size_t max, size_t *removed)
{
    if (removed) *removed = 0;
    if (!s) return -EINVAL;
    int64_t lim = max == 0 || max > (size_t)INT64_MAX ? -1 : (int64_t)max;
    int ret = write_begin(s, false);
    if (ret < 0) return ret;
    conn *c = &s->w;
    sqlite3_stmt *st = stmt_get(c, ST_IDEM_PRUNE);
    ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, before);
        sqlite3_bind_int64(st, 2, lim);
        ret = stmt_run(c, st, "idempotency prune");
        if (ret == 0 && removed) *removed = (size_t)sqlite3_changes(c->db);
    }
    return write_end(s, ret);
}

/* --- audit trail --- */

static char audit_no_details[] = "{}";

int store_audit_append(store *s, store_audit_entry *e, store_audit_hash_fn fn, void *arg)
{
    if (!s || !e || !fn || !text_fits(e->actor, sizeof e->actor) || !e->actor[0] ||
        !text_fits(e->partner, sizeof e->partner) || !text_fits(e->action, sizeof e->action) ||
        !e->action[0])
        return -EINVAL;
    /* Built in a copy: e changes only once the entry is committed. */
    store_audit_entry x = *e;
    if (!x.details) x.details = audit_no_details;
    memset(x.prev_hash, 0, sizeof x.prev_hash);
    memset(x.hash, 0, sizeof x.hash);
    int ret = write_begin(s, true);
    if (ret < 0) return ret;
    conn *c = &s->w;
    /* BEGIN IMMEDIATE: no other connection appends between reading the last entry and writing
     * this one, so seq has no gap or twin and prev_hash is the hash of seq - 1. */

    sqlite3_stmt *st = stmt_get(c, ST_AUDIT_LAST);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        x.seq = sqlite3_column_int64(st, 0) + 1;
        col_text(st, 1, x.prev_hash, sizeof x.prev_hash);
    } else if (rc == SQLITE_DONE) {
        x.seq = 1;
    } else {
        ret = db_error(c, sqlite3_extended_errcode(c->db), "audit last entry");
    }
    stmt_done(st);
    if (ret < 0) goto out;
    if (x.at == 0) x.at = now();

    char hash[STORE_HASH_HEX];
    memset(hash, 0, sizeof hash);
    ret = fn(&x, hash, arg);
    if (ret > 0) ret = -EIO; /* not the promised negative errno */
    if (ret < 0) goto out;
    hash[STORE_HASH_HEX - 1] = '\0';
    memcpy(x.hash, hash, sizeof x.hash);

    st = stmt_get(c, ST_AUDIT_INSERT);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, x.seq);
    sqlite3_bind_int64(st, 2, x.at);
    bind_text(st, 3, x.actor);
    bind_text(st, 4, x.partner);
    bind_text(st, 5, x.action);
    bind_text(st, 6, x.details);
    bind_text(st, 7, x.prev_hash);
    bind_text(st, 8, x.hash);
    ret = stmt_run(c, st, "audit append");
out:
    ret = write_end(s, ret);
    if (ret < 0) return ret;
    e->seq = x.seq;
    e->at = x.at;
    memcpy(e->prev_hash, x.prev_hash, sizeof e->prev_hash);
    memcpy(e->hash, x.hash, sizeof e->hash);
    return 0;
}

/* Returns the cached list statement for the filters in `mask` (prepared on first use from static
 * fragments), or NULL. Parameters: ?1 the first seq, ?2 since, ?3 actor, ?4 action (or prefix), ?5
 * the end of the prefix range, ?6 limit (-1 = none). */
static sqlite3_stmt *audit_list_stmt(conn *c, unsigned mask)
{
    if (c->audit_list[mask]) return c->audit_list[mask];
    char sql[320];
    snprintf(sql, sizeof sql,
             "SELECT " AUDIT_COLS " FROM audit WHERE seq >= ?1%s%s%s "
             "ORDER BY seq LIMIT ?6",
             mask & AUDIT_BY_SINCE ? " AND at >= ?2" : "",
             mask & AUDIT_BY_ACTOR ? " AND actor = ?3" : "",
             mask & AUDIT_BY_PREFIX   ? " AND action >= ?4 AND action < ?5"
             : mask & AUDIT_BY_ACTION ? " AND action = ?4"
                                      : "");
    int rc =
        sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->audit_list[mask], NULL);
    if (rc != SQLITE_OK) {
        db_error(c, rc, "prepare audit list");
        c->audit_list[mask] = NULL;
    }
    return c->audit_list[mask];
}

/* Reads one audit row into e, details copied. Returns 0 or -ENOMEM. */
static int read_audit_entry(sqlite3_stmt *st, store_audit_entry *e)
{
    memset(e, 0, sizeof *e);
    e->seq = sqlite3_column_int64(st, 0);
    e->at = sqlite3_column_int64(st, 1);
    col_text(st, 2, e->actor, sizeof e->actor);
    col_text(st, 3, e->partner, sizeof e->partner);
    col_text(st, 4, e->action, sizeof e->action);
    const unsigned char *d = sqlite3_column_text(st, 5);
    size_t len = d ? (size_t)sqlite3_column_bytes(st, 5) : 0;
    e->details = malloc(len + 1);
    if (!e->details) return -ENOMEM;
    if (len) memcpy(e->details, d, len);
    e->details[len] = '\0';
    col_text(st, 6, e->prev_hash, sizeof e->prev_hash);
    col_text(st, 7, e->hash, sizeof e->hash);
    return 0;
}

int store_audit_list(store *s, int64_t after_seq, int64_t since, const char *actor,
                     const char *action, size_t limit, store_audit_entry **out, size_t *n)
{
    if (!s || !out || !n) return -EINVAL;
    *out = NULL;
    *n = 0;
    /* An action ending in '.' is a prefix P: the actions from P (included) to P with its '.'
     * made '/' (excluded), the next byte, are exactly those starting with P. */
    size_t alen = action ? strlen(action) : 0;
    bool prefix = alen > 0 && action[alen - 1] == '.';
    char *prefix_end = prefix ? strdup(action) : NULL;
    if (prefix && !prefix_end) return -ENOMEM;
    if (prefix) prefix_end[alen - 1] = '/';
    unsigned mask = (since != 0 ? AUDIT_BY_SINCE : 0) | (actor ? AUDIT_BY_ACTOR : 0) |
                    (action ? AUDIT_BY_ACTION : 0) | (prefix ? AUDIT_BY_PREFIX : 0);
    int64_t lim = limit == 0 || limit > (size_t)INT64_MAX ? -1 : (int64_t)limit;

    store_audit_entry *arr = NULL;
    size_t cnt = 0, cap = 0;
    int ret = 0, rc;
    conn *c = read_begin(s);
    sqlite3_stmt *st = audit_list_stmt(c, mask);
    if (!st) {
        ret = -EIO;
        goto fail_stmt;
    }
    /* ?6 is in every variant, so ?1..?6 can all be bound even where one is not used. ?1 is the
     * first seq listed: after_seq + 1, but INT64_MIN itself for INT64_MIN (a row there is listed
     * too: the verifier walks from it, found by fuzz_audit_verify). */
    if (after_seq == INT64_MAX) goto fail_stmt;
    sqlite3_bind_int64(st, 1, after_seq == INT64_MIN ? INT64_MIN : after_seq + 1);
    sqlite3_bind_int64(st, 2, since);
    bind_text(st, 3, actor);
    bind_text(st, 4, action);
    bind_text(st, 5, prefix_end);
    sqlite3_bind_int64(st, 6, lim);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_audit_entry *e = array_push((void **)&arr, &cnt, &cap, sizeof *arr);
        if (!e) {
            ret = -ENOMEM;
            goto fail_rows;
        }
        ret = read_audit_entry(st, e);
        if (ret < 0) goto fail_rows;
    }
    if (rc != SQLITE_DONE) {
        ret = db_error(c, sqlite3_extended_errcode(c->db), "audit list");
        goto fail_rows;
    }
    stmt_done(st);
    read_end(s, c);
    free(prefix_end);
    *out = arr;
    *n = cnt;
    return 0;

fail_rows:
    stmt_done(st);
    store_audit_entries_free(arr, cnt); /* a slot pushed but not read has details NULL */
fail_stmt:
    read_end(s, c);
    free(prefix_end);
    return ret;
}

void store_audit_entries_free(store_audit_entry *e, size_t n)
{
    if (!e) return;
    for (size_t i = 0; i < n; i++)
        free(e[i].details);
    free(e);
}

bool store_state_terminal(const char *state)
{
    if (!state) return false;
    for (size_t i = 0; i < sizeof terminal_states / sizeof terminal_states[0]; i++)
        if (strcmp(state, terminal_states[i]) == 0) return true;
    return false;
}

/* --- job arrays --- */

int store_job_array_insert(store *s, const store_job_array *a, const int64_t *job_ids,
                           const int *task_ids, size_t n)
{
    if (!s || !a || !job_ids || !task_ids || n == 0 || a->array_job_id != job_ids[0] ||
        !text_fits(a->spec, sizeof a->spec))
        return -EINVAL;
    int ret = write_begin(s, true);
    if (ret < 0) return ret;
    conn *c = &s->w;
    sqlite3_stmt *st = stmt_get(c, ST_ARRAY_INSERT);
    ret = -EIO;
    if (!st) goto out;
    sqlite3_bind_int64(st, 1, a->array_job_id);
    bind_text(st, 2, a->spec);
    sqlite3_bind_int(st, 3, a->task_count);
    sqlite3_bind_int(st, 4, a->max_running);
    sqlite3_bind_int(st, 5, a->task_min);
    sqlite3_bind_int(st, 6, a->task_max);
    sqlite3_bind_int(st, 7, a->task_step);
    if ((ret = stmt_run(c, st, "array insert")) < 0) goto out;
    for (size_t i = 0; i < n && ret == 0; i++) {
        st = stmt_get(c, ST_ARRAY_TASK_INSERT);
        if (!st) {
            ret = -EIO;
            break;
        }
        sqlite3_bind_int64(st, 1, job_ids[i]);
        sqlite3_bind_int64(st, 2, a->array_job_id);
        sqlite3_bind_int(st, 3, task_ids[i]);
        ret = stmt_run(c, st, "array task insert");
    }
out:
    return write_end(s, ret);
}

static void read_array(sqlite3_stmt *st, void *item)
{
    store_job_array *a = item;
    memset(a, 0, sizeof *a);
    a->array_job_id = sqlite3_column_int64(st, 0);
    col_text(st, 1, a->spec, sizeof a->spec);
    a->task_count = sqlite3_column_int(st, 2);
    a->max_running = sqlite3_column_int(st, 3);
    a->task_min = sqlite3_column_int(st, 4);
    a->task_max = sqlite3_column_int(st, 5);
    a->task_step = sqlite3_column_int(st, 6);
}

int store_job_array_get(store *s, int64_t array_job_id, store_job_array *out)
{
    if (!s || !out) return -EINVAL;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_ARRAY_GET);
    int ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, array_job_id);
        ret = read_one(c, st, read_array, out);
    }
    read_end(s, c);
    return ret;
}

int store_job_array_tasks(store *s, int64_t array_job_id, store_job **out, size_t *n)
{
    return list_of(s, ST_ARRAY_TASKS, array_job_id, sizeof **out, read_job, (void **)out, n);
}

int store_job_array_task_get(store *s, int64_t array_job_id, int task_id, store_job *out)
{
    if (!s || !out) return -EINVAL;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_ARRAY_TASK_GET);
    int ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, array_job_id);
        sqlite3_bind_int(st, 2, task_id);
        ret = read_one(c, st, read_job, out);
    }
    read_end(s, c);
    return ret;
}

static void read_state_count(sqlite3_stmt *st, void *item)
{
    store_state_count *k = item;
    memset(k, 0, sizeof *k);
    col_text(st, 0, k->state, sizeof k->state);
    k->n = sqlite3_column_int64(st, 1);
}

int store_job_array_counts(store *s, int64_t array_job_id, store_state_count **out, size_t *n)
{
    return list_of(s, ST_ARRAY_COUNTS, array_job_id, sizeof **out, read_state_count, (void **)out,
                   n);
}

/* --- dependencies --- */

static void read_dependency(sqlite3_stmt *st, void *item)
{
    store_dependency *d = item;
    memset(d, 0, sizeof *d);
    d->job_id = sqlite3_column_int64(st, 0);
    col_text(st, 1, d->kind, sizeof d->kind);
    d->prereq_id = sqlite3_column_int64(st, 2);
}

int store_dependency_insert(store *s, int64_t job_id, const store_dependency *d, size_t n)
{
    if (!s || (n > 0 && !d) || n > STORE_DEPENDENCY_MAX) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!name_ok(d[i].kind) || d[i].prereq_id < 0) return -EINVAL;
    int ret = write_begin(s, true);
    if (ret < 0) return ret;
    conn *c = &s->w;
    for (size_t i = 0; i < n && ret == 0; i++) {
        sqlite3_stmt *st = stmt_get(c, ST_DEP_INSERT);
        if (!st) {
            ret = -EIO;
            break;
        }
        sqlite3_bind_int64(st, 1, job_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
        bind_text(st, 3, d[i].kind);
        sqlite3_bind_int64(st, 4, d[i].prereq_id);
        ret = stmt_run(c, st, "dependency insert");
    }
    return write_end(s, ret);
}

int store_dependency_list(store *s, int64_t job_id, store_dependency **out, size_t *n)
{
    return list_of(s, ST_DEP_LIST, job_id, sizeof **out, read_dependency, (void **)out, n);
}

int store_dependency_list_queued(store *s, store_dependency **out, size_t *n)
{
    return list_all(s, ST_DEP_LIST_QUEUED, sizeof **out, read_dependency, (void **)out, n);
}

static void read_id(sqlite3_stmt *st, void *item)
{
    *(int64_t *)item = sqlite3_column_int64(st, 0);
}

int store_job_list_active_named(store *s, int64_t user_id, const char *name, int64_t before_id,
                                int64_t **ids, size_t *n)
{
    if (!s || !name || !ids || !n) return -EINVAL;
    *ids = NULL;
    *n = 0;
    conn *c = read_begin(s);
    sqlite3_stmt *st = stmt_get(c, ST_JOB_ACTIVE_NAMED);
    int ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, user_id);
        bind_text(st, 2, name);
        sqlite3_bind_int64(st, 3, before_id);
        ret = read_rows(c, st, sizeof **ids, read_id, (void **)ids, n);
    }
    read_end(s, c);
    return ret;
}

static void read_run(sqlite3_stmt *st, void *item)
{
    store_run *r = item;
    memset(r, 0, sizeof *r);
    r->job_id = sqlite3_column_int64(st, 0);
    r->run = sqlite3_column_int(st, 1);
    r->runs = sqlite3_column_int(st, 2);
    r->slurm_job_id = sqlite3_column_int64(st, 3);
    r->started_at = sqlite3_column_int64(st, 4);
    r->ended_at = sqlite3_column_int64(st, 5);
    r->elapsed_seconds = sqlite3_column_int64(st, 6);
    r->charge_gpu_seconds = sqlite3_column_int64(st, 7);
    r->charge_cpu_seconds = sqlite3_column_int64(st, 8);
}

int store_job_run_end(store *s, const store_run *r)
{
    if (!s || !r || r->runs < 1 || r->started_at < 0 || r->ended_at < r->started_at ||
        r->elapsed_seconds < 0 || r->charge_gpu_seconds < 0 || r->charge_cpu_seconds < 0)
        return -EINVAL;
    int ret = write_begin(s, true);
    if (ret < 0) return ret;
    conn *c = &s->w;
    char cur[STORE_STATE_MAX];
    ret = job_state(c, r->job_id, cur, sizeof cur);
    if (ret == 0 && (store_state_terminal(cur) || strcmp(cur, STORE_STATE_QUEUED) == 0))
        ret = -EALREADY; /* only a job in Slurm has runs */
    sqlite3_stmt *st = ret == 0 ? stmt_get(c, ST_RUN_INSERT) : NULL;
    if (ret == 0 && !st) ret = -EIO;
    if (ret == 0) {
        sqlite3_bind_int64(st, 1, r->job_id);
        sqlite3_bind_int(st, 2, r->runs);
        sqlite3_bind_int64(st, 3, r->slurm_job_id);
        sqlite3_bind_int64(st, 4, r->started_at);
        sqlite3_bind_int64(st, 5, r->ended_at);
        sqlite3_bind_int64(st, 6, r->elapsed_seconds);
        sqlite3_bind_int64(st, 7, r->charge_gpu_seconds);
        sqlite3_bind_int64(st, 8, r->charge_cpu_seconds);
        ret = stmt_run(c, st, "run insert");
    }
    if (ret == 0 && (r->charge_gpu_seconds > 0 || r->charge_cpu_seconds > 0))
        ret = charge_write(c, r->job_id, r->charge_gpu_seconds, r->charge_cpu_seconds, now());
    if (ret == 0) {
        st = stmt_get(c, ST_JOB_RUN_RESET);
        if (!st) {
            ret = -EIO;
        } else {
            sqlite3_bind_int64(st, 1, r->job_id);
            ret = stmt_run(c, st, "run reset");
        }
    }
    return write_end(s, ret);
}

int store_job_runs_list(store *s, int64_t job_id, store_run **out, size_t *n)
{
    return list_of(s, ST_RUN_LIST, job_id, sizeof **out, read_run, (void **)out, n);
}
