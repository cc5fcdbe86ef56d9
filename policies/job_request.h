/* job_request.h - the job-request model (what a user asks Slurm for) and its validation.
 *
 * Pure library: no I/O, no logging, no libuv/Slurm/SQLite/OpenSSL. Shared by antennad and the CLI.
 */
#ifndef ANTENNA_JOB_REQUEST_H
#define ANTENNA_JOB_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#define JOBREQ_NAME_MAX     128
#define JOBREQ_GPU_TYPE_MAX 32
#define JOBREQ_PART_MAX     64   /* partition name */
#define JOBREQ_FILE_MAX     256  /* --output/--error pattern, --chdir */
#define JOBREQ_EXPORT_MAX   1024 /* --export list */
#define JOBREQ_TEXT_MAX     256  /* --constraint, --comment, --dependency */
#define JOBREQ_ARRAY_MAX    128  /* --array, carried as written */
#define JOBREQ_SIGNAL_MAX   32   /* --signal */

/* A job request. `script` is borrowed: the struct never owns or frees it. */
typedef struct jobreq {
    char name[JOBREQ_NAME_MAX];         /* job name; "" means "antenna-job" */
    const char *script;                 /* batch script text, must start with "#!" */
    int gpus;                           /* total GPUs (one node), >= 0 */
    char gpu_type[JOBREQ_GPU_TYPE_MAX]; /* e.g. "h100"; "" = any type */
    int cpus_per_task;                  /* >= 1 */
    int64_t mem_mb;                     /* memory per node in MiB; 0 = Slurm's default */
    int time_minutes;                   /* wall-time limit in minutes, >= 1 */
    /* sbatch's options for training jobs (issue 9). 0 or "" means "not asked": Slurm's default. */
    int nodes_min, nodes_max;           /* --nodes N (min = max) or MIN-MAX; 0 = 1 node */
    int ntasks;                         /* --ntasks */
    int ntasks_per_node;                /* --ntasks-per-node */
    int gpus_per_node;                  /* --gpus-per-node (or --gres gpu:N, which is per node) */
    int gpus_per_task;                  /* --gpus-per-task */
    int cpus_per_gpu;                   /* --cpus-per-gpu (then cpus_per_task is not asked) */
    int64_t mem_per_gpu_mb;             /* --mem-per-gpu */
    int64_t mem_per_cpu_mb;             /* --mem-per-cpu */
    char partition[JOBREQ_PART_MAX];    /* "" = the site's default for the partner */
    char output[JOBREQ_FILE_MAX];       /* --output pattern, a bare file name ("" = output.log) */
    char error[JOBREQ_FILE_MAX];        /* --error pattern ("" = with the output) */
    char env_export[JOBREQ_EXPORT_MAX]; /* --export: ALL, NONE, [ALL|NONE,]NAME=value,... */
    char chdir[JOBREQ_FILE_MAX];        /* --chdir: a folder inside the job's folder */
    char signal[JOBREQ_SIGNAL_MAX];     /* --signal [{R|B}:]SIG[@SECONDS] */
    int exclusive;                      /* --exclusive: 1 (whole nodes: see node_gpus) */
    char constraint[JOBREQ_TEXT_MAX];   /* --constraint: node features */
    int requeue; /* -1 = not asked (no requeue), 0 = --no-requeue, 1 = --requeue (Slurm may rerun
                    it: each run is charged, see policy_job_run_ended) */
    char comment[JOBREQ_TEXT_MAX];    /* --comment: the user's own (Antenna's tag is apart) */
    char array[JOBREQ_ARRAY_MAX];     /* --array, as written (validated by the server) */
    char dependency[JOBREQ_TEXT_MAX]; /* --dependency, as written (validated by the server) */
    /* the size of one of the site's nodes (jobreq_limits), set by the server before
     * jobreq_validate: an --exclusive job gets every GPU and CPU of its nodes, and is counted so
     * (jobreq_totals_get); 0 = unknown */
    int node_gpus, node_cpus;
} jobreq;

/* The site's limits, from antennad's config. */
typedef struct jobreq_limits {
    int max_gpus;                   /* GPUs per job */
    int max_cpus;                   /* CPUs per task */
    int max_time_minutes;           /* wall time */
    int64_t max_mem_mb;             /* memory per node */
    int max_nodes;                  /* nodes per job; 0 = no limit */
    int node_gpus, node_cpus;       /* GPUs and CPUs of one node; node_gpus 0 = unknown, so
                                       --exclusive is refused */
    size_t max_script_bytes;        /* script size */
    const char *const *gpu_types;   /* NULL-terminated list of known types, or NULL = any */
    const char *const *export_deny; /* more --export names refused (see jobreq_export_check) */
} jobreq_limits;

/* Why a request was refused: `field` names the offending field, `code` is a stable machine code
 * ("invalid_gpus", ...) and `message` says what to do. */
typedef struct jobreq_error {
    char field[32];
    char code[48];
    char message[256];
} jobreq_error;

/* Fills `r` with the defaults (1 CPU, 0 GPUs, 60 minutes, no memory limit, no name, no script,
 * every sbatch option "not asked"). */
void jobreq_init(jobreq *r);

/* Checks `r` against `lim`. Returns 0 when the request may be queued, or -EINVAL with `err` filled
 * (err may be NULL). Never allocates. */
int jobreq_validate(const jobreq *r, const jobreq_limits *lim, jobreq_error *err);

/* Parses a wall time in Slurm's formats: "M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S". Seconds
 * round up to the next minute. Returns 0 and sets *minutes, or -EINVAL (unparseable, negative,
 * zero, "UNLIMITED", overflow). */
