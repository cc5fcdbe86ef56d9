/* job_dependency.c - sbatch's --dependency forms parsed and printed, each condition judged against
 * its prerequisite's state, and the reverse index of who waits on whom. Must never do I/O, log,
 * read the clock, or include libuv/Slurm/SQLite/OpenSSL headers.
 */
#include "job_dependency.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[JOB_DEP_KIND_COUNT] = {"after", "afterok", "afternotok",
                                                           "afterany", "singleton"};

const char *job_dependency_kind_name(job_dependency_kind k)
{
    return ((int)k >= 0 && k < JOB_DEP_KIND_COUNT) ? kind_names[k] : "?";
}

int job_dependency_kind_parse(const char *name, job_dependency_kind *out)
{
    if (name == NULL || out == NULL) return -EINVAL;
    for (int i = 0; i < JOB_DEP_KIND_COUNT; i++)
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (job_dependency_kind)i;
            return 0;
        }
    return -EINVAL;
}

/* Fills err and empties *out. Returns -EINVAL. */
__attribute__((format(printf, 4, 5))) static int refuse(job_dependency *out, char *err,
                                                        size_t errlen, const char *fmt, ...)
{
    out->n = 0;
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Adds an item unless already there. Returns 0 or -E2BIG. */
static int item_add(job_dependency *d, job_dependency_kind kind, int64_t id)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->items[i].kind == kind && d->items[i].id == id) return 0;
    if (d->n == JOB_DEPENDENCY_MAX) return -E2BIG;
    d->items[d->n].kind = kind;
    d->items[d->n].id = id;
    d->n++;
    return 0;
}

/* Parses one job id of `len` chars at s (a positive decimal below 2^53). Returns 0, or -EINVAL
 * with the message. */
static int id_parse(const char *s, size_t len, const char *kind, int64_t *id, job_dependency *out,
                    char *err, size_t errlen)
{
    const char *plus = memchr(s, '+', len), *under = memchr(s, '_', len);
    if (plus != NULL)
        return refuse(out, err, errlen,
                      "\"%s:%.*s\": a delay after the start (+time) is not supported; drop it, "
                      "or make the job wait in its script",
                      kind, (int)len, s);
    if (under != NULL)
        return refuse(out, err, errlen,
                      "\"%.*s\" names a job array task: dependencies on array tasks are not "
                      "supported yet; name an Antenna job id",
                      (int)len, s);
    if (len == 0)
        return refuse(out, err, errlen, "\"%s\" needs a job id after each ':' (e.g. %s:12)", kind,
                      kind);
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return refuse(out, err, errlen,
                          "\"%.*s\" is not a job id: write Antenna job ids as numbers (e.g. "
                          "%s:12)",
                          (int)len, s, kind);
        int64_t digit = s[i] - '0', max = ((int64_t)1 << 53) - 1;
        if (v > (max - digit) / 10)
            return refuse(out, err, errlen, "job id \"%.*s\" is too large", (int)len, s);
        v = v * 10 + digit;
    }
    if (v == 0) return refuse(out, err, errlen, "job id 0 does not exist: job ids start at 1");
    *id = v;
    return 0;
}

/* Parses one element "kind:ID[:ID...]" or "singleton" of `len` chars at s. */
static int element_parse(const char *s, size_t len, job_dependency *out, char *err, size_t errlen)
{
    if (len == 0)
        return refuse(out, err, errlen,
                      "an empty condition (two ',' in a row, or one at an end): write e.g. "
                      "afterok:12,afterany:13");
    const char *colon = memchr(s, ':', len);
    size_t klen = colon ? (size_t)(colon - s) : len;
    char kind[24];
    if (klen >= sizeof kind)
        return refuse(out, err, errlen,
                      "unknown dependency type \"%.*s\": use after, afterok, afternotok, "
                      "afterany or singleton",
                      (int)(klen > 40 ? 40 : klen), s);
    memcpy(kind, s, klen);
    kind[klen] = '\0';
    job_dependency_kind k;
    if (job_dependency_kind_parse(kind, &k) < 0) {
        if (strcmp(kind, "aftercorr") == 0 || strcmp(kind, "afterburstbuffer") == 0 ||
            strcmp(kind, "expand") == 0)
            return refuse(out, err, errlen,
                          "dependency type \"%s\" is not supported by Antenna: use after, "
                          "afterok, afternotok, afterany or singleton",
                          kind);
        return refuse(out, err, errlen,
                      "unknown dependency type \"%s\": use after, afterok, afternotok, afterany "
                      "or singleton",
                      kind);
    }
    if (k == JOB_DEP_SINGLETON) {
        if (colon != NULL)
            return refuse(out, err, errlen, "\"singleton\" takes no job id: write it alone");
        return item_add(out, k, 0) < 0 ? refuse(out, err, errlen, "too many prerequisites") : 0;
    }
    if (colon == NULL)
        return refuse(out, err, errlen, "\"%s\" needs a job id (e.g. %s:12)", kind, kind);
    const char *p = colon + 1, *end = s + len;
    for (;;) {
        const char *next = memchr(p, ':', (size_t)(end - p));
        size_t n = next ? (size_t)(next - p) : (size_t)(end - p);
        int64_t id = 0;
        int rc = id_parse(p, n, kind, &id, out, err, errlen);
        if (rc < 0) return rc;
        if (item_add(out, k, id) < 0)
            return refuse(out, err, errlen,
                          "more than %d prerequisites: a job may wait on at most %d jobs",
                          JOB_DEPENDENCY_MAX, JOB_DEPENDENCY_MAX);
        if (next == NULL) break;
        p = next + 1;
    }
    return 0;
}

