/* metrics.h - antennad's counters, gauges and histograms, and their Prometheus text exposition.
 *
 * Never allocates, locks or does I/O when a number is updated (C11 relaxed atomics: one atomic add
 * per counter, two per histogram observation), and never scans the queue: what it writes
 * comes from its own atomics and from the numbers the caller hands it. Never logs.
 *
 * Two layers: the generic pieces (metrics_counter, metrics_histogram, metrics_text: a growing
 * buffer with the exposition format's HELP/TYPE lines, samples and label escaping), and antennad's
 * own process-wide metrics (metrics_http_observe, metrics_slurm_rpc, ...), updated from any thread
 * and written by metrics_daemon_write. Units: latencies are observed in microseconds and written
 * in seconds, as Prometheus wants.
 */
#ifndef ANTENNA_METRICS_H
#define ANTENNA_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define METRICS_BUCKETS_MAX 16

/* A monotonic counter. Zero-initialised storage is a valid counter at 0. */
typedef struct metrics_counter {
    _Atomic uint64_t v;
} metrics_counter;

/* Adds `n` to `c`. Any thread; lock-free. */
void metrics_counter_add(metrics_counter *c, uint64_t n);

/* The value of `c` now. Any thread. */
uint64_t metrics_counter_get(const metrics_counter *c);

/* A histogram of integer observations over fixed upper bounds (ascending, at most
 * METRICS_BUCKETS_MAX), plus the +Inf bucket. Each observation lands in one bucket (cumulated when
 * written; the count is the +Inf bucket) and its value is added to the sum: two relaxed atomic
 * adds. A reader may see a bucket a moment before the sum, never a torn number. */
typedef struct metrics_histogram {
    const int64_t *bounds; /* borrowed: static storage */
    size_t n;
    double scale; /* written values are value / scale (1e6: microseconds written as seconds) */
    _Atomic uint64_t buckets[METRICS_BUCKETS_MAX + 1];
    _Atomic uint64_t sum;
} metrics_histogram;

/* Sets up `h` (caller-allocated) at zero over `bounds[0..n)` (borrowed, ascending, static) with
 * `scale` (> 0). Returns 0, or -EINVAL (n > METRICS_BUCKETS_MAX, bounds not ascending, scale <=
 * 0). Call before any thread observes it. */
int metrics_histogram_init(metrics_histogram *h, const int64_t *bounds, size_t n, double scale);

/* Counts one observation `v` (negative counts as 0). Any thread; lock-free, no allocation. */
void metrics_histogram_observe(metrics_histogram *h, int64_t v);

/* The count of observations <= bounds[i] (i == n: all of them), as written. Any thread. */
uint64_t metrics_histogram_cumulative(const metrics_histogram *h, size_t i);

/* One label of a sample: name (a Prometheus label name, not checked) and value (escaped when
 * written: backslash, double quote and newline). */
typedef struct metrics_label {
    const char *name;
    const char *value;
} metrics_label;

/* The exposition being written: a malloc'd, NUL-terminated, growing text. */
typedef struct metrics_text {
    char *buf;
    size_t len, cap;
    bool failed; /* an allocation failed: the text is incomplete (see metrics_text_take) */
} metrics_text;

/* Sets up `t` (caller-allocated) empty. Pairs with metrics_text_close. */
void metrics_text_init(metrics_text *t);

/* Frees what `t` holds (accepts a text already taken or never written). */
void metrics_text_close(metrics_text *t);

/* Hands over the text: returns the malloc'd buffer (the caller frees it) with its length in *len,
 * and leaves `t` empty; NULL when an allocation failed on the way (nothing to free then). */
char *metrics_text_take(metrics_text *t, size_t *len);

/* Writes the "# HELP name help" and "# TYPE name type" lines of a family ("counter", "gauge",
 * "histogram"). `help` is escaped (backslash, newline) as the format wants. */
void metrics_text_family(metrics_text *t, const char *name, const char *type, const char *help);

/* Writes one sample line `name{labels} value` (no braces without labels). */
void metrics_text_sample(metrics_text *t, const char *name, const metrics_label *labels,
                         size_t nlabels, double value);

/* Writes the samples of histogram `h` with `labels`: name_bucket{...,le="..."} for each bound and
 * +Inf (cumulative), name_sum and name_count. */
void metrics_text_histogram(metrics_text *t, const char *name, const metrics_label *labels,
                            size_t nlabels, const metrics_histogram *h);

