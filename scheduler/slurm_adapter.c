/* slurm_adapter.c - antennad's only door to Slurm, through libslurm RPCs. Never spawns a Slurm
 * command, never logs, never submits a job as root. */
#include "slurm_adapter.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ctype.h>
#include <pthread.h>
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <slurm/slurmdb.h>

/* libslurm's own allocator's free (exported, not declared in slurm.h): see job_table_free. */
extern void slurm_xfree(void **item);

#define DEFAULT_SLURM_CONF "/etc/slurm/slurm.conf"
#define JOB_PATH           "/usr/local/bin:/usr/bin:/bin"

struct slurm_adapter {
    time_t last_update; /* update time of the last successful poll; 0 = none */
    /* the accounting of record, under db_mu */
    pthread_mutex_t db_mu;
    void *db;             /* slurmdb connection, opened on first use; NULL = none */
    int acct_mode;        /* 0 = not known yet, 1 = slurmdbd, -1 = no slurmdbd */
    char cluster[64];     /* ClusterName */
    uint32_t gpu_tres_id; /* the id slurmdbd gave gres/gpu; 0 = not known yet */
};

/* libslurm keeps process-wide state: one adapter at a time. */
static atomic_bool adapter_exists;

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies src (NULL = "") into dst of size n, truncating. */
static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

/* True for errors that say Slurm could not be reached or is busy: worth retrying later. */
static bool slurm_errno_transient(int e)
{
    if (e > 0 && e < 1000) return true; /* a system errno: ECONNREFUSED, ETIMEDOUT, EINTR... */
    switch (e) {
    case SLURM_COMMUNICATIONS_CONNECTION_ERROR:
    case SLURM_COMMUNICATIONS_SEND_ERROR:
    case SLURM_COMMUNICATIONS_RECEIVE_ERROR:
    case SLURM_COMMUNICATIONS_SHUTDOWN_ERROR:
    case SLURM_COMMUNICATIONS_MISSING_SOCKET_ERROR:
    case SLURM_PROTOCOL_AUTHENTICATION_ERROR:
    case SLURMCTLD_COMMUNICATIONS_CONNECTION_ERROR:
    case SLURMCTLD_COMMUNICATIONS_SEND_ERROR:
    case SLURMCTLD_COMMUNICATIONS_RECEIVE_ERROR:
    case SLURMCTLD_COMMUNICATIONS_SHUTDOWN_ERROR:
    case SLURM_PROTOCOL_SOCKET_IMPL_ZERO_RECV_LENGTH:
    case SLURM_PROTOCOL_SOCKET_IMPL_NEGATIVE_RECV_LENGTH:
    case SLURM_PROTOCOL_SOCKET_IMPL_NOT_ALL_DATA_SENT:
    case ESLURM_PROTOCOL_INCOMPLETE_PACKET:
    case SLURM_PROTOCOL_SOCKET_IMPL_TIMEOUT:
    case SLURM_PROTOCOL_SOCKET_ZERO_BYTES_SENT:
    case ESLURM_AUTH_NET_ERROR:               /* munged unreachable */
    case ESLURM_AUTH_UNABLE_TO_SIGN:          /* munged refused to sign */
    case ESLURM_IN_STANDBY_MODE:              /* backup controller not in charge yet */
    case ESLURM_ERROR_ON_DESC_TO_RECORD_COPY: /* "Unable to create job record, try again" */
    case ESLURM_NODES_BUSY:
    case ESLURM_PORTS_BUSY:
    case ESLURM_SUBMISSIONS_DISABLED:
    case ESLURM_IN_STANDBY_USE_BACKUP:
        return true;
    default:
        return false;
    }
}

/* True for errors after which a request may have reached slurmctld and been carried out: the
 * answer was lost or never came (a receive error or timeout), as opposed to a connection that
 * never opened or a request that was never fully sent. */
static bool submit_outcome_unknown(int e)
{
    switch (e) {
    case ETIMEDOUT:
    case SLURM_COMMUNICATIONS_RECEIVE_ERROR:
    case SLURMCTLD_COMMUNICATIONS_RECEIVE_ERROR:
    case SLURM_COMMUNICATIONS_SHUTDOWN_ERROR:
    case SLURMCTLD_COMMUNICATIONS_SHUTDOWN_ERROR:
    case SLURM_PROTOCOL_SOCKET_IMPL_TIMEOUT:
    case SLURM_PROTOCOL_SOCKET_IMPL_ZERO_RECV_LENGTH:
    case SLURM_PROTOCOL_SOCKET_IMPL_NEGATIVE_RECV_LENGTH:
    case ESLURM_PROTOCOL_INCOMPLETE_PACKET:
        return true;
    default:
        return false;
    }
}

/* Slurm's names for wait reasons (as squeue shows them). */
static const char *const reason_names[] = {
    [WAIT_NO_REASON] = "",
    [WAIT_PRIORITY] = "Priority",
    [WAIT_DEPENDENCY] = "Dependency",
    [WAIT_RESOURCES] = "Resources",
    [WAIT_PART_NODE_LIMIT] = "PartitionNodeLimit",
    [WAIT_PART_TIME_LIMIT] = "PartitionTimeLimit",
    [WAIT_PART_DOWN] = "PartitionDown",
    [WAIT_PART_INACTIVE] = "PartitionInactive",
    [WAIT_HELD] = "JobHeldAdmin",
    [WAIT_HELD_USER] = "JobHeldUser",
    [WAIT_TIME] = "BeginTime",
    [WAIT_LICENSES] = "Licenses",
    [WAIT_ASSOC_JOB_LIMIT] = "AssociationJobLimit",
    [WAIT_ASSOC_RESOURCE_LIMIT] = "AssociationResourceLimit",
    [WAIT_ASSOC_TIME_LIMIT] = "AssociationTimeLimit",
    [WAIT_RESERVATION] = "Reservation",
    [WAIT_NODE_NOT_AVAIL] = "ReqNodeNotAvail",
    [WAIT_FRONT_END] = "FrontEndDown",
    [FAIL_DEFER] = "SchedDefer",
    [FAIL_DOWN_PARTITION] = "PartitionDown",
    [FAIL_DOWN_NODE] = "NodeDown",
    [FAIL_BAD_CONSTRAINTS] = "BadConstraints",
    [FAIL_SYSTEM] = "SystemFailure",
    [FAIL_LAUNCH] = "JobLaunchFailure",
    [FAIL_EXIT_CODE] = "NonZeroExitCode",
    [FAIL_TIMEOUT] = "TimeLimit",
    [FAIL_INACTIVE_LIMIT] = "InactiveLimit",
    [FAIL_ACCOUNT] = "InvalidAccount",
    [FAIL_QOS] = "InvalidQOS",
    [WAIT_QOS_THRES] = "QOSUsageThreshold",
    [WAIT_QOS_JOB_LIMIT] = "QOSJobLimit",
    [WAIT_QOS_RESOURCE_LIMIT] = "QOSResourceLimit",
    [WAIT_QOS_TIME_LIMIT] = "QOSTimeLimit",
    [WAIT_CLEANING] = "Cleaning",
    [WAIT_PROLOG] = "Prolog",
    [WAIT_QOS] = "QOSNotAllowed",
    [WAIT_ACCOUNT] = "AccountNotAllowed",
    [WAIT_DEP_INVALID] = "DependencyNeverSatisfied",
    [WAIT_MAX_REQUEUE] = "launch failed requeued held",
    [WAIT_ARRAY_TASK_LIMIT] = "JobArrayTaskLimit",
    [WAIT_BURST_BUFFER_RESOURCE] = "BurstBufferResources",
    [WAIT_BURST_BUFFER_STAGING] = "BurstBufferStageIn",
    [FAIL_BURST_BUFFER_OP] = "BurstBufferOperation",
    [WAIT_POWER_NOT_AVAIL] = "PowerNotAvail",
    [WAIT_POWER_RESERVED] = "PowerReserved",
};

