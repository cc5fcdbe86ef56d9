/* job_dependency.h - sbatch's --dependency as Antenna reads it: the parser, the canonical text,
 * what each condition makes of its prerequisite's state, and the reverse index from a
 * prerequisite to the jobs waiting on it.
 *
 * Pure library: no I/O, no logging, no clock, no libuv/Slurm/SQLite/OpenSSL. Not thread-safe:
 * the index has one owner (antennad's registry, under the engine's lock).
 *
 * Forms (sbatch(1), --dependency): `after:ID[:ID...]`, `afterok:ID[:ID...]`,
 * `afternotok:ID[:ID...]`, `afterany:ID[:ID...]` and `singleton`, joined by `,` (every one must
 * hold). IDs are Antenna job ids. Refused with a message saying what to write instead: `?` (any
 * of), `+time` delays, `aftercorr`, `afterburstbuffer`, `expand`, array task ids (`ID_TASK`), an
 * empty list, more than JOB_DEPENDENCY_MAX prerequisites.
 *
 * Meanings. after: the prerequisite started (or ended, whatever the way); afterany: it ended;
 * afterok: it completed (exit 0); afternotok: it ended in any other way (failed, cancelled,
 * timeout, node failure, lost...); singleton: every earlier job of the same Antenna user with the
 * same name ended (Antenna enforces it itself before dispatch; Slurm never sees it, since the
 * users of one partner share one Unix account and Slurm's singleton is per Unix user).
 */
#ifndef ANTENNA_JOB_DEPENDENCY_H
#define ANTENNA_JOB_DEPENDENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOB_DEPENDENCY_MAX      16  /* prerequisites of one job */
#define JOB_DEPENDENCY_TEXT_MAX 512 /* the longest dependency text accepted, NUL included */

typedef enum job_dependency_kind {
    JOB_DEP_AFTER = 0,
    JOB_DEP_AFTEROK,
    JOB_DEP_AFTERNOTOK,
    JOB_DEP_AFTERANY,
    JOB_DEP_SINGLETON,
    JOB_DEP_KIND_COUNT
} job_dependency_kind;

/* One condition on one prerequisite. For singleton as parsed, id is 0; the registry expands it
 * into one item per earlier job of the same user and name. */
typedef struct job_dependency_item {
    job_dependency_kind kind;
    int64_t id;
} job_dependency_item;

/* A parsed dependency: every item must hold. Items are unique (a repeated one is kept once). */
typedef struct job_dependency {
    job_dependency_item items[JOB_DEPENDENCY_MAX];
    size_t n;
} job_dependency;

/* Parses `text` (sbatch's forms above) into *out. Returns 0, or -EINVAL with a message in err
 * saying what is wrong and what to write (out is then empty). err may be NULL. */
int job_dependency_parse(const char *text, job_dependency *out, char *err, size_t errlen);

/* The canonical text of `d` into buf ("afterok:4:5,singleton"; items of one kind that follow each
 * other share one prefix; expanded singleton items print once as "singleton"). Returns the
 * length, or -ENOSPC when buf is too small (buf then holds "" when len > 0). */
int job_dependency_format(const job_dependency *d, char *buf, size_t len);

/* The name of a kind ("afterok", ...), or "?" when out of range. Static storage. */
const char *job_dependency_kind_name(job_dependency_kind k);

/* Parses a kind name. Returns 0 or -EINVAL. */
int job_dependency_kind_parse(const char *name, job_dependency_kind *out);

/* Where one condition stands, given its prerequisite's state. */
typedef enum job_dependency_status {
    JOB_DEP_WAIT = 0, /* Antenna holds the dependent (the prerequisite is not in Slurm yet, or a
                         singleton's earlier job has not ended) */
    JOB_DEP_PASS,     /* the prerequisite is in Slurm: pass the condition on with its Slurm id */
    JOB_DEP_MET,      /* already met: drop it */
    JOB_DEP_NEVER,    /* can never be met: the dependent ends cancelled */
} job_dependency_status;

/* The status of condition `kind` on a prerequisite in `state` (the store's state name: queued,
 * dispatching, dispatched, pending, running, suspended, completed, failed, cancelled, ...);
 * `terminal`: that state is an end; `in_slurm`: it has a Slurm job id. Pure. */
job_dependency_status job_dependency_check(job_dependency_kind kind, const char *state,
                                           bool terminal, bool in_slurm);

/* Why condition `kind` on job `id` (in `state`) can never be met, as a user-facing sentence into
 * buf ("dependency afterok:12 can never be met: job 12 ended failed"). Returns buf. */
char *job_dependency_never_reason(job_dependency_kind kind, int64_t id, const char *state,
                                  char *buf, size_t len);

/* --- the reverse index: prerequisite id -> the ids of the jobs Antenna holds for it --- */

typedef struct job_dependency_index job_dependency_index;

/* An empty index, or NULL on no memory. Free with job_dependency_index_free. */
job_dependency_index *job_dependency_index_new(void);

/* Frees the index. Accepts NULL. */
void job_dependency_index_free(job_dependency_index *ix);

/* Records that `dependent` waits on `prereq`. Idempotent. O(1) expected, plus the dependents
 * already recorded for `prereq`. Returns 0 or -ENOMEM (nothing changed). */
int job_dependency_index_add(job_dependency_index *ix, int64_t prereq, int64_t dependent);

/* Forgets that `dependent` waits on `prereq` (nothing when it was not recorded). */
void job_dependency_index_remove(job_dependency_index *ix, int64_t prereq, int64_t dependent);

/* Takes every dependent of `prereq` out of the index (its other edges stay): returns their
 * number and sets *out to a malloc'd array of their ids (caller frees; NULL when 0). Returns
 * -ENOMEM when the array cannot be made (nothing changed). */
long job_dependency_index_take(job_dependency_index *ix, int64_t prereq, int64_t **out);

/* The number of (prerequisite, dependent) edges recorded. */
size_t job_dependency_index_size(const job_dependency_index *ix);

#endif