int job_dependency_parse(const char *text, job_dependency *out, char *err, size_t errlen)
{
    if (out == NULL) return -EINVAL;
    out->n = 0;
    if (err != NULL && errlen > 0) err[0] = '\0';
    if (text == NULL || text[0] == '\0')
        return refuse(out, err, errlen,
                      "the dependency is empty: write e.g. afterok:12, or leave the option out");
    size_t len = strnlen(text, JOB_DEPENDENCY_TEXT_MAX);
    if (len == JOB_DEPENDENCY_TEXT_MAX)
        return refuse(out, err, errlen, "the dependency is longer than %d characters",
                      JOB_DEPENDENCY_TEXT_MAX - 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '?')
            return refuse(out, err, errlen,
                          "'?' (any one of the conditions) is not supported: Antenna runs a job "
                          "once all of its conditions hold; join them with ','");
        if (ch <= ' ' || ch >= 0x7f)
            return refuse(out, err, errlen,
                          "the dependency holds a space or a non-printable character: write e.g. "
                          "afterok:12,afterany:13");
    }
    const char *p = text, *end = text + len;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
        int rc = element_parse(p, n, out, err, errlen);
        if (rc < 0) return rc;
        if (comma == NULL) break;
        p = comma + 1;
    }
    return 0;
}

int job_dependency_format(const job_dependency *d, char *buf, size_t len)
{
    if (d == NULL || buf == NULL) return -EINVAL;
    size_t at = 0;
    bool singleton = false;
    int prev = -1;
    if (len > 0) buf[0] = '\0';
    for (size_t i = 0; i < d->n; i++) {
        const job_dependency_item *it = &d->items[i];
        int w;
        if (it->kind == JOB_DEP_SINGLETON) {
            if (singleton) continue;
            singleton = true;
            w = snprintf(buf + at, len > at ? len - at : 0, "%ssingleton", at ? "," : "");
            prev = -1;
        } else if ((int)it->kind == prev) {
            w = snprintf(buf + at, len > at ? len - at : 0, ":%" PRId64, it->id);
        } else {
            w = snprintf(buf + at, len > at ? len - at : 0, "%s%s:%" PRId64, at ? "," : "",
                         job_dependency_kind_name(it->kind), it->id);
            prev = (int)it->kind;
        }
        if (w < 0 || (size_t)w >= (len > at ? len - at : 0)) {
            if (len > 0) buf[0] = '\0';
            return -ENOSPC;
        }
        at += (size_t)w;
    }
    return (int)at;
}

job_dependency_status job_dependency_check(job_dependency_kind kind, const char *state,
                                           bool terminal, bool in_slurm)
{
    bool completed = state != NULL && strcmp(state, "completed") == 0;
    bool started =
        state != NULL && (strcmp(state, "running") == 0 || strcmp(state, "suspended") == 0);
    if (terminal) {
        switch (kind) {
        case JOB_DEP_AFTEROK:
            return completed ? JOB_DEP_MET : JOB_DEP_NEVER;
        case JOB_DEP_AFTERNOTOK:
            return completed ? JOB_DEP_NEVER : JOB_DEP_MET;
        default:
            return JOB_DEP_MET; /* after, afterany, singleton: any end will do */
        }
    }
    if (kind == JOB_DEP_SINGLETON || !in_slurm) return JOB_DEP_WAIT;
    if (kind == JOB_DEP_AFTER && started) return JOB_DEP_MET;
    return JOB_DEP_PASS;
}

