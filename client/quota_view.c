/* quota_view.c - text views of the API's quotas, partners and dry-run quotes for the CLI.
 * Must never talk to the network or trust the JSON's shape: every field is type-checked. */
#include "quota_view.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "job_request.h"
#include "table.h"

#define CELL 80

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

/* Formats hours with 2 decimals (never "-0.00"). */
static char *hours_text(double h, char *buf, size_t len)
{
    if (fabs(h) < 0.005) h = 0;
    snprintf(buf, len, "%.2f", h);
    return buf;
}

/* An amount (used, held): a number with 2 decimals, else "-". */
static char *amount_cell(const json_t *q, const char *key, char *buf, size_t len)
{
    json_t *v = json_object_get(q, key);
    if (json_is_number(v)) return hours_text(json_number_value(v), buf, len);
    snprintf(buf, len, "-");
    return buf;
}

/* A limit in hours: a number with 2 decimals, null as "unlimited" (as "-" when the quota was never
 * set), else "-". */
static char *limit_hours_cell(const json_t *q, const char *key, bool set, char *buf, size_t len)
{
    json_t *v = json_object_get(q, key);
    if (json_is_number(v)) return hours_text(json_number_value(v), buf, len);
    snprintf(buf, len, "%s", json_is_null(v) && set ? "unlimited" : "-");
    return buf;
}

/* A budget: "not set" for a quota never set, else as limit_hours_cell. */
static char *budget_cell(const json_t *q, const char *key, bool set, char *buf, size_t len)
{
    if (!set) {
        snprintf(buf, len, "not set");
        return buf;
    }
    return limit_hours_cell(q, key, set, buf, len);
}

/* A cap: an integer (a walltime in Slurm's format when `walltime`), null as "unlimited", else
 * "-". */
static char *cap_cell(const json_t *q, const char *key, bool walltime, char *buf, size_t len)
{
    json_t *v = json_object_get(q, key);
    if (json_is_integer(v)) {
        long long n = (long long)json_integer_value(v);
        if (walltime && n >= 0 && n <= INT_MAX)
            jobreq_time_format((int)n, buf, len);
        else
            snprintf(buf, len, "%lld", n);
    } else {
        snprintf(buf, len, "%s", json_is_null(v) ? "unlimited" : "-");
    }
    return buf;
}

/* A quota counts as set unless it says "set": false. */
static bool quota_set(const json_t *q)
{
    return !json_is_false(json_object_get(q, "set"));
}

static bool any_cpu_budget(const json_t *quotas)
{
    size_t i;
    json_t *q;
    json_array_foreach(quotas, i, q)
    {
        if (quota_set(q) && json_is_number(json_object_get(q, "cpu_hours"))) return true;
    }
    return false;
}

int quota_view_print_table(FILE *out, const json_t *quotas)
{
    static const char *const gpu_headers[] = {
        "PARTNER",  "PERIOD",   "BUDGET_GPUh", "USED",         "HELD",         "LEFT",
        "MAX_GPUS", "MAX_JOBS", "MAX_QUEUED",  "MAX_WALLTIME", "USER_MAX_GPUS"};
    static const char *const cpu_headers[] = {
        "PARTNER",  "PERIOD",      "BUDGET_GPUh", "USED",         "HELD",
        "LEFT",     "BUDGET_CPUh", "CPU_USED",    "CPU_HELD",     "CPU_LEFT",
        "MAX_GPUS", "MAX_JOBS",    "MAX_QUEUED",  "MAX_WALLTIME", "USER_MAX_GPUS"};
    if (!json_is_array(quotas) || json_array_size(quotas) == 0) return 0;
    bool cpu = any_cpu_budget(quotas);
    size_t ncols = cpu ? 15 : 11;
    table *t = table_new(ncols, cpu ? cpu_headers : gpu_headers);
    if (t == NULL) return -ENOMEM;
    int rc = 0;
    size_t i;
    json_t *q;
    json_array_foreach(quotas, i, q)
    {
        char c[15][CELL];
        const char *row[15];
        size_t k = 0;
        bool set = quota_set(q);
        const char *partner = json_string_value(json_object_get(q, "partner"));
        const char *period = json_string_value(json_object_get(q, "period"));
        snprintf(c[k++], CELL, "%s", partner ? partner : "");
        snprintf(c[k++], CELL, "%s", period ? period : "");
        budget_cell(q, "gpu_hours", set, c[k++], CELL);
        amount_cell(q, "used_gpu_hours", c[k++], CELL);
        amount_cell(q, "held_gpu_hours", c[k++], CELL);
        limit_hours_cell(q, "left_gpu_hours", set, c[k++], CELL);
        if (cpu) {
            budget_cell(q, "cpu_hours", set, c[k++], CELL);
            amount_cell(q, "used_cpu_hours", c[k++], CELL);
            amount_cell(q, "held_cpu_hours", c[k++], CELL);
            limit_hours_cell(q, "left_cpu_hours", set, c[k++], CELL);
        }
        cap_cell(q, "max_gpus", false, c[k++], CELL);
        cap_cell(q, "max_running_jobs", false, c[k++], CELL);
        cap_cell(q, "max_queued_jobs", false, c[k++], CELL);
        cap_cell(q, "max_walltime_minutes", true, c[k++], CELL);
        cap_cell(q, "user_max_gpus", false, c[k++], CELL);
        for (size_t j = 0; j < k; j++)
            row[j] = c[j];
        if ((rc = table_add_row(t, row)) != 0) goto fail_rows;
    }
    rc = table_print(t, out);
    if (rc == 0) rc = (int)table_rows(t);

fail_rows:
    table_free(t);
    return rc;
}

