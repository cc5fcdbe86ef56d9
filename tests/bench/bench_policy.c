/* bench_policy.c - how the policy engine scales with the queue: for queues of 1k to 1M jobs over
 * 50 partners (share weights 1..5, different past usage) and 2,000 users, times policy_pick alone
 * (the dispatch decision), policy_pick + dispatched + started + finished cycles (and dispatched and
 * finished alone), policy_job_check
 * (a real submission's admission), policy_job_admit (a dry run's quote, which walks the queue for
 * the position) and policy_job_enqueue. Prints one line per size, and with --json FILE writes
 * {"sizes": [{...}, ...]}. Never asserts a time.
 *
 *   bench_policy [--max N] [--json FILE]     (--max: largest queue, default 1000000; also
 *                                             BENCH_POLICY_MAX)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"

#define PARTNERS 50
#define USERS    2000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct result {
    size_t queued;
    double enqueue_us, pick_us, pick_p50_us, pick_p99_us, cycle_us, check_us, quote_us;
    double quote_max_us, dispatched_us, finished_us;
    size_t cycles;
} result;

static policy *build(size_t n, int64_t t0, double *enq_us)
{
    policy_config cfg;
    char err[128], period[8];
    policy_config_defaults(&cfg);
    cfg.cluster_window = 1000000;
    policy *p = policy_new(&cfg, err, sizeof err);
    if (p == NULL) {
        fprintf(stderr, "policy_new: %s\n", err);
        exit(1);
    }
    policy_quota q;
    policy_quota_none(&q);
    q.gpu_seconds = POLICY_UNLIMITED;
    policy_period_of(t0, period);
    for (int i = 0; i < PARTNERS; i++) {
        char name[32];
        snprintf(name, sizeof name, "partner%02d", i);
        policy_partner_set(p, name, 1 + i % 5);
        policy_quota_set(p, name, period, &q);
        /* past usage, so that fair share differs between partners */
        policy_usage_load(p, name, period, (int64_t)(i % 7) * 36000, 0, t0 - 3600 * (i % 11));
    }
    for (int u = 0; u < USERS; u++) {
        char name[32], partner[32];
        snprintf(name, sizeof name, "user%04d", u);
        snprintf(partner, sizeof partner, "partner%02d", u % PARTNERS);
        policy_user_set(p, name, partner, (policy_category)(u % 3));
    }
    srand(7);
    double a = now_s();
    for (size_t i = 0; i < n; i++) {
        policy_job j = {.id = (int64_t)i + 1,
                        .gpus = 1 + rand() % 8,
                        .cpus = 1,
                        .time_minutes = 1 + rand() % 600,
                        .submitted_at = t0 - rand() % 86400};
        snprintf(j.user, sizeof j.user, "user%04d", rand() % USERS);
        if (policy_job_enqueue(p, &j) < 0) {
            fprintf(stderr, "policy_job_enqueue failed at %zu\n", i);
            exit(1);
        }
    }
    *enq_us = (now_s() - a) / (double)n * 1e6;
    return p;
}

