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

#include "job_request.h"

/* Bits of sbatch_opts.set: which fields an option gave. */
enum sbatch_field {
    SBATCH_SET_NAME = 1u << 0,
    SBATCH_SET_GPUS = 1u << 1, /* gpus and gpu_type, always together */
    SBATCH_SET_CPUS = 1u << 2,
    SBATCH_SET_MEM = 1u << 3,
    SBATCH_SET_TIME = 1u << 4,
};

/* The job options found so far. A field means something only when its bit is in `set`. */
typedef struct sbatch_opts {
    unsigned set;
    char name[JOBREQ_NAME_MAX];
    int gpus;
    char gpu_type[JOBREQ_GPU_TYPE_MAX];
    int cpus_per_task;
    int64_t mem_mb;
    int time_minutes;
} sbatch_opts;

/* Receives one warning about the script, already formatted as "PATH:LINE: #SBATCH --foo is not
 * supported by Antenna, ignored" (no trailing newline). `msg` is valid only during the call. */
typedef void sbatch_warn_fn(void *ctx, const char *msg);

/* Clears `o`: no field set. */
void sbatch_opts_init(sbatch_opts *o);

/* Returns 1 when `opt` ("--time", "-t", ...; no "=value") is one of the job options Antenna
 * understands (--job-name/-J, --time/-t, --cpus-per-task/-c, --gpus/-G, --gres, --mem), else 0.
 * All of them take a value. */
int sbatch_opt_known(const char *opt);

/* Applies one job option, as written on a command line (`opt` without "=value") with its `value`.
 * Later calls override earlier ones; --gpus and --gres both set the GPU count and type together.
 * Returns 0, -ENOENT when `opt` is not a known job option, or -EINVAL with a message in err[len]
 * saying what is wrong and what to write instead (e.g. `invalid --time value "abc": use ...`). */
int sbatch_opt_set(sbatch_opts *o, const char *opt, const char *value, char *err, size_t len);

/* Reads the #SBATCH directives of a batch script, as sbatch does: only lines that start with
 * "#SBATCH" in the leading block of comments and blank lines count (parsing stops at the first
 * other line); arguments split on blanks with '…' / "…" quoting and backslash escapes; an
 * unquoted '#' starts a comment; a value may be the next argument ("--time 10", "-t 10") or
 * attached ("--time=10", "-t10"). Known options update `o` (later directives win); every other
 * option or stray word is reported through `warn` (may be NULL) and ignored.
 * `text` holds `len` bytes (need not be NUL-terminated); `path` names the script in messages.
 * Returns 0, -EINVAL with "PATH:LINE: ..." in err[errlen] for a bad value, a missing value or an
 * unmatched quote, or -ENOMEM. On error `o` may hold the directives before the bad one. */
int sbatch_script_parse(const char *text, size_t len, const char *path, sbatch_opts *o,
                        sbatch_warn_fn *warn, void *ctx, char *err, size_t errlen);

/* Checks that a script's `len` bytes are text that can travel in JSON: no NUL byte and
 * well-formed UTF-8. Returns 0, or -EINVAL with "PATH:LINE: ..." (what is wrong, what to do) in
 * err[errlen]. */
int sbatch_script_check_text(const char *text, size_t len, const char *path, char *err,
                             size_t errlen);

/* Copies every field set in `over` into `base` (command-line flags over script directives). */
void sbatch_opts_override(sbatch_opts *base, const sbatch_opts *over);

/* Copies every field set in `o` into the request `r` (other fields keep their values). */
void sbatch_opts_to_request(const sbatch_opts *o, jobreq *r);

#endif
