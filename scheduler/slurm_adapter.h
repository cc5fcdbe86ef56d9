/* slurm_adapter.h - the one narrow door between antennad and Slurm (libslurm, Slurm 22.05).
 *
 * The only module that includes slurm/slurm.h. It never spawns sbatch/squeue/scancel. Every call
 * is a blocking RPC: run it from a worker thread, never on the event-loop thread. Submits may run
 * from several threads at once (libslurm's RPCs are thread-safe; the broker submits a batch from
 * three); the other calls on one adapter must not overlap with each other or with submits.
 */
#ifndef ANTENNA_SLURM_ADAPTER_H
#define ANTENNA_SLURM_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct slurm_adapter slurm_adapter;

/* What to submit. All strings are borrowed for the duration of the call. */
typedef struct slurm_adapter_submit_req {
    const char *name;        /* job name */
    const char *script;      /* batch script, starts with "#!" */
    const char *partition;   /* e.g. "gpu"; NULL = cluster default */
    const char *work_dir;    /* absolute, writable by uid */
    const char *stdout_path; /* absolute; stderr goes to the same file */
    const char *account;     /* Slurm account (the partner's, see slurm_adapter_account_ensure);
                                NULL or "" = the user's default account */
    const char *tag; /* stored in the job's AdminComment (set at submit; only root, SlurmUser and
                        Slurm operators can change it, never the job's user): finds the job again
                        when its submit answer was lost. The job's comment stays the user's. */
    uid_t uid;       /* the job runs as this account; must not be 0 */
    gid_t gid;
    int gpus;             /* 0 = no GPU */
    const char *gpu_type; /* "" or NULL = any type */
    int cpus_per_task;
    int64_t mem_mb; /* 0 = Slurm default */
    int time_minutes;
    /* A task of an Antenna job array (array_job_id > 0), submitted as a Slurm job of its own: its
     * environment gets what a Slurm array task's has, in Antenna's ids: SLURM_ARRAY_JOB_ID (the
     * array's Antenna id, its first task's), SLURM_ARRAY_TASK_ID (its index), and the array's
     * SLURM_ARRAY_TASK_COUNT, _MIN, _MAX and _STEP. SLURM_JOB_ID stays Slurm's own. */
    int64_t array_job_id;
    int array_task_id, array_task_count, array_task_min, array_task_max, array_task_step;
    /* sbatch's options (issue 9); 0, NULL or "" = not asked. With nodes_max > 1, `gpus` is the
     * job's total (tres_per_job); on one node it is the node's (tres_per_node), as before. */
    const char *stderr_path;  /* absolute; NULL = with stdout */
    int nodes_min, nodes_max; /* 0 = one node */
    int ntasks;               /* 0 = one per node */
    int ntasks_per_node;
    int gpus_per_node;          /* tres_per_node gres:gpu[:TYPE]:N */
    int gpus_per_task;          /* tres_per_task */
    int cpus_per_gpu;           /* cpus_per_tres (then cpus_per_task is not sent) */
    int64_t mem_per_gpu_mb;     /* mem_per_tres */
    int64_t mem_per_cpu_mb;     /* pn_min_memory | MEM_PER_CPU */
    const char *const *env;     /* NULL-terminated "NAME=value" items added to the job's
                                   environment (a name given here replaces Antenna's own) */
    int signal, signal_seconds; /* --signal: 0 = none */
    bool signal_batch_only;
    bool exclusive;
    const char *constraint; /* node features */
    int requeue;            /* -1 = Antenna's default (no requeue), 0 or 1 */
    const char *comment;    /* the user's own comment (never the tag) */
    const char *dependency; /* Slurm's --dependency with Slurm job ids; NULL or "" = none */
} slurm_adapter_submit_req;

/* What Slurm says of one job. */
typedef struct slurm_adapter_job {
    uint32_t job_id;
    char tag[128];   /* the job's AdminComment (never its comment or name, which its user may
                        change) */
    char state[24];  /* broker state name: pending, running, suspended, completed, failed,
                        cancelled, timeout, node_fail, preempted, boot_fail, deadline,
                        out_of_memory */
    char reason[64]; /* Slurm's wait reason for pending jobs ("Resources", "Priority"), or "" */
    int64_t submit_time, start_time, end_time; /* unix seconds, 0 = none */
    bool has_exit_code;
    int exit_code; /* the batch script's exit status (or 128+signal) when finished */
    int restarts;  /* how many times Slurm requeued it (a --requeue job: a node failure, a
                      preemption, an administrator's requeue); after a requeue, submit_time is
                      that requeue's time, which ended the run before */
} slurm_adapter_job;

/* Initialises libslurm with `conf_path` (NULL: the SLURM_CONF environment variable or the default
 * path). Returns 0 and sets *out, or a negative errno with a message in err. Only one adapter
 * may exist per process. */
int slurm_adapter_new(const char *conf_path, slurm_adapter **out, char *err, size_t errlen);

/* Releases libslurm. Accepts NULL. */
void slurm_adapter_free(slurm_adapter *a);

/* Submits one batch job. Returns 0 and sets *job_id, or a negative errno with Slurm's message in
 * err (-EINVAL: Slurm refused the request, e.g. bad partition or too many GPUs; -EAGAIN: Slurm is
 * unreachable or busy and the request did not reach it, try again later; -ETIMEDOUT: the request
 * was sent but no answer came (a receive error or timeout): Slurm may have accepted it, so look
 * the job up by its tag before submitting it again; -EPERM: uid is 0). */
int slurm_adapter_submit(slurm_adapter *a, const slurm_adapter_submit_req *req, uint32_t *job_id,
                         char *err, size_t errlen);

/* Answers whether the caller follows Slurm job `job_id` (called by slurm_adapter_poll, on its
 * thread, once per job in Slurm's table; must not call the adapter). */
