/* http_server.c - HTTPS/1.1 server on libuv + OpenSSL (memory BIOs) + http_parser.
 *
 * Never blocks the loop, never parses HTTP by hand, and never frees a connection outside its
 * libuv close callback. A request handed to the handler outlives its connection: if the
 * connection goes away first the request is orphaned (conn = NULL) and freed by respond.
 *
 * Life of a connection: OPEN (TLS handshake, requests) -> DRAINING (final response and TLS
 * close_notify queued, write side shut down, input discarded until EOF or a short linger) ->
 * CLOSING (uv_close on the socket and the timer; freed when both close callbacks ran).
 * One timer per connection: handshake_timeout_ms bounds the TLS handshake, request_timeout_ms
 * the arrival of a whole request from its first byte, idle_timeout_ms keep-alive idleness (and
 * the wait for a request's first byte); it only closes (no 408 answer). It is off while the
 * handler holds a request.
 *
 * Bounds: a connection whose answers wait unsent above max_unsent_bytes is neither read nor
 * parsed until the peer takes them (on_write resumes it); connections are counted overall and per
 * peer address (a small hash table, O(1) per accept); the bodies being received count against
 * one server-wide budget from their headers (a known Content-Length in full) until they are
 * handed to the handler. on_headers sees each request before its body: an answer there closes
 * the connection without buffering the body.
 *
 * http_server_parse_buffer runs this same connection code "detached": no socket, no TLS, no
 * timers; input is put straight into c->in and output goes to c->sink (the fuzzer and tests). The
 * process should ignore SIGPIPE; http_server_new does so if SIGPIPE is still at SIG_DFL.
 *
 * Graceful stop (http_server_shutdown): the listener closes at once; a connection with no request
 * under way goes straight to DRAINING (close_notify after anything still queued); one whose
 * request the handler holds, or whose request has begun to arrive, stays OPEN until that request
 * is answered, and the answer (Connection: close) takes it to DRAINING, so pipelined input behind
 * it is never parsed. A server timer force-closes (conn_abort) what is left after the grace; it is
 * closed early once the last connection is freed. The server is freed when the listener, the
 * grace timer and every connection are closed, as with http_server_close.
 */
#include "http_server.h"

#include "log.h"
#include "metrics.h"
#include "request_id.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define JOIN_MAX                 16384 /* answers up to this size leave in one TLS record */
#define DEFAULT_MAX_HEADER_BYTES (16u * 1024u)
#define DEFAULT_MAX_BODY_BYTES   (1024u * 1024u)
#define DEFAULT_IDLE_MS          30000u
#define DEFAULT_MAX_CONNECTIONS  1024u
#define LINGER_MAX_MS            5000u  /* how long a closing connection waits for the peer's EOF */
#define LINGER_STOPPING_MS       1000u  /* the same while the server shuts down */
#define IN_BACKLOG_MAX           65536u /* buffered input above which reading pauses */
#define SSL_READ_CHUNK           16384u
#define PEER_MAX                 64
#define DEFAULT_PER_PEER         32u
#define DEFAULT_HANDSHAKE_MS     5000u
#define DEFAULT_REQUEST_MS       10000u
#define DEFAULT_MAX_UNSENT       (1024u * 1024u)
#define DEFAULT_MAX_BUFFERED     (64u * 1024u * 1024u)
#define PEER_BUCKETS             256u
#define SINK_MAX                 (1024u * 1024u) /* output kept by http_server_parse_buffer */

enum conn_state { CONN_OPEN, CONN_DRAINING, CONN_CLOSING };

/* Why the parser paused: we pause at message begin and headers complete to learn exactly where
 * the request line and headers start and end (for the header limit), and at message complete
 * to hold pipelined requests until the current one is answered. */
enum pause_reason { PAUSE_NONE, PAUSE_BEGIN, PAUSE_HEADERS, PAUSE_MESSAGE };

typedef struct http_conn http_conn;

typedef struct http_header {
    char *name;
    size_t name_len;
    char *value;
    size_t value_len;
} http_header;

struct http_request {
    http_conn *conn; /* NULL once the connection is gone (the request is orphaned) */
    const char *method;
    char *url;
    size_t url_len;
    char *path;
    char *query;
    http_header *headers;
    size_t nheaders, cap_headers;
    bool field_continues; /* the last header name was cut at the end of an input buffer */
    char *body;
    size_t body_len, body_cap;
    bool keep_alive;
    bool head;
    bool early;  /* on_headers holds it: an answer now closes the connection */
    char *extra; /* response headers from http_request_header_add: "Name: value\r\n"... */
    size_t extra_len;
    char peer[PEER_MAX];
    int64_t start_us;             /* its first byte (metrics_now_us), for its latency */
    int route;                    /* metrics route id (http_request_route_set), 0 = "-" */
    char rid[REQUEST_ID_MAX + 1]; /* its request id, from its headers on ("" before) */
    char user[64];                /* who asked, for the access log (http_request_user_set) */
    bool no_access_log;           /* its server's no_access_log */
    void *data; /* http_request_data_set: the handler's, dropped with `drop` if never taken */
    void (*drop)(void *data);
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    int open_handles; /* tcp + timer until their close callbacks ran */
    http_server *srv;
    http_conn *prev, *next;
    enum conn_state state;
    bool counted; /* counts against max_connections */
    bool reading;
    bool in_pump;
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    http_parser parser;
    enum pause_reason pause;
    int cb_error;          /* HTTP status (413) or -ENOMEM set by a parser callback */
    const char *exec_end;  /* end of the buffer being parsed (see on_header_field) */
    bool in_headers;       /* between message begin and headers complete */
    size_t header_bytes;   /* request line + headers so far */
    http_request *cur;     /* request being parsed */
    http_request *waiting; /* request handed to the handler, not yet answered */
    char *in;              /* decrypted bytes not yet parsed: in[in_off..in_len) */
    size_t in_off, in_len, in_cap;
    size_t unsent;           /* bytes given to uv_write whose write callback has not run */
    size_t body_reserved;    /* this connection's share of srv->body_bytes */
    struct peer_count *pcnt; /* its peer address's connection count, or NULL */
    bool detached;           /* http_server_parse_buffer: no socket, TLS or timers */
    char *sink;              /* detached: what would have been sent */
    size_t sink_len;
    int dispatched; /* detached: requests handed to the handler */
    char peer[PEER_MAX];
};

/* Open connections from one peer address (family + raw address bytes). */
typedef struct peer_count {
    struct peer_count *next;
    int family;
    unsigned char addr[16];
    unsigned n;
    bool logged; /* its cap was hit; logged once until it drops below */
} peer_count;

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    SSL_CTX *ctx;
    http_handler_fn handler;
    void *arg;
    size_t max_header_bytes;
    size_t max_body_bytes;
    unsigned idle_ms;
    unsigned max_connections;
    unsigned max_per_peer;
    unsigned handshake_ms;
    unsigned request_ms;
    size_t max_unsent;
    size_t max_buffered;
    size_t body_bytes; /* bodies being received, over all connections (see body_reserved) */
    http_headers_fn on_headers;
    bool no_access_log;
    char host[64];                   /* the listen host, for absolute-form targets */
    peer_count *peers[PEER_BUCKETS]; /* connections per peer address */
    unsigned nconns;                 /* counted connections */
    unsigned nhandles;               /* listener + grace timer + every connection not yet freed */
    unsigned in_flight;              /* requests the handler holds, on connections still open */
    int port;
    bool closing;  /* not accepting; freed once nhandles reaches 0 */
    bool draining; /* http_server_shutdown ran: answers close their connection */
    bool grace_open;
    uv_timer_t grace;  /* http_server_shutdown's deadline; a handle only while grace_open */
    bool limit_logged; /* the connection limit was hit; logged once until a connection gets in */
    void (*done)(void *arg);
    void *done_arg;
    http_conn *conns;
    char readbuf[65536]; /* uv_read target; its bytes are copied into a BIO at once */
};

