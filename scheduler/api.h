/* api.h - the /v1 HTTP+JSON API of antennad: routing, authentication, validation, answers.
 *
 * Runs its handlers off the loop thread: the cheap, frequent reads (a job, the job list) on a read
 * lane of two threads of its own, the rest on the libuv thread pool (they read the store and make
 * registry changes), and a job's output on an output lane of its own (scheduler/job_output.h: a
 * few threads, a bound on the reads in flight, 503 beyond it);
 * never calls SQLite or the registry on the loop thread (but registry_health, which only reads a
 * flag, for /healthz, and registry_token_check, which authenticates each request from memory
 * before it is queued, with the per-peer and per-token limits of auth.h), never does file I/O
 * there, and never talks to Slurm: reads are served
 * from antennad's own state, and changes for Slurm go through the broker. Never writes the store,
 * never takes the policy engine's lock and never appends to the audit trail itself: every change
 * is one registry call, which audits it.
 * GET /metrics (metrics.h) is decided on the loop thread (metrics_access: a loopback peer, or a
 * token of the role) and built on the pool: atomics plus registry_partner_stats, no queue scan.
 * Every request's id (http_request_id) ends the log lines of its work, on the loop thread and
 * the thread that serves it (log_request_id_set), and a submission stores it with its job.
 */
#ifndef ANTENNA_API_H
#define ANTENNA_API_H

#include <stdbool.h>

#include <uv.h>

#include "account.h"
#include "audit.h"
#include "broker.h"
#include "config.h"
#include "http_server.h"
#include "job_request.h"
#include "reconciler.h"
#include "registry.h"

typedef struct api api;

typedef struct api_options {
    jobreq_limits limits;    /* gpu_types is borrowed and must outlive the api */
    const char *spool_dir;   /* where job output lives (see broker_job_output_path); copied */
    size_t max_output_bytes; /* per GET .../output answer; 0 = 256 KiB (JOB_OUTPUT_CHUNK_DEFAULT),
                                at most JOB_OUTPUT_CHUNK_MAX */
    audit *audit; /* the audit trail (borrowed), for GET /v1/audit/verify, checkpoints and the
                     public key only (the registry appends); NULL = not configured (503) */
    unsigned starved_after_ms; /* /healthz says degraded when a request has waited this long to
                                  start on the worker pool or the read lane; 0 = 5000 */
    account_rules accounts;    /* which Unix accounts users may be mapped to (strings borrowed) */
    unsigned auth_failures_per_minute; /* failed authentications per peer address and minute
                                          before 429 rate_limited; 0 = no limit */
    unsigned token_rate_per_second;    /* requests per token (token bucket); 0 = no limit */
    unsigned token_burst;              /* the bucket's size (0 = twice the rate) */
    int64_t token_default_lifetime_s;  /* a new token's lifetime when none is asked; 0 = never */
    int64_t token_max_lifetime_s;      /* the longest lifetime that may be asked; 0 = none */
    reconciler *reconciler;     /* GET /v1/reconcile (borrowed); NULL = no accounting (503) */
    int max_array_tasks;        /* tasks per job array ("array" of POST /v1/jobs); 0 = 1000 */
    const config *site;         /* the partitions each partner may use (config_partitions_for;
                                   borrowed); NULL = any valid partition name, default "" */
    const char *metrics_access; /* GET /metrics: "loopback" (NULL or "": the default; peers on
                                   127.0.0.0/8 or ::1, no token) or "role:<role>" (a token of that
                                   role); borrowed, checked by config_load */
} api_options;

/* Creates the API over `reg` (borrowed: every change goes through it; reads go to
 * registry_store(reg)) and `br` (borrowed; may be NULL: jobs then stay queued and /healthz does
 * not report Slurm, which unit tests use). Returns 0 and sets *out, or -ENOMEM. */
int api_new(uv_loop_t *loop, registry *reg, broker *br, const api_options *opt, api **out);

/* Failed authentications are counted per peer and minute in memory and written to the audit trail
 * as one "auth.failed" entry per peer and minute (with the counts), by a timer every 15 s through
 * the thread pool; api_free writes what is left. */

/* Writes the failed-authentication counts of the minutes that ended (all of them when `all`) to
 * the audit trail, one "auth.failed" entry per peer and minute ({"peer", "minute", "failures",
 * "refused"}). Blocking (registry calls): never on the loop thread. Returns 0 or the last error. */
int api_auth_flush(api *a, bool all);

/* Frees the API: writes the failed-authentication counts not yet audited (blocking: the loop has
 * stopped), stops its read lane's threads, closes its handle and runs the (stopped) loop once
 * for that close, so call it on the loop's thread after uv_run returned and before
 * uv_loop_close. Requests still in flight must have been answered (close the HTTP server first
 * and let the loop drain). Accepts NULL. */
void api_free(api *a);

/* The http_handler_fn to give http_server_new, with the api as its arg. Loop thread only. */
void api_handle(http_request *req, void *api);

/* The validation POST /v1/jobs applies to its body, without a request or a store (the fuzz target
 * tests/fuzz/fuzz_job_json.c calls it): `body` (len bytes, borrowed, need not end in NUL) sent
 * with `content_type` (NULL = none) must be a JSON object of the job fields whose request passes
 * jobreq_validate against `lim`, with an "array" spec (if any) that job_array_parse takes within
 * the default bound. Returns 0 with *r filled (r->script is NULL: it pointed into the
 * freed body), or -EINVAL with the 4xx *status and *error_json, the answer's body (malloc'd, the
 * caller frees it). Any thread; allocates only what it returns. */
int api_job_body_check(const char *content_type, const char *body, size_t len,
                       const jobreq_limits *lim, jobreq *r, int *status, char **error_json);

/* The http_headers_fn to give http_server_options.on_headers, with the api as its arg: checks
 * the bearer token of a request for anything but /healthz as soon as its headers are in (before
 * any body byte is buffered), and answers it at once when the token is missing, malformed,
 * unknown, revoked, expired or its user disabled (401), or when its peer is past its failed
 * attempts (429). Loop thread only; never blocks (memory only: registry_token_check; failures
 * are counted per peer and audited by minute, see api_auth_flush). */
void api_headers(http_request *req, void *api);

/* The number of requests whose work is still in flight. */
unsigned api_pending(const api *a);

/* How many GET /v1/jobs/{id} were answered from memory (job_cache.h) since api_new. Loop
 * thread. */
uint64_t api_job_cache_hits(const api *a);

#endif
