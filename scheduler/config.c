/* config.c - reads antennad's JSON config file with jansson. Never keeps the file open. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

void config_defaults(config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->listen_port = 8443;
    snprintf(c->database, sizeof c->database, "/var/lib/antenna/antenna.db");
    snprintf(c->spool_dir, sizeof c->spool_dir, "/var/lib/antenna/spool");
    snprintf(c->partition, sizeof c->partition, "gpu");
    c->poll_interval_ms = 1000;
    snprintf(c->log_level, sizeof c->log_level, "info");
    snprintf(c->audit_key_file, sizeof c->audit_key_file, "/etc/antenna/audit.key");
    snprintf(c->audit_head_file, sizeof c->audit_head_file, "/var/lib/antenna/audit.head");
    c->max_gpus = 8;
    c->max_nodes = 16;
    snprintf(c->partitions[0], sizeof c->partitions[0], "gpu");
    c->partition_list[0] = c->partitions[0];
    c->max_cpus = 32;
    c->max_time_minutes = 7 * 24 * 60;
    c->max_mem_mb = 256 * 1024;
    c->max_script_bytes = 256 * 1024;
    c->max_array_tasks = 1000;
    c->max_body_bytes = 1024 * 1024;
    c->max_header_bytes = 16 * 1024;
    c->idle_timeout_ms = 30000;
    c->max_connections_per_peer = 32;
    c->handshake_timeout_ms = 5000;
    c->request_timeout_ms = 10000;
    c->max_unsent_bytes = 1024 * 1024;
    c->max_buffered_body_bytes = 64 * 1024 * 1024;
    c->healthz_starved_ms = 5000;
    snprintf(c->metrics_access, sizeof c->metrics_access, "loopback");
    c->access_log = 1;
    c->auth_failures_per_minute = 20;
    c->token_rate_per_second = 100;
    c->token_burst = 200;
    c->token_default_lifetime_days = 90;
    c->token_max_lifetime_days = 365;
    policy_config_defaults(&c->policy);
    snprintf(c->gpu_types[0], sizeof c->gpu_types[0], "%s", c->policy.gpu_types[0].name);
    c->gpu_type_list[0] = c->gpu_types[0];
    c->gpu_type_list[1] = NULL;
}

/* Rebuilds policy.gpu_types from gpu_types, keeping weights already set for the same names. */
static void sync_gpu_types(config *c, const int *weights)
{
    size_t n = 0;
    while (n < CONFIG_MAX_GPU_TYPES && c->gpu_type_list[n] != NULL)
        n++;
    for (size_t i = 0; i < n && i < POLICY_GPU_TYPES_MAX; i++) {
        snprintf(c->policy.gpu_types[i].name, sizeof c->policy.gpu_types[i].name, "%s",
                 c->gpu_types[i]);
        c->policy.gpu_types[i].weight_milli = weights ? weights[i] : 1000;
    }
    c->policy.n_gpu_types = n;
}

static int load_gpu_weights(config *c, json_t *v, char *err, size_t errlen)
{
    const char *name;
    json_t *w;
    int weights[CONFIG_MAX_GPU_TYPES];
    if (!json_is_object(v)) {
        snprintf(err, errlen, "gpu_weights must be an object like {\"h100\": 1.0}");
        return -EINVAL;
    }
    for (size_t i = 0; i < CONFIG_MAX_GPU_TYPES; i++)
        weights[i] = i < c->policy.n_gpu_types ? c->policy.gpu_types[i].weight_milli : 1000;
    json_object_foreach(v, name, w)
    {
        size_t i = 0;
        while (c->gpu_type_list[i] != NULL && strcmp(c->gpu_type_list[i], name) != 0)
            i++;
        if (c->gpu_type_list[i] == NULL) {
            snprintf(err, errlen, "gpu_weights names \"%.32s\", which is not in gpu_types", name);
            return -EINVAL;
        }
        if (!json_is_number(w) || json_number_value(w) <= 0 || json_number_value(w) > 1000) {
            snprintf(err, errlen, "gpu_weights.%.32s must be a number in (0, 1000]", name);
            return -EINVAL;
        }
        weights[i] = (int)(json_number_value(w) * 1000 + 0.5);
    }
    sync_gpu_types(c, weights);
    return 0;
}

