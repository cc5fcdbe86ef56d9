/* policy.c - Antenna's policy engine: the mirror of partners, users, quotas, holds and queued jobs,
 * with admission, fair-share priority and dispatch. Must never do I/O, log, read the clock, or
 * include libuv/Slurm/SQLite/OpenSSL headers (libc and libm only).
 *
 * Layout. Partners and users live in arrays of pointers sorted by name (bsearch). Each partner
 * keeps its (period -> quota, used, held) entries in a small array of pointers sorted by period.
 * Jobs, queued or in Slurm, live in an open-addressing hash table keyed by id. Each user has a
 * max-heap of its queued jobs ordered by the job-specific part of the priority (size and age);
 * the users with queued jobs sit in one max-heap keyed by their partner's fair-share term + their
 * category term + their top job's key. The age term is W_age x (now - submitted_at) / unit: its
 * `now` part is the same for every job, so keys use -submitted_at and the order never changes
 * with time alone.
 *
 * Fair share. Usage decays by 2^(-dt / halflife), the same for every partner, so only the ratios
 * U_p / U_total matter and they change only when a charge lands. Usage is kept normalised to a
 * reference time (`usage_ref`): a charge c at time t adds c x 2^((t - usage_ref) / halflife); when
 * that exponent would pass 64 every partner's usage is rescaled to t first. After each charge or
 * share-weight change every partner's fair-share term is recomputed and the heap of users is
 * rebuilt (O(users)).
 */
#include "policy.h"

#include "heap.h"
#include "rank.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h> /* macros only (isfinite, HUGE_VAL): no libm */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PERIOD_LEN 7 /* "YYYY-MM" */

/* One partner's amounts for one period; `set` when a quota was set for it. */
struct pperiod {
    char period[8];
    bool set;
    policy_quota q;
    int64_t used_gpu, held_gpu, used_cpu, held_cpu;
};

struct ppartner {
    char name[POLICY_NAME_MAX];
    int weight;
    double usage;   /* fair-share usage (weighted GPU-seconds) normalised to usage_ref */
    double fs_term; /* W_fairshare x F */
    int64_t gpus_in_slurm, jobs_in_slurm;
    int64_t gpus_running; /* of its jobs in Slurm, those that started (policy_partner_stats) */
    size_t queued;
    rank_set ranked[POLICY_CAT_COUNT]; /* its queued jobs by job key, per user category: every
                                          job of one set has the same priority base */
    struct pperiod **periods;          /* sorted by period */
    size_t n_periods, cap_periods;
};

struct puser {
    char name[POLICY_NAME_MAX];
    struct ppartner *partner;
    policy_category cat;
    int64_t gpus_in_slurm;
    size_t n_jobs; /* queued + in Slurm: `queue` has room for all of them (requeue never fails) */
    heap queue;    /* queued jobs, by job key */
    size_t slot;   /* in policy.users_q, HEAP_NONE when it has no queued job */
    double key;    /* fs_term + category term + top job's key, while in users_q */
};

struct parray;

struct pjob {
    int64_t id;
    struct puser *user;
    struct ppartner *partner; /* queued: the user's partner; in Slurm: the one it counts against */
    int gpus, cpus, time_minutes, weight_milli;
    int64_t submitted_at;
    double key; /* W_size x S - W_age x submitted_at / (3600 x unit) */
    size_t slot;
    rank_node rk; /* in partner->ranked[user->cat] while queued */
    bool in_slurm, running;
    bool dep_held;       /* queued, but held by its dependencies: out of its user's heap and its
                            rank set, still counted as queued */
    char period[8];      /* in Slurm: the period of its hold */
    struct pperiod *per; /* in Slurm: its hold's entry, NULL when it holds nothing there */
    int64_t hold_gpu, hold_cpu;
    struct parray *arr; /* its array when that has a %max, else NULL */
    size_t aslot;       /* in arr->queued while queued */
};

/* An array with a %max: its queued tasks wait in `queued` (by id); only `rep`, its first, sits in
 * its user's queue, and only while fewer than `max` of its tasks are in Slurm (`active`). */
struct parray {
    int64_t id;
    int max;
    int64_t active;
    size_t refs; /* its tasks the engine knows (queued or in Slurm) */
    heap queued; /* room for every task it has */
    struct pjob *rep;
    struct puser *user;
    struct parray *next; /* hash chain */
};

struct policy {
    policy_config cfg;
    struct ppartner **partners; /* sorted by name */
    size_t n_partners, cap_partners;
    struct puser **users; /* sorted by name */
    size_t n_users, cap_users;
    heap users_q;         /* users with queued jobs; room for every user */
    struct puser **aside; /* policy_pick's scratch: room for every user */
    struct pjob **jobs;   /* hash table, jcap slots (a power of 2), at most half full */
    size_t jcap, n_jobs;
    size_t n_queued;
    int64_t pending; /* jobs dispatched and not yet started: the cluster window */
    int64_t usage_ref;
    bool usage_ref_set;
    struct parray **arrays; /* chained hash table by id, acap buckets (a power of 2) */
    size_t acap, n_arrays;
};

/* ---- small helpers ---- */

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t sat_sub(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r)) return b < 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t sat_mul(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return INT64_MAX;
    return r;
}

static int64_t cpu_cost(int cpus, int64_t seconds)
{
    int64_t r;
    if (cpus <= 0 || seconds <= 0) return 0;
    if (__builtin_mul_overflow((int64_t)cpus, seconds, &r)) return INT64_MAX;
    return r;
}

/* True when `s` is a NUL-terminated string of 1 .. max-1 chars. */
static bool name_ok(const char *s, size_t max)
{
    if (s == NULL || s[0] == '\0') return false;
    return memchr(s, '\0', max) != NULL;
}

static bool job_fields_ok(const policy_job *j)
{
    return j->gpus >= 0 && j->cpus >= 0 && j->time_minutes >= 1 &&
           name_ok(j->user, sizeof j->user) && memchr(j->gpu_type, '\0', sizeof j->gpu_type);
}

static bool quota_ok(const policy_quota *q)
{
    return (q->gpu_seconds >= 0 || q->gpu_seconds == POLICY_UNLIMITED) &&
           (q->cpu_seconds >= 0 || q->cpu_seconds == POLICY_UNLIMITED) &&
           q->max_gpus >= POLICY_UNLIMITED && q->max_running_jobs >= POLICY_UNLIMITED &&
           q->max_queued_jobs >= POLICY_UNLIMITED && q->max_walltime_minutes >= POLICY_UNLIMITED &&
           q->user_max_gpus >= POLICY_UNLIMITED;
}

