/* test_audit.c - unit tests for audit.c; each test builds its own temporary directory (database,
 * key, head file), tampers only with its own database (with the sqlite3 tool) and removes it all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "audit.h"
#include "audit_view.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define N_ENTRIES 20

typedef struct fixture {
    char dir[64];
    char db[128];
    char key[128];
    char head[128];
    store *st;
    audit *a;
} fixture;

static int fx_open(fixture *f)
{
    char err[512] = "";
    int ret = store_new(f->db, &f->st, err, sizeof err);
    if (ret != 0) {
        print_error("store_new(%s): %d %s\n", f->db, ret, err);
        return ret;
    }
    ret = audit_new(f->st, f->key, f->head, &f->a, err, sizeof err);
    if (ret != 0) print_error("audit_new: %d %s\n", ret, err);
    return ret;
}

static void fx_close(fixture *f)
{
    audit_free(f->a);
    f->a = NULL;
    store_free(f->st);
    f->st = NULL;
}

/* A fresh directory with an open store and audit trail, and no entry. */
static int setup_empty(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/test_audit.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/antenna.db", f->dir);
    snprintf(f->key, sizeof f->key, "%s/audit.key", f->dir);
    snprintf(f->head, sizeof f->head, "%s/audit.head", f->dir);
    *state = f;
    return fx_open(f) == 0 ? 0 : -1;
}

/* Appends entry number i (1-based) with varied actors, partners, actions and details. */
static int append_varied(audit *a, int i)
{
    static const char *const actors[] = {"alice", "antennad", "-", "bob", "admin"};
    static const char *const partners[] = {"ulb", "", "vub", "ulb", NULL};
    static const char *const actions[] = {"job.submitted", "job.dispatched", "auth.failed",
                                          "quota.set", "partner.created"};
    int k = i % 5;
    if (i % 3 == 0) return audit_log(a, actors[k], partners[k], actions[k], NULL);
    return audit_logf(a, actors[k], partners[k], actions[k],
                      "{\"job\":%d,\"gpus\":%d,\"name\":\"run %d\\nline two\"}", i, i % 4, i);
}

/* setup_empty plus N_ENTRIES entries. */
static int setup(void **state)
{
    if (setup_empty(state) != 0) return -1;
    fixture *f = *state;
    for (int i = 1; i <= N_ENTRIES; i++)
        if (append_varied(f->a, i) != 0) return -1;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (!f) return 0;
    fx_close(f);
    /* Removes every file a test made in its directory, even after a failed assertion. */
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Closes the store, runs `sql` on the database file with the sqlite3 tool (the way an intruder
 * with access to the file would), and reopens the store (not the audit trail). */
static void tamper(fixture *f, const char *sql)
{
    fx_close(f);
    char sqlpath[160], cmd[512];
    snprintf(sqlpath, sizeof sqlpath, "%s/tamper.sql", f->dir);
    FILE *fp = fopen(sqlpath, "w");
    assert_non_null(fp);
    fprintf(fp, "%s\n", sql);
    assert_int_equal(fclose(fp), 0);
    snprintf(cmd, sizeof cmd, "sqlite3 -bail '%s' < '%s'", f->db, sqlpath);
    int rc = system(cmd);
    if (rc != 0) fail_msg("sqlite3 failed (%d) on: %s", rc, sql);
    unlink(sqlpath);
    char err[512] = "";
    assert_int_equal(store_new(f->db, &f->st, err, sizeof err), 0);
}

/* Verifies the chain of f with its key and head file; asserts that the call itself worked. */
static audit_report verify(fixture *f)
{
    audit_report r;
    memset(&r, 0x55, sizeof r); /* every field must be set by audit_verify */
    int ret = audit_verify(f->st, f->key, f->head, &r);
    if (ret != 0) fail_msg("audit_verify: %d %s", ret, r.problem);
    return r;
}

/* Asserts that r is broken at `seq` with a problem containing `words`. */
static void assert_broken(const audit_report *r, int64_t seq, const char *words)
{
    if (r->ok || r->first_bad != seq || !strstr(r->problem, words))
        fail_msg("wanted broken at %lld with \"%s\"; got ok=%d first_bad=%lld problem=\"%s\"",
                 (long long)seq, words, r->ok, (long long)r->first_bad, r->problem);
}

/* Reads the stored entry `seq` (asserts it is there). Free with store_audit_entries_free. */
static store_audit_entry *get_entry(fixture *f, int64_t seq)
{
    store_audit_entry *e = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(f->st, seq - 1, 0, NULL, NULL, 1, &e, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(e[0].seq, seq);
    return e;
}

/* HMAC-SHA256 (or plain SHA-256 when key is NULL) of an entry laid out as audit.h says, in hex. */
static void forge_hash(const store_audit_entry *e, const char *details, const unsigned char *key,
                       size_t keylen, char out[STORE_HASH_HEX])
{
    char msg[4096];
    int len =
        snprintf(msg, sizeof msg, "%s\n%lld\n%lld\n%s\n%s\n%s\n%s", e->prev_hash, (long long)e->seq,
                 (long long)e->at, e->actor, e->partner, e->action, details);
    assert_true(len > 0 && (size_t)len < sizeof msg);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (key)
        assert_non_null(
            HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)msg, (size_t)len, md, &mdlen));
    else
        assert_int_equal(EVP_Digest(msg, (size_t)len, md, &mdlen, EVP_sha256(), NULL), 1);
    assert_int_equal(mdlen, 32);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void read_file(const char *path, unsigned char *buf, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    *len = fread(buf, 1, *len, fp);
    fclose(fp);
}

static void write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* --- untampered --- */

static void test_untampered_chain_verifies(void **state)
{
    fixture *f = *state;
    audit_report r = verify(f);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.entries, N_ENTRIES);
    assert_int_equal(r.first_bad, 0);
    assert_int_equal(r.head_seq, N_ENTRIES);
    assert_string_equal(r.problem, "");

    audit_report o;
    assert_int_equal(audit_verify_open(f->a, &o), 0);
    assert_int_equal(o.ok, 1);
    assert_int_equal(o.entries, N_ENTRIES);
    assert_int_equal(o.head_seq, N_ENTRIES);
}

