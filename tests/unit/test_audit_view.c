/* test_audit_view.c - unit tests for client/audit_view: DETAILS cut to 60 characters, the
 * `antenna audit` table, and the `audit verify` verdict with its exit status.
 * Prints only into memory streams; never touches the network. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <jansson.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit_view.h"

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (j == NULL) fail_msg("bad test JSON: %s", e.text);
    return j;
}

/* Renders the JSON text as the table (verify 0) or the verdict (verify 1) into a string (caller
 * frees); *rc gets the view's result. */
static char *render(int verify, const char *text, int *rc)
{
    json_t *j = parse(text);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    *rc = verify ? audit_view_print_verify(f, j)
                 : audit_view_print_table(f, j, AUDIT_VIEW_DETAILS_WIDTH);
    fclose(f);
    json_decref(j);
    return buf;
}

static int setup_utc(void **state)
{
    (void)state;
    setenv("TZ", "UTC0", 1);
    tzset();
    return 0;
}

/* Number of UTF-8 characters in s. */
static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) n++;
    return n;
}

static void details_are_compact_json_kept_whole_up_to_the_width(void **state)
{
    (void)state;
    char buf[256];
    json_t *d = parse("{\"job\": 7, \"gpus\": 2, \"name\": \"train\"}");
    assert_string_equal(audit_view_details(d, 60, buf, sizeof buf),
                        "{\"job\":7,\"gpus\":2,\"name\":\"train\"}");
    json_decref(d);
    /* exactly 60 characters: not cut */
    d = parse("{\"k\":\"0123456789012345678901234567890123456789012345678901\"}");
    assert_int_equal(strlen(audit_view_details(d, 60, buf, sizeof buf)), 60);
    assert_null(strstr(buf, "..."));
    json_decref(d);
    assert_string_equal(audit_view_details(NULL, 60, buf, sizeof buf), "-");
    d = json_null();
    assert_string_equal(audit_view_details(d, 60, buf, sizeof buf), "-");
}

static void details_longer_than_the_width_are_cut_with_dots(void **state)
{
    (void)state;
    char buf[256];
    json_t *d = parse("{\"k\":\"01234567890123456789012345678901234567890123456789012\"}");
    audit_view_details(d, 60, buf, sizeof buf);
    assert_int_equal(strlen(buf), 60);
    assert_string_equal(buf, "{\"k\":\"012345678901234567890123456789012345678901234567890...");
    json_decref(d);
}

