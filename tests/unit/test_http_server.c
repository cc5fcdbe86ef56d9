/* test_http_server.c - unit tests for http_server: a real server on its own loop thread, real TLS
 * clients (OpenSSL, libcurl) on the test thread, a certificate from deploy/make-cert.sh.
 *
 * Run from the repository root (build/tests/test_http_server). Never talks to anything but
 * 127.0.0.1; never touches the loop from the test thread except through the wake-up async.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http_server.h"
#include "log.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <http_parser.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define IO_TIMEOUT_S 5

static char cert_dir[PATH_MAX];
static char ca_file[PATH_MAX + 16];
static char cert_file[PATH_MAX + 16];
static char key_file[PATH_MAX + 16];

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the world: a loop thread running one server ---------------------------------------- */

/* What the handler saw (the last request), copied out under the world's mutex. */
typedef struct seen {
    int calls;
    bool overlap; /* a handler ran while an earlier request was still unanswered */
    char method[16];
    char path[256];
    char query[256];
    char peer[64];
    char hdr_lower[128];
    char hdr_upper[128];
    bool hdr_missing_is_null;
    char expect[64];
    char *body;
    size_t body_len;
    bool body_nul_terminated;
} seen;

typedef struct world {
    uv_loop_t loop;
    uv_async_t wake;
    pthread_t thread;
    bool thread_started;
    http_server *srv;
    int port;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* commands for the loop thread (set by the test, cleared by the loop) */
    bool cmd_respond_held;
    bool cmd_close_server;
    bool cmd_shutdown; /* http_server_shutdown with shutdown_grace_ms */
    unsigned shutdown_grace_ms;
    bool cmd_count; /* read http_server_requests_in_flight into in_flight */
    bool cmd_quit;
    /* what the loop thread did */
    bool server_closed;
    bool done_called;
    int done_calls;
    long done_at_ms; /* now_ms() when done ran */
    unsigned in_flight;
    int later_pending;
    int headers_calls;   /* on_headers ran (guard_headers) */
    size_t headers_body; /* the body length it saw (must be 0) */
    int data_dropped;    /* http_request_data_set's drop ran (data_drop) */
    http_request *held;
    seen rec; /* what the handler saw last */
} world;

typedef struct later {
    uv_timer_t timer;
    http_request *req;
    world *w;
    char text[300];
} later;

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void later_fire(uv_timer_t *t)
{
    later *l = t->data;
    pthread_mutex_lock(&l->w->mu);
    l->w->later_pending--;
    pthread_mutex_unlock(&l->w->mu);
    http_request_respond(l->req, 200, "text/plain", l->text, strlen(l->text));
    uv_close((uv_handle_t *)&l->timer, later_closed);
}

static void on_server_done(void *arg);

static void copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "(null)");
}

/* Routes: /hello, /echo..., /info, /later, /extra, /nocontent, /hold, /unavailable, /stop;
 * anything else gets a JSON 404. */
static void handler(http_request *req, void *arg)
{
    world *w = arg;
    const char *path = http_request_path(req);
    pthread_mutex_lock(&w->mu);
    seen *rec = &w->rec;
    rec->calls++;
    if (w->later_pending > 0) rec->overlap = true;
    copy_str(rec->method, sizeof rec->method, http_request_method(req));
    copy_str(rec->path, sizeof rec->path, path);
    copy_str(rec->query, sizeof rec->query, http_request_query(req));
    copy_str(rec->peer, sizeof rec->peer, http_request_peer(req));
    copy_str(rec->hdr_lower, sizeof rec->hdr_lower, http_request_header(req, "x-custom-thing"));
    copy_str(rec->hdr_upper, sizeof rec->hdr_upper, http_request_header(req, "X-CUSTOM-THING"));
    copy_str(rec->expect, sizeof rec->expect, http_request_header(req, "Expect"));
    rec->hdr_missing_is_null = http_request_header(req, "X-Not-Sent") == NULL;
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    free(rec->body);
    rec->body = malloc(len + 1);
    if (!rec->body) abort(); /* no cmocka assertions off the test thread */
    memcpy(rec->body, body, len);
    rec->body_len = len;
    rec->body_nul_terminated = body[len] == '\0';
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);

    if (strcmp(path, "/hello") == 0) {
        http_request_respond(req, 203, "application/x-antenna-test", "hello world", 11);
    } else if (strncmp(path, "/echo", 5) == 0) {
        http_request_respond(req, 200, "application/octet-stream", body, len);
    } else if (strcmp(path, "/info") == 0) {
        char text[300];
        snprintf(text, sizeof text, "peer=%s query=%s", http_request_peer(req),
                 http_request_query(req));
        http_request_respond(req, 200, "text/plain", text, strlen(text));
    } else if (strcmp(path, "/later") == 0) {
        later *l = calloc(1, sizeof *l);
        if (!l) abort(); /* no cmocka assertions off the test thread */
        l->req = req;
        l->w = w;
        snprintf(l->text, sizeof l->text, "later %s", http_request_query(req));
        pthread_mutex_lock(&w->mu);
        w->later_pending++;
        pthread_mutex_unlock(&w->mu);
        uv_timer_init(&w->loop, &l->timer);
        l->timer.data = l;
        uv_timer_start(&l->timer, later_fire, 150, 0);
    } else if (strcmp(path, "/extra") == 0) {
        int ok = http_request_header_add(req, "X-Antenna-Job-State", "running");
        int ok2 = http_request_header_add(req, "X-Second", "two words");
        int crlf = http_request_header_add(req, "X-Evil", "a\r\nSet-Cookie: x=1");
        int framing = http_request_header_add(req, "content-length", "0");
        int badname = http_request_header_add(req, "Bad Name", "v");
        char text[128];
        snprintf(text, sizeof text, "%d %d %d %d %d", ok, ok2, crlf, framing, badname);
        http_request_respond(req, 200, "text/plain", text, strlen(text));
    } else if (strcmp(path, "/data") == 0) {
        /* answers what guard_headers attached, and frees it (taken: never dropped) */
        char *d = http_request_data_take(req);
        char *again = http_request_data_take(req);
        char text[64];
        snprintf(text, sizeof text, "%s %s", d ? d : "(none)", again ? "again" : "once");
        free(d);
        http_request_respond(req, 200, "text/plain", text, strlen(text));
    } else if (strcmp(path, "/nocontent") == 0) {
        http_request_respond(req, 204, "text/plain", "dropped", 7);
    } else if (strcmp(path, "/unavailable") == 0) {
        int ok = http_request_header_add(req, "Retry-After", "30");
        char msg[64];
        snprintf(msg, sizeof msg, "shutting down (header_add %d)", ok);
        http_request_respond_error(req, 503, "unavailable", msg);
    } else if (strcmp(path, "/stop") == 0) {
        /* A handler may start the shutdown itself, then answer. */
        http_server_shutdown(w->srv, 5000, on_server_done, w);
        http_request_respond(req, 200, "text/plain", "stopping", 8);
    } else if (strcmp(path, "/big") == 0) {
        /* 1 MiB of 'x' (or ?n=<bytes>) */
        size_t n = 1u << 20;
        const char *q = http_request_query(req);
        if (strncmp(q, "n=", 2) == 0) n = strtoul(q + 2, NULL, 10);
        char *big = malloc(n ? n : 1);
        if (!big) abort();
        memset(big, 'x', n);
        http_request_respond(req, 200, "application/octet-stream", big, n);
        free(big);
    } else if (strcmp(path, "/hold") == 0) {
        pthread_mutex_lock(&w->mu);
        w->held = req;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    } else {
        http_request_respond_error(req, 404, "not_found", "no such route");
    }
}

static world *drop_world; /* the world of the test running (data_drop has no other argument) */

/* The drop of the data guard_headers attaches: counts, then frees. */
static void data_drop(void *data)
{
    pthread_mutex_lock(&drop_world->mu);
    drop_world->data_dropped++;
    pthread_mutex_unlock(&drop_world->mu);
    free(data);
}

/* The on_headers hook of setup_guarded: "/guarded..." without X-Key is refused (401) before its
 * body; everything else goes on. */
static void guard_headers(http_request *req, void *arg)
{
    world *w = arg;
    size_t len = 0;
    (void)http_request_body(req, &len);
    pthread_mutex_lock(&w->mu);
    w->headers_calls++;
    w->headers_body = len;
    pthread_mutex_unlock(&w->mu);
    if (strncmp(http_request_path(req), "/guarded", 8) == 0 &&
        http_request_header(req, "X-Key") == NULL) {
        http_request_respond_error(req, 401, "unauthorized", "send X-Key");
        return; /* answered: req is freed */
    }
    if (strcmp(http_request_path(req), "/data") == 0) {
        char *d = strdup("from-hook");
        if (!d) abort(); /* no cmocka assertions off the test thread */
        http_request_data_set(req, d, data_drop);
    }
}

