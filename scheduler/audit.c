/* audit.c - antennad's tamper-evident audit trail (HMAC-SHA256 chain). Never logs, never writes the
 * key anywhere but its own 0600 file, never trusts a stored hash it has not recomputed. */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <time.h>

#define AUDIT_KEY_MIN    32   /* bytes of a key file, at least (and what a new one holds) */
#define AUDIT_KEY_MAX    4096 /* bytes of a key file, at most */
#define AUDIT_PAGE       1000 /* entries read at a time when verifying */
#define AUDIT_HEAD_MAX   128  /* bytes of a head file, at most */
#define AUDIT_HASH_LEN   (STORE_HASH_HEX - 1)
#define AUDIT_LOGF_STACK 1024

/* An HMAC-SHA256 keyed once: each hash works on a copy of `base`. Not shared between threads. */
typedef struct hasher {
    EVP_MAC *mac;
    EVP_MAC_CTX *base;
} hasher;

struct audit {
    store *st; /* borrowed */
    char *key_path;
    char *head_path;
    unsigned char *key;
    size_t keylen;
    hasher h;             /* used by appends, under lock */
    EVP_PKEY *sign;       /* the Ed25519 checkpoint key */
    pthread_mutex_t lock; /* one append (store + head file) at a time */
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

/* --- the key --- */

/* Writes all of buf to fd. Returns 0 or a negative errno. */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Creates the key file `path` with AUDIT_KEY_MIN random bytes, mode 0600, failing if it exists.
 * Returns 0, -EEXIST (someone made it first), or a negative errno with a message. */
static int key_create(const char *path, char *err, size_t errlen)
{
    unsigned char key[AUDIT_KEY_MIN];
    int ret;
    if (RAND_bytes(key, sizeof key) != 1) {
        set_err(err, errlen, "cannot make an audit key: the OpenSSL random generator failed");
        return -EIO;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        ret = -errno;
        if (ret != -EEXIST)
            set_err(err, errlen,
                    "cannot create the audit key file %s: %s (does its directory exist?)", path,
                    strerror(-ret));
        goto fail_open;
    }
    /* the umask can only have removed bits; make sure of exactly 0600 */
    if (fchmod(fd, 0600) < 0 || (ret = write_all(fd, key, sizeof key)) < 0 || fsync(fd) < 0) {
        ret = errno ? -errno : -EIO;
        set_err(err, errlen, "cannot write the audit key file %s: %s", path, strerror(-ret));
        goto fail_write;
    }
    if (close(fd) < 0) {
        ret = -errno;
        fd = -1;
        set_err(err, errlen, "cannot write the audit key file %s: %s", path, strerror(-ret));
        goto fail_write;
    }
    OPENSSL_cleanse(key, sizeof key);
    return 0;

fail_write:
    if (fd >= 0) close(fd);
    unlink(path);
fail_open:
    OPENSSL_cleanse(key, sizeof key);
    return ret;
}

/* Reads the key in `path` into a malloc'd buffer (*key, *keylen; free with key_free), creating it
 * first when it is missing and `create` is set. Refuses a key that is not a regular file, that
 * group or others may read or write, or that is shorter than AUDIT_KEY_MIN bytes. Returns 0 or a
 * negative errno with a message. */
static int key_load(const char *path, bool create, unsigned char **key, size_t *keylen, char *err,
                    size_t errlen)
{
    int ret, fd;
    struct stat sb;
    unsigned char *buf = NULL;

    for (int tries = 0;; tries++) {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0) break;
        ret = -errno;
        if (ret != -ENOENT || !create || tries > 0) {
            set_err(err, errlen, "cannot open the audit key file %s: %s", path, strerror(-ret));
            return ret;
        }
        ret = key_create(path, err, errlen);
        if (ret < 0 && ret != -EEXIST) return ret;
    }
    if (fstat(fd, &sb) < 0) {
        ret = -errno;
        set_err(err, errlen, "cannot stat the audit key file %s: %s", path, strerror(-ret));
        goto fail_stat;
    }
    if (!S_ISREG(sb.st_mode)) {
        ret = -EINVAL;
        set_err(err, errlen, "the audit key file %s is not a regular file", path);
        goto fail_stat;
    }
    if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
        ret = -EPERM;
        set_err(err, errlen,
                "the audit key file %s is open to group or others (mode %04o); the key must stay "
                "secret: run chmod 600 %s",
                path, (unsigned)(sb.st_mode & 07777), path);
        goto fail_stat;
    }
    if (sb.st_size < AUDIT_KEY_MIN || sb.st_size > AUDIT_KEY_MAX) {
        ret = -EINVAL;
        set_err(err, errlen,
                "the audit key file %s holds %lld bytes; a key holds %d to %d random bytes "
                "(restore the key the trail was written with)",
                path, (long long)sb.st_size, AUDIT_KEY_MIN, AUDIT_KEY_MAX);
        goto fail_stat;
    }
    size_t len = (size_t)sb.st_size;
    buf = malloc(len);
    if (!buf) {
        ret = -ENOMEM;
        set_err(err, errlen, "out of memory reading the audit key");
        goto fail_stat;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            ret = r < 0 ? -errno : -EIO;
            set_err(err, errlen, "cannot read the audit key file %s: %s", path,
                    r < 0 ? strerror(-ret) : "it became shorter while read");
            goto fail_read;
        }
        got += (size_t)r;
    }
    close(fd);
    *key = buf;
    *keylen = len;
    return 0;

