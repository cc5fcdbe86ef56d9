/* account.c - the one check of a Unix account an Antenna user is mapped to. Never logs, never
 * writes anything, never runs on the event-loop thread (getpwnam_r and login.defs are file I/O).
 */
#include "account.h"

#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned account_uid_min_read(const char *path)
{
    FILE *f = fopen(path ? path : "/etc/login.defs", "re");
    unsigned v = ACCOUNT_UID_MIN_DEFAULT;
    if (f == NULL) return v;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "UID_MIN", 7) != 0 || (p[7] != ' ' && p[7] != '\t')) continue;
        char *end = NULL;
        errno = 0;
        unsigned long n = strtoul(p + 7, &end, 10);
        while (end && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (errno == 0 && end && *end == '\0' && end != p + 7 && n > 0 && n < 0x7fffffff)
            v = (unsigned)n;
    }
    fclose(f);
    return v;
}

/* A user name as useradd accepts it: [a-z_][a-z0-9_.-]*, at most 32 characters. */
static bool name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 32) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || c == '_' ||
                  (i > 0 && ((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '$'));
        if (!ok) return false;
    }
    return true;
}

/* The uid of account `name`, or -1 when there is none. */
static long long uid_of(const char *name)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (name == NULL || name[0] == '\0') return -1;
    if (getpwnam_r(name, &pw, buf, sizeof buf, &res) != 0 || res == NULL) return -1;
    return (long long)pw.pw_uid;
}

/* Refuses `name` (uid `uid`) when it is, or has the uid of, the account `other`. */
static bool is_account(const char *name, uid_t uid, const char *other)
{
    if (other == NULL || other[0] == '\0') return false;
    if (strcmp(name, other) == 0) return true;
    long long o = uid_of(other);
    return o >= 0 && (uid_t)o == uid;
}

int account_check(const account_rules *r, const char *name, uid_t *uid, char *msg, size_t len)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    unsigned uid_min = r && r->uid_min ? r->uid_min : ACCOUNT_UID_MIN_DEFAULT;
    if (!name_valid(name)) {
        snprintf(msg, len,
                 "\"%.64s\" is not a valid Unix account name (lowercase letters, digits, '_', '.'"
                 " and '-', at most 32 characters)",
                 name ? name : "");
        return -EINVAL;
    }
    if (getpwnam_r(name, &pw, buf, sizeof buf, &res) != 0 || res == NULL) {
        snprintf(msg, len,
                 "Unix account \"%s\" does not exist on the broker host; create an unprivileged "
                 "account first (deploy/ensure-unix-user.sh %s)",
                 name, name);
        return -ENOENT;
    }
    const char *why = NULL;
    if (pw.pw_uid == 0 || pw.pw_gid == 0)
        why = "is root (uid or gid 0)";
    else if (r && is_account(name, pw.pw_uid, r->slurm_user))
        why = "is the SlurmUser, which controls the whole cluster";
    else if (is_account(name, pw.pw_uid, ACCOUNT_MUNGE))
        why = "is the munge account, which can read the cluster's munge key";
    else if (pw.pw_uid < uid_min)
        why = "is a system account (uid below UID_MIN)";
    else if (r && r->deny)
        for (const char *const *d = r->deny; *d; d++)
            if (is_account(name, pw.pw_uid, *d)) {
                why = "is in the broker's deny list (unix_deny in antennad's config)";
                break;
            }
    if (why != NULL) {
        snprintf(msg, len,
                 "Unix account \"%s\" (uid %u) %s; jobs must run as an ordinary unprivileged "
                 "account with uid >= %u: map the user to its own account (create one with "
                 "deploy/ensure-unix-user.sh NAME)",
                 name, (unsigned)pw.pw_uid, why, uid_min);
        return -EPERM;
    }
    if (uid) *uid = pw.pw_uid;
    return 0;
}
