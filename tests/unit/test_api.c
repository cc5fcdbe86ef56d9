/* test_api.c - data-driven tests of the /v1 API: each folder of tests/api/cases holds a
 * request.json and the expected.json answer; then a few dedicated tests (Idempotency-Key, one
 * audit entry per change) run in the same world, after every folder. The world (a temporary
 * store and a registry over it, with partners, users, their tokens and three queued jobs, all
 * made through the registry) is served by the real http_server + api on a free port, without a
 * broker: jobs stay queued, Slurm is never involved.
 *
 * The world: partners ulb (quota: 100 GPU-hours, 4 GPUs, 3 per user, 600 min walltime), vub (100
 * GPU-hours, at most 1 queued job), sirris (1 GPU-hour) and agoria (no quota set); users alice and
 * bob (role user), mia (manager of ulb), stan (staff), audrey (auditor), admin, frank (sirris),
 * dave (agoria); jobs 1 (alice), 2 (bob), 3 (alice), all queued. One Unix account serves one
 * partner: vub's users run as "nobody", the others as accounts of their partner's name (never
 * looked up: the world is seeded through the registry). The accounts rules: uid >= 2 (so "daemon"
 * is a system account), "sync" denied; at most 20 failed authentications per peer and minute;
 * tokens live 7 days by default and 30 at most.
 *
 * request.json: {"as": "<user>|revoked|unknown|garbage|none", "method": "POST",
 *                "path": "/v1/jobs", "headers": {"Name": "value"}, "json": <body as JSON>,
 *                "body": "<raw body>", "repeat": {"char": "a", "times": N},
 *                "send": N (the same request N times, default 1)}
 * expected.json: {"status": 400, "body": <subset the JSON answer must contain>,
 *                 "text": "<substring of the answer>", "absent": "<not in the answer>",
 *                 "headers": {"Name": "value"} (response headers, name case-insensitive),
 *                 "same_body": true (every answer byte-identical to the first)}
 * The expectations are checked on the last answer. A subset matches when every key it has is in
 * the answer with a matching value; arrays must have the same length and match element by
 * element.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "api.h"
#include "audit.h"
#include "auth.h"
#include "http_server.h"
#include "policy.h"
#include "registry.h"
#include "store.h"

#define CASES_DIR "tests/api/cases"

static struct world {
    char dir[64];
    char ca[128];
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    store *st;
    api *api;
    http_server *srv;
    int port;
    registry *reg;
    audit *audit;
    char tok[10][AUTH_TOKEN_LEN + 1]; /* tokens of world_users, then the revoked one */
    bool tiny;   /* dir is a tmpfs of its own (as root), which the disk-full tests fill */
    bool filled; /* the disk-full tests filled it (dir/filler) */
} w;

static const struct {
    const char *name, *partner, *role, *category;
} world_users[] = {
    {"alice", "ulb", "user", "sme"},          {"bob", "vub", "user", "researcher"},
    {"admin", "ulb", "admin", "institution"}, {"mia", "ulb", "manager", "sme"},
    {"stan", "ulb", "staff", "institution"},  {"audrey", "ulb", "auditor", "institution"},
    {"frank", "sirris", "user", "sme"},       {"dave", "agoria", "user", "sme"},
};
#define N_WORLD_USERS (sizeof world_users / sizeof world_users[0])

static const char *const gpu_types[] = {"h100", NULL};
static const char *const world_deny[] = {"sync", NULL};
static const char *const world_export_deny[] = {"AWS_*", NULL};
/* The site's partitions: gpu (the default) and debug; partner ulb may use gpu only. */
static config world_cfg;

/* Seeds the world as its admin would: through the registry. */
static const registry_actor seeder = {.actor = "admin", .partner = "ulb"};

static int add_token(const store_user *u, char *tok, int64_t *id)
{
    char hash[AUTH_HASH_HEX_LEN + 1];
    if (auth_token_generate(tok, AUTH_TOKEN_LEN + 1) < 0) return -1;
    if (auth_token_hash(tok, hash, sizeof hash) < 0) return -1;
    return registry_token_create(w.reg, &seeder, u->id, u->partner, hash, "test", id);
}

static char *render_empty(const store_job *j, const registry_live *live, void *arg)
{
    (void)j, (void)live, (void)arg;
    return strdup("{}");
}

static int add_job(const store_user *u, const char *name)
{
    registry_submit s;
    registry_actor who = {.actor = u->name, .partner = u->partner};
    memset(&s, 0, sizeof s);
    s.job.user_id = u->id;
    snprintf(s.job.user, sizeof s.job.user, "%s", u->name);
    snprintf(s.job.name, sizeof s.job.name, "%s", name);
    s.job.cpus_per_task = 1;
    s.job.time_minutes = 10;
    s.job.submitted_at = time(NULL);
    s.script = "#!/bin/bash\necho hi\n";
    s.render = render_empty;
    int rc = registry_job_submit(w.reg, &who, &s);
    free(s.body);
    if (rc == 0 && !s.verdict.admitted) {
        fprintf(stderr, "world: job %s refused: %s\n", name, s.verdict.message);
        return -1;
    }
    return rc;
}