fail_read:
    OPENSSL_cleanse(buf, len);
    free(buf);
fail_stat:
    close(fd);
    return ret;
}

static void key_free(unsigned char *key, size_t keylen)
{
    if (!key) return;
    OPENSSL_cleanse(key, keylen);
    free(key);
}

/* --- hashing --- */

static void hasher_close(hasher *h)
{
    EVP_MAC_CTX_free(h->base);
    EVP_MAC_free(h->mac);
    h->base = NULL;
    h->mac = NULL;
}

/* Keys an HMAC-SHA256 with `key`. Returns 0 or -EIO (OpenSSL failed); close with hasher_close. */
static int hasher_init(hasher *h, const unsigned char *key, size_t keylen)
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    h->base = NULL;
    h->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!h->mac) goto fail;
    h->base = EVP_MAC_CTX_new(h->mac);
    if (!h->base || EVP_MAC_init(h->base, key, keylen, params) != 1) goto fail;
    return 0;
fail:
    hasher_close(h);
    return -EIO;
}

static int mac_text(EVP_MAC_CTX *ctx, const char *s, bool newline)
{
    if (s && s[0] && EVP_MAC_update(ctx, (const unsigned char *)s, strlen(s)) != 1) return -1;
    if (newline && EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) != 1) return -1;
    return 0;
}

/* The entry hash of audit.h: HMAC(key, prev_hash \n seq \n at \n actor \n partner \n action \n
 * details), lower-case hex, into out. Returns 0 or -EIO. */
static int hash_entry(const hasher *h, const store_audit_entry *e, char out[STORE_HASH_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t mdlen = 0;
    char seq[24], at[24];
    int ret = -EIO;
    snprintf(seq, sizeof seq, "%lld", (long long)e->seq);
    snprintf(at, sizeof at, "%lld", (long long)e->at);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(h->base);
    if (!ctx) return -EIO;
    if (mac_text(ctx, e->prev_hash, true) < 0 || mac_text(ctx, seq, true) < 0 ||
        mac_text(ctx, at, true) < 0 || mac_text(ctx, e->actor, true) < 0 ||
        mac_text(ctx, e->partner, true) < 0 || mac_text(ctx, e->action, true) < 0 ||
        mac_text(ctx, e->details ? e->details : "{}", false) < 0)
        goto out;
    if (EVP_MAC_final(ctx, md, &mdlen, sizeof md) != 1 || mdlen * 2 != AUDIT_HASH_LEN) goto out;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[AUDIT_HASH_LEN] = '\0';
    ret = 0;
out:
    EVP_MAC_CTX_free(ctx);
    return ret;
}

/* store_audit_hash_fn over a hasher. */
static int hash_cb(const store_audit_entry *e, char out[STORE_HASH_HEX], void *arg)
{
    return hash_entry(arg, e, out);
}

/* 1 when the stored hash `stored` equals `computed` (64 hex digits), in constant time. */
static bool hash_equal(const char *stored, const char *computed)
{
    return strlen(stored) == AUDIT_HASH_LEN && CRYPTO_memcmp(stored, computed, AUDIT_HASH_LEN) == 0;
}

/* The folder of `path` ("/" for "/x", "." for a bare name), malloc'd; NULL when out of memory. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) return strdup(".");
    return strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

/* --- the head file --- */

/* Writes "seq hash\n" over the head file `path`, in place, then fdatasync: one sync per group
 * commit (a temp file, its fsync, a rename and the directory's fsync cost a new inode and a second
 * sync each time). The record is under 128 bytes at offset 0, inside the first sector, which a
 * disk writes whole; it only ever grows (seq gains digits), so no byte of an older record is left
 * behind; a longer file (edited by hand) is cut to the record. A head file made here for the first
 * time is made durable with its directory's fsync. Never follows a link. Returns 0 or a negative
 * errno. */
static int head_write(const char *path, int64_t seq, const char *hash)
{
    char line[AUDIT_HEAD_MAX];
    int len = snprintf(line, sizeof line, "%lld %s\n", (long long)seq, hash);
    if (len < 0 || (size_t)len >= sizeof line) return -EINVAL;
    bool created = false;
    int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        created = fd >= 0;
    }
    if (fd < 0) return -errno;
    int ret = 0;
    struct stat sb;
    size_t done = 0;
    while (done < (size_t)len) {
        ssize_t w = pwrite(fd, line + done, (size_t)len - done, (off_t)done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            ret = -errno;
            goto out;
        }
        done += (size_t)w;
    }
    if (fstat(fd, &sb) < 0 || (sb.st_size > len && ftruncate(fd, len) < 0) || fdatasync(fd) < 0) {
        ret = -errno;
        goto out;
    }
    if (created) {
        char *dir = dir_of(path);
        if (dir == NULL) {
            ret = -ENOMEM;
            goto out;
        }
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            if (fsync(dfd) < 0) ret = -errno;
            close(dfd);
        }
        free(dir);
    }
