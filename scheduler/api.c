/* api.c - routes /v1 requests, authenticates bearer tokens, validates bodies, answers in JSON.
 *
 * Every handler runs on the thread pool (uv_queue_work) because it reads the store; the loop
 * thread only routes, queues and sends. Never talks to Slurm: reads come from the store, and a
 * change that Slurm must see (a new job, a cancel) only kicks the broker.
 */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
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
#include "log.h"

#define ANTENNA_VERSION "0.1.0"

struct api {
    uv_loop_t *loop;
    store *st;
    broker *br;
    api_options opt;
    char spool_dir[PATH_MAX];
    unsigned pending;
};

typedef struct api_call api_call;
typedef void (*handler_fn)(api_call *c);

struct route {
    const char *method;
    const char *pattern; /* segments; "*" matches a numeric id */
    handler_fn fn;
    bool admin;
};

struct api_call {
    uv_work_t work;
    api *a;
    http_request *req;
    const struct route *route;
    int64_t id; /* the "*" segment */
    char token_hash[AUTH_HASH_HEX_LEN + 1];
    bool token_ok;   /* a well-formed bearer token was given */
    store_user user; /* who asks (after authentication) */
    /* the answer */
    int status;
    char *body;
    size_t body_len;
    const char *ctype;
    char job_state[STORE_STATE_MAX]; /* for X-Antenna-Job-State */
    bool kick;
};

/* --- answers --------------------------------------------------------------------------------- */

