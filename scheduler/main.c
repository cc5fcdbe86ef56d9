/* main.c - antennad: the Antenna broker's entry point (serve, bootstrap).
 *
 * Wires the modules together and owns their lifecycles; never does request or Slurm work itself.
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "account.h"
#include "api.h"
#include "audit.h"
#include "auth.h"
#include "broker.h"
#include "config.h"
#include "http_server.h"
#include "log.h"
#include "reconciler.h"
#include "registry.h"
#include "fault.h"
#include "slurm_adapter.h"
#include "store.h"

#define ANTENNAD_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: antennad [serve] --config FILE [--accept-audit-head]\n"
            "       antennad bootstrap --config FILE [--user NAME] [--partner NAME] "
            "[--unix-user ACCOUNT]\n"
            "       antennad audit-verify --config FILE\n"
            "       antennad --version | --help\n"
            "\n"
            "serve      run the broker (HTTPS API, Slurm dispatch and polling) in the foreground;\n"
            "           it refuses to start when the audit head file and the chain disagree:\n"
            "           --accept-audit-head, after an investigation, accepts the chain as it is\n"
            "           (recorded as an audit.head_accepted entry)\n"
            "bootstrap  create the first admin user (default: admin, partner sustain, Unix\n"
            "           account nobody) and print a new admin token on stdout\n"
            "audit-verify  check the audit trail's hash chain offline; exit 0 when intact, 1\n"
            "           naming the first entry modified, deleted, inserted or reordered\n");
}

struct daemon {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    config cfg;
    store *st;
    audit *audit;
    registry *reg;
    slurm_adapter *sa;
    http_server *srv;
    api *api;
    broker *br;
    reconciler *rec;
    int stopping;
};

/* The HTTP server has answered (and flushed) every request in flight: stop the broker. */
static void on_http_stopped(void *arg)
{
    struct daemon *d = arg;
    LOG(LOG_INFO, "every request in flight answered; stopping the broker");
    reconciler_close(d->rec);
    broker_close(d->br, NULL, NULL);
}

/* SIGTERM/SIGINT: stop accepting, let the requests in flight finish and flush their answers
 * (at most SHUTDOWN_GRACE_MS), then stop the broker after its tick; the registry commits what
 * was handed to it before antennad exits. */
#define SHUTDOWN_GRACE_MS 10000
static void on_signal(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;
    if (d->stopping++) return;
    LOG(LOG_INFO, "signal %d: shutting down (requests in flight get %d ms to finish)", signum,
        SHUTDOWN_GRACE_MS);
    http_server_shutdown(d->srv, SHUTDOWN_GRACE_MS, on_http_stopped, d);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
}

static int load_config(const char *path, config *cfg)
{
    char err[512];
    config_defaults(cfg);
    if (path == NULL) {
        fprintf(stderr, "antennad: --config FILE is required (see deploy/antennad.example.json)\n");
        return -EINVAL;
    }
    if (config_load(path, cfg, err, sizeof err) < 0) {
        fprintf(stderr, "antennad: config: %s\n", err);
        return -EINVAL;
    }
    return 0;
}

/* Start-up check of the audit head file against the chain (see docs/API.md, "Audit
 * checkpoints"): 0 to go on (with *accepted set when a mismatch was accepted), 1 to refuse. */
static int audit_head_gate(audit *au, bool accept, audit_head_report *hr, bool *accepted)
{
    int rc = audit_head_check(au, hr);
    *accepted = false;
    if (rc < 0) {
        LOG(LOG_ERROR, "cannot compare the audit head file with the chain: %s", hr->problem);
        return 1;
    }
    if (hr->ok) return 0;
    if (accept) {
        LOG(LOG_WARN,
            "audit: %s (head file at %lld, chain at %lld); accepted with --accept-audit-head",
            hr->problem, (long long)hr->head_seq, (long long)hr->chain_seq);
        *accepted = true;
        return 0;
    }
    LOG(LOG_ERROR,
        "audit: the head file and the chain disagree: %s (head file at %lld, chain at %lld). "
        "antennad does not add to a trail that may have been cut. Investigate (antennad "
        "audit-verify --config FILE; antenna audit verify --checkpoint with your last kept "
        "checkpoint), then start once with --accept-audit-head to accept the chain as it is",
        hr->problem, (long long)hr->head_seq, (long long)hr->chain_seq);
    return 1;
}