out:
    if (close(fd) < 0 && ret == 0) ret = -errno;
    return ret;
}

/* Reads the head file `path` into *seq and hash. Returns 0, -ENOENT (no head file), -EBADMSG (not
 * "seq hash\n" with seq >= 1 and 64 hex digits) or another negative errno. */
static int head_read(const char *path, int64_t *seq, char hash[STORE_HASH_HEX])
{
    char buf[AUDIT_HEAD_MAX + 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return -errno;
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int ret = -errno;
            close(fd);
            return ret;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';

    char *p = buf, *end;
    if (*p < '1' || *p > '9') return -EBADMSG;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (errno || *end != ' ') return -EBADMSG;
    p = end + 1;
    for (int i = 0; i < AUDIT_HASH_LEN; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) return -EBADMSG;
    if (strcmp(p + AUDIT_HASH_LEN, "\n") != 0) return -EBADMSG;
    *seq = v;
    memcpy(hash, p, AUDIT_HASH_LEN);
    hash[AUDIT_HASH_LEN] = '\0';
    return 0;
}

/* --- the checkpoint key --- */

char *audit_signing_key_path(const char *head_path, char *buf, size_t len)
{
    const char *slash = strrchr(head_path, '/');
    if (slash == NULL)
        snprintf(buf, len, "audit-signing.key");
    else
        snprintf(buf, len, "%.*s/audit-signing.key", (int)(slash - head_path), head_path);
    return buf;
}

/* Creates the Ed25519 key file `path` (PKCS#8 PEM, mode 0600), failing if it exists. Returns 0,
 * -EEXIST, or a negative errno with a message. */
static int sign_key_create(const char *path, char *err, size_t errlen)
{
    int ret = -EIO;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    BIO *mem = BIO_new(BIO_s_mem());
    char *pem = NULL;
    if (k == NULL || mem == NULL ||
        PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL) != 1) {
        set_err(err, errlen, "cannot make the audit signing key (OpenSSL Ed25519)");
        goto fail_key;
    }
    long len = BIO_get_mem_data(mem, &pem);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        ret = -errno;
        if (ret != -EEXIST)
            set_err(err, errlen, "cannot create the audit signing key file %s: %s", path,
                    strerror(-ret));
        goto fail_key;
    }
    if (fchmod(fd, 0600) < 0 || (ret = write_all(fd, pem, (size_t)len)) < 0 || fsync(fd) < 0 ||
        close(fd) < 0) {
        ret = errno ? -errno : -EIO;
        set_err(err, errlen, "cannot write the audit signing key file %s: %s", path,
                strerror(-ret));
        unlink(path);
        goto fail_key;
    }
    ret = 0;
fail_key:
    BIO_free_all(mem); /* BIO_s_mem clears nothing: the PEM text was only in memory */
    EVP_PKEY_free(k);
    return ret;
}

/* Loads (creating when missing) the Ed25519 key in `path` into *out, with the checks of
 * key_load (a regular file, no access for group or others). Returns 0 or a negative errno. */
static int sign_key_load(const char *path, EVP_PKEY **out, char *err, size_t errlen)
{
    int ret = sign_key_create(path, err, errlen);
    if (ret < 0 && ret != -EEXIST) return ret;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
    if (fd < 0) {
        ret = -errno;
        set_err(err, errlen, "cannot open the audit signing key file %s: %s", path, strerror(-ret));
        return ret;
    }
    struct stat sb;
    char buf[AUDIT_KEY_MAX];
    ssize_t got = -1;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        set_err(err, errlen, "the audit signing key file %s is not a regular file", path);
        ret = -EINVAL;
    } else if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
        set_err(err, errlen,
                "the audit signing key file %s is open to group or others (mode %04o); it must "
                "stay secret: run chmod 600 %s",
                path, (unsigned)(sb.st_mode & 07777), path);
        ret = -EPERM;
    } else if ((got = read(fd, buf, sizeof buf)) <= 0) {
        set_err(err, errlen, "cannot read the audit signing key file %s", path);
        ret = -EIO;
    } else {
        BIO *mem = BIO_new_mem_buf(buf, (int)got);
        EVP_PKEY *k = mem ? PEM_read_bio_PrivateKey(mem, NULL, NULL, NULL) : NULL;
        BIO_free(mem);
        if (k == NULL || EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
            EVP_PKEY_free(k);
            set_err(err, errlen,
                    "the audit signing key file %s is not an Ed25519 private key in PEM", path);
            ret = -EINVAL;
        } else {
            *out = k;
            ret = 0;
        }
    }
    OPENSSL_cleanse(buf, sizeof buf);
    close(fd);
    return ret;
}