static void test_empty_chain_verifies(void **state)
{
    fixture *f = *state;
    audit_report r = verify(f);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.entries, 0);
    assert_int_equal(r.head_seq, 0);
}

static void test_entry_hash_is_the_documented_hmac(void **state)
{
    fixture *f = *state;
    unsigned char key[64];
    size_t keylen = sizeof key;
    read_file(f->key, key, &keylen);
    assert_int_equal(keylen, 32);
    for (int64_t seq = 1; seq <= N_ENTRIES; seq++) {
        store_audit_entry *e = get_entry(f, seq);
        char want[STORE_HASH_HEX];
        forge_hash(e, e->details, key, keylen, want);
        assert_string_equal(e->hash, want);
        if (seq == 1) assert_string_equal(e->prev_hash, "");
        store_audit_entries_free(e, 1);
    }
}

static void test_logged_fields_are_stored_as_given(void **state)
{
    fixture *f = *state;
    char big[3000];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = '\0';
    assert_int_equal(audit_logf(f->a, "carol", "ulb", "job.finished", "{\"pad\":\"%s\"}", big), 0);
    assert_int_equal(audit_log(f->a, "antennad", NULL, "job.dispatched", NULL), 0);
    store_audit_entry *e = get_entry(f, N_ENTRIES + 1);
    assert_string_equal(e->actor, "carol");
    assert_string_equal(e->partner, "ulb");
    assert_string_equal(e->action, "job.finished");
    assert_int_equal(strlen(e->details), strlen(big) + 10);
    assert_true(strncmp(e->details, "{\"pad\":\"xxx", 11) == 0);
    store_audit_entries_free(e, 1);
    e = get_entry(f, N_ENTRIES + 2);
    assert_string_equal(e->partner, "");
    assert_string_equal(e->details, "{}");
    store_audit_entries_free(e, 1);
    assert_int_equal(verify(f).ok, 1);
}

static void test_bad_arguments_are_refused(void **state)
{
    fixture *f = *state;
    char longname[STORE_NAME_MAX + 8];
    memset(longname, 'a', sizeof longname);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(audit_log(f->a, longname, "", "job.submitted", NULL), -EINVAL);
    assert_int_equal(audit_log(f->a, "alice", "", NULL, NULL), -EINVAL);
    assert_int_equal(audit_log(NULL, "alice", "", "job.submitted", NULL), -EINVAL);
    audit_free(NULL);
    audit_report r = verify(f);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.entries, N_ENTRIES);
}

/* --- tampering with rows --- */

static void test_edited_details_named_as_modified(void **state)
{
    fixture *f = *state;
    tamper(f, "UPDATE audit SET details = '{\"job\":7,\"gpus\":0}' WHERE seq = 7;");
    audit_report r = verify(f);
    assert_broken(&r, 7, "entry 7 was modified");
    assert_int_equal(r.head_seq, N_ENTRIES);
}

