/* http_server.h - HTTPS/1.1 server on libuv: TLS (OpenSSL, 1.2 minimum), keep-alive, limits.
 *
 * Parses with http_parser; never parses HTTP by hand. Runs on the event-loop thread only; never
 * blocks it. Requests on one connection are answered in order, one at a time (a pipelined request
 * waits for the previous response). Protocol errors get a JSON error response and close:
 * 400 malformed request (also: a request target that is neither origin-form nor absolute-form
 * naming this server, a second Content-Length or Authorization header), 505 an HTTP version
 * other than 1.0 and 1.1, 413 body over the limit, 431 headers over the limit, 503 when the bodies
 * being received on all connections would exceed their global bound; idle, handshake and request
 * timeouts close only. Every resource a client can make it hold is bounded: connections (overall
 * and per peer address), header and body bytes, buffered bodies overall, and the unsent answer
 * bytes of a connection (above their bound it stops reading and parsing that connection).
 * Stops either at once (http_server_close) or gracefully (http_server_shutdown).
 */
#ifndef ANTENNA_HTTP_SERVER_H
#define ANTENNA_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct http_server http_server;
typedef struct http_request http_request;

/* Called on the loop thread for each complete request. The handler must answer it exactly once
 * with http_request_respond, now or later (after uv_queue_work, say). */
typedef void (*http_handler_fn)(http_request *req, void *arg);

/* Called on the loop thread once the request line and headers of a request are complete, before
 * any byte of its body is buffered, with the handler's arg. Every accessor works but
 * http_request_body (empty at this point). It may answer the request itself, now (never later),
 * with http_request_respond: the server then sends that answer with Connection: close, never
 * buffers the body, never calls the handler for this request, and closes the connection. If it
 * does not answer, the request goes on as usual. */
typedef void (*http_headers_fn)(http_request *req, void *arg);

typedef struct http_server_options {
    const char *host;                  /* e.g. "127.0.0.1" or "0.0.0.0" */
    int port;                          /* 0 = any free port (see http_server_port) */
    const char *cert_file;             /* PEM certificate chain */
    const char *key_file;              /* PEM private key */
    size_t max_header_bytes;           /* request line + headers; 0 = 16 KiB */
    size_t max_body_bytes;             /* 0 = 1 MiB */
    unsigned idle_timeout_ms;          /* keep-alive idle close; 0 = 30 s */
    unsigned max_connections;          /* 0 = 1024 */
    unsigned max_connections_per_peer; /* per peer IP address; 0 = 32 (closed at once beyond) */
    unsigned handshake_timeout_ms;     /* TLS handshake done by then or closed; 0 = 5 s */
    unsigned request_timeout_ms;       /* a request complete within this of its first byte or
                                          the connection is closed; 0 = 10 s */
    size_t max_unsent_bytes;           /* per connection: above it, reading and parsing pause until
                                          the peer has taken the answers; 0 = 1 MiB */
    size_t max_buffered_body_bytes;    /* bodies received and not yet handed to the handler, summed
                                          over all connections (a known Content-Length counts in
                                          full at once); a request that would exceed it gets 503
                                          and a close; 0 = 64 MiB */
    http_headers_fn on_headers;        /* may be NULL; see http_headers_fn */
    bool no_access_log; /* true: no "access ..." line per answer (the metrics stay) */
} http_server_options;

/* Creates a server on `loop`, loads the certificate and key, binds and listens. Returns 0 and
 * sets *out, or a negative errno with a message in err (bad certificate, port in use, ...). */
int http_server_new(uv_loop_t *loop, const http_server_options *opt, http_handler_fn handler,
                    void *arg, http_server **out, char *err, size_t errlen);

/* The port the server listens on (useful with port 0). */
int http_server_port(const http_server *srv);

/* Stops listening and closes every connection at once; requests in flight may still be answered
 * (their responses are dropped, see http_request_respond). The memory is released once every
 * handle is closed; `done` (may be NULL) is then called with `arg` on the loop thread, never from
 * inside this call. Loop thread only. Accepts NULL.
 * During an http_server_shutdown (before its done ran) this cuts the grace short: what is still
 * open is closed now, and the shutdown's done fires as usual; this call's `done` and `arg` are
 * ignored (never called). After an earlier http_server_close it does nothing (`done` is ignored).
 * `srv` is invalid once a done callback ran. */
void http_server_close(http_server *srv, void (*done)(void *arg), void *arg);

/* Stops gracefully, for SIGTERM. At once: closes the listening socket (new connects are refused)
 * and every idle connection (no request under way; anything already queued is written first,
 * then a TLS close_notify if the handshake was done). A request already handed to the handler,
 * or already begun to arrive, is still answered: its response gets `Connection: close`, is
 * written out before the connection closes (like any closing answer it has min(idle timeout,
 * 5 s) to reach the client, and the grace), and pipelined requests behind it are never started
 * (the handler never sees them). When every connection is closed, or after `grace_ms` at
 * the latest (what is still open is then closed at once, orphaning unanswered requests; 0 means
 * on the loop's next turn), the memory is released and `done` (may be NULL) is called with `arg`
 * on the loop thread, never from inside this call. Loop thread only; a handler may call it.
 * Accepts NULL. A second call, or one after http_server_close, does nothing (its `grace_ms`,
 * `done` and `arg` are ignored); http_server_close after it force-closes (see above).
 * `srv` is invalid once done ran. */