/* Escapes a label value into out (room for len bytes with the NUL): backslash -> \\, double
 * quote -> \", newline -> \n. Returns the escaped length, or -ENOSPC (out holds a truncated,
 * still NUL-terminated prefix). Any thread. */
int metrics_label_escape(const char *in, char *out, size_t len);

/* --- antennad's own metrics (process-wide) --------------------------------------------------- */

/* Route labels for the HTTP metrics. Route 0 is "-": a request answered before it was routed
 * (a protocol error, a token refused as soon as the headers were in). */
#define METRICS_ROUTES_MAX 64

/* Registers the route pattern `label` (static storage, e.g. "GET /v1/jobs/{id}") and returns its
 * route id (1..METRICS_ROUTES_MAX-1), the id it already has if registered before, or 0 when the
 * table is full (its requests are then counted under "-"). Call at start-up, before requests are
 * served (not thread-safe against itself). */
int metrics_route_register(const char *label);

/* The label of route id `route` ("-" for 0 or an unknown id). Static storage. */
const char *metrics_route_label(int route);

/* One answered request of `route` with HTTP `status`, `us` microseconds after its first byte
 * (negative: not timed, counted only). Any thread; lock-free. */
void metrics_http_observe(int route, int status, int64_t us);

/* Open HTTP connections: +1 when one is counted, -1 when it stops being counted. Any thread. */
void metrics_connections_add(int delta);

/* A submission admitted and queued. */
void metrics_submission(void);

/* A submission refused by admission, with its verdict code (a POLICY refusal code: an unknown
 * code is counted as "other", so the label set stays bounded). */
void metrics_refusal(const char *code);

/* `runs` runs of --requeue jobs that Slurm ended by requeueing them were recorded and charged;
 * `budget_ends` of those jobs are ended by antennad (their budget no longer covers another run).
 * Any thread. */
void metrics_requeued_runs(unsigned runs, unsigned budget_ends);

/* What became of one dispatch to Slurm. */
typedef enum metrics_dispatch_kind {
    METRICS_DISPATCH_SUBMITTED = 0, /* Slurm accepted it */
    METRICS_DISPATCH_REFUSED,       /* it cannot run (Slurm refused it, no account...) */
    METRICS_DISPATCH_REQUEUED,      /* Slurm unreachable: back to the queue */
    METRICS_DISPATCH_LOST,          /* the answer was lost: looked up in Slurm later */
    METRICS_DISPATCH_KINDS
} metrics_dispatch_kind;

/* One dispatch outcome; with METRICS_DISPATCH_SUBMITTED, `latency_us` (>= 0) is the time from the
 * job's submission to Slurm's acceptance (a negative value is not observed). */
void metrics_dispatch(metrics_dispatch_kind kind, int64_t latency_us);

/* The Slurm RPCs antennad times. */
typedef enum metrics_rpc {
    METRICS_RPC_SUBMIT = 0,
    METRICS_RPC_POLL,
    METRICS_RPC_CANCEL,
    METRICS_RPC_RECORDS,   /* slurmdbd job records */
    METRICS_RPC_PARTITION, /* partition size, for the cluster window */
    METRICS_RPC_ASSOC,     /* slurmdbd accounts, users and limits */
    METRICS_RPCS
} metrics_rpc;

/* One Slurm RPC `rpc` that took `us` microseconds; `failed` when it did not get an answer it could
 * use (unreachable, timed out, an error). Any thread. */
void metrics_slurm_rpc(metrics_rpc rpc, int64_t us, bool failed);

/* One group commit of the store: `us` microseconds for the COMMIT (and its fsync), `changes`
 * changes in the batch; `failed` when the COMMIT failed. Any thread. */
void metrics_store_commit(int64_t us, size_t changes, bool failed);

/* Microseconds on the monotonic clock, for timing what the functions above observe. */
int64_t metrics_now_us(void);

/* Writes every process-wide family above into `t`. Any thread; reads atomics only. */
void metrics_daemon_write(metrics_text *t);

/* Writes the queue's length and the per-partner gauges of v[0..n) (policy_partner_stats_get:
 * queued jobs by wait reason, GPUs in Slurm and running, this period's GPU budget, used, held and
 * left, in GPU-hours). */
void metrics_partners_write(metrics_text *t, const policy_partner_stats *v, size_t n,
                            size_t queue_length);

/* For tests: sets every process-wide number back to zero (the route table stays). Not safe while
 * other threads update them. */
void metrics_daemon_reset(void);

#endif
