/* api.c - routes /v1 requests, authenticates bearer tokens, validates bodies, answers in JSON.
 *
 * Every handler runs off the loop thread, because it reads the store and makes registry changes:
 * the cheap, frequent reads on the API's read lane, the rest on libuv's pool (uv_queue_work); the
 * loop thread only routes, authenticates (from memory: registry_token_check and the limits of
 * auth.h), queues and sends. Never talks to Slurm: reads
 * come from the store and the registry's live reads, and a change that Slurm must see (a new job,
 * a cancel) only kicks the broker. Never writes the store, never takes the engine's lock and never
 * appends to the audit trail: every change is one registry call, audited by the registry.
 */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "job_array.h"
#include "job_cache.h"
#include "job_options.h"
#include "job_output.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "ui_assets.h"

#define ANTENNA_VERSION "0.1.0"

typedef struct api_call api_call;

/* The read lane: a few threads of the API's own that serve the cheap, frequent reads (a job's
 * status, the job list) one after another, with one wake-up per burst instead of one per request
 * through libuv's pool (whose threads also wait on group commits). Answers go back to the loop
 * through one coalesced uv_async. One thread: on two cores a second one only added context
 * switches (make bench, status: 30,598 req/s and 35.7 us of CPU per request with one thread;
 * 29,395 req/s and 41 us with two). */
#define LANE_THREADS 1
struct lane {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    api_call *head, *tail;           /* to serve */
    api_call *done_head, *done_tail; /* served, to answer on the loop thread */
    bool stop;
    unsigned idle; /* threads waiting on cv */
    pthread_t th[LANE_THREADS];
    size_t n_th;
    uv_async_t async;
};

struct api {
    uv_loop_t *loop;
    job_cache *cache; /* GET /v1/jobs/{id} answers of the current store generation (loop only) */
    registry *reg;
    store *st; /* registry_store(reg): reads only */
    broker *br;
    api_options opt;
    char spool_dir[PATH_MAX];
    unsigned pending;
    struct lane lane;
    job_output_lane *out_lane; /* GET .../output only: file reads never hold the other calls */
    /* calls queued on libuv's pool and not yet started, oldest first (for /healthz) */
    pthread_mutex_t wait_mu;
    api_call *wait_head, *wait_tail;
    /* authentication limits (auth.h) and the timer that audits failed attempts */
    auth_peers *peers;
    auth_rate *rate;
    uv_timer_t flush_timer;
    uv_work_t flush_work;
    bool flushing;
    int closing;       /* handles still closing in api_free */
    int metrics_roles; /* GET /metrics: the role bits allowed, 0 = loopback peers, no token */
};
typedef void (*handler_fn)(api_call *c);

/* Roles, as bits: a route lists the roles that may call it. */
enum {
    R_USER = 1,
    R_MANAGER = 2,
    R_STAFF = 4,
    R_ADMIN = 8,
    R_AUDITOR = 16,
    R_ALL = 31,
    R_SUBMITTERS = R_USER | R_MANAGER | R_STAFF | R_ADMIN,
    R_READERS = R_STAFF | R_ADMIN | R_AUDITOR, /* see every partner */
    R_STAFFS = R_STAFF | R_ADMIN,
};

static int role_bit(const char *role)
{
    static const char *const names[] = {"user", "manager", "staff", "admin", "auditor"};
    for (int i = 0; i < 5; i++)
        if (strcmp(role, names[i]) == 0) return 1 << i;
    return 0;
}

struct route {
    const char *method;
    const char *pattern; /* segments; "*" matches a numeric id, "%" a name */
    handler_fn fn;
    int roles;
    bool lane; /* a cheap read, served by the read lane */
};

struct api_call {
    uv_work_t work;
    api_call *lane_next;
    api *a;
    http_request *req;
    const struct route *route;
    int64_t id;      /* the "*" segment */
    char seg[2][64]; /* the "%" segments, in order */
    bool by_task;    /* the path named the job as ID_TASK (load_own_job resolved it into id) */
    store_user user; /* who asks (authenticated on the loop thread before the call is queued) */
    char token_hash[AUTH_HASH_HEX_LEN + 1]; /* its token's, for the per-token rate */
    /* GET /v1/jobs/{id}: the answer may be kept (job_cache) for the store generation it was read
     * at, with who may see it */
    bool cacheable;
    uint64_t cache_gen;
    job_cache_owner owner;
    /* the answer */
    int status;
    char *body;
    size_t body_len;
    const char *ctype;
    char job_state[STORE_STATE_MAX]; /* for X-Antenna-Job-State */
    int retry_after;                 /* > 0: a Retry-After header (seconds) */
    bool replayed;                   /* an Idempotency-Key replay: Idempotent-Replayed: true */
    bool kick;
    job_output_task otask; /* on the output lane (GET .../output) */
    bool out_chunk;        /* an output chunk: the X-Antenna-Output-* headers */
    bool out_end;
    uint64_t out_next;
    int64_t queued_ms; /* monotonic ms when it was queued (pool or lane) */
    bool pool_waiting; /* on a->wait_head's list (queued on the pool, not started) */
    api_call *wait_prev, *wait_next;
};

/* The answer to a missing or malformed bearer token. */
static const char no_token_message[] =
    "send your token as \"Authorization: Bearer <token>\" (set ANTENNA_TOKEN for the CLI)";

/* --- answers --------------------------------------------------------------------------------- */

static void set_error(api_call *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Replaces with '?' each byte of `s` that does not start a well-formed UTF-8 character (jansson
 * refuses such a string, which left an error answer without a body: a message quoting the user's
 * bytes, cut by a %.64s or by jansson's own error text, may end in half a character; found by
 * tests/fuzz/fuzz_job_json.c). */
static void utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n, i;
        uint32_t cp;
        if (*p < 0x80) {
            p++;
            continue;
        }
        if ((*p & 0xE0) == 0xC0)
            n = 2, cp = *p & 0x1F;
        else if ((*p & 0xF0) == 0xE0)
            n = 3, cp = *p & 0x0F;
        else if ((*p & 0xF8) == 0xF0)
            n = 4, cp = *p & 0x07;
        else
            n = 0, cp = 0;
        for (i = 1; i < n && (p[i] & 0xC0) == 0x80; i++)
            cp = (cp << 6) | (p[i] & 0x3F);
        bool ok = n > 0 && i == n && !(n == 2 && cp < 0x80) && !(n == 3 && cp < 0x800) &&
                  !(n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) && !(cp >= 0xD800 && cp <= 0xDFFF);
        if (!ok)
            *p++ = '?';
        else
            p += n;
    }
}

static void set_error(api_call *c, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    utf8_scrub(msg);
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    free(c->body);
    c->body = json_dumps(o, JSON_COMPACT);
    c->body_len = c->body ? strlen(c->body) : 0;
    c->ctype = "application/json";
    c->status = status;
    json_decref(o);
}

/* Takes ownership of `o`. */
static void set_json(api_call *c, int status, json_t *o)
{
    free(c->body);
    c->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (c->body == NULL) {
        set_error(c, 500, "internal", "out of memory building the answer");
        return;
    }
    c->body_len = strlen(c->body);
    c->ctype = "application/json";
    c->status = status;
}

static json_t *json_time(int64_t t)
{
    char buf[32];
    struct tm tm;
    time_t tt = (time_t)t;
    if (t <= 0) return json_null();
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static json_t *hours_or_null(int64_t seconds)
{
    return seconds < 0 ? json_null() : json_real((double)seconds / 3600.0);
}

/* The job as JSON; `live` (may be NULL) gives a queued job's wait reason and priority. */
static json_t *job_json(const store_job *j, const registry_live *live)
{
    bool queued = strcmp(j->state, STORE_STATE_QUEUED) == 0 && live != NULL;
    const char *reason = queued && live->reason[0] ? live->reason : j->reason;
    json_t *o =
        json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:i,s:I,s:i,s:o,s:o,s:b,s:o,s:o,s:o,s:o}",
                  "id", (json_int_t)j->id, "name", j->name, "user", j->user, "partner", j->partner,
                  "unix_user", j->unix_user, "state", j->state, "reason", reason, "gpus", j->gpus,
                  "gpu_type", j->gpu_type, "cpus_per_task", j->cpus_per_task, "mem_mb",
                  (json_int_t)j->mem_mb, "time_minutes", j->time_minutes, "slurm_job_id",
                  j->slurm_job_id > 0 ? json_integer(j->slurm_job_id) : json_null(), "exit_code",
                  j->has_exit_code ? json_integer(j->exit_code) : json_null(), "cancel_requested",
                  j->cancel_requested, "submitted_at", json_time(j->submitted_at), "dispatched_at",
                  json_time(j->dispatched_at), "started_at", json_time(j->started_at), "ended_at",
                  json_time(j->ended_at));
    if (o == NULL) return NULL;
    json_object_set_new(o, "period", j->period[0] ? json_string(j->period) : json_null());
    json_object_set_new(o, "hold_gpu_hours", hours_or_null(j->hold_gpu_seconds));
    json_object_set_new(o, "charge_gpu_hours",
                        store_state_terminal(j->state) ? hours_or_null(j->charge_gpu_seconds)
                                                       : json_null());
    json_object_set_new(o, "priority", queued ? json_real(live->priority) : json_null());
    json_object_set_new(o, "array_job_id",
                        j->array_job_id > 0 ? json_integer(j->array_job_id) : json_null());
    json_object_set_new(o, "array_task_id",
                        j->array_job_id > 0 ? json_integer(j->array_task_id) : json_null());
    json_object_set_new(o, "cpus", json_integer(registry_job_cpus(j)));
    json_object_set_new(o, "request_id",
                        j->request_id[0] ? json_string(j->request_id) : json_null());
    json_object_set_new(o, "restarts", json_integer(j->restarts));
    return o;
}

/* Adds "runs" to job object `o` of job `j` when Slurm requeued it: each ended run (its start,
 * end, elapsed time and charge; the current run is the job's own started_at/ended_at). Read only
 * for a job that has some (j->restarts), and only for GET /v1/jobs/{id}: lists give `restarts`.
 * On a read error the list is left out. */
static json_t *job_json_runs(api *a, json_t *o, const store_job *j)
{
    if (o == NULL || j->restarts <= 0) return o;
    store_run *rs = NULL;
    size_t n = 0;
    if (store_job_runs_list(a->st, j->id, &rs, &n) < 0) return o;
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:i,s:i,s:I,s:o,s:o,s:I,s:f}", "run", rs[i].run, "runs", rs[i].runs,
                           "slurm_job_id", (json_int_t)rs[i].slurm_job_id, "started_at",
                           json_time(rs[i].started_at), "ended_at", json_time(rs[i].ended_at),
                           "elapsed_seconds", (json_int_t)rs[i].elapsed_seconds, "charge_gpu_hours",
                           (double)rs[i].charge_gpu_seconds / 3600.0));
    free(rs);
    if (arr != NULL) json_object_set_new(o, "runs", arr);
    return o;
}

/* Adds "dependency" (its canonical text, or null) to job object `o` of job `id`; its rows are
 * read only when `has` (a job read from the store says whether it has any: no query for the many
 * jobs without). */
static json_t *job_json_dependency(api *a, json_t *o, int64_t id, bool has)
{
    char text[JOB_DEPENDENCY_TEXT_MAX] = "";
    if (o == NULL) return NULL;
    if (has && registry_job_dependency_text(a->reg, id, text, sizeof text) < 0) text[0] = '\0';
    json_object_set_new(o, "dependency", text[0] ? json_string(text) : json_null());
    return o;
}

/* The job as JSON with its live state in the engine at `now` (worker threads only). */
static json_t *job_json_now(api *a, const store_job *j, int64_t now)
{
    registry_live live;
    if (strcmp(j->state, STORE_STATE_QUEUED) != 0)
        return job_json_dependency(a, job_json(j, NULL), j->id, j->has_dependency);
    registry_job_live(a->reg, j->id, now, &live);
    return job_json_dependency(a, job_json(j, &live), j->id, j->has_dependency);
}

static bool has_role(const api_call *c, int roles)
{
    return (role_bit(c->user.role) & roles) != 0;
}

/* Whether the caller may see job `j`: their own, their partner's (managers), any (staff, admin,
 * auditor). */
/* The visibility rule of a job of user `user_id` in `partner`: readers see every job, a manager
 * its partner's, anyone else their own. */
static bool may_see(const api_call *c, int64_t user_id, const char *partner)
{
    if (has_role(c, R_READERS)) return true;
    if (has_role(c, R_MANAGER)) return strcmp(partner, c->user.partner) == 0;
    return user_id == c->user.id;
}

static bool may_see_job(const api_call *c, const store_job *j)
{
    return may_see(c, j->user_id, j->partner);
}

/* --- body parsing ------------------------------------------------------------------------------
 */

enum ftype { F_STR, F_INT, F_BOOL, F_NUM_NULL, F_INT_NULL };

struct field {
    const char *name;
    enum ftype type;
    bool required;
};

/* True if a Content-Type is exactly application/json (any case), parameters allowed
 * ("application/json; charset=utf-8"); "application/jsonx" or "application/json-seq" are not. */
static bool media_type_is_json(const char *ct)
{
    if (strncasecmp(ct, "application/json", 16) != 0) return false;
    const char *p = ct + 16;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0' || *p == ';';
}

/* Parses `body` (len bytes, sent with Content-Type `ct`, NULL = none) as a JSON object with only
 * `fields` (of the right types). Returns the object (caller decrefs) or NULL with the error answer
 * set. */
