/* broker.h - follows every job from the queue to Slurm and to its end, in durable steps.
 *
 * The broker owns all talk with Slurm: one tick at a time runs on the libuv thread pool (never on
 * the loop thread) and does, in order: recovery after a restart (once), one incremental poll of
 * Slurm's job table (states, starts, ends and charges), cancel requests, and the dispatch of the
 * queued jobs that the policy engine picks (highest priority first, within partner caps, budgets
 * and the cluster window), each with its budget hold written in the same transaction as its state.
 * Every step is written to the store before the next one starts, so a crash at any point neither
 * loses a job nor submits it twice: a job found in state "dispatching" after a restart is looked up
 * in Slurm by its tag before it is ever submitted again.
 */
#ifndef ANTENNA_BROKER_H
#define ANTENNA_BROKER_H

#include <stdbool.h>
#include <uv.h>

#include "audit.h"
#include "policy_state.h"
#include "slurm_adapter.h"
#include "store.h"

typedef struct broker broker;

typedef struct broker_options {
    const char *partition; /* Slurm partition for every job */
    const char *spool_dir; /* job folders: spool_dir/jobs/<id>/ (created, chowned to the user) */
    unsigned poll_interval_ms; /* time between ticks */
    audit *audit;              /* the audit trail (borrowed); NULL = none (unit tests) */
} broker_options;

/* Creates a broker on `loop` over `st`, `sa` and `ps` (borrowed; they must outlive the broker).
 * Strings in opt are copied. Returns 0 and sets *out, or a negative errno. Nothing runs until
 * broker_start. Loop thread only. */
int broker_new(uv_loop_t *loop, store *st, slurm_adapter *sa, policy_state *ps,
               const broker_options *opt, broker **out);

/* Starts ticking (the first tick at once). Returns 0 or a negative errno. Loop thread only. */
int broker_start(broker *b);

/* Asks for a tick as soon as possible (a job was queued or a cancel asked). Accepts NULL. Loop
 * thread only. */
void broker_kick(broker *b);

/* True while the last contact with Slurm succeeded. Any thread. Accepts NULL (false). */
bool broker_slurm_ok(const broker *b);

/* The job folder and output file of job `id` into buf[len] ("<spool>/jobs/<id>/output.log").
 * Returns buf. Any thread. */
char *broker_job_output_path(const broker_options *opt, long long id, char *buf, size_t len);

/* Stops the broker: no new tick starts; a tick in flight finishes; then the memory is released
 * and `done` (may be NULL) is called on the loop thread. Accepts NULL. */
void broker_close(broker *b, void (*done)(void *arg), void *arg);

#endif