static void on_server_done(void *arg)
{
    world *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done_called = true;
    w->done_calls++;
    w->done_at_ms = now_ms();
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void on_wake(uv_async_t *a)
{
    world *w = a->data;
    pthread_mutex_lock(&w->mu);
    http_request *held = w->cmd_respond_held ? w->held : NULL;
    if (w->cmd_respond_held) w->held = NULL;
    /* Once done ran the server is gone: never touch it again. */
    bool close_server = w->cmd_close_server && !w->server_closed && !w->done_called;
    bool shutdown = w->cmd_shutdown && !w->done_called;
    unsigned grace = w->shutdown_grace_ms;
    bool count = w->cmd_count && !w->done_called;
    bool quit = w->cmd_quit;
    pthread_mutex_unlock(&w->mu);

    /* The mutex is not held here: respond may run the handler for a pipelined request. */
    if (held) http_request_respond(held, 200, "text/plain", "held", 4);
    if (shutdown) http_server_shutdown(w->srv, grace, on_server_done, w);
    unsigned in_flight = count ? http_server_requests_in_flight(w->srv) : 0;
    if (close_server) http_server_close(w->srv, on_server_done, w);
    if (quit) uv_close((uv_handle_t *)&w->wake, NULL);

    pthread_mutex_lock(&w->mu);
    w->cmd_respond_held = false;
    if (close_server) w->server_closed = true;
    w->cmd_close_server = false;
    w->cmd_shutdown = false;
    if (count) w->in_flight = in_flight;
    w->cmd_count = false;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void *loop_main(void *arg)
{
    world *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Waits up to IO_TIMEOUT_S for *flag to become `want` (read under the mutex). */
static bool world_wait_flag(world *w, const bool *flag, bool want)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += IO_TIMEOUT_S;
    pthread_mutex_lock(&w->mu);
    int r = 0;
    while (*flag != want && r == 0)
        r = pthread_cond_timedwait(&w->cv, &w->mu, &dl);
    bool ok = *flag == want;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

static bool world_wait_held(world *w)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += IO_TIMEOUT_S;
    pthread_mutex_lock(&w->mu);
    int r = 0;
    while (!w->held && r == 0)
        r = pthread_cond_timedwait(&w->cv, &w->mu, &dl);
    bool ok = w->held != NULL;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

static void world_command(world *w, bool *cmd)
{
    pthread_mutex_lock(&w->mu);
    *cmd = true;
    pthread_mutex_unlock(&w->mu);
    uv_async_send(&w->wake);
}

/* A copy of what the handler saw; free its body with seen_free. Never assert under the mutex: a
 * failed assertion would leave it locked. */
static seen world_seen(world *w)
{
    pthread_mutex_lock(&w->mu);
    seen s = w->rec;
    s.body = NULL;
    if (w->rec.body) {
        s.body = malloc(w->rec.body_len + 1);
        if (s.body) memcpy(s.body, w->rec.body, w->rec.body_len + 1);
    }
    pthread_mutex_unlock(&w->mu);
    return s;
}

static void seen_free(seen *s)
{
    free(s->body);
    s->body = NULL;
}

static int world_calls(world *w)
{
    pthread_mutex_lock(&w->mu);
    int n = w->rec.calls;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* Waits up to IO_TIMEOUT_S until the handler has run `n` times. */
static bool world_wait_calls(world *w, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += IO_TIMEOUT_S;
    pthread_mutex_lock(&w->mu);
    int r = 0;
    while (w->rec.calls < n && r == 0)
        r = pthread_cond_timedwait(&w->cv, &w->mu, &dl);
    bool ok = w->rec.calls >= n;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

/* Starts http_server_shutdown on the loop thread and waits until the call returned. */
static void world_shutdown(world *w, unsigned grace_ms)
{
    pthread_mutex_lock(&w->mu);
    w->shutdown_grace_ms = grace_ms;
    pthread_mutex_unlock(&w->mu);
    world_command(w, &w->cmd_shutdown);
    assert_true(world_wait_flag(w, &w->cmd_shutdown, false));
}

/* http_server_requests_in_flight, read on the loop thread. */
static unsigned world_in_flight(world *w)
{
    world_command(w, &w->cmd_count);
    assert_true(world_wait_flag(w, &w->cmd_count, false));
    pthread_mutex_lock(&w->mu);
    unsigned n = w->in_flight;
    pthread_mutex_unlock(&w->mu);
    return n;
}

static bool world_done(world *w)
{
    pthread_mutex_lock(&w->mu);
    bool done = w->done_called;
    pthread_mutex_unlock(&w->mu);
    return done;
}

static world *world_start(const http_server_options *extra)
{
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    assert_int_equal(uv_async_init(&w->loop, &w->wake, on_wake), 0);
    w->wake.data = w;
    http_server_options opt = extra ? *extra : (http_server_options){0};
    opt.host = "127.0.0.1";
    opt.port = 0;
    opt.cert_file = cert_file;
    opt.key_file = key_file;
    char err[256] = "";
    int r = http_server_new(&w->loop, &opt, handler, w, &w->srv, err, sizeof err);
    if (r != 0) print_error("http_server_new: %s\n", err);
    assert_int_equal(r, 0);
    w->port = http_server_port(w->srv);
    assert_true(w->port > 0);
    assert_int_equal(pthread_create(&w->thread, NULL, loop_main, w), 0);
    w->thread_started = true;
    return w;
}

/* Closes the server (if still open) and waits for its done callback. */
static bool world_close_server(world *w)
{
    world_command(w, &w->cmd_close_server);
    return world_wait_flag(w, &w->done_called, true);
}

static int world_teardown(void **state)
{
    world *w = *state;
    if (!w) return 0;
    int rc = 0;
    if (w->thread_started) {
        pthread_mutex_lock(&w->mu);
        bool done = w->done_called;
        pthread_mutex_unlock(&w->mu);
        if (!done && !world_close_server(w)) rc = -1;
        world_command(w, &w->cmd_quit);
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += IO_TIMEOUT_S;
        if (pthread_timedjoin_np(w->thread, NULL, &dl) != 0) {
            /* The loop never ran dry: leave this world (leaked) and fail rather than hang. */
            print_error("the loop thread did not end: handles are still open\n");
            *state = NULL;
            return -1;
        }
    }
    if (w->held) http_request_respond(w->held, 200, "text/plain", "", 0);
    if (uv_loop_close(&w->loop) != 0) {
        print_error("the loop still has open handles after the server closed\n");
        rc = -1;
    }
    free(w->rec.body);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    *state = NULL;
    return rc;
}

static int setup_default(void **state)
{
    *state = world_start(NULL);
    return 0;
}

static int setup_small_limits(void **state)
{
    http_server_options o = {.max_header_bytes = 1024, .max_body_bytes = 4096};
    *state = world_start(&o);
    return 0;
}

static int setup_short_idle(void **state)
{
    http_server_options o = {.idle_timeout_ms = 300};
    *state = world_start(&o);
    return 0;
}

static int setup_guarded(void **state)
{
    http_server_options o = {.on_headers = guard_headers};
    *state = world_start(&o);
    drop_world = *state;
    return 0;
}

static int setup_small_unsent(void **state)
{
    http_server_options o = {.max_unsent_bytes = 16384};
    *state = world_start(&o);
    return 0;
}

static int setup_two_per_peer(void **state)
{
    http_server_options o = {.max_connections_per_peer = 2};
    *state = world_start(&o);
    return 0;
}

static int setup_short_handshake(void **state)
{
    http_server_options o = {.idle_timeout_ms = 20000, .handshake_timeout_ms = 300};
    *state = world_start(&o);
    return 0;
}

static int setup_short_request(void **state)
{
    http_server_options o = {.idle_timeout_ms = 20000, .request_timeout_ms = 400};
    *state = world_start(&o);
    return 0;
}

static int setup_small_body_budget(void **state)
{
    http_server_options o = {.max_buffered_body_bytes = 100000};
    *state = world_start(&o);
    return 0;
}

static int setup_one_connection(void **state)
{
    http_server_options o = {.max_connections = 1};
    *state = world_start(&o);
    return 0;
}

/* ---- an OpenSSL client with an http_parser response reader ------------------------------ */

#define MAX_RESP_HEADERS 32

typedef struct response {
    int status;
    int nheaders;
    char names[MAX_RESP_HEADERS][64];
    char values[MAX_RESP_HEADERS][256];
    bool last_was_value;
    char *body;
    size_t body_len;
    bool complete;
    bool head;
} response;

typedef struct client {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    unsigned long ssl_err; /* first OpenSSL error of a failed handshake */
    http_parser parser;
    char pend[65536];
    size_t pend_len;
} client;

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Connects and handshakes, verifying the server's certificate for "localhost" against the
 * development CA. `min_ver`/`max_ver` are TLS versions, 0 = library default. Returns the
 * client; c->ssl is NULL (and c->ssl_err set) if the handshake failed. */
static client *client_connect_versions(int port, int min_ver, int max_ver)
{
    client *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(c->ctx);
    if (min_ver && min_ver < TLS1_2_VERSION) {
        /* Let an old-protocol client actually send its hello (OpenSSL 3 forbids it at the
         * default security level). */
        SSL_CTX_set_security_level(c->ctx, 0);
        assert_int_equal(SSL_CTX_set_cipher_list(c->ctx, "DEFAULT:@SECLEVEL=0"), 1);
    }
    if (min_ver) assert_int_equal(SSL_CTX_set_min_proto_version(c->ctx, min_ver), 1);
    if (max_ver) assert_int_equal(SSL_CTX_set_max_proto_version(c->ctx, max_ver), 1);
    assert_int_equal(SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL), 1);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    c->fd = tcp_connect(port);
    SSL *ssl = SSL_new(c->ctx);
    assert_non_null(ssl);
    assert_int_equal(SSL_set1_host(ssl, "localhost"), 1);
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set_fd(ssl, c->fd);
    ERR_clear_error();
    if (SSL_connect(ssl) == 1) {
        c->ssl = ssl;
    } else {
        c->ssl_err = ERR_peek_error();
        ERR_clear_error();
        SSL_free(ssl);
    }
    return c;
}

static client *client_connect(int port)
{
    client *c = client_connect_versions(port, 0, 0);
    if (!c->ssl) {
        char why[200];
        ERR_error_string_n(c->ssl_err, why, sizeof why);
        print_error("TLS handshake failed: %s\n", why);
    }
    assert_non_null(c->ssl);
    return c;
}

static void client_free(client *c)
{
    if (!c) return;
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0) close(c->fd);
    free(c);
}

static void client_send(client *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        int n = SSL_write(c->ssl, p, (int)len);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static void client_send_str(client *c, const char *s)
{
    client_send(c, s, strlen(s));
}

static int rsp_on_header_field(http_parser *p, const char *at, size_t len)
{
    response *r = p->data;
    if (r->nheaders == 0 || r->last_was_value) {
        if (r->nheaders == MAX_RESP_HEADERS) return -1;
        r->nheaders++;
        r->names[r->nheaders - 1][0] = '\0';
        r->values[r->nheaders - 1][0] = '\0';
    }
    r->last_was_value = false;
    strncat(r->names[r->nheaders - 1], at,
            len < sizeof r->names[0] - strlen(r->names[r->nheaders - 1]) - 1
                ? len
                : sizeof r->names[0] - strlen(r->names[r->nheaders - 1]) - 1);
    return 0;
}

static int rsp_on_header_value(http_parser *p, const char *at, size_t len)
{
    response *r = p->data;
    r->last_was_value = true;
    if (r->nheaders == 0) return -1;
    char *v = r->values[r->nheaders - 1];
    size_t room = sizeof r->values[0] - strlen(v) - 1;
    strncat(v, at, len < room ? len : room);
    return 0;
}

static int rsp_on_headers_complete(http_parser *p)
{
    response *r = p->data;
    r->status = (int)p->status_code;
    return r->head ? 1 : 0; /* a HEAD answer has no body */
}

static int rsp_on_body(http_parser *p, const char *at, size_t len)
{
    response *r = p->data;
    char *b = realloc(r->body, r->body_len + len + 1);
    if (!b) return -1;
    memcpy(b + r->body_len, at, len);
    r->body = b;
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int rsp_on_message_complete(http_parser *p)
{
    response *r = p->data;
    r->complete = true;
    http_parser_pause(p, 1); /* leave a pipelined answer's bytes for the next read */
    return 0;
}

static const http_parser_settings rsp_settings = {
    .on_header_field = rsp_on_header_field,
    .on_header_value = rsp_on_header_value,
    .on_headers_complete = rsp_on_headers_complete,
    .on_body = rsp_on_body,
    .on_message_complete = rsp_on_message_complete,
};

static void response_clear(response *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Reads one response (head = it answers a HEAD). Returns 0, or -1 on EOF/error/timeout. */
static int client_read_response_ex(client *c, response *r, bool head)
{
    response_clear(r);
    r->head = head;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = r;
    for (;;) {
        if (c->pend_len > 0) {
            size_t n = http_parser_execute(&c->parser, &rsp_settings, c->pend, c->pend_len);
            memmove(c->pend, c->pend + n, c->pend_len - n);
            c->pend_len -= n;
            if (r->complete) return 0;
            if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) return -1;
        }
        int n = SSL_read(c->ssl, c->pend + c->pend_len, (int)(sizeof c->pend - c->pend_len));
        if (n <= 0) return -1;
        c->pend_len += (size_t)n;
    }
}

static int client_read_response(client *c, response *r)
{
    return client_read_response_ex(c, r, false);
}

static const char *resp_header(const response *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->names[i], name) == 0) return r->values[i];
    return NULL;
}

/* True if the server closed the connection (TLS close_notify, EOF or reset) within the read
 * timeout, with no more application data. False on data or on timeout. */
static bool client_sees_close(client *c)
{
    if (c->pend_len > 0) return false;
    char b[256];
    errno = 0;
    int n = SSL_read(c->ssl, b, sizeof b);
    if (n > 0) return false;
    int e = SSL_get_error(c->ssl, n);
    int saved = errno;
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN) return true;
    if (e == SSL_ERROR_SYSCALL) return saved != EAGAIN && saved != EWOULDBLOCK;
    return e == SSL_ERROR_SSL;
}

/* The error code in a JSON error body, or "" (static buffer). */
static const char *error_code_of(const response *r)
{
    static char code[64];
    code[0] = '\0';
    json_t *j = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    const char *s = NULL;
    const char *msg = NULL;
    if (j && json_unpack(j, "{s:{s:s,s:s}}", "error", "code", &s, "message", &msg) == 0 &&
        msg[0] != '\0')
        snprintf(code, sizeof code, "%s", s);
    json_decref(j);
    return code;
}

/* Sends one request and reads its answer on a fresh connection. */
static client *roundtrip(world *w, const char *request, response *r)
{
    client *c = client_connect(w->port);
    client_send_str(c, request);
    assert_int_equal(client_read_response(c, r), 0);
    return c;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void get_answered_with_handlers_status_body_and_headers(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 203);
    assert_int_equal(r.body_len, 11);
    assert_memory_equal(r.body, "hello world", 11);
    assert_string_equal(resp_header(&r, "Content-Type"), "application/x-antenna-test");
    assert_string_equal(resp_header(&r, "Content-Length"), "11");
    assert_string_equal(resp_header(&r, "Server"), "antennad");
    assert_string_equal(resp_header(&r, "Connection"), "keep-alive");
    const char *date = resp_header(&r, "Date");
    assert_non_null(date);
    struct tm tm = {0};
    const char *end = strptime(date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    assert_non_null(end);
    assert_int_equal(*end, '\0');
    seen s = world_seen(w);
    assert_string_equal(s.method, "GET");
    seen_free(&s);
    response_clear(&r);
    client_free(c);
}

static void respond_error_sends_json_error_object(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w, "GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(resp_header(&r, "Content-Type"), "application/json");
    assert_string_equal(error_code_of(&r), "not_found");
    response_clear(&r);
    client_free(c);
}

static void post_body_delivered_intact(void **state)
{
    world *w = *state;
    static const char body[] = "{\"a\":1}\0binary\x01\xff tail";
    size_t blen = sizeof body - 1;
    client *c = client_connect(w->port);
    char head[200];
    snprintf(head, sizeof head,
             "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n",
             blen);
    client_send_str(c, head);
    client_send(c, body, blen);
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, blen);
    assert_memory_equal(r.body, body, blen);
    seen s = world_seen(w);
    assert_string_equal(s.method, "POST");
    assert_int_equal(s.body_len, blen);
    assert_memory_equal(s.body, body, blen);
    assert_true(s.body_nul_terminated);
    seen_free(&s);
    response_clear(&r);
    client_free(c);
}

typedef struct sink {
    char *data;
    size_t len;
} sink;

static size_t sink_write(char *p, size_t size, size_t n, void *arg)
{
    sink *s = arg;
    char *d = realloc(s->data, s->len + size * n + 1);
    if (!d) return 0;
    memcpy(d + s->len, p, size * n);
    s->data = d;
    s->len += size * n;
    return size * n;
}

static void post_100kb_body_delivered_intact_with_curl(void **state)
{
    world *w = *state;
    size_t blen = 100 * 1024;
    char *body = malloc(blen);
    assert_non_null(body);
    for (size_t i = 0; i < blen; i++)
        body[i] = (char)('a' + (i * 7 + i / 13) % 26);
    char url[64], resolve[64];
    snprintf(url, sizeof url, "https://localhost:%d/echo", w->port);
    snprintf(resolve, sizeof resolve, "localhost:%d:127.0.0.1", w->port);
    struct curl_slist *res = curl_slist_append(NULL, resolve);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    sink out = {0};
    CURL *h = curl_easy_init();
    assert_non_null(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_RESOLVE, res);
    curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    CURLcode cr = curl_easy_perform(h);
    if (cr != CURLE_OK) print_error("curl: %s\n", curl_easy_strerror(cr));
    assert_int_equal(cr, CURLE_OK);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 200);
    assert_int_equal(out.len, blen);
    assert_memory_equal(out.data, body, blen);
    seen s = world_seen(w);
    assert_int_equal(s.body_len, blen);
    assert_memory_equal(s.body, body, blen);
    seen_free(&s);
    curl_easy_cleanup(h);
    curl_slist_free_all(res);
    curl_slist_free_all(hdrs);
    free(out.data);
    free(body);
}

static void expect_100_continue_gets_interim_answer(void **state)
{
    world *w = *state;
    client *c = client_connect(w->port);
    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
                       "Content-Length: 5\r\n\r\n");
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 100);
    client_send_str(c, "12345");
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 5);
    assert_memory_equal(r.body, "12345", 5);
    response_clear(&r);
    client_free(c);
}