static void conn_pump(http_conn *c);
static void conn_abort(http_conn *c);
static void on_idle_timeout(uv_timer_t *t);

/* ---- small helpers ---------------------------------------------------------------------- */

static int str_append(char **s, size_t *len, const char *at, size_t n)
{
    char *p = realloc(*s, *len + n + 1);
    if (!p) return -ENOMEM;
    memcpy(p + *len, at, n);
    *len += n;
    p[*len] = '\0';
    *s = p;
    return 0;
}

static void request_free(http_request *req)
{
    if (!req) return;
    if (req->data && req->drop) req->drop(req->data);
    for (size_t i = 0; i < req->nheaders; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    free(req->headers);
    free(req->url);
    free(req->path);
    free(req->query);
    free(req->body);
    free(req->extra);
    free(req);
}

/* The Date header's value, formatted once per second (the loop thread is the only caller). */
static const char *format_date(void)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static char cached[64];
    static time_t cached_at = -1;
    time_t now = time(NULL);
    if (now == cached_at) return cached;
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(cached, sizeof cached, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    cached_at = now;
    return cached;
}

static const char *reason_phrase(int status)
{
    const char *r = http_status_str((enum http_status)status);
    return (!r || r[0] == '<') ? "Unknown" : r;
}

/* {"error":{"code":code,"message":message}} as a malloc'd string, or NULL. */
static char *error_json(const char *code, const char *message)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code ? code : "internal", "message",
                          message ? message : "");
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

int http_percent_decode(const char *s, size_t n, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return -EINVAL;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (out) {
            if (o + 1 >= len) return -ENOSPC;
            out[o] = ch;
        }
        o++;
    }
    if (out && len > 0) out[o < len ? o : len - 1] = '\0';
    return o > INT_MAX ? -ENOSPC : (int)o;
}

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct conn_write {
    uv_write_t req;
    http_conn *conn;
    size_t len;
    char data[];
} conn_write;

/* The connection's answers wait unsent above their bound: read and parse nothing more. */
static bool conn_backlogged(const http_conn *c)
{
    return c->unsent > c->srv->max_unsent;
}

static void on_write(uv_write_t *req, int status)
{
    conn_write *w = (conn_write *)req;
    http_conn *c = w->conn;
    bool was_backlogged = conn_backlogged(c);
    c->unsent -= w->len;
    free(w);
    if (c->state == CONN_CLOSING) return;
    if (status < 0) {
        LOG(LOG_DEBUG, "http: %s: write failed: %s", c->peer, uv_strerror(status));
        conn_abort(c);
        return;
    }
    /* Progress on the way out counts as activity. */
    if (c->state == CONN_OPEN && !c->waiting) uv_timer_again(&c->timer);
    /* Drained below the bound: parse what is buffered (pipelined requests) and read again. */
    if (was_backlogged && !conn_backlogged(c) && c->state == CONN_OPEN) conn_pump(c);
}

/* Sends whatever TLS put in the write BIO. Returns 0 or a negative errno. */
static int conn_flush_tls(http_conn *c)
{
    if (c->detached) return 0; /* conn_encrypt wrote to the sink */
    size_t pending = BIO_ctrl_pending(c->wbio);
    if (pending == 0 || c->state == CONN_CLOSING) return 0;
    conn_write *w = malloc(sizeof *w + pending);
    if (!w) return -ENOMEM;
    int n = BIO_read(c->wbio, w->data, (int)pending);
    if (n <= 0) {
        free(w);
        return -EIO;
    }
    w->conn = c;
    w->len = (size_t)n;
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)n);
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (r < 0) {
        free(w);
        return r;
    }
    c->unsent += (size_t)n;
    return 0;
}

/* Detached: keeps what would have been sent (up to SINK_MAX). Returns 0 or -ENOMEM. */
static int conn_sink(http_conn *c, const char *data, size_t len)
{
    if (c->sink_len + len > SINK_MAX) len = SINK_MAX - c->sink_len;
    return len ? str_append(&c->sink, &c->sink_len, data, len) : 0;
}

