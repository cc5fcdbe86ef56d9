/* broker.c - drives each job through durable steps: queued -> dispatching -> dispatched -> Slurm's
 * states -> a terminal state. Never calls libslurm or SQLite on the loop thread: every tick runs in
 * uv_queue_work, one at a time.
 */
#include "broker.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct broker {
    uv_loop_t *loop;
    store *st;
    slurm_adapter *sa;
    policy_state *ps;
    broker_options opt;
    char partition[64];
    char spool_dir[PATH_MAX];
    char tag_prefix[64];
    uv_timer_t timer;
    uv_work_t work;
    bool started, busy, kicked, closing, recovered;
    atomic_bool slurm_ok;
    int64_t *cancel_sent; /* our job ids whose cancel was sent by this process (worker only) */
    size_t n_cancel_sent, cap_cancel_sent;
    void (*done)(void *);
    void *done_arg;
};

char *broker_job_output_path(const broker_options *opt, long long id, char *buf, size_t len)
{
    snprintf(buf, len, "%s/jobs/%lld/output.log", opt->spool_dir, id);
    return buf;
}

/* --- worker-thread steps ------------------------------------------------------------------ */

/* Appends an audit entry by the broker (actor "antennad"); details_fmt makes a JSON object. */
static void broker_audit(broker *b, const store_job *j, const char *action, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void broker_audit(broker *b, const store_job *j, const char *action, const char *fmt, ...)
{
    char details[512];
    va_list ap;
    if (b->opt.audit == NULL) return;
    va_start(ap, fmt);
    vsnprintf(details, sizeof details, fmt, ap);
    va_end(ap);
    int rc = audit_log(b->opt.audit, "antennad", j->partner, action, details);
    if (rc < 0)
        LOG(LOG_ERROR, "audit: cannot append %s for job %" PRId64 " (%s)", action, j->id,
            strerror(-rc));
}

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
    int m = snprintf(dir, len, "%s/%" PRId64, jobs, id);
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

/* The engine side of a job that left Slurm's hands without running: its hold is released. */
static void engine_finished(broker *b, int64_t id, int64_t elapsed, int64_t *charge_gpu,
                            int64_t *charge_cpu)
{
    char period[8];
    int64_t g = 0, c = 0;
    policy *pol = policy_state_lock(b->ps);
    policy_job_finished(pol, id, elapsed, time(NULL), &g, &c, period);
    policy_state_unlock(b->ps);
    if (charge_gpu) *charge_gpu = g;
    if (charge_cpu) *charge_cpu = c;
}

static void fail_dispatch(broker *b, const store_job *j, const char *why)
{
    LOG(LOG_WARN, "job %" PRId64 ": not dispatched: %s", j->id, why);
    if (store_job_transition(b->st, j->id, STORE_STATE_DISPATCHING, "failed", why) == 0) {
        engine_finished(b, j->id, 0, NULL, NULL);
        broker_audit(b, j, "job.finished",
                     "{\"job\":%" PRId64 ",\"user\":\"%s\",\"state\":\"failed\","
                     "\"dispatched\":false,\"charge_gpu_seconds\":0}",
                     j->id, j->user);
    }
}

/* Slurm could not be reached: the job goes back to the queue and its hold is released. */
static void requeue_dispatch(broker *b, int64_t id, const char *why)
{
    if (store_job_transition(b->st, id, STORE_STATE_DISPATCHING, STORE_STATE_QUEUED, why) == 0) {
        policy *pol = policy_state_lock(b->ps);
        policy_job_requeue(pol, id);
        policy_state_unlock(b->ps);
    }
}

/* Submits one job that this tick moved to dispatching. Returns -EAGAIN when Slurm is
 * unreachable (the job is back in the queue), else 0. */
static int dispatch_one(broker *b, const store_job *j)
{
    char why[STORE_REASON_MAX], dir[PATH_MAX], out[PATH_MAX + 32], tag[128], err[192] = "";
    char *script = NULL;
    uid_t uid;
    gid_t gid;
    uint32_t slurm_id = 0;

    if (lookup_account(j->unix_user, &uid, &gid, why, sizeof why) < 0) {
        fail_dispatch(b, j, why);
        return 0;
    }
    if (make_job_dir(b, j->id, uid, gid, dir, sizeof dir, why, sizeof why) < 0) {
        fail_dispatch(b, j, why);
        return 0;
    }
    if (store_job_script_get(b->st, j->id, &script) < 0) {
        fail_dispatch(b, j, "the job's script could not be read from the store");
        return 0;
    }
    snprintf(out, sizeof out, "%s/output.log", dir);
    snprintf(tag, sizeof tag, "%s%" PRId64, b->tag_prefix, j->id);
    slurm_adapter_submit_req req = {
        .name = j->name,
        .script = script,
        .partition = b->partition,
        .work_dir = dir,
        .stdout_path = out,
        .tag = tag,
        .uid = uid,
        .gid = gid,
        .gpus = j->gpus,
        .gpu_type = j->gpu_type,
        .cpus_per_task = j->cpus_per_task,
        .mem_mb = j->mem_mb,
        .time_minutes = j->time_minutes,
    };
    int rc = slurm_adapter_submit(b->sa, &req, &slurm_id, err, sizeof err);
    free(script);
    if (rc == -EAGAIN) {
        atomic_store(&b->slurm_ok, false);
        snprintf(why, sizeof why, "waiting for Slurm: %s", err);
        requeue_dispatch(b, j->id, why);
        LOG(LOG_WARN, "job %" PRId64 ": Slurm unreachable, requeued: %s", j->id, err);
        return -EAGAIN;
    }
    if (rc < 0) {
        snprintf(why, sizeof why, "Slurm refused the job: %s", err);
        fail_dispatch(b, j, why);
        return 0;
    }
    atomic_store(&b->slurm_ok, true);
    rc = store_job_set_dispatched(b->st, j->id, slurm_id);
    if (rc < 0)
        LOG(LOG_ERROR,
            "job %" PRId64 ": submitted as Slurm job %" PRIu32
            " but not recorded (%d); it will be found again by its tag",
            j->id, slurm_id, rc);
    else
        LOG(LOG_INFO, "job %" PRId64 " (%s, user %s as %s) dispatched as Slurm job %" PRIu32, j->id,
            j->name, j->user, j->unix_user, slurm_id);
    broker_audit(b, j, "job.dispatched",
                 "{\"job\":%" PRId64 ",\"slurm_job_id\":%" PRIu32
                 ",\"user\":\"%s\",\"unix_user\":\"%s\",\"period\":\"%s\","
                 "\"hold_gpu_seconds\":%" PRId64 ",\"recorded\":%s}",
                 j->id, slurm_id, j->user, j->unix_user, j->period, j->hold_gpu_seconds,
                 rc < 0 ? "false" : "true");
    return 0;
}

/* Writes the engine's wait reason on every queued job whose reason changed. */
static void refresh_reasons(broker *b, policy *pol, int64_t now)
{
    store_job *jobs = NULL;
    size_t n = 0;
    if (store_job_list_active(b->st, &jobs, &n) < 0) return;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(jobs[i].state, STORE_STATE_QUEUED) != 0) continue;
        const char *r = policy_job_reason(pol, jobs[i].id, now);
        if (r != NULL && strcmp(r, jobs[i].reason) != 0) store_job_reason_set(b->st, jobs[i].id, r);
    }
    free(jobs);
}

