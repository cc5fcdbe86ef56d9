/* quota_args.c - quota periods and the `antenna quota set` options as a PATCH body.
 * Must never print or talk to the network. */
#include "quota_args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "job_request.h"

/* Kinds of field value. */
enum kind { KIND_HOURS, KIND_COUNT, KIND_WALLTIME };

static const struct field {
    const char *opt;
    const char *key; /* the JSON field */
    enum kind kind;
} fields[] = {
    {"--gpu-hours", "gpu_hours", KIND_HOURS},
    {"--cpu-hours", "cpu_hours", KIND_HOURS},
    {"--max-gpus", "max_gpus", KIND_COUNT},
    {"--max-jobs", "max_running_jobs", KIND_COUNT},
    {"--max-queued", "max_queued_jobs", KIND_COUNT},
    {"--max-walltime", "max_walltime_minutes", KIND_WALLTIME},
    {"--user-max-gpus", "user_max_gpus", KIND_COUNT},
};

#define NFIELDS (sizeof fields / sizeof fields[0])

/* Largest budget accepted, in hours: far beyond any cluster, small enough to stay exact. */
#define HOURS_MAX 1e12

void quota_args_init(quota_args *q)
{
    q->body = NULL;
}

void quota_args_close(quota_args *q)
{
    if (q == NULL) return;
    json_decref(q->body);
    q->body = NULL;
}

static const struct field *find_field(const char *opt)
{
    if (opt == NULL) return NULL;
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(fields[i].opt, opt) == 0) return &fields[i];
    return NULL;
}

int quota_args_opt_known(const char *opt)
{
    return find_field(opt) != NULL;
}

/* Parses "N" or "N.F" (decimal digits only: no sign, exponent, hex, inf or nan). */
static int parse_hours(const char *s, double *out)
{
    size_t whole = strspn(s, "0123456789");
    const char *p = s + whole;
    size_t frac = 0;
    if (*p == '.') frac = strspn(p + 1, "0123456789");
    if (whole == 0 && frac == 0) return -EINVAL;
    if (*p == '.' && frac == 0) return -EINVAL;
    if (p[*p == '.' ? frac + 1 : 0] != '\0') return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0 || v > HOURS_MAX) return -EINVAL;
    *out = v;
    return 0;
}

/* Parses a whole number 0..INT_MAX (decimal digits only). */
static int parse_count(const char *s, long long *out)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || s[n] != '\0' || n > 10) return -EINVAL;
    long long v = strtoll(s, NULL, 10);
    if (v > INT_MAX) return -EINVAL;
    *out = v;
    return 0;
}

int quota_args_set(quota_args *q, const char *opt, const char *value, char *err, size_t len)
{
    const struct field *f = find_field(opt);
    if (f == NULL) return -ENOENT;
    if (value == NULL) value = "";
    json_t *v = NULL;
    if (strcasecmp(value, "unlimited") == 0) {
        v = json_null();
    } else if (f->kind == KIND_HOURS) {
        double h;
        if (parse_hours(value, &h) != 0) {
            snprintf(err, len,
                     "invalid %s value \"%s\": use a number of hours >= 0 such as 100 or 12.5, "
                     "or unlimited",
                     f->opt, value);
            return -EINVAL;
        }
        v = json_real(h);
    } else if (f->kind == KIND_COUNT) {
        long long n;
        if (parse_count(value, &n) != 0) {
            snprintf(err, len,
                     "invalid %s value \"%s\": use a whole number from 0 to %d, or unlimited",
                     f->opt, value, INT_MAX);
            return -EINVAL;
        }
        v = json_integer(n);
    } else {
        int minutes;
        if (jobreq_time_parse(value, &minutes) != 0) {
            snprintf(err, len,
                     "invalid %s value \"%s\": use a Slurm time such as 90 (minutes), 2:00:00, "
                     "1-00:00:00 (D-HH:MM:SS) or 1-12, or unlimited",
                     f->opt, value);
            return -EINVAL;
        }
        v = json_integer(minutes);
    }
    if (v == NULL) goto fail_nomem;
    if (q->body == NULL && (q->body = json_object()) == NULL) goto fail_body;
    if (json_object_set_new(q->body, f->key, v) != 0) goto fail_nomem; /* steals v, even then */
    return 0;

fail_body:
    json_decref(v);
fail_nomem:
    snprintf(err, len, "out of memory");
    return -ENOMEM;
}

int quota_args_check(const quota_args *q, char *err, size_t len)
{
    if (q->body != NULL && json_object_size(q->body) > 0) return 0;
    snprintf(err, len,
             "nothing to set: give at least one of --gpu-hours, --cpu-hours, --max-gpus, "
             "--max-jobs, --max-queued, --max-walltime, --user-max-gpus");
    return -EINVAL;
}

const json_t *quota_args_body(const quota_args *q)
{
    return q->body;
}

int quota_args_period_valid(const char *s, int allow_current)
{
    if (s == NULL) return 0;
    if (allow_current && strcmp(s, "current") == 0) return 1;
    if (strlen(s) != 7 || s[4] != '-') return 0;
    for (int i = 0; i < 7; i++)
        if (i != 4 && (s[i] < '0' || s[i] > '9')) return 0;
    int month = (s[5] - '0') * 10 + (s[6] - '0');
    return month >= 1 && month <= 12;
}
