/* sbatch_script.c - #SBATCH directives and sbatch-style job options into job-request fields.
 * Must never read files or print: text comes in, warnings leave through a callback. */
#include "sbatch_script.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_id {
    OPT_NAME,
    OPT_TIME,
    OPT_CPUS,
    OPT_GPUS,
    OPT_GRES,
    OPT_MEM,
    OPT_NODES,
    OPT_NTASKS,
    OPT_NTASKS_PER_NODE,
    OPT_GPUS_PER_NODE,
    OPT_GPUS_PER_TASK,
    OPT_CPUS_PER_GPU,
    OPT_MEM_PER_GPU,
    OPT_MEM_PER_CPU,
    OPT_PARTITION,
    OPT_OUTPUT,
    OPT_ERROR,
    OPT_EXPORT,
    OPT_CHDIR,
    OPT_SIGNAL,
    OPT_EXCLUSIVE,
    OPT_CONSTRAINT,
    OPT_REQUEUE,
    OPT_NO_REQUEUE,
    OPT_COMMENT,
    OPT_ARRAY,
    OPT_DEPENDENCY,
};

/* The sbatch options Antenna understands (sbatch(1)'s long and short names). */
static const struct {
    const char *long_name;
    char short_name; /* 0 = none */
    bool no_value;   /* takes no value */
    enum opt_id id;
} known_opts[] = {
    {"--job-name", 'J', false, OPT_NAME},
    {"--time", 't', false, OPT_TIME},
    {"--cpus-per-task", 'c', false, OPT_CPUS},
    {"--gpus", 'G', false, OPT_GPUS},
    {"--gres", 0, false, OPT_GRES},
    {"--mem", 0, false, OPT_MEM},
    {"--nodes", 'N', false, OPT_NODES},
    {"--ntasks", 'n', false, OPT_NTASKS},
    {"--ntasks-per-node", 0, false, OPT_NTASKS_PER_NODE},
    {"--gpus-per-node", 0, false, OPT_GPUS_PER_NODE},
    {"--gpus-per-task", 0, false, OPT_GPUS_PER_TASK},
    {"--cpus-per-gpu", 0, false, OPT_CPUS_PER_GPU},
    {"--mem-per-gpu", 0, false, OPT_MEM_PER_GPU},
    {"--mem-per-cpu", 0, false, OPT_MEM_PER_CPU},
    {"--partition", 'p', false, OPT_PARTITION},
    {"--output", 'o', false, OPT_OUTPUT},
    {"--error", 'e', false, OPT_ERROR},
    {"--export", 0, false, OPT_EXPORT},
    {"--chdir", 'D', false, OPT_CHDIR},
    {"--signal", 0, false, OPT_SIGNAL},
    {"--exclusive", 0, true, OPT_EXCLUSIVE},
    {"--constraint", 'C', false, OPT_CONSTRAINT},
    {"--requeue", 0, true, OPT_REQUEUE},
    {"--no-requeue", 0, true, OPT_NO_REQUEUE},
    {"--comment", 0, false, OPT_COMMENT},
    {"--array", 'a', false, OPT_ARRAY},
    {"--dependency", 'd', false, OPT_DEPENDENCY},
};

/* sbatch's long options that never take a separate value argument (no or optional argument). */
static const char *const sbatch_flag_opts[] = {
    "--contiguous",    "--exclusive",  "--get-user-env", "--help",
    "--hold",          "--ignore-pbs", "--immediate",    "--no-kill",
    "--no-requeue",    "--nice",       "--overcommit",   "--oversubscribe",
    "--parsable",      "--propagate",  "--quiet",        "--reboot",
    "--requeue",       "--spread-job", "--test-only",    "--usage",
    "--use-min-nodes", "--verbose",    "--version",      "--wait",
    "--x11",           NULL,
};

/* sbatch's short options that take a value ("+ba:A:B:c:C:d:D:e:F:G:hHi:IJ:kL:m:M:n:N:o:Op:q:Q...").
 */
