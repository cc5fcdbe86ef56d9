/* bench_dispatch.c - the reference for antennad's dispatch rate: a raw loop of
 * slurm_adapter_submit (libslurm's slurm_submit_batch_job, through antennad's own adapter, the
 * only module allowed to include Slurm headers) on the bench's cluster, and a reader of
 * slurmctld's log that times when slurmctld accepted a run of submissions. Prints one JSON object;
 * never asserts a time. Must run as root (the jobs run as the given unprivileged account).
 *
 *   bench_dispatch raw --conf SLURM_CONF --user ACCOUNT --dir DIR -n N [--tag PREFIX]
 *       Submits N jobs (1 GPU, 1 CPU, 10 minutes, like the bench's antennad jobs) one after the
 *       other; prints {"n", "ok", "failed", "seconds", "jobs_per_s", "first_job_id",
 *       "last_job_id", "first_error"}.
 *   bench_dispatch logscan LOG --offset BYTES --since UNIX_SECONDS -n N
 *       Reads slurmctld's log from byte BYTES on, counts "_slurm_rpc_submit_batch_job: JobId="
 *       lines and prints {"found", "first_at", "nth_at", "seconds", "jobs_per_s"}: the time from
 *       --since (e.g. the moment antennad was told to release its queue) until slurmctld
 *       accepted the N-th job. Times are the log's (millisecond) local timestamps.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slurm_adapter.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static int fail(const char *what, const char *msg)
{
    printf("{\"error\": ");
    char buf[512];
    snprintf(buf, sizeof buf, "%s: %s", what, msg);
    json_str(buf);
    printf("}\n");
    fprintf(stderr, "bench_dispatch: %s: %s\n", what, msg);
    return 1;
}

static int cmd_raw(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"conf", required_argument, NULL, 'c'},
        {"user", required_argument, NULL, 'u'},
        {"dir", required_argument, NULL, 'd'},
        {"tag", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const char *conf = NULL, *user = NULL, *dir = NULL, *tag = "bench-raw";
    long n = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "n:", lopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            conf = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'd':
            dir = optarg;
            break;
        case 't':
            tag = optarg;
            break;
        case 'n':
            n = atol(optarg);
            break;
        default:
            return fail("usage", "raw --conf F --user U --dir D -n N [--tag T]");
        }
    }
    if (conf == NULL || user == NULL || dir == NULL || n <= 0)
        return fail("usage", "raw --conf F --user U --dir D -n N [--tag T]");
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) return fail("account", "no such Unix account");
    if (pw->pw_uid == 0) return fail("account", "refusing root");

    slurm_adapter *sa = NULL;
    char err[512] = "", first_err[512] = "", out[4096];
    int rc = slurm_adapter_new(conf, &sa, err, sizeof err);
    if (rc < 0) return fail("slurm_adapter_new", err);
    snprintf(out, sizeof out, "%s/raw-%%j.out", dir);
    long ok = 0, failed = 0;
    uint32_t first_id = 0, last_id = 0;
    double a = now_s();
    for (long i = 0; i < n; i++) {
        char name[64], tagbuf[128];
        snprintf(name, sizeof name, "raw-%ld", i);
        snprintf(tagbuf, sizeof tagbuf, "%s:%ld", tag, i);
        slurm_adapter_submit_req req = {
            .name = name,
            .script = "#!/bin/bash\nsleep 1\n",
            .partition = "gpu",
            .work_dir = dir,
            .stdout_path = out,
            .tag = tagbuf,
            .uid = pw->pw_uid,
            .gid = pw->pw_gid,
            .gpus = 1,
            .gpu_type = "h100",
            .cpus_per_task = 1,
            .mem_mb = 0,
            .time_minutes = 10,
        };
        uint32_t id = 0;
        rc = slurm_adapter_submit(sa, &req, &id, err, sizeof err);
        if (rc < 0) {
            if (failed++ == 0) snprintf(first_err, sizeof first_err, "%s", err);
            continue;
        }
        if (ok++ == 0) first_id = id;
        last_id = id;
    }
    double secs = now_s() - a;
    slurm_adapter_free(sa);
    printf("{\"n\": %ld, \"ok\": %ld, \"failed\": %ld, \"seconds\": %.3f, \"jobs_per_s\": %.1f, "
           "\"first_job_id\": %" PRIu32 ", \"last_job_id\": %" PRIu32 ", \"first_error\": ",
           n, ok, failed, secs, secs > 0 ? (double)ok / secs : 0, first_id, last_id);
    json_str(first_err);
    printf("}\n");
    return 0;
}

/* "[2026-12-01T09:28:29.516] ..." -> unix seconds (local time), or -1. */
static double log_time(const char *line)
{
    struct tm tm;
    int ms = 0;
    memset(&tm, 0, sizeof tm);
    if (line[0] != '[') return -1;
    const char *p = strptime(line + 1, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL) return -1;
    if (*p == '.') ms = atoi(p + 1);
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    if (t == (time_t)-1) return -1;
    return (double)t + ms / 1000.0;
}

static int cmd_logscan(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"offset", required_argument, NULL, 'o'},
        {"since", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    long long offset = 0;
    double since = 0;
    long n = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "n:", lopts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            offset = atoll(optarg);
            break;
        case 's':
            since = atof(optarg);
            break;
        case 'n':
            n = atol(optarg);
            break;
        default:
            return fail("usage", "logscan LOG --offset BYTES --since T -n N");
        }
    }
    if (optind != argc - 1 || n <= 0)
        return fail("usage", "logscan LOG --offset BYTES --since T -n N");
    FILE *f = fopen(argv[optind], "r");
    if (f == NULL) return fail(argv[optind], strerror(errno));
    if (offset > 0 && fseeko(f, (off_t)offset, SEEK_SET) < 0) {
        fclose(f);
        return fail("seek", strerror(errno));
    }
    char line[4096];
    long found = 0;
    double first = -1, nth = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, "_slurm_rpc_submit_batch_job: JobId=") == NULL) continue;
        double t = log_time(line);
        if (t < 0) continue;
        found++;
        if (first < 0) first = t;
        if (found == n) nth = t;
    }
    fclose(f);
    double secs = nth >= 0 ? nth - since : -1;
    printf("{\"found\": %ld, \"n\": %ld, \"first_at\": %.3f, \"nth_at\": %.3f, \"seconds\": %.3f, "
           "\"jobs_per_s\": %.1f}\n",
           found, n, first, nth, secs, secs > 0 ? (double)n / secs : 0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "raw") == 0) return cmd_raw(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "logscan") == 0) return cmd_logscan(argc - 1, argv + 1);
    fprintf(stderr, "usage: bench_dispatch raw ... | logscan ...\n");
    return 2;
}