/* Slurm's name for a wait reason, "" for none. */
static const char *reason_name(unsigned r)
{
    if (r < sizeof reason_names / sizeof reason_names[0] && reason_names[r] != NULL)
        return reason_names[r];
    /* The many per-limit QOS/association reasons (QOSMaxGRESPerUser, ...). */
    if (r >= WAIT_QOS_GRP_CPU && r <= WAIT_QOS_MIN_CPU) return "QOSLimit";
    if (r >= WAIT_ASSOC_GRP_CPU && r <= WAIT_ASSOC_MAX_SUB_JOB) return "AssociationLimit";
    return "Other";
}

/* The broker's names for job states (job_state & JOB_STATE_BASE). */
static const char *const state_names[] = {
    [JOB_PENDING] = "pending",     [JOB_RUNNING] = "running",     [JOB_SUSPENDED] = "suspended",
    [JOB_COMPLETE] = "completed",  [JOB_CANCELLED] = "cancelled", [JOB_FAILED] = "failed",
    [JOB_TIMEOUT] = "timeout",     [JOB_NODE_FAIL] = "node_fail", [JOB_PREEMPTED] = "preempted",
    [JOB_BOOT_FAIL] = "boot_fail", [JOB_DEADLINE] = "deadline",   [JOB_OOM] = "out_of_memory",
};

static const char *state_name(uint32_t job_state)
{
    uint32_t base = job_state & JOB_STATE_BASE;
    if (base < sizeof state_names / sizeof state_names[0] && state_names[base] != NULL)
        return state_names[base];
    return "failed";
}

static bool state_finished(uint32_t job_state)
{
    uint32_t base = job_state & JOB_STATE_BASE;
    return base >= JOB_COMPLETE && base < JOB_END;
}

int slurm_adapter_new(const char *conf_path, slurm_adapter **out, char *err, size_t errlen)
{
    slurm_adapter *a;
    const char *path = conf_path;
    bool expected = false;

    if (out == NULL) {
        set_err(err, errlen, "slurm_adapter_new: no place for the result");
        return -EINVAL;
    }
    *out = NULL;
    if (path == NULL || path[0] == '\0') path = getenv("SLURM_CONF");
    if (path == NULL || path[0] == '\0') path = DEFAULT_SLURM_CONF;
    /* libslurm exits the process on a missing configuration: check first. */
    if (access(path, R_OK) != 0) {
        int e = errno;
        set_err(err, errlen,
                "cannot read the Slurm configuration %s: %s (set slurm_conf or SLURM_CONF to the "
                "cluster's slurm.conf)",
                path, strerror(e));
        return e == ENOENT ? -ENOENT : -EACCES;
    }
    if (!atomic_compare_exchange_strong(&adapter_exists, &expected, true)) {
        set_err(err, errlen, "a Slurm adapter already exists in this process; free it first");
        return -EBUSY;
    }
    a = calloc(1, sizeof *a);
    if (a == NULL) {
        set_err(err, errlen, "out of memory");
        goto fail_alloc;
    }
    pthread_mutex_init(&a->db_mu, NULL);
    slurm_init(path);
    *out = a;
    return 0;

fail_alloc:
    atomic_store(&adapter_exists, false);
    return -ENOMEM;
}

void slurm_adapter_free(slurm_adapter *a)
{
    if (a == NULL) return;
    if (a->db != NULL) slurmdb_connection_close(&a->db);
    pthread_mutex_destroy(&a->db_mu);
    slurm_fini();
    free(a);
    atomic_store(&adapter_exists, false);
}

/* Maps the Slurm error of the last failed call to a negative errno and writes `what: message`. */
static int slurm_fail(const char *what, char *err, size_t errlen)
{
    int e = slurm_get_errno();
    const char *msg = slurm_strerror(e);
    if (slurm_errno_transient(e)) {
        set_err(err, errlen, "%s: Slurm is unreachable or busy: %s", what, msg ? msg : "?");
        return -EAGAIN;
    }
    set_err(err, errlen, "%s: %s", what, msg ? msg : "unknown Slurm error");
    return -EINVAL;
}

static bool is_abs(const char *p)
{
    return p != NULL && p[0] == '/';
}

/* A GPU type goes into a TRES string: letters, digits, '_', '-', '.' only. */
static bool valid_gpu_type(const char *t)
{
    if (strlen(t) > 64) return false;
    for (const char *p = t; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* The Slurm account name for `name` into out[len]: lowercased (slurmdbd keeps names lowercase);
 * letters, digits, '_', '-', '.' only. Returns 0 or -EINVAL. The one place that names accounts. */
static int account_key(const char *name, char *out, size_t len)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= len) return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isalnum(c) || c == '_' || c == '-' || c == '.')) return -EINVAL;
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    return 0;
}

static int check_request(const slurm_adapter_submit_req *req, char *err, size_t errlen)
{
    if (req->uid == 0 || req->gid == 0) {
        set_err(err, errlen,
                "refusing to run a job as root (uid %u, gid %u): map the user to an unprivileged "
                "account",
                (unsigned)req->uid, (unsigned)req->gid);
        return -EPERM;
    }
    if (req->script == NULL || strncmp(req->script, "#!", 2) != 0) {
        set_err(err, errlen, "the batch script must start with \"#!\" (e.g. #!/bin/bash)");
        return -EINVAL;
    }
    if (!is_abs(req->work_dir) || !is_abs(req->stdout_path)) {
        set_err(err, errlen, "work_dir and stdout_path must be absolute paths");
        return -EINVAL;
    }
    if (req->gpus < 0 || req->cpus_per_task < 0 || req->cpus_per_task > 65000 || req->mem_mb < 0 ||
        req->mem_mb > ((int64_t)1 << 40) || req->time_minutes < 0) {
        set_err(
            err, errlen,
            "gpus, cpus_per_task (at most 65000), mem_mb and time_minutes must not be negative");
        return -EINVAL;
    }
    if (req->gpu_type != NULL && !valid_gpu_type(req->gpu_type)) {
        set_err(err, errlen, "GPU type '%s' may hold only letters, digits, '_', '-' and '.'",
                req->gpu_type);
        return -EINVAL;
    }
    return 0;
}

/* The minimal environment of a batch job (Slurm refuses a batch job without one): PATH, HOME,
 * USER, LOGNAME, SLURM_CPUS_PER_TASK (as sbatch sets it), ANTENNA_JOB_TAG. Slurm adds its own
 * SLURM_* variables (SLURM_JOB_ID, CUDA_VISIBLE_DEVICES, ...). */