static void hex_of(const unsigned char *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int audit_public_key(audit *a, char hex[AUDIT_PUBKEY_HEX], char id[AUDIT_KEY_ID_HEX], char **pem)
{
    unsigned char raw[32], md[SHA256_DIGEST_LENGTH];
    size_t len = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(a->sign, raw, &len) != 1 || len != sizeof raw) return -EIO;
    hex_of(raw, sizeof raw, hex);
    SHA256(raw, sizeof raw, md);
    hex_of(md, (AUDIT_KEY_ID_HEX - 1) / 2, id);
    if (pem == NULL) return 0;
    BIO *mem = BIO_new(BIO_s_mem());
    char *p = NULL;
    if (mem == NULL || PEM_write_bio_PUBKEY(mem, a->sign) != 1) {
        BIO_free(mem);
        return -EIO;
    }
    long n = BIO_get_mem_data(mem, &p);
    *pem = strndup(p, (size_t)n);
    BIO_free(mem);
    return *pem ? 0 : -ENOMEM;
}

/* --- lifecycle --- */

int audit_new(store *st, const char *key_path, const char *head_path, audit **out, char *err,
              size_t errlen)
{
    int ret;
    if (out) *out = NULL;
    if (!st || !key_path || !key_path[0] || !head_path || !head_path[0] || !out) {
        set_err(err, errlen, "audit_new: a store, a key file and a head file are required");
        return -EINVAL;
    }
    audit *a = calloc(1, sizeof *a);
    if (!a) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    a->st = st;
    a->key_path = strdup(key_path);
    a->head_path = strdup(head_path);
    if (!a->key_path || !a->head_path) {
        ret = -ENOMEM;
        set_err(err, errlen, "out of memory");
        goto fail_paths;
    }
    /* The head file's directory must be there: the head file is made in it. */
    char *dir = dir_of(head_path);
    if (!dir) {
        ret = -ENOMEM;
        set_err(err, errlen, "out of memory");
        goto fail_paths;
    }
    struct stat sb;
    ret = 0;
    if (stat(dir, &sb) < 0)
        ret = -errno;
    else if (!S_ISDIR(sb.st_mode))
        ret = -ENOTDIR;
    else if (access(dir, W_OK) < 0)
        ret = -errno;
    if (ret < 0) {
        set_err(err, errlen, "the directory %s of the audit head file %s is not usable: %s", dir,
                head_path, strerror(-ret));
        free(dir);
        goto fail_paths;
    }
    free(dir);
    if ((ret = key_load(key_path, true, &a->key, &a->keylen, err, errlen)) < 0) goto fail_paths;
    if ((ret = hasher_init(&a->h, a->key, a->keylen)) < 0) {
        set_err(err, errlen, "cannot set up HMAC-SHA256 (OpenSSL)");
        goto fail_hasher;
    }
    char sign_path[4096];
    audit_signing_key_path(head_path, sign_path, sizeof sign_path);
    if ((ret = sign_key_load(sign_path, &a->sign, err, errlen)) < 0) goto fail_sign;
    if ((ret = -pthread_mutex_init(&a->lock, NULL)) < 0) {
        set_err(err, errlen, "cannot create a mutex: %s", strerror(-ret));
        goto fail_mutex;
    }
    *out = a;
    return 0;

fail_mutex:
    EVP_PKEY_free(a->sign);
fail_sign:
    hasher_close(&a->h);
fail_hasher:
    key_free(a->key, a->keylen);
fail_paths:
    free(a->head_path);
    free(a->key_path);
    free(a);
    return ret;
}

void audit_free(audit *a)
{
    if (!a) return;
    pthread_mutex_destroy(&a->lock);
    EVP_PKEY_free(a->sign);
    hasher_close(&a->h);
    key_free(a->key, a->keylen);
    free(a->head_path);
    free(a->key_path);
    free(a);
}

/* --- appending --- */