static int load_category_factors(config *c, json_t *v, char *err, size_t errlen)
{
    const char *name;
    json_t *f;
    if (!json_is_object(v)) {
        snprintf(err, errlen, "category_factors must be an object like {\"sme\": 1.0}");
        return -EINVAL;
    }
    json_object_foreach(v, name, f)
    {
        policy_category cat;
        if (policy_category_parse(name, &cat) < 0) {
            snprintf(err, errlen,
                     "category_factors: unknown category \"%.32s\" (sme, researcher, institution)",
                     name);
            return -EINVAL;
        }
        if (!json_is_number(f) || json_number_value(f) < 0 || json_number_value(f) > 1) {
            snprintf(err, errlen, "category_factors.%s must be a number between 0 and 1", name);
            return -EINVAL;
        }
        c->policy.category_factor_milli[cat] = (int)(json_number_value(f) * 1000 + 0.5);
    }
    return 0;
}

/* Numeric policy keys. */
static const struct pkey {
    const char *name;
    size_t off;
    bool is_double;
    double min, max;
} pkeys[] = {
    {"fairshare_halflife_hours", offsetof(policy_config, fairshare_halflife_hours), true, 0.01,
     87600},
    {"priority_age_unit_hours", offsetof(policy_config, age_unit_hours), true, 0.01, 87600},
    {"priority_weight_fairshare", offsetof(policy_config, weight_fairshare), false, 0, 1e6},
    {"priority_weight_category", offsetof(policy_config, weight_category), false, 0, 1e6},
    {"priority_weight_age", offsetof(policy_config, weight_age), false, 0, 1e6},
    {"priority_weight_size", offsetof(policy_config, weight_size), false, 0, 1e6},
    {"cluster_window", offsetof(policy_config, cluster_window), false, 1, 100000},
};

/* Loads a numeric policy key. Returns 1 if `key` is one, 0 if not, -EINVAL on a bad value. */
static int load_policy_key(config *c, const char *key, json_t *v, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof pkeys / sizeof pkeys[0]; i++) {
        const struct pkey *k = &pkeys[i];
        if (strcmp(k->name, key) != 0) continue;
        double d = json_is_number(v) ? json_number_value(v) : -1e300;
        if (d < k->min || d > k->max || (!k->is_double && !json_is_integer(v))) {
            snprintf(err, errlen, "%s must be %s between %g and %g", key,
                     k->is_double ? "a number" : "an integer", k->min, k->max);
            return -EINVAL;
        }
        char *field = (char *)&c->policy + k->off;
        if (k->is_double)
            *(double *)field = d;
        else
            *(int *)field = (int)d;
        return 1;
    }
    return 0;
}