#define KEY_WIDTH 14

static void print_field(FILE *out, const char *key, const json_t *v)
{
    char buf[512], k[64];
    clean(key, k, sizeof k);
    size_t klen = strlen(k);
    fprintf(out, "%s:%*s", k, klen + 1 < KEY_WIDTH ? (int)(KEY_WIDTH - klen - 1) : 1, "");
    if (v == NULL || json_is_null(v)) {
        fputs("-\n", out);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (klen > 3 && strcmp(k + klen - 3, "_at") == 0) {
            char t[64];
            fprintf(out, "%s\n", clean(table_time_local(s, true, t, sizeof t), buf, sizeof buf));
        } else {
            fprintf(out, "%s\n", s[0] ? clean(s, buf, sizeof buf) : "-");
        }
    } else if (json_is_integer(v)) {
        fprintf(out, "%lld\n", (long long)json_integer_value(v));
    } else if (json_is_boolean(v)) {
        fputs(json_is_true(v) ? "true\n" : "false\n", out);
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        fprintf(out, "%s\n", s ? clean(s, buf, sizeof buf) : "?");
        free(s);
    }
}

int quota_view_print_partner(FILE *out, const json_t *partner)
{
    static const char *const order[] = {"name", "description", "share_weight", "created_at"};
    const size_t norder = sizeof order / sizeof order[0];
    for (size_t i = 0; i < norder; i++) {
        json_t *v = json_object_get(partner, order[i]);
        if (v != NULL) print_field(out, order[i], v);
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)partner, key, v)
    {
        bool known = strcmp(key, "quota") == 0;
        for (size_t i = 0; i < norder && !known; i++)
            known = strcmp(key, order[i]) == 0;
        if (!known) print_field(out, key, v);
    }
    json_t *quota = json_object_get(partner, "quota");
    if (!json_is_object(quota)) {
        print_field(out, "quota", NULL);
        return ferror(out) ? -EIO : 0;
    }
    fputc('\n', out);
    json_t *list = json_array();
    if (list == NULL || json_array_append(list, quota) != 0) {
        json_decref(list);
        return -ENOMEM;
    }
    int rc = quota_view_print_table(out, list);
    json_decref(list);
    if (rc < 0) return rc;
    return ferror(out) ? -EIO : 0;
}

/* Prints the "max cost" and "budget left" lines of a quote, for the fields it has. */
static void print_cost_lines(FILE *out, const json_t *quote)
{
    char a[CELL], b[CELL];
    json_t *cost = json_object_get(quote, "max_cost_gpu_hours");
    if (json_is_number(cost))
        fprintf(out, "  max cost:       %s GPU-hours\n",
                hours_text(json_number_value(cost), a, sizeof a));
    json_t *left = json_object_get(quote, "budget_left_gpu_hours");
    json_t *after = json_object_get(quote, "budget_left_after_gpu_hours");
    if (json_is_null(left)) {
        fputs("  budget left:    unlimited\n", out);
    } else if (json_is_number(left)) {
        hours_text(json_number_value(left), a, sizeof a);
        if (json_is_number(after))
            fprintf(out, "  budget left:    %s GPU-hours (%s after this job)\n", a,
                    hours_text(json_number_value(after), b, sizeof b));
        else
            fprintf(out, "  budget left:    %s GPU-hours\n", a);
    }
}

int quota_view_print_quote(FILE *out, const json_t *quote)
{
    json_t *admitted = json_object_get(quote, "admitted");
    if (!json_is_boolean(admitted)) return -EINVAL;
    char buf[512], code[64];
    if (json_is_false(admitted)) {
        clean(json_string_value(json_object_get(quote, "message")), buf, sizeof buf);
        clean(json_string_value(json_object_get(quote, "code")), code, sizeof code);
        if (buf[0] != '\0' && code[0] != '\0')
            fprintf(out, "Job would be refused: %s (%s)\n", buf, code);
        else if (buf[0] != '\0' || code[0] != '\0')
            fprintf(out, "Job would be refused: %s\n", buf[0] != '\0' ? buf : code);
        else
            fputs("Job would be refused (the server gave no reason)\n", out);
        print_cost_lines(out, quote);
        return ferror(out) ? -EIO : 0;
    }
    const char *period = json_string_value(json_object_get(quote, "period"));
    if (period != NULL && period[0] != '\0')
        fprintf(out, "Job would be admitted (period %s).\n", clean(period, buf, sizeof buf));
    else
        fputs("Job would be admitted.\n", out);
    print_cost_lines(out, quote);
    json_t *pos = json_object_get(quote, "queue_position");
    if (json_is_integer(pos))
        fprintf(out, "  queue position: %lld\n", (long long)json_integer_value(pos));
    const char *reason = json_string_value(json_object_get(quote, "wait_reason"));
    if (reason != NULL)
        fprintf(out, "  would wait on:  %s\n",
                reason[0] != '\0' ? clean(reason, buf, sizeof buf) : "nothing");
    json_t *prio = json_object_get(quote, "priority");
    if (json_is_number(prio)) fprintf(out, "  priority:       %.1f\n", json_number_value(prio));
    return ferror(out) ? -EIO : 1;
}
