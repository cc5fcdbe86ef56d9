/* job_options.h - a job's sbatch options (nodes, tasks, per-node/per-task GPUs, partition,
 * output/error, export, ...) as the JSON object the API takes and answers and the store keeps.
 *
 * The one place that names these JSON fields in antennad. Never does I/O, never logs.
 */
#ifndef ANTENNA_JOB_OPTIONS_H
#define ANTENNA_JOB_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "job_request.h"

/* The kind of JSON value a field holds. */
typedef enum job_options_kind { JOB_OPT_INT, JOB_OPT_STR, JOB_OPT_BOOL } job_options_kind;

/* The option fields, in the order they are written; `name` ends the list with NULL. */
typedef struct job_options_field {
    const char *name;
    job_options_kind kind;
} job_options_field;

extern const job_options_field job_options_fields[];

/* Reads the option fields present in `o` into `r` (others keep their values; unknown keys are
 * the caller's to refuse). Returns 0, or -EINVAL with the offending field's name in
 * bad[badlen] (a wrong type, an integer out of range, a string that does not fit). Never
 * allocates. "nodes" without "nodes_max" means exactly that many nodes. */
int job_options_read(const json_t *o, jobreq *r, char *bad, size_t badlen);

/* The option fields of `r` that differ from jobreq_init's, as a new JSON object (an empty one for
 * a job that asks none), or NULL when out of memory. */
json_t *job_options_json(const jobreq *r);

/* Parses the stored text (job_options_json dumped; "" or NULL = none) into `r`'s option fields.
 * Returns 0, or -EINVAL when the text is not such an object. */
int job_options_parse(const char *text, jobreq *r);

/* Adds every field of the stored options `text` to the job object `job` (for GET /v1/jobs/{id}).
 * Returns 0, or -EINVAL / -ENOMEM (job unchanged or partly filled). */
int job_options_merge(json_t *job, const char *text);

#endif