static json_t *parse_json_body(api_call *c, const char *ct, const char *body, size_t len,
                               const struct field *fields, size_t nfields)
{
    json_error_t jerr;
    const char *key;
    json_t *v;

    if (ct != NULL && !media_type_is_json(ct)) {
        set_error(c, 415, "unsupported_media_type",
                  "the body must be JSON: send Content-Type: application/json");
        return NULL;
    }
    if (len == 0) {
        set_error(c, 400, "invalid_json", "the request needs a JSON object body");
        return NULL;
    }
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        set_error(c, 400, "invalid_json", "the body is not valid JSON: %s (at byte %d)", jerr.text,
                  jerr.position);
        return NULL;
    }
    if (!json_is_object(o)) {
        set_error(c, 400, "invalid_json", "the body must be a JSON object, not %s",
                  json_is_array(o)    ? "an array"
                  : json_is_string(o) ? "a string"
                  : json_is_null(o)   ? "null"
                                      : "a scalar");
        json_decref(o);
        return NULL;
    }
    json_object_foreach(o, key, v)
    {
        const struct field *f = NULL;
        for (size_t i = 0; i < nfields; i++)
            if (strcmp(fields[i].name, key) == 0) f = &fields[i];
        if (f == NULL) {
            char known[256] = "";
            for (size_t i = 0; i < nfields; i++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                         fields[i].name);
            set_error(c, 400, "unknown_field", "unknown field \"%.64s\"; known fields: %s", key,
                      known);
            json_decref(o);
            return NULL;
        }
        static const char *const wanted[] = {"a string", "an integer", "true or false",
                                             "a number or null", "an integer or null"};
        bool ok = f->type == F_STR        ? json_is_string(v)
                  : f->type == F_INT      ? json_is_integer(v)
                  : f->type == F_BOOL     ? json_is_boolean(v)
                  : f->type == F_NUM_NULL ? json_is_number(v) || json_is_null(v)
                                          : json_is_integer(v) || json_is_null(v);
        if (!ok) {
            set_error(c, 400, "invalid_type", "field \"%s\" must be %s", key, wanted[f->type]);
            json_decref(o);
            return NULL;
        }
        if ((f->type == F_INT || f->type == F_INT_NULL) && json_is_integer(v) &&
            (json_integer_value(v) > INT32_MAX || json_integer_value(v) < INT32_MIN)) {
            set_error(c, 400, "invalid_value", "field \"%s\" is out of range", key);
            json_decref(o);
            return NULL;
        }
    }
    for (size_t i = 0; i < nfields; i++) {
        if (fields[i].required && json_object_get(o, fields[i].name) == NULL) {
            set_error(c, 400, "missing_field", "field \"%s\" is required", fields[i].name);
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* parse_json_body over the request's body and Content-Type. */
static json_t *parse_body(api_call *c, const struct field *fields, size_t nfields)
{
    size_t len = 0;
    const char *body = http_request_body(c->req, &len);
    const char *ct = http_request_header(c->req, "Content-Type");
    return parse_json_body(c, ct, body, len, fields, nfields);
}

static const char *str_field(json_t *o, const char *name, const char *dflt)
{
    json_t *v = json_object_get(o, name);
    return v ? json_string_value(v) : dflt;
}

static long long int_field(json_t *o, const char *name, long long dflt)
{
    json_t *v = json_object_get(o, name);
    return v ? json_integer_value(v) : dflt;
}

/* Copies a string field into dst[len]; an over-long value is an error answer. */
static bool copy_str(api_call *c, char *dst, size_t len, const char *name, const char *v,
                     const char *code)
{
    if (strlen(v) >= len) {
        set_error(c, 400, code, "field \"%s\" is too long (at most %zu characters)", name, len - 1);
        return false;
    }
    snprintf(dst, len, "%s", v);
    return true;
}

/* Sets the answer for a failed store read or registry change: 503 with Retry-After when nothing
 * was recorded and a retry will do (disk full, stopping), else 500. Returns true when rc < 0. */
static bool store_failed(api_call *c, int rc, const char *what)
{
    if (rc >= 0) return false;
    LOG(LOG_ERROR, "store error %d (%s) while trying to %s", rc, strerror(-rc), what);
    if (rc == -ENOSPC) {
        set_error(c, 503, "unavailable",
                  "antennad cannot write its database right now (disk full); nothing was "
                  "recorded; retry later");
        c->retry_after = 5;
    } else if (rc == -ESHUTDOWN) {
        set_error(c, 503, "unavailable",
                  "antennad is shutting down; nothing was recorded; retry in a few seconds");
        c->retry_after = 5;
    } else {
        set_error(c, 500, "internal", "the broker could not %s; try again, and tell the operators",
                  what);
    }
    return true;
}

/* Who makes a change: the caller, with `partner` as the audit entry's partner. */
static registry_actor actor_of(const api_call *c, const char *partner)
{
    registry_actor who = {.actor = c->user.name, .partner = partner ? partner : ""};
    return who;
}

/* --- handlers (thread pool) ---------------------------------------------------------------------
 */

/* The quote of a dry run. */
static json_t *quote_json(const policy_verdict *v)
{
    json_t *o = json_pack("{s:b,s:b,s:s,s:s,s:s}", "dry_run", 1, "admitted", v->admitted, "code",
                          v->code, "message", v->message, "period", v->period);
    json_object_set_new(o, "max_cost_gpu_hours", hours_or_null(v->max_cost_gpu_seconds));
    json_object_set_new(o, "budget_left_gpu_hours", hours_or_null(v->budget_left_gpu_seconds));
    json_object_set_new(o, "budget_left_after_gpu_hours",
                        hours_or_null(v->budget_left_after_gpu_seconds));
    json_object_set_new(o, "queue_position",
                        v->admitted ? json_integer((json_int_t)v->queue_position) : json_null());
    json_object_set_new(o, "wait_reason", v->admitted ? json_string(v->wait_reason) : json_null());
    json_object_set_new(o, "priority", v->admitted ? json_real(v->priority) : json_null());
    return o;
}

/* The array part of a dry run's quote: the whole array's cost is max_cost_gpu_hours. */
static void array_quote_add(json_t *q, const job_array *arr, const policy_verdict *v)
{
    int64_t n = (int64_t)arr->n_tasks;
    json_object_set_new(q, "array",
                        json_pack("{s:s,s:i,s:i}", "spec", arr->spec, "task_count", (int)n,
                                  "max_running", arr->max_running));
    json_object_set_new(
        q, "max_cost_per_task_gpu_hours",
        hours_or_null(v->max_cost_gpu_seconds < 0 ? -1 : v->max_cost_gpu_seconds / n));
}

/* The "array" object of array `aid`'s answers: its spec, task count, %max, the environment's
 * min/max/step, its tasks counted by state and, with `tasks`, every task (id, index, state,
 * reason, charge) with its live state at `now`. Reads the store by array id (never the queue).
 * Returns NULL (with the error answer set) when the store fails; an unknown array gives null. */
static json_t *array_json(api_call *c, int64_t aid, bool tasks, int64_t now, bool *failed)
{
    store_job_array a;
    store_state_count *k = NULL;
    size_t nk = 0;
    *failed = false;
    int rc = store_job_array_get(c->a->st, aid, &a);
    if (rc == -ENOENT) return json_null();
    if (store_failed(c, rc, "read the array") ||
        store_failed(c, store_job_array_counts(c->a->st, aid, &k, &nk),
                     "count the array's tasks")) {
        *failed = true;
        return NULL;
    }
    json_t *counts = json_object();
    for (size_t i = 0; i < nk; i++)
        json_object_set_new(counts, k[i].state, json_integer(k[i].n));
    free(k);
    json_t *o =
        json_pack("{s:I,s:s,s:i,s:i,s:i,s:i,s:i,s:o}", "array_job_id", (json_int_t)aid, "spec",
                  a.spec, "task_count", a.task_count, "max_running", a.max_running, "task_min",
                  a.task_min, "task_max", a.task_max, "task_step", a.task_step, "counts", counts);
    if (o == NULL || !tasks) return o;
    store_job *ts = NULL;
    size_t n = 0;
    if (store_failed(c, store_job_array_tasks(c->a->st, aid, &ts, &n), "read the array's tasks")) {
        json_decref(o);
        *failed = true;
        return NULL;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        registry_live live = {"", 0};
        bool queued = strcmp(ts[i].state, STORE_STATE_QUEUED) == 0;
        if (queued) registry_job_live(c->a->reg, ts[i].id, now, &live);
        json_array_append_new(
            arr,
            json_pack("{s:I,s:i,s:s,s:s,s:o,s:o,s:o,s:o}", "id", (json_int_t)ts[i].id, "task_id",
                      ts[i].array_task_id, "state", ts[i].state, "reason",
                      queued && live.reason[0] ? live.reason : ts[i].reason, "slurm_job_id",
                      ts[i].slurm_job_id > 0 ? json_integer(ts[i].slurm_job_id) : json_null(),
                      "started_at", json_time(ts[i].started_at), "ended_at",
                      json_time(ts[i].ended_at), "charge_gpu_hours",
                      store_state_terminal(ts[i].state) ? hours_or_null(ts[i].charge_gpu_seconds)
                                                        : json_null()));
    }
    free(ts);
    json_object_set_new(o, "tasks", arr);
    return o;
}

/* An Idempotency-Key is 1..IDEM_KEY_MAX printable ASCII characters, spaces excluded. */
#define IDEM_KEY_MAX 255

static bool idem_key_valid(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > IDEM_KEY_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] < 0x21 || (unsigned char)k[i] > 0x7e) return false;
    return true;
}

/* What render_job adds to the job object: the array it opens (NULL for a plain job) and the
 * job's sbatch options as stored (NULL for none). */
struct render_ctx {
    api *a;          /* for the job's dependency, echoed */
    bool dependency; /* the submission asks one */
    const job_array *arr;
    const char *options;
};

/* registry_submit's render: the 202 body of a new job, the same job object as GET answers.
 * Runs inside the registry's change (its committer thread). `arg` is a struct render_ctx. */