static int serve(const char *config_path, bool accept_head)
{
    audit_head_report hr;
    bool accepted = false;
    struct daemon d;
    char err[512] = "";
    int rc;
    memset(&d, 0, sizeof d);
    if (load_config(config_path, &d.cfg) < 0) return 2;
    if (log_level_set(d.cfg.log_level) < 0) {
        fprintf(stderr, "antennad: config: log_level must be debug, info, warn or error\n");
        return 2;
    }
    if (d.cfg.log_file[0] && (rc = log_file_set(d.cfg.log_file)) < 0) {
        fprintf(stderr, "antennad: cannot open log file %s: %s\n", d.cfg.log_file, strerror(-rc));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Submissions wait on a worker thread for their group commit: give the pool room for many
     * at once (libuv reads this at its first use). */
    setenv("UV_THREADPOOL_SIZE", "64", 0);
    /* Many worker threads would each get a malloc arena that keeps what it freed: a few arenas
     * keep the memory antennad holds close to what it uses. */
    mallopt(M_ARENA_MAX, 2);
    if (fault_init() < 0) {
        LOG(LOG_ERROR, "ANTENNA_FAULT is malformed: use point or point:n");
        return 2;
    }
    if (mkdir(d.cfg.spool_dir, 0711) < 0 && errno != EEXIST) {
        LOG(LOG_ERROR, "cannot create spool_dir %s: %s", d.cfg.spool_dir, strerror(errno));
        return 1;
    }
    if ((rc = store_new(d.cfg.database, &d.st, err, sizeof err)) < 0) {
        LOG(LOG_ERROR, "cannot open the database %s: %s", d.cfg.database, err);
        goto fail_store;
    }
    if ((rc = audit_new(d.st, d.cfg.audit_key_file, d.cfg.audit_head_file, &d.audit, err,
                        sizeof err)) < 0) {
        LOG(LOG_ERROR, "cannot open the audit trail: %s", err);
        goto fail_audit;
    }
    if (audit_head_gate(d.audit, accept_head, &hr, &accepted) != 0) goto fail_policy;
    registry_options ro = {.policy = &d.cfg.policy, .audit = d.audit};
    if ((rc = registry_new(d.st, &ro, &d.reg, err, sizeof err)) < 0) {
        LOG(LOG_ERROR, "cannot start the registry: %s", err);
        goto fail_policy;
    }
    if (accepted) {
        registry_actor who = {.actor = "antennad", .partner = ""};
        char details[512];
        json_t *o = json_pack("{s:I,s:I,s:s}", "head_seq", (json_int_t)hr.head_seq, "chain_seq",
                              (json_int_t)hr.chain_seq, "problem", hr.problem);
        char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        snprintf(details, sizeof details, "%s", text ? text : "{}");
        free(text);
        json_decref(o);
        if ((rc = registry_audit(d.reg, &who, "audit.head_accepted", details)) < 0) {
            LOG(LOG_ERROR, "cannot record audit.head_accepted: %s", strerror(-rc));
            goto fail_slurm;
        }
    }
    if ((rc = slurm_adapter_new(d.cfg.slurm_conf[0] ? d.cfg.slurm_conf : NULL, &d.sa, err,
                                sizeof err)) < 0) {
        LOG(LOG_ERROR, "cannot initialise libslurm: %s", err);
        goto fail_slurm;
    }
    if ((rc = uv_loop_init(&d.loop)) < 0) goto fail_loop;
    broker_options bo = {.partition = d.cfg.partition,
                         .spool_dir = d.cfg.spool_dir,
                         .poll_interval_ms = d.cfg.poll_interval_ms,
                         .cluster_window = d.cfg.policy.cluster_window,
                         .gpu_limits = d.cfg.slurm_gpu_limits != 0};
    if ((rc = broker_new(&d.loop, d.reg, d.sa, &bo, &d.br)) < 0) goto fail_broker;
    reconciler_source rs = reconciler_source_slurm(d.br);
    reconciler_options rco = {.partition = d.cfg.partition};
    if ((rc = reconciler_new(&d.loop, d.reg, &rs, &rco, &d.rec)) < 0) goto fail_reconciler;
    api_options ao = {.limits = {.max_gpus = d.cfg.max_gpus,
                                 .max_cpus = d.cfg.max_cpus,
                                 .max_time_minutes = d.cfg.max_time_minutes,
                                 .max_mem_mb = d.cfg.max_mem_mb,
                                 .max_script_bytes = d.cfg.max_script_bytes,
                                 .gpu_types = d.cfg.gpu_type_list[0] ? d.cfg.gpu_type_list : NULL,
                                 .max_nodes = d.cfg.max_nodes,
                                 .node_gpus = d.cfg.node_gpus,
                                 .node_cpus = d.cfg.node_cpus,
                                 .export_deny = d.cfg.export_deny_list},
                      .site = &d.cfg,
                      .spool_dir = d.cfg.spool_dir,
                      .audit = d.audit,
                      .starved_after_ms = d.cfg.healthz_starved_ms,
                      .reconciler = d.rec,
                      .max_array_tasks = d.cfg.max_array_tasks};
    /* accounts and authentication (login.defs is read here, once, before the loop runs) */
    char slurm_user[64] = "";
    if (slurm_adapter_slurm_user(d.sa, slurm_user, sizeof slurm_user) < 0) slurm_user[0] = '\0';
    ao.accounts.uid_min = d.cfg.unix_uid_min ? d.cfg.unix_uid_min : account_uid_min_read(NULL);
    ao.accounts.slurm_user = slurm_user;
    ao.accounts.deny = d.cfg.unix_deny_list;
    ao.auth_failures_per_minute = d.cfg.auth_failures_per_minute;
    ao.token_rate_per_second = d.cfg.token_rate_per_second;
    ao.token_burst = d.cfg.token_burst;
    ao.token_default_lifetime_s = (int64_t)d.cfg.token_default_lifetime_days * 86400;
    ao.token_max_lifetime_s = (int64_t)d.cfg.token_max_lifetime_days * 86400;
    ao.metrics_access = d.cfg.metrics_access;
    LOG(LOG_INFO, "accounts: uid >= %u, SlurmUser %s and munge refused", ao.accounts.uid_min,
        slurm_user[0] ? slurm_user : "(unknown)");
    if ((rc = api_new(&d.loop, d.reg, d.br, &ao, &d.api)) < 0) goto fail_api;
    http_server_options ho = {.host = d.cfg.listen_host,
                              .port = d.cfg.listen_port,
                              .cert_file = d.cfg.tls_cert,
                              .key_file = d.cfg.tls_key,
                              .max_header_bytes = d.cfg.max_header_bytes,
                              .max_body_bytes = d.cfg.max_body_bytes,
                              .idle_timeout_ms = d.cfg.idle_timeout_ms,
                              .no_access_log = d.cfg.access_log == 0,
                              .max_connections_per_peer = d.cfg.max_connections_per_peer,
                              .handshake_timeout_ms = d.cfg.handshake_timeout_ms,
                              .request_timeout_ms = d.cfg.request_timeout_ms,
                              .max_unsent_bytes = d.cfg.max_unsent_bytes,
                              .max_buffered_body_bytes = d.cfg.max_buffered_body_bytes,
                              .on_headers = api_headers};
    if ((rc = http_server_new(&d.loop, &ho, api_handle, d.api, &d.srv, err, sizeof err)) < 0) {
        LOG(LOG_ERROR, "cannot serve HTTPS on %s:%d: %s", d.cfg.listen_host, d.cfg.listen_port,
            err);
        goto fail_http;
    }
    uv_signal_init(&d.loop, &d.sigint);
    uv_signal_init(&d.loop, &d.sigterm);
    d.sigint.data = d.sigterm.data = &d;
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    if ((rc = broker_start(d.br)) < 0) goto fail_start;
    if ((rc = reconciler_start(d.rec)) < 0) goto fail_start;
    LOG(LOG_INFO, "antennad %s listening on https://%s:%d (instance %s, partition %s)",
        ANTENNAD_VERSION, d.cfg.listen_host, http_server_port(d.srv), store_instance_id(d.st),
        d.cfg.partition);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    LOG(LOG_INFO, "antennad stopped");
    api_free(d.api);
    uv_loop_close(&d.loop);
    slurm_adapter_free(d.sa);
    registry_free(d.reg);
    audit_free(d.audit);
    store_free(d.st);
    return 0;

fail_start:
    uv_close((uv_handle_t *)&d.sigint, NULL);
    uv_close((uv_handle_t *)&d.sigterm, NULL);
    http_server_close(d.srv, NULL, NULL);
fail_http:
    api_free(d.api);
fail_api:
    reconciler_close(d.rec);
fail_reconciler:
    broker_close(d.br, NULL, NULL);
fail_broker:
    uv_run(&d.loop, UV_RUN_DEFAULT);
    uv_loop_close(&d.loop);
fail_loop:
    slurm_adapter_free(d.sa);
fail_slurm:
    registry_free(d.reg);
fail_policy:
    audit_free(d.audit);
fail_audit:
    store_free(d.st);
fail_store:
    return 1;
}

/* Offline check of the audit chain. Exit 0 when it verifies, 1 when broken, 2 on errors. */
static int audit_verify_cmd(const char *config_path)
{
    config cfg;
    char err[512] = "";
    store *st = NULL;
    audit_report r;
    if (load_config(config_path, &cfg) < 0) return 2;
    if (store_new(cfg.database, &st, err, sizeof err) < 0) {
        fprintf(stderr, "antennad: cannot open the database %s: %s\n", cfg.database, err);
        return 2;
    }
    int rc = audit_verify(st, cfg.audit_key_file, cfg.audit_head_file, &r);
    store_free(st);
    if (rc < 0) {
        fprintf(stderr, "antennad: audit-verify: %s\n", r.problem);
        return 2;
    }
    if (r.ok) {
        printf("audit trail OK: %lld entries verified (head file at %lld)\n", (long long)r.entries,
               (long long)r.head_seq);
        return 0;
    }
    printf("audit trail BROKEN at entry %lld: %s\n", (long long)r.first_bad, r.problem);
    return 1;
}

static int bootstrap(const char *config_path, const char *user, const char *partner,
                     const char *unix_user)
{
    config cfg;
    char err[512] = "", token[AUTH_TOKEN_LEN + 1], hash[AUTH_HASH_HEX_LEN + 1];
    store *st = NULL;
    audit *au = NULL;
    registry *reg = NULL;
    int64_t token_id = 0;
    store_user u;
    int rc;

    if (load_config(config_path, &cfg) < 0) return 2;
    account_rules rules = {.uid_min =
                               cfg.unix_uid_min ? cfg.unix_uid_min : account_uid_min_read(NULL),
                           .deny = cfg.unix_deny_list};
    if (account_check(&rules, unix_user, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "antennad: bootstrap: %s; pass --unix-user with such an account\n", err);
        return 2;
    }
    if ((rc = store_new(cfg.database, &st, err, sizeof err)) < 0) {
        fprintf(stderr, "antennad: cannot open the database %s: %s\n", cfg.database, err);
        return 1;
    }
    if (audit_new(st, cfg.audit_key_file, cfg.audit_head_file, &au, err, sizeof err) < 0) {
        fprintf(stderr, "antennad: bootstrap: cannot open the audit trail: %s\n", err);
        store_free(st);
        return 1;
    }
    registry_options ro = {.policy = &cfg.policy, .audit = au};
    if ((rc = registry_new(st, &ro, &reg, err, sizeof err)) < 0) {
        fprintf(stderr, "antennad: bootstrap: %s\n", err);
        audit_free(au);
        store_free(st);
        return 1;
    }
    registry_actor who = {.actor = "antennad-bootstrap", .partner = partner};
    rc = registry_partner_create(reg, &who, partner, "sustAIn.brussels operators", 1, NULL);
    if (rc < 0 && rc != -EEXIST) goto fail;
    rc = registry_user_create(reg, &who, user, partner, unix_user, "admin", "institution", &u);
    if (rc == -EEXIST) rc = store_user_get(st, user, &u);
    if (rc < 0) goto fail;
    if (strcmp(u.role, "admin") != 0) {
        fprintf(stderr, "antennad: bootstrap: user '%s' exists and is not an admin\n", user);
        registry_free(reg);
        audit_free(au);
        store_free(st);
        return 2;
    }
    if ((rc = auth_token_generate(token, sizeof token)) < 0 ||
        (rc = auth_token_hash(token, hash, sizeof hash)) < 0 ||
        (rc = registry_token_create(reg, &who, u.id, u.partner, hash, "bootstrap", &token_id)) < 0)
        goto fail;
    registry_free(reg);
    audit_free(au);
    store_free(st);
    printf("%s\n", token);
    fprintf(stderr, "antennad: admin token created for user '%s' (partner '%s')\n", user, partner);
    return 0;
fail:
    fprintf(stderr, "antennad: bootstrap failed: %s\n", strerror(-rc));
    registry_free(reg);
    audit_free(au);
    store_free(st);
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"user", required_argument, NULL, 'u'},
                                         {"partner", required_argument, NULL, 'p'},
                                         {"unix-user", required_argument, NULL, 'U'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"accept-audit-head", no_argument, NULL, 'A'},
                                         {NULL, 0, NULL, 0}};
    const char *config_path = NULL, *user = "admin", *partner = "sustain", *unix_user = "nobody";
    const char *cmd = "serve";
    bool accept_head = false;
    int c;
    if (argc > 1 && argv[1][0] != '-') {
        cmd = argv[1];
        argv++;
        argc--;
    }
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'p':
            partner = optarg;
            break;
        case 'U':
            unix_user = optarg;
            break;
        case 'A':
            accept_head = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("antennad %s\n", ANTENNAD_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "antennad: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "serve") == 0) return serve(config_path, accept_head);
    if (strcmp(cmd, "bootstrap") == 0) return bootstrap(config_path, user, partner, unix_user);
    if (strcmp(cmd, "audit-verify") == 0) return audit_verify_cmd(config_path);
    fprintf(stderr, "antennad: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