static const char sbatch_short_with_value[] = "aABcCdDeFGiJLmMnNopqStwx";

static int lookup(const char *opt)
{
    if (opt == NULL) return -1;
    for (size_t i = 0; i < sizeof known_opts / sizeof known_opts[0]; i++) {
        if (strcmp(opt, known_opts[i].long_name) == 0) return (int)i;
        if (known_opts[i].short_name && opt[0] == '-' && opt[1] == known_opts[i].short_name &&
            opt[2] == '\0')
            return (int)i;
    }
    return -1;
}

void sbatch_opts_init(sbatch_opts *o)
{
    memset(o, 0, sizeof *o);
    jobreq_init(&o->r);
}

int sbatch_opt_known(const char *opt)
{
    int i = lookup(opt);
    if (i < 0) return 0;
    return known_opts[i].no_value ? 2 : 1;
}

/* Copies `v` into a short printable form for messages: control characters become '?', and long
 * values are cut with "...". */
static const char *shown(const char *v, char *buf, size_t len)
{
    size_t i = 0;
    for (; v[i] != '\0' && i + 4 < len; i++)
        buf[i] = ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) ? '?' : v[i];
    if (v[i] != '\0' && len >= 4) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

static int parse_count(const char *v, int min, int *out)
{
    if (v[0] < '0' || v[0] > '9') return -EINVAL;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > INT_MAX) return -EINVAL;
    *out = (int)n;
    return 0;
}

/* Parses --nodes "N" or "MIN-MAX". */
static int parse_nodes(const char *v, int *lo, int *hi)
{
    const char *dash = strchr(v, '-');
    char a[24];
    if (dash == NULL) {
        if (parse_count(v, 1, lo) != 0) return -EINVAL;
        *hi = *lo;
        return 0;
    }
    size_t n = (size_t)(dash - v);
    if (n == 0 || n >= sizeof a) return -EINVAL;
    memcpy(a, v, n);
    a[n] = '\0';
    if (parse_count(a, 1, lo) != 0 || parse_count(dash + 1, 1, hi) != 0 || *hi < *lo)
        return -EINVAL;
    return 0;
}

/* Copies a text value into dst[cap]; an over-long value or a control character is an error. */
static int set_text(const char *opt, const char *value, char *dst, size_t cap, char *err,
                    size_t len)
{
    char v[48];
    size_t n = strlen(value);
    if (n >= cap) {
        snprintf(err, len, "%s is %zu bytes long; at most %zu bytes", opt, n, cap - 1);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) {
            snprintf(err, len,
                     "invalid %s value \"%s\": it cannot hold tabs, newlines or other control "
                     "characters",
                     opt, shown(value, v, sizeof v));
            return -EINVAL;
        }
    }
    memcpy(dst, value, n + 1);
    return 0;
}

/* A jobreq check of one field, as a CLI message. */
static int check_field(int rc, const jobreq_error *je, const char *opt, char *err, size_t len)
{
    if (rc == 0) return 0;
    snprintf(err, len, "%s: %s", opt, je->message);
    return -EINVAL;
}

/* GPUs are asked one way at a time: a new way clears the others. */
static void gpus_clear(sbatch_opts *o)
{
    o->r.gpus = o->r.gpus_per_node = o->r.gpus_per_task = 0;
    o->set &= ~(unsigned)(SBATCH_SET_GPUS | SBATCH_SET_GPUS_PER_NODE | SBATCH_SET_GPUS_PER_TASK);
}

static void mem_clear(sbatch_opts *o)
{
    o->r.mem_mb = o->r.mem_per_cpu_mb = o->r.mem_per_gpu_mb = 0;
    o->set &= ~(unsigned)(SBATCH_SET_MEM | SBATCH_SET_MEM_PER_CPU | SBATCH_SET_MEM_PER_GPU);
}

