/* http_server.h - HTTPS/1.1 server on libuv: TLS (OpenSSL, 1.2 minimum), keep-alive, limits.
 *
 * Parses with http_parser; never parses HTTP by hand. Runs on the event-loop thread only; never
 * blocks it. Requests on one connection are answered in order, one at a time (a pipelined request
 * waits for the previous response). Protocol errors get a JSON error response and close:
 * 400 malformed request, 413 body over the limit, 431 headers over the limit, 408 idle timeout
 * (close only). Stops either at once (http_server_close) or gracefully (http_server_shutdown).
 */
#ifndef ANTENNA_HTTP_SERVER_H
#define ANTENNA_HTTP_SERVER_H

#include <stddef.h>
#include <uv.h>

typedef struct http_server http_server;
typedef struct http_request http_request;

/* Called on the loop thread for each complete request. The handler must answer it exactly once
 * with http_request_respond, now or later (after uv_queue_work, say). */
typedef void (*http_handler_fn)(http_request *req, void *arg);

typedef struct http_server_options {
    const char *host;         /* e.g. "127.0.0.1" or "0.0.0.0" */
    int port;                 /* 0 = any free port (see http_server_port) */
    const char *cert_file;    /* PEM certificate chain */
    const char *key_file;     /* PEM private key */
    size_t max_header_bytes;  /* request line + headers; 0 = 16 KiB */
    size_t max_body_bytes;    /* 0 = 1 MiB */
    unsigned idle_timeout_ms; /* keep-alive idle close; 0 = 30 s */
    unsigned max_connections; /* 0 = 1024 */
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
const char *http_request_path(const http_request *req);   /* decoded path, no query */
const char *http_request_query(const http_request *req);  /* raw query after '?', or "" */
/* Header value by case-insensitive name, or NULL. */
const char *http_request_header(const http_request *req, const char *name);
/* Body bytes (NUL-terminated for convenience), and their length in *len. */
const char *http_request_body(const http_request *req, size_t *len);
/* The peer's address as text, e.g. "127.0.0.1:53412". */
const char *http_request_peer(const http_request *req);

/* Adds a response header to the answer of `req` (name and value are copied; CR/LF refused), with
 * any status: e.g. Retry-After on a 503. The headers the server writes itself (Content-Length,
 * Transfer-Encoding, Connection, Content-Type, Date, Server, Keep-Alive, Upgrade, Trailer) are
 * refused. Call before http_request_respond. Returns 0, -EINVAL or -ENOMEM. */
int http_request_header_add(http_request *req, const char *name, const char *value);

/* Answers `req` with `status`, a Content-Type and a body (copied). Adds Content-Length, Date and
 * Connection headers (Connection: close once http_server_shutdown ran). Call exactly once per
 * request, on the loop thread; `req` is invalid after. If the connection is gone meanwhile (the
 * client went away, http_server_close, the shutdown grace ran out) the response is dropped and
 * `req` freed: `req` stays valid until this call, even after the server's done callback ran. */
void http_request_respond(http_request *req, int status, const char *content_type, const char *body,
                          size_t len);

/* Convenience: answers with {"error": {"code": code, "message": message}}. */
void http_request_respond_error(http_request *req, int status, const char *code,
                                const char *message);

#endif