/* Encrypts `len` bytes into the write BIO (not flushed). Returns 0 or -EIO. */
static int conn_encrypt(http_conn *c, const char *data, size_t len)
{
    if (c->detached) return conn_sink(c, data, len);
    while (len > 0) {
        int chunk = len > (size_t)INT_MAX ? INT_MAX : (int)len;
        ERR_clear_error();
        int n = SSL_write(c->ssl, data, chunk);
        if (n <= 0) {
            ERR_clear_error();
            return -EIO;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Queues one full response; `extra` is "Name: value\r\n" lines (or NULL). Returns 0 or a
 * negative errno (the caller aborts). */
static int conn_send_response(http_conn *c, int status, const char *content_type, const char *body,
                              size_t len, bool keep_alive, bool head, const char *extra,
                              const char *rid)
{
    const char *date = format_date();
    char hdr[512];
    char length[48] = "";
    if (status == 204 || status == 304) {
        len = 0; /* these never carry a body (RFC 9110), nor a Content-Length here */
    } else {
        snprintf(length, sizeof length, "Content-Length: %zu\r\n", len);
    }
    if (!content_type || !content_type[0] || strpbrk(content_type, "\r\n") ||
        strlen(content_type) > 200)
        content_type = "application/octet-stream";
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\n"
                     "Server: antennad\r\n"
                     "Date: %s\r\n"
                     "Content-Type: %s\r\n"
                     "%s"
                     "Connection: %s\r\n"
                     "%s%s%s",
                     status, reason_phrase(status), date, content_type, length,
                     keep_alive ? "keep-alive" : "close", rid && rid[0] ? "X-Request-Id: " : "",
                     rid && rid[0] ? rid : "", rid && rid[0] ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof hdr) return -EINVAL;
    size_t extra_len = extra ? strlen(extra) : 0;
    size_t head_len = (size_t)n + extra_len + 2;
    /* A small body goes in the same buffer: one SSL_write, one TLS record for the answer. */
    bool joined = !head && len > 0 && len <= JOIN_MAX;
    char *buf = malloc(head_len + (joined ? len : 0));
    if (!buf) return -ENOMEM;
    memcpy(buf, hdr, (size_t)n);
    if (extra_len) memcpy(buf + n, extra, extra_len);
    memcpy(buf + (size_t)n + extra_len, "\r\n", 2);
    if (joined) memcpy(buf + head_len, body, len);
    int r = conn_encrypt(c, buf, head_len + (joined ? len : 0));
    free(buf);
    if (r == 0 && !head && !joined && len > 0) r = conn_encrypt(c, body, len);
    if (r == 0) r = conn_flush_tls(c);
    return r;
}

/* ---- closing ---------------------------------------------------------------------------- */

static void server_maybe_done(http_server *srv)
{
    if (!srv->closing || srv->nhandles > 0) return;
    void (*done)(void *) = srv->done;
    void *arg = srv->done_arg;
    SSL_CTX_free(srv->ctx);
    free(srv);
    if (done) done(arg);
}

static void on_grace_close(uv_handle_t *h)
{
    http_server *srv = h->data;
    srv->nhandles--;
    server_maybe_done(srv);
}

/* Closes the grace timer of a draining server once no connection is left (or at once if
 * `force`). */
static void server_grace_stop(http_server *srv, bool force)
{
    if (!srv->grace_open || (!force && srv->conns)) return;
    srv->grace_open = false;
    uv_timer_stop(&srv->grace);
    uv_close((uv_handle_t *)&srv->grace, on_grace_close);
}

/* Gives back c's share of the server-wide body budget. */
static void conn_body_release(http_conn *c)
{
    c->srv->body_bytes -= c->body_reserved;
    c->body_reserved = 0;
}

/* Takes `n` more bytes of the server-wide body budget for c. Returns 0, or -1 if that would
 * exceed it (nothing taken). */
static int conn_body_reserve(http_conn *c, size_t n)
{
    http_server *srv = c->srv;
    if (n > srv->max_buffered - srv->body_bytes) return -1;
    srv->body_bytes += n;
    c->body_reserved += n;
    return 0;
}

static unsigned peer_hash(int family, const unsigned char *addr)
{
    uint32_t h = 2166136261u ^ (uint32_t)family;
    for (int i = 0; i < 16; i++)
        h = (h ^ addr[i]) * 16777619u;
    return h % PEER_BUCKETS;
}

/* Counts one more connection from c's peer address (which must be known). Returns 0, -EBUSY
 * if that address already has max_per_peer, or -ENOMEM. */
static int conn_peer_take(http_conn *c, int family, const unsigned char addr[16])
{
    http_server *srv = c->srv;
    peer_count **slot = &srv->peers[peer_hash(family, addr)];
    peer_count *pc = *slot;
    while (pc && (pc->family != family || memcmp(pc->addr, addr, 16) != 0))
        pc = pc->next;
    if (!pc) {
        pc = calloc(1, sizeof *pc);
        if (!pc) return -ENOMEM;
        pc->family = family;
        memcpy(pc->addr, addr, 16);
        pc->next = *slot;
        *slot = pc;
    }
    if (pc->n >= srv->max_per_peer) {
        if (!pc->logged)
            LOG(LOG_WARN, "http: %s has %u connections open (the per-peer limit); refusing more",
                c->peer, pc->n);
        pc->logged = true;
        return -EBUSY;
    }
    pc->logged = false;
    pc->n++;
    c->pcnt = pc;
    return 0;
}

/* Gives back c's place in its peer address's count; frees the entry at 0. */
static void conn_peer_release(http_conn *c)
{
    peer_count *pc = c->pcnt;
    if (!pc) return;
    c->pcnt = NULL;
    if (--pc->n > 0) return;
    peer_count **slot = &c->srv->peers[peer_hash(pc->family, pc->addr)];
    while (*slot != pc)
        slot = &(*slot)->next;
    *slot = pc->next;
    free(pc);
}

/* The handler no longer holds c's request for this connection (answered, or orphaned). */
static void conn_unwait(http_conn *c)
{
    if (!c->waiting) return;
    c->waiting = NULL;
    c->srv->in_flight--;
}

static void conn_free(http_conn *c)
{
    http_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    SSL_free(c->ssl);
    request_free(c->cur);
    conn_body_release(c);
    conn_peer_release(c);
    free(c->in);
    free(c->sink);
    free(c);
    srv->nhandles--;
    server_grace_stop(srv, false);
    server_maybe_done(srv);
}

static void on_conn_close(uv_handle_t *h)
{
    http_conn *c = h->data;
    if (--c->open_handles == 0) conn_free(c);
}

/* Closes at once: stops all I/O, orphans a waiting request; memory goes in the close callback. */
static void conn_abort(http_conn *c)
{
    if (c->state == CONN_CLOSING) return;
    c->state = CONN_CLOSING;
    if (c->waiting) {
        c->waiting->conn = NULL;
        conn_unwait(c);
    }
    if (c->counted) {
        c->counted = false;
        c->srv->nconns--;
        metrics_connections_add(-1);
    }
    if (c->detached) return; /* http_server_parse_buffer frees it */
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_close);
    uv_close((uv_handle_t *)&c->tcp, on_conn_close);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    http_conn *c = req->data;
    if (c->state == CONN_CLOSING) return;
    /* Write side is done; keep reading until the peer's EOF (or the linger timer), so
     * unread input does not turn our close into a reset that eats the response. */
    if (status < 0) conn_abort(c);
}

static void conn_start_reading(http_conn *c);

static void on_linger_timeout(uv_timer_t *t)
{
    conn_abort(t->data);
}

/* Closes gracefully: flushes what is queued, sends close_notify (if `tls_notify`), shuts the
 * write side and waits a little for the peer to close. */
static void conn_finish(http_conn *c, bool tls_notify)
{
    if (c->state != CONN_OPEN) return;
    c->state = CONN_DRAINING;
    if (c->counted) {
        c->counted = false;
        c->srv->nconns--;
        metrics_connections_add(-1);
    }
    if (c->detached) return; /* input after this is ignored, as on a socket */
    if (tls_notify) {
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl);
        ERR_clear_error();
    }
    int r = conn_flush_tls(c);
    if (r == 0) {
        c->shutdown_req.data = c;
        r = uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown);
    }
    if (r < 0) {
        conn_abort(c);
        return;
    }
    unsigned linger = c->srv->idle_ms < LINGER_MAX_MS ? c->srv->idle_ms : LINGER_MAX_MS;
    /* while the server stops, a peer that keeps its end open only delays the exit */
    if (c->srv->closing && linger > LINGER_STOPPING_MS) linger = LINGER_STOPPING_MS;
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_linger_timeout, linger, 0);
    conn_start_reading(c);
}

/* Answers a protocol error with a JSON body (and `extra` header lines, may be NULL) and closes. */
static void conn_fail_with(http_conn *c, int status, const char *code, const char *message,
                           const char *extra)
{
    LOG(LOG_DEBUG, "http: %s: %d %s: %s", c->peer, status, code, message);
    char rid[REQUEST_ID_MAX + 1] = "";
    if (c->cur) memcpy(rid, c->cur->rid, sizeof rid);
    metrics_http_observe(0, status, c->cur ? metrics_now_us() - c->cur->start_us : -1);
    request_free(c->cur);
    c->cur = NULL;
    conn_body_release(c);
    char *body = error_json(code, message);
    int r = body ? conn_send_response(c, status, "application/json", body, strlen(body), false,
                                      false, extra, rid)
                 : -ENOMEM;
    free(body);
    if (r < 0)
        conn_abort(c);
    else
        conn_finish(c, true);
}

static void conn_fail(http_conn *c, int status, const char *code, const char *message)
{
    conn_fail_with(c, status, code, message, NULL);
}

/* The body budget of all connections is spent: 503 with Retry-After, and close. */
static void conn_fail_busy(http_conn *c)
{
    conn_fail_with(c, 503, "unavailable",
                   "the server is receiving too many request bodies at once; retry in a moment",
                   "Retry-After: 1\r\n");
}

/* ---- parser callbacks ------------------------------------------------------------------- */

