/* job_cache.h - the answers of GET /v1/jobs/{id} kept in memory, valid for one store generation.
 *
 * A bounded, direct-mapped table (one entry per slot, id modulo the slot count) of rendered job
 * objects. An entry is served only while the store's generation (registry_generation) is the one
 * it was rendered at: any committed change makes every entry stale at once, so an answer is never
 * older than what the store holds. It never reads the store, never logs, and is not thread-safe:
 * the event-loop thread alone uses it.
 */
#ifndef ANTENNA_JOB_CACHE_H
#define ANTENNA_JOB_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct job_cache job_cache;

/* Who may see a cached job (api.c applies its visibility rule to these). */
typedef struct job_cache_owner {
    int64_t user_id;
    char partner[64];
} job_cache_owner;

/* A table of `slots` entries (0 = 4096). Returns NULL when out of memory. Free with
 * job_cache_free. */
job_cache *job_cache_new(size_t slots);

/* Frees the table and every body it holds. Accepts NULL. */
void job_cache_free(job_cache *jc);

/* Keeps a copy of `body[0..len)`, the answer for job `id` rendered from the store at generation
 * `gen`, replacing what its slot held. Returns 0, or -ENOMEM (the slot is then empty) or -EINVAL.
 */
int job_cache_put(job_cache *jc, int64_t id, uint64_t gen, const job_cache_owner *owner,
                  const char *body, size_t len);

/* The answer kept for job `id` if it was rendered at generation `gen` (else NULL). The body (and
 * *owner) stay owned by the table and valid until the next job_cache_put or job_cache_free. */
const char *job_cache_get(job_cache *jc, int64_t id, uint64_t gen, job_cache_owner *owner,
                          size_t *len);

/* Answers served from the table (job_cache_get hits) since job_cache_new, for tests and metrics. */
uint64_t job_cache_hits(const job_cache *jc);

#endif