static void test_edited_time_or_actor_named_as_modified(void **state)
{
    fixture *f = *state;
    tamper(f, "UPDATE audit SET at = at - 86400 WHERE seq = 13;");
    assert_broken((audit_report[]){verify(f)}, 13, "modified");
    tamper(f, "UPDATE audit SET at = at + 86400 WHERE seq = 13;"
              "UPDATE audit SET actor = 'mallory' WHERE seq = 3;");
    assert_broken((audit_report[]){verify(f)}, 3, "modified");
}

static void test_deleted_middle_row_named_as_missing(void **state)
{
    fixture *f = *state;
    tamper(f, "DELETE FROM audit WHERE seq = 9;");
    audit_report r = verify(f);
    assert_broken(&r, 9, "entry 9 is missing (deleted)");
}

static void test_deleted_rows_name_the_first(void **state)
{
    fixture *f = *state;
    tamper(f, "DELETE FROM audit WHERE seq BETWEEN 4 AND 6;");
    assert_broken((audit_report[]){verify(f)}, 4, "entry 4 is missing (deleted)");
}

static void test_deleted_first_row_named(void **state)
{
    fixture *f = *state;
    tamper(f, "DELETE FROM audit WHERE seq = 1;");
    assert_broken((audit_report[]){verify(f)}, 1, "entry 1 is missing");
}

static void test_swapped_seqs_name_the_first(void **state)
{
    fixture *f = *state;
    tamper(f, "UPDATE audit SET seq = -5 WHERE seq = 5; UPDATE audit SET seq = 5 WHERE seq = 6;"
              "UPDATE audit SET seq = 6 WHERE seq = -5;");
    audit_report r = verify(f);
    assert_broken(&r, 5, "entry 5 is out of order");
}

static void test_swapped_contents_name_the_first(void **state)
{
    fixture *f = *state;
    /* every column but seq trades places: each row keeps a hash that was right for the other */
    tamper(f, "CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN (11, 12);"
              "UPDATE audit SET (at, actor, partner, action, details, prev_hash, hash) = "
              "(SELECT at, actor, partner, action, details, prev_hash, hash FROM t "
              "WHERE t.seq = 23 - audit.seq) WHERE seq IN (11, 12);");
    audit_report r = verify(f);
    assert_broken(&r, 11, "entry 11");
}

static void test_swapped_contents_with_fixed_links_named_as_modified(void **state)
{
    fixture *f = *state;
    /* a smarter swap: contents trade places but prev_hash/hash stay on their seq */
    tamper(f, "CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN (11, 12);"
              "UPDATE audit SET (at, actor, partner, action, details) = "
              "(SELECT at, actor, partner, action, details FROM t "
              "WHERE t.seq = 23 - audit.seq) WHERE seq IN (11, 12);");
    assert_broken((audit_report[]){verify(f)}, 11, "entry 11 was modified");
}

static void test_inserted_row_with_shifted_seqs_named(void **state)
{
    fixture *f = *state;
    /* seqs from 10 moved up by one, a forged entry 10 linked to entry 9 with a made-up hash */
    tamper(f, "UPDATE audit SET seq = -seq WHERE seq >= 10;"
              "UPDATE audit SET seq = 1 - seq WHERE seq < 0;"
              "INSERT INTO audit (seq, at, actor, partner, action, details, prev_hash, hash) "
              "SELECT 10, at + 1, 'alice', 'ulb', 'quota.set', '{\"gpu_hours\":999999}', hash, "
              "lower(hex(randomblob(32))) FROM audit WHERE seq = 9;");
    audit_report r = verify(f);
    assert_broken(&r, 10, "entry 10 was inserted");
}

static void test_inserted_row_with_made_up_link_named(void **state)
{
    fixture *f = *state;
    tamper(f, "UPDATE audit SET seq = -seq WHERE seq >= 10;"
              "UPDATE audit SET seq = 1 - seq WHERE seq < 0;"
              "INSERT INTO audit (seq, at, actor, partner, action, details, prev_hash, hash) "
              "VALUES (10, 1700000000, 'alice', 'ulb', 'quota.set', '{}', "
              "lower(hex(randomblob(32))), lower(hex(randomblob(32))));");
    assert_broken((audit_report[]){verify(f)}, 10, "entry 10 is out of order or was inserted");
}

static void test_row_appended_after_the_head_named(void **state)
{
    fixture *f = *state;
    tamper(f, "INSERT INTO audit (seq, at, actor, partner, action, details, prev_hash, hash) "
              "SELECT 21, at, 'admin', '', 'token.revoked', '{}', hash, "
              "lower(hex(randomblob(32))) FROM audit WHERE seq = 20;");
    audit_report r = verify(f);
    assert_broken(&r, 21, "entry 21 was inserted after the head");
    assert_int_equal(r.entries, 21);
}

