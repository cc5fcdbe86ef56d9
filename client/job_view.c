/* job_view.c - text views of the API's job objects for the CLI.
 * Must never talk to the network or trust the JSON's shape: every field is type-checked. */
#include "job_view.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "job_request.h"
#include "table.h"

static const char *const terminal_states[] = {
    "completed", "failed",    "cancelled", "timeout",       "node_fail",
    "preempted", "boot_fail", "deadline",  "out_of_memory", "lost",
};

int job_view_state_terminal(const char *state)
{
    if (state == NULL) return 0;
    for (size_t i = 0; i < sizeof terminal_states / sizeof terminal_states[0]; i++)
        if (strcmp(state, terminal_states[i]) == 0) return 1;
    return 0;
}

/* Copies a server string for display: control characters become spaces, cut to fit. */
static const char *clean(const char *s, char *buf, size_t len)
{
    size_t k = 0;
    if (s == NULL) s = "";
    for (; *s && k + 1 < len; s++)
        buf[k++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
    buf[k] = '\0';
    return buf;
}

static const char *get_str(const json_t *job, const char *key)
{
    return json_string_value(json_object_get(job, key));
}

/* Returns true and sets *v when job[key] is an integer. */
static bool get_int(const json_t *job, const char *key, long long *v)
{
    json_t *j = json_object_get(job, key);
    if (!json_is_integer(j)) return false;
    *v = (long long)json_integer_value(j);
    return true;
}

/* Appends ", " (unless first) and a formatted item to buf[len] at *used, cutting at the end. */
static void append(char *buf, size_t len, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
    if (*used + 1 >= len) return;
    if (*used > 0) {
        int w = snprintf(buf + *used, len - *used, ", ");
        if (w > 0) *used = *used + (size_t)w < len ? *used + (size_t)w : len - 1;
    }
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    if (w > 0) *used = *used + (size_t)w < len ? *used + (size_t)w : len - 1;
}

char *job_view_state_line(const json_t *job, char *buf, size_t len)
{
    char state[64], reason[160], extra[256] = "";
    long long id = 0, n;
    const char *st = get_str(job, "state");
    clean(st ? st : "unknown", state, sizeof state);
    clean(get_str(job, "reason"), reason, sizeof reason);
    bool terminal = job_view_state_terminal(st);
    size_t used = 0;
    if (st && strcmp(st, "dispatched") == 0 && get_int(job, "slurm_job_id", &n))
        append(extra, sizeof extra, &used, "slurm %lld", n);
    if (terminal && get_int(job, "exit_code", &n))
        append(extra, sizeof extra, &used, "exit %lld", n);
    if (reason[0] != '\0') append(extra, sizeof extra, &used, "%s", reason);
    if (!terminal && json_is_true(json_object_get(job, "cancel_requested")))
        append(extra, sizeof extra, &used, "cancel requested");
    get_int(job, "id", &id);
    if (extra[0] != '\0')
        snprintf(buf, len, "job %lld: %s (%s)", id, state, extra);
    else
        snprintf(buf, len, "job %lld: %s", id, state);
    return buf;
}

int job_view_exit_status(const json_t *job)
{
    const char *st = get_str(job, "state");
    if (st != NULL && strcmp(st, "completed") == 0) return 0;
    long long code;
    if (get_int(job, "exit_code", &code) && code != 0) {
        if (code < 0) return 1;
        return code > 255 ? 255 : (int)code;
    }
    return 1;
}

/* The states an array's line counts first, in this order; others follow as the server sent them. */
static const char *const array_state_order[] = {"running",    "suspended",   "pending",
                                                "dispatched", "dispatching", "queued"};

void job_view_array_counts(const json_t *array, char *buf, size_t len)
{
    json_t *counts = json_object_get(array, "counts");
    size_t off = 0, n_order = sizeof array_state_order / sizeof array_state_order[0];
    buf[0] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        const char *key;
        json_t *v;
        for (size_t i = 0; pass == 0 && i < n_order; i++) {
            v = json_object_get(counts, array_state_order[i]);
            if (json_is_integer(v) && off < len)
                off += (size_t)snprintf(buf + off, len - off, "%s%lld %s", off ? ", " : "",
                                        (long long)json_integer_value(v), array_state_order[i]);
        }
        if (pass == 0) continue;
        json_object_foreach(counts, key, v)
        {
            bool first = false;
            for (size_t i = 0; i < n_order && !first; i++)
                first = strcmp(key, array_state_order[i]) == 0;
            if (!first && json_is_integer(v) && off < len) {
                char k[32];
                off += (size_t)snprintf(buf + off, len - off, "%s%lld %s", off ? ", " : "",
                                        (long long)json_integer_value(v), clean(key, k, sizeof k));
            }
        }
    }
}

