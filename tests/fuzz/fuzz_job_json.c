/* fuzz_job_json.c - libFuzzer target: arbitrary bytes as a POST /v1/jobs body, through the API's
 * own validation (api_job_body_check: JSON parsing, the field table, jobreq_validate).
 *
 * Never touches a store, a socket or Slurm. Besides the sanitizers it checks the contract: a body
 * is either accepted with a request inside the site's limits, or refused with a 4xx and a JSON
 * error {"error": {"code", "message"}}.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"
#include "job_request.h"

static const char *const gpu_types[] = {"h100", "a100", NULL};

static const jobreq_limits limits = {
    .max_gpus = 8,
    .max_cpus = 32,
    .max_time_minutes = 7 * 24 * 60,
    .max_mem_mb = 256 * 1024,
    .max_script_bytes = 256 * 1024,
    .gpu_types = gpu_types,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jobreq r;
    int status = 0;
    char *answer = NULL;
    int rc = api_job_body_check("application/json", (const char *)data, size, &limits, &r, &status,
                                &answer);
    if (rc == 0) {
        if (answer != NULL || status != 0) abort();
        if (r.gpus < 0 || r.gpus > limits.max_gpus) abort();
        if (r.cpus_per_task < 1 || r.cpus_per_task > limits.max_cpus) abort();
        if (r.time_minutes < 1 || r.time_minutes > limits.max_time_minutes) abort();
        if (r.mem_mb < 0 || r.mem_mb > limits.max_mem_mb) abort();
        if (memchr(r.name, '\0', sizeof r.name) == NULL) abort();
        if (memchr(r.gpu_type, '\0', sizeof r.gpu_type) == NULL) abort();
        if (r.script != NULL) abort();
        return 0;
    }
    if (rc != -EINVAL) abort();
    if (status < 400 || status > 499 || answer == NULL) abort();
    json_error_t jerr;
    json_t *o = json_loads(answer, 0, &jerr);
    json_t *e = o ? json_object_get(o, "error") : NULL;
    if (!json_is_string(json_object_get(e, "code")) ||
        !json_is_string(json_object_get(e, "message")))
        abort();
    json_decref(o);
    free(answer);
    return 0;
}
