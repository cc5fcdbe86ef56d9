/* test_api.c - data-driven tests of the /v1 API: each folder of tests/api/cases holds a
 * request.json and the expected.json answer. The world (a temporary store with partners ulb and
 * vub, users alice, bob and admin, their tokens and three queued jobs) is served by the real
 * http_server + api on a free port, without a broker: jobs stay queued, Slurm is never involved.
 *
 * The world: partners ulb (quota: 100 GPU-hours, 4 GPUs, 3 per user, 600 min walltime), vub (100
 * GPU-hours, at most 1 queued job), sirris (1 GPU-hour) and agoria (no quota set); users alice and
 * bob (role user), mia (manager of ulb), stan (staff), audrey (auditor), admin, frank (sirris),
 * dave (agoria); jobs 1 (alice), 2 (bob), 3 (alice), all queued.
 *
 * request.json: {"as": "<user>|revoked|unknown|garbage|none", "method": "POST",
 *                "path": "/v1/jobs", "headers": {"Name": "value"}, "json": <body as JSON>,
 *                "body": "<raw body>", "repeat": {"char": "a", "times": N}}
 * expected.json: {"status": 400, "body": <subset the JSON answer must contain>,
 *                 "text": "<substring of the answer>", "absent": "<not in the answer>"}
 * A subset matches when every key it has is in the answer with a matching value; arrays must
 * have the same length and match element by element.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "policy_state.h"
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
    policy_state *ps;
    audit *audit;
    char tok[10][AUTH_TOKEN_LEN + 1]; /* tokens of world_users, then the revoked one */
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

static int add_token(int64_t user_id, char *tok, int64_t *id)
{
    char hash[AUTH_HASH_HEX_LEN + 1];
    if (auth_token_generate(tok, AUTH_TOKEN_LEN + 1) < 0) return -1;
    if (auth_token_hash(tok, hash, sizeof hash) < 0) return -1;
    return store_token_insert(w.st, user_id, hash, "test", id);
}

