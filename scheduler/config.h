/* config.h - antennad's configuration: a JSON file read once at start.
 *
 * Never reads the file more than once per call and never keeps a reference to it. Unknown keys
 * and wrong types are errors, so a typo never silently falls back to a default.
 */
#ifndef ANTENNA_CONFIG_H
#define ANTENNA_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define CONFIG_MAX_GPU_TYPES          8
#define CONFIG_MAX_UNIX_DENY          32
#define CONFIG_MAX_PARTITIONS         16
#define CONFIG_MAX_PARTNER_PARTITIONS 64
#define CONFIG_MAX_EXPORT_DENY        32

/* The partitions one partner may use ("partner_partitions": {"ulb": ["gpu", "debug"]}). */
typedef struct config_partner_partitions {
    char partner[64];
    const char *list[CONFIG_MAX_PARTITIONS + 1]; /* NULL-terminated, into config.partitions */
} config_partner_partitions;

typedef struct config {
    char listen_host[64];
    int listen_port;
    char tls_cert[PATH_MAX];
    char tls_key[PATH_MAX];
    char database[PATH_MAX];
    char spool_dir[PATH_MAX];  /* job work dirs and output files: spool_dir/jobs/<id>/ */
    char slurm_conf[PATH_MAX]; /* "" = SLURM_CONF from the environment */
    char partition[64];
    unsigned poll_interval_ms;
    char log_level[16];
    char log_file[PATH_MAX];        /* "" = stderr */
    char audit_key_file[PATH_MAX];  /* HMAC key of the audit chain: never in the database */
    char audit_head_file[PATH_MAX]; /* the chain's last seq and hash, outside the database */
    /* limits on one job */
    int max_gpus;
    int max_cpus;
    int max_time_minutes;
    int64_t max_mem_mb;
    size_t max_script_bytes;
    int max_array_tasks; /* tasks per job array (sbatch --array); default 1000 */
    char gpu_types[CONFIG_MAX_GPU_TYPES][32];
    const char *gpu_type_list[CONFIG_MAX_GPU_TYPES + 1]; /* NULL-terminated view of gpu_types */
    int max_nodes;                                       /* nodes per job */
    int node_gpus, node_cpus; /* one node's GPUs and CPUs (for --exclusive); 0 = unknown */
    /* partitions: "partitions" lists those jobs may ask (default: [partition]); "partition" is
     * the default and must be one of them; "partner_partitions" narrows the list per partner */
    char partitions[CONFIG_MAX_PARTITIONS][64];
    const char *partition_list[CONFIG_MAX_PARTITIONS + 1]; /* NULL-terminated view */
    config_partner_partitions partner_partitions[CONFIG_MAX_PARTNER_PARTITIONS];
    int n_partner_partitions;
    /* "export_deny": more --export names refused (an entry ending in '*' is a prefix), beyond
     * LD_*, SLURM_* and ANTENNA_* */
    char export_deny[CONFIG_MAX_EXPORT_DENY][64];
    const char *export_deny_list[CONFIG_MAX_EXPORT_DENY + 1];
    /* HTTP */
    size_t max_body_bytes;
    size_t max_header_bytes;
    unsigned idle_timeout_ms;
    unsigned max_connections_per_peer; /* open connections per client IP address */
    unsigned handshake_timeout_ms;     /* a TLS handshake must be done by then */
    unsigned request_timeout_ms;       /* a request must be complete this long after its start */
    size_t max_unsent_bytes;           /* per connection: unsent answers above it pause reading */
    size_t max_buffered_body_bytes;    /* request bodies being received, all connections */
    unsigned healthz_starved_ms;       /* /healthz: degraded when a request waits this to start */
    /* GET /metrics: "loopback" (peers on 127.0.0.0/8 or ::1, no token; the default) or
     * "role:<role>" (a bearer token of that role: user, manager, staff, admin or auditor) */
    char metrics_access[32];
    int access_log; /* 1 (default): one INFO "access ..." line per answered request; 0: none */
    /* accounts and authentication */
    unsigned unix_uid_min;                                /* 0 = UID_MIN of /etc/login.defs */
    char unix_deny[CONFIG_MAX_UNIX_DENY][64];             /* Unix accounts never mapped to a user */
    const char *unix_deny_list[CONFIG_MAX_UNIX_DENY + 1]; /* NULL-terminated view of unix_deny */
    unsigned auth_failures_per_minute;    /* per peer address, then 429; 0 = no limit */
    unsigned token_rate_per_second;       /* requests per token (token bucket); 0 = no limit */
    unsigned token_burst;                 /* the bucket's size */
    unsigned token_default_lifetime_days; /* a new token's lifetime when none is asked; 0 = never */
    unsigned token_max_lifetime_days;     /* the longest a token may be asked for; 0 = no maximum */
    /* 1: each partner's GPU budget of the current month is mirrored on its Slurm account as
     * GrpTRESMins=gres/gpu=<budget in GPU-minutes> (needs slurmdbd); 0 (default): not */
    int slurm_gpu_limits;
    /* policies: billing weights ("gpu_weights": {"h100": 1.0}), priority and the cluster window.
     * policy.gpu_types mirrors gpu_types (weight 1.0 unless gpu_weights says otherwise). */
    policy_config policy;
} config;

/* Fills `c` with the defaults (listen 127.0.0.1:8443, partition "gpu", poll 1000 ms, 8 GPUs,
 * 32 CPUs, 7 days, 256 GiB, 256 KiB scripts, 1 MiB bodies, 16 KiB headers, 32 connections per
 * peer, 5 s handshakes, 10 s requests, 1 MiB unsent per connection, 64 MiB of bodies being
 * received, /healthz starved after 5 s, gpu types: h100 at weight 1.0, the policy defaults of
 * policy_config_defaults; UID_MIN from /etc/login.defs, no deny list, 20 failed authentications
 * per peer and minute, 100 requests per second per token with bursts of 200, tokens valid 90
 * days by default and 365 at most, /metrics from loopback peers only). */
void config_defaults(config *c);

/* Reads the JSON file at `path` over the defaults. Relative paths inside it are resolved against
 * the file's directory. Returns 0, or -EINVAL/-ENOENT with a message in err naming the key and
 * what it must be. */
int config_load(const char *path, config *c, char *err, size_t errlen);

/* The partitions a job of `partner` may ask (NULL-terminated, owned by c): the partner's
 * "partner_partitions" entry, else every one of "partitions". */
const char *const *config_partitions_for(const config *c, const char *partner);

/* The partition a job of `partner` runs in when it asks none: "partition" when the partner may
 * use it, else the first of its list. Owned by c. */
const char *config_default_partition_for(const config *c, const char *partner);

#endif
