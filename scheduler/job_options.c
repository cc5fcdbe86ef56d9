/* job_options.c - a job's sbatch options to and from JSON: one table names every field.
 * Must never do I/O, log, or keep a reference to what it is given. */
#include "job_options.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Where each field lives in a jobreq: ints are int or int64_t (`wide`), strings char[size]. */
static const struct slot {
    size_t off, size;
    bool wide;
} slots[] = {
    {offsetof(jobreq, nodes_min), 0, false},
    {offsetof(jobreq, nodes_max), 0, false},
    {offsetof(jobreq, ntasks), 0, false},
    {offsetof(jobreq, ntasks_per_node), 0, false},
    {offsetof(jobreq, gpus_per_node), 0, false},
    {offsetof(jobreq, gpus_per_task), 0, false},
    {offsetof(jobreq, cpus_per_gpu), 0, false},
    {offsetof(jobreq, mem_per_gpu_mb), 0, true},
    {offsetof(jobreq, mem_per_cpu_mb), 0, true},
    {offsetof(jobreq, partition), sizeof((jobreq *)0)->partition, false},
    {offsetof(jobreq, output), sizeof((jobreq *)0)->output, false},
    {offsetof(jobreq, error), sizeof((jobreq *)0)->error, false},
    {offsetof(jobreq, env_export), sizeof((jobreq *)0)->env_export, false},
    {offsetof(jobreq, chdir), sizeof((jobreq *)0)->chdir, false},
    {offsetof(jobreq, signal), sizeof((jobreq *)0)->signal, false},
    {offsetof(jobreq, exclusive), 0, false},
    {offsetof(jobreq, constraint), sizeof((jobreq *)0)->constraint, false},
    {offsetof(jobreq, requeue), 0, false},
    {offsetof(jobreq, comment), sizeof((jobreq *)0)->comment, false},
};

const job_options_field job_options_fields[] = {
    {"nodes", JOB_OPT_INT},          {"nodes_max", JOB_OPT_INT},
    {"ntasks", JOB_OPT_INT},         {"ntasks_per_node", JOB_OPT_INT},
    {"gpus_per_node", JOB_OPT_INT},  {"gpus_per_task", JOB_OPT_INT},
    {"cpus_per_gpu", JOB_OPT_INT},   {"mem_per_gpu_mb", JOB_OPT_INT},
    {"mem_per_cpu_mb", JOB_OPT_INT}, {"partition", JOB_OPT_STR},
    {"output", JOB_OPT_STR},         {"error", JOB_OPT_STR},
    {"export", JOB_OPT_STR},         {"chdir", JOB_OPT_STR},
    {"signal", JOB_OPT_STR},         {"exclusive", JOB_OPT_BOOL},
    {"constraint", JOB_OPT_STR},     {"requeue", JOB_OPT_BOOL},
    {"comment", JOB_OPT_STR},        {NULL, JOB_OPT_INT},
};

#define NFIELDS (sizeof slots / sizeof slots[0])

_Static_assert(sizeof job_options_fields / sizeof job_options_fields[0] == NFIELDS + 1,
               "one slot per field");

static int bad_field(const char *name, char *bad, size_t badlen)
{
    if (bad != NULL && badlen > 0) snprintf(bad, badlen, "%s", name);
    return -EINVAL;
}

int job_options_read(const json_t *o, jobreq *r, char *bad, size_t badlen)
{
    if (!json_is_object(o) || r == NULL) return bad_field("options", bad, badlen);
    bool max_given = false;
    for (size_t i = 0; i < NFIELDS; i++) {
        const job_options_field *f = &job_options_fields[i];
        json_t *v = json_object_get(o, f->name);
        if (v == NULL) continue;
        char *dst = (char *)r + slots[i].off;
        switch (f->kind) {
        case JOB_OPT_INT: {
            if (!json_is_integer(v)) return bad_field(f->name, bad, badlen);
            json_int_t n = json_integer_value(v);
            if (slots[i].wide) {
                if (n < 0 || n > ((json_int_t)1 << 40)) return bad_field(f->name, bad, badlen);
                *(int64_t *)dst = (int64_t)n;
            } else {
                if (n < -1 || n > INT32_MAX) return bad_field(f->name, bad, badlen);
                *(int *)dst = (int)n;
            }
            if (strcmp(f->name, "nodes_max") == 0) max_given = true;
            break;
        }
        case JOB_OPT_STR: {
            if (!json_is_string(v)) return bad_field(f->name, bad, badlen);
            size_t n = json_string_length(v);
            const char *s = json_string_value(v);
            if (n >= slots[i].size || strlen(s) != n) return bad_field(f->name, bad, badlen);
            memcpy(dst, s, n + 1);
            break;
        }
        case JOB_OPT_BOOL:
            if (!json_is_boolean(v)) return bad_field(f->name, bad, badlen);
            *(int *)dst = json_is_true(v) ? 1 : 0;
            break;
        }
    }
    if (json_object_get(o, "nodes") != NULL && !max_given) r->nodes_max = r->nodes_min;
    return 0;
}

json_t *job_options_json(const jobreq *r)
{
    jobreq dflt;
    jobreq_init(&dflt);
    json_t *o = json_object();
    if (o == NULL) return NULL;
    for (size_t i = 0; i < NFIELDS; i++) {
        const job_options_field *f = &job_options_fields[i];
        const char *src = (const char *)r + slots[i].off;
        const char *def = (const char *)&dflt + slots[i].off;
        json_t *v = NULL;
        switch (f->kind) {
        case JOB_OPT_INT:
            if (slots[i].wide) {
                if (*(const int64_t *)src != *(const int64_t *)def)
                    v = json_integer(*(const int64_t *)src);
            } else if (*(const int *)src != *(const int *)def) {
                v = json_integer(*(const int *)src);
            }
            break;
        case JOB_OPT_STR:
            if (src[0] != '\0') v = json_string(src);
            break;
        case JOB_OPT_BOOL:
            if (*(const int *)src != *(const int *)def) v = json_boolean(*(const int *)src == 1);
            break;
        }
        if (v != NULL && json_object_set_new(o, f->name, v) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

int job_options_parse(const char *text, jobreq *r)
{
    if (text == NULL || text[0] == '\0') return 0;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    int rc = o != NULL ? job_options_read(o, r, NULL, 0) : -EINVAL;
    json_decref(o);
    return rc;
}

int job_options_merge(json_t *job, const char *text)
{
    if (text == NULL || text[0] == '\0') return 0;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return -EINVAL;
    }
    int rc = json_object_update(job, o) == 0 ? 0 : -ENOMEM;
    json_decref(o);
    return rc;
}