static void on_stop(uv_async_t *a)
{
    http_server_close(w.srv, NULL, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
    (void)arg;
    uv_run(&w.loop, UV_RUN_DEFAULT);
    return NULL;
}

static int world_start(void **state)
{
    (void)state;
    char cmd[256], err[256];
    store_user u, users[N_WORLD_USERS];
    int64_t rid = 0;
    snprintf(w.dir, sizeof w.dir, "/tmp/antenna-test-api.XXXXXX");
    if (mkdtemp(w.dir) == NULL) return -1;
    /* As root, the world lives on a small disk of its own, for the disk-full tests; elsewhere
     * they skip. */
    w.tiny = geteuid() == 0 && mount("tmpfs", w.dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                     "size=32m,mode=0700") == 0;
    snprintf(cmd, sizeof cmd, "deploy/make-cert.sh %s > /dev/null", w.dir);
    if (system(cmd) != 0) return -1;
    snprintf(w.ca, sizeof w.ca, "%s/ca.pem", w.dir);
    char db[128], cert[128], key[128], akey[128], ahead[128];
    snprintf(db, sizeof db, "%s/antenna.db", w.dir);
    snprintf(cert, sizeof cert, "%s/server.pem", w.dir);
    snprintf(key, sizeof key, "%s/server.key", w.dir);
    snprintf(akey, sizeof akey, "%s/audit.key", w.dir);
    snprintf(ahead, sizeof ahead, "%s/audit.head", w.dir);
    if (store_new(db, &w.st, err, sizeof err) < 0) return -1;
    if (audit_new(w.st, akey, ahead, &w.audit, err, sizeof err) < 0) {
        fprintf(stderr, "audit_new: %s\n", err);
        return -1;
    }
    policy_config pc;
    policy_config_defaults(&pc);
    registry_options ro = {.policy = &pc, .audit = w.audit};
    if (registry_new(w.st, &ro, &w.reg, err, sizeof err) < 0) {
        fprintf(stderr, "registry_new: %s\n", err);
        return -1;
    }
    /* The first audit entry is the creation of ulb by admin (see audit-auditor-lists). */
    const char *partners[] = {"ulb", "vub", "sirris", "agoria"};
    for (int i = 0; i < 4; i++)
        if (registry_partner_create(w.reg, &seeder, partners[i], partners[i], 1, NULL) < 0)
            return -1;
    for (size_t i = 0; i < N_WORLD_USERS; i++) {
        char acct[64];
        snprintf(acct, sizeof acct, "%s",
                 strcmp(world_users[i].partner, "vub") == 0 ? "nobody" : world_users[i].partner);
        if (registry_user_create(w.reg, &seeder, world_users[i].name, world_users[i].partner, acct,
                                 world_users[i].role, world_users[i].category, &users[i]) < 0 ||
            add_token(&users[i], w.tok[i], &rid) < 0)
            return -1;
    }
    if (add_token(&users[0], w.tok[N_WORLD_USERS], &rid) < 0 ||
        registry_token_revoke(w.reg, &seeder, rid) < 0)
        return -1;
    char period[8];
    policy_period_of(time(NULL), period);
    store_quota q = {.gpu_seconds = 100 * 3600,
                     .cpu_seconds = STORE_UNLIMITED,
                     .max_gpus = 4,
                     .max_running_jobs = STORE_UNLIMITED,
                     .max_queued_jobs = STORE_UNLIMITED,
                     .max_walltime_minutes = 600,
                     .user_max_gpus = 3};
    snprintf(q.period, sizeof q.period, "%s", period);
    snprintf(q.partner, sizeof q.partner, "ulb");
    if (registry_quota_set(w.reg, &seeder, &q) < 0) return -1;
    q.max_gpus = q.max_walltime_minutes = q.user_max_gpus = STORE_UNLIMITED;
    q.max_queued_jobs = 1;
    snprintf(q.partner, sizeof q.partner, "vub");
    if (registry_quota_set(w.reg, &seeder, &q) < 0) return -1;
    q.max_queued_jobs = STORE_UNLIMITED;
    q.gpu_seconds = 3600;
    snprintf(q.partner, sizeof q.partner, "sirris");
    if (registry_quota_set(w.reg, &seeder, &q) < 0) return -1;
    /* job 1: alice's, job 2: bob's, job 3: alice's (cancelled by a case) */
    if (store_user_get(w.st, "alice", &u) < 0 || add_job(&u, "alice-one") < 0) return -1;
    if (store_user_get(w.st, "bob", &u) < 0 || add_job(&u, "bob-one") < 0) return -1;
    if (store_user_get(w.st, "alice", &u) < 0 || add_job(&u, "alice-two") < 0) return -1;

    if (uv_loop_init(&w.loop) < 0) return -1;
    config_defaults(&world_cfg);
    snprintf(world_cfg.partitions[1], sizeof world_cfg.partitions[1], "debug");
    world_cfg.partition_list[1] = world_cfg.partitions[1];
    world_cfg.partition_list[2] = NULL;
    snprintf(world_cfg.partner_partitions[0].partner,
             sizeof world_cfg.partner_partitions[0].partner, "ulb");
    world_cfg.partner_partitions[0].list[0] = world_cfg.partition_list[0];
    world_cfg.partner_partitions[0].list[1] = NULL;
    world_cfg.n_partner_partitions = 1;
    api_options ao = {.limits = {.max_gpus = 8,
                                 .max_cpus = 32,
                                 .max_time_minutes = 1440,
                                 .max_mem_mb = 65536,
                                 .max_script_bytes = 65536,
                                 .gpu_types = gpu_types,
                                 .max_nodes = 4,
                                 .node_gpus = 8,
                                 .node_cpus = 32,
                                 .export_deny = world_export_deny},
                      .site = &world_cfg,
                      .spool_dir = w.dir,
                      .audit = w.audit,
                      .starved_after_ms = 1500,

                      .accounts = {.uid_min = 2, .deny = world_deny},
                      .auth_failures_per_minute = 20,
                      .token_default_lifetime_s = 7 * 86400,
                      .token_max_lifetime_s = 30 * 86400};
    if (api_new(&w.loop, w.reg, NULL, &ao, &w.api) < 0) return -1;
    http_server_options ho = {.host = "127.0.0.1",
                              .port = 0,
                              .cert_file = cert,
                              .key_file = key,
                              .max_header_bytes = 16384,
                              .max_body_bytes = 1 << 20,
                              .on_headers = api_headers};
    if (http_server_new(&w.loop, &ho, api_handle, w.api, &w.srv, err, sizeof err) < 0) {
        fprintf(stderr, "http_server_new: %s\n", err);
        return -1;
    }
    w.port = http_server_port(w.srv);
    uv_async_init(&w.loop, &w.stop, on_stop);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return pthread_create(&w.thread, NULL, loop_main, NULL) == 0 ? 0 : -1;
}

static int world_stop(void **state)
{
    (void)state;
    char cmd[128];
    uv_async_send(&w.stop);
    pthread_join(w.thread, NULL);
    api_free(w.api); /* closes its own handle on the stopped loop */
    assert_int_equal(uv_loop_close(&w.loop), 0);
    registry_free(w.reg);
    audit_free(w.audit);
    store_free(w.st);
    curl_global_cleanup();
    if (w.tiny && umount2(w.dir, MNT_DETACH) != 0) fprintf(stderr, "umount %s failed\n", w.dir);
    snprintf(cmd, sizeof cmd, "rm -rf %s", w.dir);
    return system(cmd) == 0 ? 0 : -1;
}

struct buf {
    char *p;
    size_t n;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t len = size * nmemb;
    char *p = realloc(b->p, b->n + len + 1);
    if (p == NULL) return 0;
    memcpy(p + b->n, data, len);
    b->p = p;
    b->n += len;
    b->p[b->n] = '\0';
    return len;
}

/* One answer: its status, body and raw header block. */
struct answer {
    long status;
    struct buf body, head;
};

static void answer_free(struct answer *a)
{
    free(a->body.p);
    free(a->head.p);
    memset(a, 0, sizeof *a);
}

/* Copies the value of response header `name` (case-insensitive) into out[len]. Returns whether
 * the answer has it. */
static bool answer_header(const struct answer *a, const char *name, char *out, size_t len)
{
    size_t nlen = strlen(name);
    for (const char *l = a->head.p; l && *l;) {
        const char *eol = strstr(l, "\r\n");
        size_t llen = eol ? (size_t)(eol - l) : strlen(l);
        if (llen > nlen && strncasecmp(l, name, nlen) == 0 && l[nlen] == ':') {
            const char *v = l + nlen + 1;
            while (*v == ' ')
                v++;
            snprintf(out, len, "%.*s", (int)(llen - (size_t)(v - l)), v);
            return true;
        }
        l = eol ? eol + 2 : NULL;
    }
    return false;
}

/* Sends one request; fills *a (answer_free it). Returns curl's code. */
static const char *source_ip; /* when set, requests come from this loopback address */

static CURLcode perform(const char *method, const char *path, struct curl_slist *headers,
                        const char *body, size_t body_len, struct answer *a)
{
    char url[512];
    memset(a, 0, sizeof *a);
    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", w.port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L); /* no body to wait for */
    curl_easy_setopt(c, CURLOPT_CAINFO, w.ca);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &a->head);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (source_ip) curl_easy_setopt(c, CURLOPT_INTERFACE, source_ip);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    curl_easy_cleanup(c);
    return rc;
}

/* Returns NULL when `want` is a subset of `got`, else a malloc'd description of the mismatch. */
static char *subset_mismatch(json_t *want, json_t *got, const char *where)
{
    char *msg = NULL;
    if (json_is_object(want)) {
        const char *k;
        json_t *v;
        if (!json_is_object(got)) goto differ;
        json_object_foreach(want, k, v)
        {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.%s", where, k);
            json_t *g = json_object_get(got, k);
            if (g == NULL) {
                if (asprintf(&msg, "%s is missing", sub) < 0) msg = NULL;
                return msg ? msg : strdup("missing key");
            }
            if ((msg = subset_mismatch(v, g, sub)) != NULL) return msg;
        }
        return NULL;
    }
    if (json_is_array(want)) {
        if (!json_is_array(got) || json_array_size(got) != json_array_size(want)) goto differ;
        for (size_t i = 0; i < json_array_size(want); i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s[%zu]", where, i);
            if ((msg = subset_mismatch(json_array_get(want, i), json_array_get(got, i), sub)))
                return msg;
        }
        return NULL;
    }
    if (json_equal(want, got)) return NULL;
differ:;
    char *ws = json_dumps(want, JSON_ENCODE_ANY | JSON_COMPACT);
    char *gs = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT);
    if (asprintf(&msg, "%s: wanted %s, got %.300s", where, ws, gs ? gs : "(nothing)") < 0)
        msg = NULL;
    free(ws);
    free(gs);
    return msg ? msg : strdup("mismatch");
}

static const char *token_for(const char *who)
{
    for (size_t i = 0; i < N_WORLD_USERS; i++)
        if (strcmp(who, world_users[i].name) == 0) return w.tok[i];
    if (strcmp(who, "revoked") == 0) return w.tok[N_WORLD_USERS];
    if (strcmp(who, "unknown") == 0)
        return "ant_00000000000000000000000000000000000000000000000000000000000000ff";
    if (strcmp(who, "garbage") == 0) return "not a token!";
    return NULL;
}

