/* fuzz_config.c - libFuzzer target: arbitrary bytes as antennad's JSON config file, through
 * config_load over the defaults.
 *
 * Writes each input to one file in a private temporary folder (config_load reads a path) and
 * removes the folder at exit; touches nothing else. Besides the sanitizers it checks the contract:
 * a refusal says why, and an accepted config keeps its strings terminated and its GPU type list
 * NULL-terminated.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char path[128];

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

static void setup(void)
{
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/fuzz_config.XXXXXX", tmp);
    if (mkdtemp(dir) == NULL) abort();
    snprintf(path, sizeof path, "%s/antennad.json", dir);
    atexit(cleanup);
}

static void write_all(const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) abort();
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n <= 0) abort();
        data += n;
        size -= (size_t)n;
    }
    close(fd);
}

static void check_str(const char *s, size_t len)
{
    if (memchr(s, '\0', len) == NULL) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (dir[0] == '\0') setup();
    write_all(data, size);

    config c;
    char err[512] = "";
    config_defaults(&c);
    int rc = config_load(path, &c, err, sizeof err);
    if (rc < 0) {
        if (rc != -EINVAL && rc != -ENOENT) abort();
        if (err[0] == '\0') abort();
        return 0;
    }
    if (rc != 0) abort();
    check_str(c.listen_host, sizeof c.listen_host);
    check_str(c.tls_cert, sizeof c.tls_cert);
    check_str(c.tls_key, sizeof c.tls_key);
    check_str(c.database, sizeof c.database);
    check_str(c.spool_dir, sizeof c.spool_dir);
    check_str(c.partition, sizeof c.partition);
    check_str(c.log_level, sizeof c.log_level);
    check_str(c.audit_key_file, sizeof c.audit_key_file);
    check_str(c.audit_head_file, sizeof c.audit_head_file);
    size_t n = 0;
    while (n <= CONFIG_MAX_GPU_TYPES && c.gpu_type_list[n] != NULL) {
        check_str(c.gpu_type_list[n], sizeof c.gpu_types[0]);
        n++;
    }
    if (n > CONFIG_MAX_GPU_TYPES) abort();
    return 0;
}