int job_view_print_table(FILE *out, const json_t *jobs)
{
    static const char *const headers[] = {"ID",         "NAME",      "STATE",    "GPUS",
                                          "TIME_LIMIT", "SUBMITTED", "SLURM_ID", "REASON"};
    if (!json_is_array(jobs) || json_array_size(jobs) == 0) return 0;
    table *t = table_new(8, headers);
    if (t == NULL) return -ENOMEM;
    int rc = 0;
    size_t i;
    json_t *job;
    json_array_foreach(jobs, i, job)
    {
        char id[96] = "", gpus[64] = "", limit[32] = "", submitted[64], slurm[24] = "";
        long long n;
        if (get_int(job, "id", &n)) snprintf(id, sizeof id, "%lld", n);
        if (get_int(job, "gpus", &n)) {
            const char *type = get_str(job, "gpu_type");
            if (type != NULL && type[0] != '\0' && n > 0)
                snprintf(gpus, sizeof gpus, "%.32s:%lld", type, n);
            else
                snprintf(gpus, sizeof gpus, "%lld", n);
        }
        if (get_int(job, "time_minutes", &n) && n >= 0 && n <= INT_MAX)
            jobreq_time_format((int)n, limit, sizeof limit);
        table_time_local(get_str(job, "submitted_at"), false, submitted, sizeof submitted);
        if (get_int(job, "slurm_job_id", &n)) snprintf(slurm, sizeof slurm, "%lld", n);
        const char *state = get_str(job, "state"), *reason = get_str(job, "reason");
        char counts[256], requeued[64];
        if (get_int(job, "restarts", &n) && n > 0) { /* Slurm reran it: each run is charged */
            snprintf(requeued, sizeof requeued, "%.24s (requeued %lldx)", state ? state : "-", n);
            state = requeued;
        }
        json_t *array = json_object_get(job, "array");
        if (json_is_object(array)) { /* one line for the whole array, with its counts by state */
            char spec[64];
            const char *sp = get_str(array, "spec");
            if (get_int(job, "id", &n))
                snprintf(id, sizeof id, "%lld_[%.*s]", n, (int)(sizeof id - 24),
                         sp ? clean(sp, spec, sizeof spec) : "?");
            job_view_array_counts(array, counts, sizeof counts);
            state = counts;
            reason = "";
            slurm[0] = '\0';
        }
        const char *row[] = {id,    get_str(job, "name"), state, gpus, limit, submitted, slurm,
                             reason};
        if ((rc = table_add_row(t, row)) != 0) goto fail_rows;
    }
    rc = table_print(t, out);
    if (rc == 0) rc = (int)table_rows(t);

fail_rows:
    table_free(t);
    return rc;
}

static const char *const detail_order[] = {
    "id",           "name",          "state",          "reason",
    "user",         "partner",       "unix_user",      "gpus",
    "gpu_type",     "cpus_per_task", "mem_mb",         "time_minutes",
    "slurm_job_id", "request_id",    "exit_code",      "cancel_requested",
    "period",       "priority",      "hold_gpu_hours", "charge_gpu_hours",
    "submitted_at", "dispatched_at", "started_at",     "ended_at",
    "restarts",
};

#define DETAIL_KEY_WIDTH 18

/* Returns true for the fields that hold GPU-hours ("hold_gpu_hours", ...). */
static bool is_hours_field(const char *key)
{
    size_t n = strlen(key);
    return n > 10 && strcmp(key + n - 10, "_gpu_hours") == 0;
}

static void print_value(FILE *out, const char *key, json_t *v)
{
    char buf[512];
    size_t klen = strlen(key);
    fprintf(out, "%s:%*s", key,
            klen + 1 < DETAIL_KEY_WIDTH ? (int)(DETAIL_KEY_WIDTH - klen - 1) : 1, "");
    if (v == NULL || json_is_null(v)) {
        fputs("-\n", out);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = strlen(key);
        if (n > 3 && strcmp(key + n - 3, "_at") == 0) {
            char t[64];
            fprintf(out, "%s\n", clean(table_time_local(s, true, t, sizeof t), buf, sizeof buf));
        } else {
            fprintf(out, "%s\n", s[0] ? clean(s, buf, sizeof buf) : "-");
        }
    } else if (json_is_number(v) && is_hours_field(key)) {
        double h = json_number_value(v);
        fprintf(out, "%.2f GPU-hours\n", fabs(h) < 0.005 ? 0.0 : h);
    } else if (json_is_real(v)) {
        fprintf(out, "%.1f\n", json_real_value(v));
    } else if (json_is_integer(v)) {
        long long n = (long long)json_integer_value(v);
        if (strcmp(key, "time_minutes") == 0 && n >= 0 && n <= INT_MAX) {
            char t[32];
            fprintf(out, "%lld (%s)\n", n, jobreq_time_format((int)n, t, sizeof t));
        } else if (strcmp(key, "mem_mb") == 0 && n == 0) {
            fputs("0 (Slurm's default)\n", out);
        } else {
            fprintf(out, "%lld\n", n);
        }
    } else if (json_is_boolean(v)) {
        fputs(json_is_true(v) ? "true\n" : "false\n", out);
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        fprintf(out, "%s\n", s ? clean(s, buf, sizeof buf) : "?");
        free(s);
    }
}

