/* auth.c - bearer tokens: random generation, SHA-256 hashing, header parsing, and the fixed-size
 * tables that limit failed attempts per peer and requests per token. Never logs a token, never
 * does I/O, never logs at all.
 */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int auth_token_generate(char *out, size_t len)
{
    unsigned char raw[32];
    if (out == NULL || len < AUTH_TOKEN_LEN + 1) return -EINVAL;
    if (RAND_bytes(raw, sizeof raw) != 1) return -EIO;
    memcpy(out, AUTH_TOKEN_PREFIX, 4);
    hex_encode(raw, sizeof raw, out + 4);
    return 0;
}

int auth_token_hash(const char *token, char *out, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (token == NULL || out == NULL || len < AUTH_HASH_HEX_LEN + 1) return -EINVAL;
    if (EVP_Digest(token, strlen(token), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return -EIO;
    hex_encode(md, mdlen, out);
    return 0;
}

int auth_bearer_parse(const char *header, char *out, size_t len)
{
    if (header == NULL || out == NULL || len == 0) return -EINVAL;
    while (*header == ' ' || *header == '\t')
        header++;
    if (strncasecmp(header, "Bearer", 6) != 0 || (header[6] != ' ' && header[6] != '\t'))
        return -EINVAL;
    const char *p = header + 6;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = 0;
    while (p[n] != '\0' && p[n] != ' ' && p[n] != '\t') {
        unsigned char c = (unsigned char)p[n];
        if (!isalnum(c) && c != '_' && c != '-') return -EINVAL;
        n++;
    }
    for (const char *q = p + n; *q; q++)
        if (*q != ' ' && *q != '\t') return -EINVAL;
    if (n == 0 || n >= len) return -EINVAL;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

bool auth_hash_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL) return false;
    size_t n = strlen(a);
    if (strlen(b) != n) return false;
    return CRYPTO_memcmp(a, b, n) == 0;
}

int auth_peer_ip(const char *peer, char *out, size_t len)
{
    if (out == NULL || len == 0) return -EINVAL;
    out[0] = '\0';
    if (peer == NULL) return -EINVAL;
    const char *start = peer, *end = NULL;
    if (peer[0] == '[') {
        start = peer + 1;
        end = strchr(start, ']');
    } else {
        end = strrchr(peer, ':');
        if (end && strchr(peer, ':') != end) end = NULL; /* a bare IPv6 address: no port */
    }
    if (end == NULL) end = peer + strlen(peer);
    size_t n = (size_t)(end - start);
    int rc = 0;
    if (n >= len) {
        n = len - 1;
        rc = -EINVAL;
    }
    memcpy(out, start, n);
    out[n] = '\0';
    return rc;
}

/* --- fixed-size tables ------------------------------------------------------------------------ */

#define NEIGHBOURHOOD                                                                              \
    8 /* slots a key may live in, from its hash on: the O(1) bound of a lookup                     \
       */

static size_t table_size(size_t slots)
{
    size_t n = 16;
    if (slots == 0) slots = 4096;
    while (n < slots && n < ((size_t)1 << 24))
        n <<= 1;
    return n;
}

static uint64_t key_hash(const char *k)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = k; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

/* --- failed attempts per peer ----------------------------------------------------------------- */

struct peer_slot {
    bool used;
    char ip[AUTH_PEER_MAX];
    int64_t last_seen;
    int64_t minute; /* the current minute's counts */
    unsigned failures, refused;
    int64_t prev_minute; /* an ended minute not yet drained */
    unsigned prev_failures, prev_refused;
};

struct auth_peers {
    pthread_mutex_t mu;
    unsigned max_per_minute;
    size_t mask;
    struct peer_slot *slot;
    struct peer_slot evicted; /* the counts of peers pushed out of the table */
};

int auth_peers_new(size_t slots, unsigned max_per_minute, auth_peers **out)
{
    auth_peers *p = calloc(1, sizeof *p);
    if (p == NULL) return -ENOMEM;
    size_t n = table_size(slots);
    p->slot = calloc(n, sizeof *p->slot);
    if (p->slot == NULL) {
        free(p);
        return -ENOMEM;
    }
    p->mask = n - 1;
    p->max_per_minute = max_per_minute;
    snprintf(p->evicted.ip, sizeof p->evicted.ip, "(evicted)");
    pthread_mutex_init(&p->mu, NULL);
    *out = p;
    return 0;
}

void auth_peers_free(auth_peers *p)
{
    if (p == NULL) return;
    pthread_mutex_destroy(&p->mu);
    free(p->slot);
    free(p);
}

/* Adds counts of minute m into the pending (ended) counts of `into`. */
static void pending_add(struct peer_slot *into, int64_t m, unsigned failures, unsigned refused)
{
    if (failures == 0 && refused == 0) return;
    if (into->prev_failures == 0 && into->prev_refused == 0) into->prev_minute = m;
    into->prev_failures += failures;
    into->prev_refused += refused;
}

/* Brings slot s to the minute of `now`: the counts of an ended minute become pending. */
static void peer_roll(struct peer_slot *s, int64_t now)
{
    int64_t m = now - now % 60;
    if (s->minute == m) return;
    pending_add(s, s->minute, s->failures, s->refused);
    s->minute = m;
    s->failures = s->refused = 0;
}

/* The slot of `ip`, taking a free one or the least recently seen of its neighbourhood. */
static struct peer_slot *peer_slot_of(auth_peers *p, const char *ip, int64_t now)
{
    size_t i = (size_t)key_hash(ip) & p->mask;
    struct peer_slot *victim = NULL;
    for (size_t k = 0; k < NEIGHBOURHOOD; k++) {
        struct peer_slot *s = &p->slot[(i + k) & p->mask];
        if (s->used && strcmp(s->ip, ip) == 0) return s;
        if (!s->used) {
            if (victim == NULL || victim->used) victim = s;
        } else if (victim == NULL || (victim->used && s->last_seen < victim->last_seen)) {
            victim = s;
        }
    }
    if (victim->used) {
        peer_roll(&p->evicted, now);
        pending_add(&p->evicted, victim->prev_minute, victim->prev_failures, victim->prev_refused);
        pending_add(&p->evicted, victim->minute, victim->failures, victim->refused);
    }
    memset(victim, 0, sizeof *victim);
    victim->used = true;
    snprintf(victim->ip, sizeof victim->ip, "%s", ip);
    victim->minute = now - now % 60;
    return victim;
}

int auth_peers_check(auth_peers *p, const char *peer_ip, int64_t now)
{
    if (p == NULL || p->max_per_minute == 0 || peer_ip == NULL) return 0;
    int wait = 0;
    pthread_mutex_lock(&p->mu);
    size_t i = (size_t)key_hash(peer_ip) & p->mask;
    for (size_t k = 0; k < NEIGHBOURHOOD; k++) {
        struct peer_slot *s = &p->slot[(i + k) & p->mask];
        if (!s->used || strcmp(s->ip, peer_ip) != 0) continue;
        peer_roll(s, now);
        if (s->failures >= p->max_per_minute) {
            s->refused++;
            s->last_seen = now;
            wait = (int)(60 - now % 60);
        }
        break;
    }
    pthread_mutex_unlock(&p->mu);
    return wait;
}

void auth_peers_fail(auth_peers *p, const char *peer_ip, int64_t now)
{
    if (p == NULL || peer_ip == NULL) return;
    pthread_mutex_lock(&p->mu);
    struct peer_slot *s = peer_slot_of(p, peer_ip, now);
    peer_roll(s, now);
    s->failures++;
    s->last_seen = now;
    pthread_mutex_unlock(&p->mu);
}

/* Moves the drainable counts of s into out; returns false when out is full. */
static bool peer_drain_one(struct peer_slot *s, int64_t m_now, bool all, auth_peer_count *out,
                           size_t max, size_t *n)
{
    if (s->prev_failures || s->prev_refused) {
        if (*n == max) return false;
        auth_peer_count *c = &out[(*n)++];
        snprintf(c->peer, sizeof c->peer, "%s", s->ip);
        c->minute = s->prev_minute;
        c->failures = s->prev_failures;
        c->refused = s->prev_refused;
        s->prev_failures = s->prev_refused = 0;
    }
    if ((s->failures || s->refused) && (all || s->minute < m_now)) {
        if (*n == max) return false;
        auth_peer_count *c = &out[(*n)++];
        snprintf(c->peer, sizeof c->peer, "%s", s->ip);
        c->minute = s->minute;
        c->failures = s->failures;
        c->refused = s->refused;
        s->failures = s->refused = 0;
    }
    return true;
}

size_t auth_peers_drain(auth_peers *p, int64_t now, bool all, auth_peer_count *out, size_t max)
{
    size_t n = 0;
    if (p == NULL || out == NULL) return 0;
    int64_t m_now = now - now % 60;
    pthread_mutex_lock(&p->mu);
    if (peer_drain_one(&p->evicted, m_now, all, out, max, &n))
        for (size_t i = 0; i <= p->mask; i++)
            if (p->slot[i].used && !peer_drain_one(&p->slot[i], m_now, all, out, max, &n)) break;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* --- request rate per token ------------------------------------------------------------------- */

struct rate_slot {
    bool used;
    char hash[AUTH_HASH_HEX_LEN + 1];
    double tokens;
    int64_t last_ms;
};

struct auth_rate {
    pthread_mutex_t mu;
    double rate, burst;
    size_t mask;
    struct rate_slot *slot;
};

int auth_rate_new(size_t slots, double rate, double burst, auth_rate **out)
{
    if (!(rate >= 0) || (rate > 0 && !(burst >= 1))) return -EINVAL;
    auth_rate *r = calloc(1, sizeof *r);
    if (r == NULL) return -ENOMEM;
    size_t n = table_size(slots);
    r->slot = calloc(n, sizeof *r->slot);
    if (r->slot == NULL) {
        free(r);
        return -ENOMEM;
    }
    r->mask = n - 1;
    r->rate = rate;
    r->burst = burst;
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return 0;
}

void auth_rate_free(auth_rate *r)
{
    if (r == NULL) return;
    pthread_mutex_destroy(&r->mu);
    free(r->slot);
    free(r);
}

int auth_rate_take(auth_rate *r, const char *hash_hex, int64_t now_ms)
{
    if (r == NULL || r->rate <= 0 || hash_hex == NULL) return 0;
    int wait = 0;
    pthread_mutex_lock(&r->mu);
    size_t i = (size_t)key_hash(hash_hex) & r->mask;
    struct rate_slot *s = NULL, *victim = NULL;
    for (size_t k = 0; k < NEIGHBOURHOOD && s == NULL; k++) {
        struct rate_slot *t = &r->slot[(i + k) & r->mask];
        if (t->used && strcmp(t->hash, hash_hex) == 0)
            s = t;
        else if (!t->used ? (victim == NULL || victim->used)
                          : (victim == NULL || (victim->used && t->last_ms < victim->last_ms)))
            victim = t;
    }
    if (s == NULL) {
        s = victim;
        s->used = true;
        snprintf(s->hash, sizeof s->hash, "%s", hash_hex);
        s->tokens = r->burst;
        s->last_ms = now_ms;
    }
    if (now_ms > s->last_ms) {
        s->tokens += (double)(now_ms - s->last_ms) / 1000.0 * r->rate;
        if (s->tokens > r->burst) s->tokens = r->burst;
    }
    s->last_ms = now_ms > s->last_ms ? now_ms : s->last_ms;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
    } else {
        wait = (int)ceil((1.0 - s->tokens) / r->rate);
        if (wait < 1) wait = 1;
    }
    pthread_mutex_unlock(&r->mu);
    return wait;
}