int sbatch_opt_set(sbatch_opts *o, const char *opt, const char *value, char *err, size_t len)
{
    int i = lookup(opt);
    if (i < 0) return -ENOENT;
    enum opt_id id = known_opts[i].id;
    char v[48];
    jobreq_error je;
    jobreq *r = &o->r;
    if (known_opts[i].no_value) {
        if (value != NULL) {
            snprintf(err, len, "%s takes no value (got \"%s\")", opt, shown(value, v, sizeof v));
            return -EINVAL;
        }
    } else if (value == NULL) {
        snprintf(err, len, "%s needs a value", opt);
        return -EINVAL;
    }
    switch (id) {
    case OPT_NAME: {
        if (set_text(opt, value, r->name, sizeof r->name, err, len) != 0) return -EINVAL;
        o->set |= SBATCH_SET_NAME;
        return 0;
    }
    case OPT_TIME: {
        int m;
        if (jobreq_time_parse(value, &m) != 0) {
            snprintf(err, len,
                     "invalid %s value \"%s\": use minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S "
                     "(e.g. 90 or 1:30:00), at least 1 minute",
                     opt, shown(value, v, sizeof v));
            return -EINVAL;
        }
        r->time_minutes = m;
        o->set |= SBATCH_SET_TIME;
        return 0;
    }
    case OPT_CPUS:
    case OPT_NTASKS:
    case OPT_NTASKS_PER_NODE:
    case OPT_CPUS_PER_GPU: {
        int n;
        if (parse_count(value, 1, &n) != 0) {
            snprintf(err, len, "invalid %s value \"%s\": give a whole number, 1 or more", opt,
                     shown(value, v, sizeof v));
            return -EINVAL;
        }
        if (id == OPT_CPUS) {
            r->cpus_per_task = n;
            o->set |= SBATCH_SET_CPUS;
        } else if (id == OPT_NTASKS) {
            r->ntasks = n;
            o->set |= SBATCH_SET_NTASKS;
        } else if (id == OPT_NTASKS_PER_NODE) {
            r->ntasks_per_node = n;
            o->set |= SBATCH_SET_NTASKS_PER_NODE;
        } else {
            r->cpus_per_gpu = n;
            o->set |= SBATCH_SET_CPUS_PER_GPU;
        }
        return 0;
    }
    case OPT_GPUS:
    case OPT_GRES:
    case OPT_GPUS_PER_NODE:
    case OPT_GPUS_PER_TASK: {
        int n;
        char type[JOBREQ_GPU_TYPE_MAX];
        bool gres = id == OPT_GRES;
        int rc = gres ? jobreq_gres_parse(value, &n, type, sizeof type)
                      : jobreq_gpus_parse(value, &n, type, sizeof type);
        if (rc != 0) {
            if (gres)
                snprintf(err, len,
                         "invalid %s value \"%s\": Antenna handles GPUs only; use gpu, gpu:N, "
                         "gpu:TYPE or gpu:TYPE:N (e.g. gpu:h100:2)",
                         opt, shown(value, v, sizeof v));
            else
                snprintf(err, len, "invalid %s value \"%s\": use N or TYPE:N (e.g. 2 or h100:2)",
                         opt, shown(value, v, sizeof v));
            return -EINVAL;
        }
        gpus_clear(o);
        if (id == OPT_GPUS) {
            r->gpus = n;
            o->set |= SBATCH_SET_GPUS;
        } else if (id == OPT_GPUS_PER_TASK) {
            r->gpus_per_task = n;
            o->set |= SBATCH_SET_GPUS_PER_TASK;
        } else { /* --gres counts per node, as in Slurm */
            r->gpus_per_node = n;
            o->set |= SBATCH_SET_GPUS_PER_NODE;
        }
        memcpy(r->gpu_type, type, sizeof type);
        return 0;
    }
    case OPT_MEM:
    case OPT_MEM_PER_CPU:
    case OPT_MEM_PER_GPU: {
        int64_t mb;
        if (jobreq_mem_parse(value, &mb) != 0) {
            snprintf(err, len,
                     "invalid %s value \"%s\": use a size in MiB or with a K, M, G or T suffix "
                     "(e.g. 8G)",
                     opt, shown(value, v, sizeof v));
            return -EINVAL;
        }
        mem_clear(o);
        if (id == OPT_MEM) {
            r->mem_mb = mb;
            o->set |= SBATCH_SET_MEM;
        } else if (id == OPT_MEM_PER_CPU) {
            r->mem_per_cpu_mb = mb;
            o->set |= SBATCH_SET_MEM_PER_CPU;
        } else {
            r->mem_per_gpu_mb = mb;
            o->set |= SBATCH_SET_MEM_PER_GPU;
        }
        return 0;
    }
    case OPT_NODES:
        if (parse_nodes(value, &r->nodes_min, &r->nodes_max) != 0) {
            snprintf(err, len, "invalid %s value \"%s\": use N or MIN-MAX (e.g. 2 or 2-4)", opt,
                     shown(value, v, sizeof v));
            return -EINVAL;
        }
        o->set |= SBATCH_SET_NODES;
        return 0;
    case OPT_PARTITION:
        if (!jobreq_ident_valid(value)) {
            snprintf(err, len,
                     "invalid %s value \"%s\": a partition name is letters, digits, '.', '_' and "
                     "'-' (one partition; Antenna does not take a list)",
                     opt, shown(value, v, sizeof v));
            return -EINVAL;
        }
        snprintf(r->partition, sizeof r->partition, "%s", value);
        o->set |= SBATCH_SET_PARTITION;
        return 0;
    case OPT_OUTPUT:
    case OPT_ERROR: {
        char out[JOBREQ_FILE_MAX];
        bool is_out = id == OPT_OUTPUT;
        char *dst = is_out ? r->output : r->error;
        if (set_text(opt, value, dst, sizeof r->output, err, len) != 0) return -EINVAL;
        if (check_field(jobreq_output_expand(value, NULL, is_out ? "output" : "error", out,
                                             sizeof out, &je),
                        &je, opt, err, len) != 0)
            return -EINVAL;
        o->set |= is_out ? SBATCH_SET_OUTPUT : SBATCH_SET_ERROR;
        return 0;
    }
    case OPT_EXPORT:
        if (set_text(opt, value, r->env_export, sizeof r->env_export, err, len) != 0 ||
            check_field(jobreq_export_check(value, NULL, &je), &je, opt, err, len) != 0)
            return -EINVAL;
        o->set |= SBATCH_SET_EXPORT;
        return 0;
    case OPT_CHDIR:
        if (set_text(opt, value, r->chdir, sizeof r->chdir, err, len) != 0 ||
            check_field(jobreq_chdir_check(value, &je), &je, opt, err, len) != 0)
            return -EINVAL;
        o->set |= SBATCH_SET_CHDIR;
        return 0;
    case OPT_SIGNAL: {
        int signo, secs, batch;
        if (set_text(opt, value, r->signal, sizeof r->signal, err, len) != 0) return -EINVAL;
        if (jobreq_signal_parse(value, &signo, &secs, &batch) != 0) {
            snprintf(err, len,
                     "invalid %s value \"%s\": use [R:|B:]SIG[@SECONDS], SIG a number or a name "
                     "such as USR1 (e.g. B:USR1@120)",
                     opt, shown(value, v, sizeof v));
            return -EINVAL;
        }
        o->set |= SBATCH_SET_SIGNAL;
        return 0;
    }
    case OPT_EXCLUSIVE:
        r->exclusive = 1;
        o->set |= SBATCH_SET_EXCLUSIVE;
        return 0;
    case OPT_REQUEUE:
    case OPT_NO_REQUEUE:
        r->requeue = id == OPT_REQUEUE;
        o->set |= SBATCH_SET_REQUEUE;
        return 0;
    case OPT_CONSTRAINT:
        if (set_text(opt, value, r->constraint, sizeof r->constraint, err, len) != 0)
            return -EINVAL;
        o->set |= SBATCH_SET_CONSTRAINT;
        return 0;
    case OPT_COMMENT:
        if (set_text(opt, value, r->comment, sizeof r->comment, err, len) != 0) return -EINVAL;
        o->set |= SBATCH_SET_COMMENT;
        return 0;
    case OPT_ARRAY:
        if (set_text(opt, value, r->array, sizeof r->array, err, len) != 0) return -EINVAL;
        o->set |= SBATCH_SET_ARRAY;
        return 0;
    case OPT_DEPENDENCY:
        if (set_text(opt, value, r->dependency, sizeof r->dependency, err, len) != 0)
            return -EINVAL;
        o->set |= SBATCH_SET_DEPENDENCY;
        return 0;
    }
    return -ENOENT;
}