/* 2^k for an integer k in [-1022, 1023], built from its IEEE-754 bits. */
static double pow2_int(int k)
{
    uint64_t bits = (uint64_t)(k + 1023) << 52;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* 2^x without libm (the daemon and the CLI do not link it): 2^n x e^(f ln 2) with x = n + f,
 * f in [0, 1), the exponential by its Taylor series (accurate to about one ulp). */
static double pow2(double x)
{
    if (x != x) return x;
    if (x >= 1024) return HUGE_VAL;
    if (x < -1074) return 0;
    int n = (int)x;
    if ((double)n > x) n--;
    double y = (x - n) * 0.69314718055994530942, term = 1, sum = 1;
    for (int k = 1; k < 24; k++) {
        term *= y / k;
        sum += term;
    }
    /* sum is in [1, 2); n <= 1023; below -1022 scale in two steps (subnormal results) */
    if (n < -1022) return sum * pow2_int(n + 1022) * pow2_int(-1022);
    return sum * pow2_int(n);
}

/* ---- categories, config, quotas, periods, costs ---- */

static const char *const category_names[POLICY_CAT_COUNT] = {"sme", "researcher", "institution"};

int policy_category_parse(const char *s, policy_category *out)
{
    if (s == NULL || out == NULL) return -EINVAL;
    for (int i = 0; i < POLICY_CAT_COUNT; i++)
        if (strcmp(s, category_names[i]) == 0) {
            *out = (policy_category)i;
            return 0;
        }
    return -EINVAL;
}

const char *policy_category_name(policy_category c)
{
    return ((int)c >= 0 && c < POLICY_CAT_COUNT) ? category_names[c] : "?";
}

void policy_config_defaults(policy_config *c)
{
    memset(c, 0, sizeof *c);
    memcpy(c->gpu_types[0].name, "h100", 5);
    c->gpu_types[0].weight_milli = 1000;
    c->n_gpu_types = 1;
    c->fairshare_halflife_hours = 168;
    c->weight_fairshare = 10000;
    c->weight_category = 1000;
    c->weight_age = 1000;
    c->weight_size = 500;
    c->category_factor_milli[POLICY_CAT_SME] = 1000;
    c->category_factor_milli[POLICY_CAT_RESEARCHER] = 800;
    c->category_factor_milli[POLICY_CAT_INSTITUTION] = 600;
    c->age_unit_hours = 24;
    c->max_gpus_per_job = 8;
    c->cluster_window = 4;
}

void policy_quota_none(policy_quota *q)
{
    q->gpu_seconds = 0;
    q->cpu_seconds = POLICY_UNLIMITED; /* the CPU budget is optional */
    q->max_gpus = POLICY_UNLIMITED;
    q->max_running_jobs = POLICY_UNLIMITED;
    q->max_queued_jobs = POLICY_UNLIMITED;
    q->max_walltime_minutes = POLICY_UNLIMITED;
    q->user_max_gpus = POLICY_UNLIMITED;
}

char *policy_period_of(int64_t t, char out[8])
{
    time_t tt = (time_t)t;
    struct tm tm;
    int year = 0, month = 1;
    if (gmtime_r(&tt, &tm) != NULL) {
        year = tm.tm_year + 1900;
        month = tm.tm_mon + 1;
    }
    if (year < 0) year = 0;
    if (year > 9999) year = 9999;
    out[0] = (char)('0' + year / 1000);
    out[1] = (char)('0' + year / 100 % 10);
    out[2] = (char)('0' + year / 10 % 10);
    out[3] = (char)('0' + year % 10);
    out[4] = '-';
    out[5] = (char)('0' + month / 10);
    out[6] = (char)('0' + month % 10);
    out[7] = '\0';
    return out;
}

int policy_period_valid(const char *s)
{
    if (s == NULL || strlen(s) != PERIOD_LEN || s[4] != '-') return 0;
    for (int i = 0; i < PERIOD_LEN; i++)
        if (i != 4 && (s[i] < '0' || s[i] > '9')) return 0;
    int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int month = (s[5] - '0') * 10 + (s[6] - '0');
    return year >= 2000 && month >= 1 && month <= 12;
}

void policy_charge(int gpus, int cpus, int time_minutes, int weight_milli, int64_t elapsed_s,
                   int64_t *gpu_s, int64_t *cpu_s)
{
    policy_charge_runs(gpus, cpus, time_minutes, 1, weight_milli, elapsed_s, gpu_s, cpu_s);
}

void policy_charge_runs(int gpus, int cpus, int time_minutes, int runs, int weight_milli,
                        int64_t elapsed_s, int64_t *gpu_s, int64_t *cpu_s)
{
    /* never charge beyond the hold of each run: Slurm may let a job overrun its limit
     * (OverTimeLimit) */
    int64_t limit = (int64_t)time_minutes * 60 * (runs < 1 ? 1 : runs);
    int64_t elapsed = elapsed_s < 0 ? 0 : elapsed_s > limit ? limit : elapsed_s;
    if (gpu_s) *gpu_s = policy_cost(gpus, elapsed, weight_milli);
    if (cpu_s) *cpu_s = cpu_cost(cpus, elapsed);
}

int64_t policy_cost(int gpus, int64_t seconds, int weight_milli)
{
    if (gpus <= 0 || seconds <= 0 || weight_milli <= 0) return 0;
    __extension__ typedef unsigned __int128 u128;
    u128 prod = (u128)(uint64_t)gpus * (u128)(uint64_t)seconds * (u128)(uint64_t)weight_milli;
    u128 cost = (prod + 999) / 1000;
    return cost > (u128)INT64_MAX ? INT64_MAX : (int64_t)cost;
}

int policy_gpu_weight(const policy *p, const char *gpu_type)
{
    if (p == NULL) return -1;
    if (gpu_type == NULL || gpu_type[0] == '\0') return p->cfg.gpu_types[0].weight_milli;
    for (size_t i = 0; i < p->cfg.n_gpu_types; i++)
        if (strcmp(gpu_type, p->cfg.gpu_types[i].name) == 0)
            return p->cfg.gpu_types[i].weight_milli;
    return -1;
}

/* ---- lookups ---- */

/* Binary search in an array of pointers to structs whose first member is their name: returns the
 * index of `name`, or the index where it would go with *found false. */
static size_t name_search(void *const *arr, size_t n, const char *name, bool *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp((const char *)arr[mid], name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static struct ppartner *partner_find(const policy *p, const char *name)
{
    bool found;
    size_t i = name_search((void *const *)p->partners, p->n_partners, name, &found);
    return found ? p->partners[i] : NULL;
}

static struct puser *user_find(const policy *p, const char *name)
{
    bool found;
    size_t i = name_search((void *const *)p->users, p->n_users, name, &found);
    return found ? p->users[i] : NULL;
}

static struct pperiod *period_find(const struct ppartner *pa, const char *period)
{
    bool found;
    size_t i = name_search((void *const *)pa->periods, pa->n_periods, period, &found);
    return found ? pa->periods[i] : NULL;
}

/* The entry of (pa, period), created empty (no quota set) if missing. Returns NULL on no memory;
 * an empty entry is indistinguishable from a missing one. */
static struct pperiod *period_get(struct ppartner *pa, const char *period)
{
    bool found;
    size_t i = name_search((void *const *)pa->periods, pa->n_periods, period, &found);
    if (found) return pa->periods[i];
    if (pa->n_periods == pa->cap_periods) {
        size_t ncap = pa->cap_periods ? 2 * pa->cap_periods : 4;
        struct pperiod **np = realloc(pa->periods, ncap * sizeof *np);
        if (np == NULL) return NULL;
        pa->periods = np;
        pa->cap_periods = ncap;
    }
    struct pperiod *e = calloc(1, sizeof *e);
    if (e == NULL) return NULL;
    memcpy(e->period, period, PERIOD_LEN + 1);
    policy_quota_none(&e->q);
    memmove(&pa->periods[i + 1], &pa->periods[i], (pa->n_periods - i) * sizeof *pa->periods);
    pa->periods[i] = e;
    pa->n_periods++;
    return e;
}

/* The quota in force for an entry (none when never set). */
static policy_quota quota_of(const struct pperiod *e)
{
    policy_quota q;
    if (e != NULL && e->set) return e->q;
    policy_quota_none(&q);
    return q;
}

/* budget - used - held (the amount left; may be negative after a budget cut). */
static int64_t left_of(int64_t budget, int64_t used, int64_t held)
{
    return sat_sub(sat_sub(budget, used), held);
}

/* ---- the job table (open addressing, linear probing, backward-shift deletion) ---- */

static size_t job_home(const policy *p, int64_t id)
{
    uint64_t x = (uint64_t)id + 0x9e3779b97f4a7c15ULL; /* splitmix64's finaliser */
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return (size_t)x & (p->jcap - 1);
}

static struct pjob *job_find(const policy *p, int64_t id)
{
    if (p->jcap == 0) return NULL;
    for (size_t i = job_home(p, id);; i = (i + 1) & (p->jcap - 1)) {
        if (p->jobs[i] == NULL) return NULL;
        if (p->jobs[i]->id == id) return p->jobs[i];
    }
}

static void job_table_put(policy *p, struct pjob *j)
{
    size_t i = job_home(p, j->id);
    while (p->jobs[i] != NULL)
        i = (i + 1) & (p->jcap - 1);
    p->jobs[i] = j;
}

/* Makes room for `n` jobs. Returns 0 or -ENOMEM (table unchanged). */
static int job_table_reserve(policy *p, size_t n)
{
    if (n <= p->jcap / 2) return 0;
    size_t ncap = p->jcap ? p->jcap : 64;
    while (ncap / 2 < n)
        ncap *= 2;
    struct pjob **nj = calloc(ncap, sizeof *nj);
    if (nj == NULL) return -ENOMEM;
    struct pjob **old = p->jobs;
    size_t ocap = p->jcap;
    p->jobs = nj;
    p->jcap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i] != NULL) job_table_put(p, old[i]);
    free(old);
    return 0;
}

static void job_table_del(policy *p, const struct pjob *j)
{
    size_t mask = p->jcap - 1;
    size_t i = job_home(p, j->id);
    while (p->jobs[i] != j)
        i = (i + 1) & mask;
    p->jobs[i] = NULL;
    /* shift back every following entry of the run whose home is not in (i, k] */
    for (size_t k = (i + 1) & mask; p->jobs[k] != NULL; k = (k + 1) & mask) {
        size_t h = job_home(p, p->jobs[k]->id);
        bool in_range = i <= k ? (i < h && h <= k) : (i < h || h <= k);
        if (!in_range) {
            p->jobs[i] = p->jobs[k];
            p->jobs[k] = NULL;
            i = k;
        }
    }
}

/* ---- arrays with a %max (see struct parray) ---- */

static void user_rekey(policy *p, struct puser *u);

static bool task_before(const void *a, const void *b)
{
    return ((const struct pjob *)a)->id < ((const struct pjob *)b)->id;
}

static void task_moved(void *item, size_t index)
{
    ((struct pjob *)item)->aslot = index;
}

static size_t array_home(size_t cap, int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9e3779b97f4a7c15ULL;
    return (size_t)(x >> 32) & (cap - 1);
}

static struct parray *array_find(const policy *p, int64_t id)
{
    if (p->acap == 0) return NULL;
    for (struct parray *a = p->arrays[array_home(p->acap, id)]; a; a = a->next)
        if (a->id == id) return a;
    return NULL;
}

/* The array `id` of user `u` with a %max of `max`, created when new, with room for one more
 * task. Returns NULL on no memory (nothing observable changed). */
static struct parray *array_get(policy *p, int64_t id, int max, struct puser *u)
{
    struct parray *a = array_find(p, id);
    if (a == NULL) {
        if (p->n_arrays + 1 > p->acap) {
            size_t ncap = p->acap ? 2 * p->acap : 16;
            struct parray **nb = calloc(ncap, sizeof *nb);
            if (nb == NULL) return NULL;
            for (size_t i = 0; i < p->acap; i++)
                for (struct parray *x = p->arrays[i], *next; x; x = next) {
                    next = x->next;
                    size_t h = array_home(ncap, x->id);
                    x->next = nb[h];
                    nb[h] = x;
                }
            free(p->arrays);
            p->arrays = nb;
            p->acap = ncap;
        }
        a = calloc(1, sizeof *a);
        if (a == NULL) return NULL;
        a->id = id;
        a->max = max;
        a->user = u;
        heap_init(&a->queued, task_before, task_moved);
        size_t h = array_home(p->acap, id);
        a->next = p->arrays[h];
        p->arrays[h] = a;
        p->n_arrays++;
    }
    if (heap_reserve(&a->queued, a->refs + 1) < 0) return NULL; /* an empty new one stays */
    return a;
}

static void array_free(policy *p, struct parray *a)
{
    struct parray **pp = &p->arrays[array_home(p->acap, a->id)];
    while (*pp != a)
        pp = &(*pp)->next;
    *pp = a->next;
    p->n_arrays--;
    heap_close(&a->queued);
    free(a);
}

/* Puts the array's first queued task in its user's queue when fewer than max of its tasks are in
 * Slurm, and takes it out otherwise. O(log n). Never allocates (room reserved at enqueue). */
static void array_gate(policy *p, struct parray *a)
{
    struct pjob *top = heap_top(&a->queued);
    bool open = top != NULL && a->active < a->max;
    if (a->rep != NULL && (!open || a->rep != top)) {
        heap_remove(&a->rep->user->queue, a->rep->slot);
        user_rekey(p, a->rep->user);
        a->rep = NULL;
    }
    if (open && a->rep == NULL) {
        heap_push(&top->user->queue, top);
        a->rep = top;
        user_rekey(p, top->user);
    }
}

/* ---- priority ---- */

static double age_rate(const policy *p)
{
    return (double)p->cfg.weight_age / (3600.0 * p->cfg.age_unit_hours);
}

static double size_term(const policy *p, int gpus)
{
    return (double)p->cfg.weight_size * gpus / p->cfg.max_gpus_per_job;
}

static double cat_term(const policy *p, policy_category c)
{
    return (double)p->cfg.weight_category * p->cfg.category_factor_milli[c] / 1000.0;
}

static double job_key(const policy *p, int gpus, int64_t submitted_at)
{
    return size_term(p, gpus) - age_rate(p) * (double)submitted_at;
}

static double priority_of(const policy *p, const struct puser *u, int gpus, int64_t submitted_at,
                          int64_t now)
{
    return u->partner->fs_term + cat_term(p, u->cat) + age_rate(p) * (double)(now - submitted_at) +
           size_term(p, gpus);
}

/* Jobs of one user: higher key first, then lower id. */
static bool job_before(const void *a, const void *b)
{
    const struct pjob *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key;
    return x->id < y->id;
}

static void job_moved(void *item, size_t index)
{
    ((struct pjob *)item)->slot = index;
}

/* Users: higher key first, then the lower id of their top job. */
static bool user_before(const void *a, const void *b)
{
    const struct puser *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key;
    return ((const struct pjob *)heap_top(&x->queue))->id <
           ((const struct pjob *)heap_top(&y->queue))->id;
}

static void user_moved(void *item, size_t index)
{
    ((struct puser *)item)->slot = index;
}

static double user_key(const policy *p, const struct puser *u)
{
    const struct pjob *top = heap_top(&u->queue);
    return u->partner->fs_term + cat_term(p, u->cat) + top->key;
}

/* Puts `u` in, out of, or at its place in the heap of users after its queue or key changed.
 * Never allocates (users_q has room for every user). */
static void user_rekey(policy *p, struct puser *u)
{
    if (heap_len(&u->queue) == 0) {
        if (u->slot != HEAP_NONE) heap_remove(&p->users_q, u->slot);
        return;
    }
    u->key = user_key(p, u);
    if (u->slot == HEAP_NONE)
        heap_push(&p->users_q, u);
    else
        heap_fix(&p->users_q, u->slot);
}

/* Recomputes every partner's fair-share term and re-keys every user with queued jobs. */
static void fairshare_update(policy *p)
{
    double u_total = 0, w_total = 0;
    for (size_t i = 0; i < p->n_partners; i++) {
        u_total += p->partners[i]->usage;
        w_total += p->partners[i]->weight;
    }
    for (size_t i = 0; i < p->n_partners; i++) {
        struct ppartner *pa = p->partners[i];
        double f = 1.0;
        if (u_total > 0) f = pow2(-(pa->usage / u_total) / ((double)pa->weight / w_total));
        pa->fs_term = p->cfg.weight_fairshare * f;
    }
    for (size_t i = 0; i < heap_len(&p->users_q); i++) {
        struct puser *u = heap_at(&p->users_q, i);
        u->key = user_key(p, u);
    }
    heap_rebuild(&p->users_q);
}

/* Adds `amount` to a partner's fair-share usage at time `at` (see the top of the file). */
static void usage_add(policy *p, struct ppartner *pa, int64_t amount, int64_t at)
{
    double halflife = p->cfg.fairshare_halflife_hours * 3600.0;
    if (amount <= 0) return;
    if (!p->usage_ref_set) {
        p->usage_ref = at;
        p->usage_ref_set = true;
    }
    double e = (double)(at - p->usage_ref) / halflife;
    if (e > 64) {
        for (size_t i = 0; i < p->n_partners; i++)
            p->partners[i]->usage *= pow2(-e);
        p->usage_ref = at;
        e = 0;
    }
    pa->usage += (double)amount * pow2(e);
}

/* ---- limits ---- */

/* The first limit that keeps a job of `u` (asking `gpus` and holds) from going now, given the
 * entry of the current period, or NULL. Partner caps, then the user's cap, then the budgets. */
static const char *blocked_by(const struct pperiod *e, const struct ppartner *pa,
                              const struct puser *u, int gpus, int64_t hold_gpu, int64_t hold_cpu)
{
    policy_quota q = quota_of(e);
    int64_t used_gpu = e ? e->used_gpu : 0, held_gpu = e ? e->held_gpu : 0;
    int64_t used_cpu = e ? e->used_cpu : 0, held_cpu = e ? e->held_cpu : 0;
    bool gpu_lim = q.gpu_seconds != POLICY_UNLIMITED, cpu_lim = q.cpu_seconds != POLICY_UNLIMITED;

    if (q.max_running_jobs != POLICY_UNLIMITED && pa->jobs_in_slurm >= q.max_running_jobs)
        return POLICY_REASON_PARTNER_JOBS;
    if (q.max_gpus != POLICY_UNLIMITED && pa->gpus_in_slurm + gpus > q.max_gpus)
        return POLICY_REASON_PARTNER_GPU;
    if (q.user_max_gpus != POLICY_UNLIMITED && u->gpus_in_slurm + gpus > q.user_max_gpus)
        return POLICY_REASON_USER_GPU;
    if ((gpu_lim && hold_gpu > sat_sub(q.gpu_seconds, used_gpu)) ||
        (cpu_lim && hold_cpu > sat_sub(q.cpu_seconds, used_cpu)))
        return POLICY_REASON_BUDGET_EXHAUSTED;
    if ((gpu_lim && hold_gpu > left_of(q.gpu_seconds, used_gpu, held_gpu)) ||
        (cpu_lim && hold_cpu > left_of(q.cpu_seconds, used_cpu, held_cpu)))
        return POLICY_REASON_BUDGET_HELD;
    return NULL;
}

static int64_t job_hold_gpu(const struct pjob *j)
{
    return policy_cost(j->gpus, (int64_t)j->time_minutes * 60, j->weight_milli);
}

static int64_t job_hold_cpu(const struct pjob *j)
{
    return cpu_cost(j->cpus, (int64_t)j->time_minutes * 60);
}

/* Why queued job `j` cannot go in period `cur` (ignoring the window and the queue), or NULL. */
static const char *job_blocked(const struct pjob *j, const char *cur)
{
    const struct ppartner *pa = j->user->partner;
    return blocked_by(period_find(pa, cur), pa, j->user, j->gpus, job_hold_gpu(j), job_hold_cpu(j));
}

int policy_window_set(policy *p, int window)
{
    if (p == NULL || window <= 0) return -EINVAL;
    p->cfg.cluster_window = window;
    return 0;
}

int policy_window(const policy *p)
{
    return p ? p->cfg.cluster_window : 0;
}

static bool window_full(const policy *p)
{
    return p->pending >= p->cfg.cluster_window;
}

/* ---- engine lifecycle ---- */

static int config_check(const policy_config *c, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (c->n_gpu_types < 1 || c->n_gpu_types > POLICY_GPU_TYPES_MAX) bad = "n_gpu_types";
    for (size_t i = 0; bad == NULL && i < c->n_gpu_types; i++) {
        if (!name_ok(c->gpu_types[i].name, sizeof c->gpu_types[i].name))
            bad = "gpu_types (a name is empty or too long)";
        else if (c->gpu_types[i].weight_milli <= 0)
            bad = "gpu_weights (a weight is not above 0)";
        for (size_t k = 0; bad == NULL && k < i; k++)
            if (strcmp(c->gpu_types[i].name, c->gpu_types[k].name) == 0)
                bad = "gpu_types (a name appears twice)";
    }
    if (bad == NULL && !(c->fairshare_halflife_hours > 0 && isfinite(c->fairshare_halflife_hours)))
        bad = "fairshare_halflife_hours";
    if (bad == NULL && c->weight_fairshare < 0) bad = "priority_weight_fairshare";
    if (bad == NULL && c->weight_category < 0) bad = "priority_weight_category";
    if (bad == NULL && c->weight_age < 0) bad = "priority_weight_age";
    if (bad == NULL && c->weight_size < 0) bad = "priority_weight_size";
    for (int i = 0; bad == NULL && i < POLICY_CAT_COUNT; i++)
        if (c->category_factor_milli[i] < 0 || c->category_factor_milli[i] > 1000)
            bad = "category_factors";
    if (bad == NULL && !(c->age_unit_hours > 0 && isfinite(c->age_unit_hours)))
        bad = "priority_age_unit_hours";
    if (bad == NULL && c->max_gpus_per_job <= 0) bad = "max_gpus_per_job";
    if (bad == NULL && c->cluster_window <= 0) bad = "cluster_window";
    if (bad == NULL) return 0;
    if (err != NULL && errlen > 0) snprintf(err, errlen, "policy config: bad %s", bad);
    return -EINVAL;
}

policy *policy_new(const policy_config *cfg, char *err, size_t errlen)
{
    if (cfg == NULL) {
        if (err != NULL && errlen > 0) snprintf(err, errlen, "policy config: missing");
        return NULL;
    }
    if (config_check(cfg, err, errlen) < 0) return NULL;
    policy *p = calloc(1, sizeof *p);
    if (p == NULL) {
        if (err != NULL && errlen > 0) snprintf(err, errlen, "policy engine: out of memory");
        return NULL;
    }
    p->cfg = *cfg;
    heap_init(&p->users_q, user_before, user_moved);
    return p;
}

static void job_free(struct pjob *j)
{
    free(j);
}

void policy_free(policy *p)
{
    if (p == NULL) return;
    for (size_t i = 0; i < p->jcap; i++)
        job_free(p->jobs[i]);
    free(p->jobs);
    for (size_t i = 0; i < p->acap; i++)
        for (struct parray *a = p->arrays[i], *next; a; a = next) {
            next = a->next;
            heap_close(&a->queued);
            free(a);
        }
    free(p->arrays);
    for (size_t i = 0; i < p->n_users; i++) {
        heap_close(&p->users[i]->queue);
        free(p->users[i]);
    }
    free(p->users);
    for (size_t i = 0; i < p->n_partners; i++) {
        for (size_t k = 0; k < p->partners[i]->n_periods; k++)
            free(p->partners[i]->periods[k]);
        free(p->partners[i]->periods);
        free(p->partners[i]);
    }
    free(p->partners);
    heap_close(&p->users_q);
    free(p->aside);
    free(p);
}

/* ---- partners, users, quotas, ledger ---- */

int policy_partner_set(policy *p, const char *name, int share_weight)
{
    if (p == NULL || !name_ok(name, POLICY_NAME_MAX) || share_weight < 1) return -EINVAL;
    bool found;
    size_t i = name_search((void *const *)p->partners, p->n_partners, name, &found);
    if (found) {
        p->partners[i]->weight = share_weight;
        fairshare_update(p);
        return 0;
    }
    if (p->n_partners == p->cap_partners) {
        size_t ncap = p->cap_partners ? 2 * p->cap_partners : 8;
        struct ppartner **np = realloc(p->partners, ncap * sizeof *np);
        if (np == NULL) return -ENOMEM;
        p->partners = np;
        p->cap_partners = ncap;
    }
    struct ppartner *pa = calloc(1, sizeof *pa);
    if (pa == NULL) return -ENOMEM;
    snprintf(pa->name, sizeof pa->name, "%s", name);
    pa->weight = share_weight;
    memmove(&p->partners[i + 1], &p->partners[i], (p->n_partners - i) * sizeof *p->partners);
    p->partners[i] = pa;
    p->n_partners++;
    fairshare_update(p);
    return 0;
}

/* Moves `u` (and its queued jobs) to partner `to`; its jobs in Slurm keep counting against the
 * partner they were dispatched for. */
static void user_move(policy *p, struct puser *u, struct ppartner *to, policy_category cat)
{
    for (size_t i = 0; i < heap_len(&u->queue); i++) {
        struct pjob *j = heap_at(&u->queue, i);
        rank_remove(&j->partner->ranked[u->cat], &j->rk);
        j->partner->queued--;
        to->queued++;
        j->partner = to;
        rank_insert(&to->ranked[cat], &j->rk, j->key, j->id);
    }
    /* the parked tasks of its arrays (O(arrays): a move is rare) */
    for (size_t b = 0; b < p->acap; b++)
        for (struct parray *a = p->arrays[b]; a; a = a->next) {
            if (a->user != u) continue;
            for (size_t i = 0; i < heap_len(&a->queued); i++) {
                struct pjob *j = heap_at(&a->queued, i);
                if (j == a->rep) continue; /* moved above, with u's queue */
                rank_remove(&j->partner->ranked[u->cat], &j->rk);
                j->partner->queued--;
                to->queued++;
                j->partner = to;
                rank_insert(&to->ranked[cat], &j->rk, j->key, j->id);
            }
        }
    u->partner = to;
    u->cat = cat;
    user_rekey(p, u);
}

int policy_user_set(policy *p, const char *name, const char *partner, policy_category cat)
{
    if (p == NULL || !name_ok(name, POLICY_NAME_MAX) || partner == NULL || (int)cat < 0 ||
        cat >= POLICY_CAT_COUNT)
        return -EINVAL;
    struct ppartner *pa = partner_find(p, partner);
    if (pa == NULL) return -ENOENT;
    bool found;
    size_t i = name_search((void *const *)p->users, p->n_users, name, &found);
    if (found) {
        struct puser *u = p->users[i];
        if (u->partner != pa || u->cat != cat)
            user_move(p, u, pa, cat);
        else
            user_rekey(p, u);
        return 0;
    }
    /* room first, so that nothing changes on -ENOMEM */
    if (p->n_users == p->cap_users) {
        size_t ncap = p->cap_users ? 2 * p->cap_users : 16;
        struct puser **nu = realloc(p->users, ncap * sizeof *nu);
        if (nu == NULL) return -ENOMEM;
        p->users = nu;
        struct puser **na = realloc(p->aside, ncap * sizeof *na);
        if (na == NULL) return -ENOMEM;
        p->aside = na;
        p->cap_users = ncap;
    }
    if (heap_reserve(&p->users_q, p->n_users + 1) < 0) return -ENOMEM;
    struct puser *u = calloc(1, sizeof *u);
    if (u == NULL) return -ENOMEM;
    snprintf(u->name, sizeof u->name, "%s", name);
    u->partner = pa;
    u->cat = cat;
    u->slot = HEAP_NONE;
    heap_init(&u->queue, job_before, job_moved);
    memmove(&p->users[i + 1], &p->users[i], (p->n_users - i) * sizeof *p->users);
    p->users[i] = u;
    p->n_users++;
    return 0;
}

int policy_quota_set(policy *p, const char *partner, const char *period, const policy_quota *q)
{
    if (p == NULL || partner == NULL || q == NULL || !policy_period_valid(period) || !quota_ok(q))
        return -EINVAL;
    struct ppartner *pa = partner_find(p, partner);
    if (pa == NULL) return -ENOENT;
    struct pperiod *e = period_get(pa, period);
    if (e == NULL) return -ENOMEM;
    e->q = *q;
    e->set = true;
    return 0; /* pick and reasons read quotas live: nothing to re-key */
}

int policy_quota_get(const policy *p, const char *partner, const char *period, policy_quota *q,
                     int64_t *used_gpu_s, int64_t *held_gpu_s, int64_t *used_cpu_s,
                     int64_t *held_cpu_s)
{
    if (p == NULL || partner == NULL || !policy_period_valid(period)) return -ENOENT;
    const struct ppartner *pa = partner_find(p, partner);
    if (pa == NULL) return -ENOENT;
    const struct pperiod *e = period_find(pa, period);
    if (q != NULL) *q = quota_of(e);
    if (used_gpu_s != NULL) *used_gpu_s = e ? e->used_gpu : 0;
    if (held_gpu_s != NULL) *held_gpu_s = e ? e->held_gpu : 0;
    if (used_cpu_s != NULL) *used_cpu_s = e ? e->used_cpu : 0;
    if (held_cpu_s != NULL) *held_cpu_s = e ? e->held_cpu : 0;
    return 0;
}

int policy_usage_load(policy *p, const char *partner, const char *period, int64_t gpu_s,
                      int64_t cpu_s, int64_t at)
{
    if (p == NULL || partner == NULL || !policy_period_valid(period) || gpu_s < 0 || cpu_s < 0)
        return -EINVAL;
    struct ppartner *pa = partner_find(p, partner);
    if (pa == NULL) return -ENOENT;
    struct pperiod *e = period_get(pa, period);
    if (e == NULL) return -ENOMEM;
    e->used_gpu = sat_add(e->used_gpu, gpu_s);
    e->used_cpu = sat_add(e->used_cpu, cpu_s);
    if (gpu_s > 0) {
        usage_add(p, pa, gpu_s, at);
        fairshare_update(p);
    }
    return 0;
}

int policy_usage_adjust(policy *p, const char *partner, const char *period, int64_t gpu_delta,
                        int64_t cpu_delta)
{
    if (p == NULL || partner == NULL || !policy_period_valid(period)) return -EINVAL;
    struct ppartner *pa = partner_find(p, partner);
    if (pa == NULL) return -ENOENT;
    struct pperiod *e = period_get(pa, period);
    if (e == NULL) return -ENOMEM;
    e->used_gpu = gpu_delta < 0 && -gpu_delta > e->used_gpu ? 0 : sat_add(e->used_gpu, gpu_delta);
    e->used_cpu = cpu_delta < 0 && -cpu_delta > e->used_cpu ? 0 : sat_add(e->used_cpu, cpu_delta);
    return 0;
}

/* ---- admission ---- */

/* Fills a refusal. Returns 0 (policy_job_admit's result for any verdict). */
__attribute__((format(printf, 3, 4))) static int refuse(policy_verdict *v, const char *code,
                                                        const char *fmt, ...)
{
    va_list ap;
    v->admitted = false;
    snprintf(v->code, sizeof v->code, "%s", code);
    va_start(ap, fmt);
    vsnprintf(v->message, sizeof v->message, fmt, ap);
    va_end(ap);
    return 0;
}

static double hours(int64_t s)
{
    return (double)s / 3600.0;
}

/* Refuses a job whose cost (GPU or CPU, `what`) is over what is left. Returns 0. */
static int refuse_budget(policy_verdict *v, const char *code, const char *what,
                         const struct ppartner *pa, const struct pperiod *e, int64_t budget,
                         int64_t left, int64_t cost)
{
    if (e == NULL || !e->set)
        return refuse(v, code,
                      "%s has no %s budget set for %s (this job may cost up to %.2f %s-hours); "
                      "ask sustAIn.brussels staff to set one",
                      pa->name, what, v->period, hours(cost), what);
    return refuse(v, code,
                  "this job may cost up to %.2f %s-hours but %s has %.2f left of its %.2f "
                  "%s-hour budget for %s; ask for less time or fewer resources, or ask "
                  "sustAIn.brussels staff to raise the budget",
                  hours(cost), what, pa->name, hours(left > 0 ? left : 0), hours(budget), what,
                  v->period);
}

/* Refuses a whole array of `tasks` tasks whose cost together is over what is left. Returns 0. */
static int refuse_array_budget(policy_verdict *v, const char *code, const char *what,
                               const struct ppartner *pa, int64_t budget, int64_t left,
                               int64_t cost, int64_t tasks)
{
    return refuse(v, code,
                  "this array of %" PRId64 " tasks may cost up to %.2f %s-hours (%.2f per task) "
                  "but %s has %.2f left of its %.2f %s-hour budget for %s; nothing was queued: "
                  "ask for fewer tasks, less time or fewer resources, or ask sustAIn.brussels "
                  "staff to raise the budget",
                  tasks, hours(cost), what, hours(cost / tasks), pa->name,
                  hours(left > 0 ? left : 0), hours(budget), what, v->period);
}

/* Fills the quote of an admitted job: priority, queue position and wait reason. */
static void quote(const policy *p, const struct puser *u, const policy_job *j, int64_t hold_gpu,
                  int64_t hold_cpu, const struct pperiod *e, int64_t now, policy_verdict *v)
{
    const struct ppartner *pa = u->partner;
    double key = job_key(p, j->gpus, j->submitted_at);
    double full = pa->fs_term + cat_term(p, u->cat) + key;
    size_t ahead = 0;
    bool next = true;

    v->priority = priority_of(p, u, j->gpus, j->submitted_at, now);
    /* every queued job that ranks at or above it goes first (ties: the one queued earlier):
     * O(partners x categories x log jobs), the jobs of each partner and category ranked by key */
    for (size_t i = 0; i < p->n_partners; i++) {
        const struct ppartner *x = p->partners[i];
        for (int c = 0; c < POLICY_CAT_COUNT; c++) {
            double base = x->fs_term + cat_term(p, (policy_category)c);
            /* (a tie must count whatever the rounding of full - base: distinct priorities
             * differ by far more, one second of age being W_age / 86400 / age_unit) */
            ahead += rank_count_at_or_above(&x->ranked[c], full - base - 1e-6);
        }
    }
    v->queue_position = ahead + 1;

    char cur[8];
    policy_period_of(now, cur);
    const char *r = NULL;
    if (window_full(p))
        r = POLICY_REASON_CLUSTER_FULL;
    else
        r = blocked_by(e, pa, u, j->gpus, hold_gpu, hold_cpu);
    if (r == NULL) {
        /* it goes next unless its own user has a job ahead of it (blocked or not) or another
         * user's top job ranks above it and may go */
        const struct pjob *top = heap_top(&u->queue);
        if (top != NULL && top->key >= key) next = false;
        for (size_t i = 0; next && i < heap_len(&p->users_q); i++) {
            const struct puser *x = heap_at(&p->users_q, i);
            if (x != u && x->key >= full && job_blocked(heap_top(&x->queue), cur) == NULL)
                next = false;
        }
        r = next ? "" : POLICY_REASON_PRIORITY;
    }
    snprintf(v->wait_reason, sizeof v->wait_reason, "%s", r);
}

/* Admission; with `with_quote`, also the queue position, wait reason and priority (O(n)). */
static int admit(const policy *p, const policy_job *j, int64_t now, policy_verdict *v,
                 bool with_quote)
{
    if (p == NULL || j == NULL || v == NULL || !job_fields_ok(j)) return -EINVAL;
    memset(v, 0, sizeof *v);
    policy_period_of(now, v->period);

    const struct puser *u = user_find(p, j->user);
    if (u == NULL)
        return refuse(v, "unknown_user",
                      "there is no user \"%s\"; ask sustAIn.brussels staff to create it", j->user);
    const struct ppartner *pa = u->partner;
    if (pa == NULL) /* cannot happen: users always belong to a known partner */
        return refuse(v, "unknown_partner",
                      "user %s belongs to no known partner; ask sustAIn.brussels staff", u->name);

    int w = policy_gpu_weight(p, j->gpu_type);
    if (j->gpus > 0 && w < 0) {
        char types[POLICY_GPU_TYPES_MAX * 33] = "";
        size_t len = 0;
        for (size_t i = 0; i < p->cfg.n_gpu_types; i++)
            len += (size_t)snprintf(types + len, sizeof types - len, "%s%s", i ? ", " : "",
                                    p->cfg.gpu_types[i].name);
        return refuse(v, "unknown_gpu_type",
                      "this site has no GPU type \"%s\"; ask for one of: %s (or no type)",
                      j->gpu_type, types);
    }
    if (w < 0) w = p->cfg.gpu_types[0].weight_milli; /* no GPU: the cost is 0 anyway */

    int64_t seconds = (int64_t)j->time_minutes * 60;
    int64_t task_gpu = policy_cost(j->gpus, seconds, w);
    int64_t task_cpu = cpu_cost(j->cpus, seconds);
    /* an array is admitted as a whole: every task's hold must fit the budget together */
    int64_t tasks = j->array_tasks > 1 ? j->array_tasks : 1;
    int64_t cost_gpu = sat_mul(task_gpu, tasks), cost_cpu = sat_mul(task_cpu, tasks);
    const struct pperiod *e = period_find(pa, v->period);
    policy_quota q = quota_of(e);
    int64_t left_gpu = left_of(q.gpu_seconds, e ? e->used_gpu : 0, e ? e->held_gpu : 0);
    int64_t left_cpu = left_of(q.cpu_seconds, e ? e->used_cpu : 0, e ? e->held_cpu : 0);
    bool gpu_unl = q.gpu_seconds == POLICY_UNLIMITED, cpu_unl = q.cpu_seconds == POLICY_UNLIMITED;
    v->max_cost_gpu_seconds = cost_gpu;
    v->max_cost_cpu_seconds = cost_cpu;
    v->budget_left_gpu_seconds = gpu_unl ? POLICY_UNLIMITED : left_gpu;
    v->budget_left_after_gpu_seconds = gpu_unl ? POLICY_UNLIMITED : sat_sub(left_gpu, cost_gpu);

    if (q.max_walltime_minutes != POLICY_UNLIMITED && j->time_minutes > q.max_walltime_minutes)
        return refuse(v, "walltime_limit",
                      "%s's jobs may run at most %d minutes (this job asks %d); ask for less time "
                      "or ask sustAIn.brussels staff to raise the limit",
                      pa->name, q.max_walltime_minutes, j->time_minutes);
    if (q.max_gpus != POLICY_UNLIMITED && j->gpus > q.max_gpus)
        return refuse(v, "partner_gpu_limit",
                      "%s may run at most %d GPUs at once (this job asks %d); ask for fewer GPUs "
                      "or ask sustAIn.brussels staff to raise the cap",
                      pa->name, q.max_gpus, j->gpus);
    if (q.user_max_gpus != POLICY_UNLIMITED && j->gpus > q.user_max_gpus)
        return refuse(v, "user_gpu_limit",
                      "a user of %s may run at most %d GPUs at once (this job asks %d); ask for "
                      "fewer GPUs or ask sustAIn.brussels staff to raise the cap",
                      pa->name, q.user_max_gpus, j->gpus);
    if (q.max_queued_jobs != POLICY_UNLIMITED && tasks > 1 &&
        pa->queued + (size_t)tasks > (size_t)q.max_queued_jobs)
        return refuse(v, "queued_limit",
                      "%s may have at most %d jobs queued and has %zu; this array adds %" PRId64
                      " tasks: ask for fewer tasks, wait for some to start, cancel some, or ask "
                      "sustAIn.brussels staff to raise the cap",
                      pa->name, q.max_queued_jobs, pa->queued, tasks);
    if (q.max_queued_jobs != POLICY_UNLIMITED && pa->queued >= (size_t)q.max_queued_jobs)
        return refuse(v, "queued_limit",
                      "%s may have at most %d jobs queued and has %zu; wait for some to start, "
                      "cancel some, or ask sustAIn.brussels staff to raise the cap",
                      pa->name, q.max_queued_jobs, pa->queued);
    if (tasks > 1 && e != NULL && e->set && !gpu_unl && cost_gpu > left_gpu)
        return refuse_array_budget(v, "budget_exceeded", "GPU", pa, q.gpu_seconds, left_gpu,
                                   cost_gpu, tasks);
    if (tasks > 1 && e != NULL && e->set && !cpu_unl && cost_cpu > left_cpu)
        return refuse_array_budget(v, "cpu_budget_exceeded", "CPU", pa, q.cpu_seconds, left_cpu,
                                   cost_cpu, tasks);
    if (!gpu_unl && cost_gpu > left_gpu)
        return refuse_budget(v, "budget_exceeded", "GPU", pa, e, q.gpu_seconds, left_gpu, cost_gpu);
    if (!cpu_unl && cost_cpu > left_cpu)
        return refuse_budget(v, "cpu_budget_exceeded", "CPU", pa, e, q.cpu_seconds, left_cpu,
                             cost_cpu);

    v->admitted = true;
    if (with_quote) quote(p, u, j, task_gpu, task_cpu, e, now, v);
    return 0;
}

int policy_job_admit(const policy *p, const policy_job *j, int64_t now, policy_verdict *v)
{
    return admit(p, j, now, v, true);
}

int policy_job_check(const policy *p, const policy_job *j, int64_t now, policy_verdict *v)
{
    return admit(p, j, now, v, false);
}

/* ---- jobs ---- */

/* Puts `j` (not in Slurm) in its user's queue. Never allocates (room reserved at enqueue). */
static void queue_push(policy *p, struct pjob *j)
{
    struct puser *u = j->user;
    j->in_slurm = false;
    j->running = false;
    j->partner = u->partner;
    if (j->arr != NULL) /* its array's gate puts it in u's queue when its turn comes */
        heap_push(&j->arr->queued, j);
    else
        heap_push(&u->queue, j);
    rank_insert(&j->partner->ranked[u->cat], &j->rk, j->key, j->id);
    j->partner->queued++;
    p->n_queued++;
    if (j->arr == NULL) user_rekey(p, u);
}

/* Takes queued job `j` out of the heap it waits in (its array's, and its user's when it is the
 * array's first; else its user's) and out of its partner's ranking. The caller gates its array. */
static void queue_out(struct pjob *j)
{
    if (j->arr != NULL) {
        heap_remove(&j->arr->queued, j->aslot);
        if (j->arr->rep == j) {
            heap_remove(&j->user->queue, j->slot);
            j->arr->rep = NULL;
        }
    } else {
        heap_remove(&j->user->queue, j->slot);
    }
    rank_remove(&j->partner->ranked[j->user->cat], &j->rk);
}

/* Takes queued job `j` out of its user's queue. */
static void queue_take(policy *p, struct pjob *j)
{
    if (!j->dep_held) queue_out(j);
    j->dep_held = false;
    j->partner->queued--;
    p->n_queued--;
    user_rekey(p, j->user);
}

/* Counts `j` as in Slurm with its hold in entry `e` (may be NULL when both holds are 0). */
static void slurm_add(policy *p, struct pjob *j, struct pperiod *e, const char *period,
                      int64_t hold_gpu, int64_t hold_cpu, bool running)
{
    j->in_slurm = true;
    j->running = running;
    j->partner = j->user->partner;
    j->partner->jobs_in_slurm++;
    j->partner->gpus_in_slurm += j->gpus;
    j->user->gpus_in_slurm += j->gpus;
    if (j->arr != NULL) j->arr->active++;
    if (running) j->partner->gpus_running += j->gpus;
    if (!running) p->pending++;
    memcpy(j->period, period, PERIOD_LEN + 1);
    j->per = e;
    j->hold_gpu = hold_gpu;
    j->hold_cpu = hold_cpu;
    if (e != NULL) {
        e->held_gpu = sat_add(e->held_gpu, hold_gpu);
        e->held_cpu = sat_add(e->held_cpu, hold_cpu);
    }
}

/* Stops counting `j` as in Slurm and releases its hold. */
static void slurm_remove(policy *p, struct pjob *j)
{
    j->partner->jobs_in_slurm--;
    j->partner->gpus_in_slurm -= j->gpus;
    j->user->gpus_in_slurm -= j->gpus;
    if (j->arr != NULL) j->arr->active--;
    if (j->running) j->partner->gpus_running -= j->gpus;
    if (!j->running) p->pending--;
    if (j->per != NULL) {
        j->per->held_gpu = sat_sub(j->per->held_gpu, j->hold_gpu);
        j->per->held_cpu = sat_sub(j->per->held_cpu, j->hold_cpu);
    }
    j->in_slurm = false;
    j->running = false;
    j->hold_gpu = 0;
    j->hold_cpu = 0;
}

/* Allocates a job record for `src` of user `u` and reserves room for it everywhere. Returns NULL
 * on no memory (nothing observable changed). */
static struct pjob *job_new(policy *p, struct puser *u, const policy_job *src)
{
    if (job_table_reserve(p, p->n_jobs + 1) < 0) return NULL;
    if (heap_reserve(&u->queue, u->n_jobs + 1) < 0) return NULL;
    struct parray *arr = NULL;
    if (src->array_id > 0 && src->array_max > 0) {
        arr = array_get(p, src->array_id, src->array_max, u);
        if (arr == NULL) return NULL;
    }
    struct pjob *j = calloc(1, sizeof *j);
    if (j == NULL) {
        if (arr != NULL && arr->refs == 0) array_free(p, arr);
        return NULL;
    }
    j->arr = arr;
    j->aslot = HEAP_NONE;
    if (arr != NULL) arr->refs++;
    int w = policy_gpu_weight(p, src->gpu_type);
    j->id = src->id;
    j->user = u;
    j->partner = u->partner;
    j->gpus = src->gpus;
    j->cpus = src->cpus;
    j->time_minutes = src->time_minutes;
    j->weight_milli = w < 0 ? 1000 : w; /* a type the config lost: neutral weight */
    j->submitted_at = src->submitted_at;
    j->key = job_key(p, src->gpus, src->submitted_at);
    j->slot = HEAP_NONE;
    return j;
}

static void job_insert(policy *p, struct pjob *j)
{
    job_table_put(p, j);
    p->n_jobs++;
    j->user->n_jobs++;
}

/* Forgets `j` (out of every queue and of Slurm's counts); its array lets its next task go, or is
 * freed with its last task. */
static void job_delete(policy *p, struct pjob *j)
{
    struct parray *a = j->arr;
    job_table_del(p, j);
    p->n_jobs--;
    j->user->n_jobs--;
    job_free(j);
    if (a != NULL) {
        if (--a->refs == 0)
            array_free(p, a);
        else
            array_gate(p, a);
    }
}

int policy_job_enqueue(policy *p, const policy_job *j)
{
    if (p == NULL || j == NULL || !job_fields_ok(j)) return -EINVAL;
    if (job_find(p, j->id) != NULL) return -EEXIST;
    struct puser *u = user_find(p, j->user);
    if (u == NULL) return -ENOENT;
    struct pjob *job = job_new(p, u, j);
    if (job == NULL) return -ENOMEM;
    job_insert(p, job);
    queue_push(p, job);
    if (job->arr != NULL) array_gate(p, job->arr);
    return 0;
}

int policy_job_dequeue(policy *p, int64_t id)
{
    if (p == NULL) return -ENOENT;
    struct pjob *j = job_find(p, id);
    if (j == NULL || j->in_slurm) return -ENOENT;
    queue_take(p, j);
    job_delete(p, j);
    return 0;
}

int policy_pick(policy *p, int64_t now, int64_t *id, int64_t *hold_gpu_s, int64_t *hold_cpu_s,
                char period[8])
{
    if (p == NULL || window_full(p)) return -ENOENT;
    char cur[8];
    policy_period_of(now, cur);
    struct puser *u;
    struct pjob *found = NULL;
    size_t n_aside = 0;
    /* a user whose top job may not go is set aside (its other jobs wait behind it) */
    while ((u = heap_top(&p->users_q)) != NULL) {
        struct pjob *top = heap_top(&u->queue);
        if (job_blocked(top, cur) == NULL) {
            found = top;
            break;
        }
        p->aside[n_aside++] = heap_pop(&p->users_q);
    }
    while (n_aside > 0)
        heap_push(&p->users_q, p->aside[--n_aside]); /* room reserved */
    if (found == NULL) return -ENOENT;
    if (id != NULL) *id = found->id;
    if (hold_gpu_s != NULL) *hold_gpu_s = job_hold_gpu(found);
    if (hold_cpu_s != NULL) *hold_cpu_s = job_hold_cpu(found);
    if (period != NULL) memcpy(period, cur, sizeof cur);
    return 0;
}

int policy_job_dispatched(policy *p, int64_t id, int64_t now)
{
    if (p == NULL) return -ENOENT;
    struct pjob *j = job_find(p, id);
    if (j == NULL || j->in_slurm || j->dep_held) return -ENOENT;
    char cur[8];
    policy_period_of(now, cur);
    struct pperiod *e = period_find(j->partner, cur);
    policy_quota q = quota_of(e);
    int64_t hold_gpu = job_hold_gpu(j), hold_cpu = job_hold_cpu(j);
    if ((q.gpu_seconds != POLICY_UNLIMITED &&
         hold_gpu > left_of(q.gpu_seconds, e ? e->used_gpu : 0, e ? e->held_gpu : 0)) ||
        (q.cpu_seconds != POLICY_UNLIMITED &&
         hold_cpu > left_of(q.cpu_seconds, e ? e->used_cpu : 0, e ? e->held_cpu : 0)))
        return -EDQUOT;
    /* No entry means no quota was set: the GPU budget is 0 (so the GPU hold is 0) but the CPU
     * budget is unlimited, so a CPU hold may need an entry to live in. */
    if (e == NULL && (hold_gpu > 0 || hold_cpu > 0)) {
        e = period_get(j->partner, cur);
        if (e == NULL) return -ENOMEM;
    }
    queue_take(p, j);
    slurm_add(p, j, e, cur, hold_gpu, hold_cpu, false);
    if (j->arr != NULL) array_gate(p, j->arr);
    return 0;
}

int policy_job_requeue(policy *p, int64_t id)
{
    if (p == NULL) return -ENOENT;
    struct pjob *j = job_find(p, id);
    if (j == NULL || !j->in_slurm) return -ENOENT;
    slurm_remove(p, j);
    queue_push(p, j);
    if (j->arr != NULL) array_gate(p, j->arr);
    return 0;
}

int policy_job_restore(policy *p, const policy_job *j, bool running, const char *period,
                       int64_t hold_gpu_s, int64_t hold_cpu_s)
{
    if (p == NULL || j == NULL || !job_fields_ok(j) || !policy_period_valid(period) ||
        hold_gpu_s < 0 || hold_cpu_s < 0)
        return -EINVAL;
    if (job_find(p, j->id) != NULL) return -EEXIST;
    struct puser *u = user_find(p, j->user);
    if (u == NULL) return -ENOENT;
    struct pperiod *e = period_get(u->partner, period);
    if (e == NULL) return -ENOMEM;
    struct pjob *job = job_new(p, u, j);
    if (job == NULL) return -ENOMEM;
    job_insert(p, job);
    slurm_add(p, job, e, period, hold_gpu_s, hold_cpu_s, running);
    if (job->arr != NULL) array_gate(p, job->arr); /* its queued siblings may wait for it now */
    return 0;
}

int policy_job_started(policy *p, int64_t id)
{
    if (p == NULL) return -ENOENT;
    struct pjob *j = job_find(p, id);
    if (j == NULL || !j->in_slurm) return -ENOENT;
    if (!j->running) {
        j->running = true;
        j->partner->gpus_running += j->gpus;
        p->pending--;
    }
    return 0;
}

int policy_job_finished(policy *p, int64_t id, int64_t elapsed_s, int64_t now,
                        int64_t *charge_gpu_s, int64_t *charge_cpu_s, char period[8])
{
    if (p == NULL) return -ENOENT;
    struct pjob *j = job_find(p, id);
    if (j == NULL || !j->in_slurm) return -ENOENT;
    int64_t cg, cc;
    policy_charge(j->gpus, j->cpus, j->time_minutes, j->weight_milli, elapsed_s, &cg, &cc);
    struct ppartner *pa = j->partner;
    struct pperiod *e = j->per;
    slurm_remove(p, j);
    if (e == NULL && (cg > 0 || cc > 0)) e = period_get(pa, j->period); /* cannot happen */
    if (e != NULL) {
        e->used_gpu = sat_add(e->used_gpu, cg);
        e->used_cpu = sat_add(e->used_cpu, cc);
    }
    if (cg > 0) {
        usage_add(p, pa, cg, now);
        fairshare_update(p);
    }
    if (charge_gpu_s != NULL) *charge_gpu_s = cg;
    if (charge_cpu_s != NULL) *charge_cpu_s = cc;
    if (period != NULL) memcpy(period, j->period, PERIOD_LEN + 1);
    job_delete(p, j);
    return 0;
}

int policy_job_run_ended(policy *p, int64_t id, int64_t elapsed_s, int runs, int64_t now,
                         int64_t *charge_gpu_s, int64_t *charge_cpu_s, bool *over_budget)
{
    if (p == NULL) return -ENOENT;
    if (runs < 1) return -EINVAL;
    struct pjob *j = job_find(p, id);
    if (j == NULL || !j->in_slurm) return -ENOENT;
    int64_t cg, cc;
    policy_charge_runs(j->gpus, j->cpus, j->time_minutes, runs, j->weight_milli, elapsed_s, &cg,
                       &cc);
    struct pperiod *e = j->per;
    if (e == NULL && (cg > 0 || cc > 0)) {
        e = period_get(j->partner, j->period);
        if (e == NULL) return -ENOMEM;
        j->per = e;
    }
    bool over = false;
    if (e != NULL) {
        e->used_gpu = sat_add(e->used_gpu, cg);
        e->used_cpu = sat_add(e->used_cpu, cc);
        policy_quota q = quota_of(e);
        over = (q.gpu_seconds != POLICY_UNLIMITED &&
                left_of(q.gpu_seconds, e->used_gpu, e->held_gpu) < 0) ||
               (q.cpu_seconds != POLICY_UNLIMITED &&
                left_of(q.cpu_seconds, e->used_cpu, e->held_cpu) < 0);
    }
    if (cg > 0) {
        usage_add(p, j->partner, cg, now);
        fairshare_update(p);
    }
    if (j->running) { /* waiting in Slurm again, until it starts over */
        j->running = false;
        j->partner->gpus_running -= j->gpus;
        p->pending++;
    }
    if (charge_gpu_s != NULL) *charge_gpu_s = cg;
    if (charge_cpu_s != NULL) *charge_cpu_s = cc;
    if (over_budget != NULL) *over_budget = over;
    return 0;
}

const char *policy_job_reason(const policy *p, int64_t id, int64_t now)
{
    if (p == NULL) return NULL;
    const struct pjob *j = job_find(p, id);
    if (j == NULL || j->in_slurm) return NULL;
    if (j->dep_held) return POLICY_REASON_DEPENDENCY;
    if (j->arr != NULL && j->arr->rep != j)
        return j->arr->active >= j->arr->max ? POLICY_REASON_ARRAY_LIMIT : POLICY_REASON_PRIORITY;
    if (window_full(p)) return POLICY_REASON_CLUSTER_FULL;
    char cur[8];
    policy_period_of(now, cur);
    const char *r = job_blocked(j, cur);
    return r != NULL ? r : POLICY_REASON_PRIORITY;
}

double policy_job_priority(const policy *p, int64_t id, int64_t now)
{
    if (p == NULL) return 0;
    const struct pjob *j = job_find(p, id);
    if (j == NULL || j->in_slurm) return 0;
    return priority_of(p, j->user, j->gpus, j->submitted_at, now);
}

size_t policy_queue_length(const policy *p)
{
    return p ? p->n_queued : 0;
}

int policy_job_dependency_hold(policy *p, int64_t id)
{
    if (p == NULL) return -ENOENT;
    struct pjob *j = job_find(p, id);
    if (j == NULL || j->in_slurm) return -ENOENT;
    if (j->dep_held) return 0;
    queue_out(j);
    j->dep_held = true;
    if (j->arr != NULL) array_gate(p, j->arr); /* a sibling may take its turn */
    user_rekey(p, j->user);
    return 0;
}

int policy_job_dependency_release(policy *p, int64_t id)
{
    if (p == NULL) return -ENOENT;
    struct pjob *j = job_find(p, id);
    if (j == NULL || j->in_slurm) return -ENOENT;
    if (!j->dep_held) return 0;
    j->dep_held = false;
    if (j->partner != j->user->partner) { /* its user moved while it was held (user_move) */
        j->partner->queued--;
        j->user->partner->queued++;
        j->partner = j->user->partner;
    }
    if (j->arr != NULL) { /* back in its array's heap: the gate lets it in when its turn comes */
        heap_push(&j->arr->queued, j);
        array_gate(p, j->arr);
    } else {
        heap_push(&j->user->queue, j); /* room reserved at enqueue */
    }
    rank_insert(&j->partner->ranked[j->user->cat], &j->rk, j->key, j->id);
    user_rekey(p, j->user);
    return 0;
}

bool policy_job_dependency_held(const policy *p, int64_t id)
{
    const struct pjob *j = p ? job_find(p, id) : NULL;
    return j != NULL && j->dep_held;
}

/* ---- statistics (GET /metrics) ---- */

const char *const policy_wait_reasons[POLICY_WAIT_REASONS] = {
    POLICY_REASON_CLUSTER_FULL, POLICY_REASON_PARTNER_GPU, POLICY_REASON_PARTNER_JOBS,
    POLICY_REASON_USER_GPU,     POLICY_REASON_BUDGET_HELD, POLICY_REASON_BUDGET_EXHAUSTED,
    POLICY_REASON_PRIORITY,     POLICY_REASON_ARRAY_LIMIT, POLICY_REASON_DEPENDENCY,
};

static size_t wait_reason_index(const char *r)
{
    for (size_t i = 0; i < POLICY_WAIT_REASONS; i++)
        if (strcmp(policy_wait_reasons[i], r) == 0) return i;
    return POLICY_WAIT_REASONS - 1;
}

size_t policy_partner_stats_get(const policy *p, int64_t now, policy_partner_stats *out, size_t max)
{
    if (p == NULL || out == NULL) return 0;
    size_t n = p->n_partners < max ? p->n_partners : max;
    char cur[8];
    policy_period_of(now, cur);
    for (size_t i = 0; i < n; i++) {
        const struct ppartner *pa = p->partners[i];
        policy_partner_stats *s = &out[i];
        memset(s, 0, sizeof *s);
        memcpy(s->name, pa->name, sizeof s->name);
        s->queued = pa->queued;
        s->gpus_in_slurm = pa->gpus_in_slurm;
        s->gpus_running = pa->gpus_running;
        s->jobs_in_slurm = pa->jobs_in_slurm;
        const struct pperiod *e = period_find(pa, cur);
        s->budget_gpu_s = quota_of(e).gpu_seconds;
        s->used_gpu_s = e ? e->used_gpu : 0;
        s->held_gpu_s = e ? e->held_gpu : 0;
    }
    /* each user's queued jobs under the reason its first job waits for: O(users) */
    bool full = window_full(p);
    for (size_t k = 0; k < p->n_users; k++) {
        const struct puser *u = p->users[k];
        const struct pjob *top = heap_top(&u->queue);
        if (top == NULL) continue;
        const char *r = full ? POLICY_REASON_CLUSTER_FULL : job_blocked(top, cur);
        size_t ri = wait_reason_index(r != NULL ? r : POLICY_REASON_PRIORITY);
        bool found; /* its partner's index (the array is sorted by name) */
        size_t lo =
            name_search((void *const *)p->partners, p->n_partners, u->partner->name, &found);
        if (found && lo < n) out[lo].queued_by_reason[ri] += u->queue.len;
    }
    return n;
}
