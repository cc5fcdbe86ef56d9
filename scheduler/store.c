/* store.c - antennad's durable state in SQLite. Never builds SQL from user data, never runs on the
 * event-loop thread, never logs token hashes or scripts. */
#include "store.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The terminal states, as one SQL list (used by the active-jobs query and its partial index, which
 * must match word for word) and as an array for store_state_terminal. Keep the two in step. */
#define TERMINAL_SQL                                                                               \
    "('completed','failed','cancelled','timeout','node_fail','preempted','boot_fail','deadline',"  \
    "'out_of_memory','lost')"

static const char *const terminal_states[] = {
    "completed", "failed",   "cancelled",     "timeout", "node_fail",
    "preempted", "deadline", "out_of_memory", "lost",    "boot_fail",
};

#define STORE_BUSY_TIMEOUT_MS 10000

/* Schema migrations: migrations[v] brings a database from user_version v to v + 1. Append only;
 * never edit a step that has shipped. Static SQL only. */
static const char *const migrations[] = {
    /* v0 -> v1 */
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL);"
    "INSERT INTO meta (key, value) VALUES ('instance_id', lower(hex(randomblob(8))));"
    "CREATE TABLE partners ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  partner_id INTEGER NOT NULL REFERENCES partners(id),"
    "  unix_user TEXT NOT NULL,"
    "  role TEXT NOT NULL DEFAULT 'user',"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX users_partner ON users (partner_id);"
    "CREATE TABLE tokens ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  hash TEXT NOT NULL UNIQUE,"
    "  label TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX tokens_user ON tokens (user_id);"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  user_name TEXT NOT NULL,"
    "  partner TEXT NOT NULL,"
    "  unix_user TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  gpus INTEGER NOT NULL,"
    "  gpu_type TEXT NOT NULL,"
    "  cpus_per_task INTEGER NOT NULL,"
    "  mem_mb INTEGER NOT NULL,"
    "  time_minutes INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  slurm_job_id INTEGER NOT NULL DEFAULT 0,"
    "  exit_code INTEGER," /* NULL = no exit code yet */
    "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
    "  submitted_at INTEGER NOT NULL,"
    "  dispatched_at INTEGER NOT NULL DEFAULT 0,"
    "  started_at INTEGER NOT NULL DEFAULT 0,"
    "  ended_at INTEGER NOT NULL DEFAULT 0,"
    "  script TEXT NOT NULL);" /* last: listing jobs never reads its overflow pages */
    "CREATE INDEX jobs_user ON jobs (user_id, id);"
    "CREATE INDEX jobs_state ON jobs (state);"
    "CREATE INDEX jobs_active ON jobs (id) WHERE state NOT IN " TERMINAL_SQL ";",
};

#define STORE_SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

#define JOB_COLS                                                                                   \
    "id, user_id, user_name, partner, unix_user, name, gpus, gpu_type, cpus_per_task, mem_mb, "    \
    "time_minutes, state, reason, slurm_job_id, exit_code, cancel_requested, submitted_at, "       \
    "dispatched_at, started_at, ended_at"