/* Copies a path, resolving a relative one against `base_dir`. */
static int set_path(char *dst, size_t len, const char *base_dir, const char *v)
{
    int n;
    if (v[0] == '/' || base_dir[0] == '\0')
        n = snprintf(dst, len, "%s", v);
    else
        n = snprintf(dst, len, "%s/%s", base_dir, v);
    return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

enum kind { K_STR, K_PATH, K_INT, K_UINT, K_SIZE, K_I64 };

struct key {
    const char *name;
    enum kind kind;
    size_t off;
    size_t len; /* string buffer size */
    long long min, max;
};

#define STR(f, k)                                                                                  \
    {                                                                                              \
#f, k, offsetof(config, f), sizeof(((config *)0)->f), 0, 0                                 \
    }
#define NUM(f, k, lo, hi)                                                                          \
    {                                                                                              \
#f, k, offsetof(config, f), 0, lo, hi                                                      \
    }

static const struct key keys[] = {
    STR(listen_host, K_STR),
    NUM(listen_port, K_INT, 0, 65535),
    STR(tls_cert, K_PATH),
    STR(tls_key, K_PATH),
    STR(database, K_PATH),
    STR(spool_dir, K_PATH),
    STR(slurm_conf, K_PATH),
    STR(partition, K_STR),
    NUM(poll_interval_ms, K_UINT, 50, 600000),
    STR(log_level, K_STR),
    STR(log_file, K_PATH),
    STR(audit_key_file, K_PATH),
    STR(audit_head_file, K_PATH),
    NUM(max_gpus, K_INT, 0, 1024),
    NUM(max_nodes, K_INT, 1, 100000),
    NUM(node_gpus, K_INT, 0, 1024),
    NUM(node_cpus, K_INT, 0, 100000),
    NUM(max_cpus, K_INT, 1, 100000),
    NUM(max_time_minutes, K_INT, 1, 525600),
    NUM(max_mem_mb, K_I64, 0, 1LL << 40),
    NUM(max_script_bytes, K_SIZE, 64, 64LL << 20),
    NUM(max_array_tasks, K_INT, 1, 100000),
    NUM(max_body_bytes, K_SIZE, 1024, 256LL << 20),
    NUM(max_header_bytes, K_SIZE, 1024, 1LL << 20),
    NUM(idle_timeout_ms, K_UINT, 100, 3600000),
    NUM(max_connections_per_peer, K_UINT, 1, 65536),
    NUM(handshake_timeout_ms, K_UINT, 100, 3600000),
    NUM(request_timeout_ms, K_UINT, 100, 3600000),
    NUM(max_unsent_bytes, K_SIZE, 16384, 1LL << 30),
    NUM(max_buffered_body_bytes, K_SIZE, 1024 * 1024, 16LL << 30),
    NUM(healthz_starved_ms, K_UINT, 100, 3600000),
    NUM(unix_uid_min, K_UINT, 0, 2147483647),
    NUM(auth_failures_per_minute, K_UINT, 0, 1000000),
    NUM(token_rate_per_second, K_UINT, 0, 1000000),
    NUM(token_burst, K_UINT, 1, 1000000),
    NUM(token_default_lifetime_days, K_UINT, 0, 36500),
    NUM(token_max_lifetime_days, K_UINT, 0, 36500),
    NUM(slurm_gpu_limits, K_INT, 0, 1),
    STR(metrics_access, K_STR),
    NUM(access_log, K_INT, 0, 1),
};

/* Reads an array of at most `max` non-empty strings under 64 chars into dst, with its
 * NULL-terminated view. */
static int load_names(const char *key, json_t *v, char (*dst)[64], const char **view, size_t max,
                      char *err, size_t errlen)
{
    size_t i;
    json_t *t;
    if (!json_is_array(v) || json_array_size(v) > max) {
        snprintf(err, errlen, "%s must be an array of at most %zu names", key, max);
        return -EINVAL;
    }
    json_array_foreach(v, i, t)
    {
        if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) >= 64) {
            snprintf(err, errlen, "%s[%zu] must be a non-empty string under 64 chars", key, i);
            return -EINVAL;
        }
        snprintf(dst[i], 64, "%s", json_string_value(t));
        view[i] = dst[i];
    }
    view[json_array_size(v)] = NULL;
    return 0;
}

static int partition_index(const config *c, const char *name)
{
    for (int i = 0; c->partition_list[i] != NULL; i++)
        if (strcmp(c->partition_list[i], name) == 0) return i;
    return -1;
}

/* "partner_partitions": {"partner": ["partition", ...]}: each a subset of "partitions" (read
 * after it). */
static int load_partner_partitions(config *c, json_t *v, char *err, size_t errlen)
{
    const char *partner;
    json_t *l;
    if (!json_is_object(v) || json_object_size(v) > CONFIG_MAX_PARTNER_PARTITIONS) {
        snprintf(err, errlen,
                 "partner_partitions must be an object of at most %d partners, each with an "
                 "array of partitions",
                 CONFIG_MAX_PARTNER_PARTITIONS);
        return -EINVAL;
    }
    c->n_partner_partitions = 0;
    json_object_foreach(v, partner, l)
    {
        config_partner_partitions *pp = &c->partner_partitions[c->n_partner_partitions];
        size_t i;
        json_t *t;
        if (strlen(partner) == 0 || strlen(partner) >= sizeof pp->partner || !json_is_array(l) ||
            json_array_size(l) == 0 || json_array_size(l) > CONFIG_MAX_PARTITIONS) {
            snprintf(err, errlen,
                     "partner_partitions.%.64s must be a non-empty array of partitions", partner);
            return -EINVAL;
        }
        snprintf(pp->partner, sizeof pp->partner, "%s", partner);
        json_array_foreach(l, i, t)
        {
            int k = json_is_string(t) ? partition_index(c, json_string_value(t)) : -1;
            if (k < 0) {
                snprintf(err, errlen, "partner_partitions.%.64s[%zu] must be one of \"partitions\"",
                         partner, i);
                return -EINVAL;
            }
            pp->list[i] = c->partition_list[k];
        }
        pp->list[json_array_size(l)] = NULL;
        c->n_partner_partitions++;
    }
    return 0;
}

const char *const *config_partitions_for(const config *c, const char *partner)
{
    for (int i = 0; partner != NULL && i < c->n_partner_partitions; i++)
        if (strcmp(c->partner_partitions[i].partner, partner) == 0)
            return c->partner_partitions[i].list;
    return c->partition_list;
}