/* Picks jobs in priority order while the engine allows, writing each one's hold and its move to
 * dispatching in one store transaction, then submits them to Slurm (outside the engine's lock). */
static void dispatch_queued(broker *b)
{
    int64_t now = time(NULL), *picked = NULL;
    size_t n = 0, cap = 0;
    policy *pol = policy_state_lock(b->ps);
    for (;;) {
        int64_t id, hold_gpu, hold_cpu;
        char period[8];
        if (policy_pick(pol, now, &id, &hold_gpu, &hold_cpu, period) < 0) break;
        int rc = store_job_dispatch_begin(b->st, id, period, hold_gpu, hold_cpu);
        if (rc == -EAGAIN || rc == -ENOENT) { /* no longer queued in the store */
            policy_job_dequeue(pol, id);
            continue;
        }
        if (rc < 0) {
            LOG(LOG_ERROR, "job %" PRId64 ": cannot record its dispatch (%s); will retry", id,
                rc == -EDQUOT ? "the store says the budget no longer fits" : strerror(-rc));
            break;
        }
        policy_job_dispatched(pol, id, now);
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            int64_t *p = realloc(picked, ncap * sizeof *p);
            if (p == NULL) {
                /* cannot remember it: give it back, it will be picked again */
                policy_state_unlock(b->ps);
                requeue_dispatch(b, id, NULL);
                pol = policy_state_lock(b->ps);
                break;
            }
            picked = p;
            cap = ncap;
        }
        picked[n++] = id;
    }
    refresh_reasons(b, pol, now);
    policy_state_unlock(b->ps);

    for (size_t i = 0; i < n; i++) {
        store_job j;
        if (store_job_get(b->st, picked[i], &j) < 0) continue;
        if (dispatch_one(b, &j) == -EAGAIN) {
            for (size_t k = i + 1; k < n; k++)
                requeue_dispatch(b, picked[k], "waiting for Slurm: it could not be reached");
            break;
        }
    }
    free(picked);
}

