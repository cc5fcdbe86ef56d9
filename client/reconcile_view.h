/* reconcile_view.h - how the CLI renders a reconciliation (GET /v1/reconcile): its summary line,
 * the counts per kind and a table of the differences.
 *
 * Never talks to the network; writes only to the stream it is given. Tolerates missing or
 * mistyped fields (shown as "-" or 0).
 */
#ifndef ANTENNA_RECONCILE_VIEW_H
#define ANTENNA_RECONCILE_VIEW_H

#include <stdio.h>

#include <jansson.h>

/* Writes "Reconciled MONTH with the cluster's accounting (FROM to TO UTC): N jobs compared with R
 * records, M differences", a line of the counts per kind, and, when there are differences, a
 * table KIND, JOB, SLURM JOB, PARTNER, ANTENNA, SLURM (with a note when the server listed only
 * some). Returns the number of differences, -EINVAL (nothing written) when `answer` has no
 * "summary" object, or -EIO. */
int reconcile_view_print(FILE *out, const json_t *answer);

#endif