struct job_env {
    char path[64], home[4096 + 8], user[256 + 8], logname[256 + 12], tag[512], cpus[48];
    char array[6][48]; /* SLURM_ARRAY_* of an array task */
    char *vars[13];
    uint32_t n;
};

static int job_env_build(struct job_env *env, const slurm_adapter_submit_req *req, char *err,
                         size_t errlen)
{
    struct passwd pw, *res = NULL;
    long bufsize = sysconf(_SC_GETPW_R_SIZE_MAX);
    char *buf;
    int rc;

    if (bufsize < 16384) bufsize = 16384;
    buf = malloc((size_t)bufsize);
    if (buf == NULL) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    rc = getpwuid_r(req->uid, &pw, buf, (size_t)bufsize, &res);
    if (rc != 0 || res == NULL) {
        set_err(
            err, errlen,
            "no Unix account has uid %u on this machine: create it (deploy/ensure-unix-user.sh)",
            (unsigned)req->uid);
        free(buf);
        return -EINVAL;
    }
    env->n = 0;
    snprintf(env->path, sizeof env->path, "PATH=%s", JOB_PATH);
    env->vars[env->n++] = env->path;
    snprintf(env->home, sizeof env->home, "HOME=%s", pw.pw_dir ? pw.pw_dir : "/");
    env->vars[env->n++] = env->home;
    snprintf(env->user, sizeof env->user, "USER=%s", pw.pw_name);
    env->vars[env->n++] = env->user;
    snprintf(env->logname, sizeof env->logname, "LOGNAME=%s", pw.pw_name);
    env->vars[env->n++] = env->logname;
    if (req->cpus_per_task > 0) {
        /* As sbatch exports it: srun in the job and the job itself read it. */
        snprintf(env->cpus, sizeof env->cpus, "SLURM_CPUS_PER_TASK=%d", req->cpus_per_task);
        env->vars[env->n++] = env->cpus;
    }
    if (req->tag != NULL) {
        snprintf(env->tag, sizeof env->tag, "ANTENNA_JOB_TAG=%s", req->tag);
        env->vars[env->n++] = env->tag;
    }
    if (req->array_job_id > 0) {
        snprintf(env->array[0], sizeof env->array[0], "SLURM_ARRAY_JOB_ID=%lld",
                 (long long)req->array_job_id);
        snprintf(env->array[1], sizeof env->array[1], "SLURM_ARRAY_TASK_ID=%d", req->array_task_id);
        snprintf(env->array[2], sizeof env->array[2], "SLURM_ARRAY_TASK_COUNT=%d",
                 req->array_task_count);
        snprintf(env->array[3], sizeof env->array[3], "SLURM_ARRAY_TASK_MIN=%d",
                 req->array_task_min);
        snprintf(env->array[4], sizeof env->array[4], "SLURM_ARRAY_TASK_MAX=%d",
                 req->array_task_max);
        snprintf(env->array[5], sizeof env->array[5], "SLURM_ARRAY_TASK_STEP=%d",
                 req->array_task_step);
        for (int i = 0; i < 6; i++)
            env->vars[env->n++] = env->array[i];
    }
    env->vars[env->n] = NULL;
    free(buf);
    return 0;
}

/* "gres:gpu[:TYPE]:N" into buf. */
static void gpu_tres(char *buf, size_t len, const char *type, long long n)
{
    if (type != NULL && type[0] != '\0')
        snprintf(buf, len, "gres:gpu:%s:%lld", type, n);
    else
        snprintf(buf, len, "gres:gpu:%lld", n);
}

/* The environment: Antenna's own variables (those the request does not name) and then the
 * request's NAME=value items, into a malloc'd NULL-terminated array *out (caller frees). */
static int env_merge(const struct job_env *env, const char *const *extra, char ***out)
{
    size_t n = 0;
    while (extra != NULL && extra[n] != NULL)
        n++;
    char **v = calloc(env->n + n + 1, sizeof *v);
    if (v == NULL) return -ENOMEM;
    size_t k = 0;
    for (uint32_t i = 0; i < env->n; i++) {
        const char *eq = strchr(env->vars[i], '=');
        size_t nl = eq ? (size_t)(eq - env->vars[i]) : strlen(env->vars[i]);
        bool replaced = false;
        for (size_t e = 0; e < n && !replaced; e++)
            replaced = strncmp(extra[e], env->vars[i], nl) == 0 && extra[e][nl] == '=';
        if (!replaced) v[k++] = env->vars[i];
    }
    for (size_t e = 0; e < n; e++)
        v[k++] = (char *)extra[e];
    v[k] = NULL;
    *out = v;
    return 0;
}

/* Fills desc with the sbatch options of req (issue 9); the buffers hold the TRES strings desc
 * points to. *envv (malloc'd) is the job's environment. Returns 0 or -EINVAL / -ENOMEM. */
