/* broker.c - drives each job through durable steps: queued -> dispatching -> dispatched -> Slurm's
 * states -> a terminal state, every step a registry change. Never calls libslurm, SQLite or the
 * file system on the loop thread (every tick runs in uv_queue_work, one at a time) and never
 * scans antennad's queue: it follows only the jobs that are in Slurm.
 */
#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "job_options.h"
#include "log.h"
#include "metrics.h"

#define DISPATCH_BATCH   128 /* jobs begun per registry call */
#define TICK_BUDGET_S    2   /* a tick stops dispatching after this long */
#define IDLE_RETRY_S     30  /* dispatch is tried at least this often without a kick */
#define HOUSEKEEP_S      60
#define WINDOW_REFRESH_S 60
#define CANCEL_INBOX_MAX 100000
#define RECHECK_S        10    /* a forgotten job is read from slurmdbd again this often */
#define ASSOC_INBOX_MAX  10000 /* partners/users waiting for their Slurm associations */

/* The end of a job antennad cancelled because, after Slurm requeued it, its partner's budget no
 * longer covered another run (registry_slurm_change.over_budget). */
#define BUDGET_END_REASON                                                                          \
    "cancelled by antennad: Slurm requeued the job and its partner's budget no longer covers "     \
    "another run (each run is charged)"

/* A job of ours in Slurm, as last recorded. */
struct tracked {
    int64_t id, slurm_id;
    char request_id[65]; /* its submission's, ending the log lines about it */
    char state[STORE_STATE_MAX];
    char reason[STORE_REASON_MAX];
    int64_t start, end;
    bool has_exit;
    int exit_code;
    unsigned seen;         /* the listing generation that last saw it */
    int64_t missing_since; /* when slurmctld was first seen not to know it; 0 = it knows it */
    int restarts;          /* Slurm's requeues of it recorded so far (runs charged) */
    int64_t known_since;   /* it was in Slurm, not running, no earlier than this (its dispatch):
                              a run that started and ended unseen began after it */
    bool budget_end;       /* antennad ends it: after a requeue its budget no longer covers it */
    int64_t unsure_since;  /* when runs requeued unseen waited first for slurmdbd's record */
};

/* A partner's GPU budget to mirror as GrpTRESMins (weighted GPU-seconds; < 0 = none). */
struct gpu_limit {
    char partner[STORE_NAME_MAX];
    int64_t gpu_seconds;
};

/* Partner/Unix-account pairs whose Slurm associations exist ("partner\tunix_user"; a partner's
 * own account as "partner\t"), sorted. Bounded by partners + users. */
struct strset {
    char **v;
    size_t n, cap;
};

struct idvec {
    int64_t *v;
    size_t n, cap;
};

struct broker {
    uv_loop_t *loop;
    registry *reg;
    slurm_adapter *sa;
    broker_options opt;
    char partition[64];
    char spool_dir[PATH_MAX];
    char tag_prefix[64];
    uv_timer_t timer;
    uv_work_t work;
    bool started, busy, kicked, closing;
    atomic_bool slurm_ok;
    int64_t listed_at; /* when the last Slurm listing that was recorded whole began (worker) */
    atomic_bool dirty; /* something may let a queued job go: try to dispatch */
    atomic_uint_fast64_t rpc_since; /* uv_hrtime when the Slurm call under way began; 0 = none */

    /* worker-thread state (one tick at a time) */
    bool recovered;
    struct tracked *tr; /* sorted by slurm_id */
    size_t ntr, captr;
    unsigned gen;
    struct idvec unresolved; /* dispatching, the submit's answer lost */
    uint64_t unresolved_at;  /* when the latest was added (uv_hrtime, ns) */
    registry_outcome *pend;  /* outcomes not recorded yet (the store failed) */
    size_t npend, cappend;
    struct idvec cancels_open; /* cancel asked, not yet sent to Slurm */
    int64_t last_dispatch, last_housekeep, last_window;

    pthread_mutex_t sa_mu;    /* the adapter: held by each tick, and by broker_slurm_exclusive */
    pthread_mutex_t inbox_mu; /* cancels pushed by the API */
    struct idvec inbox;

    int64_t recheck_at; /* a full poll then: forgotten jobs are read from slurmdbd again */
    pthread_mutex_t assoc_mu;
    struct strset ensured;    /* associations known to exist */
    struct strset assoc_todo; /* pushed by the API, ensured on the next tick */
    atomic_bool no_dbd;       /* the cluster has no slurmdbd: no associations, no records */
    struct gpu_limit *limits; /* budgets to mirror in Slurm (opt.gpu_limits), under assoc_mu */
    size_t nlimits, caplimits;

    void (*done)(void *);
    void *done_arg;
};

/* The job folder layout, in one place: spool_dir/jobs/<id>/, and output.log inside it. Returns
 * the length snprintf gives (>= len: cut short). */
static int job_path(const char *spool_dir, long long id, const char *file, char *buf, size_t len)
{
    return snprintf(buf, len, "%s/jobs/%lld%s%s", spool_dir, id, file ? "/" : "", file ? file : "");
}

char *broker_job_output_path(const broker_options *opt, long long id, char *buf, size_t len)
{
    job_path(opt->spool_dir, id, "output.log", buf, len);
    return buf;
}

/* The expanded file name of `pattern` for job j, or "output.log" when pattern is empty. */
static int stream_name(const store_job *j, const char *pattern, char *name, size_t len)
{
    if (pattern == NULL || pattern[0] == '\0') {
        snprintf(name, len, "output.log");
        return 0;
    }
    jobreq_output_ctx ctx = {.job_id = j->id,
                             .array_job_id = j->array_job_id,
                             .array_task_id = j->array_job_id > 0 ? j->array_task_id : -1,
                             .name = j->name,
                             .user = j->unix_user};
    return jobreq_output_expand(pattern, &ctx, "output", name, len, NULL) < 0 ? -EINVAL : 0;
}

int broker_job_stream_path(const broker_options *opt, const store_job *j, const jobreq *r,
                           broker_stream stream, char *buf, size_t len)
{
    char out[JOBREQ_FILE_MAX], err[JOBREQ_FILE_MAX];
    if (stream_name(j, r ? r->output : NULL, out, sizeof out) < 0) return -EINVAL;
    const char *name = out;
    if (stream == BROKER_STDERR) {
        if (r == NULL || r->error[0] == '\0') return -ENOENT;
        if (stream_name(j, r->error, err, sizeof err) < 0) return -EINVAL;
        if (strcmp(err, out) == 0) return -ENOENT;
        name = err;
    }
    int n = job_path(opt->spool_dir, (long long)j->id, name, buf, len);
    return n < 0 || (size_t)n >= len ? -EINVAL : 0;
}

/* Creates the --chdir folders `rel` (checked by jobreq_chdir_check) under the job folder `dir`,
 * owned by uid:gid, one component at a time without following links; an existing component must
 * be a folder the job's account owns. Fills work[len] with the full path. */
static int make_chdir(const char *dir, const char *rel, uid_t uid, gid_t gid, char *work,
                      size_t len, char *why, size_t wlen)
{
    int n = snprintf(work, len, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= len) {
        snprintf(why, wlen, "the --chdir folder's path is too long");
        return -EINVAL;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) goto fail;
    char part[JOBREQ_FILE_MAX];
    snprintf(part, sizeof part, "%s", rel);
    char *save = NULL;
    for (char *c = strtok_r(part, "/", &save); c != NULL; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0) continue;
        bool made = mkdirat(fd, c, 0700) == 0;
        if (!made && errno != EEXIST) goto fail_fd;
        int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) goto fail_fd;
        close(fd);
        fd = next;
        struct stat st;
        if (fstat(fd, &st) < 0) goto fail_fd;
        if (made ? fchown(fd, uid, gid) < 0 : st.st_uid != uid) {
            if (!made) errno = EPERM;
            goto fail_fd;
        }
    }
    close(fd);
    return 0;
fail_fd : {
    int e = errno;
    close(fd);
    errno = e;
}
fail:
    snprintf(why, wlen, "cannot prepare the --chdir folder %.64s: %s", rel, strerror(errno));
    return -EIO;
}

/* The NULL-terminated "NAME=value" items of an --export value, in one malloc'd block. */
struct env_items {
    const char *v[64 + 1];
    char buf[JOBREQ_EXPORT_MAX];
    size_t n, used;
};

static int env_item_add(void *arg, const char *item)
{
    struct env_items *e = arg;
    size_t k = strlen(item) + 1;
    if (e->n >= 64 || e->used + k > sizeof e->buf) return -E2BIG;
    memcpy(e->buf + e->used, item, k);
    e->v[e->n++] = e->buf + e->used;
    e->used += k;
    e->v[e->n] = NULL;
    return 0;
}

static int idvec_push(struct idvec *v, int64_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 16;
        int64_t *p = realloc(v->v, cap * sizeof *p);
        if (p == NULL) return -ENOMEM;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return 0;
}

static bool idvec_has(const struct idvec *v, int64_t id)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->v[i] == id) return true;
    return false;
}

static int strset_find(const struct strset *s, const char *k, bool *found)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->v[mid], k);
        if (c == 0) {
            *found = true;
            return (int)mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return (int)lo;
}

static bool strset_has(const struct strset *s, const char *k)
{
    bool found;
    strset_find(s, k, &found);
    return found;
}

static int strset_add(struct strset *s, const char *k)
{
    bool found;
    size_t i = (size_t)strset_find(s, k, &found);
    if (found) return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 32;
        char **p = realloc(s->v, cap * sizeof *p);
        if (p == NULL) return -ENOMEM;
        s->v = p;
        s->cap = cap;
    }
    char *d = strdup(k);
    if (d == NULL) return -ENOMEM;
    memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof *s->v);
    s->v[i] = d;
    s->n++;
    return 0;
}