/* Copies the fields of `src` that `set` names into `dst`. */
static void copy_set(jobreq *dst, const jobreq *src, unsigned set)
{
#define CP(bit, field)                                                                             \
    do {                                                                                           \
        if (set & (bit)) memcpy(&dst->field, &src->field, sizeof dst->field);                      \
    } while (0)
    CP(SBATCH_SET_NAME, name);
    CP(SBATCH_SET_GPUS, gpus);
    CP(SBATCH_SET_GPUS_PER_NODE, gpus_per_node);
    CP(SBATCH_SET_GPUS_PER_TASK, gpus_per_task);
    if (set & (SBATCH_SET_GPUS | SBATCH_SET_GPUS_PER_NODE | SBATCH_SET_GPUS_PER_TASK))
        memcpy(dst->gpu_type, src->gpu_type, sizeof dst->gpu_type);
    CP(SBATCH_SET_CPUS, cpus_per_task);
    CP(SBATCH_SET_MEM, mem_mb);
    CP(SBATCH_SET_TIME, time_minutes);
    CP(SBATCH_SET_NODES, nodes_min);
    CP(SBATCH_SET_NODES, nodes_max);
    CP(SBATCH_SET_NTASKS, ntasks);
    CP(SBATCH_SET_NTASKS_PER_NODE, ntasks_per_node);
    CP(SBATCH_SET_CPUS_PER_GPU, cpus_per_gpu);
    CP(SBATCH_SET_MEM_PER_GPU, mem_per_gpu_mb);
    CP(SBATCH_SET_MEM_PER_CPU, mem_per_cpu_mb);
    CP(SBATCH_SET_PARTITION, partition);
    CP(SBATCH_SET_OUTPUT, output);
    CP(SBATCH_SET_ERROR, error);
    CP(SBATCH_SET_EXPORT, env_export);
    CP(SBATCH_SET_CHDIR, chdir);
    CP(SBATCH_SET_SIGNAL, signal);
    CP(SBATCH_SET_EXCLUSIVE, exclusive);
    CP(SBATCH_SET_CONSTRAINT, constraint);
    CP(SBATCH_SET_REQUEUE, requeue);
    CP(SBATCH_SET_COMMENT, comment);
    CP(SBATCH_SET_ARRAY, array);
    CP(SBATCH_SET_DEPENDENCY, dependency);
#undef CP
}

