/* log.h - antennad's one logger: LOG(level, fmt, ...) writes one fixed-format line.
 *
 * Never used by policies/ (libraries do not log). The level is checked before any formatting.
 * Line format: "2026-11-25T21:44:36.123Z LEVEL [thread] message\n" on stderr or the log file;
 * " rid=<request id>" ends the line while the writing thread works for a request
 * (log_request_id_set).
 */
#ifndef ANTENNA_LOG_H
#define ANTENNA_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

extern int log_min_level;

#define LOG(level, ...)                                                                            \
    do {                                                                                           \
        if ((level) >= log_min_level) log_write((level), __VA_ARGS__);                             \
    } while (0)

/* Writes one line at `level`. Thread-safe (one write(2) per line). Use LOG(), which checks the
 * level first. */
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sets the request id that ends every line this thread writes (" rid=<id>") until it is set
 * again; NULL or "" clears it. `rid` is borrowed: it must stay valid until the thread sets another
 * (a request's id lives as long as the request). Returns the one set before, to restore it.
 * Thread-local: costs one pointer store, no lock. */
const char *log_request_id_set(const char *rid);

/* Sets the minimum level from its name ("debug", "info", "warn", "error"). Returns 0, or -EINVAL
 * for an unknown name (the level is then unchanged). */
int log_level_set(const char *name);

/* Sends log lines to `path` (appended, created 0640), or back to stderr when path is NULL.
 * Returns 0 or a negative errno. Call before any thread is started. */
int log_file_set(const char *path);

#endif
