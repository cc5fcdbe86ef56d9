/* reconcile_view.c - the text of a reconciliation. Never talks to the network, never writes
 * anywhere but the stream it is given. */
#include "reconcile_view.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "table.h"

static const char *const kinds[][2] = {
    {"no_record", "charges with no record"},    {"escaped", "records with no Antenna job"},
    {"elapsed", "elapsed times that differ"},   {"gpus", "GPU counts that differ"},
    {"held_after_end", "held after their end"}, {"charge", "charges that differ"},
};

static long long ll_of(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static char *utc_of(const json_t *o, const char *key, char *buf, size_t len)
{
    const char *s = json_string_value(json_object_get(o, key));
    time_t t;
    struct tm tm;
    if (s == NULL || table_time_parse(s, &t) != 0 || gmtime_r(&t, &tm) == NULL)
        snprintf(buf, len, "%s", s ? s : "-");
    else
        strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
    return buf;
}

int reconcile_view_print(FILE *out, const json_t *answer)
{
    const json_t *sum = json_object_get(answer, "summary");
    if (!json_is_object(sum)) return -EINVAL;
    const char *month = json_string_value(json_object_get(answer, "month"));
    long long jobs = ll_of(sum, "jobs_compared"), recs = ll_of(sum, "records"),
              diffs = ll_of(sum, "differences");
    char from[40], to[40];
    fprintf(out,
            "Reconciled %s with the cluster's accounting (%s to %s UTC): %lld job%s compared "
            "with %lld record%s, %lld difference%s\n",
            month ? month : "-", utc_of(answer, "from", from, sizeof from),
            utc_of(answer, "to", to, sizeof to), jobs, jobs == 1 ? "" : "s", recs,
            recs == 1 ? "" : "s", diffs, diffs == 1 ? "" : "s");
    const json_t *bk = json_object_get(sum, "by_kind");
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        fprintf(out, "%s%s: %lld", i ? ", " : "  ", kinds[i][1], ll_of(bk, kinds[i][0]));
    fputs("\n", out);
    const json_t *arr = json_object_get(answer, "differences");
    if (json_is_array(arr) && json_array_size(arr) > 0) {
        static const char *const headers[] = {"KIND",    "JOB",     "SLURM JOB",
                                              "PARTNER", "ANTENNA", "SLURM"};
        table *t = table_new(6, headers);
        if (t == NULL) return -ENOMEM;
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e)
        {
            char job[24] = "", sid[24], a[24], s[24];
            if (json_is_integer(json_object_get(e, "job")))
                snprintf(job, sizeof job, "%lld", ll_of(e, "job"));
            snprintf(sid, sizeof sid, "%lld", ll_of(e, "slurm_job_id"));
            snprintf(a, sizeof a, "%lld", ll_of(e, "antenna"));
            snprintf(s, sizeof s, "%lld", ll_of(e, "slurm"));
            const char *cells[] = {json_string_value(json_object_get(e, "kind")),    job, sid,
                                   json_string_value(json_object_get(e, "partner")), a,   s};
            if (table_add_row(t, cells) < 0) {
                table_free(t);
                return -ENOMEM;
            }
        }
        fputs("\n", out);
        table_print(t, out);
        table_free(t);
        if (json_is_true(json_object_get(answer, "truncated")))
            fprintf(out, "(only the first %zu differences are listed; --json has the same)\n",
                    json_array_size(arr));
        fputs("ANTENNA and SLURM: seconds for elapsed, GPUs for gpus, GPU-seconds charged for no "
              "record, end times for held after end, GPU-seconds (the ledger's, and what Slurm's "
              "elapsed time costs) for charge.\n",
              out);
    }
    if (ferror(out)) return -EIO;
    return (int)(diffs > 0x7fffffff ? 0x7fffffff : diffs);
}