static void chunked_body_delivered_intact(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w,
                          "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                          "\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                          &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 11);
    assert_memory_equal(r.body, "hello world", 11);
    response_clear(&r);
    client_free(c);
}

static void two_requests_on_one_keepalive_connection(void **state)
{
    world *w = *state;
    client *c = client_connect(w->port);
    response r1 = {0}, r2 = {0};
    client_send_str(c, "GET /info?n=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_int_equal(client_read_response(c, &r1), 0);
    assert_string_equal(resp_header(&r1, "Connection"), "keep-alive");
    client_send_str(c, "GET /info?n=2 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_int_equal(client_read_response(c, &r2), 0);
    assert_int_equal(r1.status, 200);
    assert_int_equal(r2.status, 200);
    /* Same peer address and port: the same TCP connection served both. */
    char peer1[128], peer2[128];
    assert_int_equal(sscanf(r1.body, "peer=%127s query=n=1", peer1), 1);
    assert_int_equal(sscanf(r2.body, "peer=%127s query=n=2", peer2), 1);
    assert_string_equal(peer1, peer2);
    assert_non_null(strstr(r2.body, "query=n=2"));
    assert_int_equal(world_calls(w), 2);
    response_clear(&r1);
    response_clear(&r2);
    client_free(c);
}

static void pipelined_requests_answered_in_order(void **state)
{
    world *w = *state;
    client *c = client_connect(w->port);
    /* The first answer comes after a timer, the second at once: order must still hold. */
    client_send_str(c, "GET /later?id=1 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                       "GET /info?id=2 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                       "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "later id=1");
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "query=id=2"));
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 203);
    seen s = world_seen(w);
    assert_false(s.overlap); /* request 2 reached the handler only after 1 was answered */
    assert_int_equal(s.calls, 3);
    seen_free(&s);
    response_clear(&r);
    client_free(c);
}

static void deep_pipeline_beyond_read_backlog_answered_in_order(void **state)
{
    world *w = *state;
    client *c = client_connect(w->port);
    /* A slow first answer, then 40 x 4 KiB POSTs (160 KiB): more than the server buffers
     * while a request waits, so it must pause reading and resume. */
    enum { N = 40, BODY = 4096 };
    size_t cap = 256 + (size_t)N * (BODY + 128);
    char *all = malloc(cap);
    assert_non_null(all);
    size_t len = (size_t)snprintf(all, cap, "GET /later?id=0 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    for (int i = 1; i <= N; i++) {
        len += (size_t)snprintf(
            all + len, cap - len,
            "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n", BODY);
        memset(all + len, 'a' + i % 26, BODY);
        len += BODY;
    }
    client_send(c, all, len);
    free(all);
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_string_equal(r.body, "later id=0");
    for (int i = 1; i <= N; i++) {
        assert_int_equal(client_read_response(c, &r), 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, BODY);
        assert_int_equal(r.body[0], 'a' + i % 26);
        assert_int_equal(r.body[BODY - 1], 'a' + i % 26);
    }
    assert_int_equal(world_calls(w), N + 1);
    response_clear(&r);
    client_free(c);
}