static void strset_clear(struct strset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    s->n = 0;
}

/* Marks a Slurm call under way, so that health sees a hung slurmctld at once. */
static void rpc_begin(broker *b)
{
    atomic_store(&b->rpc_since, uv_hrtime());
}

static void rpc_end(broker *b)
{
    atomic_store(&b->rpc_since, 0);
}

/* --- the jobs followed in Slurm ------------------------------------------------------------- */

static size_t tracked_lower(const broker *b, int64_t slurm_id)
{
    size_t lo = 0, hi = b->ntr;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->tr[mid].slurm_id < slurm_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct tracked *tracked_find(broker *b, int64_t slurm_id)
{
    size_t i = tracked_lower(b, slurm_id);
    return i < b->ntr && b->tr[i].slurm_id == slurm_id ? &b->tr[i] : NULL;
}

static struct tracked *tracked_find_id(broker *b, int64_t id)
{
    for (size_t i = 0; i < b->ntr; i++)
        if (b->tr[i].id == id) return &b->tr[i];
    return NULL;
}

/* Follows job `id` as Slurm job `slurm_id` from state `state`. Slurm ids grow, so this is
 * usually an append. */
static int tracked_add(broker *b, int64_t id, int64_t slurm_id, const store_job *j)
{
    if (tracked_find(b, slurm_id) != NULL) return 0;
    if (b->ntr == b->captr) {
        size_t cap = b->captr ? 2 * b->captr : 64;
        struct tracked *p = realloc(b->tr, cap * sizeof *p);
        if (p == NULL) return -ENOMEM;
        b->tr = p;
        b->captr = cap;
    }
    size_t i = tracked_lower(b, slurm_id);
    memmove(&b->tr[i + 1], &b->tr[i], (b->ntr - i) * sizeof *b->tr);
    struct tracked *t = &b->tr[i];
    memset(t, 0, sizeof *t);
    t->id = id;
    t->slurm_id = slurm_id;
    t->seen = b->gen;
    t->known_since = j != NULL && j->dispatched_at > 0 ? j->dispatched_at : time(NULL);
    if (j != NULL) {
        t->restarts = j->restarts;
        memcpy(t->request_id, j->request_id, sizeof t->request_id);
        snprintf(t->state, sizeof t->state, "%s", j->state);
        snprintf(t->reason, sizeof t->reason, "%s", j->reason);
        t->start = j->started_at;
        t->end = j->ended_at;
        t->has_exit = j->has_exit_code;
        t->exit_code = j->exit_code;
    } else {
        snprintf(t->state, sizeof t->state, "%s", STORE_STATE_DISPATCHED);
    }
    b->ntr++;
    return 0;
}

static void tracked_remove(broker *b, struct tracked *t)
{
    size_t i = (size_t)(t - b->tr);
    memmove(&b->tr[i], &b->tr[i + 1], (b->ntr - i - 1) * sizeof *b->tr);
    b->ntr--;
}

/* --- worker-thread steps ------------------------------------------------------------------ */

/* The account a job runs as. Returns 0, or -ENOENT / -EPERM with a reason. */
static int lookup_account(const char *name, uid_t *uid, gid_t *gid, char *why, size_t len)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwnam_r(name, &pw, buf, sizeof buf, &res) != 0 || res == NULL) {
        snprintf(why, len, "Unix account '%s' does not exist on the broker host", name);
        return -ENOENT;
    }
    if (pw.pw_uid == 0) {
        snprintf(why, len, "Unix account '%s' is root; jobs never run as root", name);
        return -EPERM;
    }
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

/* Creates spool_dir/jobs/<id>/ owned by uid:gid, mode 0700 (its parents 0711). */
static int make_job_dir(broker *b, int64_t id, uid_t uid, gid_t gid, char *dir, size_t len,
                        char *why, size_t wlen)
{
    char jobs[PATH_MAX];
    int n = snprintf(jobs, sizeof jobs, "%s/jobs", b->spool_dir);
    int m = job_path(b->spool_dir, (long long)id, NULL, dir, len);
    if (n < 0 || (size_t)n >= sizeof jobs || m < 0 || (size_t)m >= len) {
        errno = ENAMETOOLONG;
        goto fail;
    }
    if (mkdir(b->spool_dir, 0711) < 0 && errno != EEXIST) goto fail;
    if (mkdir(jobs, 0711) < 0 && errno != EEXIST) goto fail;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) goto fail;
    if (chown(dir, uid, gid) < 0) goto fail;
    return 0;
fail:
    if (snprintf(why, wlen, "cannot prepare the job folder %s: %s", dir, strerror(errno)) < 0)
        why[0] = '\0';
    return -EIO;
}

static void outcome_set(registry_outcome *o, int64_t id, registry_outcome_kind kind,
                        int64_t slurm_id, const char *why)
{
    memset(o, 0, sizeof *o);
    o->id = id;
    o->kind = kind;
    o->slurm_job_id = slurm_id;
    snprintf(o->reason, sizeof o->reason, "%s", why ? why : "");
}

/* Keeps outcomes that could not be recorded, to record them on the next tick. */
static void pend_keep(broker *b, const registry_outcome *o, size_t n)
{
    if (b->npend + n > b->cappend) {
        size_t cap = b->cappend ? b->cappend : 64;
        while (cap < b->npend + n)
            cap *= 2;
        registry_outcome *p = realloc(b->pend, cap * sizeof *p);
        if (p == NULL) {
            LOG(LOG_ERROR,
                "broker: out of memory keeping %zu dispatch outcomes; their jobs stay "
                "dispatching until a restart looks them up in Slurm",
                n);
            return;
        }
        b->pend = p;
        b->cappend = cap;
    }
    memcpy(&b->pend[b->npend], o, n * sizeof *o);
    b->npend += n;
}

/* Records outcomes; on success follows the submitted jobs. Returns 0 or the registry's error
 * (the outcomes are then kept for the next tick). */
static int outcomes_recorded(broker *b, registry_outcome *o, size_t n, int rc);

static int record_outcomes(broker *b, registry_outcome *o, size_t n)
{
    if (n == 0) return 0;
    return outcomes_recorded(b, o, n, registry_dispatch_outcomes(b->reg, o, n));
}

/* What follows the recording of n outcomes with result rc: kept for the next tick when it failed,
 * followed in Slurm when submitted. Returns rc. */
static int outcomes_recorded(broker *b, registry_outcome *o, size_t n, int rc)
{
    if (n == 0) return 0;
    if (rc < 0) {
        LOG(LOG_ERROR, "broker: cannot record %zu dispatch outcome(s) (%s); will retry", n,
            strerror(-rc));
        pend_keep(b, o, n);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        const char *old = log_request_id_set(o[i].request_id);
        if (o[i].rc < 0 && o[i].rc != -EAGAIN)
            LOG(LOG_ERROR, "job %" PRId64 ": outcome not recorded (%s)", o[i].id,
                strerror(-o[i].rc));
        if (o[i].rc == 0 && o[i].kind == REGISTRY_SUBMITTED) {
            if (tracked_add(b, o[i].id, o[i].slurm_job_id, NULL) < 0)
                LOG(LOG_ERROR, "job %" PRId64 ": out of memory following it", o[i].id);
            struct tracked *t = tracked_find(b, o[i].slurm_job_id);
            if (t != NULL && t->id == o[i].id)
                memcpy(t->request_id, o[i].request_id, sizeof t->request_id);
            LOG(LOG_INFO, "job %" PRId64 " dispatched as Slurm job %" PRId64, o[i].id,
                o[i].slurm_job_id);
        } else if (o[i].rc == 0 && o[i].kind == REGISTRY_REFUSED) {
            LOG(LOG_WARN, "job %" PRId64 ": not dispatched: %s", o[i].id, o[i].reason);
        } else if (o[i].rc == 0 && o[i].kind == REGISTRY_CANCELLED) {
            LOG(LOG_INFO, "job %" PRId64 ": cancelled before dispatch: %s", o[i].id, o[i].reason);
        }
        log_request_id_set(old);
    }
    b->dirty = true;
    return 0;
}

static int retry_pending(broker *b)
{
    if (b->npend == 0) return 0;
    size_t n = b->npend;
    registry_outcome *o = b->pend;
    b->pend = NULL;
    b->npend = b->cappend = 0;
    int rc = record_outcomes(b, o, n);
    free(o);
    return rc;
}

/* Makes sure Slurm's associations let `unix_user` run jobs under `partner`'s account (NULL
 * unix_user: the partner's account only). Once per pair (then remembered); nothing without
 * slurmdbd. Any worker thread. Returns 0, or a negative errno with err (slurmdbd away). */
static int assoc_ready(broker *b, const char *partner, const char *unix_user, char *err,
                       size_t errlen)
{
    char key[2 * STORE_NAME_MAX + 2];
    if (atomic_load(&b->no_dbd)) return 0;
    snprintf(key, sizeof key, "%s\t%s", partner, unix_user ? unix_user : "");
    pthread_mutex_lock(&b->assoc_mu);
    bool have = strset_has(&b->ensured, key);
    pthread_mutex_unlock(&b->assoc_mu);
    if (have) return 0;
    int64_t t0 = metrics_now_us();
    int rc = slurm_adapter_account_ensure(b->sa, partner, partner, err, errlen);
    if (rc == 0 && unix_user != NULL)
        rc = slurm_adapter_user_ensure(b->sa, unix_user, partner, err, errlen);
    metrics_slurm_rpc(METRICS_RPC_ASSOC, metrics_now_us() - t0, rc < 0 && rc != -ENOTSUP);
    if (rc == -ENOTSUP) {
        if (!atomic_exchange(&b->no_dbd, true))
            LOG(LOG_INFO, "Slurm has no slurmdbd: no associations kept, no records read (%s)", err);
        return 0;
    }
    if (rc < 0) return rc;
    pthread_mutex_lock(&b->assoc_mu);
    if (strset_add(&b->ensured, key) < 0) rc = 0; /* out of memory: ensured again next time */
    pthread_mutex_unlock(&b->assoc_mu);
    if (unix_user != NULL) LOG(LOG_INFO, "Slurm: %s is a user of account %s", unix_user, partner);
    return 0;
}