static int submit_options_apply(job_desc_msg_t *desc, const slurm_adapter_submit_req *req,
                                const struct job_env *env, char ***envv, char *tres_node,
                                size_t tn_len, char *tres_task, size_t tt_len, char *cpus_tres,
                                size_t ct_len, char *mem_tres, size_t mt_len, char *err,
                                size_t errlen)
{
    if (req->nodes_min < 0 || req->nodes_max < req->nodes_min || req->ntasks < 0 ||
        req->ntasks_per_node < 0 || req->ntasks_per_node > 65000 || req->gpus_per_node < 0 ||
        req->gpus_per_task < 0 || req->cpus_per_gpu < 0 || req->mem_per_gpu_mb < 0 ||
        req->mem_per_cpu_mb < 0 || req->signal < 0 || req->signal > 64 || req->signal_seconds < 0 ||
        req->signal_seconds > 65535) {
        set_err(err, errlen,
                "nodes, tasks, per-node/per-task GPUs and memory must not be negative");
        return -EINVAL;
    }
    if (req->nodes_max > 0) {
        desc->min_nodes = (uint32_t)req->nodes_min;
        desc->max_nodes = (uint32_t)req->nodes_max;
    }
    bool multi = req->nodes_max > 1;
    /* As sbatch does: the task count (ntasks, else ntasks_per_node on each of the least nodes,
     * else one per node) and min_cpus = tasks x CPUs per task. Without min_cpus, 22.05 gives a
     * job of 3 tasks 1 CPU, and with --gpus-per-task=1 1 GPU (measured). */
    if (req->ntasks > 0 || req->ntasks_per_node > 0 || req->nodes_max > 0) {
        int nodes = req->nodes_min > 0 ? req->nodes_min : 1;
        int64_t tasks = req->ntasks > 0            ? req->ntasks
                        : req->ntasks_per_node > 0 ? (int64_t)req->ntasks_per_node * nodes
                                                   : nodes;
        int64_t cpt = req->cpus_per_gpu > 0 ? 1 : req->cpus_per_task > 0 ? req->cpus_per_task : 1;
        if (tasks > 1000000 || tasks * cpt > 100000000) {
            set_err(err, errlen, "too many tasks or CPUs for one job");
            return -EINVAL;
        }
        desc->num_tasks = (uint32_t)tasks;
        desc->min_cpus = (uint32_t)(tasks * cpt);
    }
    if (req->ntasks_per_node > 0) desc->ntasks_per_node = (uint16_t)req->ntasks_per_node;
    if (req->gpus > 0 && multi) { /* the job's total, wherever Slurm puts them */
        gpu_tres(tres_node, tn_len, req->gpu_type, req->gpus);
        desc->tres_per_node = NULL;
        desc->tres_per_job = tres_node;
    }
    if (req->gpus_per_node > 0) {
        gpu_tres(tres_node, tn_len, req->gpu_type, req->gpus_per_node);
        desc->tres_per_node = tres_node;
    }
    if (req->gpus_per_task > 0) {
        gpu_tres(tres_task, tt_len, req->gpu_type, req->gpus_per_task);
        desc->tres_per_task = tres_task;
    }
    if (req->cpus_per_gpu > 0) {
        snprintf(cpus_tres, ct_len, "gres:gpu:%d", req->cpus_per_gpu);
        desc->cpus_per_tres = cpus_tres;
        desc->cpus_per_task = NO_VAL16;
    }
    if (req->mem_per_gpu_mb > 0) {
        snprintf(mem_tres, mt_len, "gres:gpu:%lld", (long long)req->mem_per_gpu_mb);
        desc->mem_per_tres = mem_tres;
    }
    if (req->mem_per_cpu_mb > 0) desc->pn_min_memory = (uint64_t)req->mem_per_cpu_mb | MEM_PER_CPU;
    if (req->stderr_path != NULL && req->stderr_path[0] != '\0') {
        if (!is_abs(req->stderr_path)) {
            set_err(err, errlen, "stderr_path must be an absolute path");
            return -EINVAL;
        }
        desc->std_err = (char *)req->stderr_path;
    }
    if (req->signal > 0) {
        desc->warn_signal = (uint16_t)req->signal;
        desc->warn_time = (uint16_t)req->signal_seconds;
        desc->warn_flags = req->signal_batch_only ? KILL_JOB_BATCH : 0;
    }
    if (req->exclusive) desc->shared = JOB_SHARED_NONE;
    if (req->constraint != NULL && req->constraint[0] != '\0')
        desc->features = (char *)req->constraint;
    if (req->requeue == 0 || req->requeue == 1) desc->requeue = (uint16_t)req->requeue;
    if (req->comment != NULL && req->comment[0] != '\0') desc->comment = (char *)req->comment;
    if (env_merge(env, req->env, envv) < 0) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    uint32_t n = 0;
    while ((*envv)[n] != NULL)
        n++;
    desc->environment = *envv;
    desc->env_size = n;
    return 0;
}

int slurm_adapter_submit(slurm_adapter *a, const slurm_adapter_submit_req *req, uint32_t *job_id,
                         char *err, size_t errlen)
{
    job_desc_msg_t desc;
    submit_response_msg_t *resp = NULL;
    struct job_env env;
    char tres[128] = "";
    int rc;

    if (a == NULL || req == NULL || job_id == NULL) {
        set_err(err, errlen, "slurm_adapter_submit: missing argument");
        return -EINVAL;
    }
    *job_id = 0;
    if ((rc = check_request(req, err, errlen)) < 0) return rc;
    if ((rc = job_env_build(&env, req, err, errlen)) < 0) return rc;

    slurm_init_job_desc_msg(&desc);
    desc.name = (char *)(req->name && req->name[0] ? req->name : "antenna-job");
    desc.script = (char *)req->script;
    desc.partition = (char *)(req->partition && req->partition[0] ? req->partition : NULL);
    desc.work_dir = (char *)req->work_dir;
    desc.std_out = (char *)req->stdout_path;
    desc.std_err = (char *)req->stdout_path;
    /* Root may set AdminComment at submit (22.05.8, checked): the tag is there from the start,
     * where the job's user cannot change it. desc.comment stays unset: it is the user's. */
    desc.admin_comment = (char *)req->tag;
    char account[64];
    if (req->account != NULL && req->account[0] != '\0') {
        if (account_key(req->account, account, sizeof account) < 0) {
            set_err(err, errlen, "Slurm account '%s' is not a valid account name", req->account);
            return -EINVAL;
        }
        desc.account = account;
    }
    desc.user_id = (uint32_t)req->uid;
    desc.group_id = (uint32_t)req->gid;
    desc.environment = env.vars;
    desc.env_size = env.n;
    desc.min_nodes = 1;
    desc.max_nodes = 1;
    desc.num_tasks = 1;
    desc.requeue = 0; /* the broker decides what happens after a node failure */
    if (req->cpus_per_task > 0) desc.cpus_per_task = (uint16_t)req->cpus_per_task;
    if (req->mem_mb > 0) desc.pn_min_memory = (uint64_t)req->mem_mb;
    if (req->time_minutes > 0) desc.time_limit = (uint32_t)req->time_minutes;
    /* Slurm's own ids ("afterok:101,afternotok:102"), made by registry_job_slurm_dependency */
    if (req->dependency && req->dependency[0]) desc.dependency = (char *)req->dependency;
    if (req->gpus > 0) {
        if (req->gpu_type != NULL && req->gpu_type[0] != '\0')
            snprintf(tres, sizeof tres, "gres:gpu:%s:%d", req->gpu_type, req->gpus);
        else
            snprintf(tres, sizeof tres, "gres:gpu:%d", req->gpus);
        desc.tres_per_node = tres;
    }

    char tres_task[128] = "", cpus_tres[64] = "", mem_tres[64] = "";
    char **envv = NULL;
    if ((rc = submit_options_apply(&desc, req, &env, &envv, tres, sizeof tres, tres_task,
                                   sizeof tres_task, cpus_tres, sizeof cpus_tres, mem_tres,
                                   sizeof mem_tres, err, errlen)) < 0)
        return rc;
    rc = slurm_submit_batch_job(&desc, &resp);
    int keep = errno; /* slurm_get_errno reads errno */
    free(envv);
    errno = keep;
    if (rc != SLURM_SUCCESS) {
        int e = slurm_get_errno();
        if (submit_outcome_unknown(e)) {
            const char *msg = slurm_strerror(e);
            set_err(err, errlen,
                    "no answer from Slurm to the submission (%s): it may have been accepted",
                    msg ? msg : "?");
            slurm_free_submit_response_response_msg(resp);
            return -ETIMEDOUT;
        }
        rc = slurm_fail("Slurm refused the job", err, errlen);
        slurm_free_submit_response_response_msg(resp);
        return rc;
    }
    if (resp == NULL || resp->job_id == 0) {
        set_err(err, errlen, "Slurm accepted the job but returned no job id");
        slurm_free_submit_response_response_msg(resp);
        return -EIO;
    }
    *job_id = resp->job_id;
    slurm_free_submit_response_response_msg(resp);
    return 0;
}