static char *render_job(const store_job *j, const registry_live *live, void *arg)
{
    const struct render_ctx *ctx = arg;
    json_t *o = job_json(j, live);
    /* the job of a new submission, as the registry holds it: its rows are just written */
    if (o != NULL && ctx != NULL) o = job_json_dependency(ctx->a, o, j->id, ctx->dependency);
    if (o != NULL && job_options_merge(o, ctx ? ctx->options : NULL) < 0) {
        json_decref(o);
        return NULL;
    }
    if (o != NULL && ctx != NULL && ctx->arr != NULL)
        json_object_set_new(o, "array",
                            json_pack("{s:I,s:s,s:i,s:i}", "array_job_id", (json_int_t)j->id,
                                      "spec", ctx->arr->spec, "task_count", (int)ctx->arr->n_tasks,
                                      "max_running", ctx->arr->max_running));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* Reads a POST /v1/jobs body (len bytes sent with Content-Type `ct`) into `r` and validates it
 * against `lim`; sets *dry_run; parses its "array" into *arr (empty when none; with arr NULL it is
 * only checked), at most max_array_tasks tasks (0 = the default). Returns the parsed object, which
 * r->script borrows (caller decrefs; *arr is the caller's to close), or NULL with the error answer
 * set (and *arr empty). */
static json_t *job_body_read(api_call *c, const char *ct, const char *body, size_t len,
                             const jobreq_limits *lim, int max_array_tasks, jobreq *r,
                             bool *dry_run, job_array *arr)
{
    static const struct field base[] = {
        {"script", F_STR, true},        {"name", F_STR, false},          {"gpus", F_INT, false},
        {"gpu_type", F_STR, false},     {"cpus_per_task", F_INT, false}, {"mem_mb", F_INT, false},
        {"time_minutes", F_INT, false}, {"dry_run", F_BOOL, false},      {"array", F_STR, false},
        {"dependency", F_STR, false},
    };
    /* the base fields, then the sbatch options job_options.c names */
    struct field fields[sizeof base / sizeof base[0] + 32];
    size_t nfields = sizeof base / sizeof base[0];
    memcpy(fields, base, sizeof base);
    for (const job_options_field *f = job_options_fields;
         f->name != NULL && nfields < sizeof fields / sizeof fields[0]; f++)
        fields[nfields++] = (struct field){f->name,
                                           f->kind == JOB_OPT_STR    ? F_STR
                                           : f->kind == JOB_OPT_BOOL ? F_BOOL
                                                                     : F_INT,
                                           false};
    jobreq_error jerr;
    char bad[64];
    json_t *o = parse_json_body(c, ct, body, len, fields, nfields);
    if (o == NULL) return NULL;
    jobreq_init(r);
    r->script = str_field(o, "script", NULL);
    *dry_run = json_is_true(json_object_get(o, "dry_run"));
    if (!copy_str(c, r->name, sizeof r->name, "name", str_field(o, "name", "antenna-job"),
                  "invalid_name") ||
        !copy_str(c, r->gpu_type, sizeof r->gpu_type, "gpu_type", str_field(o, "gpu_type", ""),
                  "invalid_gpu_type"))
        goto fail;
    if (r->name[0] == '\0') snprintf(r->name, sizeof r->name, "antenna-job");
    r->gpus = (int)int_field(o, "gpus", r->gpus);
    r->cpus_per_task = (int)int_field(o, "cpus_per_task", r->cpus_per_task);
    r->mem_mb = int_field(o, "mem_mb", r->mem_mb);
    r->time_minutes = (int)int_field(o, "time_minutes", r->time_minutes);
    if (job_options_read(o, r, bad, sizeof bad) < 0) {
        set_error(c, 400, "invalid_value",
                  "field \"%s\" is out of range or too long; see docs/API.md for its form", bad);
        goto fail;
    }
    r->node_gpus = lim->node_gpus; /* an --exclusive job is counted with whole nodes */
    r->node_cpus = lim->node_cpus;
    if (jobreq_validate(r, lim, &jerr) < 0) {
        set_error(c, 400, jerr.code, "%s", jerr.message);
        goto fail;
    }
    const char *spec = str_field(o, "array", NULL);
    if (spec != NULL) {
        job_array local;
        job_array *a = arr ? arr : &local;
        char aerr[320];
        job_array_init(a);
        int arc = job_array_parse(spec, max_array_tasks, a, aerr, sizeof aerr);
        if (arc == -ENOMEM) {
            set_error(c, 503, "unavailable", "out of memory; nothing was queued; try again");
            goto fail;
        }
        if (arc < 0) {
            set_error(c, 400, "invalid_array", "%s", aerr);
            goto fail;
        }
        if (a == &local) job_array_close(&local);
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

int api_job_body_check(const char *content_type, const char *body, size_t len,
                       const jobreq_limits *lim, jobreq *r, int *status, char **error_json)
{
    api_call c;
    bool dry_run = false;
    memset(&c, 0, sizeof c);
    *status = 0;
    *error_json = NULL;
    json_t *o = job_body_read(&c, content_type, body, len, lim, 0, r, &dry_run, NULL);
    r->script = NULL; /* it pointed into o */
    json_decref(o);
    if (o != NULL) return 0;
    *status = c.status;
    *error_json = c.body;
    return -EINVAL;
}

/* Checks the partition a job asks against those the caller's partner may use, and fills in the
 * partner's default when it asks none. Returns false with the error answer set (400 unknown,
 * 403 forbidden, naming the allowed ones). */
static bool job_partition_pick(api_call *c, jobreq *r)
{
    const config *site = c->a->opt.site;
    if (site == NULL) return true;
    jobreq_error jerr;
    int rc = jobreq_partition_check(r->partition, config_partitions_for(site, c->user.partner),
                                    site->partition_list, &jerr);
    if (rc < 0) {
        set_error(c, rc == -EACCES ? 403 : 400, jerr.code, "%s", jerr.message);
        return false;
    }
    if (r->partition[0] == '\0')
        snprintf(r->partition, sizeof r->partition, "%s",
                 config_default_partition_for(site, c->user.partner));
    return true;
}

/* Reads the optional "dependency" of a POST /v1/jobs body into *d (empty when absent or "") and
 * checks that every prerequisite is a job the caller may see (the rule of GET /v1/jobs/{id}).
 * Returns false with the error answer set (400 bad syntax, 404 naming the id). */
static bool job_dependency_read(api_call *c, json_t *o, job_dependency *d)
{
    char err[256];
    const char *text = str_field(o, "dependency", "");
    d->n = 0;
    if (text[0] == '\0') return true;
    if (job_dependency_parse(text, d, err, sizeof err) < 0) {
        set_error(c, 400, "invalid_dependency", "dependency: %s", err);
        return false;
    }
    for (size_t i = 0; i < d->n; i++) {
        store_job p;
        if (d->items[i].id == 0) continue; /* singleton */
        int rc = store_job_get(c->a->st, d->items[i].id, &p);
        if (rc == -ENOENT || (rc == 0 && !may_see_job(c, &p))) {
            set_error(c, 404, "dependency_not_found",
                      "dependency: no job %" PRId64 " among your jobs; name a job id that "
                      "antenna jobs lists",
                      d->items[i].id);
            return false;
        }
        if (store_failed(c, rc, "read a prerequisite job")) return false;
        if (p.array_job_id != p.id) continue; /* a plain job, or a task named by its own id */
        /* the array's id: every one of its tasks, as in Slurm (the first task's id is the
         * array's, so item i stays and the others follow with the same condition) */
        store_job *ts = NULL;
        size_t nt = 0;
        rc = store_job_array_tasks(c->a->st, p.id, &ts, &nt);
        if (store_failed(c, rc, "read the prerequisite array's tasks")) return false;
        if (d->n - 1 + nt > JOB_DEPENDENCY_MAX) {
            set_error(c, 400, "invalid_dependency",
                      "dependency: array %" PRId64 " has %zu tasks and a job waits on at most %d "
                      "jobs in all; name fewer, or wait on a job that runs after the array",
                      p.id, nt, JOB_DEPENDENCY_MAX);
            free(ts);
            return false;
        }
        for (size_t k = 0; k < nt; k++) {
            bool named = false; /* items stay unique (job_dependency.h) */
            for (size_t m = 0; m < d->n && !named; m++)
                named = d->items[m].id == ts[k].id && d->items[m].kind == d->items[i].kind;
            if (named) continue;
            d->items[d->n] = d->items[i];
            d->items[d->n].id = ts[k].id;
            d->n++;
        }
        free(ts);
    }
    return true;
}

static void h_jobs_post(api_call *c)
{
    const char *idem = http_request_header(c->req, "Idempotency-Key");
    if (idem != NULL && !idem_key_valid(idem)) {
        set_error(c, 400, "invalid_idempotency_key",
                  "the Idempotency-Key header must be 1 to %d printable ASCII characters without "
                  "spaces (a random UUID is a good key); send a fresh key for each new job",
                  IDEM_KEY_MAX);
        return;
    }
    jobreq r;
    bool dry_run = false;
    size_t in_len = 0;
    char *opts_text = NULL;
    const char *in = http_request_body(c->req, &in_len);
    job_array arr;
    job_array_init(&arr);
    json_t *o = job_body_read(c, http_request_header(c->req, "Content-Type"), in, in_len,
                              &c->a->opt.limits, c->a->opt.max_array_tasks, &r, &dry_run, &arr);
    if (o == NULL) return;
    if (!job_partition_pick(c, &r)) goto out;
    jobreq_totals tot;
    if (jobreq_totals_get(&r, &tot) < 0) { /* jobreq_validate refused it already */
        set_error(c, 400, "invalid_gpus", "the job's GPU or CPU total does not fit a number");
        goto out;
    }
    json_t *opts = job_options_json(&r);
    opts_text = opts ? json_dumps(opts, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(opts);
    if (opts_text == NULL) {
        set_error(c, 500, "internal", "out of memory reading the job's options; try again");
        goto out;
    }
    /* A job naming no GPU type runs, and is billed, as the site's default type. */
    if (tot.gpus > 0 && r.gpu_type[0] == '\0' && c->a->opt.limits.gpu_types != NULL &&
        c->a->opt.limits.gpu_types[0] != NULL)
        snprintf(r.gpu_type, sizeof r.gpu_type, "%s", c->a->opt.limits.gpu_types[0]);
    job_dependency dep;
    if (!job_dependency_read(c, o, &dep)) goto out;

    registry_submit s;
    struct render_ctx rctx;
    memset(&s, 0, sizeof s);
    store_job *j = &s.job;
    j->user_id = c->user.id;
    snprintf(j->user, sizeof j->user, "%s", c->user.name);
    snprintf(j->name, sizeof j->name, "%s", r.name);
    j->gpus = tot.gpus; /* every GPU of the job: the cost, hold, charge and caps count these */
    j->cpus = tot.cpus;
    snprintf(j->gpu_type, sizeof j->gpu_type, "%s", r.gpu_type);
    j->cpus_per_task = r.cpus_per_task;
    j->mem_mb = r.mem_mb;
    j->time_minutes = r.time_minutes;
    j->submitted_at = time(NULL);
    /* the request's id goes with the job: its row, GET /v1/jobs/{id}, Slurm's AdminComment */
    snprintf(j->request_id, sizeof j->request_id, "%s", http_request_id(c->req));

    if (dry_run) { /* a quote changes nothing: an Idempotency-Key is not recorded */
        policy_job pj;
        policy_verdict v;
        registry_job_to_policy(j, &pj);
        pj.array_tasks = (int)arr.n_tasks;
        int rc = registry_job_quote(c->a->reg, &pj, j->submitted_at, &v);
        if (rc == -EINVAL) {
            set_error(c, 400, "invalid_value", "the policy engine cannot price this job");
        } else if (!store_failed(c, rc, "quote the job")) {
            json_t *q = quote_json(&v);
            if (q != NULL && arr.n_tasks > 0) array_quote_add(q, &arr, &v);
            set_json(c, 200, q);
        }
        goto out;
    }

    /* Admission, insertion and queueing are one registry change, so that two submissions racing
     * for the last queued slot or the last of a budget cannot both get it. */
    char hash[AUTH_HASH_HEX_LEN + 1];
    size_t body_len = 0;
    const char *body = http_request_body(c->req, &body_len);
    s.script = r.script;
    s.options = strcmp(opts_text, "{}") == 0 ? NULL : opts_text;
    s.render = render_job;
    rctx.arr = arr.n_tasks > 0 ? &arr : NULL;
    rctx.options = s.options;
    rctx.a = c->a;
    rctx.dependency = dep.n > 0;
    if (arr.n_tasks > 0) s.array = &arr;
    s.render_arg = &rctx;
    s.dependency = &dep;
    if (idem != NULL) {
        /* auth_token_hash hashes up to the first NUL; a body that parsed as JSON has none. */
        if (strlen(body) != body_len || auth_token_hash(body, hash, sizeof hash) < 0) {
            set_error(c, 500, "internal", "could not hash the request body; try again");
            goto out;
        }
        s.idem_key = idem;
        s.body_hash = hash;
    }
    registry_actor who = actor_of(c, c->user.partner);
    int rc = registry_job_submit(c->a->reg, &who, &s);
    if (rc == -EEXIST) {
        set_error(c, 422, "idempotency_key_reused",
                  "this Idempotency-Key was already used with a different request body; use a "
                  "fresh key for a new job");
        goto out_s;
    }
    if (store_failed(c, rc, "store the job")) goto out_s;
    if (s.replayed) {
        LOG(LOG_INFO, "job submission by %s replayed (Idempotency-Key)", c->user.name);
        c->replayed = true;
    } else if (!s.verdict.admitted) {
        LOG(LOG_INFO, "job refused for user %s (partner %s): %s", c->user.name, c->user.partner,
            s.verdict.code);
        metrics_refusal(s.verdict.code);
        set_error(c, 403, s.verdict.code, "%s", s.verdict.message);
        goto out_s;
    } else {
        LOG(LOG_INFO, "job %" PRId64 " queued for user %s (partner %s): %d GPU(s) %s, %d min%s%s",
            j->id, c->user.name, c->user.partner, j->gpus, j->gpu_type[0] ? j->gpu_type : "-",
            j->time_minutes, arr.n_tasks ? ", array " : "", arr.n_tasks ? arr.spec : "");
        metrics_submission();
        c->kick = true;
    }
    if (s.body == NULL) { /* the registry made no answer (only with a key must it) */
        j->has_dependency = j->has_dependency || dep.n > 0; /* its rows are written now */
        json_t *answer = job_json_now(c->a, j, time(NULL));
        if (answer != NULL) job_options_merge(answer, s.options);
        set_json(c, 202, answer);
        goto out_s;
    }
    free(c->body);
    c->body = s.body;
    s.body = NULL;
    c->body_len = strlen(c->body);
    c->ctype = "application/json";
    c->status = s.status > 0 ? s.status : 202;
out_s:
    free(s.body);
out:
    job_array_close(&arr);
    free(opts_text);
    json_decref(o);
}

static int query_str(const char *query, const char *name, char *out, size_t len);

/* The non-negative integer value of `name` in `query` (percent-decoded, see query_str): 0,
 * -ENOENT if absent, -EINVAL if not such an integer. */
static int query_int(const char *query, const char *name, long long *out)
{
    char buf[32];
    int rc = query_str(query, name, buf, sizeof buf);
    if (rc < 0) return rc;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || end == buf || *end != '\0' || v < 0) return -EINVAL;
    *out = v;
    return 0;
}

static void h_jobs_list(api_call *c)
{
    long long limit = 100;
    int rc = query_int(http_request_query(c->req), "limit", &limit);
    if (rc == -EINVAL || limit < 1 || limit > 1000) {
        set_error(c, 400, "invalid_value", "limit must be an integer between 1 and 1000");
        return;
    }
    store_job *jobs = NULL;
    size_t n = 0;
    int64_t user_id = has_role(c, R_READERS | R_MANAGER) ? 0 : c->user.id;
    const char *partner =
        !has_role(c, R_READERS) && has_role(c, R_MANAGER) ? c->user.partner : NULL;
    if (store_failed(c, store_job_list(c->a->st, user_id, partner, (size_t)limit, &jobs, &n),
                     "list jobs"))
        return;
    json_t *arr = json_array();
    int64_t now = time(NULL);
    for (size_t i = 0; i < n; i++) {
        json_t *o = job_json_now(c->a, &jobs[i], now);
        if (o != NULL && jobs[i].array_job_id == jobs[i].id) { /* an array: once, with counts */
            bool failed;
            json_t *a = array_json(c, jobs[i].id, false, now, &failed);
            if (failed) {
                json_decref(o);
                json_decref(arr);
                free(jobs);
                return;
            }
            json_object_set_new(o, "array", a);
        }
        json_array_append_new(arr, o);
    }
    free(jobs);
    set_json(c, 200, json_pack("{s:o}", "jobs", arr));
}

/* Loads the job of the path and checks that the caller may see it. */
static bool load_own_job(api_call *c, store_job *j)
{
    int rc;
    if (c->id == 0) { /* a "%" route: ID_TASK, the task of index TASK of array ID */
        int64_t aid = 0;
        int task = -1;
        if (job_array_ref_parse(c->seg[0], &aid, &task) < 0 || task < 0) {
            set_error(c, 404, "not_found",
                      "no job \"%s\": name a job by its id (12) or an array's task by ID_TASK "
                      "(12_3); see antenna jobs",
                      c->seg[0]);
            return false;
        }
        rc = store_job_array_task_get(c->a->st, aid, task, j);
        if (rc == -ENOENT || (rc == 0 && !may_see_job(c, j))) {
            set_error(c, 404, "not_found",
                      "no task %d of array %" PRId64 " among your jobs; see antenna show %" PRId64,
                      task, aid, aid);
            return false;
        }
        if (store_failed(c, rc, "read the job")) return false;
        c->id = j->id;
        c->by_task = true;
        return true;
    }
    rc = store_job_get(c->a->st, c->id, j);
    if (rc == -ENOENT || (rc == 0 && !may_see_job(c, j))) {
        set_error(c, 404, "not_found", "no job %" PRId64 " among your jobs; see antenna jobs",
                  c->id);
        return false;
    }
    return !store_failed(c, rc, "read the job");
}

static void h_job_get(api_call *c)
{
    store_job j;
    char *opts = NULL;
    c->cache_gen = registry_generation(c->a->reg); /* before the read: see job_cache.h */
    if (!load_own_job(c, &j)) return;
    /* a queued job's answer has live parts (its wait reason, its priority, which move with
     * time), an array's its tasks' live reasons: those are never kept */
    c->cacheable =
        !c->by_task && strcmp(j.state, STORE_STATE_QUEUED) != 0 && j.array_job_id != j.id;
    c->owner.user_id = j.user_id;
    snprintf(c->owner.partner, sizeof c->owner.partner, "%s", j.partner);
    if (store_failed(c, store_job_options_get(c->a->st, j.id, &opts), "read the job")) return;
    int64_t now = time(NULL);
    /* one job: with its requeued runs (lists give their count only) */
    json_t *o = job_json_runs(c->a, job_json_now(c->a, &j, now), &j);
    if (o != NULL && job_options_merge(o, opts) < 0)
        LOG(LOG_WARN, "job %" PRId64 ": its stored options are not a JSON object", j.id);
    free(opts);
    if (o != NULL && !c->by_task && j.array_job_id == j.id) { /* the array's id: all its tasks */
        bool failed;
        json_t *a = array_json(c, j.id, true, now, &failed);
        if (failed) {
            json_decref(o);
            return;
        }
        json_object_set_new(o, "array", a);
    }
    set_json(c, 200, o);
}

/* DELETE of an array's id: every task not ended (ID_TASK cancels one task). */
static void array_cancel(api_call *c, const store_job *first)
{
    registry_actor who = actor_of(c, first->partner);
    size_t n_now = 0, n_slurm = 0;
    int64_t *slurm = NULL;
    int rc = registry_job_array_cancel(c->a->reg, &who, first->id, &n_now, &slurm, &n_slurm);
    if (rc == -EALREADY) {
        set_error(c, 409, "conflict",
                  "every task of array %" PRId64 " already ended; nothing to cancel", first->id);
        return;
    }
    if (rc == -ENOENT) {
        set_error(c, 404, "not_found", "no job %" PRId64 " among your jobs; see antenna jobs",
                  c->id);
        return;
    }
    if (store_failed(c, rc, "cancel the array")) return;
    LOG(LOG_INFO,
        "array %" PRId64 ": cancel asked by %s (%zu task(s) cancelled before dispatch, "
        "%zu in Slurm)",
        first->id, c->user.name, n_now, n_slurm);
    for (size_t i = 0; i < n_slurm; i++)
        if (broker_cancel_push(c->a->br, slurm[i]) < 0)
            LOG(LOG_WARN, "job %" PRId64 ": cancel recorded; Slurm gets it after a restart",
                slurm[i]);
    free(slurm);
    c->kick = n_slurm > 0;
    store_job j;
    bool failed;
    if (store_failed(c, store_job_get(c->a->st, first->id, &j), "read the job")) return;
    json_t *o = job_json(&j, NULL);
    json_t *a = o ? array_json(c, j.id, false, time(NULL), &failed) : NULL;
    if (o == NULL || a == NULL) {
        json_decref(o);
        if (o == NULL) set_error(c, 500, "internal", "out of memory");
        return;
    }
    json_object_set_new(o, "array", a);
    json_object_set_new(o, "cancelled_now", json_integer((json_int_t)n_now));
    json_object_set_new(o, "cancel_requested", json_integer((json_int_t)n_slurm));
    set_json(c, 202, o);
}

static void h_job_delete(api_call *c)
{
    store_job j;
    bool now = false;
    if (!load_own_job(c, &j)) return;
    if (j.user_id != c->user.id && !has_role(c, R_ADMIN)) {
        set_error(c, 403, "forbidden",
                  "job %" PRId64 " belongs to %s: only its owner or an admin may cancel it", c->id,
                  j.user);
        return;
    }
    if (!c->by_task && j.array_job_id == j.id) {
        array_cancel(c, &j);
        return;
    }
    registry_actor who = actor_of(c, j.partner);
    char state[STORE_STATE_MAX];
    snprintf(state, sizeof state, "%s", j.state);
    int rc = registry_job_cancel(c->a->reg, &who, c->id, &now, &j);
    if (rc == -EALREADY) {
        set_error(c, 409, "conflict", "job %" PRId64 " already ended (%s); nothing to cancel",
                  c->id, state);
        return;
    }
    if (rc == -ENOENT) {
        set_error(c, 404, "not_found", "no job %" PRId64 " among your jobs; see antenna jobs",
                  c->id);
        return;
    }
    if (store_failed(c, rc, "cancel the job")) return;
    LOG(LOG_INFO, "job %" PRId64 ": cancel asked by %s%s", c->id, c->user.name,
        now ? " (cancelled before dispatch)" : "");
    set_json(c, 202, job_json(&j, NULL));
    if (!now && broker_cancel_push(c->a->br, c->id) < 0)
        LOG(LOG_WARN, "job %" PRId64 ": cancel recorded; Slurm gets it after a restart", c->id);
    c->kick = !now;
}

/* Runs on the output lane (see api_handle): the file is the job's owner's to replace, so it is
 * read by job_output_read (no link followed, nothing but a regular file of the job's account with
 * one link) one bounded chunk at a time; the headers say where the next chunk starts and whether
 * this one reached the end of the file. */
static void h_job_output(api_call *c)
{
    store_job j;
    long long offset = 0;
    char path[PATH_MAX + 64], err[256] = "";
    if (!load_own_job(c, &j)) return;
    if (query_int(http_request_query(c->req), "offset", &offset) == -EINVAL) {
        set_error(c, 400, "invalid_value", "offset must be a non-negative integer");
        return;
    }
    char stream[16];
    int qrc = query_str(http_request_query(c->req), "stream", stream, sizeof stream);
    if (qrc == -EINVAL || (qrc == 0 && strcmp(stream, "stdout") != 0 && strcmp(stream, "stderr"))) {
        set_error(c, 400, "invalid_value", "stream must be stdout or stderr");
        return;
    }
    broker_stream which = qrc == 0 && strcmp(stream, "stderr") == 0 ? BROKER_STDERR : BROKER_STDOUT;
    char *opts_text = NULL;
    if (store_failed(c, store_job_options_get(c->a->st, j.id, &opts_text), "read the job")) return;
    jobreq opts;
    jobreq_init(&opts);
    int orc = job_options_parse(opts_text, &opts);
    free(opts_text);
    broker_options bo = {.spool_dir = c->a->spool_dir};
    int prc = orc < 0 ? orc : broker_job_stream_path(&bo, &j, &opts, which, path, sizeof path);
    if (prc == -ENOENT) {
        set_error(c, 404, "no_stderr_stream",
                  "job %" PRId64 " has no stderr apart: its script sets no --error of its own, so "
                  "its stderr is in its output (antenna logs %" PRId64 ")",
                  c->id, c->id);
        return;
    }
    if (prc < 0) {
        set_error(c, 500, "internal", "job %" PRId64 "'s output file cannot be named", c->id);
        return;
    }
    snprintf(c->job_state, sizeof c->job_state, "%s", j.state);
    job_output_chunk ch;
    if (strcmp(j.state, STORE_STATE_QUEUED) == 0) { /* never dispatched: no folder, no file */
        memset(&ch, 0, sizeof ch);
        ch.offset = ch.next = (uint64_t)offset;
        ch.end = true;
        goto answer;
    }
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    if (getpwnam_r(j.unix_user, &pw, pwbuf, sizeof pwbuf, &res) != 0 || res == NULL) {
        set_error(c, 409, "output_refused",
                  "job %" PRId64 "'s Unix account '%s' no longer exists on the broker host, so its "
                  "output cannot be checked; ask your administrator",
                  c->id, j.unix_user);
        return;
    }
    size_t cap = c->a->opt.max_output_bytes ? c->a->opt.max_output_bytes : JOB_OUTPUT_CHUNK_DEFAULT;
    int rc = job_output_read(path, pw.pw_uid, (uint64_t)offset, cap, &ch, err, sizeof err);
    if (rc == -ENOENT) { /* not started yet, or nothing written: empty, and the end */
        memset(&ch, 0, sizeof ch);
        ch.offset = ch.next = (uint64_t)offset;
        ch.end = true;
    } else if (rc == -EPERM) {
        LOG(LOG_WARN, "job %" PRId64 ": output refused: %s", c->id, err);
        set_error(c, 409, "output_refused", "job %" PRId64 ": %s", c->id, err);
        return;
    } else if (rc < 0) {
        LOG(LOG_ERROR, "job %" PRId64 ": cannot read its output: %s", c->id, err);
        set_error(c, 500, "internal", "cannot read job %" PRId64 "'s output; try again", c->id);
        return;
    }
answer:
    c->out_next = ch.next;
    c->out_end = ch.end;
    c->out_chunk = true;
    free(c->body);
    c->body = ch.data ? ch.data : strdup("");
    c->body_len = ch.len;
    c->ctype = "text/plain; charset=utf-8";
    c->status = c->body ? 200 : 500;
    if (c->body == NULL) set_error(c, 500, "internal", "out of memory");
}

static json_t *partner_json(const store_partner *p)
{
    return json_pack("{s:s,s:s,s:i,s:o}", "name", p->name, "description", p->description,
                     "share_weight", p->share_weight, "created_at", json_time(p->created_at));
}

static json_t *user_json(const store_user *u)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:b}", "name", u->name, "partner", u->partner,
                     "unix_user", u->unix_user, "role", u->role, "category", u->category,
                     "created_at", json_time(u->created_at), "disabled", u->disabled);
}

/* GET /v1/me: who the token belongs to (the web console shows the pages of this role). */
static void h_me(api_call *c)
{
    set_json(c, 200, user_json(&c->user));
}

static json_t *int_or_null(int v)
{
    return v < 0 ? json_null() : json_integer(v);
}

/* The quota status of `partner` for `period`: its limits (store), used and held (engine). */
static json_t *quota_json(api_call *c, const store_partner *p, const char *period)
{
    store_quota q;
    policy_quota pq;
    int64_t used = 0, held = 0, ucpu = 0, hcpu = 0;
    bool set = store_quota_get(c->a->st, p->name, period, &q) == 0;
    if (!set) {
        policy_quota_none(&pq);
        q.gpu_seconds = pq.gpu_seconds;
        q.cpu_seconds = pq.cpu_seconds;
        q.max_gpus = q.max_running_jobs = q.max_queued_jobs = POLICY_UNLIMITED;
        q.max_walltime_minutes = q.user_max_gpus = POLICY_UNLIMITED;
    }
    if (registry_quota_usage(c->a->reg, p->name, period, &pq, &used, &held, &ucpu, &hcpu) < 0)
        used = held = ucpu = hcpu = 0; /* a partner the engine does not know yet: nothing used */
    json_t *o = json_pack("{s:s,s:s,s:i,s:b}", "partner", p->name, "period", period, "share_weight",
                          p->share_weight, "set", set);
    json_object_set_new(o, "gpu_hours", hours_or_null(q.gpu_seconds));
    json_object_set_new(o, "used_gpu_hours", hours_or_null(used));
    json_object_set_new(o, "held_gpu_hours", hours_or_null(held));
    json_object_set_new(o, "left_gpu_hours",
                        q.gpu_seconds < 0 ? json_null()
                                          : hours_or_null(q.gpu_seconds - used - held));
    json_object_set_new(o, "cpu_hours", hours_or_null(q.cpu_seconds));
    json_object_set_new(o, "used_cpu_hours", hours_or_null(ucpu));
    json_object_set_new(o, "held_cpu_hours", hours_or_null(hcpu));
    json_object_set_new(o, "left_cpu_hours",
                        q.cpu_seconds < 0 ? json_null()
                                          : hours_or_null(q.cpu_seconds - ucpu - hcpu));
    json_object_set_new(o, "max_gpus", int_or_null(q.max_gpus));
    json_object_set_new(o, "max_running_jobs", int_or_null(q.max_running_jobs));
    json_object_set_new(o, "max_queued_jobs", int_or_null(q.max_queued_jobs));
    json_object_set_new(o, "max_walltime_minutes", int_or_null(q.max_walltime_minutes));
    json_object_set_new(o, "user_max_gpus", int_or_null(q.user_max_gpus));
    return o;
}

static void h_partners_post(api_call *c)
{
    static const struct field fields[] = {
        {"name", F_STR, true}, {"description", F_STR, false}, {"share_weight", F_INT, false}};
    json_t *o = parse_body(c, fields, 3);
    if (o == NULL) return;
    const char *name = str_field(o, "name", "");
    const char *desc = str_field(o, "description", "");
    long long share = int_field(o, "share_weight", 1);
    store_partner p;
    if (!jobreq_ident_valid(name)) {
        set_error(c, 400, "invalid_name",
                  "partner name \"%.64s\" is not valid: use 1-63 letters, digits, '.', '_' or '-'",
                  name);
    } else if (strlen(desc) >= sizeof p.description) {
        set_error(c, 400, "invalid_value", "description is too long (at most %zu characters)",
                  sizeof p.description - 1);
    } else if (share < 1 || share > 1000000) {
        set_error(c, 400, "invalid_value", "share_weight must be between 1 and 1000000");
    } else {
        registry_actor who = actor_of(c, name);
        int rc = registry_partner_create(c->a->reg, &who, name, desc, (int)share, &p);
        if (rc == -EEXIST)
            set_error(c, 409, "conflict", "partner \"%s\" already exists", name);
        else if (!store_failed(c, rc, "create the partner")) {
            LOG(LOG_INFO, "partner %s (share %lld) created by %s", name, share, c->user.name);
            broker_assoc_push(c->a->br, p.name, NULL); /* its Slurm account */
            set_json(c, 201, partner_json(&p));
        }
    }
    json_decref(o);
}

static void h_partners_list(api_call *c)
{
    store_partner *ps = NULL;
    size_t n = 0;
    if (store_failed(c, store_partner_list(c->a->st, &ps, &n), "list partners")) return;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, partner_json(&ps[i]));
    free(ps);
    set_json(c, 200, json_pack("{s:o}", "partners", arr));
}