typedef bool (*slurm_adapter_follows_fn)(void *arg, uint32_t job_id);

/* Loads the job table with one slurm_load_jobs RPC, passing the update time of the last
 * successful poll so that Slurm answers "no change" cheaply. When the table changed, returns 0,
 * *changed = true and a malloc'd array (caller frees) of every job that `follows(arg, job_id)`
 * says the caller follows (follows may be NULL: none), whatever its comment, name or tag, plus
 * every other job whose tag (AdminComment) starts with `tag_prefix`: the full set of such jobs
 * that Slurm still knows. When nothing changed, returns 0, *changed = false, *jobs = NULL, *n = 0.
 * Returns -EAGAIN with err when Slurm is unreachable. */
int slurm_adapter_poll(slurm_adapter *a, const char *tag_prefix, slurm_adapter_follows_fn follows,
                       void *arg, slurm_adapter_job **jobs, size_t *n, bool *changed, char *err,
                       size_t errlen);

/* Forgets the last update time, so that the next poll returns the full table. */
void slurm_adapter_poll_reset(slurm_adapter *a);

/* Cancels job `job_id` (SIGKILL to all steps, as scancel does). Returns 0, -ENOENT (Slurm no
 * longer knows the job), -EALREADY (already finished), -EAGAIN (unreachable), with err. */
int slurm_adapter_cancel(slurm_adapter *a, uint32_t job_id, char *err, size_t errlen);

/* The size of `partition` (NULL or "" = the default partition): its CPUs and nodes, for sizing
 * how many jobs may wait in Slurm. Returns 0, -ENOENT (no such partition), -EAGAIN (unreachable),
 * with err. */
int slurm_adapter_partition_size(slurm_adapter *a, const char *partition, int *cpus, int *nodes,
                                 char *err, size_t errlen);

/* The SlurmUser (the account slurmctld runs as) of the configuration libslurm read when `a` was
 * made, into name[len] ("root" when the configuration names none). Reads memory only (no RPC).
 * Returns 0, or -EINVAL (no adapter, or the name does not fit). */
int slurm_adapter_slurm_user(const slurm_adapter *a, char *name, size_t len);

/* --- the accounting of record (slurmdbd, through the slurmdb API in libslurm) -----------------
 *
 * These calls talk to slurmdbd over one persistent connection, opened on first use and reopened
 * after a failure; they serialise among themselves (a lock inside the adapter) and may run while
 * submits run on other threads. Each returns -ENOTSUP when the cluster has no slurmdbd
 * (slurmctld's AccountingStorageType is not accounting_storage/slurmdbd), -EAGAIN with a message
 * when slurmctld or slurmdbd cannot be reached (try again later). Blocking: worker threads only.
 * Account names are Slurm's: the adapter lowercases them (slurmdbd keeps them lowercase), the
 * same way in submits and in these calls. */

/* One job as slurmdbd recorded it. */
typedef struct slurm_adapter_record {
    uint32_t job_id;
    char account[64]; /* Slurm account */
    char user[64];    /* Unix account name */
    char partition[64];
    char admin_comment[128]; /* antennad's tag, when the job carries one */
    char state[24];          /* the same broker state names as slurm_adapter_job.state */
    int64_t submit_time, start_time, end_time; /* Unix seconds; 0 when not (yet) */
    int64_t elapsed_s;                         /* as slurmdbd computed it */
    int gpus; /* GPUs allocated (gres/gpu in the allocated TRES; requested when never allocated) */
    int cpus; /* CPUs allocated */
    int exit_code;
    bool requeued; /* a run that Slurm ended by requeueing the job (state "pending", with its
                      start and end): the job's next run is another record of the same id */
} slurm_adapter_record;

/* The records of the given Slurm job ids (ids slurmdbd does not know are simply absent). Fills
 * *out (malloc'd array, free with slurm_adapter_records_free) and *n. Returns 0, -ENOTSUP (the
 * cluster has no slurmdbd: AccountingStorageType is not slurmdbd), or a negative errno with a
 * message in err. A Slurm id used twice (a cluster whose state was reset reuses ids) gives one
 * record per job that carried it: match the admin_comment tag and submit time. slurmdbd fills a
 * record from several messages of slurmctld: for a few seconds around a job's end some fields
 * (partition, admin_comment) may still be empty. */
int slurm_adapter_records_by_id(slurm_adapter *a, const uint32_t *ids, size_t n_ids,
                                slurm_adapter_record **out, size_t *n, char *err, size_t errlen);

/* Every job record of the cluster that was running at some time in [from, to) (Unix seconds),
 * whatever its account or user. Same returns. */
int slurm_adapter_records_between(slurm_adapter *a, int64_t from, int64_t to,
                                  slurm_adapter_record **out, size_t *n, char *err, size_t errlen);

/* Frees an array of records. Accepts NULL. */
void slurm_adapter_records_free(slurm_adapter_record *r);

/* Keeps Slurm's associations in step: an account per partner (named for the partner), each
 * mapped Unix account a user of it (its default account). Idempotent (existing ones are left).
 * Returns 0, -ENOTSUP (no slurmdbd), or a negative errno with a message in err. */
int slurm_adapter_account_ensure(slurm_adapter *a, const char *account, const char *description,
                                 char *err, size_t errlen);
int slurm_adapter_user_ensure(slurm_adapter *a, const char *unix_user, const char *account,
                              char *err, size_t errlen);

/* Optional mirror of a partner's GPU budget: GrpTRESMins=gres/gpu=<minutes> on its account
 * (minutes < 0 clears it). Same returns. */
int slurm_adapter_account_gpu_limit(slurm_adapter *a, const char *account, int64_t gpu_minutes,
                                    char *err, size_t errlen);

#endif
