/* api_client.h - the CLI's HTTPS connection to antennad (libcurl): one handle per process, reused
 * for keep-alive, Bearer-token auth, JSON bodies.
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
} api_client_response;

/* Kinds of transport failure, for the caller's hint (both are exit code 3 in the CLI). */
enum api_client_failure {
    API_CLIENT_FAIL_CONNECT = 1, /* DNS, refused, timeout, reset... */
    API_CLIENT_FAIL_TLS = 2,     /* handshake or certificate verification */
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
 * answer over 64 MiB, -EPIPE/-EIO when writing to `sink` failed (failure stays 0), -ENOMEM. */
int api_client_request(api_client *c, const char *method, const char *path, const char *json_body,
                       FILE *sink, api_client_response *resp, int *failure, char *err,
                       size_t errlen);

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