static void job_convert(const slurm_job_info_t *src, slurm_adapter_job *dst)
{
    bool finished = state_finished(src->job_state);
    /* A job cancelled while pending gets start = end times but never had nodes. */
    bool ran = src->nodes != NULL && src->nodes[0] != '\0' &&
               (src->job_state & JOB_STATE_BASE) != JOB_PENDING;

    memset(dst, 0, sizeof *dst);
    dst->job_id = src->job_id;
    copy_str(dst->tag, sizeof dst->tag, src->admin_comment);
    copy_str(dst->state, sizeof dst->state, state_name(src->job_state));
    if ((src->job_state & JOB_STATE_BASE) == JOB_PENDING)
        copy_str(dst->reason, sizeof dst->reason, reason_name(src->state_reason));
    dst->submit_time = src->submit_time > 0 ? (int64_t)src->submit_time : 0;
    dst->start_time = ran && src->start_time > 0 ? (int64_t)src->start_time : 0;
    dst->end_time = finished && src->end_time > 0 ? (int64_t)src->end_time : 0;
    dst->restarts = (int)src->restart_cnt;
    if (finished && ran) {
        int status = (int)src->exit_code;
        dst->has_exit_code = true;
        if (WIFSIGNALED(status))
            dst->exit_code = 128 + WTERMSIG(status);
        else
            dst->exit_code = WEXITSTATUS(status);
    }
}

/* Frees a loaded job table. libslurm 22.05.8's slurm_free_job_info_msg leaves every job's
 * admin_comment allocated (seen with LeakSanitizer: one leak per tagged job per full poll, which a
 * daemon polling for months cannot afford): free it first (slurm_xfree sets it to NULL, so a
 * libslurm that does free it never sees it twice). */
static void job_table_free(job_info_msg_t *msg)
{
    if (msg == NULL) return;
    for (uint32_t i = 0; i < msg->record_count; i++)
        slurm_xfree((void **)&msg->job_array[i].admin_comment);
    slurm_free_job_info_msg(msg);
}

int slurm_adapter_poll(slurm_adapter *a, const char *tag_prefix, slurm_adapter_follows_fn follows,
                       void *arg, slurm_adapter_job **jobs, size_t *n, bool *changed, char *err,
                       size_t errlen)
{
    job_info_msg_t *msg = NULL;
    slurm_adapter_job *out;
    size_t plen, count = 0;

    if (jobs != NULL) *jobs = NULL;
    if (n != NULL) *n = 0;
    if (changed != NULL) *changed = false;
    if (a == NULL || tag_prefix == NULL || jobs == NULL || n == NULL || changed == NULL) {
        set_err(err, errlen, "slurm_adapter_poll: missing argument");
        return -EINVAL;
    }
    if (slurm_load_jobs(a->last_update, &msg, SHOW_ALL) != SLURM_SUCCESS) {
        if (slurm_get_errno() == SLURM_NO_CHANGE_IN_DATA) return 0;
        int rc = slurm_fail("cannot load Slurm's job table", err, errlen);
        return rc == -EINVAL ? -EIO : rc;
    }
    plen = strlen(tag_prefix);
    /* Always a valid array, even when no job matches. */
    out = calloc(msg->record_count ? msg->record_count : 1, sizeof *out);
    if (out == NULL) {
        set_err(err, errlen, "out of memory for %" PRIu32 " jobs", msg->record_count);
        job_table_free(msg);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < msg->record_count; i++) {
        const slurm_job_info_t *j = &msg->job_array[i];
        bool tagged = j->admin_comment != NULL && strncmp(j->admin_comment, tag_prefix, plen) == 0;
        if (!tagged && (follows == NULL || !follows(arg, j->job_id))) continue;
        job_convert(j, &out[count++]);
    }
    a->last_update = msg->last_update;
    job_table_free(msg);
    *jobs = out;
    *n = count;
    *changed = true;
    return 0;
}

void slurm_adapter_poll_reset(slurm_adapter *a)
{
    if (a != NULL) a->last_update = 0;
}

int slurm_adapter_cancel(slurm_adapter *a, uint32_t job_id, char *err, size_t errlen)
{
    if (a == NULL || job_id == 0) {
        set_err(err, errlen, "slurm_adapter_cancel: no job id");
        return -EINVAL;
    }
    if (slurm_kill_job(job_id, SIGKILL, 0) == SLURM_SUCCESS) return 0;
    int e = slurm_get_errno();
    if (e == ESLURM_ALREADY_DONE) {
        set_err(err, errlen, "Slurm job %" PRIu32 " has already finished", job_id);
        return -EALREADY;
    }
    if (e == ESLURM_INVALID_JOB_ID) {
        set_err(err, errlen, "Slurm no longer knows job %" PRIu32, job_id);
        return -ENOENT;
    }
    return slurm_fail("cannot cancel the Slurm job", err, errlen);
}

int slurm_adapter_partition_size(slurm_adapter *a, const char *partition, int *cpus, int *nodes,
                                 char *err, size_t errlen)
{
    partition_info_msg_t *msg = NULL;
    if (a == NULL || cpus == NULL || nodes == NULL) {
        set_err(err, errlen, "slurm_adapter_partition_size: missing argument");
        return -EINVAL;
    }
    if (slurm_load_partitions((time_t)0, &msg, SHOW_ALL) != SLURM_SUCCESS)
        return slurm_fail("cannot read Slurm's partitions", err, errlen);
    int rc = -ENOENT;
    for (uint32_t i = 0; i < msg->record_count; i++) {
        const partition_info_t *p = &msg->partition_array[i];
        bool want = partition && partition[0] ? p->name && strcmp(p->name, partition) == 0
                                              : (p->flags & PART_FLAG_DEFAULT) != 0;
        if (!want) continue;
        *cpus = (int)p->total_cpus;
        *nodes = (int)p->total_nodes;
        rc = 0;
        break;
    }
    if (rc < 0)
        set_err(err, errlen, "Slurm has no partition %s",
                partition && partition[0] ? partition : "(default)");
    slurm_free_partition_info_msg(msg);
    return rc;
}

/* slurm_init() parses slurm.conf into libslurm's global slurm_conf (exported by libslurm, declared
 * only in its private headers). */
extern slurm_conf_t slurm_conf;

int slurm_adapter_slurm_user(const slurm_adapter *a, char *name, size_t len)
{
    if (a == NULL || name == NULL || len == 0) return -EINVAL;
    const char *u = slurm_conf.slurm_user_name;
    int n = snprintf(name, len, "%s", u && u[0] ? u : "root");
    return n < 0 || (size_t)n >= len ? -EINVAL : 0;
}

/* --- the accounting of record ------------------------------------------------------------- */

/* Learns (once) whether the cluster has slurmdbd, and its name. db_mu held. Returns 0, -ENOTSUP,
 * -EAGAIN. */
