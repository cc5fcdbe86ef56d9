/* request_id.h - the id that follows one HTTP request through antennad's log, its job's row and
 * Slurm's record: the one rule of a well-formed id, and the making of fresh ones.
 *
 * Never allocates, never logs, never trusts an id it did not check.
 */
#ifndef ANTENNA_REQUEST_ID_H
#define ANTENNA_REQUEST_ID_H

#include <stdbool.h>
#include <stddef.h>

#define REQUEST_ID_MAX 64 /* characters, without the NUL */

/* True when `id` is a well-formed request id: 1 to REQUEST_ID_MAX characters of [A-Za-z0-9._-]
 * (so it is safe in a log line, a header, a label and Slurm's AdminComment). The one rule for an
 * X-Request-Id a client brings (a malformed one is replaced, never echoed) and a stored id. NULL
 * is not well-formed. Any thread. */
bool request_id_valid(const char *id);

#define REQUEST_ID_MAKE_LEN 32 /* room request_id_make always fits in */

/* Makes a fresh request id into out (room for len bytes; REQUEST_ID_MAKE_LEN is always enough):
 * "<12 hex digits of a per-process random value>-<a per-process counter in hex>", unique in this
 * process and unlikely to repeat across restarts. Returns 0, or -ENOSPC (out is then ""). Any
 * thread; no allocation; one getrandom(2) in the process's first call only. */
int request_id_make(char *out, size_t len);

#endif
