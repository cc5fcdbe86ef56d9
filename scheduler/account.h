/* account.h - which Unix accounts an Antenna user may be mapped to (the account its jobs run as).
 *
 * One function decides it, for user creation and every mapping change: the account must exist and
 * be an ordinary unprivileged one (uid >= UID_MIN, not root), and must not be the SlurmUser, the
 * munge account or an account of the configured deny list (compared by uid as well as by name, so
 * that an alias of a refused account is refused too). Never logs, never writes anything. Reads the
 * password database (getpwnam_r) and /etc/login.defs: file I/O, so call it from worker threads
 * (or at start-up), never from the event-loop thread.
 */
#ifndef ANTENNA_ACCOUNT_H
#define ANTENNA_ACCOUNT_H

#include <stddef.h>
#include <sys/types.h>

#define ACCOUNT_UID_MIN_DEFAULT 1000u
#define ACCOUNT_MUNGE           "munge"

typedef struct account_rules {
    unsigned uid_min;        /* accounts below it are system accounts: refused */
    const char *slurm_user;  /* the SlurmUser's name (NULL or "" = unknown: not checked) */
    const char *const *deny; /* NULL-terminated names also refused (borrowed); NULL = none */
} account_rules;

/* Reads UID_MIN from the login.defs file at `path` (NULL = /etc/login.defs). Returns it, or
 * ACCOUNT_UID_MIN_DEFAULT when the file or the key is missing or malformed. Blocking (file I/O). */
unsigned account_uid_min_read(const char *path);

/* Whether Unix account `name` may run an Antenna user's jobs under rules `r`. Returns 0 (and sets
 * *uid when not NULL), -ENOENT (no such account), -EPERM (a refused account), or -EINVAL (a name
 * that is no valid account name); on an error msg[len] says why and what to do. Blocking
 * (getpwnam_r). Thread-safe. */
int account_check(const account_rules *r, const char *name, uid_t *uid, char *msg, size_t len);

#endif