static int on_message_begin(http_parser *p)
{
    http_conn *c = p->data;
    request_free(c->cur);
    conn_body_release(c);
    c->cur = calloc(1, sizeof *c->cur);
    if (!c->cur) {
        c->cb_error = -ENOMEM;
        return -1;
    }
    memcpy(c->cur->peer, c->peer, sizeof c->peer);
    c->cur->start_us = metrics_now_us();
    c->cur->no_access_log = c->srv->no_access_log;
    c->pause = PAUSE_BEGIN;
    http_parser_pause(p, 1);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (str_append(&c->cur->url, &c->cur->url_len, at, len) < 0) {
        c->cb_error = -ENOMEM;
        return -1;
    }
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    http_request *req = c->cur;
    /* A name split across two input buffers arrives in two calls; two calls within one buffer
     * are two headers (the first had an empty value, which gets no value callback). */
    if (!req->field_continues || req->nheaders == 0) {
        if (req->nheaders == req->cap_headers) {
            size_t cap = req->cap_headers ? req->cap_headers * 2 : 16;
            http_header *h = realloc(req->headers, cap * sizeof *h);
            if (!h) goto fail_nomem;
            req->headers = h;
            req->cap_headers = cap;
        }
        http_header *h = &req->headers[req->nheaders];
        memset(h, 0, sizeof *h);
        h->value = calloc(1, 1);
        if (!h->value) goto fail_nomem;
        req->nheaders++;
    }
    http_header *h = &req->headers[req->nheaders - 1];
    if (str_append(&h->name, &h->name_len, at, len) < 0) goto fail_nomem;
    req->field_continues = (at + len == c->exec_end);
    return 0;

fail_nomem:
    c->cb_error = -ENOMEM;
    return -1;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    http_request *req = c->cur;
    req->field_continues = false;
    if (req->nheaders == 0) return 0;
    http_header *h = &req->headers[req->nheaders - 1];
    if (str_append(&h->value, &h->value_len, at, len) < 0) {
        c->cb_error = -ENOMEM;
        return -1;
    }
    return 0;
}

/* The request keeps a well-formed X-Request-Id it brings (request_id_valid); any other gets a
 * fresh id, never an echo of what it sent. */
static void request_id_take(http_request *req)
{
    const char *x = http_request_header(req, "X-Request-Id");
    if (request_id_valid(x))
        memcpy(req->rid, x, strlen(x) + 1);
    else
        request_id_make(req->rid, sizeof req->rid);
}

static int on_headers_complete(http_parser *p)
{
    http_conn *c = p->data;
    http_request *req = c->cur;
    req->field_continues = false;
    req->method = http_method_str((enum http_method)p->method);
    req->head = p->method == HTTP_HEAD;
    req->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    for (size_t i = 0; i < req->nheaders; i++) {
        http_header *h = &req->headers[i];
        while (h->value_len > 0 &&
               (h->value[h->value_len - 1] == ' ' || h->value[h->value_len - 1] == '\t'))
            h->value[--h->value_len] = '\0';
    }
    request_id_take(req);
    c->pause = PAUSE_HEADERS;
    http_parser_pause(p, 1);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    http_request *req = c->cur;
    if (len > c->srv->max_body_bytes - req->body_len) {
        c->cb_error = 413;
        return -1;
    }
    /* A chunked body (or one longer than announced: never) takes the budget as it comes. */
    if (req->body_len + len > c->body_reserved &&
        conn_body_reserve(c, req->body_len + len - c->body_reserved) < 0) {
        c->cb_error = 503;
        return -1;
    }
    if (req->body_len + len + 1 > req->body_cap) {
        /* Grows with the bytes that came, not with what Content-Length promises. */
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_len + len + 1)
            cap *= 2;
        if (cap > c->srv->max_body_bytes + 1) cap = c->srv->max_body_bytes + 1;
        char *b = realloc(req->body, cap);
        if (!b) {
            c->cb_error = -ENOMEM;
            return -1;
        }
        req->body = b;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, at, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
    return 0;
}

/* A chunk's size line is in (http_parser keeps the size in content_length): a chunk that cannot
 * fit under the body limit is refused now, not after max_body_bytes of it were read. */
static int on_chunk_header(http_parser *p)
{
    http_conn *c = p->data;
    const http_request *req = c->cur;
    if (p->content_length > c->srv->max_body_bytes - req->body_len) {
        c->cb_error = 413;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_conn *c = p->data;
    c->pause = PAUSE_MESSAGE;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

/* ---- request dispatch ------------------------------------------------------------------- */

/* True if host[0..n) (as in an absolute-form target) names this server: its listen host, the
 * address the connection came in on, or "localhost" when that address is a loopback one. */
static bool host_is_ours(const http_conn *c, const char *host, size_t n)
{
    const http_server *srv = c->srv;
    char local[INET6_ADDRSTRLEN] = "";
    bool loopback = strcmp(srv->host, "127.0.0.1") == 0 || strcmp(srv->host, "::1") == 0;
    if (!c->detached) {
        struct sockaddr_storage ss;
        int len = sizeof ss;
        if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET) {
                const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
                uv_ip4_name(a, local, sizeof local);
                loopback = loopback || (ntohl(a->sin_addr.s_addr) >> 24) == 127;
            } else if (ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
                uv_ip6_name(a, local, sizeof local);
                loopback = loopback || IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
            }
        }
    }
    const char *names[] = {srv->host, local, loopback ? "localhost" : ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i][0] && strlen(names[i]) == n && strncasecmp(names[i], host, n) == 0)
            return true;
    return false;
}

/* Fills path and query from the URL: origin-form ("/path?query"), or absolute-form naming this
 * server ("https://host:port/path"). The path is kept as sent, its escapes checked. Returns 0,
 * -EINVAL (bad target), -EXDEV (absolute-form naming another server) or -ENOMEM. */
static int request_split_url(http_conn *c, http_request *req)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (!req->url || http_parser_parse_url(req->url, req->url_len, 0, &u) != 0) return -EINVAL;
    if (req->url[0] != '/') {
        /* absolute-form: https, our host and our port (443 if none is given) */
        if (!(u.field_set & (1 << UF_SCHEMA)) || !(u.field_set & (1 << UF_HOST)) ||
            u.field_data[UF_SCHEMA].len != 5 ||
            strncasecmp(req->url + u.field_data[UF_SCHEMA].off, "https", 5) != 0 ||
            (u.field_set & (1 << UF_USERINFO)))
            return -EXDEV;
        int port = (u.field_set & (1 << UF_PORT)) ? u.port : 443;
        if (port != c->srv->port ||
            !host_is_ours(c, req->url + u.field_data[UF_HOST].off, u.field_data[UF_HOST].len))
            return -EXDEV;
    }
    if (u.field_set & (1 << UF_PATH)) {
        const char *path = req->url + u.field_data[UF_PATH].off;
        size_t plen = u.field_data[UF_PATH].len;
        if (http_percent_decode(path, plen, NULL, 0) < 0) return -EINVAL;
        req->path = strndup(path, plen);
    } else {
        req->path = strdup("/");
    }
    if (!req->path) return -ENOMEM;
    if (u.field_set & (1 << UF_QUERY))
        req->query = strndup(req->url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    else
        req->query = strdup("");
    return req->query ? 0 : -ENOMEM;
}

/* Hands the complete request to the handler. The parser stays paused until it is answered. */
static void conn_dispatch(http_conn *c)
{
    http_request *req = c->cur;
    c->cur = NULL;
    conn_body_release(c); /* handed off */
    if (!req->body) {
        req->body = calloc(1, 1);
        if (!req->body) {
            request_free(req);
            conn_abort(c);
            return;
        }
    }
    req->conn = c;
    c->waiting = req;
    c->srv->in_flight++;
    c->dispatched++;
    if (!c->detached) uv_timer_stop(&c->timer);
    c->srv->handler(req, c->srv->arg);
}

/* The number of headers named `name` (case-insensitive). */
static size_t request_header_count(const http_request *req, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        if (req->headers[i].name && strcasecmp(req->headers[i].name, name) == 0) n++;
    return n;
}

/* Checks what the request line and headers say: the version, the target, no header that may
 * appear once appearing twice. Fills the request's path and query. Returns 0 to go on, -1 if
 * the connection failed (answered and closing, or aborted). */