/* Ensures the associations the API asked for (partner\tunix_user keys), keeping those slurmdbd
 * could not take for the next tick. */
static void assoc_drain(broker *b)
{
    struct strset todo;
    pthread_mutex_lock(&b->assoc_mu);
    todo = b->assoc_todo;
    b->assoc_todo = (struct strset){0};
    pthread_mutex_unlock(&b->assoc_mu);
    char err[256] = "";
    size_t i = 0;
    for (; i < todo.n; i++) {
        char *tab = strchr(todo.v[i], '\t');
        if (tab == NULL) continue;
        *tab = '\0';
        int rc = assoc_ready(b, todo.v[i], tab[1] ? tab + 1 : NULL, err, sizeof err);
        *tab = '\t';
        if (rc < 0) {
            LOG(LOG_WARN, "Slurm associations wait for slurmdbd: %s (will retry)", err);
            break;
        }
    }
    pthread_mutex_lock(&b->assoc_mu);
    for (; i < todo.n; i++)
        if (b->assoc_todo.n < ASSOC_INBOX_MAX) strset_add(&b->assoc_todo, todo.v[i]);
    pthread_mutex_unlock(&b->assoc_mu);
    strset_clear(&todo);
    free(todo.v);
}

int broker_assoc_push(broker *b, const char *partner, const char *unix_user)
{
    char key[2 * STORE_NAME_MAX + 2];
    if (b == NULL || partner == NULL) return 0;
    if (atomic_load(&b->no_dbd)) return 0;
    snprintf(key, sizeof key, "%s\t%s", partner, unix_user ? unix_user : "");
    pthread_mutex_lock(&b->assoc_mu);
    int rc = b->assoc_todo.n >= ASSOC_INBOX_MAX ? -ENOSPC : strset_add(&b->assoc_todo, key);
    pthread_mutex_unlock(&b->assoc_mu);
    return rc;
}

int broker_gpu_limit_push(broker *b, const char *partner, const char *period, int64_t gpu_seconds)
{
    char now[8];
    if (b == NULL || partner == NULL || period == NULL || !b->opt.gpu_limits) return 0;
    if (strcmp(policy_period_of(time(NULL), now), period) != 0) return 0; /* not this month's */
    pthread_mutex_lock(&b->assoc_mu);
    int rc = 0;
    size_t i = 0;
    while (i < b->nlimits && strcmp(b->limits[i].partner, partner) != 0)
        i++;
    if (i == b->nlimits) {
        if (b->nlimits >= ASSOC_INBOX_MAX) {
            rc = -ENOSPC;
        } else if (b->nlimits == b->caplimits) {
            size_t cap = b->caplimits ? 2 * b->caplimits : 16;
            struct gpu_limit *p = realloc(b->limits, cap * sizeof *p);
            if (p == NULL)
                rc = -ENOMEM;
            else
                b->limits = p, b->caplimits = cap;
        }
        if (rc == 0) snprintf(b->limits[b->nlimits++].partner, STORE_NAME_MAX, "%s", partner);
    }
    if (rc == 0) b->limits[i].gpu_seconds = gpu_seconds;
    pthread_mutex_unlock(&b->assoc_mu);
    return rc;
}

/* Mirrors the budgets pushed since the last tick (the latest per partner), keeping those
 * slurmdbd could not take for the next tick. */
static void gpu_limits_drain(broker *b)
{
    pthread_mutex_lock(&b->assoc_mu);
    struct gpu_limit *v = b->limits;
    size_t n = b->nlimits;
    b->limits = NULL;
    b->nlimits = b->caplimits = 0;
    pthread_mutex_unlock(&b->assoc_mu);
    char err[256] = "";
    size_t i = 0;
    for (; i < n && !atomic_load(&b->no_dbd); i++) {
        int64_t s = v[i].gpu_seconds;
        int64_t minutes = s < 0 ? -1 : (s + 59) / 60;
        int rc = assoc_ready(b, v[i].partner, NULL, err, sizeof err);
        if (rc == 0)
            rc = slurm_adapter_account_gpu_limit(b->sa, v[i].partner, minutes, err, sizeof err);
        if (rc == -ENOTSUP || rc == -EINVAL) {
            LOG(LOG_WARN, "Slurm GPU limit of %s not mirrored: %s", v[i].partner, err);
            continue;
        }
        if (rc < 0) {
            LOG(LOG_WARN, "Slurm GPU limits wait for slurmdbd: %s (will retry)", err);
            break;
        }
        LOG(LOG_INFO, "Slurm account %s: GrpTRESMins=gres/gpu=%" PRId64, v[i].partner, minutes);
    }
    /* kept for the next tick, unless a newer budget of the same partner came meanwhile */
    for (; i < n; i++) {
        char period[8];
        bool newer = false;
        pthread_mutex_lock(&b->assoc_mu);
        for (size_t k = 0; k < b->nlimits && !newer; k++)
            newer = strcmp(b->limits[k].partner, v[i].partner) == 0;
        pthread_mutex_unlock(&b->assoc_mu);
        if (!newer)
            broker_gpu_limit_push(b, v[i].partner, policy_period_of(time(NULL), period),
                                  v[i].gpu_seconds);
    }
    free(v);
}

/* At start-up, with opt.gpu_limits: every partner's budget of this month, mirrored. */
static void gpu_limits_all(broker *b)
{
    store_quota *q = NULL;
    size_t n = 0;
    char period[8];
    if (!b->opt.gpu_limits) return;
    policy_period_of(time(NULL), period);
    if (store_quota_list(registry_store(b->reg), period, &q, &n) < 0) {
        LOG(LOG_WARN, "Slurm GPU limits: cannot list this month's quotas");
        return;
    }
    for (size_t i = 0; i < n; i++)
        broker_gpu_limit_push(b, q[i].partner, period, q[i].gpu_seconds);
    free(q);
}

/* At start-up: every partner's account and every mapped account's association (proportional to
 * partners + users, once). What slurmdbd cannot take now is ensured before a job is submitted. */
static void assoc_all(broker *b)
{
    store_partner *p = NULL;
    store_user *u = NULL;
    size_t np = 0, nu = 0, done = 0;
    char err[256] = "";
    int rc = 0;
    if (store_partner_list(registry_store(b->reg), &p, &np) < 0 ||
        store_user_list(registry_store(b->reg), NULL, &u, &nu) < 0) {
        LOG(LOG_WARN, "Slurm associations: cannot list partners and users; ensured per job");
        goto out;
    }
    for (size_t i = 0; i < np && rc == 0 && !atomic_load(&b->no_dbd); i++, done++)
        rc = assoc_ready(b, p[i].name, NULL, err, sizeof err);
    for (size_t i = 0; i < nu && rc == 0 && !atomic_load(&b->no_dbd); i++, done++)
        rc = assoc_ready(b, u[i].partner, u[i].unix_user, err, sizeof err);
    if (rc < 0)
        LOG(LOG_WARN, "Slurm associations: %s; the rest are ensured before each job", err);
    else if (!atomic_load(&b->no_dbd))
        LOG(LOG_INFO, "Slurm associations in step: %zu partner(s), %zu user(s)", np, nu);
out:
    (void)done;
    free(p);
    free(u);
}

/* Submits one job that the registry moved to dispatching; fills its outcome. Returns 0, or
 * -EAGAIN (Slurm unreachable: not sent), or -ETIMEDOUT (sent, answer lost). */
/* The tag of job `j`, set as its AdminComment and ANTENNA_JOB_TAG: "<tag_prefix><id>", then
 * " rid=<request id>" when its submission had one (well-formed: request_id.h, no space, no
 * colon), so that an operator follows a request to `scontrol show job` and `sacct -o
 * AdminComment`. tag_job_id reads it back. */
static void tag_format(const broker *b, const store_job *j, char *out, size_t len)
{
    snprintf(out, len, "%s%" PRId64 "%s%s", b->tag_prefix, j->id, j->request_id[0] ? " rid=" : "",
             j->request_id);
}

/* The id in a tag of tag_format ("antenna:<instance>:<id>", maybe " rid=..." after), or -1. */
static int64_t tag_job_id(const broker *b, const char *tag);

static int submit_one_job(broker *b, const store_job *j, registry_outcome *o);

/* Submits one job with its request's id ending the lines logged meanwhile, and counts what became
 * of it in the metrics. Returns what submit_one_job returns. */
static int submit_one(broker *b, const store_job *j, registry_outcome *o)
{
    const char *old = log_request_id_set(j->request_id);
    o->kind = 0;
    int rc = submit_one_job(b, j, o);
    log_request_id_set(old);
    memcpy(o->request_id, j->request_id, sizeof o->request_id);
    if (rc == -ETIMEDOUT) {
        metrics_dispatch(METRICS_DISPATCH_LOST, -1);
    } else if (o->kind == REGISTRY_SUBMITTED) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t us = ((int64_t)ts.tv_sec - j->submitted_at) * 1000000 + ts.tv_nsec / 1000;
        metrics_dispatch(METRICS_DISPATCH_SUBMITTED, us);
    } else if (o->kind == REGISTRY_REFUSED) {
        metrics_dispatch(METRICS_DISPATCH_REFUSED, -1);
    } else if (o->kind == REGISTRY_REQUEUE) {
        metrics_dispatch(METRICS_DISPATCH_REQUEUED, -1);
    }
    return rc;
}