static void details_are_never_cut_inside_a_utf8_character(void **state)
{
    (void)state;
    char buf[256];
    json_t *d = json_pack("{s:s}", "who",
                          "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
                          "\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    assert_non_null(d);
    audit_view_details(d, 12, buf, sizeof buf);
    assert_int_equal(chars(buf), 12);
    assert_string_equal(buf, "{\"who\":\"\xc3\xa9...");
    json_decref(d);
}

static void table_shows_entries_with_local_times_and_cut_details(void **state)
{
    (void)state;
    int rc;
    char *out = render(
        0,
        "[{\"seq\": 1, \"at\": \"2026-11-25T21:44:36Z\", \"actor\": \"admin\", \"partner\": "
        "\"ulb\", \"action\": \"partner.created\", \"details\": {\"name\": \"ulb\"}, \"hash\": "
        "\"ab\", \"prev_hash\": \"\"},"
        " {\"seq\": 2, \"at\": \"2026-11-25T21:45:00Z\", \"actor\": \"alice\", \"partner\": "
        "\"ulb\", \"action\": \"job.submitted\", \"details\": {\"job\": 7, \"script_sha256\": "
        "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}},"
        " {\"seq\": 3, \"at\": null, \"actor\": \"x\\ty\", \"action\": \"auth.failed\"}]",
        &rc);
    assert_int_equal(rc, 3);
    assert_string_equal(
        out, "SEQ  TIME                 ACTOR  PARTNER  ACTION           DETAILS\n"
             "1    2026-11-25 21:44:36  admin  ulb      partner.created  {\"name\":\"ulb\"}\n"
             "2    2026-11-25 21:45:00  alice  ulb      job.submitted    "
             "{\"job\":7,\"script_sha256\":\"9f86d081884c7d659a2feaa0c55ad01...\n"
             "3    -                    x y    -        auth.failed      -\n");
    free(out);
}

static void table_prints_nothing_for_no_entries(void **state)
{
    (void)state;
    int rc;
    char *out = render(0, "[]", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "");
    free(out);
    out = render(0, "{\"entries\": []}", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "");
    free(out);
}

static void verify_ok_prints_the_count_and_maps_to_exit_0(void **state)
{
    (void)state;
    int rc;
    char *out = render(1,
                       "{\"ok\": true, \"entries\": 120, \"first_bad\": null, \"problem\": "
                       "null, \"head_seq\": 120}",
                       &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "audit trail OK: 120 entries verified\n");
    free(out);
}

static void verify_broken_names_the_entry_and_problem_and_maps_to_exit_1(void **state)
{
    (void)state;
    int rc;
    char *out = render(1,
                       "{\"ok\": false, \"entries\": 120, \"first_bad\": 57, \"problem\": "
                       "\"entry 57 was modified (its hash does not match)\", \"head_seq\": 120}",
                       &rc);
    assert_int_equal(rc, 1);
    assert_string_equal(out, "audit trail BROKEN at entry 57: entry 57 was modified (its hash "
                             "does not match)\n");
    free(out);
    out = render(1, "{\"ok\": false, \"problem\": \"line\\nbreak\\u001b\"}", &rc);
    assert_int_equal(rc, 1);
    assert_string_equal(out, "audit trail BROKEN at entry ?: line break \n");
    free(out);
    out = render(1, "{\"ok\": false, \"first_bad\": 3}", &rc);
    assert_int_equal(rc, 1);
    assert_string_equal(out, "audit trail BROKEN at entry 3: no reason given\n");
    free(out);
}

static void verify_without_a_boolean_ok_is_refused_and_prints_nothing(void **state)
{
    (void)state;
    int rc;
    char *out = render(1, "{\"ok\": \"yes\", \"entries\": 3}", &rc);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(out, "");
    free(out);
    out = render(1, "[]", &rc);
    assert_int_equal(rc, -EINVAL);
    free(out);
}

/* --- checkpoints --- */

/* A fresh Ed25519 key: its PEM public half into *pem (free it), the key itself returned. */
static EVP_PKEY *new_key(char **pem)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k);
    BIO *mem = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(mem, k), 1);
    char *p = NULL;
    long n = BIO_get_mem_data(mem, &p);
    *pem = strndup(p, (size_t)n);
    BIO_free(mem);
    return k;
}

/* A checkpoint of entry `seq` with `hash`, signed by k the way the broker signs. */
static json_t *signed_checkpoint(EVP_PKEY *k, long long seq, const char *hash)
{
    unsigned char raw[32], sig[64];
    size_t rl = sizeof raw, sl = sizeof sig;
    char pub[65], sighex[129];
    assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &rl), 1);
    for (int i = 0; i < 32; i++)
        snprintf(pub + 2 * i, 3, "%02x", raw[i]);
    json_t *o = json_pack("{s:s,s:I,s:s,s:s,s:s,s:s}", "format", "antenna-audit-checkpoint-1",
                          "seq", (json_int_t)seq, "hash", hash, "at", "2026-12-01T12:00:00Z",
                          "key_id", "0123456789abcdef", "public_key", pub);
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, k), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sl, (unsigned char *)text, strlen(text)), 1);
    EVP_MD_CTX_free(md);
    free(text);
    for (int i = 0; i < 64; i++)
        snprintf(sighex + 2 * i, 3, "%02x", sig[i]);
    json_object_set_new(o, "signature", json_string(sighex));
    return o;
}

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void checkpoint_signed_by_the_pinned_key_holds(void **state)
{
    (void)state;
    char *pem, why[512] = "";
    EVP_PKEY *k = new_key(&pem);
    json_t *cp = signed_checkpoint(k, 42, HASH_A);
    assert_int_equal(audit_view_checkpoint_check(cp, pem, why, sizeof why), 0);
    json_decref(cp);
    EVP_PKEY_free(k);
    free(pem);
}

static void checkpoint_with_an_edited_seq_is_refused(void **state)
{
    (void)state;
    char *pem, why[512] = "";
    EVP_PKEY *k = new_key(&pem);
    json_t *cp = signed_checkpoint(k, 42, HASH_A);
    json_object_set_new(cp, "seq", json_integer(41));
    assert_int_equal(audit_view_checkpoint_check(cp, pem, why, sizeof why), 1);
    assert_non_null(strstr(why, "signature does not verify"));
    json_decref(cp);
    EVP_PKEY_free(k);
    free(pem);
}

