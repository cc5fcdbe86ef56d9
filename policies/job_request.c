/* job_request.c - the job-request model, its parsers (Slurm's time/mem/gres syntax) and validation.
 * Must never do I/O, log, allocate, or include libuv/Slurm/SQLite/OpenSSL headers. */
#include "job_request.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The limits used when jobreq_validate is given lim == NULL: only the lower bounds apply. */
static const jobreq_limits no_limits = {
    .max_gpus = INT_MAX,
    .max_cpus = INT_MAX,
    .max_time_minutes = INT_MAX,
    .max_mem_mb = INT64_MAX,
    .max_script_bytes = SIZE_MAX,
    .gpu_types = NULL,
};

void jobreq_init(jobreq *r)
{
    memset(r, 0, sizeof *r);
    r->script = NULL;
    r->gpus = 0;
    r->cpus_per_task = 1;
    r->mem_mb = 0;
    r->time_minutes = 60;
    r->requeue = -1;
}

/* Parses s[0..n) as a non-empty run of decimal digits worth at most `max`. Returns 0 and sets *out,
 * or -EINVAL. */
static int parse_digits(const char *s, size_t n, int64_t max, int64_t *out)
{
    if (n == 0) return -EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -EINVAL;
        int d = s[i] - '0';
        if (v > (max - d) / 10) return -EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Splits s on ':' into at most `max` fields (start pointers and lengths). Returns the field count,
 * or -EINVAL when there are more than `max`. */
static int split_colons(const char *s, size_t n, const char **start, size_t *len, int max)
{
    int count = 0;
    const char *p = s;
    const char *end = s + n;
    for (;;) {
        const char *c = memchr(p, ':', (size_t)(end - p));
        if (count == max) return -EINVAL;
        start[count] = p;
        len[count] = c ? (size_t)(c - p) : (size_t)(end - p);
        count++;
        if (!c) break;
        p = c + 1;
    }
    return count;
}

int jobreq_time_parse(const char *s, int *minutes)
{
    /* Field values beyond this are refused before any multiplication can overflow. */
    const int64_t field_max = 1000000000;
    if (s == NULL || minutes == NULL || *s == '\0') return -EINVAL;
    size_t n = strlen(s);
    const char *dash = memchr(s, '-', n);
    int64_t days = 0, hours = 0, mins = 0, secs = 0;
    const char *f[3];
    size_t fl[3];
    int64_t v[3];

    if (dash) {
        /* D-H, D-H:M, D-H:M:S */
        if (parse_digits(s, (size_t)(dash - s), field_max, &days) != 0) return -EINVAL;
        const char *rest = dash + 1;
        int k = split_colons(rest, n - (size_t)(rest - s), f, fl, 3);
        if (k < 1) return -EINVAL;
        for (int i = 0; i < k; i++)
            if (parse_digits(f[i], fl[i], field_max, &v[i]) != 0) return -EINVAL;
        hours = v[0];
        if (k >= 2) mins = v[1];
        if (k == 3) secs = v[2];
    } else {
        /* M, M:S, H:M:S */
        int k = split_colons(s, n, f, fl, 3);
        if (k < 1) return -EINVAL;
        for (int i = 0; i < k; i++)
            if (parse_digits(f[i], fl[i], field_max, &v[i]) != 0) return -EINVAL;
        if (k == 1) {
            mins = v[0];
        } else if (k == 2) {
            mins = v[0];
            secs = v[1];
        } else {
            hours = v[0];
            mins = v[1];
            secs = v[2];
        }
    }
    int64_t total = ((days * 24 + hours) * 60 + mins) * 60 + secs;
    int64_t m = (total + 59) / 60;
    if (m <= 0 || m > INT_MAX) return -EINVAL;
    *minutes = (int)m;
    return 0;
}

char *jobreq_time_format(int minutes, char *buf, size_t len)
{
    if (buf == NULL || len == 0) return buf;
    if (minutes < 0) {
        snprintf(buf, len, "INVALID");
        return buf;
    }
    long days = minutes / 1440;
    long hours = (minutes % 1440) / 60;
    long mins = minutes % 60;
    if (days > 0)
        snprintf(buf, len, "%ld-%02ld:%02ld:00", days, hours, mins);
    else
        snprintf(buf, len, "%02ld:%02ld:00", hours, mins);
    return buf;
}

int jobreq_mem_parse(const char *s, int64_t *mb)
{
    if (s == NULL || mb == NULL) return -EINVAL;
    size_t digits = strspn(s, "0123456789");
    int64_t v;
    if (parse_digits(s, digits, INT64_MAX, &v) != 0) return -EINVAL;
    const char *suffix = s + digits;
    int64_t mult = 1;
    bool kib = false;
    if (*suffix != '\0') {
        switch (*suffix) {
        case 'K':
        case 'k':
            kib = true;
            break;
        case 'M':
        case 'm':
            break;
        case 'G':
        case 'g':
            mult = 1024;
            break;
        case 'T':
        case 't':
            mult = 1024 * 1024;
            break;
        default:
            return -EINVAL;
        }
        suffix++;
        /* "16GB" is accepted as sbatch accepts it; nothing else may follow. */
        if (*suffix == 'B' || *suffix == 'b') suffix++;
        if (*suffix != '\0') return -EINVAL;
    }
    if (kib) {
        v = v / 1024 + (v % 1024 != 0);
    } else {
        if (v > INT64_MAX / mult) return -EINVAL;
        v *= mult;
    }
    *mb = v;
    return 0;
}

static bool type_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Copies a GPU type of n chars into type[len]. Returns 0, or -EINVAL when it is empty, starts
 * with '-', has a character outside [A-Za-z0-9_-] or does not fit. */
static int copy_type(const char *t, size_t n, char *type, size_t len)
{
    if (n == 0 || n >= len || t[0] == '-') return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!type_char_ok(t[i])) return -EINVAL;
    memcpy(type, t, n);
    type[n] = '\0';
    return 0;
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

int jobreq_gres_parse(const char *s, int *count, char *type, size_t len)
{
    if (s == NULL || count == NULL || type == NULL || len == 0) return -EINVAL;
    const char *f[3];
    size_t fl[3];
    int k = split_colons(s, strlen(s), f, fl, 3);
    if (k < 1 || fl[0] != 3 || memcmp(f[0], "gpu", 3) != 0) return -EINVAL;
    int64_t c = 1;
    const char *t = NULL;
    size_t tl = 0;
    if (k == 2) {
        if (all_digits(f[1], fl[1])) {
            if (parse_digits(f[1], fl[1], INT_MAX, &c) != 0) return -EINVAL;
        } else {
            t = f[1];
            tl = fl[1];
            if (tl == 0) return -EINVAL;
        }
    } else if (k == 3) {
        t = f[1];
        tl = fl[1];
        if (tl == 0) return -EINVAL;
        if (parse_digits(f[2], fl[2], INT_MAX, &c) != 0) return -EINVAL;
    }
    if (t != NULL) {
        if (copy_type(t, tl, type, len) != 0) return -EINVAL;
    } else {
        type[0] = '\0';
    }
    *count = (int)c;
    return 0;
}

int jobreq_gpus_parse(const char *s, int *count, char *type, size_t len)
{
    if (s == NULL || count == NULL || type == NULL || len == 0) return -EINVAL;
    const char *f[2];
    size_t fl[2];
    int k = split_colons(s, strlen(s), f, fl, 2);
    if (k < 1) return -EINVAL;
    int64_t c;
    if (parse_digits(f[k - 1], fl[k - 1], INT_MAX, &c) != 0) return -EINVAL;
    if (k == 2) {
        if (copy_type(f[0], fl[0], type, len) != 0) return -EINVAL;
    } else {
        type[0] = '\0';
    }
    *count = (int)c;
    return 0;
}

int jobreq_ident_valid(const char *s)
{
    if (s == NULL || s[0] == '\0' || s[0] == '-' || s[0] == '.') return 0;
    size_t n = 0;
    for (const char *p = s; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || n >= 63) return 0;
    }
    return 1;
}