#define USER_COLS "u.id, u.name, p.name, u.unix_user, u.role, u.created_at"

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_PARTNER_INSERT,
    ST_PARTNER_GET,
    ST_PARTNER_LIST,
    ST_PARTNER_ID,
    ST_USER_INSERT,
    ST_USER_GET,
    ST_USER_GET_ID,
    ST_USER_LIST,
    ST_USER_LIST_PARTNER,
    ST_TOKEN_INSERT,
    ST_TOKEN_LOOKUP,
    ST_TOKEN_REVOKE,
    ST_TOKEN_LIST,
    ST_TOKEN_LIST_USER,
    ST_JOB_INSERT,
    ST_JOB_GET,
    ST_JOB_SCRIPT,
    ST_JOB_LIST,
    ST_JOB_LIST_USER,
    ST_JOB_LIST_ACTIVE,
    ST_JOB_EXISTS,
    ST_JOB_TRANSITION,
    ST_JOB_SET_DISPATCHED,
    ST_JOB_UPDATE_READ,
    ST_JOB_UPDATE_WRITE,
    ST_JOB_CANCEL_QUEUED,
    ST_JOB_CANCEL_FLAG,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_PARTNER_INSERT] =
        "INSERT INTO partners (name, description, created_at) VALUES (?1, ?2, ?3)",
    [ST_PARTNER_GET] = "SELECT id, name, description, created_at FROM partners WHERE name = ?1",
    [ST_PARTNER_LIST] = "SELECT id, name, description, created_at FROM partners ORDER BY name",
    [ST_PARTNER_ID] = "SELECT id FROM partners WHERE name = ?1",
    [ST_USER_INSERT] = "INSERT INTO users (name, partner_id, unix_user, role, created_at) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_USER_GET] = "SELECT " USER_COLS " FROM users u JOIN partners p ON p.id = u.partner_id "
                    "WHERE u.name = ?1",
    [ST_USER_GET_ID] = "SELECT " USER_COLS " FROM users u JOIN partners p ON p.id = u.partner_id "
                       "WHERE u.id = ?1",
    [ST_USER_LIST] = "SELECT " USER_COLS " FROM users u JOIN partners p ON p.id = u.partner_id "
                     "ORDER BY u.name",
    [ST_USER_LIST_PARTNER] =
        "SELECT " USER_COLS " FROM users u JOIN partners p ON p.id = u.partner_id "
        "WHERE p.name = ?1 ORDER BY u.name",
    [ST_TOKEN_INSERT] = "INSERT INTO tokens (user_id, hash, label, created_at) "
                        "VALUES (?1, ?2, ?3, ?4)",
    [ST_TOKEN_LOOKUP] = "SELECT " USER_COLS " FROM tokens t JOIN users u ON u.id = t.user_id "
                        "JOIN partners p ON p.id = u.partner_id "
                        "WHERE t.hash = ?1 AND t.revoked_at = 0",
    [ST_TOKEN_REVOKE] = "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at = 0",
    [ST_TOKEN_LIST] = "SELECT t.id, t.user_id, u.name, t.label, t.created_at, t.revoked_at "
                      "FROM tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id",
    [ST_TOKEN_LIST_USER] = "SELECT t.id, t.user_id, u.name, t.label, t.created_at, t.revoked_at "
                           "FROM tokens t JOIN users u ON u.id = t.user_id "
                           "WHERE t.user_id = ?1 ORDER BY t.id",
    [ST_JOB_INSERT] = "INSERT INTO jobs (user_id, user_name, partner, unix_user, name, gpus, "
                      "gpu_type, cpus_per_task, mem_mb, time_minutes, state, submitted_at, script) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'queued', ?11, ?12)",
    [ST_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [ST_JOB_SCRIPT] = "SELECT script FROM jobs WHERE id = ?1",
    [ST_JOB_LIST] = "SELECT " JOB_COLS " FROM jobs ORDER BY id DESC LIMIT ?1",
    [ST_JOB_LIST_USER] = "SELECT " JOB_COLS " FROM jobs WHERE user_id = ?1 ORDER BY id DESC "
                         "LIMIT ?2",
    [ST_JOB_LIST_ACTIVE] =
        "SELECT " JOB_COLS " FROM jobs WHERE state NOT IN " TERMINAL_SQL " ORDER BY id",
    [ST_JOB_EXISTS] = "SELECT state FROM jobs WHERE id = ?1",
    [ST_JOB_TRANSITION] = "UPDATE jobs SET state = ?3, reason = ?4, "
                          "ended_at = CASE WHEN ?5 AND ended_at = 0 THEN ?6 ELSE ended_at END "
                          "WHERE id = ?1 AND state = ?2",
    [ST_JOB_SET_DISPATCHED] = "UPDATE jobs SET state = 'dispatched', slurm_job_id = ?2, "
                              "dispatched_at = ?3 WHERE id = ?1 AND state = 'dispatching'",
    [ST_JOB_UPDATE_READ] = "SELECT state, reason, slurm_job_id, exit_code, started_at, ended_at "
                           "FROM jobs WHERE id = ?1",
    [ST_JOB_UPDATE_WRITE] = "UPDATE jobs SET state = ?2, reason = ?3, slurm_job_id = ?4, "
                            "exit_code = ?5, started_at = ?6, ended_at = ?7 WHERE id = ?1",
    [ST_JOB_CANCEL_QUEUED] = "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, "
                             "reason = 'cancelled before dispatch', ended_at = ?2 "
                             "WHERE id = ?1 AND state = 'queued'",
    [ST_JOB_CANCEL_FLAG] = "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1",
};

struct store {
    sqlite3 *db;
    pthread_mutex_t lock;
    sqlite3_stmt *stmts[ST_COUNT];
    char instance_id[40];
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Maps an SQLite result code to a negative errno; logs the unexpected ones with SQLite's text. */
static int db_error(store *s, int rc, const char *what)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return -EEXIST;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return -ENOENT;
    case SQLITE_NOMEM:
        return -ENOMEM;
    default:
        LOG(LOG_ERROR, "store: %s: %s (sqlite %d)", what, sqlite3_errmsg(s->db), rc);
        return -EIO;
    }
}