static void run_case(void **state)
{
    const char *name = *state;
    char path[512], hdr[20000];
    json_error_t jerr;
    snprintf(path, sizeof path, "%s/%s/request.json", CASES_DIR, name);
    json_t *req = json_load_file(path, 0, &jerr);
    if (req == NULL) fail_msg("%s: %s", path, jerr.text);
    snprintf(path, sizeof path, "%s/%s/expected.json", CASES_DIR, name);
    json_t *exp = json_load_file(path, 0, &jerr);
    if (exp == NULL) fail_msg("%s: %s", path, jerr.text);

    const char *who = json_string_value(json_object_get(req, "as"));
    const char *method = json_string_value(json_object_get(req, "method"));
    const char *rpath = json_string_value(json_object_get(req, "path"));
    assert_non_null(method);
    assert_non_null(rpath);

    struct curl_slist *headers = NULL;
    struct answer out;
    char *body = NULL;
    size_t body_len = 0;
    const char *tok = who ? token_for(who) : NULL;
    if (tok) {
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", tok);
        headers = curl_slist_append(headers, hdr);
    }
    json_t *j = json_object_get(req, "json");
    json_t *raw = json_object_get(req, "body");
    json_t *rep = json_object_get(req, "repeat");
    if (j) {
        body = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
        body_len = strlen(body);
        headers = curl_slist_append(headers, "Content-Type: application/json");
    } else if (raw) {
        body = strdup(json_string_value(raw));
        body_len = strlen(body);
    } else if (rep) {
        body_len = (size_t)json_integer_value(json_object_get(rep, "times"));
        body = malloc(body_len + 1);
        memset(body, json_string_value(json_object_get(rep, "char"))[0], body_len);
        body[body_len] = '\0';
    }
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(req, "headers"), k, v)
    {
        json_t *times = json_object_get(req, "header_repeat");
        if (times && strcmp(json_string_value(v), "*") == 0) {
            size_t n = (size_t)json_integer_value(times), off = 0;
            off = (size_t)snprintf(hdr, sizeof hdr, "%s: ", k);
            for (size_t i = 0; i < n && off < sizeof hdr - 1; i++)
                hdr[off++] = 'x';
            hdr[off] = '\0';
        } else {
            snprintf(hdr, sizeof hdr, "%s: %s", k, json_string_value(v));
        }
        headers = curl_slist_append(headers, hdr);
    }
    json_int_t sends = json_integer_value(json_object_get(req, "send"));
    bool same_body = json_is_true(json_object_get(exp, "same_body"));
    char *first = NULL;
    size_t first_len = 0;
    memset(&out, 0, sizeof out);
    for (json_int_t i = 0; i < (sends > 1 ? sends : 1); i++) {
        answer_free(&out);
        CURLcode rc = perform(method, rpath, headers, body, body_len, &out);
        if (rc != CURLE_OK && out.status == 0) fail_msg("%s: %s", name, curl_easy_strerror(rc));
        if (i == 0) {
            first_len = out.body.n;
            first = calloc(1, first_len + 1);
            if (out.body.n) memcpy(first, out.body.p, out.body.n);
        } else if (same_body && (out.body.n != first_len ||
                                 (first_len && memcmp(out.body.p, first, first_len) != 0))) {
            fail_msg("%s: answer %d differs from the first: %.300s vs %.300s", name, (int)i + 1,
                     out.body.p ? out.body.p : "", first);
        }
    }
    free(first);
    curl_slist_free_all(headers);
    free(body);

    long want_status = (long)json_integer_value(json_object_get(exp, "status"));
    if (out.status != want_status)
        fail_msg("%s: status %ld, wanted %ld; body: %.300s", name, out.status, want_status,
                 out.body.p ? out.body.p : "");
    json_t *want_body = json_object_get(exp, "body");
    if (want_body) {
        json_t *got = out.body.p ? json_loads(out.body.p, 0, &jerr) : NULL;
        if (got == NULL)
            fail_msg("%s: answer is not JSON: %.300s", name, out.body.p ? out.body.p : "");
        char *mismatch = subset_mismatch(want_body, got, "body");
        json_decref(got);
        if (mismatch) {
            char copy[600];
            snprintf(copy, sizeof copy, "%s", mismatch);
            free(mismatch);
            fail_msg("%s: %s", name, copy);
        }
    }
    json_object_foreach(json_object_get(exp, "headers"), k, v)
    {
        char got[512];
        if (!answer_header(&out, k, got, sizeof got))
            fail_msg("%s: the answer has no header %s", name, k);
        if (strcmp(got, json_string_value(v)) != 0)
            fail_msg("%s: header %s is \"%s\", wanted \"%s\"", name, k, got, json_string_value(v));
    }
    const char *text = json_string_value(json_object_get(exp, "text"));
    if (text && (out.body.p == NULL || strstr(out.body.p, text) == NULL))
        fail_msg("%s: answer lacks \"%s\": %.300s", name, text, out.body.p ? out.body.p : "");
    const char *absent = json_string_value(json_object_get(exp, "absent"));
    if (absent && out.body.p && strstr(out.body.p, absent) != NULL)
        fail_msg("%s: answer has \"%s\": %.300s", name, absent, out.body.p);
    answer_free(&out);
    json_decref(req);
    json_decref(exp);
}

/* --- dedicated tests (after every folder, in the same world) ---------------------------------- */

/* Sends `method path` with token `tok` (NULL = none), an optional Idempotency-Key (NULL = none)
 * and an optional JSON body text; fills *a (answer_free it). */
static void call(const char *tok, const char *method, const char *path, const char *idem,
                 const char *json_body, struct answer *a)
{
    char hdr[512];
    struct curl_slist *headers = NULL;
    if (tok) {
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", tok);
        headers = curl_slist_append(headers, hdr);
    }
    if (idem) {
        if (idem[0])
            snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", idem);
        else
            snprintf(hdr, sizeof hdr, "Idempotency-Key;"); /* curl's way to send it empty */
        headers = curl_slist_append(headers, hdr);
    }
    if (json_body) headers = curl_slist_append(headers, "Content-Type: application/json");
    CURLcode rc = perform(method, path, headers, json_body, json_body ? strlen(json_body) : 0, a);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK && a->status == 0)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
}

/* The JSON of an answer (decref it); fails the test when it is not JSON. */
static json_t *answer_json(const struct answer *a)
{
    json_error_t jerr;
    json_t *o = a->body.p ? json_loads(a->body.p, 0, &jerr) : NULL;
    if (o == NULL) fail_msg("answer is not JSON: %.300s", a->body.p ? a->body.p : "");
    return o;
}

static void expect_status(const struct answer *a, long status)
{
    if (a->status != status)
        fail_msg("status %ld, wanted %ld; body: %.300s", a->status, status,
                 a->body.p ? a->body.p : "");
}

static void expect_error(const struct answer *a, long status, const char *code)
{
    expect_status(a, status);
    json_t *o = answer_json(a);
    const char *got = json_string_value(json_object_get(json_object_get(o, "error"), "code"));
    if (got == NULL || strcmp(got, code) != 0)
        fail_msg("error code %s, wanted %s", got ? got : "(none)", code);
    json_decref(o);
}

/* The number of jobs `who` sees. */
static size_t count_jobs(const char *who)
{
    struct answer a;
    call(token_for(who), "GET", "/v1/jobs?limit=1000", NULL, NULL, &a);
    expect_status(&a, 200);
    json_t *o = answer_json(&a);
    size_t n = json_array_size(json_object_get(o, "jobs"));
    json_decref(o);
    answer_free(&a);
    return n;
}

/* The audit entries after `seq` (decref them). */
static json_t *audit_after(int64_t seq)
{
    char path[128];
    struct answer a;
    snprintf(path, sizeof path, "/v1/audit?after=%" PRId64 "&limit=100000", seq);
    call(token_for("admin"), "GET", path, NULL, NULL, &a);
    expect_status(&a, 200);
    json_t *o = answer_json(&a);
    json_t *entries = json_incref(json_object_get(o, "entries"));
    json_decref(o);
    answer_free(&a);
    assert_non_null(entries);
    return entries;
}

/* The seq of the last audit entry. */
static int64_t audit_last_seq(void)
{
    json_t *e = audit_after(0);
    size_t n = json_array_size(e);
    int64_t seq = n ? json_integer_value(json_object_get(json_array_get(e, n - 1), "seq")) : 0;
    json_decref(e);
    return seq;
}

static const char *const job_a = "{\"script\":\"#!/bin/bash\\necho a\\n\",\"name\":\"idem-a\"}";
static const char *const job_b = "{\"script\":\"#!/bin/bash\\necho b\\n\",\"name\":\"idem-b\"}";

/* A retry with the same key and body gets the first answer, byte for byte, and no second job. */
static void test_idem_replay_same_answer_one_job(void **state)
{
    (void)state;
    struct answer a1, a2;
    char v[16];
    size_t before = count_jobs("alice");
    call(token_for("alice"), "POST", "/v1/jobs", "replay-0001", job_a, &a1);
    call(token_for("alice"), "POST", "/v1/jobs", "replay-0001", job_a, &a2);
    expect_status(&a1, 202);
    expect_status(&a2, 202);
    assert_string_equal(a1.body.p, a2.body.p);
    assert_false(answer_header(&a1, "Idempotent-Replayed", v, sizeof v));
    assert_true(answer_header(&a2, "Idempotent-Replayed", v, sizeof v));
    assert_string_equal(v, "true");
    assert_int_equal(count_jobs("alice"), before + 1);
    answer_free(&a1);
    answer_free(&a2);
}

