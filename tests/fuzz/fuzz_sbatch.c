/* fuzz_sbatch.c - libFuzzer target: arbitrary bytes as a batch script through the CLI's #SBATCH
 * reader (sbatch_script_check_text, sbatch_script_parse) and its first line through the option
 * value parsers it relies on (time, memory, --gres, --gpus).
 *
 * Never reads a file or prints. Besides the sanitizers it checks the contract: an error always
 * says something, and every parsed value is one a job request may carry.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job_request.h"
#include "sbatch_script.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_warn(void *ctx, const char *msg)
{
    size_t *n = ctx;
    if (msg == NULL || strlen(msg) == 0) abort();
    (*n)++;
}

/* The value parsers over `s`, a NUL-terminated line of the input. */
static void parse_values(const char *s)
{
    int minutes = -1, count = -1;
    int64_t mb = -1;
    char type[JOBREQ_GPU_TYPE_MAX];
    if (jobreq_time_parse(s, &minutes) == 0 && minutes < 1) abort();
    if (jobreq_mem_parse(s, &mb) == 0 && mb < 0) abort();
    if (jobreq_gres_parse(s, &count, type, sizeof type) == 0 &&
        (count < 0 || memchr(type, '\0', sizeof type) == NULL))
        abort();
    if (jobreq_gpus_parse(s, &count, type, sizeof type) == 0 &&
        (count < 0 || memchr(type, '\0', sizeof type) == NULL))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char err[512];
    sbatch_opts o;
    size_t warnings = 0;

    err[0] = '\0';
    if (sbatch_script_check_text(text, size, "fuzz.sh", err, sizeof err) < 0 && err[0] == '\0')
        abort();
    sbatch_opts_init(&o);
    err[0] = '\0';
    int rc = sbatch_script_parse(text, size, "fuzz.sh", size % 2 ? SBATCH_IGNORE_UNSUPPORTED : 0u,
                                 &o, on_warn, &warnings, err, sizeof err);
    if (rc < 0 && err[0] == '\0') abort();
    if (rc == 0) {
        if ((o.set & SBATCH_SET_TIME) && o.r.time_minutes < 1) abort();
        if ((o.set & SBATCH_SET_MEM) && o.r.mem_mb < 0) abort();
        if ((o.set & SBATCH_SET_GPUS) && o.r.gpus < 0) abort();
        if ((o.set & SBATCH_SET_CPUS) && o.r.cpus_per_task < 1) abort();
        for (const char *p = o.r.name; (o.set & SBATCH_SET_NAME) && *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) abort();
        if (memchr(o.r.name, '\0', sizeof o.r.name) == NULL) abort();
        if (memchr(o.r.gpu_type, '\0', sizeof o.r.gpu_type) == NULL) abort();
        jobreq r;
        jobreq_init(&r);
        sbatch_opts_to_request(&o, &r);
    }

    char line[256];
    size_t n = 0;
    while (n < size && n < sizeof line - 1 && data[n] != '\n' && data[n] != '\0')
        n++;
    memcpy(line, data, n);
    line[n] = '\0';
    parse_values(line);
    return 0;
}
