/* job_view.h - how the CLI shows jobs from the API's job objects: state lines for --wait, the exit
 * status of a finished job, the `jobs` table and the `show` details.
 *
 * Never talks to the network; prints only to the stream it is given. Tolerates any JSON: missing
 * fields or fields of the wrong type show as "-".
 */
#ifndef ANTENNA_JOB_VIEW_H
#define ANTENNA_JOB_VIEW_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* Returns 1 when `state` is a terminal job state (completed, failed, cancelled, timeout,
 * node_fail, preempted, boot_fail, deadline, out_of_memory, lost), else 0 (also for NULL). */
int job_view_state_terminal(const char *state);

/* Formats the one-line state of a job object into buf[len], e.g. "job 7: queued",
 * "job 7: dispatched (slurm 42)", "job 7: pending (Resources)", "job 7: completed (exit 0)".
 * Returns buf. */
char *job_view_state_line(const json_t *job, char *buf, size_t len);

/* Returns the process exit status `antenna submit --wait` ends with for a finished job: 0 when it
 * completed, else its exit_code when that is a non-zero integer (capped to 1..255), else 1. */
int job_view_exit_status(const json_t *job);

/* Prints the jobs of a JSON array as the `antenna jobs` table (ID NAME STATE GPUS TIME_LIMIT
 * SUBMITTED SLURM_ID REASON, local times; REASON is what a queued job waits on, e.g.
 * PartnerGpuLimit, or Slurm's pending reason). Prints nothing for an empty array. Returns the
 * number of rows printed, or -ENOMEM / -EIO. */
int job_view_print_table(FILE *out, const json_t *jobs);

/* Prints a job object as aligned "key: value" lines, known fields first in a fixed order (id ...
 * slurm_job_id, request_id, ... cancel_requested, then period, priority, hold_gpu_hours,
 * charge_gpu_hours, then the times), then any other fields; times in local time, *_gpu_hours as
 * "2.00 GPU-hours", other fractional numbers with one decimal, null as "-". Returns 0 or -EIO. */
int job_view_print_detail(FILE *out, const json_t *job);

/* Formats an array object's counts by state ({"counts": {"running": 2, ...}}) as
 * "2 running, 1 pending, 1 completed" into buf[len] (active states first). */
void job_view_array_counts(const json_t *array, char *buf, size_t len);

/* Prints an array object (GET /v1/jobs/ID's "array") after a job's detail: its spec, task count,
 * %max and counts, then a table of its tasks (TASK as ID_TASK, JOB_ID, STATE, REASON, SLURM_ID,
 * STARTED, ENDED, CHARGE). Prints nothing when `array` is not an object. Returns 0, -ENOMEM or
 * -EIO. The `jobs` table shows an array as one line: ID_[SPEC] and its counts as its state. */
int job_view_print_array(FILE *out, const json_t *array);

/* Prints the runs of a job that Slurm requeued (the "runs" array of a job object, borrowed): a
 * table of RUN, SLURM_ID, STARTED, ENDED, ELAPSED, CHARGE. Prints nothing when `runs` is not a
 * non-empty array. Returns 0, -ENOMEM or -EIO. */
int job_view_print_runs(FILE *out, const json_t *runs);

#endif
