/* broker.h - follows every job from the queue to Slurm and to its end, in durable steps.
 *
 * The broker owns all talk with Slurm: one tick at a time runs on the libuv thread pool (never on
 * the loop thread) and does, in order: recovery after a restart (once), the outcomes it could not
 * record yet, one incremental poll of Slurm's job table (only the jobs of ours that are in Slurm
 * are followed, by their recorded Slurm id, whatever their comment, name or tag; a change is
 * recorded only when Slurm's view of a job differs from the recorded one), the cancels asked, and
 * the dispatch of the queued jobs that the policy engine picks, in batches: a batch's holds and
 * moves to "dispatching" are one registry change, its submits follow, and their outcomes are a
 * second one. Every step is in the store before the next one starts, so a crash at any point
 * neither loses a job nor submits it twice: a job left in "dispatching" (after a restart, or when a
 * submit's answer was lost) is looked up in Slurm by its tag (AdminComment, which the job's user
 * cannot change) before it is ever submitted again. A write that fails is retried on the next tick
 * until it succeeds. Nothing runs when nothing changed: an idle tick is one cheap "no change" RPC.
 *
 * A followed job that slurmctld no longer knows (it forgets a job MinJobAge seconds after its
 * end) is read from slurmdbd, matched by its recorded Slurm id and its tag (AdminComment), and
 * its recorded end is charged as a normal end. Only a job that neither knows is `lost`, charged
 * its full hold with the reason in its audit entry; while slurmdbd cannot be reached the broker
 * waits for it. Before a job is submitted, its partner's Slurm account and its Unix account's
 * association exist (ensured once per pair and at start-up for every partner and user).
 */
#ifndef ANTENNA_BROKER_H
#define ANTENNA_BROKER_H

#include <stdbool.h>
#include <uv.h>

#include "job_request.h"
#include "registry.h"
#include "slurm_adapter.h"

typedef struct broker broker;

typedef struct broker_options {
    const char *partition; /* Slurm partition for every job */
    const char *spool_dir; /* job folders: spool_dir/jobs/<id>/ (created, chowned to the user) */
    unsigned poll_interval_ms; /* time between ticks */
    unsigned resolve_after_ms; /* a job whose submit answer was lost is looked up in Slurm
                                  this long after (slurmctld may still carry the request out
                                  while it is hung); 0 = 30 s */
    int cluster_window;        /* at least this many of our jobs may wait in Slurm (the window
                                  grows to the partition's CPU count); 0 = 4 */
    unsigned record_grace_ms;  /* a job slurmctld forgot is read from slurmdbd; when slurmdbd
                                  (reachable) has no finished record of it yet, it is asked again
                                  for this long before the job is `lost`; 0 = 30 s */
    bool gpu_limits;           /* mirror each partner's GPU budget of the current month as
                                  GrpTRESMins=gres/gpu on its Slurm account */
} broker_options;

/* Creates a broker on `loop` over `reg` and `sa` (borrowed; they must outlive the broker).
 * Strings in opt are copied. Returns 0 and sets *out, or a negative errno. Nothing runs until
 * broker_start. Loop thread only. */
int broker_new(uv_loop_t *loop, registry *reg, slurm_adapter *sa, const broker_options *opt,
               broker **out);

/* Starts ticking (the first tick at once). Returns 0 or a negative errno. Loop thread only. */
int broker_start(broker *b);

/* Asks for a tick as soon as possible (a job was queued or a cancel asked). Accepts NULL. Loop
 * thread only. */
void broker_kick(broker *b);

/* Tells the broker that a cancel of job `id` (in Slurm, or being dispatched) was committed: the
 * next tick sends it to Slurm. A restart finds such cancels again in the store. Any thread.
 * Returns 0, -ENOSPC (too many pending: the next restart sends it), -ENOMEM. Accepts NULL. */
int broker_cancel_push(broker *b, int64_t id);

/* True while the last contact with Slurm succeeded and no call to it has been waiting longer
 * than one poll interval (a hung slurmctld shows at once). Any thread. Accepts NULL (false). */
bool broker_slurm_ok(const broker *b);

/* Runs fn(sa, arg) on the calling thread with the broker's Slurm adapter to itself (for reads the
 * ticks do not make, e.g. the accounting records of a reconciliation): waits for a tick under way
 * to finish and holds the next one back until fn returns. Returns fn's result, or -ENODEV when b
 * is NULL (no Slurm). Worker threads only, never the loop thread; fn must not call the registry
 * (a tick waiting on it could hold the registry's callers back). */
int broker_slurm_exclusive(broker *b, int (*fn)(slurm_adapter *sa, void *arg), void *arg);

/* The job folder and output file of job `id` into buf[len] ("<spool>/jobs/<id>/output.log").
 * Returns buf. Any thread. */
char *broker_job_output_path(const broker_options *opt, long long id, char *buf, size_t len);

/* The job's two streams. */
typedef enum broker_stream { BROKER_STDOUT, BROKER_STDERR } broker_stream;

/* The file of store job `j`'s stdout or stderr into buf[len]: "<spool>/jobs/<id>/<name>", the
 * name being its --output / --error pattern (in `r`, its options; NULL = none) expanded by
 * jobreq_output_expand with the job's Antenna id, name and Unix account, or output.log when it
 * gives none. The one place that names a job's output files: the dispatch and the API's output
 * reads both call it. Returns 0; -ENOENT for BROKER_STDERR when the job's stderr goes with its
 * stdout (no --error, or the same file); -EINVAL when a pattern does not expand or the path does
 * not fit. Any thread. */
int broker_job_stream_path(const broker_options *opt, const store_job *j, const jobreq *r,
                           broker_stream stream, char *buf, size_t len);

/* Asks the broker to make Slurm's associations match a new partner (unix_user NULL) or a new
 * mapped account of `partner` (an account named for the partner, the Unix account a user of it),
 * off the loop on its next tick (retried when slurmdbd is away; before a job of theirs is
 * submitted in any case). Strings are copied. Any thread. Returns 0, -ENOSPC (too many waiting:
 * the submit path still ensures it), -ENOMEM. Accepts NULL. */
int broker_assoc_push(broker *b, const char *partner, const char *unix_user);

/* With opt.gpu_limits: asks the broker to mirror `partner`'s GPU budget for `period` (weighted
 * GPU-seconds, STORE_UNLIMITED = none) on its Slurm account, off the loop on its next tick, when
 * `period` is the current month (retried while slurmdbd is away). Without: does nothing. Any
 * thread. Returns 0, -ENOSPC (too many waiting), -ENOMEM. Accepts NULL. */
int broker_gpu_limit_push(broker *b, const char *partner, const char *period, int64_t gpu_seconds);

/* Stops the broker: no new tick starts; a tick in flight finishes; then the memory is released
 * and `done` (may be NULL) is called on the loop thread. Accepts NULL. */
void broker_close(broker *b, void (*done)(void *arg), void *arg);

#endif