/* Returns cached statement `id` (prepared on first use; stmt_done resets it), or NULL. */
static sqlite3_stmt *stmt_get(store *s, enum stmt_id id)
{
    if (!s->stmts[id]) {
        int rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->stmts[id], NULL);
        if (rc != SQLITE_OK) {
            db_error(s, rc, "prepare");
            s->stmts[id] = NULL;
            return NULL;
        }
    }
    return s->stmts[id];
}

static void stmt_done(sqlite3_stmt *st)
{
    if (!st) return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs a statement that returns no row (BEGIN, COMMIT, an INSERT/UPDATE). Returns 0 or -errno. */
static int stmt_run(store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? 0 : db_error(s, sqlite3_extended_errcode(s->db), what);
    stmt_done(st);
    return ret;
}

static int tx_begin(store *s)
{
    sqlite3_stmt *st = stmt_get(s, ST_BEGIN);
    return st ? stmt_run(s, st, "begin") : -EIO;
}

static int tx_commit(store *s)
{
    sqlite3_stmt *st = stmt_get(s, ST_COMMIT);
    return st ? stmt_run(s, st, "commit") : -EIO;
}

/* Rolls back the open transaction, if any; keeps `ret` (the error that caused it). */
static int tx_rollback(store *s, int ret)
{
    if (sqlite3_get_autocommit(s->db)) return ret;
    sqlite3_stmt *st = stmt_get(s, ST_ROLLBACK);
    if (st) stmt_run(s, st, "rollback");
    return ret;
}

/* Ends a transaction: commits when ret is 0, rolls back otherwise. Returns the final result. */
static int tx_end(store *s, int ret)
{
    if (ret == 0) {
        ret = tx_commit(s);
        if (ret == 0) return 0;
    }
    return tx_rollback(s, ret);
}

static void col_text(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t len = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (len >= cap) len = cap - 1;
    if (len) memcpy(dst, t, len);
    dst[len] = '\0';
}

static bool text_fits(const char *str, size_t cap)
{
    return str && strnlen(str, cap) < cap;
}

static bool name_ok(const char *name)
{
    return text_fits(name, STORE_NAME_MAX) && name[0] != '\0';
}

static int bind_text(sqlite3_stmt *st, int idx, const char *str)
{
    return sqlite3_bind_text(st, idx, str ? str : "", -1, SQLITE_STATIC);
}

/* Appends one zeroed item to a growing array. Returns a pointer to it, or NULL (out of memory). */
static void *array_push(void **arr, size_t *n, size_t *cap, size_t item)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        if (ncap > SIZE_MAX / item) return NULL;
        void *p = realloc(*arr, ncap * item);
        if (!p) return NULL;
        *arr = p;
        *cap = ncap;
    }
    void *slot = (char *)*arr + *n * item;
    memset(slot, 0, item);
    (*n)++;
    return slot;
}

typedef void (*row_reader)(sqlite3_stmt *st, void *item);

/* Steps `st` to the end, reading each row with `read` into a malloc'd array. Resets st. */
static int read_rows(store *s, sqlite3_stmt *st, size_t item, row_reader read, void **out,
                     size_t *n)
{
    void *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        void *slot = array_push(&arr, &cnt, &cap, item);
        if (!slot) {
            ret = -ENOMEM;
            goto fail_rows;
        }
        read(st, slot);
    }
    if (rc != SQLITE_DONE) {
        ret = db_error(s, sqlite3_extended_errcode(s->db), "list");
        goto fail_rows;
    }
    stmt_done(st);
    *out = arr;
    *n = cnt;
    return 0;

fail_rows:
    stmt_done(st);
    free(arr);
    return ret;
}

/* Steps `st` once: 0 and the row read with `read`, -ENOENT (no row), or -errno. Resets st. */
static int read_one(store *s, sqlite3_stmt *st, row_reader read, void *out)
{
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW)
        read(st, out);
    else if (rc == SQLITE_DONE)
        ret = -ENOENT;
    else
        ret = db_error(s, sqlite3_extended_errcode(s->db), "read");
    stmt_done(st);
    return ret;
}

static void read_partner(sqlite3_stmt *st, void *item)
{
    store_partner *p = item;
    memset(p, 0, sizeof *p);
    p->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, p->name, sizeof p->name);
    col_text(st, 2, p->description, sizeof p->description);
    p->created_at = sqlite3_column_int64(st, 3);
}