static void test_row_inserted_before_the_first_named(void **state)
{
    fixture *f = *state;
    tamper(f, "INSERT INTO audit (seq, at, actor, partner, action, details, prev_hash, hash) "
              "VALUES (0, 1, 'admin', '', 'token.revoked', '{}', '', "
              "lower(hex(randomblob(32))));");
    audit_report r = verify(f);
    assert_int_equal(r.ok, 0);
    assert_int_equal(r.first_bad, 0);
    assert_non_null(strstr(r.problem, "inserted or reordered at 0"));
}

/* Found by tests/fuzz/fuzz_audit_verify.c: a row at the lowest seq there is (INT64_MIN) was hidden
 * from the walk, which lists the rows after INT64_MIN, and the chain verified. */
static void test_row_inserted_at_the_lowest_seq_named(void **state)
{
    fixture *f = *state;
    tamper(f, "INSERT INTO audit (seq, at, actor, partner, action, details, prev_hash, hash) "
              "VALUES (-9223372036854775808, 1, 'admin', '', 'token.revoked', '{}', '', "
              "lower(hex(randomblob(32))));");
    audit_report r = verify(f);
    assert_int_equal(r.ok, 0);
    assert_int_equal(r.first_bad, INT64_MIN);
    assert_non_null(strstr(r.problem, "inserted or reordered at -9223372036854775808"));
}

static void test_truncated_tail_caught_by_the_head_file(void **state)
{
    fixture *f = *state;
    tamper(f, "DELETE FROM audit WHERE seq > 17;");
    audit_report r = verify(f);
    assert_broken(&r, 18,
                  "the chain ends at 17 but the head file says 20 (entries deleted from "
                  "the end)");
    assert_int_equal(r.entries, 17);
    assert_int_equal(r.head_seq, 20);

    /* without the head file the truncated chain is self-consistent: the head is what catches it */
    audit_report nohead;
    assert_int_equal(audit_verify(f->st, f->key, NULL, &nohead), 0);
    assert_int_equal(nohead.ok, 1);
    assert_int_equal(nohead.entries, 17);
}

static void test_missing_head_file_is_reported(void **state)
{
    fixture *f = *state;
    assert_int_equal(unlink(f->head), 0);
    tamper(f, "DELETE FROM audit WHERE seq > 18;");
    audit_report r = verify(f);
    assert_broken(&r, 19, "head file");
    assert_non_null(strstr(r.problem, "missing"));
}

static void test_edited_head_file_names_the_replaced_entry(void **state)
{
    fixture *f = *state;
    char line[128];
    snprintf(line, sizeof line, "%d %064d\n", N_ENTRIES, 7);
    write_file(f->head, line, strlen(line), 0600);
    assert_broken((audit_report[]){verify(f)}, N_ENTRIES, "entry 20 was replaced");
    write_file(f->head, "twenty\n", 7, 0600);
    assert_broken((audit_report[]){verify(f)}, N_ENTRIES + 1, "head file");
}

static void test_head_behind_the_chain_is_accepted(void **state)
{
    fixture *f = *state;
    /* what a crash between the database commit and the head rename leaves */
    store_audit_entry *e = get_entry(f, N_ENTRIES - 1);
    char line[128];
    snprintf(line, sizeof line, "%lld %s\n", (long long)e->seq, e->hash);
    store_audit_entries_free(e, 1);
    write_file(f->head, line, strlen(line), 0600);
    audit_report r = verify(f);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.entries, N_ENTRIES);
    assert_int_equal(r.head_seq, N_ENTRIES - 1);
}

static void test_hash_recomputed_without_the_key_named_as_modified(void **state)
{
    fixture *f = *state;
    /* plain SHA-256 of the documented layout, over the edited entry */
    store_audit_entry *e = get_entry(f, 4);
    char forged[STORE_HASH_HEX], sql[512];
    forge_hash(e, "{\"job\":4,\"gpus\":0}", NULL, 0, forged);
    store_audit_entries_free(e, 1);
    snprintf(sql, sizeof sql,
             "UPDATE audit SET details = '{\"job\":4,\"gpus\":0}', hash = '%s' WHERE seq = 4;",
             forged);
    tamper(f, sql);
    assert_broken((audit_report[]){verify(f)}, 4, "entry 4 was modified");
}

