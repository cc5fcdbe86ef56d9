/* quota_view.h - how the CLI shows the API's quota objects: the `antenna quota` table, a partner
 * with its quota (`antenna partner show`) and the quote of `antenna submit --dry-run`.
 *
 * Never talks to the network; prints only to the stream it is given. Tolerates any JSON: missing
 * fields or fields of the wrong type show as "-", control characters as spaces.
 */
#ifndef ANTENNA_QUOTA_VIEW_H
#define ANTENNA_QUOTA_VIEW_H

#include <stdio.h>

#include <jansson.h>

/* Prints the quota objects of a JSON array as the `antenna quota` table: PARTNER PERIOD
 * BUDGET_GPUh USED HELD LEFT MAX_GPUS MAX_JOBS MAX_QUEUED MAX_WALLTIME USER_MAX_GPUS, with
 * BUDGET_CPUh CPU_USED CPU_HELD CPU_LEFT after LEFT only when some quota that was set has a CPU
 * budget (a number in cpu_hours). Hours show with 2 decimals, the walltime in Slurm's format
 * ("1-00:00:00"). A null limit (budget, left, cap) shows as "unlimited". A quota with
 * "set": false shows "not set" as its budgets and "-" for a null left amount (no budget was ever
 * given); its caps still show as they come. Prints nothing for an empty array or a non-array.
 * Returns the number of rows printed, or -ENOMEM / -EIO. */
int quota_view_print_table(FILE *out, const json_t *quotas);

/* Prints a partner object (GET /v1/partners/NAME) as aligned "key: value" lines (name,
 * description, share_weight, created_at in local time, then any other fields but "quota"), then,
 * when it has a "quota" object, a blank line and that quota as a one-row quota table; else a
 * "quota: -" line. Returns 0, -ENOMEM or -EIO. */
int quota_view_print_partner(FILE *out, const json_t *partner);

/* Prints the quote of a dry-run submission. An admitted quote prints
 *   Job would be admitted (period 2026-11).
 *     max cost:       2.00 GPU-hours
 *     budget left:    100.00 GPU-hours (98.00 after this job)
 *     queue position: 3
 *     would wait on:  PartnerGpuLimit
 *     priority:       10450.2
 * (lines whose fields are missing are left out; a null budget shows as "unlimited", an empty
 * wait_reason as "nothing"). A refused quote prints "Job would be refused: MESSAGE (CODE)" and
 * then the max cost and budget lines when present. Returns 1 when the quote admits the job, 0
 * when it refuses it, -EINVAL (nothing printed) when `quote` has no boolean "admitted", or
 * -EIO. */
int quota_view_print_quote(FILE *out, const json_t *quote);

#endif