/* The same key with another body is refused (422) and creates nothing. */
static void test_idem_other_body_is_422(void **state)
{
    (void)state;
    struct answer a;
    size_t before = count_jobs("alice");
    call(token_for("alice"), "POST", "/v1/jobs", "other-body-0001", job_a, &a);
    expect_status(&a, 202);
    answer_free(&a);
    call(token_for("alice"), "POST", "/v1/jobs", "other-body-0001", job_b, &a);
    expect_error(&a, 422, "idempotency_key_reused");
    assert_non_null(strstr(a.body.p, "fresh key"));
    answer_free(&a);
    assert_int_equal(count_jobs("alice"), before + 1);
}

/* Keys are per user: two users sending the same key and body get a job each. */
static void test_idem_key_is_per_user(void **state)
{
    (void)state;
    struct answer a1, a2;
    char v[16];
    size_t alice = count_jobs("alice"), frank = count_jobs("frank");
    call(token_for("alice"), "POST", "/v1/jobs", "shared-0001", job_a, &a1);
    call(token_for("frank"), "POST", "/v1/jobs", "shared-0001", job_a, &a2);
    expect_status(&a1, 202);
    expect_status(&a2, 202);
    assert_false(answer_header(&a2, "Idempotent-Replayed", v, sizeof v));
    json_t *j1 = answer_json(&a1), *j2 = answer_json(&a2);
    assert_string_equal(json_string_value(json_object_get(j1, "user")), "alice");
    assert_string_equal(json_string_value(json_object_get(j2, "user")), "frank");
    assert_int_not_equal(json_integer_value(json_object_get(j1, "id")),
                         json_integer_value(json_object_get(j2, "id")));
    json_decref(j1);
    json_decref(j2);
    answer_free(&a1);
    answer_free(&a2);
    assert_int_equal(count_jobs("alice"), alice + 1);
    assert_int_equal(count_jobs("frank"), frank + 1);
}

/* A malformed key (empty, a space, a control or non-ASCII byte, over 255) is 400 and creates
 * nothing. */
static void test_idem_bad_key_is_400(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "two words", "tab\there", "cl\xc3\xa9"};
    struct answer a;
    char long_key[300];
    size_t before = count_jobs("alice");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        call(token_for("alice"), "POST", "/v1/jobs", bad[i], job_a, &a);
        expect_error(&a, 400, "invalid_idempotency_key");
        answer_free(&a);
    }
    memset(long_key, 'k', 256);
    long_key[256] = '\0';
    call(token_for("alice"), "POST", "/v1/jobs", long_key, job_a, &a);
    expect_error(&a, 400, "invalid_idempotency_key");
    assert_non_null(strstr(a.body.p, "255"));
    answer_free(&a);
    assert_int_equal(count_jobs("alice"), before);
    long_key[255] = '\0'; /* 255 is allowed */
    call(token_for("alice"), "POST", "/v1/jobs", long_key, job_a, &a);
    expect_status(&a, 202);
    answer_free(&a);
    assert_int_equal(count_jobs("alice"), before + 1);
}

/* A dry run with a key creates nothing and does not use the key up. */
static void test_idem_dry_run_creates_nothing(void **state)
{
    (void)state;
    struct answer a;
    char v[16];
    size_t before = count_jobs("alice");
    int64_t seq = audit_last_seq();
    call(token_for("alice"), "POST", "/v1/jobs", "dry-0001",
         "{\"script\":\"#!/bin/bash\\necho a\\n\",\"dry_run\":true}", &a);
    expect_status(&a, 200);
    json_t *o = answer_json(&a);
    assert_true(json_is_true(json_object_get(o, "dry_run")));
    json_decref(o);
    answer_free(&a);
    assert_int_equal(count_jobs("alice"), before);
    json_t *e = audit_after(seq);
    assert_int_equal(json_array_size(e), 0);
    json_decref(e);
    /* the key is still fresh: a real submission with another body is taken, not refused */
    call(token_for("alice"), "POST", "/v1/jobs", "dry-0001", job_a, &a);
    expect_status(&a, 202);
    assert_false(answer_header(&a, "Idempotent-Replayed", v, sizeof v));
    answer_free(&a);
    assert_int_equal(count_jobs("alice"), before + 1);
}

/* How many of `entries` have `action` (and, when not NULL, `actor`). */
static size_t count_action(json_t *entries, const char *action, const char *actor)
{
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        const char *ac = json_string_value(json_object_get(e, "action"));
        const char *who = json_string_value(json_object_get(e, "actor"));
        if (ac && strcmp(ac, action) == 0 && (actor == NULL || (who && strcmp(who, actor) == 0)))
            n++;
    }
    return n;
}

/* Every change the API makes has exactly one audit entry, by the right actor; reads and dry runs
 * have none. */
static void test_audit_one_entry_per_change(void **state)
{
    (void)state;
    struct answer a;
    const char *admin = token_for("admin");
    char zed[AUTH_TOKEN_LEN + 1], path[64];
    int64_t seq = audit_last_seq();

    call(admin, "POST", "/v1/partners", NULL, "{\"name\":\"acme\",\"share_weight\":2}", &a);
    expect_status(&a, 201);
    answer_free(&a);
    call(admin, "PATCH", "/v1/partners/acme", NULL, "{\"description\":\"Acme SA\"}", &a);
    expect_status(&a, 200);
    answer_free(&a);
    call(admin, "POST", "/v1/users", NULL,
         "{\"name\":\"zed\",\"partner\":\"acme\",\"unix_user\":\"games\",\"category\":\"sme\"}",
         &a);
    expect_status(&a, 201);
    answer_free(&a);
    call(admin, "PATCH", "/v1/quotas/acme/current", NULL, "{\"gpu_hours\":10}", &a);
    expect_status(&a, 200);
    answer_free(&a);
    call(admin, "POST", "/v1/tokens", NULL, "{\"user\":\"zed\",\"label\":\"laptop\"}", &a);
    expect_status(&a, 201);
    json_t *o = answer_json(&a);
    snprintf(zed, sizeof zed, "%s", json_string_value(json_object_get(o, "token")));
    int64_t token_id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    answer_free(&a);
    call(zed, "POST", "/v1/jobs", NULL,
         "{\"script\":\"#!/bin/bash\\necho z\\n\",\"gpus\":1,\"time_minutes\":30}", &a);
    expect_status(&a, 202);
    o = answer_json(&a);
    int64_t job_id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    answer_free(&a);
    call(zed, "POST", "/v1/jobs", NULL, "{\"script\":\"#!/bin/bash\\n\",\"dry_run\":true}", &a);
    expect_status(&a, 200);
    answer_free(&a);
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64, job_id);
    call(zed, "GET", path, NULL, NULL, &a);
    expect_status(&a, 200);
    answer_free(&a);
    call(zed, "DELETE", path, NULL, NULL, &a);
    expect_status(&a, 202);
    answer_free(&a);
    snprintf(path, sizeof path, "/v1/tokens/%" PRId64, token_id);
    call(admin, "DELETE", path, NULL, NULL, &a);
    expect_status(&a, 200);
    answer_free(&a);
    /* dave's partner has no GPU budget: refused */
    call(token_for("dave"), "POST", "/v1/jobs", NULL,
         "{\"script\":\"#!/bin/bash\\n\",\"gpus\":1,\"time_minutes\":30}", &a);
    expect_status(&a, 403);
    answer_free(&a);
    call(zed, "GET", "/v1/jobs", NULL, NULL, &a); /* revoked now */
    expect_status(&a, 401);
    answer_free(&a);

    json_t *e = audit_after(seq);
    static const struct {
        const char *action, *actor;
    } want[] = {
        {"partner.created", "admin"},    {"partner.changed", "admin"}, {"user.created", "admin"},
        {"quota.set", "admin"},          {"token.created", "admin"},   {"job.submitted", "zed"},
        {"job.cancel_requested", "zed"}, {"token.revoked", "admin"},   {"job.refused", "dave"},
    }; /* auth.failed: aggregated per peer and minute, see test_failed_auth_* */
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (count_action(e, want[i].action, want[i].actor) != 1) {
            char *dump = json_dumps(e, JSON_COMPACT);
            char copy[1500];
            snprintf(copy, sizeof copy, "%s", dump ? dump : "");
            free(dump);
            fail_msg("%s by %s: %zu entries, wanted 1; entries: %s", want[i].action, want[i].actor,
                     count_action(e, want[i].action, want[i].actor), copy);
        }
    assert_int_equal(json_array_size(e), sizeof want / sizeof want[0]);
    json_decref(e);
}