/* Loads the partner named in the path, if the caller may see it (readers: any; others: their
 * own). */
static bool load_partner(api_call *c, const char *name, store_partner *p)
{
    int rc = store_partner_get(c->a->st, name, p);
    if (rc == -ENOENT || (rc == 0 && !has_role(c, R_READERS) && strcmp(name, c->user.partner))) {
        set_error(c, 404, "not_found", "no partner \"%.64s\"; see antenna partner list", name);
        return false;
    }
    return !store_failed(c, rc, "read the partner");
}

static void h_partner_get(api_call *c)
{
    store_partner p;
    char period[8];
    if (!load_partner(c, c->seg[0], &p)) return;
    json_t *o = partner_json(&p);
    json_object_set_new(o, "quota", quota_json(c, &p, policy_period_of(time(NULL), period)));
    set_json(c, 200, o);
}

static void h_partner_patch(api_call *c)
{
    static const struct field fields[] = {{"description", F_STR, false},
                                          {"share_weight", F_INT, false}};
    json_t *o = parse_body(c, fields, 2);
    store_partner p;
    if (o == NULL) return;
    const char *desc = str_field(o, "description", NULL);
    long long share = int_field(o, "share_weight", 0);
    if (json_object_get(o, "share_weight") && (share < 1 || share > 1000000)) {
        set_error(c, 400, "invalid_value", "share_weight must be between 1 and 1000000");
    } else if (desc && strlen(desc) >= sizeof p.description) {
        set_error(c, 400, "invalid_value", "description is too long");
    } else {
        registry_actor who = actor_of(c, c->seg[0]);
        int rc = registry_partner_update(c->a->reg, &who, c->seg[0], desc, (int)share, &p);
        if (rc == -ENOENT)
            set_error(c, 404, "not_found", "no partner \"%.64s\"; see antenna partner list",
                      c->seg[0]);
        else if (!store_failed(c, rc, "change the partner")) {
            LOG(LOG_INFO, "partner %s changed by %s", p.name, c->user.name);
            set_json(c, 200, partner_json(&p));
        }
    }
    json_decref(o);
}

/* The answer to a Unix account that account_check refused (a missing, invalid or privileged
 * account: rc -ENOENT, -EINVAL or -EPERM), with its message. */
static void account_refused(api_call *c, int rc, const char *why)
{
    (void)rc;
    set_error(c, 400, "invalid_value", "%s", why);
}

/* The answer to a Unix account already mapped to users of another partner. */
static void account_taken(api_call *c, const char *unix_user)
{
    set_error(c, 409, "conflict",
              "Unix account \"%.64s\" already runs the jobs of another partner's users; one "
              "account serves the users of one partner only: map this user to an account of its "
              "own partner (create one with deploy/ensure-unix-user.sh NAME)",
              unix_user);
}

static void h_users_post(api_call *c)
{
    static const struct field fields[] = {{"name", F_STR, true},
                                          {"partner", F_STR, true},
                                          {"unix_user", F_STR, true},
                                          {"category", F_STR, true},
                                          {"role", F_STR, false}};
    json_t *o = parse_body(c, fields, 5);
    if (o == NULL) return;
    const char *name = str_field(o, "name", ""), *partner = str_field(o, "partner", "");
    const char *unix_user = str_field(o, "unix_user", ""), *role = str_field(o, "role", "user");
    const char *category = str_field(o, "category", "");
    char why[512];
    store_user u;
    policy_category cat;
    int arc = 0;
    if (!jobreq_ident_valid(name)) {
        set_error(c, 400, "invalid_name",
                  "user name \"%.64s\" is not valid: use 1-63 letters, digits, '.', '_' or '-'",
                  name);
    } else if (role_bit(role) == 0) {
        set_error(c, 400, "invalid_value",
                  "role must be user, manager, staff, admin or auditor, not \"%.32s\"", role);
    } else if ((role_bit(role) & (R_STAFF | R_ADMIN | R_AUDITOR)) && !has_role(c, R_ADMIN)) {
        set_error(c, 403, "forbidden", "only an admin may create a user with the %s role", role);
    } else if (policy_category_parse(category, &cat) < 0) {
        set_error(c, 400, "invalid_value",
                  "category must be sme, researcher or institution, not \"%.32s\"", category);
    } else if ((arc = account_check(&c->a->opt.accounts, unix_user, NULL, why, sizeof why)) < 0) {
        account_refused(c, arc, why);
    } else {
        registry_actor who = actor_of(c, partner);
        int rc =
            registry_user_create(c->a->reg, &who, name, partner, unix_user, role, category, &u);
        if (rc == -EEXIST)
            set_error(c, 409, "conflict", "user \"%s\" already exists", name);
        else if (rc == -ENOTUNIQ)
            account_taken(c, unix_user);
        else if (rc == -ENOENT)
            set_error(c, 400, "invalid_value",
                      "partner \"%.64s\" does not exist; create it with: antenna partner add "
                      "%.64s",
                      partner, partner);
        else if (!store_failed(c, rc, "create the user")) {
            LOG(LOG_INFO, "user %s (partner %s, unix %s, role %s, %s) created by %s", name, partner,
                unix_user, role, category, c->user.name);
            broker_assoc_push(c->a->br, u.partner, u.unix_user); /* Slurm's association */
            set_json(c, 201, user_json(&u));
        }
    }
    json_decref(o);
}

/* PATCH /v1/users/NAME {"unix_user": "...", "disabled": true|false}: a new mapping (checked as at
 * creation, audited with the old and new account) and disabling or enabling the user (its tokens
 * stop or work again before the answer; its jobs are left as they are). */
static void h_user_patch(api_call *c)
{
    static const struct field fields[] = {{"unix_user", F_STR, false}, {"disabled", F_BOOL, false}};
    json_t *o = parse_body(c, fields, 2);
    if (o == NULL) return;
    json_t *d = json_object_get(o, "disabled");
    const char *unix_user = str_field(o, "unix_user", NULL);
    int disabled = d ? (json_is_true(d) ? 1 : 0) : -1;
    char why[512];
    store_user u;
    int rc = store_user_get(c->a->st, c->seg[0], &u);
    if (rc == -ENOENT) {
        set_error(c, 404, "not_found", "no user \"%s\"; see antenna user list", c->seg[0]);
    } else if (store_failed(c, rc, "read the user")) {
    } else if ((role_bit(u.role) & (R_STAFF | R_ADMIN | R_AUDITOR)) && !has_role(c, R_ADMIN)) {
        set_error(c, 403, "forbidden", "only an admin may change a user with the %s role", u.role);
    } else if (unix_user == NULL && disabled < 0) {
        set_error(c, 400, "invalid_value", "nothing to change: give unix_user or disabled");
    } else if (disabled == 1 && u.id == c->user.id) {
        set_error(c, 409, "conflict", "you cannot disable yourself; ask another administrator");
    } else if (unix_user &&
               (rc = account_check(&c->a->opt.accounts, unix_user, NULL, why, sizeof why)) < 0) {
        account_refused(c, rc, why);
    } else {
        registry_actor who = actor_of(c, u.partner);
        rc = registry_user_update(c->a->reg, &who, u.name, unix_user, disabled, &u);
        if (rc == -ENOTUNIQ)
            account_taken(c, unix_user);
        else if (rc == -ENOENT)
            set_error(c, 404, "not_found", "no user \"%s\"; see antenna user list", c->seg[0]);
        else if (!store_failed(c, rc, "change the user")) {
            LOG(LOG_INFO, "user %s changed by %s (unix %s%s)", u.name, c->user.name, u.unix_user,
                u.disabled ? ", disabled" : "");
            broker_assoc_push(c->a->br, u.partner, u.unix_user); /* a remap: Slurm's association */
            set_json(c, 200, user_json(&u));
        }
    }
    json_decref(o);
}

/* The value of `name` in `query` (the raw query string), percent-decoded into out (`len` bytes
 * with the NUL; '+' stays '+'): 0, -ENOENT if absent, -EINVAL if malformed (a bad escape, an
 * escaped NUL) or too long. The one place query values are decoded: every handler reads them
 * through this (or query_int). */
static int query_str(const char *query, const char *name, char *out, size_t len)
{
    size_t nlen = strlen(name);
    for (const char *p = query; p && *p;) {
        if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1, *e = strchr(v, '&');
            size_t vlen = e ? (size_t)(e - v) : strlen(v);
            return http_percent_decode(v, vlen, out, len) < 0 ? -EINVAL : 0;
        }
        p = strchr(p, '&');
        if (p) p++;
    }
    return -ENOENT;
}

static void h_users_list(api_call *c)
{
    store_user *us = NULL;
    size_t n = 0;
    char partner[STORE_NAME_MAX] = "";
    if (query_str(http_request_query(c->req), "partner", partner, sizeof partner) == -EINVAL) {
        set_error(c, 400, "invalid_value", "partner is too long");
        return;
    }
    if (!has_role(c, R_READERS)) snprintf(partner, sizeof partner, "%s", c->user.partner);
    if (store_failed(c, store_user_list(c->a->st, partner[0] ? partner : NULL, &us, &n),
                     "list users"))
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, user_json(&us[i]));
    free(us);
    set_json(c, 200, json_pack("{s:o}", "users", arr));
}

/* Resolves a period argument ("current" or YYYY-MM) into out[8]. */
static bool period_arg(api_call *c, const char *arg, char out[8])
{
    if (arg == NULL || arg[0] == '\0' || strcmp(arg, "current") == 0) {
        policy_period_of(time(NULL), out);
        return true;
    }
    if (!policy_period_valid(arg)) {
        set_error(c, 400, "invalid_value", "period must be YYYY-MM or \"current\", not \"%.16s\"",
                  arg);
        return false;
    }
    snprintf(out, 8, "%s", arg);
    return true;
}

