/* job_array.h - job arrays as sbatch --array writes them ("0-15", "0,4,7", "0-15:4", "1-7%2",
 * "0-3,8%2"): the one parser of the spec, the environment values of a task, and the ID_TASK
 * form ("12_3") the CLI and the API take.
 *
 * Pure library: no I/O, no logging, no libuv/Slurm/SQLite/OpenSSL. Shared by antennad and the CLI.
 */
#ifndef ANTENNA_JOB_ARRAY_H
#define ANTENNA_JOB_ARRAY_H

#include <stddef.h>
#include <stdint.h>

#define JOB_ARRAY_SPEC_MAX      128     /* bytes of a spec, NUL included */
#define JOB_ARRAY_INDEX_MAX     4000000 /* the largest task index (Slurm's MaxArraySize - 1 cap) */
#define JOB_ARRAY_TASKS_DEFAULT 1000    /* the site bound on tasks per array when none is set */

/* A parsed spec. `tasks` (malloc'd, owned) holds the task indices, ascending and distinct. */
typedef struct job_array {
    char spec[JOB_ARRAY_SPEC_MAX]; /* as given */
    int *tasks;
    size_t n_tasks;  /* >= 1 once parsed */
    int max_running; /* the %max throttle; 0 = none */
    int min, max;    /* the lowest and highest index */
    int step;        /* SLURM_ARRAY_TASK_STEP as Slurm 22.05 sets it (measured): the step of the
                        first A-B:S of the spec, else 1 ("0,5,10" gives 1, "0-7:2,20" gives 2) */
} job_array;

/* An empty array (no tasks). Never allocates. Release with job_array_close. */
void job_array_init(job_array *a);

/* Frees a's tasks and empties it. Accepts NULL and an empty array. */
void job_array_close(job_array *a);

/* Parses `spec` as sbatch's --array: a comma-separated list of N, A-B or A-B:S (S >= 1), with an
 * optional %M (M >= 1) at the end; indices 0 .. JOB_ARRAY_INDEX_MAX; no spaces. Duplicates count
 * once. At most `max_tasks` tasks (<= 0: JOB_ARRAY_TASKS_DEFAULT), counted before duplicates are
 * dropped, so that the parse never allocates more than that. On success returns 0 with *a filled
 * (its previous content released); otherwise -EINVAL (or -ENOMEM) with a message in err that
 * says what to write instead, and *a empty. */
int job_array_parse(const char *spec, int max_tasks, job_array *a, char *err, size_t errlen);

/* Parses a job reference: "N" (sets *task to -1) or "N_T" (the task of index T of array N).
 * N >= 1, T in 0 .. JOB_ARRAY_INDEX_MAX. Returns 0, or -EINVAL (anything else). */
int job_array_ref_parse(const char *s, int64_t *id, int *task);

#endif