static void set_error(api_call *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_error(api_call *c, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
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

static json_t *job_json(const store_job *j)
{
    return json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:i,s:I,s:i,s:o,s:o,s:b,s:o,s:o,s:o,"
                     "s:o}",
                     "id", (json_int_t)j->id, "name", j->name, "user", j->user, "partner",
                     j->partner, "unix_user", j->unix_user, "state", j->state, "reason", j->reason,
                     "gpus", j->gpus, "gpu_type", j->gpu_type, "cpus_per_task", j->cpus_per_task,
                     "mem_mb", (json_int_t)j->mem_mb, "time_minutes", j->time_minutes,
                     "slurm_job_id",
                     j->slurm_job_id > 0 ? json_integer(j->slurm_job_id) : json_null(), "exit_code",
                     j->has_exit_code ? json_integer(j->exit_code) : json_null(),
                     "cancel_requested", j->cancel_requested, "submitted_at",
                     json_time(j->submitted_at), "dispatched_at", json_time(j->dispatched_at),
                     "started_at", json_time(j->started_at), "ended_at", json_time(j->ended_at));
}

static bool is_admin(const api_call *c)
{
    return strcmp(c->user.role, "admin") == 0;
}

/* --- body parsing ------------------------------------------------------------------------------
 */

enum ftype { F_STR, F_INT };

struct field {
    const char *name;
    enum ftype type;
    bool required;
};

/* Parses the body as a JSON object with only `fields` (of the right types). Returns the object
 * (caller decrefs) or NULL with the error answer set. */
static json_t *parse_body(api_call *c, const struct field *fields, size_t nfields)
{
    size_t len = 0;
    const char *body = http_request_body(c->req, &len);
    const char *ct = http_request_header(c->req, "Content-Type");
    json_error_t jerr;
    const char *key;
    json_t *v;

    if (ct != NULL && strncasecmp(ct, "application/json", 16) != 0) {
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
        bool ok = f->type == F_STR ? json_is_string(v) : json_is_integer(v);
        if (!ok) {
            set_error(c, 400, "invalid_type", "field \"%s\" must be %s", key,
                      f->type == F_STR ? "a string" : "an integer");
            json_decref(o);
            return NULL;
        }
        if (f->type == F_INT &&
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

static bool store_failed(api_call *c, int rc, const char *what)
{
    if (rc >= 0) return false;
    LOG(LOG_ERROR, "store error %d while %s", rc, what);
    set_error(c, 500, "internal", "the broker could not %s; try again, and tell the operators",
              what);
    return true;
}

/* --- handlers (thread pool) ---------------------------------------------------------------------
 */

static void h_jobs_post(api_call *c)
{
    static const struct field fields[] = {
        {"script", F_STR, true},        {"name", F_STR, false},          {"gpus", F_INT, false},
        {"gpu_type", F_STR, false},     {"cpus_per_task", F_INT, false}, {"mem_mb", F_INT, false},
        {"time_minutes", F_INT, false},
    };
    json_t *o = parse_body(c, fields, sizeof fields / sizeof fields[0]);
    if (o == NULL) return;
    jobreq r;
    jobreq_error jerr;
    jobreq_init(&r);
    r.script = str_field(o, "script", NULL);
    if (!copy_str(c, r.name, sizeof r.name, "name", str_field(o, "name", "antenna-job"),
                  "invalid_name") ||
        !copy_str(c, r.gpu_type, sizeof r.gpu_type, "gpu_type", str_field(o, "gpu_type", ""),
                  "invalid_gpu_type"))
        goto out;
    if (r.name[0] == '\0') snprintf(r.name, sizeof r.name, "antenna-job");
    r.gpus = (int)int_field(o, "gpus", r.gpus);
    r.cpus_per_task = (int)int_field(o, "cpus_per_task", r.cpus_per_task);
    r.mem_mb = int_field(o, "mem_mb", r.mem_mb);
    r.time_minutes = (int)int_field(o, "time_minutes", r.time_minutes);
    if (jobreq_validate(&r, &c->a->opt.limits, &jerr) < 0) {
        set_error(c, 400, jerr.code, "%s", jerr.message);
        goto out;
    }
    store_job j;
    memset(&j, 0, sizeof j);
    j.user_id = c->user.id;
    snprintf(j.name, sizeof j.name, "%s", r.name);
    j.gpus = r.gpus;
    snprintf(j.gpu_type, sizeof j.gpu_type, "%s", r.gpu_type);
    j.cpus_per_task = r.cpus_per_task;
    j.mem_mb = r.mem_mb;
    j.time_minutes = r.time_minutes;
    if (store_failed(c, store_job_insert(c->a->st, &j, r.script), "store the job")) goto out;
    LOG(LOG_INFO, "job %" PRId64 " queued for user %s (partner %s): %d GPU(s) %s, %d min", j.id,
        c->user.name, c->user.partner, j.gpus, j.gpu_type[0] ? j.gpu_type : "any", j.time_minutes);
    set_json(c, 202, job_json(&j));
    c->kick = true;
out:
    json_decref(o);
}

static int query_int(const char *query, const char *name, long long *out)
{
    size_t nlen = strlen(name);
    for (const char *p = query; p && *p;) {
        if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            char *end;
            errno = 0;
            long long v = strtoll(p + nlen + 1, &end, 10);
            if (errno || end == p + nlen + 1 || (*end != '\0' && *end != '&') || v < 0)
                return -EINVAL;
            *out = v;
            return 0;
        }
        p = strchr(p, '&');
        if (p) p++;
    }
    return -ENOENT;
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
    if (store_failed(
            c, store_job_list(c->a->st, is_admin(c) ? 0 : c->user.id, (size_t)limit, &jobs, &n),
            "list jobs"))
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, job_json(&jobs[i]));
    free(jobs);
    set_json(c, 200, json_pack("{s:o}", "jobs", arr));
}

/* Loads the job of the path and checks that the caller may see it. */
static bool load_own_job(api_call *c, store_job *j)
{
    int rc = store_job_get(c->a->st, c->id, j);
    if (rc == -ENOENT || (rc == 0 && !is_admin(c) && j->user_id != c->user.id)) {
        set_error(c, 404, "not_found", "no job %" PRId64 " among your jobs; see antenna jobs",
                  c->id);
        return false;
    }
    return !store_failed(c, rc, "read the job");
}

static void h_job_get(api_call *c)
{
    store_job j;
    if (load_own_job(c, &j)) set_json(c, 200, job_json(&j));
}

static void h_job_delete(api_call *c)
{
    store_job j;
    bool now = false;
    if (!load_own_job(c, &j)) return;
    int rc = store_job_cancel_request(c->a->st, c->id, &now);
    if (rc == -EALREADY) {
        set_error(c, 409, "conflict", "job %" PRId64 " already ended (%s); nothing to cancel",
                  c->id, j.state);
        return;
    }
    if (store_failed(c, rc, "cancel the job")) return;
    if (store_failed(c, store_job_get(c->a->st, c->id, &j), "read the job")) return;
    LOG(LOG_INFO, "job %" PRId64 ": cancel asked by %s%s", c->id, c->user.name,
        now ? " (cancelled before dispatch)" : "");
    set_json(c, 202, job_json(&j));
    c->kick = !now;
}

static void h_job_output(api_call *c)
{
    store_job j;
    long long offset = 0;
    char path[PATH_MAX + 64];
    if (!load_own_job(c, &j)) return;
    if (query_int(http_request_query(c->req), "offset", &offset) == -EINVAL) {
        set_error(c, 400, "invalid_value", "offset must be a non-negative integer");
        return;
    }
    broker_options bo = {.spool_dir = c->a->spool_dir};
    broker_job_output_path(&bo, (long long)j.id, path, sizeof path);
    snprintf(c->job_state, sizeof c->job_state, "%s", j.state);
    size_t cap = c->a->opt.max_output_bytes ? c->a->opt.max_output_bytes : 4u << 20;
    char *buf = malloc(cap + 1);
    size_t got = 0;
    if (buf == NULL) {
        set_error(c, 500, "internal", "out of memory");
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        while (got < cap) {
            ssize_t r = pread(fd, buf + got, cap - got, (off_t)offset + (off_t)got);
            if (r <= 0) break;
            got += (size_t)r;
        }
        close(fd);
    }
    buf[got] = '\0';
    free(c->body);
    c->body = buf;
    c->body_len = got;
    c->ctype = "text/plain; charset=utf-8";
    c->status = 200;
}

static json_t *partner_json(const store_partner *p)
{
    return json_pack("{s:s,s:s,s:o}", "name", p->name, "description", p->description, "created_at",
                     json_time(p->created_at));
}

static json_t *user_json(const store_user *u)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:o}", "name", u->name, "partner", u->partner, "unix_user",
                     u->unix_user, "role", u->role, "created_at", json_time(u->created_at));
}