static int submit_one_job(broker *b, const store_job *j, registry_outcome *o)
{
    char why[STORE_REASON_MAX], dir[PATH_MAX], out[PATH_MAX + 32], tag[256], err[192] = "";
    char errpath[PATH_MAX + 32], work[PATH_MAX + JOBREQ_FILE_MAX];
    char *script = NULL, *opts_text = NULL;
    jobreq r;
    struct env_items env = {.n = 0};
    int signo = 0, sig_secs = 0, sig_batch = 0;
    uid_t uid;
    gid_t gid;
    uint32_t slurm_id = 0;

    if (lookup_account(j->unix_user, &uid, &gid, why, sizeof why) < 0 ||
        make_job_dir(b, j->id, uid, gid, dir, sizeof dir, why, sizeof why) < 0) {
        outcome_set(o, j->id, REGISTRY_REFUSED, 0, why);
        return 0;
    }
    /* an array's script is stored once, with its first task (the array's id) */
    store_job_array arr;
    memset(&arr, 0, sizeof arr);
    if (j->array_job_id > 0 &&
        store_job_array_get(registry_store(b->reg), j->array_job_id, &arr) < 0) {
        outcome_set(o, j->id, REGISTRY_REFUSED, 0,
                    "the job's array could not be read from the store");
        return 0;
    }
    if (store_job_script_get(registry_store(b->reg), j->array_job_id > 0 ? j->array_job_id : j->id,
                             &script) < 0) {
        outcome_set(o, j->id, REGISTRY_REFUSED, 0,
                    "the job's script could not be read from the store");
        return 0;
    }
    int arc = assoc_ready(b, j->partner, j->unix_user, err, sizeof err);
    if (arc < 0) {
        free(script);
        snprintf(why, sizeof why, "waiting for slurmdbd (the partner's Slurm account): %s", err);
        outcome_set(o, j->id, REGISTRY_REQUEUE, 0, why);
        LOG(LOG_WARN, "job %" PRId64 ": requeued: %s", j->id, why);
        return -EAGAIN;
    }
    char dep[JOB_DEPENDENCY_TEXT_MAX];
    int drc = registry_job_slurm_dependency(b->reg, j->id, dep, sizeof dep, why, sizeof why);
    if (drc < 0) {
        /* -ECANCELED: a prerequisite ended, never to meet its condition, between the release and
         * this dispatch; -EAGAIN: one is not in Slurm (the requeue holds the job again) */
        free(script);
        if (drc == -ECANCELED)
            outcome_set(o, j->id, REGISTRY_CANCELLED, 0, why);
        else if (drc == -EAGAIN)
            outcome_set(o, j->id, REGISTRY_REQUEUE, 0, why);
        else if (drc == -ENOSPC)
            outcome_set(o, j->id, REGISTRY_REFUSED, 0, why);
        else
            outcome_set(o, j->id, REGISTRY_REQUEUE, 0,
                        "waiting for the store: its dependency could not be read");
        return 0;
    }
    jobreq_init(&r);
    if (store_job_options_get(registry_store(b->reg), j->id, &opts_text) < 0 ||
        job_options_parse(opts_text, &r) < 0) {
        free(opts_text);
        free(script);
        outcome_set(o, j->id, REGISTRY_REFUSED, 0,
                    "the job's options could not be read from the store");
        return 0;
    }
    free(opts_text);
    broker_options paths = {.spool_dir = b->spool_dir};
    int erc = broker_job_stream_path(&paths, j, &r, BROKER_STDERR, errpath, sizeof errpath);
    if (broker_job_stream_path(&paths, j, &r, BROKER_STDOUT, out, sizeof out) < 0 ||
        (erc < 0 && erc != -ENOENT) ||
        (r.env_export[0] && jobreq_export_each(r.env_export, env_item_add, &env) < 0) ||
        (r.signal[0] && jobreq_signal_parse(r.signal, &signo, &sig_secs, &sig_batch) < 0)) {
        free(script);
        outcome_set(o, j->id, REGISTRY_REFUSED, 0,
                    "the job's output, export or signal option cannot be applied");
        return 0;
    }
    snprintf(work, sizeof work, "%s", dir);
    if (r.chdir[0] && make_chdir(dir, r.chdir, uid, gid, work, sizeof work, why, sizeof why) < 0) {
        free(script);
        outcome_set(o, j->id, REGISTRY_REFUSED, 0, why);
        return 0;
    }
    tag_format(b, j, tag, sizeof tag);
    slurm_adapter_submit_req req = {
        .account = j->partner,
        .name = j->name,
        .script = script,
        .partition = r.partition[0] ? r.partition : b->partition,
        .work_dir = work,
        .stdout_path = out,
        .stderr_path = erc == 0 ? errpath : NULL,
        .tag = tag,
        .uid = uid,
        .gid = gid,
        /* j->gpus is the job's total; Slurm gets the request as asked */
        .gpus = r.gpus_per_node > 0 || r.gpus_per_task > 0 ? 0 : j->gpus,
        .gpu_type = j->gpu_type,
        .cpus_per_task = r.cpus_per_gpu > 0 ? 0 : j->cpus_per_task,
        .mem_mb = j->mem_mb,
        .time_minutes = j->time_minutes,
        .array_job_id = j->array_job_id,
        .array_task_id = j->array_task_id,
        .array_task_count = arr.task_count,
        .array_task_min = arr.task_min,
        .array_task_max = arr.task_max,
        .array_task_step = arr.task_step,
        .nodes_min = r.nodes_min,
        .nodes_max = r.nodes_max,
        .ntasks = r.ntasks,
        .ntasks_per_node = r.ntasks_per_node,
        .gpus_per_node = r.gpus_per_node,
        .gpus_per_task = r.gpus_per_task,
        .cpus_per_gpu = r.cpus_per_gpu,
        .mem_per_gpu_mb = r.mem_per_gpu_mb,
        .mem_per_cpu_mb = r.mem_per_cpu_mb,
        .env = env.n > 0 ? env.v : NULL,
        .signal = signo,
        .signal_seconds = sig_secs,
        .signal_batch_only = sig_batch != 0,
        .exclusive = r.exclusive == 1,
        .constraint = r.constraint,
        .requeue = r.requeue,
        .comment = r.comment,
        .dependency = dep,
    };
    rpc_begin(b);
    int64_t t0 = metrics_now_us();
    int rc = slurm_adapter_submit(b->sa, &req, &slurm_id, err, sizeof err);
    metrics_slurm_rpc(METRICS_RPC_SUBMIT, metrics_now_us() - t0, rc == -EAGAIN || rc == -ETIMEDOUT);
    rpc_end(b);
    free(script);
    if (rc == -EAGAIN) {
        atomic_store(&b->slurm_ok, false);
        snprintf(why, sizeof why, "waiting for Slurm: %s", err);
        outcome_set(o, j->id, REGISTRY_REQUEUE, 0, why);
        LOG(LOG_WARN, "job %" PRId64 ": Slurm unreachable, requeued: %s", j->id, err);
        return -EAGAIN;
    }
    if (rc == -ETIMEDOUT) {
        atomic_store(&b->slurm_ok, false);
        LOG(LOG_WARN,
            "job %" PRId64 ": %s; it stays dispatching and is looked up in Slurm before any "
            "resubmission",
            j->id, err);
        return -ETIMEDOUT;
    }
    if (rc < 0) {
        snprintf(why, sizeof why, "Slurm refused the job: %s", err);
        outcome_set(o, j->id, REGISTRY_REFUSED, 0, why);
        return 0;
    }
    atomic_store(&b->slurm_ok, true);
    fault_point("dispatch.sent");
    outcome_set(o, j->id, REGISTRY_SUBMITTED, slurm_id, NULL);
    return 0;
}

/* One share of a batch's submits, for one thread. */
struct submit_share {
    broker *b;
    const store_job *jobs;
    size_t from, to;
    registry_outcome *out; /* out[i] is jobs[i]'s outcome */
    bool *lost;            /* lost[i]: its answer was lost (no outcome: resolved later) */
    atomic_bool *stop;     /* Slurm stopped answering: the jobs not sent go back */
};

static void submit_share_run(struct submit_share *sh)
{
    for (size_t i = sh->from; i < sh->to; i++) {
        if (atomic_load(sh->stop)) {
            outcome_set(&sh->out[i], sh->jobs[i].id, REGISTRY_REQUEUE, 0,
                        "waiting for Slurm: it could not be reached");
            continue;
        }
        int rc = submit_one(sh->b, &sh->jobs[i], &sh->out[i]);
        if (rc == -ETIMEDOUT) sh->lost[i] = true;
        if (rc == -ETIMEDOUT || rc == -EAGAIN) atomic_store(sh->stop, true);
    }
}

static void *submit_share_main(void *arg)
{
    submit_share_run(arg);
    return NULL;
}

/* Submits the n jobs of one begun batch, from SUBMIT_THREADS threads when the batch is large
 * enough (slurmctld serves RPCs concurrently, so several submitters keep it busier than one),
 * into cur[]
 * (room for n), in the batch's order. Sets *stop when Slurm stopped answering (the jobs not sent
 * are then requeued). A job whose answer was lost gets no outcome: it is left to the lookup.
 * Returns the number of outcomes. */