/* Copies s (NULL = "") into dst of size n. Returns 0, or -EINVAL when it does not fit. */
static int copy_field(char *dst, size_t n, const char *s)
{
    if (!s) s = "";
    size_t len = strlen(s);
    if (len >= n) return -EINVAL;
    memcpy(dst, s, len + 1);
    return 0;
}

int audit_append(audit *a, const char *actor, const char *partner, const char *action,
                 const char *details_json, int64_t *seq, char hash[STORE_HASH_HEX])
{
    if (!a || !actor || !action) return -EINVAL;
    store_audit_entry e;
    memset(&e, 0, sizeof e);
    if (copy_field(e.actor, sizeof e.actor, actor) < 0 ||
        copy_field(e.partner, sizeof e.partner, partner) < 0 ||
        copy_field(e.action, sizeof e.action, action) < 0)
        return -EINVAL;
    e.details = (char *)(details_json ? details_json : "{}"); /* borrowed, never written */
    int ret = store_audit_append(a->st, &e, hash_cb, &a->h);
    if (ret == 0) {
        if (seq) *seq = e.seq;
        if (hash) memcpy(hash, e.hash, STORE_HASH_HEX);
    }
    return ret;
}

int audit_log(audit *a, const char *actor, const char *partner, const char *action,
              const char *details_json)
{
    if (!a) return -EINVAL;
    int64_t seq = 0;
    char hash[STORE_HASH_HEX];
    pthread_mutex_lock(&a->lock);
    int ret = audit_append(a, actor, partner, action, details_json, &seq, hash);
    if (ret == 0) ret = head_write(a->head_path, seq, hash);
    pthread_mutex_unlock(&a->lock);
    return ret;
}

int audit_head_sync(audit *a, int64_t seq, const char *hash)
{
    if (!a || seq <= 0 || !hash) return -EINVAL;
    pthread_mutex_lock(&a->lock);
    int ret = head_write(a->head_path, seq, hash);
    pthread_mutex_unlock(&a->lock);
    return ret;
}

int audit_logf(audit *a, const char *actor, const char *partner, const char *action,
               const char *details_fmt, ...)
{
    char stack[AUDIT_LOGF_STACK];
    char *text = stack;
    va_list ap;
    if (!details_fmt) return audit_log(a, actor, partner, action, NULL);
    va_start(ap, details_fmt);
    int len = vsnprintf(stack, sizeof stack, details_fmt, ap);
    va_end(ap);
    if (len < 0) return -EINVAL;
    if ((size_t)len >= sizeof stack) {
        text = malloc((size_t)len + 1);
        if (!text) return -ENOMEM;
        va_start(ap, details_fmt);
        vsnprintf(text, (size_t)len + 1, details_fmt, ap);
        va_end(ap);
    }
    int ret = audit_log(a, actor, partner, action, text);
    if (text != stack) free(text);
    return ret;
}

/* --- verifying --- */