static void h_quotas_list(api_call *c)
{
    char partner[STORE_NAME_MAX] = "", parg[16] = "", period[8];
    const char *q = http_request_query(c->req);
    if (query_str(q, "partner", partner, sizeof partner) == -EINVAL ||
        query_str(q, "period", parg, sizeof parg) == -EINVAL) {
        set_error(c, 400, "invalid_value", "partner or period is too long");
        return;
    }
    if (!period_arg(c, parg, period)) return;
    if (!has_role(c, R_READERS)) {
        if (partner[0] && strcmp(partner, c->user.partner) != 0) {
            set_error(c, 403, "forbidden", "you may only see the quota of your partner (%s)",
                      c->user.partner);
            return;
        }
        snprintf(partner, sizeof partner, "%s", c->user.partner);
    }
    store_partner *ps = NULL;
    size_t n = 0;
    if (store_failed(c, store_partner_list(c->a->st, &ps, &n), "list partners")) return;
    json_t *arr = json_array();
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        if (partner[0] && strcmp(partner, ps[i].name) != 0) continue;
        found = true;
        json_array_append_new(arr, quota_json(c, &ps[i], period));
    }
    free(ps);
    if (partner[0] && !found) {
        json_decref(arr);
        set_error(c, 404, "not_found", "no partner \"%.64s\"; see antenna partner list", partner);
        return;
    }
    set_json(c, 200, json_pack("{s:o}", "quotas", arr));
}

/* Reads an optional "hours" field (number >= 0 or null) into seconds; absent keeps *out. */
static bool hours_field(api_call *c, json_t *o, const char *name, int64_t *out)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL) return true;
    if (json_is_null(v)) {
        *out = STORE_UNLIMITED;
        return true;
    }
    double h = json_number_value(v);
    if (h < 0 || h > 1e9) {
        set_error(c, 400, "invalid_value", "%s must be a number of hours >= 0, or null", name);
        return false;
    }
    *out = (int64_t)(h * 3600.0 + 0.5);
    return true;
}

/* Reads an optional cap (integer >= 0 or null); absent keeps *out. */
static bool cap_field(api_call *c, json_t *o, const char *name, int *out)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL) return true;
    if (json_is_null(v)) {
        *out = STORE_UNLIMITED;
        return true;
    }
    if (json_integer_value(v) < 0 || json_integer_value(v) > 10000000) {
        set_error(c, 400, "invalid_value", "%s must be an integer >= 0, or null for no limit",
                  name);
        return false;
    }
    *out = (int)json_integer_value(v);
    return true;
}

static void h_quota_patch(api_call *c)
{
    static const struct field fields[] = {
        {"gpu_hours", F_NUM_NULL, false},       {"cpu_hours", F_NUM_NULL, false},
        {"max_gpus", F_INT_NULL, false},        {"max_running_jobs", F_INT_NULL, false},
        {"max_queued_jobs", F_INT_NULL, false}, {"max_walltime_minutes", F_INT_NULL, false},
        {"user_max_gpus", F_INT_NULL, false}};
    store_partner p;
    store_quota q;
    char period[8];
    json_t *o = parse_body(c, fields, sizeof fields / sizeof fields[0]);
    if (o == NULL) return;
    if (json_object_size(o) == 0) {
        set_error(c, 400, "missing_field", "give at least one quota field to change");
        goto out;
    }
    if (!period_arg(c, c->seg[1], period) || !load_partner(c, c->seg[0], &p)) goto out;
    if (store_quota_get(c->a->st, p.name, period, &q) < 0) {
        policy_quota none;
        policy_quota_none(&none);
        memset(&q, 0, sizeof q);
        snprintf(q.partner, sizeof q.partner, "%s", p.name);
        snprintf(q.period, sizeof q.period, "%s", period);
        q.gpu_seconds = none.gpu_seconds;
        q.cpu_seconds = none.cpu_seconds;
        q.max_gpus = none.max_gpus;
        q.max_running_jobs = none.max_running_jobs;
        q.max_queued_jobs = none.max_queued_jobs;
        q.max_walltime_minutes = none.max_walltime_minutes;
        q.user_max_gpus = none.user_max_gpus;
    }
    if (!hours_field(c, o, "gpu_hours", &q.gpu_seconds) ||
        !hours_field(c, o, "cpu_hours", &q.cpu_seconds) ||
        !cap_field(c, o, "max_gpus", &q.max_gpus) ||
        !cap_field(c, o, "max_running_jobs", &q.max_running_jobs) ||
        !cap_field(c, o, "max_queued_jobs", &q.max_queued_jobs) ||
        !cap_field(c, o, "max_walltime_minutes", &q.max_walltime_minutes) ||
        !cap_field(c, o, "user_max_gpus", &q.user_max_gpus))
        goto out;
    registry_actor who = actor_of(c, p.name);
    int rc = registry_quota_set(c->a->reg, &who, &q);
    if (rc == -ENOENT) {
        set_error(c, 404, "not_found", "no partner \"%.64s\"; see antenna partner list", p.name);
        goto out;
    }
    if (store_failed(c, rc, "set the quota")) goto out;
    LOG(LOG_INFO, "quota of %s for %s set by %s", p.name, period, c->user.name);
    broker_gpu_limit_push(c->a->br, p.name, period, q.gpu_seconds); /* Slurm's mirror, if on */
    set_json(c, 200, quota_json(c, &p, period));
    c->kick = true; /* takes effect at once on the queue */
out:
    json_decref(o);
}

/* Parses "YYYY-MM-DD" (UTC midnight) or "YYYY-MM-DDTHH:MM:SSZ" into unix seconds. */
static int parse_expiry_time(const char *s, int64_t *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0') {
        memset(&tm, 0, sizeof tm);
        end = strptime(s, "%Y-%m-%d", &tm);
        if (end == NULL || *end != '\0') return -EINVAL;
    }
    *t = (int64_t)timegm(&tm);
    return 0;
}

/* A new token's expiry from "expires_in" (seconds) or "expires_at" (a UTC date or time), or the
 * configured default lifetime; refused beyond the configured maximum. Returns false with the
 * error answer set. */
static bool token_expiry(api_call *c, json_t *o, int64_t now, int64_t *expires_at)
{
    json_t *in = json_object_get(o, "expires_in");
    const char *at = str_field(o, "expires_at", NULL);
    int64_t max = c->a->opt.token_max_lifetime_s;
    if (in && at) {
        set_error(c, 400, "invalid_value", "give expires_in or expires_at, not both");
        return false;
    }
    if (in) {
        json_int_t v = json_integer_value(in);
        if (v <= 0 || v > (json_int_t)100 * 365 * 86400) {
            set_error(c, 400, "invalid_value",
                      "expires_in must be a number of seconds between 1 and 3153600000");
            return false;
        }
        *expires_at = now + (int64_t)v;
    } else if (at) {
        if (parse_expiry_time(at, expires_at) < 0) {
            set_error(c, 400, "invalid_value",
                      "expires_at must be a UTC date YYYY-MM-DD or time YYYY-MM-DDTHH:MM:SSZ, not "
                      "\"%.40s\"",
                      at);
            return false;
        }
        if (*expires_at <= now) {
            set_error(c, 400, "invalid_value", "expires_at %.40s is in the past", at);
            return false;
        }
    } else {
        *expires_at =
            c->a->opt.token_default_lifetime_s > 0 ? now + c->a->opt.token_default_lifetime_s : 0;
    }
    if (max > 0 && (*expires_at == 0 || *expires_at - now > max)) {
        set_error(c, 400, "expiry_too_far",
                  "a token may live at most %" PRId64 " days here (token_max_lifetime_days); ask "
                  "for a shorter expiry",
                  max / 86400);
        return false;
    }
    return true;
}

static void h_tokens_post(api_call *c)
{
    static const struct field fields[] = {{"user", F_STR, true},
                                          {"label", F_STR, false},
                                          {"expires_in", F_INT, false},
                                          {"expires_at", F_STR, false}};
    json_t *o = parse_body(c, fields, 4);
    if (o == NULL) return;
    const char *name = str_field(o, "user", ""), *label = str_field(o, "label", "");
    char token[AUTH_TOKEN_LEN + 1], hash[AUTH_HASH_HEX_LEN + 1];
    store_user u;
    int64_t id = 0, expires_at = 0;
    if (!token_expiry(c, o, time(NULL), &expires_at)) goto out;
    int rc = store_user_get(c->a->st, name, &u);
    if (rc == -ENOENT) {
        set_error(c, 400, "invalid_value",
                  "user \"%.64s\" does not exist; create it with: antenna user add", name);
    } else if (strlen(label) >= STORE_NAME_MAX) {
        set_error(c, 400, "invalid_value", "label is too long (at most %d characters)",
                  STORE_NAME_MAX - 1);
    } else if (store_failed(c, rc, "read the user")) {
    } else if (u.disabled) {
        set_error(c, 409, "user_disabled",
                  "user \"%s\" is disabled; enable it first (antenna user enable %s)", u.name,
                  u.name);
    } else {
        registry_actor who = actor_of(c, u.partner);
        if (auth_token_generate(token, sizeof token) < 0 ||
            auth_token_hash(token, hash, sizeof hash) < 0) {
            set_error(c, 500, "internal", "could not make a random token");
        } else if (!store_failed(c,
                                 registry_token_issue(c->a->reg, &who, u.id, u.partner, hash, label,
                                                      expires_at, &id),
                                 "store the token")) {
            LOG(LOG_INFO, "token %" PRId64 " created for user %s by %s", id, u.name, c->user.name);
            set_json(c, 201,
                     json_pack("{s:I,s:s,s:s,s:s,s:o}", "id", (json_int_t)id, "user", u.name,
                               "label", label, "token", token, "expires_at",
                               json_time(expires_at)));
        }
        OPENSSL_cleanse(token, sizeof token);
    }
out:
    json_decref(o);
}

static void h_tokens_list(api_call *c)
{
    store_token *ts = NULL;
    size_t n = 0;
    if (store_failed(c, store_token_list(c->a->st, 0, &ts, &n), "list tokens")) return;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:I,s:s,s:s,s:o,s:o,s:o,s:b}", "id", (json_int_t)ts[i].id, "user",
                           ts[i].user, "label", ts[i].label, "created_at",
                           json_time(ts[i].created_at), "revoked_at", json_time(ts[i].revoked_at),
                           "expires_at", json_time(ts[i].expires_at), "expired",
                           ts[i].expires_at > 0 && ts[i].expires_at <= time(NULL)));
    free(ts);
    set_json(c, 200, json_pack("{s:o}", "tokens", arr));
}

static void h_token_delete(api_call *c)
{
    registry_actor who = actor_of(c, "");
    int rc = registry_token_revoke(c->a->reg, &who, c->id);
    if (rc == -ENOENT) {
        set_error(c, 404, "not_found", "no active token %" PRId64 "; see antenna token list",
                  c->id);
        return;
    }
    if (store_failed(c, rc, "revoke the token")) return;
    LOG(LOG_INFO, "token %" PRId64 " revoked by %s", c->id, c->user.name);
    set_json(c, 200, json_pack("{s:I,s:b}", "id", (json_int_t)c->id, "revoked", 1));
}

/* Parses a date "YYYY-MM-DD" (UTC midnight) or unix seconds into *t. Returns 0 or -EINVAL. */
static int parse_date(const char *s, int64_t *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    char *end = NULL;
    if (strlen(s) == 10 && (end = strptime(s, "%Y-%m-%d", &tm)) != NULL && *end == '\0') {
        *t = (int64_t)timegm(&tm);
        return 0;
    }
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < 0) return -EINVAL;
    *t = v;
    return 0;
}

static json_t *usage_json(const char *key, const store_usage_row *r)
{
    json_t *o =
        json_pack("{s:f,s:f,s:f,s:I,s:I,s:I}", "gpu_hours", r->gpu_seconds / 3600.0, "cpu_hours",
                  r->cpu_seconds / 3600.0, "elapsed_gpu_hours", r->elapsed_gpu_seconds / 3600.0,
                  "jobs", (json_int_t)r->jobs, "gpu_seconds", (json_int_t)r->gpu_seconds,
                  "cpu_seconds", (json_int_t)r->cpu_seconds);
    if (key) json_object_set_new(o, "key", json_string(key));
    return o;
}

static void h_usage(api_call *c)
{
    static const char *const dims[] = {"partner", "user",  "category", "gpu-type",
                                       "day",     "month", "total"};
    const char *q = http_request_query(c->req);
    char by[16] = "partner", partner[STORE_NAME_MAX] = "", user[STORE_NAME_MAX] = "";
    char from_s[24] = "", to_s[24] = "";
    int64_t from = 0, to = 0;
    bool by_ok = false;
    if (query_str(q, "by", by, sizeof by) == -EINVAL ||
        query_str(q, "partner", partner, sizeof partner) == -EINVAL ||
        query_str(q, "user", user, sizeof user) == -EINVAL ||
        query_str(q, "from", from_s, sizeof from_s) == -EINVAL ||
        query_str(q, "to", to_s, sizeof to_s) == -EINVAL) {
        set_error(c, 400, "invalid_value", "a query value is too long");
        return;
    }
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (strcmp(by, dims[i]) == 0) by_ok = true;
    if (!by_ok) {
        set_error(c, 400, "invalid_value",
                  "by must be partner, user, category, gpu-type, day, month or total, not "
                  "\"%.16s\"",
                  by);
        return;
    }
    if ((from_s[0] && parse_date(from_s, &from) < 0) || (to_s[0] && parse_date(to_s, &to) < 0)) {
        set_error(c, 400, "invalid_value", "from and to must be dates YYYY-MM-DD");
        return;
    }
    /* Scope: users see their own usage, managers their partner's, readers everything. */
    if (!has_role(c, R_READERS)) {
        if (partner[0] && strcmp(partner, c->user.partner) != 0) {
            set_error(c, 403, "forbidden", "you may only see the usage of your partner (%s)",
                      c->user.partner);
            return;
        }
        snprintf(partner, sizeof partner, "%s", c->user.partner);
        if (!has_role(c, R_MANAGER)) {
            if (user[0] && strcmp(user, c->user.name) != 0) {
                set_error(c, 403, "forbidden", "you may only see your own usage");
                return;
            }
            snprintf(user, sizeof user, "%s", c->user.name);
        }
    }
    store_usage_filter f = {.by = by,
                            .partner = partner[0] ? partner : NULL,
                            .user = user[0] ? user : NULL,
                            .from = from,
                            .to = to};
    store_usage_row *rows = NULL, total;
    size_t n = 0;
    if (store_failed(c, store_usage_query(c->a->st, &f, &rows, &n), "sum the usage")) return;
    memset(&total, 0, sizeof total);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, usage_json(rows[i].key, &rows[i]));
        total.gpu_seconds += rows[i].gpu_seconds;
        total.cpu_seconds += rows[i].cpu_seconds;
        total.elapsed_gpu_seconds += rows[i].elapsed_gpu_seconds;
    }
    free(rows);
    /* The number of distinct jobs is not the sum over groups (a job is in one group per
     * dimension, so it is), but ask the store for the exact total anyway. */
    store_usage_filter ft = f;
    ft.by = "total";
    if (store_usage_query(c->a->st, &ft, &rows, &n) == 0 && n == 1) total.jobs = rows[0].jobs;
    free(rows);
    json_t *o =
        json_pack("{s:s,s:o,s:o}", "by", by, "rows", arr, "total", usage_json(NULL, &total));
    json_object_set_new(o, "from", from_s[0] ? json_string(from_s) : json_null());
    json_object_set_new(o, "to", to_s[0] ? json_string(to_s) : json_null());
    json_object_set_new(o, "partner", partner[0] ? json_string(partner) : json_null());
    json_object_set_new(o, "user", user[0] ? json_string(user) : json_null());
    set_json(c, 200, o);
}

static json_t *adjustment_json(const store_adjustment *a);
static json_t *reconciled_json(api_call *c, const char *partner, const char *month);