#define SUBMIT_SPLIT_MIN 16
#define SUBMIT_THREADS   3
static size_t submit_batch(broker *b, const store_job *jobs, size_t n, registry_outcome *cur,
                           bool *stop)
{
    registry_outcome *out = calloc(n, sizeof *out);
    bool *lost = calloc(n, sizeof *lost);
    atomic_bool stp;
    atomic_init(&stp, *stop);
    if (out == NULL || lost == NULL) {
        free(out);
        free(lost);
        LOG(LOG_ERROR, "broker: out of memory dispatching %zu job(s)", n);
        for (size_t i = 0; i < n; i++)
            outcome_set(&cur[i], jobs[i].id, REGISTRY_REQUEUE, 0, "antennad ran out of memory");
        return n;
    }
    fault_point("dispatch.begun");
    /* shares of the batch: this thread takes the first, helpers the others */
    struct submit_share sh[SUBMIT_THREADS];
    pthread_t th[SUBMIT_THREADS];
    bool started[SUBMIT_THREADS] = {false};
    size_t parts = n >= SUBMIT_SPLIT_MIN ? SUBMIT_THREADS : 1;
    for (size_t p = 0; p < parts; p++)
        sh[p] = (struct submit_share){b, jobs, n * p / parts, n * (p + 1) / parts, out, lost, &stp};
    for (size_t p = 1; p < parts; p++)
        started[p] = pthread_create(&th[p], NULL, submit_share_main, &sh[p]) == 0;
    submit_share_run(&sh[0]);
    for (size_t p = 1; p < parts; p++) {
        if (started[p])
            pthread_join(th[p], NULL);
        else
            submit_share_run(&sh[p]); /* no thread: this one does it */
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!lost[i]) {
            cur[k++] = out[i];
            continue;
        }
        if (idvec_push(&b->unresolved, jobs[i].id) < 0)
            LOG(LOG_ERROR, "job %" PRId64 ": out of memory; a restart resolves it", jobs[i].id);
        b->unresolved_at = uv_hrtime();
    }
    *stop = atomic_load(&stp);
    free(out);
    free(lost);
    return k;
}

/* Begins, submits and records batches of jobs while the engine lets them go, pipelined: while
 * one batch is submitted to Slurm, the registry records the previous batch's outcomes and begins
 * the next batch, in one group commit. */
static void dispatch(broker *b, int64_t start)
{
    store_job *jobs = NULL;
    size_t n = 0;
    int orc = 0;
    b->last_dispatch = start;
    b->dirty = false;
    int rc = registry_dispatch_step(b->reg, NULL, 0, time(NULL), DISPATCH_BATCH, &jobs, &n, &orc);
    if (rc < 0) {
        LOG(LOG_ERROR, "broker: cannot begin dispatches (%s); will retry", strerror(-rc));
        b->dirty = true;
        return;
    }
    registry_outcome *prev = NULL;
    size_t nprev = 0;
    bool stop = false;
    while (n > 0 || nprev > 0) {
        bool more = !stop && n == DISPATCH_BATCH;
        if (more && time(NULL) - start >= TICK_BUDGET_S) {
            b->dirty = true; /* the next tick goes on at once */
            more = false;
        }
        registry_step *t = NULL;
        if (registry_dispatch_step_start(b->reg, prev, nprev, time(NULL), more ? DISPATCH_BATCH : 0,
                                         &t) < 0) {
            pend_keep(b, prev, nprev); /* out of memory: recorded on the next tick */
            free(prev);
            prev = NULL;
            nprev = 0;
            more = false;
        }
        registry_outcome *cur = NULL;
        size_t ncur = 0;
        if (n > 0) {
            cur = calloc(n, sizeof *cur);
            if (cur == NULL) {
                /* their outcomes are known to nobody but us: a lookup in Slurm resolves them */
                LOG(LOG_ERROR, "broker: out of memory dispatching %zu job(s)", n);
                for (size_t i = 0; i < n; i++)
                    idvec_push(&b->unresolved, jobs[i].id);
            } else {
                ncur = submit_batch(b, jobs, n, cur, &stop);
            }
        }
        free(jobs);
        jobs = NULL;
        n = 0;
        if (t != NULL) {
            rc = registry_dispatch_step_finish(b->reg, t, &jobs, &n, &orc);
            outcomes_recorded(b, prev, nprev, orc);
            if (rc < 0) {
                LOG(LOG_ERROR, "broker: cannot begin dispatches (%s); will retry", strerror(-rc));
                b->dirty = true;
            }
        }
        free(prev);
        prev = cur;
        nprev = ncur;
        if (stop && n > 0) {
            /* Slurm stopped answering while the next batch was begun: it goes back */
            registry_outcome *p = realloc(prev, (nprev + n) * sizeof *p);
            if (p != NULL) {
                prev = p;
                for (size_t i = 0; i < n; i++)
                    outcome_set(&prev[nprev++], jobs[i].id, REGISTRY_REQUEUE, 0,
                                "waiting for Slurm: it could not be reached");
            } else {
                for (size_t i = 0; i < n; i++)
                    idvec_push(&b->unresolved, jobs[i].id);
            }
            free(jobs);
            jobs = NULL;
            n = 0;
        }
    }
    free(prev); /* a last batch whose every answer was lost leaves an empty array */
    free(jobs);
}

/* The start of a run of `t` that Slurm ended (requeued) unseen, as early as it may have been:
 * its recorded start, else the last moment it was known not running (the start of the last
 * listing recorded, when `t` was already followed then, or its dispatch). Never later than the
 * real start, so a run is never charged less than it ran. */
static int64_t run_start_bound(const broker *b, const struct tracked *t)
{
    if (t->start > 0) return t->start;
    return b->listed_at > t->known_since ? b->listed_at : t->known_since;
}

/* Compares Slurm's view of a followed job with what was recorded; when it changed, fills `c`
 * with Slurm's view as antennad records it: a start only once the job left pending, an end and
 * an exit code only once it is terminal, and the runs Slurm ended by requeueing it (its restart
 * count grew) with their span: from run_start_bound to the last requeue (Slurm's submit time is
 * reset to it). */
static bool job_changed(const broker *b, const struct tracked *t, const slurm_adapter_job *s,
                        registry_slurm_change *c)
{
    bool terminal = store_state_terminal(s->state);
    bool started = strcmp(s->state, "pending") != 0 && s->start_time > 0;
    int64_t start = started ? s->start_time : 0;
    int runs = s->restarts > t->restarts ? s->restarts - t->restarts : 0;
    /* Without a requeue a start never moves: keep the first one seen. */
    if (runs == 0 && t->start > 0 && (start == 0 || start > t->start)) start = t->start;
    int64_t end = terminal ? s->end_time : 0;
    bool has_exit = s->has_exit_code && terminal;
    int exit_code = has_exit ? s->exit_code : 0;
    if (runs == 0 && strcmp(t->state, s->state) == 0 && strcmp(t->reason, s->reason) == 0 &&
        t->start == start && t->end == end && t->has_exit == has_exit && t->exit_code == exit_code)
        return false;
    memset(c, 0, sizeof *c);
    if (runs > 0) {
        c->runs_ended = runs;
        c->run_start = run_start_bound(b, t);
        int64_t last = s->submit_time;
        if (last <= c->run_start) last = start > c->run_start ? start : (int64_t)time(NULL);
        c->run_end = last;
    }
    c->id = t->id;
    c->slurm_job_id = t->slurm_id;
    snprintf(c->state, sizeof c->state, "%s", s->state);
    /* antennad ended it (see budget_end): its end says why */
    snprintf(c->reason, sizeof c->reason, "%s",
             terminal && t->budget_end ? BUDGET_END_REASON : s->reason);
    c->start_time = start;
    c->end_time = end;
    c->has_exit_code = has_exit;
    c->exit_code = exit_code;
    return true;
}

/* Records in `t` what change `c` (as job_changed made it) says. */
static void tracked_apply(struct tracked *t, const registry_slurm_change *c)
{
    snprintf(t->state, sizeof t->state, "%s", c->state);
    snprintf(t->reason, sizeof t->reason, "%s", c->reason);
    t->start = c->start_time;
    t->end = c->end_time;
    t->restarts += c->runs_ended;
    t->has_exit = c->has_exit_code;
    t->exit_code = c->exit_code;
}

/* A free slot at the end of *chg (n used, *cap allocated), growing it. NULL on no memory. */
static registry_slurm_change *chg_slot(registry_slurm_change **chg, size_t n, size_t *cap)
{
    if (n == *cap) {
        size_t ncap = *cap ? 2 * *cap : 64;
        registry_slurm_change *p = realloc(*chg, ncap * sizeof *p);
        if (p == NULL) return NULL;
        *chg = p;
        *cap = ncap;
    }
    return &(*chg)[n];
}

static int cmp_record(const void *a, const void *b)
{
    const slurm_adapter_record *x = a, *y = b;
    if (x->job_id != y->job_id) return x->job_id > y->job_id ? 1 : -1;
    return (x->submit_time > y->submit_time) - (x->submit_time < y->submit_time);
}

/* slurmdbd's records of the Slurm jobs ids[0..n) (slurm_adapter_records_by_id), sorted by Slurm
 * id then submit time, so that each job's records are found by one search (records_of_id). Marks
 * the cluster as without slurmdbd on -ENOTSUP. Worker thread. Same returns. */
static int records_read(broker *b, const uint32_t *ids, size_t n, slurm_adapter_record **rec,
                        size_t *nrec, char *err, size_t errlen)
{
    rpc_begin(b);
    int64_t t0 = metrics_now_us();
    int rc = slurm_adapter_records_by_id(b->sa, ids, n, rec, nrec, err, errlen);
    metrics_slurm_rpc(METRICS_RPC_RECORDS, metrics_now_us() - t0, rc < 0 && rc != -ENOTSUP);
    rpc_end(b);
    if (rc == -ENOTSUP) atomic_store(&b->no_dbd, true);
    if (rc == 0 && *nrec > 1) qsort(*rec, *nrec, sizeof **rec, cmp_record);
    return rc;
}

/* The records of Slurm job `slurm_id` in v[0..n) (sorted by records_read): v[*lo..*lo + count),
 * oldest first. O(log n). */