void sbatch_opts_override(sbatch_opts *base, const sbatch_opts *over)
{
    const unsigned gpu_bits = SBATCH_SET_GPUS | SBATCH_SET_GPUS_PER_NODE | SBATCH_SET_GPUS_PER_TASK;
    const unsigned mem_bits = SBATCH_SET_MEM | SBATCH_SET_MEM_PER_CPU | SBATCH_SET_MEM_PER_GPU;
    /* A flag that asks GPUs (or memory) one way replaces the script's other ways. */
    if (over->set & gpu_bits) {
        base->r.gpus = base->r.gpus_per_node = base->r.gpus_per_task = 0;
        base->set &= ~gpu_bits;
    }
    if (over->set & mem_bits) {
        base->r.mem_mb = base->r.mem_per_cpu_mb = base->r.mem_per_gpu_mb = 0;
        base->set &= ~mem_bits;
    }
    copy_set(&base->r, &over->r, over->set);
    base->set |= over->set;
}

void sbatch_opts_to_request(const sbatch_opts *o, jobreq *r)
{
    copy_set(r, &o->r, o->set);
}

json_t *sbatch_request_json(const jobreq *r, unsigned set)
{
    json_t *o = json_object();
    if (o == NULL) return NULL;
    int bad = 0;
#define PUT(key, v) bad |= json_object_set_new(o, key, v)
    if (r->script != NULL) PUT("script", json_string(r->script));
    if (r->name[0] != '\0') PUT("name", json_string(r->name));
    if (set & SBATCH_SET_GPUS) PUT("gpus", json_integer(r->gpus));
    if (set & SBATCH_SET_GPUS_PER_NODE) PUT("gpus_per_node", json_integer(r->gpus_per_node));
    if (set & SBATCH_SET_GPUS_PER_TASK) PUT("gpus_per_task", json_integer(r->gpus_per_task));
    if ((set & (SBATCH_SET_GPUS | SBATCH_SET_GPUS_PER_NODE | SBATCH_SET_GPUS_PER_TASK)) &&
        r->gpu_type[0] != '\0')
        PUT("gpu_type", json_string(r->gpu_type));
    if (set & SBATCH_SET_CPUS) PUT("cpus_per_task", json_integer(r->cpus_per_task));
    if (set & SBATCH_SET_MEM) PUT("mem_mb", json_integer(r->mem_mb));
    if (set & SBATCH_SET_TIME) PUT("time_minutes", json_integer(r->time_minutes));
    if (set & SBATCH_SET_NODES) {
        PUT("nodes", json_integer(r->nodes_min));
        if (r->nodes_max != r->nodes_min) PUT("nodes_max", json_integer(r->nodes_max));
    }
    if (set & SBATCH_SET_NTASKS) PUT("ntasks", json_integer(r->ntasks));
    if (set & SBATCH_SET_NTASKS_PER_NODE) PUT("ntasks_per_node", json_integer(r->ntasks_per_node));
    if (set & SBATCH_SET_CPUS_PER_GPU) PUT("cpus_per_gpu", json_integer(r->cpus_per_gpu));
    if (set & SBATCH_SET_MEM_PER_GPU) PUT("mem_per_gpu_mb", json_integer(r->mem_per_gpu_mb));
    if (set & SBATCH_SET_MEM_PER_CPU) PUT("mem_per_cpu_mb", json_integer(r->mem_per_cpu_mb));
    if (set & SBATCH_SET_PARTITION) PUT("partition", json_string(r->partition));
    if (set & SBATCH_SET_OUTPUT) PUT("output", json_string(r->output));
    if (set & SBATCH_SET_ERROR) PUT("error", json_string(r->error));
    if (set & SBATCH_SET_EXPORT) PUT("export", json_string(r->env_export));
    if (set & SBATCH_SET_CHDIR) PUT("chdir", json_string(r->chdir));
    if (set & SBATCH_SET_SIGNAL) PUT("signal", json_string(r->signal));
    if (set & SBATCH_SET_EXCLUSIVE) PUT("exclusive", json_boolean(r->exclusive));
    if (set & SBATCH_SET_CONSTRAINT) PUT("constraint", json_string(r->constraint));
    if (set & SBATCH_SET_REQUEUE) PUT("requeue", json_boolean(r->requeue == 1));
    if (set & SBATCH_SET_COMMENT) PUT("comment", json_string(r->comment));
    if (set & SBATCH_SET_ARRAY) PUT("array", json_string(r->array));
    if (set & SBATCH_SET_DEPENDENCY) PUT("dependency", json_string(r->dependency));
#undef PUT
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- script scanning ---- */

typedef struct token {
    const char *s;
    int line;
} token;

typedef struct token_list {
    token *v;
    size_t n, cap;
    char *buf; /* token text, NUL-separated */
    size_t used;
} token_list;

static int tokens_push(token_list *t, const char *s, int line)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        token *v = realloc(t->v, cap * sizeof *v);
        if (v == NULL) return -ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n].s = s;
    t->v[t->n].line = line;
    t->n++;
    return 0;
}

