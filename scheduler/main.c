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
            "usage: antennad [serve] --config FILE\n"
            "       antennad bootstrap --config FILE [--user NAME] [--partner NAME] "
            "[--unix-user ACCOUNT]\n"
            "       antennad audit-verify --config FILE\n"
            "       antennad --version | --help\n"
            "\n"
            "serve      run the broker (HTTPS API, Slurm dispatch and polling) in the foreground\n"
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

static int serve(const char *config_path)
{
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
    registry_options ro = {.policy = &d.cfg.policy, .audit = d.audit};
    if ((rc = registry_new(d.st, &ro, &d.reg, err, sizeof err)) < 0) {
        LOG(LOG_ERROR, "cannot start the registry: %s", err);
        goto fail_policy;
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
                         .cluster_window = d.cfg.policy.cluster_window};
    if ((rc = broker_new(&d.loop, d.reg, d.sa, &bo, &d.br)) < 0) goto fail_broker;
    reconciler_source rs = reconciler_source_slurm(d.br);
    reconciler_options rco = {.partition = d.cfg.partition};
    if ((rc = reconciler_new(&d.loop, d.reg, &rs, &rco, &d.rec)) < 0) goto fail_reconciler;
    api_options ao = {.limits = {.max_gpus = d.cfg.max_gpus,
                                 .max_cpus = d.cfg.max_cpus,
                                 .max_time_minutes = d.cfg.max_time_minutes,
                                 .max_mem_mb = d.cfg.max_mem_mb,
                                 .max_script_bytes = d.cfg.max_script_bytes,
                                 .gpu_types = d.cfg.gpu_type_list[0] ? d.cfg.gpu_type_list : NULL},
                      .spool_dir = d.cfg.spool_dir,
                      .audit = d.audit,
                      .reconciler = d.rec};
    if ((rc = api_new(&d.loop, d.reg, d.br, &ao, &d.api)) < 0) goto fail_api;
    http_server_options ho = {.host = d.cfg.listen_host,
                              .port = d.cfg.listen_port,
                              .cert_file = d.cfg.tls_cert,
                              .key_file = d.cfg.tls_key,
                              .max_header_bytes = d.cfg.max_header_bytes,
                              .max_body_bytes = d.cfg.max_body_bytes,
                              .idle_timeout_ms = d.cfg.idle_timeout_ms};
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
    struct passwd *pw;
    int rc;

    if (load_config(config_path, &cfg) < 0) return 2;
    pw = getpwnam(unix_user);
    if (pw == NULL || pw->pw_uid == 0) {
        fprintf(stderr,
                "antennad: bootstrap: Unix account '%s' %s; pass --unix-user with an "
                "unprivileged account\n",
                unix_user, pw == NULL ? "does not exist" : "is root");
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
                                         {NULL, 0, NULL, 0}};
    const char *config_path = NULL, *user = "admin", *partner = "sustain", *unix_user = "nobody";
    const char *cmd = "serve";
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
    if (strcmp(cmd, "serve") == 0) return serve(config_path);
    if (strcmp(cmd, "bootstrap") == 0) return bootstrap(config_path, user, partner, unix_user);
    if (strcmp(cmd, "audit-verify") == 0) return audit_verify_cmd(config_path);
    fprintf(stderr, "antennad: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