static bool cancel_was_sent(const broker *b, int64_t id)
{
    for (size_t i = 0; i < b->n_cancel_sent; i++)
        if (b->cancel_sent[i] == id) return true;
    return false;
}

static void cancel_mark_sent(broker *b, int64_t id)
{
    if (b->n_cancel_sent == b->cap_cancel_sent) {
        size_t cap = b->cap_cancel_sent ? 2 * b->cap_cancel_sent : 16;
        int64_t *p = realloc(b->cancel_sent, cap * sizeof *p);
        if (p == NULL) return; /* sent again next tick: harmless */
        b->cancel_sent = p;
        b->cap_cancel_sent = cap;
    }
    b->cancel_sent[b->n_cancel_sent++] = id;
}

static void send_cancels(broker *b)
{
    store_job *jobs = NULL;
    size_t n = 0;
    char err[256];
    if (store_job_list_active(b->st, &jobs, &n) < 0) return;
    for (size_t i = 0; i < n; i++) {
        const store_job *j = &jobs[i];
        if (!j->cancel_requested || j->slurm_job_id <= 0 || cancel_was_sent(b, j->id)) continue;
        int rc = slurm_adapter_cancel(b->sa, (uint32_t)j->slurm_job_id, err, sizeof err);
        if (rc == -EAGAIN) {
            atomic_store(&b->slurm_ok, false);
            break;
        }
        if (rc < 0 && rc != -EALREADY && rc != -ENOENT)
            LOG(LOG_WARN, "job %" PRId64 ": cancel of Slurm job %" PRId64 " failed: %s", j->id,
                j->slurm_job_id, err);
        else
            LOG(LOG_INFO, "job %" PRId64 ": cancel sent to Slurm job %" PRId64, j->id,
                j->slurm_job_id);
        cancel_mark_sent(b, j->id);
    }
    free(jobs);
}

struct tag_index {
    int64_t id;
    const slurm_adapter_job *job;
};

static int tag_index_cmp(const void *x, const void *y)
{
    int64_t a = ((const struct tag_index *)x)->id, c = ((const struct tag_index *)y)->id;
    return (a > c) - (a < c);
}

/* Our job id from a tag "antenna:<instance>:<id>", or -1. */
static int64_t tag_job_id(const broker *b, const char *tag)
{
    size_t plen = strlen(b->tag_prefix);
    if (strncmp(tag, b->tag_prefix, plen) != 0) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(tag + plen, &end, 10);
    if (errno != 0 || *end != '\0' || end == tag + plen || v <= 0) return -1;
    return v;
}

/* Builds a sorted index of Slurm's jobs by our id: O(n log n), then O(log n) per lookup. */
static struct tag_index *index_jobs(const broker *b, const slurm_adapter_job *sj, size_t n,
                                    size_t *out_n)
{
    struct tag_index *ix = calloc(n ? n : 1, sizeof *ix);
    size_t k = 0;
    if (ix == NULL) return NULL;
    for (size_t i = 0; i < n; i++) {
        int64_t id = tag_job_id(b, sj[i].tag);
        if (id > 0) ix[k++] = (struct tag_index){id, &sj[i]};
    }
    qsort(ix, k, sizeof *ix, tag_index_cmp);
    *out_n = k;
    return ix;
}

static const slurm_adapter_job *find_job(struct tag_index *ix, size_t n, int64_t id,
                                         int64_t slurm_id)
{
    struct tag_index key = {id, NULL};
    struct tag_index *hit = bsearch(&key, ix, n, sizeof *ix, tag_index_cmp);
    if (hit == NULL) return NULL;
    /* A job resubmitted by hand could share the tag: prefer the one we recorded. */
    for (struct tag_index *p = hit; p >= ix && p->id == id; p--)
        if ((int64_t)p->job->job_id == slurm_id) return p->job;
    for (struct tag_index *p = hit; p < ix + n && p->id == id; p++)
        if ((int64_t)p->job->job_id == slurm_id) return p->job;
    return hit->job;
}

