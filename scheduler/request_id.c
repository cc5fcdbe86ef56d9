/* request_id.c - well-formed request ids, and fresh ones from a random prefix and a counter.
 *
 * Must never allocate, log or block (but the first call's getrandom), and never accept an id
 * with a character outside [A-Za-z0-9._-].
 */
#include "request_id.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

bool request_id_valid(const char *id)
{
    if (id == NULL) return false;
    size_t n = 0;
    for (const char *p = id; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || n >= REQUEST_ID_MAX) return false;
    }
    return n > 0;
}

static _Atomic uint64_t prefix;  /* 48 random bits | 1 << 63 once set */
static _Atomic uint64_t counter; /* ids made so far */

static uint64_t prefix_get(void)
{
    uint64_t p = atomic_load_explicit(&prefix, memory_order_relaxed);
    if (p != 0) return p;
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts; /* no entropy yet (early boot): the clock and the pid still differ */
        clock_gettime(CLOCK_REALTIME, &ts);
        r = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    }
    r = (r & 0xffffffffffffULL) | (1ULL << 63);
    uint64_t expected = 0;
    if (!atomic_compare_exchange_strong(&prefix, &expected, r)) r = expected; /* another won */
    return r;
}

int request_id_make(char *out, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (out == NULL || len == 0) return -ENOSPC;
    uint64_t p = prefix_get();
    uint64_t n = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed) + 1;
    char id[32];
    size_t o = 0;
    for (int i = 11; i >= 0; i--)
        id[o++] = hex[(p >> (i * 4)) & 0xf];
    id[o++] = '-';
    char tmp[16];
    size_t k = 0;
    do {
        tmp[k++] = hex[n & 0xf];
        n >>= 4;
    } while (n != 0 && k < sizeof tmp);
    if (o + k + 1 > len) {
        out[0] = '\0';
        return -ENOSPC;
    }
    while (k > 0)
        id[o++] = tmp[--k];
    memcpy(out, id, o);
    out[o] = '\0';
    return 0;
}