/* Returns true when s[0..n) is well-formed UTF-8 with no control character (C0, DEL or C1). */
static bool text_printable(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) return false;
            i++;
            continue;
        }
        size_t extra;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            extra = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= extra) return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates, beyond U+10FFFF, C1 controls. */
        if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
            return false;
        i += extra + 1;
    }
    return true;
}

static int fail(jobreq_error *err, const char *field, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fills err (when non-NULL) and returns -EINVAL. */
static int fail(jobreq_error *err, const char *field, const char *code, const char *fmt, ...)
{
    if (err != NULL) {
        snprintf(err->field, sizeof err->field, "%s", field);
        snprintf(err->code, sizeof err->code, "%s", code);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Checks lo <= v <= hi for a 64-bit field; on failure fills err with a range message. */
static int check_range(jobreq_error *err, const char *field, const char *code, int64_t v,
                       int64_t lo, int64_t hi, int64_t unlimited, const char *more,
                       const char *less)
{
    if (v >= lo && v <= hi) return 0;
    const char *hint = v > hi ? less : more;
    if (hi == unlimited)
        return fail(err, field, code, "%s must be at least %lld (got %lld); %s", field,
                    (long long)lo, (long long)v, hint);
    return fail(err, field, code, "%s must be between %lld and %lld (got %lld); %s", field,
                (long long)lo, (long long)hi, (long long)v, hint);
}

static int check_script(const jobreq *r, const jobreq_limits *lim, jobreq_error *err)
{
    const char *s = r->script;
    if (s == NULL || s[0] == '\0')
        return fail(
            err, "script", "invalid_script",
            "script is empty; send the batch script text, starting with an interpreter line "
            "such as #!/bin/bash");
    if (s[0] != '#' || s[1] != '!')
        return fail(err, "script", "invalid_script",
                    "script must start with \"#!\" and an interpreter (e.g. #!/bin/bash) on its "
                    "first line");
    size_t max = lim->max_script_bytes;
    size_t n = strnlen(s, max == SIZE_MAX ? max : max + 1);
    if (n > max)
        return fail(err, "script", "invalid_script",
                    "script is larger than the %zu-byte limit; keep data out of the script and "
                    "read it from files instead",
                    max);
    /* A C string cannot hold a NUL byte: callers that receive a length (JSON decoders) must refuse
     * embedded NULs before filling r->script. */
    return 0;
}

static int check_name(const jobreq *r, jobreq_error *err)
{
    size_t n = strnlen(r->name, sizeof r->name);
    if (n == sizeof r->name)
        return fail(err, "name", "invalid_name",
                    "name must be at most %d bytes; choose a shorter job name",
                    JOBREQ_NAME_MAX - 1);
    if (!text_printable(r->name, n))
        return fail(err, "name", "invalid_name",
                    "name must be printable UTF-8 text without control characters (tabs, "
                    "newlines, ...); choose another job name");
    return 0;
}

static int check_gpu_type(const jobreq *r, int total_gpus, const jobreq_limits *lim,
                          jobreq_error *err)
{
    size_t n = strnlen(r->gpu_type, sizeof r->gpu_type);
    if (n == 0) return 0;
    if (n == sizeof r->gpu_type)
        return fail(err, "gpu_type", "invalid_gpu_type",
                    "gpu_type must be at most %d characters; use the site's GPU type name",
                    JOBREQ_GPU_TYPE_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if (!type_char_ok(r->gpu_type[i]) || r->gpu_type[0] == '-')
            return fail(err, "gpu_type", "invalid_gpu_type",
                        "gpu_type may only contain letters, digits, '_' and '-' (not first); use "
                        "the site's GPU type name (e.g. h100)");
    if (total_gpus == 0)
        return fail(
            err, "gpu_type", "invalid_gpu_type",
            "gpu_type \"%s\" is set but the job asks no GPU; ask for at least 1 GPU or leave "
            "gpu_type empty",
            r->gpu_type);
    if (lim->gpu_types == NULL) return 0;
    char list[160] = "";
    size_t used = 0;
    for (const char *const *t = lim->gpu_types; *t != NULL; t++) {
        if (strcmp(*t, r->gpu_type) == 0) return 0;
        int w = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", *t);
        if (w > 0) used += (size_t)w < sizeof list - used ? (size_t)w : sizeof list - used - 1;
    }
    if (lim->gpu_types[0] == NULL)
        return fail(err, "gpu_type", "invalid_gpu_type",
                    "gpu_type \"%s\" is not available: this site has no typed GPUs; leave "
                    "gpu_type empty",
                    r->gpu_type);
    return fail(err, "gpu_type", "invalid_gpu_type",
                "gpu_type \"%s\" is not available; use one of: %s (or leave it empty for any type)",
                r->gpu_type, list);
}

/* Nodes, tasks and the per-node/per-task GPU and memory options: each in range, and no two ways of
 * saying the same thing at once. */
static int check_layout(const jobreq *r, const jobreq_limits *lim, jobreq_error *err)
{
    int rc;
    int max_nodes = lim->max_nodes > 0 ? lim->max_nodes : INT_MAX;
    if (r->nodes_min < 0 || r->nodes_max < 0 || (r->nodes_max == 0) != (r->nodes_min == 0) ||
        r->nodes_min > r->nodes_max)
        return fail(err, "nodes", "invalid_nodes",
                    "nodes must be N or MIN-MAX with 1 <= MIN <= MAX (got %d-%d); e.g. 2 or 2-4",
                    r->nodes_min, r->nodes_max);
    if (r->nodes_max > max_nodes)
        return fail(err, "nodes", "invalid_nodes",
                    "the job asks up to %d nodes but this site allows at most %d nodes per job; "
                    "ask for fewer nodes",
                    r->nodes_max, max_nodes);
    static const struct {
        const char *field;
        size_t off;
    } counts[] = {
        {"ntasks", offsetof(jobreq, ntasks)},
        {"ntasks_per_node", offsetof(jobreq, ntasks_per_node)},
        {"gpus_per_node", offsetof(jobreq, gpus_per_node)},
        {"gpus_per_task", offsetof(jobreq, gpus_per_task)},
        {"cpus_per_gpu", offsetof(jobreq, cpus_per_gpu)},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        int v = *(const int *)((const char *)r + counts[i].off);
        if (v < 0)
            return fail(err, counts[i].field, "invalid_value",
                        "%s must be a positive whole number (got %d), or left out", counts[i].field,
                        v);
    }
    if (r->mem_per_gpu_mb < 0 || r->mem_per_cpu_mb < 0)
        return fail(err, r->mem_per_gpu_mb < 0 ? "mem_per_gpu_mb" : "mem_per_cpu_mb", "invalid_mem",
                    "memory sizes must be positive sizes in MiB, or left out");
    int gpu_ways = (r->gpus > 0) + (r->gpus_per_node > 0) + (r->gpus_per_task > 0);
    if (gpu_ways > 1)
        return fail(
            err, "gpus", "invalid_gpus",
            "ask GPUs one way only: gpus (the job's total), gpus_per_node or gpus_per_task");
    int mem_ways = (r->mem_mb > 0) + (r->mem_per_gpu_mb > 0) + (r->mem_per_cpu_mb > 0);
    if (mem_ways > 1)
        return fail(err, "mem_mb", "invalid_mem",
                    "ask memory one way only: mem_mb (per node), mem_per_cpu_mb or mem_per_gpu_mb");
    if (r->cpus_per_gpu > 0 && r->cpus_per_task != 1)
        return fail(err, "cpus_per_gpu", "invalid_cpus",
                    "ask CPUs one way only: cpus_per_task or cpus_per_gpu");
    if (r->cpus_per_gpu > 0 && r->gpus == 0 && r->gpus_per_node == 0 && r->gpus_per_task == 0)
        return fail(err, "cpus_per_gpu", "invalid_cpus",
                    "cpus_per_gpu needs GPUs: ask for gpus, gpus_per_node or gpus_per_task");
    if (r->mem_per_gpu_mb > 0 && r->gpus == 0 && r->gpus_per_node == 0 && r->gpus_per_task == 0)
        return fail(err, "mem_per_gpu_mb", "invalid_mem",
                    "mem_per_gpu_mb needs GPUs: ask for gpus, gpus_per_node or gpus_per_task");
    int nodes = r->nodes_min > 0 ? r->nodes_min : 1;
    if (r->ntasks > 0 && r->ntasks < nodes)
        return fail(err, "ntasks", "invalid_value",
                    "ntasks (%d) is fewer than the nodes asked (%d); every node runs at least one "
                    "task: ask for fewer nodes or more tasks",
                    r->ntasks, nodes);
    if ((rc = check_range(err, "mem_per_cpu_mb", "invalid_mem", r->mem_per_cpu_mb, 0,
                          lim->max_mem_mb, INT64_MAX, "use a positive size in MiB",
                          "ask for less memory")) != 0)
        return rc;
    return 0;
}

/* The text options: partition name, output/error patterns, export, chdir, signal and the free
 * texts that reach Slurm. */
static int check_texts(const jobreq *r, const jobreq_limits *lim, jobreq_error *err)
{
    int rc;
    if (r->partition[0] != '\0' && !jobreq_ident_valid(r->partition))
        return fail(err, "partition", "invalid_partition",
                    "partition \"%.64s\" is not a valid partition name (letters, digits, '.', '_' "
                    "and '-')",
                    r->partition);
    /* with the job's own name, so that a %x that would make a path is refused now */
    char name[JOBREQ_FILE_MAX];
    jobreq_output_ctx ctx = {.job_id = 0, .array_task_id = -1, .name = r->name, .user = "u"};
    if (r->output[0] != '\0' &&
        (rc = jobreq_output_expand(r->output, &ctx, "output", name, sizeof name, err)) != 0)
        return rc;
    if (r->error[0] != '\0' &&
        (rc = jobreq_output_expand(r->error, &ctx, "error", name, sizeof name, err)) != 0)
        return rc;
    if (r->env_export[0] != '\0' &&
        (rc = jobreq_export_check(r->env_export, lim->export_deny, err)) != 0)
        return rc;
    if (r->chdir[0] != '\0' && (rc = jobreq_chdir_check(r->chdir, err)) != 0) return rc;
    int signo, secs, batch;
    if (r->signal[0] != '\0' && jobreq_signal_parse(r->signal, &signo, &secs, &batch) != 0)
        return fail(err, "signal", "invalid_signal",
                    "signal must be [R:|B:]SIG[@SECONDS], SIG a number or a name such as USR1, "
                    "SECONDS 0 to 65535 (e.g. B:USR1@120)");
    if (r->exclusive != 0 && r->exclusive != 1)
        return fail(err, "exclusive", "invalid_value", "exclusive must be true or false");
    /* the server knows its nodes (r->node_gpus from lim); the CLI, without limits, leaves it */
    if (r->exclusive == 1 && lim != &no_limits && r->node_gpus <= 0)
        return fail(err, "exclusive", "invalid_exclusive",
                    "exclusive is refused here: Slurm gives an exclusive job every GPU of its "
                    "nodes and this site does not say how many a node has (node_gpus in "
                    "antennad's config); ask for the GPUs you need (e.g. --gpus-per-node=8)");
    if (r->requeue < -1 || r->requeue > 1)
        return fail(err, "requeue", "invalid_value", "requeue must be true or false");
    static const struct {
        const char *field;
        size_t off, len;
    } texts[] = {
        {"constraint", offsetof(jobreq, constraint), sizeof r->constraint},
        {"comment", offsetof(jobreq, comment), sizeof r->comment},
        {"array", offsetof(jobreq, array), sizeof r->array},
        {"dependency", offsetof(jobreq, dependency), sizeof r->dependency},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        const char *v = (const char *)r + texts[i].off;
        size_t n = strnlen(v, texts[i].len);
        if (n == texts[i].len || !text_printable(v, n))
            return fail(err, texts[i].field, "invalid_value",
                        "%s must be printable text of at most %zu bytes, without control "
                        "characters",
                        texts[i].field, texts[i].len - 1);
    }
    for (const char *p = r->constraint; *p; p++)
        if (!(type_char_ok(*p) || strchr("&|,*[]():.", *p) != NULL))
            return fail(err, "constraint", "invalid_value",
                        "constraint may hold node feature names with & | , * [ ] ( ) : . only "
                        "(e.g. a100&ib)");
    return 0;
}

/* a * b into *out, or false when it does not fit an int. */
static bool mul_ok(int a, int b, int *out)
{
    int64_t p = (int64_t)a * (int64_t)b;
    if (p > INT_MAX || p < 0) return false;
    *out = (int)p;
    return true;
}

int jobreq_totals_get(const jobreq *r, jobreq_totals *t)
{
    memset(t, 0, sizeof *t);
    int nodes = r->nodes_max > 0 ? r->nodes_max : r->nodes_min > 0 ? r->nodes_min : 1;
    int tasks = nodes;
    if (r->ntasks > 0)
        tasks = r->ntasks;
    else if (r->ntasks_per_node > 0 && !mul_ok(r->ntasks_per_node, nodes, &tasks))
        return -EOVERFLOW;
    int gpus = r->gpus > 0 ? r->gpus : 0;
    if (r->gpus_per_node > 0) {
        if (!mul_ok(r->gpus_per_node, nodes, &gpus)) return -EOVERFLOW;
    } else if (r->gpus_per_task > 0) {
        if (!mul_ok(r->gpus_per_task, tasks, &gpus)) return -EOVERFLOW;
    }
    int cpus;
    if (r->cpus_per_gpu > 0 && gpus > 0) {
        if (!mul_ok(r->cpus_per_gpu, gpus, &cpus)) return -EOVERFLOW;
    } else if (!mul_ok(r->cpus_per_task > 0 ? r->cpus_per_task : 1, tasks, &cpus)) {
        return -EOVERFLOW;
    }
    if (r->exclusive == 1 && r->node_gpus > 0) { /* Slurm gives it whole nodes: all of them */
        if (!mul_ok(r->node_gpus, nodes, &gpus)) return -EOVERFLOW;
        if (r->node_cpus > 0 && !mul_ok(r->node_cpus, nodes, &cpus)) return -EOVERFLOW;
    }
    t->nodes = nodes;
    t->tasks = tasks;
    t->gpus = gpus;
    t->cpus = cpus;
    return 0;
}

/* Appends n bytes of s to out[len] at *used; false when it does not fit. */
static bool put(char *out, size_t len, size_t *used, const char *s, size_t n)
{
    if (*used + n >= len) return false;
    memcpy(out + *used, s, n);
    *used += n;
    out[*used] = '\0';
    return true;
}

int jobreq_output_expand(const char *pattern, const jobreq_output_ctx *ctx, const char *field,
                         char *out, size_t len, jobreq_error *err)
{
    const char *code = "invalid_output";
    if (field == NULL) field = "output";
    if (pattern == NULL || out == NULL || len == 0)
        return fail(err, field, code, "%s needs a file name pattern", field);
    size_t used = 0;
    out[0] = '\0';
    char num[32];
    for (const char *p = pattern; *p; p++) {
        if (*p != '%') {
            if (!put(out, len, &used, p, 1)) goto too_long;
            continue;
        }
        p++;
        int width = 0;
        while (*p >= '0' && *p <= '9') {
            width = width * 10 + (*p - '0');
            if (width > 20) width = 20;
            p++;
        }
        const char *s = NULL;
        switch (*p) {
        case '%':
            s = "%";
            break;
        case 'j':
        case 'A':
        case 'a': {
            long long v;
            if (*p == 'j')
                v = ctx ? (long long)ctx->job_id : 0;
            else if (*p == 'A')
                v = ctx ? (long long)(ctx->array_job_id > 0 ? ctx->array_job_id : ctx->job_id) : 0;
            else
                v = ctx && ctx->array_task_id >= 0 ? ctx->array_task_id : 0;
            snprintf(num, sizeof num, "%0*lld", width, v);
            s = num;
            break;
        }
        case 'x':
            s = ctx && ctx->name ? ctx->name : "x";
            break;
        case 'u':
            s = ctx && ctx->user ? ctx->user : "u";
            break;
        case 'N':
            return fail(err, field, code,
                        "%s pattern \"%.64s\": %%N (the first node's name) is not known when "
                        "Antenna names the file, before the job has nodes; use %%j (the job id) "
                        "instead",
                        field, pattern);
        case '\0':
            return fail(err, field, code,
                        "%s pattern \"%.64s\" ends with a lone '%%'; write %%%% for a '%%'", field,
                        pattern);
        default:
            return fail(err, field, code,
                        "%s pattern \"%.64s\": %%%c is not supported; use %%j, %%A, %%a, %%x, %%u "
                        "or %%%%",
                        field, pattern, (*p > 0x20 && *p < 0x7f) ? *p : '?');
        }
        if (!put(out, len, &used, s, strlen(s))) goto too_long;
    }
    if (used == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0 || strchr(out, '/') != NULL)
        return fail(err, field, code,
                    "%s must be a bare file name inside the job's own folder (got \"%.64s\"): no "
                    "'/', no absolute path, not \".\" or \"..\"; e.g. run-%%j.out",
                    field, pattern);
    if (!text_printable(out, used))
        return fail(err, field, code,
                    "%s must be printable text without control characters; e.g. run-%%j.out",
                    field);
    return 0;
too_long:
    return fail(err, field, code, "%s expands to more than %zu bytes; use a shorter file name",
                field, len - 1);
}

static bool env_name_ok(const char *s, size_t n)
{
    if (n == 0 || (s[0] >= '0' && s[0] <= '9')) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static bool prefix_of(const char *pre, size_t pn, const char *s, size_t n)
{
    return n >= pn && memcmp(s, pre, pn) == 0;
}

/* True when the name s[0..n) is one a job may not be given. */
static bool env_name_denied(const char *s, size_t n, const char *const *deny)
{
    static const char *const builtin[] = {"LD_*", "SLURM_*", "ANTENNA_*", NULL};
    const char *const *lists[2] = {builtin, deny};
    for (int l = 0; l < 2; l++) {
        for (const char *const *d = lists[l]; d != NULL && *d != NULL; d++) {
            size_t dn = strlen(*d);
            if (dn > 0 && (*d)[dn - 1] == '*') {
                if (prefix_of(*d, dn - 1, s, n)) return true;
            } else if (dn == n && memcmp(*d, s, n) == 0) {
                return true;
            }
        }
    }
    return false;
}

int jobreq_export_check(const char *spec, const char *const *deny, jobreq_error *err)
{
    const char *f = "export";
    const char *code = "invalid_export";
    if (spec == NULL || spec[0] == '\0')
        return fail(err, f, code, "export is empty; use ALL, NONE or NAME=value,...");
    size_t total = strlen(spec);
    if (!text_printable(spec, total))
        return fail(err, f, code, "export must be printable text without control characters");
    const char *p = spec;
    bool first = true;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t nn = eq ? (size_t)(eq - p) : n;
        if (first && !eq &&
            ((n == 3 && memcmp(p, "ALL", 3) == 0) || (n == 4 && memcmp(p, "NONE", 4) == 0))) {
            /* the leading keyword */
        } else if (n == 0) {
            return fail(err, f, code,
                        "export has an empty item; write NAME=value items apart by "
                        "commas");
        } else if (!env_name_ok(p, nn)) {
            return fail(err, f, code,
                        "export item \"%.*s\": a variable name is letters, digits and '_', not "
                        "starting with a digit",
                        (int)(n > 64 ? 64 : n), p);
        } else if (env_name_denied(p, nn, deny)) {
            return fail(err, f, code,
                        "export name %.*s is refused: LD_*, SLURM_*, ANTENNA_* and the site's "
                        "listed names cannot be set for a job; remove it",
                        (int)(nn > 64 ? 64 : nn), p);
        } else if (!eq) {
            return fail(err, f, code,
                        "export item %.*s has no value: Antenna never copies the submitter's own "
                        "environment to the job; write %.*s=value",
                        (int)(nn > 64 ? 64 : nn), p, (int)(nn > 64 ? 64 : nn), p);
        }
        first = false;
        if (!c) break;
        p = c + 1;
    }
    return 0;
}

int jobreq_export_each(const char *spec, int (*fn)(void *arg, const char *item), void *arg)
{
    if (jobreq_export_check(spec, NULL, NULL) != 0) return -EINVAL;
    char item[JOBREQ_EXPORT_MAX];
    const char *p = spec;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (memchr(p, '=', n) != NULL) {
            if (n >= sizeof item) return -EINVAL;
            memcpy(item, p, n);
            item[n] = '\0';
            int rc = fn(arg, item);
            if (rc < 0) return rc;
        }
        if (!c) break;
        p = c + 1;
    }
    return 0;
}

int jobreq_signal_parse(const char *s, int *signo, int *seconds, int *batch_only)
{
    static const struct {
        const char *name;
        int num;
    } names[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT},
        {"KILL", SIGKILL}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"USR1", SIGUSR1},
        {"USR2", SIGUSR2}, {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
        {"URG", SIGURG},   {"XCPU", SIGXCPU},
    };
    if (s == NULL || signo == NULL || seconds == NULL || batch_only == NULL) return -EINVAL;
    int batch = 0;
    if ((s[0] == 'B' || s[0] == 'R') && s[1] == ':') {
        batch = s[0] == 'B';
        s += 2;
    }
    const char *at = strchr(s, '@');
    size_t n = at ? (size_t)(at - s) : strlen(s);
    if (n >= 3 && memcmp(s, "SIG", 3) == 0) {
        s += 3;
        n -= 3;
    }
    int64_t num = -1;
    if (all_digits(s, n)) {
        if (parse_digits(s, n, 64, &num) != 0 || num < 1) return -EINVAL;
    } else {
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strlen(names[i].name) == n && memcmp(names[i].name, s, n) == 0) num = names[i].num;
        if (num < 0) return -EINVAL;
    }
    int64_t secs = 60;
    if (at && parse_digits(at + 1, strlen(at + 1), 65535, &secs) != 0) return -EINVAL;
    *signo = (int)num;
    *seconds = (int)secs;
    *batch_only = batch;
    return 0;
}

int jobreq_chdir_check(const char *s, jobreq_error *err)
{
    const char *f = "chdir";
    const char *code = "invalid_chdir";
    if (s == NULL || s[0] == '\0')
        return fail(err, f, code, "chdir is empty; give a folder inside the job's folder");
    size_t n = strlen(s);
    if (!text_printable(s, n))
        return fail(err, f, code, "chdir must be printable text without control characters");
    if (s[0] == '/')
        return fail(err, f, code,
                    "chdir \"%.64s\" is an absolute path: a job works inside its own folder; give "
                    "a relative folder such as \"run1\" (Antenna creates it) or leave it out",
                    s);
    const char *p = s;
    for (;;) {
        const char *c = strchr(p, '/');
        size_t k = c ? (size_t)(c - p) : strlen(p);
        if (k == 0 || (k == 2 && p[0] == '.' && p[1] == '.'))
            return fail(err, f, code,
                        "chdir \"%.64s\" leaves the job's folder or has an empty part: no \"..\", "
                        "no \"//\", no trailing '/'; give a relative folder such as \"run1\"",
                        s);
        if (!c) break;
        p = c + 1;
    }
    return 0;
}

/* Writes the NULL-terminated list into buf as "a, b, c". */
static const char *list_of(const char *const *l, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (; l != NULL && *l != NULL; l++) {
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", *l);
        if (w < 0 || (size_t)w >= len - used) break;
        used += (size_t)w;
    }
    return used ? buf : "(none)";
}

static bool in_list(const char *const *l, const char *s)
{
    for (; l != NULL && *l != NULL; l++)
        if (strcmp(*l, s) == 0) return true;
    return false;
}

int jobreq_partition_check(const char *partition, const char *const *allowed,
                           const char *const *known, jobreq_error *err)
{
    if (partition == NULL || partition[0] == '\0') return 0;
    if (in_list(allowed, partition)) return 0;
    char list[200];
    list_of(allowed, list, sizeof list);
    if (known == NULL || !in_list(known, partition)) {
        fail(err, "partition", "unknown_partition",
             "partition \"%.64s\" does not exist here; use one of: %s (or leave it out for the "
             "default)",
             partition, list);
        return -ENOENT;
    }
    fail(err, "partition", "partition_forbidden",
         "your partner may not use partition \"%.64s\"; use one of: %s (or leave it out for the "
         "default)",
         partition, list);
    return -EACCES;
}

int jobreq_validate(const jobreq *r, const jobreq_limits *lim, jobreq_error *err)
{
    if (r == NULL)
        return fail(err, "request", "invalid_value", "no job request given; send a job request");
    if (lim == NULL) lim = &no_limits;
    int rc;
    if ((rc = check_script(r, lim, err)) != 0) return rc;
    if ((rc = check_name(r, err)) != 0) return rc;
    if ((rc = check_range(err, "gpus", "invalid_gpus", r->gpus, 0, INT_MAX, INT_MAX,
                          "ask for 0 or more GPUs", "ask for fewer GPUs")) != 0)
        return rc;
    if ((rc = check_layout(r, lim, err)) != 0) return rc;
    jobreq_totals t;
    if (jobreq_totals_get(r, &t) != 0)
        return fail(err, "gpus", "invalid_gpus",
                    "the job's GPU or CPU total does not fit a number; ask for fewer nodes, tasks "
                    "or GPUs");
    if (t.gpus > lim->max_gpus)
        return fail(err, "gpus", "invalid_gpus",
                    "the job asks %d GPUs in all (%s) but this site allows at most %d GPUs per "
                    "job; ask for fewer nodes or GPUs",
                    t.gpus,
                    r->exclusive == 1 && r->node_gpus > 0 ? "exclusive: nodes x the node's GPUs"
                    : r->gpus_per_node > 0                ? "nodes x gpus_per_node"
                    : r->gpus_per_task > 0                ? "tasks x gpus_per_task"
                                                          : "gpus",
                    lim->max_gpus);
    if ((rc = check_gpu_type(r, t.gpus, lim, err)) != 0) return rc;
    if ((rc = check_range(err, "cpus_per_task", "invalid_cpus", r->cpus_per_task, 1, lim->max_cpus,
                          INT_MAX, "ask for at least 1 CPU", "ask for fewer CPUs per task")) != 0)
        return rc;
    if ((rc = check_range(err, "time_minutes", "invalid_time", r->time_minutes, 1,
                          lim->max_time_minutes, INT_MAX, "ask for at least 1 minute",
                          "ask for a shorter time limit")) != 0)
        return rc;
    if ((rc = check_range(err, "mem_mb", "invalid_mem", r->mem_mb, 0, lim->max_mem_mb, INT64_MAX,
                          "use 0 for Slurm's default or a positive size in MiB",
                          "ask for less memory")) != 0)
        return rc;
    if ((rc = check_texts(r, lim, err)) != 0) return rc;
    return 0;
}
