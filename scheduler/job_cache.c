/* job_cache.c - the answers of GET /v1/jobs/{id} kept in memory for one store generation.
 *
 * Must never serve an entry of another generation than the caller's, never grow past its slots,
 * never read the store or log. Event-loop thread only.
 */
#include "job_cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    int64_t id; /* 0 = empty */
    uint64_t gen;
    job_cache_owner owner;
    char *body;
    size_t len;
};

struct job_cache {
    size_t n;
    uint64_t hits;
    struct entry slot[];
};

job_cache *job_cache_new(size_t slots)
{
    if (slots == 0) slots = 4096;
    if (slots > ((size_t)-1 - sizeof(job_cache)) / sizeof(struct entry)) return NULL;
    job_cache *jc = calloc(1, sizeof *jc + slots * sizeof(struct entry));
    if (jc == NULL) return NULL;
    jc->n = slots;
    return jc;
}

void job_cache_free(job_cache *jc)
{
    if (jc == NULL) return;
    for (size_t i = 0; i < jc->n; i++)
        free(jc->slot[i].body);
    free(jc);
}

static struct entry *slot_of(const job_cache *jc, int64_t id)
{
    return (struct entry *)&jc->slot[(uint64_t)id % jc->n];
}

int job_cache_put(job_cache *jc, int64_t id, uint64_t gen, const job_cache_owner *owner,
                  const char *body, size_t len)
{
    if (jc == NULL || id <= 0 || owner == NULL || body == NULL) return -EINVAL;
    struct entry *e = slot_of(jc, id);
    char *copy = e->body != NULL && e->len >= len ? e->body : realloc(e->body, len ? len : 1);
    if (copy == NULL) {
        free(e->body);
        memset(e, 0, sizeof *e);
        return -ENOMEM;
    }
    memcpy(copy, body, len);
    e->body = copy;
    e->len = len;
    e->id = id;
    e->gen = gen;
    e->owner = *owner;
    return 0;
}

const char *job_cache_get(job_cache *jc, int64_t id, uint64_t gen, job_cache_owner *owner,
                          size_t *len)
{
    if (jc == NULL || id <= 0) return NULL;
    struct entry *e = slot_of(jc, id);
    if (e->id != id || e->gen != gen || e->body == NULL) return NULL;
    if (owner) *owner = e->owner;
    if (len) *len = e->len;
    jc->hits++;
    return e->body;
}

uint64_t job_cache_hits(const job_cache *jc)
{
    return jc ? jc->hits : 0;
}
