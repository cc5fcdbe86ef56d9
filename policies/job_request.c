/* job_request.c - the job-request model, its parsers (Slurm's time/mem/gres syntax) and validation.
 * Must never do I/O, log, allocate, or include libuv/Slurm/SQLite/OpenSSL headers. */
#include "job_request.h"

#include <errno.h>
#include <limits.h>
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

static int check_gpu_type(const jobreq *r, const jobreq_limits *lim, jobreq_error *err)
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
    if (r->gpus == 0)
        return fail(err, "gpu_type", "invalid_gpu_type",
                    "gpu_type \"%s\" is set but gpus is 0; ask for at least 1 GPU or leave "
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

int jobreq_validate(const jobreq *r, const jobreq_limits *lim, jobreq_error *err)
{
    if (r == NULL)
        return fail(err, "request", "invalid_value", "no job request given; send a job request");
    if (lim == NULL) lim = &no_limits;
    int rc;
    if ((rc = check_script(r, lim, err)) != 0) return rc;
    if ((rc = check_name(r, err)) != 0) return rc;
    if ((rc = check_range(err, "gpus", "invalid_gpus", r->gpus, 0, lim->max_gpus, INT_MAX,
                          "ask for 0 or more GPUs", "ask for fewer GPUs")) != 0)
        return rc;
    if ((rc = check_gpu_type(r, lim, err)) != 0) return rc;
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
    return 0;
}
