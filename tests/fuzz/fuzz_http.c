/* fuzz_http.c - libFuzzer target for the HTTP request path of http_server: request line,
 * headers, bodies (chunked or not), pipelining, limits and the on_headers hook.
 *
 * Runs the server's own parser code through http_server_parse_buffer (no socket, no TLS, no
 * loop), so it exercises the real code, not a copy. Never touches the network or the disk.
 * Input: byte 0 picks how the rest arrives (reads of 1..256 bytes, or all at once) and whether
 * the small limits apply; the rest is what a client sent on one connection, decrypted.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_server.h"
#include "log.h"

/* Answers at once (as the contract asks), looking at everything a handler may look at. */
static void fuzz_handler(http_request *req, void *arg)
{
    (void)arg;
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    const char *q = http_request_query(req);
    const char *path = http_request_path(req);
    const char *auth = http_request_header(req, "Authorization");
    size_t sum = strlen(q) + strlen(path) + (auth ? strlen(auth) : 0) +
                 strlen(http_request_method(req)) + strlen(http_request_peer(req));
    if (len > 0 && body[len] != '\0') abort(); /* bodies are NUL-terminated */
    char decoded[256];
    (void)http_percent_decode(q, strlen(q), decoded, sizeof decoded);
    if (sum & 1) (void)http_request_header_add(req, "X-Fuzz", "1");
    if (strncmp(path, "/echo", 5) == 0)
        http_request_respond(req, 200, "application/octet-stream", body, len);
    else
        http_request_respond_error(req, sum & 2 ? 404 : 200, "not_found", "no such route");
}

/* Refuses "/deny..." before its body, as api_headers refuses a missing token. */
static void fuzz_headers(http_request *req, void *arg)
{
    (void)arg;
    size_t len = 0;
    (void)http_request_body(req, &len);
    if (len != 0) abort(); /* no body byte is buffered before on_headers */
    if (strncmp(http_request_path(req), "/deny", 5) == 0)
        http_request_respond_error(req, 401, "unauthorized", "denied");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    log_min_level = LOG_ERROR + 1; /* quiet */
    if (size < 1) return 0;
    uint8_t mode = data[0];
    size_t chunk = (mode & 0x80) ? 0 : (size_t)(mode & 0x3f) * 4 + 1;
    http_server_options opt = {.port = 8443, .host = "127.0.0.1", .on_headers = fuzz_headers};
    if (mode & 0x40) {
        opt.max_header_bytes = 512;
        opt.max_body_bytes = 1024;
        opt.max_buffered_body_bytes = 700;
    }
    char *out = NULL;
    size_t out_len = 0;
    int n = http_server_parse_buffer(&opt, (const char *)data + 1, size - 1, chunk, fuzz_handler,
                                     NULL, &out, &out_len);
    if (n < 0 && n != -12 /* ENOMEM */) abort();
    if (out && strlen(out) > out_len) abort();
    free(out);
    return 0;
}