static size_t records_of_id(const slurm_adapter_record *v, size_t n, int64_t slurm_id, size_t *lo)
{
    size_t a = 0, z = n;
    while (a < z) {
        size_t mid = a + (z - a) / 2;
        if ((int64_t)v[mid].job_id < slurm_id)
            a = mid + 1;
        else
            z = mid;
    }
    *lo = a;
    size_t k = a;
    while (k < n && (int64_t)v[k].job_id == slurm_id)
        k++;
    return k - a;
}

/* The record of followed job `t`'s current run among v[n] (sorted): its Slurm id and its tag
 * (AdminComment, which only root can set: never its comment or name), the latest such job when an
 * id was reused; never a run that Slurm requeued. */
static const slurm_adapter_record *record_of(const broker *b, const struct tracked *t,
                                             const slurm_adapter_record *v, size_t n)
{
    size_t lo, k = records_of_id(v, n, t->slurm_id, &lo);
    while (k-- > 0)
        if (!v[lo + k].requeued && tag_job_id(b, v[lo + k].admin_comment) == t->id)
            return &v[lo + k];
    return NULL;
}

/* The runs of followed job `t` that slurmdbd recorded as ended by a requeue (its records with its
 * tag marked requeued; each requeue gives the next record a later submit time) among v[n]
 * (sorted). Returns their count; *from / *to is the span of those not charged yet (beyond
 * t->restarts), 0 when none. */
static int requeued_runs(const broker *b, const struct tracked *t, const slurm_adapter_record *v,
                         size_t n, int64_t *from, int64_t *to)
{
    size_t lo, k = records_of_id(v, n, t->slurm_id, &lo);
    int count = 0;
    *from = *to = 0;
    for (size_t i = lo; i < lo + k; i++) {
        if (!v[i].requeued || tag_job_id(b, v[i].admin_comment) != t->id) continue;
        if (count++ < t->restarts) continue; /* charged already */
        if (*from == 0 || v[i].start_time < *from) *from = v[i].start_time;
        if (v[i].end_time > *to) *to = v[i].end_time;
    }
    return count;
}

/* Sets the span of change `c` of `t` from slurmdbd's records (requeued_runs: `count` requeued
 * runs, the uncharged ones over [from, to]) when they hold every run `c` ends. Returns whether. */
static bool span_from_records(const struct tracked *t, registry_slurm_change *c, int count,
                              int64_t from, int64_t to)
{
    if (c->runs_ended <= 0 || count - t->restarts < c->runs_ended || from <= 0 || to < from)
        return false;
    c->run_start = t->start > 0 && t->start < from ? t->start : from;
    c->run_end = to;
    return true;
}

/* Adds to *chg the changes of the followed jobs that the last listing did not hold: the end
 * slurmdbd recorded (as a normal end), or `lost` when slurmdbd (reachable) has no finished record
 * of it after the grace time, or has no slurmdbd at all. While slurmdbd cannot be reached nothing
 * is decided: they are read again RECHECK_S later. Returns 0 or -ENOMEM. */
static int ends_from_record(broker *b, registry_slurm_change **chg, size_t *nchg, size_t *cap)
{
    size_t nmiss = 0;
    for (size_t i = 0; i < b->ntr; i++)
        if (b->tr[i].seen != b->gen) nmiss++;
    if (nmiss == 0) return 0;
    uint32_t *ids = calloc(nmiss, sizeof *ids);
    if (ids == NULL) return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < b->ntr; i++)
        if (b->tr[i].seen != b->gen) ids[k++] = (uint32_t)b->tr[i].slurm_id;
    slurm_adapter_record *rec = NULL;
    size_t nrec = 0;
    char err[256] = "";
    int rrc = -ENOTSUP;
    if (!atomic_load(&b->no_dbd)) rrc = records_read(b, ids, nmiss, &rec, &nrec, err, sizeof err);
    free(ids);
    int64_t now = time(NULL);
    int64_t grace = b->opt.record_grace_ms ? (int64_t)b->opt.record_grace_ms : 30000;
    bool again = false;
    int rc = 0;
    for (size_t i = 0; i < b->ntr && rc == 0; i++) {
        struct tracked *t = &b->tr[i];
        if (t->seen == b->gen) continue;
        if (t->missing_since == 0) t->missing_since = now;
        registry_slurm_change *c = chg_slot(chg, *nchg, cap);
        if (c == NULL) {
            rc = -ENOMEM;
            break;
        }
        const slurm_adapter_record *r = rrc == 0 ? record_of(b, t, rec, nrec) : NULL;
        if (r != NULL && r->end_time > 0 && store_state_terminal(r->state)) {
            slurm_adapter_job sj;
            memset(&sj, 0, sizeof sj);
            sj.job_id = r->job_id;
            snprintf(sj.state, sizeof sj.state, "%s", r->state);
            sj.submit_time = r->submit_time;
            sj.start_time = r->start_time;
            sj.end_time = r->end_time;
            sj.has_exit_code = r->start_time > 0;
            sj.exit_code = r->exit_code;
            int64_t from, to;
            sj.restarts = requeued_runs(b, t, rec, nrec, &from, &to);
            if (job_changed(b, t, &sj, c)) {
                /* slurmdbd knows when the runs ran: no bound needed */
                span_from_records(t, c, sj.restarts, from, to);
                LOG(LOG_INFO,
                    "job %" PRId64 " (Slurm %" PRId64 "): slurmctld forgot it; slurmdbd "
                    "recorded its end (%s, %" PRId64 " s)",
                    t->id, t->slurm_id, r->state, r->elapsed_s);
                (*nchg)++;
            }
            continue;
        }
        if (rrc != 0 && rrc != -ENOTSUP) { /* slurmdbd away: nothing known, nothing decided */
            again = true;
            continue;
        }
        if (rrc == 0 && (now - t->missing_since) * 1000 < grace) { /* slurmdbd may lag */
            again = true;
            continue;
        }
        memset(c, 0, sizeof *c);
        c->id = t->id;
        c->slurm_job_id = t->slurm_id;
        c->lost = true;
        snprintf(c->state, sizeof c->state, "lost");
        if (rrc == -ENOTSUP)
            snprintf(c->reason, sizeof c->reason,
                     "Slurm no longer knows job %" PRId64
                     " and the cluster has no slurmdbd: charged its full hold until staff "
                     "correct it",
                     t->slurm_id);
        else if (r != NULL)
            snprintf(c->reason, sizeof c->reason,
                     "slurmctld no longer knows job %" PRId64
                     " and slurmdbd recorded no end for it (%s): charged its full hold until "
                     "staff correct it",
                     t->slurm_id, r->state);
        LOG(LOG_WARN, "job %" PRId64 " (Slurm %" PRId64 "): lost: %s", t->id, t->slurm_id,
            c->reason[0] ? c->reason : "neither slurmctld nor slurmdbd knows it");
        (*nchg)++;
    }
    if (rrc < 0 && rrc != -ENOTSUP)
        LOG(LOG_WARN, "cannot read %zu job record(s) from slurmdbd: %s (will retry)", nmiss, err);
    slurm_adapter_records_free(rec);
    if (again) b->recheck_at = now + (grace < RECHECK_S * 1000 ? 1 : RECHECK_S);
    return rc;
}

/* Whether change `c` of `t` spans its requeued runs by a bound only: the run's start was not seen,
 * or several runs ended between two looks. */
static bool span_unsure(const struct tracked *t, const registry_slurm_change *c)
{
    return c->runs_ended > 0 && (t->start == 0 || c->runs_ended > 1);
}

/* Runs that Slurm requeued between two looks have a bound for a span (run_start_bound, which may
 * reach back to the job's dispatch after a restart of antennad): with slurmdbd, their records give
 * it exactly. Reads the records of such jobs among chg[0..*n) in one RPC and sets each span that
 * slurmdbd has whole. A change whose runs slurmdbd does not have yet (it lags, or is away) is
 * taken out of chg, to be seen again on the next listing (the caller makes it a full one), for up
 * to the record grace time; then the bound stands. Returns how many changes it took out, or
 * -ENOMEM. */
static int runs_from_record(broker *b, registry_slurm_change *chg, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        struct tracked *t = tracked_find(b, chg[i].slurm_job_id);
        if (t != NULL && span_unsure(t, &chg[i])) k++;
    }
    if (k == 0 || atomic_load(&b->no_dbd)) return 0;
    uint32_t *ids = calloc(k, sizeof *ids);
    if (ids == NULL) return -ENOMEM;
    k = 0;
    for (size_t i = 0; i < *n; i++) {
        struct tracked *t = tracked_find(b, chg[i].slurm_job_id);
        if (t != NULL && span_unsure(t, &chg[i])) ids[k++] = (uint32_t)t->slurm_id;
    }
    slurm_adapter_record *rec = NULL;
    size_t nrec = 0;
    char err[256] = "";
    int rrc = records_read(b, ids, k, &rec, &nrec, err, sizeof err);
    free(ids);
    int64_t now = time(NULL);
    int64_t grace = b->opt.record_grace_ms ? (int64_t)b->opt.record_grace_ms : 30000;
    size_t keep = 0;
    int out = 0;
    for (size_t i = 0; i < *n; i++) {
        registry_slurm_change *c = &chg[i];
        struct tracked *t = tracked_find(b, c->slurm_job_id);
        if (t == NULL || !span_unsure(t, c)) {
            chg[keep++] = *c;
            continue;
        }
        int64_t from = 0, to = 0;
        int count = rrc == 0 ? requeued_runs(b, t, rec, nrec, &from, &to) : 0;
        if (rrc == 0 && span_from_records(t, c, count, from, to)) {
            t->unsure_since = 0;
            chg[keep++] = *c;
            continue;
        }
        if (t->unsure_since == 0) t->unsure_since = now;
        if (rrc != -ENOTSUP && (now - t->unsure_since) * 1000 < grace) {
            out++; /* seen again on the next listing */
            continue;
        }
        LOG(LOG_WARN,
            "job %" PRId64 " (Slurm %" PRId64 "): slurmdbd has no record of the run(s) Slurm "
            "requeued unseen%s%s: charged from the last look that saw it waiting",
            t->id, t->slurm_id, rrc < 0 && rrc != -ENOTSUP ? ": " : "",
            rrc < 0 && rrc != -ENOTSUP ? err : "");
        t->unsure_since = 0;
        chg[keep++] = *c;
    }
    *n = keep;
    slurm_adapter_records_free(rec);
    return out;
}