static void test_chain_rewritten_with_another_key_named_at_the_edit(void **state)
{
    fixture *f = *state;
    /* the intruder edits entry 6 and re-chains 6..20 with a key of their own, head file too */
    const unsigned char other[32] = "not the key of this audit trail";
    char sql[16384];
    size_t off = 0;
    char prev[STORE_HASH_HEX];
    store_audit_entry *e5 = get_entry(f, 5);
    memcpy(prev, e5->hash, sizeof prev);
    store_audit_entries_free(e5, 1);
    for (int64_t seq = 6; seq <= N_ENTRIES; seq++) {
        store_audit_entry *e = get_entry(f, seq);
        const char *details = seq == 6 ? "{\"job\":6,\"gpus\":0}" : e->details;
        memcpy(e->prev_hash, prev, sizeof prev);
        forge_hash(e, details, other, sizeof other, prev);
        if (seq == 6)
            off += (size_t)snprintf(sql + off, sizeof sql - off,
                                    "UPDATE audit SET details = '%s' WHERE seq = 6;", details);
        off += (size_t)snprintf(sql + off, sizeof sql - off,
                                "UPDATE audit SET prev_hash = '%s', hash = '%s' WHERE seq = %lld;",
                                e->prev_hash, prev, (long long)seq);
        assert_true(off < sizeof sql);
        store_audit_entries_free(e, 1);
    }
    char line[128];
    snprintf(line, sizeof line, "%d %s\n", N_ENTRIES, prev);
    write_file(f->head, line, strlen(line), 0600);
    tamper(f, sql);
    assert_broken((audit_report[]){verify(f)}, 6, "entry 6 was modified");
}

/* --- the key --- */

