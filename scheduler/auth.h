/* auth.h - bearer tokens: generation, hashing (SHA-256) and header parsing.
 *
 * Never stores or logs a token's text: only its hash leaves this module. Pure functions of OpenSSL;
 * safe on any thread.
 */
#ifndef ANTENNA_AUTH_H
#define ANTENNA_AUTH_H

#include <stddef.h>

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

#endif