const char *config_default_partition_for(const config *c, const char *partner)
{
    const char *const *l = config_partitions_for(c, partner);
    for (size_t i = 0; l[i] != NULL; i++)
        if (strcmp(l[i], c->partition) == 0) return c->partition;
    return l[0] != NULL ? l[0] : c->partition;
}

/* "metrics_access": "loopback" or "role:<role>". Returns 0 or -EINVAL with a message. */
static int metrics_access_check(const char *s, char *err, size_t errlen)
{
    static const char *const ok[] = {"loopback",   "role:user",  "role:manager",
                                     "role:staff", "role:admin", "role:auditor"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(s, ok[i]) == 0) return 0;
    snprintf(err, errlen,
             "metrics_access must be \"loopback\" or \"role:<role>\" with a role of user, "
             "manager, staff, admin or auditor (e.g. \"role:auditor\"), not \"%s\"",
             s);
    return -EINVAL;
}

/* "unix_deny": ["name", ...], Unix accounts never mapped to a user. */
static int load_unix_deny(config *c, json_t *v, char *err, size_t errlen)
{
    size_t i;
    json_t *t;
    if (!json_is_array(v) || json_array_size(v) > CONFIG_MAX_UNIX_DENY) {
        snprintf(err, errlen, "unix_deny must be an array of at most %d account names",
                 CONFIG_MAX_UNIX_DENY);
        return -EINVAL;
    }
    json_array_foreach(v, i, t)
    {
        if (!json_is_string(t) || json_string_length(t) == 0 ||
            json_string_length(t) >= sizeof c->unix_deny[0]) {
            snprintf(err, errlen, "unix_deny[%zu] must be a non-empty string under 64 chars", i);
            return -EINVAL;
        }
        snprintf(c->unix_deny[i], sizeof c->unix_deny[i], "%s", json_string_value(t));
        c->unix_deny_list[i] = c->unix_deny[i];
    }
    c->unix_deny_list[json_array_size(v)] = NULL;
    return 0;
}

static int load_gpu_types(config *c, json_t *v, char *err, size_t errlen)
{
    size_t i;
    json_t *t;
    if (!json_is_array(v) || json_array_size(v) > CONFIG_MAX_GPU_TYPES) {
        snprintf(err, errlen, "gpu_types must be an array of at most %d strings",
                 CONFIG_MAX_GPU_TYPES);
        return -EINVAL;
    }
    json_array_foreach(v, i, t)
    {
        if (!json_is_string(t) || json_string_length(t) == 0 ||
            json_string_length(t) >= sizeof c->gpu_types[0]) {
            snprintf(err, errlen, "gpu_types[%zu] must be a non-empty string under 32 chars", i);
            return -EINVAL;
        }
        snprintf(c->gpu_types[i], sizeof c->gpu_types[i], "%s", json_string_value(t));
        c->gpu_type_list[i] = c->gpu_types[i];
    }
    c->gpu_type_list[json_array_size(v)] = NULL;
    if (json_array_size(v) == 0) {
        snprintf(err, errlen, "gpu_types must name at least one GPU type");
        return -EINVAL;
    }
    sync_gpu_types(c, NULL);
    return 0;
}

static int load_key(config *c, const struct key *k, json_t *v, const char *base, char *err,
                    size_t errlen)
{
    char *field = (char *)c + k->off;
    if (k->kind == K_STR || k->kind == K_PATH) {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "%s must be a string", k->name);
            return -EINVAL;
        }
        const char *s = json_string_value(v);
        int rc = k->kind == K_PATH && s[0] != '\0'
                     ? set_path(field, k->len, base, s)
                     : (snprintf(field, k->len, "%s", s) >= (int)k->len ? -ENAMETOOLONG : 0);
        if (rc < 0) snprintf(err, errlen, "%s is too long (max %zu chars)", k->name, k->len - 1);
        return rc < 0 ? -EINVAL : 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < k->min || json_integer_value(v) > k->max) {
        snprintf(err, errlen, "%s must be an integer between %lld and %lld", k->name, k->min,
                 k->max);
        return -EINVAL;
    }
    long long n = json_integer_value(v);
    switch (k->kind) {
    case K_INT:
        *(int *)field = (int)n;
        break;
    case K_UINT:
        *(unsigned *)field = (unsigned)n;
        break;
    case K_SIZE:
        *(size_t *)field = (size_t)n;
        break;
    default:
        *(int64_t *)field = (int64_t)n;
        break;
    }
    return 0;
}