static result run(size_t n, int64_t t0)
{
    result r = {.queued = n};
    policy *p = build(n, t0, &r.enqueue_us);

    /* A real submission's admission (no quote): O(log n). */
    policy_verdict v;
    policy_job probe = {.id = (int64_t)n + 1,
                        .user = "user0001",
                        .gpus = 2,
                        .cpus = 1,
                        .time_minutes = 60,
                        .submitted_at = t0};
    double a = now_s();
    for (int i = 0; i < 2000; i++)
        policy_job_check(p, &probe, t0, &v);
    r.check_us = (now_s() - a) / 2000 * 1e6;

    /* A dry run's quote (admission + priority + queue position + wait reason): walks the queue. */
    int nquote = n > 200000 ? 10 : n > 20000 ? 20 : 200;
    a = now_s();
    for (int i = 0; i < nquote; i++) {
        double b = now_s();
        policy_job_admit(p, &probe, t0, &v);
        double us = (now_s() - b) * 1e6;
        if (us > r.quote_max_us) r.quote_max_us = us;
    }
    r.quote_us = (now_s() - a) / nquote * 1e6;

    /* pick alone, inside pick + dispatch + start + finish cycles; the queue shrinks by `cycles` */
    size_t cycles = n < 20000 ? n / 2 : 10000;
    double *picks = malloc(cycles * sizeof *picks);
    if (picks == NULL) exit(1);
    size_t done = 0;
    double pick_total = 0, disp_total = 0, fin_total = 0;
    a = now_s();
    for (size_t i = 0; i < cycles; i++) {
        int64_t id, hg, hc, cg, cc;
        char per[8];
        double b = now_s();
        int rc = policy_pick(p, t0, &id, &hg, &hc, per);
        double us = (now_s() - b) * 1e6;
        if (rc < 0) break;
        picks[done++] = us;
        pick_total += us;
        b = now_s();
        policy_job_dispatched(p, id, t0);
        disp_total += now_s() - b;
        policy_job_started(p, id);
        b = now_s();
        policy_job_finished(p, id, 60, t0 + 60, &cg, &cc, per);
        fin_total += now_s() - b;
    }
    double cyc = now_s() - a;
    r.cycles = done;
    if (done > 0) {
        r.cycle_us = cyc / (double)done * 1e6;
        r.pick_us = pick_total / (double)done;
        r.dispatched_us = disp_total / (double)done * 1e6;
        r.finished_us = fin_total / (double)done * 1e6;
        qsort(picks, done, sizeof *picks, cmp_double);
        r.pick_p50_us = picks[done / 2];
        r.pick_p99_us = picks[(size_t)((double)done * 0.99)];
    }
    free(picks);
    policy_free(p);
    return r;
}

int main(int argc, char **argv)
{
    const char *json = NULL;
    size_t max = 1000000;
    const char *env = getenv("BENCH_POLICY_MAX");
    if (env && atol(env) > 0) max = (size_t)atol(env);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            json = argv[++i];
        else if (strcmp(argv[i], "--max") == 0 && i + 1 < argc)
            max = (size_t)atol(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_policy [--max N] [--json FILE]\n");
            return 2;
        }
    }
    int64_t t0 = (int64_t)time(NULL);
    size_t sizes[] = {1000, 10000, 100000, 1000000};
    result res[4];
    size_t nres = 0;
    printf("policy engine: %d partners, %d users\n", PARTNERS, USERS);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (sizes[i] > max) break;
        result r = run(sizes[i], t0);
        res[nres++] = r;
        printf("queued %7zu: pick %5.2f us (p50 %.2f, p99 %.2f), pick+dispatch+finish %6.2f us "
               "(dispatched %.2f, finished %.2f), check (submit) %4.2f us, quote (dry run) "
               "%9.1f us, enqueue %4.2f us/job\n",
               r.queued, r.pick_us, r.pick_p50_us, r.pick_p99_us, r.cycle_us, r.dispatched_us,
               r.finished_us, r.check_us, r.quote_us, r.enqueue_us);
        fflush(stdout);
    }
    if (json) {
        FILE *f = fopen(json, "w");
        if (f == NULL) {
            fprintf(stderr, "cannot write %s: %s\n", json, strerror(errno));
            return 1;
        }
        fprintf(f, "{\"partners\": %d, \"users\": %d, \"sizes\": [", PARTNERS, USERS);
        for (size_t i = 0; i < nres; i++) {
            const result *r = &res[i];
            fprintf(f,
                    "%s{\"queued\": %zu, \"pick_us\": %.3f, \"pick_p50_us\": %.3f, "
                    "\"pick_p99_us\": %.3f, \"cycle_us\": %.3f, \"cycles\": %zu, "
                    "\"dispatched_us\": %.3f, \"finished_us\": %.3f, \"check_us\": %.3f, "
                    "\"quote_us\": %.1f, \"quote_max_us\": %.1f, \"enqueue_us\": %.3f}",
                    i ? ", " : "", r->queued, r->pick_us, r->pick_p50_us, r->pick_p99_us,
                    r->cycle_us, r->cycles, r->dispatched_us, r->finished_us, r->check_us,
                    r->quote_us, r->quote_max_us, r->enqueue_us);
        }
        fprintf(f, "]}\n");
        fclose(f);
    }
    return 0;
}