/* Applies a full listing of our Slurm jobs to every job the store follows in Slurm. */
static void apply_listing(broker *b, const slurm_adapter_job *sj, size_t n)
{
    store_job *jobs = NULL;
    size_t njobs = 0, nix = 0;
    struct tag_index *ix = index_jobs(b, sj, n, &nix);
    if (ix == NULL) return;
    if (store_job_list_active(b->st, &jobs, &njobs) < 0) goto out;
    for (size_t i = 0; i < njobs; i++) {
        store_job *j = &jobs[i];
        if (j->slurm_job_id <= 0 || strcmp(j->state, STORE_STATE_DISPATCHING) == 0) continue;
        const slurm_adapter_job *s = find_job(ix, nix, j->id, j->slurm_job_id);
        store_job u = *j;
        bool was_waiting = strcmp(j->state, "running") != 0 && strcmp(j->state, "suspended") != 0;
        if (s == NULL) {
            snprintf(u.state, sizeof u.state, "lost");
            snprintf(u.reason, sizeof u.reason,
                     "Slurm no longer knows job %" PRId64
                     "; it ended while antennad was not watching (raise MinJobAge)",
                     j->slurm_job_id);
            u.ended_at = time(NULL);
        } else {
            snprintf(u.state, sizeof u.state, "%s", s->state);
            snprintf(u.reason, sizeof u.reason, "%s", s->reason);
            bool started = strcmp(s->state, "pending") != 0 && s->start_time > 0;
            u.started_at = started ? s->start_time : 0;
            u.ended_at = store_state_terminal(s->state) ? s->end_time : 0;
            u.has_exit_code = s->has_exit_code && store_state_terminal(s->state);
            u.exit_code = u.has_exit_code ? s->exit_code : 0;
        }
        if (strcmp(u.state, j->state) == 0 && strcmp(u.reason, j->reason) == 0 &&
            u.started_at == j->started_at && u.ended_at == j->ended_at &&
            u.has_exit_code == j->has_exit_code && u.exit_code == j->exit_code)
            continue;
        bool terminal = store_state_terminal(u.state);
        int64_t elapsed = 0;
        if (terminal) {
            /* Its charge: what really ran, from Slurm's start and end (a lost job is not
             * charged: its end is unknown). The engine computes the same charge below. */
            if (s != NULL && u.started_at > 0 && u.ended_at > u.started_at)
                elapsed = u.ended_at - u.started_at;
            /* Slurm may let a job overrun its limit by OverTimeLimit: never charge beyond the
             * hold, so that used + held never exceeds the budget. */
            if (elapsed > (int64_t)j->time_minutes * 60) elapsed = (int64_t)j->time_minutes * 60;
            policy *pol = policy_state_lock(b->ps);
            int w = policy_gpu_weight(pol, j->gpu_type);
            policy_state_unlock(b->ps);
            u.charge_gpu_seconds = policy_cost(j->gpus, elapsed, w < 0 ? 1000 : w);
            u.charge_cpu_seconds = (int64_t)j->cpus_per_task * elapsed;
        }
        if (store_job_update(b->st, &u) < 0) {
            LOG(LOG_ERROR, "job %" PRId64 ": could not record state %s", j->id, u.state);
            continue;
        }
        if (terminal) {
            engine_finished(b, j->id, elapsed, NULL, NULL);
            char ec[16] = "null";
            if (u.has_exit_code) snprintf(ec, sizeof ec, "%d", u.exit_code);
            broker_audit(b, j, "job.finished",
                         "{\"job\":%" PRId64 ",\"slurm_job_id\":%" PRId64
                         ",\"user\":\"%s\",\"state\":\"%s\",\"exit_code\":%s,"
                         "\"elapsed_seconds\":%" PRId64 ",\"charge_gpu_seconds\":%" PRId64
                         ",\"charge_cpu_seconds\":%" PRId64 "}",
                         j->id, j->slurm_job_id, j->user, u.state, ec, elapsed,
                         u.charge_gpu_seconds, u.charge_cpu_seconds);
        } else if (was_waiting && u.started_at > 0) {
            policy *pol = policy_state_lock(b->ps);
            policy_job_started(pol, j->id);
            policy_state_unlock(b->ps);
        }
        if (strcmp(u.state, j->state) != 0) {
            if (u.has_exit_code)
                LOG(LOG_INFO, "job %" PRId64 " (Slurm %" PRId64 "): %s -> %s (exit %d)", j->id,
                    j->slurm_job_id, j->state, u.state, u.exit_code);
            else
                LOG(LOG_INFO, "job %" PRId64 " (Slurm %" PRId64 "): %s -> %s", j->id,
                    j->slurm_job_id, j->state, u.state);
        }
    }
out:
    free(jobs);
    free(ix);
}

