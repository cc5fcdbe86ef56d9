/* bench_report.c - turns the result files of tests/bench/run.sh (one JSON object per measurement
 * in RESULTS_DIR) into the bench's table on stdout and one JSON document (machine, knobs, every
 * measurement with its target and ratio, and the raw results). A missing or failed measurement
 * prints its reason in its cells. Never fails on a time: exit 0 unless the output can't be written.
 * Also the JSON helper of run.sh (which then needs no jq):
 *
 *   bench_report RESULTS_DIR OUT.json       the table and the JSON document
 *   bench_report put FILE [KEY=STRING | KEY:=JSON]...
 *       stdin must be a JSON object: adds the keys and writes it to FILE; anything else writes
 *       {"error": "no result: <what stdin held>"}. Exit 0 either way.
 *   bench_report error FILE MESSAGE         writes {"error": MESSAGE}
 *   bench_report get FILE|- KEY[.KEY...]    prints that number or string ("" when absent)
 *   bench_report idrange FILE|-             "LO-HI" of .jobs[].id (a GET /v1/jobs answer), or ""
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char *dir;
static json_t *raw;          /* name -> result object, as read */
static json_t *measurements; /* array, for the JSON output */
static char notes[16][600];
static int nnotes;

static json_t *result(const char *name)
{
    json_t *o = json_object_get(raw, name);
    if (o != NULL) return o;
    char path[4096];
    json_error_t err;
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    o = json_load_file(path, 0, &err);
    if (o == NULL) {
        o = json_pack("{s:s}", "error", "not measured (the run stopped before this step)");
    } else if (!json_is_object(o)) {
        json_decref(o);
        o = json_pack("{s:s}", "error", "malformed result file");
    }
    json_object_set_new(raw, name, o);
    return o;
}

static const char *error_of(json_t *o)
{
    json_t *e = json_object_get(o, "error");
    return json_is_string(e) ? json_string_value(e) : NULL;
}