static void h_partners_post(api_call *c)
{
    static const struct field fields[] = {{"name", F_STR, true}, {"description", F_STR, false}};
    json_t *o = parse_body(c, fields, 2);
    if (o == NULL) return;
    const char *name = str_field(o, "name", "");
    const char *desc = str_field(o, "description", "");
    store_partner p;
    if (!jobreq_ident_valid(name)) {
        set_error(c, 400, "invalid_name",
                  "partner name \"%.64s\" is not valid: use 1-63 letters, digits, '.', '_' or '-'",
                  name);
    } else if (strlen(desc) >= sizeof p.description) {
        set_error(c, 400, "invalid_value", "description is too long (at most %zu characters)",
                  sizeof p.description - 1);
    } else {
        int rc = store_partner_insert(c->a->st, name, desc, NULL);
        if (rc == -EEXIST)
            set_error(c, 409, "conflict", "partner \"%s\" already exists", name);
        else if (!store_failed(c, rc, "create the partner") &&
                 !store_failed(c, store_partner_get(c->a->st, name, &p), "read the partner")) {
            LOG(LOG_INFO, "partner %s created by %s", name, c->user.name);
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

static void h_users_post(api_call *c)
{
    static const struct field fields[] = {{"name", F_STR, true},
                                          {"partner", F_STR, true},
                                          {"unix_user", F_STR, true},
                                          {"role", F_STR, false}};
    json_t *o = parse_body(c, fields, 4);
    if (o == NULL) return;
    const char *name = str_field(o, "name", ""), *partner = str_field(o, "partner", "");
    const char *unix_user = str_field(o, "unix_user", ""), *role = str_field(o, "role", "user");
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    store_user u;
    if (!jobreq_ident_valid(name)) {
        set_error(c, 400, "invalid_name",
                  "user name \"%.64s\" is not valid: use 1-63 letters, digits, '.', '_' or '-'",
                  name);
    } else if (strcmp(role, "user") != 0 && strcmp(role, "admin") != 0) {
        set_error(c, 400, "invalid_value", "role must be \"user\" or \"admin\", not \"%.32s\"",
                  role);
    } else if (!jobreq_ident_valid(unix_user) ||
               getpwnam_r(unix_user, &pw, pwbuf, sizeof pwbuf, &res) != 0 || res == NULL) {
        set_error(c, 400, "invalid_value",
                  "Unix account \"%.64s\" does not exist on the broker host; create it first "
                  "(e.g. useradd --system %.64s)",
                  unix_user, unix_user);
    } else if (pw.pw_uid == 0) {
        set_error(c, 400, "invalid_value",
                  "Unix account \"%.64s\" is root; jobs never run as root: map the user to an "
                  "unprivileged account",
                  unix_user);
    } else {
        int rc = store_user_insert(c->a->st, name, partner, unix_user, role, NULL);
        if (rc == -EEXIST)
            set_error(c, 409, "conflict", "user \"%s\" already exists", name);
        else if (rc == -ENOENT)
            set_error(c, 400, "invalid_value",
                      "partner \"%.64s\" does not exist; create it with: antenna partner add "
                      "%.64s",
                      partner, partner);
        else if (!store_failed(c, rc, "create the user") &&
                 !store_failed(c, store_user_get(c->a->st, name, &u), "read the user")) {
            LOG(LOG_INFO, "user %s (partner %s, unix %s, role %s) created by %s", name, partner,
                unix_user, role, c->user.name);
            set_json(c, 201, user_json(&u));
        }
    }
    json_decref(o);
}

static void h_users_list(api_call *c)
{
    store_user *us = NULL;
    size_t n = 0;
    if (store_failed(c, store_user_list(c->a->st, NULL, &us, &n), "list users")) return;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, user_json(&us[i]));
    free(us);
    set_json(c, 200, json_pack("{s:o}", "users", arr));
}

static void h_tokens_post(api_call *c)
{
    static const struct field fields[] = {{"user", F_STR, true}, {"label", F_STR, false}};
    json_t *o = parse_body(c, fields, 2);
    if (o == NULL) return;
    const char *name = str_field(o, "user", ""), *label = str_field(o, "label", "");
    char token[AUTH_TOKEN_LEN + 1], hash[AUTH_HASH_HEX_LEN + 1];
    store_user u;
    int64_t id = 0;
    int rc = store_user_get(c->a->st, name, &u);
    if (rc == -ENOENT) {
        set_error(c, 400, "invalid_value",
                  "user \"%.64s\" does not exist; create it with: antenna user add", name);
    } else if (strlen(label) >= STORE_NAME_MAX) {
        set_error(c, 400, "invalid_value", "label is too long (at most %d characters)",
                  STORE_NAME_MAX - 1);
    } else if (!store_failed(c, rc, "read the user")) {
        if (auth_token_generate(token, sizeof token) < 0 ||
            auth_token_hash(token, hash, sizeof hash) < 0) {
            set_error(c, 500, "internal", "could not make a random token");
        } else if (!store_failed(c, store_token_insert(c->a->st, u.id, hash, label, &id),
                                 "store the token")) {
            LOG(LOG_INFO, "token %" PRId64 " created for user %s by %s", id, u.name, c->user.name);
            set_json(c, 201,
                     json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)id, "user", u.name, "label",
                               label, "token", token));
        }
        OPENSSL_cleanse(token, sizeof token);
    }
    json_decref(o);
}