/* Creating a user is audited (user.created, by its creator, naming the user). */
static void test_audit_user_created(void **state)
{
    (void)state;
    struct answer a;
    int64_t seq = audit_last_seq();
    call(token_for("stan"), "POST", "/v1/users", NULL,
         "{\"name\":\"yuri\",\"partner\":\"vub\",\"unix_user\":\"nobody\",\"category\":"
         "\"researcher\"}",
         &a);
    expect_status(&a, 201);
    answer_free(&a);
    json_t *e = audit_after(seq);
    assert_int_equal(json_array_size(e), 1);
    assert_int_equal(count_action(e, "user.created", "stan"), 1);
    char *details = json_dumps(json_object_get(json_array_get(e, 0), "details"), JSON_COMPACT);
    assert_non_null(details);
    if (strstr(details, "\"yuri\"") == NULL) fail_msg("details do not name the user: %s", details);
    free(details);
    json_decref(e);
}

/* --- a full disk (root only: the world is then on a 32 MiB tmpfs) ---------------------------- */

/* Fills the world's disk to its last byte with dir/filler. */
static void fill_disk(void)
{
    char path[128], chunk[65536];
    snprintf(path, sizeof path, "%s/filler", w.dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    memset(chunk, 'f', sizeof chunk);
    for (size_t len = sizeof chunk; len > 0; len /= 2)
        while (write(fd, chunk, len) == (ssize_t)len)
            ;
    close(fd);
    w.filled = true;
}

/* With the disk full, a submission is 503 unavailable with Retry-After: 5, and is not recorded. */
static void test_disk_full_submit_is_503_with_retry_after(void **state)
{
    (void)state;
    if (!w.tiny) {
        print_message("skipped: a full disk needs root and a tmpfs mount\n");
        skip();
    }
    /* big scripts, so that the database must grow on disk soon */
    static char body[70000];
    char script[60001], v[16];
    memset(script, '#', sizeof script - 1);
    memcpy(script, "#!/bin/bash\\n", 13); /* JSON-escaped newline */
    script[sizeof script - 1] = '\0';
    snprintf(body, sizeof body, "{\"script\":\"%s\"}", script);
    size_t before = count_jobs("alice"), taken = 0;
    /* an empty log: each submission must grow it on the full disk, whatever the earlier cases
     * left in it (a log they grew takes many 60 KB scripts before the disk is touched) */
    assert_int_equal(store_checkpoint(w.st), 0);
    fill_disk();
    struct answer a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < 200; i++) {
        answer_free(&a);
        call(token_for("alice"), "POST", "/v1/jobs", NULL, body, &a);
        if (a.status != 202) break;
        taken++;
    }
    expect_error(&a, 503, "unavailable");
    assert_non_null(strstr(a.body.p, "disk full"));
    assert_non_null(strstr(a.body.p, "nothing was recorded"));
    assert_true(answer_header(&a, "Retry-After", v, sizeof v));
    assert_string_equal(v, "5");
    answer_free(&a);
    assert_int_equal(count_jobs("alice"), before + taken);
}

/* While the store cannot write, /healthz is 503 degraded and says why. */
static void test_disk_full_healthz_is_degraded(void **state)
{
    (void)state;
    if (!w.filled) {
        print_message("skipped: the disk was not filled\n");
        skip();
    }
    struct answer a;
    call(NULL, "GET", "/healthz", NULL, NULL, &a);
    expect_status(&a, 503);
    json_t *o = answer_json(&a);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "degraded");
    json_t *reasons = json_object_get(o, "reasons");
    assert_int_equal(json_array_size(reasons), 1);
    assert_non_null(strstr(json_string_value(json_array_get(reasons, 0)), "store"));
    json_decref(o);
    answer_free(&a);
}

/* Once space is back, submissions are taken and /healthz is ok again. */
static void test_disk_freed_recovers(void **state)
{
    (void)state;
    char path[128];
    if (!w.filled) {
        print_message("skipped: the disk was not filled\n");
        skip();
    }
    snprintf(path, sizeof path, "%s/filler", w.dir);
    assert_int_equal(unlink(path), 0);
    w.filled = false;
    struct answer a;
    size_t before = count_jobs("alice");
    call(token_for("alice"), "POST", "/v1/jobs", NULL, job_a, &a);
    expect_status(&a, 202);
    answer_free(&a);
    assert_int_equal(count_jobs("alice"), before + 1);
    call(NULL, "GET", "/healthz", NULL, NULL, &a);
    expect_status(&a, 200);
    assert_non_null(strstr(a.body.p, "\"status\":\"ok\""));
    answer_free(&a);
}

/* api_job_body_check, the fuzz target's entry point, is the validation POST /v1/jobs applies. */
static void test_job_body_check_accepts_a_valid_body(void **state)
{
    (void)state;
    static const char body[] = "{\"script\":\"#!/bin/sh\\n\",\"gpus\":2,\"gpu_type\":\"h100\","
                               "\"name\":\"x\",\"time_minutes\":5}";
    const jobreq_limits lim = {.max_gpus = 8,
                               .max_cpus = 4,
                               .max_time_minutes = 60,
                               .max_mem_mb = 1024,
                               .max_script_bytes = 1024,
                               .gpu_types = gpu_types};
    jobreq r;
    int status = -1;
    char *answer = (char *)"unset";
    assert_int_equal(
        api_job_body_check("application/json", body, sizeof body - 1, &lim, &r, &status, &answer),
        0);
    assert_int_equal(status, 0);
    assert_null(answer);
    assert_null(r.script);
    assert_int_equal(r.gpus, 2);
    assert_int_equal(r.time_minutes, 5);
    assert_string_equal(r.name, "x");
    assert_string_equal(r.gpu_type, "h100");
}

static void test_job_body_check_refuses_with_the_api_error(void **state)
{
    (void)state;
    static const char body[] = "{\"script\":\"#!/bin/sh\\n\",\"gpus\":9}";
    const jobreq_limits lim = {.max_gpus = 8,
                               .max_cpus = 4,
                               .max_time_minutes = 60,
                               .max_mem_mb = 1024,
                               .max_script_bytes = 1024,
                               .gpu_types = gpu_types};
    jobreq r;
    int status = 0;
    char *answer = NULL;
    assert_int_equal(
        api_job_body_check("application/json", body, sizeof body - 1, &lim, &r, &status, &answer),
        -EINVAL);
    assert_int_equal(status, 400);
    assert_non_null(answer);
    assert_non_null(strstr(answer, "\"code\":\"invalid_gpus\""));
    free(answer);
    assert_int_equal(
        api_job_body_check("text/plain", body, sizeof body - 1, &lim, &r, &status, &answer),
        -EINVAL);
    assert_int_equal(status, 415);
    assert_non_null(strstr(answer, "unsupported_media_type"));
    free(answer);
}

/* The body check parses the "array" spec as POST /v1/jobs does. */
static void test_job_body_check_refuses_a_bad_array_spec(void **state)
{
    (void)state;
    static const char bad[] = "{\"script\":\"#!/bin/bash\\ntrue\\n\",\"array\":\"0-3%0\"}";
    static const char good[] = "{\"script\":\"#!/bin/bash\\ntrue\\n\",\"array\":\"0-3%2\"}";
    jobreq_limits lim = {
        .max_gpus = 8, .max_cpus = 8, .max_time_minutes = 60, .max_script_bytes = 1024};
    jobreq r;
    int status = 0;
    char *answer = NULL;
    assert_int_equal(
        api_job_body_check("application/json", bad, sizeof bad - 1, &lim, &r, &status, &answer),
        -EINVAL);
    assert_int_equal(status, 400);
    assert_non_null(strstr(answer, "\"code\":\"invalid_array\""));
    free(answer);
    assert_int_equal(
        api_job_body_check("application/json", good, sizeof good - 1, &lim, &r, &status, &answer),
        0);
}

/* The blocking work that starves libuv's (process-wide) pool in the test below. */
static struct pool_block {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;
    bool release;
} pb = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false};

static void pool_block_work(uv_work_t *req)
{
    (void)req;
    pthread_mutex_lock(&pb.mu);
    pb.started++;
    pthread_cond_broadcast(&pb.cv);
    while (!pb.release)
        pthread_cond_wait(&pb.cv, &pb.mu);
    pthread_mutex_unlock(&pb.mu);
}