static void h_report(api_call *c)
{
    store_partner p;
    const char *month = c->seg[1];
    if (!has_role(c, R_READERS | R_MANAGER)) {
        set_error(c, 403, "forbidden", "partner statements are for managers, staff and auditors");
        return;
    }
    if (!policy_period_valid(month)) {
        set_error(c, 400, "invalid_value", "month must be YYYY-MM, not \"%.16s\"", month);
        return;
    }
    if (!load_partner(c, c->seg[0], &p)) return;
    store_job *jobs = NULL;
    size_t n = 0;
    if (store_failed(c, store_job_list_charged(c->a->st, p.name, month, &jobs, &n),
                     "list the charged jobs"))
        return;
    json_t *jarr = json_array(), *days = json_object(), *users = json_object();
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        store_job *j = &jobs[i];
        char day[16] = "";
        time_t end = (time_t)j->ended_at;
        struct tm tm;
        gmtime_r(&end, &tm);
        strftime(day, sizeof day, "%Y-%m-%d", &tm);
        int64_t elapsed =
            j->started_at > 0 && j->ended_at > j->started_at ? j->ended_at - j->started_at : 0;
        json_array_append_new(jarr, json_pack("{s:I,s:s,s:s,s:i,s:s,s:s,s:o,s:o,s:I,s:f,s:I}", "id",
                                              (json_int_t)j->id, "name", j->name, "user", j->user,
                                              "gpus", j->gpus, "gpu_type", j->gpu_type, "state",
                                              j->state, "started_at", json_time(j->started_at),
                                              "ended_at", json_time(j->ended_at), "elapsed_seconds",
                                              (json_int_t)elapsed, "charge_gpu_hours",
                                              j->charge_gpu_seconds / 3600.0, "charge_gpu_seconds",
                                              (json_int_t)j->charge_gpu_seconds));
        json_t *d = json_object_get(days, day);
        json_int_t ds = d ? json_integer_value(d) : 0;
        json_object_set_new(days, day, json_integer(ds + j->charge_gpu_seconds));
        json_t *u = json_object_get(users, j->user);
        if (u == NULL) {
            store_user su;
            u = json_pack("{s:s,s:s,s:I,s:I}", "user", j->user, "category",
                          store_user_get(c->a->st, j->user, &su) == 0 ? su.category : "",
                          "gpu_seconds", (json_int_t)0, "jobs", (json_int_t)0);
            json_object_set_new(users, j->user, u);
        }
        json_object_set_new(u, "gpu_seconds",
                            json_integer(json_integer_value(json_object_get(u, "gpu_seconds")) +
                                         j->charge_gpu_seconds));
        json_object_set_new(u, "jobs",
                            json_integer(json_integer_value(json_object_get(u, "jobs")) + 1));
        total += j->charge_gpu_seconds;
    }
    free(jobs);
    json_t *by_day = json_array(), *by_user = json_array();
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(days, tmp, k, v)
    {
        json_array_append_new(by_day, json_pack("{s:s,s:f,s:I}", "day", k, "gpu_hours",
                                                json_integer_value(v) / 3600.0, "gpu_seconds",
                                                (json_int_t)json_integer_value(v)));
    }
    json_object_foreach(users, k, v)
    {
        json_object_set_new(
            v, "gpu_hours",
            json_real(json_integer_value(json_object_get(v, "gpu_seconds")) / 3600.0));
        json_array_append(by_user, v);
    }
    json_decref(days);
    json_decref(users);
    char now_s[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(now_s, sizeof now_s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:{s:f,s:I,s:I}}", "partner", p.name,
                          "description", p.description, "month", month, "generated_at", now_s,
                          "quota", quota_json(c, &p, month), "by_day", by_day, "by_user", by_user,
                          "jobs", jarr, "total", "gpu_hours", total / 3600.0, "gpu_seconds",
                          (json_int_t)total, "jobs", (json_int_t)n);
    store_adjustment *as = NULL;
    size_t nas = 0;
    if (o != NULL && store_adjustment_list(c->a->st, p.name, month, 0, &as, &nas) == 0) {
        json_t *aarr = json_array();
        for (size_t i = 0; i < nas; i++)
            json_array_append_new(aarr, adjustment_json(&as[i]));
        json_object_set_new(o, "adjustments", aarr);
    }
    free(as);
    if (o != NULL) json_object_set_new(o, "reconciled", reconciled_json(c, p.name, month));
    set_json(c, 200, o);
}

static json_t *audit_entry_json(const store_audit_entry *e)
{
    json_error_t jerr;
    json_t *details = e->details ? json_loads(e->details, 0, &jerr) : NULL;
    if (details == NULL) details = json_string(e->details ? e->details : "");
    return json_pack("{s:I,s:o,s:s,s:s,s:s,s:o,s:s,s:s}", "seq", (json_int_t)e->seq, "at",
                     json_time(e->at), "actor", e->actor, "partner", e->partner, "action",
                     e->action, "details", details, "hash", e->hash, "prev_hash", e->prev_hash);
}

static void h_audit_list(api_call *c)
{
    const char *q = http_request_query(c->req);
    char since_s[24] = "", actor[STORE_NAME_MAX] = "", action[48] = "";
    long long after = 0, limit = 1000;
    int64_t since = 0;
    if (query_str(q, "since", since_s, sizeof since_s) == -EINVAL ||
        query_str(q, "actor", actor, sizeof actor) == -EINVAL ||
        query_str(q, "action", action, sizeof action) == -EINVAL ||
        query_int(q, "after", &after) == -EINVAL || query_int(q, "limit", &limit) == -EINVAL ||
        limit < 1 || limit > 100000 || (since_s[0] && parse_date(since_s, &since) < 0)) {
        set_error(c, 400, "invalid_value",
                  "since must be YYYY-MM-DD, after a sequence number, limit 1..100000");
        return;
    }
    store_audit_entry *es = NULL;
    size_t n = 0;
    if (store_failed(c,
                     store_audit_list(c->a->st, after, since, actor[0] ? actor : NULL,
                                      action[0] ? action : NULL, (size_t)limit, &es, &n),
                     "read the audit trail"))
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, audit_entry_json(&es[i]));
    store_audit_entries_free(es, n);
    set_json(c, 200, json_pack("{s:o}", "entries", arr));
}

static void h_audit_verify(api_call *c)
{
    audit_report r;
    memset(&r, 0, sizeof r);
    if (c->a->opt.audit == NULL) {
        set_error(c, 503, "unavailable", "the audit trail is not configured");
        return;
    }
    if (audit_verify_open(c->a->opt.audit, &r) < 0) {
        set_error(c, 500, "internal", "cannot verify the audit trail: %s", r.problem);
        return;
    }
    set_json(c, 200,
             json_pack("{s:b,s:I,s:o,s:s,s:I}", "ok", r.ok, "entries", (json_int_t)r.entries,
                       "first_bad", r.ok ? json_null() : json_integer(r.first_bad), "problem",
                       r.problem, "head_seq", (json_int_t)r.head_seq));
}

/* --- refunds and corrections ------------------------------------------------------------------ */

static json_t *adjustment_json(const store_adjustment *a)
{
    return json_pack("{s:I,s:s,s:s,s:f,s:I,s:I,s:s,s:s,s:o}", "job", (json_int_t)a->job_id, "kind",
                     a->kind, "period", a->period, "gpu_hours", a->gpu_seconds / 3600.0,
                     "gpu_seconds", (json_int_t)a->gpu_seconds, "cpu_seconds",
                     (json_int_t)a->cpu_seconds, "reason", a->reason, "actor", a->actor, "at",
                     json_time(a->at));
}

/* Reads an optional amount in hours (a number >= 0) into *out seconds; absent keeps *out. */
static bool amount_field(api_call *c, json_t *o, const char *name, int64_t *out)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL) return true;
    double h = json_is_number(v) ? json_number_value(v) : -1;
    if (h < 0 || h > 1e9) {
        set_error(c, 400, "invalid_value", "%s must be a number of hours >= 0", name);
        return false;
    }
    *out = (int64_t)(h * 3600.0 + 0.5);
    return true;
}

/* POST /v1/jobs/{id}/refund and /correct: one registry change each, audited with its reason. */
static void job_adjust(api_call *c, bool correct)
{
    static const struct field fields[] = {{"reason", F_STR, true},
                                          {"gpu_hours", F_NUM_NULL, false},
                                          {"cpu_hours", F_NUM_NULL, false}};
    json_t *o = parse_body(c, fields, sizeof fields / sizeof fields[0]);
    if (o == NULL) return;
    const char *reason = str_field(o, "reason", "");
    int64_t gpu = -1, cpu = -1;
    if (reason[0] == '\0' || strlen(reason) >= STORE_REASON_MAX) {
        set_error(c, 400, "invalid_value", "reason must say why, in 1 to %d characters",
                  STORE_REASON_MAX - 1);
        goto out;
    }
    if (!amount_field(c, o, "gpu_hours", &gpu) || !amount_field(c, o, "cpu_hours", &cpu)) goto out;
    if (correct && gpu < 0) {
        set_error(c, 400, "missing_field",
                  "field \"gpu_hours\" is required: the charge the job should have (GPU-hours)");
        goto out;
    }
    if (!correct && gpu >= 0 && cpu < 0) cpu = 0; /* a GPU amount alone refunds GPU-hours only */
    if (!correct && cpu >= 0 && gpu < 0) gpu = 0;
    store_job j;
    int rc = store_job_get(c->a->st, c->id, &j);
    if (rc == -ENOENT) {
        set_error(c, 404, "not_found", "no job %" PRId64 "; see antenna jobs --all", c->id);
        goto out;
    }
    if (store_failed(c, rc, "read the job")) goto out;
    registry_actor who = actor_of(c, j.partner);
    int64_t charged = j.charge_gpu_seconds;
    rc = correct ? registry_job_correct(c->a->reg, &who, c->id, gpu, cpu, reason, &j)
                 : registry_job_refund(c->a->reg, &who, c->id, gpu, cpu, reason, &j);
    if (rc == -ENOENT) {
        set_error(c, 404, "not_found", "no job %" PRId64 "; see antenna jobs --all", c->id);
    } else if (rc == -EAGAIN) {
        set_error(c, 409, "conflict",
                  "job %" PRId64 " has not ended (%s): %s it once it has ended and been charged",
                  c->id, j.state, correct ? "correct" : "refund");
    } else if (rc == -ERANGE) {
        set_error(c, 409, "conflict",
                  "job %" PRId64 " was charged %.4f GPU-hours (net, after earlier refunds): a "
                  "refund can't exceed what was charged",
                  c->id, charged / 3600.0);
    } else if (rc == -EALREADY) {
        set_error(c, 409, "conflict",
                  "job %" PRId64 "'s charge already is that (%.4f GPU-hours): nothing to %s", c->id,
                  charged / 3600.0, correct ? "correct" : "refund");
    } else if (!store_failed(c, rc, correct ? "correct the charge" : "refund the job")) {
        LOG(LOG_INFO, "job %" PRId64 ": %s by %s", c->id, correct ? "charge corrected" : "refunded",
            c->user.name);
        store_adjustment *as = NULL;
        size_t n = 0;
        json_t *arr = json_array();
        if (store_adjustment_list(c->a->st, NULL, NULL, c->id, &as, &n) == 0)
            for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, adjustment_json(&as[i]));
        free(as);
        json_t *jo = job_json(&j, NULL);
        json_object_set_new(jo, "adjustments", arr);
        set_json(c, 200, jo);
    }
out:
    json_decref(o);
}

static void h_job_refund(api_call *c)
{
    job_adjust(c, false);
}

static void h_job_correct(api_call *c)
{
    job_adjust(c, true);
}

/* --- reconciliation with the cluster's accounting -----------------------------------------------
 */

static void h_reconcile(api_call *c)
{
    char month[16] = "", err[512] = "";
    if (query_str(http_request_query(c->req), "month", month, sizeof month) == -EINVAL ||
        !policy_period_valid(month)) {
        set_error(c, 400, "invalid_value", "month=YYYY-MM is required, e.g. ?month=2026-11");
        return;
    }
    if (c->a->opt.reconciler == NULL) {
        set_error(c, 503, "no_accounting",
                  "the cluster keeps no accounting of record (antennad runs without slurmdbd): "
                  "reconciliation needs it");
        return;
    }
    registry_actor who = actor_of(c, "");
    char *text = NULL;
    int rc = reconciler_run(c->a->opt.reconciler, &who, month, time(NULL), &text, err, sizeof err);
    if (rc == -EINVAL) {
        set_error(c, 400, "invalid_value", "%s", err);
    } else if (rc == -ENOTSUP) {
        set_error(c, 503, "no_accounting", "%s", err);
    } else if (rc == -EAGAIN) {
        set_error(c, 503, "unavailable",
                  "the cluster's accounting does not answer (%s); retry later", err);
        c->retry_after = 30;
    } else if (rc < 0) {
        LOG(LOG_ERROR, "reconcile %s failed: %s", month, err);
        set_error(c, 500, "internal", "the reconciliation failed (%s); tell the operators", err);
    } else {
        json_error_t jerr;
        json_t *o = json_loads(text, 0, &jerr);
        if (o == NULL)
            set_error(c, 500, "internal", "the reconciliation's answer is not JSON");
        else
            set_json(c, 200, o);
    }
    free(text);
}

/* The latest reconciliation of `month` (audited "reconcile.ran"), as the statement of `partner`
 * shows it: {"at", "jobs", "differences"} of that partner, or null when none ran. Reads the runs
 * audited since the month began (one a day, and those asked). */
static json_t *reconciled_json(api_call *c, const char *partner, const char *month)
{
    int64_t from = 0, to = 0;
    store_audit_entry *es = NULL;
    size_t n = 0;
    json_t *best = NULL;
    int64_t best_at = 0;
    if (reconciler_month_bounds(month, &from, &to) < 0 ||
        store_audit_list(c->a->st, 0, from, NULL, "reconcile.ran", 0, &es, &n) < 0)
        return json_null();
    for (size_t i = 0; i < n; i++) {
        json_error_t jerr;
        json_t *d = json_loads(es[i].details ? es[i].details : "{}", 0, &jerr);
        const char *m = json_string_value(json_object_get(d, "month"));
        if (m && strcmp(m, month) == 0 && es[i].at >= best_at) {
            json_t *p = json_object_get(json_object_get(d, "partners"), partner);
            json_decref(best);
            best =
                json_pack("{s:o,s:I,s:I}", "at", json_time(es[i].at), "jobs",
                          (json_int_t)json_integer_value(json_object_get(p, "jobs")), "differences",
                          (json_int_t)json_integer_value(json_object_get(p, "differences")));
            best_at = es[i].at;
        }
        json_decref(d);
    }
    store_audit_entries_free(es, n);
    return best ? best : json_null();
}

/* Signs the chain's last entry (the whole chain verified first) for an auditor to keep elsewhere.
 * Changes nothing, so it is not itself audited. */
static void h_audit_checkpoint(api_call *c)
{
    audit_checkpoint cp;
    char err[320] = "";
    if (c->a->opt.audit == NULL) {
        set_error(c, 503, "unavailable", "the audit trail is not configured");
        return;
    }
    int rc = audit_checkpoint_take(c->a->opt.audit, &cp, err, sizeof err);
    if (rc == -EBADMSG) {
        set_error(c, 409, "conflict", "%s", err);
        return;
    }
    if (rc < 0) {
        LOG(LOG_ERROR, "audit checkpoint: %s", err);
        set_error(c, 500, "internal", "cannot sign a checkpoint: %s", err);
        return;
    }
    set_json(c, 201, audit_checkpoint_json(&cp, 1));
}

/* The checkpoint key's public half (the private half never leaves the broker host). */
static void h_audit_public_key(api_call *c)
{
    char hex[AUDIT_PUBKEY_HEX], id[AUDIT_KEY_ID_HEX], *pem = NULL;
    if (c->a->opt.audit == NULL) {
        set_error(c, 503, "unavailable", "the audit trail is not configured");
        return;
    }
    if (audit_public_key(c->a->opt.audit, hex, id, &pem) < 0) {
        set_error(c, 500, "internal", "cannot read the audit signing key's public half");
        return;
    }
    set_json(c, 200,
             json_pack("{s:s,s:s,s:s,s:s}", "algorithm", "ed25519", "key_id", id, "public_key", hex,
                       "pem", pem));
    free(pem);
}

