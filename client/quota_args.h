/* quota_args.h - the arguments of the CLI's quota commands: quota periods, and the options of
 * `antenna quota set` turned into the JSON body of PATCH /v1/quotas/PARTNER/PERIOD.
 *
 * Never prints and never talks to the network: errors go into the caller's buffer.
 */
#ifndef ANTENNA_QUOTA_ARGS_H
#define ANTENNA_QUOTA_ARGS_H

#include <stddef.h>

#include <jansson.h>

/* The fields given so far. Caller-allocated: quota_args_init before use, quota_args_close after.
 * `body` is NULL until a field is set, then a JSON object owned by the struct. */
typedef struct quota_args {
    json_t *body;
} quota_args;

/* Empties `q` (no field given). */
void quota_args_init(quota_args *q);

/* Frees the body and empties `q` again. Accepts NULL. */
void quota_args_close(quota_args *q);

/* Returns 1 when `opt` (e.g. "--gpu-hours", no "=value") is one of the `quota set` field options,
 * else 0: --gpu-hours, --cpu-hours, --max-gpus, --max-jobs, --max-queued, --max-walltime,
 * --user-max-gpus. All of them take a value. */
int quota_args_opt_known(const char *opt);

/* Applies one field option with its `value`; a later value for the same field wins. Every value
 * may be "unlimited" (any case), sent as JSON null. Otherwise: --gpu-hours and --cpu-hours take a
 * number >= 0 ("12", "12.5"; sent as gpu_hours / cpu_hours); --max-gpus, --max-jobs (sent as
 * max_running_jobs), --max-queued (max_queued_jobs) and --user-max-gpus take a whole number
 * 0..2147483647; --max-walltime takes a Slurm time ("90", "2:00:00", "1-00:00:00", see
 * jobreq_time_parse) and is sent as max_walltime_minutes.
 * Returns 0, -ENOENT when `opt` is not a field option, -EINVAL with a message in err[len] saying
 * what to write instead, or -ENOMEM. */
int quota_args_set(quota_args *q, const char *opt, const char *value, char *err, size_t len);

/* Checks that at least one field was given. Returns 0, or -EINVAL with a message in err[len]
 * listing the field options. */
int quota_args_check(const quota_args *q, char *err, size_t len);

/* Returns the PATCH body (borrowed; owned by `q`), or NULL when no field was given. */
const json_t *quota_args_body(const quota_args *q);

/* Returns 1 when `s` names a quota period: "YYYY-MM" (month 01..12) or, when `allow_current` is
 * non-zero, "current"; else 0 (also for NULL). */
int quota_args_period_valid(const char *s, int allow_current);

#endif