int config_load(const char *path, config *c, char *err, size_t errlen)
{
    json_error_t jerr;
    char base[PATH_MAX];
    const char *key;
    json_t *v;
    int rc = 0;

    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return errno == ENOENT ? -ENOENT : -EINVAL;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: the config must be a JSON object", path);
        rc = -EINVAL;
        goto out;
    }
    snprintf(base, sizeof base, "%s", path);
    char *slash = strrchr(base, '/');
    if (slash == NULL)
        base[0] = '\0';
    else if (slash == base)
        base[1] = '\0';
    else
        *slash = '\0';

    json_object_foreach(root, key, v)
    {
        char msg[256] = "";
        if (strcmp(key, "gpu_types") == 0) {
            rc = load_gpu_types(c, v, msg, sizeof msg);
        } else if (strcmp(key, "gpu_weights") == 0) {
            continue; /* after gpu_types, below */
        } else if (strcmp(key, "partner_partitions") == 0 || strcmp(key, "partitions") == 0) {
            continue; /* after partition, below */
        } else if (strcmp(key, "export_deny") == 0) {
            rc = load_names(key, v, c->export_deny, c->export_deny_list, CONFIG_MAX_EXPORT_DENY,
                            msg, sizeof msg);
        } else if (strcmp(key, "unix_deny") == 0) {
            rc = load_unix_deny(c, v, msg, sizeof msg);
        } else if (strcmp(key, "category_factors") == 0) {
            rc = load_category_factors(c, v, msg, sizeof msg);
        } else if ((rc = load_policy_key(c, key, v, msg, sizeof msg)) != 0) {
            rc = rc < 0 ? rc : 0;
        } else {
            const struct key *k = NULL;
            for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
                if (strcmp(keys[i].name, key) == 0) k = &keys[i];
            if (k == NULL) {
                snprintf(msg, sizeof msg, "unknown key \"%s\"; see deploy/antennad.example.json",
                         key);
                rc = -EINVAL;
            } else {
                rc = load_key(c, k, v, base, msg, sizeof msg);
            }
        }
        if (rc < 0) {
            snprintf(err, errlen, "%s: %s", path, msg);
            goto out;
        }
    }
    if ((v = json_object_get(root, "gpu_weights")) != NULL) {
        char msg[256] = "";
        if ((rc = load_gpu_weights(c, v, msg, sizeof msg)) < 0) {
            snprintf(err, errlen, "%s: %s", path, msg);
            goto out;
        }
    }
    {
        char msg[256] = "";
        if ((v = json_object_get(root, "partitions")) != NULL) {
            rc = load_names("partitions", v, c->partitions, c->partition_list,
                            CONFIG_MAX_PARTITIONS, msg, sizeof msg);
            if (rc == 0 && (c->partition_list[0] == NULL || partition_index(c, c->partition) < 0)) {
                snprintf(msg, sizeof msg,
                         "partitions must list at least the default partition \"%s\"",
                         c->partition);
                rc = -EINVAL;
            }
        } else {
            snprintf(c->partitions[0], sizeof c->partitions[0], "%s", c->partition);
            c->partition_list[0] = c->partitions[0];
            c->partition_list[1] = NULL;
        }
        if (rc == 0 && (v = json_object_get(root, "partner_partitions")) != NULL)
            rc = load_partner_partitions(c, v, msg, sizeof msg);
        if (rc < 0) {
            snprintf(err, errlen, "%s: %s", path, msg);
            goto out;
        }
    }
    c->policy.max_gpus_per_job = c->max_gpus > 0 ? c->max_gpus : 1;
    {
        char msg[256] = "";
        if ((rc = metrics_access_check(c->metrics_access, msg, sizeof msg)) < 0) {
            snprintf(err, errlen, "%s: %s", path, msg);
            goto out;
        }
    }
    if (c->token_max_lifetime_days > 0 &&
        (c->token_default_lifetime_days == 0 ||
         c->token_default_lifetime_days > c->token_max_lifetime_days)) {
        snprintf(err, errlen,
                 "%s: token_default_lifetime_days must be between 1 and token_max_lifetime_days "
                 "(%u)",
                 path, c->token_max_lifetime_days);
        rc = -EINVAL;
    }
out:
    json_decref(root);
    return rc;
}
