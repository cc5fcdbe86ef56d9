/* auth.h - bearer tokens: generation, hashing (SHA-256), header parsing, constant-time hash
 * comparison, and the in-memory limits of authentication: failed attempts per peer (with their
 * per-minute counts for the audit trail) and a request rate per token.
 *
 * Never stores or logs a token's text: only its hash leaves this module. Never does I/O and never
 * logs: the limiters are fixed-size tables behind a mutex, O(1) per request, safe on any thread,
 * the event-loop thread included.
 */
#ifndef ANTENNA_AUTH_H
#define ANTENNA_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_TOKEN_PREFIX "ant_"
#define AUTH_TOKEN_LEN    (4 + 64) /* "ant_" + 32 random bytes in hex */
#define AUTH_HASH_HEX_LEN 64       /* SHA-256 in hex */

/* Writes a new random token ("ant_" + 64 hex chars, NUL-terminated) into out[len], len >=
 * AUTH_TOKEN_LEN + 1. Returns 0, -EINVAL (buffer too small) or -EIO (no randomness). */
int auth_token_generate(char *out, size_t len);

/* Writes the SHA-256 of `token` as 64 lowercase hex chars + NUL into out[len], len >=
 * AUTH_HASH_HEX_LEN + 1. Returns 0, -EINVAL or -EIO. */
int auth_token_hash(const char *token, char *out, size_t len);

/* Extracts the token from an Authorization header value "Bearer <token>" (scheme case-insensitive,
 * surrounding blanks ignored) into out[len]. Returns 0, or -EINVAL when header is NULL, has another
 * scheme, an empty or over-long token, or characters outside [A-Za-z0-9_-]. */
int auth_bearer_parse(const char *header, char *out, size_t len);

/* Whether two token hashes (hex text) are equal, in time that depends only on their lengths
 * (CRYPTO_memcmp). NULL never equals anything. */
bool auth_hash_equal(const char *a, const char *b);

/* Writes the address part of a peer "1.2.3.4:5678" or "[::1]:5678" ("1.2.3.4", "::1") into
 * out[len]: the key failed attempts are counted by. Returns 0, or -EINVAL (then out is the peer
 * as given, cut to fit). */
int auth_peer_ip(const char *peer, char *out, size_t len);

/* --- failed attempts per peer --------------------------------------------------------------- */

#define AUTH_PEER_MAX 48 /* an IPv6 address in text, with its NUL */

typedef struct auth_peers auth_peers;

/* A table of `slots` peers (rounded up to a power of two, at least 16; 0 = 4096) that refuses a
 * peer after `max_per_minute` failed attempts in the current minute (0 = never refuses) until the
 * minute ends. When full, a new peer takes the place of the least recently seen one of its
 * neighbourhood (its counts are kept, under the peer "(evicted)"). Returns 0 and sets *out, or
 * -ENOMEM. Free with auth_peers_free. */
int auth_peers_new(size_t slots, unsigned max_per_minute, auth_peers **out);

/* Frees the table. Accepts NULL. */
void auth_peers_free(auth_peers *p);

/* Whether `peer_ip` may try to authenticate at `now` (unix seconds): 0, or the seconds until it
 * may (> 0, for Retry-After), in which case this refusal is counted for the audit trail. O(1). */
int auth_peers_check(auth_peers *p, const char *peer_ip, int64_t now);

/* Counts one failed attempt of `peer_ip` at `now`. O(1). */
void auth_peers_fail(auth_peers *p, const char *peer_ip, int64_t now);

/* The counts of one peer for one minute. */
typedef struct auth_peer_count {
    char peer[AUTH_PEER_MAX];
    int64_t minute;    /* unix seconds of the minute's start */
    unsigned failures; /* failed attempts (unknown, revoked or expired token, disabled user...) */
    unsigned refused;  /* attempts refused with 429 without looking the token up */
} auth_peer_count;

/* Takes out (and forgets) the counts of the minutes that ended before `now`'s minute, or of every
 * minute when `all`, into out[max]: returns how many were written. Counts left when out is full
 * stay for the next call. O(slots). */
size_t auth_peers_drain(auth_peers *p, int64_t now, bool all, auth_peer_count *out, size_t max);

/* --- request rate per token ------------------------------------------------------------------ */

typedef struct auth_rate auth_rate;

/* A token bucket per token, `rate` requests per second refilled up to `burst` (rate 0 = no
 * limit), in a table of `slots` tokens (as auth_peers_new; 0 = 4096; a token that finds no place
 * takes the least recently used one of its neighbourhood, and starts with a full bucket). Returns
 * 0 and sets *out, -EINVAL (negative rate, burst < 1 with a rate), or -ENOMEM. */
int auth_rate_new(size_t slots, double rate, double burst, auth_rate **out);

/* Frees the table. Accepts NULL. */
void auth_rate_free(auth_rate *r);

/* Takes one request from the bucket of the token whose hash is hash_hex, at `now_ms` (a monotonic
 * clock in milliseconds): 0 when it may go on, or the seconds until one more request is allowed
 * (> 0, for Retry-After). O(1). */
int auth_rate_take(auth_rate *r, const char *hash_hex, int64_t now_ms);

#endif