static int acct_known(slurm_adapter *a, char *err, size_t errlen)
{
    if (a->acct_mode > 0) return 0;
    if (a->acct_mode < 0) goto none;
    slurm_conf_t *cf = NULL;
    if (slurm_load_ctl_conf((time_t)0, &cf) != SLURM_SUCCESS) {
        int rc = slurm_fail("cannot read slurmctld's configuration", err, errlen);
        return rc == -EINVAL ? -EAGAIN : rc;
    }
    bool dbd = cf->accounting_storage_type != NULL &&
               strstr(cf->accounting_storage_type, "slurmdbd") != NULL;
    copy_str(a->cluster, sizeof a->cluster, cf->cluster_name);
    slurm_free_ctl_conf(cf);
    a->acct_mode = dbd && a->cluster[0] != '\0' ? 1 : -1;
    if (a->acct_mode > 0) return 0;
none:
    set_err(err, errlen,
            "the cluster has no slurmdbd (AccountingStorageType is not accounting_storage/"
            "slurmdbd): no accounting of record");
    return -ENOTSUP;
}

/* Drops the connection after a failed call: the next call opens a new one. db_mu held. */
static int db_fail(slurm_adapter *a, const char *what, char *err, size_t errlen)
{
    int e = slurm_get_errno();
    const char *msg = slurm_strerror(e);
    if (a->db != NULL) slurmdb_connection_close(&a->db);
    a->db = NULL;
    set_err(err, errlen, "%s: %s", what, msg && e ? msg : "slurmdbd did not answer");
    return -EAGAIN;
}

/* The open connection to slurmdbd (opened here when none). db_mu held. Returns 0, -ENOTSUP,
 * -EAGAIN. */
static int db_open(slurm_adapter *a, char *err, size_t errlen)
{
    int rc = acct_known(a, err, errlen);
    if (rc < 0) return rc;
    if (a->db != NULL) {
        /* slurmdbd serves a connection from one database transaction: end it (nothing of ours
         * is uncommitted here), so that what follows reads what slurmdbd committed since */
        if (slurmdb_connection_commit(a->db, false) != SLURM_SUCCESS)
            return db_fail(a, "slurmdbd did not answer", err, errlen);
        return 0;
    }
    uint16_t flags = 0;
    a->db = slurmdb_connection_get(&flags);
    if (a->db == NULL) return db_fail(a, "cannot reach slurmdbd", err, errlen);
    return 0;
}

/* The id slurmdbd gave gres/gpu (0 when it has none). db_mu held, connection open. */
static int gpu_tres_id(slurm_adapter *a, uint32_t *id, char *err, size_t errlen)
{
    if (a->gpu_tres_id != 0) {
        *id = a->gpu_tres_id;
        return 0;
    }
    slurmdb_tres_cond_t cond;
    memset(&cond, 0, sizeof cond);
    cond.type_list = slurm_list_create(NULL);
    cond.name_list = slurm_list_create(NULL);
    slurm_list_append(cond.type_list, "gres");
    slurm_list_append(cond.name_list, "gpu");
    List l = slurmdb_tres_get(a->db, &cond);
    slurm_list_destroy(cond.type_list);
    slurm_list_destroy(cond.name_list);
    if (l == NULL) return db_fail(a, "cannot read slurmdbd's TRES", err, errlen);
    ListIterator it = slurm_list_iterator_create(l);
    slurmdb_tres_rec_t *t;
    while ((t = slurm_list_next(it)) != NULL)
        if (t->type && strcmp(t->type, "gres") == 0 && t->name && strcmp(t->name, "gpu") == 0)
            a->gpu_tres_id = t->id;
    slurm_list_iterator_destroy(it);
    slurm_list_destroy(l);
    *id = a->gpu_tres_id;
    return 0;
}

/* slurmdbd's fixed id of the cpu TRES (gres ids are given at run time). */
#define TRES_ID_CPU 1

/* The count of TRES `id` in slurmdbd's "id=count,..." string, 0 when absent. */
static int64_t tres_count(const char *s, uint32_t id)
{
    if (s == NULL || id == 0) return 0;
    for (const char *p = s; *p;) {
        char *end;
        unsigned long long k = strtoull(p, &end, 10);
        if (end == p || *end != '=') return 0;
        long long v = strtoll(end + 1, &end, 10);
        if (k == id) return v > 0 ? v : 0;
        p = strchr(end, ',');
        if (p == NULL) break;
        p++;
    }
    return 0;
}

