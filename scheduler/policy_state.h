/* policy_state.h - antennad's one policy engine, loaded from the store and shared under a lock.
 *
 * The engine (policies/policy.h) is a mirror of the store; this module builds it from the store at
 * start-up and serialises every use of it between the API handlers and the broker, which run on
 * different worker threads. It never writes the store and never talks to Slurm.
 */
#ifndef ANTENNA_POLICY_STATE_H
#define ANTENNA_POLICY_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "store.h"

typedef struct policy_state policy_state;

/* Builds the engine with `cfg` from the store: partners, users, quotas, every charge of the
 * ledger (used amounts and fair-share usage), queued jobs (enqueued) and jobs in Slurm (restored
 * with their holds). Blocking (reads the store): call before the loop runs or from a worker.
 * Returns 0 and sets *out, or a negative errno with a message in err. */
int policy_state_new(const policy_config *cfg, store *st, policy_state **out, char *err,
                     size_t errlen);

/* Frees it. Accepts NULL. */
void policy_state_free(policy_state *ps);

/* Locks the engine and returns it. Every call must be paired with policy_state_unlock; do not
 * call the store or Slurm for long while holding it. Any thread. */
policy *policy_state_lock(policy_state *ps);

/* Unlocks the engine. */
void policy_state_unlock(policy_state *ps);

/* Fills a policy_job from a store job. */
void policy_state_job_from_store(const store_job *j, policy_job *out);

/* Fills a policy_quota from a store quota (same unlimited convention). */
void policy_state_quota_from_store(const store_quota *q, policy_quota *out);

#endif