static void pool_block_done(uv_work_t *req, int status)
{
    (void)req;
    (void)status;
}

static void *starved_call(void *arg)
{
    struct answer *a = arg;
    char hdr[512];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", token_for("admin"));
    struct curl_slist *headers = curl_slist_append(NULL, hdr);
    perform("GET", "/v1/partners", headers, NULL, 0, a); /* a pool route, not the read lane */
    curl_slist_free_all(headers);
    return NULL;
}

/* Every thread of libuv's pool is busy: a request that cannot start makes /healthz degraded
 * (naming the pool) once it has waited over starved_after_ms, and ok again once it ran. */
static void test_healthz_degraded_when_the_worker_pool_is_starved(void **state)
{
    (void)state;
    const char *env = getenv("UV_THREADPOOL_SIZE");
    int nthreads = env && atoi(env) > 0 ? atoi(env) : 4;
    uv_loop_t bl;
    assert_int_equal(uv_loop_init(&bl), 0);
    uv_work_t *works = calloc((size_t)nthreads, sizeof *works);
    assert_non_null(works);
    for (int i = 0; i < nthreads; i++)
        assert_int_equal(uv_queue_work(&bl, &works[i], pool_block_work, pool_block_done), 0);
    pthread_mutex_lock(&pb.mu);
    while (pb.started < nthreads)
        pthread_cond_wait(&pb.cv, &pb.mu);
    pthread_mutex_unlock(&pb.mu);

    struct answer starved;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, starved_call, &starved), 0);
    struct timespec ts = {2, 0}; /* over the world's 1500 ms */
    nanosleep(&ts, NULL);
    struct answer a;
    call(NULL, "GET", "/healthz", NULL, NULL, &a);
    int status = (int)a.status;
    json_t *o = answer_json(&a);
    char *dump = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    answer_free(&a);

    pthread_mutex_lock(&pb.mu);
    pb.release = true;
    pthread_cond_broadcast(&pb.cv);
    pthread_mutex_unlock(&pb.mu);
    pthread_join(th, NULL);
    uv_run(&bl, UV_RUN_DEFAULT);
    uv_loop_close(&bl);
    free(works);
    int starved_status = (int)starved.status;
    answer_free(&starved);

    bool named = dump && strstr(dump, "\"degraded\"") && strstr(dump, "worker pool is starved");
    if (status != 503 || !named) {
        char copy[600];
        snprintf(copy, sizeof copy, "%s", dump ? dump : "(no body)");
        free(dump);
        fail_msg("/healthz while the pool is starved: %d %s", status, copy);
    }
    free(dump);
    assert_int_equal(starved_status, 200); /* the waiting request ran once the pool was free */
    call(NULL, "GET", "/healthz", NULL, NULL, &a);
    expect_status(&a, 200);
    answer_free(&a);
}

/* --- accounts and authentication ---------------------------------------------------------- */

/* A user of vub (account "nobody") made through the registry, with a token (into tok). */
static int64_t user_with_token(const char *name, char tok[AUTH_TOKEN_LEN + 1], int64_t expires_at)
{
    store_user u;
    char hash[AUTH_HASH_HEX_LEN + 1];
    int64_t id = 0;
    assert_int_equal(registry_user_create(w.reg, &seeder, name, "vub", "nobody", "user", "sme", &u),
                     0);
    assert_int_equal(auth_token_generate(tok, AUTH_TOKEN_LEN + 1), 0);
    assert_int_equal(auth_token_hash(tok, hash, sizeof hash), 0);
    assert_int_equal(
        registry_token_issue(w.reg, &seeder, u.id, u.partner, hash, "t", expires_at, &id), 0);
    return id;
}

static void expect_text(const struct answer *a, const char *text)
{
    if (a->body.p == NULL || strstr(a->body.p, text) == NULL)
        fail_msg("answer lacks \"%s\": %.300s", text, a->body.p ? a->body.p : "");
}

/* Disabling a user stops its token before the PATCH returns; enabling it brings it back. */
static void test_disabled_user_token_is_refused_at_once_and_works_once_enabled(void **state)
{
    (void)state;
    struct answer a;
    char tok[AUTH_TOKEN_LEN + 1];
    user_with_token("dora", tok, 0);
    call(tok, "GET", "/v1/jobs", NULL, NULL, &a);
    expect_status(&a, 200);
    answer_free(&a);
    int64_t seq = audit_last_seq();
    call(token_for("stan"), "PATCH", "/v1/users/dora", NULL, "{\"disabled\":true}", &a);
    expect_status(&a, 200);
    expect_text(&a, "\"disabled\":true");
    answer_free(&a);
    call(tok, "GET", "/v1/jobs", NULL, NULL, &a);
    expect_error(&a, 401, "unauthorized");
    expect_text(&a, "disabled");
    answer_free(&a);
    call(token_for("admin"), "POST", "/v1/tokens", NULL, "{\"user\":\"dora\"}", &a);
    expect_error(&a, 409, "user_disabled");
    answer_free(&a);
    call(token_for("stan"), "PATCH", "/v1/users/dora", NULL, "{\"disabled\":false}", &a);
    expect_status(&a, 200);
    answer_free(&a);
    call(tok, "GET", "/v1/jobs", NULL, NULL, &a);
    expect_status(&a, 200);
    answer_free(&a);
    json_t *e = audit_after(seq);
    assert_int_equal(count_action(e, "user.disabled", "stan"), 1);
    assert_int_equal(count_action(e, "user.enabled", "stan"), 1);
    json_decref(e);
}

/* An expired token is 401 with a message that says so and how to get a new one. */
static void test_expired_token_is_refused_saying_it_expired(void **state)
{
    (void)state;
    struct answer a;
    char tok[AUTH_TOKEN_LEN + 1];
    user_with_token("ernie", tok, time(NULL) + 1);
    call(tok, "GET", "/v1/jobs", NULL, NULL, &a);
    expect_status(&a, 200);
    answer_free(&a);
    sleep(2);
    call(tok, "GET", "/v1/jobs", NULL, NULL, &a);
    expect_error(&a, 401, "unauthorized");
    expect_text(&a, "expired");
    expect_text(&a, "token create");
    answer_free(&a);
}

/* A new token gets the default lifetime, or the one asked for, and the list shows it. */
static void test_token_expiry_default_asked_and_listed(void **state)
{
    (void)state;
    struct answer a;
    int64_t now = time(NULL);
    call(token_for("admin"), "POST", "/v1/tokens", NULL, "{\"user\":\"frank\"}", &a);
    expect_status(&a, 201);
    json_t *o = answer_json(&a);
    const char *exp = json_string_value(json_object_get(o, "expires_at"));
    assert_non_null(exp);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    assert_non_null(strptime(exp, "%Y-%m-%dT%H:%M:%SZ", &tm));
    int64_t t = (int64_t)timegm(&tm);
    assert_true(t >= now + 7 * 86400 - 5 && t <= now + 7 * 86400 + 5);
    json_decref(o);
    answer_free(&a);
    call(token_for("admin"), "POST", "/v1/tokens", NULL,
         "{\"user\":\"frank\",\"label\":\"hour\",\"expires_in\":3600}", &a);
    expect_status(&a, 201);
    o = answer_json(&a);
    int64_t id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    answer_free(&a);
    call(token_for("admin"), "GET", "/v1/tokens", NULL, NULL, &a);
    expect_status(&a, 200);
    o = answer_json(&a);
    json_t *ts = json_object_get(o, "tokens"), *v;
    size_t i;
    bool found = false;
    json_array_foreach(ts, i, v)
    {
        if (json_integer_value(json_object_get(v, "id")) != id) continue;
        found = true;
        assert_true(json_is_string(json_object_get(v, "expires_at")));
        assert_true(json_is_false(json_object_get(v, "expired")));
    }
    assert_true(found);
    json_decref(o);
    answer_free(&a);
}

/* Failed attempts from one peer are limited (429 with Retry-After, the token not even looked
 * up: a valid one is refused too, other peers are not) and audited as one auth.failed entry per
 * peer and minute with the count. Runs from 127.0.0.2 so that the other tests' peer is spared.
 */