static void test_missing_key_file_is_created_0600(void **state)
{
    fixture *f = *state;
    struct stat sb;
    assert_int_equal(stat(f->key, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(sb.st_size, 32);
    unsigned char k1[64], k2[64];
    size_t l1 = sizeof k1, l2 = sizeof k2;
    read_file(f->key, k1, &l1);

    /* reopening reads the same key: the chain still verifies and grows */
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    read_file(f->key, k2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(k1, k2, l1);
    assert_int_equal(audit_log(f->a, "alice", "ulb", "job.submitted", "{\"job\":21}"), 0);
    audit_report r = verify(f);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.entries, N_ENTRIES + 1);

    /* a second trail in the same directory gets a different key */
    char key2[160];
    audit *b = NULL;
    char err[256];
    snprintf(key2, sizeof key2, "%s/other.key", f->dir);
    assert_int_equal(audit_new(f->st, key2, f->head, &b, err, sizeof err), 0);
    audit_free(b);
    l2 = sizeof k2;
    read_file(key2, k2, &l2);
    assert_int_equal(l2, 32);
    assert_memory_not_equal(k1, k2, 32);
}

static void test_key_file_open_to_others_is_refused(void **state)
{
    fixture *f = *state;
    fx_close(f);
    assert_int_equal(chmod(f->key, 0644), 0);
    char err[512] = "";
    assert_int_equal(store_new(f->db, &f->st, err, sizeof err), 0);
    audit *b = (audit *)1;
    assert_int_equal(audit_new(f->st, f->key, f->head, &b, err, sizeof err), -EPERM);
    assert_null(b);
    assert_non_null(strstr(err, f->key));
    assert_non_null(strstr(err, "chmod 600"));

    audit_report r;
    assert_true(audit_verify(f->st, f->key, f->head, &r) < 0);
    assert_int_equal(r.ok, 0);
    assert_non_null(strstr(r.problem, "chmod 600"));

    assert_int_equal(chmod(f->key, 0620), 0); /* a group that may write it could swap keys */
    assert_int_equal(audit_new(f->st, f->key, f->head, &b, err, sizeof err), -EPERM);
}

static void test_short_key_file_is_refused(void **state)
{
    fixture *f = *state;
    fx_close(f);
    write_file(f->key, "0123456789abcdef", 16, 0600);
    char err[512] = "";
    assert_int_equal(store_new(f->db, &f->st, err, sizeof err), 0);
    audit *b = NULL;
    assert_int_equal(audit_new(f->st, f->key, f->head, &b, err, sizeof err), -EINVAL);
    assert_null(b);
    assert_non_null(strstr(err, "16 bytes"));
}

static void test_wrong_key_fails_at_entry_1(void **state)
{
    fixture *f = *state;
    char other[160];
    unsigned char key[32];
    memset(key, 0x42, sizeof key);
    snprintf(other, sizeof other, "%s/wrong.key", f->dir);
    write_file(other, key, sizeof key, 0600);
    audit_report r;
    assert_int_equal(audit_verify(f->st, other, f->head, &r), 0);
    assert_broken(&r, 1, "entry 1 was modified");
    assert_non_null(strstr(r.problem, other)); /* hints at the key */
    assert_int_equal(r.entries, 1);
}

static void test_verify_without_key_file_fails_and_creates_none(void **state)
{
    fixture *f = *state;
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.key", f->dir);
    audit_report r;
    assert_int_equal(audit_verify(f->st, missing, f->head, &r), -ENOENT);
    assert_non_null(strstr(r.problem, missing));
    assert_int_equal(access(missing, F_OK), -1);
}

static void test_bad_key_path_gives_a_message(void **state)
{
    fixture *f = *state;
    audit *b = (audit *)1;
    char err[512] = "";
    int ret =
        audit_new(f->st, "/nonexistent-antenna-dir/sub/audit.key", f->head, &b, err, sizeof err);
    assert_int_equal(ret, -ENOENT);
    assert_null(b);
    assert_non_null(strstr(err, "/nonexistent-antenna-dir/sub/audit.key"));

    err[0] = '\0';
    ret = audit_new(f->st, f->dir, f->head, &b, err, sizeof err); /* a directory */
    assert_true(ret < 0);
    assert_true(err[0] != '\0');

    err[0] = '\0';
    ret = audit_new(f->st, f->key, "/nonexistent-antenna-dir/audit.head", &b, err, sizeof err);
    assert_int_equal(ret, -ENOENT);
    assert_non_null(strstr(err, "/nonexistent-antenna-dir"));

    err[0] = '\0';
    assert_int_equal(audit_new(NULL, f->key, f->head, &b, err, sizeof err), -EINVAL);
    assert_true(err[0] != '\0');
}

/* --- threads and paging --- */

typedef struct worker_arg {
    audit *a;
    int id;
    int failures;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *w = p;
    static const char *const actors[] = {"alice", "bob", "antennad", "-"};
    for (int i = 0; i < 50; i++)
        if (audit_logf(w->a, actors[w->id], "ulb", "job.submitted", "{\"thread\":%d,\"i\":%d}",
                       w->id, i) != 0)
            w->failures++;
    return NULL;
}

static void test_concurrent_appends_keep_chain_and_head(void **state)
{
    fixture *f = *state;
    pthread_t t[4];
    worker_arg w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_arg){.a = f->a, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
    audit_report r = verify(f);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.entries, N_ENTRIES + 200);
    assert_int_equal(r.head_seq, N_ENTRIES + 200);

    store_audit_entry *e = get_entry(f, N_ENTRIES + 200);
    char want[128], got[128] = "";
    snprintf(want, sizeof want, "%d %s\n", N_ENTRIES + 200, e->hash);
    store_audit_entries_free(e, 1);
    FILE *fp = fopen(f->head, "r");
    assert_non_null(fp);
    size_t n = fread(got, 1, sizeof got - 1, fp);
    fclose(fp);
    got[n] = '\0';
    assert_string_equal(got, want);
    /* no temp file left behind */
    DIR *d = opendir(f->dir);
    struct dirent *de;
    while ((de = readdir(d)))
        assert_null(strstr(de->d_name, "audit.head."));
    closedir(d);
}

/* A chain longer than one verification page (1000 entries): tampering on both sides of the page
 * boundary is still found. */
static void test_long_chain_checked_across_pages(void **state)
{
    fixture *f = *state;
    for (int i = N_ENTRIES + 1; i <= 2100; i++)
        assert_int_equal(append_varied(f->a, i), 0);
    audit_report r = verify(f);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.entries, 2100);

    tamper(f, "DELETE FROM audit WHERE seq = 1001;");
    assert_broken((audit_report[]){verify(f)}, 1001, "entry 1001 is missing");
    tamper(f,
           "INSERT INTO audit SELECT 1001, at, actor, partner, action, details, prev_hash, "
           "hash FROM audit WHERE seq = 2000; UPDATE audit SET details = '{}' WHERE seq = 1500;");
    assert_broken((audit_report[]){verify(f)}, 1001, "entry 1001 is out of order");
    tamper(f, "DELETE FROM audit WHERE seq = 1001;"
              "UPDATE audit SET seq = -seq WHERE seq >= 1000;"
              "UPDATE audit SET seq = 1 - seq WHERE seq < 0;"
              "INSERT INTO audit (seq, at, actor, partner, action, details, prev_hash, hash) "
              "SELECT 1000, at, 'alice', 'ulb', 'quota.set', '{}', hash, "
              "lower(hex(randomblob(32))) FROM audit WHERE seq = 999;");
    /* entry 1000 is the last of the first page: the entry after it is read to explain it */
    assert_broken((audit_report[]){verify(f)}, 1000, "entry 1000 was inserted");
}

/* --- checkpoints and the start-up head check --- */

/* Reopens the audit trail after tamper() (which closed it). */
static void reopen_audit(fixture *f)
{
    char err[512] = "";
    assert_int_equal(audit_new(f->st, f->key, f->head, &f->a, err, sizeof err), 0);
}