/* Applies a full listing of our Slurm jobs to the followed jobs: O(listing log followed). Returns
 * 0, 1 when some changes wait for slurmdbd (runs_from_record: the next listing must be a full
 * one), or a negative errno. */
static int apply_listing(broker *b, const slurm_adapter_job *sj, size_t n)
{
    registry_slurm_change *chg = NULL;
    size_t nchg = 0, cap = 0;
    int rc = 0, waiting = 0;
    b->gen++;
    for (size_t i = 0; i < n; i++) {
        struct tracked *t = tracked_find(b, sj[i].job_id);
        if (t == NULL) continue;
        t->seen = b->gen;
        t->missing_since = 0;
        if (chg_slot(&chg, nchg, &cap) == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        if (job_changed(b, t, &sj[i], &chg[nchg])) nchg++;
    }
    waiting = runs_from_record(b, chg, &nchg);
    if (waiting < 0) {
        rc = waiting;
        goto out;
    }
    /* A followed job missing from a full listing is no longer known to slurmctld: its end is
     * read from slurmdbd. */
    if ((rc = ends_from_record(b, &chg, &nchg, &cap)) < 0) goto out;
    if (nchg == 0) goto out;
    rc = registry_slurm_changes(b->reg, chg, nchg);
    if (rc < 0) {
        LOG(LOG_ERROR, "broker: cannot record %zu Slurm change(s) (%s); will retry", nchg,
            strerror(-rc));
        goto out;
    }
    /* a line logged about a job ends with its request's id (copied: t may be removed) */
    char rid[sizeof b->tr->request_id];
    const char *old_rid = log_request_id_set(NULL);
    for (size_t i = 0; i < nchg; i++) {
        struct tracked *t = tracked_find(b, chg[i].slurm_job_id);
        if (t == NULL) continue;
        memcpy(rid, t->request_id, sizeof rid);
        log_request_id_set(rid);
        if (chg[i].rc == -ENOENT || chg[i].finished || chg[i].lost) {
            if (chg[i].rc == 0 && chg[i].finished)
                LOG(LOG_INFO,
                    "job %" PRId64 " (Slurm %" PRId64 "): %s -> %s, charged %" PRId64 " GPU-s",
                    t->id, t->slurm_id, t->state, chg[i].state, chg[i].charge_gpu_seconds);
            if (chg[i].rc == 0 || chg[i].rc == -ENOENT) tracked_remove(b, t);
            continue;
        }
        if (chg[i].rc < 0) {
            LOG(LOG_ERROR, "job %" PRId64 ": Slurm change not recorded (%s)", t->id,
                strerror(-chg[i].rc));
            rc = chg[i].rc;
            continue;
        }
        if (strcmp(t->state, chg[i].state) != 0)
            LOG(LOG_INFO, "job %" PRId64 " (Slurm %" PRId64 "): %s -> %s", t->id, t->slurm_id,
                t->state, chg[i].state);
        if (chg[i].runs_ended > 0) {
            metrics_requeued_runs((unsigned)chg[i].runs_ended, 0);
            LOG(LOG_INFO,
                "job %" PRId64 " (Slurm %" PRId64 "): Slurm requeued it: %d run(s) ended and "
                "charged (%" PRId64 " s)%s",
                t->id, t->slurm_id, chg[i].runs_ended, chg[i].run_end - chg[i].run_start,
                chg[i].over_budget ? "; its budget no longer covers another run: cancelling it"
                                   : "; it runs again");
        }
        if (chg[i].over_budget && !t->budget_end && !idvec_has(&b->cancels_open, t->id) &&
            idvec_push(&b->cancels_open, t->id) == 0) {
            t->budget_end = true;
            metrics_requeued_runs(0, 1);
        }
        /* Without kill_invalid_depend Slurm leaves a job whose dependency can never be met
         * pending for ever: antennad cancels it (its end names the condition, see registry.h) */
        if (strcmp(chg[i].reason, "DependencyNeverSatisfied") == 0 &&
            strcmp(t->reason, chg[i].reason) != 0 && !idvec_has(&b->cancels_open, t->id) &&
            idvec_push(&b->cancels_open, t->id) == 0)
            LOG(LOG_INFO,
                "job %" PRId64 " (Slurm %" PRId64 "): its dependency can never be met: "
                "cancelling it",
                t->id, t->slurm_id);
        tracked_apply(t, &chg[i]);
    }
    log_request_id_set(old_rid);
    b->dirty = true;
out:
    free(chg);
    return rc < 0 ? rc : waiting > 0 ? 1 : 0;
}

static int64_t tag_job_id(const broker *b, const char *tag)
{
    size_t plen = strlen(b->tag_prefix);
    if (strncmp(tag, b->tag_prefix, plen) != 0) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(tag + plen, &end, 10);
    if (errno != 0 || (*end != '\0' && strncmp(end, " rid=", 5) != 0) || end == tag + plen ||
        v <= 0)
        return -1;
    return v;
}

/* Looks each unresolved job up by its tag in a full listing: found, it is dispatched with that
 * id; not found, it was never accepted and goes back to the queue. */
static void resolve(broker *b, const slurm_adapter_job *sj, size_t n)
{
    if (b->unresolved.n == 0) return;
    registry_outcome *o = calloc(b->unresolved.n, sizeof *o);
    if (o == NULL) return;
    for (size_t k = 0; k < b->unresolved.n; k++) {
        int64_t id = b->unresolved.v[k];
        const slurm_adapter_job *hit = NULL;
        for (size_t i = 0; i < n && hit == NULL; i++)
            if (tag_job_id(b, sj[i].tag) == id) hit = &sj[i];
        if (hit != NULL) {
            outcome_set(&o[k], id, REGISTRY_SUBMITTED, hit->job_id, NULL);
            LOG(LOG_INFO, "job %" PRId64 ": found in Slurm as job %" PRIu32, id, hit->job_id);
        } else {
            outcome_set(&o[k], id, REGISTRY_REQUEUE, 0,
                        "requeued: Slurm never accepted its submission");
            LOG(LOG_INFO, "job %" PRId64 ": not in Slurm, requeued", id);
        }
    }
    size_t n_un = b->unresolved.n;
    b->unresolved.n = 0;
    if (record_outcomes(b, o, n_un) < 0) { /* kept in pend: retried next tick */
    }
    free(o);
}

/* Whether Slurm job `slurm_id` is one the broker follows: the poll keeps it whatever its user did
 * to its comment, name or tag. */
static bool follows_slurm_id(void *arg, uint32_t slurm_id)
{
    return tracked_find(arg, slurm_id) != NULL;
}

/* Polls Slurm (a full listing when `full`) and applies what changed. Returns 0 or -EAGAIN. */
static int poll_slurm(broker *b, bool full, bool resolve_now)
{
    slurm_adapter_job *sj = NULL;
    size_t n = 0;
    bool changed = false;
    char err[256] = "";
    if (full) slurm_adapter_poll_reset(b->sa);
    int64_t listing_at = time(NULL);
    rpc_begin(b);
    int64_t t0 = metrics_now_us();
    int rc = slurm_adapter_poll(b->sa, b->tag_prefix, follows_slurm_id, b, &sj, &n, &changed, err,
                                sizeof err);
    metrics_slurm_rpc(METRICS_RPC_POLL, metrics_now_us() - t0, rc < 0);
    rpc_end(b);
    if (rc < 0) {
        if (atomic_exchange(&b->slurm_ok, false))
            LOG(LOG_WARN, "cannot poll Slurm: %s (will retry)", err);
        return rc;
    }
    if (!atomic_exchange(&b->slurm_ok, true)) LOG(LOG_INFO, "Slurm reachable");
    bool whole = true;
    if (changed) {
        if (resolve_now) resolve(b, sj, n);
        /* a change not recorded is found again: the next poll returns the full table */
        if (apply_listing(b, sj, n) != 0) {
            slurm_adapter_poll_reset(b->sa);
            whole = false;
        }
    }
    if (whole) b->listed_at = listing_at; /* every followed job was as recorded then */
    free(sj);
    return 0;
}

/* Sends the cancels asked since the last tick, for jobs we follow in Slurm. A cancel of a job
 * whose dispatch is still unrecorded waits for it. */
static void send_cancels(broker *b)
{
    char err[256];
    pthread_mutex_lock(&b->inbox_mu);
    for (size_t i = 0; i < b->inbox.n; i++)
        if (!idvec_has(&b->cancels_open, b->inbox.v[i]))
            idvec_push(&b->cancels_open, b->inbox.v[i]);
    b->inbox.n = 0;
    pthread_mutex_unlock(&b->inbox_mu);
    size_t keep = 0;
    for (size_t i = 0; i < b->cancels_open.n; i++) {
        int64_t id = b->cancels_open.v[i];
        struct tracked *t = tracked_find_id(b, id);
        if (t == NULL) {
            /* not (yet) in Slurm: keep it while the job is still being dispatched */
            store_job j;
            if (store_job_get(registry_store(b->reg), id, &j) == 0 &&
                !store_state_terminal(j.state) && strcmp(j.state, STORE_STATE_QUEUED) != 0)
                b->cancels_open.v[keep++] = id;
            continue;
        }
        rpc_begin(b);
        int64_t t0 = metrics_now_us();
        int rc = slurm_adapter_cancel(b->sa, (uint32_t)t->slurm_id, err, sizeof err);
        metrics_slurm_rpc(METRICS_RPC_CANCEL, metrics_now_us() - t0,
                          rc < 0 && rc != -EALREADY && rc != -ENOENT);
        rpc_end(b);
        if (rc == -EAGAIN) {
            atomic_store(&b->slurm_ok, false);
            for (; i < b->cancels_open.n; i++)
                b->cancels_open.v[keep++] = b->cancels_open.v[i];
            break;
        }
        if (rc < 0 && rc != -EALREADY && rc != -ENOENT)
            LOG(LOG_WARN, "job %" PRId64 ": cancel of Slurm job %" PRId64 " failed: %s", id,
                t->slurm_id, err);
        else
            LOG(LOG_INFO, "job %" PRId64 ": cancel sent to Slurm job %" PRId64, id, t->slurm_id);
    }
    b->cancels_open.n = keep;
}

/* After a restart: follows every job the store has in Slurm, and resolves every job left in
 * "dispatching" by looking it up by its tag. */
static int recover(broker *b)
{
    store_job *jobs = NULL;
    size_t n = 0;
    int rc = store_job_list_in_slurm(registry_store(b->reg), &jobs, &n);
    if (rc < 0) {
        LOG(LOG_ERROR, "recovery: cannot list the jobs in Slurm (%s)", strerror(-rc));
        return rc;
    }
    b->ntr = 0;
    b->unresolved.n = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(jobs[i].state, STORE_STATE_DISPATCHING) == 0)
            rc = idvec_push(&b->unresolved, jobs[i].id);
        else
            rc = tracked_add(b, jobs[i].id, jobs[i].slurm_job_id, &jobs[i]);
        if (rc == 0 && jobs[i].cancel_requested) rc = idvec_push(&b->cancels_open, jobs[i].id);
        if (rc < 0) break;
    }
    free(jobs);
    if (rc < 0) return rc;
    if ((rc = poll_slurm(b, true, true)) < 0) {
        LOG(LOG_WARN, "recovery waits for Slurm");
        return rc;
    }
    LOG(LOG_INFO, "recovery done: %zu of our jobs followed in Slurm, %zu looked up", b->ntr, n);
    return 0;
}