int job_view_print_detail(FILE *out, const json_t *job)
{
    for (size_t i = 0; i < sizeof detail_order / sizeof detail_order[0]; i++) {
        json_t *v = json_object_get(job, detail_order[i]);
        if (v != NULL) print_value(out, detail_order[i], v);
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)job, key, v)
    {
        bool known = (strcmp(key, "array") == 0 && json_is_object(v)) || /* job_view_print_array */
                     (strcmp(key, "runs") == 0 && json_is_array(v));     /* job_view_print_runs */
        for (size_t i = 0; i < sizeof detail_order / sizeof detail_order[0] && !known; i++)
            known = strcmp(key, detail_order[i]) == 0;
        if (!known) {
            char k[64];
            print_value(out, clean(key, k, sizeof k), v);
        }
    }
    return ferror(out) ? -EIO : 0;
}

int job_view_print_array(FILE *out, const json_t *array)
{
    if (!json_is_object(array)) return 0;
    char buf[256], line[256];
    long long n;
    const char *spec = get_str(array, "spec");
    fprintf(out, "%s:%*s%s", "array", DETAIL_KEY_WIDTH - 6, "",
            spec ? clean(spec, buf, sizeof buf) : "-");
    if (get_int(array, "task_count", &n)) fprintf(out, ", %lld task(s)", n);
    if (get_int(array, "max_running", &n) && n > 0) fprintf(out, ", at most %lld at once", n);
    job_view_array_counts(array, line, sizeof line);
    fprintf(out, "%s%s\n", line[0] ? ": " : "", line);
    json_t *tasks = json_object_get(array, "tasks");
    if (!json_is_array(tasks) || json_array_size(tasks) == 0) return ferror(out) ? -EIO : 0;
    static const char *const headers[] = {"TASK",     "JOB_ID",  "STATE", "REASON",
                                          "SLURM_ID", "STARTED", "ENDED", "CHARGE"};
    table *t = table_new(8, headers);
    if (t == NULL) return -ENOMEM;
    int rc = 0;
    size_t i;
    json_t *task;
    fputc('\n', out);
    json_array_foreach(tasks, i, task)
    {
        char ref[48] = "", id[24] = "", slurm[24] = "", started[64], ended[64], charge[32] = "";
        long long aid = 0, idx;
        get_int(array, "array_job_id", &aid);
        if (get_int(task, "task_id", &idx)) snprintf(ref, sizeof ref, "%lld_%lld", aid, idx);
        if (get_int(task, "id", &n)) snprintf(id, sizeof id, "%lld", n);
        if (get_int(task, "slurm_job_id", &n)) snprintf(slurm, sizeof slurm, "%lld", n);
        table_time_local(get_str(task, "started_at"), false, started, sizeof started);
        table_time_local(get_str(task, "ended_at"), false, ended, sizeof ended);
        json_t *c = json_object_get(task, "charge_gpu_hours");
        if (json_is_number(c)) snprintf(charge, sizeof charge, "%.2f GPU-h", json_number_value(c));
        const char *row[] = {
            ref,   id,    get_str(task, "state"), get_str(task, "reason"), slurm, started,
            ended, charge};
        if ((rc = table_add_row(t, row)) != 0) break;
    }
    if (rc == 0) rc = table_print(t, out);
    table_free(t);
    return rc;
}

int job_view_print_runs(FILE *out, const json_t *runs)
{
    if (!json_is_array(runs) || json_array_size(runs) == 0) return 0;
    static const char *const headers[] = {"RUN",   "SLURM_ID", "STARTED",
                                          "ENDED", "ELAPSED",  "CHARGE"};
    table *t = table_new(6, headers);
    if (t == NULL) return -ENOMEM;
    int rc = 0;
    size_t i;
    json_t *run;
    fprintf(out, "\nruns requeued by Slurm (each charged; the last run is the job's own times):\n");
    json_array_foreach(runs, i, run)
    {
        char no[48] = "", slurm[24] = "", started[64], ended[64], elapsed[32] = "", charge[32] = "";
        long long n, k;
        if (get_int(run, "run", &n)) {
            if (get_int(run, "runs", &k) && k > 1)
                snprintf(no, sizeof no, "%lld (%lld runs)", n, k);
            else
                snprintf(no, sizeof no, "%lld", n);
        }
        if (get_int(run, "slurm_job_id", &n)) snprintf(slurm, sizeof slurm, "%lld", n);
        table_time_local(get_str(run, "started_at"), false, started, sizeof started);
        table_time_local(get_str(run, "ended_at"), false, ended, sizeof ended);
        if (get_int(run, "elapsed_seconds", &n)) snprintf(elapsed, sizeof elapsed, "%lld s", n);
        json_t *c = json_object_get(run, "charge_gpu_hours");
        if (json_is_number(c)) snprintf(charge, sizeof charge, "%.2f GPU-h", json_number_value(c));
        const char *row[] = {no, slurm, started, ended, elapsed, charge};
        if ((rc = table_add_row(t, row)) != 0) break;
    }
    if (rc == 0) rc = table_print(t, out);
    table_free(t);
    return rc;
}
