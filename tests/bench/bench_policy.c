/* bench_policy.c - how the policy engine's pick scales with the queue: for queues of 1k to 200k
 * jobs over 5 partners and 200 users, times policy_pick + policy_job_dispatched + started +
 * finished cycles and policy_job_admit. Prints one line per size; never asserts a time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void run(size_t n, int64_t t0)
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
    const char *partners[] = {"ulb", "vub", "sirris", "agoria", "becentral"};
    policy_quota q;
    policy_quota_none(&q);
    q.gpu_seconds = POLICY_UNLIMITED;
    policy_period_of(t0, period);
    for (int i = 0; i < 5; i++) {
        policy_partner_set(p, partners[i], i + 1);
        policy_quota_set(p, partners[i], period, &q);
    }
    for (int u = 0; u < 200; u++) {
        char name[32];
        snprintf(name, sizeof name, "user%d", u);
        policy_user_set(p, name, partners[u % 5], (policy_category)(u % 3));
    }
    srand(7);
    double a = now_s();
    for (size_t i = 0; i < n; i++) {
        policy_job j = {.id = (int64_t)i + 1,
                        .gpus = 1 + rand() % 8,
                        .cpus = 1,
                        .time_minutes = 1 + rand() % 600,
                        .submitted_at = t0 - rand() % 86400};
        snprintf(j.user, sizeof j.user, "user%d", rand() % 200);
        policy_job_enqueue(p, &j);
    }
    double enq = now_s() - a;

    /* admission (a quote walks the queue for the position: O(n)) */
    policy_verdict v;
    policy_job probe = {.id = (int64_t)n + 1,
                        .user = "user1",
                        .gpus = 2,
                        .cpus = 1,
                        .time_minutes = 60,
                        .submitted_at = t0};
    int nadmit = n > 20000 ? 20 : 200;
    a = now_s();
    for (int i = 0; i < nadmit; i++)
        policy_job_admit(p, &probe, t0, &v);
    double adm = (now_s() - a) / nadmit;
    a = now_s();
    for (int i = 0; i < 2000; i++)
        policy_job_check(p, &probe, t0, &v);
    double chk = (now_s() - a) / 2000;

    /* pick + dispatch + start + finish cycles; the queue shrinks by `cycles` only */
    size_t cycles = n < 20000 ? n / 2 : 10000;
    a = now_s();
    for (size_t i = 0; i < cycles; i++) {
        int64_t id, hg, hc, cg, cc;
        char per[8];
        if (policy_pick(p, t0, &id, &hg, &hc, per) < 0) break;
        policy_job_dispatched(p, id, t0);
        policy_job_started(p, id);
        policy_job_finished(p, id, 60, t0 + 60, &cg, &cc, per);
    }
    double cyc = (now_s() - a) / (double)cycles;
    printf("queued %7zu: enqueue %6.2f us/job, pick+dispatch+finish %6.2f us/cycle, "
           "check (submit) %5.2f us, admit+quote (dry run) %8.1f us\n",
           n, enq / n * 1e6, cyc * 1e6, chk * 1e6, adm * 1e6);
    policy_free(p);
}

int main(void)
{
    int64_t t0 = (int64_t)time(NULL);
    size_t sizes[] = {1000, 10000, 100000, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        run(sizes[i], t0);
    return 0;
}