/* Sizes the window of jobs waiting in Slurm from the partition's CPUs (each job takes one at
 * least), never below the configured window. */
static void refresh_window(broker *b, int64_t now)
{
    int cpus = 0, nodes = 0;
    char err[256];
    b->last_window = now;
    rpc_begin(b);
    int64_t t0 = metrics_now_us();
    int rc = slurm_adapter_partition_size(b->sa, b->partition, &cpus, &nodes, err, sizeof err);
    metrics_slurm_rpc(METRICS_RPC_PARTITION, metrics_now_us() - t0, rc < 0);
    rpc_end(b);
    if (rc < 0) return;
    int w = b->opt.cluster_window > 0 ? b->opt.cluster_window : 4;
    if (cpus > w) w = cpus;
    registry_window_set(b->reg, w);
}

static void tick_run(broker *b);

static void tick_work(uv_work_t *w)
{
    broker *b = w->data;
    pthread_mutex_lock(&b->sa_mu);
    tick_run(b);
    pthread_mutex_unlock(&b->sa_mu);
}

int broker_slurm_exclusive(broker *b, int (*fn)(slurm_adapter *sa, void *arg), void *arg)
{
    if (b == NULL) return -ENODEV;
    pthread_mutex_lock(&b->sa_mu);
    int rc = fn(b->sa, arg);
    pthread_mutex_unlock(&b->sa_mu);
    return rc;
}

static void tick_run(broker *b)
{
    int64_t now = time(NULL);
    if (!b->recovered) {
        if (recover(b) < 0) return;
        b->recovered = true;
        assoc_all(b);
        gpu_limits_all(b);
        refresh_window(b, now);
        b->dirty = true;
    }
    retry_pending(b);
    bool resolve_due = b->unresolved.n > 0 &&
                       uv_hrtime() - b->unresolved_at >= b->opt.resolve_after_ms * 1000000ull;
    bool recheck = b->recheck_at > 0 && now >= b->recheck_at;
    if (recheck) b->recheck_at = 0;
    if (poll_slurm(b, resolve_due || recheck, resolve_due) < 0) return; /* Slurm away */
    assoc_drain(b);
    gpu_limits_drain(b);
    send_cancels(b);
    if (now - b->last_window >= WINDOW_REFRESH_S) refresh_window(b, now);
    /* A job whose submit answer was lost blocks nothing else, but nothing is sent while Slurm
     * does not answer. */
    if ((atomic_exchange(&b->dirty, false) || now - b->last_dispatch >= IDLE_RETRY_S) &&
        atomic_load(&b->slurm_ok))
        dispatch(b, now);
    if (now - b->last_housekeep >= HOUSEKEEP_S) {
        b->last_housekeep = now;
        malloc_trim(0); /* give back what bursts of requests freed */
        int rc = registry_housekeep(b->reg, now);
        if (rc < 0 && rc != -EBUSY)
            LOG(LOG_WARN, "broker: housekeeping failed (%s)", strerror(-rc));
    }
}

/* --- loop-thread side ------------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t);

static void timer_closed(uv_handle_t *h)
{
    broker *b = h->data;
    void (*done)(void *) = b->done;
    void *arg = b->done_arg;
    free(b->tr);
    free(b->unresolved.v);
    free(b->pend);
    free(b->cancels_open.v);
    free(b->inbox.v);
    pthread_mutex_destroy(&b->inbox_mu);
    strset_clear(&b->ensured);
    free(b->ensured.v);
    strset_clear(&b->assoc_todo);
    free(b->assoc_todo.v);
    free(b->limits);
    pthread_mutex_destroy(&b->assoc_mu);
    pthread_mutex_destroy(&b->sa_mu);
    free(b);
    if (done) done(arg);
}

static void tick_done(uv_work_t *w, int status)
{
    broker *b = w->data;
    (void)status;
    b->busy = false;
    if (b->closing) {
        uv_close((uv_handle_t *)&b->timer, timer_closed);
        return;
    }
    bool again = b->kicked || atomic_load(&b->dirty);
    uv_timer_start(&b->timer, on_timer, again ? 0 : b->opt.poll_interval_ms, 0);
    b->kicked = false;
}

static void on_timer(uv_timer_t *t)
{
    broker *b = t->data;
    if (b->busy || b->closing) return;
    b->busy = true;
    if (uv_queue_work(b->loop, &b->work, tick_work, tick_done) < 0) {
        b->busy = false;
        uv_timer_start(&b->timer, on_timer, b->opt.poll_interval_ms, 0);
    }
}

int broker_new(uv_loop_t *loop, registry *reg, slurm_adapter *sa, const broker_options *opt,
               broker **out)
{
    broker *b = calloc(1, sizeof *b);
    if (b == NULL) return -ENOMEM;
    b->loop = loop;
    b->reg = reg;
    b->sa = sa;
    b->opt = *opt;
    snprintf(b->partition, sizeof b->partition, "%s", opt->partition ? opt->partition : "");
    snprintf(b->spool_dir, sizeof b->spool_dir, "%s", opt->spool_dir);
    b->opt.partition = b->partition[0] ? b->partition : NULL;
    b->opt.spool_dir = b->spool_dir;
    if (b->opt.poll_interval_ms == 0) b->opt.poll_interval_ms = 1000;
    if (b->opt.resolve_after_ms == 0) b->opt.resolve_after_ms = 30000;
    snprintf(b->tag_prefix, sizeof b->tag_prefix,
             "antenna:%s:", store_instance_id(registry_store(reg)));
    atomic_init(&b->slurm_ok, false);
    atomic_init(&b->dirty, true);
    atomic_init(&b->rpc_since, 0);
    pthread_mutex_init(&b->inbox_mu, NULL);
    pthread_mutex_init(&b->assoc_mu, NULL);
    atomic_init(&b->no_dbd, false);
    pthread_mutex_init(&b->sa_mu, NULL);
    int rc = uv_timer_init(loop, &b->timer);
    if (rc < 0) {
        pthread_mutex_destroy(&b->assoc_mu);
        pthread_mutex_destroy(&b->inbox_mu);
        pthread_mutex_destroy(&b->sa_mu);
        free(b);
        return rc;
    }
    b->timer.data = b;
    b->work.data = b;
    *out = b;
    return 0;
}

int broker_start(broker *b)
{
    b->started = true;
    return uv_timer_start(&b->timer, on_timer, 0, 0);
}

void broker_kick(broker *b)
{
    if (b == NULL || b->closing || !b->started) return;
    atomic_store(&b->dirty, true);
    if (b->busy)
        b->kicked = true;
    else
        uv_timer_start(&b->timer, on_timer, 0, 0);
}

int broker_cancel_push(broker *b, int64_t id)
{
    if (b == NULL) return 0;
    pthread_mutex_lock(&b->inbox_mu);
    int rc = b->inbox.n >= CANCEL_INBOX_MAX ? -ENOSPC : idvec_push(&b->inbox, id);
    pthread_mutex_unlock(&b->inbox_mu);
    return rc;
}

bool broker_slurm_ok(const broker *b)
{
    if (b == NULL) return false;
    broker *m = (broker *)b;
    uint64_t since = atomic_load(&m->rpc_since);
    /* a call that has not come back within a poll interval: slurmctld is not answering */
    if (since != 0 && uv_hrtime() - since > (uint64_t)b->opt.poll_interval_ms * 1000000ull)
        return false;
    return atomic_load(&m->slurm_ok);
}

void broker_close(broker *b, void (*done)(void *arg), void *arg)
{
    if (b == NULL) return;
    b->closing = true;
    b->done = done;
    b->done_arg = arg;
    uv_timer_stop(&b->timer);
    if (!b->busy) uv_close((uv_handle_t *)&b->timer, timer_closed);
}