void http_server_shutdown(http_server *srv, unsigned grace_ms, void (*done)(void *arg), void *arg);

/* Requests handed to the handler and not yet answered, on connections still open: a request
 * whose connection closed (client gone, http_server_close, grace over) no longer counts, though
 * its handler must still answer it. Loop thread only. 0 for NULL. */
unsigned http_server_requests_in_flight(const http_server *srv);

/* Request accessors: valid until http_request_respond. Strings are owned by the request. */
const char *http_request_method(const http_request *req); /* "GET", "POST", ... */
/* The path exactly as sent (not percent-decoded: "%2F" is not a separator), no query. Its
 * percent-escapes are well-formed and never encode NUL (else the request got 400). In an
 * absolute-form target naming this server, the path part. */
const char *http_request_path(const http_request *req);
const char *http_request_query(const http_request *req); /* raw query after '?', or "" */
/* Header value by case-insensitive name, or NULL. */
const char *http_request_header(const http_request *req, const char *name);
/* Body bytes (NUL-terminated for convenience), and their length in *len. */
const char *http_request_body(const http_request *req, size_t *len);
/* The peer's address as text, e.g. "127.0.0.1:53412". */
const char *http_request_peer(const http_request *req);

/* The request's id: the X-Request-Id it brought when well-formed (request_id_valid), else a fresh
 * one (request_id_make); set once its headers are in, sent back in its answer's X-Request-Id
 * header (protocol-error answers after the headers too) and written on its access-log line. */
const char *http_request_id(const http_request *req);

/* Names the request's route (a metrics_route_register id; 0 = "-", the default) and its user
 * (copied; "" = none), for its answer's metrics and access-log line. Call before answering. */
void http_request_route_set(http_request *req, int route);
void http_request_user_set(http_request *req, const char *user);

/* The handler's own data for one request: the on_headers hook may attach `data` (e.g. what it
 * learnt from the headers) for the handler to take with http_request_data_take. Data still
 * attached when the request is freed (its connection failed before the handler ran) is passed
 * to `drop` (may be NULL for data that needs no freeing). Setting again drops the previous data.
 * Loop thread only. */
void http_request_data_set(http_request *req, void *data, void (*drop)(void *data));
/* Returns the attached data (or NULL) and detaches it: the caller owns it now. */
void *http_request_data_take(http_request *req);

/* Adds a response header to the answer of `req` (name and value are copied; CR/LF refused), with
 * any status: e.g. Retry-After on a 503. The headers the server writes itself (Content-Length,
 * Transfer-Encoding, Connection, Content-Type, Date, Server, Keep-Alive, Upgrade, Trailer) are
 * refused. Call before http_request_respond. Returns 0, -EINVAL or -ENOMEM. */
int http_request_header_add(http_request *req, const char *name, const char *value);

/* Answers `req` with `status`, a Content-Type and a body (copied). Adds Content-Length, Date,
 * X-Request-Id and Connection headers (Connection: close once http_server_shutdown ran). Call
 * exactly once per request, on the loop thread; `req` is invalid after. If the connection is gone
 * meanwhile (the client went away, http_server_close, the shutdown grace ran out) the response is
 * dropped and `req` freed: `req` stays valid until this call, even after the server's done callback
 * ran. Counts the answer in the HTTP metrics (its route, status and latency from its first byte)
 * and writes one access-log line at INFO (unless no_access_log): "access ROUTE STATUS <n>B <us>us
 * peer=.. user=.." ending in its request id (ROUTE: "GET /v1/jobs/{id}", or "<METHOD> -"). */
void http_request_respond(http_request *req, int status, const char *content_type, const char *body,
                          size_t len);

/* Convenience: answers with {"error": {"code": code, "message": message}}. */
void http_request_respond_error(http_request *req, int status, const char *code,
                                const char *message);

/* Percent-decodes s[0..n) into out (room for `len` bytes with the NUL). Returns the decoded
 * length, or -EINVAL for a malformed escape or an escaped NUL, or -ENOSPC if it does not fit.
 * '+' is kept as is. Any thread. */
int http_percent_decode(const char *s, size_t n, char *out, size_t len);

/* For tests and the fuzzer: runs the server's real request parser over `data` (the decrypted
 * bytes a client sent on one connection; no socket, no TLS, no loop of the caller's) as if they
 * arrived in reads of at most `chunk` bytes (0 = all at once), with the limits and on_headers of
 * `opt` (host, port, cert_file, key_file are not used; port, if set, is the port absolute-form
 * targets must name) and `handler` (which must answer at once, inside the call). The bytes the
 * server would have sent (answers, 100 Continue) are put in *out (malloc'd, NUL-terminated, at
 * most 1 MiB kept, NULL if nothing was sent; caller frees; out may be NULL) and their length in
 * *out_len. Returns the number of requests handed to the handler, -EINVAL (no opt or handler) or
 * -ENOMEM. Needs no loop; thread-safe (every call has its own state). */
int http_server_parse_buffer(const http_server_options *opt, const char *data, size_t len,
                             size_t chunk, http_handler_fn handler, void *arg, char **out,
                             size_t *out_len);

#endif