static void record_convert(const slurmdb_job_rec_t *r, uint32_t gpu_id, slurm_adapter_record *o)
{
    memset(o, 0, sizeof *o);
    o->job_id = r->jobid;
    copy_str(o->account, sizeof o->account, r->account);
    if (r->user != NULL && r->user[0] != '\0') {
        copy_str(o->user, sizeof o->user, r->user);
    } else {
        struct passwd pw, *res = NULL;
        char buf[4096];
        if (getpwuid_r((uid_t)r->uid, &pw, buf, sizeof buf, &res) == 0 && res != NULL)
            copy_str(o->user, sizeof o->user, pw.pw_name);
    }
    copy_str(o->partition, sizeof o->partition, r->partition);
    copy_str(o->admin_comment, sizeof o->admin_comment, r->admin_comment);
    copy_str(o->state, sizeof o->state, state_name(r->state));
    o->submit_time = r->submit > 0 ? (int64_t)r->submit : 0;
    o->start_time = r->start > 0 ? (int64_t)r->start : 0;
    o->requeued = (r->state & JOB_REQUEUE) != 0 && r->start > 0;
    o->end_time = r->end > 0 && (state_finished(r->state) || o->requeued) ? (int64_t)r->end : 0;
    o->elapsed_s = (int64_t)r->elapsed;
    const char *tres = r->tres_alloc_str && r->tres_alloc_str[0] ? r->tres_alloc_str : NULL;
    o->gpus = (int)tres_count(tres ? tres : r->tres_req_str, gpu_id);
    o->cpus = (int)tres_count(tres, TRES_ID_CPU);
    int status = (int)r->exitcode;
    o->exit_code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* Runs one job query (cond's cluster list set here) and converts its answer. db_mu held. */
static int jobs_query(slurm_adapter *a, slurmdb_job_cond_t *cond, int64_t from, int64_t to,
                      slurm_adapter_record **out, size_t *n, char *err, size_t errlen)
{
    uint32_t gpu_id = 0;
    int rc = db_open(a, err, errlen);
    if (rc == 0) rc = gpu_tres_id(a, &gpu_id, err, errlen);
    if (rc < 0) return rc;
    cond->cluster_list = slurm_list_create(NULL);
    slurm_list_append(cond->cluster_list, a->cluster);
    /* any scheduling flags (0 would select only jobs with none of them: no job) */
    cond->db_flags = SLURMDB_JOB_FLAG_NOTSET;
    List l = slurmdb_jobs_get(a->db, cond);
    slurm_list_destroy(cond->cluster_list);
    cond->cluster_list = NULL;
    if (l == NULL) return db_fail(a, "cannot read job records from slurmdbd", err, errlen);
    size_t cnt = (size_t)slurm_list_count(l), k = 0;
    slurm_adapter_record *v = calloc(cnt ? cnt : 1, sizeof *v);
    if (v == NULL) {
        slurm_list_destroy(l);
        set_err(err, errlen, "out of memory for %zu job records", cnt);
        return -ENOMEM;
    }
    ListIterator it = slurm_list_iterator_create(l);
    slurmdb_job_rec_t *r;
    while ((r = slurm_list_next(it)) != NULL && k < cnt) {
        record_convert(r, gpu_id, &v[k]);
        /* between: only jobs that ran at some time in [from, to) */
        if (to > 0 && (v[k].start_time == 0 || v[k].start_time >= to ||
                       (v[k].end_time != 0 && v[k].end_time < from)))
            continue;
        k++;
    }
    slurm_list_iterator_destroy(it);
    slurm_list_destroy(l);
    *out = v;
    *n = k;
    return 0;
}

int slurm_adapter_records_by_id(slurm_adapter *a, const uint32_t *ids, size_t n_ids,
                                slurm_adapter_record **out, size_t *n, char *err, size_t errlen)
{
    if (out != NULL) *out = NULL;
    if (n != NULL) *n = 0;
    if (a == NULL || out == NULL || n == NULL || (ids == NULL && n_ids > 0)) {
        set_err(err, errlen, "slurm_adapter_records_by_id: missing argument");
        return -EINVAL;
    }
    slurmdb_job_cond_t cond;
    memset(&cond, 0, sizeof cond);
    /* every job that carried an id (DUP), without steps, with its real times (NO_TRUNC); no
     * time window: job ids alone select */
    cond.flags = JOBCOND_FLAG_DUP | JOBCOND_FLAG_NO_STEP | JOBCOND_FLAG_NO_TRUNC;
    /* sacct -j's window: from the epoch to now (slurmdbd selects nothing with a zero end) */
    cond.usage_start = 0;
    cond.usage_end = time(NULL) + 1;
    cond.step_list = slurm_list_create(free);
    for (size_t i = 0; i < n_ids; i++) {
        slurm_selected_step_t *s = calloc(1, sizeof *s);
        if (s == NULL) {
            slurm_list_destroy(cond.step_list);
            set_err(err, errlen, "out of memory");
            return -ENOMEM;
        }
        s->array_task_id = NO_VAL;
        s->het_job_offset = NO_VAL;
        s->step_id.job_id = ids[i];
        s->step_id.step_id = NO_VAL;
        s->step_id.step_het_comp = NO_VAL;
        slurm_list_append(cond.step_list, s);
    }
    int rc = 0;
    pthread_mutex_lock(&a->db_mu);
    if (n_ids == 0) {
        rc = acct_known(a, err, errlen);
        if (rc == 0) *out = calloc(1, sizeof **out);
        if (rc == 0 && *out == NULL) rc = -ENOMEM;
    } else {
        rc = jobs_query(a, &cond, 0, 0, out, n, err, errlen);
    }
    pthread_mutex_unlock(&a->db_mu);
    slurm_list_destroy(cond.step_list);
    return rc;
}

int slurm_adapter_records_between(slurm_adapter *a, int64_t from, int64_t to,
                                  slurm_adapter_record **out, size_t *n, char *err, size_t errlen)
{
    if (out != NULL) *out = NULL;
    if (n != NULL) *n = 0;
    if (a == NULL || out == NULL || n == NULL || from < 0 || to <= from) {
        set_err(err, errlen, "slurm_adapter_records_between: give from < to (Unix seconds)");
        return -EINVAL;
    }
    slurmdb_job_cond_t cond;
    memset(&cond, 0, sizeof cond);
    cond.flags = JOBCOND_FLAG_DUP | JOBCOND_FLAG_NO_STEP | JOBCOND_FLAG_NO_TRUNC;
    cond.usage_start = (time_t)from;
    cond.usage_end = (time_t)to;
    pthread_mutex_lock(&a->db_mu);
    int rc = jobs_query(a, &cond, from, to, out, n, err, errlen);
    pthread_mutex_unlock(&a->db_mu);
    return rc;
}

void slurm_adapter_records_free(slurm_adapter_record *r)
{
    free(r);
}

/* Commits what the last add/modify did, or rolls it back. db_mu held. */
static int db_commit(slurm_adapter *a, int rc, char *err, size_t errlen)
{
    if (a->db == NULL) return rc; /* a failure dropped it: nothing to commit */
    if (slurmdb_connection_commit(a->db, rc == 0) != SLURM_SUCCESS && rc == 0)
        return db_fail(a, "slurmdbd did not commit the change", err, errlen);
    return rc;
}

/* The associations of `acct` on this cluster (user NULL: the account's own; else that user's).
 * Sets *found. db_mu held, connection open. */
static int assoc_exists(slurm_adapter *a, const char *acct, const char *user, bool *found,
                        char *err, size_t errlen)
{
    slurmdb_assoc_cond_t cond;
    memset(&cond, 0, sizeof cond);
    cond.cluster_list = slurm_list_create(NULL);
    cond.acct_list = slurm_list_create(NULL);
    cond.user_list = slurm_list_create(NULL);
    slurm_list_append(cond.cluster_list, a->cluster);
    slurm_list_append(cond.acct_list, (void *)acct);
    slurm_list_append(cond.user_list, (void *)(user ? user : ""));
    cond.without_parent_info = 1;
    cond.without_parent_limits = 1;
    List l = slurmdb_associations_get(a->db, &cond);
    slurm_list_destroy(cond.cluster_list);
    slurm_list_destroy(cond.acct_list);
    slurm_list_destroy(cond.user_list);
    if (l == NULL) return db_fail(a, "cannot read associations from slurmdbd", err, errlen);
    *found = false;
    ListIterator it = slurm_list_iterator_create(l);
    slurmdb_assoc_rec_t *r;
    while ((r = slurm_list_next(it)) != NULL) {
        bool user_ok = user ? (r->user && strcmp(r->user, user) == 0) : (!r->user || !r->user[0]);
        if (r->acct && strcmp(r->acct, acct) == 0 && user_ok) *found = true;
    }
    slurm_list_iterator_destroy(it);
    slurm_list_destroy(l);
    return 0;
}

/* Adds an association (cluster, acct, user or NULL for the account's own, under root). db_mu
 * held, connection open. */
static int assoc_add(slurm_adapter *a, const char *acct, const char *user, char *err, size_t errlen)
{
    slurmdb_assoc_rec_t *r = malloc(sizeof *r);
    if (r == NULL) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    slurmdb_init_assoc_rec(r, 0);
    r->cluster = strdup(a->cluster);
    r->acct = strdup(acct);
    r->user = user ? strdup(user) : NULL;
    r->parent_acct = user ? NULL : strdup("root");
    /* our own allocations: libslurm's destructors expect its allocator, so the list frees none */
    List l = slurm_list_create(NULL);
    slurm_list_append(l, r);
    int rc = SLURM_SUCCESS;
    if (r->cluster == NULL || r->acct == NULL || (user && r->user == NULL) ||
        (!user && r->parent_acct == NULL)) {
        set_err(err, errlen, "out of memory");
        rc = -ENOMEM;
    } else if (slurmdb_associations_add(a->db, l) != SLURM_SUCCESS) {
        rc = db_fail(a, "slurmdbd refused the association", err, errlen);
    }
    slurm_list_destroy(l);
    free(r->cluster);
    free(r->acct);
    free(r->user);
    free(r->parent_acct);
    free(r);
    return rc;
}

int slurm_adapter_account_ensure(slurm_adapter *a, const char *account, const char *description,
                                 char *err, size_t errlen)
{
    char acct[64];
    if (a == NULL || account_key(account, acct, sizeof acct) < 0) {
        set_err(err, errlen, "'%s' is not a valid Slurm account name", account ? account : "");
        return -EINVAL;
    }
    pthread_mutex_lock(&a->db_mu);
    bool have = false;
    int rc = db_open(a, err, errlen);
    if (rc == 0) {
        slurmdb_account_cond_t cond;
        slurmdb_assoc_cond_t ac;
        memset(&cond, 0, sizeof cond);
        memset(&ac, 0, sizeof ac);
        ac.acct_list = slurm_list_create(NULL);
        slurm_list_append(ac.acct_list, acct);
        cond.assoc_cond = &ac;
        List l = slurmdb_accounts_get(a->db, &cond);
        slurm_list_destroy(ac.acct_list);
        if (l == NULL)
            rc = db_fail(a, "cannot read accounts from slurmdbd", err, errlen);
        else
            have = slurm_list_count(l) > 0;
        if (l != NULL) slurm_list_destroy(l);
    }
    if (rc == 0 && !have) {
        slurmdb_account_rec_t *r = calloc(1, sizeof *r);
        List l = slurm_list_create(NULL); /* ours, freed below */
        if (r != NULL) {
            r->name = strdup(acct);
            r->description = strdup(description && description[0] ? description : acct);
            r->organization = strdup(acct);
            slurm_list_append(l, r);
        }
        if (r == NULL || r->name == NULL || r->description == NULL || r->organization == NULL) {
            set_err(err, errlen, "out of memory");
            rc = -ENOMEM;
        } else if (slurmdb_accounts_add(a->db, l) != SLURM_SUCCESS) {
            rc = db_fail(a, "slurmdbd refused the account", err, errlen);
        }
        slurm_list_destroy(l);
        if (r != NULL) {
            free(r->name);
            free(r->description);
            free(r->organization);
            free(r);
        }
        if (rc == 0) rc = db_commit(a, rc, err, errlen);
    }
    bool assoc = false;
    if (rc == 0) rc = assoc_exists(a, acct, NULL, &assoc, err, errlen);
    if (rc == 0 && !assoc) rc = db_commit(a, assoc_add(a, acct, NULL, err, errlen), err, errlen);
    pthread_mutex_unlock(&a->db_mu);
    return rc;
}

int slurm_adapter_user_ensure(slurm_adapter *a, const char *unix_user, const char *account,
                              char *err, size_t errlen)
{
    char acct[64];
    if (a == NULL || account_key(account, acct, sizeof acct) < 0) {
        set_err(err, errlen, "'%s' is not a valid Slurm account name", account ? account : "");
        return -EINVAL;
    }
    if (unix_user == NULL || unix_user[0] == '\0' || strlen(unix_user) >= 64) {
        set_err(err, errlen, "no Unix account name to associate with Slurm account %s", acct);
        return -EINVAL;
    }
    pthread_mutex_lock(&a->db_mu);
    bool have = false;
    int rc = db_open(a, err, errlen);
    if (rc == 0) {
        slurmdb_user_cond_t cond;
        slurmdb_assoc_cond_t ac;
        memset(&cond, 0, sizeof cond);
        memset(&ac, 0, sizeof ac);
        ac.user_list = slurm_list_create(NULL);
        slurm_list_append(ac.user_list, (void *)unix_user);
        cond.assoc_cond = &ac;
        List l = slurmdb_users_get(a->db, &cond);
        slurm_list_destroy(ac.user_list);
        if (l == NULL)
            rc = db_fail(a, "cannot read users from slurmdbd", err, errlen);
        else
            have = slurm_list_count(l) > 0;
        if (l != NULL) slurm_list_destroy(l);
    }
    if (rc == 0 && !have) {
        slurmdb_user_rec_t *r = calloc(1, sizeof *r);
        List l = slurm_list_create(NULL); /* ours, freed below */
        if (r != NULL) {
            r->name = strdup(unix_user);
            r->default_acct = strdup(acct);
            r->admin_level = SLURMDB_ADMIN_NONE;
            slurm_list_append(l, r);
        }
        if (r == NULL || r->name == NULL || r->default_acct == NULL) {
            set_err(err, errlen, "out of memory");
            rc = -ENOMEM;
        } else if (slurmdb_users_add(a->db, l) != SLURM_SUCCESS) {
            rc = db_fail(a, "slurmdbd refused the user", err, errlen);
        }
        slurm_list_destroy(l);
        if (r != NULL) {
            free(r->name);
            free(r->default_acct);
            free(r);
        }
    }
    bool assoc = false;
    if (rc == 0) rc = assoc_exists(a, acct, unix_user, &assoc, err, errlen);
    if (rc == 0 && !assoc) rc = assoc_add(a, acct, unix_user, err, errlen);
    if (rc == 0 && (!have || !assoc)) rc = db_commit(a, rc, err, errlen);
    pthread_mutex_unlock(&a->db_mu);
    return rc;
}

int slurm_adapter_account_gpu_limit(slurm_adapter *a, const char *account, int64_t gpu_minutes,
                                    char *err, size_t errlen)
{
    char acct[64], tres[64];
    uint32_t gpu_id = 0;
    if (a == NULL || account_key(account, acct, sizeof acct) < 0) {
        set_err(err, errlen, "'%s' is not a valid Slurm account name", account ? account : "");
        return -EINVAL;
    }
    pthread_mutex_lock(&a->db_mu);
    int rc = db_open(a, err, errlen);
    if (rc == 0) rc = gpu_tres_id(a, &gpu_id, err, errlen);
    if (rc == 0 && gpu_id == 0) {
        set_err(err, errlen, "slurmdbd has no gres/gpu TRES (AccountingStorageTRES=gres/gpu)");
        rc = -ENOTSUP;
    }
    if (rc == 0) {
        snprintf(tres, sizeof tres, "%" PRIu32 "=%" PRId64, gpu_id,
                 gpu_minutes < 0 ? (int64_t)-1 : gpu_minutes);
        slurmdb_assoc_cond_t cond;
        slurmdb_assoc_rec_t rec;
        memset(&cond, 0, sizeof cond);
        slurmdb_init_assoc_rec(&rec, 0);
        rec.grp_tres_mins = tres;
        cond.cluster_list = slurm_list_create(NULL);
        cond.acct_list = slurm_list_create(NULL);
        cond.user_list = slurm_list_create(NULL);
        slurm_list_append(cond.cluster_list, a->cluster);
        slurm_list_append(cond.acct_list, acct);
        slurm_list_append(cond.user_list, ""); /* the account's own association only */
        List l = slurmdb_associations_modify(a->db, &cond, &rec);
        slurm_list_destroy(cond.cluster_list);
        slurm_list_destroy(cond.acct_list);
        slurm_list_destroy(cond.user_list);
        if (l == NULL && slurm_get_errno() != SLURM_NO_CHANGE_IN_DATA)
            rc = db_fail(a, "slurmdbd did not change the account's GrpTRESMins", err, errlen);
        if (l != NULL) slurm_list_destroy(l);
        rc = db_commit(a, rc, err, errlen);
    }
    pthread_mutex_unlock(&a->db_mu);
    return rc;
}
