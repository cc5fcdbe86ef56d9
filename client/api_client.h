/* api_client.h - the CLI's HTTPS connection to antennad (libcurl): one handle per process, reused
 * for keep-alive, Bearer-token auth, JSON bodies, Idempotency-Key retries of job submissions.
 *
 * Never prints and never exits: transport failures come back as a message in the caller's buffer,
 * HTTP answers (any status) in an api_client_response. Single-threaded: use one api_client from one
 * thread.
 */
#ifndef ANTENNA_API_CLIENT_H
#define ANTENNA_API_CLIENT_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

typedef struct api_client api_client;

/* One HTTP answer. Caller-allocated: api_client_response_init before use, api_client_response_close
 * after. */
typedef struct api_client_response {
    long status;        /* HTTP status, 0 before an answer */
    char *body;         /* heap, NUL-terminated (may hold other NULs); never NULL after a request */
    size_t body_len;    /* bytes in body (not counting the final NUL) */
    size_t streamed;    /* bytes of a 2xx body written to the sink instead of `body` */
    char job_state[32]; /* the X-Antenna-Job-State header, "" when absent */
    long retry_after;   /* seconds from the Retry-After header (delay or HTTP date), -1 when absent
                           or unreadable */
    int net;            /* why no answer arrived (enum api_client_net), API_CLIENT_NET_NONE after an
                           answer */
} api_client_response;

/* Kinds of transport failure, for the caller's hint (both are exit code 3 in the CLI). */
enum api_client_failure {
    API_CLIENT_FAIL_CONNECT = 1, /* DNS, refused, timeout, reset... */
    API_CLIENT_FAIL_TLS = 2,     /* handshake or certificate verification */
};

/* Why a request got no HTTP answer, finer than api_client_failure: what the retry policy decides
 * on and what a retry message names. */
enum api_client_net {
    API_CLIENT_NET_NONE = 0,    /* an answer arrived */
    API_CLIENT_NET_REFUSED,     /* connection refused (antennad not listening, e.g. restarting) */
    API_CLIENT_NET_UNREACHABLE, /* no route to the host or network */
    API_CLIENT_NET_TIMEOUT,     /* connecting or the answer took too long */
    API_CLIENT_NET_LOST,        /* connection reset or broken (TCP or TLS) while talking */
    API_CLIENT_NET_EMPTY,       /* the server closed the connection without answering */
    API_CLIENT_NET_CUT,         /* the answer was cut short */
    API_CLIENT_NET_RESOLVE,     /* the host name does not resolve */
    API_CLIENT_NET_TLS,         /* TLS handshake or certificate problem */
    API_CLIENT_NET_OTHER,       /* anything else: bad URL, out of memory, answer too big, sink */
};

/* Creates a client for `base_url` ("https://host:port", optionally with a path prefix; trailing
 * slashes ignored), sending `token` as "Authorization: Bearer <token>" and trusting the CA file
 * `ca` when non-NULL (else the system store). Strings are copied. Initialises libcurl globally:
 * create at most one client at a time. Returns 0 and sets *out, or -ENOMEM / -EIO (libcurl could
 * not start) with a message in err[errlen]. */
int api_client_new(const char *base_url, const char *token, const char *ca, api_client **out,
                   char *err, size_t errlen);

/* Frees the client, closing its connection. Accepts NULL. */
void api_client_free(api_client *c);

/* Returns the client's base URL (owned by the client). */
const char *api_client_url(const api_client *c);

/* Empties `r`: no status, no body, retry_after -1, net API_CLIENT_NET_NONE. */
void api_client_response_init(api_client_response *r);

/* Frees the body and empties `r` again. Accepts NULL. */
void api_client_response_close(api_client_response *r);

/* Sends `method` ("GET", "POST", "DELETE") to base_url + `path` ("/v1/jobs?limit=5"), with
 * `json_body` (NUL-terminated, or NULL for none) as application/json. When `sink` is non-NULL, a
 * 2xx body is written there as it arrives (counted in resp->streamed) instead of kept in
 * resp->body; other bodies are always kept. `resp` must be initialised; a previous body is
 * released. Returns 0 once an HTTP answer arrived, whatever its status; or a negative errno with
 * err[errlen] naming the URL and curl's message plus a hint, and *failure (may be NULL) set to an
 * api_failure: -ECONNREFUSED/-EIO for connection problems, -EPROTO for TLS, -EFBIG for an
 * answer over 64 MiB, -EPIPE/-EIO when writing to `sink` failed (failure stays 0), -ENOMEM; then
 * resp->net says why (api_client_net_classify). */