static const struct route routes[] = {
    {"POST", "v1/jobs", h_jobs_post, R_SUBMITTERS, false},
    {"GET", "v1/jobs", h_jobs_list, R_ALL, true},
    {"GET", "v1/jobs/*", h_job_get, R_ALL, true},
    {"DELETE", "v1/jobs/*", h_job_delete, R_SUBMITTERS, false},
    {"GET", "v1/jobs/*/output", h_job_output, R_ALL, false},
    {"GET", "v1/jobs/%", h_job_get, R_ALL, true}, /* ID_TASK: one task of an array (12_3) */
    {"DELETE", "v1/jobs/%", h_job_delete, R_SUBMITTERS, false},
    {"GET", "v1/jobs/%/output", h_job_output, R_ALL, false},
    {"POST", "v1/partners", h_partners_post, R_STAFFS, false},
    {"GET", "v1/partners", h_partners_list, R_READERS, false},
    {"GET", "v1/partners/%", h_partner_get, R_ALL, false},
    {"PATCH", "v1/partners/%", h_partner_patch, R_STAFFS, false},
    {"POST", "v1/users", h_users_post, R_STAFFS, false},
    {"GET", "v1/users", h_users_list, R_READERS | R_MANAGER, false},
    {"PATCH", "v1/users/%", h_user_patch, R_STAFFS, false},
    {"GET", "v1/quotas", h_quotas_list, R_ALL, false},
    {"PATCH", "v1/quotas/%/%", h_quota_patch, R_STAFFS, false},
    {"POST", "v1/tokens", h_tokens_post, R_ADMIN, false},
    {"GET", "v1/tokens", h_tokens_list, R_ADMIN, false},
    {"DELETE", "v1/tokens/*", h_token_delete, R_ADMIN, false},
    {"GET", "v1/usage", h_usage, R_ALL, false},
    {"GET", "v1/reports/%/%", h_report, R_ALL, false},
    {"GET", "v1/audit", h_audit_list, R_ADMIN | R_AUDITOR, false},
    {"GET", "v1/audit/verify", h_audit_verify, R_ADMIN | R_AUDITOR, false},
    {"GET", "v1/me", h_me, R_ALL, true},
    {"POST", "v1/jobs/*/refund", h_job_refund, R_STAFFS, false},
    {"POST", "v1/jobs/*/correct", h_job_correct, R_STAFFS, false},
    {"GET", "v1/reconcile", h_reconcile, R_READERS, false},
    {"POST", "v1/audit/checkpoint", h_audit_checkpoint, R_ADMIN | R_AUDITOR, false},
    {"GET", "v1/audit/public-key", h_audit_public_key, R_ALL, false},
};

/* --- loop-thread side ---------------------------------------------------------------------- */

/* --- failed authentications: counted per peer and minute, audited once per peer and minute -- */

#define FLUSH_EVERY_MS 15000
#define FLUSH_BATCH    256

int api_auth_flush(api *a, bool all)
{
    auth_peer_count counts[FLUSH_BATCH];
    int ret = 0;
    size_t n;
    do {
        n = auth_peers_drain(a->peers, time(NULL), all, counts, FLUSH_BATCH);
        for (size_t i = 0; i < n; i++) {
            auth_peer_count *k = &counts[i];
            registry_actor who = {.actor = "-", .partner = ""};
            json_t *d =
                json_pack("{s:s,s:o,s:I,s:I}", "peer", k->peer, "minute", json_time(k->minute),
                          "failures", (json_int_t)k->failures, "refused", (json_int_t)k->refused);
            char *text = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
            json_decref(d);
            int rc = text ? registry_audit(a->reg, &who, "auth.failed", text) : -ENOMEM;
            free(text);
            LOG(LOG_WARN, "authentication failed %u time(s) from %s in one minute (%u refused)",
                k->failures, k->peer, k->refused);
            if (rc < 0) {
                LOG(LOG_ERROR, "audit: cannot record auth.failed (%s)", strerror(-rc));
                ret = rc;
            }
        }
    } while (n == FLUSH_BATCH);
    return ret;
}

static void flush_work(uv_work_t *w)
{
    api_auth_flush(w->data, false);
}

static void flush_done(uv_work_t *w, int status)
{
    api *a = w->data;
    (void)status;
    a->flushing = false;
}

static void flush_tick(uv_timer_t *t)
{
    api *a = t->data;
    if (a->flushing) return;
    a->flush_work.data = a;
    if (uv_queue_work(a->loop, &a->flush_work, flush_work, flush_done) == 0) a->flushing = true;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A 429 rate_limited answer with Retry-After. */
static void respond_limited(http_request *req, int wait, const char *msg)
{
    char secs[16];
    snprintf(secs, sizeof secs, "%d", wait);
    http_request_header_add(req, "Retry-After", secs);
    http_request_respond_error(req, 429, "rate_limited", msg);
}

/* Authenticates `req` on the loop thread, from memory only (auth.h limits, registry_token_check):
 * returns true with *user filled, or false with the request answered (401 or 429). A peer past
 * its failed attempts per minute gets 429 without its token being looked up. With take_rate, a
 * request of the token's bucket is used up (the call made once per request, when it is served;
 * the check at the headers, before its body, leaves the bucket alone). The token's hash is left
 * in `hash` (for rate_take). */
static bool rate_take(api *a, http_request *req, const char *hash);
static bool token_lookup(api *a, http_request *req, const char *ip, const char *hash, int64_t now,
                         store_user *user);

static bool authenticate(api *a, http_request *req, store_user *user, bool take_rate,
                         char hash[AUTH_HASH_HEX_LEN + 1])
{
    char ip[AUTH_PEER_MAX], token[256], msg[256];
    int64_t now = time(NULL);
    auth_peer_ip(http_request_peer(req), ip, sizeof ip);
    int wait = auth_peers_check(a->peers, ip, now);
    if (wait > 0) {
        snprintf(msg, sizeof msg,
                 "too many failed authentications from %s; try again in %d s with a valid token",
                 ip, wait);
        respond_limited(req, wait, msg);
        return false;
    }
    if (auth_bearer_parse(http_request_header(req, "Authorization"), token, sizeof token) < 0) {
        auth_peers_fail(a->peers, ip, now);
        http_request_respond_error(req, 401, "unauthorized", no_token_message);
        return false;
    }
    int rc = auth_token_hash(token, hash, AUTH_HASH_HEX_LEN + 1);
    OPENSSL_cleanse(token, sizeof token);
    if (rc < 0) {
        http_request_respond_error(req, 503, "unavailable", "cannot hash the token; try again");
        return false;
    }
    return token_lookup(a, req, ip, hash, now, user) && (!take_rate || rate_take(a, req, hash));
}

/* Looks the token's hash up (memory only): true with *user filled, or false with the request
 * answered 401 and the failure counted for the peer `ip`. */
static bool token_lookup(api *a, http_request *req, const char *ip, const char *hash, int64_t now,
                         store_user *user)
{
    char msg[256];
    int rc = registry_token_check(a->reg, hash, now, user);
    if (rc < 0) {
        auth_peers_fail(a->peers, ip, now);
        if (rc == -EKEYEXPIRED)
            snprintf(msg, sizeof msg,
                     "this token expired; ask your administrator for a new one (antenna token "
                     "create --user %s)",
                     user->name);
        else if (rc == -EACCES)
            snprintf(msg, sizeof msg,
                     "user %s is disabled; ask your administrator to enable it (antenna user "
                     "enable %s)",
                     user->name, user->name);
        else
            snprintf(msg, sizeof msg,
                     "the token is unknown or revoked; ask your administrator for a new one");
        http_request_respond_error(req, 401, "unauthorized", msg);
        return false;
    }
    return true;
}

/* Uses up one request of the token's bucket: true, or false with the request answered 429. */
static bool rate_take(api *a, http_request *req, const char *hash)
{
    char msg[128];
    int wait = auth_rate_take(a->rate, hash, mono_ms());
    if (wait > 0) {
        snprintf(msg, sizeof msg,
                 "too many requests with this token; slow down and try again in %d s", wait);
        respond_limited(req, wait, msg);
        return false;
    }
    return true;
}

/* Loop thread: c goes on the list of calls queued on the pool and not started. O(1). */
static void pool_wait_add(api *a, api_call *c)
{
    pthread_mutex_lock(&a->wait_mu);
    c->pool_waiting = true;
    c->wait_next = NULL;
    c->wait_prev = a->wait_tail;
    if (a->wait_tail)
        a->wait_tail->wait_next = c;
    else
        a->wait_head = c;
    a->wait_tail = c;
    pthread_mutex_unlock(&a->wait_mu);
}

/* Any thread: c has started (or was never queued): off the list. O(1). */
static void pool_wait_remove(api *a, api_call *c)
{
    pthread_mutex_lock(&a->wait_mu);
    if (c->pool_waiting) {
        c->pool_waiting = false;
        if (c->wait_prev)
            c->wait_prev->wait_next = c->wait_next;
        else
            a->wait_head = c->wait_next;
        if (c->wait_next)
            c->wait_next->wait_prev = c->wait_prev;
        else
            a->wait_tail = c->wait_prev;
    }
    pthread_mutex_unlock(&a->wait_mu);
}

static const struct route metrics_route;

static void call_work(uv_work_t *w)
{
    api_call *c = w->data;
    pool_wait_remove(c->a, c);
    /* the lines this work logs end with its request's id */
    const char *old = log_request_id_set(http_request_id(c->req));
    if (c->route != &metrics_route && !has_role(c, c->route->roles)) {
        set_error(c, 403, "forbidden", "your role (%s) may not %s %s", c->user.role,
                  c->route->method, http_request_path(c->req));
    } else {
        c->route->fn(c);
    }
    log_request_id_set(old);
}

static void call_done(uv_work_t *w, int status)
{
    api_call *c = w->data;
    api *a = c->a;
    (void)status;
    if (c->job_state[0]) http_request_header_add(c->req, "X-Antenna-Job-State", c->job_state);
    if (c->retry_after > 0) {
        char secs[16];
        snprintf(secs, sizeof secs, "%d", c->retry_after);
        http_request_header_add(c->req, "Retry-After", secs);
    }
    if (c->replayed) http_request_header_add(c->req, "Idempotent-Replayed", "true");
    if (c->out_chunk) {
        char next[24];
        snprintf(next, sizeof next, "%" PRIu64, c->out_next);
        http_request_header_add(c->req, "X-Antenna-Output-Next-Offset", next);
        http_request_header_add(c->req, "X-Antenna-Output-End", c->out_end ? "true" : "false");
    }
    if (c->cacheable && c->status == 200 && c->body != NULL)
        (void)job_cache_put(a->cache, c->id, c->cache_gen, &c->owner, c->body, c->body_len);
    http_request_respond(c->req, c->status, c->ctype, c->body, c->body_len);
    if (c->kick) broker_kick(a->br);
    a->pending--;
    free(c->body);
    free(c);
}

/* Matches `path` against `pattern`; a "*" segment must be a positive integer (stored in *id), a
 * "%" segment any name of [A-Za-z0-9._-] (stored in seg[]). */
static bool path_match(const char *pattern, const char *path, int64_t *id, char seg[2][64])
{
    int nseg = 0;
    while (*path == '/')
        path++;
    while (*pattern && *path) {
        const char *ps = strchr(pattern, '/'), *qs = strchr(path, '/');
        size_t plen = ps ? (size_t)(ps - pattern) : strlen(pattern);
        size_t qlen = qs ? (size_t)(qs - path) : strlen(path);
        if (plen == 1 && pattern[0] == '*') {
            if (qlen == 0 || qlen > 18) return false;
            long long v = 0;
            for (size_t i = 0; i < qlen; i++) {
                if (path[i] < '0' || path[i] > '9') return false;
                v = v * 10 + (path[i] - '0');
            }
            if (v <= 0) return false;
            *id = v;
        } else if (plen == 1 && pattern[0] == '%') {
            if (qlen == 0 || qlen >= 64 || nseg == 2) return false;
            for (size_t i = 0; i < qlen; i++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
                            path[i]))
                    return false;
            memcpy(seg[nseg], path, qlen);
            seg[nseg++][qlen] = '\0';
        } else if (plen != qlen || strncmp(pattern, path, plen) != 0) {
            return false;
        }
        pattern += plen + (ps ? 1 : 0);
        path += qlen + (qs ? 1 : 0);
        if ((ps == NULL) != (qs == NULL)) {
            /* allow one trailing slash on the request path */
            return ps == NULL && *path == '\0';
        }
    }
    return *pattern == '\0' && *path == '\0';
}

/* Answers /healthz on the loop thread: cheap (no store query; registry_health only reads the
 * last commit's outcome under a mutex). 503 "degraded" with its reasons when the store refused the
 * last batch or Slurm is unreachable. */
static void respond_health(api *a, http_request *req)
{
    char why[256] = "";
    bool slurm_ok = a->br == NULL || broker_slurm_ok(a->br);
    int store_rc = registry_health(a->reg, why, sizeof why);
    json_t *reasons = json_array();
    if (store_rc < 0) {
        char r[320];
        snprintf(r, sizeof r, "store: %s", why[0] ? why : strerror(-store_rc));
        json_array_append_new(reasons, json_string(r));
    }
    if (!slurm_ok) json_array_append_new(reasons, json_string("slurm: unreachable"));
    /* a starved worker pool: the oldest call still waiting to start has waited too long */
    int64_t now = mono_ms(), pool_at = 0, lane_at = 0;
    pthread_mutex_lock(&a->wait_mu);
    if (a->wait_head) pool_at = a->wait_head->queued_ms;
    pthread_mutex_unlock(&a->wait_mu);
    pthread_mutex_lock(&a->lane.mu);
    if (a->lane.head) lane_at = a->lane.head->queued_ms;
    pthread_mutex_unlock(&a->lane.mu);
    unsigned starved_ms = a->opt.starved_after_ms ? a->opt.starved_after_ms : 5000;
    const struct {
        const char *name;
        int64_t at;
    } pools[] = {{"the worker pool", pool_at}, {"the read lane", lane_at}};
    for (size_t i = 0; i < 2; i++) {
        if (pools[i].at == 0 || now - pools[i].at <= (int64_t)starved_ms) continue;
        char r[160];
        snprintf(r, sizeof r,
                 "workers: %s is starved: a request has waited %" PRId64 " ms to start",
                 pools[i].name, now - pools[i].at);
        json_array_append_new(reasons, json_string(r));
    }
    bool ok = json_array_size(reasons) == 0;
    json_t *o = json_pack("{s:s,s:s,s:s}", "status", ok ? "ok" : "degraded", "slurm",
                          a->br == NULL ? "not_configured"
                          : slurm_ok    ? "ok"
                                        : "unreachable",
                          "version", ANTENNA_VERSION);
    if (o != NULL && !ok) json_object_set(o, "reasons", reasons);
    json_decref(reasons);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s == NULL) {
        http_request_respond_error(req, 503, "unavailable", "out of memory; try again");
        return;
    }
    http_request_respond(req, ok ? 200 : 503, "application/json", s, strlen(s));
    free(s);
}

/* --- the read lane ----------------------------------------------------------------------- */