static int conn_check_request(http_conn *c)
{
    http_parser *p = &c->parser;
    http_request *req = c->cur;
    if (p->http_major != 1 || p->http_minor > 1) {
        conn_fail(c, 505, "http_version_not_supported",
                  "only HTTP/1.1 and HTTP/1.0 are supported; send HTTP/1.1");
        return -1;
    }
    if (p->method == HTTP_CONNECT) {
        conn_fail(c, 400, "bad_request", "CONNECT is not supported by this server");
        return -1;
    }
    static const char *const once[] = {"Content-Length", "Authorization", "Host",
                                       "Transfer-Encoding"};
    for (size_t i = 0; i < sizeof once / sizeof once[0]; i++) {
        if (request_header_count(req, once[i]) > 1) {
            char msg[160];
            snprintf(msg, sizeof msg, "the %s header appears more than once; send it once",
                     once[i]);
            conn_fail(c, 400, "bad_request", msg);
            return -1;
        }
    }
    int r = request_split_url(c, req);
    if (r == -ENOMEM) {
        conn_abort(c);
        return -1;
    }
    if (r == -EXDEV) {
        conn_fail(c, 400, "bad_request",
                  "the request target names another server; send the path only (\"/v1/...\")");
        return -1;
    }
    if (r < 0) {
        conn_fail(c, 400, "bad_request",
                  "the request target is not a valid path (it must start with '/'; check its "
                  "percent-escapes)");
        return -1;
    }
    return 0;
}

/* Lets on_headers see the request before its body. Returns 0 to go on, -1 if it answered (the
 * connection is closing). */
static int conn_early_hook(http_conn *c)
{
    http_server *srv = c->srv;
    http_request *req = c->cur;
    if (!srv->on_headers) return 0;
    if (!req->body) {
        req->body = calloc(1, 1);
        if (!req->body) {
            conn_abort(c);
            return -1;
        }
    }
    req->conn = c;
    req->early = true;
    srv->on_headers(req, srv->arg);
    if (c->cur != req) return -1; /* answered: http_request_respond closes the connection */
    req->early = false;
    req->conn = NULL;
    return 0;
}

/* Checks the limits once the headers are in; answers 100 Continue if the client asks. Returns
 * 0 to go on, -1 if the connection failed. */
static int conn_headers_done(http_conn *c)
{
    http_server *srv = c->srv;
    http_parser *p = &c->parser;
    c->in_headers = false;
    if (c->header_bytes > srv->max_header_bytes) {
        conn_fail(c, 431, "headers_too_large",
                  "the request line and headers are too large; send fewer or shorter headers");
        return -1;
    }
    if (conn_check_request(c) < 0) return -1;
    bool chunked = p->flags & F_CHUNKED;
    if (!chunked && p->content_length != ULLONG_MAX && p->content_length > srv->max_body_bytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "the request body is larger than the %zu-byte limit",
                 srv->max_body_bytes);
        conn_fail(c, 413, "body_too_large", msg);
        return -1;
    }
    if (conn_early_hook(c) < 0) return -1;
    /* A body of known length takes its whole share of the budget now. */
    if (!chunked && p->content_length != ULLONG_MAX && p->content_length > 0 &&
        conn_body_reserve(c, (size_t)p->content_length) < 0) {
        conn_fail_busy(c);
        return -1;
    }
    const char *expect = http_request_header(c->cur, "Expect");
    bool has_body = chunked || (p->content_length != ULLONG_MAX && p->content_length > 0);
    if (expect && strcasecmp(expect, "100-continue") == 0 && has_body && p->http_major == 1 &&
        p->http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (conn_encrypt(c, cont, sizeof cont - 1) < 0 || conn_flush_tls(c) < 0) {
            conn_abort(c);
            return -1;
        }
    }
    return 0;
}

/* Parses buffered input once. Returns 0 to go on, -1 if the connection failed. */
static int conn_parse(http_conn *c)
{
    http_server *srv = c->srv;
    c->pause = PAUSE_NONE;
    c->cb_error = 0;
    c->exec_end = c->in + c->in_len;
    size_t n =
        http_parser_execute(&c->parser, &parser_settings, c->in + c->in_off, c->in_len - c->in_off);
    c->in_off += n;
    if (c->in_off == c->in_len) c->in_off = c->in_len = 0;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

    if (e == HPE_PAUSED) {
        switch (c->pause) {
        case PAUSE_BEGIN:
            c->in_headers = true;
            c->header_bytes = 1; /* the method's first byte */
            http_parser_pause(&c->parser, 0);
            /* the whole request must now arrive within request_ms (slowloris) */
            if (!c->detached) uv_timer_start(&c->timer, on_idle_timeout, srv->request_ms, 0);
            return 0;
        case PAUSE_HEADERS:
            c->header_bytes += n + 1; /* + the final LF, consumed on resume */
            http_parser_pause(&c->parser, 0);
            return conn_headers_done(c);
        case PAUSE_MESSAGE:
            conn_dispatch(c); /* stays paused until http_request_respond */
            return c->state == CONN_OPEN ? 0 : -1;
        default:
            conn_abort(c);
            return -1;
        }
    }
    if (e != HPE_OK) {
        if (c->cb_error == -ENOMEM) {
            conn_abort(c);
        } else if (c->cb_error == 503) {
            conn_fail_busy(c);
        } else if (c->cb_error == 413) {
            char msg[160];
            snprintf(msg, sizeof msg, "the request body is larger than the %zu-byte limit",
                     srv->max_body_bytes);
            conn_fail(c, 413, "body_too_large", msg);
        } else if (e == HPE_HEADER_OVERFLOW) {
            conn_fail(c, 431, "headers_too_large",
                      "the request line and headers are too large; send fewer or shorter headers");
        } else {
            char msg[160];
            snprintf(msg, sizeof msg, "malformed HTTP request: %s", http_errno_description(e));
            conn_fail(c, 400, "bad_request", msg);
        }
        return -1;
    }
    if (c->in_headers) {
        c->header_bytes += n;
        if (c->header_bytes > srv->max_header_bytes) {
            conn_fail(c, 431, "headers_too_large",
                      "the request line and headers are too large; send fewer or shorter headers");
            return -1;
        }
    }
    return 0;
}

/* ---- reading ---------------------------------------------------------------------------- */

/* Decrypts what the read BIO holds into c->in. Returns 1 if bytes came, 0 if TLS needs more
 * input, -1 if the connection is over and the caller must abort it (peer closed, ENOMEM), or
 * -2 if TLS failed (bad handshake, plain HTTP, corrupt record) and the connection is already
 * closing (any alert is sent first, never an HTTP answer). */