/* Marks r broken at `seq` with a problem. */
static void fail_at(audit_report *r, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_at(audit_report *r, int64_t seq, const char *fmt, ...)
{
    va_list ap;
    r->ok = 0;
    r->first_bad = seq;
    va_start(ap, fmt);
    vsnprintf(r->problem, sizeof r->problem, fmt, ap);
    va_end(ap);
}

/* What the walk knows of the head file. */
enum head_state { HEAD_NONE, HEAD_OK, HEAD_MISSING, HEAD_MALFORMED };

/* Says why entry `e` (whose link is right but whose hash is wrong) fails, looking at the entry
 * after it, `next` (NULL at the end), and at the hash of the entry before it, `prev_hash`. */
static void explain_bad_hash(audit_report *r, const hasher *h, const char *key_path,
                             const store_audit_entry *e, const store_audit_entry *next,
                             const char *prev_hash, enum head_state hs, int64_t head_seq)
{
    long long seq = (long long)e->seq;
    if (next && next->seq == e->seq + 1 && strcmp(next->prev_hash, prev_hash) == 0) {
        /* the next entry links over this one: it was slipped in, the later seqs shifted */
        fail_at(r, e->seq,
                "entry %lld was inserted (its hash does not match, and entry %lld "
                "links to the entry before it)",
                seq, seq + 1);
        return;
    }
    if (hs == HEAD_OK && e->seq > head_seq) {
        fail_at(r, e->seq,
                "entry %lld was inserted after the head file's last entry %lld (its hash does "
                "not match)",
                seq, (long long)head_seq);
        return;
    }
    char computed[STORE_HASH_HEX];
    if (e->seq == 1 && next && next->seq == 2 && strcmp(next->prev_hash, e->hash) == 0 &&
        hash_entry(h, next, computed) == 0 && !hash_equal(next->hash, computed)) {
        /* entries 1 and 2 are linked as written but neither matches: most likely another key */
        fail_at(r, e->seq,
                "entry 1 was modified (its hash does not match, nor does entry 2's: is %s the "
                "key this trail was written with?)",
                key_path ? key_path : "the key file");
        return;
    }
    fail_at(r, e->seq, "entry %lld was modified (its hash does not match)", seq);
}

/* Reads the entry after `seq` into a fresh array (*arr, *n <= 1). Returns 0 or a negative errno. */
static int peek_after(store *st, int64_t seq, store_audit_entry **arr, size_t *n)
{
    return store_audit_list(st, seq, 0, NULL, NULL, 1, arr, n);
}

/* The verification of audit_verify: the chain of `st` in seq order, then the head file. */
static int verify_chain(store *st, const hasher *h, const char *key_path, const char *head_path,
                        pthread_mutex_t *head_lock, audit_report *r)
{
    enum head_state hs = HEAD_NONE;
    int64_t head_seq = 0;
    char head_hash[STORE_HASH_HEX] = "";
    int ret;

    /* The head is read before the chain: entries appended meanwhile are after it, and the chain
     * only grows, so a head ahead of the chain read next means entries went missing. */
    if (head_path) {
        /* the head is rewritten in place: a reader inside the process takes the appends' lock */
        if (head_lock) pthread_mutex_lock(head_lock);
        ret = head_read(head_path, &head_seq, head_hash);
        if (head_lock) pthread_mutex_unlock(head_lock);
        if (ret == 0) {
            hs = HEAD_OK;
            r->head_seq = head_seq;
        } else if (ret == -ENOENT) {
            hs = HEAD_MISSING;
        } else if (ret == -EBADMSG) {
            hs = HEAD_MALFORMED;
        } else {
            snprintf(r->problem, sizeof r->problem, "cannot read the audit head file %s: %s",
                     head_path, strerror(-ret));
            return ret;
        }
    }

    /* From the lowest seq there can be, not from 0: a row slipped in at seq 0 or below is
     * hidden from listings that start after 0, but not from this check. */
    int64_t prev_seq = 0, after = INT64_MIN;
    char prev_hash[STORE_HASH_HEX] = ""; /* the first entry links to "" */
    char head_entry_hash[STORE_HASH_HEX] = "";
    bool broken = false;
    char computed[STORE_HASH_HEX];

    while (!broken) {
        store_audit_entry *arr = NULL, *more = NULL;
        size_t n = 0, nmore = 0;
        ret = store_audit_list(st, after, 0, NULL, NULL, AUDIT_PAGE, &arr, &n);
        if (ret < 0) {
            snprintf(r->problem, sizeof r->problem, "cannot read the audit trail: %s",
                     strerror(-ret));
            return ret;
        }
        for (size_t i = 0; i < n && !broken; i++) {
            const store_audit_entry *e = &arr[i];
            r->entries++;
            if (e->seq <= prev_seq) {
                fail_at(r, e->seq, "an entry was inserted or reordered at %lld (after entry %lld)",
                        (long long)e->seq, (long long)prev_seq);
            } else if (e->seq > prev_seq + 1) {
                if (e->seq == prev_seq + 2)
                    fail_at(r, prev_seq + 1, "entry %lld is missing (deleted)",
                            (long long)(prev_seq + 1));
                else
                    fail_at(r, prev_seq + 1,
                            "entry %lld is missing (deleted), and so are the "
                            "entries after it up to %lld",
                            (long long)(prev_seq + 1), (long long)(e->seq - 1));
            } else if (strcmp(e->prev_hash, prev_hash) != 0) {
                if (e->seq == 1)
                    fail_at(r, 1,
                            "entry 1 is out of order or was inserted (the first entry "
                            "links to nothing)");
                else
                    fail_at(r, e->seq,
                            "entry %lld is out of order or was inserted (it does not "
                            "link to entry %lld)",
                            (long long)e->seq, (long long)prev_seq);
            } else {
                ret = hash_entry(h, e, computed);
                if (ret < 0) {
                    store_audit_entries_free(arr, n);
                    snprintf(r->problem, sizeof r->problem, "cannot compute HMAC-SHA256 (OpenSSL)");
                    return ret;
                }
                if (!hash_equal(e->hash, computed)) {
                    const store_audit_entry *next = i + 1 < n ? &arr[i + 1] : NULL;
                    if (!next && (ret = peek_after(st, e->seq, &more, &nmore)) < 0) {
                        store_audit_entries_free(arr, n);
                        snprintf(r->problem, sizeof r->problem, "cannot read the audit trail: %s",
                                 strerror(-ret));
                        return ret;
                    }
                    if (!next && nmore > 0) next = &more[0];
                    explain_bad_hash(r, h, key_path, e, next, prev_hash, hs, head_seq);
                    store_audit_entries_free(more, nmore);
                }
            }
            if (r->problem[0]) { /* fail_at said why */
                broken = true;
                break;
            }
            if (hs == HEAD_OK && e->seq == head_seq)
                memcpy(head_entry_hash, e->hash, sizeof head_entry_hash);
            prev_seq = e->seq;
            memcpy(prev_hash, e->hash, sizeof prev_hash);
        }
        if (n > 0) after = arr[n - 1].seq;
        store_audit_entries_free(arr, n);
        if (n < AUDIT_PAGE) break;
    }
    if (broken) return 0;
    r->last_seq = prev_seq;
    memcpy(r->last_hash, prev_hash, sizeof r->last_hash);

    /* Every entry verifies: now the head file, which says where the chain ended. */
    if (hs == HEAD_MISSING && prev_seq > 0) {
        fail_at(r, prev_seq + 1,
                "the head file %s is missing, but the chain has %lld entries (entries after %lld "
                "may have been deleted with it)",
                head_path, (long long)r->entries, (long long)prev_seq);
    } else if (hs == HEAD_MALFORMED) {
        fail_at(r, prev_seq + 1, "the head file %s is not \"seq hash\" (it was edited)", head_path);
    } else if (hs == HEAD_OK && head_seq > prev_seq) {
        fail_at(r, prev_seq + 1,
                "the chain ends at %lld but the head file says %lld (entries deleted from the end)",
                (long long)prev_seq, (long long)head_seq);
    } else if (hs == HEAD_OK && !hash_equal(head_entry_hash, head_hash)) {
        fail_at(r, head_seq,
                "entry %lld was replaced (its hash is not the one in the head file; entries "
                "after it may have been rewritten)",
                (long long)head_seq);
    } else {
        /* Entries after the head (appended since it was read, or whose head write failed) are
         * accepted: each verified against the key. */
        r->ok = 1;
    }
    return 0;
}

/* Fills r for a failure before any verdict. */
static void report_start(audit_report *r)
{
    memset(r, 0, sizeof *r);
}

int audit_verify(store *st, const char *key_path, const char *head_path, audit_report *r)
{
    if (!r) return -EINVAL;
    report_start(r);
    if (!st || !key_path) {
        snprintf(r->problem, sizeof r->problem,
                 "audit_verify: a store and a key file are required");
        return -EINVAL;
    }
    unsigned char *key = NULL;
    size_t keylen = 0;
    hasher h;
    int ret = key_load(key_path, false, &key, &keylen, r->problem, sizeof r->problem);
    if (ret < 0) return ret;
    if ((ret = hasher_init(&h, key, keylen)) < 0) {
        snprintf(r->problem, sizeof r->problem, "cannot set up HMAC-SHA256 (OpenSSL)");
        goto fail_hasher;
    }
    ret = verify_chain(st, &h, key_path, head_path, NULL, r);
    hasher_close(&h);
fail_hasher:
    key_free(key, keylen);
    return ret;
}

int audit_verify_open(audit *a, audit_report *r)
{
    if (!r) return -EINVAL;
    report_start(r);
    if (!a) {
        snprintf(r->problem, sizeof r->problem, "the audit trail is not open");
        return -EINVAL;
    }
    /* A hasher of its own: a->h belongs to appends, which may run meanwhile. */
    hasher h;
    if (hasher_init(&h, a->key, a->keylen) < 0) {
        snprintf(r->problem, sizeof r->problem, "cannot set up HMAC-SHA256 (OpenSSL)");
        return -EIO;
    }
    int ret = verify_chain(a->st, &h, a->key_path, a->head_path, &a->lock, r);
    hasher_close(&h);
    return ret;
}

/* --- checkpoints --- */

json_t *audit_checkpoint_json(const audit_checkpoint *cp, int with_signature)
{
    char at[32];
    struct tm tm;
    time_t t = (time_t)cp->at;
    gmtime_r(&t, &tm);
    strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *o = json_pack("{s:s,s:I,s:s,s:s,s:s,s:s}", "format", AUDIT_CHECKPOINT_FORMAT, "seq",
                          (json_int_t)cp->seq, "hash", cp->hash, "at", at, "key_id", cp->key_id,
                          "public_key", cp->public_key);
    if (o != NULL && with_signature &&
        json_object_set_new(o, "signature", json_string(cp->signature)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int audit_checkpoint_take(audit *a, audit_checkpoint *cp, char *err, size_t errlen)
{
    audit_report r;
    memset(cp, 0, sizeof *cp);
    int ret = audit_verify_open(a, &r);
    if (ret < 0) {
        set_err(err, errlen, "%s", r.problem);
        return ret;
    }
    if (!r.ok) {
        set_err(err, errlen,
                "the audit trail does not verify, so no checkpoint is signed: entry %lld: %s",
                (long long)r.first_bad, r.problem);
        return -EBADMSG;
    }
    if (r.last_seq <= 0) {
        set_err(err, errlen, "the audit trail is empty: there is nothing to checkpoint yet");
        return -EBADMSG;
    }
    cp->seq = r.last_seq;
    memcpy(cp->hash, r.last_hash, sizeof cp->hash);
    cp->at = (int64_t)time(NULL);
    if ((ret = audit_public_key(a, cp->public_key, cp->key_id, NULL)) < 0) {
        set_err(err, errlen, "cannot read the signing key's public half (OpenSSL)");
        return ret;
    }
    json_t *o = audit_checkpoint_json(cp, 0);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (text == NULL) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    unsigned char sig[64];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ret = -EIO;
    if (md != NULL && EVP_DigestSignInit(md, NULL, NULL, NULL, a->sign) == 1 &&
        EVP_DigestSign(md, sig, &siglen, (const unsigned char *)text, strlen(text)) == 1 &&
        siglen == sizeof sig) {
        hex_of(sig, sizeof sig, cp->signature);
        ret = 0;
    } else {
        set_err(err, errlen, "cannot sign the checkpoint (OpenSSL Ed25519)");
    }
    EVP_MD_CTX_free(md);
    free(text);
    return ret;
}

/* The chain's last seq, by walking its seqs (a mismatch only). Returns 0 or a negative errno. */
static int chain_last(store *st, int64_t *last)
{
    int64_t after = INT64_MIN;
    *last = 0;
    for (;;) {
        store_audit_entry *arr = NULL;
        size_t n = 0;
        int ret = store_audit_list(st, after, 0, NULL, NULL, AUDIT_PAGE, &arr, &n);
        if (ret < 0) return ret;
        if (n > 0) *last = after = arr[n - 1].seq;
        store_audit_entries_free(arr, n);
        if (n < AUDIT_PAGE) return 0;
    }
}

int audit_head_check(audit *a, audit_head_report *r)
{
    memset(r, 0, sizeof *r);
    int64_t head_seq = 0;
    char head_hash[STORE_HASH_HEX] = "";
    int ret = head_read(a->head_path, &head_seq, head_hash);
    if (ret < 0 && ret != -ENOENT && ret != -EBADMSG) {
        snprintf(r->problem, sizeof r->problem, "cannot read the audit head file %s: %s",
                 a->head_path, strerror(-ret));
        return ret;
    }
    bool malformed = ret == -EBADMSG;
    r->head_seq = head_seq;
    store_audit_entry *arr = NULL;
    size_t n = 0;
    /* the head's entry, or (no head) the first one */
    ret = store_audit_list(a->st, head_seq > 0 ? head_seq - 1 : INT64_MIN, 0, NULL, NULL, 1, &arr,
                           &n);
    if (ret < 0) {
        snprintf(r->problem, sizeof r->problem, "cannot read the audit trail: %s", strerror(-ret));
        return ret;
    }
    bool found = n == 1 && arr[0].seq == head_seq;
    bool same = found && hash_equal(arr[0].hash, head_hash);
    bool empty = n == 0;
    store_audit_entries_free(arr, n);
    if (!malformed && head_seq == 0 && empty) {
        r->ok = 1; /* a new trail */
        return 0;
    }
    if (!malformed && same) {
        r->ok = 1;
        r->chain_seq = head_seq; /* at least: later entries are not walked */
        return 0;
    }
    if ((ret = chain_last(a->st, &r->chain_seq)) < 0) {
        snprintf(r->problem, sizeof r->problem, "cannot read the audit trail: %s", strerror(-ret));
        return ret;
    }
    if (malformed)
        snprintf(r->problem, sizeof r->problem,
                 "the head file %s is not \"seq hash\" (it was edited); the chain ends at %lld",
                 a->head_path, (long long)r->chain_seq);
    else if (head_seq == 0)
        snprintf(r->problem, sizeof r->problem,
                 "the head file %s is missing but the chain has entries up to %lld (was it "
                 "deleted, with entries after those?)",
                 a->head_path, (long long)r->chain_seq);
    else if (!found && r->chain_seq > head_seq)
        snprintf(r->problem, sizeof r->problem,
                 "entry %lld, the head file's last, is missing from the chain (which ends at %lld)",
                 (long long)head_seq, (long long)r->chain_seq);
    else if (!found)
        snprintf(r->problem, sizeof r->problem,
                 "the head file says the chain ends at %lld but the chain ends at %lld (entries "
                 "deleted from the end)",
                 (long long)head_seq, (long long)r->chain_seq);
    else
        snprintf(r->problem, sizeof r->problem,
                 "entry %lld's hash is not the one in the head file (the chain ends at %lld; the "
                 "entry was rewritten, or entries after it)",
                 (long long)head_seq, (long long)r->chain_seq);
    return 0;
}