static int add_job(int64_t user_id, const char *name)
{
    store_job j;
    memset(&j, 0, sizeof j);
    j.user_id = user_id;
    snprintf(j.name, sizeof j.name, "%s", name);
    j.cpus_per_task = 1;
    j.time_minutes = 10;
    return store_job_insert(w.st, &j, "#!/bin/bash\necho hi\n");
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
    store_user u;
    int64_t rid = 0;
    snprintf(w.dir, sizeof w.dir, "/tmp/antenna-test-api.XXXXXX");
    if (mkdtemp(w.dir) == NULL) return -1;
    snprintf(cmd, sizeof cmd, "deploy/make-cert.sh %s > /dev/null", w.dir);
    if (system(cmd) != 0) return -1;
    snprintf(w.ca, sizeof w.ca, "%s/ca.pem", w.dir);
    char db[128], cert[128], key[128];
    snprintf(db, sizeof db, "%s/antenna.db", w.dir);
    snprintf(cert, sizeof cert, "%s/server.pem", w.dir);
    snprintf(key, sizeof key, "%s/server.key", w.dir);
    if (store_new(db, &w.st, err, sizeof err) < 0) return -1;
    const char *partners[] = {"ulb", "vub", "sirris", "agoria"};
    for (int i = 0; i < 4; i++)
        if (store_partner_insert(w.st, partners[i], partners[i], 1, NULL) < 0) return -1;
    for (size_t i = 0; i < N_WORLD_USERS; i++) {
        if (store_user_insert(w.st, world_users[i].name, world_users[i].partner, "nobody",
                              world_users[i].role, world_users[i].category, NULL) < 0 ||
            store_user_get(w.st, world_users[i].name, &u) < 0 ||
            add_token(u.id, w.tok[i], &rid) < 0)
            return -1;
    }
    if (store_user_get(w.st, "alice", &u) < 0 || add_token(u.id, w.tok[N_WORLD_USERS], &rid) < 0 ||
        store_token_revoke(w.st, rid) < 0)
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
    if (store_quota_set(w.st, &q) < 0) return -1;
    q.max_gpus = q.max_walltime_minutes = q.user_max_gpus = STORE_UNLIMITED;
    q.max_queued_jobs = 1;
    snprintf(q.partner, sizeof q.partner, "vub");
    if (store_quota_set(w.st, &q) < 0) return -1;
    q.max_queued_jobs = STORE_UNLIMITED;
    q.gpu_seconds = 3600;
    snprintf(q.partner, sizeof q.partner, "sirris");
    if (store_quota_set(w.st, &q) < 0) return -1;
    /* job 1: alice's, job 2: bob's, job 3: alice's (cancelled by a case) */
    if (store_user_get(w.st, "alice", &u) < 0 || add_job(u.id, "alice-one") < 0) return -1;
    if (store_user_get(w.st, "bob", &u) < 0 || add_job(u.id, "bob-one") < 0) return -1;
    if (store_user_get(w.st, "alice", &u) < 0 || add_job(u.id, "alice-two") < 0) return -1;
    policy_config pc;
    policy_config_defaults(&pc);
    if (policy_state_new(&pc, w.st, &w.ps, err, sizeof err) < 0) {
        fprintf(stderr, "policy_state_new: %s\n", err);
        return -1;
    }

    char akey[128], ahead[128];
    snprintf(akey, sizeof akey, "%s/audit.key", w.dir);
    snprintf(ahead, sizeof ahead, "%s/audit.head", w.dir);
    if (audit_new(w.st, akey, ahead, &w.audit, err, sizeof err) < 0 ||
        audit_log(w.audit, "admin", "ulb", "partner.created", "{\"name\":\"ulb\"}") < 0)
        return -1;
    if (uv_loop_init(&w.loop) < 0) return -1;
    api_options ao = {.limits = {.max_gpus = 8,
                                 .max_cpus = 32,
                                 .max_time_minutes = 1440,
                                 .max_mem_mb = 65536,
                                 .max_script_bytes = 65536,
                                 .gpu_types = gpu_types},
                      .spool_dir = w.dir,
                      .audit = w.audit};
    if (api_new(&w.loop, w.st, NULL, w.ps, &ao, &w.api) < 0) return -1;
    http_server_options ho = {.host = "127.0.0.1",
                              .port = 0,
                              .cert_file = cert,
                              .key_file = key,
                              .max_header_bytes = 16384,
                              .max_body_bytes = 1 << 20};
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
    uv_loop_close(&w.loop);
    api_free(w.api);
    audit_free(w.audit);
    policy_state_free(w.ps);
    store_free(w.st);
    curl_global_cleanup();
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
    char path[512], url[512], hdr[20000];
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
    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", w.port, rpath);

    CURL *c = curl_easy_init();
    struct curl_slist *headers = NULL;
    struct buf out = {NULL, 0};
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
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_CAINFO, w.ca);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    free(body);
    if (rc != CURLE_OK && status == 0) fail_msg("%s: %s", name, curl_easy_strerror(rc));

    long want_status = (long)json_integer_value(json_object_get(exp, "status"));
    if (status != want_status)
        fail_msg("%s: status %ld, wanted %ld; body: %.300s", name, status, want_status,
                 out.p ? out.p : "");
    json_t *want_body = json_object_get(exp, "body");
    if (want_body) {
        json_t *got = out.p ? json_loads(out.p, 0, &jerr) : NULL;
        if (got == NULL) fail_msg("%s: answer is not JSON: %.300s", name, out.p ? out.p : "");
        char *mismatch = subset_mismatch(want_body, got, "body");
        json_decref(got);
        if (mismatch) {
            char copy[600];
            snprintf(copy, sizeof copy, "%s", mismatch);
            free(mismatch);
            fail_msg("%s: %s", name, copy);
        }
    }
    const char *text = json_string_value(json_object_get(exp, "text"));
    if (text && (out.p == NULL || strstr(out.p, text) == NULL))
        fail_msg("%s: answer lacks \"%s\": %.300s", name, text, out.p ? out.p : "");
    const char *absent = json_string_value(json_object_get(exp, "absent"));
    if (absent && out.p && strstr(out.p, absent) != NULL)
        fail_msg("%s: answer has \"%s\": %.300s", name, absent, out.p);
    free(out.p);
    json_decref(req);
    json_decref(exp);
}

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
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    for (size_t i = 0; i < n; i++) {
        tests[i].name = names[i];
        tests[i].test_func = run_case;
        tests[i].initial_state = names[i];
    }
    int rc = _cmocka_run_group_tests("api_cases", tests, n, world_start, world_stop);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(tests);
    return rc;
}
