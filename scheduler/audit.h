/* audit.h - antennad's tamper-evident audit trail: an HMAC-SHA256 hash chain over every state
 * change, stored by the store, keyed by a secret that never enters the database.
 *
 * Entry hash: HMAC-SHA256(key, prev_hash "\n" seq "\n" at "\n" actor "\n" partner "\n" action
 * "\n" details), hex. The chain head (last seq and hash) is also written to a file outside the
 * database after every append, so that a truncated tail is caught. Never logs a key.
 */
#ifndef ANTENNA_AUDIT_H
#define ANTENNA_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct audit audit;

/* Opens the audit trail over `st` (borrowed) with the key in `key_path` (created with 32 random
 * bytes, mode 0600, when missing; refused when readable by group or others) and the chain head
 * file `head_path` (created/replaced atomically on each append). Returns 0 and sets *out, or a
 * negative errno with a message in err. */
int audit_new(store *st, const char *key_path, const char *head_path, audit **out, char *err,
              size_t errlen);

/* Frees it. Accepts NULL. */
void audit_free(audit *a);

/* Appends one entry: `actor` (user name, "antennad", "-"), `partner` ("" or NULL), `action`
 * ("job.submitted", ...), `details_json` (a JSON object text, NULL = "{}"), then rewrites the head
 * file. Blocking (store + file): worker threads only. Thread-safe. Returns 0 or a negative errno
 * (the caller logs it; the change itself is not undone). */
int audit_log(audit *a, const char *actor, const char *partner, const char *action,
              const char *details_json);

/* Appends one entry like audit_log, but inside the calling thread's store batch (see
 * store_batch_begin) and without touching the head file: the entry is durable when the batch
 * commits, and the caller then records the batch's last entry with audit_head_sync. Sets *seq and
 * hash[65] (either may be NULL) to the new entry's. Not thread-safe against another appender: the
 * registry's committer is the only caller. Returns 0, -EINVAL (a field too long) or the store's
 * error (nothing appended). */
int audit_append(audit *a, const char *actor, const char *partner, const char *action,
                 const char *details_json, int64_t *seq, char hash[STORE_HASH_HEX]);

/* Rewrites the head file with `seq` and `hash` (the last committed entry). Blocking (two fsyncs).
 * Returns 0 or a negative errno. */
int audit_head_sync(audit *a, int64_t seq, const char *hash);

/* Like audit_log with details built from printf-style key/value text: details_fmt must produce
 * a JSON object. */
int audit_logf(audit *a, const char *actor, const char *partner, const char *action,
               const char *details_fmt, ...) __attribute__((format(printf, 5, 6)));

/* The result of a verification. */
typedef struct audit_report {
    int ok;            /* 1 when the whole chain verifies */
    int64_t entries;   /* entries checked */
    int64_t first_bad; /* seq of the first entry that fails (0 when ok) */
    char problem[256]; /* what is wrong with it: "entry 12 was modified (its hash does not
                          match)", "entry 7 is missing (deleted)", "entry 9 is out of order",
                          "an entry was inserted before 10", "the chain ends at 41 but the
                          head file says 44 (entries deleted from the end)" */
    int64_t head_seq;  /* from the head file (0 if none) */
} audit_report;

/* Verifies the whole chain of `st` with the key file and head file (NULL = no head check).
 * Blocking. For a trail no antennad is appending to (the head file is rewritten in place: read
 * while a daemon writes it, it may look malformed; a daemon's own check is audit_verify_open).
 * Returns 0 (whatever the verdict, in *r) or a negative errno with a message in r->problem (key
 * missing, store error). */
int audit_verify(store *st, const char *key_path, const char *head_path, audit_report *r);

/* Same, with an opened audit's key and head file. */
int audit_verify_open(audit *a, audit_report *r);

#endif
