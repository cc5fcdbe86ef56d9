/* log.c - antennad's logger: one fixed-format line per call. Never blocks on a lock, never
 * allocates. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int log_min_level = LOG_INFO;
static int log_fd = 2;
static _Thread_local const char *log_rid; /* the request this thread works for, or NULL */

const char *log_request_id_set(const char *rid)
{
    const char *old = log_rid;
    log_rid = rid && rid[0] ? rid : NULL;
    return old;
}

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_write(int level, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    if (level < LOG_DEBUG || level > LOG_ERROR) level = LOG_ERROR;
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%ld] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], (long)syscall(SYS_gettid));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    if (log_rid != NULL) {
        int k = snprintf(line + len, sizeof line - len - 1, " rid=%s", log_rid);
        len += k < 0 ? 0 : (size_t)k;
        if (len > sizeof line - 2) len = sizeof line - 2;
    }
    line[len++] = '\n';
    ssize_t w = write(log_fd, line, len);
    (void)w;
}

int log_level_set(const char *name)
{
    for (int i = 0; i <= LOG_ERROR; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            log_min_level = i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        log_min_level = LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

int log_file_set(const char *path)
{
    if (path == NULL) {
        if (log_fd != 2) close(log_fd);
        log_fd = 2;
        return 0;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return -errno;
    if (log_fd != 2) close(log_fd);
    log_fd = fd;
    return 0;
}