/* Splits one directive line (after "#SBATCH") into tokens the way sbatch's _get_argument does.
 * Returns 0, -EINVAL (unmatched quote, message in err) or -ENOMEM. */
static int tokenize_line(token_list *t, const char *p, const char *end, int line, const char *path,
                         char *err, size_t errlen)
{
    for (;;) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p >= end || *p == '#') return 0;
        char *out = t->buf + t->used;
        size_t k = 0;
        bool quoted = false, escape = false;
        char q = 0;
        while (p < end && (quoted || !isspace((unsigned char)*p))) {
            char c = *p;
            if (escape) {
                escape = false;
            } else if (c == '\\') {
                escape = true;
                p++;
                continue;
            } else if (quoted) {
                if (c == q) {
                    quoted = false;
                    p++;
                    continue;
                }
            } else if (c == '"' || c == '\'') {
                quoted = true;
                q = c;
                p++;
                continue;
            } else if (c == '#') {
                break;
            }
            out[k++] = c;
            p++;
        }
        if (quoted) {
            snprintf(err, errlen, "%s:%d: unmatched %c quote in #SBATCH line", path, line, q);
            return -EINVAL;
        }
        out[k] = '\0';
        t->used += k + 1;
        int rc = tokens_push(t, out, line);
        if (rc != 0) return rc;
        if (p < end && *p == '#') return 0;
    }
}