static void *lane_main(void *arg)
{
    api *a = arg;
    struct lane *l = &a->lane;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (l->head == NULL && !l->stop) {
            l->idle++;
            pthread_cond_wait(&l->cv, &l->mu);
            l->idle--;
        }
        if (l->head == NULL) break;
        /* the whole queue at once: one lock to take it and one to hand it back, per burst */
        api_call *first = l->head, *last = l->tail;
        l->head = l->tail = NULL;
        pthread_mutex_unlock(&l->mu);
        for (api_call *c = first; c != NULL; c = c->lane_next)
            call_work(&c->work);
        pthread_mutex_lock(&l->mu);
        if (l->done_tail)
            l->done_tail->lane_next = first;
        else
            l->done_head = first;
        l->done_tail = last;
        /* the loop is told once per burst: the last one served before the queue ran dry */
        if (l->head == NULL) uv_async_send(&l->async);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Loop thread: answers what the lane served. */
static void lane_answered(uv_async_t *h)
{
    api *a = h->data;
    struct lane *l = &a->lane;
    pthread_mutex_lock(&l->mu);
    api_call *c = l->done_head;
    l->done_head = l->done_tail = NULL;
    pthread_mutex_unlock(&l->mu);
    while (c != NULL) {
        api_call *next = c->lane_next;
        call_done(&c->work, 0);
        c = next;
    }
}

/* Loop thread: hands `c` to the lane. Returns 0. */
static int lane_push(api *a, api_call *c)
{
    struct lane *l = &a->lane;
    c->lane_next = NULL;
    c->queued_ms = mono_ms();
    pthread_mutex_lock(&l->mu);
    if (l->tail)
        l->tail->lane_next = c;
    else
        l->head = c;
    l->tail = c;
    if (l->idle > 0) pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

static void lane_stop(api *a)
{
    struct lane *l = &a->lane;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (size_t i = 0; i < l->n_th; i++)
        pthread_join(l->th[i], NULL);
    l->n_th = 0;
}

/* --- the output lane ---------------------------------------------------------------------- */

static void output_work(job_output_task *t)
{
    api_call *c = (api_call *)((char *)t - offsetof(api_call, otask));
    call_work(&c->work);
}

static void output_done(job_output_task *t)
{
    api_call *c = (api_call *)((char *)t - offsetof(api_call, otask));
    call_done(&c->work, 0);
}

/* Loop thread: hands an output call to the output lane (its own threads, a bound on the reads it
 * holds), or answers 503 with Retry-After when that bound is reached. Takes `c`. */
static void output_push(api *a, api_call *c)
{
    http_request *req = c->req;
    c->otask.work = output_work;
    c->otask.done = output_done;
    int rc = a->out_lane == NULL ? -EAGAIN : job_output_lane_push(a->out_lane, &c->otask);
    if (rc < 0) {
        free(c);
        http_request_header_add(req, "Retry-After", "1");
        http_request_respond_error(req, 503, "unavailable",
                                   rc == -EBUSY ? "too many job output reads are under way; try "
                                                  "again in a second"
                                                : "the broker is busy; try again");
        return;
    }
    a->pending++;
}

/* --- GET /metrics ---------------------------------------------------------------------------- */

/* The partners written per scrape (their gauges); more are left out (bounded work and answer). */
#define METRICS_PARTNERS_MAX 1024

static void h_metrics(api_call *c)
{
    metrics_text t;
    metrics_text_init(&t);
    metrics_daemon_write(&t);
    policy_partner_stats *v = malloc(METRICS_PARTNERS_MAX * sizeof *v);
    if (v != NULL) {
        size_t n = registry_partner_stats(c->a->reg, time(NULL), v, METRICS_PARTNERS_MAX);
        metrics_partners_write(&t, v, n, registry_queue_length(c->a->reg));
        free(v);
    }
    size_t len = 0;
    char *text = v != NULL ? metrics_text_take(&t, &len) : NULL;
    metrics_text_close(&t);
    if (text == NULL) {
        set_error(c, 503, "unavailable", "out of memory writing the metrics; try again");
        return;
    }
    free(c->body);
    c->body = text;
    c->body_len = len;
    c->ctype = "text/plain; version=0.0.4; charset=utf-8";
    c->status = 200;
}

/* Who may scrape was decided before the call was queued (metrics_allowed): call_work checks no
 * role for it (a loopback scrape has no user). */
static const struct route metrics_route = {"GET", "metrics", h_metrics, R_ALL, false};

/* True when the peer ("1.2.3.4:port" or "[::1]:port") is on 127.0.0.0/8 or is ::1. */
static bool peer_is_loopback(const char *peer)
{
    return strncmp(peer, "127.", 4) == 0 || strncmp(peer, "[::1]:", 6) == 0 ||
           strncmp(peer, "[::ffff:127.", 12) == 0;
}

/* Loop thread: whether `req` may scrape /metrics. *c is the call api_headers opened with the
 * caller's identity (NULL: none); on true *c is the call to serve (allocated here when needed,
 * with an empty user for a loopback scrape), on false the request is answered (403, or 401/429
 * from the token checks) and *c freed. */
static bool metrics_allowed(api *a, http_request *req, api_call **c)
{
    if (a->metrics_roles == 0) {
        free(*c); /* (never opened: api_headers lets /metrics through without a token) */
        *c = NULL;
        if (!peer_is_loopback(http_request_peer(req))) {
            http_request_respond_error(req, 403, "forbidden",
                                       "/metrics answers loopback peers only (metrics_access "
                                       "\"loopback\"); scrape it from this host, or set "
                                       "metrics_access to \"role:<role>\" and send a token");
            return false;
        }
    } else if (*c != NULL) {
        /* authenticated at the headers: looked up again and the token's rate taken */
        char ip[AUTH_PEER_MAX];
        auth_peer_ip(http_request_peer(req), ip, sizeof ip);
        if (!token_lookup(a, req, ip, (*c)->token_hash, time(NULL), &(*c)->user) ||
            !rate_take(a, req, (*c)->token_hash))
            goto fail;
    } else {
        store_user user;
        char hash[AUTH_HASH_HEX_LEN + 1];
        if (!authenticate(a, req, &user, true, hash)) return false;
        *c = calloc(1, sizeof **c);
        if (*c == NULL) {
            http_request_respond_error(req, 503, "unavailable", "out of memory; try again");
            return false;
        }
        (*c)->user = user;
    }
    if (*c == NULL) *c = calloc(1, sizeof **c);
    if (*c == NULL) {
        http_request_respond_error(req, 503, "unavailable", "out of memory; try again");
        return false;
    }
    if (a->metrics_roles == 0) return true;
    http_request_user_set(req, (*c)->user.name);
    if ((role_bit((*c)->user.role) & a->metrics_roles) != 0) return true;
    char msg[160];
    snprintf(msg, sizeof msg, "your role (%s) may not GET /metrics (metrics_access allows %s)",
             (*c)->user.role, a->opt.metrics_access);
    http_request_respond_error(req, 403, "forbidden", msg);
fail:
    free(*c);
    *c = NULL;
    return false;
}

/* The metrics route ids of the routes table (routes[i] -> route_ids[i]) and of the paths served
 * before it; their labels ("GET /v1/jobs/{id}") live here, in static storage. */
#define ROUTES_N (sizeof routes / sizeof routes[0])
static int route_ids[ROUTES_N];
static char route_labels[ROUTES_N][96];
static int route_id_healthz, route_id_ui, route_id_metrics;

/* "GET /v1/jobs/{id}/output" from method "GET" and pattern "v1/jobs/ * /output". */
static void route_label(const struct route *r, char *out, size_t len)
{
    size_t o = (size_t)snprintf(out, len, "%s /", r->method);
    for (const char *p = r->pattern; *p && o + 8 < len; p++) {
        const char *rep = *p == '*' ? "{id}" : *p == '%' ? "{name}" : NULL;
        if (rep) {
            memcpy(out + o, rep, strlen(rep));
            o += strlen(rep);
        } else {
            out[o++] = *p;
        }
    }
    out[o < len ? o : len - 1] = '\0';
}

/* Registers the route labels once per process (the first api_new, before any request). */
static void routes_register(void)
{
    static bool done;
    if (done) return;
    done = true;
    for (size_t i = 0; i < ROUTES_N; i++) {
        route_label(&routes[i], route_labels[i], sizeof route_labels[i]);
        route_ids[i] = metrics_route_register(route_labels[i]);
    }
    route_id_healthz = metrics_route_register("GET /healthz");
    route_id_ui = metrics_route_register("GET /ui");
    route_id_metrics = metrics_route_register("GET /metrics");
}

static void api_handle_one(http_request *req, void *arg);

void api_handle(http_request *req, void *arg)
{
    /* the lines logged while routing it end with its request's id */
    const char *old = log_request_id_set(http_request_id(req));
    api_handle_one(req, arg);
    log_request_id_set(old);
}

/* Loop thread: answers GET /v1/jobs/{id} from the job cache when it holds the job's answer of
 * the store's current generation and the caller may see the job; takes `c` then. Else false
 * (the read lane serves it, and the 404 of a job the caller may not see). */
static bool cached_answer(api *a, api_call *c)
{
    job_cache_owner owner;
    size_t len = 0;
    const char *body = job_cache_get(a->cache, c->id, registry_generation(a->reg), &owner, &len);
    if (body == NULL || !has_role(c, c->route->roles) || !may_see(c, owner.user_id, owner.partner))
        return false;
    http_request_respond(c->req, 200, "application/json", body, len);
    free(c);
    return true;
}

static void api_handle_one(http_request *req, void *arg)
{
    api *a = arg;
    const char *method = http_request_method(req), *path = http_request_path(req);
    const struct route *route = NULL;
    bool path_known = false;
    int64_t id = 0;
    char seg[2][64] = {"", ""};

    /* HEAD is served wherever GET is: same answer, the server sends no body */
    const char *as_method = strcmp(method, "HEAD") == 0 ? "GET" : method;
    if (strcmp(path, "/healthz") == 0) {
        http_request_route_set(req, route_id_healthz);
        if (strcmp(as_method, "GET") == 0)
            respond_health(a, req);
        else
            http_request_respond_error(req, 405, "method_not_allowed", "use GET /healthz");
        return;
    }
    /* the web console's static files: from memory, no token (its data calls go to /v1) */
    if (ui_assets_path_is_ui(path)) {
        http_request_route_set(req, route_id_ui);
        ui_assets_respond(req);
        return;
    }
    api_call *c = NULL;
    if (strcmp(path, "/metrics") == 0) {
        http_request_route_set(req, route_id_metrics);
        /* with metrics_access "role:...", api_headers opened a call with the caller's identity */
        c = http_request_data_take(req);
        if (strcmp(as_method, "GET") != 0) {
            free(c);
            http_request_respond_error(req, 405, "method_not_allowed", "use GET /metrics");
            return;
        }
        if (!metrics_allowed(a, req, &c)) return;
        route = &metrics_route;
        goto queue;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int64_t rid = 0;
        char rseg[2][64] = {"", ""};
        if (!path_match(routes[i].pattern, path, &rid, rseg)) continue;
        path_known = true;
        if (strcmp(routes[i].method, as_method) == 0) {
            route = &routes[i];
            http_request_route_set(req, route_ids[i]);
            id = rid;
            memcpy(seg, rseg, sizeof seg);
            break;
        }
    }
    /* the call api_headers opened with the caller's identity (NULL when no hook ran) */
    c = http_request_data_take(req);
    if (route == NULL) {
        free(c);
        if (path_known)
            http_request_respond_error(req, 405, "method_not_allowed",
                                       "this method is not allowed on this path; see docs/API.md");
        else
            http_request_respond_error(req, 404, "not_found",
                                       "no such endpoint; the API lives under /v1 (see "
                                       "docs/API.md)");
        return;
    }
    if (c != NULL) {
        /* authenticated at the headers: the hash is looked up again (a token revoked or a user
         * disabled while the body arrived is refused) and the token's rate taken */
        char ip[AUTH_PEER_MAX];
        auth_peer_ip(http_request_peer(req), ip, sizeof ip);
        if (!token_lookup(a, req, ip, c->token_hash, time(NULL), &c->user) ||
            !rate_take(a, req, c->token_hash)) {
            free(c);
            return;
        }
    } else {
        store_user user;
        char hash[AUTH_HASH_HEX_LEN + 1];
        if (!authenticate(a, req, &user, true, hash)) return;
        c = calloc(1, sizeof *c);
        if (c == NULL) {
            http_request_respond_error(req, 503, "unavailable", "out of memory; try again");
            return;
        }
        c->user = user;
    }
    http_request_user_set(req, c->user.name);
queue:
    c->a = a;
    c->req = req;
    c->route = route;
    c->id = id;
    memcpy(c->seg, seg, sizeof c->seg);
    c->work.data = c;
    if (route->fn == h_job_get && id > 0 && cached_answer(a, c)) return;
    if (route->fn == h_job_output) {
        output_push(a, c);
        return;
    }
    bool on_lane = route->lane && a->lane.n_th > 0;
    c->queued_ms = mono_ms();
    if (!on_lane) pool_wait_add(a, c);
    if ((on_lane ? lane_push(a, c) : uv_queue_work(a->loop, &c->work, call_work, call_done)) < 0) {
        pool_wait_remove(a, c);
        free(c);
        http_request_respond_error(req, 503, "unavailable", "the broker is busy; try again");
        return;
    }
    a->pending++;
}

void api_headers(http_request *req, void *arg)
{
    api *a = arg;
    store_user user;
    char hash[AUTH_HASH_HEX_LEN + 1];
    /* /healthz needs no token; every other path does (an unknown one too: 401 before 404). The
     * check is made here once (memory only, counted per peer), before the body arrives: a client
     * without a valid token never gets a body buffered. The identity travels with the request to
     * api_handle in the call it will serve, so the token is hashed and looked up once. */
    if (strcmp(http_request_path(req), "/healthz") == 0) return;
    if (ui_assets_path_is_ui(http_request_path(req))) return; /* the console's files: no token */
    /* /metrics from loopback peers needs no token (metrics_allowed decides when it is served) */
    if (a->metrics_roles == 0 && strcmp(http_request_path(req), "/metrics") == 0) return;
    if (!authenticate(a, req, &user, false, hash)) return;
    api_call *c = calloc(1, sizeof *c);
    if (c == NULL) return; /* api_handle authenticates again */
    c->user = user;
    memcpy(c->token_hash, hash, sizeof c->token_hash);
    http_request_data_set(req, c, free);
}

int api_new(uv_loop_t *loop, registry *reg, broker *br, const api_options *opt, api **out)
{
    api *a = calloc(1, sizeof *a);
    if (a == NULL) return -ENOMEM;
    a->cache = job_cache_new(0); /* NULL (out of memory): every answer is read, none kept */
    a->loop = loop;
    a->reg = reg;
    a->st = registry_store(reg);
    a->br = br;
    a->opt = *opt;
    snprintf(a->spool_dir, sizeof a->spool_dir, "%s", opt->spool_dir ? opt->spool_dir : "");
    a->opt.spool_dir = a->spool_dir;
    if (opt->metrics_access != NULL && strncmp(opt->metrics_access, "role:", 5) == 0)
        a->metrics_roles = role_bit(opt->metrics_access + 5) | R_ADMIN;
    if (a->opt.metrics_access == NULL || a->opt.metrics_access[0] == '\0')
        a->opt.metrics_access = "loopback";
    routes_register();
    struct lane *l = &a->lane;
    unsigned burst = opt->token_burst ? opt->token_burst : 2 * opt->token_rate_per_second;
    if (auth_peers_new(0, opt->auth_failures_per_minute, &a->peers) < 0) goto fail_peers;
    if (auth_rate_new(0, opt->token_rate_per_second, burst ? burst : 1, &a->rate) < 0)
        goto fail_rate;
    if (uv_timer_init(loop, &a->flush_timer) < 0) goto fail_timer;
    a->flush_timer.data = a;
    uv_timer_start(&a->flush_timer, flush_tick, FLUSH_EVERY_MS, FLUSH_EVERY_MS);
    uv_unref((uv_handle_t *)&a->flush_timer); /* never keeps the loop alive by itself */
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    pthread_mutex_init(&a->wait_mu, NULL);
    if (uv_async_init(loop, &l->async, lane_answered) < 0) goto fail_async;
    l->async.data = a;
    uv_unref((uv_handle_t *)&l->async); /* never keeps the loop alive by itself */
    for (size_t i = 0; i < LANE_THREADS; i++) {
        if (pthread_create(&l->th[i], NULL, lane_main, a) != 0) break;
        l->n_th++;
    }
    /* no lane thread: every request goes through libuv's pool, as the others do */
    if (job_output_lane_new(loop, 0, 0, &a->out_lane) < 0)
        a->out_lane = NULL; /* output calls then answer 503 */
    *out = a;
    return 0;
fail_async:
    pthread_mutex_destroy(&a->wait_mu);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    /* the timer's handle is freed by the loop: close it, run the loop once for it */
    uv_close((uv_handle_t *)&a->flush_timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
fail_timer:
    auth_rate_free(a->rate);
fail_rate:
    auth_peers_free(a->peers);
fail_peers:
    job_cache_free(a->cache);
    free(a);
    return -ENOMEM;
}

/* The close callback of the api's two handles (the lane's async and the flush timer): the last one
 * frees the api, whatever order libuv closes them in. */
static void lane_closed(uv_handle_t *h)
{
    api *a = h->data;
    if (--a->closing > 0) return;
    pthread_cond_destroy(&a->lane.cv);
    pthread_mutex_destroy(&a->lane.mu);
    pthread_mutex_destroy(&a->wait_mu);
    auth_rate_free(a->rate);
    auth_peers_free(a->peers);
    job_cache_free(a->cache);
    free(a);
}

void api_free(api *a)
{
    if (a == NULL) return;
    api_auth_flush(a, true);
    lane_stop(a);
    job_output_lane_free(a->out_lane);
    /* the handles are freed by their close callbacks: run the (stopped) loop once for them */
    a->closing = 2;
    uv_close((uv_handle_t *)&a->flush_timer, lane_closed);
    uv_close((uv_handle_t *)&a->lane.async, lane_closed);
    uv_run(a->loop, UV_RUN_NOWAIT);
}

unsigned api_pending(const api *a)
{
    return a->pending;
}

uint64_t api_job_cache_hits(const api *a)
{
    return a ? job_cache_hits(a->cache) : 0;
}