/* Verifies cp's signature directly with OpenSSL over the documented text. */
static bool signature_holds(const audit_checkpoint *cp)
{
    unsigned char pub[32], sig[64];
    for (int i = 0; i < 32; i++)
        sscanf(cp->public_key + 2 * i, "%2hhx", &pub[i]);
    for (int i = 0; i < 64; i++)
        sscanf(cp->signature + 2 * i, "%2hhx", &sig[i]);
    json_t *o = audit_checkpoint_json(cp, 0);
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, sizeof pub);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = k && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
              EVP_DigestVerify(md, sig, sizeof sig, (unsigned char *)text, strlen(text)) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    free(text);
    return ok;
}

static void test_checkpoint_signs_the_last_entry(void **state)
{
    fixture *f = *state;
    audit_checkpoint cp;
    char err[320] = "";
    assert_int_equal(audit_checkpoint_take(f->a, &cp, err, sizeof err), 0);
    assert_int_equal(cp.seq, N_ENTRIES);
    store_audit_entry *e = get_entry(f, N_ENTRIES);
    assert_string_equal(cp.hash, e->hash);
    store_audit_entries_free(e, 1);
    assert_int_equal(strlen(cp.signature), 128);
    assert_int_equal(strlen(cp.key_id), 16);
    assert_true(signature_holds(&cp));
    /* one changed field and the signature no longer holds */
    cp.seq--;
    assert_false(signature_holds(&cp));
}

static void test_checkpoint_refused_on_a_broken_chain(void **state)
{
    fixture *f = *state;
    audit_checkpoint cp;
    char err[320] = "";
    tamper(f, "UPDATE audit SET details='{}' WHERE seq=5;");
    reopen_audit(f);
    assert_int_equal(audit_checkpoint_take(f->a, &cp, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "entry 5"));
    assert_string_equal(cp.signature, "");
}

static void test_checkpoint_refused_on_an_empty_chain(void **state)
{
    fixture *f = *state;
    audit_checkpoint cp;
    char err[320] = "";
    assert_int_equal(audit_checkpoint_take(f->a, &cp, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "empty"));
}

static void test_signing_key_is_made_0600_and_kept(void **state)
{
    fixture *f = *state;
    char path[256], hex1[AUDIT_PUBKEY_HEX], hex2[AUDIT_PUBKEY_HEX], id[AUDIT_KEY_ID_HEX];
    struct stat sb;
    audit_signing_key_path(f->head, path, sizeof path);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(audit_public_key(f->a, hex1, id, NULL), 0);
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(audit_public_key(f->a, hex2, id, NULL), 0);
    assert_string_equal(hex1, hex2);
}

static void test_signing_key_open_to_others_is_refused(void **state)
{
    fixture *f = *state;
    char path[256], err[512] = "";
    audit_signing_key_path(f->head, path, sizeof path);
    fx_close(f);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(store_new(f->db, &f->st, err, sizeof err), 0);
    assert_int_equal(audit_new(f->st, f->key, f->head, &f->a, err, sizeof err), -EPERM);
    assert_non_null(strstr(err, "chmod 600"));
}

static void test_public_key_pem_is_served_but_not_the_private_key(void **state)
{
    fixture *f = *state;
    char hex[AUDIT_PUBKEY_HEX], id[AUDIT_KEY_ID_HEX], *pem = NULL;
    assert_int_equal(audit_public_key(f->a, hex, id, &pem), 0);
    assert_non_null(strstr(pem, "BEGIN PUBLIC KEY"));
    assert_null(strstr(pem, "PRIVATE"));
    free(pem);
}

static audit_head_report head_check(fixture *f)
{
    audit_head_report r;
    assert_int_equal(audit_head_check(f->a, &r), 0);
    return r;
}

static void test_head_check_accepts_an_intact_trail(void **state)
{
    fixture *f = *state;
    audit_head_report r = head_check(f);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.head_seq, N_ENTRIES);
}

static void test_head_check_accepts_a_new_trail(void **state)
{
    fixture *f = *state;
    assert_int_equal(head_check(f).ok, 1);
}

static void test_head_check_accepts_a_head_behind_the_chain(void **state)
{
    fixture *f = *state;
    store_audit_entry *e = get_entry(f, N_ENTRIES - 2);
    assert_int_equal(audit_head_sync(f->a, e->seq, e->hash), 0);
    store_audit_entries_free(e, 1);
    assert_int_equal(head_check(f).ok, 1);
}