static void h_tokens_list(api_call *c)
{
    store_token *ts = NULL;
    size_t n = 0;
    if (store_failed(c, store_token_list(c->a->st, 0, &ts, &n), "list tokens")) return;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:I,s:s,s:s,s:o,s:o}", "id", (json_int_t)ts[i].id,
                                             "user", ts[i].user, "label", ts[i].label, "created_at",
                                             json_time(ts[i].created_at), "revoked_at",
                                             json_time(ts[i].revoked_at)));
    free(ts);
    set_json(c, 200, json_pack("{s:o}", "tokens", arr));
}

static void h_token_delete(api_call *c)
{
    int rc = store_token_revoke(c->a->st, c->id);
    if (rc == -ENOENT) {
        set_error(c, 404, "not_found", "no active token %" PRId64 "; see antenna token list",
                  c->id);
        return;
    }
    if (store_failed(c, rc, "revoke the token")) return;
    LOG(LOG_INFO, "token %" PRId64 " revoked by %s", c->id, c->user.name);
    set_json(c, 200, json_pack("{s:I,s:b}", "id", (json_int_t)c->id, "revoked", 1));
}

static const struct route routes[] = {
    {"POST", "v1/jobs", h_jobs_post, false},
    {"GET", "v1/jobs", h_jobs_list, false},
    {"GET", "v1/jobs/*", h_job_get, false},
    {"DELETE", "v1/jobs/*", h_job_delete, false},
    {"GET", "v1/jobs/*/output", h_job_output, false},
    {"POST", "v1/partners", h_partners_post, true},
    {"GET", "v1/partners", h_partners_list, true},
    {"POST", "v1/users", h_users_post, true},
    {"GET", "v1/users", h_users_list, true},
    {"POST", "v1/tokens", h_tokens_post, true},
    {"GET", "v1/tokens", h_tokens_list, true},
    {"DELETE", "v1/tokens/*", h_token_delete, true},
};

/* --- loop-thread side ---------------------------------------------------------------------- */