static void handler_answering_later_works(void **state)
{
    world *w = *state;
    long t0 = now_ms();
    response r = {0};
    client *c = roundtrip(w, "GET /later?x=y HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_true(now_ms() - t0 >= 140);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "later x=y");
    assert_string_equal(resp_header(&r, "Connection"), "keep-alive");
    /* The connection is still usable afterwards. */
    client_send_str(c, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 203);
    response_clear(&r);
    client_free(c);
}

static void added_headers_sent_and_unsafe_ones_refused(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w, "GET /extra HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(resp_header(&r, "X-Antenna-Job-State"), "running");
    assert_string_equal(resp_header(&r, "X-Second"), "two words");
    assert_null(resp_header(&r, "Set-Cookie"));
    assert_null(resp_header(&r, "X-Evil"));
    char expect[64];
    snprintf(expect, sizeof expect, "0 0 %d %d %d", -EINVAL, -EINVAL, -EINVAL);
    assert_string_equal(r.body, expect);
    char length[16];
    snprintf(length, sizeof length, "%zu", strlen(expect));
    assert_string_equal(resp_header(&r, "Content-Length"), length); /* not the refused "0" */
    response_clear(&r);
    client_free(c);
}

static void status_204_has_no_body_and_no_length(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w, "GET /nocontent HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 204);
    assert_null(resp_header(&r, "Content-Length"));
    assert_int_equal(r.body_len, 0);
    /* The handler's body was not sent: the next answer parses cleanly. */
    client_send_str(c, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 203);
    assert_memory_equal(r.body, "hello world", 11);
    response_clear(&r);
    client_free(c);
}

static void head_answer_has_length_but_no_body(void **state)
{
    world *w = *state;
    client *c = client_connect(w->port);
    client_send_str(c, "HEAD /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    response r = {0};
    assert_int_equal(client_read_response_ex(c, &r, true), 0);
    assert_int_equal(r.status, 203);
    assert_string_equal(resp_header(&r, "Content-Length"), "11");
    /* No body bytes followed: the next answer parses cleanly. */
    client_send_str(c, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 203);
    assert_int_equal(r.body_len, 11);
    response_clear(&r);
    client_free(c);
}

/* A request whose request line + headers are exactly `total` bytes. */
static char *request_of_header_size(size_t total)
{
    static const char start[] = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    static const char end[] = "\r\n\r\n";
    size_t fixed = sizeof start - 1 + sizeof end - 1;
    assert_true(total > fixed);
    char *req = malloc(total + 1);
    assert_non_null(req);
    memcpy(req, start, sizeof start - 1);
    memset(req + sizeof start - 1, 'p', total - fixed);
    memcpy(req + total - (sizeof end - 1), end, sizeof end);
    assert_int_equal(strlen(req), total);
    return req;
}

static void headers_at_the_limit_accepted(void **state)
{
    world *w = *state; /* max_header_bytes = 1024 */
    char *req = request_of_header_size(1024);
    response r = {0};
    client *c = roundtrip(w, req, &r);
    assert_int_equal(r.status, 203);
    response_clear(&r);
    client_free(c);
    free(req);
}

static void oversized_headers_get_431_json(void **state)
{
    world *w = *state; /* max_header_bytes = 1024 */
    char *req = request_of_header_size(1025);
    response r = {0};
    client *c = roundtrip(w, req, &r);
    assert_int_equal(r.status, 431);
    assert_string_equal(resp_header(&r, "Content-Type"), "application/json");
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_string_equal(error_code_of(&r), "headers_too_large");
    assert_true(client_sees_close(c));
    assert_int_equal(world_calls(w), 0);
    response_clear(&r);
    client_free(c);
    free(req);
}

static void huge_headers_get_431_before_they_end(void **state)
{
    world *w = *state; /* max_header_bytes = 1024; the headers never end */
    client *c = client_connect(w->port);
    char *big = malloc(8192);
    assert_non_null(big);
    memset(big, 'h', 8192);
    memcpy(big, "GET /hello HTTP/1.1\r\nX-Big: ", 28);
    client_send(c, big, 8192);
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 431);
    assert_string_equal(error_code_of(&r), "headers_too_large");
    assert_true(client_sees_close(c));
    response_clear(&r);
    client_free(c);
    free(big);
}

static void oversized_content_length_gets_413_without_reading_body(void **state)
{
    world *w = *state; /* max_body_bytes = 4096 */
    client *c = client_connect(w->port);
    /* Only the headers: the answer must come without the body ever being sent. */
    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n");
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 413);
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_string_equal(error_code_of(&r), "body_too_large");
    assert_true(client_sees_close(c));
    assert_int_equal(world_calls(w), 0);
    response_clear(&r);
    client_free(c);
}

static void chunked_body_over_limit_gets_413(void **state)
{
    world *w = *state; /* max_body_bytes = 4096 */
    client *c = client_connect(w->port);
    client_send_str(c,
                    "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[3000 + 16];
    int n = snprintf(chunk, sizeof chunk, "%x\r\n", 3000);
    memset(chunk + n, 'c', 3000);
    memcpy(chunk + n + 3000, "\r\n", 2);
    client_send(c, chunk, (size_t)n + 3002);
    client_send(c, chunk, (size_t)n + 3002);
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 413);
    assert_string_equal(error_code_of(&r), "body_too_large");
    assert_true(client_sees_close(c));
    assert_int_equal(world_calls(w), 0);
    response_clear(&r);
    client_free(c);
}

/* A chunk whose size line alone is over the limit is refused at that line: no byte of it read. */
static void chunk_announced_over_limit_gets_413_at_its_size_line(void **state)
{
    world *w = *state; /* max_body_bytes = 4096 */
    client *c = client_connect(w->port);
    client_send_str(c,
                    "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "1000000000000000\r\n");
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 413);
    assert_string_equal(error_code_of(&r), "body_too_large");
    assert_true(client_sees_close(c));
    assert_int_equal(world_calls(w), 0);
    response_clear(&r);
    client_free(c);
}

static void garbage_request_gets_400_json(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w, "@@ what is this \x01\x02\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(resp_header(&r, "Content-Type"), "application/json");
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_string_equal(error_code_of(&r), "bad_request");
    assert_true(client_sees_close(c));
    assert_int_equal(world_calls(w), 0);
    response_clear(&r);
    client_free(c);
}

static void malformed_percent_escape_gets_400(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w, "GET /echo/%zz HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(error_code_of(&r), "bad_request");
    assert_int_equal(world_calls(w), 0);
    response_clear(&r);
    client_free(c);
}

static void http10_request_closes_after_answer(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w, "GET /hello HTTP/1.0\r\n\r\n", &r);
    assert_int_equal(r.status, 203);
    assert_int_equal(r.body_len, 11);
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_true(client_sees_close(c));
    response_clear(&r);
    client_free(c);
}

static void connection_close_header_closes_after_answer(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
    assert_int_equal(r.status, 203);
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_true(client_sees_close(c));
    response_clear(&r);
    client_free(c);
}

static void client_disconnect_while_pending_then_respond_is_safe(void **state)
{
    world *w = *state;
    client *c = client_connect(w->port);
    client_send_str(c, "POST /hold HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nbody");
    assert_true(world_wait_held(w));
    assert_int_equal(world_in_flight(w), 1);
    client_free(c); /* gone while the handler still holds the request */
    sleep_ms(200);  /* let the server see the EOF and free the connection */
    assert_int_equal(world_in_flight(w), 0); /* orphaned: no longer counted */
    world_command(w, &w->cmd_respond_held);
    assert_true(world_wait_flag(w, &w->cmd_respond_held, false));
    pthread_mutex_lock(&w->mu);
    bool still_held = w->held != NULL;
    pthread_mutex_unlock(&w->mu);
    assert_false(still_held);
    /* The server is unharmed. */
    response r = {0};
    c = roundtrip(w, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 203);
    response_clear(&r);
    client_free(c);
}

static void plain_http_on_tls_port_closed_and_server_still_serves(void **state)
{
    world *w = *state;
    int fd = tcp_connect(w->port);
    static const char plain[] = "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_int_equal(send(fd, plain, sizeof plain - 1, MSG_NOSIGNAL), (ssize_t)(sizeof plain - 1));
    char buf[4096];
    size_t got = 0;
    ssize_t n;
    errno = 0;
    while ((n = recv(fd, buf + got, sizeof buf - got, 0)) > 0 && got + (size_t)n < sizeof buf)
        got += (size_t)n;
    int e = errno;
    close(fd);
    /* Closed (EOF or reset), not timed out, and never an HTTP answer. */
    assert_true(n == 0 || (n < 0 && e != EAGAIN && e != EWOULDBLOCK));
    assert_false(got >= 5 && memcmp(buf, "HTTP/", 5) == 0);
    assert_int_equal(world_calls(w), 0);
    response r = {0};
    client *c = roundtrip(w, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 203);
    response_clear(&r);
    client_free(c);
}