char *job_dependency_never_reason(job_dependency_kind kind, int64_t id, const char *state,
                                  char *buf, size_t len)
{
    snprintf(buf, len, "dependency %s:%" PRId64 " can never be met: job %" PRId64 " ended %s",
             job_dependency_kind_name(kind), id, id, state ? state : "?");
    return buf;
}

/* ---- the reverse index: a chained hash table of (prereq, dependent) edges by prereq ---- */

struct edge {
    int64_t prereq, dependent;
    struct edge *next;
};

struct job_dependency_index {
    struct edge **b;
    size_t nb, n; /* buckets (a power of 2), edges */
};

static size_t bucket_of(int64_t prereq, size_t nb)
{
    uint64_t h = (uint64_t)prereq * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (nb - 1);
}

job_dependency_index *job_dependency_index_new(void)
{
    job_dependency_index *ix = calloc(1, sizeof *ix);
    if (ix == NULL) return NULL;
    ix->nb = 64;
    ix->b = calloc(ix->nb, sizeof *ix->b);
    if (ix->b == NULL) {
        free(ix);
        return NULL;
    }
    return ix;
}

void job_dependency_index_free(job_dependency_index *ix)
{
    if (ix == NULL) return;
    for (size_t i = 0; i < ix->nb; i++)
        for (struct edge *e = ix->b[i], *next; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    free(ix->b);
    free(ix);
}

/* Doubles the buckets when there are more edges than buckets; a failure keeps the old table. */
static void grow(job_dependency_index *ix)
{
    if (ix->n < ix->nb) return;
    size_t nb = ix->nb * 2;
    struct edge **b = calloc(nb, sizeof *b);
    if (b == NULL) return;
    for (size_t i = 0; i < ix->nb; i++)
        for (struct edge *e = ix->b[i], *next; e != NULL; e = next) {
            next = e->next;
            size_t k = bucket_of(e->prereq, nb);
            e->next = b[k];
            b[k] = e;
        }
    free(ix->b);
    ix->b = b;
    ix->nb = nb;
}

int job_dependency_index_add(job_dependency_index *ix, int64_t prereq, int64_t dependent)
{
    if (ix == NULL) return -EINVAL;
    size_t k = bucket_of(prereq, ix->nb);
    for (struct edge *e = ix->b[k]; e != NULL; e = e->next)
        if (e->prereq == prereq && e->dependent == dependent) return 0;
    struct edge *e = malloc(sizeof *e);
    if (e == NULL) return -ENOMEM;
    e->prereq = prereq;
    e->dependent = dependent;
    e->next = ix->b[k];
    ix->b[k] = e;
    ix->n++;
    grow(ix);
    return 0;
}

void job_dependency_index_remove(job_dependency_index *ix, int64_t prereq, int64_t dependent)
{
    if (ix == NULL) return;
    for (struct edge **pp = &ix->b[bucket_of(prereq, ix->nb)]; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->prereq == prereq && (*pp)->dependent == dependent) {
            struct edge *e = *pp;
            *pp = e->next;
            free(e);
            ix->n--;
            return;
        }
}

long job_dependency_index_take(job_dependency_index *ix, int64_t prereq, int64_t **out)
{
    if (ix == NULL || out == NULL) return -EINVAL;
    *out = NULL;
    size_t k = bucket_of(prereq, ix->nb), count = 0;
    for (struct edge *e = ix->b[k]; e != NULL; e = e->next)
        if (e->prereq == prereq) count++;
    if (count == 0) return 0;
    int64_t *ids = malloc(count * sizeof *ids);
    if (ids == NULL) return -ENOMEM;
    size_t i = 0;
    for (struct edge **pp = &ix->b[k]; *pp != NULL;) {
        struct edge *e = *pp;
        if (e->prereq != prereq) {
            pp = &e->next;
            continue;
        }
        ids[i++] = e->dependent;
        *pp = e->next;
        free(e);
        ix->n--;
    }
    *out = ids;
    return (long)count;
}

size_t job_dependency_index_size(const job_dependency_index *ix)
{
    return ix ? ix->n : 0;
}
