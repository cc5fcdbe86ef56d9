/* job_array.c - the parser of sbatch's --array spec and of ID_TASK references. Must never do I/O,
 * log, or allocate more than the site's bound on tasks allows.
 */
#include "job_array.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void job_array_init(job_array *a)
{
    memset(a, 0, sizeof *a);
}

void job_array_close(job_array *a)
{
    if (a == NULL) return;
    free(a->tasks);
    job_array_init(a);
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Reads a decimal number of at most 7 digits (indices, steps, %max) at *p, advancing it. Returns
 * 0, or -1 when there is no digit or the number is above JOB_ARRAY_INDEX_MAX. */
static int read_num(const char **p, int *out)
{
    const char *s = *p;
    long v = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9') {
        if (++digits > 7) return -1;
        v = v * 10 + (*s - '0');
        s++;
    }
    if (digits == 0 || v > JOB_ARRAY_INDEX_MAX) return -1;
    *out = (int)v;
    *p = s;
    return 0;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

#define FORMS                                                                                      \
    "write a list of N, A-B or A-B:STEP separated by commas, with %%MAX at the end to "            \
    "run at most MAX tasks at once (e.g. 0-15, 0,4,7, 0-15:4, 1-7%%2)"

int job_array_parse(const char *spec, int max_tasks, job_array *a, char *err, size_t errlen)
{
    if (a == NULL) return -EINVAL;
    job_array_close(a);
    if (max_tasks <= 0) max_tasks = JOB_ARRAY_TASKS_DEFAULT;
    if (spec == NULL || spec[0] == '\0')
        return fail(err, errlen, "the array spec is empty; " FORMS);
    if (strlen(spec) >= JOB_ARRAY_SPEC_MAX)
        return fail(err, errlen, "the array spec is longer than %d characters; " FORMS,
                    JOB_ARRAY_SPEC_MAX - 1);

    /* first pass: check the grammar and count the tasks, so that the list is allocated once */
    size_t count = 0;
    int max_running = 0, first_step = 0;
    for (int pass = 0; pass < 2; pass++) {
        const char *p = spec;
        size_t k = 0;
        for (;;) {
            int lo, hi, step = 1;
            if (read_num(&p, &lo) < 0)
                return fail(err, errlen,
                            "bad array spec \"%s\" at \"%s\": expected a task index from 0 to %d; "
                            "" FORMS,
                            spec, p, JOB_ARRAY_INDEX_MAX);
            hi = lo;
            if (*p == '-') {
                p++;
                if (read_num(&p, &hi) < 0)
                    return fail(err, errlen,
                                "bad array spec \"%s\": a range A-B needs an end index from 0 to "
                                "%d; " FORMS,
                                spec, JOB_ARRAY_INDEX_MAX);
                if (hi < lo)
                    return fail(err, errlen,
                                "bad array spec \"%s\": the range %d-%d ends before it starts; "
                                "write %d-%d",
                                spec, lo, hi, hi, lo);
                if (*p == ':') {
                    p++;
                    if (read_num(&p, &step) < 0 || step < 1)
                        return fail(err, errlen,
                                    "bad array spec \"%s\": the step after ':' must be a whole "
                                    "number of at least 1; " FORMS,
                                    spec);
                    if (first_step == 0) first_step = step;
                }
            }
            size_t n = (size_t)(hi - lo) / (size_t)step + 1;
            if (pass == 0) {
                count += n;
                if (count > (size_t)max_tasks)
                    return fail(err, errlen,
                                "the array \"%s\" has more than %d tasks, this site's limit per "
                                "array; split it into several arrays",
                                spec, max_tasks);
            } else {
                for (int v = lo; k < count; v += step) {
                    a->tasks[k++] = v;
                    if (v > hi - step) break;
                }
            }
            if (*p == ',') {
                p++;
                continue;
            }
            break;
        }
        if (*p == '%') {
            p++;
            if (read_num(&p, &max_running) < 0 || max_running < 1)
                return fail(err, errlen,
                            "bad array spec \"%s\": %%MAX must be a whole number of at least 1 "
                            "(the most tasks running at once)",
                            spec);
        }
        if (*p != '\0')
            return fail(err, errlen, "bad array spec \"%s\": unexpected \"%s\"; " FORMS, spec, p);
        if (pass == 0) {
            a->tasks = malloc(count * sizeof *a->tasks);
            if (a->tasks == NULL) return -ENOMEM;
        }
    }
    qsort(a->tasks, count, sizeof *a->tasks, cmp_int);
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (n == 0 || a->tasks[i] != a->tasks[n - 1]) a->tasks[n++] = a->tasks[i];
    a->n_tasks = n;
    a->max_running = max_running;
    a->min = a->tasks[0];
    a->max = a->tasks[n - 1];
    a->step = first_step > 0 ? first_step : 1;
    snprintf(a->spec, sizeof a->spec, "%s", spec);
    return 0;
}

int job_array_ref_parse(const char *s, int64_t *id, int *task)
{
    if (s == NULL || id == NULL || task == NULL) return -EINVAL;
    int64_t v = 0;
    int digits = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 18) return -EINVAL;
        v = v * 10 + (*p - '0');
        p++;
    }
    if (digits == 0 || v <= 0) return -EINVAL;
    int t = -1;
    if (*p == '_') {
        p++;
        if (read_num(&p, &t) < 0) return -EINVAL;
    }
    if (*p != '\0') return -EINVAL;
    *id = v;
    *task = t;
    return 0;
}
