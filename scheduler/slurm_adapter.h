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

#endif
