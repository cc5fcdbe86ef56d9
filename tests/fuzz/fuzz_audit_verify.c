/* fuzz_audit_verify.c - libFuzzer target: the audit verifier (audit_verify) over crafted chains.
 *
 * The input is text: its first line is the head file ("-" = no head file, "*" = no head check,
 * "=" = the true head: the last row's seq and hash),
 * each further line one audit row of tab-separated fields "seq at actor partner action details
 * prev_hash hash", where seq "+" is the previous seq + 1, prev_hash "=" the previous row's hash
 * and hash "=" the true HMAC of the row (so that the fuzzer can build valid chains and then break
 * them). The rows are written straight into the audit table of a private store with sqlite3, the
 * way an intruder would. Besides the sanitizers it checks the verdict against an independent
 * walk: "ok" only for a chain 1..n where every row links to the one before and carries its HMAC,
 * and a refusal always names a problem. Touches only its own temporary folder, removed at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sqlite3.h>

#include "audit.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ROWS   64
#define MAX_FIELD  512
#define ROW_FIELDS 8

static const unsigned char key[32] = "fuzz-audit-key-0123456789abcdef";
static char dir[64], db_path[128], key_path[128], head_path[128];
static store *st;
static sqlite3 *raw;
static sqlite3_stmt *ins;

static void cleanup(void)
{
    sqlite3_finalize(ins);
    sqlite3_close(raw);
    store_free(st);
    char p[160];
    static const char *const tails[] = {"antenna.db", "antenna.db-wal", "antenna.db-shm",
                                        "audit.key", "audit.head"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, tails[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void setup(void)
{
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char err[256];
    snprintf(dir, sizeof dir, "%s/fuzz_audit.XXXXXX", tmp);
    if (mkdtemp(dir) == NULL) abort();
    snprintf(db_path, sizeof db_path, "%s/antenna.db", dir);
    snprintf(key_path, sizeof key_path, "%s/audit.key", dir);
    snprintf(head_path, sizeof head_path, "%s/audit.head", dir);
    int fd = open(key_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, key, sizeof key) != (ssize_t)sizeof key) abort();
    close(fd);
    if (store_new(db_path, &st, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_audit_verify: %s\n", err);
        abort();
    }
    if (sqlite3_open(db_path, &raw) != SQLITE_OK ||
        sqlite3_exec(raw, "PRAGMA synchronous = OFF", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(raw,
                           "INSERT OR REPLACE INTO audit (seq, at, actor, partner, action, "
                           "details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &ins, NULL) != SQLITE_OK)
        abort();
    atexit(cleanup);
}

/* The row's HMAC as audit.h defines it, in hex. */
static void row_hash(int64_t seq, int64_t at, const char *actor, const char *partner,
                     const char *action, const char *details, const char *prev, char out[65])
{
    size_t cap = 6 * MAX_FIELD + 64;
    char *msg = malloc(cap);
    if (!msg) abort();
    int len = snprintf(msg, cap, "%s\n%" PRId64 "\n%" PRId64 "\n%s\n%s\n%s\n%s", prev, seq, at,
                       actor, partner, action, details);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (len < 0 || (size_t)len >= cap ||
        !HMAC(EVP_sha256(), key, (int)sizeof key, (unsigned char *)msg, (size_t)len, md, &mdlen) ||
        mdlen != 32)
        abort();
    free(msg);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Splits the next line of data[*pos..size) into at most `max` tab-separated, NUL-terminated
 * fields (each cut to MAX_FIELD - 1 bytes). Returns the number of fields. */
static size_t next_line(const uint8_t *data, size_t size, size_t *pos, char f[][MAX_FIELD],
                        size_t max)
{
    size_t n = 0, len = 0;
    f[0][0] = '\0';
    while (*pos < size && data[*pos] != '\n') {
        char ch = (char)data[(*pos)++];
        if (ch == '\t' && n + 1 < max) {
            f[n][len] = '\0';
            n++, len = 0;
            continue;
        }
        if (len < MAX_FIELD - 1 && ch != '\0') f[n][len++] = ch;
    }
    if (*pos < size) (*pos)++; /* the newline */
    f[n][len] = '\0';
    return n + 1;
}

static void write_head(const char *text)
{
    int fd = open(head_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) abort();
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1) abort();
    close(fd);
}

