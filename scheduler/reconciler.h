/* reconciler.h - reconciles Antenna's ledger with the cluster's accounting (slurmdbd) for a month:
 * reads both sides, compares them (policies/reconcile.h), audits the result ("reconcile.ran") and
 * answers it as JSON; runs daily on a timer of its own.
 *
 * Never runs a read on the event-loop thread (a run blocks: SQLite, slurmdbd), never writes the
 * store but through the registry (its one audit entry per run), never talks to Slurm but through
 * its source (the broker's adapter, one caller at a time).
 */
#ifndef ANTENNA_RECONCILER_H
#define ANTENNA_RECONCILER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker.h"
#include "reconcile.h"
#include "registry.h"

typedef struct reconciler reconciler;

/* Where the cluster's records come from. records: the records of the Slurm jobs `ids` (n_ids) and
 * of every job that was on the cluster in [from, to) (unix seconds), into a malloc'd array (caller
 * frees; a job may appear twice). Returns 0, -ENOTSUP (the cluster keeps no accounting: no
 * slurmdbd), -EAGAIN (unreachable), or another negative errno, with a message in err. Called on
 * worker threads, one run at a time. */
typedef struct reconciler_source {
    int (*records)(void *ctx, const int64_t *ids, size_t n_ids, int64_t from, int64_t to,
                   reconcile_record **out, size_t *n, char *err, size_t errlen);
    void *ctx;
} reconciler_source;

/* The real source: slurmdbd's records through the broker's Slurm adapter (broker_slurm_exclusive;
 * `br` borrowed, must outlive the reconciler). */
reconciler_source reconciler_source_slurm(broker *br);

typedef struct reconciler_options {
    const char *partition;      /* Antenna's Slurm partition (copied); "" or NULL = none */
    unsigned check_interval_ms; /* how often the daily timer looks whether today's run is due;
                                   0 = 10 minutes (the first look is one interval after start) */
    size_t max_listed;          /* differences listed in an answer (the counts are complete);
                                   0 = 10000 */
} reconciler_options;

/* Creates a reconciler over `reg` (borrowed) and `src` (copied). Returns 0 and sets *out, or
 * -ENOMEM. Nothing runs until reconciler_start. Loop thread only. */
int reconciler_new(uv_loop_t *loop, registry *reg, const reconciler_source *src,
                   const reconciler_options *opt, reconciler **out);

/* Starts the daily run: once per UTC day (unless antennad already ran it that day), on the libuv
 * thread pool, for the previous day's month from its first day to the start of today; audited as
 * any run, by "antennad". Returns 0 or a negative errno. Loop thread only. */
int reconciler_start(reconciler *rc);

/* Stops the timer; a run in flight finishes first; then the memory is released. Accepts NULL.
 * Loop thread only. */
void reconciler_close(reconciler *rc);

/* One run for `month` ("YYYY-MM") as of `now`: the month's Antenna jobs that reached Slurm, and
 * slurmdbd's records of them and of the month up to min(month end, now), compared. On success
 * audits "reconcile.ran" (who: the actor; counts per kind and per partner in its details) and sets
 * *json to the answer (malloc'd; caller frees): {"month", "from", "to", "ran_at", "summary":
 * {"jobs_compared", "records", "differences", "by_kind": {...}}, "differences": [...],
 * "truncated"}. Returns 0, -EINVAL (bad month, or a month that has not begun), -ENOTSUP (no
 * accounting of record), -EAGAIN, -ENOMEM, or the store's error, with a message in err. Blocking:
 * worker threads only. */
int reconciler_run(reconciler *rc, const registry_actor *who, const char *month, int64_t now,
                   char **json, char *err, size_t errlen);

/* The month "YYYY-MM" that starts at unix time *from and ends (exclusive) at *to. Returns 0 or
 * -EINVAL. Pure. */
int reconciler_month_bounds(const char *month, int64_t *from, int64_t *to);

#endif
