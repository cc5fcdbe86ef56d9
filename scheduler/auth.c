/* auth.c - bearer tokens: random generation, SHA-256 hashing, header parsing. Never logs a token.
 */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

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