static void test_head_check_names_both_seqs_of_a_cut_tail(void **state)
{
    fixture *f = *state;
    tamper(f, "DELETE FROM audit WHERE seq > 15;");
    reopen_audit(f);
    audit_head_report r = head_check(f);
    assert_int_equal(r.ok, 0);
    assert_int_equal(r.head_seq, N_ENTRIES);
    assert_int_equal(r.chain_seq, 15);
    assert_non_null(strstr(r.problem, "ends at 20 but the chain ends at 15"));
}

static void test_head_check_catches_a_rewritten_head_entry(void **state)
{
    fixture *f = *state;
    char line[128];
    snprintf(line, sizeof line, "%d %064d\n", N_ENTRIES, 7);
    write_file(f->head, line, strlen(line), 0600);
    audit_head_report r = head_check(f);
    assert_int_equal(r.ok, 0);
    assert_non_null(strstr(r.problem, "entry 20's hash"));
}

static void test_head_check_catches_a_deleted_head_file(void **state)
{
    fixture *f = *state;
    assert_int_equal(unlink(f->head), 0);
    audit_head_report r = head_check(f);
    assert_int_equal(r.ok, 0);
    assert_int_equal(r.chain_seq, N_ENTRIES);
    assert_non_null(strstr(r.problem, "missing"));
}

/* The attack the checkpoint is for: tail cut and head file rewritten to match. The chain and head
 * agree again; only the kept checkpoint shows it. */
static void test_cut_tail_with_rewritten_head_passes_the_head_check_not_the_checkpoint(void **state)
{
    fixture *f = *state;
    audit_checkpoint cp;
    char err[320] = "", why[512];
    assert_int_equal(audit_checkpoint_take(f->a, &cp, err, sizeof err), 0);
    json_t *kept = audit_checkpoint_json(&cp, 1);
    char *pem = NULL, hex[AUDIT_PUBKEY_HEX], id[AUDIT_KEY_ID_HEX];
    assert_int_equal(audit_public_key(f->a, hex, id, &pem), 0);
    assert_int_equal(audit_view_checkpoint_check(kept, pem, why, sizeof why), 0);

    tamper(f, "DELETE FROM audit WHERE seq > 16;");
    store_audit_entry *e = get_entry(f, 16);
    char line[128];
    snprintf(line, sizeof line, "16 %s\n", e->hash);
    store_audit_entries_free(e, 1);
    write_file(f->head, line, strlen(line), 0600);
    reopen_audit(f);
    assert_int_equal(head_check(f).ok, 1);
    assert_int_equal(verify(f).ok, 1);

    store_audit_entry *arr = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(f->st, cp.seq - 1, 0, NULL, NULL, 1, &arr, &n), 0);
    json_t *entries = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            entries, json_pack("{s:I,s:s}", "seq", (json_int_t)arr[i].seq, "hash", arr[i].hash));
    store_audit_entries_free(arr, n);
    assert_int_equal(audit_view_checkpoint_in_chain(kept, entries, why, sizeof why), 1);
    assert_non_null(strstr(why, "no longer holds entry 20"));
    json_decref(entries);
    json_decref(kept);
    free(pem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_untampered_chain_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_chain_verifies, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_entry_hash_is_the_documented_hmac, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logged_fields_are_stored_as_given, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edited_details_named_as_modified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edited_time_or_actor_named_as_modified, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deleted_middle_row_named_as_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_rows_name_the_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_first_row_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swapped_seqs_name_the_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swapped_contents_name_the_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swapped_contents_with_fixed_links_named_as_modified,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_inserted_row_with_shifted_seqs_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inserted_row_with_made_up_link_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_appended_after_the_head_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_inserted_before_the_first_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_inserted_at_the_lowest_seq_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_tail_caught_by_the_head_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_head_file_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edited_head_file_names_the_replaced_entry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_head_behind_the_chain_is_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_recomputed_without_the_key_named_as_modified,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_rewritten_with_another_key_named_at_the_edit,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_key_file_is_created_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_open_to_others_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_key_file_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_fails_at_entry_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_without_key_file_fails_and_creates_none, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_key_path_gives_a_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_appends_keep_chain_and_head, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_chain_checked_across_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_signs_the_last_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_refused_on_a_broken_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_refused_on_an_empty_chain, setup_empty,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_signing_key_is_made_0600_and_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signing_key_open_to_others_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_public_key_pem_is_served_but_not_the_private_key,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_check_accepts_an_intact_trail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_check_accepts_a_new_trail, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_head_check_accepts_a_head_behind_the_chain, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_head_check_names_both_seqs_of_a_cut_tail, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_head_check_catches_a_rewritten_head_entry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_head_check_catches_a_deleted_head_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_cut_tail_with_rewritten_head_passes_the_head_check_not_the_checkpoint, setup,
            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
