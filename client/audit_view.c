/* audit_view.c - the `antenna audit` table, the `antenna audit verify` verdict and the check of a
 * kept checkpoint. Must never talk to the network, trust the JSON's shape (every field is
 * type-checked) or trust a checkpoint's own public key without the pinned one. */
#include "audit_view.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "table.h"

char *audit_view_details(const json_t *details, size_t width, char *buf, size_t len)
{
    if (len == 0) return buf;
    if (width < 4) width = 4;
    if (details == NULL || json_is_null(details)) {
        snprintf(buf, len, "-");
        return buf;
    }
    char *text = json_dumps(details, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) {
        snprintf(buf, len, "-");
        return buf;
    }
    /* find where the (width - 3)th character ends, and whether there are more than width */
    size_t chars = 0, cut = 0, i = 0;
    for (; text[i]; i++) {
        if (((unsigned char)text[i] & 0xc0) == 0x80) continue;
        if (chars == width - 3) cut = i;
        chars++;
    }
    if (chars <= width) {
        snprintf(buf, len, "%s", text);
    } else {
        snprintf(buf, len, "%.*s...", (int)cut, text);
    }
    /* a cut by a too-small buffer must not leave half a character */
    size_t n = strlen(buf);
    if (n + 1 == len) {
        size_t k = n;
        while (k > 0 && ((unsigned char)buf[k - 1] & 0xc0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)buf[k - 1] & 0x80)) buf[k - 1] = '\0';
    }
    free(text);
    return buf;
}

static void int_cell(const json_t *v, char *buf, size_t len)
{
    if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else
        buf[0] = '\0';
}

static const char *str_or_null(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

int audit_view_print_table(FILE *out, const json_t *entries, size_t width)
{
    static const char *const headers[] = {"SEQ", "TIME", "ACTOR", "PARTNER", "ACTION", "DETAILS"};
    if (!json_is_array(entries) || json_array_size(entries) == 0) return 0;
    table *t = table_new(6, headers);
    if (t == NULL) return -ENOMEM;
    int rc = 0;
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        char seq[32], at[64], details[1024];
        int_cell(json_object_get(e, "seq"), seq, sizeof seq);
        table_time_local(str_or_null(e, "at"), true, at, sizeof at);
        json_t *d = json_object_get(e, "details");
        audit_view_details(d, width, details, sizeof details);
        const char *row[] = {seq,
                             at,
                             str_or_null(e, "actor"),
                             str_or_null(e, "partner"),
                             str_or_null(e, "action"),
                             details};
        if ((rc = table_add_row(t, row)) != 0) goto done;
    }
    rc = table_print(t, out);
    if (rc == 0) rc = (int)table_rows(t);
done:
    table_free(t);
    return rc;
}

int audit_view_print_verify(FILE *out, const json_t *verdict)
{
    json_t *ok = json_object_get(verdict, "ok");
    if (!json_is_boolean(ok)) return -EINVAL;
    if (json_is_true(ok)) {
        json_t *n = json_object_get(verdict, "entries");
        if (json_is_integer(n))
            fprintf(out, "audit trail OK: %lld entries verified\n",
                    (long long)json_integer_value(n));
        else
            fprintf(out, "audit trail OK: ? entries verified\n");
        return ferror(out) ? -EIO : 0;
    }
    char at[32] = "?", problem[512];
    json_t *bad = json_object_get(verdict, "first_bad");
    if (json_is_integer(bad)) snprintf(at, sizeof at, "%lld", (long long)json_integer_value(bad));
    const char *p = str_or_null(verdict, "problem");
    snprintf(problem, sizeof problem, "%s", p && p[0] ? p : "no reason given");
    for (char *c = problem; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = ' ';
    fprintf(out, "audit trail BROKEN at entry %s: %s\n", at, problem);
    return ferror(out) ? -EIO : 1;
}

/* Decodes `n` bytes of lower-case hex `hex` (exactly 2n digits) into out. Returns 0 or -EINVAL. */
static int unhex(const char *hex, unsigned char *out, size_t n)
{
    if (hex == NULL || strlen(hex) != 2 * n) return -EINVAL;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) return -EINVAL;
        if (i % 2 == 0)
            out[i / 2] = (unsigned char)(v << 4);
        else
            out[i / 2] |= (unsigned char)v;
    }
    return 0;
}

