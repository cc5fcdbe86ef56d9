/* fuzz_job_dependency.c - libFuzzer target: sbatch's --dependency parser (job_dependency_parse).
 *
 * The input is the dependency text (cut at its first NUL). Besides the sanitizers it checks that
 * an accepted text prints canonically and parses back to the same conditions (the canonical text
 * is stable), that every condition names a job id (singleton aside) within 1 .. 2^53 - 1, and that
 * a refusal leaves no condition and always says why. Pure: no file, no network.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_dependency.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[JOB_DEPENDENCY_TEXT_MAX + 16], err[256], canon[JOB_DEPENDENCY_TEXT_MAX * 2];
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    job_dependency d, again;
    err[0] = '\0';
    if (job_dependency_parse(text, &d, err, sizeof err) != 0) {
        if (d.n != 0 || err[0] == '\0') abort();
        return 0;
    }
    if (d.n == 0 || d.n > JOB_DEPENDENCY_MAX) abort();
    for (size_t i = 0; i < d.n; i++) {
        const job_dependency_item *it = &d.items[i];
        if (it->kind == JOB_DEP_SINGLETON ? it->id != 0
                                          : (it->id < 1 || it->id > ((int64_t)1 << 53) - 1))
            abort();
    }
    if (job_dependency_format(&d, canon, sizeof canon) <= 0) abort();
    if (job_dependency_parse(canon, &again, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_job_dependency: canonical \"%s\" refused: %s\n", canon, err);
        abort();
    }
    if (again.n != d.n) abort();
    for (size_t i = 0; i < d.n; i++)
        if (again.items[i].kind != d.items[i].kind || again.items[i].id != d.items[i].id) abort();
    return 0;
}