/* A number at a dotted path ("latency_us.p99"), or NAN. */
static double num(json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* 12345.6 -> "12,346"; small values keep decimals. */
static const char *fmt_num(char *buf, size_t len, double v)
{
    if (isnan(v)) return snprintf(buf, len, "-"), buf;
    if (fabs(v) < 10) return snprintf(buf, len, "%.2f", v), buf;
    if (fabs(v) < 100) return snprintf(buf, len, "%.1f", v), buf;
    char digits[64];
    snprintf(digits, sizeof digits, "%.0f", fabs(v));
    size_t n = strlen(digits), o = 0;
    if (v < 0 && o + 1 < len) buf[o++] = '-';
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static const char *fmt_ms(char *buf, size_t len, double us)
{
    if (isnan(us)) return snprintf(buf, len, "-"), buf;
    if (us < 1000) return snprintf(buf, len, "%.0f us", us), buf;
    if (us < 10000) return snprintf(buf, len, "%.2f ms", us / 1000), buf;
    return snprintf(buf, len, "%.1f ms", us / 1000), buf;
}

/* A footnote; returns its marker "[n]". */
static const char *note(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static const char *note(char *buf, size_t len, const char *fmt, ...)
{
    if (nnotes == (int)(sizeof notes / sizeof notes[0])) return snprintf(buf, len, "(error)"), buf;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(notes[nnotes], sizeof notes[0], fmt, ap);
    va_end(ap);
    for (int i = 0; i < nnotes; i++) /* the same text twice: one footnote */
        if (strcmp(notes[i], notes[nnotes]) == 0) {
            snprintf(buf, len, "error [%d]", i + 1);
            return buf;
        }
    nnotes++;
    snprintf(buf, len, "error [%d]", nnotes);
    return buf;
}

/* A footnote for a failed measurement; "not measured" (the run stopped) is one shared footnote. */
static const char *err_note(char *buf, size_t len, const char *who, const char *e)
{
    if (strncmp(e, "not measured", 12) == 0) return note(buf, len, "%s", e);
    return note(buf, len, "%s: %s", who, e);
}

static void row(const char *what, const char *a, const char *b, const char *target, const char *vs)
{
    printf("%-40s %-28s %-40s %-17s %s\n", what, a, b, target, vs);
}

/* Records one measurement against its target: higher_better (value >= target) or not. */
static json_t *pending_detail; /* latency etc. of the next measure(), or NULL */

static void measure(const char *name, const char *unit, double value, const char *op, double target,
                    json_t *reference, char *vs, size_t vslen)
{
    json_t *m = json_object();
    if (pending_detail) {
        json_object_set_new(m, "antennad_detail", pending_detail);
        pending_detail = NULL;
    }
    json_object_set_new(m, "name", json_string(name));
    json_object_set_new(m, "unit", json_string(unit));
    json_object_set_new(m, "antennad", isnan(value) ? json_null() : json_real(value));
    json_object_set_new(m, "target", json_pack("{s:s,s:f}", "op", op, "value", target));
    double ratio = NAN;
    if (!isnan(value))
        ratio = strcmp(op, ">=") == 0 ? value / target : (value > 0 ? target / value : INFINITY);
    json_object_set_new(m, "ratio", isnan(ratio) || isinf(ratio) ? json_null() : json_real(ratio));
    json_object_set_new(m, "meets", isnan(ratio) ? json_null() : json_boolean(ratio >= 1.0));
    if (reference) json_object_set_new(m, "reference", reference);
    json_array_append_new(measurements, m);
    if (isnan(ratio))
        snprintf(vs, vslen, "-");
    else if (isinf(ratio))
        snprintf(vs, vslen, "inf  meets");
    else
        snprintf(vs, vslen, "%.2fx %s", ratio, ratio >= 1.0 ? "meets" : "MISSES");
}

/* "29,905 /s" or the error marker. */
static const char *rate_cell(char *buf, size_t len, json_t *o, const char *who)
{
    const char *e = error_of(o);
    if (e) return err_note(buf, len, who, e);
    char n[32];
    double ok = num(o, "ok_rps"), all = num(o, "rps");
    int w = snprintf(buf, len, "%s /s", fmt_num(n, sizeof n, ok));
    if (!isnan(all) && all - ok > 0.5 && w > 0 && (size_t)w < len) {
        char m[32];
        snprintf(buf + w, len - (size_t)w, " (+%s non-2xx)", fmt_num(m, sizeof m, all - ok));
    }
    return buf;
}

static const char *lat_cell(char *buf, size_t len, json_t *o)
{
    if (error_of(o)) return snprintf(buf, len, "-"), buf;
    char a[32], b[32];
    snprintf(buf, len, "%s / %s", fmt_ms(a, sizeof a, num(o, "latency_us.p50")),
             fmt_ms(b, sizeof b, num(o, "latency_us.p99")));
    return buf;
}

/* The latency of a rate measurement, for the JSON document. */
static json_t *rate_detail(json_t *o)
{
    if (error_of(o)) return json_pack("{s:s}", "error", error_of(o));
    return json_pack("{s:f,s:f,s:f,s:f}", "requests", num(o, "requests"), "seconds",
                     num(o, "seconds"), "p50_us", num(o, "latency_us.p50"), "p99_us",
                     num(o, "latency_us.p99"));
}

static json_t *rate_ref(json_t *o)
{
    if (error_of(o)) return json_pack("{s:s}", "error", error_of(o));
    return json_pack("{s:f,s:f,s:f}", "ok_rps", num(o, "ok_rps"), "p50_us",
                     num(o, "latency_us.p50"), "p99_us", num(o, "latency_us.p99"));
}

static void wrk_row(const char *name)
{
    json_t *w = json_object_get(raw, name) ? json_object_get(raw, name) : NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    FILE *f = fopen(path, "r");
    if (w == NULL && f == NULL) return; /* wrk not run */
    if (f) fclose(f);
    w = result(name);
    char cell[128], a[32], b[32], n[32];
    if (error_of(w))
        err_note(cell, sizeof cell, "wrk", error_of(w));
    else
        snprintf(cell, sizeof cell, "%s /s, %s / %s", fmt_num(n, sizeof n, num(w, "ok_rps")),
                 fmt_ms(a, sizeof a, num(w, "latency_us.p50")),
                 fmt_ms(b, sizeof b, num(w, "latency_us.p99")));
    row("  same with wrk (cross-check)", cell, "", "", "");
}

static json_t *policy_at(size_t queued)
{
    json_t *p = result("policy"), *sizes = json_object_get(p, "sizes"), *s, *best = NULL;
    size_t i;
    json_array_foreach(sizes, i, s)
    {
        if ((size_t)num(s, "queued") <= queued) best = s;
    }
    return best;
}

static json_t *load(const char *path)
{
    json_error_t err;
    return strcmp(path, "-") == 0 ? json_loadf(stdin, 0, &err) : json_load_file(path, 0, &err);
}

static int write_obj(const char *file, json_t *o)
{
    int rc = json_dump_file(o, file, JSON_COMPACT);
    json_decref(o);
    if (rc < 0) fprintf(stderr, "bench_report: cannot write %s\n", file);
    return rc < 0 ? 1 : 0;
}

static int cmd_put(int argc, char **argv)
{
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, stdin);
    buf[n] = '\0';
    json_error_t err;
    json_t *o = json_loads(buf, JSON_DISABLE_EOF_CHECK, &err);
    if (!json_is_object(o)) {
        json_decref(o);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
            buf[--n] = '\0';
        char msg[400];
        snprintf(msg, sizeof msg, "no result: %.300s", n ? buf : "(nothing)");
        return write_obj(argv[2], json_pack("{s:s}", "error", msg));
    }
    for (int i = 3; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (eq == NULL || eq == argv[i]) continue;
        bool raw_json = eq > argv[i] && eq[-1] == ':';
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - argv[i] - (raw_json ? 1 : 0)), argv[i]);
        json_t *v = raw_json ? json_loads(eq + 1, JSON_DECODE_ANY, &err) : json_string(eq + 1);
        json_object_set_new(o, key, v ? v : json_null());
    }
    return write_obj(argv[2], o);
}