static void tls11_only_client_refused(void **state)
{
    world *w = *state;
    client *c = client_connect_versions(w->port, TLS1_1_VERSION, TLS1_1_VERSION);
    assert_null(c->ssl);
    /* The server said no (a protocol_version alert), not our own TLS library. */
    assert_int_equal(ERR_GET_REASON(c->ssl_err), SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
    client_free(c);
    assert_int_equal(world_calls(w), 0);
}

static void tls12_client_accepted(void **state)
{
    world *w = *state;
    client *c = client_connect_versions(w->port, TLS1_2_VERSION, TLS1_2_VERSION);
    assert_non_null(c->ssl);
    assert_int_equal(SSL_version(c->ssl), TLS1_2_VERSION);
    client_send_str(c, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 203);
    response_clear(&r);
    client_free(c);
}

static void server_close_with_open_connections_calls_done(void **state)
{
    world *w = *state;
    response r = {0};
    client *idle = roundtrip(w, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    client *busy = client_connect(w->port);
    client_send_str(busy, "GET /hold HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_true(world_wait_held(w));
    client *fresh = client_connect(w->port); /* handshaken, no request yet */

    assert_true(world_close_server(w));
    assert_true(client_sees_close(idle));
    assert_true(client_sees_close(busy));
    assert_true(client_sees_close(fresh));
    /* The request in flight may still be answered; the answer goes nowhere. */
    world_command(w, &w->cmd_respond_held);
    assert_true(world_wait_flag(w, &w->cmd_respond_held, false));
    /* Nothing listens any more. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_not_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    close(fd);
    response_clear(&r);
    client_free(idle);
    client_free(busy);
    client_free(fresh);
}

/* True if a TCP connect to `port` on 127.0.0.1 is refused (nothing listens). */
static bool tcp_connect_refused(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    int e = errno;
    close(fd);
    return r != 0 && e == ECONNREFUSED;
}

static long world_done_at(world *w)
{
    pthread_mutex_lock(&w->mu);
    long t = w->done_at_ms;
    pthread_mutex_unlock(&w->mu);
    return t;
}

static int world_done_calls(world *w)
{
    pthread_mutex_lock(&w->mu);
    int n = w->done_calls;
    pthread_mutex_unlock(&w->mu);
    return n;
}

static void shutdown_lets_late_answer_finish_with_connection_close(void **state)
{
    world *w = *state;
    client *c = client_connect(w->port);
    client_send_str(c, "GET /later?id=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_true(world_wait_calls(w, 1));
    long t0 = now_ms();
    world_shutdown(w, 10000);
    assert_int_equal(world_in_flight(w), 1); /* in flight when the shutdown started */
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "later id=1");
    assert_string_equal(resp_header(&r, "Content-Length"), "10");
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_true(client_sees_close(c));
    /* The server waits for our side to close too: done has not run yet. */
    assert_false(world_done(w));
    assert_int_equal(world_in_flight(w), 0);
    client_free(c);
    assert_true(world_wait_flag(w, &w->done_called, true));
    assert_true(world_done_at(w) - t0 < 3000); /* long before the grace */
    assert_int_equal(world_done_calls(w), 1);
    assert_int_equal(world_calls(w), 1);
    response_clear(&r);
}

static void shutdown_refuses_new_connections_at_once(void **state)
{
    world *w = *state;
    client *busy = client_connect(w->port);
    client_send_str(busy, "GET /hold HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_true(world_wait_held(w));
    world_shutdown(w, 10000);
    assert_true(tcp_connect_refused(w->port));
    assert_false(world_done(w)); /* refused while the shutdown is still under way */
    world_command(w, &w->cmd_respond_held);
    assert_true(world_wait_flag(w, &w->cmd_respond_held, false));
    response r = {0};
    assert_int_equal(client_read_response(busy, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "held");
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_true(client_sees_close(busy));
    client_free(busy);
    assert_true(world_wait_flag(w, &w->done_called, true));
    response_clear(&r);
}

static void shutdown_closes_idle_connections_at_once(void **state)
{
    world *w = *state; /* idle timeout 30 s */
    response r = {0};
    client *idle = roundtrip(w, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_string_equal(resp_header(&r, "Connection"), "keep-alive");
    client *fresh = client_connect(w->port); /* handshaken, no request yet */
    long t0 = now_ms();
    world_shutdown(w, 10000);
    assert_true(client_sees_close(idle));
    assert_true(SSL_get_shutdown(idle->ssl) & SSL_RECEIVED_SHUTDOWN); /* a TLS close_notify */
    assert_true(client_sees_close(fresh));
    assert_true(now_ms() - t0 < 1000);
    client_free(idle);
    client_free(fresh);
    assert_true(world_wait_flag(w, &w->done_called, true));
    assert_true(world_done_at(w) - t0 < 3000);
    assert_int_equal(world_calls(w), 1);
    response_clear(&r);
}

static void shutdown_force_closes_after_grace_and_late_respond_is_safe(void **state)
{
    world *w = *state;
    client *busy = client_connect(w->port);
    client_send_str(busy, "GET /hold HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_true(world_wait_held(w));
    assert_int_equal(world_in_flight(w), 1);
    long t0 = now_ms();
    world_shutdown(w, 300);               /* the handler never answers */
    assert_true(client_sees_close(busy)); /* closed with no answer */
    long waited = now_ms() - t0;
    assert_true(waited >= 200);
    assert_true(waited < 3000);
    assert_true(world_wait_flag(w, &w->done_called, true));
    assert_true(world_done_at(w) - t0 >= 200);
    /* The handler answers after the server is gone: dropped, and safe. */
    world_command(w, &w->cmd_respond_held);
    assert_true(world_wait_flag(w, &w->cmd_respond_held, false));
    pthread_mutex_lock(&w->mu);
    bool still_held = w->held != NULL;
    pthread_mutex_unlock(&w->mu);
    assert_false(still_held);
    assert_int_equal(world_done_calls(w), 1);
    client_free(busy);
}

static void shutdown_does_not_start_pipelined_request(void **state)
{
    world *w = *state;
    client *c = client_connect(w->port);
    /* One write, one TLS record: the second request is buffered at the server by the time the
     * first reaches the handler. */
    client_send_str(c, "GET /later?id=1 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                       "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_true(world_wait_calls(w, 1));
    world_shutdown(w, 10000);
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "later id=1");
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_true(client_sees_close(c)); /* no second answer */
    client_free(c);
    assert_true(world_wait_flag(w, &w->done_called, true));
    assert_int_equal(world_calls(w), 1); /* /hello never reached the handler */
    response_clear(&r);
}

static void status_503_with_retry_after_reaches_client(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w, "GET /unavailable HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(resp_header(&r, "Retry-After"), "30");
    assert_string_equal(resp_header(&r, "Content-Type"), "application/json");
    assert_string_equal(error_code_of(&r), "unavailable");
    assert_non_null(strstr(r.body, "header_add 0"));
    assert_string_equal(resp_header(&r, "Connection"), "keep-alive");
    /* Still a keep-alive connection. */
    client_send_str(c, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 203);
    response_clear(&r);
    client_free(c);
}

static void shutdown_twice_then_close_forces_and_done_runs_once(void **state)
{
    world *w = *state;
    client *busy = client_connect(w->port);
    client_send_str(busy, "GET /hold HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_true(world_wait_held(w));
    world_shutdown(w, 10000);
    world_shutdown(w, 10); /* a no-op: the first grace stands */
    sleep_ms(100);
    assert_false(world_done(w));
    long t0 = now_ms();
    assert_true(world_close_server(w)); /* cuts the grace short; the shutdown's done runs */
    assert_true(now_ms() - t0 < 3000);
    assert_true(client_sees_close(busy));
    world_command(w, &w->cmd_respond_held);
    assert_true(world_wait_flag(w, &w->cmd_respond_held, false));
    sleep_ms(50);
    assert_int_equal(world_done_calls(w), 1);
    client_free(busy);
}

static void handler_may_start_the_shutdown(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w, "GET /stop HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "stopping");
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_true(client_sees_close(c));
    assert_true(tcp_connect_refused(w->port));
    client_free(c);
    assert_true(world_wait_flag(w, &w->done_called, true));
    response_clear(&r);
}

static void shutdown_answers_request_already_arriving(void **state)
{
    world *w = *state;
    client *c = client_connect(w->port);
    client_send_str(c, "GET /hello HTTP/1.1\r\nHost: loc");
    sleep_ms(100); /* let the server parse the first half */
    world_shutdown(w, 10000);
    client_send_str(c, "alhost\r\n\r\nGET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 203);
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_true(client_sees_close(c)); /* the one behind it is not answered */
    client_free(c);
    assert_true(world_wait_flag(w, &w->done_called, true));
    assert_int_equal(world_calls(w), 1);
    response_clear(&r);
}

static void path_kept_undecoded_and_raw_query_exposed(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(
        w, "GET /echo/a%20b/%C3%A9%2Fz?x=1%202&y=%26+ HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    seen s = world_seen(w);
    assert_string_equal(s.path, "/echo/a%20b/%C3%A9%2Fz"); /* %2F is no separator */
    assert_string_equal(s.query, "x=1%202&y=%26+");
    seen_free(&s);
    client_send_str(c, "GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_int_equal(client_read_response(c, &r), 0);
    s = world_seen(w);
    assert_string_equal(s.path, "/echo");
    assert_string_equal(s.query, ""); /* no query: "" */
    seen_free(&s);
    response_clear(&r);
    client_free(c);
}

static void header_lookup_is_case_insensitive(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w,
                          "GET /echo HTTP/1.1\r\nHost: localhost\r\nX-Custom-Thing: Value 1  \r\n"
                          "X-Empty:\r\nAccept: */*\r\n\r\n",
                          &r);
    assert_int_equal(r.status, 200);
    seen s = world_seen(w);
    assert_string_equal(s.hdr_lower, "Value 1");
    assert_string_equal(s.hdr_upper, "Value 1");
    assert_true(s.hdr_missing_is_null);
    seen_free(&s);
    response_clear(&r);
    client_free(c);
}

static void header_split_across_records_is_whole(void **state)
{
    world *w = *state;
    client *c = client_connect(w->port);
    /* Each write is its own TLS record, so the server parses the header in pieces. */
    client_send_str(c, "GET /echo HTTP/1.1\r\nHost: localhost\r\nX-Cus");
    sleep_ms(50);
    client_send_str(c, "tom-Thing: Val");
    sleep_ms(50);
    client_send_str(c, "ue 2\r\n\r\n");
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 200);
    seen s = world_seen(w);
    assert_string_equal(s.hdr_lower, "Value 2");
    seen_free(&s);
    response_clear(&r);
    client_free(c);
}

static void idle_keepalive_connection_closed_after_timeout(void **state)
{
    world *w = *state; /* idle_timeout_ms = 300 */
    response r = {0};
    client *c = roundtrip(w, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 203);
    long t0 = now_ms();
    assert_true(client_sees_close(c));
    long waited = now_ms() - t0;
    assert_true(waited >= 200);
    assert_true(waited < 3000);
    response_clear(&r);
    client_free(c);
}

static void stalled_request_closed_after_idle_timeout(void **state)
{
    world *w = *state; /* idle_timeout_ms = 300 */
    client *c = client_connect(w->port);
    client_send_str(c, "GET /hello HTTP/1.1\r\nHost: loc"); /* and nothing more */
    long t0 = now_ms();
    assert_true(client_sees_close(c)); /* closed, with no answer at all */
    long waited = now_ms() - t0;
    assert_true(waited >= 200);
    assert_true(waited < 3000);
    assert_int_equal(world_calls(w), 0);
    client_free(c);
}

static void silent_connection_closed_after_idle_timeout(void **state)
{
    world *w = *state; /* idle_timeout_ms = 300; no TLS handshake ever starts */
    int fd = tcp_connect(w->port);
    char b[16];
    long t0 = now_ms();
    errno = 0;
    ssize_t n = recv(fd, b, sizeof b, 0);
    int e = errno;
    long waited = now_ms() - t0;
    close(fd);
    assert_true(n == 0 || (n < 0 && e != EAGAIN && e != EWOULDBLOCK));
    assert_true(waited >= 200);
    assert_true(waited < 3000);
}

static void connections_over_the_limit_are_closed(void **state)
{
    world *w = *state; /* max_connections = 1 */
    response r = {0};
    client *first = roundtrip(w, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    client *second = client_connect_versions(w->port, 0, 0);
    assert_null(second->ssl);
    client_free(second);
    client_free(first);
    /* Once the first is gone, a new one gets in. */
    client *third = NULL;
    for (int i = 0; i < 50 && !third; i++) {
        client *t = client_connect_versions(w->port, 0, 0);
        if (t->ssl) {
            third = t;
        } else {
            client_free(t);
            sleep_ms(50);
        }
    }
    assert_non_null(third);
    client_send_str(third, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_int_equal(client_read_response(third, &r), 0);
    assert_int_equal(r.status, 203);
    response_clear(&r);
    client_free(third);
}

/* ---- bounds and strictness (issue 8) ---------------------------------------------------- */

static void pipelined_requests_not_read_pause_while_answers_wait_unsent(void **state)
{
    world *w = *state; /* max_unsent_bytes = 16 KiB; /big answers 1 MiB */
    client *c = client_connect(w->port);
    enum { N = 40 };
    char reqs[N * 64];
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(reqs + len, sizeof reqs - len,
                                "GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n");
    client_send(c, reqs, len);
    sleep_ms(700); /* the client reads nothing meanwhile */
    int stalled_at = world_calls(w);
    /* only what the socket buffers hold has been answered, not all 40 MiB */
    assert_true(stalled_at >= 1);
    assert_true(stalled_at < N / 2);
    response r = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(client_read_response(c, &r), 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, 1u << 20);
    }
    assert_int_equal(world_calls(w), N);
    response_clear(&r);
    client_free(c);
}

static void connections_over_the_per_peer_cap_are_closed(void **state)
{
    world *w = *state; /* max_connections_per_peer = 2 */
    response r = {0};
    client *a = roundtrip(w, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    client *b = roundtrip(w, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    client *third = client_connect_versions(w->port, 0, 0);
    assert_null(third->ssl); /* closed at once: no handshake */
    client_free(third);
    /* the first two still work */
    client_send_str(a, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_int_equal(client_read_response(a, &r), 0);
    assert_int_equal(r.status, 203);
    client_free(a);
    /* once one is gone, the peer gets a place again */
    client *next = NULL;
    for (int i = 0; i < 50 && !next; i++) {
        client *t = client_connect_versions(w->port, 0, 0);
        if (t->ssl) {
            next = t;
        } else {
            client_free(t);
            sleep_ms(50);
        }
    }
    assert_non_null(next);
    client_send_str(next, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_int_equal(client_read_response(next, &r), 0);
    assert_int_equal(r.status, 203);
    response_clear(&r);
    client_free(next);
    client_free(b);
}

static void handshake_not_done_closed_after_handshake_timeout(void **state)
{
    world *w = *state; /* idle 20 s, handshake 300 ms: a TCP connection that never says hello */
    int fd = tcp_connect(w->port);
    char b[16];
    long t0 = now_ms();
    errno = 0;
    ssize_t n = recv(fd, b, sizeof b, 0);
    int e = errno;
    long waited = now_ms() - t0;
    close(fd);
    assert_true(n == 0 || (n < 0 && e != EAGAIN && e != EWOULDBLOCK));
    assert_true(waited >= 200);
    assert_true(waited < 3000);
}

static void handshake_done_connection_waits_for_the_idle_timeout(void **state)
{
    world *w = *state; /* idle 20 s, handshake 300 ms: after the handshake only idleness counts */
    client *c = client_connect(w->port);
    sleep_ms(700);
    response r = {0};
    client_send_str(c, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 203);
    response_clear(&r);
    client_free(c);
}

static void request_trickled_closed_after_request_timeout(void **state)
{
    world *w = *state; /* idle 20 s, request 400 ms from its first byte */
    client *c = client_connect(w->port);
    long t0 = now_ms();
    client_send_str(c, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 3; i++) {
        sleep_ms(100);
        client_send_str(c, "X"); /* a header name, byte by byte */
    }
    assert_true(client_sees_close(c));
    long waited = now_ms() - t0;
    assert_true(waited >= 300);
    assert_true(waited < 3000);
    assert_int_equal(world_calls(w), 0);
    client_free(c);
}

static void on_headers_answer_closes_before_the_body(void **state)
{
    world *w = *state; /* guard_headers: /guarded without X-Key is 401 */
    client *c = client_connect(w->port);
    /* announces 900 KB and sends none of it: the answer comes anyway */
    client_send_str(c,
                    "POST /guarded HTTP/1.1\r\nHost: localhost\r\nContent-Length: 900000\r\n\r\n");
    response r = {0};
    assert_int_equal(client_read_response(c, &r), 0);
    assert_int_equal(r.status, 401);
    assert_string_equal(error_code_of(&r), "unauthorized");
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_true(client_sees_close(c));
    assert_int_equal(world_calls(w), 0);
    pthread_mutex_lock(&w->mu);
    int hooks = w->headers_calls;
    size_t seen_body = w->headers_body;
    pthread_mutex_unlock(&w->mu);
    assert_int_equal(hooks, 1);
    assert_int_equal(seen_body, 0);
    response_clear(&r);
    client_free(c);
}

static void on_headers_not_answering_lets_the_request_through(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w,
                          "POST /echo/guarded HTTP/1.1\r\nHost: localhost\r\nX-Key: k\r\n"
                          "Content-Length: 5\r\n\r\nhello",
                          &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 5);
    assert_memory_equal(r.body, "hello", 5);
    assert_int_equal(world_calls(w), 1);
    response_clear(&r);
    client_free(c);
}

static void on_headers_data_reaches_the_handler_once(void **state)
{
    world *w = *state; /* guard_headers attaches "from-hook" to /data */
    response r = {0};
    client *c = roundtrip(w, "GET /data HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, strlen("from-hook once"));
    assert_memory_equal(r.body, "from-hook once", r.body_len);
    pthread_mutex_lock(&w->mu);
    int dropped = w->data_dropped;
    pthread_mutex_unlock(&w->mu);
    assert_int_equal(dropped, 0); /* taken by the handler, freed by it */
    response_clear(&r);
    client_free(c);
}

static void on_headers_data_is_dropped_when_the_client_leaves_before_the_body(void **state)
{
    world *w = *state;
    client *c = client_connect(w->port);
    client_send_str(c, "POST /data HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n");
    sleep_ms(100);
    client_free(c); /* gone before the body: the handler never runs */
    int dropped = 0;
    for (int i = 0; i < 100 && dropped == 0; i++) {
        sleep_ms(20);
        pthread_mutex_lock(&w->mu);
        dropped = w->data_dropped;
        pthread_mutex_unlock(&w->mu);
    }
    assert_int_equal(dropped, 1);
    assert_int_equal(world_calls(w), 0);
}

static void bodies_over_the_global_budget_get_503_with_retry_after(void **state)
{
    world *w = *state; /* max_buffered_body_bytes = 100000 */
    client *a = client_connect(w->port);
    client_send_str(a, "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 80000\r\n\r\n");
    char part[1000];
    memset(part, 'a', sizeof part);
    client_send(a, part, sizeof part); /* a's body is under way: 80000 taken */
    sleep_ms(100);
    response r = {0};
    client *b =
        roundtrip(w, "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 40000\r\n\r\n", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(error_code_of(&r), "unavailable");
    assert_non_null(resp_header(&r, "Retry-After"));
    assert_true(client_sees_close(b));
    client_free(b);
    /* a finishes and is served; its share is then given back */
    char *rest = malloc(79000);
    assert_non_null(rest);
    memset(rest, 'a', 79000);
    client_send(a, rest, 79000);
    free(rest);
    assert_int_equal(client_read_response(a, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 80000);
    client *d = roundtrip(
        w, "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello", &r);
    assert_int_equal(r.status, 200);
    client_free(d);
    response_clear(&r);
    client_free(a);
}

static void chunked_bodies_over_the_global_budget_get_503(void **state)
{
    world *w = *state; /* max_buffered_body_bytes = 100000 */
    client *a = client_connect(w->port);
    client_send_str(a, "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 90000\r\n\r\n");
    sleep_ms(100);
    client *b = client_connect(w->port);
    client_send_str(b,
                    "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[20000 + 16];
    int n = snprintf(chunk, sizeof chunk, "%x\r\n", 20000);
    memset(chunk + n, 'b', 20000);
    memcpy(chunk + n + 20000, "\r\n", 2);
    client_send(b, chunk, (size_t)n + 20002);
    response r = {0};
    assert_int_equal(client_read_response(b, &r), 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(error_code_of(&r), "unavailable");
    assert_int_equal(world_calls(w), 0);
    response_clear(&r);
    client_free(b);
    client_free(a);
}

static void http_version_other_than_10_or_11_gets_505(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w, "GET /hello HTTP/9.9\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 505);
    assert_string_equal(error_code_of(&r), "http_version_not_supported");
    assert_true(client_sees_close(c));
    assert_int_equal(world_calls(w), 0);
    client_free(c);
    c = roundtrip(w, "GET /hello HTTP/0.9\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 505);
    client_free(c);
    response_clear(&r);
}

static void absolute_form_naming_another_server_gets_400(void **state)
{
    world *w = *state;
    response r = {0};
    char req[256];
    const char *targets[] = {"https://evil.example:%d/hello", "https://127.0.0.1:1/hello",
                             "http://127.0.0.1:%d/hello", "https://user@127.0.0.1:%d/hello"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char target[128];
        snprintf(target, sizeof target, targets[i], w->port);
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", target);
        client *c = roundtrip(w, req, &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(error_code_of(&r), "bad_request");
        client_free(c);
    }
    assert_int_equal(world_calls(w), 0);
    response_clear(&r);
}

static void absolute_form_naming_this_server_is_served_by_its_path(void **state)
{
    world *w = *state;
    response r = {0};
    char req[256];
    const char *hosts[] = {"127.0.0.1", "localhost", "LOCALHOST"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(req, sizeof req, "GET https://%s:%d/info?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
                 hosts[i], w->port);
        client *c = roundtrip(w, req, &r);
        assert_int_equal(r.status, 200);
        seen s = world_seen(w);
        assert_string_equal(s.path, "/info");
        assert_string_equal(s.query, "q=1");
        seen_free(&s);
        client_free(c);
    }
    response_clear(&r);
}

static void asterisk_form_target_gets_400(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w, "OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    assert_int_equal(world_calls(w), 0);
    response_clear(&r);
    client_free(c);
}

static void second_authorization_header_gets_400(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w,
                          "GET /hello HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer a\r\n"
                          "authorization: Bearer b\r\n\r\n",
                          &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(error_code_of(&r), "bad_request");
    assert_non_null(strstr(r.body, "Authorization"));
    assert_int_equal(world_calls(w), 0);
    response_clear(&r);
    client_free(c);
}

static void second_content_length_header_gets_400(void **state)
{
    world *w = *state;
    response r = {0};
    client *c = roundtrip(w,
                          "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
                          "Content-Length: 5\r\n\r\nhello",
                          &r);
    assert_int_equal(r.status, 400);
    assert_int_equal(world_calls(w), 0);
    response_clear(&r);
    client_free(c);
}

static void percent_decode_decodes_and_refuses_bad_escapes(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(http_percent_decode("a%2Fb%20c+", 10, out, sizeof out), 6);
    assert_string_equal(out, "a/b c+");
    assert_int_equal(http_percent_decode("%zz", 3, out, sizeof out), -EINVAL);
    assert_int_equal(http_percent_decode("%00", 3, out, sizeof out), -EINVAL);
    assert_int_equal(http_percent_decode("ab%2", 4, out, sizeof out), -EINVAL);
    assert_int_equal(http_percent_decode("ab%", 3, out, sizeof out), -EINVAL);
    assert_int_equal(http_percent_decode("0123456789abcdef", 16, out, sizeof out), -ENOSPC);
    assert_int_equal(http_percent_decode("%41%42", 6, NULL, 0), 2); /* validate only */
}

/* ---- the detached parser (http_server_parse_buffer) --------------------------------------- */

static int buffer_calls;

static void buffer_handler(http_request *req, void *arg)
{
    (void)arg;
    buffer_calls++;
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    char text[128];
    snprintf(text, sizeof text, "%s %s %zu", http_request_method(req), http_request_path(req), len);
    (void)body;
    http_request_respond(req, 200, "text/plain", text, strlen(text));
}

static void parse_buffer_answers_pipelined_requests_in_order(void **state)
{
    (void)state;
    static const char in[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                             "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                             "HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n";
    http_server_options o = {0};
    for (size_t chunk = 0; chunk < 4; chunk++) { /* all at once, then byte by byte, ... */
        char *out = NULL;
        size_t out_len = 0;
        buffer_calls = 0;
        int n = http_server_parse_buffer(&o, in, sizeof in - 1, chunk, buffer_handler, NULL, &out,
                                         &out_len);
        assert_int_equal(n, 3);
        assert_int_equal(buffer_calls, 3);
        assert_non_null(out);
        assert_int_equal(strlen(out), out_len);
        const char *a = strstr(out, "GET /a 0"), *b = strstr(out, "POST /b 5");
        assert_non_null(a);
        assert_non_null(b);
        assert_true(a < b);
        assert_null(strstr(out, "HEAD /c"));             /* HEAD: no body... */
        assert_non_null(strstr(b, "Content-Length: 9")); /* ...but GET's length ("HEAD /c 0") */
        free(out);
    }
}

static void parse_buffer_answers_protocol_errors_and_stops(void **state)
{
    (void)state;
    static const char in[] = "GET /a HTTP/9.9\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    http_server_options o = {0};
    char *out = NULL;
    size_t out_len = 0;
    buffer_calls = 0;
    int n =
        http_server_parse_buffer(&o, in, sizeof in - 1, 0, buffer_handler, NULL, &out, &out_len);
    assert_int_equal(n, 0);
    assert_int_equal(buffer_calls, 0);
    assert_non_null(out);
    assert_non_null(strstr(out, "HTTP/1.1 505 "));
    assert_non_null(strstr(out, "Connection: close"));
    free(out);
}

/* ---- request ids and the access log (the detached parser) -------------------------------- */

/* Runs one GET through the detached parser with `extra` header lines; returns what was sent. */
static char *parse_one(const http_server_options *o, const char *extra)
{
    char in[512];
    snprintf(in, sizeof in, "GET /a HTTP/1.1\r\nHost: x\r\n%s\r\n", extra);
    char *out = NULL;
    size_t out_len = 0;
    assert_int_equal(
        http_server_parse_buffer(o, in, strlen(in), 0, buffer_handler, NULL, &out, &out_len), 1);
    assert_non_null(out);
    return out;
}

static void request_id_brought_well_formed_is_sent_back(void **state)
{
    (void)state;
    http_server_options o = {0};
    char *out = parse_one(&o, "X-Request-Id: it-abc123\r\n");
    assert_non_null(strstr(out, "\r\nX-Request-Id: it-abc123\r\n"));
    free(out);
}

static void request_id_malformed_is_replaced_not_echoed(void **state)
{
    (void)state;
    http_server_options o = {0};
    char *out = parse_one(&o, "X-Request-Id: bad id:x\r\n");
    assert_null(strstr(out, "bad id"));
    const char *h = strstr(out, "\r\nX-Request-Id: ");
    assert_non_null(h);
    assert_int_equal(h[2 + 14 + 12], '-'); /* a fresh "<12 hex>-<counter>" */
    free(out);
}

static void request_without_an_id_gets_a_fresh_one(void **state)
{
    (void)state;
    http_server_options o = {0};
    char *a = parse_one(&o, ""), *b = parse_one(&o, "");
    const char *ha = strstr(a, "X-Request-Id: "), *hb = strstr(b, "X-Request-Id: ");
    assert_non_null(ha);
    assert_non_null(hb);
    char ida[80], idb[80];
    snprintf(ida, sizeof ida, "%.*s", (int)strcspn(ha, "\r"), ha);
    snprintf(idb, sizeof idb, "%.*s", (int)strcspn(hb, "\r"), hb);
    assert_string_not_equal(ida, idb);
    free(a);
    free(b);
}

/* Runs one request with the log in a temporary file and returns what was logged (malloc'd). */
static char *logged_by_one(bool no_access_log)
{
    char path[] = "/tmp/test_http_access.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    int level = log_min_level;
    log_min_level = LOG_INFO;
    assert_int_equal(log_file_set(path), 0);
    http_server_options o = {.no_access_log = no_access_log};
    free(parse_one(&o, "X-Request-Id: it-log1\r\n"));
    log_file_set(NULL);
    log_min_level = level;
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *text = calloc(1, 8192);
    assert_non_null(text);
    size_t n = fread(text, 1, 8191, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);
    return text;
}

static void access_line_written_per_answer_with_its_request_id(void **state)
{
    (void)state;
    char *text = logged_by_one(false);
    assert_non_null(strstr(text, "INFO  "));
    assert_non_null(strstr(text, " access GET - 200 "));
    assert_non_null(strstr(text, "peer=buffer user=- rid=it-log1\n"));
    free(text);
}

static void access_line_off_with_no_access_log(void **state)
{
    (void)state;
    char *text = logged_by_one(true);
    assert_null(strstr(text, " access "));
    free(text);
}

/* ---- tests without a running world ------------------------------------------------------ */

static void noop_handler(http_request *req, void *arg)
{
    (void)arg;
    http_request_respond(req, 204, "text/plain", "", 0);
}

static void bad_certificate_refused_with_message(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    http_server_options o = {
        .host = "127.0.0.1", .cert_file = "/nonexistent/cert.pem", .key_file = key_file};
    http_server *srv = (http_server *)&loop; /* must be reset to NULL */
    char err[256] = "";
    int r = http_server_new(&loop, &o, noop_handler, NULL, &srv, err, sizeof err);
    assert_int_equal(r, -EINVAL);
    assert_null(srv);
    assert_non_null(strstr(err, "/nonexistent/cert.pem"));
    /* A key that does not match the certificate. */
    o.cert_file = ca_file;
    r = http_server_new(&loop, &o, noop_handler, NULL, &srv, err, sizeof err);
    assert_int_equal(r, -EINVAL);
    assert_non_null(strstr(err, "does not match"));
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void closed_done(void *arg)
{
    *(int *)arg += 1;
}

static void port_in_use_refused(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    http_server_options o = {.host = "127.0.0.1", .cert_file = cert_file, .key_file = key_file};
    http_server *a = NULL, *b = NULL;
    char err[256] = "";
    assert_int_equal(http_server_new(&loop, &o, noop_handler, NULL, &a, err, sizeof err), 0);
    o.port = http_server_port(a);
    int r = http_server_new(&loop, &o, noop_handler, NULL, &b, err, sizeof err);
    assert_int_equal(r, -EADDRINUSE);
    assert_null(b);
    assert_non_null(strstr(err, "port"));
    int done = 0;
    http_server_close(a, closed_done, &done);
    assert_int_equal(done, 0); /* never from inside close */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void shutdown_without_connections_calls_done_soon(void **state)
{
    (void)state;
    http_server_shutdown(NULL, 0, closed_done, NULL); /* accepted, nothing happens */
    assert_int_equal(http_server_requests_in_flight(NULL), 0);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    http_server_options o = {.host = "127.0.0.1", .cert_file = cert_file, .key_file = key_file};
    http_server *srv = NULL;
    char err[256] = "";
    assert_int_equal(http_server_new(&loop, &o, noop_handler, NULL, &srv, err, sizeof err), 0);
    assert_int_equal(http_server_requests_in_flight(srv), 0);
    int done = 0;
    long t0 = now_ms();
    http_server_shutdown(srv, 10000, closed_done, &done);
    assert_int_equal(done, 0);                        /* never from inside shutdown */
    http_server_shutdown(srv, 0, closed_done, &done); /* a no-op */
    http_server_close(srv, closed_done, &done);       /* nothing left to cut short */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    assert_true(now_ms() - t0 < 1000); /* no connection: no waiting for the grace */
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void make_cert_is_idempotent(void **state)
{
    (void)state;
    char dir[] = "/tmp/antenna-cert-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[PATH_MAX];
    char line[512];
    char pem1[4096] = "", pem2[4096] = "";
    for (int round = 0; round < 2; round++) {
        snprintf(cmd, sizeof cmd, "deploy/make-cert.sh %s/c", dir);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        int lines = 0;
        while (fgets(line, sizeof line, p))
            lines++;
        assert_int_equal(pclose(p), 0);
        assert_int_equal(lines, 1);
        assert_non_null(strstr(line, dir));
        snprintf(cmd, sizeof cmd, "%s/c/server.pem", dir);
        FILE *f = fopen(cmd, "r");
        assert_non_null(f);
        size_t n = fread(round == 0 ? pem1 : pem2, 1, sizeof pem1 - 1, f);
        fclose(f);
        assert_true(n > 0);
    }
    assert_string_equal(pem1, pem2); /* the second run kept the certificate */
    struct stat st;
    snprintf(cmd, sizeof cmd, "%s/c/server.key", dir);
    assert_int_equal(stat(cmd, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- main ------------------------------------------------------------------------------- */

static int make_certificate(void **state)
{
    (void)state;
    snprintf(cert_dir, sizeof cert_dir, "/tmp/antenna-test-http-XXXXXX");
    if (!mkdtemp(cert_dir)) return -1;
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "deploy/make-cert.sh '%s' >/dev/null", cert_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "deploy/make-cert.sh failed (run the tests from the repository root)\n");
        return -1;
    }
    snprintf(ca_file, sizeof ca_file, "%s/ca.pem", cert_dir);
    snprintf(cert_file, sizeof cert_file, "%s/server.pem", cert_dir);
    snprintf(key_file, sizeof key_file, "%s/server.key", cert_dir);
    return 0;
}

static int remove_certificate(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cert_dir);
    return system(cmd) == 0 ? 0 : -1;
}

#define WORLD_TEST(f) cmocka_unit_test_setup_teardown(f, setup_default, world_teardown)
#define SMALL_TEST(f) cmocka_unit_test_setup_teardown(f, setup_small_limits, world_teardown)

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    log_min_level = LOG_ERROR; /* the server's connection-level lines are noise here */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        WORLD_TEST(get_answered_with_handlers_status_body_and_headers),
        WORLD_TEST(respond_error_sends_json_error_object),
        WORLD_TEST(post_body_delivered_intact),
        WORLD_TEST(post_100kb_body_delivered_intact_with_curl),
        WORLD_TEST(expect_100_continue_gets_interim_answer),
        WORLD_TEST(chunked_body_delivered_intact),
        WORLD_TEST(two_requests_on_one_keepalive_connection),
        WORLD_TEST(pipelined_requests_answered_in_order),
        WORLD_TEST(deep_pipeline_beyond_read_backlog_answered_in_order),
        WORLD_TEST(handler_answering_later_works),
        WORLD_TEST(head_answer_has_length_but_no_body),
        WORLD_TEST(status_204_has_no_body_and_no_length),
        WORLD_TEST(added_headers_sent_and_unsafe_ones_refused),
        SMALL_TEST(headers_at_the_limit_accepted),
        SMALL_TEST(oversized_headers_get_431_json),
        SMALL_TEST(huge_headers_get_431_before_they_end),
        SMALL_TEST(oversized_content_length_gets_413_without_reading_body),
        SMALL_TEST(chunked_body_over_limit_gets_413),
        SMALL_TEST(chunk_announced_over_limit_gets_413_at_its_size_line),
        WORLD_TEST(garbage_request_gets_400_json),
        WORLD_TEST(malformed_percent_escape_gets_400),
        WORLD_TEST(http10_request_closes_after_answer),
        WORLD_TEST(connection_close_header_closes_after_answer),
        WORLD_TEST(client_disconnect_while_pending_then_respond_is_safe),
        WORLD_TEST(plain_http_on_tls_port_closed_and_server_still_serves),
        WORLD_TEST(tls11_only_client_refused),
        WORLD_TEST(tls12_client_accepted),
        WORLD_TEST(server_close_with_open_connections_calls_done),
        WORLD_TEST(shutdown_lets_late_answer_finish_with_connection_close),
        WORLD_TEST(shutdown_refuses_new_connections_at_once),
        WORLD_TEST(shutdown_closes_idle_connections_at_once),
        WORLD_TEST(shutdown_force_closes_after_grace_and_late_respond_is_safe),
        WORLD_TEST(shutdown_does_not_start_pipelined_request),
        WORLD_TEST(status_503_with_retry_after_reaches_client),
        WORLD_TEST(shutdown_twice_then_close_forces_and_done_runs_once),
        WORLD_TEST(handler_may_start_the_shutdown),
        WORLD_TEST(shutdown_answers_request_already_arriving),
        WORLD_TEST(path_kept_undecoded_and_raw_query_exposed),
        WORLD_TEST(header_lookup_is_case_insensitive),
        WORLD_TEST(header_split_across_records_is_whole),
        cmocka_unit_test_setup_teardown(idle_keepalive_connection_closed_after_timeout,
                                        setup_short_idle, world_teardown),
        cmocka_unit_test_setup_teardown(stalled_request_closed_after_idle_timeout, setup_short_idle,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(silent_connection_closed_after_idle_timeout,
                                        setup_short_idle, world_teardown),
        cmocka_unit_test_setup_teardown(connections_over_the_limit_are_closed, setup_one_connection,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(pipelined_requests_not_read_pause_while_answers_wait_unsent,
                                        setup_small_unsent, world_teardown),
        cmocka_unit_test_setup_teardown(connections_over_the_per_peer_cap_are_closed,
                                        setup_two_per_peer, world_teardown),
        cmocka_unit_test_setup_teardown(handshake_not_done_closed_after_handshake_timeout,
                                        setup_short_handshake, world_teardown),
        cmocka_unit_test_setup_teardown(handshake_done_connection_waits_for_the_idle_timeout,
                                        setup_short_handshake, world_teardown),
        cmocka_unit_test_setup_teardown(request_trickled_closed_after_request_timeout,
                                        setup_short_request, world_teardown),
        cmocka_unit_test_setup_teardown(on_headers_answer_closes_before_the_body, setup_guarded,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(on_headers_data_reaches_the_handler_once, setup_guarded,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(
            on_headers_data_is_dropped_when_the_client_leaves_before_the_body, setup_guarded,
            world_teardown),
        cmocka_unit_test_setup_teardown(on_headers_not_answering_lets_the_request_through,
                                        setup_guarded, world_teardown),
        cmocka_unit_test_setup_teardown(bodies_over_the_global_budget_get_503_with_retry_after,
                                        setup_small_body_budget, world_teardown),
        cmocka_unit_test_setup_teardown(chunked_bodies_over_the_global_budget_get_503,
                                        setup_small_body_budget, world_teardown),
        WORLD_TEST(http_version_other_than_10_or_11_gets_505),
        WORLD_TEST(absolute_form_naming_another_server_gets_400),
        WORLD_TEST(absolute_form_naming_this_server_is_served_by_its_path),
        WORLD_TEST(asterisk_form_target_gets_400),
        WORLD_TEST(second_authorization_header_gets_400),
        WORLD_TEST(second_content_length_header_gets_400),
        cmocka_unit_test(percent_decode_decodes_and_refuses_bad_escapes),
        cmocka_unit_test(parse_buffer_answers_pipelined_requests_in_order),
        cmocka_unit_test(parse_buffer_answers_protocol_errors_and_stops),
        cmocka_unit_test(bad_certificate_refused_with_message),
        cmocka_unit_test(port_in_use_refused),
        cmocka_unit_test(shutdown_without_connections_calls_done_soon),
        cmocka_unit_test(make_cert_is_idempotent),
        cmocka_unit_test(request_id_brought_well_formed_is_sent_back),
        cmocka_unit_test(request_id_malformed_is_replaced_not_echoed),
        cmocka_unit_test(request_without_an_id_gets_a_fresh_one),
        cmocka_unit_test(access_line_written_per_answer_with_its_request_id),
        cmocka_unit_test(access_line_off_with_no_access_log),
    };
    int failed = cmocka_run_group_tests(tests, make_certificate, remove_certificate);
    curl_global_cleanup();
    return failed;
}