static void test_failed_auth_from_one_peer_is_rate_limited_and_audited_per_minute(void **state)
{
    (void)state;
    struct answer a;
    const char *bad = "ant_00000000000000000000000000000000000000000000000000000000000000ee";
    unsigned unauthorized = 0, limited = 0;
    int64_t seq = audit_last_seq();
    source_ip = "127.0.0.2";
    /* 20 per minute: 60 attempts meet the limit even if a minute ends meanwhile */
    for (int i = 0; i < 60 && limited == 0; i++) {
        call(bad, "GET", "/v1/jobs", NULL, NULL, &a);
        if (a.status == 401)
            unauthorized++;
        else if (a.status == 429)
            limited++;
        else
            fail_msg("status %ld for a bad token", a.status);
        if (a.status == 429) {
            char ra[16];
            assert_true(answer_header(&a, "Retry-After", ra, sizeof ra));
            assert_true(atoi(ra) >= 1 && atoi(ra) <= 60);
            expect_error(&a, 429, "rate_limited");
        }
        answer_free(&a);
    }
    assert_int_equal(limited, 1);
    assert_true(unauthorized >= 20);
    call(token_for("admin"), "GET", "/v1/jobs", NULL, NULL, &a); /* refused unseen */
    expect_error(&a, 429, "rate_limited");
    answer_free(&a);
    source_ip = NULL;
    call(token_for("admin"), "GET", "/v1/jobs", NULL, NULL, &a); /* another peer */
    expect_status(&a, 200);
    answer_free(&a);

    assert_int_equal(api_auth_flush(w.api, true), 0);
    json_t *e = audit_after(seq), *v;
    size_t i, entries = 0;
    json_int_t failures = 0, refused = 0;
    json_array_foreach(e, i, v)
    {
        json_t *d = json_object_get(v, "details");
        const char *action = json_string_value(json_object_get(v, "action"));
        if (strcmp(action, "auth.failed") != 0 ||
            strcmp(json_string_value(json_object_get(d, "peer")), "127.0.0.2") != 0)
            continue;
        entries++;
        failures += json_integer_value(json_object_get(d, "failures"));
        refused += json_integer_value(json_object_get(d, "refused"));
    }
    json_decref(e);
    assert_true(entries >= 1 && entries <= 2); /* one per minute: at most two minutes */
    assert_int_equal(failures, (json_int_t)unauthorized);
    assert_int_equal(refused, 2);
}

/* --- refunds and corrections over HTTP ----------------------------------------------------------
 */

/* A 1-GPU job of alice, dispatched and completed after 1800 s of Slurm time, through the registry
 * (the world's other queued jobs are requeued as they were). Returns its id. */
static int64_t charged_job(void)
{
    store_user u;
    assert_int_equal(store_user_get(w.st, "alice", &u), 0);
    registry_submit s;
    registry_actor who = {.actor = "alice", .partner = "ulb"};
    memset(&s, 0, sizeof s);
    s.job.user_id = u.id;
    snprintf(s.job.user, sizeof s.job.user, "alice");
    snprintf(s.job.name, sizeof s.job.name, "charged");
    s.job.gpus = 1;
    s.job.cpus_per_task = 1;
    s.job.time_minutes = 60;
    s.job.submitted_at = time(NULL);
    s.script = "#!/bin/bash\necho hi\n";
    s.render = render_empty;
    assert_int_equal(registry_job_submit(w.reg, &who, &s), 0);
    free(s.body);
    assert_true(s.verdict.admitted);
    int64_t id = s.job.id;
    store_job *js = NULL;
    size_t n = 0;
    assert_int_equal(registry_dispatch_begin(w.reg, time(NULL), 16, &js, &n), 0);
    registry_outcome o[16];
    bool mine = false;
    for (size_t i = 0; i < n; i++) {
        memset(&o[i], 0, sizeof o[i]);
        o[i].id = js[i].id;
        o[i].kind = js[i].id == id ? REGISTRY_SUBMITTED : REGISTRY_REQUEUE;
        o[i].slurm_job_id = js[i].id == id ? 777000 + id : 0;
        mine = mine || js[i].id == id;
    }
    free(js);
    assert_true(mine);
    assert_int_equal(registry_dispatch_outcomes(w.reg, o, n), 0);
    int64_t t = time(NULL) - 3600;
    registry_slurm_change c;
    memset(&c, 0, sizeof c);
    c.id = id;
    c.slurm_job_id = 777000 + id;
    snprintf(c.state, sizeof c.state, "completed");
    c.start_time = t;
    c.end_time = t + 1800;
    c.has_exit_code = true;
    assert_int_equal(registry_slurm_changes(w.reg, &c, 1), 0);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.charge_gpu_seconds, 1800);
    return id;
}

/* GET /v1/jobs/{id} of `id` as `who`: its status, and its charge_gpu_hours in *charge. */
static int job_charge(const char *who, int64_t id, double *charge)
{
    char path[64];
    struct answer a;
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64, id);
    call(token_for(who), "GET", path, NULL, NULL, &a);
    int status = a.status;
    if (status == 200) {
        json_t *o = answer_json(&a);
        *charge = json_real_value(json_object_get(o, "charge_gpu_hours"));
        json_decref(o);
    }
    answer_free(&a);
    return status;
}

static void test_job_answer_kept_in_memory_never_outlives_a_change(void **state)
{
    (void)state;
    int64_t id = charged_job(); /* completed: its answer may be kept */
    double charge = 0;
    uint64_t hits = api_job_cache_hits(w.api);
    assert_int_equal(job_charge("alice", id, &charge), 200);
    assert_true(charge == 0.5);
    assert_int_equal(job_charge("alice", id, &charge), 200); /* from memory now */
    assert_true(charge == 0.5);
    assert_true(api_job_cache_hits(w.api) > hits);
    assert_int_equal(job_charge("bob", id, &charge), 404); /* kept, still not bob's to see */
    char path[64];
    struct answer a;
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64 "/refund", id);
    call(token_for("stan"), "POST", path, NULL, "{\"reason\": \"cache\", \"gpu_hours\": 0.25}", &a);
    expect_status(&a, 200);
    answer_free(&a);
    assert_int_equal(job_charge("alice", id, &charge), 200); /* the change is seen at once */
    assert_true(charge == 0.25);
}

/* The total GPU-seconds of /v1/usage for ulb, as stan sees it. */
static int64_t usage_ulb(void)
{
    struct answer a;
    call(token_for("stan"), "GET", "/v1/usage?partner=ulb&by=total", NULL, NULL, &a);
    expect_status(&a, 200);
    json_t *o = answer_json(&a);
    int64_t g = json_integer_value(json_object_get(json_object_get(o, "total"), "gpu_seconds"));
    json_decref(o);
    answer_free(&a);
    return g;
}

static void test_refund_shows_in_usage_statement_and_refuses_more_than_charged(void **state)
{
    (void)state;
    int64_t before = usage_ulb();
    int64_t id = charged_job();
    assert_int_equal(usage_ulb(), before + 1800);
    char path[64], month[8];
    struct answer a;
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64 "/refund", id);
    call(token_for("stan"), "POST", path, NULL,
         "{\"reason\": \"node failure\", \"gpu_hours\": 0.25}", &a);
    expect_status(&a, 200);
    json_t *o = answer_json(&a);
    assert_true(json_real_value(json_object_get(o, "charge_gpu_hours")) == 0.25);
    assert_int_equal(json_array_size(json_object_get(o, "adjustments")), 1);
    json_decref(o);
    answer_free(&a);
    assert_int_equal(usage_ulb(), before + 900);

    call(token_for("stan"), "POST", path, NULL, "{\"reason\": \"again\", \"gpu_hours\": 1}", &a);
    expect_error(&a, 409, "conflict");
    answer_free(&a);
    assert_int_equal(usage_ulb(), before + 900);

    snprintf(path, sizeof path, "/v1/jobs/%" PRId64 "/correct", id);
    call(token_for("admin"), "POST", path, NULL, "{\"reason\": \"ran 40 min\", \"gpu_hours\": 0.5}",
         &a);
    expect_status(&a, 200);
    answer_free(&a);
    assert_int_equal(usage_ulb(), before + 1800);

    policy_period_of(time(NULL), month);
    snprintf(path, sizeof path, "/v1/reports/ulb/%s", month);
    call(token_for("audrey"), "GET", path, NULL, NULL, &a);
    expect_status(&a, 200);
    o = answer_json(&a);
    json_t *adj = json_object_get(o, "adjustments");
    assert_int_equal(json_array_size(adj), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(adj, 0), "kind")),
                        "refund");
    assert_string_equal(json_string_value(json_object_get(json_array_get(adj, 0), "reason")),
                        "node failure");
    assert_string_equal(json_string_value(json_object_get(json_array_get(adj, 1), "kind")),
                        "correction");
    json_decref(o);
    answer_free(&a);
}