static int conn_decrypt(http_conn *c)
{
    if (c->detached) return 0; /* http_server_parse_buffer puts its input in c->in itself */
    if (c->in_cap - c->in_len < SSL_READ_CHUNK) {
        if (c->in_off > 0) {
            memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
            c->in_len -= c->in_off;
            c->in_off = 0;
        }
        if (c->in_cap - c->in_len < SSL_READ_CHUNK) {
            size_t cap = c->in_len + SSL_READ_CHUNK;
            char *p = realloc(c->in, cap);
            if (!p) return -1;
            c->in = p;
            c->in_cap = cap;
        }
    }
    bool was_init = SSL_is_init_finished(c->ssl);
    ERR_clear_error();
    int n = SSL_read(c->ssl, c->in + c->in_len, (int)(c->in_cap - c->in_len));
    if (!was_init && SSL_is_init_finished(c->ssl) && c->state == CONN_OPEN)
        /* handshake done: the idle timeout now runs (until a request's first byte) */
        uv_timer_start(&c->timer, on_idle_timeout, c->srv->idle_ms, c->srv->idle_ms);
    if (n > 0) {
        c->in_len += (size_t)n;
        return 1;
    }
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_READ) {
        /* Handshake messages or session tickets may be waiting to go out. */
        if (conn_flush_tls(c) < 0) return -1;
        return 0;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        return -1;
    }
    char why[160] = "";
    ERR_error_string_n(ERR_peek_last_error(), why, sizeof why);
    ERR_clear_error();
    LOG(LOG_DEBUG, "http: %s: TLS %s failed: %s", c->peer, was_init ? "read" : "handshake", why);
    /* Send the alert, if any, and close without a response. */
    if (c->state == CONN_OPEN) {
        conn_finish(c, false);
        return -2;
    }
    return -1;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    http_conn *c = h->data;
    buf->base = c->srv->readbuf;
    buf->len = sizeof c->srv->readbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    http_conn *c = s->data;
    if (c->state == CONN_CLOSING) return;
    if (nread < 0) {
        if (nread != UV_EOF)
            LOG(LOG_DEBUG, "http: %s: read failed: %s", c->peer, uv_strerror((int)nread));
        conn_abort(c);
        return;
    }
    if (nread == 0 || c->state == CONN_DRAINING) return;
    if (BIO_write(c->rbio, buf->base, (int)nread) != (int)nread) {
        conn_abort(c);
        return;
    }
    conn_pump(c);
}

static void conn_start_reading(http_conn *c)
{
    if (c->reading || c->state == CONN_CLOSING || c->detached) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
}

/* Reads while there is room: a request waiting for its answer may let pipelined input pile
 * up to IN_BACKLOG_MAX, then reading pauses until the answer; answers waiting unsent above
 * max_unsent pause it until they drain (on_write). */
static void conn_update_reading(http_conn *c)
{
    if (c->state != CONN_OPEN || c->detached) return;
    size_t backlog = (c->in_len - c->in_off) + BIO_ctrl_pending(c->rbio);
    if ((c->waiting && backlog >= IN_BACKLOG_MAX) || conn_backlogged(c)) {
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = false;
        }
    } else {
        conn_start_reading(c);
    }
}

/* Decrypts and parses until TLS needs more input, a request waits for its answer or the
 * answers wait unsent above their bound. A handler
 * that answers at once re-enters through http_request_respond, which only sets state: this
 * loop then carries on with the next pipelined request. */
static void conn_pump(http_conn *c)
{
    if (c->in_pump) return;
    c->in_pump = true;
    while (c->state == CONN_OPEN && !c->waiting && !conn_backlogged(c)) {
        if (c->in_off < c->in_len) {
            if (conn_parse(c) < 0) break;
            continue;
        }
        int r = conn_decrypt(c);
        if (r == 0) break;
        if (r < 0) {
            if (r == -1) conn_abort(c);
            break;
        }
    }
    c->in_pump = false;
    if (c->state == CONN_OPEN && conn_flush_tls(c) < 0) conn_abort(c);
    conn_update_reading(c);
}

/* ---- timers and accepting --------------------------------------------------------------- */

/* Idle (or a request, or the handshake, that did not arrive in time): close only, no 408 answer
 * (a client may be reusing the connection at this very moment). */
static void on_idle_timeout(uv_timer_t *t)
{
    http_conn *c = t->data;
    if (c->state != CONN_OPEN || c->waiting) return;
    conn_abort(c);
}

/* Names the peer in c->peer and gives its address as family + 16 raw bytes (zero-padded).
 * Returns 0, or -1 if the address is unknown. */
static int conn_set_peer(http_conn *c, int *family, unsigned char addr[16])
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    snprintf(c->peer, sizeof c->peer, "?");
    memset(addr, 0, 16);
    *family = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
        memcpy(addr, &a->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
        memcpy(addr, &a->sin6_addr, 16);
    } else {
        return -1;
    }
    *family = ss.ss_family;
    return 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server *srv = listener->data;
    if (status < 0) {
        LOG(LOG_WARN, "http: accept failed: %s", uv_strerror(status));
        return;
    }
    http_conn *c = calloc(1, sizeof *c);
    if (!c) {
        LOG(LOG_WARN, "http: out of memory accepting a connection");
        return;
    }
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    srv->nhandles++;

    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_abort(c);
        return;
    }
    int family;
    unsigned char addr[16];
    if (conn_set_peer(c, &family, addr) < 0 || conn_peer_take(c, family, addr) < 0) {
        conn_abort(c); /* over its peer's cap (logged), or an address we cannot count */
        return;
    }
    if (srv->nconns >= srv->max_connections) {
        if (!srv->limit_logged)
            LOG(LOG_WARN, "http: %u connections open (the limit); refusing new ones", srv->nconns);
        srv->limit_logged = true;
        conn_abort(c);
        return;
    }
    srv->limit_logged = false;
    c->counted = true;
    srv->nconns++;
    metrics_connections_add(1);
    uv_tcp_nodelay(&c->tcp, 1);

    c->ssl = SSL_new(srv->ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rbio || !c->wbio) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->rbio = c->wbio = NULL;
        conn_abort(c);
        return;
    }
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;

    /* the TLS handshake must be done by then (conn_decrypt then starts the idle timeout) */
    uv_timer_start(&c->timer, on_idle_timeout, srv->handshake_ms, 0);
    conn_start_reading(c);
    if (!c->reading) conn_abort(c);
}

static void on_listener_close(uv_handle_t *h)
{
    http_server *srv = h->data;
    srv->nhandles--;
    server_maybe_done(srv);
}

/* ---- public ----------------------------------------------------------------------------- */

/* The limits added for issue 8 (per peer, handshake and request timeouts, backpressure, body
 * budget, on_headers), with their defaults; the older ones are set by the caller. */
static void server_set_limits(http_server *srv, const http_server_options *opt)
{
    srv->max_per_peer =
        opt->max_connections_per_peer ? opt->max_connections_per_peer : DEFAULT_PER_PEER;
    srv->handshake_ms =
        opt->handshake_timeout_ms ? opt->handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
    srv->request_ms = opt->request_timeout_ms ? opt->request_timeout_ms : DEFAULT_REQUEST_MS;
    /* neither is longer than the idle timeout, which used to bound both */
    if (srv->handshake_ms > srv->idle_ms) srv->handshake_ms = srv->idle_ms;
    if (srv->request_ms > srv->idle_ms) srv->request_ms = srv->idle_ms;
    srv->max_unsent = opt->max_unsent_bytes ? opt->max_unsent_bytes : DEFAULT_MAX_UNSENT;
    srv->max_buffered =
        opt->max_buffered_body_bytes ? opt->max_buffered_body_bytes : DEFAULT_MAX_BUFFERED;
    srv->on_headers = opt->on_headers;
    srv->no_access_log = opt->no_access_log;
    snprintf(srv->host, sizeof srv->host, "%s",
             opt->host && strcmp(opt->host, "localhost") != 0 ? opt->host : "127.0.0.1");
}

static int listen_socket(const char *host, int port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sslen;
    if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
    if (strchr(host, ':')) {
        if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) goto fail_host;
        sslen = sizeof(struct sockaddr_in6);
    } else {
        if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0) goto fail_host;
        sslen = sizeof(struct sockaddr_in);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot create a socket: %s", strerror(e));
        return -e;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 511) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on %s port %d: %s%s", host, port, strerror(e),
                 e == EADDRINUSE ? " (another process uses it; pick another port)" : "");
        close(fd);
        return -e;
    }
    return fd;

fail_host:
    snprintf(err, errlen, "listen host '%s' is not a numeric IPv4 or IPv6 address", host);
    return -EINVAL;
}