int audit_view_checkpoint_check(const json_t *cp, const char *pinned_pem, char *why, size_t len)
{
    unsigned char pinned[32], claimed[32], sig[64];
    size_t plen = sizeof pinned;
    BIO *mem = BIO_new_mem_buf(pinned_pem ? pinned_pem : "", -1);
    EVP_PKEY *k = mem ? PEM_read_bio_PUBKEY(mem, NULL, NULL, NULL) : NULL;
    BIO_free(mem);
    if (k == NULL || EVP_PKEY_get_id(k) != EVP_PKEY_ED25519 ||
        EVP_PKEY_get_raw_public_key(k, pinned, &plen) != 1 || plen != sizeof pinned) {
        EVP_PKEY_free(k);
        snprintf(why, len,
                 "the pinned public key is not an Ed25519 public key in PEM (get it with antenna "
                 "audit public-key, or on the broker host with openssl pkey -pubout)");
        return -EINVAL;
    }
    int rc = 1;
    const char *fmt = json_string_value(json_object_get(cp, "format"));
    json_t *seq = json_object_get(cp, "seq");
    const char *hash = json_string_value(json_object_get(cp, "hash"));
    const char *pub = json_string_value(json_object_get(cp, "public_key"));
    const char *s = json_string_value(json_object_get(cp, "signature"));
    json_t *rest = NULL;
    char *text = NULL;
    if (!json_is_object(cp) || fmt == NULL || strcmp(fmt, "antenna-audit-checkpoint-1") != 0 ||
        !json_is_integer(seq) || json_integer_value(seq) < 1 || hash == NULL ||
        strlen(hash) != 64 || !json_is_string(json_object_get(cp, "key_id")) ||
        unhex(pub, claimed, sizeof claimed) < 0 || unhex(s, sig, sizeof sig) < 0) {
        snprintf(why, len,
                 "the file is not an Antenna audit checkpoint (format, seq, hash, key_id, "
                 "public_key and signature are needed)");
        goto done;
    }
    if (CRYPTO_memcmp(claimed, pinned, sizeof pinned) != 0) {
        snprintf(why, len,
                 "the checkpoint was signed by another key than the pinned one (its public_key "
                 "differs)");
        goto done;
    }
    rest = json_deep_copy(cp);
    if (rest == NULL || json_object_del(rest, "signature") < 0 ||
        (text = json_dumps(rest, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
        snprintf(why, len, "out of memory");
        rc = -ENOMEM;
        goto done;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestVerify(md, sig, sizeof sig, (const unsigned char *)text, strlen(text)) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) {
        snprintf(why, len,
                 "the checkpoint's signature does not verify with the pinned key (the file was "
                 "edited)");
        goto done;
    }
    rc = 0;
done:
    free(text);
    json_decref(rest);
    EVP_PKEY_free(k);
    return rc;
}

int audit_view_checkpoint_in_chain(const json_t *cp, const json_t *entries, char *why, size_t len)
{
    long long seq = (long long)json_integer_value(json_object_get(cp, "seq"));
    const char *hash = json_string_value(json_object_get(cp, "hash"));
    json_t *e = json_array_get(entries, 0);
    json_t *eseq = json_object_get(e, "seq");
    if (!json_is_integer(eseq) || json_integer_value(eseq) != seq) {
        snprintf(why, len,
                 "the chain no longer holds entry %lld, which the checkpoint signed (entries were "
                 "deleted)",
                 seq);
        return 1;
    }
    const char *ehash = json_string_value(json_object_get(e, "hash"));
    if (hash == NULL || ehash == NULL || strcmp(hash, ehash) != 0) {
        snprintf(why, len,
                 "entry %lld of the chain is not the one the checkpoint signed (its hash differs: "
                 "the entry, or entries before it, were rewritten)",
                 seq);
        return 1;
    }
    return 0;
}