/* The independent walk: 1 when the table holds the rows 1..n, each linked and hashed right. */
static int chain_is_sound(void)
{
    sqlite3_stmt *q;
    int sound = 1;
    int64_t want = 1;
    char prev[65] = "";
    if (sqlite3_prepare_v2(raw,
                           "SELECT seq, at, actor, partner, action, details, prev_hash, hash "
                           "FROM audit ORDER BY seq",
                           -1, &q, NULL) != SQLITE_OK)
        abort();
    while (sound && sqlite3_step(q) == SQLITE_ROW) {
        const char *t[8];
        for (int i = 2; i < 8; i++)
            t[i] = (const char *)sqlite3_column_text(q, i);
        int64_t seq = sqlite3_column_int64(q, 0), at = sqlite3_column_int64(q, 1);
        char h[65];
        row_hash(seq, at, t[2], t[3], t[4], t[5], prev, h);
        if (seq != want++ || strcmp(t[6], prev) != 0 || strcmp(t[7], h) != 0) sound = 0;
        snprintf(prev, sizeof prev, "%s", t[7]);
    }
    sqlite3_finalize(q);
    return sound;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char f[ROW_FIELDS][MAX_FIELD];
    if (st == NULL) setup();
    size_t pos = 0;

    next_line(data, size, &pos, f, 1);
    const char *head = head_path;
    bool true_head = strcmp(f[0], "=") == 0;
    if (strcmp(f[0], "*") == 0)
        head = NULL;
    else if (strcmp(f[0], "-") == 0 || true_head)
        unlink(head_path);
    else
        write_head(f[0]);

    if (sqlite3_exec(raw, "BEGIN; DELETE FROM audit;", NULL, NULL, NULL) != SQLITE_OK) abort();
    int64_t seq = 0;
    char prev[65] = "";
    for (int row = 0; row < MAX_ROWS && pos < size; row++) {
        size_t n = next_line(data, size, &pos, f, ROW_FIELDS);
        for (size_t i = n; i < ROW_FIELDS; i++)
            snprintf(f[i], MAX_FIELD, "%s", i == 6 || i == 7 ? "=" : i == 5 ? "{}" : "");
        if (strcmp(f[0], "+") != 0)
            seq = strtoll(f[0], NULL, 10);
        else if (seq < INT64_MAX)
            seq++;
        int64_t at = strtoll(f[1], NULL, 10);
        const char *prev_hash = strcmp(f[6], "=") == 0 ? prev : f[6];
        char h[65];
        if (strcmp(f[7], "=") == 0)
            row_hash(seq, at, f[2], f[3], f[4], f[5], prev_hash, h);
        else
            snprintf(h, sizeof h, "%s", f[7]);
        sqlite3_bind_int64(ins, 1, seq);
        sqlite3_bind_int64(ins, 2, at);
        for (int i = 2; i < 6; i++)
            sqlite3_bind_text(ins, i + 1, f[i], -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 7, prev_hash, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 8, h, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE) abort();
        sqlite3_reset(ins);
        snprintf(prev, sizeof prev, "%s", h);
    }
    if (sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) abort();
    if (true_head && seq > 0) {
        char line[96];
        snprintf(line, sizeof line, "%" PRId64 " %s", seq, prev);
        write_head(line);
    }

    audit_report r;
    if (audit_verify(st, key_path, head, &r) != 0) abort();
    if (r.ok) {
        if (r.problem[0] != '\0' || r.first_bad != 0) abort();
        if (!chain_is_sound()) {
            fprintf(stderr, "fuzz_audit_verify: audit_verify said ok for a broken chain\n");
            abort();
        }
    } else if (r.problem[0] == '\0') {
        abort();
    }
    return 0;
}
