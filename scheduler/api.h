/* api.h - the /v1 HTTP+JSON API of antennad: routing, authentication, validation, answers.
 *
 * Runs its handlers off the loop thread: the cheap, frequent reads (a job, the job list) on a read
 * lane of two threads of its own, the rest on the libuv thread pool (they read the store and make
 * registry changes);
 * never calls SQLite or the registry on the loop thread (but registry_health, which only reads a
 * flag, for /healthz), never does file I/O there, and never talks to Slurm: reads are served
 * from antennad's own state, and changes for Slurm go through the broker. Never writes the store,
 * never takes the policy engine's lock and never appends to the audit trail itself: every change
 * is one registry call, which audits it.
 */
#ifndef ANTENNA_API_H
#define ANTENNA_API_H

#include <uv.h>

#include "audit.h"
#include "broker.h"
#include "http_server.h"
#include "job_request.h"
#include "reconciler.h"
#include "registry.h"

typedef struct api api;

typedef struct api_options {
    jobreq_limits limits;    /* gpu_types is borrowed and must outlive the api */
    const char *spool_dir;   /* where job output lives (see broker_job_output_path); copied */
    size_t max_output_bytes; /* per GET .../output answer; 0 = 4 MiB */
    audit *audit; /* the audit trail (borrowed), for GET /v1/audit/verify only (the registry
                     appends); NULL = not configured (verify answers 503) */
    reconciler *reconciler; /* GET /v1/reconcile (borrowed); NULL = no accounting (503) */
} api_options;

/* Creates the API over `reg` (borrowed: every change goes through it; reads go to
 * registry_store(reg)) and `br` (borrowed; may be NULL: jobs then stay queued and /healthz does
 * not report Slurm, which unit tests use). Returns 0 and sets *out, or -ENOMEM. */
int api_new(uv_loop_t *loop, registry *reg, broker *br, const api_options *opt, api **out);

/* Frees the API: stops its read lane's threads, closes its handle and runs the (stopped) loop once
 * for that close, so call it on the loop's thread after uv_run returned and before
 * uv_loop_close. Requests still in flight must have been answered (close the HTTP server first
 * and let the loop drain). Accepts NULL. */
void api_free(api *a);

/* The http_handler_fn to give http_server_new, with the api as its arg. Loop thread only. */
void api_handle(http_request *req, void *api);

/* The number of requests whose work is still in flight. */
unsigned api_pending(const api *a);

#endif