int api_client_request(api_client *c, const char *method, const char *path, const char *json_body,
                       FILE *sink, api_client_response *resp, int *failure, char *err,
                       size_t errlen);

/* Length of an idempotency key made by api_client_idempotency_key_new, without the NUL. */
#define API_CLIENT_KEY_LEN 32

/* Fills key[keylen] (keylen > API_CLIENT_KEY_LEN) with a fresh key: 128 random bits from
 * getrandom(2) (or /dev/urandom where that is missing) as 32 lowercase hex digits and a NUL.
 * Returns 0, -EINVAL when keylen is too small, or -EIO when no randomness could be read. */
int api_client_idempotency_key_new(char *key, size_t keylen);

/* Checks that `key` is an Idempotency-Key antennad accepts: 1 to 255 printable ASCII characters,
 * none of them a space. Returns 0, or -EINVAL with what is wrong in err[errlen]. */
int api_client_idempotency_key_check(const char *key, char *err, size_t errlen);

/* Maps a libcurl result (a CURLcode) and the OS errno libcurl saw (CURLINFO_OS_ERRNO, 0 if none)
 * to an api_client_net value. Pure; CURLE_OK gives API_CLIENT_NET_NONE. */
int api_client_net_classify(int curl_code, int os_errno);

/* Names `net` for a message ("connection refused", "empty reply", ...). Static string. */
const char *api_client_net_name(int net);

/* The retry policy of job submissions, pure (no clock, no I/O). After attempt number `attempt`
 * (1 for the first) ended with `resp` (resp->net, resp->status, resp->retry_after), `elapsed`
 * seconds after the first attempt started, with `retry_for` seconds allowed in all, returns how
 * many seconds to wait before sending the same request again, or -1 to stop with this answer.
 *
 * Retried: API_CLIENT_NET_REFUSED, _UNREACHABLE, _TIMEOUT, _LOST, _EMPTY and _CUT (the request
 * may or may not have reached antennad; the Idempotency-Key makes a second arrival harmless), and
 * HTTP 503 (antennad stopping, or its disk full). Never retried: any other status, and
 * _RESOLVE, _TLS and _OTHER (a wrong URL, CA or certificate, or a local problem: the request was
 * never sent, and waiting does not fix it).
 *
 * Delay: 1 s after the first attempt, doubling to at most 16 s (1, 2, 4, 8, 16, 16 ...); a 503
 * with Retry-After waits what it says, at least 1 s and at most 30 s. No attempt starts more than
 * `retry_for` seconds after the first: a backoff delay is shortened to fit, and a Retry-After
 * that does not fit stops. retry_for <= 0 never retries. */
double api_client_retry_delay(const api_client_response *resp, unsigned attempt, double elapsed,
                              double retry_for);

/* Called by api_client_request_retry before it waits `delay` seconds and sends its request again
 * after attempt number `attempt` ended with `resp` (which says why: resp->net, or resp->status
 * with its body). `resp` is valid only during the call. */
typedef void api_client_retry_notify(void *ctx, const api_client_response *resp, unsigned attempt,
                                     double delay);

/* Like api_client_request without a sink, plus the header "Idempotency-Key: <idempotency_key>"
 * when that is non-NULL (checked with api_client_idempotency_key_check: -EINVAL with a message
 * otherwise, nothing sent). Sends the same method, path, body and key again while
 * api_client_retry_delay allows within `retry_for` seconds, calling notify(ctx, ...) (when
 * non-NULL) before each wait; sleeps on the calling thread. Returns what the last attempt
 * returned, with its answer in `resp` and its message in err[errlen]. Use it only for requests
 * that are safe to repeat: GETs, and POST /v1/jobs with an Idempotency-Key. */
int api_client_request_retry(api_client *c, const char *method, const char *path,
                             const char *json_body, const char *idempotency_key, double retry_for,
                             api_client_retry_notify *notify, void *ctx, api_client_response *resp,
                             int *failure, char *err, size_t errlen);

/* Parses resp->body as a JSON object. Returns a new reference (caller json_decref's), or NULL
 * when the body is not a JSON object. */
json_t *api_client_response_json(const api_client_response *resp);

/* Describes an answer that is not a success: from the API's {"error": {"code", "message"}} when
 * the body has it, else "the server answered HTTP <status> without a JSON error" plus the start
 * of the body. Control characters become spaces, long texts are cut with "...". Fills
 * code[codelen] (e.g. "not_found", or "http_<status>") and msg[msglen]. Never fails. */
void api_client_response_error(const api_client_response *resp, char *code, size_t codelen,
                               char *msg, size_t msglen);

#endif