/* An array submitted, read, listed, and cancelled by task and whole: GET of its id lists its
 * tasks, GET of ID_TASK is one task, GET /v1/jobs shows it once with counts, DELETE ID_TASK
 * cancels one task and DELETE of its id the others (so that it leaves nothing queued for the
 * tests after it). */
static void test_dependency_on_an_array_waits_on_every_task(void **state)
{
    (void)state;
    struct answer a;
    char body[256], path[64];
    const char *tok = token_for("alice");
    size_t queued = registry_queue_length(w.reg);
    call(tok, "POST", "/v1/jobs", NULL,
         "{\"script\":\"#!/bin/bash\\necho hi\\n\",\"time_minutes\":5,\"array\":\"0-2\"}", &a);
    expect_status(&a, 202);
    json_t *o = answer_json(&a);
    json_int_t aid = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    answer_free(&a);
    snprintf(body, sizeof body,
             "{\"script\":\"#!/bin/bash\\necho after\\n\",\"time_minutes\":5,"
             "\"dependency\":\"afterok:%lld\"}",
             (long long)aid);
    call(tok, "POST", "/v1/jobs", NULL, body, &a);
    expect_status(&a, 202);
    o = answer_json(&a);
    json_int_t dep = json_integer_value(json_object_get(o, "id"));
    char want[96];
    snprintf(want, sizeof want, "afterok:%lld:%lld:%lld", (long long)aid, (long long)aid + 1,
             (long long)aid + 2); /* the array's id is its first task's; the others follow */
    assert_string_equal(json_string_value(json_object_get(o, "dependency")), want);
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "Dependency");
    json_decref(o);
    answer_free(&a);
    snprintf(path, sizeof path, "/v1/jobs/%lld", (long long)dep);
    call(tok, "DELETE", path, NULL, NULL, &a);
    expect_status(&a, 202);
    answer_free(&a);
    snprintf(path, sizeof path, "/v1/jobs/%lld", (long long)aid);
    call(tok, "DELETE", path, NULL, NULL, &a); /* the whole array: the world's queue as before */
    expect_status(&a, 202);
    answer_free(&a);
    assert_int_equal(registry_queue_length(w.reg), queued);
}

static void test_array_get_list_and_cancel_by_task_and_whole(void **state)
{
    (void)state;
    struct answer a;
    char path[96];
    const char *tok = token_for("alice");
    call(tok, "POST", "/v1/jobs", NULL,
         "{\"script\":\"#!/bin/bash\\necho hi\\n\",\"time_minutes\":5,\"array\":\"0,4,8%1\","
         "\"name\":\"arr\"}",
         &a);
    expect_status(&a, 202);
    json_t *o = answer_json(&a);
    json_int_t aid = json_integer_value(json_object_get(o, "id"));
    assert_int_equal(json_integer_value(json_object_get(o, "array_job_id")), aid);
    assert_int_equal(json_integer_value(json_object_get(o, "array_task_id")), 0);
    json_t *arr = json_object_get(o, "array");
    assert_string_equal(json_string_value(json_object_get(arr, "spec")), "0,4,8%1");
    assert_int_equal(json_integer_value(json_object_get(arr, "task_count")), 3);
    assert_int_equal(json_integer_value(json_object_get(arr, "max_running")), 1);
    json_decref(o);
    answer_free(&a);

    snprintf(path, sizeof path, "/v1/jobs/%lld", (long long)aid);
    call(tok, "GET", path, NULL, NULL, &a);
    expect_status(&a, 200);
    o = answer_json(&a);
    json_t *tasks = json_object_get(json_object_get(o, "array"), "tasks");
    assert_int_equal(json_array_size(tasks), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(tasks, 2), "task_id")), 8);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tasks, 1), "reason")),
                        "Priority"); /* behind its sibling: none of its tasks runs yet */
    json_int_t second = json_integer_value(json_object_get(json_array_get(tasks, 1), "id"));
    json_decref(o);
    answer_free(&a);

    snprintf(path, sizeof path, "/v1/jobs/%lld_4", (long long)aid);
    call(tok, "GET", path, NULL, NULL, &a);
    expect_status(&a, 200);
    o = answer_json(&a);
    assert_int_equal(json_integer_value(json_object_get(o, "id")), second);
    assert_int_equal(json_integer_value(json_object_get(o, "array_task_id")), 4);
    assert_null(json_object_get(o, "array")); /* one task, not the array */
    json_decref(o);
    answer_free(&a);

    call(tok, "DELETE", path, NULL, NULL, &a); /* task 4 only */
    expect_status(&a, 202);
    answer_free(&a);

    call(tok, "GET", "/v1/jobs?limit=1000", NULL, NULL, &a);
    expect_status(&a, 200);
    o = answer_json(&a);
    size_t seen = 0;
    json_t *jobs = json_object_get(o, "jobs"), *j;
    size_t i;
    json_array_foreach(jobs, i, j)
    {
        json_int_t id = json_integer_value(json_object_get(j, "id"));
        if (id == second) fail_msg("a later task of the array is listed on its own");
        if (id != aid) continue;
        seen++;
        json_t *counts = json_object_get(json_object_get(j, "array"), "counts");
        assert_int_equal(json_integer_value(json_object_get(counts, "queued")), 2);
        assert_int_equal(json_integer_value(json_object_get(counts, "cancelled")), 1);
    }
    assert_int_equal(seen, 1);
    json_decref(o);
    answer_free(&a);

    snprintf(path, sizeof path, "/v1/jobs/%lld", (long long)aid);
    call(tok, "DELETE", path, NULL, NULL, &a); /* the rest */
    expect_status(&a, 202);
    o = answer_json(&a);
    assert_int_equal(json_integer_value(json_object_get(o, "cancelled_now")), 2);
    json_t *counts = json_object_get(json_object_get(o, "array"), "counts");
    assert_int_equal(json_integer_value(json_object_get(counts, "cancelled")), 3);
    json_decref(o);
    answer_free(&a);
    call(tok, "DELETE", path, NULL, NULL, &a);
    expect_status(&a, 409);
    answer_free(&a);
}

static const struct CMUnitTest dedicated[] = {
    cmocka_unit_test(test_refund_shows_in_usage_statement_and_refuses_more_than_charged),
    cmocka_unit_test(test_job_answer_kept_in_memory_never_outlives_a_change),
    cmocka_unit_test(test_dependency_on_an_array_waits_on_every_task),
    cmocka_unit_test(test_job_body_check_accepts_a_valid_body),
    cmocka_unit_test(test_job_body_check_refuses_with_the_api_error),
    cmocka_unit_test(test_job_body_check_refuses_a_bad_array_spec),
    cmocka_unit_test(test_idem_replay_same_answer_one_job),
    cmocka_unit_test(test_idem_other_body_is_422),
    cmocka_unit_test(test_idem_key_is_per_user),
    cmocka_unit_test(test_idem_bad_key_is_400),
    cmocka_unit_test(test_idem_dry_run_creates_nothing),
    cmocka_unit_test(test_audit_one_entry_per_change),
    cmocka_unit_test(test_audit_user_created),
    cmocka_unit_test(test_disabled_user_token_is_refused_at_once_and_works_once_enabled),
    cmocka_unit_test(test_expired_token_is_refused_saying_it_expired),
    cmocka_unit_test(test_token_expiry_default_asked_and_listed),
    cmocka_unit_test(test_failed_auth_from_one_peer_is_rate_limited_and_audited_per_minute),
    cmocka_unit_test(test_disk_full_submit_is_503_with_retry_after),
    cmocka_unit_test(test_disk_full_healthz_is_degraded),
    cmocka_unit_test(test_disk_freed_recovers),
    cmocka_unit_test(test_healthz_degraded_when_the_worker_pool_is_starved),
    cmocka_unit_test(test_array_get_list_and_cancel_by_task_and_whole),
};
#define N_DEDICATED (sizeof dedicated / sizeof dedicated[0])

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    DIR *d = opendir(CASES_DIR);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    if (d == NULL) {
        fprintf(stderr, "test_api: cannot open %s (run from the repository root)\n", CASES_DIR);
        return 1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        names = realloc(names, (n + 1) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    struct CMUnitTest *tests = calloc(n + N_DEDICATED, sizeof *tests);
    for (size_t i = 0; i < n; i++) {
        tests[i].name = names[i];
        tests[i].test_func = run_case;
        tests[i].initial_state = names[i];
    }
    for (size_t i = 0; i < N_DEDICATED; i++)
        tests[n + i] = dedicated[i];
    int rc = _cmocka_run_group_tests("api_cases", tests, n + N_DEDICATED, world_start, world_stop);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(tests);
    return rc;
}