int jobreq_time_parse(const char *s, int *minutes);

/* Formats minutes as Slurm does ("D-HH:MM:SS" or "HH:MM:SS") into buf. Returns buf. */
char *jobreq_time_format(int minutes, char *buf, size_t len);

/* Parses a memory size like sbatch --mem: a number with an optional K, M, G or T suffix (default
 * M). Returns 0 and sets *mb (KiB round up to 1 MiB), or -EINVAL. */
int jobreq_mem_parse(const char *s, int64_t *mb);

/* Parses a GRES spec as sbatch --gres does, for GPUs only: "gpu", "gpu:N", "gpu:TYPE",
 * "gpu:TYPE:N". Sets *count (default 1) and copies the type ("" when absent) into type[len].
 * Returns 0, or -EINVAL (not a gpu gres, bad count, type too long). */
int jobreq_gres_parse(const char *s, int *count, char *type, size_t len);

/* Parses sbatch --gpus: "N" or "TYPE:N". Same outputs and errors as jobreq_gres_parse. */
int jobreq_gpus_parse(const char *s, int *count, char *type, size_t len);

/* Returns 1 when `s` is a valid identifier (partner, user, Unix account): 1..63 chars of
 * [A-Za-z0-9._-], not starting with '-' or '.'; else 0. */
int jobreq_ident_valid(const char *s);

/* What a request takes in all: the one place that counts a job's nodes, tasks, GPUs and CPUs. The
 * maximum cost, the hold, the charge, the caps and the dry-run quote all use `gpus` and `cpus`. */
typedef struct jobreq_totals {
    int nodes; /* the most nodes the request may get (a MIN-MAX range counts at MAX) */
    int tasks; /* ntasks, else ntasks_per_node x nodes, else one per node */
    int gpus;  /* gpus_per_node x nodes, else gpus_per_task x tasks, else gpus (the job's) */
    int cpus;  /* cpus_per_gpu x gpus when asked, else cpus_per_task x tasks */
} jobreq_totals;

/* Computes `r`'s totals into *t. Returns 0, or -EOVERFLOW when a product does not fit an int
 * (the request is then refused). Never allocates. */
int jobreq_totals_get(const jobreq *r, jobreq_totals *t);

/* What an --output/--error pattern is expanded with. */
typedef struct jobreq_output_ctx {
    int64_t job_id;       /* Antenna's job id: what %j and (for a single job) %A give */
    int64_t array_job_id; /* Antenna's id of the array, or 0 for a single job */
    int array_task_id;    /* the task's index, or -1 for a single job (%a then gives 0) */
    const char *name;     /* the job's name (%x) */
    const char *user;     /* the job's Unix account (%u) */
} jobreq_output_ctx;

/* Expands an --output/--error `pattern` as Slurm does (%j job id, %A array job id, %a array task
 * id, %x job name, %u user, %% a '%'; an optional zero-padding width between '%' and the letter,
 * e.g. %4j) into out[len]. %j is Antenna's job id (the one users see), not Slurm's. %N (the first
 * node's name) is refused: Antenna names the file before the job has nodes. ctx NULL only checks
 * the pattern (ids expand to 0). The result must be a bare file name inside the job's folder: no
 * '/', not "." or "..", no control character, not empty. Returns 0, or -EINVAL with err (may be
 * NULL) filled, its field being `field` ("output" or "error"). */
int jobreq_output_expand(const char *pattern, const jobreq_output_ctx *ctx, const char *field,
                         char *out, size_t len, jobreq_error *err);

/* Checks an --export value: "ALL", "NONE", or a comma list of NAME=value items, optionally led by
 * ALL or NONE. A name must be [A-Za-z_][A-Za-z0-9_]*; LD_*, SLURM_*, ANTENNA_* and every name in
 * `deny` (NULL-terminated; an entry ending in '*' is a prefix; may be NULL) are refused; a bare
 * NAME (sbatch would copy it from the submitter's environment) is refused: write NAME=value.
 * Returns 0, or -EINVAL with err filled. */
int jobreq_export_check(const char *spec, const char *const *deny, jobreq_error *err);

/* Calls `fn(arg, "NAME=value")` for each NAME=value item of a valid --export value, in order (the
 * string passed is valid during the call only). Returns 0, or the first negative value fn returns,
 * or -EINVAL when the value is not valid (check it with jobreq_export_check first). */
int jobreq_export_each(const char *spec, int (*fn)(void *arg, const char *item), void *arg);

/* Parses --signal "[{R|B}:]SIG[@SECONDS]": SIG a number 1..64 or a name (USR1, SIGUSR1, TERM,
 * ...); SECONDS 0..65535, default 60. Sets *signo, *seconds and *batch_only ("B:": only the batch
 * shell gets it). Returns 0 or -EINVAL. */
int jobreq_signal_parse(const char *s, int *signo, int *seconds, int *batch_only);

/* Checks a --chdir value: a relative path inside the job's folder ("." or "a/b"), no "..", no
 * empty component, no leading '/', no control character. Returns 0 or -EINVAL with err filled. */
int jobreq_chdir_check(const char *s, jobreq_error *err);

/* Checks `partition` against the partitions the partner may use (`allowed`, NULL-terminated) and
 * those the site has (`known`, NULL-terminated; NULL = not known, only `allowed` counts). "" is
 * always fine (the default). Returns 0, -ENOENT (unknown partition, for a 400) or -EACCES (a
 * partition of the site the partner may not use, for a 403), with err naming the allowed ones. */
int jobreq_partition_check(const char *partition, const char *const *allowed,
                           const char *const *known, jobreq_error *err);

#endif