static void read_user(sqlite3_stmt *st, void *item)
{
    store_user *u = item;
    memset(u, 0, sizeof *u);
    u->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, u->name, sizeof u->name);
    col_text(st, 2, u->partner, sizeof u->partner);
    col_text(st, 3, u->unix_user, sizeof u->unix_user);
    col_text(st, 4, u->role, sizeof u->role);
    u->created_at = sqlite3_column_int64(st, 5);
}

static void read_token(sqlite3_stmt *st, void *item)
{
    store_token *t = item;
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(st, 0);
    t->user_id = sqlite3_column_int64(st, 1);
    col_text(st, 2, t->user, sizeof t->user);
    col_text(st, 3, t->label, sizeof t->label);
    t->created_at = sqlite3_column_int64(st, 4);
    t->revoked_at = sqlite3_column_int64(st, 5);
}

static void read_job(sqlite3_stmt *st, void *item)
{
    store_job *j = item;
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(st, 0);
    j->user_id = sqlite3_column_int64(st, 1);
    col_text(st, 2, j->user, sizeof j->user);
    col_text(st, 3, j->partner, sizeof j->partner);
    col_text(st, 4, j->unix_user, sizeof j->unix_user);
    col_text(st, 5, j->name, sizeof j->name);
    j->gpus = sqlite3_column_int(st, 6);
    col_text(st, 7, j->gpu_type, sizeof j->gpu_type);
    j->cpus_per_task = sqlite3_column_int(st, 8);
    j->mem_mb = sqlite3_column_int64(st, 9);
    j->time_minutes = sqlite3_column_int(st, 10);
    col_text(st, 11, j->state, sizeof j->state);
    col_text(st, 12, j->reason, sizeof j->reason);
    j->slurm_job_id = sqlite3_column_int64(st, 13);
    j->has_exit_code = sqlite3_column_type(st, 14) != SQLITE_NULL;
    j->exit_code = j->has_exit_code ? sqlite3_column_int(st, 14) : 0;
    j->cancel_requested = sqlite3_column_int(st, 15) != 0;
    j->submitted_at = sqlite3_column_int64(st, 16);
    j->dispatched_at = sqlite3_column_int64(st, 17);
    j->started_at = sqlite3_column_int64(st, 18);
    j->ended_at = sqlite3_column_int64(st, 19);
}

static int64_t now(void)
{
    return (int64_t)time(NULL);
}

/* --- opening --- */

/* Runs one PRAGMA (static text) that may return a row; copies its first column into out. */
static int pragma(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (out && outlen) col_text(st, 0, out, outlen);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Brings the schema to STORE_SCHEMA_VERSION, one transaction per step. The version is read inside
 * each step's write transaction, so two processes opening a new database never both migrate it. */
static int store_migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    for (;;) {
        char buf[32] = "", set_version[64], *msg = NULL;
        int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = pragma(db, "PRAGMA user_version", buf, sizeof buf);
        if (rc != SQLITE_OK) {
            set_err(err, errlen, "cannot read the schema version of %s: %s", path,
                    msg ? msg : sqlite3_errmsg(db));
            goto fail_step;
        }
        int version = atoi(buf);
        if (version == STORE_SCHEMA_VERSION)
            return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
        if (version > STORE_SCHEMA_VERSION || version < 0) {
            set_err(err, errlen,
                    "database %s has schema version %d, newer than this antennad knows (%d): "
                    "upgrade antennad",
                    path, version, STORE_SCHEMA_VERSION);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -EPROTO;
        }
        snprintf(set_version, sizeof set_version, "PRAGMA user_version = %d", version + 1);
        rc = sqlite3_exec(db, migrations[version], NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = sqlite3_exec(db, set_version, NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            set_err(err, errlen, "cannot migrate %s to schema version %d: %s", path, version + 1,
                    msg ? msg : sqlite3_errmsg(db));
            goto fail_step;
        }
        continue;

    fail_step:
        sqlite3_free(msg);
        if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -EIO;
    }
}

/* Creates the database file 0600 when it does not exist yet (SQLite gives its -wal and -shm
 * files the same mode), so that a missing directory is reported as such. */
static int precreate(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    int e = errno;
    char *dir = strdup(path);
    struct stat sb;
    bool dir_missing = e == ENOENT && dir && stat(dirname(dir), &sb) != 0 && errno == ENOENT;
    free(dir);
    if (dir_missing)
        set_err(err, errlen, "cannot create database %s: its directory does not exist (create it)",
                path);
    else
        set_err(err, errlen, "cannot open database %s: %s", path, strerror(e));
    return -e;
}

int store_new(const char *path, store **out, char *err, size_t errlen)
{
    set_err(err, errlen, "%s", "");
    if (!path || !path[0] || !out) {
        set_err(err, errlen, "store_new: no database path given");
        return -EINVAL;
    }
    *out = NULL;
    bool memory = strcmp(path, ":memory:") == 0;
    int ret = memory ? 0 : precreate(path, err, errlen);
    if (ret < 0) return ret;

    store *s = calloc(1, sizeof *s);
    if (!s) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        set_err(err, errlen, "cannot create the store mutex");
        ret = -ENOMEM;
        goto fail_mutex;
    }

    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int sys = s->db ? sqlite3_system_errno(s->db) : 0;
        set_err(err, errlen, "cannot open database %s: %s", path,
                s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        ret = sys > 0 ? -sys : -EIO;
        goto fail_setup;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);

    char mode[16] = "";
    rc = pragma(s->db, "PRAGMA journal_mode = WAL", mode, sizeof mode);
    if (rc == SQLITE_OK) rc = pragma(s->db, "PRAGMA synchronous = FULL", NULL, 0);
    if (rc == SQLITE_OK) rc = pragma(s->db, "PRAGMA foreign_keys = ON", NULL, 0);
    if (rc != SQLITE_OK) {
        set_err(err, errlen, "cannot set up database %s: %s", path, sqlite3_errmsg(s->db));
        ret = -EIO;
        goto fail_setup;
    }
    if (strcmp(mode, "wal") != 0 && !memory) {
        set_err(err, errlen, "database %s cannot use WAL mode (journal mode is '%s')", path, mode);
        ret = -EIO;
        goto fail_setup;
    }

    ret = store_migrate(s->db, path, err, errlen);
    if (ret < 0) goto fail_setup;

    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'instance_id'", -1, &st,
                            NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) col_text(st, 0, s->instance_id, sizeof s->instance_id);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW || !s->instance_id[0]) {
        set_err(err, errlen, "database %s has no instance id: %s", path,
                rc == SQLITE_ROW || rc == SQLITE_DONE ? "meta row missing" : sqlite3_errmsg(s->db));
        ret = -EIO;
        goto fail_setup;
    }

    *out = s;
    return 0;