static int poll_slurm(broker *b)
{
    slurm_adapter_job *sj = NULL;
    size_t n = 0;
    bool changed = false;
    char err[256] = "";
    int rc = slurm_adapter_poll(b->sa, b->tag_prefix, &sj, &n, &changed, err, sizeof err);
    if (rc < 0) {
        if (atomic_exchange(&b->slurm_ok, false))
            LOG(LOG_WARN, "cannot poll Slurm: %s (will retry)", err);
        return rc;
    }
    if (!atomic_exchange(&b->slurm_ok, true)) LOG(LOG_INFO, "Slurm reachable");
    if (changed) apply_listing(b, sj, n);
    free(sj);
    return 0;
}

/* After a restart: every job left in "dispatching" may or may not be in Slurm. Look each one up
 * by its tag in a full listing; adopt it when found, requeue it when not. */
static int recover(broker *b)
{
    slurm_adapter_job *sj = NULL;
    store_job *jobs = NULL;
    size_t n = 0, njobs = 0, nix = 0;
    bool changed = false;
    char err[256] = "";
    slurm_adapter_poll_reset(b->sa);
    int rc = slurm_adapter_poll(b->sa, b->tag_prefix, &sj, &n, &changed, err, sizeof err);
    if (rc < 0) {
        atomic_store(&b->slurm_ok, false);
        LOG(LOG_WARN, "recovery waits for Slurm: %s", err);
        return rc;
    }
    atomic_store(&b->slurm_ok, true);
    struct tag_index *ix = index_jobs(b, sj, n, &nix);
    if (ix == NULL || store_job_list_active(b->st, &jobs, &njobs) < 0) {
        free(ix);
        free(sj);
        slurm_adapter_poll_reset(b->sa);
        return -EIO;
    }
    for (size_t i = 0; i < njobs; i++) {
        if (strcmp(jobs[i].state, STORE_STATE_DISPATCHING) != 0) continue;
        const slurm_adapter_job *s = find_job(ix, nix, jobs[i].id, 0);
        if (s != NULL) {
            store_job_set_dispatched(b->st, jobs[i].id, s->job_id);
            LOG(LOG_INFO, "job %" PRId64 ": found in Slurm as job %" PRIu32 " after restart",
                jobs[i].id, s->job_id);
        } else {
            requeue_dispatch(b, jobs[i].id, "requeued after restart: not found in Slurm");
            LOG(LOG_INFO, "job %" PRId64 ": not in Slurm after restart, requeued", jobs[i].id);
        }
    }
    apply_listing(b, sj, n);
    LOG(LOG_INFO, "recovery done: %zu of our jobs known to Slurm, %zu followed", nix, njobs);
    free(jobs);
    free(ix);
    free(sj);
    return 0;
}

static void tick_work(uv_work_t *w)
{
    broker *b = w->data;
    if (!b->recovered) {
        if (recover(b) < 0) return;
        b->recovered = true;
    }
    if (poll_slurm(b) < 0) return; /* no dispatch while Slurm cannot be reached */
    send_cancels(b);
    dispatch_queued(b);
}

/* --- loop-thread side ------------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t);

static void timer_closed(uv_handle_t *h)
{
    broker *b = h->data;
    void (*done)(void *) = b->done;
    void *arg = b->done_arg;
    free(b->cancel_sent);
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
    uv_timer_start(&b->timer, on_timer, b->kicked ? 0 : b->opt.poll_interval_ms, 0);
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

int broker_new(uv_loop_t *loop, store *st, slurm_adapter *sa, policy_state *ps,
               const broker_options *opt, broker **out)
{
    broker *b = calloc(1, sizeof *b);
    if (b == NULL) return -ENOMEM;
    b->loop = loop;
    b->st = st;
    b->sa = sa;
    b->ps = ps;
    b->opt = *opt;
    snprintf(b->partition, sizeof b->partition, "%s", opt->partition ? opt->partition : "");
    snprintf(b->spool_dir, sizeof b->spool_dir, "%s", opt->spool_dir);
    b->opt.partition = b->partition[0] ? b->partition : NULL;
    b->opt.spool_dir = b->spool_dir;
    if (b->opt.poll_interval_ms == 0) b->opt.poll_interval_ms = 1000;
    snprintf(b->tag_prefix, sizeof b->tag_prefix, "antenna:%s:", store_instance_id(st));
    atomic_init(&b->slurm_ok, false);
    int rc = uv_timer_init(loop, &b->timer);
    if (rc < 0) {
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
    if (b->busy)
        b->kicked = true;
    else
        uv_timer_start(&b->timer, on_timer, 0, 0);
}

bool broker_slurm_ok(const broker *b)
{
    return b != NULL && atomic_load(&((broker *)b)->slurm_ok);
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