static int ssl_error(char *err, size_t errlen, const char *what, const char *file)
{
    char why[200] = "unknown error";
    unsigned long e = ERR_peek_last_error();
    if (e) ERR_error_string_n(e, why, sizeof why);
    ERR_clear_error();
    snprintf(err, errlen, "%s %s: %s", what, file ? file : "", why);
    return -EINVAL;
}

int http_server_new(uv_loop_t *loop, const http_server_options *opt, http_handler_fn handler,
                    void *arg, http_server **out, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (out) *out = NULL;
    if (!loop || !opt || !handler || !out || !opt->host || opt->port < 0 || opt->port > 65535 ||
        !opt->cert_file || !opt->key_file) {
        snprintf(err, errlen,
                 "http server: missing or invalid options (host, port 0-65535, "
                 "cert_file, key_file and a handler are required)");
        return -EINVAL;
    }

    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);

    http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    srv->loop = loop;
    srv->handler = handler;
    srv->arg = arg;
    srv->max_header_bytes =
        opt->max_header_bytes ? opt->max_header_bytes : DEFAULT_MAX_HEADER_BYTES;
    srv->max_body_bytes = opt->max_body_bytes ? opt->max_body_bytes : DEFAULT_MAX_BODY_BYTES;
    srv->idle_ms = opt->idle_timeout_ms ? opt->idle_timeout_ms : DEFAULT_IDLE_MS;
    srv->max_connections = opt->max_connections ? opt->max_connections : DEFAULT_MAX_CONNECTIONS;
    if (srv->max_body_bytes >= SIZE_MAX / 2) srv->max_body_bytes = SIZE_MAX / 2;
    server_set_limits(srv, opt);

    int r = -EINVAL;
    ERR_clear_error();
    srv->ctx = SSL_CTX_new(TLS_server_method());
    if (!srv->ctx) {
        r = ssl_error(err, errlen, "cannot create the TLS context", NULL);
        goto fail_ctx;
    }
    SSL_CTX_set_min_proto_version(srv->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(srv->ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                      SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(srv->ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(srv->ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL") != 1) {
        r = ssl_error(err, errlen, "cannot set the TLS 1.2 ciphers", NULL);
        goto fail_tls;
    }
    if (SSL_CTX_use_certificate_chain_file(srv->ctx, opt->cert_file) != 1) {
        r = ssl_error(err, errlen, "cannot load the TLS certificate chain (PEM) from",
                      opt->cert_file);
        goto fail_tls;
    }
    if (SSL_CTX_use_PrivateKey_file(srv->ctx, opt->key_file, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            r = ssl_error(err, errlen, "the TLS private key does not match the certificate in",
                          opt->cert_file);
        else
            r = ssl_error(err, errlen, "cannot load the TLS private key (PEM) from", opt->key_file);
        goto fail_tls;
    }
    if (SSL_CTX_check_private_key(srv->ctx) != 1) {
        r = ssl_error(err, errlen, "the TLS private key does not match the certificate in",
                      opt->cert_file);
        goto fail_tls;
    }

    int fd = listen_socket(opt->host, opt->port, err, errlen);
    if (fd < 0) {
        r = fd;
        goto fail_tls;
    }
    /* From here the listener is a libuv handle: it must be closed through the loop. */
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    srv->nhandles = 1;
    r = uv_tcp_open(&srv->listener, fd);
    if (r < 0) close(fd); /* not the handle's yet */
    if (r == 0) r = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
    if (r < 0) {
        snprintf(err, errlen, "cannot listen on %s port %d: %s", opt->host, opt->port,
                 uv_strerror(r));
        goto fail_listen;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &sslen) == 0)
        srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    *out = srv;
    return 0;

fail_listen:
    /* The memory goes with the handle, on the loop's next turn (no user callback fires). */
    srv->closing = true;
    uv_close((uv_handle_t *)&srv->listener, on_listener_close);
    return r;
fail_tls:
    SSL_CTX_free(srv->ctx);
fail_ctx:
    free(srv);
    return r;
}

int http_server_port(const http_server *srv)
{
    return srv ? srv->port : -EINVAL;
}

/* Closes every connection at once; requests the handler holds are orphaned. */
static void server_abort_all(http_server *srv)
{
    for (http_conn *c = srv->conns; c; c = c->next)
        conn_abort(c);
}

void http_server_close(http_server *srv, void (*done)(void *arg), void *arg)
{
    if (!srv) return;
    if (srv->draining) {
        /* A graceful stop is under way: cut it short. Its own done is the one that fires. */
        if (srv->conns)
            LOG(LOG_INFO, "http: closing now: %u request%s still in flight", srv->in_flight,
                srv->in_flight == 1 ? "" : "s");
        server_abort_all(srv);
        server_grace_stop(srv, true);
        return;
    }
    if (srv->closing) return;
    srv->closing = true;
    srv->done = done;
    srv->done_arg = arg;
    uv_close((uv_handle_t *)&srv->listener, on_listener_close);
    server_abort_all(srv);
}

static void on_grace_timeout(uv_timer_t *t)
{
    http_server *srv = t->data;
    unsigned n = 0;
    for (http_conn *c = srv->conns; c; c = c->next)
        if (c->state != CONN_CLOSING) n++;
    LOG(LOG_WARN, "http: shutdown grace over: closing %u connection%s, %u request%s unanswered", n,
        n == 1 ? "" : "s", srv->in_flight, srv->in_flight == 1 ? "" : "s");
    server_abort_all(srv);
    server_grace_stop(srv, true);
}

void http_server_shutdown(http_server *srv, unsigned grace_ms, void (*done)(void *arg), void *arg)
{
    if (!srv || srv->closing) return;
    srv->closing = true;
    srv->draining = true;
    srv->done = done;
    srv->done_arg = arg;
    uv_close((uv_handle_t *)&srv->listener, on_listener_close);
    uv_timer_init(srv->loop, &srv->grace);
    srv->grace.data = srv;
    srv->grace_open = true;
    srv->nhandles++;
    uv_timer_start(&srv->grace, on_grace_timeout, grace_ms, 0);
    LOG(LOG_INFO, "http: shutting down: %u request%s in flight, %u ms grace", srv->in_flight,
        srv->in_flight == 1 ? "" : "s", grace_ms);
    for (http_conn *c = srv->conns; c; c = c->next) {
        /* Busy: the handler holds its request, or one has begun to arrive. That request is
         * answered (Connection: close) and the connection finishes after the answer. */
        if (c->state != CONN_OPEN || c->waiting || c->cur) continue;
        /* Idle: close_notify (if the handshake is done) after anything still queued. */
        conn_finish(c, SSL_is_init_finished(c->ssl));
    }
    server_grace_stop(srv, false); /* no connection at all: nothing to wait for */
}

unsigned http_server_requests_in_flight(const http_server *srv)
{
    return srv ? srv->in_flight : 0;
}

const char *http_request_method(const http_request *req)
{
    return req->method;
}

const char *http_request_path(const http_request *req)
{
    return req->path;
}

const char *http_request_query(const http_request *req)
{
    return req->query;
}

const char *http_request_header(const http_request *req, const char *name)
{
    if (!req || !name) return NULL;
    for (size_t i = 0; i < req->nheaders; i++)
        if (req->headers[i].name && strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

const char *http_request_body(const http_request *req, size_t *len)
{
    if (len) *len = req->body_len;
    return req->body;
}

const char *http_request_peer(const http_request *req)
{
    return req->peer;
}

const char *http_request_id(const http_request *req)
{
    return req->rid;
}

void http_request_route_set(http_request *req, int route)
{
    if (req) req->route = route;
}

void http_request_user_set(http_request *req, const char *user)
{
    if (!req) return;
    size_t n = user ? strnlen(user, sizeof req->user - 1) : 0; /* no formatting per request */
    if (n) memcpy(req->user, user, n);
    req->user[n] = '\0';
}

void http_request_data_set(http_request *req, void *data, void (*drop)(void *data))
{
    if (!req) return;
    if (req->data && req->drop) req->drop(req->data);
    req->data = data;
    req->drop = drop;
}

void *http_request_data_take(http_request *req)
{
    if (!req) return NULL;
    void *d = req->data;
    req->data = NULL;
    req->drop = NULL;
    return d;
}

/* Header names the server writes itself (framing and fixed fields): refused here. */
static bool header_is_reserved(const char *name)
{
    static const char *const reserved[] = {
        "Content-Length", "Transfer-Encoding", "Connection", "Content-Type", "Date",
        "Server",         "Keep-Alive",        "Upgrade",    "Trailer"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcasecmp(name, reserved[i]) == 0) return true;
    return false;
}

int http_request_header_add(http_request *req, const char *name, const char *value)
{
    if (!req || !name || !value || !name[0] || header_is_reserved(name)) return -EINVAL;
    /* A name is an RFC 9110 token; a value has no control characters but tab. */
    for (const char *p = name; *p; p++)
        if (!strchr("!#$%&'*+-.^_`|~", *p) && !(*p >= '0' && *p <= '9') &&
            !(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z'))
            return -EINVAL;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return -EINVAL;
    size_t nlen = strlen(name), vlen = strlen(value);
    if (nlen + vlen > 8192) return -EINVAL;
    char *e = realloc(req->extra, req->extra_len + nlen + vlen + 5);
    if (!e) return -ENOMEM;
    char *p = e + req->extra_len;
    memcpy(p, name, nlen);
    memcpy(p + nlen, ": ", 2);
    memcpy(p + nlen + 2, value, vlen);
    memcpy(p + nlen + 2 + vlen, "\r\n", 3); /* with the NUL */
    req->extra = e;
    req->extra_len += nlen + vlen + 4;
    return 0;
}

/* Counts an answered request in the metrics and writes its access-log line (at INFO: nothing is
 * formatted when the level is above), with its request id ending the line. */
static void request_answered(const http_request *req, int status, size_t len)
{
    int64_t us = metrics_now_us() - req->start_us;
    metrics_http_observe(req->route, status, us);
    if (LOG_INFO < log_min_level || req->no_access_log) return;
    const char *old = log_request_id_set(req->rid);
    /* a route's label names its method ("GET /v1/jobs/{id}"); one not routed gets "<method> -" */
    LOG(LOG_INFO, "access %s%s%s %d %zuB %" PRId64 "us peer=%s user=%s",
        req->route ? "" : (req->method ? req->method : "-"), req->route ? "" : " ",
        metrics_route_label(req->route), status, len, us, req->peer,
        req->user[0] ? req->user : "-");
    log_request_id_set(old);
}

void http_request_respond(http_request *req, int status, const char *content_type, const char *body,
                          size_t len)
{
    if (!req) return;
    if (status < 200 || status > 599) status = 500;
    request_answered(req, status, body ? len : 0);
    /* (the access line is written for an answer dropped because its client went away too) */
    http_conn *c = req->conn;
    if (!c) {
        request_free(req); /* the client went away: drop the answer */
        return;
    }
    if (req->early) {
        /* on_headers answered: close without reading the body (see http_headers_fn) */
        c->cur = NULL;
        conn_body_release(c);
        if (status < 200 || status > 599) status = 500;
        int r = conn_send_response(c, status, content_type, body, body ? len : 0, false, req->head,
                                   req->extra, req->rid);
        request_free(req);
        if (r < 0)
            conn_abort(c);
        else
            conn_finish(c, true);
        return;
    }
    bool keep_alive = req->keep_alive && !c->srv->closing;
    conn_unwait(c);
    if (c->state != CONN_OPEN) {
        request_free(req);
        return;
    }
    if (status < 200 || status > 599) status = 500;
    if (!body) len = 0;
    /* `body` may point into the request (an echo): send before freeing it. */
    int r = conn_send_response(c, status, content_type, body, len, keep_alive, req->head,
                               req->extra, req->rid);
    request_free(req);
    if (r < 0) {
        conn_abort(c);
        return;
    }
    if (!keep_alive) {
        conn_finish(c, true);
        return;
    }
    if (!c->detached) uv_timer_start(&c->timer, on_idle_timeout, c->srv->idle_ms, c->srv->idle_ms);
    http_parser_pause(&c->parser, 0);
    conn_pump(c); /* the next pipelined request, if any (a no-op inside the running pump) */
}

void http_request_respond_error(http_request *req, int status, const char *code,
                                const char *message)
{
    if (!req) return;
    char *body = error_json(code, message);
    if (body) {
        http_request_respond(req, status, "application/json", body, strlen(body));
        free(body);
    } else {
        static const char fallback[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of "
                                       "memory\"}}";
        http_request_respond(req, status, "application/json", fallback, sizeof fallback - 1);
    }
}

int http_server_parse_buffer(const http_server_options *opt, const char *data, size_t len,
                             size_t chunk, http_handler_fn handler, void *arg, char **out,
                             size_t *out_len)
{
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    if (!opt || !handler || (!data && len > 0)) return -EINVAL;
    int r = -ENOMEM;
    http_server *srv = calloc(1, sizeof *srv);
    if (!srv) goto fail_srv;
    srv->handler = handler;
    srv->arg = arg;
    srv->max_header_bytes =
        opt->max_header_bytes ? opt->max_header_bytes : DEFAULT_MAX_HEADER_BYTES;
    srv->max_body_bytes = opt->max_body_bytes ? opt->max_body_bytes : DEFAULT_MAX_BODY_BYTES;
    if (srv->max_body_bytes >= SIZE_MAX / 2) srv->max_body_bytes = SIZE_MAX / 2;
    srv->idle_ms = DEFAULT_IDLE_MS;
    srv->max_connections = 1;
    srv->port = opt->port;
    server_set_limits(srv, opt);
    http_conn *c = calloc(1, sizeof *c);
    if (!c) goto fail_conn;
    c->srv = srv;
    c->detached = true;
    snprintf(c->peer, sizeof c->peer, "buffer");
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (chunk == 0) chunk = len ? len : 1;
    /* Feeds the input as reads would: append to c->in, pump; a waiting request is the
     * handler's fault (it must answer at once): stop there. */
    for (size_t off = 0; off < len && c->state == CONN_OPEN && !c->waiting;) {
        size_t n = len - off < chunk ? len - off : chunk;
        if (c->in_off > 0) {
            memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
            c->in_len -= c->in_off;
            c->in_off = 0;
        }
        if (c->in_cap - c->in_len < n) {
            char *p = realloc(c->in, c->in_len + n);
            if (!p) goto fail_run;
            c->in = p;
            c->in_cap = c->in_len + n;
        }
        memcpy(c->in + c->in_len, data + off, n);
        c->in_len += n;
        off += n;
        conn_pump(c);
    }
    if (c->waiting) c->waiting->conn = NULL; /* orphaned, as if the client went away */
    r = c->dispatched;
    if (out) {
        *out = c->sink;
        c->sink = NULL;
    }
    if (out_len) *out_len = c->sink_len;
fail_run:
    request_free(c->cur);
    conn_body_release(c);
    free(c->in);
    free(c->sink);
    free(c);
fail_conn:
    free(srv);
fail_srv:
    return r;
}
