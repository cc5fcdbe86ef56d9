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

/* A job request. `script` is borrowed: the struct never owns or frees it. */
typedef struct jobreq {
    char name[JOBREQ_NAME_MAX];         /* job name; "" means "antenna-job" */
    const char *script;                 /* batch script text, must start with "#!" */
    int gpus;                           /* total GPUs (one node), >= 0 */
    char gpu_type[JOBREQ_GPU_TYPE_MAX]; /* e.g. "h100"; "" = any type */
    int cpus_per_task;                  /* >= 1 */
    int64_t mem_mb;                     /* memory per node in MiB; 0 = Slurm's default */
    int time_minutes;                   /* wall-time limit in minutes, >= 1 */
} jobreq;

/* The site's limits, from antennad's config. */
typedef struct jobreq_limits {
    int max_gpus;                 /* GPUs per job */
    int max_cpus;                 /* CPUs per task */
    int max_time_minutes;         /* wall time */
    int64_t max_mem_mb;           /* memory per node */
    size_t max_script_bytes;      /* script size */
    const char *const *gpu_types; /* NULL-terminated list of known types, or NULL = any */
} jobreq_limits;

/* Why a request was refused: `field` names the offending field, `code` is a stable machine code
 * ("invalid_gpus", ...) and `message` says what to do. */
typedef struct jobreq_error {
    char field[32];
    char code[48];
    char message[256];
} jobreq_error;

/* Fills `r` with the defaults (1 CPU, 0 GPUs, 60 minutes, no memory limit, no name, no script). */
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

#endif