static int helper(int argc, char **argv)
{
    if (strcmp(argv[1], "put") == 0 && argc >= 3) return cmd_put(argc, argv);
    if (strcmp(argv[1], "error") == 0 && argc == 4)
        return write_obj(argv[2], json_pack("{s:s}", "error", argv[3]));
    if (strcmp(argv[1], "get") == 0 && argc == 4) {
        json_t *o = load(argv[2]);
        double d = num(o, argv[3]);
        char buf[256];
        snprintf(buf, sizeof buf, "%s", argv[3]);
        json_t *v = o;
        for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && v;
             k = strtok_r(NULL, ".", &save))
            v = json_object_get(v, k);
        if (json_is_string(v))
            printf("%s\n", json_string_value(v));
        else if (json_is_integer(v))
            printf("%lld\n", (long long)json_integer_value(v));
        else if (!isnan(d))
            printf("%.6g\n", d);
        else
            printf("\n");
        json_decref(o);
        return 0;
    }
    if (strcmp(argv[1], "idrange") == 0 && argc == 3) {
        json_t *o = load(argv[2]), *j;
        size_t i;
        long long lo = 0, hi = 0;
        json_array_foreach(json_object_get(o, "jobs"), i, j)
        {
            long long id = (long long)num(j, "id");
            if (id <= 0) continue;
            if (lo == 0 || id < lo) lo = id;
            if (id > hi) hi = id;
        }
        if (lo > 0)
            printf("%lld-%lld\n", lo, hi);
        else
            printf("\n");
        json_decref(o);
        return 0;
    }
    fprintf(stderr, "usage: bench_report RESULTS_DIR OUT.json | put FILE [K=V|K:=JSON]... | error "
                    "FILE MSG | get FILE KEY | idrange FILE\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "put") == 0 || strcmp(argv[1], "error") == 0 ||
                      strcmp(argv[1], "get") == 0 || strcmp(argv[1], "idrange") == 0))
        return helper(argc, argv);
    if (argc != 3) {
        fprintf(stderr, "usage: bench_report RESULTS_DIR OUT.json\n");
        return 2;
    }
    dir = argv[1];
    raw = json_object();
    measurements = json_array();
    char a[160], b[160], c[160], vs[64], n1[32], n2[32], n3[32];

    json_t *mach = result("machine");
    printf("\nAntenna bench  %s  commit %s\n", json_string_value(json_object_get(mach, "date")),
           json_string_value(json_object_get(mach, "commit")));
    printf("machine: %d CPUs (nproc), %s, %.1f GiB RAM, Linux %s, %s\n", (int)num(mach, "nproc"),
           json_string_value(json_object_get(mach, "cpu")), num(mach, "ram_kib") / 1048576.0,
           json_string_value(json_object_get(mach, "kernel")),
           json_string_value(json_object_get(mach, "slurm")));
    json_t *knobs = json_object_get(mach, "knobs");
    printf("knobs:");
    const char *k;
    json_t *v;
    json_object_foreach(knobs, k, v)
    {
        if (json_is_string(v))
            printf(" %s=%s", k, json_string_value(v));
        else
            printf(" %s=%lld", k, (long long)json_number_value(v));
    }
    printf(
        "\nload: tests/bench/loadgen.c for both sides (%d keep-alive connections, %d threads,\n"
        "      on the same CPUs as the servers); antennad over TLS on 127.0.0.1, slurmrestd\n"
        "      (openapi/v0.0.38, rest_auth/local, as an unprivileged account) over a unix socket,\n"
        "      plain HTTP, no forwarder. One node, drained: every Slurm job stays pending.\n",
        (int)num(knobs, "BENCH_CONNS"), (int)num(knobs, "BENCH_THREADS"));
    char fpath[4096];
    snprintf(fpath, sizeof fpath, "%s/fatal.json", dir);
    FILE *ff = fopen(fpath, "r");
    if (ff != NULL) {
        fclose(ff);
        printf("RUN ABORTED: %s\n", error_of(result("fatal")));
    }
    printf("\n");
    row("measurement", "antennad", "slurmrestd / reference", "target", "vs target");
    row("-----------", "--------", "----------------------", "------", "---------");

    /* status */
    json_t *sa = result("status_antennad"), *sr = result("status_slurmrestd");
    pending_detail = rate_detail(sa);
    measure("status_rps", "requests/s", error_of(sa) ? NAN : num(sa, "ok_rps"), ">=", 30000,
            rate_ref(sr), vs, sizeof vs);
    row("status: GET one job, req/s", rate_cell(a, sizeof a, sa, "status antennad"),
        rate_cell(b, sizeof b, sr, "status slurmrestd"), ">= 30,000 /s", vs);
    row("  latency p50 / p99", lat_cell(a, sizeof a, sa), lat_cell(b, sizeof b, sr), "", "");
    wrk_row("wrk_status_antennad");

    /* submissions, empty */
    json_t *s0 = result("submit0_antennad"), *srd = result("submit_slurmrestd");
    pending_detail = rate_detail(s0);
    measure("submit_rps_empty", "requests/s", error_of(s0) ? NAN : num(s0, "ok_rps"), ">=", 5000,
            rate_ref(srd), vs, sizeof vs);
    row("submit: POST job, 0 queued, req/s", rate_cell(a, sizeof a, s0, "submit antennad"),
        rate_cell(b, sizeof b, srd, "submit slurmrestd"), ">= 5,000 /s", vs);
    row("  latency p50 / p99", lat_cell(a, sizeof a, s0), lat_cell(b, sizeof b, srd), "", "");
    wrk_row("wrk_submit_antennad");

    /* submissions, 100k */
    json_t *s1 = result("submit100k_antennad");
    snprintf(c, sizeof c, "submit: POST job, %s queued",
             fmt_num(n1, sizeof n1, num(s1, "queued_before")));
    pending_detail = rate_detail(s1);
    measure("submit_rps_100k", "requests/s", error_of(s1) ? NAN : num(s1, "ok_rps"), ">=", 5000,
            NULL, vs, sizeof vs);
    row(c, rate_cell(a, sizeof a, s1, "submit at 100k antennad"), "(slurmrestd: no such queue)",
        ">= 5,000 /s", vs);
    row("  latency p50 / p99", lat_cell(a, sizeof a, s1), "", "", "");

    /* dispatch */
    json_t *da = result("dispatch_antennad"), *dr = result("dispatch_raw"),
           *ds = result("dispatch_sbatch");
    double raw_rate = error_of(dr) ? NAN : num(dr, "jobs_per_s");
    double ant_rate = NAN;
    if (error_of(da))
        err_note(a, sizeof a, "dispatch antennad", error_of(da));
    else if (num(da, "found") < num(da, "n"))
        note(a, sizeof a,
             "dispatch antennad: only %.0f of %.0f jobs reached slurmctld within %.0f s of the "
             "release",
             num(da, "found"), num(da, "n"), num(da, "timeout_s"));
    else {
        ant_rate = num(da, "jobs_per_s");
        snprintf(a, sizeof a, "%s jobs/s", fmt_num(n1, sizeof n1, ant_rate));
    }
    if (error_of(dr))
        err_note(b, sizeof b, "raw loop", error_of(dr));
    else
        snprintf(b, sizeof b, "raw loop %s jobs/s", fmt_num(n2, sizeof n2, raw_rate));
    double target = isnan(raw_rate) ? NAN : 0.9 * raw_rate;
    json_t *dref =
        json_pack("{s:o,s:o}", "raw_loop", json_deep_copy(dr), "sbatch_loop", json_deep_copy(ds));
    if (isnan(target)) {
        json_t *m = json_pack("{s:s,s:s,s:o}", "name", "dispatch_jobs_per_s", "error",
                              "no raw-loop reference", "reference", dref);
        json_array_append_new(measurements, m);
        snprintf(vs, sizeof vs, "-");
    } else {
        measure("dispatch_jobs_per_s", "jobs/s", ant_rate, ">=", target, dref, vs, sizeof vs);
    }
    snprintf(c, sizeof c, ">= %s /s (90%%)", fmt_num(n3, sizeof n3, target));
    char what[80];
    snprintf(what, sizeof what, "dispatch: %s jobs into slurmctld",
             fmt_num(n1, sizeof n1, num(dr, "n")));
    row(what, a, b, isnan(target) ? "90% of raw" : c, vs);
    if (error_of(ds))
        err_note(b, sizeof b, "sbatch loop", error_of(ds));
    else
        snprintf(b, sizeof b, "sbatch loop %s jobs/s (%.0f jobs)",
                 fmt_num(n2, sizeof n2, num(ds, "jobs_per_s")), num(ds, "n"));
    if (!error_of(da) && !isnan(ant_rate))
        snprintf(a, sizeof a, "%.1f s (1st after %.2f s)", num(da, "seconds"),
                 num(da, "first_at") - (num(da, "nth_at") - num(da, "seconds")));
    else
        snprintf(a, sizeof a, " ");
    row("", a, b, "", "");

    /* policy engine */
    json_t *p1m = policy_at(1000000);
    const char *pe = error_of(result("policy"));
    double qsize = p1m ? num(p1m, "queued") : NAN;
    snprintf(what, sizeof what, "engine: pick, %s queued", fmt_num(n1, sizeof n1, qsize));
    measure("pick_us", "us", p1m ? num(p1m, "pick_us") : NAN, "<", 10, NULL, vs, sizeof vs);
    if (p1m)
        snprintf(a, sizeof a, "%.2f us (p99 %.2f)", num(p1m, "pick_us"), num(p1m, "pick_p99_us"));
    else
        note(a, sizeof a, "policy engine: %s", pe ? pe : "no result");
    row(what, a, "", "< 10 us", vs);
    snprintf(what, sizeof what, "engine: dry-run quote, %s queued", fmt_num(n1, sizeof n1, qsize));
    measure("quote_us", "us", p1m ? num(p1m, "quote_us") : NAN, "<", 1000, NULL, vs, sizeof vs);
    if (p1m)
        fmt_ms(a, sizeof a, num(p1m, "quote_us"));
    else
        snprintf(a, sizeof a, "-");
    row(what, a, "", "< 1 ms", vs);

    /* memory and idle CPU */
    json_t *mem = result("memory");
    double bpj = num(mem, "bytes_per_job"), idle = num(mem, "idle_cpu_pct");
    measure("rss_bytes_per_queued_job", "bytes", error_of(mem) ? NAN : bpj, "<", 1024, NULL, vs,
            sizeof vs);
    if (error_of(mem))
        err_note(a, sizeof a, "memory", error_of(mem));
    else
        snprintf(a, sizeof a, "%s B/job", fmt_num(n1, sizeof n1, bpj));
    if (error_of(mem))
        snprintf(b, sizeof b, " ");
    else
        snprintf(b, sizeof b, "VmRSS %s->%s KiB, +%s jobs",
                 fmt_num(n1, sizeof n1, num(mem, "rss0_kib")),
                 fmt_num(n2, sizeof n2, num(mem, "rss1_kib")),
                 fmt_num(n3, sizeof n3, num(mem, "queued1") - num(mem, "queued0")));
    row("RSS per queued job (median)", a, b, "< 1 KiB", vs);
    if (!error_of(mem) && !isnan(num(mem, "bytes_per_job_min"))) {
        snprintf(a, sizeof a, "%s..%s B/job", fmt_num(n1, sizeof n1, num(mem, "bytes_per_job_min")),
                 fmt_num(n2, sizeof n2, num(mem, "bytes_per_job_max")));
        snprintf(b, sizeof b, "min..max of %.0f samples; peak %s KiB", num(mem, "idle_seconds"),
                 fmt_num(n3, sizeof n3, num(mem, "hwm_kib")));
        row("", a, b, "", "");
    }
    if (!error_of(mem) && num(mem, "queued1") < num(mem, "queued_target"))
        printf("%-40s only %.0f of %.0f jobs could be queued within BENCH_FILL_MAX\n", "",
               num(mem, "queued1"), num(mem, "queued_target"));
    measure("idle_cpu_pct", "% of one core", error_of(mem) ? NAN : idle, "<", 1, NULL, vs,
            sizeof vs);
    if (!error_of(mem)) snprintf(a, sizeof a, "%.2f %% of a core", idle);
    if (error_of(mem))
        snprintf(b, sizeof b, " ");
    else
        snprintf(b, sizeof b, "over %.0f s, no traffic", num(mem, "idle_seconds"));
    snprintf(what, sizeof what, "idle CPU, %s queued", fmt_num(n1, sizeof n1, num(mem, "queued1")));
    row(what, a, b, "< 1 %", vs);

    /* informational rows */
    printf("\nmore (no target):\n");
    json_t *st1 = result("status100k_antennad");
    snprintf(what, sizeof what, "status at %s queued, req/s",
             fmt_num(n1, sizeof n1, num(mem, "queued1")));
    row(what, rate_cell(a, sizeof a, st1, "status at 100k"), lat_cell(b, sizeof b, st1), "", "");
    json_t *q1 = result("quote100k_antennad");
    snprintf(what, sizeof what, "dry-run quote over HTTP, req/s");
    row(what, rate_cell(a, sizeof a, q1, "quote over HTTP"), lat_cell(b, sizeof b, q1), "", "");
    json_t *fh = result("fill_hold");
    snprintf(what, sizeof what, "queueing %s -> %s, req/s",
             fmt_num(n1, sizeof n1, num(mem, "queued0")),
             fmt_num(n2, sizeof n2, num(mem, "queued1")));
    row(what, rate_cell(a, sizeof a, fh, "queueing"), lat_cell(b, sizeof b, fh), "", "");
    json_t *sizes = json_object_get(result("policy"), "sizes"), *s;
    size_t i;
    json_array_foreach(sizes, i, s)
    {
        snprintf(what, sizeof what, "engine at %s queued",
                 fmt_num(n1, sizeof n1, num(s, "queued")));
        snprintf(a, sizeof a, "pick %.2f us, quote %s", num(s, "pick_us"),
                 fmt_ms(n2, sizeof n2, num(s, "quote_us")));
        snprintf(b, sizeof b, "check %.2f us, dispatched %.2f, finished %.2f us",
                 num(s, "check_us"), num(s, "dispatched_us"), num(s, "finished_us"));
        row(what, a, b, "", "");
    }
    double sj = num(result("status_slurmrestd"), "slurm_jobs");
    if (!isnan(sj))
        printf("\nslurmctld held %.0f pending jobs during slurmrestd's status round.", sj);
    printf(
        "\nratio: value/target (target/value when lower is better); >= 1.00 meets the target.\n"
        "antennad's submissions are durable (SQLite, synchronous=FULL) and stay queued in "
        "antennad\n"
        "(partner at max_running_jobs 0); slurmrestd's go to slurmctld and are not durable when\n"
        "answered. Dispatch: from the PATCH that releases the queue until slurmctld's log shows "
        "the\n"
        "N-th accepted job; the raw loop is slurm_adapter_submit in one thread.\n");
    for (int j = 0; j < nnotes; j++)
        printf("[%d] %s\n", j + 1, notes[j]);

    json_t *outj =
        json_pack("{s:O,s:O,s:O}", "machine", mach, "measurements", measurements, "results", raw);
    if (json_dump_file(outj, argv[2], JSON_INDENT(2) | JSON_SORT_KEYS) < 0) {
        fprintf(stderr, "bench_report: cannot write %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    printf("\nwrote %s\n", argv[2]);
    json_decref(outj);
    json_decref(measurements);
    json_decref(raw);
    return 0;
}