static bool is_flag_opt(const char *name)
{
    for (const char *const *f = sbatch_flag_opts; *f != NULL; f++)
        if (strcmp(*f, name) == 0) return true;
    return false;
}

/* Sends "PATH:LINE: <pre><what><post>" to the warning callback. */
static void warn_line(sbatch_warn_fn *warn, void *ctx, const char *path, int line, const char *pre,
                      const char *what, const char *post)
{
    if (warn == NULL) return;
    char v[64], msg[512];
    snprintf(msg, sizeof msg, "%s:%d: %s%s%s", path, line, pre, shown(what, v, sizeof v), post);
    warn(ctx, msg);
}

/* Walks the tokens as getopt_long walks sbatch's argv. */
static int apply_tokens(const token_list *t, const char *path, unsigned flags, sbatch_opts *o,
                        sbatch_warn_fn *warn, void *ctx, char *err, size_t errlen)
{
    bool options_done = false;
    for (size_t i = 0; i < t->n; i++) {
        const char *tok = t->v[i].s;
        int line = t->v[i].line;
        bool has_next = i + 1 < t->n;
        bool next_same_line = has_next && t->v[i + 1].line == line;
        if (options_done || tok[0] != '-' || tok[1] == '\0') {
            warn_line(warn, ctx, path, line, "#SBATCH word \"", tok,
                      "\" is not an option, ignored");
            continue;
        }
        if (strcmp(tok, "--") == 0) {
            options_done = true;
            continue;
        }
        char name[64];
        const char *value = NULL;
        if (tok[1] == '-') {
            const char *eq = strchr(tok, '=');
            size_t n = eq ? (size_t)(eq - tok) : strlen(tok);
            if (n >= sizeof name) n = sizeof name - 1;
            memcpy(name, tok, n);
            name[n] = '\0';
            if (eq) value = eq + 1;
        } else {
            name[0] = '-';
            name[1] = tok[1];
            name[2] = '\0';
            if (tok[2] != '\0') value = tok + 2;
        }
        int known = sbatch_opt_known(name);
        if (known == 2) { /* takes no value: "--exclusive=user" and the like are refused */
            char msg[384];
            int rc = sbatch_opt_set(o, name, value, msg, sizeof msg);
            if (rc != 0) {
                snprintf(err, errlen, "%s:%d: %s", path, line, msg);
                return rc;
            }
            continue;
        }
        if (known == 1) {
            if (value == NULL) {
                if (!has_next) {
                    snprintf(err, errlen, "%s:%d: #SBATCH %s needs a value", path, line, name);
                    return -EINVAL;
                }
                value = t->v[++i].s; /* getopt takes the next argument, whatever it is */
            }
            char msg[384];
            int rc = sbatch_opt_set(o, name, value, msg, sizeof msg);
            if (rc != 0) {
                snprintf(err, errlen, "%s:%d: %s", path, line, msg);
                return rc;
            }
            continue;
        }
        if (!(flags & SBATCH_IGNORE_UNSUPPORTED)) {
            char v[64];
            snprintf(err, errlen,
                     "%s:%d: #SBATCH %s is not supported by Antenna; remove it, or submit with "
                     "--ignore-unsupported to ignore it (nothing was queued)",
                     path, line, shown(name, v, sizeof v));
            return -ENOTSUP;
        }
        warn_line(warn, ctx, path, line, "#SBATCH ", name, " is not supported by Antenna, ignored");
        if (value != NULL || !next_same_line || t->v[i + 1].s[0] == '-') continue;
        bool takes_value =
            tok[1] == '-' ? !is_flag_opt(name) : strchr(sbatch_short_with_value, tok[1]) != NULL;
        if (takes_value) i++;
    }
    return 0;
}