static void call_work(uv_work_t *w)
{
    api_call *c = w->data;
    int rc = store_token_lookup(c->a->st, c->token_hash, &c->user);
    if (rc == -ENOENT) {
        LOG(LOG_WARN, "authentication failed from %s: unknown or revoked token",
            http_request_peer(c->req));
        set_error(c, 401, "unauthorized",
                  "the token is unknown or revoked; ask your administrator for a new one");
        return;
    }
    if (store_failed(c, rc, "check the token")) return;
    if (c->route->admin && !is_admin(c)) {
        set_error(c, 403, "forbidden", "%s %s needs the admin role", c->route->method,
                  http_request_path(c->req));
        return;
    }
    c->route->fn(c);
}

static void call_done(uv_work_t *w, int status)
{
    api_call *c = w->data;
    api *a = c->a;
    (void)status;
    if (c->job_state[0]) http_request_header_add(c->req, "X-Antenna-Job-State", c->job_state);
    http_request_respond(c->req, c->status, c->ctype, c->body, c->body_len);
    if (c->kick) broker_kick(a->br);
    a->pending--;
    free(c->body);
    free(c);
}

/* Matches `path` against `pattern`; a "*" segment must be a positive integer (stored in *id). */
static bool path_match(const char *pattern, const char *path, int64_t *id)
{
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

static void respond_health(api *a, http_request *req)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "status", "ok", "slurm",
                          a->br == NULL            ? "not_configured"
                          : broker_slurm_ok(a->br) ? "ok"
                                                   : "unreachable",
                          "version", ANTENNA_VERSION);
    char *s = json_dumps(o, JSON_COMPACT);
    http_request_respond(req, 200, "application/json", s, strlen(s));
    free(s);
    json_decref(o);
}

void api_handle(http_request *req, void *arg)
{
    api *a = arg;
    const char *method = http_request_method(req), *path = http_request_path(req);
    const struct route *route = NULL;
    bool path_known = false;
    int64_t id = 0;
    char token[256];

    if (strcmp(path, "/healthz") == 0) {
        if (strcmp(method, "GET") == 0)
            respond_health(a, req);
        else
            http_request_respond_error(req, 405, "method_not_allowed", "use GET /healthz");
        return;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int64_t rid = 0;
        if (!path_match(routes[i].pattern, path, &rid)) continue;
        path_known = true;
        if (strcmp(routes[i].method, method) == 0) {
            route = &routes[i];
            id = rid;
            break;
        }
    }
    if (route == NULL) {
        if (path_known)
            http_request_respond_error(req, 405, "method_not_allowed",
                                       "this method is not allowed on this path; see docs/API.md");
        else
            http_request_respond_error(req, 404, "not_found",
                                       "no such endpoint; the API lives under /v1 (see "
                                       "docs/API.md)");
        return;
    }
    if (auth_bearer_parse(http_request_header(req, "Authorization"), token, sizeof token) < 0) {
        LOG(LOG_WARN, "authentication failed from %s: missing or malformed bearer token",
            http_request_peer(req));
        http_request_respond_error(req, 401, "unauthorized",
                                   "send your token as \"Authorization: Bearer <token>\" (set "
                                   "ANTENNA_TOKEN for the CLI)");
        return;
    }
    api_call *c = calloc(1, sizeof *c);
    if (c == NULL) {
        http_request_respond_error(req, 503, "unavailable", "out of memory; try again");
        return;
    }
    c->a = a;
    c->req = req;
    c->route = route;
    c->id = id;
    c->work.data = c;
    if (auth_token_hash(token, c->token_hash, sizeof c->token_hash) < 0 ||
        uv_queue_work(a->loop, &c->work, call_work, call_done) < 0) {
        free(c);
        http_request_respond_error(req, 503, "unavailable", "the broker is busy; try again");
        return;
    }
    a->pending++;
}

int api_new(uv_loop_t *loop, store *st, broker *br, const api_options *opt, api **out)
{
    api *a = calloc(1, sizeof *a);
    if (a == NULL) return -ENOMEM;
    a->loop = loop;
    a->st = st;
    a->br = br;
    a->opt = *opt;
    snprintf(a->spool_dir, sizeof a->spool_dir, "%s", opt->spool_dir ? opt->spool_dir : "");
    a->opt.spool_dir = a->spool_dir;
    *out = a;
    return 0;
}

void api_free(api *a)
{
    free(a);
}

unsigned api_pending(const api *a)
{
    return a->pending;
}
