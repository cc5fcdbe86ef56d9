/* sbatch_script.h - sbatch's option syntax for the CLI: the #SBATCH directives of a batch script
 * and the same options on the command line, turned into job-request fields.
 *
 * Never reads files or prints: the caller passes the script text, warnings go to a callback and
 * errors into the caller's buffer.
 */
#ifndef ANTENNA_SBATCH_SCRIPT_H
#define ANTENNA_SBATCH_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "job_request.h"

/* Bits of sbatch_opts.set: which fields an option gave. */
enum sbatch_field {
    SBATCH_SET_NAME = 1u << 0,
    SBATCH_SET_GPUS = 1u << 1, /* gpus and gpu_type, always together */
    SBATCH_SET_CPUS = 1u << 2,
    SBATCH_SET_MEM = 1u << 3,
    SBATCH_SET_TIME = 1u << 4,
    SBATCH_SET_NODES = 1u << 5, /* nodes_min and nodes_max */
    SBATCH_SET_NTASKS = 1u << 6,
    SBATCH_SET_NTASKS_PER_NODE = 1u << 7,
    SBATCH_SET_GPUS_PER_NODE = 1u << 8, /* with gpu_type */
    SBATCH_SET_GPUS_PER_TASK = 1u << 9, /* with gpu_type */
    SBATCH_SET_CPUS_PER_GPU = 1u << 10,
    SBATCH_SET_MEM_PER_GPU = 1u << 11,
    SBATCH_SET_MEM_PER_CPU = 1u << 12,
    SBATCH_SET_PARTITION = 1u << 13,
    SBATCH_SET_OUTPUT = 1u << 14,
    SBATCH_SET_ERROR = 1u << 15,
    SBATCH_SET_EXPORT = 1u << 16,
    SBATCH_SET_CHDIR = 1u << 17,
    SBATCH_SET_SIGNAL = 1u << 18,
    SBATCH_SET_EXCLUSIVE = 1u << 19,
    SBATCH_SET_CONSTRAINT = 1u << 20,
    SBATCH_SET_REQUEUE = 1u << 21,
    SBATCH_SET_COMMENT = 1u << 22,
    SBATCH_SET_ARRAY = 1u << 23,
    SBATCH_SET_DEPENDENCY = 1u << 24,
};

/* Flags of sbatch_script_parse. */
enum sbatch_parse_flag {
    SBATCH_IGNORE_UNSUPPORTED = 1u << 0, /* warn about and skip options Antenna does not know */
};

/* The job options found so far: the fields of `r` whose bit is in `set` (r.script is unused). */
typedef struct sbatch_opts {
    unsigned set;
    jobreq r;
} sbatch_opts;

/* Receives one warning about the script, already formatted as "PATH:LINE: #SBATCH --foo is not
 * supported by Antenna, ignored" (no trailing newline). `msg` is valid only during the call. */
typedef void sbatch_warn_fn(void *ctx, const char *msg);

/* Clears `o`: no field set. */
void sbatch_opts_init(sbatch_opts *o);

/* Returns 1 when `opt` ("--time", "-t", ...; no "=value") is one of the job options Antenna
 * understands and takes a value, 2 when it is one that takes none (--exclusive, --requeue,
 * --no-requeue), else 0. The README's options table lists them. */
int sbatch_opt_known(const char *opt);

/* Applies one job option, as written on a command line (`opt` without "=value") with its `value`
 * (NULL for an option that takes none). Later calls override earlier ones; --gpus (the job's
 * total), --gres gpu:N (per node, as Slurm reads it), --gpus-per-node and --gpus-per-task each
 * replace the others; --mem, --mem-per-cpu and --mem-per-gpu likewise.
 * Returns 0, -ENOENT when `opt` is not a known job option, or -EINVAL with a message in err[len]
 * saying what is wrong and what to write instead (e.g. `invalid --time value "abc": use ...`). */
int sbatch_opt_set(sbatch_opts *o, const char *opt, const char *value, char *err, size_t len);

/* Reads the #SBATCH directives of a batch script, as sbatch does: only lines that start with
 * "#SBATCH" in the leading block of comments and blank lines count (parsing stops at the first
 * other line); arguments split on blanks with '…' / "…" quoting and backslash escapes; an
 * unquoted '#' starts a comment; a value may be the next argument ("--time 10", "-t 10") or
 * attached ("--time=10", "-t10"). Known options update `o` (later directives win). Any other
 * option is refused (-ENOTSUP, "PATH:LINE: #SBATCH --foo is not supported by Antenna; ...") unless
 * `flags` has SBATCH_IGNORE_UNSUPPORTED: then it is reported through `warn` (may be NULL) and
 * skipped with its value. A stray word (not an option) is always only warned about.
 * `text` holds `len` bytes (need not be NUL-terminated); `path` names the script in messages.
 * Returns 0, -EINVAL with "PATH:LINE: ..." in err[errlen] for a bad value, a missing value or an
 * unmatched quote, or -ENOMEM. On error `o` may hold the directives before the bad one. */
int sbatch_script_parse(const char *text, size_t len, const char *path, unsigned flags,
                        sbatch_opts *o, sbatch_warn_fn *warn, void *ctx, char *err, size_t errlen);

/* Checks that a script's `len` bytes are text that can travel in JSON: no NUL byte and
 * well-formed UTF-8. Returns 0, or -EINVAL with "PATH:LINE: ..." (what is wrong, what to do) in
 * err[errlen]. */
int sbatch_script_check_text(const char *text, size_t len, const char *path, char *err,
                             size_t errlen);

/* Copies every field set in `over` into `base` (command-line flags over script directives). */
void sbatch_opts_override(sbatch_opts *base, const sbatch_opts *over);

/* Copies every field set in `o` into the request `r` (other fields keep their values). */
void sbatch_opts_to_request(const sbatch_opts *o, jobreq *r);

/* The body of POST /v1/jobs for `r` (with its script when r->script is not NULL): the fields set
 * in `set`, under the API's names (docs/API.md), plus "name" when r->name is not empty. The one
 * place that names the request's JSON fields in the CLI. Returns a new object, or NULL when out of
 * memory. */
json_t *sbatch_request_json(const jobreq *r, unsigned set);

#endif