int sbatch_script_parse(const char *text, size_t len, const char *path, unsigned flags,
                        sbatch_opts *o, sbatch_warn_fn *warn, void *ctx, char *err, size_t errlen)
{
    static const char magic[] = "#SBATCH";
    const size_t magic_len = sizeof magic - 1;
    if (path == NULL) path = "script";
    token_list t = {0};
    t.buf = malloc(len + 2);
    if (t.buf == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    int rc = 0;
    int line = 0;
    const char *p = text;
    const char *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        line++;
        if ((size_t)(eol - p) >= magic_len && memcmp(p, magic, magic_len) == 0) {
            rc = tokenize_line(&t, p + magic_len, eol, line, path, err, errlen);
            if (rc == -ENOMEM) snprintf(err, errlen, "%s: out of memory", path);
            if (rc != 0) goto fail_tokenize;
        } else {
            const char *q = p;
            while (q < eol && isspace((unsigned char)*q))
                q++;
            if (q < eol && *q != '#') break; /* first command: directives end here */
        }
        p = nl ? nl + 1 : end;
    }
    rc = apply_tokens(&t, path, flags, o, warn, ctx, err, errlen);
    if (rc == -ENOMEM) snprintf(err, errlen, "%s: out of memory", path);

fail_tokenize:
    free(t.v);
    free(t.buf);
    return rc;
}

/* Returns the length of the well-formed UTF-8 sequence at p (1..4), or 0 when it is malformed. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n) return 0;
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[k] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

int sbatch_script_check_text(const char *text, size_t len, const char *path, char *err,
                             size_t errlen)
{
    const unsigned char *p = (const unsigned char *)text;
    int line = 1;
    if (path == NULL) path = "script";
    for (size_t i = 0; i < len;) {
        if (p[i] == '\0') {
            snprintf(err, errlen, "%s:%d: the script holds a NUL byte; a batch script must be text",
                     path, line);
            return -EINVAL;
        }
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0) {
            snprintf(err, errlen,
                     "%s:%d: the script is not valid UTF-8 text; convert it (e.g. iconv -t UTF-8)",
                     path, line);
            return -EINVAL;
        }
        if (p[i] == '\n') line++;
        i += n;
    }
    return 0;
}