static void checkpoint_signed_by_another_key_is_refused(void **state)
{
    (void)state;
    char *pem, *other_pem, why[512] = "";
    EVP_PKEY *k = new_key(&pem), *other = new_key(&other_pem);
    json_t *cp = signed_checkpoint(other, 42, HASH_A);
    assert_int_equal(audit_view_checkpoint_check(cp, pem, why, sizeof why), 1);
    assert_non_null(strstr(why, "another key"));
    json_decref(cp);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
    free(pem);
    free(other_pem);
}

static void checkpoint_with_a_missing_field_is_refused(void **state)
{
    (void)state;
    char *pem, why[512] = "";
    EVP_PKEY *k = new_key(&pem);
    json_t *cp = signed_checkpoint(k, 42, HASH_A);
    json_object_del(cp, "hash");
    assert_int_equal(audit_view_checkpoint_check(cp, pem, why, sizeof why), 1);
    assert_non_null(strstr(why, "not an Antenna audit checkpoint"));
    json_decref(cp);
    EVP_PKEY_free(k);
    free(pem);
}

static void checkpoint_check_refuses_a_pinned_key_that_is_not_pem(void **state)
{
    (void)state;
    char *pem, why[512] = "";
    EVP_PKEY *k = new_key(&pem);
    json_t *cp = signed_checkpoint(k, 42, HASH_A);
    assert_int_equal(audit_view_checkpoint_check(cp, "not a key", why, sizeof why), -EINVAL);
    json_decref(cp);
    EVP_PKEY_free(k);
    free(pem);
}

static void checkpoint_in_chain_holds_for_its_entry(void **state)
{
    (void)state;
    char why[512] = "";
    json_t *cp = json_pack("{s:I,s:s}", "seq", 42, "hash", HASH_A);
    json_t *entries = json_pack("[{s:I,s:s}]", "seq", 42, "hash", HASH_A);
    assert_int_equal(audit_view_checkpoint_in_chain(cp, entries, why, sizeof why), 0);
    json_decref(entries);
    json_decref(cp);
}

static void checkpoint_in_chain_fails_for_a_deleted_entry(void **state)
{
    (void)state;
    char why[512] = "";
    json_t *cp = json_pack("{s:I,s:s}", "seq", 42, "hash", HASH_A);
    json_t *none = json_array();
    json_t *later = json_pack("[{s:I,s:s}]", "seq", 43, "hash", HASH_A);
    assert_int_equal(audit_view_checkpoint_in_chain(cp, none, why, sizeof why), 1);
    assert_non_null(strstr(why, "no longer holds entry 42"));
    assert_int_equal(audit_view_checkpoint_in_chain(cp, later, why, sizeof why), 1);
    json_decref(none);
    json_decref(later);
    json_decref(cp);
}

static void checkpoint_in_chain_fails_for_a_rewritten_entry(void **state)
{
    (void)state;
    char why[512] = "";
    json_t *cp = json_pack("{s:I,s:s}", "seq", 42, "hash", HASH_A);
    json_t *entries = json_pack("[{s:I,s:s}]", "seq", 42, "hash", HASH_B);
    assert_int_equal(audit_view_checkpoint_in_chain(cp, entries, why, sizeof why), 1);
    assert_non_null(strstr(why, "hash differs"));
    json_decref(entries);
    json_decref(cp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(details_are_compact_json_kept_whole_up_to_the_width),
        cmocka_unit_test(details_longer_than_the_width_are_cut_with_dots),
        cmocka_unit_test(details_are_never_cut_inside_a_utf8_character),
        cmocka_unit_test(table_shows_entries_with_local_times_and_cut_details),
        cmocka_unit_test(table_prints_nothing_for_no_entries),
        cmocka_unit_test(verify_ok_prints_the_count_and_maps_to_exit_0),
        cmocka_unit_test(verify_broken_names_the_entry_and_problem_and_maps_to_exit_1),
        cmocka_unit_test(verify_without_a_boolean_ok_is_refused_and_prints_nothing),
        cmocka_unit_test(checkpoint_signed_by_the_pinned_key_holds),
        cmocka_unit_test(checkpoint_with_an_edited_seq_is_refused),
        cmocka_unit_test(checkpoint_signed_by_another_key_is_refused),
        cmocka_unit_test(checkpoint_with_a_missing_field_is_refused),
        cmocka_unit_test(checkpoint_check_refuses_a_pinned_key_that_is_not_pem),
        cmocka_unit_test(checkpoint_in_chain_holds_for_its_entry),
        cmocka_unit_test(checkpoint_in_chain_fails_for_a_deleted_entry),
        cmocka_unit_test(checkpoint_in_chain_fails_for_a_rewritten_entry),
    };
    return cmocka_run_group_tests(tests, setup_utc, NULL);
}