fail_setup:
    sqlite3_close_v2(s->db); /* also after a failed open: it may return a handle */
    pthread_mutex_destroy(&s->lock);
fail_mutex:
    free(s);
    return ret;
}

void store_free(store *s)
{
    if (!s) return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->stmts[i]);
    sqlite3_close_v2(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

const char *store_instance_id(const store *s)
{
    return s->instance_id;
}

/* --- partners --- */

int store_partner_insert(store *s, const char *name, const char *description, int64_t *id)
{
    if (!s || !name_ok(name)) return -EINVAL;
    if (description && !text_fits(description, STORE_REASON_MAX)) return -EINVAL;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt_get(s, ST_PARTNER_INSERT);
    int ret = -EIO;
    if (st) {
        bind_text(st, 1, name);
        bind_text(st, 2, description);
        sqlite3_bind_int64(st, 3, now());
        ret = stmt_run(s, st, "partner insert");
        if (ret == 0 && id) *id = sqlite3_last_insert_rowid(s->db);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_partner_get(store *s, const char *name, store_partner *out)
{
    if (!s || !name || !out) return -EINVAL;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt_get(s, ST_PARTNER_GET);
    int ret = -EIO;
    if (st) {
        bind_text(st, 1, name);
        ret = read_one(s, st, read_partner, out);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_partner_list(store *s, store_partner **out, size_t *n)
{
    if (!s || !out || !n) return -EINVAL;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt_get(s, ST_PARTNER_LIST);
    int ret = st ? read_rows(s, st, sizeof **out, read_partner, (void **)out, n) : -EIO;
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* --- users --- */

int store_user_insert(store *s, const char *name, const char *partner, const char *unix_user,
                      const char *role, int64_t *id)
{
    if (!role) role = "user";
    if (!s || !name_ok(name) || !partner || !name_ok(unix_user) ||
        !text_fits(role, sizeof((store_user *)0)->role) || !role[0])
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    int ret = tx_begin(s);
    if (ret < 0) goto out;

    sqlite3_stmt *st = stmt_get(s, ST_PARTNER_ID);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    bind_text(st, 1, partner);
    int rc = sqlite3_step(st);
    int64_t partner_id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc == SQLITE_DONE)
        ret = -ENOENT;
    else if (rc != SQLITE_ROW)
        ret = db_error(s, sqlite3_extended_errcode(s->db), "partner lookup");
    stmt_done(st);
    if (ret < 0) goto out;

    st = stmt_get(s, ST_USER_INSERT);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, partner_id);
    bind_text(st, 3, unix_user);
    bind_text(st, 4, role);
    sqlite3_bind_int64(st, 5, now());
    ret = stmt_run(s, st, "user insert");
    int64_t new_id = sqlite3_last_insert_rowid(s->db);
    ret = tx_end(s, ret);
    if (ret == 0 && id) *id = new_id;
    pthread_mutex_unlock(&s->lock);
    return ret;

out:
    ret = tx_rollback(s, ret);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_user_get(store *s, const char *name, store_user *out)
{
    if (!s || !name || !out) return -EINVAL;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt_get(s, ST_USER_GET);
    int ret = -EIO;
    if (st) {
        bind_text(st, 1, name);
        ret = read_one(s, st, read_user, out);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_user_list(store *s, const char *partner, store_user **out, size_t *n)
{
    if (!s || !out || !n) return -EINVAL;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt_get(s, partner ? ST_USER_LIST_PARTNER : ST_USER_LIST);
    int ret = -EIO;
    if (st) {
        if (partner) bind_text(st, 1, partner);
        ret = read_rows(s, st, sizeof **out, read_user, (void **)out, n);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* --- tokens --- */

int store_token_insert(store *s, int64_t user_id, const char *hash_hex, const char *label,
                       int64_t *id)
{
    if (!s || !hash_hex || !hash_hex[0]) return -EINVAL;
    if (label && !text_fits(label, STORE_NAME_MAX)) return -EINVAL;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt_get(s, ST_TOKEN_INSERT);
    int ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, user_id);
        bind_text(st, 2, hash_hex);
        bind_text(st, 3, label);
        sqlite3_bind_int64(st, 4, now());
        ret = stmt_run(s, st, "token insert");
        if (ret == 0 && id) *id = sqlite3_last_insert_rowid(s->db);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_token_lookup(store *s, const char *hash_hex, store_user *out)
{
    if (!s || !hash_hex || !out) return -EINVAL;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt_get(s, ST_TOKEN_LOOKUP);
    int ret = -EIO;
    if (st) {
        bind_text(st, 1, hash_hex);
        ret = read_one(s, st, read_user, out);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_token_revoke(store *s, int64_t id)
{
    if (!s) return -EINVAL;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt_get(s, ST_TOKEN_REVOKE);
    int ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, now());
        ret = stmt_run(s, st, "token revoke");
        if (ret == 0 && sqlite3_changes(s->db) == 0) ret = -ENOENT;
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_token_list(store *s, int64_t user_id, store_token **out, size_t *n)
{
    if (!s || !out || !n) return -EINVAL;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt_get(s, user_id > 0 ? ST_TOKEN_LIST_USER : ST_TOKEN_LIST);
    int ret = -EIO;
    if (st) {
        if (user_id > 0) sqlite3_bind_int64(st, 1, user_id);
        ret = read_rows(s, st, sizeof **out, read_token, (void **)out, n);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* --- jobs --- */

static bool state_ok(const char *state)
{
    return text_fits(state, STORE_STATE_MAX) && state[0] != '\0';
}

int store_job_insert(store *s, store_job *j, const char *script)
{
    if (!s || !j || !script || !text_fits(j->name, sizeof j->name) ||
        !text_fits(j->gpu_type, sizeof j->gpu_type))
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    store_user u;
    int ret = tx_begin(s);
    if (ret < 0) goto out;

    sqlite3_stmt *st = stmt_get(s, ST_USER_GET_ID);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, j->user_id);
    ret = read_one(s, st, read_user, &u);
    if (ret < 0) goto out;

    st = stmt_get(s, ST_JOB_INSERT);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    int64_t t = now();
    sqlite3_bind_int64(st, 1, j->user_id);
    bind_text(st, 2, u.name);
    bind_text(st, 3, u.partner);
    bind_text(st, 4, u.unix_user);
    bind_text(st, 5, j->name);
    sqlite3_bind_int(st, 6, j->gpus);
    bind_text(st, 7, j->gpu_type);
    sqlite3_bind_int(st, 8, j->cpus_per_task);
    sqlite3_bind_int64(st, 9, j->mem_mb);
    sqlite3_bind_int(st, 10, j->time_minutes);
    sqlite3_bind_int64(st, 11, t);
    sqlite3_bind_text(st, 12, script, -1, SQLITE_STATIC);
    ret = stmt_run(s, st, "job insert");
    int64_t new_id = sqlite3_last_insert_rowid(s->db);
    ret = tx_end(s, ret);
    pthread_mutex_unlock(&s->lock);
    if (ret < 0) return ret;

    j->id = new_id;
    memcpy(j->user, u.name, sizeof j->user);
    memcpy(j->partner, u.partner, sizeof j->partner);
    memcpy(j->unix_user, u.unix_user, sizeof j->unix_user);
    snprintf(j->state, sizeof j->state, "%s", STORE_STATE_QUEUED);
    j->reason[0] = '\0';
    j->slurm_job_id = 0;
    j->has_exit_code = false;
    j->exit_code = 0;
    j->cancel_requested = false;
    j->submitted_at = t;
    j->dispatched_at = j->started_at = j->ended_at = 0;
    return 0;

out:
    ret = tx_rollback(s, ret);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_job_get(store *s, int64_t id, store_job *out)
{
    if (!s || !out) return -EINVAL;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt_get(s, ST_JOB_GET);
    int ret = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        ret = read_one(s, st, read_job, out);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_job_script_get(store *s, int64_t id, char **out)
{
    if (!s || !out) return -EINVAL;
    *out = NULL;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt_get(s, ST_JOB_SCRIPT);
    int ret = -EIO;
    if (!st) goto out;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        size_t len = t ? (size_t)sqlite3_column_bytes(st, 0) : 0;
        char *copy = malloc(len + 1);
        if (copy) {
            if (len) memcpy(copy, t, len);
            copy[len] = '\0';
            *out = copy;
            ret = 0;
        } else {
            ret = -ENOMEM;
        }
    } else if (rc == SQLITE_DONE) {
        ret = -ENOENT;
    } else {
        ret = db_error(s, sqlite3_extended_errcode(s->db), "job script");
    }
    stmt_done(st);
out:
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_job_list(store *s, int64_t user_id, size_t limit, store_job **out, size_t *n)
{
    if (!s || !out || !n) return -EINVAL;
    *out = NULL;
    *n = 0;
    int64_t lim = limit == 0 || limit > (size_t)INT64_MAX ? -1 : (int64_t)limit;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt_get(s, user_id > 0 ? ST_JOB_LIST_USER : ST_JOB_LIST);
    int ret = -EIO;
    if (st) {
        if (user_id > 0) {
            sqlite3_bind_int64(st, 1, user_id);
            sqlite3_bind_int64(st, 2, lim);
        } else {
            sqlite3_bind_int64(st, 1, lim);
        }
        ret = read_rows(s, st, sizeof **out, read_job, (void **)out, n);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_job_list_active(store *s, store_job **out, size_t *n)
{
    if (!s || !out || !n) return -EINVAL;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt_get(s, ST_JOB_LIST_ACTIVE);
    int ret = st ? read_rows(s, st, sizeof **out, read_job, (void **)out, n) : -EIO;
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* Inside a transaction: reads the state of job `id` into state. Returns 0, -ENOENT, -errno. */
static int job_state(store *s, int64_t id, char *state, size_t cap)
{
    sqlite3_stmt *st = stmt_get(s, ST_JOB_EXISTS);
    if (!st) return -EIO;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW)
        col_text(st, 0, state, cap);
    else if (rc == SQLITE_DONE)
        ret = -ENOENT;
    else
        ret = db_error(s, sqlite3_extended_errcode(s->db), "job state");
    stmt_done(st);
    return ret;
}

int store_job_transition(store *s, int64_t id, const char *from_state, const char *to_state,
                         const char *reason)
{
    if (!s || !state_ok(from_state) || !state_ok(to_state)) return -EINVAL;
    if (reason && !text_fits(reason, STORE_REASON_MAX)) return -EINVAL;
    pthread_mutex_lock(&s->lock);
    int ret = tx_begin(s);
    if (ret < 0) goto out;
    sqlite3_stmt *st = stmt_get(s, ST_JOB_TRANSITION);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, from_state);
    bind_text(st, 3, to_state);
    bind_text(st, 4, reason);
    sqlite3_bind_int(st, 5, store_state_terminal(to_state));
    sqlite3_bind_int64(st, 6, now());
    ret = stmt_run(s, st, "job transition");
    if (ret == 0 && sqlite3_changes(s->db) == 0) {
        char cur[STORE_STATE_MAX];
        ret = job_state(s, id, cur, sizeof cur);
        if (ret == 0) ret = -EAGAIN;
    }
out:
    ret = tx_end(s, ret);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_job_set_dispatched(store *s, int64_t id, int64_t slurm_job_id)
{
    if (!s || slurm_job_id <= 0) return -EINVAL;
    pthread_mutex_lock(&s->lock);
    int ret = tx_begin(s);
    if (ret < 0) goto out;
    sqlite3_stmt *st = stmt_get(s, ST_JOB_SET_DISPATCHED);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, slurm_job_id);
    sqlite3_bind_int64(st, 3, now());
    ret = stmt_run(s, st, "job set dispatched");
    if (ret == 0 && sqlite3_changes(s->db) == 0) {
        char cur[STORE_STATE_MAX];
        ret = job_state(s, id, cur, sizeof cur);
        if (ret == 0) ret = -EAGAIN;
    }
out:
    ret = tx_end(s, ret);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_job_update(store *s, const store_job *j)
{
    if (!s || !j || !text_fits(j->state, sizeof j->state) ||
        !text_fits(j->reason, sizeof j->reason))
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    int ret = tx_begin(s);
    if (ret < 0) goto out;

    sqlite3_stmt *st = stmt_get(s, ST_JOB_UPDATE_READ);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, j->id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        ret = rc == SQLITE_DONE ? -ENOENT : db_error(s, sqlite3_extended_errcode(s->db), "job");
        stmt_done(st);
        goto out;
    }
    char cur_state[STORE_STATE_MAX], cur_reason[STORE_REASON_MAX];
    col_text(st, 0, cur_state, sizeof cur_state);
    col_text(st, 1, cur_reason, sizeof cur_reason);
    int64_t cur_slurm = sqlite3_column_int64(st, 2);
    bool cur_has_exit = sqlite3_column_type(st, 3) != SQLITE_NULL;
    int cur_exit = sqlite3_column_int(st, 3);
    int64_t cur_started = sqlite3_column_int64(st, 4);
    int64_t cur_ended = sqlite3_column_int64(st, 5);
    stmt_done(st);
    if (store_state_terminal(cur_state)) goto out; /* never changed again; ret is 0 */

    const char *state = j->state[0] ? j->state : cur_state;
    int64_t slurm = j->slurm_job_id > 0 ? j->slurm_job_id : cur_slurm;
    bool has_exit = j->has_exit_code || cur_has_exit;
    int exit_code = j->has_exit_code ? j->exit_code : cur_exit;
    int64_t started = j->started_at > 0 ? j->started_at : cur_started;
    int64_t ended = j->ended_at > 0 ? j->ended_at : cur_ended;
    if (ended == 0 && store_state_terminal(state)) ended = now();

    if (strcmp(state, cur_state) == 0 && strcmp(j->reason, cur_reason) == 0 && slurm == cur_slurm &&
        has_exit == cur_has_exit && (!has_exit || exit_code == cur_exit) &&
        started == cur_started && ended == cur_ended)
        goto out; /* nothing changed: write nothing */

    st = stmt_get(s, ST_JOB_UPDATE_WRITE);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, j->id);
    bind_text(st, 2, state);
    bind_text(st, 3, j->reason);
    sqlite3_bind_int64(st, 4, slurm);
    if (has_exit)
        sqlite3_bind_int(st, 5, exit_code);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_int64(st, 6, started);
    sqlite3_bind_int64(st, 7, ended);
    ret = stmt_run(s, st, "job update");
out:
    ret = tx_end(s, ret);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int store_job_cancel_request(store *s, int64_t id, bool *now_cancelled)
{
    if (!s) return -EINVAL;
    if (now_cancelled) *now_cancelled = false;
    pthread_mutex_lock(&s->lock);
    char cur[STORE_STATE_MAX];
    bool cancelled = false;
    int ret = tx_begin(s);
    if (ret < 0) goto out;
    ret = job_state(s, id, cur, sizeof cur);
    if (ret < 0) goto out;
    if (store_state_terminal(cur)) {
        ret = -EALREADY;
        goto out;
    }
    cancelled = strcmp(cur, STORE_STATE_QUEUED) == 0;
    sqlite3_stmt *st = stmt_get(s, cancelled ? ST_JOB_CANCEL_QUEUED : ST_JOB_CANCEL_FLAG);
    if (!st) {
        ret = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    if (cancelled) sqlite3_bind_int64(st, 2, now());
    ret = stmt_run(s, st, "job cancel");
out:
    ret = tx_end(s, ret);
    pthread_mutex_unlock(&s->lock);
    if (ret == 0 && now_cancelled) *now_cancelled = cancelled;
    return ret;
}

bool store_state_terminal(const char *state)
{
    if (!state) return false;
    for (size_t i = 0; i < sizeof terminal_states / sizeof terminal_states[0]; i++)
        if (strcmp(state, terminal_states[i]) == 0) return true;
    return false;
}
